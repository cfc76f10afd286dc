//! A fast reader for the plain subset of YAML that Kubernetes manifests are written in: block
//! mappings and sequences, flow collections on one line, plain, quoted and block scalars.
//!
//! It answers only when it is sure to agree with the full YAML parser (serde-saphyr): anything
//! outside the subset — anchors, tags, multi-line plain or quoted scalars, complex keys, duplicate
//! keys, scalars whose type YAML versions disagree on (`yes`, `0777`, `1e3`) — returns `None`, and
//! the caller parses the document with serde-saphyr, which also reports errors with their line.
//! It exists for speed: manifests of 100k objects parse several times faster this way.

use serde_json::{Map, Number, Value};

/// Parses one YAML document, or returns `None` when the document is outside the subset.
pub fn parse(doc: &str) -> Option<Value> {
    let lines: Vec<Line<'_>> = doc.lines().map(Line::new).collect::<Option<_>>()?;
    let mut parser = Parser {
        lines,
        pos: 0,
        depth: 0,
    };
    let Some(first) = parser.next_content() else {
        return Some(Value::Null);
    };
    let indent = parser.lines[first].indent;
    let value = parser.node(indent)?;
    // Anything left over (less indented content, stray lines) is not ours to judge.
    parser.next_content().is_none().then_some(value)
}

#[derive(Clone, Copy)]
struct Line<'a> {
    indent: usize,
    /// The line without its indentation.
    text: &'a str,
    raw: &'a str,
}

impl<'a> Line<'a> {
    fn new(raw: &'a str) -> Option<Line<'a>> {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let text = raw.trim_start_matches(' ');
        // Tabs in indentation are an error in YAML: let the full parser say so.
        if text.starts_with('\t') && !text.trim().is_empty() {
            return None;
        }
        Some(Line {
            indent: raw.len() - text.len(),
            text,
            raw,
        })
    }

    /// Blank or comment-only.
    fn is_filler(&self) -> bool {
        let t = self.text.trim_end();
        t.is_empty() || t.starts_with('#')
    }
}

struct Parser<'a> {
    lines: Vec<Line<'a>>,
    pos: usize,
    depth: usize,
}

const MAX_DEPTH: usize = 64;

impl<'a> Parser<'a> {
    /// The index of the next line with content, skipping blank and comment lines.
    fn next_content(&mut self) -> Option<usize> {
        while self.pos < self.lines.len() && self.lines[self.pos].is_filler() {
            self.pos += 1;
        }
        (self.pos < self.lines.len()).then_some(self.pos)
    }

