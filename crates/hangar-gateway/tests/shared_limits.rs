//! Rate limits shared by replicas through a real Redis (Debian's `redis-server`, started on
//! loopback for each test): two gateways count against one limit per tenant, tokens are settled
//! in the shared bucket, and without Redis the gateway falls back as configured and recovers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Setup, TestGateway};
use hangar_gateway::limits::SharedLimits;
use hangar_gateway::redis::{Client, Reply, Script, Target};
use hangar_testkit::fake_openai::{FakeOpenAi, FakeOpenAiServer, Faults};
use hangar_testkit::redis::{RedisServer, cluster_id, cluster_owner, free_port};
use http::StatusCode;

const MODELS: &str = "\
llama:
  versions:
    - {name: \"1.0\", url: \"{upstream}\", upstreamModel: fake-llama, weight: 100}
";

async fn upstream() -> FakeOpenAiServer {
    FakeOpenAi::builder()
        .model("fake-llama")
        .reply_to("What is 2+2?", "The answer is 4.")
        .start()
        .await
        .unwrap()
}

/// A gateway with tenants `team` and `other` (each limited by `team_limits`) and `free` (no
/// rate limit), its limits shared through `shared` (the YAML under `limits.shared`).
async fn replica(upstream: &FakeOpenAiServer, team_limits: &str, shared: &str) -> TestGateway {
    let tenants = format!(
        "team:\n  models: [llama]\n  maxTokens: 100\n{team_limits}other:\n  models: [llama]\n  maxTokens: 100\n{team_limits}free:\n  models: [llama]\n"
    );
    let extra = format!("limits:\n  shared:\n{shared}");
    let setup = Setup {
        keys: &[("team-1", "team"), ("other-1", "other"), ("free-1", "free")],
        tenants: &tenants,
        models: MODELS,
        extra: &extra,
    };
    TestGateway::start(setup, &[&upstream.url()]).await
}

async fn ask(gateway: &TestGateway, key_id: &str) -> common::Answer {
    gateway.chat(gateway.key(key_id), "What is 2+2?").await
}

/// Asserts that `answer` is a refusal with `status` and the error code `code`.
fn assert_refused(answer: &common::Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.text());
    assert_eq!(answer.code(), code);
}

#[tokio::test]
async fn two_replicas_count_against_one_limit_per_tenant() {
    let redis = RedisServer::start(&[]).unwrap();
    two_replicas_share_one_limit(&format!("    url: {}\n", redis.url())).await;
}

/// Two gateways sharing limits through `shared` refuse a tenant's fifth request of a minute
/// limited to four, two through each, and keep another tenant's buckets apart.
async fn two_replicas_share_one_limit(shared: &str) {
    let upstream = upstream().await;
    let a = replica(&upstream, "  requestsPerMinute: 4\n", shared).await;
    let b = replica(&upstream, "  requestsPerMinute: 4\n", shared).await;

    // Four requests, two through each replica, use the tenant's whole minute.
    for gateway in [&a, &b, &a, &b] {
        let answer = ask(gateway, "team-1").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
    // Each replica alone has seen only two, yet both refuse the fifth.
    for gateway in [&a, &b] {
        let refused = ask(gateway, "team-1").await;
        assert_refused(
            &refused,
            StatusCode::TOO_MANY_REQUESTS,
            "requests_per_minute",
        );
        let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
        assert!(
            (13..=15).contains(&wait),
            "one request comes back every 15 s: {wait}"
        );
    }
    // Another tenant's buckets, with the same limits, are its own.
    for gateway in [&a, &b] {
        assert_eq!(ask(gateway, "other-1").await.status, StatusCode::OK);
    }
    assert!(
        !a.metrics()
            .await
            .contains("hangar_gateway_shared_limits_fallbacks_total{"),
        "Redis answered every time"
    );
}

#[tokio::test]
async fn unused_tokens_come_back_to_the_shared_bucket() {
    let redis = RedisServer::start(&[]).unwrap();
    let upstream = upstream().await;
    let shared = format!("    url: {}\n    prefix: settle\n", redis.url());
    // Each request reserves its prompt estimate and 100 tokens, and uses far fewer.
    let a = replica(&upstream, "  tokensPerMinute: 300\n", &shared).await;
    let b = replica(&upstream, "  tokensPerMinute: 300\n", &shared).await;
    for _ in 0..2 {
        assert_eq!(ask(&a, "team-1").await.status, StatusCode::OK);
    }
    // The give-back runs after the answer: wait until the shared bucket shows it.
    let client = Client::new(Target::parse(&redis.url(), None).unwrap(), None);
    let buckets = Script::new("return redis.call('GET', KEYS[1])");
    let started = Instant::now();
    loop {
        let reply = client
            .eval(&buckets, &["settle:{team}:rates"], &[])
            .await
            .unwrap();
        let Reply::Bulk(Some(text)) = reply else {
            panic!("no buckets in Redis: {reply:?}")
        };
        // "requests level, tokens level, requests per minute, tokens per minute, time"
        let text = String::from_utf8(text).unwrap();
        let level: f64 = text.split(' ').nth(1).unwrap().parse().unwrap();
        if level > 200.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "level stays at {level}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Without the give-back, two reservations of about 110 would leave too few for a third.
    let third = ask(&b, "team-1").await;
    assert_eq!(third.status, StatusCode::OK, "{}", third.text());
}

#[tokio::test]
async fn without_redis_each_replica_counts_on_its_own_then_shares_again() {
    let port = free_port().unwrap();
    let upstream = upstream().await;
    let shared = format!("    url: redis://127.0.0.1:{port}\n");
    let a = replica(&upstream, "  requestsPerMinute: 2\n", &shared).await;

    // Nothing listens: the replica's own bucket decides, and says so in its metrics.
    for _ in 0..2 {
        assert_eq!(ask(&a, "team-1").await.status, StatusCode::OK);
    }
    let refused = ask(&a, "team-1").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        a.metrics()
            .await
            .contains("hangar_gateway_shared_limits_fallbacks_total{action=\"local\"} 3"),
        "{}",
        a.metrics().await
    );

    // Redis comes up: after the rest that follows a failure, the shared bucket decides again,
    // and it is new and full though the local one is spent.
    let _redis = RedisServer::start_on(port, &[]).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let answer = ask(&a, "team-1").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
}

#[tokio::test]
async fn a_redis_that_does_not_answer_costs_one_timeout_then_nothing() {
    // Accepts connections and never replies.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let shared = format!(
        "    url: redis://{}\n    timeout: 1s\n",
        silent.local_addr().unwrap()
    );
    let upstream = upstream().await;
    let a = replica(&upstream, "  requestsPerMinute: 100\n", &shared).await;
    let started = Instant::now();
    assert_eq!(ask(&a, "team-1").await.status, StatusCode::OK);
    let first = started.elapsed();
    assert!(
        first >= Duration::from_secs(1),
        "it waited for Redis: {first:?}"
    );
    assert!(first < Duration::from_secs(3), "{first:?}");
    // Redis is left alone for a second: the next requests do not wait for it (one that did
    // would take the whole second).
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(ask(&a, "team-1").await.status, StatusCode::OK);
    }
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn strict_quotas_refuse_while_redis_is_away_but_only_limited_tenants() {
    let shared = format!(
        "    url: redis://127.0.0.1:{}\n    onUnavailable: refuse\n",
        free_port().unwrap()
    );
    let upstream = upstream().await;
    let a = replica(&upstream, "  tokensPerMinute: 1000\n", &shared).await;
    let refused = ask(&a, "team-1").await;
    assert_refused(
        &refused,
        StatusCode::SERVICE_UNAVAILABLE,
        "limits_unavailable",
    );
    assert_eq!(refused.header("retry-after"), Some("1"));
    // A tenant with no rate limit never needs Redis.
    assert_eq!(ask(&a, "free-1").await.status, StatusCode::OK);
    assert!(
        a.metrics()
            .await
            .contains("hangar_gateway_shared_limits_fallbacks_total{action=\"refuse\"} 1")
    );
}

