//! The HTTP side: one request to an OpenAI-compatible server, timed, with the answer read as a
//! whole body or as a server-sent-event stream, and every failure sorted into network errors
//! (nothing usable came back) and protocol errors (something came back that is not the API).

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};
use http::{Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::answer::{self, Answer};
use crate::golden::CaseKind;
use crate::sse::{SseError, SseReader};

/// The most bytes read of one response body, of one stream event, and of a streamed answer's
/// text, unless [`Call::max_body_bytes`] says otherwise: 16 MiB. Past it the case is a
/// `too_large` protocol error, so a runaway server cannot exhaust memory.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Statuses that say the server, or a gateway in front of it, is overloaded, restarting or not
/// there yet: no answer to judge, unless the case expects that status.
pub const UNAVAILABLE_STATUSES: [u16; 4] = [429, 502, 503, 504];

/// Why a request got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum CallError {
    /// Nothing usable came back: the server was unreachable, too slow, or hung up.
    #[error("network error ({kind}): {message}")]
    Network {
        kind: NetworkErrorKind,
        message: String,
        /// How long the server asked to be left alone (`Retry-After` in seconds), if it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_seconds: Option<u64>,
    },
    /// Something came back, but not what the API says: a body that is not JSON, a broken
    /// stream, a JSON body of the wrong shape.
    #[error("protocol error ({kind}): {message}")]
    Protocol {
        kind: ProtocolErrorKind,
        message: String,
    },
}

impl CallError {
    /// Network errors (unavailability included) are worth resending; protocol errors are not.
    pub fn is_network(&self) -> bool {
        matches!(self, CallError::Network { .. })
    }

    fn network(kind: NetworkErrorKind, message: impl Into<String>) -> CallError {
        CallError::Network {
            kind,
            message: message.into(),
            retry_after_seconds: None,
        }
    }

    /// The pause the server asked for before a retry, if any.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            CallError::Network {
                retry_after_seconds: Some(seconds),
                ..
            } => Some(std::time::Duration::from_secs(*seconds)),
            _ => None,
        }
    }

    fn protocol(kind: ProtocolErrorKind, message: impl Into<String>) -> CallError {
        CallError::Protocol {
            kind,
            message: message.into(),
        }
    }
}

/// Kinds of network error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkErrorKind {
    /// Nothing listens on the port.
    Refused,
    /// No complete answer within the timeout.
    Timeout,
    /// The host name does not resolve.
    Dns,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The connection closed or reset before the answer was complete.
    Disconnected,
    /// The server or a gateway answered 429, 502, 503 or 504 (overloaded, restarting, not
    /// ready) to a case that did not expect that status. The message gives `Retry-After` when
    /// the server sent one.
    Unavailable,
    /// Any other transport failure.
    Other,
}

/// Kinds of protocol error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolErrorKind {
    /// A body that is not JSON: of a success status, or of a 404, 405 or redirect (whose body
    /// must be the API's error, else something other than the API answered).
    NotJson,
    /// JSON, but not an OpenAI-compatible answer (no `choices`, no `data`…), or a 404, 405 or
    /// redirect whose body is not the API's error.
    UnexpectedShape,
    /// A stream was asked for and something else came back.
    NotAStream,
    /// The stream broke the SSE format, carried a chunk that is not JSON, or ended without
    /// `data: [DONE]`.
    BadSse,
    /// The server reported an error inside the stream.
    StreamError,
    /// A body, one stream event or a streamed answer's text was larger than the limit
    /// ([`DEFAULT_MAX_BODY_BYTES`] unless set otherwise).
    TooLarge,
}

impl fmt::Display for NetworkErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            NetworkErrorKind::Refused => "refused",
            NetworkErrorKind::Timeout => "timeout",
            NetworkErrorKind::Dns => "dns",
            NetworkErrorKind::Tls => "tls",
            NetworkErrorKind::Disconnected => "disconnected",
            NetworkErrorKind::Unavailable => "unavailable",
            NetworkErrorKind::Other => "other",
        };
        f.write_str(name)
    }
}

impl fmt::Display for ProtocolErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ProtocolErrorKind::NotJson => "not_json",
            ProtocolErrorKind::UnexpectedShape => "unexpected_shape",
            ProtocolErrorKind::NotAStream => "not_a_stream",
            ProtocolErrorKind::BadSse => "bad_sse",
            ProtocolErrorKind::StreamError => "stream_error",
            ProtocolErrorKind::TooLarge => "too_large",
        };
        f.write_str(name)
    }
}

