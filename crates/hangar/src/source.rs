//! Reading what the command audits: files or a live cluster, and the policy.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use hangar_core::printable::printable;
use hangar_core::{Endpoint, LoadError, NotCovered, Origin, Policy, Snapshot};
use hangar_kube::live::{LiveOptions, Progress, load_live, save_snapshot};

use crate::cli::SourceArgs;

/// The snapshot to audit, and a one-line description of where it came from.
pub fn load(source: &SourceArgs) -> Result<(Snapshot, String)> {
    let (snapshot, described) = if source.paths.is_empty() {
        load_cluster(source)?
    } else {
        let described = source
            .paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" ");
        let mut snapshot = hangar_kube::load_paths(&source.paths);
        print_notes(&snapshot);
        // An empty List (kubectl's answer for an empty namespace, a saved scan of one) was read.
        if snapshot.object_count() == 0
            && snapshot.lists == 0
            && snapshot.errors.is_empty()
            && snapshot.not_covered.is_empty()
        {
            snapshot.errors = (source.paths.iter())
                .map(|path| holds_no_object(path.as_path()))
                .collect();
        }
        match &source.namespace {
            Some(namespace) => {
                keep_namespace(&mut snapshot, namespace, &described);
                (snapshot, format!("{described} namespace {namespace}"))
            }
            None => (snapshot, described),
        }
    };
    if let Some(path) = &source.save_snapshot {
        save_snapshot(&snapshot, path)
            .with_context(|| format!("cannot write the snapshot to {}", path.display()))?;
        eprintln!(
            "saved {} objects to {}",
            snapshot.object_count(),
            path.display()
        );
    }
    Ok((snapshot, described))
}

/// `-n` with files: keeps what a live scan of `namespace` would read, and says so when no
/// object names it (a mistyped namespace reads as a clean report otherwise).
fn keep_namespace(snapshot: &mut Snapshot, namespace: &str, described: &str) {
    let mut named = std::collections::BTreeSet::new();
    snapshot.for_each_object(|_, meta| {
        if let Some(named_one) = meta.namespace.as_deref().filter(|n| !n.is_empty()) {
            named.insert(named_one.to_owned());
        }
    });
    if !named.is_empty() && !named.contains(namespace) {
        const SHOWN: usize = 10;
        let mut listed: Vec<String> = named.iter().take(SHOWN).cloned().collect();
        if named.len() > SHOWN {
            listed.push(format!("and {} more", named.len() - SHOWN));
        }
        eprintln!(
            "note: no object in {} is in namespace {}; they name {}",
            printable(described),
            printable(namespace),
            printable(&listed.join(", "))
        );
    }
    snapshot.keep_namespace(namespace);
}

/// Input that holds no Kubernetes object at all is not a clean scan of nothing: it is what an
/// empty pipe from a `kubectl get` that failed, a mistyped directory or a file of other YAML look
/// like. Each path given is then an error, so the scan is incomplete (exit 2). A live scan of an
/// empty namespace is not one of these: it read the cluster, and the cluster had nothing there.
fn holds_no_object(path: &Path) -> LoadError {
    let (name, message) = if path == Path::new("-") {
        (
            "<stdin>".to_owned(),
            "no Kubernetes object on standard input (did the command writing to it fail?), so nothing was checked",
        )
    } else if is_kustomization_dir(path) {
        (
            path.display().to_string(),
            "no Kubernetes object in this directory, which is a Kustomize directory: it is read as its plain resources, not built (see the notes), so nothing was checked; audit what it builds with `kubectl kustomize DIR | hangar audit -`",
        )
    } else if path.is_dir() {
        (
            path.display().to_string(),
            "no Kubernetes object in this directory (no .yaml, .yml or .json document with apiVersion and kind), so nothing was checked",
        )
    } else {
        (
            path.display().to_string(),
            "no Kubernetes object in this file (no document with apiVersion and kind), so nothing was checked",
        )
    };
    LoadError {
        origin: Origin {
            file: Some(Arc::from(name)),
            line: None,
        },
        object: None,
        message: message.to_owned(),
    }
}

