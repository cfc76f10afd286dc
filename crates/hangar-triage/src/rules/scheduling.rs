//! Placement: pods the scheduler cannot place, pods it preempted, and pods whose node went away
//! or filled its disk.
//!
//! Sides, and why: too few free GPUs (or CPU, memory) is **infrastructure** capacity. A GPU
//! node's taint the pod does not tolerate, a node selector or affinity no node matches, or a
//! claim that cannot bind is **configuration**: the pod's spec keeps it off nodes that exist.
//! Taints the node controller sets (`node.kubernetes.io/not-ready`, `unreachable`, …), cordoned
//! nodes, preemption, a NotReady node and disk-pressure evictions are **infrastructure**. The
//! last three have no category of their own: the remedy is placing the pod elsewhere, so they
//! are `scheduling` too. A disk-pressure eviction whose message names one of this pod's containers
//! as the largest consumer, while that container requests no ephemeral storage, is
//! **configuration**: the pod filled the node's disk with a model cache it never declared.
//! A pod the kubelet rejects at admission after the scheduler placed it (`UnexpectedAdmissionError`:
//! the device plugin reports fewer GPUs than the scheduler counted) is **infrastructure**.

use std::sync::LazyLock;

use regex::Regex;

use crate::evidence::{ContainerEvidence, EventRecord, PodEvidence};
use crate::rules::facts::{
    Kubectl, events, is_recent, main_containers, node_condition, node_condition_evidence,
    pod_event, pod_status_evidence,
};
use crate::rules::signatures::Hits;
use crate::rules::steps::gpus;
use crate::verdict::{Category, Diagnosis, Side};

/// One reason of a `FailedScheduling` message: `6 Insufficient nvidia.com/gpu`.
#[derive(Debug, PartialEq, Eq)]
struct Reason<'a> {
    nodes: u32,
    text: &'a str,
}

/// The per-node reasons of `0/8 nodes are available: 2 node(s) had untolerated taint {…}, 6
/// Insufficient nvidia.com/gpu. preemption: …`.
fn reasons(message: &str) -> Vec<Reason<'_>> {
    let body = message
        .split_once(" nodes are available: ")
        .map(|(_, rest)| rest)
        .unwrap_or(message);
    let body = body.split(". preemption:").next().unwrap_or(body);
    let body = body.trim_end_matches('.');
    let mut found = Vec::new();
    // Taints are written `{key: value}` and may hold commas; split only outside braces.
    let mut depth = 0;
    let mut start = 0;
    for (i, ch) in body.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                found.extend(reason(&body[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    found.extend(reason(&body[start..]));
    found
}

fn reason(part: &str) -> Option<Reason<'_>> {
    let part = part.trim();
    if part.is_empty() {
        return None;
    }
    match part.split_once(' ') {
        Some((count, text)) if count.chars().all(|c| c.is_ascii_digit()) => Some(Reason {
            nodes: count.parse().unwrap_or(0),
            text,
        }),
        _ => Some(Reason {
            nodes: 0,
            text: part,
        }),
    }
}

/// The taint `{key: value}` in a reason, as `(key, value)`.
fn taint(text: &str) -> Option<(&str, &str)> {
    let inner = text.split_once('{')?.1.split_once('}')?.0;
    let (key, value) = inner.split_once(':').unwrap_or((inner, ""));
    Some((key.trim(), value.trim()))
}

/// `2 node(s) had untolerated taint {nvidia.com/gpu: present}`, or since Kubernetes 1.34
/// `2 node(s) had untolerated taint(s)`.
fn is_taint_reason(reason: &Reason<'_>) -> bool {
    reason.text.contains("untolerated taint")
}

/// A node's taint as the evidence writes it (`key=value:Effect`), as `(key, value)`.
fn node_taint(text: &str) -> (&str, &str) {
    let taint = text.rsplit_once(':').map_or(text, |(taint, _effect)| taint);
    taint.split_once('=').unwrap_or((taint, ""))
}

/// The untolerated taints a scheduler message names; since Kubernetes 1.34 it only counts the
/// nodes (`2 node(s) had untolerated taint(s)`), and the taints of the input's nodes the pod
/// does not tolerate stand in. `None` when no reason is about taints.
fn untolerated<'a>(reasons: &[Reason<'a>], known: &'a [String]) -> Option<Vec<(&'a str, &'a str)>> {
    if !reasons.iter().any(is_taint_reason) {
        return None;
    }
    let named: Vec<(&str, &str)> = reasons
        .iter()
        .filter(|r| is_taint_reason(r))
        .filter_map(|r| taint(r.text))
        .collect();
    if !named.is_empty() {
        return Some(named);
    }
    Some(known.iter().map(|t| node_taint(t)).collect())
}

