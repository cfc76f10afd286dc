//! Streamed answers pass through event by event: each server-sent event is forwarded as soon
//! as its blank line arrives, never held for the rest of the answer. On the way the gateway
//! reads what it must: the usage report (and drops it when only the gateway asked for it), the
//! generated text for the canary watch and the content log, and the timing.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use hyper::body::{Body, Frame};
use serde_json::Value;

/// Errors of the response body, as hyper wants them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An event larger than this is passed on unread rather than buffered further.
const MAX_EVENT: usize = 1 << 20;
/// Generated text kept for the canary watch's sake and the content log.
pub const MAX_KEPT_TEXT: usize = 64 * 1024;

/// Splits a byte stream into server-sent events (each ending in a blank line).
#[derive(Debug, Default)]
pub struct SseSplitter {
    buffer: BytesMut,
    searched: usize,
}

impl SseSplitter {
    /// Adds bytes from the network.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// The next complete event, with its terminating blank line.
    pub fn next_event(&mut self) -> Option<Bytes> {
        let from = self.searched.saturating_sub(3);
        let found = find_event_end(&self.buffer[from..]).map(|end| from + end);
        match found {
            Some(end) => {
                self.searched = 0;
                Some(self.buffer.split_to(end).freeze())
            }
            None if self.buffer.len() > MAX_EVENT => {
                self.searched = 0;
                Some(self.buffer.split().freeze())
            }
            None => {
                self.searched = self.buffer.len();
                None
            }
        }
    }

    /// Whatever is left when the stream ends.
    pub fn rest(&mut self) -> Option<Bytes> {
        (!self.buffer.is_empty()).then(|| self.buffer.split().freeze())
    }
}

/// The index just past the first `\n\n` or `\r\n\r\n`.
fn find_event_end(bytes: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(offset) = bytes.get(i..)?.iter().position(|&b| b == b'\n') {
        let at = i + offset;
        match bytes.get(at + 1) {
            Some(b'\n') => return Some(at + 2),
            Some(b'\r') if bytes.get(at + 2) == Some(&b'\n') => return Some(at + 3),
            _ => i = at + 1,
        }
    }
    None
}

/// What one event says.
#[derive(Debug, Default, PartialEq)]
pub struct EventFacts {
    /// Generated text in the event's choices.
    pub text: String,
    /// `prompt_tokens` and `completion_tokens`, if the event reports usage.
    pub usage: Option<(u64, u64)>,
    /// An event carrying only usage (no choices): the one `include_usage` adds.
    pub usage_only: bool,
    /// `data: [DONE]`.
    pub done: bool,
    /// The event carries an `error` object.
    pub error: bool,
}

/// Reads an event's `data:` lines as JSON (OpenAI streams put one JSON object per event).
pub fn read_event(event: &[u8]) -> EventFacts {
    let mut data = Vec::new();
    for line in event.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(rest) = line.strip_prefix(b"data:") {
            if !data.is_empty() {
                data.push(b'\n');
            }
            data.extend_from_slice(rest.strip_prefix(b" ").unwrap_or(rest));
        }
    }
    if data == b"[DONE]" {
        return EventFacts {
            done: true,
            ..EventFacts::default()
        };
    }
    match serde_json::from_slice::<Value>(&data) {
        Ok(value) => answer_facts(&value),
        Err(_) => EventFacts::default(),
    }
}

/// The facts of a chunk or of a whole (non-streamed) answer.
pub fn answer_facts(value: &Value) -> EventFacts {
    let mut facts = EventFacts {
        usage: usage_of(value),
        error: value.get("error").is_some_and(|e| !e.is_null()),
        ..EventFacts::default()
    };
    if let Some(Value::Array(choices)) = value.get("choices") {
        facts.usage_only = choices.is_empty() && facts.usage.is_some();
        for choice in choices {
            for pointer in ["/delta/content", "/message/content", "/text"] {
                if let Some(text) = choice.pointer(pointer).and_then(Value::as_str) {
                    facts.text.push_str(text);
                }
            }
        }
    }
    facts
}

