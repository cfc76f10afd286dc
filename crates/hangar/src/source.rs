//! Reading what the command audits: files or a live cluster, and the policy.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result};
use hangar_core::{Policy, Snapshot};
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
        (hangar_kube::load_paths(&source.paths), described)
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

fn load_cluster(source: &SourceArgs) -> Result<(Snapshot, String)> {
    let options = LiveOptions {
        kubeconfig: source.kubeconfig.clone(),
        context: source.context.clone(),
        namespace: source.namespace.clone(),
    };
    let described = format!(
        "cluster{}{}",
        source
            .context
            .as_deref()
            .map(|c| format!(" context {c}"))
            .unwrap_or_default(),
        source
            .namespace
            .as_deref()
            .map(|n| format!(" namespace {n}"))
            .unwrap_or_else(|| " (all namespaces)".into())
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let show = std::io::stderr().is_terminal();
    let mut progress = |p: Progress| {
        if show {
            let mut err = std::io::stderr();
            let _ = write!(err, "\r\x1b[2Kreading {p}");
            let _ = err.flush();
        }
    };
    let snapshot = runtime.block_on(load_live(&options, &mut progress));
    if show {
        eprint!("\r\x1b[2K");
    }
    let snapshot = snapshot.with_context(|| {
        if source.kubeconfig.is_none() && source.context.is_none() {
            "no paths were given, so Hangar tried the live cluster (pass files or directories to audit manifests)"
        } else {
            "cannot read the live cluster"
        }
    })?;
    Ok((snapshot, described))
}

/// The policy from `--policy`, or the defaults.
pub fn policy(path: Option<&Path>) -> Result<Policy> {
    let Some(path) = path else {
        return Ok(Policy::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the policy file {}", path.display()))?;
    let policy = Policy::from_yaml(&text)
        .with_context(|| format!("invalid policy file {}", path.display()))?;
    let unknown: Vec<&str> = policy
        .disabled_checks
        .iter()
        .chain(policy.severity_overrides.keys())
        .filter(|id| hangar_audit::checks::find(id).is_none())
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        anyhow::bail!(
            "invalid policy file {}: unknown check id(s): {} (see `hangar checks`)",
            path.display(),
            unknown.join(", ")
        );
    }
    Ok(policy)
}
