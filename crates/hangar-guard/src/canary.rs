//! System-prompt leakage (OWASP LLM07): canary strings placed in system prompts, watched for in
//! responses, including streamed ones where a canary can be split across chunks.

use ring::digest;

/// Watches one response for canary strings. Feed it every chunk in order; once a canary has
/// been seen it stays leaked.
#[derive(Debug, Clone)]
pub struct CanaryWatch {
    canaries: Vec<String>,
    /// The end of the text seen so far (at most the longest canary's length − 1 bytes), then the
    /// chunk being searched.
    window: String,
    keep: usize,
    leaked: Option<usize>,
}

impl CanaryWatch {
    /// Watches for `canaries`; empty strings are ignored (they would match everything).
    pub fn new(canaries: Vec<String>) -> CanaryWatch {
        let mut canaries: Vec<String> = canaries.into_iter().filter(|c| !c.is_empty()).collect();
        canaries.sort();
        canaries.dedup();
        let keep = canaries
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(0)
            .saturating_sub(1);
        CanaryWatch {
            canaries,
            window: String::new(),
            keep,
            leaked: None,
        }
    }

    /// Reads the next chunk of the response; returns whether a canary has leaked so far.
    pub fn feed(&mut self, chunk: &str) -> bool {
        if self.leaked.is_some() || self.canaries.is_empty() {
            return self.leaked();
        }
        self.window.push_str(chunk);
        self.leaked = self
            .canaries
            .iter()
            .position(|canary| self.window.contains(canary.as_str()));
        self.keep_tail();
        self.leaked()
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

    /// Drops all but the last `keep` bytes (fewer if that would split a character: a canary
    /// starts on a character boundary, so nothing it needs is lost).
    fn keep_tail(&mut self) {
        let mut cut = self.window.len().saturating_sub(self.keep);
        while !self.window.is_char_boundary(cut) {
            cut += 1;
        }
        self.window.drain(..cut);
    }
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
        assert!(!watch.feed("hgc-0123456789abcde"));
        assert!(!watch.feed("F and hgc-0123456789"));
        assert!(!watch.feed(" abcdeX"));
        assert!(!watch.leaked());
        assert_eq!(watch.leaked_canary(), None);
    }

    #[test]
    fn the_tail_stays_bounded() {
        let mut watch = watch();
        for _ in 0..1000 {
            watch.feed("lorem ipsum dolor sit amet ");
        }
        assert!(watch.window.len() < CANARY.len());
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
