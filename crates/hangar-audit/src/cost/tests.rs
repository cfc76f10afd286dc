//! Showback told as stories: a running cluster and a set of manifests, costed, grouped and
//! rendered, with the figures worked out by hand.

use super::*;

const OBSERVED: &str = include_str!("testdata/observed.yaml");
const DECLARED: &str = include_str!("testdata/declared.yaml");

const PRICES: &str = "gpuPrices:
  currency: USD
  models: {A100: 4.0, H100: 7.0, L4: 0.8}
  instanceTypes: {g6e.12xlarge: 10.0}
  default: 0.5
";

fn policy(yaml: &str) -> Policy {
    Policy::from_yaml(yaml).unwrap()
}

fn cost(input: &str, policy: &Policy, by: GroupBy) -> CostReport {
    let snapshot = hangar_core::snapshot_from_text("cluster.yaml", input);
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    cost_of(&snapshot, policy, by)
}

fn cost_of(snapshot: &Snapshot, policy: &Policy, by: GroupBy) -> CostReport {
    showback(
        snapshot,
        &CostOptions {
            policy,
            by,
            period_hours: MONTH_HOURS,
            at: parse_at("2026-03-01T12:00:00Z").unwrap(),
            source: "cluster.yaml".into(),
        },
    )
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[track_caller]
fn assert_close(actual: f64, expected: f64) {
    assert!(close(actual, expected), "{actual} != {expected}");
}

fn item<'r>(report: &'r CostReport, name: &str) -> &'r Usage {
    report
        .usage
        .iter()
        .find(|u| u.object.name == name)
        .unwrap_or_else(|| panic!("no line item {name}: {:?}", report.usage))
}

#[test]
fn running_pods_are_billed_by_their_share_of_a_gpu_and_the_node_price() {
    let report = cost(OBSERVED, &policy(PRICES), GroupBy::Team);
    assert_eq!(report.schema, "hangar.dev/cost-report/v1");
    assert_eq!(report.basis, Basis::Observed);
    assert_eq!(report.usage.len(), 4, "{:?}", report.usage);

    // Two whole A100s at 4.00, running for 10 hours.
    let chat = item(&report, "chat-7d9f-a");
    assert_close(chat.gpus, 2.0);
    assert_eq!(chat.price_per_gpu_hour, Some(4.0));
    assert_close(chat.hourly.unwrap(), 8.0);
    assert_close(chat.projected.unwrap(), 8.0 * 730.0);
    assert_close(chat.running_hours.unwrap(), 10.0);
    assert_close(chat.accrued.unwrap(), 80.0);
    assert!(chat.inference);
    assert_eq!(chat.endpoint.as_deref(), Some("Deployment/ml/chat"));
    assert_eq!(
        chat.workload.as_ref().map(ToString::to_string).as_deref(),
        Some("Deployment/ml/chat")
    );
    assert_eq!(chat.team.as_deref(), Some("search"), "from the namespace");
    assert_eq!(chat.pool.as_deref(), Some("gpu-a100"));

    // A 3g.40gb MIG instance is 3/7 of an H100 at 7.00: 3.00 an hour, for 24 hours.
    let embed = item(&report, "embed-0");
    assert_close(embed.gpus, 3.0 / 7.0);
    assert_close(embed.hourly.unwrap(), 3.0);
    assert_close(embed.accrued.unwrap(), 72.0);
    assert_eq!(embed.model.as_deref(), Some("BAAI/bge-m3"));

    // One of four time-sliced replicas of a T4, priced by the default (0.50), for 12 hours.
    let notebook = item(&report, "alice-notebook-0");
    assert_close(notebook.gpus, 0.25);
    assert_close(notebook.hourly.unwrap(), 0.125);
    assert_close(notebook.accrued.unwrap(), 1.5);
    assert_eq!(notebook.price_source, "default");
    assert!(!notebook.inference);
    assert_eq!(notebook.what.as_deref(), Some("a notebook"));
    assert_eq!(notebook.team.as_deref(), Some("research"));

    // Two L40S on a g6e.12xlarge (10.00 an hour for 4 GPUs): 2.50 each.
    let train = item(&report, "train-x1");
    assert_close(train.gpus, 2.0);
    assert_close(train.hourly.unwrap(), 5.0);
    assert!(train.price_source.starts_with("instanceTypes.g6e.12xlarge"));
    assert_close(train.accrued.unwrap(), 25.0);

    let allocated = &report.totals.allocated;
    assert_close(allocated.gpus, 4.25 + 3.0 / 7.0);
    assert_close(allocated.hourly().unwrap(), 16.125);
    assert_close(allocated.projected().unwrap(), 16.125 * 730.0);
    assert_close(allocated.accrued.unwrap(), 178.5);
    assert_close(allocated.unpriced_gpus, 0.0);
}

