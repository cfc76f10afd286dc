//! What a runbook needs to know about one endpoint, read once from the endpoint and the snapshot:
//! the serving container and its flags, its pods and replicas, its GPUs, and how to reach it.

use std::collections::BTreeMap;

use hangar_core::image::ImageRef;
use hangar_core::inventory::{
    ExposureKind, command_line, runtime_from_command, runtime_from_image,
};
use hangar_core::snapshot::{DynamicObject, KubeObject, Located};
use hangar_core::workload::PodTemplate;
use hangar_core::{Endpoint, Runtime, Snapshot};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, Namespace, Node, Probe, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::text::{code, sh_quote};

/// Everything the sections of a runbook read, computed once.
pub(super) struct Facts<'a> {
    pub endpoint: &'a Endpoint,
    pub snapshot: &'a Snapshot,
    pub namespace: Option<&'a Namespace>,
    /// The container that runs the model server, when it can be told.
    pub server: Option<Server>,
    /// `kubectl -l` selector for the pods that serve traffic, quoted for `sh`.
    pub selector: Option<String>,
    pub replicas: Option<Replicas>,
    pub gpus: Option<Gpus>,
    /// Pods per LeaderWorkerSet group, when the endpoint is one and the size is usable.
    pub group_size: Option<u32>,
    /// The Flagger Canary that manages the Deployment: its traffic goes to `NAME-primary`.
    pub canary: Option<String>,
    /// How to reach the server from a laptop: a port-forward and the base URL it gives.
    pub route: Option<Route>,
    /// Where the API key the server demands comes from, if it demands one.
    pub api_key: Option<ApiKey>,
}

impl<'a> Facts<'a> {
    pub fn new(endpoint: &'a Endpoint, snapshot: &'a Snapshot) -> Facts<'a> {
        let namespace = snapshot
            .find::<Namespace>("", endpoint.namespace())
            .map(|n| &n.object);
        let server = serving_container(endpoint, snapshot);
        let canary = (endpoint.object.kind == "Deployment")
            .then(|| referrer(snapshot, endpoint, "Canary", "spec.targetRef.name"))
            .flatten()
            .map(|c| c.object.name().to_owned());
        let route = server
            .as_ref()
            .and_then(|s| route(endpoint, snapshot, s, canary.is_some()));
        let api_key = server.as_ref().and_then(|s| api_key(endpoint.runtime, s));
        let selector = selector(endpoint, snapshot, canary.is_some());
        Facts {
            endpoint,
            snapshot,
            namespace,
            selector: selector.map(|s| sh_quote(&s)),
            replicas: replicas(endpoint, snapshot),
            gpus: gpus(endpoint, snapshot),
            group_size: group_size(endpoint, snapshot),
            canary,
            server,
            route,
            api_key,
        }
    }

    pub fn ns(&self) -> &str {
        self.endpoint.namespace()
    }

    pub fn name(&self) -> &str {
        &self.endpoint.object.name
    }

    pub fn kind(&self) -> &str {
        &self.endpoint.object.kind
    }

    /// `namespace/name`, or the name alone when the manifest sets no namespace.
    pub fn display_name(&self) -> String {
        if self.ns().is_empty() {
            self.name().to_owned()
        } else {
            format!("{}/{}", self.ns(), self.name())
        }
    }

    /// `Namespace/NS` in prose, or what stands for it when none is set.
    pub fn namespace_ref(&self) -> String {
        if self.ns().is_empty() {
            "its namespace".into()
        } else {
            format!("Namespace/{}", self.ns())
        }
    }

    /// `kubectl -n NS`, the prefix of every command; plain `kubectl` without a namespace.
    pub fn kubectl(&self) -> String {
        kubectl_in(self.ns())
    }

    /// ` -n NS` for other tools' commands, or nothing without a namespace.
    pub fn ns_flag(&self) -> String {
        ns_flag(self.ns())
    }

    /// Declared as a plain workload (the pods' spec is the input's), not through an operator.
    pub fn is_workload(&self) -> bool {
        matches!(
            self.kind(),
            "Deployment" | "StatefulSet" | "DaemonSet" | "Pod"
        )
    }

    /// A KServe InferenceService in raw (plain Deployment) mode rather than Knative.
    pub fn kserve_raw(&self) -> bool {
        self.kind() == "InferenceService" && kserve_raw(self.custom_resource())
    }

    /// The base URL `hangar validate` and OpenAI clients take, through the port-forward.
    pub fn openai_url(&self) -> Option<String> {
        let route = self.route.as_ref()?;
        let prefix = self.server.as_ref().map_or("", |s| s.openai_prefix);
        Some(format!("{}{prefix}", route.base_url()))
    }

    /// The declaring custom resource, for kinds Hangar does not type.
    pub fn custom_resource(&self) -> Option<&'a DynamicObject> {
        self.snapshot
            .find_other_ref(&self.endpoint.object)
            .map(|o| &o.object)
    }

    /// Every value of `key` anywhere in a RayService's `serveConfigV2`, in document order.
    pub fn serve_config(&self, key: &str) -> Vec<String> {
        let Some(text) = self
            .custom_resource()
            .and_then(|o| o.str_at("spec.serveConfigV2"))
        else {
            return Vec::new();
        };
        let Ok(config) = serde_saphyr::from_str::<Value>(text) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        collect_values(&config, key, &mut out);
        out
    }

    /// The short resource name kubectl accepts for the declaring object, e.g. `deploy/NAME`,
    /// quoted for `sh` as one word.
    pub fn resource(&self) -> String {
        let short = match self.kind() {
            "Deployment" => "deploy",
            "StatefulSet" => "sts",
            "DaemonSet" => "ds",
            "Pod" => "pod",
            "InferenceService" => "isvc",
            "LeaderWorkerSet" => "lws",
            "NIMService" => "nimservice",
            "RayService" => "rayservice",
            other => {
                return sh_quote(&format!("{}/{}", other.to_ascii_lowercase(), self.name()));
            }
        };
        sh_quote(&format!("{short}/{}", self.name()))
    }

    /// The workload whose pods serve traffic: the Flagger primary when a Canary manages it.
    /// Quoted for `sh`.
    pub fn serving_resource(&self) -> String {
        match &self.canary {
            Some(_) => sh_quote(&format!("deploy/{}-primary", self.name())),
            None => self.resource(),
        }
    }

    /// A target for `kubectl exec` in the server's pod, quoted for `sh`: the workload itself, or
    /// for kinds kubectl cannot attach to (an InferenceService, a LeaderWorkerSet), the first pod
    /// the server's selector finds; a RayService's Ray pod of the server's kind
    /// (`ray_exec_target`). `None` when there is no such selector.
    pub fn exec_target(&self) -> Option<String> {
        if self.is_workload() {
            return Some(self.serving_resource());
        }
        if self.kind() == "RayService" {
            return self.ray_exec_target();
        }
        let selector = self.server_pods_selector()?;
        Some(self.first_pod(&selector))
    }

    /// The Ray pod that runs the server's container. A selector the head and worker templates
    /// share may find a worker first (`…-gpu-worker-…` sorts before `…-head-…`), and the
    /// RayCluster's name is generated, so the head is reached through `ray_head`; a worker's
    /// container, on a pod KubeRay labels `ray.io/node-type=worker`.
    fn ray_exec_target(&self) -> Option<String> {
        let on_head = self
            .server
            .as_ref()
            .is_none_or(|s| s.path.contains(".headGroupSpec."));
        if on_head {
            return Some(self.ray_head());
        }
        let selector = self.server_pods_selector()?;
        Some(self.first_pod(&format!("{selector},{RAY_NODE_TYPE}=worker")))
    }

    /// A RayService's head pod for `kubectl exec`, as one `sh` word: KubeRay's head Service
    /// (`ray_head_service`), which follows the active Ray cluster, when it exists; else the head
    /// pod of the Ray cluster the RayService's status names, the active one or else the pending
    /// one. KubeRay 1.2 and later create the Service only once Serve runs, so a first deploy whose
    /// applications fail has none. A label cannot find that pod alone: `ray.io/node-type=head`
    /// finds every Ray cluster's head, and KubeRay writes `ray.io/originated-from-cr-name` on the
    /// RayCluster, not on its pods; `ray.io/cluster` names the cluster itself.
    pub fn ray_head(&self) -> String {
        let k = self.kubectl();
        let service = sh_quote(&format!("svc/{}", self.ray_head_service()));
        let cluster = format!(
            "{k} get {} -o jsonpath='{RAYSERVICE_CLUSTERS}' | awk '{{print $1}}'",
            self.resource()
        );
        format!(
            "\"$({{ {k} get {service} -o name --ignore-not-found; {k} get pod -l \"{RAY_NODE_TYPE}=head,{RAY_CLUSTER}=$({cluster})\" -o name; }} | head -1)\""
        )
    }

    /// The name of a RayService's head Service. KubeRay up to 1.3 passes `NAME-head-svc` through
    /// `CheckName` (`kuberay_check_name`); from 1.4 it keeps it whole, and refuses RayService
    /// names over 47 characters or not starting with a letter. The two disagree only on names of
    /// 42 to 47 characters: `CheckName`'s, unless the input holds the Service under the whole
    /// name alone.
    fn ray_head_service(&self) -> String {
        let whole = format!("{}-head-svc", self.name());
        let checked = kuberay_check_name(&whole);
        let held = |name: &str| self.snapshot.find::<Service>(self.ns(), name).is_some();
        if checked != whole && held(&whole) && !held(&checked) {
            return whole;
        }
        checked
    }

    /// The first pod `selector` (quoted for `sh`) finds, as one word for `kubectl exec`.
    fn first_pod(&self, selector: &str) -> String {
        format!(
            "\"$({} get pod -l {selector} -o name | head -1)\"",
            self.kubectl()
        )
    }

    /// A selector for the pod that runs the server: a LeaderWorkerSet's leaders only, since the
    /// workers run another container.
    pub fn server_pods_selector(&self) -> Option<String> {
        let selector = self.selector.as_ref()?;
        let leader = self.kind() == "LeaderWorkerSet"
            && self
                .server
                .as_ref()
                .is_some_and(|s| s.path.contains("leaderTemplate"));
        Some(if leader {
            format!("{selector},{LWS_WORKER_INDEX}=0")
        } else {
            selector.clone()
        })
    }

    /// GPUs the server can use: one pod's, or a LeaderWorkerSet group's.
    pub fn gpus_available(&self) -> Option<u64> {
        let per_pod = u64::from(self.gpus.as_ref()?.per_pod);
        Some(per_pod.saturating_mul(u64::from(self.group_size.unwrap_or(1))))
    }

    /// The most accelerators of this kind one eligible node offers, when the nodes are known.
    pub fn gpus_per_node(&self) -> Option<u64> {
        let resource = &self.gpus.as_ref()?.resource;
        let eligible = self.endpoint.placement.eligible_nodes.as_ref()?;
        eligible
            .iter()
            .filter_map(|name| self.snapshot.find::<Node>("", name))
            .filter_map(|n| {
                let allocatable = n.object.status.as_ref()?.allocatable.as_ref()?;
                allocatable.get(resource)?.0.parse::<u64>().ok()
            })
            .max()
    }

    /// A label or annotation on the declaring object or one of its pod templates.
    pub fn meta_value(&self, key: &str) -> Option<&'a str> {
        let endpoint = self.endpoint;
        endpoint
            .annotations
            .get(key)
            .or_else(|| endpoint.labels.get(key))
            .or_else(|| {
                endpoint
                    .templates
                    .iter()
                    .find_map(|t| t.annotations.get(key).or_else(|| t.labels.get(key)))
            })
            .map(String::as_str)
    }

    /// Where the weights come from. The server's own model flag wins over an inventory source with
    /// no `/` in it, which is a misread command (`python -m sglang.launch_server`), not a model.
    pub fn model_source(&self) -> Option<String> {
        let inventory = self.endpoint.model.source.clone();
        if inventory.as_deref().is_some_and(|s| s.contains('/')) {
            return inventory;
        }
        self.server
            .as_ref()
            .and_then(|s| s.flag(&["--model-path", "--model", "--model-id"]))
            .or(inventory)
    }

    /// An init container that copies the weights in before the server starts, and from where.
    pub fn weights_sync(&self) -> Option<(String, String)> {
        const SCHEMES: &[&str] = &[
            "s3://", "gs://", "az://", "hf://", "oci://", "https://", "pvc://",
        ];
        self.endpoint.templates.iter().find_map(|t| {
            t.spec.init_containers.iter().flatten().find_map(|c| {
                command_line(c).split_whitespace().find_map(|word| {
                    let value = word.split_once('=').map_or(word, |(_, v)| v);
                    SCHEMES
                        .iter()
                        .any(|s| value.starts_with(s))
                        .then(|| (c.name.clone(), value.to_owned()))
                })
            })
        })
    }

    /// The eligible nodes that have the accelerator the pods ask for.
    pub fn gpu_nodes(&self) -> Option<Vec<&'a str>> {
        let eligible = self.endpoint.placement.eligible_nodes.as_ref()?;
        let resource = self.gpus.as_ref().map(|g| g.resource.as_str());
        Some(
            eligible
                .iter()
                .filter(|name| {
                    let Some(resource) = resource else {
                        return true;
                    };
                    self.snapshot.find::<Node>("", name).is_none_or(|n| {
                        n.object
                            .status
                            .as_ref()
                            .and_then(|s| s.allocatable.as_ref())
                            .is_some_and(|a| a.contains_key(resource))
                    })
                })
                .map(String::as_str)
                .collect(),
        )
    }

    /// The largest allocatable memory among the nodes the pods may land on.
    pub fn node_memory(&self) -> Option<u64> {
        let eligible = self.endpoint.placement.eligible_nodes.as_ref()?;
        eligible
            .iter()
            .filter_map(|name| self.snapshot.find::<Node>("", name))
            .filter_map(|n| {
                let allocatable = n.object.status.as_ref()?.allocatable.as_ref()?;
                bytes(&allocatable.get("memory")?.0)
            })
            .max()
    }
}

