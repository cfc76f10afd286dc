//! Redaction never panics, masks every card an independent check can see, and is idempotent
//! for cards, keys and private keys.
#![no_main]

use std::sync::LazyLock;

use hangar_guard::{Redactor, SecretKind};
use libfuzzer_sys::fuzz_target;

static REDACTOR: LazyLock<Redactor> = LazyLock::new(Redactor::default);

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let once = REDACTOR.redact(&text);
    if once.found.is_empty() {
        assert_eq!(once.text, text, "a clean text must come back unchanged");
    }
    if let Some(card) = standalone_card(&once.text) {
        panic!("card {card} survived redaction: {:?}", once.text);
    }
    let twice = REDACTOR.redact(&once.text);
    for kind in [
        SecretKind::CardNumber,
        SecretKind::ProviderKey,
        SecretKind::PrivateKey,
    ] {
        assert_eq!(
            twice.count(kind),
            0,
            "second pass found a {kind} in {:?} (from {text:?})",
            once.text
        );
    }
});

/// A contiguous run of 13–19 digits, with no letter, digit, `_` or `.` on either side, that
/// passes Luhn and starts like a card: written apart from the redactor's scanner, and stricter
/// about neighbours, so anything it finds the redactor must have masked.
fn standalone_card(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        if !bytes[start].is_ascii_digit() {
            start += 1;
            continue;
        }
        let end = start
            + bytes[start..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
        let apart = |b: Option<&u8>| {
            b.is_none_or(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.'))
        };
        let before = start.checked_sub(1).and_then(|i| bytes.get(i));
        let run = &bytes[start..end];
        if (13..=19).contains(&run.len())
            && apart(before)
            && apart(bytes.get(end))
            && luhn(run)
            && issuer(run)
        {
            return text.get(start..end);
        }
        start = end;
    }
    None
}

fn luhn(run: &[u8]) -> bool {
    let mut sum = 0;
    for (i, digit) in run.iter().rev().map(|b| u32::from(b - b'0')).enumerate() {
        let doubled = digit * 2;
        sum += match i % 2 {
            0 => digit,
            _ if doubled > 9 => doubled - 9,
            _ => doubled,
        };
    }
    sum % 10 == 0
}

fn issuer(run: &[u8]) -> bool {
    match run {
        [b'4' | b'5' | b'6', ..] => true,
        [b'3', second, ..] => !matches!(second, b'1'..=b'3'),
        [b'2', rest @ ..] if rest.len() >= 3 => {
            let prefix: u32 = std::str::from_utf8(&run[..4])
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            (2221..=2720).contains(&prefix)
        }
        _ => false,
    }
}