fn usage_of(value: &Value) -> Option<(u64, u64)> {
    let usage = value.get("usage").filter(|u| u.is_object())?;
    let prompt = usage
        .get("prompt_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let completion = usage
        .get("completion_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Some((prompt, completion))
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The model server finished the answer.
    Complete,
    /// The model server broke off or sent a broken frame.
    UpstreamError,
    /// No chunk arrived within the idle timeout.
    IdleTimeout,
    /// The client went away before the end.
    ClientGone,
    /// The gateway cut the answer because it leaked a canary.
    CanaryCut,
}

impl StreamEnd {
    /// The name in audit records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamEnd::Complete => "complete",
            StreamEnd::UpstreamError => "upstream_error",
            StreamEnd::IdleTimeout => "upstream_idle_timeout",
            StreamEnd::ClientGone => "client_disconnected",
            StreamEnd::CanaryCut => "canary_leak",
        }
    }
}

/// What the stream saw, handed to the finisher once.
#[derive(Debug)]
pub struct StreamSummary {
    /// How it ended.
    pub end: StreamEnd,
    /// Usage as reported by the model server.
    pub usage: Option<(u64, u64)>,
    /// Generated text, up to [`MAX_KEPT_TEXT`].
    pub text: String,
    /// When the first event was forwarded.
    pub first_event: Option<Instant>,
    /// Time spent waiting for the model server's frames.
    pub upstream_wait: Duration,
    /// Whether a canary was seen.
    pub canary_leaked: bool,
}

/// Watches generated text for canaries; `true` from `feed` means one appeared.
pub trait LeakWatch: Send {
    /// Feeds the next piece of generated text.
    fn feed(&mut self, text: &str) -> bool;
}

/// The streamed response body.
pub struct ObservedStream {
    upstream: hyper::body::Incoming,
    splitter: SseSplitter,
    ready: VecDeque<Bytes>,
    idle: Duration,
    idle_timer: Pin<Box<tokio::time::Sleep>>,
    waiting_since: Option<Instant>,
    drop_usage_only: bool,
    watch: Option<Box<dyn LeakWatch>>,
    cut_on_leak: bool,
    summary: StreamSummary,
    finish: Option<Box<dyn FnOnce(StreamSummary) + Send>>,
    ended: bool,
}

impl ObservedStream {
    /// Wraps the model server's body. `drop_usage_only` removes the usage event the gateway
    /// asked for on the client's behalf; `finish` runs exactly once, when the stream ends for
    /// whatever reason (including the client hanging up).
    pub fn new(
        upstream: hyper::body::Incoming,
        idle: Duration,
        drop_usage_only: bool,
        watch: Option<Box<dyn LeakWatch>>,
        cut_on_leak: bool,
        finish: Box<dyn FnOnce(StreamSummary) + Send>,
    ) -> ObservedStream {
        ObservedStream {
            upstream,
            splitter: SseSplitter::default(),
            ready: VecDeque::new(),
            idle,
            idle_timer: Box::pin(tokio::time::sleep(idle)),
            waiting_since: None,
            drop_usage_only,
            watch,
            cut_on_leak,
            summary: StreamSummary {
                end: StreamEnd::ClientGone,
                usage: None,
                text: String::new(),
                first_event: None,
                upstream_wait: Duration::ZERO,
                canary_leaked: false,
            },
            finish: Some(finish),
            ended: false,
        }
    }

    /// Reads one event and queues it for the client unless it is to be held back.
    fn take_event(&mut self, event: Bytes) {
        let facts = read_event(&event);
        if let Some(usage) = facts.usage {
            self.summary.usage = Some(usage);
        }
        if facts.error {
            self.summary.end = StreamEnd::UpstreamError;
        }
        if !facts.text.is_empty() {
            let room = MAX_KEPT_TEXT.saturating_sub(self.summary.text.len());
            self.summary.text.push_str(prefix_within(&facts.text, room));
            if let Some(watch) = &mut self.watch
                && watch.feed(&facts.text)
            {
                self.summary.canary_leaked = true;
                if self.cut_on_leak {
                    self.ready.push_back(error_event(
                        "the answer was cut: it contained this tenant's system-prompt canary",
                        "canary_leak",
                    ));
                    self.end(StreamEnd::CanaryCut);
                    return;
                }
            }
        }
        if facts.usage_only && self.drop_usage_only {
            return;
        }
        self.ready.push_back(event);
    }

    fn end(&mut self, end: StreamEnd) {
        if self.ended {
            return;
        }
        self.ended = true;
        // An error event seen earlier keeps its verdict over the plain end of the stream.
        if !(end == StreamEnd::Complete && self.summary.end == StreamEnd::UpstreamError) {
            self.summary.end = end;
        }
        if let Some(finish) = self.finish.take() {
            let summary = std::mem::replace(
                &mut self.summary,
                StreamSummary {
                    end,
                    usage: None,
                    text: String::new(),
                    first_event: None,
                    upstream_wait: Duration::ZERO,
                    canary_leaked: false,
                },
            );
            finish(summary);
        }
    }
}

