//! `hangar validate`: golden requests against an OpenAI-compatible server, compared with
//! expectations and a recorded baseline. A thin command over the `hangar-validate` library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use hangar_validate::report::now_rfc3339;
use hangar_validate::{Baseline, Golden, GoldenSet, Mode, Options, Report, validate};

use crate::cli::parse_outputs;

const EXAMPLES: &str = "\
Examples:
  # print the golden file's JSON Schema (for editors and CI linting)
  hangar validate --schema > golden.schema.json

  # first run against a known-good server: record the answers as the baseline
  hangar validate --golden golden/support-bot.yaml --url http://localhost:8000 --record-baseline

  # every later run compares with it (golden/support-bot.baseline.json by default)
  hangar validate --golden golden/support-bot.yaml --url http://localhost:8000/v1

  # a release gate: JSON on stdout, an API key from the environment, one retry on network errors
  hangar validate --golden g.yaml --url https://candidate.ml.example --api-key-env CANDIDATE_KEY \\
      --format json --retries 1 > report.json

  # one case, with a generous timeout
  hangar validate --golden g.yaml --url http://localhost:8000 --case refund-window --timeout 2m

Exit codes:
  0  every case passed
  1  a wrong answer: the server answered and an expectation did not hold (even when other
     cases could not be validated: no retry makes a wrong answer right)
  2  could not validate, and no answer was wrong: network errors (429/502/503/504 included),
     protocol errors, a bad golden file or baseline, or a similarity expectation with no
     baseline yet (record one with --record-baseline)

The golden file is described in docs/validate.md and by --schema.";

/// Send golden requests to an OpenAI-compatible server and compare the answers with
/// expectations and a recorded baseline.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct ValidateArgs {
    /// The golden-set file (YAML): the requests and what their answers must satisfy.
    #[arg(long, value_name = "FILE", required_unless_present = "schema")]
    pub golden: Option<PathBuf>,
    /// The server's base URL, with or without `/v1` (`http://host:8000`, `http://host:8000/v1`,
    /// `https://gateway/team-a`); not an endpoint such as `…/v1/chat/completions`.
    #[arg(long, value_name = "URL", required_unless_present = "schema")]
    pub url: Option<String>,
    /// Record the answers as the baseline instead of comparing with it. Similarity expectations
    /// are not evaluated; only cases that pass their other expectations are recorded, and the
    /// baseline's other cases are kept.
    #[arg(long)]
    pub record_baseline: bool,
    /// The baseline file (JSON; YAML when it ends in .yaml/.yml).
    /// [default: beside the golden file, <name>.baseline.json]
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// The report on standard output.
    #[arg(short, long, default_value = "table", value_name = "FORMAT", value_parser = ["table", "json"])]
    pub format: String,
    /// Also write the report as FORMAT (json or table) to PATH; repeatable.
    #[arg(short, long = "output", value_name = "FORMAT=PATH")]
    pub outputs: Vec<String>,
    /// The environment variable holding the API key, sent as `Authorization: Bearer …`
    /// (overrides the golden file's `defaults.api_key_env`).
    #[arg(long, value_name = "NAME")]
    pub api_key_env: Option<String>,
    /// The timeout of every request, overriding the golden file: `500ms`, `30s`, `2m`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// How many requests may be in flight at once.
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Resend a request up to N times after a network error, a 429, 502, 503 or 504 included
    /// (never after a wrong answer).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub retries: u32,
    /// Run only the case with this name; repeatable.
    #[arg(long = "case", value_name = "NAME")]
    pub cases: Vec<String>,
    /// Print the JSON Schema of the golden file and exit.
    #[arg(long, exclusive = true)]
    pub schema: bool,
}