#[test]
fn idle_gpus_are_what_the_nodes_hold_minus_what_pods_hold() {
    let report = cost(OBSERVED, &policy(PRICES), GroupBy::Team);
    let node = |name: &str| report.idle.nodes.iter().find(|n| n.node == name).unwrap();
    assert_close(node("a100-1").idle, 6.0);
    assert_close(node("a100-1").hourly.unwrap(), 24.0);
    // 7 × 1g + 2 × 3g instances: two H100s, 3/7 of one in use.
    assert_close(node("mig-1").gpus, 2.0);
    assert_close(node("mig-1").idle, 2.0 - 3.0 / 7.0);
    assert_close(node("mig-1").hourly.unwrap(), 11.0);
    assert_close(node("t4-shared").gpus, 1.0);
    assert_close(node("t4-shared").idle, 0.75);
    assert_close(node("l40s-1").idle, 2.0);
    assert!(
        !report.idle.nodes.iter().any(|n| n.node == "cpu-1"),
        "not a GPU node"
    );
    assert_close(
        report.totals.idle.hourly().unwrap(),
        24.0 + 11.0 + 0.375 + 5.0,
    );
    // What the nodes hold is what pods hold plus what is idle.
    assert_close(report.totals.offered.gpus, 15.0);
    assert_close(
        report.totals.offered.hourly().unwrap(),
        report.totals.allocated.hourly().unwrap() + report.totals.idle.hourly().unwrap(),
    );
    let pool = |name: &str| report.idle.pools.iter().find(|p| p.pool == name).unwrap();
    assert_close(pool("gpu-a100").idle.gpus, 6.0);
    assert_eq!(
        pool("h100-mig").gpu_model.as_deref(),
        Some("NVIDIA-H100-80GB-HBM3")
    );
    assert_eq!(
        report.idle.pools[0].pool, "gpu-a100",
        "the dearest idle pool first"
    );
}

#[test]
fn groups_by_team_namespace_model_and_endpoint() {
    let prices = policy(PRICES);
    let by_team = cost(OBSERVED, &prices, GroupBy::Team);
    let keys: Vec<&str> = by_team.groups.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(keys, ["search", "research"], "dearest first");
    assert_close(by_team.groups[0].amount.hourly().unwrap(), 11.0);
    assert_close(by_team.groups[0].inference.gpus, 2.0 + 3.0 / 7.0);
    assert_close(by_team.groups[1].amount.hourly().unwrap(), 5.125);
    assert_close(by_team.groups[1].inference.gpus, 0.0);
    assert_eq!(by_team.groups[1].items, 2);

    let by_namespace = cost(OBSERVED, &prices, GroupBy::Namespace);
    let keys: Vec<&str> = by_namespace.groups.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(keys, ["ml", "lab"]);

    let by_model = cost(OBSERVED, &prices, GroupBy::Model);
    let keys: Vec<&str> = by_model.groups.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "meta-llama/Llama-3.1-8B-Instruct",
            "(no model)",
            "BAAI/bge-m3"
        ]
    );

    let by_endpoint = cost(OBSERVED, &prices, GroupBy::Endpoint);
    let keys: Vec<&str> = by_endpoint.groups.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "Deployment/ml/chat",
            "(not an endpoint)",
            "StatefulSet/ml/embed"
        ]
    );
}

#[test]
fn inference_is_split_from_other_work() {
    let report = cost(OBSERVED, &policy(PRICES), GroupBy::Team);
    assert_close(report.split.inference.hourly().unwrap(), 11.0);
    assert_close(report.split.other.hourly().unwrap(), 5.125);
    let kinds: Vec<(&str, f64)> = report
        .split
        .other_by_kind
        .iter()
        .map(|k| (k.what.as_str(), k.amount.gpus))
        .collect();
    assert_eq!(
        kinds,
        [
            (
                "runs to completion: a batch or training job, not a server",
                2.0
            ),
            ("a notebook", 0.25)
        ]
    );
}

#[test]
fn pending_finished_and_gpu_less_pods_are_not_billed_but_listed() {
    let report = cost(OBSERVED, &policy(PRICES), GroupBy::Team);
    assert_eq!(report.pending.len(), 1);
    let pending = &report.pending[0];
    assert_eq!(pending.pod.name, "chat-7d9f-b");
    assert_eq!(pending.endpoint.as_deref(), Some("Deployment/ml/chat"));
    assert_close(pending.gpus, 2.0);
    assert!(
        pending
            .reason
            .as_deref()
            .unwrap()
            .contains("Insufficient nvidia.com/gpu")
    );
    assert!(report.usage.iter().all(|u| u.object.name != "train-old"));
    assert_eq!(report.no_gpu_pods.len(), 1);
    let redis = &report.no_gpu_pods[0];
    assert_eq!(redis.pod.name, "redis-0");
    assert_eq!(redis.node, "a100-1");
    assert_eq!(redis.requests, "cpu=1 memory=2Gi");
    assert_eq!(
        report.node_agents, 1,
        "dcgm-exporter is counted, not listed"
    );
}

#[test]
fn gpus_without_a_price_keep_their_hours_and_get_a_warning() {
    let no_default = policy("gpuPrices:\n  models: {A100: 4.0}\n");
    let report = cost(OBSERVED, &no_default, GroupBy::Team);
    let embed = item(&report, "embed-0");
    assert_eq!(embed.price_per_gpu_hour, None);
    assert_eq!(embed.hourly, None);
    assert!(embed.price_source.contains("NVIDIA-H100-80GB-HBM3"));
    let allocated = &report.totals.allocated;
    assert_close(allocated.hourly().unwrap(), 8.0);
    assert_close(allocated.unpriced_gpus, 2.25 + 3.0 / 7.0);
    assert_close(allocated.gpu_hours, (4.25 + 3.0 / 7.0) * 730.0);
    assert!(
        report.warnings.iter().any(|w| w.contains("unpriced")),
        "{:?}",
        report.warnings
    );
    let table = render(&report, Format::Table);
    assert!(table.contains("have no price"), "{table}");
}

