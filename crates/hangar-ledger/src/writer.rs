//! The writer thread: chains records, writes them in batches, rotates files and applies
//! retention. Everything here runs off the callers' threads.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::chain::{
    GENESIS_PREV, LedgerRecord, Torn, line_time, parse_line, push_line, record_hash, sha256_hex,
};
use crate::files::{FileName, list_files, split_lines};
use crate::ledger::{Anchor, BoxedRecord, Clock, LedgerStats, Shared};
use crate::{LedgerConfig, LedgerError};

/// Longest pause between two attempts at a write that failed.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(1);
/// Bytes of records buffered before a write, at most (plus one record).
const MAX_BATCH_BYTES: usize = 64 << 10;
/// How often an idle writer looks at the queue.
const POLL_EVERY: Duration = Duration::from_millis(10);

pub(crate) struct Writer {
    config: LedgerConfig,
    clock: Box<dyn Clock>,
    shared: Arc<Shared>,
    /// Held, never read: the lock on the prefix lasts as long as the writer.
    _lock: File,
    file: ActiveFile,
    next_seq: u64,
    last_hash: String,
    /// When the newest record was chained, and its RFC 3339 text.
    now: Timestamp,
    time: String,
    /// Complete lines chained but not yet written, all for `file`.
    buf: Vec<u8>,
    /// Callers' records in `buf`.
    buffered: u64,
    /// The seq of the first line in `buf`.
    buf_first_seq: u64,
    /// When `buf` stopped being empty: it is written `flush_every` later at the latest.
    pending_since: Option<Instant>,
    /// The rotation record is chained: once `buf` is written, continue in this file.
    switch_to: Option<FileName>,
    /// A caller's record (as JSON) that arrived when the rotation could not be written; it
    /// goes first into the next file.
    held: Option<Vec<u8>>,
    /// A write failed; `buf` is kept and retried, and no new records are taken meanwhile.
    failing: Option<io::Error>,
    /// When the directory was last looked for while idle, and whether it was gone.
    dir_checked: Instant,
    dir_gone: bool,
    /// A failed write may have left part of `buf` past `file.len`.
    dirty: bool,
    refusals_recorded: u64,
    unserializable: u64,
    unserializable_reason: String,
    scratch: Vec<u8>,
}

struct ActiveFile {
    name: FileName,
    path: PathBuf,
    file: File,
    len: u64,
    /// Callers' records in the file (a resumed file counts as having some).
    records: u64,
}

impl Writer {
    /// Resumes the chain, applies retention and writes what that produced, before the thread
    /// starts, so that a directory the ledger cannot use fails `open`.
    pub(crate) fn start(
        config: LedgerConfig,
        clock: Box<dyn Clock>,
        shared: Arc<Shared>,
        lock: File,
    ) -> Result<Writer, LedgerError> {
        let files = list_files(&config.dir, &config.prefix)?;
        let resume = find_resume_point(&config.dir, &config.prefix, &files)?;
        let now = clock.now();
        let file = match resume.target {
            Target::Append { file, has_records } => {
                let mut active = open_file(&config.dir, file)?;
                active.records = u64::from(has_records);
                active
            }
            Target::New(name) => {
                let newest = files.last();
                let name = name
                    .unwrap_or_else(|| fresh_name(&config.prefix, now, resume.next_seq, newest));
                open_file(&config.dir, name)?
            }
        };
        if let Some(last) = &resume.last {
            shared.set_last(last.clone());
        }
        let mut writer = Writer {
            clock,
            shared,
            _lock: lock,
            file,
            next_seq: resume.next_seq,
            last_hash: resume
                .last
                .map_or_else(|| GENESIS_PREV.to_owned(), |last| last.hash),
            now,
            time: String::new(),
            buf: Vec::new(),
            buffered: 0,
            buf_first_seq: 0,
            pending_since: None,
            switch_to: None,
            held: None,
            failing: None,
            dir_checked: Instant::now(),
            dir_gone: false,
            dirty: false,
            refusals_recorded: 0,
            unserializable: 0,
            unserializable_reason: String::new(),
            scratch: Vec::new(),
            config,
        };
        writer.stamp();
        if let Some(torn) = resume.torn {
            // A crash in the middle of a write leaves this; so does an edit. Worth a look
            // either way, after a clean stop above all.
            tracing::warn!(
                file = %torn.file,
                offset = torn.offset,
                bytes = torn.bytes,
                "the ledger's newest file ends in part of a record; the chain goes on past it, and a `resume` record says so"
            );
            writer.chain_own(&LedgerRecord::Resume { torn });
        }
        writer.apply_retention();
        writer.sync_dir();
        match writer.flush() {
            Ok(()) => Ok(writer),
            Err(source) => Err(LedgerError::io(
                "append to",
                writer.file.path.clone(),
                source,
            )),
        }
    }

