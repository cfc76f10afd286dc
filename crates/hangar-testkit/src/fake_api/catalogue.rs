//! What the fake API server serves: the resources it advertises in discovery and the objects it
//! holds, with the lookups the routes need.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

/// A resource the fake server advertises, built in or custom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomResource {
    /// The API group, empty for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    /// The plural resource name used in paths, e.g. `inferenceservices`.
    pub plural: String,
    pub namespaced: bool,
}

impl CustomResource {
    pub fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        CustomResource {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            namespaced,
        }
    }

    pub fn group_version(&self) -> String {
        group_version(&self.group, &self.version)
    }

    /// `plural` for the core group, `plural.group` otherwise: how RBAC and `forbid` name it.
    pub fn qualified_name(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

pub(crate) fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

/// `(group, version)` of an `apiVersion` such as `apps/v1` or `v1`.
pub(crate) fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

/// The resources every Kubernetes API server serves, as `(group, version, kind, plural,
/// namespaced)`: advertised even when no object of the kind exists, as a real server does.
const BUILT_IN: &[(&str, &str, &str, &str, bool)] = &[
    ("", "v1", "Namespace", "namespaces", false),
    ("", "v1", "Node", "nodes", false),
    ("", "v1", "PersistentVolume", "persistentvolumes", false),
    ("", "v1", "Pod", "pods", true),
    ("", "v1", "Service", "services", true),
    ("", "v1", "Endpoints", "endpoints", true),
    ("", "v1", "Event", "events", true),
    ("", "v1", "ConfigMap", "configmaps", true),
    ("", "v1", "Secret", "secrets", true),
    ("", "v1", "ServiceAccount", "serviceaccounts", true),
    ("", "v1", "ResourceQuota", "resourcequotas", true),
    (
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
    ),
    ("apps", "v1", "Deployment", "deployments", true),
    ("apps", "v1", "StatefulSet", "statefulsets", true),
    ("apps", "v1", "DaemonSet", "daemonsets", true),
    ("apps", "v1", "ReplicaSet", "replicasets", true),
    ("batch", "v1", "Job", "jobs", true),
    ("batch", "v1", "CronJob", "cronjobs", true),
    ("networking.k8s.io", "v1", "Ingress", "ingresses", true),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
    ),
    (
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        false,
    ),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    (
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        false,
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
];

/// Everything the server serves. Built once by the builder, then read-only.
#[derive(Debug, Default)]
pub(crate) struct Catalogue {
    pub resources: Vec<CustomResource>,
    pub objects: Vec<Value>,
    /// HTTP status codes to answer instead of the resource, by `CustomResource::qualified_name`.
    pub denied: BTreeMap<String, u16>,
    /// The one namespace where reads of a resource are allowed, by
    /// `CustomResource::qualified_name`: 403 everywhere else, cluster scope included.
    pub confined: BTreeMap<String, String>,
    /// Answer 401 to every request, as a server does to an expired or unknown token.
    pub reject_credentials: bool,
    /// Container logs by `(namespace, pod, container, previous)`.
    pub logs: BTreeMap<(String, String, String, bool), Vec<u8>>,
    /// HTTP status codes to answer instead of the logs of a pod, by `(namespace, pod)`.
    pub failing_logs: BTreeMap<(String, String), u16>,
    /// The same, only for reads without `limitBytes`.
    pub failing_uncapped_logs: BTreeMap<(String, String), u16>,
    /// How many more continue tokens to answer as expired, by `CustomResource::qualified_name`:
    /// the only state that changes while serving.
    pub expiring: BTreeMap<String, AtomicUsize>,
}

impl Catalogue {
    pub fn new(
        custom: Vec<CustomResource>,
        objects: Vec<Value>,
        denied: BTreeMap<String, u16>,
    ) -> Self {
        let mut resources: Vec<CustomResource> = BUILT_IN
            .iter()
            .map(|(g, v, k, p, n)| CustomResource::new(g, v, k, p, *n))
            .collect();
        for resource in custom {
            add_resource(&mut resources, resource);
        }
        for object in &objects {
            if let Some(inferred) = infer_resource(object) {
                add_resource(&mut resources, inferred);
            }
        }
        Catalogue {
            resources,
            objects,
            denied,
            confined: BTreeMap::new(),
            reject_credentials: false,
            logs: BTreeMap::new(),
            failing_logs: BTreeMap::new(),
            failing_uncapped_logs: BTreeMap::new(),
            expiring: BTreeMap::new(),
        }
    }

    /// A name given to `forbid`, `fail`, `confine` or `expire_continue_tokens` that matches no
    /// resource is a mistake in the test, which would otherwise pass without exercising the
    /// refusal.
    pub fn check_denied_names(&self) -> std::io::Result<()> {
        let names = (self.denied.keys())
            .chain(self.confined.keys())
            .chain(self.expiring.keys());
        for name in names {
            if name == "pods/log" {
                continue;
            }
            if !self.resources.iter().any(|r| r.qualified_name() == *name) {
                let hint: Vec<String> = self
                    .resources
                    .iter()
                    .filter(|r| r.plural == *name)
                    .map(CustomResource::qualified_name)
                    .collect();
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("no resource is named `{name}` (did you mean {hint:?}?)"),
                ));
            }
        }
        Ok(())
    }

    /// Whether to answer a continue token of `resource` as expired; counts the answer.
    pub fn expire_continue_token(&self, resource: &CustomResource) -> bool {
        self.expiring
            .get(&resource.qualified_name())
            .is_some_and(|left| {
                left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            })
    }

    pub fn resource(&self, group: &str, version: &str, plural: &str) -> Option<&CustomResource> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    pub fn resources_in(&self, group: &str, version: &str) -> Vec<&CustomResource> {
        self.resources
            .iter()
            .filter(|r| r.group == group && r.version == version)
            .collect()
    }

    /// Every API group but the core one, each with its versions, most preferred first.
    pub fn groups(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for r in self.resources.iter().filter(|r| !r.group.is_empty()) {
            let versions = groups.entry(&r.group).or_default();
            if !versions.contains(&r.version.as_str()) {
                versions.push(&r.version);
            }
        }
        for versions in groups.values_mut() {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        groups
    }

    /// The objects of `resource`, in `namespace` when given, sorted as the API server sorts
    /// them (namespace, then name). Objects of any version of the group are served.
    pub fn objects_of(&self, resource: &CustomResource, namespace: Option<&str>) -> Vec<&Value> {
        let mut found: Vec<&Value> = self
            .objects
            .iter()
            .filter(|o| {
                let api_version = str_at(o, "/apiVersion");
                split_api_version(api_version).0 == resource.group
                    && str_at(o, "/kind") == resource.kind
                    && namespace.is_none_or(|ns| str_at(o, "/metadata/namespace") == ns)
            })
            .collect();
        found.sort_by_key(|o| {
            (
                str_at(o, "/metadata/namespace"),
                str_at(o, "/metadata/name"),
            )
        });
        found
    }
}

