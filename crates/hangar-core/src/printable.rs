//! Text read from manifests, made safe to show on a terminal or in Markdown.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with its control characters (escape sequences, carriage returns, newlines) and the
/// bidirectional overrides written out as `\u{1b}`, so that a name or argument in a manifest can
/// neither drive the reader's terminal nor forge lines of a report. Borrowed when there is none.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            let _ = write!(shown, "\\u{{{:x}}}", u32::from(c));
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_written_out_and_plain_text_is_borrowed() {
        assert_eq!(
            printable("chat\x1b[2J\r\nx\u{202e}"),
            "chat\\u{1b}[2J\\u{d}\\u{a}x\\u{202e}"
        );
        assert!(matches!(
            printable("Deployment/ml/chat ü"),
            Cow::Borrowed(_)
        ));
    }
}
