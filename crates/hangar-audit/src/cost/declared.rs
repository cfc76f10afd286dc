//! Declared usage: with no pods in the input, each workload's pod template × replicas, priced on
//! the nodes it may run on (or on the GPU model its selector names).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use hangar_core::nodes::{can_schedule, required_terms};
use hangar_core::workload::{PodTemplate, Workload};
use hangar_core::{Endpoint, ObjectRef};
use serde_json::Value;

use super::devices::{
    GPU_MODEL_LABELS, INSTANCE_TYPE_LABELS, Sharing, base_model, describe, pod_accelerators,
};
use super::price::{Hardware, Quote, quote};
use super::{Context, Found, InputObject, NodeInfo, Owner, Usage, held};

pub(super) fn collect(context: &Context<'_>, warnings: &mut Vec<String>) -> Found {
    let mut found = Found::default();
    let mut served: HashSet<&ObjectRef> = HashSet::new();
    for endpoint in &context.inventory.endpoints {
        served.insert(&endpoint.object);
        served.extend(endpoint.workloads.iter());
        if endpoint.templates.is_empty() {
            warnings.push(format!(
                "{}: no pod template to read accelerators from, so it is not costed",
                endpoint.id
            ));
        }
        let owner = context.endpoint_owner(endpoint);
        for template in costed_templates(endpoint, &context.inventory.workloads) {
            if let Some((usage, on_gpu_node)) = line(context, template, &owner, false, warnings) {
                found.bill(usage, on_gpu_node, context.period());
            }
        }
    }
    for workload in &context.inventory.workloads {
        if served.contains(workload.object_ref()) {
            continue;
        }
        let mut labels = workload.meta.labels.clone().unwrap_or_default();
        labels.extend(workload.template.labels.clone());
        let owner = context.other_owner(
            &labels,
            &workload.object_ref().namespace,
            workload.object_ref(),
        );
        let batch = workload.runs_to_completion || runs_once(&workload.template);
        let Some((usage, on_gpu_node)) = line(context, &workload.template, &owner, batch, warnings)
        else {
            continue;
        };
        if batch {
            found.batch.push(usage);
        } else {
            found.bill(usage, on_gpu_node, context.period());
        }
    }
    found
}

/// A bare pod that is not restarted when it succeeds (`OnFailure`, `Never`) runs to completion.
fn runs_once(template: &PodTemplate) -> bool {
    template.owner.kind == "Pod"
        && matches!(
            template.spec.restart_policy.as_deref(),
            Some("OnFailure" | "Never")
        )
}

/// The templates to cost for an endpoint: those of its workloads in the input (a Deployment's;
/// a LeaderWorkerSet's leader and worker; the Deployments an operator created for a custom
/// resource, which carry the real replica counts), else the custom resource's own.
fn costed_templates<'a>(endpoint: &'a Endpoint, workloads: &'a [Workload]) -> Vec<&'a PodTemplate> {
    let members: HashSet<&ObjectRef> = endpoint
        .workloads
        .iter()
        .chain([&endpoint.object])
        .collect();
    let declared: Vec<&PodTemplate> = workloads
        .iter()
        .filter(|w| members.contains(w.object_ref()))
        .map(|w| &w.template)
        .collect();
    if declared.is_empty() {
        endpoint.templates.iter().collect()
    } else {
        declared
    }
}

/// The line item of one template × its replicas, and whether a GPU node of the input can run it.
fn line(
    context: &Context<'_>,
    template: &PodTemplate,
    owner: &Owner,
    batch: bool,
    warnings: &mut Vec<String>,
) -> Option<(Usage, bool)> {
    let subject = format!("{} {}", template.owner, template.spec_path);
    let (asks, problems) = pod_accelerators(&template.spec);
    warnings.extend(problems.into_iter().map(|p| format!("{subject}: {p}")));
    if template
        .spec
        .resource_claims
        .as_ref()
        .is_some_and(|c| !c.is_empty())
    {
        warnings.push(format!(
            "{subject}: devices allocated through resource claims (DRA) are not counted"
        ));
    }
    if asks.is_empty() {
        return None;
    }
    let (replicas, replicas_from) = replicas(context, template, &asks, warnings);
    if replicas == 0 {
        return None;
    }
    let place = placement(context, template, &asks);
    let gpus = held(&place.sharing, &asks, &subject, warnings) * f64::from(replicas);
    let hourly = place.quote.per_gpu_hour.map(|p| p * gpus);
    let usage = Usage {
        object: template.owner.clone(),
        template: Some(template.spec_path.clone()),
        replicas,
        replicas_from: Some(replicas_from),
        workload: None,
        inference: owner.endpoint.is_some(),
        what: owner.what.clone(),
        endpoint: owner.endpoint.clone(),
        namespace: template.owner.namespace.clone(),
        team: owner.team.clone(),
        model: owner.model.clone(),
        node: None,
        pool: place.pool,
        gpu_model: place.sharing.gpu_model.clone(),
        accelerators: describe(&asks),
        gpus,
        price_per_gpu_hour: place.quote.per_gpu_hour,
        price_source: place.quote.source,
        hourly,
        projected: if batch {
            None
        } else {
            hourly.map(|h| h * context.period())
        },
        started: None,
        running_hours: None,
        accrued: None,
    };
    Some((usage, place.on_gpu_node))
}

