//! Loading a Snapshot from files: YAML and JSON manifests, `kubectl get -o yaml|json` dumps,
//! whole directories (recursively) and `-` for standard input.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hangar_core::parse::{ParsedFile, parse_bytes};
use hangar_core::{LoadError, Origin, Snapshot};
use rayon::prelude::*;

/// Extensions read when walking a directory. Files named explicitly are read whatever their name.
const MANIFEST_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// Reads every path into one snapshot. Unreadable files, Helm charts and bad documents become
/// `LoadError`s in the snapshot; everything else is still read.
pub fn load_paths(paths: &[PathBuf]) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let mut walk = Walk::default();
    for path in paths {
        collect(path, true, &mut walk, &mut snapshot.errors);
    }
    // In the order given, each directory's files sorted by the walk: the last copy of an
    // object wins, as applying the paths in that order would leave it.
    let mut seen = HashSet::new();
    let files: Vec<PathBuf> = (walk.files.into_iter())
        .filter(|file| seen.insert(file.clone()))
        .collect();
    // Each file's objects go to their kinds' lists on the thread that parsed them; joining the
    // lists is then one copy per kind.
    let parts: Vec<Snapshot> = files
        .par_iter()
        .map(|file| {
            let parsed = read_and_parse(file);
            let mut part = Snapshot::default();
            for (object, origin) in parsed.objects {
                part.insert(object, origin);
            }
            // Added to what the objects brought (a saved scan's gaps), not in their place.
            part.errors.extend(parsed.errors);
            part.not_objects = parsed.not_objects;
            part
        })
        .collect();
    snapshot.absorb_all(parts);
    snapshot.resolve_duplicates();
    snapshot
}

fn error(path: &Path, message: String) -> LoadError {
    LoadError {
        origin: Origin {
            file: Some(Arc::from(path.display().to_string())),
            line: None,
        },
        object: None,
        message,
    }
}

/// What the walk over the paths found: the files to read, and the directories entered and
/// regular files taken so far (canonical), so a symbolic link back up the tree is not walked
/// again and a file reached by two paths is read once.
#[derive(Default)]
struct Walk {
    files: Vec<PathBuf>,
    visited: HashSet<PathBuf>,
}

impl Walk {
    /// Takes `path` to be read, unless it is a regular file already taken by another path.
    fn take(&mut self, path: &Path, regular: bool) {
        if regular {
            let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            if !self.visited.insert(canonical) {
                tracing::debug!(path = %path.display(), "file already taken; skipped");
                return;
            }
        }
        self.files.push(path.to_path_buf());
    }
}

fn has_manifest_extension(path: &Path) -> bool {
    (path.extension().and_then(|e| e.to_str()))
        .is_some_and(|e| MANIFEST_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Gathers the files under `path`. A directory holding a `Chart.yaml` is a Helm chart: one error
/// for the chart, and its templates are not read.
fn collect(path: &Path, named: bool, walk: &mut Walk, errors: &mut Vec<LoadError>) {
    if path == Path::new("-") {
        walk.files.push(path.to_path_buf());
        return;
    }
    let metadata = match std::fs::metadata(path) {
        Ok(m) => m,
        // Inside a directory, only a manifest that cannot be read matters: a dangling link
        // elsewhere (`result`, `bazel-out`) is no input.
        Err(e) if named || has_manifest_extension(path) => {
            return errors.push(error(path, format!("cannot read: {e}")));
        }
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "unreadable entry skipped");
            return;
        }
    };
    if !metadata.is_dir() {
        // A path given by name is read whatever it is: a pipe (`<(kustomize build)`) or a
        // device too. Inside a directory, only regular manifest files: a pipe there could
        // block the walk.
        let wanted = named || (metadata.is_file() && has_manifest_extension(path));
        if wanted {
            walk.take(path, metadata.is_file());
        }
        return;
    }
    // A directory reached again through a symbolic link (`ln -s . again`) holds nothing new.
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if !walk.visited.insert(canonical) {
        tracing::debug!(path = %path.display(), "directory already read; skipped");
        return;
    }
    if path.join("Chart.yaml").is_file() {
        return errors.push(error(
            path,
            "this is a Helm chart; render it with `helm template` and audit the output".into(),
        ));
    }
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) => return errors.push(error(path, format!("cannot list directory: {e}"))),
    };
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    for child in children {
        let hidden = child
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if !hidden {
            collect(&child, false, walk, errors);
        }
    }
}

