//! `hangar triage`: why an endpoint is sick, from a live cluster, a `kubectl cluster-info dump`
//! or a saved bundle.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use hangar_core::{Endpoint, Inventory, Snapshot, discover};
use hangar_kube::live::{LiveOptions, LogBounds, LogRequest, UnreadLogs, load_live_with_logs};
use hangar_kube::triage_files::{TriageInput, load_triage_paths, save_bundle};
use hangar_triage::report::{TriageReport, render_text, triage};

use crate::cli::FromArgs;
use crate::source::{self, ProgressLine};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  hangar triage                                   every endpoint of the current context
  hangar triage vllm-llama -n ml                  one endpoint, live
  hangar triage --from dump/                      a cluster-info dump directory
  kubectl cluster-info dump | hangar triage --from -   the dump's single stream, piped in
  hangar triage --from examples/incidents         the bundled incident examples
  hangar triage -n ml --save-bundle ml-incident/  keep what was read, for a ticket
  hangar triage --from ml-incident/ --format json

Exit codes: 0 nothing wrong found; 1 at least one endpoint has a problem; 2 the input was
incomplete (unreadable files, kinds or logs the cluster refused) or the endpoint was not found.")]
pub struct TriageArgs {
    /// The endpoint to triage: `Kind/namespace/name`, `namespace/name` or a unique name. Default:
    /// every endpoint in scope, unhealthy ones first.
    pub endpoint: Option<String>,
    #[command(flatten)]
    pub source: FromArgs,
    /// Output format.
    #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Print healthy endpoints' verdicts in full too.
    #[arg(short, long)]
    pub verbose: bool,
    /// Write what was read (objects, Events, log tails) to DIR, for `--from DIR` later. DIR must
    /// be new, empty, or an earlier bundle, which is replaced.
    #[arg(long, value_name = "DIR")]
    pub save_bundle: Option<PathBuf>,
    /// Judge how recent events and restarts are as of this time (RFC 3339), to replay an old
    /// incident. Default: now for a live cluster, the capture time for a saved bundle.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub at: Option<String>,
    /// Log lines kept per container (the tail); at least 1.
    #[arg(long, default_value_t = LogBounds::default().lines, value_name = "N", value_parser = parse_log_bound)]
    pub log_lines: usize,
    /// Log bytes kept per container (the tail); at least 1.
    #[arg(long, default_value_t = LogBounds::default().bytes, value_name = "BYTES", value_parser = parse_log_bound)]
    pub log_bytes: usize,
}

