//! `hangar triage`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub struct TriageArgs {}

pub fn run(_args: TriageArgs) -> Result<ExitCode> {
    anyhow::bail!("`hangar triage` is not built yet")
}
