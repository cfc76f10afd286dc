//! Values the API server refuses in objects that otherwise decode: a resource quantity that is
//! not one (`nvidia.com/gpu: abc`), a negative one, a fraction of a GPU, a request above its
//! limit, an extended resource or huge pages whose request has no limit or differs from it, a
//! negative replica count; in containers, quotas (`spec.hard`) and volume claims (whose
//! storage request must be there and above zero). A pod's own `spec.resources` is left alone:
//! what the API server accepts there depends on its version and feature gates. Such a manifest never runs as written, so each is reported as an
//! error naming the field; the object is still audited as written, like one of a removed API
//! version.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec, ResourceRequirements};
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
        Object::ResourceQuota(o) => {
            let hard = o.spec.as_ref().and_then(|s| s.hard.as_ref());
            for (name, (text, value)) in read_all(hard, "spec", "hard", &mut found) {
                if counted_in_quota(name) && !quantity::is_whole(value) {
                    found.push(format!(
                        "`spec.hard.{name}`: `{text}` is not a whole number, as a count must be"
                    ));
                }
            }
        }
        // The API server reads a claim's storage request only (not its limits, nor other
        // names), but no quantity anywhere may be unreadable.
        Object::PersistentVolumeClaim(o) => {
            let resources = o.spec.as_ref().and_then(|s| s.resources.as_ref());
            let at = "spec.resources";
            let lists = resources
                .iter()
                .flat_map(|r| [("requests", &r.requests), ("limits", &r.limits)]);
            for (which, map) in lists {
                for (name, quantity) in map.iter().flatten() {
                    let text = quantity.0.trim();
                    if quantity::parse(text).is_none() {
                        found.push(format!("`{at}.{which}.{name}`: `{text}` is not a quantity"));
                    }
                }
            }
            let storage = resources.and_then(|r| r.requests.as_ref()?.get("storage"));
            let storage = storage.map(|q| (q.0.trim(), quantity::parse(q.0.trim())));
            match storage {
                None => found.push(format!(
                    "`{at}.requests.storage`: missing; a claim must say how much storage it needs"
                )),
                Some((text, Some(value))) if value <= 0.0 => found.push(format!(
                    "`{at}.requests.storage`: `{text}` must be more than zero"
                )),
                _ => {}
            }
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
        if let Some(resources) = &container.resources {
            let at = format!("{path}.{list}[{index}].resources");
            check_resources(resources, &at, found);
        }
    }
}

/// The requests and limits of a container, at `at`.
fn check_resources(resources: &ResourceRequirements, at: &str, found: &mut Vec<String>) {
    let requests = read_all(resources.requests.as_ref(), at, "requests", found);
    let limits = read_all(resources.limits.as_ref(), at, "limits", found);
    let has_limit = |name: &str| {
        resources
            .limits
            .as_ref()
            .is_some_and(|l| l.contains_key(name))
    };
    compare(&requests, &limits, at, has_limit, found);
}

/// Each request against its limit: not above it, and equal to it (and present) for a resource
/// that cannot be overcommitted. `has_limit` says whether an unreadable limit was given.
fn compare(
    requests: &BTreeMap<&str, (&str, f64)>,
    limits: &BTreeMap<&str, (&str, f64)>,
    at: &str,
    has_limit: impl Fn(&str) -> bool,
    found: &mut Vec<String>,
) {
    for (name, (request_text, _)) in requests {
        let field = format!("`{at}.requests.{name}`");
        // An extended resource or huge pages cannot be overcommitted: the limit is required
        // and the request must equal it.
        let exact = !overcommit_allowed(name);
        match limits.get(name) {
            None if exact && !has_limit(name) => found.push(format!(
                "`{at}.limits.{name}`: missing; {name} cannot be overcommitted, so it needs a limit equal to its request"
            )),
            Some((limit_text, _)) if exact && order(request_text, limit_text) != Ordering::Equal => {
                found.push(format!(
                    "{field}: `{request_text}` differs from the limit, `{limit_text}`; {name} cannot be overcommitted, so they must be equal"
                ));
            }
            Some((limit_text, _)) if order(request_text, limit_text) == Ordering::Greater => found
                .push(format!(
                    "{field}: `{request_text}` is more than the limit, `{limit_text}`"
                )),
            _ => {}
        }
    }
}

/// Reads every quantity of `map`, reporting the ones the API server refuses; returns the rest,
/// each with its text.
fn read_all<'m>(
    map: Option<&'m BTreeMap<String, Quantity>>,
    at: &str,
    which: &str,
    found: &mut Vec<String>,
) -> BTreeMap<&'m str, (&'m str, f64)> {
    let mut read = BTreeMap::new();
    for (name, quantity) in map.into_iter().flatten() {
        let field = format!("`{at}.{which}.{name}`");
        // The API server trims a quantity before reading it.
        let text = quantity.0.trim();
        match quantity::parse(text) {
            None => found.push(format!("{field}: `{text}` is not a quantity")),
            Some(value) if value < 0.0 => found.push(format!("{field}: `{text}` is negative")),
            Some(value) if is_extended(name) && !quantity::is_whole(value) => found.push(format!(
                "{field}: `{text}` is not a whole number, as an extended resource must be"
            )),
            Some(value) => {
                read.insert(name.as_str(), (text, value));
            }
        }
    }
    read
}

