//! `hangar triage` end to end: from the bundled `cluster-info dump` of incidents, from the
//! single stream kubectl prints without `--output-directory`, from a saved bundle, and live from
//! the testkit's fake API server (Events and logs included).
#![allow(clippy::unwrap_used, clippy::panic)] // helpers of an integration test are not `#[test]` functions

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hangar_testkit::{FakeApiServer, FakeApiServerBuilder};
use serde_json::Value;

/// When the bundled incidents were captured (bench/gen_dump.py): a live triage judges recency
/// against this instead of the clock.
const INCIDENTS_TIME: &str = "2026-11-28T03:30:00Z";

fn incidents() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/incidents")
}

fn hangar(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hangar"))
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The category and side of each endpoint's verdict.
fn verdicts(report: &Value) -> BTreeMap<String, (String, String)> {
    report["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let v = &e["verdict"];
            (
                v["endpoint"].as_str().unwrap().to_owned(),
                (
                    v["category"].as_str().unwrap().to_owned(),
                    v["side"].as_str().unwrap_or("-").to_owned(),
                ),
            )
        })
        .collect()
}

/// What the bundled incidents are, by construction (see bench/gen_dump.py).
fn expected() -> BTreeMap<String, (String, String)> {
    [
        ("llama-70b", "gpu_oom", "configuration"),
        ("mistral-tgi", "host_oom", "configuration"),
        ("triton-ensemble", "probe", "configuration"),
        ("qwen-sglang", "scheduling", "configuration"),
        ("ollama-chat", "image_pull", "configuration"),
        ("mixtral", "gpu_hardware", "infrastructure"),
        ("bge-embeddings", "healthy", "-"),
        ("llama-guard", "model_load", "configuration"),
    ]
    .into_iter()
    .map(|(name, category, side)| {
        (
            format!("Deployment/ml-serving/{name}"),
            (category.to_owned(), side.to_owned()),
        )
    })
    .collect()
}

