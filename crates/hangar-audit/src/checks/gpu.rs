//! GPU: whether accelerators, and the nodes that carry them, are fenced off from pods that should
//! not reach them.

use std::collections::{BTreeMap, HashSet};

use hangar_core::image::ImageRef;
use hangar_core::inventory::{Endpoint, accelerator_requests, command_line, is_accelerator};
use hangar_core::nodes::{
    can_schedule, fencing_taints, is_gpu_node, placement_key, required_terms, tolerates_everything,
};
use hangar_core::policy::DATA_SCOPE_LABEL;
use hangar_core::workload::{PodTemplate, Workload};
use hangar_core::{DataScope, Inventory, KubeObject, ObjectRef, Policy, Severity, Snapshot};
use k8s_openapi::api::core::v1::{Container, Namespace, Node, NodeSelectorRequirement, Toleration};

use crate::check::{Check, Family, Finding, Run, always};

pub(crate) const CHECKS: &[Check] = &[
    Check {
        id: "GPU-001",
        family: Family::GpuIsolation,
        title: "GPU node is not fenced by a NoSchedule/NoExecute GPU taint",
        severity: Severity::High,
        rationale: "Without a taint any pod can be scheduled onto the GPU node: ordinary workloads share the host (and, with a CUDA base image, the GPUs) with inference serving regulated data, and expensive capacity is wasted.",
        remediation: "Taint every GPU node or node pool with one of the policy's GPU taint keys, e.g. `kubectl taint nodes <node> nvidia.com/gpu=present:NoSchedule` (or the node pool's taint setting), and give GPU workloads the matching toleration.",
        run: Run::Cluster(gpu_node_untainted),
        applies: always,
    },
    Check {
        id: "GPU-002",
        family: Family::GpuIsolation,
        title: "Workload without an accelerator request tolerates the GPU taint",
        severity: Severity::Medium,
        rationale: "A pod that requests no GPU but tolerates the GPU taint (or every taint) defeats the fence around GPU nodes: it lands beside inference pods and can reach the GPUs outside the device plugin's allocation.",
        remediation: "Remove the GPU toleration (or the catch-all `operator: Exists` toleration) from workloads that need no accelerator; node agents that must run everywhere belong in a DaemonSet in a system namespace.",
        run: Run::Cluster(tolerates_gpu_without_request),
        applies: always,
    },
    Check {
        id: "GPU-003",
        family: Family::GpuIsolation,
        title: "Inference requesting accelerators is not pinned to a node pool",
        severity: Severity::Medium,
        rationale: "Without a nodeSelector or required node affinity the scheduler may place the model server on any node with a free accelerator, including pools meant for other tenants or scopes.",
        remediation: "Add a `nodeSelector` (e.g. `hangar.dev/pool: inference`) or a required `nodeAffinity` on the pool's label to the pod template.",
        run: Run::Endpoint(not_pinned_to_pool),
        applies: always,
    },
    Check {
        id: "GPU-004",
        family: Family::GpuIsolation,
        title: "NVIDIA_VISIBLE_DEVICES set in a container that requests no accelerator",
        severity: Severity::High,
        rationale: "On a node whose default runtime is the NVIDIA runtime, `NVIDIA_VISIBLE_DEVICES` hands the listed GPUs (or all of them) to the container without the device plugin allocating them: it can read other tenants' GPU memory and breaks accounting.",
        remediation: "Request the accelerator through `resources.limits` (e.g. `nvidia.com/gpu: 1`) and remove `NVIDIA_VISIBLE_DEVICES`; on the nodes set `accept-nvidia-visible-devices-envvar-when-unprivileged = false` in the NVIDIA container toolkit.",
        run: Run::Cluster(visible_devices_without_request),
        applies: always,
    },
    Check {
        id: "GPU-005",
        family: Family::GpuIsolation,
        title: "Privileged container can run on GPU nodes",
        severity: Severity::High,
        rationale: "A privileged container sees every device on the host, so on a GPU node it can use and read all GPUs regardless of the device plugin, and it controls the node that serves inference.",
        remediation: "Drop `privileged: true`, or keep the workload off GPU nodes (remove the GPU toleration, add a nodeSelector for non-GPU nodes). Only the NVIDIA operator's own DaemonSets should run privileged there.",
        run: Run::Cluster(privileged_on_gpu_nodes),
        applies: always,
    },
    Check {
        id: "GPU-006",
        family: Family::GpuIsolation,
        title: "PCI-scoped inference does not run on a dedicated node pool",
        severity: Severity::High,
        rationale: "In-scope (cardholder data) inference that shares GPU nodes with out-of-scope tenants pulls those tenants and nodes into PCI DSS scope and exposes GPU memory across the boundary (PCI DSS 1.2/1.3 segmentation).",
        remediation: "Pin PCI-scoped templates to a dedicated pool (nodeSelector such as `hangar.dev/pool: pci-gpu`) and taint that pool with a key only PCI workloads tolerate, so no other GPU workload can land there.",
        run: Run::Cluster(pci_not_dedicated),
        applies: always,
    },
    Check {
        id: "GPU-007",
        family: Family::GpuIsolation,
        title: "Inference container has no memory limit or no CPU request",
        severity: Severity::Medium,
        rationale: "Model servers load tens of gigabytes into host memory; without a memory limit one can OOM the node and its neighbours, and without a CPU request it is starved by noisy neighbours (tokenisation and scheduling run on CPU).",
        remediation: "Set `resources.limits.memory` and `resources.requests.cpu` on every container (or a LimitRange with `default.memory` and `defaultRequest.cpu` in the namespace).",
        run: Run::Endpoint(missing_limits),
        applies: always,
    },
    Check {
        id: "GPU-008",
        family: Family::GpuIsolation,
        title: "Remote model code is trusted without a sandbox runtime",
        severity: Severity::Medium,
        rationale: "`--trust-remote-code` runs Python shipped with the model repository inside the server; without a sandbox runtime (gVisor, Kata) a malicious or compromised model executes with direct access to the node's kernel and GPU driver.",
        remediation: "Remove `--trust-remote-code` (use a model supported natively, or vendor and review its code), or run the pod with a sandbox `runtimeClassName` such as `gvisor` or `kata`.",
        run: Run::Endpoint(trust_remote_code_unsandboxed),
        applies: always,
    },
];

