//! `hangar validate`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub struct ValidateArgs {}

pub fn run(_args: ValidateArgs) -> Result<ExitCode> {
    anyhow::bail!("`hangar validate` is not built yet")
}
