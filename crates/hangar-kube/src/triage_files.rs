//! What triage reads offline: a `kubectl cluster-info dump` (a directory, or the single stream it
//! prints without `--output-directory`), Hangar's own triage bundle, or plain manifests and
//! snapshots. Objects come through the same door as `hangar audit`'s; logs are kept as bounded
//! tails with the file and line each came from.
//!
//! Every log is read as a stream, a line at a time, and only its bounded tail is kept: a dump
//! with gigabytes of logs, or one line of a hundred megabytes, takes memory for the bounds (and,
//! in a single-stream dump, for its objects), not for the logs. Bytes that are not UTF-8 become
//! U+FFFD; a file that cannot be read, or is not a regular file, is a load error, never a silent
//! gap.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hangar_core::parse::parse_bytes;
use hangar_core::snapshot::earlier_is_newer;
use hangar_core::{LoadError, NotCovered, Origin, Snapshot};
use hangar_triage::{LogTail, Logs};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use crate::files::load_paths;
use crate::live::{BoundedTail, LogBounds, UnreadLogs, save_snapshot};

/// The file that marks a directory as a triage bundle written by `save_bundle`.
pub const BUNDLE_MANIFEST: &str = "hangar-bundle.json";
/// The schema of that file.
pub const BUNDLE_SCHEMA: &str = "hangar.dev/triage-bundle/v1";
const BUNDLE_SNAPSHOT: &str = "snapshot.yaml";
const BUNDLE_LOGS: &str = "logs";
/// The logs a dump said kubectl could not read, every pod's, kept as such: each triage read from
/// the bundle counts those of its own endpoints' pods (`TriageInput::record_logs_not_read`).
const BUNDLE_LOGS_NOT_READ: &str = "logs-not-read.json";
/// An entry per log not read, of a few hundred bytes: this is far more than a large cluster's
/// worth, and a larger file is not such a list.
const LOGS_NOT_READ_MAX_BYTES: u64 = 64 << 20;
/// The path that names standard input, as `hangar audit -` takes it.
const STDIN: &str = "-";
/// What errors and evidence call standard input, as `hangar audit -` does.
const STDIN_NAME: &str = "<stdin>";
/// A bundle's manifest is a few hundred bytes; more is not a manifest.
const MANIFEST_MAX_BYTES: u64 = 1 << 20;

/// How kubectl opens and closes each container's log in a dump:
/// `==== START logs for container vllm of pod ml/vllm-0 ====`.
const START: &str = "==== START logs for container ";
const END: &str = "==== END logs for container ";
/// A marker line is short; the first bytes of a longer line are enough to tell it is not one.
const MARKER_MAX_BYTES: usize = 1024;
/// What kubectl writes between a container's markers instead of its log when it could not get
/// it: the log request could not be made, or the API server or the kubelet refused it (RBAC, a
/// NotReady node), or answered that there is no log (`kubectl_says_no_log`). See
/// `printContainer` in kubectl's `cluster-info dump`.
const KUBECTL_LOG_FAILURES: [&str; 2] = ["Create log request error: ", "Request log error: "];
/// How the kubelet says a container has no log to read, after naming it (`container "vllm" in pod
/// "vllm-0" is waiting to start: PodInitializing`): `validateContainerLogStatus`, answered as 400.
const KUBELET_NO_LOG: [&str; 4] = [
    "is waiting to start",
    "is terminated",
    "is not available",
    "not found",
];
/// How the API server and the kubelet say the pod is gone, as the start and end of the message:
/// the API server's 404, the kubelet's 400, and the kubelet's 404 as the API server relays it.
const POD_GONE: [(&str, &str); 3] = [
    ("pods \"", "\" not found"),
    ("pod \"", "\" cannot be found - no logs available"),
    ("the server could not find the requested resource", ""),
];

/// What triage read offline.
#[derive(Debug, Default)]
pub struct TriageInput {
    pub snapshot: Snapshot,
    pub logs: Logs,
    /// When the input was captured (RFC 3339), when a bundle says so.
    pub observed_at: Option<String>,
    /// The logs a dump (or a bundle saved from one) says kubectl could not read: not yet a gap,
    /// since only the pods of the endpoints triaged count (`record_logs_not_read`).
    pub logs_not_read: UnreadLogs,
}

impl TriageInput {
    /// Makes the logs not read of the pods `wanted` keeps (by namespace and name) the snapshot's
    /// `pods/log` gap: the pods whose logs a live triage would read.
    pub fn record_logs_not_read(&mut self, wanted: impl Fn(&str, &str) -> bool) {
        let mut not_read = std::mem::take(&mut self.logs_not_read);
        not_read.retain_pods(wanted);
        not_read.record(&mut self.snapshot.not_covered);
    }
}

/// Reads objects and log tails from `paths`: dump directories, bundle directories, single-stream
/// dumps (`-`: standard input), manifests. Unreadable input is an error in the snapshot; the rest
/// is still read.
pub fn load_triage_paths(paths: &[PathBuf], bounds: LogBounds) -> TriageInput {
    let mut snapshot = Snapshot::default();
    let mut logs = Logs::default();
    // The capture each pod's logs were taken from, as that capture's copy of the pod (its
    // `uid` and `resourceVersion`), if it had one.
    let mut log_sources: HashMap<(String, String), Option<ObjectMeta>> = HashMap::new();
    let mut observed_at = None;
    let mut logs_not_read = UnreadLogs::default();
    for path in paths {
        let (part, part_logs) = if path == Path::new(STDIN) {
            load_stdin(bounds, &mut logs_not_read)
        } else if path.join(BUNDLE_MANIFEST).is_file() {
            observed_at = later(observed_at, bundle_time(path));
            load_bundle(path, bounds, &mut logs_not_read)
        } else if path.is_dir() {
            let mut part = load_paths(std::slice::from_ref(path));
            let logs = dump_logs(path, bounds, &mut part, &mut logs_not_read);
            (part, logs)
        } else {
            load_file(path, bounds, &mut logs_not_read)
        };
        take_logs(&part, part_logs, &mut logs, &mut log_sources);
        snapshot.absorb(part);
    }
    // The same object from two paths (a dump and a bundle of the same cluster): the last read.
    snapshot.resolve_duplicates();
    TriageInput {
        snapshot,
        logs,
        observed_at,
        logs_not_read,
    }
}

/// Adds the logs of one capture (`part`'s) to `logs`. A pod's logs all come from one capture:
/// the one whose copy of the pod is kept, which is the newer copy of the same pod (see
/// `Snapshot::resolve_duplicates`), or else the capture given last. A capture without the pod
/// (logs saved alone) gives its logs only when no capture with the pod did.
fn take_logs(
    part: &Snapshot,
    part_logs: Logs,
    logs: &mut Logs,
    sources: &mut HashMap<(String, String), Option<ObjectMeta>>,
) {
    let versions: HashMap<(&str, &str), ObjectMeta> = (part.pods.iter())
        .map(|pod| &pod.object.metadata)
        .map(|meta| {
            let key = (
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default(),
            );
            let version = ObjectMeta {
                uid: meta.uid.clone(),
                resource_version: meta.resource_version.clone(),
                ..ObjectMeta::default()
            };
            (key, version)
        })
        .collect();
    let pods: BTreeSet<(String, String)> = (part_logs.current.keys())
        .chain(part_logs.previous.keys())
        .map(|(namespace, pod, _)| (namespace.clone(), pod.clone()))
        .collect();
    let mut taken = BTreeSet::new();
    for key in pods {
        let new = (versions.get(&(key.0.as_str(), key.1.as_str()))).cloned();
        let keep_held = match (sources.get(&key), &new) {
            (Some(Some(held)), Some(new)) => earlier_is_newer(held, new),
            (Some(Some(_)), None) => true,
            _ => false,
        };
        if keep_held {
            continue;
        }
        sources.insert(key.clone(), new);
        taken.insert(key);
    }
    // A pod's logs from this capture replace all it had, containers this one lacks included.
    let of_taken = |(namespace, pod, _): &(String, String, String)| {
        taken.contains(&(namespace.clone(), pod.clone()))
    };
    logs.current.retain(|key, _| !of_taken(key));
    logs.previous.retain(|key, _| !of_taken(key));
    logs.current.extend(
        part_logs
            .current
            .into_iter()
            .filter(|(key, _)| of_taken(key)),
    );
    logs.previous.extend(
        part_logs
            .previous
            .into_iter()
            .filter(|(key, _)| of_taken(key)),
    );
}

/// The capture time a bundle's manifest records.
fn bundle_time(dir: &Path) -> Option<String> {
    let file = open_regular(&dir.join(BUNDLE_MANIFEST), false).ok()?;
    let mut text = String::new();
    file.take(MANIFEST_MAX_BYTES)
        .read_to_string(&mut text)
        .ok()?;
    let manifest: serde_json::Value = serde_json::from_str(&text).ok()?;
    manifest.get("observedAt")?.as_str().map(str::to_owned)
}

/// The later of two capture times: the newer copies of objects are kept, and the clock goes
/// with them. A time that does not parse gives way to one that does.
fn later(held: Option<String>, new: Option<String>) -> Option<String> {
    let parse = |time: &Option<String>| {
        time.as_deref()
            .and_then(|t| t.trim().parse::<Timestamp>().ok())
    };
    match (parse(&held), parse(&new)) {
        (Some(a), Some(b)) if b > a => new,
        (Some(_), _) => held,
        (None, Some(_)) => new,
        (None, None) => held.or(new),
    }
}

