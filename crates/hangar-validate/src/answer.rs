//! What a server answered, read out of OpenAI-compatible JSON bodies and stream chunks.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::golden::CaseKind;

/// The answer to one golden request, reduced to what expectations compare.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// The answer text: the first choice's `message.content` (chat) or `text` (completion),
    /// streamed chunks concatenated. `None` for embeddings and error bodies.
    pub text: Option<String>,
    /// The functions the first choice calls (chat with `tools`), streamed pieces joined.
    pub tool_calls: Vec<ToolCall>,
    /// The stream's `index` of each of `tool_calls` (streams only), to join a call's pieces.
    pub call_indexes: Vec<u64>,
    /// One vector per input, in input order (embedding cases).
    pub embeddings: Vec<Vec<f32>>,
    /// The first choice's `finish_reason`.
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    /// The model the server says answered.
    pub model: Option<String>,
    /// The message of the API's error body, for an error status.
    pub error_message: Option<String>,
    /// Request sent to last byte read.
    pub latency: Duration,
    /// Request sent to the first stream chunk carrying a generated token (streams only).
    pub ttft: Option<Duration>,
    /// How many `data:` events a stream carried, `[DONE]` excluded.
    pub chunks: usize,
}

/// A function the model asked to call. Similarity compares these beside the text, since an
/// answer that calls a tool often has no text at all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCall {
    pub name: String,
    /// The arguments as the server sent them, normally JSON text.
    pub arguments: String,
}

impl std::fmt::Display for ToolCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.name, self.arguments)
    }
}