    /// A block node whose first line is at `indent`.
    fn node(&mut self, indent: usize) -> Option<Value> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let at = self.next_content()?;
        let line = self.lines[at];
        if line.indent != indent {
            return None;
        }
        let value = if is_sequence_entry(line.text) {
            self.sequence(indent)
        } else if split_key(line.text).is_some() {
            self.mapping(indent)
        } else {
            None
        };
        self.depth -= 1;
        value
    }

    fn mapping(&mut self, indent: usize) -> Option<Value> {
        let mut map = Map::new();
        while let Some(at) = self.next_content() {
            let line = self.lines[at];
            if line.indent < indent {
                break;
            }
            if line.indent > indent || is_sequence_entry(line.text) {
                return None;
            }
            let (key, rest) = split_key(line.text)?;
            self.pos += 1;
            let value = self.value_after_indicator(rest, indent, true)?;
            if map.insert(key, value).is_some() {
                return None;
            }
        }
        Some(Value::Object(map))
    }

    fn sequence(&mut self, indent: usize) -> Option<Value> {
        let mut items = Vec::new();
        while let Some(at) = self.next_content() {
            let line = self.lines[at];
            if line.indent < indent || (line.indent == indent && !is_sequence_entry(line.text)) {
                break;
            }
            if line.indent > indent {
                return None;
            }
            let rest = line.text[1..].trim_start_matches(' ');
            let column = indent + (line.text.len() - rest.len());
            if is_sequence_entry(rest) {
                return None;
            }
            if !rest.is_empty() && !rest.starts_with('#') && split_key(rest).is_some() {
                // `- key: value`: a mapping whose entries sit at the column after the dash.
                self.lines[at] = Line {
                    indent: column,
                    text: rest,
                    raw: line.raw,
                };
                items.push(self.node(column)?);
            } else {
                self.pos += 1;
                items.push(self.value_after_indicator(rest, indent, false)?);
            }
        }
        Some(Value::Array(items))
    }

    /// The value after `key:` or `- `, given the rest of the line. `parent` is the indentation
    /// of the key or dash.
    fn value_after_indicator(
        &mut self,
        rest: &str,
        parent: usize,
        in_mapping: bool,
    ) -> Option<Value> {
        let rest = rest.trim_matches(' ');
        if rest.is_empty() || rest.starts_with('#') {
            return match self.next_content() {
                Some(at) if self.lines[at].indent > parent => self.node(self.lines[at].indent),
                // A sequence may sit at the same indentation as its mapping key.
                Some(at)
                    if in_mapping
                        && self.lines[at].indent == parent
                        && is_sequence_entry(self.lines[at].text) =>
                {
                    self.sequence(parent)
                }
                _ => Some(Value::Null),
            };
        }
        let value = match rest.as_bytes()[0] {
            b'|' | b'>' => return self.block_scalar(rest, parent),
            b'{' | b'[' => {
                let mut flow = Flow {
                    text: rest,
                    pos: 0,
                    depth: 0,
                };
                let value = flow.value()?;
                flow.skip_spaces();
                let tail = &flow.text[flow.pos..];
                (tail.is_empty() || tail.starts_with('#')).then_some(value)?
            }
            b'"' => double_quoted_line(rest)?,
            b'\'' => single_quoted_line(rest)?,
            _ => plain_scalar(strip_comment(rest))?,
        };
        // A more indented line after a scalar would continue it: outside the subset.
        match self.next_content() {
            Some(at) if self.lines[at].indent > parent => None,
            _ => Some(value),
        }
    }

    fn block_scalar(&mut self, header: &str, parent: usize) -> Option<Value> {
        let header = strip_comment(header);
        let (folded, chomp) = match header {
            "|" => (false, Chomp::Clip),
            "|-" => (false, Chomp::Strip),
            "|+" => (false, Chomp::Keep),
            ">" => (true, Chomp::Clip),
            ">-" => (true, Chomp::Strip),
            ">+" => (true, Chomp::Keep),
            _ => return None,
        };
        let mut body: Vec<&str> = Vec::new();
        let mut block_indent = None;
        while self.pos < self.lines.len() {
            let line = self.lines[self.pos];
            if line.text.trim().is_empty() {
                // Spaces beyond the block indentation on an empty line are content: leave those
                // rare cases to the full parser.
                if block_indent.is_some_and(|b| line.raw.len() > b) {
                    return None;
                }
                body.push("");
                self.pos += 1;
                continue;
            }
            if line.indent <= parent {
                break;
            }
            let indent = *block_indent.get_or_insert(line.indent);
            if line.indent < indent {
                return None;
            }
            body.push(&line.raw[indent..]);
            self.pos += 1;
        }
        let trailing_blank = body.iter().rev().take_while(|l| l.is_empty()).count();
        let content = &body[..body.len() - trailing_blank];
        if content.first().is_some_and(|l| l.is_empty()) && folded {
            return None;
        }
        let mut text = if folded {
            fold(content)?
        } else {
            content.join("\n")
        };
        match chomp {
            Chomp::Strip => {}
            Chomp::Clip if !content.is_empty() => text.push('\n'),
            Chomp::Clip => {}
            Chomp::Keep => {
                if !content.is_empty() {
                    text.push('\n');
                }
                text.push_str(&"\n".repeat(trailing_blank));
            }
        }
        Some(Value::String(text))
    }
}

enum Chomp {
    Clip,
    Strip,
    Keep,
}

/// Folds the lines of a `>` scalar: line breaks between text become spaces, empty lines become
/// line breaks. More-indented lines keep their breaks in YAML; they are left to the full parser.
fn fold(lines: &[&str]) -> Option<String> {
    let mut out = String::new();
    let mut previous_was_text = false;
    for line in lines {
        if line.starts_with(' ') || line.starts_with('\t') {
            return None;
        }
        if line.is_empty() {
            out.push('\n');
            previous_was_text = false;
        } else {
            if previous_was_text {
                out.push(' ');
            }
            out.push_str(line);
            previous_was_text = true;
        }
    }
    Some(out)
}

