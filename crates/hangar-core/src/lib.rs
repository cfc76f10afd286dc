//! Hangar's shared vocabulary: the `Snapshot` of a cluster, the `Inventory` of inference
//! endpoints found in it, and the organisation's `Policy`. Pure: no network, no filesystem.

pub mod fast_yaml;
pub mod image;
pub mod inventory;
pub mod kustomize;
pub mod network_policy;
pub mod nodes;
pub mod object;
pub mod parse;
pub mod policy;
pub mod printable;
pub mod quantity;
pub mod rbac;
pub mod rejected;
pub mod removed_api;
pub mod selector;
pub mod severity;
pub mod snapshot;
pub mod workload;

pub use inventory::{Endpoint, Inventory, Runtime, discover};
pub use object::{ObjectRef, Origin};
pub use policy::{DataScope, Policy};
pub use severity::Severity;
pub use snapshot::{KubeObject, LoadError, Located, NotCovered, Object, Snapshot};

/// Builds a snapshot from YAML or JSON text, as tests and fixtures do.
pub fn snapshot_from_text(file: &str, text: &str) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let parsed = parse::parse_text(&std::sync::Arc::from(file), text);
    for (object, origin) in parsed.objects {
        snapshot.insert(object, origin);
    }
    snapshot.errors.extend(parsed.errors);
    snapshot.not_objects = parsed.not_objects;
    snapshot.resolve_duplicates();
    snapshot
}