/// The calls, one `name(arguments)` a line, for comparison and reports.
pub fn calls_text(calls: &[ToolCall]) -> String {
    calls
        .iter()
        .map(ToolCall::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Token counts as the server reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
}

impl Answer {
    /// The tokens `max_tokens_used` limits: generated tokens, or for embeddings all tokens.
    pub fn tokens_used(&self, kind: CaseKind) -> Option<u64> {
        let usage = self.usage?;
        match kind {
            CaseKind::Embedding => usage.total_tokens.or(usage.prompt_tokens),
            CaseKind::Chat | CaseKind::Completion => usage.completion_tokens,
        }
    }

    /// The bytes of text and tool calls a stream has built up, which the body limit bounds.
    pub fn content_bytes(&self) -> usize {
        let calls: usize = self
            .tool_calls
            .iter()
            .map(|call| call.name.len() + call.arguments.len())
            .sum();
        self.text.as_ref().map_or(0, String::len) + calls
    }

    /// A short description of the answer for reports.
    pub fn summary(&self) -> String {
        // An answer that only calls tools is shown by its calls rather than as nothing.
        if !self.tool_calls.is_empty() && self.text.as_deref().unwrap_or_default().is_empty() {
            return crate::compare::excerpt(&calls_text(&self.tool_calls));
        }
        if let Some(text) = &self.text {
            return crate::compare::excerpt(text);
        }
        if let Some(first) = self.embeddings.first() {
            return format!(
                "{} embedding(s) of {} dimensions",
                self.embeddings.len(),
                first.len()
            );
        }
        self.error_message
            .as_deref()
            .map(crate::compare::excerpt)
            .unwrap_or_default()
    }
}

/// Reads a whole (non-streamed) successful body into `answer`.
pub fn read_body(kind: CaseKind, body: &Value, answer: &mut Answer) -> Result<(), String> {
    answer.model = body.get("model").and_then(Value::as_str).map(str::to_owned);
    answer.usage = read_usage(body)?;
    match kind {
        CaseKind::Chat | CaseKind::Completion => {
            let choice = first_choice(body)?;
            answer.text = Some(choice_text(kind, choice, false)?.unwrap_or_default());
            if let Some(message) = choice.get("message") {
                answer.tool_calls = message_tool_calls(message);
            }
            answer.finish_reason = finish_reason(choice);
        }
        CaseKind::Embedding => answer.embeddings = read_embeddings(body)?,
    }
    Ok(())
}

/// The message of an error a stream chunk carries, if it carries one: some servers send
/// `"error": null` on every chunk, which is no error.
pub fn stream_error(chunk: &Value) -> Option<String> {
    chunk
        .get("error")
        .filter(|error| !error.is_null())
        .map(|error| format!("the stream carried an error: {}", error_text(error)))
}

/// Adds one stream chunk to `answer`; returns whether it carried a generated token: text,
/// reasoning, or a piece of a tool call (a stream that only calls a tool has no text at all).
/// Only the first choice (`index` 0, or no index) counts: with `n > 1` the other choices'
/// chunks are interleaved.
pub fn read_chunk(kind: CaseKind, chunk: &Value, answer: &mut Answer) -> Result<bool, String> {
    if answer.model.is_none() {
        answer.model = chunk
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    if let Some(usage) = read_usage(chunk)? {
        answer.usage = Some(usage);
    }
    let choices = chunk
        .get("choices")
        .and_then(Value::as_array)
        .ok_or("a stream chunk has no `choices` array")?;
    // The usage chunk of `include_usage` has no choices; a chunk of another choice is not ours.
    let Some(choice) = first_choice_of(choices) else {
        return Ok(false);
    };
    if let Some(reason) = finish_reason(choice) {
        answer.finish_reason = Some(reason);
    }
    let mut generated = false;
    if let Some(delta) = choice.get("delta") {
        generated |= add_tool_call_pieces(delta, answer);
        // vLLM and SGLang stream a reasoning model's thinking apart from its answer.
        generated |= ["reasoning_content", "reasoning"].iter().any(|field| {
            delta
                .get(field)
                .and_then(Value::as_str)
                .is_some_and(|r| !r.is_empty())
        });
    }
    let piece = choice_text(kind, choice, true)?.unwrap_or_default();
    let text = answer.text.get_or_insert_with(String::new);
    text.push_str(&piece);
    Ok(generated || !piece.is_empty())
}

/// The message of an error body, or the body's start when it is not the API's error.
pub fn error_message(body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => Some(
            api_error_message(&value)
                .unwrap_or_else(|| crate::compare::excerpt(&value.to_string())),
        ),
        Err(_) => Some(crate::compare::excerpt(&String::from_utf8_lossy(body))),
    }
}

/// The message of an error body as model servers write it: a JSON object with an `error`
/// (OpenAI and llama.cpp `{"error": {"message": …}}`, Ollama and TGI `{"error": "…"}`), a
/// `message` beside `"object": "error"` (vLLM, SGLang, LMDeploy), or a FastAPI `detail`
/// (Triton's OpenAI frontend, Xinference: `{"detail": "Unknown model: x"}`). `None` for
/// anything else: an HTML page, a gateway's `{"message": "no Route matched…"}` (Kong, AWS API
/// Gateway), or FastAPI's own answer for a path no route serves (`{"detail": "Not Found"}`).
pub fn api_error_message(body: &Value) -> Option<String> {
    let object = body.as_object()?;
    if let Some(error @ (Value::String(_) | Value::Object(_))) = object.get("error") {
        return Some(error_text(error));
    }
    if object.get("object").and_then(Value::as_str) == Some("error") {
        return object
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    match object.get("detail")? {
        Value::String(detail) if matches!(detail.as_str(), "Not Found" | "Method Not Allowed") => {
            None
        }
        Value::String(detail) => Some(detail.clone()),
        // A request FastAPI's validation refused: a list of what was wrong.
        detail @ Value::Array(_) => Some(detail.to_string()),
        _ => None,
    }
}

/// OpenAI puts an object with a message under `error`; some servers put a plain string.
fn error_text(error: &Value) -> String {
    match error {
        Value::String(message) => message.clone(),
        other => other
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| other.to_string()),
    }
}

fn first_choice(body: &Value) -> Result<&Value, String> {
    body.get("choices")
        .and_then(Value::as_array)
        .and_then(|choices| first_choice_of(choices))
        .ok_or_else(|| "the body has no `choices[0]`".to_owned())
}

/// The choice whose `index` is 0, or that has no index (a server that only ever sends one).
fn first_choice_of(choices: &[Value]) -> Option<&Value> {
    choices.iter().find(|choice| match choice.get("index") {
        None | Some(Value::Null) => true,
        Some(index) => index.as_u64() == Some(0),
    })
}

/// The text of a choice; `None` when the model answered without content (e.g. tool calls).
fn choice_text(kind: CaseKind, choice: &Value, streamed: bool) -> Result<Option<String>, String> {
    let (value, path) = match (kind, streamed) {
        (CaseKind::Chat, false) => (
            choice.get("message").and_then(|m| m.get("content")),
            "choices[0].message.content",
        ),
        (CaseKind::Chat, true) => (
            choice.get("delta").and_then(|d| d.get("content")),
            "choices[0].delta.content",
        ),
        _ => (choice.get("text"), "choices[0].text"),
    };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(format!("`{path}` is not a string: {other}")),
    }
}

