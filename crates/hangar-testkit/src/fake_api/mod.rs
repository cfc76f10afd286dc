//! A fake Kubernetes API server on 127.0.0.1, plain HTTP, for testing the live loader.
//!
//! A test registers objects (JSON, as `kubectl get -o json` shows them) and resources to refuse,
//! starts the server, points a kubeconfig at it, and afterwards asserts on the requests it got:
//!
//! ```no_run
//! # async fn story() -> std::io::Result<()> {
//! use hangar_testkit::{FakeApiServer, objects};
//! let server = FakeApiServer::builder()
//!     .object(objects::namespace("ml"))
//!     .forbid("secrets")
//!     .start()
//!     .await?;
//! let dir = std::env::temp_dir();
//! let kubeconfig = server.write_kubeconfig(&dir)?;
//! // … scan the cluster through `kubeconfig` …
//! assert!(server.requests().iter().all(|r| r.method == "GET"));
//! # Ok(()) }
//! ```
//!
//! It serves `/version`, the discovery documents (`/api`, `/api/v1`, `/apis`,
//! `/apis/<group>/<version>`) for the built-in resources and for every custom resource declared
//! or registered, lists and gets at cluster and namespace paths with `limit`/`continue` paging,
//! metadata-only lists (`PartialObjectMetadataList`), pod logs (`…/pods/NAME/log` with
//! `container`, `previous`, `tailLines` and `limitBytes`), and `Status` errors, continue tokens
//! that expire (410) included. Anything but GET is answered 405 and still recorded.

mod catalogue;
mod http;
mod routes;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use catalogue::Catalogue;
pub use catalogue::{CustomResource, plural_of};

/// One request the fake server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// The path without the query string, e.g. `/api/v1/namespaces/ml/pods`.
    pub path: String,
    /// The decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// The `Accept` header, if any.
    pub accept: Option<String>,
}

impl RecordedRequest {
    pub fn query_param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the request asked for metadata only (kube's `list_metadata`).
    pub fn is_metadata_only(&self) -> bool {
        self.accept
            .as_deref()
            .is_some_and(|a| a.contains("as=PartialObjectMetadata"))
    }
}

/// Declares what the fake server holds before it starts.
#[derive(Debug, Default)]
pub struct FakeApiServerBuilder {
    resources: Vec<CustomResource>,
    objects: Vec<Value>,
    denied: BTreeMap<String, u16>,
    confined: BTreeMap<String, String>,
    reject_credentials: bool,
    logs: BTreeMap<(String, String, String, bool), Vec<u8>>,
    failing_logs: BTreeMap<(String, String), u16>,
    failing_uncapped_logs: BTreeMap<(String, String), u16>,
    expiring: BTreeMap<String, usize>,
}

impl FakeApiServerBuilder {
    /// Registers an object. Its kind is advertised in discovery; a kind that is not built in
    /// becomes a custom resource (plural guessed from the kind, namespaced when the object has a
    /// namespace) unless declared with [`custom_resource`](Self::custom_resource).
    pub fn object(mut self, object: Value) -> Self {
        self.objects.push(object);
        self
    }

    pub fn objects(mut self, objects: impl IntoIterator<Item = Value>) -> Self {
        self.objects.extend(objects);
        self
    }

    /// Declares a custom resource, as an installed CRD would, with or without objects.
    pub fn custom_resource(mut self, resource: CustomResource) -> Self {
        self.resources.push(resource);
        self
    }

    /// Answers 403 Forbidden to every read of `resource`: `secrets` for the core group,
    /// `plural.group` otherwise (`inferenceservices.serving.kserve.io`).
    pub fn forbid(self, resource: &str) -> Self {
        self.fail(resource, 403)
    }

    /// Answers `code` (401, 403, 500…) with a `Status` body to every read of `resource`.
    pub fn fail(mut self, resource: &str, code: u16) -> Self {
        self.denied.insert(resource.to_owned(), code);
        self
    }

    /// Answers 403 Forbidden to every read of `resource` (named as for [`fail`](Self::fail))
    /// but those in `namespace`, cluster-wide lists included, as RBAC answers a client whose Role
    /// grants it in that namespace alone.
    pub fn confine(mut self, resource: &str, namespace: &str) -> Self {
        self.confined
            .insert(resource.to_owned(), namespace.to_owned());
        self
    }

    /// Registers the log `GET …/pods/POD/log?container=CONTAINER` returns (`previous`: the log of
    /// the container's previous instance, `&previous=true`). `tailLines` and `limitBytes` are
    /// honoured; `forbid("pods/log")` refuses every log read.
    pub fn log(
        self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
        text: &str,
    ) -> Self {
        self.log_bytes(namespace, pod, container, previous, text.as_bytes())
    }

