//! From a request to a response: discovery documents, lists and gets, and `Status` errors,
//! shaped as a real API server shapes them. Pure: no socket here.

use serde_json::{Map, Value, json};

use super::RecordedRequest;
use super::catalogue::{Catalogue, CustomResource, group_version, str_at};

/// A response: an HTTP status and a JSON body, or plain text (pod logs).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Response {
    pub status: u16,
    pub body: Value,
    /// Sent as `text/plain` instead of `body` when set: bytes, since logs need not be UTF-8.
    pub text: Option<Vec<u8>>,
}

impl Response {
    fn ok(body: Value) -> Self {
        Response {
            status: 200,
            body,
            text: None,
        }
    }
}

/// The `Accept` value kube asks for when it wants only metadata (`list_metadata`).
const METADATA_LIST: &str = "as=PartialObjectMetadataList";

pub(crate) fn respond(catalogue: &Catalogue, request: &RecordedRequest, address: &str) -> Response {
    if request.method != "GET" {
        return status(
            405,
            "MethodNotAllowed",
            &format!(
                "the fake API server is read-only: {} is not allowed",
                request.method
            ),
        );
    }
    if catalogue.reject_credentials {
        return status(401, "Unauthorized", "Unauthorized");
    }
    let segments: Vec<&str> = request
        .path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segments.as_slice() {
        ["version"] => Response::ok(version_info()),
        ["api"] => Response::ok(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]
        })),
        ["apis"] => Response::ok(group_list(catalogue)),
        ["api", version] => resource_list(catalogue, "", version),
        ["apis", group, version] => resource_list(catalogue, group, version),
        ["api", "v1", "namespaces", ns, "pods", pod, "log"] => pod_log(catalogue, request, ns, pod),
        ["api", version, rest @ ..] => resource_request(catalogue, request, "", version, rest),
        ["apis", group, version, rest @ ..] => {
            resource_request(catalogue, request, group, version, rest)
        }
        _ => not_found(),
    }
}

fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-hangar-fake",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

fn group_list(catalogue: &Catalogue) -> Value {
    let groups: Vec<Value> = catalogue
        .groups()
        .into_iter()
        .map(|(group, versions)| {
            let entries: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": group_version(group, v), "version": v}))
                .collect();
            let preferred = entries.first().cloned().unwrap_or(Value::Null);
            json!({"name": group, "versions": entries, "preferredVersion": preferred})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(catalogue: &Catalogue, group: &str, version: &str) -> Response {
    let served = catalogue.resources_in(group, version);
    if served.is_empty() {
        return not_found();
    }
    let mut resources = Vec::new();
    for r in served {
        let verbs = [
            "get", "list", "watch", "create", "update", "patch", "delete",
        ];
        resources.push(json!({
            "name": r.plural,
            "singularName": r.kind.to_ascii_lowercase(),
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs
        }));
        // Subresources appear in real discovery documents; clients must skip them.
        resources.push(json!({
            "name": format!("{}/status", r.plural),
            "singularName": "",
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": ["get", "patch", "update"]
        }));
    }
    Response::ok(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, version),
        "resources": resources
    }))
}

fn resource_request(
    catalogue: &Catalogue,
    request: &RecordedRequest,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Response {
    let (namespace, plural, name) = match rest {
        ["namespaces", ns, plural] => (Some(*ns), *plural, None),
        ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name)),
        [plural] => (None, *plural, None),
        [plural, name] => (None, *plural, Some(*name)),
        _ => return not_found(),
    };
    let Some(resource) = catalogue.resource(group, version, plural) else {
        return not_found();
    };
    if namespace.is_some() && !resource.namespaced {
        return not_found();
    }
    let verb = if name.is_some() { "get" } else { "list" };
    if let Some(code) = catalogue.denied.get(&resource.qualified_name()) {
        return denied(*code, resource, verb, namespace);
    }
    let confined = catalogue.confined.get(&resource.qualified_name());
    if confined.is_some_and(|allowed| namespace != Some(allowed.as_str())) {
        return denied(403, resource, verb, namespace);
    }
    match name {
        Some(name) => get(catalogue, resource, namespace, name),
        None => list(catalogue, request, resource, version, namespace),
    }
}

