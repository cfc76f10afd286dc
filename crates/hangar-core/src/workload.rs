//! Pod templates, whatever declares them: Deployments and their kin, bare Pods, and the custom
//! resources of the model-serving operators (whose pods do not exist until the operator runs).

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rayon::prelude::*;
use serde_json::Value;

use crate::object::{ObjectRef, Origin};
use crate::snapshot::{DynamicObject, KubeObject, Located, Snapshot};

/// A pod as some object declares it, with the path of its spec inside that object so findings
/// can name the exact field.
#[derive(Debug, Clone)]
pub struct PodTemplate {
    /// The object that declares the template (Deployment, Pod, InferenceService…).
    pub owner: ObjectRef,
    pub origin: Origin,
    /// The labels pods get: what Services and NetworkPolicies select on.
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub spec: PodSpec,
    /// Where `spec` sits in the owner, e.g. `spec.template.spec`.
    pub spec_path: String,
    /// For custom resources that declare one container's fields inline (KServe's
    /// `predictor.model`, a NIMService's spec), where that container — `containers[0]` — sits.
    pub inline_container_path: Option<String>,
}

impl PodTemplate {
    /// The main and init containers, each with its field path.
    pub fn containers(&self) -> impl Iterator<Item = (String, &Container)> {
        let inline = self.inline_container_path.as_ref();
        let main = self
            .spec
            .containers
            .iter()
            .enumerate()
            .map(move |(i, c)| match inline {
                Some(path) if i == 0 => (path.clone(), c),
                Some(_) => (format!("{}.containers[{}]", self.spec_path, i - 1), c),
                None => (format!("{}.containers[{i}]", self.spec_path), c),
            });
        let init = self
            .spec
            .init_containers
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, c)| (format!("{}.initContainers[{i}]", self.spec_path), c));
        main.chain(init)
    }
}

fn from_template(
    owner: ObjectRef,
    origin: &Origin,
    template: Option<&PodTemplateSpec>,
    spec_path: &str,
) -> Option<PodTemplate> {
    let template = template?;
    let spec = template.spec.clone()?;
    let meta = template.metadata.clone().unwrap_or_default();
    Some(PodTemplate {
        owner,
        origin: origin.clone(),
        labels: meta.labels.unwrap_or_default(),
        annotations: meta.annotations.unwrap_or_default(),
        spec,
        spec_path: spec_path.to_owned(),
        inline_container_path: None,
    })
}

/// A workload object: something that runs pods, with the owner references that tie it to the
/// object that created it.
#[derive(Debug, Clone)]
pub struct Workload {
    pub template: PodTemplate,
    pub meta: ObjectMeta,
    /// Jobs and CronJobs run to completion: never a serving endpoint.
    pub runs_to_completion: bool,
}

impl Workload {
    pub fn object_ref(&self) -> &ObjectRef {
        &self.template.owner
    }
}

/// The workloads no other workload in the snapshot controls, in a stable order: a Deployment,
/// not also its ReplicaSets and Pods, which the same template already describes. Controlled
/// workloads are skipped before their templates are copied, which matters for live snapshots
/// full of Pods.
pub fn workloads(snapshot: &Snapshot) -> Vec<Workload> {
    let present = workload_refs(snapshot);
    let controlled = |meta: &ObjectMeta| {
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        meta.owner_references
            .iter()
            .flatten()
            .any(|o| present.contains(&ObjectRef::new(o.kind.clone(), namespace, o.name.clone())))
    };
    let mut out = Vec::new();
    fn spec_template<T: KubeObject>(
        o: &Located<T>,
        t: Option<&PodTemplateSpec>,
        path: &str,
    ) -> Option<PodTemplate> {
        from_template(o.object_ref(), &o.origin, t, path)
    }
    const TEMPLATE: &str = "spec.template.spec";
    gather(&mut out, &snapshot.deployments, &controlled, |d| {
        let spec = d.object.spec.as_ref();
        Some((
            spec_template(d, spec.map(|s| &s.template), TEMPLATE)?,
            false,
        ))
    });
    gather(&mut out, &snapshot.stateful_sets, &controlled, |s| {
        let spec = s.object.spec.as_ref();
        Some((
            spec_template(s, spec.map(|s| &s.template), TEMPLATE)?,
            false,
        ))
    });
    gather(&mut out, &snapshot.daemon_sets, &controlled, |d| {
        let spec = d.object.spec.as_ref();
        Some((
            spec_template(d, spec.map(|s| &s.template), TEMPLATE)?,
            false,
        ))
    });
    gather(&mut out, &snapshot.replica_sets, &controlled, |r| {
        let spec = r.object.spec.as_ref();
        let template = spec.and_then(|s| s.template.as_ref());
        Some((spec_template(r, template, TEMPLATE)?, false))
    });
    gather(&mut out, &snapshot.jobs, &controlled, |j| {
        let spec = j.object.spec.as_ref();
        Some((spec_template(j, spec.map(|s| &s.template), TEMPLATE)?, true))
    });
    gather(&mut out, &snapshot.cron_jobs, &controlled, |c| {
        let spec = c.object.spec.as_ref();
        let template = spec
            .and_then(|s| s.job_template.spec.as_ref())
            .map(|s| &s.template);
        let path = "spec.jobTemplate.spec.template.spec";
        Some((spec_template(c, template, path)?, true))
    });
    gather(&mut out, &snapshot.pods, &controlled, |p| {
        let spec = p.object.spec.clone()?;
        // A bare pod that never restarts is a one-off run, not a server.
        let one_off = spec.restart_policy.as_deref() == Some("Never");
        let template = PodTemplate {
            owner: p.object_ref(),
            origin: p.origin.clone(),
            labels: p.object.metadata.labels.clone().unwrap_or_default(),
            annotations: p.object.metadata.annotations.clone().unwrap_or_default(),
            spec,
            spec_path: "spec".into(),
            inline_container_path: None,
        };
        Some((template, one_off))
    });
    // LeaderWorkerSet is a workload kind of its own; its leader and workers are both templates.
    for o in snapshot
        .others
        .iter()
        .filter(|o| o.object.kind == "LeaderWorkerSet")
    {
        if controlled(&o.object.metadata) {
            continue;
        }
        for template in custom_resource_templates(&o.object, &o.origin) {
            out.push(Workload {
                template,
                meta: o.object.metadata.clone(),
                runs_to_completion: false,
            });
        }
    }
    out
}

