//! Reading the tails of containers' logs, bounded in lines and bytes, a few at a time.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use futures_util::io::{AsyncRead, AsyncReadExt};
use hangar_core::NotCovered;
use hangar_triage::{LogTail, Logs};
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use kube::{Api, Client};
use tokio::sync::Semaphore;
use tokio::task::{JoinError, JoinSet};

use super::listing::describe;

/// How much of each log to read. The tail is what tells why a container died; the bounds keep a
/// triage of hundreds of pods quick and small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBounds {
    pub lines: usize,
    pub bytes: usize,
}

impl Default for LogBounds {
    fn default() -> Self {
        LogBounds {
            lines: 300,
            bytes: 64 * 1024,
        }
    }
}

/// The last lines of a log within its bounds, kept while reading so a log of any size takes
/// memory for the bounds only. A line longer than the byte bound keeps its end, cut at a character
/// boundary: that is where a crash's message is, and the rules' patterns never see a 94 MB line.
#[derive(Debug)]
pub(crate) struct BoundedTail {
    lines: VecDeque<(u32, String)>,
    bytes: usize,
    bounds: LogBounds,
    /// Earlier lines, or the start of a long line, were dropped.
    cut: bool,
}

impl BoundedTail {
    pub(crate) fn new(bounds: LogBounds) -> Self {
        BoundedTail {
            lines: VecDeque::new(),
            bytes: 0,
            bounds,
            cut: false,
        }
    }

    /// Keeps line `number`, given as the last bytes read of it; `cut` when its start was already
    /// dropped while reading. Invalid UTF-8 becomes U+FFFD: one bad byte must not hide a log.
    pub(crate) fn push(&mut self, number: u32, line: &[u8], cut: bool) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (text, shortened) = last_bytes(line, self.bounds.bytes);
        self.cut |= cut || shortened;
        self.bytes += text.len() + 1;
        self.lines.push_back((number, text));
        while self.lines.len() > self.bounds.lines
            || (self.bytes > self.bounds.bytes && self.lines.len() > 1)
        {
            if let Some((_, gone)) = self.lines.pop_front() {
                self.bytes -= gone.len() + 1;
                self.cut = true;
            }
        }
    }

    /// The tail read from `source`; `numbered` when `source` is a file whose line numbers were
    /// passed to `push`. `None` when nothing was kept.
    pub(crate) fn finish(self, source: String, numbered: bool) -> Option<LogTail> {
        let first_line = self.lines.front().map(|(n, _)| *n)?;
        Some(LogTail {
            source,
            first_line: numbered.then_some(first_line),
            lines: self.lines.into_iter().map(|(_, l)| l).collect(),
            truncated: self.cut,
        })
    }
}

/// The last `keep` bytes of `line` as text, starting at a character boundary, and whether
/// anything was cut.
pub(crate) fn last_bytes(line: &[u8], keep: usize) -> (String, bool) {
    let mut start = line.len().saturating_sub(keep);
    // Skip UTF-8 continuation bytes so the cut falls between characters.
    while start < line.len() && start > 0 && line[start] & 0b1100_0000 == 0b1000_0000 {
        start += 1;
    }
    let text = String::from_utf8_lossy(&line[start..]);
    if text.len() <= keep {
        return (text.into_owned(), start > 0);
    }
    // Replacement characters are wider than the bytes they replace: trim again.
    let mut from = text.len() - keep;
    while !text.is_char_boundary(from) {
        from += 1;
    }
    (text[from..].to_owned(), true)
}

/// One container whose logs to read: the current instance's, and the previous one's when the
/// container has restarted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRequest {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub previous: bool,
}

/// Log reads in flight at once: enough to hide latency, few enough to spare the API server.
const CONCURRENT_READS: usize = 8;

/// Reads every requested log tail. Logs that cannot be read (RBAC on `pods/log`, a kubelet that
/// does not answer, a read that panicked) are one `pods/log` gap in `not_covered` naming their
/// pods; a previous instance that does not exist is simply absent.
pub async fn fetch_logs(
    client: &Client,
    requests: Vec<LogRequest>,
    bounds: LogBounds,
    not_covered: &mut Vec<NotCovered>,
) -> Logs {
    let (logs, unread) = read_all(requests, |request| {
        let client = client.clone();
        async move { read_log(&client, &request, bounds).await }
    })
    .await;
    unread.record(not_covered);
    logs
}

