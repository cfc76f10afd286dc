//! Reading the tails of containers' logs, bounded in lines and bytes, a few at a time.

use std::sync::Arc;

use hangar_core::NotCovered;
use hangar_triage::{LogTail, Logs};
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use kube::{Api, Client};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::listing::describe;

/// How much of each log to read. The tail is what tells why a container died; the bounds keep a
/// triage of hundreds of pods quick and small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBounds {
    pub lines: usize,
    pub bytes: usize,
}

impl Default for LogBounds {
    fn default() -> Self {
        LogBounds {
            lines: 300,
            bytes: 64 * 1024,
        }
    }
}

/// One container whose logs to read: the current instance's, and the previous one's when the
/// container has restarted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRequest {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub previous: bool,
}

/// Log reads in flight at once: enough to hide latency, few enough to spare the API server.
const CONCURRENT_READS: usize = 8;

/// Reads every requested log tail. A log the server refuses (RBAC on `pods/log`) is recorded
/// once in `not_covered`; a previous instance that does not exist is simply absent.
pub async fn fetch_logs(
    client: &Client,
    requests: Vec<LogRequest>,
    bounds: LogBounds,
    not_covered: &mut Vec<NotCovered>,
) -> Logs {
    let permits = Arc::new(Semaphore::new(CONCURRENT_READS));
    let mut tasks = JoinSet::new();
    for request in requests {
        let client = client.clone();
        let permits = Arc::clone(&permits);
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let result = read_log(&client, &request, bounds).await;
            (request, result)
        });
    }
    let mut logs = Logs::default();
    let mut refused: Option<String> = None;
    while let Some(joined) = tasks.join_next().await {
        let Ok((request, result)) = joined else {
            continue;
        };
        match result {
            Ok(Some(tail)) => {
                let key = (request.namespace, request.pod, request.container);
                let map = if request.previous {
                    &mut logs.previous
                } else {
                    &mut logs.current
                };
                map.insert(key, tail);
            }
            Ok(None) => {}
            Err(reason) => {
                refused.get_or_insert(reason);
            }
        }
    }
    if let Some(reason) = refused {
        not_covered.push(NotCovered {
            kind: "pods/log".into(),
            reason,
        });
    }
    logs
}

/// One log tail; `Ok(None)` when there is nothing to read (no previous instance, empty log).
async fn read_log(
    client: &Client,
    request: &LogRequest,
    bounds: LogBounds,
) -> Result<Option<LogTail>, String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &request.namespace);
    let params = LogParams {
        container: Some(request.container.clone()),
        previous: request.previous,
        tail_lines: i64::try_from(bounds.lines).ok(),
        limit_bytes: i64::try_from(bounds.bytes).ok(),
        ..LogParams::default()
    };
    let text = match api.logs(&request.pod, &params).await {
        Ok(text) => text,
        // "previous terminated container … not found", or a pod gone since it was listed.
        Err(kube::Error::Api(status)) if status.code == 400 || status.code == 404 => {
            return Ok(None);
        }
        Err(error) => {
            return Err(format!(
                "cannot read the log of {}/{} container {}: {}",
                request.namespace,
                request.pod,
                request.container,
                describe(&error)
            ));
        }
    };
    if text.is_empty() {
        return Ok(None);
    }
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // The server cut at most `bounds.lines` lines; a full count means earlier lines exist.
    let truncated = lines.len() >= bounds.lines || text.len() >= bounds.bytes;
    Ok(Some(LogTail {
        source: format!(
            "cluster: kubectl -n {} logs {} -c {}{}",
            request.namespace,
            request.pod,
            request.container,
            if request.previous { " --previous" } else { "" }
        ),
        first_line: None,
        lines,
        truncated,
    }))
}
