//! Tamper-evident, append-only JSON Lines logs: a hash chain over every line, rotation,
//! retention, written by one dedicated thread so that callers never wait.
//!
//! The gateway writes one audit record per proxied request through it; the model-release
//! change ledger uses it too. A content log (redacted prompts and completions, kept for less
//! time) is simply a second [`Ledger`] with another prefix and retention, in the same directory
//! or not: a ledger only ever lists, reads, rotates or deletes files of its own prefix.
//!
//! ```no_run
//! # fn main() -> Result<(), hangar_ledger::LedgerError> {
//! use std::time::Duration;
//! use hangar_ledger::{Ledger, LedgerConfig, verify};
//!
//! let mut config = LedgerConfig::new("/var/lib/hangar/audit", "audit");
//! config.rotate_every = Some(Duration::from_secs(24 * 3600));
//! config.retention = Some(Duration::from_secs(400 * 24 * 3600));
//! let ledger = Ledger::open(config)?;
//!
//! let audit = ledger.sender(); // clone it into every task
//! let accepted = audit.append(serde_json::json!({"tenant": "acme", "model": "llama", "status": 200}));
//! // `false` means the queue was full: the loss is counted and put on the record.
//!
//! let stats = ledger.close()?; // at graceful shutdown: drains, writes, syncs
//! let report = verify("/var/lib/hangar/audit".as_ref(), "audit")?;
//! assert!(report.is_intact());
//! # let _ = (accepted, stats);
//! # Ok(())
//! # }
//! ```
//!
//! # Line format
//!
//! Each line of a file is one JSON object:
//!
//! ```text
//! {"seq":N,"time":"RFC3339","prev":"<64 hex>","hash":"<64 hex>","record":{…}}
//! ```
//!
//! * `seq` counts records from 0 (the genesis) without gaps, across files.
//! * `time` is when the writer chained the record (UTC, microseconds, never going backwards
//!   while the ledger runs). The caller's own times belong inside `record`.
//! * `prev` is the `hash` of the previous record, or 64 zeros for the genesis.
//! * `hash` is the lowercase hex SHA-256 of
//!   `prev "\n" seq "\n" time "\n" record`, where `seq` is in decimal and `record` is the exact
//!   bytes of the record's JSON as they appear in the line. Verification hashes those bytes as
//!   found, so it never depends on how JSON is re-serialised, and any byte edit is caught.
//!
//! Besides the callers' records, the ledger writes its own, told apart by `kind` (so callers
//! should not use these kinds):
//!
//! * `{"kind":"gap","dropped":N,"reason":"…"}`: N records were lost before reaching the file
//!   (queue full, or not serialisable).
//! * `{"kind":"rotate","next":"<file>"}`: the last record of a file, naming the next one.
//! * `{"kind":"resume","torn":{"file":…,"offset":…,"bytes":…,"sha256":…}}`: the first record of
//!   the file started after a crash left an incomplete line; it pins those bytes down.
//! * `{"kind":"retention","removed":["<file>",…],"before":"RFC3339","kept":"<file>"}`: files
//!   deleted by policy because all their records were older than `before`, and the oldest
//!   file left.
//!
//! # Files
//!
//! `<prefix>-<UTC yyyymmddThhmmss>-<seq of first record, 20 digits>.jsonl`, mode 0600 in a
//! 0700 directory, so names sort in chain order. The first record of each file chains to the
//! last record (the `rotate` record) of the previous file. A file is rotated when it reaches
//! [`LedgerConfig::rotate_bytes`] or is older than [`LedgerConfig::rotate_every`]. A lock file
//! `.<prefix>.lock` keeps two writers off the same chain.
//!
//! # Writing
//!
//! [`LedgerSender::append`] puts the record in a bounded queue and returns at once; it never
//! blocks. When the queue is full, the record is dropped and counted, and a `gap` record
//! later says how many were lost. Appending does not wake the writer thread (that would cost a
//! context switch per record): it looks at the queue every 10 ms, and is woken early only when
//! the queue is half full. The writer thread serialises and chains records, writes each
//! batch with a single `write`, at least every [`LedgerConfig::flush_every`], and syncs if
//! [`LedgerConfig::fsync`] says so. A failed write is cut back and retried; meanwhile new
//! records queue up and then are dropped and counted, so memory stays bounded.
//!
//! # Crash and restart
//!
//! [`Ledger::open`] resumes from the last complete record of the newest file and keeps
//! appending to it. If a crash left an incomplete last line, it leaves those bytes where they
//! are, starts a new file, and makes the first record a `resume` record naming the torn bytes
//! (file, offset, length, SHA-256), so that [`verify`] accepts exactly those bytes and nothing
//! else. Records queued but not written at the moment of a crash are lost; `fsync` bounds how
//! many were written but not yet on disk.
//!
//! # Retention
//!
//! At start and at each rotation, files whose records are all older than
//! [`LedgerConfig::retention`] (those whose successor started before the cut-off) are deleted,
//! oldest first, never the current file, and a `retention` record lists them and the file kept
//! where the chain now begins. [`verify`] then reports a chain that starts mid-way, in that
//! file, as information ([`VerifyReport::starts_at_seq`],
//! [`VerifyReport::start_explained_by_retention`]), not as a problem.
//!
//! # What verification can and cannot see
//!
//! [`verify`] reports, by file and line: edited records (hash mismatch), removed records (seq
//! gap), broken links (a record replaced with a recomputed hash), reordered and duplicated
//! records, malformed lines, a file missing between two others or after the last (the
//! `rotate` record names it), a file whose end was cut, unacknowledged torn lines, renamed
//! files.
//!
//! It cannot see that the newest records were cut off the end of the newest file, nor that
//! whole files were deleted from the start of the chain and a plausible `retention` record was
//! written by someone able to recompute hashes: nothing in the files is secret. What does
//! catch both is an **anchor** kept elsewhere: export [`LedgerSender::last`] (seq and hash)
//! from time to time to the change ledger or to metrics, and check with [`verify_against`],
//! or compare [`VerifyReport::last_hash`].

mod chain;
mod config;
mod error;
mod files;
mod ledger;
mod verify;
mod writer;

pub use chain::{GENESIS_PREV, decimal, hex};
pub use config::{
    DEFAULT_BATCH, DEFAULT_FLUSH_EVERY, DEFAULT_QUEUE, DEFAULT_ROTATE_BYTES, LedgerConfig,
    MAX_QUEUE,
};
pub use error::LedgerError;
pub use ledger::{Anchor, Clock, Ledger, LedgerSender, LedgerStats, SystemClock};
pub use verify::{Problem, ProblemKind, VerifyReport, verify, verify_against};
