//! One request through the gateway: authenticate → tenant policy → guards → limits → route →
//! model server (streamed) → response guards → audit record and metrics.

use std::borrow::Cow;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper::body::Incoming;
use serde_json::{Map, Value, json};

use hangar_guard::{CanaryWatch, ExtractionAlert, ExtractionMonitor, ExtractionSignals};

use crate::audit::{AuditRecord, AuditSink, ContentRecord, GuardDecision, millis};
use crate::auth::{AuthError, Identity};
use crate::clients::{ClientConnections, ClientPlace, TooManyConnections};
use crate::config::{CapField, GatewayConfig, GuardAction};
use crate::error::Refusal;
use crate::json::Json;
use crate::limits::{Admission, Limiter};
use crate::metrics::Metrics;
use crate::refusals::RefusalBudget;
use crate::request::{self, Endpoint, Inspected};
use crate::routes::{Caller, Version};
use crate::runtime::{Runtime, Tenant};
use crate::stream::{
    self, BoxError, ChoiceText, KeptText, KeptTexts, StreamEnd, StreamRules, StreamSummary,
};
use crate::upstream::{UpstreamBody, UpstreamError, head_size};

/// The response body the gateway sends: a whole body or an observed stream.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// Header a tenant allowed to pin uses to choose a version; also sent back with the version.
pub const VERSION_HEADER: &str = "x-hangar-version";
/// Header naming the session for `sticky: session`.
pub const SESSION_HEADER: &str = "x-session-id";
/// Header that tells the client a guard flagged its request.
pub const GUARD_HEADER: &str = "x-hangar-guard";
/// Header carrying the gateway's request id to the model server.
const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// Largest non-streamed answer read from a model server.
const MAX_ANSWER: usize = 64 << 20;
/// Largest error body passed on from a model server.
const MAX_UPSTREAM_ERROR: usize = 64 << 10;

/// When to try again while the audit log cannot be written (`audit.failClosed`).
const AUDIT_RETRY: Duration = Duration::from_secs(5);

/// The state that outlives configuration reloads.
pub struct Gateway {
    runtime: arc_swap::ArcSwap<Runtime>,
    /// Tenant usage against their limits.
    pub limiter: Arc<Limiter>,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    audit: AuditSink,
    extraction: Mutex<ExtractionMonitor>,
    ids: RequestIds,
    started: Instant,
    /// Set at the end of the drain: streams still open end with an error event.
    shutdown: tokio::sync::watch::Sender<bool>,
    /// Refusals past `audit.refusalsPerSecond` are counted here, not recorded one by one.
    refusals: RefusalBudget,
    /// The configuration the process started with: its listeners and audit log keep these
    /// settings until a restart (`audit.refusalsPerSecond` among them).
    started_with: GatewayConfig,
    /// How many refusals were only counted so far.
    summarised: AtomicU64,
    /// Where the gateway is in its life, for the connections to follow.
    stage: tokio::sync::watch::Sender<Stage>,
    /// The stage is past `Serving`: read for every answer, so not through the watch's lock.
    withdrawn: AtomicBool,
}

/// Where the gateway is in its life, as its client connections see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Serving,
    /// Out of service but still serving (see [`Gateway::withdraw`]).
    Withdrawn,
    /// Shutting down: every connection is asked to finish.
    Closing,
}

impl Gateway {
    /// A gateway serving `runtime`, recording to `audit`.
    pub fn new(runtime: Runtime, audit: AuditSink) -> Gateway {
        let thresholds = extraction_thresholds(&runtime);
        let started_with = runtime.config.clone();
        let metrics = Metrics::default();
        metrics.show_expiries(&runtime);
        Gateway {
            runtime: arc_swap::ArcSwap::from_pointee(runtime),
            limiter: Arc::new(Limiter::default()),
            metrics: Arc::new(metrics),
            audit,
            extraction: Mutex::new(ExtractionMonitor::new(thresholds)),
            ids: RequestIds::new(),
            started: Instant::now(),
            shutdown: tokio::sync::watch::Sender::new(false),
            refusals: RefusalBudget::default(),
            started_with,
            summarised: AtomicU64::new(0),
            stage: tokio::sync::watch::Sender::new(Stage::Serving),
            withdrawn: AtomicBool::new(false),
        }
    }

    /// Takes the gateway out of service while it still serves: `/readyz` answers 503, each
    /// HTTP/1.1 answer closes its connection, and each HTTP/2 connection is sent GOAWAY once
    /// it has been asked something, so that clients reconnect (to another replica, once the
    /// Service has dropped this one) rather than reuse a connection about to close.
    pub fn withdraw(&self) {
        self.withdrawn.store(true, Ordering::Relaxed);
        self.stage.send_if_modified(|stage| {
            let serving = *stage == Stage::Serving;
            if serving {
                *stage = Stage::Withdrawn;
            }
            serving
        });
    }

    /// Whether [`Gateway::withdraw`] was called.
    pub fn withdrawn(&self) -> bool {
        self.withdrawn.load(Ordering::Relaxed)
    }

    /// Asks every client connection to finish (the gateway shuts down).
    pub(crate) fn close_connections(&self) {
        self.withdrawn.store(true, Ordering::Relaxed);
        self.stage.send_replace(Stage::Closing);
    }

    /// Follows the gateway's stage, from the current one.
    pub(crate) fn stages(&self) -> tokio::sync::watch::Receiver<Stage> {
        self.stage.subscribe()
    }

    /// Ends the streams still open (after the drain time), so each writes its record.
    pub fn end_streams(&self) {
        self.shutdown.send_replace(true);
    }

    /// Requests (streams included) not yet finished.
    pub fn in_flight(&self) -> u64 {
        self.metrics.in_flight.load(Ordering::Relaxed)
    }

    /// The configuration serving now.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// A place for a new connection from `peer` under `limits.maxConnectionsPerClient` (read at
    /// each connection, so a reload applies to the next ones): `None` when its client is not
    /// limited, and an error when it has its share open.
    pub(crate) fn admit_client(
        &self,
        clients: &Arc<ClientConnections>,
        peer: std::net::SocketAddr,
    ) -> Result<Option<ClientPlace>, TooManyConnections> {
        let runtime = self.runtime.load();
        let Some(most) = runtime.config.limits.max_connections_per_client else {
            return Ok(None);
        };
        let address = peer.ip();
        if (runtime.trusted_proxies.iter()).any(|block| block.contains(address)) {
            return Ok(None);
        }
        match clients.admit(address, most) {
            Some(place) => Ok(Some(place)),
            None => {
                self.metrics.client_connections_refused.add(&[], 1);
                tracing::debug!(client = %address, most, "connection refused: the client has its share open");
                Err(TooManyConnections)
            }
        }
    }

    /// The configuration the process started with, whose listener and audit settings stay in
    /// force until a restart whatever a reload brings.
    pub fn started_with(&self) -> &GatewayConfig {
        &self.started_with
    }

    /// Serves `runtime` from now on; requests in flight finish with the one they started with.
    pub fn swap(&self, runtime: Runtime) {
        let thresholds = extraction_thresholds(&runtime);
        let mut monitor = self.extraction.lock().unwrap_or_else(|p| p.into_inner());
        // New thresholds start new windows; unchanged ones keep what was seen. The old
        // windows' gauges go with them, or they would show their last values for ever.
        if *monitor.thresholds() != thresholds {
            *monitor = ExtractionMonitor::new(thresholds);
            self.metrics.extraction.set_exactly([]);
        }
        drop(monitor);
        self.metrics.show_expiries(&runtime);
        self.runtime.store(Arc::new(runtime));
    }

    /// Drops the extraction gauges of callers the monitor has forgotten (idle for a whole
    /// window, or evicted), which would otherwise show their last values for ever.
    pub fn forget_idle_callers(&self) {
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let forgotten = self
            .extraction
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .forget_idle(now_ms);
        forget_gauges(&self.metrics, &forgotten);
    }

    /// The audit counts, for the metrics page: records written and dropped, refusals
    /// summarised.
    pub fn audit_counts(&self) -> (u64, u64, u64) {
        let (written, dropped) = self.audit.counts();
        (written, dropped, self.summarised.load(Ordering::Relaxed))
    }

    /// Records what the gateway itself did (started, reloaded, stopped) in the audit chain.
    pub fn record_event(&self, event: crate::audit::GatewayEvent) {
        self.audit.event(event);
    }

    /// Whether requests are to be refused: `audit.failClosed` is set, and records may be lost
    /// (a log cannot be written, or its writer falls behind).
    pub fn audit_closed(&self) -> bool {
        if !self.started_with.audit.fail_closed {
            return false;
        }
        let pending = (self.limiter.in_flight()).saturating_add(self.limiter.reading());
        self.audit.may_lose_records(pending as usize)
    }

    /// Each log with whether its writes fail and the records waiting, for the metrics.
    pub fn audit_writers(&self) -> Vec<(&'static str, bool, usize)> {
        self.audit.writers().collect()
    }

    /// The newest record written to each log (`audit`, `content`).
    pub fn log_anchors(&self) -> Vec<(&'static str, hangar_ledger::Anchor)> {
        self.audit.anchors()
    }

    /// Content records written and dropped, when content is logged.
    pub fn content_counts(&self) -> Option<(u64, u64)> {
        self.audit.content_counts()
    }

    /// The newest record written to the audit log.
    pub fn audit_anchor(&self) -> Option<hangar_ledger::Anchor> {
        self.audit.anchor()
    }

    /// Whether a refusal gets an audit record of its own (see [`RefusalBudget`]). Writes the
    /// summary of the second before when that one is over.
    fn admit_refusal(&self, record: &AuditRecord) -> bool {
        let now = jiff::Timestamp::now().as_second();
        let per_second = self.started_with.audit.refusals_per_second;
        let (own, over) = self.refusals.admit(now, per_second, record);
        if let Some(summary) = over {
            self.audit.refusals(summary);
        }
        if !own {
            self.summarised.fetch_add(1, Ordering::Relaxed);
        }
        own
    }

    /// Writes the refusal summary of a second that is over and had no refusal after it to do
    /// so (called every second).
    pub fn write_finished_refusal_summary(&self) {
        let now = jiff::Timestamp::now().as_second();
        if let Some(summary) = self.refusals.finished(now) {
            self.audit.refusals(summary);
        }
    }

    /// Writes the refusal summary of the current second too (at shutdown).
    pub fn flush_refusal_summary(&self) {
        if let Some(summary) = self.refusals.flush() {
            self.audit.refusals(summary);
        }
    }

    fn request_id(&self) -> String {
        self.ids.next()
    }