/// `GET …/pods/NAME/log`: the registered log of a container, cut as the kubelet cuts it —
/// `tailLines` last lines, then at most `limitBytes` bytes.
fn pod_log(
    catalogue: &Catalogue,
    request: &RecordedRequest,
    namespace: &str,
    pod: &str,
) -> Response {
    let key = (namespace.to_owned(), pod.to_owned());
    let uncapped = request.query_param("limitBytes").is_none();
    let failing = (catalogue.denied.get("pods/log"))
        .or_else(|| catalogue.failing_logs.get(&key))
        .or_else(|| (catalogue.failing_uncapped_logs.get(&key)).filter(|_| uncapped));
    if let Some(code) = failing {
        return log_refused(*code, namespace, pod);
    }
    let exists = catalogue.objects.iter().any(|o| {
        str_at(o, "/kind") == "Pod"
            && str_at(o, "/metadata/namespace") == namespace
            && str_at(o, "/metadata/name") == pod
    });
    if !exists {
        return status(404, "NotFound", &format!("pods \"{pod}\" not found"));
    }
    let container = request.query_param("container").unwrap_or_default();
    let previous = request.query_param("previous") == Some("true");
    let key = (
        namespace.to_owned(),
        pod.to_owned(),
        container.to_owned(),
        previous,
    );
    let Some(text) = catalogue.logs.get(&key) else {
        if previous {
            return status(
                400,
                "BadRequest",
                &format!(
                    "previous terminated container \"{container}\" in pod \"{pod}\" not found"
                ),
            );
        }
        return Response {
            text: Some(Vec::new()),
            ..Response::ok(Value::Null)
        };
    };
    let mut text = text.clone();
    if let Some(tail) = request
        .query_param("tailLines")
        .and_then(|n| n.parse::<usize>().ok())
    {
        let body = text.strip_suffix(b"\n").unwrap_or(&text);
        let lines: Vec<&[u8]> = body.split(|b| *b == b'\n').collect();
        let start = lines.len().saturating_sub(tail);
        text = lines[start..]
            .iter()
            .flat_map(|l| l.iter().copied().chain([b'\n']))
            .collect();
    }
    // Like the kubelet: the first `limitBytes` bytes of what `tailLines` chose, cut anywhere,
    // even inside a character.
    if let Some(limit) = request
        .query_param("limitBytes")
        .and_then(|n| n.parse::<usize>().ok())
    {
        text.truncate(limit.min(text.len()));
    }
    Response {
        text: Some(text),
        ..Response::ok(Value::Null)
    }
}

/// A log read refused: by RBAC (403), or, as the API server relays it, by a kubelet that does not
/// answer.
fn log_refused(code: u16, namespace: &str, pod: &str) -> Response {
    if code == 403 {
        return status(
            403,
            "Forbidden",
            &format!(
                "pods \"{pod}\" is forbidden: cannot get resource \"pods/log\" in the namespace \"{namespace}\""
            ),
        );
    }
    status(
        code,
        "InternalError",
        &format!(
            "Get \"https://10.0.0.7:10250/containerLogs/{namespace}/{pod}\": dial tcp 10.0.0.7:10250: connect: no route to host"
        ),
    )
}

fn get(
    catalogue: &Catalogue,
    resource: &CustomResource,
    namespace: Option<&str>,
    name: &str,
) -> Response {
    if resource.namespaced && namespace.is_none() {
        return not_found();
    }
    catalogue
        .objects_of(resource, namespace)
        .into_iter()
        .find(|o| str_at(o, "/metadata/name") == name)
        .map(|o| Response::ok(o.clone()))
        .unwrap_or_else(|| {
            status(
                404,
                "NotFound",
                &format!("{} \"{name}\" not found", resource.qualified_name()),
            )
        })
}

