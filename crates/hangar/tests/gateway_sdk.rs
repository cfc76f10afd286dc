//! The inference gateway end to end with the official `openai` Python SDK: a fake model server,
//! the real `hangar gateway run`, and `tests/e2e/openai_sdk.py` driving it (model listing, chat
//! with and without streaming, legacy completions, embeddings, each error class). Afterwards:
//! what reached the model server, and what the audit and content logs kept.
//!
//! Needs `pip install -r tests/e2e/requirements.txt`; without the SDK the test fails and says so.
//! `HANGAR_E2E_PYTHON` names another interpreter (a virtualenv with another SDK version).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hangar_gateway::auth::keys::{self, NewKey};
use hangar_testkit::fake_openai::{FakeOpenAi, FakeOpenAiServer};
use serde_json::{Value, json};

const PROMPT: &str = "What is the capital of France?";
const REPLY: &str = "The capital of France is Paris.";
const DIMENSIONS: usize = 48;
const MAX_TOKENS: u64 = 256;
/// The name the model server knows `chat-small` by.
const UPSTREAM_CHAT: &str = "fake-chat-1b";
/// The card number in the script's streamed prompt, as sent and without its spaces.
const CARDS: [&str; 2] = ["4111 1111 1111 1111", "4111111111111111"];
/// The start of that prompt: the content log must keep the prompt, redacted.
const CARD_PROMPT_START: &str = "Please check my card";
const STARTUP: Duration = Duration::from_secs(30);
const SCRIPT_DEADLINE: Duration = Duration::from_secs(120);
const SHUTDOWN: Duration = Duration::from_secs(15);

#[test]
fn the_openai_python_sdk_works_through_the_gateway() {
    sdk_round_trip(Cores::All);
}

/// On one core the gateway runs a single-threaded runtime: the same round trip, signals and
/// shutdown included.
#[test]
fn the_openai_python_sdk_works_through_a_gateway_on_one_core() {
    sdk_round_trip(Cores::One);
}

fn sdk_round_trip(cores: Cores) {
    let sdk = openai_sdk_version();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(fake_model_server()).unwrap();
    let keys = Keys::generate();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let config = dir.path().join("gateway.yaml");
    let text =
        serde_json::to_string_pretty(&gateway_config(&fake.url(), closed_port(), &keys, &audit))
            .unwrap();
    std::fs::write(&config, text).unwrap();

    let gateway = Gateway::start_on(&config, cores);
    // A new log's first anchor comes once its start record is written, not a minute later.
    let first_anchor = Instant::now() + Duration::from_secs(5);
    while !gateway.log().contains("audit log anchor: ") {
        assert!(
            Instant::now() < first_anchor,
            "no anchor logged at start:\n{}",
            gateway.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let run = run_script(&gateway.address, &keys, dir.path());
    let script_output = format!(
        "--- openai {sdk} ---\n{}\n--- gateway ---\n{}",
        run.output,
        gateway.log()
    );
    assert!(
        run.status.success(),
        "tests/e2e/openai_sdk.py failed ({}):\n{script_output}",
        run.status
    );
    assert!(
        run.output.contains("checks passed"),
        "the script did not finish its checks:\n{script_output}"
    );
    println!("{script_output}");

    let log = Arc::clone(&gateway.log);
    let stopped = gateway.stop();
    assert!(
        stopped.success(),
        "the gateway exited with {stopped} on SIGTERM"
    );

    check_upstream_requests(&fake, &keys);
    check_logs(&audit, &keys);
    check_anchor(&audit, &log);
}

/// The audit log's newest file in `dir`.
fn newest_audit_file(dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("audit-")
        })
        .collect();
    files.sort();
    files.pop().unwrap()
}

