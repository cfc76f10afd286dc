//! The process crashed for a reason no other rule names: a kernel fault on the GPU, a signal, or
//! a Python exception.
//!
//! Side: **configuration**, at lower confidence. The GPU and the model files are fine as far as
//! the evidence shows (other rules would have said otherwise); what crashed is the server build,
//! its kernels or the options it runs with — the image tag, attention backend, quantization or
//! CUDA graphs the deployment chose. Xid 13, 31 and 43 on the node point the same way: NVIDIA's
//! catalog attributes them to the application in almost every case.
//!
//! The catch-all rules (a signal, an exception) step aside when the crashed container's log also
//! holds a line that names a cause (an OOM, a missing file, a rejected flag): the abort is how the
//! process died, that line is why. An engine that died is a crash even when the server then exits
//! 0 (`Completed`): it stopped serving.

use crate::evidence::PodEvidence;
use crate::rules::facts::{
    Kubectl, Termination, is_model_server, runtime_name, runtime_of, terminations,
};
use crate::rules::gpu::{APPLICATION_XIDS, xid_meaning, xid_reports};
use crate::rules::signatures::{Hit, Hits, Kind};
use crate::verdict::{Category, Diagnosis, Side};

const CUDA_FAULTS: &[Kind] = &[Kind::CudaAppFault];

/// A kernel faulted on the GPU: illegal memory access, and Xid 13/31/43 on the node.
pub(crate) fn cuda_fault<'a>(pod: &'a PodEvidence, scan: &Hits<'a>) -> Option<Diagnosis> {
    let hits = scan.of(CUDA_FAULTS);
    let hit = hits.iter().find(|h| scan.matters(pod, h));
    let xids: Vec<_> = xid_reports(pod)
        .into_iter()
        .filter(|r| APPLICATION_XIDS.contains(&r.xid))
        .collect();
    if hit.is_none() && (xids.is_empty() || !scan.troubled()) {
        return None;
    }
    let mut evidence: Vec<_> = hit.map(|h| h.line.evidence()).into_iter().collect();
    evidence.extend(xids.iter().take(2).map(|r| r.evidence.clone()));
    let c = hit.map(|h| h.line.container);
    let mine: Vec<Termination> = terminations(pod)
        .into_iter()
        .filter(|t| c.is_none_or(|c| std::ptr::eq(t.container, c)) && t.matters(pod))
        .collect();
    // A server can shut down cleanly after its engine faulted: exit 0 is still this crash.
    let stop = mine.iter().find(|t| t.exit_code != 0).or_else(|| {
        mine.iter()
            .find(|t| t.field == "lastState" && hit.is_some_and(|h| h.line.previous))
    });
    evidence.extend(stop.map(|t| t.evidence(pod)));
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
    if hit.is_some_and(|h| h.line.text.contains("custom_all_reduce")) {
        next_steps.insert(0, "The fault is in vLLM's custom all-reduce kernel: add `--disable-custom-all-reduce` (NCCL does the all-reduce instead) and report it with the image tag and GPU type.".into());
    }
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
            "A GPU kernel in {name} faulted{xid_text}{}: a software fault in the server or its kernels, not the hardware.",
            if stop.is_some_and(|t| t.exit_code == 0) {
                " and the server then exited 0 (Completed)"
            } else {
                ""
            }
        ),
        evidence,
        next_steps,
    })
}

const SIGNALS: &[Kind] = &[Kind::Signal];

/// Confidence of a catch-all crash rule below any specific rule's.
const STEP_ASIDE: f32 = 0.3;

/// The process died on SIGSEGV or SIGABRT.
pub(crate) fn signal<'a>(pod: &'a PodEvidence, scan: &Hits<'a>) -> Option<Diagnosis> {
    let by_exit = terminations(pod).into_iter().find(|t| {
        (matches!(t.exit_code, 134 | 139) || matches!(t.signal, Some(6 | 11))) && t.matters(pod)
    });
    let hits = scan.of(SIGNALS);
    let hit = hits.iter().find(|h| scan.matters(pod, h));
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
        confidence: if scan.cause_logged(pod, c) { STEP_ASIDE } else { 0.6 },
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

const TRACEBACKS: &[Kind] = &[Kind::TracebackStart, Kind::Exception];