fn is_accelerator_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "gpu",
        "nvidia",
        "amd.com",
        "accelerator",
        "habana",
        "neuron",
        "tpu",
    ]
    .iter()
    .any(|k| key.contains(k))
}

/// Why the pod cannot be placed.
enum Verdict {
    GpuTaint(String),
    Claim,
    Capacity(String),
    NodeProblem(String),
    Selector,
    OtherTaint(String),
    /// Nodes carry a taint the pod does not tolerate, and neither the message nor the input
    /// names it: how many nodes.
    UnnamedTaint(u32),
}

/// Taints Kubernetes and cloud providers set themselves: never the GPU pool's.
fn is_system_taint(key: &str) -> bool {
    [
        "node.kubernetes.io/",
        "node-role.kubernetes.io/",
        "node.cloudprovider.kubernetes.io/",
    ]
    .iter()
    .any(|p| key.starts_with(p))
}

fn judge(reasons: &[Reason<'_>], wants_gpu: bool, known_taints: &[String]) -> Verdict {
    let tainted = untolerated(reasons, known_taints);
    // Taints nobody named: the nodes the message counts as tainted.
    let unnamed = tainted.as_ref().filter(|t| t.is_empty()).map(|_| {
        reasons
            .iter()
            .filter(|r| is_taint_reason(r))
            .map(|r| r.nodes)
            .fold(0, u32::saturating_add)
    });
    let taints = tainted.unwrap_or_default();
    let short_of_gpus = reasons
        .iter()
        .any(|r| r.text.starts_with("Insufficient ") && is_accelerator_key(r.text));
    // A taint named for accelerators keeps the pod off the GPU pool. Another custom taint does
    // too when the pod wants GPUs and no node is merely out of them.
    if let Some((key, _)) = taints.iter().find(|(k, _)| {
        is_accelerator_key(k) || (wants_gpu && !short_of_gpus && !is_system_taint(k))
    }) {
        return Verdict::GpuTaint((*key).to_owned());
    }
    // A GPU pod kept off tainted nodes nobody names, and no node merely out of GPUs: the
    // tainted ones are most likely the GPU pool. (With nodes out of GPUs, the tainted ones are
    // more likely the control plane's, and capacity is the answer below.)
    if let Some(nodes) = unnamed.filter(|_| wants_gpu && !short_of_gpus) {
        return Verdict::UnnamedTaint(nodes);
    }
    if reasons
        .iter()
        .any(|r| r.text.contains("unbound immediate PersistentVolumeClaims"))
    {
        return Verdict::Claim;
    }
    if let Some(r) = reasons.iter().find(|r| r.text.starts_with("Insufficient ")) {
        let resource = r.text.trim_start_matches("Insufficient ").to_owned();
        let gpu = reasons
            .iter()
            .find(|r| r.text.starts_with("Insufficient ") && is_accelerator_key(r.text));
        return Verdict::Capacity(
            gpu.map(|g| g.text.trim_start_matches("Insufficient ").to_owned())
                .unwrap_or(resource),
        );
    }
    if let Some((key, _)) = taints
        .iter()
        .find(|(k, _)| k.starts_with("node.kubernetes.io/"))
    {
        return Verdict::NodeProblem((*key).to_owned());
    }
    if reasons
        .iter()
        .any(|r| r.text.contains("were unschedulable") || r.text.contains("Too many pods"))
    {
        return Verdict::NodeProblem("unschedulable".into());
    }
    if reasons
        .iter()
        .any(|r| r.text.contains("node affinity/selector") || r.text.contains("affinity rules"))
    {
        return Verdict::Selector;
    }
    match (taints.first(), unnamed) {
        (Some((key, _)), _) => Verdict::OtherTaint((*key).to_owned()),
        (None, Some(nodes)) => Verdict::UnnamedTaint(nodes),
        (None, None) => Verdict::NodeProblem("no node fits".into()),
    }
}

fn gpu_wanted(pod: &PodEvidence) -> Option<(String, u32)> {
    main_containers(pod).find_map(|c: &ContainerEvidence| gpus(c))
}

/// The scheduler cannot place the pod.
pub(crate) fn failed_scheduling(pod: &PodEvidence, _scan: &Hits<'_>) -> Option<Diagnosis> {
    if pod.phase.as_deref().is_some_and(|p| p != "Pending") {
        return None;
    }
    // A pod still marked unschedulable is explained by the scheduler's last word however old it
    // is; Events expire (after an hour by default), the condition's message does not.
    let unschedulable = pod
        .conditions
        .iter()
        .find(|c| c.kind == "PodScheduled" && c.status == "False");
    let latest = events(pod, &["FailedScheduling"])
        .into_iter()
        .rfind(|e| unschedulable.is_some() || is_recent(pod, e.last_seen.as_deref()));
    let from_condition;
    let event: &EventRecord = match latest {
        Some(event) => event,
        None => {
            let condition = unschedulable?;
            from_condition = EventRecord {
                kind: "Warning".into(),
                reason: "FailedScheduling".into(),
                message: condition.message.clone()?,
                count: 1,
                source: None,
                first_seen: condition.last_transition.clone(),
                last_seen: condition.last_transition.clone(),
                object_uid: None,
                origin: pod.origin.clone(),
            };
            &from_condition
        }
    };
    let reasons = reasons(&event.message);
    let wanted = gpu_wanted(pod);
    let want_text = wanted
        .as_ref()
        .map(|(r, n)| format!("{r}={n}"))
        .unwrap_or_else(|| "no accelerators".into());
    let kubectl = Kubectl::of(pod);
    let mut evidence = Vec::new();
    if latest.is_some() {
        evidence.push(pod_event(pod, event));
    }
    evidence.extend(unschedulable.map(|c| crate::verdict::Evidence {
        source: format!(
            "{} status.conditions[PodScheduled] ({})",
            pod.pod, pod.origin
        ),
        text: match (&latest, &c.message) {
            (None, Some(message)) => format!(
                "PodScheduled=False reason={} message={message}",
                c.reason.as_deref().unwrap_or("-")
            ),
            _ => format!(
                "PodScheduled=False reason={}",
                c.reason.as_deref().unwrap_or("-")
            ),
        },
        at: c.last_transition.clone(),
    }));
    let gpu_columns = "kubectl get nodes -o custom-columns='NAME:.metadata.name,GPU:.status.allocatable.nvidia\\.com/gpu,TAINTS:.spec.taints[*].key'";
    let names_no_taint = reasons
        .iter()
        .any(|r| is_taint_reason(r) && taint(r.text).is_none());
    if names_no_taint && !pod.untolerated_taints.is_empty() {
        evidence.push(crate::verdict::Evidence {
            source: format!(
                "{} spec.tolerations against the nodes' taints ({})",
                pod.pod, pod.origin
            ),
            text: format!("not tolerated: {}", pod.untolerated_taints.join(", ")),
            at: None,
        });
    }
    let judged = judge(&reasons, wanted.is_some(), &pod.untolerated_taints);
    let (side, summary, next_steps) = match judged {
        Verdict::GpuTaint(key) => (
            Side::Configuration,
            format!("The GPU nodes carry the taint `{key}` and the pod does not tolerate it."),
            vec![
                format!("Add a toleration to the pod template: tolerations: [{{key: \"{key}\", operator: Exists, effect: NoSchedule}}]."),
                format!("List the nodes' GPUs and taints: {gpu_columns}"),
                format!("Confirm: {}", kubectl.events()),
            ],
        ),
        Verdict::Claim => (
            Side::Configuration,
            "The pod waits for a PersistentVolumeClaim that cannot bind (a missing StorageClass, or no volume that matches).".to_owned(),
            vec![
                format!("See why the claim is pending: kubectl -n {} get pvc and kubectl -n {} describe pvc", pod.pod.namespace, pod.pod.namespace),
                "Check that the claim's storageClassName exists (kubectl get storageclass) and that its provisioner runs.".into(),
                format!("Confirm: {}", kubectl.events()),
            ],
        ),
        Verdict::Capacity(resource) => (
            Side::Infrastructure,
            format!("No node has enough free {resource} for the pod ({want_text})."),
            vec![
                format!("The pod asks for {want_text} per replica: free GPUs (scale down other workloads), add GPU nodes (autoscaler or node pool), or shard the model to fit smaller nodes."),
                format!("See what is allocatable and used: {gpu_columns} and kubectl describe nodes | grep -A 8 'Allocated resources'"),
                format!("Confirm: {}", kubectl.events()),
            ],
        ),
        Verdict::NodeProblem(key) => (
            Side::Infrastructure,
            format!("The nodes that could take the pod are unavailable ({key})."),
            vec![
                "Check the nodes: kubectl get nodes and kubectl describe node on the NotReady or cordoned ones.".into(),
                format!("Confirm: {}", kubectl.events()),
            ],
        ),
        Verdict::Selector => (
            Side::Configuration,
            "No node matches the pod's node selector or affinity.".to_owned(),
            vec![
                format!("Compare the pod's placement rules with the nodes' labels: kubectl -n {} get pod {} -o jsonpath='{{.spec.nodeSelector}} {{.spec.affinity}}' and kubectl get nodes --show-labels", pod.pod.namespace, pod.pod.name),
                "Fix the selector (a GPU product label such as nvidia.com/gpu.product must match the nodes' exact value), or label the intended nodes.".into(),
                format!("Confirm: {}", kubectl.events()),
            ],
        ),
        Verdict::OtherTaint(key) => (
            Side::Configuration,
            format!("The nodes carry the taint `{key}` and the pod does not tolerate it."),
            vec![
                format!("Add a toleration for `{key}` to the pod template, or place the pod elsewhere."),
                format!("Confirm: {}", kubectl.events()),
            ],
        ),
        Verdict::UnnamedTaint(nodes) => (
            Side::Configuration,
            format!("{nodes} node(s) carry a taint the pod does not tolerate (the scheduler no longer names it): the pod lacks a toleration for the nodes meant for it."),
            vec![
                format!("Find the taint on the nodes meant for the pod: {gpu_columns}, or kubectl describe node NODE | grep Taints"),
                "Add a toleration for it to the pod template: tolerations: [{key: \"KEY\", operator: Exists, effect: NoSchedule}].".into(),
                format!("Confirm: {}", kubectl.events()),
            ],
        ),
    };
    Some(Diagnosis {
        rule: "TRI-SCHEDULING",
        category: Category::Scheduling,
        side: Some(side),
        confidence: 0.9,
        summary,
        evidence,
        next_steps,
    })
}

/// The scheduler preempted the pod for a higher-priority one.
pub(crate) fn preempted(pod: &PodEvidence, _scan: &Hits<'_>) -> Option<Diagnosis> {
    let event = events(pod, &["Preempted"])
        .into_iter()
        .rfind(|e| is_recent(pod, e.last_seen.as_deref()));
    let condition = pod.conditions.iter().find(|c| {
        c.kind == "DisruptionTarget" && c.reason.as_deref() == Some("PreemptionByScheduler")
    });
    if event.is_none() && condition.is_none() {
        return None;
    }
    let mut evidence: Vec<_> = event.map(|e| pod_event(pod, e)).into_iter().collect();
    evidence.extend(condition.map(|c| crate::verdict::Evidence {
        source: format!(
            "{} status.conditions[DisruptionTarget] ({})",
            pod.pod, pod.origin
        ),
        text: format!(
            "DisruptionTarget={} reason=PreemptionByScheduler message={:?}",
            c.status,
            c.message.as_deref().unwrap_or_default()
        ),
        at: c.last_transition.clone(),
    }));
    Some(Diagnosis {
        rule: "TRI-PREEMPTED",
        category: Category::Scheduling,
        side: Some(Side::Infrastructure),
        confidence: 0.85,
        summary: "The scheduler preempted the pod to make room for a higher-priority pod.".into(),
        evidence,
        next_steps: vec![
            format!("Give the endpoint a PriorityClass that matches its importance: kubectl -n {} get pod {} -o jsonpath='{{.spec.priorityClassName}}' and kubectl get priorityclass", pod.pod.namespace, pod.pod.name),
            "Add GPU capacity or a PodDisruptionBudget-aware quota so serving is not the first thing preempted.".into(),
            format!("Confirm: {}", Kubectl::of(pod).events()),
        ],
    })
}

/// The pod's node stopped reporting, or the kubelet evicted the pod because the node's disk
/// filled.
pub(crate) fn node_lost(pod: &PodEvidence, _scan: &Hits<'_>) -> Option<Diagnosis> {
    let not_ready_event = events(pod, &["NodeNotReady", "TaintManagerEviction"])
        .into_iter()
        .rfind(|e| is_recent(pod, e.last_seen.as_deref()));
    let not_ready = node_condition(pod, "Ready").filter(|c| c.status != "True");
    let low_on_disk = |m: &str| {
        m.contains("The node was low on resource: ephemeral-storage")
            || m.contains("The node was low on resource: nodefs")
            || m.contains("The node was low on resource: imagefs")
            || m.contains("The node had condition: [DiskPressure]")
    };
    // The pod's status says it; when the pod is gone or replaced, its `Evicted` event still does.
    let disk_message = pod
        .message
        .as_deref()
        .filter(|m| pod.reason.as_deref() == Some("Evicted") && low_on_disk(m))
        .or_else(|| {
            events(pod, &["Evicted"])
                .into_iter()
                .rfind(|e| low_on_disk(&e.message) && is_recent(pod, e.last_seen.as_deref()))
                .map(|e| e.message.as_str())
        });
    let disk = disk_message.is_some();
    let node = pod
        .node
        .as_ref()
        .map(|n| n.name.clone())
        .unwrap_or_default();
    if let Some(diagnosis) = disk_message.and_then(|m| undeclared_disk_consumer(pod, m, &node)) {
        return Some(diagnosis);
    }
    let shutdown = pod.reason.as_deref() == Some("NodeShutdown")
        || pod
            .message
            .as_deref()
            .is_some_and(|m| m.contains("imminent node shutdown"));
    let (summary, evidence) = if shutdown {
        (
            format!("Node {node} shut down and the kubelet terminated the pod with it."),
            vec![pod_status_evidence(pod)],
        )
    } else if disk {
        let mut evidence = vec![pod_status_evidence(pod)];
        evidence.extend(
            node_condition(pod, "DiskPressure")
                .filter(|c| c.status == "True")
                .map(|c| node_condition_evidence(pod, c)),
        );
        (
            format!("The kubelet evicted the pod because node {node} ran low on disk."),
            evidence,
        )
    } else if not_ready_event.is_some() || not_ready.is_some() {
        let mut evidence: Vec<_> = not_ready
            .map(|c| node_condition_evidence(pod, c))
            .into_iter()
            .collect();
        evidence.extend(not_ready_event.map(|e| pod_event(pod, e)));
        (
            format!("Node {node} is not ready: the pod is lost with it and must run elsewhere."),
            evidence,
        )
    } else {
        return None;
    };
    Some(Diagnosis {
        rule: "TRI-NODE-LOST",
        category: Category::Scheduling,
        side: Some(Side::Infrastructure),
        confidence: 0.8,
        summary,
        evidence,
        next_steps: vec![
            format!("Check the node: {} (conditions, kubelet, disk).", Kubectl::node(&node)),
            "Delete the stuck pod so its controller recreates it on a healthy node if it stays Terminating.".into(),
            format!("Confirm: {}", Kubectl::of(pod).events()),
        ],
    })
}

static CONSUMER: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"Container (\S+) was using (\S+), request is (\S+), has larger consumption of ephemeral-storage").ok()
});

