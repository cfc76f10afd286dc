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

use crate::evidence::PodEvidence;
use crate::rules::facts::{
    Kubectl, is_recent, near_failure, node_condition_evidence, node_event, pod_event, terminations,
};
use crate::rules::signatures::{Hits, Kind, Scanner, Signature};
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
    LazyLock::new(|| Regex::new(r"(?i)(?-u:\b)Xid\s*(?:\([^)]*\))?\s*:?\s*(\d{1,3})(?:\D|$)").ok());

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

const GPU_FAULTS: &[Kind] = &[Kind::GpuFault, Kind::DriverTooOld];

/// The same signatures, for status messages and events.
static GPU_FAULT_MESSAGES: LazyLock<Scanner> = LazyLock::new(|| Scanner::new(GPU_FAULTS));

/// Pod events where the kubelet reports what the container runtime could not do.
const RUNTIME_EVENTS: &[&str] = &["Failed", "FailedCreatePodSandBox"];

/// Lines that show the pod itself met a failing GPU or link: a driver or device error, or a
/// collective that hung. Without them an Xid elsewhere on the node may be another GPU's.
const CORROBORATION: &[Kind] = &[
    Kind::CudaDeviceError,
    Kind::CudaAppFault,
    Kind::NcclTimeout,
    Kind::NcclError,
];

/// GPU or driver faults in termination messages and recent `Failed` or `FailedCreatePodSandBox`
/// events, with their evidence.
pub(crate) fn runtime_faults(pod: &PodEvidence) -> Vec<(&'static Signature, Evidence)> {
    let mut found = Vec::new();
    for t in terminations(pod).into_iter().filter(|t| t.matters(pod)) {
        if let Some(signature) = t.message.and_then(|m| GPU_FAULT_MESSAGES.first_match(m)) {
            found.push((signature, t.evidence(pod)));
        }
    }
    for event in pod.events.iter().filter(|e| {
        RUNTIME_EVENTS.contains(&e.reason.as_str()) && is_recent(pod, e.last_seen.as_deref())
    }) {
        if let Some(signature) = GPU_FAULT_MESSAGES.first_match(&event.message) {
            found.push((signature, pod_event(pod, event)));
            break;
        }
    }
    found
}

/// The GPU or its driver failed under the pod.
pub(crate) fn gpu_hardware<'a>(pod: &'a PodEvidence, scan: &Hits<'a>) -> Option<Diagnosis> {
    let hardware: Vec<XidReport> = xid_reports(pod)
        .into_iter()
        .filter(|r| HARDWARE_XIDS.contains(&r.xid))
        .collect();
    let hits = scan.of(GPU_FAULTS);
    let faults: Vec<_> = hits.iter().filter(|h| scan.matters(pod, h)).collect();
    // The NVIDIA container toolkit reports driver faults where the kubelet puts start errors:
    // in the termination message and the `Failed` event, not in any log.
    let runtime_faults = runtime_faults(pod);
    if faults.is_empty() && runtime_faults.is_empty() && (hardware.is_empty() || !scan.troubled()) {
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
    let ids: Vec<&str> = faults
        .iter()
        .map(|h| h.signature.id)
        .chain(runtime_faults.iter().map(|(s, _)| s.id))
        .collect();
    let stack = if codes.is_empty() {
        Stack::of(&ids)
    } else {
        Stack::Hardware
    };
    let summary = match (codes.first(), faults.first(), stack) {
        (Some(xid), _, _) => format!(
            "Node {node} reported Xid {xid} ({}): the GPU under the pod failed.",
            xid_meaning(*xid)
        ),
        (None, _, Stack::DriverTooOld) => format!(
            "The NVIDIA driver on node {node} is older than the CUDA version the image needs: the node's driver must be upgraded, or the pod placed on nodes with a newer one."
        ),
        (None, _, Stack::RuntimeMissing) => format!(
            "Node {node} cannot start GPU containers: its container runtime has no `nvidia` runtime handler configured (the NVIDIA container toolkit is not installed or not finished)."
        ),
        (None, _, Stack::DriverNotLoaded) => format!(
            "The NVIDIA container toolkit on node {node} cannot reach the GPU driver, so the container cannot start: the node's GPU software stack is broken."
        ),
        (None, Some(hit), _) => format!(
            "Container {} hit a GPU or driver fault (`{}`): the GPU or its driver on node {node} failed.",
            hit.line.container.name, hit.signature.id
        ),
        (None, None, _) => match runtime_faults.first() {
            Some((signature, _)) => format!(
                "The container runtime cannot start the container on node {node}: the NVIDIA driver failed (`{}`).",
                signature.id
            ),
            None => return None,
        },
    };
    let next_steps = stack.steps(pod, node);
    // A termination can be both a runtime fault and the pod's last failure: show it once.
    let mut seen = Vec::new();
    evidence.retain(|e| {
        let new = !seen.contains(e);
        if new {
            seen.push(e.clone());
        }
        new
    });
    let corroborated =
        !faults.is_empty() || scan.of(CORROBORATION).iter().any(|h| scan.matters(pod, h));
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

/// Which layer of the node's GPU stack failed, for the steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stack {
    /// The GPU itself: Xid, ECC, off the bus.
    Hardware,
    /// The driver was upgraded without reloading the kernel module.
    LibraryMismatch,
    /// The driver is older than the image's CUDA.
    DriverTooOld,
    /// containerd or CRI-O has no `nvidia` runtime.
    RuntimeMissing,
    /// The toolkit's hook cannot reach the driver (module not loaded).
    DriverNotLoaded,
}

