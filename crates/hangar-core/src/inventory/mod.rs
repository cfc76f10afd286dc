//! Discovery: which objects are AI inference endpoints, why, and what surrounds each one.

mod exposure;
mod gateway;
mod model;
mod runtime;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use k8s_openapi::api::core::v1::{Container, Namespace};
use serde::Serialize;

pub use exposure::{Auth, AuthKind, Exposure, ExposureKind};
pub use gateway::{GatewayFront, GatewayNotRead, LimitsPerReplica};
pub use model::{MODEL_LABEL, MODEL_VERSION_LABEL, Model};
pub use runtime::{Runtime, runtime_from_command, runtime_from_image};

use crate::object::{ObjectRef, Origin};
use crate::policy::{DATA_SCOPE_LABEL, DataScope, Policy};
use crate::rbac::{Access, Objects, RbacIndex, Subject, WRITE_VERBS, plural};
use crate::snapshot::{DynamicObject, KubeObject, Located, Snapshot};
use crate::workload::{PodTemplate, Workload, custom_resource_templates, workloads};

/// One piece of evidence that an object serves a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// What kind of signal matched: `crd`, `image`, `command`, `accelerator`, `port`, `probe`,
    /// `env`, `owner`.
    pub signal: &'static str,
    /// What matched, e.g. `vllm/vllm-openai:v0.8.5`.
    pub detail: String,
    /// Where, as a field path in the object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Reason {
    fn new(signal: &'static str, detail: impl Into<String>, field: Option<String>) -> Reason {
        Reason {
            signal,
            detail: detail.into(),
            field,
        }
    }
}

/// Accelerator requests and where the pods may land.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Placement {
    /// Accelerator resources requested or limited, as `resource=quantity`.
    pub accelerators: Vec<String>,
    pub tolerations: Vec<String>,
    pub node_selector: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_class: Option<String>,
    /// Nodes in the snapshot the pods could be scheduled on (selector and taints only);
    /// `None` when the snapshot holds no nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eligible_nodes: Option<Arc<Vec<String>>>,
}

/// How the endpoint logs inference traffic, and for how long.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Logging {
    /// The setting that makes the server log prompts or responses, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_logging: Option<String>,
    /// Declared retention in days (`hangar.dev/log-retention`, or the `audit.retentionDays` of
    /// a Hangar gateway nothing can walk around).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Where the retention was declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_source: Option<String>,
}

/// A principal that may change the endpoint, and the binding that lets it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Deployer {
    pub subject: Subject,
    pub via: String,
}

/// An AI inference endpoint: the object that declares it, the pods that serve it, and what
/// surrounds it.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    /// `Kind/namespace/name` of the declaring object.
    pub id: String,
    #[serde(flatten)]
    pub object: ObjectRef,
    #[serde(flatten)]
    pub origin: Origin,
    pub runtime: Runtime,
    /// Every signal that made this an endpoint.
    pub reasons: Vec<Reason>,
    pub model: Model,
    /// Objects that run the endpoint's pods (the declaring object included).
    pub workloads: Vec<ObjectRef>,
    /// The running pods in the input that serve this endpoint (through their owners or an
    /// operator's label), for triage and cost. Empty for manifests.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<ObjectRef>,
    pub exposure: Vec<Exposure>,
    /// The container ports the model server's API listens on, from its flags and variables or
    /// its image's defaults (for a NIM, whose family its image does not tell, each family's);
    /// empty when they cannot be told (a server whose ports are not known, a port taken from a
    /// Secret or perhaps from `envFrom`, a configuration file, a shell command). Mesh policies
    /// are matched against these and the container ports its exposures reach, less those on
    /// which the server serves only metrics (Triton's 8002).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub serving_ports: Vec<i32>,
    /// Authentication in front of every route (the server's own key, a sidecar, a mesh policy).
    pub auth: Vec<Auth>,
    /// Hangar gateways whose configuration routes to one of its Services.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<GatewayFront>,
    pub logging: Logging,
    pub placement: Placement,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_scope: Option<DataScope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Who may create, change or delete it, or exec into its pods.
    pub deployers: Vec<Deployer>,
    /// The pods as declared, for the checks.
    #[serde(skip)]
    pub templates: Vec<PodTemplate>,
    #[serde(skip)]
    pub labels: BTreeMap<String, String>,
    #[serde(skip)]
    pub annotations: BTreeMap<String, String>,
}

impl Endpoint {
    pub fn namespace(&self) -> &str {
        &self.object.namespace
    }

