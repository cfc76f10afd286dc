//! What triage looks at, as plain values: a pod's status, the events about it and its node, and
//! the tail of its containers' logs. Rules read these and nothing else, so a rule is tested with
//! a value written in a test, and a live cluster, a `kubectl cluster-info dump` and a saved
//! bundle all end up here.

use std::collections::BTreeMap;

use hangar_core::{ObjectRef, Origin, Runtime};
use serde::Serialize;

/// Everything triage knows about one pod of an endpoint.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PodEvidence {
    /// `Pod/namespace/name`.
    pub pod: ObjectRef,
    /// Where the pod was read (file:line, or the cluster).
    pub origin: Origin,
    /// The endpoint's model server; `Other` when unknown. Rules word their next steps for it.
    pub runtime: Runtime,
    /// `status.phase`: Pending, Running, Succeeded, Failed, Unknown.
    pub phase: Option<String>,
    /// `status.reason` and `status.message` of the pod itself (`Evicted`, `Preempting`…).
    pub reason: Option<String>,
    pub message: Option<String>,
    /// `status.conditions`: `PodScheduled`, `Initialized`, `ContainersReady`, `Ready`…
    pub conditions: Vec<Condition>,
    /// Init containers first, then the main containers, in declaration order.
    pub containers: Vec<ContainerEvidence>,
    /// Events whose involved object is this pod, oldest first.
    pub events: Vec<EventRecord>,
    /// The node the pod is bound to, if any.
    pub node: Option<NodeEvidence>,
    /// Events whose involved object is that node (kernel Xid reports, NotReady…), oldest first.
    pub node_events: Vec<EventRecord>,
    /// For a pod not bound to a node: the taints of the input's nodes that keep pods off
    /// (`NoSchedule`, `NoExecute`) and that the pod does not tolerate, as `key=value:Effect`, each
    /// once. Since Kubernetes 1.34 the scheduler's message no longer names them.
    pub untolerated_taints: Vec<String>,
    /// `spec.enableServiceLinks`; `None` when not set (Kubernetes then injects the variables of
    /// every Service in the namespace, `<NAME>_PORT=tcp://…` among them).
    pub enable_service_links: Option<bool>,
    /// When the evidence was gathered (RFC 3339): now for a live cluster, the capture time for a
    /// bundle, and for a dump the newest time anywhere in it (`report::triage` works it out once
    /// for every pod). Rules use it to tell a failure that is happening from one that happened
    /// long ago; without it (a pod built by hand) they take the newest timestamp in this pod.
    pub observed_at: Option<String>,
}

/// A `status.conditions[]` entry of a pod or a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub last_transition: Option<String>,
}

/// One container of the pod: what it is, how it is configured, what state it is in, and its logs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ContainerEvidence {
    pub name: String,
    pub image: String,
    /// Declared under `initContainers`: it runs to completion before the main containers start,
    /// unless it is a native sidecar.
    pub init: bool,
    /// A native sidecar (Kubernetes 1.28+): an init container with `restartPolicy: Always`. It
    /// starts before the main containers and runs beside them for the pod's life, restarted
    /// whenever it stops, so its state counts as a main container's does.
    pub sidecar: bool,
    /// `command` and `args` joined by spaces, as the container runs them.
    pub command_line: String,
    /// Environment variables with literal values (values from Secrets are not read).
    pub env: BTreeMap<String, String>,
    /// Names of environment variables set from a Secret, ConfigMap or field (`valueFrom`): their
    /// values are not read, but that they are set is evidence (a hub token, for one).
    pub env_from: Vec<String>,
    /// `resources.limits.memory` and `resources.requests.memory`, as written (`48Gi`).
    pub memory_limit: Option<String>,
    pub memory_request: Option<String>,
    /// `resources.requests.ephemeral-storage`, as written (`200Gi`).
    pub ephemeral_storage_request: Option<String>,
    /// `securityContext.readOnlyRootFilesystem` is true: only mounted volumes are writable.
    pub read_only_root_filesystem: bool,
    /// Accelerator requests or limits, as `resource=quantity` (`nvidia.com/gpu=2`).
    pub accelerators: Vec<String>,
    /// The probes as declared, with the time each allows before it fails the container.
    pub liveness: Option<Probe>,
    pub readiness: Option<Probe>,
    pub startup: Option<Probe>,
    pub ready: bool,
    pub restart_count: i32,
    /// `state` and `lastState` from the container's status (absent when the status is missing).
    pub state: Option<ContainerState>,
    pub last_state: Option<ContainerState>,
    /// The tail of the running (or last) container's log.
    pub log: Option<LogTail>,
    /// The tail of the previous container's log (the one that crashed), if one was kept.
    pub previous_log: Option<LogTail>,
}