/// The client cannot be set up: a bad URL or no CA certificates for https.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ClientError(pub String);

/// One request to send.
#[derive(Debug, Clone)]
pub struct Call {
    pub kind: CaseKind,
    pub body: Value,
    /// Header names and values, checked when the golden file was loaded.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub stream: bool,
    pub timeout: Duration,
    /// The status the case expects: when it is one of [`UNAVAILABLE_STATUSES`], that status is
    /// an answer rather than an `unavailable` error.
    pub expect_status: u16,
    /// The size limit of a body, a stream event and a streamed text.
    pub max_body_bytes: usize,
}

/// A call that got no usable answer: why, and the HTTP status when a response head came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: CallError,
    pub http_status: Option<u16>,
}

/// An HTTP client for one server's `/v1` API.
#[derive(Clone)]
pub struct Client {
    http: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish()
    }
}

/// Endpoint paths that a base URL must not end in: each case's kind picks its own.
const ENDPOINT_PATHS: [&str; 4] = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/models",
];

/// `http://host:8000`, `http://host:8000/` and `http://host:8000/v1` all become
/// `http://host:8000/v1`; a path prefix (`http://gateway/team-a`) is kept. A URL naming an
/// endpoint (`…/v1/chat/completions`) is refused with the base to give instead: a golden set
/// mixes endpoints, and a silently rewritten URL would hide the mistake.
pub fn api_base(url: &str) -> Result<String, ClientError> {
    let uri: Uri = url
        .trim()
        .parse()
        .map_err(|err| ClientError(format!("`{url}` is not a URL: {err}")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(ClientError(format!(
                "`{url}` must start with http:// or https://"
            )));
        }
    }
    if uri.host().is_none() {
        return Err(ClientError(format!("`{url}` has no host")));
    }
    if uri.query().is_some() {
        return Err(ClientError(format!("`{url}` must not have a query string")));
    }
    let trimmed = url.trim().trim_end_matches('/');
    if let Some(endpoint) = ENDPOINT_PATHS.iter().find(|path| trimmed.ends_with(*path)) {
        let base = &trimmed[..trimmed.len() - endpoint.len()];
        return Err(ClientError(format!(
            "`{url}` names the endpoint `{endpoint}`: give the base URL `{base}/v1`, each case's kind picks its path"
        )));
    }
    Ok(if trimmed.ends_with("/v1") {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/v1")
    })
}

impl Client {
    /// A client for the server at `url` (see [`api_base`]). An https URL loads the system's CA
    /// certificates.
    pub fn new(url: &str) -> Result<Client, ClientError> {
        let base = api_base(url)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = if base.starts_with("https://") {
            builder
                .with_provider_and_native_roots(provider)
                .map_err(|err| ClientError(format!("cannot load CA certificates: {err}")))?
        } else {
            // Plain http never uses TLS; an empty trust store keeps the system's out of it.
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|err| ClientError(format!("cannot set up TLS: {err}")))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            builder.with_tls_config(config)
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let connector = builder.https_or_http().enable_http1().wrap_connector(http);
        let http = HyperClient::builder(TokioExecutor::new()).build(connector);
        Ok(Client { http, base })
    }

