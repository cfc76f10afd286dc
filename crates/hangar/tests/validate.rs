//! `hangar validate` end to end: the built binary against the fake OpenAI-compatible server
//! started in this test process, with its exit codes, reports and baseline file.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use hangar_testkit::fake_openai::{FakeOpenAi, FakeOpenAiBuilder, FakeOpenAiServer};
use serde_json::Value;
use tokio::runtime::Runtime;

/// The fake server, served by its own runtime while the binary runs in the foreground.
struct Served {
    server: FakeOpenAiServer,
    _runtime: Runtime,
}

fn serve(builder: FakeOpenAiBuilder) -> Served {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(builder.start()).unwrap();
    Served {
        server,
        _runtime: runtime,
    }
}

fn support_bot() -> Served {
    serve(
        FakeOpenAi::builder()
            .model("support-bot")
            .reply_to(
                "How long do I have to return an item?",
                "You can return any item within 30 days of delivery.",
            )
            .drifted_reply_to(
                "How long do I have to return an item?",
                "Returns are accepted for 14 days.",
            ),
    )
}

fn hangar(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hangar"))
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .unwrap()
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "stdout is not JSON ({err}):\n{}\n{}",
            stdout(output),
            stderr(output)
        )
    })
}

const GOLDEN: &str = r#"defaults:
  model: support-bot
  timeout_ms: 3000
cases:
  - name: refund-window
    kind: chat
    request:
      messages: [{role: user, content: "How long do I have to return an item?"}]
      temperature: 0
    expect:
      regex: '\b30 days\b'
      similarity: {min: 0.9}
  - name: ticket-embedding
    kind: embedding
    request: {input: "my parcel never arrived"}
    expect:
      similarity: {min: 0.98}
"#;

