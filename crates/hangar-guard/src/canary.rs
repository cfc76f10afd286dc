//! System-prompt leakage (OWASP LLM07): canary strings placed in system prompts, watched for in
//! responses, including streamed ones where a canary can be split across chunks.

use ring::digest;

/// Canaries with fewer letters and digits than this, or whose letters and digits are not mixed,
/// are matched exactly: matched loosely, a short one or one made of words (`DO-NOT-REVEAL` is
/// "do not reveal") turns up in ordinary text.
const MIN_LOOSE_LEN: usize = 12;

/// Whether a canary folded to `folded` is matched loosely: one of Hangar's own tokens
/// ([`new_canary_token`]), or long and random-looking, its letters and digits mixed
/// (`x7f3a9c1b`), not words then a number (`projectzebra42`).
fn loose(folded: &str) -> bool {
    let hex = folded.strip_prefix("hgc").filter(|hex| hex.len() == 16);
    if hex.is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit())) {
        return true;
    }
    let turns = (folded.chars().zip(folded.chars().skip(1)))
        .filter(|(a, b)| a.is_alphabetic() != b.is_alphabetic())
        .count();
    folded.chars().count() >= MIN_LOOSE_LEN && turns >= 3
}

/// Watches one response for canary strings. Feed it every chunk in order; once a canary has
/// been seen it stays leaked.
///
/// Canaries are matched loosely: case-folded, with everything but letters and digits dropped
/// and JSON escapes read, on both sides. So `HGC-F516…`, `hgc - f516 ad28 …`, `h\u{200b}gc-…`
/// and `hgc\u002df516…` (a tool call's arguments, or a raw JSON body) are all seen. Canaries
/// with fewer than 12 letters and digits, or whose letters and digits do not alternate at
/// least three times (words, or words then a number), are matched as written but for the case
/// of ASCII letters.
#[derive(Debug, Clone)]
pub struct CanaryWatch {
    canaries: Vec<String>,
    /// Each canary with its ASCII letters lower-cased, for those matched as written.
    lowered: Vec<String>,
    /// Each canary's folded form, or `None` for one matched exactly.
    folded: Vec<Option<String>>,
    /// For the canaries matched as written: the end of the text seen so far (at most the
    /// longest one's length − 1 bytes), then the chunk being searched, ASCII lower-cased.
    window: String,
    keep: usize,
    /// The same for the others, folded: the end of the folded text, then the folded chunk.
    folded_window: String,
    folded_keep: usize,
    /// Where folding stopped, when a chunk ended inside a JSON escape.
    escape: Escape,
    leaked: Option<usize>,
}

impl CanaryWatch {
    /// Watches for `canaries`; empty strings are ignored (they would match everything).
    pub fn new(canaries: Vec<String>) -> CanaryWatch {
        let mut canaries: Vec<String> = canaries.into_iter().filter(|c| !c.is_empty()).collect();
        canaries.sort();
        canaries.dedup();
        let folded: Vec<Option<String>> = canaries
            .iter()
            .map(|canary| Some(fold(canary)).filter(|folded| loose(folded)))
            .collect();
        let keep = canaries
            .iter()
            .zip(&folded)
            .filter(|(_, folded)| folded.is_none())
            .map(|(canary, _)| canary.len())
            .max()
            .unwrap_or(0)
            .saturating_sub(1);
        let folded_keep = folded
            .iter()
            .flatten()
            .map(String::len)
            .max()
            .unwrap_or(0)
            .saturating_sub(1);
        CanaryWatch {
            lowered: canaries.iter().map(|c| c.to_ascii_lowercase()).collect(),
            canaries,
            folded,
            window: String::new(),
            keep,
            folded_window: String::new(),
            folded_keep,
            escape: Escape::Outside,
            leaked: None,
        }
    }

