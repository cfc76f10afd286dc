//! Reading one pod's evidence the way every rule needs it: which container is the model server,
//! what terminated and when, which events and log lines say what, and how each becomes an
//! evidence item that names its source.

use std::str::FromStr;

use hangar_core::Runtime;
use hangar_core::inventory::{runtime_from_command, runtime_from_image};
use k8s_openapi::jiff::Timestamp;

use crate::evidence::{
    Condition, ContainerEvidence, ContainerState, EventRecord, LogTail, PodEvidence,
};
use crate::rules::signatures::{Hit, Kind};
use crate::verdict::Evidence;

/// A failure older than this, in a container that has been running and ready since, is history.
pub(crate) const RECENT_SECONDS: i64 = 3600;

/// Evidence text longer than this is cut, so one log line cannot drown a verdict.
const MAX_TEXT: usize = 400;

/// `text`, cut at a character boundary when it is too long.
pub(crate) fn shorten(text: &str) -> String {
    let text = text.trim_end();
    if text.len() <= MAX_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

pub(crate) fn parse_time(text: &str) -> Option<Timestamp> {
    Timestamp::from_str(text.trim()).ok()
}

/// Seconds from `from` to `to`, when both parse.
pub(crate) fn seconds_between(from: Option<&str>, to: Option<&str>) -> Option<i64> {
    let from = parse_time(from?)?;
    let to = parse_time(to?)?;
    Some(to.as_second() - from.as_second())
}

/// When the evidence was gathered, or else the newest timestamp it holds (a lower bound).
pub(crate) fn now(pod: &PodEvidence) -> Option<Timestamp> {
    if let Some(at) = pod.observed_at.as_deref().and_then(parse_time) {
        return Some(at);
    }
    let mut stamps: Vec<&str> = Vec::new();
    for e in pod.events.iter().chain(&pod.node_events) {
        stamps.extend(e.last_seen.as_deref());
    }
    for c in &pod.conditions {
        stamps.extend(c.last_transition.as_deref());
    }
    for c in &pod.containers {
        for state in [&c.state, &c.last_state].into_iter().flatten() {
            match state {
                ContainerState::Running { started_at } => stamps.extend(started_at.as_deref()),
                ContainerState::Terminated {
                    started_at,
                    finished_at,
                    ..
                } => {
                    stamps.extend(started_at.as_deref());
                    stamps.extend(finished_at.as_deref());
                }
                ContainerState::Waiting { .. } => {}
            }
        }
    }
    stamps.into_iter().filter_map(parse_time).max()
}

/// Whether something that happened `at` is within the recent window before `now(pod)`.
/// Unknown times count as recent: triage would rather report a cause than hide one.
pub(crate) fn is_recent(pod: &PodEvidence, at: Option<&str>) -> bool {
    match (now(pod), at.and_then(parse_time)) {
        (Some(now), Some(at)) => now.as_second() - at.as_second() <= RECENT_SECONDS,
        _ => true,
    }
}

/// Whether something that happened `at` is close to the pod's latest failure (a container's
/// non-zero exit), before or after it. A node Xid an hour before a crash explains the crash even
/// when triage runs a day later, while the pod is still crash-looping.
pub(crate) fn near_failure(pod: &PodEvidence, at: Option<&str>) -> bool {
    let failed = pod
        .containers
        .iter()
        .flat_map(|c| [&c.state, &c.last_state].into_iter().flatten())
        .filter_map(|state| match state {
            ContainerState::Terminated {
                exit_code,
                finished_at,
                ..
            } if *exit_code != 0 => finished_at.as_deref().and_then(parse_time),
            _ => None,
        })
        .max();
    match (failed, at.and_then(parse_time)) {
        (Some(failed), Some(at)) => (failed.as_second() - at.as_second()).abs() <= RECENT_SECONDS,
        _ => false,
    }
}

/// How people write the runtime's name.
pub(crate) fn runtime_name(runtime: Runtime) -> &'static str {
    match runtime {
        Runtime::Vllm => "vLLM",
        Runtime::Tgi => "TGI",
        Runtime::Tei => "TEI",
        Runtime::Triton => "Triton",
        Runtime::Ollama => "Ollama",
        Runtime::Sglang => "SGLang",
        Runtime::Llamacpp => "llama.cpp",
        Runtime::Torchserve => "TorchServe",
        Runtime::Tfserving => "TF Serving",
        Runtime::Mlserver => "MLServer",
        Runtime::Nim => "NIM",
        Runtime::Rayserve => "Ray Serve",
        Runtime::Kserve => "KServe",
        Runtime::Seldon => "Seldon",
        Runtime::Kaito => "KAITO",
        Runtime::Kubeai => "KubeAI",
        Runtime::Lmdeploy => "LMDeploy",
        Runtime::Localai => "LocalAI",
        Runtime::Other => "The model server",
    }
}

