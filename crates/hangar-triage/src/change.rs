//! Model or infrastructure: what changed, and when, before an endpoint started failing.
//!
//! Two timelines are laid side by side: the endpoint's own (ModelRelease history, Deployment
//! revisions: model, image, arguments) and its nodes' (a node joining, the kubelet restarting,
//! the GPU driver's pod restarting). The change closest before the first symptom is the first
//! suspect; the others are listed so the engineer can judge.

use std::collections::BTreeMap;

use hangar_core::inventory::command_line;
use hangar_core::snapshot::{KubeObject, Located};
use hangar_core::{Endpoint, ObjectRef, Snapshot};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Container, Pod};
use serde::Serialize;
use serde_json::Value;

use crate::evidence::{ContainerState, EventRecord, PodEvidence};
use crate::verdict::Side;

/// One change on either timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// When it took effect (RFC 3339).
    pub at: String,
    /// `model`, `image`, `config`, `node`, `kubelet`, `driver`.
    pub kind: &'static str,
    /// Whose change it was: the endpoint's own (`model`, `configuration`) or the platform's
    /// (`infrastructure`).
    pub side: Side,
    /// What changed, in a sentence.
    pub detail: String,
    /// Where it was read.
    pub source: String,
}

/// The two timelines against the first symptom.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeReport {
    /// The earliest sign of trouble among the failing pods (RFC 3339), if any was dated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symptoms_since: Option<String>,
    /// The change closest before the first symptom.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closest: Option<Change>,
    /// Every dated change found, oldest first.
    pub changes: Vec<Change>,
    /// One or two sentences: what to suspect first, and why.
    pub conclusion: String,
}

/// Relates the failing pods' first symptom to the changes the snapshot records.
pub fn correlate(
    snapshot: &Snapshot,
    endpoint: &Endpoint,
    failing: &[&PodEvidence],
) -> ChangeReport {
    let mut changes = release_history(snapshot, endpoint);
    changes.extend(revisions(snapshot, endpoint));
    let nodes: Vec<&str> = {
        let mut names: Vec<&str> = failing
            .iter()
            .filter_map(|p| p.node.as_ref().map(|n| n.name.as_str()))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    };
    for pod in failing {
        node_changes(pod, &mut changes);
    }
    driver_restarts(snapshot, &nodes, &mut changes);
    changes.retain(|c| parse(&c.at).is_some());
    changes.sort_by_key(|c| parse(&c.at));
    changes.dedup();

    let symptoms = failing.iter().filter_map(|p| first_symptom(p)).min();
    let closest = symptoms.and_then(|since| closest_before(&changes, since).cloned());
    let conclusion = conclude(symptoms, closest.as_ref(), &changes);
    ChangeReport {
        symptoms_since: symptoms.map(|t| t.to_string()),
        closest,
        changes,
        conclusion,
    }
}

/// How long before the first symptom a change can still be the suspect: a node that joined a
/// month before the failure did not cause it.
const SUSPECT_WINDOW_SECONDS: i64 = 24 * 3600;

/// The latest change at or before `since`, if it falls within the suspect window.
fn closest_before(changes: &[Change], since: Timestamp) -> Option<&Change> {
    changes.iter().rfind(|c| {
        parse(&c.at).is_some_and(|at| {
            at <= since && since.as_second() - at.as_second() <= SUSPECT_WINDOW_SECONDS
        })
    })
}

fn parse(text: &str) -> Option<Timestamp> {
    text.parse().ok()
}

fn conclude(symptoms: Option<Timestamp>, closest: Option<&Change>, changes: &[Change]) -> String {
    let Some(since) = symptoms else {
        return "No dated symptom: the failing pods carry no termination time or dated warning \
                event, so changes cannot be ordered against the failure."
            .into();
    };
    let Some(change) = closest else {
        let earlier = changes
            .iter()
            .any(|c| parse(&c.at).is_some_and(|at| at <= since));
        return if earlier {
            format!(
                "Symptoms since {since}; nothing recorded changed in the 24 hours before: look \
                 beyond the recorded changes (load, upstream dependencies, data)."
            )
        } else if changes.is_empty() {
            format!(
                "Symptoms since {since}; the input records no dated change to the model, its \
                 configuration or its nodes."
            )
        } else {
            format!(
                "Symptoms since {since}, before any recorded change: look beyond what changed \
                 (load, upstream dependencies, data)."
            )
        };
    };
    let gap = parse(&change.at)
        .map(|at| minutes_between(at, since))
        .unwrap_or_default();
    let suspect = match change.side {
        Side::Model => "the model release",
        Side::Configuration => "the endpoint's own change",
        Side::Infrastructure => "the infrastructure",
    };
    format!(
        "Symptoms since {since}; the closest earlier change is {} ({}, {gap} before): suspect \
         {suspect} first.",
        change.detail, change.at
    )
}

