//! The line format and the hash that links each line to the one before.
//!
//! A line is `{"seq":N,"time":"…","prev":"<64 hex>","hash":"<64 hex>","record":<JSON>}` and
//! `hash = sha256(prev "\n" seq "\n" time "\n" record-bytes)`, where `prev` and `hash` are
//! lowercase hex, `seq` is decimal and `record-bytes` are the record exactly as in the file.

use std::borrow::Cow;

use ring::digest::{Context, SHA256};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The `prev` of the very first record of a chain (the genesis).
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of one record, as lowercase hex.
pub(crate) fn record_hash(prev: &str, seq: u64, time: &str, record: &[u8]) -> String {
    let mut context = Context::new(&SHA256);
    context.update(prev.as_bytes());
    context.update(b"\n");
    context.update(decimal(seq, &mut [0; 20]));
    context.update(b"\n");
    context.update(time.as_bytes());
    context.update(b"\n");
    context.update(record);
    hex(context.finish().as_ref())
}

/// The sha256 of some bytes, as lowercase hex (used for torn tails).
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&SHA256, bytes).as_ref())
}

/// `bytes` as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digits: Vec<u8> = bytes
        .iter()
        .flat_map(|byte| {
            [
                DIGITS[usize::from(byte >> 4)],
                DIGITS[usize::from(byte & 0x0f)],
            ]
        })
        .collect();
    // Hex digits are ASCII, so this never falls back.
    String::from_utf8(digits).unwrap_or_default()
}

/// `n` in decimal, written into `buffer` (u64::MAX has 20 digits) without allocating.
pub fn decimal(mut n: u64, buffer: &mut [u8; 20]) -> &[u8] {
    let mut start = buffer.len();
    loop {
        start -= 1;
        buffer[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buffer[start..];
        }
    }
}

/// Appends one complete line, newline included. `record` must be one line of JSON, which is
/// what serde_json's compact output always is.
pub(crate) fn push_line(
    out: &mut Vec<u8>,
    seq: u64,
    time: &str,
    prev: &str,
    hash: &str,
    record: &[u8],
) {
    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(decimal(seq, &mut [0; 20]));
    out.extend_from_slice(b",\"time\":\"");
    out.extend_from_slice(time.as_bytes());
    out.extend_from_slice(b"\",\"prev\":\"");
    out.extend_from_slice(prev.as_bytes());
    out.extend_from_slice(b"\",\"hash\":\"");
    out.extend_from_slice(hash.as_bytes());
    out.extend_from_slice(b"\",\"record\":");
    out.extend_from_slice(record);
    out.extend_from_slice(b"}\n");
}

/// The time of the line starting `start`, read from the line's first bytes as [`push_line`]
/// lays them out; the rest of the line (and its hash) is not looked at.
pub(crate) fn line_time(start: &[u8]) -> Option<&str> {
    let rest = start.strip_prefix(b"{\"seq\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let rest = rest.get(digits..)?.strip_prefix(b",\"time\":\"")?;
    let end = rest.iter().position(|b| *b == b'"')?;
    std::str::from_utf8(rest.get(..end)?).ok()
}

/// One parsed line, borrowing from the file's bytes.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    pub seq: u64,
    /// When the record was written (RFC 3339, UTC).
    pub time: Cow<'a, str>,
    pub prev: Cow<'a, str>,
    pub hash: Cow<'a, str>,
    /// The record's JSON exactly as it appears in the line.
    pub record: &'a str,
    /// Whether `hash` matches the line's content.
    pub hash_ok: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    seq: u64,
    #[serde(borrow)]
    time: Cow<'a, str>,
    #[serde(borrow)]
    prev: Cow<'a, str>,
    #[serde(borrow)]
    hash: Cow<'a, str>,
    #[serde(borrow)]
    record: &'a RawValue,
}

/// Parses one line (without its newline); the error says what is wrong with it.
pub(crate) fn parse_line(line: &[u8]) -> Result<Entry<'_>, String> {
    let parsed: Line<'_> = serde_json::from_slice(line).map_err(|error| error.to_string())?;
    for (field, value) in [("prev", &parsed.prev), ("hash", &parsed.hash)] {
        if !is_hex_digest(value) {
            return Err(format!("{field} is not 64 lowercase hex digits"));
        }
    }
    let record = parsed.record.get();
    // The hash covers the fields' values; the line's own bytes are proven by being exactly what
    // the ledger writes for them (no spaces, escapes or line endings of someone else's).
    let mut canonical = Vec::with_capacity(line.len() + 1);
    push_line(
        &mut canonical,
        parsed.seq,
        &parsed.time,
        &parsed.prev,
        &parsed.hash,
        record.as_bytes(),
    );
    if canonical.strip_suffix(b"\n") != Some(line) {
        return Err(
            "not written the way the ledger writes lines (spaces, escapes or a line ending were changed)"
                .into(),
        );
    }
    let hash_ok =
        record_hash(&parsed.prev, parsed.seq, &parsed.time, record.as_bytes()) == parsed.hash;
    Ok(Entry {
        seq: parsed.seq,
        time: parsed.time,
        prev: parsed.prev,
        hash: parsed.hash,
        record,
        hash_ok,
    })
}

