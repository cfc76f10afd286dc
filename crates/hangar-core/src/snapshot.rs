//! The `Snapshot`: every object Hangar read, typed where Hangar knows the kind, with where it came
//! from, plus what could not be read.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, Node, PersistentVolumeClaim, Pod, ResourceQuota, Secret, Service,
    ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{NamespaceResourceScope, Resource};
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use serde::Serialize;
use serde_json::Value;

use crate::object::{ObjectRef, Origin};

/// An object together with where it was read.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub object: T,
    pub origin: Origin,
}

/// What every object Hangar holds can say about itself.
pub trait KubeObject {
    fn kind(&self) -> &str;
    fn meta(&self) -> &ObjectMeta;

    fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    /// The namespace, empty for cluster-scoped objects.
    fn namespace(&self) -> &str {
        self.meta().namespace.as_deref().unwrap_or_default()
    }

    fn object_ref(&self) -> ObjectRef {
        ObjectRef::new(self.kind(), self.namespace(), self.name())
    }

    fn label(&self, key: &str) -> Option<&str> {
        self.meta().labels.as_ref()?.get(key).map(String::as_str)
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.meta()
            .annotations
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }
}

impl<T: KubeObject> Located<T> {
    pub fn object_ref(&self) -> ObjectRef {
        self.object.object_ref()
    }
}

/// An object of a kind Hangar does not type (KServe, Ray, Gateway API, Istio…), kept whole so
/// discovery and checks can still read it.
#[derive(Debug, Clone)]
pub struct DynamicObject {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    /// The whole object as read, `spec` and `status` included.
    pub body: Value,
}

impl DynamicObject {
    /// The API group: `serving.kserve.io` for `serving.kserve.io/v1beta1`, empty for `v1`.
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(group, _)| group)
            .unwrap_or_default()
    }

    /// The value at a dotted path below the object, such as `spec.predictor.model`.
    pub fn get(&self, path: &str) -> Option<&Value> {
        path.split('.')
            .try_fold(&self.body, |value, key| value.get(key))
    }

    pub fn str_at(&self, path: &str) -> Option<&str> {
        self.get(path)?.as_str()
    }
}

impl KubeObject for DynamicObject {
    fn kind(&self) -> &str {
        &self.kind
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
}

/// Something in the input that could not be read; the rest of the input still is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadError {
    #[serde(flatten)]
    pub origin: Origin,
    /// The object the error is about, when it could be named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    pub message: String,
}

/// The kind of the item `--save-snapshot` adds when the scan had gaps, so that the saved file,
/// read back, is as incomplete as the scan was.
pub const SCAN_GAPS_KIND: &str = "ScanGaps";
/// Its API version.
pub const SCAN_GAPS_API_VERSION: &str = "hangar.dev/v1";

fn is_scan_gaps(object: &DynamicObject) -> bool {
    object.kind == SCAN_GAPS_KIND && object.api_version == SCAN_GAPS_API_VERSION
}

impl Snapshot {
    /// The saved item holding this snapshot's kinds not covered and errors, if it has any.
    pub fn gaps_item(&self) -> Option<Value> {
        if self.not_covered.is_empty() && self.errors.is_empty() {
            return None;
        }
        let not_covered: Vec<Value> = (self.not_covered.iter())
            .map(|gap| serde_json::json!({"kind": gap.kind, "reason": gap.reason}))
            .collect();
        let errors: Vec<String> = (self.errors.iter())
            .map(|e| match &e.object {
                Some(object) => format!("{}: {object}: {}", e.origin, e.message),
                None => format!("{}: {}", e.origin, e.message),
            })
            .collect();
        Some(serde_json::json!({
            "apiVersion": SCAN_GAPS_API_VERSION,
            "kind": SCAN_GAPS_KIND,
            "metadata": {"name": "scan-gaps"},
            "notCovered": not_covered,
            "errors": errors,
        }))
    }

