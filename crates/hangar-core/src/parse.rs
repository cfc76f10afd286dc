//! Turning the text of a manifest or a `kubectl get -o yaml|json` dump into objects, each with
//! the file and line it starts on. A bad document becomes one `LoadError`; the others still load.

use std::cell::OnceCell;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::object::Origin;
use crate::snapshot::{LoadError, Object};

/// The objects decoded from one file, and what in it could not be read.
#[derive(Debug, Default)]
pub struct ParsedFile {
    pub objects: Vec<(Object, Origin)>,
    pub errors: Vec<LoadError>,
    /// Documents with neither `apiVersion` nor `kind`: other YAML that lives beside manifests
    /// (Helm values, tool configurations), skipped rather than reported as broken objects.
    pub not_objects: Vec<Origin>,
    /// Lists read (`kind: List`, a JSON array), empty ones included.
    pub lists: usize,
}

/// Parses YAML (multi-document) or JSON text. `file` names the source in origins and errors.
pub fn parse_text(file: &Arc<str>, text: &str) -> ParsedFile {
    // Editors on Windows may start a file with a byte-order mark; it is not part of the YAML.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parsed = ParsedFile::default();
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        parse_json(file, text, &mut parsed);
        if parsed.errors.is_empty() {
            return parsed;
        }
        // A YAML stream may start with a document in JSON style, `---` then block YAML: the
        // separators say it is YAML, whose reader reports each bad document on its own.
        if has_document_marker(text) {
            return parse_yaml(file, text);
        }
        // YAML flow style (`{apiVersion: v1, …}`) also starts with a brace: when the text is not
        // JSON at all, read it as YAML, and keep the JSON error only if that fails too.
        if !parsed.objects.is_empty() {
            return parsed;
        }
        let yaml = parse_yaml(file, text);
        if yaml.errors.is_empty() {
            return yaml;
        }
        return parsed;
    }
    parse_yaml(file, text)
}

/// Parses the bytes of a file. Text that is not all UTF-8 is still read: each document holding
/// a byte that is not is an error at that byte's line, and the other documents load.
pub fn parse_bytes(file: &Arc<str>, bytes: &[u8]) -> ParsedFile {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_text(file, text),
        Err(_) => parse_mostly_utf8(file, bytes),
    }
}

fn parse_mostly_utf8(file: &Arc<str>, bytes: &[u8]) -> ParsedFile {
    let bad_lines = lines_not_utf8(bytes);
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut parsed = ParsedFile::default();
    for (first_line, doc) in yaml_documents(text) {
        let end = first_line + (doc.lines().count() as u32).max(1);
        match bad_lines.iter().find(|line| (first_line..end).contains(line)) {
            Some(&line) => parsed.errors.push(LoadError {
                origin: Origin::file(file.clone(), line),
                object: None,
                message: format!(
                    "not UTF-8 text: a byte on line {line} is not UTF-8 (is the file in another encoding?), so the document starting on line {first_line} is not read"
                ),
            }),
            None => parse_yaml_document(file, first_line, doc, &mut parsed),
        }
    }
    parsed
}

/// The 1-based lines holding bytes that are not UTF-8.
fn lines_not_utf8(bytes: &[u8]) -> Vec<u32> {
    let newlines = |b: &[u8]| b.iter().filter(|c| **c == b'\n').count() as u32;
    let mut lines = Vec::new();
    let mut rest = bytes;
    let mut line = 1;
    while let Err(e) = std::str::from_utf8(rest) {
        let valid = e.valid_up_to();
        let bad_end = valid + e.error_len().unwrap_or(rest.len() - valid);
        line += newlines(&rest[..valid]);
        if lines.last() != Some(&line) {
            lines.push(line);
        }
        line += newlines(&rest[valid..bad_end]);
        rest = &rest[bad_end..];
    }
    lines
}

fn parse_yaml(file: &Arc<str>, text: &str) -> ParsedFile {
    let mut parsed = ParsedFile::default();
    let documents = yaml_documents(text);
    // Objects are large (kilobytes each): growing the list would copy them again and again.
    parsed.objects.reserve(documents.len());
    for (line, doc) in documents {
        parse_yaml_document(file, line, doc, &mut parsed);
    }
    parsed
}