    /// The thread's body: take records, write them at least every `flush_every`, until the
    /// ledger closes.
    pub(crate) fn run(
        mut self,
        receiver: Receiver<BoxedRecord>,
    ) -> Result<LedgerStats, LedgerError> {
        loop {
            if self.failing.is_some() {
                if self.shared.closing.load(Ordering::Acquire) {
                    return self.finish(&receiver);
                }
                std::thread::sleep(self.config.flush_every.min(MAX_RETRY_DELAY));
                self.try_flush();
                continue;
            }
            let Some(took) = self.take_ready(&receiver) else {
                return self.finish(&receiver);
            };
            if self.batch_is_due() {
                self.try_flush();
            }
            if took == 0 {
                self.watch_directory();
                // Callers do not wake this thread (see `Shared::queued`): look again soon.
                let wait = self
                    .pending_since
                    .and_then(|since| since.checked_add(self.config.flush_every))
                    .map_or(self.config.flush_every, |deadline| {
                        deadline.saturating_duration_since(Instant::now())
                    });
                std::thread::park_timeout(wait.min(POLL_EVERY));
            }
        }
    }

    /// Takes whatever is already queued, up to a batch; how many, or `None` once the ledger is
    /// closed and the queue empty.
    fn take_ready(&mut self, receiver: &Receiver<BoxedRecord>) -> Option<usize> {
        let mut took = 0;
        while !self.batch_is_full() && self.failing.is_none() {
            match receiver.try_recv() {
                Ok(record) => {
                    self.shared.queued.fetch_sub(1, Ordering::Relaxed);
                    self.take(record);
                    took += 1;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return None,
            }
        }
        Some(took)
    }

    fn batch_size(&self) -> u64 {
        u64::try_from(self.config.batch).unwrap_or(u64::MAX)
    }

    /// A batch is written at `batch` records or 64 KiB, whichever comes first, so the buffer
    /// stays small however large the records.
    fn batch_is_full(&self) -> bool {
        self.buffered >= self.batch_size() || self.buf.len() >= MAX_BATCH_BYTES
    }

    fn batch_is_due(&self) -> bool {
        self.batch_is_full()
            || self
                .pending_since
                .is_some_and(|since| since.elapsed() >= self.config.flush_every)
    }

    /// Drains the queue after close, writes and syncs.
    fn finish(mut self, receiver: &Receiver<BoxedRecord>) -> Result<LedgerStats, LedgerError> {
        self.try_flush();
        if let Some(source) = self.failing.take() {
            let queued = u64::try_from(receiver.try_iter().count()).unwrap_or(u64::MAX);
            return Err(self.unwritten(queued, source));
        }
        while let Ok(record) = receiver.try_recv() {
            self.take(record);
            if self.batch_is_full() {
                self.try_flush();
            }
            if let Some(source) = self.failing.take() {
                let queued = u64::try_from(receiver.try_iter().count()).unwrap_or(u64::MAX);
                return Err(self.unwritten(queued, source));
            }
        }
        if let Err(source) = self.flush().and_then(|()| self.file.file.sync_all()) {
            return Err(self.unwritten(0, source));
        }
        self.sync_dir();
        Ok(LedgerStats {
            written: self.shared.written.load(Ordering::Relaxed),
            dropped: self.shared.dropped(),
            last: self.shared.last(),
        })
    }

    fn unwritten(&self, queued: u64, source: io::Error) -> LedgerError {
        LedgerError::Unwritten {
            lost: self.buffered + u64::from(self.held.is_some()) + queued,
            path: self.file.path.clone(),
            cause: source,
        }
    }

    /// Serialises one caller's record and chains it.
    fn take(&mut self, record: BoxedRecord) {
        let mut json = std::mem::take(&mut self.scratch);
        json.clear();
        match record.write_json(&mut json) {
            Ok(()) => self.chain_callers(&json),
            Err(error) => {
                self.unserializable += 1;
                self.unserializable_reason = error.to_string();
                self.shared.unserializable.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.scratch = json;
    }

    /// Chains a caller's record, in a new file first if the current one is full or old.
    fn chain_callers(&mut self, json: &[u8]) {
        if self.buf.is_empty() {
            self.stamp();
        }
        if self.rotation_is_due() {
            self.chain_rotation();
            if let Err(error) = self.flush() {
                self.held = Some(json.to_vec());
                self.fail(error);
                return;
            }
        }
        self.chain(json);
        self.buffered += 1;
        self.file.records += 1;
    }

    fn chain_own(&mut self, record: &LedgerRecord) {
        self.chain(&record.to_json());
    }

    /// Appends one line to `buf`, linked to the one before.
    fn chain(&mut self, record: &[u8]) {
        // Each record its own time: one that joins a batch late must not carry a time from
        // before its request ended.
        self.stamp();
        if self.buf.is_empty() {
            self.pending_since = Some(Instant::now());
            self.buf_first_seq = self.next_seq;
        }
        let seq = self.next_seq;
        let hash = record_hash(&self.last_hash, seq, &self.time, record);
        push_line(
            &mut self.buf,
            seq,
            &self.time,
            &self.last_hash,
            &hash,
            record,
        );
        self.last_hash = hash;
        self.next_seq = self.next_seq.saturating_add(1);
    }

    /// Reads the clock; the chain's times never go backwards.
    fn stamp(&mut self) {
        self.now = self.clock.now().max(self.now);
        self.time.clear();
        let _ = write!(self.time, "{:.6}", self.now);
    }

    /// While idle, notices the directory gone (a volume unmounted, a clean-up job) at most a
    /// `flush_every` later: otherwise nothing fails until the next record, which then waits in
    /// memory, and callers that refuse to serve what they cannot record would serve it.
    fn watch_directory(&mut self) {
        if self.failing.is_some() || self.dir_checked.elapsed() < self.config.flush_every {
            return;
        }
        self.dir_checked = Instant::now();
        let gone = !self.config.dir.is_dir();
        if gone != self.dir_gone {
            if gone {
                tracing::error!(dir = %self.config.dir.display(), "the ledger's directory is gone");
            } else {
                tracing::warn!(dir = %self.config.dir.display(), "the ledger's directory is back");
            }
            self.dir_gone = gone;
        }
        self.shared.failing.store(gone, Ordering::Relaxed);
    }

    fn try_flush(&mut self) {
        match self.flush() {
            Ok(()) => {
                self.dir_gone = false;
                if self.failing.take().is_some() {
                    tracing::warn!(path = %self.file.path.display(), "ledger writes work again");
                }
                self.shared.failing.store(false, Ordering::Relaxed);
            }
            Err(error) => self.fail(error),
        }
    }

    fn fail(&mut self, error: io::Error) {
        if self.failing.is_none() {
            tracing::error!(path = %self.file.path.display(), %error, "ledger write failed; retrying");
        }
        self.shared.failing.store(true, Ordering::Relaxed);
        self.failing = Some(error);
    }

    /// Records losses, writes `buf` with one write, and finishes a rotation.
    fn flush(&mut self) -> io::Result<()> {
        // After a rotation record nothing else may go into the file.
        if self.switch_to.is_none() {
            self.record_losses();
        }
        self.leave_a_replaced_file()?;
        self.write_buf()?;
        self.finish_rotation()
    }

    /// When the file being written was removed or replaced behind the writer (`sed -i`, an
    /// editor, a clean-up job), says so and continues in a new file: written to the old one, the
    /// records would go to a file no one can read any more, and nothing would tell.
    /// `verify` then finds what was done to the file, and the chain goes on in the new one.
    fn leave_a_replaced_file(&mut self) -> io::Result<()> {
        if self.buf.is_empty() || !is_replaced(&self.file) {
            return Ok(());
        }
        let name = fresh_name(
            &self.config.prefix,
            self.now,
            self.buf_first_seq,
            Some(&self.file.name),
        );
        // Said once, by `fail`, with why, while no new file can be made (its directory gone).
        let file = open_file(&self.config.dir, name).map_err(|error| {
            let error = into_io(error);
            io::Error::new(
                error.kind(),
                format!("the file was removed or replaced while it was being written, and no new one can be made: {error}"),
            )
        })?;
        tracing::error!(
            path = %self.file.path.display(),
            "the ledger's file was removed or replaced while it was being written; continuing in a new file"
        );
        self.file = file;
        self.file.records = self.buffered;
        self.dirty = false;
        self.sync_dir();
        Ok(())
    }

    /// Continues in the file the rotation record named, applies retention, and chains the
    /// record that was waiting for the new file.
    fn finish_rotation(&mut self) -> io::Result<()> {
        let Some(next) = self.switch_to.clone() else {
            return Ok(());
        };
        self.file = open_file(&self.config.dir, next).map_err(into_io)?;
        self.switch_to = None;
        self.apply_retention();
        self.sync_dir();
        if let Some(json) = self.held.take() {
            self.chain_callers(&json);
        }
        Ok(())
    }

    /// Puts losses on the record: `gap` records for refused and unserialisable records.
    fn record_losses(&mut self) {
        let refused = self.shared.refused.load(Ordering::Relaxed);
        if refused > self.refusals_recorded {
            let dropped = refused - self.refusals_recorded;
            self.refusals_recorded = refused;
            self.chain_own(&LedgerRecord::Gap {
                dropped,
                reason: "queue full".into(),
            });
        }
        if self.unserializable > 0 {
            let reason = format!("not serialisable: {}", self.unserializable_reason);
            let dropped = std::mem::take(&mut self.unserializable);
            self.chain_own(&LedgerRecord::Gap { dropped, reason });
        }
    }

    fn rotation_is_due(&self) -> bool {
        if self.file.records == 0 {
            return false;
        }
        let size = self.file.len + self.buf.len() as u64;
        let too_old = self.config.rotate_every.is_some_and(|every| {
            let age = self.now.duration_since(self.file.name.started);
            age.as_secs_f64() >= every.as_secs_f64()
        });
        size >= self.config.rotate_bytes || too_old
    }

    /// Chains the file's last record, naming the next file.
    fn chain_rotation(&mut self) {
        let started = self.now.max(self.file.name.started);
        // The rotation record takes `next_seq`; the next file starts right after it.
        let next = FileName::new(
            &self.config.prefix,
            started,
            self.next_seq.saturating_add(1),
        );
        self.chain_own(&LedgerRecord::Rotate {
            next: next.name.clone(),
        });
        self.switch_to = Some(next);
    }

    fn write_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.dirty {
            self.file.file.set_len(self.file.len)?;
            self.dirty = false;
        }
        if let Err(error) = self.file.file.write_all(&self.buf) {
            // Cut what part of the batch got through, so the retry does not duplicate it.
            self.dirty = self.file.file.set_len(self.file.len).is_err();
            return Err(error);
        }
        self.file.len += self.buf.len() as u64;
        self.buf.clear();
        self.pending_since = None;
        self.shared
            .written
            .fetch_add(self.buffered, Ordering::Relaxed);
        self.buffered = 0;
        self.shared.set_last(Anchor {
            seq: self.next_seq.saturating_sub(1),
            hash: self.last_hash.clone(),
        });
        if self.config.fsync
            && let Err(error) = self.file.file.sync_data()
        {
            // The bytes are written; writing them again would duplicate them.
            tracing::warn!(path = %self.file.path.display(), %error, "ledger fsync failed");
        }
        Ok(())
    }

    /// Deletes the files whose records are all older than the retention, oldest first, never
    /// the current file, and records the deletion in the chain.
    fn apply_retention(&mut self) {
        let Some(keep) = self.config.retention else {
            return;
        };
        let Ok(before) = self.now.checked_sub(keep) else {
            return;
        };
        let files = match list_files(&self.config.dir, &self.config.prefix) {
            Ok(files) => files,
            Err(error) => {
                tracing::warn!(%error, "ledger retention skipped");
                return;
            }
        };
        let mut removed = Vec::new();
        let mut kept = None;
        for pair in files.windows(2) {
            let (old, next) = (&pair[0], &pair[1]);
            if old.name == self.file.name.name {
                break;
            }
            // A file ends where the next one starts: when the next one's first record was
            // written. (Not the time in its name, which anyone can rename.)
            match first_record_time(&self.config.dir.join(&next.name)) {
                Some(ended) if ended <= before => {}
                _ => break,
            }
            let path = self.config.dir.join(&old.name);
            if let Err(error) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), %error, "ledger retention could not delete a file");
                break;
            }
            removed.push(old.name.clone());
            kept = Some(next.name.clone());
        }
        if !removed.is_empty() {
            self.chain_own(&LedgerRecord::Retention {
                removed,
                before: format!("{before:.6}"),
                kept,
            });
            // Written now, not with the next batch: files gone with no record naming them
            // (a crash in between) would read as deleted by someone else. A write that fails
            // here is retried, and reported, by the next flush.
            let _ = self.write_buf();
        }
    }

    /// Makes file creations and deletions durable, when asked to sync.
    fn sync_dir(&self) {
        if !self.config.fsync {
            return;
        }
        if let Err(error) = File::open(&self.config.dir).and_then(|dir| dir.sync_all()) {
            tracing::warn!(dir = %self.config.dir.display(), %error, "ledger directory fsync failed");
        }
    }
}

