//! `validate` against the fake OpenAI-compatible server over real loopback HTTP: right answers,
//! wrong answers, a baseline recorded and then drifted from, and every way the network or the
//! protocol can fail, each kept apart from wrong answers.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use hangar_testkit::fake_openai::{FakeOpenAi, FakeOpenAiServer, Faults};
use hangar_validate::{
    Baseline, CallError, CaseStatus, ClientError, Expectation, Golden, Mode, NetworkErrorKind,
    Options, Outcome, ProtocolErrorKind, RunError, Validation, Verdict, validate,
};

const SUPPORT_BOT: &str = r#"
defaults:
  model: support-bot
  timeout_ms: 5000
  latency_ms: 2000
cases:
  - name: refund-window
    kind: chat
    request:
      messages:
        - {role: system, content: "You are a support assistant."}
        - {role: user, content: "How long do I have to return an item?"}
      temperature: 0
      seed: 7
    expect:
      regex: '\b30 days\b'
      contains: [return]
      not_contains: ["As an AI"]
      finish_reason: stop
      max_tokens_used: 20
  - name: intent-json
    kind: chat
    request:
      messages: [{role: user, content: "Classify: I want my money back"}]
      response_format: {type: json_object}
    expect:
      json_schema:
        type: object
        required: [intent, confidence]
        properties:
          intent: {enum: [refund, delivery, other]}
          confidence: {type: number, minimum: 0, maximum: 1}
  - name: greeting
    kind: completion
    request: {prompt: "Hello, my name is", max_tokens: 16}
    expect:
      text: " Ada, and I will help you today."
  - name: ticket-embedding
    kind: embedding
    request: {input: "my parcel never arrived"}
    expect:
      dimensions: 64
"#;

async fn support_bot() -> FakeOpenAiServer {
    FakeOpenAi::builder()
        .model("support-bot")
        .reply_to(
            "How long do I have to return an item?",
            "You can return any item within 30 days of delivery.",
        )
        .reply_to(
            "Classify: I want my money back",
            r#"{"intent": "refund", "confidence": 0.93}"#,
        )
        .reply_to("Hello, my name is", " Ada, and I will help you today.")
        .drifted_reply_to(
            "How long do I have to return an item?",
            "Returns are accepted for 14 days.",
        )
        .start()
        .await
        .unwrap()
}

fn golden(yaml: &str) -> Golden {
    Golden::from_yaml(yaml, "golden.yaml").unwrap()
}

async fn run(golden: &Golden, options: &Options, baseline: Option<&Baseline>) -> Validation {
    validate(golden, options, baseline).await.unwrap()
}

/// A golden set of one case.
fn one_case(case: &str) -> Golden {
    golden(&format!(
        "defaults: {{model: support-bot, timeout_ms: 3000}}\ncases:\n{case}"
    ))
}

const ASK_REFUND: &str = "  - name: refund\n    kind: chat\n    request: {messages: [{role: user, content: \"How long do I have to return an item?\"}]}\n";

#[tokio::test]
async fn chat_completion_and_embedding_cases_pass() {
    let server = support_bot().await;
    let golden = golden(SUPPORT_BOT);
    let validation = run(&golden, &Options::new(server.url()), None).await;
    let report = &validation.report;
    assert_eq!(
        report.summary.verdict,
        Verdict::Passed,
        "{}",
        report.to_table()
    );
    assert_eq!(report.exit_code(), 0);
    assert_eq!(report.summary.passed, 4);
    let names: Vec<_> = report.cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "refund-window",
            "intent-json",
            "greeting",
            "ticket-embedding"
        ]
    );
    let refund = report.case("refund-window").unwrap();
    let tested: Vec<_> = refund.checks.iter().map(|c| c.expectation).collect();
    assert_eq!(
        tested,
        [
            Expectation::Status,
            Expectation::Contains,
            Expectation::NotContains,
            Expectation::Regex,
            Expectation::FinishReason,
            Expectation::MaxTokensUsed,
            Expectation::LatencyMs
        ]
    );
    assert_eq!(
        refund.answer.as_deref(),
        Some("You can return any item within 30 days of delivery.")
    );
    let embedding = validation.answer("ticket-embedding").unwrap();
    assert_eq!(embedding.embeddings[0].len(), 64);
    // The request went out as written, with the model filled in and nothing else added.
    let sent = server
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/chat/completions" && r.body.contains("seed"))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(sent["model"], "support-bot");
    assert_eq!(sent["seed"], 7);
    assert_eq!(sent["temperature"], 0);
    assert!(sent.get("stream").is_none());
    assert_eq!(server.request_count(), 4);
}

#[tokio::test]
async fn a_url_ending_in_v1_reaches_the_same_paths() {
    let server = support_bot().await;
    let validation = run(
        &one_case(ASK_REFUND),
        &Options::new(format!("{}/v1/", server.url())),
        None,
    )
    .await;
    assert_eq!(validation.report.exit_code(), 0);
    assert_eq!(validation.report.url, format!("{}/v1", server.url()));
    assert_eq!(server.requests()[0].path, "/v1/chat/completions");
}