fn is_hex_digest(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The records the ledger writes itself. Their `kind`s are reserved: callers' records should
/// not use `gap`, `rotate`, `resume` or `retention` as their `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum LedgerRecord {
    /// Records were lost before reaching the file.
    Gap { dropped: u64, reason: String },
    /// The last record of a file: the chain continues in `next`.
    Rotate { next: String },
    /// The first record of a file started because the previous one ended in a torn line.
    Resume { torn: Torn },
    /// Files deleted by the retention policy, and the oldest file left, where the chain now
    /// begins (absent from records of earlier versions).
    Retention {
        removed: Vec<String>,
        before: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kept: Option<String>,
    },
}

/// The bytes a crash left at the end of a file, after its last complete line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Torn {
    pub file: String,
    pub offset: u64,
    pub bytes: u64,
    pub sha256: String,
}

impl LedgerRecord {
    /// The ledger's own record in `record`, if that is one.
    pub(crate) fn parse(record: &str) -> Option<LedgerRecord> {
        // Cheap test first: most records are the callers'.
        if !record.starts_with("{\"kind\":") {
            return None;
        }
        serde_json::from_str(record).ok()
    }

    pub(crate) fn to_json(&self) -> Vec<u8> {
        // A plain enum of strings and numbers always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        for n in [0, 7, 10, 1_234_567, u64::MAX] {
            assert_eq!(decimal(n, &mut [0; 20]), n.to_string().as_bytes());
        }
    }

    #[test]
    fn a_written_line_parses_back_with_a_valid_hash() {
        let time = "2025-01-02T03:04:05.000006Z";
        let record = br#"{"tenant":"acme","tokens":12}"#;
        let hash = record_hash(GENESIS_PREV, 0, time, record);
        let mut line = Vec::new();
        push_line(&mut line, 0, time, GENESIS_PREV, &hash, record);

        assert_eq!(line.last(), Some(&b'\n'));
        let entry = parse_line(&line[..line.len() - 1]).unwrap();
        assert_eq!(entry.seq, 0);
        assert_eq!(entry.prev, GENESIS_PREV);
        assert_eq!(entry.hash, hash);
        assert_eq!(entry.record.as_bytes(), record);
        assert!(entry.hash_ok);
    }

    #[test]
    fn the_hash_covers_every_field() {
        let base = record_hash(GENESIS_PREV, 1, "t", b"{}");
        assert_eq!(base.len(), 64);
        assert_ne!(base, record_hash(GENESIS_PREV, 2, "t", b"{}"));
        assert_ne!(base, record_hash(GENESIS_PREV, 1, "u", b"{}"));
        assert_ne!(base, record_hash(GENESIS_PREV, 1, "t", b"{ }"));
        assert_ne!(base, record_hash(&"1".repeat(64), 1, "t", b"{}"));
    }

    #[test]
    fn the_hash_is_sha256_of_the_documented_preimage() {
        let preimage = format!("{GENESIS_PREV}\n7\nT\n{{\"a\":1}}");
        assert_eq!(
            record_hash(GENESIS_PREV, 7, "T", br#"{"a":1}"#),
            sha256_hex(preimage.as_bytes())
        );
        // sha256("") is well known.
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn an_edited_record_fails_its_hash_even_when_it_means_the_same() {
        let hash = record_hash(GENESIS_PREV, 0, "t", br#"{"a":1}"#);
        let mut line = Vec::new();
        push_line(&mut line, 0, "t", GENESIS_PREV, &hash, br#"{"a": 1}"#);
        assert!(!parse_line(&line[..line.len() - 1]).unwrap().hash_ok);
    }

    #[test]
    fn malformed_lines_say_why() {
        assert!(parse_line(b"{\"seq\":1").is_err());
        let extra = format!(
            r#"{{"seq":0,"time":"t","prev":"{GENESIS_PREV}","hash":"{GENESIS_PREV}","record":{{}},"x":1}}"#
        );
        assert!(
            parse_line(extra.as_bytes())
                .unwrap_err()
                .contains("unknown field")
        );
        let short =
            format!(r#"{{"seq":0,"time":"t","prev":"00","hash":"{GENESIS_PREV}","record":{{}}}}"#);
        assert!(parse_line(short.as_bytes()).unwrap_err().contains("prev"));
    }

    #[test]
    fn ledger_records_round_trip_and_callers_records_are_not_taken_for_them() {
        let gap = LedgerRecord::Gap {
            dropped: 3,
            reason: "queue full".into(),
        };
        let json = String::from_utf8(gap.to_json()).unwrap();
        assert_eq!(json, r#"{"kind":"gap","dropped":3,"reason":"queue full"}"#);
        assert_eq!(LedgerRecord::parse(&json), Some(gap));
        assert_eq!(
            LedgerRecord::parse(r#"{"kind":"request","tenant":"a"}"#),
            None
        );
        assert_eq!(LedgerRecord::parse(r#"{"tenant":"a"}"#), None);
    }
}
