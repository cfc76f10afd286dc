//! Listing one kind, page by page, into the snapshot through the same door as files:
//! `Object::decode`.

use std::collections::HashSet;

use hangar_core::{KubeObject, LoadError, NotCovered, Object, Origin, Snapshot};
use hangar_triage::change::DRIVER_POD_LABELS;
use kube::Client;
use kube::core::params::ListParams;
use kube::core::{DynamicObject, Request, Resource};
use serde_json::{Value, json};

use super::Progress;
use super::targets::{Target, pod_target};

/// Objects per page: large enough to keep round trips few, small enough to keep each response
/// (and the API server's memory for it) modest.
pub(crate) const PAGE_SIZE: u32 = 500;

/// `kubectl apply` copies the whole applied object into this annotation, Secret values included.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Where a scan is: the running total over kinds, and the position among them.
pub(crate) struct Tally {
    pub total: usize,
    pub step: usize,
    pub steps: usize,
}

/// Where the kubelet and node-problem-detector record the Events about nodes (Xid errors,
/// reboots, NotReady): a node is in no namespace, and its events land in `default`.
const NODE_EVENTS_NAMESPACE: &str = "default";

/// One listing of a kind: where, which objects the API server should send, and which of those
/// to keep (a fake or old server may ignore the field selector).
struct Listing<'a> {
    namespace: Option<&'a str>,
    fields: Option<&'static str>,
    labels: Option<&'a str>,
    keep: fn(&Value) -> bool,
    /// How a failure names what was not covered.
    label: String,
}

/// Lists `target` (in `namespace` when it is namespaced and one is given) into `snapshot`.
/// A failure keeps what earlier pages brought and records the kind as not covered, except an
/// expired continue token, which lists the kind again from the start, once. Events of one
/// namespace come with the node Events of `default`, which the pods' nodes report there.
pub(crate) async fn list_kind(
    client: &Client,
    target: &Target,
    namespace: Option<&str>,
    snapshot: &mut Snapshot,
    tally: &mut Tally,
    progress: &mut dyn FnMut(Progress),
) {
    let kind = target.label();
    let namespace = namespace.filter(|_| target.namespaced);
    tally.step += 1;
    report(progress, &kind, 0, tally);
    let everything = Listing {
        namespace,
        fields: None,
        labels: None,
        keep: |_| true,
        label: kind.clone(),
    };
    list_pages(client, target, everything, snapshot, tally, progress).await;
    if !lists_node_events_apart(target, namespace) {
        return;
    }
    let node_events = Listing {
        namespace: Some(NODE_EVENTS_NAMESPACE),
        fields: Some("involvedObject.kind=Node"),
        labels: None,
        keep: is_about_a_node,
        label: format!("{kind} (about nodes, in namespace {NODE_EVENTS_NAMESPACE})"),
    };
    list_pages(client, target, node_events, snapshot, tally, progress).await;
}

/// Whether listing `target` in `namespace` misses the node Events recorded in `default`.
fn lists_node_events_apart(target: &Target, namespace: Option<&str>) -> bool {
    let events = target.resource.group.is_empty() && target.resource.kind == "Event";
    events && namespace.is_some_and(|ns| ns != NODE_EVENTS_NAMESPACE)
}

/// Whether a core `v1` Event is about a Node.
fn is_about_a_node(event: &Value) -> bool {
    event
        .pointer("/involvedObject/kind")
        .and_then(Value::as_str)
        == Some("Node")
}

