//! Loading a Snapshot from files: YAML and JSON manifests, `kubectl get -o yaml|json` dumps,
//! whole directories (recursively; Kustomize directories as their plain resources) and `-` for
//! standard input.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hangar_core::parse::{ParsedFile, parse_bytes};
use hangar_core::{LoadError, Origin, Snapshot};
use rayon::prelude::*;

use crate::kustomize::Kustomizations;

/// Extensions read when walking a directory. Files named explicitly are read whatever their name.
const MANIFEST_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// Reads every path into one snapshot. Unreadable files, Helm charts and bad documents become
/// `LoadError`s in the snapshot; everything else is still read. Kustomize directories are read
/// as their plain resources, with notes saying so.
pub fn load_paths(paths: &[PathBuf]) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let mut walk = Walk::default();
    for path in paths {
        collect(path, true, &mut walk, &mut snapshot.errors);
    }
    let Walk {
        files,
        named,
        mut kustomizations,
        ..
    } = walk;
    // In the order given, each directory's files sorted by the walk: the last copy of an
    // object wins, as applying the paths in that order would leave it.
    let mut seen = HashSet::new();
    let files: Vec<PathBuf> = (kustomizations.without_patches(files, &named).into_iter())
        .filter(|file| seen.insert(file.clone()))
        .collect();
    snapshot.notes = kustomizations.into_notes();
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
            part.lists = parsed.lists;
            part
        })
        .collect();
    snapshot.absorb_all(parts);
    // Copies that differ are a conflict in Kustomize directories too: whether two of them are
    // built together (a kustomization listing both) or apart (dev and prod) is for
    // `kubectl kustomize` to say, which the note points to.
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
    /// The files given by name (resolved), read whatever a kustomization says of them.
    named: HashSet<PathBuf>,
    kustomizations: Kustomizations,
}

/// The path with every link resolved, or as it is when that fails.
pub(crate) fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

impl Walk {
    /// Takes `path` to be read, unless it is a regular file already taken by another path.
    fn take(&mut self, path: &Path, regular: bool) {
        if regular && !self.visited.insert(canonical(path)) {
            tracing::debug!(path = %path.display(), "file already taken; skipped");
            return;
        }
        self.files.push(path.to_path_buf());
    }
}

fn has_manifest_extension(path: &Path) -> bool {
    (path.extension().and_then(|e| e.to_str()))
        .is_some_and(|e| MANIFEST_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Gathers the files under `path`. A directory holding a `Chart.yaml` is a Helm chart: one error
/// for the chart, and its templates are not read. A directory holding a kustomization is
/// recorded, so that its patches are not read as objects.
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
        if named {
            // Resolved: the walk of a directory given too may spell it otherwise (`./ko/…`).
            walk.named.insert(canonical(path));
        }
        if wanted {
            walk.take(path, metadata.is_file());
        }
        return;
    }
    // A directory reached again through a symbolic link (`ln -s . again`) holds nothing new.
    if !walk.visited.insert(canonical(path)) {
        tracing::debug!(path = %path.display(), "directory already read; skipped");
        return;
    }
    if path.join("Chart.yaml").is_file() {
        return errors.push(error(
            path,
            "this is a Helm chart; render it with `helm template` and audit the output".into(),
        ));
    }
    walk.kustomizations.enter(path);
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
    let (name, read) = if path == Path::new("-") {
        let read = read_unless_binary(std::io::stdin().lock())
            .map_err(|e| format!("cannot read standard input: {e}"));
        ("<stdin>".to_owned(), read)
    } else {
        let read = std::fs::File::open(path)
            .and_then(read_unless_binary)
            .map_err(|e| format!("cannot read: {e}"));
        (path.display().to_string(), read)
    };
    match read {
        Ok(Some(bytes)) => parse_bytes(&Arc::from(name), &bytes),
        Ok(None) => failed(path, BINARY_MESSAGE.into()),
        Err(message) => failed(path, message),
    }
}

/// How much of a file is looked at to tell binary from text: as git does, a NUL byte in the
/// first 8 KiB. No text format Hangar reads holds one.
const BINARY_SNIFF_BYTES: u64 = 8 * 1024;

/// The error of a binary file, here and where triage reads a stream.
pub(crate) const BINARY_MESSAGE: &str = "binary file, not read (a NUL byte near its start: an executable, an archive, or text in UTF-16?)";

/// The bytes of `input`, or `None` when it is binary: then only its first 8 KiB were read, so
/// an executable given by mistake costs one error, not one per line and its size in memory.
fn read_unless_binary(mut input: impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    input
        .by_ref()
        .take(BINARY_SNIFF_BYTES)
        .read_to_end(&mut bytes)?;
    if bytes.contains(&0) {
        return Ok(None);
    }
    input.read_to_end(&mut bytes)?;
    Ok(Some(bytes))
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

    const VLLM: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: chat, namespace: ml}
