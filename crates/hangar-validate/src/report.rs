//! The result of a validation run: one verdict per case, a summary, and the exit code a gate
//! acts on. Serialises as JSON with a versioned `schema` field; renders as a terminal table.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::answer::Answer;
use crate::client::CallError;
use crate::compare::{Check, Expectation, Outcome};
use crate::golden::CaseKind;

/// The `schema` of the JSON report.
pub const REPORT_SCHEMA: &str = "hangar.dev/validate-report/v1";

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`REPORT_SCHEMA`].
    pub schema: String,
    /// The golden file, as given.
    pub golden: String,
    /// The `/v1` base URL the requests went to.
    pub url: String,
    /// `check` compares with the baseline; `record` writes it (baseline expectations are not
    /// evaluated).
    pub mode: Mode,
    /// When the baseline compared with was recorded, if one was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_recorded_at: Option<String>,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// Wall time of the whole run.
    pub duration_ms: u64,
    pub summary: Summary,
    /// One result per case, in golden-file order.
    pub cases: Vec<CaseResult>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Check,
    Record,
}

/// The verdict on one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// Every expectation held.
    Passed,
    /// The server answered and an expectation did not hold: a wrong answer.
    Failed,
    /// No usable answer: a network or protocol error. Says nothing about the model.
    Error,
    /// Answered, nothing failed, but an expectation could not be decided (no baseline yet).
    Skipped,
}

impl CaseStatus {
    pub fn label(self) -> &'static str {
        match self {
            CaseStatus::Passed => "PASS",
            CaseStatus::Failed => "FAIL",
            CaseStatus::Error => "ERROR",
            CaseStatus::Skipped => "SKIP",
        }
    }
}

/// One case's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    pub name: String,
    pub kind: CaseKind,
    pub model: String,
    pub stream: bool,
    pub status: CaseStatus,
    /// The HTTP status, when a response head came (also for errors: a 200 whose stream broke,
    /// a 503 from a gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Time to first token (streams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    /// The answer, shortened: its text, the shape of its embeddings, or the error body's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// Every expectation tested, passed or not.
    pub checks: Vec<Check>,
    /// Why there was no usable answer (status `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CallError>,
    /// How many times the request was sent (more than 1 only with retries after network errors).
    pub attempts: u32,
    /// Whether this run recorded the answer into the baseline.
    #[serde(default)]
    pub recorded: bool,
    /// The whole answer, when one came: what a baseline records. Not in the JSON report, which
    /// has `answer`, its excerpt.
    #[serde(skip)]
    pub full_answer: Option<Answer>,
    /// [`crate::baseline::request_hash`] of the case's request, which a baseline records.
    #[serde(skip)]
    pub request_hash: String,
}

impl CaseResult {
    /// Failed if a check failed, skipped if one was undecided, passed otherwise.
    pub fn status_from_checks(checks: &[Check]) -> CaseStatus {
        if checks.iter().any(|c| c.outcome == Outcome::Failed) {
            CaseStatus::Failed
        } else if checks.iter().any(|c| c.outcome == Outcome::Skipped) {
            CaseStatus::Skipped
        } else {
            CaseStatus::Passed
        }
    }
}

/// Counts per status, and what they mean for a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    /// Cases answered with nothing failed but a check undecided.
    pub skipped: usize,
    /// Checks undecided in any case, failed ones included (no usable baseline).
    #[serde(default)]
    pub skipped_checks: usize,
    pub verdict: Verdict,
}

/// The run as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every case passed: exit 0.
    Passed,
    /// At least one answer was wrong: exit 1, even when other cases could not be validated,
    /// because no retry would make a wrong answer right.
    Failed,
    /// No answer was wrong, but at least one case could not be validated (a network or
    /// protocol error, or a check skipped for want of a baseline): exit 2, try again.
    Incomplete,
}

impl Verdict {
    /// The process exit code for this verdict.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Passed => 0,
            Verdict::Failed => 1,
            Verdict::Incomplete => 2,
        }
    }
}

impl Summary {
    pub fn of(cases: &[CaseResult]) -> Summary {
        let count = |status| cases.iter().filter(|c| c.status == status).count();
        let (passed, failed, errors, skipped) = (
            count(CaseStatus::Passed),
            count(CaseStatus::Failed),
            count(CaseStatus::Error),
            count(CaseStatus::Skipped),
        );
        let verdict = if failed > 0 {
            Verdict::Failed
        } else if errors + skipped > 0 {
            Verdict::Incomplete
        } else {
            Verdict::Passed
        };
        Summary {
            total: cases.len(),
            passed,
            failed,
            errors,
            skipped,
            skipped_checks: cases
                .iter()
                .flat_map(|c| &c.checks)
                .filter(|c| c.outcome == Outcome::Skipped)
                .count(),
            verdict,
        }
    }
}

