//! Running a golden set: send every case (a few at a time), test each answer against its
//! expectations and the baseline, and gather the report.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use http::HeaderValue;
use http::header::AUTHORIZATION;
use serde_json::Value;

use crate::answer::Answer;
use crate::baseline::{Baseline, RecordedAnswer, request_hash};
use crate::client::{Call, Client, ClientError, DEFAULT_MAX_BODY_BYTES, Failure};
use crate::compare::{self, Check, Expectation};
use crate::golden::{CaseKind, Golden, PreparedCase};
use crate::report::{CaseResult, CaseStatus, Mode, REPORT_SCHEMA, Report, Summary, now_rfc3339};

/// How to run a golden set.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server's base URL: `http://host:8000` or `http://host:8000/v1`.
    pub url: String,
    /// How many requests may be in flight at once (at least 1).
    pub concurrency: usize,
    /// How many times to resend a request that failed with a network error (an `unavailable`
    /// 429/502/503/504 included). Wrong answers and protocol errors are never retried: a gate
    /// must see them.
    pub retries: u32,
    /// Overrides every case's timeout.
    pub timeout: Option<Duration>,
    /// The API key, sent as `Authorization: Bearer …`. When `None`, the variable named by the
    /// golden file's `defaults.api_key_env` is read, if any.
    pub api_key: Option<String>,
    /// `Check` compares with the baseline; `Record` skips baseline expectations so that the
    /// answers can be recorded with [`Validation::record_into`].
    pub mode: Mode,
    /// The most bytes read of one body, one stream event or one streamed text
    /// ([`DEFAULT_MAX_BODY_BYTES`]); past it a case is a `too_large` protocol error.
    pub max_body_bytes: usize,
}

impl Options {
    /// Defaults for `url`: 4 at a time, no retries, the golden file's timeouts, check mode.
    pub fn new(url: impl Into<String>) -> Options {
        Options {
            url: url.into(),
            concurrency: 4,
            retries: 0,
            timeout: None,
            api_key: None,
            mode: Mode::Check,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// Why a run could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(
        "the API key is read from the environment variable `{0}` (defaults.api_key_env), which is not set"
    )]
    MissingApiKey(String),
    #[error("the API key holds characters HTTP headers cannot carry")]
    BadApiKey,
}

/// A finished run. Each case result also holds its whole answer, for recording a baseline.
#[derive(Debug, Clone)]
pub struct Validation {
    pub report: Report,
}

impl Validation {
    /// Records the answer of every passed case into `baseline`, replacing older answers of the
    /// same cases and keeping the others; marks them `recorded` in the report and returns
    /// their names. Failed, errored and skipped cases are not recorded (a baseline must hold
    /// only answers that met their expectations), nor are expected error statuses (they have
    /// no answer to compare).
    pub fn record_into(&mut self, baseline: &mut Baseline) -> Vec<String> {
        let mut recorded = Vec::new();
        for case in &mut self.report.cases {
            let Some(answer) = &case.full_answer else {
                continue;
            };
            if case.status != CaseStatus::Passed || !(200..300).contains(&answer.status) {
                continue;
            }
            baseline.record(
                &case.name,
                case.kind,
                &case.model,
                &case.request_hash,
                answer,
            );
            case.recorded = true;
            recorded.push(case.name.clone());
        }
        recorded
    }

    /// The full answer of a case, e.g. to print or store beyond the report's excerpt.
    pub fn answer(&self, case: &str) -> Option<&Answer> {
        self.report.case(case)?.full_answer.as_ref()
    }
}

/// Runs every case of `golden` against the server, comparing with `baseline` in check mode.
///
/// Cases run `options.concurrency` at a time; the report keeps the golden file's order. The
/// returned future is `Send`, so a controller can spawn it.
pub async fn validate(
    golden: &Golden,
    options: &Options,
    baseline: Option<&Baseline>,
) -> Result<Validation, RunError> {
    let client = Client::new(&options.url)?;
    let authorization = authorization(golden, options)?;
    let started_at = now_rfc3339();
    let started = Instant::now();
    // The futures are made up front, not in a stream closure: a closure over borrowed cases
    // would make the whole future lose `Send` (a known limit of the compiler's inference).
    let pending: Vec<_> = golden
        .cases
        .iter()
        .map(|case| {
            let recorded = baseline.and_then(|b| b.cases.get(&case.case.name));
            run_case(&client, case, options, authorization.as_ref(), recorded)
        })
        .collect();
    let cases: Vec<CaseResult> = futures_util::stream::iter(pending)
        .buffered(options.concurrency.max(1))
        .collect()
        .await;
    let report = Report {
        schema: REPORT_SCHEMA.to_owned(),
        golden: golden.origin.clone(),
        url: client.base().to_owned(),
        mode: options.mode,
        baseline_recorded_at: baseline
            .filter(|_| options.mode == Mode::Check)
            .map(|b| b.recorded_at.clone()),
        started_at,
        duration_ms: started.elapsed().as_millis() as u64,
        summary: Summary::of(&cases),
        cases,
    };
    Ok(Validation { report })
}

