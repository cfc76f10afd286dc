//! IBANs (ISO 13616): a country code, two check digits and the account, printed in groups of
//! four or unbroken. A scan finds a country code before two digits; a find is kept only at the
//! length that country's IBANs have and when its check digits agree (ISO 7064 mod 97), so that
//! product codes and references of the same shape are left alone.

use super::{SecretKind, Span, digit_run_end, next_digit};

/// Adds the spans of the IBANs in `text`.
pub(super) fn find_ibans(text: &str, spans: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    let mut at = 2;
    while let Some(digit) = next_digit(bytes, at) {
        // Check digits come right after the letters: no other digit of a run can start them.
        at = digit_run_end(bytes, digit);
        let Some(start) = digit.checked_sub(2) else {
            continue;
        };
        if let Some(end) = iban_at(bytes, start) {
            spans.push(Span {
                start,
                end,
                kind: SecretKind::Iban,
            });
            at = end;
        }
    }
}

/// Where the IBAN starting at `start` ends, if one does.
fn iban_at(bytes: &[u8], start: usize) -> Option<usize> {
    let glued = start
        .checked_sub(1)
        .and_then(|before| bytes.get(before))
        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
    let head = bytes.get(start..start + 4)?;
    let is_head = head.get(..2)?.iter().all(u8::is_ascii_alphabetic)
        && head.get(2..)?.iter().all(u8::is_ascii_digit);
    if glued || !is_head {
        return None;
    }
    let country = [head[0].to_ascii_uppercase(), head[1].to_ascii_uppercase()];
    let length = iban_length(country)?;
    let mut iban = Vec::with_capacity(length);
    let mut at = start;
    // Whether the groups of four are spaced: all of them, or none.
    let mut spaced = None;
    while iban.len() < length {
        if iban.len() % 4 == 0 && !iban.is_empty() {
            let separator = separator_len(bytes, at);
            let space = separator > 0;
            if *spaced.get_or_insert(space) != space {
                return None;
            }
            at += separator;
        }
        let byte = *bytes.get(at)?;
        if !byte.is_ascii_alphanumeric() {
            return None;
        }
        iban.push(byte.to_ascii_uppercase());
        at += 1;
    }
    let glued_after = bytes.get(at).is_some_and(u8::is_ascii_alphanumeric);
    (!glued_after && check_digits_agree(&iban)).then_some(at)
}

/// The length of the separator between two groups at `at`, 0 if none is there: a dash, one or
/// two spaces, no-break or narrow no-break spaces (as web pages and French typography print
/// IBANs), or a line break and the next line's indent (an IBAN wrapped in a mail or a PDF).
fn separator_len(bytes: &[u8], at: usize) -> usize {
    let rest = bytes.get(at..).unwrap_or_default();
    if rest.first() == Some(&b'-') {
        return 1;
    }
    let line_break = match rest {
        [b'\r', b'\n', ..] => 2,
        [b'\n', ..] => 1,
        _ => 0,
    };
    if line_break > 0 {
        let indent = rest.iter().skip(line_break).take(8);
        return line_break + indent.take_while(|&&b| b == b' ' || b == b'\t').count();
    }
    let mut len = 0;
    for _ in 0..2 {
        len += match rest.get(len..).unwrap_or_default() {
            [b' ', ..] => 1,
            [0xC2, 0xA0, ..] => 2,
            [0xE2, 0x80, 0xAF, ..] => 3,
            _ => break,
        };
    }
    len
}

/// ISO 7064 mod 97-10: the account, then the country and check digits, with each letter read
/// as a number from 10 (A) to 35 (Z), leaves 1 when divided by 97.
fn check_digits_agree(iban: &[u8]) -> bool {
    let (head, account) = iban.split_at(4.min(iban.len()));
    let mut remainder = 0u32;
    for &c in account.iter().chain(head) {
        remainder = match c {
            b'0'..=b'9' => (remainder * 10 + u32::from(c - b'0')) % 97,
            b'A'..=b'Z' => (remainder * 100 + u32::from(c - b'A') + 10) % 97,
            _ => return false,
        };
    }
    remainder == 1
}

/// The length of the IBANs of a country, as SWIFT's IBAN registry lists it.
fn iban_length(country: [u8; 2]) -> Option<usize> {
    let length = match &country {
        b"NO" => 15,
        b"BE" => 16,
        b"DK" | b"FI" | b"FK" | b"FO" | b"GL" | b"NL" | b"SD" => 18,
        b"MK" | b"SI" => 19,
        b"AT" | b"BA" | b"EE" | b"KZ" | b"LT" | b"LU" | b"MN" | b"XK" => 20,
        b"CH" | b"HR" | b"LI" | b"LV" => 21,
        b"BG" | b"BH" | b"CR" | b"DE" | b"GB" | b"GE" | b"IE" | b"ME" | b"RS" | b"VA" => 22,
        b"AE" | b"GI" | b"IL" | b"IQ" | b"OM" | b"SO" | b"TL" => 23,
        b"AD" | b"CZ" | b"ES" | b"MD" | b"PK" | b"RO" | b"SA" | b"SE" | b"SK" | b"TN" | b"VG" => 24,
        b"LY" | b"PT" | b"ST" => 25,
        b"IS" | b"TR" => 26,
        b"BI" | b"DJ" | b"FR" | b"GR" | b"IT" | b"MC" | b"MR" | b"SM" => 27,
        b"AL" | b"AZ" | b"BY" | b"CY" | b"DO" | b"GT" | b"HN" | b"HU" | b"LB" | b"NI" | b"PL"
        | b"SV" => 28,
        b"BR" | b"EG" | b"PS" | b"QA" | b"UA" => 29,
        b"JO" | b"KW" | b"MU" | b"YE" => 30,
        b"MT" | b"SC" => 31,
        b"LC" => 32,
        b"RU" => 33,
        _ => return None,
    };
    Some(length)
}