/// A DaemonSet, or a pod a DaemonSet created.
fn is_daemon_set(w: &Workload) -> bool {
    w.object_ref().kind == "DaemonSet"
        || w.meta
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "DaemonSet")
}

/// Image paths of the NVIDIA GPU operator and its operands (device plugin, DCGM, feature
/// discovery, container toolkit, MIG manager, driver), which legitimately reach every GPU.
const NVIDIA_OPERAND_IMAGES: &[&str] = &[
    "k8s-device-plugin",
    "gpu-operator",
    "dcgm",
    "gpu-feature-discovery",
    "container-toolkit",
    "k8s-mig-manager",
    "k8s-driver-manager",
    "nvidia/driver",
];

/// Whether `container` is one of the NVIDIA operator's node agents: it runs in a DaemonSet and
/// its own image is an NVIDIA operand. A foreign container beside it is not exempt.
fn is_nvidia_operand(w: &Workload, container: &Container) -> bool {
    let image = container.image.as_deref().unwrap_or_default();
    let path = ImageRef::parse(image).path;
    is_daemon_set(w) && NVIDIA_OPERAND_IMAGES.iter().any(|m| path.contains(m))
}

/// Whether the container itself requests or limits an accelerator (or a DRA claim).
fn container_requests_accelerator(c: &Container) -> bool {
    c.resources.as_ref().is_some_and(|r| {
        [&r.limits, &r.requests]
            .into_iter()
            .flatten()
            .flat_map(|m| m.iter())
            .any(|(name, q)| is_accelerator(name) && q.0 != "0")
            || r.claims.as_ref().is_some_and(|c| !c.is_empty())
    })
}

/// Whether the toleration admits the pod past a taint with one of the policy's GPU keys.
fn tolerates_gpu_key(t: &Toleration, policy: &Policy) -> bool {
    let key = t.key.as_deref().unwrap_or_default();
    let fencing = t
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == "NoSchedule" || e == "NoExecute");
    fencing && policy.gpu_pool.taint_keys.iter().any(|k| k == key)
}

/// Selector keys that say nothing about the node pool.
const NOT_A_POOL: &[&str] = &[
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
];

/// Whether a requirement narrows the nodes by a pool-like key (`In`/`Exists`/`Gt`/`Lt`).
fn requirement_pins(r: &NodeSelectorRequirement, accept: &dyn Fn(&str, &[String]) -> bool) -> bool {
    matches!(r.operator.as_str(), "In" | "Exists" | "Gt" | "Lt")
        && accept(&r.key, r.values.as_deref().unwrap_or_default())
}

/// Whether the template is confined to nodes whose selector entry or required affinity passes
/// `accept(key, values)`: a nodeSelector entry does, or every required affinity term does.
fn pinned_by(t: &PodTemplate, accept: &dyn Fn(&str, &[String]) -> bool) -> bool {
    let selector = t
        .spec
        .node_selector
        .iter()
        .flatten()
        .any(|(k, v)| accept(k, std::slice::from_ref(v)));
    let terms = required_terms(t);
    let affinity = !terms.is_empty()
        && terms.iter().all(|term| {
            term.match_expressions
                .iter()
                .flatten()
                .any(|r| requirement_pins(r, accept))
                || term
                    .match_fields
                    .iter()
                    .flatten()
                    .any(|r| r.operator == "In" && r.key == "metadata.name")
        });
    selector || affinity
}

fn pins_a_pool(key: &str, _: &[String]) -> bool {
    !NOT_A_POOL.contains(&key)
}

fn names_pci(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    text.contains("pci") || text.contains("cde")
}

/// A selector entry that distinguishes a PCI pool: its key or value names `pci` or `cde` (and
/// the value does not negate it, as `pci: "false"` would).
fn pins_pci_pool(key: &str, values: &[String]) -> bool {
    let negated = |v: &String| {
        matches!(
            v.to_ascii_lowercase().as_str(),
            "false" | "no" | "0" | "none"
        )
    };
    (names_pci(key) && !values.iter().any(negated)) || values.iter().any(|v| names_pci(v))
}

