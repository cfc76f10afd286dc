//! The live loader against a fake API server on loopback: given objects in a cluster, when
//! scanned, then the snapshot holds them, gaps are named, and nothing was written.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions should fail loudly too"
)]

use std::path::PathBuf;

use hangar_core::{KubeObject, Snapshot};
use hangar_kube::live::{
    LiveError, LiveOptions, LogBounds, LogRequest, Progress, load_live, load_live_with_logs,
    save_snapshot,
};
use hangar_testkit::fake_api::closed_port_url;
use hangar_testkit::{CustomResource, FakeApiServer, FakeApiServerBuilder, objects};
use serde_json::json;

/// A scan of `server` through a kubeconfig file, with the progress it reported.
async fn scan(server: &FakeApiServer, namespace: Option<&str>) -> (Snapshot, Vec<Progress>) {
    let dir = tempfile::tempdir().unwrap();
    let options = LiveOptions {
        kubeconfig: Some(server.write_kubeconfig(dir.path()).unwrap()),
        context: None,
        namespace: namespace.map(str::to_owned),
        events: false,
    };
    let mut progress = Vec::new();
    let snapshot = load_live(&options, &mut |p| progress.push(p))
        .await
        .unwrap();
    assert_read_only(server);
    (snapshot, progress)
}

fn assert_read_only(server: &FakeApiServer) {
    let requests = server.requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(request.method, "GET", "{request:?}");
    }
}

fn a_small_inference_cluster() -> FakeApiServerBuilder {
    FakeApiServer::builder()
        .objects([
            objects::namespace("default"),
            objects::namespace("ml"),
            objects::node("gpu-1"),
            objects::cluster_role("reader"),
            objects::pod("ml", "llama-0", "vllm/vllm-openai:v0.6.0"),
            objects::service("ml", "llama"),
            objects::deployment("ml", "llama", "vllm/vllm-openai:v0.6.0"),
            objects::secret("ml", "hf-token"),
            objects::inference_service("ml", "llama", "hf://meta-llama/Llama-3.1-8B"),
        ])
        // KServe serves InferenceService at v1beta1 (preferred) but ServingRuntime only at
        // v1alpha1.
        .custom_resource(CustomResource::new(
            "serving.kserve.io",
            "v1alpha1",
            "ServingRuntime",
            "servingruntimes",
            true,
        ))
        .object(json!({
            "apiVersion": "serving.kserve.io/v1alpha1",
            "kind": "ServingRuntime",
            "metadata": {"name": "vllm", "namespace": "ml"},
            "spec": {"containers": [{"name": "kserve-container", "image": "vllm/vllm-openai:v0.6.0"}]}
        }))
        // A custom resource Hangar does not read.
        .object(json!({
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w", "namespace": "ml"}
        }))
}

fn kinds_of_others(snapshot: &Snapshot) -> Vec<String> {
    let mut kinds: Vec<String> = snapshot
        .others
        .iter()
        .map(|o| format!("{}.{}", o.object.kind, o.object.group()))
        .collect();
    kinds.sort();
    kinds
}

#[tokio::test]
async fn core_kinds_and_discovered_inference_resources_are_loaded() {
    let server = a_small_inference_cluster().start().await.unwrap();
    let (snapshot, _) = scan(&server, None).await;

    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    assert!(
        snapshot.not_covered.is_empty(),
        "{:?}",
        snapshot.not_covered
    );
    assert_eq!(snapshot.namespaces.len(), 2);
    assert_eq!(snapshot.nodes.len(), 1);
    assert_eq!(snapshot.cluster_roles.len(), 1);
    assert_eq!(snapshot.pods.len(), 1);
    assert_eq!(snapshot.services.len(), 1);
    assert_eq!(snapshot.deployments.len(), 1);
    assert_eq!(
        kinds_of_others(&snapshot),
        [
            "InferenceService.serving.kserve.io",
            "ServingRuntime.serving.kserve.io"
        ]
    );
    let isvc = snapshot
        .others
        .iter()
        .find(|o| o.object.kind == "InferenceService")
        .unwrap();
    assert_eq!(isvc.object.api_version, "serving.kserve.io/v1beta1");
    assert_eq!(isvc.object_ref().to_string(), "InferenceService/ml/llama");
    assert_eq!(
        isvc.object.str_at("spec.predictor.model.storageUri"),
        Some("hf://meta-llama/Llama-3.1-8B")
    );
    assert_eq!(isvc.origin.to_string(), "cluster");
    assert_eq!(snapshot.pods[0].object.namespace(), "ml");
}