/// The anchor the gateway logs when it stops proves what the files alone cannot: that the
/// newest records were not cut off.
fn check_anchor(dir: &Path, log: &Mutex<String>) {
    const LOGGED: &str = "audit log anchor: ";
    let deadline = Instant::now() + Duration::from_secs(5);
    let anchor = loop {
        let text = log.lock().unwrap().clone();
        // The one logged at stop, after the one logged at start.
        if text.matches(LOGGED).count() >= 2
            && let Some((_, rest)) = text.rsplit_once(LOGGED)
        {
            // Its standard error is a pipe, as in a pod: text, no colour codes.
            assert!(!text.contains('\x1b'), "a coloured log:\n{text:?}");
            break rest.split_whitespace().next().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no anchor in the log:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let verify = |anchor: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hangar"));
        command.args(["gateway", "verify-log"]).arg(dir);
        if let Some(anchor) = anchor {
            command.args(["--anchor", anchor]);
        }
        command.output().unwrap()
    };
    let out = verify(Some(&anchor));
    assert!(
        out.status.success(),
        "{anchor}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Cut the last record off the newest file: only the anchor can tell.
    let newest = newest_audit_file(dir);
    let text = std::fs::read_to_string(&newest).unwrap();
    let cut = text
        .trim_end_matches('\n')
        .rfind('\n')
        .map_or(0, |at| at + 1);
    std::fs::write(&newest, &text[..cut]).unwrap();
    assert!(verify(None).status.success(), "the files alone look intact");
    let out = verify(Some(&anchor));
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("its end was cut"), "{said}");
}

/// The installed SDK's version, or a failure that says how to install it.
fn openai_sdk_version() -> String {
    let found = Command::new(python())
        .args(["-c", "import openai; print(openai.__version__)"])
        .output();
    match found {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Ok(out) => panic!(
            "the openai Python SDK is not installed for {}; run `pip install -r tests/e2e/requirements.txt`\n{}",
            python(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "{} cannot be run ({e}); install Python 3, then `pip install -r tests/e2e/requirements.txt`",
            python()
        ),
    }
}

async fn fake_model_server() -> std::io::Result<FakeOpenAiServer> {
    FakeOpenAi::builder()
        .model(UPSTREAM_CHAT)
        .model("chat-large")
        .model("embed-small")
        .reply_to(PROMPT, REPLY)
        .embedding_dimensions(DIMENSIONS)
        .start()
        .await
}

/// A port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The API keys the script uses; the configuration keeps only their hashes.
struct Keys {
    good: NewKey,
    expired: NewKey,
    revoked: NewKey,
    limited: NewKey,
}

impl Keys {
    fn generate() -> Keys {
        let long_ago = "2020-01-01T00:00:00Z".parse::<jiff::Timestamp>().unwrap();
        let mut revoked = keys::generate("acme-revoked", "acme", None).unwrap();
        revoked.entry.revoked = true;
        Keys {
            good: keys::generate("acme-good", "acme", None).unwrap(),
            expired: keys::generate("acme-expired", "acme", Some(long_ago)).unwrap(),
            revoked,
            limited: keys::generate("limited-1", "limited", None).unwrap(),
        }
    }

    fn all(&self) -> [&NewKey; 4] {
        [&self.good, &self.expired, &self.revoked, &self.limited]
    }
}

/// JSON is YAML, so the configuration is written as JSON. The models and tenants are the ones
/// the script's docstring describes.
fn gateway_config(fake: &str, closed_port: u16, keys: &Keys, audit: &Path) -> Value {
    let entries: Vec<Value> = keys
        .all()
        .iter()
        .map(|k| serde_json::to_value(&k.entry).unwrap())
        .collect();
    let version =
        |name: &str, url: &str| json!({"versions": [{"name": name, "url": url, "weight": 100}]});
    json!({
        "listen": "127.0.0.1:0",
        "auth": {"apiKeys": entries},
        "tenants": {
            "acme": {
                "models": ["chat-small", "embed-small", "broken"],
                "maxTokens": MAX_TOKENS,
                "injection": "flag",
            },
            "limited": {
                "models": ["chat-small"],
                "maxTokens": MAX_TOKENS,
                "requestsPerMinute": 1,
            },
        },
        "models": {
            "chat-small": {"versions": [
                {"name": "blue", "url": fake, "upstreamModel": UPSTREAM_CHAT, "weight": 100},
            ]},
            "chat-large": version("v1", fake),
            "embed-small": version("v1", fake),
            "broken": version("v1", &format!("http://127.0.0.1:{closed_port}")),
        },
        "limits": {"drain": "2s", "shutdownDelay": "0s", "timeouts": {"connect": "2s", "firstToken": "10s", "idle": "10s"}},
        "audit": {"dir": audit, "retentionDays": 1, "content": {"retentionDays": 1}},
    })
}

/// `hangar gateway run`, stopped with SIGTERM by [`Gateway::stop`] or killed when dropped.
struct Gateway {
    child: Child,
    address: SocketAddr,
    log: Arc<Mutex<String>>,
}

/// The CPUs the gateway may use.
#[derive(Clone, Copy)]
enum Cores {
    All,
    /// CPU 0 only (`taskset -c 0`).
    One,
}

impl Gateway {
    /// Starts the gateway and waits for the address it prints.
    fn start(config: &Path) -> Gateway {
        Gateway::start_on(config, Cores::All)
    }

    fn start_on(config: &Path, cores: Cores) -> Gateway {
        let mut command = match cores {
            Cores::All => Command::new(env!("CARGO_BIN_EXE_hangar")),
            Cores::One => {
                let mut taskset = Command::new("taskset");
                taskset.args(["-c", "0", env!("CARGO_BIN_EXE_hangar")]);
                taskset
            }
        };
        let mut child = command
            .args(["gateway", "run", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let lines = read_lines(child.stderr.take().unwrap(), Arc::clone(&log));
        let mut gateway = Gateway {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        let deadline = Instant::now() + STARTUP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(address) = line.split("serving the inference API on ").nth(1) {
                        gateway.address = address.trim().parse().unwrap();
                        return gateway;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "the gateway did not start within {STARTUP:?}:\n{}",
                        gateway.log()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = gateway.child.wait().unwrap();
                    panic!(
                        "the gateway exited with {status} before serving:\n{}",
                        gateway.log()
                    )
                }
            }
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, so the graceful shutdown writes out the logs; its exit status.
    fn stop(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
        match wait_until(&mut self.child, SHUTDOWN) {
            Some(status) => status,
            None => panic!(
                "the gateway did not stop within {SHUTDOWN:?} of SIGTERM:\n{}",
                self.log()
            ),
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Copies the child's stderr into `log` on a thread, and sends each line on.
fn read_lines(
    stderr: impl std::io::Read + Send + 'static,
    log: Arc<Mutex<String>>,
) -> mpsc::Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let mut log = log.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
            drop(log);
            let _ = send.send(line);
        }
    });
    receive
}

fn wait_until(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

struct ScriptRun {
    status: ExitStatus,
    output: String,
}

/// Runs tests/e2e/openai_sdk.py against the gateway; its stdout and stderr go to one file.
fn run_script(gateway: &SocketAddr, keys: &Keys, dir: &Path) -> ScriptRun {
    let output_path = dir.join("openai_sdk.out");
    let output = std::fs::File::create(&output_path).unwrap();
    let mut command = Command::new(python());
    command
        .arg(repo().join("tests/e2e/openai_sdk.py"))
        .env("HANGAR_E2E_BASE_URL", format!("http://{gateway}/v1"))
        .env("HANGAR_E2E_KEY", &keys.good.key)
        .env("HANGAR_E2E_MAX_TOKENS", MAX_TOKENS.to_string())
        .env("HANGAR_E2E_KEY_EXPIRED", &keys.expired.key)
        .env("HANGAR_E2E_KEY_REVOKED", &keys.revoked.key)
        .env("HANGAR_E2E_KEY_LIMITED", &keys.limited.key)
        .env("HANGAR_E2E_PROMPT", PROMPT)
        .env("HANGAR_E2E_REPLY", REPLY)
        .env("HANGAR_E2E_DIMENSIONS", DIMENSIONS.to_string())
        // No bytecode cache in the source tree; no proxy between the SDK and loopback.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_PROXY", "*")
        .stdin(Stdio::null())
        .stdout(output.try_clone().unwrap())
        .stderr(output);
    for proxy in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        command.env_remove(proxy);
    }
    let mut child = command.spawn().unwrap();
    let status = wait_until(&mut child, SCRIPT_DEADLINE).unwrap_or_else(|| {
        let _ = child.kill();
        let output = std::fs::read_to_string(&output_path).unwrap_or_default();
        panic!("tests/e2e/openai_sdk.py did not finish within {SCRIPT_DEADLINE:?}:\n{output}")
    });
    ScriptRun {
        status,
        output: std::fs::read_to_string(&output_path).unwrap(),
    }
}

/// `python3`, or the interpreter `HANGAR_E2E_PYTHON` names.
fn python() -> String {
    std::env::var("HANGAR_E2E_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What the model server received: no gateway key, the upstream model name, the tenants' cap
/// on `max_tokens` (both have the same), the usage report asked for on every stream, nothing
/// the gateway refused.
fn check_upstream_requests(fake: &FakeOpenAiServer, keys: &Keys) {
    let requests = fake.requests();
    assert!(!requests.is_empty(), "no request reached the model server");
    for request in &requests {
        let shown = format!(
            "{} {} {:?} {}",
            request.method, request.path, request.headers, request.body
        );
        for key in keys.all() {
            assert!(
                !shown.contains(&key.key),
                "a gateway API key reached the model server: {shown}"
            );
        }
        let body = request.json().unwrap_or_default();
        let model = body["model"].as_str().unwrap_or_default();
        assert!(
            [UPSTREAM_CHAT, "embed-small"].contains(&model),
            "the model server was asked for `{model}`: {shown}"
        );
        if request.path != "/v1/embeddings" {
            let max_tokens = body["max_tokens"].as_u64();
            assert!(
                max_tokens.is_some_and(|n| n <= MAX_TOKENS),
                "max_tokens {max_tokens:?} upstream, expected at most the cap {MAX_TOKENS}: {shown}"
            );
        }
        if body["stream"] == true {
            assert_eq!(
                body["stream_options"]["include_usage"], true,
                "a stream went upstream without asking for usage: {shown}"
            );
        }
    }
}

/// The audit and content logs: intact chains, a record per kind of outcome, and neither the
/// card number nor any API key anywhere in them.
fn check_logs(dir: &Path, keys: &Keys) {
    let mut names: Vec<String> = Vec::new();
    let mut records: Vec<Value> = Vec::new();
    let mut content = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        for secret in CARDS
            .iter()
            .copied()
            .chain(keys.all().map(|k| k.key.as_str()))
        {
            assert!(
                !text.contains(secret),
                "{name} contains `{secret}`:\n{text}"
            );
        }
        if name.starts_with("audit-") {
            records.extend(
                text.lines()
                    .map(|line| serde_json::from_str::<Value>(line).unwrap()["record"].clone()),
            );
        } else if name.starts_with("content-") {
            content.push_str(&text);
        }
        names.push(name);
    }
    assert!(
        content.contains(CARD_PROMPT_START),
        "the content log does not keep the card prompt (redacted), so the check above proves nothing; files {names:?}:\n{content}"
    );

    let requests: Vec<&Value> = records.iter().filter(|r| r["kind"] == "request").collect();
    let statuses: std::collections::BTreeSet<u64> = requests
        .iter()
        .filter_map(|r| r["status"].as_u64())
        .collect();
    for status in [200, 400, 401, 403, 404, 429, 502] {
        assert!(
            statuses.contains(&status),
            "no audit record with status {status}; statuses {statuses:?}"
        );
    }
    let has = |what: &str, wanted: &dyn Fn(&Value) -> bool| {
        assert!(
            requests.iter().any(|r| wanted(r)),
            "no audit record of {what}:\n{requests:#?}"
        );
    };
    has("the limited tenant's 429", &|r| {
        r["tenant"] == "limited" && r["status"] == 429
    });
    has("the 502 of the model that is down", &|r| {
        r["model"] == "broken" && r["status"] == 502
    });
    has("a complete stream", &|r| {
        r["stream"] == true && r["status"] == 200 && r["end"] == "complete"
    });
    has("the flagged injection", &|r| {
        r["guards"].as_array().is_some_and(|g| {
            g.iter()
                .any(|d| d["guard"] == "injection" && d["action"] == "flag")
        })
    });
    has("the card number found by redaction", &|r| {
        r["guards"]
            .as_array()
            .is_some_and(|g| g.iter().any(|d| d["guard"] == "redaction"))
    });

    for prefix in ["audit", "content"] {
        let out = Command::new(env!("CARGO_BIN_EXE_hangar"))
            .args(["gateway", "verify-log", "--prefix", prefix])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "verify-log --prefix {prefix} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// One chat request over a fresh connection: the status line's code.
fn chat_status(address: &SocketAddr, key: &str, model: &str) -> u16 {
    use std::io::{Read, Write};
    let body =
        json!({"model": model, "messages": [{"role": "user", "content": PROMPT}]}).to_string();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.split(' ').nth(1).unwrap().parse().unwrap()
}

/// One HTTP/1.1 GET: the status, or `None` when no connection could be made.
fn get_status(address: &SocketAddr, path: &str, key: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer {key}\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split(' ').nth(1)?.parse().ok()
}

#[test]
fn sigterm_takes_the_gateway_out_of_service_before_it_stops_accepting() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(fake_model_server()).unwrap();
    let keys = Keys::generate();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.yaml");
    let mut text = gateway_config(&fake.url(), closed_port(), &keys, &dir.path().join("audit"));
    text["adminListen"] = json!("127.0.0.1:0");
    text["limits"]["shutdownDelay"] = json!("3s");
    std::fs::write(&config, text.to_string()).unwrap();
    let gateway = Gateway::start(&config);
    let deadline = Instant::now() + STARTUP;
    let admin: SocketAddr = loop {
        if let Some(rest) = gateway.log().split("metrics and health on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no admin address:\n{}",
            gateway.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(get_status(&admin, "/readyz", ""), Some(200));

    let pid = gateway.child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(2);
    while get_status(&admin, "/readyz", "") != Some(503) {
        assert!(Instant::now() < deadline, "still ready:\n{}", gateway.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Unready, and still serving new connections while load balancers catch up.
    assert_eq!(
        get_status(&gateway.address, "/v1/models", &keys.good.key),
        Some(200),
        "{}",
        gateway.log()
    );
    // A client that would keep its connection is asked to reconnect: the next one may go to
    // another replica, and this connection would close under it at the end of the delay.
    let kept_alive = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(gateway.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let key = &keys.good.key;
        write!(
            stream,
            "GET /v1/models HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer {key}\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).map(|_| answer)
    };
    let answer = kept_alive.unwrap_or_else(|e| panic!("the connection stayed open: {e}"));
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    let status = gateway.stop();
    assert!(status.success(), "{status}");
}

#[test]
fn sighup_reloads_the_configuration_even_when_the_file_looks_unchanged() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(fake_model_server()).unwrap();
    let keys = Keys::generate();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.yaml");
    let text = serde_json::to_string_pretty(&gateway_config(
        &fake.url(),
        closed_port(),
        &keys,
        &dir.path().join("audit"),
    ))
    .unwrap();
    std::fs::write(&config, &text).unwrap();
    let gateway = Gateway::start(&config);
    // Another tenant's model looks missing.
    assert_eq!(
        chat_status(&gateway.address, &keys.good.key, "chat-large"),
        404
    );

    // Allow acme every model, with the same length and the same timestamp, so the file watcher
    // cannot see the change: only SIGHUP can bring it in. The gateway is stopped meanwhile, or
    // its watcher could look between the write and the restored timestamp (it did, on a busy
    // machine).
    let pid = gateway.child.id().to_string();
    let signal = |name: &str| {
        let sent = Command::new("kill").args([name, &pid]).status().unwrap();
        assert!(sent.success(), "kill {name} {pid}");
    };
    let stamp = std::fs::metadata(&config).unwrap().modified().unwrap();
    let before = r#""chat-small",
        "embed-small",
        "broken""#;
    let after = format!("{:<width$}", r#""*""#, width = before.len());
    assert!(text.contains(before), "{text}");
    signal("-STOP");
    std::fs::write(&config, text.replace(before, &after)).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&config)
        .unwrap()
        .set_modified(stamp)
        .unwrap();
    signal("-CONT");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        chat_status(&gateway.address, &keys.good.key, "chat-large"),
        404,
        "reloaded without a signal:\n{}",
        gateway.log()
    );

    signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    // The log says what the reload changed.
    while !(gateway.log()).contains("configuration reloaded: tenants.acme.models changed\n") {
        assert!(
            Instant::now() < deadline,
            "no reload after SIGHUP:\n{}",
            gateway.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        chat_status(&gateway.address, &keys.good.key, "chat-large"),
        200
    );
    assert!(gateway.stop().success());
}

#[test]
fn a_gateway_killed_outright_says_where_its_audit_chain_resumed_and_what_it_found_torn() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(fake_model_server()).unwrap();
    let keys = Keys::generate();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let config = dir.path().join("gateway.yaml");
    let text = gateway_config(&fake.url(), closed_port(), &keys, &audit);
    std::fs::write(&config, serde_json::to_string_pretty(&text).unwrap()).unwrap();
    let mut gateway = Gateway::start(&config);
    assert_eq!(
        chat_status(&gateway.address, &keys.good.key, "chat-small"),
        200
    );
    // The record is written in a batch a moment later.
    let newest = || newest_audit_file(&audit);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(newest())
        .unwrap()
        .contains("\"request\"")
    {
        assert!(Instant::now() < deadline, "no record written");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Killed outright: no anchor is logged as the log closes.
    gateway.child.kill().unwrap();
    gateway.child.wait().unwrap();
    assert!(
        !gateway.log().contains("audit log anchor"),
        "{}",
        gateway.log()
    );
    // The newest record is cut in the middle, as a crash mid-write leaves it.
    let file = newest();
    let length = std::fs::metadata(&file).unwrap().len();
    let cut = std::fs::File::options().write(true).open(&file).unwrap();
    cut.set_len(length - 20).unwrap();

    let gateway = Gateway::start(&config);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gateway.log().contains("audit log anchor: ") {
        assert!(
            Instant::now() < deadline,
            "no anchor at start:\n{}",
            gateway.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        gateway
            .log()
            .contains("the ledger's newest file ends in part of a record"),
        "{}",
        gateway.log()
    );
    assert!(gateway.stop().success());
}

#[test]
fn a_key_that_expires_while_the_gateway_runs_is_logged_with_the_tenant_it_leaves_out() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(fake_model_server()).unwrap();
    let keys = Keys::generate();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.yaml");
    let mut text = gateway_config(&fake.url(), closed_port(), &keys, &dir.path().join("audit"));
    // `limited`'s only key runs out a few seconds after the start (a slow start included).
    let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(6);
    text["auth"]["apiKeys"][3]["expires"] = json!(soon.to_string());
    assert_eq!(text["auth"]["apiKeys"][3]["id"], "limited-1");
    std::fs::write(&config, serde_json::to_string_pretty(&text).unwrap()).unwrap();
    let gateway = Gateway::start(&config);
    assert!(
        !gateway.log().contains("acts for limited"),
        "{}",
        gateway.log()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let told = |log: &str| {
        log.contains("API key `limited-1` of tenant limited expired at")
            && log.contains("acts for limited and there is no `auth.jwt`")
    };
    while !told(&gateway.log()) {
        assert!(
            Instant::now() < deadline,
            "no word of the expiry:\n{}",
            gateway.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gateway.stop().success());
}