fn authorization(golden: &Golden, options: &Options) -> Result<Option<HeaderValue>, RunError> {
    let key = match (&options.api_key, &golden.set.defaults.api_key_env) {
        (Some(key), _) => key.clone(),
        (None, Some(variable)) => std::env::var(variable)
            .ok()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| RunError::MissingApiKey(variable.clone()))?,
        (None, None) => return Ok(None),
    };
    let mut value =
        HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| RunError::BadApiKey)?;
    value.set_sensitive(true);
    Ok(Some(value))
}

async fn run_case(
    client: &Client,
    case: &PreparedCase,
    options: &Options,
    authorization: Option<&HeaderValue>,
    recorded: Option<&RecordedAnswer>,
) -> CaseResult {
    let body = request_body(case);
    let mut headers = case.headers.clone();
    if let Some(value) = authorization {
        headers.push((AUTHORIZATION, value.clone()));
    }
    let call = Call {
        kind: case.case.kind,
        body,
        headers,
        stream: case.case.stream,
        timeout: options.timeout.unwrap_or(case.timeout),
        expect_status: case.case.expect.status,
        max_body_bytes: options.max_body_bytes,
    };
    let (outcome, attempts) = send_with_retries(client, &call, options.retries).await;
    let mut result = CaseResult {
        name: case.case.name.clone(),
        kind: case.case.kind,
        model: case.model.clone(),
        stream: case.case.stream,
        status: CaseStatus::Error,
        http_status: None,
        latency_ms: None,
        ttft_ms: None,
        answer: None,
        checks: Vec::new(),
        error: None,
        attempts,
        recorded: false,
        full_answer: None,
        request_hash: case_request_hash(case),
    };
    match outcome {
        Err(failure) => {
            result.http_status = failure.http_status;
            result.error = Some(failure.error);
        }
        Ok(answer) => {
            let baseline = match options.mode {
                Mode::Check => BaselineUse::Compare(recorded),
                Mode::Record => BaselineUse::Recording,
            };
            result.checks = evaluate(case, &call.body, &answer, baseline);
            result.status = CaseResult::status_from_checks(&result.checks);
            result.http_status = Some(answer.status);
            result.latency_ms = Some(millis(answer.latency));
            result.ttft_ms = answer.ttft.map(millis);
            result.answer = Some(answer.summary()).filter(|s| !s.is_empty());
            result.full_answer = Some(answer);
        }
    }
    result
}

/// The longest a retry waits for a server's `Retry-After`: a gate should fail, not stall.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

async fn send_with_retries(
    client: &Client,
    call: &Call,
    retries: u32,
) -> (Result<Answer, Failure>, u32) {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let outcome = client.send(call).await;
        match &outcome {
            Err(failure) if failure.error.is_network() && attempts <= retries => {
                // A short, growing pause: a restarting server needs a moment, a gate not long;
                // longer when the server said so, but never past MAX_RETRY_WAIT.
                let backoff = Duration::from_millis(200 * u64::from(attempts));
                let asked = failure.error.retry_after().unwrap_or_default();
                tokio::time::sleep(backoff.max(asked.min(MAX_RETRY_WAIT))).await;
            }
            _ => return (outcome, attempts),
        }
    }
}

fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

/// The body sent: the case's request, with `model` filled in and `stream` set; a stream that
/// must report tokens asks for usage.
pub(crate) fn request_body(case: &PreparedCase) -> Value {
    let mut body = case.case.request.clone();
    body.entry("model")
        .or_insert_with(|| Value::String(case.model.clone()));
    if case.case.stream {
        body.insert("stream".into(), Value::Bool(true));
        if case.case.expect.max_tokens_used.is_some() && !body.contains_key("stream_options") {
            body.insert(
                "stream_options".into(),
                serde_json::json!({"include_usage": true}),
            );
        }
    }
    Value::Object(body)
}

/// The hash a baseline keys the question by: the user's `request` only, not what Hangar adds
/// to it (`model`, `stream`, `stream_options`), so that editing an expectation or streaming a
/// case keeps its baseline.
fn case_request_hash(case: &PreparedCase) -> String {
    request_hash(&Value::Object(case.case.request.clone()))
}

/// What to do with the baseline for one case.
#[derive(Debug, Clone, Copy)]
enum BaselineUse<'a> {
    /// Compare with this recorded answer, or skip when there is none.
    Compare(Option<&'a RecordedAnswer>),
    /// The answer is being recorded: there is nothing to compare with.
    Recording,
}

