//! The handle a program keeps ([`Ledger`]) and the one its request paths share
//! ([`LedgerSender`]).

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::thread::JoinHandle;

use jiff::Timestamp;
use serde::Serialize;

use crate::writer::Writer;
use crate::{LedgerConfig, LedgerError};

/// Where the writer gets the time from: the system clock, or a test's own.
pub trait Clock: Send + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A point of the chain to remember outside the files (in the change ledger, in metrics), so
/// that cutting the newest records can be noticed: see [`verify_against`](crate::verify_against).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Anchor {
    pub seq: u64,
    /// The record's `hash`, lowercase hex.
    pub hash: String,
}

/// Counts at the end of a ledger's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerStats {
    /// Callers' records written to the files by this ledger.
    pub written: u64,
    /// Callers' records lost: queue full, not serialisable, or appended after close.
    pub dropped: u64,
    /// The last record written, if the chain has any.
    pub last: Option<Anchor>,
}

/// A record on its way to the writer: serialised there, not on the caller's thread.
pub(crate) trait Record: Send {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()>;
}

impl<T: Serialize + Send> Record for T {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, self)
    }
}

pub(crate) type BoxedRecord = Box<dyn Record>;

/// What the callers, the writer thread and the [`Ledger`] share.
pub(crate) struct Shared {
    /// The only sender of the channel; taken out at close so the writer sees the end.
    sender: RwLock<Option<SyncSender<BoxedRecord>>>,
    /// Set at close so a writer stuck retrying a failed write gives up.
    pub closing: AtomicBool,
    /// Set while the writer's writes fail (it keeps retrying): what it holds is not on disk.
    pub failing: AtomicBool,
    /// Records refused by `append` because the queue was full: the writer records these.
    pub refused: AtomicU64,
    /// Records refused by `append` because the ledger was closing or closed.
    pub refused_closed: AtomicU64,
    /// Records the writer could not serialise.
    pub unserializable: AtomicU64,
    pub written: AtomicU64,
    pub last: Mutex<Option<Anchor>>,
    /// Records in the queue. The writer polls rather than being woken per record (a wake-up
    /// per request cost the gateway a context switch each); only a queue half full wakes it.
    pub queued: AtomicUsize,
    /// Bytes the sized records in the queue hold, and how many they may.
    queued_bytes: Arc<AtomicUsize>,
    queue_bytes: usize,
    /// Records the queue holds at most.
    queue: usize,
    wake_at: usize,
    pub writer: OnceLock<std::thread::Thread>,
}

impl Shared {
    pub(crate) fn new(sender: SyncSender<BoxedRecord>, queue: usize, queue_bytes: usize) -> Shared {
        Shared {
            sender: RwLock::new(Some(sender)),
            closing: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            refused_closed: AtomicU64::new(0),
            unserializable: AtomicU64::new(0),
            written: AtomicU64::new(0),
            last: Mutex::new(None),
            queued: AtomicUsize::new(0),
            queued_bytes: Arc::new(AtomicUsize::new(0)),
            queue_bytes,
            queue,
            wake_at: (queue / 2).max(1),
            writer: OnceLock::new(),
        }
    }

    pub(crate) fn wake_writer(&self) {
        if let Some(writer) = self.writer.get() {
            writer.unpark();
        }
    }

    pub(crate) fn last(&self) -> Option<Anchor> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_last(&self, anchor: Anchor) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(anchor);
    }

    pub(crate) fn dropped(&self) -> u64 {
        [&self.refused, &self.refused_closed, &self.unserializable]
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .sum()
    }
}

/// A record and the bytes it holds, counted in the queue until it is dropped.
struct Weighed<R> {
    record: R,
    bytes: usize,
    held: Arc<AtomicUsize>,
}

impl<R: Serialize> Serialize for Weighed<R> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.record.serialize(serializer)
    }
}

