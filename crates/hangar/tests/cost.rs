//! `hangar cost` end to end: the bundled examples, a `kubectl cluster-info dump` directory, a
//! live cluster (the testkit's fake API server), every format, and bad input.
#![allow(clippy::unwrap_used, clippy::panic)] // helpers of an integration test are not `#[test]` functions

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hangar_testkit::FakeApiServer;
use serde_json::{Value, json};

const AT: &str = "2026-03-01T12:00:00Z";

const PRICES: &str = "gpuPrices:
  currency: EUR
  models: {H100: 7.0, A100: 4.0}
  instanceTypes: {g4dn.12xlarge: 4.0}
";

fn hangar(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hangar"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(o)))
}

/// The JSON figures are rounded (cents, 1/10000 of a GPU): equal within half a cent.
fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() <= 0.005)
}

fn list(items: Vec<Value>) -> String {
    serde_json::to_string_pretty(&json!({"apiVersion": "v1", "kind": "List", "items": items}))
        .unwrap()
}

fn node(name: &str, labels: Value, capacity: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
           "status": {"capacity": capacity, "allocatable": capacity}})
}

fn pod(namespace: &str, name: &str, node: Option<&str>, gpus: Value, extra: Value) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36", "resources": {"limits": gpus}}]},
        "status": {"phase": if node.is_some() { "Running" } else { "Pending" }, "startTime": "2026-03-01T02:00:00Z"}
    });
    if let Some(node) = node {
        pod["spec"]["nodeName"] = json!(node);
    }
    merge(&mut pod, extra);
    pod
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (k, v) in from {
                merge(into.entry(k).or_insert(Value::Null), v);
            }
        }
        (into, from) => *into = from,
    }
}

/// The nodes and pods of a small cluster: an H100 node, a time-sliced T4 node priced by its
/// instance type, a MIG node; a vLLM endpoint, a MIG pod, a notebook on a replica, a pending
/// pod and a pod with no GPU on a GPU node.
fn cluster_objects() -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let nodes = vec![
        node(
            "h100-1",
            json!({"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "karpenter.sh/nodepool": "h100"}),
            json!({"nvidia.com/gpu": "8", "cpu": "190"}),
        ),
        node(
            "t4-1",
            json!({"nvidia.com/gpu.product": "Tesla-T4-SHARED", "nvidia.com/gpu.count": "4",
                   "nvidia.com/gpu.replicas": "2", "nvidia.com/gpu.sharing-strategy": "time-slicing",
                   "node.kubernetes.io/instance-type": "g4dn.12xlarge", "karpenter.sh/nodepool": "t4"}),
            json!({"nvidia.com/gpu": "8"}),
        ),
        node(
            "a100-mig",
            json!({"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", "karpenter.sh/nodepool": "a100-mig"}),
            json!({"nvidia.com/mig-1g.10gb": "7"}),
        ),
    ];
    let ml = vec![
        pod(
            "ml",
            "chat-5f7-a",
            Some("h100-1"),
            json!({"nvidia.com/gpu": "2"}),
            json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "chat-5f7", "uid": "u1", "controller": true}]},
                   "spec": {"containers": [{"name": "main", "image": "vllm/vllm-openai:v0.11.0", "args": ["--model", "Qwen/Qwen2.5-7B-Instruct"],
                                             "resources": {"limits": {"nvidia.com/gpu": "2"}}}]}}),
        ),
        pod(
            "ml",
            "tiny",
            Some("a100-mig"),
            json!({"nvidia.com/mig-1g.10gb": "1"}),
            json!({"metadata": {"labels": {"team": "search"}}}),
        ),
        pod(
            "ml",
            "waiting",
            None,
            json!({"nvidia.com/gpu": "4"}),
            json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False", "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]}}),
        ),
        pod("ml", "proxy", Some("h100-1"), json!({}), json!({})),
    ];
    let lab = vec![pod(
        "lab",
        "notebook",
        Some("t4-1"),
        json!({"nvidia.com/gpu": "1"}),
        json!({"metadata": {"labels": {"team": "research"}}}),
    )];
    (nodes, ml, lab)
}

fn chat_deployment() -> Vec<Value> {
    let template = json!({"metadata": {"labels": {"app": "chat"}},
        "spec": {"containers": [{"name": "main", "image": "vllm/vllm-openai:v0.11.0", "args": ["--model", "Qwen/Qwen2.5-7B-Instruct"],
                                 "resources": {"limits": {"nvidia.com/gpu": "2"}}}]}});
    vec![
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "chat", "namespace": "ml", "labels": {"team": "platform"}},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "chat"}}, "template": template}}),
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
               "metadata": {"name": "chat-5f7", "namespace": "ml",
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "chat", "uid": "u0", "controller": true}]},
               "spec": {"selector": {"matchLabels": {"app": "chat"}}, "template": template}}),
    ]
}