    /// Records a request that hyper refused and answered itself, before the gateway saw it:
    /// headers too large or too many (431), a URI too long (414), a request line or header that
    /// is not HTTP (400). A scanner's probes are requests a security team wants to see.
    pub(crate) fn record_http_refusal(
        &self,
        client: &str,
        error: &(dyn std::error::Error + 'static),
    ) {
        let Some((status, code)) = http_refusal(error) else {
            return;
        };
        let mut exchange =
            Exchange::new(Instant::now(), self.request_id(), client, "none".to_owned());
        exchange.record.status = status;
        exchange.record.code = Some(code.to_owned());
        finish(self, exchange);
    }
}

/// The status hyper answered a connection's error with, and the code the audit record gives
/// it; `None` for errors hyper answers nothing to (a client gone, a timeout, a broken body).
fn http_refusal(error: &(dyn std::error::Error + 'static)) -> Option<(u16, &'static str)> {
    let error = error.downcast_ref::<hyper::Error>()?;
    // A status line is a client's error; an HTTP/2 preface on an HTTP/1.1 connection is not
    // answered.
    if !error.is_parse() || error.is_parse_status() || error.is_parse_version_h2() {
        return None;
    }
    // hyper says which of its two size limits was met only in its message (to check again at
    // each hyper upgrade, with `internal error` below: `tests/serving.rs` covers 414 and 431).
    let message = error.to_string();
    if error.is_parse_too_large() {
        return Some(match message.as_str() {
            "URI too long" => (414, "uri_too_long"),
            _ => (431, "request_header_too_large"),
        });
    }
    // Its own failure, which it answers nothing to.
    if message.starts_with("internal error") {
        return None;
    }
    Some((400, "malformed_request"))
}

/// Request ids, sent to the model server too: a random prefix per process, for replicas started
/// together must not hand a model server the same id at once (vLLM took it for its engine's id,
/// and a repeated one in flight failed requests), then the request's number through SipHash
/// under a random key: a keyed function, so nothing in two ids tells a client how many
/// requests came between them, at a fraction of an HMAC's cost.
struct RequestIds {
    prefix: u64,
    /// std's hasher: SipHash keyed with 128 random bits from the system.
    key: std::collections::hash_map::RandomState,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> RequestIds {
        let key = std::collections::hash_map::RandomState::new();
        RequestIds {
            prefix: key.hash_one("hangar request ids"),
            key,
            next: AtomicU64::new(0),
        }
    }

    fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("hg-{:016x}-{:016x}", self.prefix, self.key.hash_one(n))
    }
}

fn extraction_thresholds(runtime: &Runtime) -> hangar_guard::ExtractionThresholds {
    let config = runtime.config.guards.extraction;
    hangar_guard::ExtractionThresholds {
        window: config.window.get(),
        min_requests: config.min_requests,
        distinct_ratio: config.distinct_ratio,
        output_input_ratio: config.output_input_ratio,
    }
}

/// What is known about a request as it goes, for its audit record and metrics.
#[derive(Debug, Clone)]
struct Exchange {
    started: Instant,
    record: AuditRecord,
    /// Time waiting on the model server, when the request reached it.
    upstream: Option<Duration>,
    /// When the request was sent to a model server: a client that leaves after that has still
    /// had a model work for it.
    sent_upstream: Option<Instant>,
    first_token: Option<Duration>,
    /// Time waiting on the client: for its body, and for it to take a stream's events. Not the
    /// gateway's overhead.
    client_wait: Duration,
    /// The request's body was read to its end.
    body_read: bool,
    /// Prompt texts after redaction, kept only when content is logged.
    redacted_prompt: Vec<String>,
    /// A refusal whose content is logged with its audit record (a blocked injection).
    refusal_content: bool,
    /// The prompt's normalised text for the extraction monitor.
    prompt_digest_text: String,
    /// Counts the request in flight until the last copy of the exchange is gone (for a stream,
    /// the one its finisher holds).
    in_flight: Option<Arc<InFlight>>,
}

/// One request in the in-flight gauge.
#[derive(Debug)]
struct InFlight(Arc<Metrics>);

impl InFlight {
    fn new(metrics: &Arc<Metrics>) -> Arc<InFlight> {
        metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        Arc::new(InFlight(Arc::clone(metrics)))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Exchange {
    fn new(started: Instant, id: String, client: &str, endpoint: String) -> Exchange {
        let mut exchange = Exchange::blank(started);
        exchange.record = AuditRecord {
            kind: "request",
            id,
            started: format!("{:.6}", jiff::Timestamp::now()),
            client: client.to_owned(),
            endpoint,
            ..AuditRecord::default()
        };
        exchange
    }

    /// An exchange with nothing in it (allocates nothing).
    fn blank(started: Instant) -> Exchange {
        Exchange {
            started,
            record: AuditRecord::default(),
            upstream: None,
            sent_upstream: None,
            first_token: None,
            client_wait: Duration::ZERO,
            body_read: false,
            redacted_prompt: Vec::new(),
            refusal_content: false,
            prompt_digest_text: String::new(),
            in_flight: None,
        }
    }

    fn guard(&mut self, guard: &'static str, action: &'static str, detail: String) {
        self.record.guards.push(GuardDecision {
            guard,
            action,
            detail,
        });
    }
}

/// Serves one request from `client` (the peer's address, written once per connection). Never
/// fails: every problem is an OpenAI-shaped error response.
pub async fn handle(
    gateway: Arc<Gateway>,
    client: Arc<str>,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let runtime = gateway.runtime();
    let endpoint = Endpoint::from_path(request.uri().path());
    let endpoint_name = endpoint.map_or("none", Endpoint::as_str).to_owned();
    let forwarded = forwarded_client(&runtime, &client, request.headers());
    let client = forwarded.as_deref().unwrap_or(&*client);
    let mut exchange = Exchange::new(started, gateway.request_id(), client, endpoint_name);
    exchange.record.client_request_id = client_request_id(request.headers(), &runtime);
    let mut pending = Pending::new(&gateway, exchange);
    let (head, mut body) = request.into_parts();
    let outcome = serve(
        &gateway,
        &runtime,
        &mut pending.exchange,
        endpoint,
        &head,
        &mut body,
    )
    .await;
    let mut exchange = pending.answered();
    let request_id = exchange.record.id.clone();
    // A body that broke off (bad chunked framing) has ended, but its connection cannot go on.
    let body_broke = matches!(&outcome, Err(refusal) if refusal.code == "body_read_failed");
    let body_read = exchange.body_read;
    let mut response = match outcome {
        Ok(Served::Whole(response)) => {
            exchange.record.status = response.status().as_u16();
            finish_answered(&gateway, exchange);
            response
        }
        // The stream's own finisher records it when the last byte is sent.
        Ok(Served::Streaming(response)) => response,
        Err(refusal) => {
            exchange.record.status = refusal.status.as_u16();
            exchange.record.code = Some(refusal.code.to_owned());
            if refusal.status == StatusCode::TOO_MANY_REQUESTS
                || refusal.code == "gateway_overloaded"
            {
                let tenant = exchange.record.tenant.as_deref().unwrap_or("");
                gateway.metrics.limited.add(&[tenant, refusal.code], 1);
            }
            // A failure of a model server names its version too, as an answer does.
            let version = (exchange.sent_upstream)
                .and(exchange.record.version.as_deref())
                .and_then(|name| HeaderValue::try_from(name).ok());
            finish(&gateway, exchange);
            let mut response = refusal.into_response::<Full<Bytes>>().map(boxed);
            if let Some(version) = version {
                (response.headers_mut()).insert(HeaderName::from_static(VERSION_HEADER), version);
            }
            response
        }
    };
    if let Ok(id) = HeaderValue::try_from(request_id) {
        response.headers_mut().insert("x-request-id", id);
    }
    // Over HTTP/2 an unread body costs its stream alone.
    let one_at_a_time = head.version < http::Version::HTTP_2;
    let unread =
        one_at_a_time && !body_read && (body_broke || !drain_rest(&mut body, &head.headers).await);
    // A refused credential ends its connection: a client without a key must not hold a place
    // among `maxConnections` by asking now and then (HTTP/2: see `OpenStream::answered`).
    let refused_credential = response.status() == StatusCode::UNAUTHORIZED;
    if unread || (one_at_a_time && (gateway.withdrawn() || refused_credential)) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The client behind a trusted proxy (`trustedProxies`), when the peer is one and names it.
fn forwarded_client(runtime: &Runtime, peer: &str, headers: &HeaderMap) -> Option<String> {
    if runtime.trusted_proxies.is_empty() {
        return None;
    }
    let peer = peer.parse().ok()?;
    crate::forwarded::client(peer, headers, &runtime.trusted_proxies).map(|ip| ip.to_string())
}

/// The most other versions a request a model server did not run goes to.
const MAX_FAILOVERS: usize = 2;

/// The longest client `x-request-id` recorded.
const MAX_CLIENT_REQUEST_ID: usize = 128;

/// The method and path of a request for a path the gateway does not serve, for its record:
/// percent-decoded, redacted (a path can carry anything), and cut at [`MAX_PROBED_PATH`] bytes
/// after redaction, so that a cut never leaves part of a secret unmasked.
fn probed_path(runtime: &Runtime, request: &http::request::Parts) -> String {
    let method = stream::prefix_within(request.method.as_str(), 16);
    let path = percent_encoding::percent_decode_str(request.uri.path()).decode_utf8_lossy();
    // What is past the cut is read only for a secret the cut would split: no key is longer.
    let path = stream::prefix_within(&path, MAX_PROBED_PATH + 4096);
    let probed = format!("{method} {path}");
    match &runtime.redactor {
        Some(redactor) => redactor
            .redact_prefix(&probed, MAX_PROBED_PATH)
            .text
            .into_owned(),
        None => stream::prefix_within(&probed, MAX_PROBED_PATH).to_owned(),
    }
}

/// The longest path kept in a record.
const MAX_PROBED_PATH: usize = 256;

/// The client's own `x-request-id`, for its record: only short printable ASCII, as anything
/// else could not be trusted in a log line or a trace search, and redacted as prompts are
/// (applications build ids from e-mail addresses and account numbers).
fn client_request_id(headers: &HeaderMap, runtime: &Runtime) -> Option<String> {
    let value = headers.get(REQUEST_ID_HEADER)?.as_bytes();
    let printable = value.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
    if value.is_empty() || value.len() > MAX_CLIENT_REQUEST_ID || !printable {
        return None;
    }
    let value = std::str::from_utf8(value).ok()?;
    Some(match &runtime.redactor {
        Some(redactor) => redactor.redact(value).text.into_owned(),
        None => value.to_owned(),
    })
}

/// The most of a request body left unread that is drained to keep its connection open.
const DRAIN_AT_MOST: usize = 64 * 1024;
/// How long the rest of a request body is waited for, to keep its connection open.
const DRAIN_WITHIN: Duration = Duration::from_millis(250);

/// Reads a model server's refusal to its end, [`MAX_UPSTREAM_ERROR`] within [`DRAIN_WITHIN`] at
/// most, so that its connection goes back to the pool: a server shedding load (TGI's 429s past
/// its concurrency) is not made to accept a new connection for each request it refuses.
async fn drain_refusal(mut body: UpstreamBody) {
    let drain = async {
        let mut budget = MAX_UPSTREAM_ERROR;
        while let Some(Ok(frame)) = body.frame().await {
            let size = frame.data_ref().map_or(0, Bytes::len);
            let Some(left) = budget.checked_sub(size) else {
                return;
            };
            budget = left;
        }
    };
    let _ = tokio::time::timeout(DRAIN_WITHIN, drain).await;
}

/// Reads and drops what is left of a request body (all of it, when a refusal came before reading
/// it), [`DRAIN_AT_MOST`] within [`DRAIN_WITHIN`] at most, and says whether it ended. When it did
/// not, hyper closes the HTTP/1.1 connection after the answer, and the answer must say so:
/// otherwise the client may send its next request into the closing socket and get no answer.
/// Draining also spares a client still sending a reset before it has read the answer. A client
/// that waits to be asked for its body (`Expect: 100-continue`) is not asked: polling the body
/// would make hyper send `100 Continue`.
async fn drain_rest(body: &mut Incoming, headers: &HeaderMap) -> bool {
    if body.is_end_stream() {
        return true;
    }
    let expects_continue = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        return false;
    }
    let drain = async {
        let mut budget = DRAIN_AT_MOST;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return false;
            };
            let size = frame.data_ref().map_or(0, Bytes::len);
            match budget.checked_sub(size) {
                Some(left) => budget = left,
                None => return false,
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_WITHIN, drain)
        .await
        .unwrap_or(false)
}

/// A request being served. If its future is dropped before the answer, the drop still writes
/// its audit record: status 499 when the client went away, 503 when the gateway ended it at
/// the end of its drain.
struct Pending<'a> {
    gateway: &'a Gateway,
    exchange: Exchange,
    answered: bool,
}

impl<'a> Pending<'a> {
    fn new(gateway: &'a Gateway, mut exchange: Exchange) -> Self {
        exchange.in_flight = Some(InFlight::new(&gateway.metrics));
        Pending {
            gateway,
            exchange,
            answered: false,
        }
    }