#[test]
fn a_pod_on_a_node_missing_from_the_input_is_priced_with_the_default() {
    let input = format!(
        "{OBSERVED}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: stray, namespace: ops}}\nspec:\n  nodeName: gone-1\n  containers: [{{name: a, image: x, resources: {{limits: {{amd.com/gpu: '2'}}}}}}]\nstatus: {{phase: Running}}\n"
    );
    let report = cost(&input, &policy(PRICES), GroupBy::Team);
    let stray = item(&report, "stray");
    assert_close(stray.gpus, 2.0);
    assert_eq!(stray.price_per_gpu_hour, Some(0.5));
    assert_eq!(stray.running_hours, None, "no startTime: accrued unknown");
    assert_eq!(stray.accrued, None);
    assert!(report.warnings.iter().any(|w| w.contains("gone-1")));
}

#[test]
fn manifests_are_costed_as_declared_templates_times_replicas() {
    let report = cost(DECLARED, &policy(PRICES), GroupBy::Team);
    assert_eq!(report.basis, Basis::Declared);
    let find = |name: &str, template: &str| {
        report
            .usage
            .iter()
            .find(|u| {
                u.object.name == name && u.template.as_deref().unwrap_or("").contains(template)
            })
            .unwrap_or_else(|| panic!("{name} {template}: {:?}", report.usage))
    };
    // 3 replicas × 1 A100 on the A100 nodes it is pinned to.
    let chat = find("chat", "");
    assert_eq!(chat.replicas, 3);
    assert_eq!(chat.replicas_from.as_deref(), Some("spec.replicas"));
    assert_close(chat.gpus, 3.0);
    assert_close(chat.hourly.unwrap(), 12.0);
    assert_eq!(chat.pool.as_deref(), Some("gpu-a100"));
    assert_eq!(chat.team.as_deref(), Some("platform"));
    assert_eq!(chat.accrued, None, "declared: nothing has run");
    // A LeaderWorkerSet of 2 groups of 3: 2 leaders and 4 workers, 8 H100s each, priced by the
    // model its selector names (no H100 node is in the input).
    let leaders = find("big", "leaderTemplate");
    assert_eq!(leaders.replicas, 2);
    assert_close(leaders.gpus, 16.0);
    let workers = find("big", "workerTemplate");
    assert_eq!(workers.replicas, 4);
    assert_close(workers.gpus, 32.0);
    assert_close(workers.hourly.unwrap(), 32.0 * 7.0);
    assert!(
        workers.price_source.contains("models.H100"),
        "{}",
        workers.price_source
    );
    assert_eq!(workers.pool, None);
    // An InferenceService with minReplicas 2, each on a 1g.10gb MIG slice, at the default price.
    let small = find("small", "predictor");
    assert_eq!(small.replicas, 2);
    assert_close(small.gpus, 2.0 / 7.0);
    assert_close(small.hourly.unwrap(), 1.0 / 7.0);
    // The notebook tolerates no taint: only the L4 node can run it.
    let notebook = find("notebook", "");
    assert!(!notebook.inference);
    assert_close(notebook.hourly.unwrap(), 0.8);
    assert_eq!(notebook.pool.as_deref(), Some("gpu-l4"));
    assert!(
        report.usage.iter().all(|u| u.object.name != "parked"),
        "zero replicas cost nothing"
    );
    assert_eq!(report.usage.len(), 5);

    // The Job runs to completion: a run rate, no projection. It tolerates no taint and asks for
    // 4 GPUs a pod, more than the untainted L4 node has: no node can run it, so it takes the
    // default price.
    assert_eq!(report.batch.len(), 1);
    let job = &report.batch[0];
    assert_close(job.gpus, 8.0);
    assert_close(job.hourly.unwrap(), 8.0 * 0.5);
    assert_eq!(job.projected, None);

    assert_close(
        report.totals.allocated.hourly().unwrap(),
        12.0 + 48.0 * 7.0 + 1.0 / 7.0 + 0.8,
    );
    assert_eq!(report.totals.allocated.accrued, None);
}

#[test]
fn declared_idle_subtracts_only_demand_pinned_to_a_pool() {
    let report = cost(DECLARED, &policy(PRICES), GroupBy::Team);
    assert!(report.idle.nodes.is_empty());
    let pool = |name: &str| report.idle.pools.iter().find(|p| p.pool == name).unwrap();
    assert_close(pool("gpu-a100").gpus, 16.0);
    assert_close(pool("gpu-a100").requested, 3.0);
    assert_close(pool("gpu-a100").idle.gpus, 13.0);
    assert_close(pool("gpu-a100").idle.hourly().unwrap(), 52.0);
    assert_close(pool("gpu-l4").idle.gpus, 0.0);
    assert_close(report.idle.unpinned_gpus, 48.0 + 2.0 / 7.0);
    assert_close(report.totals.idle.hourly().unwrap(), 52.0);
}

#[test]
fn periods_and_instants() {
    assert_eq!(parse_period("730h").unwrap(), 730.0);
    assert_eq!(parse_period("30d").unwrap(), 720.0);
    assert_eq!(parse_period("2w").unwrap(), 336.0);
    assert_eq!(parse_period("1mo").unwrap(), 730.0);
    assert_eq!(parse_period("1y").unwrap(), 8760.0);
    assert_eq!(parse_period("1.5d").unwrap(), 36.0);
    assert!(parse_period("30").is_err());
    assert!(parse_period("0d").is_err());
    assert!(
        parse_period("soon")
            .unwrap_err()
            .to_string()
            .contains("730h")
    );
    assert_eq!(
        parse_at("2026-03-01").unwrap(),
        parse_at("2026-03-01T00:00:00Z").unwrap()
    );
    assert_eq!(
        parse_at("2026-03-01T14:00:00+02:00").unwrap().to_string(),
        "2026-03-01T12:00:00Z"
    );
    assert!(parse_at("yesterday").is_err());
}

