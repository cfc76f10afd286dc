//! The gateway as a server: protocols, TLS, reloads, routing changes, overload and shutdown.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Setup, TestGateway, chat};
use hangar_testkit::fake_openai::{FakeOpenAi, FakeOpenAiServer, Faults};
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEYS: &[(&str, &str)] = &[("a-1", "a"), ("pinner-1", "pinner"), ("b-1", "b")];

fn tenants(extra_a: &str) -> String {
    format!(
        "a:\n  models: [\"*\"]\n{extra_a}pinner:\n  models: [\"*\"]\n  allowVersionPin: true\nb:\n  models: [\"*\"]\n"
    )
}

/// One version of `llama` on the fake at `{upstream}`.
const ONE_VERSION: &str = "llama:\n  versions:\n    - {name: v1, url: \"{upstream}\", upstreamModel: fake-llama, weight: 1}\n";

const TWO_VERSIONS: &str = "\
llama:
  sticky: none
  versions:
    - {name: blue, url: \"{upstream}\", upstreamModel: fake-llama, weight: 100}
    - {name: green, url: \"{upstream2}\", upstreamModel: fake-llama, weight: 0}
";

async fn fake() -> FakeOpenAiServer {
    FakeOpenAi::builder()
        .model("fake-llama")
        .reply_to("What is 2+2?", "4")
        .start()
        .await
        .unwrap()
}

async fn start(tenants: &str, models: &str, extra: &str, upstreams: &[&str]) -> TestGateway {
    TestGateway::start(
        Setup {
            keys: KEYS,
            tenants,
            models,
            extra,
        },
        upstreams,
    )
    .await
}

#[tokio::test]
async fn an_overloaded_version_whose_other_cannot_be_reached_is_still_an_overload() {
    let blue = fake().await;
    blue.set_faults(Faults {
        status: Some(429),
        retry_after: Some("7".into()),
        ..Faults::default()
    });
    // Green's address is a port nothing listens on any more.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let models = TWO_VERSIONS.replace("{upstream2}", &format!("http://{closed}"));
    let mut gw = start(&tenants(""), &models, "", &[&blue.url()]).await;
    // The client is told to come back, with blue's Retry-After, not that the model is gone.
    assert_overloaded(&chat_as(&gw, "a-1").await, "7");
    let metrics = gw.metrics().await;
    for (version, kind) in [("blue", "429"), ("green", "connect")] {
        let line = format!(
            "hangar_gateway_upstream_errors_total{{model=\"llama\",version=\"{version}\",kind=\"{kind}\"}} 1"
        );
        assert!(metrics.contains(&line), "{line} missing from {metrics}");
    }
    let records = gw.audit_records().await;
    assert_eq!(records[0]["failed_over_from"], "blue", "{records:?}");
    assert_eq!(records[0]["code"], "upstream_overloaded", "{records:?}");
}

#[tokio::test]
async fn weights_and_pins_route_between_versions() {
    let (blue, green) = (fake().await, fake().await);
    let gw = start(&tenants(""), TWO_VERSIONS, "", &[&blue.url(), &green.url()]).await;
    for _ in 0..5 {
        let answer = chat_as(&gw, "a-1").await;
        assert_eq!(answer.header("x-hangar-version"), Some("blue"));
    }
    assert_eq!(green.request_count(), 0, "weight 0 takes no traffic");

    let pinned = pinned_chat(&gw, "pinner-1", "green").await;
    assert_eq!(pinned.header("x-hangar-version"), Some("green"));
    assert_eq!(green.request_count(), 1);
    let refused = pinned_chat(&gw, "a-1", "green").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.code(), "version_pin_not_allowed");
}

#[tokio::test]
async fn a_version_that_cannot_be_connected_to_hands_its_requests_to_another() {
    let green = fake().await;
    // Blue's address is a port nothing listens on any more.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let models = TWO_VERSIONS.replace("{upstream}", &format!("http://{closed}"));
    let mut gw = start(&tenants(""), &models, "", &[&green.url(), &green.url()]).await;
    for _ in 0..3 {
        assert_chat_served_by(&gw, "green").await;
    }
    assert_stream_served_by(&gw, "green").await;
    assert_eq!(green.request_count(), 4);

    // A client that pinned the version gets that version or nothing.
    let pinned = pinned_chat(&gw, "pinner-1", "blue").await;
    assert_eq!(pinned.status, StatusCode::BAD_GATEWAY);
    assert_eq!(pinned.code(), "upstream_unreachable");
    assert_eq!(green.request_count(), 4);

    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(
            "hangar_gateway_upstream_errors_total{model=\"llama\",version=\"blue\",kind=\"connect\"} 5"
        ),
        "{metrics}"
    );
    for record in moved_from_blue_to_green(&mut gw, 4).await {
        assert_eq!(record["status"], 200, "{record}");
    }
}

