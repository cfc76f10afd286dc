//! The comparisons, as pure functions: each takes what was expected and what came back and
//! returns a [`Check`] that says both, so a report can show why an answer was wrong.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::answer::{ToolCall, calls_text};

/// Which expectation a check tested; the same names as the golden file's `expect` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    Status,
    Text,
    Contains,
    NotContains,
    Regex,
    JsonSchema,
    Similarity,
    LatencyMs,
    TtftMs,
    MaxTokensUsed,
    FinishReason,
    Dimensions,
}

impl Expectation {
    pub fn as_str(self) -> &'static str {
        match self {
            Expectation::Status => "status",
            Expectation::Text => "text",
            Expectation::Contains => "contains",
            Expectation::NotContains => "not_contains",
            Expectation::Regex => "regex",
            Expectation::JsonSchema => "json_schema",
            Expectation::Similarity => "similarity",
            Expectation::LatencyMs => "latency_ms",
            Expectation::TtftMs => "ttft_ms",
            Expectation::MaxTokensUsed => "max_tokens_used",
            Expectation::FinishReason => "finish_reason",
            Expectation::Dimensions => "dimensions",
        }
    }
}

/// What a check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    Failed,
    /// Could not be decided, e.g. no baseline to compare with yet.
    Skipped,
}

/// One expectation tested against one answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub expectation: Expectation,
    pub outcome: Outcome,
    /// What the golden file asked for, as a person would write it (`≤ 2000 ms`, `/\bfour\b/`).
    pub expected: String,
    /// What came back, shortened when long.
    pub got: String,
    /// Why it failed or was skipped, when `expected` and `got` alone do not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Check {
    fn new(expectation: Expectation, passed: bool, expected: String, got: String) -> Check {
        Check {
            expectation,
            outcome: if passed {
                Outcome::Passed
            } else {
                Outcome::Failed
            },
            expected,
            got,
            detail: None,
        }
    }

    fn with_detail(mut self, detail: impl Into<String>) -> Check {
        self.detail = Some(detail.into());
        self
    }

    /// A check that could not be decided.
    pub fn skipped(expectation: Expectation, expected: String, reason: impl Into<String>) -> Check {
        Check {
            expectation,
            outcome: Outcome::Skipped,
            expected,
            got: String::new(),
            detail: Some(reason.into()),
        }
    }

    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Passed
    }
}

/// How many characters of an answer a report shows.
pub const EXCERPT_CHARS: usize = 200;

