//! Nodes: which are GPU nodes, and which pods may land on them.

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Taint, Toleration,
};

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

/// Whether a pod from `template` may be scheduled on `node`, by node selector, taints, required
/// node affinity and the accelerators the node has at all (preferences, pod affinity and what
/// other pods already use are not evaluated).
pub fn can_schedule(template: &PodTemplate, node: &Node) -> bool {
    let selector_ok = template
        .spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| node.label(k) == Some(v.as_str()));
    let tolerations = template.spec.tolerations.as_deref().unwrap_or_default();
    selector_ok
        && fencing_taints(node).all(|taint| tolerations.iter().any(|t| tolerates(t, taint)))
        && affinity_admits(template, node)
        && holds_accelerators(template, node)
}

/// Whether the node has as many of each accelerator as one pod asks for: a pod that needs four
/// GPUs never lands on a one-GPU node. Quantities that are not whole numbers are not judged.
fn holds_accelerators(template: &PodTemplate, node: &Node) -> bool {
    let allocatable = node
        .status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()));
    let offered = |resource: &str| -> u64 {
        allocatable
            .and_then(|a| a.get(resource))
            .and_then(|q| q.0.parse().ok())
            .unwrap_or(0)
    };
    let mut wanted: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for container in &template.spec.containers {
        let Some(resources) = &container.resources else {
            continue;
        };
        // Limits are what the scheduler reads for extended resources when requests are unset.
        let map = resources.requests.as_ref().or(resources.limits.as_ref());
        for (name, quantity) in map.into_iter().flatten() {
            if let (true, Ok(n)) = (is_accelerator(name), quantity.0.parse::<u64>()) {
                *wanted.entry(name.as_str()).or_default() += n;
            }
        }
    }
    wanted
        .into_iter()
        .all(|(resource, n)| offered(resource) >= n)
}

/// The required node-affinity terms of a template (ORed by the scheduler).
pub fn required_terms(t: &PodTemplate) -> &[NodeSelectorTerm] {
    t.spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|s| s.node_selector_terms.as_slice())
        .unwrap_or_default()
}

/// Whether a node-selector requirement admits a label value (`None`: the label is absent).
pub fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.trim().parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(bound)) = (
                value.and_then(number),
                values.first().and_then(|v| number(v)),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                have > bound
            } else {
                have < bound
            }
        }
        _ => false,
    }
}

/// Required node affinity, as the scheduler evaluates it (terms are ORed, requirements ANDed;
/// an empty term matches nothing).
pub fn affinity_admits(t: &PodTemplate, node: &Node) -> bool {
    let terms = required_terms(t);
    terms.is_empty()
        || terms.iter().any(|term| {
            let exprs = term.match_expressions.as_deref().unwrap_or_default();
            let fields = term.match_fields.as_deref().unwrap_or_default();
            (!exprs.is_empty() || !fields.is_empty())
                && exprs
                    .iter()
                    .all(|r| requirement_matches(r, node.label(&r.key)))
                && fields.iter().all(|r| {
                    requirement_matches(r, (r.key == "metadata.name").then(|| node.name()))
                })
        })
}

/// What decides where a pod may land (node selector, tolerations, affinity), as a key: pods with
/// equal keys may land on the same nodes.
pub fn placement_key(t: &PodTemplate) -> String {
    let accelerators: Vec<_> = t
        .spec
        .containers
        .iter()
        .filter_map(|c| c.resources.as_ref())
        .collect();
    format!(
        "{:?}|{:?}|{:?}|{:?}",
        t.spec.node_selector, t.spec.tolerations, t.spec.affinity, accelerators
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot_from_text;
    use crate::workload::workloads;

    #[test]
    fn a_pod_asking_more_gpus_than_a_node_has_cannot_land_there() {
        let snapshot = snapshot_from_text(
            "t.yaml",
            r#"
apiVersion: v1
kind: Node
metadata: {name: l4-1}
status: {allocatable: {nvidia.com/gpu: "1"}}
---
apiVersion: v1
kind: Node
metadata: {name: h100-1}
status: {capacity: {nvidia.com/gpu: "8"}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: big, namespace: ml}
spec:
  template:
    spec:
      containers:
      - {name: a, image: x, resources: {limits: {nvidia.com/gpu: "2"}}}
      - {name: b, image: x, resources: {requests: {nvidia.com/gpu: "2"}, limits: {nvidia.com/gpu: "2"}}}
"#,
        );
        let template = &workloads(&snapshot)[0].template;
        let fits: Vec<&str> = snapshot
            .nodes
            .iter()
            .filter(|n| can_schedule(template, &n.object))
            .map(|n| n.object.name())
            .collect();
        assert_eq!(fits, ["h100-1"], "4 GPUs a pod fit only the 8-GPU node");
    }
}
