//! How to tell whether the endpoint is healthy: its pods, its rollout or custom resource status,
//! the server's own routes, its probes, its metrics and its logs.

use hangar_core::Runtime;
use hangar_core::snapshot::KubeObject;

use super::facts::{Facts, kube_objects};
use super::runtimes;
use super::text::{Markdown, ceil_div, code, duration, plural, sh_quote};

pub(super) fn section(doc: &mut Markdown, facts: &Facts<'_>) {
    doc.heading(2, "Check health");
    pods(doc, facts);
    server(doc, facts);
    probes(doc, facts);
    metrics(doc, facts);
    logs(doc, facts);
}

/// How long one pod may take to load the model before the kubelet gives up, in seconds.
pub(super) fn load_budget(facts: &Facts<'_>) -> Option<i64> {
    let server = facts.server.as_ref()?;
    server
        .startup_probe
        .as_ref()
        .or(server.liveness_probe.as_ref())
        .and_then(|p| p.budget())
}

/// A wait for a model server when the probes give no budget: a large model's load.
const DEFAULT_WAIT_MINUTES: i64 = 20;
/// The longest wait a runbook proposes: past half a day, something else is wrong.
const MAX_WAIT_MINUTES: i64 = 12 * 60;

/// `--timeout=Nm` for `kubectl rollout status` and `kubectl wait`: one model load per pod by the
/// probes' budget, at least 5 minutes, or 20 minutes when the probes say nothing. kubectl's own
/// default (30 s for `wait`) is shorter than any model load.
pub(super) fn wait_timeout(facts: &Facts<'_>) -> String {
    let minutes = match load_budget(facts) {
        Some(budget) => {
            let pods = facts
                .replicas
                .as_ref()
                .map_or(1, |r| i64::from(r.max.max(1)));
            ceil_div(budget.saturating_mul(pods), 60).clamp(5, MAX_WAIT_MINUTES)
        }
        None => DEFAULT_WAIT_MINUTES,
    };
    format!("--timeout={minutes}m")
}

/// `kubectl rollout status`, or what stands for it for this kind.
pub(super) fn status_commands(facts: &Facts<'_>) -> Vec<String> {
    let k = facts.kubectl();
    // `get TYPE NAME`, the name quoted: it comes from the input.
    let get = |short: &str| format!("{k} get {}", kube_objects(short, &[facts.name()]));
    let resource = facts.resource();
    let timeout = wait_timeout(facts);
    if let Some(canary) = &facts.canary {
        return vec![
            format!(
                "{k} get {}   # status and phase of the last analysis",
                kube_objects("canary", &[canary.as_str()])
            ),
            format!("{k} rollout status {} {timeout}", facts.serving_resource()),
        ];
    }
    match facts.kind() {
        "Pod" => vec![
            get("pod"),
            format!("{k} wait --for=condition=Ready {resource} {timeout}"),
        ],
        _ if facts.is_workload() => {
            vec![format!("{k} rollout status {resource} {timeout}")]
        }
        "InferenceService" => vec![
            get("isvc"),
            format!("{k} wait --for=condition=Ready {resource} {timeout}"),
        ],
        "NIMService" => vec![format!(
            "{} -o jsonpath='{{.status.state}}{{\"\\n\"}}'",
            get("nimservice")
        )],
        "LeaderWorkerSet" => vec![
            get("lws"),
            format!("{k} wait --for=condition=Available {resource} {timeout}"),
        ],
        "RayService" => vec![format!(
            "{} -o jsonpath='{{.status.serviceStatus}}{{\"\\n\"}}'",
            get("rayservice")
        )],
        _ => vec![format!("{k} get {resource}")],
    }
}

