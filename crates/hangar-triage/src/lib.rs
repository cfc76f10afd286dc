//! Triage: why an inference endpoint is sick — the model, its configuration or the
//! infrastructure — with the evidence and the next steps; and the runbooks an on-call engineer
//! should have had. Pure: evidence comes in as values, verdicts go out as values.

pub mod change;
pub mod collect;
pub mod evidence;
pub mod report;
pub mod rules;
pub mod runbook;
pub mod verdict;

pub use evidence::{
    ContainerEvidence, ContainerState, EventRecord, LogTail, Logs, NodeEvidence, PodEvidence,
};
pub use verdict::{Category, Diagnosis, Evidence, Side, Verdict};
