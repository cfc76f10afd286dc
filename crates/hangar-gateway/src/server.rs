//! The sockets: the inference listener (HTTP/1.1 and HTTP/2, TLS by ALPN when configured), the
//! operator listener (`/metrics`, `/healthz`, `/readyz`), configuration reload on change or
//! SIGHUP, and a graceful shutdown that lets streams in flight finish.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::activity::{Activity, Answer, Watched};
use crate::audit::{AuditLogs, GatewayEvent, log_anchor};
use crate::changes;
use crate::clients::ClientConnections;
use crate::config::{ConfigError, GatewayConfig};
use crate::proxy::{Gateway, Stage, handle};
use crate::runtime::Runtime;
use crate::stream::BoxError;

/// After the drain, how long the streams get to send their last event and record themselves
/// before whatever is still running is dropped.
const END_STREAMS: Duration = Duration::from_secs(2);

/// Connections open at once on the operator listener: a scraper and a few probes.
const ADMIN_CONNECTIONS: usize = 64;

/// How long the accept loop rests after a failed accept (out of file descriptors…), so that it
/// does not spin a core while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Why the gateway could not start. Each message holds its cause, which is not also given as
/// the error's source: a chain printed whole (`{:#}`) would repeat it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration file is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be bound.
    #[error("cannot listen on {address}: {reason}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The reason.
        reason: std::io::Error,
    },
    /// The TLS certificate or key could not be used.
    #[error("tls: {0}")]
    Tls(String),
    /// The audit log could not be opened or closed.
    #[error("audit log: {0}")]
    Audit(hangar_ledger::LedgerError),
    /// Shutdown could not finish writing out.
    #[error("{0}")]
    Shutdown(String),
}

impl From<hangar_ledger::LedgerError> for StartError {
    fn from(error: hangar_ledger::LedgerError) -> Self {
        StartError::Audit(error)
    }
}

/// A gateway with its sockets bound, not yet serving.
pub struct Server {
    gateway: Arc<Gateway>,
    logs: AuditLogs,
    config_path: PathBuf,
    listener: TcpListener,
    admin: Option<TcpListener>,
    tls: Option<TlsAcceptor>,
    drain: Duration,
    shutdown_delay: Duration,
    header_read: Duration,
    max_connections: usize,
}

/// Takes the gateway out of service while it still serves (see [`Gateway::withdraw`]), so
/// that load balancers stop sending before the listener closes.
#[derive(Clone)]
pub struct Readiness(Arc<Gateway>);

impl Readiness {
    /// `/readyz` answers 503 from now on, HTTP/1.1 answers close their connection, and HTTP/2
    /// connections are sent GOAWAY.
    pub fn withdraw(&self) {
        self.0.withdraw();
    }
}

impl Server {
    /// Reads the configuration at `path`, opens the audit log and binds the listeners.
    pub async fn bind(path: &Path) -> Result<Server, StartError> {
        let config = GatewayConfig::load(path)?;
        let shown = path.display().to_string();
        let runtime = Runtime::build(config, None).map_err(|problems| ConfigError {
            path: shown,
            problems,
        })?;
        let config = &runtime.config;
        warn_of_tenants_left_unable(config, path);
        let listener = bind(config.listen).await?;
        let admin = match config.admin_listen {
            Some(address) => Some(bind(address).await?),
            None => None,
        };
        let serves_tls = config.tls.is_some();
        let logs = AuditLogs::open(&config.audit, config.limits.max_concurrent)?;
        let drain = config.limits.drain.get();
        let shutdown_delay = config.limits.shutdown_delay.get();
        let header_read = config.limits.request_read.get();
        let max_connections = usize::try_from(config.limits.max_connections).unwrap_or(usize::MAX);
        let config_sha256 = runtime.config.file_sha256.clone();
        let gateway = Arc::new(Gateway::new(runtime, logs.sink()));
        let tls = if serves_tls {
            Some(tls_acceptor(&gateway)?)
        } else {
            None
        };
        // Only a gateway that will serve starts: each start is to have its stop.
        gateway.record_event(GatewayEvent::new("start", config_sha256));
        Ok(Server {
            gateway,
            logs,
            config_path: path.to_owned(),
            listener,
            admin,
            tls,
            drain,
            shutdown_delay,
            header_read,
            max_connections,
        })
    }

    /// What takes the gateway out of service before it stops (see [`Server::run`]).
    pub fn readiness(&self) -> Readiness {
        Readiness(Arc::clone(&self.gateway))
    }