    /// Reads back what [`Snapshot::gaps_item`] saved.
    fn take_gaps(&mut self, object: &DynamicObject, origin: &Origin) {
        let list = |key: &str| object.body.get(key).and_then(Value::as_array).cloned();
        for gap in list("notCovered").unwrap_or_default() {
            let text = |key: &str| {
                gap.get(key)
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned()
            };
            self.not_covered.push(NotCovered {
                kind: text("kind"),
                reason: text("reason"),
            });
        }
        for error in list("errors").unwrap_or_default() {
            self.errors.push(LoadError {
                origin: origin.clone(),
                object: None,
                message: format!(
                    "the saved scan could not read: {}",
                    error.as_str().unwrap_or("?")
                ),
            });
        }
    }
}

/// A kind the scan could not list (for example RBAC forbids it), so findings about it are unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotCovered {
    /// `kind` or `kind.group`, e.g. `Secret` or `InferenceService.serving.kserve.io`.
    pub kind: String,
    pub reason: String,
}

macro_rules! typed_kinds {
    ($($kind:ident => $field:ident),* $(,)?) => {
        /// Every object read, by kind. Kinds Hangar does not type are in `others`.
        #[derive(Debug, Default, Clone)]
        pub struct Snapshot {
            $(pub $field: Vec<Located<$kind>>,)*
            pub others: Vec<Located<DynamicObject>>,
            /// What could not be read, with where.
            pub errors: Vec<LoadError>,
            /// Kinds a live scan could not list.
            pub not_covered: Vec<NotCovered>,
            /// YAML documents in the files that are no Kubernetes object (neither `apiVersion`
            /// nor `kind`), skipped.
            pub not_objects: Vec<Origin>,
            /// What the user should know of how the input was read, though nothing it means
            /// was lost (a Kustomize directory read as its plain resources): printed as notes,
            /// and no gap in the scan.
            pub notes: Vec<String>,
            /// Lists read (`kind: List`, a JSON array), empty ones included: a dump of an empty
            /// namespace holds no object but was read.
            pub lists: usize,
            /// Position of every object by kind, namespace and name; built on first lookup.
            index: OnceLock<Index>,
        }

        /// The typed kinds, each stored in its own list of the snapshot.
        pub trait TypedKind: KubeObject + Sized {
            fn all(snapshot: &Snapshot) -> &[Located<Self>];
        }

        $(impl TypedKind for $kind {
            fn all(snapshot: &Snapshot) -> &[Located<Self>] {
                &snapshot.$field
            }
        })*

        /// One decoded object, typed when Hangar knows its kind.
        // Transient: each object moves into its typed `Vec` right after decoding, so the size
        // of the largest variant costs nothing worth boxing for.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone)]
        pub enum Object {
            $($kind($kind),)*
            Other(DynamicObject),
        }

        $(impl KubeObject for $kind {
            fn kind(&self) -> &str {
                <$kind as Resource>::KIND
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
        })*

        /// The API versions of the kinds Hangar types, as `(apiVersion, kind)`.
        pub const TYPED_KINDS: &[(&str, &str)] = &[
            $((<$kind as Resource>::API_VERSION, <$kind as Resource>::KIND),)*
        ];

        impl Object {
            /// Decodes `value` into the typed object when its `apiVersion` and `kind` are one
            /// Hangar types, and into a `DynamicObject` otherwise.
            fn decode_typed(api_version: &str, kind: &str, value: Value) -> Result<Object, serde_json::Error> {
                $(if kind == <$kind as Resource>::KIND && api_version == <$kind as Resource>::API_VERSION {
                    return serde_json::from_value(value).map(Object::$kind);
                })*
                let metadata = match value.get("metadata") {
                    Some(meta) => <ObjectMeta as serde::Deserialize>::deserialize(meta)?,
                    None => ObjectMeta::default(),
                };
                Ok(Object::Other(DynamicObject {
                    api_version: api_version.to_owned(),
                    kind: kind.to_owned(),
                    metadata,
                    body: value,
                }))
            }

            /// The path of the field (`spec.template.spec.containers[0].ports[0].containerPort`)
            /// that keeps `value` from decoding as its kind, if it names one. Slow (every key is
            /// copied as it is read): only for an object that has already failed.
            fn failing_field_typed(api_version: &str, kind: &str, value: Value) -> Option<String> {
                $(if kind == <$kind as Resource>::KIND && api_version == <$kind as Resource>::API_VERSION {
                    return field_path(serde_path_to_error::deserialize::<_, $kind>(value));
                })*
                let metadata = value.get("metadata")?;
                field_path(serde_path_to_error::deserialize::<_, ObjectMeta>(metadata))
                    .map(|path| format!("metadata.{path}"))
            }

            /// The kind, as the manifest names it.
            pub fn kind(&self) -> &str {
                match self {
                    $(Object::$kind(_) => <$kind as Resource>::KIND,)*
                    Object::Other(o) => &o.kind,
                }
            }

            pub fn meta(&self) -> &ObjectMeta {
                match self {
                    $(Object::$kind(o) => &o.metadata,)*
                    Object::Other(o) => &o.metadata,
                }
            }
        }

        impl Snapshot {
            pub fn insert(&mut self, object: Object, origin: Origin) {
                self.index = OnceLock::new();
                match object {
                    $(Object::$kind(object) => self.$field.push(Located { object, origin }),)*
                    Object::Other(object) if is_scan_gaps(&object) => self.take_gaps(&object, &origin),
                    Object::Other(object) => self.others.push(Located { object, origin }),
                }
            }

            /// Moves every object, error and gap of `parts` into this snapshot, in order, with
            /// one copy per list: typed objects are kilobytes each, and growing the lists one
            /// part at a time would copy them again at every doubling.
            pub fn absorb_all(&mut self, parts: Vec<Snapshot>) {
                $(self.$field.reserve(parts.iter().map(|p| p.$field.len()).sum());)*
                self.others.reserve(parts.iter().map(|p| p.others.len()).sum());
                for part in parts {
                    self.absorb(part);
                }
            }

            /// Moves every object, error and gap of `other` into this snapshot.
            pub fn absorb(&mut self, other: Snapshot) {
                self.index = OnceLock::new();
                $(self.$field.extend(other.$field);)*
                self.others.extend(other.others);
                self.errors.extend(other.errors);
                self.not_covered.extend(other.not_covered);
                self.not_objects.extend(other.not_objects);
                self.notes.extend(other.notes);
                self.lists += other.lists;
            }

            fn build_index(&self) -> Index {
                let mut index = Index::default();
                $(for (i, o) in self.$field.iter().enumerate() {
                    let kind = <$kind as Resource>::KIND;
                    if let Some(earlier) = index.add(kind, o.object.namespace(), o.object.name(), i) {
                        index.duplicates.push(Duplicate { kind, earlier, later: i });
                    }
                })*
                for (i, o) in self.others.iter().enumerate() {
                    let kind = &o.object.kind;
                    let earlier = index.add(&format!("~{kind}"), o.object.namespace(), o.object.name(), i);
                    // `Model` of KubeAI and `Model` of Seldon share a kind, not an identity.
                    if let Some(earlier) = earlier.filter(|e| self.others[*e].object.group() == o.object.group()) {
                        index.duplicates.push(Duplicate { kind: OTHER_KIND, earlier, later: i });
                    }
                }
                index
            }

            /// The origin of the object at `position` in the list of `kind`, whether the two
            /// objects at `a` and `b` are the same, and dropping the objects at `positions`.
            fn duplicate_pair(&self, d: &Duplicate) -> Option<DuplicatePair<'_>> {
                $(if d.kind == <$kind as Resource>::KIND {
                    let (a, b) = (self.$field.get(d.earlier)?, self.$field.get(d.later)?);
                    let same = a.object == b.object;
                    let (earlier, later) = ((&a.object.metadata, &a.origin), (&b.object.metadata, &b.origin));
                    return Some(DuplicatePair { kind: d.kind, earlier, later, same });
                })*
                let (a, b) = (self.others.get(d.earlier)?, self.others.get(d.later)?);
                let same = a.object.body == b.object.body;
                let (earlier, later) = ((&a.object.metadata, &a.origin), (&b.object.metadata, &b.origin));
                Some(DuplicatePair { kind: &a.object.kind, earlier, later, same })
            }

            fn swap_positions(&mut self, kind: &str, a: usize, b: usize) {
                $(if kind == <$kind as Resource>::KIND {
                    return self.$field.swap(a, b);
                })*
                self.others.swap(a, b)
            }

            fn drop_positions(&mut self, kind: &str, positions: &HashSet<usize>) {
                $(if kind == <$kind as Resource>::KIND {
                    return drop_positions(&mut self.$field, positions);
                })*
                drop_positions(&mut self.others, positions)
            }

            /// Calls `f` with the kind and metadata of every object.
            pub fn for_each_object(&self, mut f: impl FnMut(&str, &ObjectMeta)) {
                $(for o in &self.$field { f(<$kind as Resource>::KIND, &o.object.metadata); })*
                for o in &self.others { f(&o.object.kind, &o.object.metadata); }
            }

            /// Keeps what a live scan of `namespace` reads, for `-n` with files: the objects of
            /// other namespaces are left out, and a namespaced object that names none is put in
            /// `namespace`, as `kubectl apply -n` puts it. Cluster-scoped objects (a Node, a
            /// ClusterRole) all stay. A kind Hangar does not type is taken as namespaced unless
            /// its name begins with `Cluster` (`ClusterServingRuntime`) or it is one of
            /// [`CLUSTER_SCOPED_KINDS`].
            pub fn keep_namespace(&mut self, namespace: &str) {
                self.index = OnceLock::new();
                $(if is_namespaced::<$kind>() {
                    self.$field.retain_mut(|o| place_in(&mut o.object.metadata, namespace));
                })*
                self.others.retain_mut(|o| {
                    let object = &mut o.object;
                    if object.kind.starts_with("Cluster")
                        || CLUSTER_SCOPED_KINDS.contains(&object.kind.as_str())
                    {
                        return true;
                    }
                    let kept = place_in(&mut object.metadata, namespace);
                    // Checks read an untyped object's body: it says the same.
                    if kept && let Some(body) = object.body.as_object_mut() {
                        let meta = body.entry("metadata").or_insert_with(|| Value::Object(Default::default()));
                        if let Some(meta) = meta.as_object_mut() {
                            meta.insert("namespace".into(), namespace.into());
                        }
                    }
                    kept
                });
            }

            /// How many objects were read.
            pub fn object_count(&self) -> usize {
                0 $(+ self.$field.len())* + self.others.len()
            }

            /// Every object as JSON, in a stable order, for `--save-snapshot`.
            pub fn to_values(&self) -> Vec<Value> {
                let mut values = Vec::with_capacity(self.object_count());
                $(values.extend(self.$field.iter().filter_map(|o| serde_json::to_value(&o.object).ok()));)*
                values.extend(self.others.iter().map(|o| o.object.body.clone()));
                values
            }
        }
    };
}

