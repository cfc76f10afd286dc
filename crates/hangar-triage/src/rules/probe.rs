//! Probes that kill a server that is working: most often a liveness or startup probe that gives
//! up before a large model has finished loading, sometimes a health check too impatient for a
//! busy server. **Configuration**: the probe's timing, not the server, is wrong.
//!
//! A liveness kill ends in exit 137 (SIGKILL after the grace period) without `OOMKilled`: the
//! kubelet's `Killing` event and the `Unhealthy` events tell it from a memory kill. A server that
//! exits 1 on its own while its probes are refused was not killed by them; and when the log names
//! a cause (a KV-cache error at start-up), that cause is why it stopped answering, so the probe
//! steps aside.
//!
//! A probe the server answers with 401 or 403 is **configuration** too: the server is up and
//! requires an API key, and the probe calls a path that needs one without sending it.

use std::sync::LazyLock;

use crate::evidence::{ContainerEvidence, ContainerState, EventRecord, PodEvidence, Probe};
use crate::rules::facts::{Kubectl, Termination, events, is_recent, pod_event, terminations};
use crate::rules::signatures::{Hit, Hits, Kind};
use crate::verdict::{Category, Diagnosis, Evidence, Side};

const PROGRESS: &[Kind] = &[Kind::Loading, Kind::Ready, Kind::Traffic];

/// Confidence of a probe kill whose container's log names another cause: below any specific rule.
const STEP_ASIDE: f32 = 0.3;

/// Which probe a `Killing` or `Unhealthy` message is about.
fn probe_kind(message: &str) -> Option<&'static str> {
    let m = message.to_ascii_lowercase();
    if m.contains("startup probe") {
        Some("startup")
    } else if m.contains("liveness probe") {
        Some("liveness")
    } else {
        None
    }
}

/// `Container vllm failed liveness probe, will be restarted` names the container.
fn killed_container(message: &str) -> Option<&str> {
    message
        .strip_prefix("Container ")?
        .split_whitespace()
        .next()
}

fn declared<'a>(c: &'a ContainerEvidence, kind: &str) -> Option<&'a Probe> {
    match kind {
        "startup" => c.startup.as_ref(),
        _ => c.liveness.as_ref(),
    }
}

fn probe_evidence(pod: &PodEvidence, c: &ContainerEvidence, kind: &str, probe: &Probe) -> Evidence {
    Evidence {
        source: format!(
            "{} spec.containers[{}].{kind}Probe ({})",
            pod.pod, c.name, pod.origin
        ),
        text: format!(
            "{} initialDelaySeconds={} periodSeconds={} timeoutSeconds={} failureThreshold={} (allows {} s)",
            probe.action,
            probe.initial_delay_seconds,
            probe.period_seconds,
            probe.timeout_seconds,
            probe.failure_threshold,
            probe.allowed_seconds()
        ),
        at: None,
    }
}

/// What the server had got to when it was killed.
enum Progress {
    Loading,
    Serving,
    Unknown,
}

