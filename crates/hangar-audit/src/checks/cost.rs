//! CST: whether GPU spend can be attributed, capped and measured.

use std::collections::{BTreeMap, HashMap, HashSet};

use hangar_core::image::ImageRef;
use hangar_core::inventory::{Endpoint, accelerator_requests, is_accelerator};
use hangar_core::nodes::is_gpu_node;
use hangar_core::{Inventory, KubeObject, Located, ObjectRef, Origin, Policy, Severity, Snapshot};
use k8s_openapi::api::core::v1::Namespace;

use crate::check::{Check, Family, Finding, Run, always};

pub(crate) const CHECKS: &[Check] = &[
    Check {
        id: "CST-001",
        family: Family::Cost,
        title: "GPU workload has no team or model label",
        severity: Severity::Low,
        rationale: "GPU hours are the largest inference cost; without a team and a model label on the pods, usage cannot be charged back or compared per model (SOC 2 A1.1 capacity).",
        remediation: "Label the workload and its pod template with a team label from the policy (e.g. `team: search`, or on the namespace) and `hangar.dev/model: <model name>`.",
        run: Run::Cluster(missing_cost_labels),
        applies: always,
    },
    Check {
        id: "CST-002",
        family: Family::Cost,
        title: "Namespace runs GPU workloads without a GPU ResourceQuota",
        severity: Severity::Medium,
        rationale: "Without a quota on accelerators one team (or a runaway autoscaler) can take every GPU in the cluster, starving production inference (OWASP LLM10 unbounded consumption).",
        remediation: "Add a ResourceQuota to the namespace with `hard: {requests.nvidia.com/gpu: \"<n>\"}` (or the matching key for the accelerator used).",
        run: Run::Cluster(no_gpu_quota),
        applies: always,
    },
    Check {
        id: "CST-003",
        family: Family::Cost,
        title: "GPUs present but no GPU metrics exporter",
        severity: Severity::Low,
        rationale: "Without DCGM metrics nobody sees GPU utilisation, memory or errors per pod: idle GPUs are not reclaimed and failing ones (Xid errors) are not noticed (SOC 2 CC7.2).",
        remediation: "Deploy NVIDIA's dcgm-exporter (enabled by default in the GPU operator's ClusterPolicy) and a ServiceMonitor or PodMonitor that scrapes it.",
        run: Run::Cluster(no_gpu_metrics),
        applies: always,
    },
];

// Only `hangar.dev/model` names the model: `app.kubernetes.io/name` names the application,
// often just the server such as `vllm`.
use hangar_core::inventory::MODEL_LABEL;

/// Something that consumes GPUs: an inference endpoint (with all its workloads), or a workload
/// that belongs to no endpoint (training Jobs, notebooks…).
struct GpuConsumer<'a> {
    object: ObjectRef,
    origin: Origin,
    endpoint: Option<&'a Endpoint>,
    /// Labels of the object and of its pod templates.
    labels: Vec<BTreeMap<String, String>>,
    /// `resource=quantity`, as `accelerator_requests` spells them.
    accelerators: Vec<String>,
}

impl GpuConsumer<'_> {
    fn namespace(&self) -> &str {
        &self.object.namespace
    }

    fn label(&self, key: &str) -> bool {
        self.labels.iter().any(|l| l.contains_key(key))
    }

    fn finding(&self, check: &'static str, field: Option<String>, message: String) -> Finding {
        match self.endpoint {
            Some(endpoint) => Finding::on_endpoint(check, endpoint, field, message),
            None => Finding::on(check, self.object.clone(), &self.origin, field, message),
        }
    }
}