impl ContainerEvidence {
    /// Whether the container is meant to stop: an init container that is not a native sidecar.
    /// A stop of any other container is a restart.
    pub fn runs_to_completion(&self) -> bool {
        self.init && !self.sidecar
    }
}

/// A container's state, as the kubelet reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ContainerState {
    Waiting {
        reason: Option<String>,
        message: Option<String>,
    },
    Running {
        started_at: Option<String>,
    },
    Terminated {
        reason: Option<String>,
        exit_code: i32,
        signal: Option<i32>,
        message: Option<String>,
        started_at: Option<String>,
        finished_at: Option<String>,
    },
}

/// A probe, reduced to what triage reasons about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Probe {
    /// `httpGet /health :8000`, `tcpSocket :8000`, `exec cat /tmp/ready`, `grpc :8001`.
    pub action: String,
    pub initial_delay_seconds: i32,
    pub period_seconds: i32,
    pub timeout_seconds: i32,
    pub failure_threshold: i32,
}

impl Probe {
    /// Seconds from container start until this probe can have failed enough times to act:
    /// `initialDelaySeconds + periodSeconds × failureThreshold`.
    pub fn allowed_seconds(&self) -> i64 {
        i64::from(self.initial_delay_seconds)
            + i64::from(self.period_seconds) * i64::from(self.failure_threshold)
    }
}

/// A Kubernetes Event, reduced to what triage reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EventRecord {
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub kind: String,
    pub reason: String,
    pub message: String,
    /// How many times it happened (`count`, or `series.count`), at least 1.
    pub count: i32,
    /// The component that reported it (`default-scheduler`, `kubelet`, `kernel-monitor`…).
    pub source: Option<String>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    /// The `uid` of the object it is about, when recorded: a pod recreated under the same name
    /// (a StatefulSet's) has a new one, and its predecessor's events are not about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_uid: Option<String>,
    /// Where the event was read (file:line, or the cluster).
    pub origin: Origin,
}

/// The node a pod runs on, reduced to what triage reads.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeEvidence {
    pub name: String,
    pub origin: Origin,
    /// `Ready`, `MemoryPressure`, `DiskPressure`, `PIDPressure`, `NetworkUnavailable` and
    /// conditions from node-problem-detector.
    pub conditions: Vec<Condition>,
    /// Taints as `key=value:Effect`.
    pub taints: Vec<String>,
    pub unschedulable: bool,
    /// Node labels (GPU product, driver version, instance type…).
    pub labels: BTreeMap<String, String>,
    pub created: Option<String>,
    pub kubelet_version: Option<String>,
    pub container_runtime: Option<String>,
    pub kernel_version: Option<String>,
    /// Allocatable accelerators, as `resource=quantity`.
    pub allocatable_accelerators: Vec<String>,
}

/// The last lines of one container's log, and where they came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogTail {
    /// Where the lines were read: `cluster`, a file path, or `dump/ns/pod/logs.txt:120`.
    pub source: String,
    /// The line number in `source` of `lines[0]`, when the source is a file.
    pub first_line: Option<u32>,
    pub lines: Vec<String>,
    /// Earlier lines were dropped to stay within the bounds.
    pub truncated: bool,
}

impl LogTail {
    /// Where line `index` of `lines` came from, for evidence: `dump/ml/vllm-0/logs.txt:812` or
    /// `cluster`.
    pub fn locate(&self, index: usize) -> String {
        match self.first_line {
            Some(first) => format!("{}:{}", self.source, first as usize + index),
            None => self.source.clone(),
        }
    }
}

/// Log tails by pod and container: `(namespace, pod, container)`.
#[derive(Debug, Clone, Default)]
pub struct Logs {
    pub current: BTreeMap<(String, String, String), LogTail>,
    pub previous: BTreeMap<(String, String, String), LogTail>,
}

impl Logs {
    pub fn is_empty(&self) -> bool {
        self.current.is_empty() && self.previous.is_empty()
    }
}