fn pods(doc: &mut Markdown, facts: &Facts<'_>) {
    doc.heading(3, "Pods");
    let k = facts.kubectl();
    let mut lines = Vec::new();
    match &facts.selector {
        Some(selector) => lines.push(format!("{k} get pods -l {selector} -o wide")),
        None => lines.push(format!("{k} get pods -o wide")),
    }
    lines.extend(status_commands(facts));
    doc.shell(lines);
    let expected = match facts.kind() {
        "InferenceService" => "`READY` is `True` and the URL is set".to_owned(),
        "NIMService" => "the state is `Ready`".to_owned(),
        "RayService" => "the service status is `Running`".to_owned(),
        _ => String::new(),
    };
    let count = match (&facts.replicas, facts.kind()) {
        (_, "RayService" | "LeaderWorkerSet") | (None, _) => "every pod".to_owned(),
        (Some(r), _) if r.min == r.max => plural(r.min, "replica"),
        (Some(r), _) => format!("{} to {} replicas", r.min, r.max),
    };
    let mut text = format!("Healthy: {count} `Running` with every container ready");
    if let Some(gpus) = &facts.gpus
        && let [product] = gpus.products.as_slice()
    {
        text.push_str(&format!(" on {product} nodes"));
    }
    if !expected.is_empty() {
        text.push_str(&format!(", and {expected}"));
    }
    text.push_str(&format!(
        ". A pod stuck `Pending` is a scheduling problem for the platform team: {} ends with the scheduler's reason.",
        code(&format!(
            "{k} describe pods{}",
            facts
                .selector
                .as_ref()
                .map(|s| format!(" -l {s}"))
                .unwrap_or_default()
        ))
    ));
    if facts.kind() == "RayService" {
        // The head as for the key (`ray_head`): a selector with `ray.io/node-type=head` alone
        // finds every Ray cluster's head, and during an upgrade the pending cluster's may come
        // first; the head Service is missing until Serve runs.
        text.push_str(&format!(
            " Ray's own view: {}.",
            code(&format!("{k} exec {} -- serve status", facts.ray_head()))
        ));
    }
    doc.para(text);
}

fn server(doc: &mut Markdown, facts: &Facts<'_>) {
    let Some(route) = &facts.route else {
        return;
    };
    let checks = runtimes::checks(facts);
    doc.heading(3, "The server");
    let mut lines = vec![format!("{} &", route.port_forward(facts.ns()))];
    let key_header = key_setup(facts, &mut lines);
    let base = route.base_url();
    let vllm = facts.endpoint.runtime == Runtime::Vllm;
    for check in &checks {
        let url = match check.port {
            Some(port) => format!("http://127.0.0.1:{port}{}", check.path),
            None => format!("{base}{}", check.path),
        };
        // vLLM's key guards only the /v1 routes; other servers check it everywhere.
        let header = match &key_header {
            Some(h) if !vllm || check.path.starts_with("/v1") => format!("{h} "),
            _ => String::new(),
        };
        let method = if check.method == "GET" {
            String::new()
        } else {
            format!("-X {} ", check.method)
        };
        lines.push(format!(
            "curl -fsS {method}{header}{}   # {}",
            sh_quote(&url),
            check.expect.replace('`', "").replace('\n', " ")
        ));
    }
    if let Some(port) = checks.iter().find_map(|c| c.port) {
        lines.insert(1, format!("{} {port}:{port} &", side_forward(facts)));
    }
    doc.shell(lines);
    if let Some(note) = &route.note {
        doc.para(note);
    }
    if checks.is_empty() {
        doc.para(format!(
            "Hangar knows no health route for {}; the readiness probe is the best check there is.",
            runtimes::label(facts.endpoint.runtime)
        ));
    }
}

/// A `kubectl port-forward` prefix to the workload, for ports the Service may not expose.
pub(super) fn side_forward(facts: &Facts<'_>) -> String {
    let target = if facts.is_workload() {
        facts.serving_resource()
    } else {
        facts
            .route
            .as_ref()
            .map_or_else(|| facts.resource(), |r| r.target.clone())
    };
    format!("{} port-forward {target}", facts.kubectl())
}

/// Adds the line that reads the API key into `$KEY`, and returns the curl header that sends it.
pub(super) fn key_setup(facts: &Facts<'_>, lines: &mut Vec<String>) -> Option<String> {
    let key = facts.api_key.as_ref()?;
    match key.read_command(facts.ns()) {
        Some(read) => {
            lines.push(format!("KEY=\"$({read})\""));
            Some("-H \"Authorization: Bearer $KEY\"".into())
        }
        None => {
            lines.push(match key.variable.as_deref() {
                Some(variable) => exec_printenv(facts, variable),
                None => {
                    "KEY=   # the value after --api-key: it is written in the manifest, in clear"
                        .into()
                }
            });
            Some("-H \"Authorization: Bearer $KEY\"".into())
        }
    }
}

