//! A gateway on loopback in front of fake model servers, with keys made for the test, and a
//! small HTTP client to talk to it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hangar_gateway::Server;
use hangar_gateway::auth::keys;
use hangar_gateway::proxy::Gateway;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running gateway.
pub struct TestGateway {
    pub url: String,
    pub admin: String,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub keys: HashMap<String, String>,
    pub gateway: Arc<Gateway>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// What a test declares: keys as `(id, tenant)` (an id ending in `-expired` gets an expiry in
/// the past, `-revoked` is revoked), and YAML for tenants, models and extra sections, where
/// `{upstream}` and `{upstream2}` stand for the fake servers' URLs.
pub struct Setup<'a> {
    pub keys: &'a [(&'a str, &'a str)],
    pub tenants: &'a str,
    pub models: &'a str,
    pub extra: &'a str,
}

impl TestGateway {
    pub async fn start(setup: Setup<'_>, upstreams: &[&str]) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        let mut keys_yaml = String::new();
        let mut keys = HashMap::new();
        for (id, tenant) in setup.keys {
            let expires = id
                .ends_with("-expired")
                .then(|| "2020-01-01T00:00:00Z".parse().unwrap());
            let mut new = keys::generate(id, tenant, expires).unwrap();
            new.entry.revoked = id.ends_with("-revoked");
            keys_yaml.push_str(&format!(
                "    - {{id: {id}, tenant: {tenant}, prefix: {}, sha256: \"{}\"{}{}}}\n",
                new.entry.prefix,
                new.entry.sha256,
                new.entry
                    .expires
                    .as_ref()
                    .map(|e| format!(", expires: \"{e}\""))
                    .unwrap_or_default(),
                if new.entry.revoked {
                    ", revoked: true"
                } else {
                    ""
                },
            ));
            keys.insert((*id).to_owned(), new.key);
        }
        let mut models = setup.models.to_owned();
        for (i, upstream) in upstreams.iter().enumerate() {
            let name = if i == 0 {
                "{upstream}".to_owned()
            } else {
                format!("{{upstream{}}}", i + 1)
            };
            models = models.replace(&name, upstream);
        }
        let audit = dir.path().join("audit");
        let config = format!(
            "listen: 127.0.0.1:0\nadminListen: 127.0.0.1:0\nauth:\n  apiKeys:\n{keys_yaml}tenants:\n{}\nmodels:\n{}\naudit:\n  dir: {}\n  retentionDays: 30\n{}\n",
            indent(setup.tenants),
            indent(&models),
            audit.display(),
            setup.extra,
        );
        let config_path = dir.path().join("gateway.yaml");
        std::fs::write(&config_path, config).unwrap();
        let server = Server::bind(&config_path)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let url = format!("http://{}", server.address().unwrap());
        let admin = format!("http://{}", server.admin_address().unwrap());
        let gateway = server.gateway();
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = stop.await;
                })
                .await
                .unwrap();
        });
        TestGateway {
            url,
            admin,
            dir,
            config_path,
            keys,
            gateway,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    pub fn key(&self, id: &str) -> &str {
        &self.keys[id]
    }

    pub fn audit_dir(&self) -> PathBuf {
        self.dir.path().join("audit")
    }

    /// Stops the gateway (draining) and waits until the audit log is written out.
    pub async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(40), task)
                .await
                .unwrap()
                .unwrap();
        }
    }

    /// The audit records written so far (stops the gateway first so everything is flushed).
    pub async fn audit_records(&mut self) -> Vec<Value> {
        self.stop().await;
        read_records(&self.audit_dir(), "audit")
    }

    pub async fn metrics(&self) -> String {
        let (status, _, body) = send(
            Request::get(format!("{}/metrics", self.admin))
                .body(Full::default())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        String::from_utf8(body.to_vec()).unwrap()
    }

    /// The metrics page once it holds `line`, waiting up to 2 s for the log writers.
    pub async fn metrics_with(&self, line: &str) -> String {
        // Up to 10 s: a stream's finisher may run late on a loaded machine.
        for _ in 0..500 {
            let page = self.metrics().await;
            if page.contains(line) {
                return page;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the metrics never showed {line}:\n{}", self.metrics().await)
    }

    /// A chat request to `llama` with `credential` (an API key or a token) and one user message.
    pub async fn chat(&self, credential: &str, prompt: &str) -> Answer {
        self.post(
            "/v1/chat/completions",
            Some(credential),
            &chat("llama", prompt),
        )
        .await
    }

    pub async fn post(&self, path: &str, key: Option<&str>, body: &Value) -> Answer {
        self.post_with(path, key, body, &[]).await
    }

    pub async fn post_with(
        &self,
        path: &str,
        key: Option<&str>,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request =
            Request::post(format!("{}{path}", self.url)).header("content-type", "application/json");
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (status, headers, body) = send(
            request
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap(),
        )
        .await;
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Starts a streamed chat request ("What is 2+2?" to `llama`) in the background.
    pub fn spawn_stream(&self, key_id: &str) -> JoinHandle<(StatusCode, HeaderMap, Bytes)> {
        let body = serde_json::json!({"model": "llama", "stream": true,
            "messages": [{"role": "user", "content": "What is 2+2?"}]});
        let request = Request::post(format!("{}/v1/chat/completions", self.url))
            .header("authorization", format!("Bearer {}", self.key(key_id)))
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        tokio::spawn(send(request))
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Answer {
        let mut request = Request::get(format!("{}{path}", self.url));
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let (status, headers, body) = send(request.body(Full::default()).unwrap()).await;
        Answer {
            status,
            headers,
            body,
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The OpenAI error code.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The text of a streamed chat answer, and the parsed events.
    pub fn events(&self) -> Vec<Value> {
        self.text()
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub async fn send(request: Request<Full<Bytes>>) -> (StatusCode, HeaderMap, Bytes) {
    let response = tokio::time::timeout(Duration::from_secs(30), client().request(request))
        .await
        .expect("the gateway answered within 30 s")
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    (parts.status, parts.headers, body)
}

/// Every record of the `prefix` log in `dir`, in order.
/// Every line of the log `prefix` in `dir`, in order: the chain's fields and the record.
pub fn read_lines(dir: &Path, prefix: &str) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{prefix}-"))
        })
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The records of requests, contents and refusals in the log `prefix` in `dir`.
pub fn read_records(dir: &Path, prefix: &str) -> Vec<Value> {
    read_lines(dir, prefix)
        .into_iter()
        .map(|line| line["record"].clone())
        .filter(|r| ["request", "content", "refusals"].contains(&r["kind"].as_str().unwrap_or("")))
        .collect()
}

/// Every byte of every file under `dir`, for leak checks.
pub fn all_bytes(dir: &Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            out.push_str(&String::from_utf8_lossy(&std::fs::read(path).unwrap()));
        }
    }
    out
}

pub fn chat(model: &str, prompt: &str) -> Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": prompt}]})
}
