//! The command line: what each command reads, writes and how it exits.

use std::path::{Component, Path, PathBuf};

use clap::builder::{EnumValueParser, PossibleValue, TypedValueParser};
use clap::error::ContextKind;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Operations for AI inference on Kubernetes: find every inference endpoint and every security
/// and compliance gap, mapped to PCI DSS v4.0.1, SOC 2 and the OWASP LLM Top 10.
#[derive(Debug, Parser)]
#[command(
    name = "hangar",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Audit manifests or a live cluster: inventory, findings, control roll-up.
    ///
    /// Reads files and directories (YAML, JSON, `kubectl get -o yaml|json` dumps, `-` for stdin)
    /// or, with no paths, the cluster of the current kubeconfig context (read-only).
    ///
    /// Exit codes: 0 nothing at or above --fail-on; 1 findings at or above --fail-on;
    /// 2 the scan was incomplete (unreadable input, files or stdin with no Kubernetes object,
    /// kinds RBAC forbids) or failed.
    #[command(
        after_help = "Examples:\n  hangar audit examples/cluster\n  hangar audit examples/cluster --policy examples/hangar.yaml --waivers examples/waivers.yaml\n  hangar audit k8s/ --format sarif > hangar.sarif\n  hangar audit k8s/ --output html=report.html --output json=report.json\n  kubectl get deploy,svc,ing,netpol -A -o yaml | hangar audit -\n  hangar audit --context prod -n ml-serving --save-snapshot prod.yaml"
    )]
    Audit(AuditArgs),
    /// List the inference endpoints and why each was recognised, without running checks.
    ///
    /// Reads what `audit` reads: files and directories, `-` for stdin, or with no paths the
    /// cluster of the current kubeconfig context. Exit code 2 when the input could not be read
    /// or holds no Kubernetes object.
    #[command(
        after_help = "Examples:\n  hangar inventory examples/cluster\n  hangar inventory k8s/ --format csv > endpoints.csv\n  kubectl get deploy,sts,svc -A -o yaml | hangar inventory -\n  hangar inventory --context prod -n ml-serving --format json"
    )]
    Inventory(InventoryArgs),
    /// Print the check catalogue: each check's id, severity, title and the controls it maps to.
    #[command(
        after_help = "Examples:\n  hangar checks\n  hangar checks --format markdown > docs/checks.md\n  hangar checks --format json | jq -r '.[] | select(.severity == \"critical\") | .id'"
    )]
    Checks(ChecksArgs),
    /// Why an endpoint is sick: the model, its configuration or the infrastructure.
    Triage(crate::triage::TriageArgs),
    /// Write a Markdown runbook per endpoint: owners, health, rollback, validation, OOM handling.
    Runbook(crate::runbook::RunbookArgs),
    /// Send golden requests to an OpenAI-compatible server and compare the answers.
    Validate(crate::validate::ValidateArgs),
    /// GPU showback: accelerator spend by team, namespace, model or endpoint, and idle GPUs.
    Cost(crate::cost::CostArgs),
    /// The inference gateway: authenticate, limit, route, guard and log OpenAI-compatible traffic.
    Gateway(crate::gateway::GatewayArgs),
    /// The organisation policy file (`hangar.yaml`).
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the JSON Schema of the policy file (for editors and CI validation).
    Schema,
    /// Validate a policy file and print the effective policy.
    Check {
        /// The policy file to validate.
        file: PathBuf,
    },
}

/// Where the objects come from.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Files or directories to read (recursively); `-` reads standard input. With none, the live
    /// cluster is read.
    pub paths: Vec<PathBuf>,
    /// The kubeconfig file for a live scan (default: $KUBECONFIG, then ~/.kube/config, then
    /// in-cluster).
    #[arg(long, value_name = "FILE", conflicts_with = "paths")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context for a live scan (default: the current context).
    #[arg(long, value_name = "NAME", conflicts_with = "paths")]
    pub context: Option<String>,
    /// Only this namespace, as a live scan of it reads: from files, the objects of other
    /// namespaces are left out and those that name none are put in it (as `kubectl apply -n`
    /// does). Cluster-scoped kinds are read either way. Default: all.
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Write what a scan read as one YAML file that `hangar audit FILE` reads back offline.
    #[arg(long, value_name = "FILE")]
    pub save_snapshot: Option<PathBuf>,
    /// The organisation policy (`hangar.yaml`): GPU pool taints, approved registries, retention,
    /// severity overrides, disabled checks. See `hangar policy schema`.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

