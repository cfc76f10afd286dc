//! `hangar runbook`: a Markdown runbook per inference endpoint, written from the inventory.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use hangar_audit::{AuditOptions, Date, Report, audit};
use hangar_core::{Endpoint, Severity};
use hangar_triage::runbook::{self, IndexEntry, Risk, Risks};

use crate::cli::FromArgs;
use crate::source;

#[derive(Debug, Args)]
// The subcommand's one-line summary lives in cli.rs; this is the rest of its help.
#[command(after_help = "\
Each runbook is written for its endpoint alone: what it serves and where it is declared, who owns
it and whom to page for which symptom, the exact commands to check its health, to roll it back
for its kind (Deployment revision, KServe canary, NIMService tag, LeaderWorkerSet, RayService,
ModelRelease) and to validate it with `hangar validate`, how to tell host from GPU out-of-memory
with its own flags, their current values and the next value to try, and its open high and
critical audit findings.

Owners come from labels or annotations on the object, its pod template or its namespace:
hangar.dev/model-owner, hangar.dev/owner, hangar.dev/platform-owner, hangar.dev/oncall,
hangar.dev/escalation, hangar.dev/slack, then the policy's team labels (see docs/runbook.md).

Examples:
  hangar runbook vllm-llama-3-1-8b --from examples/cluster           # one endpoint, to stdout
  hangar runbook platform/vllm-llama-3-1-8b --from examples/cluster  # names repeat: add the ns
  hangar runbook Deployment/platform/vllm-llama-3-1-8b --from k8s/   # the full endpoint id
  hangar runbook --all -o runbooks/ --from examples/cluster          # all, plus runbooks/index.md
  hangar runbook --all -o runbooks/ --context prod -n ml             # from the live cluster

Exit codes: 0 written; 2 the endpoint is unknown or ambiguous, --all found no endpoint, the input
could not all be read, or the output could not be written.")]
pub struct RunbookArgs {
    /// The endpoint: its id (`Deployment/platform/vllm-llama-3-1-8b`), `namespace/name`, or a name
    /// no other endpoint has.
    #[arg(value_name = "ENDPOINT", required_unless_present = "all")]
    pub endpoint: Option<String>,
    /// Write a runbook for every endpoint (in --namespace, if given).
    #[arg(long, conflicts_with = "endpoint")]
    pub all: bool,
    /// Write each runbook to DIR as `<namespace>--<name>.md` (and, with --all, an `index.md`
    /// linking them) instead of printing it.
    #[arg(short = 'o', long = "output-dir", value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    #[command(flatten)]
    pub source: FromArgs,
}