fn minutes_between(from: Timestamp, to: Timestamp) -> String {
    let seconds = to.as_second() - from.as_second();
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 2 * 86400 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86400),
    }
}

/// Node warnings the kubelet repeats for weeks on healthy nodes (a disk it cannot measure, image
/// garbage collection that cannot reach its target): they date no failure.
const CHRONIC_NODE_WARNINGS: &[&str] = &[
    "FreeDiskSpaceFailed",
    "InvalidDiskCapacity",
    "ImageGCFailed",
];

/// How long before the pod's own first symptom a node warning may begin and still be part of
/// the same trouble (an Xid an hour before the crash).
const NODE_LEAD_SECONDS: i64 = 3600;

/// The earliest dated sign of trouble on a pod: a container's termination, a warning event about
/// it, or a warning about its node that began shortly before those.
fn first_symptom(pod: &PodEvidence) -> Option<Timestamp> {
    let terminations = pod.containers.iter().flat_map(|c| {
        [&c.state, &c.last_state]
            .into_iter()
            .flatten()
            .filter_map(|s| match s {
                ContainerState::Terminated {
                    finished_at,
                    exit_code,
                    ..
                } if *exit_code != 0 => finished_at.as_deref(),
                _ => None,
            })
    });
    let warnings = warning_spans(&pod.events).map(|(first, _)| first);
    let own = terminations.filter_map(parse).chain(warnings).min();
    // A node warning is where the trouble began when it began within the hour before the pod's
    // own, or is still firing then having begun within the day (Xid errors since 02:00, the pod
    // down at 05:00). One recurring for weeks is the node's background: it would hide last
    // night's revision.
    let before_own =
        |at: Timestamp, most: i64| own.is_none_or(|own| own.as_second() - at.as_second() <= most);
    let node = warning_spans(&pod.node_events)
        .filter(move |(first, last)| {
            before_own(*first, NODE_LEAD_SECONDS)
                || (before_own(*last, NODE_LEAD_SECONDS)
                    && before_own(*first, SUSPECT_WINDOW_SECONDS))
        })
        .map(|(first, _)| first);
    own.into_iter().chain(node).min()
}

/// When each warning among `events` began and was last seen, chronic node noise left out.
fn warning_spans(events: &[EventRecord]) -> impl Iterator<Item = (Timestamp, Timestamp)> + '_ {
    events
        .iter()
        .filter(|e| e.kind == "Warning" && !CHRONIC_NODE_WARNINGS.contains(&e.reason.as_str()))
        .filter_map(|e| {
            let first = parse(e.first_seen.as_deref().or(e.last_seen.as_deref())?)?;
            let last = e.last_seen.as_deref().and_then(parse).unwrap_or(first);
            Some((first, last.max(first)))
        })
}

/// `ModelRelease` history (Hangar's release CRD), read defensively: entries of
/// `status.history` with a version and a time.
fn release_history(snapshot: &Snapshot, endpoint: &Endpoint) -> Vec<Change> {
    let mut out = Vec::new();
    for release in snapshot
        .others
        .iter()
        .filter(|o| o.object.kind == "ModelRelease" && o.object.group() == "hangar.dev")
    {
        let object = &release.object;
        if object.namespace() != endpoint.namespace() {
            continue;
        }
        let target = object
            .str_at("spec.target.name")
            .or_else(|| object.str_at("spec.target"));
        if target != Some(endpoint.object.name.as_str()) {
            continue;
        }
        let Some(Value::Array(history)) = object.get("status.history") else {
            continue;
        };
        for entry in history {
            let text = |key: &str| entry.get(key).and_then(Value::as_str);
            let Some(at) = ["promotedAt", "at", "time", "completedAt"]
                .into_iter()
                .find_map(text)
            else {
                continue;
            };
            let version = text("version").or_else(|| text("digest")).unwrap_or("?");
            out.push(Change {
                at: at.to_owned(),
                kind: "model",
                side: Side::Model,
                detail: format!("ModelRelease {} moved to {version}", object.name()),
                source: release.origin.to_string(),
            });
        }
    }
    out
}