fn load_error(path: &Path, line: Option<u32>, message: String) -> LoadError {
    LoadError {
        origin: Origin {
            file: Some(Arc::from(path.display().to_string())),
            line,
        },
        object: None,
        message,
    }
}

/// Opens `path` if it is a regular file, or a pipe when `pipe_ok` (a file named on the command
/// line may be `<(kubectl cluster-info dump)`). A `logs.txt` linked to `/dev/zero` would never
/// end.
fn open_regular(path: &Path, pipe_ok: bool) -> Result<File, String> {
    let metadata = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    let kind = metadata.file_type();
    #[cfg(unix)]
    let pipe = std::os::unix::fs::FileTypeExt::is_fifo(&kind);
    #[cfg(not(unix))]
    let pipe = false;
    let readable = kind.is_file() || (pipe_ok && pipe);
    if !readable {
        return Err("not a regular file (a device, socket or pipe): not read".into());
    }
    File::open(path).map_err(|e| format!("cannot read: {e}"))
}

/// One line as read: its first bytes, to recognise a marker, and its last bytes, what a log
/// keeps. Only a bounded part of a long line is ever held.
#[derive(Debug, Default)]
struct RawLine {
    head: Vec<u8>,
    tail: Vec<u8>,
    len: usize,
}

impl RawLine {
    fn clear(&mut self) {
        self.head.clear();
        self.tail.clear();
        self.len = 0;
    }

    fn push(&mut self, chunk: &[u8], keep: usize) {
        let room = MARKER_MAX_BYTES.saturating_sub(self.head.len());
        self.head.extend_from_slice(&chunk[..room.min(chunk.len())]);
        self.len += chunk.len();
        self.tail.extend_from_slice(chunk);
        // Drain in batches, so a long line costs linear time.
        if self.tail.len() > keep.saturating_mul(2).max(keep.saturating_add(64 * 1024)) {
            let excess = self.tail.len() - keep;
            self.tail.drain(..excess);
        }
    }

    /// The last bytes kept, at most `keep` of them.
    fn last(&self, keep: usize) -> &[u8] {
        &self.tail[self.tail.len().saturating_sub(keep)..]
    }

    /// The whole line, when none of it was dropped.
    fn whole(&self) -> Option<&[u8]> {
        (self.tail.len() == self.len).then_some(self.tail.as_slice())
    }

    /// The line as text when it is short enough to be a marker.
    fn marker_text(&self) -> Option<&str> {
        if self.len > MARKER_MAX_BYTES {
            return None;
        }
        std::str::from_utf8(&self.head).ok()
    }
}

/// Reads the next line of `reader` (without its `\n`) into `line`, holding at most `keep` of its
/// last bytes; `false` at the end of the input.
fn read_line(reader: &mut impl BufRead, keep: usize, line: &mut RawLine) -> std::io::Result<bool> {
    line.clear();
    let mut read_any = false;
    loop {
        let buffer = match reader.fill_buf() {
            Ok(buffer) => buffer,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buffer.is_empty() {
            return Ok(read_any);
        }
        read_any = true;
        match buffer.iter().position(|b| *b == b'\n') {
            Some(end) => {
                line.push(&buffer[..end], keep);
                reader.consume(end + 1);
                return Ok(true);
            }
            None => {
                let all = buffer.len();
                line.push(buffer, keep);
                reader.consume(all);
            }
        }
    }
}

/// Where a line of a dump belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Objects,
    Log,
    Marker,
}

/// Splits a dump's lines, as they are read, into objects and container log sections; each
/// section is kept as its bounded tail.
struct DumpSplitter {
    source: String,
    bounds: LogBounds,
    /// In a dump directory, the `(namespace, pod)` whose `logs.txt` is read: a line naming
    /// another pod only copies a marker (a log that prints another dump) and stays a log line.
    own_pod: Option<(String, String)>,
    open: Option<Section>,
    logs: Logs,
    /// The sections that hold only kubectl's failure to read the log.
    not_read: UnreadLogs,
}

/// The container log section being read: whose it is, and its bounded tail so far.
struct Section {
    key: (String, String, String),
    tail: BoundedTail,
    /// The lines read so far.
    lines: u32,
    /// The first line, with its number, when it is kubectl's failure to read the log.
    failure: Option<(u32, String)>,
}

impl Section {
    fn new(key: (String, String, String), bounds: LogBounds) -> Self {
        Section {
            key,
            tail: BoundedTail::new(bounds),
            lines: 0,
            failure: None,
        }
    }

    /// Keeps line `number`: `start` is its first bytes, `last` the last ones, which the tail
    /// keeps; `cut` when bytes between them were dropped.
    fn push(&mut self, number: u32, start: &[u8], last: &[u8], cut: bool) {
        if self.lines == 0 {
            self.failure = kubectl_failure(start).map(|text| (number, text));
        }
        self.lines = self.lines.saturating_add(1);
        self.tail.push(number, last, cut);
    }

    /// Where the END marker that closes this section starts on `line`, when the line ends with
    /// it. kubectl writes the marker straight after the log's bytes, so a log whose last line has
    /// no newline ends on the marker's line: `Killed==== END logs for container …`. Only this
    /// section's own marker closes it: a log may copy another container's.
    fn end_at(&self, line: &RawLine) -> Option<usize> {
        let kept = line.tail.trim_ascii_end();
        if !kept.ends_with(b"====") {
            return None;
        }
        let from = kept.len().saturating_sub(MARKER_MAX_BYTES);
        let at = from
            + kept[from..]
                .windows(END.len())
                .rposition(|w| w == END.as_bytes())?;
        let rest = std::str::from_utf8(&kept[at + END.len()..]).ok()?;
        (section_key(rest)? == self.key).then_some(at)
    }
}

impl DumpSplitter {
    fn new(source: String, bounds: LogBounds, own_pod: Option<(String, String)>) -> Self {
        DumpSplitter {
            source,
            bounds,
            own_pod,
            open: None,
            logs: Logs::default(),
            not_read: UnreadLogs::default(),
        }
    }

    /// How many of a line's last bytes to hold: all of it outside a section when objects are
    /// wanted; inside one, the byte bound (and a few bytes to find a character boundary), and
    /// never less than a marker, which may end the log's last line.
    fn keep(&self, objects_wanted: bool) -> usize {
        if objects_wanted && self.open.is_none() {
            usize::MAX
        } else {
            self.bounds.bytes.saturating_add(4).max(MARKER_MAX_BYTES)
        }
    }

    /// Inside a section, every line is the log's until the section's own END marker; the text
    /// before that marker on its line is the log's last line.
    fn place(&mut self, number: u32, line: &RawLine) -> Place {
        let Some(section) = &mut self.open else {
            return self.place_outside(line);
        };
        let cut = line.len > line.tail.len();
        let Some(at) = section.end_at(line) else {
            let keep = self.bounds.bytes.saturating_add(4);
            section.push(number, &line.head, line.last(keep), cut);
            return Place::Log;
        };
        if at > 0 || cut {
            // Whole, the line is its own start up to the marker.
            let start = if cut {
                &line.head[..]
            } else {
                &line.tail[..at]
            };
            section.push(number, start, &line.tail[..at], cut);
        }
        self.close();
        Place::Marker
    }

    /// Outside a section, a START marker (for this file's pod, in a dump directory) opens one; a
    /// stray END marker belongs nowhere; any other line belongs to the objects.
    fn place_outside(&mut self, line: &RawLine) -> Place {
        let Some(text) = line.marker_text() else {
            return Place::Objects;
        };
        if let Some(key) = text.strip_prefix(START).and_then(section_key)
            && self.is_own(&key)
        {
            self.open = Some(Section::new(key, self.bounds));
            return Place::Marker;
        }
        let stray_end = text
            .strip_prefix(END)
            .is_some_and(|rest| section_key(rest).is_none_or(|key| self.is_own(&key)));
        if stray_end {
            Place::Marker
        } else {
            Place::Objects
        }
    }

    fn is_own(&self, key: &(String, String, String)) -> bool {
        self.own_pod
            .as_ref()
            .is_none_or(|(namespace, pod)| key.0 == *namespace && key.1 == *pod)
    }

    /// Ends the open section: its tail is the container's log, unless all it holds is kubectl's
    /// failure to read the log. That is no log, and a gap, as a refused read is live; but not when
    /// the answer was that the container has no log to read (it has not started), which is no gap
    /// live either.
    fn close(&mut self) {
        let Some(section) = self.open.take() else {
            return;
        };
        if let (1, Some((number, failure))) = (section.lines, &section.failure) {
            if !kubectl_says_no_log(failure) {
                let (namespace, pod, container) = &section.key;
                let reason = format!(
                    "kubectl could not read the log of {namespace}/{pod} container {container} ({}:{number}): {failure}",
                    self.source
                );
                self.not_read.add(section.key, false, reason);
            }
            return;
        }
        if let Some(tail) = section.tail.finish(self.source.clone(), true) {
            self.logs.current.insert(section.key, tail);
        }
    }

    /// The logs read, and the sections that held none.
    fn finish(mut self) -> (Logs, UnreadLogs) {
        self.close();
        (self.logs, self.not_read)
    }
}

