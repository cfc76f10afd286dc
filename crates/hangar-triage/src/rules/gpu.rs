//! The GPU itself: Xid errors from the NVIDIA driver on the pod's node, uncorrectable ECC errors,
//! a GPU that fell off the bus, a driver that no longer matches its libraries.
//!
//! Xid codes are read from node events and node conditions (node-problem-detector and NVIDIA's
//! health monitors report the kernel's `NVRM: Xid (PCI:…): 79, …` lines there). NVIDIA's Xid
//! catalog sorts them: 48, 61–64, 74, 79, 92, 94, 95, 119, 120 and 140 are the hardware, its
//! memory, NVLink or the GPU's firmware — **infrastructure**. 13, 31 and 43 are raised when a
//! kernel faults, which is almost always the application; those are in `crash.rs`.

use std::sync::LazyLock;

use regex::Regex;

use crate::evidence::{ContainerState, PodEvidence};
use crate::rules::facts::{
    Kubectl, is_recent, near_failure, node_condition_evidence, node_event, pod_event, terminations,
};
use crate::rules::oom::hit_matters;
use crate::rules::signatures::{Kind, Scanner, Signature};
use crate::verdict::{Category, Diagnosis, Evidence, Side};

/// Xid codes that mean the GPU, its memory, its links or its firmware failed.
pub(crate) const HARDWARE_XIDS: &[u32] = &[48, 61, 62, 63, 64, 74, 79, 92, 94, 95, 119, 120, 140];

/// Xid codes a faulting kernel raises: usually the application's doing.
pub(crate) const APPLICATION_XIDS: &[u32] = &[13, 31, 43];

/// What an Xid means, in a few words, per NVIDIA's catalog.
pub(crate) fn xid_meaning(xid: u32) -> &'static str {
    match xid {
        13 => "graphics engine exception (usually the application)",
        31 => "GPU memory page fault (usually the application)",
        43 => "GPU stopped processing (usually the application)",
        48 => "double-bit ECC error",
        61 | 62 => "internal micro-controller error",
        63 => "ECC page retirement or row remapping recorded",
        64 => "ECC page retirement or row remapping failed",
        74 => "NVLink error",
        79 => "GPU has fallen off the bus",
        92 => "high single-bit ECC error rate",
        94 => "contained ECC error",
        95 => "uncontained ECC error",
        119 | 120 => "GPU System Processor (GSP) error",
        140 => "unrecovered ECC error",
        _ => "see NVIDIA's Xid catalog",
    }
}

static XID: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)\bXid\s*(?:\([^)]*\))?\s*:?\s*(\d{1,3})(?:\D|$)").ok());

/// The Xid codes in a text.
pub(crate) fn xids_in(text: &str) -> Vec<u32> {
    let Some(re) = XID.as_ref() else {
        return Vec::new();
    };
    re.captures_iter(text)
        .filter_map(|c| c.get(1)?.as_str().parse().ok())
        .collect()
}

/// One Xid report about the pod's node, with its evidence.
pub(crate) struct XidReport {
    pub xid: u32,
    pub evidence: Evidence,
}

/// Recent Xid reports about the pod's node, from its events and its problem conditions.
pub(crate) fn xid_reports(pod: &PodEvidence) -> Vec<XidReport> {
    let mut reports = Vec::new();
    for event in pod.node_events.iter().filter(|e| {
        is_recent(pod, e.last_seen.as_deref()) || near_failure(pod, e.last_seen.as_deref())
    }) {
        for xid in xids_in(&format!("{} {}", event.reason, event.message)) {
            reports.push(XidReport {
                xid,
                evidence: node_event(pod, event),
            });
        }
    }
    for condition in pod.node.iter().flat_map(|n| &n.conditions) {
        // `GPUHealthy=False` and `GPUProblem=True` both report a problem.
        let healthy_kind = condition.kind.contains("Healthy") || condition.kind == "Ready";
        let problem = (condition.status == "True") != healthy_kind;
        if !problem {
            continue;
        }
        let text = format!(
            "{} {}",
            condition.reason.as_deref().unwrap_or_default(),
            condition.message.as_deref().unwrap_or_default()
        );
        for xid in xids_in(&text) {
            reports.push(XidReport {
                xid,
                evidence: node_condition_evidence(pod, condition),
            });
        }
    }
    reports
}

