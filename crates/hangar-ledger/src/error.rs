//! The one error type of the crate.

use std::io;
use std::path::PathBuf;

/// What went wrong while opening, writing, closing or verifying a ledger.
///
/// Tampering found by [`verify`](crate::verify) is not an error: it is reported as
/// [`Problem`](crate::Problem)s. Errors are about not being able to do the work at all.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The configuration cannot work (empty prefix, zero queue…).
    #[error("invalid ledger configuration: {0}")]
    InvalidConfig(String),

    /// A file-system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What the ledger was doing, as a verb phrase ("create directory", "append to").
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Another ledger (in this process or another) already writes this prefix in this directory.
    #[error("{} is locked: another ledger already writes this prefix there", path.display())]
    Locked { path: PathBuf },

    /// Records could not be written before the ledger closed.
    #[error("{lost} record(s) not written to {}: {source}", path.display())]
    Unwritten {
        lost: u64,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The writer thread could not be started or ended abnormally.
    #[error("ledger writer thread: {0}")]
    Writer(String),
}

impl LedgerError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        LedgerError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