/// `text`, cut to [`EXCERPT_CHARS`] characters with an ellipsis, for reports.
pub fn excerpt(text: &str) -> String {
    let mut chars = text.char_indices();
    match chars.nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

pub fn status(expected: u16, got: u16) -> Check {
    Check::new(
        Expectation::Status,
        expected == got,
        expected.to_string(),
        got.to_string(),
    )
}

pub fn exact_text(expected: &str, got: &str) -> Check {
    let check = Check::new(
        Expectation::Text,
        expected == got,
        excerpt(expected),
        excerpt(got),
    );
    match first_difference(expected, got) {
        Some(at) if expected != got => {
            check.with_detail(format!("the texts differ from character {at} on"))
        }
        _ => check,
    }
}

/// The index (in characters) of the first character where `a` and `b` differ.
fn first_difference(a: &str, b: &str) -> Option<usize> {
    let mut a_chars = a.chars();
    let mut b_chars = b.chars();
    let mut index = 0;
    loop {
        match (a_chars.next(), b_chars.next()) {
            (None, None) => return None,
            (x, y) if x != y => return Some(index),
            _ => index += 1,
        }
    }
}

pub fn contains(needle: &str, got: &str) -> Check {
    Check::new(
        Expectation::Contains,
        got.contains(needle),
        format!("contains {needle:?}"),
        excerpt(got),
    )
}

pub fn not_contains(needle: &str, got: &str) -> Check {
    Check::new(
        Expectation::NotContains,
        !got.contains(needle),
        format!("does not contain {needle:?}"),
        excerpt(got),
    )
}

pub fn regex(pattern: &Regex, got: &str) -> Check {
    Check::new(
        Expectation::Regex,
        pattern.is_match(got),
        format!("matches /{}/", pattern.as_str()),
        excerpt(got),
    )
}

/// The answer must be JSON (surrounding whitespace allowed) that validates against `schema`.
pub fn json_schema(schema: &jsonschema::Validator, got: &str) -> Check {
    let expected = "JSON valid against the schema".to_owned();
    let value: serde_json::Value = match serde_json::from_str(got.trim()) {
        Ok(value) => value,
        Err(err) => {
            return Check::new(Expectation::JsonSchema, false, expected, excerpt(got))
                .with_detail(format!("the answer is not JSON: {err}"));
        }
    };
    let errors: Vec<String> = schema
        .iter_errors(&value)
        .take(5)
        .map(|err| {
            let at = err.instance_path().to_string();
            let at = if at.is_empty() { "/".to_owned() } else { at };
            format!("at {at}: {err}")
        })
        .collect();
    let check = Check::new(
        Expectation::JsonSchema,
        errors.is_empty(),
        expected,
        excerpt(got),
    );
    if errors.is_empty() {
        check
    } else {
        check.with_detail(errors.join("; "))
    }
}

/// `got` similarity must be at least `min`; `None` means the two could not be compared, with
/// `why`.
pub fn similarity(min: f64, got: Result<f64, String>) -> Check {
    let expected = format!("≥ {min}");
    match got {
        Ok(value) => Check::new(
            Expectation::Similarity,
            value >= min,
            expected,
            format!("{value:.4}"),
        ),
        Err(why) => {
            Check::new(Expectation::Similarity, false, expected, String::new()).with_detail(why)
        }
    }
}

/// The cosine similarity of two vectors, or why there is none (different lengths, a zero
/// vector).
pub fn cosine(a: &[f32], b: &[f32]) -> Result<f64, String> {
    if a.len() != b.len() {
        return Err(format!(
            "the vectors have {} and {} dimensions",
            a.len(),
            b.len()
        ));
    }
    let (mut dot, mut norm_a, mut norm_b) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        norm_a += x * x;
        norm_b += y * y;
    }
    if norm_a == 0.0 || norm_b == 0.0 {
        return Err("a vector is all zeros".into());
    }
    Ok(dot / (norm_a.sqrt() * norm_b.sqrt()))
}

/// The lowest cosine similarity over pairs of vectors (one per input), or why they cannot be
/// compared.
pub fn embeddings_similarity(got: &[Vec<f32>], baseline: &[Vec<f32>]) -> Result<f64, String> {
    if got.len() != baseline.len() {
        return Err(format!(
            "{} embeddings came back, the baseline has {}",
            got.len(),
            baseline.len()
        ));
    }
    got.iter()
        .zip(baseline)
        .map(|(a, b)| cosine(a, b))
        .try_fold(f64::INFINITY, |lowest, s| s.map(|s| lowest.min(s)))
        .and_then(|lowest| {
            if lowest.is_finite() {
                Ok(lowest)
            } else {
                Err("there are no embeddings to compare".into())
            }
        })
}

/// The similarity of a chat or completion answer to the baseline's: the lower of the texts'
/// and the tool calls'. A changed call is a changed answer even when the texts agree, as they
/// do when both are empty.
pub fn answer_similarity(
    text: &str,
    calls: &[ToolCall],
    baseline_text: &str,
    baseline_calls: &[ToolCall],
) -> f64 {
    text_similarity(text, baseline_text).min(calls_similarity(calls, baseline_calls))
}

/// 0 when the called functions differ (in any order), else the similarity of the calls' names
/// and arguments as words: calling another function is never a small drift.
fn calls_similarity(a: &[ToolCall], b: &[ToolCall]) -> f64 {
    fn names(calls: &[ToolCall]) -> Vec<&str> {
        let mut names: Vec<&str> = calls.iter().map(|call| call.name.as_str()).collect();
        names.sort_unstable();
        names
    }
    if names(a) != names(b) {
        return 0.0;
    }
    text_similarity(&calls_text(a), &calls_text(b))
}

/// The cosine similarity of the lower-cased word counts of two texts: 1 for the same words in
/// any order, 0 for no word in common. Texts without a word (`{}`, `…`, empty) are compared
/// as they are: 1 when equal, else 0.
pub fn text_similarity(a: &str, b: &str) -> f64 {
    let (a_words, b_words) = (word_counts(a), word_counts(b));
    if a_words.is_empty() && b_words.is_empty() {
        return if a == b { 1.0 } else { 0.0 };
    }
    let (a, b) = (a_words, b_words);
    let dot: f64 = a
        .iter()
        .map(|(word, &n)| n * b.get(word).copied().unwrap_or(0.0))
        .sum();
    let norm = |counts: &BTreeMap<String, f64>| counts.values().map(|n| n * n).sum::<f64>().sqrt();
    let (norm_a, norm_b) = (norm(&a), norm(&b));
    if norm_a == 0.0 || norm_b == 0.0 {
        return 0.0;
    }
    dot / (norm_a * norm_b)
}

