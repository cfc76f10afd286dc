//! Reading a live cluster into a `Snapshot`, read-only: only GET requests (discovery and
//! paginated LISTs). Every object goes through the same door as files (`Object::decode`), Secrets
//! are listed as metadata only so their values never leave the API server, and every kind the
//! scan could not list is recorded in `Snapshot::not_covered`, so a scan with gaps is never
//! reported as clean.

mod listing;
mod logs;
mod targets;

use std::path::{Path, PathBuf};
use std::time::Duration;

use hangar_core::{LoadError, Origin, Snapshot};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;

use listing::{Tally, describe, list_driver_pods, list_kind};
pub(crate) use logs::BoundedTail;
pub use logs::UnreadLogs;
pub use logs::{LogBounds, LogRequest, fetch_logs};
use targets::{custom_targets, event_target, typed_targets};

/// A client of the test kit's fake API server.
#[cfg(test)]
pub(crate) async fn test_client(server: &hangar_testkit::FakeApiServer) -> Client {
    test_client_at(&server.url()).await
}

/// A client of the API server at `url` (plain HTTP on loopback).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) async fn test_client_at(url: &str) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(&hangar_testkit::fake_api::kubeconfig(url)).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// Which cluster to read and how much of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveOptions {
    /// The kubeconfig file to use. `None` infers one as kubectl does: `KUBECONFIG`, then
    /// `~/.kube/config`, then the in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use; `None` uses the current context.
    pub context: Option<String>,
    /// Read only this namespace's namespaced objects; `None` reads all namespaces. Cluster-scoped
    /// kinds (nodes, namespaces, cluster roles and bindings, storage classes) are read either way,
    /// because checks need them.
    pub namespace: Option<String>,
    /// Also list Events (core `v1`): triage reads them, audits do not need them.
    pub events: bool,
}

/// How far a scan is, reported before each kind and after each page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The kind being listed: `Pod`, or `InferenceService.serving.kserve.io`.
    pub kind: String,
    /// Objects of this kind listed so far.
    pub listed: usize,
    /// Objects of all kinds listed so far, this one's included.
    pub total: usize,
    /// The position of this kind among the kinds to list (1-based), and how many there are.
    pub step: usize,
    pub steps: usize,
}

/// One progress line: `Pod (5/27): 1000 listed, 4211 objects in all`.
impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}/{}): {} listed, {} objects in all",
            self.kind, self.step, self.steps, self.listed, self.total
        )
    }
}

/// Why a live scan could not start. Failures on single kinds do not stop a scan: they are
/// recorded in `Snapshot::not_covered`.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("cannot use kubeconfig {}: {cause}", path.display())]
    Kubeconfig { path: PathBuf, cause: String },
    #[error("cannot configure a Kubernetes client: {0}")]
    Config(String),
    #[error("cannot reach the API server at {url}: {cause}")]
    Unreachable { url: String, cause: String },
    #[error("the API server at {url} did not accept the credentials: {cause}")]
    Unauthorized { url: String, cause: String },
}