#[tokio::test]
async fn wrong_answers_fail_with_expected_and_got() {
    let server = support_bot().await;
    let golden = one_case(
        "  - name: refund\n    kind: chat\n    request: {messages: [{role: user, content: \"How long do I have to return an item?\"}]}\n    expect:\n      regex: '\\b14 days\\b'\n      text: \"Within 14 days.\"\n      json_schema: {type: object}\n",
    );
    let report = run(&golden, &Options::new(server.url()), None).await.report;
    assert_eq!(report.summary.verdict, Verdict::Failed);
    assert_eq!(report.exit_code(), 1);
    let case = &report.cases[0];
    assert_eq!(case.status, CaseStatus::Failed);
    assert!(case.error.is_none());
    let failed: Vec<_> = case
        .checks
        .iter()
        .filter(|c| c.outcome == Outcome::Failed)
        .map(|c| c.expectation)
        .collect();
    assert_eq!(
        failed,
        [
            Expectation::Text,
            Expectation::Regex,
            Expectation::JsonSchema
        ]
    );
    let regex = case
        .checks
        .iter()
        .find(|c| c.expectation == Expectation::Regex)
        .unwrap();
    assert_eq!(regex.expected, r"matches /\b14 days\b/");
    assert_eq!(
        regex.got,
        "You can return any item within 30 days of delivery."
    );
    let table = report.to_table();
    assert!(table.contains("FAIL  refund"), "{table}");
    assert!(
        table.contains("json_schema: expected JSON valid against the schema"),
        "{table}"
    );
}