    /// The `/v1` base every path is appended to.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `call` and reads the whole answer within its timeout.
    pub async fn send(&self, call: &Call) -> Result<Answer, Failure> {
        let started = Instant::now();
        // The status of the response head, 0 until one comes: a failure reports it.
        let head_status = AtomicU16::new(0);
        let outcome =
            tokio::time::timeout(call.timeout, self.exchange(call, started, &head_status)).await;
        let http_status = Some(head_status.load(Ordering::Relaxed)).filter(|&s| s != 0);
        let error = match outcome {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(error)) => error,
            Err(_) => {
                let phase = if http_status.is_some() {
                    "the answer started but did not finish"
                } else {
                    "no answer came"
                };
                CallError::network(
                    NetworkErrorKind::Timeout,
                    format!("{phase} within {} ms", call.timeout.as_millis()),
                )
            }
        };
        Err(Failure { error, http_status })
    }

    async fn exchange(
        &self,
        call: &Call,
        started: Instant,
        head_status: &AtomicU16,
    ) -> Result<Answer, CallError> {
        let request = self.request(call)?;
        let response = self.http.request(request).await.map_err(|err| {
            let (kind, message) = describe(&err);
            CallError::network(kind, message)
        })?;
        let status = response.status().as_u16();
        head_status.store(status, Ordering::Relaxed);
        if UNAVAILABLE_STATUSES.contains(&status) && status != call.expect_status {
            return Err(unavailable(response, call.max_body_bytes).await);
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut answer = Answer {
            status,
            ..Answer::default()
        };
        let body = response.into_body();
        let success = (200..300).contains(&status);
        if call.stream && success {
            if !content_type.starts_with("text/event-stream") {
                return Err(CallError::protocol(
                    ProtocolErrorKind::NotAStream,
                    format!("a stream was asked for, the server answered `{content_type}`"),
                ));
            }
            read_stream(call, body, started, &mut answer).await?;
        } else {
            let bytes = collect(body, call.max_body_bytes).await?;
            answer.latency = started.elapsed();
            if success {
                let value: Value = serde_json::from_slice(&bytes).map_err(|err| {
                    CallError::protocol(
                        ProtocolErrorKind::NotJson,
                        format!(
                            "the {status} body is not JSON ({err}): {}",
                            crate::compare::excerpt(&String::from_utf8_lossy(&bytes))
                        ),
                    )
                })?;
                answer::read_body(call.kind, &value, &mut answer)
                    .map_err(|m| CallError::protocol(ProtocolErrorKind::UnexpectedShape, m))?;
            } else {
                answer.error_message = if reached_by_mistake(status) {
                    Some(api_error(status, &bytes)?)
                } else {
                    answer::error_message(&bytes)
                };
            }
        }
        Ok(answer)
    }

    fn request(&self, call: &Call) -> Result<Request<Full<Bytes>>, CallError> {
        let uri = format!("{}/{}", self.base, call.kind.path());
        let body = serde_json::to_vec(&call.body)
            .map_err(|err| CallError::network(NetworkErrorKind::Other, err.to_string()))?;
        let accept = if call.stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(&uri)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, accept)
            .header(
                USER_AGENT,
                concat!("hangar-validate/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|err| {
                CallError::network(
                    NetworkErrorKind::Other,
                    format!("cannot build {uri}: {err}"),
                )
            })?;
        for (name, value) in &call.headers {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        Ok(request)
    }
}

/// The `unavailable` error for a 429/502/503/504: the status, the error body's message and
/// `Retry-After`, when there are.
async fn unavailable(response: Response<Incoming>, limit: usize) -> CallError {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut message = format!("the server answered {status}");
    let body = collect(response.into_body(), limit).await.ok();
    if let Some(detail) = body.as_deref().and_then(answer::error_message) {
        message.push_str(&format!(": {detail}"));
    }
    if let Some(after) = &retry_after {
        message.push_str(&format!(" (Retry-After: {after})"));
    }
    CallError::Network {
        kind: NetworkErrorKind::Unavailable,
        message,
        // Only the delta-seconds form: API servers and gateways send it; HTTP dates are rare.
        retry_after_seconds: retry_after.and_then(|a| a.trim().parse().ok()),
    }
}

/// Statuses a request sent to the wrong place gets (a wrong path prefix, the wrong Service):
/// their body must be the API's own error to count as the API's answer. Any other error status
/// (a 401 from an auth proxy in front of the server, a 500) is an answer, whoever wrote it.
fn reached_by_mistake(status: u16) -> bool {
    matches!(status, 300..=399 | 404 | 405)
}

