//! Turning a snapshot (pods, nodes, Events) and log tails into the `PodEvidence` rules read.

use std::collections::HashMap;

use hangar_core::inventory::{command_line, is_accelerator};
use hangar_core::nodes::{fencing_taints, tolerates};
use hangar_core::snapshot::{DynamicObject, KubeObject, Located};
use hangar_core::{ObjectRef, Runtime, Snapshot};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ContainerStatus, Node, Pod, PodSpec, Probe as KubeProbe, Taint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;

use crate::evidence::{
    Condition, ContainerEvidence, ContainerState, EventRecord, Logs, NodeEvidence, PodEvidence,
    Probe,
};

/// The Events of a snapshot, by the object they are about.
#[derive(Debug, Default)]
pub struct EventIndex {
    by_object: HashMap<ObjectRef, Vec<EventRecord>>,
}

impl EventIndex {
    /// Indexes every `Event` (core `v1` and `events.k8s.io/v1`) among the snapshot's untyped
    /// objects, oldest first per object.
    pub fn new(snapshot: &Snapshot) -> Self {
        let mut by_object: HashMap<ObjectRef, Vec<EventRecord>> = HashMap::new();
        for event in snapshot.others.iter().filter(|o| o.object.kind == "Event") {
            if let Some((about, record)) = event_record(event) {
                by_object.entry(about).or_default().push(record);
            }
        }
        // By time, not text: `2025-05-01T10:00:00.5Z` and `2025-05-01T10:00:00Z` do not sort as
        // strings, and an event without a time goes first.
        for events in by_object.values_mut() {
            events.sort_by_key(|e| e.last_seen.as_deref().and_then(parse_time));
        }
        EventIndex { by_object }
    }

    /// The newest time any Event records.
    pub fn newest(&self) -> Option<Timestamp> {
        self.by_object
            .values()
            .flatten()
            .flat_map(|e| [e.first_seen.as_deref(), e.last_seen.as_deref()])
            .flatten()
            .filter_map(parse_time)
            .max()
    }