fn word_counts(text: &str) -> BTreeMap<String, f64> {
    let mut counts = BTreeMap::new();
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        *counts.entry(word.to_lowercase()).or_insert(0.0) += 1.0;
    }
    counts
}

pub fn latency(budget_ms: u64, got: Duration) -> Check {
    budget(Expectation::LatencyMs, budget_ms, got)
}

pub fn ttft(budget_ms: u64, got: Option<Duration>) -> Check {
    match got {
        Some(got) => budget(Expectation::TtftMs, budget_ms, got),
        None => Check::new(
            Expectation::TtftMs,
            false,
            format!("≤ {budget_ms} ms"),
            String::new(),
        )
        .with_detail("the stream carried no text"),
    }
}

fn budget(expectation: Expectation, budget_ms: u64, got: Duration) -> Check {
    let got_ms = got.as_secs_f64() * 1000.0;
    Check::new(
        expectation,
        got_ms <= budget_ms as f64,
        format!("≤ {budget_ms} ms"),
        format!("{got_ms:.0} ms"),
    )
}

pub fn tokens_used(max: u64, got: Option<u64>) -> Check {
    let expected = format!("≤ {max} tokens");
    match got {
        Some(got) => Check::new(
            Expectation::MaxTokensUsed,
            got <= max,
            expected,
            got.to_string(),
        ),
        None => Check::new(Expectation::MaxTokensUsed, false, expected, String::new())
            .with_detail("the server reported no usage"),
    }
}

pub fn finish_reason(expected: &str, got: Option<&str>) -> Check {
    Check::new(
        Expectation::FinishReason,
        got == Some(expected),
        expected.to_owned(),
        got.unwrap_or("(none)").to_owned(),
    )
}

