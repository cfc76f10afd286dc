//! Golden requests against an OpenAI-compatible model server (vLLM, TGI, SGLang, llama.cpp,
//! Ollama, NIM, a gateway…), compared with expectations and with a recorded baseline.
//!
//! A golden set ([`golden`]) lists requests to `/v1/chat/completions`, `/v1/completions` and
//! `/v1/embeddings`, each with expectations: status, exact text, substrings, a regex, a JSON
//! Schema of the output, similarity to the baseline, latency and time-to-first-token budgets,
//! tokens used. [`validate`] sends them (a few at a time, streams read as server-sent events)
//! and returns a [`Report`] whose verdict tells a wrong answer (exit 1, whatever else happened)
//! from a run that could not validate and found nothing wrong (network or protocol errors, a
//! server unavailable, missing baseline: exit 2).
//!
//! ```no_run
//! # async fn gate() -> Result<bool, Box<dyn std::error::Error>> {
//! use hangar_validate::{Baseline, Golden, Options, validate};
//! let golden = Golden::load("golden/support-bot.yaml".as_ref())?;
//! let baseline = Baseline::load("golden/support-bot.baseline.json".as_ref())?;
//! let run = validate(&golden, &Options::new("http://support-bot.ml:8000"), Some(&baseline)).await?;
//! Ok(run.report.exit_code() == 0)
//! # }
//! ```
//!
//! The library does no terminal or file output beyond [`Baseline::save`]; `hangar validate` is a
//! thin command over it, and the release controller calls [`validate`] from async code.

pub mod answer;
pub mod baseline;
pub mod client;
pub mod compare;
pub mod golden;
mod lines;
pub mod report;
mod run;
pub mod sse;

pub use answer::{Answer, Usage};
pub use baseline::{BASELINE_SCHEMA, Baseline, BaselineError, RecordedAnswer};
pub use client::{
    CallError, ClientError, DEFAULT_MAX_BODY_BYTES, Failure, NetworkErrorKind, ProtocolErrorKind,
};
pub use compare::{Check, Expectation, Outcome};
pub use golden::{Case, CaseKind, Defaults, Expect, Golden, GoldenError, GoldenSet, Problem};
pub use report::{CaseResult, CaseStatus, Mode, REPORT_SCHEMA, Report, Summary, Verdict};
pub use run::{Options, RunError, Validation, validate};