/// The data scope of a workload: its label, its pod template's, its namespace's, or the
/// policy's default (as discovery decides it for endpoints).
fn workload_scope(w: &Workload, snapshot: &Snapshot, policy: &Policy) -> Option<DataScope> {
    let namespace = &w.object_ref().namespace;
    w.meta
        .labels
        .as_ref()
        .and_then(|l| l.get(DATA_SCOPE_LABEL))
        .or_else(|| w.template.labels.get(DATA_SCOPE_LABEL))
        .map(String::as_str)
        .or_else(|| {
            snapshot
                .find::<Namespace>("", namespace)
                .and_then(|n| n.object.label(DATA_SCOPE_LABEL))
        })
        .and_then(DataScope::parse)
        .or(policy.default_data_scope)
}

fn taint_text(key: &str, value: Option<&str>, effect: &str) -> String {
    match value {
        Some(v) if !v.is_empty() => format!("{key}={v}:{effect}"),
        _ => format!("{key}:{effect}"),
    }
}

/// Lists at most `max` items, then how many more.
fn list(items: &[String], max: usize) -> String {
    let shown = items
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > max {
        format!("{shown} and {} more", items.len() - max)
    } else {
        shown
    }
}

// ---------------------------------------------------------------------------------------------
// The checks.

fn gpu_node_untainted(snapshot: &Snapshot, _: &Inventory, policy: &Policy) -> Vec<Finding> {
    let mut findings = Vec::new();
    for node in &snapshot.nodes {
        if !is_gpu_node(&node.object, policy) {
            continue;
        }
        let fenced =
            fencing_taints(&node.object).any(|t| policy.gpu_pool.taint_keys.contains(&t.key));
        if fenced {
            continue;
        }
        let taints: Vec<String> = node
            .object
            .spec
            .iter()
            .flat_map(|s| s.taints.iter().flatten())
            .map(|t| format!("`{}`", taint_text(&t.key, t.value.as_deref(), &t.effect)))
            .collect();
        let present = if taints.is_empty() {
            "has no taints".to_owned()
        } else {
            format!("has only {}", taints.join(", "))
        };
        findings.push(Finding::on(
            "GPU-001",
            node.object_ref(),
            &node.origin,
            Some("spec.taints".into()),
            format!(
                "GPU node `{}` ({}) {present}: none is a NoSchedule/NoExecute taint with a GPU key ({})",
                node.object.name(),
                gpu_evidence(&node.object, policy),
                policy.gpu_pool.taint_keys.join(", ")
            ),
        ));
    }
    findings
}

/// Why a node counts as a GPU node, in words.
fn gpu_evidence(node: &Node, policy: &Policy) -> String {
    let status = node.status.as_ref();
    let offered = status
        .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()))
        .into_iter()
        .flatten()
        .find(|(name, q)| is_accelerator(name) && q.0 != "0");
    if let Some((name, q)) = offered {
        return format!("offers {name}={}", q.0);
    }
    policy
        .gpu_pool
        .node_labels
        .iter()
        .find(|l| node.label(l).is_some())
        .map_or_else(|| "GPU node".to_owned(), |l| format!("labelled `{l}`"))
}

fn tolerates_gpu_without_request(
    _: &Snapshot,
    inventory: &Inventory,
    policy: &Policy,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for w in inventory.workloads.iter() {
        let t = &w.template;
        if !accelerator_requests(t).is_empty() {
            continue;
        }
        let object = w.object_ref();
        for (i, tol) in t.spec.tolerations.iter().flatten().enumerate() {
            let why = if tolerates_everything(tol) {
                // System node agents (kube-proxy, CNI, CSI) must run everywhere.
                if object.namespace == "kube-system" {
                    continue;
                }
                "tolerates every taint (`operator: Exists` with no key), so it can land on GPU nodes".to_owned()
            } else if tolerates_gpu_key(tol, policy) {
                // Device plugins and GPU exporters run on GPU nodes without requesting a GPU.
                if is_daemon_set(w) {
                    continue;
                }
                format!(
                    "tolerates the GPU taint `{}`",
                    tol.key.as_deref().unwrap_or_default()
                )
            } else {
                continue;
            };
            findings.push(Finding::on(
                "GPU-002",
                object.clone(),
                &t.origin,
                Some(format!("{}.tolerations[{i}]", t.spec_path)),
                format!("`{object}` requests no accelerator but {why}"),
            ));
        }
    }
    findings
}

fn not_pinned_to_pool(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    endpoint
        .templates
        .iter()
        .filter(|t| !pinned_by(t, &pins_a_pool))
        .filter_map(|t| {
            let accelerators = accelerator_requests(t);
            (!accelerators.is_empty()).then(|| {
                Finding::on_template(
                    "GPU-003",
                    endpoint,
                    t,
                    format!("{}.nodeSelector", t.spec_path),
                    format!(
                        "pods requesting {} have no nodeSelector and no required node affinity naming a node pool",
                        accelerators.join(", ")
                    ),
                )
            })
        })
        .collect()
}

/// Values of `NVIDIA_VISIBLE_DEVICES` that grant no GPU.
const NO_DEVICES: &[&str] = &["", "void", "none"];