#[tokio::test]
async fn secret_values_never_travel() {
    let server = a_small_inference_cluster().start().await.unwrap();
    let (snapshot, _) = scan(&server, None).await;

    let secret = &snapshot.secrets[0].object;
    assert_eq!(secret.name(), "hf-token");
    assert!(secret.data.is_none() && secret.string_data.is_none());
    assert!(
        secret
            .annotation("kubectl.kubernetes.io/last-applied-configuration")
            .is_none()
    );
    let secret_lists: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/secrets"))
        .collect();
    assert_eq!(secret_lists.len(), 1);
    assert!(secret_lists[0].is_metadata_only(), "{secret_lists:?}");
}

#[tokio::test]
async fn a_forbidden_kind_is_not_covered_and_the_rest_still_loads() {
    let server = a_small_inference_cluster()
        .forbid("secrets")
        .forbid("inferenceservices.serving.kserve.io")
        .start()
        .await
        .unwrap();
    let (snapshot, _) = scan(&server, None).await;

    let gaps: Vec<&str> = snapshot
        .not_covered
        .iter()
        .map(|n| n.kind.as_str())
        .collect();
    assert_eq!(gaps, ["Secret", "InferenceService.serving.kserve.io"]);
    assert!(
        snapshot.not_covered[0]
            .reason
            .starts_with("forbidden (403)"),
        "{}",
        snapshot.not_covered[0].reason
    );
    assert!(
        snapshot.not_covered[0]
            .reason
            .contains("cannot list resource \"secrets\"")
    );
    assert!(snapshot.secrets.is_empty());
    assert_eq!(snapshot.pods.len(), 1);
    assert_eq!(
        kinds_of_others(&snapshot),
        ["ServingRuntime.serving.kserve.io"]
    );
}

#[tokio::test]
async fn a_failing_kind_is_not_covered_with_the_servers_answer() {
    let server = a_small_inference_cluster()
        .fail("pods", 500)
        .start()
        .await
        .unwrap();
    let (snapshot, _) = scan(&server, None).await;

    assert_eq!(snapshot.not_covered.len(), 1);
    assert_eq!(snapshot.not_covered[0].kind, "Pod");
    assert!(
        snapshot.not_covered[0]
            .reason
            .starts_with("the API server answered 500"),
        "{}",
        snapshot.not_covered[0].reason
    );
    assert_eq!(snapshot.deployments.len(), 1);
}

#[tokio::test]
async fn lists_are_read_page_by_page() {
    let pods = (0..1201).map(|i| objects::pod("ml", &format!("worker-{i:04}"), "busybox"));
    let server = FakeApiServer::builder()
        .objects(pods)
        .start()
        .await
        .unwrap();
    let (snapshot, progress) = scan(&server, None).await;

    assert_eq!(snapshot.pods.len(), 1201);
    let mut names: Vec<&str> = snapshot.pods.iter().map(|p| p.object.name()).collect();
    names.dedup();
    assert_eq!(names.len(), 1201, "no page read twice");
    let pod_lists: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/pods")
        .collect();
    assert_eq!(pod_lists.len(), 3);
    assert_eq!(pod_lists[0].query_param("continue"), None);
    assert_eq!(pod_lists[1].query_param("continue"), Some("offset=500"));
    assert!(
        pod_lists
            .iter()
            .all(|r| r.query_param("limit") == Some("500"))
    );
    let pod_progress: Vec<usize> = progress
        .iter()
        .filter(|p| p.kind == "Pod")
        .map(|p| p.listed)
        .collect();
    assert_eq!(pod_progress, [0, 500, 1000, 1201]);
    let last = progress.last().unwrap();
    assert_eq!((last.step, last.total), (last.steps, 1201));
}

/// 1201 pods, read in three pages, whose continue tokens the server answers as expired the
/// first `times` times.
async fn pods_whose_continue_tokens_expire(times: usize) -> FakeApiServer {
    let pods = (0..1201).map(|i| objects::pod("ml", &format!("worker-{i:04}"), "busybox"));
    FakeApiServer::builder()
        .objects(pods)
        .expire_continue_tokens("pods", times)
        .start()
        .await
        .unwrap()
}

fn pod_names(snapshot: &Snapshot) -> Vec<&str> {
    let mut names: Vec<&str> = snapshot.pods.iter().map(|p| p.object.name()).collect();
    names.sort_unstable();
    names
}

