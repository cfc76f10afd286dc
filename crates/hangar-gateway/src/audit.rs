//! The audit record written for every request, and the two logs it goes to: the audit log
//! (always; metadata only) and the content log (optional; redacted prompts and answers). Both
//! are hash-chained `hangar-ledger` files written by their own thread, off the request path.

use std::time::Duration;

use hangar_ledger::{Clock, Ledger, LedgerConfig, LedgerSender, SystemClock};
use serde::Serialize;

use crate::config::AuditConfig;
use crate::refusals::RefusalSummary;

/// One guard's decision on one request. `detail` names rules or kinds, never content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardDecision {
    /// `injection`, `canary`, `redaction` or `extraction`.
    pub guard: &'static str,
    /// `log`, `flag`, `block`, `cut` or `redact`.
    pub action: &'static str,
    /// Which rules fired or which kinds were found, e.g. `ignore-instructions` or `card_number×2`.
    pub detail: String,
}

/// What the audit log keeps of one request.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditRecord {
    /// Always `request`.
    pub kind: &'static str,
    /// The gateway's request id, also sent upstream and to the client as `x-request-id`.
    pub id: String,
    /// When the request arrived (RFC 3339, UTC, microseconds). The chain's own `time` is when
    /// the record was written: a batch later, a stream's length later, or a disk stall later.
    pub started: String,
    /// The client's own `x-request-id`, to join its traces: at most 128 bytes of printable
    /// ASCII, or left out. Never sent upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    /// The client's address: the peer's, or behind a trusted proxy the one it forwarded.
    pub client: String,
    /// The verified tenant; absent when authentication failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The credential's id (API key id or token subject), never the secret; also for a key
    /// refused as revoked or expired, which names its holder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Why authentication failed (`revoked key`, `token: wrong audience`…), never the
    /// credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_failure: Option<String>,
    /// `chat`, `completion`, `embedding`, `models`, or `none` for a path the gateway does not
    /// serve.
    pub endpoint: String,
    /// For a path the gateway does not serve: the method and path asked for (what a scanner
    /// or a credential's holder probed), cut at 256 bytes, the query left out, redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The public model, once known to exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The version that served it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The version picked first, when its model server could not be reached and `version`
    /// took the request instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_over_from: Option<String>,
    /// Whether the answer was streamed.
    pub stream: bool,
    /// The status sent to the client.
    pub status: u16,
    /// The error code when it did not succeed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// How a stream ended (`complete`, `client_disconnected`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<&'static str>,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// `upstream` when the model server reported usage, `estimated` when the gateway counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_source: Option<&'static str>,
    /// Whole request time in milliseconds.
    pub latency_ms: f64,
    /// Time spent waiting on the model server, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_ms: Option<f64>,
    /// From the request's sending to the model server to the first token (a stream's first
    /// event carrying text, reasoning or a piece of a tool call) or to the response headers (an
    /// answer not streamed), in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_token_ms: Option<f64>,
    /// Each guard's decision.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guards: Vec<GuardDecision>,
}

/// Milliseconds with microsecond precision, for records.
pub fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

/// What the gateway itself did, in the audit chain: it started, its configuration was changed
/// (or a change refused), it stopped. An administrator's changes (keys among them) and the
/// audit log's own starts and stops are what an auditor must find in the chain, beside the
/// requests (PCI DSS 10.2.1.2, 10.2.1.5, 10.2.1.6); a stop recorded also tells a pause in the
/// chain from records removed.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayEvent {
    /// Always `gateway`.
    pub kind: &'static str,
    /// `start`, `reload`, `reload_rejected` or `stop`.
    pub event: &'static str,
    /// When (RFC 3339, UTC, microseconds).
    pub at: String,
    /// Hangar's version.
    pub version: &'static str,
    /// SHA-256 of the configuration file read, so the file behind a stretch of the log can be
    /// told.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_sha256: Option<String>,
    /// What a reload changed, as its log line says it: keys by id and settings by path, never
    /// a value.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// How many problems a refused configuration had (they are in the gateway's log).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<usize>,
}

impl GatewayEvent {
    /// `event`, now, with the digest of the configuration file read, when there is one.
    pub fn new(event: &'static str, config_sha256: Option<String>) -> GatewayEvent {
        GatewayEvent {
            kind: "gateway",
            event,
            at: format!("{:.6}", jiff::Timestamp::now()),
            version: env!("CARGO_PKG_VERSION"),
            config_sha256,
            changes: Vec::new(),
            problems: None,
        }
    }
}

/// A redacted prompt and answer, for the content log.
#[derive(Debug, Clone, Serialize)]
pub struct ContentRecord {
    /// Always `content`.
    pub kind: &'static str,
    /// The request id, to join with the audit record.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// The public model.
    pub model: String,
    /// The prompt texts, redacted.
    pub prompt: Vec<String>,
    /// The answer's text, redacted.
    pub completion: String,
}