fn list(
    catalogue: &Catalogue,
    request: &RecordedRequest,
    resource: &CustomResource,
    version: &str,
    namespace: Option<&str>,
) -> Response {
    if request.query_param("continue").is_some() && catalogue.expire_continue_token(resource) {
        return status(
            410,
            "Expired",
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
        );
    }
    let objects = catalogue.objects_of(resource, namespace);
    let offset = match request.query_param("continue") {
        None => 0,
        Some(token) => match token
            .strip_prefix("offset=")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(offset) => offset,
            None => return status(400, "BadRequest", "continue key is not valid"),
        },
    };
    let limit = request
        .query_param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let page: Vec<&Value> = objects.iter().skip(offset).take(limit).copied().collect();
    let next = offset.saturating_add(page.len());
    let metadata_only = request
        .accept
        .as_deref()
        .is_some_and(|a| a.contains(METADATA_LIST));
    let items: Vec<Value> = page
        .into_iter()
        .map(|o| {
            if metadata_only {
                partial_metadata(o)
            } else {
                list_item(o)
            }
        })
        .collect();
    let mut list_meta = Map::new();
    list_meta.insert("resourceVersion".into(), json!("1000"));
    if next < objects.len() {
        list_meta.insert("continue".into(), json!(format!("offset={next}")));
        list_meta.insert("remainingItemCount".into(), json!(objects.len() - next));
    }
    let (api_version, kind) = if metadata_only {
        (
            "meta.k8s.io/v1".to_owned(),
            "PartialObjectMetadataList".to_owned(),
        )
    } else {
        (
            group_version(&resource.group, version),
            format!("{}List", resource.kind),
        )
    };
    Response::ok(json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": list_meta,
        "items": items
    }))
}

/// List items from a real API server carry no `apiVersion` or `kind`: the list says them.
fn list_item(object: &Value) -> Value {
    let mut item = object.clone();
    if let Some(map) = item.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
    }
    item
}

fn partial_metadata(object: &Value) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({}))
    })
}

fn denied(code: u16, resource: &CustomResource, verb: &str, namespace: Option<&str>) -> Response {
    if code == 401 {
        return status(401, "Unauthorized", "Unauthorized");
    }
    let scope = match namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_owned(),
    };
    let message = format!(
        "{} is forbidden: User \"system:serviceaccount:hangar-system:hangar-auditor\" cannot {verb} resource \"{}\" in API group \"{}\" {scope}",
        resource.qualified_name(),
        resource.plural,
        resource.group
    );
    let reason = if code == 403 {
        "Forbidden"
    } else {
        "InternalError"
    };
    status(code, reason, &message)
}