/// Cluster-scoped kinds Hangar does not type, whose names do not begin with `Cluster`: the
/// built-in ones, and those of the node provisioners, queues and GPU stacks inference runs on.
const CLUSTER_SCOPED_KINDS: &[&str] = &[
    "APIService",
    "CSIDriver",
    "CSINode",
    "CertificateSigningRequest",
    "CustomResourceDefinition",
    "DeviceClass",
    "FlowSchema",
    "GatewayClass",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "PersistentVolume",
    "PodSecurityPolicy",
    "PriorityClass",
    "PriorityLevelConfiguration",
    "ResourceSlice",
    "RuntimeClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
    "VolumeSnapshotClass",
    // Karpenter and its providers' node classes.
    "NodePool",
    "NodeClaim",
    "EC2NodeClass",
    "AKSNodeClass",
    // Kueue, and Node Feature Discovery.
    "ResourceFlavor",
    "WorkloadPriorityClass",
    "Topology",
    "NodeFeatureRule",
];

fn is_namespaced<K: Resource<Scope: 'static>>() -> bool {
    std::any::TypeId::of::<K::Scope>() == std::any::TypeId::of::<NamespaceResourceScope>()
}

/// Whether an object of `meta` is in `namespace`, putting it there when it names none.
fn place_in(meta: &mut ObjectMeta, namespace: &str) -> bool {
    match meta.namespace.as_deref() {
        Some(named) if !named.is_empty() => named == namespace,
        _ => {
            meta.namespace = Some(namespace.to_owned());
            true
        }
    }
}