    /// Every container of every pod template, with its field path and owner.
    pub fn containers(&self) -> impl Iterator<Item = (&PodTemplate, String, &Container)> {
        self.templates
            .iter()
            .flat_map(|t| t.containers().map(move |(path, c)| (t, path, c)))
    }

    pub fn is_externally_exposed(&self) -> bool {
        self.exposure.iter().any(|e| e.external)
    }

    /// A label or annotation on the declaring object or any of its pod templates.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .get(key)
            .or_else(|| self.templates.iter().find_map(|t| t.labels.get(key)))
            .map(String::as_str)
    }
}

/// The endpoints found in a snapshot.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Inventory {
    pub endpoints: Vec<Endpoint>,
    /// Workloads that request accelerators but are not endpoints, and why (training, notebooks…).
    pub other_accelerator_workloads: Vec<NotAnEndpoint>,
    /// Workloads running the Hangar gateway whose configuration could not be read, and why.
    pub gateways_not_read: Vec<GatewayNotRead>,
    /// Every workload no other workload controls, endpoint or not (see `workload::workloads`),
    /// read once for the checks that look at all of them.
    #[serde(skip)]
    pub workloads: Vec<Workload>,
}

/// A workload that looked like inference but is not, and why.
#[derive(Debug, Clone, Serialize)]
pub struct NotAnEndpoint {
    #[serde(flatten)]
    pub object: ObjectRef,
    pub why: String,
}

/// Custom resources that are inference endpoints in their own right.
const ENDPOINT_KINDS: &[(&str, &str, Runtime)] = &[
    ("serving.kserve.io", "InferenceService", Runtime::Kserve),
    ("serving.kserve.io", "LLMInferenceService", Runtime::Kserve),
    (
        "machinelearning.seldon.io",
        "SeldonDeployment",
        Runtime::Seldon,
    ),
    ("mlops.seldon.io", "Model", Runtime::Seldon),
    ("ray.io", "RayService", Runtime::Rayserve),
    ("apps.nvidia.com", "NIMService", Runtime::Nim),
    ("kaito.sh", "Workspace", Runtime::Kaito),
    ("kubeai.org", "Model", Runtime::Kubeai),
];

/// Labels the serving operators put on the workloads they create, naming the custom resource.
/// Not KubeRay's `ray.io/serve`, a "true"/"false" flag: its pods belong to the RayService through
/// their RayCluster's owner.
const OPERATOR_LABELS: &[(&str, &str)] = &[
    ("serving.kserve.io/inferenceservice", "InferenceService"),
    ("seldon-deployment-id", "SeldonDeployment"),
    ("kaito.sh/workspace", "Workspace"),
];

pub fn endpoint_kind(object: &DynamicObject) -> Option<Runtime> {
    ENDPOINT_KINDS
        .iter()
        .find(|(group, kind, _)| object.group() == *group && object.kind == *kind)
        .map(|(_, _, runtime)| *runtime)
}

/// The server container of the ServingRuntime a KServe InferenceService names, and the runtime
/// as `ServingRuntime NAME`: KServe merges it with the predictor's own fields, so its arguments
/// and variables apply to the endpoint.
pub fn serving_runtime_container(
    snapshot: &Snapshot,
    endpoint: &Endpoint,
) -> Option<(String, Container)> {
    if endpoint.object.kind != "InferenceService" {
        return None;
    }
    let isvc = &snapshot.find_other_ref(&endpoint.object)?.object;
    let name = isvc.str_at("spec.predictor.model.runtime")?;
    let runtime = snapshot
        .find_other("ServingRuntime", isvc.namespace(), name)
        .or_else(|| snapshot.find_other("ClusterServingRuntime", "", name))?;
    let container =
        serde_json::from_value(runtime.object.get("spec.containers")?.get(0)?.clone()).ok()?;
    Some((format!("{} {name}", runtime.object.kind), container))
}

