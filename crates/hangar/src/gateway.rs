//! `hangar gateway`: run the inference gateway, check its configuration, make API keys and
//! verify its audit log. A thin command over the `hangar-gateway` library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use hangar_gateway::{GatewayConfig, Server};

const EXAMPLES: &str = "\
Examples:
  # check a configuration, then serve it
  hangar gateway check --config examples/gateway/gateway.yaml
  hangar gateway run --config examples/gateway/gateway.yaml

  # from where the gateway runs: can it reach each model server, and does it serve the model?
  hangar gateway check --config gateway.yaml --probe

  # a key for the payments tenant, valid until the end of January (add the printed entry
  # under auth.apiKeys; the gateway reloads it within a second)
  hangar gateway keygen --tenant payments --id payments-2026-12 --expires 2027-01-31T00:00:00Z

  # prove the audit log has not been edited
  hangar gateway verify-log /var/log/hangar/audit

  # the JSON Schema of the configuration file
  hangar gateway schema > gateway.schema.json

The configuration is described in docs/gateway.md and by `hangar gateway schema`.";

/// The inference gateway: an OpenAI-compatible proxy that authenticates, limits, routes,
/// guards and logs.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct GatewayArgs {
    #[command(subcommand)]
    pub command: GatewayCommand,
}

#[derive(Debug, Subcommand)]
pub enum GatewayCommand {
    /// Serve the inference API until SIGINT or SIGTERM, then drain streams in flight.
    ///
    /// The configuration is reloaded when its file or a file it names (certificates, keys, CAs,
    /// a JWKS) changes, and on SIGHUP, so renewed certificates need no restart; a configuration
    /// that does not load leaves the running one in place and logs why.
    Run {
        /// The gateway configuration (YAML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Check a configuration file and the files it names, and summarise it (with until when each
    /// certificate is valid), without serving. Exit 0 good, 2 not; 1 when the shared limits'
    /// Redis refuses the gateway (a login, a command). What works but is risky (no TLS on a
    /// reachable address, no operator listener, canaries without a seed, tenants with no key)
    /// is a warning. With --probe, also ask each model server for its model list, as the
    /// gateway would reach it: exit 1 if one cannot be reached or refuses the gateway's key.
    Check {
        /// The gateway configuration (YAML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Reach every model version (`GET /v1/models`, with its CA, client certificate and key)
        /// and say whether it serves the model the gateway asks it for.
        #[arg(long)]
        probe: bool,
    },
    /// Print the JSON Schema of the configuration file.
    Schema,
    /// Make an API key. The key is printed once and never stored; the configuration keeps only
    /// its hash.
    Keygen {
        /// The tenant the key acts for.
        #[arg(long)]
        tenant: String,
        /// The key's id in logs and metrics, e.g. `payments-2026-12`.
        #[arg(long)]
        id: String,
        /// When the key stops working (RFC 3339).
        #[arg(long, value_name = "TIME")]
        expires: Option<String>,
    },
    /// Verify a hash-chained audit (or content) log: exit 0 intact, 1 tampered, 2 unreadable
    /// or no log file at all.
    ///
    /// Every edited, inserted, reordered or removed record is found, and so are deleted or
    /// renamed files, except what no chain can show from its own files: its newest records cut
    /// off the end, or the whole chain rewritten with new hashes. For those, keep the anchor the
    /// gateway logs when it stops ("audit log anchor: SEQ:HASH") somewhere else, and pass it
    /// with --anchor.
    VerifyLog {
        /// The log directory (`audit.dir` in the configuration).
        dir: PathBuf,
        /// Which log: `audit` or `content`.
        #[arg(long, default_value = "audit")]
        prefix: String,
        /// A record the chain must still hold, as SEQ:HASH, kept outside the log directory.
        #[arg(long, value_name = "SEQ:HASH", value_parser = parse_anchor)]
        anchor: Option<hangar_ledger::Anchor>,
        /// The report on standard output.
        #[arg(short, long, default_value = "text", value_name = "FORMAT", value_parser = ["text", "json"])]
        format: String,
        /// The same as `--format json` (the flag's first name).
        #[arg(long, hide = true)]
        json: bool,
    },
}

pub fn run(args: GatewayArgs) -> Result<ExitCode> {
    match args.command {
        GatewayCommand::Run { config } => serve(&config),
        GatewayCommand::Check { config, probe } => check(&config, probe),
        GatewayCommand::Schema => {
            outln!(
                "{}",
                serde_json::to_string_pretty(&hangar_gateway::config::schema())?
            )?;
            Ok(ExitCode::SUCCESS)
        }
        GatewayCommand::Keygen {
            tenant,
            id,
            expires,
        } => keygen(&tenant, &id, expires.as_deref()),
        GatewayCommand::VerifyLog {
            dir,
            prefix,
            anchor,
            format,
            json,
        } => verify_log(&dir, &prefix, anchor.as_ref(), json || format == "json"),
    }
}

/// The gateway's own lines go out under its library's name, in the same format as its
/// reloads and warnings, and by the same `HANGAR_LOG` filter.
const LOG: &str = "hangar_gateway";

fn serve(config: &Path) -> Result<ExitCode> {
    let runtime = gateway_runtime()?;
    runtime.block_on(async {
        let server = Server::bind(config).await?;
        if let Some(address) = server.address() {
            tracing::info!(target: LOG, "serving the inference API on {address}");
        }
        if let Some(address) = server.admin_address() {
            tracing::info!(target: LOG, "metrics and health on http://{address}");
        }
        let stop = shutdown_signal(server.readiness(), server.shutdown_delay());
        server.run(stop).await?;
        tracing::info!(target: LOG, "stopped; the audit log is written out");
        Ok(ExitCode::SUCCESS)
    })
}

/// All cores: the gateway is the one command whose speed is other people's latency. With one
/// core (a pinned process, a pod limited to one CPU) a single-threaded runtime: a multi-threaded
/// one with one worker passes every wake-up between threads, and served a third fewer requests
/// on one core in `bench/gateway.sh`.
fn gateway_runtime() -> Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut builder = if cores == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    Ok(builder.enable_all().build()?)
}