    /// `limits.shutdownDelay`: how long to serve unready after SIGTERM before stopping.
    pub fn shutdown_delay(&self) -> Duration {
        self.shutdown_delay
    }

    /// Where the inference API listens (useful with port 0).
    pub fn address(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Where the operator endpoints listen.
    pub fn admin_address(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The shared state, for tests that look inside.
    pub fn gateway(&self) -> Arc<Gateway> {
        Arc::clone(&self.gateway)
    }

    /// Serves until `shutdown` completes, then stops accepting, lets requests in flight finish
    /// (up to `limits.drain`), and writes out the audit log. To be taken out of service first,
    /// `shutdown` calls [`Readiness::withdraw`] and waits a while before it completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
        let reloader = tokio::spawn(watch_config(
            Arc::clone(&self.gateway),
            self.config_path.clone(),
        ));
        let summaries = tokio::spawn(write_refusal_summaries(Arc::clone(&self.gateway)));
        let anchors = tokio::spawn(log_anchors(Arc::clone(&self.gateway)));
        let expiries = tokio::spawn(log_key_expiry(
            Arc::clone(&self.gateway),
            self.config_path.clone(),
        ));
        let admin = self
            .admin
            .map(|listener| tokio::spawn(serve_admin(listener, Arc::clone(&self.gateway))));
        let builders = Arc::new(Builders::new(self.header_read));
        let slots = Arc::new(Semaphore::new(self.max_connections));
        let clients = Arc::new(ClientConnections::default());
        let mut accept = Acceptor::new("the inference listener");
        // Every connection's task, so that the ones still running when the drain is over can be
        // ended here, each request in them writing its audit record before the log closes.
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            // A place for the next connection first: at `maxConnections`, new ones wait in the
            // listen backlog until one closes.
            let slot = tokio::select! {
                () = &mut shutdown => break,
                slot = Arc::clone(&slots).acquire_owned() => slot,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let Ok(slot) = slot else { break };
            tokio::select! {
                () = &mut shutdown => break,
                accepted = accept.next(&self.listener) => {
                    let Some((stream, peer)) = accepted else { continue };
                    let Ok(client_place) = self.gateway.admit_client(&clients, peer) else {
                        // Closed at once: the client has its share of connections open.
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let serve = Connection {
                        gateway: Arc::clone(&self.gateway),
                        builders: Arc::clone(&builders),
                        tls: self.tls.clone(),
                        idle: self.header_read,
                        stage: self.gateway.stages(),
                    };
                    connections.spawn(async move {
                        serve.run(stream, peer, slot).await;
                        drop(client_place);
                    });
                }
                // Forget the connections that are over.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        self.gateway.withdraw();
        drop(self.listener);
        tracing::info!(
            "shutting down: waiting up to {:?} for requests in flight",
            self.drain
        );
        self.gateway.close_connections();
        let drained = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(self.drain, drained).await.is_err() {
            tracing::warn!("drain time is over; ending the requests still in flight");
            // Streams send their client a last error event and record themselves.
            self.gateway.end_streams();
            let ended = async { while connections.join_next().await.is_some() {} };
            if tokio::time::timeout(END_STREAMS, ended).await.is_err() {
                // What is left waits on a model server: dropping it records each request as
                // ended by the shutdown.
                connections.abort_all();
                while connections.join_next().await.is_some() {}
            }
        }
        // Streams are relayed by tasks of their own, which may write their record a moment
        // after their connection ended: the audit log closes after them.
        let recorded = async {
            while self.gateway.in_flight() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        if tokio::time::timeout(END_STREAMS, recorded).await.is_err() {
            tracing::warn!(
                in_flight = self.gateway.in_flight(),
                "requests still unrecorded when the audit log closes"
            );
        }
        reloader.abort();
        summaries.abort();
        anchors.abort();
        expiries.abort();
        if let Some(admin) = admin {
            admin.abort();
        }
        self.gateway.flush_refusal_summary();
        self.gateway.record_event(GatewayEvent::new("stop", None));
        drop(self.gateway);
        let logs = self.logs;
        tokio::task::spawn_blocking(move || logs.close())
            .await
            .map_err(|e| StartError::Shutdown(format!("the audit log writer failed: {e}")))??;
        Ok(())
    }
}

/// Writes each second's refusal summary once the second is over, also when no refusal comes
/// after it (a flood that stopped).
async fn write_refusal_summaries(gateway: Arc<Gateway>) {
    let mut every_second = tokio::time::interval(Duration::from_secs(1));
    every_second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every_second.tick().await;
        gateway.write_finished_refusal_summary();
    }
}

/// How often the audit log's anchor is logged while the log grows.
const ANCHOR_EVERY: Duration = Duration::from_secs(60);

/// Logs the audit log's anchor (its newest record's number and hash) at start, where the chain
/// resumed, then every [`ANCHOR_EVERY`] while it grows. The files alone cannot show that their
/// newest records were cut off, and a gateway killed outright logs no anchor as it closes: a
/// log shipped off the host keeps one a minute old at most.
async fn log_anchors(gateway: Arc<Gateway>) {
    let mut logged = Vec::new();
    loop {
        let anchors = gateway.log_anchors();
        for (prefix, last) in &anchors {
            if !logged.contains(&(*prefix, last.clone())) {
                log_anchor(prefix, last);
            }
        }
        logged = anchors;
        // A new log has no anchor until its `start` record is written, a moment from now.
        let wait = if logged.is_empty() {
            Duration::from_secs(1)
        } else {
            ANCHOR_EVERY
        };
        tokio::time::sleep(wait).await;
    }
}

/// How often keys are checked for having expired.
const KEY_EXPIRY_EVERY: Duration = Duration::from_secs(10);

/// Logs each API key as it expires, and then the tenants left with no way in: a key runs out
/// at its time, with no edit or reload to say so, and its clients would meet 401s with
/// nothing in the log.
async fn log_key_expiry(gateway: Arc<Gateway>, path: PathBuf) {
    let mut every = tokio::time::interval(KEY_EXPIRY_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut checked = jiff::Timestamp::now();
    loop {
        every.tick().await;
        let now = jiff::Timestamp::now();
        let runtime = gateway.runtime();
        let config = &runtime.config;
        let expired: Vec<_> = (config.auth.api_keys.iter())
            .filter(|key| !key.revoked)
            .filter(|key| key.expiry().is_some_and(|at| checked < at && at <= now))
            .collect();
        for key in &expired {
            tracing::warn!(
                "{}: API key `{}` of tenant {} expired at {}: requests with it are refused",
                path.display(),
                key.id,
                key.tenant,
                key.expires.as_deref().unwrap_or_default()
            );
        }
        if let Some(keyless) = expired.first().and_then(|_| config.keyless_warning(now)) {
            tracing::warn!("{}: {keyless}", path.display());
        }
        checked = now;
    }
}

async fn bind(address: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(address)
        .await
        .map_err(|reason| StartError::Bind { address, reason })
}

/// Accepts connections, resting after a failure (out of file descriptors…) instead of
/// retrying at once, and saying so at most every few seconds.
struct Acceptor {
    listener_name: &'static str,
    last_warning: Option<std::time::Instant>,
}

impl Acceptor {
    fn new(listener_name: &'static str) -> Acceptor {
        Acceptor {
            listener_name,
            last_warning: None,
        }
    }

    async fn next(&mut self, listener: &TcpListener) -> Option<(TcpStream, SocketAddr)> {
        match listener.accept().await {
            Ok(accepted) => Some(accepted),
            Err(error) => {
                let quiet = self
                    .last_warning
                    .is_some_and(|at| at.elapsed() < Duration::from_secs(5));
                if !quiet {
                    tracing::warn!(%error, "{} cannot accept connections", self.listener_name);
                    self.last_warning = Some(std::time::Instant::now());
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                None
            }
        }
    }
}

/// What serving one client connection needs.
struct Connection {
    gateway: Arc<Gateway>,
    builders: Arc<Builders>,
    tls: Option<TlsAcceptor>,
    /// How long it may ask nothing: `limits.requestRead`.
    idle: Duration,
    stage: watch::Receiver<Stage>,
}

impl Connection {
    /// The connection's whole life: its TLS handshake, then its requests. `slot` is its place
    /// among the open connections, given back when it ends.
    async fn run(mut self, stream: TcpStream, peer: SocketAddr, slot: OwnedSemaphorePermit) {
        let recorder = Arc::clone(&self.gateway);
        let gateway = self.gateway;
        let client: Arc<str> = Arc::from(peer.ip().to_string());
        let address = Arc::clone(&client);
        let activity = Activity::new();
        let asked = Arc::clone(&activity);
        let service = service_fn(move |request: Request<Incoming>| {
            let stream = asked.request(request.version());
            // An HTTP/2 connection opened while the gateway is out of service is served, and
            // then told to go.
            if stream.is_some() && gateway.withdrawn() {
                asked.ask_to_leave();
            }
            let gateway = Arc::clone(&gateway);
            // Boxed: hyper keeps a slot the size of this future for each connection's whole
            // life, and the request's own future is kilobytes (a thousand idle streams pay it
            // otherwise).
            let answer = Box::pin(handle(gateway, Arc::clone(&client), request));
            async move {
                let response = answer.await;
                if let Some(stream) = &stream {
                    stream.answered(response.status());
                }
                Ok::<_, Infallible>(response.map(|body| Answer::new(body, stream)))
            }
        });
        let (protocol, stream): (Protocol, Box<dyn ClientStream>) = match self.tls {
            None => {
                let told = unless_closing(&mut self.stage, plain_protocol(&stream, self.idle));
                // Boxed: its timers would otherwise keep room in the connection's task for
                // the connection's whole life.
                let Some(Some(protocol)) = Box::pin(told).await else {
                    return;
                };
                (
                    protocol,
                    Box::new(Watched::new(stream, Arc::clone(&activity))),
                )
            }
            Some(acceptor) => {
                let handshake = tokio::time::timeout(
                    Duration::from_secs(10),
                    acceptor.accept(Watched::new(stream, Arc::clone(&activity))),
                );
                // Boxed: the handshake's state is kilobytes, and every connection's task,
                // plain ones included, would otherwise keep room for it.
                let Some(Ok(Ok(stream))) =
                    Box::pin(unless_closing(&mut self.stage, handshake)).await
                else {
                    return;
                };
                // HTTP/2 over TLS is agreed on by ALPN (RFC 9113 §3.2): a client that names
                // no protocol speaks HTTP/1.1.
                let protocol = match stream.get_ref().1.alpn_protocol() {
                    Some(b"h2") => Protocol::Http2,
                    _ => Protocol::Http1,
                };
                (protocol, Box::new(stream))
            }
        };
        let io = TokioIo::new(stream);
        let (idle, stage) = (self.idle, self.stage);
        let served = match protocol {
            Protocol::Http1 => {
                let connection = self.builders.http1.serve_connection(io, service);
                serve_until_done(connection, activity, idle, stage)
            }
            Protocol::Http2 => {
                let connection = self.builders.http2.serve_connection(io, service);
                serve_until_done(connection, activity, idle, stage)
            }
        };
        let failed = served.await;
        if let Some(error) = failed {
            recorder.record_http_refusal(&address, &*error);
        }
        drop(slot);
    }
}

/// A client's connection, plain or TLS, so that one piece of code serves both.
trait ClientStream: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> ClientStream for T {}

/// The inference listener's settings for each protocol. A connection is served by the one its
/// client speaks, known before serving: hyper-util's builder for both would read a client's
/// first 24 bytes to tell, and hand them back to hyper as a read of their own, after which
/// hyper's 8 KiB read buffer, short of room for a whole read, doubles (16 KiB for every
/// HTTP/1.1 connection); and its connection, which may become either, is as large as an
/// HTTP/2 one (3.4 KiB a connection with its task's state, measured with dhat).
struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Builders {
    fn new(header_read: Duration) -> Self {
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(header_read)
            .keep_alive(true);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(1024)
            // Room for the largest token the verifier takes and the other headers, as HTTP/1.1
            // has (HTTP/2's default, 16 KiB, would refuse a token HTTP/1.1 accepts).
            .max_header_list_size(64 * 1024)
            // A peer that stops answering pings is gone: its connection is closed.
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(20));
        Builders { http1, http2 }
    }
}

/// What `future` gives, or none if the gateway begins to shut down first: a connection that has
/// asked nothing yet is then closed at once, as hyper closes an idle one.
async fn unless_closing<T>(
    stage: &mut watch::Receiver<Stage>,
    future: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        output = future => Some(output),
        _ = stage.wait_for(|stage| *stage == Stage::Closing) => None,
    }
}

/// The protocol a plain-text client speaks, from a peek at what it sent first; none when it
/// sends nothing within `idle` or closes without a word.
async fn plain_protocol(stream: &TcpStream, idle: Duration) -> Option<Protocol> {
    let deadline = tokio::time::Instant::now() + idle;
    let mut first = [0; HTTP2_PREFACE.len()];
    let mut pause = Duration::from_millis(1);
    loop {
        let peeked = tokio::time::timeout_at(deadline, stream.peek(&mut first)).await;
        let Ok(Ok(count @ 1..)) = peeked else {
            return None;
        };
        if let Some(protocol) = protocol_of(&first[..count]) {
            return Some(protocol);
        }
        // The start of the preface, and the rest still to come: a peek now would see the
        // same bytes at once (and its timeout never fire). Clients send the preface whole, so
        // this is rare.
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return None;
        }
        tokio::time::sleep_until(deadline.min(now + pause)).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// What a plain-text HTTP/2 client sends first (RFC 9113 §3.4).
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// What the first bytes a plain-text client sent say it speaks; none while they are only the
/// start of HTTP/2's preface.
fn protocol_of(first: &[u8]) -> Option<Protocol> {
    let compared = first.len().min(HTTP2_PREFACE.len());
    if first[..compared] != HTTP2_PREFACE[..compared] {
        Some(Protocol::Http1)
    } else if compared == HTTP2_PREFACE.len() {
        Some(Protocol::Http2)
    } else {
        None
    }
}

/// Serves `connection` until it ends. One that has asked nothing within `idle` of being
/// accepted (nothing at all, half a preface, headers that never end) is dropped, and so is one
/// whose client has taken nothing it was sent for `idle` (it stopped reading, or keeps its
/// HTTP/2 window shut), even while the gateway drains. It is asked to finish — an HTTP/2
/// GOAWAY, so that a request crossing it is answered or safely retried — when the gateway shuts
/// down, when it is taken out of service and the connection is HTTP/2 (HTTP/1.1 answers then
/// close theirs themselves; an idle one is left to its client's next request, which a close
/// could cross), or when, over HTTP/2, no stream has been open for `idle` (hyper itself closes
/// an HTTP/1.1 connection whose next request does not come within its header timeout, the same
/// `idle`). Gives back the error the connection ended in, if any.
///
/// Not an async fn: the future is boxed here, where the connection's type is known, because
/// rustc cannot prove a generic async fn holding hyper's connection Send (the higher-ranked
/// bound on its body's error). Boxing also keeps the kilobytes of the connection out of the
/// task that spawns it.
fn serve_until_done<C>(
    connection: C,
    activity: Arc<Activity>,
    idle: Duration,
    mut stage: watch::Receiver<Stage>,
) -> Pin<Box<dyn Future<Output = Option<BoxError>> + Send>>
where
    C: GracefulConnection + Send + 'static,
    C::Error: Into<BoxError>,
{
    // Boxed apart: pinned inside the future, it would take its room there twice (as the
    // argument moved in, and as the pinned copy).
    let mut connection = Box::pin(connection);
    Box::pin(async move {
        let mut deadline = tokio::time::Instant::now() + idle;
        loop {
            tokio::select! {
                // The connection first: a request that has just arrived is counted before the
                // deadline looks.
                biased;
                served = connection.as_mut() => return served.err().map(Into::into),
                changed = stage.changed() => match changed.map(|()| *stage.borrow_and_update()) {
                    Ok(Stage::Withdrawn) if !activity.multiplexed() => {}
                    // Closing, out of service over HTTP/2, or the gateway gone.
                    _ => break,
                },
                () = activity.asked_to_leave() => break,
                () = tokio::time::sleep_until(deadline) => {
                    let stalled = activity.stalled_for();
                    if !activity.asked() || stalled >= idle {
                        return None;
                    }
                    let quiet = if activity.multiplexed() { activity.quiet_for() } else { Duration::ZERO };
                    if quiet >= idle {
                        break;
                    }
                    deadline = tokio::time::Instant::now() + (idle - quiet).min(idle - stalled);
                }
            }
        }
        connection.as_mut().graceful_shutdown();
        // Once no stream is open, the close is given `idle` at most: h2 does not finish it
        // while an ended stream still has data its client's window never let out.
        let mut nothing_open_since = None;
        loop {
            let stalled = activity.stalled_for();
            let nothing_open = activity.multiplexed() && !activity.quiet_for().is_zero();
            if !nothing_open {
                nothing_open_since = None;
            }
            let waited = match nothing_open {
                true => nothing_open_since
                    .get_or_insert_with(tokio::time::Instant::now)
                    .elapsed(),
                false => Duration::ZERO,
            };
            if stalled >= idle || waited >= idle {
                return None;
            }
            tokio::select! {
                biased;
                served = connection.as_mut() => return served.err().map(Into::into),
                () = tokio::time::sleep((idle - stalled).min(idle - waited)) => {}
            }
        }
    })
}

/// The API listener's TLS: HTTP/2 or HTTP/1.1 by ALPN, with the certificate of the
/// configuration in force.
fn tls_acceptor(gateway: &Arc<Gateway>) -> Result<TlsAcceptor, StartError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(CurrentCertificate(Arc::clone(gateway))));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Each handshake serves the certificate of the configuration in force, so a renewed one
/// (cert-manager rotates them) is served from the next connection on, without a restart.
struct CurrentCertificate(Arc<Gateway>);

impl rustls::server::ResolvesServerCert for CurrentCertificate {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.0.runtime().served_certificate.clone()
    }
}

impl std::fmt::Debug for CurrentCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CurrentCertificate")
    }
}

/// Reloads the configuration when its file or a file it names (certificates, keys, CAs, a
/// JWKS) changes and then stays the same for a check, checked every half second, or on SIGHUP.
/// A configuration that does not load leaves the running one in place, and says why.
async fn watch_config(gateway: Arc<Gateway>, path: PathBuf) {
    let mut named = NamedFiles::default();
    let mut last_seen = stamps(&gateway, &path, &mut named);
    let mut changed_to = None;
    // Checks in a row that found the files changed again.
    let mut changing = 0;
    let mut hangup = hangup_signal();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let forced = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = recv_hangup(&mut hangup) => true,
        };
        // Taken before the reload reads the files, so that a write during it is seen next time.
        let now = stamps(&gateway, &path, &mut named);
        if !forced {
            if now == last_seen {
                changed_to = None;
                changing = 0;
                continue;
            }
            // A file written in place may parse half-written (cut after a tenant, before the
            // keys): a change is applied once it has stayed the same for a check, or after
            // five seconds of changes (a file rewritten in a loop must not hold back the rest,
            // a key's revocation among them).
            if changed_to.as_ref() != Some(&now) && changing < SETTLE_CHECKS {
                changed_to = Some(now);
                changing += 1;
                continue;
            }
        }
        changed_to = None;
        changing = 0;
        // A bug in a reload must not end the watcher: later fixes (and revocations) would never
        // be applied.
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reload(&gateway, &path)));
        if outcome.is_err() {
            gateway.metrics.reloads.add(&["failed"], 1);
            tracing::error!(
                "{}: reloading failed unexpectedly; the previous configuration keeps serving",
                path.display()
            );
        }
        last_seen = now;
    }
}