fn is_sequence_entry(text: &str) -> bool {
    text == "-" || text.starts_with("- ") || text.starts_with("-\t")
}

/// Splits `key: rest` into the key and what follows the colon. Only plain and single-line quoted
/// keys are in the subset.
fn split_key(text: &str) -> Option<(String, &str)> {
    let (key, after) = match text.as_bytes().first()? {
        b'"' => {
            let end = closing_double_quote(text)?;
            (unescape_double(&text[1..end])?, &text[end + 1..])
        }
        b'\'' => {
            let end = closing_single_quote(text)?;
            (text[1..end].replace("''", "'"), &text[end + 1..])
        }
        b'?' | b'&' | b'*' | b'!' | b'|' | b'>' | b'%' | b'@' | b'`' | b'{' | b'[' | b'#'
        | b',' => return None,
        _ => {
            let colon = find_mapping_colon(text)?;
            let key = text[..colon].trim_end();
            if key.is_empty() || find_pair(key, b' ', b'#').is_some() || key == "<<" {
                return None;
            }
            return Some((key.to_owned(), &text[colon + 1..]));
        }
    };
    let after = after.trim_start_matches(' ');
    let rest = after.strip_prefix(':')?;
    (rest.is_empty() || rest.starts_with(' ')).then_some((key, rest))
}

/// The first `:` followed by a space or the end of the line.
fn find_mapping_colon(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (0..bytes.len()).find(|&i| bytes[i] == b':' && (i + 1 == bytes.len() || bytes[i + 1] == b' '))
}

/// A plain scalar without its trailing comment.
fn strip_comment(text: &str) -> &str {
    // A comment starts at a `#` after a space or a tab.
    let at = text
        .as_bytes()
        .windows(2)
        .position(|w| matches!(w, [b' ' | b'\t', b'#']));
    at.map_or(text, |at| &text[..at]).trim_end()
}

/// Where the two bytes `first`, `second` first occur together. A byte loop: `str::find` with a
/// two-byte pattern sets up a general substring search for every call, and this runs for
/// every key and scalar.
fn find_pair(text: &str, first: u8, second: u8) -> Option<usize> {
    text.as_bytes()
        .windows(2)
        .position(|w| w[0] == first && w[1] == second)
}

fn closing_double_quote(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn closing_single_quote(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            if bytes.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i);
        }
        i += 1;
    }
    None
}

/// A double-quoted scalar that opens and closes on this line, followed by nothing or a comment.
fn double_quoted_line(text: &str) -> Option<Value> {
    let end = closing_double_quote(text)?;
    only_comment_after(&text[end + 1..])?;
    unescape_double(&text[1..end]).map(Value::String)
}

fn single_quoted_line(text: &str) -> Option<Value> {
    let end = closing_single_quote(text)?;
    only_comment_after(&text[end + 1..])?;
    Some(Value::String(text[1..end].replace("''", "'")))
}

fn only_comment_after(tail: &str) -> Option<()> {
    let tail = tail.trim();
    (tail.is_empty() || tail.starts_with('#')).then_some(())
}

/// The common escapes; anything rarer is left to the full parser.
fn unescape_double(body: &str) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            '\\' => '\\',
            '"' => '"',
            '/' => '/',
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            _ => return None,
        });
    }
    Some(out)
}

/// Resolves a plain scalar the way every YAML version agrees on, or gives up.
fn plain_scalar(text: &str) -> Option<Value> {
    let first = text.chars().next()?;
    if matches!(
        first,
        '&' | '*'
            | '!'
            | '|'
            | '>'
            | '%'
            | '@'
            | '`'
            | '\''
            | '"'
            | '{'
            | '['
            | ']'
            | '}'
            | ','
            | '#'
            | '.'
    ) || (matches!(first, '-' | '?' | ':') && text[1..].starts_with([' ', '\t']))
        || find_pair(text, b':', b' ').is_some()
        || text.ends_with(':')
    {
        return None;
    }
    match text {
        "null" | "~" => return Some(Value::Null),
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        _ => {}
    }
    if ["null", "true", "false", "yes", "no", "on", "off", "y", "n"]
        .iter()
        .any(|word| text.eq_ignore_ascii_case(word))
    {
        return None;
    }
    if let Some(number) = decimal(text) {
        return Some(Value::Number(number));
    }
    // Anything else made only of number-ish characters (`0777`, `0x1F`, `1e3`, `1_000`, `1:30`,
    // `1.2.3`) is resolved differently by YAML 1.1 and 1.2: leave it to the full parser.
    let numberish = text.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-')
        && text.bytes().any(|b| b.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_hexdigit() || "xXoO._+-:".contains(c));
    if numberish {
        return None;
    }
    Some(Value::String(text.to_owned()))
}