#[tokio::test]
async fn the_password_comes_from_its_file() {
    let redis = RedisServer::start(&["--requirepass", "s3cret-for-test"]).unwrap();
    let upstream = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    for (password, expected) in [
        ("s3cret-for-test\n", StatusCode::OK),
        ("guess", StatusCode::SERVICE_UNAVAILABLE),
    ] {
        std::fs::write(&file, password).unwrap();
        let shared = format!(
            "    url: {}\n    passwordFile: {}\n    onUnavailable: refuse\n",
            redis.url(),
            file.display()
        );
        let gateway = replica(&upstream, "  requestsPerMinute: 5\n", &shared).await;
        let answer = ask(&gateway, "team-1").await;
        assert_eq!(answer.status, expected, "{password:?}: {}", answer.text());
    }
}

#[tokio::test]
async fn commands_from_many_callers_share_one_connection_and_get_their_own_replies() {
    let redis = RedisServer::start(&[]).unwrap();
    let client = std::sync::Arc::new(Client::new(
        Target::parse(&redis.url(), None).unwrap(),
        None,
    ));
    let echo = std::sync::Arc::new(Script::new("return ARGV[1]"));
    let callers: Vec<_> = (0..300)
        .map(|i| {
            let (client, echo) = (client.clone(), echo.clone());
            tokio::spawn(async move {
                let sent = i.to_string();
                let reply = client.eval(&echo, &[], &[&sent]).await.unwrap();
                assert_eq!(reply, Reply::Bulk(Some(sent.into_bytes())));
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    let list = Command::new("redis-cli")
        .args(["-p", &redis.port().to_string(), "client", "list"])
        .output()
        .unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    // redis-cli's own connection, and one for all 300 callers.
    assert_eq!(list.lines().count(), 2, "{list}");
}

#[tokio::test]
async fn a_connection_that_stops_answering_is_replaced() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", silent.local_addr().unwrap());
    let client = Client::new(Target::parse(&url, None).unwrap(), None);
    let ping = Script::new("return 1");
    let asked = tokio::time::timeout(Duration::from_millis(100), client.eval(&ping, &[], &[]));
    assert!(asked.await.is_err(), "no reply from a silent server");
    let (_first, _) = silent.accept().await.unwrap();
    // After two seconds without a reply the connection is given up; the next command opens
    // another (a server gone without closing its connections, as after a failover).
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let asked = tokio::time::timeout(Duration::from_millis(100), client.eval(&ping, &[], &[]));
    assert!(asked.await.is_err());
    let second = tokio::time::timeout(Duration::from_secs(1), silent.accept()).await;
    assert!(second.is_ok(), "a new connection was opened");
}

#[tokio::test]
async fn a_command_queued_behind_a_connection_that_fails_goes_out_on_the_next() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The first connection is never read, as by a server that stopped; the next ones answer
    // each command with 7.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _stopped = listener.accept().await.unwrap();
        while let Ok((mut connection, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0; 4096];
                while connection.read(&mut buffer).await.unwrap_or(0) > 0 {
                    let _ = connection.write_all(b":7\r\n").await;
                }
            });
        }
    });
    let client = Arc::new(Client::new(Target::parse(&url, None).unwrap(), None));
    let seven = Arc::new(Script::new("return 7"));
    // A command larger than the sockets' buffers: its write waits for the server to read...
    let stuck = {
        let (client, seven) = (Arc::clone(&client), Arc::clone(&seven));
        tokio::spawn(async move {
            let large = "x".repeat(64 << 20);
            client.eval(&seven, &[], &[&large]).await
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    // ...so the next one waits behind it, unwritten. The connection is given up when the write
    // has taken 2 s: the command did not run, and goes out on a new connection.
    let queued = client.eval(&seven, &[], &[]).await;
    assert_eq!(queued.unwrap(), Reply::Integer(7));
    // The large one was partly written, so it may have run: it fails.
    assert!(stuck.await.unwrap().is_err());
}

#[tokio::test]
async fn the_shared_buckets_take_from_both_or_neither_and_keep_debts_within_a_minute() {
    let redis = RedisServer::start(&[]).unwrap();
    let client = Client::new(Target::parse(&redis.url(), None).unwrap(), None);
    let script = Script::new(include_str!("../src/limits.lua"));
    let run = |args: &'static [&'static str]| {
        let (client, script) = (&client, &script);
        async move {
            match client.eval(script, &["k"], args).await.unwrap() {
                Reply::Array(Some(items)) => (items.iter())
                    .map(|item| match item {
                        Reply::Integer(n) => *n,
                        other => panic!("{other:?}"),
                    })
                    .collect::<Vec<i64>>(),
                other => panic!("{other:?}"),
            }
        }
    };
    let levels = || async {
        let get = Script::new("return redis.call('GET', KEYS[1])");
        let Reply::Bulk(Some(text)) = client.eval(&get, &["k"], &[]).await.unwrap() else {
            panic!("no key")
        };
        let text = String::from_utf8(text).unwrap();
        let numbers: Vec<f64> = text.split(' ').map(|n| n.parse().unwrap()).collect();
        (numbers[0], numbers[1])
    };
    // Two requests and 100 tokens a minute; taken, with the levels after in thousandths: 1
    // request, 40 tokens.
    assert_eq!(run(&["take", "2", "100", "60"]).await, [0, 0, 1000, 40_000]);
    // 60 more tokens are refused, with the time 20 take to come back (12 s) and the levels
    // (with what the time since refilled: a token each 600 ms)…
    let refused = run(&["take", "2", "100", "60"]).await;
    assert_eq!(refused[0], 2);
    assert!((40_000..41_000).contains(&refused[3]), "{refused:?}");
    assert!((11_900..=12_000).contains(&refused[1]), "{refused:?}");
    // …and that refusal spent no request: the second of two still passes.
    let taken = run(&["take", "2", "100", "10"]).await;
    assert_eq!((taken[0], taken[1]), (0, 0));
    assert!((0..100).contains(&taken[2]) && (30_000..31_000).contains(&taken[3]));
    let refused = run(&["take", "2", "100", "10"]).await;
    assert_eq!(refused[0], 1, "the requests bucket is empty");
    assert!((29_900..=30_000).contains(&refused[1]), "{refused:?}");
    let (requests, tokens) = levels().await;
    assert!(
        requests < 0.01 && (30.0..30.1).contains(&tokens),
        "{requests} {tokens}"
    );
    // Giving back is capped at a full bucket, charging at a minute's debt.
    run(&["give", "100", "500"]).await;
    assert_eq!(levels().await.1, 100.0);
    run(&["give", "100", "-1000"]).await;
    assert_eq!(levels().await.1, -100.0);
    // The requests bucket kept its level through the give-backs.
    assert!(levels().await.0 < 0.02);
    let ttl = Command::new("redis-cli")
        .args(["-p", &redis.port().to_string(), "pttl", "k"])
        .output()
        .unwrap();
    let ttl: u64 = String::from_utf8(ttl.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((119_000..=120_000).contains(&ttl), "{ttl}");
}

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_not_used_again() {
    // Redis closes connections idle for a second.
    let redis = RedisServer::start(&["--timeout", "1"]).unwrap();
    let client = Client::new(Target::parse(&redis.url(), None).unwrap(), None);
    let one = Script::new("return 1");
    assert_eq!(
        client.eval(&one, &[], &[]).await.unwrap(),
        Reply::Integer(1)
    );
    tokio::time::sleep(Duration::from_millis(3500)).await;
    // The closed connection was noticed while idle: this command goes out on a new one.
    assert_eq!(
        client.eval(&one, &[], &[]).await.unwrap(),
        Reply::Integer(1)
    );
}

/// The ids of `redis`'s client connections, other than its own replication link and the
/// `redis-cli` asking.
fn client_ids(redis: &RedisServer) -> Vec<String> {
    let list = Command::new("redis-cli")
        .args(["-p", &redis.port().to_string(), "client", "list"])
        .output()
        .unwrap();
    String::from_utf8(list.stdout)
        .unwrap()
        .lines()
        .filter(|line| !line.contains("cmd=client|list") && !line.contains("flags=M"))
        .map(|line| line.split(' ').next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_server_that_says_it_is_a_replica_is_left_for_a_new_connection() {
    let primary = RedisServer::start(&[]).unwrap();
    let port = primary.port().to_string();
    let replica = RedisServer::start(&["--replicaof", "127.0.0.1", &port]).unwrap();
    // (Until its first sync is loaded a replica answers LOADING instead.)
    let started = Instant::now();
    while !redis_cli(replica.port(), &["info", "replication"]).contains("master_link_status:up") {
        assert!(started.elapsed() < Duration::from_secs(60), "no sync");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = Client::new(Target::parse(&replica.url(), None).unwrap(), None);
    let write = Script::new("return redis.call('INCR', KEYS[1])");
    let error = client.eval(&write, &["k"], &[]).await.unwrap_err();
    assert!(error.to_string().contains("READONLY"), "{error}");
    // A failover promotes it (behind a Service, the next connection would reach the new
    // primary): the connection that heard READONLY is not used again.
    let before = client_ids(&replica);
    assert!(before.len() <= 1, "{before:?}");
    let promoted = Command::new("redis-cli")
        .args(["-p", &replica.port().to_string(), "replicaof", "no", "one"])
        .output()
        .unwrap();
    assert!(promoted.status.success());
    let reply = client.eval(&write, &["k"], &[]).await.unwrap();
    assert_eq!(reply, Reply::Integer(1));
    let after = client_ids(&replica);
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(!before.contains(&after[0]), "{before:?} then {after:?}");
}

/// `redis-cli -p PORT ARGS…`'s output.
fn redis_cli(port: u16, args: &[&str]) -> String {
    hangar_testkit::redis::cli(port, args).unwrap()
}

#[tokio::test]
async fn the_primary_is_found_through_sentinel_and_followed_after_a_failover() {
    // (Without the delay, the primary waits 5 s for more replicas before syncing one.)
    let first = RedisServer::start(&["--repl-diskless-sync-delay", "0"]).unwrap();
    let port = first.port().to_string();
    let second = RedisServer::start(&["--replicaof", "127.0.0.1", &port]).unwrap();
    let sentinel = RedisServer::start_sentinel(first.port(), "limits", &[]).unwrap();
    let through_sentinel = |primary: &str| {
        let mut target = Target::parse(&sentinel.url(), None).unwrap();
        target.sentinel = Some(primary.to_owned());
        Client::new(target, None)
    };
    let count = Script::new("return redis.call('INCR', KEYS[1])");

    let unknown = through_sentinel("other").eval(&count, &["k"], &[]).await;
    let error = unknown.unwrap_err().to_string();
    assert!(
        error.contains("does not watch a primary named `other`"),
        "{error}"
    );

    let client = through_sentinel("limits");
    assert_eq!(
        client.eval(&count, &["k"], &[]).await.unwrap(),
        Reply::Integer(1)
    );
    assert_eq!(redis_cli(first.port(), &["get", "k"]).trim(), "1");

    // Once the replica holds the count, and Sentinel has learnt of it from the primary (within
    // seconds), Sentinel promotes it.
    let started = Instant::now();
    while redis_cli(second.port(), &["get", "k"]).trim() != "1" {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not replicated"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while redis_cli(sentinel.port(), &["sentinel", "failover", "limits"]).trim() != "OK" {
        assert!(started.elapsed() < Duration::from_secs(60), "no failover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = Instant::now();
    while !(redis_cli(second.port(), &["role"]).starts_with("master")
        && redis_cli(first.port(), &["role"]).starts_with("slave"))
    {
        assert!(started.elapsed() < Duration::from_secs(60), "no switch");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The old primary closes its clients' connections when demoted, so the command in flight
    // may fail (or, on a connection it kept, hear READONLY); the next connection asks Sentinel
    // again and reaches the new primary, where the count goes on.
    let reply = match client.eval(&count, &["k"], &[]).await {
        Ok(reply) => reply,
        Err(_) => client.eval(&count, &["k"], &[]).await.unwrap(),
    };
    assert_eq!(reply, Reply::Integer(2));
    assert_eq!(redis_cli(second.port(), &["get", "k"]).trim(), "2");
}

/// A stand-in for Sentinel that names the primary on the port `primary` holds at each question
/// (a real Sentinel cannot be made to switch without demoting the old primary at once), or,
/// while that is 0, takes the question and never answers, as a Sentinel whose node stalls. Its
/// port, and how many connections it took.
async fn fake_sentinel(primary: Arc<AtomicU16>) -> (u16, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut connection, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let primary = primary.clone();
            tokio::spawn(async move {
                let mut buffer = [0; 512];
                // One question a connection, in one read on loopback.
                if connection.read(&mut buffer).await.unwrap_or(0) > 0 {
                    let port = primary.load(Ordering::SeqCst);
                    if port == 0 {
                        // Holds the connection, silent.
                        return std::future::pending::<()>().await;
                    }
                    let port = port.to_string();
                    let answer = format!("*2\r\n$9\r\n127.0.0.1\r\n${}\r\n{port}\r\n", port.len());
                    let _ = connection.write_all(answer.as_bytes()).await;
                }
            });
        }
    });
    (port, connections)
}

#[tokio::test]
async fn a_primary_sentinel_no_longer_names_is_left_even_while_it_still_takes_writes() {
    let old = RedisServer::start(&[]).unwrap();
    let new = RedisServer::start(&[]).unwrap();
    let named = Arc::new(AtomicU16::new(old.port()));
    let (sentinel, _) = fake_sentinel(named.clone()).await;
    let client = through_sentinels(&format!("redis://127.0.0.1:{sentinel}"));
    let count = Script::new("return redis.call('INCR', KEYS[1])");
    assert_eq!(
        client.eval(&count, &["k"], &[]).await.unwrap(),
        Reply::Integer(1)
    );

    // The old primary never says READONLY: only asking Sentinel again moves the client.
    named.store(new.port(), Ordering::SeqCst);
    let started = Instant::now();
    while redis_cli(new.port(), &["get", "k"]).trim().is_empty() {
        let _ = client.eval(&count, &["k"], &[]).await;
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still on the old primary"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client of the primary named `limits` that the Sentinels at `url` watch.
fn through_sentinels(url: &str) -> Client {
    let mut target = Target::parse(url, None).unwrap();
    target.sentinel = Some("limits".to_owned());
    Client::new(target, None)
}

#[tokio::test]
async fn the_next_sentinel_is_asked_when_the_first_does_not_answer() {
    let primary = RedisServer::start(&[]).unwrap();
    let sentinel = RedisServer::start_sentinel(primary.port(), "limits", &[]).unwrap();
    let gone = free_port().unwrap();
    let client = through_sentinels(&format!(
        "redis://127.0.0.1:{gone},127.0.0.1:{}",
        sentinel.port()
    ));
    let count = Script::new("return redis.call('INCR', KEYS[1])");
    assert_eq!(
        client.eval(&count, &["k"], &[]).await.unwrap(),
        Reply::Integer(1)
    );
    assert_eq!(redis_cli(primary.port(), &["get", "k"]).trim(), "1");
    // With none answering, the call fails.
    let none = through_sentinels(&format!("redis://127.0.0.1:{gone},127.0.0.1:{gone}"));
    let error = none.eval(&count, &["k"], &[]).await;
    assert!(error.is_err());
}

#[tokio::test]
async fn a_sentinel_that_never_answers_is_passed_over_in_time() {
    let primary = RedisServer::start(&[]).unwrap();
    // The first Sentinel's node stalls: it takes connections and never answers.
    let (stalled, stalled_connections) = fake_sentinel(Arc::new(AtomicU16::new(0))).await;
    let (answering, _) = fake_sentinel(Arc::new(AtomicU16::new(primary.port()))).await;
    let client = through_sentinels(&format!(
        "redis://127.0.0.1:{stalled},127.0.0.1:{answering}"
    ));
    let count = Script::new("return redis.call('INCR', KEYS[1])");
    let started = Instant::now();
    assert_eq!(
        client.eval(&count, &["k"], &[]).await.unwrap(),
        Reply::Integer(1)
    );
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert_eq!(stalled_connections.load(Ordering::SeqCst), 1);
    // The connection ends (the primary restarted, say): the next one asks them again, and the
    // stalled one costs as little.
    redis_cli(primary.port(), &["client", "kill", "type", "normal"]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    assert_eq!(
        client.eval(&count, &["k"], &[]).await.unwrap(),
        Reply::Integer(2)
    );
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

/// A client through fake Sentinels, each naming the server on one of `ports`, in this order.
async fn through_sentinels_naming(ports: &[u16]) -> Client {
    let mut sentinels = Vec::new();
    for port in ports {
        let (sentinel, _) = fake_sentinel(Arc::new(AtomicU16::new(*port))).await;
        sentinels.push(format!("127.0.0.1:{sentinel}"));
    }
    through_sentinels(&format!("redis://{}", sentinels.join(",")))
}

/// Counts once through `client`, and asserts the count landed on `server`.
async fn assert_counted_on(client: &Client, server: &RedisServer) {
    let count = Script::new("return redis.call('INCR', KEYS[1])");
    assert_eq!(
        client.eval(&count, &["k"], &[]).await.unwrap(),
        Reply::Integer(1)
    );
    assert_eq!(redis_cli(server.port(), &["get", "k"]).trim(), "1");
}

#[tokio::test]
async fn a_sentinel_naming_a_server_that_is_no_longer_the_primary_is_passed_over() {
    let primary = RedisServer::start(&[]).unwrap();
    let port = primary.port().to_string();
    let replica = RedisServer::start(&["--replicaof", "127.0.0.1", &port]).unwrap();
    // The first Sentinel has not seen the failover yet: it names a replica.
    let client = through_sentinels_naming(&[replica.port(), primary.port()]).await;
    assert_counted_on(&client, &primary).await;
}

#[tokio::test]
async fn the_primary_most_sentinels_name_is_the_one_written_to() {
    // The first Sentinel is cut off with the old primary, which still says it is the primary;
    // the two others have elected a new one.
    let old = RedisServer::start(&[]).unwrap();
    let new = RedisServer::start(&[]).unwrap();
    let client = through_sentinels_naming(&[old.port(), new.port(), new.port()]).await;
    assert_counted_on(&client, &new).await;
    assert_eq!(redis_cli(old.port(), &["get", "k"]).trim(), "");
}

#[tokio::test]
async fn the_server_a_minority_names_is_tried_when_the_majoritys_is_no_primary() {
    // Just after a failover the leader Sentinel names the new primary while the two others
    // still name the old one, now a replica.
    let primary = RedisServer::start(&[]).unwrap();
    let port = primary.port().to_string();
    let replica = RedisServer::start(&["--replicaof", "127.0.0.1", &port]).unwrap();
    let client = through_sentinels_naming(&[replica.port(), replica.port(), primary.port()]).await;
    assert_counted_on(&client, &primary).await;
}

#[tokio::test]
async fn a_new_primary_is_followed_though_the_sentinel_that_named_the_old_one_stalls() {
    let old = RedisServer::start(&[]).unwrap();
    let new = RedisServer::start(&[]).unwrap();
    let first_names = Arc::new(AtomicU16::new(old.port()));
    let second_names = Arc::new(AtomicU16::new(old.port()));
    let (first, _) = fake_sentinel(first_names.clone()).await;
    let (second, _) = fake_sentinel(second_names.clone()).await;
    let client = through_sentinels(&format!("redis://127.0.0.1:{first},127.0.0.1:{second}"));
    let count = Script::new("return redis.call('INCR', KEYS[1])");
    assert_eq!(
        client.eval(&count, &["k"], &[]).await.unwrap(),
        Reply::Integer(1)
    );

    // The first Sentinel's node stalls while the others fail over; the old primary never says
    // READONLY: only the second Sentinel, asked again, moves the client.
    first_names.store(0, Ordering::SeqCst);
    second_names.store(new.port(), Ordering::SeqCst);
    let started = Instant::now();
    while redis_cli(new.port(), &["get", "k"]).trim().is_empty() {
        let _ = client.eval(&count, &["k"], &[]).await;
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "still on the old primary"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_sentinel_without_a_password_is_asked_without_one() {
    let primary =
        RedisServer::start(&["--user", "gateway", "on", ">s3cret", "~*", "&*", "+@all"]).unwrap();
    let open_sentinel = RedisServer::start_sentinel(primary.port(), "limits", &[]).unwrap();
    let locked_sentinel =
        RedisServer::start_sentinel(primary.port(), "limits", &["--requirepass", "other"]).unwrap();
    let through = |sentinel: &RedisServer| {
        let url = format!("redis://gateway@127.0.0.1:{}", sentinel.port());
        let mut target = Target::parse(&url, Some("s3cret".to_owned())).unwrap();
        target.sentinel = Some("limits".to_owned());
        Client::new(target, None)
    };
    let count = Script::new("return redis.call('INCR', KEYS[1])");
    let counted = through(&open_sentinel).eval(&count, &["k"], &[]).await;
    assert_eq!(counted.unwrap(), Reply::Integer(1));
    // A Sentinel that wants another login says why it refused this one.
    let error = through(&locked_sentinel)
        .eval(&count, &["k"], &[])
        .await
        .unwrap_err();
    let error = error.to_string();
    assert!(
        error.contains("(Sentinel at 127.0.0.1:") && error.contains("WRONGPASS"),
        "{error}"
    );
    assert!(!error.contains("s3cret"), "{error}");
}

/// A CA and, signed by it, a certificate for Redis at 127.0.0.1 and one for the gateway, as PEM
/// files in `dir`: `ca.pem`, `redis.pem` and `redis.key`, `gateway.pem` and `gateway.key`.
fn certificates(dir: &std::path::Path) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // Names of their own: OpenSSL (Redis's) takes a certificate whose subject is its issuer's
    // for self-signed, and rcgen gives every certificate the same one.
    params.distinguished_name = common_name("hangar test CA");
    let ca =
        rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    for (name, subject) in [("redis", "127.0.0.1"), ("gateway", "hangar-gateway")] {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![subject.to_owned()]).unwrap();
        params.distinguished_name = common_name(name);
        let cert = params.signed_by(&key, &ca).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

fn common_name(name: &str) -> rcgen::DistinguishedName {
    let mut distinguished = rcgen::DistinguishedName::new();
    distinguished.push(rcgen::DnType::CommonName, name);
    distinguished
}

/// A Redis speaking only TLS with the certificates of [`certificates`], started with `extra`.
fn tls_redis(dir: &std::path::Path, extra: &[&str]) -> RedisServer {
    let file = |name: &str| dir.join(name);
    RedisServer::start_tls(
        &file("redis.pem"),
        &file("redis.key"),
        &file("ca.pem"),
        extra,
    )
    .unwrap()
}

#[tokio::test]
async fn limits_are_shared_over_tls_with_a_redis_the_gateway_trusts() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let redis = tls_redis(dir.path(), &[]);
    assert!(redis.url().starts_with("rediss://"));
    let upstream = upstream().await;
    let trusted = format!(
        "    url: {}\n    tls: {{caFile: {}}}\n    onUnavailable: refuse\n",
        redis.url(),
        dir.path().join("ca.pem").display()
    );
    let a = replica(&upstream, "  requestsPerMinute: 2\n", &trusted).await;
    let b = replica(&upstream, "  requestsPerMinute: 2\n", &trusted).await;
    for gateway in [&a, &b] {
        let answer = ask(gateway, "team-1").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
    let refused = ask(&a, "team-1").await;
    assert_refused(
        &refused,
        StatusCode::TOO_MANY_REQUESTS,
        "requests_per_minute",
    );

    // Without the CA the server's certificate is not trusted: no limits are taken from it,
    // and with `refuse` the tenant is refused rather than counted locally.
    let untrusted = format!("    url: {}\n    onUnavailable: refuse\n", redis.url());
    let c = replica(&upstream, "  requestsPerMinute: 2\n", &untrusted).await;
    let answer = ask(&c, "other-1").await;
    assert_refused(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "limits_unavailable",
    );
    // `hangar gateway check` says why.
    let config = serde_json::from_value(serde_json::json!({"url": redis.url()})).unwrap();
    let why = SharedLimits::new(&config)
        .unwrap()
        .reach()
        .await
        .unwrap_err();
    assert!(
        why.why.contains("invalid peer certificate: UnknownIssuer") && !why.refused,
        "{why:?}"
    );
    // The plain protocol on a TLS port is refused as well.
    let plain = format!(
        "    url: redis://127.0.0.1:{}\n    onUnavailable: refuse\n",
        redis.port()
    );
    let d = replica(&upstream, "  requestsPerMinute: 2\n", &plain).await;
    assert_eq!(
        ask(&d, "other-1").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn a_redis_that_asks_for_a_client_certificate_gets_the_gateways() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let redis = tls_redis(dir.path(), &["--tls-auth-clients", "yes"]);
    let upstream = upstream().await;
    let file = |name: &str| dir.path().join(name).display().to_string();
    let with_certificate = format!(
        "    url: {}\n    tls: {{caFile: {}, certFile: {}, keyFile: {}}}\n    onUnavailable: refuse\n",
        redis.url(),
        file("ca.pem"),
        file("gateway.pem"),
        file("gateway.key")
    );
    let without = format!(
        "    url: {}\n    tls: {{caFile: {}}}\n    onUnavailable: refuse\n",
        redis.url(),
        file("ca.pem")
    );
    for (shared, expected) in [
        (with_certificate, StatusCode::OK),
        (without, StatusCode::SERVICE_UNAVAILABLE),
    ] {
        let gateway = replica(&upstream, "  requestsPerMinute: 5\n", &shared).await;
        let answer = ask(&gateway, "team-1").await;
        assert_eq!(answer.status, expected, "{shared}: {}", answer.text());
    }
}

#[tokio::test]
async fn replicas_share_limits_through_a_redis_cluster_following_its_redirections() {
    let nodes = RedisServer::start_cluster(3, 0).unwrap();
    let team = cluster_owner(&nodes, "hangar:{team}:rates").unwrap();
    // Point the gateways at a node that does not hold the tenant's key, as a cluster's
    // configuration endpoint may.
    let seed = &nodes[(team + 1) % nodes.len()];
    // (The first request connects to two nodes: a timeout with room for a loaded machine.)
    let shared = format!("    url: {}\n    timeout: 1s\n", seed.url());
    two_replicas_share_one_limit(&shared).await;
    // The tenant's buckets are on the node holding its slot: no request used up the minute.
    let saved = redis_cli(nodes[team].port(), &["get", "hangar:{team}:rates"]);
    let level: f64 = saved.split(' ').next().unwrap().parse().unwrap();
    assert!(level < 1.0, "{saved}");
}

#[tokio::test]
async fn a_cluster_node_that_stops_answering_leaves_the_other_nodes_tenants_shared() {
    let nodes = RedisServer::start_cluster(3, 0).unwrap();
    // `team` and `free`, each limited, have their keys on different nodes (as each tenant's
    // keys hash by its name, their slots are 15631 and 255).
    let team = cluster_owner(&nodes, "hangar:{team}:rates").unwrap();
    assert_ne!(team, cluster_owner(&nodes, "hangar:{free}:rates").unwrap());
    let upstream = upstream().await;
    let limited = "  models: [llama]\n  maxTokens: 100\n  requestsPerMinute: 4\n";
    let tenants = format!("team:\n{limited}free:\n{limited}");
    let extra = format!(
        "limits:\n  shared:\n    url: {}\n    timeout: 200ms\n",
        nodes[(team + 1) % 3].url()
    );
    let setup = || Setup {
        keys: &[("team-1", "team"), ("free-1", "free")],
        tenants: &tenants,
        models: MODELS,
        extra: &extra,
    };
    let a = TestGateway::start(setup(), &[&upstream.url()]).await;
    let b = TestGateway::start(setup(), &[&upstream.url()]).await;
    // Both replicas learn where the tenants' keys are.
    for gateway in [&a, &b] {
        for key in ["team-1", "free-1"] {
            assert_eq!(ask(gateway, key).await.status, StatusCode::OK);
        }
    }

    nodes[team].freeze().unwrap();
    // `team`'s node times out: its requests are decided by each replica alone...
    for gateway in [&a, &b] {
        assert_eq!(ask(gateway, "team-1").await.status, StatusCode::OK);
    }
    // ...while `free`'s are still counted on its node, within the second that follows: two
    // more use its minute, and both replicas refuse the fifth.
    for gateway in [&a, &b] {
        let answer = ask(gateway, "free-1").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
    for gateway in [&a, &b] {
        let refused = ask(gateway, "free-1").await;
        assert_refused(
            &refused,
            StatusCode::TOO_MANY_REQUESTS,
            "requests_per_minute",
        );
    }
}

/// Calls of EVAL and EVALSHA the node has answered or refused (with a redirection).
fn script_calls(node: &RedisServer) -> u64 {
    let stats = redis_cli(node.port(), &["info", "commandstats"]);
    stats
        .lines()
        .filter(|line| line.starts_with("cmdstat_eval"))
        .flat_map(|line| line.split([':', ',']))
        .filter_map(|field| {
            let (name, value) = field.split_once('=')?;
            ["calls", "rejected_calls"]
                .contains(&name)
                .then(|| value.trim().parse::<u64>().unwrap())
        })
        .sum()
}

#[tokio::test]
async fn a_slot_moving_between_cluster_nodes_is_followed_with_ask_then_moved() {
    let nodes = RedisServer::start_cluster(3, 0).unwrap();
    let from = cluster_owner(&nodes, "k").unwrap();
    let (source, destination) = (&nodes[from], &nodes[(from + 1) % nodes.len()]);
    let slot = redis_cli(source.port(), &["cluster", "keyslot", "k"]);
    let slot = slot.trim();
    let client = Client::new(Target::parse(&source.url(), None).unwrap(), None);
    let count = Script::new("return redis.call('INCR', KEYS[1])");
    assert_eq!(
        client.eval(&count, &["k"], &[]).await.unwrap(),
        Reply::Integer(1)
    );

    // The slot starts moving: the source keeps serving the keys it still has, and sends a key
    // it does not have to the destination, to be asked after ASKING.
    let (source_id, destination_id) = (cluster_id(source), cluster_id(destination));
    let importing = ["cluster", "setslot", slot, "importing", &source_id];
    assert_eq!(redis_cli(destination.port(), &importing).trim(), "OK");
    let migrating = ["cluster", "setslot", slot, "migrating", &destination_id];
    assert_eq!(redis_cli(source.port(), &migrating).trim(), "OK");
    assert_eq!(
        client.eval(&count, &["k"], &[]).await.unwrap(),
        Reply::Integer(2)
    );
    // (A hash tag puts the new key in the same slot.)
    assert_eq!(
        client.eval(&count, &["{k}:new"], &[]).await.unwrap(),
        Reply::Integer(1)
    );
    let on_destination = ["cluster", "countkeysinslot", slot];
    assert_eq!(redis_cli(destination.port(), &on_destination).trim(), "1");
    assert_eq!(redis_cli(source.port(), &on_destination).trim(), "1");

    // The rest moves and the slot is the destination's: the source says MOVED, once.
    let port = destination.port().to_string();
    let moved = ["migrate", "127.0.0.1", &port, "", "0", "5000", "keys", "k"];
    assert_eq!(redis_cli(source.port(), &moved).trim(), "OK");
    for node in &nodes {
        let settled = ["cluster", "setslot", slot, "node", &destination_id];
        assert_eq!(redis_cli(node.port(), &settled).trim(), "OK");
    }
    assert_eq!(
        client.eval(&count, &["k"], &[]).await.unwrap(),
        Reply::Integer(3)
    );
    let destination_address = format!("127.0.0.1:{}", destination.port());
    assert_eq!(client.cluster_nodes(), [destination_address]);
    let asked_of_source = script_calls(source);
    assert_eq!(
        client.eval(&count, &["k"], &[]).await.unwrap(),
        Reply::Integer(4)
    );
    assert_eq!(
        script_calls(source),
        asked_of_source,
        "asked the source again"
    );
}

#[tokio::test]
async fn a_cluster_node_replaced_in_a_failover_is_found_through_the_others() {
    cluster_failover(false).await;
}

#[tokio::test]
async fn when_the_urls_own_cluster_node_fails_the_other_nodes_are_asked() {
    cluster_failover(true).await;
}

/// A key held by another primary than `k`'s.
fn key_elsewhere(nodes: &[RedisServer]) -> String {
    let k = cluster_owner(nodes, "k").unwrap();
    (0..)
        .map(|i| format!("key-{i}"))
        .find(|key| cluster_owner(nodes, key).unwrap() != k)
        .unwrap()
}

/// Counts on `k` through a client pointed at `k`'s primary (`url_fails`) or at another, kills
/// that primary once its replica has the count, and checks that the count goes on at the
/// promoted replica, each call given up after 100 ms as the limits do.
async fn cluster_failover(url_fails: bool) {
    let mut nodes = RedisServer::start_cluster(3, 1).unwrap();
    let from = cluster_owner(&nodes, "k").unwrap();
    let url = if url_fails { from } else { (from + 1) % 3 };
    let client = Client::new(Target::parse(&nodes[url].url(), None).unwrap(), None);
    let count = Script::new("return redis.call('INCR', KEYS[1])");
    // The client learns of another node than the URL's.
    let elsewhere = key_elsewhere(&nodes);
    client.eval(&count, &[&elsewhere], &[]).await.unwrap();
    assert_eq!(
        client.eval(&count, &["k"], &[]).await.unwrap(),
        Reply::Integer(1)
    );
    // Once the primary's replica holds the count, the primary goes away.
    let primary_port = nodes[from].port().to_string();
    let replica = (3..nodes.len())
        .find(|i| {
            // A replica's ROLE: `slave`, its primary's host, then its port.
            let role = redis_cli(nodes[*i].port(), &["role"]);
            role.lines().nth(2) == Some(primary_port.as_str())
        })
        .unwrap();
    let started = Instant::now();
    while !redis_cli(nodes[replica].port(), &["info", "keyspace"]).contains("keys=1") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not replicated"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let promoted = format!("127.0.0.1:{}", nodes[replica].port());
    drop(nodes.remove(from));

    // Calls fail until the replica takes over; then the slot is asked again (of the URL's node,
    // or of another while that is down), which sends it to the new primary.
    let started = Instant::now();
    let reply = loop {
        let call = client.eval(&count, &["k"], &[]);
        if let Ok(Ok(reply)) = tokio::time::timeout(Duration::from_millis(100), call).await {
            break reply;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no failover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(reply, Reply::Integer(2));
    assert!(client.cluster_nodes().contains(&promoted), "{promoted}");
}

/// A stand-in for a server that answers each read on a connection with the next of `answers`,
/// and with the last one once they are used up.
async fn answering(answers: Vec<String>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut connection, _)) = listener.accept().await {
            let answers = answers.clone();
            tokio::spawn(async move {
                let mut buffer = [0; 4096];
                let mut next = answers
                    .iter()
                    .chain(std::iter::repeat(answers.last().unwrap()));
                while connection.read(&mut buffer).await.unwrap_or(0) > 0 {
                    let _ = connection.write_all(next.next().unwrap().as_bytes()).await;
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn a_command_told_to_try_again_while_its_slot_moves_is_sent_again() {
    let busy = "-TRYAGAIN Multiple keys request during rehashing of slot\r\n".to_owned();
    let port = answering(vec![busy.clone(), busy, ":7\r\n".to_owned()]).await;
    let client = Client::new(
        Target::parse(&format!("redis://127.0.0.1:{port}"), None).unwrap(),
        None,
    );
    let count = Script::new("return 7");
    let reply = client
        .eval(&count, &["{a}:rates", "{a}:inflight"], &[])
        .await;
    assert_eq!(reply.unwrap(), Reply::Integer(7));
}

#[tokio::test]
async fn a_cluster_node_that_stops_answering_is_forgotten_though_callers_gave_up() {
    // A node that takes connections and never answers, as one cut off by a partition.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let url = answering(vec![format!("-MOVED 12182 127.0.0.1:{silent_port}\r\n")]).await;
    let client = Client::new(
        Target::parse(&format!("redis://127.0.0.1:{url}"), None).unwrap(),
        None,
    );
    let count = Script::new("return redis.call('INCR', KEYS[1])");
    let call = client.eval(&count, &["foo"], &[]);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), call)
            .await
            .is_err()
    );
    assert_eq!(client.cluster_nodes(), [format!("127.0.0.1:{silent_port}")]);
    // The connection is taken for dead 2 s after its command, and the slot is asked of the
    // URL's node again.
    let started = Instant::now();
    while !client.cluster_nodes().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "still placed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(silent);
}

#[tokio::test]
async fn requests_in_flight_are_counted_across_replicas() {
    let redis = RedisServer::start(&[]).unwrap();
    let upstream = upstream().await;
    upstream.set_faults(Faults {
        latency: Duration::from_millis(700),
        ..Faults::default()
    });
    let shared = format!("    url: {}\n", redis.url());
    let a = Arc::new(replica(&upstream, "  maxConcurrent: 2\n", &shared).await);
    let b = Arc::new(replica(&upstream, "  maxConcurrent: 2\n", &shared).await);
    let slow = |gateway: &Arc<TestGateway>, key: &'static str| {
        let gateway = Arc::clone(gateway);
        tokio::spawn(async move { ask(&gateway, key).await.status })
    };
    // One slow request through each replica fills the tenant's two places...
    let running = [slow(&a, "team-1"), slow(&b, "team-1")];
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ...so a third is refused by either, though each holds only one.
    for gateway in [&a, &b] {
        let refused = ask(gateway, "team-1").await;
        assert_refused(&refused, StatusCode::TOO_MANY_REQUESTS, "concurrency_limit");
        assert_eq!(refused.header("retry-after"), Some("1"));
    }
    // Another tenant's places are its own.
    let other = slow(&a, "other-1");
    for task in running {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(other.await.unwrap(), StatusCode::OK);

    // Ended requests free their places (sent to Redis within 50 ms).
    upstream.clear_faults();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        redis_cli(redis.port(), &["zcard", "hangar:{team}:inflight"]).trim(),
        "0"
    );
    for gateway in [&a, &b] {
        assert_eq!(ask(gateway, "team-1").await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn places_in_flight_are_taken_with_the_rates_and_lapse_without_their_replica() {
    let redis = RedisServer::start(&[]).unwrap();
    let client = Client::new(Target::parse(&redis.url(), None).unwrap(), None);
    let script = Script::new(include_str!("../src/limits.lua"));
    let keys = ["t:{a}:rates", "t:{a}:inflight"];
    // Two places at most, leases of 300 ms; `per_minute` requests a minute (0: no limit).
    let take = |per_minute: &'static str, place: &'static str| {
        let client = &client;
        let script = &script;
        async move {
            let args = ["take", per_minute, "0", "0", "2", place, "300"];
            match client.eval(script, &keys, &args).await.unwrap() {
                Reply::Array(Some(items)) => items,
                other => panic!("{other:?}"),
            }
        }
    };
    // Taken, and the buckets' levels after it: no request left, no token rate.
    assert_eq!(take("1", "r1:0").await, [0, 0, 0, 0].map(Reply::Integer));
    // The rate refuses the second request: no place is taken for it.
    assert_eq!(take("1", "r1:1").await[0], Reply::Integer(1));
    assert_eq!(redis_cli(redis.port(), &["zcard", keys[1]]).trim(), "1");
    // Without a rate, places alone: the second fills them, the third is refused.
    let free = |place| take("0", place);
    assert_eq!(free("r2:0").await[0], Reply::Integer(0));
    assert_eq!(free("r2:1").await[0], Reply::Integer(3));
    // A renewed place outlives its first lease; one not renewed (its replica gone) lapses.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let renewed = client
        .eval(&script, &keys[1..], &["renew", "300", "1", "r2:0"])
        .await;
    assert!(renewed.is_ok(), "{renewed:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(free("r3:0").await[0], Reply::Integer(0), "r1:0 lapsed");
    assert_eq!(free("r3:1").await[0], Reply::Integer(3), "r2:0 renewed");
    let released = client
        .eval(&script, &keys[1..], &["release", "r2:0", "r3:0"])
        .await;
    assert!(released.is_ok(), "{released:?}");
    assert_eq!(redis_cli(redis.port(), &["zcard", keys[1]]).trim(), "0");
}

#[tokio::test]
async fn a_renewal_puts_back_a_place_redis_lost_but_never_takes_one_it_may_not_have() {
    let redis = RedisServer::start(&[]).unwrap();
    let client = Client::new(Target::parse(&redis.url(), None).unwrap(), None);
    let script = Script::new(include_str!("../src/limits.lua"));
    let key = "t:{a}:inflight";
    // Redis lost the places (restarted without persistence): `r:0`, which it said it took, is
    // put back; `r:1`, whose take timed out and may never have run, is not taken now.
    let renew = ["renew", "60000", "1", "r:0", "r:1"];
    let renewed = client.eval(&script, &[key], &renew).await;
    assert!(renewed.is_ok(), "{renewed:?}");
    assert_eq!(
        redis_cli(redis.port(), &["zrange", key, "0", "-1"]).trim(),
        "r:0"
    );
    let ttl: u64 = redis_cli(redis.port(), &["pttl", key])
        .trim()
        .parse()
        .unwrap();
    assert!((59_000..=60_000).contains(&ttl), "{ttl}");
    // A place of a take that timed out and did run is there: its lease is extended.
    redis_cli(redis.port(), &["zadd", key, "1", "r:1"]);
    let renewed = client.eval(&script, &[key], &renew).await;
    assert!(renewed.is_ok(), "{renewed:?}");
    let lease_ends: f64 = redis_cli(redis.port(), &["zscore", key, "r:1"])
        .trim()
        .parse()
        .unwrap();
    assert!(lease_ends > 1.0, "{lease_ends}");
}

#[tokio::test]
async fn the_check_runs_every_command_the_limits_need() {
    // ACL users with what the rates alone need, with what places in flight need too, and with
    // what the extraction windows need besides.
    let rates = ["~hangar:*", "+evalsha", "+eval", "+get", "+set", "+time"];
    let places = ["+zadd", "+zrem", "+zcard", "+zremrangebyscore", "+pexpire"];
    let windows = [
        "+zremrangebyrank",
        "+hget",
        "+hmget",
        "+hset",
        "+hincrby",
        "+hdel",
        "+del",
    ];
    let mut args = vec!["--user", "rates", "on", ">pw"];
    args.extend(rates);
    args.extend(["--user", "both", "on", ">pw"]);
    args.extend(rates.iter().chain(&places));
    args.extend(["--user", "all", "on", ">pw"]);
    args.extend(rates.iter().chain(&places).chain(&windows));
    let redis = RedisServer::start(&args).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "pw").unwrap();
    let check = |user: &str, concurrency: bool, extraction: bool| {
        let config = serde_json::json!({
            "url": format!("redis://{user}@127.0.0.1:{}", redis.port()),
            "passwordFile": password,
            "concurrency": concurrency,
            "extraction": extraction,
        });
        let shared = SharedLimits::new(&serde_json::from_value(config).unwrap()).unwrap();
        async move { shared.reach().await }
    };
    let refused = check("rates", true, false).await.unwrap_err();
    assert!(
        refused.refused
            && refused
                .why
                .contains("the user needs +evalsha +eval +get +set +time +zadd"),
        "{refused:?}"
    );
    assert!(check("rates", false, false).await.is_ok());
    assert!(check("both", true, false).await.is_ok());
    let refused = check("both", true, true).await.unwrap_err();
    assert!(
        refused.refused
            && refused
                .why
                .contains("+zremrangebyrank +hget +hmget +hset +hincrby +hdel +del"),
        "{refused:?}"
    );
    assert!(check("all", true, true).await.is_ok());
    let places = [
        "--user",
        "both",
        "--pass",
        "pw",
        "zcard",
        "hangar:{{check}:inflight",
    ];
    assert_eq!(
        redis_cli(redis.port(), &places).trim(),
        "0",
        "the place was freed"
    );
}

/// A gateway whose limits are shared through `shared` and that alerts on a caller with 4
/// requests in 10 minutes, nearly all of them different prompts.
async fn watching_replica(upstream: &FakeOpenAiServer, shared: &str) -> TestGateway {
    let extra = format!(
        "limits:\n  shared:\n{shared}guards:\n  extraction: {{minRequests: 4, distinctRatio: 0.9}}\n"
    );
    let setup = Setup {
        keys: &[("team-1", "team")],
        tenants: "team:\n  models: [llama]\n",
        models: MODELS,
        extra: &extra,
    };
    TestGateway::start(setup, &[&upstream.url()]).await
}

/// The details of the extraction alerts in `gateway`'s audit records (stops it).
async fn extraction_alerts(gateway: &mut TestGateway) -> Vec<String> {
    let records = gateway.audit_records().await;
    (records.iter())
        .flat_map(|record| record["guards"].as_array().into_iter().flatten())
        .filter(|guard| guard["guard"] == "extraction")
        .map(|guard| guard["detail"].as_str().unwrap().to_owned())
        .collect()
}

/// Sends `prompts` from team-1 to the replicas in turn.
async fn spread(replicas: &[&TestGateway], prompts: &[&str]) {
    for (prompt, gateway) in prompts.iter().zip(replicas.iter().cycle()) {
        let answer = gateway.chat(gateway.key("team-1"), prompt).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
}

/// Two watching replicas sharing a new Redis with `settings` (YAML under `limits.shared`
/// besides its URL), with that Redis and their model server.
async fn two_watching_replicas(
    settings: &str,
) -> (RedisServer, FakeOpenAiServer, TestGateway, TestGateway) {
    let redis = RedisServer::start(&[]).unwrap();
    let upstream = upstream().await;
    let shared = format!("    url: {}\n{settings}", redis.url());
    let a = watching_replica(&upstream, &shared).await;
    let b = watching_replica(&upstream, &shared).await;
    (redis, upstream, a, b)
}

#[tokio::test]
async fn replicas_watch_a_callers_extraction_window_as_a_whole() {
    let (_redis, _upstream, mut a, mut b) = two_watching_replicas("").await;

    // Two distinct prompts through each: neither replica alone has seen four.
    spread(&[&a, &b], &["q1", "q2", "q3", "q4"]).await;
    // The window is the caller's across replicas: each shows all the requests it has seen.
    b.metrics_with("signal=\"requests\"} 4").await;
    spread(&[&a], &["q5"]).await;
    a.metrics_with("signal=\"requests\"} 5").await;

    // The fourth request, through b, raised the alert, and the fifth did not raise it again.
    let (from_a, from_b) = (
        extraction_alerts(&mut a).await,
        extraction_alerts(&mut b).await,
    );
    assert!(from_a.is_empty(), "{from_a:?}");
    assert_eq!(from_b.len(), 1, "{from_b:?}");
    assert!(
        from_b[0].starts_with(
            "key team-1 (tenant team) looks like model extraction: 4 requests in the window (≥ 4), distinct prompts 1.00"
        ),
        "{}",
        from_b[0]
    );
}

#[tokio::test]
async fn without_shared_extraction_each_replica_watches_its_share() {
    let (redis, _upstream, mut a, mut b) = two_watching_replicas("    extraction: false\n").await;
    spread(&[&a, &b], &["q1", "q2", "q3", "q4", "q5", "q6"]).await;
    assert!(extraction_alerts(&mut a).await.is_empty());
    assert!(extraction_alerts(&mut b).await.is_empty());
    let keys = redis_cli(redis.port(), &["keys", "*extraction*"]);
    assert!(keys.trim().is_empty(), "{keys}");
}

#[tokio::test]
async fn without_redis_the_replica_watches_its_own_window_and_loses_no_record() {
    let port = free_port().unwrap();
    let upstream = upstream().await;
    let mut a = watching_replica(&upstream, &format!("    url: redis://127.0.0.1:{port}\n")).await;
    spread(&[&a], &["q1", "q2", "q3", "q4"]).await;
    let records = a.audit_records().await;
    let answered = (records.iter()).filter(|r| r["kind"] == "request").count();
    assert_eq!(answered, 4, "{records:?}");
    let alerts: Vec<_> = (records.iter())
        .flat_map(|record| record["guards"].as_array().into_iter().flatten())
        .filter(|guard| guard["guard"] == "extraction")
        .collect();
    assert_eq!(
        alerts.len(),
        1,
        "the replica's own window alerted: {records:?}"
    );
}

/// Shared limits on `redis` with the extraction windows on.
fn shared_on(redis: &RedisServer) -> SharedLimits {
    let config = serde_json::json!({"url": redis.url(), "prefix": "x"});
    SharedLimits::new(&serde_json::from_value(config).unwrap()).unwrap()
}

#[tokio::test]
async fn a_shared_extraction_window_counts_forgets_and_alerts_once() {
    let redis = RedisServer::start(&[]).unwrap();
    let shared = shared_on(&redis);
    let thresholds = hangar_guard::ExtractionThresholds {
        window: Duration::from_secs(1),
        min_requests: 3,
        distinct_ratio: 2.0, // never
        output_input_ratio: 5.0,
    };
    let record = |key_id: &'static str, prompt: u64, tokens: (u64, u64)| {
        let (shared, thresholds) = (&shared, &thresholds);
        async move {
            (shared.record_extraction("team", key_id, prompt, tokens, thresholds))
                .await
                .unwrap()
        }
    };
    // Two prompts, one of them twice; 10 prompt tokens for 60 completion tokens.
    let (signals, alert) = record("k{1}", 1, (5, 10)).await;
    assert_eq!(signals.requests_in_window, 1);
    assert!(!alert);
    record("k{1}", 2, (3, 20)).await;
    let (signals, alert) = record("k{1}", 1, (2, 30)).await;
    assert_eq!(signals.requests_in_window, 3);
    assert!(
        (signals.distinct_prompt_ratio - 2.0 / 3.0).abs() < 1e-9,
        "{signals:?}"
    );
    assert!(
        (signals.output_input_ratio - 6.0).abs() < 1e-9,
        "{signals:?}"
    );
    assert!(alert, "6 completion tokens per prompt token, 3 requests");
    // Once per window, whichever replica asks.
    let (signals, alert) = record("k{1}", 3, (1, 10)).await;
    assert_eq!(signals.requests_in_window, 4);
    assert!(!alert);
    // Another key of the tenant has a window of its own.
    assert_eq!(record("k2", 1, (1, 1)).await.0.requests_in_window, 1);
    // The key id is hashed into the key name: its braces cannot move it off the tenant's node.
    let keys = redis_cli(redis.port(), &["keys", "x:{team}:extraction:*"]);
    assert_eq!(
        keys.lines().count(),
        5,
        "two callers' prompts and counts, one alert: {keys}"
    );
    assert!(!keys.contains("k{1}"), "{keys}");

    // A window later, all of it is forgotten, and the caller may alert again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (signals, alert) = record("k{1}", 9, (1, 1)).await;
    assert_eq!(signals.requests_in_window, 1, "{signals:?}");
    assert_eq!(signals.distinct_prompt_ratio, 1.0);
    assert!(!alert);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let keys = redis_cli(redis.port(), &["keys", "x:*"]);
    assert!(keys.trim().is_empty(), "every key expires: {keys}");
}

#[tokio::test]
async fn a_shared_window_remembers_a_bounded_number_of_prompts() {
    let redis = RedisServer::start(&[]).unwrap();
    let shared = shared_on(&redis);
    let thresholds = hangar_guard::ExtractionThresholds {
        window: Duration::from_secs(600),
        min_requests: 10,
        ..Default::default()
    };
    let remembered = thresholds.remembered() as u64;
    assert_eq!(
        remembered,
        hangar_guard::extraction::DEFAULT_ENTRIES_PER_KEY as u64
    );
    let mut last = None;
    for prompt in 0..remembered + 50 {
        last = shared
            .record_extraction("team", "k", prompt, (1, 1), &thresholds)
            .await;
    }
    let (signals, _) = last.unwrap();
    assert_eq!(signals.requests_in_window, remembered + 50);
    assert_eq!(signals.distinct_prompt_ratio, 1.0, "every prompt differs");
    let key = redis_cli(redis.port(), &["keys", "x:{team}:extraction:*:prompts"]);
    let held = redis_cli(redis.port(), &["zcard", key.trim()]);
    assert_eq!(held.trim(), remembered.to_string());
}

#[tokio::test]
async fn requests_leave_a_shared_window_as_it_slides() {
    let redis = RedisServer::start(&[]).unwrap();
    let shared = shared_on(&redis);
    let thresholds = hangar_guard::ExtractionThresholds {
        window: Duration::from_secs(1),
        min_requests: 100,
        ..Default::default()
    };
    let record = |prompt_tokens: u64| {
        let (shared, thresholds) = (&shared, &thresholds);
        async move {
            let tokens = (prompt_tokens, 2 * prompt_tokens);
            let recorded = shared.record_extraction("team", "k", prompt_tokens, tokens, thresholds);
            recorded.await.unwrap().0
        }
    };
    for _ in 0..3 {
        record(5).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    record(7).await;
    let signals = record(7).await;
    assert_eq!(signals.requests_in_window, 5);
    // The first three are over a second old, the two others half a second.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let signals = record(1).await;
    assert_eq!(signals.requests_in_window, 3, "{signals:?}");
    assert_eq!(signals.output_input_ratio, 2.0);
    assert!(
        (signals.distinct_prompt_ratio - 2.0 / 3.0).abs() < 1e-9,
        "{signals:?}"
    );
    let key = redis_cli(redis.port(), &["keys", "x:{team}:extraction:*:counts"]);
    let counts = redis_cli(redis.port(), &["hmget", key.trim(), "r", "p", "c"]);
    assert_eq!(
        counts.split_whitespace().collect::<Vec<_>>(),
        ["3", "15", "30"]
    );
}
