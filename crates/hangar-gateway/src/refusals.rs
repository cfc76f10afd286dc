//! Keeps a flood of refused requests from filling the audit log. Each second, the first
//! `audit.refusalsPerSecond` refusals are recorded one by one as usual; the rest are counted by
//! client, tenant, status and code, and written as one `refusals` record when the second is
//! over. Nothing goes unrecorded, and an attacker hammering the gateway without a key writes at
//! most that many full records a second (plus one summary) instead of one per request.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::audit::AuditRecord;

/// Groups named one by one in a summary; the rest are added up in `others`.
const MAX_GROUPS: usize = 32;

/// Distinct groups counted within one second: past this (a flood from very many addresses),
/// refusals are only added to `others`, so memory stays bounded.
const MAX_TRACKED: usize = 4096;

/// One second's refusals that were counted instead of recorded one by one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefusalSummary {
    /// Always `refusals`.
    pub kind: &'static str,
    /// The second they came in (RFC 3339, UTC).
    pub second: String,
    /// How many there were.
    pub count: u64,
    /// Their counts by client, tenant, status and code, the largest first.
    pub groups: Vec<RefusalGroup>,
    /// Refusals not in `groups`.
    #[serde(skip_serializing_if = "is_zero")]
    pub others: u64,
}

/// Refusals alike: the same client, tenant, status and code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RefusalGroup {
    /// The client's address.
    pub client: String,
    /// The verified tenant, when authentication succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The status sent.
    pub status: u16,
    /// The error code sent.
    pub code: String,
    /// How many.
    pub count: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The refusal budget of the current second.
#[derive(Debug, Default)]
pub struct RefusalBudget {
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    /// The Unix second this window counts.
    second: i64,
    /// Refusals recorded one by one in it.
    recorded: u32,
    /// Refusals only counted, by (client, tenant, status, code).
    counted: HashMap<(String, Option<String>, u16, String), u64>,
    /// Refusals counted past [`MAX_TRACKED`] groups.
    untracked: u64,
}

impl RefusalBudget {
    /// Whether `refusal`, at Unix second `second`, gets a record of its own: the first
    /// `per_second` of each second do (all of them when `per_second` is 0); the others are
    /// counted. Also returns the summary of the second before, when that one is over and had
    /// refusals counted.
    pub fn admit(
        &self,
        second: i64,
        per_second: u32,
        refusal: &AuditRecord,
    ) -> (bool, Option<RefusalSummary>) {
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let over = if window.second == second {
            None
        } else {
            window.start(second)
        };
        if per_second == 0 || window.recorded < per_second {
            window.recorded = window.recorded.saturating_add(1);
            return (true, over);
        }
        let key = (
            refusal.client.clone(),
            refusal.tenant.clone(),
            refusal.status,
            refusal.code.clone().unwrap_or_default(),
        );
        let tracked = window.counted.len();
        match window.counted.get_mut(&key) {
            Some(count) => *count += 1,
            None if tracked < MAX_TRACKED => {
                window.counted.insert(key, 1);
            }
            None => window.untracked += 1,
        }
        (false, over)
    }

    /// The summary of a second before `second` still waiting (a flood that stopped), if any.
    pub fn finished(&self, second: i64) -> Option<RefusalSummary> {
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if window.second < second {
            window.start(second)
        } else {
            None
        }
    }

    /// The summary of the current second, if it counted any (at shutdown).
    pub fn flush(&self) -> Option<RefusalSummary> {
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let second = window.second;
        window.start(second)
    }
}

impl Window {
    /// Starts counting `second` afresh; returns the summary of what ends, if it counted any.
    fn start(&mut self, second: i64) -> Option<RefusalSummary> {
        let ended = std::mem::replace(
            self,
            Window {
                second,
                ..Window::default()
            },
        );
        let mut groups: Vec<RefusalGroup> = ended
            .counted
            .into_iter()
            .map(|((client, tenant, status, code), count)| RefusalGroup {
                client,
                tenant,
                status,
                code,
                count,
            })
            .collect();
        let count = groups.iter().map(|g| g.count).sum::<u64>() + ended.untracked;
        if count == 0 {
            return None;
        }
        groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.cmp(b)));
        let others = groups
            .get(MAX_GROUPS..)
            .unwrap_or_default()
            .iter()
            .map(|g| g.count)
            .sum::<u64>()
            + ended.untracked;
        groups.truncate(MAX_GROUPS);
        let second = jiff::Timestamp::from_second(ended.second)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| ended.second.to_string());
        Some(RefusalSummary {
            kind: "refusals",
            second,
            count,
            groups,
            others,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(client: &str, code: &str) -> AuditRecord {
        AuditRecord {
            kind: "request",
            client: client.into(),
            status: 401,
            code: Some(code.into()),
            ..AuditRecord::default()
        }
    }

    #[test]
    fn past_the_budget_refusals_are_counted_and_summarised_when_the_second_ends() {
        let budget = RefusalBudget::default();
        let mut recorded = 0;
        for i in 0..10 {
            let client = if i % 3 == 0 { "10.0.0.2" } else { "10.0.0.1" };
            let (own, over) = budget.admit(100, 4, &refusal(client, "invalid_api_key"));
            recorded += usize::from(own);
            assert_eq!(over, None);
        }
        assert_eq!(recorded, 4);
        let (own, over) = budget.admit(101, 4, &refusal("10.0.0.1", "invalid_api_key"));
        assert!(own, "a new second has a new budget");
        let summary = over.unwrap();
        assert_eq!(summary.second, "1970-01-01T00:01:40Z");
        assert_eq!(summary.count, 6);
        let counts: Vec<(&str, u64)> = summary
            .groups
            .iter()
            .map(|g| (g.client.as_str(), g.count))
            .collect();
        // Of the ten, 0, 3, 6 and 9 came from .2; the first four (0–3) were recorded.
        assert_eq!(counts, [("10.0.0.1", 4), ("10.0.0.2", 2)]);
        assert_eq!(summary.others, 0);
        assert_eq!(
            budget.finished(102).map(|s| s.count),
            None,
            "nothing counted in 101"
        );
    }

    #[test]
    fn a_zero_budget_records_every_refusal() {
        let budget = RefusalBudget::default();
        for _ in 0..1000 {
            assert!(
                budget
                    .admit(5, 0, &refusal("10.0.0.1", "missing_api_key"))
                    .0
            );
        }
        assert_eq!(budget.flush(), None);
    }

    #[test]
    fn many_groups_are_capped_and_the_rest_added_up() {
        let budget = RefusalBudget::default();
        let clients = MAX_TRACKED + 100;
        for i in 0..clients {
            budget.admit(
                7,
                1,
                &refusal(&format!("10.1.{}.{}", i / 256, i % 256), "x"),
            );
        }
        let summary = budget.flush().unwrap();
        assert_eq!(summary.count as usize, clients - 1);
        assert_eq!(summary.groups.len(), MAX_GROUPS);
        assert_eq!(summary.others as usize, clients - 1 - MAX_GROUPS);
        assert_eq!(
            budget.flush(),
            None,
            "a flushed second is not summarised twice"
        );
    }

    #[test]
    fn a_second_that_ended_without_further_refusals_is_summarised_by_the_next_check() {
        let budget = RefusalBudget::default();
        for _ in 0..5 {
            budget.admit(50, 2, &refusal("10.0.0.9", "model_not_found"));
        }
        assert_eq!(budget.finished(50), None, "the second is not over");
        let summary = budget.finished(51).unwrap();
        assert_eq!(summary.count, 3);
        assert_eq!(summary.groups[0].code, "model_not_found");
    }
}
