//! The load generator: HTTP/1.1 keep-alive connections on hyper, in three modes.
//!
//! - [`constant_rate`]: open loop, like wrk2. Request `i` is due at `start + i / rate`, and the
//!   connections take turns (connection `k` sends requests `k`, `k + N`, …). A request that is
//!   due while its connection is still busy counts its latency from when it was due, so a stall
//!   shows in the percentiles instead of quietly lowering the rate (coordinated omission). A
//!   request whose connection is idle counts from when it is actually sent, so the timer's
//!   1 ms granularity is not counted as latency.
//! - [`closed_loop`]: `connections` clients, each sending its next request as soon as the last
//!   answer is read: the most the path can serve.
//! - [`streams`]: `streams` streamed requests at once, each on its own connection, held open
//!   until the server ends them; counts how many were open together.
//!
//! Latency is from sending the request to reading the last byte of the answer, recorded in
//! microseconds in an HDR histogram (3 significant digits).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Where requests go and what they carry.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's address.
    pub address: SocketAddr,
    /// The request path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The JSON body of every request.
    pub body: Bytes,
    /// Sent as `Authorization: Bearer …` when set.
    pub bearer: Option<String>,
}

impl Target {
    fn request(&self) -> Result<Request<Full<Bytes>>, http::Error> {
        let mut request = Request::post(self.path.as_str())
            .header(header::HOST, self.address.to_string())
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(bearer) = &self.bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {bearer}"));
        }
        request.body(Full::new(self.body.clone()))
    }
}

/// A chat request body with a user message of `prompt_bytes` bytes of ordinary English that
/// mentions an e-mail address and a phone number once (so redaction finds something), asking for
/// at most 64 tokens.
pub fn chat_body(prompt_bytes: usize, stream: bool) -> Bytes {
    let mut body = json!({
        "model": "bench-model",
        "messages": [
            {"role": "system", "content": "You are a helpful support assistant for a hosting company."},
            {"role": "user", "content": prompt(prompt_bytes)},
        ],
        "max_tokens": 64,
    });
    if stream && let Some(object) = body.as_object_mut() {
        object.insert("stream".into(), Value::Bool(true));
    }
    Bytes::from(body.to_string())
}

const PROMPT_OPENING: &str = "Hello, I am writing about order 48213. You can reach me at \
jane.doe@example.com or on +1 415 555 0134 during office hours. ";

const PROMPT_FILLER: &str = "Since last Tuesday the dashboard has been loading slowly in the \
afternoons, and twice the nightly export stopped halfway without an error message. We changed \
nothing on our side except adding two new users to the billing team. Could you look at the logs \
for our account and tell us whether the export job is being throttled, and if so what limit we \
are hitting and how we could raise it? ";

/// Ordinary text of exactly `bytes` bytes (ASCII), or the opening alone cut to `bytes`.
pub fn prompt(bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + PROMPT_FILLER.len());
    text.push_str(PROMPT_OPENING);
    while text.len() < bytes {
        text.push_str(PROMPT_FILLER);
    }
    text.truncate(bytes);
    text
}

/// What one run measured.
#[derive(Debug)]
pub struct Report {
    /// `rate`, `max` or `streams`.
    pub mode: &'static str,
    /// Answers read whole with status 200.
    pub ok: u64,
    /// Failures by kind: `status 503`, `connect`, `request`, `body`, `incomplete`.
    pub errors: BTreeMap<String, u64>,
    /// Length of the measured window, in seconds.
    pub seconds: f64,
    /// Latency of the successful requests, in microseconds.
    pub latency: Histogram<u64>,
    /// Mode-specific figures.
    pub extra: serde_json::Map<String, Value>,
}

impl Report {
    fn new(mode: &'static str, empty: &Histogram<u64>) -> Report {
        Report {
            mode,
            ok: 0,
            errors: BTreeMap::new(),
            seconds: 0.0,
            latency: empty.clone(),
            extra: serde_json::Map::new(),
        }
    }