fn visible_devices_without_request(
    _: &Snapshot,
    inventory: &Inventory,
    _: &Policy,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for w in inventory.workloads.iter() {
        for (path, c) in w.template.containers() {
            if container_requests_accelerator(c) || is_nvidia_operand(w, c) {
                continue;
            }
            let env = c.env.as_deref().unwrap_or_default();
            let Some((i, var)) = env
                .iter()
                .enumerate()
                .find(|(_, e)| e.name == "NVIDIA_VISIBLE_DEVICES")
            else {
                continue;
            };
            let value = match (&var.value, &var.value_from) {
                (Some(v), _) if NO_DEVICES.contains(&v.trim().to_ascii_lowercase().as_str()) => {
                    continue;
                }
                (Some(v), _) => format!("`NVIDIA_VISIBLE_DEVICES={v}`"),
                (None, Some(_)) => "`NVIDIA_VISIBLE_DEVICES` (from a reference)".to_owned(),
                (None, None) => continue,
            };
            let capabilities = env
                .iter()
                .find(|e| e.name == "NVIDIA_DRIVER_CAPABILITIES")
                .and_then(|e| e.value.as_deref())
                .map(|v| format!(" with `NVIDIA_DRIVER_CAPABILITIES={v}`"))
                .unwrap_or_default();
            findings.push(Finding::on(
                "GPU-004",
                w.object_ref().clone(),
                &w.template.origin,
                Some(format!("{path}.env[{i}]")),
                format!(
                    "container `{}` sets {value}{capabilities} but requests no accelerator",
                    c.name
                ),
            ));
        }
    }
    findings
}

/// Why pods of `t` can land on GPU nodes, if they can.
fn reaches_gpu_nodes(t: &PodTemplate, snapshot: &Snapshot, policy: &Policy) -> Option<String> {
    let tolerations = t.spec.tolerations.as_deref().unwrap_or_default();
    if let Some(tol) = tolerations
        .iter()
        .find(|tol| tolerates_gpu_key(tol, policy))
    {
        return Some(format!(
            "tolerates the GPU taint `{}`",
            tol.key.as_deref().unwrap_or_default()
        ));
    }
    if tolerations.iter().any(tolerates_everything) {
        return Some("tolerates every taint, GPU taints included".into());
    }
    if let Some(label) = t
        .spec
        .node_selector
        .iter()
        .flatten()
        .map(|(k, _)| k)
        .find(|k| policy.gpu_pool.node_labels.contains(k))
    {
        return Some(format!("selects GPU nodes by `{label}`"));
    }
    let nodes: Vec<String> = snapshot
        .nodes
        .iter()
        .filter(|n| is_gpu_node(&n.object, policy) && can_schedule(t, &n.object))
        .map(|n| format!("`{}`", n.object.name()))
        .collect();
    (!nodes.is_empty()).then(|| format!("can be scheduled on GPU node {}", list(&nodes, 3)))
}

fn privileged_on_gpu_nodes(
    snapshot: &Snapshot,
    inventory: &Inventory,
    policy: &Policy,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for w in inventory.workloads.iter() {
        let privileged: Vec<(String, &Container)> = w
            .template
            .containers()
            .filter(|(_, c)| {
                c.security_context
                    .as_ref()
                    .is_some_and(|s| s.privileged == Some(true))
            })
            .filter(|(_, c)| !is_nvidia_operand(w, c))
            .collect();
        if privileged.is_empty() {
            continue;
        }
        let Some(why) = reaches_gpu_nodes(&w.template, snapshot, policy) else {
            continue;
        };
        for (path, c) in privileged {
            findings.push(Finding::on(
                "GPU-005",
                w.object_ref().clone(),
                &w.template.origin,
                Some(format!("{path}.securityContext.privileged")),
                format!("container `{}` is privileged and its pod {why}", c.name),
            ));
        }
    }
    findings
}

/// A workload and the data scope it declares.
type ScopedWorkload<'a> = (&'a Workload, Option<DataScope>);