/// Whether an InferenceService runs in raw (plain Deployment) mode.
fn kserve_raw(isvc: Option<&DynamicObject>) -> bool {
    isvc.is_some_and(|o| {
        matches!(
            o.annotation("serving.kserve.io/deploymentMode"),
            Some("RawDeployment" | "Standard")
        )
    })
}

/// The label LeaderWorkerSet gives each pod of a group: `0` is the leader.
const LWS_WORKER_INDEX: &str = "leaderworkerset.sigs.k8s.io/worker-index";

/// The label KubeRay gives each Ray pod: `head` or `worker`.
const RAY_NODE_TYPE: &str = "ray.io/node-type";

/// The label KubeRay gives each Ray pod: the name of its RayCluster.
const RAY_CLUSTER: &str = "ray.io/cluster";

/// A RayService's Ray clusters, as a kubectl jsonpath: the active one's name, a space, the
/// pending one's. The first word is the active cluster, or the pending one before any is active.
const RAYSERVICE_CLUSTERS: &str =
    "{.status.activeServiceStatus.rayClusterName} {.status.pendingServiceStatus.rayClusterName}";

/// The longest name KubeRay's `CheckName` keeps.
const KUBERAY_NAME_MAX: usize = 50;

/// A name as KubeRay's `CheckName` (`ray-operator/controllers/ray/utils/util.go`) makes it: its
/// last 50 bytes, the first one replaced by `r` when it is a digit or punctuation (in a
/// Kubernetes name, `-` or `.`).
fn kuberay_check_name(name: &str) -> String {
    let mut start = name.len().saturating_sub(KUBERAY_NAME_MAX);
    while !name.is_char_boundary(start) {
        start += 1;
    }
    let kept = &name[start..];
    let mut chars = kept.chars();
    match chars.next() {
        Some(first) if first.is_ascii_digit() || first.is_ascii_punctuation() => {
            format!("r{}", chars.as_str())
        }
        _ => kept.to_owned(),
    }
}