/// Lists the GPU operator's driver pods of every namespace but `namespace`, whose pods are listed
/// already: triage relates an endpoint's failure to the driver restarting on its node, and the
/// operator runs the driver in a namespace of its own (`gpu-operator`, `nvidia-gpu-operator`,
/// `kube-system`). One cluster-wide listing per label that marks them, so that only they travel;
/// a pod both labels mark is kept once. A refusal (a Role bound in `namespace` alone) or any other
/// failure is one gap naming them, the listings after it are not tried, and the scan goes on.
pub(crate) async fn list_driver_pods(
    client: &Client,
    namespace: &str,
    snapshot: &mut Snapshot,
    tally: &mut Tally,
    progress: &mut dyn FnMut(Progress),
) {
    let target = pod_target();
    let kind = target.label();
    tally.step += 1;
    report(progress, &kind, 0, tally);
    let mut found = Snapshot::default();
    for (key, value) in DRIVER_POD_LABELS {
        let selector = format!("{key}={value}");
        let listing = Listing {
            namespace: None,
            fields: None,
            labels: Some(selector.as_str()),
            keep: has_driver_label,
            label: format!("{kind} (GPU driver, in every namespace)"),
        };
        list_pages(client, &target, listing, &mut found, tally, progress).await;
        if !found.not_covered.is_empty() {
            break;
        }
    }
    let listed = found.pods.len();
    let mut seen = HashSet::new();
    found.pods.retain(|pod| {
        let (pod_namespace, name) = (pod.object.namespace(), pod.object.name());
        pod_namespace != namespace && seen.insert((pod_namespace.to_owned(), name.to_owned()))
    });
    tally.total = tally.total.saturating_sub(listed - found.pods.len());
    // A pod that cannot be read is named once: the namespace's listing, or the other label's,
    // may have named it already.
    let mut named = Vec::new();
    let failed = found.errors.len();
    found.errors.retain(|error| {
        let new = !snapshot.errors.contains(error) && !named.contains(error);
        if new {
            named.push(error.clone());
        }
        new
    });
    tally.total = tally.total.saturating_sub(failed - found.errors.len());
    report(progress, &kind, found.pods.len(), tally);
    snapshot.absorb(found);
}

/// Whether a pod carries one of the labels that mark the GPU operator's driver: a server that
/// ignored the label selector would send every pod.
fn has_driver_label(pod: &Value) -> bool {
    let labels = pod.pointer("/metadata/labels");
    (DRIVER_POD_LABELS.iter())
        .any(|&(key, value)| labels.and_then(|l| l.get(key)).and_then(Value::as_str) == Some(value))
}

/// What one pass over a listing's pages brought, held apart from the snapshot until the listing
/// is done: a pass started again from the first page then adds nothing twice.
struct Pass {
    objects: Snapshot,
    listed: usize,
    stopped: Option<Stop>,
}

/// Why a pass ended before its last page.
struct Stop {
    reason: String,
    /// A later page answered 410 Gone: its continue token expired, etcd having compacted the
    /// revision the listing started at (every five minutes by default), which a listing of many
    /// pages on a busy cluster can outlast.
    expired: bool,
}

/// Lists every page of one listing into `snapshot`. A continue token that expired restarts the
/// listing from the first page, once, as client-go's pager falls back to a fresh list; what the
/// abandoned pass brought is dropped. Any other failure, or a second expiry, keeps what the pass
/// brought and records the listing as not covered.
async fn list_pages(
    client: &Client,
    target: &Target,
    listing: Listing<'_>,
    snapshot: &mut Snapshot,
    tally: &mut Tally,
    progress: &mut dyn FnMut(Progress),
) {
    let mut pass = list_pass(client, target, &listing, tally, progress).await;
    if pass.stopped.as_ref().is_some_and(|stop| stop.expired) {
        tally.total = tally.total.saturating_sub(pass.listed);
        pass = list_pass(client, target, &listing, tally, progress).await;
    }
    snapshot.absorb(pass.objects);
    let Some(stop) = pass.stopped else {
        return;
    };
    let reason = if pass.listed == 0 {
        stop.reason
    } else {
        format!(
            "listing stopped after {} objects: {}",
            pass.listed, stop.reason
        )
    };
    snapshot.not_covered.push(NotCovered {
        kind: listing.label,
        reason,
    });
}