/// The disk eviction names a container of this pod as the largest consumer of ephemeral storage,
/// and that container requests none: the manifest put a model cache on the node's disk.
fn undeclared_disk_consumer(pod: &PodEvidence, message: &str, node: &str) -> Option<Diagnosis> {
    let captures = CONSUMER.as_ref()?.captures(message)?;
    let name = captures.get(1)?.as_str();
    let used = captures.get(2)?.as_str();
    let request = captures.get(3)?.as_str();
    let c = pod.containers.iter().find(|c| c.name == name)?;
    let undeclared = request == "0" && c.ephemeral_storage_request.is_none();
    if !undeclared {
        return None;
    }
    let mut evidence = vec![pod_status_evidence(pod)];
    evidence.extend(
        events(pod, &["Evicted"])
            .into_iter()
            .rfind(|e| e.message == message)
            .map(|e| pod_event(pod, e)),
    );
    evidence.extend(
        node_condition(pod, "DiskPressure")
            .filter(|c| c.status == "True")
            .map(|c| node_condition_evidence(pod, c)),
    );
    evidence.push(crate::verdict::Evidence {
        source: format!(
            "{} spec.containers[{name}].resources ({})",
            pod.pod, pod.origin
        ),
        text: "requests.ephemeral-storage not set".into(),
        at: None,
    });
    Some(Diagnosis {
        rule: "TRI-NODE-LOST",
        category: Category::Scheduling,
        side: Some(Side::Configuration),
        confidence: 0.85,
        summary: format!(
            "The kubelet evicted the pod when node {node} ran low on disk, and named container {name} the largest consumer ({used}) while it requests no ephemeral storage: a model cache on the node's disk that the pod never declared."
        ),
        evidence,
        next_steps: vec![
            format!(
                "Put the model cache of `{name}` on a PersistentVolumeClaim (HF_HOME, /root/.cache/huggingface) instead of an emptyDir or the container's filesystem."
            ),
            format!(
                "If it must stay on local disk, declare it: resources.requests.ephemeral-storage on `{name}` sized above {used}, so the scheduler places the pod on a node with room and the kubelet evicts others first."
            ),
            format!("Check the node's disk: {}", Kubectl::node(node)),
            format!("Confirm: {}", Kubectl::of(pod).events()),
        ],
    })
}