    pub fn about(&self, object: &ObjectRef) -> &[EventRecord] {
        self.by_object.get(object).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The events about `object` that are about this very instance of it (`uid`): a pod
    /// recreated under the same name does not inherit its predecessor's evictions and kills.
    /// When either uid is unknown, the name decides.
    pub fn about_instance(&self, object: &ObjectRef, uid: Option<&str>) -> Vec<EventRecord> {
        self.about(object)
            .iter()
            .filter(|e| match (e.object_uid.as_deref(), uid) {
                (Some(theirs), Some(ours)) => theirs == ours,
                _ => true,
            })
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.by_object.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_object.is_empty()
    }
}

/// Reads one Event of either API into the object it is about and a record.
fn event_record(event: &Located<DynamicObject>) -> Option<(ObjectRef, EventRecord)> {
    let body = &event.object.body;
    let text = |path: &[&str]| -> Option<String> {
        path.iter()
            .try_fold(body, |v, key| v.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let number = |path: &[&str]| {
        path.iter()
            .try_fold(body, |v, key| v.get(key))
            .and_then(Value::as_i64)
    };
    // core/v1 names the object `involvedObject`; events.k8s.io/v1 names it `regarding`.
    let about = body
        .get("involvedObject")
        .or_else(|| body.get("regarding"))?;
    let field = |key: &str| about.get(key).and_then(Value::as_str).unwrap_or_default();
    let namespace = match field("namespace") {
        "" => event.object.namespace(),
        ns => ns,
    };
    let kind = field("kind");
    let object = ObjectRef::new(
        kind,
        if kind == "Node" { "" } else { namespace },
        field("name"),
    );
    let count = number(&["count"])
        .or_else(|| number(&["series", "count"]))
        .or_else(|| number(&["deprecatedCount"]))
        .unwrap_or(1)
        .clamp(1, i64::from(i32::MAX));
    let record = EventRecord {
        kind: text(&["type"]).unwrap_or_else(|| "Normal".into()),
        reason: text(&["reason"]).unwrap_or_default(),
        message: text(&["message"])
            .or_else(|| text(&["note"]))
            .unwrap_or_default(),
        count: i32::try_from(count).unwrap_or(i32::MAX),
        source: text(&["source", "component"])
            .or_else(|| text(&["reportingController"]))
            .or_else(|| text(&["reportingComponent"])),
        first_seen: text(&["firstTimestamp"])
            .or_else(|| text(&["deprecatedFirstTimestamp"]))
            .or_else(|| text(&["eventTime"])),
        last_seen: text(&["lastTimestamp"])
            .or_else(|| text(&["series", "lastObservedTime"]))
            .or_else(|| text(&["deprecatedLastTimestamp"]))
            .or_else(|| text(&["eventTime"]))
            .or_else(|| text(&["firstTimestamp"])),
        object_uid: Some(field("uid"))
            .filter(|uid| !uid.is_empty())
            .map(str::to_owned),
        origin: event.origin.clone(),
    };
    Some((object, record))
}

/// Everything known about one pod: status, spec, events, node and logs.
pub fn pod_evidence(
    pod: &Located<Pod>,
    runtime: Runtime,
    snapshot: &Snapshot,
    events: &EventIndex,
    logs: &Logs,
) -> PodEvidence {
    let object = &pod.object;
    let me = pod.object_ref();
    let status = object.status.as_ref();
    let spec = object.spec.as_ref();
    let key = |container: &str| (me.namespace.clone(), me.name.clone(), container.to_owned());
    let statuses = |list: Option<&Vec<ContainerStatus>>| -> HashMap<String, ContainerStatus> {
        list.into_iter()
            .flatten()
            .map(|s| (s.name.clone(), s.clone()))
            .collect()
    };
    let init_statuses = statuses(status.and_then(|s| s.init_container_statuses.as_ref()));
    let main_statuses = statuses(status.and_then(|s| s.container_statuses.as_ref()));
    let mut containers = Vec::new();
    let declared = spec
        .into_iter()
        .flat_map(|s| s.init_containers.iter().flatten().map(|c| (true, c)))
        .chain(
            spec.into_iter()
                .flat_map(|s| s.containers.iter().map(|c| (false, c))),
        );
    for (init, container) in declared {
        let status = if init {
            init_statuses.get(&container.name)
        } else {
            main_statuses.get(&container.name)
        };
        let mut evidence = container_evidence(container, init, status);
        evidence.log = logs.current.get(&key(&container.name)).cloned();
        evidence.previous_log = logs.previous.get(&key(&container.name)).cloned();
        containers.push(evidence);
    }
    let node = spec
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty());
    let node_ref = node.map(|n| ObjectRef::new("Node", "", n));
    PodEvidence {
        pod: me.clone(),
        origin: pod.origin.clone(),
        runtime,
        phase: status.and_then(|s| s.phase.clone()),
        reason: status.and_then(|s| s.reason.clone()),
        message: status.and_then(|s| s.message.clone()),
        conditions: status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .map(|c| Condition {
                kind: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_transition: c.last_transition_time.as_ref().map(|t| t.0.to_string()),
            })
            .collect(),
        containers,
        events: events.about_instance(&me, object.metadata.uid.as_deref()),
        node: node.map(|name| match snapshot.find::<Node>("", name) {
            Some(node) => node_evidence(node),
            None => NodeEvidence {
                name: name.to_owned(),
                ..NodeEvidence::default()
            },
        }),
        // Not by uid: the kubelet and node-problem-detector write the node's name there.
        node_events: node_ref
            .map(|n| events.about(&n).to_vec())
            .unwrap_or_default(),
        untolerated_taints: match node {
            Some(_) => Vec::new(),
            None => untolerated_taints(snapshot, spec),
        },
        enable_service_links: spec.and_then(|s| s.enable_service_links),
        observed_at: None,
    }
}

/// The taints of the snapshot's nodes that keep a pod with `spec` off them, each once.
fn untolerated_taints(snapshot: &Snapshot, spec: Option<&PodSpec>) -> Vec<String> {
    let tolerations = spec
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    let mut found: Vec<String> = Vec::new();
    for node in &snapshot.nodes {
        // A cordoned node's taint: the scheduler reports those nodes as unschedulable instead.
        let taints =
            fencing_taints(&node.object).filter(|t| t.key != "node.kubernetes.io/unschedulable");
        for taint in taints {
            let text = taint_text(taint);
            if !tolerations.iter().any(|t| tolerates(t, taint)) && !found.contains(&text) {
                found.push(text);
            }
        }
    }
    // In an order of their own, not the nodes': the verdict must not depend on which is listed
    // first.
    found.sort();
    found
}

/// A taint as `kubectl describe node` shows it: `key=value:Effect`, or `key:Effect`.
fn taint_text(taint: &Taint) -> String {
    match &taint.value {
        Some(v) => format!("{}={v}:{}", taint.key, taint.effect),
        None => format!("{}:{}", taint.key, taint.effect),
    }
}

fn container_evidence(
    container: &Container,
    init: bool,
    status: Option<&ContainerStatus>,
) -> ContainerEvidence {
    let resources = container.resources.as_ref();
    let quantity = |map: Option<&std::collections::BTreeMap<String, _>>, name: &str| {
        map.and_then(
            |m: &std::collections::BTreeMap<
                String,
                k8s_openapi::apimachinery::pkg::api::resource::Quantity,
            >| m.get(name),
        )
        .map(|q| q.0.clone())
    };
    let memory = |map| quantity(map, "memory");
    let mut accelerators = Vec::new();
    for map in [
        resources.and_then(|r| r.limits.as_ref()),
        resources.and_then(|r| r.requests.as_ref()),
    ]
    .into_iter()
    .flatten()
    {
        for (name, quantity) in map {
            let entry = format!("{name}={}", quantity.0);
            if is_accelerator(name) && !accelerators.contains(&entry) {
                accelerators.push(entry);
            }
        }
    }
    ContainerEvidence {
        name: container.name.clone(),
        image: container.image.clone().unwrap_or_default(),
        init,
        sidecar: init && container.restart_policy.as_deref() == Some("Always"),
        command_line: command_line(container),
        env: container
            .env
            .iter()
            .flatten()
            .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
            .collect(),
        env_from: container
            .env
            .iter()
            .flatten()
            .filter(|e| e.value_from.is_some())
            .map(|e| e.name.clone())
            .collect(),
        memory_limit: memory(resources.and_then(|r| r.limits.as_ref())),
        memory_request: memory(resources.and_then(|r| r.requests.as_ref())),
        ephemeral_storage_request: quantity(
            resources.and_then(|r| r.requests.as_ref()),
            "ephemeral-storage",
        ),
        read_only_root_filesystem: container
            .security_context
            .as_ref()
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false),
        accelerators,
        liveness: container.liveness_probe.as_ref().map(probe),
        readiness: container.readiness_probe.as_ref().map(probe),
        startup: container.startup_probe.as_ref().map(probe),
        ready: status.is_some_and(|s| s.ready),
        restart_count: status.map(|s| s.restart_count).unwrap_or_default(),
        state: status
            .and_then(|s| s.state.as_ref())
            .and_then(container_state),
        last_state: status
            .and_then(|s| s.last_state.as_ref())
            .and_then(container_state),
        log: None,
        previous_log: None,
    }
}

fn container_state(state: &k8s_openapi::api::core::v1::ContainerState) -> Option<ContainerState> {
    if let Some(t) = &state.terminated {
        return Some(ContainerState::Terminated {
            reason: t.reason.clone(),
            exit_code: t.exit_code,
            signal: t.signal,
            message: t.message.clone(),
            started_at: t.started_at.as_ref().map(|t| t.0.to_string()),
            finished_at: t.finished_at.as_ref().map(|t| t.0.to_string()),
        });
    }
    if let Some(w) = &state.waiting {
        return Some(ContainerState::Waiting {
            reason: w.reason.clone(),
            message: w.message.clone(),
        });
    }
    state.running.as_ref().map(|r| ContainerState::Running {
        started_at: r.started_at.as_ref().map(|t| t.0.to_string()),
    })
}

fn probe(p: &KubeProbe) -> Probe {
    let port = |port: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString| match port {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => n.to_string(),
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
    };
    let action = if let Some(h) = &p.http_get {
        format!(
            "httpGet {} :{}",
            h.path.as_deref().unwrap_or("/"),
            port(&h.port)
        )
    } else if let Some(t) = &p.tcp_socket {
        format!("tcpSocket :{}", port(&t.port))
    } else if let Some(g) = &p.grpc {
        format!("grpc :{}", g.port)
    } else if let Some(e) = &p.exec {
        format!(
            "exec {}",
            e.command
                .iter()
                .flatten()
                .cloned()
                .collect::<Vec<_>>()
                .join(" ")
        )
    } else {
        "unknown".into()
    };
    // The API server's defaults, so a probe written without them is judged as it runs.
    Probe {
        action,
        initial_delay_seconds: p.initial_delay_seconds.unwrap_or(0),
        period_seconds: p.period_seconds.unwrap_or(10),
        timeout_seconds: p.timeout_seconds.unwrap_or(1),
        failure_threshold: p.failure_threshold.unwrap_or(3),
    }
}

/// A node, reduced to what triage reads.
pub fn node_evidence(node: &Located<Node>) -> NodeEvidence {
    let object = &node.object;
    let status = object.status.as_ref();
    let info = status.and_then(|s| s.node_info.as_ref());
    NodeEvidence {
        name: object.name().to_owned(),
        origin: node.origin.clone(),
        conditions: status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .map(|c| Condition {
                kind: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_transition: c.last_transition_time.as_ref().map(|t| t.0.to_string()),
            })
            .collect(),
        taints: object
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .map(taint_text)
            .collect(),
        unschedulable: object
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false),
        labels: object.metadata.labels.clone().unwrap_or_default(),
        created: object
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string()),
        kubelet_version: info.map(|i| i.kubelet_version.clone()),
        container_runtime: info.map(|i| i.container_runtime_version.clone()),
        kernel_version: info.map(|i| i.kernel_version.clone()),
        allocatable_accelerators: status
            .and_then(|s| s.allocatable.as_ref())
            .into_iter()
            .flatten()
            .filter(|(name, _)| is_accelerator(name))
            .map(|(name, q)| format!("{name}={}", q.0))
            .collect(),
    }
}

