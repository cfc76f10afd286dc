//! The golden-set file: requests with known-good answers, and what each answer must satisfy.
//!
//! ```yaml
//! defaults:
//!   model: support-bot
//!   timeout_ms: 10000
//!   api_key_env: SUPPORT_BOT_API_KEY
//! cases:
//!   - name: refund-window
//!     kind: chat
//!     request:
//!       messages: [{role: user, content: "How long do I have to return an item?"}]
//!       temperature: 0
//!     expect:
//!       regex: '\b30 days\b'
//!       latency_ms: 2000
//! ```
//!
//! [`Golden::from_yaml`] parses the file, checks every case (unique names, a model for each
//! request, regexes and JSON Schemas that compile, expectations that fit the case's kind) and
//! reports each problem with the file, the line, the case and the field.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use regex::Regex;
use schemars::JsonSchema;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::lines::LineIndex;

/// A golden set: the requests to send and what their answers must satisfy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GoldenSet {
    /// Settings every case inherits unless it sets its own.
    #[serde(default)]
    pub defaults: Defaults,
    /// The golden requests. They run concurrently but are reported in this order.
    pub cases: Vec<Case>,
}

/// Settings shared by every case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// The model sent when neither the case nor its request names one, e.g.
    /// `meta-llama/Llama-3.1-8B-Instruct` (what the server lists under `/v1/models`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// How long one request may take, connection to last byte, before it is a network timeout
    /// (an error, not a wrong answer). Milliseconds; default 30000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The total-latency budget of every case that sets no `expect.latency_ms`. Milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// The time-to-first-token budget of every streaming case that sets no `expect.ttft_ms`.
    /// Milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    /// HTTP headers sent with every request (a case's own `headers` win). Values never appear in
    /// reports; put secrets in an environment variable named by `api_key_env` instead.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The name of the environment variable holding the API key, sent as
    /// `Authorization: Bearer <key>`. The key itself never goes in this file or in a report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            model: None,
            timeout_ms: default_timeout_ms(),
            latency_ms: None,
            ttft_ms: None,
            headers: BTreeMap::new(),
            api_key_env: None,
        }
    }
}

fn default_timeout_ms() -> u64 {
    30_000
}

/// One golden request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// A unique name: the report and the baseline are keyed by it.
    pub name: String,
    /// Which endpoint: `chat` (`/v1/chat/completions`), `completion` (`/v1/completions`) or
    /// `embedding` (`/v1/embeddings`).
    pub kind: CaseKind,
    /// The model for this case; overrides `defaults.model`. A `model` inside `request` is used
    /// as written and must not disagree with this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The request body, sent as JSON exactly as written, so any parameter the server takes
    /// works (`messages`, `prompt`, `input`, `temperature: 0`, `seed`, `max_tokens`…). Hangar adds
    /// only `model` (when absent) and `stream`.
    pub request: Map<String, Value>,
    /// Ask for a server-sent-event stream (chat and completion only). Time to first token is
    /// measured, and `stream_options.include_usage` is requested when `max_tokens_used` is set.
    #[serde(default)]
    pub stream: bool,
    /// This case's timeout in milliseconds; overrides `defaults.timeout_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Extra HTTP headers for this case, added to `defaults.headers`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// What the answer must satisfy. With nothing else set, the status must be 200.
    #[serde(default)]
    pub expect: Expect,
}

/// The three OpenAI-compatible endpoints a case can call.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CaseKind {
    /// `POST /v1/chat/completions`; the answer is the first choice's message content.
    Chat,
    /// `POST /v1/completions`; the answer is the first choice's text.
    Completion,
    /// `POST /v1/embeddings`; the answer is the embedding vectors.
    Embedding,
}

impl CaseKind {
    /// The path below `/v1/`.
    pub fn path(self) -> &'static str {
        match self {
            CaseKind::Chat => "chat/completions",
            CaseKind::Completion => "completions",
            CaseKind::Embedding => "embeddings",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CaseKind::Chat => "chat",
            CaseKind::Completion => "completion",
            CaseKind::Embedding => "embedding",
        }
    }
}

/// The expectations on one answer. Every one that is set must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The HTTP status code, from 100 to 599. Default 200. With another status, only
    /// `latency_ms` may be set beside it (an error body has no answer to compare).
    #[serde(default = "default_status", deserialize_with = "status_code")]
    #[schemars(range(min = 100, max = 599))]
    pub status: u16,
    /// The answer text, exactly (chat and completion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Substrings the answer text must contain (chat and completion).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contains: Vec<String>,
    /// Substrings the answer text must not contain, e.g. a refusal (chat and completion).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_contains: Vec<String>,
    /// A regular expression (Rust `regex` syntax) that must match somewhere in the answer text;
    /// anchor it with `^…$` to match the whole text (chat and completion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// A JSON Schema (draft 2020-12 unless `$schema` says otherwise): the answer text must parse
    /// as JSON (surrounding whitespace allowed, no Markdown fences) and validate against it.
    /// `format` is asserted; remote `$ref`s are never fetched (chat and completion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<Value>,
    /// How close the answer must stay to the recorded baseline. Embeddings: cosine similarity of
    /// the vectors. Chat and completion: cosine similarity of the answers' word counts
    /// (lower-cased words), a cheap guard against drift when exact text is too strict.
    /// Without a baseline the check is skipped (exit 2 unless another answer is wrong) until one
    /// is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<Similarity>,
    /// Total latency budget, request sent to last byte read. Milliseconds; overrides
    /// `defaults.latency_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Time-to-first-token budget for streaming cases: request sent to the first chunk that
    /// carries a generated token (text, reasoning or a piece of a tool call). Milliseconds;
    /// overrides `defaults.ttft_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    /// At most this many tokens generated, as the server reports in `usage.completion_tokens`
    /// (embeddings: `usage.total_tokens`). An answer without usage fails this expectation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_used: Option<u64>,
    /// The first choice's `finish_reason`, e.g. `stop` to catch answers cut at `max_tokens`
    /// (`length`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// The length of every embedding vector (embedding only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<usize>,
}

