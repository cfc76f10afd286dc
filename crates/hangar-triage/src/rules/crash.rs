//! The process crashed for a reason no other rule names: a kernel fault on the GPU, a signal, or
//! a Python exception.
//!
//! Side: **configuration**, at lower confidence. The GPU and the model files are fine as far as
//! the evidence shows (other rules would have said otherwise); what crashed is the server build,
//! its kernels or the options it runs with — the image tag, attention backend, quantization or
//! CUDA graphs the deployment chose. Xid 13, 31 and 43 on the node point the same way: NVIDIA's
//! catalog attributes them to the application in almost every case.

use std::sync::LazyLock;

use crate::evidence::PodEvidence;
use crate::rules::facts::{Kubectl, runtime_name, runtime_of, terminations};
use crate::rules::gpu::{APPLICATION_XIDS, troubled, xid_meaning, xid_reports};
use crate::rules::oom::hit_matters;
use crate::rules::signatures::{Hit, Kind, Scanner};
use crate::verdict::{Category, Diagnosis, Side};

static CUDA_FAULTS: LazyLock<Scanner> = LazyLock::new(|| Scanner::new(&[Kind::CudaAppFault]));

/// A kernel faulted on the GPU: illegal memory access, and Xid 13/31/43 on the node.
pub(crate) fn cuda_fault(pod: &PodEvidence) -> Option<Diagnosis> {
    let hits = CUDA_FAULTS.scan(pod);
    let hit = hits.iter().find(|h| hit_matters(pod, h));
    let xids: Vec<_> = xid_reports(pod)
        .into_iter()
        .filter(|r| APPLICATION_XIDS.contains(&r.xid))
        .collect();
    if hit.is_none() && (xids.is_empty() || !troubled(pod)) {
        return None;
    }
    let mut evidence: Vec<_> = hit.map(|h| h.line.evidence()).into_iter().collect();
    evidence.extend(xids.iter().take(2).map(|r| r.evidence.clone()));
    let c = hit.map(|h| h.line.container);
    evidence.extend(
        terminations(pod)
            .into_iter()
            .find(|t| {
                c.is_none_or(|c| std::ptr::eq(t.container, c)) && t.exit_code != 0 && t.matters(pod)
            })
            .map(|t| t.evidence(pod)),
    );
    let xid_text = xids
        .first()
        .map(|r| format!(" (node reports Xid {}: {})", r.xid, xid_meaning(r.xid)))
        .unwrap_or_default();
    let name = c.map(|c| c.name.as_str()).unwrap_or("the server");
    let runtime = runtime_name(c.map(|c| runtime_of(pod, c)).unwrap_or(pod.runtime));
    let mut next_steps = vec![
        format!("Treat it as a {runtime} or kernel bug for this model and settings: try the previous image tag, another attention backend, or disable CUDA graphs (vLLM `--enforce-eager`)."),
        "Rerun with CUDA_LAUNCH_BLOCKING=1 to get the faulting kernel in the traceback, and search the runtime's issues for it.".into(),
    ];
    if let Some(c) = c {
        next_steps.push(format!(
            "Confirm: {}",
            Kubectl::of(pod).logs(&c.name, true, Some("CUDA error|illegal|Xid"))
        ));
    }
    Some(Diagnosis {
        rule: "TRI-CRASH-CUDA",
        category: Category::Crash,
        side: Some(Side::Configuration),
        confidence: if hit.is_some() && !xids.is_empty() {
            0.75
        } else {
            0.65
        },
        summary: format!(
            "A GPU kernel in {name} faulted{xid_text}: a software fault in the server or its kernels, not the hardware."
        ),
        evidence,
        next_steps,
    })
}

static SIGNALS: LazyLock<Scanner> = LazyLock::new(|| Scanner::new(&[Kind::Signal]));

/// The process died on SIGSEGV or SIGABRT.
pub(crate) fn signal(pod: &PodEvidence) -> Option<Diagnosis> {
    let by_exit = terminations(pod).into_iter().find(|t| {
        (matches!(t.exit_code, 134 | 139) || matches!(t.signal, Some(6 | 11))) && t.matters(pod)
    });
    let hits = SIGNALS.scan(pod);
    let hit = hits.iter().find(|h| hit_matters(pod, h));
    if by_exit.is_none() && hit.is_none() {
        return None;
    }
    let mut evidence: Vec<_> = hit.map(|h| h.line.evidence()).into_iter().collect();
    evidence.extend(by_exit.map(|t| t.evidence(pod)));
    let c = by_exit
        .map(|t| t.container)
        .or(hit.map(|h| h.line.container))?;
    Some(Diagnosis {
        rule: "TRI-CRASH-SIGNAL",
        category: Category::Crash,
        side: Some(Side::Configuration),
        confidence: 0.6,
        summary: format!("The server in {} crashed on a signal (segmentation fault or abort).", c.name),
        evidence,
        next_steps: vec![
            format!("Try the previous image tag of {} and compare; a native crash follows the build, its CUDA kernels or the driver it meets.", c.image),
            "If it started after a node driver change, check the node's driver version against the image's CUDA version.".into(),
            format!("Confirm: {} | tail -n 60", Kubectl::of(pod).logs(&c.name, true, None)),
        ],
    })
}

