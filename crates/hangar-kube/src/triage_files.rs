//! What triage reads offline: a `kubectl cluster-info dump` (a directory, or the single stream it
//! prints without `--output-directory`), Hangar's own triage bundle, or plain manifests and
//! snapshots. Objects come through the same door as `hangar audit`'s; logs are kept as bounded
//! tails with the file and line each came from.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hangar_core::{LoadError, Origin, Snapshot};
use hangar_triage::{LogTail, Logs};
use serde_json::json;

use crate::files::load_paths;
use crate::live::{LogBounds, save_snapshot};

/// The file that marks a directory as a triage bundle written by `save_bundle`.
pub const BUNDLE_MANIFEST: &str = "hangar-bundle.json";
/// The schema of that file.
pub const BUNDLE_SCHEMA: &str = "hangar.dev/triage-bundle/v1";
const BUNDLE_SNAPSHOT: &str = "snapshot.yaml";
const BUNDLE_LOGS: &str = "logs";

/// How kubectl opens and closes each container's log in a dump:
/// `==== START logs for container vllm of pod ml/vllm-0 ====`.
const START: &str = "==== START logs for container ";
const END: &str = "==== END logs for container ";

/// What triage read offline.
#[derive(Debug, Default)]
pub struct TriageInput {
    pub snapshot: Snapshot,
    pub logs: Logs,
    /// When the input was captured (RFC 3339), when a bundle says so.
    pub observed_at: Option<String>,
}

/// Reads objects and log tails from `paths`: dump directories, bundle directories, single-stream
/// dumps, manifests. Unreadable input is an error in the snapshot; the rest is still read.
pub fn load_triage_paths(paths: &[PathBuf], bounds: LogBounds) -> TriageInput {
    let mut snapshot = Snapshot::default();
    let mut logs = Logs::default();
    let mut observed_at = None;
    for path in paths {
        let (part, part_logs) = if path.join(BUNDLE_MANIFEST).is_file() {
            observed_at = observed_at.or_else(|| bundle_time(path));
            load_bundle(path)
        } else if path.is_dir() {
            (
                load_paths(std::slice::from_ref(path)),
                dump_logs(path, bounds),
            )
        } else {
            load_file(path, bounds)
        };
        snapshot.absorb(part);
        logs.current.extend(part_logs.current);
        logs.previous.extend(part_logs.previous);
    }
    TriageInput {
        snapshot,
        logs,
        observed_at,
    }
}

/// The capture time a bundle's manifest records.
fn bundle_time(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(BUNDLE_MANIFEST)).ok()?;
    let manifest: serde_json::Value = serde_json::from_str(&text).ok()?;
    manifest.get("observedAt")?.as_str().map(str::to_owned)
}

/// One file: a single-stream `cluster-info dump` (JSON lists with log sections between them),
/// or a manifest or snapshot.
fn load_file(path: &Path, bounds: LogBounds) -> (Snapshot, Logs) {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(_) => return (load_paths(&[path.to_path_buf()]), Logs::default()),
    };
    if !text.contains(START) {
        return (load_paths(&[path.to_path_buf()]), Logs::default());
    }
    let source = path.display().to_string();
    let (objects_text, logs) = split_dump(&text, &source, bounds);
    let snapshot = hangar_core::snapshot_from_text(&source, &objects_text);
    (snapshot, logs)
}

/// The `logs.txt` files below a dump directory (`DIR/<namespace>/<pod>/logs.txt`).
fn dump_logs(dir: &Path, bounds: LogBounds) -> Logs {
    let mut logs = Logs::default();
    let mut files = Vec::new();
    find_log_files(dir, &mut files, 0);
    files.sort();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let (_, found) = split_dump(&text, &file.display().to_string(), bounds);
        logs.current.extend(found.current);
    }
    logs
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

/// Splits dump text into the objects (log sections blanked, so line numbers still match the
/// file) and the log sections, each cut to its last `bounds` lines and bytes.
pub fn split_dump(text: &str, source: &str, bounds: LogBounds) -> (String, Logs) {
    let mut objects = String::with_capacity(text.len());
    let mut logs = Logs::default();
    let mut open: Option<Section> = None;
    for (index, line) in text.lines().enumerate() {
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        if let Some(key) = line.strip_prefix(START).and_then(section_key) {
            if let Some(section) = open.take() {
                section.finish(source, &mut logs);
            }
            open = Some(Section::new(key, bounds));
            objects.push('\n');
            continue;
        }
        if line.starts_with(END) {
            if let Some(section) = open.take() {
                section.finish(source, &mut logs);
            }
            objects.push('\n');
            continue;
        }
        match &mut open {
            Some(section) => {
                section.push(number, line);
                objects.push('\n');
            }
            None => {
                objects.push_str(line);
                objects.push('\n');
            }
        }
    }
    if let Some(section) = open.take() {
        section.finish(source, &mut logs);
    }
    (objects, logs)
}

