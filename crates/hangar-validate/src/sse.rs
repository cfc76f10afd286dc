//! Server-sent events, as OpenAI-compatible servers stream them: `data: {json}` lines, a blank
//! line after each event, and `data: [DONE]` at the end. Bytes are fed as they arrive, in chunks
//! that may split a line anywhere.

/// An incremental SSE reader that yields the `data` of each complete event.
#[derive(Debug, Default)]
pub struct SseReader {
    /// Bytes of a line not yet ended.
    partial: Vec<u8>,
    /// The data lines of the event being read.
    data: Vec<String>,
}

/// The stream is not valid SSE.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SseError(pub String);

impl SseReader {
    /// Feeds received bytes; returns the data of every event they complete, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<String>, SseError> {
        let mut events = Vec::new();
        for &byte in bytes {
            if byte != b'\n' {
                self.partial.push(byte);
                continue;
            }
            let mut line = std::mem::take(&mut self.partial);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8(line)
                .map_err(|_| SseError("the stream is not UTF-8 text".into()))?;
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        Ok(events)
    }

    /// Whether bytes of an unfinished event are pending (the stream stopped mid-event).
    pub fn has_pending(&self) -> bool {
        !self.partial.is_empty() || !self.data.is_empty()
    }

    fn line(&mut self, line: &str) -> Option<String> {
        if line.is_empty() {
            // A blank line ends an event; one without data is dispatched as nothing.
            return (!self.data.is_empty()).then(|| std::mem::take(&mut self.data).join("\n"));
        }
        if line.starts_with(':') {
            return None; // a comment, e.g. a keep-alive
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        if field == "data" {
            self.data
                .push(value.strip_prefix(' ').unwrap_or(value).to_owned());
        }
        // `event`, `id` and `retry` carry nothing an OpenAI-compatible answer needs.
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_joined() {
        let mut reader = SseReader::default();
        assert!(reader.feed(b"data: {\"a\"").unwrap().is_empty());
        assert!(reader.has_pending());
        let events = reader.feed(b":1}\r\n\r\ndata: [DONE]\n\n").unwrap();
        assert_eq!(events, ["{\"a\":1}", "[DONE]"]);
        assert!(!reader.has_pending());
    }

    #[test]
    fn comments_and_other_fields_are_ignored_and_data_lines_joined() {
        let mut reader = SseReader::default();
        let events = reader
            .feed(b": keep-alive\n\nevent: message\nid: 7\ndata: one\ndata:two\n\n")
            .unwrap();
        assert_eq!(events, ["one\ntwo"]);
    }

    #[test]
    fn bytes_that_are_not_text_are_an_error() {
        let mut reader = SseReader::default();
        assert!(reader.feed(b"data: \xff\xfe\n").is_err());
    }
}