    /// All failures.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Requests finished (either way) per second of the measured window.
    pub fn achieved_rate(&self) -> f64 {
        if self.seconds > 0.0 {
            (self.ok + self.error_count()) as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The latency at quantile `q` (0.5, 0.99…) in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    /// The report as one JSON object, latencies in milliseconds.
    pub fn to_json(&self, label: &str) -> Value {
        let mut value = json!({
            "label": label,
            "mode": self.mode,
            "ok": self.ok,
            "errors": self.error_count(),
            "error_kinds": self.errors,
            "seconds": round3(self.seconds),
            "rate": round3(self.achieved_rate()),
            "p50_ms": round3(self.quantile_ms(0.5)),
            "p90_ms": round3(self.quantile_ms(0.9)),
            "p99_ms": round3(self.quantile_ms(0.99)),
            "p999_ms": round3(self.quantile_ms(0.999)),
            "max_ms": round3(self.latency.max() as f64 / 1000.0),
            "mean_ms": round3(self.latency.mean() / 1000.0),
        });
        if let Some(object) = value.as_object_mut() {
            object.extend(self.extra.clone());
        }
        value
    }

    /// A short human summary.
    pub fn summary(&self, label: &str) -> String {
        format!(
            "{label}: {mode} {ok} ok, {errors} errors in {seconds:.1} s = {rate:.0}/s; \
             p50 {p50:.3} ms, p90 {p90:.3}, p99 {p99:.3}, p99.9 {p999:.3}, max {max:.3}",
            mode = self.mode,
            ok = self.ok,
            errors = self.error_count(),
            seconds = self.seconds,
            rate = self.achieved_rate(),
            p50 = self.quantile_ms(0.5),
            p90 = self.quantile_ms(0.9),
            p99 = self.quantile_ms(0.99),
            p999 = self.quantile_ms(0.999),
            max = self.latency.max() as f64 / 1000.0,
        )
    }

    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// An empty histogram from one microsecond to one hour, three significant digits.
pub fn new_histogram() -> Result<Histogram<u64>, hdrhistogram::CreationError> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
}

/// One worker's counts, merged into the report at the end.
struct Tally {
    ok: u64,
    errors: BTreeMap<String, u64>,
    latency: Histogram<u64>,
    last_done: Option<Instant>,
}

impl Tally {
    fn new(empty: &Histogram<u64>) -> Tally {
        Tally {
            ok: 0,
            errors: BTreeMap::new(),
            latency: empty.clone(),
            last_done: None,
        }
    }

    fn count(&mut self, outcome: Result<(), String>, took: Duration, done: Instant) {
        match outcome {
            Ok(()) => {
                self.ok += 1;
                let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
                self.latency.saturating_record(micros);
            }
            Err(kind) => *self.errors.entry(kind).or_default() += 1,
        }
        self.last_done = Some(self.last_done.map_or(done, |last| last.max(done)));
    }
}

/// One keep-alive connection that reconnects when the server closes it. A reconnect is not an
/// error; a request that fails is.
struct Client {
    target: Arc<Target>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    fn new(target: Arc<Target>) -> Client {
        Client {
            target,
            sender: None,
        }
    }

    async fn connect(&mut self) -> Result<(), String> {
        let stream = TcpStream::connect(self.target.address)
            .await
            .map_err(|_| "connect".to_owned())?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| "connect".to_owned())?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends one request and reads the whole answer.
    async fn exchange(&mut self) -> Result<(), String> {
        let mut sender = match self.sender.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => {
                self.connect().await?;
                self.sender.take().ok_or("connect")?
            }
        };
        if sender.ready().await.is_err() {
            self.connect().await?;
            sender = self.sender.take().ok_or("connect")?;
            sender.ready().await.map_err(|_| "connect".to_owned())?;
        }
        let request = self.target.request().map_err(|_| "request".to_owned())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|_| "request".to_owned())?;
        let status = response.status();
        let body = response.into_body().collect().await;
        self.sender = Some(sender);
        if body.is_err() {
            return Err("body".to_owned());
        }
        if status != StatusCode::OK {
            return Err(format!("status {}", status.as_u16()));
        }
        Ok(())
    }
}

/// The open-loop run's settings.
#[derive(Debug, Clone, Copy)]
pub struct RateRun {
    /// Requests per second.
    pub rate: f64,
    /// Connections that share the schedule.
    pub connections: usize,
    /// Sent at the same rate before measuring, and not counted.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
}

