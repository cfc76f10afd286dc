//! A fake OpenAI-compatible model server on 127.0.0.1, real HTTP/1.1 on hyper, for testing
//! clients of model servers (`hangar validate`, the inference gateway) without a GPU.
//!
//! It serves `GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/completions` (both
//! streamed as server-sent events when the request says `"stream": true`, ending with
//! `data: [DONE]`, with a usage chunk when `stream_options.include_usage` is set) and
//! `POST /v1/embeddings`. Answers are deterministic:
//!
//! - chat and completion reply with the scripted answer to the prompt (the last user message,
//!   or the completion prompt), or echo the prompt; `max_tokens` cuts the reply (one token per
//!   word) with `finish_reason: "length"`; `n` (1 to [`MAX_CHOICES`]) gives that many identical
//!   choices, whose stream chunks are interleaved as vLLM sends them;
//! - embeddings are hashed bags of words, normalised, so texts sharing words are close
//!   (`dimensions` in the request, or [`FakeOpenAiBuilder::embedding_dimensions`], default 64,
//!   at most [`MAX_EMBEDDING_DIMENSIONS`]: a request asking for more gets a 400).
//!
//! Faults can be set before start and changed while it runs, so one test can record answers,
//! flip the server and run again:
//!
//! ```no_run
//! # async fn story() -> std::io::Result<()> {
//! use std::time::Duration;
//! use hangar_testkit::fake_openai::{FakeOpenAi, Faults};
//! let server = FakeOpenAi::builder()
//!     .model("support-bot")
//!     .reply_to("What is 2+2?", "4")
//!     .start()
//!     .await?;
//! // … point a client at server.url() …
//! server.set_faults(Faults { drift: true, chunk_delay: Duration::from_millis(50), ..Faults::default() });
//! // … the same questions now get other answers, streamed slowly …
//! assert_eq!(server.requests()[0].path, "/v1/chat/completions");
//! # Ok(()) }
//! ```
//!
//! Requests for a model the server does not list get vLLM's 404; a server built with
//! [`FakeOpenAiBuilder::require_api_key`] answers 401 to a missing or wrong bearer token.

mod answers;
mod http;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use answers::{DEFAULT_DRIFTED_REPLY, embed};
use answers::{Script, Scripted};

/// The model served when the builder names none.
pub const DEFAULT_MODEL: &str = "fake-model";

/// The longest embedding the fake makes; a request asking for more gets a 400, so a test
/// cannot make it allocate without bound.
pub const MAX_EMBEDDING_DIMENSIONS: usize = 4096;

/// The most choices (`n`) one request may ask for; more gets a 400.
pub const MAX_CHOICES: u64 = 8;

/// Misbehaviour to inject. Every field off (the default) is a healthy server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Wait this long before answering any request (before the response head).
    pub latency: Duration,
    /// Wait this long before each chunk of a stream (the first included), and before the body of
    /// a non-streamed answer.
    pub chunk_delay: Duration,
    /// Answer every request with this status and an OpenAI error body (`{"error": {…}}`).
    pub status: Option<u16>,
    /// With `status`, only this many requests get it; then the server answers normally again
    /// (a server that restarts, a rate limit that lifts). `None`: every request.
    pub status_count: Option<usize>,
    /// With `status`, send this `Retry-After` header value (`"2"`, an HTTP date…).
    pub retry_after: Option<String>,
    /// Answer 200 with a body that is not JSON; a stream sends one chunk that is not JSON.
    pub malformed_json: bool,
    /// Drop the connection after this many stream chunks; a non-streamed answer is cut after
    /// half its body.
    pub disconnect_after_chunks: Option<usize>,
    /// Answer differently: drifted replies ([`FakeOpenAiBuilder::drifted_reply_to`], else
    /// [`DEFAULT_DRIFTED_REPLY`]) and embeddings hashed with another seed.
    pub drift: bool,
    /// Answer every chat, completion and embedding request (one with a known model) 200 with
    /// exactly this body, as `text/event-stream` when the request streams, else as
    /// `application/json`: for what no healthy server sends (odd chunks, numbers past `f32`, a
    /// body too large, a stream cut after `data: [DONE]`).
    pub raw_body: Option<Arc<str>>,
    /// Answer every request, whatever its method, path, model or key, with this status and
    /// exactly this body (as `text/html` when it starts with `<`, else `application/json`):
    /// what a server that is not the model server sends behind a wrong path prefix or the wrong
    /// Service (nginx's HTML 404 page, FastAPI's `{"detail": "Not Found"}`), or another model
    /// server's error shape (vLLM's `{"object": "error", …}`, Ollama's `{"error": "…"}`).
    pub raw_answer: Option<(u16, Arc<str>)>,
    /// Label every answer with this `content-encoding` (its body unchanged): what a compressing
    /// proxy in front of a model server sends.
    pub content_encoding: Option<Arc<str>>,
    /// Add this header to every answer: what a proxy in front of a model server may add (a
    /// large cookie, tracing baggage).
    pub header: Option<(Arc<str>, Arc<str>)>,
    /// The model's context, in the fake's tokens: a request whose prompt plus `max_tokens` is
    /// longer is refused with vLLM's 400, and one without `max_tokens` generates at most what
    /// is left of it, as vLLM does.
    pub context_length: Option<u64>,
}

