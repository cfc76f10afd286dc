//! What a client connection has asked so far, for the deadlines that close idle ones: whether
//! any request came, and for HTTP/2, how many streams are open and since when none has been.
//! hyper closes an HTTP/1.1 connection whose next request does not come in time, but keeps an
//! HTTP/2 connection that answers its pings open for ever, however long it asks nothing.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Frame, SizeHint};

#[derive(Debug)]
pub(crate) struct Activity {
    opened: Instant,
    asked: AtomicBool,
    multiplexed: AtomicBool,
    open_streams: AtomicUsize,
    /// When the last stream ended, in milliseconds after `opened`.
    last_end_ms: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            opened: Instant::now(),
            asked: AtomicBool::new(false),
            multiplexed: AtomicBool::new(false),
            open_streams: AtomicUsize::new(0),
            last_end_ms: AtomicU64::new(0),
        })
    }

    pub(crate) fn asked(&self) -> bool {
        self.asked.load(Ordering::Relaxed)
    }

    pub(crate) fn multiplexed(&self) -> bool {
        self.multiplexed.load(Ordering::Relaxed)
    }

    /// A request arrived. One over HTTP/2 counts as an open stream until the guard returned,
    /// which goes into its answer's body, is dropped with the answer sent or abandoned.
    pub(crate) fn request(self: &Arc<Self>, version: http::Version) -> Option<OpenStream> {
        self.asked.store(true, Ordering::Relaxed);
        if version != http::Version::HTTP_2 {
            return None;
        }
        self.multiplexed.store(true, Ordering::Relaxed);
        self.open_streams.fetch_add(1, Ordering::Relaxed);
        Some(OpenStream(Arc::clone(self)))
    }

    /// How long no stream has been open: zero while one is.
    pub(crate) fn quiet_for(&self) -> Duration {
        // Acquire: seeing the last stream gone means seeing when it ended (streams end on
        // other threads).
        if self.open_streams.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let last_end = Duration::from_millis(self.last_end_ms.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(last_end)
    }
}

/// An HTTP/2 stream in progress; see [`Activity::request`].
#[derive(Debug)]
pub(crate) struct OpenStream(Arc<Activity>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        let activity = &self.0;
        let now = u64::try_from(activity.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        // The latest end wins when two streams end at once; the time is released with the
        // count, so that a watcher seeing no stream open also sees when the last ended.
        activity.last_end_ms.fetch_max(now, Ordering::Relaxed);
        activity.open_streams.fetch_sub(1, Ordering::Release);
    }
}

/// An answer's body, holding its stream open until it is sent or dropped.
#[derive(Debug)]
pub(crate) struct Answer<B> {
    body: B,
    _stream: Option<OpenStream>,
}

impl<B> Answer<B> {
    pub(crate) fn new(body: B, stream: Option<OpenStream>) -> Self {
        Answer {
            body,
            _stream: stream,
        }
    }
}

impl<B: Body + Unpin> Body for Answer<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http2_streams_are_counted_and_quiet_starts_when_the_last_ends() {
        let activity = Activity::new();
        assert!(!activity.asked());
        assert!(activity.request(http::Version::HTTP_11).is_none());
        assert!(activity.asked() && !activity.multiplexed());

        let first = activity.request(http::Version::HTTP_2);
        let second = activity.request(http::Version::HTTP_2);
        assert!(activity.multiplexed());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(activity.quiet_for(), Duration::ZERO);
        drop(first);
        assert_eq!(activity.quiet_for(), Duration::ZERO, "one is still open");
        drop(second);
        assert!(activity.quiet_for() < Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(30));
        assert!(activity.quiet_for() >= Duration::from_millis(25));
    }
}