/// Why the kubelet rejects a pod the scheduler placed: the device plugin's accounting.
const ADMISSION_REASONS: &[&str] = &["UnexpectedAdmissionError"];

/// The kubelet rejected the pod at admission: the scheduler counted a GPU the device plugin could
/// not hand out (`Allocate failed … Available: 0, which is unexpected`), or the node no longer had
/// the resource (`OutOfnvidia.com/gpu`). The pod stays Failed; the kubelet never retries it.
pub(crate) fn admission_rejected(pod: &PodEvidence, _scan: &Hits<'_>) -> Option<Diagnosis> {
    let out_of = |r: &str| r.strip_prefix("OutOf").is_some_and(is_accelerator_key);
    let status = pod
        .reason
        .as_deref()
        .filter(|r| ADMISSION_REASONS.contains(r) || out_of(r));
    let event = pod.events.iter().rfind(|e| {
        (ADMISSION_REASONS.contains(&e.reason.as_str()) || out_of(&e.reason))
            && is_recent(pod, e.last_seen.as_deref())
    });
    if status.is_none() && event.is_none() {
        return None;
    }
    let mut evidence = Vec::new();
    if status.is_some() {
        evidence.push(pod_status_evidence(pod));
    }
    evidence.extend(event.map(|e| pod_event(pod, e)));
    let message = pod
        .message
        .as_deref()
        .or(event.map(|e| e.message.as_str()))
        .unwrap_or_default();
    let node = pod
        .node
        .as_ref()
        .map(|n| n.name.clone())
        .unwrap_or_else(|| "the node".into());
    let resource = message
        .split_whitespace()
        .find(|w| w.contains('/') && is_accelerator_key(w))
        .map(|w| w.trim_end_matches(['.', ',']).to_owned())
        .unwrap_or_else(|| "nvidia.com/gpu".into());
    let kubectl = Kubectl::of(pod);
    Some(Diagnosis {
        rule: "TRI-ADMISSION",
        category: Category::Scheduling,
        side: Some(Side::Infrastructure),
        confidence: 0.9,
        summary: format!(
            "The kubelet on {node} rejected the pod at admission: its device plugin could not allocate the {resource} the scheduler counted on ({}).",
            crate::rules::facts::shorten(message.trim())
        ),
        evidence,
        next_steps: vec![
            format!(
                "Check the device plugin on {node}: kubectl get pods -A -o wide --field-selector spec.nodeName={node} | grep -i device-plugin, and its logs (a restart, unhealthy GPUs or an NVML error leave it advertising GPUs it cannot hand out)."
            ),
            format!(
                "Compare what the node advertises with what runs there: {} (Allocatable and Allocated resources for {resource}).",
                Kubectl::node(&node)
            ),
            format!(
                "The kubelet never retries a rejected pod: once the plugin is healthy, delete it so its controller creates a new one: kubectl -n {} delete pod {}",
                pod.pod.namespace, pod.pod.name
            ),
            format!("Confirm: {}", kubectl.events()),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::*;
    use crate::verdict::Category;
    use hangar_core::Runtime;

    fn pending(message: &str) -> PodEvidence {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.8.5", "vllm serve m");
        pod.phase = Some("Pending".into());
        pod.containers[0].state = None;
        pod.containers[0].accelerators = vec!["nvidia.com/gpu=4".into()];
        pod.node = None;
        pod.events
            .push(event("Warning", "FailedScheduling", message));
        pod
    }

    #[test]
    fn splits_reasons_outside_braces() {
        let r = reasons(
            "0/8 nodes are available: 2 node(s) had untolerated taint {nvidia.com/gpu: present}, 6 Insufficient nvidia.com/gpu. preemption: 0/8 nodes are available: 8 No preemption victims found for incoming pod.",
        );
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[1],
            Reason {
                nodes: 6,
                text: "Insufficient nvidia.com/gpu"
            }
        );
        assert_eq!(taint(r[0].text), Some(("nvidia.com/gpu", "present")));
    }

    #[test]
    fn a_pod_still_unschedulable_is_judged_by_its_condition_when_events_are_old_or_gone() {
        let message = "0/8 nodes are available: 8 Insufficient nvidia.com/gpu.";
        let mut pod = pending(message);
        pod.observed_at = Some("2025-05-03T10:00:00Z".into()); // two days after the event
        pod.conditions.push(crate::evidence::Condition {
            kind: "PodScheduled".into(),
            status: "False".into(),
            reason: Some("Unschedulable".into()),
            message: Some(message.into()),
            last_transition: Some("2025-05-01T10:00:00Z".into()),
        });
        assert!(
            run(failed_scheduling, &pod).is_some(),
            "the old event still explains it"
        );
        pod.events.clear();
        let d = run(failed_scheduling, &pod).unwrap();
        assert_eq!(d.side, Some(Side::Infrastructure));
        assert!(
            d.evidence[0].text.contains("Insufficient nvidia.com/gpu"),
            "{:?}",
            d.evidence
        );
    }

    #[test]
    fn insufficient_gpus_is_capacity() {
        let d = run(failed_scheduling, &pending("0/8 nodes are available: 8 Insufficient nvidia.com/gpu. preemption: 0/8 nodes are available: 8 No preemption victims found for incoming pod.")).unwrap();
        assert_eq!(d.side, Some(Side::Infrastructure));
        assert!(d.next_steps[0].contains("nvidia.com/gpu=4"));
    }

    #[test]
    fn an_untolerated_gpu_taint_is_configuration() {
        let d = run(failed_scheduling, &pending("0/8 nodes are available: 2 node(s) had untolerated taint {nvidia.com/gpu: present}, 6 Insufficient nvidia.com/gpu. preemption: 0/8 nodes are available: 2 Preemption is not helpful for scheduling, 6 No preemption victims found for incoming pod.")).unwrap();
        assert_eq!(d.side, Some(Side::Configuration));
        assert!(d.next_steps[0].contains("key: \"nvidia.com/gpu\""));
    }

    #[test]
    fn an_untolerated_taint_is_configuration_whether_or_not_the_message_names_it() {
        let named = "0/8 nodes are available: 2 node(s) had untolerated taint {nvidia.com/gpu: present}, 6 Insufficient nvidia.com/gpu. preemption: 0/8 nodes are available: 2 Preemption is not helpful for scheduling, 6 No preemption victims found for incoming pod.";
        let d = run(failed_scheduling, &pending(named)).unwrap();
        assert_eq!(d.side, Some(Side::Configuration));
        assert!(d.next_steps[0].contains("key: \"nvidia.com/gpu\""));

        // Kubernetes 1.34 and later count the nodes without naming the taint. Alone, the
        // tainted nodes are most likely the GPU pool.
        let only_tainted = "0/3 nodes are available: 3 node(s) had untolerated taint(s). preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
        let d = run(failed_scheduling, &pending(only_tainted)).unwrap();
        assert_eq!(
            (d.category, d.side),
            (Category::Scheduling, Some(Side::Configuration))
        );
        assert!(
            d.summary.starts_with("3 node(s) carry a taint"),
            "{}",
            d.summary
        );
        assert!(d.next_steps[1].contains("toleration"), "{:?}", d.next_steps);
        // Beside nodes out of GPUs they are more likely the control plane's: capacity, as when
        // the message names the control plane's taint.
        let unnamed = "0/8 nodes are available: 2 node(s) had untolerated taint(s), 6 Insufficient nvidia.com/gpu. preemption: 0/8 nodes are available: 2 Preemption is not helpful for scheduling, 6 No preemption victims found for incoming pod.";
        let d = run(failed_scheduling, &pending(unnamed)).unwrap();
        assert_eq!(d.side, Some(Side::Infrastructure), "{}", d.summary);

        // The input's nodes name it again.
        let mut pod = pending(unnamed);
        pod.untolerated_taints = vec![
            "node-role.kubernetes.io/control-plane:NoSchedule".into(),
            "nvidia.com/gpu=present:NoSchedule".into(),
        ];
        let d = run(failed_scheduling, &pod).unwrap();
        assert_eq!(d.side, Some(Side::Configuration));
        assert!(
            d.next_steps[0].contains("key: \"nvidia.com/gpu\""),
            "{:?}",
            d.next_steps
        );
        assert!(
            d.evidence
                .iter()
                .any(|e| e.text.contains("nvidia.com/gpu=present:NoSchedule")),
            "{:?}",
            d.evidence
        );
    }

    #[test]
    fn preemption_and_lost_nodes_are_infrastructure() {
        let mut pod = pod_with(
            Runtime::Sglang,
            "lmsysorg/sglang:v0.5.2-cu126",
            "python3 -m sglang.launch_server",
        );
        pod.events.push(event(
            "Normal",
            "Preempted",
            "Preempted by pod 6f0c1a2b on node gpu-1",
        ));
        let d = run(preempted, &pod).unwrap();
        assert_eq!(
            (d.category, d.side),
            (Category::Scheduling, Some(Side::Infrastructure))
        );

        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.9.1", "vllm serve m");
        pod.events
            .push(event("Warning", "NodeNotReady", "Node is not ready"));
        assert!(
            run(node_lost, &pod)
                .unwrap()
                .summary
                .contains("gpu-1 is not ready")
        );

        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.9.1", "vllm serve m");
        pod.reason = Some("Evicted".into());
        pod.message = Some("The node was low on resource: ephemeral-storage. Threshold quantity: 10Gi, available: 2Gi. ".into());
        assert!(
            run(node_lost, &pod)
                .unwrap()
                .summary
                .contains("ran low on disk")
        );

        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.9.1", "vllm serve m");
        pod.phase = Some("Failed".into());
        pod.reason = Some("NodeShutdown".into());
        pod.message = Some("Pod was terminated in response to imminent node shutdown.".into());
        assert!(run(node_lost, &pod).unwrap().summary.contains("shut down"));
    }

    #[test]
    fn a_disk_eviction_of_an_undeclared_model_cache_is_configuration() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.8.3", "vllm serve m");
        pod.containers[0].name = "vllm".into();
        pod.phase = Some("Failed".into());
        pod.reason = Some("Evicted".into());
        pod.message = Some("The node was low on resource: ephemeral-storage. Threshold quantity: 49664872Ki, available: 31242220Ki. Container vllm was using 148Gi, request is 0, has larger consumption of ephemeral-storage. ".into());
        let d = run(node_lost, &pod).unwrap();
        assert_eq!(
            (d.category, d.side),
            (Category::Scheduling, Some(Side::Configuration))
        );
        assert!(d.summary.contains("148Gi"));
        pod.containers[0].ephemeral_storage_request = Some("200Gi".into());
        pod.message = Some("The node was low on resource: ephemeral-storage. Threshold quantity: 10Gi, available: 2Gi. Container vllm was using 148Gi, request is 200Gi, has larger consumption of ephemeral-storage. ".into());
        assert_eq!(
            run(node_lost, &pod).unwrap().side,
            Some(Side::Infrastructure),
            "declared usage: the node is short"
        );
        pod.message = Some("The node was low on resource: ephemeral-storage. Container other-pod was using 9Gi, request is 0, has larger consumption of ephemeral-storage. ".into());
        assert_eq!(
            run(node_lost, &pod).unwrap().side,
            Some(Side::Infrastructure),
            "another container"
        );
    }

    #[test]
    fn an_admission_rejection_by_the_device_plugin_is_infrastructure() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.7.3", "vllm serve m");
        pod.phase = Some("Failed".into());
        pod.containers[0].state = None;
        pod.reason = Some("UnexpectedAdmissionError".into());
        pod.message = Some("Pod was rejected: Allocate failed due to requested number of devices unavailable for nvidia.com/gpu. Requested: 1, Available: 0, which is unexpected".into());
        let d = run(admission_rejected, &pod).unwrap();
        assert_eq!(
            (d.category, d.side),
            (Category::Scheduling, Some(Side::Infrastructure))
        );
        assert!(d.summary.contains("nvidia.com/gpu") && d.next_steps[0].contains("gpu-1"));
        pod.reason = Some("OutOfnvidia.com/gpu".into());
        pod.message = Some(
            "Node didn't have enough resource: nvidia.com/gpu, requested: 1, used: 8, capacity: 8"
                .into(),
        );
        assert!(run(admission_rejected, &pod).is_some());
        pod.reason = Some("OutOfcpu".into());
        assert!(
            run(admission_rejected, &pod).is_none(),
            "not an accelerator"
        );
        pod.reason = None;
        assert!(run(admission_rejected, &pod).is_none());
    }

    #[test]
    fn system_taints_are_not_the_gpu_pools() {
        let d = run(failed_scheduling, &pending("0/6 nodes are available: 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 4 Insufficient nvidia.com/gpu. preemption: 0/6 nodes are available: 2 Preemption is not helpful for scheduling, 4 No preemption victims found for incoming pod.")).unwrap();
        assert_eq!(d.side, Some(Side::Infrastructure));
    }

    #[test]
    fn quiet_when_scheduled() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.8.5", "vllm serve m");
        pod.events.push(event(
            "Normal",
            "Scheduled",
            "Successfully assigned ml/srv-0 to gpu-1",
        ));
        assert!(run(failed_scheduling, &pod).is_none());
        assert!(run(preempted, &pod).is_none());
        assert!(run(node_lost, &pod).is_none());
    }
}