#[test]
fn the_bundled_incidents_get_their_verdicts() {
    let dir = incidents();
    let out = hangar(&[
        "triage",
        "--from",
        dir.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(report["schema"], "hangar.dev/triage-report/v1");
    assert_eq!(verdicts(&report), expected());
    // The flat list the issue asks for: every verdict names its endpoint, pod, evidence and steps.
    for verdict in report["verdicts"].as_array().unwrap() {
        for key in [
            "endpoint",
            "pod",
            "category",
            "confidence",
            "evidence",
            "next_steps",
        ] {
            assert!(verdict.get(key).is_some(), "{key} missing in {verdict}");
        }
    }
    // Evidence points into the dump, at the log line.
    let gpu_oom = report["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["category"] == "gpu_oom")
        .unwrap();
    let sources: Vec<&str> = gpu_oom["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["source"].as_str())
        .collect();
    assert!(
        sources.iter().any(|s| s.contains("logs.txt:")),
        "{sources:?}"
    );
}

#[test]
fn a_day_later_the_pods_still_failing_get_the_same_verdicts() {
    // Their Events are old by then, but the pods are still unschedulable, still waiting on the
    // pull, still crash-looping next to the Xid.
    let dir = incidents();
    let out = hangar(&[
        "triage",
        "--from",
        dir.to_str().unwrap(),
        "--at",
        "2026-11-29T12:00:00Z",
        "--format",
        "json",
    ]);
    assert_eq!(verdicts(&json(&out)), expected());
}

#[test]
fn the_gpu_oom_is_related_to_the_revision_that_raised_the_context_length() {
    let dir = incidents();
    let out = hangar(&[
        "triage",
        "llama-70b",
        "--from",
        dir.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let report = json(&out);
    let endpoints = report["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    let change = &endpoints[0]["change"];
    assert_eq!(change["closest"]["kind"], "config");
    let detail = change["closest"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("revision 4") && detail.contains("131072"),
        "{detail}"
    );
    // And the Xid endpoint points at the driver pod restarted on its node.
    let out = hangar(&[
        "triage",
        "mixtral",
        "--from",
        dir.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let report = json(&out);
    let closest = &report["endpoints"][0]["change"]["closest"];
    assert_eq!(closest["kind"], "driver");
    assert_eq!(closest["side"], "infrastructure");
}

#[test]
fn the_table_lists_the_sick_first_with_evidence_and_steps() {
    let dir = incidents();
    let out = hangar(&["triage", "--from", dir.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<&str> = text.lines().skip(2).take(8).collect();
    assert!(summary.last().unwrap().contains("healthy"), "{summary:?}");
    assert!(
        text.contains("Evidence:") && text.contains("Next steps:"),
        "{text}"
    );
    assert!(
        text.contains("--max-model-len` (now 131072)"),
        "vLLM steps quote the running value: {text}"
    );
}

#[test]
fn an_unknown_endpoint_is_an_error_that_lists_candidates() {
    let dir = incidents();
    let out = hangar(&["triage", "llama", "--from", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Deployment/ml-serving/llama-70b") && err.contains("llama-guard"),
        "{err}"
    );
}

/// A bound of 0 would keep no log, and the log is where a crash says why: refused, not read as 1.
#[test]
fn log_bounds_of_zero_are_refused() {
    let dir = incidents();
    for flag in ["--log-lines", "--log-bytes"] {
        let out = hangar(&["triage", "--from", dir.to_str().unwrap(), flag, "0"]);
        assert_eq!(out.status.code(), Some(2), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("invalid value '0' for '{flag}")) && err.contains("at least 1"),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
    let help = hangar(&["triage", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("at least 1"), "{help}");
}

#[test]
fn manifests_without_pods_say_so_instead_of_guessing() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cluster");
    let out = hangar(&[
        "triage",
        "--from",
        dir.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    let all = verdicts(&report);
    assert!(!all.is_empty());
    assert!(
        all.values().all(|(category, _)| category == "unknown"),
        "{all:?}"
    );
}

#[test]
fn a_crash_loop_no_rule_recognises_is_still_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump");
    std::fs::create_dir_all(dump.join("ml/vllm-0")).unwrap();
    std::fs::write(
        dump.join("ml/objects.yaml"),
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: vllm, namespace: ml}
spec:
  selector: {matchLabels: {app: vllm}}
  template:
    metadata: {labels: {app: vllm}}
    spec:
      containers: [{name: vllm, image: "vllm/vllm-openai:v0.10.1", args: [--model, m]}]
---
apiVersion: v1
kind: Pod
metadata:
  name: vllm-0
  namespace: ml
  labels: {app: vllm}
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: vllm, uid: u, controller: true}]
spec:
  containers: [{name: vllm, image: "vllm/vllm-openai:v0.10.1", args: [--model, m]}]
status:
  phase: Running
  containerStatuses:
    - name: vllm
      image: vllm/vllm-openai:v0.10.1
      imageID: ""
      ready: false
      restartCount: 7
      state: {waiting: {reason: CrashLoopBackOff}}
      lastState: {terminated: {reason: Error, exitCode: 1, startedAt: "2026-11-28T03:00:00Z", finishedAt: "2026-11-28T03:00:20Z"}}
"#,
    )
    .unwrap();
    std::fs::write(
        dump.join("ml/vllm-0/logs.txt"),
        "==== START logs for container vllm of pod ml/vllm-0 ====\nINFO starting\n==== END logs for container vllm of pod ml/vllm-0 ====\n",
    )
    .unwrap();
    let out = hangar(&[
        "triage",
        "--from",
        dump.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let report = json(&out);
    assert_eq!(
        verdicts(&report)["Deployment/ml/vllm"],
        ("unknown".to_owned(), "-".to_owned())
    );
    assert_eq!(report["endpoints"][0]["unhealthy_pods"], 1);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = hangar(&["triage", "--from", dump.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&text.stdout)
            .starts_with("1 endpoint(s) triaged: 1 need attention"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
}

/// The whole dump as kubectl prints it without `--output-directory`: JSON lists and log
/// sections in one stream.
fn single_stream(dir: &Path) -> String {
    let mut out = std::fs::read_to_string(dir.join("nodes.json")).unwrap();
    let mut namespaces: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    namespaces.sort();
    for ns in namespaces {
        for list in [
            "events",
            "replicationcontrollers",
            "services",
            "daemonsets",
            "deployments",
            "replicasets",
            "pods",
        ] {
            out.push_str(&std::fs::read_to_string(ns.join(format!("{list}.json"))).unwrap());
        }
        let mut pods: Vec<PathBuf> = std::fs::read_dir(&ns)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        pods.sort();
        for pod in pods {
            out.push_str(&std::fs::read_to_string(pod.join("logs.txt")).unwrap());
        }
    }
    out
}

#[test]
fn a_single_stream_dump_and_a_saved_bundle_give_the_same_verdicts() {
    let tmp = tempfile::tempdir().unwrap();
    let stream = tmp.path().join("cluster-info.dump");
    std::fs::write(&stream, single_stream(&incidents())).unwrap();
    let out = hangar(&[
        "triage",
        "--from",
        stream.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(
        verdicts(&json(&out)),
        expected(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bundle = tmp.path().join("bundle");
    let out = hangar(&[
        "triage",
        "--from",
        stream.to_str().unwrap(),
        "--save-bundle",
        bundle.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(bundle.join("hangar-bundle.json").is_file());
    let out = hangar(&[
        "triage",
        "--from",
        bundle.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(
        verdicts(&json(&out)),
        expected(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let (path, target) = (entry.path(), to.join(entry.file_name()));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// `namespace/pod`'s `logs.txt` in `dump` as kubectl writes it when it gets no log of
/// `container`: its section holds only kubectl's `Request log error: ANSWER`.
fn kubectl_got_no_log(dump: &Path, namespace: &str, pod: &str, container: &str, answer: &str) {
    let dir = dump.join(namespace).join(pod);
    std::fs::create_dir_all(&dir).unwrap();
    let of = format!("{container} of pod {namespace}/{pod} ====");
    std::fs::write(
        dir.join("logs.txt"),
        format!("==== START logs for container {of}\nRequest log error: {answer}\n==== END logs for container {of}\n"),
    )
    .unwrap();
}

/// The pod of bge-embeddings, which serves no other endpoint.
const BGE_POD: &str = "bge-embeddings-7c9d5f4b8-jdmxp";

/// The incidents dump copied into `dir`, with logs kubectl did not get: ollama-chat's pod's, which
/// has none yet, and bge-embeddings' pod's and the GPU driver's, whose kubelets do not answer.
fn dump_with_logs_not_read(dir: &Path) -> PathBuf {
    let dump = dir.join("dump");
    copy_dir(&incidents(), &dump);
    // The image cannot be pulled: the container has no log yet, which is no gap.
    kubectl_got_no_log(
        &dump,
        "ml-serving",
        "ollama-chat-7c9d5f4b8-wwxdk",
        "ollama",
        r#"container "ollama" in pod "ollama-chat-7c9d5f4b8-wwxdk" is waiting to start: trying and failing to pull image"#,
    );
    // Two kubelets do not answer: one an endpoint's pod's, one the GPU driver's, which serves
    // no endpoint.
    let unreachable = |ip: &str, path: &str| {
        format!(
            "Get \"https://{ip}:10250/containerLogs/{path}\": dial tcp {ip}:10250: connect: no route to host"
        )
    };
    kubectl_got_no_log(
        &dump,
        "ml-serving",
        BGE_POD,
        "tei",
        &unreachable("10.0.0.7", &format!("ml-serving/{BGE_POD}/tei")),
    );
    let driver = "nvidia-driver-daemonset-h7x2k";
    kubectl_got_no_log(
        &dump,
        "gpu-operator",
        driver,
        "nvidia-driver-ctr",
        &unreachable(
            "10.0.0.9",
            &format!("gpu-operator/{driver}/nvidia-driver-ctr"),
        ),
    );
    dump
}

/// `hangar triage --from FROM --format json ARGS`, and the gaps its report lists, as
/// `kind: reason`.
fn triage_from(from: &Path, args: &[&str]) -> (Output, Vec<String>) {
    let mut all = vec![
        "triage",
        "--from",
        from.to_str().unwrap(),
        "--format",
        "json",
    ];
    all.extend(args);
    let out = hangar(&all);
    let gaps: Vec<String> = json(&out)["not_covered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|gap| {
            format!(
                "{}: {}",
                gap["kind"].as_str().unwrap(),
                gap["reason"].as_str().unwrap()
            )
        })
        .collect();
    (out, gaps)
}

/// Whether `gap` is the one of bge-embeddings' pod's log, which kubectl could not read.
fn is_bge_gap(gap: &str) -> bool {
    gap.starts_with(&format!(
        "pods/log: kubectl could not read the log of ml-serving/{BGE_POD} container tei ("
    ))
}

#[test]
fn a_dump_counts_only_the_unread_logs_of_the_endpoints_triaged() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = dump_with_logs_not_read(tmp.path());
    let triage = |args: &[&str]| triage_from(&dump, args);

    // Every endpoint: the one endpoint pod whose log was not read is the gap, alone.
    let (out, gaps) = triage(&[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(verdicts(&json(&out)), expected());
    let [gap] = gaps.as_slice() else {
        panic!("{gaps:?}");
    };
    assert!(is_bge_gap(gap), "{gap}");

    // Another endpoint's pods' logs are not this one's gap.
    let (out, gaps) = triage(&["ollama-chat"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(gaps.is_empty(), "{gaps:?}");
    assert_eq!(
        verdicts(&json(&out))["Deployment/ml-serving/ollama-chat"].0,
        "image_pull"
    );

    // Its own are.
    let (out, gaps) = triage(&["bge-embeddings"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(gaps.len(), 1, "{gaps:?}");
}

#[test]
fn a_bundle_saved_for_one_endpoint_still_counts_the_unread_logs_of_another() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = dump_with_logs_not_read(tmp.path());
    let bundle = tmp.path().join("bundle");
    let bundle_arg = bundle.to_str().unwrap();

    // Saved while triaging ollama-chat, whose pod's log is no gap.
    let (out, gaps) = triage_from(&dump, &["ollama-chat", "--save-bundle", bundle_arg]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(gaps.is_empty(), "{gaps:?}");
    // bge-embeddings from that bundle: its pod's log was not read, and the triage says so.
    let (out, gaps) = triage_from(&bundle, &["bge-embeddings"]);
    assert_eq!(out.status.code(), Some(2));
    let [gap] = gaps.as_slice() else {
        panic!("{gaps:?}");
    };
    assert!(is_bge_gap(gap), "{gap}");
    let (out, gaps) = triage_from(&bundle, &["ollama-chat"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(gaps.is_empty(), "{gaps:?}");

    // Saved while triaging bge-embeddings, whose gap that triage counted: read back, it is
    // counted once, and still for bge-embeddings alone.
    let (_, gaps) = triage_from(&dump, &["bge-embeddings", "--save-bundle", bundle_arg]);
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    let endpoints: [(&[&str], usize); 3] =
        [(&["bge-embeddings"], 1), (&[], 1), (&["ollama-chat"], 0)];
    for (endpoint, expected) in endpoints {
        let (_, gaps) = triage_from(&bundle, endpoint);
        assert_eq!(gaps.len(), expected, "{endpoint:?}: {gaps:?}");
        assert!(gaps.iter().all(|gap| is_bge_gap(gap)), "{gaps:?}");
    }
}

/// Every object of the incidents dump, as the fake API server holds them.
fn incident_objects() -> Vec<Value> {
    let mut objects = Vec::new();
    let mut files = vec![incidents().join("nodes.json")];
    for ns in ["ml-serving", "gpu-operator"] {
        for list in ["events", "services", "deployments", "replicasets", "pods"] {
            files.push(incidents().join(ns).join(format!("{list}.json")));
        }
    }
    for file in files {
        let list: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let kind = list["kind"]
            .as_str()
            .unwrap()
            .trim_end_matches("List")
            .to_owned();
        let api_version = list["apiVersion"].as_str().unwrap().to_owned();
        for mut item in list["items"].as_array().unwrap().clone() {
            item["kind"] = Value::String(kind.clone());
            if item.get("apiVersion").is_none() {
                item["apiVersion"] = Value::String(api_version.clone());
            }
            objects.push(item);
        }
    }
    objects
}

/// `hangar triage -n ml-serving --format json` against `server`, judged as of the incidents'
/// capture time.
async fn triage_live(server: &FakeApiServer) -> Output {
    triage_live_with(server, &["-n", "ml-serving"]).await
}

/// `hangar triage ARGS --format json` against `server`, judged as of the incidents' capture
/// time.
async fn triage_live_with(server: &FakeApiServer, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.write_kubeconfig(dir.path()).unwrap();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut all = vec!["triage", "--kubeconfig", kubeconfig.to_str().unwrap()];
        all.extend(args.iter().map(String::as_str));
        all.extend(["--at", INCIDENTS_TIME, "--format", "json"]);
        hangar(&all)
    })
    .await
    .unwrap()
}

/// The incidents as a live cluster: their objects, and the logs the dump holds as the pods'
/// current logs and, the crashed containers' last words, as their previous logs, as the kubelet
/// keeps them.
fn incident_cluster() -> FakeApiServerBuilder {
    let mut builder = FakeApiServer::builder().objects(incident_objects());
    let (_, logs, _) = hangar_kube::triage_files::split_dump(
        &single_stream(&incidents()),
        "x",
        hangar_kube::live::LogBounds::default(),
    );
    for ((ns, pod, container), tail) in &logs.current {
        let text = tail.lines.join("\n");
        builder = builder
            .log(ns, pod, container, false, &text)
            .log(ns, pod, container, true, &text);
    }
    builder
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_triage_reads_events_and_log_tails_and_only_reads() {
    let server = incident_cluster().start().await.unwrap();
    let out = triage_live(&server).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(verdicts(&report), expected());
    // Only ml-serving is read, and the GPU driver's pods wherever they run: the Xid endpoint
    // points at the driver pod restarted on its node in gpu-operator, as from the dump.
    let closest = &change(&report, "mixtral")["closest"];
    assert_eq!(closest["kind"], "driver", "{closest}");
    assert!(
        (closest["detail"].as_str().unwrap()).contains("nvidia-driver-daemonset-h7x2k"),
        "{closest}"
    );

    let requests = server.requests();
    assert!(requests.iter().all(|r| r.method == "GET"));
    assert!(
        requests
            .iter()
            .any(|r| r.path == "/api/v1/namespaces/ml-serving/events"),
        "events are listed"
    );
    // Beyond ml-serving, only the pods a GPU driver label selects.
    let cluster_wide: Vec<_> = (requests.iter())
        .filter(|r| r.path == "/api/v1/pods")
        .collect();
    assert!(!cluster_wide.is_empty());
    assert!(
        (cluster_wide.iter()).all(|r| r.query_param("labelSelector").is_some()),
        "{cluster_wide:?}"
    );
    let logs: Vec<_> = requests
        .iter()
        .filter(|r| r.path.ends_with("/log"))
        .collect();
    assert!(!logs.is_empty());
    assert!(
        logs.iter()
            .all(|r| r.query_param("tailLines") == Some("300"))
    );
    // tailLines with a generous byte cap: the server cuts from the window's start, so a tight
    // cap would lose the crash at its end; the tail is trimmed to 64 KiB on our side.
    assert!(
        logs.iter()
            .all(|r| r.query_param("limitBytes") == Some("262144"))
    );
    // Previous logs are asked for only where a container restarted (the healthy TEI pod never).
    assert!(
        logs.iter()
            .any(|r| r.query_param("previous") == Some("true"))
    );
    assert!(
        !logs
            .iter()
            .any(|r| r.path.contains("bge-embeddings") && r.query_param("previous") == Some("true"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_named_endpoint_reads_only_its_own_pods_logs() {
    // Two other endpoints' logs cannot be read: one's node does not answer, RBAC refuses the other.
    let server = incident_cluster()
        .fail_log("ml-serving", "mistral-tgi-7c9d5f4b8-fvktd", 502)
        .fail_log("ml-serving", "mixtral-7c9d5f4b8-fvdtd", 403)
        .start()
        .await
        .unwrap();
    // Without -n the whole cluster is read, but only llama-70b's logs.
    let out = triage_live_with(&server, &["llama-70b"]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(report["not_covered"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        verdicts(&report)["Deployment/ml-serving/llama-70b"].0,
        "gpu_oom"
    );
    let logs_read: std::collections::BTreeSet<String> = (server.requests().into_iter())
        .filter(|r| r.path.ends_with("/log"))
        .map(|r| r.path)
        .collect();
    assert_eq!(
        logs_read.into_iter().collect::<Vec<_>>(),
        ["/api/v1/namespaces/ml-serving/pods/llama-70b-7c9d5f4b8-vwcjf/log"]
    );

    // Every endpoint: one gap, naming each pod whose logs were not read.
    let out = triage_live(&server).await;
    assert_eq!(out.status.code(), Some(2));
    let report = json(&out);
    let gaps = report["not_covered"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0]["kind"], "pods/log");
    let reason = gaps[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(
            "the logs of 2 pods were not read: ml-serving/mistral-tgi-7c9d5f4b8-fvktd, \
             ml-serving/mixtral-7c9d5f4b8-fvdtd; the first: "
        ),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_logs_make_the_triage_incomplete_but_still_give_verdicts() {
    let server = FakeApiServer::builder()
        .objects(incident_objects())
        .forbid("pods/log")
        .start()
        .await
        .unwrap();
    let out = triage_live(&server).await;
    assert_eq!(out.status.code(), Some(2));
    let report = json(&out);
    assert_eq!(report["not_covered"][0]["kind"], "pods/log");
    let all = verdicts(&report);
    // Status and events alone still tell host OOM, scheduling and image pulls.
    assert_eq!(all["Deployment/ml-serving/mistral-tgi"].0, "host_oom");
    assert_eq!(all["Deployment/ml-serving/qwen-sglang"].0, "scheduling");
    assert_eq!(all["Deployment/ml-serving/ollama-chat"].0, "image_pull");
}

#[tokio::test(flavor = "multi_thread")]
async fn driver_pods_a_role_in_the_namespace_cannot_read_are_a_gap_and_triage_goes_on() {
    let server = incident_cluster()
        .confine("pods", "ml-serving")
        .start()
        .await
        .unwrap();
    let out = triage_live(&server).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    let gaps = report["not_covered"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0]["kind"], "Pod (GPU driver, in every namespace)");
    let reason = gaps[0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("forbidden (403)"), "{reason}");
    // The verdicts still come, the Xid one standing on the node's own event; no driver change
    // can be named.
    assert_eq!(verdicts(&report), expected());
    assert_ne!(change(&report, "mixtral")["closest"]["kind"], "driver");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not covered: Pod (GPU driver, in every namespace): forbidden (403)"),
        "{stderr}"
    );
}

/// The change report of endpoint `Deployment/ml-serving/NAME` in a JSON triage report.
fn change<'r>(report: &'r Value, name: &str) -> &'r Value {
    let id = format!("Deployment/ml-serving/{name}");
    let endpoints = report["endpoints"].as_array().unwrap();
    let endpoint = (endpoints.iter())
        .find(|e| e["verdict"]["endpoint"] == id.as_str())
        .unwrap_or_else(|| panic!("no endpoint {id} in {report}"));
    &endpoint["change"]
}

/// Triages the cluster `HANGAR_TEST_KUBECONFIG` points at. Run with `--ignored`.
#[test]
#[ignore = "needs a real cluster: set HANGAR_TEST_KUBECONFIG"]
fn a_real_cluster_triages() {
    let Some(kubeconfig) = std::env::var_os("HANGAR_TEST_KUBECONFIG") else {
        eprintln!("skipped: HANGAR_TEST_KUBECONFIG is not set");
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_hangar"))
        .arg("triage")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("no inference endpoint found") {
        eprintln!("the cluster runs no inference endpoint: nothing to triage");
        return;
    }
    assert!(matches!(out.status.code(), Some(0..=2)), "{stderr}");
    let report = json(&out);
    assert_eq!(report["schema"], "hangar.dev/triage-report/v1");
}