/// Runs `read` on every request, `CONCURRENT_READS` at a time. A read whose task panicked or was
/// cancelled is a log not read like any other, naming its container: a task that vanished would
/// leave a pod's evidence missing with no gap saying so.
async fn read_all<Read, Reading>(requests: Vec<LogRequest>, read: Read) -> (Logs, UnreadLogs)
where
    Read: Fn(LogRequest) -> Reading,
    Reading: Future<Output = Result<Option<LogTail>, String>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(CONCURRENT_READS));
    let mut tasks = JoinSet::new();
    // A failed task's error carries only its id: the request is found by it.
    let mut requested = HashMap::new();
    for request in requests {
        let permits = Arc::clone(&permits);
        let reading = read(request.clone());
        let task = tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            reading.await
        });
        requested.insert(task.id(), request);
    }
    let mut logs = Logs::default();
    let mut unread = UnreadLogs::default();
    while let Some(joined) = tasks.join_next_with_id().await {
        let (id, outcome) = match joined {
            Ok((id, result)) => (id, Ok(result)),
            Err(error) => (error.id(), Err(error)),
        };
        // Every task spawned above is in `requested`.
        let Some(request) = requested.remove(&id) else {
            continue;
        };
        let result = match outcome {
            Ok(result) => result,
            Err(error) => Err(format!(
                "cannot read the log of {}/{} container {}: {}",
                request.namespace,
                request.pod,
                request.container,
                task_failure(error)
            )),
        };
        let key = (request.namespace, request.pod, request.container);
        match result {
            Ok(Some(tail)) => {
                let map = if request.previous {
                    &mut logs.previous
                } else {
                    &mut logs.current
                };
                map.insert(key, tail);
            }
            Ok(None) => {}
            Err(reason) => unread.add(key, request.previous, reason),
        }
    }
    (logs, unread)
}

/// Why a reading task ended without a result: its panic, with the message when it has one.
fn task_failure(error: JoinError) -> String {
    let Ok(payload) = error.try_into_panic() else {
        return "the reading task was cancelled".into();
    };
    let message = (payload.downcast_ref::<&str>().map(|m| (*m).to_owned()))
        .or_else(|| payload.downcast_ref::<String>().cloned());
    match message {
        Some(message) => format!("the reading task panicked: {message}"),
        None => "the reading task panicked".into(),
    }
}

/// Pods named in a `pods/log` gap before the rest are only counted.
const UNREAD_PODS_NAMED: usize = 10;

/// The container logs that could not be read, and why, recorded as one `pods/log` gap that
/// names their pods: a gap must say which pods' evidence is missing, and one NotReady node or a
/// namespace RBAC refuses fails many reads alike.
#[derive(Debug, Default)]
pub struct UnreadLogs {
    /// Why, by `(namespace, pod, container, previous)`: sorted, so the gap reads the same
    /// whatever order the reads ended in.
    reasons: BTreeMap<(String, String, String, bool), String>,
}

impl UnreadLogs {
    /// Notes that the log of container `(namespace, pod, container)` (its previous instance's
    /// when `previous`) was not read, and why.
    pub(crate) fn add(
        &mut self,
        (namespace, pod, container): (String, String, String),
        previous: bool,
        reason: String,
    ) {
        let key = (namespace, pod, container, previous);
        self.reasons.entry(key).or_insert(reason);
    }

    /// Keeps the logs of the pods `wanted` keeps (by namespace and name) alone: a dump holds
    /// every pod's, where a live triage reads only those of the endpoints triaged.
    pub(crate) fn retain_pods(&mut self, wanted: impl Fn(&str, &str) -> bool) {
        self.reasons
            .retain(|(namespace, pod, _, _), _| wanted(namespace, pod));
    }

    /// Each log not read, in order: its `[namespace, pod, container]`, whether it is the previous
    /// instance's, and why; what `add` was given, so a bundle can keep them and give them back.
    pub(crate) fn iter(&self) -> impl Iterator<Item = ([&str; 3], bool, &str)> {
        (self.reasons.iter()).map(|((namespace, pod, container, previous), reason)| {
            let names = [namespace.as_str(), pod.as_str(), container.as_str()];
            (names, *previous, reason.as_str())
        })
    }