/// The newest time the snapshot records: in its Events, and in its pods' start times, conditions
/// and container states. A `kubectl cluster-info dump` has no capture time; this is its clock.
pub fn newest_time(snapshot: &Snapshot, events: &EventIndex) -> Option<Timestamp> {
    let mut newest = events.newest();
    let mut saw = |time: Option<&Time>| {
        if let Some(t) = time {
            newest = newest.max(Some(t.0));
        }
    };
    for pod in &snapshot.pods {
        let Some(status) = &pod.object.status else {
            continue;
        };
        saw(status.start_time.as_ref());
        for condition in status.conditions.iter().flatten() {
            saw(condition.last_transition_time.as_ref());
        }
        let containers = [
            &status.init_container_statuses,
            &status.container_statuses,
            &status.ephemeral_container_statuses,
        ];
        for container in containers.into_iter().flatten().flatten() {
            for state in [&container.state, &container.last_state]
                .into_iter()
                .flatten()
            {
                saw(state.running.as_ref().and_then(|r| r.started_at.as_ref()));
                if let Some(t) = &state.terminated {
                    saw(t.started_at.as_ref());
                    saw(t.finished_at.as_ref());
                }
            }
        }
    }
    newest
}

fn parse_time(text: &str) -> Option<Timestamp> {
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_ordered_by_time_not_by_text() {
        // `…00.5Z` sorts before `…00Z` as text, yet happened after it.
        let event = |name: &str, reason: &str, time: &str| {
            format!(
                "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {{name: {name}, namespace: ml}}\nregarding: {{kind: Pod, namespace: ml, name: vllm-0}}\nreason: {reason}\nnote: x\ntype: Warning\neventTime: \"{time}\"\n"
            )
        };
        let text = [
            event("a", "Later", "2025-05-01T10:00:00.500000Z"),
            event("b", "Earlier", "2025-05-01T10:00:00Z"),
        ]
        .join("---\n");
        let snapshot = hangar_core::snapshot_from_text("events.yaml", &text);
        assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
        let index = EventIndex::new(&snapshot);
        let reasons: Vec<&str> = index
            .about(&ObjectRef::new("Pod", "ml", "vllm-0"))
            .iter()
            .map(|e| e.reason.as_str())
            .collect();
        assert_eq!(reasons, ["Earlier", "Later"]);
        assert_eq!(
            index.newest().map(|t| t.to_string()).as_deref(),
            Some("2025-05-01T10:00:00.5Z")
        );
    }

    #[test]
    fn a_pending_pod_knows_the_node_taints_it_does_not_tolerate() {
        let text = r#"
apiVersion: v1
kind: Node
metadata: {name: gpu-1}
spec:
  taints:
  - {key: nvidia.com/gpu, value: present, effect: NoSchedule}
  - {key: team, value: ml, effect: PreferNoSchedule}
---
apiVersion: v1
kind: Node
metadata: {name: gpu-2}
spec:
  taints:
  - {key: nvidia.com/gpu, value: present, effect: NoSchedule}
  - {key: dedicated, value: inference, effect: NoExecute}
---
apiVersion: v1
kind: Pod
metadata: {name: vllm-0, namespace: ml}
spec:
  containers: [{name: vllm, image: vllm/vllm-openai:v0.10.1}]
  tolerations: [{key: dedicated, operator: Exists}]
status: {phase: Pending}
"#;
        let snapshot = hangar_core::snapshot_from_text("dump.yaml", text);
        assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
        let evidence = pod_evidence(
            &snapshot.pods[0],
            Runtime::Vllm,
            &snapshot,
            &EventIndex::new(&snapshot),
            &Logs::default(),
        );
        assert_eq!(
            evidence.untolerated_taints,
            ["nvidia.com/gpu=present:NoSchedule"]
        );
    }

    #[test]
    fn a_recreated_pod_does_not_inherit_its_predecessors_events() {
        let event = |name: &str, uid: &str, kind: &str, reason: &str, message: &str| {
            format!(
                "apiVersion: v1\nkind: Event\nmetadata: {{name: {name}, namespace: ml}}\ninvolvedObject: {{kind: Pod, namespace: ml, name: vllm-0, uid: {uid}}}\nreason: {reason}\nmessage: \"{message}\"\ntype: {kind}\nsource: {{component: kubelet, host: gpu-1}}\nfirstTimestamp: \"2025-05-01T09:50:00Z\"\nlastTimestamp: \"2025-05-01T09:50:00Z\"\n"
            )
        };
        let pod = r#"
apiVersion: v1
kind: Pod
metadata: {name: vllm-0, namespace: ml, uid: uid-b}
spec:
  nodeName: gpu-2
  containers: [{name: vllm, image: vllm/vllm-openai:v0.10.1, args: [--model, m]}]
status:
  phase: Running
  conditions: [{type: Ready, status: "True", lastTransitionTime: "2025-05-01T10:01:00Z"}]
  containerStatuses:
  - name: vllm
    image: vllm/vllm-openai:v0.10.1
    imageID: ""
    ready: true
    restartCount: 0
    state: {running: {startedAt: "2025-05-01T10:00:00Z"}}
"#;
        let text = [
            pod.to_owned(),
            event(
                "vllm-0.a",
                "uid-a",
                "Warning",
                "Evicted",
                "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. Container vllm was using 60Gi, request is 0, has larger consumption of memory.",
            ),
            event("vllm-0.b", "uid-b", "Normal", "Started", "Started container vllm"),
        ]
        .join("---\n");
        let snapshot = hangar_core::snapshot_from_text("dump.yaml", &text);
        assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
        let index = EventIndex::new(&snapshot);
        let evidence = pod_evidence(
            &snapshot.pods[0],
            Runtime::Vllm,
            &snapshot,
            &index,
            &Logs::default(),
        );
        let reasons: Vec<&str> = evidence.events.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, ["Started"]);
        let diagnosis = crate::rules::diagnose(&evidence);
        assert_eq!(
            diagnosis.category,
            crate::verdict::Category::Healthy,
            "{diagnosis:?}"
        );
    }

    /// `ml/vllm-0`: a vLLM server, running and ready, and a native sidecar (an init container
    /// with `restartPolicy: Always`) with the fields `spec` and the status `status` (a flow
    /// mapping); `pod_ready` is the pod's Ready condition.
    fn with_native_sidecar(spec: &str, status: &str, pod_ready: &str) -> PodEvidence {
        let text = format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: vllm-0, namespace: ml}}