/// Splits a YAML stream on `---` lines, returning each document's text and its first line.
/// A `---` at column 0 is always a document marker: content of a block scalar is indented.
/// Content after the marker (`--- {kind: …}`) belongs to the next document.
fn yaml_documents(text: &str) -> Vec<(u32, &str)> {
    let mut docs = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 1u32;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let line_no = index as u32 + 1;
        let bare = line.trim_end();
        if let Some(rest) = marker_rest(bare, "---") {
            docs.push((start_line, &text[start_byte..offset]));
            if rest.is_empty() || rest.starts_with('#') {
                start_byte = offset + line.len();
                start_line = line_no + 1;
            } else {
                start_byte = offset + "---".len();
                start_line = line_no;
            }
        } else if marker_rest(bare, "...").is_some() {
            docs.push((start_line, &text[start_byte..offset]));
            start_byte = offset + line.len();
            start_line = line_no + 1;
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start_byte..]));
    docs.retain(|(_, doc)| !is_blank_yaml(doc));
    docs
}

/// What follows a document marker on its line, trimmed, when `line` is that marker: `---` alone
/// or followed by a space or a tab.
fn marker_rest<'l>(line: &'l str, marker: &str) -> Option<&'l str> {
    let rest = line.strip_prefix(marker)?;
    if rest.is_empty() {
        return Some(rest);
    }
    rest.starts_with([' ', '\t']).then(|| rest.trim_start())
}

fn has_document_marker(text: &str) -> bool {
    text.lines()
        .any(|line| marker_rest(line.trim_end(), "---").is_some())
}

fn is_blank_yaml(doc: &str) -> bool {
    doc.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#')
    })
}

fn parse_yaml_document(file: &Arc<str>, first_line: u32, doc: &str, parsed: &mut ParsedFile) {
    match yaml_value(doc) {
        Ok(Value::Null) => {}
        Ok(value) => {
            // A template whose actions all sit in quotes is valid YAML, its values placeholders.
            // Only documents with `{{` pay for the look.
            let helm_line = if doc.contains("{{") {
                helm_action_line(doc)
            } else {
                None
            };
            match helm_line {
                Some(helm_line) => parsed.errors.push(LoadError {
                    origin: Origin::file(file.clone(), first_line),
                    object: None,
                    message: helm_message(first_line + helm_line),
                }),
                None => add_value(file, first_line, value, doc, parsed),
            }
        }
        Err(err) => {
            let line = err
                .location()
                .map(|loc| first_line + (loc.line() as u32).saturating_sub(1))
                .unwrap_or(first_line);
            let message = match helm_template_line(doc) {
                Some(helm_line) => helm_message(first_line + helm_line),
                None => format!("malformed YAML: {}", yaml_error_message(&err)),
            };
            parsed.errors.push(LoadError {
                origin: Origin::file(file.clone(), line),
                object: None,
                message,
            });
        }
    }
}

/// One YAML document's value. Most manifests are plain block YAML, which the fast reader takes;
/// the rest (and every error) goes through the full parser.
pub(crate) fn yaml_value(doc: &str) -> Result<Value, serde_saphyr::Error> {
    match crate::fast_yaml::parse(doc) {
        Some(value) => Ok(value),
        None => serde_saphyr::from_str::<Value>(doc),
    }
}

/// The error without the source snippet and location suffix: we print our own `file:line`.
pub(crate) fn yaml_error_message(err: &serde_saphyr::Error) -> String {
    let options = serde_saphyr::render_options! {
        snippets: serde_saphyr::SnippetMode::Off,
    };
    let rendered = err.render_with_options(options);
    let first = rendered.lines().next().unwrap_or_default();
    let message = without_location_suffix(first);
    // The library's advice to its own callers means nothing to someone fixing a manifest.
    message
        .replace(", set DuplicateKeyPolicy in Options if acceptable", "")
        .replace(
            "use from_str_multiple or from_str_multiple_with_options",
            "separate documents with a `---` line",
        )
        .replace(
            "budget breached: ",
            "too large to read safely (an alias bomb?): ",
        )
}