/// Deployment revisions: each ReplicaSet the endpoint's Deployments own, compared with the one
/// before it.
fn revisions(snapshot: &Snapshot, endpoint: &Endpoint) -> Vec<Change> {
    let mut out = Vec::new();
    for owner in endpoint.workloads.iter().filter(|w| w.kind == "Deployment") {
        let mut sets: Vec<(u64, &Located<ReplicaSet>)> = snapshot
            .in_namespace::<ReplicaSet>(&owner.namespace)
            .filter(|rs| owned_by(&rs.object.metadata, owner))
            .map(|rs| {
                let revision = rs
                    .object
                    .annotation("deployment.kubernetes.io/revision")
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0);
                (revision, rs)
            })
            .collect();
        sets.sort_by_key(|(revision, _)| *revision);
        for pair in sets.windows(2) {
            let [(_, before), (revision, after)] = pair else {
                continue;
            };
            let Some((at, doubt)) = took_effect(snapshot, after) else {
                continue;
            };
            let (kind, side, what) = template_diff(containers(before), containers(after));
            out.push(Change {
                at,
                kind,
                side,
                detail: format!("{} revision {revision}: {what}{doubt}", owner),
                source: after.origin.to_string(),
            });
        }
    }
    out
}

/// Pods normally start within minutes of their ReplicaSet; much later means it was reused.
const REUSED_AFTER_SECONDS: i64 = 3600;

/// When a revision took effect, and what makes that date uncertain. Its ReplicaSet's creation,
/// unless the set was reused: a rollback brings back an old ReplicaSet (Kubernetes then records
/// `revision-history` on it), whose creation may be weeks old. Then the oldest start of its
/// current pods dates the change, as an upper bound.
fn took_effect(snapshot: &Snapshot, set: &Located<ReplicaSet>) -> Option<(String, String)> {
    let created = set.object.metadata.creation_timestamp.as_ref()?.0;
    let first_start = snapshot
        .in_namespace::<Pod>(set.object.namespace())
        .filter(|pod| {
            pod.object
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "ReplicaSet" && o.name == set.object.name())
        })
        .filter_map(|pod| pod.object.status.as_ref()?.start_time.as_ref().map(|t| t.0))
        .min();
    let reused = set
        .object
        .annotation("deployment.kubernetes.io/revision-history")
        .is_some();
    match first_start {
        Some(start)
            if start > created
                && (reused || start.as_second() - created.as_second() > REUSED_AFTER_SECONDS) =>
        {
            Some((
                start.to_string(),
                format!(
                    " (date uncertain: its ReplicaSet dates from {created}, reused by a rollback \
                     or scaled up again; this is when its oldest current pod started, so the \
                     change took effect then or earlier)"
                ),
            ))
        }
        _ => Some((created.to_string(), String::new())),
    }
}

fn owned_by(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    owner: &ObjectRef,
) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == owner.kind && o.name == owner.name)
}

fn containers(rs: &Located<ReplicaSet>) -> &[Container] {
    rs.object
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
}

