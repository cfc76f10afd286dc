//! `hangar runbook`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub struct RunbookArgs {}

pub fn run(_args: RunbookArgs) -> Result<ExitCode> {
    anyhow::bail!("`hangar runbook` is not built yet")
}
