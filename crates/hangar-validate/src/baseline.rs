//! The baseline: answers recorded from a known-good server, keyed by case name, which later runs
//! compare against (`expect.similarity`).
//!
//! Each recorded answer carries a hash of the request that produced it, so an edited golden
//! request is not compared with an answer to a different question, and a hash of its content,
//! so a baseline changed by hand is noticed. It is JSON, or YAML when the file name ends in
//! `.yaml`/`.yml`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::answer::{Answer, ToolCall};
use crate::golden::CaseKind;

/// The `schema` of every baseline file this version writes.
pub const BASELINE_SCHEMA: &str = "hangar.dev/validate-baseline/v2";
/// The schema of baselines written before tool calls were recorded: still read, their answers
/// compared by text alone.
const BASELINE_SCHEMA_V1: &str = "hangar.dev/validate-baseline/v1";

/// Recorded answers, keyed by case name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// Always [`BASELINE_SCHEMA`].
    pub schema: String,
    /// The `/v1` base URL of the server the answers were last recorded from.
    pub url: String,
    /// When the file was last written (RFC 3339, UTC).
    pub recorded_at: String,
    pub cases: BTreeMap<String, RecordedAnswer>,
}

/// One recorded answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedAnswer {
    pub kind: CaseKind,
    /// The model the request named.
    pub model: String,
    /// The server it was recorded from.
    pub url: String,
    /// When it was recorded (RFC 3339, UTC).
    pub recorded_at: String,
    /// [`request_hash`] of the case's `request` as written: without `model`, and without what
    /// Hangar adds (`stream`, `stream_options`). Older baselines hold the hash of the whole
    /// body sent (still without `model`), which is still accepted.
    pub request_hash: String,
    /// `sha256:` of the answer: the text's UTF-8 bytes and its tool calls, or the vectors'
    /// little-endian `f32`s.
    pub content_hash: String,
    /// The answer text (chat and completion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The functions the answer called (chat with `tools`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The vectors, one per input (embedding).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embeddings: Vec<Vec<f32>>,
    /// Whether tool calls were recorded (not in a v1 baseline, whose answers may have made
    /// calls it did not keep).
    #[serde(skip)]
    pub calls_recorded: bool,
}

/// A baseline file that cannot be read or trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct BaselineError {
    pub file: String,
    pub message: String,
}

impl Baseline {
    pub fn new(url: &str, recorded_at: &str) -> Baseline {
        Baseline {
            schema: BASELINE_SCHEMA.to_owned(),
            url: url.to_owned(),
            recorded_at: recorded_at.to_owned(),
            cases: BTreeMap::new(),
        }
    }

    /// Reads a baseline and checks every answer against its content hash.
    pub fn load(path: &Path) -> Result<Baseline, BaselineError> {
        let file = path.display().to_string();
        let fail = |message: String| BaselineError {
            file: file.clone(),
            message,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|err| fail(format!("cannot read the baseline: {err}")))?;
        let baseline: Baseline = if is_yaml(path) {
            serde_saphyr::from_str(&text).map_err(|err| fail(err.to_string()))?
        } else {
            serde_json::from_str(&text).map_err(|err| fail(err.to_string()))?
        };
        let mut baseline = baseline;
        let calls_recorded = match baseline.schema.as_str() {
            BASELINE_SCHEMA => true,
            BASELINE_SCHEMA_V1 => false,
            other => {
                return Err(fail(format!(
                    "schema is `{other}`, this version reads `{BASELINE_SCHEMA}` and `{BASELINE_SCHEMA_V1}`"
                )));
            }
        };
        for recorded in baseline.cases.values_mut() {
            recorded.calls_recorded = calls_recorded;
        }
        for (name, recorded) in &baseline.cases {
            let hash = content_hash(
                recorded.text.as_deref(),
                &recorded.tool_calls,
                &recorded.embeddings,
            );
            if recorded.content_hash != hash {
                return Err(fail(format!(
                    "case `{name}`: the answer does not match its content_hash (edited by hand?); record the baseline again"
                )));
            }
        }
        Ok(baseline)
    }

    /// Writes the baseline, JSON or YAML by the file's extension.
    pub fn save(&self, path: &Path) -> Result<(), BaselineError> {
        let fail = |message: String| BaselineError {
            file: path.display().to_string(),
            message,
        };
        let text = if is_yaml(path) {
            serde_saphyr::to_string(self).map_err(|err| fail(err.to_string()))?
        } else {
            let mut text =
                serde_json::to_string_pretty(self).map_err(|err| fail(err.to_string()))?;
            text.push('\n');
            text
        };
        std::fs::write(path, text).map_err(|err| fail(format!("cannot write: {err}")))
    }

