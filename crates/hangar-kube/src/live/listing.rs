//! Listing one kind, page by page, into the snapshot through the same door as files:
//! `Object::decode`.

use hangar_core::{LoadError, NotCovered, Object, Origin, Snapshot};
use kube::Client;
use kube::core::params::ListParams;
use kube::core::{DynamicObject, Request, Resource};
use serde_json::{Value, json};

use super::Progress;
use super::targets::Target;

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

/// Lists `target` (in `namespace` when it is namespaced and one is given) into `snapshot`.
/// A failure keeps what earlier pages brought and records the kind as not covered.
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
    let request = Request::new(DynamicObject::url_path(&target.resource, namespace));
    let mut params = ListParams::default().limit(PAGE_SIZE);
    let mut listed = 0;
    tally.step += 1;
    report(progress, &kind, listed, tally);
    loop {
        let page = match fetch_page(client, &request, &params, target.metadata_only).await {
            Ok(page) => page,
            Err(reason) => {
                let reason = if listed == 0 {
                    reason
                } else {
                    format!("listing stopped after {listed} objects: {reason}")
                };
                snapshot.not_covered.push(NotCovered { kind, reason });
                return;
            }
        };
        // Decoding takes each item; the page keeps its copy, read again only for an item that
        // does not decode, to name the field at fault.
        let items = match page.get("items") {
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        };
        listed += items.len();
        tally.total += items.len();
        for (index, item) in items.into_iter().enumerate() {
            let again = || {
                let item = page.get("items")?.get(index)?.clone();
                Some(complete(target, item))
            };
            add_item(target, item, again, snapshot);
        }
        report(progress, &kind, listed, tally);
        match page.pointer("/metadata/continue").and_then(Value::as_str) {
            Some(token) if !token.is_empty() => params.continue_token = Some(token.to_owned()),
            _ => return,
        }
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
) -> Result<Value, String> {
    let built = if metadata_only {
        request.list_metadata(params)
    } else {
        request.list(params)
    };
    let mut http_request = built.map_err(|e| format!("cannot build the list request: {e}"))?;
    http_request.extensions_mut().insert("list");
    client
        .request::<Value>(http_request)
        .await
        .map_err(|e| describe(&e))
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
    use kube::core::{ApiResource, GroupVersionKind};

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

    #[test]
    fn root_causes_read_as_a_clause() {
        let error =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        assert_eq!(root_cause(&error), "connection refused");
        let acronym = std::io::Error::other("TLS handshake failed");
        assert_eq!(root_cause(&acronym), "TLS handshake failed");
    }
}