fn progress(hits: &[Hit<'_>], c: &ContainerEvidence) -> Progress {
    let mine: Vec<&Hit> = hits
        .iter()
        .filter(|h| std::ptr::eq(h.line.container, c) && h.line.previous)
        .collect();
    if mine
        .iter()
        .any(|h| matches!(h.kind(), Kind::Ready | Kind::Traffic))
    {
        Progress::Serving
    } else if mine.iter().any(|h| h.kind() == Kind::Loading) {
        Progress::Loading
    } else {
        Progress::Unknown
    }
}

static ETA: LazyLock<Option<regex::Regex>> =
    LazyLock::new(|| regex::Regex::new(r"\[(\d+):(\d\d)<(?:(\d+):)?(\d+):(\d\d)").ok());

/// A progress bar that says more than this is left is guessing from a stalled first step: no
/// probe should be sized on it.
const MAX_REMAINING_SECONDS: i64 = 3 * 86400;

/// The time a progress bar (`[01:12<07:24, 10.34s/it]`) says is left, in seconds; `None` when
/// it says more than a few days.
fn remaining_seconds(line: &str) -> Option<i64> {
    let c = ETA.as_ref()?.captures(line)?;
    let number = |i: usize| c.get(i).map_or(Some(0), |m| m.as_str().parse::<i64>().ok());
    let seconds = number(3)?
        .checked_mul(3600)?
        .checked_add(number(4)?.checked_mul(60)?)?
        .checked_add(number(5)?)?;
    (seconds <= MAX_REMAINING_SECONDS).then_some(seconds)
}

/// The step that gives the server `budget` seconds to load before liveness checks begin: when
/// the `kind` probe that killed it is the startupProbe, a longer one; otherwise a new one.
fn load_time_step(kind: &str, probe: &Probe, budget: i64) -> String {
    let period = probe.period_seconds.max(1);
    let failures = budget.saturating_add(i64::from(period) - 1) / i64::from(period);
    if kind == "startup" {
        return format!(
            "Raise the startupProbe's failureThreshold (now {}) to {failures}, or its periodSeconds (now {period}), so it allows {budget} s for the load instead of {} s; liveness checks only begin once it succeeds.",
            probe.failure_threshold,
            probe.allowed_seconds()
        );
    }
    format!(
        "Add a startupProbe ({}) with periodSeconds: {period} and failureThreshold: {failures} so the server gets {budget} s to load; liveness checks only begin once it succeeds.",
        probe.action
    )
}

pub(crate) fn probe_kill<'a>(pod: &'a PodEvidence, scan: &Hits<'a>) -> Option<Diagnosis> {
    let recent = |e: &&EventRecord| is_recent(pod, e.last_seen.as_deref());
    let kill_event = events(pod, &["Killing"])
        .into_iter()
        .filter(recent)
        .rfind(|e| e.message.contains("probe, will be restarted"));
    let unhealthy: Vec<&EventRecord> = events(pod, &["Unhealthy"])
        .into_iter()
        .filter(recent)
        .filter(|e| probe_kind(&e.message).is_some())
        .collect();
    let named = kill_event.and_then(|e| killed_container(&e.message));
    // The kubelet kills with SIGTERM, then SIGKILL after the grace period: exit 137 (or signal 9)
    // unless its `Killing` event names the container, which then may have exited any way. A
    // server that exits 1 on its own while probes are refused was not killed by them.
    let kill: Termination = terminations(pod).into_iter().find(|t| {
        let sigkill = t.exit_code == 137 || t.signal == Some(9);
        !t.reason_is("OOMKilled")
            && t.matters(pod)
            && named.is_none_or(|name| name == t.container.name)
            && (sigkill || named.is_some())
    })?;
    let c = kill.container;
    let kind = kill_event
        .and_then(|e| probe_kind(&e.message))
        .or_else(|| unhealthy.last().and_then(|e| probe_kind(&e.message)))
        .unwrap_or("liveness");
    let probe = declared(c, kind)?;
    let lifetime = kill.lifetime_seconds();
    let allowed = probe.allowed_seconds();
    // Without events, a SIGKILL just as the probe's budget runs out is still telling.
    let timed_like_a_probe = kill.exit_code == 137
        && lifetime.is_some_and(|l| {
            l >= allowed - i64::from(probe.period_seconds)
                && l <= allowed + 3 * i64::from(probe.period_seconds) + 30
        });
    if kill_event.is_none() && unhealthy.is_empty() && !timed_like_a_probe {
        return None;
    }
    let hits = scan.of(PROGRESS);
    let stage = progress(&hits, c);
    let timeouts = unhealthy.iter().any(|e| {
        e.message.contains("context deadline exceeded")
            || e.message.contains("Timeout exceeded")
            || e.message.contains("timed out")
    });
    let mut evidence = Vec::new();
    evidence.extend(kill_event.map(|e| pod_event(pod, e)));
    evidence.extend(unhealthy.last().map(|e| pod_event(pod, e)));
    evidence.push(kill.evidence(pod));
    evidence.push(probe_evidence(pod, c, kind, probe));
    let ran = lifetime
        .map(|l| format!("after {l} s"))
        .unwrap_or_else(|| "".into());
    let kubectl = Kubectl::of(pod);
    let last_progress = hits.iter().rev().find(|h| {
        std::ptr::eq(h.line.container, c) && h.line.previous && h.kind() == Kind::Loading
    });
    // What the load would have taken: the time it ran plus what its progress bar said was left.
    let load_estimate = lifetime.unwrap_or(allowed).saturating_add(
        last_progress
            .and_then(|h| remaining_seconds(h.line.text))
            .unwrap_or(0),
    );
    let budget = load_estimate.saturating_mul(2).max(600);
    let load_step = load_time_step(kind, probe, budget);
    let (summary, confidence, mut next_steps) = match stage {
        Progress::Loading => {
            evidence.extend(last_progress.map(|h| h.line.evidence()));
            (
                format!(
                    "The {kind} probe killed {} {ran} while the model was still loading; the probe allows {allowed} s.",
                    c.name
                ),
                if kill_event.is_some() || !unhealthy.is_empty() { 0.92 } else { 0.7 },
                vec![load_step],
            )
        }
        Progress::Serving if timeouts => (
            format!(
                "The {kind} probe of {} timed out while the server was busy serving and killed it; timeoutSeconds is {}.",
                c.name, probe.timeout_seconds
            ),
            0.8,
            vec![format!(
                "Raise the {kind} probe's timeoutSeconds (now {}) to 5-10 s and its failureThreshold (now {}): model servers answer /health from the same loop that schedules batches.",
                probe.timeout_seconds, probe.failure_threshold
            )],
        ),
        Progress::Serving => (
            format!(
                "The {kind} probe killed {} {ran} after the server had started: it stopped answering its health check.",
                c.name
            ),
            0.5,
            vec!["Look at the previous container's last lines for a hang (NCCL, GPU) before loosening the probe.".into()],
        ),
        Progress::Unknown => (
            format!("The {kind} probe killed {} {ran}; the probe allows {allowed} s.", c.name),
            if kill_event.is_some() { 0.75 } else { 0.6 },
            vec![load_step],
        ),
    };
    next_steps.push(format!("Confirm: {}", kubectl.events()));
    next_steps.push(format!(
        "See how far it got: {} | tail -n 30",
        kubectl.logs(&c.name, true, None)
    ));
    Some(Diagnosis {
        rule: "TRI-PROBE-KILL",
        category: Category::Probe,
        side: Some(Side::Configuration),
        // A line naming a cause (an OOM, a missing file) says why the server stopped answering.
        confidence: if scan.cause_logged(pod, c) {
            STEP_ASIDE
        } else {
            confidence
        },
        summary,
        evidence,
        next_steps,
    })
}

