//! Where a ledger writes and how it batches, rotates and forgets.

use std::path::PathBuf;
use std::time::Duration;

use crate::LedgerError;

/// Default size past which a new file is started: 64 MiB.
pub const DEFAULT_ROTATE_BYTES: u64 = 64 * 1024 * 1024;
/// Default length of the queue between callers and the writer thread.
pub const DEFAULT_QUEUE: usize = 65_536;
/// Default bytes the sized records in the queue may hold: 64 MiB.
const DEFAULT_QUEUE_BYTES: usize = 64 << 20;
/// Longest queue accepted: the queue's slots are allocated up front.
pub const MAX_QUEUE: usize = 1 << 24;
/// Default number of records written with one `write` call.
pub const DEFAULT_BATCH: usize = 1024;
/// Default longest time a record waits in memory before it is written.
pub const DEFAULT_FLUSH_EVERY: Duration = Duration::from_millis(200);

/// How one ledger (one chain of files sharing a prefix in a directory) behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerConfig {
    /// Directory of the files; created with mode 0700 on unix when missing. Several ledgers
    /// may share it as long as their prefixes differ.
    pub dir: PathBuf,
    /// File name prefix, e.g. `audit`: ASCII letters, digits, `-`, `_` and `.`, not starting
    /// with `.`. Files are `<prefix>-<UTC yyyymmddThhmmss>-<seq of first record>.jsonl`.
    pub prefix: String,
    /// Start a new file once the current one reaches this many bytes (checked before each
    /// record, so a file exceeds it by at most one line plus the rotation record).
    pub rotate_bytes: u64,
    /// Also start a new file once the current one is this old (e.g. one day). Checked when a
    /// record arrives, so an idle ledger does not rotate.
    pub rotate_every: Option<Duration>,
    /// Delete whole files whose records are all older than this. Checked at start and at each
    /// rotation; the newest file is never deleted, and each deletion is recorded in the chain.
    pub retention: Option<Duration>,
    /// Records that may wait for the writer; beyond that `append` drops and counts them.
    pub queue: usize,
    /// Bytes that records appended with [`LedgerSender::append_sized`] may hold while they
    /// wait; beyond that they are dropped and counted as a full queue's are. A queue of large
    /// records (prompts and answers) is bounded by this rather than by its length.
    ///
    /// [`LedgerSender::append_sized`]: crate::LedgerSender::append_sized
    pub queue_bytes: usize,
    /// Most records written with a single `write` call (a batch also ends at 64 KiB).
    pub batch: usize,
    /// Longest time a record waits in memory before it is written to the file.
    pub flush_every: Duration,
    /// `fsync` after every batch (and the directory after creating or deleting files). Close
    /// always syncs, whatever this says.
    pub fsync: bool,
}

impl LedgerConfig {
    /// A configuration with the defaults: 64 MiB files, no time rotation, no retention,
    /// a 65 536-record queue holding at most 64 MiB of sized records, batches of 1024, written
    /// every 200 ms, no fsync per batch.
    pub fn new(dir: impl Into<PathBuf>, prefix: impl Into<String>) -> Self {
        LedgerConfig {
            dir: dir.into(),
            prefix: prefix.into(),
            rotate_bytes: DEFAULT_ROTATE_BYTES,
            rotate_every: None,
            retention: None,
            queue: DEFAULT_QUEUE,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            batch: DEFAULT_BATCH,
            flush_every: DEFAULT_FLUSH_EVERY,
            fsync: false,
        }
    }

    /// Checks what cannot work, naming the field.
    pub fn validate(&self) -> Result<(), LedgerError> {
        let invalid = |message: String| Err(LedgerError::InvalidConfig(message));
        if !is_valid_prefix(&self.prefix) {
            return invalid(format!(
                "prefix {:?}: use ASCII letters, digits, '-', '_' or '.', not starting with '.'",
                self.prefix
            ));
        }
        if self.dir.as_os_str().is_empty() {
            return invalid("dir: must not be empty".into());
        }
        if self.rotate_bytes == 0 {
            return invalid("rotate_bytes: must be at least 1".into());
        }
        if self.rotate_every.is_some_and(|every| every.is_zero()) {
            return invalid("rotate_every: must be longer than zero".into());
        }
        if self.retention.is_some_and(|keep| keep.is_zero()) {
            return invalid("retention: must be longer than zero".into());
        }
        if self.queue == 0 || self.queue > MAX_QUEUE {
            return invalid(format!("queue: must be between 1 and {MAX_QUEUE}"));
        }
        if self.batch == 0 {
            return invalid("batch: must be at least 1".into());
        }
        if self.flush_every.is_zero() {
            return invalid("flush_every: must be longer than zero".into());
        }
        Ok(())
    }
}

/// A prefix that cannot leave the directory nor be confused with a hidden or lock file.
pub(crate) fn is_valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && !prefix.starts_with('.')
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(LedgerConfig::new("/tmp/x", "audit").validate().is_ok());
    }

    #[test]
    fn bad_values_name_the_field() {
        let mut config = LedgerConfig::new("/tmp/x", "../audit");
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("prefix"), "{message}");

        config.prefix = "audit".into();
        config.queue = 0;
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("queue"), "{message}");

        config.queue = 1;
        config.flush_every = Duration::ZERO;
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("flush_every"), "{message}");
    }

    #[test]
    fn prefixes() {
        assert!(is_valid_prefix("audit"));
        assert!(is_valid_prefix("audit-content_v1.2"));
        assert!(!is_valid_prefix(""));
        assert!(!is_valid_prefix(".audit"));
        assert!(!is_valid_prefix("a/b"));
        assert!(!is_valid_prefix("audit log"));
    }
}
