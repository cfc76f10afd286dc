//! The model servers' side: their base URLs and the connections that reach them.
//!
//! Plain `http://` model servers (the usual in-cluster case) get HTTP/1.1 connections from a
//! small pool of the gateway's own: a stack of idle connections per host, taken and given back
//! under a lock held for a push or a pop. hyper-util's general-purpose pool did the same work
//! with a quarter of a bare proxy's CPU per request (`bench/BENCHMARKS.md`). `https://` model
//! servers go through hyper-util's pooled client, which brings TLS, ALPN and HTTP/2.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri, header};
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::config::ClientTlsConfig;
use crate::stream::BoxError;

/// A model server's base URL, split once at load so each request only appends its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// `http` or `https`.
    pub scheme: http::uri::Scheme,
    /// Host and port.
    pub authority: http::uri::Authority,
    /// A path prefix without its trailing `/` (empty for most servers; `/openai` for some).
    pub prefix: String,
}

impl BaseUrl {
    /// The upstream URI for `path` (which starts with `/v1/`).
    pub fn uri(&self, path: &str) -> Result<http::Uri, http::Error> {
        http::Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(format!("{}{path}", self.prefix))
            .build()
    }
}

/// Parses `http://host:port[/prefix]`. A trailing `/v1` is dropped, since the request path
/// brings its own.
pub fn parse_base_url(text: &str) -> Result<BaseUrl, String> {
    // Said without the URL: it holds a secret. Any `@` counts, for a password may hold a `/`,
    // and a base URL has no query or fragment an `@` could belong to.
    if text
        .split_once("://")
        .is_some_and(|(_, rest)| rest.contains('@'))
    {
        return Err(
            "holds credentials (`user:password@`), which would reach the model server in its Host header and land in logs: give the model server's key in `apiKeyEnv`".to_owned(),
        );
    }
    let uri: http::Uri = text
        .parse()
        .map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    let scheme = uri
        .scheme()
        .filter(|s| **s == http::uri::Scheme::HTTP || **s == http::uri::Scheme::HTTPS)
        .cloned()
        .ok_or_else(|| format!("`{text}` must start with http:// or https://"))?;
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| format!("`{text}` has no host"))?;
    if uri.query().is_some() {
        return Err(format!("`{text}` must not have a query"));
    }
    let path = uri.path().trim_end_matches('/');
    let prefix = path.strip_suffix("/v1").unwrap_or(path).to_owned();
    Ok(BaseUrl {
        scheme,
        authority,
        prefix,
    })
}

/// hyper-util's pooled client, for https model servers.
type TlsClient = Client<Timed<HttpsConnector<HttpConnector>>, Full<Bytes>>;

/// An idle connection is closed after this long (model servers often close theirs sooner).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Idle connections kept per model server; more are closed when given back.
const MAX_IDLE_PER_HOST: usize = 256;

/// How long a pooled connection may take to become ready for its next request. It was given
/// back only once its last answer was read whole, so this is a scheduling delay, not a wait on
/// the network; the bound only keeps a misbehaving connection from hanging a request.
const READY_WAIT: Duration = Duration::from_secs(1);