impl Stack {
    /// The layer the signatures point at; the most telling first.
    fn of(ids: &[&str]) -> Stack {
        let any = |id: &str| ids.contains(&id);
        if any("driver-too-old") {
            Stack::DriverTooOld
        } else if any("nvidia-runtime-missing") {
            Stack::RuntimeMissing
        } else if !ids.is_empty() && ids.iter().all(|id| *id == "nvml-mismatch") {
            Stack::LibraryMismatch
        } else if any("nvidia-container-cli") {
            Stack::DriverNotLoaded
        } else {
            Stack::Hardware
        }
    }

    fn steps(self, pod: &PodEvidence, node: &str) -> Vec<String> {
        let cordon = format!(
            "Take the node out of service: kubectl cordon {node}, then drain it so the endpoint's pods move to healthy GPUs."
        );
        let on_node = format!(
            "kubectl get pods -A -o wide --field-selector spec.nodeName={node} | grep -i nvidia"
        );
        match self {
            Stack::Hardware | Stack::LibraryMismatch => vec![
                cordon,
                format!(
                    "Inspect it: {} and `nvidia-smi -q -d ECC,PAGE_RETIREMENT,ROW_REMAPPER` on the node (e.g. in the NVIDIA driver pod).",
                    Kubectl::node(node)
                ),
                if self == Stack::LibraryMismatch {
                    "Driver/library version mismatch means the driver was upgraded without reloading the kernel module: reboot the node (or restart the driver daemonset) before uncordoning.".into()
                } else {
                    "Reset the GPU or reboot the node; if the Xid comes back, open a hardware ticket with the node's serial number and the `nvidia-bug-report.sh` output.".into()
                },
                format!(
                    "Look for the kernel's lines (node events live in the default namespace): kubectl get events -A --field-selector involvedObject.kind=Node,involvedObject.name={node}"
                ),
            ],
            Stack::DriverTooOld => {
                let labels = pod.node.as_ref().map(|n| &n.labels);
                let label = |k: &str| {
                    labels
                        .and_then(|l| l.get(k))
                        .map(String::as_str)
                        .unwrap_or("?")
                };
                let image = pod
                    .containers
                    .iter()
                    .find(|c| !c.init && !c.accelerators.is_empty())
                    .map(|c| c.image.as_str())
                    .unwrap_or("the image");
                vec![
                    format!(
                        "Node {node} runs driver {}.{} (CUDA {}.{}); {image} is built for a newer CUDA. Upgrade the driver on that node pool (the GPU operator's driver version), or pin the image to a build for the node's CUDA.",
                        label("nvidia.com/cuda.driver.major"),
                        label("nvidia.com/cuda.driver.minor"),
                        label("nvidia.com/cuda.runtime.major"),
                        label("nvidia.com/cuda.runtime.minor")
                    ),
                    "Meanwhile place the pod on nodes with a new enough driver: a nodeSelector or node affinity on nvidia.com/cuda.driver.major.".into(),
                    "Compare the pools: kubectl get nodes -L nvidia.com/cuda.driver.major,nvidia.com/cuda.driver.minor,nvidia.com/cuda.runtime.major,nvidia.com/cuda.runtime.minor".into(),
                ]
            }
            Stack::RuntimeMissing => vec![
                format!(
                    "Check the NVIDIA container toolkit on node {node}: {on_node}; it must have written the `nvidia` runtime into containerd's config and restarted containerd. A node that just joined needs it to finish first."
                ),
                format!(
                    "Keep GPU pods off the node until it has: kubectl cordon {node}; then kubectl uncordon {node}."
                ),
                "Check that the RuntimeClass handler matches the runtime's name: kubectl get runtimeclass -o yaml".into(),
            ],
            Stack::DriverNotLoaded => vec![
                cordon,
                format!(
                    "Check the driver on node {node}: {on_node} (the driver daemonset's pod and its logs) or `nvidia-smi` on the node; after a kernel update the module must be rebuilt for the new kernel ({}).",
                    pod.node
                        .as_ref()
                        .and_then(|n| n.kernel_version.as_deref())
                        .unwrap_or("see kubectl describe node")
                ),
                "Reboot the node or restart the driver daemonset once the driver matches the kernel, then uncordon it.".into(),
            ],
        }
    }
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
        let d = run(gpu_hardware, &pod).unwrap();
        assert_eq!(
            (d.category, d.side),
            (Category::GpuHardware, Some(Side::Infrastructure))
        );
        assert!(d.summary.contains("Xid 79"));
        // Node events are in the default namespace: without -A, kubectl looks in the current one.
        assert!(
            d.next_steps
                .iter()
                .any(|s| s
                    .contains("kubectl get events -A --field-selector involvedObject.kind=Node")),
            "{:?}",
            d.next_steps
        );
    }

    #[test]
    fn the_node_gpu_stack_failing_to_start_the_container_is_infrastructure() {
        let mut pod = pod_with(
            Runtime::Tgi,
            "ghcr.io/huggingface/text-generation-inference:2.0.4",
            "text-generation-launcher",
        );
        pod.phase = Some("Pending".into());
        pod.containers[0].state = Some(waiting_state("ContainerCreating"));
        pod.events.push(event(
            "Warning",
            "FailedCreatePodSandBox",
            "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox runtime: no runtime for \"nvidia\" is configured",
        ));
        let d = run(gpu_hardware, &pod).unwrap();
        assert_eq!(
            (d.category, d.side),
            (Category::GpuHardware, Some(Side::Infrastructure))
        );
        assert!(d.summary.contains("runtime handler"));
        pod.events[0].message = "Failed to create pod sandbox: plugin type=\"calico\" failed (add): error getting ClusterInformation: connection is unauthorized".into();
        assert!(
            run(gpu_hardware, &pod).is_none(),
            "a CNI failure is not the GPU stack"
        );

        let mut pod = pod_with(
            Runtime::Triton,
            "nvcr.io/nvidia/tritonserver:25.07-py3",
            "tritonserver",
        );
        let mut start_error = terminated(
            "StartError",
            128,
            "1970-01-01T00:00:00Z",
            "2025-05-01T10:00:00Z",
        );
        if let crate::evidence::ContainerState::Terminated { message, .. } = &mut start_error {
            *message = Some("error running prestart hook #0: exit status 1, stdout: , stderr: Auto-detected mode as 'legacy'\nnvidia-container-cli: initialization error: nvml error: driver not loaded: unknown".into());
        }
        pod.containers[0].last_state = Some(start_error);
        pod.containers[0].state = Some(waiting_state("CrashLoopBackOff"));
        let d = run(gpu_hardware, &pod).unwrap();
        assert!(
            d.summary.contains("cannot reach the GPU driver"),
            "{}",
            d.summary
        );
    }

    #[test]
    fn a_driver_older_than_the_image_is_the_nodes() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.10.1.1", "vllm serve m");
        pod.containers[0].state = Some(waiting_state("CrashLoopBackOff"));
        pod.containers[0].last_state = Some(terminated(
            "Error",
            1,
            "2025-05-01T10:00:00Z",
            "2025-05-01T10:00:30Z",
        ));
        pod.containers[0].previous_log = Some(tail(&[
            "RuntimeError: The NVIDIA driver on your system is too old (found version 12020). Please update your GPU driver.",
        ]));
        if let Some(node) = pod.node.as_mut() {
            node.labels
                .insert("nvidia.com/cuda.driver.major".into(), "535".into());
            node.labels
                .insert("nvidia.com/cuda.driver.minor".into(), "183".into());
        }
        let d = run(gpu_hardware, &pod).unwrap();
        assert_eq!(d.side, Some(Side::Infrastructure));
        assert!(
            d.next_steps[0].contains("driver 535.183"),
            "{:?}",
            d.next_steps
        );
        assert!(!d.next_steps.iter().any(|s| s.contains("hardware ticket")));
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
        assert!(
            run(gpu_hardware, &pod).is_none(),
            "a healthy pod is not blamed"
        );
        pod.containers[0].ready = false;
        pod.node_events[0].message = "NVRM: Xid (PCI:0000:3b:00): 13, Graphics Exception".into();
        assert!(
            run(gpu_hardware, &pod).is_none(),
            "Xid 13 is the application's"
        );
    }
}