impl Default for Expect {
    fn default() -> Self {
        Expect {
            status: default_status(),
            text: None,
            contains: Vec::new(),
            not_contains: Vec::new(),
            regex: None,
            json_schema: None,
            similarity: None,
            latency_ms: None,
            ttft_ms: None,
            max_tokens_used: None,
            finish_reason: None,
            dimensions: None,
        }
    }
}

fn default_status() -> u16 {
    200
}

/// A status code from 100 to 599, written as a number or as text (`'404'`); anything else is
/// refused with what was written.
fn status_code<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    deserializer.deserialize_any(StatusCode)
}

struct StatusCode;

impl StatusCode {
    fn refuse<E: de::Error>(got: impl fmt::Display) -> E {
        E::custom(format!("expected a status code (100–599), got {got}"))
    }
}

impl<'de> Visitor<'de> for StatusCode {
    type Value = u16;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a status code (100–599)")
    }

    fn visit_u64<E: de::Error>(self, code: u64) -> Result<u16, E> {
        u16::try_from(code)
            .ok()
            .filter(|code| (100..=599).contains(code))
            .ok_or_else(|| StatusCode::refuse(code))
    }

    fn visit_i64<E: de::Error>(self, code: i64) -> Result<u16, E> {
        match u64::try_from(code) {
            Ok(code) => self.visit_u64(code),
            Err(_) => Err(StatusCode::refuse(code)),
        }
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<u16, E> {
        match text.trim().parse::<u64>() {
            Ok(code) => self.visit_u64(code),
            Err(_) => Err(StatusCode::refuse(format!("{text:?}"))),
        }
    }
}

/// A similarity threshold against the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Similarity {
    /// The lowest acceptable similarity, from -1 to 1 (e.g. 0.98).
    pub min: f64,
}

impl GoldenSet {
    /// The JSON Schema of the golden-set file, for editors and `hangar validate --schema`.
    pub fn json_schema() -> Value {
        serde_json::to_value(schemars::schema_for!(GoldenSet)).unwrap_or_default()
    }
}

/// A problem in a golden-set file, located as precisely as the file allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// The case's name, when the problem is inside a case.
    pub case: Option<String>,
    /// The key path inside the case, e.g. `expect.regex`.
    pub field: Option<String>,
    pub message: String,
}

/// Why a golden-set file cannot be used: every problem found, each with its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct GoldenError {
    /// The file, as given (or a description such as `<inline>`).
    pub origin: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for GoldenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.origin)?;
            if let Some(line) = problem.line {
                write!(f, ":{line}")?;
            }
            write!(f, ": ")?;
            if let Some(case) = &problem.case {
                write!(f, "case `{case}`: ")?;
            }
            if let Some(field) = &problem.field {
                write!(f, "{field}: ")?;
            }
            write!(f, "{}", problem.message)?;
        }
        Ok(())
    }
}

/// A golden set that has been checked and compiled, ready to run.
#[derive(Debug, Clone)]
pub struct Golden {
    /// Where it was read from, as given.
    pub origin: String,
    pub set: GoldenSet,
    pub(crate) cases: Vec<PreparedCase>,
}

/// A case with everything resolved: its model, timeout, budgets, compiled regex and schema.
#[derive(Debug, Clone)]
pub(crate) struct PreparedCase {
    pub case: Case,
    pub model: String,
    pub timeout: Duration,
    pub latency_budget_ms: Option<u64>,
    pub ttft_budget_ms: Option<u64>,
    pub regex: Option<Regex>,
    pub schema: Option<std::sync::Arc<jsonschema::Validator>>,
    /// `defaults.headers` then the case's own, parsed.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Golden {
    /// Parses and checks a golden-set file's text. `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Golden, GoldenError> {
        let lines = LineIndex::of(text);
        let fail = |problems| GoldenError {
            origin: origin.to_owned(),
            problems,
        };
        let set: GoldenSet = match serde_saphyr::from_str(text) {
            Ok(set) => set,
            Err(err) => return Err(fail(every_problem_of_a_bad_file(text, &err, &lines))),
        };
        let mut problems = Vec::new();
        if set.cases.is_empty() {
            problems.push(no_cases(&lines));
        }
        let cases = check_cases(
            &set.defaults,
            set.cases.iter().enumerate(),
            &lines,
            &mut problems,
        );
        if !problems.is_empty() {
            return Err(fail(problems));
        }
        Ok(Golden {
            origin: origin.to_owned(),
            set,
            cases,
        })
    }

    /// Reads and checks a golden-set file.
    pub fn load(path: &std::path::Path) -> Result<Golden, GoldenError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| GoldenError {
            origin: origin.clone(),
            problems: vec![Problem {
                line: None,
                case: None,
                field: None,
                message: format!("cannot read the golden file: {err}"),
            }],
        })?;
        Golden::from_yaml(&text, &origin)
    }

    /// The case names, in file order.
    pub fn case_names(&self) -> impl Iterator<Item = &str> {
        self.set.cases.iter().map(|c| c.name.as_str())
    }

    /// Keeps only the cases named in `names`; an unknown name is an error listing the known ones.
    pub fn retain_cases(&mut self, names: &[String]) -> Result<(), String> {
        if names.is_empty() {
            return Ok(());
        }
        if let Some(unknown) = names
            .iter()
            .find(|n| !self.case_names().any(|known| known == n.as_str()))
        {
            let known = self.case_names().collect::<Vec<_>>().join(", ");
            return Err(format!(
                "{}: no case is named `{unknown}` (cases: {known})",
                self.origin
            ));
        }
        let keep = |name: &str| names.iter().any(|n| n == name);
        self.set.cases.retain(|c| keep(&c.name));
        self.cases.retain(|c| keep(&c.case.name));
        Ok(())
    }

    /// Whether any remaining case compares with the baseline.
    pub fn needs_baseline(&self) -> bool {
        self.set.cases.iter().any(|c| c.expect.similarity.is_some())
    }
}

