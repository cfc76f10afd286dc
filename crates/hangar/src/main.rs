//! `hangar`: operations for AI inference on Kubernetes.

#[macro_use]
mod out;

mod audit;
mod cli;
mod cost;
mod gateway;
mod runbook;
mod source;
mod triage;
mod validate;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use cli::{Cli, Command, PolicyCommand};

// An audit allocates millions of small strings and maps; mimalloc does that much faster than the
// system allocator, across threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The command line, every subcommand's `--version` naming the program (`hangar 0.1.0`) rather
/// than clap's `hangar-gateway 0.1.0`.
fn command() -> clap::Command {
    fn named_hangar(app: clap::Command) -> clap::Command {
        app.display_name("hangar").mut_subcommands(named_hangar)
    }
    named_hangar(Cli::command())
}

fn main() -> ExitCode {
    let matches = command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut command()).exit());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour for a person at a terminal who did not say NO_COLOR; a pod's log (`kubectl
        // logs`, a shipper) gets text.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .with_env_filter(
            // The gateway is a server: its reloads and shutdowns are worth a line by default.
            // h2 warns of each peer that misbehaves (a rapid reset), keyless ones too: a line a
            // connection an attacker could write at will, about what h2 has already refused.
            tracing_subscriber::EnvFilter::try_from_env("HANGAR_LOG")
                .unwrap_or_else(|_| "warn,h2=error,hangar_gateway=info".into()),
        )
        .init();
    let result = match cli.command {
        Command::Audit(args) => audit::audit(args),
        Command::Inventory(args) => audit::inventory(args),
        Command::Checks(args) => audit::checks(args),
        Command::Triage(args) => triage::run(args),
        Command::Runbook(args) => runbook::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Cost(args) => cost::run(args),
        Command::Gateway(args) => gateway::run(args),
        Command::Policy {
            command: PolicyCommand::Schema,
        } => audit::policy_schema(),
        Command::Policy {
            command: PolicyCommand::Check { file },
        } => audit::policy_check(&file),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