fn read_and_parse(path: &Path) -> ParsedFile {
    let (name, bytes) = if path == Path::new("-") {
        let mut bytes = Vec::new();
        match std::io::stdin().read_to_end(&mut bytes) {
            Ok(_) => ("<stdin>".to_owned(), bytes),
            Err(e) => return failed(path, format!("cannot read standard input: {e}")),
        }
    } else {
        match std::fs::read(path) {
            Ok(bytes) => (path.display().to_string(), bytes),
            Err(e) => return failed(path, format!("cannot read: {e}")),
        }
    };
    parse_bytes(&Arc::from(name), &bytes)
}

fn failed(path: &Path, message: String) -> ParsedFile {
    ParsedFile {
        errors: vec![error(path, message)],
        ..ParsedFile::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    const NS: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n";

    #[test]
    fn a_file_reached_by_two_paths_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "apps/ns.yaml", NS);
        write(
            dir.path(),
            "other/svc.yaml",
            &NS.replace("name: a", "name: b"),
        );
        std::fs::create_dir_all(dir.path().join("linked")).unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("apps/ns.yaml"),
            dir.path().join("linked/ns.yaml"),
        )
        .unwrap();
        let mut walk = Walk::default();
        let mut errors = Vec::new();
        collect(dir.path(), true, &mut walk, &mut errors);
        // Named again on the command line, too.
        collect(
            &dir.path().join("linked/ns.yaml"),
            true,
            &mut walk,
            &mut errors,
        );
        let names: Vec<_> = walk
            .files
            .iter()
            .map(|f| f.strip_prefix(dir.path()).unwrap())
            .collect();
        assert_eq!(
            names,
            [Path::new("apps/ns.yaml"), Path::new("other/svc.yaml")]
        );
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn directories_are_read_recursively_and_charts_are_refused_once() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", NS);
        write(
            dir.path(),
            "nested/deeper/b.yml",
            &NS.replace("name: a", "name: b"),
        );
        write(
            dir.path(),
            "nested/c.json",
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"c"}}"#,
        );
        write(dir.path(), "notes.txt", "not a manifest");
        write(dir.path(), "chart/Chart.yaml", "apiVersion: v2\nname: x\n");
        write(dir.path(), "chart/templates/svc.yaml", "{{ .Values }}");
        let snapshot = load_paths(&[dir.path().to_path_buf()]);
        assert_eq!(namespace_names(&snapshot), ["a", "b", "c"]);
        assert_eq!(snapshot.errors.len(), 1, "{:?}", snapshot.errors);
        assert!(snapshot.errors[0].message.contains("Helm chart"));
    }

    fn namespace_names(snapshot: &Snapshot) -> Vec<String> {
        let mut names: Vec<_> = snapshot
            .namespaces
            .iter()
            .map(|n| n.object.metadata.name.clone().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_saved_snapshot_reads_back_with_its_gaps_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut snapshot = hangar_core::snapshot_from_text("a.yaml", NS);
        snapshot.not_covered.push(hangar_core::NotCovered {
            kind: "Secret".into(),
            reason: "forbidden".into(),
        });
        snapshot
            .errors
            .push(error(Path::new("cluster"), "Pod ml/x: bad field".into()));
        let saved = dir.path().join("s.yaml");
        crate::live::save_snapshot(&snapshot, &saved).unwrap();
        let read = load_paths(&[saved]);
        assert_eq!(namespace_names(&read), ["a"]);
        assert_eq!(read.not_covered.len(), 1);
        assert_eq!(read.errors.len(), 1, "{:?}", read.errors);
        assert!(read.errors[0].message.contains("Pod ml/x: bad field"));
    }

    #[test]
    fn a_dangling_link_in_a_directory_is_no_input_unless_it_names_a_manifest() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "d/a.yaml", NS);
        std::os::unix::fs::symlink("/nowhere/out", dir.path().join("d/result")).unwrap();
        let snapshot = load_paths(&[dir.path().join("d")]);
        assert_eq!(namespace_names(&snapshot), ["a"]);
        assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
        std::os::unix::fs::symlink("/nowhere/b.yaml", dir.path().join("d/b.yaml")).unwrap();
        let snapshot = load_paths(&[dir.path().join("d")]);
        assert_eq!(snapshot.errors.len(), 1, "{:?}", snapshot.errors);
        assert!(snapshot.errors[0].message.starts_with("cannot read"));
    }

    #[test]
    fn the_path_given_last_wins_as_applying_in_that_order_would() {
        let dir = tempfile::tempdir().unwrap();
        let config = |value: &str| {
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c, namespace: ml}}\ndata: {{v: {value}}}\n"
            )
        };
        write(dir.path(), "patched.yaml", &config("patched"));
        write(dir.path(), "base.yaml", &config("base"));
        let value = |paths: &[&str]| {
            let paths: Vec<PathBuf> = paths.iter().map(|p| dir.path().join(p)).collect();
            let snapshot = load_paths(&paths);
            let data = snapshot.config_maps[0].object.data.clone().unwrap();
            data["v"].clone()
        };
        assert_eq!(value(&["patched.yaml", "base.yaml"]), "base");
        assert_eq!(value(&["base.yaml", "patched.yaml"]), "patched");
    }

    #[test]
    fn a_symlink_back_to_its_own_directory_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "d/a.yaml", NS);
        std::os::unix::fs::symlink(".", dir.path().join("d/loop")).unwrap();
        let snapshot = load_paths(&[dir.path().join("d")]);
        assert_eq!(namespace_names(&snapshot), ["a"]);
        assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    }

    #[test]
    fn two_symlinks_back_to_their_directory_finish_and_read_each_file_once() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "d/a.yaml", NS);
        write(
            dir.path(),
            "d/sub/b.yaml",
            &NS.replace("name: a", "name: b"),
        );
        std::os::unix::fs::symlink(".", dir.path().join("d/a")).unwrap();
        std::os::unix::fs::symlink(".", dir.path().join("d/b")).unwrap();
        std::os::unix::fs::symlink("..", dir.path().join("d/sub/up")).unwrap();
        let snapshot = load_paths(&[dir.path().join("d")]);
        assert_eq!(namespace_names(&snapshot), ["a", "b"]);
        assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    }

    #[test]
    fn a_named_pipe_is_read_as_a_file() {
        // As `hangar audit <(kustomize build .)` passes one.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::write(fifo, NS).unwrap())
        };
        let snapshot = load_paths(std::slice::from_ref(&fifo));
        // Joined only once read: a writer nobody reads would wait forever.
        assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
        assert_eq!(namespace_names(&snapshot), ["a"]);
        writer.join().unwrap();
    }

    #[test]
    fn a_byte_that_is_not_utf8_loses_only_its_document_and_is_reported_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = NS.as_bytes().to_vec();
        bytes.extend_from_slice(
            b"---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\xff\n---\n",
        );
        bytes.extend_from_slice(NS.replace("name: a", "name: c").as_bytes());
        let path = dir.path().join("latin1.yaml");
        std::fs::write(&path, bytes).unwrap();
        let snapshot = load_paths(&[path]);
        assert_eq!(namespace_names(&snapshot), ["a", "c"]);
        assert_eq!(snapshot.errors.len(), 1, "{:?}", snapshot.errors);
        assert_eq!(snapshot.errors[0].origin.line, Some(9));
        assert!(
            snapshot.errors[0].message.contains("UTF-8"),
            "{:?}",
            snapshot.errors
        );
    }

    #[test]
    fn a_missing_path_is_an_error_and_the_rest_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", NS);
        let snapshot = load_paths(&[dir.path().join("a.yaml"), dir.path().join("missing.yaml")]);
        assert_eq!(snapshot.namespaces.len(), 1);
        assert_eq!(snapshot.errors.len(), 1);
        assert!(
            snapshot.errors[0].message.starts_with("cannot read"),
            "{:?}",
            snapshot.errors
        );
        assert!(
            snapshot.errors[0]
                .origin
                .file
                .as_deref()
                .unwrap()
                .ends_with("missing.yaml")
        );
    }
}