fn pci_not_dedicated(snapshot: &Snapshot, inventory: &Inventory, policy: &Policy) -> Vec<Finding> {
    let pci: Vec<&Endpoint> = inventory
        .endpoints
        .iter()
        .filter(|e| e.data_scope == Some(DataScope::Pci))
        .collect();
    if pci.is_empty() {
        return Vec::new();
    }
    // Workloads of PCI endpoints are in scope whatever their own labels say.
    let pci_owned: HashSet<&ObjectRef> = pci
        .iter()
        .flat_map(|e| {
            e.workloads
                .iter()
                .chain(e.templates.iter().map(|t| &t.owner))
        })
        .collect();
    // Computed once for the whole cluster: per GPU node, the out-of-scope GPU workloads it admits.
    let others: Vec<ScopedWorkload<'_>> = if snapshot.nodes.is_empty() {
        Vec::new()
    } else {
        inventory
            .workloads
            .iter()
            .filter(|w| !accelerator_requests(&w.template).is_empty())
            .map(|w| {
                let scope = workload_scope(w, snapshot, policy);
                (w, scope)
            })
            .filter(|(w, scope)| {
                *scope != Some(DataScope::Pci) && !pci_owned.contains(w.object_ref())
            })
            .collect()
    };
    // Workloads with the same placement land on the same nodes: decide once per placement. In
    // key order, so the workloads a finding names are the same from run to run.
    let mut by_placement: BTreeMap<String, Vec<&ScopedWorkload<'_>>> = BTreeMap::new();
    for scoped in &others {
        by_placement
            .entry(placement_key(&scoped.0.template))
            .or_default()
            .push(scoped);
    }
    let shared_nodes: Vec<(&Node, Vec<&ScopedWorkload<'_>>)> = snapshot
        .nodes
        .iter()
        .filter(|n| is_gpu_node(&n.object, policy))
        .map(|n| {
            let admitted = by_placement
                .values()
                .filter(|group| can_schedule(&group[0].0.template, &n.object))
                .flatten()
                .copied()
                .collect();
            (&n.object, admitted)
        })
        .collect();
    let mut findings = Vec::new();
    for endpoint in pci {
        for t in &endpoint.templates {
            let mut problems = Vec::new();
            if !pinned_by(t, &pins_pci_pool) {
                problems.push(
                    "no nodeSelector or required node affinity names a PCI pool (a key or value with `pci` or `cde`)"
                        .to_owned(),
                );
            }
            // The first GPU node this template may use that also admits an out-of-scope workload.
            let sharing = shared_nodes
                .iter()
                .filter(|(node, _)| can_schedule(t, node))
                .find_map(|(node, admitted)| {
                    let named: Vec<String> = admitted
                        .iter()
                        .take(3)
                        .map(|(w, scope)| {
                            format!(
                                "`{}` (scope {})",
                                w.object_ref(),
                                scope.map_or("undeclared", DataScope::as_str)
                            )
                        })
                        .collect();
                    if named.is_empty() {
                        return None;
                    }
                    let more = admitted.len() - named.len();
                    let more = if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    };
                    Some(format!(
                        "GPU node `{}` also admits non-PCI GPU workload {}{more}",
                        node.name(),
                        named.join(", ")
                    ))
                });
            problems.extend(sharing);
            if !problems.is_empty() {
                findings.push(Finding::on_template(
                    "GPU-006",
                    endpoint,
                    t,
                    format!("{}.nodeSelector", t.spec_path),
                    format!(
                        "PCI-scoped pods are not on a dedicated pool: {}",
                        problems.join("; ")
                    ),
                ));
            }
        }
    }
    findings
}

/// Whether a LimitRange in `namespace` gives containers a default memory limit and a default
/// CPU request (LimitRange is not a typed kind: it is read from `others`).
fn limit_range_defaults(snapshot: &Snapshot, namespace: &str) -> (bool, bool) {
    let mut memory_limit = false;
    let mut cpu_request = false;
    for lr in snapshot
        .others
        .iter()
        .filter(|o| o.object.kind == "LimitRange" && o.object.namespace() == namespace)
    {
        let limits = lr.object.get("spec.limits").and_then(|v| v.as_array());
        for item in limits.into_iter().flatten() {
            if item.get("type").and_then(|t| t.as_str()) != Some("Container") {
                continue;
            }
            let has = |field: &str, resource: &str| {
                item.get(field).and_then(|d| d.get(resource)).is_some()
            };
            memory_limit |= has("default", "memory");
            // Without defaultRequest, the default limit is also the default request.
            cpu_request |= has("defaultRequest", "cpu") || has("default", "cpu");
        }
    }
    (memory_limit, cpu_request)
}

fn missing_limits(snapshot: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    let mut findings = Vec::new();
    for t in &endpoint.templates {
        let (default_memory, default_cpu) = limit_range_defaults(snapshot, &t.owner.namespace);
        for (i, c) in t.spec.containers.iter().enumerate() {
            let resources = c.resources.as_ref();
            let limits = resources.and_then(|r| r.limits.as_ref());
            let requests = resources.and_then(|r| r.requests.as_ref());
            let memory_limit = limits.is_some_and(|l| l.contains_key("memory")) || default_memory;
            // A CPU limit without a request makes the request equal to the limit.
            let cpu_request = requests.is_some_and(|r| r.contains_key("cpu"))
                || limits.is_some_and(|l| l.contains_key("cpu"))
                || default_cpu;
            let missing: Vec<&str> = [
                (!memory_limit).then_some("no memory limit"),
                (!cpu_request).then_some("no CPU request"),
            ]
            .into_iter()
            .flatten()
            .collect();
            if missing.is_empty() {
                continue;
            }
            findings.push(Finding::on_template(
                "GPU-007",
                endpoint,
                t,
                format!("{}.containers[{i}].resources", t.spec_path),
                format!("container `{}` has {}", c.name, missing.join(" and ")),
            ));
        }
    }
    findings
}

const SANDBOX_RUNTIMES: &[&str] = &["gvisor", "kata", "runsc"];

/// Where the container turns on remote code: a flag in its command line, or TGI's env switch.
fn trusts_remote_code(path: &str, c: &Container) -> Option<(String, String)> {
    let flag = |s: &str| {
        let s = s.trim();
        s == "--trust-remote-code"
            || s == "--trust_remote_code"
            || (s.starts_with("--trust-remote-code=") && !s.ends_with("=false"))
            || (s.starts_with("--trust_remote_code=") && !s.ends_with("=false"))
    };
    if c.args.iter().flatten().any(|a| flag(a)) {
        return Some((format!("{path}.args"), "`--trust-remote-code`".into()));
    }
    if c.command.iter().flatten().any(|a| flag(a)) {
        return Some((format!("{path}.command"), "`--trust-remote-code`".into()));
    }
    // A shell line (`sh -c "vllm serve … --trust-remote-code"`) carries the flag inside one arg.
    if command_line(c).split_whitespace().any(flag) {
        let field = if c.args.is_some() { "args" } else { "command" };
        return Some((format!("{path}.{field}"), "`--trust-remote-code`".into()));
    }
    let env = c.env.as_deref().unwrap_or_default();
    env.iter()
        .enumerate()
        .find(|(_, e)| {
            e.name == "TRUST_REMOTE_CODE"
                && e.value
                    .as_deref()
                    .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1"))
        })
        .map(|(i, e)| {
            (
                format!("{path}.env[{i}]"),
                format!(
                    "`TRUST_REMOTE_CODE={}`",
                    e.value.as_deref().unwrap_or_default()
                ),
            )
        })
}