fn not_found() -> Response {
    status(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    Response {
        status: code,
        text: None,
        body: json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::objects;

    fn get(path: &str, query: &[(&str, &str)]) -> RecordedRequest {
        RecordedRequest {
            method: "GET".into(),
            path: path.into(),
            query: query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            accept: None,
        }
    }

    fn catalogue(objects: Vec<Value>) -> Catalogue {
        Catalogue::new(Vec::new(), objects, BTreeMap::new())
    }

    #[test]
    fn namespaced_lists_hold_only_that_namespace() {
        let c = catalogue(vec![
            objects::pod("a", "p1", "nginx"),
            objects::pod("b", "p2", "nginx"),
        ]);
        let all = respond(&c, &get("/api/v1/pods", &[]), "x");
        assert_eq!(all.body["items"].as_array().map(Vec::len), Some(2));
        let only_a = respond(&c, &get("/api/v1/namespaces/a/pods", &[]), "x");
        assert_eq!(only_a.body["items"][0]["metadata"]["name"], "p1");
        assert_eq!(only_a.body["items"].as_array().map(Vec::len), Some(1));
        assert!(only_a.body["items"][0].get("kind").is_none());
    }

    #[test]
    fn pages_follow_continue_tokens() {
        let c = catalogue(
            (0..5)
                .map(|i| objects::namespace(&format!("ns{i}")))
                .collect(),
        );
        let first = respond(&c, &get("/api/v1/namespaces", &[("limit", "2")]), "x");
        assert_eq!(first.body["metadata"]["continue"], "offset=2");
        let last = respond(
            &c,
            &get(
                "/api/v1/namespaces",
                &[("limit", "2"), ("continue", "offset=4")],
            ),
            "x",
        );
        assert_eq!(last.body["items"][0]["metadata"]["name"], "ns4");
        assert!(last.body["metadata"].get("continue").is_none());
    }

    #[test]
    fn continue_tokens_expire_as_often_as_asked() {
        let mut c = catalogue(
            (0..3)
                .map(|i| objects::namespace(&format!("ns{i}")))
                .collect(),
        );
        c.expiring
            .insert("namespaces".into(), std::sync::atomic::AtomicUsize::new(1));
        let next = get(
            "/api/v1/namespaces",
            &[("limit", "2"), ("continue", "offset=2")],
        );
        let expired = respond(&c, &next, "x");
        assert_eq!(expired.status, 410);
        assert_eq!(expired.body["reason"], "Expired");
        // A list from the first page is served, and so is the next token.
        let first = respond(&c, &get("/api/v1/namespaces", &[("limit", "2")]), "x");
        assert_eq!(first.status, 200);
        assert_eq!(
            respond(&c, &next, "x").body["items"][0]["metadata"]["name"],
            "ns2"
        );
    }

    #[test]
    fn a_confined_resource_is_read_in_its_namespace_alone() {
        let mut c = catalogue(vec![
            objects::pod("ml", "vllm-0", "vllm"),
            objects::pod("gpu-operator", "nvidia-driver-daemonset-x", "driver"),
        ]);
        c.confined.insert("pods".into(), "ml".into());
        let own = respond(&c, &get("/api/v1/namespaces/ml/pods", &[]), "x");
        assert_eq!(own.status, 200);
        assert_eq!(own.body["items"][0]["metadata"]["name"], "vllm-0");
        for path in ["/api/v1/pods", "/api/v1/namespaces/gpu-operator/pods"] {
            let refused = respond(&c, &get(path, &[]), "x");
            assert_eq!(refused.status, 403, "{path}");
            assert_eq!(refused.body["reason"], "Forbidden");
        }
        // Other resources are not confined.
        let nodes = respond(&c, &get("/api/v1/nodes", &[]), "x");
        assert_eq!(nodes.status, 200);
    }

    #[test]
    fn writes_are_refused() {
        let mut request = get("/api/v1/namespaces", &[]);
        request.method = "POST".into();
        assert_eq!(respond(&catalogue(Vec::new()), &request, "x").status, 405);
    }

    #[test]
    fn pod_logs_are_cut_as_the_kubelet_cuts_them() {
        let mut c = catalogue(vec![objects::pod("ml", "vllm-0", "vllm")]);
        c.logs.insert(
            ("ml".into(), "vllm-0".into(), "vllm".into(), false),
            b"one\ntwo\nthree\n".to_vec(),
        );
        let path = "/api/v1/namespaces/ml/pods/vllm-0/log";
        let tail = respond(
            &c,
            &get(path, &[("container", "vllm"), ("tailLines", "2")]),
            "x",
        );
        assert_eq!(tail.text.as_deref(), Some(&b"two\nthree\n"[..]));
        let bytes = respond(
            &c,
            &get(path, &[("container", "vllm"), ("limitBytes", "5")]),
            "x",
        );
        assert_eq!(bytes.text.as_deref(), Some(&b"one\nt"[..]));
        let previous = respond(
            &c,
            &get(path, &[("container", "vllm"), ("previous", "true")]),
            "x",
        );
        assert_eq!(previous.status, 400);
        let missing = respond(&c, &get("/api/v1/namespaces/ml/pods/nope/log", &[]), "x");
        assert_eq!(missing.status, 404);
    }
}