/// A directory with a kustomization of its own, such as an overlay of patches.
fn is_kustomization_dir(path: &Path) -> bool {
    (hangar_core::kustomize::FILE_NAMES.iter()).any(|name| path.join(name).is_file())
}

/// Says on stderr how the files were read, where nothing was lost: documents that are no
/// Kubernetes object, Kustomize directories read as their resources, patches skipped.
pub fn print_notes(snapshot: &Snapshot) {
    note_not_objects(&snapshot.not_objects);
    for note in &snapshot.notes {
        eprintln!("note: {}", printable(note));
    }
}

/// Says which YAML documents were skipped as no Kubernetes object, so that a manifest missing
/// both `apiVersion` and `kind` is not skipped unseen.
fn note_not_objects(skipped: &[hangar_core::Origin]) {
    const SHOWN: usize = 5;
    if skipped.is_empty() {
        return;
    }
    let mut places: Vec<String> = skipped
        .iter()
        .take(SHOWN)
        .map(|origin| printable(&origin.to_string()).into_owned())
        .collect();
    if skipped.len() > SHOWN {
        places.push(format!("and {} more", skipped.len() - SHOWN));
    }
    eprintln!(
        "note: skipped {} YAML document(s) with neither apiVersion nor kind (not Kubernetes objects): {}",
        skipped.len(),
        places.join(", ")
    );
}

fn load_cluster(source: &SourceArgs) -> Result<(Snapshot, String)> {
    let options = LiveOptions {
        kubeconfig: source.kubeconfig.clone(),
        context: source.context.clone(),
        namespace: source.namespace.clone(),
        events: false,
    };
    let described = describe_cluster(&options);
    let line = ProgressLine::new();
    let snapshot = runtime()?.block_on(load_live(&options, &mut |p| line.show(&p)));
    line.clear();
    let snapshot = snapshot.with_context(|| {
        if source.kubeconfig.is_none() && source.context.is_none() {
            "no paths were given, so Hangar tried the live cluster (pass files or directories to audit manifests)"
        } else {
            "cannot read the live cluster"
        }
    })?;
    Ok((snapshot, described))
}

/// Says on standard error what the input could not give (files not read, kinds or logs not
/// covered), and whether it was all read: every command exits 2 when it was not.
pub fn report_gaps(errors: &[LoadError], not_covered: &[NotCovered]) -> bool {
    for e in errors {
        let origin = e.origin.to_string();
        eprintln!(
            "not read: {}: {}",
            printable(&origin),
            printable(&e.message)
        );
    }
    for n in not_covered {
        eprintln!(
            "not covered: {}: {}",
            printable(&n.kind),
            printable(&n.reason)
        );
    }
    errors.is_empty() && not_covered.is_empty()
}

/// The runtime live reads run on: two workers, as many as the cores this is built for.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// A one-line progress report on standard error, redrawn in place; silent when standard error is
/// not a terminal, so logs and CI output stay clean.
pub struct ProgressLine {
    visible: bool,
}

impl Default for ProgressLine {
    fn default() -> Self {
        ProgressLine::new()
    }
}

impl ProgressLine {
    pub fn new() -> Self {
        ProgressLine {
            visible: std::io::stderr().is_terminal(),
        }
    }

    pub fn show(&self, progress: &Progress) {
        if self.visible {
            let mut err = std::io::stderr();
            let _ = write!(err, "\r\x1b[2Kreading {progress}");
            let _ = err.flush();
        }
    }

    pub fn clear(&self) {
        if self.visible {
            eprint!("\r\x1b[2K");
        }
    }
}

/// How reports name a live cluster: `cluster context prod namespace ml`.
pub fn describe_cluster(options: &LiveOptions) -> String {
    format!(
        "cluster{}{}",
        options
            .context
            .as_deref()
            .map(|c| format!(" context {c}"))
            .unwrap_or_default(),
        options
            .namespace
            .as_deref()
            .map(|n| format!(" namespace {n}"))
            .unwrap_or_else(|| " (all namespaces)".into())
    )
}

