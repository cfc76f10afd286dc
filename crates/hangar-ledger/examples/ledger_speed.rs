//! How fast the ledger writes, and what `append` costs the caller's thread.
//!
//! ```text
//! cargo run --release -p hangar-ledger --example ledger_speed [-- RECORDS]
//! ```
//!
//! Three runs over a temporary directory, with the default configuration (64 MiB files,
//! batches of 1024, written every 200 ms, no fsync per batch):
//!
//! * burst: the default 65 536-record queue; one thread appends as fast as it can, far faster
//!   than any writer, so records beyond the queue are dropped (and the loss recorded).
//! * steady: a queue as long as the run, so nothing is dropped: what `append` costs when the
//!   queue has room, and how many records per second the writer thread chains and writes.
//! * two callers: the same with two threads appending at once (contention on `append`).

use std::time::{Duration, Instant};

use hangar_ledger::{Ledger, LedgerConfig, LedgerSender, LedgerStats};
use serde::Serialize;

/// A gateway audit record of realistic size (about 250 bytes of JSON).
#[derive(Serialize)]
struct Audit {
    time: &'static str,
    tenant: &'static str,
    key_id: &'static str,
    model: &'static str,
    version: &'static str,
    request: u64,
    tokens_in: u32,
    tokens_out: u32,
    status: u16,
    latency_ms: u32,
    guards: [&'static str; 2],
}

fn audit(request: u64) -> Audit {
    Audit {
        time: "2025-06-01T12:00:00.123456Z",
        tenant: "acme-payments",
        key_id: "key_7f3a9c",
        model: "llama-3.1-8b-instruct",
        version: "2025.05.2",
        request,
        tokens_in: 412,
        tokens_out: 96,
        status: 200,
        latency_ms: 843,
        guards: ["pii:redacted", "injection:pass"],
    }
}

/// Every 64th append is timed on its own, for the distribution.
const SAMPLE_EVERY: u64 = 64;

struct Run {
    name: &'static str,
    records: u64,
    appending: Duration,
    total: Duration,
    samples: Vec<Duration>,
    stats: LedgerStats,
    bytes: u64,
    files: usize,
    verifying: Duration,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let records: u64 = match std::env::args().nth(1) {
        Some(text) => text.parse()?,
        None => 1_000_000,
    };
    let runs = [
        measure("burst", records, 1, None)?,
        measure("steady", records, 1, Some(records))?,
        measure("two callers", records, 2, Some(records))?,
    ];
    println!(
        "{records} records of {} bytes of JSON",
        serde_json::to_vec(&audit(0))?.len()
    );
    for run in &runs {
        report(run);
    }
    Ok(())
}

fn measure(
    name: &'static str,
    records: u64,
    threads: u64,
    queue: Option<u64>,
) -> Result<Run, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut config = LedgerConfig::new(dir.path(), "audit");
    if let Some(queue) = queue {
        config.queue = usize::try_from(queue)?;
    }
    let ledger = Ledger::open(config)?;
    let start = Instant::now();
    let callers: Vec<_> = (0..threads)
        .map(|thread| {
            let sender = ledger.sender();
            let share = records / threads;
            std::thread::spawn(move || append_all(&sender, thread * share, share))
        })
        .collect();
    let mut samples = Vec::new();
    for caller in callers {
        samples.extend(caller.join().map_err(|_| "a caller thread panicked")?);
    }
    let appending = start.elapsed();
    let stats = ledger.close()?;
    let total = start.elapsed();

    let mut bytes = 0;
    let mut files = 0;
    for entry in std::fs::read_dir(dir.path())? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().ends_with(".jsonl") {
            bytes += entry.metadata()?.len();
            files += 1;
        }
    }
    let verify_start = Instant::now();
    let report = hangar_ledger::verify(dir.path(), "audit")?;
    let verifying = verify_start.elapsed();
    if !report.is_intact() {
        return Err(format!(
            "{name}: the chain does not verify: {:?}",
            report.problems.first()
        )
        .into());
    }
    Ok(Run {
        name,
        records,
        appending,
        total,
        samples,
        stats,
        bytes,
        files,
        verifying,
    })
}

fn append_all(sender: &LedgerSender, first: u64, count: u64) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(usize::try_from(count / SAMPLE_EVERY).unwrap_or(0) + 1);
    for request in first..first + count {
        if request % SAMPLE_EVERY == 0 {
            let start = Instant::now();
            sender.append(audit(request));
            samples.push(start.elapsed());
        } else {
            sender.append(audit(request));
        }
    }
    samples
}

fn report(run: &Run) {
    let mut samples = run.samples.clone();
    samples.sort();
    let at = |quantile: f64| {
        let index = ((samples.len() as f64 - 1.0) * quantile).round() as usize;
        samples.get(index).map_or(0, Duration::as_nanos)
    };
    let per_append = run.appending.as_nanos() as f64 / run.records as f64;
    let written_per_second = run.stats.written as f64 / run.total.as_secs_f64();
    println!(
        "{:<12} append: {per_append:>6.0} ns/record on average (sampled p50 {} ns, p99 {} ns, max {} ns); \
         written {} dropped {} in {:.2?} = {:.0} records/s, {:.0} MB/s; {} file(s), {} MB; \
         verified in {:.2?}",
        run.name,
        at(0.5),
        at(0.99),
        at(1.0),
        run.stats.written,
        run.stats.dropped,
        run.total,
        written_per_second,
        run.bytes as f64 / 1e6 / run.total.as_secs_f64(),
        run.files,
        run.bytes / 1_000_000,
        run.verifying,
    );
}