    /// Records `answer` for a case, replacing what was there. `request_hash` is
    /// [`request_hash`] of the case's `request`.
    pub fn record(
        &mut self,
        case: &str,
        kind: CaseKind,
        model: &str,
        request_hash: &str,
        answer: &Answer,
    ) {
        let recorded = RecordedAnswer {
            kind,
            model: model.to_owned(),
            url: self.url.clone(),
            recorded_at: self.recorded_at.clone(),
            request_hash: request_hash.to_owned(),
            content_hash: content_hash(
                answer.text.as_deref(),
                &answer.tool_calls,
                &answer.embeddings,
            ),
            text: answer.text.clone(),
            tool_calls: answer.tool_calls.clone(),
            embeddings: answer.embeddings.clone(),
            calls_recorded: true,
        };
        self.cases.insert(case.to_owned(), recorded);
    }
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// `sha256:<hex>` of a request without its `model`, so that a new model version is compared
/// with the answers of the old one. Keys are hashed sorted, so equal bodies hash
/// equally whatever order the golden file wrote them in.
pub fn request_hash(request: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(request, &mut canonical, true);
    sha256(canonical.as_bytes())
}

/// JSON with object keys sorted at every level; `model` is left out at the top.
fn write_canonical(value: &Value, out: &mut String, top: bool) {
    match value {
        Value::Object(fields) => {
            let mut keys: Vec<&String> = fields.keys().filter(|k| !top || *k != "model").collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&fields[key], out, false);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out, false);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// `sha256:<hex>` of an answer's content. Without tool calls it is the hash earlier versions
/// wrote, so their baselines still load.
pub fn content_hash(
    text: Option<&str>,
    tool_calls: &[ToolCall],
    embeddings: &[Vec<f32>],
) -> String {
    let mut bytes = Vec::new();
    if let Some(text) = text {
        bytes.extend_from_slice(text.as_bytes());
    }
    for call in tool_calls {
        // Length-prefixed, so that bytes moved from a name to its arguments change the hash.
        for part in [&call.name, &call.arguments] {
            bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
            bytes.extend_from_slice(part.as_bytes());
        }
    }
    for vector in embeddings {
        for number in vector {
            bytes.extend_from_slice(&number.to_le_bytes());
        }
    }
    sha256(&bytes)
}

fn sha256(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let hex: String = digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer() -> Answer {
        Answer {
            status: 200,
            text: Some("4".into()),
            ..Answer::default()
        }
    }

    #[test]
    fn request_hashes_ignore_key_order() {
        let a: Value = serde_json::from_str(r#"{"model":"m","temperature":0}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"temperature":0,"model":"m"}"#).unwrap();
        assert_eq!(request_hash(&a), request_hash(&b));
        assert_ne!(request_hash(&a), request_hash(&json!({"temperature": 1})));
        // Another model asked the same question.
        assert_eq!(
            request_hash(&a),
            request_hash(&json!({"model": "v2", "temperature": 0}))
        );
        assert!(request_hash(&a).starts_with("sha256:"));
        assert_eq!(request_hash(&a).len(), "sha256:".len() + 64);
    }

    #[test]
    fn a_baseline_round_trips_through_json_and_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let mut baseline = Baseline::new("http://h/v1", "2025-01-02T03:04:05Z");
        baseline.record(
            "math",
            CaseKind::Chat,
            "m",
            &request_hash(&json!({"a": 1})),
            &answer(),
        );
        let vectors = Answer {
            embeddings: vec![vec![0.1, -0.25, 1.0 / 3.0]],
            ..Answer::default()
        };
        baseline.record("embed", CaseKind::Embedding, "e", "sha256:0", &vectors);
        for name in ["b.json", "b.yaml"] {
            let path = dir.path().join(name);
            baseline.save(&path).unwrap();
            assert_eq!(Baseline::load(&path).unwrap(), baseline, "{name}");
        }
    }

    #[test]
    fn an_edited_answer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.json");
        let mut baseline = Baseline::new("http://h/v1", "2025-01-02T03:04:05Z");
        baseline.record("math", CaseKind::Chat, "m", "sha256:0", &answer());
        baseline.save(&path).unwrap();
        let edited = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"text\": \"4\"", "\"text\": \"5\"");
        std::fs::write(&path, edited).unwrap();
        let err = Baseline::load(&path).unwrap_err();
        assert!(err.message.contains("case `math`"), "{err}");
    }

    #[test]
    fn a_v1_baseline_is_read_with_its_calls_unrecorded() {
        let dir = tempfile::tempdir().unwrap();
        let mut baseline = Baseline::new("u", "t");
        let body = json!({"model": "m", "messages": []});
        baseline.record("c", CaseKind::Chat, "m", &request_hash(&body), &answer());
        let path = dir.path().join("b.json");
        baseline.save(&path).unwrap();
        assert!(Baseline::load(&path).unwrap().cases["c"].calls_recorded);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replace("validate-baseline/v2", "validate-baseline/v1"),
        )
        .unwrap();
        assert!(!Baseline::load(&path).unwrap().cases["c"].calls_recorded);
    }

    #[test]
    fn another_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.json");
        std::fs::write(
            &path,
            r#"{"schema": "hangar.dev/validate-baseline/v9", "url": "u", "recorded_at": "t", "cases": {}}"#,
        )
        .unwrap();
        assert!(Baseline::load(&path).unwrap_err().message.contains("v9"));
    }

    #[test]
    fn tool_calls_are_recorded_and_an_edited_call_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.json");
        let calls = Answer {
            status: 200,
            text: Some(String::new()),
            tool_calls: vec![ToolCall {
                name: "get_weather".into(),
                arguments: "{}".into(),
            }],
            ..Answer::default()
        };
        let mut baseline = Baseline::new("http://h/v1", "2025-01-02T03:04:05Z");
        baseline.record("weather", CaseKind::Chat, "m", "sha256:0", &calls);
        // A call changes the hash, so editing it by hand is noticed.
        assert_ne!(
            baseline.cases["weather"].content_hash,
            content_hash(Some(""), &[], &[])
        );
        baseline.save(&path).unwrap();
        assert_eq!(Baseline::load(&path).unwrap(), baseline);
        let edited = std::fs::read_to_string(&path)
            .unwrap()
            .replace("get_weather", "delete_account");
        std::fs::write(&path, edited).unwrap();
        assert!(Baseline::load(&path).is_err());
        // An answer without calls keeps the hash earlier versions wrote.
        assert_eq!(content_hash(Some("4"), &[], &[]), sha256(b"4"));
    }
}
