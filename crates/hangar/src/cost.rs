//! `hangar cost`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub struct CostArgs {}

pub fn run(_args: CostArgs) -> Result<ExitCode> {
    anyhow::bail!("`hangar cost` is not built yet")
}