/// How long to wait for the API server between two reads of a response before giving up.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads the cluster `options` designate into a snapshot.
pub async fn load_live(
    options: &LiveOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Snapshot, LiveError> {
    let (client, cluster) = connect(options).await?;
    let snapshot = list_all(&client, &cluster, options, false, progress).await;
    Ok(snapshot)
}

/// Reads the cluster as `load_live` does, then the log tails `select` asks for once it has seen
/// the snapshot (the pods of the endpoints being triaged). A log that cannot be read is a line in
/// `Snapshot::not_covered`, not a failure. With a namespace, the GPU operator's driver pods of
/// the other namespaces are read too: a driver restarting on an endpoint's node may be the cause,
/// and the operator runs it in a namespace of its own.
pub async fn load_live_with_logs(
    options: &LiveOptions,
    progress: &mut dyn FnMut(Progress),
    select: &dyn Fn(&Snapshot) -> Vec<LogRequest>,
    bounds: LogBounds,
) -> Result<(Snapshot, hangar_triage::Logs), LiveError> {
    let (client, cluster) = connect(options).await?;
    let mut snapshot = list_all(&client, &cluster, options, true, progress).await;
    let requests = select(&snapshot);
    let logs = fetch_logs(&client, requests, bounds, &mut snapshot.not_covered).await;
    Ok((snapshot, logs))
}

/// Where a scan reads: the API server, and the kubeconfig context that names it when one does.
struct Cluster {
    url: String,
    context: Option<String>,
}

impl Cluster {
    /// `context prod`, or `the cluster at https://…` when no context names it (in-cluster).
    fn name(&self) -> String {
        match &self.context {
            Some(context) => format!("context {context}"),
            None => format!("the cluster at {}", self.url),
        }
    }
}

/// Lists every target into a snapshot; with `driver_pods` and a namespace, the GPU driver's pods
/// of the other namespaces as well (triage's reading).
async fn list_all(
    client: &Client,
    cluster: &Cluster,
    options: &LiveOptions,
    driver_pods: bool,
    progress: &mut dyn FnMut(Progress),
) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let mut targets = typed_targets();
    if options.events {
        targets.push(event_target());
    }
    targets.extend(custom_targets(client, &mut snapshot.not_covered).await);
    let namespace = options.namespace.as_deref();
    // Without a namespace, every pod is listed, the driver's among them.
    let drivers_elsewhere = namespace.filter(|_| driver_pods);
    let mut tally = Tally {
        total: 0,
        step: 0,
        steps: targets.len() + usize::from(drivers_elsewhere.is_some()),
    };
    for target in &targets {
        list_kind(
            client,
            target,
            namespace,
            &mut snapshot,
            &mut tally,
            progress,
        )
        .await;
    }
    if let Some(namespace) = drivers_elsewhere {
        list_driver_pods(client, namespace, &mut snapshot, &mut tally, progress).await;
    }
    if let Some(namespace) = namespace {
        record_missing_namespace(&mut snapshot, namespace, cluster);
    }
    tracing::debug!(
        url = %cluster.url,
        objects = snapshot.object_count(),
        not_covered = snapshot.not_covered.len(),
        "live scan done"
    );
    snapshot
}

/// A namespace that does not exist lists as empty, not as an error: without this, `-n` with a
/// typo would pass for a clean scan of nothing. When the Namespaces could not be listed (RBAC),
/// or the list holds none at all (no real cluster's, which always has `default` and
/// `kube-system`, but a filtering proxy's or a fake's), whether it exists is unknown, and
/// nothing is claimed.
fn record_missing_namespace(snapshot: &mut Snapshot, namespace: &str, cluster: &Cluster) {
    let unlisted = snapshot
        .not_covered
        .iter()
        .any(|gap| gap.kind == "Namespace");
    if unlisted || snapshot.namespaces.is_empty() {
        return;
    }
    let exists = (snapshot.namespaces.iter())
        .any(|listed| listed.object.metadata.name.as_deref() == Some(namespace));
    if !exists {
        snapshot.errors.push(LoadError {
            origin: Origin::live(),
            object: None,
            message: format!("namespace {namespace} does not exist in {}", cluster.name()),
        });
    }
}

/// Builds the client and checks that the API server answers, so an unreachable cluster is one
/// clear error rather than one gap per kind.
async fn connect(options: &LiveOptions) -> Result<(Client, Cluster), LiveError> {
    let (mut config, context) = client_config(options).await?;
    bound_reads(&mut config);
    let url = config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_owned();
    let client = Client::try_from(config).map_err(|e| LiveError::Config(describe(&e)))?;
    let cluster = |url| Cluster { url, context };
    match client.apiserver_version().await {
        Ok(_) => Ok((client, cluster(url))),
        Err(kube::Error::Api(status)) if status.code == 401 => Err(LiveError::Unauthorized {
            url,
            cause: status.message.clone(),
        }),
        // Any other answer means the server is there; per-kind errors will say the rest.
        Err(kube::Error::Api(_)) => Ok((client, cluster(url))),
        Err(error) => Err(LiveError::Unreachable {
            url,
            cause: describe(&error),
        }),
    }
}

