//! Server-sent events, as OpenAI-compatible servers stream them: `data: {json}` lines, a blank
//! line after each event, and `data: [DONE]` at the end. Bytes are fed as they arrive, in chunks
//! that may split a line anywhere.

/// An incremental SSE reader that yields the `data` of each complete event.
#[derive(Debug)]
pub struct SseReader {
    /// Bytes of a line not yet ended.
    partial: Vec<u8>,
    /// The data lines of the event being read, each followed by `\n`: one buffer, so that every
    /// line, even an empty one, costs its bytes against the limit and no more.
    data: String,
    /// The most bytes one event may hold, its unfinished line included.
    max_event_bytes: usize,
}

/// The stream is not valid SSE, or an event is too large to hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("the stream is not UTF-8 text")]
    NotUtf8,
    /// An event (or a line without its end) grew past the limit, in bytes.
    #[error("a stream event is larger than {0} bytes")]
    TooLarge(usize),
}

impl SseReader {
    /// A reader that refuses events larger than `max_event_bytes`, so that a stream which never
    /// ends its line cannot take all memory.
    pub fn new(max_event_bytes: usize) -> SseReader {
        SseReader {
            partial: Vec::new(),
            data: String::new(),
            max_event_bytes,
        }
    }

    /// Feeds received bytes; returns the data of every event they complete, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<String>, SseError> {
        let mut events = Vec::new();
        for &byte in bytes {
            if byte != b'\n' {
                if self.partial.len() + self.data.len() >= self.max_event_bytes {
                    return Err(SseError::TooLarge(self.max_event_bytes));
                }
                self.partial.push(byte);
                continue;
            }
            let line = self.take_line().ok_or(SseError::NotUtf8)?;
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

    /// Ends the stream: the data of an event that lacked only its closing blank line (and
    /// perhaps its line end), if there is one.
    pub fn finish(&mut self) -> Option<String> {
        if !self.partial.is_empty() {
            let line = self.take_line()?;
            self.line(&line);
        }
        self.line("")
    }

    /// The pending line without its `\r`, as text.
    fn take_line(&mut self) -> Option<String> {
        let mut line = std::mem::take(&mut self.partial);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        String::from_utf8(line).ok()
    }

    fn line(&mut self, line: &str) -> Option<String> {
        if line.is_empty() {
            // A blank line ends an event; one without data is dispatched as nothing.
            let mut data = std::mem::take(&mut self.data);
            return data.pop().map(|_| data); // the last line's `\n` is no part of the data
        }
        if line.starts_with(':') {
            return None; // a comment, e.g. a keep-alive
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        if field == "data" {
            let value = value.strip_prefix(' ').unwrap_or(value);
            self.data.push_str(value);
            self.data.push('\n');
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
        let mut reader = SseReader::new(1024);
        assert!(reader.feed(b"data: {\"a\"").unwrap().is_empty());
        assert!(reader.has_pending());
        let events = reader.feed(b":1}\r\n\r\ndata: [DONE]\n\n").unwrap();
        assert_eq!(events, ["{\"a\":1}", "[DONE]"]);
        assert!(!reader.has_pending());
    }

    #[test]
    fn comments_and_other_fields_are_ignored_and_data_lines_joined() {
        let mut reader = SseReader::new(1024);
        let events = reader
            .feed(b": keep-alive\n\nevent: message\nid: 7\ndata: one\ndata:two\n\n")
            .unwrap();
        assert_eq!(events, ["one\ntwo"]);
    }

    #[test]
    fn bytes_that_are_not_text_are_an_error() {
        let mut reader = SseReader::new(1024);
        assert_eq!(reader.feed(b"data: \xff\xfe\n"), Err(SseError::NotUtf8));
    }

    #[test]
    fn a_last_event_without_its_blank_line_is_given_by_finish() {
        for tail in [&b"data: [DONE]"[..], b"data: [DONE]\n", b"data: [DONE]\r\n"] {
            let mut reader = SseReader::new(1024);
            assert_eq!(reader.feed(b"data: {}\n\n").unwrap(), ["{}"]);
            assert!(reader.feed(tail).unwrap().is_empty());
            assert_eq!(reader.finish().as_deref(), Some("[DONE]"), "{tail:?}");
        }
        let mut empty = SseReader::new(1024);
        empty.feed(b"data: {}\n\n: bye\n").unwrap();
        assert_eq!(empty.finish(), None);
    }

    #[test]
    fn an_event_past_the_limit_is_refused() {
        let mut line = SseReader::new(16);
        assert_eq!(
            line.feed(&[b'x'; 17]),
            Err(SseError::TooLarge(16)),
            "a line that never ends"
        );
        // Many short data lines of one event add up.
        let mut lines = SseReader::new(16);
        assert_eq!(
            lines.feed(b"data: 12345\ndata: 12345\ndata: 12345\n"),
            Err(SseError::TooLarge(16))
        );
        // The count starts again with each event.
        let mut events = SseReader::new(16);
        let many = b"data: 12345\n\n".repeat(10);
        assert_eq!(events.feed(&many).unwrap().len(), 10);
    }

    #[test]
    fn every_data_line_counts_against_the_limit_even_an_empty_one() {
        // Empty data lines without a blank line would otherwise pile up without bound.
        let mut empty = SseReader::new(64);
        assert_eq!(
            empty.feed(&b"data:\n".repeat(1000)),
            Err(SseError::TooLarge(64))
        );
        // One-byte lines cost more than their byte: 40 of them do not fit in 64.
        let mut short = SseReader::new(64);
        assert_eq!(
            short.feed(&b"data:x\n".repeat(40)),
            Err(SseError::TooLarge(64))
        );
        // An empty data line is still an event of empty data.
        let mut one = SseReader::new(64);
        assert_eq!(one.feed(b"data:\n\ndata:\ndata:\n\n").unwrap(), ["", "\n"]);
    }
}