/// Whether the pod is in trouble at all: not every main container running and ready, or a
/// failure that still matters. A healthy pod is not blamed for an Xid on another GPU.
pub(crate) fn troubled(pod: &PodEvidence) -> bool {
    pod.phase.as_deref() != Some("Running")
        || pod
            .containers
            .iter()
            .filter(|c| !c.init)
            .any(|c| !c.ready || !matches!(c.state, Some(ContainerState::Running { .. })))
        || terminations(pod)
            .iter()
            .any(|t| t.exit_code != 0 && t.matters(pod))
}

static GPU_FAULTS: LazyLock<Scanner> = LazyLock::new(|| Scanner::new(&[Kind::GpuFault]));

/// Lines that show the pod itself met a failing GPU or link: a driver or device error, or a
/// collective that hung. Without them an Xid elsewhere on the node may be another GPU's.
static CORROBORATION: LazyLock<Scanner> = LazyLock::new(|| {
    Scanner::new(&[
        Kind::CudaDeviceError,
        Kind::CudaAppFault,
        Kind::NcclTimeout,
        Kind::NcclError,
    ])
});

/// GPU or driver faults in termination messages and recent `Failed` events, with their evidence.
pub(crate) fn runtime_faults(pod: &PodEvidence) -> Vec<(&'static Signature, Evidence)> {
    let mut found = Vec::new();
    for t in terminations(pod).into_iter().filter(|t| t.matters(pod)) {
        if let Some(signature) = t.message.and_then(|m| GPU_FAULTS.first_match(m)) {
            found.push((signature, t.evidence(pod)));
        }
    }
    for event in pod
        .events
        .iter()
        .filter(|e| e.reason == "Failed" && is_recent(pod, e.last_seen.as_deref()))
    {
        if let Some(signature) = GPU_FAULTS.first_match(&event.message) {
            found.push((signature, pod_event(pod, event)));
            break;
        }
    }
    found
}