spec:
  replicas: 1
  template:
    metadata: {labels: {app: chat}}
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.8.5
        args: ["--model", "meta-llama/Llama-3.1-8B-Instruct"]
        resources: {limits: {nvidia.com/gpu: "1"}}
"#;

    /// A strategic-merge patch: the object's identity and one field, no more.
    const REPLICAS_PATCH: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: chat\n  namespace: ml\nspec:\n  replicas: 4\n";

    fn replicas(snapshot: &Snapshot) -> Vec<Option<i32>> {
        (snapshot.deployments.iter())
            .map(|d| d.object.spec.as_ref().and_then(|s| s.replicas))
            .collect()
    }

    #[test]
    fn a_kustomize_overlay_patch_is_skipped_with_a_note_and_the_base_object_is_audited() {
        let dir = tempfile::tempdir().unwrap();
        let ko = dir.path().join("ko");
        write(&ko, "base/deploy.yaml", VLLM);
        write(
            &ko,
            "base/kustomization.yaml",
            "resources:\n- deploy.yaml\n",
        );
        write(
            &ko,
            "overlays/prod/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../../base\n- quota.yaml\npatches:\n- path: replicas.yaml\n",
        );
        write(&ko, "overlays/prod/replicas.yaml", REPLICAS_PATCH);
        // An object the overlay adds is a resource like any other.
        write(
            &ko,
            "overlays/prod/quota.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: limits, namespace: ml}\n",
        );
        let snapshot = load_paths(std::slice::from_ref(&ko));
        assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
        assert_eq!(replicas(&snapshot), [Some(1)]);
        assert_eq!(snapshot.config_maps.len(), 1);
        // The kustomizations are configuration, neither objects nor other YAML to note.
        assert_eq!(snapshot.object_count(), 2);
        assert!(
            snapshot.not_objects.is_empty(),
            "{:?}",
            snapshot.not_objects
        );
        let policy = hangar_core::Policy::default();
        assert_eq!(hangar_core::discover(&snapshot, &policy).endpoints.len(), 1);

        let base = ko.join("base").display().to_string();
        let prod = ko.join("overlays/prod");
        let notes = &snapshot.notes;
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].starts_with("Kustomize directories are read as their plain resources")
                && notes[0].contains(&format!(": {base}, {}; ", prod.display()))
                && notes[0].ends_with(
                    "`kubectl kustomize DIR | hangar audit -` audits what would actually be applied"
                ),
            "{notes:?}"
        );
        assert_eq!(
            notes[1],
            format!(
                "skipped {}: {} lists it as a patch, which changes an object and defines none",
                prod.join("replicas.yaml").display(),
                prod.join("kustomization.yaml").display()
            )
        );

        // Named, a patch is read as what it is asked to be, however its path is spelt.
        let named = load_paths(&[prod.join("replicas.yaml")]);
        assert_eq!(replicas(&named), [Some(4)]);
        assert!(named.notes.is_empty(), "{:?}", named.notes);
        let spelt = prod.join("../prod/replicas.yaml");
        let named = load_paths(&[prod.clone(), spelt]);
        assert_eq!(replicas(&named), [Some(4)]);
        assert!(
            !named
                .notes
                .iter()
                .any(|n| n.contains("lists it as a patch")),
            "{:?}",
            named.notes
        );
    }

    #[test]
    fn copies_that_differ_are_a_conflict_in_kustomize_directories_too() {
        // Whether two Kustomize directories are built apart (dev, prod) or together (a root
        // kustomization listing both) only `kubectl kustomize` can tell: a conflict either way.
        let dir = tempfile::tempdir().unwrap();
        let four = VLLM.replace("replicas: 1", "replicas: 4");
        write(
            dir.path(),
            "root/kustomization.yaml",
            "resources: [dev, prod]\n",
        );
        write(dir.path(), "root/dev/deploy.yaml", VLLM);
        write(dir.path(), "root/prod/deploy.yaml", &four);
        for build in ["dev", "prod"] {
            let path = format!("root/{build}/kustomization.yaml");
            write(dir.path(), &path, "resources: [deploy.yaml]\n");
        }
        let snapshot = load_paths(&[dir.path().join("root")]);
        assert_eq!(replicas(&snapshot), [Some(4)]);
        assert_eq!(snapshot.errors.len(), 1, "{:?}", snapshot.errors);
        assert!(snapshot.errors[0].message.starts_with("defined again at"));
    }

    #[test]
    fn a_patch_outside_its_kustomizations_directory_hides_nothing() {
        // Kustomize refuses such a path; it must not take another app's manifest out of the audit.
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "repo/apps/chat/deploy.yaml", VLLM);
        write(
            dir.path(),
            "repo/x/kustomization.yaml",
            "patches:\n- path: ../apps/chat/deploy.yaml\n",
        );
        let snapshot = load_paths(&[dir.path().join("repo")]);
        assert_eq!(replicas(&snapshot), [Some(1)]);
        assert!(
            snapshot
                .notes
                .iter()
                .any(|n| n.contains("outside its directory")),
            "{:?}",
            snapshot.notes
        );

        // Nor from inside: a file listed as a resource too, or in an app whose own kustomization
        // is nearer than the one above that calls it a patch.
        let both = "resources: [deploy.yaml]\npatches:\n- path: deploy.yaml\n";
        write(dir.path(), "self/kustomization.yaml", both);
        write(dir.path(), "self/deploy.yaml", VLLM);
        let above = "patches:\n- path: apps/chat/deploy.yaml\n";
        write(dir.path(), "above/kustomization.yaml", above);
        write(
            dir.path(),
            "above/apps/chat/kustomization.yaml",
            "namePrefix: x-\n",
        );
        write(dir.path(), "above/apps/chat/deploy.yaml", VLLM);
        for root in ["self", "above"] {
            let snapshot = load_paths(&[dir.path().join(root)]);
            assert_eq!(
                replicas(&snapshot),
                [Some(1)],
                "{root}: {:?}",
                snapshot.notes
            );
        }

        // A patch that is not there is said to be missing, not outside.
        write(
            dir.path(),
            "typo/kustomization.yaml",
            "patches:\n- path: typo.yaml\n",
        );
        let snapshot = load_paths(&[dir.path().join("typo")]);
        assert!(
            snapshot
                .notes
                .iter()
                .any(|n| n.contains("typo.yaml does not exist")),
            "{:?}",
            snapshot.notes
        );
    }

    #[test]
    fn a_kustomization_that_cannot_be_read_is_a_note_and_its_directory_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "bad/kustomization.yaml",
            "resources: [ns.yaml\npatches:\n- path: x.yaml\n",
        );
        write(dir.path(), "bad/ns.yaml", NS);
        write(
            dir.path(),
            "shape/kustomization.yml",
            "patches: replicas.yaml\n",
        );
        write(
            dir.path(),
            "shape/ns.yaml",
            &NS.replace("name: a", "name: b"),
        );
        write(
            dir.path(),
            "bytes/ns.yaml",
            &NS.replace("name: a", "name: c"),
        );
        std::fs::write(
            dir.path().join("bytes/Kustomization"),
            b"resources: [\xff]\n",
        )
        .unwrap();
        let snapshot = load_paths(&[dir.path().to_path_buf()]);
        assert_eq!(namespace_names(&snapshot), ["a", "b", "c"]);
        // A kustomization is no manifest: broken, it is still no broken object.
        assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
        assert!(
            snapshot.not_objects.is_empty(),
            "{:?}",
            snapshot.not_objects
        );
        let notes = &snapshot.notes;
        assert_eq!(notes.len(), 4, "{notes:?}");
        assert!(notes[0].starts_with("Kustomize directories"), "{notes:?}");
        for (kustomization, why) in [
            ("bad/kustomization.yaml", "malformed YAML"),
            ("shape/kustomization.yml", "`patches` is not a list"),
            ("bytes/Kustomization", "cannot read"),
        ] {
            let file = dir.path().join(kustomization).display().to_string();
            assert!(
                notes.iter().any(|n| n
                    .starts_with(&format!("{file}: this kustomization is not read ({why}"))
                    && n.ends_with("so any patches it lists are read as objects")),
                "{file}: {notes:?}"
            );
        }
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
    fn a_binary_file_is_one_error_and_the_rest_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", NS);
        // An executable named like a manifest: a NUL byte at once, then many "documents" of bytes
        // that are not UTF-8, each of which would otherwise be an error of its own.
        let mut binary = b"\x7fELF\x02\x01\x01\x00".to_vec();
        for _ in 0..100 {
            binary.extend_from_slice(b"\n---\n\xff\xfe junk");
        }
        std::fs::write(dir.path().join("tool.yaml"), binary).unwrap();
        let snapshot = load_paths(&[dir.path().to_path_buf()]);
        assert_eq!(namespace_names(&snapshot), ["a"]);
        assert_eq!(snapshot.errors.len(), 1, "{:?}", snapshot.errors);
        assert_eq!(snapshot.errors[0].message, BINARY_MESSAGE);
        assert!(
            (snapshot.errors[0].origin.file.as_deref())
                .unwrap()
                .ends_with("tool.yaml")
        );
    }

    #[test]
    fn only_a_nul_byte_near_the_start_makes_input_binary() {
        let early = b"apiVersion: v1\n\x00".to_vec();
        assert_eq!(read_unless_binary(&early[..]).unwrap(), None);
        // Past the first 8 KiB, a NUL byte is the parser's to report, at its line.
        let mut late = vec![b'a'; 8 * 1024];
        late.push(0);
        let read = read_unless_binary(&late[..]).unwrap();
        assert_eq!(read.map(|bytes| bytes.len()), Some(8 * 1024 + 1));
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