/// The message of an error status's body, which must be the API's own error
/// ([`answer::api_error_message`]). Anything else (a proxy's HTML 404 page, an empty body,
/// FastAPI's `{"detail": "Not Found"}`) means the request did not reach the API, as behind a
/// wrong path prefix or the wrong Service: a protocol error, never a wrong answer, and never the
/// status a case expects.
fn api_error(status: u16, bytes: &[u8]) -> Result<String, CallError> {
    let not_the_api = |kind: ProtocolErrorKind, what: &str| {
        let mut message = format!(
            "the {status} body {what}, so not the API's error (is the URL the model server's, with the right path prefix?)"
        );
        let shown = body_excerpt(bytes);
        if !shown.is_empty() {
            message.push_str(": ");
            message.push_str(&shown);
        }
        CallError::protocol(kind, message)
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(not_the_api(ProtocolErrorKind::NotJson, "is empty"));
    }
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return Err(not_the_api(ProtocolErrorKind::NotJson, "is not JSON"));
    };
    answer::api_error_message(&value).ok_or_else(|| {
        not_the_api(
            ProtocolErrorKind::UnexpectedShape,
            "is not the API's error (an `error`, a `message` beside `\"object\": \"error\"`, or a FastAPI `detail`)",
        )
    })
}

/// The start of a body on one line: an HTML page's line breaks would break the report's.
fn body_excerpt(bytes: &[u8]) -> String {
    let start = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
    crate::compare::excerpt(&start.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Reads a whole body, at most `limit` bytes of it.
async fn collect(body: Incoming, limit: usize) -> Result<Bytes, CallError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<LengthLimitError>() => Err(too_large(format!(
            "the body is larger than {}",
            bytes_shown(limit)
        ))),
        Err(err) => {
            let (kind, message) = describe(&*err);
            Err(CallError::network(
                kind,
                format!("reading the body: {message}"),
            ))
        }
    }
}

fn too_large(message: String) -> CallError {
    CallError::protocol(ProtocolErrorKind::TooLarge, message)
}