/// Whether `file`'s path no longer names the file open for writing.
fn is_replaced(file: &ActiveFile) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(open) = file.file.metadata() else {
            return false;
        };
        match std::fs::symlink_metadata(&file.path) {
            Ok(named) => (named.dev(), named.ino()) != (open.dev(), open.ino()),
            Err(error) => error.kind() == io::ErrorKind::NotFound,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        false
    }
}

fn into_io(error: LedgerError) -> io::Error {
    match error {
        LedgerError::Io { cause, .. } => cause,
        other => io::Error::other(other.to_string()),
    }
}

/// When the first record of the file at `path` was written, if it has a readable one. Only
/// the line's start is read, where the ledger writes the time: a content log's record can be
/// megabytes long.
fn first_record_time(path: &Path) -> Option<Timestamp> {
    let mut start = Vec::new();
    File::open(path)
        .ok()?
        .take(LINE_START)
        .read_to_end(&mut start)
        .ok()?;
    line_time(&start)?.parse().ok()
}

/// Enough of a line to hold its sequence number and time.
const LINE_START: u64 = 256;

/// Opens a ledger file for appending (mode 0600 on unix), creating it if needed. Anything but
/// a regular file there (a symbolic link to /dev/null…) is refused: appending to it could lose
/// every record.
fn open_file(dir: &Path, name: FileName) -> Result<ActiveFile, LedgerError> {
    let path = dir.join(&name.name);
    if let Ok(metadata) = std::fs::symlink_metadata(&path)
        && !metadata.is_file()
    {
        return Err(LedgerError::io(
            "open",
            &path,
            io::Error::other("not a regular file (a symbolic link?)"),
        ));
    }
    let mut options = File::options();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options
        .open(&path)
        .map_err(|source| LedgerError::io("open", &path, source))?;
    let len = file
        .metadata()
        .map_err(|source| LedgerError::io("read metadata of", &path, source))?
        .len();
    Ok(ActiveFile {
        name,
        path,
        file,
        len,
        records: 0,
    })
}