/// Every model server's connections.
pub struct Upstreams {
    tls: TlsClient,
    idle: Arc<IdlePool>,
    connect_timeout: Duration,
    /// `limits.answerHeadBytes`: the most of an answer read at once, which its head (status
    /// line and headers) must fit in. An open stream's events are small, and a thousand
    /// streams hold 1.5 MiB less with 4 KiB read exactly than with hyper's buffers that grow
    /// (`bench/BENCHMARKS.md`); a large answer takes more reads.
    head_limit: usize,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams")
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// Idle HTTP/1.1 connections by host (`host:port` as written in the configuration: its text
/// hashes in one pass, where `Authority` hashes byte by byte), newest last.
#[derive(Default)]
struct IdlePool {
    hosts: Mutex<HashMap<Box<str>, VecDeque<IdleConnection>>>,
}

struct IdleConnection {
    sender: SendRequest<Full<Bytes>>,
    since: Instant,
}

/// Why a request did not get an answer from its model server.
#[derive(Debug)]
pub enum UpstreamError {
    /// No connection could be made: nothing was sent.
    Connect(String),
    /// The request failed on a connection (it may have been sent).
    Request(String),
    /// The answer's head (status line and headers) is larger than the limit, in bytes.
    HeadTooLarge(usize),
}

/// `bytes` as the configuration's limit on answer heads is best read: `4 KiB`, `1500 bytes`.
pub fn head_size(bytes: usize) -> String {
    if bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

impl UpstreamError {
    /// True when nothing reached the model server.
    pub fn is_connect(&self) -> bool {
        matches!(self, UpstreamError::Connect(_))
    }

    /// The error for a request that failed on its connection.
    fn of_request(error: &(dyn std::error::Error + 'static), head_limit: usize) -> UpstreamError {
        let mut cause = Some(error);
        while let Some(error) = cause {
            if error
                .downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_parse_too_large)
            {
                return UpstreamError::HeadTooLarge(head_limit);
            }
            cause = error.source();
        }
        UpstreamError::Request(crate::error::chain(error))
    }
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Connect(why) => write!(f, "cannot connect: {why}"),
            UpstreamError::Request(why) => write!(f, "request failed: {why}"),
            UpstreamError::HeadTooLarge(limit) => write!(
                f,
                "the answer's head (status line and headers) is larger than {}",
                head_size(*limit)
            ),
        }
    }
}

impl Upstreams {
    /// The connections for every model server, with `connect_timeout` for new ones, answer
    /// heads up to `head_limit` bytes, and for https ones the CAs and client certificate of
    /// `tls`.
    pub fn new(
        connect_timeout: Duration,
        head_limit: usize,
        tls: Option<&ClientTlsConfig>,
    ) -> Result<Upstreams, String> {
        let config = crate::pem::client_config(tls, "upstreamTls", "https model servers")?;
        let tls = tls_client(connect_timeout, head_limit, config);
        let idle = Arc::default();
        spawn_reaper(&idle);
        Ok(Upstreams {
            tls,
            idle,
            connect_timeout,
            head_limit,
        })
    }

    /// Sends `request` (whose URI is absolute) and returns the answer's head. Its body gives the
    /// connection back to the pool once it has been read to the end.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        if request.uri().scheme() != Some(&Scheme::HTTP) {
            return self
                .tls
                .request(request)
                .await
                .map(|answer| answer.map(|body| UpstreamBody { body, lease: None }))
                .map_err(|error| {
                    if error.is_connect() {
                        UpstreamError::Connect(crate::error::chain(&error))
                    } else {
                        UpstreamError::of_request(&error, self.head_limit)
                    }
                });
        }
        let (authority, mut request) = origin_form(request)?;
        // Idle connections first, newest first; one the model server closed meanwhile gives the
        // request back unsent, and the next is tried. A new connection is the last resort.
        loop {
            let (mut sender, fresh) = match self.idle.take(&authority) {
                Some(sender) => (sender, false),
                None => (self.connect(&authority).await?, true),
            };
            if !fresh && !becomes_ready(&mut sender).await {
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(answer) => {
                    let lease = Lease {
                        pool: Arc::clone(&self.idle),
                        authority,
                        sender,
                    };
                    return Ok(answer.map(|body| UpstreamBody {
                        body,
                        lease: Some(lease),
                    }));
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) if !fresh => request = unsent,
                    _ => {
                        return Err(UpstreamError::of_request(
                            &error.into_error(),
                            self.head_limit,
                        ));
                    }
                },
            }
        }
    }

    /// A new HTTP/1.1 connection to `authority`, driven by a task of its own until either side
    /// closes it.
    async fn connect(
        &self,
        authority: &Authority,
    ) -> Result<SendRequest<Full<Bytes>>, UpstreamError> {
        // An IPv6 host comes in brackets, which the resolver does not want.
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let address = (host, authority.port_u16().unwrap_or(80));
        let stream = match tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(address),
        )
        .await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(UpstreamError::Connect(error.to_string())),
            Err(_) => {
                return Err(UpstreamError::Connect(format!(
                    "no connection within {:?}",
                    self.connect_timeout
                )));
            }
        };
        // Small requests and events go out at once rather than after Nagle's delay.
        let _ = stream.set_nodelay(true);
        let (sender, mut connection) = http1::Builder::new()
            .read_buf_exact_size(Some(self.head_limit))
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|error| UpstreamError::Connect(crate::error::chain(&error)))?;
        tokio::spawn(async move {
            // Awaited through a reference: moved into the await, it would take its room in the
            // task twice (a thousand open streams hold a thousand of these tasks).
            if let Err(error) = (&mut connection).await {
                tracing::debug!("model server connection ended: {error}");
            }
        });
        Ok(sender)
    }
}

