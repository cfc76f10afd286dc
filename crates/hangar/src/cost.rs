//! `hangar cost`: GPU showback from manifests, a saved dump or a live cluster.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use hangar_audit::cost::{
    CostOptions, Format, GroupBy, Timestamp, parse_at, parse_period, render, showback,
};

use crate::cli::{SourceArgs, parse_outputs};
use crate::source;

/// The examples, in both the short and the long help.
macro_rules! examples {
    () => {
        "Examples:
  hangar cost examples/cluster --policy examples/hangar.yaml
  hangar cost dump/ --policy hangar.yaml --by namespace   # `kubectl cluster-info dump` output
  hangar cost --context prod --policy hangar.yaml --by model   # live, read-only
  hangar cost dump/ --period 30d --at 2026-03-01T00:00:00Z --format json
  hangar cost dump/ --output csv=gpu.csv --output html=gpu.html"
    };
}

/// The long help: the model in a paragraph, the examples, the exit codes.
const AFTER_HELP: &str = concat!(
    "\
What it computes:
  Each running pod holds the accelerators it requests: whole GPUs, MIG instances as their
  compute slices out of 7 (3g.40gb = 3/7 of a GPU), time-sliced replicas as 1/replicas.
  A GPU's hourly price comes from `gpuPrices` in the policy file: by GPU model (node labels
  such as nvidia.com/gpu.product), else the node's instance-type price divided by its GPUs,
  else the default. GPUs without a price keep their GPU-hours and get a warning.
  PER HOUR is the run rate now; PROJECTED is that rate over --period; ACCRUED is what each
  running pod has cost from its start to --at. Idle is what GPU nodes hold that no pod asks
  for. With manifests only (no running pods), templates x replicas are costed and labelled
  DECLARED.

",
    examples!(),
    "

Exit codes: 0 costed; 2 part of the input could not be read (the rest is still costed), the files
or standard input held no Kubernetes object, or the command failed. See docs/cost.md."
);

#[derive(Debug, Args)]
#[command(
    after_help = examples!(),
    after_long_help = AFTER_HELP,
    mut_arg("policy", |a| a.help("The organisation policy (`hangar.yaml`); its `gpuPrices` table prices the GPUs (see `hangar policy schema` and docs/cost.md)"))
)]
pub struct CostArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// What to roll usage up by: the owning team (from the policy's teamLabels), the namespace,
    /// the model, or the inference endpoint.
    #[arg(long, default_value = "team", value_name = "GROUP", value_parser = ["team", "namespace", "model", "endpoint"])]
    pub by: String,
    /// How long PROJECTED covers: a number and a unit, h, d, w, mo (730 h) or y
    /// (`730h`, `30d`, `1mo`).
    #[arg(long, default_value = "730h", value_name = "PERIOD")]
    pub period: String,
    /// The time running pods are measured to for ACCRUED: RFC 3339 (`2026-03-01T12:00:00Z`) or
    /// a date (`2026-03-01`, midnight UTC). Default: now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Output format on standard output.
    #[arg(short, long, default_value = "table", value_name = "FORMAT", value_parser = ["table", "json", "csv", "html"])]
    pub format: String,
    /// Also write FORMAT to PATH; repeatable (`--output csv=gpu.csv --output html=gpu.html`).
    #[arg(short, long = "output", value_name = "FORMAT=PATH")]
    pub outputs: Vec<String>,
}

pub fn run(args: CostArgs) -> Result<ExitCode> {
    // Validate everything the user typed before reading a cluster.
    let outputs = parse_outputs(&args.outputs)?;
    let format: Format = args.format.parse().map_err(anyhow::Error::msg)?;
    let by: GroupBy = args.by.parse().map_err(anyhow::Error::msg)?;
    let period_hours = parse_period(&args.period).context("--period")?;
    let at = match &args.at {
        Some(text) => parse_at(text).context("--at")?,
        // Whole seconds: the report shows the instant, and nanoseconds only add noise.
        None => {
            let now = Timestamp::now();
            Timestamp::from_second(now.as_second()).unwrap_or(now)
        }
    };
    let policy = source::policy(args.source.policy.as_deref())?;
    let (snapshot, described) = source::load(&args.source)?;

    let report = showback(
        &snapshot,
        &CostOptions {
            policy: &policy,
            by,
            period_hours,
            at,
            source: described,
        },
    );
    for (format, path) in &outputs {
        std::fs::write(path, render(&report, *format))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    out!("{}", render(&report, format))?;
    // The table lists warnings and unread input itself; other formats carry them as data, so
    // say them where a person reading a terminal sees them.
    if format != Format::Table {
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
        source::report_gaps(&report.errors, &report.not_covered);
    }
    Ok(if report.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