/// The GPU or its driver failed under the pod.
pub(crate) fn gpu_hardware(pod: &PodEvidence) -> Option<Diagnosis> {
    let hardware: Vec<XidReport> = xid_reports(pod)
        .into_iter()
        .filter(|r| HARDWARE_XIDS.contains(&r.xid))
        .collect();
    let hits = GPU_FAULTS.scan(pod);
    let faults: Vec<_> = hits.iter().filter(|h| hit_matters(pod, h)).collect();
    // The NVIDIA container toolkit reports driver faults where the kubelet puts start errors:
    // in the termination message and the `Failed` event, not in any log.
    let runtime_faults = runtime_faults(pod);
    if faults.is_empty() && runtime_faults.is_empty() && (hardware.is_empty() || !troubled(pod)) {
        return None;
    }
    let node = pod.node.as_ref().map(|n| n.name.as_str()).unwrap_or("-");
    let mut evidence: Vec<Evidence> = hardware
        .iter()
        .take(3)
        .map(|r| r.evidence.clone())
        .collect();
    evidence.extend(faults.iter().take(3).map(|h| h.line.evidence()));
    evidence.extend(runtime_faults.iter().map(|(_, e)| e.clone()));
    evidence.extend(
        terminations(pod)
            .into_iter()
            .find(|t| t.exit_code != 0 && t.matters(pod))
            .map(|t| t.evidence(pod)),
    );
    let mut codes: Vec<u32> = hardware.iter().map(|r| r.xid).collect();
    codes.dedup();
    let summary = match (codes.first(), faults.first()) {
        (Some(xid), _) => format!(
            "Node {node} reported Xid {xid} ({}): the GPU under the pod failed.",
            xid_meaning(*xid)
        ),
        (None, Some(hit)) => format!(
            "Container {} hit a GPU or driver fault (`{}`): the GPU or its driver on node {node} failed.",
            hit.line.container.name, hit.signature.id
        ),
        (None, None) => match runtime_faults.first() {
            Some((signature, _)) => format!(
                "The container runtime cannot start the container on node {node}: the NVIDIA driver failed (`{}`).",
                signature.id
            ),
            None => return None,
        },
    };
    let nvml_only = codes.is_empty()
        && faults.iter().all(|h| h.signature.id == "nvml-mismatch")
        && runtime_faults.iter().all(|(s, _)| s.id == "nvml-mismatch");
    let mut next_steps = vec![
        format!(
            "Take the node out of service: kubectl cordon {node}, then drain it so the endpoint's pods move to healthy GPUs."
        ),
        format!(
            "Inspect it: {} and `nvidia-smi -q -d ECC,PAGE_RETIREMENT,ROW_REMAPPER` on the node (e.g. in the NVIDIA driver pod).",
            Kubectl::node(node)
        ),
    ];
    if nvml_only {
        next_steps.push("Driver/library version mismatch means the driver was upgraded without reloading the kernel module: reboot the node (or restart the driver daemonset) before uncordoning.".into());
    } else {
        next_steps.push("Reset the GPU or reboot the node; if the Xid comes back, open a hardware ticket with the node's serial number and the `nvidia-bug-report.sh` output.".into());
    }
    next_steps.push(format!(
        "Look for the kernel's lines: kubectl get events --field-selector involvedObject.kind=Node,involvedObject.name={node}"
    ));
    let corroborated =
        !faults.is_empty() || CORROBORATION.scan(pod).iter().any(|h| hit_matters(pod, h));
    // A node has several GPUs: an Xid is this pod's problem for sure only when the pod also
    // shows GPU-level errors; otherwise a cause its own log names should win.
    let confidence = match (codes.is_empty(), corroborated) {
        (false, true) => 0.95,
        (false, false) => 0.8,
        (true, _) if !runtime_faults.is_empty() => 0.93,
        (true, _) => 0.85,
    };
    Some(Diagnosis {
        rule: "TRI-GPU-HARDWARE",
        category: Category::GpuHardware,
        side: Some(Side::Infrastructure),
        confidence,
        summary,
        evidence,
        next_steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::*;
    use hangar_core::Runtime;

    #[test]
    fn reads_xid_codes_in_kernel_lines_and_reasons() {
        assert_eq!(
            xids_in(
                "NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus."
            ),
            vec![79]
        );
        assert_eq!(xids_in("Xid79Detected"), vec![79]);
        assert_eq!(xids_in("XID 48 detected"), vec![48]);
        assert!(xids_in("no such thing").is_empty());
    }

    #[test]
    fn xid_79_under_a_crashed_pod_is_hardware() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.8.5", "vllm serve m");
        pod.containers[0].state = Some(waiting_state("CrashLoopBackOff"));
        pod.node_events.push(event(
            "Warning",
            "GPUXidError",
            "NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.",
        ));
        let d = gpu_hardware(&pod).unwrap();
        assert_eq!(
            (d.category, d.side),
            (Category::GpuHardware, Some(Side::Infrastructure))
        );
        assert!(d.summary.contains("Xid 79"));
    }

    #[test]
    fn application_xids_and_healthy_pods_are_quiet() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.8.5", "vllm serve m");
        pod.containers[0].ready = true;
        pod.node_events.push(event(
            "Warning",
            "GPUXidError",
            "NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus.",
        ));
        assert!(gpu_hardware(&pod).is_none(), "a healthy pod is not blamed");
        pod.containers[0].ready = false;
        pod.node_events[0].message = "NVRM: Xid (PCI:0000:3b:00): 13, Graphics Exception".into();
        assert!(gpu_hardware(&pod).is_none(), "Xid 13 is the application's");
    }
}
