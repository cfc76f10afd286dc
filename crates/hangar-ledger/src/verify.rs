//! Checking a ledger's files: every hash, every link, every file boundary.
//!
//! The files are read one at a time and the chain is followed with a window of recent records,
//! so memory holds one file (bounded by the rotation size) whatever the ledger's length.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::chain::{Entry, GENESIS_PREV, LedgerRecord, Torn, parse_line, sha256_hex};
use crate::config::is_valid_prefix;
use crate::files::{FileName, Unterminated, list_files, split_lines};
use crate::{Anchor, LedgerError};

/// How many recent records are remembered to tell reordered records from removed ones.
const WINDOW: u64 = 4096;

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Ledger files found for the prefix.
    pub files: usize,
    /// Lines that parsed as records.
    pub records: u64,
    /// The seq of the first record present.
    pub first_seq: Option<u64>,
    /// The highest seq present.
    pub last_seq: Option<u64>,
    /// The hash of the record with the highest seq: compare it with an external anchor.
    pub last_hash: Option<String>,
    /// Set when the chain does not begin at its genesis (seq 0): the oldest files are gone.
    pub starts_at_seq: Option<u64>,
    /// Whether a `retention` record in the chain says the missing oldest files were deleted
    /// by policy.
    pub start_explained_by_retention: bool,
    /// Records lost before reaching the files, as stated by the chain's `gap` records.
    pub dropped: u64,
    /// Facts worth knowing that are not tampering and have no field above: crash tears
    /// acknowledged by a `resume` record, an incomplete line at the end of the newest file.
    pub notes: Vec<String>,
    /// Everything that shows the files were changed, in file and line order.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// No problem found.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Something wrong at a place in the files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// File name (inside the ledger directory).
    pub file: String,
    /// 1-based line; 0 when the problem is about the file as a whole.
    pub line: u64,
    #[serde(flatten)]
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.kind)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.kind)
        }
    }
}