/// `message` without a trailing ` at line N, column M`: we print our own `file:line`. A location
/// inside the message (`… at line 1, column 32 (defined at line 5, column 7) …`) stays.
fn without_location_suffix(message: &str) -> &str {
    let Some(cut) = message.rfind(" at line ") else {
        return message;
    };
    let suffix = &message[cut + " at line ".len()..];
    let is_location = suffix
        .split([',', ' '])
        .filter(|word| !word.is_empty())
        .enumerate()
        .all(|(i, word)| match i {
            0 | 2 => word.bytes().all(|b| b.is_ascii_digit()),
            1 => word == "column",
            _ => false,
        });
    if is_location {
        &message[..cut]
    } else {
        message
    }
}

fn helm_message(line: u32) -> String {
    format!(
        "this looks like a Helm template (`{{{{ … }}}}` on line {line}); render it with `helm template` first"
    )
}

/// What only a Helm template's actions name: its built-in objects and its own functions. Other
/// Go templates (alerting rules, notification texts) are data a manifest may well hold.
const HELM_ACTION_WORDS: &[&str] = &[
    ".Values",
    ".Release",
    ".Chart",
    ".Capabilities",
    ".Files",
    ".Template",
    "include ",
    "tpl ",
    "toYaml",
    "required ",
];

/// The 0-based line of the first action in `doc` that can only be Helm's, if any.
fn helm_action_line(doc: &str) -> Option<u32> {
    doc.lines()
        .position(|line| {
            let Some((_, action)) = line.split_once("{{") else {
                return false;
            };
            !line.trim_start().starts_with('#')
                && HELM_ACTION_WORDS.iter().any(|w| action.contains(w))
        })
        .map(|index| index as u32)
}

/// The 0-based line of the first Helm template action in `doc`, if any.
fn helm_template_line(doc: &str) -> Option<u32> {
    doc.lines()
        .position(|line| {
            let line = line.trim_start();
            !line.starts_with('#') && line.contains("{{") && line.contains("}}")
        })
        .map(|index| index as u32)
}

fn parse_json(file: &Arc<str>, text: &str, parsed: &mut ParsedFile) {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    loop {
        let start = stream.byte_offset();
        match stream.next() {
            None => break,
            Some(Ok(value)) => {
                let skipped = text[start..].len() - text[start..].trim_start().len();
                let line = line_at(text, start + skipped);
                // Item offsets count from the document's first line, not from the blank lines
                // before it.
                let doc = &text[start + skipped..stream.byte_offset()];
                add_value(file, line, value, doc, parsed);
            }
            Some(Err(err)) => {
                parsed.errors.push(LoadError {
                    origin: Origin::file(file.clone(), err.line() as u32),
                    object: None,
                    message: format!("malformed JSON: {err}"),
                });
                // A JSON stream cannot resynchronise after a syntax error.
                break;
            }
        }
    }
}