/// Completes when the gateway is to stop accepting. SIGINT (Ctrl-C) stops it at once. SIGTERM,
/// Kubernetes' way, first takes it out of service for `delay` while it still serves: the pod's
/// address leaves the Service's endpoints a few seconds after the pod is deleted, and a
/// listener closed before then would refuse the connections still sent to it. A second signal
/// ends the wait.
async fn shutdown_signal(readiness: hangar_gateway::server::Readiness, delay: Duration) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut terminate) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = terminate.recv() => {}
        }
        if delay.is_zero() {
            return;
        }
        readiness.withdraw();
        tracing::info!(
            target: LOG,
            "SIGTERM: /readyz answers 503; serving {delay:?} more (limits.shutdownDelay) before draining; a second signal stops now"
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = tokio::signal::ctrl_c() => tracing::info!(target: LOG, "second signal: stopping now"),
            _ = terminate.recv() => tracing::info!(target: LOG, "second signal: stopping now"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (readiness, delay);
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn check(path: &Path, probe: bool) -> Result<ExitCode> {
    let config = match GatewayConfig::load(path) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{err}");
            return Ok(ExitCode::from(2));
        }
    };
    // Building the runtime also checks what loading cannot: environment variables, JWKS files.
    let runtime = gateway_runtime()?;
    let built =
        runtime.block_on(async { hangar_gateway::runtime::Runtime::build(config.clone(), None) });
    let built = match built {
        Ok(built) => built,
        Err(problems) => {
            eprintln!("{}: {}", path.display(), problems.join("\n  "));
            return Ok(ExitCode::from(2));
        }
    };
    outln!("{}: ok", path.display())?;
    outln!("  listen       {}", config.listen)?;
    if let Some(admin) = config.admin_listen {
        outln!("  admin        http://{admin} (/metrics, /healthz, /readyz)")?;
    }
    // Worth saying, not failing on: each has its reasons (a mesh ends TLS, a local test).
    for warning in listener_warnings(&config) {
        outln!("  warning      {warning}")?;
    }
    for (name, not_after) in &built.certificate_expiry {
        let until = jiff::Timestamp::from_second(*not_after)
            .map_or_else(|_| not_after.to_string(), |t| t.to_string());
        outln!("  certificate  {name} valid until {until}")?;
    }
    outln!(
        "  tenants      {}",
        config
            .tenants
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    if let Some(warning) = canary_warning(&config) {
        outln!("  warning      {warning}")?;
    }
    for (name, route) in &config.models {
        let versions: Vec<String> = route
            .versions
            .iter()
            .map(|v| {
                let fallback = if v.fallback { "" } else { ", no fallback" };
                format!("{} ({}{fallback}) → {}", v.name, v.weight, v.url)
            })
            .collect();
        outln!("  model        {name}: {}", versions.join(", "))?;
    }
    if let Some(tls) = &config.upstream_tls {
        let trusted = tls.ca_file.as_ref().map_or_else(
            || "system CAs".to_owned(),
            |ca| format!("system CAs and {}", ca.display()),
        );
        let shown = tls.cert_file.as_ref().map_or_else(String::new, |cert| {
            format!(", client certificate {}", cert.display())
        });
        outln!("  model TLS    {trusted}{shown}")?;
    }
    let now = jiff::Timestamp::now();
    let keys = &config.auth.api_keys;
    let revoked = keys.iter().filter(|key| key.revoked).count();
    let expired = (keys.iter())
        .filter(|key| !key.revoked && key.has_expired(now))
        .count();
    let mut out_of_force = Vec::new();
    if revoked > 0 {
        out_of_force.push(format!("{revoked} revoked"));
    }
    if expired > 0 {
        out_of_force.push(format!("{expired} expired"));
    }
    outln!(
        "  auth         {} in force{}{}",
        count(keys.len() - revoked - expired, "API key"),
        if out_of_force.is_empty() {
            String::new()
        } else {
            format!(" ({})", out_of_force.join(", "))
        },
        if config.auth.jwt.is_some() {
            ", JWT"
        } else {
            ""
        }
    )?;
    for warning in config.tenant_warnings(now) {
        outln!("  warning      {warning}")?;
    }
    outln!(
        "  audit        {} (kept {}){}{}",
        config.audit.dir.display(),
        count(config.audit.retention_days, "day"),
        config
            .audit
            .content
            .map(|c| format!(", content kept {}", count(c.retention_days, "day")))
            .unwrap_or_default(),
        if config.audit.fail_closed {
            "; requests refused while it cannot be written"
        } else {
            ""
        }
    )?;
    if let Some(warning) = audit_dir_warning(&config.audit.dir) {
        outln!("  warning      {warning}")?;
    }
    if config.audit.rotate_size.0 < 64 * 1024 {
        outln!(
            "  warning      audit.rotateSize {} bytes starts a new file every few records, which makes the log hard to keep and check; the default is 64MiB",
            config.audit.rotate_size.0
        )?;
    }
    // Redis answering with a refusal (a login, an ACL) is a setting to fix: exit 1, as for a
    // model server that refuses the probe. Not being reached from here is only said: `check`
    // often runs where the gateway does not, and the gateway copes at run time.
    let mut refused = false;
    if let (Some(shared), Some(config)) = (&built.shared_limits, &config.limits.shared) {
        let reached = runtime.block_on(shared.reach());
        let state = match reached {
            Ok(took) => {
                let nodes = shared.cluster_nodes();
                let redirected = match nodes.as_slice() {
                    [] => String::new(),
                    nodes => format!(" (redirected by a Redis Cluster to {})", nodes.join(", ")),
                };
                format!(
                    "answered in {:.1} ms{redirected}",
                    took.as_secs_f64() * 1000.0
                )
            }
            Err(unreached) => {
                refused |= unreached.refused;
                let what = if unreached.refused {
                    "REFUSED by Redis"
                } else {
                    "NOT REACHED from here"
                };
                format!(
                    "{what} ({}); without it requests are decided by onUnavailable: {}",
                    unreached.why,
                    config.on_unavailable.as_str()
                )
            }
        };
        let sentinel = (config.sentinel_master.as_ref())
            .map(|primary| format!(", Sentinel's primary `{primary}`"))
            .unwrap_or_default();
        outln!(
            "  shared limits {} (prefix {}{sentinel}): {state}",
            config.url,
            config.prefix
        )?;
    }
    if !probe {
        return Ok(ExitCode::from(u8::from(refused)));
    }
    let probes = runtime.block_on(hangar_gateway::probe::probe_all(
        &built,
        Duration::from_secs(5),
    ));
    for probe in &probes {
        outln!("  probe        {}", probe_line(probe))?;
    }
    Ok(if refused || probes.iter().any(|p| p.outcome.fails()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// What a model version's server answered, in a line.
fn probe_line(probe: &hangar_gateway::probe::Probe) -> String {
    use hangar_gateway::probe::Outcome;
    let asked = &probe.upstream_model;
    let said = match &probe.outcome {
        Outcome::Serves => format!("ok, serves `{asked}`"),
        Outcome::Unlisted(listed) if listed.is_empty() => {
            format!("warning: answers, but lists no model; the gateway asks it for `{asked}`")
        }
        Outcome::Unlisted(listed) => format!(
            "warning: answers, but lists {} and not `{asked}`, the name the gateway sends (set `upstreamModel`?)",
            listed
                .iter()
                .take(5)
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Outcome::NoListing(status) => format!(
            "warning: /v1/models answered {status}, so whether it serves `{asked}` cannot be told"
        ),
        Outcome::Refused(status) => format!(
            "FAILED: refused the gateway's credentials ({status}): check the version's `apiKeyEnv`"
        ),
        Outcome::Failed(why) => format!("FAILED: {why}"),
    };
    format!("{} {}: {said}", probe.model, probe.version)
}

/// What `check` says about the listeners: the configuration works, but exposes or hides
/// something.
fn listener_warnings(config: &GatewayConfig) -> Vec<String> {
    let mut warnings = Vec::new();
    if config.tls.is_none() && !config.listen.ip().is_loopback() {
        warnings.push(format!(
            "`listen` {} takes connections from other hosts and there is no `tls`: API keys and prompts cross the network in clear text, unless TLS ends before the gateway (a mesh sidecar, a load balancer)",
            config.listen
        ));
    }
    if config.admin_listen.is_none() {
        warnings.push(
            "no `adminListen`: no /metrics, /healthz or /readyz for monitoring and probes"
                .to_owned(),
        );
    }
    warnings
}

/// Tenants that plant a canary with no seed set: each replica, and each restart, draws its own.
fn canary_warning(config: &GatewayConfig) -> Option<String> {
    let guards = &config.guards;
    if guards.canary_seed.is_some() || guards.canary_seed_file.is_some() {
        return None;
    }
    let planting: Vec<&str> = (config.tenants.iter())
        .filter(|(_, tenant)| tenant.inject_canary)
        .map(|(name, _)| name.as_str())
        .collect();
    if planting.is_empty() {
        return None;
    }
    Some(format!(
        "`injectCanary` is on for {} but neither `guards.canarySeed` nor `guards.canarySeedFile` is set: each replica, and each restart, plants a different token; set one so that every replica plants the same",
        planting.join(", ")
    ))
}

/// Whether `gateway run` could write its audit log in `dir`, here: the directory, or the nearest
/// existing one above it that `run` would create it in, takes a file. A warning, not an error,
/// for `check` often runs where the gateway does not (a CI job, a laptop).
fn audit_dir_warning(dir: &Path) -> Option<String> {
    let shown = dir.display();
    let cannot_start = ": the gateway cannot start here";
    // The nearest path that is there: the directory, or the one `run` would create it in.
    let mut at = dir;
    let existing = loop {
        // A relative path's last ancestor is the empty path: the working directory.
        let here = if at.as_os_str().is_empty() {
            Path::new(".")
        } else {
            at
        };
        match here.try_exists() {
            Ok(true) => break here,
            Ok(false) if here.symlink_metadata().is_ok() => {
                return Some(format!(
                    "audit.dir {shown}: {} is a link to nothing{cannot_start}",
                    here.display()
                ));
            }
            // Under a file: the file is what stands in the way.
            Ok(false) => at = here.parent()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => at = here.parent()?,
            Err(e) => {
                return Some(format!(
                    "audit.dir {shown}: cannot look at {} ({e}){cannot_start}",
                    here.display()
                ));
            }
        }
    };
    if !existing.is_dir() {
        return Some(format!(
            "audit.dir {shown}: {} is not a directory{cannot_start}",
            existing.display()
        ));
    }
    let will_be = if existing == dir {
        String::new()
    } else {
        format!(
            " (it does not exist, and would be created in {})",
            existing.display()
        )
    };
    // Nothing short of writing says whether this process may: ownership, modes, ACLs, a
    // read-only mount.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    let probe = existing.join(format!(".hangar-check-{}-{nanos}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => Some(format!(
            "audit.dir {shown}: cannot write in {} ({e}){will_be}{cannot_start}",
            existing.display()
        )),
    }
}

/// `1 day`, `2 days`: a count and its word, plural unless it is one.
fn count<N>(n: N, word: &str) -> String
where
    u64: TryFrom<N>,
{
    match u64::try_from(n).unwrap_or(u64::MAX) {
        1 => format!("1 {word}"),
        n => format!("{n} {word}s"),
    }
}

fn keygen(tenant: &str, id: &str, expires: Option<&str>) -> Result<ExitCode> {
    if tenant.trim().is_empty() {
        bail!("--tenant is empty: give the name of the tenant the key acts for, as in `tenants`");
    }
    if id.trim().is_empty() {
        bail!("--id is empty: give the key a name for logs and metrics, e.g. payments-2026-12");
    }
    let expires = expires
        .map(|t| {
            t.parse::<jiff::Timestamp>()
                .with_context(|| format!("--expires `{t}` is not an RFC 3339 time"))
        })
        .transpose()?;
    if let Some(at) = expires.filter(|at| *at <= jiff::Timestamp::now()) {
        eprintln!("warning: --expires {at} is already past: the key will not work");
    }
    let new = hangar_gateway::auth::keys::generate(id, tenant, expires)
        .map_err(|_| anyhow::anyhow!("the system's random generator failed"))?;
    eprintln!("The key (shown once; hand it to the tenant, it is not stored anywhere):");
    outln!("{}", new.key)?;
    eprintln!("\nAdd this entry under auth.apiKeys:");
    let entry = serde_json::to_value(&new.entry)?;
    let mut lines = Vec::new();
    for field in ["id", "tenant", "prefix", "sha256", "expires"] {
        if let Some(value) = entry.get(field).and_then(|v| v.as_str()) {
            // A JSON string is a YAML string too: an id like `#x` or `a: b` stays one value.
            let lead = if lines.is_empty() { "- " } else { "  " };
            lines.push(format!("{lead}{field}: {}", serde_json::to_string(value)?));
        }
    }
    eprintln!("{}", lines.join("\n"));
    Ok(ExitCode::SUCCESS)
}

/// `SEQ:HASH`, as the gateway logs it.
fn parse_anchor(text: &str) -> Result<hangar_ledger::Anchor, String> {
    let (seq, hash) = text
        .split_once(':')
        .ok_or("expected SEQ:HASH, e.g. 1042:9f86d08…")?;
    let seq = seq
        .parse()
        .map_err(|_| format!("`{seq}` is not a record number"))?;
    if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err("the hash must be 64 lowercase hex digits".into());
    }
    Ok(hangar_ledger::Anchor {
        seq,
        hash: hash.to_owned(),
    })
}

fn verify_log(
    dir: &Path,
    prefix: &str,
    anchor: Option<&hangar_ledger::Anchor>,
    json: bool,
) -> Result<ExitCode> {
    if dir.is_file() {
        bail!(
            "{}: a file; give the directory that holds the log (`audit.dir`): its chain runs through every {prefix}-*.jsonl file there",
            dir.display()
        );
    }
    let gone = std::fs::metadata(dir).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
    if gone && let Some(anchor) = anchor {
        eprintln!(
            "TAMPERED: {}: no such directory, though the anchor names record {}: the log was deleted",
            dir.display(),
            anchor.seq
        );
        return Ok(ExitCode::from(1));
    }
    if !dir.is_dir() {
        bail!("{}: no such directory", dir.display());
    }
    let verified = match anchor {
        Some(anchor) => hangar_ledger::verify_against(dir, prefix, anchor),
        None => hangar_ledger::verify(dir, prefix),
    };
    let report = match verified {
        Ok(report) => report,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(ExitCode::from(2));
        }
    };
    // Nothing to verify is no proof of anything: a wrong directory or prefix, or a log whose
    // every file is gone, must not read as intact to a script checking the exit code. Where an
    // anchor vouches for records, or the gateway's lock file shows a log was kept here, their
    // absence is the log deleted: tampering, not a mistyped path.
    let kept_here = dir.join(format!(".{prefix}.lock")).is_file();
    if report.files == 0 && (anchor.is_some() || kept_here) {
        let why = match anchor {
            Some(anchor) => format!("the anchor names record {}", anchor.seq),
            None => format!("its lock file .{prefix}.lock shows a log was kept here"),
        };
        eprintln!(
            "TAMPERED: {}: no {prefix}-*.jsonl file left, though {why}: the log was deleted",
            dir.display()
        );
        return Ok(ExitCode::from(1));
    }
    if report.files == 0 {
        eprintln!(
            "error: {}: no {prefix}-*.jsonl file to verify (is this `audit.dir`, and is the prefix `audit` or `content`?)",
            dir.display()
        );
        return Ok(ExitCode::from(2));
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        out!("{}", verify_text(dir, prefix, &report))?;
    }
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn verify_text(dir: &Path, prefix: &str, report: &hangar_ledger::VerifyReport) -> String {
    let mut out = String::new();
    let span = match (report.first_seq, report.last_seq) {
        (Some(first), Some(last)) => format!(", seq {first}–{last}"),
        _ => String::new(),
    };
    out.push_str(&format!(
        "{}/{prefix}-*: {}, {}{span}\n",
        dir.display(),
        count(report.files, "file"),
        count(report.records, "record")
    ));
    if let Some(start) = report.starts_at_seq {
        let why = if report.start_explained_by_retention {
            "older files were deleted by the retention policy (recorded in the chain)"
        } else {
            "older files are missing and no retention record explains it"
        };
        out.push_str(&format!("  the chain starts at seq {start}: {why}\n"));
    }
    if report.dropped > 0 {
        out.push_str(&format!(
            "  {} dropped before reaching the files (recorded as gaps)\n",
            match report.dropped {
                1 => "1 record was".to_owned(),
                n => format!("{n} records were"),
            }
        ));
    }
    for note in &report.notes {
        out.push_str(&format!("  note: {note}\n"));
    }
    if let (Some(seq), Some(hash)) = (report.last_seq, &report.last_hash) {
        out.push_str(&format!(
            "  anchor of the last record: {seq}:{hash} (check it against the one the gateway logged, or pass that with --anchor)\n"
        ));
    }
    if report.problems.is_empty() {
        out.push_str("intact: every record chains to the one before it\n");
    } else {
        out.push_str(&format!(
            "TAMPERED: {}\n",
            count(report.problems.len(), "problem")
        ));
        for problem in &report.problems {
            out.push_str(&format!("  {problem}\n"));
        }
    }
    out
}