/// The request with an origin-form URI (`/v1/…`, which is what HTTP/1.1 sends) and a `Host`
/// header, and the host it goes to.
fn origin_form(
    request: Request<Full<Bytes>>,
) -> Result<(Authority, Request<Full<Bytes>>), UpstreamError> {
    let (mut parts, body) = request.into_parts();
    let mut uri = parts.uri.into_parts();
    let authority = uri
        .authority
        .take()
        .ok_or_else(|| UpstreamError::Connect("the model server's URL has no host".into()))?;
    uri.scheme = None;
    parts.uri = Uri::from_parts(uri).map_err(|error| UpstreamError::Connect(error.to_string()))?;
    let host = HeaderValue::from_str(authority.as_str())
        .map_err(|error| UpstreamError::Connect(error.to_string()))?;
    parts.headers.insert(header::HOST, host);
    Ok((authority, Request::from_parts(parts, body)))
}

/// Whether a pooled connection is ready, or becomes ready within `READY_WAIT`.
async fn becomes_ready(sender: &mut SendRequest<Full<Bytes>>) -> bool {
    if sender.is_ready() {
        return true;
    }
    if sender.is_closed() {
        return false;
    }
    matches!(
        tokio::time::timeout(READY_WAIT, sender.ready()).await,
        Ok(Ok(()))
    )
}

/// Closes idle connections past `IDLE_TIMEOUT` every half of it, so that a gateway gone quiet
/// does not hold them open; the task ends with the pool (at a reload, with the old one). Outside
/// a runtime (a configuration check) there is nothing to close.
fn spawn_reaper(pool: &Arc<IdlePool>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let pool = Arc::downgrade(pool);
    runtime.spawn(async move {
        let mut every = tokio::time::interval(IDLE_TIMEOUT / 2);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(pool) = pool.upgrade() else {
                return;
            };
            pool.close_expired(Instant::now());
        }
    });
}

