//! Observed usage: the pods running on nodes, what they hold and since when; the pods waiting
//! for accelerators; and the pods that sit on GPU nodes without using a GPU.

use std::collections::BTreeMap;

use hangar_core::selector::selects;
use hangar_core::{KubeObject, ObjectRef};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Pod, PodSpec};

use super::devices::{Sharing, describe, pod_accelerators, quantity};
use super::price::{Hardware, quote};
use super::{Context, Found, Owner, Usage, held};
use crate::cost::report::{NoGpuPod, Pending};

/// Where a pod is in its life, as far as billing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PodState<'a> {
    /// On a node: it holds what it requested.
    Running(&'a str),
    /// Not yet on a node.
    Pending,
    /// Succeeded or failed: it holds nothing any more.
    Finished,
    /// A manifest: no status and no node.
    Declared,
}

fn state(pod: &Pod) -> PodState<'_> {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty());
    match (phase, node) {
        (Some("Succeeded" | "Failed"), _) => PodState::Finished,
        (_, Some(node)) => PodState::Running(node),
        (Some(_), None) => PodState::Pending,
        (None, None) => PodState::Declared,
    }
}

/// Whether the input holds pods as a cluster reports them (with a phase or a node), rather than
/// only manifests.
pub(super) fn has_observed_pods(snapshot: &hangar_core::Snapshot) -> bool {
    snapshot
        .pods
        .iter()
        .any(|p| state(&p.object) != PodState::Declared)
}

pub(super) fn collect(context: &Context<'_>, warnings: &mut Vec<String>) -> Found {
    let mut found = Found::default();
    for located in &context.snapshot.pods {
        let pod = &located.object;
        let Some(spec) = &pod.spec else {
            continue;
        };
        let me = located.object_ref();
        let pod_state = state(pod);
        if !matches!(pod_state, PodState::Running(_) | PodState::Pending) {
            continue;
        }
        let (asks, problems) = pod_accelerators(spec);
        warnings.extend(problems.into_iter().map(|p| format!("{me}: {p}")));
        if spec.resource_claims.as_ref().is_some_and(|c| !c.is_empty()) {
            warnings.push(format!(
                "{me}: devices allocated through resource claims (DRA) are not counted"
            ));
        }
        match pod_state {
            PodState::Running(node) if asks.is_empty() => {
                no_gpu(context, pod, &me, node, &mut found);
            }
            PodState::Running(node) => {
                let usage = running(context, pod, me, node, &asks, warnings);
                let on_gpu_node = context.nodes.get(node).is_some_and(|n| n.is_gpu);
                found.bill(usage, on_gpu_node, context.period());
            }
            PodState::Pending if !asks.is_empty() => {
                found.pending.push(pending(context, pod, me, &asks));
            }
            _ => {}
        }
    }
    warn_unstarted(&found.usage, warnings);
    found
}

/// Names the running pods with no `status.startTime`: what they cost so far is unknown, so
/// ACCRUED leaves them out.
fn warn_unstarted(usage: &[Usage], warnings: &mut Vec<String>) {
    const NAMED: usize = 5;
    let unstarted: Vec<String> = usage
        .iter()
        .filter(|u| u.started.is_none())
        .map(|u| u.object.to_string())
        .collect();
    if unstarted.is_empty() {
        return;
    }
    let more = match unstarted.len().saturating_sub(NAMED) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    warnings.push(format!(
        "{} running pod(s) have no status.startTime ({}{more}): what they have cost so far is unknown, so ACCRUED leaves them out",
        unstarted.len(),
        unstarted[..unstarted.len().min(NAMED)].join(", ")
    ));
}

fn owner(context: &Context<'_>, pod: &Pod, me: &ObjectRef) -> Owner {
    if let Some(endpoint) = context.pod_endpoints.get(me) {
        return context.endpoint_owner(endpoint);
    }
    let root = context.top_owner(pod).unwrap_or_else(|| me.clone());
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    context.other_owner(&labels, pod.namespace(), &root)
}

fn running(
    context: &Context<'_>,
    pod: &Pod,
    me: ObjectRef,
    node_name: &str,
    asks: &BTreeMap<String, f64>,
    warnings: &mut Vec<String>,
) -> Usage {
    let owner = owner(context, pod, &me);
    let node = context.nodes.get(node_name);
    let (sharing, quote) = match node {
        Some(n) => (n.devices.sharing.clone(), n.quote.clone()),
        None => {
            warnings.push(format!(
                "node {node_name} is not in the input: the GPUs of its pods are counted whole and priced with gpuPrices.default"
            ));
            (
                Sharing::default(),
                quote(&context.options.policy.gpu_prices, Hardware::default()),
            )
        }
    };
    let gpus = held(
        &sharing,
        asks,
        &format!("{me} on node {node_name}"),
        warnings,
    );
    let hourly = quote.per_gpu_hour.map(|p| p * gpus);
    let start = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0);
    let running_hours = start.map(|s| hours_between(s, context.options.at));
    Usage {
        template: None,
        replicas: 1,
        replicas_from: None,
        workload: context.top_owner(pod),
        inference: owner.endpoint.is_some(),
        what: owner.what,
        endpoint: owner.endpoint,
        namespace: me.namespace.clone(),
        team: owner.team,
        model: owner.model,
        node: Some(node_name.to_owned()),
        pool: node.map(|n| n.pool.clone()),
        gpu_model: node.and_then(|n| n.gpu_model.clone()),
        accelerators: describe(asks),
        gpus,
        price_per_gpu_hour: quote.per_gpu_hour,
        price_source: quote.source,
        hourly,
        projected: hourly.map(|h| h * context.period()),
        started: start.map(|s| s.to_string()),
        accrued: hourly.zip(running_hours).map(|(h, r)| h * r),
        running_hours,
        object: me,
    }
}