/// How many checks in a row may find the configuration's files changing before one is applied
/// all the same.
const SETTLE_CHECKS: u32 = 10;

/// Loads `path` and, if it is good, serves it from now on.
pub fn reload(gateway: &Gateway, path: &Path) -> bool {
    let current = gateway.runtime();
    let built = GatewayConfig::load(path)
        .map_err(|e| e.problems)
        .and_then(|config| Runtime::build(config, Some(&current)));
    match built {
        Ok(runtime) => {
            warn_of_tenants_left_unable(&runtime.config, path);
            let changes = changes::describe(&current.config, &runtime.config);
            let config_sha256 = runtime.config.file_sha256.clone();
            gateway.swap(runtime);
            for field in waiting_for_restart(gateway) {
                tracing::warn!(
                    "{}: `{field}` differs from what this process started with; it takes effect at the next restart",
                    path.display()
                );
            }
            gateway.metrics.reloads.add(&["applied"], 1);
            tracing::info!(
                "{}: configuration reloaded: {}",
                path.display(),
                changes::summary(&changes)
            );
            gateway.record_event(GatewayEvent {
                changes,
                ..GatewayEvent::new("reload", config_sha256)
            });
            true
        }
        Err(problems) => {
            gateway.metrics.reloads.add(&["rejected"], 1);
            gateway.record_event(GatewayEvent {
                problems: Some(problems.len()),
                ..GatewayEvent::new("reload_rejected", None)
            });
            tracing::error!(
                "{}: the new configuration was rejected; the previous one keeps serving:\n  {}",
                path.display(),
                problems.join("\n  ")
            );
            false
        }
    }
}