/// The main containers, `spec.containers`: neither init containers nor native sidecars.
pub(crate) fn main_containers(pod: &PodEvidence) -> impl Iterator<Item = &ContainerEvidence> {
    pod.containers.iter().filter(|c| !c.init)
}

/// The containers that run for the pod's life: the main containers and the native sidecars,
/// which must be up and ready as they are. Not the init containers that run to completion.
pub(crate) fn long_running_containers(
    pod: &PodEvidence,
) -> impl Iterator<Item = &ContainerEvidence> {
    pod.containers.iter().filter(|c| !c.runs_to_completion())
}

/// Whether this container is a model server rather than a sidecar (a proxy, an auth gate, a log
/// shipper): it asks for an accelerator, or its image or command names a model server.
pub(crate) fn is_model_server(container: &ContainerEvidence) -> bool {
    !container.accelerators.is_empty()
        || runtime_from_command(&container.command_line).is_some()
        || runtime_from_image(&container.image).is_some()
}

/// Whether the container is running and ready.
pub(crate) fn up_and_ready(container: &ContainerEvidence) -> bool {
    container.ready && matches!(container.state, Some(ContainerState::Running { .. }))
}

/// Whether an init container finished its work (its current state is exit 0) and the pod's main
/// containers run: it is never running and ready, and this is its way of being healed. A native
/// sidecar that stopped is not done: the kubelet restarts it, and it heals by running and ready.
fn init_completed(pod: &PodEvidence, container: &ContainerEvidence) -> bool {
    container.runs_to_completion()
        && matches!(
            container.state,
            Some(ContainerState::Terminated { exit_code: 0, .. })
        )
        && main_containers(pod).all(|c| matches!(c.state, Some(ContainerState::Running { .. })))
}