/// Finds every inference endpoint in `snapshot`.
pub fn discover(snapshot: &Snapshot, policy: &Policy) -> Inventory {
    let mut context = Context::new(snapshot, policy);
    let mut inventory = Inventory::default();
    let mut by_ref: HashMap<ObjectRef, usize> = HashMap::new();

    for cr in &snapshot.others {
        if let Some(runtime) = endpoint_kind(&cr.object) {
            let endpoint = context.custom_resource_endpoint(cr, runtime);
            by_ref.insert(endpoint.object.clone(), inventory.endpoints.len());
            inventory.endpoints.push(endpoint);
        }
    }

    let workloads = workloads(snapshot);
    (context.gateways, inventory.gateways_not_read) = gateway::find(snapshot, &workloads);
    let roots = context.roots(&workloads);
    let mut groups: BTreeMap<ObjectRef, Vec<&Workload>> = BTreeMap::new();
    for (workload, root) in workloads.iter().zip(roots) {
        groups.entry(root).or_default().push(workload);
    }
    for (root, members) in groups {
        if let Some(&index) = by_ref.get(&root) {
            // Pods an operator created for a custom resource: the CR's endpoint.
            let endpoint = &mut inventory.endpoints[index];
            for w in members {
                endpoint.workloads.push(w.object_ref().clone());
                if endpoint
                    .templates
                    .iter()
                    .all(|t| t.owner != *w.object_ref())
                {
                    endpoint.templates.push(w.template.clone());
                }
            }
            continue;
        }
        // The root's own template speaks for the group (a Deployment, not its ReplicaSets).
        let lead = members
            .iter()
            .find(|w| *w.object_ref() == root)
            .unwrap_or(&members[0]);
        match classify(lead) {
            Classification::Endpoint(runtime, reasons) => {
                let refs = members.iter().map(|w| w.object_ref().clone()).collect();
                inventory
                    .endpoints
                    .push(context.workload_endpoint(lead, runtime, reasons, refs));
            }
            Classification::NotAnEndpoint(why) => inventory
                .other_accelerator_workloads
                .push(NotAnEndpoint { object: root, why }),
            Classification::Ordinary => {}
        }
    }
    context.attach_pods(&mut inventory.endpoints);
    inventory
        .endpoints
        .par_iter_mut()
        .for_each(|endpoint| context.describe(endpoint, &workloads));
    inventory.workloads = workloads;
    inventory.endpoints.sort_by(|a, b| {
        a.object
            .namespace
            .cmp(&b.object.namespace)
            .then(a.object.name.cmp(&b.object.name))
            .then(a.object.kind.cmp(&b.object.kind))
    });
    inventory
}

enum Classification {
    Endpoint(Runtime, Vec<Reason>),
    NotAnEndpoint(String),
    Ordinary,
}

/// Decides whether a workload serves a model, combining signals: a model server's image or
/// command is enough; an accelerator request needs a serving hint beside it (port, probe, env).
fn classify(workload: &Workload) -> Classification {
    let template = &workload.template;
    let mut reasons = Vec::new();
    let mut runtime = None;
    let mut hints = 0;
    let mut command_lines = String::new();
    for (path, c) in template.containers() {
        let image = c.image.as_deref().unwrap_or_default();
        if let Some(r) = runtime_from_image(image) {
            runtime.get_or_insert(r);
            reasons.push(Reason::new("image", image, Some(format!("{path}.image"))));
        }
        let line = command_line(c);
        if let Some((fragment, r)) = runtime_from_command(&line) {
            runtime.get_or_insert(r);
            reasons.push(Reason::new(
                "command",
                fragment,
                Some(format!("{path}.command")),
            ));
        }
        command_lines.push_str(&line);
        command_lines.push(' ');
        for port in c.ports.iter().flatten() {
            if let Some((_, what)) = runtime::SERVING_PORTS
                .iter()
                .find(|(p, _)| *p == port.container_port)
            {
                hints += 1;
                reasons.push(Reason::new(
                    "port",
                    format!("{} ({what})", port.container_port),
                    Some(format!("{path}.ports")),
                ));
            }
        }
        for probe in [&c.readiness_probe, &c.liveness_probe, &c.startup_probe]
            .into_iter()
            .flatten()
        {
            let Some(probe_path) = probe.http_get.as_ref().and_then(|h| h.path.as_deref()) else {
                continue;
            };
            if runtime::SERVING_PROBE_PATHS.contains(&probe_path) {
                hints += 1;
                reasons.push(Reason::new(
                    "probe",
                    probe_path,
                    Some(format!("{path}.readinessProbe")),
                ));
                break;
            }
        }
        if let Some(env) = c.env.iter().flatten().find(|e| {
            runtime::SERVING_ENV_PREFIXES
                .iter()
                .any(|p| e.name.starts_with(p))
        }) {
            hints += 1;
            reasons.push(Reason::new("env", &env.name, Some(format!("{path}.env"))));
        }
    }
    let accelerators = accelerator_requests(template);
    for a in &accelerators {
        reasons.push(Reason::new(
            "accelerator",
            a,
            Some(format!("{}.containers[].resources", template.spec_path)),
        ));
    }
    let image_text = template
        .containers()
        .map(|(_, c)| c.image.clone().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" ");
    if workload.runs_to_completion {
        return exclusion(
            runtime.is_some() || !accelerators.is_empty(),
            "runs to completion: a batch or training job, not a server",
        );
    }
    if runtime.is_none()
        && (image_text.contains("jupyter")
            || image_text.contains("notebook")
            || template.labels.contains_key("notebook-name"))
    {
        return exclusion(!accelerators.is_empty(), "a notebook");
    }
    if runtime.is_none() && command_lines.contains("nvidia-smi") {
        return exclusion(true, "a GPU test pod (nvidia-smi)");
    }
    if runtime.is_none() && (command_lines.contains("torchrun") || command_lines.contains("train"))
    {
        return exclusion(!accelerators.is_empty(), "a training workload");
    }
    match runtime {
        Some(r) => Classification::Endpoint(r, reasons),
        None if !accelerators.is_empty() && hints > 0 => Classification::Endpoint(Runtime::Other, reasons),
        None if !accelerators.is_empty() => Classification::NotAnEndpoint("requests accelerators but shows no sign of serving a model (no server image, command, port, probe or env)".into()),
        None => Classification::Ordinary,
    }
}

