//! Redaction never panics, masks every card an independent check can see (ASCII, full-width,
//! Arabic-Indic, Devanagari or mathematical digits, in groups joined by short runs of
//! separators, invisible characters between digits skipped), and is idempotent for cards, keys
//! and private keys. A prefix cut anywhere (inside a character, past the end) never panics,
//! and one cut past the end is the whole text's redaction.
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
    let cut = data.first().map_or(0, |b| usize::from(*b) * text.len() / 255);
    let prefix = REDACTOR.redact_prefix(&text, cut);
    if cut == text.len() {
        assert_eq!(prefix.text, once.text, "a cut at the end changes nothing");
    }
    let past = REDACTOR.redact_prefix(&text, text.len() + 1);
    assert_eq!(past.text, once.text, "a cut past the end changes nothing");
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

/// A stretch of 13–19 digits that passes Luhn, starts like a card and is laid out like one (a
/// single run, or a first group of 4–6 digits and further groups of 3–6, each joined to the
/// last by one to three separators), with no letter, digit, `_` or decimal point on either
/// side. Written apart from the redactor's scanner, and stricter about neighbours, so anything
/// it finds the redactor must have masked.
fn standalone_card(text: &str) -> Option<&str> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let groups = digit_groups(&chars);
    for (first, group) in groups.iter().enumerate() {
        let mut digits = Vec::new();
        for (index, last) in groups.iter().enumerate().skip(first) {
            if index > first && !last.joined_to_previous {
                break;
            }
            let len = last.digits.len();
            let shape_ok = if index == first {
                (4..=6).contains(&len) || (13..=19).contains(&len)
            } else {
                (3..=6).contains(&len) && group.digits.len() <= 6
            };
            digits.extend_from_slice(&last.digits);
            if !shape_ok || digits.len() > 19 {
                break;
            }
            let before = group.start.checked_sub(1).map(|i| chars[i].1);
            let after = chars.get(last.end).map(|(_, c)| *c);
            if digits.len() >= 13
                && apart(before)
                && apart(after)
                && luhn(&digits)
                && issuer(&digits)
            {
                let start = chars[group.start].0;
                let end = chars.get(last.end).map_or(text.len(), |(at, _)| *at);
                return text.get(start..end);
            }
        }
    }
    None
}

/// A maximal run of digits, as character indices into the text.
struct Group {
    start: usize,
    end: usize,
    digits: Vec<u32>,
    /// Whether one to three separators, and nothing else, lie between it and the group before.
    joined_to_previous: bool,
}

fn digit_groups(chars: &[(usize, char)]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if digit_value(chars[i].1).is_none() {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = Vec::new();
        while let Some(value) = chars.get(i).and_then(|(_, c)| digit_value(*c)) {
            digits.push(value);
            i += 1;
            // Invisible characters between two digits are not there.
            let hidden = chars[i..].iter().take_while(|(_, c)| is_invisible(*c)).count();
            if hidden > 0 && chars.get(i + hidden).is_some_and(|(_, c)| digit_value(*c).is_some()) {
                i += hidden;
            }
        }
        let joined_to_previous = groups.last().is_some_and(|previous| {
            let between = &chars[previous.end..start];
            (1..=3).contains(&between.len()) && between.iter().all(|(_, c)| is_separator(*c))
        });
        groups.push(Group {
            start,
            end: i,
            digits,
            joined_to_previous,
        });
    }
    groups
}

fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{300}'..='\u{36f}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{20d0}'..='\u{20ff}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
    )
}

fn digit_value(c: char) -> Option<u32> {
    match c {
        '0'..='9' => c.to_digit(10),
        '\u{ff10}'..='\u{ff19}' => Some(c as u32 - 0xff10),
        '\u{660}'..='\u{669}' => Some(c as u32 - 0x660),
        '\u{6f0}'..='\u{6f9}' => Some(c as u32 - 0x6f0),
        '\u{966}'..='\u{96f}' => Some(c as u32 - 0x966),
        '\u{1d7ce}'..='\u{1d7ff}' => Some((c as u32 - 0x1d7ce) % 10),
        _ => None,
    }
}

/// Spaces, dashes, dots, slashes, middle dots and bullets: ASCII, Unicode spaces and dashes,
/// full-width forms; and the invisible characters.
fn is_separator(c: char) -> bool {
    is_invisible(c)
        || matches!(
            c,
            ' ' | '\t'
                | '-'
                | '.'
                | '/'
                | '\u{a0}'
                | '\u{b7}'
                | '\u{2000}'..='\u{200a}'
                | '\u{2010}'..='\u{2015}'
                | '\u{2022}'
                | '\u{2027}'
                | '\u{202f}'
                | '\u{2212}'
                | '\u{3000}'
                | '\u{ff0d}'..='\u{ff0f}'
        )
}

/// No neighbour, or one that is neither a letter, a digit, `_` nor a decimal point (ASCII or
/// full-width).
fn apart(neighbour: Option<char>) -> bool {
    neighbour.is_none_or(|c| {
        let word = c.is_alphanumeric() && (c.is_ascii() || ('\u{ff00}'..='\u{ffef}').contains(&c));
        !(word || matches!(c, '_' | '.' | '\u{ff3f}' | '\u{ff0e}'))
    })
}

fn luhn(digits: &[u32]) -> bool {
    let mut sum = 0;
    for (i, &digit) in digits.iter().rev().enumerate() {
        let doubled = digit * 2;
        sum += match i % 2 {
            0 => digit,
            _ if doubled > 9 => doubled - 9,
            _ => doubled,
        };
    }
    sum % 10 == 0
}

fn issuer(digits: &[u32]) -> bool {
    // The 15-digit cards are American Express's; other 15-digit numbers (IMEIs) are not cards.
    if digits.len() == 15 {
        return matches!(digits, [3, 4 | 7, ..]);
    }
    match digits {
        [4 | 5 | 6, ..] => true,
        [3, second, ..] => !matches!(second, 1..=3),
        [2, a, b, c, ..] => (2221..=2720).contains(&(2000 + a * 100 + b * 10 + c)),
        _ => false,
    }
}