    /// The exchange, now answered: the caller records it.
    fn answered(mut self) -> Exchange {
        self.answered = true;
        self.take()
    }

    /// The exchange, leaving a blank one (which allocates nothing) in its place.
    fn take(&mut self) -> Exchange {
        let blank = Exchange::blank(self.exchange.started);
        std::mem::replace(&mut self.exchange, blank)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.answered {
            let mut exchange = self.take();
            let (status, code) = if *self.gateway.shutdown.borrow() {
                (503, "gateway_shutdown")
            } else {
                (499, "client_disconnected")
            };
            exchange.record.status = status;
            exchange.record.code = Some(code.to_owned());
            if exchange.upstream.is_none() {
                exchange.upstream = exchange.sent_upstream.map(|sent| sent.elapsed());
            }
            finish(self.gateway, exchange);
        }
    }
}

enum Served {
    Whole(Response<ProxyBody>),
    Streaming(Response<ProxyBody>),
}

async fn serve(
    gateway: &Arc<Gateway>,
    runtime: &Arc<Runtime>,
    exchange: &mut Exchange,
    endpoint: Option<Endpoint>,
    request: &http::request::Parts,
    body: &mut Incoming,
) -> Result<Served, Refusal> {
    let Some(endpoint) = endpoint else {
        exchange.record.path = Some(probed_path(runtime, request));
        // A probe with a credential is recorded under it: who tried the admin routes.
        if bearer(&request.headers).is_some()
            && let Ok(identity) = identify(runtime, &request.headers, exchange).await
            && runtime.tenants.contains_key(&*identity.tenant)
        {
            exchange.record.tenant = Some(identity.tenant.to_string());
        }
        return Err(Refusal::not_found(
            "unknown_url",
            format!("no route for {} {}", request.method, request.uri.path()),
        ));
    };
    if request.method != endpoint.method() {
        return Err(Refusal {
            status: StatusCode::METHOD_NOT_ALLOWED,
            allow: Some(endpoint),
            ..Refusal::bad_request(
                "method_not_allowed",
                format!("{} takes {}", request.uri.path(), endpoint.method()),
            )
        });
    }
    let identity = identify(runtime, &request.headers, exchange).await?;
    // Only a tenant of the configuration is recorded (and so becomes a metrics label): a token
    // may name any.
    let tenant = runtime.tenants.get(&*identity.tenant).ok_or_else(|| {
        Refusal::forbidden(
            "unknown_tenant",
            "the credential names a tenant this gateway does not serve",
        )
    })?;
    exchange.record.tenant = Some(identity.tenant.to_string());
    if !tenant.may_call(endpoint) {
        return Err(Refusal::forbidden(
            "endpoint_not_allowed",
            format!("this tenant may not call {}", endpoint.path()),
        ));
    }
    if endpoint == Endpoint::Models {
        let listing = match request::model_in_path(request.uri.path()) {
            Some(name) => model(runtime, tenant, &name, exchange)?,
            None => models(runtime, tenant),
        };
        return Ok(Served::Whole(listing));
    }

    if gateway.audit_closed() {
        return Err(Refusal::unavailable(
            "audit_unavailable",
            "the gateway cannot write its audit log, and serves no request it cannot record",
            AUDIT_RETRY,
        ));
    }
    let max_concurrent = runtime.config.limits.max_concurrent;
    // Bodies being read count against the same caps as requests in flight: a tenant cannot
    // make the gateway hold and scan a thousand bodies to refuse them after.
    let reading = (gateway.limiter).start_reading(&tenant.name, tenant.limits, max_concurrent)?;
    let read_limit = runtime.config.limits.request_read.get();
    let read_started = Instant::now();
    let read = read_body(body, &request.headers, tenant.max_body_bytes, read_limit).await;
    exchange.client_wait += read_started.elapsed();
    let bytes = read?;
    exchange.body_read = true;
    let size_hint = bytes.len();
    let mut body = request::parse(&bytes)?;
    // Not held through the model server's wait: a thousand requests would hold a thousand.
    drop(bytes);
    // From here refusals (the parameter policy, the guards) are recorded under the model asked
    // for, when the tenant may use it: any other name would be the client's own string.
    if let Some(Value::String(name)) = body.get("model")
        && runtime.routes.contains(name)
        && tenant.may_use(name)
    {
        exchange.record.model = Some(name.clone());
    }
    let facts = request::inspect(endpoint, &body, &tenant.params)?;
    // The record keeps the name asked for (another tenant's too, once refused), but not a name
    // the gateway does not serve.
    if exchange.record.model.is_none() && runtime.routes.contains(&facts.model) {
        exchange.record.model = Some(facts.model.clone());
    }
    if !runtime.routes.contains(&facts.model) || !tenant.may_use(&facts.model) {
        return Err(model_not_found(&facts.model));
    }
    exchange.record.stream = facts.stream;

    let flagged = guard_prompt(runtime, tenant, endpoint, &mut body, exchange)?;

    let pin = header_str(&request.headers, VERSION_HEADER);
    if pin.is_some() && !tenant.allow_version_pin {
        return Err(Refusal::forbidden(
            "version_pin_not_allowed",
            format!("this tenant may not choose a version with {VERSION_HEADER}"),
        ));
    }
    let caller = Caller {
        tenant: &tenant.name,
        session: header_str(&request.headers, SESSION_HEADER),
    };
    let version = runtime.routes.pick(&facts.model, caller, pin)?;

    // A prompt over the limit by itself is told so, not to lower `max_tokens`.
    crate::limits::check_prompt(tenant.limits, facts.prompt_tokens, endpoint.prompt_field())?;
    let admission = match &runtime.shared_limits {
        None => gateway.limiter.admit(
            &tenant.name,
            tenant.limits,
            max_concurrent,
            facts.reservation(),
            Instant::now(),
        )?,
        Some(shared) => {
            let fallbacks = &gateway.metrics.shared_limits_fallbacks;
            let limiter = &gateway.limiter;
            let reserved = facts.reservation();
            let admitted = limiter.admit_shared(
                shared,
                &tenant.name,
                tenant.limits,
                max_concurrent,
                reserved,
                fallbacks,
            );
            admitted.await?
        }
    };
    drop(reading);

    let call = Call {
        gateway,
        runtime,
        tenant,
        endpoint,
        facts: &facts,
        version,
        pinned: pin.is_some(),
        flagged,
        max_tokens: facts.max_tokens,
        declined: None,
    };
    // An answer says where the tenant's rate buckets stand, as OpenAI's do. (A failure gives
    // its reservation back, and an overloaded model server is no limit of the tenant's.)
    let quotas = admission.quotas;
    let mut served = call.send(body, size_hint, admission, exchange).await;
    if let Ok(Served::Whole(response) | Served::Streaming(response)) = &mut served {
        quotas.write(response.headers_mut());
    }
    served
}

/// Authenticates the request and records who it is (the key id), or why not.
async fn identify(
    runtime: &Runtime,
    headers: &HeaderMap,
    exchange: &mut Exchange,
) -> Result<Identity, Refusal> {
    let identity = authenticate(runtime, headers).await.map_err(|refused| {
        // A key that matched though it is revoked or expired names its holder: after a
        // rotation, that is who still sends the old key.
        if let Some(holder) = refused.holder() {
            exchange.record.key_id = Some(holder.key_id.to_string());
            exchange.record.tenant = Some(holder.tenant.to_string());
        }
        exchange.record.auth_failure = Some(refused.reason().into_owned());
        match refused {
            AuthError::Unavailable(_) => Refusal::unavailable(
                "auth_unavailable",
                refused.to_string(),
                Duration::from_secs(5),
            ),
            _ => Refusal::unauthenticated(refused.to_string()),
        }
    })?;
    exchange.record.key_id = Some(identity.key_id.to_string());
    Ok(identity)
}

/// The credential's identity; the tenant comes only from here.
async fn authenticate(runtime: &Runtime, headers: &HeaderMap) -> Result<Identity, AuthError> {
    // Only the first would be read: a valid key followed by anything would pass, and a proxy's
    // credential beside the client's could be taken for it.
    if headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .nth(1)
        .is_some()
    {
        return Err(AuthError::Several);
    }
    let token = bearer(headers).ok_or(AuthError::Missing)?;
    let now = jiff::Timestamp::now();
    if token.starts_with(crate::auth::keys::KEY_PREFIX) {
        runtime.keys.verify(token, now)
    } else if let Some(jwt) = &runtime.jwt {
        jwt.verify(token, now).await
    } else {
        Err(AuthError::Invalid)
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// `GET /v1/models`: only the models this tenant may use.
fn models(runtime: &Runtime, tenant: &Tenant) -> Response<ProxyBody> {
    let data: Vec<Value> = runtime
        .routes
        .names()
        .filter(|name| tenant.may_use(name))
        .map(model_object)
        .collect();
    json_response(
        StatusCode::OK,
        Bytes::from(json!({"object": "list", "data": data}).to_string()),
    )
}

/// `GET /v1/models/{model}` (the SDKs' `models.retrieve`): the model if the tenant may use it,
/// and otherwise the same 404 a request for it gets.
fn model(
    runtime: &Runtime,
    tenant: &Tenant,
    name: &str,
    exchange: &mut Exchange,
) -> Result<Response<ProxyBody>, Refusal> {
    if !runtime.routes.contains(name) {
        return Err(model_not_found(name));
    }
    exchange.record.model = Some(name.to_owned());
    if !tenant.may_use(name) {
        return Err(model_not_found(name));
    }
    let body = model_object(name).to_string();
    Ok(json_response(StatusCode::OK, Bytes::from(body)))
}

fn model_object(name: &str) -> Value {
    json!({"id": name, "object": "model", "created": 0, "owned_by": "hangar"})
}

/// Another tenant's model gets the very answer a missing one does (as OpenAI's API does), so
/// model names cannot be discovered.
fn model_not_found(name: &str) -> Refusal {
    Refusal::not_found(
        "model_not_found",
        format!("the model `{name}` does not exist"),
    )
    .with_param("model")
}

fn json_response(status: StatusCode, body: Bytes) -> Response<ProxyBody> {
    let mut response = Response::new(boxed(Full::new(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn boxed<B>(body: B) -> ProxyBody
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// Reads the body within the tenant's size limit and the read timeout (slow clients are cut).
async fn read_body(
    body: &mut Incoming,
    headers: &HeaderMap,
    limit: u64,
    timeout: Duration,
) -> Result<Bytes, Refusal> {
    let declared =
        header_str(headers, header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(Refusal::too_large(limit));
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    // Each piece a client sends is a frame that costs hyper a trip and, kept apart, memory:
    // a 1 MiB body in 1-byte chunks cost 1.2 s of CPU and 40 MB. The pieces are copied into one
    // buffer, and a body in pieces of a few bytes each is refused (HTTP/2's h2 already limits
    // its DATA frames).
    let most_pieces = 1024 + limit / 64;
    let read = async {
        let mut first: Option<Bytes> = None;
        let mut whole = bytes::BytesMut::new();
        let mut pieces = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| body_error(&e))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pieces += 1;
            let read = first.as_ref().map_or(0, Bytes::len) + whole.len();
            if read + data.len() > limit {
                return Err(Refusal::too_large(limit as u64));
            }
            if pieces > most_pieces {
                return Err(Refusal::bad_request(
                    "body_too_fragmented",
                    format!(
                        "the request body came in more than {most_pieces} pieces; send it in larger ones"
                    ),
                ));
            }
            // A body in one piece, the usual case, is not copied.
            match first.take() {
                None if whole.is_empty() => first = Some(data),
                Some(earlier) => {
                    whole.reserve(declared.map_or(0, |n| n as usize).min(limit));
                    whole.extend_from_slice(&earlier);
                    whole.extend_from_slice(&data);
                }
                None => whole.extend_from_slice(&data),
            }
        }
        Ok(first.unwrap_or_else(|| whole.freeze()))
    };
    match tokio::time::timeout(timeout, read).await {
        Err(_) => Err(Refusal::client_timeout()),
        Ok(read) => read,
    }
}

/// The refusal for a body that broke off: its framing was not HTTP (a bad chunk size), or the
/// client left in the middle (it closed the connection or reset the stream), which its record
/// says as 499, not as a 400 the client never reads.
fn body_error(error: &hyper::Error) -> Refusal {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(at) = source {
        let malformed = at.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
            )
        });
        if malformed {
            return Refusal::bad_request("body_read_failed", "the request body could not be read");
        }
        source = at.source();
    }
    Refusal {
        status: CLIENT_LEFT,
        ..Refusal::bad_request(
            "client_disconnected",
            "the client left before its request body was read",
        )
    }
}

/// nginx's status for a client that closed its request before the answer; also the one the
/// audit record gives a request dropped with its connection.
const CLIENT_LEFT: StatusCode = match StatusCode::from_u16(499) {
    Ok(status) => status,
    Err(_) => StatusCode::BAD_REQUEST,
};

/// Runs the prompt guards: injection heuristics (which may refuse), redaction for the logs
/// (and for the model server when the tenant asks), the canary. Returns the flags for the
/// `x-hangar-guard` header.
fn guard_prompt(
    runtime: &Runtime,
    tenant: &Tenant,
    endpoint: Endpoint,
    body: &mut Map<String, Value>,
    exchange: &mut Exchange,
) -> Result<Vec<&'static str>, Refusal> {
    let mut flags = Vec::new();
    let parts = request::prompt_parts(endpoint, body)?;
    let texts: Vec<&str> = parts.iter().map(|p| p.text).collect();
    exchange.prompt_digest_text = prompt_sample(&texts);
    if tenant.injection != GuardAction::Off {
        // The tenant's own system prompt is trusted; what users and tools bring in is not. The
        // model reads the parts one after another, so they are scanned together: a phrase split
        // across two text parts is still the phrase.
        let untrusted: Vec<&str> = parts
            .iter()
            .filter(|p| !p.instruction)
            .map(|p| p.text)
            .collect();
        let signal = match untrusted.as_slice() {
            [] => None,
            [one] => runtime.scanner.scan(one),
            many => runtime.scanner.scan(&many.join("\n")),
        };
        if let Some(signal) = signal {
            let rules = signal.rules.join(",");
            // A weak signal is flagged, not blocked: one phrase is not proof.
            let action = tenant.injection.for_signal(&signal);
            exchange.guard("injection", action.as_str(), rules.clone());
            match action {
                GuardAction::Block => {
                    // A blocked injection is evidence the content log is kept for; the
                    // redaction below would have filled its prompt.
                    exchange.redacted_prompt = redacted_for_content(runtime, &texts);
                    exchange.refusal_content = true;
                    return Err(Refusal::bad_request(
                        "prompt_injection_detected",
                        format!(
                            "the request was refused: it looks like a prompt injection ({rules})"
                        ),
                    ));
                }
                GuardAction::Flag => flags.push("injection"),
                GuardAction::Log | GuardAction::Off => {}
            }
        }
    }
    if let Some(redactor) = &runtime.redactor {
        let mut found: Vec<(hangar_guard::SecretKind, usize)> = Vec::new();
        let keep_content = runtime.config.audit.content.is_some();
        // Read together, so that a card split across two parts is masked in both.
        let redactions = redactor.redact_all(&texts);
        // What the model server gets, when the tenant asks: each text and its redacted form.
        let mut for_upstream: Vec<(String, Option<String>)> = Vec::new();
        for (text, redaction) in texts.iter().zip(redactions) {
            add_found(&mut found, &redaction.found);
            if tenant.redact_upstream {
                let changed = !redaction.found.is_empty();
                let redacted = changed.then(|| redaction.text.to_string());
                for_upstream.push(((*text).to_owned(), redacted));
            }
            if keep_content {
                exchange.redacted_prompt.push(redaction.text.into_owned());
            }
        }
        if tenant.redact_upstream {
            // Not rendered into the prompt, but a model server (or a provider behind it) may
            // keep, log or send back `user`, `metadata`, `stop` or a schema: each string is
            // redacted on its own.
            request::edit_other_texts(endpoint, body, |text| {
                let redaction = redactor.redact(text);
                add_found(&mut found, &redaction.found);
                (!redaction.found.is_empty()).then(|| redaction.text.into_owned())
            });
        }
        if !found.is_empty() {
            let detail = found
                .iter()
                .map(|(kind, count)| format!("{}×{count}", kind.as_str()))
                .collect::<Vec<_>>()
                .join(",");
            let action = if tenant.redact_upstream {
                "redact_upstream"
            } else {
                "redact_logs"
            };
            exchange.guard("redaction", action, detail);
            if tenant.redact_upstream {
                // The edit walks the same texts in the same order; a text that is not the one
                // expected there is redacted on its own rather than trusted to the order.
                let mut expected = for_upstream.into_iter();
                request::edit_prompt_texts(endpoint, body, |text| match expected.next() {
                    Some((original, redacted)) if original == text => redacted,
                    _ => {
                        let redaction = redactor.redact(text);
                        (!redaction.found.is_empty()).then(|| redaction.text.into_owned())
                    }
                });
            }
        }
    }
    if let Some(canary) = &tenant.injected_canary {
        request::add_canary(body, canary);
    }
    Ok(flags)
}

/// Adds what a redaction found to the counts by kind.
fn add_found(
    found: &mut Vec<(hangar_guard::SecretKind, usize)>,
    more: &[(hangar_guard::SecretKind, usize)],
) {
    for (kind, count) in more {
        match found.iter_mut().find(|(k, _)| k == kind) {
            Some((_, total)) => *total += count,
            None => found.push((*kind, *count)),
        }
    }
}

/// The prompt's texts redacted (read together, as for the model server), when content is
/// logged; nothing otherwise.
fn redacted_for_content(runtime: &Runtime, texts: &[&str]) -> Vec<String> {
    match &runtime.redactor {
        Some(redactor) if runtime.config.audit.content.is_some() => redactor
            .redact_all(texts)
            .into_iter()
            .map(|redaction| redaction.text.into_owned())
            .collect(),
        _ => Vec::new(),
    }
}

/// The body for the model server, always written anew from what was checked: so duplicate
/// keys or a `null` the server might read differently never pass through. It carries the
/// upstream model name, an explicit `max_tokens` within the cap, and the request for a usage
/// report on streams.
fn upstream_body(
    endpoint: Endpoint,
    body: &mut Map<String, Value>,
    facts: &Inspected,
    version: &Version,
    size_hint: usize,
    max_tokens: u64,
) -> Bytes {
    body.insert(
        "model".into(),
        Value::String(version.upstream_model.to_string()),
    );
    if endpoint.generates() {
        // `null` means "up to the context length" to vLLM and SGLang: never let it through.
        for field in ["max_tokens", "max_completion_tokens"] {
            if body.get(field).is_some_and(Value::is_null) {
                body.remove(field);
            }
        }
        match version.cap_field {
            // Always a `max_tokens`, even beside `max_completion_tokens` (the largest of the
            // two, as reserved): servers that do not know the newer field (vLLM's completions,
            // Ollama, TGI) would otherwise generate to the context length.
            CapField::MaxTokens => {
                if !body.contains_key("max_tokens") {
                    body.insert("max_tokens".into(), Value::from(max_tokens));
                }
            }
            CapField::MaxCompletionTokens => {
                body.remove("max_tokens");
                body.insert("max_completion_tokens".into(), Value::from(max_tokens));
            }
        }
    }
    if facts.stream && !facts.client_wants_usage {
        let options = body.entry("stream_options").or_insert(Value::Null);
        if !options.is_object() {
            *options = Value::Object(Map::new());
        }
        if let Value::Object(options) = options {
            options.insert("include_usage".into(), Value::Bool(true));
        }
    }
    let mut out = Vec::with_capacity(size_hint + 64);
    crate::json::write_object(body, &mut out);
    Bytes::from(out)
}

/// The parts of a request that the upstream exchange needs.
struct Call<'a> {
    gateway: &'a Arc<Gateway>,
    runtime: &'a Runtime,
    tenant: &'a Tenant,
    endpoint: Endpoint,
    facts: &'a Inspected,
    /// The version picked; another one after a failover.
    version: Arc<Version>,
    /// Whether the client pinned the version (it is then never swapped).
    pinned: bool,
    flagged: Vec<&'static str>,
    /// The `max_tokens` the gateway sends when the client set none: the tenant's cap, or less
    /// after the model server said its context leaves less (see [`Call::ask_within_context`]).
    max_tokens: u64,
    /// The Retry-After of the last model server that declined the request (429, 503) before
    /// another version was tried.
    declined: Option<Duration>,
}

impl Call<'_> {
    async fn send(
        mut self,
        body: Map<String, Value>,
        size_hint: usize,
        mut admission: Admission,
        exchange: &mut Exchange,
    ) -> Result<Served, Refusal> {
        let sent = Instant::now();
        exchange.sent_upstream = Some(sent);
        // Only now: a refusal before (a rate limit, say) is no failure of the version.
        exchange.record.version = Some(self.version.name.to_string());
        // From here a client that goes away leaves its reservation spent: the model worked.
        admission.mark_sent();
        // And the record counts the prompt, estimated, as the reservation does, unless an answer
        // says more or the model server turns the request away.
        exchange.record.prompt_tokens = self.facts.prompt_tokens;
        exchange.record.usage_source = Some("estimated");
        let first_token = self.tenant.first_token;
        let answer = tokio::time::timeout(first_token, self.ask(body, size_hint, exchange)).await;
        let head_wait = sent.elapsed();
        exchange.upstream = Some(head_wait);
        let response = match answer {
            // The model may be generating still: as when a client hangs up, the reservation
            // stays spent (a slow non-streamed answer must not be free).
            Err(_) => {
                self.upstream_error("timeout");
                // Declined by one and too slow at another: the model is overloaded, and the
                // client is to come back, as when the last version declines too.
                if let Some(wait) = self.declined {
                    return Err(self.overloaded(wait));
                }
                return Err(Refusal::timeout(format!(
                    "the model server did not answer within {first_token:?}"
                )));
            }
            Ok(Err(refusal)) => {
                // The model server was not reached, or failed before answering, and did no
                // work; except where it answered with a head too large to read
                // (`upstream_malformed` is `ask`'s refusal for that alone), after working.
                if refusal.code != "upstream_malformed" {
                    give_back(&mut admission, exchange);
                }
                return Err(refusal);
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if !status.is_success() {
            give_back(&mut admission, exchange);
            return Err(self.refuse(response, exchange).await);
        }
        // An answer is read, renamed and watched as text: a compressed one cannot be, and its
        // bytes must not reach the client unread. The model worked: its reservation stays spent.
        if let Some(encoding) = compressed(response.headers()) {
            self.upstream_error("malformed");
            return Err(Refusal::bad_gateway(
                "upstream_malformed",
                format!(
                    "the model server for `{}` answered in `{encoding}` encoding, though asked for none",
                    self.facts.model
                ),
            ));
        }
        if self.facts.stream && is_event_stream(response.headers()) {
            return Ok(Served::Streaming(
                self.stream(response, admission, exchange, sent),
            ));
        }
        // A 200 whose body then stalls or breaks was worked on: its reservation stays spent.
        let answer = self.whole(response, &mut admission, exchange, sent).await;
        // An answer that failed after its headers gave no first token.
        if answer.is_ok() {
            exchange.first_token = Some(head_wait);
        }
        answer.map(Served::Whole)
    }

    /// Sends the request to its version's model server. When that one did not run it (it could
    /// not be connected to, or it answered 429 or 503) and the client did not pin the version,
    /// the request goes to the model's other versions in turn, most weight first, until one
    /// runs it (two at most): a version going down or overloaded fails no request while
    /// another one is up (a blue-green switch, a crashed canary, a replica still loading its
    /// weights).
    async fn ask(
        &mut self,
        mut body: Map<String, Value>,
        size_hint: usize,
        exchange: &mut Exchange,
    ) -> Result<Response<UpstreamBody>, Refusal> {
        let sent = self.upstream_body(&mut body, size_hint);
        drop(body);
        let mut request = self.upstream_request(sent.clone(), &exchange.record.id)?;
        let routes = &self.runtime.routes;
        let may_fail_over =
            !self.pinned && routes.has_fallbacks(&self.facts.model, &self.version.name);
        // The other versions to try in turn while none runs it, found at the first failure:
        // reversed, so that `pop` gives the one with the most weight first.
        let mut fallbacks: Option<Vec<Arc<Version>>> = None;
        let cap_added = self.endpoint == Endpoint::Chat && !self.facts.max_tokens_asked;
        // What was sent is kept only when it may be sent again, and as its bytes, smaller than
        // the parsed body: a thousand requests waiting on model servers hold a thousand.
        let kept = (cap_added || may_fail_over).then_some(sent);
        loop {
            let answer = self.runtime.upstreams.send(request).await;
            let did_not_run_it = match &answer {
                Ok(response) => did_not_run(response.status()),
                Err(error) => error.is_connect(),
            };
            if did_not_run_it && may_fail_over && fallbacks.is_none() {
                let mut others = routes.fallbacks(&self.facts.model, &self.version.name);
                // Each try is another server's work, when all of them may be shedding load.
                others.truncate(MAX_FAILOVERS);
                others.reverse();
                fallbacks = Some(others);
            }
            let more = fallbacks.as_ref().is_some_and(|others| !others.is_empty());
            let reason = match answer {
                Ok(response) if cap_added && refuses_input(response.status()) => {
                    let Some(body) = kept else {
                        return Ok(response);
                    };
                    return (self.ask_within_context(response, body, size_hint, exchange)).await;
                }
                Ok(response) if more && did_not_run(response.status()) => {
                    let status = response.status().as_u16();
                    self.upstream_error(&status.to_string());
                    self.declined = Some(retry_after(response.headers()));
                    // Read while the next version is tried.
                    tokio::spawn(drain_refusal(response.into_body()));
                    format!("the model server answered {status}")
                }
                Ok(response) => return Ok(response),
                Err(error) if more && error.is_connect() => {
                    self.upstream_error("connect");
                    error.to_string()
                }
                Err(error) => {
                    // A server declined and the others cannot be reached: the model is
                    // overloaded, and the client is to try again later, not to give up.
                    if error.is_connect()
                        && let Some(wait) = self.declined
                    {
                        self.note_unreachable(&error);
                        return Err(self.overloaded(wait));
                    }
                    return Err(self.unreachable(&error));
                }
            };
            let next = fallbacks.as_mut().and_then(Vec::pop);
            let (Some(fallback), Some(sent)) = (next, &kept) else {
                return Err(Refusal::bad_gateway(
                    "upstream_unreachable",
                    "the request could not be sent to another version",
                ));
            };
            tracing::warn!(
                model = %self.facts.model,
                from = %self.version.name,
                to = %fallback.name,
                "{reason}; sending the request to another version"
            );
            let mut body = resent(sent)?;
            // The record keeps the version first chosen.
            let failed = exchange.record.version.replace(fallback.name.to_string());
            if exchange.record.failed_over_from.is_none() {
                exchange.record.failed_over_from = failed;
            }
            self.version = fallback;
            // Written anew for this version: its name for the model, its field for the cap.
            let body = self.upstream_body(&mut body, size_hint);
            request = self.upstream_request(body, &exchange.record.id)?;
        }
    }

    /// A chat request without `max_tokens` is sent with the tenant's cap in it, and vLLM and
    /// SGLang refuse one whose prompt plus `max_tokens` is longer than the model's context,
    /// though they would answer it without. When the server's refusal says how long the
    /// context and the prompt are, the request goes again, once, with `max_tokens` lowered to
    /// what the context leaves: never above the cap, whichever replica takes it. The record
    /// says so (the `max_tokens` guard, `lowered`).
    async fn ask_within_context(
        &mut self,
        response: Response<UpstreamBody>,
        sent: Bytes,
        size_hint: usize,
        exchange: &mut Exchange,
    ) -> Result<Response<UpstreamBody>, Refusal> {
        let (head, said) = self.read_refusal(response).await;
        let room = (said.as_ref())
            .and_then(|said| context_room(&said.message))
            .filter(|room| (1..self.max_tokens).contains(room));
        let Some(room) = room else {
            return Err(self.upstream_refusal(head, said, exchange));
        };
        let detail = format!(
            "{} to {room}: what the model's context leaves",
            self.max_tokens
        );
        exchange.guard("max_tokens", "lowered", detail);
        self.max_tokens = room;
        // The client set neither; the cap the first send wrote is replaced.
        let mut body = resent(&sent)?;
        for field in ["max_tokens", "max_completion_tokens"] {
            body.remove(field);
        }
        let body = self.upstream_body(&mut body, size_hint);
        let request = self.upstream_request(body, &exchange.record.id)?;
        (self.runtime.upstreams.send(request).await).map_err(|error| self.unreachable(&error))
    }

    /// The refusal for a model server that could not be reached, or that failed the request
    /// before answering (it closed the connection, or answered in something not HTTP),
    /// counted in the metrics.
    /// The model's servers are overloaded: the client is to come back after `wait`.
    fn overloaded(&self, wait: Duration) -> Refusal {
        Refusal::unavailable(
            "upstream_overloaded",
            format!("the model server for `{}` is overloaded", self.facts.model),
            wait,
        )
    }

    fn unreachable(&self, error: &UpstreamError) -> Refusal {
        self.note_unreachable(error);
        let (model, version) = (&self.facts.model, &self.version.name);
        match error {
            UpstreamError::Connect(_) => Refusal::bad_gateway(
                "upstream_unreachable",
                format!("cannot reach the model server for `{model}` version `{version}`"),
            ),
            UpstreamError::Request(_) => Refusal::bad_gateway(
                "upstream_disconnected",
                format!(
                    "the model server for `{model}` version `{version}` failed the request without answering"
                ),
            ),
            UpstreamError::HeadTooLarge(limit) => Refusal::bad_gateway(
                "upstream_malformed",
                format!(
                    "the model server for `{model}` version `{version}` answered with headers larger than the gateway reads ({}, `limits.answerHeadBytes`)",
                    head_size(*limit)
                ),
            ),
        }
    }

    /// Logs why the model server could not be reached, and counts it.
    fn note_unreachable(&self, error: &UpstreamError) {
        // The client hears only that the model server is unreachable or hung up; the operator
        // needs why.
        tracing::warn!(
            model = %self.facts.model,
            version = %self.version.name,
            "the model server failed the request: {error}"
        );
        self.upstream_error(match error {
            UpstreamError::Connect(_) => "connect",
            UpstreamError::Request(_) => "request",
            UpstreamError::HeadTooLarge(_) => "malformed",
        });
    }

    /// The body for the current version's model server.
    fn upstream_body(&self, body: &mut Map<String, Value>, size_hint: usize) -> Bytes {
        upstream_body(
            self.endpoint,
            body,
            self.facts,
            &self.version,
            size_hint,
            self.max_tokens,
        )
    }

    /// The request for the current version's model server.
    fn upstream_request(
        &self,
        body: Bytes,
        request_id: &str,
    ) -> Result<Request<Full<Bytes>>, Refusal> {
        let uri = self.version.base.uri(self.endpoint.path()).map_err(|_| {
            Refusal::bad_gateway(
                "upstream_misconfigured",
                "the model server's URL is invalid",
            )
        })?;
        // Static names and values: parsing them from text would allocate on every request.
        let mut upstream = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .header(REQUEST_ID_HEADER, request_id)
            .header(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
        if self.facts.stream {
            upstream = upstream.header(
                header::ACCEPT,
                HeaderValue::from_static("text/event-stream"),
            );
        }
        if let Some(auth) = &self.version.upstream_auth {
            upstream = upstream.header(header::AUTHORIZATION, auth.clone());
        }
        upstream.body(Full::new(body)).map_err(|_| {
            Refusal::bad_gateway(
                "upstream_misconfigured",
                "could not build the upstream request",
            )
        })
    }

    fn upstream_error(&self, kind: &str) {
        self.gateway
            .metrics
            .upstream_errors
            .add(&[&self.facts.model, &self.version.name, kind], 1);
    }

    /// The refusal of a whole answer larger than [`MAX_ANSWER`], which is not read on: held
    /// whole in memory, a few such answers at once would cost gigabytes.
    fn answer_too_large(&self) -> Refusal {
        self.upstream_error("too_large");
        tracing::warn!(
            model = %self.facts.model,
            version = %self.version.name,
            "the model server's answer is larger than {} MiB; refused",
            MAX_ANSWER >> 20
        );
        Refusal::bad_gateway(
            "upstream_answer_too_large",
            format!(
                "the model server's answer is larger than the {} MiB the gateway reads whole; ask for it streamed",
                MAX_ANSWER >> 20
            ),
        )
    }

    /// A model server's answer that is no success, as the client's refusal.
    async fn refuse(&self, response: Response<UpstreamBody>, exchange: &mut Exchange) -> Refusal {
        let (head, said) = self.read_refusal(response).await;
        self.upstream_refusal(head, said, exchange)
    }

    /// The status and headers of a model server's refusal, and what it says when it refused
    /// the request itself (400, 413, 422): other bodies are left unread.
    async fn read_refusal(
        &self,
        response: Response<UpstreamBody>,
    ) -> (http::response::Parts, Option<UpstreamRefusal>) {
        let (head, body) = response.into_parts();
        if !refuses_input(head.status) {
            drain_refusal(body).await;
            return (head, None);
        }
        let read = Limited::new(body, MAX_UPSTREAM_ERROR).collect();
        let body = match tokio::time::timeout(self.tenant.idle, read).await {
            Ok(Ok(collected)) => collected.to_bytes(),
            _ => Bytes::new(),
        };
        let said = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| UpstreamRefusal::read(&v));
        (head, said)
    }

    /// The client's refusal for a model server's: an overload is the client's to retry later,
    /// a refused request passes on what the server said of it, and anything else is a 502
    /// that does not expose the server's internals.
    fn upstream_refusal(
        &self,
        head: http::response::Parts,
        said: Option<UpstreamRefusal>,
        exchange: &mut Exchange,
    ) -> Refusal {
        let status = head.status;
        self.upstream_error(&status.as_u16().to_string());
        match status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                self.overloaded(retry_after(&head.headers))
            }
            _ if refuses_input(status) => {
                let refusal = Refusal {
                    status,
                    ..Refusal::bad_request(
                        "upstream_rejected",
                        "the model server refused the request",
                    )
                };
                let Some(said) = said else {
                    return refusal;
                };
                let message = self.public_names(&said.message);
                let param = said.param.map(|param| self.public_names(&param));
                let quoted = format!("{message} {}", param.as_deref().unwrap_or_default());
                if self.leaks_canary(&quoted, exchange) {
                    return refusal;
                }
                Refusal {
                    code: said.code.unwrap_or(refusal.code),
                    message,
                    param: param.map(Cow::Owned),
                    ..refusal
                }
            }
            _ => Refusal::bad_gateway(
                "upstream_error",
                format!(
                    "the model server for `{}` failed with HTTP {}",
                    self.facts.model,
                    status.as_u16()
                ),
            ),
        }
    }