/// Says what leaves tenants unable to work (`gateway check` says it too): after an edit that
/// revoked a tenant's last key, its clients would meet 401s with nothing in the log.
fn warn_of_tenants_left_unable(config: &GatewayConfig, path: &Path) {
    for warning in config.tenant_warnings(jiff::Timestamp::now()) {
        tracing::warn!("{}: {warning}", path.display());
    }
}

/// The settings of the configuration in force that differ from those the process started with
/// and only a restart applies: its listeners and its audit log still run on the old ones.
pub fn waiting_for_restart(gateway: &Gateway) -> Vec<&'static str> {
    restart_only_changes(gateway.started_with(), &gateway.runtime().config)
}

fn restart_only_changes(old: &GatewayConfig, new: &GatewayConfig) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if old.listen != new.listen {
        changed.push("listen");
    }
    if old.admin_listen != new.admin_listen {
        changed.push("adminListen");
    }
    // A new certificate or key is served at once; switching TLS on or off needs a new listener.
    if old.tls.is_some() != new.tls.is_some() {
        changed.push("tls");
    }
    if old.audit != new.audit {
        changed.push("audit");
    }
    // Read when the listener starts: its connection limit, drain and header deadlines.
    let limits = [
        (
            "limits.maxConnections",
            old.limits.max_connections != new.limits.max_connections,
        ),
        ("limits.drain", old.limits.drain != new.limits.drain),
        (
            "limits.shutdownDelay",
            old.limits.shutdown_delay != new.limits.shutdown_delay,
        ),
        (
            "limits.requestRead",
            old.limits.request_read != new.limits.request_read,
        ),
    ];
    changed.extend(
        limits
            .iter()
            .filter(|(_, differs)| *differs)
            .map(|(field, _)| *field),
    );
    changed
}