pub fn run(args: ValidateArgs) -> Result<ExitCode> {
    if args.schema {
        outln!(
            "{}",
            serde_json::to_string_pretty(&GoldenSet::json_schema())?
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(golden_path), Some(url)) = (&args.golden, &args.url) else {
        bail!("--golden and --url are required");
    };
    // Check everything the user typed before sending anything.
    let outputs = parse_outputs(&args.outputs)?;
    let mut golden = Golden::load(golden_path)?;
    golden
        .retain_cases(&args.cases)
        .map_err(anyhow::Error::msg)?;
    let baseline_path = args
        .baseline
        .clone()
        .unwrap_or_else(|| default_baseline_path(golden_path));
    let mode = if args.record_baseline {
        Mode::Record
    } else {
        Mode::Check
    };
    let baseline = read_baseline(&baseline_path, mode, &golden)?;
    let options = Options {
        concurrency: usize::from(args.concurrency),
        retries: args.retries,
        timeout: args.timeout,
        api_key: api_key(args.api_key_env.as_deref())?,
        mode,
        ..Options::new(url.clone())
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let check_against = baseline.as_ref().filter(|_| mode == Mode::Check);
    let mut validation = runtime.block_on(validate(&golden, &options, check_against))?;

    if mode == Mode::Record {
        let mut baseline = baseline.unwrap_or_else(|| Baseline::new("", ""));
        baseline.url = validation.report.url.clone();
        baseline.recorded_at = now_rfc3339();
        let recorded = validation.record_into(&mut baseline);
        if recorded.is_empty() {
            eprintln!("no answer was recorded: no case passed");
        } else {
            baseline.save(&baseline_path)?;
            eprintln!(
                "recorded {} answer(s) to {}",
                recorded.len(),
                baseline_path.display()
            );
        }
    }
    let report = &validation.report;
    for (format, path) in &outputs {
        std::fs::write(path, render(report, *format))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    out!("{}", render(report, args.format.parse()?))?;
    Ok(ExitCode::from(report.exit_code()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Table,
    Json,
}

impl std::str::FromStr for Format {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Format> {
        match text {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            other => bail!("unknown format `{other}` (use table or json)"),
        }
    }
}

fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Table => report.to_table(),
        Format::Json => format!("{}\n", report.to_json()),
    }
}

/// `golden/support-bot.yaml` → `golden/support-bot.baseline.json`.
fn default_baseline_path(golden: &Path) -> PathBuf {
    let stem = golden
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "golden".into());
    golden.with_file_name(format!("{stem}.baseline.json"))
}

/// The baseline to compare with, or to record into. A missing file is fine when recording,
/// and when checking it only leaves the similarity expectations undecided (said on stderr).
fn read_baseline(path: &Path, mode: Mode, golden: &Golden) -> Result<Option<Baseline>> {
    if !path.exists() {
        if mode == Mode::Check && golden.needs_baseline() {
            let cases: Vec<_> = golden
                .set
                .cases
                .iter()
                .filter(|c| c.expect.similarity.is_some())
                .map(|c| c.name.as_str())
                .collect();
            eprintln!(
                "no baseline at {}: the similarity expectations of {} cannot be decided (record one with --record-baseline)",
                path.display(),
                cases.join(", ")
            );
        }
        return Ok(None);
    }
    let baseline = Baseline::load(path).with_context(|| match mode {
        Mode::Record => "the existing baseline cannot be read, so it cannot be updated; move it away to record a new one",
        Mode::Check => "the baseline cannot be used",
    })?;
    Ok(Some(baseline))
}

fn api_key(variable: Option<&str>) -> Result<Option<String>> {
    let Some(variable) = variable else {
        return Ok(None);
    };
    match std::env::var(variable) {
        Ok(key) if !key.is_empty() => Ok(Some(key)),
        _ => bail!("--api-key-env names `{variable}`, which is not set"),
    }
}

/// `500ms`, `30s`, `2m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration: use a number and ms, s or m (30s)");
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let duration = match unit.trim() {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => number
            .checked_mul(60)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("`{text}` is too long a timeout"))?,
        _ => return Err(bad()),
    };
    if duration.is_zero() {
        return Err("a timeout of zero would fail every request".into());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::parse_output;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("0s").is_err());
        assert_eq!(
            parse_duration("307445734561825861m"),
            Err("`307445734561825861m` is too long a timeout".into())
        );
        assert!(parse_duration("99999999999999999999s").is_err());
    }

    #[test]
    fn the_baseline_sits_beside_the_golden_file() {
        assert_eq!(
            default_baseline_path(Path::new("golden/support-bot.yaml")),
            Path::new("golden/support-bot.baseline.json")
        );
    }

    #[test]
    fn outputs_name_a_format() {
        assert_eq!(
            parse_output("json=r.json").unwrap(),
            (Format::Json, PathBuf::from("r.json"))
        );
        assert!(parse_output::<Format>("r.json").is_err());
        assert!(parse_output::<Format>("sarif=r").is_err());
        let empty = parse_output::<Format>("json=").unwrap_err().to_string();
        assert!(empty.contains("names no file"), "{empty}");
    }
}