#[tokio::test]
async fn each_other_version_is_tried_in_turn_most_weight_first() {
    // Blue cannot be reached, green (more weight than the canary) is overloaded: the canary
    // takes the request.
    let (green, canary) = (fake().await, fake().await);
    green.set_faults(Faults {
        status: Some(503),
        ..Faults::default()
    });
    // Bound but not listening: connections are refused, and no other test can take the port
    // meanwhile, as one could a port merely closed, over the twenty requests.
    let refusing = tokio::net::TcpSocket::new_v4().unwrap();
    refusing.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed = refusing.local_addr().unwrap();
    let models = format!(
        "\
llama:
  sticky: none
  versions:
    - {{name: blue, url: \"http://{closed}\", upstreamModel: fake-llama, weight: 50}}
    - {{name: canary, url: \"{{upstream2}}\", upstreamModel: fake-llama, weight: 20}}
    - {{name: green, url: \"{{upstream}}\", upstreamModel: fake-llama, weight: 30}}
"
    );
    let mut gw = start(&tenants(""), &models, "", &[&green.url(), &canary.url()]).await;
    let answer = pinned_chat(&gw, "pinner-1", "blue").await;
    assert_eq!(
        answer.code(),
        "upstream_unreachable",
        "a pin never fails over"
    );
    let mut served = 0;
    for _ in 0..20 {
        let answer = chat_as(&gw, "a-1").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        served += usize::from(answer.header("x-hangar-version") == Some("canary"));
    }
    assert_eq!(served, 20);
    let metrics = gw.metrics().await;
    let green_declined =
        "hangar_gateway_upstream_errors_total{model=\"llama\",version=\"green\",kind=\"503\"} ";
    let declined: usize = (metrics.lines())
        .find_map(|line| line.strip_prefix(green_declined))
        .map_or(0, |count| count.parse().unwrap());
    let records = gw.audit_records().await;
    // Green, with more weight than the canary, was tried before it after blue too: it declined
    // every request that did not go to the canary first.
    let failed_over = (records.iter())
        .filter(|r| r["failed_over_from"] == "blue" || r["failed_over_from"] == "green")
        .count();
    assert_eq!(declined, failed_over, "{records:?}");
    // Each refusal was read to its end, its connection kept: one, or two should a request have
    // come before the last refusal's end was read.
    assert!(declined > 2, "{declined}");
    assert!(green.connections() <= 2, "{}", green.connections());
    let from_blue = (records.iter())
        .filter(|r| r["failed_over_from"] == "blue")
        .count();
    assert!(from_blue > 0, "{records:?}");
    assert!(
        (records.iter())
            .filter(|r| r["failed_over_from"] == "blue")
            .all(|r| r["version"] == "canary"),
        "{records:?}"
    );
}

#[tokio::test]
async fn a_request_handed_to_another_version_is_written_for_that_version() {
    let blue = fake().await;
    blue.set_faults(Faults {
        status: Some(503),
        ..Faults::default()
    });
    let green = FakeOpenAi::builder()
        .model("green-llama")
        .reply_to("What is 2+2?", "4")
        .start()
        .await
        .unwrap();
    let models = "\
llama:
  sticky: none
  versions:
    - {name: blue, url: \"{upstream}\", upstreamModel: fake-llama, weight: 100}
    - {name: green, url: \"{upstream2}\", upstreamModel: green-llama, capField: maxCompletionTokens, weight: 0}
";
    let gw = start(&tenants(""), models, "", &[&blue.url(), &green.url()]).await;
    assert_chat_served_by(&gw, "green").await;
    let first: serde_json::Value = serde_json::from_str(&blue.requests()[0].body).unwrap();
    let second: serde_json::Value = serde_json::from_str(&green.requests()[0].body).unwrap();
    assert_eq!(first["model"], "fake-llama");
    assert!(first["max_tokens"].is_u64(), "{first}");
    // Green's own name for the model, and the cap in the field green reads, alone.
    assert_eq!(second["model"], "green-llama");
    assert_eq!(
        second["max_completion_tokens"], first["max_tokens"],
        "{second}"
    );
    assert!(second.get("max_tokens").is_none(), "{second}");
    assert_eq!(second["messages"], first["messages"]);
}

#[tokio::test]
async fn a_version_that_declines_with_429_or_503_hands_its_requests_to_another_and_a_500_stays() {
    let (blue, green) = (fake().await, fake().await);
    let mut gw = start(&tenants(""), TWO_VERSIONS, "", &[&blue.url(), &green.url()]).await;
    let decline = |status: u16| Faults {
        status: Some(status),
        retry_after: Some("7".into()),
        ..Faults::default()
    };

    blue.set_faults(decline(503));
    assert_chat_served_by(&gw, "green").await;
    blue.set_faults(decline(429));
    assert_stream_served_by(&gw, "green").await;
    assert_eq!((blue.request_count(), green.request_count()), (2, 2));

    // A pinned client hears the overload itself (a 503 for the 429), with the model server's
    // Retry-After.
    let pinned = pinned_chat(&gw, "pinner-1", "blue").await;
    assert_eq!(pinned.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(pinned.code(), "upstream_overloaded");
    assert_eq!(pinned.header("retry-after"), Some("7"));

    // A 500 may come after the model ran: it is not sent again.
    blue.set_faults(decline(500));
    let failed = chat_as(&gw, "a-1").await;
    assert_eq!(failed.status, StatusCode::BAD_GATEWAY, "{}", failed.text());
    assert_eq!(failed.code(), "upstream_error");
    assert_eq!((blue.request_count(), green.request_count()), (4, 2));

    // When every version declines, the client gets the overload and the last Retry-After.
    blue.set_faults(decline(503));
    green.set_faults(Faults {
        retry_after: Some("3".into()),
        ..decline(503)
    });
    let overloaded = chat_as(&gw, "a-1").await;
    assert_eq!(overloaded.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(overloaded.header("retry-after"), Some("3"));
    assert_eq!((blue.request_count(), green.request_count()), (5, 3));

    let metrics = gw.metrics().await;
    for (version, kind, count) in [
        ("blue", "503", 2),
        ("blue", "429", 2),
        ("blue", "500", 1),
        ("green", "503", 1),
    ] {
        let line = format!(
            "hangar_gateway_upstream_errors_total{{model=\"llama\",version=\"{version}\",kind=\"{kind}\"}} {count}"
        );
        assert!(metrics.contains(&line), "{line} missing from {metrics}");
    }
    moved_from_blue_to_green(&mut gw, 3).await;
}

#[tokio::test]
async fn a_version_that_takes_no_fallbacks_is_left_alone_when_another_declines() {
    let (blue, green) = (fake().await, fake().await);
    let models = TWO_VERSIONS.replace("weight: 0}", "weight: 0, fallback: false}");
    let gw = start(&tenants(""), &models, "", &[&blue.url(), &green.url()]).await;
    blue.set_faults(Faults {
        status: Some(503),
        retry_after: Some("7".into()),
        ..Faults::default()
    });
    // Green is being validated: blue's overload is the client's to wait out, not green's.
    assert_overloaded(&chat_as(&gw, "a-1").await, "7");
    assert_eq!((blue.request_count(), green.request_count()), (1, 0));
    // It still serves what is sent to it.
    let pinned = pinned_chat(&gw, "pinner-1", "green").await;
    assert_eq!(pinned.status, StatusCode::OK, "{}", pinned.text());
    assert_eq!(green.request_count(), 1);
}

#[tokio::test]
async fn a_version_too_slow_after_another_declined_is_an_overload() {
    let (blue, green) = (fake().await, fake().await);
    blue.set_faults(Faults {
        status: Some(503),
        retry_after: Some("7".into()),
        ..Faults::default()
    });
    let slow = Faults {
        latency: Duration::from_secs(5),
        ..Faults::default()
    };
    green.set_faults(slow.clone());
    let tenants = tenants("  timeouts: {firstToken: 300ms}\n");
    let gw = start(&tenants, TWO_VERSIONS, "", &[&blue.url(), &green.url()]).await;
    // Blue shed the request and green did not answer in time: come back in blue's 7 s.
    assert_overloaded(&chat_as(&gw, "a-1").await, "7");
    // A slow server that nobody declined before is a timeout.
    blue.set_faults(slow);
    let answer = chat_as(&gw, "a-1").await;
    assert_eq!(
        answer.status,
        StatusCode::GATEWAY_TIMEOUT,
        "{}",
        answer.text()
    );
    assert_eq!(answer.code(), "upstream_timeout");
}

/// A 503 `upstream_overloaded` that says when to come back.
fn assert_overloaded(answer: &common::Answer, retry_after: &str) {
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.text()
    );
    assert_eq!(answer.code(), "upstream_overloaded");
    assert_eq!(answer.header("retry-after"), Some(retry_after));
}

/// A chat from `key`'s tenant that pins `version`.
async fn pinned_chat(gw: &TestGateway, key: &str, version: &str) -> common::Answer {
    gw.post_with(
        "/v1/chat/completions",
        Some(gw.key(key)),
        &chat("llama", "hi"),
        &[("x-hangar-version", version)],
    )
    .await
}

/// A short chat about `llama`, with `key`'s credential.
async fn chat_as(gw: &TestGateway, key: &str) -> common::Answer {
    gw.chat(gw.key(key), "hi").await
}

/// A chat, answered by `version`.
async fn assert_chat_served_by(gw: &TestGateway, version: &str) {
    let answer = chat_as(gw, "a-1").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.header("x-hangar-version"), Some(version));
}

/// A streamed chat, answered to the end by `version`.
async fn assert_stream_served_by(gw: &TestGateway, version: &str) {
    let streamed = gw
        .post(
            "/v1/chat/completions",
            Some(gw.key("a-1")),
            &serde_json::json!({"model": "llama", "stream": true,
                "messages": [{"role": "user", "content": "What is 2+2?"}]}),
        )
        .await;
    assert_eq!(streamed.status, StatusCode::OK, "{}", streamed.text());
    assert!(streamed.text().contains("[DONE]"), "{}", streamed.text());
    assert_eq!(streamed.header("x-hangar-version"), Some(version));
}

/// The audit records of requests that failed over from blue: `count` of them, all to green.
async fn moved_from_blue_to_green(gw: &mut TestGateway, count: usize) -> Vec<serde_json::Value> {
    let moved: Vec<serde_json::Value> = gw
        .audit_records()
        .await
        .into_iter()
        .filter(|r| r["failed_over_from"] == "blue")
        .collect();
    assert_eq!(moved.len(), count, "{moved:?}");
    assert!(moved.iter().all(|r| r["version"] == "green"), "{moved:?}");
    moved
}

#[tokio::test]
async fn a_reload_shifts_traffic_without_dropping_a_stream_and_a_bad_file_changes_nothing() {
    let (blue, green) = (fake().await, fake().await);
    blue.set_faults(Faults {
        chunk_delay: Duration::from_millis(200),
        ..Faults::default()
    });
    let gw = start(&tenants(""), TWO_VERSIONS, "", &[&blue.url(), &green.url()]).await;

    // A slow stream starts on blue…
    let in_flight = gw.spawn_stream("a-1");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // …then the weights flip to green while it is still streaming.
    let config = std::fs::read_to_string(&gw.config_path).unwrap();
    let flipped = config
        .replace("weight: 100}", "weight: swap}")
        .replace("weight: 0}", "weight: 100}")
        .replace("weight: swap}", "weight: 0}");
    assert!(flipped.contains("name: green") && flipped != config);
    std::fs::write(&gw.config_path, &flipped).unwrap();
    assert!(hangar_gateway::server::reload(&gw.gateway, &gw.config_path));

    let answer = chat_as(&gw, "a-1").await;
    assert_eq!(answer.header("x-hangar-version"), Some("green"));

    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.trim_end().ends_with("data: [DONE]"),
        "the stream in flight was cut: {text}"
    );

    // A broken file is refused and green keeps serving.
    std::fs::write(
        &gw.config_path,
        flipped.replace("tenants:", "tenants: [oops"),
    )
    .unwrap();
    assert!(!hangar_gateway::server::reload(
        &gw.gateway,
        &gw.config_path
    ));
    std::fs::write(
        &gw.config_path,
        flipped.replace("upstreamModel", "upstreamModle"),
    )
    .unwrap();
    assert!(!hangar_gateway::server::reload(
        &gw.gateway,
        &gw.config_path
    ));
    let answer = chat_as(&gw, "a-1").await;
    assert_eq!(answer.header("x-hangar-version"), Some("green"));
    let metrics = gw.metrics().await;
    // The file watcher may have seen the same files too: at least these reloads happened.
    assert!(
        metrics.contains("hangar_gateway_config_reloads_total{result=\"rejected\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("hangar_gateway_config_reloads_total{result=\"applied\"}"));
}

#[tokio::test]
async fn settings_only_a_restart_applies_are_compared_with_those_the_process_started_with() {
    let (_upstream, gw) = one_version("limits: {drain: 5s}").await;
    let started = std::fs::read_to_string(&gw.config_path).unwrap();
    let reload_with = |text: &str| {
        std::fs::write(&gw.config_path, text).unwrap();
        assert!(hangar_gateway::server::reload(&gw.gateway, &gw.config_path));
        hangar_gateway::server::waiting_for_restart(&gw.gateway)
    };
    let longer_drain = started.replace("drain: 5s", "drain: 6s");
    assert_ne!(longer_drain, started);
    assert_eq!(reload_with(&longer_drain), ["limits.drain"]);
    // A later edit of something else still says the drain waits for a restart…
    let capped = longer_drain.replace("  pinner:\n", "  pinner:\n    maxTokens: 7\n");
    assert_eq!(reload_with(&capped), ["limits.drain"]);
    // …and once the drain is back to what runs, nothing waits.
    assert!(reload_with(&capped.replace("drain: 6s", "drain: 5s")).is_empty());
}

#[tokio::test]
async fn the_operator_endpoints_answer_get_and_head_only() {
    let (_upstream, gw) = one_version("").await;
    for path in ["/metrics", "/healthz", "/readyz"] {
        let url = format!("{}{path}", gw.admin);
        let posted = Request::post(url.as_str()).body(Full::default()).unwrap();
        let (status, headers, _) = common::send(posted).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "POST {path}");
        assert_eq!(headers["allow"], "GET, HEAD", "POST {path}");
        let head = Request::head(url.as_str()).body(Full::default()).unwrap();
        let (status, _, body) = common::send(head).await;
        assert_eq!(status, StatusCode::OK, "HEAD {path}");
        assert!(body.is_empty(), "HEAD {path}");
    }
    let elsewhere = Request::delete(format!("{}/nothing", gw.admin))
        .body(Full::default())
        .unwrap();
    assert_eq!(common::send(elsewhere).await.0, StatusCode::NOT_FOUND);
    assert!(gw.metrics().await.contains("hangar_gateway_in_flight"));
}

#[tokio::test]
async fn an_edited_file_is_picked_up_by_the_watcher() {
    let (blue, green) = (fake().await, fake().await);
    let gw = start(&tenants(""), TWO_VERSIONS, "", &[&blue.url(), &green.url()]).await;
    let config = std::fs::read_to_string(&gw.config_path).unwrap();
    // Let the file's timestamp move on before rewriting it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(
        &gw.config_path,
        config.replace("  pinner:\n", "  pinner:\n    maxTokens: 7\n"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if gw.gateway.runtime().tenants["pinner"].params.max_tokens == 7 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the changed file was not reloaded within 5 s");
}

#[tokio::test]
async fn a_file_still_being_written_is_not_applied() {
    // An editor writing in place: a version that parses, then 300 ms later the one meant.
    let (blue, green) = (fake().await, fake().await);
    let gw = start(&tenants(""), TWO_VERSIONS, "", &[&blue.url(), &green.url()]).await;
    let config = std::fs::read_to_string(&gw.config_path).unwrap();
    let with_cap =
        |cap: u32| config.replace("  pinner:\n", &format!("  pinner:\n    maxTokens: {cap}\n"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(&gw.config_path, with_cap(5)).unwrap();
    let max_tokens = || gw.gateway.runtime().tenants["pinner"].params.max_tokens;
    let written = Instant::now();
    while written.elapsed() < Duration::from_millis(300) {
        assert_ne!(max_tokens(), 5, "the passing version was applied");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    std::fs::write(&gw.config_path, with_cap(7)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while max_tokens() != 7 {
        assert_ne!(max_tokens(), 5, "the passing version was applied");
        assert!(
            Instant::now() < deadline,
            "the file was not reloaded within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_configuration_refused_for_a_missing_file_is_applied_when_the_file_comes() {
    let (blue, green) = (fake().await, fake().await);
    let gw = start(&tenants(""), TWO_VERSIONS, "", &[&blue.url(), &green.url()]).await;
    let config = std::fs::read_to_string(&gw.config_path).unwrap();
    let seed = gw.dir.path().join("canary-seed");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The ConfigMap comes first and names a Secret's file that is not mounted yet.
    std::fs::write(
        &gw.config_path,
        format!(
            "{}guards: {{canarySeedFile: {}}}\n",
            config.replace("  pinner:\n", "  pinner:\n    maxTokens: 7\n"),
            seed.display()
        ),
    )
    .unwrap();
    let max_tokens = || gw.gateway.runtime().tenants["pinner"].params.max_tokens;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_ne!(max_tokens(), 7, "applied without its file");
    std::fs::write(&seed, "a seed\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if max_tokens() == 7 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the configuration was not applied within 5 s of its file coming");
}

#[tokio::test]
async fn past_the_tenant_concurrency_cap_it_is_429_and_past_the_gateway_cap_503_then_it_recovers() {
    let upstream = fake().await;
    upstream.set_faults(Faults {
        latency: Duration::from_millis(500),
        ..Faults::default()
    });
    let gw = Arc::new(
        start(
            &tenants("  maxConcurrent: 2\n"),
            ONE_VERSION,
            "limits: {maxConcurrent: 3}",
            &[&upstream.url()],
        )
        .await,
    );
    let send = |id: &'static str| {
        let gw = Arc::clone(&gw);
        tokio::spawn(async move {
            gw.post(
                "/v1/chat/completions",
                Some(gw.key(id)),
                &chat("llama", "hi"),
            )
            .await
            .status
        })
    };
    let a: Vec<_> = (0..3).map(|_| send("a-1")).collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let b: Vec<_> = (0..2).map(|_| send("b-1")).collect();
    let mut statuses = Vec::new();
    for task in a.into_iter().chain(b) {
        statuses.push(task.await.unwrap());
    }
    let count = |s: StatusCode| statuses.iter().filter(|&&x| x == s).count();
    assert_eq!(count(StatusCode::OK), 3, "{statuses:?}");
    assert_eq!(
        count(StatusCode::TOO_MANY_REQUESTS),
        1,
        "a's third request: {statuses:?}"
    );
    assert_eq!(
        count(StatusCode::SERVICE_UNAVAILABLE),
        1,
        "the gateway was full: {statuses:?}"
    );

    // Everything was released: the same load now fits again.
    upstream.clear_faults();
    let answer = chat_as(&gw, "b-1").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(gw.gateway.limiter.in_flight(), 0);
}

#[tokio::test]
async fn a_client_that_sends_its_body_too_slowly_is_cut_off() {
    let (_upstream, gw) = one_version("limits: {requestRead: 1s}").await;
    let address = gw.url.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"model\":",
        gw.key("a-1")
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_request_whose_first_byte_comes_alone_is_served() {
    // `P` could begin HTTP/2's preface: the gateway waits for more to tell.
    let (_upstream, gw) = one_version("").await;
    let mut socket = raw_connection(&gw).await;
    let body = chat("llama", "What is 2+2?").to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        gw.key("a-1"),
        body.len()
    );
    socket.write_all(&request.as_bytes()[..1]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    socket.write_all(&request.as_bytes()[1..]).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"4\""), "{answer}");
}

#[tokio::test]
async fn a_connection_that_has_said_nothing_does_not_hold_up_the_shutdown() {
    let (_upstream, mut gw) = one_version("limits: {requestRead: 20s}").await;
    let mut silent = raw_connection(&gw).await;
    // Only the start of HTTP/2's preface: which protocol is still to be told.
    let mut half = raw_connection(&gw).await;
    half.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stops_within(&mut gw, Duration::from_secs(5)).await;
    assert_closed(&mut silent).await;
    assert_closed(&mut half).await;
}

#[tokio::test]
async fn an_http2_preface_that_comes_in_pieces_is_served_as_http2() {
    let (_upstream, gw) = one_version("").await;
    let mut socket = raw_connection(&gw).await;
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    socket.write_all(&preface[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    socket.write_all(&preface[10..]).await.unwrap();
    // An empty SETTINGS frame, the rest of what a client opens with.
    socket
        .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    let mut frame_head = [0; 9];
    tokio::time::timeout(Duration::from_secs(5), socket.read_exact(&mut frame_head))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frame_head[3], 4, "{frame_head:?}: not HTTP/2's SETTINGS");
}

/// A gateway with one version on a fake model server of its own, and `extra` configuration;
/// with the fake, which must live as long as the gateway.
async fn one_version(extra: &str) -> (FakeOpenAiServer, TestGateway) {
    let upstream = fake().await;
    let gw = start(&tenants(""), ONE_VERSION, extra, &[&upstream.url()]).await;
    (upstream, gw)
}

/// Stops the gateway, which must take less than `limit`.
async fn stops_within(gw: &mut TestGateway, limit: Duration) {
    let started = Instant::now();
    gw.stop().await;
    assert!(started.elapsed() < limit, "{:?}", started.elapsed());
}

/// Asserts that the gateway has closed `socket` (it reads to the end within a second).
async fn assert_closed(socket: &mut tokio::net::TcpStream) {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(1), socket.read_to_end(&mut rest));
    assert!(read.await.is_ok(), "still open after the gateway stopped");
}

/// A connection to the gateway's inference listener, to write to byte by byte.
async fn raw_connection(gw: &TestGateway) -> tokio::net::TcpStream {
    let address = gw.url.trim_start_matches("http://");
    tokio::net::TcpStream::connect(address).await.unwrap()
}

/// Whether a plain request gets its answer within `within` on a gateway with one place.
async fn served_within(gw: &TestGateway, within: Duration) -> bool {
    let request = Request::get(format!("{}/v1/models", gw.url))
        .header("authorization", format!("Bearer {}", gw.key("a-1")))
        .body(Full::<Bytes>::default())
        .unwrap();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let answer = tokio::time::timeout(within, client.request(request)).await;
    answer.is_ok_and(|answer| answer.is_ok_and(|a| a.status() == StatusCode::OK))
}

/// An HTTP/2 client that asks once without a key, opens `window` bytes for each answer and
/// never reads more, while it answers pings: the gateway closes its connection, and a new
/// client is served on the only place.
async fn assert_closed_with_window(gw: &TestGateway, window: u32) {
    let address = gw.url.trim_start_matches("http://");
    let socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(window)
        .handshake(TokioIo::new(socket))
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let request = Request::get(format!("{}/v1/models", gw.url))
        .body(Full::<Bytes>::default())
        .unwrap();
    // The head needs no window; its body does, and is never read.
    let unread = sender.send_request(request).await.unwrap();
    assert_eq!(unread.status(), StatusCode::UNAUTHORIZED);
    tokio::time::timeout(Duration::from_secs(8), connection)
        .await
        .unwrap_or_else(|_| {
            panic!("the connection of a client with a {window}-byte window was kept")
        })
        .unwrap()
        .ok();
    drop((sender, unread));
    assert!(
        served_within(gw, Duration::from_secs(3)).await,
        "its place was not given back"
    );
}

#[tokio::test]
async fn a_client_that_takes_nothing_it_is_sent_loses_its_connection() {
    let (_upstream, gw) = one_version("limits: {requestRead: 1s, maxConnections: 1}").await;
    let address = gw.url.trim_start_matches("http://").to_owned();

    // HTTP/2 with a shut flow-control window: no answer, not even a 401, can be sent, while
    // the client answers every ping. It takes the only place.
    let started = Instant::now();
    assert_closed_with_window(&gw, 0).await;
    assert!(started.elapsed() >= Duration::from_millis(500));
    // A window of one byte: hyper hands the whole 401 to h2 and forgets the stream, which h2
    // cannot finish; the connection, quiet, is asked to close and never can.
    assert_closed_with_window(&gw, 1).await;

    // HTTP/1.1 from a client that pipelines requests and reads nothing: the answers fill the
    // sockets' buffers and the gateway's writes wait.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(address.parse().unwrap()).await.unwrap();
    let (_unread, mut writer) = stream.into_split();
    // With a good key: a refused one would close the connection at its first answer.
    let request = format!(
        "GET /v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\r\n",
        gw.key("a-1")
    );
    let writing =
        tokio::spawn(async move { while writer.write_all(request.as_bytes()).await.is_ok() {} });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !served_within(&gw, Duration::from_millis(200)).await,
        "the reader-less client should hold the only place for now"
    );
    assert!(
        served_within(&gw, Duration::from_secs(6)).await,
        "its place was not given back"
    );
    writing.abort();
}

#[tokio::test]
async fn a_client_gets_its_share_of_connections_and_no_more() {
    let (_upstream, gw) = one_version("limits: {maxConnectionsPerClient: 2}").await;
    let address = gw.url.trim_start_matches("http://").to_owned();
    let first = tokio::net::TcpStream::connect(&address).await.unwrap();
    let second = tokio::net::TcpStream::connect(&address).await.unwrap();
    // A third from the same address is closed at once, before it sends anything.
    let mut third = tokio::net::TcpStream::connect(&address).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(5), third.read(&mut [0; 1])).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "the third connection was not closed: {read:?}"
    );
    assert!(!served_within(&gw, Duration::from_millis(500)).await);
    // Its places come back as its connections close.
    drop((first, second));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !served_within(&gw, Duration::from_secs(1)).await {
        assert!(
            Instant::now() < deadline,
            "the client's places were not given back"
        );
    }
    // The third, the first try, and any try before the gateway saw the two close.
    let metrics = gw.metrics().await;
    let refused: u64 = (metrics.lines())
        .find_map(|line| line.strip_prefix("hangar_gateway_client_connections_refused_total "))
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no refusal count in {metrics}"));
    assert!(refused >= 2, "{refused}");
}

#[tokio::test]
async fn a_trusted_proxy_is_not_limited_to_a_clients_share() {
    let (_upstream, gw) =
        one_version("limits: {maxConnectionsPerClient: 1}\ntrustedProxies: [127.0.0.1]").await;
    let address = gw.url.trim_start_matches("http://").to_owned();
    let _held = tokio::net::TcpStream::connect(&address).await.unwrap();
    assert!(served_within(&gw, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn bodies_being_read_count_against_the_tenants_requests_in_flight() {
    let upstream = fake().await;
    let gw = start(
        &tenants("  maxConcurrent: 1\n"),
        ONE_VERSION,
        "",
        &[&upstream.url()],
    )
    .await;
    let address = gw.url.trim_start_matches("http://").to_owned();
    let body = chat("llama", "What is 2+2?").to_string();
    let (first_half, second_half) = body.split_at(body.len() / 2);
    let mut trickling = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{first_half}",
        gw.key("a-1"),
        body.len()
    );
    trickling.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Its one place is taken by a body still coming.
    let refused = chat_as(&gw, "a-1").await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.text()
    );
    assert_eq!(refused.code(), "concurrency_limit");
    assert_eq!(
        chat_as(&gw, "b-1").await.status,
        StatusCode::OK,
        "other tenants are not held"
    );

    trickling.write_all(second_half.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = trickling.read(&mut answer).await.unwrap();
    assert!(
        answer[..read].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..read])
    );
    assert_eq!(
        chat_as(&gw, "a-1").await.status,
        StatusCode::OK,
        "the place came back"
    );
}

#[tokio::test]
async fn a_chunked_upload_that_waited_for_100_continue_keeps_its_connection() {
    // As curl sends an upload of unknown size: chunked, after `100 Continue`.
    let (_upstream, gw) = one_version("").await;
    let address = gw.url.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nexpect: 100-continue\r\n\r\n",
        gw.key("a-1")
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = socket.read(&mut answer).await.unwrap();
    assert!(
        answer[..read].starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&answer[..read])
    );
    let body = chat("llama", "What is 2+2?").to_string();
    let chunked = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    socket.write_all(chunked.as_bytes()).await.unwrap();
    let read = socket.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).to_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(!answer.contains("connection: close"), "{answer}");
}

#[tokio::test]
async fn a_slow_upload_is_not_the_gateways_overhead() {
    let (_upstream, gw) = one_version("").await;
    let address = gw.url.trim_start_matches("http://").to_owned();
    let body = chat("llama", "What is 2+2?").to_string();
    let (first_half, second_half) = body.split_at(body.len() / 2);
    let mut trickling = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{first_half}",
        gw.key("a-1"),
        body.len()
    );
    trickling.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    trickling.write_all(second_half.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    trickling.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let metrics = gw.metrics().await;
    let sum: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hangar_gateway_overhead_seconds_sum{model=\"llama\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(sum < 0.3, "overhead {sum} s: the client's 600 ms counted");
}

#[tokio::test]
async fn a_connection_that_asks_nothing_is_closed_and_connections_are_capped() {
    let (_upstream, gw) = one_version("limits: {requestRead: 1s, maxConnections: 3}").await;
    let address = gw.url.trim_start_matches("http://").to_owned();
    let admin = gw.admin.trim_start_matches("http://").to_owned();
    // Silent, half an HTTP/2 preface, a preface and SETTINGS but no request; and the same
    // silence on the operator listener (which gives 10 s).
    let mut silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut half = tokio::net::TcpStream::connect(&address).await.unwrap();
    half.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let mut preface = tokio::net::TcpStream::connect(&address).await.unwrap();
    preface
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    // The three take every place: a fourth connection waits for one of them to go.
    let started = Instant::now();
    let waiting = tokio::spawn({
        let gw_url = gw.url.clone();
        let key = gw.key("a-1").to_owned();
        async move {
            let request = Request::get(format!("{gw_url}/v1/models"))
                .header("authorization", format!("Bearer {key}"))
                .body(Full::<Bytes>::default())
                .unwrap();
            let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
            client.request(request).await.unwrap().status()
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "a fourth connection was served at once"
    );
    for (socket, which) in [
        (&mut silent, "silent"),
        (&mut half, "half"),
        (&mut preface, "preface"),
    ] {
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(4), socket.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "{which}: still open after 4 s");
    }
    assert!(started.elapsed() >= Duration::from_millis(900));
    let status = tokio::time::timeout(Duration::from_secs(4), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, StatusCode::OK, "served once a place was free");
    let mut idle_admin = tokio::net::TcpStream::connect(&admin).await.unwrap();
    let mut rest = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(13), idle_admin.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "the operator listener kept a silent connection"
    );
}

#[tokio::test]
async fn a_connection_that_asks_nothing_more_is_closed_but_never_during_an_answer() {
    let upstream = fake().await;
    // A streamed answer of a few events 600 ms apart outlasts `requestRead`.
    upstream.set_faults(Faults {
        chunk_delay: Duration::from_millis(600),
        ..Faults::default()
    });
    let gw = start(
        &tenants(""),
        ONE_VERSION,
        "limits: {requestRead: 1s}",
        &[&upstream.url()],
    )
    .await;
    let address = gw.url.trim_start_matches("http://").to_owned();
    let mut streamed = chat("llama", "What is 2+2?");
    streamed["stream"] = serde_json::json!(true);

    // HTTP/2, which hyper would keep open for as long as the client answers its pings.
    let socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(socket))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let started = Instant::now();
    let request = Request::post(format!("{}/v1/chat/completions", gw.url))
        .header("authorization", format!("Bearer {}", gw.key("a-1")))
        .body(Full::new(Bytes::from(streamed.to_string())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let answered = started.elapsed();
    assert!(answered > Duration::from_millis(1200), "{answered:?}");
    let body = String::from_utf8_lossy(&body);
    assert!(body.trim_end().ends_with("data: [DONE]"), "cut: {body}");
    let quiet = Instant::now();
    tokio::time::timeout(Duration::from_secs(4), connection)
        .await
        .expect("an HTTP/2 connection asking nothing was still open after 4 s")
        .unwrap()
        .ok();
    assert!(
        quiet.elapsed() >= Duration::from_millis(900),
        "{:?}",
        quiet.elapsed()
    );

    // HTTP/1.1 kept alive after an answer: hyper's own deadline for the next request.
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "GET /v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\r\n",
        gw.key("a-1")
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 4096];
    let n = socket.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    let quiet = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(4), socket.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "a kept-alive HTTP/1.1 connection was still open after 4 s"
    );
    assert!(
        quiet.elapsed() >= Duration::from_millis(900),
        "{:?}",
        quiet.elapsed()
    );
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served() {
    let (_upstream, gw) = one_version("").await;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let request = Request::post(format!("{}/v1/chat/completions", gw.url))
        .header("authorization", format!("Bearer {}", gw.key("a-1")))
        .body(Full::new(Bytes::from(
            chat("llama", "What is 2+2?").to_string(),
        )))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("\"4\""));
    // A credential near the verifier's 16 KiB is read (and refused) as over HTTP/1.1, not
    // turned away for the size of the headers.
    let large = Request::get(format!("{}/v1/models", gw.url))
        .header(
            "authorization",
            format!("Bearer {}", "a".repeat(16 * 1024 - 64)),
        )
        .body(Full::default())
        .unwrap();
    let response = client.request(large).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tls_is_served_with_alpn_for_http2_and_http1() {
    let upstream = fake().await;
    let dir = tempfile::tempdir().unwrap();
    let certificate = issue_certificate(dir.path(), 2030);
    let (gw, port) = start_tls(dir.path(), &upstream).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate.der().clone()).unwrap();
    let tls = trusting(&roots);
    for (http2, expected) in [(true, Version::HTTP_2), (false, Version::HTTP_11)] {
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_only();
        let connector = if http2 {
            builder.enable_http2().build()
        } else {
            builder.enable_http1().build()
        };
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
        let request = Request::post(format!("https://localhost:{port}/v1/chat/completions"))
            .header("authorization", format!("Bearer {}", gw.key("a-1")))
            .body(Full::new(Bytes::from(
                chat("llama", "What is 2+2?").to_string(),
            )))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.version(), expected);
        assert_eq!(response.status(), StatusCode::OK);
    }
    // A client that names no protocol is served HTTP/1.1: HTTP/2 over TLS is agreed by ALPN.
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls.clone()));
    let socket = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut socket = connector.connect(name, socket).await.unwrap();
    assert_eq!(socket.get_ref().1.alpn_protocol(), None);
    let request = format!(
        "GET /v1/models HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\nconnection: close\r\n\r\n",
        gw.key("a-1")
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Plain HTTP to the TLS port gets nothing useful.
    let plain = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::get(format!("http://127.0.0.1:{port}/v1/models"))
        .body(Full::default())
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(5), plain.request(request))
        .await
        .unwrap();
    assert!(outcome.is_err() || !outcome.unwrap().status().is_success());
}

#[tokio::test]
async fn a_tls_handshake_never_begun_does_not_hold_up_the_shutdown() {
    let upstream = fake().await;
    let dir = tempfile::tempdir().unwrap();
    issue_certificate(dir.path(), 2030);
    let (mut gw, port) = start_tls(dir.path(), &upstream).await;
    let mut silent = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The handshake alone would be given 10 s.
    stops_within(&mut gw, Duration::from_secs(5)).await;
    assert_closed(&mut silent).await;
}

/// A certificate for localhost valid until the first of January of `year`, written with its key
/// to `dir/tls.crt` and `dir/tls.key`.
fn issue_certificate(dir: &std::path::Path, year: i32) -> rcgen::Certificate {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.not_after = rcgen::date_time_ymd(year, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("tls.crt"), certificate.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
    certificate
}

/// A gateway serving TLS with `dir/tls.crt` and `dir/tls.key`, and its port.
async fn start_tls(dir: &std::path::Path, upstream: &FakeOpenAiServer) -> (TestGateway, String) {
    let extra = format!(
        "tls: {{cert: {}, key: {}}}",
        dir.join("tls.crt").display(),
        dir.join("tls.key").display()
    );
    let gw = start(&tenants(""), ONE_VERSION, &extra, &[&upstream.url()]).await;
    let port = gw.url.rsplit(':').next().unwrap().to_owned();
    (gw, port)
}

/// A TLS client configuration that trusts `roots` only.
fn trusting(roots: &rustls::RootCertStore) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth()
}

/// The certificate the gateway at `port` shows a new connection, trusting `roots`.
async fn served_certificate(port: &str, roots: &rustls::RootCertStore) -> Option<Vec<u8>> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(trusting(roots)));
    let tcp = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.ok()?;
    let (_, session) = tls.get_ref();
    Some(session.peer_certificates()?.first()?.to_vec())
}

/// A gateway serving a certificate issued into `dir`, with its port and roots that trust that
/// certificate; it is served, so the configuration's watcher has started and seen the files.
async fn serving_a_certificate(
    dir: &std::path::Path,
    upstream: &FakeOpenAiServer,
) -> (
    TestGateway,
    String,
    rustls::RootCertStore,
    rcgen::Certificate,
) {
    let certificate = issue_certificate(dir, 2030);
    let (gw, port) = start_tls(dir, upstream).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate.der().clone()).unwrap();
    assert_eq!(
        served_certificate(&port, &roots).await.as_deref(),
        Some(certificate.der().as_ref())
    );
    (gw, port, roots, certificate)
}

/// Waits (10 s at most) until a new connection to `port` is shown `certificate`.
async fn wait_until_served(
    port: &str,
    roots: &rustls::RootCertStore,
    certificate: &rcgen::Certificate,
    what: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_certificate(port, roots).await.as_deref() != Some(certificate.der().as_ref()) {
        assert!(Instant::now() < deadline, "{what} is not served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_refused() {
    let upstream = fake().await;
    let dir = tempfile::tempdir().unwrap();
    let (gw, port, mut roots, _) = serving_a_certificate(dir.path(), &upstream).await;

    // cert-manager renews the certificate in place; the configuration file does not change.
    // The watcher sees the files change and the next connection gets the new certificate.
    let expiry = |seconds: i64| {
        format!(
            "hangar_gateway_certificate_expiry_timestamp_seconds{{certificate=\"served\"}} {seconds}"
        )
    };
    assert!(gw.metrics().await.contains(&expiry(1_893_456_000)));
    let second = issue_certificate(dir.path(), 2031);
    roots.add(second.der().clone()).unwrap();
    wait_until_served(&port, &roots, &second, "the renewed certificate").await;

    // A key that is not the certificate's is refused, and the good pair keeps being served.
    let stranger = rcgen::KeyPair::generate().unwrap();
    std::fs::write(dir.path().join("tls.key"), stranger.serialize_pem()).unwrap();
    assert!(!hangar_gateway::server::reload(
        &gw.gateway,
        &gw.config_path
    ));
    assert_eq!(
        served_certificate(&port, &roots).await.as_deref(),
        Some(second.der().as_ref())
    );
    let metrics = gw.metrics().await;
    assert!(metrics.contains(&expiry(1_924_992_000)), "{metrics}");
    assert!(
        metrics.contains("hangar_gateway_config_reloads_total{result=\"applied\"} 1")
            && metrics.contains("hangar_gateway_config_reloads_total{result=\"rejected\"} 1"),
        "{metrics}"
    );
}

/// A configuration that names files not there yet (a Secret mounted after its ConfigMap) is
/// refused, then applied when they come, though the configuration file does not change again:
/// the watcher watches the files the file on disk names, read again when it changes.
#[tokio::test]
async fn a_configuration_naming_files_not_there_yet_is_applied_when_they_come() {
    let upstream = fake().await;
    let dir = tempfile::tempdir().unwrap();
    let (gw, port, mut roots, first) = serving_a_certificate(dir.path(), &upstream).await;
    let later = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(&gw.config_path).unwrap();
    let moved = config.replace(
        &dir.path().display().to_string(),
        &later.path().display().to_string(),
    );
    assert_ne!(moved, config);
    std::fs::write(&gw.config_path, moved).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(gw.metrics().await).contains("hangar_gateway_config_reloads_total{result=\"rejected\"}")
    {
        assert!(
            Instant::now() < deadline,
            "the configuration is not refused"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        served_certificate(&port, &roots).await.as_deref(),
        Some(first.der().as_ref())
    );

    let second = issue_certificate(later.path(), 2031);
    roots.add(second.der().clone()).unwrap();
    wait_until_served(&port, &roots, &second, "the certificate that came later").await;
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("hangar_gateway_config_reloads_total{result=\"applied\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn shutdown_lets_a_stream_in_flight_finish_and_writes_its_record() {
    let upstream = fake().await;
    upstream.set_faults(Faults {
        chunk_delay: Duration::from_millis(150),
        ..Faults::default()
    });
    let mut gw = start(&tenants(""), ONE_VERSION, "", &[&upstream.url()]).await;
    let stream = gw.spawn_stream("a-1");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let records = gw.audit_records().await; // stops the gateway, draining
    let (status, _, body) = stream.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(
        String::from_utf8_lossy(&body)
            .trim_end()
            .ends_with("data: [DONE]")
    );
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["end"], "complete");
    // New connections are refused once it has stopped.
    let refused = tokio::net::TcpStream::connect(gw.url.trim_start_matches("http://")).await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn http2_requests_still_waiting_when_the_drain_ends_are_recorded() {
    let upstream = fake().await;
    upstream.set_faults(Faults {
        latency: Duration::from_secs(5),
        ..Faults::default()
    });
    let mut gw = start(
        &tenants(""),
        ONE_VERSION,
        "limits: {drain: 300ms}",
        &[&upstream.url()],
    )
    .await;
    let address = gw.url.trim_start_matches("http://").to_owned();
    let socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(socket))
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut waiting = Vec::new();
    for _ in 0..3 {
        let request = Request::post(format!("{}/v1/chat/completions", gw.url))
            .header("authorization", format!("Bearer {}", gw.key("a-1")))
            .body(Full::new(Bytes::from(
                chat("llama", "What is 2+2?").to_string(),
            )))
            .unwrap();
        waiting.push(tokio::spawn(sender.send_request(request)));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let records = gw.audit_records().await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(records.len(), 3, "{records:?}");
    for record in &records {
        assert_eq!(record["code"], "gateway_shutdown", "{record}");
    }
}

/// A fake model server that answers "Say a lot" with `words` words.
async fn saying_a_lot(words: usize) -> FakeOpenAiServer {
    FakeOpenAi::builder()
        .model("fake-llama")
        .reply_to("Say a lot", &"word ".repeat(words))
        .start()
        .await
        .unwrap()
}

/// An HTTP/2 connection to `gw`, and what completes when it has closed.
async fn http2_connection(
    gw: &TestGateway,
) -> (
    hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    let socket = tokio::net::TcpStream::connect(gw.url.trim_start_matches("http://"))
        .await
        .unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(socket))
            .await
            .unwrap();
    (sender, tokio::spawn(connection))
}

fn chat_over_http2(gw: &TestGateway) -> Request<Full<Bytes>> {
    Request::post(format!("{}/v1/chat/completions", gw.url))
        .header("authorization", format!("Bearer {}", gw.key("a-1")))
        .body(Full::new(Bytes::from(
            chat("llama", "What is 2+2?").to_string(),
        )))
        .unwrap()
}

#[tokio::test]
async fn a_connection_without_a_good_key_cannot_keep_its_place_by_asking_now_and_then() {
    let (_upstream, gw) = one_version("").await;
    let address = gw.url.trim_start_matches("http://").to_owned();
    let wrong = |gw: &TestGateway| {
        let mut request = chat_over_http2(gw);
        let bad = http::HeaderValue::from_static("Bearer hgk_wrongkeywrongkeywrongkey");
        request.headers_mut().insert("authorization", bad);
        request
    };
    // HTTP/1.1: the 401 closes its connection.
    let head = "GET /v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer hgk_nope\r\n\r\n";
    let (mut socket, answer) = refused_on_a_fresh_connection(&address, head, None).await;
    assert!(answer.starts_with("http/1.1 401"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut rest));
    assert!(
        matches!(closed.await, Ok(Ok(0))),
        "the connection stays open"
    );

    // HTTP/2: a connection that has carried nothing good is told to go at its first 401…
    let (mut keyless, keyless_closed) = http2_connection(&gw).await;
    let refused = keyless.send_request(wrong(&gw)).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let closed = tokio::time::timeout(Duration::from_secs(3), keyless_closed).await;
    assert!(matches!(closed, Ok(Ok(Ok(())))), "{closed:?}");
    // …while one that carries good requests too (a proxy's) stays.
    let (mut shared, mut shared_closed) = http2_connection(&gw).await;
    let served = shared.send_request(chat_over_http2(&gw)).await.unwrap();
    assert_eq!(served.status(), StatusCode::OK);
    let refused = shared.send_request(wrong(&gw)).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let open = tokio::time::timeout(Duration::from_millis(500), &mut shared_closed).await;
    assert!(open.is_err(), "closed: {open:?}");
    let again = shared.send_request(chat_over_http2(&gw)).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
}

#[tokio::test]
async fn http2_clients_are_told_to_go_when_the_gateway_is_taken_out_of_service() {
    let (upstream, gw) = one_version("").await;
    let (mut idle, idle_closed) = http2_connection(&gw).await;
    let (mut busy, busy_closed) = http2_connection(&gw).await;
    let asked = idle.send_request(chat_over_http2(&gw)).await.unwrap();
    assert_eq!(asked.status(), StatusCode::OK);
    upstream.set_faults(Faults {
        latency: Duration::from_millis(500),
        ..Faults::default()
    });
    let in_flight = tokio::spawn(busy.send_request(chat_over_http2(&gw)));
    tokio::time::sleep(Duration::from_millis(100)).await;

    gw.gateway.withdraw();
    // The answer under way comes whole, then both connections close (GOAWAY), long before
    // the idle deadline would have closed them.
    let answer = in_flight.await.unwrap().unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("\"4\""));
    for closed in [idle_closed, busy_closed] {
        let closed = tokio::time::timeout(Duration::from_secs(3), closed).await;
        assert!(matches!(closed, Ok(Ok(Ok(())))), "{closed:?}");
    }

    // One opened now is still served (the Service may send it here for a few seconds), and
    // then told to go.
    let (mut late, late_closed) = http2_connection(&gw).await;
    let answer = late.send_request(chat_over_http2(&gw)).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let closed = tokio::time::timeout(Duration::from_secs(3), late_closed).await;
    assert!(matches!(closed, Ok(Ok(Ok(())))), "{closed:?}");
}

#[tokio::test]
async fn an_http2_client_that_never_takes_an_answer_does_not_hold_up_the_shutdown() {
    // The handler has given hyper the whole answer, so no stream is open, but h2 holds what
    // the client's window never let out, and does not finish its close while it does.
    let upstream = saying_a_lot(40_000).await;
    let mut gw = start(
        &tenants("  maxTokens: 100000\n"),
        ONE_VERSION,
        "limits: {requestRead: 1s}",
        &[&upstream.url()],
    )
    .await;
    let socket = tokio::net::TcpStream::connect(gw.url.trim_start_matches("http://"))
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(1024)
        .handshake(TokioIo::new(socket))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::post(format!("{}/v1/chat/completions", gw.url))
        .header("authorization", format!("Bearer {}", gw.key("a-1")))
        .body(Full::new(Bytes::from(
            serde_json::json!({"model": "llama", "max_tokens": 50000,
                "messages": [{"role": "user", "content": "Say a lot"}]})
            .to_string(),
        )))
        .unwrap();
    let answer = sender.send_request(request).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    // The answer's body is never read. Once the handler is done with it, the gateway stops.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stops_within(&mut gw, Duration::from_secs(4)).await;
    drop(answer);
}

#[tokio::test]
async fn a_client_that_stops_reading_a_stream_is_cut_off_and_frees_its_place() {
    let upstream = saying_a_lot(200_000).await;
    let mut gw = start(
        &tenants("  maxTokens: 300000\n  maxConcurrent: 1\n"),
        ONE_VERSION,
        "limits: {timeouts: {idle: 1s}}",
        &[&upstream.url()],
    )
    .await;
    let body = serde_json::json!({"model": "llama", "stream": true, "max_tokens": 250000,
        "messages": [{"role": "user", "content": "Say a lot"}]})
    .to_string();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let address = gw.url.trim_start_matches("http://").parse().unwrap();
    let mut stalled = socket.connect(address).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        gw.key("a-1"),
        body.len()
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    // The client never reads. Within a few idle periods its place must be free again.
    let deadline = Instant::now() + Duration::from_secs(20);
    tokio::time::sleep(Duration::from_millis(500)).await;
    while gw.gateway.in_flight() > 0 {
        assert!(
            Instant::now() < deadline,
            "the stalled stream still holds its place"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = chat_as(&gw, "a-1").await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "the tenant's one place was freed"
    );
    // What reached the client is no whole answer: no last chunk, and the connection ends.
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stalled.read_to_end(&mut received));
    assert!(read.await.is_ok(), "the connection was kept open");
    assert!(
        !received.ends_with(b"0\r\n\r\n"),
        "the cut answer ended as a whole one"
    );
    let records = gw.audit_records().await;
    assert_eq!(records[0]["end"], "client_too_slow", "{:?}", records[0]);
}

#[tokio::test]
async fn a_stream_whose_client_takes_nothing_is_recorded_when_the_gateway_stops() {
    // An HTTP/2 client that opens no window: the relay fills its queue and waits to hand the
    // client an event, for up to `idle` (30 s). At the drain's end the stream must end as the
    // shutdown's, not as a client gone when its connection is dropped two seconds later, and
    // its record must be written before the audit log closes.
    let (_upstream, mut gw) = one_version("limits: {drain: 200ms, timeouts: {idle: 30s}}").await;
    let address = gw.url.trim_start_matches("http://");
    let socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(0)
        .handshake(TokioIo::new(socket))
        .await
        .unwrap();
    tokio::spawn(connection);
    let long = "word ".repeat(2000);
    let body = serde_json::json!({"model": "llama", "stream": true,
        "messages": [{"role": "user", "content": long}]});
    let request = Request::post(format!("{}/v1/chat/completions", gw.url))
        .header("authorization", format!("Bearer {}", gw.key("a-1")))
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let unread = sender.send_request(request).await.unwrap();
    assert_eq!(unread.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let records = gw.audit_records().await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["end"], "gateway_shutdown", "{:?}", records[0]);
    drop(unread);
}

/// Sends `head` (and `body`, when given, in the same write), and reads the answer's head.
async fn refused_on_a_fresh_connection(
    address: &str,
    head: &str,
    body: Option<&str>,
) -> (tokio::net::TcpStream, String) {
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let sent = format!("{head}{}", body.unwrap_or(""));
    socket.write_all(sent.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = socket.read(&mut answer).await.unwrap();
    (
        socket,
        String::from_utf8_lossy(&answer[..read]).to_lowercase(),
    )
}

#[tokio::test]
async fn a_body_in_tiny_pieces_is_refused_and_a_client_that_leaves_mid_body_is_a_499() {
    let (_upstream, mut gw) = one_version("").await;
    let address = gw.url.trim_start_matches("http://").to_owned();
    let key = gw.key("a-1").to_owned();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\n"
    );
    // 20,000 one-byte chunks: more pieces than a 1 MiB body may come in (1024 + 1 MiB / 64).
    let body = format!(
        "{{\"model\": \"llama\", \"messages\": [], \"pad\": \"{}\"}}",
        " ".repeat(20_000)
    );
    let chunked: String = body
        .bytes()
        .map(|b| format!("1\r\n{}\r\n", b as char))
        .collect();
    let (_, answer) = refused_on_a_fresh_connection(
        &address,
        &format!("{head}transfer-encoding: chunked\r\n\r\n{chunked}0\r\n\r\n"),
        None,
    )
    .await;
    assert!(answer.starts_with("http/1.1 400"), "{answer}");
    assert!(answer.contains("body_too_fragmented"), "{answer}");
    // The same body in a few chunks is read (and refused only for what it says).
    let few: String = body
        .as_bytes()
        .chunks(4096)
        .map(|c| format!("{:x}\r\n{}\r\n", c.len(), String::from_utf8_lossy(c)))
        .collect();
    let (_, answer) = refused_on_a_fresh_connection(
        &address,
        &format!("{head}transfer-encoding: chunked\r\n\r\n{few}0\r\n\r\n"),
        None,
    )
    .await;
    assert!(answer.contains("parameter_not_allowed"), "{answer}");

    // A client that closes its connection after part of its body has left: 499, not a 400.
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let partial = format!("{head}content-length: 1000\r\n\r\n{{\"model\": ");
    socket.write_all(partial.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(socket);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let records = gw.audit_records().await;
    let codes: Vec<(u64, &str)> = (records.iter())
        .map(|r| {
            (
                r["status"].as_u64().unwrap(),
                r["code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            (400, "body_too_fragmented"),
            (400, "parameter_not_allowed"),
            (499, "client_disconnected")
        ]
    );
}

#[tokio::test]
async fn requests_the_http_layer_refuses_are_recorded_and_counted() {
    let (_upstream, mut gw) = one_version("").await;
    let address = gw.url.trim_start_matches("http://").to_owned();
    let many_headers: String = (0..200).map(|i| format!("x-h{i}: 1\r\n")).collect();
    let refused = [
        (
            format!("GET /v1/models HTTP/1.1\r\nhost: x\r\n{many_headers}\r\n"),
            "431",
        ),
        (
            format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(70_000)),
            "414",
        ),
        ("HELLO\r\n\r\n".to_owned(), "400"),
    ];
    for (head, status) in &refused {
        let (_, answer) = refused_on_a_fresh_connection(&address, head, None).await;
        assert!(
            answer.starts_with(&format!("http/1.1 {status}")),
            "{status}: {answer}"
        );
    }
    // The connection's task records it once the connection is over.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let metrics = gw.metrics().await;
    for code in [
        "request_header_too_large",
        "uri_too_long",
        "malformed_request",
    ] {
        assert!(
            metrics.contains(&format!(
                "hangar_gateway_errors_total{{tenant=\"\",model=\"\",version=\"\",code=\"{code}\"}} 1"
            )),
            "{code}: {metrics}"
        );
    }
    let records = gw.audit_records().await;
    let seen: Vec<(u64, &str, &str)> = (records.iter())
        .map(|r| {
            (
                r["status"].as_u64().unwrap(),
                r["code"].as_str().unwrap(),
                r["client"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (431, "request_header_too_large", "127.0.0.1"),
            (414, "uri_too_long", "127.0.0.1"),
            (400, "malformed_request", "127.0.0.1"),
        ]
    );
}

#[tokio::test]
async fn an_answer_given_before_the_body_came_says_the_connection_closes() {
    // hyper closes an HTTP/1.1 connection whose request body was not read. An answer that did
    // not say so let the openai SDK send its next request into the closing socket ("Server
    // disconnected without sending a response").
    let (_upstream, gw) = one_version("").await;
    let address = gw.url.trim_start_matches("http://").to_owned();
    let key = gw.key("a-1");
    let unknown_path = format!(
        "POST /v1/load_lora_adapter HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\ncontent-length: 2\r\n\r\n"
    );
    let no_key = "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n";
    for (head, status) in [(unknown_path.as_str(), "404"), (no_key, "401")] {
        let (mut socket, answer) = refused_on_a_fresh_connection(&address, head, None).await;
        assert!(
            answer.starts_with(&format!("http/1.1 {status}")),
            "{answer}"
        );
        assert!(answer.contains("connection: close"), "{answer}");
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut rest));
        assert!(
            matches!(closed.await, Ok(Ok(0))),
            "the connection stays open"
        );
    }

    // A chunked body that breaks off (a chunk size that is no number) has ended, but the
    // connection cannot carry another request.
    let broken = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"
    );
    let (_, answer) = refused_on_a_fresh_connection(&address, &broken, None).await;
    assert!(answer.starts_with("http/1.1 400"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");

    // A body that came with its head, or comes soon after (a client writing them apart), is
    // drained, and the connection serves the next request.
    let next = format!("GET /v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n\r\n");
    for body_after in [None, Some(Duration::from_millis(100))] {
        let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
        match body_after {
            None => socket
                .write_all(format!("{unknown_path}{{}}").as_bytes())
                .await
                .unwrap(),
            Some(pause) => {
                socket.write_all(unknown_path.as_bytes()).await.unwrap();
                tokio::time::sleep(pause).await;
                socket.write_all(b"{}").await.unwrap();
            }
        }
        let mut answer = vec![0u8; 4096];
        let read = socket.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..read]).to_lowercase();
        assert!(answer.starts_with("http/1.1 404"), "{answer}");
        assert!(
            !answer.contains("connection: close"),
            "{body_after:?}: {answer}"
        );
        socket.write_all(next.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; 4096];
        let read = socket.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..read]);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}
