//! Where things are in a golden-set file: a second, lenient parse that keeps only the shape of
//! the document and the line of every node, so problems found after parsing (a bad regex, a
//! duplicate name) can name their line too.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// Lines of the cases and of their fields.
#[derive(Debug, Default)]
pub(crate) struct LineIndex {
    /// The line of the `cases` sequence.
    pub cases_line: Option<u64>,
    cases: Vec<CaseLines>,
    /// The keys of `defaults`.
    defaults: Option<BTreeMap<String, Spanned<Node>>>,
    /// The file's own keys (`defaults`, `cases`, and any unknown one).
    top: Option<BTreeMap<String, Spanned<Node>>>,
}

#[derive(Debug)]
struct CaseLines {
    line: u64,
    name: Option<String>,
    fields: Option<BTreeMap<String, Spanned<Node>>>,
}

impl LineIndex {
    /// Indexes `text`; a document too broken to index gives an empty index (its parse error
    /// carries its own line).
    pub fn of(text: &str) -> LineIndex {
        let Ok(root) = serde_saphyr::from_str::<Node>(text) else {
            return LineIndex::default();
        };
        let defaults = match root.get("defaults").map(|d| &d.value) {
            Some(Node::Map(fields)) => Some(fields.clone()),
            _ => None,
        };
        let top = match &root {
            Node::Map(fields) => Some(fields.clone()),
            _ => None,
        };
        let Some(cases) = root.get("cases") else {
            return LineIndex {
                defaults,
                top,
                ..LineIndex::default()
            };
        };
        let cases_line = known(cases.referenced.line());
        let Node::Seq(items) = &cases.value else {
            return LineIndex {
                cases_line,
                cases: Vec::new(),
                defaults,
                top,
            };
        };
        let cases = items
            .iter()
            .map(|item| {
                let fields = match &item.value {
                    Node::Map(fields) => Some(fields.clone()),
                    _ => None,
                };
                let name =
                    fields
                        .as_ref()
                        .and_then(|f| f.get("name"))
                        .and_then(|n| match &n.value {
                            Node::Text(name) => Some(name.clone()),
                            _ => None,
                        });
                CaseLines {
                    line: item.referenced.line(),
                    name,
                    fields,
                }
            })
            .collect();
        LineIndex {
            cases_line,
            cases,
            defaults,
            top,
        }
    }

    /// The line of `path` (dotted, e.g. `expect.regex`) in the case at `index`, or of the
    /// nearest enclosing node that exists.
    pub fn field_line(&self, index: usize, path: &str) -> Option<u64> {
        let case = self.cases.get(index)?;
        descend(case.line, case.fields.as_ref(), path)
    }

    /// The line of `path` inside `defaults` (e.g. `headers.x-team`).
    pub fn defaults_line(&self, path: &str) -> Option<u64> {
        descend(0, self.defaults.as_ref(), path)
    }

    /// The line of `path` from the top of the file (e.g. `defaults.timeout_ms`).
    pub fn top_line(&self, path: &str) -> Option<u64> {
        descend(0, self.top.as_ref(), path)
    }

    /// The name of the case whose text holds `line`.
    pub fn case_at(&self, line: u64) -> Option<&str> {
        self.cases
            .iter()
            .rev()
            .find(|c| c.line > 0 && c.line <= line)
            .and_then(|c| c.name.as_deref())
    }
}

/// Follows `path` down from a node at `line` with `fields`, as far as it exists.
fn descend(
    mut line: u64,
    mut fields: Option<&BTreeMap<String, Spanned<Node>>>,
    path: &str,
) -> Option<u64> {
    for key in path.split('.') {
        let Some(node) = fields.and_then(|f| f.get(key)) else {
            break;
        };
        line = node.referenced.line();
        fields = match &node.value {
            Node::Map(inner) => Some(inner),
            _ => None,
        };
    }
    known(line)
}

/// serde-saphyr reports line 0 when it does not know.
fn known(line: u64) -> Option<u64> {
    (line > 0).then_some(line)
}

/// A YAML node reduced to what locating needs.
#[derive(Debug, Clone)]
enum Node {
    Map(BTreeMap<String, Spanned<Node>>),
    Seq(Vec<Spanned<Node>>),
    Text(String),
    Other,
}

impl Node {
    fn get(&self, key: &str) -> Option<&Spanned<Node>> {
        match self {
            Node::Map(fields) => fields.get(key),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut fields = BTreeMap::new();
        while let Some(key) = map.next_key::<Key>()? {
            let value = map.next_value::<Spanned<Node>>()?;
            if let Key(Some(key)) = key {
                fields.insert(key, value);
            }
        }
        Ok(Node::Map(fields))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Node, E> {
        Ok(Node::Text(text.to_owned()))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Other)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Other)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Other)
    }
}

/// A mapping key: kept when it is text, ignored otherwise.
struct Key(Option<String>);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Key(match deserializer.deserialize_any(NodeVisitor)? {
            Node::Text(text) => Some(text),
            _ => None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "defaults:\n  model: m\ncases:\n  - name: first\n    kind: chat\n    expect:\n      regex: 'a('\n  - name: second\n    kind: chat\n    request:\n      messages: []\n";

    #[test]
    fn cases_and_their_fields_have_lines() {
        let index = LineIndex::of(FILE);
        assert_eq!(index.cases_line, Some(4));
        assert_eq!(index.field_line(0, "expect.regex"), Some(7));
        assert_eq!(index.field_line(1, "request.messages"), Some(11));
        // A missing field falls back to its nearest parent.
        assert_eq!(index.field_line(1, "request.stream"), Some(11));
        assert_eq!(index.field_line(1, "expect.text"), Some(8));
        assert_eq!(index.top_line("defaults.model"), Some(2));
        assert_eq!(index.top_line("nope"), None);
    }

    #[test]
    fn a_line_belongs_to_the_case_above_it() {
        let index = LineIndex::of(FILE);
        assert_eq!(index.case_at(6), Some("first"));
        assert_eq!(index.case_at(9), Some("second"));
        assert_eq!(index.case_at(2), None);
    }

    #[test]
    fn broken_yaml_gives_an_empty_index() {
        let index = LineIndex::of("cases: [\n");
        assert_eq!(index.field_line(0, "name"), None);
    }
}