/// `16 MiB`, or a count of bytes when the limit is not whole mebibytes.
fn bytes_shown(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// Reads SSE events until `data: [DONE]`, timing the first chunk that carries a token.
async fn read_stream(
    call: &Call,
    mut body: Incoming,
    started: Instant,
    answer: &mut Answer,
) -> Result<(), CallError> {
    let bad_sse = |message: String| CallError::protocol(ProtocolErrorKind::BadSse, message);
    let limit = call.max_body_bytes;
    let mut reader = SseReader::new(limit);
    loop {
        let Some(frame) = body.frame().await else {
            let pending = if reader.has_pending() {
                " (in the middle of an event)"
            } else {
                ""
            };
            // Some servers end with `data: [DONE]` and no blank line after it: complete all the same.
            if reader
                .finish()
                .is_some_and(|event| event.trim() == "[DONE]")
            {
                answer.latency = started.elapsed();
                return Ok(());
            }
            return Err(bad_sse(format!(
                "the stream ended after {} chunk(s) without `data: [DONE]`{pending}",
                answer.chunks
            )));
        };
        let frame = frame.map_err(|err| {
            let (kind, message) = describe(&err);
            CallError::network(
                kind,
                format!(
                    "the stream broke after {} chunk(s): {message}",
                    answer.chunks
                ),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing for us
        };
        let events = reader.feed(&data).map_err(|err| match err {
            SseError::TooLarge(_) => too_large(format!(
                "a stream event is larger than {}",
                bytes_shown(limit)
            )),
            SseError::NotUtf8 => bad_sse(err.to_string()),
        })?;
        for event in events {
            if event.trim() == "[DONE]" {
                answer.latency = started.elapsed();
                return Ok(());
            }
            answer.chunks += 1;
            let chunk: Value = serde_json::from_str(&event).map_err(|err| {
                bad_sse(format!(
                    "chunk {} is not JSON ({err}): {}",
                    answer.chunks,
                    crate::compare::excerpt(&event)
                ))
            })?;
            if let Some(message) = answer::stream_error(&chunk) {
                return Err(CallError::protocol(ProtocolErrorKind::StreamError, message));
            }
            let carried_token = answer::read_chunk(call.kind, &chunk, answer)
                .map_err(|m| CallError::protocol(ProtocolErrorKind::UnexpectedShape, m))?;
            // Tool-call arguments grow like text, so they count against the same limit.
            if answer.content_bytes() > limit {
                return Err(too_large(format!(
                    "the streamed answer is longer than {}",
                    bytes_shown(limit)
                )));
            }
            if carried_token && answer.ttft.is_none() {
                answer.ttft = Some(started.elapsed());
            }
        }
    }
}

/// Sorts a transport error into a kind and a message that names every cause once.
fn describe(err: &(dyn StdError + 'static)) -> (NetworkErrorKind, String) {
    let mut kind = None;
    let mut messages: Vec<String> = Vec::new();
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(error) = current {
        kind = kind.or_else(|| kind_of(error));
        let message = error.to_string();
        if !messages.iter().any(|m| m.contains(&message)) {
            messages.push(message);
        }
        current = error.source().or_else(|| {
            // An io::Error's `source` skips the error it wraps (rustls puts its own there).
            error
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .map(|inner| inner as &(dyn StdError + 'static))
        });
    }
    (kind.unwrap_or(NetworkErrorKind::Other), messages.join(": "))
}

fn kind_of(error: &(dyn StdError + 'static)) -> Option<NetworkErrorKind> {
    use std::io::ErrorKind;
    if error.downcast_ref::<rustls::Error>().is_some() {
        return Some(NetworkErrorKind::Tls);
    }
    if let Some(io) = error.downcast_ref::<std::io::Error>() {
        return match io.kind() {
            ErrorKind::ConnectionRefused => Some(NetworkErrorKind::Refused),
            ErrorKind::TimedOut => Some(NetworkErrorKind::Timeout),
            ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof => Some(NetworkErrorKind::Disconnected),
            _ => None,
        };
    }
    if let Some(hyper) = error.downcast_ref::<hyper::Error>() {
        if hyper.is_incomplete_message() || hyper.is_closed() || hyper.is_body_write_aborted() {
            return Some(NetworkErrorKind::Disconnected);
        }
        if hyper.is_timeout() {
            return Some(NetworkErrorKind::Timeout);
        }
        // A body cut short surfaces as a hyper body error without a more precise flag.
        if hyper.to_string().contains("error reading a body") {
            return Some(NetworkErrorKind::Disconnected);
        }
    }
    let message = error.to_string();
    if message == "dns error" {
        return Some(NetworkErrorKind::Dns);
    }
    if message.contains("invalid peer certificate") || message.contains("invalid dnsname") {
        return Some(NetworkErrorKind::Tls);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_gets_v1_once() {
        assert_eq!(api_base("http://h:8000").unwrap(), "http://h:8000/v1");
        assert_eq!(api_base("http://h:8000/").unwrap(), "http://h:8000/v1");
        assert_eq!(api_base("http://h:8000/v1").unwrap(), "http://h:8000/v1");
        assert_eq!(api_base("https://h/v1/").unwrap(), "https://h/v1");
        assert_eq!(api_base("http://gw/team-a").unwrap(), "http://gw/team-a/v1");
    }

    #[test]
    fn a_url_naming_an_endpoint_is_refused_with_the_base_to_give() {
        for url in [
            "http://h:8000/v1/chat/completions",
            "http://h:8000/v1/completions/",
            "http://h:8000/v1/embeddings",
            "http://h:8000/v1/models",
        ] {
            let err = api_base(url).unwrap_err().0;
            assert!(
                err.contains("give the base URL `http://h:8000/v1`"),
                "{err}"
            );
        }
        let err = api_base("https://gw/team-a/v1/chat/completions")
            .unwrap_err()
            .0;
        assert!(err.contains("`https://gw/team-a/v1`"), "{err}");
        // A prefix that merely looks like one is kept.
        assert_eq!(
            api_base("http://gw/completions-team").unwrap(),
            "http://gw/completions-team/v1"
        );
    }

    #[test]
    fn limits_are_shown_in_mebibytes_when_whole() {
        assert_eq!(bytes_shown(DEFAULT_MAX_BODY_BYTES), "16 MiB");
        assert_eq!(bytes_shown(65_536), "65536 bytes");
    }

    #[test]
    fn a_base_url_must_be_http() {
        assert!(api_base("h:8000").unwrap_err().0.contains("http://"));
        assert!(api_base("ftp://h").is_err());
        assert!(api_base("http://h/?x=1").is_err());
        assert!(api_base("not a url").is_err());
    }

    #[test]
    fn io_errors_are_sorted_by_kind() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(describe(&refused).0, NetworkErrorKind::Refused);
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::General("bad certificate".into()),
        );
        assert_eq!(describe(&tls).0, NetworkErrorKind::Tls);
        let other = std::io::Error::other("strange");
        assert_eq!(
            describe(&other),
            (NetworkErrorKind::Other, "strange".into())
        );
    }
}
