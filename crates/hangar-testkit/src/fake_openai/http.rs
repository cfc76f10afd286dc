//! The server: hyper HTTP/1.1 connections, routing, faults, and bodies that arrive over time.

use std::convert::Infallible;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::answers::{self, Script};
use super::{Faults, MAX_CHOICES, MAX_EMBEDDING_DIMENSIONS, ReceivedRequest, lock};

type Body = BoxBody<Bytes, io::Error>;

/// What the server knows and what it has seen.
#[derive(Debug)]
pub(crate) struct State {
    pub models: Vec<String>,
    pub script: Script,
    pub embedding_dimensions: usize,
    pub api_key: Option<String>,
    pub faults: Mutex<Faults>,
    pub requests: Mutex<Vec<ReceivedRequest>>,
    /// Connections accepted so far.
    pub connections: AtomicU64,
}

/// Numbers the ids of answers (`chatcmpl-fake-1`…), across servers: ids only need to differ.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) async fn serve(listener: TcpListener, state: Arc<State>) {
    // Owning the connections here means aborting this task closes every one of them.
    let mut connections = JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        state.connections.fetch_add(1, Ordering::Relaxed);
        // Small chunks must not wait on Nagle's algorithm; failing to set it only slows.
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        connections.spawn(async move {
            let service = service_fn(move |request| handle(Arc::clone(&state), request));
            // A client hanging up, or a fault dropping the connection, ends only this one.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = request.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    lock(&state.requests).push(ReceivedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    });
    let faults = faults_for_one_request(&state);
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    let mut response = route(&state, &faults, &parts, &bytes);
    if let Some(encoding) = faults
        .content_encoding
        .as_deref()
        .and_then(|e| http::HeaderValue::from_str(e).ok())
    {
        response
            .headers_mut()
            .insert(http::header::CONTENT_ENCODING, encoding);
    }
    if let Some((name, value)) = &faults.header
        && let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        )
    {
        response.headers_mut().insert(name, value);
    }
    Ok(response)
}

/// The faults this request sees; counts it against `status_count`, and clears both once it is
/// spent, so that a later `update_faults` starts afresh.
fn faults_for_one_request(state: &State) -> Faults {
    let mut shared = lock(&state.faults);
    let mut faults = shared.clone();
    if let (Some(_), Some(left)) = (shared.status, shared.status_count) {
        if left == 0 {
            faults.status = None;
        }
        if left <= 1 {
            shared.status = None;
            shared.status_count = None;
        } else {
            shared.status_count = Some(left - 1);
        }
    }
    faults
}

fn route(
    state: &State,
    faults: &Faults,
    parts: &http::request::Parts,
    body: &[u8],
) -> Response<Body> {
    if let Some((status, raw)) = &faults.raw_answer {
        let content_type = if raw.trim_start().starts_with('<') {
            "text/html"
        } else {
            "application/json"
        };
        return with_body(*status, content_type, full_body(raw.as_bytes().to_vec()));
    }
    if let Some(key) = &state.api_key {
        let sent = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if sent != Some(key.as_str()) {
            return error(401, "Incorrect API key provided.");
        }
    }
    if let Some(status) = faults.status {
        let mut response = error(status, "The fake server was told to fail.");
        if let Some(value) = faults
            .retry_after
            .as_deref()
            .and_then(|v| http::HeaderValue::from_str(v).ok())
        {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
        return response;
    }
    let path = parts.uri.path();
    let endpoint = match path {
        "/v1/models" => return allow(&parts.method, Method::GET, || models(state)),
        "/v1/chat/completions" => Endpoint::Chat,
        "/v1/completions" => Endpoint::Completion,
        "/v1/embeddings" => Endpoint::Embedding,
        _ => return error(404, &format!("No route for {path}.")),
    };
    if parts.method != Method::POST {
        return error(405, "Method Not Allowed");
    }
    let request: Value = match serde_json::from_slice(body) {
        Ok(value @ Value::Object(_)) => value,
        _ => return error(400, "The request body is not a JSON object."),
    };
    let model = match request.get("model").and_then(Value::as_str) {
        Some(model) if state.models.iter().any(|m| m == model) => model.to_owned(),
        Some(model) => return error(404, &format!("The model `{model}` does not exist.")),
        None => return error(400, "`model` is required."),
    };
    if let Some(raw) = &faults.raw_body {
        return raw_response(raw, &request);
    }
    match endpoint {
        Endpoint::Embedding => embeddings(state, faults, &model, &request),
        text => generate(state, faults, text, &model, &request),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Completion,
    Embedding,
}

fn allow(
    method: &Method,
    wanted: Method,
    answer: impl FnOnce() -> Response<Body>,
) -> Response<Body> {
    if *method == wanted {
        answer()
    } else {
        error(405, "Method Not Allowed")
    }
}

fn models(state: &State) -> Response<Body> {
    let data: Vec<Value> = state
        .models
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "hangar-testkit"}))
        .collect();
    json_response(200, &json!({"object": "list", "data": data}))
}