    /// Like [`log`](Self::log), with bytes that need not be UTF-8, as a process may print them.
    pub fn log_bytes(
        mut self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
        bytes: &[u8],
    ) -> Self {
        self.logs.insert(
            (namespace.into(), pod.into(), container.into(), previous),
            bytes.to_vec(),
        );
        self
    }

    /// Answers `code` to every log read of pod `namespace/pod`: 403 as RBAC refusing `pods/log`
    /// in its namespace, 502 as the API server does when the pod's kubelet does not answer (a
    /// NotReady node).
    pub fn fail_log(mut self, namespace: &str, pod: &str, code: u16) -> Self {
        self.failing_logs
            .insert((namespace.to_owned(), pod.to_owned()), code);
        self
    }

    /// Answers `code` to the log reads of pod `namespace/pod` that set no `limitBytes`, and
    /// serves the others: as if the pod went between a capped reading and an uncapped one.
    pub fn fail_uncapped_log(mut self, namespace: &str, pod: &str, code: u16) -> Self {
        self.failing_uncapped_logs
            .insert((namespace.to_owned(), pod.to_owned()), code);
        self
    }

    /// Answers 410 Gone (reason `Expired`) to the first `times` list requests of `resource`
    /// (named as for [`fail`](Self::fail)) that carry a continue token, as an API server does once
    /// etcd has compacted the revision a paginated list started at. Lists from the first page are
    /// served as usual.
    pub fn expire_continue_tokens(mut self, resource: &str, times: usize) -> Self {
        self.expiring.insert(resource.to_owned(), times);
        self
    }

    /// Answers 401 Unauthorized to every request, as a server does to an expired token.
    pub fn reject_credentials(mut self) -> Self {
        self.reject_credentials = true;
        self
    }

    /// Binds 127.0.0.1 on a free port and serves on the current tokio runtime until the
    /// returned server is dropped.
    pub async fn start(self) -> std::io::Result<FakeApiServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let mut catalogue = Catalogue::new(self.resources, self.objects, self.denied);
        catalogue.reject_credentials = self.reject_credentials;
        catalogue.confined = self.confined;
        catalogue.logs = self.logs;
        catalogue.failing_logs = self.failing_logs;
        catalogue.failing_uncapped_logs = self.failing_uncapped_logs;
        catalogue.expiring = (self.expiring.into_iter())
            .map(|(resource, times)| (resource, AtomicUsize::new(times)))
            .collect();
        catalogue.check_denied_names()?;
        let catalogue = Arc::new(catalogue);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(http::serve(
            listener,
            address,
            catalogue,
            Arc::clone(&requests),
        ));
        Ok(FakeApiServer {
            address,
            requests,
            task,
        })
    }
}

/// A running fake API server. Stops accepting connections when dropped.
#[derive(Debug)]
pub struct FakeApiServer {
    address: SocketAddr,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    task: JoinHandle<()>,
}

impl FakeApiServer {
    pub fn builder() -> FakeApiServerBuilder {
        FakeApiServerBuilder::default()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A kubeconfig whose only context (`fake`) points at this server.
    pub fn kubeconfig(&self) -> String {
        kubeconfig(&self.url())
    }

    /// Writes [`kubeconfig`](Self::kubeconfig) to `dir/kubeconfig` and returns its path.
    pub fn write_kubeconfig(&self, dir: &Path) -> std::io::Result<PathBuf> {
        write_kubeconfig(dir, &self.url())
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A kubeconfig with one context, `fake`, pointing at `server_url` with a bearer token.
pub fn kubeconfig(server_url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: {server_url}
users:
- name: tester
  user:
    token: fake-token
contexts:
- name: fake
  context:
    cluster: fake
    user: tester
    namespace: default
current-context: fake
"
    )
}

/// Writes [`kubeconfig`] for `server_url` to `dir/kubeconfig` and returns its path.
pub fn write_kubeconfig(dir: &Path, server_url: &str) -> std::io::Result<PathBuf> {
    let path = dir.join("kubeconfig");
    std::fs::write(&path, kubeconfig(server_url))?;
    Ok(path)
}

/// The URL of a loopback port nothing listens on (bound, then released), for testing how
/// clients report an unreachable server.
pub fn closed_port_url() -> std::io::Result<String> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    let address = listener.local_addr()?;
    drop(listener);
    Ok(format!("http://{address}"))
}