impl Report {
    pub fn exit_code(&self) -> u8 {
        self.summary.verdict.exit_code()
    }

    pub fn case(&self, name: &str) -> Option<&CaseResult> {
        self.cases.iter().find(|c| c.name == name)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// A plain-text table: a line per case, then one line per failed or skipped check or the
    /// error, then the summary.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let mode = match self.mode {
            Mode::Check => "",
            Mode::Record => "  (recording the baseline)",
        };
        let _ = writeln!(out, "{} → {}{mode}", self.golden, self.url);
        if let Some(at) = &self.baseline_recorded_at {
            let _ = writeln!(out, "baseline recorded {at}");
        }
        let _ = writeln!(out);
        let widths = (
            self.cases.iter().map(|c| c.name.len()).max().unwrap_or(0),
            self.cases
                .iter()
                .map(|c| kind_label(c).len())
                .max()
                .unwrap_or(0),
        );
        for case in &self.cases {
            let _ = writeln!(out, "{}", case_line(case, widths));
            for line in case_details(case) {
                let _ = writeln!(out, "      {line}");
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", summary_line(&self.summary));
        out
    }
}

/// `chat`, `completion stream`…
fn kind_label(case: &CaseResult) -> String {
    let stream = if case.stream { " stream" } else { "" };
    format!("{}{stream}", case.kind.as_str())
}

fn case_line(case: &CaseResult, (name_width, kind_width): (usize, usize)) -> String {
    let status = case
        .http_status
        .map(|s| s.to_string())
        .unwrap_or_else(|| "-".into());
    let timing = match (case.latency_ms, case.ttft_ms) {
        (Some(total), Some(first)) => format!("{total:.0} ms (first token {first:.0} ms)"),
        (Some(total), None) => format!("{total:.0} ms"),
        _ => String::new(),
    };
    let recorded = if case.recorded { "  recorded" } else { "" };
    format!(
        "{:<5} {:<name_width$}  {:<kind_width$}  {:>3}  {timing}{recorded}",
        case.status.label(),
        case.name,
        kind_label(case),
        status,
    )
    .trim_end()
    .to_owned()
}

fn case_details(case: &CaseResult) -> Vec<String> {
    if let Some(error) = &case.error {
        let retried = if case.attempts > 1 {
            format!(" (after {} attempts)", case.attempts)
        } else {
            String::new()
        };
        return vec![format!("{error}{retried}")];
    }
    case.checks
        .iter()
        .filter(|c| c.outcome != Outcome::Passed)
        .map(|check| {
            let mut line = format!(
                "{}: expected {}",
                check.expectation.as_str(),
                check.expected
            );
            if check.outcome == Outcome::Failed {
                let _ = write!(line, ", got {}", shown(check));
            } else {
                line.push_str(", skipped");
            }
            if let Some(detail) = &check.detail {
                let _ = write!(line, " — {detail}");
            }
            line
        })
        .collect()
}

/// Answer texts are quoted so that empty answers and trailing spaces show; measures are not.
fn shown(check: &Check) -> String {
    match check.expectation {
        Expectation::Text
        | Expectation::Contains
        | Expectation::NotContains
        | Expectation::Regex
        | Expectation::JsonSchema => format!("{:?}", check.got),
        _ => check.got.clone(),
    }
}

fn summary_line(summary: &Summary) -> String {
    let mut parts = vec![format!("{} passed", summary.passed)];
    if summary.failed > 0 {
        parts.push(format!("{} failed (wrong answer)", summary.failed));
    }
    if summary.errors > 0 {
        parts.push(format!("{} error (could not validate)", summary.errors));
    }
    if summary.skipped > 0 {
        parts.push(format!("{} skipped", summary.skipped));
    }
    let verdict = match summary.verdict {
        Verdict::Passed => "PASSED",
        Verdict::Failed => "FAILED",
        Verdict::Incomplete => "INCOMPLETE",
    };
    let mut line = format!("{verdict}: {} case(s): {}", summary.total, parts.join(", "));
    if summary.skipped_checks > 0 {
        let _ = write!(
            line,
            "; {} check(s) skipped (no usable baseline)",
            summary.skipped_checks
        );
    }
    line
}

/// The current time as RFC 3339 in UTC, to the second.
pub fn now_rfc3339() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(seconds)
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::NetworkErrorKind;
    use crate::compare;

    fn result(name: &str, status: CaseStatus) -> CaseResult {
        CaseResult {
            name: name.into(),
            kind: CaseKind::Chat,
            model: "m".into(),
            stream: false,
            status,
            http_status: Some(200),
            latency_ms: Some(12.0),
            ttft_ms: None,
            answer: Some("4".into()),
            checks: Vec::new(),
            error: None,
            attempts: 1,
            recorded: false,
            full_answer: None,
            request_hash: String::new(),
        }
    }