    pub(crate) fn absorb(&mut self, other: UnreadLogs) {
        for (key, reason) in other.reasons {
            self.reasons.entry(key).or_insert(reason);
        }
    }

    /// Adds the gap to `not_covered`, when a log was not read: the reason itself when one pod's
    /// logs were not, or else the pods (the first few, then how many more) and the first reason.
    pub(crate) fn record(self, not_covered: &mut Vec<NotCovered>) {
        let pods: BTreeSet<String> = (self.reasons.keys())
            .map(|(namespace, pod, _, _)| format!("{namespace}/{pod}"))
            .collect();
        let Some(first) = self.reasons.into_values().next() else {
            return;
        };
        let reason = if pods.len() == 1 {
            first
        } else {
            let mut named: Vec<String> = pods.iter().take(UNREAD_PODS_NAMED).cloned().collect();
            if pods.len() > UNREAD_PODS_NAMED {
                named.push(format!("and {} more", pods.len() - UNREAD_PODS_NAMED));
            }
            format!(
                "the logs of {} pods were not read: {}; the first: {first}",
                pods.len(),
                named.join(", ")
            )
        };
        not_covered.push(NotCovered {
            kind: "pods/log".into(),
            reason,
        });
    }
}

/// How many times the byte bound the API server may send: it applies `limitBytes` from the start
/// of the `tailLines` window, so a tight cap would cut the window's end, where the crash is.
const SERVER_BYTES_FACTOR: usize = 4;

/// The most of a last line read through to keep its end. The kubelet rotates a container's log at
/// `containerLogMaxSize` (10 MiB by default), so no line it serves is near this: it only stops a
/// server that never ends the stream.
const LINE_READ_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// One log tail; `Ok(None)` when there is nothing to read (no previous instance, empty log).
/// The last `bounds.lines` lines are asked for with a generous byte cap; when even that cuts
/// the window, fewer lines are asked for until the window's end fits. When the last line alone
/// is longer than the cap, the server's cut keeps its start: it is read again whole, keeping its
/// end, where an OOM or CUDA error is written (`BoundedTail` keeps a long line's end, and so do
/// dumps). The tail is then trimmed to the bounds from the front, and decoded lossily: a log cut
/// inside a character, or with binary bytes in it, is still read.
async fn read_log(
    client: &Client,
    request: &LogRequest,
    bounds: LogBounds,
) -> Result<Option<LogTail>, String> {
    let limit = bounds.bytes.saturating_mul(SERVER_BYTES_FACTOR);
    let mut tail_lines = bounds.lines;
    let (body, cut_by_server) = loop {
        let Some(body) = read_window(client, request, tail_lines, Hold::First(limit)).await? else {
            return Ok(None);
        };
        if body.len() < limit {
            break (body, false);
        }
        if tail_lines <= 1 {
            // Should the pod be gone by the second reading, the first one's start of the line
            // (its time and level) is still evidence. Any other failure is a log not read.
            let end = read_window(client, request, 1, Hold::Last(bounds.bytes)).await?;
            let end = end.unwrap_or_else(|| start_within(body, bounds.bytes));
            break (end, true);
        }
        tail_lines /= 2;
    };
    let mut tail = BoundedTail::new(bounds);
    let text = body.strip_suffix(b"\n").unwrap_or(&body);
    let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    for (index, line) in lines.iter().enumerate() {
        tail.push(u32::try_from(index + 1).unwrap_or(u32::MAX), line, false);
    }
    let source = format!(
        "cluster: kubectl -n {} logs {} -c {}{}",
        request.namespace,
        request.pod,
        request.container,
        if request.previous { " --previous" } else { "" }
    );
    Ok(tail.finish(source, false).map(|mut tail| {
        // The server returned at most `tail_lines` lines: a full count means earlier ones exist.
        tail.truncated |= cut_by_server || lines.len() >= tail_lines;
        tail
    }))
}

/// The first `bytes` of `line`, cut at a character's start when it is UTF-8 there.
fn start_within(mut line: Vec<u8>, bytes: usize) -> Vec<u8> {
    let mut cut = bytes.min(line.len());
    // A UTF-8 continuation byte is 0b10xxxxxx: back off at most three to a character's start.
    for _ in 0..3 {
        if cut > 0 && line.get(cut).is_some_and(|b| b & 0xC0 == 0x80) {
            cut -= 1;
        }
    }
    line.truncate(cut);
    line
}