/// What tells a file's versions apart: modification time, size and inode. The metadata of the
/// file a symbolic link points to, so that a Kubernetes volume's swap of its `..data` link counts.
type Stamp = Option<(SystemTime, u64, u64)>;

/// The configuration file's stamp and those of the files it names: the files the one on disk
/// names, so that a configuration refused for a file not there yet (a Secret mounted after its
/// ConfigMap) is tried again when the file comes; the running one's while the file on disk
/// cannot be read.
fn stamps(gateway: &Gateway, path: &Path, named: &mut NamedFiles) -> Vec<Stamp> {
    let own = file_stamp(path);
    if named.read_at != Some(own) {
        // Stamped before reading: a write during the read is seen at the next check.
        named.read_at = Some(own);
        named.files = GatewayConfig::load(path).ok().map(|config| {
            (config.named_files().into_iter())
                .map(Path::to_path_buf)
                .collect()
        });
    }
    let running;
    let files = match &named.files {
        Some(files) => files.iter().map(PathBuf::as_path).collect(),
        None => {
            running = gateway.runtime();
            running.config.named_files()
        }
    };
    std::iter::once(own)
        .chain(files.into_iter().map(file_stamp))
        .collect()
}

/// The files the configuration file names, as it named them when last read: read again only
/// when its stamp changes, not at each check (a parse of the whole file, twice a second, on a
/// thread that serves requests).
#[derive(Default)]
struct NamedFiles {
    /// The file's stamp when it was read; `None` before the first read.
    read_at: Option<Stamp>,
    /// `None` when the file could not be loaded.
    files: Option<Vec<PathBuf>>,
}