fn consumers<'a>(_: &Snapshot, inventory: &'a Inventory) -> Vec<GpuConsumer<'a>> {
    let mut out: Vec<GpuConsumer<'a>> = inventory
        .endpoints
        .iter()
        .filter(|e| !e.placement.accelerators.is_empty())
        .map(|e| GpuConsumer {
            object: e.object.clone(),
            origin: e.origin.clone(),
            endpoint: Some(e),
            labels: std::iter::once(e.labels.clone())
                .chain(e.templates.iter().map(|t| t.labels.clone()))
                .collect(),
            accelerators: e.placement.accelerators.clone(),
        })
        .collect();
    let served: HashSet<&ObjectRef> = inventory
        .endpoints
        .iter()
        .flat_map(|e| e.workloads.iter().chain([&e.object]))
        .collect();
    let mut by_object: HashMap<ObjectRef, usize> = HashMap::new();
    for w in inventory.workloads.iter() {
        let accelerators = accelerator_requests(&w.template);
        if accelerators.is_empty() || served.contains(w.object_ref()) {
            continue;
        }
        let object = w.object_ref().clone();
        // A LeaderWorkerSet yields two templates: one consumer.
        if let Some(&i) = by_object.get(&object) {
            let existing = &mut out[i];
            existing.labels.push(w.template.labels.clone());
            for a in accelerators {
                if !existing.accelerators.contains(&a) {
                    existing.accelerators.push(a);
                }
            }
            continue;
        }
        by_object.insert(object.clone(), out.len());
        out.push(GpuConsumer {
            object,
            origin: w.template.origin.clone(),
            endpoint: None,
            labels: vec![
                w.meta.labels.clone().unwrap_or_default(),
                w.template.labels.clone(),
            ],
            accelerators,
        });
    }
    out
}

fn namespace<'a>(snapshot: &'a Snapshot, name: &str) -> Option<&'a Located<Namespace>> {
    snapshot.find::<Namespace>("", name)
}

fn missing_cost_labels(
    snapshot: &Snapshot,
    inventory: &Inventory,
    policy: &Policy,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for consumer in consumers(snapshot, inventory) {
        let ns = namespace(snapshot, consumer.namespace());
        let has_team = policy
            .team_labels
            .iter()
            .any(|k| consumer.label(k) || ns.is_some_and(|n| n.object.label(k).is_some()));
        let has_model = consumer.label(MODEL_LABEL);
        let mut missing = Vec::new();
        if !has_team {
            missing.push(format!(
                "no team label ({}) on the object, its pod template or namespace `{}`",
                policy.team_labels.join(", "),
                consumer.namespace()
            ));
        }
        if !has_model {
            missing.push(format!("no model label (`{MODEL_LABEL}`)"));
        }
        if missing.is_empty() {
            continue;
        }
        let message = format!(
            "`{}` uses {} but has {}",
            consumer.object,
            consumer.accelerators.join(", "),
            missing.join(" and ")
        );
        findings.push(consumer.finding("CST-001", Some("metadata.labels".into()), message));
    }
    findings
}

/// Whether a quota key caps an accelerator: `requests.nvidia.com/gpu`, `limits.amd.com/gpu`, or a
/// DRA device class (`<class>.deviceclass.resource.k8s.io/devices`).
fn caps_accelerator(key: &str) -> bool {
    let resource = key
        .strip_prefix("requests.")
        .or_else(|| key.strip_prefix("limits."))
        .unwrap_or(key);
    is_accelerator(resource) || key.ends_with(".deviceclass.resource.k8s.io/devices")
}

fn no_gpu_quota(snapshot: &Snapshot, inventory: &Inventory, _: &Policy) -> Vec<Finding> {
    let mut by_namespace: BTreeMap<String, Vec<GpuConsumer>> = BTreeMap::new();
    for consumer in consumers(snapshot, inventory) {
        by_namespace
            .entry(consumer.namespace().to_owned())
            .or_default()
            .push(consumer);
    }
    let mut findings = Vec::new();
    for (name, members) in by_namespace {
        let quotas: Vec<_> = snapshot
            .resource_quotas
            .iter()
            .filter(|q| q.object.namespace() == name)
            .collect();
        let capped = quotas.iter().any(|q| {
            q.object
                .spec
                .as_ref()
                .and_then(|s| s.hard.as_ref())
                .is_some_and(|hard| hard.keys().any(|k| caps_accelerator(k)))
        });
        if capped {
            continue;
        }
        let Some(first) = members.first() else {
            continue;
        };
        let mut resources: Vec<String> = Vec::new();
        for m in &members {
            for a in &m.accelerators {
                let resource = a.split_once('=').map_or(a.as_str(), |(r, _)| r);
                let key = if resource == "dra-resource-claim" {
                    "<class>.deviceclass.resource.k8s.io/devices".to_owned()
                } else {
                    format!("requests.{resource}")
                };
                if !resources.contains(&key) {
                    resources.push(key);
                }
            }
        }
        let users: Vec<String> = members.iter().map(|m| format!("`{}`", m.object)).collect();
        let existing = if quotas.is_empty() {
            "no ResourceQuota".to_owned()
        } else {
            let names: Vec<String> = quotas
                .iter()
                .map(|q| format!("`{}`", q.object.name()))
                .collect();
            format!("ResourceQuota {} but none", names.join(", "))
        };
        let shown = if name.is_empty() {
            "(none set)".to_owned()
        } else {
            name.clone()
        };
        let message = format!(
            "namespace `{shown}` runs GPU workloads ({}) with {existing} capping {}",
            users.join(", "),
            resources.join(", ")
        );
        let finding = match namespace(snapshot, &name) {
            Some(ns) => Finding::on("CST-002", ns.object_ref(), &ns.origin, None, message),
            None => first.finding("CST-002", None, message),
        };
        findings.push(finding);
    }
    findings
}