fn exclusion(worth_listing: bool, why: &str) -> Classification {
    if worth_listing {
        Classification::NotAnEndpoint(why.into())
    } else {
        Classification::Ordinary
    }
}

/// A container's command and args as one line, for matching.
pub fn command_line(c: &Container) -> String {
    c.command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Extended resources that are accelerators.
pub fn is_accelerator(resource: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "nvidia.com/gpu",
        "nvidia.com/mig-",
        "amd.com/gpu",
        "gpu.intel.com/",
        "habana.ai/gaudi",
        "aws.amazon.com/neuron",
        "google.com/tpu",
    ];
    PREFIXES.iter().any(|p| resource.starts_with(p))
}

/// The accelerators a pod template requests or limits, as `resource=quantity`.
pub fn accelerator_requests(template: &PodTemplate) -> Vec<String> {
    let mut out = Vec::new();
    for (_, c) in template.containers() {
        let Some(resources) = &c.resources else {
            continue;
        };
        for map in [&resources.limits, &resources.requests]
            .into_iter()
            .flatten()
        {
            // Most entries are cpu and memory: name the entry only for an accelerator.
            for (name, quantity) in map {
                if !is_accelerator(name) || quantity.0 == "0" {
                    continue;
                }
                let entry = format!("{name}={}", quantity.0);
                if !out.contains(&entry) {
                    out.push(entry);
                }
            }
        }
    }
    if template
        .spec
        .resource_claims
        .as_ref()
        .is_some_and(|c| !c.is_empty())
    {
        out.push("dra-resource-claim".into());
    }
    out
}

/// Indexes over the snapshot that discovery and description share.
struct Context<'a> {
    snapshot: &'a Snapshot,
    policy: &'a Policy,
    namespaces: HashMap<&'a str, &'a Namespace>,
    /// Controller owner of each object, by the object's identity.
    owners: HashMap<ObjectRef, ObjectRef>,
    rbac: RbacIndex<'a>,
    exposure: exposure::ExposureIndex<'a>,
    /// Hangar gateways in the snapshot, found once the workloads are known.
    gateways: Vec<gateway::HangarGateway>,
    /// Eligible nodes by placement (see `eligible_nodes`).
    eligible: Mutex<HashMap<String, Arc<Vec<String>>>>,
}

impl<'a> Context<'a> {
    fn new(snapshot: &'a Snapshot, policy: &'a Policy) -> Self {
        let namespaces = snapshot
            .namespaces
            .iter()
            .map(|n| (n.object.name(), &n.object))
            .collect();
        let mut owners = HashMap::new();
        let mut record = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
                          me: ObjectRef| {
            let owner = meta
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .or_else(|| meta.owner_references.as_ref().and_then(|o| o.first()));
            if let Some(owner) = owner {
                owners.insert(
                    me.clone(),
                    ObjectRef::new(owner.kind.clone(), me.namespace.clone(), owner.name.clone()),
                );
            }
        };
        macro_rules! record_all {
            ($($field:ident),*) => {$(for o in &snapshot.$field { record(&o.object.metadata, o.object_ref()); })*};
        }
        record_all!(
            deployments,
            stateful_sets,
            daemon_sets,
            replica_sets,
            pods,
            jobs,
            cron_jobs
        );
        for o in &snapshot.others {
            record(&o.object.metadata, o.object_ref());
        }
        Context {
            snapshot,
            policy,
            namespaces,
            owners,
            rbac: RbacIndex::new(snapshot),
            exposure: exposure::ExposureIndex::new(snapshot),
            gateways: Vec::new(),
            eligible: Mutex::new(HashMap::new()),
        }
    }