fn line_at(text: &str, byte: usize) -> u32 {
    text.as_bytes()[..byte.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count() as u32
        + 1
}

/// Adds one document: a single object, or the items of a `kind: List` (or `*List`) dump.
fn add_value(file: &Arc<str>, first_line: u32, value: Value, doc: &str, parsed: &mut ParsedFile) {
    let again = OnceCell::new();
    let source = Source {
        doc,
        path: &[],
        again: &again,
    };
    let value = match document(value) {
        Document::Items(items) => {
            parsed.lists += 1;
            let lines = item_lines(doc, items.len());
            return add_items(file, first_line, items, &lines, source, parsed);
        }
        Document::BadItems => return bad_items(file, first_line, parsed),
        Document::Object(value) => value,
    };
    // Point at the first line with content, not at a leading blank line or comment.
    let skip = doc
        .lines()
        .take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        .count();
    let line = first_line + skip as u32;
    if let Value::Object(map) = &value
        && !map.contains_key("apiVersion")
        && !map.contains_key("kind")
    {
        parsed.not_objects.push(Origin::file(file.clone(), line));
        return;
    }
    add_object(file, line, value, source, parsed);
}

/// What a document (or a list's item) holds.
enum Document {
    Object(Value),
    /// The items of a bare JSON array or of a `kind: List` (or `*List`), a typed list's items
    /// given their `apiVersion` and kind.
    Items(Vec<Value>),
    /// A List whose `items` is not a sequence.
    BadItems,
}

fn document(value: Value) -> Document {
    if let Value::Array(items) = value {
        return Document::Items(items);
    }
    if !is_list(&value) {
        return Document::Object(value);
    }
    let item_type = typed_list_item(&value);
    let Value::Object(mut list) = value else {
        return Document::Items(Vec::new());
    };
    match list.remove("items") {
        Some(Value::Array(mut items)) => {
            if let Some((api_version, kind)) = item_type {
                items
                    .iter_mut()
                    .for_each(|item| fill_type(item, &api_version, &kind));
            }
            Document::Items(items)
        }
        Some(Value::Null) | None => Document::Items(Vec::new()),
        Some(_) => Document::BadItems,
    }
}

fn bad_items(file: &Arc<str>, line: u32, parsed: &mut ParsedFile) {
    parsed.errors.push(LoadError {
        origin: Origin::file(file.clone(), line),
        object: None,
        message: "`items` of a List must be a sequence".into(),
    });
}

/// Adds the items of a list at `source`, each at its line (`first_line` plus its offset in
/// `lines`, when known). An item that is a list itself (`kubectl get -o json` of a List file)
/// has its own items added, all at its line.
fn add_items(
    file: &Arc<str>,
    first_line: u32,
    items: Vec<Value>,
    lines: &[u32],
    list: Source<'_>,
    parsed: &mut ParsedFile,
) {
    for (index, item) in items.into_iter().enumerate() {
        let line = lines
            .get(index)
            .map_or(first_line, |offset| first_line + offset);
        let path = [list.path, &[index]].concat();
        let source = Source {
            path: &path,
            ..list
        };
        match document(item) {
            Document::Object(item) => add_object(file, line, item, source, parsed),
            Document::Items(inner) => add_items(file, line, inner, &[], source, parsed),
            Document::BadItems => bad_items(file, line, parsed),
        }
    }
}

/// Where an object's text is, to read it again when it fails to decode.
#[derive(Clone, Copy)]
struct Source<'d> {
    doc: &'d str,
    /// Its place among the document's items (and theirs, for a list in a list); empty when
    /// the document is the object.
    path: &'d [usize],
    /// The document read again, once for all the objects in it that fail: a dump with many
    /// broken items is not read again for each.
    again: &'d OnceCell<Option<Value>>,
}

/// The object at `source` read once more, as the first reading gave it.
fn read_again(source: Source<'_>) -> Option<Value> {
    let mut value = source
        .again
        .get_or_init(|| {
            serde_json::from_str(source.doc)
                .ok()
                .or_else(|| yaml_value(source.doc).ok())
        })
        .as_ref()?;
    let mut item_type = None;
    for &index in source.path {
        item_type = typed_list_item(value);
        let items = match value {
            Value::Array(items) => items,
            list if is_list(list) => list.get("items")?.as_array()?,
            _ => return None,
        };
        value = items.get(index)?;
    }
    let mut object = value.clone();
    if let Some((api_version, kind)) = item_type {
        fill_type(&mut object, &api_version, &kind);
    }
    Some(object)
}

/// For a typed list (`PodList`, `DeploymentList`), the `apiVersion` and kind of its items. The
/// API server leaves them off each item, and `kubectl cluster-info dump` prints lists as the
/// server sends them.
fn typed_list_item(list: &Value) -> Option<(String, String)> {
    let kind = list.get("kind")?.as_str()?.strip_suffix("List")?;
    let api_version = list.get("apiVersion")?.as_str()?;
    (!kind.is_empty()).then(|| (api_version.to_owned(), kind.to_owned()))
}

fn fill_type(item: &mut Value, api_version: &str, kind: &str) {
    if let Value::Object(map) = item {
        map.entry("apiVersion")
            .or_insert_with(|| Value::String(api_version.to_owned()));
        map.entry("kind")
            .or_insert_with(|| Value::String(kind.to_owned()));
    }
}

fn is_list(value: &Value) -> bool {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    kind.ends_with("List") && value.get("items").is_some()
}