fn index_key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}\u{0}{namespace}\u{0}{name}")
}

/// Where each object sits in its list, by name and by namespace.
#[derive(Debug, Default, Clone)]
struct Index {
    by_name: HashMap<String, usize>,
    by_namespace: HashMap<String, Vec<usize>>,
    /// Objects of one kind, namespace and name found twice, in input order.
    duplicates: Vec<Duplicate>,
}

/// The `kind` of a duplicate among the untyped objects.
const OTHER_KIND: &str = "~";

/// Two objects with the same kind, namespace and name, at these positions of their list.
#[derive(Debug, Clone)]
struct Duplicate {
    /// The typed kind, or `OTHER_KIND`.
    kind: &'static str,
    earlier: usize,
    later: usize,
}

impl Index {
    /// Indexes the object at `position`; a nameless one only by namespace. Returns the position
    /// of an earlier object of the same name, which the index now forgets: Kubernetes keeps the
    /// last object applied.
    fn add(&mut self, kind: &str, namespace: &str, name: &str, position: usize) -> Option<usize> {
        self.by_namespace
            .entry(index_key(kind, namespace, ""))
            .or_default()
            .push(position);
        if name.is_empty() {
            return None;
        }
        self.by_name
            .insert(index_key(kind, namespace, name), position)
    }
}

