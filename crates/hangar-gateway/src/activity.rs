//! What a client connection has asked so far, for the deadlines that close idle ones: whether
//! any request came, and for HTTP/2, how many streams are open and since when none has been.
//! hyper closes an HTTP/1.1 connection whose next request does not come in time, but keeps an
//! HTTP/2 connection that answers its pings open for ever, however long it asks nothing.
//!
//! And whether the client takes what it is sent: neither hyper nor h2 has a time limit on a
//! write, so a client that stops reading (or, over HTTP/2, opens no flow-control window) would
//! hold its connection, and its place among `maxConnections`, for ever.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Debug)]
pub(crate) struct Activity {
    opened: Instant,
    asked: AtomicBool,
    multiplexed: AtomicBool,
    open_streams: AtomicUsize,
    /// When the last stream ended, in milliseconds after `opened`.
    last_end_ms: AtomicU64,
    /// Since when a write to the client has waited, in milliseconds after `opened`, plus one
    /// (0: none waits).
    write_waits_since: AtomicU64,
    /// The open HTTP/2 streams' answers.
    answers: Mutex<Vec<Weak<Progress>>>,
    /// Raised when the connection is to be asked to finish, from a request's handler.
    leave: tokio::sync::Notify,
    /// An answer over this HTTP/2 connection succeeded (so it carries a real client's requests).
    served: AtomicBool,
}

/// How far an answer's body has gone: when hyper last took from it, and whether the body was
/// then waiting on its own source (a model server thinking), which is no stall of the client's.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Milliseconds after the connection opened.
    last_ms: AtomicU64,
    waiting_on_source: AtomicBool,
}

impl Activity {
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            opened: Instant::now(),
            asked: AtomicBool::new(false),
            multiplexed: AtomicBool::new(false),
            open_streams: AtomicUsize::new(0),
            last_end_ms: AtomicU64::new(0),
            write_waits_since: AtomicU64::new(0),
            answers: Mutex::new(Vec::new()),
            leave: tokio::sync::Notify::new(),
            served: AtomicBool::new(false),
        })
    }

    /// The connection's watch is to ask it to finish (an HTTP/2 GOAWAY).
    pub(crate) fn ask_to_leave(&self) {
        self.leave.notify_one();
    }

    /// Completes once [`Activity::ask_to_leave`] was called.
    pub(crate) async fn asked_to_leave(&self) {
        self.leave.notified().await;
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// How long the client has left what it is sent untaken: a write to it waiting, or an
    /// HTTP/2 answer hyper has not asked for more of (its window is shut) while it had some.
    pub(crate) fn stalled_for(&self) -> Duration {
        let now = self.now_ms();
        let write = match self.write_waits_since.load(Ordering::Relaxed) {
            0 => 0,
            since => now.saturating_sub(since - 1),
        };
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        answers.retain(|answer| answer.strong_count() > 0);
        // Acquire, paired with `progressed`: an answer seen not waiting comes with the time it
        // stopped waiting, not an older one.
        let answer = (answers.iter().filter_map(Weak::upgrade))
            .filter(|progress| !progress.waiting_on_source.load(Ordering::Acquire))
            .map(|progress| now.saturating_sub(progress.last_ms.load(Ordering::Relaxed)))
            .max()
            .unwrap_or(0);
        Duration::from_millis(write.max(answer))
    }

    fn write_waits(&self) {
        if self.write_waits_since.load(Ordering::Relaxed) == 0 {
            let since = self.now_ms().saturating_add(1);
            self.write_waits_since.store(since, Ordering::Relaxed);
        }
    }

    fn write_done(&self) {
        self.write_waits_since.store(0, Ordering::Relaxed);
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
        let progress = Arc::new(Progress::default());
        progress.last_ms.store(self.now_ms(), Ordering::Relaxed);
        // Until its handler answers, the stream waits on the gateway, not on the client.
        progress.waiting_on_source.store(true, Ordering::Relaxed);
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        // Ended streams are forgotten here too, so that a connection asking fast does not pile
        // them up between two looks of its watch.
        if answers.len() >= 2 * self.open_streams.load(Ordering::Relaxed) + 16 {
            answers.retain(|answer| answer.strong_count() > 0);
        }
        answers.push(Arc::downgrade(&progress));
        Some(OpenStream(Arc::clone(self), progress))
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
pub(crate) struct OpenStream(Arc<Activity>, Arc<Progress>);

impl OpenStream {
    /// The stream's request was answered with `status`. A connection that has carried no
    /// successful request and meets a refused credential is told to go (GOAWAY): a client
    /// without a key must not hold a place among `maxConnections` by asking now and then,
    /// while a proxy's connection, which carries other clients' good requests too, stays.
    pub(crate) fn answered(&self, status: http::StatusCode) {
        let activity = &self.0;
        if status.is_success() {
            activity.served.store(true, Ordering::Relaxed);
        } else if status == http::StatusCode::UNAUTHORIZED
            && !activity.served.load(Ordering::Relaxed)
        {
            activity.ask_to_leave();
        }
    }

    /// hyper asked the answer's body for more: `waiting` when the body had nothing yet.
    fn progressed(&self, waiting: bool) {
        let (activity, progress) = (&self.0, &self.1);
        progress.last_ms.store(activity.now_ms(), Ordering::Relaxed);
        progress.waiting_on_source.store(waiting, Ordering::Release);
    }
}

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
    stream: Option<OpenStream>,
}

impl<B> Answer<B> {
    pub(crate) fn new(body: B, stream: Option<OpenStream>) -> Self {
        if let Some(stream) = &stream {
            // Answered: from now on, time without hyper asking for the body is the client's.
            stream.progressed(false);
        }
        Answer { body, stream }
    }
}

impl<B: Body + Unpin> Body for Answer<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Some(stream) = &self.stream {
            stream.progressed(polled.is_pending());
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A client connection's socket, telling its [`Activity`] when a write waits on the client.
#[derive(Debug)]
pub(crate) struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Watched { inner, activity }
    }

    fn note<T>(&self, written: &Poll<std::io::Result<T>>) {
        match written {
            Poll::Pending => self.activity.write_waits(),
            Poll::Ready(_) => self.activity.write_done(),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(&written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let flushed = Pin::new(&mut self.inner).poll_flush(cx);
        self.note(&flushed);
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
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
