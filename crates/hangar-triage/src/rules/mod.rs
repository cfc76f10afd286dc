//! The diagnosis rules: pure functions from one pod's evidence to a diagnosis.
//!
//! Each rule looks for one cause and says how sure it is. `diagnose` runs them all and keeps the
//! most confident; a pod nothing matches is `healthy` when it is running and ready, `unknown`
//! otherwise.

use crate::evidence::PodEvidence;
use crate::verdict::Diagnosis;

/// One diagnosis rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Stable id, shown with each verdict (`TRI-HOST-OOM`).
    pub id: &'static str,
    /// What the rule recognises, for `docs/triage.md`.
    pub title: &'static str,
    pub run: fn(&PodEvidence) -> Option<Diagnosis>,
}

/// Every rule, in no particular order: `diagnose` ranks their answers.
pub const RULES: &[Rule] = &[];

/// Every diagnosis the rules reach for `pod`, most confident first.
pub fn diagnose_all(pod: &PodEvidence) -> Vec<Diagnosis> {
    let mut found: Vec<Diagnosis> = RULES.iter().filter_map(|r| (r.run)(pod)).collect();
    found.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    found
}