/// Sends `run.rate` requests per second; see the module documentation for how latency counts.
pub async fn constant_rate(
    target: Target,
    run: RateRun,
) -> Result<Report, hdrhistogram::CreationError> {
    let empty = new_histogram()?;
    let target = Arc::new(target);
    let connections = run.connections.max(1);
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut client = Client::new(Arc::clone(&target));
        // A failed connect is retried, and counted, on the first request.
        let _ = client.connect().await;
        clients.push(client);
    }
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + run.warmup;
    let end = measure_from + run.duration;
    let period = Duration::from_secs_f64(1.0 / run.rate.max(0.001));
    let mut workers = JoinSet::new();
    for (k, mut client) in clients.into_iter().enumerate() {
        let empty = empty.clone();
        workers.spawn(async move {
            let mut tally = Tally::new(&empty);
            let mut i = k as u64;
            loop {
                let due = start + period.mul_f64(i as f64);
                if due >= end {
                    break;
                }
                i += connections as u64;
                let sent = if Instant::now() >= due {
                    due // behind schedule: the wait for this connection is latency too
                } else {
                    tokio::time::sleep_until(due).await;
                    Instant::now()
                };
                let outcome = client.exchange().await;
                let done = Instant::now();
                if due >= measure_from {
                    tally.count(outcome, done - sent, done);
                }
            }
            tally
        });
    }
    let mut report = Report::new("rate", &empty);
    let mut last_done = measure_from;
    while let Some(joined) = workers.join_next().await {
        if let Ok(tally) = joined {
            last_done = last_done.max(tally.last_done.unwrap_or(measure_from));
            report.merge(tally);
        }
    }
    // Requests due near the end may finish after it; the window lasts until the last one did.
    report.seconds = (last_done - measure_from)
        .as_secs_f64()
        .max(run.duration.as_secs_f64());
    report.extra.insert("target_rate".into(), json!(run.rate));
    report
        .extra
        .insert("connections".into(), json!(connections));
    Ok(report)
}

/// The closed-loop run's settings.
#[derive(Debug, Clone, Copy)]
pub struct LoopRun {
    /// Clients, each with one request in flight at a time.
    pub connections: usize,
    /// Run before measuring, and not counted.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
}

/// Every connection sends its next request as soon as its last answer is read.
pub async fn closed_loop(
    target: Target,
    run: LoopRun,
) -> Result<Report, hdrhistogram::CreationError> {
    let empty = new_histogram()?;
    let target = Arc::new(target);
    let connections = run.connections.max(1);
    let start = Instant::now();
    let measure_from = start + run.warmup;
    let end = measure_from + run.duration;
    let mut workers = JoinSet::new();
    for _ in 0..connections {
        let mut client = Client::new(Arc::clone(&target));
        let empty = empty.clone();
        workers.spawn(async move {
            let mut tally = Tally::new(&empty);
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let outcome = client.exchange().await;
                let done = Instant::now();
                if sent >= measure_from && done <= end {
                    tally.count(outcome, done - sent, done);
                }
            }
            tally
        });
    }
    let mut report = Report::new("max", &empty);
    while let Some(joined) = workers.join_next().await {
        if let Ok(tally) = joined {
            report.merge(tally);
        }
    }
    report.seconds = run.duration.as_secs_f64();
    report
        .extra
        .insert("connections".into(), json!(connections));
    Ok(report)
}

/// The streams run's settings.
#[derive(Debug, Clone, Copy)]
pub struct StreamsRun {
    /// Streamed requests at once, one connection each.
    pub streams: usize,
    /// Give up on a stream after this long.
    pub timeout: Duration,
    /// A process whose resident memory is read when every stream is open and at the end.
    pub watch_pid: Option<u32>,
}