/// What differs between two revisions' containers, most telling first: the model (an argument
/// or variable naming it), the image, then other arguments and variables.
fn template_diff(before: &[Container], after: &[Container]) -> (&'static str, Side, String) {
    let by_name = |list: &[Container]| -> BTreeMap<String, Container> {
        list.iter().map(|c| (c.name.clone(), c.clone())).collect()
    };
    let (before, after) = (by_name(before), by_name(after));
    let mut model = Vec::new();
    let mut images = Vec::new();
    let mut other = Vec::new();
    for (name, new) in &after {
        let Some(old) = before.get(name) else {
            other.push(format!("container {name} added"));
            continue;
        };
        if old.image != new.image {
            images.push(format!(
                "{name} image {} → {}",
                old.image.as_deref().unwrap_or("?"),
                new.image.as_deref().unwrap_or("?")
            ));
        }
        let (old_line, new_line) = (command_line(old), command_line(new));
        if old_line != new_line {
            let changed = changed_words(&old_line, &new_line);
            if mentions_model(&old_line, &new_line) {
                model.push(format!("{name} model arguments changed: {changed}"));
            } else {
                other.push(format!("{name} arguments changed: {changed}"));
            }
        }
        let env = |c: &Container| -> BTreeMap<String, String> {
            c.env
                .iter()
                .flatten()
                .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
                .collect()
        };
        for (key, value) in env(new) {
            let old_value = env(old).get(&key).cloned();
            if old_value.as_deref() != Some(value.as_str()) {
                let line = format!(
                    "{name} env {key}: {} → {value}",
                    old_value.as_deref().unwrap_or("unset")
                );
                if MODEL_VARIABLES.contains(&key.as_str()) {
                    model.push(line);
                } else {
                    other.push(line);
                }
            }
        }
        if old.resources != new.resources {
            other.push(format!("{name} resources changed"));
        }
    }
    if !model.is_empty() {
        model.extend(images);
        model.extend(other);
        return ("model", Side::Model, model.join("; "));
    }
    if !images.is_empty() {
        images.extend(other);
        return ("image", Side::Configuration, images.join("; "));
    }
    if other.is_empty() {
        other.push("pod template changed (labels, annotations or volumes)".into());
    }
    ("config", Side::Configuration, other.join("; "))
}

/// Variables that name the model a server loads. Exact names: `OLLAMA_MAX_LOADED_MODELS` is a
/// setting, not a model.
const MODEL_VARIABLES: &[&str] = &[
    "MODEL",
    "MODEL_ID",
    "MODEL_NAME",
    "MODEL_PATH",
    "MODEL_REPO",
    "MODEL_URI",
    "MODEL_REVISION",
    "HF_MODEL_ID",
    "HF_MODEL",
    "OLLAMA_MODEL",
    "REVISION",
    "STORAGE_URI",
];

/// Whether the model-naming arguments differ between two command lines. `--served-model-name` is
/// the name clients call the model by, an alias: changing it is configuration.
fn mentions_model(old: &str, new: &str) -> bool {
    const MODEL_FLAGS: &[&str] = &[
        "--model",
        "--model-id",
        "--model-path",
        "--revision",
        "--tokenizer",
        "serve",
    ];
    let value_after = |line: &str, flag: &str| -> Option<String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        words.iter().enumerate().find_map(|(i, w)| {
            if let Some(v) = w.strip_prefix(&format!("{flag}=")) {
                return Some(v.to_owned());
            }
            (*w == flag).then(|| words.get(i + 1).map(|v| (*v).to_owned()))?
        })
    };
    MODEL_FLAGS
        .iter()
        .any(|flag| value_after(old, flag) != value_after(new, flag))
}

/// The words that differ, as `old → new` for a short summary.
fn changed_words(old: &str, new: &str) -> String {
    let old_words: Vec<&str> = old.split_whitespace().collect();
    let new_words: Vec<&str> = new.split_whitespace().collect();
    let removed: Vec<&str> = old_words
        .iter()
        .filter(|w| !new_words.contains(w))
        .copied()
        .collect();
    let added: Vec<&str> = new_words
        .iter()
        .filter(|w| !old_words.contains(w))
        .copied()
        .collect();
    format!("{} → {}", or_none(&removed), or_none(&added))
}

fn or_none(words: &[&str]) -> String {
    if words.is_empty() {
        "(none)".into()
    } else {
        words.join(" ")
    }
}

/// What the node of a failing pod says about its own changes: when it joined, when its kubelet
/// last (re)started, reboots.
fn node_changes(pod: &PodEvidence, out: &mut Vec<Change>) {
    let Some(node) = &pod.node else {
        return;
    };
    let source = node.origin.to_string();
    if let Some(created) = &node.created {
        out.push(Change {
            at: created.clone(),
            kind: "node",
            side: Side::Infrastructure,
            detail: format!(
                "node {} joined the cluster (kubelet {}, {}{})",
                node.name,
                node.kubelet_version.as_deref().unwrap_or("unknown"),
                node.container_runtime
                    .as_deref()
                    .unwrap_or("runtime unknown"),
                driver_version(&node.labels)
                    .map(|d| format!(", GPU driver {d}"))
                    .unwrap_or_default()
            ),
            source: source.clone(),
        });
    }
    for event in &pod.node_events {
        let kind = match event.reason.as_str() {
            "Starting" | "Rebooted" | "NodeReady" => "kubelet",
            _ => continue,
        };
        let Some(at) = event.first_seen.clone().or_else(|| event.last_seen.clone()) else {
            continue;
        };
        out.push(Change {
            at,
            kind,
            side: Side::Infrastructure,
            detail: format!("node {}: {} ({})", node.name, event.reason, event.message),
            source: event.origin.to_string(),
        });
    }
}