/// The line as kubectl's failure to read a log, when it is one; `start` is the line's first bytes.
fn kubectl_failure(start: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(start);
    let text = text.trim_end();
    (KUBECTL_LOG_FAILURES.iter())
        .any(|failure| text.starts_with(*failure))
        .then(|| text.to_owned())
}

/// Whether kubectl's failure `line` is the answer that the container has no log to read, rather
/// than a failure to read one: it has not started (`is waiting to start: PodInitializing`,
/// `…: ContainerCreating`, `…: trying and failing to pull image`), it has no instance left, or its
/// pod is gone. The live reader takes these answers, a 400 or a 404, as no log (`read_window` in
/// `live::logs`); kubectl keeps only their text, so they are told apart by it here.
fn kubectl_says_no_log(line: &str) -> bool {
    let mut messages = KUBECTL_LOG_FAILURES.iter();
    let Some(message) = messages.find_map(|prefix| line.strip_prefix(*prefix)) else {
        return false;
    };
    if let Some(state) = kubelet_container_state(message) {
        return KUBELET_NO_LOG
            .iter()
            .any(|no_log| state.starts_with(*no_log));
    }
    // The pod's name alone between them: an RBAC refusal may end the same way (`pods "vllm-0" is
    // forbidden: … role "log-reader" not found`).
    (POD_GONE.iter()).any(|&(start, end)| {
        (message.strip_prefix(start))
            .and_then(|rest| rest.strip_suffix(end))
            .is_some_and(|name| !name.contains('"'))
    })
}

/// The kubelet's words for a container's state after the names it quotes: `container "vllm" in
/// pod "vllm-0" is waiting to start: PodInitializing` → `is waiting to start: PodInitializing`.
fn kubelet_container_state(message: &str) -> Option<&str> {
    let named = message
        .strip_prefix("previous terminated ")
        .unwrap_or(message);
    let (_, pod_on) = named
        .strip_prefix("container \"")?
        .split_once("\" in pod \"")?;
    let (_, state) = pod_on.split_once("\" ")?;
    Some(state)
}

/// `vllm of pod ml/vllm-0 ====` → `(ml, vllm-0, vllm)`.
fn section_key(rest: &str) -> Option<(String, String, String)> {
    let rest = rest.trim_end().strip_suffix("====")?.trim_end();
    let (container, pod) = rest.split_once(" of pod ")?;
    let (namespace, pod) = pod.split_once('/')?;
    Some((namespace.to_owned(), pod.to_owned(), container.to_owned()))
}

/// Reads `reader` through `splitter`, handing each line and where it belongs to `visit`.
fn split_stream(
    mut reader: impl BufRead,
    splitter: &mut DumpSplitter,
    objects_wanted: bool,
    mut visit: impl FnMut(u32, Place, &RawLine),
) -> std::io::Result<()> {
    let mut line = RawLine::default();
    let mut number = 0u32;
    while read_line(&mut reader, splitter.keep(objects_wanted), &mut line)? {
        number = number.saturating_add(1);
        let place = splitter.place(number, &line);
        visit(number, place, &line);
    }
    Ok(())
}

/// Splits dump text into the objects (log sections blanked, so line numbers still match the
/// file), the log sections, each cut to its last `bounds` lines and bytes, and the `pods/log` gap
/// of the sections that hold only kubectl's failure to read the log.
pub fn split_dump(text: &str, source: &str, bounds: LogBounds) -> (String, Logs, Vec<NotCovered>) {
    let mut objects = String::with_capacity(text.len());
    let mut splitter = DumpSplitter::new(source.to_owned(), bounds, None);
    // Reading from memory cannot fail.
    let _ = split_stream(text.as_bytes(), &mut splitter, true, |_, place, line| {
        if let (Place::Objects, Some(whole)) = (place, line.whole()) {
            objects.push_str(&String::from_utf8_lossy(whole));
        }
        objects.push('\n');
    });
    let (logs, not_read) = splitter.finish();
    let mut not_covered = Vec::new();
    not_read.record(&mut not_covered);
    (objects, logs, not_covered)
}

/// The objects between a single-stream dump's log sections, parsed a piece at a time: memory
/// follows the objects, not the logs.
struct Objects {
    file: Arc<str>,
    text: Vec<u8>,
    first_line: u32,
    snapshot: Snapshot,
}

impl Objects {
    fn new(name: &str) -> Self {
        Objects {
            file: Arc::from(name),
            text: Vec::new(),
            first_line: 1,
            snapshot: Snapshot::default(),
        }
    }

    fn push(&mut self, number: u32, line: &[u8]) {
        if self.text.is_empty() {
            self.first_line = number;
        }
        self.text.extend_from_slice(line);
        self.text.push(b'\n');
    }

    fn flush(&mut self) {
        let bytes = std::mem::take(&mut self.text);
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        // As `hangar audit` reads files: a byte that is not UTF-8 costs only its own document.
        let parsed = parse_bytes(&self.file, &bytes);
        let offset = self.first_line - 1;
        let shift = |line: Option<u32>| line.map(|l| l + offset);
        for (object, mut origin) in parsed.objects {
            origin.line = shift(origin.line);
            self.snapshot.insert(object, origin);
        }
        for mut error in parsed.errors {
            error.origin.line = shift(error.origin.line);
            self.snapshot.errors.push(error);
        }
        for mut skipped in parsed.not_objects {
            skipped.line = shift(skipped.line);
            self.snapshot.not_objects.push(skipped);
        }
    }
}

/// One file: a single-stream `cluster-info dump` (JSON lists with log sections between them),
/// or a manifest or snapshot, read as a stream. The logs kubectl could not read go to `not_read`.
fn load_file(path: &Path, bounds: LogBounds, not_read: &mut UnreadLogs) -> (Snapshot, Logs) {
    match open_regular(path, true) {
        Ok(file) => {
            let name = path.display().to_string();
            load_stream(&name, BufReader::new(file), bounds, not_read)
        }
        Err(message) => {
            let mut snapshot = Snapshot::default();
            snapshot.errors.push(load_error(path, None, message));
            (snapshot, Logs::default())
        }
    }
}

/// Standard input (`kubectl cluster-info dump | hangar triage --from -`), read as a file is.
fn load_stdin(bounds: LogBounds, not_read: &mut UnreadLogs) -> (Snapshot, Logs) {
    load_stream(STDIN_NAME, std::io::stdin().lock(), bounds, not_read)
}

/// A stream `name`d in errors and evidence: its objects, parsed a piece at a time between the
/// log sections, and the sections' bounded tails; the logs kubectl could not read go to
/// `not_read`.
fn load_stream(
    name: &str,
    mut reader: impl BufRead,
    bounds: LogBounds,
    not_read: &mut UnreadLogs,
) -> (Snapshot, Logs) {
    let mut objects = Objects::new(name);
    // As `hangar audit` reads files: a NUL byte in what the first read gives (a file's first
    // 8 KiB) is binary input, one error rather than one per line. Not in a container's log,
    // which may print any byte.
    if reader.fill_buf().is_ok_and(binary_before_the_logs) {
        let message = crate::files::BINARY_MESSAGE.to_owned();
        (objects.snapshot.errors).push(load_error(Path::new(name), None, message));
        return (objects.snapshot, Logs::default());
    }
    let mut splitter = DumpSplitter::new(name.to_owned(), bounds, None);
    let mut last = 0;
    let read = split_stream(reader, &mut splitter, true, |n, place, line| {
        last = n;
        match place {
            Place::Objects => objects.push(n, line.whole().unwrap_or_default()),
            Place::Marker => objects.flush(),
            Place::Log => {}
        }
    });
    objects.flush();
    if let Err(e) = read {
        let message = format!("cannot read past this line: {e}");
        objects
            .snapshot
            .errors
            .push(load_error(Path::new(name), Some(last.max(1)), message));
    }
    let (logs, stream_not_read) = splitter.finish();
    not_read.absorb(stream_not_read);
    (objects.snapshot, logs)
}

/// Whether `head`, the start of a stream, has a NUL byte before its first log section.
fn binary_before_the_logs(head: &[u8]) -> bool {
    let logs = head
        .windows(START.len())
        .position(|window| window == START.as_bytes())
        .unwrap_or(head.len());
    head.get(..logs).is_some_and(|objects| objects.contains(&0))
}

/// The `logs.txt` files below a dump directory (`DIR/<namespace>/<pod>/logs.txt`). A file that
/// cannot be read is an error in `part`, the directory's snapshot; the logs kubectl could not
/// read go to `not_read`.
fn dump_logs(
    dir: &Path,
    bounds: LogBounds,
    part: &mut Snapshot,
    not_read: &mut UnreadLogs,
) -> Logs {
    let mut logs = Logs::default();
    let mut files = Vec::new();
    find_log_files(dir, &mut files, 0);
    files.sort();
    for path in files {
        let file = match open_regular(&path, false) {
            Ok(file) => file,
            Err(message) => {
                part.errors.push(load_error(&path, None, message));
                continue;
            }
        };
        let mut splitter =
            DumpSplitter::new(path.display().to_string(), bounds, pod_directory(&path));
        if let Err(e) = split_stream(BufReader::new(file), &mut splitter, false, |_, _, _| {}) {
            part.errors
                .push(load_error(&path, None, format!("cannot read: {e}")));
        }
        let (file_logs, file_not_read) = splitter.finish();
        logs.current.extend(file_logs.current);
        not_read.absorb(file_not_read);
    }
    logs
}