fn golden_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("support-bot.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn record_then_pass_then_drift_fails_with_exit_1() {
    let served = support_bot();
    let dir = tempfile::tempdir().unwrap();
    let golden = golden_file(dir.path(), GOLDEN);
    let golden = golden.to_str().unwrap();
    let url = served.server.url();

    let first = hangar(&["validate", "--golden", golden, "--url", &url], &[]);
    assert_eq!(code(&first), 2, "no baseline yet: {}", stdout(&first));
    assert!(
        stderr(&first).contains("no baseline at"),
        "{}",
        stderr(&first)
    );
    assert!(stderr(&first).contains("refund-window, ticket-embedding"));

    let record = hangar(
        &[
            "validate",
            "--golden",
            golden,
            "--url",
            &url,
            "--record-baseline",
        ],
        &[],
    );
    assert_eq!(code(&record), 0, "{}{}", stdout(&record), stderr(&record));
    let baseline = dir.path().join("support-bot.baseline.json");
    assert!(
        stderr(&record).contains("recorded 2 answer(s)"),
        "{}",
        stderr(&record)
    );
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&baseline).unwrap()).unwrap();
    assert_eq!(stored["schema"], "hangar.dev/validate-baseline/v2");
    assert_eq!(stored["url"], format!("{url}/v1"));
    assert!(
        stored["cases"]["refund-window"]["content_hash"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );

    let check = hangar(&["validate", "--golden", golden, "--url", &url], &[]);
    assert_eq!(code(&check), 0, "{}", stdout(&check));
    assert!(
        stdout(&check).contains("PASSED: 2 case(s): 2 passed"),
        "{}",
        stdout(&check)
    );

    served.server.update_faults(|f| f.drift = true);
    let drifted = hangar(
        &[
            "validate", "--golden", golden, "--url", &url, "--format", "json",
        ],
        &[],
    );
    assert_eq!(code(&drifted), 1, "{}", stdout(&drifted));
    let report = json(&drifted);
    assert_eq!(report["schema"], "hangar.dev/validate-report/v1");
    assert_eq!(report["summary"]["verdict"], "failed");
    assert_eq!(report["summary"]["failed"], 2);
    let embedding = &report["cases"][1];
    assert_eq!(embedding["status"], "failed");
    let similarity = embedding["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["expectation"] == "similarity")
        .unwrap();
    assert_eq!(similarity["outcome"], "failed");
    assert_eq!(similarity["expected"], "≥ 0.98");
    assert!(similarity["got"].as_str().unwrap().parse::<f64>().unwrap() < 0.98);
}

#[test]
fn a_server_that_cannot_be_reached_is_exit_2_not_a_wrong_answer() {
    let dir = tempfile::tempdir().unwrap();
    let golden = golden_file(
        dir.path(),
        &GOLDEN
            .replace("      similarity: {min: 0.9}\n", "")
            .replace("    expect:\n      similarity: {min: 0.98}\n", ""),
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let output = hangar(
        &[
            "validate",
            "--golden",
            golden.to_str().unwrap(),
            "--url",
            &url,
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(code(&output), 2);
    let report = json(&output);
    assert_eq!(report["summary"]["verdict"], "incomplete");
    assert_eq!(report["summary"]["errors"], 2);
    assert_eq!(report["summary"]["failed"], 0);
    assert_eq!(report["cases"][0]["error"]["class"], "network");
    assert_eq!(report["cases"][0]["error"]["kind"], "refused");
}

#[test]
fn a_timeout_is_exit_2_and_the_table_says_network_error() {
    let served = serve(FakeOpenAi::builder().model("support-bot").faults(
        hangar_testkit::fake_openai::Faults {
            latency: Duration::from_secs(3),
            ..Default::default()
        },
    ));
    let dir = tempfile::tempdir().unwrap();
    let golden = golden_file(dir.path(), GOLDEN);
    let output = hangar(
        &[
            "validate",
            "--golden",
            golden.to_str().unwrap(),
            "--url",
            &served.server.url(),
            "--timeout",
            "300ms",
            "--case",
            "ticket-embedding",
        ],
        &[],
    );
    assert_eq!(code(&output), 2);
    let table = stdout(&output);
    assert!(table.contains("ERROR ticket-embedding"), "{table}");
    assert!(
        table.contains("network error (timeout): no answer came within 300 ms"),
        "{table}"
    );
    assert!(
        !table.contains("refund-window"),
        "--case keeps one case: {table}"
    );
}

#[test]
fn a_wrong_status_is_exit_1_and_the_report_is_also_written_to_a_file() {
    let served = serve(FakeOpenAi::builder().model("support-bot"));
    served.server.update_faults(|f| f.status = Some(500));
    let dir = tempfile::tempdir().unwrap();
    let golden = golden_file(
        dir.path(),
        "defaults: {model: support-bot}\ncases:\n  - name: ping\n    kind: completion\n    request: {prompt: ping}\n",
    );
    let saved = dir.path().join("report.json");
    let output = hangar(
        &[
            "validate",
            "--golden",
            golden.to_str().unwrap(),
            "--url",
            &format!("{}/v1", served.server.url()),
            "--output",
            &format!("json={}", saved.display()),
        ],
        &[],
    );
    assert_eq!(code(&output), 1, "{}", stdout(&output));
    assert!(
        stdout(&output).contains("status: expected 200, got 500"),
        "{}",
        stdout(&output)
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(saved).unwrap()).unwrap();
    assert_eq!(report["cases"][0]["http_status"], 500);
    assert_eq!(report["cases"][0]["status"], "failed");
}

#[test]
fn the_api_key_comes_from_the_named_variable() {
    let served = serve(
        FakeOpenAi::builder()
            .model("support-bot")
            .require_api_key("sk-from-env"),
    );
    let dir = tempfile::tempdir().unwrap();
    let golden = golden_file(
        dir.path(),
        "defaults: {model: support-bot, api_key_env: SUPPORT_BOT_KEY}\ncases:\n  - name: ping\n    kind: completion\n    request: {prompt: ping}\n    expect: {text: ping}\n",
    );
    let golden = golden.to_str().unwrap();
    let url = served.server.url();
    let missing = hangar(&["validate", "--golden", golden, "--url", &url], &[]);
    assert_eq!(code(&missing), 2);
    assert!(
        stderr(&missing).contains("`SUPPORT_BOT_KEY`"),
        "{}",
        stderr(&missing)
    );
    assert_eq!(served.server.request_count(), 0);

    let from_file = hangar(
        &[
            "validate", "--golden", golden, "--url", &url, "--format", "json",
        ],
        &[("SUPPORT_BOT_KEY", "sk-from-env")],
    );
    assert_eq!(code(&from_file), 0, "{}", stdout(&from_file));
    assert!(!stdout(&from_file).contains("sk-from-env"));

    let from_flag = hangar(
        &[
            "validate",
            "--golden",
            golden,
            "--url",
            &url,
            "--api-key-env",
            "OTHER_KEY",
        ],
        &[("OTHER_KEY", "sk-from-env")],
    );
    assert_eq!(code(&from_flag), 0, "{}", stdout(&from_flag));
}

#[test]
fn a_bad_golden_file_is_exit_2_with_file_line_and_case() {
    let dir = tempfile::tempdir().unwrap();
    let golden = golden_file(dir.path(), &GOLDEN.replace(r"'\b30 days\b'", "'(30 days'"));
    let output = hangar(
        &[
            "validate",
            "--golden",
            golden.to_str().unwrap(),
            "--url",
            "http://127.0.0.1:9",
        ],
        &[],
    );
    assert_eq!(code(&output), 2);
    let message = stderr(&output);
    assert!(
        message
            .contains("support-bot.yaml:11: case `refund-window`: expect.regex: not a valid regex"),
        "{message}"
    );
    // A case that does not decode hides neither its own field nor the other cases' problems.
    let undecodable = golden_file(
        dir.path(),
        &GOLDEN.replace(r"'\b30 days\b'", "'(30 days'").replace(
            "      similarity: {min: 0.98}\n",
            "      status: notfound\n",
        ),
    );
    let output = hangar(
        &[
            "validate",
            "--golden",
            undecodable.to_str().unwrap(),
            "--url",
            "http://127.0.0.1:9",
        ],
        &[],
    );
    assert_eq!(code(&output), 2);
    let message = stderr(&output);
    for line in [
        "support-bot.yaml:11: case `refund-window`: expect.regex: not a valid regex",
        "support-bot.yaml:17: case `ticket-embedding`: expect.status: expected a status code (100–599), got \"notfound\"",
    ] {
        assert!(message.contains(line), "{line}\nmissing from:\n{message}");
    }
    let unknown = hangar(
        &[
            "validate",
            "--golden",
            golden_file(dir.path(), GOLDEN).to_str().unwrap(),
            "--url",
            "http://127.0.0.1:9",
            "--case",
            "nope",
        ],
        &[],
    );
    assert_eq!(code(&unknown), 2);
    assert!(stderr(&unknown).contains("no case is named `nope`"));
}

#[test]
fn schema_and_help_teach_the_file_and_the_exit_codes() {
    let schema = hangar(&["validate", "--schema"], &[]);
    assert_eq!(code(&schema), 0);
    let schema = json(&schema);
    assert_eq!(schema["title"], "GoldenSet");
    assert!(schema.to_string().contains("max_tokens_used"));
    let help = stdout(&hangar(&["validate", "--help"], &[]));
    for needle in [
        "--record-baseline",
        "Exit codes:",
        "could not validate",
        "--api-key-env",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
    let no_args = hangar(&["validate"], &[]);
    assert_eq!(code(&no_args), 2);
    assert!(stderr(&no_args).contains("--golden"));
}

#[test]
fn a_wrong_answer_beside_a_missing_baseline_is_exit_1_and_the_summary_counts_skipped_checks() {
    let served = support_bot();
    let dir = tempfile::tempdir().unwrap();
    let golden = golden_file(
        dir.path(),
        &GOLDEN.replace(r"'\b30 days\b'", r"'\b14 days\b'"),
    );
    let output = hangar(
        &[
            "validate",
            "--golden",
            golden.to_str().unwrap(),
            "--url",
            &served.server.url(),
        ],
        &[],
    );
    assert_eq!(code(&output), 1, "{}", stdout(&output));
    assert!(
        stdout(&output).contains(
            "FAILED: 2 case(s): 0 passed, 1 failed (wrong answer), 1 skipped; 2 check(s) skipped (no usable baseline)"
        ),
        "{}",
        stdout(&output)
    );
}

#[test]
fn an_unavailable_server_is_exit_2_with_its_status_and_retry_after() {
    let served = serve(FakeOpenAi::builder().model("support-bot").faults(
        hangar_testkit::fake_openai::Faults {
            status: Some(503),
            retry_after: Some("30".into()),
            ..Default::default()
        },
    ));
    let dir = tempfile::tempdir().unwrap();
    let golden = golden_file(
        dir.path(),
        "defaults: {model: support-bot}\ncases:\n  - name: ping\n    kind: completion\n    request: {prompt: ping}\n",
    );
    let output = hangar(
        &[
            "validate",
            "--golden",
            golden.to_str().unwrap(),
            "--url",
            &served.server.url(),
            "--retries",
            "1",
        ],
        &[],
    );
    assert_eq!(code(&output), 2, "{}", stdout(&output));
    let table = stdout(&output);
    assert!(table.contains("ERROR ping  completion  503"), "{table}");
    assert!(
        table.contains("network error (unavailable): the server answered 503 Service Unavailable: The fake server was told to fail. (Retry-After: 30) (after 2 attempts)"),
        "{table}"
    );
    assert_eq!(served.server.request_count(), 2);
}

#[test]
fn a_wrong_path_prefix_is_exit_2_not_a_wrong_answer() {
    let served = support_bot();
    // What an ingress or proxy answers for a path it does not route.
    let page = "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
    served
        .server
        .update_faults(|f| f.raw_answer = Some((404, page.into())));
    let dir = tempfile::tempdir().unwrap();
    let golden = golden_file(
        dir.path(),
        "defaults: {model: support-bot}\ncases:\n  - name: ping\n    kind: completion\n    request: {prompt: ping}\n  - name: unknown-model-is-refused\n    kind: chat\n    model: nope\n    request: {messages: [{role: user, content: ping}]}\n    expect: {status: 404}\n",
    );
    let output = hangar(
        &[
            "validate",
            "--golden",
            golden.to_str().unwrap(),
            "--url",
            &format!("{}/team-a", served.server.url()),
        ],
        &[],
    );
    let table = stdout(&output);
    assert_eq!(code(&output), 2, "{table}");
    assert!(!table.contains("FAIL"), "{table}");
    assert!(!table.contains("PASS"), "{table}");
    assert!(
        table.contains(
            "protocol error (not_json): the 404 body is not JSON, so not the API's error"
        ),
        "{table}"
    );
    assert!(table.contains("INCOMPLETE: 2 case(s)"), "{table}");
}

#[test]
fn bad_arguments_are_refused_before_any_request() {
    let served = support_bot();
    let dir = tempfile::tempdir().unwrap();
    let golden = golden_file(dir.path(), GOLDEN);
    let golden = golden.to_str().unwrap();
    let url = served.server.url();

    let endpoint = format!("{url}/v1/chat/completions");
    let output = hangar(&["validate", "--golden", golden, "--url", &endpoint], &[]);
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains(&format!("give the base URL `{url}/v1`")),
        "{}",
        stderr(&output)
    );

    let output = hangar(
        &[
            "validate", "--golden", golden, "--url", &url, "--output", "json=",
        ],
        &[],
    );
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("names no file"),
        "{}",
        stderr(&output)
    );

    let output = hangar(
        &[
            "validate",
            "--golden",
            golden,
            "--url",
            &url,
            "--timeout",
            "307445734561825861m",
        ],
        &[],
    );
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("too long a timeout"),
        "{}",
        stderr(&output)
    );

    assert_eq!(served.server.request_count(), 0);
}