/// A chat or completion answer, whole or streamed.
fn generate(
    state: &State,
    faults: &Faults,
    endpoint: Endpoint,
    model: &str,
    request: &Value,
) -> Response<Body> {
    let prompt = match endpoint {
        Endpoint::Chat => answers::chat_prompt(request),
        _ => answers::completion_prompt(request),
    };
    let Some(prompt) = prompt else {
        let needed = if endpoint == Endpoint::Chat {
            "`messages` with a user message"
        } else {
            "`prompt`"
        };
        // Named, as real servers' messages often name the model: the gateway must not pass
        // its upstream name on.
        return error(400, &format!("`{model}` needs {needed}."));
    };
    let mut max_tokens = request
        .get("max_tokens")
        .or_else(|| request.get("max_completion_tokens"))
        .and_then(Value::as_u64);
    let prompt_tokens = answers::count_tokens(&prompt);
    if let Some(context) = faults.context_length {
        let asked = max_tokens.unwrap_or(1);
        if prompt_tokens + asked > context {
            let message = format!(
                "'max_tokens' or 'max_completion_tokens' is too large: {asked}. This model's \
                 maximum context length is {context} tokens and your request has \
                 {prompt_tokens} input tokens ({asked} > {context} - {prompt_tokens})."
            );
            return error(400, &message);
        }
        max_tokens.get_or_insert(context - prompt_tokens);
    }
    let choices = match request.get("n").map(Value::as_u64) {
        None => 1,
        Some(Some(n @ 1..=MAX_CHOICES)) => n as usize,
        Some(_) => {
            return error(
                400,
                &format!("`n` must be an integer from 1 to {MAX_CHOICES}."),
            );
        }
    };
    let reply = state.script.reply(model, &prompt, faults.drift);
    let (pieces, finish_reason) = answers::limit(reply, max_tokens);
    let answer = Generated {
        endpoint,
        id: format!(
            "{}-fake-{}",
            if endpoint == Endpoint::Chat {
                "chatcmpl"
            } else {
                "cmpl"
            },
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        ),
        created: now(),
        model: model.to_owned(),
        prompt_tokens,
        pieces,
        finish_reason,
        choices,
    };
    if request.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = request
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true);
        stream_response(answer.events(include_usage), faults)
    } else {
        whole_response(&answer.body(), faults)
    }
}

/// A generated answer, before it is shaped as a body or as stream chunks.
struct Generated {
    endpoint: Endpoint,
    id: String,
    created: u64,
    model: String,
    prompt_tokens: u64,
    pieces: Vec<String>,
    finish_reason: &'static str,
    /// `n`: how many (identical) choices.
    choices: usize,
}

impl Generated {
    fn usage(&self) -> Value {
        answers::usage(
            self.prompt_tokens,
            (self.pieces.len() * self.choices) as u64,
        )
    }

    fn body(&self) -> Value {
        let text = self.pieces.concat();
        let object = match self.endpoint {
            Endpoint::Chat => "chat.completion",
            _ => "text_completion",
        };
        let choices: Vec<Value> = (0..self.choices)
            .map(|index| match self.endpoint {
                Endpoint::Chat => {
                    json!({"index": index, "message": {"role": "assistant", "content": text},
                           "logprobs": null, "finish_reason": self.finish_reason})
                }
                _ => json!({"index": index, "text": text, "logprobs": null,
                            "finish_reason": self.finish_reason}),
            })
            .collect();
        json!({"id": self.id, "object": object, "created": self.created, "model": self.model,
               "choices": choices, "usage": self.usage()})
    }

    /// The stream: a role chunk (chat), a chunk per token, a finishing chunk, the usage chunk
    /// when asked, and `[DONE]`. With `n > 1` each step has a chunk per choice, one after the
    /// other.
    fn events(&self, include_usage: bool) -> Vec<String> {
        let mut events = Vec::new();
        let indices = 0..self.choices;
        if self.endpoint == Endpoint::Chat {
            for index in indices.clone() {
                events.push(self.chunk(index, json!({"role": "assistant", "content": ""}), None));
            }
        }
        for piece in &self.pieces {
            for index in indices.clone() {
                events.push(self.chunk(index, json!(piece), None));
            }
        }
        for index in indices {
            events.push(self.chunk(index, json!(null), Some(self.finish_reason)));
        }
        if include_usage {
            events.push(sse(&json!({"id": self.id, "object": self.chunk_object(),
                "created": self.created, "model": self.model, "choices": [],
                "usage": self.usage()})));
        }
        events.push("data: [DONE]\n\n".to_owned());
        events
    }

    fn chunk_object(&self) -> &'static str {
        match self.endpoint {
            Endpoint::Chat => "chat.completion.chunk",
            _ => "text_completion",
        }
    }

    /// One chunk: for chat `content` is the delta (an object, or null for the empty final
    /// delta); for completion it is the text piece.
    fn chunk(&self, index: usize, content: Value, finish_reason: Option<&str>) -> String {
        let choice = match self.endpoint {
            Endpoint::Chat => {
                let delta = match content {
                    Value::Null => json!({}),
                    Value::String(piece) => json!({"content": piece}),
                    delta => delta,
                };
                json!({"index": index, "delta": delta, "logprobs": null, "finish_reason": finish_reason})
            }
            _ => json!({"index": index, "text": content.as_str().unwrap_or_default(),
                        "logprobs": null, "finish_reason": finish_reason}),
        };
        sse(
            &json!({"id": self.id, "object": self.chunk_object(), "created": self.created,
                    "model": self.model, "choices": [choice]}),
        )
    }
}