pub fn run(args: TriageArgs) -> Result<ExitCode> {
    source::check_not_a_path(args.endpoint.as_deref(), &args.source.from)?;
    let policy = source::policy(args.source.policy.as_deref())?;
    let bounds = LogBounds {
        lines: args.log_lines,
        bytes: args.log_bytes,
    };
    let live = args.source.from.is_empty();
    let (mut input, described) = if live {
        load_live(&args, &policy, bounds)?
    } else {
        let described = args
            .source
            .from
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" ");
        let input = load_triage_paths(&args.source.from, bounds);
        crate::source::print_notes(&input.snapshot);
        (input, described)
    };
    // Saved before the logs not read become this triage's gaps: the bundle keeps every pod's, for
    // whichever endpoint is triaged from it later.
    if let Some(dir) = &args.save_bundle {
        save_bundle(dir, &input, &described, bounds)
            .with_context(|| format!("cannot write the bundle to {}", dir.display()))?;
        eprintln!(
            "saved {} objects and {} log tails to {}",
            input.snapshot.object_count(),
            input.logs.current.len() + input.logs.previous.len(),
            dir.display()
        );
    }
    let inventory = discover(&input.snapshot, &policy);
    let selection = Selection::resolve(&inventory, &args);
    // A log a dump says was not read is a gap only for the endpoints triaged, as live, where no
    // other pod's log is read. With no endpoint to triage (a name that matches none), every one
    // counts.
    input.record_logs_not_read(|namespace, pod| match &selection {
        Ok(selection) => selection.serves(&inventory, namespace, pod),
        Err(_) => true,
    });
    let TriageInput {
        snapshot,
        logs,
        observed_at,
        ..
    } = input;
    let observed_at = args.at.clone().or(observed_at);
    let complete = source::report_gaps(&snapshot.errors, &snapshot.not_covered);

    let namespace = args.source.namespace.as_deref();
    let selection = selection?;
    let select = |e: &Endpoint| selection.includes(e);
    let results = triage(
        &snapshot,
        &inventory,
        &logs,
        observed_at.as_deref(),
        &select,
    );
    if results.is_empty() {
        return Err(source::no_endpoint_found(&described, namespace));
    }
    match args.format.as_str() {
        "json" => {
            let report = TriageReport::new(&described, &snapshot, &results);
            outln!("{}", serde_json::to_string_pretty(&report)?)?;
        }
        _ => out!("{}", render_text(&results, args.verbose))?,
    }
    // A crash-looping pod nothing recognises is `unknown` and still sick; only an endpoint with
    // no pods to judge (manifests) is unknown without being a problem.
    let sick = results.iter().any(|r| r.needs_attention());
    Ok(if !complete {
        ExitCode::from(2)
    } else if sick {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Which endpoints a triage is about: the one named, or every one in the namespace (all of them
/// without one).
struct Selection<'a> {
    /// The id of the endpoint named.
    named: Option<String>,
    namespace: Option<&'a str>,
}

impl<'a> Selection<'a> {
    /// Finds the endpoint `args` names among those of `inventory` in its namespace. A name that
    /// matches none, or several, is an error that lists the candidates.
    fn resolve(inventory: &Inventory, args: &'a TriageArgs) -> Result<Self> {
        let in_namespace = Selection {
            named: None,
            namespace: args.source.namespace.as_deref(),
        };
        let Some(query) = &args.endpoint else {
            return Ok(in_namespace);
        };
        let candidates: Vec<&Endpoint> = (inventory.endpoints.iter())
            .filter(|e| in_namespace.includes(e))
            .collect();
        let id = source::find_endpoint(&candidates, query)?.id.clone();
        Ok(Selection {
            named: Some(id),
            ..in_namespace
        })
    }

    fn includes(&self, endpoint: &Endpoint) -> bool {
        match &self.named {
            Some(id) => endpoint.id == *id,
            None => self.namespace.is_none_or(|ns| endpoint.namespace() == ns),
        }
    }

    /// Whether pod `namespace/pod` serves one of the endpoints of `inventory` selected: the pods
    /// whose logs a triage reads.
    fn serves(&self, inventory: &Inventory, namespace: &str, pod: &str) -> bool {
        (inventory.endpoints.iter())
            .filter(|e| self.includes(e))
            .flat_map(|e| &e.pods)
            .any(|p| p.namespace == namespace && p.name == pod)
    }
}

/// A bound of `--log-lines` or `--log-bytes`: 0 would keep no log at all, and a triage without
/// the logs cannot see why a container died.
fn parse_log_bound(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err(
            "must be at least 1: 0 would keep no log, and the log says why a container died".into(),
        ),
        Ok(bound) => Ok(bound),
        Err(e) => Err(format!("`{text}` is not a whole number: {e}")),
    }
}

fn parse_time(text: &str) -> Result<String, String> {
    text.parse::<jiff::Timestamp>()
        .map(|t| t.to_string())
        .map_err(|e| format!("`{text}` is not an RFC 3339 time (2026-11-28T03:30:00Z): {e}"))
}

fn load_live(
    args: &TriageArgs,
    policy: &hangar_core::Policy,
    bounds: LogBounds,
) -> Result<(TriageInput, String)> {
    let options = LiveOptions {
        kubeconfig: args.source.kubeconfig.clone(),
        context: args.source.context.clone(),
        namespace: args.source.namespace.clone(),
        events: true,
    };
    let described = source::describe_cluster(&options);
    let line = ProgressLine::new();
    // Logs only of the pods that serve the endpoints triaged: the rest of the cluster is not.
    let select = |snapshot: &Snapshot| log_requests(snapshot, policy, args);
    let loaded = source::runtime()?.block_on(load_live_with_logs(
        &options,
        &mut |p| line.show(&p),
        &select,
        bounds,
    ));
    line.clear();
    let (snapshot, logs) = loaded.context("cannot read the live cluster for triage")?;
    let input = TriageInput {
        snapshot,
        logs,
        observed_at: Some(jiff::Timestamp::now().to_string()),
        // Live, only the pods triaged have their logs read, and a log not read is already a gap.
        logs_not_read: UnreadLogs::default(),
    };
    Ok((input, described))
}

/// Each container of each pod of the endpoints `args` selects: its current log, and its previous
/// one when it has restarted (that is where a crash's last words are). A name that matches no
/// endpoint reads no logs: the triage then says so, with the candidates.
fn log_requests(
    snapshot: &Snapshot,
    policy: &hangar_core::Policy,
    args: &TriageArgs,
) -> Vec<LogRequest> {
    let inventory = discover(snapshot, policy);
    let Ok(selection) = Selection::resolve(&inventory, args) else {
        return Vec::new();
    };
    let mut requests = Vec::new();
    let selected = (inventory.endpoints.iter()).filter(|e| selection.includes(e));
    for endpoint in selected {
        for pod_ref in &endpoint.pods {
            let Some(pod) =
                snapshot.find::<k8s_openapi::api::core::v1::Pod>(&pod_ref.namespace, &pod_ref.name)
            else {
                continue;
            };
            let status = pod.object.status.as_ref();
            let statuses = status.into_iter().flat_map(|s| {
                s.container_statuses
                    .iter()
                    .flatten()
                    .chain(s.init_container_statuses.iter().flatten())
            });
            for container in statuses {
                let request = |previous| LogRequest {
                    namespace: pod_ref.namespace.clone(),
                    pod: pod_ref.name.clone(),
                    container: container.name.clone(),
                    previous,
                };
                requests.push(request(false));
                if container.restart_count > 0 {
                    requests.push(request(true));
                }
            }
        }
    }
    requests
}