/// `TYPE NAME…` for a kubectl command, each name quoted; `TYPE/NAME…` when a name starts with
/// `-`, which kubectl would otherwise take for an option.
pub(super) fn kube_objects(short: &str, names: &[&str]) -> String {
    if names.iter().any(|n| n.starts_with('-')) {
        let refs: Vec<String> = names
            .iter()
            .map(|n| sh_quote(&format!("{short}/{n}")))
            .collect();
        return refs.join(" ");
    }
    let quoted: Vec<String> = names.iter().map(|n| sh_quote(n)).collect();
    format!("{short} {}", quoted.join(" "))
}

/// `kubectl -n NS`, or plain `kubectl` when no namespace is set.
pub(super) fn kubectl_in(ns: &str) -> String {
    format!("kubectl{}", ns_flag(ns))
}

/// ` -n NS`, or nothing when no namespace is set.
pub(super) fn ns_flag(ns: &str) -> String {
    if ns.is_empty() {
        String::new()
    } else {
        format!(" -n {}", sh_quote(ns))
    }
}

/// Scalars under `key` at any depth, as text.
fn collect_values(value: &Value, key: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == key {
                    match v {
                        Value::String(s) => out.push(s.clone()),
                        Value::Number(n) => out.push(n.to_string()),
                        Value::Bool(b) => out.push(b.to_string()),
                        _ => {}
                    }
                }
                collect_values(v, key, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_values(item, key, out);
            }
        }
        _ => {}
    }
}

/// The model server's container: its image, command line, environment, ports and resources.
pub(super) struct Server {
    pub container: String,
    /// Field path of the container in the declaring object.
    pub path: String,
    pub image: String,
    /// The server's own arguments: the words after the program that starts it.
    words: Vec<String>,
    env: Vec<EnvVar>,
    /// Container ports, with their names.
    pub ports: Vec<(Option<String>, i32)>,
    pub memory_limit: Option<u64>,
    /// The memory limit as written, when one is set that Hangar cannot use (`20000000Ti`).
    pub unusable_memory_limit: Option<String>,
    pub memory_request: Option<u64>,
    pub cpu_request: Option<String>,
    /// Memory-backed emptyDir volumes the container mounts (`/dev/shm`…) and their size limits:
    /// they are charged to the container's memory.
    pub memory_volumes: Vec<(String, Option<u64>)>,
    pub startup_probe: Option<ProbeInfo>,
    pub readiness_probe: Option<ProbeInfo>,
    pub liveness_probe: Option<ProbeInfo>,
    /// Where the OpenAI routes sit below the root: `/openai` on KServe's own model server.
    pub openai_prefix: &'static str,
}

/// A probe as the kubelet runs it.
pub(super) struct ProbeInfo {
    /// `GET /health`, `TCP 8000` or `exec`.
    pub action: String,
    pub period: i32,
    pub failures: i32,
    pub initial_delay: i32,
}

/// The longest probe budget taken at face value: a week. Beyond it the numbers are a mistake.
const MAX_PROBE_BUDGET: i64 = 7 * 24 * 3600;

impl ProbeInfo {
    fn new(probe: &Probe) -> ProbeInfo {
        let action = if let Some(get) = &probe.http_get {
            format!("GET {}", get.path.as_deref().unwrap_or("/"))
        } else if let Some(tcp) = &probe.tcp_socket {
            format!("TCP {}", port_text(&tcp.port))
        } else if probe.grpc.is_some() {
            "gRPC".into()
        } else {
            "exec".into()
        };
        ProbeInfo {
            action,
            period: probe.period_seconds.unwrap_or(10),
            failures: probe.failure_threshold.unwrap_or(3),
            initial_delay: probe.initial_delay_seconds.unwrap_or(0),
        }
    }

    /// How long the probe lets a container fail before acting, in seconds; `None` when its
    /// numbers cannot be used (zero, negative, or adding up to more than a week).
    pub fn budget(&self) -> Option<i64> {
        if self.period < 1 || self.failures < 1 || self.initial_delay < 0 {
            return None;
        }
        let total =
            i64::from(self.initial_delay) + i64::from(self.period) * i64::from(self.failures);
        (total <= MAX_PROBE_BUDGET).then_some(total)
    }

    /// The probe's numbers as written, to say which ones cannot be used.
    pub fn numbers(&self) -> String {
        format!(
            "`initialDelaySeconds` {}, `periodSeconds` {}, `failureThreshold` {}",
            self.initial_delay, self.period, self.failures
        )
    }
}