    /// Whether a model server's error message holds one of the tenant's canaries: servers quote
    /// the input they refuse, so a request built to fail can bring back its system prompt. The
    /// message is then withheld, whatever the guard's action, and the guard recorded.
    fn leaks_canary(&self, message: &str, exchange: &mut Exchange) -> bool {
        if self.tenant.canaries.is_empty() || self.tenant.injection == GuardAction::Off {
            return false;
        }
        if !CanaryWatch::new(self.tenant.canaries.clone()).feed(message) {
            return false;
        }
        let action = self.tenant.injection.as_str();
        let detail = "system prompt canary in the model server's error message".to_owned();
        exchange.guard("canary", action, detail);
        let labels = [&*self.tenant.name, "canary", action];
        self.gateway.metrics.guard.add(&labels, 1);
        true
    }

    /// A model server's message with its name for the model replaced by the one the client
    /// asked for: the upstream name is often a path or a repository that clients need not see.
    fn public_names(&self, message: &str) -> String {
        let upstream = &*self.version.upstream_model;
        if upstream.is_empty() {
            return message.to_owned();
        }
        message.replace(upstream, &self.facts.model)
    }

    /// A whole (non-streamed) answer: read it within the idle timeout, check it, pass it on.
    async fn whole(
        &self,
        response: Response<UpstreamBody>,
        admission: &mut Admission,
        exchange: &mut Exchange,
        sent: Instant,
    ) -> Result<Response<ProxyBody>, Refusal> {
        let (parts, body) = response.into_parts();
        let declared = (parts.headers.get(header::CONTENT_LENGTH))
            .and_then(|length| length.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > MAX_ANSWER as u64) {
            exchange.upstream = Some(sent.elapsed());
            return Err(self.answer_too_large());
        }
        let read =
            tokio::time::timeout(self.tenant.idle, Limited::new(body, MAX_ANSWER).collect()).await;
        exchange.upstream = Some(sent.elapsed());
        let bytes = match read {
            Err(_) => {
                self.upstream_error("idle_timeout");
                return Err(Refusal::timeout(
                    "the model server stopped sending its answer",
                ));
            }
            Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
                return Err(self.answer_too_large());
            }
            Ok(Err(_)) => {
                self.upstream_error("body");
                return Err(Refusal::bad_gateway(
                    "upstream_disconnected",
                    "the model server broke off its answer",
                ));
            }
            Ok(Ok(collected)) => collected.to_bytes(),
        };
        let Ok(value) = Json::parse(&bytes) else {
            self.upstream_error("malformed");
            return Err(Refusal::bad_gateway(
                "upstream_malformed",
                "the model server's answer is not JSON",
            ));
        };
        let facts = stream::answer_facts(&value);
        let mut flags = self.flagged.clone();
        let text = facts.text();
        if !self.tenant.canaries.is_empty() && self.tenant.injection != GuardAction::Off {
            // The whole body too: a canary in a field the gateway does not read still counts.
            let leaked = facts
                .texts
                .iter()
                .any(|t| CanaryWatch::new(self.tenant.canaries.clone()).feed(&t.text))
                || CanaryWatch::new(self.tenant.canaries.clone())
                    .feed(&String::from_utf8_lossy(&bytes));
            if leaked {
                let action = self.tenant.injection;
                exchange.guard(
                    "canary",
                    action.as_str(),
                    "system prompt canary in the answer".into(),
                );
                self.gateway
                    .metrics
                    .guard
                    .add(&[&self.tenant.name, "canary", action.as_str()], 1);
                match action {
                    GuardAction::Block => {
                        self.settle(admission, exchange, facts.usage, &text);
                        // Withheld from the client, kept (redacted) as the leak's evidence.
                        self.log_answer(exchange, &facts.texts);
                        return Err(Refusal::bad_gateway(
                            "canary_leak",
                            "the answer was withheld: it contained this tenant's system-prompt canary",
                        ));
                    }
                    GuardAction::Flag => flags.push("canary"),
                    GuardAction::Log | GuardAction::Off => {}
                }
            }
        }
        self.settle(admission, exchange, facts.usage, &text);
        self.log_answer(exchange, &facts.texts);
        // The client hears the model name it asked for, not the model server's own.
        let public = &self.facts.model;
        let renamed = match value.str_span(&bytes, "model") {
            Some(span) => crate::json::replace_str(&bytes, span, public),
            // Written with escapes: the answer is written anew.
            None if value.get("model").and_then(Json::as_str).is_some() => {
                crate::json::with_str_member(&bytes, "model", public)
            }
            None => None,
        };
        let bytes = renamed.map_or(bytes, Bytes::from);
        let mut response = Response::new(boxed(Full::new(bytes)));
        *response.status_mut() = parts.status;
        self.answer_headers(response.headers_mut(), &flags);
        Ok(response)
    }

