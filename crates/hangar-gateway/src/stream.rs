//! Streamed answers pass through event by event: each server-sent event is forwarded as soon
//! as its blank line arrives, never held for the rest of the answer. On the way the gateway
//! reads what it must: the usage report (and drops it when only the gateway asked for it), the
//! generated text for the canary watch and the content log, and the timing.

use std::collections::VecDeque;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::json::{self, Json};
use bytes::{Bytes, BytesMut};
use hangar_guard::CanaryWatch;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};

/// Errors of the response body, as hyper wants them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An event larger than this is passed on as it is rather than buffered further: a stream
/// that is not framed as server-sent events still flows (and its raw bytes are still watched).
const MAX_EVENT: usize = 64 << 10;
/// Generated text kept for the content log.
pub const MAX_KEPT_TEXT: usize = 64 * 1024;
/// Text read past [`MAX_KEPT_TEXT`] so that redaction sees whole a secret that the cut would
/// split (a card, a key, a token up to a few KiB); only what is within the limit is logged.
pub const KEPT_MARGIN: usize = 4 * 1024;

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

/// Whether `bytes` end with the blank line that ends an event.
fn ends_an_event(bytes: &[u8]) -> bool {
    bytes.ends_with(b"\n\n") || bytes.ends_with(b"\n\r\n")
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
    /// Generated text in the event's choices, by choice: content, reasoning, refusals and
    /// tool-call names and arguments.
    pub texts: Vec<ChoiceText>,
    /// `prompt_tokens` and `completion_tokens`, if the event reports usage.
    pub usage: Option<(u64, u64)>,
    /// An event carrying only usage (no choices): the one `include_usage` adds.
    pub usage_only: bool,
    /// `data: [DONE]`.
    pub done: bool,
    /// The event's data was read as JSON (not `[DONE]`).
    pub read: bool,
    /// The event's choices, by index, and whether each says why it ended (`finish_reason`).
    pub choices: Vec<(u64, bool)>,
    /// The event has data the gateway could not read as JSON: an event cut at [`MAX_EVENT`], or
    /// one that is not JSON. Its generated text, if any, is unknown.
    pub unread: bool,
    /// The event carries an `error` object.
    pub error: bool,
    /// Where the model server's `model` name is in the event, quotes included (see
    /// [`Json::str_span`]): `None` when there is none, or the data spans several lines.
    pub model: Option<Range<usize>>,
    /// The event names a model, but not where [`EventFacts::model`] can point: its data spans
    /// several lines, or the name is written with escapes.
    pub model_elsewhere: bool,
}

/// Reads an event's `data:` lines as JSON (OpenAI streams put one JSON object per event).
pub fn read_event(event: &[u8]) -> EventFacts {
    let mut lines = event.split(|&b| b == b'\n').filter_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let data = line.strip_prefix(b"data:")?;
        Some(data.strip_prefix(b" ").unwrap_or(data))
    });
    // Model servers send one `data:` line an event; it is read in place, without a copy.
    let first = lines.next().unwrap_or_default();
    let mut joined = Vec::new();
    for line in lines {
        if joined.is_empty() {
            joined.extend_from_slice(first);
        }
        joined.push(b'\n');
        joined.extend_from_slice(line);
    }
    let data = if joined.is_empty() { first } else { &joined };
    if data == b"[DONE]" {
        return EventFacts {
            done: true,
            ..EventFacts::default()
        };
    }
    match Json::parse(data) {
        Ok(value) => {
            // Offsets into the event exist only when the data was read in place.
            let model = joined
                .is_empty()
                .then(|| value.str_span(event, "model"))
                .flatten();
            EventFacts {
                read: true,
                model_elsewhere: model.is_none() && value.get("model").is_some_and(is_str),
                model,
                ..answer_facts(&value)
            }
        }
        Err(_) => EventFacts {
            unread: carries_data(event),
            ..EventFacts::default()
        },
    }
}

/// Whether an event has lines other than comments and the fields that carry no text: the
/// piece of an event cut at [`MAX_EVENT`] may have no `data:` prefix left.
fn carries_data(event: &[u8]) -> bool {
    event.split(|&b| b == b'\n').any(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let quiet = [&b":"[..], b"event:", b"id:", b"retry:"];
        !line.is_empty() && !quiet.iter().any(|field| line.starts_with(field))
    })
}

fn is_str(value: &Json<'_>) -> bool {
    matches!(value, Json::Str(_))
}

/// `bytes` with every JSON string `"from"` replaced by `"to"`, if there is one: the model name
/// in a piece of an event too large to read as JSON. A name split across two pieces stays, and
/// so does one whose opening quote is escaped (it is inside another string).
fn replace_quoted(bytes: &[u8], from: &str, to: &str) -> Option<Vec<u8>> {
    if from.is_empty() || from == to {
        return None;
    }
    let quoted = |name: &str| serde_json::to_string(name).ok().map(String::into_bytes);
    let (from, to) = (quoted(from)?, quoted(to)?);
    let mut out: Option<Vec<u8>> = None;
    let (mut copied, mut at) = (0, 0);
    while let Some(found) = bytes.get(at..)?.windows(from.len()).position(|w| w == from) {
        let start = at + found;
        at = start + from.len();
        if start > 0 && bytes.get(start - 1) == Some(&b'\\') {
            continue;
        }
        let out = out.get_or_insert_with(|| Vec::with_capacity(bytes.len() + to.len()));
        out.extend_from_slice(bytes.get(copied..start)?);
        out.extend_from_slice(&to);
        copied = at;
    }
    let mut out = out?;
    out.extend_from_slice(bytes.get(copied..)?);
    Some(out)
}

/// `event` naming the model `public` instead of the model server's name, or `None` when it
/// needs no change. The name is replaced in place when it can be; otherwise the event's data is
/// written anew as one line, its other fields (`event:`, `id:`…) kept.
pub fn renamed_event(event: &[u8], facts: &EventFacts, public: &str) -> Option<Vec<u8>> {
    if let Some(span) = facts.model.clone() {
        return json::replace_str(event, span, public);
    }
    if !facts.model_elsewhere {
        return None;
    }
    let lines = event
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.is_empty());
    let mut data = Vec::new();
    let mut out = Vec::with_capacity(event.len() + public.len());
    for line in lines {
        match line.strip_prefix(b"data:") {
            Some(part) => {
                if !data.is_empty() {
                    data.push(b'\n');
                }
                data.extend_from_slice(part.strip_prefix(b" ").unwrap_or(part));
            }
            None => {
                out.extend_from_slice(line);
                out.push(b'\n');
            }
        }
    }
    let json = json::with_str_member(&data, "model", public)?;
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&json);
    out.extend_from_slice(b"\n\n");
    Some(out)
}

/// The facts of a chunk or of a whole (non-streamed) answer.
pub fn answer_facts(value: &Json<'_>) -> EventFacts {
    let mut facts = EventFacts {
        usage: usage_of(value),
        error: value.get("error").is_some_and(|e| *e != Json::Null),
        ..EventFacts::default()
    };
    if let Some(Json::Array(choices)) = value.get("choices") {
        facts.usage_only = choices.is_empty() && facts.usage.is_some();
        for choice in choices {
            let index = choice.get("index").and_then(Json::as_u64).unwrap_or(0);
            let finished =
                (choice.get("finish_reason")).is_some_and(|reason| *reason != Json::Null);
            facts.choices.push((index, finished));
            let mut text = ChoiceText {
                choice: index,
                ..ChoiceText::default()
            };
            if let Some(completion) = choice.get("text").and_then(Json::as_str) {
                text.push(CONTENT, completion);
            }
            for message in ["delta", "message"].iter().filter_map(|k| choice.get(k)) {
                message_text(message, &mut text);
            }
            if !text.text.is_empty() {
                facts.texts.push(text);
            }
        }
    }
    facts
}