fn trust_remote_code_unsandboxed(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    let mut findings = Vec::new();
    for t in &endpoint.templates {
        let runtime = t.spec.runtime_class_name.as_deref().unwrap_or_default();
        let lowered = runtime.to_ascii_lowercase();
        if SANDBOX_RUNTIMES.iter().any(|s| lowered.contains(s)) {
            continue;
        }
        let runtime = if runtime.is_empty() {
            "no runtimeClassName".to_owned()
        } else {
            format!("runtimeClassName `{runtime}`, not a sandbox")
        };
        for (path, c) in t.containers() {
            if let Some((field, setting)) = trusts_remote_code(&path, c) {
                findings.push(Finding::on_template(
                    "GPU-008",
                    endpoint,
                    t,
                    field,
                    format!(
                        "container `{}` runs model code with {setting} and the pod has {runtime}",
                        c.name
                    ),
                ));
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::{run, run_with, vllm};
    use hangar_core::nodes::requirement_matches;

    const GPU_NODE_TAINTED: &str = r#"apiVersion: v1
kind: Node
metadata: {name: gpu-a, labels: {nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3}}
spec:
  taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]
status: {allocatable: {nvidia.com/gpu: "8"}}
"#;

    fn untainted(node: &str) -> String {
        node.replace(
            "  taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]\n",
            "  taints: [{key: team, value: ml, effect: PreferNoSchedule}]\n",
        )
    }

    /// A Deployment named `name` in namespace `ns` with `spec` lines (indent 6) in its pod spec.
    fn deployment(ns: &str, name: &str, pod: &str, container: &str) -> String {
        format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
{pod}
      containers:
      - name: main
        image: python:3.12
{container}
"#
        )
    }

    #[test]
    fn gpu_001_fires_on_a_gpu_node_with_only_a_soft_taint() {
        let findings = run("GPU-001", &untainted(GPU_NODE_TAINTED));
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].object.name, "gpu-a");
        assert_eq!(findings[0].field.as_deref(), Some("spec.taints"));
        assert!(findings[0].message.contains("offers nvidia.com/gpu=8"));
        assert!(
            findings[0]
                .message
                .contains("has only `team=ml:PreferNoSchedule`")
        );
    }

    #[test]
    fn gpu_001_recognises_gpu_nodes_by_label_and_ignores_cpu_nodes() {
        let labelled = "apiVersion: v1\nkind: Node\nmetadata: {name: g, labels: {cloud.google.com/gke-accelerator: nvidia-l4}}\n";
        let findings = run("GPU-001", labelled);
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("has no taints"));
        let cpu = "apiVersion: v1\nkind: Node\nmetadata: {name: c}\nstatus: {allocatable: {cpu: \"16\"}}\n";
        assert!(run("GPU-001", cpu).is_empty());
    }

    #[test]
    fn gpu_001_is_quiet_on_a_tainted_gpu_node() {
        assert!(run("GPU-001", GPU_NODE_TAINTED).is_empty());
    }

    const GPU_TOLERATION: &str =
        "      tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]";
    const TOLERATE_ALL: &str = "      tolerations: [{operator: Exists}]";

    #[test]
    fn gpu_002_fires_on_a_cpu_workload_tolerating_the_gpu_taint() {
        let findings = run("GPU-002", &deployment("web", "api", GPU_TOLERATION, ""));
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.template.spec.tolerations[0]")
        );
        assert!(
            findings[0]
                .message
                .contains("tolerates the GPU taint `nvidia.com/gpu`")
        );
    }

    #[test]
    fn gpu_002_fires_on_tolerate_everything_even_in_a_daemon_set_outside_kube_system() {
        let ds = deployment("monitoring", "log-agent", TOLERATE_ALL, "")
            .replace("kind: Deployment", "kind: DaemonSet");
        let findings = run("GPU-002", &ds);
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("tolerates every taint"));
    }

    #[test]
    fn gpu_002_is_quiet_for_gpu_pods_daemon_sets_with_gpu_tolerations_and_kube_system() {
        let gpu_pod = deployment(
            "ml",
            "train",
            GPU_TOLERATION,
            "        resources: {limits: {nvidia.com/gpu: \"1\"}}",
        );
        assert!(run("GPU-002", &gpu_pod).is_empty());
        let exporter = deployment("gpu-operator", "dcgm", GPU_TOLERATION, "")
            .replace("kind: Deployment", "kind: DaemonSet");
        assert!(run("GPU-002", &exporter).is_empty());
        let proxy = deployment("kube-system", "kube-proxy", TOLERATE_ALL, "")
            .replace("kind: Deployment", "kind: DaemonSet");
        assert!(run("GPU-002", &proxy).is_empty());
    }

    #[test]
    fn gpu_002_reports_a_deployment_once_not_its_replica_sets_and_pods() {
        let rs = r#"apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: api-5d9
  namespace: web
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: api, uid: u1, controller: true}]
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
      containers: [{name: main, image: "python:3.12"}]
