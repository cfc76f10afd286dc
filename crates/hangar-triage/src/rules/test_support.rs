//! Plain values for the rules' unit tests.

use hangar_core::{ObjectRef, Runtime};

use crate::evidence::{
    ContainerEvidence, ContainerState, EventRecord, LogTail, NodeEvidence, PodEvidence, Probe,
};
use crate::rules::signatures::Hits;
use crate::verdict::Diagnosis;

/// Runs one rule on `pod` as `diagnose` does: with the pod's logs scanned once.
pub(crate) fn run(
    rule: for<'a> fn(&'a PodEvidence, &Hits<'a>) -> Option<Diagnosis>,
    pod: &PodEvidence,
) -> Option<Diagnosis> {
    rule(pod, &Hits::scan(pod))
}

/// A running pod `ml/srv-0` with one container `server`, as a rule would receive it.
pub(crate) fn pod_with(runtime: Runtime, image: &str, command_line: &str) -> PodEvidence {
    PodEvidence {
        pod: ObjectRef::new("Pod", "ml", "srv-0"),
        runtime,
        phase: Some("Running".into()),
        containers: vec![ContainerEvidence {
            name: "server".into(),
            image: image.into(),
            command_line: command_line.into(),
            accelerators: vec!["nvidia.com/gpu=1".into()],
            state: Some(running("2025-05-01T10:00:00Z")),
            ..ContainerEvidence::default()
        }],
        node: Some(NodeEvidence {
            name: "gpu-1".into(),
            ..NodeEvidence::default()
        }),
        ..PodEvidence::default()
    }
}

pub(crate) fn running(started_at: &str) -> ContainerState {
    ContainerState::Running {
        started_at: Some(started_at.into()),
    }
}

pub(crate) fn terminated(
    reason: &str,
    exit_code: i32,
    started_at: &str,
    finished_at: &str,
) -> ContainerState {
    ContainerState::Terminated {
        reason: Some(reason.into()),
        exit_code,
        signal: None,
        message: None,
        started_at: Some(started_at.into()),
        finished_at: Some(finished_at.into()),
    }
}

pub(crate) fn waiting_state(reason: &str) -> ContainerState {
    ContainerState::Waiting {
        reason: Some(reason.into()),
        message: None,
    }
}

pub(crate) fn tail(lines: &[&str]) -> LogTail {
    LogTail {
        source: "test.log".into(),
        first_line: Some(1),
        lines: lines.iter().map(|l| (*l).to_owned()).collect(),
        truncated: false,
    }
}

pub(crate) fn event(kind: &str, reason: &str, message: &str) -> EventRecord {
    EventRecord {
        kind: kind.into(),
        reason: reason.into(),
        message: message.into(),
        count: 1,
        source: Some("kubelet".into()),
        last_seen: Some("2025-05-01T10:05:00Z".into()),
        ..EventRecord::default()
    }
}

pub(crate) fn probe(initial_delay: i32, period: i32, failures: i32) -> Probe {
    Probe {
        action: "httpGet /health :8000".into(),
        initial_delay_seconds: initial_delay,
        period_seconds: period,
        timeout_seconds: 1,
        failure_threshold: failures,
    }
}