/// `vllm of pod ml/vllm-0 ====` → `(ml, vllm-0, vllm)`.
fn section_key(rest: &str) -> Option<(String, String, String)> {
    let rest = rest.trim_end().strip_suffix("====")?.trim_end();
    let (container, pod) = rest.split_once(" of pod ")?;
    let (namespace, pod) = pod.split_once('/')?;
    Some((namespace.to_owned(), pod.to_owned(), container.to_owned()))
}

/// A log section being read: only its last lines are kept.
struct Section {
    key: (String, String, String),
    lines: VecDeque<(u32, String)>,
    bytes: usize,
    bounds: LogBounds,
    dropped: bool,
}

impl Section {
    fn new(key: (String, String, String), bounds: LogBounds) -> Self {
        Section {
            key,
            lines: VecDeque::new(),
            bytes: 0,
            bounds,
            dropped: false,
        }
    }

    fn push(&mut self, number: u32, line: &str) {
        self.bytes += line.len() + 1;
        self.lines.push_back((number, line.to_owned()));
        while self.lines.len() > self.bounds.lines
            || (self.bytes > self.bounds.bytes && self.lines.len() > 1)
        {
            if let Some((_, gone)) = self.lines.pop_front() {
                self.bytes -= gone.len() + 1;
                self.dropped = true;
            }
        }
    }

    fn finish(self, source: &str, logs: &mut Logs) {
        if self.lines.is_empty() {
            return;
        }
        let first_line = self.lines.front().map(|(n, _)| *n);
        logs.current.insert(
            self.key,
            LogTail {
                source: source.to_owned(),
                first_line,
                lines: self.lines.into_iter().map(|(_, l)| l).collect(),
                truncated: self.dropped,
            },
        );
    }
}

/// Reads a bundle `save_bundle` wrote.
fn load_bundle(dir: &Path) -> (Snapshot, Logs) {
    let mut snapshot = load_paths(&[dir.join(BUNDLE_SNAPSHOT)]);
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
                let text = match std::fs::read_to_string(&path) {
                    Ok(text) => text,
                    Err(e) => {
                        snapshot.errors.push(LoadError {
                            origin: Origin::file(Arc::from(path.display().to_string()), 1),
                            object: None,
                            message: format!("cannot read this log: {e}"),
                        });
                        continue;
                    }
                };
                let key = (
                    namespace.file_name().to_string_lossy().into_owned(),
                    pod.file_name().to_string_lossy().into_owned(),
                    container.to_owned(),
                );
                let tail = LogTail {
                    source: path.display().to_string(),
                    first_line: Some(1),
                    lines: text.lines().map(str::to_owned).collect(),
                    truncated: false,
                };
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

/// Writes a triage bundle to `dir`: the snapshot (Events included) as `snapshot.yaml`, each log
/// tail as `logs/<namespace>/<pod>/<container>[.previous].log`, and a manifest saying what it is.
/// `hangar triage --from DIR` reads it back offline.
pub fn save_bundle(
    dir: &Path,
    input: &TriageInput,
    source: &str,
    bounds: LogBounds,
) -> std::io::Result<()> {
    let (snapshot, logs) = (&input.snapshot, &input.logs);
    std::fs::create_dir_all(dir)?;
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
    let manifest = json!({
        "schema": BUNDLE_SCHEMA,
        "source": source,
        "observedAt": input.observed_at,
        "objects": snapshot.object_count(),
        "logTails": logs.current.len() + logs.previous.len(),
        "logBounds": {"lines": bounds.lines, "bytes": bounds.bytes},
    });
    let text = serde_json::to_string_pretty(&manifest).map_err(std::io::Error::other)?;
    std::fs::write(dir.join(BUNDLE_MANIFEST), text)
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
        let (objects, logs) = split_dump(STREAM, "dump.txt", bounds);
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
        let (_, logs) = split_dump(STREAM, "dump.txt", bounds);
        assert_eq!(
            logs.current[&key("ml", "vllm-0", "vllm")].lines,
            ["line three"]
        );
    }

    #[test]
    fn dump_directories_and_bundles_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let dump = dir.path().join("dump");
        std::fs::create_dir_all(dump.join("ml/vllm-0")).unwrap();
        let (objects, _) = split_dump(STREAM, "x", LogBounds::default());
        std::fs::write(
            dump.join("ml/pods.json"),
            &objects[..objects.find("{\n    \"kind\": \"ServiceList\"").unwrap()],
        )
        .unwrap();
        let logs_text = STREAM
            .lines()
            .skip_while(|l| !l.starts_with(START))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(dump.join("ml/vllm-0/logs.txt"), logs_text).unwrap();
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
    fn hostile_names_stay_inside_the_bundle() {
        assert_eq!(safe_name("../../etc"), ".._.._etc");
        assert_eq!(safe_name(".."), "_");
        assert_eq!(safe_name("vllm-0"), "vllm-0");
    }
}