spec:
  initContainers:
  - {{{spec}, restartPolicy: Always}}
  containers:
  - {{name: vllm, image: "vllm/vllm-openai:v0.10.1", args: [--model, m]}}
status:
  phase: Running
  conditions: [{{type: Ready, status: "{pod_ready}", lastTransitionTime: "2025-05-01T10:01:00Z"}}]
  initContainerStatuses:
  - {status}
  containerStatuses:
  - {{name: vllm, image: "vllm/vllm-openai:v0.10.1", imageID: "", ready: true, restartCount: 0, state: {{running: {{startedAt: "2025-05-01T10:00:05Z"}}}}}}
"#
        );
        let snapshot = hangar_core::snapshot_from_text("dump.yaml", &text);
        assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
        pod_evidence(
            &snapshot.pods[0],
            Runtime::Vllm,
            &snapshot,
            &EventIndex::new(&snapshot),
            &Logs::default(),
        )
    }

    #[test]
    fn a_native_sidecar_that_crash_loops_beside_a_ready_server_is_the_sidecar() {
        let pod = with_native_sidecar(
            r#"name: log-shipper, image: "fluent/fluent-bit:3.2.2""#,
            r#"{name: log-shipper, image: "fluent/fluent-bit:3.2.2", imageID: "", ready: false, restartCount: 6, state: {waiting: {reason: CrashLoopBackOff}}, lastState: {terminated: {reason: Error, exitCode: 1, startedAt: "2025-05-01T10:09:58Z", finishedAt: "2025-05-01T10:10:00Z"}}}"#,
            "False",
        );
        let diagnosis = crate::rules::diagnose(&pod);
        assert_eq!(diagnosis.rule, "TRI-SIDECAR-CRASH", "{diagnosis:?}");
        assert!(
            diagnosis.summary.starts_with("Sidecar log-shipper "),
            "{}",
            diagnosis.summary
        );
        assert!(
            diagnosis.evidence[0]
                .source
                .contains("status.initContainerStatuses[log-shipper].lastState"),
            "{:?}",
            diagnosis.evidence
        );
        assert!(
            diagnosis.next_steps[0].contains("kubectl -n ml logs vllm-0 -c log-shipper --previous"),
            "{:?}",
            diagnosis.next_steps
        );
    }

    #[test]
    fn a_native_sidecar_oomkilled_again_and_again_is_confirmed_in_init_container_statuses() {
        let pod = with_native_sidecar(
            r#"name: istio-proxy, image: "docker.io/istio/proxyv2:1.24.0", resources: {limits: {memory: 128Mi}}"#,
            r#"{name: istio-proxy, image: "docker.io/istio/proxyv2:1.24.0", imageID: "", ready: false, restartCount: 9, state: {waiting: {reason: CrashLoopBackOff}}, lastState: {terminated: {reason: OOMKilled, exitCode: 137, startedAt: "2025-05-01T10:08:00Z", finishedAt: "2025-05-01T10:10:00Z"}}}"#,
            "False",
        );
        let diagnosis = crate::rules::diagnose(&pod);
        assert_eq!(diagnosis.rule, "TRI-HOST-OOM", "{diagnosis:?}");
        assert!(
            diagnosis.next_steps.iter().any(|s| s.contains(
                r#"jsonpath='{.status.initContainerStatuses[?(@.name=="istio-proxy")].lastState}'"#
            )),
            "{:?}",
            diagnosis.next_steps
        );
        assert!(
            diagnosis.evidence.iter().any(|e| e
                .source
                .contains("spec.initContainers[istio-proxy].resources")),
            "{:?}",
            diagnosis.evidence
        );
    }

    #[test]
    fn a_running_native_sidecar_is_up_beside_the_server_not_an_unfinished_init_container() {
        let spec = r#"name: istio-proxy, image: "docker.io/istio/proxyv2:1.24.0""#;
        let status = |ready: bool| {
            format!(
                r#"{{name: istio-proxy, image: "docker.io/istio/proxyv2:1.24.0", imageID: "", ready: {ready}, restartCount: 0, started: true, state: {{running: {{startedAt: "2025-05-01T10:00:00Z"}}}}}}"#
            )
        };
        let healthy = crate::rules::diagnose(&with_native_sidecar(spec, &status(true), "True"));
        assert_eq!(
            healthy.category,
            crate::verdict::Category::Healthy,
            "{healthy:?}"
        );
        assert!(
            healthy
                .summary
                .starts_with("All 2 containers are running and ready"),
            "{}",
            healthy.summary
        );
        assert!(
            healthy.evidence.iter().any(|e| {
                e.source
                    .contains("status.initContainerStatuses[istio-proxy]")
                    && e.text.starts_with("ready=true state=running")
            }),
            "{:?}",
            healthy.evidence
        );

        // Not ready, it keeps the pod from serving: its log is among the first things to read.
        let not_ready = crate::rules::diagnose(&with_native_sidecar(spec, &status(false), "False"));
        assert_eq!(
            not_ready.category,
            crate::verdict::Category::Unknown,
            "{not_ready:?}"
        );
        assert!(
            not_ready
                .next_steps
                .iter()
                .any(|s| s.starts_with("kubectl -n ml logs vllm-0 -c istio-proxy")),
            "{:?}",
            not_ready.next_steps
        );
    }
}