/// The GPU driver version a node advertises (GPU feature discovery labels).
fn driver_version(labels: &BTreeMap<String, String>) -> Option<String> {
    if let Some(full) = labels.get("nvidia.com/cuda.driver-version.full") {
        return Some(full.clone());
    }
    let part = |p: &str| labels.get(&format!("nvidia.com/cuda.driver.{p}"));
    Some(format!(
        "{}.{}.{}",
        part("major")?,
        part("minor")?,
        part("rev").map(String::as_str).unwrap_or("0")
    ))
}

/// The GPU operator's driver pods on the failing pods' nodes: a driver pod that started recently
/// means the driver was (re)installed — an upgrade, or a crash.
fn driver_restarts(snapshot: &Snapshot, nodes: &[&str], out: &mut Vec<Change>) {
    for pod in &snapshot.pods {
        if !is_driver_pod(pod) {
            continue;
        }
        let Some(spec) = &pod.object.spec else {
            continue;
        };
        let Some(node) = spec.node_name.as_deref() else {
            continue;
        };
        if !nodes.contains(&node) {
            continue;
        }
        let Some(started) = pod
            .object
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0.to_string())
        else {
            continue;
        };
        let image = spec
            .containers
            .first()
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        out.push(Change {
            at: started,
            kind: "driver",
            side: Side::Infrastructure,
            detail: format!(
                "GPU driver pod {} started on node {node} ({image})",
                pod.object.name()
            ),
            source: pod.origin.to_string(),
        });
    }
}

/// The labels that mark a pod as the NVIDIA GPU operator's driver, any one of them: `app` on the
/// driver daemonset's pods, `app.kubernetes.io/component` on those of newer releases and of
/// `NVIDIADriver` resources (whose `app` is the resource's own name). A live triage of one
/// namespace lists the pods they mark in every other, where the operator runs.
pub const DRIVER_POD_LABELS: &[(&str, &str)] = &[
    ("app", "nvidia-driver-daemonset"),
    ("app.kubernetes.io/component", "nvidia-driver"),
];

