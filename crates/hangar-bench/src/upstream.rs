//! A fake OpenAI-compatible model server made to cost as little as possible per request, so a
//! benchmark measures what sits in front of it. It answers `POST /v1/chat/completions` with
//! one fixed small answer, or, when the body says `"stream": true`, with `chunks` server-sent
//! events `interval` apart, a usage event when `stream_options.include_usage` is set, and
//! `data: [DONE]`. It records nothing and parses no JSON: it only looks for those two flags.
//!
//! (`hangar_testkit::fake_openai` is the faithful fake for tests; it keeps every request it
//! receives, parses each body and echoes the prompt, which a load test cannot afford.)

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};

/// The whole non-streamed answer.
pub const ANSWER: &str = concat!(
    r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench-model","#,
    r#""choices":[{"index":0,"message":{"role":"assistant","content":"The answer is 4."},"finish_reason":"stop"}],"#,
    r#""usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#
);

/// One token of a stream.
const CHUNK: &str = concat!(
    r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"bench-model","#,
    r#""choices":[{"index":0,"delta":{"content":"token "},"finish_reason":null}]}"#,
    "\n\n"
);

/// The last token's event.
const STOP: &str = concat!(
    r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"bench-model","#,
    r#""choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
    "\n\n"
);

/// The usage event, sent when the request asks for it.
const USAGE: &str = concat!(
    r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"bench-model","#,
    r#""choices":[],"usage":{"prompt_tokens":12,"completion_tokens":100,"total_tokens":112}}"#,
    "\n\n"
);

const DONE: &str = "data: [DONE]\n\n";

const MODELS: &str = r#"{"object":"list","data":[{"id":"bench-model","object":"model","created":0,"owned_by":"hangar-bench"}]}"#;

/// How streamed answers are paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamShape {
    /// Token events per answer.
    pub chunks: usize,
    /// Time before each token event, the first included.
    pub interval: Duration,
    /// Time before an answer not streamed: the whole generation, which model servers wait for
    /// before they send its headers.
    pub whole_delay: Duration,
}

impl Default for StreamShape {
    fn default() -> Self {
        StreamShape {
            chunks: 100,
            interval: Duration::from_millis(100),
            whole_delay: Duration::ZERO,
        }
    }
}

type AnswerBody = Either<Full<Bytes>, Drip>;

/// Serves HTTP/1.1 connections from `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, shape: StreamShape) {
    let shape = Arc::new(shape);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // Events must not wait on Nagle's algorithm; failing to set it only slows.
        let _ = stream.set_nodelay(true);
        let shape = Arc::clone(&shape);
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(*shape, request));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    shape: StreamShape,
    request: Request<Incoming>,
) -> Result<Response<AnswerBody>, Infallible> {
    let (parts, body) = request.into_parts();
    // Read the whole body, as a model server does, so the connection can be reused.
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(whole(StatusCode::BAD_REQUEST, "{}")),
    };
    let response = match (parts.method, parts.uri.path()) {
        (Method::POST, "/v1/chat/completions") if flag_is_true(&body, b"\"stream\"") => {
            stream(shape, flag_is_true(&body, b"\"include_usage\""))
        }
        (Method::POST, "/v1/chat/completions") => {
            if !shape.whole_delay.is_zero() {
                tokio::time::sleep(shape.whole_delay).await;
            }
            whole(StatusCode::OK, ANSWER)
        }
        (Method::GET, "/v1/models") => whole(StatusCode::OK, MODELS),
        _ => whole(
            StatusCode::NOT_FOUND,
            r#"{"error":{"message":"not found","type":"invalid_request_error"}}"#,
        ),
    };
    Ok(response)
}

fn whole(status: StatusCode, body: &'static str) -> Response<AnswerBody> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from_static(body.as_bytes()))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn stream(shape: StreamShape, usage: bool) -> Response<AnswerBody> {
    let mut tail = String::from(STOP);
    if usage {
        tail.push_str(USAGE);
    }
    tail.push_str(DONE);
    let drip = Drip {
        sleep: Box::pin(tokio::time::sleep(shape.interval)),
        interval: shape.interval,
        left: shape.chunks,
        tail: Some(Bytes::from(tail)),
    };
    let mut response = Response::new(Either::Right(drip));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    response
}

/// Whether the JSON text `body` has the key `key` (quotes included) set to `true`. A key inside
/// a string value is escaped (`\"stream\"`), so it does not match.
pub fn flag_is_true(body: &[u8], key: &[u8]) -> bool {
    let mut from = 0;
    while let Some(at) = find(&body[from..], key) {
        let rest = &body[from + at + key.len()..];
        let rest = skip_space(rest);
        if let Some(rest) = rest.strip_prefix(b":") {
            return skip_space(rest).starts_with(b"true");
        }
        from += at + key.len();
    }
    false
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn skip_space(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// A streamed answer: one token event per interval, then the closing events.
pub struct Drip {
    sleep: Pin<Box<Sleep>>,
    interval: Duration,
    left: usize,
    tail: Option<Bytes>,
}

impl Body for Drip {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if this.left == 0 {
            return Poll::Ready(this.tail.take().map(|tail| Ok(Frame::data(tail))));
        }
        if this.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.left -= 1;
        // From now, not from the deadline: a late event must not bunch the next ones up.
        let next = Instant::now() + this.interval;
        this.sleep.as_mut().reset(next);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(CHUNK.as_bytes())))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0 && self.tail.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_stream_flag_only_as_a_key() {
        assert!(flag_is_true(
            br#"{"model":"m","stream": true}"#,
            b"\"stream\""
        ));
        assert!(flag_is_true(br#"{"stream" :true,"x":1}"#, b"\"stream\""));
        assert!(!flag_is_true(br#"{"stream":false}"#, b"\"stream\""));
        assert!(!flag_is_true(
            br#"{"stream_options":{"include_usage":true}}"#,
            b"\"stream\""
        ));
        assert!(!flag_is_true(
            br#"{"content":"say \"stream\": true"}"#,
            b"\"stream\""
        ));
        assert!(flag_is_true(
            br#"{"stream":true,"stream_options":{"include_usage":true}}"#,
            b"\"include_usage\""
        ));
        assert!(!flag_is_true(b"", b"\"stream\""));
    }

    #[test]
    fn the_fixed_answers_are_json() {
        for text in [ANSWER, MODELS] {
            assert!(
                serde_json::from_str::<serde_json::Value>(text).is_ok(),
                "{text}"
            );
        }
        for event in [CHUNK, STOP, USAGE] {
            let data = event.trim_end().strip_prefix("data: ").unwrap();
            assert!(
                serde_json::from_str::<serde_json::Value>(data).is_ok(),
                "{event}"
            );
        }
    }
}