#[test]
fn figures_for_people() {
    assert_eq!(money(1234567.891), "1,234,567.89");
    assert_eq!(money(0.125), "0.13");
    assert_eq!(money(999.0), "999.00");
    assert_eq!(number(15330.04, 1), "15,330.0");
    assert_eq!(trim_number(3.0 / 7.0), "0.43");
    assert_eq!(trim_number(2.0), "2");
    assert_eq!(period_text(730.0), "730 h (30.4 days)");
    assert_eq!(priced(None), "–");
    assert_eq!(priced(Some(2.5)), "2.50");
    assert_eq!(clip("inference", 20), "inference");
    assert_eq!(clip("inference", 4), "inf…");
    assert_eq!(clip("inference", 0), "…");
}

#[test]
fn json_carries_the_schema_and_rounded_figures() {
    let report = cost(OBSERVED, &policy(PRICES), GroupBy::Team);
    let json: serde_json::Value = serde_json::from_str(&render(&report, Format::Json)).unwrap();
    assert_eq!(json["schema"], "hangar.dev/cost-report/v1");
    assert_eq!(json["basis"], "observed");
    assert_eq!(json["group_by"], "team");
    assert_eq!(json["at"], "2026-03-01T12:00:00Z");
    assert_eq!(json["period_hours"], 730.0);
    assert_eq!(json["currency"], "USD");
    assert_eq!(json["complete"], true);
    let embed = json["usage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["object"]["name"] == "embed-0")
        .unwrap();
    assert_eq!(embed["gpus"], 0.4286);
    assert_eq!(embed["hourly"], 3.0);
    assert_eq!(embed["object"]["kind"], "Pod");
    assert_eq!(json["totals"]["allocated"]["hourly"], 16.13);
    assert_eq!(json["groups"][0]["key"], "search");
    assert_eq!(json["pending"][0]["pod"]["name"], "chat-7d9f-b");
}

#[test]
fn csv_has_a_row_per_line_item_and_idle_node() {
    let report = cost(OBSERVED, &policy(PRICES), GroupBy::Namespace);
    let csv = render(&report, Format::Csv);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("group,kind,basis,object,"),
        "{}",
        lines[0]
    );
    let columns = lines[0].split(',').count();
    // 4 pods and 4 GPU nodes with idle GPUs.
    assert_eq!(lines.len(), 1 + 4 + 4, "{csv}");
    assert!(
        lines[1].starts_with("ml,usage,observed,Pod/ml/"),
        "{}",
        lines[1]
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("(idle),idle,observed,Node/a100-1,"))
    );
    // Price sources hold commas: they are quoted, so every row has the header's columns.
    for line in &lines[1..] {
        assert_eq!(split_csv(line).len(), columns, "{line}");
    }
}

/// Splits one CSV line (no line breaks inside cells) as RFC 4180 reads it.
fn split_csv(line: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cells.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(String::new()),
            (c, _) => cells.last_mut().unwrap().push(c),
        }
    }
    cells
}

#[test]
fn the_table_says_what_is_observed_and_what_is_projected() {
    let report = cost(OBSERVED, &policy(PRICES), GroupBy::Team);
    let table = render(&report, Format::Table);
    assert!(table.contains("basis: OBSERVED"), "{table}");
    assert!(table.contains("ACCRUED"), "{table}");
    assert!(table.contains("TEAM"), "{table}");
    assert!(table.contains("Idle accelerators by node pool"), "{table}");
    assert!(table.contains("Pending pods"), "{table}");
    assert!(table.contains("Pod/ops/redis-0"), "{table}");
    let search = table.lines().find(|l| l.starts_with("search")).unwrap();
    assert!(search.contains("11.00"), "{search}");
    assert!(search.contains("8,030.00"), "{search}");
    assert!(search.contains("152.00"), "accrued 80 + 72: {search}");

    let declared = render(
        &cost(DECLARED, &policy(PRICES), GroupBy::Team),
        Format::Table,
    );
    assert!(declared.contains("basis: DECLARED"), "{declared}");
    assert!(!declared.contains("ACCRUED"), "{declared}");
    assert!(declared.contains("Batch work"), "{declared}");
    assert!(declared.contains("upper bound"), "{declared}");
}

#[test]
fn the_html_page_is_self_contained_escaped_and_has_a_chart() {
    let hostile = OBSERVED.replace("team: search", "team: \"<script>x</script>\"");
    let report = cost(&hostile, &policy(PRICES), GroupBy::Team);
    let page = render(&report, Format::Html);
    assert!(page.starts_with("<!doctype html>"));
    assert!(page.contains("<svg"), "an inline SVG chart");
    assert!(page.contains("<rect"), "with bars");
    assert!(page.contains("&lt;script&gt;x&lt;/script&gt;"));
    assert!(!page.contains("<script>"), "nothing unescaped");
    assert!(!page.contains("src=\"http") && !page.contains("href=\"http"));
    assert!(!page.contains("<link"), "no external stylesheet");
    assert!(page.contains("--card"), "the audit report's stylesheet");
    assert!(page.contains("Observed."));
    assert!(page.contains("Line items"));
}