#[tokio::test]
async fn an_expired_continue_token_lists_the_kind_again_from_the_start_once() {
    // etcd compacted the revision the listing started at while it was being paged through.
    let server = pods_whose_continue_tokens_expire(1).await;
    let (snapshot, progress) = scan(&server, None).await;

    assert!(
        snapshot.not_covered.is_empty(),
        "{:?}",
        snapshot.not_covered
    );
    let mut names = pod_names(&snapshot);
    assert_eq!(names.len(), 1201);
    names.dedup();
    assert_eq!(
        names.len(),
        1201,
        "the first page of the abandoned pass is not kept twice"
    );
    let continues: Vec<Option<String>> = (server.requests().into_iter())
        .filter(|r| r.path == "/api/v1/pods")
        .map(|r| r.query_param("continue").map(str::to_owned))
        .collect();
    let token = |offset: &str| Some(format!("offset={offset}"));
    assert_eq!(
        continues,
        [None, token("500"), None, token("500"), token("1000")]
    );
    let last = progress.last().unwrap();
    assert_eq!(last.total, 1201, "the abandoned page is not counted");

    // Expired again: the kind is not covered, with what the second pass brought.
    let server = pods_whose_continue_tokens_expire(2).await;
    let (snapshot, _) = scan(&server, None).await;
    let mut names = pod_names(&snapshot);
    names.dedup();
    assert_eq!(names.len(), 500);
    let [gap] = snapshot.not_covered.as_slice() else {
        panic!("{:?}", snapshot.not_covered);
    };
    assert_eq!(gap.kind, "Pod");
    assert!(
        gap.reason
            .starts_with("listing stopped after 500 objects: the API server answered 410: "),
        "{}",
        gap.reason
    );
    let lists = (server.requests().iter())
        .filter(|r| r.path == "/api/v1/pods")
        .count();
    assert_eq!(lists, 4, "listed again once, not more");
}