#[tokio::test]
async fn streams_measure_time_to_first_token_and_ask_for_usage() {
    let server = support_bot().await;
    server.set_faults(Faults {
        latency: Duration::from_millis(100),
        chunk_delay: Duration::from_millis(30),
        ..Faults::default()
    });
    let golden = one_case(
        "  - name: refund-stream\n    kind: chat\n    stream: true\n    request: {messages: [{role: user, content: \"How long do I have to return an item?\"}]}\n    expect:\n      contains: [30 days]\n      ttft_ms: 2000\n      latency_ms: 4000\n      max_tokens_used: 10\n",
    );
    let validation = run(&golden, &Options::new(server.url()), None).await;
    let case = &validation.report.cases[0];
    assert_eq!(
        case.status,
        CaseStatus::Passed,
        "{}",
        validation.report.to_table()
    );
    let answer = validation.answer("refund-stream").unwrap();
    let ttft = answer.ttft.unwrap();
    // The head waits 100 ms, then the role chunk and the first word 30 ms each.
    assert!(ttft >= Duration::from_millis(160), "{ttft:?}");
    // Ten words and the closing chunks follow, 30 ms apart.
    assert!(
        answer.latency >= ttft + Duration::from_millis(300),
        "{answer:?}"
    );
    assert_eq!(
        answer.tokens_used(hangar_validate::CaseKind::Chat),
        Some(10)
    );
    assert!(answer.chunks >= 12);
    assert!(case.ttft_ms.unwrap() >= 160.0);
    let sent = server.requests()[0].json().unwrap();
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn a_slow_first_token_fails_its_budget() {
    let server = support_bot().await;
    server.update_faults(|f| f.chunk_delay = Duration::from_millis(150));
    let golden = one_case(
        "  - name: greeting\n    kind: completion\n    stream: true\n    request: {prompt: \"Hello, my name is\"}\n    expect: {ttft_ms: 50}\n",
    );
    let report = run(&golden, &Options::new(server.url()), None).await.report;
    let case = &report.cases[0];
    assert_eq!(case.status, CaseStatus::Failed);
    let ttft = case.checks.last().unwrap();
    assert_eq!(ttft.expectation, Expectation::TtftMs);
    assert_eq!(ttft.expected, "≤ 50 ms");
    assert!(ttft.got.ends_with(" ms"));
}

const WITH_SIMILARITY: &str = r#"
defaults: {model: support-bot}
cases:
  - name: refund
    kind: chat
    request:
      messages: [{role: user, content: "How long do I have to return an item?"}]
      temperature: 0
    expect:
      similarity: {min: 0.9}
  - name: ticket
    kind: embedding
    request: {input: ["my parcel never arrived", "where is my order"]}
    expect:
      similarity: {min: 0.98}
"#;

#[tokio::test]
async fn a_recorded_baseline_passes_then_drift_fails_with_the_similarity_shown() {
    let server = support_bot().await;
    let golden = golden(WITH_SIMILARITY);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("support.baseline.json");

    // Record: baseline expectations are not evaluated, passing answers are kept.
    let mut recording = Options::new(server.url());
    recording.mode = Mode::Record;
    let mut validation = run(&golden, &recording, None).await;
    assert_eq!(validation.report.exit_code(), 0);
    let mut baseline = Baseline::new(&validation.report.url, "2025-06-01T00:00:00Z");
    let recorded = validation.record_into(&mut baseline);
    assert_eq!(recorded, ["refund", "ticket"]);
    assert!(validation.report.cases.iter().all(|c| c.recorded));
    baseline.save(&path).unwrap();
    let baseline = Baseline::load(&path).unwrap();
    assert_eq!(baseline.cases["ticket"].embeddings.len(), 2);

    // The same server passes against it.
    let same = run(&golden, &Options::new(server.url()), Some(&baseline)).await;
    assert_eq!(same.report.exit_code(), 0, "{}", same.report.to_table());
    let similarity = same.report.cases[1].checks.last().unwrap();
    assert_eq!(similarity.expectation, Expectation::Similarity);
    assert_eq!(similarity.got, "1.0000");
    assert_eq!(
        same.report.baseline_recorded_at.as_deref(),
        Some("2025-06-01T00:00:00Z")
    );

    // The server drifts: the answers change and fall below the thresholds.
    server.update_faults(|f| f.drift = true);
    let drifted = run(&golden, &Options::new(server.url()), Some(&baseline)).await;
    let report = &drifted.report;
    assert_eq!(
        report.summary.verdict,
        Verdict::Failed,
        "{}",
        report.to_table()
    );
    assert_eq!(report.exit_code(), 1);
    for case in &report.cases {
        assert_eq!(case.status, CaseStatus::Failed, "{}", case.name);
        let check = case.checks.last().unwrap();
        assert_eq!(check.expectation, Expectation::Similarity);
        assert_eq!(check.outcome, Outcome::Failed);
        let got: f64 = check.got.parse().unwrap();
        assert!(got < 0.9, "{}: {got}", case.name);
    }
    let refund = &report.cases[0].checks[1];
    assert!(
        refund.detail.as_deref().unwrap().contains("within 30 days"),
        "{refund:?}"
    );
    assert!(
        report
            .to_table()
            .contains("similarity: expected ≥ 0.9, got 0.")
    );
}

#[tokio::test]
async fn without_a_baseline_similarity_is_skipped_and_the_run_incomplete() {
    let server = support_bot().await;
    let report = run(&golden(WITH_SIMILARITY), &Options::new(server.url()), None)
        .await
        .report;
    assert_eq!(report.summary.skipped, 2);
    assert_eq!(report.summary.verdict, Verdict::Incomplete);
    assert_eq!(report.exit_code(), 2);
    let check = report.cases[0].checks.last().unwrap();
    assert_eq!(check.outcome, Outcome::Skipped);
    assert!(
        check
            .detail
            .as_deref()
            .unwrap()
            .contains("--record-baseline")
    );
}

#[tokio::test]
async fn a_changed_request_is_not_compared_with_an_old_answer() {
    let server = support_bot().await;
    let mut recording = Options::new(server.url());
    recording.mode = Mode::Record;
    let golden_v1 = golden(WITH_SIMILARITY);
    let mut validation = run(&golden_v1, &recording, None).await;
    let mut baseline = Baseline::new("u", "t");
    validation.record_into(&mut baseline);
    // Another model answering the same request is compared; another temperature is not.
    let new_model = golden(
        &WITH_SIMILARITY.replace("temperature: 0", "temperature: 0\n      model: support-bot"),
    );
    let report = run(&new_model, &Options::new(server.url()), Some(&baseline))
        .await
        .report;
    assert_eq!(
        report.cases[0].status,
        CaseStatus::Passed,
        "{}",
        report.to_table()
    );
    let edited = golden(&WITH_SIMILARITY.replace("temperature: 0", "temperature: 0.7"));
    let report = run(&edited, &Options::new(server.url()), Some(&baseline))
        .await
        .report;
    assert_eq!(report.cases[0].status, CaseStatus::Skipped);
    let detail = report.cases[0].checks[1].detail.clone().unwrap();
    assert!(detail.contains("request changed"), "{detail}");
}

#[tokio::test]
async fn a_500_is_a_status_failure_not_a_network_error() {
    let server = support_bot().await;
    server.update_faults(|f| f.status = Some(500));
    let report = run(&one_case(ASK_REFUND), &Options::new(server.url()), None)
        .await
        .report;
    assert_eq!(report.exit_code(), 1);
    let case = &report.cases[0];
    assert_eq!(case.status, CaseStatus::Failed);
    assert_eq!(case.http_status, Some(500));
    assert!(case.error.is_none());
    let status = &case.checks[0];
    assert_eq!(
        (status.expected.as_str(), status.got.as_str()),
        ("200", "500")
    );
    assert_eq!(
        case.answer.as_deref(),
        Some("The fake server was told to fail.")
    );
}

#[tokio::test]
async fn an_expected_error_status_passes() {
    let server = support_bot().await;
    let golden = one_case(
        "  - name: unknown-model\n    kind: chat\n    model: nope\n    request: {messages: [{role: user, content: hi}]}\n    expect: {status: 404}\n",
    );
    let report = run(&golden, &Options::new(server.url()), None).await.report;
    assert_eq!(report.exit_code(), 0, "{}", report.to_table());
}

/// nginx's own 404 page, as a proxy in front of the wrong path or Service sends it.
const NGINX_404: &str = "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx/1.27.4</center>\r\n</body>\r\n</html>\r\n";

const UNKNOWN_MODEL: &str = "  - name: unknown-model\n    kind: chat\n    model: nope\n    request: {messages: [{role: user, content: hi}]}\n    expect: {status: 404}\n";

#[tokio::test]
async fn an_answer_that_is_not_the_api_is_a_protocol_error_never_a_status() {
    let server = support_bot().await;
    let golden = one_case(&format!("{ASK_REFUND}{UNKNOWN_MODEL}"));
    server.update_faults(|f| f.raw_answer = Some((404, NGINX_404.into())));
    let validation = run(&golden, &Options::new(server.url()), None).await;
    let report = &validation.report;
    let table = report.to_table();
    assert_eq!(report.exit_code(), 2, "{table}");
    assert_eq!(report.summary.failed, 0, "not a wrong answer: {table}");
    assert_eq!(report.summary.errors, 2, "{table}");
    for case in &report.cases {
        // The case that expects 404 is not passed by a 404 from something else.
        assert_eq!(case.status, CaseStatus::Error, "{}: {table}", case.name);
        assert!(case.checks.is_empty());
        assert_eq!(case.http_status, Some(404));
        let Some(CallError::Protocol { kind, message }) = &case.error else {
            panic!("{}: {:?}", case.name, case.error);
        };
        assert_eq!(*kind, ProtocolErrorKind::NotJson, "{message}");
        assert!(
            message.starts_with("the 404 body is not JSON, so not the API's error"),
            "{message}"
        );
        assert!(
            message.contains("<title>404 Not Found</title>"),
            "{message}"
        );
        assert!(!message.contains('\n'), "one line: {message}");
    }
    assert!(table.contains("protocol error (not_json)"), "{table}");

    // FastAPI's answer to an unknown path, a gateway's with no route, and an empty body did not
    // come from the API either.
    for (body, want) in [
        (
            r#"{"detail": "Not Found"}"#,
            ProtocolErrorKind::UnexpectedShape,
        ),
        (
            r#"{"message": "no Route matched with those values"}"#,
            ProtocolErrorKind::UnexpectedShape,
        ),
        ("", ProtocolErrorKind::NotJson),
    ] {
        server.update_faults(|f| f.raw_answer = Some((404, body.into())));
        let validation = run(&one_case(UNKNOWN_MODEL), &Options::new(server.url()), None).await;
        let (kind, message) = protocol_error(&validation);
        assert_eq!(kind, want, "{body}: {message}");
        assert_eq!(validation.report.exit_code(), 2);
    }

    // The error bodies real servers send for an unknown model are the API answering.
    for body in [
        r#"{"error": {"message": "The model `nope` does not exist.", "type": "NotFoundError", "param": null, "code": 404}}"#,
        r#"{"object": "error", "message": "The model `nope` does not exist.", "type": "NotFoundError", "param": null, "code": 404}"#,
        r#"{"error": "model 'nope' not found"}"#,
        r#"{"error": {"code": 404, "message": "model not found", "type": "not_found_error"}}"#,
        // Triton's OpenAI frontend and Xinference, in FastAPI's words.
        r#"{"detail": "Unknown model: nope"}"#,
    ] {
        server.update_faults(|f| f.raw_answer = Some((404, body.into())));
        let report = run(&one_case(UNKNOWN_MODEL), &Options::new(server.url()), None)
            .await
            .report;
        assert_eq!(report.exit_code(), 0, "{body}: {}", report.to_table());
        // And a wrong status with one is still a wrong answer.
        let report = run(&one_case(ASK_REFUND), &Options::new(server.url()), None)
            .await
            .report;
        assert_eq!(report.exit_code(), 1, "{body}: {}", report.to_table());
    }

    // A 401 is an answer whoever wrote it (an auth proxy's page in front of the server): a
    // wrong or missing key is a wrong answer, not a run to try again.
    server.update_faults(|f| f.raw_answer = Some((401, "<html>Unauthorized</html>".into())));
    let report = run(&one_case(ASK_REFUND), &Options::new(server.url()), None)
        .await
        .report;
    assert_eq!(report.exit_code(), 1, "{}", report.to_table());
}

/// A loopback port nothing listens on.
async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}")
}

