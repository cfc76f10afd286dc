//! The one error type of the crate.

use std::io;
use std::path::PathBuf;

/// What went wrong while opening, writing, closing or verifying a ledger.
///
/// Tampering found by [`verify`](crate::verify) is not an error: it is reported as
/// [`Problem`](crate::Problem)s. Errors are about not being able to do the work at all.
///
/// Each message holds its cause, which is not also given as the error's source: a chain
/// printed whole (`{:#}`) would repeat it.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The configuration cannot work (empty prefix, zero queue…).
    #[error("invalid ledger configuration: {0}")]
    InvalidConfig(String),

    /// A file-system operation failed.
    #[error("cannot {action} {}: {cause}", path.display())]
    Io {
        /// What the ledger was doing, as a verb phrase ("create directory", "append to").
        action: &'static str,
        path: PathBuf,
        cause: io::Error,
    },

    /// Another ledger (in this process or another) already writes this prefix in this directory.
    #[error("{} is locked: another ledger already writes this prefix there", path.display())]
    Locked { path: PathBuf },

    /// Records could not be written before the ledger closed.
    #[error("{lost} record(s) not written to {}: {cause}", path.display())]
    Unwritten {
        lost: u64,
        path: PathBuf,
        cause: io::Error,
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
            cause: source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `{:#}` prints: the error, then each source after a colon.
    fn chain(error: &(dyn std::error::Error + 'static)) -> String {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        text
    }

    #[test]
    fn a_cause_is_told_once() {
        let denied = || io::Error::new(io::ErrorKind::PermissionDenied, "no entry");
        let failed = LedgerError::io("lock", "/var/log/hangar/audit.lock", denied());
        assert_eq!(
            chain(&failed),
            "cannot lock /var/log/hangar/audit.lock: no entry"
        );
        let unwritten = LedgerError::Unwritten {
            lost: 3,
            path: "/var/log/hangar/audit-0.jsonl".into(),
            cause: denied(),
        };
        assert_eq!(chain(&unwritten).matches("no entry").count(), 1);
    }
}