#[test]
fn an_input_with_errors_is_marked_incomplete() {
    let mut snapshot = hangar_core::snapshot_from_text("cluster.yaml", OBSERVED);
    snapshot.errors.push(hangar_core::LoadError {
        origin: hangar_core::Origin::default(),
        object: None,
        message: "broken".into(),
    });
    let prices = policy(PRICES);
    let report = showback(
        &snapshot,
        &CostOptions {
            policy: &prices,
            by: GroupBy::Team,
            period_hours: 24.0,
            at: parse_at("2026-03-01T12:00:00Z").unwrap(),
            source: "x".into(),
        },
    );
    assert!(!report.complete);
    assert_eq!(report.usage.len(), 4, "the rest is still costed");
    assert_close(report.totals.allocated.projected().unwrap(), 16.125 * 24.0);
    assert!(render(&report, Format::Html).contains("Incomplete input"));
}

#[test]
fn agents_found_by_their_daemon_set_and_overfull_nodes_are_flagged() {
    let input = format!(
        "{OBSERVED}---
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: node-agent, namespace: ops}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec: {{containers: [{{name: a, image: agent}}]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: agent-x, namespace: ops, labels: {{app: agent}}}}
spec: {{nodeName: a100-1, containers: [{{name: a, image: agent}}]}}
status: {{phase: Running}}
---
apiVersion: v1
kind: Pod
metadata: {{name: stuck, namespace: lab}}
spec:
  nodeName: l40s-1
  containers: [{{name: a, image: x, resources: {{limits: {{nvidia.com/gpu: '3'}}}}}}]
status: {{phase: Pending}}
"
    );
    let report = cost(&input, &policy(PRICES), GroupBy::Team);
    assert_eq!(
        report.node_agents, 2,
        "owner-less, but its DaemonSet selects it"
    );
    assert_eq!(report.no_gpu_pods.len(), 1);
    // A pod bound to a node holds its GPUs, even before its containers start.
    assert_close(item(&report, "stuck").gpus, 3.0);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.starts_with("node l40s-1: its pods hold 5 GPU(s) and it has 4")),
        "{:?}",
        report.warnings
    );
}

/// Eight H100s in MIG `single` mode, each cut in two `3g.40gb` instances, on an instance type
/// priced per node.
const MIG_SINGLE: &str = "apiVersion: v1
kind: Node
metadata:
  name: h100-mig
  labels:
    karpenter.sh/nodepool: h100-mig
    node.kubernetes.io/instance-type: p5.48xlarge
    nvidia.com/mig.strategy: single
    nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3-MIG-3g.40gb
    nvidia.com/gpu.count: '16'
status:
  capacity: {nvidia.com/gpu: '16'}
---
apiVersion: v1
kind: Pod
metadata: {name: slice, namespace: ml}
spec:
  nodeName: h100-mig
  containers: [{name: a, image: x, resources: {limits: {nvidia.com/gpu: '1'}}}]
status: {phase: Running, startTime: '2026-03-01T02:00:00Z'}
";

#[test]
fn a_mig_single_node_is_priced_per_physical_gpu() {
    let report = cost(
        MIG_SINGLE,
        &policy("gpuPrices:\n  instanceTypes: {p5.48xlarge: 80.0}\n"),
        GroupBy::Team,
    );
    // 16 instances, two to a GPU: 8 GPUs, so 80.00 a node is 10.00 a GPU.
    assert_close(report.totals.offered.gpus, 8.0);
    let node = &report.idle.nodes[0];
    assert_eq!(node.price_per_gpu_hour, Some(10.0), "{}", node.price_source);
    assert!(
        node.price_source.contains("÷ 8 GPUs"),
        "{}",
        node.price_source
    );
    // One instance is 3/7 of a GPU.
    let slice = item(&report, "slice");
    assert_close(slice.gpus, 3.0 / 7.0);
    assert_close(slice.hourly.unwrap(), 30.0 / 7.0);
    assert_close(node.idle, 8.0 - 3.0 / 7.0);
    assert_close(report.totals.offered.hourly().unwrap(), 80.0);
    assert!(
        !report.warnings.iter().any(|w| w.contains("inferred")),
        "{:?}",
        report.warnings
    );
}

#[test]
fn a_time_sliced_mig_single_node_bills_a_replica_of_an_instance() {
    // Eight A100s, seven 1g.5gb instances each, every instance time-sliced in two: 112.
    let shared = MIG_SINGLE
        .replace(
            "NVIDIA-H100-80GB-HBM3-MIG-3g.40gb",
            "A100-SXM4-40GB-MIG-1g.5gb-SHARED",
        )
        .replace("nvidia.com/gpu.count: '16'", "nvidia.com/gpu.replicas: '2'")
        .replace("{nvidia.com/gpu: '16'}", "{nvidia.com/gpu: '112'}");
    let report = cost(
        &shared,
        &policy("gpuPrices:\n  instanceTypes: {p5.48xlarge: 80.0}\n"),
        GroupBy::Team,
    );
    assert_close(report.totals.offered.gpus, 8.0);
    // One replica of a 1g instance: half of a seventh of a 10.00 GPU.
    let slice = item(&report, "slice");
    assert_close(slice.gpus, 1.0 / 14.0);
    assert_close(slice.hourly.unwrap(), 10.0 / 14.0);
}