    /// A namespace's labels, with the name label Kubernetes gives every namespace.
    fn namespace_labels(&self, name: &str) -> BTreeMap<String, String> {
        let mut labels = self
            .namespaces
            .get(name)
            .and_then(|n| n.metadata.labels.clone())
            .unwrap_or_default();
        labels.insert(gateway::NAMESPACE_NAME_LABEL.to_owned(), name.to_owned());
        labels
    }

    /// The object each workload ultimately belongs to: its top controller, or the custom
    /// resource an operator label names.
    fn roots(&self, workloads: &[Workload]) -> Vec<ObjectRef> {
        workloads
            .iter()
            .map(|w| {
                let labels = w.meta.labels.as_ref();
                self.root(w.object_ref(), [labels, Some(&w.template.labels)])
            })
            .collect()
    }

    /// The object `me` ultimately belongs to, given its labels (and its template's).
    fn root(&self, me: &ObjectRef, labels: [Option<&BTreeMap<String, String>>; 2]) -> ObjectRef {
        for (label, kind) in OPERATOR_LABELS {
            if let Some(name) = labels.iter().flatten().find_map(|l| l.get(*label)) {
                return ObjectRef::new(*kind, me.namespace.clone(), name.clone());
            }
        }
        let mut root = me.clone();
        // Ownership chains are short (Pod → ReplicaSet → Deployment → CR); cap them against
        // cycles in hand-written input.
        for _ in 0..8 {
            match self.owners.get(&root) {
                Some(owner) => root = owner.clone(),
                None => break,
            }
        }
        root
    }

    /// Records on each endpoint the pods that serve it.
    fn attach_pods(&self, endpoints: &mut [Endpoint]) {
        let mut by_member: HashMap<&ObjectRef, usize> = HashMap::new();
        for (index, endpoint) in endpoints.iter().enumerate() {
            by_member.insert(&endpoint.object, index);
            for w in &endpoint.workloads {
                by_member.insert(w, index);
            }
        }
        let mut pods: Vec<(usize, ObjectRef)> = Vec::new();
        for pod in &self.snapshot.pods {
            let me = pod.object_ref();
            let root = self.root(&me, [pod.object.metadata.labels.as_ref(), None]);
            if let Some(&index) = by_member.get(&root).or_else(|| by_member.get(&me)) {
                pods.push((index, me));
            }
        }
        for (index, pod) in pods {
            endpoints[index].pods.push(pod);
        }
    }

    fn custom_resource_endpoint(&self, cr: &Located<DynamicObject>, runtime: Runtime) -> Endpoint {
        let object = &cr.object;
        let mut reasons = vec![Reason::new(
            "crd",
            format!("{} ({})", object.kind, object.api_version),
            None,
        )];
        let templates = custom_resource_templates(object, &cr.origin);
        let mut runtime = runtime;
        // A KServe predictor names its runtime or model format; report the server underneath.
        if runtime == Runtime::Kserve
            && let Some(r) = self.kserve_runtime(object)
        {
            reasons.push(Reason::new(
                "runtime",
                r.as_str(),
                Some("spec.predictor.model".into()),
            ));
            runtime = r;
        }
        let mut endpoint = new_endpoint(
            object.object_ref(),
            cr.origin.clone(),
            runtime,
            reasons,
            templates,
            &object.metadata,
        );
        endpoint.model = model::from_custom_resource(object);
        endpoint.workloads.push(endpoint.object.clone());
        endpoint
    }

    /// The server behind a KServe predictor: its ServingRuntime's image, or its model format.
    /// The API key a KServe ServingRuntime's container is started with: KServe merges that
    /// container with the predictor's, so its `--api-key` guards the InferenceService too.
    fn serving_runtime_key(&self, endpoint: &Endpoint) -> Option<exposure::Auth> {
        let (runtime, container) = serving_runtime_container(self.snapshot, endpoint)?;
        let how = exposure::server_api_key(endpoint.runtime, &container)?;
        let scope = if endpoint.runtime == Runtime::Vllm {
            " (guards /v1 routes only)"
        } else {
            ""
        };
        Some(exposure::Auth::new(
            exposure::AuthKind::ServerApiKey,
            format!("server API key{scope}: {how} ({runtime} spec.containers[0])"),
        ))
    }