/// One request the server received, recorded before it was answered.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedRequest {
    pub method: String,
    /// The path without the query, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl ReceivedRequest {
    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, when it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// Declares what the fake server knows before it starts.
#[derive(Debug, Default)]
pub struct FakeOpenAiBuilder {
    models: Vec<String>,
    script: Script,
    embedding_dimensions: Option<usize>,
    api_key: Option<String>,
    faults: Faults,
}

impl FakeOpenAiBuilder {
    /// Serves `name` (listed by `/v1/models`, accepted in requests). With none, the server
    /// serves [`DEFAULT_MODEL`].
    pub fn model(mut self, name: &str) -> Self {
        self.models.push(name.to_owned());
        self
    }

    /// Any model answers `reply` to `prompt` (compared without surrounding whitespace).
    pub fn reply_to(self, prompt: &str, reply: &str) -> Self {
        self.script_reply(None, prompt, reply, false)
    }

    /// `model` answers `reply` to `prompt`; wins over [`reply_to`](Self::reply_to).
    pub fn reply_for(self, model: &str, prompt: &str, reply: &str) -> Self {
        self.script_reply(Some(model), prompt, reply, false)
    }

    /// What any model answers to `prompt` while [`Faults::drift`] is on.
    pub fn drifted_reply_to(self, prompt: &str, reply: &str) -> Self {
        self.script_reply(None, prompt, reply, true)
    }

    fn script_reply(mut self, model: Option<&str>, prompt: &str, reply: &str, drift: bool) -> Self {
        let scripted = Scripted {
            model: model.map(str::to_owned),
            prompt: prompt.to_owned(),
            reply: reply.to_owned(),
        };
        if drift {
            self.script.drifted.push(scripted);
        } else {
            self.script.replies.push(scripted);
        }
        self
    }

    /// The length of embedding vectors when the request sets no `dimensions` (default 64,
    /// kept between 1 and [`MAX_EMBEDDING_DIMENSIONS`]).
    pub fn embedding_dimensions(mut self, dimensions: usize) -> Self {
        self.embedding_dimensions = Some(dimensions.clamp(1, MAX_EMBEDDING_DIMENSIONS));
        self
    }

    /// Answers 401 unless the request carries `Authorization: Bearer <key>`.
    pub fn require_api_key(mut self, key: &str) -> Self {
        self.api_key = Some(key.to_owned());
        self
    }

    /// Starts with these faults (see [`FakeOpenAiServer::set_faults`] to change them later).
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Binds 127.0.0.1 on a free port and serves on the current tokio runtime until the
    /// returned server is dropped.
    pub async fn start(self) -> std::io::Result<FakeOpenAiServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let models = if self.models.is_empty() {
            vec![DEFAULT_MODEL.to_owned()]
        } else {
            self.models
        };
        let state = Arc::new(http::State {
            models,
            script: self.script,
            embedding_dimensions: self.embedding_dimensions.unwrap_or(64),
            api_key: self.api_key,
            faults: Mutex::new(self.faults),
            requests: Mutex::new(Vec::new()),
            connections: AtomicU64::new(0),
        });
        let task = tokio::spawn(http::serve(listener, Arc::clone(&state)));
        Ok(FakeOpenAiServer {
            address,
            state,
            task,
        })
    }
}

/// A running fake model server. Stops, closing every connection, when dropped.
#[derive(Debug)]
pub struct FakeOpenAiServer {
    address: SocketAddr,
    state: Arc<http::State>,
    task: JoinHandle<()>,
}

/// The builder's entry point: `FakeOpenAi::builder()`.
#[derive(Debug)]
pub struct FakeOpenAi;

impl FakeOpenAi {
    pub fn builder() -> FakeOpenAiBuilder {
        FakeOpenAiBuilder::default()
    }
}

impl FakeOpenAiServer {
    /// `http://127.0.0.1:<port>` (append `/v1/…`).
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        lock(&self.state.faults).clone()
    }

    /// Replaces the faults; requests that arrive afterwards see them.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.state.faults) = faults;
    }

    /// Changes some faults in place: `server.update_faults(|f| f.drift = true)`.
    pub fn update_faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut lock(&self.state.faults));
    }

    /// Back to a healthy server.
    pub fn clear_faults(&self) {
        self.set_faults(Faults::default());
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        lock(&self.state.requests).clone()
    }

    /// How many requests arrived so far.
    pub fn request_count(&self) -> usize {
        lock(&self.state.requests).len()
    }

    /// How many connections clients opened so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// Forgets the requests received so far.
    pub fn clear_requests(&self) {
        lock(&self.state.requests).clear();
    }
}

impl Drop for FakeOpenAiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A poisoned lock only means a test panicked elsewhere; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