#[test]
fn mixed_mig_gpus_without_a_count_label_are_inferred_and_said_so() {
    let mixed = MIG_SINGLE
        .replace("single", "mixed")
        .replace("-MIG-3g.40gb", "")
        .replace("    nvidia.com/gpu.count: '16'\n", "")
        .replace("{nvidia.com/gpu: '16'}", "{nvidia.com/mig-3g.40gb: '16'}")
        .replace("{nvidia.com/gpu: '1'}", "{nvidia.com/mig-3g.40gb: '1'}");
    let report = cost(
        &mixed,
        &policy("gpuPrices:\n  instanceTypes: {p5.48xlarge: 80.0}\n"),
        GroupBy::Team,
    );
    assert_close(report.totals.offered.gpus, 8.0);
    assert_eq!(report.idle.nodes[0].price_per_gpu_hour, Some(10.0));
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.starts_with("node h100-mig:")
                && w.contains("no nvidia.com/gpu.count label")
                && w.contains("8 GPU(s) are inferred")),
        "{:?}",
        report.warnings
    );
}

/// Eight A100s in MIG `mixed` mode, each cut in seven `1g.5gb` instances, every instance
/// time-sliced in four and renamed (`renameByDefault`): 224 `nvidia.com/mig-1g.5gb.shared`. The
/// feature discovery labels the profile under its name before the rename.
const MIG_MIXED_SHARED: &str = "apiVersion: v1
kind: Node
metadata:
  name: a100-mig
  labels:
    karpenter.sh/nodepool: a100-mig
    node.kubernetes.io/instance-type: p4d.24xlarge
    nvidia.com/mig.strategy: mixed
    nvidia.com/gpu.product: NVIDIA-A100-SXM4-40GB
    nvidia.com/gpu.count: '8'
    nvidia.com/mig-1g.5gb.count: '56'
    nvidia.com/mig-1g.5gb.replicas: '4'
    nvidia.com/mig-1g.5gb.product: NVIDIA-A100-SXM4-40GB-MIG-1g.5gb
status:
  capacity: {nvidia.com/mig-1g.5gb.shared: '224'}
---
apiVersion: v1
kind: Pod
metadata: {name: replica, namespace: ml}
spec:
  nodeName: a100-mig
  containers: [{name: a, image: x, resources: {limits: {nvidia.com/mig-1g.5gb.shared: '1'}}}]
status: {phase: Running, startTime: '2026-03-01T02:00:00Z'}
";

#[test]
fn a_time_sliced_mig_mixed_node_bills_a_replica_of_an_instance() {
    let prices = policy("gpuPrices:\n  instanceTypes: {p4d.24xlarge: 80.0}\n");
    // Renamed `.shared`, and without the rename (the product label then says SHARED): the same.
    let unrenamed = MIG_MIXED_SHARED
        .replace("mig-1g.5gb.shared", "mig-1g.5gb")
        .replace("-MIG-1g.5gb\n", "-MIG-1g.5gb-SHARED\n");
    for input in [MIG_MIXED_SHARED, unrenamed.as_str()] {
        let report = cost(input, &prices, GroupBy::Team);
        // 224 replicas are 56 instances on 8 GPUs, so 80.00 a node is 10.00 a GPU.
        assert_close(report.totals.offered.gpus, 8.0);
        let node = &report.idle.nodes[0];
        assert_eq!(node.price_per_gpu_hour, Some(10.0), "{}", node.price_source);
        // One replica of a 1g instance: a quarter of a seventh of a 10.00 GPU.
        let replica = item(&report, "replica");
        assert_close(replica.gpus, 1.0 / 28.0);
        assert_close(replica.hourly.unwrap(), 10.0 / 28.0);
        assert_close(node.idle, 8.0 - 1.0 / 28.0);
        assert!(
            !report.warnings.iter().any(|w| w.contains("mig-1g.5gb")),
            "{:?}",
            report.warnings
        );
    }
}

#[test]
fn each_mig_profile_is_time_sliced_by_its_own_replicas() {
    // Two A100s: one in seven 1g.5gb instances time-sliced in four, one in two 3g.20gb
    // instances time-sliced in two. No gpu.count label: the GPUs are inferred.
    let input = "apiVersion: v1
kind: Node
metadata:
  name: a100-mig
  labels:
    nvidia.com/mig.strategy: mixed
    nvidia.com/gpu.product: NVIDIA-A100-SXM4-40GB
    nvidia.com/mig-1g.5gb.replicas: '4'
    nvidia.com/mig-3g.20gb.replicas: '2'
status:
  capacity: {nvidia.com/mig-1g.5gb.shared: '28', nvidia.com/mig-3g.20gb.shared: '4'}
---
apiVersion: v1
kind: Pod
metadata: {name: both, namespace: ml}
spec:
  nodeName: a100-mig
  containers: [{name: a, image: x, resources: {limits: {nvidia.com/mig-1g.5gb.shared: '1', nvidia.com/mig-3g.20gb.shared: '1'}}}]
status: {phase: Running, startTime: '2026-03-01T02:00:00Z'}
";
    let prices = policy("gpuPrices:\n  models: {A100: 4.0}\n");
    let report = cost(input, &prices, GroupBy::Team);
    assert_close(report.totals.offered.gpus, 2.0);
    // A quarter of a 1g and half of a 3g: 1/28 + 6/28 of a 4.00 GPU.
    let both = item(&report, "both");
    assert_close(both.gpus, 0.25);
    assert_close(both.hourly.unwrap(), 1.0);

    // Without the replicas labels nothing says how many share an instance: each replica is
    // counted as a whole instance, and the report says so.
    let unlabelled = input
        .replace("    nvidia.com/mig-1g.5gb.replicas: '4'\n", "")
        .replace("    nvidia.com/mig-3g.20gb.replicas: '2'\n", "");
    let report = cost(&unlabelled, &prices, GroupBy::Team);
    assert_close(item(&report, "both").gpus, 1.0 / 7.0 + 3.0 / 7.0);
    assert!(
        report.warnings.iter().any(|w| w.contains("Pod/ml/both")
            && w.contains("`nvidia.com/mig-1g.5gb.shared`")
            && w.contains("no nvidia.com/mig-1g.5gb.replicas label")),
        "{:?}",
        report.warnings
    );
}