/// The cluster written as `kubectl cluster-info dump --output-directory` lays it out.
fn dump(dir: &Path) -> PathBuf {
    let (nodes, ml, lab) = cluster_objects();
    let root = dir.join("dump");
    std::fs::create_dir_all(root.join("ml/chat-5f7-a")).unwrap();
    std::fs::create_dir_all(root.join("lab")).unwrap();
    std::fs::write(root.join("nodes.json"), list(nodes)).unwrap();
    std::fs::write(root.join("ml/pods.json"), list(ml)).unwrap();
    let deployments = chat_deployment();
    std::fs::write(
        root.join("ml/deployments.json"),
        list(vec![deployments[0].clone()]),
    )
    .unwrap();
    std::fs::write(
        root.join("ml/replicasets.json"),
        list(vec![deployments[1].clone()]),
    )
    .unwrap();
    std::fs::write(root.join("ml/events.json"), list(vec![])).unwrap();
    std::fs::write(root.join("ml/chat-5f7-a/logs.txt"), "INFO: model loaded\n").unwrap();
    std::fs::write(root.join("lab/pods.json"), list(lab)).unwrap();
    root
}

fn policy(dir: &Path) -> PathBuf {
    let path = dir.join("hangar.yaml");
    std::fs::write(&path, PRICES).unwrap();
    path
}

fn cost(dir: &Path, extra: &[&str]) -> Output {
    let dump = dump(dir);
    let policy = policy(dir);
    let mut args = vec![
        "cost",
        dump.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
        "--at",
        AT,
    ];
    args.extend_from_slice(extra);
    hangar(&args)
}

#[test]
fn a_cluster_info_dump_is_costed_from_its_running_pods() {
    let dir = tempfile::tempdir().unwrap();
    let out = cost(dir.path(), &["--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json_of(&out);
    assert_eq!(report["schema"], "hangar.dev/cost-report/v1");
    assert_eq!(report["basis"], "observed");
    assert_eq!(report["currency"], "EUR");
    let usage = report["usage"].as_array().unwrap();
    let item = |name: &str| {
        usage
            .iter()
            .find(|u| u["object"]["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {usage:?}"))
    };
    // 2 H100s at 7.00, for the 10 hours since 02:00.
    let chat = item("chat-5f7-a");
    assert!(close(&chat["hourly"], 14.0), "{chat}");
    assert!(close(&chat["accrued"], 140.0), "{chat}");
    assert_eq!(chat["endpoint"], "Deployment/ml/chat");
    assert_eq!(chat["team"], "platform");
    assert_eq!(chat["inference"], true);
    // A 1g.10gb MIG slice: 1/7 of an A100 at 4.00.
    let tiny = item("tiny");
    assert!(close(&tiny["gpus"], 0.1429), "{tiny}");
    assert!(close(&tiny["hourly"], 0.57), "{tiny}");
    // One of two replicas of a T4 on a g4dn.12xlarge (4.00 for 4 GPUs): half a GPU at 1.00.
    let notebook = item("notebook");
    assert!(close(&notebook["gpus"], 0.5), "{notebook}");
    assert!(close(&notebook["hourly"], 0.5), "{notebook}");
    assert_eq!(usage.len(), 3);
    assert_eq!(report["pending"][0]["pod"]["name"], "waiting");
    assert_eq!(report["no_gpu_pods"][0]["pod"]["name"], "proxy");
    assert!(close(
        &report["totals"]["idle"]["gpus"],
        6.0 + 6.0 / 7.0 + 3.5
    ));
}

#[test]
fn the_table_groups_by_what_is_asked_and_says_which_figures_are_projected() {
    let dir = tempfile::tempdir().unwrap();
    let out = cost(dir.path(), &["--by", "namespace", "--period", "30d"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("basis: OBSERVED"), "{text}");
    assert!(text.contains("period 720 h (30.0 days)"), "{text}");
    assert!(text.contains("prices in EUR"), "{text}");
    let ml = text.lines().find(|l| l.starts_with("ml ")).unwrap();
    // 14.00 + 0.57 an hour, over 720 hours; accrued 140 + 5.71.
    assert!(ml.contains("14.57"), "{ml}");
    assert!(ml.contains("10,491.43"), "{ml}");
    assert!(ml.contains("145.71"), "{ml}");
    assert!(text.contains("Pending pods"), "{text}");
    assert!(text.contains("Pod/ml/proxy"), "{text}");
    assert!(!text.contains("\x1b["), "no colour");
}

#[test]
fn every_format_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("gpu.csv");
    let html = dir.path().join("gpu.html");
    let json = dir.path().join("gpu.json");
    let outputs = [
        format!("csv={}", csv.display()),
        format!("html={}", html.display()),
        format!("json={}", json.display()),
    ];
    let out = cost(
        dir.path(),
        &[
            "--by",
            "model",
            "--output",
            &outputs[0],
            "--output",
            &outputs[1],
            "--output",
            &outputs[2],
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("MODEL"));
    let csv = std::fs::read_to_string(csv).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("group,kind,basis,object"), "{csv}");
    assert_eq!(
        rows.iter().filter(|r| r.contains(",usage,")).count(),
        3,
        "{csv}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("Qwen/Qwen2.5-7B-Instruct,usage,"))
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("(idle),idle,observed,Node/h100-1,"))
    );
    let html = std::fs::read_to_string(html).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.contains("<svg"));
    let json: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(json["group_by"], "model");
}