/// Two objects of one kind, namespace and name, each with where it was read.
struct DuplicatePair<'s> {
    kind: &'s str,
    earlier: (&'s ObjectMeta, &'s Origin),
    later: (&'s ObjectMeta, &'s Origin),
    /// The two are identical.
    same: bool,
}

/// Which of two copies of one live object is the newer.
#[derive(Debug, PartialEq)]
enum Newer {
    Earlier,
    Later,
}

impl DuplicatePair<'_> {
    /// `Some` when the two are one live object at two times (the same `uid`, from two captures
    /// of a cluster, with different `resourceVersion`s), with the newer: the larger
    /// `resourceVersion` (etcd's revisions are numbers, though Kubernetes promises nothing of
    /// their form; when either is not one, the later copy, as with manifests). `None` for
    /// anything else, copies of one version included.
    fn newer(&self) -> Option<Newer> {
        let (earlier, later) = (self.earlier.0, self.later.0);
        if earlier.uid.is_none() || earlier.uid != later.uid {
            return None;
        }
        if earlier.resource_version == later.resource_version {
            return None;
        }
        match earlier_is_newer(earlier, later) {
            true => Some(Newer::Earlier),
            false => Some(Newer::Later),
        }
    }
}

/// Whether `earlier`, read before `later`, is the newer copy of one live object and so the
/// one to keep: the same `uid` and a larger `resourceVersion` (etcd's revisions are numbers,
/// though Kubernetes promises nothing of their form; when either is not one, `later` is kept).
pub fn earlier_is_newer(earlier: &ObjectMeta, later: &ObjectMeta) -> bool {
    if earlier.uid.is_none() || earlier.uid != later.uid {
        return false;
    }
    let version = |meta: &ObjectMeta| meta.resource_version.as_deref()?.parse::<u64>().ok();
    matches!((version(earlier), version(later)), (Some(e), Some(l)) if e > l)
}

fn drop_positions<T>(list: &mut Vec<T>, positions: &HashSet<usize>) {
    let mut position = 0;
    list.retain(|_| {
        position += 1;
        !positions.contains(&(position - 1))
    });
}