impl<R> Drop for Weighed<R> {
    fn drop(&mut self) {
        self.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// The cheap, cloneable handle request paths append through. Never blocks.
#[derive(Clone)]
pub struct LedgerSender {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LedgerSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerSender")
            .field("written", &self.written())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl LedgerSender {
    /// Queues one record; it is serialised (as one JSON value, normally an object) and chained
    /// by the writer thread. Never blocks: when the queue is full, or the ledger is closing or
    /// closed, the record is dropped, counted in [`dropped`](Self::dropped), and `false`
    /// returned. A full queue's losses are also put in the chain by the writer, as a
    /// `{"kind":"gap","dropped":N,…}` record. Costs one allocation and a channel send on the
    /// caller's thread.
    pub fn append<R: Serialize + Send + 'static>(&self, record: R) -> bool {
        let shared = &self.shared;
        let refusals = match shared.sender.try_read() {
            Ok(sender) => match sender.as_ref() {
                Some(sender) => {
                    // Counted before the send, so the writer's decrement never comes first.
                    let queued = shared.queued.fetch_add(1, Ordering::Relaxed) + 1;
                    match sender.try_send(Box::new(record)) {
                        Ok(()) => {
                            if queued == shared.wake_at {
                                shared.wake_writer();
                            }
                            return true;
                        }
                        Err(refused) => {
                            shared.queued.fetch_sub(1, Ordering::Relaxed);
                            match refused {
                                TrySendError::Full(_) => &shared.refused,
                                TrySendError::Disconnected(_) => &shared.refused_closed,
                            }
                        }
                    }
                }
                None => &shared.refused_closed,
            },
            // Only while `close` swaps the sender out: the ledger is closing anyway.
            Err(_) => &shared.refused_closed,
        };
        refusals.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// [`append`](Self::append) for a record that holds about `bytes` (its large strings):
    /// dropped and counted, as when the queue is full, while the records queued this way
    /// already hold [`LedgerConfig::queue_bytes`](crate::LedgerConfig::queue_bytes). A record
    /// larger than that alone is still taken when nothing else waits.
    pub fn append_sized<R: Serialize + Send + 'static>(&self, record: R, bytes: usize) -> bool {
        let shared = &self.shared;
        let held = shared.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        // The share is taken back when the writer is done with the record, or it is refused.
        let weighed = Weighed {
            record,
            bytes,
            held: Arc::clone(&shared.queued_bytes),
        };
        if held > 0 && held.saturating_add(bytes) > shared.queue_bytes {
            drop(weighed);
            shared.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.append(weighed)
    }

    /// Records lost so far: refused by [`append`](Self::append) or not serialisable.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped()
    }

    /// Callers' records written to the files so far (handed to the OS; synced if configured).
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }

    /// The last record written to the files, to export as an external [`Anchor`].
    pub fn last(&self) -> Option<Anchor> {
        self.shared.last()
    }

    /// Whether the writer's writes are failing now (a full disk, a directory removed or made
    /// read-only): it retries, and records wait in memory until the queue fills, then are
    /// dropped. What waits when the process ends is lost.
    pub fn failing(&self) -> bool {
        self.shared.failing.load(Ordering::Relaxed)
    }

    /// Records waiting in the queue for the writer.
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// The most records the queue holds.
    pub fn capacity(&self) -> usize {
        self.shared.queue
    }

    /// How full the queue is, by its records or by the sized records' bytes, whichever is
    /// fuller: at 1.0, what comes next is dropped.
    pub fn fill(&self) -> f64 {
        let shared = &self.shared;
        let share = |held: usize, most: usize| held as f64 / most.max(1) as f64;
        let records = share(self.queued(), shared.queue);
        records.max(share(
            shared.queued_bytes.load(Ordering::Relaxed),
            shared.queue_bytes,
        ))
    }
}

/// An open ledger: one chain of files, one writer thread. Close it with [`Ledger::close`];
/// dropping it closes it too, ignoring errors.
pub struct Ledger {
    sender: LedgerSender,
    writer: Option<JoinHandle<Result<LedgerStats, LedgerError>>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("sender", &self.sender)
            .finish()
    }
}

impl Ledger {
    /// Opens (or creates) the ledger `config.prefix` in `config.dir`, resumes its chain, applies
    /// retention and starts the writer thread. See the crate documentation for what happens
    /// after a crash.
    pub fn open(config: LedgerConfig) -> Result<Ledger, LedgerError> {
        Ledger::open_with_clock(config, SystemClock)
    }

    /// [`Ledger::open`] with another clock for the records' times, rotation and retention.
    pub fn open_with_clock(config: LedgerConfig, clock: impl Clock) -> Result<Ledger, LedgerError> {
        config.validate()?;
        create_private_dir(&config.dir)?;
        let lock = lock_prefix(&config.dir, &config.prefix)?;

        let (sender, receiver) = mpsc::sync_channel(config.queue);
        let shared = Arc::new(Shared::new(sender, config.queue, config.queue_bytes));
        let thread_name = format!("ledger-{}", config.prefix);
        let writer = Writer::start(config, Box::new(clock), Arc::clone(&shared), lock)?;
        let handle = std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || writer.run(receiver))
            .map_err(|error| LedgerError::Writer(format!("cannot start: {error}")))?;
        let _ = shared.writer.set(handle.thread().clone());
        Ok(Ledger {
            sender: LedgerSender { shared },
            writer: Some(handle),
        })
    }

    /// A handle for appending, to clone into every task that writes records.
    pub fn sender(&self) -> LedgerSender {
        self.sender.clone()
    }

    /// Stops accepting records, writes everything queued, syncs the file and waits for the
    /// writer thread. Appends racing with close may be refused (and counted as dropped);
    /// every append that returned `true` before is in the files when this returns `Ok`.
    pub fn close(mut self) -> Result<LedgerStats, LedgerError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<LedgerStats, LedgerError> {
        let shared = &self.sender.shared;
        let Some(handle) = self.writer.take() else {
            return Ok(LedgerStats {
                written: shared.written.load(Ordering::Relaxed),
                dropped: shared.dropped(),
                last: shared.last(),
            });
        };
        shared.closing.store(true, Ordering::Release);
        // Dropping the only sender lets the writer drain the queue and then see the end.
        *shared
            .sender
            .write()
            .unwrap_or_else(PoisonError::into_inner) = None;
        shared.wake_writer();
        handle
            .join()
            .map_err(|_| LedgerError::Writer("the writer thread panicked".into()))?
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            tracing::warn!(%error, "ledger closed with an error");
        }
    }
}

fn create_private_dir(dir: &Path) -> Result<(), LedgerError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|source| LedgerError::io("create directory", dir, source))
}

/// Holds `<dir>/.<prefix>.lock` for the ledger's life, so two writers never share a chain.
fn lock_prefix(dir: &Path, prefix: &str) -> Result<File, LedgerError> {
    let path = dir.join(format!(".{prefix}.lock"));
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| LedgerError::io("create lock file", &path, source))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(LedgerError::Locked { path }),
        Err(std::fs::TryLockError::Error(source)) => Err(LedgerError::io("lock", path, source)),
    }
}