/// Where a declared pod would run, as far as its price and GPU sharing go.
struct Place {
    sharing: Sharing,
    quote: Quote,
    /// The pool, when every node it may run on is in one.
    pool: Option<String>,
    /// Whether a GPU node of the input can run it (else it is priced by what it names).
    on_gpu_node: bool,
}

/// Prices a template on the dearest GPU node of the input it may run on; with none, on the GPU
/// model or instance type its node selector or required affinity names; else the default.
fn placement(context: &Context<'_>, template: &PodTemplate, asks: &BTreeMap<String, f64>) -> Place {
    let candidates: Vec<&NodeInfo<'_>> = context
        .gpu_nodes()
        .filter(|n| asks.keys().any(|r| n.devices.resources.contains(r)))
        .filter(|n| can_schedule(template, n.node))
        .collect();
    let price_of = |n: &NodeInfo<'_>| n.quote.per_gpu_hour.unwrap_or(-1.0);
    let dearest = candidates.iter().max_by(|a, b| {
        price_of(a)
            .total_cmp(&price_of(b))
            .then_with(|| b.name.cmp(&a.name))
    });
    if let Some(node) = dearest {
        let pools: BTreeSet<&str> = candidates.iter().map(|n| n.pool.as_str()).collect();
        let source = if node.quote.per_gpu_hour.is_none() {
            node.quote.source.clone()
        } else if candidates.len() == 1 {
            format!(
                "{}, on {}, the one GPU node it may run on",
                node.quote.source, node.name
            )
        } else {
            format!(
                "{}, on {}, the dearest of the {} GPU nodes it may run on",
                node.quote.source,
                node.name,
                candidates.len()
            )
        };
        return Place {
            sharing: node.devices.sharing.clone(),
            quote: Quote {
                per_gpu_hour: node.quote.per_gpu_hour,
                source,
            },
            pool: (pools.len() == 1).then(|| node.pool.clone()),
            on_gpu_node: true,
        };
    }
    named_hardware(context, template)
}

/// The GPU models and instance types a template's node selector and required affinity name,
/// priced; the dearest alternative wins.
fn named_hardware(context: &Context<'_>, template: &PodTemplate) -> Place {
    let prices = &context.options.policy.gpu_prices;
    let mut models: Vec<(&str, String)> = Vec::new();
    let mut instance_types: Vec<String> = Vec::new();
    for (key, value) in named_values(template) {
        if let Some(label) = GPU_MODEL_LABELS.iter().find(|l| **l == key) {
            models.push((label, base_model(&value).to_owned()));
        } else if INSTANCE_TYPE_LABELS.contains(&key.as_str()) {
            instance_types.push(value);
        }
    }
    let mut alternatives: Vec<(Option<String>, Quote)> = models
        .iter()
        .map(|(label, value)| {
            let hardware = Hardware {
                models: &[(*label, value.as_str())],
                ..Hardware::default()
            };
            (Some(value.clone()), quote(prices, hardware))
        })
        .collect();
    for instance_type in &instance_types {
        let devices = context
            .nodes
            .values()
            .filter(|n| n.instance_type.as_deref() == Some(instance_type))
            .map(|n| n.devices.devices)
            .fold(None, |max: Option<f64>, d| {
                Some(max.map_or(d, |m| m.max(d)))
            });
        let hardware = Hardware {
            instance_type: Some(instance_type),
            devices_per_node: devices,
            ..Hardware::default()
        };
        alternatives.push((None, quote(prices, hardware)));
    }
    let chosen = alternatives.into_iter().max_by(|(_, a), (_, b)| {
        a.per_gpu_hour
            .unwrap_or(-1.0)
            .total_cmp(&b.per_gpu_hour.unwrap_or(-1.0))
    });
    let (gpu_model, quote) = match chosen {
        Some((model, q)) if q.per_gpu_hour.is_some() => {
            let source = format!("{}, named by its node selector or affinity", q.source);
            (model, Quote { source, ..q })
        }
        Some((model, q)) => (model, q),
        None => {
            let q = quote(prices, Hardware::default());
            let source = if context.gpu_nodes().next().is_some() {
                format!("{}; no GPU node of the input can run it", q.source)
            } else {
                format!(
                    "{}; no GPU model is named and no GPU nodes are in the input",
                    q.source
                )
            };
            (None, Quote { source, ..q })
        }
    };
    Place {
        sharing: Sharing {
            gpu_model,
            ..Sharing::default()
        },
        quote,
        pool: None,
        on_gpu_node: false,
    }
}

