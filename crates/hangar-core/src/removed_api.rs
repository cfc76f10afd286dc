//! API versions Kubernetes removed years ago that old manifests and charts still use. Hangar
//! types only the current version of a kind; an object of a removed version would otherwise
//! become an untyped object nothing reads, and its endpoint and exposure would go unaudited.

use serde_json::{Map, Value};

/// A removed API version of a typed kind, the version Hangar reads it as, and the Kubernetes
/// release that removed it.
struct Removed {
    kind: &'static str,
    api_version: &'static str,
    current: &'static str,
    removed_in: &'static str,
}

const fn removed(
    kind: &'static str,
    api_version: &'static str,
    current: &'static str,
    removed_in: &'static str,
) -> Removed {
    Removed {
        kind,
        api_version,
        current,
        removed_in,
    }
}

/// Versions whose objects read as the current version once converted (`convert`); their
/// fields that matter here kept their names.
const REMOVED: &[Removed] = &[
    removed("Deployment", "extensions/v1beta1", "apps/v1", "1.16"),
    removed("Deployment", "apps/v1beta1", "apps/v1", "1.16"),
    removed("Deployment", "apps/v1beta2", "apps/v1", "1.16"),
    removed("DaemonSet", "extensions/v1beta1", "apps/v1", "1.16"),
    removed("DaemonSet", "apps/v1beta2", "apps/v1", "1.16"),
    removed("ReplicaSet", "extensions/v1beta1", "apps/v1", "1.16"),
    removed("ReplicaSet", "apps/v1beta2", "apps/v1", "1.16"),
    removed("StatefulSet", "apps/v1beta1", "apps/v1", "1.16"),
    removed("StatefulSet", "apps/v1beta2", "apps/v1", "1.16"),
    removed(
        "NetworkPolicy",
        "extensions/v1beta1",
        "networking.k8s.io/v1",
        "1.16",
    ),
    removed(
        "Ingress",
        "extensions/v1beta1",
        "networking.k8s.io/v1",
        "1.22",
    ),
    removed(
        "Ingress",
        "networking.k8s.io/v1beta1",
        "networking.k8s.io/v1",
        "1.22",
    ),
    removed("CronJob", "batch/v1beta1", "batch/v1", "1.25"),
    removed(
        "Role",
        "rbac.authorization.k8s.io/v1beta1",
        "rbac.authorization.k8s.io/v1",
        "1.22",
    ),
    removed(
        "ClusterRole",
        "rbac.authorization.k8s.io/v1beta1",
        "rbac.authorization.k8s.io/v1",
        "1.22",
    ),
    removed(
        "RoleBinding",
        "rbac.authorization.k8s.io/v1beta1",
        "rbac.authorization.k8s.io/v1",
        "1.22",
    ),
    removed(
        "ClusterRoleBinding",
        "rbac.authorization.k8s.io/v1beta1",
        "rbac.authorization.k8s.io/v1",
        "1.22",
    ),
];

/// When `object` is of a removed API version, converts it in place to the version Hangar reads
/// and returns what to tell the user: the scan read it, but no cluster would accept it.
pub fn upgrade(object: &mut Map<String, Value>) -> Option<String> {
    let api_version = object.get("apiVersion")?.as_str()?;
    let kind = object.get("kind")?.as_str()?;
    let removed = REMOVED
        .iter()
        .find(|r| r.api_version == api_version && r.kind == kind)?;
    let note = format!(
        "{api_version} {kind}: this API version was removed in Kubernetes {} and no current cluster accepts it; Hangar audited it as {} (update the manifest, e.g. with `kubectl convert`)",
        removed.removed_in, removed.current
    );
    let ingress = removed.kind == "Ingress";
    object.insert("apiVersion".into(), Value::String(removed.current.into()));
    if ingress {
        upgrade_ingress(object);
    }
    Some(note)
}

/// `networking.k8s.io/v1` renamed the backend fields and made `pathType` required.
fn upgrade_ingress(ingress: &mut Map<String, Value>) {
    let Some(Value::Object(spec)) = ingress.get_mut("spec") else {
        return;
    };
    if let Some(backend) = spec.remove("backend") {
        spec.insert("defaultBackend".into(), upgrade_backend(backend));
    }
    let Some(Value::Array(rules)) = spec.get_mut("rules") else {
        return;
    };
    for rule in rules {
        let Some(Value::Array(paths)) = rule.pointer_mut("/http/paths") else {
            continue;
        };
        for path in paths.iter_mut().filter_map(Value::as_object_mut) {
            path.entry("pathType")
                .or_insert_with(|| Value::String("ImplementationSpecific".into()));
            if let Some(backend) = path.remove("backend") {
                path.insert("backend".into(), upgrade_backend(backend));
            }
        }
    }
}

/// `{serviceName, servicePort}` becomes `{service: {name, port: {number | name}}}`.
fn upgrade_backend(backend: Value) -> Value {
    let Value::Object(mut backend) = backend else {
        return backend;
    };
    let Some(name) = backend.remove("serviceName") else {
        return Value::Object(backend);
    };
    let port = match backend.remove("servicePort") {
        Some(Value::Number(number)) => serde_json::json!({"number": number}),
        Some(Value::String(port)) => match port.parse::<u16>() {
            Ok(number) => serde_json::json!({"number": number}),
            Err(_) => serde_json::json!({"name": port}),
        },
        _ => serde_json::json!({}),
    };
    backend.insert(
        "service".into(),
        serde_json::json!({"name": name, "port": port}),
    );
    Value::Object(backend)
}