fn yaml_problem(err: &serde_saphyr::Error, lines: &LineIndex) -> Problem {
    let line = err.location().map(|l| l.line()).filter(|&l| l > 0);
    let case = line.and_then(|l| lines.case_at(l)).map(str::to_owned);
    Problem {
        line,
        case,
        field: None,
        message: yaml_error_message(err),
    }
}

/// The error without serde-saphyr's snippet and location suffix: the problem prints its own.
fn yaml_error_message(err: &serde_saphyr::Error) -> String {
    let options = serde_saphyr::render_options! {
        snippets: serde_saphyr::SnippetMode::Off,
    };
    let rendered = err.render_with_options(options);
    let first = rendered.lines().next().unwrap_or_default();
    match first.rfind(" at line ") {
        Some(cut) => first[..cut].to_owned(),
        None => first.to_owned(),
    }
}

fn no_cases(lines: &LineIndex) -> Problem {
    Problem {
        line: lines.cases_line,
        case: None,
        field: Some("cases".into()),
        message: "there are no cases: add at least one golden request".into(),
    }
}

/// Checks and compiles `cases` (each with its index in the file) against `defaults`, adding
/// every problem found, each with its line, case and field.
fn check_cases<'a>(
    defaults: &Defaults,
    cases: impl Iterator<Item = (usize, &'a Case)>,
    lines: &LineIndex,
    problems: &mut Vec<Problem>,
) -> Vec<PreparedCase> {
    let default_headers = parse_headers(&defaults.headers, &mut |name, message| {
        let field = format!("headers.{name}");
        problems.push(Problem {
            line: lines.defaults_line(&field),
            case: None,
            field: Some(format!("defaults.{field}")),
            message,
        });
    });
    let mut names = BTreeSet::new();
    let mut prepared = Vec::new();
    for (index, case) in cases {
        let mut place = |field: &str, message: String| {
            problems.push(Problem {
                line: lines.field_line(index, field),
                case: Some(case.name.clone()),
                field: Some(field.to_owned()),
                message,
            });
        };
        if !names.insert(case.name.as_str()) {
            place("name", "another case has the same name".into());
        }
        match prepare(case, defaults) {
            Ok(mut ready) => {
                let mut headers = default_headers.clone();
                headers.extend(ready.headers);
                ready.headers = headers;
                prepared.push(ready);
            }
            Err(found) => {
                for (field, message) in found {
                    place(&field, message);
                }
            }
        }
    }
    prepared
}

/// A problem found while decoding part of a file: the dotted key path, and what is wrong.
type Found = (String, String);

/// Looks into a key whose value is a struct of its own for the problems it holds: `None`
/// reports the key as a whole.
type Inside = fn(&str, &Value) -> Option<Vec<Found>>;

/// Every problem of a file that does not decode, rather than the first: the file is read as
/// plain YAML values, then each case, and each key of each case, is decoded on its own, so
/// that one bad key hides neither the next nor another case; the cases that decode are checked
/// as in a good file (a bad regex, a missing model). The parser's own error stands when the
/// YAML itself is broken, or when no problem could be placed.
fn every_problem_of_a_bad_file(
    text: &str,
    err: &serde_saphyr::Error,
    lines: &LineIndex,
) -> Vec<Problem> {
    let Ok(Value::Object(top)) = serde_saphyr::from_str::<Value>(text) else {
        return vec![yaml_problem(err, lines)];
    };
    decoding_problems(&top, err, lines)
}