    /// Writes the content record of a whole answer's texts (by choice), when content is logged.
    fn log_answer(&self, exchange: &Exchange, texts: &[ChoiceText]) {
        if !self.gateway.audit.logs_content() {
            return;
        }
        let mut kept = KeptTexts::default();
        for text in texts {
            kept.keep(text.choice, text);
        }
        log_content(self.gateway, self.runtime, exchange, &kept.into_choices());
    }

    /// A streamed answer: headers now, events as they come; the record is written at the end.
    fn stream(
        &self,
        response: Response<UpstreamBody>,
        admission: Admission,
        exchange: &mut Exchange,
        sent: Instant,
    ) -> Response<ProxyBody> {
        let (parts, body) = response.into_parts();
        let watching = self.tenant.injection != GuardAction::Off;
        let rules = StreamRules {
            first_token_by: sent + self.tenant.first_token,
            idle: self.tenant.idle,
            drop_usage_only: !self.facts.client_wants_usage,
            canaries: if watching {
                self.tenant.canaries.clone()
            } else {
                Vec::new()
            },
            cut_on_leak: self.tenant.injection == GuardAction::Block,
            keep_text: self.gateway.audit.logs_content(),
            model: self.facts.model.clone(),
            upstream_model: self.version.upstream_model.to_string(),
            choices: self
                .facts
                .n
                .max(1)
                .saturating_mul(self.facts.prompts.max(1)),
        };
        let finisher = StreamFinisher {
            gateway: Arc::clone(self.gateway),
            exchange: exchange.clone(),
            admission,
            prompt_tokens: self.facts.prompt_tokens,
            tenant: Arc::clone(&self.tenant.name),
            injection: self.tenant.injection,
        };
        let relayed = stream::relay(
            body,
            rules,
            self.gateway.shutdown.subscribe(),
            Box::new(move |summary| finisher.finish(summary)),
        );
        let mut response = Response::new(relayed.boxed_unsync());
        *response.status_mut() = parts.status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        self.answer_headers(response.headers_mut(), &self.flagged);
        response
    }