/// What is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum ProblemKind {
    /// The line is not a ledger line (not JSON, a field missing or extra, a bad digest).
    Malformed { reason: String },
    /// The record's hash does not match its content: the line was edited.
    EditedRecord { seq: u64 },
    /// The record does not point at the hash of the record before it: that one or this one
    /// was replaced (for instance edited with its hash recomputed).
    BrokenLink { seq: u64 },
    /// Records are missing from the chain.
    RemovedRecords { first_seq: u64, last_seq: u64 },
    /// The record is not where its seq says.
    Reordered { seq: u64, after_seq: u64 },
    /// The record appears twice.
    Duplicate { seq: u64 },
    /// Another record with this seq and different content: a record was inserted, or two
    /// ledgers' files were mixed.
    Conflicting { seq: u64 },
    /// The chain does not start at its genesis and no retention record explains why: the
    /// oldest records were deleted (or archived elsewhere: verify them together).
    UnexplainedStart { first_seq: u64 },
    /// The previous file's rotation record names another file than the one the chain continues
    /// in: this file was renamed.
    RenamedFile { expected: String },
    /// A symbolic link or another kind of file where a ledger file should be.
    NotARegularFile,
    /// The previous file's rotation record names the file the chain continues in, and that
    /// file is not there.
    MissingFile {
        name: String,
        first_seq: u64,
        last_seq: Option<u64>,
    },
    /// Records are missing after the last line of this file, which does not end with a
    /// rotation record: its end was cut (or whole files after it were deleted).
    TruncatedFile { first_seq: u64, last_seq: u64 },
    /// The file ends with an incomplete line that no `resume` record acknowledges (or one
    /// acknowledges different bytes).
    TornLine { bytes: u64 },
    /// A `resume` record acknowledges torn bytes that are not at the end of that file.
    TornMismatch { file: String },
    /// The file name says its first record has another seq: the file was renamed.
    NameMismatch { name_seq: u64, first_seq: u64 },
    /// A record claims to be the genesis (seq 0 or an all-zero `prev`) but is not both.
    BadGenesis { seq: u64 },
    /// An empty file between others.
    EmptyFile,
    /// The external anchor names a record beyond the end of the chain: its end was cut.
    BehindAnchor {
        anchor_seq: u64,
        last_seq: Option<u64>,
    },
    /// The record at the anchor's seq does not have the anchor's hash.
    AnchorMismatch { seq: u64 },
    /// This retention record kept the file named, and it is gone though no later retention
    /// record removed it: it was deleted by something else.
    DeletedKeptFile { name: String },
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProblemKind::Malformed { reason } => write!(f, "malformed line: {reason}"),
            ProblemKind::EditedRecord { seq } => {
                write!(
                    f,
                    "record {seq} was edited: its hash does not match its content"
                )
            }
            ProblemKind::BrokenLink { seq } => write!(
                f,
                "record {seq} does not chain to the record before it (one of them was replaced)"
            ),
            ProblemKind::RemovedRecords {
                first_seq,
                last_seq,
            } => {
                let (verb, them) = if first_seq == last_seq {
                    ("is", "it")
                } else {
                    ("are", "them")
                };
                write!(
                    f,
                    "{} {verb} missing: the chain skips {them} just before this line (removed from the file)",
                    records(*first_seq, Some(*last_seq))
                )
            }
            ProblemKind::Reordered { seq, after_seq } => {
                write!(
                    f,
                    "record {seq} is out of order (it follows record {after_seq})"
                )
            }
            ProblemKind::Duplicate { seq } => write!(f, "record {seq} appears twice"),
            ProblemKind::Conflicting { seq } => write!(
                f,
                "a second record {seq} with other content (a record was inserted, or two ledgers were mixed)"
            ),
            ProblemKind::DeletedKeptFile { name } => write!(
                f,
                "this retention record kept {name}, which is gone though no later retention record removed it (deleted by something else)"
            ),
            ProblemKind::UnexplainedStart { first_seq } => write!(
                f,
                "the chain starts at record {first_seq}: the records before it are gone and no retention record explains it (deleted, or archived elsewhere)"
            ),
            ProblemKind::RenamedFile { expected } => write!(
                f,
                "the previous file's rotation record names {expected}: this file was renamed"
            ),
            ProblemKind::NotARegularFile => {
                write!(
                    f,
                    "not a regular file (a symbolic link?): its records cannot be trusted"
                )
            }
            ProblemKind::MissingFile {
                name,
                first_seq,
                last_seq,
            } => write!(
                f,
                "file {name} is missing: the chain continues there ({})",
                records(*first_seq, *last_seq)
            ),
            ProblemKind::TruncatedFile {
                first_seq,
                last_seq,
            } => write!(
                f,
                "{} {} missing after this file's last line (its end was cut, or whole files after it were deleted)",
                records(*first_seq, Some(*last_seq)),
                if first_seq == last_seq { "is" } else { "are" }
            ),
            ProblemKind::TornLine { bytes } => write!(
                f,
                "{bytes} byte(s) of an incomplete line that no resume record acknowledges"
            ),
            ProblemKind::TornMismatch { file } => write!(
                f,
                "the resume record acknowledges torn bytes at the end of {file} that are not there"
            ),
            ProblemKind::NameMismatch {
                name_seq,
                first_seq,
            } => write!(
                f,
                "the file name says the first record is {name_seq}, but it is {first_seq}"
            ),
            ProblemKind::BadGenesis { seq } => {
                write!(
                    f,
                    "record {seq} is not a valid genesis (seq 0 with an all-zero prev)"
                )
            }
            ProblemKind::EmptyFile => write!(f, "empty file in the middle of the chain"),
            ProblemKind::BehindAnchor {
                anchor_seq,
                last_seq,
            } => match last_seq {
                Some(last) => write!(
                    f,
                    "the chain ends at record {last}, but the anchor saw record {anchor_seq}: its end was cut"
                ),
                None => write!(
                    f,
                    "the chain is empty, but the anchor saw record {anchor_seq}"
                ),
            },
            ProblemKind::AnchorMismatch { seq } => {
                write!(f, "record {seq} does not have the anchor's hash")
            }
        }
    }
}

/// `record 9`, `records 9 to 12` or `records 9 onwards`.
fn records(first: u64, last: Option<u64>) -> String {
    match last {
        Some(last) if last == first => format!("record {first}"),
        Some(last) => format!("records {first} to {last}"),
        None => format!("records {first} onwards"),
    }
}