fn file_stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}
#[cfg(not(unix))]
fn hangup_signal() -> Hangup {
    None
}

#[cfg(unix)]
async fn recv_hangup(signal: &mut Hangup) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}
#[cfg(not(unix))]
async fn recv_hangup(_: &mut Hangup) -> Option<()> {
    std::future::pending().await
}

/// `/metrics`, `/healthz`, `/readyz` on the operator listener: a few connections at a time,
/// each given a few seconds to ask.
async fn serve_admin(listener: TcpListener, gateway: Arc<Gateway>) {
    const ASK_WITHIN: Duration = Duration::from_secs(10);
    let slots = Arc::new(Semaphore::new(ADMIN_CONNECTIONS));
    let mut accept = Acceptor::new("the operator listener");
    // Never raised: the operator listener's connections end with the process (or, when this
    // loop is aborted at shutdown and the sender dropped, are asked to finish).
    let (_stage, stage_seen) = watch::channel(Stage::Serving);
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let Some((stream, _)) = accept.next(&listener).await else {
            continue;
        };
        let gateway = Arc::clone(&gateway);
        let activity = Activity::new();
        let asked = Arc::clone(&activity);
        let service = service_fn(move |request: Request<Incoming>| {
            asked.request(request.version());
            let response = admin_response(&gateway, request.method(), request.uri().path());
            async move { Ok::<_, Infallible>(response) }
        });
        // Not the gateway's stage: `/readyz` must answer while it is out of service.
        let stage = stage_seen.clone();
        tokio::spawn(async move {
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(ASK_WITHIN)
                .serve_connection(TokioIo::new(stream), service);
            serve_until_done(connection, activity, ASK_WITHIN, stage).await;
            drop(slot);
        });
    }
}