fn add_object(
    file: &Arc<str>,
    line: u32,
    mut value: Value,
    source: Source<'_>,
    parsed: &mut ParsedFile,
) {
    let origin = Origin::file(file.clone(), line);
    let name = object_label(&value);
    if let Some(note) = value.as_object_mut().and_then(crate::removed_api::upgrade) {
        parsed.errors.push(LoadError {
            origin: origin.clone(),
            object: name.clone(),
            message: note,
        });
    }
    let again = || {
        let mut value = read_again(source)?;
        if let Some(object) = value.as_object_mut() {
            crate::removed_api::upgrade(object);
        }
        Some(value)
    };
    match Object::decode_or_explain(value, again) {
        Ok(object) if is_nameless(object.meta()) => parsed.errors.push(LoadError {
            origin,
            object: Some(nameless_label(&object)),
            message: "no `metadata.name`: Kubernetes rejects it, so it is not audited".into(),
        }),
        Ok(object) => {
            for message in crate::rejected::rejected_values(&object) {
                parsed.errors.push(LoadError {
                    origin: origin.clone(),
                    object: name.clone(),
                    message: format!("{message}; Kubernetes rejects it"),
                });
            }
            parsed.objects.push((object, origin));
        }
        Err(message) => parsed.errors.push(LoadError {
            origin,
            object: name,
            message,
        }),
    }
}

/// No name, and none for the API server to generate (`generateName`, as `kubectl create` takes).
fn is_nameless(meta: &ObjectMeta) -> bool {
    meta.name.as_deref().is_none_or(str::is_empty)
        && meta.generate_name.as_deref().is_none_or(str::is_empty)
}

/// `Deployment in ml`, or the kind alone for a cluster-scoped object.
fn nameless_label(object: &Object) -> String {
    let kind = object.kind();
    match object.meta().namespace.as_deref() {
        Some(namespace) if !namespace.is_empty() => format!("{kind} in {namespace}"),
        _ => kind.to_owned(),
    }
}

/// `kind namespace/name` as far as the raw value tells, to name an object that failed to decode.
fn object_label(value: &Value) -> Option<String> {
    let name = value.pointer("/metadata/name")?.as_str()?;
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("object");
    Some(
        match value.pointer("/metadata/namespace").and_then(Value::as_str) {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        },
    )
}