/// Checks the files of ledger `prefix` in `dir`: each record's hash, each link, the order,
/// the file boundaries. Only I/O failures are errors; tampering is in the report.
///
/// Cutting the newest records off the end of the newest file cannot be seen from the files
/// alone: compare [`VerifyReport::last_hash`] with an anchor kept elsewhere, or use
/// [`verify_against`].
pub fn verify(dir: &Path, prefix: &str) -> Result<VerifyReport, LedgerError> {
    verify_inner(dir, prefix, None)
}

/// [`verify`], and also check that the chain still holds the record `anchor` names (exported
/// earlier from [`LedgerSender::last`](crate::LedgerSender::last) or [`LedgerStats::last`](crate::LedgerStats)).
pub fn verify_against(
    dir: &Path,
    prefix: &str,
    anchor: &Anchor,
) -> Result<VerifyReport, LedgerError> {
    verify_inner(dir, prefix, Some(anchor))
}

fn verify_inner(
    dir: &Path,
    prefix: &str,
    anchor: Option<&Anchor>,
) -> Result<VerifyReport, LedgerError> {
    if !is_valid_prefix(prefix) {
        return Err(LedgerError::InvalidConfig(format!(
            "prefix {prefix:?} is not a ledger prefix"
        )));
    }
    let files = list_files(dir, prefix)?;
    let mut walk = Walk::new(prefix, &files, anchor);
    for (index, file) in files.iter().enumerate() {
        let path = dir.join(&file.name);
        let metadata = std::fs::symlink_metadata(&path)
            .map_err(|source| LedgerError::io("read metadata of", &path, source))?;
        if !metadata.is_file() {
            // A link to /dev/null swallows what the ledger appends, and reads empty.
            walk.problem((index, 0), ProblemKind::NotARegularFile);
            continue;
        }
        let content =
            std::fs::read(&path).map_err(|source| LedgerError::io("read", &path, source))?;
        walk.file(index, file, &content);
    }
    Ok(walk.finish())
}

/// A place in the files: (file index, line).
type At = (usize, u64);

/// Records missing from the chain, until later records fill them (then they were reordered).
struct Gap {
    first: u64,
    last: u64,
    at: At,
    cause: GapCause,
}

#[derive(Clone)]
enum GapCause {
    Removed,
    MissingFile(String),
    EndOfFile(At),
}

/// What a record says about its neighbours, kept for the window.
struct Link {
    hash: String,
    prev: String,
}

/// The last file that had records, as seen from the next one.
struct Closing {
    file: usize,
    last_line: u64,
    rotate_next: Option<String>,
}

/// An incomplete last line, waiting for the next file's `resume` record.
struct TornTail {
    file: usize,
    line: u64,
    torn: Torn,
}

struct Walk<'a> {
    prefix: &'a str,
    files: &'a [FileName],
    anchor: Option<&'a Anchor>,
    anchor_seen: bool,
    records: u64,
    first_seq: Option<u64>,
    first_file_seq: Option<u64>,
    starts_at_seq: Option<u64>,
    /// The highest seq so far and its hash.
    max: Option<(u64, String)>,
    /// The seq of the record just before, in file order.
    prev_seq: u64,
    window: BTreeMap<u64, Link>,
    gaps: Vec<Gap>,
    malformed_since_record: u64,
    closing: Option<Closing>,
    /// Files seen since `closing` that held no record.
    skipped: Vec<String>,
    torn: Option<TornTail>,
    /// Why a gap opened by the next record would exist, when that record starts a file.
    boundary: Option<GapCause>,
    max_removed_seq: Option<u64>,
    /// Where the newest retention record says the chain begins now: the first sequence number
    /// of the oldest file it left.
    retention_kept: Option<u64>,
    /// The latest `before` of the retention records: files ending before it were deleted.
    retention_before: Option<jiff::Timestamp>,
    /// Every file a retention record kept, with where that record is: each must still be here
    /// or be removed by a later retention record.
    retention_kept_files: Vec<(String, At)>,
    /// Every file a retention record removed.
    retention_removed: Vec<String>,
    /// Where the first record present is, and when it was written.
    first_at: Option<(At, Option<jiff::Timestamp>)>,
    dropped: u64,
    notes: Vec<String>,
    problems: Vec<(At, Problem)>,
}