fn is_driver_pod(pod: &Located<Pod>) -> bool {
    (DRIVER_POD_LABELS.iter()).any(|&(key, value)| pod.object.label(key) == Some(value))
        || pod.object.name().starts_with("nvidia-driver-daemonset")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::EnvVar;

    fn container(image: &str, args: &[&str]) -> Container {
        Container {
            name: "vllm".into(),
            image: Some(image.into()),
            args: Some(args.iter().map(|a| (*a).to_owned()).collect()),
            ..Container::default()
        }
    }

    #[test]
    fn a_new_model_argument_is_a_model_change() {
        let before = [container(
            "vllm/vllm-openai:v0.10.1",
            &["--model", "meta-llama/Llama-3.1-8B"],
        )];
        let after = [container(
            "vllm/vllm-openai:v0.10.1",
            &["--model", "meta-llama/Llama-3.1-70B"],
        )];
        let (kind, side, detail) = template_diff(&before, &after);
        assert_eq!((kind, side), ("model", Side::Model));
        assert!(
            detail.contains("Llama-3.1-8B → meta-llama/Llama-3.1-70B"),
            "{detail}"
        );
    }

    #[test]
    fn an_image_bump_alone_is_the_endpoints_own_change() {
        let before = [container("vllm/vllm-openai:v0.10.1", &["--model", "m"])];
        let after = [container("vllm/vllm-openai:v0.11.0", &["--model", "m"])];
        let (kind, side, detail) = template_diff(&before, &after);
        assert_eq!((kind, side), ("image", Side::Configuration));
        assert!(
            detail.contains("v0.10.1 → vllm/vllm-openai:v0.11.0"),
            "{detail}"
        );
    }

    #[test]
    fn a_model_variable_counts_as_a_model_change() {
        let mut before = container("ollama/ollama:0.5", &[]);
        let mut after = before.clone();
        before.env = Some(vec![EnvVar {
            name: "MODEL_ID".into(),
            value: Some("llama3".into()),
            ..EnvVar::default()
        }]);
        after.env = Some(vec![EnvVar {
            name: "MODEL_ID".into(),
            value: Some("llama3.1".into()),
            ..EnvVar::default()
        }]);
        let (kind, _, detail) = template_diff(&[before], &[after]);
        assert_eq!(kind, "model");
        assert!(detail.contains("MODEL_ID: llama3 → llama3.1"), "{detail}");
    }

    #[test]
    fn a_served_name_or_a_setting_with_model_in_its_name_is_configuration() {
        let before = [container(
            "vllm/vllm-openai:v0.10.1",
            &["--model", "m", "--served-model-name", "chat"],
        )];
        let after = [container(
            "vllm/vllm-openai:v0.10.1",
            &["--model", "m", "--served-model-name", "assistant"],
        )];
        let (kind, side, _) = template_diff(&before, &after);
        assert_eq!((kind, side), ("config", Side::Configuration));

        let mut before = container("ollama/ollama:0.6.2", &[]);
        let mut after = before.clone();
        let variable = |value: &str| {
            Some(vec![EnvVar {
                name: "OLLAMA_MAX_LOADED_MODELS".into(),
                value: Some(value.into()),
                ..EnvVar::default()
            }])
        };
        before.env = variable("3");
        after.env = variable("1");
        let (kind, side, detail) = template_diff(&[before], &[after]);
        assert_eq!((kind, side), ("config", Side::Configuration), "{detail}");
    }

    #[test]
    fn a_rollback_is_dated_by_its_pods_not_by_its_old_replica_set() {
        let set = |name: &str, revision: u32, created: &str, model: &str, history: &str| {
            format!(
                r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: {name}
  namespace: ml
  creationTimestamp: "{created}"
  annotations: {{deployment.kubernetes.io/revision: "{revision}"{history}}}
  ownerReferences: [{{apiVersion: apps/v1, kind: Deployment, name: vllm, uid: u, controller: true}}]
spec:
  selector: {{matchLabels: {{app: vllm}}}}
  template:
    metadata: {{labels: {{app: vllm}}}}
    spec:
      containers: [{{name: vllm, image: vllm/vllm-openai:v0.10.1, args: [--model, {model}]}}]
"#
            )
        };
        let text = [
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: vllm, namespace: ml}
spec:
  selector: {matchLabels: {app: vllm}}
  template:
    metadata: {labels: {app: vllm}}
    spec:
      containers: [{name: vllm, image: vllm/vllm-openai:v0.10.1, args: [--model, llama-8b]}]
"#
            .to_owned(),
            set("vllm-a", 2, "2026-11-14T09:00:00Z", "llama-70b", ""),
            // Revision 1's set, brought back by `kubectl rollout undo`.
            set(
                "vllm-b",
                3,
                "2026-10-01T09:00:00Z",
                "llama-8b",
                r#", deployment.kubernetes.io/revision-history: "1""#,
            ),
            r#"
apiVersion: v1
kind: Pod
metadata:
  name: vllm-b-x
  namespace: ml
  labels: {app: vllm}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: vllm-b, uid: u, controller: true}]
spec:
  containers: [{name: vllm, image: vllm/vllm-openai:v0.10.1, args: [--model, llama-8b]}]