/// The 0-based line offsets, within `doc`, where each item of its list starts.
///
/// Lists come from `kubectl get -o yaml|json`, whose layout is regular: the items are the
/// entries indented like the first one after `items:` (YAML `- `, JSON `{`). When the count does
/// not match, items are located at the list itself rather than at a wrong line.
fn item_lines(doc: &str, expected: usize) -> Vec<u32> {
    let mut lines = doc.lines().enumerate();
    let json_array_root = doc.trim_start().starts_with('[');
    if !json_array_root {
        lines.by_ref().find(|(_, line)| {
            let t = line.trim_start();
            t.starts_with("items:") || t.starts_with("\"items\"")
        });
    }
    let mut starts = Vec::with_capacity(expected);
    let mut marker: Option<(usize, char)> = None;
    for (index, line) in lines {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let Some(first) = trimmed.chars().next() else {
            continue;
        };
        match marker {
            None if first == '-' || first == '{' => {
                marker = Some((indent, first));
                starts.push(index as u32);
            }
            Some((at, ch)) if indent == at && first == ch => starts.push(index as u32),
            _ => {}
        }
    }
    if starts.len() == expected {
        starts
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::KubeObject;

    fn parse(text: &str) -> ParsedFile {
        parse_text(&Arc::from("test.yaml"), text)
    }

    fn lines(parsed: &ParsedFile) -> Vec<u32> {
        parsed
            .objects
            .iter()
            .map(|(_, o)| o.line.unwrap_or(0))
            .collect()
    }

    #[test]
    fn items_of_typed_lists_take_the_lists_type() {
        // As the API server sends lists and `kubectl cluster-info dump` prints them.
        let parsed = parse(
            r#"{"kind": "DeploymentList", "apiVersion": "apps/v1", "items": [
                {"metadata": {"name": "a", "namespace": "ml"}, "spec": {"selector": {}, "template": {}}}
            ]}"#,
        );
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert!(matches!(parsed.objects[0].0, Object::Deployment(_)));
    }

    #[test]
    fn multi_document_yaml_keeps_each_documents_line() {
        let parsed = parse(
            "# leading comment\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n",
        );
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(lines(&parsed), vec![2, 8]);
    }

    #[test]
    fn content_on_the_document_marker_line_is_read() {
        let parsed = parse(
            "--- {apiVersion: v1, kind: Namespace, metadata: {name: inline}}\n--- # the next one\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n",
        );
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let names: Vec<_> = parsed
            .objects
            .iter()
            .map(|(o, _)| o.meta().name.clone())
            .collect();
        assert_eq!(names, [Some("inline".into()), Some("b".into())]);
        assert_eq!(lines(&parsed), vec![1, 3]);
    }

    #[test]
    fn a_marker_followed_by_a_tab_separates_documents() {
        let parsed = parse(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\t# b\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n",
        );
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(lines(&parsed), vec![1, 6]);
    }

    #[test]
    fn a_malformed_document_is_reported_at_its_line_and_the_rest_still_loads() {
        let parsed = parse(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: [unclosed\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: c\n",
        );
        assert_eq!(parsed.objects.len(), 2);
        assert_eq!(parsed.errors.len(), 1);
        let err = &parsed.errors[0];
        assert!(err.message.starts_with("malformed YAML"), "{}", err.message);
        assert!((6..=8).contains(&err.origin.line.unwrap_or(0)), "{err:?}");
    }

    #[test]
    fn a_byte_order_mark_and_crlf_line_ends_are_read() {
        let parsed =
            parse("\u{feff}apiVersion: v1\r\nkind: Namespace\r\nmetadata:\r\n  name: a\r\n");
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.objects[0].0.meta().name.as_deref(), Some("a"));
    }

    #[test]
    fn hostile_nesting_is_an_error_not_a_crash() {
        let yaml = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\ndata: {}{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(parse(&yaml).errors.len(), 1);
        let json = format!(
            "{{\"kind\": {}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(parse_text(&Arc::from("deep.json"), &json).errors.len(), 1);
    }

    #[test]
    fn yaml_in_flow_style_is_not_mistaken_for_json() {
        let parsed = parse("{apiVersion: v1, kind: Namespace, metadata: {name: flow}}\n");
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.objects[0].0.meta().name.as_deref(), Some("flow"));
        let broken = parse_text(&Arc::from("x.json"), "{\"kind\": \"Namespace\",, }");
        assert!(
            broken.errors[0].message.starts_with("malformed JSON"),
            "{:?}",
            broken.errors
        );
    }

    #[test]
    fn a_yaml_stream_whose_first_document_is_json_is_read_whole() {
        let parsed = parse(
            "{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"a\"}}\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n",
        );
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(lines(&parsed), vec![1, 3]);
    }

    #[test]
    fn a_helm_template_that_parses_as_yaml_is_still_named_as_such() {
        let parsed = parse(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: \"{{ .Release.Name }}-svc\"\n  namespace: '{{ .Release.Namespace }}'\n",
        );
        assert_eq!(
            parsed.objects.len(),
            1,
            "the template is not audited as if rendered"
        );
        assert_eq!(parsed.errors.len(), 1, "{:?}", parsed.errors);
        assert!(
            parsed.errors[0].message.contains("helm template"),
            "{:?}",
            parsed.errors
        );
        assert!(
            parsed.errors[0].message.contains("line 9"),
            "{:?}",
            parsed.errors
        );
        assert_eq!(parsed.errors[0].origin.line, Some(6));
    }

    #[test]
    fn go_templates_that_are_not_helm_are_data() {
        // Alerting rules and notification templates hold `{{ }}` as their content.
        let parsed = parse(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: alerts\ndata:\n  summary: \"{{ $labels.instance }} is down ({{ $value }})\"\n",
        );
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.objects.len(), 1);
    }

    #[test]
    fn yaml_errors_speak_of_the_manifest_not_of_the_library() {
        let duplicate =
            parse("apiVersion: v1\nkind: Namespace\nkind: Namespace\nmetadata: {name: a}\n");
        let message = &duplicate.errors[0].message;
        assert_eq!(message, "malformed YAML: duplicate mapping key: kind");
        let bomb: String = std::iter::once("a: &a [x, x, x, x, x, x, x, x, x]\n".to_owned())
            .chain((b'b'..=b'i').map(|c| {
                let prev = (c - 1) as char;
                let c = c as char;
                format!("{c}: &{c} [{}]\n", vec![format!("*{prev}"); 9].join(", "))
            }))
            .collect();
        let message = &parse(&bomb).errors[0].message;
        assert!(!message.contains("Options"), "{message}");
        assert!(message.ends_with(")"), "the message is not cut: {message}");
    }

    #[test]
    fn helm_templates_are_named_as_such() {
        let parsed = parse(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ include \"x.fullname\" . }}\n{{- if .Values.x }}\n",
        );
        assert_eq!(parsed.errors.len(), 1);
        assert!(
            parsed.errors[0].message.contains("helm template"),
            "{}",
            parsed.errors[0].message
        );
        assert!(
            parsed.errors[0].message.contains("line 4"),
            "{}",
            parsed.errors[0].message
        );
    }

    #[test]
    fn an_object_without_a_name_is_an_error_naming_its_kind() {
        let nameless = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {namespace: ml}\nspec: {template: {}}\n";
        let parsed = parse(&format!("{nameless}---\n{nameless}"));
        assert!(parsed.objects.is_empty());
        assert_eq!(parsed.errors.len(), 2, "{:?}", parsed.errors);
        assert_eq!(parsed.errors[1].origin.line, Some(6));
        assert_eq!(parsed.errors[1].object.as_deref(), Some("Deployment in ml"));
        assert!(
            parsed.errors[1].message.contains("metadata.name"),
            "{:?}",
            parsed.errors
        );
        let generated = parse(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {generateName: eval-}\nspec: {template: {}}\n",
        );
        assert!(generated.errors.is_empty(), "{:?}", generated.errors);
    }

    #[test]
    fn an_object_without_kind_is_an_error_naming_it() {
        let parsed = parse("apiVersion: v1\nmetadata:\n  name: orphan\n");
        assert_eq!(parsed.errors.len(), 1);
        assert_eq!(parsed.errors[0].message, "object has no `kind`");
        assert_eq!(parsed.errors[0].origin.line, Some(1));
    }

    #[test]
    fn yaml_with_neither_api_version_nor_kind_is_skipped_not_an_error() {
        // Helm values and tool configurations live beside manifests.
        let parsed = parse(
            "# values\nreplicaCount: 2\nimage: {repository: vllm/vllm-openai}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: ml}\n---\n[1, 2]\n",
        );
        assert_eq!(parsed.objects.len(), 1);
        let skipped: Vec<Option<u32>> = parsed.not_objects.iter().map(|o| o.line).collect();
        assert_eq!(skipped, [Some(2)]);
        // A sequence's items are still read as objects, and are none.
        assert_eq!(parsed.errors.len(), 2, "{:?}", parsed.errors);
        assert!(parsed.errors.iter().all(|e| e.origin.line == Some(9)));
    }

    #[test]
    fn yaml_list_items_point_at_their_own_lines() {
        let parsed = parse(
            "apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: a\n- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: b\nkind: List\nmetadata:\n  resourceVersion: \"\"\n",
        );
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(lines(&parsed), vec![3, 7]);
    }

    #[test]
    fn json_list_items_point_at_their_own_lines() {
        let text = r#"{
    "apiVersion": "v1",
    "items": [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "a"}
        },
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "b"}
        }
    ],
    "kind": "List"
}"#;
        let parsed = parse_text(&Arc::from("dump.json"), text);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(lines(&parsed), vec![4, 9]);
        let names: Vec<_> = parsed
            .objects
            .iter()
            .map(|(o, _)| o.meta().name.clone().unwrap_or_default())
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn unknown_kinds_are_kept_as_dynamic_objects() {
        let parsed = parse(
            "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: m\n  namespace: ml\nspec:\n  predictor:\n    model:\n      storageUri: s3://x\n",
        );
        let (Object::Other(isvc), _) = &parsed.objects[0] else {
            panic!("expected a dynamic object")
        };
        assert_eq!(isvc.group(), "serving.kserve.io");
        assert_eq!(isvc.object_ref().to_string(), "InferenceService/ml/m");
        assert_eq!(
            isvc.str_at("spec.predictor.model.storageUri"),
            Some("s3://x")
        );
    }

    #[test]
    fn secret_values_are_dropped_at_the_door() {
        let parsed = parse(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{\"stringData\": {\"token\": \"hf_abcdefghijklmnop\"}}'\nstringData:\n  token: hf_abcdefghijklmnop\n",
        );
        let (Object::Secret(secret), _) = &parsed.objects[0] else {
            panic!("expected a Secret")
        };
        let data = secret.string_data.as_ref().unwrap();
        assert_eq!(data.get("token").map(String::as_str), Some(""));
        let annotations = secret.metadata.annotations.clone().unwrap_or_default();
        assert!(!annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
    }

    #[test]
    fn a_wrongly_typed_field_is_an_error_naming_the_object() {
        let parsed = parse(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: three\n",
        );
        assert_eq!(parsed.errors.len(), 1);
        assert_eq!(
            parsed.errors[0].object.as_deref(),
            Some("Deployment shop/web")
        );
        assert!(
            parsed.errors[0].message.starts_with("Deployment:"),
            "{}",
            parsed.errors[0].message
        );
    }

    #[test]
    fn a_type_error_names_the_field_wherever_the_object_sits() {
        let deployment = |replicas: &str, port: &str| {
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {replicas}\n  template:\n    spec:\n      containers:\n        - name: a\n          ports:\n            - containerPort: {port}\n"
            )
        };
        let message = |parsed: &ParsedFile| {
            assert_eq!(parsed.errors.len(), 1, "{:?}", parsed.errors);
            parsed.errors[0].message.clone()
        };
        let alone = parse(&deployment("three", "8000"));
        assert_eq!(
            message(&alone),
            "Deployment: `spec.replicas`: invalid type: string \"three\", expected i32"
        );
        let nested = parse(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n{}",
            deployment("1", "http")
        ));
        assert_eq!(nested.objects.len(), 1);
        assert!(
            message(&nested).starts_with(
                "Deployment: `spec.template.spec.containers[0].ports[0].containerPort`: invalid type"
            ),
            "{}",
            message(&nested)
        );
        assert_eq!(nested.errors[0].origin.line, Some(6));
        // The second item of a typed list, whose items carry no kind of their own.
        let list = parse(
            "apiVersion: apps/v1\nkind: DeploymentList\nitems:\n  - metadata: {name: a}\n  - metadata: {name: b}\n    spec: {replicas: [1]}\n",
        );
        assert_eq!(list.objects.len(), 1);
        assert!(
            message(&list).starts_with("Deployment: `spec.replicas`: invalid type: sequence"),
            "{}",
            message(&list)
        );
        assert_eq!(list.errors[0].origin.line, Some(5));
        let json = parse(
            r#"[{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}, "spec": {"ports": [{"port": "80"}]}}]"#,
        );
        assert!(
            message(&json).starts_with("Service: `spec.ports[0].port`: invalid type: string"),
            "{}",
            message(&json)
        );
        // A kind Hangar does not type is read only as far as its metadata.
        let custom = parse(
            "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: a\n  labels: [x]\n",
        );
        assert!(
            message(&custom).starts_with("InferenceService: `metadata.labels`: invalid type"),
            "{}",
            message(&custom)
        );
        // A removed API version is read as the current one, and so is its failing field.
        let removed = parse(&deployment("three", "8000").replace("apps/v1", "extensions/v1beta1"));
        assert!(
            removed.errors.iter().any(|e| e
                .message
                .starts_with("Deployment: `spec.replicas`: invalid type")),
            "{:?}",
            removed.errors
        );
    }

    #[test]
    fn a_secret_that_fails_to_decode_never_shows_its_values() {
        let parsed = parse(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata: hunter2\nstringData: [hunter3]\n",
        );
        assert_eq!(parsed.errors.len(), 1, "{:?}", parsed.errors);
        let message = &parsed.errors[0].message;
        assert!(
            message.starts_with("Secret: `data`: invalid type"),
            "{message}"
        );
        assert!(!message.contains("hunter"), "{message}");
    }

    #[test]
    fn a_list_inside_a_list_is_read_whole() {
        let parsed = parse(
            "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Namespace\n    metadata: {name: a}\n  - apiVersion: apps/v1\n    kind: DeploymentList\n    items:\n      - metadata: {name: b, namespace: a}\n      - metadata: {name: c, namespace: a}\n        spec: {replicas: x}\n",
        );
        let names: Vec<_> = parsed
            .objects
            .iter()
            .map(|(o, origin)| (o.kind().to_owned(), o.meta().name.clone(), origin.line))
            .collect();
        assert_eq!(
            names,
            [
                ("Namespace".into(), Some("a".into()), Some(4)),
                ("Deployment".into(), Some("b".into()), Some(7)),
            ]
        );
        assert_eq!(parsed.errors.len(), 1, "{:?}", parsed.errors);
        assert!(
            parsed.errors[0]
                .message
                .starts_with("Deployment: `spec.replicas`: invalid type"),
            "{}",
            parsed.errors[0].message
        );
    }
}