/// Where the objects come from, for commands that name an endpoint first (`triage`, `runbook`):
/// files are given with `--from`, so the endpoint and the paths never get confused.
#[derive(Debug, Args)]
pub struct FromArgs {
    /// Read files or directories instead of the live cluster: manifests, `kubectl get -o yaml`
    /// output, a `kubectl cluster-info dump` directory or single stream (`-`: standard input), a
    /// saved snapshot or triage bundle. Repeatable.
    #[arg(long = "from", value_name = "PATH")]
    pub from: Vec<PathBuf>,
    /// The kubeconfig file for a live read (default: $KUBECONFIG, then ~/.kube/config, then
    /// in-cluster).
    #[arg(long, value_name = "FILE", conflicts_with = "from")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context for a live read (default: the current context).
    #[arg(long, value_name = "NAME", conflicts_with = "from")]
    pub context: Option<String>,
    /// Only this namespace (live: only its objects are read; files: only its endpoints, the
    /// files read whole, for the evidence of other namespaces: the Node Events in `default`,
    /// the GPU operator's pods).
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// The organisation policy (`hangar.yaml`): team labels, GPU pools, prices. See `hangar
    /// policy schema`.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

impl FromArgs {
    /// The same source in the shape `source::load` reads.
    pub fn to_source(&self) -> SourceArgs {
        SourceArgs {
            paths: self.from.clone(),
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            // Files are read whole; the endpoints are picked by namespace afterwards.
            namespace: self.namespace.clone().filter(|_| self.from.is_empty()),
            save_snapshot: None,
            policy: self.policy.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Waivers with scope, reason, approver and expiry (see docs/audit.md#waivers).
    #[arg(long, value_name = "FILE")]
    pub waivers: Option<PathBuf>,
    /// Output format on standard output.
    #[arg(short, long, default_value = "table", value_name = "FORMAT", value_parser = ["table", "json", "sarif", "markdown", "html"])]
    pub format: String,
    /// Also write FORMAT to PATH; repeatable (`--output sarif=hangar.sarif --output html=r.html`).
    #[arg(short, long = "output", value_name = "FORMAT=PATH")]
    pub outputs: Vec<String>,
    /// Exit 1 when an unwaived finding is at or above this severity.
    #[arg(long, default_value = "high", value_parser = FailOnParser)]
    pub fail_on: FailOn,
    /// Never colour the table (colour is used only on a terminal anyway; NO_COLOR is honoured).
    #[arg(long)]
    pub no_color: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Critical,
    High,
    Medium,
    Low,
    Info,
    /// Never fail on findings (exit 2 for incomplete scans still applies).
    Never,
}

/// Reads `--fail-on` as clap reads any value enum, without its "a similar value exists" tip: the
/// value most like a typo (`severe`) is `never`, and copying that tip would turn the gate off.
#[derive(Debug, Clone, Copy)]
struct FailOnParser;

impl TypedValueParser for FailOnParser {
    type Value = FailOn;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<FailOn, clap::Error> {
        EnumValueParser::<FailOn>::new()
            .parse_ref(cmd, arg, value)
            .map_err(|mut err| {
                err.remove(ContextKind::SuggestedValue);
                err
            })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            FailOn::value_variants()
                .iter()
                .filter_map(|v| v.to_possible_value()),
        ))
    }
}

#[derive(Debug, Args)]
pub struct InventoryArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Output format.
    #[arg(short, long, default_value = "table", value_parser = ["table", "json", "csv"])]
    pub format: String,
}

#[derive(Debug, Args)]
pub struct ChecksArgs {
    /// Output format: a table, or the Markdown of docs/checks.md.
    #[arg(short, long, default_value = "table", value_parser = ["table", "markdown", "json"])]
    pub format: String,
}

/// Reads `--output FORMAT=PATH` (`sarif=hangar.sarif`), for every command that writes extra files.
pub fn parse_output<F>(spec: &str) -> anyhow::Result<(F, PathBuf)>
where
    F: std::str::FromStr,
    F::Err: std::fmt::Display,
{
    let Some((format, path)) = spec.split_once('=') else {
        anyhow::bail!("--output takes FORMAT=PATH (e.g. json=report.json), not `{spec}`");
    };
    if path.trim().is_empty() {
        anyhow::bail!("--output `{spec}` names no file: give FORMAT=PATH (e.g. json=report.json)");
    }
    let format = format
        .parse()
        .map_err(|e| anyhow::anyhow!("--output {spec}: {e}"))?;
    Ok((format, PathBuf::from(path)))
}

/// Reads every `--output FORMAT=PATH`, refusing two that name one file: the last written would
/// silently replace the others.
pub fn parse_outputs<F>(specs: &[String]) -> anyhow::Result<Vec<(F, PathBuf)>>
where
    F: std::str::FromStr,
    F::Err: std::fmt::Display,
{
    let mut outputs = Vec::with_capacity(specs.len());
    let mut files: Vec<(PathBuf, &str)> = Vec::with_capacity(specs.len());
    for spec in specs {
        let (format, path) = parse_output::<F>(spec)?;
        let file = file_named(&path);
        if let Some((_, earlier)) = files.iter().find(|(other, _)| *other == file) {
            anyhow::bail!(
                "--output {earlier} and --output {spec} write the same file: give each output a path of its own"
            );
        }
        files.push((file, spec.as_str()));
        outputs.push((format, path));
    }
    Ok(outputs)
}

/// The file `path` names, however it is written: `r.json`, `./r.json` and `out//r.json` alike,
/// and through the real directory when it exists (`../here/r.json` from `here`).
fn file_named(path: &Path) -> PathBuf {
    let plain: PathBuf = (path.components())
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    let real = match (plain.parent(), plain.file_name()) {
        (Some(directory), Some(name)) => {
            let directory = if directory.as_os_str().is_empty() {
                Path::new(".")
            } else {
                directory
            };
            std::fs::canonicalize(directory).ok().map(|d| d.join(name))
        }
        _ => None,
    };
    real.unwrap_or(plain)
}
