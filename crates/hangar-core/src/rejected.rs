//! Values the API server refuses in objects that otherwise decode: a resource quantity that is
//! not one (`nvidia.com/gpu: abc`), a negative one, a fraction of a GPU, an extended resource
//! whose request differs from its limit, a negative replica count. Such a manifest never runs
//! as written, so each is reported as an error naming the field; the object is still audited
//! as written, like one of a removed API version.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::quantity;
use crate::snapshot::Object;

/// What the API server would refuse in `object`, one message per field.
pub fn rejected_values(object: &Object) -> Vec<String> {
    let mut found = Vec::new();
    match object {
        Object::Pod(pod) => check_pod(pod.spec.as_ref(), "spec", &mut found),
        Object::Deployment(o) => {
            let spec = o.spec.as_ref();
            check_replicas(spec.and_then(|s| s.replicas), &mut found);
            check_pod(template(spec.map(|s| &s.template)), POD, &mut found);
        }
        Object::StatefulSet(o) => {
            let spec = o.spec.as_ref();
            check_replicas(spec.and_then(|s| s.replicas), &mut found);
            check_pod(template(spec.map(|s| &s.template)), POD, &mut found);
        }
        Object::ReplicaSet(o) => {
            let spec = o.spec.as_ref();
            check_replicas(spec.and_then(|s| s.replicas), &mut found);
            check_pod(
                template(spec.and_then(|s| s.template.as_ref())),
                POD,
                &mut found,
            );
        }
        Object::DaemonSet(o) => {
            let spec = o.spec.as_ref().map(|s| &s.template);
            check_pod(template(spec), POD, &mut found);
        }
        Object::Job(o) => {
            let spec = o.spec.as_ref().map(|s| &s.template);
            check_pod(template(spec), POD, &mut found);
        }
        Object::CronJob(o) => {
            let job = o.spec.as_ref().and_then(|s| s.job_template.spec.as_ref());
            let path = "spec.jobTemplate.spec.template.spec";
            check_pod(template(job.map(|j| &j.template)), path, &mut found);
        }
        _ => {}
    }
    found
}

fn template(template: Option<&PodTemplateSpec>) -> Option<&PodSpec> {
    template?.spec.as_ref()
}

/// Where a workload's pod spec sits.
const POD: &str = "spec.template.spec";

fn check_replicas(replicas: Option<i32>, found: &mut Vec<String>) {
    if let Some(replicas) = replicas.filter(|r| *r < 0) {
        found.push(format!("`spec.replicas`: {replicas} is negative"));
    }
}

fn check_pod(spec: Option<&PodSpec>, path: &str, found: &mut Vec<String>) {
    let Some(spec) = spec else { return };
    let containers = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| ("containers", i, c));
    let init = spec.init_containers.iter().flatten().enumerate();
    for (list, index, container) in containers.chain(init.map(|(i, c)| ("initContainers", i, c))) {
        let Some(resources) = &container.resources else {
            continue;
        };
        let at = format!("{path}.{list}[{index}].resources");
        let requests = read_all(resources.requests.as_ref(), &at, "requests", found);
        let limits = read_all(resources.limits.as_ref(), &at, "limits", found);
        // An extended resource cannot be overcommitted: its limit is required, and its request
        // must equal it.
        for (name, request) in requests.iter().filter(|(name, _)| is_extended(name)) {
            match limits.get(name) {
                None => found.push(format!(
                    "`{at}.limits.{name}`: missing; an extended resource needs a limit, equal to its request"
                )),
                Some(limit) if limit != request => found.push(format!(
                    "`{at}.requests.{name}`: {request} differs from the limit, {limit}; an extended resource's request must equal its limit"
                )),
                Some(_) => {}
            }
        }
    }
}

/// Reads every quantity of `map`, reporting the ones the API server refuses; returns the rest.
fn read_all(
    map: Option<&BTreeMap<String, Quantity>>,
    at: &str,
    which: &str,
    found: &mut Vec<String>,
) -> BTreeMap<String, f64> {
    let mut read = BTreeMap::new();
    for (name, quantity) in map.into_iter().flatten() {
        let field = format!("`{at}.{which}.{name}`");
        let text = quantity.0.as_str();
        match quantity::parse(text) {
            None => found.push(format!("{field}: `{text}` is not a quantity")),
            Some(value) if value < 0.0 => found.push(format!("{field}: `{text}` is negative")),
            Some(value) if is_extended(name) && value.fract() != 0.0 => found.push(format!(
                "{field}: `{text}` is not a whole number, as an extended resource must be"
            )),
            Some(value) => {
                read.insert(name.clone(), value);
            }
        }
    }
    read
}

/// A resource a device plugin or an operator provides (`nvidia.com/gpu`), not one of
/// Kubernetes' own (`cpu`, `memory`, `hugepages-2Mi`, `kubernetes.io/…`).
fn is_extended(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Object;

    fn object(yaml: &str) -> Object {
        let value: serde_json::Value = serde_saphyr::from_str(yaml).unwrap();
        Object::decode(value).unwrap()
    }

    #[test]
    fn each_value_the_api_server_refuses_is_named_by_its_field() {
        let deployment = object(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  replicas: -3\n  selector: {}\n  template:\n    spec:\n      containers:\n        - name: a\n          resources:\n            limits: {nvidia.com/gpu: abc, memory: 16Gi, amd.com/gpu: '1.5'}\n            requests: {cpu: '-2'}\n      initContainers:\n        - name: b\n          resources:\n            limits: {nvidia.com/gpu: 2}\n            requests: {nvidia.com/gpu: 1}\n        - name: c\n          resources:\n            requests: {nvidia.com/gpu: 1}\n",
        );
        assert_eq!(
            rejected_values(&deployment),
            [
                "`spec.replicas`: -3 is negative",
                "`spec.template.spec.containers[0].resources.requests.cpu`: `-2` is negative",
                "`spec.template.spec.containers[0].resources.limits.amd.com/gpu`: `1.5` is not a whole number, as an extended resource must be",
                "`spec.template.spec.containers[0].resources.limits.nvidia.com/gpu`: `abc` is not a quantity",
                "`spec.template.spec.initContainers[0].resources.requests.nvidia.com/gpu`: 1 differs from the limit, 2; an extended resource's request must equal its limit",
                "`spec.template.spec.initContainers[1].resources.limits.nvidia.com/gpu`: missing; an extended resource needs a limit, equal to its request",
            ]
        );
        let fine = object(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n    - name: a\n      resources:\n        limits: {nvidia.com/gpu: 1, cpu: 1500m, memory: 1.5Gi, hugepages-2Mi: 1Gi}\n        requests: {nvidia.com/gpu: '1', cpu: '0.5'}\n",
        );
        assert!(
            rejected_values(&fine).is_empty(),
            "{:?}",
            rejected_values(&fine)
        );
        let cron = object(
            "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: a}\nspec:\n  schedule: '@daily'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n            - name: a\n              resources: {limits: {memory: lots}}\n",
        );
        assert_eq!(
            rejected_values(&cron),
            [
                "`spec.jobTemplate.spec.template.spec.containers[0].resources.limits.memory`: `lots` is not a quantity"
            ]
        );
    }
}