/// A name for a new file that sorts after `newest`, even when the clock went backwards.
fn fresh_name(prefix: &str, now: Timestamp, first_seq: u64, newest: Option<&FileName>) -> FileName {
    let Some(newest) = newest else {
        return FileName::new(prefix, now, first_seq);
    };
    let name = FileName::new(prefix, now.max(newest.started), first_seq);
    if name.name != newest.name {
        return name;
    }
    let later = newest
        .started
        .checked_add(Duration::from_secs(1))
        .unwrap_or(newest.started);
    FileName::new(prefix, later, first_seq)
}

/// Where the chain continues after `open`.
#[derive(Debug)]
struct ResumePoint {
    next_seq: u64,
    /// The last complete record, `None` for a new chain.
    last: Option<Anchor>,
    target: Target,
    /// Bytes after the newest file's last newline, to acknowledge in a `resume` record.
    torn: Option<Torn>,
}

#[derive(Debug)]
enum Target {
    /// Keep writing at the end of this file.
    Append { file: FileName, has_records: bool },
    /// Start a new file, with this name if the previous file's rotation record gave one.
    New(Option<FileName>),
}

/// The last complete record of a file: `(seq, hash, next file if it is a rotation record)`.
type LastEntry = (u64, String, Option<String>);

fn find_resume_point(
    dir: &Path,
    prefix: &str,
    files: &[FileName],
) -> Result<ResumePoint, LedgerError> {
    let Some((newest, older)) = files.split_last() else {
        return Ok(ResumePoint {
            next_seq: 0,
            last: None,
            target: Target::New(None),
            torn: None,
        });
    };
    let path = dir.join(&newest.name);
    let content = std::fs::read(&path).map_err(|source| LedgerError::io("read", &path, source))?;
    let torn = split_lines(&content).unterminated.map(|tail| Torn {
        file: newest.name.clone(),
        offset: tail.offset,
        bytes: tail.bytes.len() as u64,
        sha256: sha256_hex(tail.bytes),
    });
    let in_newest = last_entry(&content);
    let newest_has_records = in_newest.is_some();
    let last = match in_newest {
        Some(last) => Some(last),
        None => last_entry_in(dir, older)?,
    };
    let next_seq = last.as_ref().map_or(0, |(seq, _, _)| seq.saturating_add(1));
    let target = if torn.is_some() {
        Target::New(None)
    } else if newest_has_records {
        match last.as_ref().and_then(|(_, _, next)| next.as_deref()) {
            Some(next) => {
                Target::New(FileName::parse(prefix, next).filter(|name| name.first_seq == next_seq))
            }
            None => Target::Append {
                file: newest.clone(),
                has_records: true,
            },
        }
    } else if content.is_empty() && newest.first_seq == next_seq {
        // Created by a rotation just before a crash: it is the file the chain continues in.
        Target::Append {
            file: newest.clone(),
            has_records: false,
        }
    } else {
        Target::New(None)
    };
    Ok(ResumePoint {
        next_seq,
        last: last.map(|(seq, hash, _)| Anchor { seq, hash }),
        target,
        torn,
    })
}