/// Whether the pod is in trouble: it is not running, a main container or native sidecar is not
/// running and ready, a container failed or a server stopped and that still matters, its Ready
/// condition is not true, a warning Event about it is recent, or its log names a cause (an OOM, a
/// refused load, a replica a serving framework stopped) that no request served since has
/// superseded: Ollama and Ray Serve stay ready while the model behind them fails. The one test
/// every rule shares: a log line explains nothing about a pod that is up, ready and serving, and
/// a healthy pod is not blamed for an Xid on another GPU of its node.
pub(crate) fn troubled(pod: &PodEvidence, hits: &[Hit<'_>]) -> bool {
    let not_running = pod.phase.as_deref() != Some("Running");
    let container_down = long_running_containers(pod).any(|c| !up_and_ready(c));
    // A server or sidecar that stopped, even with exit 0, restarted: only init containers that
    // run to completion end on purpose.
    let failing = terminations(pod)
        .iter()
        .any(|t| (t.exit_code != 0 || !t.container.runs_to_completion()) && t.matters(pod));
    let not_ready = pod
        .conditions
        .iter()
        .any(|c| c.kind == "Ready" && c.status != "True");
    let warned = pod
        .events
        .iter()
        .any(|e| e.kind == "Warning" && is_recent(pod, e.last_seen.as_deref()));
    let logged = hits.iter().any(|h| {
        (h.kind().names_a_cause() || h.kind() == Kind::ReplicaFailed)
            && still_current(pod, h)
            && !superseded(hits, h)
    });
    not_running || container_down || failing || not_ready || warned || logged
}

/// Whether the server answered requests after `hit`, in the same log: whatever the line
/// reported, the server got past it (a hub warning before a `200 OK`).
pub(crate) fn superseded(hits: &[Hit<'_>], hit: &Hit<'_>) -> bool {
    hits.iter().any(|other| {
        other.kind() == Kind::Traffic
            && std::ptr::eq(other.line.tail, hit.line.tail)
            && other.line.index > hit.line.index
    })
}

/// Whether a log hit is still current: it is in the running container's log, or in the previous
/// container's log and that container's termination still matters.
pub(crate) fn still_current(pod: &PodEvidence, hit: &Hit<'_>) -> bool {
    if !hit.line.previous {
        return true;
    }
    terminations(pod)
        .into_iter()
        .filter(|t| std::ptr::eq(t.container, hit.line.container) && t.field == "lastState")
        .all(|t| t.matters(pod))
}

/// Whether container `c` itself failed: it is not running and ready, and it exited non-zero
/// recently. Stricter than `troubled`: a timeout a server retried past is not its cause.
pub(crate) fn container_failed(pod: &PodEvidence, c: &ContainerEvidence) -> bool {
    !up_and_ready(c)
        && terminations(pod)
            .iter()
            .any(|t| std::ptr::eq(t.container, c) && t.exit_code != 0 && t.matters(pod))
}

/// The model server's runtime in this container: the container's own image or command first,
/// since a KServe, Ray or NIM pod may run vLLM or TGI underneath.
pub(crate) fn runtime_of(pod: &PodEvidence, container: &ContainerEvidence) -> Runtime {
    let concrete = |r: Runtime| {
        !matches!(
            r,
            Runtime::Other
                | Runtime::Kserve
                | Runtime::Rayserve
                | Runtime::Seldon
                | Runtime::Kaito
                | Runtime::Kubeai
                | Runtime::Nim
        )
    };
    // KServe's Hugging Face server names its engine with a flag.
    let backend = crate::rules::steps::flag(&container.command_line, &["--backend"]);
    if backend == Some("vllm") {
        return Runtime::Vllm;
    }
    runtime_from_command(&container.command_line)
        .map(|(_, r)| r)
        .filter(|r| concrete(*r))
        .or_else(|| runtime_from_image(&container.image).filter(|r| concrete(*r)))
        .unwrap_or(pod.runtime)
}

/// `status.containerStatuses[name]` or `status.initContainerStatuses[name]`, for sources.
pub(crate) fn status_path(pod: &PodEvidence, container: &ContainerEvidence) -> String {
    format!(
        "{} status.{}[{}]",
        pod.pod,
        status_list(container),
        container.name
    )
}

/// The list of the pod's status that holds the container's: init containers, native sidecars
/// among them, are in `initContainerStatuses`.
fn status_list(container: &ContainerEvidence) -> &'static str {
    if container.init {
        "initContainerStatuses"
    } else {
        "containerStatuses"
    }
}

/// A container that terminated, from its current state or its last one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Termination<'a> {
    pub container: &'a ContainerEvidence,
    /// `state` or `lastState`.
    pub field: &'static str,
    pub reason: Option<&'a str>,
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub message: Option<&'a str>,
    pub started_at: Option<&'a str>,
    pub finished_at: Option<&'a str>,
}

impl<'a> Termination<'a> {
    pub(crate) fn reason_is(&self, reason: &str) -> bool {
        self.reason == Some(reason)
    }

    /// How long the container ran before it stopped, in seconds.
    pub(crate) fn lifetime_seconds(&self) -> Option<i64> {
        seconds_between(self.started_at, self.finished_at)
    }

    /// Whether this termination still matters: the container is down or restarting, or it
    /// stopped within the recent window. An init container that completed since, under running
    /// main containers, is healed as a ready main container is; a native sidecar only by running
    /// and ready.
    pub(crate) fn matters(&self, pod: &PodEvidence) -> bool {
        let healed = up_and_ready(self.container) || init_completed(pod, self.container);
        self.field == "state" || !healed || is_recent(pod, self.finished_at)
    }