/// `KEY="$(kubectl exec … -c SERVER -- printenv VARIABLE)"`, in the server's container (a sidecar
/// listed first would have no key), or a comment when no pod can be named for `kubectl exec`.
fn exec_printenv(facts: &Facts<'_>, variable: &str) -> String {
    let container = facts
        .server
        .as_ref()
        .map(|s| format!(" -c {}", sh_quote(&s.container)))
        .unwrap_or_default();
    match facts.exec_target() {
        Some(target) => format!(
            "KEY=\"$({} exec {target}{container} -- printenv {})\"",
            facts.kubectl(),
            sh_quote(variable)
        ),
        None => format!(
            "KEY=   # the value of {} in the server's container: kubectl exec cannot attach to {} and no selector for its pods is known",
            sh_quote(variable),
            facts.resource()
        ),
    }
}

fn probes(doc: &mut Markdown, facts: &Facts<'_>) {
    let Some(server) = &facts.server else {
        return;
    };
    let mut notes = Vec::new();
    if let Some(p) = &server.startup_probe {
        notes.push(match p.budget() {
            Some(budget) => format!(
                "The startup probe ({}) gives the model {} ({} × {} s) to load before the kubelet restarts the container.",
                code(&p.action),
                duration(budget),
                p.failures,
                p.period
            ),
            None => unusable_probe("startup", &p.action, &p.numbers()),
        });
    } else if let Some(p) = &server.liveness_probe {
        notes.push(match p.budget() {
            Some(budget) => format!(
                "There is no startup probe, so the liveness probe ({}) judges the model load too: a load slower than {} gets the container killed and restarted (exit 137 without `OOMKilled`). Add a startupProbe sized to the load time.",
                code(&p.action),
                duration(budget)
            ),
            None => unusable_probe("liveness", &p.action, &p.numbers()),
        });
    }
    match &server.readiness_probe {
        Some(p) if p.budget().is_none() => {
            notes.push(unusable_probe("readiness", &p.action, &p.numbers()));
        }
        Some(p) if p.action.starts_with("TCP") => notes.push(format!(
            "Readiness is a {} check: the port opens before the weights are loaded, so `Ready` does not mean serving. Trust the HTTP checks above.",
            code(&p.action)
        )),
        Some(p) => notes.push(format!(
            "Readiness: {} every {} s; a pod that fails it {} times leaves the Service until it passes again.",
            code(&p.action),
            p.period,
            p.failures
        )),
        None if facts.is_workload() => notes.push(
            "There is no readiness probe: the Service sends traffic to a pod as soon as its container starts, long before the model is loaded."
                .into(),
        ),
        None => notes.push(format!(
            "The {} declares no readiness probe; its operator may add one. See what the pods run with: {}.",
            facts.kind(),
            code(&format!(
                "{} get pods{} -o jsonpath='{{.items[0].spec.containers[0].readinessProbe}}'",
                facts.kubectl(),
                facts.selector.as_ref().map(|s| format!(" -l {s}")).unwrap_or_default()
            ))
        )),
    }
    if let Some(p) = &server.liveness_probe
        && server.startup_probe.is_some()
        && p.budget().is_some()
    {
        notes.push(format!(
            "Liveness: {} every {} s restarts a hung server after {} failures.",
            code(&p.action),
            p.period,
            p.failures
        ));
    }
    doc.para(notes.join(" "));
}

/// A probe whose numbers cannot be used: said plainly rather than turned into a duration.
fn unusable_probe(which: &str, action: &str, numbers: &str) -> String {
    format!(
        "The {which} probe ({}) has numbers Hangar cannot use ({numbers}): zero, negative, or adding up to more than a week. Fix them before trusting what the probe says.",
        code(action)
    )
}