/// The last complete record in the newest of `files` that has one.
fn last_entry_in(dir: &Path, files: &[FileName]) -> Result<Option<LastEntry>, LedgerError> {
    for file in files.iter().rev() {
        let path = dir.join(&file.name);
        let content =
            std::fs::read(&path).map_err(|source| LedgerError::io("read", &path, source))?;
        if let Some(last) = last_entry(&content) {
            return Ok(Some(last));
        }
    }
    Ok(None)
}

fn last_entry(content: &[u8]) -> Option<LastEntry> {
    let lines = split_lines(content);
    lines.complete.iter().rev().find_map(|(_, line)| {
        let entry = parse_line(line).ok()?;
        let next = match LedgerRecord::parse(entry.record) {
            Some(LedgerRecord::Rotate { next }) => Some(next),
            _ => None,
        };
        Some((entry.seq, entry.hash.into_owned(), next))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::ledger::SystemClock;
    use crate::verify;

    fn writer(dir: &Path) -> (Writer, Receiver<BoxedRecord>) {
        let (sender, receiver) = mpsc::sync_channel(16);
        let config = LedgerConfig::new(dir, "audit");
        let lock = File::create(dir.join(".audit.lock")).unwrap();
        let writer = Writer::start(
            config,
            Box::new(SystemClock),
            Arc::new(Shared::new(sender, 16, 1 << 20)),
            lock,
        )
        .unwrap();
        (writer, receiver)
    }

    #[test]
    fn a_failed_write_is_retried_without_duplicating_lines() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, _receiver) = writer(dir.path());
        let path = writer.file.path.clone();
        writer.take(Box::new(serde_json::json!({"n": 0})));
        writer.try_flush();

        // The disk "fails": the file handle no longer accepts writes.
        let writable = std::mem::replace(&mut writer.file.file, File::open(&path).unwrap());
        writer.take(Box::new(serde_json::json!({"n": 1})));
        writer.take(Box::new(serde_json::json!({"n": 2})));
        writer.try_flush();
        assert!(writer.failing.is_some());
        assert!(
            writer.shared.failing.load(Ordering::Relaxed),
            "callers see the failure"
        );
        assert_eq!(writer.shared.written.load(Ordering::Relaxed), 1);

        writer.file.file = writable;
        writer.try_flush();
        assert!(writer.failing.is_none());
        assert!(!writer.shared.failing.load(Ordering::Relaxed));
        assert_eq!(writer.shared.written.load(Ordering::Relaxed), 3);
        let report = verify(dir.path(), "audit").unwrap();
        assert!(report.is_intact(), "{:?}", report.problems);
        assert_eq!(report.records, 3);
    }

    #[test]
    fn a_directory_removed_behind_the_writer_is_a_failure_that_says_why() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("audit");
        std::fs::create_dir(&dir).unwrap();
        let (mut writer, _receiver) = writer(&dir);
        writer.take(Box::new(serde_json::json!({"n": 0})));
        writer.try_flush();

        std::fs::remove_dir_all(&dir).unwrap();
        writer.take(Box::new(serde_json::json!({"n": 1})));
        writer.try_flush();
        let error = writer.failing.as_ref().unwrap().to_string();
        assert!(error.contains("no new one can be made"), "{error}");
        assert!(writer.shared.failing.load(Ordering::Relaxed));

        // Back once the directory is: the record that waited is written to a new file.
        std::fs::create_dir(&dir).unwrap();
        writer.try_flush();
        assert!(writer.failing.is_none());
        assert!(!writer.shared.failing.load(Ordering::Relaxed));
        let all: String = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default())
            .collect();
        assert!(all.contains("\"n\":1"), "{all}");
    }

    #[test]
    fn a_rotation_that_cannot_be_written_holds_the_record_for_the_next_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, _receiver) = writer(dir.path());
        writer.config.rotate_bytes = 1;
        let path = writer.file.path.clone();
        writer.take(Box::new(serde_json::json!({"n": 0})));
        writer.try_flush();

        let writable = std::mem::replace(&mut writer.file.file, File::open(&path).unwrap());
        writer.take(Box::new(serde_json::json!({"n": 1})));
        assert!(writer.failing.is_some());
        assert!(writer.held.is_some());

        writer.file.file = writable;
        writer.try_flush();
        writer.try_flush();
        assert!(writer.failing.is_none());
        let report = verify(dir.path(), "audit").unwrap();
        assert!(report.is_intact(), "{:?}", report.problems);
        assert_eq!(
            (report.files, report.records),
            (2, 3),
            "two records and the rotation"
        );
    }

    #[test]
    fn a_file_replaced_behind_the_writer_is_left_for_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, _receiver) = writer(dir.path());
        let path = writer.file.path.clone();
        writer.take(Box::new(serde_json::json!({"n": 0})));
        writer.take(Box::new(serde_json::json!({"n": 1})));
        writer.try_flush();

        // What `sed -i` does: a new file renamed over the old one.
        let edited = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"n\":1", "\"n\":9");
        let tmp = dir.path().join("sed-tmp");
        std::fs::write(&tmp, edited).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        writer.take(Box::new(serde_json::json!({"n": 2})));
        writer.try_flush();
        assert!(writer.failing.is_none());
        assert_ne!(writer.file.path, path, "still writing the replaced file");

        let all: String = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default())
            .collect();
        assert!(all.contains("\"n\":2"), "the new record is lost:\n{all}");
        let report = verify(dir.path(), "audit").unwrap();
        assert!(!report.is_intact(), "the edit went unnoticed");
        assert_eq!(writer.shared.written.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn new_file_names_sort_after_the_newest_even_when_the_clock_went_back() {
        let newest = FileName::new("audit", "2025-06-01T00:00:00Z".parse().unwrap(), 7);
        let earlier = "2025-05-01T00:00:00Z".parse().unwrap();
        let name = fresh_name("audit", earlier, 7, Some(&newest));
        assert!(name.name > newest.name, "{} vs {}", name.name, newest.name);
        let later = fresh_name("audit", earlier, 9, Some(&newest));
        assert_eq!(later.started, newest.started);
    }
}