/// The process exited on a Python exception that no other rule recognises.
pub(crate) fn exception<'a>(pod: &'a PodEvidence, scan: &Hits<'a>) -> Option<Diagnosis> {
    let crashed = terminations(pod)
        .into_iter()
        .find(|t| t.exit_code != 0 && !t.reason_is("OOMKilled") && t.matters(pod))?;
    let hits = scan.of(TRACEBACKS);
    let names_a_cause = |h: &&Hit| {
        std::ptr::eq(h.line.container, crashed.container)
            && h.kind() == Kind::Exception
            && scan.matters(pod, h)
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
        confidence: if scan.cause_logged(pod, crashed.container) {
            STEP_ASIDE
        } else {
            0.45
        },
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

const ENGINE_DEATHS: &[Kind] = &[Kind::EngineDead];

/// The server's engine died (vLLM's `EngineDeadError`, a worker that died unexpectedly) and the
/// container stopped, whatever its exit code: vLLM's API server shuts down cleanly and exits 0
/// after its engine dies, which the kubelet reports as `Completed`.
pub(crate) fn engine_died<'a>(pod: &'a PodEvidence, scan: &Hits<'a>) -> Option<Diagnosis> {
    let hits = scan.of(ENGINE_DEATHS);
    let (hit, stop) = hits.iter().find_map(|h| {
        let c = h.line.container;
        if !h.line.previous || c.init || !is_model_server(c) || !scan.matters(pod, h) {
            return None;
        }
        let stop = terminations(pod)
            .into_iter()
            .find(|t| std::ptr::eq(t.container, c) && t.field == "lastState" && t.matters(pod))?;
        Some((h, stop))
    })?;
    let c = hit.line.container;
    let runtime = runtime_name(runtime_of(pod, c));
    let exit = if stop.exit_code == 0 {
        " and the server then exited 0, which the kubelet reports as Completed".to_owned()
    } else {
        format!(" and the server exited {}", stop.exit_code)
    };
    Some(Diagnosis {
        rule: "TRI-CRASH-ENGINE-DEAD",
        category: Category::Crash,
        side: Some(Side::Configuration),
        confidence: if scan.cause_logged(pod, c) {
            STEP_ASIDE
        } else {
            0.5
        },
        summary: format!(
            "{runtime}'s engine in {} died{exit}: the server stopped serving; the lines before the engine's death name what killed it.",
            c.name
        ),
        evidence: vec![hit.line.evidence(), stop.evidence(pod)],
        next_steps: vec![
            format!(
                "Read the lines before the engine died: {} | grep -B 30 -m 1 -E \"EngineDead|fatal error|died unexpectedly\"",
                Kubectl::of(pod).logs(&c.name, true, None)
            ),
            format!(
                "Treat it as a {runtime} fault for this model and settings: try the previous image tag of {}, or turn off the feature the traceback names (custom all-reduce: `--disable-custom-all-reduce`; CUDA graphs: `--enforce-eager`).",
                c.image
            ),
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
        let d = run(cuda_fault, &pod).unwrap();
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
        assert!(run(signal, &pod).is_none(), "exit 1 is not a signal");
        pod.containers[0].last_state = Some(terminated(
            "Error",
            139,
            "2025-05-01T10:00:00Z",
            "2025-05-01T10:00:30Z",
        ));
        assert!(run(signal, &pod).is_some());
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
        assert!(run(exception, &pod).is_none(), "no termination");
        pod.containers[0].last_state = Some(terminated(
            "Error",
            1,
            "2025-05-01T10:00:00Z",
            "2025-05-01T10:00:30Z",
        ));
        let d = run(exception, &pod).unwrap();
        assert!(d.summary.contains("KeyError"));
        assert!(run(cuda_fault, &pod).is_none());
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
        assert!(run(exception, &pod).is_none());
    }

    #[test]
    fn a_catch_all_crash_steps_aside_for_a_line_that_names_the_cause() {
        let mut pod = pod_with(
            Runtime::Lmdeploy,
            "openmmlab/lmdeploy:v0.8.0-cu12",
            "lmdeploy serve api_server m",
        );
        pod.containers[0].last_state = Some(terminated(
            "Error",
            134,
            "2025-05-14T09:01:08Z",
            "2025-05-14T15:02:47Z",
        ));
        pod.containers[0].previous_log = Some(tail(&[
            "terminate called after throwing an instance of 'std::runtime_error'",
            "  what():  [TM][ERROR] CUDA runtime error: out of memory /lmdeploy/src/turbomind/core/allocator.cc:49",
        ]));
        assert_eq!(run(signal, &pod).unwrap().confidence, STEP_ASIDE);
        pod.containers[0].previous_log = Some(tail(&[
            "terminate called after throwing an instance of 'std::runtime_error'",
            "  what():  unknown",
        ]));
        assert_eq!(run(signal, &pod).unwrap().confidence, 0.6);
    }

    #[test]
    fn an_engine_that_died_before_a_clean_exit_is_a_crash() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.9.1", "vllm serve m");
        pod.containers[0].state = Some(running("2025-06-26T23:10:33Z"));
        pod.containers[0].last_state = Some(terminated(
            "Completed",
            0,
            "2025-06-26T19:02:38Z",
            "2025-06-26T23:10:19Z",
        ));
        pod.containers[0].previous_log = Some(tail(&[
            "ERROR 06-26 23:10:17 [async_llm.py:420] vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause.",
            "INFO:     Finished server process [1]",
        ]));
        let d = run(engine_died, &pod).unwrap();
        assert_eq!(
            (d.category, d.side),
            (Category::Crash, Some(Side::Configuration))
        );
        assert!(d.summary.contains("Completed"));
        pod.containers[0].previous_log = Some(tail(&["INFO:     Finished server process [1]"]));
        assert!(
            run(engine_died, &pod).is_none(),
            "a clean exit without an engine death is not a crash"
        );
    }

    #[test]
    fn illegal_memory_access_in_a_custom_kernel_is_recognised() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.9.1", "vllm serve m");
        pod.containers[0].last_state = Some(terminated(
            "Completed",
            0,
            "2025-06-26T19:02:38Z",
            "2025-06-26T23:10:19Z",
        ));
        pod.containers[0].previous_log = Some(tail(&[
            "Failed: Cuda error /workspace/csrc/custom_all_reduce.cuh:594 'an illegal memory access was encountered'",
        ]));
        let d = run(cuda_fault, &pod).unwrap();
        assert_eq!(d.category, Category::Crash);
        assert!(
            d.summary.contains("exited 0")
                && d.next_steps[0].contains("--disable-custom-all-reduce")
        );
    }
}