    fn kserve_runtime(&self, isvc: &DynamicObject) -> Option<Runtime> {
        if let Some(name) = isvc.str_at("spec.predictor.model.runtime") {
            let runtime = self
                .snapshot
                .find_other("ServingRuntime", isvc.namespace(), name)
                .or_else(|| self.snapshot.find_other("ClusterServingRuntime", "", name));
            let image = runtime.and_then(|r| {
                r.object
                    .get("spec.containers")?
                    .get(0)?
                    .get("image")?
                    .as_str()
            });
            if let Some(r) = image.and_then(runtime_from_image) {
                return Some(r);
            }
        }
        let format = isvc.str_at("spec.predictor.model.modelFormat.name")?;
        match format.to_ascii_lowercase().as_str() {
            "huggingface" | "vllm" => Some(Runtime::Vllm),
            "triton" | "onnx" | "tensorrt" => Some(Runtime::Triton),
            "pytorch" => Some(Runtime::Torchserve),
            "tensorflow" => Some(Runtime::Tfserving),
            _ => None,
        }
    }

    fn workload_endpoint(
        &self,
        lead: &Workload,
        runtime: Runtime,
        reasons: Vec<Reason>,
        refs: Vec<ObjectRef>,
    ) -> Endpoint {
        let object = lead.object_ref().clone();
        let meta = &lead.meta;
        let mut endpoint = new_endpoint(
            object,
            lead.template.origin.clone(),
            runtime,
            reasons,
            vec![lead.template.clone()],
            meta,
        );
        endpoint.model = model::from_templates(&endpoint.templates, runtime, &endpoint.labels);
        endpoint.workloads = refs;
        endpoint
    }

    /// Fills in what surrounds an endpoint: exposure, auth, logging, placement, scope, owners.
    /// `workloads` are every workload of the snapshot.
    fn describe(&self, endpoint: &mut Endpoint, workloads: &[Workload]) {
        // First: the mesh policies read in `for_endpoint` are matched against these ports and
        // those of the exposures it finds.
        endpoint.serving_ports = serving_ports(endpoint);
        let (exposure, mut auth) = self.exposure.for_endpoint(endpoint);
        auth.extend(self.serving_runtime_key(endpoint));
        let namespace_labels = |name: &str| self.namespace_labels(name);
        let gateways = gateway::fronts(
            self.snapshot,
            &self.gateways,
            &namespace_labels,
            endpoint,
            &exposure,
            workloads,
        );
        auth.extend(gateway::auth(&gateways));
        endpoint.exposure = exposure;
        endpoint.auth = auth;
        endpoint.gateways = gateways;
        endpoint.logging = self.logging(endpoint);
        endpoint.placement = self.placement(endpoint);
        let namespace = self.namespaces.get(endpoint.namespace()).copied();
        let ns_label = |key: &str| namespace.and_then(|n| n.label(key)).map(str::to_owned);
        endpoint.data_scope = endpoint
            .label(DATA_SCOPE_LABEL)
            .map(str::to_owned)
            .or_else(|| ns_label(DATA_SCOPE_LABEL))
            .and_then(|s| DataScope::parse(&s))
            .or(self.policy.default_data_scope);
        endpoint.team = self.policy.team_labels.iter().find_map(|key| {
            endpoint
                .label(key)
                .map(str::to_owned)
                .or_else(|| ns_label(key))
        });
        endpoint.deployers = self.deployers(endpoint);
    }