fn port_text(port: &IntOrString) -> String {
    match port {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// Shells whose `-c` script holds the real command line.
const SHELLS: &[&str] = &["sh", "bash", "ash", "dash", "zsh"];

/// Programs that are the model server itself; what follows them is its arguments.
const SERVER_PROGRAMS: &[&str] = &[
    "vllm",
    "llama-server",
    "text-generation-launcher",
    "text-embeddings-router",
    "tritonserver",
    "ollama",
    "torchserve",
    "trtllm-serve",
    "lmdeploy",
];

fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// The server's own arguments. A `sh -c` script is split into its commands and the one that
/// starts the server kept; `exec`, `env`, variable assignments, `python -m MODULE` and the server
/// program are stepped over, so a wrapper's `-c` or `-m` is never read as one of the server's flags.
fn server_words(container: &Container, object_name: &str) -> Vec<String> {
    // KServe replaces `{{.Name}}` in a ServingRuntime with the InferenceService's name.
    let items: Vec<String> = container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .map(|w| w.replace("{{.Name}}", object_name))
        .collect();
    let words = match items.as_slice() {
        [shell, flag, script @ ..]
            if SHELLS.contains(&basename(shell)) && flag.starts_with('-') && flag.contains('c') =>
        {
            server_command(&script.join(" "))
        }
        _ => items
            .iter()
            .flat_map(|i| i.split_whitespace())
            .map(str::to_owned)
            .collect(),
    };
    skip_launcher(&words).to_vec()
}

/// The command of a shell script that starts the server, split into words.
fn server_command(script: &str) -> Vec<String> {
    let commands: Vec<&str> = script
        .split(['\n', ';', '|', '&'])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    commands
        .iter()
        .find(|c| runtime_from_command(c).is_some())
        .or(commands.last())
        .map(|c| {
            c.split_whitespace()
                .map(|w| w.trim_matches(['"', '\'']).to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The words after whatever launches the server.
fn skip_launcher(words: &[String]) -> &[String] {
    let mut rest = words;
    while let [first, tail @ ..] = rest {
        if first == "exec" || basename(first) == "env" || is_assignment(first) {
            rest = tail;
        } else if basename(first).starts_with("python") {
            rest = after_python(tail);
        } else {
            break;
        }
    }
    if let [program, tail @ ..] = rest
        && SERVER_PROGRAMS.contains(&basename(program))
    {
        rest = tail;
        if let [subcommand, tail @ ..] = rest
            && subcommand == "serve"
        {
            rest = tail;
        }
    }
    rest
}

/// `NAME=value` before a command.
fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// The words after the interpreter's own options and the module or script it runs.
fn after_python(words: &[String]) -> &[String] {
    let mut rest = words;
    while let [first, tail @ ..] = rest {
        match first.as_str() {
            "-m" | "-c" => return tail.get(1..).unwrap_or_default(),
            option if option.starts_with('-') => rest = tail,
            _ => return tail,
        }
    }
    rest
}

impl Server {
    fn new(
        container: &Container,
        path: String,
        template: &PodTemplate,
        object_name: &str,
    ) -> Server {
        let resources = container.resources.as_ref();
        let quantity = |limits: bool, name: &str| {
            let map = if limits {
                resources.and_then(|r| r.limits.as_ref())
            } else {
                resources.and_then(|r| r.requests.as_ref())
            };
            map.and_then(|m| m.get(name)).map(|q| q.0.clone())
        };
        let limit_text = quantity(true, "memory");
        let memory_limit = limit_text.as_deref().and_then(bytes);
        Server {
            container: container.name.clone(),
            path,
            image: container.image.clone().unwrap_or_default(),
            words: server_words(container, object_name),
            env: container.env.clone().unwrap_or_default(),
            ports: container
                .ports
                .iter()
                .flatten()
                .map(|p| (p.name.clone(), p.container_port))
                .collect(),
            memory_limit,
            unusable_memory_limit: limit_text.filter(|_| memory_limit.is_none()),
            memory_request: quantity(false, "memory").and_then(|q| bytes(&q)),
            cpu_request: quantity(false, "cpu"),
            memory_volumes: memory_volumes(container, template),
            startup_probe: container.startup_probe.as_ref().map(ProbeInfo::new),
            readiness_probe: container.readiness_probe.as_ref().map(ProbeInfo::new),
            liveness_probe: container.liveness_probe.as_ref().map(ProbeInfo::new),
            openai_prefix: "",
        }
    }

    /// The value of the first of `flags` on the command line (`--flag value` or `--flag=value`),
    /// with `$(VAR)` resolved from a literal environment variable.
    pub fn flag(&self, flags: &[&str]) -> Option<String> {
        let value = self.raw_flag(flags)?;
        Some(
            match value.strip_prefix("$(").and_then(|v| v.strip_suffix(')')) {
                Some(var) => self.env(var).map_or(value.to_owned(), str::to_owned),
                None => value.to_owned(),
            },
        )
    }

    /// The value as written, `$(VAR)` left alone. `flags` are tried in order, so the first named
    /// wins wherever it sits on the line.
    pub fn raw_flag(&self, flags: &[&str]) -> Option<&str> {
        flags.iter().find_map(|flag| self.one_flag(flag))
    }

    fn one_flag(&self, flag: &str) -> Option<&str> {
        for (i, word) in self.words.iter().enumerate() {
            if word == flag {
                return self
                    .words
                    .get(i + 1)
                    .map(|v| v.trim_end_matches(';'))
                    .filter(|v| !v.starts_with("--"));
            }
            if let Some(value) = word.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
                return Some(value.trim_end_matches(';'));
            }
        }
        None
    }

    /// The command line, word by word.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// A flag given with or without a value.
    pub fn has_flag(&self, flag: &str) -> bool {
        self.words
            .iter()
            .any(|w| w == flag || w.starts_with(&format!("{flag}=")))
    }

    /// A flag's value, else a literal environment variable.
    pub fn setting(&self, flags: &[&str], env: &str) -> Option<String> {
        self.flag(flags)
            .or_else(|| self.env(env).map(str::to_owned))
    }

    /// A literal environment variable.
    pub fn env(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.as_deref())
    }

    /// The Secret (name, key) an environment variable is read from.
    pub fn env_secret(&self, name: &str) -> Option<(String, String)> {
        let reference = self
            .env
            .iter()
            .find(|e| e.name == name)?
            .value_from
            .as_ref()?
            .secret_key_ref
            .as_ref()?;
        Some((reference.name.clone(), reference.key.clone()))
    }

    pub fn has_env(&self, name: &str) -> bool {
        self.env.iter().any(|e| e.name == name)
    }

    pub fn image_ref(&self) -> ImageRef<'_> {
        ImageRef::parse(&self.image)
    }

    /// `(major, minor)` of the image tag, e.g. `(0, 11)` for `vllm-openai:v0.11.0`.
    pub fn image_version(&self) -> Option<(u32, u32)> {
        let tag = self.image_ref().tag?;
        let mut parts = tag.trim_start_matches('v').split(['.', '-']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    }

    /// The port number a named or numbered container port refers to.
    pub fn port_number(&self, port: &IntOrString) -> Option<i32> {
        match port {
            IntOrString::Int(n) => Some(*n),
            IntOrString::String(name) => self
                .ports
                .iter()
                .find(|(n, _)| n.as_deref() == Some(name.as_str()))
                .map(|(_, number)| *number),
        }
    }

    /// The port the server listens on for its API.
    pub fn api_port(&self, runtime: Runtime) -> i32 {
        if let Some(port) = self
            .setting(&["--port", "--http-port"], "PORT")
            .or_else(|| self.env("NIM_SERVER_PORT").map(str::to_owned))
            .and_then(|p| p.parse().ok())
            .filter(is_port)
        {
            return port;
        }
        if let Some(port) = self
            .env("OLLAMA_HOST")
            .and_then(|h| h.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
            .filter(is_port)
        {
            return port;
        }
        let named = ["http", "inference", "serve", "api"]
            .iter()
            .find_map(|want| {
                self.ports
                    .iter()
                    .find(|(n, _)| n.as_deref() == Some(*want))
                    .map(|(_, p)| *p)
            });
        named
            .or_else(|| self.ports.first().map(|(_, p)| *p))
            .filter(is_port)
            .unwrap_or(match runtime {
                Runtime::Ollama => 11434,
                Runtime::Sglang => 30000,
                Runtime::Tgi | Runtime::Tei => 80,
                Runtime::Torchserve => 8080,
                _ => 8000,
            })
    }
}

fn is_port(port: &i32) -> bool {
    (1..=65535).contains(port)
}

/// Memory-backed emptyDirs mounted into `container`, with their mount path and size limit.
fn memory_volumes(container: &Container, template: &PodTemplate) -> Vec<(String, Option<u64>)> {
    let volumes = template.spec.volumes.as_deref().unwrap_or_default();
    container
        .volume_mounts
        .iter()
        .flatten()
        .filter_map(|mount| {
            let empty_dir = volumes
                .iter()
                .find(|v| v.name == mount.name)?
                .empty_dir
                .as_ref()?;
            (empty_dir.medium.as_deref() == Some("Memory")).then(|| {
                (
                    mount.mount_path.clone(),
                    empty_dir.size_limit.as_ref().and_then(|q| bytes(&q.0)),
                )
            })
        })
        .collect()
}

/// Finds the container that runs the model server.
fn serving_container(endpoint: &Endpoint, snapshot: &Snapshot) -> Option<Server> {
    if endpoint.object.kind == "InferenceService" {
        return kserve_container(endpoint, snapshot);
    }
    let name = &endpoint.object.name;
    let main = || {
        endpoint.templates.iter().flat_map(|t| {
            t.containers()
                .filter(|(path, _)| !path.contains(".initContainers["))
                .map(move |(path, c)| (t, path, c))
        })
    };
    let serves = |c: &Container| {
        c.image.as_deref().and_then(runtime_from_image) == Some(endpoint.runtime)
            || runtime_from_command(&command_line(c)).map(|(_, r)| r) == Some(endpoint.runtime)
    };
    let has_accelerator = |c: &Container| {
        c.resources
            .as_ref()
            .and_then(|r| r.limits.as_ref().or(r.requests.as_ref()))
            .is_some_and(|m| m.keys().any(|k| hangar_core::inventory::is_accelerator(k)))
    };
    let mut server = main()
        .find(|(_, _, c)| serves(c))
        .or_else(|| main().find(|(_, _, c)| has_accelerator(c)))
        .or_else(|| main().next())
        .map(|(t, path, c)| Server::new(c, path, t, name))?;
    if endpoint.object.kind == "NIMService" {
        // The NIM Operator names the container after the NIMService.
        server.container = format!("{name}-ctr");
    }
    Some(server)
}

/// A KServe predictor's container: image, command and args from its ServingRuntime, resources
/// and extra args from the InferenceService's `predictor.model`. KServe always names it
/// `kserve-container`. Without a ServingRuntime in the input, KServe's own model server is
/// assumed: it listens on 8080 and serves the OpenAI API under `/openai`.
fn kserve_container(endpoint: &Endpoint, snapshot: &Snapshot) -> Option<Server> {
    let template = endpoint.templates.first()?;
    let (path, inline) = template.containers().next()?;
    let isvc = snapshot.find_other_ref(&endpoint.object)?;
    let runtime_container: Option<Container> = isvc
        .object
        .str_at("spec.predictor.model.runtime")
        .and_then(|name| {
            snapshot
                .find_other("ServingRuntime", endpoint.namespace(), name)
                .or_else(|| snapshot.find_other("ClusterServingRuntime", "", name))
        })
        .and_then(|r| r.object.get("spec.containers")?.get(0).cloned())
        .and_then(|v| serde_json::from_value(v).ok());
    let mut merged = inline.clone();
    merged.name = KSERVE_CONTAINER.into();
    let Some(runtime) = runtime_container else {
        if merged.ports.is_none() {
            merged.ports = Some(vec![ContainerPort {
                container_port: KSERVE_HTTP_PORT,
                ..ContainerPort::default()
            }]);
        }
        let mut server = Server::new(&merged, path, template, &endpoint.object.name);
        server.openai_prefix = "/openai";
        return Some(server);
    };
    merged.image = inline.image.clone().or(runtime.image);
    merged.command = inline.command.clone().or(runtime.command);
    // The predictor's args are appended to the runtime's.
    let mut args = runtime.args.unwrap_or_default();
    args.extend(inline.args.clone().unwrap_or_default());
    merged.args = Some(args);
    let mut env = runtime.env.unwrap_or_default();
    env.extend(inline.env.clone().unwrap_or_default());
    merged.env = Some(env);
    merged.ports = inline.ports.clone().or(runtime.ports);
    merged.resources = inline.resources.clone().or(runtime.resources);
    Some(Server::new(&merged, path, template, &endpoint.object.name))
}

/// The container name KServe gives a predictor's model server.
const KSERVE_CONTAINER: &str = "kserve-container";
/// The port KServe's model servers listen on (`--http_port`).
const KSERVE_HTTP_PORT: i32 = 8080;

/// How many copies run.
pub(super) struct Replicas {
    pub min: i32,
    pub max: i32,
    /// What scales it or groups its pods, e.g. `HorizontalPodAutoscaler gpu-hpa`.
    pub note: Option<String>,
}

impl Replicas {
    fn fixed(n: i32) -> Replicas {
        Replicas {
            min: n,
            max: n,
            note: None,
        }
    }

    pub fn text(&self) -> String {
        let count = if self.min == self.max {
            self.min.to_string()
        } else {
            format!("{} to {}", self.min, self.max)
        };
        match &self.note {
            Some(note) => format!("{count} ({note})"),
            None => count,
        }
    }
}

fn replicas(endpoint: &Endpoint, snapshot: &Snapshot) -> Option<Replicas> {
    let (ns, name) = (endpoint.namespace(), endpoint.object.name.as_str());
    let number = |o: &DynamicObject, path: &str| {
        o.get(path)
            .and_then(Value::as_i64)
            .and_then(|n| i32::try_from(n).ok())
    };
    let declared = match endpoint.object.kind.as_str() {
        "Deployment" => snapshot
            .find::<Deployment>(ns, name)
            .map(|d| Replicas::fixed(d.object.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1))),
        "StatefulSet" => snapshot
            .find::<StatefulSet>(ns, name)
            .map(|s| Replicas::fixed(s.object.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1))),
        "Pod" => Some(Replicas::fixed(1)),
        "InferenceService" => snapshot.find_other_ref(&endpoint.object).map(|o| {
            let min = number(&o.object, "spec.predictor.minReplicas").unwrap_or(1);
            let max = number(&o.object, "spec.predictor.maxReplicas").unwrap_or(min);
            Replicas {
                min,
                max: max.max(min),
                note: (max > min).then(|| "KServe autoscaling".to_owned()),
            }
        }),
        "NIMService" => snapshot
            .find_other_ref(&endpoint.object)
            .map(|o| Replicas::fixed(number(&o.object, "spec.replicas").unwrap_or(1))),
        "LeaderWorkerSet" => snapshot.find_other_ref(&endpoint.object).map(|o| {
            let groups = number(&o.object, "spec.replicas").unwrap_or(1);
            let note = match lws_size(&o.object) {
                Ok(size) => format!(
                    "group{} of {size} pods: 1 leader and {} worker{}",
                    if groups == 1 { "" } else { "s" },
                    size - 1,
                    if size == 2 { "" } else { "s" }
                ),
                Err(raw) => format!(
                    "groups of a size Hangar cannot use: `spec.leaderWorkerTemplate.size` is {raw}"
                ),
            };
            Replicas {
                note: Some(note),
                ..Replicas::fixed(groups)
            }
        }),
        "RayService" => snapshot.find_other_ref(&endpoint.object).map(|o| {
            let groups = o
                .object
                .get("spec.rayClusterConfig.workerGroupSpecs")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let sum = |key: &str, fallback: &str| {
                groups
                    .iter()
                    .map(|g| {
                        g.get(key)
                            .or_else(|| g.get(fallback))
                            .and_then(Value::as_i64)
                            .unwrap_or(1)
                    })
                    .fold(0_i64, i64::saturating_add)
            };
            let min = i32::try_from(sum("minReplicas", "replicas")).unwrap_or(1);
            let max = i32::try_from(sum("maxReplicas", "replicas")).unwrap_or(min);
            Replicas {
                min,
                max: max.max(min),
                note: Some("Ray worker pods, plus the head pod".into()),
            }
        }),
        _ => None,
    };
    let hpa = snapshot.others.iter().find(|o| {
        o.object.kind == "HorizontalPodAutoscaler"
            && o.object.namespace() == ns
            && o.object.str_at("spec.scaleTargetRef.name") == Some(name)
    });
    match (declared, hpa) {
        (_, Some(hpa)) => {
            let min = number(&hpa.object, "spec.minReplicas").unwrap_or(1);
            let max = number(&hpa.object, "spec.maxReplicas").unwrap_or(min);
            Some(Replicas {
                min,
                max,
                note: Some(format!("HorizontalPodAutoscaler {}", hpa.object.name())),
            })
        }
        (declared, None) => declared,
    }
}

/// A LeaderWorkerSet's pods per group (1 when unset), or the value as written when it is not a
/// size (zero, negative, not a number).
fn lws_size(lws: &DynamicObject) -> Result<u32, String> {
    match lws.get("spec.leaderWorkerTemplate.size") {
        None => Ok(1),
        Some(value) => value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= 1)
            .ok_or_else(|| value.to_string()),
    }
}

fn group_size(endpoint: &Endpoint, snapshot: &Snapshot) -> Option<u32> {
    if endpoint.object.kind != "LeaderWorkerSet" {
        return None;
    }
    lws_size(&snapshot.find_other_ref(&endpoint.object)?.object).ok()
}

/// The accelerators one pod gets, and what they are.
pub(super) struct Gpus {
    /// `nvidia.com/gpu`.
    pub resource: String,
    pub per_pod: u32,
    /// The GPU model, from the node selector, node affinity or the eligible nodes' labels; several
    /// when the pods are not pinned to one.
    pub products: Vec<String>,
    /// Memory of one GPU, in GiB.
    pub memory_gib: Option<u32>,
}

impl Gpus {
    /// `1 × NVIDIA-A100-SXM4-80GB (80 GiB)`.
    pub fn text(&self) -> String {
        let what = match self.products.as_slice() {
            [] => self.resource.clone(),
            [one] => one.clone(),
            many => format!("any of {}", many.join(", ")),
        };
        match self.memory_gib {
            Some(gib) if self.products.len() <= 1 => {
                format!("{} × {what} ({gib} GiB each)", self.per_pod)
            }
            _ => format!("{} × {what}", self.per_pod),
        }
    }
}

/// Node labels that name the GPU model, in order of trust.
const GPU_PRODUCT_LABELS: &[&str] = &[
    "nvidia.com/gpu.product",
    "cloud.google.com/gke-accelerator",
    "karpenter.k8s.aws/instance-gpu-name",
];

fn gpus(endpoint: &Endpoint, snapshot: &Snapshot) -> Option<Gpus> {
    let (resource, per_pod) = endpoint
        .placement
        .accelerators
        .iter()
        .filter_map(|a| a.split_once('='))
        .filter_map(|(r, q)| Some((r.to_owned(), q.parse::<u32>().ok()?)))
        .max_by_key(|(_, n)| *n)?;
    let eligible: Vec<&Node> = endpoint
        .placement
        .eligible_nodes
        .iter()
        .flat_map(|names| names.iter())
        .filter_map(|n| snapshot.find::<Node>("", n).map(|n| &n.object))
        .collect();
    let mut products = pinned_products(endpoint);
    if products.is_empty() {
        for node in &eligible {
            if let Some(p) = GPU_PRODUCT_LABELS.iter().find_map(|l| node.label(l))
                && !products.iter().any(|x| x == p)
            {
                products.push(p.to_owned());
            }
        }
    }
    let memory_gib = match products.as_slice() {
        [product] => {
            gpu_memory_from_nodes(snapshot, product).or_else(|| gpu_memory_from_name(product))
        }
        _ => None,
    };
    Some(Gpus {
        resource,
        per_pod,
        products,
        memory_gib,
    })
}

/// GPU models the pods are pinned to by node selector or required node affinity.
fn pinned_products(endpoint: &Endpoint) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for label in GPU_PRODUCT_LABELS {
        if let Some(p) = endpoint.placement.node_selector.get(*label) {
            out.push(p.clone());
        }
    }
    for t in &endpoint.templates {
        for term in hangar_core::nodes::required_terms(t) {
            for r in term.match_expressions.iter().flatten() {
                if GPU_PRODUCT_LABELS.contains(&r.key.as_str()) && r.operator == "In" {
                    out.extend(r.values.iter().flatten().cloned());
                }
            }
        }
    }
    out.dedup();
    out
}

fn gpu_memory_from_nodes(snapshot: &Snapshot, product: &str) -> Option<u32> {
    snapshot.nodes.iter().find_map(|n| {
        let node = &n.object;
        let same = GPU_PRODUCT_LABELS
            .iter()
            .any(|l| node.label(l) == Some(product));
        let mib: u32 = node.label("nvidia.com/gpu.memory")?.parse().ok()?;
        same.then_some(mib.div_ceil(1024))
    })
}

/// Memory of well-known GPUs whose product name does not carry it.
const GPU_MEMORY: &[(&str, u32)] = &[
    ("L40S", 48),
    ("L40", 48),
    ("L4", 24),
    ("A10G", 24),
    ("A10", 24),
    ("T4", 16),
    ("H200", 141),
    ("H100", 80),
    ("B200", 180),
];

fn gpu_memory_from_name(product: &str) -> Option<u32> {
    let upper = product.to_ascii_uppercase();
    let from_name = upper
        .split(['-', '_', ' '])
        .find_map(|part| part.strip_suffix("GB").and_then(|n| n.parse::<u32>().ok()));
    from_name.or_else(|| {
        GPU_MEMORY
            .iter()
            .find(|(name, _)| upper.split(['-', '_', ' ']).any(|part| part == *name))
            .map(|(_, gib)| *gib)
    })
}

/// The `kubectl -l` selector for the pods that serve traffic. Behind a Flagger Canary those are
/// the primary's: Flagger copies the Deployment to `NAME-primary` and appends `-primary` to the
/// value of its selector label (`app`, `name` or `app.kubernetes.io/name`).
fn selector(endpoint: &Endpoint, snapshot: &Snapshot, canary: bool) -> Option<String> {
    let (ns, name) = (endpoint.namespace(), endpoint.object.name.as_str());
    let match_labels = |s: Option<&LabelSelector>| {
        s.and_then(|s| s.match_labels.as_ref())
            .filter(|m| !m.is_empty())
            .cloned()
    };
    let labels = match endpoint.object.kind.as_str() {
        "Deployment" => snapshot
            .find::<Deployment>(ns, name)
            .and_then(|d| match_labels(d.object.spec.as_ref().map(|s| &s.selector))),
        "StatefulSet" => snapshot
            .find::<StatefulSet>(ns, name)
            .and_then(|d| match_labels(d.object.spec.as_ref().map(|s| &s.selector))),
        "DaemonSet" => snapshot
            .find::<DaemonSet>(ns, name)
            .and_then(|d| match_labels(d.object.spec.as_ref().map(|s| &s.selector))),
        "InferenceService" => return Some(format!("serving.kserve.io/inferenceservice={name}")),
        "LeaderWorkerSet" => return Some(format!("leaderworkerset.sigs.k8s.io/name={name}")),
        "NIMService" => return Some(format!("app.kubernetes.io/name={name}")),
        _ => None,
    };
    if canary {
        return Some(primary_selector(labels.as_ref(), name));
    }
    labels
        .as_ref()
        .map(join_labels)
        .or_else(|| shared_app_label(&endpoint.templates))
}

/// The labels Flagger renames on the primary, in the order it looks for them.
const FLAGGER_SELECTOR_LABELS: &[&str] = &["app", "name", "app.kubernetes.io/name"];

fn primary_selector(labels: Option<&BTreeMap<String, String>>, name: &str) -> String {
    labels
        .and_then(|l| {
            FLAGGER_SELECTOR_LABELS
                .iter()
                .find_map(|key| l.get(*key).map(|v| format!("{key}={v}-primary")))
        })
        .unwrap_or_else(|| format!("app={name}-primary"))
}

/// An `app`-style label every template carries, e.g. `app=ray-summarizer`.
fn shared_app_label(templates: &[PodTemplate]) -> Option<String> {
    let first = templates.first()?;
    [
        "app",
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
    ]
    .iter()
    .find_map(|key| {
        let value = first.labels.get(*key)?;
        templates
            .iter()
            .all(|t| t.labels.get(*key) == Some(value))
            .then(|| format!("{key}={value}"))
    })
}

fn join_labels(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A `kubectl port-forward` that reaches the server, and the URL it gives.
pub(super) struct Route {
    /// `svc/NAME`, `deploy/NAME` or `pod/NAME`.
    pub target: String,
    pub remote: i32,
    pub local: i32,
    /// A sentence about the target when it is not in the input (made by an operator).
    pub note: Option<String>,
}

impl Route {
    pub fn port_forward(&self, ns: &str) -> String {
        format!(
            "{} port-forward {} {}:{}",
            kubectl_in(ns),
            self.target,
            self.local,
            self.remote
        )
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.local)
    }
}

fn route(endpoint: &Endpoint, snapshot: &Snapshot, server: &Server, canary: bool) -> Option<Route> {
    let ns = endpoint.namespace();
    let name = &endpoint.object.name;
    let port = server.api_port(endpoint.runtime);
    let local = if port >= 1024 { port } else { 8080 };
    // Names from the input may hold anything: each target is one quoted word.
    let make = |target: String, remote: i32, note: Option<String>| Route {
        target: sh_quote(&target),
        remote,
        local,
        note,
    };
    let services = endpoint.exposure.iter().filter(|e| {
        e.via.kind == "Service"
            && matches!(
                e.kind,
                ExposureKind::ClusterIp
                    | ExposureKind::NodePort
                    | ExposureKind::LoadBalancer
                    | ExposureKind::ExternalIp
            )
    });
    for exposure in services {
        let Some(service) = snapshot.find::<Service>(ns, &exposure.via.name) else {
            continue;
        };
        let ports = service
            .object
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let found = ports.iter().find(|p| {
            let target = p.target_port.clone().unwrap_or(IntOrString::Int(p.port));
            server.port_number(&target) == Some(port)
        });
        if let Some(p) = found {
            return Some(make(format!("svc/{}", service.object.name()), p.port, None));
        }
    }
    match endpoint.object.kind.as_str() {
        "InferenceService" => {
            let isvc = snapshot.find_other_ref(&endpoint.object).map(|o| &o.object);
            Some(if kserve_raw(isvc) {
                let service = format!("svc/{name}-predictor");
                make(
                    service.clone(),
                    80,
                    Some(format!(
                        "{} is the Service KServe creates for the predictor; it is not in the input.",
                        code(&service)
                    )),
                )
            } else {
                // No port-forward to a Knative Service: a pod, found by a quoted selector.
                Route {
                    target: format!(
                        "pod/$({} get pod -l {} -o name | head -1 | cut -d/ -f2)",
                        kubectl_in(ns),
                        sh_quote(&format!("serving.kserve.io/inferenceservice={name}"))
                    ),
                    remote: port,
                    local,
                    note: Some(
                        "The port-forward goes to a predictor pod: a Knative Service cannot be port-forwarded.".into(),
                    ),
                }
            })
        }
        "NIMService" => {
            let port = snapshot
                .find_other_ref(&endpoint.object)
                .and_then(|o| o.object.get("spec.expose.service.port")?.as_i64())
                .and_then(|p| i32::try_from(p).ok())
                .unwrap_or(8000);
            let service = format!("svc/{name}");
            Some(make(
                service.clone(),
                port,
                Some(format!(
                    "{} is the Service the NIM Operator creates from `spec.expose`.",
                    code(&service)
                )),
            ))
        }
        "RayService" => Some(make(
            format!("svc/{name}-serve-svc"),
            8000,
            Some(format!(
                "{} is the Service KubeRay creates for Serve; it follows the active Ray cluster.",
                code(&format!("svc/{name}-serve-svc"))
            )),
        )),
        "Deployment" if canary => Some(make(
            format!("deploy/{name}-primary"),
            port,
            Some(format!(
                "{} is the copy Flagger promotes and sends traffic to; {} only runs the canary during an analysis.",
                code(&format!("deploy/{name}-primary")),
                code(&format!("deploy/{name}"))
            )),
        )),
        "Deployment" => Some(make(format!("deploy/{name}"), port, None)),
        "StatefulSet" => Some(make(format!("sts/{name}"), port, None)),
        "LeaderWorkerSet" => Some(make(
            format!("pod/{name}-0"),
            port,
            Some(format!(
                "{} is the leader of group 0, the pod that serves the API.",
                code(&format!("pod/{name}-0"))
            )),
        )),
        "Pod" => Some(make(format!("pod/{name}"), port, None)),
        _ => None,
    }
}

/// Where the server's API key comes from.
pub(super) struct ApiKey {
    /// The variable in the pod that holds it (`VLLM_API_KEY`).
    pub variable: Option<String>,
    /// The Secret and key it is read from, when it is.
    pub secret: Option<(String, String)>,
}

impl ApiKey {
    /// A shell command that prints the key, when it can be read from a Secret.
    pub fn read_command(&self, ns: &str) -> Option<String> {
        let (secret, key) = self.secret.as_ref()?;
        Some(format!(
            "{} get {} -o jsonpath={} | base64 -d",
            kubectl_in(ns),
            kube_objects("secret", &[secret.as_str()]),
            sh_quote(&format!("{{.data.{}}}", key.replace('.', "\\.")))
        ))
    }
}

/// The server's own API key: `--api-key`, or the variable the runtime reads it from. Read from
/// the merged container, so a KServe ServingRuntime's `--api-key` counts too.
fn api_key(runtime: Runtime, server: &Server) -> Option<ApiKey> {
    let env_name = match runtime {
        Runtime::Vllm => Some("VLLM_API_KEY"),
        Runtime::Tei => Some("API_KEY"),
        Runtime::Llamacpp => Some("LLAMA_API_KEY"),
        _ => None,
    };
    let variable = match server.raw_flag(&["--api-key"]) {
        Some(value) => value
            .strip_prefix("$(")
            .and_then(|v| v.strip_suffix(')'))
            .map(str::to_owned),
        None => Some(env_name.filter(|v| server.has_env(v))?.to_owned()),
    };
    let secret = variable.as_deref().and_then(|v| server.env_secret(v));
    Some(ApiKey { variable, secret })
}

/// The largest memory quantity taken at face value: 1 PiB, far above any node.
const MAX_BYTES: f64 = 1_125_899_906_842_624.0;

/// Bytes in a Kubernetes quantity (`48Gi`, `512Mi`, `8G`, `64943364Ki`); `None` for what is not
/// one, or is beyond any machine (over 1 PiB).
pub(super) fn bytes(quantity: &str) -> Option<u64> {
    let q = quantity.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, unit) = q.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match unit {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Pi" => 1024.0_f64.powi(5),
        "P" => 1e15,
        _ => return None,
    };
    let total = number * factor;
    (total.is_finite() && total <= MAX_BYTES).then_some(total as u64)
}

