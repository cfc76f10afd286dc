#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Triage of a large endpoint stays fast: 500 pods with 200 log lines each through every rule.

use std::time::{Duration, Instant};

use hangar_core::{ObjectRef, Runtime};
use hangar_triage::rules::diagnose;
use hangar_triage::{ContainerEvidence, ContainerState, EventRecord, LogTail, PodEvidence};

/// Two hundred lines of the kind a vLLM server prints, with a failure at the end of some.
fn log(pod: usize) -> LogTail {
    let mut lines = Vec::with_capacity(200);
    for i in 0..196 {
        lines.push(match i % 4 {
            0 => format!("INFO 05-01 10:{:02}:{:02} [loggers.py:111] Engine 000: Avg prompt throughput: {}.0 tokens/s, Avg generation throughput: 211.7 tokens/s, Running: 48 reqs, Waiting: 0 reqs, GPU KV cache usage: 61.0%", i % 60, pod % 60, i),
            1 => format!("INFO:     10.8.{}.{}:34112 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK", pod % 250, i % 250),
            2 => "Loading safetensors checkpoint shards:  40% Completed | 12/30 [00:52<01:18,  4.36s/it]".to_owned(),
            _ => format!("DEBUG 05-01 10:00:00 [scheduler.py:{i}] scheduled {pod} sequences, preempted 0, swapped 0, batch tokens 8192"),
        });
    }
    lines.push("Traceback (most recent call last):".to_owned());
    lines.push("  File \"/usr/local/lib/python3.12/dist-packages/vllm/v1/engine/core.py\", line 387, in run_engine_core".to_owned());
    lines.push(match pod % 3 {
        0 => "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.".to_owned(),
        1 => "[rank0]:[E ProcessGroupNCCL.cpp:563] [Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=2, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=600000) ran for 600059 milliseconds before timing out.".to_owned(),
        _ => "KeyError: 'rope_type'".to_owned(),
    });
    lines.push("INFO:     Shutting down".to_owned());
    LogTail {
        source: format!("dump/ml/pod-{pod}/logs.txt"),
        first_line: Some(1),
        lines,
        truncated: true,
    }
}

fn pod(i: usize) -> PodEvidence {
    PodEvidence {
        pod: ObjectRef::new("Pod", "ml", format!("pod-{i}")),
        runtime: Runtime::Vllm,
        phase: Some("Running".into()),
        containers: vec![ContainerEvidence {
            name: "vllm".into(),
            image: "vllm/vllm-openai:v0.8.5".into(),
            command_line: "vllm serve meta-llama/Llama-3.1-8B-Instruct --max-model-len 32768"
                .into(),
            accelerators: vec!["nvidia.com/gpu=1".into()],
            restart_count: 3,
            state: Some(ContainerState::Waiting {
                reason: Some("CrashLoopBackOff".into()),
                message: None,
            }),
            last_state: Some(ContainerState::Terminated {
                reason: Some("Error".into()),
                exit_code: 1,
                signal: None,
                message: None,
                started_at: Some("2025-05-01T09:00:00Z".into()),
                finished_at: Some("2025-05-01T10:00:00Z".into()),
            }),
            previous_log: Some(log(i)),
            log: Some(log(i + 1)),
            ..ContainerEvidence::default()
        }],
        events: vec![EventRecord {
            kind: "Warning".into(),
            reason: "BackOff".into(),
            message: format!("Back-off restarting failed container vllm in pod pod-{i}"),
            count: 9,
            last_seen: Some("2025-05-01T10:05:00Z".into()),
            ..EventRecord::default()
        }],
        ..PodEvidence::default()
    }
}

#[test]
fn five_hundred_pods_with_two_hundred_lines_each_take_well_under_two_seconds() {
    let pods: Vec<PodEvidence> = (0..500).map(pod).collect();
    // Compile the patterns outside the measurement, as a long-running process would have.
    let _ = diagnose(&pods[0]);
    let started = Instant::now();
    let verdicts: Vec<_> = pods.iter().map(diagnose).collect();
    let elapsed = started.elapsed();
    assert_eq!(verdicts.len(), 500);
    assert!(
        verdicts.iter().all(|v| v.rule != "TRI-UNKNOWN"),
        "every pod has a recognisable cause"
    );
    // Each pod carries two log tails of 200 lines: 200 000 lines in all.
    assert!(
        elapsed < Duration::from_secs(2),
        "triage of 500 pods took {elapsed:?}"
    );
    eprintln!("triage of 500 pods × 2 × 200 log lines: {elapsed:?}");
}

#[test]
fn a_megabyte_line_of_non_ascii_text_is_triaged_in_well_under_a_second() {
    // One line of a megabyte of Cyrillic and CJK (a model's output echoed into the log), then the
    // crash: no pattern may fall back to a slow engine on non-ASCII text.
    let mut pod = pod(0);
    let long = "модель 模型 ".repeat(1024 * 1024 / "модель 模型 ".len());
    assert!(long.len() > 1_000_000);
    for container in &mut pod.containers {
        if let Some(log) = container.previous_log.as_mut() {
            log.lines.insert(0, long.clone());
        }
    }
    let _ = diagnose(&pod);
    let started = Instant::now();
    let verdict = diagnose(&pod);
    let elapsed = started.elapsed();
    assert_ne!(verdict.rule, "TRI-UNKNOWN");
    assert!(
        elapsed < Duration::from_millis(500),
        "a 1 MB non-ASCII line took {elapsed:?}"
    );
    eprintln!("a 1 MB non-ASCII line: {elapsed:?}");
}