    fn answer_headers(&self, headers: &mut HeaderMap, flags: &[&str]) {
        if !headers.contains_key(header::CONTENT_TYPE) {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        if let Some(version) = &self.version.name_header {
            headers.insert(HeaderName::from_static(VERSION_HEADER), version.clone());
        }
        if !flags.is_empty()
            && let Ok(flags) = HeaderValue::try_from(flags.join(","))
        {
            headers.insert(HeaderName::from_static(GUARD_HEADER), flags);
        }
    }

    fn settle(
        &self,
        admission: &mut Admission,
        exchange: &mut Exchange,
        usage: Option<(u64, u64)>,
        text: &str,
    ) {
        let (prompt, completion, source) = match usage {
            Some((prompt, completion)) => (prompt, completion, "upstream"),
            None => (
                self.facts.prompt_tokens,
                request::estimate_generated(text.len() as u64),
                "estimated",
            ),
        };
        admission.settle(prompt.saturating_add(completion));
        exchange.record.prompt_tokens = prompt;
        exchange.record.completion_tokens = completion;
        exchange.record.usage_source = Some(source);
    }
}

/// Gives a request's reservation back, the model server having done no work on it (it was not
/// reached, or it refused): the record then counts no tokens either.
fn give_back(admission: &mut Admission, exchange: &mut Exchange) {
    admission.release();
    exchange.record.prompt_tokens = 0;
    exchange.record.usage_source = None;
}

fn log_content(gateway: &Gateway, runtime: &Runtime, exchange: &Exchange, kept: &[KeptText]) {
    if !gateway.audit.logs_content() {
        return;
    }
    let Some(redactor) = &runtime.redactor else {
        return;
    };
    // Each choice on its own: the digits of one would run into the next's.
    let completion = kept
        .iter()
        .map(|choice| {
            let cut = choice.cut.unwrap_or(choice.text.len());
            redactor.redact_prefix(&choice.text, cut).text
        })
        .collect();
    gateway.audit.content(ContentRecord {
        kind: "content",
        id: exchange.record.id.clone(),
        tenant: exchange.record.tenant.clone().unwrap_or_default(),
        model: exchange.record.model.clone().unwrap_or_default(),
        prompt: exchange.redacted_prompt.clone(),
        completion,
    });
}

/// What a model server's 400, 413 or 422 says, in whichever shape it says it.
#[derive(Debug, PartialEq)]
struct UpstreamRefusal {
    message: String,
    /// The request field at fault, when the server names one plainly.
    param: Option<String>,
    /// The server's code, when it is one of OpenAI's that clients branch on.
    code: Option<&'static str>,
}

/// OpenAI's codes for a request refused, which compatible servers and proxies pass on and
/// clients test for (`context_length_exceeded` above all). Any other code is the gateway's own
/// `upstream_rejected`: codes are metric labels, and a server must not make new ones.
const UPSTREAM_CODES: &[&str] = &[
    "context_length_exceeded",
    "string_above_max_length",
    "invalid_value",
    "invalid_type",
    "missing_required_parameter",
    "unknown_parameter",
    "unsupported_parameter",
    "unsupported_value",
];

impl UpstreamRefusal {
    /// Reads OpenAI's and vLLM's `{"error": {"message", "param", "code"}}`, TGI's
    /// `{"error": "…"}`, SGLang's and older vLLM's `{"message", "param", "code"}` at the top,
    /// and FastAPI's `{"detail": "…"}` or `{"detail": [{"loc", "msg"}]}`.
    fn read(value: &Value) -> Option<UpstreamRefusal> {
        let error = value
            .get("error")
            .filter(|e| e.is_object())
            .unwrap_or(value);
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        let (message, param) = if let Some(message) = text(error, "message") {
            (message, text(error, "param"))
        } else if let Some(message) = value.get("error").and_then(Value::as_str) {
            (message.to_owned(), None)
        } else if let Some(detail) = value.get("detail").and_then(Value::as_str) {
            (detail.to_owned(), None)
        } else {
            let problems = value.get("detail").and_then(Value::as_array)?;
            fastapi_problems(problems)?
        };
        let code = (error.get("code").and_then(Value::as_str))
            .and_then(|code| UPSTREAM_CODES.iter().copied().find(|known| *known == code));
        Some(UpstreamRefusal {
            message: stream::prefix_within(&message, 1000).to_owned(),
            param: param.filter(|p| plain_field_path(p)),
            code,
        })
    }
}

/// FastAPI's validation errors (`[{"loc": ["body", "temperature"], "msg": "…"}]`) as one
/// message, and the first one's field.
fn fastapi_problems(problems: &[Value]) -> Option<(String, Option<String>)> {
    let mut first_field = None;
    let mut messages = Vec::new();
    for problem in problems.iter().take(5) {
        let Some(msg) = problem.get("msg").and_then(Value::as_str) else {
            continue;
        };
        let path: Vec<String> = (problem.get("loc").and_then(Value::as_array))
            .into_iter()
            .flatten()
            .skip_while(|part| part.as_str() == Some("body"))
            .map(|part| match part {
                Value::String(name) => name.clone(),
                other => other.to_string(),
            })
            .collect();
        let field = path.join(".");
        messages.push(if field.is_empty() {
            msg.to_owned()
        } else {
            format!("{field}: {msg}")
        });
        first_field.get_or_insert(field);
    }
    if messages.is_empty() {
        return None;
    }
    Some((messages.join("; "), first_field.filter(|f| !f.is_empty())))
}

/// A request field's path (`messages`, `tools.0.function.parameters`): what a `param` may
/// hold. Anything else a server puts there is not passed on.
fn plain_field_path(param: &str) -> bool {
    !param.is_empty()
        && param.len() <= 100
        && (param.bytes()).all(|b| b.is_ascii_alphanumeric() || b"_.[]-".contains(&b))
}

/// Whether a model server's status says it refused the request itself, and its body why.
fn refuses_input(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNPROCESSABLE_ENTITY
    )
}