/// Label keys and values a template requires of its node: its node selector, and the `In`
/// values of its required node affinity.
fn named_values(template: &PodTemplate) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = template
        .spec
        .node_selector
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for term in required_terms(template) {
        for r in term.match_expressions.iter().flatten() {
            if r.operator == "In" {
                out.extend(
                    r.values
                        .iter()
                        .flatten()
                        .map(|v| (r.key.clone(), v.clone())),
                );
            }
        }
    }
    out
}

/// How many pods a template runs, and where that was read.
fn replicas(
    context: &Context<'_>,
    template: &PodTemplate,
    asks: &BTreeMap<String, f64>,
    warnings: &mut Vec<String>,
) -> (u32, String) {
    let owner = &template.owner;
    if owner.kind == "Pod" {
        return (1, "a pod".into());
    }
    let count = |value: Option<i32>, path: &str, warnings: &mut Vec<String>| match value {
        Some(v) => (
            pod_count(i128::from(v), owner, path, warnings),
            path.to_owned(),
        ),
        None => (1, format!("{path} unset: 1")),
    };
    let object = context.object(&owner.kind, &owner.namespace, &owner.name);
    match object {
        Some(InputObject::Deployment(d)) => count(
            d.spec.as_ref().and_then(|s| s.replicas),
            "spec.replicas",
            warnings,
        ),
        Some(InputObject::StatefulSet(s)) => count(
            s.spec.as_ref().and_then(|s| s.replicas),
            "spec.replicas",
            warnings,
        ),
        Some(InputObject::ReplicaSet(r)) => count(
            r.spec.as_ref().and_then(|s| s.replicas),
            "spec.replicas",
            warnings,
        ),
        Some(InputObject::Job(j)) => count(
            j.spec.as_ref().and_then(|s| s.parallelism),
            "spec.parallelism",
            warnings,
        ),
        Some(InputObject::CronJob(c)) => count(
            c.spec
                .as_ref()
                .and_then(|s| s.job_template.spec.as_ref()?.parallelism),
            "spec.jobTemplate.spec.parallelism",
            warnings,
        ),
        Some(InputObject::DaemonSet(_)) => daemon_set_pods(context, template, asks),
        Some(InputObject::Other(o)) => custom_resource_replicas(&o.body, template, warnings),
        None => (1, "one pod assumed".into()),
    }
}

/// A pod count read from a manifest (`field` of `object`), as a `u32`: below zero counts as
/// none and beyond `u32::MAX` as `u32::MAX`, each with a warning, since neither is a real count.
fn pod_count(value: i128, object: &ObjectRef, field: &str, warnings: &mut Vec<String>) -> u32 {
    match u32::try_from(value) {
        Ok(count) => count,
        Err(_) if value < 0 => {
            warnings.push(format!(
                "{object}: {field} is {value}, below zero: counted as no pods"
            ));
            0
        }
        Err(_) => {
            warnings.push(format!(
                "{object}: {field} comes to {value}, more pods than Hangar counts: counted as {}",
                u32::MAX
            ));
            u32::MAX
        }
    }
}

/// A DaemonSet runs a pod on every node it may land on that offers what it asks for.
fn daemon_set_pods(
    context: &Context<'_>,
    template: &PodTemplate,
    asks: &BTreeMap<String, f64>,
) -> (u32, String) {
    if context.nodes.is_empty() {
        return (
            1,
            "a DaemonSet: one pod per node; no nodes in the input".into(),
        );
    }
    let nodes = context
        .nodes
        .values()
        .filter(|n| asks.keys().any(|r| n.devices.resources.contains(r)))
        .filter(|n| can_schedule(template, n.node))
        .count();
    (
        u32::try_from(nodes).unwrap_or(u32::MAX),
        "a DaemonSet: one pod per node it may run on".into(),
    )
}