    fn logging(&self, endpoint: &Endpoint) -> Logging {
        let mut logging = Logging::default();
        for (_, path, c) in endpoint.containers() {
            let line = command_line(c);
            let env = |name: &str| {
                c.env
                    .iter()
                    .flatten()
                    .find(|e| e.name == name)
                    .and_then(|e| e.value.as_deref())
            };
            let has_flag = |flag: &str| {
                line.split_whitespace()
                    .any(|t| t == flag || t.starts_with(&format!("{flag}=")))
            };
            let found = if has_flag("--enable-log-requests") {
                Some("--enable-log-requests".to_owned())
            } else if has_flag("--enable-log-outputs") {
                Some("--enable-log-outputs".to_owned())
            } else if env("OLLAMA_DEBUG").is_some_and(|v| v != "0" && v != "false") {
                Some("OLLAMA_DEBUG".to_owned())
            } else if env("VLLM_LOGGING_LEVEL") == Some("DEBUG") {
                Some("VLLM_LOGGING_LEVEL=DEBUG".to_owned())
            } else if endpoint.runtime == Runtime::Vllm && !has_flag("--disable-log-requests") {
                c.image
                    .as_deref()
                    .filter(|i| logs_requests_by_default(i))
                    .map(|i| {
                        format!("{i} logs every request by default (no --disable-log-requests)")
                    })
            } else {
                None
            };
            if let Some(setting) = found {
                logging.request_logging = Some(format!("{setting} ({path})"));
            }
        }
        let namespace = self.namespaces.get(endpoint.namespace());
        let declared = endpoint
            .annotations
            .get(RETENTION_ANNOTATION)
            .map(|v| (v.clone(), endpoint.id.clone()))
            .or_else(|| {
                namespace
                    .and_then(|n| n.annotation(RETENTION_ANNOTATION))
                    .map(|v| (v.to_owned(), format!("Namespace/{}", endpoint.namespace())))
            });
        if let Some((value, source)) = declared {
            logging.retention_days = parse_days(&value);
            logging.retention_source = Some(source);
        } else if let Some((days, source)) = gateway::audit_retention(&endpoint.gateways) {
            logging.retention_days = Some(days);
            logging.retention_source = Some(source);
        }
        logging
    }

    fn placement(&self, endpoint: &Endpoint) -> Placement {
        let mut placement = Placement::default();
        for t in &endpoint.templates {
            for a in accelerator_requests(t) {
                if !placement.accelerators.contains(&a) {
                    placement.accelerators.push(a);
                }
            }
            for tol in t.spec.tolerations.iter().flatten() {
                let text = match (&tol.key, &tol.operator) {
                    (None, Some(op)) if op == "Exists" => "*(tolerates everything)".to_owned(),
                    (None, _) => format!(
                        "={}:{}",
                        tol.value.as_deref().unwrap_or_default(),
                        tol.effect.as_deref().unwrap_or("*")
                    ),
                    (Some(key), Some(op)) if op == "Exists" => {
                        format!("{key}:{}", tol.effect.as_deref().unwrap_or("*"))
                    }
                    (Some(key), _) => format!(
                        "{key}={}:{}",
                        tol.value.as_deref().unwrap_or_default(),
                        tol.effect.as_deref().unwrap_or("*")
                    ),
                };
                if !placement.tolerations.contains(&text) {
                    placement.tolerations.push(text);
                }
            }
            placement
                .node_selector
                .extend(t.spec.node_selector.clone().unwrap_or_default());
            placement.runtime_class = placement
                .runtime_class
                .take()
                .or_else(|| t.spec.runtime_class_name.clone());
        }
        if !self.snapshot.nodes.is_empty() {
            placement.eligible_nodes = Some(self.eligible_nodes(endpoint));
        }
        placement
    }

    /// The nodes any of the endpoint's pods may land on. Pods with the same placement land on
    /// the same nodes, so the answer is computed once per placement.
    fn eligible_nodes(&self, endpoint: &Endpoint) -> Arc<Vec<String>> {
        let keys: Vec<String> = endpoint
            .templates
            .iter()
            .map(crate::nodes::placement_key)
            .collect();
        let cache_key = keys.join("\u{0}");
        if let Some(nodes) = self
            .eligible
            .lock()
            .ok()
            .and_then(|cache| cache.get(&cache_key).cloned())
        {
            return nodes;
        }
        let nodes: Arc<Vec<String>> = Arc::new(
            self.snapshot
                .nodes
                .iter()
                .filter(|n| {
                    endpoint
                        .templates
                        .iter()
                        .any(|t| crate::nodes::can_schedule(t, &n.object))
                })
                .map(|n| n.object.name().to_owned())
                .collect(),
        );
        if let Ok(mut cache) = self.eligible.lock() {
            cache.insert(cache_key, nodes.clone());
        }
        nodes
    }

    fn deployers(&self, endpoint: &Endpoint) -> Vec<Deployer> {
        let group = self.snapshot.find_other_ref(&endpoint.object).map_or_else(
            || group_of(&endpoint.object.kind).to_owned(),
            |o| o.object.group().to_owned(),
        );
        let resource = plural(&endpoint.object.kind);
        let namespace = endpoint.namespace();
        let mut grants = self.rbac.who_can(Access {
            verbs: WRITE_VERBS,
            group: &group,
            resource: &resource,
            namespace,
            objects: Objects::Named(&endpoint.object.name),
        });
        // The pods' names are made up as they start: a rule naming pods may name these.
        grants.extend(self.rbac.who_can(Access {
            verbs: &["create", "*"],
            group: "",
            resource: "pods/exec",
            namespace,
            objects: Objects::Any,
        }));
        let mut deployers: Vec<Deployer> = grants
            .into_iter()
            .filter(|(s, _)| !s.is_system())
            .map(|(subject, via)| Deployer { subject, via })
            .collect();
        deployers.dedup_by(|a, b| a.subject == b.subject);
        deployers
    }
}