/// Appends the workloads of one kind that no other workload controls, in their order. Their
/// templates (a pod spec each, copied) are built in parallel.
fn gather<'s, T: KubeObject + Sync>(
    out: &mut Vec<Workload>,
    objects: &'s [Located<T>],
    controlled: &(dyn Fn(&ObjectMeta) -> bool + Sync),
    template: impl Fn(&'s Located<T>) -> Option<(PodTemplate, bool)> + Sync + Send,
) {
    out.par_extend(
        objects
            .par_iter()
            .filter(|o| !controlled(o.object.meta()))
            .filter_map(|o| {
                let (template, runs_to_completion) = template(o)?;
                Some(Workload {
                    template,
                    meta: o.object.meta().clone(),
                    runs_to_completion,
                })
            }),
    );
}

/// The identity of every object of a workload kind.
fn workload_refs(snapshot: &Snapshot) -> HashSet<ObjectRef> {
    let mut refs = HashSet::new();
    macro_rules! add {
        ($($field:ident),*) => {$(refs.extend(snapshot.$field.iter().map(|o| o.object_ref()));)*};
    }
    add!(
        deployments,
        stateful_sets,
        daemon_sets,
        replica_sets,
        jobs,
        cron_jobs,
        pods
    );
    refs.extend(
        snapshot
            .others
            .iter()
            .filter(|o| o.object.kind == "LeaderWorkerSet")
            .map(|o| o.object_ref()),
    );
    refs
}

/// The pod templates a model-serving custom resource implies, read from its spec so that
/// manifests can be audited before the operator has created anything.
pub fn custom_resource_templates(object: &DynamicObject, origin: &Origin) -> Vec<PodTemplate> {
    let owner = object.object_ref();
    let mut out = Vec::new();
    let mut add = |value: Option<&Value>, path: &str| {
        if let Some(template) = value.and_then(|v| template_from_value(&owner, origin, v, path)) {
            out.push(template);
        }
    };
    match (object.group(), object.kind.as_str()) {
        ("serving.kserve.io", "InferenceService") => {
            for component in ["predictor", "transformer", "explainer"] {
                add(
                    object.get(&format!("spec.{component}")),
                    &format!("spec.{component}"),
                );
            }
        }
        ("serving.kserve.io", "LLMInferenceService") => {
            add(object.get("spec.template"), "spec.template");
            add(object.get("spec.worker"), "spec.worker");
        }
        ("ray.io", "RayService") => {
            add(
                object.get("spec.rayClusterConfig.headGroupSpec.template"),
                "spec.rayClusterConfig.headGroupSpec.template",
            );
            let workers = object
                .get("spec.rayClusterConfig.workerGroupSpecs")
                .and_then(Value::as_array);
            for (i, group) in workers.into_iter().flatten().enumerate() {
                add(
                    group.get("template"),
                    &format!("spec.rayClusterConfig.workerGroupSpecs[{i}].template"),
                );
            }
        }
        ("leaderworkerset.x-k8s.io", "LeaderWorkerSet") => {
            add(
                object.get("spec.leaderWorkerTemplate.leaderTemplate"),
                "spec.leaderWorkerTemplate.leaderTemplate",
            );
            add(
                object.get("spec.leaderWorkerTemplate.workerTemplate"),
                "spec.leaderWorkerTemplate.workerTemplate",
            );
        }
        ("machinelearning.seldon.io", "SeldonDeployment") => {
            let predictors = object.get("spec.predictors").and_then(Value::as_array);
            for (i, predictor) in predictors.into_iter().flatten().enumerate() {
                let specs = predictor.get("componentSpecs").and_then(Value::as_array);
                for (j, component) in specs.into_iter().flatten().enumerate() {
                    add(
                        Some(component),
                        &format!("spec.predictors[{i}].componentSpecs[{j}]"),
                    );
                }
            }
        }
        ("apps.nvidia.com", "NIMService") => add(object.get("spec"), "spec"),
        _ => {}
    }
    for template in &mut out {
        for (key, value) in operator_pod_labels(object) {
            template
                .labels
                .entry(key.to_owned())
                .or_insert_with(|| value.to_owned());
        }
    }
    out
}

