//! The HTTP side: one request to an OpenAI-compatible server, timed, with the answer read as a
//! whole body or as a server-sent-event stream, and every failure sorted into network errors
//! (nothing usable came back) and protocol errors (something came back that is not the API).

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::answer::{self, Answer};
use crate::golden::CaseKind;
use crate::sse::SseReader;

/// Why a request got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum CallError {
    /// Nothing usable came back: the server was unreachable, too slow, or hung up.
    #[error("network error ({kind}): {message}")]
    Network {
        kind: NetworkErrorKind,
        message: String,
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
    pub fn is_network(&self) -> bool {
        matches!(self, CallError::Network { .. })
    }

    fn network(kind: NetworkErrorKind, message: impl Into<String>) -> CallError {
        CallError::Network {
            kind,
            message: message.into(),
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
    /// Any other transport failure.
    Other,
}

/// Kinds of protocol error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolErrorKind {
    /// A success status with a body that is not JSON.
    NotJson,
    /// JSON, but not an OpenAI-compatible answer (no `choices`, no `data`…).
    UnexpectedShape,
    /// A stream was asked for and something else came back.
    NotAStream,
    /// The stream broke the SSE format, carried a chunk that is not JSON, or ended without
    /// `data: [DONE]`.
    BadSse,
    /// The server reported an error inside the stream.
    StreamError,
}

impl fmt::Display for NetworkErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            NetworkErrorKind::Refused => "refused",
            NetworkErrorKind::Timeout => "timeout",
            NetworkErrorKind::Dns => "dns",
            NetworkErrorKind::Tls => "tls",
            NetworkErrorKind::Disconnected => "disconnected",
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

/// `http://host:8000`, `http://host:8000/` and `http://host:8000/v1` all become
/// `http://host:8000/v1`; a path prefix (`http://gateway/team-a`) is kept.
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
    pub async fn send(&self, call: &Call) -> Result<Answer, CallError> {
        let started = Instant::now();
        let answered = AtomicBool::new(false);
        match tokio::time::timeout(call.timeout, self.exchange(call, started, &answered)).await {
            Ok(result) => result,
            Err(_) => {
                let phase = if answered.load(Ordering::Relaxed) {
                    "the answer started but did not finish"
                } else {
                    "no answer came"
                };
                Err(CallError::network(
                    NetworkErrorKind::Timeout,
                    format!("{phase} within {} ms", call.timeout.as_millis()),
                ))
            }
        }
    }

    async fn exchange(
        &self,
        call: &Call,
        started: Instant,
        answered: &AtomicBool,
    ) -> Result<Answer, CallError> {
        let request = self.request(call)?;
        let response = self.http.request(request).await.map_err(|err| {
            let (kind, message) = describe(&err);
            CallError::network(kind, message)
        })?;
        answered.store(true, Ordering::Relaxed);
        let status = response.status().as_u16();
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
            read_stream(call.kind, body, started, &mut answer).await?;
        } else {
            let bytes = collect(body).await?;
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
                answer.error_message = answer::error_message(&bytes);
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

async fn collect(body: Incoming) -> Result<Bytes, CallError> {
    body.collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|err| {
            let (kind, message) = describe(&err);
            CallError::network(kind, format!("reading the body: {message}"))
        })
}

/// Reads SSE events until `data: [DONE]`, timing the first chunk that carries text.
async fn read_stream(
    kind: CaseKind,
    mut body: Incoming,
    started: Instant,
    answer: &mut Answer,
) -> Result<(), CallError> {
    let bad_sse = |message: String| CallError::protocol(ProtocolErrorKind::BadSse, message);
    let mut reader = SseReader::default();
    loop {
        let Some(frame) = body.frame().await else {
            let pending = if reader.has_pending() {
                " (in the middle of an event)"
            } else {
                ""
            };
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
        for event in reader.feed(&data).map_err(|err| bad_sse(err.0))? {
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
            let carried_text = answer::read_chunk(kind, &chunk, answer).map_err(|message| {
                let kind = if chunk.get("error").is_some() {
                    ProtocolErrorKind::StreamError
                } else {
                    ProtocolErrorKind::UnexpectedShape
                };
                CallError::protocol(kind, message)
            })?;
            if carried_text && answer.ttft.is_none() {
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