pub fn run(args: RunbookArgs) -> Result<ExitCode> {
    source::check_not_a_path(args.endpoint.as_deref(), &args.source.from)?;
    let policy = source::policy(args.source.policy.as_deref())?;
    let (snapshot, described) = source::load(&args.source.to_source())?;
    let report = audit(
        &snapshot,
        &AuditOptions {
            policy: &policy,
            waivers: &[],
            today: Date::today(),
            source: described.clone(),
        },
    );
    // Said before an endpoint is looked for: input not read may be why none is found.
    let complete = source::report_gaps(&snapshot.errors, &snapshot.not_covered);
    let namespace = args.source.namespace.as_deref();
    let in_scope: Vec<&Endpoint> = report
        .endpoints
        .iter()
        .filter(|e| namespace.is_none_or(|ns| e.namespace() == ns))
        .collect();
    let chosen: Vec<&Endpoint> = match &args.endpoint {
        Some(wanted) => vec![source::find_endpoint(&in_scope, wanted)?],
        // `--all` writing no runbook is a mistyped namespace or input, as for `triage`.
        None if in_scope.is_empty() => {
            return Err(source::no_endpoint_found(&described, namespace));
        }
        None => in_scope,
    };
    let risks = risks_by_endpoint(&report, &audit_command(&args.source));
    let no_risks = Risks {
        audit_command: audit_command(&args.source),
        ..Risks::default()
    };
    let pages: Vec<(&Endpoint, String)> = chosen
        .iter()
        .map(|e| {
            let risks = risks.get(e.id.as_str()).unwrap_or(&no_risks);
            (*e, runbook::render(e, &snapshot, Some(risks)))
        })
        .collect();

    match &args.output_dir {
        Some(dir) => write_pages(dir, &pages, &risks, &no_risks, args.all, &described)?,
        None => {
            let texts: Vec<&str> = pages.iter().map(|(_, text)| text.as_str()).collect();
            out!("{}", texts.join("\n---\n\n"))?;
        }
    }
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// The command that reads the same input again, for the runbook to cite.
fn audit_command(source: &FromArgs) -> String {
    let quote = runbook::sh_quote;
    let mut command = "hangar audit".to_owned();
    for path in &source.from {
        command.push_str(&format!(" {}", quote(&path.display().to_string())));
    }
    if let Some(context) = &source.context {
        command.push_str(&format!(" --context {}", quote(context)));
    }
    if let Some(namespace) = &source.namespace {
        command.push_str(&format!(" -n {}", quote(namespace)));
    }
    if let Some(policy) = &source.policy {
        command.push_str(&format!(
            " --policy {}",
            quote(&policy.display().to_string())
        ));
    }
    command
}

/// Each endpoint's unwaived findings: high and critical listed, the rest counted.
fn risks_by_endpoint<'r>(report: &'r Report, command: &str) -> HashMap<&'r str, Risks> {
    let mut out: HashMap<&str, Risks> = HashMap::new();
    for f in report.findings.iter().filter(|f| !f.is_waived()) {
        let Some(id) = f.finding.endpoint.as_deref() else {
            continue;
        };
        let risks = out.entry(id).or_insert_with(|| Risks {
            audit_command: command.to_owned(),
            ..Risks::default()
        });
        if f.severity >= Severity::High {
            risks.open.push(Risk {
                check: f.finding.check.to_owned(),
                severity: f.severity,
                title: f.title.to_owned(),
                message: f.finding.message.clone(),
            });
        } else {
            risks.lower += 1;
        }
    }
    out
}

/// `file`, or with the endpoint's kind appended, then a number, until no other runbook (or the
/// index) has the name.
fn unique_file(file: String, endpoint: &Endpoint, used: &mut HashSet<String>) -> String {
    let stem = file.trim_end_matches(".md").to_owned();
    let kind: String = endpoint
        .object
        .kind
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    let mut candidate = file;
    let mut n = 1;
    while !used.insert(candidate.to_ascii_lowercase()) {
        n += 1;
        candidate = if n == 2 {
            format!("{stem}--{kind}.md")
        } else {
            format!("{stem}--{kind}-{n}.md")
        };
    }
    candidate
}

/// One normal path component: no separator, no `.` or `..`, nothing absolute.
fn is_plain_file_name(file: &str) -> bool {
    let mut components = Path::new(file).components();
    matches!(
        (components.next(), components.next()),
        (Some(std::path::Component::Normal(_)), None)
    ) && !file.contains(['/', '\\'])
}

fn write_pages(
    dir: &Path,
    pages: &[(&Endpoint, String)],
    risks: &HashMap<&str, Risks>,
    no_risks: &Risks,
    index: bool,
    described: &str,
) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    // Lower case: on a case-insensitive file system `A.md` would overwrite `a.md`.
    let mut used: HashSet<String> = HashSet::new();
    if index {
        used.insert("index.md".into());
    }
    let mut entries = Vec::new();
    for (endpoint, text) in pages {
        let file = unique_file(runbook::file_name(endpoint), endpoint, &mut used);
        if !is_plain_file_name(&file) {
            anyhow::bail!(
                "refusing to write {file}: the runbook of {} must be a plain file inside {}",
                endpoint.id,
                dir.display()
            );
        }
        let path = dir.join(&file);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        entries.push(IndexEntry {
            endpoint,
            file,
            risks: Some(risks.get(endpoint.id.as_str()).unwrap_or(no_risks)),
        });
    }
    if index {
        let path = dir.join("index.md");
        std::fs::write(&path, runbook::render_index(&entries, described))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    eprintln!(
        "wrote {} runbook{}{} to {}",
        entries.len(),
        if entries.len() == 1 { "" } else { "s" },
        if index { " and index.md" } else { "" },
        dir.display()
    );
    Ok(())
}