/// Tests one answer against every expectation of its case.
fn evaluate(
    case: &PreparedCase,
    body: &Value,
    answer: &Answer,
    baseline: BaselineUse<'_>,
) -> Vec<Check> {
    let expect = &case.case.expect;
    let mut checks = vec![compare::status(expect.status, answer.status)];
    if (200..300).contains(&answer.status) && (200..300).contains(&expect.status) {
        checks.extend(content_checks(case, answer));
        if let (Some(similarity), BaselineUse::Compare(recorded)) = (expect.similarity, baseline) {
            checks.push(similarity_check(
                case,
                similarity.min,
                body,
                answer,
                recorded,
            ));
        }
    }
    if let Some(budget) = case.latency_budget_ms {
        checks.push(compare::latency(budget, answer.latency));
    }
    if let Some(budget) = case.ttft_budget_ms
        && (200..300).contains(&answer.status)
    {
        checks.push(compare::ttft(budget, answer.ttft));
    }
    checks
}

fn content_checks(case: &PreparedCase, answer: &Answer) -> Vec<Check> {
    let expect = &case.case.expect;
    let text = answer.text.as_deref().unwrap_or_default();
    let mut checks = Vec::new();
    if let Some(expected) = &expect.text {
        checks.push(compare::exact_text(expected, text));
    }
    checks.extend(expect.contains.iter().map(|n| compare::contains(n, text)));
    checks.extend(
        expect
            .not_contains
            .iter()
            .map(|n| compare::not_contains(n, text)),
    );
    if let Some(regex) = &case.regex {
        checks.push(compare::regex(regex, text));
    }
    if let Some(schema) = &case.schema {
        checks.push(compare::json_schema(schema, text));
    }
    if let Some(expected) = &expect.finish_reason {
        checks.push(compare::finish_reason(
            expected,
            answer.finish_reason.as_deref(),
        ));
    }
    if let Some(expected) = expect.dimensions {
        checks.push(compare::dimensions(expected, &answer.embeddings));
    }
    if let Some(max) = expect.max_tokens_used {
        checks.push(compare::tokens_used(
            max,
            answer.tokens_used(case.case.kind),
        ));
    }
    checks
}

/// Compares with the recorded answer; skipped when there is none or it answered another
/// request. The model is not part of the request hash, so a new model version is compared with
/// the answers of the old one, which is the point of a promotion gate.
fn similarity_check(
    case: &PreparedCase,
    min: f64,
    body: &Value,
    answer: &Answer,
    recorded: Option<&RecordedAnswer>,
) -> Check {
    let kind = case.case.kind;
    let expected = format!("≥ {min}");
    let Some(recorded) = recorded else {
        return Check::skipped(
            Expectation::Similarity,
            expected,
            "no baseline is recorded for this case: run with --record-baseline",
        );
    };
    if !asks_the_same(recorded, case, body) {
        return Check::skipped(
            Expectation::Similarity,
            expected,
            "the request changed since the baseline was recorded: record it again",
        );
    }
    if recorded.kind != kind {
        return Check::skipped(
            Expectation::Similarity,
            expected,
            format!(
                "the baseline holds a {} answer: record it again",
                recorded.kind.as_str()
            ),
        );
    }
    let similarity = match kind {
        CaseKind::Embedding => {
            compare::embeddings_similarity(&answer.embeddings, &recorded.embeddings)
        }
        CaseKind::Chat | CaseKind::Completion if recorded.calls_recorded => {
            Ok(compare::answer_similarity(
                answer.text.as_deref().unwrap_or_default(),
                &answer.tool_calls,
                recorded.text.as_deref().unwrap_or_default(),
                &recorded.tool_calls,
            ))
        }
        // A v1 baseline kept no calls: the text alone, as it was compared then.
        CaseKind::Chat | CaseKind::Completion => Ok(compare::text_similarity(
            answer.text.as_deref().unwrap_or_default(),
            recorded.text.as_deref().unwrap_or_default(),
        )),
    };
    let mut check = compare::similarity(min, similarity);
    if check.detail.is_none() && !check.passed() {
        check.detail = baseline_said(recorded);
    }
    check
}

/// What the baseline answered, for a failed similarity: its text and the functions it called.
fn baseline_said(recorded: &RecordedAnswer) -> Option<String> {
    let mut said = recorded
        .text
        .as_deref()
        .map(|text| format!("the baseline says {:?}", compare::excerpt(text)));
    if !recorded.tool_calls.is_empty() {
        let calls = compare::excerpt(&crate::answer::calls_text(&recorded.tool_calls));
        said = Some(match said {
            Some(text) => format!("{text} and calls {calls}"),
            None => format!("the baseline calls {calls}"),
        });
    }
    said
}

/// Whether the recorded answer answered this case's request. Baselines written before the hash
/// left out `stream` and `stream_options` hold the hash of the whole body sent: the same body
/// is still the same question.
fn asks_the_same(recorded: &RecordedAnswer, case: &PreparedCase, body: &Value) -> bool {
    recorded.request_hash == case_request_hash(case) || recorded.request_hash == request_hash(body)
}
