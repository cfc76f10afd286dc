#![allow(clippy::unwrap_used, clippy::panic)]
//! The load generator against the fake upstream, in one process, for a second or so.

use std::time::Duration;

use hangar_bench::load::{self, LoopRun, RateRun, StreamsRun, Target};
use hangar_bench::upstream::{self, StreamShape};
use tokio::net::TcpListener;

async fn fake(shape: StreamShape) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(upstream::serve(listener, shape));
    address
}

fn target(address: std::net::SocketAddr, stream: bool) -> Target {
    Target {
        address,
        path: "/v1/chat/completions".into(),
        body: load::chat_body(256, stream),
        bearer: Some("k".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_constant_rate_is_kept_and_measured() {
    let address = fake(StreamShape::default()).await;
    let run = RateRun {
        rate: 400.0,
        connections: 4,
        warmup: Duration::from_millis(200),
        duration: Duration::from_secs(1),
    };
    let report = load::constant_rate(target(address, false), run)
        .await
        .unwrap();
    assert_eq!(report.error_count(), 0, "{:?}", report.errors);
    // 400 due in the window, give or take the one at the edge.
    assert!((399..=401).contains(&report.ok), "{}", report.ok);
    assert!(report.achieved_rate() > 300.0 && report.achieved_rate() <= 401.0);
    assert!(report.quantile_ms(0.5) > 0.0 && report.quantile_ms(0.5) < 50.0);
    let json = report.to_json("direct");
    assert_eq!(json["label"], "direct");
    assert_eq!(json["mode"], "rate");
    assert!(json["p99_ms"].as_f64().unwrap() >= json["p50_ms"].as_f64().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_counted_by_kind() {
    let address = fake(StreamShape::default()).await;
    let mut wrong = target(address, false);
    wrong.path = "/v1/nowhere".into();
    let run = RateRun {
        rate: 100.0,
        connections: 2,
        warmup: Duration::ZERO,
        duration: Duration::from_millis(300),
    };
    let report = load::constant_rate(wrong, run).await.unwrap();
    assert_eq!(report.ok, 0);
    assert!(report.errors["status 404"] >= 29, "{:?}", report.errors);

    // Nothing listens on a freshly closed port: every request is a connect error.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let report = load::constant_rate(target(closed, false), run)
        .await
        .unwrap();
    assert_eq!(report.ok, 0);
    assert!(report.errors["connect"] >= 29, "{:?}", report.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_finds_a_rate() {
    let address = fake(StreamShape::default()).await;
    let run = LoopRun {
        connections: 4,
        warmup: Duration::from_millis(100),
        duration: Duration::from_millis(500),
    };
    let report = load::closed_loop(target(address, false), run)
        .await
        .unwrap();
    assert_eq!(report.error_count(), 0, "{:?}", report.errors);
    assert!(report.ok > 100, "{}", report.ok);
    assert!((report.seconds - 0.5).abs() < 1e-9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_held_open_together_and_read_to_the_end() {
    let shape = StreamShape {
        chunks: 5,
        interval: Duration::from_millis(40),
        whole_delay: Duration::ZERO,
    };
    let address = fake(shape).await;
    let run = StreamsRun {
        streams: 50,
        timeout: Duration::from_secs(10),
        watch_pid: Some(std::process::id()),
    };
    let report = load::streams(target(address, true), run).await.unwrap();
    assert_eq!(report.error_count(), 0, "{:?}", report.errors);
    assert_eq!(report.ok, 50);
    assert_eq!(report.extra["peak_open"], 50);
    // Five tokens, the stop event and [DONE]; no usage event since the body did not ask.
    assert_eq!(report.extra["events"], 50 * 7);
    // The first event comes one interval after the request.
    assert!(
        report.quantile_ms(0.5) >= 39.0,
        "{}",
        report.quantile_ms(0.5)
    );
    assert!(report.extra["rss_all_open_kib"].as_u64().unwrap() > 0);
    assert!(report.extra["vm_hwm_kib"].as_u64().unwrap() > 0);
}