fn admin_response(gateway: &Gateway, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let reads = *method == Method::GET || *method == Method::HEAD;
    let (status, content_type, body) = match path {
        "/metrics" | "/healthz" | "/readyz" if !reads => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            format!("{path} takes GET or HEAD\n"),
        ),
        "/metrics" => {
            gateway.forget_idle_callers();
            let (written, dropped, summarised) = gateway.audit_counts();
            let metrics = &gateway.metrics;
            for (state, count) in [
                ("written", written),
                ("dropped", dropped),
                ("summarised", summarised),
            ] {
                metrics.audit.set(&[state], count);
            }
            if let Some(last) = gateway.audit_anchor() {
                metrics.audit_seq.set(&[], last.seq as f64);
            }
            if let Some((written, dropped)) = gateway.content_counts() {
                metrics.content.set(&["written"], written);
                metrics.content.set(&["dropped"], dropped);
            }
            for (log, failing, queued) in gateway.audit_writers() {
                metrics
                    .audit_failing
                    .set(&[log], f64::from(u8::from(failing)));
                metrics.audit_queued.set(&[log], queued as f64);
            }
            (
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                gateway.metrics.render(),
            )
        }
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/readyz" if gateway.withdrawn() => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "draining\n".to_owned(),
        ),
        "/readyz" if gateway.audit_closed() => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "the audit log cannot be written\n".to_owned(),
        ),
        "/readyz" => (StatusCode::OK, "text/plain", "ready\n".to_owned()),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = http::HeaderValue::try_from(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response
            .headers_mut()
            .insert(header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
    }
    response
}