/// Which part of an answer a text is in: the content, the reasoning, a tool call's name or
/// arguments… Pieces of one part are joined as they come (a token may end mid-word); pieces of
/// different parts are kept apart, so that a card number ending one part does not run into the
/// next part's first word and escape redaction as part of an identifier.
pub type Part = u64;

const CONTENT: Part = 0;
/// Tool call `i`'s name is part `FIRST_CALL + 2 * i`, its arguments the part after.
const FIRST_CALL: Part = 8;

/// One choice's generated text in an event, with the parts it starts and ends in.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ChoiceText {
    pub choice: u64,
    pub text: String,
    pub first: Part,
    pub last: Part,
}

impl ChoiceText {
    /// Adds a piece of `part`, after a line break when the text so far ends in another part.
    fn push(&mut self, part: Part, piece: &str) {
        if piece.is_empty() {
            return;
        }
        if self.text.is_empty() {
            self.first = part;
        } else if self.last != part {
            self.text.push('\n');
        }
        self.text.push_str(piece);
        self.last = part;
    }
}

/// The generated text of a message or delta: what a client would show or act on.
fn message_text(message: &Json<'_>, text: &mut ChoiceText) {
    let fields = [
        (CONTENT, "content"),
        (1, "reasoning_content"),
        (2, "reasoning"),
        (3, "refusal"),
    ];
    for (part, field) in fields {
        match message.get(field) {
            Some(Json::Str(piece)) => text.push(part, piece),
            // Content as parts (`[{"type": "text", "text": …}]`), as some servers answer.
            Some(Json::Array(pieces)) => {
                for piece in pieces {
                    let piece = piece
                        .get("text")
                        .or_else(|| piece.get("refusal"))
                        .unwrap_or(piece);
                    text.push(part, piece.as_str().unwrap_or(""));
                }
            }
            _ => {}
        }
    }
    // A spoken answer's words (`modalities: ["audio"]`): the audio itself is not text.
    if let Some(transcript) = message.get("audio").and_then(|a| a.get("transcript")) {
        text.push(4, transcript.as_str().unwrap_or(""));
    }
    // A streamed call names its place (`index`); `function_call` is the single call of the
    // older API.
    let calls = match message.get("tool_calls") {
        Some(Json::Array(calls)) => (calls.iter().zip(0..))
            .filter_map(|(call, at)| {
                let at = call.get("index").and_then(Json::as_u64).unwrap_or(at);
                Some((at, call.get("function")?))
            })
            .collect(),
        _ => Vec::new(),
    };
    for (at, function) in calls
        .into_iter()
        .chain(message.get("function_call").map(|f| (0, f)))
    {
        for (offset, field) in [(0, "name"), (1, "arguments")] {
            if let Some(piece) = function.get(field).and_then(Json::as_str) {
                let part = (FIRST_CALL.saturating_add(at.saturating_mul(2))).saturating_add(offset);
                text.push(part, piece);
            }
        }
    }
}

impl EventFacts {
    /// All choices' text, in order.
    pub fn text(&self) -> String {
        self.texts.iter().map(|t| t.text.as_str()).collect()
    }
}

/// Generated text kept for the content log, by choice: [`MAX_KEPT_TEXT`] in all, and each
/// choice cut there read on for [`KEPT_MARGIN`], so that redaction sees whole a secret the cut
/// splits. Choices are kept apart: interleaved (`n` > 1) or written one after the other, their
/// pieces would split a card number or a key, or run its digits into another's.
#[derive(Debug, Default)]
pub struct KeptTexts {
    /// Each choice's text, and the part of the answer its last piece was in.
    choices: Vec<(u64, (KeptText, Part))>,
    /// Bytes kept within the log's budget, all choices together.
    within: usize,
}

/// One choice's kept text.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct KeptText {
    /// The text read.
    pub text: String,
    /// Where the log's budget ran out in it, if it did: what follows was read for redaction,
    /// and is not logged.
    pub cut: Option<usize>,
}

impl KeptTexts {
    /// Adds a piece of a choice's text, after a line break when it starts in another part of
    /// the answer than the text kept so far ended in (see [`Part`]).
    pub fn keep(&mut self, choice: u64, piece: &ChoiceText) {
        let (kept, last) = by_choice(&mut self.choices, choice, Default::default);
        let joined = kept.text.is_empty() || *last == piece.first;
        *last = piece.last;
        if !joined {
            Self::push(kept, &mut self.within, "\n");
        }
        Self::push(kept, &mut self.within, &piece.text);
    }

    /// Adds `piece` to `kept` within the budget, of which `within` is spent.
    fn push(kept: &mut KeptText, within: &mut usize, piece: &str) {
        if kept.cut.is_none() {
            let fits = prefix_within(piece, MAX_KEPT_TEXT.saturating_sub(*within));
            if fits.len() == piece.len() {
                kept.text.push_str(piece);
                *within += piece.len();
                return;
            }
            kept.cut = Some(kept.text.len() + fits.len());
            *within = MAX_KEPT_TEXT;
        }
        if let Some(cut) = kept.cut {
            let room = (cut + KEPT_MARGIN).saturating_sub(kept.text.len());
            kept.text.push_str(prefix_within(piece, room));
        }
    }

    /// The choices' texts, in the choices' order.
    pub fn into_choices(mut self) -> Vec<KeptText> {
        self.choices.sort_by_key(|(choice, _)| *choice);
        self.choices
            .into_iter()
            .map(|(_, (kept, _))| kept)
            .collect()
    }
}

/// The entry for `choice`, made by `new` when there is none yet.
fn by_choice<T>(list: &mut Vec<(u64, T)>, choice: u64, new: impl FnOnce() -> T) -> &mut T {
    let at = match list.iter().position(|(c, _)| *c == choice) {
        Some(at) => at,
        None => {
            list.push((choice, new()));
            list.len() - 1
        }
    };
    &mut list[at].1
}

/// The model server's token counts. A report without a whole-number `prompt_tokens`, or with a
/// `completion_tokens` that is not one, is no report: the gateway then counts the tokens itself
/// rather than charge nothing. Embeddings (an answer without `choices`) report no completion
/// tokens; a generated answer that leaves them out is charged `total_tokens` less the prompt,
/// or counted without one.
fn usage_of(value: &Json<'_>) -> Option<(u64, u64)> {
    let usage = value
        .get("usage")
        .filter(|u| matches!(u, Json::Object(_)))?;
    let prompt = usage.get("prompt_tokens").and_then(Json::as_u64)?;
    let completion = match usage.get("completion_tokens") {
        None | Some(Json::Null) if value.get("choices").is_none() => 0,
        None | Some(Json::Null) => {
            let total = usage.get("total_tokens").and_then(Json::as_u64)?;
            total.saturating_sub(prompt)
        }
        Some(count) => count.as_u64()?,
    };
    Some((prompt, completion))
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The model server finished the answer.
    Complete,
    /// The model server broke off, sent a broken frame or an error event, or ended its body
    /// before the answer's end.
    UpstreamError,
    /// No first token within the first-token timeout, or no chunk within the idle timeout.
    UpstreamTimeout,
    /// The client went away before the end.
    ClientGone,
    /// The client stopped reading for longer than the idle timeout.
    ClientTooSlow,
    /// The gateway cut the answer because it leaked a canary.
    CanaryCut,
    /// The gateway shut down before the answer ended.
    Shutdown,
}