/// The calls of a whole chat message: `tool_calls`, or the older single `function_call`.
fn message_tool_calls(message: &Value) -> Vec<ToolCall> {
    let mut calls: Vec<ToolCall> = array_of(message, "tool_calls")
        .iter()
        .filter_map(|call| call.get("function"))
        .map(tool_call)
        .collect();
    calls.extend(
        message
            .get("function_call")
            .filter(|f| f.is_object())
            .map(tool_call),
    );
    calls
}

/// Adds a stream delta's call pieces to `calls`: each piece names its call by `index`, and
/// names and arguments come in pieces to append, as OpenAI streams them.
/// Returns whether a piece carried some of a call's name or arguments.
fn add_tool_call_pieces(delta: &Value, answer: &mut Answer) -> bool {
    let mut pieces = Vec::new();
    for (position, piece) in array_of(delta, "tool_calls").iter().enumerate() {
        let index = (piece.get("index").and_then(Value::as_u64))
            .unwrap_or_else(|| u64::try_from(position).unwrap_or(u64::MAX));
        if let Some(function) = piece.get("function") {
            pieces.push((index, tool_call(function)));
        }
    }
    // The older `function_call` streams one call, without an index.
    if let Some(function) = delta.get("function_call").filter(|f| f.is_object()) {
        pieces.push((u64::MAX, tool_call(function)));
    }
    let mut carried = false;
    for (index, piece) in &pieces {
        carried |= !piece.name.is_empty() || !piece.arguments.is_empty();
        append_piece(answer, *index, piece);
    }
    carried
}

/// Appends a piece to the call the stream names `index`, starting that call when it is new
/// (whatever the number: a server may count from 1, or skip).
fn append_piece(answer: &mut Answer, index: u64, piece: &ToolCall) {
    let at = match answer.call_indexes.iter().position(|seen| *seen == index) {
        Some(at) => at,
        None => {
            answer.call_indexes.push(index);
            answer.tool_calls.push(ToolCall::default());
            answer.tool_calls.len() - 1
        }
    };
    if let Some(call) = answer.tool_calls.get_mut(at) {
        call.name.push_str(&piece.name);
        call.arguments.push_str(&piece.arguments);
    }
}

/// A `function` object's name and arguments; arguments that are not a string (some servers
/// send an object) are kept as JSON text.
fn tool_call(function: &Value) -> ToolCall {
    ToolCall {
        name: string_of(function.get("name")),
        arguments: string_of(function.get("arguments")),
    }
}