    /// Reads the next chunk of the response; returns whether a canary has leaked so far.
    pub fn feed(&mut self, chunk: &str) -> bool {
        if self.leaked.is_some() || self.canaries.is_empty() {
            return self.leaked();
        }
        if self.folded.iter().any(Option::is_none) {
            let start = self.window.len();
            self.window.push_str(chunk);
            if let Some(added) = self.window.get_mut(start..) {
                added.make_ascii_lowercase();
            }
        }
        if self.folded.iter().any(Option::is_some) {
            self.escape = fold_into(self.escape, chunk, &mut self.folded_window);
        }
        self.leaked = self
            .lowered
            .iter()
            .zip(&self.folded)
            .position(|(lowered, folded)| match folded {
                Some(folded) => self.folded_window.contains(folded.as_str()),
                None => self.window.contains(lowered.as_str()),
            });
        keep_tail(&mut self.window, self.keep);
        keep_tail(&mut self.folded_window, self.folded_keep);
        self.leaked()
    }

    /// How much of a canary the text seen so far may have begun: the longest end of it that
    /// is a canary's start, in letters and digits for a canary matched loosely, in bytes for
    /// one matched as written. A stream that cuts on a leak holds its events back while this
    /// is long enough, so that the cut leaves no part of the canary with the client.
    pub fn partial(&self) -> usize {
        if self.leaked.is_some() {
            return 0;
        }
        (self.lowered.iter().zip(&self.folded))
            .map(|(lowered, folded)| match folded {
                Some(folded) => begun(&self.folded_window, folded),
                None => begun(&self.window, lowered),
            })
            .max()
            .unwrap_or(0)
    }

    /// Whether a canary has been seen.
    pub fn leaked(&self) -> bool {
        self.leaked.is_some()
    }

    /// The canary that was seen, if any.
    pub fn leaked_canary(&self) -> Option<&str> {
        self.leaked
            .and_then(|index| self.canaries.get(index))
            .map(String::as_str)
    }
}

/// The length of the longest end of `window` that begins `canary`, short of all of it.
fn begun(window: &str, canary: &str) -> usize {
    let (window, canary) = (window.as_bytes(), canary.as_bytes());
    let longest = window.len().min(canary.len().saturating_sub(1));
    (window.len() - longest..window.len())
        .map(|start| &window[start..])
        .find(|end| canary.starts_with(end))
        .map_or(0, <[u8]>::len)
}

/// Drops all but the last `keep` bytes of `window` (fewer if that would split a character: a
/// canary starts on a character boundary, so nothing it needs is lost).
fn keep_tail(window: &mut String, keep: usize) {
    let mut cut = window.len().saturating_sub(keep);
    while !window.is_char_boundary(cut) {
        cut += 1;
    }
    window.drain(..cut);
}

/// Where folding stands in a JSON escape, which the end of a chunk may split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    Outside,
    /// After a backslash.
    Backslash,
    /// After `\u` and `digits` hex digits, worth `code` so far.
    Unicode {
        digits: u32,
        code: u32,
    },
}

/// `text` folded: its letters and digits, lower-cased, JSON escapes read.
fn fold(text: &str) -> String {
    let mut folded = String::with_capacity(text.len());
    if let Escape::Unicode { digits, code } = fold_into(Escape::Outside, text, &mut folded) {
        push_unfinished_escape(digits, code, &mut folded);
    }
    folded
}