/// Whether the snapshot shows a DCGM exporter: its image in any workload, a ServiceMonitor or
/// PodMonitor about it, or the GPU operator's ClusterPolicy with `dcgmExporter` enabled.
fn has_gpu_exporter(snapshot: &Snapshot, inventory: &Inventory) -> bool {
    let image = inventory.workloads.iter().any(|w| {
        w.template.containers().any(|(_, c)| {
            ImageRef::parse(c.image.as_deref().unwrap_or_default())
                .path
                .contains("dcgm-exporter")
        })
    });
    let monitor = snapshot.others.iter().any(|o| {
        let o = &o.object;
        matches!(o.kind.as_str(), "ServiceMonitor" | "PodMonitor")
            && (o.name().to_ascii_lowercase().contains("dcgm")
                || o.get("spec")
                    .is_some_and(|s| s.to_string().to_ascii_lowercase().contains("dcgm")))
    });
    let operator = snapshot.others.iter().any(|o| {
        let o = &o.object;
        o.kind == "ClusterPolicy"
            && o.group() == "nvidia.com"
            && o.get("spec.dcgmExporter").is_some()
            && o.get("spec.dcgmExporter.enabled").and_then(|v| v.as_bool()) != Some(false)
    });
    image || monitor || operator
}

fn no_gpu_metrics(snapshot: &Snapshot, inventory: &Inventory, policy: &Policy) -> Vec<Finding> {
    let consumers = consumers(snapshot, inventory);
    let gpu_nodes: Vec<_> = snapshot
        .nodes
        .iter()
        .filter(|n| is_gpu_node(&n.object, policy))
        .collect();
    if (consumers.is_empty() && gpu_nodes.is_empty()) || has_gpu_exporter(snapshot, inventory) {
        return Vec::new();
    }
    let mut present = Vec::new();
    if !consumers.is_empty() {
        present.push(format!("{} GPU workload(s)", consumers.len()));
    }
    if !gpu_nodes.is_empty() {
        present.push(format!("{} GPU node(s)", gpu_nodes.len()));
    }
    let message = format!(
        "{} in the input but no DCGM exporter (no dcgm-exporter image, no ServiceMonitor/PodMonitor for DCGM, no GPU operator ClusterPolicy enabling it)",
        present.join(" and ")
    );
    let finding = match (consumers.first(), gpu_nodes.first()) {
        (Some(c), _) => c.finding("CST-003", None, message),
        (None, Some(n)) => Finding::on("CST-003", n.object_ref(), &n.origin, None, message),
        (None, None) => return Vec::new(),
    };
    vec![finding]
}

#[cfg(test)]
mod tests {
    use hangar_core::Policy;

    use crate::checks::testing::{run, run_with, vllm};

    /// The vLLM fixture with labels on the Deployment.
    fn labelled(labels: &str) -> String {
        vllm("").replace(
            "metadata: {name: chat, namespace: ml}",
            &format!("metadata: {{name: chat, namespace: ml, labels: {{{labels}}}}}"),
        )
    }