/// `-?(0|[1-9][0-9]*)` as an integer, optionally with `.[0-9]+` as a float.
fn decimal(text: &str) -> Option<Number> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match digits.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (digits, None),
    };
    let int_ok = int == "0"
        || (!int.is_empty() && !int.starts_with('0') && int.bytes().all(|b| b.is_ascii_digit()));
    if !int_ok {
        return None;
    }
    match frac {
        None => text.parse::<i64>().ok().map(Number::from),
        Some(frac) if !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()) => {
            text.parse::<f64>().ok().and_then(Number::from_f64)
        }
        Some(_) => None,
    }
}

/// A flow collection on one line: `{a: b, c: [d, "e"]}`.
struct Flow<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl Flow<'_> {
    fn skip_spaces(&mut self) {
        while self.text[self.pos..].starts_with(' ') {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn value(&mut self) -> Option<Value> {
        self.skip_spaces();
        // Hostile input may nest thousands deep on one line: leave it to the full parser, which
        // enforces its own limits.
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let value = match self.peek()? {
            b'{' => self.mapping(),
            b'[' => self.sequence(),
            _ => self.scalar(false),
        };
        self.depth -= 1;
        value
    }

    fn mapping(&mut self) -> Option<Value> {
        self.pos += 1;
        let mut map = Map::new();
        loop {
            self.skip_spaces();
            if self.peek()? == b'}' {
                self.pos += 1;
                return Some(Value::Object(map));
            }
            let key = match self.scalar(true)? {
                Value::String(s) => s,
                _ => return None,
            };
            self.skip_spaces();
            if self.peek()? != b':' {
                return None;
            }
            self.pos += 1;
            self.skip_spaces();
            let value = match self.peek()? {
                b',' | b'}' => Value::Null,
                _ => self.value()?,
            };
            if map.insert(key, value).is_some() {
                return None;
            }
            self.skip_spaces();
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {}
                _ => return None,
            }
        }
    }

    fn sequence(&mut self) -> Option<Value> {
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_spaces();
            if self.peek()? == b']' {
                self.pos += 1;
                return Some(Value::Array(items));
            }
            items.push(self.value()?);
            self.skip_spaces();
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {}
                _ => return None,
            }
        }
    }

    /// A quoted or plain scalar inside a flow collection. Keys are always strings.
    fn scalar(&mut self, key: bool) -> Option<Value> {
        let rest = &self.text[self.pos..];
        match rest.as_bytes().first()? {
            b'"' => {
                let end = closing_double_quote(rest)?;
                self.pos += end + 1;
                unescape_double(&rest[1..end]).map(Value::String)
            }
            b'\'' => {
                let end = closing_single_quote(rest)?;
                self.pos += end + 1;
                Some(Value::String(rest[1..end].replace("''", "'")))
            }
            _ => {
                let bytes = rest.as_bytes();
                let mut end = 0;
                while end < bytes.len() {
                    let b = bytes[end];
                    if matches!(b, b',' | b'[' | b']' | b'{' | b'}' | b'#') {
                        break;
                    }
                    if b == b':'
                        && (end + 1 == bytes.len()
                            || matches!(bytes[end + 1], b' ' | b',' | b'}' | b']'))
                    {
                        break;
                    }
                    end += 1;
                }
                let text = rest[..end].trim_end();
                if text.is_empty() || bytes.get(end) == Some(&b'#') {
                    return None;
                }
                self.pos += end;
                if key {
                    if text.starts_with(['&', '*', '!', '?', '|', '>', '\'', '"', '%', '@', '`']) {
                        return None;
                    }
                    return Some(Value::String(text.to_owned()));
                }
                plain_scalar(text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The full parser's answer, for comparison.
    fn full(doc: &str) -> Value {
        serde_saphyr::from_str(doc).unwrap()
    }

    /// Given a document, when the fast reader answers, then it agrees with the full parser.
    fn agrees(doc: &str) -> bool {
        match parse(doc) {
            Some(fast) => {
                assert_eq!(fast, full(doc), "fast reader disagrees on:\n{doc}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn reads_a_typical_manifest() {
        let doc = r#"apiVersion: apps/v1
kind: Deployment   # a comment
metadata:
  name: chat
  labels: {app: chat, "team": 'search', tier: ""}
  annotations:
    hangar.dev/log-retention: "400d"
spec:
  replicas: 2
  template:
    spec:
      nodeSelector:
        nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.11.0@sha256:abc
        args: ["--model", meta-llama/Llama-3.1-8B, --max-model-len=8192]
        env:
        - {name: HF_HOME, value: /models}
        - name: RATIO
          value: "0.9"
        resources:
          limits: {nvidia.com/gpu: "1", memory: 64Gi, cpu: 0.5}
        ports:
        - containerPort: 8000
          protocol: TCP

      volumes: []
"#;
        assert!(agrees(doc), "the fast reader should take a plain manifest");
    }

    #[test]
    fn reads_block_scalars_like_the_full_parser() {
        for doc in [
            "script: |\n  set -e\n  vllm serve x\n\n  echo done\nnext: 1\n",
            "script: |-\n  a\n  b\n",
            "script: |+\n  a\n\n\nnext: 1\n",
            "text: >\n  folded\n  line\n\n  para\n",
            "text: >-\n  a\n  b\n",
            "items:\n- |\n  one\n  two\n- x\n",
            "cmd:\n- sh\n- -c\n- |\n  exec vllm serve \\\n    --port 8000\n",
        ] {
            assert!(agrees(doc), "{doc}");
        }
    }

    #[test]
    fn sequences_at_the_keys_indentation_and_nested_mappings() {
        for doc in [
            "a:\n- 1\n- b: 2\n  c: [x, y]\n- - nested\n",
            "a:\n- 1\n- b: 2\n  c: [x, y]\n",
            "list:\n  - name: a\n    value: b\n  - name: c\n",
            "- a\n- b: c\n",
            "empty:\nnull_value: ~\nbool: true\nneg: -3\nfloat: 2.5\nstr: 3a\n",
            "url: http://example.com:8080/path\nkey.with/slash: v\n",
            "tabbed: value\t# a comment after a tab\nhash: a#b\n",
        ] {
            agrees(doc);
        }
        assert!(parse("a:\n- 1\n- b: 2\n").is_some());
        assert!(
            agrees("tabbed: value\t# a comment after a tab\n"),
            "a comment after a tab is read"
        );
    }

    #[test]
    fn gives_up_where_yaml_versions_or_features_differ() {
        for doc in [
            "a: yes\n",
            "a: 0777\n",
            "a: 1e3\n",
            "a: 1.2.3\n",
            "a: &anchor x\nb: *anchor\n",
            "a: !!str 1\n",
            "a: multi\n  line plain\n",
            "a: \"open\n  quote\"\n",
            "a: 1\na: 2\n",
            "? complex\n: key\n",
            "<<: {a: 1}\n",
            "a: \"\\u00e9\"\n",
            "a: .inf\n",
            "a: True\n",
        ] {
            assert!(
                parse(doc).is_none(),
                "should leave to the full parser: {doc}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_exhausting_the_stack() {
        let deep = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(&deep).is_none());
        let mut block = String::new();
        for i in 0..10_000 {
            block.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
        }
        assert!(parse(&block).is_none());
    }

    #[test]
    fn malformed_documents_are_left_to_the_full_parser() {
        for doc in [
            "kind: [unclosed\n",
            "a: b: c\n",
            "a:\n  b: 1\n c: 2\n",
            "\tkind: x\n",
        ] {
            assert!(parse(doc).is_none(), "{doc}");
        }
    }

    #[test]
    fn agrees_with_the_full_parser_on_every_bundled_example() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut files = vec![root];
        let (mut answered, mut total) = (0, 0);
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for doc in text.split("\n---\n") {
                total += 1;
                answered += usize::from(agrees(doc));
            }
        }
        assert!(
            answered * 10 >= total * 9,
            "the fast reader answered {answered} of {total} documents"
        );
    }
}
