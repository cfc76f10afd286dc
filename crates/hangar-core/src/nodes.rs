//! Nodes: which are GPU nodes, and which pods may land on them.

use k8s_openapi::api::core::v1::{Node, Taint, Toleration};

use crate::inventory::is_accelerator;
use crate::policy::Policy;
use crate::snapshot::KubeObject;
use crate::workload::PodTemplate;

/// Whether a node offers accelerators, or carries a label the policy says marks GPU nodes.
pub fn is_gpu_node(node: &Node, policy: &Policy) -> bool {
    let allocatable = node
        .status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()));
    let has_accelerator = allocatable
        .into_iter()
        .flatten()
        .any(|(name, q)| is_accelerator(name) && q.0 != "0");
    has_accelerator
        || policy
            .gpu_pool
            .node_labels
            .iter()
            .any(|l| node.label(l).is_some())
}

/// The node's taints that keep pods off (NoSchedule, NoExecute).
pub fn fencing_taints(node: &Node) -> impl Iterator<Item = &Taint> {
    node.spec
        .iter()
        .flat_map(|s| s.taints.iter().flatten())
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
}

/// Whether `toleration` tolerates `taint`, as the scheduler decides it.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect_ok = toleration
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    let key_ok = match toleration.key.as_deref() {
        None | Some("") => toleration.operator.as_deref() == Some("Exists"),
        Some(key) => key == taint.key,
    };
    let value_ok = match toleration.operator.as_deref() {
        Some("Exists") => true,
        _ => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
    };
    effect_ok && key_ok && value_ok
}

/// A toleration that matches every taint: `operator: Exists` with no key.
pub fn tolerates_everything(toleration: &Toleration) -> bool {
    toleration.key.as_deref().is_none_or(str::is_empty)
        && toleration.operator.as_deref() == Some("Exists")
}

/// Whether a pod from `template` may be scheduled on `node`, by node selector and taints
/// (affinity is not evaluated).
pub fn can_schedule(template: &PodTemplate, node: &Node) -> bool {
    let selector_ok = template
        .spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| node.label(k) == Some(v.as_str()));
    let tolerations = template.spec.tolerations.as_deref().unwrap_or_default();
    selector_ok && fencing_taints(node).all(|taint| tolerations.iter().any(|t| tolerates(t, taint)))
}