/// A response that stops coming is given up after `READ_TIMEOUT`, counted from when its request
/// was sent: without the reset, the time a pooled connection sat idle (up to 90 s) counts too,
/// and the next list on it times out at once.
fn bound_reads(config: &mut Config) {
    config.read_timeout.get_or_insert(READ_TIMEOUT);
    config.reset_reader_on_write = true;
}

/// The client configuration, and the name of the kubeconfig context it comes from, when one.
async fn client_config(options: &LiveOptions) -> Result<(Config, Option<String>), LiveError> {
    let kube_options = KubeConfigOptions {
        context: options.context.clone(),
        ..KubeConfigOptions::default()
    };
    if let Some(path) = &options.kubeconfig {
        let kubeconfig_error = |e: kube::config::KubeconfigError| LiveError::Kubeconfig {
            path: path.clone(),
            cause: match e {
                // Its text repeats the path, quoted twice: the error names it already.
                kube::config::KubeconfigError::ReadConfig(io, _) => io.to_string(),
                other => other.to_string(),
            },
        };
        let kubeconfig = Kubeconfig::read_from(path).map_err(kubeconfig_error)?;
        let context = (options.context.clone()).or_else(|| kubeconfig.current_context.clone());
        let config = Config::from_custom_kubeconfig(kubeconfig, &kube_options)
            .await
            .map_err(kubeconfig_error)?;
        return Ok((config, context));
    }
    if let Some(context) = &options.context {
        let config = Config::from_kubeconfig(&kube_options)
            .await
            .map_err(|e| LiveError::Config(format!("cannot use context {context}: {e}")))?;
        return Ok((config, Some(context.clone())));
    }
    let config = Config::infer().await.map_err(|e| {
        LiveError::Config(format!(
            "no kubeconfig found (KUBECONFIG, ~/.kube/config) and not running in a cluster: {e}"
        ))
    })?;
    // As inferred: the kubeconfig's current context, or none in a cluster without one.
    let context = Kubeconfig::read().ok().and_then(|k| k.current_context);
    Ok((config, context))
}

/// Writes `snapshot` as one `kind: List` that `hangar audit FILE` reads back: JSON when `path`
/// ends in `.json`, YAML otherwise. Kinds the scan could not list and objects it could not read
/// are saved in a `hangar.dev/v1 ScanGaps` item, so the file read back is incomplete too.
pub fn save_snapshot(snapshot: &Snapshot, path: &Path) -> Result<(), std::io::Error> {
    // The scan's gaps go with it: the file read back must not pass for a complete scan.
    let mut items = snapshot.to_values();
    items.extend(snapshot.gaps_item());
    let list = json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": items,
    });
    let is_json = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let text = if is_json {
        serde_json::to_string_pretty(&list).map_err(std::io::Error::other)?
    } else {
        serde_saphyr::to_string(&list).map_err(std::io::Error::other)?
    };
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_time_out_from_each_request_not_from_a_pooled_connections_idle_time() {
        let mut config = Config::new("https://127.0.0.1:6443".parse().unwrap());
        bound_reads(&mut config);
        assert_eq!(config.read_timeout, Some(READ_TIMEOUT));
        assert!(config.reset_reader_on_write);

        // A timeout the configuration already sets is kept.
        let mut config = Config::new("https://127.0.0.1:6443".parse().unwrap());
        config.read_timeout = Some(Duration::from_secs(5));
        bound_reads(&mut config);
        assert_eq!(config.read_timeout, Some(Duration::from_secs(5)));
        assert!(config.reset_reader_on_write);
    }
}