impl<'a> Walk<'a> {
    fn new(prefix: &'a str, files: &'a [FileName], anchor: Option<&'a Anchor>) -> Self {
        Walk {
            prefix,
            files,
            anchor,
            anchor_seen: false,
            records: 0,
            first_seq: None,
            first_file_seq: None,
            starts_at_seq: None,
            max: None,
            prev_seq: 0,
            window: BTreeMap::new(),
            gaps: Vec::new(),
            malformed_since_record: 0,
            closing: None,
            skipped: Vec::new(),
            torn: None,
            boundary: None,
            max_removed_seq: None,
            retention_kept: None,
            retention_before: None,
            retention_kept_files: Vec::new(),
            retention_removed: Vec::new(),
            first_at: None,
            dropped: 0,
            notes: Vec::new(),
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, at: At, kind: ProblemKind) {
        let file = self
            .files
            .get(at.0)
            .map(|file| file.name.clone())
            .unwrap_or_default();
        self.problems.push((
            at,
            Problem {
                file,
                line: at.1,
                kind,
            },
        ));
    }

    fn name(&self, index: usize) -> &str {
        self.files.get(index).map_or("", |file| file.name.as_str())
    }

    fn file(&mut self, index: usize, file: &FileName, content: &[u8]) {
        let lines = split_lines(content);
        let mut last_record: Option<(u64, Option<String>)> = None;
        for &(line, text) in &lines.complete {
            match parse_line(text) {
                Err(reason) => {
                    self.problem((index, line), ProblemKind::Malformed { reason });
                    self.malformed_since_record += 1;
                }
                Ok(entry) => {
                    if last_record.is_none() {
                        self.enter_file(index, file, line, &entry);
                    }
                    let rotate_next = self.record(index, line, &entry);
                    last_record = Some((line, rotate_next));
                }
            }
        }
        match last_record {
            Some((last_line, rotate_next)) => {
                self.closing = Some(Closing {
                    file: index,
                    last_line,
                    rotate_next,
                });
                self.skipped.clear();
            }
            None => {
                self.settle_torn(None);
                let is_last = index + 1 == self.files.len();
                if content.is_empty() && !is_last {
                    self.problem((index, 0), ProblemKind::EmptyFile);
                }
                self.skipped.push(file.name.clone());
            }
        }
        self.torn = lines
            .unterminated
            .map(|tail| torn_tail(index, &file.name, &tail));
    }

    /// Checks what the first record of a file says about the files before it.
    fn enter_file(&mut self, index: usize, file: &FileName, line: u64, entry: &Entry<'_>) {
        let acknowledged = self.settle_torn(Some((index, line, entry)));
        let cause = match &self.closing {
            None => GapCause::Removed,
            Some(closing) => match &closing.rotate_next {
                Some(next) if *next == file.name || self.skipped.contains(next) => {
                    GapCause::Removed
                }
                Some(next) => GapCause::MissingFile(next.clone()),
                None if acknowledged => GapCause::Removed,
                None => GapCause::EndOfFile((closing.file, closing.last_line + 1)),
            },
        };
        self.boundary = Some(cause);
        let continues = self
            .max
            .as_ref()
            .is_some_and(|(max, _)| entry.seq == max.saturating_add(1));
        if let Some(GapCause::MissingFile(expected)) = &self.boundary
            && continues
        {
            // Nothing is missing: the file the rotation named is this one, under a new name.
            let expected = expected.clone();
            self.problem((index, 0), ProblemKind::RenamedFile { expected });
        }

        if line != 1 || entry.seq == file.first_seq {
            return;
        }
        let opens_gap = self
            .max
            .as_ref()
            .is_some_and(|(max, _)| entry.seq > max.saturating_add(1));
        if self.max.is_none() && entry.seq > file.first_seq {
            // The oldest present file lost its first lines.
            self.problem(
                (index, 1),
                ProblemKind::RemovedRecords {
                    first_seq: file.first_seq,
                    last_seq: entry.seq - 1,
                },
            );
        } else if !opens_gap {
            self.problem(
                (index, 0),
                ProblemKind::NameMismatch {
                    name_seq: file.first_seq,
                    first_seq: entry.seq,
                },
            );
        }
    }

    /// Decides about the previous file's incomplete last line, given the first record of the
    /// next file (if it has one). Returns whether a `resume` record acknowledged it.
    fn settle_torn(&mut self, first: Option<(usize, u64, &Entry<'_>)>) -> bool {
        let resume = first.and_then(|(index, line, entry)| {
            acknowledged_tear(entry).map(|torn| (index, line, torn))
        });
        match (self.torn.take(), resume) {
            (Some(tail), Some((index, line, torn))) if tail.torn == torn => {
                self.notes.push(format!(
                    "{}:{}: incomplete line left by a crash, acknowledged by the resume record at {}:{}",
                    self.name(tail.file),
                    tail.line,
                    self.name(index),
                    line
                ));
                true
            }
            (Some(tail), _) => {
                self.problem(
                    (tail.file, tail.line),
                    ProblemKind::TornLine {
                        bytes: tail.torn.bytes,
                    },
                );
                false
            }
            (None, Some((index, line, torn))) => {
                if self.files.iter().any(|file| file.name == torn.file) {
                    self.problem((index, line), ProblemKind::TornMismatch { file: torn.file });
                }
                false
            }
            (None, None) => false,
        }
    }

    /// Checks one record against the chain; returns the next file's name if it is a
    /// rotation record.
    fn record(&mut self, index: usize, line: u64, entry: &Entry<'_>) -> Option<String> {
        let at = (index, line);
        self.records += 1;
        if !entry.hash_ok {
            self.problem(at, ProblemKind::EditedRecord { seq: entry.seq });
        }
        self.check_anchor(at, entry);
        let rotate_next = self.note_ledger_record(at, entry);
        match self.max.as_ref().map(|(max, _)| *max) {
            None => self.chain_start(index, at, entry),
            Some(max) => self.follow(at, entry, max),
        }
        self.boundary = None;
        self.malformed_since_record = 0;
        self.remember(entry);
        rotate_next
    }

    fn chain_start(&mut self, index: usize, at: At, entry: &Entry<'_>) {
        self.first_seq = Some(entry.seq);
        self.first_at = Some((at, entry.time.parse().ok()));
        self.first_file_seq = self.files.get(index).map(|file| file.first_seq);
        let genesis_prev = entry.prev == GENESIS_PREV;
        match (entry.seq == 0, genesis_prev) {
            (true, true) => {}
            (false, false) => self.starts_at_seq = Some(entry.seq),
            _ => self.problem(at, ProblemKind::BadGenesis { seq: entry.seq }),
        }
    }

    /// Links a record to the highest seq seen so far.
    fn follow(&mut self, at: At, entry: &Entry<'_>, max: u64) {
        let max_hash = self
            .max
            .as_ref()
            .map(|(_, hash)| hash.clone())
            .unwrap_or_default();
        let next = max.saturating_add(1);
        if entry.seq == next {
            if *entry.prev != *max_hash {
                self.problem(at, ProblemKind::BrokenLink { seq: entry.seq });
            }
        } else if entry.seq > next {
            let missing = entry.seq - next;
            // Lines already reported as malformed account for their own seqs.
            if missing > self.malformed_since_record {
                self.gaps.push(Gap {
                    first: next,
                    last: entry.seq - 1,
                    at,
                    cause: self.boundary.clone().unwrap_or(GapCause::Removed),
                });
            }
        } else {
            self.out_of_place(at, entry);
        }
    }

    /// A record whose seq is not above every seq before it.
    fn out_of_place(&mut self, at: At, entry: &Entry<'_>) {
        if let Some(seen) = self.window.get(&entry.seq) {
            let kind = if seen.hash == *entry.hash {
                ProblemKind::Duplicate { seq: entry.seq }
            } else {
                ProblemKind::Conflicting { seq: entry.seq }
            };
            self.problem(at, kind);
            return;
        }
        self.fill_gap(entry.seq);
        self.problem(
            at,
            ProblemKind::Reordered {
                seq: entry.seq,
                after_seq: self.prev_seq,
            },
        );
        let before_ok = entry
            .seq
            .checked_sub(1)
            .and_then(|seq| self.window.get(&seq))
            .is_none_or(|before| before.hash == *entry.prev);
        let after = entry.seq.saturating_add(1);
        let after_ok = self
            .window
            .get(&after)
            .is_none_or(|link| link.prev == *entry.hash);
        if !before_ok {
            self.problem(at, ProblemKind::BrokenLink { seq: entry.seq });
        }
        if !after_ok {
            self.problem(at, ProblemKind::BrokenLink { seq: after });
        }
    }

    fn fill_gap(&mut self, seq: u64) {
        let Some(position) = self
            .gaps
            .iter()
            .position(|gap| gap.first <= seq && seq <= gap.last)
        else {
            return;
        };
        let gap = self.gaps.remove(position);
        if gap.first < seq {
            self.gaps.push(Gap {
                last: seq - 1,
                cause: gap.cause.clone(),
                ..gap
            });
        }
        if seq < gap.last {
            self.gaps.push(Gap {
                first: seq + 1,
                ..gap
            });
        }
    }

    fn remember(&mut self, entry: &Entry<'_>) {
        self.window.insert(
            entry.seq,
            Link {
                hash: entry.hash.to_string(),
                prev: entry.prev.to_string(),
            },
        );
        while self.window.len() as u64 > WINDOW {
            self.window.pop_first();
        }
        if self.max.as_ref().is_none_or(|(max, _)| entry.seq > *max) {
            self.max = Some((entry.seq, entry.hash.to_string()));
        }
        self.prev_seq = entry.seq;
        let max = self.max.as_ref().map_or(0, |(max, _)| *max);
        let (old, recent): (Vec<Gap>, Vec<Gap>) = self
            .gaps
            .drain(..)
            .partition(|gap| gap.last.saturating_add(WINDOW) < max);
        self.gaps = recent;
        for gap in old {
            self.report_gap(gap);
        }
    }

    fn report_gap(&mut self, gap: Gap) {
        let (first_seq, last_seq) = (gap.first, gap.last);
        match gap.cause {
            GapCause::Removed => self.problem(
                gap.at,
                ProblemKind::RemovedRecords {
                    first_seq,
                    last_seq,
                },
            ),
            GapCause::MissingFile(name) => self.problem(
                gap.at,
                ProblemKind::MissingFile {
                    name,
                    first_seq,
                    last_seq: Some(last_seq),
                },
            ),
            GapCause::EndOfFile(at) => self.problem(
                at,
                ProblemKind::TruncatedFile {
                    first_seq,
                    last_seq,
                },
            ),
        }
    }

    fn check_anchor(&mut self, at: At, entry: &Entry<'_>) {
        let Some(anchor) = self.anchor else {
            return;
        };
        if anchor.seq == entry.seq {
            self.anchor_seen = true;
            if anchor.hash != *entry.hash {
                self.problem(at, ProblemKind::AnchorMismatch { seq: entry.seq });
            }
        }
    }

    /// Reads what the ledger's own records say; returns the next file of a rotation record.
    fn note_ledger_record(&mut self, at: At, entry: &Entry<'_>) -> Option<String> {
        match LedgerRecord::parse(entry.record)? {
            LedgerRecord::Rotate { next } => return Some(next),
            LedgerRecord::Gap { dropped, .. } => {
                self.dropped = self.dropped.saturating_add(dropped)
            }
            LedgerRecord::Retention {
                removed,
                before,
                kept,
            } => {
                let before = before.parse::<jiff::Timestamp>().ok();
                self.retention_before = self.retention_before.max(before);
                let prefix = self.prefix;
                if let Some(name) = &kept {
                    self.retention_kept_files.push((name.clone(), at));
                }
                self.retention_removed.extend(removed.iter().cloned());
                let kept = kept.and_then(|name| FileName::parse(prefix, &name));
                self.retention_kept = self.retention_kept.max(kept.map(|file| file.first_seq));
                let newest_removed = removed
                    .iter()
                    .filter_map(|name| FileName::parse(prefix, name))
                    .map(|file| file.first_seq)
                    .max();
                self.max_removed_seq = self.max_removed_seq.max(newest_removed);
            }
            LedgerRecord::Resume { .. } => {}
        }
        None
    }

    fn finish(mut self) -> VerifyReport {
        if let Some(tail) = self.torn.take() {
            self.notes.push(format!(
                "{}:{}: the newest file ends with an incomplete line (a write in progress, or a crash the ledger acknowledges when it reopens)",
                self.name(tail.file),
                tail.line
            ));
        }
        self.check_last_rotation();
        self.check_anchor_reached();
        self.check_kept_files();
        for gap in std::mem::take(&mut self.gaps) {
            self.report_gap(gap);
        }
        // Retention deletes a file once the next one began before `before`, so the first record
        // left was written by then: one written later means newer files were deleted too.
        let first_written = self.first_at.as_ref().and_then(|(_, time)| *time);
        // The file retention left must be the first one here, under its own name: records cut
        // from its start, the file renamed to match, would otherwise pass for retention's.
        let kept_is_first = match self.retention_kept {
            Some(kept) => self.first_file_seq == Some(kept),
            None => self
                .max_removed_seq
                .zip(self.first_file_seq)
                .is_some_and(|(removed, first_file)| removed < first_file),
        };
        let explained = self.starts_at_seq.is_some()
            && kept_is_first
            && self
                .retention_before
                .zip(first_written)
                .is_some_and(|(before, first)| first <= before);
        if let (Some(first_seq), false) = (self.starts_at_seq, explained) {
            let at = self.first_at.as_ref().map_or((0, 1), |(at, _)| *at);
            self.problem(at, ProblemKind::UnexplainedStart { first_seq });
        }
        self.problems.sort_by_key(|(at, _)| *at);
        VerifyReport {
            files: self.files.len(),
            records: self.records,
            first_seq: self.first_seq,
            last_seq: self.max.as_ref().map(|(seq, _)| *seq),
            last_hash: self.max.map(|(_, hash)| hash),
            starts_at_seq: self.starts_at_seq,
            start_explained_by_retention: explained,
            dropped: self.dropped,
            notes: self.notes,
            problems: self
                .problems
                .into_iter()
                .map(|(_, problem)| problem)
                .collect(),
        }
    }

    /// A file a retention record kept is still here, or a later retention record removed it:
    /// deleted otherwise, the deletion would be taken for retention's once the policy had
    /// caught up with the files after it.
    fn check_kept_files(&mut self) {
        let kept = std::mem::take(&mut self.retention_kept_files);
        for (name, at) in kept {
            let here = self.files.iter().any(|file| file.name == name);
            if !here && !self.retention_removed.contains(&name) {
                self.problem(at, ProblemKind::DeletedKeptFile { name });
            }
        }
    }

    /// The newest file with records must not name a next file that is missing.
    fn check_last_rotation(&mut self) {
        let Some(closing) = self.closing.take() else {
            return;
        };
        let Some(next) = closing.rotate_next else {
            return;
        };
        if !self.skipped.contains(&next) {
            let first_seq = self
                .max
                .as_ref()
                .map_or(0, |(max, _)| max.saturating_add(1));
            self.problem(
                (closing.file, closing.last_line),
                ProblemKind::MissingFile {
                    name: next,
                    first_seq,
                    last_seq: None,
                },
            );
        }
    }

    fn check_anchor_reached(&mut self) {
        let Some(anchor) = self.anchor else {
            return;
        };
        let last_seq = self.max.as_ref().map(|(max, _)| *max);
        if self.anchor_seen || last_seq.is_some_and(|last| anchor.seq <= last) {
            // Seen, or inside the chain, where a missing record is already a gap problem.
            return;
        }
        let last_file = self.files.len().saturating_sub(1);
        self.problem(
            (last_file, 0),
            ProblemKind::BehindAnchor {
                anchor_seq: anchor.seq,
                last_seq,
            },
        );
    }
}

/// The torn bytes a `resume` record acknowledges, if `entry` is one.
fn acknowledged_tear(entry: &Entry<'_>) -> Option<Torn> {
    match LedgerRecord::parse(entry.record)? {
        LedgerRecord::Resume { torn } => Some(torn),
        _ => None,
    }
}

fn torn_tail(index: usize, name: &str, tail: &Unterminated<'_>) -> TornTail {
    TornTail {
        file: index,
        line: tail.line,
        torn: Torn {
            file: name.to_owned(),
            offset: tail.offset,
            bytes: tail.bytes.len() as u64,
            sha256: sha256_hex(tail.bytes),
        },
    }
}