    pub(crate) fn evidence(&self, pod: &PodEvidence) -> Evidence {
        let mut text = format!(
            "{}.terminated: reason={} exitCode={}",
            self.field,
            self.reason.unwrap_or("-"),
            self.exit_code
        );
        if let Some(signal) = self.signal {
            text.push_str(&format!(" signal={signal}"));
        }
        if let Some(at) = self.started_at {
            text.push_str(&format!(" startedAt={at}"));
        }
        if let Some(at) = self.finished_at {
            text.push_str(&format!(" finishedAt={at}"));
        }
        if let Some(message) = self.message.filter(|m| !m.trim().is_empty()) {
            text.push_str(&format!(" message={:?}", shorten(message)));
        }
        text.push_str(&format!(" restartCount={}", self.container.restart_count));
        Evidence {
            source: format!(
                "{}.{} ({})",
                status_path(pod, self.container),
                self.field,
                pod.origin
            ),
            text,
            at: self.finished_at.map(str::to_owned),
        }
    }
}

/// Every termination recorded in the pod's container statuses, current state first.
pub(crate) fn terminations(pod: &PodEvidence) -> Vec<Termination<'_>> {
    let mut found = Vec::new();
    for container in &pod.containers {
        for (field, state) in [
            ("state", &container.state),
            ("lastState", &container.last_state),
        ] {
            if let Some(ContainerState::Terminated {
                reason,
                exit_code,
                signal,
                message,
                started_at,
                finished_at,
            }) = state
            {
                found.push(Termination {
                    container,
                    field,
                    reason: reason.as_deref(),
                    exit_code: *exit_code,
                    signal: *signal,
                    message: message.as_deref(),
                    started_at: started_at.as_deref(),
                    finished_at: finished_at.as_deref(),
                });
            }
        }
    }
    found
}

/// A container waiting to start, with the kubelet's reason.
pub(crate) struct Waiting<'a> {
    pub container: &'a ContainerEvidence,
    pub reason: &'a str,
    pub message: Option<&'a str>,
}

impl Waiting<'_> {
    pub(crate) fn evidence(&self, pod: &PodEvidence) -> Evidence {
        let mut text = format!("state.waiting: reason={}", self.reason);
        if let Some(message) = self.message {
            text.push_str(&format!(" message={:?}", shorten(message)));
        }
        Evidence {
            source: format!(
                "{}.state ({})",
                status_path(pod, self.container),
                pod.origin
            ),
            text,
            at: None,
        }
    }
}

pub(crate) fn waiting(pod: &PodEvidence) -> Vec<Waiting<'_>> {
    pod.containers
        .iter()
        .filter_map(|container| match &container.state {
            Some(ContainerState::Waiting { reason, message }) => Some(Waiting {
                container,
                reason: reason.as_deref().unwrap_or_default(),
                message: message.as_deref(),
            }),
            _ => None,
        })
        .collect()
}

/// The pod's events with one of these reasons, oldest first.
pub(crate) fn events<'a>(pod: &'a PodEvidence, reasons: &[&str]) -> Vec<&'a EventRecord> {
    pod.events
        .iter()
        .filter(|e| reasons.contains(&e.reason.as_str()))
        .collect()
}

/// An event as evidence: `Warning FailedScheduling (x12): 0/8 nodes are available: …`.
pub(crate) fn event_evidence(about: &str, event: &EventRecord) -> Evidence {
    let count = if event.count > 1 {
        format!(" (x{})", event.count)
    } else {
        String::new()
    };
    let from = event
        .source
        .as_deref()
        .map(|s| format!(" from {s}"))
        .unwrap_or_default();
    Evidence {
        source: format!("Event about {about}{from} ({})", event.origin),
        text: format!(
            "{} {}{count}: {}",
            event.kind,
            event.reason,
            shorten(&event.message)
        ),
        at: event.last_seen.clone(),
    }
}

pub(crate) fn pod_event(pod: &PodEvidence, event: &EventRecord) -> Evidence {
    event_evidence(&pod.pod.to_string(), event)
}

pub(crate) fn node_event(pod: &PodEvidence, event: &EventRecord) -> Evidence {
    let node = pod.node.as_ref().map(|n| n.name.as_str()).unwrap_or("-");
    event_evidence(&format!("Node/{node}"), event)
}

/// A condition of the pod's node, by type.
pub(crate) fn node_condition<'a>(pod: &'a PodEvidence, kind: &str) -> Option<&'a Condition> {
    pod.node
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.kind == kind)
}