    const TRAINING_JOB: &str = r#"apiVersion: batch/v1
kind: Job
metadata: {name: finetune, namespace: ml}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: t, image: "pytorch/pytorch:2.4", command: [torchrun, train.py], resources: {limits: {nvidia.com/gpu: "8"}}}]
"#;

    #[test]
    fn cst_001_names_the_missing_labels() {
        let findings = run("CST-001", &vllm(""));
        assert_eq!(findings.len(), 1);
        assert!(
            findings[0]
                .message
                .starts_with("`Deployment/ml/chat` uses nvidia.com/gpu=1 but has no team label")
        );
        assert!(
            findings[0]
                .message
                .contains("and no model label (`hangar.dev/model`)")
        );
        let findings = run("CST-001", &labelled("team: search"));
        assert_eq!(findings.len(), 1);
        assert!(!findings[0].message.contains("team label"));
    }

    #[test]
    fn cst_001_covers_gpu_workloads_that_are_not_endpoints() {
        let findings = run("CST-001", TRAINING_JOB);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].object.kind, "Job");
        assert_eq!(findings[0].endpoint, None);
    }

    #[test]
    fn cst_001_is_quiet_with_a_namespace_team_and_a_model_label() {
        let namespace =
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: ml, labels: {cost-center: cc-42}}\n";
        let yaml = format!(
            "{namespace}---\n{}",
            labelled("hangar.dev/model: llama-3.1-8b")
        );
        assert!(run("CST-001", &yaml).is_empty());
        // The policy decides which labels name the team.
        let policy = Policy {
            team_labels: vec!["squad".into()],
            ..Policy::default()
        };
        assert_eq!(run_with("CST-001", &yaml, &policy).len(), 1);
    }

    const GPU_QUOTA: &str = "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: gpus, namespace: ml}\nspec: {hard: {requests.nvidia.com/gpu: \"4\"}}\n";

    #[test]
    fn cst_002_fires_once_per_namespace_without_a_gpu_quota() {
        let cpu_quota = GPU_QUOTA.replace("requests.nvidia.com/gpu", "requests.cpu");
        let yaml = format!("{}---\n{TRAINING_JOB}---\n{cpu_quota}", vllm(""));
        let findings = run("CST-002", &yaml);
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].message,
            "namespace `ml` runs GPU workloads (`Deployment/ml/chat`, `Job/ml/finetune`) with ResourceQuota `gpus` but none capping requests.nvidia.com/gpu"
        );
    }

    #[test]
    fn cst_002_is_quiet_with_an_accelerator_quota() {
        let yaml = format!("{}---\n{GPU_QUOTA}", vllm(""));
        assert!(run("CST-002", &yaml).is_empty());
        // A quota in another namespace does not count.
        let elsewhere = GPU_QUOTA.replace("namespace: ml", "namespace: research");
        assert_eq!(
            run("CST-002", &format!("{}---\n{elsewhere}", vllm(""))).len(),
            1
        );
    }

    #[test]
    fn cst_003_fires_once_when_gpus_run_unmonitored() {
        let yaml = format!("{}---\n{TRAINING_JOB}", vllm(""));
        let findings = run("CST-003", &yaml);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].object.name, "chat");
        assert!(
            findings[0]
                .message
                .starts_with("2 GPU workload(s) in the input but no DCGM exporter")
        );
        let node = "apiVersion: v1\nkind: Node\nmetadata: {name: gpu-a}\nstatus: {allocatable: {nvidia.com/gpu: \"8\"}}\n";
        let findings = run("CST-003", node);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].object.kind, "Node");
    }

    #[test]
    fn cst_003_is_quiet_with_an_exporter_or_without_gpus() {
        let exporter = r#"apiVersion: apps/v1
kind: DaemonSet
metadata: {name: dcgm-exporter, namespace: gpu-operator}
spec:
  template:
    spec:
      containers: [{name: exporter, image: "nvcr.io/nvidia/k8s/dcgm-exporter:4.1.1-4.0.4-ubuntu22.04"}]
"#;
        assert!(run("CST-003", &format!("{}---\n{exporter}", vllm(""))).is_empty());
        let monitor = "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: gpu-metrics, namespace: monitoring}\nspec: {selector: {matchLabels: {app: nvidia-dcgm-exporter}}}\n";
        assert!(run("CST-003", &format!("{}---\n{monitor}", vllm(""))).is_empty());
        let cpu_only = vllm("").replace(
            "resources: {limits: {nvidia.com/gpu: \"1\"}}",
            "resources: {}",
        );
        assert!(run("CST-003", &cpu_only).is_empty());
    }
}