/// One pass over a listing's pages, from the first.
async fn list_pass(
    client: &Client,
    target: &Target,
    listing: &Listing<'_>,
    tally: &mut Tally,
    progress: &mut dyn FnMut(Progress),
) -> Pass {
    let kind = target.label();
    let request = Request::new(DynamicObject::url_path(&target.resource, listing.namespace));
    let mut params = ListParams::default().limit(PAGE_SIZE);
    if let Some(fields) = listing.fields {
        params = params.fields(fields);
    }
    if let Some(labels) = listing.labels {
        params = params.labels(labels);
    }
    let mut pass = Pass {
        objects: Snapshot::default(),
        listed: 0,
        stopped: None,
    };
    let mut tokens_followed = HashSet::new();
    loop {
        let page = match fetch_page(client, &request, &params, target.metadata_only).await {
            Ok(page) => page,
            Err(mut stop) => {
                // Only a token can expire: a first page that answers 410 is no reason to retry.
                stop.expired &= params.continue_token.is_some();
                pass.stopped = Some(stop);
                return pass;
            }
        };
        // Decoding takes each item; the page keeps its copy, read again only for an item that
        // does not decode, to name the field at fault.
        let items: Vec<(usize, Value)> = match page.get("items") {
            Some(Value::Array(items)) => (items.iter().enumerate())
                .filter(|&(_, item)| (listing.keep)(item))
                .map(|(index, item)| (index, item.clone()))
                .collect(),
            _ => Vec::new(),
        };
        pass.listed += items.len();
        tally.total += items.len();
        for (index, item) in items {
            let again = || {
                let item = page.get("items")?.get(index)?.clone();
                Some(complete(target, item))
            };
            add_item(target, item, again, &mut pass.objects);
        }
        report(progress, &kind, pass.listed, tally);
        let token = match page.pointer("/metadata/continue").and_then(Value::as_str) {
            Some(token) if !token.is_empty() => token.to_owned(),
            _ => return pass,
        };
        // A server whose paging goes round in circles would be listed forever, its pages again
        // and again.
        if !tokens_followed.insert(token.clone()) {
            pass.stopped = Some(Stop {
                reason: "the API server sent a continue token it had sent before".to_owned(),
                expired: false,
            });
            return pass;
        }
        params.continue_token = Some(token);
    }
}

fn report(progress: &mut dyn FnMut(Progress), kind: &str, listed: usize, tally: &Tally) {
    progress(Progress {
        kind: kind.to_owned(),
        listed,
        total: tally.total,
        step: tally.step,
        steps: tally.steps,
    });
}

async fn fetch_page(
    client: &Client,
    request: &Request,
    params: &ListParams,
    metadata_only: bool,
) -> Result<Value, Stop> {
    let built = if metadata_only {
        request.list_metadata(params)
    } else {
        request.list(params)
    };
    let mut http_request = built.map_err(|e| Stop {
        reason: format!("cannot build the list request: {e}"),
        expired: false,
    })?;
    http_request.extensions_mut().insert("list");
    client
        .request::<Value>(http_request)
        .await
        .map_err(|e| Stop {
            reason: describe(&e),
            expired: is_expired(&e),
        })
}

/// Whether the API server answered 410 Gone (reason `Expired`): what it says to a continue
/// token whose revision etcd has compacted.
fn is_expired(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 410 || status.reason == "Expired")
}

/// Decodes one list item into the snapshot, or records why it could not be, naming the field
/// at fault in the item `again` gives once more.
fn add_item(
    target: &Target,
    item: Value,
    again: impl FnOnce() -> Option<Value>,
    snapshot: &mut Snapshot,
) {
    let value = complete(target, item);
    let label = object_label(&value);
    match Object::decode_or_explain(value, again) {
        Ok(object) => snapshot.insert(object, Origin::live()),
        Err(message) => snapshot.errors.push(LoadError {
            origin: Origin::live(),
            object: Some(label),
            message,
        }),
    }
}

/// The item as a standalone object: list items usually lack `apiVersion` and `kind`, and
/// metadata-only items are rebuilt as their kind. `managedFields` is bookkeeping Hangar never
/// reads, and a Secret's last-applied annotation would carry its values.
fn complete(target: &Target, item: Value) -> Value {
    let resource = &target.resource;
    let mut value = if target.metadata_only {
        json!({"metadata": item.get("metadata").cloned().unwrap_or_else(|| json!({}))})
    } else {
        item
    };
    let Value::Object(map) = &mut value else {
        return value;
    };
    map.insert("apiVersion".into(), json!(resource.api_version));
    map.insert("kind".into(), json!(resource.kind));
    if let Some(Value::Object(metadata)) = map.get_mut("metadata") {
        metadata.remove("managedFields");
        if resource.kind == "Secret"
            && let Some(Value::Object(annotations)) = metadata.get_mut("annotations")
        {
            annotations.remove(LAST_APPLIED);
        }
    }
    value
}

