//! `hangar audit` against a live cluster — here the testkit's fake API server on loopback:
//! read-only, gaps make the scan incomplete, and a saved snapshot audits the same offline.
#![allow(clippy::unwrap_used, clippy::panic)] // helpers of an integration test are not `#[test]` functions

use std::process::{Command, Output};

use hangar_testkit::{FakeApiServer, FakeApiServerBuilder, objects};
use serde_json::Value;

fn cluster() -> FakeApiServerBuilder {
    FakeApiServer::builder().objects([
        objects::namespace("ml"),
        objects::node("gpu-1"),
        objects::deployment("ml", "llama", "vllm/vllm-openai:v0.11.0"),
        objects::service("ml", "llama"),
        objects::secret("ml", "hf-token"),
    ])
}

fn audit(server: &FakeApiServer, extra: &[&str]) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.write_kubeconfig(dir.path()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hangar"))
        .arg("audit")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--format", "json", "--fail-on", "never"])
        .args(extra)
        .output()
        .unwrap();
    (out, dir)
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_scan_finds_the_endpoint_and_only_reads() {
    let server = cluster().start().await.unwrap();
    let (out, _dir) = audit(&server, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = report(&out);
    assert_eq!(report["complete"], true);
    let ids: Vec<&str> = report["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(ids, ["Deployment/ml/llama"]);
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["file"].is_null()),
        "live objects have no file"
    );
    assert!(server.requests().iter().all(|r| r.method == "GET"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kind_rbac_forbids_makes_the_scan_incomplete() {
    let server = cluster().forbid("secrets").start().await.unwrap();
    let (out, _dir) = audit(&server, &[]);
    assert_eq!(out.status.code(), Some(2));
    let report = report(&out);
    assert_eq!(report["complete"], false);
    assert_eq!(report["not_covered"][0]["kind"], "Secret");
    assert_eq!(
        report["endpoints"].as_array().unwrap().len(),
        1,
        "the rest is still audited"
    );
    assert_no_control_passes(&report);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_snapshot_audits_the_same_offline() {
    let server = cluster().start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("snapshot.yaml");
    let (out, _kubeconfig) = audit(&server, &["--save-snapshot", saved.to_str().unwrap()]);
    let live = report(&out);
    let offline = Command::new(env!("CARGO_BIN_EXE_hangar"))
        .args(["audit", "--format", "json", "--fail-on", "never"])
        .arg(&saved)
        .output()
        .unwrap();
    let offline = report(&offline);
    assert_eq!(live["summary"]["objects"], offline["summary"]["objects"]);
    assert_eq!(
        live["endpoints"].as_array().unwrap().len(),
        offline["endpoints"].as_array().unwrap().len()
    );
    let checks = |r: &Value| {
        let mut c: Vec<String> = r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["check"].as_str().unwrap().to_owned())
            .collect();
        c.sort();
        c
    };
    assert_eq!(checks(&live), checks(&offline));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_snapshot_of_an_incomplete_scan_is_incomplete_too() {
    let server = cluster().forbid("secrets").start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("snapshot.yaml");
    let (out, _kubeconfig) = audit(&server, &["--save-snapshot", saved.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let offline = Command::new(env!("CARGO_BIN_EXE_hangar"))
        .args(["audit", "--format", "json"])
        .arg(&saved)
        .output()
        .unwrap();
    assert_eq!(
        offline.status.code(),
        Some(2),
        "read back, still incomplete"
    );
    let offline = report(&offline);
    assert_eq!(offline["complete"], false);
    assert_eq!(offline["not_covered"][0]["kind"], "Secret");
    assert_no_control_passes(&offline);
}

/// A scan with gaps never passes a control.
fn assert_no_control_passes(report: &Value) {
    let statuses: Vec<&str> = report["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["controls"].as_array().unwrap())
        .filter_map(|c| c["status"].as_str())
        .collect();
    assert!(
        !statuses.contains(&"passed"),
        "a scan with gaps never passes a control"
    );
}

#[test]
fn an_unreachable_cluster_is_a_clear_error_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let url = hangar_testkit::fake_api::closed_port_url().unwrap();
    let kubeconfig = hangar_testkit::fake_api::write_kubeconfig(dir.path(), &url).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hangar"))
        .arg("audit")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the API server") && err.contains(&url),
        "{err}"
    );
}
