//! JSON on the request path, faster than the general tools where it counts:
//! - [`Json`], a tree for reading model servers' answers: strings without escapes borrow from
//!   the bytes, objects are lists of members. Parsing an answer into a `serde_json::Value` (a
//!   `BTreeMap` and an owned `String` per string) was a tenth of the gateway's time per request.
//! - [`write_object`], which writes the body for the model server: long prompts are mostly text
//!   with nothing to escape, and copying it sixteen bytes at a time is several times faster than
//!   `serde_json`'s byte-by-byte escaping (which was 15% of a request with a 4 KiB prompt).

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// One JSON value.
#[derive(Debug, PartialEq)]
pub enum Json<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A non-negative integer.
    U64(u64),
    /// Any other number.
    OtherNumber,
    /// A string.
    Str(Cow<'a, str>),
    /// An array.
    Array(Vec<Json<'a>>),
    /// An object's members in their order.
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// Parses one JSON document (nothing but white space may follow it).
    pub fn parse(bytes: &'a [u8]) -> Result<Json<'a>, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let value = deserializer.deserialize_any(JsonVisitor)?;
        deserializer.end()?;
        Ok(value)
    }

    /// The member `key` of an object; the last one when the key repeats, as serde_json does.
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(members) => members
                .iter()
                .rev()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value),
            _ => None,
        }
    }

    /// Where the string member `key` is in `document`, the bytes this value was parsed from,
    /// quotes included; `None` when it is missing, not a string, or written with escapes (then
    /// it is not a slice of `document`).
    pub fn str_span(&self, document: &[u8], key: &str) -> Option<Range<usize>> {
        let Some(Json::Str(Cow::Borrowed(text))) = self.get(key) else {
            return None;
        };
        let start = (text.as_ptr() as usize).checked_sub(document.as_ptr() as usize)?;
        let end = start.checked_add(text.len())?;
        let quoted =
            document.get(start.checked_sub(1)?) == Some(&b'"') && document.get(end) == Some(&b'"');
        quoted.then(|| start - 1..end + 1)
    }

    /// The text of a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(text) => Some(text),
            _ => None,
        }
    }

    /// A non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Json::U64(n) => Some(*n),
            _ => None,
        }
    }
}

struct JsonVisitor;

impl<'de> DeserializeSeed<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Json<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Json<'de>, E> {
        Ok(Json::U64(value))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Json<'de>, E> {
        Ok(Json::OtherNumber)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Json<'de>, E> {
        Ok(Json::OtherNumber)
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(text)))
    }

    fn visit_str<E>(self, text: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(text.to_owned())))
    }

    fn visit_string<E>(self, text: String) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(text)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(JsonVisitor)? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members = Vec::new();
        while let Some(key) = map.next_key_seed(KeyVisitor)? {
            members.push((key, map.next_value_seed(JsonVisitor)?));
        }
        Ok(Json::Object(members))
    }
}

/// An object's key, borrowed when it has no escapes.
struct KeyVisitor;

impl<'de> DeserializeSeed<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Cow<'de, str>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E>(self, key: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(key.to_owned()))
    }
}

/// Writes `object` as compact JSON to the end of `out`.
pub fn write_object(object: &Map<String, Value>, out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (key, value)) in object.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(key, out);
        out.push(b':');
        write_value(value, out);
    }
    out.push(b'}');
}

/// `document` with the JSON string at `span` (from [`Json::str_span`]) replaced by `text`;
/// `None` when it says `text` already.
pub fn replace_str(document: &[u8], span: Range<usize>, text: &str) -> Option<Vec<u8>> {
    let before = document.get(..span.start)?;
    let current = document.get(span.start + 1..span.end.checked_sub(1)?)?;
    let after = document.get(span.end..)?;
    if current == text.as_bytes() {
        return None;
    }
    let mut out = Vec::with_capacity(document.len() + text.len());
    out.extend_from_slice(before);
    write_str(text, &mut out);
    out.extend_from_slice(after);
    Some(out)
}