/// How two quantities already read compare.
fn order(a: &str, b: &str) -> Ordering {
    quantity::compare(a, b).unwrap_or(Ordering::Equal)
}

/// Kubernetes' own resources other than huge pages may be requested below their limit.
fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !name.starts_with("hugepages-")
}

fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// A quota entry that counts objects (`pods`, `count/deployments.apps`) or extended resources,
/// which the API server takes only in whole numbers.
fn counted_in_quota(name: &str) -> bool {
    const COUNTS: [&str; 9] = [
        "pods",
        "services",
        "replicationcontrollers",
        "resourcequotas",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "services.nodeports",
        "services.loadbalancers",
    ];
    COUNTS.contains(&name) || name.starts_with("count/") || is_extended(name)
}

/// A resource a device plugin or an operator provides (`nvidia.com/gpu`), not one of
/// Kubernetes' own (`cpu`, `memory`, `hugepages-2Mi`, `kubernetes.io/…`).
fn is_extended(name: &str) -> bool {
    !is_native(name) && !name.starts_with("requests.")
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
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  replicas: -3\n  selector: {}\n  template:\n    spec:\n      containers:\n        - name: a\n          resources:\n            limits: {nvidia.com/gpu: abc, memory: 16Gi, amd.com/gpu: '1.5', cpu: 500m}\n            requests: {cpu: '-2', memory: 32Gi, nvidia.com/gpu: '1', hugepages-2Mi: 1Gi}\n      initContainers:\n        - name: b\n          resources:\n            limits: {nvidia.com/gpu: 2}\n            requests: {nvidia.com/gpu: 1}\n        - name: c\n          resources:\n            requests: {nvidia.com/gpu: 1}\n",
        );
        assert_eq!(
            rejected_values(&deployment),
            [
                "`spec.replicas`: -3 is negative",
                "`spec.template.spec.containers[0].resources.requests.cpu`: `-2` is negative",
                "`spec.template.spec.containers[0].resources.limits.amd.com/gpu`: `1.5` is not a whole number, as an extended resource must be",
                "`spec.template.spec.containers[0].resources.limits.nvidia.com/gpu`: `abc` is not a quantity",
                // The request of a limit that is present but unreadable is not judged again.
                "`spec.template.spec.containers[0].resources.limits.hugepages-2Mi`: missing; hugepages-2Mi cannot be overcommitted, so it needs a limit equal to its request",
                "`spec.template.spec.containers[0].resources.requests.memory`: `32Gi` is more than the limit, `16Gi`",
                "`spec.template.spec.initContainers[0].resources.requests.nvidia.com/gpu`: `1` differs from the limit, `2`; nvidia.com/gpu cannot be overcommitted, so they must be equal",
                "`spec.template.spec.initContainers[1].resources.limits.nvidia.com/gpu`: missing; nvidia.com/gpu cannot be overcommitted, so it needs a limit equal to its request",
            ]
        );
        let fine = object(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n    - name: a\n      resources:\n        limits: {nvidia.com/gpu: 1, cpu: 1500m, memory: 1.5Gi, hugepages-2Mi: 1Gi, example.com/fpga: ' 2 '}\n        requests: {nvidia.com/gpu: '1', cpu: '0.5', hugepages-2Mi: 1024Mi, memory: 1Gi}\n",
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

    #[test]
    fn quotas_and_claims_are_checked_too() {
        let quota = object(
            "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q}\nspec:\n  hard: {pods: '2.5', requests.cpu: '-1', requests.nvidia.com/gpu: '4', count/deployments.apps: 10, limits.memory: 2x, requests.memory: 1.5Gi}\n",
        );
        assert_eq!(
            rejected_values(&quota),
            [
                "`spec.hard.limits.memory`: `2x` is not a quantity",
                "`spec.hard.requests.cpu`: `-1` is negative",
                "`spec.hard.pods`: `2.5` is not a whole number, as a count must be",
            ]
        );
        let claim = |resources: &str| {
            rejected_values(&object(&format!(
                "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: c}}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {resources}\n"
            )))
        };
        // Limits and other names are not the API server's concern, unless no quantity.
        let others = "{requests: {storage: 20Gi, example.com/x: '-1'}, limits: {storage: 10Gi}}";
        assert!(claim(others).is_empty());
        assert_eq!(
            claim("{requests: {storage: 1Gi}, limits: {storage: much}}"),
            ["`spec.resources.limits.storage`: `much` is not a quantity"]
        );
        assert_eq!(
            claim("{requests: {storage: '0'}}"),
            ["`spec.resources.requests.storage`: `0` must be more than zero"]
        );
        assert_eq!(
            claim("{}"),
            [
                "`spec.resources.requests.storage`: missing; a claim must say how much storage it needs"
            ]
        );
        assert_eq!(
            claim("{requests: {storage: big}}"),
            ["`spec.resources.requests.storage`: `big` is not a quantity"]
        );
        assert!(claim("{requests: {storage: 100Gi}}").is_empty());
        // Equal values written two ways are equal (as f64s, 700m is more than 0.7).
        let written_two_ways = object(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n    - name: a\n      resources:\n        requests: {cpu: 700m, memory: 9m, nvidia.com/gpu: 1000m}\n        limits: {cpu: '0.7', memory: '0.009', nvidia.com/gpu: 1}\n",
        );
        assert_eq!(rejected_values(&written_two_ways), Vec::<String>::new());
    }
}