pub(crate) fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn add_resource(resources: &mut Vec<CustomResource>, resource: CustomResource) {
    let known = resources.iter().any(|r| {
        r.group == resource.group && r.version == resource.version && r.kind == resource.kind
    });
    if !known {
        resources.push(resource);
    }
}

/// The resource an object of an undeclared kind belongs to: plural guessed from the kind,
/// namespaced when the object has a namespace.
fn infer_resource(object: &Value) -> Option<CustomResource> {
    let (group, version) = split_api_version(str_at(object, "/apiVersion"));
    let kind = str_at(object, "/kind");
    if version.is_empty() || kind.is_empty() {
        return None;
    }
    let namespaced = !str_at(object, "/metadata/namespace").is_empty();
    Some(CustomResource::new(
        group,
        version,
        kind,
        &plural_of(kind),
        namespaced,
    ))
}

/// The plural Kubernetes derives for a kind: `InferenceService` → `inferenceservices`,
/// `NetworkPolicy` → `networkpolicies`.
pub fn plural_of(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if let Some(stem) = lower.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        return format!("{stem}ies");
    }
    if lower.ends_with('s') || lower.ends_with('x') || lower.ends_with("ch") {
        return format!("{lower}es");
    }
    format!("{lower}s")
}

/// Kubernetes version priority: GA before beta before alpha, higher numbers first.
fn version_priority(version: &str) -> (u8, u32, u32) {
    let Some(rest) = version.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let Ok(major) = digits.parse::<u32>() else {
        return (0, 0, 0);
    };
    let suffix = &rest[digits.len()..];
    let (stage, minor) = if suffix.is_empty() {
        (3, "0")
    } else if let Some(n) = suffix.strip_prefix("beta") {
        (2, n)
    } else if let Some(n) = suffix.strip_prefix("alpha") {
        (1, n)
    } else {
        return (0, 0, 0);
    };
    (stage, major, minor.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusing_an_unknown_resource_is_a_mistake_named_with_a_hint() {
        let denied = BTreeMap::from([("clusterroles".to_owned(), 403)]);
        let error = Catalogue::new(Vec::new(), Vec::new(), denied)
            .check_denied_names()
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("clusterroles.rbac.authorization.k8s.io"),
            "{error}"
        );
    }

    #[test]
    fn plurals_follow_kubernetes() {
        assert_eq!(plural_of("InferenceService"), "inferenceservices");
        assert_eq!(plural_of("NetworkPolicy"), "networkpolicies");
        assert_eq!(plural_of("Gateway"), "gateways");
        assert_eq!(plural_of("Ingress"), "ingresses");
    }

    #[test]
    fn versions_sort_ga_then_beta_then_alpha() {
        let mut versions = vec!["v1alpha1", "v1", "v1beta1", "v2beta1", "v2"];
        versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(versions, ["v2", "v1", "v2beta1", "v1beta1", "v1alpha1"]);
    }
}