/// The error of a command about inference endpoints that finds none in scope (`triage`,
/// `runbook --all`): an empty result there is a mistyped namespace or input, not a success.
pub fn no_endpoint_found(described: &str, namespace: Option<&str>) -> anyhow::Error {
    anyhow::anyhow!(
        "no inference endpoint found in {described}{} (see `hangar inventory`)",
        namespace
            .map(|ns| format!(" namespace {ns}"))
            .unwrap_or_default()
    )
}

/// A path typed where the endpoint belongs (`hangar triage dump/`) is a mistake to name at once,
/// before a live read fails in a less helpful way.
pub fn check_not_a_path(endpoint: Option<&str>, from: &[std::path::PathBuf]) -> Result<()> {
    if let Some(name) = endpoint
        && from.is_empty()
        && Path::new(name).exists()
    {
        anyhow::bail!(
            "`{name}` is a file or directory, not an endpoint: read it with `--from {name}` (and \
             name the endpoint, or pass --all where the command takes it)"
        );
    }
    Ok(())
}

/// The endpoint a user named: its id (`Deployment/ml/vllm`), then `namespace/name`, then a name
/// only one endpoint has. An unknown or ambiguous name is an error that lists the candidates.
pub fn find_endpoint<'a>(endpoints: &[&'a Endpoint], wanted: &str) -> Result<&'a Endpoint> {
    let by: [&dyn Fn(&Endpoint) -> bool; 3] = [
        &|e| e.id == wanted,
        &|e| format!("{}/{}", e.namespace(), e.object.name) == wanted,
        &|e| e.object.name == wanted,
    ];
    for matches in by {
        let found: Vec<&Endpoint> = endpoints.iter().copied().filter(|e| matches(e)).collect();
        match found.as_slice() {
            [one] => return Ok(one),
            [] => continue,
            many => anyhow::bail!(
                "`{wanted}` names {} endpoints; say which:\n{}",
                many.len(),
                list(many)
            ),
        }
    }
    if endpoints.is_empty() {
        anyhow::bail!("no endpoint is named `{wanted}`: the input holds no inference endpoints");
    }
    let lower = wanted.to_ascii_lowercase();
    let close: Vec<&Endpoint> = endpoints
        .iter()
        .copied()
        .filter(|e| e.id.to_ascii_lowercase().contains(&lower))
        .collect();
    let (intro, candidates) = if close.is_empty() {
        ("the endpoints are", endpoints.to_vec())
    } else {
        ("did you mean", close)
    };
    anyhow::bail!(
        "no endpoint is named `{wanted}`; {intro}:\n{}",
        list(&candidates)
    )
}

fn list(endpoints: &[&Endpoint]) -> String {
    endpoints
        .iter()
        .map(|e| format!("  {}", e.id))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A YAML parser's message about `path`, whose source snippet it calls `<input>`.
pub fn in_file(message: &str, path: &Path) -> String {
    message.replace("--> <input>:", &format!("--> {}:", path.display()))
}

/// The policy from `--policy`, or the defaults.
pub fn policy(path: Option<&Path>) -> Result<Policy> {
    let Some(path) = path else {
        return Ok(Policy::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the policy file {}", path.display()))?;
    let policy = Policy::from_yaml(&text)
        .map_err(|e| anyhow::Error::msg(in_file(&e.to_string(), path)))
        .with_context(|| format!("invalid policy file {}", path.display()))?;
    // Each unknown id at `file:line`, with the key naming it, as the parser's own errors are.
    let unknown: Vec<String> = (policy.named_checks(&text).into_iter())
        .filter(|named| hangar_audit::checks::find(&named.id).is_none())
        .map(|named| {
            let line = named.line.map(|l| format!(":{l}")).unwrap_or_default();
            let id = printable(&named.id);
            format!("  {}{line}: {}: {id}", path.display(), named.key)
        })
        .collect();
    if !unknown.is_empty() {
        anyhow::bail!(
            "invalid policy file {}: unknown check id(s) (see `hangar checks`):\n{}",
            path.display(),
            unknown.join("\n")
        );
    }
    Ok(policy)
}