impl StreamEnd {
    /// The name in audit records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamEnd::Complete => "complete",
            StreamEnd::UpstreamError => "upstream_error",
            StreamEnd::UpstreamTimeout => "upstream_timeout",
            StreamEnd::ClientGone => "client_disconnected",
            StreamEnd::ClientTooSlow => "client_too_slow",
            StreamEnd::CanaryCut => "canary_leak",
            StreamEnd::Shutdown => "gateway_shutdown",
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
    /// Generated text by choice, in the choices' order (see [`KeptTexts`]), when
    /// [`StreamRules::keep_text`] asks for it.
    pub kept: Vec<KeptText>,
    /// Bytes of generated text, all of them: the token count when the model server reports no
    /// usage.
    pub text_bytes: u64,
    /// When the first event carrying a generated token (text, reasoning, a refusal, a piece
    /// of a tool call) came from the model server. Role-only chunks, comments, usage and the
    /// gateway's own error events carry none.
    pub first_token: Option<Instant>,
    /// Time spent waiting for the model server's frames.
    pub upstream_wait: Duration,
    /// Time spent waiting for the client to take events.
    pub client_wait: Duration,
    /// Whether a canary was seen.
    pub canary_leaked: bool,
    /// The code of the error event the gateway ended the stream with, if it was handed to the
    /// client's connection.
    pub told: Option<&'static str>,
    /// How the model server failed the stream, whatever became of the client: `body` (broke
    /// off), `incomplete` (ended early), `error_event` (its own), `timeout` (no first token
    /// in time) or `idle_timeout`; the `kind` of `hangar_gateway_upstream_errors_total`.
    pub upstream_failure: Option<&'static str>,
}

/// How a stream is to be relayed.
#[derive(Debug, Clone)]
pub struct StreamRules {
    /// When the first chunk must have arrived (what is left of the first-token timeout).
    pub first_token_by: Instant,
    /// Longest silence from the model server, and longest wait for a client that does not read.
    pub idle: Duration,
    /// Remove the usage-only event the gateway asked for on the client's behalf.
    pub drop_usage_only: bool,
    /// Canaries to watch for; empty for none.
    pub canaries: Vec<String>,
    /// Cut the answer before a leaking chunk reaches the client.
    pub cut_on_leak: bool,
    /// Keep the generated text (for the content log). Otherwise only its length is counted:
    /// a thousand open streams would each hold their answer so far.
    pub keep_text: bool,
    /// The public model name, written over the model server's own in every event.
    pub model: String,
    /// The model server's name for the model: in an event too large to read, its quoted
    /// occurrences are replaced with the public name's.
    pub upstream_model: String,
    /// Choices asked for (`n`, times the prompts of a completion): the indices a model server
    /// may use.
    pub choices: u64,
}

/// Relays a streamed answer: a task reads the model server, observes each event and hands it
/// to the client through a small channel. The task, not the client, drives the relay, so a
/// client that stops reading is noticed (and cut off after `idle`) instead of holding its
/// place for ever, and shutdown can end every stream. `finish` runs exactly once, at the end.
pub fn relay<B>(
    mut upstream: B,
    rules: StreamRules,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    finish: Box<dyn FnOnce(StreamSummary) + Send>,
) -> ChannelBody
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(RELAY_CAPACITY);
    let cut = Arc::new(AtomicBool::new(false));
    let cut_by_relay = Arc::clone(&cut);
    // Made here and lent to the relay: moved into it, the task would keep room for it twice
    // (and a thousand open streams hold a thousand tasks).
    let mut relay = Relay::new(rules);
    tokio::spawn(async move {
        let end = relay
            .run(&mut upstream, &sender, &mut shutdown, &cut_by_relay)
            .await;
        // Recorded before the client's body ends: a shutdown waiting for the connection to
        // finish then finds the record queued.
        finish(relay.summary(end));
        drop(sender);
    });
    ChannelBody { receiver, cut }
}

/// Events queued between the model server and a client that reads slower.
const RELAY_CAPACITY: usize = 16;

/// How much of a canary an answer may end with before a stream that cuts on a leak holds its
/// events back: the first three letters of a random canary tell nothing (Hangar's own all
/// begin `hgc`), and fewer would hold back every other token.
const HOLD_FROM: usize = 4;

/// The most a stream holds back while a canary may be beginning: past it the events flow on,
/// and a cut then leaves the canary's start with the client.
const MAX_HELD: usize = 64 << 10;

/// How long, once the gateway shuts down, a client has to take an event (the shutdown's own
/// last event among them): within the two seconds the shutdown gives streams to end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// What the relay heard while it waited on the model server.
enum Heard<E> {
    Frame(Option<Result<Frame<Bytes>, E>>),
    /// Nothing within the first-token or idle timeout.
    Silence,
    ClientGone,
    Shutdown,
}

struct Relay {
    rules: StreamRules,
    splitter: SseSplitter,
    ready: VecDeque<Bytes>,
    /// Whether what was queued for the client last ends inside an event: bytes past
    /// [`MAX_EVENT`] with no blank line, which flow on unframed.
    open_event: bool,
    /// Once the gateway shuts down, until when the client may still take events.
    shutdown_grace: Option<tokio::time::Instant>,
    /// One watch per choice, so interleaved choices (`n` > 1) cannot split a canary.
    watches: Vec<(u64, CanaryWatch)>,
    /// Whole events held back while the answer may be beginning a canary, with their size:
    /// dropped if it leaks, queued for the client once it cannot.
    held: Vec<Bytes>,
    held_bytes: usize,
    kept: KeptTexts,
    /// `data: [DONE]` came: the model server reached the answer's end.
    done: bool,
    /// An event with data came: the model server began to answer.
    answered: bool,
    /// The choices begun, and those that said why they ended (`finish_reason`): without
    /// `[DONE]`, the answer is whole when every choice begun ended.
    begun: Vec<u64>,
    finished: Vec<u64>,
    /// Watches the raw events too: fields the gateway does not read, and unframed bytes.
    raw_watch: Option<CanaryWatch>,
    summary: StreamSummary,
    ended: Option<StreamEnd>,
}

impl Relay {
    fn new(rules: StreamRules) -> Relay {
        let raw_watch =
            (!rules.canaries.is_empty()).then(|| CanaryWatch::new(rules.canaries.clone()));
        Relay {
            rules,
            splitter: SseSplitter::default(),
            open_event: false,
            ready: VecDeque::new(),
            shutdown_grace: None,
            watches: Vec::new(),
            held: Vec::new(),
            held_bytes: 0,
            kept: KeptTexts::default(),
            done: false,
            answered: false,
            begun: Vec::new(),
            finished: Vec::new(),
            raw_watch,
            summary: StreamSummary {
                end: StreamEnd::Complete,
                usage: None,
                kept: Vec::new(),
                text_bytes: 0,
                first_token: None,
                upstream_wait: Duration::ZERO,
                client_wait: Duration::ZERO,
                canary_leaked: false,
                told: None,
                upstream_failure: None,
            },
            ended: None,
        }
    }