fn decoding_problems(
    top: &Map<String, Value>,
    err: &serde_saphyr::Error,
    lines: &LineIndex,
) -> Vec<Problem> {
    let top_found = field_problems::<GoldenSet>(top, "", top_inside);
    let mut problems: Vec<Problem> = top_found
        .iter()
        .map(|(field, message)| Problem {
            line: lines.top_line(field),
            case: None,
            field: Some(field.clone()),
            message: message.clone(),
        })
        .collect();
    let cases: &[Value] = match top.get("cases") {
        Some(Value::Array(cases)) => cases,
        _ => &[],
    };
    let mut decoded = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let mut found = match case {
            Value::Object(fields) => field_problems::<Case>(fields, "", case_inside),
            other => vec![(
                String::new(),
                format!(
                    "expected a mapping with `name`, `kind` and `request`, got {}",
                    crate::compare::excerpt(&other.to_string())
                ),
            )],
        };
        if found.is_empty() {
            match decode::<Case>(case) {
                Ok(case) => {
                    decoded.push((index, case));
                    continue;
                }
                Err(message) => found.push((String::new(), message)),
            }
        }
        found.extend(compiled_apart(case, &found));
        let name = match case.get("name") {
            Some(Value::String(name)) => Some(name.clone()),
            Some(Value::Number(number)) => Some(number.to_string()),
            _ => None,
        };
        for (field, message) in found {
            // A case without a usable name is named by its place in the file.
            let shown = match (&name, field.is_empty()) {
                (Some(_), true) => None,
                (Some(_), false) => Some(field.clone()),
                (None, true) => Some(format!("cases[{index}]")),
                (None, false) => Some(format!("cases[{index}].{field}")),
            };
            problems.push(Problem {
                line: lines.field_line(index, &field),
                case: name.clone(),
                field: shown,
                message,
            });
        }
    }
    if problems.is_empty() {
        // None could be placed: the decoder's own error, as it came.
        problems.push(yaml_problem(err, lines));
    }
    if cases.is_empty() && top.get("cases").is_some_and(Value::is_array) {
        problems.push(no_cases(lines));
    }
    // The cases that decode are checked against the defaults that do, their bad keys left out.
    let bad_defaults: Vec<&str> = top_found
        .iter()
        .filter_map(|(field, _)| field.strip_prefix("defaults."))
        .collect();
    let defaults = match top.get("defaults") {
        None => Some(Defaults::default()),
        Some(value) => decode_without::<Defaults>(value, &bad_defaults),
    };
    if let Some(defaults) = defaults {
        let mut checked = Vec::new();
        check_cases(
            &defaults,
            decoded.iter().map(|(index, case)| (*index, case)),
            lines,
            &mut checked,
        );
        // A case that takes its model from a bad `defaults.model` has no model until it is
        // fixed: one problem, not one more a case.
        if bad_defaults.contains(&"model") {
            checked.retain(|p| {
                !(p.field.as_deref() == Some("model") && p.message.starts_with("no model"))
            });
        }
        problems.extend(checked);
    }
    // In file order; what has no line (a missing `cases`) last.
    problems.sort_by_key(|problem| problem.line.unwrap_or(u64::MAX));
    problems
}

/// What of a case that does not decode can still be checked on its own: its regex and its JSON
/// Schema, unless they are themselves at fault. Checks that weigh one key against another (the
/// kind, the status, the model) wait until the case decodes.
fn compiled_apart(case: &Value, found: &[Found]) -> Vec<Found> {
    let at_fault = |field: &str| {
        found
            .iter()
            .any(|(path, _)| path.is_empty() || path == field || path == "expect")
    };
    let mut compiled = Vec::new();
    if let Some(Value::String(pattern)) = case.pointer("/expect/regex")
        && !at_fault("expect.regex")
        && let Err(message) = expected_regex(pattern)
    {
        compiled.push(("expect.regex".to_owned(), message));
    }
    if let Some(schema) = case.pointer("/expect/json_schema")
        && !at_fault("expect.json_schema")
        && let Err(message) = expected_schema(schema)
    {
        compiled.push(("expect.json_schema".to_owned(), message));
    }
    compiled
}

fn top_inside(key: &str, value: &Value) -> Option<Vec<Found>> {
    match key {
        "defaults" => struct_inside::<Defaults>(value, "defaults.", nothing_inside),
        // Each case is decoded on its own, with its name.
        "cases" => value.is_array().then(Vec::new),
        _ => None,
    }
}

fn case_inside(key: &str, value: &Value) -> Option<Vec<Found>> {
    match key {
        "expect" => struct_inside::<Expect>(value, "expect.", expect_inside),
        _ => None,
    }
}

fn expect_inside(key: &str, value: &Value) -> Option<Vec<Found>> {
    match key {
        "similarity" => struct_inside::<Similarity>(value, "expect.similarity.", nothing_inside),
        _ => None,
    }
}

fn nothing_inside(_: &str, _: &Value) -> Option<Vec<Found>> {
    None
}

/// The problems inside a mapping decoded as a `T`, when any can be placed there.
fn struct_inside<T: DeserializeOwned + JsonSchema>(
    value: &Value,
    prefix: &str,
    inside: Inside,
) -> Option<Vec<Found>> {
    let found = field_problems::<T>(value.as_object()?, prefix, inside);
    (!found.is_empty()).then_some(found)
}

/// The keys of `object` at fault when it is decoded as a `T`, then the required fields it
/// lacks. Each key is decoded alone (a required field it lacks is then no fault of that key),
/// so that one bad key does not hide the next.
fn field_problems<T: DeserializeOwned + JsonSchema>(
    object: &Map<String, Value>,
    prefix: &str,
    inside: Inside,
) -> Vec<Found> {
    let required = required_fields::<T>();
    let mut found = Vec::new();
    for (key, value) in object {
        let alone: Map<String, Value> = std::iter::once((key.clone(), value.clone())).collect();
        let Err(message) = decode::<T>(&Value::Object(alone)) else {
            continue;
        };
        let lacks_another = missing_field(&message)
            .is_some_and(|field| field != key.as_str() && required.iter().any(|r| r == field));
        if lacks_another {
            continue;
        }
        match inside(key, value) {
            Some(deeper) => found.extend(deeper),
            None => found.push((
                format!("{prefix}{key}"),
                plain_message(&message, key, value),
            )),
        }
    }
    for field in required.iter().filter(|f| !object.contains_key(f.as_str())) {
        found.push((format!("{prefix}{field}"), "required but missing".into()));
    }
    found
}