/// Exceptions that only report that something else failed earlier: they name no cause.
const WRAPPERS: &[&str] = &[
    "See root cause above",
    "EngineDeadError",
    "Engine process failed to start",
    "Engine core initialization failed",
];

static TRACEBACKS: LazyLock<Scanner> =
    LazyLock::new(|| Scanner::new(&[Kind::TracebackStart, Kind::Exception]));

/// The process exited on a Python exception that no other rule recognises.
pub(crate) fn exception(pod: &PodEvidence) -> Option<Diagnosis> {
    let crashed = terminations(pod)
        .into_iter()
        .find(|t| t.exit_code != 0 && !t.reason_is("OOMKilled") && t.matters(pod))?;
    let hits = TRACEBACKS.scan(pod);
    let names_a_cause = |h: &&Hit| {
        std::ptr::eq(h.line.container, crashed.container)
            && h.kind() == Kind::Exception
            && !WRAPPERS.iter().any(|w| h.line.text.contains(w))
            && hits.iter().any(|t| {
                t.kind() == Kind::TracebackStart
                    && std::ptr::eq(t.line.tail, h.line.tail)
                    && t.line.index < h.line.index
            })
    };
    let last: &Hit = hits.iter().rev().find(names_a_cause)?;
    Some(Diagnosis {
        rule: "TRI-CRASH-EXCEPTION",
        category: Category::Crash,
        side: Some(Side::Configuration),
        confidence: 0.45,
        summary: format!(
            "The server in {} exited on an exception: {}",
            crashed.container.name,
            crate::rules::facts::shorten(last.line.text.trim())
        ),
        evidence: vec![last.line.evidence(), crashed.evidence(pod)],
        next_steps: vec![
            "Read the traceback from its first frame: the last line names the exception, the frames above it the component (engine, tokenizer, model code).".into(),
            format!("Confirm: {} | tail -n 80", Kubectl::of(pod).logs(&crashed.container.name, true, None)),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::*;
    use hangar_core::Runtime;

    #[test]
    fn an_illegal_memory_access_with_xid_13_is_the_application() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.8.5", "vllm serve m");
        pod.containers[0].state = Some(waiting_state("CrashLoopBackOff"));
        pod.containers[0].last_state = Some(terminated(
            "Error",
            1,
            "2025-05-01T10:00:00Z",
            "2025-05-01T11:00:00Z",
        ));
        pod.containers[0].previous_log = Some(tail(&[
            "RuntimeError: CUDA error: an illegal memory access was encountered",
        ]));
        pod.node_events.push(event(
            "Warning",
            "GPUXidError",
            "NVRM: Xid (PCI:0000:3b:00): 13, pid=2112, name=python3, Graphics Exception",
        ));
        let d = cuda_fault(&pod).unwrap();
        assert_eq!(
            (d.category, d.side),
            (Category::Crash, Some(Side::Configuration))
        );
        assert!(d.summary.contains("Xid 13"));
    }

    #[test]
    fn segfaults_are_crashes() {
        let mut pod = pod_with(
            Runtime::Tgi,
            "ghcr.io/huggingface/text-generation-inference:3.0.1",
            "text-generation-launcher",
        );
        pod.containers[0].last_state = Some(terminated(
            "Error",
            1,
            "2025-05-01T10:00:00Z",
            "2025-05-01T10:00:30Z",
        ));
        assert!(signal(&pod).is_none(), "exit 1 is not a signal");
        pod.containers[0].last_state = Some(terminated(
            "Error",
            139,
            "2025-05-01T10:00:00Z",
            "2025-05-01T10:00:30Z",
        ));
        assert!(signal(&pod).is_some());
    }

    #[test]
    fn exceptions_need_a_traceback_and_a_crash() {
        let mut pod = pod_with(
            Runtime::Sglang,
            "lmsysorg/sglang:v0.4.6",
            "python3 -m sglang.launch_server",
        );
        pod.containers[0].previous_log = Some(tail(&[
            "Traceback (most recent call last):",
            "  File \"x.py\", line 1",
            "KeyError: 'rope_type'",
        ]));
        assert!(exception(&pod).is_none(), "no termination");
        pod.containers[0].last_state = Some(terminated(
            "Error",
            1,
            "2025-05-01T10:00:00Z",
            "2025-05-01T10:00:30Z",
        ));
        let d = exception(&pod).unwrap();
        assert!(d.summary.contains("KeyError"));
        assert!(cuda_fault(&pod).is_none());
    }

    #[test]
    fn wrapper_exceptions_name_no_cause() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.10.2", "vllm serve m");
        pod.containers[0].last_state = Some(terminated(
            "Error",
            1,
            "2025-05-01T10:00:00Z",
            "2025-05-01T10:00:30Z",
        ));
        pod.containers[0].previous_log = Some(tail(&[
            "(APIServer pid=1) Traceback (most recent call last):",
            "(APIServer pid=1) RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}",
        ]));
        assert!(exception(&pod).is_none());
    }
}