/// `Kind namespace/name`, to name an object that failed to decode.
fn object_label(value: &Value) -> String {
    let text = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let (kind, name, namespace) = (
        text("/kind"),
        text("/metadata/name"),
        text("/metadata/namespace"),
    );
    if namespace.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {namespace}/{name}")
    }
}

/// Why a request failed, in words a user can act on.
pub(crate) fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            let message = status.message.trim();
            match status.code {
                401 => format!("unauthorized (401): {message}"),
                403 => format!("forbidden (403): {message}"),
                404 => format!("not served by this API server (404): {message}"),
                code => format!("the API server answered {code}: {message}"),
            }
        }
        kube::Error::Auth(auth) => format!("authentication failed: {}", root_cause(auth)),
        other => root_cause(other),
    }
}

/// The innermost error of a chain, which names the actual failure ("connection refused"), with
/// its first letter lowered to read well after a colon.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    let text = current.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) if chars.clone().next().is_some_and(char::is_lowercase) => {
            first.to_lowercase().chain(chars).collect()
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::targets::event_target;
    use hangar_testkit::FakeApiServer;
    use kube::core::{ApiResource, GroupVersionKind};
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn target(api_version: &str, kind: &str, metadata_only: bool) -> Target {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        Target {
            resource: ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind)),
            namespaced: true,
            metadata_only,
        }
    }

    #[test]
    fn list_items_get_their_api_version_and_kind() {
        let value = complete(
            &target("apps/v1", "Deployment", false),
            json!({"metadata": {"name": "web", "managedFields": [{}]}, "spec": {}}),
        );
        assert_eq!(value["apiVersion"], "apps/v1");
        assert_eq!(value["kind"], "Deployment");
        assert!(value["metadata"].get("managedFields").is_none());
        assert!(value.get("spec").is_some());
    }

    #[test]
    fn secrets_keep_only_metadata_and_lose_the_last_applied_copy() {
        let value = complete(
            &target("v1", "Secret", true),
            json!({
                "apiVersion": "meta.k8s.io/v1",
                "kind": "PartialObjectMetadata",
                "metadata": {"name": "s", "annotations": {LAST_APPLIED: "{\"data\":{}}", "team": "ml"}},
                "data": {"token": "c2VjcmV0"}
            }),
        );
        assert_eq!(value["apiVersion"], "v1");
        assert_eq!(value["kind"], "Secret");
        assert!(value.get("data").is_none());
        assert_eq!(value["metadata"]["annotations"], json!({"team": "ml"}));
    }

    fn event(namespace: &str, name: &str, about_kind: &str, about: &str) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {"kind": about_kind, "name": about},
            "reason": "XidError",
            "type": "Warning",
            "message": "NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus."
        })
    }

    async fn list_events(server: &FakeApiServer, namespace: Option<&str>) -> (Snapshot, usize) {
        let mut snapshot = Snapshot::default();
        let mut tally = Tally {
            total: 0,
            step: 0,
            steps: 1,
        };
        list_kind(
            &crate::live::test_client(server).await,
            &event_target(),
            namespace,
            &mut snapshot,
            &mut tally,
            &mut |_: Progress| {},
        )
        .await;
        (snapshot, tally.total)
    }

    fn names(snapshot: &Snapshot) -> Vec<&str> {
        let mut names: Vec<&str> = (snapshot.others.iter())
            .filter_map(|o| o.object.metadata.name.as_deref())
            .collect();
        names.sort_unstable();
        names
    }

    #[tokio::test]
    async fn the_events_of_one_namespace_come_with_the_node_events_of_default() {
        let server = FakeApiServer::builder()
            .objects([
                event("ml", "vllm-0.1", "Pod", "vllm-0"),
                event("default", "gpu-1.1", "Node", "gpu-1"),
                event("default", "web-0.1", "Pod", "web-0"),
                event("other", "job-0.1", "Pod", "job-0"),
            ])
            .start()
            .await
            .unwrap();
        let (snapshot, total) = list_events(&server, Some("ml")).await;
        assert!(
            snapshot.not_covered.is_empty(),
            "{:?}",
            snapshot.not_covered
        );
        assert_eq!(names(&snapshot), ["gpu-1.1", "vllm-0.1"]);
        assert_eq!(total, 2);
        let from_default: Vec<_> = (server.requests().into_iter())
            .filter(|r| r.path == "/api/v1/namespaces/default/events")
            .collect();
        assert_eq!(from_default.len(), 1, "{from_default:?}");
        assert_eq!(
            from_default[0].query_param("fieldSelector"),
            Some("involvedObject.kind=Node")
        );

        // Every namespace, or `default` itself, already holds them: one listing, all kept.
        let (snapshot, _) = list_events(&server, None).await;
        assert_eq!(names(&snapshot).len(), 4);
        let (snapshot, _) = list_events(&server, Some("default")).await;
        assert_eq!(names(&snapshot), ["gpu-1.1", "web-0.1"]);
        let selected = (server.requests().iter())
            .filter(|r| r.query_param("fieldSelector").is_some())
            .count();
        assert_eq!(selected, 1);
    }

    /// An API server whose paging goes round in circles: the first page of any list brings pod
    /// `first` and the token `stuck`, every page asked for with `stuck` brings pod `second` and
    /// `stuck` again. After ten requests it answers 500, so a client that loops still ends.
    /// Returns its URL and the request lines it received.
    async fn stuck_paging_server() -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&received);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut head: Vec<u8> = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head);
                let line = text.lines().next().unwrap_or_default().to_owned();
                let count = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(line.clone());
                    seen.len()
                };
                let (status, body) = stuck_page(count, &line);
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        (url, received)
    }

    /// What the stuck server answers to its `count`th request, `line`.
    fn stuck_page(count: usize, line: &str) -> (&'static str, String) {
        if count > 10 {
            let status = json!({"kind": "Status", "apiVersion": "v1", "code": 500});
            return ("500 Internal Server Error", status.to_string());
        }
        let name = if line.contains("continue=") {
            "second"
        } else {
            "first"
        };
        let pod =
            json!({"metadata": {"name": name, "namespace": "ml"}, "spec": {"containers": []}});
        let page = json!({
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "7", "continue": "stuck"},
            "items": [pod]
        });
        ("200 OK", page.to_string())
    }

    #[tokio::test]
    async fn a_continue_token_sent_again_ends_the_listing_with_a_gap() {
        let (url, received) = stuck_paging_server().await;
        let mut snapshot = Snapshot::default();
        let mut tally = Tally {
            total: 0,
            step: 0,
            steps: 1,
        };
        list_kind(
            &crate::live::test_client_at(&url).await,
            &target("v1", "Pod", false),
            Some("ml"),
            &mut snapshot,
            &mut tally,
            &mut |_: Progress| {},
        )
        .await;

        let requests = received.lock().unwrap().clone();
        assert_eq!(requests.len(), 2, "no page asked for twice: {requests:?}");
        let mut names: Vec<&str> = (snapshot.pods.iter())
            .filter_map(|p| p.object.metadata.name.as_deref())
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["first", "second"]);
        assert_eq!(tally.total, 2);
        let [gap] = snapshot.not_covered.as_slice() else {
            panic!("{:?}", snapshot.not_covered);
        };
        assert_eq!(gap.kind, "Pod");
        assert_eq!(
            gap.reason,
            "listing stopped after 2 objects: the API server sent a continue token it had sent before"
        );
    }

    #[test]
    fn root_causes_read_as_a_clause() {
        let error =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        assert_eq!(root_cause(&error), "connection refused");
        let acronym = std::io::Error::other("TLS handshake failed");
        assert_eq!(root_cause(&acronym), "TLS handshake failed");
    }
}