#[tokio::test]
async fn an_object_that_does_not_decode_is_named_with_its_field_and_the_rest_loads() {
    let mut broken = objects::pod("ml", "broken", "vllm/vllm-openai:v0.6.0");
    broken["spec"]["containers"][0]["ports"] = json!([{"containerPort": "http"}]);
    let server = FakeApiServer::builder()
        .objects([
            objects::pod("ml", "before", "busybox"),
            broken,
            objects::pod("ml", "after", "busybox"),
        ])
        .start()
        .await
        .unwrap();
    let (snapshot, _) = scan(&server, None).await;

    let mut names: Vec<&str> = snapshot.pods.iter().map(|p| p.object.name()).collect();
    names.sort_unstable();
    assert_eq!(names, ["after", "before"]);
    let [error] = snapshot.errors.as_slice() else {
        panic!("{:?}", snapshot.errors);
    };
    assert_eq!(error.object.as_deref(), Some("Pod ml/broken"));
    assert!(
        error
            .message
            .starts_with("Pod: `spec.containers[0].ports[0].containerPort`: invalid type"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn a_namespace_limits_namespaced_kinds_but_not_cluster_scoped_ones() {
    let server = FakeApiServer::builder()
        .objects([
            objects::namespace("a"),
            objects::namespace("b"),
            objects::node("n1"),
            objects::cluster_role("reader"),
            objects::pod("a", "in-a", "busybox"),
            objects::pod("b", "in-b", "busybox"),
            objects::inference_service("a", "model-a", "s3://a"),
            objects::inference_service("b", "model-b", "s3://b"),
        ])
        .start()
        .await
        .unwrap();
    let (snapshot, _) = scan(&server, Some("a")).await;

    assert_eq!(snapshot.pods.len(), 1);
    assert_eq!(snapshot.pods[0].object.name(), "in-a");
    assert_eq!(snapshot.others.len(), 1);
    assert_eq!(snapshot.others[0].object.name(), "model-a");
    assert_eq!(snapshot.namespaces.len(), 2);
    assert_eq!(snapshot.nodes.len(), 1);
    assert_eq!(snapshot.cluster_roles.len(), 1);
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths.contains(&"/api/v1/namespaces/a/pods".to_owned()),
        "{paths:?}"
    );
    assert!(paths.contains(&"/api/v1/nodes".to_owned()));
    assert!(!paths.contains(&"/api/v1/pods".to_owned()));
}

#[tokio::test]
async fn a_namespace_the_cluster_does_not_have_makes_the_scan_incomplete() {
    let server = a_small_inference_cluster().start().await.unwrap();
    // An API server lists every kind of a missing namespace as empty, without an error.
    let (snapshot, _) = scan(&server, Some("ml-servng")).await;
    assert!(snapshot.pods.is_empty());
    let messages: Vec<String> = (snapshot.errors.iter())
        .map(|e| format!("{}: {}", e.origin, e.message))
        .collect();
    assert_eq!(
        messages,
        ["cluster: namespace ml-servng does not exist in context fake"]
    );

    let (snapshot, _) = scan(&server, Some("ml")).await;
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);

    // Without the Namespaces, whether it exists is unknown: that gap is all there is to say.
    let server = a_small_inference_cluster()
        .forbid("namespaces")
        .start()
        .await
        .unwrap();
    let (snapshot, _) = scan(&server, Some("ml-servng")).await;
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    let gaps: Vec<&str> = (snapshot.not_covered.iter())
        .map(|n| n.kind.as_str())
        .collect();
    assert_eq!(gaps, ["Namespace"]);
}

/// A triage's reading of `server` with `-n namespace` (Events, no logs asked for), with the
/// progress it reported.
async fn triage_scan(server: &FakeApiServer, namespace: &str) -> (Snapshot, Vec<Progress>) {
    let dir = tempfile::tempdir().unwrap();
    let options = LiveOptions {
        kubeconfig: Some(server.write_kubeconfig(dir.path()).unwrap()),
        context: None,
        namespace: Some(namespace.to_owned()),
        events: true,
    };
    let mut progress = Vec::new();
    let no_logs = |_: &Snapshot| Vec::<LogRequest>::new();
    let (snapshot, _) = load_live_with_logs(
        &options,
        &mut |p| progress.push(p),
        &no_logs,
        LogBounds::default(),
    )
    .await
    .unwrap();
    assert_read_only(server);
    (snapshot, progress)
}

/// A pod of the NVIDIA GPU operator, with the labels its release gives it.
fn gpu_operator_pod(namespace: &str, name: &str, labels: serde_json::Value) -> serde_json::Value {
    let mut pod = objects::pod(namespace, name, "nvcr.io/nvidia/driver:550.127.05");
    pod["metadata"]["labels"] = labels;
    pod
}

/// An endpoint in `ml`, the GPU operator's pods in their own namespaces, and another team's pod.
fn a_cluster_with_a_gpu_operator() -> FakeApiServerBuilder {
    FakeApiServer::builder().objects([
        objects::namespace("ml"),
        objects::namespace("gpu-operator"),
        objects::pod("ml", "llama-0", "vllm/vllm-openai:v0.6.0"),
        // Labelled by an older operator, by a newer one, and for an `NVIDIADriver` resource.
        gpu_operator_pod(
            "gpu-operator",
            "nvidia-driver-daemonset-a1",
            json!({"app": "nvidia-driver-daemonset"}),
        ),
        gpu_operator_pod(
            "gpu-operator",
            "nvidia-driver-daemonset-b2",
            json!({"app": "nvidia-driver-daemonset", "app.kubernetes.io/component": "nvidia-driver"}),
        ),
        gpu_operator_pod(
            "nvidia-gpu-operator",
            "nvidia-gpu-driver-ubuntu22.04-c3",
            json!({"app": "nvidia-gpu-driver-ubuntu22.04", "app.kubernetes.io/component": "nvidia-driver"}),
        ),
        // Not the driver.
        gpu_operator_pod(
            "gpu-operator",
            "nvidia-device-plugin-daemonset-d4",
            json!({"app": "nvidia-device-plugin-daemonset"}),
        ),
        objects::pod("web", "frontend-0", "nginx"),
    ])
}

#[tokio::test]
async fn a_triage_of_one_namespace_also_reads_the_gpu_driver_pods_of_the_others() {
    let server = a_cluster_with_a_gpu_operator().start().await.unwrap();
    let (snapshot, progress) = triage_scan(&server, "ml").await;

    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    assert!(
        snapshot.not_covered.is_empty(),
        "{:?}",
        snapshot.not_covered
    );
    // Each driver pod once, though the newer ones carry both labels.
    assert_eq!(
        pod_names(&snapshot),
        [
            "llama-0",
            "nvidia-driver-daemonset-a1",
            "nvidia-driver-daemonset-b2",
            "nvidia-gpu-driver-ubuntu22.04-c3"
        ]
    );
    // Cluster-wide, only pods a driver label selects are asked for.
    let selectors: Vec<Option<String>> = (server.requests().into_iter())
        .filter(|r| r.path == "/api/v1/pods")
        .map(|r| r.query_param("labelSelector").map(str::to_owned))
        .collect();
    assert_eq!(
        selectors,
        [
            Some("app=nvidia-driver-daemonset".to_owned()),
            Some("app.kubernetes.io/component=nvidia-driver".to_owned())
        ]
    );
    let last = progress.last().unwrap();
    assert_eq!((last.kind.as_str(), last.step), ("Pod", last.steps));
    assert_eq!(last.total, snapshot.object_count());

    // A driver pod that cannot be read, in another namespace, carrying both labels, is named
    // once.
    let mut broken = gpu_operator_pod(
        "gpu-operator",
        "nvidia-driver-daemonset-e5",
        json!({"app": "nvidia-driver-daemonset", "app.kubernetes.io/component": "nvidia-driver"}),
    );
    broken["spec"]["containers"][0]["ports"] = json!([{"containerPort": "http"}]);
    let with_broken = a_cluster_with_a_gpu_operator()
        .objects([broken])
        .start()
        .await
        .unwrap();
    let (snapshot, _) = triage_scan(&with_broken, "ml").await;
    assert_eq!(snapshot.errors.len(), 1, "{:?}", snapshot.errors);
    // In the namespace triaged, once too.
    let (snapshot, _) = triage_scan(&with_broken, "gpu-operator").await;
    assert_eq!(snapshot.errors.len(), 1, "{:?}", snapshot.errors);

    // The namespace's own driver pods are listed once.
    let (snapshot, _) = triage_scan(&server, "gpu-operator").await;
    assert_eq!(
        pod_names(&snapshot),
        [
            "nvidia-device-plugin-daemonset-d4",
            "nvidia-driver-daemonset-a1",
            "nvidia-driver-daemonset-b2",
            "nvidia-gpu-driver-ubuntu22.04-c3"
        ]
    );

    // An audit of the namespace reads its pods alone.
    let (snapshot, _) = scan(&server, Some("ml")).await;
    assert_eq!(pod_names(&snapshot), ["llama-0"]);
}

#[tokio::test]
async fn driver_pods_a_role_in_the_namespace_cannot_read_are_a_gap_and_the_rest_is_read() {
    let server = a_cluster_with_a_gpu_operator()
        .confine("pods", "ml")
        .start()
        .await
        .unwrap();
    let (snapshot, _) = triage_scan(&server, "ml").await;

    assert_eq!(pod_names(&snapshot), ["llama-0"]);
    assert_eq!(snapshot.namespaces.len(), 2);
    let gaps: Vec<(&str, &str)> = (snapshot.not_covered.iter())
        .map(|n| (n.kind.as_str(), n.reason.as_str()))
        .collect();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0].0, "Pod (GPU driver, in every namespace)");
    assert!(
        gaps[0].1.starts_with("forbidden (403)") && gaps[0].1.contains("at the cluster scope"),
        "{}",
        gaps[0].1
    );
    // Refused once: the other label is not asked for.
    let cluster_wide = (server.requests().iter())
        .filter(|r| r.path == "/api/v1/pods")
        .count();
    assert_eq!(cluster_wide, 1);
}