/// Opens `run.streams` streamed requests together and reads each to its end. Latency here is
/// the time to the first event; `duration_*` is the whole stream.
pub async fn streams(
    target: Target,
    run: StreamsRun,
) -> Result<Report, hdrhistogram::CreationError> {
    let empty = new_histogram()?;
    let target = Arc::new(target);
    let open = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let rss_at_peak = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..run.streams {
        let target = Arc::clone(&target);
        let gauges = Gauges {
            open: Arc::clone(&open),
            peak: Arc::clone(&peak),
            rss_at_peak: Arc::clone(&rss_at_peak),
            all: run.streams,
            watch_pid: run.watch_pid,
        };
        workers.spawn(async move {
            let began = Instant::now();
            let outcome = tokio::time::timeout(run.timeout, one_stream(&target, &gauges)).await;
            let done = Instant::now();
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(_) => Err("timeout".to_owned()),
            };
            (outcome, done - began)
        });
    }
    let mut report = Report::new("streams", &empty);
    let mut tally = Tally::new(&empty);
    let mut durations = empty.clone();
    let mut events = 0u64;
    while let Some(joined) = workers.join_next().await {
        let Ok((outcome, took)) = joined else {
            continue;
        };
        let done = Instant::now();
        match outcome {
            Ok(stream) => {
                events += stream.events;
                tally.count(Ok(()), stream.first_event, done);
                durations.saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
            }
            Err(kind) => tally.count(Err(kind), took, done),
        }
    }
    report.merge(tally);
    report.seconds = start.elapsed().as_secs_f64();
    report.extra.insert("streams".into(), json!(run.streams));
    report
        .extra
        .insert("peak_open".into(), json!(peak.load(Ordering::Relaxed)));
    report.extra.insert("events".into(), json!(events));
    report.extra.insert(
        "duration_p50_ms".into(),
        json!(round3(durations.value_at_quantile(0.5) as f64 / 1000.0)),
    );
    report.extra.insert(
        "duration_max_ms".into(),
        json!(round3(durations.max() as f64 / 1000.0)),
    );
    if let Some(pid) = run.watch_pid {
        let at_peak = rss_at_peak.load(Ordering::Relaxed);
        report.extra.insert("watched_pid".into(), json!(pid));
        report
            .extra
            .insert("rss_all_open_kib".into(), json!(at_peak));
        report
            .extra
            .insert("vm_hwm_kib".into(), json!(proc_status_kib(pid, "VmHWM")));
        report
            .extra
            .insert("rss_end_kib".into(), json!(proc_status_kib(pid, "VmRSS")));
    }
    Ok(report)
}

/// Shared counters of the streams run.
struct Gauges {
    open: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    rss_at_peak: Arc<AtomicUsize>,
    all: usize,
    watch_pid: Option<u32>,
}

impl Gauges {
    fn opened(&self) {
        let now = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        if now == self.all
            && let Some(pid) = self.watch_pid
        {
            self.rss_at_peak.store(
                usize::try_from(proc_status_kib(pid, "VmRSS")).unwrap_or(0),
                Ordering::Relaxed,
            );
        }
    }

    fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

struct StreamRead {
    first_event: Duration,
    events: u64,
}

async fn one_stream(target: &Target, gauges: &Gauges) -> Result<StreamRead, String> {
    let mut client = Client::new(Arc::new(target.clone()));
    client.connect().await?;
    let mut sender = client.sender.take().ok_or("connect")?;
    sender.ready().await.map_err(|_| "connect".to_owned())?;
    let request = target.request().map_err(|_| "request".to_owned())?;
    let sent = Instant::now();
    let response = sender
        .send_request(request)
        .await
        .map_err(|_| "request".to_owned())?;
    if response.status() != StatusCode::OK {
        return Err(format!("status {}", response.status().as_u16()));
    }
    gauges.opened();
    let read = read_events(response.into_body(), sent).await;
    gauges.closed();
    read
}

async fn read_events(mut body: hyper::body::Incoming, sent: Instant) -> Result<StreamRead, String> {
    let mut first_event = None;
    let mut events = 0u64;
    let mut tail: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| "body".to_owned())?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        first_event.get_or_insert_with(|| sent.elapsed());
        events += data.windows(6).filter(|w| w == b"data: ").count() as u64;
        // Keep only enough of the end to see `data: [DONE]`.
        tail.extend_from_slice(data);
        let keep = tail.len().saturating_sub(32);
        tail.drain(..keep);
    }
    if !tail.windows(6).any(|w| w == b"[DONE]") {
        return Err("incomplete".to_owned());
    }
    Ok(StreamRead {
        first_event: first_event.unwrap_or_default(),
        events,
    })
}

/// A `kB` figure from `/proc/PID/status` (`VmRSS`, `VmHWM`), or 0 when it cannot be read.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_have_the_asked_size_and_the_contact_details() {
        let text = prompt(4096);
        assert_eq!(text.len(), 4096);
        assert!(text.contains("jane.doe@example.com"));
        assert_eq!(prompt(10).len(), 10);
        let body: Value = serde_json::from_slice(&chat_body(4096, true)).unwrap();
        assert_eq!(body["stream"], true);
        assert_eq!(body["messages"][1]["content"].as_str().unwrap().len(), 4096);
        let body: Value = serde_json::from_slice(&chat_body(100, false)).unwrap();
        assert!(body.get("stream").is_none());
    }

    #[test]
    fn reads_our_own_memory_figures() {
        let pid = std::process::id();
        assert!(proc_status_kib(pid, "VmRSS") > 0);
        assert!(proc_status_kib(pid, "VmHWM") >= proc_status_kib(pid, "VmRSS") / 2);
        assert_eq!(proc_status_kib(pid, "NoSuchField"), 0);
    }
}