/// The labels an operator puts on the pods it creates for `object`, so that Services and
/// NetworkPolicies written against them match the declared templates too.
fn operator_pod_labels(object: &DynamicObject) -> Vec<(&'static str, &str)> {
    let name = object.name();
    match object.kind.as_str() {
        "InferenceService" => vec![("serving.kserve.io/inferenceservice", name)],
        "LeaderWorkerSet" => vec![("leaderworkerset.sigs.k8s.io/name", name)],
        "SeldonDeployment" => vec![("seldon-deployment-id", name)],
        "NIMService" => vec![("app", name), ("app.kubernetes.io/name", name)],
        _ => Vec::new(),
    }
}

/// Reads a pod template out of a custom resource. Accepts a `{metadata, spec}` template, a bare
/// pod spec, or the KServe/NIM shape where a single container's fields sit beside the pod's.
fn template_from_value(
    owner: &ObjectRef,
    origin: &Origin,
    value: &Value,
    path: &str,
) -> Option<PodTemplate> {
    let (meta_value, spec_value, spec_path) = match value.get("spec") {
        Some(spec)
            if (spec.is_object() && value.get("metadata").is_some())
                || spec.get("containers").is_some() =>
        {
            (value.get("metadata"), spec, format!("{path}.spec"))
        }
        _ => (None, value, path.to_owned()),
    };
    let mut spec: PodSpec = serde_json::from_value(spec_value.clone()).ok()?;
    // KServe's `model` (and the framework shorthands), NIM's flat spec: one container's fields.
    let mut inline_container_path = None;
    if let Some((container, key)) = inline_container(spec_value) {
        spec.containers.insert(0, container);
        inline_container_path = Some(match key {
            Some(key) => format!("{spec_path}.{key}"),
            None => spec_path.clone(),
        });
    }
    if spec.containers.is_empty() {
        return None;
    }
    let meta: ObjectMeta = meta_value
        .and_then(|m| serde_json::from_value(m.clone()).ok())
        .unwrap_or_default();
    Some(PodTemplate {
        owner: owner.clone(),
        origin: origin.clone(),
        labels: meta.labels.unwrap_or_default(),
        annotations: meta.annotations.unwrap_or_default(),
        spec,
        spec_path,
        inline_container_path,
    })
}

/// KServe predictor keys that hold a single container's fields.
const INLINE_CONTAINER_KEYS: &[&str] = &[
    "model",
    "sklearn",
    "xgboost",
    "tensorflow",
    "pytorch",
    "triton",
    "onnx",
    "huggingface",
    "lightgbm",
    "paddle",
    "pmml",
];

/// The inline container and the key it sits under (`None`: its fields sit in the spec itself).
fn inline_container(spec: &Value) -> Option<(Container, Option<&'static str>)> {
    for key in INLINE_CONTAINER_KEYS {
        if let Some(value) = spec.get(*key).filter(|v| v.is_object()) {
            let mut container: Container = serde_json::from_value(value.clone()).ok()?;
            if container.name.is_empty() {
                container.name = format!("kserve-{key}");
            }
            return Some((container, Some(key)));
        }
    }
    // NIMService: `image: {repository, tag}` with resources and env beside it.
    let image = spec.get("image")?;
    let repository = image.get("repository")?.as_str()?;
    let tag = image.get("tag").and_then(Value::as_str).unwrap_or("latest");
    let mut flat = spec.clone();
    if let Some(map) = flat.as_object_mut() {
        map.insert("image".into(), Value::String(format!("{repository}:{tag}")));
        map.insert("name".into(), Value::String("nim".into()));
        map.remove("args");
    }
    serde_json::from_value(flat).ok().map(|c| (c, None))
}