fn network_error(validation: &Validation) -> (NetworkErrorKind, String) {
    match validation.report.cases[0].error.clone() {
        Some(CallError::Network { kind, message, .. }) => (kind, message),
        other => panic!("expected a network error, got {other:?}"),
    }
}

fn protocol_error(validation: &Validation) -> (ProtocolErrorKind, String) {
    match validation.report.cases[0].error.clone() {
        Some(CallError::Protocol { kind, message }) => (kind, message),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_refused_connection_is_a_network_error_and_is_retried_when_asked() {
    let url = closed_port_url().await;
    let mut options = Options::new(url);
    let validation = run(&one_case(ASK_REFUND), &options, None).await;
    let report = &validation.report;
    assert_eq!(report.cases[0].status, CaseStatus::Error);
    assert!(
        report.cases[0].checks.is_empty(),
        "no expectation was tested"
    );
    assert_eq!(report.summary.verdict, Verdict::Incomplete);
    assert_eq!(report.exit_code(), 2);
    let (kind, message) = network_error(&validation);
    assert_eq!(kind, NetworkErrorKind::Refused, "{message}");
    assert_eq!(report.cases[0].attempts, 1);

    options.retries = 2;
    let retried = run(&one_case(ASK_REFUND), &options, None).await;
    assert_eq!(retried.report.cases[0].attempts, 3);
    assert!(retried.report.to_table().contains("(after 3 attempts)"));
}

#[tokio::test]
async fn wrong_answers_are_never_retried() {
    let server = support_bot().await;
    server.update_faults(|f| f.status = Some(500));
    let mut options = Options::new(server.url());
    options.retries = 3;
    let report = run(&one_case(ASK_REFUND), &options, None).await.report;
    assert_eq!(report.cases[0].attempts, 1);
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn a_timeout_is_a_network_error_not_a_wrong_answer() {
    let server = support_bot().await;
    server.update_faults(|f| f.latency = Duration::from_secs(3));
    let golden = one_case(
        "  - name: refund\n    kind: chat\n    timeout_ms: 200\n    request: {messages: [{role: user, content: \"How long do I have to return an item?\"}]}\n    expect: {latency_ms: 100}\n",
    );
    let validation = run(&golden, &Options::new(server.url()), None).await;
    let (kind, message) = network_error(&validation);
    assert_eq!(kind, NetworkErrorKind::Timeout);
    assert_eq!(message, "no answer came within 200 ms");
    let report = &validation.report;
    assert_eq!(report.cases[0].status, CaseStatus::Error);
    assert_eq!(report.summary.failed, 0, "a timeout is not a wrong answer");
    assert_eq!(report.exit_code(), 2);
}

#[tokio::test]
async fn a_stream_that_stalls_times_out_after_it_started() {
    let server = support_bot().await;
    server.update_faults(|f| f.chunk_delay = Duration::from_millis(120));
    let golden = one_case(
        "  - name: refund\n    kind: chat\n    stream: true\n    timeout_ms: 300\n    request: {messages: [{role: user, content: \"How long do I have to return an item?\"}]}\n",
    );
    let mut options = Options::new(server.url());
    let validation = run(&golden, &options, None).await;
    let (kind, message) = network_error(&validation);
    assert_eq!(kind, NetworkErrorKind::Timeout);
    assert!(
        message.starts_with("the answer started but did not finish"),
        "{message}"
    );
    // The command line's --timeout overrides the file.
    options.timeout = Some(Duration::from_secs(5));
    let validation = run(&golden, &options, None).await;
    assert_eq!(validation.report.exit_code(), 0);
}

#[tokio::test]
async fn malformed_json_is_a_protocol_error() {
    let server = support_bot().await;
    server.update_faults(|f| f.malformed_json = true);
    let whole = run(&one_case(ASK_REFUND), &Options::new(server.url()), None).await;
    let (kind, message) = protocol_error(&whole);
    assert_eq!(kind, ProtocolErrorKind::NotJson, "{message}");
    assert!(message.starts_with("the 200 body is not JSON"), "{message}");
    assert_eq!(whole.report.exit_code(), 2);

    let streamed = run(
        &one_case(&ASK_REFUND.replace("kind: chat\n", "kind: chat\n    stream: true\n")),
        &Options::new(server.url()),
        None,
    )
    .await;
    let (kind, message) = protocol_error(&streamed);
    assert_eq!(kind, ProtocolErrorKind::BadSse);
    assert!(message.starts_with("chunk 1 is not JSON"), "{message}");
}

#[tokio::test]
async fn a_dropped_stream_is_a_network_error() {
    let server = support_bot().await;
    server.update_faults(|f| f.disconnect_after_chunks = Some(3));
    let streamed = one_case(&ASK_REFUND.replace("kind: chat\n", "kind: chat\n    stream: true\n"));
    let validation = run(&streamed, &Options::new(server.url()), None).await;
    let (kind, message) = network_error(&validation);
    assert_eq!(kind, NetworkErrorKind::Disconnected, "{message}");
    assert!(
        message.starts_with("the stream broke after 3 chunk(s)"),
        "{message}"
    );

    let whole = run(&one_case(ASK_REFUND), &Options::new(server.url()), None).await;
    let (kind, message) = network_error(&whole);
    assert_eq!(kind, NetworkErrorKind::Disconnected, "{message}");
}

#[tokio::test]
async fn cases_run_concurrently_and_report_in_file_order() {
    let server = support_bot().await;
    server.update_faults(|f| f.latency = Duration::from_millis(200));
    let cases: String = (0..6)
        .map(|i| format!("  - name: case-{i}\n    kind: completion\n    request: {{prompt: \"n{i}\"}}\n    expect: {{text: n{i}}}\n"))
        .collect();
    let golden = one_case(&cases);
    let mut options = Options::new(server.url());
    options.concurrency = 3;
    let report = run(&golden, &options, None).await.report;
    assert_eq!(report.exit_code(), 0, "{}", report.to_table());
    let names: Vec<_> = report.cases.iter().map(|c| c.name.clone()).collect();
    assert_eq!(
        names,
        (0..6).map(|i| format!("case-{i}")).collect::<Vec<_>>()
    );
    // Two waves of three, not six requests one after the other.
    assert!(report.duration_ms >= 400, "{}", report.duration_ms);
    assert!(report.duration_ms < 1150, "{}", report.duration_ms);
}

#[tokio::test]
async fn the_api_key_is_sent_and_never_reported() {
    let server = FakeOpenAi::builder()
        .model("support-bot")
        .require_api_key("sk-secret-123")
        .start()
        .await
        .unwrap();
    let golden = one_case(ASK_REFUND);
    let anonymous = run(&golden, &Options::new(server.url()), None).await.report;
    assert_eq!(anonymous.cases[0].http_status, Some(401));
    let mut options = Options::new(server.url());
    options.api_key = Some("sk-secret-123".into());
    let report = run(&golden, &options, None).await.report;
    assert_eq!(report.exit_code(), 0, "{}", report.to_table());
    assert_eq!(
        server.requests().last().unwrap().header("authorization"),
        Some("Bearer sk-secret-123")
    );
    assert!(!report.to_json().contains("sk-secret"));
}

#[tokio::test]
async fn a_missing_api_key_variable_stops_the_run_before_any_request() {
    let server = support_bot().await;
    let golden = golden(
        "defaults: {model: support-bot, api_key_env: HANGAR_TEST_KEY_THAT_IS_NEVER_SET}\ncases:\n  - name: a\n    kind: completion\n    request: {prompt: x}\n",
    );
    let err = validate(&golden, &Options::new(server.url()), None)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        RunError::MissingApiKey("HANGAR_TEST_KEY_THAT_IS_NEVER_SET".into())
    );
    assert_eq!(server.request_count(), 0);
}

#[tokio::test]
async fn the_run_is_a_send_future_a_controller_can_spawn() {
    let server = support_bot().await;
    let golden = golden(SUPPORT_BOT);
    let url = server.url();
    let handle = tokio::spawn(async move {
        validate(&golden, &Options::new(url), None)
            .await
            .map(|v| v.report.exit_code())
    });
    assert_eq!(handle.await.unwrap().unwrap(), 0);
}

/// `ASK_REFUND` as a stream.
fn streamed(case: &str) -> String {
    case.replace("kind: chat\n", "kind: chat\n    stream: true\n")
}

#[tokio::test]
async fn a_stream_with_n_choices_reads_only_the_first() {
    let server = support_bot().await;
    let golden = one_case(&streamed(
        "  - name: refund\n    kind: chat\n    request: {n: 2, messages: [{role: user, content: \"How long do I have to return an item?\"}]}\n    expect: {text: \"You can return any item within 30 days of delivery.\"}\n",
    ));
    let validation = run(&golden, &Options::new(server.url()), None).await;
    assert_eq!(
        validation.report.exit_code(),
        0,
        "{}",
        validation.report.to_table()
    );
    // Both choices came, interleaved: a chunk per word for each.
    assert!(validation.answer("refund").unwrap().chunks >= 20);
}

/// Stream events carrying `pieces` as chat deltas, then `[DONE]` followed by `tail`.
fn chat_stream(pieces: &[&str], extra: &str, tail: &str) -> String {
    let mut stream: String = pieces
        .iter()
        .map(|piece| {
            format!(
                "data: {{\"choices\": [{{\"index\": 0, \"delta\": {{\"content\": {}}}}}]{extra}}}\n\n",
                serde_json::Value::from(*piece)
            )
        })
        .collect();
    stream.push_str("data: [DONE]");
    stream.push_str(tail);
    stream
}

#[tokio::test]
async fn a_null_error_in_stream_chunks_is_no_error() {
    let server = support_bot().await;
    let raw = chat_stream(&["30", " days"], ", \"error\": null", "\n\n");
    server.update_faults(|f| f.raw_body = Some(raw.into()));
    let golden = one_case(&streamed(&format!(
        "{ASK_REFUND}    expect: {{text: 30 days}}\n"
    )));
    let report = run(&golden, &Options::new(server.url()), None).await.report;
    assert_eq!(report.exit_code(), 0, "{}", report.to_table());
    // A real error object still is one.
    let raw = chat_stream(
        &["30"],
        ", \"error\": {\"message\": \"engine died\"}",
        "\n\n",
    );
    server.update_faults(|f| f.raw_body = Some(raw.into()));
    let failed = run(&golden, &Options::new(server.url()), None).await;
    let (kind, message) = protocol_error(&failed);
    assert_eq!(kind, ProtocolErrorKind::StreamError);
    assert!(message.contains("engine died"), "{message}");
}

#[tokio::test]
async fn a_stream_ending_in_done_without_a_blank_line_is_complete() {
    let server = support_bot().await;
    let golden = one_case(&streamed(&format!(
        "{ASK_REFUND}    expect: {{text: 30 days}}\n"
    )));
    for tail in ["", "\n", "\r\n"] {
        let raw = chat_stream(&["30", " days"], "", tail);
        server.update_faults(|f| f.raw_body = Some(raw.into()));
        let report = run(&golden, &Options::new(server.url()), None).await.report;
        assert_eq!(report.exit_code(), 0, "{tail:?}: {}", report.to_table());
    }
    // Without `[DONE]` the stream is still broken.
    let cut = "data: {\"choices\": [{\"index\": 0, \"delta\": {\"content\": \"30\"}}]}\n\n";
    server.update_faults(|f| f.raw_body = Some(cut.into()));
    let validation = run(&golden, &Options::new(server.url()), None).await;
    assert_eq!(protocol_error(&validation).0, ProtocolErrorKind::BadSse);
}

#[tokio::test]
async fn a_wrong_answer_beside_undecided_checks_exits_1_and_says_what_was_skipped() {
    let server = support_bot().await;
    // `refund` is wrong (its regex fails) and has no baseline; `ticket` only lacks one.
    let golden = golden(&WITH_SIMILARITY.replace(
        "      similarity: {min: 0.9}",
        "      regex: '14 days'\n      similarity: {min: 0.9}",
    ));
    let report = run(&golden, &Options::new(server.url()), None).await.report;
    assert_eq!(report.cases[0].status, CaseStatus::Failed);
    assert_eq!(report.cases[1].status, CaseStatus::Skipped);
    assert_eq!(report.summary.verdict, Verdict::Failed);
    assert_eq!(report.exit_code(), 1);
    assert_eq!(report.summary.skipped_checks, 2);
    let table = report.to_table();
    assert!(
        table.contains("FAILED: 2 case(s): 0 passed, 1 failed (wrong answer), 1 skipped; 2 check(s) skipped (no usable baseline)"),
        "{table}"
    );
}

const STREAMED_SIMILARITY: &str = r#"
defaults: {model: support-bot}
cases:
  - name: refund
    kind: chat
    stream: true
    request:
      messages: [{role: user, content: "How long do I have to return an item?"}]
    expect:
      similarity: {min: 0.9}
"#;

/// Records `golden` against `server` into a new baseline.
async fn record(golden: &Golden, server: &FakeOpenAiServer) -> Baseline {
    let mut recording = Options::new(server.url());
    recording.mode = Mode::Record;
    let mut validation = run(golden, &recording, None).await;
    let mut baseline = Baseline::new(&validation.report.url, "2025-06-01T00:00:00Z");
    assert_eq!(validation.record_into(&mut baseline).len(), 1);
    baseline
}

#[tokio::test]
async fn editing_an_expectation_keeps_the_baseline() {
    let server = support_bot().await;
    let baseline = record(&golden(STREAMED_SIMILARITY), &server).await;
    // `max_tokens_used` makes Hangar ask for `stream_options`; the question is the same.
    let edited = golden(&STREAMED_SIMILARITY.replace(
        "similarity: {min: 0.9}",
        "similarity: {min: 0.9}\n      max_tokens_used: 50",
    ));
    let report = run(&edited, &Options::new(server.url()), Some(&baseline))
        .await
        .report;
    assert_eq!(report.exit_code(), 0, "{}", report.to_table());
    let sent = server.requests().last().unwrap().json().unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    // The hash is of the request as written: the same whether the case streams or not.
    let whole = golden(&STREAMED_SIMILARITY.replace("    stream: true\n", ""));
    let report = run(&whole, &Options::new(server.url()), Some(&baseline))
        .await
        .report;
    assert_eq!(report.exit_code(), 0, "{}", report.to_table());
    assert_eq!(
        baseline.cases["refund"].request_hash,
        hangar_validate::baseline::request_hash(&serde_json::json!({
            "messages": [{"role": "user", "content": "How long do I have to return an item?"}]
        }))
    );
}

#[tokio::test]
async fn a_baseline_hashed_the_old_way_is_still_read() {
    let server = support_bot().await;
    let golden = golden(STREAMED_SIMILARITY);
    let mut baseline = record(&golden, &server).await;
    // Older baselines hashed the whole body sent, `stream` included.
    let sent = server.requests().last().unwrap().json().unwrap();
    assert_eq!(sent["stream"], true);
    let old_hash = hangar_validate::baseline::request_hash(&sent);
    assert_ne!(old_hash, baseline.cases["refund"].request_hash);
    baseline.cases.get_mut("refund").unwrap().request_hash = old_hash;
    let report = run(&golden, &Options::new(server.url()), Some(&baseline))
        .await
        .report;
    assert_eq!(report.exit_code(), 0, "{}", report.to_table());
    assert_eq!(report.cases[0].checks[1].got, "1.0000");
}

#[tokio::test]
async fn gateway_unavailability_is_a_retryable_error_not_a_wrong_answer() {
    let server = support_bot().await;
    for status in [429, 502, 503, 504] {
        server.set_faults(Faults {
            status: Some(status),
            retry_after: Some("2".into()),
            ..Faults::default()
        });
        let validation = run(&one_case(ASK_REFUND), &Options::new(server.url()), None).await;
        let report = &validation.report;
        let (kind, message) = network_error(&validation);
        assert_eq!(kind, NetworkErrorKind::Unavailable, "{status}: {message}");
        assert!(
            message.starts_with(&format!("the server answered {status} ")),
            "{message}"
        );
        assert!(
            message.contains("The fake server was told to fail."),
            "{message}"
        );
        assert!(message.ends_with("(Retry-After: 2)"), "{message}");
        assert_eq!(report.cases[0].http_status, Some(status));
        assert_eq!(report.summary.failed, 0, "{status} is not a wrong answer");
        assert_eq!(report.exit_code(), 2);
        assert!(
            report.to_table().contains("network error (unavailable)"),
            "{}",
            report.to_table()
        );
    }

    // A retry waits as long as the server asked (capped), not just the short default pause.
    server.set_faults(Faults {
        status: Some(503),
        status_count: Some(1),
        retry_after: Some("1".into()),
        ..Faults::default()
    });
    let mut options = Options::new(server.url());
    options.retries = 1;
    let started = std::time::Instant::now();
    let report = run(&one_case(ASK_REFUND), &options, None).await.report;
    assert_eq!(report.exit_code(), 0, "{}", report.to_table());
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));

    // `--retries` resends, and a server that comes back passes.
    server.set_faults(Faults {
        status: Some(503),
        status_count: Some(1),
        ..Faults::default()
    });
    server.clear_requests();
    let mut options = Options::new(server.url());
    options.retries = 2;
    let report = run(&one_case(ASK_REFUND), &options, None).await.report;
    assert_eq!(report.exit_code(), 0, "{}", report.to_table());
    assert_eq!(report.cases[0].attempts, 2);
    assert_eq!(server.request_count(), 2);

    // A case that expects the status gets it as its answer.
    server.update_faults(|f| f.status = Some(429));
    let expects_429 = one_case(&format!("{ASK_REFUND}    expect: {{status: 429}}\n"));
    let report = run(&expects_429, &Options::new(server.url()), None)
        .await
        .report;
    assert_eq!(report.exit_code(), 0, "{}", report.to_table());
}