/// What a model's context leaves for the answer (one token short of it), from a refusal that says how long the
/// context and the prompt are: vLLM's ("maximum context length is 4096 tokens and your request
/// has 312 input tokens", or "… (312 in the messages, …)"), SGLang's ("maximum context length
/// of 4096 tokens … 312 tokens from the input messages"), TGI's ("must be <= 4096. Given: 312
/// `inputs` tokens") and OpenAI's.
fn context_room(message: &str) -> Option<u64> {
    let context = ["context length is ", "context length of ", "must be <= "]
        .iter()
        .find_map(|marker| number_after(message, marker))?;
    let prompt = [
        " input tokens",
        " in the messages",
        " tokens from the input",
        " `inputs` tokens",
    ]
    .iter()
    .find_map(|marker| number_before(message, marker))?;
    // One less: SGLang refuses prompt + max_tokens equal to the context too.
    context.checked_sub(prompt)?.checked_sub(1)
}

/// The whole number right after a `marker` in `text`, the first that has one.
fn number_after(text: &str, marker: &str) -> Option<u64> {
    text.match_indices(marker).find_map(|(at, _)| {
        let rest = &text[at + marker.len()..];
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        rest.get(..digits)?.parse().ok()
    })
}

/// The whole number right before a `marker` in `text`, the first that has one (TGI's message
/// names `` `inputs` tokens `` once without a number).
fn number_before(text: &str, marker: &str) -> Option<u64> {
    text.match_indices(marker).find_map(|(at, _)| {
        let before = &text[..at];
        let digits = before.len() - before.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        before.get(before.len() - digits..)?.parse().ok()
    })
}

/// A model server's `Retry-After` in seconds, 1 s without one, 5 minutes at most.
fn retry_after(headers: &HeaderMap) -> Duration {
    (headers.get(header::RETRY_AFTER))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        // `0` would invite an immediate retry: a second, as when none is given.
        .map_or(Duration::from_secs(1), |s| {
            Duration::from_secs(s.clamp(1, 300))
        })
}

/// The body first sent, parsed again to be written anew for a resend. It is the gateway's own
/// JSON, so this cannot fail but by a bug, which is the gateway's fault, not the client's.
fn resent(sent: &[u8]) -> Result<Map<String, Value>, Refusal> {
    request::parse(sent).map_err(|_| {
        tracing::error!("the body sent to a model server could not be read again");
        Refusal::bad_gateway("upstream_error", "the request could not be sent again")
    })
}

/// A model server's way of saying it did not run a request: overloaded (429), or not ready or
/// shedding load (503). Anything else may have run the model, so it is never sent twice.
fn did_not_run(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
}