"#;
        let yaml = format!("{}---\n{rs}", deployment("web", "api", GPU_TOLERATION, ""));
        assert_eq!(run("GPU-002", &yaml).len(), 1);
    }

    #[test]
    fn gpu_003_fires_on_an_unpinned_gpu_endpoint() {
        let findings = run("GPU-003", &vllm(""));
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.template.spec.nodeSelector")
        );
        assert!(findings[0].message.contains("nvidia.com/gpu=1"));
        // Selecting only the OS does not pick a pool.
        let os_only = vllm("").replace(
            "      containers:",
            "      nodeSelector: {kubernetes.io/os: linux}\n      containers:",
        );
        assert_eq!(run("GPU-003", &os_only).len(), 1);
    }

    #[test]
    fn gpu_003_is_quiet_when_pinned_by_selector_or_required_affinity() {
        let selector = vllm("").replace(
            "      containers:",
            "      nodeSelector: {hangar.dev/pool: inference}\n      containers:",
        );
        assert!(run("GPU-003", &selector).is_empty());
        let affinity = vllm("").replace(
            "      containers:",
            r#"      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions: [{key: nvidia.com/gpu.product, operator: In, values: [NVIDIA-L4]}]
      containers:"#,
        );
        assert!(run("GPU-003", &affinity).is_empty());
    }

    const VISIBLE_ALL: &str = "        env: [{name: NVIDIA_VISIBLE_DEVICES, value: all}, {name: NVIDIA_DRIVER_CAPABILITIES, value: \"compute,utility\"}]";

    #[test]
    fn gpu_004_fires_on_visible_devices_without_a_gpu_request() {
        let findings = run("GPU-004", &deployment("web", "miner", "", VISIBLE_ALL));
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.template.spec.containers[0].env[0]")
        );
        assert!(findings[0].message.contains(
            "`NVIDIA_VISIBLE_DEVICES=all` with `NVIDIA_DRIVER_CAPABILITIES=compute,utility`"
        ));
    }

    #[test]
    fn gpu_004_is_quiet_with_a_request_void_value_or_the_device_plugin() {
        let requested = deployment(
            "ml",
            "job",
            "",
            &format!("{VISIBLE_ALL}\n        resources: {{limits: {{nvidia.com/gpu: \"1\"}}}}"),
        );
        assert!(run("GPU-004", &requested).is_empty());
        let void = deployment(
            "web",
            "app",
            "",
            &VISIBLE_ALL.replace("value: all", "value: void"),
        );
        assert!(run("GPU-004", &void).is_empty());
        let plugin = deployment("gpu-operator", "nvidia-device-plugin", "", VISIBLE_ALL)
            .replace("kind: Deployment", "kind: DaemonSet")
            .replace("python:3.12", "nvcr.io/nvidia/k8s-device-plugin:v0.17.0");
        assert!(run("GPU-004", &plugin).is_empty());
        // The same image in a Deployment is not the operator's node agent.
        let imposter = plugin.replace("kind: DaemonSet", "kind: Deployment");
        assert_eq!(run("GPU-004", &imposter).len(), 1);
    }

    const PRIVILEGED: &str = "        securityContext: {privileged: true}";

    #[test]
    fn gpu_005_fires_on_a_privileged_pod_tolerating_gpu_nodes() {
        let ds = deployment("ops", "node-debugger", TOLERATE_ALL, PRIVILEGED)
            .replace("kind: Deployment", "kind: DaemonSet");
        let findings = run("GPU-005", &ds);
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.template.spec.containers[0].securityContext.privileged")
        );
        assert!(findings[0].message.contains("tolerates every taint"));
    }

    #[test]
    fn gpu_005_fires_when_an_untainted_gpu_node_in_the_snapshot_admits_it() {
        let yaml = format!(
            "{}---\n{}",
            untainted(GPU_NODE_TAINTED),
            deployment("ops", "tool", "", PRIVILEGED)
        );
        let findings = run("GPU-005", &yaml);
        assert_eq!(findings.len(), 1);
        assert!(
            findings[0]
                .message
                .contains("can be scheduled on GPU node `gpu-a`")
        );
    }

    #[test]
    fn gpu_005_is_quiet_off_gpu_nodes_and_for_the_nvidia_driver() {
        let yaml = format!(
            "{GPU_NODE_TAINTED}---\n{}",
            deployment("ops", "tool", "", PRIVILEGED)
        );
        assert!(run("GPU-005", &yaml).is_empty());
        let driver = deployment("gpu-operator", "nvidia-driver", TOLERATE_ALL, PRIVILEGED)
            .replace("kind: Deployment", "kind: DaemonSet")
            .replace("python:3.12", "nvcr.io/nvidia/driver:550.127.08");
        assert!(run("GPU-005", &driver).is_empty());
    }

    fn pci_vllm(pod: &str) -> String {
        vllm("")
            .replace(
                "metadata: {name: chat, namespace: ml}",
                "metadata: {name: chat, namespace: ml, labels: {hangar.dev/data-scope: pci}}",
            )
            .replace("      containers:", &format!("{pod}\n      containers:"))
    }

    const PCI_POOL: &str = "      nodeSelector: {hangar.dev/pool: pci-gpu}\n      tolerations: [{key: nvidia.com/gpu, operator: Exists}, {key: pci, operator: Exists}]";

    #[test]
    fn gpu_006_fires_on_a_pci_endpoint_not_pinned_to_a_pci_pool() {
        let findings = run("GPU-006", &pci_vllm(""));
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("names a PCI pool"));
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.template.spec.nodeSelector")
        );
    }

    #[test]
    fn gpu_006_names_the_non_pci_workload_sharing_its_gpu_node() {
        let node = GPU_NODE_TAINTED.replace(
            "labels: {nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3}",
            "labels: {nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3, hangar.dev/pool: pci-gpu}",
        );
        let batch = deployment(
            "research",
            "batch",
            GPU_TOLERATION,
            "        resources: {limits: {nvidia.com/gpu: \"1\"}}",
        );
        let yaml = format!("{node}---\n{batch}---\n{}", pci_vllm(PCI_POOL));
        let findings = run("GPU-006", &yaml);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0].message.contains(
                "GPU node `gpu-a` also admits non-PCI GPU workload `Deployment/research/batch` (scope undeclared)"
            ),
            "{}",
            findings[0].message
        );
        // Fence the pool with a taint only PCI pods tolerate: the batch job can no longer land.
        let fenced = node.replace(
            "effect: NoSchedule}]",
            "effect: NoSchedule}, {key: pci, value: \"true\", effect: NoSchedule}]",
        );
        let yaml = format!("{fenced}---\n{batch}---\n{}", pci_vllm(PCI_POOL));
        assert!(run("GPU-006", &yaml).is_empty());
    }

    #[test]
    fn gpu_006_is_quiet_for_pinned_pci_and_for_out_of_scope_endpoints() {
        assert!(run("GPU-006", &pci_vllm(PCI_POOL)).is_empty());
        assert!(run("GPU-006", &vllm("")).is_empty());
        let negated = pci_vllm("      nodeSelector: {pool.example.com/pci: \"false\"}");
        assert_eq!(run("GPU-006", &negated).len(), 1);
    }

    #[test]
    fn gpu_006_follows_the_policy_default_scope() {
        let policy = Policy {
            default_data_scope: Some(DataScope::Pci),
            ..Policy::default()
        };
        assert_eq!(run_with("GPU-006", &vllm(""), &policy).len(), 1);
    }

    #[test]
    fn gpu_007_fires_per_container_naming_what_is_missing() {
        let findings = run("GPU-007", &vllm(""));
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].message,
            "container `vllm` has no memory limit and no CPU request"
        );
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.template.spec.containers[0].resources")
        );
    }

    #[test]
    fn gpu_007_is_quiet_with_limits_or_a_limit_range() {
        let sized = vllm("").replace(
            "{limits: {nvidia.com/gpu: \"1\"}}",
            "{limits: {nvidia.com/gpu: \"1\", memory: 64Gi, cpu: \"8\"}}",
        );
        assert!(run("GPU-007", &sized).is_empty());
        let limit_range = r#"apiVersion: v1
kind: LimitRange
metadata: {name: defaults, namespace: ml}
spec:
  limits: [{type: Container, default: {memory: 32Gi}, defaultRequest: {cpu: "2"}}]
"#;
        assert!(run("GPU-007", &format!("{}---\n{limit_range}", vllm(""))).is_empty());
    }

    #[test]
    fn gpu_008_fires_on_trust_remote_code_without_a_sandbox() {
        let yaml = vllm("        args: [--model, deepseek-ai/DeepSeek-V3, --trust-remote-code]");
        let findings = run("GPU-008", &yaml);
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.template.spec.containers[0].args")
        );
        assert!(findings[0].message.contains("no runtimeClassName"));
        let nvidia = yaml.replace(
            "      containers:",
            "      runtimeClassName: nvidia\n      containers:",
        );
        assert!(
            run("GPU-008", &nvidia)[0]
                .message
                .contains("runtimeClassName `nvidia`, not a sandbox")
        );
    }

    #[test]
    fn gpu_008_is_quiet_in_a_sandbox_or_without_the_flag() {
        let sandboxed = vllm("        args: [--trust-remote-code]").replace(
            "      containers:",
            "      runtimeClassName: gvisor-nvidia\n      containers:",
        );
        assert!(run("GPU-008", &sandboxed).is_empty());
        assert!(run("GPU-008", &vllm("        args: [--model, x]")).is_empty());
    }

    #[test]
    fn affinity_is_evaluated_like_the_scheduler() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1", "labels": {"pool": "pci-gpu", "gen": "5"}}
        }))
        .unwrap_or_default();
        let req = |key: &str, op: &str, values: &[&str]| NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
        };
        assert!(requirement_matches(
            &req("pool", "In", &["pci-gpu"]),
            node.label("pool")
        ));
        assert!(!requirement_matches(
            &req("pool", "NotIn", &["pci-gpu"]),
            node.label("pool")
        ));
        assert!(requirement_matches(
            &req("gen", "Gt", &["4"]),
            node.label("gen")
        ));
        assert!(!requirement_matches(
            &req("gen", "Lt", &["x"]),
            node.label("gen")
        ));
        assert!(requirement_matches(
            &req("zone", "DoesNotExist", &[]),
            node.label("zone")
        ));
    }
}