impl Snapshot {
    /// Keeps one object of each kind, namespace and name: the last in the input, as applying
    /// the manifests in order would. Copies that differ are errors naming both places, so the
    /// scan says it is incomplete; identical copies (the same Namespace in every app's
    /// manifests) lose nothing and are dropped quietly. Copies of one live object (the same
    /// `uid`, from two captures of a cluster) are no conflict: the newer is kept, quietly.
    pub fn resolve_duplicates(&mut self) {
        let duplicates = self.index().duplicates.clone();
        if duplicates.is_empty() {
            return;
        }
        let mut dropped: HashMap<&'static str, HashSet<usize>> = HashMap::new();
        for duplicate in &duplicates {
            let Some(pair) = self.duplicate_pair(duplicate) else {
                continue;
            };
            let newer = pair.newer();
            let DuplicatePair {
                kind,
                earlier: (meta, earlier),
                later: (_, later),
                same,
            } = pair;
            if newer == Some(Newer::Earlier) {
                // The later position keeps the newer copy; the earlier one is dropped below, and
                // a third copy is then compared with the newer of these two.
                self.swap_positions(duplicate.kind, duplicate.earlier, duplicate.later);
            } else if newer.is_none() && !same {
                let namespace = meta.namespace.as_deref().unwrap_or_default();
                let name = meta.name.as_deref().unwrap_or_default();
                let object = if namespace.is_empty() {
                    format!("{kind} {name}")
                } else {
                    format!("{kind} {namespace}/{name}")
                };
                let error = LoadError {
                    origin: earlier.clone(),
                    object: Some(object),
                    message: format!(
                        "defined again at {later}, differently; Kubernetes keeps the last one applied, so this copy is not read"
                    ),
                };
                self.errors.push(error);
            }
            dropped
                .entry(duplicate.kind)
                .or_default()
                .insert(duplicate.earlier);
        }
        for (kind, positions) in &dropped {
            self.drop_positions(kind, positions);
        }
        self.index = OnceLock::new();
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| self.build_index())
    }

    fn position(&self, kind: &str, namespace: &str, name: &str) -> Option<usize> {
        self.index()
            .by_name
            .get(&index_key(kind, namespace, name))
            .copied()
    }

    /// The typed objects of kind `T` in one namespace.
    pub fn in_namespace<'s, T: TypedKind + Resource + 's>(
        &'s self,
        namespace: &str,
    ) -> impl Iterator<Item = &'s Located<T>> + use<'s, T> {
        let positions = self
            .index()
            .by_namespace
            .get(&index_key(T::KIND, namespace, ""))
            .map_or(&[][..], Vec::as_slice);
        positions.iter().filter_map(|i| T::all(self).get(*i))
    }

    /// The typed object of kind `T` with this namespace (empty for cluster-scoped) and name.
    pub fn find<T: TypedKind + Resource>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<&Located<T>> {
        self.position(T::KIND, namespace, name)
            .and_then(|i| T::all(self).get(i))
    }

    /// The object of an untyped kind (`HTTPRoute`, `ServingRuntime`…) with this namespace and name.
    pub fn find_other(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<&Located<DynamicObject>> {
        self.position(&format!("~{kind}"), namespace, name)
            .and_then(|i| self.others.get(i))
    }

    /// The object an `ObjectRef` names, among the untyped kinds.
    pub fn find_other_ref(&self, object: &ObjectRef) -> Option<&Located<DynamicObject>> {
        self.find_other(&object.kind, &object.namespace, &object.name)
    }
}

typed_kinds! {
    Namespace => namespaces,
    Node => nodes,
    Deployment => deployments,
    StatefulSet => stateful_sets,
    DaemonSet => daemon_sets,
    ReplicaSet => replica_sets,
    Pod => pods,
    Job => jobs,
    CronJob => cron_jobs,
    Service => services,
    Ingress => ingresses,
    NetworkPolicy => network_policies,
    ConfigMap => config_maps,
    Secret => secrets,
    ServiceAccount => service_accounts,
    Role => roles,
    ClusterRole => cluster_roles,
    RoleBinding => role_bindings,
    ClusterRoleBinding => cluster_role_bindings,
    ResourceQuota => resource_quotas,
    PersistentVolumeClaim => persistent_volume_claims,
    StorageClass => storage_classes,
}

impl Object {
    /// Decodes one Kubernetes object from its JSON form.
    ///
    /// Secret values never enter Hangar: `data` and `stringData` are replaced by their keys, so a
    /// saved snapshot or a report cannot leak them.
    pub fn decode(value: Value) -> Result<Object, String> {
        Object::decode_or_explain(value, || None)
    }

    /// As [`Object::decode`]; when the object does not decode, `again` gives it once more (read
    /// again from its source) so that the error can name the field at fault, which decoding at
    /// full speed does not track.
    pub fn decode_or_explain(
        mut value: Value,
        again: impl FnOnce() -> Option<Value>,
    ) -> Result<Object, String> {
        let (api_version, kind) = prepare(&mut value)?;
        Object::decode_typed(&api_version, &kind, value).map_err(|error| {
            let field = again().and_then(|mut value| {
                prepare(&mut value).ok()?;
                Object::failing_field_typed(&api_version, &kind, value)
            });
            match field {
                Some(field) => format!("{kind}: `{field}`: {error}"),
                None => format!("{kind}: {error}"),
            }
        })
    }
}