/// The open logs.
pub struct AuditLogs {
    audit: Ledger,
    content: Option<Ledger>,
}

/// Cheap handles to the logs, for the request path.
#[derive(Clone)]
pub struct AuditSink {
    audit: LedgerSender,
    content: Option<LedgerSender>,
}

/// Records waiting for the audit log's writer thread, at least.
const AUDIT_QUEUE: usize = 16_384;

/// The most records the audit log's queue is sized for (its slots, 24 MiB, are allocated at
/// start).
const MAX_AUDIT_QUEUE: usize = 1 << 20;

/// The audit log's queue. With `failClosed`, for a gateway with `max_concurrent` requests in
/// flight: room for the records of those in flight and as many reading their bodies, with a
/// quarter to spare, so that it refuses for a stalled disk and not for a busy gateway (up to
/// [`MAX_AUDIT_QUEUE`]: past it, requests that could not be recorded for sure are refused).
fn audit_queue(fail_closed: bool, max_concurrent: u32) -> usize {
    if !fail_closed {
        return AUDIT_QUEUE;
    }
    let pending = 2 * u64::from(max_concurrent);
    let wanted = usize::try_from(pending + pending / 3).unwrap_or(MAX_AUDIT_QUEUE);
    wanted.clamp(AUDIT_QUEUE, MAX_AUDIT_QUEUE)
}

impl AuditLogs {
    /// Opens (or resumes) the audit log, and the content log when configured, in `config.dir`,
    /// for a gateway with `max_concurrent` requests in flight (`limits.maxConcurrent`).
    pub fn open(
        config: &AuditConfig,
        max_concurrent: u32,
    ) -> Result<AuditLogs, hangar_ledger::LedgerError> {
        let queue = audit_queue(config.fail_closed, max_concurrent);
        AuditLogs::open_with_clock(config, queue, SystemClock)
    }

    fn open_with_clock(
        config: &AuditConfig,
        queue: usize,
        clock: impl Clock + Clone,
    ) -> Result<AuditLogs, hangar_ledger::LedgerError> {
        let days = |n: u32| Duration::from_secs(u64::from(n) * 86_400);
        let mut audit = LedgerConfig::new(&config.dir, "audit");
        // The queue's slots are allocated and touched up front: 16k records (0.4 MiB, not the
        // ledger's default 1.5 MiB) is still most of a second of a stalled disk at 20k req/s,
        // and a longer stall is recorded as a gap.
        audit.queue = queue;
        audit.rotate_bytes = config.rotate_size.0;
        audit.rotate_every = Some(Duration::from_secs(86_400));
        audit.retention = Some(days(config.retention_days));
        let content = match &config.content {
            None => None,
            Some(content) => {
                let mut ledger = LedgerConfig::new(&config.dir, "content");
                ledger.rotate_bytes = config.rotate_size.0;
                ledger.rotate_every = Some(Duration::from_secs(86_400));
                ledger.retention = Some(days(content.retention_days));
                Some(Ledger::open_with_clock(ledger, clock.clone())?)
            }
        };
        Ok(AuditLogs {
            audit: Ledger::open_with_clock(audit, clock)?,
            content,
        })
    }

    /// Handles for the request path.
    pub fn sink(&self) -> AuditSink {
        AuditSink {
            audit: self.audit.sender(),
            content: self.content.as_ref().map(Ledger::sender),
        }
    }

    /// Writes what is queued and closes the files (graceful shutdown). It waits for the writer
    /// threads: call it from a blocking context.
    pub fn close(self) -> Result<(), hangar_ledger::LedgerError> {
        // No chain can show from its own files that its newest records were cut off: the
        // last record's hash, kept elsewhere, can.
        if let Some(content) = self.content
            && let Some(last) = content.close()?.last
        {
            log_anchor("content", &last);
        }
        if let Some(last) = self.audit.close()?.last {
            log_anchor("audit", &last);
        }
        Ok(())
    }
}

/// Logs `last` as the anchor of the log `prefix` (`audit`, `content`).
pub fn log_anchor(prefix: &str, last: &hangar_ledger::Anchor) {
    let option = if prefix == "audit" {
        String::new()
    } else {
        format!(" --prefix {prefix}")
    };
    tracing::info!(
        "{prefix} log anchor: {}:{} (keep it outside the log directory; `hangar gateway verify-log{option} --anchor` checks the log still holds it)",
        last.seq,
        last.hash
    );
}

impl AuditSink {
    /// Queues an audit record; never waits, and serialises on the writer thread. A full
    /// queue is counted and later recorded in the chain as a gap.
    pub fn record(&self, record: AuditRecord) {
        self.audit.append(record);
    }

    /// The newest record written to the audit log.
    pub fn anchor(&self) -> Option<hangar_ledger::Anchor> {
        self.audit.last()
    }