/// Decodes `value` as a `T` the way the file itself is decoded (serde-saphyr, so that `4` is
/// also text and `'5000'` a number, as in a good file), by writing it back as YAML.
fn decode<T: DeserializeOwned>(value: &Value) -> Result<T, String> {
    let yaml = serde_saphyr::to_string(value).map_err(|err| err.to_string())?;
    serde_saphyr::from_str(&yaml).map_err(|err| yaml_error_message(&err))
}

/// `value` decoded as a `T` once its keys named in `bad` are left out.
fn decode_without<T: DeserializeOwned>(value: &Value, bad: &[&str]) -> Option<T> {
    let mut value = value.clone();
    if let Value::Object(fields) = &mut value {
        for path in bad {
            let key = path.split('.').next().unwrap_or_default();
            fields.remove(key);
        }
    }
    decode(&value).ok()
}

/// The fields a `T` cannot do without (those without a default), from its JSON Schema.
fn required_fields<T: JsonSchema>() -> Vec<String> {
    let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default();
    schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// The field a "missing field `…`" message names.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// The decoder's message in the file's terms: what was expected and what was written rather
/// than Rust's type names, without repeating the key.
fn plain_message(message: &str, key: &str, value: &Value) -> String {
    if let Some(rest) = message.strip_prefix(&format!("unknown field `{key}`")) {
        return format!("unknown field{rest}");
    }
    let expected = match message.strip_prefix("invalid ") {
        Some("u8" | "u16" | "u32" | "u64" | "usize") => "a whole number, 0 or more",
        Some("i32" | "i64") => "a whole number",
        Some("f32" | "f64" | "floating point") => "a number",
        Some("boolean" | "bool") => "true or false",
        _ => return message.to_owned(),
    };
    format!(
        "expected {expected}, got {}",
        crate::compare::excerpt(&value.to_string())
    )
}

const TEXT_EXPECTATIONS: [&str; 5] = [
    "expect.text",
    "expect.contains",
    "expect.not_contains",
    "expect.regex",
    "expect.json_schema",
];

/// Checks one case against its defaults and compiles it, or gives every problem found, each as
/// a field and a message.
fn prepare(case: &Case, defaults: &Defaults) -> Result<PreparedCase, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let mut problem = |field: &str, message: String| problems.push((field.to_owned(), message));
    let expect = &case.expect;
    if case.name.trim().is_empty() {
        problem("name", "a case needs a non-empty name".into());
    }
    let model = resolve_model(case, defaults, &mut problem);
    check_request_shape(case, &mut problem);
    check_expectations_fit(case, &mut problem);
    if case.timeout_ms == Some(0) || (case.timeout_ms.is_none() && defaults.timeout_ms == 0) {
        problem(
            "timeout_ms",
            "a timeout of 0 ms would fail every request".into(),
        );
    }
    let regex = expect
        .regex
        .as_deref()
        .and_then(|pattern| match expected_regex(pattern) {
            Ok(regex) => Some(regex),
            Err(message) => {
                problem("expect.regex", message);
                None
            }
        });
    let schema = expect
        .json_schema
        .as_ref()
        .and_then(|schema| match expected_schema(schema) {
            Ok(validator) => Some(std::sync::Arc::new(validator)),
            Err(message) => {
                problem("expect.json_schema", message);
                None
            }
        });
    let headers = parse_headers(&case.headers, &mut |name, message| {
        problem(&format!("headers.{name}"), message);
    });
    // A missing model was reported as a problem.
    match model {
        Some(model) if problems.is_empty() => Ok(PreparedCase {
            case: case.clone(),
            model,
            timeout: Duration::from_millis(case.timeout_ms.unwrap_or(defaults.timeout_ms)),
            latency_budget_ms: expect.latency_ms.or(defaults.latency_ms),
            ttft_budget_ms: expect.ttft_ms.or(defaults.ttft_ms.filter(|_| case.stream)),
            regex,
            schema,
            headers,
        }),
        _ => Err(problems),
    }
}

fn expected_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|err| format!("not a valid regex: {err}"))
}

fn expected_schema(schema: &Value) -> Result<jsonschema::Validator, String> {
    compile_schema(schema).map_err(|err| format!("not a valid JSON Schema: {err}"))
}

/// Expectations that cannot apply to the case are errors, not silent passes.
fn check_expectations_fit(case: &Case, problem: &mut impl FnMut(&str, String)) {
    let expect = &case.expect;
    if case.stream && case.kind == CaseKind::Embedding {
        problem("stream", "embeddings cannot be streamed".into());
    }
    let set_text_expectations = text_expectations_set(expect);
    if case.kind == CaseKind::Embedding {
        for field in &set_text_expectations {
            problem(field, "an embedding has no text to compare".into());
        }
        if expect.finish_reason.is_some() {
            problem(
                "expect.finish_reason",
                "an embedding has no finish reason".into(),
            );
        }
    } else if expect.dimensions.is_some() {
        problem(
            "expect.dimensions",
            "only embedding cases have dimensions".into(),
        );
    }
    if !(200..300).contains(&expect.status) {
        let mut content = set_text_expectations;
        for (set, field) in [
            (expect.similarity.is_some(), "expect.similarity"),
            (expect.ttft_ms.is_some(), "expect.ttft_ms"),
            (expect.max_tokens_used.is_some(), "expect.max_tokens_used"),
            (expect.finish_reason.is_some(), "expect.finish_reason"),
            (expect.dimensions.is_some(), "expect.dimensions"),
        ] {
            if set {
                content.push(field);
            }
        }
        for field in content {
            problem(
                field,
                format!(
                    "the case expects status {}, whose error body has no answer to compare",
                    expect.status
                ),
            );
        }
    }
    if expect.ttft_ms.is_some() && !case.stream {
        problem(
            "expect.ttft_ms",
            "time to first token is measured on streams only: add `stream: true`".into(),
        );
    }
    if let Some(similarity) = expect.similarity
        && !(-1.0..=1.0).contains(&similarity.min)
    {
        problem(
            "expect.similarity.min",
            format!("{} is not between -1 and 1", similarity.min),
        );
    }
}

