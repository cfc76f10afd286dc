//! `hangar audit`, `hangar inventory`, `hangar checks`, `hangar policy`.

use std::io::{BufWriter, IsTerminal};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hangar_audit::catalogue_doc::catalogue_markdown;
use hangar_audit::checks::catalogue;
use hangar_audit::render::{self, Format, TerminalStyle};
use hangar_audit::waivers::{Waiver, WaiverFile};
use hangar_audit::{AuditOptions, Date, audit as run_audit};
use hangar_core::printable::printable;
use hangar_core::{Policy, Severity, discover};

use crate::cli::{AuditArgs, ChecksArgs, FailOn, InventoryArgs, parse_outputs};
use crate::source;

pub fn audit(args: AuditArgs) -> Result<ExitCode> {
    // Validate everything the user typed before the (possibly long) scan.
    let outputs = parse_outputs(&args.outputs)?;
    // A report that could not be written after a long scan is the scan lost.
    for (_, path) in &outputs {
        let directory = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(directory) = directory.filter(|d| !d.is_dir()) {
            bail!(
                "--output {}: the directory {} does not exist",
                path.display(),
                directory.display()
            );
        }
    }
    let format: Format = args.format.parse().map_err(anyhow::Error::msg)?;
    let policy = source::policy(args.source.policy.as_deref())?;
    let waivers = load_waivers(args.waivers.as_deref())?;
    let started = std::time::Instant::now();
    let (snapshot, described) = source::load(&args.source)?;
    tracing::debug!(objects = snapshot.object_count(), elapsed = ?started.elapsed(), "snapshot loaded");

    let options = AuditOptions {
        policy: &policy,
        waivers: &waivers,
        today: Date::today(),
        source: described,
    };
    let report = run_audit(&snapshot, &options);

    for (format, path) in &outputs {
        std::fs::File::create(path)
            .and_then(|file| {
                let mut file = BufWriter::new(file);
                render::write(&report, *format, TerminalStyle::Plain, &mut file)
            })
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let colour = format == Format::Table
        && !args.no_color
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stdout().is_terminal();
    let style = if colour {
        TerminalStyle::Colour
    } else {
        TerminalStyle::Plain
    };
    let written = render::write(
        &report,
        format,
        style,
        &mut BufWriter::new(std::io::stdout().lock()),
    );
    crate::out::reader_gone_is_done(written)
        .context("cannot write the report to standard output")?;

    let code = if !report.complete {
        ExitCode::from(2)
    } else if threshold(args.fail_on).is_some_and(|t| report.failing(t) > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    };
    // The process ends here: freeing a million small allocations one by one would only add
    // a noticeable pause on large clusters. The OS reclaims the memory at exit.
    std::mem::forget(report);
    std::mem::forget(snapshot);
    Ok(code)
}

fn threshold(fail_on: FailOn) -> Option<Severity> {
    match fail_on {
        FailOn::Critical => Some(Severity::Critical),
        FailOn::High => Some(Severity::High),
        FailOn::Medium => Some(Severity::Medium),
        FailOn::Low => Some(Severity::Low),
        FailOn::Info => Some(Severity::Info),
        FailOn::Never => None,
    }
}

fn load_waivers(path: Option<&Path>) -> Result<Vec<Waiver>> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the waiver file {}", path.display()))?;
    let file = WaiverFile::from_yaml(&text)
        .map_err(|e| anyhow::Error::msg(source::in_file(&e.to_string(), path)))
        .with_context(|| format!("invalid waiver file {}", path.display()))?;
    Ok(file.waivers)
}

pub fn inventory(args: InventoryArgs) -> Result<ExitCode> {
    let policy = source::policy(args.source.policy.as_deref())?;
    let (snapshot, _) = source::load(&args.source)?;
    let inventory = discover(&snapshot, &policy);
    match args.format.as_str() {
        "json" => outln!("{}", serde_json::to_string_pretty(&inventory)?)?,
        "csv" => {
            outln!(
                "kind,namespace,name,runtime,model,version,exposure,external,auth,scope,team,file,line,reasons"
            )?;
            for e in &inventory.endpoints {
                let row = [
                    e.object.kind.clone(),
                    e.object.namespace.clone(),
                    e.object.name.clone(),
                    e.runtime.to_string(),
                    e.model.name.clone().unwrap_or_default(),
                    e.model.version.clone().unwrap_or_default(),
                    e.exposure
                        .iter()
                        .map(|x| x.via.to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                    e.is_externally_exposed().to_string(),
                    e.auth
                        .iter()
                        .map(|a| a.detail.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                    e.data_scope
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    e.team.clone().unwrap_or_default(),
                    e.origin.file.as_deref().unwrap_or_default().to_owned(),
                    e.origin.line.map(|l| l.to_string()).unwrap_or_default(),
                    e.reasons
                        .iter()
                        .map(|r| format!("{} {}", r.signal, r.detail))
                        .collect::<Vec<_>>()
                        .join("; "),
                ];
                outln!(
                    "{}",
                    row.iter()
                        .map(|c| hangar_audit::render::csv_cell(&printable(c)))
                        .collect::<Vec<_>>()
                        .join(",")
                )?;
            }
        }
        _ => {
            outln!("{:<48} {:<10} {:<40} WHY", "ENDPOINT", "RUNTIME", "MODEL")?;
            for e in &inventory.endpoints {
                let model = e.model.name.clone().unwrap_or_else(|| "unknown".into());
                let why = e
                    .reasons
                    .iter()
                    .map(|r| r.signal)
                    .collect::<Vec<_>>()
                    .join("+");
                outln!(
                    "{:<48} {:<10} {:<40} {why}",
                    printable(&e.id),
                    e.runtime.as_str(),
                    printable(&model)
                )?;
            }
            outln!(
                "\n{} endpoints in {} objects",
                inventory.endpoints.len(),
                snapshot.object_count()
            )?;
        }
    }
    let complete = source::report_gaps(&snapshot.errors, &snapshot.not_covered);
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

pub fn checks(args: ChecksArgs) -> Result<ExitCode> {
    match args.format.as_str() {
        "markdown" => out!("{}", catalogue_markdown())?,
        "json" => {
            let rows: Vec<_> = catalogue()
                .iter()
                .map(|c| serde_json::json!({"id": c.id, "family": c.family, "severity": c.severity, "title": c.title, "rationale": c.rationale, "remediation": c.remediation}))
                .collect();
            outln!("{}", serde_json::to_string_pretty(&rows)?)?;
        }
        _ => {
            for c in catalogue() {
                outln!("{:<8} {:<9} {}", c.id, c.severity.as_str(), c.title)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn policy_schema() -> Result<ExitCode> {
    outln!("{}", serde_json::to_string_pretty(&Policy::json_schema())?)?;
    Ok(ExitCode::SUCCESS)
}

pub fn policy_check(file: &Path) -> Result<ExitCode> {
    let policy = source::policy(Some(file))?;
    outln!("{}", serde_json::to_string_pretty(&policy)?)?;
    Ok(ExitCode::SUCCESS)
}