/// Which bytes of a window to hold.
#[derive(Debug, Clone, Copy)]
enum Hold {
    /// The first ones, at most this many: the server is asked to send no more (`limitBytes`).
    First(usize),
    /// The last ones, at most this many (and a line break after them): the window is read to its
    /// end, held this many at a time.
    Last(usize),
}

/// The raw bytes of the last `tail_lines` lines that `hold` keeps; `Ok(None)` when there is no
/// such log or it is empty.
async fn read_window(
    client: &Client,
    request: &LogRequest,
    tail_lines: usize,
    hold: Hold,
) -> Result<Option<Vec<u8>>, String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &request.namespace);
    let params = LogParams {
        container: Some(request.container.clone()),
        previous: request.previous,
        tail_lines: i64::try_from(tail_lines).ok(),
        limit_bytes: match hold {
            Hold::First(limit) => i64::try_from(limit).ok(),
            Hold::Last(_) => None,
        },
        ..LogParams::default()
    };
    let failed = |error: &dyn std::fmt::Display| {
        format!(
            "cannot read the log of {}/{} container {}: {error}",
            request.namespace, request.pod, request.container
        )
    };
    let stream = match api.log_stream(&request.pod, &params).await {
        Ok(stream) => stream,
        // "previous terminated container … not found", or a pod gone since it was listed.
        Err(kube::Error::Api(status)) if status.code == 400 || status.code == 404 => {
            return Ok(None);
        }
        Err(error) => return Err(failed(&describe(&error))),
    };
    let mut body = Vec::new();
    let read = match hold {
        // A server that ignores `limitBytes` still cannot make us hold more than the cap.
        Hold::First(limit) => stream
            .take(u64::try_from(limit).unwrap_or(u64::MAX))
            .read_to_end(&mut body)
            .await
            .map(|_| ()),
        Hold::Last(keep) => keep_end(stream.take(LINE_READ_MAX_BYTES), keep, &mut body).await,
    };
    read.map_err(|e| failed(&e))?;
    Ok((!body.is_empty()).then_some(body))
}