/// Parses header names and values, reporting each bad one by name.
fn parse_headers(
    headers: &BTreeMap<String, String>,
    problem: &mut impl FnMut(&str, String),
) -> Vec<(HeaderName, HeaderValue)> {
    let mut parsed = Vec::new();
    for (name, value) in headers {
        let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
            problem(name, "not a valid HTTP header name".into());
            continue;
        };
        let Ok(mut header_value) = HeaderValue::from_str(value) else {
            problem(
                name,
                "the value holds characters HTTP headers cannot carry".into(),
            );
            continue;
        };
        // Marked sensitive so that no debug output of a request shows it.
        header_value.set_sensitive(true);
        parsed.push((header, header_value));
    }
    parsed
}

fn text_expectations_set(expect: &Expect) -> Vec<&'static str> {
    let set = [
        expect.text.is_some(),
        !expect.contains.is_empty(),
        !expect.not_contains.is_empty(),
        expect.regex.is_some(),
        expect.json_schema.is_some(),
    ];
    TEXT_EXPECTATIONS
        .iter()
        .zip(set)
        .filter(|(_, set)| *set)
        .map(|(field, _)| *field)
        .collect()
}

/// The model a case sends: its request's, its own, or the default, in that order.
fn resolve_model(
    case: &Case,
    defaults: &Defaults,
    problem: &mut impl FnMut(&str, String),
) -> Option<String> {
    let in_request = match case.request.get("model") {
        None => None,
        Some(Value::String(model)) => Some(model.clone()),
        Some(other) => {
            problem("request.model", format!("must be a string, not {other}"));
            return None;
        }
    };
    if let (Some(in_request), Some(own)) = (&in_request, &case.model)
        && in_request != own
    {
        problem(
            "model",
            format!("`{own}` disagrees with request.model `{in_request}`: keep one"),
        );
        return None;
    }
    let model = in_request
        .or_else(|| case.model.clone())
        .or_else(|| defaults.model.clone());
    if model.is_none() {
        problem(
            "model",
            "no model: set `defaults.model`, the case's `model` or `request.model`".into(),
        );
    }
    model
}

/// `stream` belongs to the case, and each endpoint needs one field; the server would answer 400
/// without it anyway, but the file's author learns it sooner and with a line number.
fn check_request_shape(case: &Case, problem: &mut impl FnMut(&str, String)) {
    if case.request.contains_key("stream") {
        problem(
            "request.stream",
            "set the case's `stream: true` instead: Hangar must know to read a stream".into(),
        );
    }
    let needed = match case.kind {
        CaseKind::Chat => "messages",
        CaseKind::Completion => "prompt",
        CaseKind::Embedding => "input",
    };
    if !case.request.contains_key(needed) && (200..300).contains(&case.expect.status) {
        problem(
            &format!("request.{needed}"),
            format!(
                "a {} request needs `{needed}` (or expect a 4xx status)",
                case.kind.as_str()
            ),
        );
    }
}