/// `DIR/ml/vllm-0/logs.txt` → `(ml, vllm-0)`: the pod whose logs the file holds.
fn pod_directory(file: &Path) -> Option<(String, String)> {
    let pod = file.parent()?;
    let namespace = pod.parent()?;
    let name = |p: &Path| Some(p.file_name()?.to_string_lossy().into_owned());
    Some((name(namespace)?, name(pod)?))
}

fn find_log_files(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    // A dump is three levels deep; a little slack, and no following of symlink loops.
    if depth > 4 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            find_log_files(&path, out, depth + 1);
        } else if path.file_name().is_some_and(|n| n == "logs.txt") {
            out.push(path);
        }
    }
}

/// Reads a bundle `save_bundle` wrote. The logs it says were not read go to `not_read`.
fn load_bundle(dir: &Path, bounds: LogBounds, not_read: &mut UnreadLogs) -> (Snapshot, Logs) {
    let mut snapshot = load_paths(&[dir.join(BUNDLE_SNAPSHOT)]);
    load_logs_not_read(dir, &mut snapshot, not_read);
    let mut logs = Logs::default();
    let root = dir.join(BUNDLE_LOGS);
    let Ok(namespaces) = std::fs::read_dir(&root) else {
        return (snapshot, logs);
    };
    for namespace in namespaces.flatten() {
        let Ok(pods) = std::fs::read_dir(namespace.path()) else {
            continue;
        };
        for pod in pods.flatten() {
            let Ok(files) = std::fs::read_dir(pod.path()) else {
                continue;
            };
            for file in files.flatten() {
                let path = file.path();
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                let Some(stem) = name.strip_suffix(".log") else {
                    continue;
                };
                let (container, previous) = match stem.strip_suffix(".previous") {
                    Some(container) => (container, true),
                    None => (stem, false),
                };
                let tail = match read_log_file(&path, bounds) {
                    Ok(Some(tail)) => tail,
                    Ok(None) => continue,
                    Err(message) => {
                        snapshot.errors.push(load_error(&path, None, message));
                        continue;
                    }
                };
                let key = (
                    namespace.file_name().to_string_lossy().into_owned(),
                    pod.file_name().to_string_lossy().into_owned(),
                    container.to_owned(),
                );
                if previous {
                    logs.previous.insert(key, tail);
                } else {
                    logs.current.insert(key, tail);
                }
            }
        }
    }
    (snapshot, logs)
}

/// The logs not read that a bundle keeps (`logs-not-read.json`), into `not_read`; a bundle saved
/// without any (or before they were kept) has no such file. A file that cannot be read is an
/// error in `snapshot` naming it; an entry that is not a log not read is one naming the file, the
/// entry and its field, and the other entries are still taken.
fn load_logs_not_read(dir: &Path, snapshot: &mut Snapshot, not_read: &mut UnreadLogs) {
    let path = dir.join(BUNDLE_LOGS_NOT_READ);
    let absent =
        std::fs::symlink_metadata(&path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
    if absent {
        return;
    }
    let entries = match read_logs_not_read(&path) {
        Ok(entries) => entries,
        Err((line, message)) => {
            snapshot.errors.push(load_error(&path, line, message));
            return;
        }
    };
    for (index, entry) in entries.iter().enumerate() {
        if let Err(message) = add_log_not_read(entry, not_read) {
            let message = format!("entry {}: {message}: not read", index + 1);
            snapshot.errors.push(load_error(&path, None, message));
        }
    }
}

/// The entries of a bundle's `logs-not-read.json`, a JSON list; the error has the line where the
/// JSON says one.
fn read_logs_not_read(path: &Path) -> Result<Vec<serde_json::Value>, (Option<u32>, String)> {
    let file = open_regular(path, false).map_err(|message| (None, message))?;
    let mut bytes = Vec::new();
    (file.take(LOGS_NOT_READ_MAX_BYTES.saturating_add(1)))
        .read_to_end(&mut bytes)
        .map_err(|e| (None, format!("cannot read: {e}")))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > LOGS_NOT_READ_MAX_BYTES {
        let message = format!("larger than {LOGS_NOT_READ_MAX_BYTES} bytes: not read");
        return Err((None, message));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        let line = u32::try_from(e.line()).ok().filter(|line| *line > 0);
        (line, format!("not a list of logs not read: {e}"))
    })
}

/// Adds one entry of `logs-not-read.json` to `not_read`: `{"namespace", "pod", "container",
/// "previous", "reason"}`, as `save_logs_not_read` writes it. Otherwise, the field that is wrong.
fn add_log_not_read(entry: &serde_json::Value, not_read: &mut UnreadLogs) -> Result<(), String> {
    if !entry.is_object() {
        return Err("not an object".into());
    }
    let text = |field: &str| {
        (entry.get(field).and_then(serde_json::Value::as_str))
            .map(str::to_owned)
            .ok_or_else(|| format!("`{field}` is missing or not a string"))
    };
    let key = (text("namespace")?, text("pod")?, text("container")?);
    let previous = (entry.get("previous").and_then(serde_json::Value::as_bool))
        .ok_or("`previous` is missing or not true or false")?;
    not_read.add(key, previous, text("reason")?);
    Ok(())
}

/// Writes `not_read` to `path` when it holds any log, as `load_logs_not_read` reads it back; how
/// many it holds.
fn save_logs_not_read(not_read: &UnreadLogs, path: &Path) -> std::io::Result<usize> {
    let entries: Vec<serde_json::Value> = (not_read.iter())
        .map(|([namespace, pod, container], previous, reason)| {
            json!({
                "namespace": namespace,
                "pod": pod,
                "container": container,
                "previous": previous,
                "reason": reason,
            })
        })
        .collect();
    if entries.is_empty() {
        return Ok(0);
    }
    let text = serde_json::to_string_pretty(&entries).map_err(std::io::Error::other)?;
    std::fs::write(path, text)?;
    Ok(entries.len())
}

/// The bounded tail of one plain log file; `Ok(None)` when it is empty.
fn read_log_file(path: &Path, bounds: LogBounds) -> Result<Option<LogTail>, String> {
    let file = open_regular(path, false)?;
    let mut reader = BufReader::new(file);
    let keep = bounds.bytes.saturating_add(4);
    let mut tail = BoundedTail::new(bounds);
    let mut line = RawLine::default();
    let mut number = 0u32;
    while read_line(&mut reader, keep, &mut line).map_err(|e| format!("cannot read: {e}"))? {
        number = number.saturating_add(1);
        tail.push(number, line.last(keep), line.len > line.tail.len());
    }
    Ok(tail.finish(path.display().to_string(), true))
}

/// Writes a triage bundle to `dir`: the snapshot (Events included) as `snapshot.yaml`, each log
/// tail as `logs/<namespace>/<pod>/<container>[.previous].log`, the logs a dump said were not read
/// as `logs-not-read.json`, and a manifest saying what it is. `hangar triage --from DIR` reads it
/// back offline. `dir` must be new, empty, or an earlier bundle, which this one replaces.
///
/// Save `input` as read, before `TriageInput::record_logs_not_read`: every pod's logs not read are
/// then kept as such, for whichever endpoint is triaged from the bundle later, and none is a gap
/// of the snapshot, which would count for every endpoint and again beside the log kept as not
/// read. The gaps already in the snapshot (the logs a live triage could not read) stay gaps.
pub fn save_bundle(
    dir: &Path,
    input: &TriageInput,
    source: &str,
    bounds: LogBounds,
) -> std::io::Result<()> {
    let (snapshot, logs) = (&input.snapshot, &input.logs);
    prepare_bundle_dir(dir)?;
    save_snapshot(snapshot, &dir.join(BUNDLE_SNAPSHOT))?;
    let logs_dir = dir.join(BUNDLE_LOGS);
    for (tails, suffix) in [(&logs.current, ""), (&logs.previous, ".previous")] {
        for ((namespace, pod, container), tail) in tails {
            let pod_dir = logs_dir.join(safe_name(namespace)).join(safe_name(pod));
            std::fs::create_dir_all(&pod_dir)?;
            let mut text = tail.lines.join("\n");
            text.push('\n');
            std::fs::write(
                pod_dir.join(format!("{}{suffix}.log", safe_name(container))),
                text,
            )?;
        }
    }
    let logs_not_read = save_logs_not_read(&input.logs_not_read, &dir.join(BUNDLE_LOGS_NOT_READ))?;
    let manifest = json!({
        "schema": BUNDLE_SCHEMA,
        "source": source,
        "observedAt": input.observed_at,
        "objects": snapshot.object_count(),
        "logTails": logs.current.len() + logs.previous.len(),
        "logsNotRead": logs_not_read,
        "logBounds": {"lines": bounds.lines, "bytes": bounds.bytes},
    });
    let text = serde_json::to_string_pretty(&manifest).map_err(std::io::Error::other)?;
    std::fs::write(dir.join(BUNDLE_MANIFEST), text)
}