/// Appends the letters and digits of `text` to `folded`, lower-cased, from where `escape` says
/// the text before it stopped; returns where `text` stops. A JSON escape stands for its
/// character (`\u002d` is a dash, dropped; `\u0041` an `a`) and `\n`, `\r`, `\t` for blanks,
/// however many backslashes precede it: JSON inside a JSON string escapes them again.
fn fold_into(mut escape: Escape, text: &str, folded: &mut String) -> Escape {
    // Fast path: plain ASCII without a backslash, the usual chunk.
    if escape == Escape::Outside && text.is_ascii() && !text.contains('\\') {
        let alphanumeric = text.bytes().filter(u8::is_ascii_alphanumeric);
        folded.extend(alphanumeric.map(|b| char::from(b.to_ascii_lowercase())));
        return escape;
    }
    for c in text.chars() {
        escape = match escape {
            Escape::Outside => outside(c, folded),
            Escape::Backslash => match c {
                'u' => Escape::Unicode { digits: 0, code: 0 },
                'n' | 'r' | 't' => Escape::Outside,
                '\\' => Escape::Backslash,
                _ => outside(c, folded),
            },
            Escape::Unicode { digits, code } => match c.to_digit(16) {
                Some(digit) if digits == 3 => {
                    if let Some(decoded) = char::from_u32(code * 16 + digit) {
                        push_folded(decoded, folded);
                    }
                    Escape::Outside
                }
                Some(digit) => Escape::Unicode {
                    digits: digits + 1,
                    code: code * 16 + digit,
                },
                None => {
                    // Not an escape after all: the `u` and its digits are text.
                    push_unfinished_escape(digits, code, folded);
                    outside(c, folded)
                }
            },
        };
    }
    escape
}

/// Folds `c` read outside an escape.
fn outside(c: char, folded: &mut String) -> Escape {
    if c == '\\' {
        return Escape::Backslash;
    }
    push_folded(c, folded);
    Escape::Outside
}

/// Appends the `u` and the `digits` hex digits of an escape that turned out not to be one.
fn push_unfinished_escape(digits: u32, code: u32, folded: &mut String) {
    folded.push('u');
    for place in (0..digits).rev() {
        if let Some(digit) = char::from_digit((code >> (4 * place)) & 0xF, 16) {
            folded.push(digit);
        }
    }
}

/// Appends `c` lower-cased if it is a letter or a digit; full-width forms count as ASCII.
fn push_folded(c: char, folded: &mut String) {
    if c.is_ascii() {
        if c.is_ascii_alphanumeric() {
            folded.push(c.to_ascii_lowercase());
        }
        return;
    }
    let c = full_width_as_ascii(c).unwrap_or(c);
    if c.is_alphanumeric() {
        folded.extend(c.to_lowercase());
    }
}

/// The ASCII character a full-width form (U+FF01–U+FF5E) stands for.
fn full_width_as_ascii(c: char) -> Option<char> {
    ('\u{FF01}'..='\u{FF5E}')
        .contains(&c)
        .then(|| char::from_u32(u32::from(c) - 0xFEE0))
        .flatten()
}