    /// Relays the answer until it ends, and says how.
    async fn run<B: Body<Data = Bytes> + Unpin>(
        &mut self,
        upstream: &mut B,
        sender: &tokio::sync::mpsc::Sender<Bytes>,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
        cut: &AtomicBool,
    ) -> StreamEnd {
        let mut deadline = tokio::time::Instant::from_std(self.rules.first_token_by);
        loop {
            // Time spent waiting on the client is not the model server's silence.
            let sending = tokio::time::Instant::now();
            let delivered = self.deliver(sender, shutdown).await;
            let sent_in = sending.elapsed();
            self.summary.client_wait += sent_in;
            if let Err(end) = delivered {
                // An error event queued for the client never reached it.
                self.summary.told = None;
                // Said before the sender goes, so that the body does not end as a whole one.
                if end != StreamEnd::ClientGone {
                    cut.store(true, Ordering::Release);
                }
                break end;
            }
            if let Some(end) = self.ended {
                break end;
            }
            deadline += sent_in;
            let waiting = tokio::time::Instant::now();
            let heard = tokio::select! {
                frame = upstream.frame() => Heard::Frame(frame),
                () = tokio::time::sleep_until(deadline) => Heard::Silence,
                () = sender.closed() => Heard::ClientGone,
                _ = shutdown.wait_for(|stop| *stop) => Heard::Shutdown,
            };
            self.summary.upstream_wait += waiting.elapsed();
            match heard {
                Heard::Frame(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.take_bytes(&data);
                    }
                }
                Heard::Frame(Some(Err(_))) => self.fail(
                    "the model server broke off the answer",
                    "upstream_disconnected",
                    StreamEnd::UpstreamError,
                ),
                Heard::Frame(None) => {
                    if let Some(rest) = self.splitter.rest() {
                        self.take_rest(rest);
                    }
                    self.release_held();
                    // A body that ends before the answer's end ends early: the client is told,
                    // not handed a cut answer that looks whole. An error event already said it.
                    let told = self.summary.end == StreamEnd::UpstreamError;
                    if self.ended_early() && !told && self.ended.is_none() {
                        self.fail(
                            "the model server ended the stream before the answer's end",
                            "upstream_incomplete",
                            StreamEnd::UpstreamError,
                        );
                    }
                    self.ended.get_or_insert(StreamEnd::Complete);
                }
                Heard::Silence => self.fail(
                    "the model server stopped sending",
                    "upstream_timeout",
                    StreamEnd::UpstreamTimeout,
                ),
                Heard::ClientGone => break StreamEnd::ClientGone,
                Heard::Shutdown => self.fail(
                    "the gateway is shutting down",
                    "gateway_shutdown",
                    StreamEnd::Shutdown,
                ),
            }
            // Until a token comes, the first-token timeout holds: a role-only chunk or a
            // keep-alive comment does not trade it for the (often longer) idle timeout. From
            // the frame that brought the first token on, silences are held to `idle`.
            if self.summary.first_token.is_some() {
                deadline = tokio::time::Instant::now() + self.rules.idle;
            }
        }
    }

    /// What the relay saw, once it has ended with `end`.
    fn summary(mut self, end: StreamEnd) -> StreamSummary {
        // An error event from the model server outranks the plain end of its stream.
        if !(end == StreamEnd::Complete && self.summary.end == StreamEnd::UpstreamError) {
            self.summary.end = end;
        }
        self.summary.kept = self.kept.into_choices();
        self.summary
    }

    /// Hands the queued events to the client. Ends the stream when the client is gone, takes
    /// nothing for `idle`, or has not taken them all [`SHUTDOWN_GRACE`] after the gateway began
    /// to shut down: the stream then ends, and writes its record, without waiting more.
    async fn deliver(
        &mut self,
        sender: &tokio::sync::mpsc::Sender<Bytes>,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), StreamEnd> {
        while let Some(event) = self.ready.pop_front() {
            let send = tokio::time::timeout(self.rules.idle, sender.send(event));
            let grace = &mut self.shutdown_grace;
            let shutting_down = async {
                let _ = shutdown.wait_for(|stop| *stop).await;
                let until =
                    *grace.get_or_insert_with(|| tokio::time::Instant::now() + SHUTDOWN_GRACE);
                tokio::time::sleep_until(until).await;
            };
            let sent = tokio::select! {
                biased;
                sent = send => sent,
                () = shutting_down => return Err(StreamEnd::Shutdown),
            };
            match sent {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(StreamEnd::ClientGone),
                Err(_) => return Err(StreamEnd::ClientTooSlow),
            }
        }
        Ok(())
    }

    fn take_bytes(&mut self, data: &[u8]) {
        self.splitter.push(data);
        while let Some(event) = self.splitter.next_event() {
            self.take_event(event);
            if self.ended.is_some() {
                return;
            }
        }
    }

    /// What was left when the model server's body ended, with no blank line after it. An event
    /// that only lacks its blank line is passed on, ended; the start of one that broke off is
    /// left out, for a client's parser would fail on it before it read the error that follows;
    /// the rest of bytes flowing on unframed flows on.
    fn take_rest(&mut self, rest: Bytes) {
        if self.open_event {
            return self.take_event(rest);
        }
        let facts = read_event(&rest);
        if facts.read || facts.done {
            let whole = rest.trim_ascii_end();
            self.take_event(Bytes::from([whole, b"\n\n"].concat()));
        } else if !rest.trim_ascii_start().starts_with(b"data:") {
            // Not half an event: a server's own format, passed on as it came.
            self.take_event(rest);
        }
    }

    /// Reads one event and queues it for the client unless it is to be held back.
    fn take_event(&mut self, mut event: Bytes) {
        let facts = read_event(&event);
        if let Some(renamed) = renamed_event(&event, &facts, &self.rules.model) {
            event = Bytes::from(renamed);
        }
        if facts.unread
            && let Some(renamed) =
                replace_quoted(&event, &self.rules.upstream_model, &self.rules.model)
        {
            event = Bytes::from(renamed);
        }
        if let Some(usage) = facts.usage {
            self.summary.usage = Some(usage);
        }
        if facts.error {
            self.summary.end = StreamEnd::UpstreamError;
            self.summary.upstream_failure.get_or_insert("error_event");
        }
        self.done |= facts.done;
        // Data that is not JSON (a body not framed as events) is an answer begun too.
        self.answered |= facts.read || facts.unread;
        for &(index, finished) in &facts.choices {
            let choice = self.choice(index);
            let seen = if finished {
                &mut self.finished
            } else {
                &mut self.begun
            };
            if !seen.contains(&choice) {
                seen.push(choice);
            }
        }
        if facts.unread {
            // Counted as text for the token estimate: what it holds cannot be told.
            self.summary.text_bytes += event.len() as u64;
        }
        let raw_leak = self
            .raw_watch
            .as_mut()
            .is_some_and(|watch| watch.feed(&String::from_utf8_lossy(&event)));
        let mut text_leak = false;
        if !facts.texts.is_empty() {
            // tokio's clock, which tests can stop: the same as std's otherwise.
            let now = || tokio::time::Instant::now().into_std();
            self.summary.first_token.get_or_insert_with(now);
        }
        for text in &facts.texts {
            self.summary.text_bytes += text.text.len() as u64;
            let choice = self.choice(text.choice);
            if self.rules.keep_text {
                self.kept.keep(choice, text);
            }
            if !self.rules.canaries.is_empty() {
                text_leak |= self.watch(choice).feed(&text.text);
            }
        }
        if raw_leak || text_leak {
            self.summary.canary_leaked = true;
            if self.rules.cut_on_leak {
                self.fail(
                    "the answer was cut: it contained this tenant's system-prompt canary",
                    "canary_leak",
                    StreamEnd::CanaryCut,
                );
                return;
            }
        }
        if facts.usage_only && self.rules.drop_usage_only {
            return;
        }
        // Only whole events are held, after a whole one, so what is queued ends an event
        // whenever some are held, and dropping them leaves the client's stream well framed.
        let whole = !self.open_event && ends_an_event(&event);
        self.open_event = !ends_an_event(&event);
        if whole && self.may_begin_canary() && self.held_bytes + event.len() <= MAX_HELD {
            self.held_bytes += event.len();
            self.held.push(event);
            return;
        }
        self.release_held();
        self.ready.push_back(event);
    }

    /// Whether the answer so far ends with enough of a canary to hold its events back.
    fn may_begin_canary(&self) -> bool {
        let begun = |watch: &CanaryWatch| watch.partial() >= HOLD_FROM;
        self.rules.cut_on_leak
            && !self.done
            && (self.watches.iter().any(|(_, watch)| begun(watch))
                || self.raw_watch.as_ref().is_some_and(begun))
    }

    /// Queues the events held back for the client: no canary came of them.
    fn release_held(&mut self) {
        self.ready.extend(self.held.drain(..));
        self.held_bytes = 0;
    }

    /// The choice `index` names, as the relay tracks it: one past those asked for (a model
    /// server's mistake) is tracked as one, so that what is kept per choice stays bounded.
    fn choice(&self, index: u64) -> u64 {
        if index < self.rules.choices {
            index
        } else {
            u64::MAX
        }
    }

    /// Whether the model server's body ended before the answer's end: no `[DONE]`, and no event
    /// was read, or a choice it began did not say why it ended. A stream whose events have no
    /// choices (a server's own format) is taken as whole.
    fn ended_early(&self) -> bool {
        let open = |choice: &u64| !self.finished.contains(choice);
        !self.done && (!self.answered || self.begun.iter().any(open))
    }

    fn watch(&mut self, choice: u64) -> &mut CanaryWatch {
        let canaries = &self.rules.canaries;
        by_choice(&mut self.watches, choice, || {
            CanaryWatch::new(canaries.clone())
        })
    }

    /// Ends the stream with an error event the client can read: an event of its own, after a
    /// blank line that ends bytes flowing on unframed.
    fn fail(&mut self, message: &str, code: &'static str, end: StreamEnd) {
        if end == StreamEnd::CanaryCut {
            self.held.clear();
        }
        self.release_held();
        if std::mem::take(&mut self.open_event) {
            self.ready.push_back(Bytes::from_static(b"\n\n"));
        }
        self.ready.push_back(error_event(message, code));
        self.summary.told = Some(code);
        self.ended = Some(end);
        let failure = match end {
            StreamEnd::UpstreamTimeout if self.summary.first_token.is_some() => "idle_timeout",
            StreamEnd::UpstreamTimeout => "timeout",
            StreamEnd::UpstreamError if code == "upstream_incomplete" => "incomplete",
            StreamEnd::UpstreamError => "body",
            _ => return,
        };
        self.summary.upstream_failure.get_or_insert(failure);
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

/// An OpenAI-style error as a server-sent event, for failures after the headers were sent:
/// the same four fields as an error answer's body (`param` null: no request field is at fault).
pub fn error_event(message: &str, code: &str) -> Bytes {
    let body = serde_json::json!({"error": {
        "message": message,
        "type": "server_error",
        "param": null,
        "code": code,
    }});
    Bytes::from(format!("data: {body}\n\n"))
}

/// The client's side of a relayed stream.
#[derive(Debug)]
pub struct ChannelBody {
    receiver: tokio::sync::mpsc::Receiver<Bytes>,
    /// Set when the relay gave up on a client too slow to read: the body then ends in an error,
    /// so hyper resets the stream (HTTP/2) or closes the connection (HTTP/1.1) rather than end
    /// an answer that looks whole, and wait on a client that reads nothing to write its end.
    cut: Arc<AtomicBool>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.receiver.poll_recv(cx) {
            Poll::Ready(Some(bytes)) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
            Poll::Ready(None) if self.cut.load(Ordering::Acquire) => Poll::Ready(Some(Err(
                "the client read too slowly: the answer was cut".into(),
            ))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model server's body whose frames the test sends when it likes.
    struct Frames(tokio::sync::mpsc::Receiver<Bytes>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0
                .poll_recv(cx)
                .map(|bytes| bytes.map(|b| Ok(Frame::data(b))))
        }
    }

    /// Rules with these timeouts, from now.
    fn rules(first_token: Duration, idle: Duration) -> StreamRules {
        StreamRules {
            first_token_by: tokio::time::Instant::now().into_std() + first_token,
            idle,
            drop_usage_only: false,
            canaries: Vec::new(),
            cut_on_leak: false,
            keep_text: false,
            model: "m".into(),
            upstream_model: "org/model-7b".into(),
            choices: 2,
        }
    }

    /// A relay whose model server sends `script`: each piece after its delay from the one
    /// before. Returns the stream's start, the client's side and the summary to come.
    fn relay_of(
        script: Vec<(u64, &'static [u8])>,
        rules: StreamRules,
    ) -> (
        Instant,
        ChannelBody,
        tokio::sync::oneshot::Receiver<StreamSummary>,
    ) {
        let (frames, upstream) = tokio::sync::mpsc::channel(4);
        let started = tokio::time::Instant::now().into_std();
        let (running, shutdown) = tokio::sync::watch::channel(false);
        let (ended, summary) = tokio::sync::oneshot::channel();
        let finish = Box::new(move |summary: StreamSummary| {
            drop(running);
            let _ = ended.send(summary);
        });
        let client = relay(Frames(upstream), rules, shutdown, finish);
        tokio::spawn(async move {
            for (delay, piece) in script {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                // Fails only when the relay has already given up, which the tests show.
                let _ = frames.send(Bytes::from_static(piece)).await;
            }
        });
        (started, client, summary)
    }

    /// What the client receives, reading a frame every `pace`.
    async fn read_all(client: &mut ChannelBody, pace: Duration) -> String {
        let mut received = Vec::new();
        loop {
            tokio::time::sleep(pace).await;
            match client.frame().await {
                Some(frame) => received.extend_from_slice(&frame.unwrap().into_data().unwrap()),
                None => return String::from_utf8(received).unwrap(),
            }
        }
    }

    const ROLE: &[u8] =
        b"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n";
    const TOKEN: &[u8] = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n";
    const DONE: &[u8] = b"data: [DONE]\n\n";

    /// A chunk with a piece of one choice's content.
    fn piece(choice: u8, text: &str) -> &'static [u8] {
        let event = format!(
            "data: {{\"choices\":[{{\"index\":{choice},\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n"
        );
        event.into_bytes().leak()
    }

    /// The data of each event the client received, which an SDK parses as JSON.
    fn event_data(received: &str) -> Vec<&str> {
        (received.split("\n\n"))
            .filter(|event| !event.is_empty())
            .map(|event| event.strip_prefix("data: ").unwrap_or(event))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_ends_inside_an_event_ends_in_an_error_event_of_its_own() {
        let half: &[u8] = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hal";
        let (_, mut client, summary) = relay_of(
            vec![(0, ROLE), (0, TOKEN), (0, half)],
            rules(Duration::from_secs(10), Duration::from_secs(10)),
        );
        let received = read_all(&mut client, Duration::ZERO).await;
        // Half an event would make the client's JSON parser fail before it read the error.
        assert!(!received.contains("hal"), "{received}");
        for data in event_data(&received) {
            assert!(
                serde_json::from_str::<serde_json::Value>(data).is_ok(),
                "{data}"
            );
        }
        assert!(received.contains("upstream_incomplete"), "{received}");
        assert_eq!(summary.await.unwrap().end, StreamEnd::UpstreamError);
    }

    #[tokio::test(start_paused = true)]
    async fn a_last_event_without_its_blank_line_is_passed_on_ended() {
        let (_, mut client, summary) = relay_of(
            vec![(0, TOKEN), (0, b"data: [DONE]\n")],
            rules(Duration::from_secs(10), Duration::from_secs(10)),
        );
        let received = read_all(&mut client, Duration::ZERO).await;
        assert!(received.ends_with("data: [DONE]\n\n"), "{received}");
        assert_eq!(summary.await.unwrap().end, StreamEnd::Complete);
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_after_unframed_bytes_is_an_event_of_its_own() {
        // Past 64 KiB with no blank line the bytes flow on; the server then goes quiet.
        let unframed: &'static [u8] = [b"data: ".as_slice(), &[b'Z'; 70 << 10]].concat().leak();
        let (_, mut client, _) = relay_of(
            vec![(0, TOKEN), (0, unframed), (5000, DONE)],
            rules(Duration::from_secs(10), Duration::from_millis(500)),
        );
        let received = read_all(&mut client, Duration::ZERO).await;
        assert!(
            received.ends_with(&format!(
                "ZZ\n\n{}",
                String::from_utf8_lossy(&error_event(
                    "the model server stopped sending",
                    "upstream_timeout"
                ))
            )),
            "{}",
            &received[received.len().saturating_sub(200)..]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn time_spent_waiting_on_a_slow_client_is_not_the_model_servers_silence() {
        // 20 events in one frame: 16 fit the relay's queue, and the client takes the others
        // one every 150 ms, 600 ms in all, longer than `idle`. The model server's next frame
        // comes 900 ms after its first: it was never silent for 500 ms once it was read.
        let batch: &'static [u8] = TOKEN.repeat(20).leak();
        let script = vec![(0, batch), (900, DONE)];
        let (_, mut client, summary) = relay_of(
            script,
            rules(Duration::from_secs(10), Duration::from_millis(500)),
        );
        let received = read_all(&mut client, Duration::from_millis(150)).await;
        assert!(!received.contains("upstream_timeout"), "{received}");
        assert!(received.ends_with("data: [DONE]\n\n"), "{received}");
        assert_eq!(summary.await.unwrap().end, StreamEnd::Complete);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_token_timeout_holds_until_a_token_comes() {
        // A role-only chunk at once and a keep-alive comment are no token: the first-token
        // timeout (300 ms) ends the stream, not the idle timeout (10 s).
        let script = vec![
            (0, ROLE),
            (200, b": keep-alive\n\n"),
            (2000, TOKEN),
            (0, DONE),
        ];
        let (_, mut client, summary) = relay_of(
            script,
            rules(Duration::from_millis(300), Duration::from_secs(10)),
        );
        let received = read_all(&mut client, Duration::ZERO).await;
        assert!(received.contains("upstream_timeout"), "{received}");
        let summary = summary.await.unwrap();
        assert_eq!(summary.end, StreamEnd::UpstreamTimeout);
        assert_eq!(
            summary.first_token, None,
            "the gateway's error event is no token"
        );
        assert_eq!(summary.upstream_failure, Some("timeout"));
        assert_eq!(summary.told, Some("upstream_timeout"));
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_first_token_silences_are_held_to_idle() {
        // The first token comes 50 ms before the first-token timeout, the next 100 ms after it.
        let script = vec![(0, ROLE), (250, TOKEN), (100, TOKEN), (0, DONE)];
        let (_, mut client, summary) = relay_of(
            script,
            rules(Duration::from_millis(300), Duration::from_secs(10)),
        );
        let received = read_all(&mut client, Duration::ZERO).await;
        assert!(!received.contains("upstream_timeout"), "{received}");
        assert_eq!(summary.await.unwrap().end, StreamEnd::Complete);
    }

    #[tokio::test(start_paused = true)]
    async fn a_model_servers_failure_is_named_by_its_kind() {
        let error: &[u8] = b"data: {\"error\":{\"message\":\"engine dead\"}}\n\n";
        // Silent after its first token (idle, 100 ms); its own error event; silent before
        // any token (first-token timeout, 300 ms).
        for (script, kind, told) in [
            (
                vec![(0, ROLE), (0, TOKEN), (500, DONE)],
                "idle_timeout",
                Some("upstream_timeout"),
            ),
            (vec![(0, ROLE), (0, TOKEN), (0, error)], "error_event", None),
            (
                vec![(0, ROLE), (500, TOKEN)],
                "timeout",
                Some("upstream_timeout"),
            ),
        ] {
            let (_, mut client, summary) = relay_of(
                script,
                rules(Duration::from_millis(300), Duration::from_millis(100)),
            );
            let received = read_all(&mut client, Duration::ZERO).await;
            let summary = summary.await.unwrap();
            assert_eq!(summary.upstream_failure, Some(kind), "{received}");
            assert_eq!(summary.told, told, "{received}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_token_is_the_first_generated_one() {
        let tool_call: &[u8] = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"get_weather\"}}]}}]}\n\n";
        for first in [TOKEN, tool_call] {
            let script = vec![(0, ROLE), (250, first), (50, DONE)];
            let (started, mut client, summary) = relay_of(
                script,
                rules(Duration::from_secs(10), Duration::from_secs(10)),
            );
            read_all(&mut client, Duration::ZERO).await;
            let summary = summary.await.unwrap();
            assert_eq!(summary.end, StreamEnd::Complete);
            let first_token = summary.first_token.unwrap() - started;
            assert_eq!(first_token.as_millis(), 250, "{first_token:?}");
        }
    }

    /// A piece of a choice's content.
    fn content(text: &str) -> ChoiceText {
        ChoiceText {
            text: text.to_owned(),
            ..ChoiceText::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn parts_of_an_answer_are_kept_apart_so_a_card_ending_one_is_redacted() {
        // A reasoning model thinks, then answers; an assistant talks, then calls a tool. Run
        // together, the card's last digit met the next word and the card read as an identifier.
        let reasoning: &'static [u8] = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"the card is 4111 1111 1111 1111\"}}]}\n\n";
        let call: &'static [u8] = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"charge\",\"arguments\":\"\"}}]}}]}\n\n";
        let arguments: &'static [u8] = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":5}\"}}]}}]}\n\n";
        let script = vec![
            (0, reasoning),
            (0, piece(0, "I have upd")),
            (0, piece(0, "ated it, 5555 5555 5555 4444")),
            (0, call),
            (0, arguments),
            (0, DONE),
        ];
        let kept = kept_texts(script).await;
        assert_eq!(
            kept,
            [
                "the card is 4111 1111 1111 1111\nI have updated it, 5555 5555 5555 4444\ncharge\n{\"a\":5}"
            ]
        );
        let logged = hangar_guard::Redactor::default().redact(&kept[0]).text;
        assert!(
            !logged.contains("1111") && !logged.contains("4444"),
            "{logged}"
        );
        // A whole answer is read the same way.
        let whole = br#"{"choices":[{"message":{"content":"Use AKIAIOSFODNN7EXAMPLE","reasoning_content":"ok","tool_calls":[{"function":{"name":"f","arguments":"{}"}},{"function":{"name":"g","arguments":"{}"}}]}}]}"#;
        let facts = answer_facts(&Json::parse(whole).unwrap());
        assert_eq!(facts.text(), "Use AKIAIOSFODNN7EXAMPLE\nok\nf\n{}\ng\n{}");
    }

    /// The texts a relay keeps for the content log (two choices asked for) of `script`.
    async fn kept_texts(script: Vec<(u64, &'static [u8])>) -> Vec<String> {
        let mut keeping = rules(Duration::from_secs(10), Duration::from_secs(10));
        keeping.keep_text = true;
        let (_, mut client, summary) = relay_of(script, keeping);
        read_all(&mut client, Duration::ZERO).await;
        let kept = summary.await.unwrap().kept;
        kept.into_iter().map(|kept| kept.text).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn interleaved_choices_are_kept_each_whole_for_the_content_log() {
        // With `n: 2` a card number in the first choice arrives in pieces between the second's.
        let script = vec![
            (0, piece(0, "card 4111 1111 ")),
            (0, piece(1, "no card ")),
            (0, piece(0, "1111 1111")),
            (0, piece(1, "here")),
            (0, DONE),
        ];
        assert_eq!(
            kept_texts(script).await,
            ["card 4111 1111 1111 1111", "no card here"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn choices_past_those_asked_for_are_kept_as_one() {
        // Asked for two; a model server that numbers choices at will cannot make the relay keep
        // text, margins and watches for each.
        let script = vec![
            (0, piece(0, "a")),
            (0, piece(7, "b")),
            (0, piece(9, "c")),
            (0, DONE),
        ];
        assert_eq!(kept_texts(script).await, ["a", "bc"]);
    }

    #[test]
    fn no_digit_of_a_card_the_content_logs_budget_cuts_is_logged() {
        // Two interleaved choices fill the budget; a card in each comes as it runs out: in
        // the first, the cut falls inside the card; in the second, just before it.
        let mut kept = KeptTexts::default();
        kept.keep(0, &content(&"x".repeat(40_000)));
        kept.keep(1, &content(&"y".repeat(MAX_KEPT_TEXT - 40_000 - 6)));
        kept.keep(0, &content(" 4111 1111 1111 1111 and on"));
        kept.keep(1, &content(" 5555 5555 5555 4444 and on"));
        let choices = kept.into_choices();
        assert_eq!(choices[0].cut, Some(40_006));
        assert_eq!(choices[1].cut, Some(MAX_KEPT_TEXT - 40_006));
        let redactor = hangar_guard::Redactor::default();
        let logged: Vec<String> = choices
            .iter()
            .map(|choice| {
                let cut = choice.cut.unwrap_or(choice.text.len());
                redactor.redact_prefix(&choice.text, cut).text.into_owned()
            })
            .collect();
        assert!(
            logged[0].ends_with("x [REDACTED:card_number]"),
            "{}",
            &logged[0][39_990..]
        );
        assert!(logged[1].ends_with('y'), "{}", &logged[1][25_000..]);
        for text in &logged {
            assert!(!text.contains("41") && !text.contains("55"));
        }
        // Past the margin nothing more is read.
        let mut kept = KeptTexts::default();
        kept.keep(0, &content(&"x".repeat(MAX_KEPT_TEXT + KEPT_MARGIN + 10)));
        assert_eq!(
            kept.into_choices()[0].text.len(),
            MAX_KEPT_TEXT + KEPT_MARGIN
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_that_stops_before_its_end_ends_in_an_error() {
        let finished: &[u8] =
            b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
        let second: &[u8] =
            b"data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"y\"}}]}\n\n";
        // llama.cpp's own format before it spoke OpenAI's: no choices, no `[DONE]`.
        let own: &[u8] = b"data: {\"content\":\"x\",\"stop\":true}\n\n";
        for (script, whole) in [
            (vec![(0, ROLE), (0, TOKEN)], false),
            (vec![(0, ROLE), (0, TOKEN), (0, finished)], true),
            (vec![(0, ROLE), (0, TOKEN), (0, DONE)], true),
            // With `n: 2`, the second choice cut before its end.
            (vec![(0, ROLE), (0, second), (0, finished)], false),
            (vec![(0, own)], true),
            // Nothing but a keep-alive comment.
            (vec![(0, b": keep-alive\n\n")], false),
            // Data that is not JSON: nothing to tell its end by.
            (vec![(0, b"data: hello\n\n")], true),
        ] {
            let (_, mut client, summary) = relay_of(
                script,
                rules(Duration::from_secs(10), Duration::from_secs(10)),
            );
            let received = read_all(&mut client, Duration::ZERO).await;
            assert_eq!(
                !received.contains("upstream_incomplete"),
                whole,
                "{received}"
            );
            let summary = summary.await.unwrap();
            let expected = if whole {
                (StreamEnd::Complete, None)
            } else {
                (StreamEnd::UpstreamError, Some("incomplete"))
            };
            assert_eq!(
                (summary.end, summary.upstream_failure),
                expected,
                "{received}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_too_large_to_read_still_counts_and_hides_the_model_servers_name() {
        // It comes in two frames: the first is passed on unread at `MAX_EVENT`.
        let huge: &'static [u8] = format!(
            "data: {{\"model\":\"org/model-7b\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n",
            "z".repeat(MAX_EVENT)
        )
        .into_bytes()
        .leak();
        let (first, rest) = huge.split_at(MAX_EVENT + 10);
        let (_, mut client, summary) = relay_of(
            vec![(0, first), (0, rest), (0, DONE)],
            rules(Duration::from_secs(10), Duration::from_secs(10)),
        );
        let received = read_all(&mut client, Duration::ZERO).await;
        let summary = summary.await.unwrap();
        assert!(
            summary.text_bytes >= MAX_EVENT as u64,
            "{}",
            summary.text_bytes
        );
        assert!(received.starts_with("data: {\"model\":\"m\","));
        assert!(!received.contains("org/model-7b"));
        assert_eq!(
            received.matches('z').count(),
            MAX_EVENT,
            "nothing else changed"
        );
    }

    #[test]
    fn only_the_quoted_name_is_replaced() {
        let piece =
            br#"{"model":"org/m","content":"not org/m, nor \"org/m\"; "org/m","x":"\"org/m"}"#;
        let replaced = replace_quoted(piece, "org/m", "pub").unwrap();
        assert_eq!(
            String::from_utf8(replaced).unwrap(),
            r#"{"model":"pub","content":"not org/m, nor \"org/m\"; "pub","x":"\"org/m"}"#
        );
        assert_eq!(replace_quoted(b"nothing here", "org/m", "pub"), None);
        assert_eq!(replace_quoted(b"\"\"", "", "pub"), None);
        assert_eq!(replace_quoted(br#""pub""#, "pub", "pub"), None);
    }

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
        assert_eq!(read_event(chunk).text(), "Hel");
        let tool = br#"data: {"choices":[{"index":1,"delta":{"reasoning_content":"hm","tool_calls":[{"function":{"arguments":"{\"a\""}}]}}]}"#;
        let texts = read_event(tool).texts;
        assert_eq!(texts.len(), 1);
        assert_eq!((texts[0].choice, texts[0].text.as_str()), (1, "hm\n{\"a\""));
        let usage = br#"data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#;
        let facts = read_event(usage);
        assert_eq!(facts.usage, Some((7, 3)));
        assert!(facts.usage_only);
        // An embedding's report has no completion tokens.
        let embedding = br#"data: {"usage":{"prompt_tokens":7,"total_tokens":7}}"#;
        assert_eq!(read_event(embedding).usage, Some((7, 0)));
        // A generated answer without them is charged its total less the prompt.
        let total = br#"data: {"choices":[],"usage":{"prompt_tokens":12,"total_tokens":500}}"#;
        assert_eq!(read_event(total).usage, Some((12, 488)));
        // A report the gateway cannot trust is none: it counts the tokens itself.
        for broken in [
            r#"{}"#,
            r#"{"input_tokens":7,"output_tokens":3}"#,
            r#"{"prompt_tokens":-7,"completion_tokens":3}"#,
            r#"{"prompt_tokens":7,"completion_tokens":-3}"#,
            r#"{"prompt_tokens":7.5,"completion_tokens":3}"#,
            r#"{"prompt_tokens":"7","completion_tokens":3}"#,
            r#"{"prompt_tokens":7,"completion_tokens":null}"#,
            r#"{"prompt_tokens":7}"#,
        ] {
            let event = format!(r#"data: {{"choices":[],"usage":{broken}}}"#);
            assert_eq!(read_event(event.as_bytes()).usage, None, "{broken}");
        }
        // Content as parts, and a spoken answer's transcript.
        let parts =
            br#"data: {"choices":[{"delta":{"content":[{"type":"text","text":"Hel"},"lo"]}}]}"#;
        assert_eq!(read_event(parts).text(), "Hello");
        let audio =
            br#"data: {"choices":[{"delta":{"audio":{"data":"UklGR","transcript":"Hi"}}}]}"#;
        assert_eq!(read_event(audio).text(), "Hi");
        assert!(read_event(b"data: [DONE]\n\n").done);
        assert!(read_event(br#"data: {"error":{"message":"x"}}"#).error);
        assert!(read_event(b"data: not json\n\n").unread);
        // The rest of an event cut at `MAX_EVENT` has no `data:` of its own.
        assert!(read_event(b"zzz\"}}]}\n\n").unread);
        assert!(!read_event(b": keep-alive\nid: 3\n\n").unread);
        let stop = br#"data: {"choices":[{"index":1,"delta":{},"finish_reason":"stop"}]}"#;
        assert_eq!(read_event(stop).choices, [(1, true)]);
        let going = br#"data: {"choices":[{"index":0,"delta":{},"finish_reason":null}]}"#;
        assert_eq!(read_event(going).choices, [(0, false)]);
    }

    #[test]
    fn the_model_name_is_found_in_place_and_replaced() {
        let event = b"data: {\"id\":\"c1\",\"model\":\"fake-llama\",\"choices\":[]}\n\n";
        let span = read_event(event).model.unwrap();
        assert_eq!(&event[span.clone()], b"\"fake-llama\"");
        let renamed = json::replace_str(event, span.clone(), "team/\"chat\"").unwrap();
        assert_eq!(
            std::str::from_utf8(&renamed).unwrap(),
            "data: {\"id\":\"c1\",\"model\":\"team/\\\"chat\\\"\",\"choices\":[]}\n\n"
        );
        assert_eq!(json::replace_str(event, span, "fake-llama"), None);
        // Data over two lines is read from a copy: no offset into the event, so the event is
        // written anew, its other fields kept.
        let split = b"id: 7\ndata: {\"model\":\"fake-llama\",\ndata: \"choices\":[]}\n\n";
        let facts = read_event(split);
        assert_eq!(facts.model, None);
        assert_eq!(
            renamed_event(split, &facts, "llama").as_deref(),
            Some(&b"id: 7\ndata: {\"choices\":[],\"model\":\"llama\"}\n\n"[..])
        );
        // A name written with escapes is not a slice of the event.
        let escaped = b"data: {\"model\":\"team\\/fake-llama\"}\n\n";
        let facts = read_event(escaped);
        assert_eq!(facts.model, None);
        assert_eq!(
            renamed_event(escaped, &facts, "llama").as_deref(),
            Some(&b"data: {\"model\":\"llama\"}\n\n"[..])
        );
        // Nothing to do: no model, or the public name already.
        let plain = b"data: {\"choices\":[]}\n\n";
        assert_eq!(renamed_event(plain, &read_event(plain), "llama"), None);
        let public = b"data: {\"model\":\"ll\\u0061ma\"}\n\n";
        assert_eq!(renamed_event(public, &read_event(public), "llama"), None);
    }

    /// Rules that cut the stream on `hgc-0123456789abcdef`.
    fn cutting_rules(idle: Duration) -> StreamRules {
        StreamRules {
            canaries: vec!["hgc-0123456789abcdef".into()],
            cut_on_leak: true,
            ..rules(Duration::from_secs(10), idle)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_cut_leaves_no_part_of_the_canary_with_the_client() {
        let (_, mut client, summary) = relay_of(
            vec![
                (0, ROLE),
                (0, piece(0, "The token is ")),
                (0, piece(0, "HGC-")),
                (0, piece(0, "0123")),
                (0, piece(0, "4567 89")),
                (0, piece(0, "ab cdef")),
                (0, DONE),
            ],
            cutting_rules(Duration::from_secs(10)),
        );
        let received = read_all(&mut client, Duration::ZERO).await;
        assert!(received.contains("The token is "), "{received}");
        // `HGC-` is let through: three letters of a canary tell nothing.
        for part in ["0123", "4567", "89", "cdef"] {
            assert!(
                !received.contains(part),
                "{part} reached the client: {received}"
            );
        }
        assert!(received.ends_with(&*String::from_utf8_lossy(&error_event(
            "the answer was cut: it contained this tenant's system-prompt canary",
            "canary_leak"
        ))));
        assert_eq!(summary.await.unwrap().end, StreamEnd::CanaryCut);
    }

    #[tokio::test(start_paused = true)]
    async fn events_held_for_a_canary_that_did_not_come_are_passed_on_in_order() {
        let script = vec![
            (0, ROLE),
            (0, piece(0, "hgc-0123")),
            (0, piece(0, " is not it")),
            (0, piece(0, " hgc-01234567")),
            (0, DONE),
        ];
        let (_, mut client, summary) = relay_of(script, cutting_rules(Duration::from_secs(10)));
        let received = read_all(&mut client, Duration::ZERO).await;
        let texts: String = event_data(&received)
            .iter()
            .filter_map(|data| serde_json::from_str::<serde_json::Value>(data).ok())
            .filter_map(|event| {
                event["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(texts, "hgc-0123 is not it hgc-01234567");
        assert!(received.ends_with("data: [DONE]\n\n"), "{received}");
        assert_eq!(summary.await.unwrap().end, StreamEnd::Complete);

        // A model server that falls silent mid-canary: what was held comes before the error.
        let script = vec![(0, piece(0, "hgc-0123")), (5_000, DONE)];
        let (_, mut client, summary) = relay_of(script, cutting_rules(Duration::from_secs(1)));
        let received = read_all(&mut client, Duration::ZERO).await;
        let events = event_data(&received);
        assert!(events[0].contains("hgc-0123"), "{received}");
        assert!(events[1].contains("upstream_timeout"), "{received}");
        assert_eq!(summary.await.unwrap().end, StreamEnd::UpstreamTimeout);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_cut_nothing_is_held() {
        let rules = StreamRules {
            cut_on_leak: false,
            ..cutting_rules(Duration::from_secs(1))
        };
        let script = vec![(0, piece(0, "hgc-0123")), (5_000, DONE)];
        let started = tokio::time::Instant::now();
        let (_, mut client, summary) = relay_of(script, rules);
        let first = client.frame().await.unwrap().unwrap().into_data().unwrap();
        assert!(String::from_utf8_lossy(&first).contains("hgc-0123"));
        // Passed on at once, not when the silence ended the stream.
        assert!(started.elapsed() < Duration::from_millis(100));
        drop(client);
        let _ = summary.await;
    }

    #[test]
    fn prefixes_respect_character_boundaries() {
        assert_eq!(prefix_within("héllo", 2), "h");
        assert_eq!(prefix_within("abc", 10), "abc");
    }
}