/// `48 GiB`, `512 MiB`.
pub(super) fn human(bytes: u64) -> String {
    const GIB: u64 = 1 << 30;
    if bytes >= GIB {
        let gib = bytes as f64 / GIB as f64;
        if gib >= 100.0 || (gib - gib.round()).abs() < 0.05 {
            format!("{} GiB", gib.round())
        } else {
            format!("{gib:.1} GiB")
        }
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

/// A quantity kubectl accepts for `bytes`, rounded: `64Gi`, `640Mi`.
pub(super) fn quantity(bytes: u64) -> String {
    const GIB: u64 = 1 << 30;
    if bytes >= GIB && bytes.is_multiple_of(GIB) {
        format!("{}Gi", bytes / GIB)
    } else {
        format!("{}Mi", bytes.div_ceil(1 << 20))
    }
}

/// A model's weights as the runbook estimates them from its name.
pub(super) struct ModelSize {
    pub params_billion: f64,
    pub bytes_per_param: f64,
    pub precision: &'static str,
}

impl ModelSize {
    pub fn gb(&self) -> f64 {
        self.params_billion * self.bytes_per_param
    }

    pub fn text(&self) -> String {
        format!(
            "≈{:.0} GB ({} parameters in {})",
            self.gb(),
            params_text(self.params_billion),
            self.precision
        )
    }

    /// `≈16 GB for 8B parameters in bf16`, for use inside parentheses.
    pub fn short(&self) -> String {
        format!(
            "≈{:.0} GB for {} parameters in {}",
            self.gb(),
            params_text(self.params_billion),
            self.precision
        )
    }
}

fn params_text(billion: f64) -> String {
    if (billion - billion.round()).abs() < 0.01 {
        format!("{}B", billion.round())
    } else {
        format!("{billion}B")
    }
}

/// Reads the parameter count out of a model name (`llama-3.1-8b-instruct` → 8) and the
/// precision out of the name or the server's `--quantization`/`--dtype`. A quantised name or flag
/// whose precision Hangar cannot tell (a bare `gguf`, `compressed-tensors`) gives no estimate rather
/// than a bf16 one.
pub(super) fn model_size(endpoint: &Endpoint, server: Option<&Server>) -> Option<ModelSize> {
    let names = [
        endpoint.model.name.as_deref(),
        endpoint.model.source.as_deref(),
    ];
    let params = names.iter().flatten().find_map(|n| parameter_count(n))?;
    let quantization = server.and_then(|s| s.flag(&["--quantization", "-q", "--quantize"]));
    let hint = format!(
        "{} {} {}",
        names
            .iter()
            .flatten()
            .copied()
            .collect::<Vec<_>>()
            .join(" "),
        quantization.as_deref().unwrap_or_default(),
        server
            .and_then(|s| s.flag(&["--dtype"]))
            .unwrap_or_default(),
    )
    .to_ascii_lowercase();
    let tokens: Vec<&str> = hint
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .collect();
    let (bytes_per_param, precision) = match tokens.iter().find_map(|t| precision_of(t)) {
        Some(found) => found,
        None if quantization.is_some() || tokens.contains(&"gguf") => return None,
        None => (2.0, "bf16"),
    };
    Some(ModelSize {
        params_billion: params,
        bytes_per_param,
        precision,
    })
}

/// Bytes per parameter and a name for the precision a word of a model name or flag means.
fn precision_of(token: &str) -> Option<(f64, &'static str)> {
    const FOUR_BIT: &[&str] = &[
        "awq",
        "gptq",
        "int4",
        "4bit",
        "nf4",
        "fp4",
        "mxfp4",
        "nvfp4",
        "bnb",
        "bitsandbytes",
    ];
    const EIGHT_BIT: &[&str] = &["fp8", "int8", "8bit", "w8a8", "w8a16"];
    // GGUF types: `q4_k_m`, `Q5_0`, `iq3_xs`…, and weight-activation names: `w4a16`.
    let gguf_bits = token
        .strip_prefix("iq")
        .or_else(|| token.strip_prefix('q'))
        .and_then(|rest| rest.chars().next()?.to_digit(10))
        .filter(|bits| (2..=8).contains(bits));
    let weight_bits = token
        .strip_prefix('w')
        .and_then(|rest| rest.split_once('a'))
        .and_then(|(bits, _)| bits.parse::<u32>().ok())
        .filter(|bits| (2..=8).contains(bits));
    if FOUR_BIT.contains(&token) {
        return Some((0.5, "4-bit"));
    }
    if EIGHT_BIT.contains(&token) {
        return Some((1.0, "8-bit"));
    }
    if let Some(bits) = gguf_bits.or(weight_bits) {
        const NAMES: [&str; 7] = [
            "2-bit", "3-bit", "4-bit", "5-bit", "6-bit", "7-bit", "8-bit",
        ];
        let name = NAMES.get(usize::try_from(bits).ok()? - 2)?;
        return Some((f64::from(bits) / 8.0, name));
    }
    matches!(token, "fp32" | "float32").then_some((4.0, "fp32"))
}

/// The largest parameter count taken at face value, in billions: no model is near it.
const MAX_PARAMS_BILLION: f64 = 100_000.0;

/// `8` for `meta-llama/Llama-3.1-8B-Instruct`, `405` for `llama-3.1-405b`, `0.5` for `qwen2-0.5b`.
fn parameter_count(name: &str) -> Option<f64> {
    let last = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
    last.split(['-', '_', ':'])
        .filter_map(|part| part.strip_suffix('b'))
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .find_map(|n| n.parse::<f64>().ok())
        .filter(|n| *n > 0.0 && *n <= MAX_PARAMS_BILLION)
}

/// The pod's QoS class from its containers' CPU and memory requests and limits.
pub(super) fn qos_class(template: &PodTemplate) -> &'static str {
    let containers = &template.spec.containers;
    let resources = |c: &Container, limits: bool, name: &str| {
        c.resources
            .as_ref()
            .and_then(|r| {
                if limits {
                    r.limits.as_ref()
                } else {
                    r.requests.as_ref()
                }
            })
            .and_then(|m| m.get(name))
            .map(|q| q.0.clone())
    };
    let none = containers.iter().all(|c| {
        ["cpu", "memory"]
            .iter()
            .all(|r| resources(c, true, r).is_none() && resources(c, false, r).is_none())
    });
    if none {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = resources(c, true, r);
            limit.is_some() && resources(c, false, r).is_none_or(|q| Some(q) == limit)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// The template the serving container belongs to.
pub(super) fn server_template<'a>(facts: &Facts<'a>) -> Option<&'a PodTemplate> {
    let server = facts.server.as_ref()?;
    facts
        .endpoint
        .templates
        .iter()
        .find(|t| server.path.starts_with(&t.spec_path))
        .or_else(|| facts.endpoint.templates.first())
}

/// An object of another kind that points at the endpoint by name at `path`.
pub(super) fn referrer<'a>(
    snapshot: &'a Snapshot,
    endpoint: &Endpoint,
    kind: &str,
    path: &str,
) -> Option<&'a Located<DynamicObject>> {
    snapshot.others.iter().find(|o| {
        o.object.kind == kind
            && o.object.namespace() == endpoint.namespace()
            && o.object.str_at(path) == Some(endpoint.object.name.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(command: &[&str], args: &[&str]) -> Vec<String> {
        let container = Container {
            command: Some(command.iter().map(|s| (*s).to_owned()).collect()),
            args: Some(args.iter().map(|s| (*s).to_owned()).collect()),
            ..Container::default()
        };
        server_words(&container, "isvc")
    }

    #[test]
    fn the_server_words_start_after_its_launcher() {
        assert_eq!(
            words(
                &["python3", "-m", "sglang.launch_server"],
                &["--model-path", "q/w"]
            ),
            ["--model-path", "q/w"]
        );
        assert_eq!(
            words(
                &["sh", "-c"],
                &["pip install x && exec llama-server -c 4096 -m /m.gguf; echo done"]
            ),
            ["-c", "4096", "-m", "/m.gguf"]
        );
        assert_eq!(
            words(
                &["/bin/bash", "-lc", "HF_HOME=/c vllm serve m/x --port 8000"],
                &[]
            ),
            ["m/x", "--port", "8000"]
        );
        assert_eq!(
            words(&[], &["--served-model-name", "{{.Name}}"]),
            ["--served-model-name", "isvc"]
        );
    }

    #[test]
    fn flags_are_found_in_the_order_asked_wherever_they_sit() {
        let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: local, namespace: lab}
spec:
  containers:
  - name: llama
    image: ghcr.io/ggml-org/llama.cpp:server
    command: [llama-server]
    args: [--ctx-size, "8192", -m, /m.gguf, --model=/other.gguf]
"#;
        let snapshot = hangar_core::snapshot_from_text("pod.yaml", yaml);
        let inventory = hangar_core::discover(&snapshot, &hangar_core::Policy::default());
        let facts = Facts::new(&inventory.endpoints[0], &snapshot);
        let server = facts.server.as_ref().unwrap();
        assert_eq!(server.raw_flag(&["--model", "-m"]), Some("/other.gguf"));
        assert_eq!(server.raw_flag(&["-c", "--ctx-size"]), Some("8192"));
        assert_eq!(server.raw_flag(&["--port"]), None);
    }

    #[test]
    fn kuberay_names_are_cut_to_their_last_50_characters_and_start_with_a_letter() {
        assert_eq!(
            kuberay_check_name("summarizer-head-svc"),
            "summarizer-head-svc"
        );
        let fifty = format!("{}-head-svc", "s".repeat(41));
        assert_eq!(kuberay_check_name(&fifty), fifty);
        // Cut from the front, where KubeRay cuts: the `-` it leaves first becomes `r`.
        assert_eq!(
            kuberay_check_name("llm-summarizer-for-the-customer-support-team-head-svc"),
            "rsummarizer-for-the-customer-support-team-head-svc"
        );
        assert_eq!(
            kuberay_check_name("llm-summarizer-for-the-customer-support-team-eu-head-svc"),
            "mmarizer-for-the-customer-support-team-eu-head-svc"
        );
        assert_eq!(kuberay_check_name("7b-chat-head-svc"), "rb-chat-head-svc");
        assert_eq!(kuberay_check_name(""), "");
    }

    #[test]
    fn quantities_beyond_any_machine_are_refused() {
        assert_eq!(bytes("48Gi"), Some(48 << 30));
        assert_eq!(bytes("20000000Ti"), None);
        assert_eq!(bytes("1e3"), None);
        assert_eq!(bytes("2Pi"), None);
        assert_eq!(bytes("1Pi"), Some(1 << 50));
    }

    #[test]
    fn quantised_names_are_sized_by_their_bits() {
        assert_eq!(precision_of("q4"), Some((0.5, "4-bit")));
        assert_eq!(precision_of("q5"), Some((0.625, "5-bit")));
        assert_eq!(precision_of("iq3"), Some((0.375, "3-bit")));
        assert_eq!(precision_of("q8"), Some((1.0, "8-bit")));
        assert_eq!(precision_of("w4a16"), Some((0.5, "4-bit")));
        assert_eq!(precision_of("mxfp4"), Some((0.5, "4-bit")));
        assert_eq!(precision_of("fp4"), Some((0.5, "4-bit")));
        assert_eq!(precision_of("awq"), Some((0.5, "4-bit")));
        assert_eq!(precision_of("qwen2"), None);
        assert_eq!(precision_of("qwq"), None);
        assert_eq!(parameter_count("m/odd-99999999999999999999b"), None);
        assert_eq!(parameter_count("Qwen/Qwen2.5-0.5B"), Some(0.5));
    }

    #[test]
    fn probes_with_numbers_out_of_range_have_no_budget() {
        let probe = |initial_delay, period, failures| ProbeInfo {
            action: "GET /health".into(),
            period,
            failures,
            initial_delay,
        };
        assert_eq!(probe(0, 10, 60).budget(), Some(600));
        assert_eq!(probe(i32::MAX, i32::MAX, i32::MAX).budget(), None);
        assert_eq!(probe(0, 0, 3).budget(), None);
        assert_eq!(probe(-1, 10, 3).budget(), None);
    }
}