/// Hours from `start` to `at`; zero when `at` is before the start.
pub(super) fn hours_between(
    start: k8s_openapi::jiff::Timestamp,
    at: k8s_openapi::jiff::Timestamp,
) -> f64 {
    let seconds = at.as_second() - start.as_second();
    (seconds as f64 / 3600.0).max(0.0)
}

fn pending(
    context: &Context<'_>,
    pod: &Pod,
    me: ObjectRef,
    asks: &BTreeMap<String, f64>,
) -> Pending {
    let owner = owner(context, pod, &me);
    let reason = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
        .and_then(|c| c.message.clone().or_else(|| c.reason.clone()));
    let gpus = asks
        .iter()
        .filter_map(|(r, q)| Sharing::default().devices(r, *q))
        .sum();
    Pending {
        pod: me,
        team: owner.team,
        endpoint: owner.endpoint,
        accelerators: describe(asks),
        gpus,
        reason,
    }
}

/// Records a pod on a GPU node that asks for no accelerator. Node agents (DaemonSet and static
/// pods) belong on every node and are only counted.
fn no_gpu(context: &Context<'_>, pod: &Pod, me: &ObjectRef, node_name: &str, found: &mut Found) {
    let Some(node) = context.nodes.get(node_name).filter(|n| n.is_gpu) else {
        return;
    };
    let workload = context.top_owner(pod);
    let is_agent = workload
        .as_ref()
        .is_some_and(|w| w.kind == "DaemonSet" || w.kind == "Node")
        || pod.annotation("kubernetes.io/config.mirror").is_some()
        || selected_by_daemon_set(context, pod);
    if is_agent {
        found.node_agents += 1;
        return;
    }
    let owner = owner(context, pod, me);
    found.no_gpu_pods.push(NoGpuPod {
        pod: me.clone(),
        node: node_name.to_owned(),
        pool: node.pool.clone(),
        team: owner.team,
        workload,
        requests: pod
            .spec
            .as_ref()
            .map(cpu_and_memory)
            .unwrap_or_else(|| "none".into()),
    });
}

/// Whether a DaemonSet of the pod's namespace selects it (for dumps that dropped its owner
/// references).
fn selected_by_daemon_set(context: &Context<'_>, pod: &Pod) -> bool {
    let Some(labels) = pod.metadata.labels.as_ref() else {
        return false;
    };
    context
        .snapshot
        .in_namespace::<DaemonSet>(pod.namespace())
        .filter_map(|d| d.object.spec.as_ref())
        .any(|spec| {
            let selector = &spec.selector;
            (selector.match_labels.is_some() || selector.match_expressions.is_some())
                && selects(selector, labels)
        })
}

/// `cpu=2.5 memory=9Gi`: what the app containers request, summed.
fn cpu_and_memory(spec: &PodSpec) -> String {
    let mut cpu = 0.0;
    let mut memory = 0.0;
    for c in &spec.containers {
        let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        let get = |name: &str| requests.and_then(|r| r.get(name));
        cpu += get("cpu").and_then(quantity).unwrap_or(0.0);
        memory += get("memory").and_then(|q| bytes(&q.0)).unwrap_or(0.0);
    }
    if cpu == 0.0 && memory == 0.0 {
        return "none".into();
    }
    format!(
        "cpu={} memory={}Gi",
        super::trim_number(cpu),
        super::trim_number(memory / f64::from(1u32 << 30))
    )
}

/// A memory quantity in bytes: `8Gi`, `512Mi`, `1G`, `1000`.
fn bytes(text: &str) -> Option<f64> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let text = text.trim();
    for (suffix, factor) in SUFFIXES {
        if let Some(number) = text.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    text.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_and_cpu_are_summed_for_people() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "2", "memory": "1.5Gi"}}}
            ]
        }))
        .unwrap();
        assert_eq!(cpu_and_memory(&spec), "cpu=2.5 memory=2Gi");
        assert_eq!(bytes("1G"), Some(1e9));
    }

    #[test]
    fn hours_are_never_negative() {
        let start: k8s_openapi::jiff::Timestamp = "2026-03-01T00:00:00Z".parse().unwrap();
        let at: k8s_openapi::jiff::Timestamp = "2026-03-02T06:00:00Z".parse().unwrap();
        assert_eq!(hours_between(start, at), 30.0);
        assert_eq!(hours_between(at, start), 0.0);
    }
}