/// The content coding of an answer, unless it has none (`identity`).
fn compressed(headers: &HeaderMap) -> Option<String> {
    let encoding = headers.get(header::CONTENT_ENCODING)?;
    let encoding = String::from_utf8_lossy(encoding.as_bytes())
        .trim()
        .to_owned();
    let plain = encoding.is_empty() || encoding.eq_ignore_ascii_case("identity");
    (!plain).then(|| stream::prefix_within(&encoding, 40).to_owned())
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// Records a stream when it ends.
struct StreamFinisher {
    gateway: Arc<Gateway>,
    exchange: Exchange,
    admission: Admission,
    prompt_tokens: u64,
    tenant: Arc<str>,
    injection: GuardAction,
}

impl StreamFinisher {
    fn finish(mut self, summary: StreamSummary) {
        let (prompt, completion, source) = match summary.usage {
            Some((prompt, completion)) => (prompt, completion, "upstream"),
            None => (
                self.prompt_tokens,
                request::estimate_generated(summary.text_bytes),
                "estimated",
            ),
        };
        self.admission.settle(prompt.saturating_add(completion));
        let record = &mut self.exchange.record;
        record.prompt_tokens = prompt;
        record.completion_tokens = completion;
        record.usage_source = Some(source);
        record.end = Some(summary.end.as_str());
        record.status = 200;
        if summary.end != StreamEnd::Complete {
            // The code the client was told in the stream's last event, when the gateway told it.
            let code = summary.told.unwrap_or(summary.end.as_str());
            record.code = Some(code.to_owned());
        }
        // A model server failing mid-stream counts as its failures before the headers do.
        if let Some(kind) = summary.upstream_failure {
            let model = record.model.as_deref().unwrap_or("");
            let version = record.version.as_deref().unwrap_or("");
            (self.gateway.metrics.upstream_errors).add(&[model, version, kind], 1);
        }
        if summary.canary_leaked {
            let action = if summary.end == StreamEnd::CanaryCut {
                "cut"
            } else {
                self.injection.as_str()
            };
            self.exchange.guard(
                "canary",
                action,
                "system prompt canary in the answer".into(),
            );
            self.gateway
                .metrics
                .guard
                .add(&[&self.tenant, "canary", action], 1);
        }
        let head = self.exchange.upstream.unwrap_or_default();
        self.exchange.upstream = Some(head + summary.upstream_wait);
        self.exchange.client_wait += summary.client_wait;
        // From the request's sending, as for an answer not streamed.
        let sent = self.exchange.sent_upstream.unwrap_or(self.exchange.started);
        self.exchange.first_token = summary
            .first_token
            .map(|at| at.saturating_duration_since(sent));
        let runtime = self.gateway.runtime();
        log_content(&self.gateway, &runtime, &self.exchange, &summary.kept);
        let gateway = Arc::clone(&self.gateway);
        finish_answered(&gateway, self.exchange);
    }
}

/// Writes the audit record and the metrics of a finished request.
fn finish(gateway: &Gateway, mut exchange: Exchange) {
    measure(gateway, &mut exchange);
    if watches_extraction(&exchange) {
        watch_extraction(gateway, &mut exchange, None);
    }
    write_record(gateway, exchange);
}

/// [`finish`] for a request a model server answered. With `limits.shared.extraction` its
/// caller's extraction window is in Redis, so the record waits for Redis in a task of its own,
/// off the request's path; the metrics are taken before.
fn finish_answered(gateway: &Arc<Gateway>, mut exchange: Exchange) {
    let shared = (gateway.runtime().shared_limits.clone()).filter(|s| s.shares_extraction());
    let handle = tokio::runtime::Handle::try_current();
    let (Some(shared), Ok(handle), true) = (shared, handle, watches_extraction(&exchange)) else {
        return finish(gateway, exchange);
    };
    measure(gateway, &mut exchange);
    let gateway = Arc::clone(gateway);
    handle.spawn(async move {
        let record = &exchange.record;
        let (tenant, key_id) = (record.tenant.as_deref(), record.key_id.as_deref());
        let thresholds = extraction_thresholds(&gateway.runtime());
        let verdict = match (tenant, key_id) {
            (Some(tenant), Some(key_id)) => {
                let prompt = hangar_guard::extraction::prompt_hash(&exchange.prompt_digest_text);
                let tokens = (record.prompt_tokens, record.completion_tokens);
                (shared.record_extraction(tenant, key_id, prompt, tokens, &thresholds)).await
            }
            _ => None,
        };
        watch_extraction(&gateway, &mut exchange, verdict);
        write_record(&gateway, exchange);
    });
}

/// The metrics of a finished request.
fn measure(gateway: &Gateway, exchange: &mut Exchange) {
    let total = exchange.started.elapsed();
    let record = &mut exchange.record;
    record.latency_ms = millis(total);
    record.upstream_ms = exchange.upstream.map(millis);
    record.first_token_ms = exchange.first_token.map(millis);
    let tenant = record.tenant.as_deref().unwrap_or("");
    let model = record.model.as_deref().unwrap_or("");
    let version = record.version.as_deref().unwrap_or("");
    let metrics = &gateway.metrics;
    let status = record.status.to_string();
    metrics.requests.add(&[tenant, model, version, &status], 1);
    if let Some(code) = &record.code {
        metrics.errors.add(&[tenant, model, version, code], 1);
    }
    metrics.latency.observe(&[tenant, model, version], total);
    if let Some(first) = exchange.first_token {
        let stream = if record.stream { "true" } else { "false" };
        (metrics.first_token).observe(&[tenant, model, version, stream], first);
    }
    if record
        .prompt_tokens
        .saturating_add(record.completion_tokens)
        > 0
    {
        metrics
            .tokens
            .add(&[tenant, model, version, "prompt"], record.prompt_tokens);
        metrics.tokens.add(
            &[tenant, model, version, "completion"],
            record.completion_tokens,
        );
    }
    if let Some(upstream) = exchange.upstream {
        metrics.overhead.observe(
            &[model],
            total.saturating_sub(upstream + exchange.client_wait),
        );
    }
    for decision in &record.guards {
        if decision.guard != "canary" {
            metrics
                .guard
                .add(&[tenant, decision.guard, decision.action], 1);
        }
    }
}

/// Whether a finished request counts in its caller's extraction window: it was answered.
fn watches_extraction(exchange: &Exchange) -> bool {
    exchange.record.status < 400 && exchange.record.model.is_some()
}

/// Writes the audit record of a finished request (and its content record), unless it is a
/// refusal past `audit.refusalsPerSecond`, only counted.
fn write_record(gateway: &Gateway, exchange: Exchange) {
    // A refusal (it never reached a model server) may only be counted, in a flood.
    let refused = exchange.upstream.is_none() && exchange.record.status >= 400;
    if refused && !gateway.admit_refusal(&exchange.record) {
        return;
    }
    // Only beside a record of its own: a flood of blocked injections is bounded as their
    // records are, and each content record joins its audit record.
    if exchange.refusal_content {
        log_content(gateway, &gateway.runtime(), &exchange, &[]);
    }
    gateway.audit.record(exchange.record);
}

/// What the extraction monitor tells prompts apart by: the whole prompt when short, else its
/// first and last 512 bytes, its length and a fast hash of all of it. The monitor's own hash
/// (which forgives case and spacing) over every byte of every long prompt cost a quarter of
/// the gateway's time; without the fast hash, templated prompts (a fixed preamble, tools and
/// tail around a question that changes) all looked the same.
fn prompt_sample(texts: &[&str]) -> String {
    const EDGE: usize = 512;
    let total: usize = texts.iter().map(|t| t.len()).sum();
    if total <= 2 * EDGE {
        return texts.concat();
    }
    let mut head = String::with_capacity(EDGE + 4);
    for text in texts {
        head.push_str(stream::prefix_within(text, EDGE - head.len()));
        if head.len() >= EDGE {
            break;
        }
    }
    let mut tail: Vec<&str> = Vec::new();
    let mut tail_len = 0;
    for text in texts.iter().rev() {
        let room = EDGE - tail_len;
        let mut cut = text.len().saturating_sub(room);
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        tail.push(&text[cut..]);
        tail_len += text.len() - cut;
        if tail_len >= EDGE || cut > 0 {
            break;
        }
    }
    tail.reverse();
    let mut all = foldhash::fast::FixedState::with_seed(0).build_hasher();
    for text in texts {
        all.write(text.as_bytes());
    }
    format!("{head}…{total}:{:016x}…{}", all.finish(), tail.concat())
}

/// Joins tenant and key id into the extraction monitor's name for a caller. Split at its first
/// occurrence, which configured tenant names do not hold.
const CALLER_SEPARATOR: char = '\u{0}';

/// The `signal` label of `hangar_gateway_extraction_signal`.
const EXTRACTION_SIGNALS: [&str; 3] = ["requests", "distinct_prompt_ratio", "output_input_ratio"];

/// Callers with a series in `hangar_gateway_extraction_alerts_total`, at most: a token's subject
/// is a key id no configuration bounds. Alerts of callers past it are counted under
/// [`OTHER_CALLERS`].
const MAX_ALERTING_CALLERS: usize = 1000;
/// The `key_id` of the alerts past [`MAX_ALERTING_CALLERS`].
const OTHER_CALLERS: &str = "(others)";

/// Removes the extraction gauges of `callers`, whom the monitor no longer tracks.
fn forget_gauges(metrics: &Metrics, callers: &[String]) {
    for caller in callers {
        let Some((tenant, key_id)) = caller.split_once(CALLER_SEPARATOR) else {
            continue;
        };
        for signal in EXTRACTION_SIGNALS {
            metrics.extraction.remove(&[tenant, key_id, signal]);
        }
    }
}

/// Feeds the replica's extraction monitor, and shows the caller's signals: `shared`'s when the
/// window the replicas share took the request (with whether this request raises the alert),
/// else the replica's own. An alert is a guard decision in this request's record and a metric.
fn watch_extraction(
    gateway: &Gateway,
    exchange: &mut Exchange,
    shared: Option<(ExtractionSignals, bool)>,
) {
    let record = &exchange.record;
    let (Some(tenant), Some(key_id)) = (&record.tenant, &record.key_id) else {
        return;
    };
    // Per tenant: a token's subject may be another tenant's API key id.
    let caller = format!("{tenant}{CALLER_SEPARATOR}{key_id}");
    let mut monitor = gateway.extraction.lock().unwrap_or_else(|p| p.into_inner());
    let now_ms = u64::try_from(gateway.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    // Fed even while the replicas share a window, to stand in when Redis cannot answer.
    let own_alert = monitor.record(
        &caller,
        now_ms,
        &exchange.prompt_digest_text,
        record.prompt_tokens,
        record.completion_tokens,
    );
    // Gauges of callers evicted to make room go now: without a scrape, their names would pile up.
    forget_gauges(&gateway.metrics, &monitor.take_evicted());
    let thresholds = *monitor.thresholds();
    let (signals, alert) = match shared {
        Some((signals, raises)) => {
            let reasons = thresholds.crossed(&signals);
            let alert = (raises && !reasons.is_empty()).then(|| ExtractionAlert {
                key_id: String::new(),
                signals,
                reasons,
                min_requests: thresholds.min_requests,
            });
            (Some(signals), alert)
        }
        None => (monitor.signals(&caller), own_alert),
    };
    // Only busy keys get gauges: a token subject per caller must not grow the metrics page.
    let busy = thresholds.min_requests / 2;
    if let Some(signals) = signals.filter(|s| s.requests_in_window >= busy) {
        let values = [
            signals.requests_in_window as f64,
            signals.distinct_prompt_ratio,
            signals.output_input_ratio,
        ];
        for (signal, value) in EXTRACTION_SIGNALS.into_iter().zip(values) {
            gateway
                .metrics
                .extraction
                .set(&[tenant, key_id, signal], value);
        }
    }
    drop(monitor);
    if let Some(mut alert) = alert {
        // The monitor's name for the caller joins tenant and key with a NUL, which log tools
        // read as the end of the text.
        alert.key_id = format!("{key_id} (tenant {tenant})");
        gateway.metrics.extraction_alerts.add_bounded(
            &[tenant, key_id],
            1,
            MAX_ALERTING_CALLERS,
            &[tenant, OTHER_CALLERS],
        );
        exchange.guard("extraction", "log", alert.to_string());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_model_servers_retry_after_is_read_as_one_to_300_seconds() {
        let read = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::RETRY_AFTER, value.parse().unwrap());
            super::retry_after(&headers).as_secs()
        };
        assert_eq!(read("7"), 7);
        assert_eq!(read("0"), 1);
        assert_eq!(read("86400"), 300);
        assert_eq!(read("Wed, 21 Oct 2099 07:28:00 GMT"), 1);
    }

    #[test]
    fn a_model_servers_refusal_is_read_in_each_servers_shape() {
        use super::UpstreamRefusal;
        let read = |body: &str| UpstreamRefusal::read(&serde_json::from_str(body).unwrap());
        let refusal = |message: &str, param: Option<&str>, code: Option<&'static str>| {
            Some(UpstreamRefusal {
                message: message.to_owned(),
                param: param.map(str::to_owned),
                code,
            })
        };
        // OpenAI and vLLM: the code clients test for and the field are kept.
        let openai = r#"{"error": {"message": "too long", "type": "invalid_request_error",
            "param": "messages", "code": "context_length_exceeded"}}"#;
        assert_eq!(
            read(openai),
            refusal(
                "too long",
                Some("messages"),
                Some("context_length_exceeded")
            )
        );
        // SGLang, older vLLM, TensorRT-LLM: at the top, with a number for a code.
        let sglang = r#"{"object": "error", "message": "This model's maximum context length is 4096 tokens.",
            "type": "BadRequestError", "param": null, "code": 400}"#;
        assert_eq!(
            read(sglang),
            refusal(
                "This model's maximum context length is 4096 tokens.",
                None,
                None
            )
        );
        // TGI.
        let tgi =
            r#"{"error": "Input validation error: `inputs` too long", "error_type": "validation"}"#;
        assert_eq!(
            read(tgi),
            refusal("Input validation error: `inputs` too long", None, None)
        );
        // FastAPI's validation errors, and its plain detail.
        let fastapi = r#"{"detail": [{"loc": ["body", "temperature"], "msg": "Input should be less than or equal to 2", "type": "less_than_equal"},
            {"loc": ["body", "x"]}, {"loc": ["body", "messages", 0, "role"], "msg": "Field required"}]}"#;
        assert_eq!(
            read(fastapi),
            refusal(
                "temperature: Input should be less than or equal to 2; messages.0.role: Field required",
                Some("temperature"),
                None
            )
        );
        assert_eq!(
            read(r#"{"detail": "Not allowed"}"#),
            refusal("Not allowed", None, None)
        );
        // Codes a server makes up, and a `param` that is no field path, are not passed on.
        let odd = r#"{"error": {"message": "no", "param": "<script>", "code": "my_own_code"}}"#;
        assert_eq!(read(odd), refusal("no", None, None));
        // Nothing readable: the gateway's own message stands.
        assert_eq!(read(r#"{"error": {"code": 400}}"#), None);
        assert_eq!(read(r#"[1, 2]"#), None);
        let long = format!(r#"{{"message": "{}"}}"#, "x".repeat(5000));
        assert_eq!(read(&long).unwrap().message.len(), 1000);
    }

    #[test]
    fn what_the_context_leaves_is_read_from_each_servers_refusal() {
        use super::context_room;
        for (message, room) in [
            // vLLM now, and before.
            (
                "'max_tokens' or 'max_completion_tokens' is too large: 4096. This model's maximum context length is 4096 tokens and your request has 312 input tokens (4096 > 4096 - 312).",
                Some(3783),
            ),
            (
                "This model's maximum context length is 4096 tokens. However, you requested 4408 tokens (312 in the messages, 4096 in the completion). Please reduce the length of the messages or completion.",
                Some(3783),
            ),
            // SGLang.
            (
                "Requested token count exceeds the model's maximum context length of 8192 tokens. You requested a total of 9000 tokens: 904 tokens from the input messages and 8096 tokens for the completion.",
                Some(7287),
            ),
            // TGI.
            (
                "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 2048. Given: 1000 `inputs` tokens and 4096 `max_new_tokens`",
                Some(1047),
            ),
            // A prompt longer than the context alone, and a message without numbers.
            (
                "This model's maximum context length is 4096 tokens. However, your request has 5000 input tokens.",
                None,
            ),
            ("the prompt is too long", None),
        ] {
            assert_eq!(context_room(message), room, "{message}");
        }
    }

    #[test]
    fn request_ids_differ_between_processes_and_do_not_count_requests() {
        let (first, second) = (super::RequestIds::new(), super::RequestIds::new());
        let ids: Vec<String> = (0..1000).map(|_| first.next()).collect();
        let unique: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        assert_ne!(
            first.prefix, second.prefix,
            "two processes started together"
        );
        // The same number gives another tail under another process's key.
        assert_ne!(ids[0].rsplit('-').next(), second.next().rsplit('-').next());
        assert!(
            ids[0].starts_with("hg-") && ids[0].len() == 3 + 16 + 1 + 16,
            "{ids:?}"
        );
    }

    use super::*;

    #[test]
    fn a_long_prompt_is_sampled_at_both_ends_on_character_boundaries_and_hashed_whole() {
        assert_eq!(prompt_sample(&["short ", "prompt"]), "short prompt");
        let long = format!("{}{}{}", "é".repeat(400), "x".repeat(3000), "ü".repeat(400));
        let sample = prompt_sample(&["start ", &long, " end"]);
        assert!(sample.len() < 1200, "{}", sample.len());
        assert!(sample.starts_with("start é"));
        assert!(sample.ends_with("ü end"));
        assert_eq!(sample, prompt_sample(&["start ", &long, " end"]));
        assert_ne!(sample, prompt_sample(&["begin ", &long, " end"]));
        // Templated prompts: the same preamble and tail around a question that changes.
        let other = prompt_sample(&["start ", &long.replacen("xxx", "yyy", 1), " end"]);
        assert_ne!(sample, other, "the middle counts too");
    }
}