    #[test]
    fn a_wrong_answer_fails_the_run_even_beside_errors_and_skips() {
        let failed = [
            result("a", CaseStatus::Passed),
            result("b", CaseStatus::Failed),
        ];
        assert_eq!(Summary::of(&failed).verdict.exit_code(), 1);
        let failed_beside_error = [
            result("b", CaseStatus::Failed),
            result("c", CaseStatus::Error),
            result("d", CaseStatus::Skipped),
        ];
        assert_eq!(Summary::of(&failed_beside_error).verdict, Verdict::Failed);
        let incomplete = [
            result("a", CaseStatus::Passed),
            result("c", CaseStatus::Error),
        ];
        assert_eq!(Summary::of(&incomplete).verdict.exit_code(), 2);
        let skipped = [result("d", CaseStatus::Skipped)];
        assert_eq!(Summary::of(&skipped).verdict.exit_code(), 2);
        assert_eq!(
            Summary::of(&[result("a", CaseStatus::Passed)])
                .verdict
                .exit_code(),
            0
        );
    }

    #[test]
    fn the_summary_counts_skipped_checks_inside_failed_cases() {
        let skipped = Check::skipped(Expectation::Similarity, "≥ 0.9".into(), "no baseline");
        let mut wrong = result("math", CaseStatus::Failed);
        wrong.checks = vec![compare::exact_text("4", "5"), skipped.clone()];
        let mut undecided = result("refund", CaseStatus::Skipped);
        undecided.checks = vec![compare::status(200, 200), skipped];
        let summary = Summary::of(&[wrong, undecided]);
        assert_eq!((summary.failed, summary.skipped), (1, 1));
        assert_eq!(summary.skipped_checks, 2);
        assert_eq!(summary.verdict, Verdict::Failed);
        assert_eq!(
            summary_line(&summary),
            "FAILED: 2 case(s): 0 passed, 1 failed (wrong answer), 1 skipped; 2 check(s) skipped (no usable baseline)"
        );
    }

    #[test]
    fn a_case_is_failed_before_skipped() {
        let failed = compare::status(200, 500);
        let skipped = Check::skipped(compare::Expectation::Similarity, "≥ 0.9".into(), "none");
        assert_eq!(
            CaseResult::status_from_checks(&[skipped.clone(), failed]),
            CaseStatus::Failed
        );
        assert_eq!(
            CaseResult::status_from_checks(&[skipped]),
            CaseStatus::Skipped
        );
        assert_eq!(CaseResult::status_from_checks(&[]), CaseStatus::Passed);
    }

    #[test]
    fn the_table_shows_what_failed_and_why() {
        let mut wrong = result("math", CaseStatus::Failed);
        wrong.checks = vec![compare::exact_text("4", "5")];
        let mut down = result("embed", CaseStatus::Error);
        down.http_status = None;
        let mut broken = result("stream", CaseStatus::Error);
        broken.latency_ms = None;
        broken.error = Some(CallError::Network {
            kind: NetworkErrorKind::Disconnected,
            message: "the stream broke after 2 chunk(s)".into(),
            retry_after_seconds: None,
        });
        down.error = Some(CallError::Network {
            kind: NetworkErrorKind::Refused,
            message: "connection refused".into(),
            retry_after_seconds: None,
        });
        let cases = vec![wrong, down, broken];
        let report = Report {
            schema: REPORT_SCHEMA.into(),
            golden: "g.yaml".into(),
            url: "http://h/v1".into(),
            mode: Mode::Check,
            baseline_recorded_at: None,
            started_at: rfc3339(0),
            duration_ms: 3,
            summary: Summary::of(&cases),
            cases,
        };
        let table = report.to_table();
        assert!(table.contains("FAIL  math"), "{table}");
        assert!(table.contains("text: expected 4, got \"5\""), "{table}");
        assert!(
            table.contains("network error (refused): connection refused"),
            "{table}"
        );
        // A 200 whose stream broke shows its status; no response shows `-`.
        assert!(table.contains("ERROR embed   chat    -"), "{table}");
        assert!(table.contains("ERROR stream  chat  200"), "{table}");
        assert!(
            table.contains("FAILED: 3 case(s): 0 passed, 1 failed (wrong answer), 2 error"),
            "{table}"
        );
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["schema"], REPORT_SCHEMA);
        assert_eq!(json["cases"][1]["error"]["class"], "network");
        assert_eq!(json["cases"][1]["error"]["kind"], "refused");
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_735_787_045), "2025-01-02T03:04:05Z");
    }
}