/// Replicas of the pods a serving operator creates from its custom resource. Products of two
/// `i64` fields are taken in `i128`, where they cannot overflow.
fn custom_resource_replicas(
    body: &Value,
    template: &PodTemplate,
    warnings: &mut Vec<String>,
) -> (u32, String) {
    let object = &template.owner;
    let path = template.spec_path.as_str();
    let int = |p: &str| at(body, p).and_then(Value::as_i64);
    let mut counted =
        |value: i128, field: String| (pod_count(value, object, &field, warnings), field);
    match object.kind.as_str() {
        "LeaderWorkerSet" => {
            let groups = int("spec.replicas").unwrap_or(1);
            let size = int("spec.leaderWorkerTemplate.size").unwrap_or(1).max(1);
            let has_leader = at(body, "spec.leaderWorkerTemplate.leaderTemplate").is_some();
            if path.starts_with("spec.leaderWorkerTemplate.leaderTemplate") {
                counted(groups.into(), "spec.replicas (one leader per group)".into())
            } else if has_leader {
                counted(
                    i128::from(groups) * i128::from(size - 1),
                    "spec.replicas × (spec.leaderWorkerTemplate.size − 1)".into(),
                )
            } else {
                counted(
                    i128::from(groups) * i128::from(size),
                    "spec.replicas × spec.leaderWorkerTemplate.size".into(),
                )
            }
        }
        "InferenceService" => {
            let component = path.split('.').nth(1).unwrap_or("predictor");
            read(body, &format!("spec.{component}.minReplicas"), counted)
        }
        "RayService" => {
            if path.contains("headGroupSpec") {
                return (1, "the Ray head".into());
            }
            let group = path
                .strip_prefix("spec.rayClusterConfig.workerGroupSpecs[")
                .and_then(|rest| rest.split(']').next())
                .unwrap_or("0");
            let base = format!("spec.rayClusterConfig.workerGroupSpecs[{group}]");
            let hosts = int(&format!("{base}.numOfHosts"));
            let (replicas, mut field) = ["replicas", "minReplicas"]
                .iter()
                .find_map(|f| Some((int(&format!("{base}.{f}"))?, format!("{base}.{f}"))))
                .unwrap_or((1, format!("{base}.replicas unset: 1")));
            if hosts.is_some() {
                field.push_str(" × numOfHosts");
            }
            counted(
                i128::from(replicas) * i128::from(hosts.unwrap_or(1).max(1)),
                field,
            )
        }
        "SeldonDeployment" => {
            let predictor = path
                .strip_prefix("spec.predictors[")
                .and_then(|rest| rest.split(']').next())
                .unwrap_or("0");
            let component_path = path
                .split(".componentSpecs[")
                .nth(1)
                .and_then(|r| r.split(']').next())
                .map(|c| format!("spec.predictors[{predictor}].componentSpecs[{c}].replicas"));
            match component_path {
                Some(p) if int(&p).is_some() => read(body, &p, counted),
                _ => read(
                    body,
                    &format!("spec.predictors[{predictor}].replicas"),
                    counted,
                ),
            }
        }
        "NIMService" if at(body, "spec.scale.enabled").and_then(Value::as_bool) == Some(true) => {
            read(body, "spec.scale.hpa.minReplicas", counted)
        }
        "NIMService" | "LLMInferenceService" => read(body, "spec.replicas", counted),
        _ => (1, "one pod assumed".into()),
    }
}

/// The count at `path`, or one pod when it is unset.
fn read(
    body: &Value,
    path: &str,
    mut counted: impl FnMut(i128, String) -> (u32, String),
) -> (u32, String) {
    match at(body, path).and_then(Value::as_i64) {
        Some(v) => counted(v.into(), path.to_owned()),
        None => (1, format!("{path} unset: 1")),
    }
}

/// The value at a dotted path that may index arrays: `spec.predictors[0].replicas`.
fn at<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(value, |v, segment| {
        let mut parts = segment.split('[');
        let key = parts.next()?;
        let mut v = if key.is_empty() { v } else { v.get(key)? };
        for index in parts {
            v = v.get(index.strip_suffix(']')?.parse::<usize>().ok()?)?;
        }
        Some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_index_arrays() {
        let body =
            json!({"spec": {"predictors": [{"replicas": 2, "componentSpecs": [{"replicas": 3}]}]}});
        assert_eq!(at(&body, "spec.predictors[0].replicas"), Some(&json!(2)));
        assert_eq!(
            at(&body, "spec.predictors[0].componentSpecs[0].replicas"),
            Some(&json!(3))
        );
        assert_eq!(at(&body, "spec.predictors[1].replicas"), None);
    }
}
