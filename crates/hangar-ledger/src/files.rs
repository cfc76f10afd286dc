//! File names, listing a ledger's files, and splitting a file into lines.

use std::path::Path;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use crate::LedgerError;

const TIME_FORMAT: &str = "%Y%m%dT%H%M%S";
const TIME_LEN: usize = "yyyymmddThhmmss".len();
const SEQ_LEN: usize = 20; // u64::MAX has 20 digits, so names sort by seq at equal times.
const EXTENSION: &str = ".jsonl";

/// A ledger file's name and what it says: when the file was started and its first seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileName {
    pub name: String,
    pub started: Timestamp,
    pub first_seq: u64,
}

impl FileName {
    /// `<prefix>-<UTC yyyymmddThhmmss>-<first seq, 20 digits>.jsonl`, to the second.
    pub(crate) fn new(prefix: &str, started: Timestamp, first_seq: u64) -> FileName {
        let started = Timestamp::from_second(started.as_second()).unwrap_or(started);
        let name = format!(
            "{prefix}-{}-{first_seq:0width$}{EXTENSION}",
            started.strftime(TIME_FORMAT),
            width = SEQ_LEN
        );
        FileName {
            name,
            started,
            first_seq,
        }
    }

    /// The name's parts, when `name` is exactly a file of this prefix. Strict, so that a
    /// ledger never takes another prefix's files for its own (`audit` vs `audit-content`).
    pub(crate) fn parse(prefix: &str, name: &str) -> Option<FileName> {
        let rest = name
            .strip_prefix(prefix)?
            .strip_prefix('-')?
            .strip_suffix(EXTENSION)?;
        let (time, seq) = rest.split_at_checked(TIME_LEN)?;
        let seq = seq.strip_prefix('-')?;
        if seq.len() != SEQ_LEN || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let started = DateTime::strptime(TIME_FORMAT, time)
            .ok()?
            .to_zoned(TimeZone::UTC)
            .ok()?
            .timestamp();
        Some(FileName {
            name: name.to_owned(),
            started,
            first_seq: seq.parse().ok()?,
        })
    }
}

/// The files of `prefix` in `dir`, in chain order (by first seq, then name).
pub(crate) fn list_files(dir: &Path, prefix: &str) -> Result<Vec<FileName>, LedgerError> {
    let read_error = |source| LedgerError::io("read directory", dir, source);
    let mut files = Vec::new();
    for dir_entry in std::fs::read_dir(dir).map_err(read_error)? {
        let dir_entry = dir_entry.map_err(read_error)?;
        let Some(name) = dir_entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if let Some(file) = FileName::parse(prefix, &name) {
            files.push(file);
        }
    }
    files.sort_by(|a, b| (a.first_seq, &a.name).cmp(&(b.first_seq, &b.name)));
    Ok(files)
}

/// A file's content cut into complete lines (1-based numbers, without the newline) and the
/// bytes after the last newline, if any: what a crash mid-write leaves.
pub(crate) struct Lines<'a> {
    pub complete: Vec<(u64, &'a [u8])>,
    pub unterminated: Option<Unterminated<'a>>,
}

/// Bytes at the end of a file that no newline closes.
pub(crate) struct Unterminated<'a> {
    pub line: u64,
    pub offset: u64,
    pub bytes: &'a [u8],
}

pub(crate) fn split_lines(content: &[u8]) -> Lines<'_> {
    let mut complete = Vec::new();
    let mut start = 0;
    let mut number = 0;
    while let Some(end) = content[start..].iter().position(|&b| b == b'\n') {
        number += 1;
        complete.push((number, &content[start..start + end]));
        start += end + 1;
    }
    let unterminated = (start < content.len()).then(|| Unterminated {
        line: number + 1,
        offset: start as u64,
        bytes: &content[start..],
    });
    Lines {
        complete,
        unterminated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn names_round_trip_and_sort_in_chain_order() {
        let first = FileName::new("audit", at("2025-03-04T05:06:07.89Z"), 0);
        assert_eq!(
            first.name,
            "audit-20250304T050607-00000000000000000000.jsonl"
        );
        let parsed = FileName::parse("audit", &first.name).unwrap();
        assert_eq!(parsed, first);
        assert_eq!(parsed.started, at("2025-03-04T05:06:07Z"));

        let later_same_second = FileName::new("audit", at("2025-03-04T05:06:07Z"), 99);
        let much_later = FileName::new("audit", at("2025-03-04T05:06:07Z"), 1_000);
        assert!(first.name < later_same_second.name);
        assert!(later_same_second.name < much_later.name);
    }

    #[test]
    fn another_prefix_files_are_not_ours() {
        let content = FileName::new("audit-content", at("2025-03-04T05:06:07Z"), 5);
        assert!(FileName::parse("audit", &content.name).is_none());
        assert!(FileName::parse("audit-content", &content.name).is_some());
        assert!(FileName::parse("audit", "audit-20250304T050607-5.jsonl").is_none());
        assert!(
            FileName::parse("audit", "audit-20251304T050607-00000000000000000005.jsonl").is_none()
        );
        assert!(FileName::parse("audit", "audit.lock").is_none());
    }

    #[test]
    fn lines_and_a_torn_tail() {
        let lines = split_lines(b"a\nbb\nccc");
        assert_eq!(lines.complete, vec![(1, &b"a"[..]), (2, &b"bb"[..])]);
        let torn = lines.unterminated.unwrap();
        assert_eq!((torn.line, torn.offset, torn.bytes), (3, 5, &b"ccc"[..]));

        let clean = split_lines(b"a\n");
        assert_eq!(clean.complete.len(), 1);
        assert!(clean.unterminated.is_none());
        assert!(split_lines(b"").complete.is_empty());
    }
}