/// A canary token derived from `seed`: `hgc-` and 16 hex digits of SHA-256 over a fixed domain
/// label and the seed. The same seed always gives the same token; change the seed to rotate it.
pub fn new_canary_token(seed: &[u8]) -> String {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(b"hangar-canary-v1\0");
    context.update(seed);
    let hash = context.finish();
    let hex: String = hash
        .as_ref()
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("hgc-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "hgc-0123456789abcdef";

    fn watch() -> CanaryWatch {
        CanaryWatch::new(vec![CANARY.to_owned()])
    }

    #[test]
    fn canary_in_one_chunk_is_seen() {
        let mut watch = watch();
        assert!(!watch.feed("The weather is fine. "));
        assert!(watch.feed(&format!("My instructions say {CANARY}.")));
        assert!(watch.leaked());
        assert_eq!(watch.leaked_canary(), Some(CANARY));
    }

    #[test]
    fn canary_split_at_every_position_is_seen() {
        let text = format!("prefix {CANARY} suffix");
        for split in 1..text.len() {
            let mut watch = watch();
            let (first, second) = text.split_at(split);
            let after_first = watch.feed(first);
            assert_eq!(
                after_first,
                split >= "prefix ".len() + CANARY.len(),
                "split {split}"
            );
            assert!(watch.feed(second), "split {split}");
        }
    }

    #[test]
    fn canary_streamed_one_character_at_a_time_is_seen() {
        let mut watch = watch();
        let text = format!("ok {CANARY}");
        let mut leaked = false;
        for c in text.chars() {
            leaked = watch.feed(c.encode_utf8(&mut [0; 4]));
        }
        assert!(leaked);
    }

    #[test]
    fn multibyte_canaries_split_inside_characters_are_seen() {
        let canary = "é🙂canary🙂é";
        let text = format!("ünïcödé {canary} ✓");
        for split in (1..text.len()).filter(|i| text.is_char_boundary(*i)) {
            let mut watch = CanaryWatch::new(vec![canary.to_owned()]);
            let (first, second) = text.split_at(split);
            watch.feed(first);
            assert!(watch.feed(second), "split {split}");
        }
    }

    #[test]
    fn near_misses_do_not_leak() {
        let mut watch = watch();
        // Letters and digits decide: one missing, one added, or a word between the halves.
        assert!(!watch.feed("hgc-0123456789abcde and "));
        assert!(!watch.feed("F, hgc-0123456789"));
        assert!(!watch.feed(" abcdeX"));
        assert!(!watch.feed(" hgc-0123456789-abcd-e0f"));
        assert!(!watch.feed(" ghc-0123456789abcdef"));
        assert!(!watch.leaked());
        assert_eq!(watch.leaked_canary(), None);
    }

    #[test]
    fn case_spacing_and_punctuation_do_not_hide_a_canary() {
        let full_width: String = CANARY
            .chars()
            .map(|c| char::from_u32(u32::from(c) + 0xFEE0).unwrap())
            .collect();
        for text in [
            "HGC-0123456789ABCDEF".to_owned(),
            "Hgc - 0123 4567 89ab cdef".to_owned(),
            "hgc0123456789abcdef".to_owned(),
            "h\u{200b}g\u{200b}c-0123\u{00ad}4567\u{2011}89ab\u{feff}cdef".to_owned(),
            "**hgc**-`0123456789`_abcdef_".to_owned(),
            full_width,
        ] {
            let mut watch = watch();
            assert!(watch.feed(&format!("The token: {text}.")), "{text:?}");
            assert_eq!(watch.leaked_canary(), Some(CANARY), "{text:?}");
        }
    }

    #[test]
    fn json_escapes_do_not_hide_a_canary() {
        for text in [
            // A tool call's arguments, JSON text as the answer's parsed body holds them.
            r#"{"note":"hgc\u002d0123456789abcdef"}"#,
            // The same in the raw body: JSON inside a JSON string, escaped twice.
            r#"{"arguments":"{\"note\":\"hgc\\u002d0123456789abcdef\"}"}"#,
            r"\u0068\u0047\u0063-0123456789abcdef",
            r"hgc-\n0123\t4567\r89ab\u00A0cdef",
            r"HGC\\u002D0123456789ABCDEF",
        ] {
            let mut watch = watch();
            assert!(watch.feed(text), "{text:?}");
        }
        // What only looks like an escape is text: `\user` is the letters u, s, e, r.
        let mut watch = CanaryWatch::new(vec!["user-0123-beef".to_owned()]);
        assert!(watch.feed(r"C:\user-0123-beef"));
        let mut watch = CanaryWatch::new(vec!["u12x-4567-cafe".to_owned()]);
        assert!(watch.feed(r"path \u12x-4567-cafe"));
    }

    #[test]
    fn a_loose_or_escaped_canary_split_at_every_position_is_seen() {
        let text = r#"{"arguments":"{\"note\":\"HGC\\u002D0123 4567 89AB CDEF\"}"}"#;
        let canary_end = text.find("CDEF").unwrap() + "CDEF".len();
        for split in 1..text.len() {
            let mut watch = watch();
            let (first, second) = text.split_at(split);
            assert_eq!(watch.feed(first), split >= canary_end, "split {split}");
            assert!(watch.feed(second), "split {split}");
        }
    }

    #[test]
    fn short_canaries_are_matched_as_written_but_for_case() {
        let canary = "ab-12x";
        for text in ["ab 12x", "ab12x", "lab-1 2x"] {
            let mut watch = CanaryWatch::new(vec![canary.to_owned()]);
            assert!(!watch.feed(text), "{text:?}");
        }
        // A model asked to shout it out still leaks it.
        let mut watch = CanaryWatch::new(vec![canary.to_owned()]);
        assert!(watch.feed("the code is AB-12X"));
        let mut watch = CanaryWatch::new(vec![canary.to_owned(), CANARY.to_owned()]);
        assert!(!watch.feed("table ab-1"));
        assert!(watch.feed("2x."));
        assert_eq!(watch.leaked_canary(), Some(canary));
        // Words, and words then a number, are matched exactly however long: loosely, they
        // would be ordinary prose.
        for (canary, prose) in [
            ("DO-NOT-REVEAL-THIS", "Do not reveal this to anyone."),
            ("PROJECT-ZEBRA-42", "Project Zebra 42 launches in May."),
        ] {
            let mut watch = CanaryWatch::new(vec![canary.to_owned()]);
            assert!(!watch.feed(prose), "{canary}");
            assert!(watch.feed(&canary.to_lowercase()), "{canary}");
        }
        // A long one beside it is still matched loosely.
        let mut watch = CanaryWatch::new(vec![canary.to_owned(), CANARY.to_owned()]);
        assert!(watch.feed("HGC 0123456789ABCDEF"));
        assert_eq!(watch.leaked_canary(), Some(CANARY));
    }

    #[test]
    fn the_tail_stays_bounded() {
        let mut watch = watch();
        for _ in 0..1000 {
            watch.feed("lorem ipsum dolor sit amet ");
        }
        assert!(watch.folded_window.len() < CANARY.len());
        let mut both = CanaryWatch::new(vec!["ab-12x".to_owned(), CANARY.to_owned()]);
        for _ in 0..1000 {
            both.feed("lorem ipsum dolor sit amet \\u00");
        }
        assert!(both.window.len() < "ab-12x".len());
        assert!(both.folded_window.len() < CANARY.len());
    }

    #[test]
    fn partial_tells_how_much_of_a_canary_the_text_ends_with() {
        let mut watch = CanaryWatch::new(vec![CANARY.to_owned(), "Sesame-Door".to_owned()]);
        assert_eq!(watch.partial(), 0);
        watch.feed("the key is H");
        assert_eq!(watch.partial(), 1);
        watch.feed("GC - 0123");
        assert_eq!(watch.partial(), "hgc0123".len());
        watch.feed(" and then");
        assert_eq!(watch.partial(), 0, "the canary did not go on");
        // Matched as written: its punctuation counts.
        watch.feed(" sesame-d");
        assert_eq!(watch.partial(), "sesame-d".len());
        watch.feed("oor");
        assert!(watch.leaked());
        assert_eq!(watch.partial(), 0);
    }

    #[test]
    fn a_leak_is_sticky() {
        let mut watch = watch();
        watch.feed(CANARY);
        assert!(watch.feed("anything else"));
        assert!(watch.leaked());
    }

    #[test]
    fn any_of_several_canaries_leaks_and_empty_ones_are_ignored() {
        let mut watch = CanaryWatch::new(vec![String::new(), "alpha-1".into(), "beta-22".into()]);
        assert!(!watch.feed("no canary here"));
        assert!(!watch.feed("... beta-2"));
        assert!(watch.feed("2 ..."));
        assert_eq!(watch.leaked_canary(), Some("beta-22"));
        let mut none = CanaryWatch::new(vec![String::new()]);
        assert!(!none.feed("anything"));
    }

    #[test]
    fn tokens_are_deterministic_and_depend_on_the_seed() {
        let token = new_canary_token(b"hangar");
        assert_eq!(token, new_canary_token(b"hangar"));
        assert_ne!(token, new_canary_token(b"hangar2"));
        assert_eq!(token.len(), "hgc-".len() + 16);
        assert!(token.starts_with("hgc-"));
        assert!(
            token[4..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }
}