/// Reads `reader` to its end, leaving in `end` its last `keep` bytes and up to two more, for the
/// `\r\n` a line may end with: a line of any length takes memory for the bound only.
async fn keep_end(
    mut reader: impl AsyncRead + Unpin,
    keep: usize,
    end: &mut Vec<u8>,
) -> std::io::Result<()> {
    let keep = keep.saturating_add(2);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let read = match reader.read(&mut chunk).await {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        end.extend_from_slice(chunk.get(..read).unwrap_or(&chunk));
        // Drain in batches, so a long line costs linear time.
        if end.len() > keep.saturating_mul(2).max(keep.saturating_add(chunk.len())) {
            let excess = end.len() - keep;
            end.drain(..excess);
        }
    }
    let excess = end.len().saturating_sub(keep);
    end.drain(..excess);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangar_testkit::{FakeApiServer, objects};

    fn request() -> LogRequest {
        LogRequest {
            namespace: "ml".into(),
            pod: "vllm-0".into(),
            container: "vllm".into(),
            previous: true,
        }
    }

    /// The fake API server with `log` as vllm-0's previous log, and the tail read of it within
    /// 10 lines and 100 bytes.
    async fn read_previous_log(log: &[u8]) -> (FakeApiServer, LogTail) {
        read_previous_log_from(FakeApiServer::builder(), log).await
    }

    /// [`read_previous_log`] from a server `builder` makes.
    async fn read_previous_log_from(
        builder: hangar_testkit::FakeApiServerBuilder,
        log: &[u8],
    ) -> (FakeApiServer, LogTail) {
        let server = builder
            .object(objects::pod("ml", "vllm-0", "vllm/vllm-openai:v0.10.1"))
            .log_bytes("ml", "vllm-0", "vllm", true, log)
            .start()
            .await
            .unwrap();
        let bounds = LogBounds {
            lines: 10,
            bytes: 100,
        };
        let mut not_covered = Vec::new();
        let mut logs = fetch_logs(
            &crate::live::test_client(&server).await,
            vec![request()],
            bounds,
            &mut not_covered,
        )
        .await;
        assert!(not_covered.is_empty(), "{not_covered:?}");
        let key = ("ml".into(), "vllm-0".into(), "vllm".into());
        (server, logs.previous.remove(&key).unwrap())
    }

    #[tokio::test]
    async fn the_crash_at_the_end_of_a_long_window_is_kept_and_bad_bytes_are_read() {
        // Twenty lines of 60 bytes, one with a byte that is not UTF-8, and a cut `é` the server's
        // byte limit may fall into; the crash is the last line.
        let mut log = Vec::new();
        for i in 0..19 {
            log.extend_from_slice(
                format!("INFO {i:02} loading weights {}\n", "é".repeat(20)).as_bytes(),
            );
        }
        log.extend_from_slice(b"WARN binary \xff\xfe output\n");
        log.extend_from_slice(b"ERROR CUDA out of memory\n");
        let (server, tail) = read_previous_log(&log).await;
        assert_eq!(
            tail.lines.last().map(String::as_str),
            Some("ERROR CUDA out of memory")
        );
        assert!(
            tail.lines
                .iter()
                .any(|l| l == "WARN binary \u{fffd}\u{fffd} output"),
            "{:?}",
            tail.lines
        );
        assert!(tail.lines.iter().map(|l| l.len() + 1).sum::<usize>() <= 101);
        assert!(tail.truncated);
        // A generous cap first, then a smaller window when even that cut the end off.
        let sent: Vec<(Option<String>, Option<String>)> = server
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/log"))
            .map(|r| {
                (
                    r.query_param("tailLines").map(str::to_owned),
                    r.query_param("limitBytes").map(str::to_owned),
                )
            })
            .collect();
        assert_eq!(sent[0], (Some("10".into()), Some("400".into())));
        assert!(sent.len() > 1, "{sent:?}");
    }

    #[tokio::test]
    async fn an_oversized_last_line_keeps_its_end_where_the_error_is() {
        // A last line of 2 000 bytes, twenty times the byte bound and five times the server's
        // cap: a timestamp at its start, the error at its end.
        let error = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB";
        let last = format!("2025-03-03 17:01:41 ERROR {} {error}", "x".repeat(2_000));
        let log = format!("INFO loading weights\nINFO warming up\n{last}\n");
        let (server, tail) = read_previous_log(log.as_bytes()).await;
        assert_eq!(tail.lines, [&last[last.len() - 100..]]);
        assert!(tail.lines[0].ends_with(error), "{:?}", tail.lines);
        assert!(tail.truncated);
        // The server's cut kept the line's start; the last read took the line whole.
        let last_read = (server.requests().into_iter())
            .rfind(|r| r.path.ends_with("/log"))
            .unwrap();
        assert_eq!(last_read.query_param("tailLines"), Some("1"));
        assert_eq!(last_read.query_param("limitBytes"), None);
        // Should the pod go before that last reading, the line's start is kept.
        let gone = FakeApiServer::builder().fail_uncapped_log("ml", "vllm-0", 404);
        let (_, tail) = read_previous_log_from(gone, log.as_bytes()).await;
        assert_eq!(tail.lines, [&last[..100]]);
        assert!(tail.truncated);
        // Any other failure of it is a log not read.
        let failing = FakeApiServer::builder()
            .object(objects::pod("ml", "vllm-0", "vllm/vllm-openai:v0.10.1"))
            .log("ml", "vllm-0", "vllm", true, &log)
            .fail_uncapped_log("ml", "vllm-0", 500)
            .start()
            .await
            .unwrap();
        let mut not_covered = Vec::new();
        let bounds = LogBounds {
            lines: 10,
            bytes: 100,
        };
        let client = crate::live::test_client(&failing).await;
        let logs = fetch_logs(&client, vec![request()], bounds, &mut not_covered).await;
        assert!(logs.previous.is_empty(), "{:?}", logs.previous);
        assert_eq!(not_covered.len(), 1, "{not_covered:?}");
    }

    #[test]
    fn a_lines_start_is_cut_at_a_characters_start() {
        assert_eq!(start_within("ééé".as_bytes().to_vec(), 3), "é".as_bytes());
        assert_eq!(start_within(b"abc".to_vec(), 10), b"abc");
        assert_eq!(start_within(b"\x80\x80\x80\x80\x80".to_vec(), 4), b"\x80");
        assert_eq!(start_within(b"\x80\x80\x80\x80\x80".to_vec(), 2), b"");
    }

    #[tokio::test]
    async fn a_line_read_through_keeps_its_last_bytes_and_its_line_break() {
        // 200 000 bytes of `é` first, so the bytes held are dropped while reading.
        let mut line = "é".repeat(100_000).into_bytes();
        line.extend_from_slice(b" CUDA error: an illegal memory access\r\n");
        let mut end = Vec::new();
        keep_end(&line[..], 36, &mut end).await.unwrap();
        assert_eq!(end, b"CUDA error: an illegal memory access\r\n");
        let mut end = Vec::new();
        keep_end(&b"short\n"[..], 36, &mut end).await.unwrap();
        assert_eq!(end, b"short\n");
    }

    #[tokio::test]
    async fn a_read_that_panics_is_a_gap_naming_its_pod() {
        let other = LogRequest {
            pod: "vllm-1".into(),
            ..request()
        };
        let (logs, unread) = read_all(vec![request(), other], |request| async move {
            if request.pod == "vllm-1" {
                panic!("decoder state corrupt");
            }
            Ok::<_, String>(Some(LogTail {
                lines: vec!["INFO ready".into()],
                ..LogTail::default()
            }))
        })
        .await;
        assert_eq!(logs.previous.len(), 1, "{:?}", logs.previous);
        let mut not_covered = Vec::new();
        unread.record(&mut not_covered);
        let [gap]: [NotCovered; 1] = not_covered.try_into().unwrap();
        assert_eq!(gap.kind, "pods/log");
        assert_eq!(
            gap.reason,
            "cannot read the log of ml/vllm-1 container vllm: the reading task panicked: decoder state corrupt"
        );
    }

    #[test]
    fn logs_not_read_are_one_gap_naming_their_pods() {
        let container = |pod: &str| ("ml".to_owned(), pod.to_owned(), "vllm".to_owned());
        let refused = |pod: &str| format!("cannot read the log of ml/{pod} container vllm: 502");
        let gap = |unread: UnreadLogs| {
            let mut not_covered = Vec::new();
            unread.record(&mut not_covered);
            not_covered
        };
        assert!(gap(UnreadLogs::default()).is_empty());

        // One pod, its current and previous logs: its first reason, which names it.
        let mut unread = UnreadLogs::default();
        unread.add(container("vllm-0"), true, refused("vllm-0"));
        unread.add(container("vllm-0"), false, refused("vllm-0"));
        let [one]: [NotCovered; 1] = gap(unread).try_into().unwrap();
        assert_eq!(one.kind, "pods/log");
        assert_eq!(one.reason, refused("vllm-0"));

        // Twelve pods, the reads ending in any order: ten named, the rest counted.
        let mut unread = UnreadLogs::default();
        for i in (0..12).rev() {
            let pod = format!("vllm-{i:02}");
            unread.add(container(&pod), false, refused(&pod));
        }
        let mut other = UnreadLogs::default();
        other.add(container("vllm-00"), false, "not the first".into());
        unread.absorb(other);
        let [many]: [NotCovered; 1] = gap(unread).try_into().unwrap();
        let names: Vec<String> = (0..10).map(|i| format!("ml/vllm-{i:02}")).collect();
        assert_eq!(
            many.reason,
            format!(
                "the logs of 12 pods were not read: {}, and 2 more; the first: {}",
                names.join(", "),
                refused("vllm-00")
            )
        );
    }

    #[test]
    fn long_lines_keep_their_end_at_a_character_boundary() {
        let (text, cut) = last_bytes("ééééé end".as_bytes(), 6);
        assert_eq!((text.as_str(), cut), ("é end", true));
        let (text, cut) = last_bytes(b"short", 100);
        assert_eq!((text.as_str(), cut), ("short", false));
        let mut tail = BoundedTail::new(LogBounds { lines: 5, bytes: 8 });
        tail.push(1, b"0123456789abcdef", false);
        let tail = tail.finish("x".into(), true).unwrap();
        assert_eq!(tail.lines, ["89abcdef"]);
        assert!(tail.truncated);
    }
}