pub(crate) fn node_condition_evidence(pod: &PodEvidence, condition: &Condition) -> Evidence {
    let node = pod.node.as_ref();
    let mut text = format!(
        "{}={} reason={}",
        condition.kind,
        condition.status,
        condition.reason.as_deref().unwrap_or("-")
    );
    if let Some(message) = &condition.message {
        text.push_str(&format!(" message={:?}", shorten(message)));
    }
    Evidence {
        source: format!(
            "Node/{} status.conditions[{}] ({})",
            node.map(|n| n.name.as_str()).unwrap_or("-"),
            condition.kind,
            node.map(|n| n.origin.to_string()).unwrap_or_default()
        ),
        text,
        at: condition.last_transition.clone(),
    }
}

/// When the pod's status last changed: its newest condition transition or container end. An
/// evicted pod keeps its `Evicted` status forever; this dates it.
pub(crate) fn ended_at(pod: &PodEvidence) -> Option<String> {
    let conditions = pod
        .conditions
        .iter()
        .filter_map(|c| c.last_transition.as_deref());
    let ends = terminations(pod).into_iter().filter_map(|t| t.finished_at);
    conditions
        .chain(ends)
        .filter_map(|t| parse_time(t).map(|parsed| (parsed, t)))
        .max_by_key(|(parsed, _)| *parsed)
        .map(|(_, t)| t.to_owned())
}

/// Evidence that the pod was evicted for a reason `matches` recognises in the message: its
/// `Evicted` status (when `status_counts` too) and its latest recent `Evicted` event. `None` when
/// there is neither.
pub(crate) fn eviction_evidence(
    pod: &PodEvidence,
    matches: &dyn Fn(&str) -> bool,
    status_counts: bool,
) -> Option<Vec<Evidence>> {
    let status = status_counts
        && pod.reason.as_deref() == Some("Evicted")
        && pod.message.as_deref().is_some_and(matches);
    let event = events(pod, &["Evicted"])
        .into_iter()
        .rfind(|e| matches(&e.message) && is_recent(pod, e.last_seen.as_deref()));
    if !status && event.is_none() {
        return None;
    }
    let mut evidence = Vec::new();
    if status {
        evidence.push(pod_status_evidence(pod));
    }
    evidence.extend(event.map(|e| pod_event(pod, e)));
    Some(evidence)
}

pub(crate) fn pod_status_evidence(pod: &PodEvidence) -> Evidence {
    Evidence {
        source: format!("{} status ({})", pod.pod, pod.origin),
        text: format!(
            "phase={} reason={} message={:?}",
            pod.phase.as_deref().unwrap_or("-"),
            pod.reason.as_deref().unwrap_or("-"),
            shorten(pod.message.as_deref().unwrap_or_default())
        ),
        at: None,
    }
}

/// One line of a container's log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    pub container: &'a ContainerEvidence,
    pub tail: &'a LogTail,
    /// From the previous (crashed) container rather than the running one.
    pub previous: bool,
    pub index: usize,
    pub text: &'a str,
}

impl Line<'_> {
    pub(crate) fn evidence(&self) -> Evidence {
        let which = if self.previous { "previous" } else { "current" };
        Evidence {
            source: format!(
                "log {} ({which}) {}",
                self.container.name,
                self.tail.locate(self.index)
            ),
            text: shorten(self.text),
            at: None,
        }
    }
}

/// Every log tail of the pod: `(container, previous?, tail)`, previous logs first because they
/// hold the crash.
pub(crate) fn tails(pod: &PodEvidence) -> Vec<(&ContainerEvidence, bool, &LogTail)> {
    let mut found = Vec::new();
    for container in &pod.containers {
        if let Some(tail) = &container.previous_log {
            found.push((container, true, tail));
        }
    }
    for container in &pod.containers {
        if let Some(tail) = &container.log {
            found.push((container, false, tail));
        }
    }
    found
}

/// The kubectl commands that confirm a verdict, with the pod's own namespace and name.
pub(crate) struct Kubectl<'a> {
    pub namespace: &'a str,
    pub pod: &'a str,
}

impl<'a> Kubectl<'a> {
    pub(crate) fn of(pod: &'a PodEvidence) -> Self {
        Kubectl {
            namespace: &pod.pod.namespace,
            pod: &pod.pod.name,
        }
    }