/// A one-GPU L4 node whose two pods each hold a GPU (one cannot have started), and a pod on a
/// node missing from the input.
const OVERFULL: &str = "apiVersion: v1
kind: Node
metadata:
  name: l4-1
  labels: {nvidia.com/gpu.product: NVIDIA-L4}
status:
  capacity: {nvidia.com/gpu: '1'}
---
apiVersion: v1
kind: Node
metadata:
  name: l4-2
  labels: {nvidia.com/gpu.product: NVIDIA-L4}
status:
  capacity: {nvidia.com/gpu: '2'}
---
apiVersion: v1
kind: Pod
metadata: {name: first, namespace: ml}
spec:
  nodeName: l4-1
  containers: [{name: a, image: x, resources: {limits: {nvidia.com/gpu: '1'}}}]
status: {phase: Running, startTime: '2026-03-01T02:00:00Z'}
---
apiVersion: v1
kind: Pod
metadata: {name: second, namespace: ml}
spec:
  nodeName: l4-1
  containers: [{name: a, image: x, resources: {limits: {nvidia.com/gpu: '1'}}}]
status: {phase: Pending}
---
apiVersion: v1
kind: Pod
metadata: {name: elsewhere, namespace: ml}
spec:
  nodeName: gone-1
  containers: [{name: a, image: x, resources: {limits: {nvidia.com/gpu: '2'}}}]
status: {phase: Running, startTime: '2026-03-01T02:00:00Z'}
";

#[test]
fn what_is_beyond_the_nodes_explains_allocated_plus_idle() {
    let report = cost(
        OVERFULL,
        &policy("gpuPrices:\n  models: {L4: 1.0}\n"),
        GroupBy::Team,
    );
    let t = &report.totals;
    assert_close(t.allocated.gpus, 4.0);
    assert_close(t.idle.gpus, 2.0);
    assert_close(t.offered.gpus, 3.0);
    assert_close(t.off_nodes.gpus, 2.0);
    // 4 + 2 = 3 + 1 held beyond l4-1's one GPU + 2 on a node missing from the input.
    assert_eq!(
        report.beyond_the_nodes(),
        [
            (2.0, "on no GPU node of the input"),
            (1.0, "held by pods beyond their node's devices")
        ]
    );
    let table = render(&report, Format::Table);
    assert!(
        table.contains("allocated + idle is 3 GPU(s) more than the GPU nodes hold: 2 on no GPU node of the input; 1 held by pods beyond their node's devices."),
        "{table}"
    );
    // Where they add up, nothing is said.
    let fine = cost(OBSERVED, &policy(PRICES), GroupBy::Team);
    assert!(fine.beyond_the_nodes().is_empty());
    assert!(!render(&fine, Format::Table).contains("more than the GPU nodes hold"));
}

#[test]
fn declared_demand_beyond_its_pools_is_explained() {
    let report = cost(DECLARED, &policy(PRICES), GroupBy::Team);
    let t = &report.totals;
    let beyond: f64 = report.beyond_the_nodes().iter().map(|(g, _)| g).sum();
    assert_close(t.allocated.gpus - beyond + t.idle.gpus, t.offered.gpus);
    // The LeaderWorkerSet names H100s and the InferenceService asks for MIG slices: no node of
    // the input offers either.
    assert_close(t.off_nodes.gpus, 48.0 + 2.0 / 7.0);
}

#[test]
fn unpriced_gpus_are_counted_once() {
    // No price at all: l4-1's one GPU, l4-2's two and the two on gone-1. The second pod on
    // l4-1 holds a GPU that does not exist, so it is not one more unpriced GPU.
    let report = cost(OVERFULL, &policy("gpuPrices: {}\n"), GroupBy::Team);
    assert_close(report.unpriced_gpus(), 5.0);
    let table = render(&report, Format::Table);
    assert!(table.contains("* 5 GPU(s) have no price"), "{table}");
    assert!(render(&report, Format::Html).contains("<b>5</b><span>GPUs without a price"));
}