fn embeddings(state: &State, faults: &Faults, model: &str, request: &Value) -> Response<Body> {
    let Some(inputs) = answers::embedding_inputs(request) else {
        return error(400, "`input` must be a string or an array of strings.");
    };
    let dimensions = match request.get("dimensions").map(Value::as_u64) {
        None => state.embedding_dimensions,
        Some(Some(d)) if (1..=MAX_EMBEDDING_DIMENSIONS as u64).contains(&d) => d as usize,
        Some(_) => {
            return error(
                400,
                &format!("`dimensions` must be an integer from 1 to {MAX_EMBEDDING_DIMENSIONS}."),
            );
        }
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            json!({"object": "embedding", "index": index,
                   "embedding": answers::embed(text, dimensions, faults.drift)})
        })
        .collect();
    let tokens: u64 = inputs.iter().map(|t| answers::count_tokens(t)).sum();
    let body = json!({"object": "list", "data": data, "model": model,
                      "usage": {"prompt_tokens": tokens, "total_tokens": tokens}});
    whole_response(&body, faults)
}

/// A JSON answer, with the body faults applied.
fn whole_response(body: &Value, faults: &Faults) -> Response<Body> {
    let mut bytes = body.to_string().into_bytes();
    if faults.malformed_json {
        // Cut inside the first object: valid start, never valid JSON.
        bytes.truncate(bytes.len() / 2);
    }
    if faults.disconnect_after_chunks.is_none() && faults.chunk_delay.is_zero() {
        return json_response_bytes(200, bytes);
    }
    let chunks = if faults.disconnect_after_chunks.is_some() {
        let half = bytes.split_off(bytes.len() / 2);
        vec![bytes, half]
    } else {
        vec![bytes]
    };
    let cut_after = faults.disconnect_after_chunks.map(|_| 1);
    let body = delayed_body(chunks, faults.chunk_delay, cut_after);
    with_body(200, "application/json", body)
}

/// The `raw_body` fault: these bytes, as a stream when one was asked for.
fn raw_response(raw: &str, request: &Value) -> Response<Body> {
    let streamed = request.get("stream").and_then(Value::as_bool) == Some(true);
    let content_type = if streamed {
        "text/event-stream"
    } else {
        "application/json"
    };
    with_body(200, content_type, full_body(raw.as_bytes().to_vec()))
}

/// A server-sent-event stream, with the stream faults applied.
fn stream_response(mut events: Vec<String>, faults: &Faults) -> Response<Body> {
    if faults.malformed_json
        && let Some(first) = events.first_mut()
    {
        *first = "data: {\"choices\": [{\"delta\": {\"content\": \"oops\"\n\n".into();
    }
    let chunks = events.into_iter().map(String::into_bytes).collect();
    let body = delayed_body(chunks, faults.chunk_delay, faults.disconnect_after_chunks);
    let mut response = with_body(200, "text/event-stream", body);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, http::HeaderValue::from_static("no-cache"));
    response
}

/// A body whose chunks are sent one by one, each after `delay`; after `cut_after` chunks the
/// body fails, which makes hyper drop the connection mid-answer.
fn delayed_body(chunks: Vec<Vec<u8>>, delay: Duration, cut_after: Option<usize>) -> Body {
    let (sender, mut receiver) = mpsc::channel::<Result<Frame<Bytes>, io::Error>>(4);
    tokio::spawn(async move {
        for (sent, chunk) in chunks.into_iter().enumerate() {
            if cut_after == Some(sent) {
                // Let hyper flush the chunks already sent, so the client sees exactly them.
                tokio::time::sleep(Duration::from_millis(20)).await;
                let cut = io::Error::new(io::ErrorKind::ConnectionAborted, "fault: disconnect");
                let _ = sender.send(Err(cut)).await;
                return;
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if sender
                .send(Ok(Frame::data(Bytes::from(chunk))))
                .await
                .is_err()
            {
                return; // the client went away
            }
        }
    });
    let frames = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    StreamBody::new(frames).boxed()
}

fn sse(value: &Value) -> String {
    format!("data: {value}\n\n")
}

fn error(status: u16, message: &str) -> Response<Body> {
    json_response(status, &answers::error_body(status, message))
}

fn json_response(status: u16, body: &Value) -> Response<Body> {
    json_response_bytes(status, body.to_string().into_bytes())
}

fn json_response_bytes(status: u16, bytes: Vec<u8>) -> Response<Body> {
    with_body(status, "application/json", full_body(bytes))
}

fn full_body(bytes: Vec<u8>) -> Body {
    Full::new(Bytes::from(bytes))
        .map_err(|never| match never {})
        .boxed()
}

fn with_body(status: u16, content_type: &'static str, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    response
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