/// Every vector must have `expected` dimensions.
pub fn dimensions(expected: usize, got: &[Vec<f32>]) -> Check {
    let mut lengths: Vec<usize> = got.iter().map(Vec::len).collect();
    lengths.dedup();
    let shown = lengths
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    Check::new(
        Expectation::Dimensions,
        !lengths.is_empty() && lengths.iter().all(|&n| n == expected),
        expected.to_string(),
        if shown.is_empty() {
            "no embeddings".into()
        } else {
            shown
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_compares_codes() {
        assert!(status(200, 200).passed());
        let check = status(200, 500);
        assert_eq!(check.outcome, Outcome::Failed);
        assert_eq!(
            (check.expected.as_str(), check.got.as_str()),
            ("200", "500")
        );
    }

    #[test]
    fn exact_text_says_where_the_texts_part() {
        assert!(exact_text("4", "4").passed());
        let check = exact_text("The answer is 4.", "The answer is 5.");
        assert!(!check.passed());
        assert_eq!(
            check.detail.as_deref(),
            Some("the texts differ from character 14 on")
        );
        assert!(!exact_text("4", "4 ").passed());
    }

    #[test]
    fn contains_and_not_contains() {
        assert!(contains("30 days", "You have 30 days.").passed());
        assert!(!contains("30 days", "You have 14 days.").passed());
        assert!(not_contains("As an AI", "Sure.").passed());
        assert!(!not_contains("As an AI", "As an AI model…").passed());
    }

    #[test]
    fn regex_matches_anywhere_unless_anchored() {
        let pattern = Regex::new(r"\b30 days\b").unwrap();
        assert!(regex(&pattern, "within 30 days of delivery").passed());
        let check = regex(&pattern, "within 300 days");
        assert!(!check.passed());
        assert_eq!(check.expected, r"matches /\b30 days\b/");
    }

    #[test]
    fn json_schema_needs_json_that_validates() {
        let schema = crate::golden::compile_schema(&serde_json::json!({
            "type": "object",
            "required": ["intent"],
            "properties": {"intent": {"enum": ["refund", "other"]}}
        }))
        .unwrap();
        assert!(json_schema(&schema, " {\"intent\": \"refund\"}\n").passed());
        let wrong = json_schema(&schema, "{\"intent\": \"cancel\"}");
        assert!(!wrong.passed());
        assert!(wrong.detail.unwrap().contains("/intent"));
        let not_json = json_schema(&schema, "Sure! {\"intent\": \"refund\"}");
        assert!(
            not_json
                .detail
                .unwrap()
                .starts_with("the answer is not JSON")
        );
    }

    #[test]
    fn cosine_of_vectors() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]).unwrap() - 1.0).abs() < 1e-9);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).unwrap().abs() < 1e-9);
        assert!(cosine(&[1.0], &[1.0, 0.0]).unwrap_err().contains("1 and 2"));
        assert!(cosine(&[0.0, 0.0], &[1.0, 0.0]).is_err());
    }

    #[test]
    fn embeddings_take_the_worst_pair() {
        let got = vec![vec![1.0, 0.0], vec![1.0, 1.0]];
        let baseline = vec![vec![1.0, 0.0], vec![1.0, 0.0]];
        let lowest = embeddings_similarity(&got, &baseline).unwrap();
        assert!((lowest - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert!(embeddings_similarity(&got, &baseline[..1]).is_err());
        let check = similarity(0.98, Ok(lowest));
        assert!(!check.passed());
        assert_eq!(check.got, "0.7071");
    }

    #[test]
    fn text_similarity_counts_words() {
        assert!((text_similarity("Four.", "four") - 1.0).abs() < 1e-9);
        assert_eq!(text_similarity("yes", "no"), 0.0);
        let close = text_similarity(
            "You can return items within 30 days.",
            "You can return items within 30 days of delivery.",
        );
        assert!(close > 0.8 && close < 1.0, "{close}");
    }

    #[test]
    fn texts_without_words_are_compared_as_they_are() {
        assert_eq!(text_similarity("", ""), 1.0);
        assert_eq!(text_similarity("{}", "{}"), 1.0);
        assert_eq!(text_similarity("{}", "[]"), 0.0);
        assert_eq!(text_similarity("…", ""), 0.0);
    }

    fn call(name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    #[test]
    fn a_changed_tool_call_is_a_changed_answer() {
        let weather = [call("get_weather", r#"{"city": "Paris"}"#)];
        let itself = answer_similarity("", &weather, "", &weather);
        assert!((itself - 1.0).abs() < 1e-9, "{itself}");
        // Both texts are empty (content null): the calls decide.
        let delete = [call("delete_account", "{}")];
        assert_eq!(answer_similarity("", &delete, "", &weather), 0.0);
        assert_eq!(answer_similarity("", &[], "", &weather), 0.0);
        // The same function with other arguments drifts like text does.
        let london = [call("get_weather", r#"{"city": "London"}"#)];
        let drift = answer_similarity("", &london, "", &weather);
        assert!(drift > 0.5 && drift < 1.0, "{drift}");
        // Parallel calls in another order are the same answer.
        let both = [weather[0].clone(), london[0].clone()];
        let swapped = [london[0].clone(), weather[0].clone()];
        let same = answer_similarity("", &both, "", &swapped);
        assert!((same - 1.0).abs() < 1e-9, "{same}");
        // Without calls the texts alone count.
        let texts = answer_similarity("Four.", &[], "four", &[]);
        assert!((texts - 1.0).abs() < 1e-9);
    }

    #[test]
    fn budgets_are_inclusive() {
        assert!(latency(100, Duration::from_millis(100)).passed());
        let slow = latency(100, Duration::from_millis(250));
        assert!(!slow.passed());
        assert_eq!(
            (slow.expected.as_str(), slow.got.as_str()),
            ("≤ 100 ms", "250 ms")
        );
        assert!(!ttft(100, None).passed());
    }

    #[test]
    fn tokens_finish_and_dimensions() {
        assert!(tokens_used(10, Some(10)).passed());
        assert!(!tokens_used(10, Some(11)).passed());
        assert!(!tokens_used(10, None).passed());
        assert!(finish_reason("stop", Some("stop")).passed());
        assert_eq!(finish_reason("stop", Some("length")).got, "length");
        assert!(dimensions(3, &[vec![0.0; 3], vec![0.0; 3]]).passed());
        assert_eq!(dimensions(3, &[vec![0.0; 3], vec![0.0; 4]]).got, "3, 4");
        assert!(!dimensions(3, &[]).passed());
    }

    #[test]
    fn excerpts_are_cut_on_characters() {
        let long = "é".repeat(EXCERPT_CHARS + 5);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), EXCERPT_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