/// The containers that run the endpoint's model server (by image or command), over every
/// template. The container an operator builds from a custom resource's inline fields is left
/// out: the operator, not the image, may choose its ports.
fn server_containers(endpoint: &Endpoint) -> impl Iterator<Item = &Container> {
    let runtime = endpoint.runtime;
    let runs_server = move |c: &&Container| {
        c.image.as_deref().and_then(runtime_from_image) == Some(runtime)
            || runtime_from_command(&command_line(c)).is_some_and(|(_, r)| r == runtime)
    };
    (endpoint.templates.iter())
        .flat_map(|template| {
            let skip = usize::from(template.inline_container_path.is_some());
            template.spec.containers.iter().skip(skip)
        })
        .filter(runs_server)
}

/// The ports the endpoint's model server listens on for its API, over every container that runs
/// it (see `server_containers`); empty when none does or one's ports cannot be read.
fn serving_ports(endpoint: &Endpoint) -> Vec<i32> {
    let mut ports = Vec::new();
    for c in server_containers(endpoint) {
        let Some(found) = runtime::api_ports(endpoint.runtime, c) else {
            return Vec::new();
        };
        for port in found {
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
    }
    ports
}

/// The ports on which the endpoint's model server serves only metrics (Triton's 8002), over
/// every container that runs it (see `server_containers`): requests to its API do not arrive
/// there. A port that cannot be told is not among them.
fn metrics_ports(endpoint: &Endpoint) -> Vec<i32> {
    let mut ports = Vec::new();
    for c in server_containers(endpoint) {
        if let Some(port) = runtime::metrics_port(endpoint.runtime, c)
            && !ports.contains(&port)
        {
            ports.push(port);
        }
    }
    ports
}

/// vLLM logged every request, prompt included, unless `--disable-log-requests` was given, until
/// the default flipped in the 0.10 series (vllm-project/vllm#21739). Only tags clearly older
/// than 0.10 are claimed.
fn logs_requests_by_default(image: &str) -> bool {
    let tag = crate::image::ImageRef::parse(image).tag.unwrap_or_default();
    let mut parts = tag.trim_start_matches('v').split('.');
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    matches!((major, minor), (Some(0), Some(minor)) if minor < 10)
}

/// The annotation that declares how long an endpoint's (or a namespace's) logs are kept.
pub const RETENTION_ANNOTATION: &str = "hangar.dev/log-retention";

/// Reads a retention such as `400d`, `13mo`, `1y`, `12 months` or `90` (days).
pub fn parse_days(value: &str) -> Option<u32> {
    let value = value.trim().to_ascii_lowercase();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u32 = number.parse().ok()?;
    let factor = match unit.trim() {
        "" | "d" | "day" | "days" => 1,
        "w" | "week" | "weeks" => 7,
        // A month is a twelfth of a year, so that `12mo` is the 365 days PCI DSS 10.5.1 means.
        "mo" | "month" | "months" => return number.checked_mul(365).map(|d| d.div_ceil(12)),
        "y" | "year" | "years" => 365,
        _ => return None,
    };
    number.checked_mul(factor)
}

fn group_of(kind: &str) -> &'static str {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => "apps",
        "Job" | "CronJob" => "batch",
        "LeaderWorkerSet" => "leaderworkerset.x-k8s.io",
        _ => "",
    }
}

/// An endpoint with its identity and reasons; `describe` fills in the rest.
fn new_endpoint(
    object: ObjectRef,
    origin: Origin,
    runtime: Runtime,
    reasons: Vec<Reason>,
    templates: Vec<PodTemplate>,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Endpoint {
    Endpoint {
        id: object.to_string(),
        object,
        origin,
        runtime,
        reasons,
        model: Model::default(),
        workloads: Vec::new(),
        pods: Vec::new(),
        exposure: Vec::new(),
        serving_ports: Vec::new(),
        auth: Vec::new(),
        gateways: Vec::new(),
        logging: Logging::default(),
        placement: Placement::default(),
        data_scope: None,
        team: None,
        deployers: Vec::new(),
        templates,
        labels: meta.labels.clone().unwrap_or_default(),
        annotations: meta.annotations.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests;