/// Makes `dir` ready for a bundle. An earlier bundle there loses its logs and logs not read,
/// which would otherwise be read back with the new ones: a pod recreated since, with no previous
/// log now, would get the old one. Any other non-empty directory is refused rather than cleared
/// or mixed with.
fn prepare_bundle_dir(dir: &Path) -> std::io::Result<()> {
    if dir.join(BUNDLE_MANIFEST).is_file() {
        remove_if_present(&dir.join(BUNDLE_LOGS))?;
        return remove_if_present(&dir.join(BUNDLE_LOGS_NOT_READ));
    }
    let occupied = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    };
    if occupied {
        return Err(std::io::Error::new(
            std::io::ErrorKind::DirectoryNotEmpty,
            format!(
                "the directory is not empty and holds no bundle (no {BUNDLE_MANIFEST}): name a \
                 new or empty directory"
            ),
        ));
    }
    std::fs::create_dir_all(dir)
}

/// Removes `path`, a directory with what it holds or a file (a link itself, not what it names).
fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Kubernetes names cannot hold `/`, but a bundle must never write outside its directory even
/// when handed a hostile name.
fn safe_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() || cleaned.chars().all(|c| c == '.') {
        "_".into()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = r#"{
    "kind": "PodList",
    "apiVersion": "v1",
    "items": [
        {"metadata": {"name": "vllm-0", "namespace": "ml"}, "spec": {"containers": [{"name": "vllm"}]}}
    ]
}
==== START logs for container vllm of pod ml/vllm-0 ====
line one
line two
line three
==== END logs for container vllm of pod ml/vllm-0 ====
{
    "kind": "ServiceList",
    "apiVersion": "v1",
    "items": [
        {"metadata": {"name": "vllm", "namespace": "ml"}, "spec": {}}
    ]
}
"#;

    fn key(ns: &str, pod: &str, container: &str) -> (String, String, String) {
        (ns.into(), pod.into(), container.into())
    }

    #[test]
    fn a_single_stream_dump_splits_into_objects_and_logs_with_their_lines() {
        let bounds = LogBounds {
            lines: 2,
            bytes: 1024,
        };
        let (objects, logs, _) = split_dump(STREAM, "dump.txt", bounds);
        let snapshot = hangar_core::snapshot_from_text("dump.txt", &objects);
        assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
        assert_eq!(snapshot.pods.len(), 1);
        assert_eq!(snapshot.services.len(), 1);
        // The Service sits on line 17 of the file, and still does after the split.
        assert_eq!(snapshot.services[0].origin.line, Some(17));
        let tail = &logs.current[&key("ml", "vllm-0", "vllm")];
        assert_eq!(tail.lines, ["line two", "line three"]);
        assert!(tail.truncated);
        assert_eq!(tail.locate(0), "dump.txt:10");
    }

    #[test]
    fn the_byte_bound_keeps_the_last_lines() {
        let bounds = LogBounds {
            lines: 100,
            bytes: 12,
        };
        let (_, logs, _) = split_dump(STREAM, "dump.txt", bounds);
        assert_eq!(
            logs.current[&key("ml", "vllm-0", "vllm")].lines,
            ["line three"]
        );
    }

    #[test]
    fn a_binary_stream_is_one_error() {
        let mut binary = b"\x7fELF\x02\x01\x01\x00".to_vec();
        for _ in 0..100 {
            binary.extend_from_slice(b"\n---\n\xff\xfe junk");
        }
        let mut not_read = UnreadLogs::default();
        let (snapshot, logs) =
            load_stream("tool", &binary[..], LogBounds::default(), &mut not_read);
        assert_eq!(snapshot.errors.len(), 1, "{:?}", snapshot.errors);
        assert_eq!(snapshot.errors[0].message, crate::files::BINARY_MESSAGE);
        assert!(logs.current.is_empty());
    }

    #[test]
    fn a_nul_byte_in_a_log_near_the_start_is_log_text() {
        // A small dump: the log, with a NUL a program printed, is within the first 8 KiB.
        let stream = STREAM.replace("line two", "line\0two");
        let mut not_read = UnreadLogs::default();
        let (snapshot, logs) = load_stream(
            "dump.txt",
            stream.as_bytes(),
            LogBounds::default(),
            &mut not_read,
        );
        assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
        assert_eq!(snapshot.services.len(), 1);
        let tail = &logs.current[&key("ml", "vllm-0", "vllm")];
        assert_eq!(tail.lines.len(), 3);
    }

    #[test]
    fn manifests_are_read_as_the_audit_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        // A Latin-1 byte costs only its own document; values beside manifests are skipped.
        let mut mixed = b"apiVersion: v1\nkind: Pod\nmetadata: {name: vllm-0, namespace: ml}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: caf\xe9, namespace: ml}\n---\nreplicaCount: 2\n".to_vec();
        mixed.extend_from_slice(
            b"---\napiVersion: v1\nkind: Service\nmetadata: {name: vllm, namespace: ml}\n",
        );
        let first = dir.path().join("mixed.yaml");
        std::fs::write(&first, &mixed).unwrap();
        // The same Service again from a second path, changed.
        let second = dir.path().join("again.yaml");
        std::fs::write(
            &second,
            "apiVersion: v1\nkind: Service\nmetadata: {name: vllm, namespace: ml}\nspec: {type: NodePort}\n",
        )
        .unwrap();
        let input = load_triage_paths(&[first, second], LogBounds::default());
        let snapshot = &input.snapshot;
        assert_eq!(snapshot.pods.len(), 1);
        assert_eq!(snapshot.services.len(), 1, "the later copy only");
        assert!(
            snapshot.services[0]
                .origin
                .to_string()
                .ends_with("again.yaml:1")
        );
        assert_eq!(snapshot.not_objects.len(), 1);
        assert_eq!(snapshot.not_objects[0].line, Some(9));
        let messages: Vec<_> = snapshot
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.origin, e.message))
            .collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(
            messages[0].contains("mixed.yaml:7") && messages[0].contains("not UTF-8"),
            "{messages:?}"
        );
        assert!(messages[1].contains("defined again at"), "{messages:?}");
    }

    #[test]
    fn two_captures_of_one_cluster_keep_the_newer_copy_of_each_object_quietly() {
        let dir = tempfile::tempdir().unwrap();
        let pod = |uid: &str, version: u32, phase: &str| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: vllm-0, namespace: ml, uid: {uid}, resourceVersion: '{version}'}}\nspec: {{containers: [{{name: vllm}}]}}\nstatus: {{phase: {phase}}}\n"
            )
        };
        let capture = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let phase = |paths: &[PathBuf]| {
            let input = load_triage_paths(paths, LogBounds::default());
            let snapshot = input.snapshot;
            assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
            assert_eq!(snapshot.pods.len(), 1);
            let status = snapshot.pods[0].object.status.clone().unwrap();
            status.phase.unwrap()
        };
        let morning = capture("morning.yaml", pod("u-1", 900, "Running"));
        let evening = capture("evening.yaml", pod("u-1", 1200, "Failed"));
        let noon = capture("noon.yaml", pod("u-1", 1000, "Pending"));
        // Whatever the order the captures are given in.
        assert_eq!(phase(&[morning.clone(), evening.clone()]), "Failed");
        assert_eq!(phase(&[evening.clone(), morning.clone()]), "Failed");
        assert_eq!(
            phase(&[evening.clone(), morning.clone(), noon.clone()]),
            "Failed"
        );
        // Another pod under the same name (recreated: a new uid) is no copy of this one.
        let recreated = capture("recreated.yaml", pod("u-2", 1300, "Running"));
        let input = load_triage_paths(&[evening, recreated], LogBounds::default());
        assert_eq!(
            input.snapshot.errors.len(),
            1,
            "{:?}",
            input.snapshot.errors
        );
        assert!(
            input.snapshot.errors[0]
                .message
                .contains("defined again at")
        );
        // One version twice with different bodies (an export edited by hand) is a conflict.
        let edited = capture("edited.yaml", pod("u-1", 1200, "Succeeded"));
        let evening = dir.path().join("evening.yaml");
        let input = load_triage_paths(&[evening, edited], LogBounds::default());
        assert_eq!(
            input.snapshot.errors.len(),
            1,
            "{:?}",
            input.snapshot.errors
        );
    }

    #[test]
    fn a_pods_logs_come_from_the_capture_whose_copy_of_it_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let capture = |name: &str, version: u32, containers: &[&str]| {
            let mut text = format!(
                "{{\"kind\": \"PodList\", \"apiVersion\": \"v1\", \"items\": [{{\"metadata\": {{\"name\": \"vllm-0\", \"namespace\": \"ml\", \"uid\": \"u-1\", \"resourceVersion\": \"{version}\"}}, \"spec\": {{\"containers\": [{{\"name\": \"vllm\"}}]}}}}]}}\n"
            );
            for container in containers {
                text.push_str(&format!(
                    "==== START logs for container {container} of pod ml/vllm-0 ====\n{name}\n==== END logs for container {container} of pod ml/vllm-0 ====\n"
                ));
            }
            let path = dir.path().join(format!("{name}.txt"));
            std::fs::write(&path, text).unwrap();
            path
        };
        let morning = capture("morning", 900, &["vllm", "sidecar"]);
        let evening = capture("evening", 1200, &["vllm"]);
        for paths in [
            [morning.clone(), evening.clone()],
            [evening.clone(), morning.clone()],
        ] {
            let input = load_triage_paths(&paths, LogBounds::default());
            assert!(
                input.snapshot.errors.is_empty(),
                "{:?}",
                input.snapshot.errors
            );
            let logs = &input.logs.current;
            assert_eq!(
                logs[&key("ml", "vllm-0", "vllm")].lines,
                ["evening"],
                "{paths:?}"
            );
            assert!(
                !logs.contains_key(&key("ml", "vllm-0", "sidecar")),
                "{paths:?}"
            );
        }
        // Logs saved without the pod: its copy is the evening's, and so are its logs.
        let alone = dir.path().join("alone.txt");
        std::fs::write(
            &alone,
            "==== START logs for container vllm of pod ml/vllm-0 ====\nalone\n==== END logs for container vllm of pod ml/vllm-0 ====\n",
        )
        .unwrap();
        for paths in [
            [evening.clone(), alone.clone()],
            [alone.clone(), evening.clone()],
        ] {
            let input = load_triage_paths(&paths, LogBounds::default());
            let logs = &input.logs.current;
            assert_eq!(
                logs[&key("ml", "vllm-0", "vllm")].lines,
                ["evening"],
                "{paths:?}"
            );
        }
        // Alone, they are the pod's logs all the same.
        let input = load_triage_paths(&[alone], LogBounds::default());
        assert_eq!(
            input.logs.current[&key("ml", "vllm-0", "vllm")].lines,
            ["alone"]
        );
    }

    #[test]
    fn dump_directories_and_bundles_round_trip() {
        let logs_text = STREAM
            .lines()
            .skip_while(|l| !l.starts_with(START))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n");
        let (dir, dump) = dump_with_log(logs_text.as_bytes());
        let mut input = load_triage_paths(std::slice::from_ref(&dump), LogBounds::default());
        assert!(
            input.snapshot.errors.is_empty(),
            "{:?}",
            input.snapshot.errors
        );
        assert_eq!(input.snapshot.pods.len(), 1);
        assert_eq!(
            input.logs.current[&key("ml", "vllm-0", "vllm")].lines.len(),
            3
        );
        assert_eq!(input.observed_at, None);

        input.observed_at = Some("2026-11-28T03:30:00Z".into());
        input.logs.previous.insert(
            key("ml", "vllm-0", "vllm"),
            LogTail {
                source: "cluster".into(),
                first_line: None,
                lines: vec!["CUDA out of memory".into()],
                truncated: false,
            },
        );
        let bundle = dir.path().join("bundle");
        save_bundle(&bundle, &input, "test", LogBounds::default()).unwrap();
        let again = load_triage_paths(&[bundle], LogBounds::default());
        assert_eq!(again.snapshot.pods.len(), 1);
        let current = &again.logs.current[&key("ml", "vllm-0", "vllm")];
        assert_eq!(current.lines.len(), 3);
        let previous = &again.logs.previous[&key("ml", "vllm-0", "vllm")];
        assert_eq!(previous.lines, ["CUDA out of memory"]);
        assert_eq!(again.observed_at.as_deref(), Some("2026-11-28T03:30:00Z"));
    }

    #[test]
    fn several_bundles_keep_the_latest_capture_time() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = |name: &str, at: &str| {
            let input = TriageInput {
                observed_at: Some(at.into()),
                ..TriageInput::default()
            };
            let path = dir.path().join(name);
            save_bundle(&path, &input, "test", LogBounds::default()).unwrap();
            path
        };
        // 07:00Z written with its offset: as text it sorts after 08:30Z.
        let early = bundle("early", "2026-12-01T09:00:00+02:00");
        let late = bundle("late", "2026-12-01T08:30:00Z");
        for paths in [[early.clone(), late.clone()], [late.clone(), early.clone()]] {
            let input = load_triage_paths(&paths, LogBounds::default());
            assert_eq!(
                input.observed_at.as_deref(),
                Some("2026-12-01T08:30:00Z"),
                "{paths:?}"
            );
        }
    }

    /// A dump directory with one pod `ml/vllm-0` whose `logs.txt` holds `log` (raw bytes).
    fn dump_with_log(log: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let dump = dir.path().join("dump");
        std::fs::create_dir_all(dump.join("ml/vllm-0")).unwrap();
        let (objects, _, _) = split_dump(STREAM, "x", LogBounds::default());
        std::fs::write(
            dump.join("ml/pods.json"),
            &objects[..objects.find("{\n    \"kind\": \"ServiceList\"").unwrap()],
        )
        .unwrap();
        std::fs::write(dump.join("ml/vllm-0/logs.txt"), log).unwrap();
        (dir, dump)
    }

    fn section(lines: &[&[u8]]) -> Vec<u8> {
        let mut log = format!("{START}vllm of pod ml/vllm-0 ====\n").into_bytes();
        for line in lines {
            log.extend_from_slice(line);
            log.push(b'\n');
        }
        log.extend_from_slice(format!("{END}vllm of pod ml/vllm-0 ====\n").as_bytes());
        log
    }

    /// What kubectl writes in a container's section when the pod's kubelet does not answer.
    const KUBELET_UNREACHABLE: &str = "Request log error: Get \"https://10.0.0.7:10250/containerLogs/ml/vllm-0/vllm\": dial tcp 10.0.0.7:10250: connect: no route to host";

    /// The `pods/log` gap of every log `input` says was not read, made the snapshot's.
    fn every_gap(mut input: TriageInput) -> Vec<NotCovered> {
        input.record_logs_not_read(|_, _| true);
        input.snapshot.not_covered
    }

    #[test]
    fn a_section_holding_only_kubectls_failure_is_not_covered_and_no_log() {
        let (_dir, dump) = dump_with_log(&section(&[KUBELET_UNREACHABLE.as_bytes()]));
        let input = load_triage_paths(std::slice::from_ref(&dump), LogBounds::default());
        assert!(input.logs.is_empty(), "{:?}", input.logs.current.keys());
        // Not a gap until the pods triaged are known.
        assert!(input.snapshot.not_covered.is_empty());
        let not_covered = every_gap(input);
        let [gap] = not_covered.as_slice() else {
            panic!("{not_covered:?}");
        };
        assert_eq!(gap.kind, "pods/log");
        assert_eq!(
            gap.reason,
            format!(
                "kubectl could not read the log of ml/vllm-0 container vllm ({}:2): {KUBELET_UNREACHABLE}",
                dump.join("ml/vllm-0/logs.txt").display()
            )
        );

        // In a single stream too, for a log request kubectl could not make.
        let forbidden = r#"Create log request error: pods "vllm-0" is forbidden: User "dumper" cannot get resource "pods/log" in API group "" in the namespace "ml""#;
        let text = STREAM.replace(
            "line one\nline two\nline three\n",
            &format!("{forbidden}\n"),
        );
        let (_, logs, not_covered) = split_dump(&text, "dump.txt", LogBounds::default());
        assert!(logs.is_empty(), "{:?}", logs.current.keys());
        let [gap] = not_covered.as_slice() else {
            panic!("{not_covered:?}");
        };
        assert!(
            gap.reason.ends_with(&format!("(dump.txt:9): {forbidden}")),
            "{}",
            gap.reason
        );

        // A log that merely starts with such a line is a log.
        let text = STREAM.replace("line one\n", &format!("{KUBELET_UNREACHABLE}\n"));
        let (_, logs, not_covered) = split_dump(&text, "dump.txt", LogBounds::default());
        assert!(not_covered.is_empty(), "{not_covered:?}");
        assert_eq!(
            logs.current[&key("ml", "vllm-0", "vllm")].lines,
            [KUBELET_UNREACHABLE, "line two", "line three"]
        );
    }

    #[test]
    fn a_container_that_has_not_started_has_no_log_and_no_gap() {
        // The kubelet's answers (400) for a container with no log to read, and the API server's
        // (404) for a pod gone since it was listed: no log live either.
        for answer in [
            r#"Request log error: container "vllm" in pod "vllm-0" is waiting to start: PodInitializing"#,
            r#"Request log error: container "vllm" in pod "vllm-0" is waiting to start: ContainerCreating"#,
            r#"Request log error: container "vllm" in pod "vllm-0" is waiting to start: trying and failing to pull image"#,
            r#"Request log error: container "vllm" in pod "vllm-0" is waiting to start - no logs yet"#,
            r#"Request log error: container "vllm" in pod "vllm-0" is terminated"#,
            r#"Request log error: pods "vllm-0" not found"#,
        ] {
            let (_dir, dump) = dump_with_log(&section(&[answer.as_bytes()]));
            let input = load_triage_paths(std::slice::from_ref(&dump), LogBounds::default());
            assert!(input.logs.is_empty(), "{answer}: {:?}", input.logs.current);
            let not_covered = every_gap(input);
            assert!(not_covered.is_empty(), "{answer}: {not_covered:?}");
        }

        // A refusal that merely mentions such words is still one.
        for forbidden in [
            r#"Request log error: pods "vllm-0" is forbidden: container "vllm" in pod "vllm-0" is waiting to start"#,
            r#"Request log error: pods "vllm-0" is forbidden: User "u" cannot get resource "pods/log" in API group "" in the namespace "ml": RBAC: role.rbac.authorization.k8s.io "log-reader" not found"#,
        ] {
            let (_dir, dump) = dump_with_log(&section(&[forbidden.as_bytes()]));
            let input = load_triage_paths(std::slice::from_ref(&dump), LogBounds::default());
            assert_eq!(every_gap(input).len(), 1, "{forbidden}");
        }
    }

    #[test]
    fn only_the_pods_wanted_make_the_gap() {
        let gaps_of = |wanted: &dyn Fn(&str, &str) -> bool| {
            let mut not_read = UnreadLogs::default();
            for pod in ["vllm-0", "other-0"] {
                let reason = format!("kubectl could not read the log of ml/{pod} container vllm");
                not_read.add(key("ml", pod, "vllm"), false, reason);
            }
            not_read.retain_pods(wanted);
            let mut not_covered = Vec::new();
            not_read.record(&mut not_covered);
            not_covered
        };
        let not_covered = gaps_of(&|ns, pod| (ns, pod) == ("ml", "vllm-0"));
        let [gap] = not_covered.as_slice() else {
            panic!("{not_covered:?}");
        };
        assert_eq!(gap.kind, "pods/log");
        assert_eq!(
            gap.reason,
            "kubectl could not read the log of ml/vllm-0 container vllm"
        );

        let not_covered = gaps_of(&|_, pod| pod == "somebody-else");
        assert!(not_covered.is_empty(), "{not_covered:?}");
    }

    /// A dump directory whose pods `ml/vllm-0` and `ml/other-0` have no log: kubectl could not
    /// reach their node's kubelet.
    fn dump_with_two_logs_not_read() -> (tempfile::TempDir, PathBuf) {
        let (dir, dump) = dump_with_log(&section(&[KUBELET_UNREACHABLE.as_bytes()]));
        let other = String::from_utf8(section(&[KUBELET_UNREACHABLE.as_bytes()]))
            .unwrap()
            .replace("vllm-0", "other-0");
        std::fs::create_dir_all(dump.join("ml/other-0")).unwrap();
        std::fs::write(dump.join("ml/other-0/logs.txt"), other).unwrap();
        (dir, dump)
    }

    /// The `pods/log` gap of the logs `paths` say were not read, of the pods `wanted` keeps.
    fn gaps_of(paths: &[PathBuf], wanted: impl Fn(&str, &str) -> bool) -> Vec<NotCovered> {
        let mut input = load_triage_paths(paths, LogBounds::default());
        assert!(
            input.snapshot.errors.is_empty(),
            "{:?}",
            input.snapshot.errors
        );
        input.record_logs_not_read(wanted);
        input.snapshot.not_covered
    }

    #[test]
    fn a_bundle_keeps_every_log_the_dump_did_not_read_for_any_endpoint_triaged_from_it() {
        let (dir, dump) = dump_with_two_logs_not_read();
        let input = load_triage_paths(std::slice::from_ref(&dump), LogBounds::default());
        let bundle = dir.path().join("bundle");
        save_bundle(&bundle, &input, "test", LogBounds::default()).unwrap();
        let from_bundle = std::slice::from_ref(&bundle);

        // Each pod's log not read is its own triage's gap, once, whichever was triaged first.
        let gaps = gaps_of(from_bundle, |_, pod| pod == "other-0");
        let [gap] = gaps.as_slice() else {
            panic!("{gaps:?}");
        };
        assert_eq!(gap.kind, "pods/log");
        assert!(
            (gap.reason)
                .starts_with("kubectl could not read the log of ml/other-0 container vllm ("),
            "{}",
            gap.reason
        );
        let gaps = gaps_of(from_bundle, |_, _| true);
        let [gap] = gaps.as_slice() else {
            panic!("{gaps:?}");
        };
        assert!(
            (gap.reason).starts_with("the logs of 2 pods were not read: ml/other-0, ml/vllm-0;"),
            "{}",
            gap.reason
        );
        // Another pod's are no gap: the snapshot holds none of them.
        let gaps = gaps_of(from_bundle, |_, pod| pod == "somebody-else");
        assert!(gaps.is_empty(), "{gaps:?}");

        // A bundle saved from the bundle keeps them too.
        let again = load_triage_paths(from_bundle, LogBounds::default());
        let resaved = dir.path().join("resaved");
        save_bundle(&resaved, &again, "test", LogBounds::default()).unwrap();
        let gaps = gaps_of(std::slice::from_ref(&resaved), |_, pod| pod == "vllm-0");
        assert_eq!(gaps.len(), 1, "{gaps:?}");

        // Saved over with none, the bundle has none left of the earlier capture's.
        save_bundle(
            &bundle,
            &TriageInput::default(),
            "test",
            LogBounds::default(),
        )
        .unwrap();
        assert!(gaps_of(from_bundle, |_, _| true).is_empty());
        // Nor does a bundle saved before they were kept: it reads as before.
        save_bundle(&bundle, &input, "test", LogBounds::default()).unwrap();
        std::fs::remove_file(bundle.join(BUNDLE_LOGS_NOT_READ)).unwrap();
        assert!(gaps_of(from_bundle, |_, _| true).is_empty());
    }

    #[test]
    fn a_live_triages_log_gaps_stay_gaps_in_its_bundle_and_count_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut input = TriageInput::default();
        // As `fetch_logs` records the logs it could not read.
        input.snapshot.not_covered.push(NotCovered {
            kind: "pods/log".into(),
            reason: "cannot read the log of ml/vllm-0 container vllm: forbidden (403)".into(),
        });
        save_bundle(dir.path(), &input, "test", LogBounds::default()).unwrap();
        assert!(!dir.path().join(BUNDLE_LOGS_NOT_READ).exists());
        let gaps = gaps_of(&[dir.path().to_path_buf()], |_, _| true);
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert_eq!(gaps[0].reason, input.snapshot.not_covered[0].reason);
    }

    #[test]
    fn a_malformed_list_of_logs_not_read_is_an_error_naming_the_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let mut input = TriageInput::default();
        let tail = LogTail {
            source: "cluster".into(),
            first_line: None,
            lines: vec!["serving".into()],
            truncated: false,
        };
        input.logs.current.insert(key("ml", "vllm-0", "vllm"), tail);
        save_bundle(dir.path(), &input, "test", LogBounds::default()).unwrap();
        let file = dir.path().join(BUNDLE_LOGS_NOT_READ);
        let load = || load_triage_paths(&[dir.path().to_path_buf()], LogBounds::default());
        let errors_of = |input: &TriageInput| -> Vec<String> {
            (input.snapshot.errors.iter())
                .map(|e| format!("{}: {}", e.origin, e.message))
                .collect()
        };

        std::fs::write(
            &file,
            r#"[
  {"namespace": "ml", "pod": "vllm-0", "container": "vllm", "previous": true, "reason": "no route to host"},
  {"namespace": "ml", "pod": 7, "container": "vllm", "previous": false, "reason": "no route to host"},
  {"namespace": "ml", "pod": "other-0", "container": "vllm", "reason": "no route to host"},
  "ml/other-0"
]"#,
        )
        .unwrap();
        let input = load();
        let errors = errors_of(&input);
        assert_eq!(errors.len(), 3, "{errors:?}");
        for (error, says) in errors.iter().zip([
            "entry 2: `pod`",
            "entry 3: `previous`",
            "entry 4: not an object",
        ]) {
            assert!(
                error.contains("logs-not-read.json") && error.contains(says),
                "{error}"
            );
        }
        // The rest is still read: the good entry, and the logs.
        assert_eq!(input.logs.current.len(), 1);
        let not_read: Vec<_> = input.logs_not_read.iter().collect();
        assert_eq!(
            not_read,
            [(["ml", "vllm-0", "vllm"], true, "no route to host")]
        );

        std::fs::write(&file, r#"{"namespace": "ml"}"#).unwrap();
        let input = load();
        let errors = errors_of(&input);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("logs-not-read.json") && errors[0].contains("not a list"),
            "{errors:?}"
        );
        assert_eq!(input.logs.current.len(), 1);
        assert_eq!(input.logs_not_read.iter().count(), 0);
    }

    #[test]
    fn a_line_longer_than_the_byte_bound_keeps_its_end() {
        let long = format!("{}CUDA out of memory", "é".repeat(2_000_000));
        let (_dir, dump) = dump_with_log(&section(&[b"start", long.as_bytes()]));
        let bounds = LogBounds {
            lines: 100,
            bytes: 1001,
        };
        let input = load_triage_paths(&[dump], bounds);
        let tail = &input.logs.current[&key("ml", "vllm-0", "vllm")];
        assert_eq!(
            tail.lines.len(),
            1,
            "the line before does not fit beside it"
        );
        assert!(tail.lines[0].len() <= 1001 && tail.lines[0].ends_with("CUDA out of memory"));
        assert!(
            tail.lines[0].starts_with('é'),
            "cut at a character boundary"
        );
        assert_eq!(tail.first_line, Some(3));
        assert!(tail.truncated);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_replaced_not_the_whole_log_skipped() {
        let (_dir, dump) = dump_with_log(&section(&[b"ok", b"bad \xff byte", b"crash"]));
        let input = load_triage_paths(&[dump], LogBounds::default());
        assert!(
            input.snapshot.errors.is_empty(),
            "{:?}",
            input.snapshot.errors
        );
        let tail = &input.logs.current[&key("ml", "vllm-0", "vllm")];
        assert_eq!(tail.lines, ["ok", "bad \u{fffd} byte", "crash"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_log_that_is_a_device_or_missing_is_an_error_not_a_hang_or_a_gap() {
        let (_dir, dump) = dump_with_log(b"");
        let logs = dump.join("ml/vllm-0/logs.txt");
        std::fs::remove_file(&logs).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &logs).unwrap();
        let input = load_triage_paths(std::slice::from_ref(&dump), LogBounds::default());
        assert!(input.logs.is_empty());
        let errors: Vec<String> = input
            .snapshot
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.origin, e.message))
            .collect();
        assert!(
            errors
                .iter()
                .any(|e| e.contains("logs.txt") && e.contains("not a regular file")),
            "{errors:?}"
        );

        std::fs::remove_file(&logs).unwrap();
        std::os::unix::fs::symlink("/nonexistent/logs", &logs).unwrap();
        let input = load_triage_paths(&[dump], LogBounds::default());
        assert!(
            input
                .snapshot
                .errors
                .iter()
                .any(|e| e.message.starts_with("cannot read")),
            "{:?}",
            input.snapshot.errors
        );
    }

    #[test]
    fn a_log_line_that_copies_another_pods_marker_stays_a_log_line() {
        let copied = format!("{START}other of pod ml/somebody-else ====");
        let (_dir, dump) = dump_with_log(&section(&[b"one", copied.as_bytes(), b"two"]));
        let input = load_triage_paths(&[dump], LogBounds::default());
        assert_eq!(input.logs.current.len(), 1);
        let tail = &input.logs.current[&key("ml", "vllm-0", "vllm")];
        assert_eq!(tail.lines, ["one", copied.as_str(), "two"]);
    }

    #[test]
    fn a_single_stream_file_is_read_as_a_stream_with_its_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cluster-info.dump");
        let mut text = STREAM
            .replace("line two", "line \u{1F600} two")
            .into_bytes();
        // One byte that is not UTF-8 inside the log section.
        let at = text.windows(10).position(|w| w == b"line three").unwrap();
        text.insert(at + 4, 0xff);
        std::fs::write(&file, &text).unwrap();
        let bounds = LogBounds {
            lines: 2,
            bytes: 1024,
        };
        let input = load_triage_paths(&[file], bounds);
        assert!(
            input.snapshot.errors.is_empty(),
            "{:?}",
            input.snapshot.errors
        );
        assert_eq!(input.snapshot.pods.len(), 1);
        assert_eq!(input.snapshot.pods[0].origin.line, Some(5));
        assert_eq!(input.snapshot.services[0].origin.line, Some(17));
        let tail = &input.logs.current[&key("ml", "vllm-0", "vllm")];
        assert_eq!(tail.lines, ["line \u{1F600} two", "line\u{fffd} three"]);
        assert_eq!(
            tail.locate(0),
            format!("{}:10", dir.path().join("cluster-info.dump").display())
        );
    }

    /// STREAM with `last` appended to the vllm log without a newline, as a killed process leaves
    /// its log: kubectl writes the END marker straight after the log's bytes.
    fn stream_ending_a_log_with(last: &str) -> String {
        let text = STREAM.replace(
            "line three\n==== END",
            &format!("line three\n{last}==== END"),
        );
        assert_ne!(text, STREAM);
        text
    }

    #[test]
    fn a_log_without_a_final_newline_still_ends_at_its_marker() {
        let text = stream_ending_a_log_with("Killed");
        for (bytes, expected) in [
            (1024, &["line one", "line two", "line three", "Killed"][..]),
            // A byte bound smaller than the marker still finds it.
            (4, &["lled"][..]),
        ] {
            let bounds = LogBounds { lines: 100, bytes };
            let (objects, logs, _) = split_dump(&text, "dump.txt", bounds);
            let snapshot = hangar_core::snapshot_from_text("dump.txt", &objects);
            assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
            // The objects after the log are objects, not the log's tail.
            assert_eq!(snapshot.services.len(), 1, "{bytes}");
            assert_eq!(snapshot.services[0].origin.line, Some(17));
            let tail = &logs.current[&key("ml", "vllm-0", "vllm")];
            assert_eq!(tail.lines, expected, "{bytes}");
        }
    }

    #[test]
    fn a_long_last_line_without_a_newline_keeps_its_end_and_the_objects_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cluster-info.dump");
        let long = format!("{}Killed", "x".repeat(200_000));
        std::fs::write(&file, stream_ending_a_log_with(&long)).unwrap();
        let bounds = LogBounds {
            lines: 100,
            bytes: 16,
        };
        let input = load_triage_paths(&[file], bounds);
        assert!(
            input.snapshot.errors.is_empty(),
            "{:?}",
            input.snapshot.errors
        );
        assert_eq!(input.snapshot.services.len(), 1);
        assert_eq!(input.snapshot.services[0].origin.line, Some(17));
        let tail = &input.logs.current[&key("ml", "vllm-0", "vllm")];
        assert_eq!(tail.lines, ["xxxxxxxxxxKilled"]);
        assert_eq!(tail.first_line, Some(12));
        assert!(tail.truncated);
    }

    #[test]
    fn in_a_single_stream_only_a_sections_own_end_marker_closes_it() {
        // A log that prints another dump's markers, END first.
        let copied_end = format!("{END}other of pod ml/somebody-else ====");
        let copied_start = format!("{START}other of pod ml/somebody-else ====");
        let text = STREAM.replace(
            "line two\n",
            &format!("line two\n{copied_end}\n{copied_start}\n"),
        );
        let (objects, logs, _) = split_dump(&text, "dump.txt", LogBounds::default());
        let snapshot = hangar_core::snapshot_from_text("dump.txt", &objects);
        assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
        assert_eq!(snapshot.services.len(), 1);
        assert_eq!(logs.current.len(), 1, "{:?}", logs.current.keys());
        let tail = &logs.current[&key("ml", "vllm-0", "vllm")];
        assert_eq!(
            tail.lines,
            [
                "line one",
                "line two",
                copied_end.as_str(),
                copied_start.as_str(),
                "line three"
            ]
        );
    }

    #[test]
    fn a_dump_piped_to_standard_input_is_split_as_a_file_is() {
        const CHILD: &str = "HANGAR_TEST_STDIN_CHILD";
        if std::env::var_os(CHILD).is_some() {
            let input = load_triage_paths(&[PathBuf::from("-")], LogBounds::default());
            assert!(
                input.snapshot.errors.is_empty(),
                "{:?}",
                input.snapshot.errors
            );
            assert_eq!(input.snapshot.pods.len(), 1);
            assert_eq!(input.snapshot.services[0].origin.to_string(), "<stdin>:17");
            let tail = &input.logs.current[&key("ml", "vllm-0", "vllm")];
            assert_eq!(tail.lines, ["line one", "line two", "line three"]);
            assert_eq!(tail.locate(0), "<stdin>:9");
            return;
        }
        // Standard input is the process's own: this test runs again, with the dump piped in.
        let name = "triage_files::tests::a_dump_piped_to_standard_input_is_split_as_a_file_is";
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, STREAM.as_bytes()).unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn saving_over_an_earlier_bundle_leaves_none_of_its_logs() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("bundle");
        let tail = |line: &str| LogTail {
            source: "cluster".into(),
            first_line: None,
            lines: vec![line.into()],
            truncated: false,
        };
        let vllm = key("ml", "vllm-0", "vllm");
        let mut input = TriageInput::default();
        input.logs.current.insert(vllm.clone(), tail("loading"));
        input
            .logs
            .previous
            .insert(vllm.clone(), tail("CUDA out of memory"));
        save_bundle(&bundle, &input, "monday", LogBounds::default()).unwrap();
        // Recreated since: the pod has no previous log now.
        input.logs.current.insert(vllm.clone(), tail("serving"));
        input.logs.previous.clear();
        save_bundle(&bundle, &input, "tuesday", LogBounds::default()).unwrap();
        let again = load_triage_paths(std::slice::from_ref(&bundle), LogBounds::default());
        assert_eq!(again.logs.current[&vllm].lines, ["serving"]);
        assert!(again.logs.previous.is_empty(), "{:?}", again.logs.previous);

        // Any other directory with something in it is left alone.
        let notes = dir.path().join("notes");
        std::fs::create_dir(&notes).unwrap();
        std::fs::write(notes.join("todo.txt"), "call the GPU vendor").unwrap();
        let error = save_bundle(&notes, &input, "tuesday", LogBounds::default()).unwrap_err();
        assert!(error.to_string().contains("not empty"), "{error}");
        assert_eq!(std::fs::read_dir(&notes).unwrap().count(), 1);
    }

    #[test]
    fn bundle_logs_are_bounded_too() {
        let dir = tempfile::tempdir().unwrap();
        let input = TriageInput::default();
        save_bundle(dir.path(), &input, "test", LogBounds::default()).unwrap();
        let pod = dir.path().join(BUNDLE_LOGS).join("ml/vllm-0");
        std::fs::create_dir_all(&pod).unwrap();
        let text: String = (1..=1000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(pod.join("vllm.log"), text).unwrap();
        let bounds = LogBounds {
            lines: 10,
            bytes: 1024,
        };
        let again = load_triage_paths(&[dir.path().to_path_buf()], bounds);
        let tail = &again.logs.current[&key("ml", "vllm-0", "vllm")];
        assert_eq!(tail.lines.len(), 10);
        assert_eq!(tail.lines[9], "line 1000");
        assert_eq!(tail.first_line, Some(991));
        assert!(tail.truncated);
    }

    #[test]
    fn hostile_names_stay_inside_the_bundle() {
        assert_eq!(safe_name("../../etc"), ".._.._etc");
        assert_eq!(safe_name(".."), "_");
        assert_eq!(safe_name("vllm-0"), "vllm-0");
    }
}