status: {phase: Running, startTime: "2026-11-28T02:40:00Z"}
"#
            .to_owned(),
        ]
        .join("---\n");
        let snapshot = hangar_core::snapshot_from_text("dump.yaml", &text);
        assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
        let inventory = hangar_core::discover(&snapshot, &hangar_core::Policy::default());
        let changes = revisions(&snapshot, &inventory.endpoints[0]);
        let rollback = changes
            .iter()
            .find(|c| c.detail.contains("revision 3"))
            .unwrap();
        assert_eq!(rollback.at, "2026-11-28T02:40:00Z");
        assert!(
            rollback.detail.contains("date uncertain")
                && rollback.detail.contains("2026-10-01T09:00:00Z"),
            "{}",
            rollback.detail
        );
        assert_eq!(changes.len(), 1, "{changes:?}");
    }

    #[test]
    fn the_closest_earlier_change_is_the_suspect() {
        let change = |at: &str, side| Change {
            at: at.into(),
            kind: "x",
            side,
            detail: format!("change at {at}"),
            source: "f:1".into(),
        };
        let changes = vec![
            change("2026-11-27T10:00:00Z", Side::Model),
            change("2026-11-28T02:50:00Z", Side::Infrastructure),
            change("2026-11-28T04:00:00Z", Side::Model),
        ];
        let since = parse("2026-11-28T03:05:00Z").unwrap();
        let closest = closest_before(&changes, since);
        let text = conclude(Some(since), closest, &changes);
        assert!(text.contains("2026-11-28T02:50:00Z"), "{text}");
        assert!(text.contains("15 min before"), "{text}");
        assert!(text.contains("suspect the infrastructure first"), "{text}");
    }

    #[test]
    fn a_change_long_before_the_symptoms_is_not_the_suspect() {
        let old = Change {
            at: "2026-10-01T00:00:00Z".into(),
            kind: "node",
            side: Side::Infrastructure,
            detail: "node joined".into(),
            source: "f:1".into(),
        };
        let since = parse("2026-11-28T03:05:00Z").unwrap();
        let changes = [old];
        assert!(closest_before(&changes, since).is_none());
        let text = conclude(Some(since), None, &changes);
        assert!(
            text.contains("nothing recorded changed in the 24 hours before"),
            "{text}"
        );
    }

    #[test]
    fn a_chronic_node_warning_does_not_hide_last_nights_revision() {
        let mut pod = PodEvidence::default();
        pod.containers.push(crate::evidence::ContainerEvidence {
            last_state: Some(ContainerState::Terminated {
                reason: Some("Error".into()),
                exit_code: 1,
                signal: None,
                message: None,
                started_at: Some("2026-11-28T02:48:00Z".into()),
                finished_at: Some("2026-11-28T02:50:00Z".into()),
            }),
            ..Default::default()
        });
        let warning = |reason: &str, first: &str, last: &str| EventRecord {
            kind: "Warning".into(),
            reason: reason.into(),
            message: "failed to garbage collect required amount of images".into(),
            count: 900,
            first_seen: Some(first.into()),
            last_seen: Some(last.into()),
            ..EventRecord::default()
        };
        pod.node_events.push(warning(
            "FreeDiskSpaceFailed",
            "2026-11-07T01:00:00Z",
            "2026-11-28T02:40:00Z",
        ));
        // Not on the list of chronic reasons, yet it began three weeks before the crash.
        pod.node_events.push(warning(
            "ContainerGCFailed",
            "2026-11-07T01:00:00Z",
            "2026-11-28T02:41:00Z",
        ));
        let since = first_symptom(&pod).unwrap();
        assert_eq!(since.to_string(), "2026-11-28T02:50:00Z");
        let changes = [Change {
            at: "2026-11-28T02:45:00Z".into(),
            kind: "model",
            side: Side::Model,
            detail: "Deployment/ml/vllm revision 4".into(),
            source: "f:1".into(),
        }];
        let closest = closest_before(&changes, since);
        assert_eq!(closest.map(|c| c.at.as_str()), Some("2026-11-28T02:45:00Z"));
        let text = conclude(Some(since), closest, &changes);
        assert!(text.contains("suspect the model release first"), "{text}");

        // A node warning still firing before the crash, begun that night, is part of it.
        let mut xid_all_night = pod.clone();
        xid_all_night.node_events.push(warning(
            "XidError",
            "2026-11-28T00:10:00Z",
            "2026-11-28T02:49:00Z",
        ));
        assert_eq!(
            first_symptom(&xid_all_night)
                .map(|t| t.to_string())
                .as_deref(),
            Some("2026-11-28T00:10:00Z")
        );
        // And so is one that began shortly before the crash.
        pod.node_events.push(warning(
            "XidError",
            "2026-11-28T02:30:00Z",
            "2026-11-28T02:30:00Z",
        ));
        assert_eq!(
            first_symptom(&pod).map(|t| t.to_string()).as_deref(),
            Some("2026-11-28T02:30:00Z")
        );
    }

    #[test]
    fn driver_versions_come_from_feature_discovery_labels() {
        let labels: BTreeMap<String, String> = [
            ("nvidia.com/cuda.driver.major", "550"),
            ("nvidia.com/cuda.driver.minor", "127"),
            ("nvidia.com/cuda.driver.rev", "05"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(driver_version(&labels).as_deref(), Some("550.127.05"));
    }
}