    pub(crate) fn describe(&self) -> String {
        format!("kubectl -n {} describe pod {}", self.namespace, self.pod)
    }

    pub(crate) fn events(&self) -> String {
        format!(
            "kubectl get events -n {} --field-selector involvedObject.name={} --sort-by=.lastTimestamp",
            self.namespace, self.pod
        )
    }

    /// `kubectl logs`, of the previous container when `previous`, piped into `grep` when given.
    pub(crate) fn logs(&self, container: &str, previous: bool, grep: Option<&str>) -> String {
        let mut command = format!(
            "kubectl -n {} logs {} -c {container}",
            self.namespace, self.pod
        );
        if previous {
            command.push_str(" --previous");
        }
        if let Some(pattern) = grep {
            command.push_str(&format!(" | grep -iE \"{pattern}\""));
        }
        command
    }

    /// The container's last termination, straight from the API.
    pub(crate) fn last_state(&self, container: &ContainerEvidence) -> String {
        format!(
            "kubectl -n {} get pod {} -o jsonpath='{{.status.{}[?(@.name==\"{}\")].lastState}}'",
            self.namespace,
            self.pod,
            status_list(container),
            container.name
        )
    }

    pub(crate) fn node(node: &str) -> String {
        format!("kubectl describe node {node}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortens_long_lines_at_a_character_boundary() {
        let long = "é".repeat(300);
        let short = shorten(&long);
        assert!(short.len() <= MAX_TEXT + '…'.len_utf8());
        assert!(short.ends_with('…'));
        assert_eq!(shorten("ok  "), "ok");
    }

    #[test]
    fn finds_the_server_under_a_platform() {
        let pod = PodEvidence {
            runtime: Runtime::Kserve,
            ..PodEvidence::default()
        };
        let kserve_vllm = ContainerEvidence {
            image: "kserve/huggingfaceserver:v0.15.0-gpu".into(),
            command_line: "--model_name=gemma --backend=vllm".into(),
            ..ContainerEvidence::default()
        };
        assert_eq!(runtime_of(&pod, &kserve_vllm), Runtime::Vllm);
        let tgi = ContainerEvidence {
            image: "ghcr.io/huggingface/text-generation-inference:3.0".into(),
            ..ContainerEvidence::default()
        };
        assert_eq!(runtime_of(&pod, &tgi), Runtime::Tgi);
        assert_eq!(
            runtime_of(&pod, &ContainerEvidence::default()),
            Runtime::Kserve
        );
    }

    #[test]
    fn the_clock_falls_back_to_the_newest_timestamp() {
        let mut pod = PodEvidence::default();
        pod.events.push(EventRecord {
            last_seen: Some("2025-03-01T10:00:00Z".into()),
            ..EventRecord::default()
        });
        pod.events.push(EventRecord {
            last_seen: Some("2025-03-01T12:00:00Z".into()),
            ..EventRecord::default()
        });
        assert_eq!(
            now(&pod).map(|t| t.to_string()).as_deref(),
            Some("2025-03-01T12:00:00Z")
        );
        assert!(is_recent(&pod, Some("2025-03-01T11:30:00Z")));
        assert!(!is_recent(&pod, Some("2025-03-01T10:30:00Z")));
        pod.observed_at = Some("2025-03-02T00:00:00Z".into());
        assert!(!is_recent(&pod, Some("2025-03-01T12:00:00Z")));
    }

    #[test]
    fn near_failure_is_measured_from_the_last_non_zero_exit() {
        let mut pod = PodEvidence::default();
        pod.containers.push(crate::evidence::ContainerEvidence {
            last_state: Some(ContainerState::Terminated {
                reason: Some("Error".into()),
                exit_code: 1,
                signal: None,
                message: None,
                started_at: None,
                finished_at: Some("2025-03-01T12:00:00Z".into()),
            }),
            ..Default::default()
        });
        pod.observed_at = Some("2025-03-03T12:00:00Z".into());
        assert!(near_failure(&pod, Some("2025-03-01T11:50:00Z")));
        assert!(!near_failure(&pod, Some("2025-02-27T11:50:00Z")));
        assert!(!is_recent(&pod, Some("2025-03-01T11:50:00Z")));
    }
}