fn metrics(doc: &mut Markdown, facts: &Facts<'_>) {
    doc.heading(3, "Metrics");
    let runtime = facts.endpoint.runtime;
    match runtimes::metrics(facts) {
        Some(m) => {
            let mut lines = Vec::new();
            let base = match m.port {
                Some(port) => {
                    lines.push(format!("{} {port}:{port} &", side_forward(facts)));
                    format!("http://127.0.0.1:{port}")
                }
                None => facts
                    .route
                    .as_ref()
                    .map_or_else(|| "http://127.0.0.1:8000".into(), |r| r.base_url()),
            };
            let names: Vec<&str> = m
                .watch
                .iter()
                .map(|(name, _)| name.split(' ').next().unwrap_or(name))
                .collect();
            lines.push(format!(
                "curl -fsS {base}{} | grep -E '^({})'",
                m.path,
                names.join("|")
            ));
            doc.shell(lines);
            doc.bullets(m.watch.iter().map(|(name, what)| {
                let (metric, aside) = name.split_once(' ').unwrap_or((name, ""));
                format!("{}{}: {what}.", code(metric), if aside.is_empty() { String::new() } else { format!(" {aside}") })
            }));
        }
        None => doc.para(match runtime {
            Runtime::Ollama => "Ollama exports no Prometheus metrics: watch `/api/ps` above and the logs.".to_owned(),
            Runtime::Sglang => "SGLang exports metrics only with `--enable-metrics`, which this endpoint does not set: add it to see `sglang:num_queue_reqs` and `sglang:token_usage`.".to_owned(),
            Runtime::Rayserve => "Ray Serve's metrics (`ray_serve_*`) are scraped from each Ray node's metrics export port; the Serve page of the Ray dashboard shows replica health and queue lengths.".to_owned(),
            _ => format!("Hangar knows no metrics route for {}.", runtimes::label(runtime)),
        }),
    }
    if let Some(dcgm) = dcgm_namespace(facts) {
        let filter = if facts.ns().is_empty() {
            format!("pod=~\"{}.*\"", facts.name())
        } else {
            format!("namespace=\"{}\"", facts.ns())
        };
        doc.para(format!(
            "GPU side, from dcgm-exporter (namespace {}): {} is the GPU memory in use, `DCGM_FI_DEV_GPU_UTIL` the load, and any `DCGM_FI_DEV_XID_ERRORS` is a hardware or driver event for the platform team.",
            code(&dcgm),
            code(&format!("DCGM_FI_DEV_FB_USED{{{filter}}}"))
        ));
    }
}

/// The namespace dcgm-exporter runs in, if the input holds it.
fn dcgm_namespace(facts: &Facts<'_>) -> Option<String> {
    facts.gpus.as_ref()?;
    facts.snapshot.daemon_sets.iter().find_map(|d| {
        let spec = d.object.spec.as_ref()?.template.spec.as_ref()?;
        spec.containers
            .iter()
            .any(|c| {
                c.image
                    .as_deref()
                    .is_some_and(|i| i.contains("dcgm-exporter"))
            })
            .then(|| d.object.namespace().to_owned())
    })
}

/// How much of each pod's log `kubectl logs -l` shows: all of it, since with a selector kubectl
/// keeps only the last 10 lines per pod.
pub(super) const ALL_LINES: &str = "--tail=-1";

fn logs(doc: &mut Markdown, facts: &Facts<'_>) {
    doc.heading(3, "Logs");
    let k = facts.kubectl();
    let container = match (facts.kind(), &facts.server) {
        ("RayService", _) | (_, None) => String::new(),
        (_, Some(s)) => format!(" -c {}", sh_quote(&s.container)),
    };
    let lines = match facts.server_pods_selector() {
        Some(selector) if !facts.is_workload() => vec![format!(
            "{k} logs -l {selector}{container} --prefix --since=15m {ALL_LINES}"
        )],
        _ => vec![
            format!(
                "{k} logs {}{container} --since=15m",
                facts.serving_resource()
            ),
            format!(
                "{k} logs {}{container} --previous   # the run before the last restart",
                facts.serving_resource()
            ),
        ],
    };
    doc.shell(lines);
    if let Some(scope) = facts.endpoint.data_scope
        && scope.is_regulated()
        && let Some(setting) = &facts.endpoint.logging.request_logging
    {
        doc.para(format!(
            "These logs hold prompts and completions ({}): {} data. Read them on the cluster; never paste them into a ticket or a chat.",
            setting.split(" (").next().unwrap_or(setting),
            scope.as_str().to_ascii_uppercase()
        ));
    }
    doc.para(format!(
        "When something is wrong, {} reads the pods, events and logs and says whether the model, its configuration or the infrastructure is at fault, with the evidence.",
        code(&format!("hangar triage {}", sh_quote(&facts.endpoint.id)))
    ));
}