/// `document`, a JSON object, written anew with its string member `key` set to `text`: for what
/// [`replace_str`] cannot do in place (a string written with escapes, data split over lines).
/// `None` when `document` is not an object with that string member, or it says `text` already.
pub fn with_str_member(document: &[u8], key: &str, text: &str) -> Option<Vec<u8>> {
    let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(document) else {
        return None;
    };
    match object.get_mut(key) {
        Some(Value::String(current)) if current != text => text.clone_into(current),
        _ => return None,
    }
    let mut out = Vec::with_capacity(document.len() + text.len());
    write_object(&object, &mut out);
    Some(out)
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // serde_json's own number text: integers as they were, floats shortest round-trip.
        Value::Number(number) => out.extend_from_slice(number.to_string().as_bytes()),
        Value::String(text) => write_str(text, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(object) => write_object(object, out),
    }
}

/// A JSON string: clean runs of sixteen bytes are copied whole (the check compiles to a few
/// vector instructions); a run with something to escape goes byte by byte.
fn write_str(text: &str, out: &mut Vec<u8>) {
    const RUN: usize = 16;
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut clean_from = 0;
    let mut at = 0;
    while at < bytes.len() {
        if let Some(run) = bytes.get(at..at + RUN)
            && !run
                .iter()
                .fold(false, |escape, &b| escape | needs_escape(b))
        {
            at += RUN;
            continue;
        }
        let b = bytes[at];
        if needs_escape(b) {
            out.extend_from_slice(&bytes[clean_from..at]);
            escape(b, out);
            clean_from = at + 1;
        }
        at += 1;
    }
    out.extend_from_slice(&bytes[clean_from..]);
    out.push(b'"');
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

fn escape(b: u8, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0xf)],
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_serde_json_reads() {
        let text = br#" {"a": [1, -2, 2.5, true, null, "x\"y"], "b": {"c": "d"}, "a": "last"} "#;
        let json = Json::parse(text).unwrap();
        assert_eq!(json.get("a").and_then(Json::as_str), Some("last"));
        let Some(Json::Object(members)) = json.get("b") else {
            panic!("b is an object")
        };
        assert_eq!(members.len(), 1);
        let Json::Object(all) = &json else { panic!() };
        assert_eq!(
            all[0].1,
            Json::Array(vec![
                Json::U64(1),
                Json::OtherNumber,
                Json::OtherNumber,
                Json::Bool(true),
                Json::Null,
                Json::Str(Cow::Borrowed("x\"y")),
            ])
        );
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let json = Json::parse(br#"{"plain": "text", "esc\u0061ped": "a\nb"}"#).unwrap();
        let Json::Object(members) = json else {
            panic!()
        };
        assert!(matches!(members[0].0, Cow::Borrowed("plain")));
        assert!(matches!(members[0].1, Json::Str(Cow::Borrowed("text"))));
        assert_eq!(members[1].0, "escaped");
        assert_eq!(members[1].1.as_str(), Some("a\nb"));
    }

    #[test]
    fn rejects_what_is_not_one_json_document() {
        for bad in [
            &b""[..],
            b"{",
            b"{} {}",
            b"[1,]",
            b"nul",
            b"{\"a\" 1}",
            b"\"\\x\"",
        ] {
            assert!(
                Json::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(Json::parse(b" 3 ").is_ok());
    }

    #[test]
    fn writes_what_serde_json_reads_back_the_same() {
        let awkward = "plain text long enough to fill several runs of sixteen bytes, then \
                       \"quotes\", a back\\slash, \n\r\t, \u{1}\u{8}\u{c}\u{1f}\u{7f}, é, 日本, 🦀, and \
                       an escape at the very end\"";
        let body = serde_json::json!({
            "model": "m",
            "messages": [{"role": "user", "content": awkward}, {"role": "system", "content": ""}],
            "max_tokens": 64,
            "temperature": 0.7,
            "big": 18446744073709551615u64,
            "negative": -3,
            "flags": [true, false, null],
            "nested": {"a\"key\n": {"deeper": [1.5e300, "x"]}},
        });
        let serde_json::Value::Object(object) = body.clone() else {
            panic!()
        };
        let mut out = Vec::new();
        write_object(&object, &mut out);
        let back: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, body);
        assert_eq!(
            out,
            serde_json::to_vec(&body).unwrap(),
            "the same bytes as serde_json"
        );
        // Every length around the sixteen-byte runs, with the escape at every place.
        for len in 0..40 {
            for at in 0..len {
                let mut text = "a".repeat(len);
                text.replace_range(at..at + 1, "\"");
                let mut out = Vec::new();
                write_str(&text, &mut out);
                assert_eq!(out, serde_json::to_vec(&text).unwrap(), "{text}");
            }
        }
    }
}