#[test]
fn money_with_no_price_behind_it_is_null_not_zero() {
    let report = cost(OVERFULL, &policy("gpuPrices: {}\n"), GroupBy::Team);
    let allocated = &report.totals.allocated;
    assert_eq!(allocated.hourly(), None);
    assert_eq!(allocated.projected(), None);
    assert_eq!(allocated.accrued, None);
    assert_eq!(report.totals.idle.hourly(), None);
    let json: serde_json::Value = serde_json::from_str(&render(&report, Format::Json)).unwrap();
    for total in ["allocated", "idle", "offered"] {
        let amount = &json["totals"][total];
        assert!(amount["hourly"].is_null(), "{total}: {amount}");
        assert!(amount["projected"].is_null(), "{total}: {amount}");
        assert!(amount["accrued"].is_null(), "{total}: {amount}");
    }
    assert!(
        json["groups"][0]["hourly"].is_null(),
        "{}",
        json["groups"][0]
    );
    // Nothing held is zero, not unknown.
    assert_eq!(Amount::default().hourly(), Some(0.0));
    // Absent values are present as null, not left out.
    let declared = cost(DECLARED, &policy(PRICES), GroupBy::Team);
    let json: serde_json::Value = serde_json::from_str(&render(&declared, Format::Json)).unwrap();
    let first = &json["usage"][0];
    for field in ["accrued", "running_hours", "started", "node", "workload"] {
        assert!(
            first.get(field).is_some_and(serde_json::Value::is_null),
            "{field}: {first}"
        );
    }
    assert!(json["totals"]["allocated"]["accrued"].is_null());
    // The table shows unknown money as a dash.
    let table = render(&report, Format::Table);
    let line = table.lines().find(|l| l.starts_with("allocated")).unwrap();
    assert!(line.contains('–') && !line.contains("0.00"), "{line}");
}

#[test]
fn pods_without_a_start_time_are_left_out_of_accrued_and_said_so() {
    let input = OBSERVED.replace("  startTime: \"2026-03-01T02:00:00Z\"\n", "");
    let report = cost(&input, &policy(PRICES), GroupBy::Team);
    let chat = item(&report, "chat-7d9f-a");
    assert_eq!(chat.started, None, "the fixture lost its start time");
    assert_eq!(chat.accrued, None);
    assert!(
        report.warnings.iter().any(|w| w
            .starts_with("1 running pod(s) have no status.startTime (Pod/ml/chat-7d9f-a)")
            && w.contains("ACCRUED leaves them out")),
        "{:?}",
        report.warnings
    );
    // With every start time known there is nothing to say.
    let all_known = cost(OBSERVED, &policy(PRICES), GroupBy::Team);
    assert!(!all_known.warnings.iter().any(|w| w.contains("startTime")));
}

#[test]
fn a_fully_used_unpriced_node_has_no_idle_warning() {
    // l4-1 is full (two pods on one GPU); l4-2 has two idle GPUs.
    let report = cost(OVERFULL, &policy("gpuPrices: {}\n"), GroupBy::Team);
    let idle_warnings: Vec<&String> = report
        .warnings
        .iter()
        .filter(|w| w.contains("idle GPU(s) unpriced"))
        .collect();
    assert_eq!(idle_warnings.len(), 1, "{idle_warnings:?}");
    assert!(
        idle_warnings[0].starts_with("node l4-2:"),
        "{idle_warnings:?}"
    );
}

#[test]
fn hostile_replica_counts_are_clamped_with_a_warning() {
    let input = r#"apiVersion: leaderworkerset.x-k8s.io/v1
kind: LeaderWorkerSet
metadata: {name: huge, namespace: serving}
spec:
  replicas: 100000
  leaderWorkerTemplate:
    size: 100000
    workerTemplate:
      spec:
        containers:
          - name: vllm
            image: vllm/vllm-openai:v0.11.0
            args: ["--model", "meta-llama/Llama-3.1-405B-Instruct"]
            resources: {limits: {nvidia.com/gpu: "8"}}
---
apiVersion: ray.io/v1
kind: RayService
metadata: {name: wide, namespace: serving}
spec:
  rayClusterConfig:
    headGroupSpec:
      template:
        spec:
          containers: [{name: head, image: rayproject/ray-ml:2.9.3-py310-gpu}]
    workerGroupSpecs:
      - groupName: gpu
        replicas: 9223372036854775807
        numOfHosts: 2
        template:
          spec:
            containers:
              - name: worker
                image: rayproject/ray-ml:2.9.3-py310-gpu
                resources: {limits: {nvidia.com/gpu: "1"}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: negative, namespace: serving}
spec:
  replicas: -3
  selector: {matchLabels: {app: negative}}
  template:
    metadata: {labels: {app: negative}}
    spec:
      containers:
        - name: vllm
          image: vllm/vllm-openai:v0.11.0
          resources: {limits: {nvidia.com/gpu: "1"}}
"#;
    // The negative count is also an input error: no API server would take it.
    let snapshot = hangar_core::snapshot_from_text("cluster.yaml", input);
    let errors: Vec<_> = snapshot.errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        errors,
        ["`spec.replicas`: -3 is negative; Kubernetes rejects it"]
    );
    let report = cost_of(&snapshot, &policy(PRICES), GroupBy::Team);
    let workers = item(&report, "huge");
    assert_eq!(workers.replicas, u32::MAX);
    let ray = item(&report, "wide");
    assert_eq!(ray.replicas, u32::MAX);
    assert!(report.usage.iter().all(|u| u.object.name != "negative"));
    let warned = |object: &str, field: &str| {
        report
            .warnings
            .iter()
            .any(|w| w.starts_with(object) && w.contains(field))
    };
    assert!(
        warned(
            "LeaderWorkerSet/serving/huge",
            "spec.replicas × spec.leaderWorkerTemplate.size comes to 10000000000"
        ),
        "{:?}",
        report.warnings
    );
    assert!(
        warned(
            "RayService/serving/wide",
            "spec.rayClusterConfig.workerGroupSpecs[0].replicas × numOfHosts comes to 18446744073709551614"
        ),
        "{:?}",
        report.warnings
    );
    assert!(
        warned(
            "Deployment/serving/negative",
            "spec.replicas is -3, below zero"
        ),
        "{:?}",
        report.warnings
    );
}
