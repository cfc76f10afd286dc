//! The `hangar` binary end to end: formats, exit codes, bad input, the bundled examples.
#![allow(clippy::unwrap_used)] // helpers of an integration test are not `#[test]` functions

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

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

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const PLAIN_APP: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  template:\n    spec:\n      containers: [{name: web, image: \"nginx:1.27\"}]\n";

const OPEN_VLLM: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: chat, namespace: ml}
spec:
  template:
    metadata: {labels: {app: chat}}
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.8.5
        args: ["--model", "meta-llama/Llama-3.1-8B-Instruct"]
        resources: {limits: {nvidia.com/gpu: "1"}}
---
apiVersion: v1
kind: Service
metadata: {name: chat, namespace: ml}
spec:
  type: LoadBalancer
  selector: {app: chat}
  ports: [{port: 80, targetPort: 8000}]
"#;

#[test]
fn the_bundled_examples_are_audited_with_findings_and_exit_1() {
    let out = hangar(&[
        "audit",
        "examples/cluster",
        "--policy",
        "examples/hangar.yaml",
        "--waivers",
        "examples/waivers.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("inference endpoints"), "{text}");
    assert!(text.contains("Controls"), "{text}");
    assert!(
        !text.contains("\x1b["),
        "no colour when stdout is not a terminal"
    );
}

#[test]
fn json_lists_endpoints_and_findings_with_locations() {
    let out = hangar(&["audit", "examples/cluster", "--format", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["schema"], "hangar.dev/audit-report/v1");
    let endpoints = report["endpoints"].as_array().unwrap();
    assert!(endpoints.len() >= 15, "{} endpoints", endpoints.len());
    for e in endpoints {
        for key in ["kind", "namespace", "name", "runtime", "reasons"] {
            assert!(!e[key].is_null(), "endpoint without {key}: {e}");
        }
    }
    let runtimes: Vec<&str> = endpoints
        .iter()
        .filter_map(|e| e["runtime"].as_str())
        .collect();
    for r in ["vllm", "tgi", "triton", "ollama", "sglang"] {
        assert!(
            runtimes.contains(&r),
            "no {r} endpoint in the examples: {runtimes:?}"
        );
    }
    let findings = report["findings"].as_array().unwrap();
    assert!(!findings.is_empty());
    for f in findings {
        for key in ["check", "severity", "kind", "name", "file", "line"] {
            assert!(!f[key].is_null(), "finding without {key}: {f}");
        }
    }
}

#[test]
fn a_namespace_limits_a_scan_of_files_as_it_limits_a_live_one() {
    let dir = tempfile::tempdir().unwrap();
    // As `helm template` prints it: no namespace, for `kubectl apply -n` to place.
    let unplaced = write(
        dir.path(),
        "unplaced.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: tgi}\nspec:\n  selector: {matchLabels: {app: tgi}}\n  template:\n    metadata: {labels: {app: tgi}}\n    spec:\n      containers:\n      - name: tgi\n        image: ghcr.io/huggingface/text-generation-inference:2.4.1\n",
    );
    let out = hangar(&[
        "audit",
        "examples/cluster",
        unplaced.to_str().unwrap(),
        "-n",
        "payments-risk",
        "--format",
        "json",
    ]);
    assert!(
        out.status.code().is_some_and(|code| code < 2),
        "{}",
        stderr(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["source"]
            .as_str()
            .unwrap()
            .ends_with(" namespace payments-risk")
    );
    let endpoints: Vec<String> = report["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e["namespace"].as_str().unwrap(),
                e["name"].as_str().unwrap()
            )
        })
        .collect();
    assert!(endpoints.len() >= 2, "{endpoints:?}");
    assert!(
        endpoints.iter().all(|e| e.starts_with("payments-risk/")),
        "{endpoints:?}"
    );
    assert!(
        endpoints.contains(&"payments-risk/tgi".to_owned()),
        "{endpoints:?}"
    );
    for finding in report["findings"].as_array().unwrap() {
        let namespace = finding["namespace"].as_str().unwrap_or_default();
        assert!(["", "payments-risk"].contains(&namespace), "{finding}");
    }

    // A namespace no object names is said, not a quiet empty report.
    let out = hangar(&["inventory", "examples/cluster", "-n", "payment-risk"]);
    assert!(
        stderr(&out).contains(
            "no object in examples/cluster is in namespace payment-risk; they name assistant,"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_documented_cargo_run_commands_name_what_to_run() {
    // The workspace builds three binaries: `cargo run` without `--bin` refuses to pick one.
    let mut pages = vec![repo().join("README.md")];
    for entry in std::fs::read_dir(repo().join("docs")).unwrap() {
        pages.push(entry.unwrap().path());
    }
    let mut seen = 0;
    for page in pages {
        let text = std::fs::read_to_string(&page).unwrap();
        for line in text.lines().filter(|l| l.contains("cargo run ")) {
            seen += 1;
            let named = ["--bin ", "-p ", "--example "]
                .iter()
                .any(|f| line.contains(f));
            assert!(named, "{}: {line}", page.display());
        }
    }
    assert!(seen >= 2, "the quick start's command was not found");
}

#[test]
fn sarif_is_2_1_0_with_file_and_line() {
    let out = hangar(&["audit", "examples/cluster", "--format", "sarif"]);
    let sarif: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    assert!(run["tool"]["driver"]["rules"].as_array().unwrap().len() >= 40);
    let result = &run["results"][0];
    let physical = &result["locations"][0]["physicalLocation"];
    assert!(
        physical["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .starts_with("examples/cluster/"),
        "{physical}"
    );
    assert!(physical["region"]["startLine"].as_u64().unwrap() >= 1);
    assert!(["error", "warning", "note"].contains(&result["level"].as_str().unwrap()));
}

#[test]
fn sarif_paths_reached_through_a_link_are_relative_to_the_working_directory() {
    // A checkout under a linked directory (macOS's /tmp, a linked home): the path given goes
    // through the link, the working directory does not.
    let dir = tempfile::tempdir().unwrap();
    let checkout = dir.path().join("checkout");
    std::fs::create_dir_all(checkout.join("k8s dir")).unwrap();
    write(&checkout.join("k8s dir"), "chat.yaml", OPEN_VLLM);
    let link = dir.path().join("linked");
    std::os::unix::fs::symlink(&checkout, &link).unwrap();
    let through_link = link.join("k8s dir/chat.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_hangar"))
        .args(["audit", through_link.to_str().unwrap(), "--format", "sarif"])
        .current_dir(&checkout)
        .output()
        .unwrap();
    let sarif: Value = serde_json::from_slice(&out.stdout).unwrap();
    let uri = &sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
        ["uri"];
    assert_eq!(uri, "k8s%20dir/chat.yaml", "{}", stderr(&out));
}

#[test]
fn exit_codes_follow_fail_on_and_completeness() {
    let dir = tempfile::tempdir().unwrap();
    let plain = write(dir.path(), "plain.yaml", PLAIN_APP);
    let open = write(dir.path(), "open.yaml", OPEN_VLLM);
    let plain = plain.to_str().unwrap();
    let open = open.to_str().unwrap();
    assert_eq!(
        hangar(&["audit", plain]).status.code(),
        Some(0),
        "no endpoints, no findings"
    );
    assert_eq!(
        hangar(&["audit", open]).status.code(),
        Some(1),
        "an open LoadBalancer is critical"
    );
    assert_eq!(
        hangar(&["audit", open, "--fail-on", "never"]).status.code(),
        Some(0)
    );
    let broken = write(dir.path(), "broken.yaml", "kind: [unclosed\n");
    let out = hangar(&[
        "audit",
        open,
        broken.to_str().unwrap(),
        "--fail-on",
        "never",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unreadable file makes the scan incomplete"
    );
    let text = stdout(&out);
    assert!(text.contains("broken.yaml:1"), "{text}");
    assert!(text.contains("INCOMPLETE"), "{text}");
    assert!(
        text.contains("Deployment/ml/chat"),
        "the rest is still audited: {text}"
    );
}

#[test]
fn several_formats_at_once_and_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let html = dir.path().join("r.html");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hangar"))
        .args(["audit", "-", "--output"])
        .arg(format!("json={}", json.display()))
        .arg("--output")
        .arg(format!("html={}", html.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(OPEN_VLLM.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["findings"][0]["file"], "<stdin>");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!doctype html>") && page.contains("Deployment/ml/chat"));
    assert!(
        !page.contains("http://") && !page.contains("src=\""),
        "the HTML must be self-contained"
    );
}

#[test]
fn bad_flags_and_files_are_clear_errors() {
    let out = hangar(&["audit", "examples/cluster", "--output", "pdf=x.pdf"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown format `pdf`"),
        "{}",
        stderr(&out)
    );
    // Said before the scan, and nothing else written.
    let out = hangar(&[
        "audit",
        "examples/cluster",
        "--output",
        "json=/nonexistent-dir/r.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the directory /nonexistent-dir does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "hangar.yaml",
        "minLogRetentionDays: 365\napprovedRegistry: [x]\n",
    );
    let out = hangar(&[
        "audit",
        "examples/cluster",
        "--policy",
        policy.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("approvedRegistry"),
        "{}",
        stderr(&out)
    );
    // The parser's snippet points at the file, not at `<input>`.
    let place = format!("--> {}:2:1", policy.display());
    assert!(stderr(&out).contains(&place), "{}", stderr(&out));
    let waivers = write(dir.path(), "waivers.yaml", "- check: EXP-001\n");
    let out = hangar(&[
        "audit",
        "examples/cluster",
        "--waivers",
        waivers.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let place = format!("--> {}:1:1", waivers.display());
    assert!(stderr(&out).contains(&place), "{}", stderr(&out));
    let policy = write(dir.path(), "typo.yaml", "disabledChecks: [EXP-999]\n");
    let out = hangar(&[
        "audit",
        "examples/cluster",
        "--policy",
        policy.to_str().unwrap(),
    ]);
    assert!(stderr(&out).contains("EXP-999"), "{}", stderr(&out));
}

#[test]
fn policy_schema_is_json_schema() {
    let out = hangar(&["policy", "schema"]);
    assert!(out.status.success());
    let schema: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        schema["properties"]["approvedRegistries"].is_object(),
        "{schema}"
    );
    assert!(
        hangar(&["policy", "check", "examples/hangar.yaml"])
            .status
            .success()
    );
}

/// Two runs on the same input give the same report, word for word (but for its date): reports
/// are diffed and kept as evidence.
#[test]
fn the_audit_report_is_the_same_from_run_to_run() {
    let run = || {
        let out = hangar(&[
            "audit",
            "examples/cluster",
            "--policy",
            "examples/hangar.yaml",
            "--format",
            "json",
        ]);
        let mut report: Value = serde_json::from_slice(&out.stdout).unwrap();
        report["date"] = Value::Null;
        serde_json::to_string_pretty(&report).unwrap()
    };
    let first = run();
    // Hash maps are seeded per process, so a few runs catch an order that depends on one.
    for _ in 0..4 {
        let again = run();
        let differs = first
            .lines()
            .zip(again.lines())
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("{a}\n{b}"));
        assert!(first == again, "the reports differ:\n{differs:?}");
    }
}

/// A reader that stops early (`hangar audit … | head`) is not an error of the command's. Each
/// output here is larger than a pipe's buffer, so the command is still writing when the reader
/// goes away.
#[test]
fn a_reader_that_closes_the_pipe_early_does_not_crash_a_command() {
    use std::io::Read;
    for args in [
        &["audit", "examples/cluster", "--format", "json"][..],
        &["runbook", "--all", "--from", "examples/cluster"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hangar"))
            .args(args)
            .current_dir(repo())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 64];
        stdout.read_exact(&mut first).unwrap();
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        assert!(
            matches!(out.status.code(), Some(0..=1)),
            "{args:?}: exit {:?}: {}",
            out.status,
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("panicked"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

const GATEWAY_IN_A_CLUSTER: &str = "examples/gateway/kubernetes.yaml";

#[test]
fn the_gateway_example_cluster_is_credited_with_authentication_only_while_nothing_walks_around_it()
{
    let out = hangar(&["audit", GATEWAY_IN_A_CLUSTER, "--format", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let endpoints = report["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 2, "{}", stderr(&out));
    for endpoint in endpoints {
        let auth = endpoint["auth"].as_array().unwrap();
        assert!(
            auth.iter().any(|a| a["kind"] == "hangar-gateway"),
            "{}: {auth:?}",
            endpoint["name"]
        );
        assert_eq!(
            endpoint["gateways"][0]["gateway"]["name"], "hangar-gateway",
            "{endpoint}"
        );
        assert!(
            endpoint["gateways"][0].get("bypass").is_none(),
            "{endpoint}"
        );
    }
    let checks: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    for absent in ["EXP-003", "EXP-015", "NET-001", "NET-004", "PSS-005"] {
        assert!(!checks.contains(&absent), "{absent} in {checks:?}");
    }

    // The same cluster without the NetworkPolicy that admits only the gateway.
    let text = std::fs::read_to_string(repo().join(GATEWAY_IN_A_CLUSTER)).unwrap();
    let open: Vec<&str> = text
        .split("\n---\n")
        .filter(|doc| !doc.contains("name: only-the-gateway"))
        .collect();
    assert_eq!(open.len(), text.split("\n---\n").count() - 1);
    let dir = tempfile::tempdir().unwrap();
    let manifests = write(dir.path(), "open.yaml", &open.join("\n---\n"));
    let out = hangar(&["audit", manifests.to_str().unwrap(), "--format", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    for endpoint in report["endpoints"].as_array().unwrap() {
        assert!(
            endpoint["auth"].as_array().unwrap().is_empty(),
            "{endpoint}"
        );
        let bypass = endpoint["gateways"][0]["bypass"].as_str().unwrap();
        assert!(bypass.contains("any pod can call it"), "{bypass}");
    }
    let exp_003 = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "EXP-003")
        .unwrap();
    let message = exp_003["message"].as_str().unwrap();
    assert!(
        message.contains("the Hangar gateway `StatefulSet/hangar/hangar-gateway` routes to it"),
        "{message}"
    );
}

#[test]
fn a_gateway_configured_from_a_secret_is_reported_as_not_read_in_every_format() {
    let text = std::fs::read_to_string(repo().join(GATEWAY_IN_A_CLUSTER)).unwrap();
    let in_a_secret = text.replace(
        "configMap: {name: hangar-gateway}",
        "secret: {secretName: hangar-gateway-config}",
    );
    assert_ne!(in_a_secret, text);
    let dir = tempfile::tempdir().unwrap();
    let manifests = write(dir.path(), "secret.yaml", &in_a_secret);
    let manifests = manifests.to_str().unwrap();
    let why = "/etc/hangar/config/gateway.yaml comes from Secret `hangar-gateway-config`, whose values Hangar does not read";

    let out = hangar(&["audit", manifests, "--format", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let not_read = report["gateways_not_read"].as_array().unwrap();
    assert_eq!(not_read.len(), 1, "{not_read:?}");
    assert_eq!(not_read[0]["gateway"]["name"], "hangar-gateway");
    assert!(
        not_read[0]["why"].as_str().unwrap().starts_with(why),
        "{not_read:?}"
    );
    for endpoint in report["endpoints"].as_array().unwrap() {
        assert!(
            endpoint["gateways"].as_array().is_none_or(Vec::is_empty),
            "{endpoint}"
        );
    }

    let table = stdout(&hangar(&["audit", manifests]));
    assert!(table.contains("Hangar gateways not read"), "{table}");
    assert!(table.contains(why), "{table}");
    let sarif: Value =
        serde_json::from_slice(&hangar(&["audit", manifests, "--format", "sarif"]).stdout).unwrap();
    let notes = sarif["runs"][0]["invocations"][0]["toolExecutionNotifications"].to_string();
    assert!(
        notes.contains("Hangar gateway StatefulSet/hangar/hangar-gateway not read"),
        "{notes}"
    );
}

/// The configuration the example's ConfigMap holds passes `hangar gateway check`, once its
/// in-pod paths (the served certificate, the canary seed, the audit volume) point at this
/// machine.
#[test]
fn the_gateway_example_cluster_holds_a_configuration_that_checks() {
    let text = std::fs::read_to_string(repo().join(GATEWAY_IN_A_CLUSTER)).unwrap();
    let embedded: Vec<&str> = text
        .lines()
        .skip_while(|line| *line != "  gateway.yaml: |")
        .skip(1)
        .take_while(|line| line.is_empty() || line.starts_with("    "))
        .map(|line| line.strip_prefix("    ").unwrap_or(line))
        .collect();
    assert!(embedded.len() > 20, "{embedded:?}");
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let seed = write(dir.path(), "seed", "a seed from a Secret\n");
    let password = write(dir.path(), "password", "a password from a Secret\n");
    let config: String = embedded
        .iter()
        .filter(|line| !line.starts_with("tls:"))
        .map(|line| {
            let setting = line.trim_start();
            if setting.starts_with("dir: /var/lib/hangar/audit") {
                format!("  dir: {}", audit.display())
            } else if setting.starts_with("canarySeedFile: /etc/hangar/canary/seed") {
                format!("  canarySeedFile: {}", seed.display())
            } else if setting.starts_with("shared: {url: \"redis://hangar-redis") {
                // Nothing listens on port 1: the check says so and passes.
                let url = "redis://127.0.0.1:1";
                format!(
                    "  shared: {{url: \"{url}\", passwordFile: {}}}",
                    password.display()
                )
            } else {
                (*line).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    for path in [&audit, &seed, &password] {
        assert!(config.contains(&path.display().to_string()), "{config}");
    }
    let config = write(dir.path(), "gateway.yaml", &config);
    let out = hangar(&["gateway", "check", "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("search-indexer"), "{}", stdout(&out));
    assert!(stdout(&out).contains("NOT REACHED"), "{}", stdout(&out));
}

#[test]
fn check_probe_asks_each_model_server_what_it_serves() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime
        .block_on(
            hangar_testkit::fake_openai::FakeOpenAi::builder()
                .model("meta-llama/Meta-Llama-3-8B-Instruct")
                .start(),
        )
        .unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let example = std::fs::read_to_string(repo().join("examples/gateway/gateway.yaml")).unwrap();
    let config = example
        .replace("http://vllm-llama.ml-serving.svc:8000", &fake.url())
        .replace("http://tei-bge.ml-serving.svc:8080", &fake.url())
        .replace(
            "http://vllm-llama-canary.ml-serving.svc:8000",
            &format!("http://{closed}"),
        );
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "gateway.yaml", &config);
    let path = config.to_str().unwrap();

    // Without --probe nothing is reached, and the file is good.
    let out = hangar(&["gateway", "check", "--config", path]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The canary takes no other version's requests.
    assert!(
        stdout(&out).contains("1.4.0 (90) → http://127.0.0.1:"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("1.5.0 (10, no fallback) → http://127.0.0.1:"));
    let out = hangar(&["gateway", "check", "--config", path, "--probe"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    let probe = |line: &str| {
        text.lines()
            .any(|l| l.starts_with(&format!("  probe        {line}")))
    };
    assert!(
        probe("llama-3-8b 1.4.0: ok, serves `meta-llama/Meta-Llama-3-8B-Instruct`"),
        "{text}"
    );
    assert!(probe("llama-3-8b 1.5.0: FAILED: "), "{text}");
    assert!(
        probe(
            "bge-m3 blue: warning: answers, but lists `meta-llama/Meta-Llama-3-8B-Instruct` and not `BAAI/bge-m3`"
        ),
        "{text}"
    );
}

#[test]
fn verify_log_with_no_log_file_is_no_proof() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let out = hangar(&["gateway", "verify-log", path]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("no audit-*.jsonl file"),
        "{}",
        stderr(&out)
    );
    let out = hangar(&["gateway", "verify-log", "--prefix", "content", path]);
    assert_eq!(out.status.code(), Some(2));

    // But where an anchor vouches for records, or the gateway's lock file shows a log was kept,
    // no file is the log deleted.
    let anchor = format!("7:{}", "ab".repeat(32));
    let out = hangar(&["gateway", "verify-log", "--anchor", &anchor, path]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the anchor names record 7"),
        "{}",
        stderr(&out)
    );
    std::fs::write(dir.path().join(".audit.lock"), "").unwrap();
    let out = hangar(&["gateway", "verify-log", path]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the log was deleted"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_file(dir.path().join(".audit.lock")).unwrap();
    let gone = dir.path().join("gone");
    let out = hangar(&[
        "gateway",
        "verify-log",
        "--anchor",
        &anchor,
        gone.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // A log file, or a directory that is not there, is named for what it is.
    let file = write(dir.path(), "audit-1.jsonl", "");
    let out = hangar(&["gateway", "verify-log", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("give the directory"),
        "{}",
        stderr(&out)
    );
    let gone = dir.path().join("gone");
    let out = hangar(&["gateway", "verify-log", gone.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no such directory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn verify_log_reports_as_json_with_format_as_other_commands_do() {
    let dir = tempfile::tempdir().unwrap();
    let ledger =
        hangar_ledger::Ledger::open(hangar_ledger::LedgerConfig::new(dir.path(), "audit")).unwrap();
    for n in 0..3 {
        assert!(ledger.sender().append(serde_json::json!({"n": n})));
    }
    ledger.close().unwrap();
    let path = dir.path().to_str().unwrap();
    for flag in [&["--format", "json"][..], &["--json"]] {
        let out = hangar(&[&["gateway", "verify-log", path][..], flag].concat());
        assert!(out.status.success(), "{flag:?}: {}", stderr(&out));
        let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(report["records"], 3, "{report}");
    }
    let out = hangar(&["gateway", "verify-log", path]);
    assert!(stdout(&out).contains("intact"), "{}", stdout(&out));
}

#[test]
fn gateway_check_summarises_a_good_file_and_names_what_is_wrong() {
    let out = hangar(&[
        "gateway",
        "check",
        "--config",
        "examples/gateway/gateway.yaml",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = stdout(&out);
    assert!(summary.contains(": ok"), "{summary}");
    assert!(summary.contains("search-indexer"), "{summary}");
    // The revoked key is not counted among those in force.
    assert!(
        summary.contains("  auth         2 API keys in force (1 revoked)\n"),
        "{summary}"
    );
    assert!(
        summary.contains(
            "(kept 400 days), content kept 7 days; requests refused while it cannot be written"
        ),
        "{summary}"
    );
    // Two of the example's tenants have no key, and JWT is commented out.
    assert!(
        summary.contains("acts for release-bot, search-indexer and there is no `auth.jwt`"),
        "{summary}"
    );
    // A tenant whose keys have all expired is one of them too.
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(repo().join("examples/gateway/gateway.yaml")).unwrap();
    let expired = example.replace("2027-02-01T00:00:00Z", "2020-02-01T00:00:00Z");
    assert_ne!(expired, example);
    let config = write(dir.path(), "gateway.yaml", &expired);
    let out = hangar(&["gateway", "check", "--config", config.to_str().unwrap()]);
    assert!(
        stdout(&out).contains("acts for release-bot, search-indexer, support and"),
        "{}",
        stdout(&out)
    );

    // What only building the runtime can find: a CA file for the model servers that is not there.
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(repo().join("examples/gateway/gateway.yaml")).unwrap();
    let missing = dir.path().join("model-ca.pem");
    let config = write(
        dir.path(),
        "gateway.yaml",
        &format!("{example}\nupstreamTls:\n  caFile: {}\n", missing.display()),
    );
    let out = hangar(&["gateway", "check", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("upstreamTls.caFile") && stderr(&out).contains("model-ca.pem"),
        "{}",
        stderr(&out)
    );
    // A client certificate without its key.
    let config = write(
        dir.path(),
        "gateway.yaml",
        &format!("{example}\nupstreamTls:\n  certFile: /etc/hangar/client.pem\n"),
    );
    let out = hangar(&["gateway", "check", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("upstreamTls.certFile needs a keyFile"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn gateway_check_warns_about_what_works_but_exposes_or_hides_something() {
    let dir = tempfile::tempdir().unwrap();
    // The example's audit directory, somewhere any user may create it.
    let example = std::fs::read_to_string(repo().join("examples/gateway/gateway.yaml"))
        .unwrap()
        .replace(
            "dir: /var/log/hangar/audit",
            &format!("dir: {}/audit", dir.path().display()),
        );
    let config = write(dir.path(), "gateway.yaml", &example);
    let out = hangar(&["gateway", "check", "--config", config.to_str().unwrap()]);
    let summary = stdout(&out);
    assert!(
        summary.contains("  admin        http://127.0.0.1:9090 (/metrics, /healthz, /readyz)\n"),
        "{summary}"
    );
    for quiet in ["clear text", "adminListen", "injectCanary", "audit.dir"] {
        assert!(!summary.contains(quiet), "{quiet}: {summary}");
    }

    let risky = example
        .replace("listen: 127.0.0.1:8080", "listen: 0.0.0.0:8080")
        .replace("adminListen: 127.0.0.1:9090", "# no operator listener")
        .replace("canarySeed: rotate-me-2026-11", "# no seed");
    let config = write(dir.path(), "gateway.yaml", &risky);
    let out = hangar(&["gateway", "check", "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = stdout(&out);
    assert!(
        summary.contains("`listen` 0.0.0.0:8080 takes connections from other hosts and there is no `tls`: API keys and prompts cross the network in clear text, unless TLS ends before the gateway"),
        "{summary}"
    );
    assert!(
        summary.contains("  warning      no `adminListen`"),
        "{summary}"
    );
    assert!(!summary.contains("  admin  "), "{summary}");
    assert!(
        summary.contains("`injectCanary` is on for support but neither `guards.canarySeed` nor `guards.canarySeedFile` is set"),
        "{summary}"
    );

    // An audit directory the gateway could not create is found before `run` fails on it.
    let file = write(dir.path(), "not-a-dir", "");
    let blocked = example.replace(
        &format!("dir: {}/audit", dir.path().display()),
        &format!("dir: {}/audit", file.display()),
    );
    let config = write(dir.path(), "gateway.yaml", &blocked);
    let out = hangar(&["gateway", "check", "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "  warning      audit.dir {0}/audit: {0} is not a directory: the gateway cannot start here",
            file.display()
        )),
        "{}",
        stdout(&out)
    );

    // A file every few records is allowed, and said to be a poor idea.
    let tiny = example.replace("rotateSize: 64MiB", "rotateSize: 10");
    let config = write(dir.path(), "gateway.yaml", &tiny);
    let out = hangar(&["gateway", "check", "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "  warning      audit.rotateSize 10 bytes starts a new file every few records"
        ),
        "{}",
        stdout(&out)
    );

    // Nor could it create one where a link to nothing stands.
    let link = dir.path().join("gone");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
    let dangling = example.replace(
        &format!("dir: {}/audit", dir.path().display()),
        &format!("dir: {}", link.display()),
    );
    let config = write(dir.path(), "gateway.yaml", &dangling);
    let out = hangar(&["gateway", "check", "--config", config.to_str().unwrap()]);
    assert!(
        stdout(&out).contains(&format!(
            "audit.dir {0}: {0} is a link to nothing: the gateway cannot start here",
            link.display()
        )),
        "{}",
        stdout(&out)
    );

    // The inference port is no place for the operator endpoints.
    let shared = example.replace("adminListen: 127.0.0.1:9090", "adminListen: 127.0.0.1:8080");
    let config = write(dir.path(), "gateway.yaml", &shared);
    let out = hangar(&["gateway", "check", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("adminListen: 127.0.0.1:8080 takes the port of `listen`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn keygen_prints_an_entry_that_pastes_into_the_configuration_whatever_the_names() {
    let out = hangar(&["gateway", "keygen", "--tenant", "a: b", "--id", "#x"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let key = stdout(&out);
    assert!(key.starts_with("hgk_"), "{key}");
    let told = stderr(&out);
    let (_, entry) = told.split_once("under auth.apiKeys:\n").unwrap();
    let entry: String = entry.lines().map(|line| format!("    {line}\n")).collect();
    let config = format!(
        "listen: 127.0.0.1:8080\nauth:\n  apiKeys:\n{entry}tenants:\n  \"a: b\": {{models: [\"*\"]}}\nmodels: {{}}\naudit: {{dir: /var/lib/hangar/audit, retentionDays: 1}}\n"
    );
    let config = hangar_gateway::GatewayConfig::from_yaml(&config).unwrap();
    assert_eq!(config.auth.api_keys[0].id, "#x");
    assert_eq!(config.auth.api_keys[0].tenant, "a: b");

    // No empty names; a time already past is said, and still made.
    for empty in [
        ["--tenant", " ", "--id", "k"],
        ["--tenant", "t", "--id", ""],
    ] {
        let out = hangar(&[&["gateway", "keygen"][..], &empty].concat());
        assert_eq!(out.status.code(), Some(2), "{empty:?}");
        assert!(stderr(&out).contains("is empty"), "{}", stderr(&out));
    }
    let out = hangar(&[
        "gateway",
        "keygen",
        "--tenant",
        "t",
        "--id",
        "k",
        "--expires",
        "2020-01-01T00:00:00Z",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: --expires 2020-01-01T00:00:00Z is already past"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn every_command_names_the_program_in_its_version() {
    for args in [
        &["-V"][..],
        &["gateway", "-V"],
        &["gateway", "run", "--version"],
    ] {
        let out = hangar(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(
            stdout(&out),
            format!("hangar {}\n", env!("CARGO_PKG_VERSION")),
            "{args:?}"
        );
    }
}

#[test]
fn inventory_lists_endpoints_as_csv() {
    let out = hangar(&["inventory", "examples/cluster", "--format", "csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("kind,namespace,name,runtime"));
    assert!(text.lines().count() > 15);
}

/// Renders the HTML report in headless Chromium (installed by .ci/run) and checks the DOM it
/// builds; skipped with a message when Chromium is absent.
#[test]
fn the_html_report_renders_in_headless_chromium() {
    let Some(chromium) = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
    else {
        eprintln!("skipped: chromium is not installed (.ci/run installs it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let out = hangar(&[
        "audit",
        "examples/cluster",
        "--fail-on",
        "never",
        "--output",
        &format!("html={}", html.display()),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let profile = dir.path().join("profile");
    let dom = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("class=\"card"),
        "no endpoint cards in the rendered DOM"
    );
    assert!(
        dom.contains("PCI DSS"),
        "no control roll-up in the rendered DOM"
    );
}

#[test]
fn an_object_defined_in_two_files_is_reported_and_the_last_one_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a-web.yaml",
        PLAIN_APP
            .replace("web, namespace: shop", "chat, namespace: ml")
            .as_str(),
    );
    write(dir.path(), "b-vllm.yaml", OPEN_VLLM);
    let out = hangar(&["audit", dir.path().to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["summary"]["endpoints"], 1);
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(
        errors[0]["file"].as_str().unwrap().ends_with("a-web.yaml"),
        "{errors:?}"
    );
    assert!(message.contains("b-vllm.yaml:1"), "{message}");
}

/// A chart of 2019 still deploys its model server with API versions Kubernetes removed since.
const OLD_API_VERSIONS: &str = r#"apiVersion: extensions/v1beta1
kind: Deployment
metadata: {name: chat, namespace: ml}
spec:
  template:
    metadata: {labels: {app: chat}}
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.8.5
        resources: {limits: {nvidia.com/gpu: "1"}}
---
apiVersion: v1
kind: Service
metadata: {name: chat, namespace: ml}
spec:
  selector: {app: chat}
  ports: [{port: 80, targetPort: 8000}]
---
apiVersion: networking.k8s.io/v1beta1
kind: Ingress
metadata: {name: chat, namespace: ml}
spec:
  rules:
  - host: chat.example.com
    http:
      paths:
      - path: /
        backend: {serviceName: chat, servicePort: 80}
"#;

#[test]
fn removed_api_versions_are_reported_and_still_audited() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "old.yaml", OLD_API_VERSIONS);
    let out = hangar(&["audit", file.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let errors = report["errors"].as_array().unwrap();
    let messages: Vec<&str> = errors
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(errors.len(), 2, "{messages:?}");
    assert!(
        messages[0].contains("extensions/v1beta1") && messages[0].contains("removed"),
        "{messages:?}"
    );
    assert_eq!(errors[0]["object"], "Deployment ml/chat");
    assert_eq!(errors[1]["line"], 20);
    assert!(
        messages[1].contains("networking.k8s.io/v1beta1"),
        "{messages:?}"
    );
    let checks: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    assert!(checks.contains(&"EXP-001"), "{checks:?}");
}

#[test]
fn control_characters_and_pipes_from_manifests_are_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = OPEN_VLLM.replace(
        "metadata: {name: chat, namespace: ml}\nspec:\n  template:",
        "metadata: {name: \"chat\\e[2J\\rSummary: no findings|x\\nforged\", namespace: ml}\nspec:\n  template:",
    );
    assert!(
        hostile.contains("\\e[2J"),
        "the fixture names the Deployment"
    );
    let file = write(dir.path(), "hostile.yaml", &hostile);
    let file = file.to_str().unwrap();
    for args in [
        &["audit", file][..],
        &["audit", file, "--format", "markdown"],
        &["inventory", file],
        &["inventory", file, "--format", "csv"],
    ] {
        let out = hangar(args);
        let text = stdout(&out);
        assert!(text.contains("chat\\u{1b}[2J"), "{args:?}: {text}");
        assert!(
            !text.contains('\u{1b}') && !text.contains('\r'),
            "{args:?}: {text}"
        );
        assert!(
            !text.lines().any(|l| l.starts_with("forged")),
            "{args:?}: {text}"
        );
    }
    let markdown = stdout(&hangar(&["audit", file, "--format", "markdown"]));
    assert!(markdown.contains("no findings\\|x"), "{markdown}");

    // A waiver annotation on that object prints its name too; a model argument with HTML or a
    // backtick renders as neither; a formula stays text in the CSV.
    let waived = hostile
        .replacen(
            "namespace: ml}\nspec:\n  template:",
            "namespace: ml, annotations: {hangar.dev/waive.EXP-001: \"accepted\"}}\nspec:\n  template:",
            1,
        )
        .replace(
            "meta-llama/Llama-3.1-8B-Instruct",
            "=HYPERLINK(\\\"x\\\")<img src=x>`",
        );
    assert!(waived.contains("hangar.dev/waive.EXP-001"), "{waived}");
    let file = write(dir.path(), "waived.yaml", &waived);
    let file = file.to_str().unwrap();
    let markdown = stdout(&hangar(&["audit", file, "--format", "markdown"]));
    assert!(markdown.contains("- used: **EXP-001** via"), "{markdown}");
    assert!(
        !markdown.lines().any(|l| l.starts_with("forged")),
        "{markdown}"
    );
    assert!(!markdown.contains("<img"), "{markdown}");
    let csv = stdout(&hangar(&["inventory", file, "--format", "csv"]));
    assert!(
        !csv.contains(",=HYPERLINK") && !csv.contains(",\"=HYPERLINK"),
        "{csv}"
    );
}

/// Other YAML beside manifests (the policy, waivers, golden sets, a gateway configuration) is
/// skipped with a note, not taken for broken objects that make the scan incomplete.
#[test]
fn yaml_that_is_not_a_kubernetes_object_is_skipped_with_a_note() {
    let out = hangar(&["audit", "examples/", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["complete"], true, "{}", report["errors"]);
    let note = stderr(&out);
    assert!(
        note.contains("note: skipped 5 YAML document(s) with neither apiVersion nor kind")
            && note.contains("examples/hangar.yaml:6"),
        "{note}"
    );
    assert!(!note.contains("not read"), "{note}");
}

/// `ko/base` holds the model server; `ko/overlays/prod` patches its replicas.
fn kustomize_layout(dir: &Path) -> PathBuf {
    let ko = dir.join("ko");
    for sub in ["base", "overlays/prod"] {
        std::fs::create_dir_all(ko.join(sub)).unwrap();
    }
    write(&ko, "base/deploy.yaml", OPEN_VLLM);
    write(
        &ko,
        "base/kustomization.yaml",
        "resources:\n- deploy.yaml\n",
    );
    write(
        &ko,
        "overlays/prod/replicas.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: chat\n  namespace: ml\nspec:\n  replicas: 4\n",
    );
    write(
        &ko,
        "overlays/prod/kustomization.yaml",
        "resources:\n- ../../base\npatches:\n- path: replicas.yaml\n",
    );
    ko
}

/// A patch in an overlay is no second copy of the object it patches: the endpoint stays, and
/// the user is told once how a Kustomize directory is read and how to audit its build.
#[test]
fn a_kustomize_base_and_overlay_are_read_as_plain_resources_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let ko = kustomize_layout(dir.path());
    let out = hangar(&["audit", ko.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["complete"], true, "{}", report["errors"]);
    assert_eq!(report["summary"]["endpoints"], 1);
    assert_eq!(report["summary"]["objects"], 2);
    let note = stderr(&out);
    let prod = ko.join("overlays/prod");
    let told = note.matches("`kubectl kustomize DIR | hangar audit -`");
    assert_eq!(told.count(), 1, "{note}");
    assert!(
        note.contains(&format!(
            "note: skipped {}: {} lists it as a patch",
            prod.join("replicas.yaml").display(),
            prod.join("kustomization.yaml").display()
        )),
        "{note}"
    );
    assert!(
        !note.contains("not read") && !note.contains("YAML document(s)"),
        "{note}"
    );
    // Triage reads files as the audit does, and says so the same way.
    let out = hangar(&["triage", "--from", ko.to_str().unwrap()]);
    assert!(
        stderr(&out).contains("lists it as a patch"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_malformed_kustomization_is_a_note_and_its_directory_is_still_audited() {
    let dir = tempfile::tempdir().unwrap();
    let ko = kustomize_layout(dir.path());
    write(&ko, "base/kustomization.yaml", "resources: [deploy.yaml\n");
    let out = hangar(&[
        "audit",
        ko.join("base").to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["complete"], true, "{}", report["errors"]);
    assert_eq!(report["summary"]["endpoints"], 1);
    let note = stderr(&out);
    assert!(
        note.contains(&format!(
            "note: {}: this kustomization is not read (malformed YAML",
            ko.join("base/kustomization.yaml").display()
        )),
        "{note}"
    );
    assert!(
        note.contains("`kubectl kustomize DIR | hangar audit -`"),
        "{note}"
    );
}

#[test]
fn gateway_check_says_whether_the_shared_limits_answer() {
    let example = std::fs::read_to_string(repo().join("examples/gateway/gateway.yaml")).unwrap();
    let port = hangar_testkit::redis::free_port().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shared = format!("limits:\n  shared: {{url: \"redis://127.0.0.1:{port}\"}}\n");
    let config = write(
        dir.path(),
        "gateway.yaml",
        &example.replacen("limits:\n", &shared, 1),
    );
    let check = || hangar(&["gateway", "check", "--config", config.to_str().unwrap()]);

    // Nothing listens: said, not failed on (the gateway copes at run time).
    let out = check();
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = stdout(&out);
    assert!(
        summary.contains(&format!(
            "shared limits redis://127.0.0.1:{port} (prefix hangar): NOT REACHED"
        )) && summary.contains("onUnavailable: local"),
        "{summary}"
    );

    let redis = hangar_testkit::redis::RedisServer::start_on(port, &[]).unwrap();
    let out = check();
    drop(redis);
    assert!(
        stdout(&out).contains("(prefix hangar): answered in"),
        "{}",
        stdout(&out)
    );

    // Reached, and refused (no password where one is required): a setting to fix, exit 1.
    let redis =
        hangar_testkit::redis::RedisServer::start_on(port, &["--requirepass", "secret"]).unwrap();
    let out = check();
    drop(redis);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("(prefix hangar): REFUSED by Redis (Redis said: "),
        "{}",
        stdout(&out)
    );

    // A Redis Cluster's node that does not hold the check's key redirects, and says where.
    let nodes = hangar_testkit::redis::RedisServer::start_cluster(3, 0).unwrap();
    let holder = hangar_testkit::redis::cluster_owner(&nodes, "hangar:{{check}:rates").unwrap();
    let seed = nodes[(holder + 1) % 3].port();
    let to_seed = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&format!(":{port}\""), &format!(":{seed}\""));
    std::fs::write(&config, to_seed).unwrap();
    let summary = stdout(&check());
    let holder = nodes[holder].port();
    assert!(
        summary.contains("answered in")
            && summary.contains(&format!(
                "(redirected by a Redis Cluster to 127.0.0.1:{holder})"
            )),
        "{summary}"
    );
}

/// Input that holds no Kubernetes object is an input error, never a clean pass: it is what an
/// empty pipe from a `kubectl get` that failed, a mistyped directory or a file of other YAML
/// look like.
#[test]
fn input_with_no_kubernetes_object_is_an_input_error_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    let notes = dir.path().join("notes");
    let values = dir.path().join("values");
    for sub in [&empty, &notes, &values] {
        std::fs::create_dir(sub).unwrap();
    }
    write(&notes, "readme.txt", "not a manifest\n");
    write(&values, "values.yaml", "replicaCount: 2\n");
    let empty_file = write(dir.path(), "empty.yaml", "");
    let inputs = [
        "-".to_owned(),
        empty.display().to_string(),
        notes.display().to_string(),
        values.display().to_string(),
        empty_file.display().to_string(),
    ];
    for input in &inputs {
        let out = hangar(&["audit", input.as_str()]);
        assert_eq!(out.status.code(), Some(2), "{input}: {}", stdout(&out));
        let text = stdout(&out);
        assert!(
            text.contains("no Kubernetes object") && text.contains("INCOMPLETE"),
            "{input}: {text}"
        );
    }
    assert!(
        stderr(&hangar(&["audit", inputs[3].as_str()])).contains("note: skipped 1 YAML document"),
        "the skipped document is still named"
    );

    let out = hangar(&["audit", inputs[1].as_str(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["complete"], false);
    assert_eq!(report["errors"][0]["file"], inputs[1].as_str());
    let out = hangar(&["audit", "-", "--format", "sarif"]);
    assert_eq!(out.status.code(), Some(2));
    let sarif: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        sarif["runs"][0]["invocations"][0]["executionSuccessful"],
        false
    );
    for format in ["markdown", "html"] {
        let out = hangar(&["audit", "-", "--format", format]);
        assert_eq!(out.status.code(), Some(2), "{format}");
    }
    // The other commands that take files as arguments read them the same way.
    for command in ["cost", "inventory"] {
        let out = hangar(&[command, inputs[1].as_str()]);
        assert_eq!(out.status.code(), Some(2), "{command}: {}", stdout(&out));
    }

    // An overlay of patches alone is told for what it is, with the way to audit its build.
    let overlay = dir.path().join("overlay");
    std::fs::create_dir(&overlay).unwrap();
    write(
        &overlay,
        "kustomization.yaml",
        "resources: [../base]\npatches:\n  - path: replicas.yaml\n",
    );
    write(
        &overlay,
        "replicas.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: vllm}\nspec: {replicas: 3}\n",
    );
    let out = hangar(&["audit", overlay.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("which is a Kustomize directory")
            && stdout(&out).contains("kubectl kustomize DIR | hangar audit -"),
        "{}",
        stdout(&out)
    );

    // Objects without an inference endpoint are a clean audit: there was something to check.
    let plain = write(dir.path(), "plain.yaml", PLAIN_APP);
    assert_eq!(
        hangar(&["audit", plain.to_str().unwrap()]).status.code(),
        Some(0)
    );
    // So is an empty List: kubectl's answer for an empty namespace, or a saved scan of one.
    let list = write(
        dir.path(),
        "list.yaml",
        "apiVersion: v1\nkind: List\nitems: []\n",
    );
    assert_eq!(
        hangar(&["audit", list.to_str().unwrap()]).status.code(),
        Some(0)
    );
}

#[test]
fn two_outputs_to_one_file_are_refused_before_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.json");
    let json = format!("json={}", file.display());
    let html = format!("html={}", file.display());
    let through_dot = format!("html={}/./r.json", dir.path().display());
    for second in [&html, &through_dot] {
        let out = hangar(&[
            "audit",
            "examples/cluster",
            "--output",
            json.as_str(),
            "--output",
            second.as_str(),
        ]);
        assert_eq!(out.status.code(), Some(2), "{second}");
        assert!(
            stderr(&out).contains(&format!(
                "--output {json} and --output {second} write the same file"
            )),
            "{}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty(), "said before the scan");
        assert!(!file.exists());
    }
    // Relative to the working directory, with `./` or without.
    let out = Command::new(env!("CARGO_BIN_EXE_hangar"))
        .args(["audit", repo().join("examples/cluster").to_str().unwrap()])
        .args(["-o", "json=r.json", "-o", "sarif=./r.json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("write the same file"),
        "{}",
        stderr(&out)
    );
    assert!(!file.exists());
    let csv = format!("csv={}", file.display());
    let out = hangar(&[
        "cost",
        "examples/cluster",
        "--output",
        csv.as_str(),
        "--output",
        html.as_str(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("write the same file"),
        "{}",
        stderr(&out)
    );
}

/// The value most like a mistyped severity is `never`: suggesting it would turn the gate off.
#[test]
fn a_mistyped_fail_on_lists_the_severities_and_suggests_none() {
    let out = hangar(&["audit", "examples/cluster", "--fail-on", "severe"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("invalid value 'severe' for '--fail-on"),
        "{err}"
    );
    assert!(
        err.contains("[possible values: critical, high, medium, low, info, never]"),
        "{err}"
    );
    assert!(!err.contains("similar") && !err.contains("tip:"), "{err}");
    let help = stdout(&hangar(&["audit", "--help"]));
    assert!(help.contains("Never fail on findings"), "{help}");
}

#[test]
fn an_unknown_check_id_in_the_policy_is_named_with_its_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "hangar.yaml",
        "minLogRetentionDays: 30\ndisabledChecks: [EXP-001, XYZ-001]\nseverityOverrides:\n  EXP-002: low\n  EXP-999: low\n",
    );
    let out = hangar(&["policy", "check", policy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let path = policy.display();
    assert!(
        err.contains(&format!("{path}:2: disabledChecks: XYZ-001")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{path}:5: severityOverrides: EXP-999")),
        "{err}"
    );
    assert!(
        !err.contains("EXP-001") && !err.contains("EXP-002"),
        "only the unknown ids: {err}"
    );
}

/// An executable named like a manifest is one error, not one per line, and the rest is read.
#[test]
fn a_binary_file_is_one_error_and_the_rest_is_still_audited() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "open.yaml", OPEN_VLLM);
    let mut binary = b"\x7fELF\x02\x01\x01\x00".to_vec();
    for _ in 0..1000 {
        binary.extend_from_slice(b"\n---\n\xff\xfe\x00 not text");
    }
    std::fs::write(dir.path().join("tool.yaml"), binary).unwrap();
    let out = hangar(&["audit", dir.path().to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("binary file, not read"),
        "{errors:?}"
    );
    assert!(
        errors[0]["file"].as_str().unwrap().ends_with("tool.yaml"),
        "{errors:?}"
    );
    assert_eq!(report["summary"]["endpoints"], 1);
}