/// Compiles a JSON Schema without ever fetching a remote `$ref` (the crate is built without
/// its resolvers). `format` is asserted whatever the draft: a schema that says `format: date`
/// means it.
pub(crate) fn compile_schema(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
defaults:
  model: support-bot
  timeout_ms: 5000
  latency_ms: 2000
  headers: {x-team: support}
cases:
  - name: refund-window
    kind: chat
    request:
      messages: [{role: user, content: "How long do I have to return an item?"}]
      temperature: 0
    expect:
      regex: '\b30 days\b'
  - name: intent-json
    kind: chat
    stream: true
    request:
      messages: [{role: user, content: "Classify: I want my money back"}]
    expect:
      json_schema: {type: object, required: [intent]}
      ttft_ms: 500
  - name: ticket-embedding
    kind: embedding
    model: embedder
    request: {input: "my parcel never arrived"}
    expect:
      similarity: {min: 0.98}
      dimensions: 64
"#;

    fn problems(yaml: &str) -> Vec<Problem> {
        Golden::from_yaml(yaml, "g.yaml").unwrap_err().problems
    }

    #[test]
    fn a_good_file_is_prepared_with_its_defaults() {
        let golden = Golden::from_yaml(GOOD, "g.yaml").unwrap();
        let names: Vec<_> = golden.case_names().collect();
        assert_eq!(names, ["refund-window", "intent-json", "ticket-embedding"]);
        let refund = &golden.cases[0];
        assert_eq!(refund.model, "support-bot");
        assert_eq!(refund.timeout, Duration::from_secs(5));
        assert_eq!(refund.latency_budget_ms, Some(2000));
        assert!(refund.regex.as_ref().unwrap().is_match("within 30 days"));
        assert_eq!(refund.headers[0].0.as_str(), "x-team");
        assert_eq!(golden.cases[1].ttft_budget_ms, Some(500));
        assert!(golden.cases[1].schema.is_some());
        assert_eq!(golden.cases[2].model, "embedder");
        assert!(golden.needs_baseline());
    }

    #[test]
    fn an_unknown_key_names_its_line_and_case() {
        let yaml = GOOD.replace("regex: '", "regexp: '");
        let problems = problems(&yaml);
        assert_eq!(problems.len(), 1);
        let problem = &problems[0];
        assert_eq!(problem.case.as_deref(), Some("refund-window"));
        assert_eq!(problem.line, Some(14));
        assert_eq!(problem.field.as_deref(), Some("expect.regexp"));
        assert!(
            problem
                .message
                .starts_with("unknown field, expected one of status, text"),
            "{}",
            problem.message
        );
    }

    /// A status that is no number in one case, a bad regex in another, an unknown key in two
    /// (one beside a bad regex), a case without a name, a bad default: every one at once, each
    /// with its place.
    const BROKEN: &str = r#"defaults:
  model: support-bot
  timeout_ms: soon
cases:
  - name: refund-window
    kind: chat
    request: {messages: []}
    expect:
      regex: '(30 days'
  - name: unknown-model
    kind: chat
    request: {messages: []}
    expect:
      status: 'notfound'
      regexp: x
  - name: greeting
    kind: chat
    request: {messages: []}
    expect: {regexp: hello, regex: '(hi'}
  - kind: embeding
    request: {input: x}
"#;

    #[test]
    fn a_file_that_does_not_decode_reports_every_problem_with_its_field() {
        let err = Golden::from_yaml(BROKEN, "g.yaml").unwrap_err();
        let text = err.to_string();
        let want = [
            "g.yaml:3: defaults.timeout_ms: expected a whole number, 0 or more, got \"soon\"",
            "g.yaml:9: case `refund-window`: expect.regex: not a valid regex",
            "g.yaml:14: case `unknown-model`: expect.status: expected a status code (100–599), got \"notfound\"",
            "g.yaml:15: case `unknown-model`: expect.regexp: unknown field, expected one of status, text",
            "g.yaml:19: case `greeting`: expect.regexp: unknown field",
            "g.yaml:19: case `greeting`: expect.regex: not a valid regex",
            "g.yaml:20: cases[3].kind: unknown variant `embeding`",
            "g.yaml:20: cases[3].name: required but missing",
        ];
        for line in want {
            assert!(
                text.lines().any(|l| l.starts_with(line)),
                "{line}\nmissing from:\n{text}"
            );
        }
        assert_eq!(err.problems.len(), want.len(), "{text}");
        // In file order.
        let lines: Vec<u64> = err.problems.iter().map(|p| p.line.unwrap()).collect();
        assert!(lines.is_sorted(), "{lines:?}");
    }

    #[test]
    fn a_negative_count_is_told_what_a_count_may_be() {
        let yaml = "defaults: {timeout_ms: -5}\ncases: []\n";
        let err = Golden::from_yaml(yaml, "g.yaml").unwrap_err().to_string();
        assert!(
            err.contains("defaults.timeout_ms: expected a whole number, 0 or more, got -5"),
            "{err}"
        );
    }

    #[test]
    fn what_a_good_file_may_write_is_no_problem_beside_a_bad_case() {
        let good = "defaults: {model: m, headers: {x-version: 2}}\ncases:\n  - name: lenient\n    kind: chat\n    stream: yes\n    timeout_ms: '5000'\n    request: {messages: []}\n    expect: {text: 4, contains: [30, true], status: '200', ttft_ms: 100}\n";
        let golden = Golden::from_yaml(good, "g.yaml").unwrap();
        let case = &golden.set.cases[0];
        assert_eq!(
            (case.expect.status, case.expect.text.as_deref(), case.stream),
            (200, Some("4"), true)
        );
        assert_eq!(golden.cases[0].timeout, Duration::from_secs(5));

        let bad = format!(
            "{good}  - name: broken\n    kind: chat\n    request: {{messages: []}}\n    expect: {{status: 42}}\n"
        );
        let problems = problems(&bad);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].case.as_deref(), Some("broken"));
        assert_eq!(problems[0].field.as_deref(), Some("expect.status"));
        assert_eq!(problems[0].line, Some(12));
        assert_eq!(
            problems[0].message,
            "expected a status code (100–599), got 42"
        );
    }

    #[test]
    fn the_file_s_own_keys_are_checked_too() {
        let found = problems("defaults: {model: m, timeout: 5}\ncase: []\n");
        let fields: Vec<_> = found
            .iter()
            .map(|p| (p.field.as_deref().unwrap_or_default(), p.line))
            .collect();
        assert_eq!(
            fields,
            [
                ("defaults.timeout", Some(1)),
                ("case", Some(2)),
                ("cases", None)
            ],
            "{found:?}"
        );
        assert!(
            found[1]
                .message
                .starts_with("unknown field, expected one of defaults, cases")
        );
        assert_eq!(found[2].message, "required but missing");
    }

    #[test]
    fn a_bad_default_model_is_one_problem_not_one_per_case() {
        let found = problems(
            "defaults: {model: [support-bot]}\ncases:\n  - {name: a, kind: chat, request: {messages: [{role: user, content: hi}]}}\n  - {name: b, kind: chat, request: {messages: [{role: user, content: hi}]}}\n",
        );
        let fields: Vec<_> = found.iter().map(|p| p.field.as_deref()).collect();
        assert_eq!(fields, [Some("defaults.model")], "{found:?}");
    }

    #[test]
    fn broken_yaml_is_an_error_with_a_line() {
        let err =
            Golden::from_yaml("cases:\n  - name: a\n    kind: [chat\n", "g.yaml").unwrap_err();
        assert!(err.problems[0].line.is_some(), "{err}");
        assert!(err.to_string().starts_with("g.yaml:"), "{err}");
    }

    #[test]
    fn a_bad_regex_names_case_field_and_line() {
        let yaml = GOOD.replace(r"'\b30 days\b'", "'(30 days'");
        let err = Golden::from_yaml(&yaml, "g.yaml").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("g.yaml:14: case `refund-window`: expect.regex: not a valid regex"),
            "{text}"
        );
    }

    #[test]
    fn a_bad_schema_names_case_and_field() {
        let yaml = GOOD.replace("{type: object, required: [intent]}", "{type: objekt}");
        let problems = problems(&yaml);
        assert_eq!(problems[0].case.as_deref(), Some("intent-json"));
        assert_eq!(problems[0].field.as_deref(), Some("expect.json_schema"));
        assert_eq!(problems[0].line, Some(21));
        assert!(problems[0].message.starts_with("not a valid JSON Schema"));
    }

    #[test]
    fn schemas_fetch_nothing_and_assert_formats() {
        let remote = serde_json::json!({"$ref": "https://schemas.example.com/intent.json"});
        assert!(compile_schema(&remote).is_err());
        let local = serde_json::json!({
            "$defs": {"day": {"type": "string", "format": "date"}},
            "$ref": "#/$defs/day"
        });
        let validator = compile_schema(&local).unwrap();
        assert!(validator.is_valid(&serde_json::json!("2025-06-01")));
        assert!(!validator.is_valid(&serde_json::json!("next Tuesday")));
    }

    #[test]
    fn expectations_must_fit_the_kind() {
        let yaml = GOOD.replace("dimensions: 64", "dimensions: 64\n      text: hi");
        let found = problems(&yaml);
        assert_eq!(found[0].field.as_deref(), Some("expect.text"));
        assert!(found[0].message.contains("no text"));
        let yaml = GOOD.replace("      regex:", "      ttft_ms: 100\n      regex:");
        assert!(problems(&yaml)[0].message.contains("stream: true"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let yaml = "cases:\n  - name: a\n    kind: chat\n    request: {messages: [], stream: true}\n  - name: a\n    kind: embedding\n    stream: true\n    request: {input: x}\n";
        let fields: Vec<_> = problems(yaml)
            .into_iter()
            .map(|p| (p.case.unwrap_or_default(), p.field.unwrap_or_default()))
            .collect();
        let want = [
            ("a", "model"),
            ("a", "request.stream"),
            ("a", "name"),
            ("a", "model"),
            ("a", "stream"),
        ];
        for (case, field) in want {
            assert!(
                fields.iter().any(|(c, f)| c == case && f == field),
                "{case}/{field} missing from {fields:?}"
            );
        }
    }

    #[test]
    fn models_must_agree_and_exist() {
        let yaml = "cases:\n  - name: a\n    kind: chat\n    model: alpha\n    request: {model: beta, messages: []}\n";
        let found = problems(yaml);
        assert!(found[0].message.contains("disagrees"), "{found:?}");
        let yaml =
            "cases:\n  - name: a\n    kind: chat\n    request: {model: beta, messages: []}\n";
        assert_eq!(Golden::from_yaml(yaml, "g").unwrap().cases[0].model, "beta");
    }

    #[test]
    fn an_error_status_takes_no_content_expectations() {
        let yaml = "defaults: {model: m}\ncases:\n  - name: a\n    kind: chat\n    request: {}\n    expect: {status: 400, contains: [x]}\n";
        let problems = problems(yaml);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field.as_deref(), Some("expect.contains"));
    }

    #[test]
    fn bad_headers_are_named() {
        let yaml = GOOD.replace("x-team: support", "\"bad header\": support");
        let problems = problems(&yaml);
        assert_eq!(
            problems[0].field.as_deref(),
            Some("defaults.headers.bad header")
        );
        assert_eq!(problems[0].line, Some(6));
    }

    #[test]
    fn a_file_without_cases_is_an_error() {
        assert!(problems("cases: []\n")[0].message.contains("no cases"));
    }

    #[test]
    fn case_filters_keep_file_order_and_reject_unknown_names() {
        let mut golden = Golden::from_yaml(GOOD, "g.yaml").unwrap();
        let err = golden.retain_cases(&["nope".into()]).unwrap_err();
        assert!(err.contains("refund-window, intent-json"), "{err}");
        golden
            .retain_cases(&["ticket-embedding".into(), "refund-window".into()])
            .unwrap();
        assert_eq!(
            golden.case_names().collect::<Vec<_>>(),
            ["refund-window", "ticket-embedding"]
        );
        assert_eq!(golden.cases.len(), 2);
    }

    #[test]
    fn the_schema_names_every_key() {
        let schema = GoldenSet::json_schema().to_string();
        for key in [
            "api_key_env",
            "timeout_ms",
            "json_schema",
            "similarity",
            "ttft_ms",
            "max_tokens_used",
            "finish_reason",
            "not_contains",
            "dimensions",
        ] {
            assert!(schema.contains(key), "{key} missing");
        }
    }
}
