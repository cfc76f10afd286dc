//! Loading a Snapshot from files: YAML and JSON manifests, `kubectl get -o yaml|json` dumps,
//! whole directories (recursively) and `-` for standard input.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hangar_core::parse::{ParsedFile, parse_text};
use hangar_core::{LoadError, Origin, Snapshot};
use rayon::prelude::*;

/// Extensions read when walking a directory. Files named explicitly are read whatever their name.
const MANIFEST_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// Reads every path into one snapshot. Unreadable files, Helm charts and bad documents become
/// `LoadError`s in the snapshot; everything else is still read.
pub fn load_paths(paths: &[PathBuf]) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let mut files = Vec::new();
    for path in paths {
        collect(path, true, &mut files, &mut snapshot.errors);
    }
    files.sort();
    files.dedup();
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
            part.errors = parsed.errors;
            part
        })
        .collect();
    snapshot.absorb_all(parts);
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

/// Gathers the files under `path`. A directory holding a `Chart.yaml` is a Helm chart: one error
/// for the chart, and its templates are not read.
fn collect(path: &Path, named: bool, files: &mut Vec<PathBuf>, errors: &mut Vec<LoadError>) {
    if path == Path::new("-") {
        files.push(path.to_path_buf());
        return;
    }
    let metadata = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return errors.push(error(path, format!("cannot read: {e}"))),
    };
    if metadata.is_file() {
        let wanted = named
            || path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| MANIFEST_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if wanted {
            files.push(path.to_path_buf());
        }
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
            collect(&child, false, files, errors);
        }
    }
}

fn read_and_parse(path: &Path) -> ParsedFile {
    let (name, text) = if path == Path::new("-") {
        let mut text = String::new();
        match std::io::stdin().read_to_string(&mut text) {
            Ok(_) => ("<stdin>".to_owned(), text),
            Err(e) => return failed(path, format!("cannot read standard input: {e}")),
        }
    } else {
        match std::fs::read(path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => (path.display().to_string(), text),
                Err(_) => return failed(path, "not UTF-8 text: not a manifest".into()),
            },
            Err(e) => return failed(path, format!("cannot read: {e}")),
        }
    };
    parse_text(&Arc::from(name), &text)
}

fn failed(path: &Path, message: String) -> ParsedFile {
    ParsedFile {
        objects: Vec::new(),
        errors: vec![error(path, message)],
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
        let mut names: Vec<_> = snapshot
            .namespaces
            .iter()
            .map(|n| n.object.metadata.name.clone().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(snapshot.errors.len(), 1, "{:?}", snapshot.errors);
        assert!(snapshot.errors[0].message.contains("Helm chart"));
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