#[tokio::test]
async fn the_scan_only_reads() {
    let server = a_small_inference_cluster()
        .forbid("secrets")
        .start()
        .await
        .unwrap();
    let _ = scan(&server, Some("ml")).await;
    let requests = server.requests();
    assert!(requests.iter().all(|r| r.method == "GET"));
    assert!(requests.iter().any(|r| r.path == "/apis"), "discovery ran");
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_naming_its_url() {
    let url = closed_port_url().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = LiveOptions {
        kubeconfig: Some(hangar_testkit::fake_api::write_kubeconfig(dir.path(), &url).unwrap()),
        ..LiveOptions::default()
    };
    let error = load_live(&options, &mut |_| {}).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, LiveError::Unreachable { .. }), "{error:?}");
    assert!(
        message.starts_with(&format!("cannot reach the API server at {url}: ")),
        "{message}"
    );
    assert!(message.contains("refused"), "{message}");
}

#[tokio::test]
async fn rejected_credentials_are_one_error_naming_the_server() {
    let server = FakeApiServer::builder()
        .reject_credentials()
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = LiveOptions {
        kubeconfig: Some(server.write_kubeconfig(dir.path()).unwrap()),
        ..LiveOptions::default()
    };
    let error = load_live(&options, &mut |_| {}).await.unwrap_err();
    assert!(matches!(error, LiveError::Unauthorized { .. }), "{error:?}");
    assert!(error.to_string().contains(&server.url()), "{error}");
    assert_eq!(server.requests().len(), 1, "stops at the first answer");
}