#[test]
fn unreadable_input_exits_2_and_the_rest_is_still_costed() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dump(dir.path());
    std::fs::write(dump.join("ml/broken.yaml"), "kind: [unclosed\n").unwrap();
    let policy = policy(dir.path());
    let out = hangar(&[
        "cost",
        dump.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
        "--at",
        AT,
        "--format",
        "csv",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).contains("Pod/ml/chat-5f7-a"), "still costed");
    assert!(stderr(&out).contains("broken.yaml"), "{}", stderr(&out));
}

#[test]
fn the_bundled_examples_are_costed_as_declared() {
    let out = hangar(&[
        "cost",
        "examples/cluster",
        "--policy",
        "examples/hangar.yaml",
        "--at",
        AT,
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json_of(&out);
    assert_eq!(report["basis"], "declared");
    let allocated = &report["totals"]["allocated"];
    assert!(allocated["hourly"].as_f64().unwrap() > 0.0);
    assert!(
        close(&allocated["unpriced_gpus"], 0.0),
        "the example policy prices every GPU: {allocated}"
    );
    let usage = report["usage"].as_array().unwrap();
    assert!(
        usage
            .iter()
            .all(|u| u["replicas_from"].is_string() && u["accrued"].is_null())
    );
    // Three replicas of one A100 each, at the example policy's 4.10.
    let llama = usage
        .iter()
        .find(|u| u["object"]["name"] == "vllm-llama-3-1-8b")
        .unwrap();
    assert_eq!(llama["replicas"], 3);
    assert!(close(&llama["hourly"], 12.3), "{llama}");
    assert_eq!(llama["team"], "platform");
    let table = stdout(&hangar(&[
        "cost",
        "examples/cluster",
        "--policy",
        "examples/hangar.yaml",
    ]));
    assert!(table.contains("basis: DECLARED"), "{table}");
    assert!(table.contains("Batch work"), "{table}");
}

#[test]
fn without_prices_gpu_hours_are_shown_and_the_money_is_not_invented() {
    let out = hangar(&["cost", "examples/cluster", "--at", AT, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json_of(&out);
    let allocated = &report["totals"]["allocated"];
    assert!(
        allocated["hourly"].is_null(),
        "unknown, not zero: {allocated}"
    );
    assert!(allocated["projected"].is_null(), "{allocated}");
    assert!(allocated["unpriced_gpus"].as_f64().unwrap() > 0.0);
    assert!(allocated["gpu_hours"].as_f64().unwrap() > 0.0);
    assert!(stderr(&out).contains("unpriced"), "{}", stderr(&out));
}

#[test]
fn the_examples_totals_add_up_as_the_docs_say() {
    // allocated − what is beyond the nodes + idle = what the GPU nodes hold (docs/cost.md).
    for args in [
        &[
            "cost",
            "examples/cluster",
            "--policy",
            "examples/hangar.yaml",
        ][..],
        &[
            "cost",
            "examples/incidents",
            "--policy",
            "examples/hangar.yaml",
        ][..],
    ] {
        let mut args = args.to_vec();
        args.extend(["--at", "2026-11-28T12:00:00Z", "--format", "json"]);
        let out = hangar(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let report = json_of(&out);
        let totals = &report["totals"];
        let gpus = |total: &str| totals[total]["gpus"].as_f64().unwrap();
        let over: f64 = match report["basis"].as_str().unwrap() {
            "observed" => report["idle"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| (n["requested"].as_f64().unwrap() - n["gpus"].as_f64().unwrap()).max(0.0))
                .sum(),
            _ => {
                let pools: f64 = report["idle"]["pools"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| {
                        (p["requested"].as_f64().unwrap() - p["gpus"].as_f64().unwrap()).max(0.0)
                    })
                    .sum();
                // Unpinned demand holds what runs on no GPU node of the input too.
                pools + report["idle"]["unpinned_gpus"].as_f64().unwrap() - gpus("off_nodes")
            }
        };
        let beyond = over + gpus("off_nodes");
        assert!(
            (gpus("allocated") - beyond + gpus("idle") - gpus("offered")).abs() < 1e-3,
            "{args:?}: {totals}"
        );
        assert!(
            beyond > 0.0,
            "both examples ask beyond their nodes: {totals}"
        );
        let table = stdout(&hangar(&args[..args.len() - 2]));
        assert!(
            table.contains("more than the GPU nodes hold:"),
            "the table says why: {table}"
        );
    }
}

#[test]
fn a_mig_single_node_counts_its_physical_gpus() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = list(vec![node(
        "h100-mig",
        json!({"nvidia.com/mig.strategy": "single", "nvidia.com/gpu.count": "16",
               "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3-MIG-3g.40gb",
               "node.kubernetes.io/instance-type": "p5.48xlarge"}),
        json!({"nvidia.com/gpu": "16"}),
    )]);
    std::fs::write(dir.path().join("nodes.json"), nodes).unwrap();
    let policy = dir.path().join("hangar.yaml");
    std::fs::write(
        &policy,
        "gpuPrices:\n  instanceTypes: {p5.48xlarge: 80.0}\n",
    )
    .unwrap();
    let out = hangar(&[
        "cost",
        dir.path().join("nodes.json").to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json_of(&out);
    let offered = &report["totals"]["offered"];
    assert!(close(&offered["gpus"], 8.0), "{offered}");
    assert!(close(&offered["hourly"], 80.0), "{offered}");
    let pool = &report["idle"]["pools"][0]["idle"];
    assert!(close(&pool["hourly"], 80.0), "8 idle GPUs at 10.00: {pool}");
}

#[test]
fn hostile_replica_counts_are_warnings_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lws.yaml");
    std::fs::write(
        &path,
        "apiVersion: leaderworkerset.x-k8s.io/v1
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
            resources: {limits: {nvidia.com/gpu: '8'}}
",
    )
    .unwrap();
    let out = hangar(&["cost", path.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "LeaderWorkerSet/serving/huge: spec.replicas × spec.leaderWorkerTemplate.size"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_flags_are_clear_errors() {
    let out = hangar(&["cost", "examples/cluster", "--period", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--period"), "{}", stderr(&out));
    assert!(stderr(&out).contains("730h"), "{}", stderr(&out));
    let out = hangar(&["cost", "examples/cluster", "--at", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("RFC 3339"), "{}", stderr(&out));
    let out = hangar(&["cost", "examples/cluster", "--output", "gpu.csv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("FORMAT=PATH"), "{}", stderr(&out));
    let out = hangar(&["cost", "examples/cluster", "--by", "cluster"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("namespace"), "{}", stderr(&out));
}

#[test]
fn the_help_teaches_the_model_and_the_policy_schema_has_prices() {
    let help = stdout(&hangar(&["cost", "--help"]));
    for expected in [
        "--by",
        "--period",
        "--at",
        "ACCRUED",
        "gpuPrices",
        "Examples:",
    ] {
        assert!(help.contains(expected), "{expected} missing from:\n{help}");
    }
    let schema = stdout(&hangar(&["policy", "schema"]));
    assert!(schema.contains("gpuPrices") && schema.contains("instanceTypes"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_cluster_is_costed_read_only() {
    let (nodes, ml, lab) = cluster_objects();
    let mut objects = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lab"}}),
    ];
    objects.extend(nodes);
    objects.extend(ml);
    objects.extend(lab);
    objects.extend(chat_deployment());
    let server = FakeApiServer::builder()
        .objects(objects)
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.write_kubeconfig(dir.path()).unwrap();
    let policy = policy(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_hangar"))
        .args(["cost", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--policy")
        .arg(&policy)
        .args(["--at", AT, "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json_of(&out);
    assert_eq!(report["basis"], "observed");
    assert!(report["source"].as_str().unwrap().starts_with("cluster"));
    assert!(close(
        &report["totals"]["allocated"]["hourly"],
        14.0 + 4.0 / 7.0 + 0.5
    ));
    assert!(server.requests().iter().all(|r| r.method == "GET"));
}

/// Shows the GPU bill of the cluster `HANGAR_TEST_KUBECONFIG` points at. Run with `--ignored`.
#[test]
#[ignore = "needs a real cluster: set HANGAR_TEST_KUBECONFIG"]
fn a_real_cluster_gets_a_showback() {
    let Some(kubeconfig) = std::env::var_os("HANGAR_TEST_KUBECONFIG") else {
        eprintln!("skipped: HANGAR_TEST_KUBECONFIG is not set");
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_hangar"))
        .args(["cost", "--kubeconfig"])
        .arg(kubeconfig)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 2)), "{}", stderr(&out));
    let report = json_of(&out);
    assert_eq!(report["schema"], "hangar.dev/cost-report/v1");
    assert_eq!(report["basis"], "observed");
}