#[tokio::test]
async fn a_url_naming_an_endpoint_is_refused_before_any_request() {
    let server = support_bot().await;
    for endpoint in [
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings/",
        "/v1/models",
    ] {
        let url = format!("{}{endpoint}", server.url());
        let err = validate(&one_case(ASK_REFUND), &Options::new(&url), None)
            .await
            .unwrap_err();
        let RunError::Client(ClientError(message)) = err else {
            panic!("{url}: {err:?}");
        };
        assert!(
            message.contains(&format!("give the base URL `{}/v1`", server.url())),
            "{message}"
        );
    }
    assert_eq!(server.request_count(), 0);
}

#[tokio::test]
async fn embedding_values_past_f32_are_a_protocol_error_and_never_recorded() {
    let server = support_bot().await;
    let raw = r#"{"object": "list", "data": [{"index": 0, "embedding": [0.5, 1e39]}]}"#;
    server.update_faults(|f| f.raw_body = Some(raw.into()));
    let golden = golden(WITH_SIMILARITY);
    let mut recording = Options::new(server.url());
    recording.mode = Mode::Record;
    let mut validation = run(&golden, &recording, None).await;
    let ticket = validation.report.case("ticket").unwrap().clone();
    match ticket.error {
        Some(CallError::Protocol { kind, message }) => {
            assert_eq!(kind, ProtocolErrorKind::UnexpectedShape);
            assert!(
                message.contains("`data[0].embedding[1]` is 1e39"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ticket.status, CaseStatus::Error);
    let mut baseline = Baseline::new("u", "t");
    assert!(
        !validation
            .record_into(&mut baseline)
            .contains(&"ticket".to_owned())
    );
}

#[tokio::test]
async fn a_body_past_16_mib_is_too_large() {
    let server = support_bot().await;
    // Valid JSON, made large with trailing spaces: only the size is wrong.
    let mut raw = String::from(r#"{"choices": [{"index": 0, "message": {"content": "30 days"}}]}"#);
    raw.push_str(&" ".repeat(16 * 1024 * 1024));
    server.update_faults(|f| f.raw_body = Some(raw.into()));
    let validation = run(&one_case(ASK_REFUND), &Options::new(server.url()), None).await;
    let (kind, message) = protocol_error(&validation);
    assert_eq!(kind, ProtocolErrorKind::TooLarge);
    assert_eq!(message, "the body is larger than 16 MiB");
    assert_eq!(validation.report.cases[0].http_status, Some(200));
    assert_eq!(validation.report.exit_code(), 2);
}

#[tokio::test]
async fn streams_past_the_limit_are_too_large() {
    let server = support_bot().await;
    let golden = one_case(&streamed(ASK_REFUND));
    let mut options = Options::new(server.url());
    options.max_body_bytes = 64 * 1024;

    // One line that never ends.
    let endless = format!("data: {}", "x".repeat(100 * 1024));
    server.update_faults(|f| f.raw_body = Some(endless.into()));
    let validation = run(&golden, &options, None).await;
    let (kind, message) = protocol_error(&validation);
    assert_eq!(kind, ProtocolErrorKind::TooLarge);
    assert_eq!(message, "a stream event is larger than 65536 bytes");

    // Small events whose text adds up.
    let piece = "word ".repeat(100);
    let many = chat_stream(&vec![piece.as_str(); 200], "", "\n\n");
    server.update_faults(|f| f.raw_body = Some(many.into()));
    let validation = run(&golden, &options, None).await;
    let (kind, message) = protocol_error(&validation);
    assert_eq!(kind, ProtocolErrorKind::TooLarge);
    assert_eq!(message, "the streamed answer is longer than 65536 bytes");

    // The same stream is fine under the default limit.
    let report = run(&golden, &Options::new(server.url()), None).await.report;
    assert_eq!(report.exit_code(), 0, "{}", report.to_table());
}

#[tokio::test]
async fn an_error_after_the_response_head_keeps_its_http_status() {
    let server = support_bot().await;
    server.update_faults(|f| f.disconnect_after_chunks = Some(2));
    let broken = run(
        &one_case(&streamed(ASK_REFUND)),
        &Options::new(server.url()),
        None,
    )
    .await;
    assert_eq!(network_error(&broken).0, NetworkErrorKind::Disconnected);
    assert_eq!(broken.report.cases[0].http_status, Some(200));
    assert!(
        broken
            .report
            .to_table()
            .contains("ERROR refund  chat stream  200"),
        "{}",
        broken.report.to_table()
    );

    server.set_faults(Faults {
        chunk_delay: Duration::from_millis(150),
        ..Faults::default()
    });
    let stalled = one_case(&streamed(
        &ASK_REFUND.replace("kind: chat\n", "kind: chat\n    timeout_ms: 250\n"),
    ));
    let timed_out = run(&stalled, &Options::new(server.url()), None).await;
    assert_eq!(network_error(&timed_out).0, NetworkErrorKind::Timeout);
    assert_eq!(timed_out.report.cases[0].http_status, Some(200));

    // No response at all: no status.
    let refused = run(
        &one_case(ASK_REFUND),
        &Options::new(closed_port_url().await),
        None,
    )
    .await;
    assert_eq!(refused.report.cases[0].http_status, None);
}