#[cfg(test)]
mod protocol_tests {
    use super::*;

    #[test]
    fn a_plain_client_is_known_by_its_first_bytes() {
        assert_eq!(
            protocol_of(b"POST /v1/chat/completions HTTP/1.1\r\n"),
            Some(Protocol::Http1)
        );
        assert_eq!(protocol_of(b"G"), Some(Protocol::Http1));
        assert_eq!(protocol_of(HTTP2_PREFACE), Some(Protocol::Http2));
        let with_settings = [HTTP2_PREFACE, b"\0\0\0\x04\0\0\0\0\0"].concat();
        assert_eq!(protocol_of(&with_settings), Some(Protocol::Http2));
        // The start of the preface could still be either, and so could one byte of `POST`.
        assert_eq!(protocol_of(b"PRI * HTTP/2"), None);
        assert_eq!(protocol_of(b"P"), None);
        assert_eq!(protocol_of(b"PRI * HTTP/1.1\r\n"), Some(Protocol::Http1));
    }
}

#[cfg(test)]
mod restart_tests {
    use super::*;

    #[test]
    fn a_start_error_tells_its_cause_once() {
        let in_use = || std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let taken = StartError::Bind {
            address: "127.0.0.1:18080".parse().unwrap(),
            reason: in_use(),
        };
        let text = crate::error::chain(&taken);
        assert_eq!(text.matches(&in_use().to_string()).count(), 1, "{text}");
        let locked = StartError::from(hangar_ledger::LedgerError::Locked {
            path: "/var/log/hangar/content.lock".into(),
        });
        assert_eq!(
            crate::error::chain(&locked),
            "audit log: /var/log/hangar/content.lock is locked: another ledger already writes this prefix there"
        );
    }

    #[test]
    fn listener_settings_are_said_to_need_a_restart() {
        let yaml = |limits: &str| {
            format!(
                "listen: 127.0.0.1:0\nauth: {{apiKeys: [{{id: k, tenant: t, prefix: abcdefgh, sha256: \"sha256:{}\"}}]}}\ntenants: {{t: {{models: [\"*\"]}}}}\nmodels: {{}}\naudit: {{dir: /tmp/a, retentionDays: 1}}\nlimits: {{{limits}}}\n",
                "0".repeat(64)
            )
        };
        let config = |limits: &str| GatewayConfig::from_yaml(&yaml(limits)).unwrap();
        let old = config("maxConnections: 10, drain: 5s, requestRead: 10s");
        assert!(restart_only_changes(&old, &old).is_empty());
        let new = config("maxConnections: 20, drain: 6s, requestRead: 11s");
        assert_eq!(
            restart_only_changes(&old, &new),
            [
                "limits.maxConnections",
                "limits.drain",
                "limits.requestRead"
            ]
        );
    }
}