impl IdlePool {
    fn hosts(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, VecDeque<IdleConnection>>> {
        // The lock is only held for a push or a pop, which cannot leave the map half-changed.
        self.hosts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest idle connection to `authority` that is still open, if any.
    fn take(&self, authority: &Authority) -> Option<SendRequest<Full<Bytes>>> {
        let mut hosts = self.hosts();
        let idle = hosts.get_mut(authority.as_str())?;
        while let Some(connection) = idle.pop_back() {
            if !connection.sender.is_closed() && connection.since.elapsed() < IDLE_TIMEOUT {
                return Some(connection.sender);
            }
        }
        None
    }

    fn give_back(&self, authority: Authority, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut hosts = self.hosts();
        if !hosts.contains_key(authority.as_str()) {
            hosts.insert(authority.as_str().into(), VecDeque::new());
        }
        let Some(idle) = hosts.get_mut(authority.as_str()) else {
            return;
        };
        // The oldest are at the front: close those over the cap.
        while idle.len() >= MAX_IDLE_PER_HOST {
            idle.pop_front();
        }
        idle.push_back(IdleConnection { sender, since: now });
    }

    /// Closes (drops) the connections idle for `IDLE_TIMEOUT` at `now` or closed by their
    /// server, and forgets the hosts left with none.
    fn close_expired(&self, now: Instant) {
        let mut hosts = self.hosts();
        for idle in hosts.values_mut() {
            idle.retain(|connection| {
                !connection.sender.is_closed()
                    && now.saturating_duration_since(connection.since) < IDLE_TIMEOUT
            });
        }
        hosts.retain(|_, idle| !idle.is_empty());
    }
}

/// A connection in use: back to the pool when its answer has been read to the end, closed
/// when dropped before that (its state is then unknown).
struct Lease {
    pool: Arc<IdlePool>,
    authority: Authority,
    sender: SendRequest<Full<Bytes>>,
}

/// A model server's answer body.
#[derive(Debug)]
pub struct UpstreamBody {
    body: Incoming,
    lease: Option<Lease>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(None) = polled
            && let Some(lease) = self.lease.take()
        {
            lease.pool.give_back(lease.authority, lease.sender);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Builds hyper-util's client for https model servers: keep-alive pool, `TCP_NODELAY`, the
/// connect timeout, HTTP/2 when the server offers it through ALPN.
fn tls_client(
    connect_timeout: Duration,
    head_limit: usize,
    config: rustls::ClientConfig,
) -> TlsClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    let connector = Timed {
        inner: connector,
        timeout: connect_timeout,
    };
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .http1_read_buf_exact_size(head_limit)
        .build(connector)
}

/// A connector that gives up on a connection not made within `timeout`, TLS handshake
/// included: the TCP connector's own timeout ends at the TCP handshake, and a server that
/// accepts and never answers the TLS one would hold a request until its first-token timeout.
#[derive(Debug, Clone)]
struct Timed<C> {
    inner: C,
    timeout: Duration,
}

impl<C> tower_service::Service<Uri> for Timed<C>
where
    C: tower_service::Service<Uri>,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(connected) => connected.map_err(Into::into),
                Err(_) => {
                    Err(format!("no connection within {timeout:?}, TLS handshake included").into())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// How a test model server treats its connections.
    #[derive(Clone, Copy, PartialEq)]
    enum Server {
        KeepAlive,
        /// Closes each connection after its first answer, without saying so in a header.
        CloseSilently,
    }

    /// A model server on loopback that answers every request `ok` and counts its connections.
    async fn model_server(kind: Server) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    while read_request(&mut stream).await {
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() || kind == Server::CloseSilently
                        {
                            return;
                        }
                    }
                });
            }
        });
        (format!("http://{address}/v1/chat/completions"), accepted)
    }

    /// Reads one request (head and `content-length` body); false at the end of the connection.
    async fn read_request(stream: &mut tokio::net::TcpStream) -> bool {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&bytes[..end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .map_or(0, |n| n.trim().parse().unwrap());
                if bytes.len() >= end + 4 + length {
                    return true;
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn request(url: &str) -> Request<Full<Bytes>> {
        Request::post(url)
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    }

    async fn ask(upstreams: &Upstreams, url: &str) -> Bytes {
        let answer = upstreams.send(request(url)).await.unwrap();
        answer.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn answers_read_to_the_end_give_their_connection_back() {
        let (url, accepted) = model_server(Server::KeepAlive).await;
        let upstreams = Upstreams::new(Duration::from_secs(5), 4096, None).unwrap();
        for _ in 0..5 {
            assert_eq!(ask(&upstreams, &url).await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // Three at once need three connections; afterwards all three are reused.
        let (a, b, c) = tokio::join!(
            ask(&upstreams, &url),
            ask(&upstreams, &url),
            ask(&upstreams, &url)
        );
        assert_eq!((a, b, c), ("ok".into(), "ok".into(), "ok".into()));
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        for _ in 0..5 {
            ask(&upstreams, &url).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_answer_left_unread_does_not_hand_its_connection_to_the_next_request() {
        let (url, accepted) = model_server(Server::KeepAlive).await;
        let upstreams = Upstreams::new(Duration::from_secs(5), 4096, None).unwrap();
        drop(upstreams.send(request(&url)).await.unwrap());
        assert_eq!(ask(&upstreams, &url).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_the_model_server_closed_while_idle_is_replaced() {
        let (url, accepted) = model_server(Server::CloseSilently).await;
        let upstreams = Upstreams::new(Duration::from_secs(5), 4096, None).unwrap();
        for round in 1..=3 {
            assert_eq!(ask(&upstreams, &url).await, "ok");
            assert_eq!(accepted.load(Ordering::SeqCst), round);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        assert_connect_error(&format!("http://{address}/v1/models")).await;
    }

    async fn assert_connect_error(url: &str) {
        let upstreams = Upstreams::new(Duration::from_secs(5), 4096, None).unwrap();
        let error = upstreams.send(request(url)).await.unwrap_err();
        assert!(error.is_connect(), "{error}");
    }

    #[tokio::test]
    async fn https_model_servers_go_through_tls_and_a_failed_handshake_sends_nothing() {
        // A listener that speaks no TLS: the handshake fails before any request is written.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        assert_connect_error(&format!("https://{address}/v1/models")).await;
    }

    #[tokio::test]
    async fn a_tls_handshake_that_never_ends_is_a_connect_error_within_the_connect_timeout() {
        // Accepts, reads the ClientHello and says nothing.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut hello = [0u8; 512];
                let _ = stream.read(&mut hello).await;
                held.push(stream);
            }
        });
        let upstreams = Upstreams::new(Duration::from_millis(300), 4096, None).unwrap();
        let started = Instant::now();
        let error = upstreams
            .send(request(&format!("https://{address}/v1/models")))
            .await
            .unwrap_err();
        assert!(error.is_connect(), "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    /// A TLS model server for `localhost` with a self-signed certificate, written as PEM to
    /// `dir/ca.pem`. It offers HTTP/2 and HTTP/1.1 and answers with the HTTP version it was
    /// asked in; with `client_ca` it refuses clients without a certificate that CA signed.
    async fn tls_model_server(dir: &Path, client_ca: Option<&rcgen::Certificate>) -> u16 {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(dir.join("ca.pem"), certified.cert.pem()).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca.der().clone()).unwrap();
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let Ok(stream) = acceptor.accept(stream).await else {
                    continue; // a client that does not trust the certificate
                };
                let answer = hyper::service::service_fn(|request: Request<Incoming>| async move {
                    let version = format!("{:?}", request.version());
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                        version,
                    ))))
                });
                tokio::spawn(
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), answer)
                        .into_owned(),
                );
            }
        });
        port
    }

    /// A CA for the gateway's client certificates.
    fn client_ca() -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap()
    }

    /// Trust for `dir/ca.pem`, and a client certificate signed by `ca` when there is one.
    fn upstream_tls(
        dir: &Path,
        ca: Option<&rcgen::CertifiedIssuer<'_, rcgen::KeyPair>>,
    ) -> ClientTlsConfig {
        let mut tls = ClientTlsConfig {
            ca_file: Some(dir.join("ca.pem")),
            cert_file: None,
            key_file: None,
        };
        if let Some(ca) = ca {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec!["hangar-gateway".to_owned()])
                .unwrap()
                .signed_by(&key, ca)
                .unwrap();
            std::fs::write(dir.join("client.pem"), cert.pem()).unwrap();
            std::fs::write(dir.join("client-key.pem"), key.serialize_pem()).unwrap();
            tls.cert_file = Some(dir.join("client.pem"));
            tls.key_file = Some(dir.join("client-key.pem"));
        }
        tls
    }

    #[tokio::test]
    async fn a_private_ca_is_trusted_for_https_model_servers_which_get_http2() {
        let dir = tempfile::tempdir().unwrap();
        let port = tls_model_server(dir.path(), None).await;
        let url = format!("https://localhost:{port}/v1/models");
        let trusting = Upstreams::new(
            Duration::from_secs(5),
            4096,
            Some(&upstream_tls(dir.path(), None)),
        )
        .unwrap();
        // The server offers HTTP/2 through ALPN, and the gateway takes it.
        assert_eq!(ask(&trusting, &url).await, "HTTP/2.0");
        // Without the CA the certificate is unknown: nothing is sent.
        assert_connect_error(&url).await;
    }

    #[tokio::test]
    async fn a_client_certificate_is_shown_to_model_servers_that_ask_for_one() {
        let dir = tempfile::tempdir().unwrap();
        let gateways = client_ca();
        let port = tls_model_server(dir.path(), Some(gateways.as_ref())).await;
        let url = format!("https://localhost:{port}/v1/models");
        let tls = upstream_tls(dir.path(), Some(&gateways));
        let with_certificate = Upstreams::new(Duration::from_secs(5), 4096, Some(&tls)).unwrap();
        assert_eq!(ask(&with_certificate, &url).await, "HTTP/2.0");

        let without = Upstreams::new(
            Duration::from_secs(5),
            4096,
            Some(&upstream_tls(dir.path(), None)),
        );
        let refused = without.unwrap().send(request(&url)).await;
        let error = refused.map(|_| ()).unwrap_err().to_string();
        assert!(error.contains("CertificateRequired"), "{error}");
        // One signed by a CA the model server does not know is refused too.
        let stranger = upstream_tls(dir.path(), Some(&client_ca()));
        let stranger = Upstreams::new(Duration::from_secs(5), 4096, Some(&stranger)).unwrap();
        assert!(stranger.send(request(&url)).await.is_err());
    }

    #[test]
    fn tls_files_that_are_missing_empty_or_apart_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let problem = |tls: &ClientTlsConfig| {
            Upstreams::new(Duration::from_secs(5), 4096, Some(tls)).unwrap_err()
        };
        let mut tls = upstream_tls(dir.path(), None);
        let error = problem(&tls);
        assert!(
            error.starts_with("upstreamTls.caFile: ") && error.contains("ca.pem"),
            "{error}"
        );
        std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").unwrap();
        assert!(problem(&tls).contains("no certificate in the file"));

        // A certificate without its key, and a key that is not the certificate's.
        tls = upstream_tls(dir.path(), Some(&client_ca()));
        tls.ca_file = None;
        let key = tls.key_file.take();
        assert_eq!(problem(&tls), "upstreamTls.certFile needs a keyFile");
        let other = dir.path().join("other-key.pem");
        std::fs::write(&other, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
        tls.key_file = Some(other);
        let error = problem(&tls);
        assert!(error.contains("do not fit together"), "{error}");
        tls.cert_file = None;
        tls.key_file = key;
        assert_eq!(problem(&tls), "upstreamTls.keyFile needs a certFile");
    }

    #[tokio::test]
    async fn idle_connections_are_closed_after_the_idle_timeout() {
        let pool = IdlePool::default();
        let (client, _server) = tokio::io::duplex(1024);
        let (sender, connection) = http1::handshake(TokioIo::new(client)).await.unwrap();
        tokio::spawn(connection);
        let authority = Authority::from_static("vllm:8000");
        pool.give_back(authority.clone(), sender);
        let given = Instant::now();
        pool.close_expired(given + IDLE_TIMEOUT / 2);
        assert_eq!(pool.hosts()["vllm:8000"].len(), 1);
        pool.close_expired(given + IDLE_TIMEOUT + Duration::from_secs(1));
        assert!(pool.hosts().is_empty());
        assert!(pool.take(&authority).is_none());
    }

    #[tokio::test]
    async fn ipv6_hosts_are_reached() {
        let Ok(listener) = TcpListener::bind("[::1]:0").await else {
            return; // no IPv6 loopback on this machine
        };
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            read_request(&mut stream).await;
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
        });
        let upstreams = Upstreams::new(Duration::from_secs(5), 4096, None).unwrap();
        assert_eq!(
            ask(&upstreams, &format!("http://[::1]:{port}/v1/models")).await,
            "ok"
        );
    }

    #[test]
    fn base_urls_keep_their_prefix_and_drop_v1() {
        let base = parse_base_url("http://vllm.ml.svc:8000/v1/").unwrap();
        assert_eq!(base.prefix, "");
        assert_eq!(
            base.uri("/v1/models").unwrap().to_string(),
            "http://vllm.ml.svc:8000/v1/models"
        );
        let base = parse_base_url("https://host/openai").unwrap();
        assert_eq!(
            base.uri("/v1/chat/completions").unwrap().to_string(),
            "https://host/openai/v1/chat/completions"
        );
    }

    #[test]
    fn bad_base_urls_say_why() {
        assert!(parse_base_url("vllm:8000").unwrap_err().contains("http://"));
        for url in [
            "http://admin:S3CRET@vllm:8000/v1",
            "http://svc:S3C/RET+g==@vllm:8000",
        ] {
            let credentials = parse_base_url(url).unwrap_err();
            assert!(credentials.contains("apiKeyEnv"), "{credentials}");
            assert!(!credentials.contains("S3C"), "{credentials}");
        }
        assert!(parse_base_url("ftp://x").unwrap_err().contains("http://"));
        assert!(
            parse_base_url("http://x/?a=b")
                .unwrap_err()
                .contains("query")
        );
    }
}