fn string_of(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

/// The array under `key`, or none when it is absent or not an array.
fn array_of<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn finish_reason(choice: &Value) -> Option<String> {
    choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn read_usage(body: &Value) -> Result<Option<Usage>, String> {
    match body.get("usage") {
        None | Some(Value::Null) => Ok(None),
        Some(usage) => serde_json::from_value(usage.clone())
            .map(Some)
            .map_err(|err| format!("`usage` is malformed: {err}")),
    }
}

fn read_embeddings(body: &Value) -> Result<Vec<Vec<f32>>, String> {
    let data = body
        .get("data")
        .and_then(Value::as_array)
        .ok_or("the body has no `data` array")?;
    let mut indexed = Vec::with_capacity(data.len());
    for (position, item) in data.iter().enumerate() {
        let index = item
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position as u64);
        let vector = match item.get("embedding") {
            Some(Value::Array(numbers)) => read_vector(position, numbers)?,
            Some(Value::String(_)) => {
                return Err(
                    "base64 embeddings are not supported: drop `encoding_format` from the request"
                        .into(),
                );
            }
            _ => return Err(format!("`data[{position}].embedding` is not an array")),
        };
        indexed.push((index, vector));
    }
    indexed.sort_by_key(|(index, _)| *index);
    Ok(indexed.into_iter().map(|(_, vector)| vector).collect())
}

/// A vector of finite `f32`s: a value past `f32`'s range would become infinite and poison every
/// similarity (and the baseline, whose JSON cannot hold it).
fn read_vector(position: usize, numbers: &[Value]) -> Result<Vec<f32>, String> {
    numbers
        .iter()
        .enumerate()
        .map(|(i, number)| {
            let place = format!("`data[{position}].embedding[{i}]`");
            let value = number
                .as_f64()
                .ok_or_else(|| format!("{place} is not a number: {number}"))?;
            let narrowed = value as f32;
            if narrowed.is_finite() {
                Ok(narrowed)
            } else {
                Err(format!(
                    "{place} is {value:e}, beyond the range of a 32-bit float"
                ))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_chat_body_gives_its_content_finish_reason_and_usage() {
        let body = json!({
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
        });
        let mut answer = Answer::default();
        read_body(CaseKind::Chat, &body, &mut answer).unwrap();
        assert_eq!(answer.text.as_deref(), Some("4"));
        assert_eq!(answer.finish_reason.as_deref(), Some("stop"));
        assert_eq!(answer.tokens_used(CaseKind::Chat), Some(1));
        assert_eq!(answer.model.as_deref(), Some("m"));
    }

    #[test]
    fn a_body_without_choices_is_an_error() {
        let mut answer = Answer::default();
        let err = read_body(CaseKind::Completion, &json!({"id": "x"}), &mut answer).unwrap_err();
        assert!(err.contains("choices[0]"), "{err}");
    }

    #[test]
    fn embeddings_come_back_in_input_order() {
        let body = json!({"data": [
            {"index": 1, "embedding": [0.0, 1.0]},
            {"index": 0, "embedding": [1.0, 0.0]}
        ], "usage": {"prompt_tokens": 3, "total_tokens": 3}});
        let mut answer = Answer::default();
        read_body(CaseKind::Embedding, &body, &mut answer).unwrap();
        assert_eq!(answer.embeddings, [vec![1.0, 0.0], vec![0.0, 1.0]]);
        assert_eq!(answer.tokens_used(CaseKind::Embedding), Some(3));
        let base64 = json!({"data": [{"index": 0, "embedding": "AAAA"}]});
        assert!(read_body(CaseKind::Embedding, &base64, &mut answer).is_err());
    }

    #[test]
    fn stream_chunks_accumulate() {
        let mut answer = Answer::default();
        let role = json!({"choices": [{"delta": {"role": "assistant"}, "finish_reason": null}]});
        assert!(!read_chunk(CaseKind::Chat, &role, &mut answer).unwrap());
        for piece in ["The answer", " is 4."] {
            let chunk = json!({"choices": [{"delta": {"content": piece}}]});
            assert!(read_chunk(CaseKind::Chat, &chunk, &mut answer).unwrap());
        }
        let last = json!({"choices": [{"delta": {}, "finish_reason": "stop"}]});
        read_chunk(CaseKind::Chat, &last, &mut answer).unwrap();
        let usage = json!({"choices": [], "usage": {"completion_tokens": 4}});
        read_chunk(CaseKind::Chat, &usage, &mut answer).unwrap();
        assert_eq!(answer.text.as_deref(), Some("The answer is 4."));
        assert_eq!(answer.finish_reason.as_deref(), Some("stop"));
        assert_eq!(answer.tokens_used(CaseKind::Chat), Some(4));
    }

    #[test]
    fn a_tool_call_or_reasoning_is_a_first_token_too() {
        let mut answer = Answer::default();
        let opening = json!({"choices": [{"delta": {"role": "assistant", "content": "",
            "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": ""}}]}}]});
        assert!(!read_chunk(CaseKind::Chat, &opening, &mut answer).unwrap());
        let name = json!({"choices": [{"delta": {"content": null,
            "tool_calls": [{"index": 0, "function": {"name": "get_weather"}}]}}]});
        assert!(read_chunk(CaseKind::Chat, &name, &mut answer).unwrap());
        let legacy = json!({"choices": [{"delta": {"function_call": {"arguments": "{}"}}}]});
        assert!(read_chunk(CaseKind::Chat, &legacy, &mut Answer::default()).unwrap());
        for field in ["reasoning_content", "reasoning"] {
            let thinking = json!({"choices": [{"delta": {field: "Let me think"}}]});
            assert!(read_chunk(CaseKind::Chat, &thinking, &mut Answer::default()).unwrap());
            let empty = json!({"choices": [{"delta": {field: ""}}]});
            assert!(!read_chunk(CaseKind::Chat, &empty, &mut Answer::default()).unwrap());
        }
    }

    #[test]
    fn an_error_inside_a_stream_is_reported() {
        let chunk = json!({"error": {"message": "engine died"}});
        assert!(stream_error(&chunk).unwrap().contains("engine died"));
        assert!(stream_error(&json!({"error": "overloaded"})).is_some());
    }

    #[test]
    fn a_null_error_in_a_stream_chunk_is_no_error() {
        let chunk = json!({"error": null, "choices": [{"index": 0, "text": "4"}]});
        assert_eq!(stream_error(&chunk), None);
        let mut answer = Answer::default();
        assert!(read_chunk(CaseKind::Completion, &chunk, &mut answer).unwrap());
        assert_eq!(answer.text.as_deref(), Some("4"));
    }

    #[test]
    fn only_the_first_choice_of_an_n_stream_is_read() {
        let mut answer = Answer::default();
        for (index, piece) in [(0, "The"), (1, "A"), (0, " answer"), (1, " reply")] {
            let chunk = json!({"choices": [{"index": index, "delta": {"content": piece}}]});
            read_chunk(CaseKind::Chat, &chunk, &mut answer).unwrap();
        }
        let both = json!({"choices": [
            {"index": 1, "delta": {"content": " too"}},
            {"index": 0, "delta": {"content": " is 4."}}
        ]});
        read_chunk(CaseKind::Chat, &both, &mut answer).unwrap();
        assert_eq!(answer.text.as_deref(), Some("The answer is 4."));
        let body = json!({"choices": [
            {"index": 1, "text": "other", "finish_reason": "length"},
            {"index": 0, "text": "first", "finish_reason": "stop"}
        ]});
        let mut whole = Answer::default();
        read_body(CaseKind::Completion, &body, &mut whole).unwrap();
        assert_eq!(whole.text.as_deref(), Some("first"));
        assert_eq!(whole.finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn embedding_values_beyond_f32_are_a_shape_error() {
        let mut answer = Answer::default();
        let huge = json!({"data": [{"index": 0, "embedding": [0.5, 1e39]}]});
        let err = read_body(CaseKind::Embedding, &huge, &mut answer).unwrap_err();
        assert!(err.contains("`data[0].embedding[1]`"), "{err}");
        assert!(err.contains("32-bit float"), "{err}");
        let text = json!({"data": [{"index": 0, "embedding": [0.5, "NaN"]}]});
        let err = read_body(CaseKind::Embedding, &text, &mut answer).unwrap_err();
        assert!(err.contains("is not a number"), "{err}");
    }

    #[test]
    fn error_bodies_give_their_message() {
        assert_eq!(
            error_message(br#"{"error": {"message": "boom", "type": "server_error"}}"#).as_deref(),
            Some("boom")
        );
        assert_eq!(
            error_message(b"Bad Gateway").as_deref(),
            Some("Bad Gateway")
        );
        assert_eq!(error_message(b""), None);
        assert_eq!(
            error_message(br#"{"object": "error", "message": "no such model"}"#).as_deref(),
            Some("no such model")
        );
    }

    #[test]
    fn an_api_error_carries_an_error_or_a_message() {
        for (body, message) in [
            (
                json!({"error": {"message": "The model `x` does not exist.", "type": "NotFoundError", "param": null, "code": 404}}),
                "The model `x` does not exist.",
            ),
            (
                json!({"object": "error", "message": "The model `x` does not exist.", "type": "NotFoundError", "param": null, "code": 404}),
                "The model `x` does not exist.",
            ),
            (
                json!({"error": "model 'x' not found"}),
                "model 'x' not found",
            ),
            (
                json!({"error": {"code": 404, "message": "model not found", "type": "not_found_error"}}),
                "model not found",
            ),
        ] {
            assert_eq!(api_error_message(&body).as_deref(), Some(message), "{body}");
        }
        for body in [
            json!({"detail": "Not Found"}),
            json!({"error": null}),
            json!("Not Found"),
            json!([]),
        ] {
            assert_eq!(api_error_message(&body), None, "{body}");
        }
    }

    #[test]
    fn tool_calls_are_read_from_a_body_and_from_a_stream() {
        let body = json!({"choices": [{"index": 0, "message": {
            "role": "assistant",
            "content": null,
            "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]
        }, "finish_reason": "tool_calls"}]});
        let mut whole = Answer::default();
        read_body(CaseKind::Chat, &body, &mut whole).unwrap();
        assert_eq!(whole.text.as_deref(), Some(""));
        let weather = ToolCall {
            name: "get_weather".into(),
            arguments: "{\"city\": \"Paris\"}".into(),
        };
        assert_eq!(whole.tool_calls, std::slice::from_ref(&weather));
        assert_eq!(whole.summary(), "get_weather({\"city\": \"Paris\"})");

        let mut streamed = Answer::default();
        for delta in [
            json!({"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                "function": {"name": "get_weather", "arguments": ""}}]}),
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": "}}]}),
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            json!({"tool_calls": [{"index": 7, "function": {"name": "delete_account"}}]}),
        ] {
            let chunk = json!({"choices": [{"index": 0, "delta": delta}]});
            read_chunk(CaseKind::Chat, &chunk, &mut streamed).unwrap();
        }
        // A stray index starts the next call rather than seven empty ones.
        let delete = ToolCall {
            name: "delete_account".into(),
            arguments: String::new(),
        };
        assert_eq!(streamed.tool_calls, [weather, delete]);
        let bytes = "get_weather".len() + "{\"city\": \"Paris\"}".len() + "delete_account".len();
        assert_eq!(streamed.content_bytes(), bytes);

        // A call's pieces join by their index, whatever number the server starts from.
        let mut from_one = Answer::default();
        for delta in [
            json!({"tool_calls": [{"index": 1, "function": {"name": "f"}}]}),
            json!({"tool_calls": [{"index": 1, "function": {"arguments": "{\"a\""}}]}),
            json!({"tool_calls": [{"index": 1, "function": {"arguments": ":1}"}}]}),
        ] {
            let chunk = json!({"choices": [{"index": 0, "delta": delta}]});
            read_chunk(CaseKind::Chat, &chunk, &mut from_one).unwrap();
        }
        assert_eq!(calls_text(&from_one.tool_calls), "f({\"a\":1})");

        let legacy = json!({"choices": [{"message": {"content": null,
            "function_call": {"name": "lookup", "arguments": {"id": 3}}}}]});
        let mut old = Answer::default();
        read_body(CaseKind::Chat, &legacy, &mut old).unwrap();
        assert_eq!(calls_text(&old.tool_calls), "lookup({\"id\":3})");
    }
}