/// The longest prefix of `text` within `room` bytes, on a character boundary.
pub fn prefix_within(text: &str, room: usize) -> &str {
    if text.len() <= room {
        return text;
    }
    let mut cut = room;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

/// An OpenAI-style error as a server-sent event, for failures after the headers were sent.
pub fn error_event(message: &str, code: &str) -> Bytes {
    let body =
        serde_json::json!({"error": {"message": message, "type": "server_error", "code": code}});
    Bytes::from(format!("data: {body}\n\n"))
}

impl Body for ObservedStream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(event) = this.ready.pop_front() {
                if this.summary.first_event.is_none() {
                    this.summary.first_event = Some(Instant::now());
                }
                return Poll::Ready(Some(Ok(Frame::data(event))));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            let waiting_since = *this.waiting_since.get_or_insert_with(Instant::now);
            match Pin::new(&mut this.upstream).poll_frame(cx) {
                Poll::Pending => {
                    if this.idle_timer.as_mut().poll(cx).is_ready() {
                        this.summary.upstream_wait += waiting_since.elapsed();
                        this.ready.push_back(error_event(
                            "the model server stopped sending",
                            "upstream_idle_timeout",
                        ));
                        this.end(StreamEnd::IdleTimeout);
                        continue;
                    }
                    return Poll::Pending;
                }
                Poll::Ready(frame) => {
                    this.summary.upstream_wait += waiting_since.elapsed();
                    this.waiting_since = None;
                    match frame {
                        Some(Ok(frame)) => {
                            if let Ok(mut data) = frame.into_data() {
                                let deadline = tokio::time::Instant::now() + this.idle;
                                this.idle_timer.as_mut().reset(deadline);
                                this.splitter.push(&data.copy_to_bytes(data.remaining()));
                                while let Some(event) = this.splitter.next_event() {
                                    this.take_event(event);
                                    if this.ended {
                                        break;
                                    }
                                }
                            }
                        }
                        Some(Err(_)) => {
                            this.ready.push_back(error_event(
                                "the model server broke off the answer",
                                "upstream_disconnected",
                            ));
                            this.end(StreamEnd::UpstreamError);
                        }
                        None => {
                            if let Some(rest) = this.splitter.rest() {
                                this.take_event(rest);
                            }
                            this.end(StreamEnd::Complete);
                        }
                    }
                }
            }
        }
    }
}

impl Drop for ObservedStream {
    fn drop(&mut self) {
        // A client that hangs up mid-answer still gets its audit record and its tokens settled.
        self.end(StreamEnd::ClientGone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_come_out_whole() {
        let mut splitter = SseSplitter::default();
        splitter.push(b"data: {\"a\"");
        assert_eq!(splitter.next_event(), None);
        splitter.push(b":1}\n");
        assert_eq!(splitter.next_event(), None);
        splitter.push(b"\ndata: [DONE]\r\n\r\n");
        assert_eq!(splitter.next_event().unwrap(), &b"data: {\"a\":1}\n\n"[..]);
        assert_eq!(splitter.next_event().unwrap(), &b"data: [DONE]\r\n\r\n"[..]);
        assert_eq!(splitter.next_event(), None);
        assert_eq!(splitter.rest(), None);
    }

    #[test]
    fn a_huge_event_is_passed_on_rather_than_buffered() {
        let mut splitter = SseSplitter::default();
        splitter.push(&vec![b'x'; MAX_EVENT + 1]);
        assert_eq!(splitter.next_event().unwrap().len(), MAX_EVENT + 1);
    }

    #[test]
    fn chunk_facts_read_text_usage_and_done() {
        let chunk = br#"data: {"choices":[{"delta":{"content":"Hel"}}]}"#;
        assert_eq!(read_event(chunk).text, "Hel");
        let usage = br#"data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#;
        let facts = read_event(usage);
        assert_eq!(facts.usage, Some((7, 3)));
        assert!(facts.usage_only);
        assert!(read_event(b"data: [DONE]\n\n").done);
        assert!(read_event(br#"data: {"error":{"message":"x"}}"#).error);
        assert_eq!(read_event(b"data: not json\n\n"), EventFacts::default());
    }

    #[test]
    fn prefixes_respect_character_boundaries() {
        assert_eq!(prefix_within("héllo", 2), "h");
        assert_eq!(prefix_within("abc", 10), "abc");
    }
}