    /// Each open log by its prefix: `audit`, and `content` when content is logged.
    fn logs(&self) -> impl Iterator<Item = (&'static str, &LedgerSender)> {
        let logs = [
            ("audit", Some(&self.audit)),
            ("content", self.content.as_ref()),
        ];
        (logs.into_iter()).filter_map(|(prefix, log)| Some((prefix, log?)))
    }

    /// The newest record written to each log, by prefix.
    pub fn anchors(&self) -> Vec<(&'static str, hangar_ledger::Anchor)> {
        (self.logs())
            .filter_map(|(prefix, log)| Some((prefix, log.last()?)))
            .collect()
    }

    /// Whether content is logged.
    pub fn logs_content(&self) -> bool {
        self.content.is_some()
    }

    /// Queues a record of the gateway's own doing.
    pub fn event(&self, event: GatewayEvent) {
        self.audit.append(event);
    }

    /// Queues the summary of a second's refusals past the budget.
    pub fn refusals(&self, summary: RefusalSummary) {
        self.audit.append(summary);
    }

    /// Queues a content record (already redacted by the caller). The records waiting are
    /// bounded by their bytes (the ledger's 64 MiB), not only by their number: a stalled disk
    /// must not fill memory with prompts.
    pub fn content(&self, record: ContentRecord) {
        if let Some(content) = &self.content {
            let bytes =
                record.prompt.iter().map(String::len).sum::<usize>() + record.completion.len();
            content.append_sized(record, bytes);
        }
    }

    /// Records written and dropped so far, for the metrics.
    pub fn counts(&self) -> (u64, u64) {
        (self.audit.written(), self.audit.dropped())
    }

    /// Content records written and dropped so far, when content is logged.
    pub fn content_counts(&self) -> Option<(u64, u64)> {
        let content = self.content.as_ref()?;
        Some((content.written(), content.dropped()))
    }

    /// Whether records may be lost now: a log's writes fail, or its queue is three-quarters
    /// full (a disk slower than the traffic: the records past the queue would be dropped), or
    /// the audit log's queue could not take the records of the `pending` requests (admitted, or
    /// reading their bodies) were the disk to stall now.
    pub fn may_lose_records(&self, pending: usize) -> bool {
        let behind = self
            .logs()
            .any(|(_, log)| log.failing() || log.fill() >= 0.75);
        behind || self.audit.queued() + pending >= self.audit.capacity()
    }

    /// Each log (`audit`, `content`) with whether its writes fail now and the records waiting
    /// for its writer, for the metrics.
    pub fn writers(&self) -> impl Iterator<Item = (&'static str, bool, usize)> + '_ {
        (self.logs()).map(|(prefix, log)| (prefix, log.failing(), log.queued()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn a_fail_closed_queue_holds_what_a_busy_gateway_has_pending_within_a_bound() {
        assert_eq!(audit_queue(false, 100_000), AUDIT_QUEUE);
        assert_eq!(audit_queue(true, 4096), AUDIT_QUEUE);
        assert_eq!(audit_queue(true, 100_000), 266_666);
        assert_eq!(audit_queue(true, u32::MAX), MAX_AUDIT_QUEUE);
    }

    /// The system clock, behind a gate: the writer threads stop at their next batch while the
    /// gate is held, as on a disk that does not keep up.
    #[derive(Clone, Default)]
    struct GatedClock(Arc<Mutex<()>>);

    impl Clock for GatedClock {
        fn now(&self) -> jiff::Timestamp {
            drop(self.0.lock());
            jiff::Timestamp::now()
        }
    }

    #[test]
    fn records_may_be_lost_while_the_queue_fills_and_not_once_it_drained() {
        let dir = tempfile::tempdir().unwrap();
        let config: AuditConfig =
            serde_json::from_value(serde_json::json!({"dir": dir.path(), "retentionDays": 1}))
                .unwrap();
        let clock = GatedClock::default();
        let queue = 2 * AUDIT_QUEUE;
        let logs = AuditLogs::open_with_clock(&config, queue, clock.clone()).unwrap();
        let sink = logs.sink();
        assert!(!sink.may_lose_records(0));
        // As many requests in flight as the queue holds: a stalled disk would lose some.
        assert!(sink.may_lose_records(queue));
        assert!(!sink.may_lose_records(queue - 1));
        let gate = clock.0.lock().unwrap();
        // The writer takes what is queued when it wakes, then stops at the gate: the queue
        // fills behind it, and says so before it is full.
        let mut sent = 0;
        while !sink.may_lose_records(0) && sent < queue * 2 {
            sink.event(GatewayEvent::new("start", None));
            sent += 1;
        }
        assert!(sink.may_lose_records(0), "{} queued", sink.audit.queued());
        assert_eq!(sink.counts().1, 0, "nothing was dropped");
        drop(gate);
        let drained = std::time::Instant::now() + Duration::from_secs(10);
        while sink.may_lose_records(0) && std::time::Instant::now() < drained {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!sink.may_lose_records(0), "{} queued", sink.audit.queued());
        assert_eq!(sink.counts().1, 0, "nothing was dropped");
        logs.close().unwrap();
    }
}
