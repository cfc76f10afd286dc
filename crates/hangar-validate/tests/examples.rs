//! The golden sets in `examples/golden/` parse, and pass against a fake server that answers
//! the way the real models were recorded answering: record, then check, then catch drift.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

use hangar_testkit::fake_openai::{FakeOpenAi, FakeOpenAiServer};
use hangar_validate::{Baseline, CaseStatus, Golden, Mode, Options, Verdict, validate};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/golden")
        .join(name)
}

async fn support_models() -> FakeOpenAiServer {
    FakeOpenAi::builder()
        .model("meta-llama/Llama-3.1-8B-Instruct")
        .model("BAAI/bge-small-en-v1.5")
        .embedding_dimensions(384)
        .reply_to(
            "How long do I have to return an item?",
            "You can return any item within 30 days of delivery for a full refund.",
        )
        .reply_to(
            "My parcel never arrived and I want my money back.",
            r#"{"intent": "refund", "urgency": "high", "order_id": null}"#,
        )
        .reply_to(
            "Hi! Can you help me with an order?",
            "Of course! Please share your order number and I will look it up.",
        )
        .reply_to(
            "Subject: Delayed delivery\n\nDear customer,\n\nWe are sorry that",
            " your order is late. It left our warehouse on Monday and should reach you within two days.",
        )
        .start()
        .await
        .unwrap()
}

#[test]
fn every_example_parses() {
    let dir = example("");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            Golden::load(&path).unwrap_or_else(|err| panic!("{err}"));
            count += 1;
        }
    }
    assert!(count >= 2, "{count} golden sets in {}", dir.display());
}

#[tokio::test]
async fn the_examples_record_pass_and_catch_drift() {
    let server = support_models().await;
    for name in ["support-bot.yaml", "support-embeddings.yaml"] {
        let golden = Golden::load(&example(name)).unwrap();
        let mut options = Options::new(server.url());
        options.api_key = Some("sk-EXAMPLE".into());
        options.mode = Mode::Record;
        let mut recording = validate(&golden, &options, None).await.unwrap();
        let table = recording.report.to_table();
        assert_eq!(recording.report.exit_code(), 0, "{name}:\n{table}");
        let mut baseline = Baseline::new(&recording.report.url, "2025-06-01T00:00:00Z");
        let recorded = recording.record_into(&mut baseline);
        assert!(!recorded.is_empty(), "{name}");
        assert!(!recorded.iter().any(|c| c == "unknown-model-is-refused"));

        options.mode = Mode::Check;
        let check = validate(&golden, &options, Some(&baseline)).await.unwrap();
        assert_eq!(
            check.report.summary.verdict,
            Verdict::Passed,
            "{name}:\n{}",
            check.report.to_table()
        );

        server.update_faults(|f| f.drift = true);
        let drifted = validate(&golden, &options, Some(&baseline)).await.unwrap();
        server.clear_faults();
        let report = &drifted.report;
        assert_eq!(report.exit_code(), 1, "{name}:\n{}", report.to_table());
        for case in golden
            .set
            .cases
            .iter()
            .filter(|c| c.expect.similarity.is_some())
        {
            assert_eq!(
                report.case(&case.name).unwrap().status,
                CaseStatus::Failed,
                "{name}/{}:\n{}",
                case.name,
                report.to_table()
            );
        }
    }
}

/// The walkthrough's mistake: `--url` with a path prefix the proxy does not route, which answers
/// every request with its own HTML 404 page. Nothing is a wrong answer, nothing passes (the
/// unknown-model case included), and the run is incomplete.
#[tokio::test]
async fn the_support_bot_behind_a_wrong_path_is_incomplete_not_wrong() {
    let server = support_models().await;
    server.update_faults(|f| {
        f.raw_answer = Some((
            404,
            "<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1></body></html>".into(),
        ))
    });
    let golden = Golden::load(&example("support-bot.yaml")).unwrap();
    let mut options = Options::new(format!("{}/team-a", server.url()));
    options.api_key = Some("sk-EXAMPLE".into());
    let run = validate(&golden, &options, None).await.unwrap();
    let report = &run.report;
    let table = report.to_table();
    assert_eq!(report.summary.verdict, Verdict::Incomplete, "{table}");
    assert_eq!(report.exit_code(), 2, "{table}");
    assert_eq!(report.summary.failed, 0, "{table}");
    assert_eq!(report.summary.passed, 0, "{table}");
    assert!(
        report.cases.iter().all(|c| c.status == CaseStatus::Error),
        "{table}"
    );
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.path.starts_with("/team-a/v1/")),
        "{:?}",
        server.requests()
    );
}