/// The object's `apiVersion` and kind, with a Secret's values already dropped.
fn prepare(value: &mut Value) -> Result<(String, String), String> {
    let Some(map) = value.as_object_mut() else {
        return Err(
            "not a Kubernetes object: expected a mapping with `apiVersion` and `kind`".into(),
        );
    };
    let kind = match map.get("kind") {
        Some(Value::String(kind)) if !kind.is_empty() => kind.clone(),
        Some(_) => return Err("`kind` must be a non-empty string".into()),
        None => return Err("object has no `kind`".into()),
    };
    let api_version = match map.get("apiVersion") {
        Some(Value::String(v)) if !v.is_empty() => v.clone(),
        Some(_) => return Err(format!("{kind}: `apiVersion` must be a non-empty string")),
        None => return Err(format!("{kind}: object has no `apiVersion`")),
    };
    if kind == "Secret" {
        redact_secret_values(map);
    }
    Ok((api_version, kind))
}

/// The path at which decoding failed, unless it is the object itself.
fn field_path<T>(
    decoded: Result<T, serde_path_to_error::Error<serde_json::Error>>,
) -> Option<String> {
    let path = decoded.err()?.path().to_string();
    (path != ".").then_some(path)
}

fn redact_secret_values(secret: &mut serde_json::Map<String, Value>) {
    // `kubectl apply` keeps the whole manifest, values included, in this annotation.
    if let Some(Value::Object(annotations)) = secret
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
    {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    for field in ["data", "stringData"] {
        match secret.get_mut(field) {
            Some(Value::Object(entries)) => {
                for value in entries.values_mut() {
                    *value = Value::String(String::new());
                }
            }
            // Not a mapping: the decoding error would quote it. An empty text fails the same way.
            Some(value) if !value.is_null() => *value = Value::String(String::new()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::parse::parse_text;

    fn snapshot(yaml: &str) -> Snapshot {
        let file: Arc<str> = Arc::from("test.yaml");
        let mut snapshot = Snapshot::default();
        for (object, origin) in parse_text(&file, yaml).objects {
            snapshot.insert(object, origin);
        }
        snapshot
    }

    fn names(snapshot: &Snapshot) -> Vec<String> {
        let mut names = Vec::new();
        snapshot.for_each_object(|kind, meta| {
            let namespace = meta.namespace.as_deref().unwrap_or("-");
            let name = meta.name.as_deref().unwrap_or_default();
            names.push(format!("{kind} {namespace}/{name}"));
        });
        names
    }

    #[test]
    fn keeping_a_namespace_reads_the_files_as_a_live_scan_of_it_would() {
        let mut read = snapshot(
            "apiVersion: v1\nkind: Service\nmetadata: {name: in-ml, namespace: ml}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {name: elsewhere, namespace: web}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {name: unplaced}\n---\n\
             apiVersion: v1\nkind: Node\nmetadata: {name: gpu-1}\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: reader}\n---\n\
             apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: llama}\n---\n\
             apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: other, namespace: web}\n---\n\
             apiVersion: serving.kserve.io/v1alpha1\nkind: ClusterServingRuntime\nmetadata: {name: vllm}\n---\n\
             apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata: {name: gpu}\n",
        );
        read.keep_namespace("ml");
        assert_eq!(
            names(&read),
            [
                "Node -/gpu-1",
                "Service ml/in-ml",
                "Service ml/unplaced",
                "ClusterRole -/reader",
                "InferenceService ml/llama",
                "ClusterServingRuntime -/vllm",
                "NodePool -/gpu",
            ]
        );
        // An untyped object's body, which checks read, is placed too.
        let llama = read
            .others
            .iter()
            .find(|o| o.object.kind == "InferenceService");
        assert_eq!(
            llama.map(|o| &o.object.body["metadata"]["namespace"]),
            Some(&Value::from("ml"))
        );
    }
}