#[tokio::test]
async fn a_missing_kubeconfig_is_an_error_naming_the_file() {
    let options = LiveOptions {
        kubeconfig: Some(PathBuf::from("/nonexistent/kubeconfig")),
        ..LiveOptions::default()
    };
    let error = load_live(&options, &mut |_| {}).await.unwrap_err();
    // Named once, not again quoted twice by kube's own text.
    assert_eq!(
        error.to_string(),
        "cannot use kubeconfig /nonexistent/kubeconfig: No such file or directory (os error 2)"
    );
}

#[tokio::test]
async fn an_unknown_context_is_an_error_naming_it() {
    let server = FakeApiServer::builder().start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = LiveOptions {
        kubeconfig: Some(server.write_kubeconfig(dir.path()).unwrap()),
        context: Some("prod-eu".into()),
        namespace: None,
        events: false,
    };
    let error = load_live(&options, &mut |_| {}).await.unwrap_err();
    assert!(error.to_string().contains("prod-eu"), "{error}");
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn a_saved_snapshot_reads_back_offline() {
    let server = a_small_inference_cluster().start().await.unwrap();
    let (snapshot, _) = scan(&server, None).await;
    let dir = tempfile::tempdir().unwrap();
    for name in ["snapshot.yaml", "snapshot.json"] {
        let path = dir.path().join(name);
        save_snapshot(&snapshot, &path).unwrap();
        let reread = hangar_kube::load_paths(std::slice::from_ref(&path));
        assert!(reread.errors.is_empty(), "{name}: {:?}", reread.errors);
        assert_eq!(reread.object_count(), snapshot.object_count(), "{name}");
        assert_eq!(kinds_of_others(&reread), kinds_of_others(&snapshot));
        assert_eq!(reread.secrets.len(), 1);
    }
}

#[tokio::test]
async fn awkward_strings_survive_a_save() {
    let text = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: awkward
  namespace: "on"
  annotations:
    yes: "no"
    multi: "line one\nline two\n"
    colon: "a: b # not a comment"
    number: "0123"
    empty: ""
data:
  true: "false"
  tilde: "~"
"#;
    let snapshot = hangar_core::snapshot_from_text("in.yaml", text);
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("saved.yaml");
    save_snapshot(&snapshot, &path).unwrap();
    let reread = hangar_kube::load_paths(std::slice::from_ref(&path));
    assert!(reread.errors.is_empty(), "{:?}", reread.errors);
    assert_eq!(
        serde_json::to_value(&reread.config_maps[0].object).unwrap(),
        serde_json::to_value(&snapshot.config_maps[0].object).unwrap()
    );
}

/// Reads the cluster `HANGAR_TEST_KUBECONFIG` points at. Run with `--ignored`.
#[tokio::test]
#[ignore = "needs a real cluster: set HANGAR_TEST_KUBECONFIG"]
async fn a_real_cluster_loads_namespaces_and_nodes() {
    let Some(kubeconfig) = std::env::var_os("HANGAR_TEST_KUBECONFIG") else {
        eprintln!("skipped: HANGAR_TEST_KUBECONFIG is not set");
        return;
    };
    let options = LiveOptions {
        kubeconfig: Some(PathBuf::from(kubeconfig)),
        context: std::env::var("HANGAR_TEST_CONTEXT").ok(),
        namespace: None,
        events: false,
    };
    let snapshot = load_live(&options, &mut |_| {}).await.unwrap();
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    assert!(
        !snapshot.namespaces.is_empty(),
        "{:?}",
        snapshot.not_covered
    );
    assert!(!snapshot.nodes.is_empty(), "{:?}", snapshot.not_covered);
    assert!(
        snapshot
            .namespaces
            .iter()
            .any(|n| n.object.name() == "kube-system"),
        "a real cluster has kube-system"
    );
    eprintln!(
        "read {} objects; not covered: {:?}",
        snapshot.object_count(),
        snapshot.not_covered
    );
}