/// Which probe an `Unhealthy` message is about, readiness included.
fn any_probe_kind(message: &str) -> Option<&'static str> {
    probe_kind(message).or_else(|| {
        message
            .to_ascii_lowercase()
            .contains("readiness probe")
            .then_some("readiness")
    })
}

fn declared_any<'a>(c: &'a ContainerEvidence, kind: &str) -> Option<&'a Probe> {
    match kind {
        "readiness" => c.readiness.as_ref(),
        other => declared(c, other),
    }
}

/// Probes refused with 401 or 403: the server is up, and the probed path wants credentials.
pub(crate) fn probe_refused_auth<'a>(pod: &'a PodEvidence, scan: &Hits<'a>) -> Option<Diagnosis> {
    let refused = |e: &&EventRecord| {
        e.message.contains("statuscode: 401") || e.message.contains("statuscode: 403")
    };
    let event = events(pod, &["Unhealthy"])
        .into_iter()
        .filter(|e| is_recent(pod, e.last_seen.as_deref()))
        .rfind(refused)?;
    let kind = any_probe_kind(&event.message).unwrap_or("readiness");
    // The kubelet names no container in `Unhealthy`: take the one whose probe is declared.
    let (c, probe) = crate::rules::facts::main_containers(pod)
        .filter(|c| matches!(c.state, Some(ContainerState::Running { .. })))
        .find_map(|c| declared_any(c, kind).map(|p| (c, p)))?;
    let code = if event.message.contains("statuscode: 401") {
        "401 Unauthorized"
    } else {
        "403 Forbidden"
    };
    let key = c
        .env_from
        .iter()
        .chain(c.env.keys())
        .find(|k| k.contains("API_KEY") || k.contains("TOKEN"))
        .map(|k| format!(" ({k} is set)"))
        .unwrap_or_default();
    let mut evidence = vec![pod_event(pod, event), probe_evidence(pod, c, kind, probe)];
    evidence.extend(
        scan.of(PROGRESS)
            .iter()
            .rfind(|h| std::ptr::eq(h.line.container, c) && h.kind() == Kind::Ready)
            .map(|h| h.line.evidence()),
    );
    let health = match crate::rules::facts::runtime_of(pod, c) {
        hangar_core::Runtime::Vllm | hangar_core::Runtime::Sglang => "/health",
        hangar_core::Runtime::Tgi | hangar_core::Runtime::Tei => "/health",
        hangar_core::Runtime::Triton => "/v2/health/ready",
        hangar_core::Runtime::Ollama => "/ (or /api/version)",
        _ => "the server's unauthenticated health path",
    };
    let kubectl = Kubectl::of(pod);
    Some(Diagnosis {
        rule: "TRI-PROBE-AUTH",
        category: Category::Probe,
        side: Some(Side::Configuration),
        confidence: 0.94,
        summary: format!(
            "The {kind} probe of {} gets {code}: the server is up and requires an API key{key}, and the probe ({}) does not send one.",
            c.name, probe.action
        ),
        evidence,
        next_steps: vec![
            format!("Point the {kind} probe at {health}, which answers without a key, instead of `{}`.", probe.action),
            "Or make the probe send the key: httpGet.httpHeaders [{name: Authorization, value: \"Bearer …\"}] (the value is then in the pod spec), or an exec probe that reads it from the environment.".into(),
            format!("Confirm: {}", kubectl.events()),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::*;
    use hangar_core::Runtime;

    fn killed() -> PodEvidence {
        let mut pod = pod_with(
            Runtime::Vllm,
            "vllm/vllm-openai:v0.8.5",
            "vllm serve meta-llama/Llama-3.1-70B-Instruct",
        );
        pod.containers[0].liveness = Some(probe(30, 10, 3));
        pod.containers[0].last_state = Some(terminated(
            "Error",
            137,
            "2025-05-01T10:00:00Z",
            "2025-05-01T10:01:05Z",
        ));
        pod.containers[0].previous_log = Some(tail(&[
            "INFO 05-01 10:00:20 [gpu_model_runner.py:1329] Starting to load model meta-llama/Llama-3.1-70B-Instruct...",
            "Loading safetensors checkpoint shards:  20% Completed | 6/30 [00:40<02:40,  6.70s/it]",
        ]));
        pod
    }

    #[test]
    fn a_liveness_kill_during_loading_is_a_probe_problem() {
        let mut pod = killed();
        pod.events.push(event(
            "Normal",
            "Killing",
            "Container server failed liveness probe, will be restarted",
        ));
        let d = run(probe_kill, &pod).unwrap();
        assert_eq!(
            (d.category, d.side),
            (Category::Probe, Some(Side::Configuration))
        );
        assert!(d.summary.contains("after 65 s") && d.summary.contains("allows 60 s"));
        // 65 s run + 160 s the bar says are left, doubled, is under the 600 s floor.
        assert!(d.next_steps[0].contains("failureThreshold: 60"));
    }

    #[test]
    fn reads_the_time_left_from_a_progress_bar() {
        assert_eq!(
            remaining_seconds(
                "Loading safetensors checkpoint shards:  14% Completed | 7/50 [01:12<07:24, 10.34s/it]"
            ),
            Some(444)
        );
        assert_eq!(
            remaining_seconds("shards: 2% | 1/62 [00:00<1:03:18, 3.30s/it]"),
            Some(3798)
        );
        assert_eq!(remaining_seconds("no bar here"), None);
    }

    #[test]
    fn an_absurd_time_left_is_ignored_not_overflowed() {
        let absurd = "Loading safetensors checkpoint shards:   3% Completed | 1/30 [00:10<9999999999999999:00:00,  5.0s/it]";
        assert_eq!(remaining_seconds(absurd), None);
        assert_eq!(
            remaining_seconds("shards: 1% | 1/99 [00:10<100:00:00, 5.0s/it]"),
            None,
            "more than a few days is no estimate"
        );
        let mut pod = killed();
        pod.containers[0].previous_log = Some(tail(&[
            "INFO 05-01 10:00:20 [gpu_model_runner.py:1329] Starting to load model meta-llama/Llama-3.1-70B-Instruct...",
            absurd,
        ]));
        pod.events.push(event(
            "Normal",
            "Killing",
            "Container server failed liveness probe, will be restarted",
        ));
        let d = run(probe_kill, &pod).unwrap();
        // 65 s run and no usable estimate, doubled, is under the 600 s floor.
        assert!(
            d.next_steps[0].contains("failureThreshold: 60"),
            "{:?}",
            d.next_steps
        );
    }

    #[test]
    fn a_startup_probe_that_gives_up_too_soon_is_lengthened_not_added() {
        let mut pod = killed();
        pod.containers[0].startup = Some(probe(0, 10, 6));
        pod.events.push(event(
            "Normal",
            "Killing",
            "Container server failed startup probe, will be restarted",
        ));
        let d = run(probe_kill, &pod).unwrap();
        assert!(d.summary.starts_with("The startup probe"), "{}", d.summary);
        let step = &d.next_steps[0];
        assert!(
            step.contains("Raise the startupProbe's failureThreshold (now 6) to 60")
                && step.contains("instead of 60 s"),
            "{step}"
        );
        assert!(!step.contains("Add a startupProbe"), "{step}");
    }

    #[test]
    fn a_sigkill_at_the_probe_budget_is_suspicious_even_without_events() {
        let d = run(probe_kill, &killed()).unwrap();
        assert!(d.confidence < 0.8);
    }

    /// vLLM fails its start-up on the KV cache, exits 1, and the liveness probe meanwhile finds
    /// the port closed: the probe did not kill it, the GPU memory did.
    fn startup_gpu_oom_with_refused_probes() -> PodEvidence {
        let mut pod = pod_with(
            Runtime::Vllm,
            "vllm/vllm-openai:v0.8.5",
            "vllm serve meta-llama/Llama-3.1-70B-Instruct --max-model-len 131072",
        );
        pod.containers[0].liveness = Some(probe(30, 10, 3));
        pod.containers[0].state = Some(waiting_state("CrashLoopBackOff"));
        pod.containers[0].last_state = Some(terminated(
            "Error",
            1,
            "2025-05-01T10:00:00Z",
            "2025-05-01T10:01:05Z",
        ));
        pod.containers[0].previous_log = Some(tail(&[
            "INFO 05-01 10:00:20 [gpu_model_runner.py:1329] Starting to load model meta-llama/Llama-3.1-70B-Instruct...",
            "ERROR 05-01 10:01:04 [core.py:396] ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine.",
        ]));
        pod.events.push(event(
            "Warning",
            "Unhealthy",
            "Liveness probe failed: Get \"http://10.1.2.3:8000/health\": dial tcp 10.1.2.3:8000: connect: connection refused",
        ));
        pod
    }

    #[test]
    fn a_server_that_exits_1_on_its_own_was_not_killed_by_its_probe() {
        let pod = startup_gpu_oom_with_refused_probes();
        assert!(run(probe_kill, &pod).is_none());
        assert_eq!(crate::rules::diagnose(&pod).category, Category::GpuOom);
    }

    #[test]
    fn a_probe_kill_steps_aside_when_the_log_names_the_cause() {
        let mut pod = startup_gpu_oom_with_refused_probes();
        pod.events.push(event(
            "Normal",
            "Killing",
            "Container server failed liveness probe, will be restarted",
        ));
        let d = run(probe_kill, &pod).unwrap();
        assert!(d.confidence < 0.5, "{}", d.confidence);
        assert_eq!(crate::rules::diagnose(&pod).category, Category::GpuOom);
    }

    #[test]
    fn oom_kills_are_not_probe_kills() {
        let mut pod = killed();
        pod.containers[0].last_state = Some(terminated(
            "OOMKilled",
            137,
            "2025-05-01T10:00:00Z",
            "2025-05-01T10:01:05Z",
        ));
        pod.events.push(event(
            "Normal",
            "Killing",
            "Container server failed liveness probe, will be restarted",
        ));
        assert!(run(probe_kill, &pod).is_none());
    }

    #[test]
    fn a_probe_answered_401_is_the_probes_configuration() {
        let mut pod = pod_with(
            Runtime::Vllm,
            "vllm/vllm-openai:v0.10.1.1",
            "vllm serve openai/gpt-oss-20b",
        );
        pod.containers[0].env_from = vec!["VLLM_API_KEY".into()];
        pod.containers[0].readiness = Some(Probe {
            action: "httpGet /v1/models :8000".into(),
            ..probe(60, 10, 3)
        });
        pod.events.push(event(
            "Warning",
            "Unhealthy",
            "Readiness probe failed: HTTP probe failed with statuscode: 401",
        ));
        let d = run(probe_refused_auth, &pod).unwrap();
        assert_eq!(
            (d.category, d.side),
            (Category::Probe, Some(Side::Configuration))
        );
        assert!(d.summary.contains("VLLM_API_KEY") && d.next_steps[0].contains("/health"));
        pod.events[0].message =
            "Readiness probe failed: HTTP probe failed with statuscode: 503".into();
        assert!(
            run(probe_refused_auth, &pod).is_none(),
            "503 is a server still loading"
        );
    }
}
