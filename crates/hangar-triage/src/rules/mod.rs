//! The diagnosis rules: pure functions from one pod's evidence to a diagnosis.
//!
//! Each rule looks for one cause and says how sure it is. `diagnose` runs them all and keeps the
//! most confident; a pod nothing matches is `healthy` when it is running and ready, `unknown`
//! otherwise. The sides each family chooses, and why, are written at the top of its module.

mod config;
mod crash;
pub(crate) mod facts;
mod gpu;
mod image;
mod model_load;
mod nccl;
mod network;
mod oom;
mod probe;
mod scheduling;
mod serving;
pub mod signatures;
mod steps;
#[cfg(test)]
mod test_support;

use crate::evidence::{ContainerState, PodEvidence};
use crate::verdict::{Category, Diagnosis, Evidence};
use facts::{
    Kubectl, long_running_containers, pod_status_evidence, status_path, terminations, waiting,
};
pub use signatures::Hits;

/// One diagnosis rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Stable id, shown with each verdict (`TRI-HOST-OOM`).
    pub id: &'static str,
    /// What the rule recognises, for `docs/triage.md`.
    pub title: &'static str,
    /// The rule itself: the pod's evidence and the signatures found in its logs, scanned once.
    pub run: for<'a> fn(&'a PodEvidence, &Hits<'a>) -> Option<Diagnosis>,
}

/// Every rule, in no particular order: `diagnose` ranks their answers.
pub const RULES: &[Rule] = &[
    Rule {
        id: "TRI-HOST-OOM",
        title: "The kernel OOM-killed a container (OOMKilled, exit 137): at its limit, or on a node out of memory",
        run: oom::host_oom,
    },
    Rule {
        id: "TRI-HOST-OOM-EVICTED",
        title: "The kubelet evicted the pod because the node was low on memory",
        run: oom::evicted_for_memory,
    },
    Rule {
        id: "TRI-HOST-MEMORY-REFUSED",
        title: "The server refused to load the model, or a memory monitor killed its workers, for lack of host memory (Ollama, Ray)",
        run: oom::server_refused_for_memory,
    },
    Rule {
        id: "TRI-GPU-OOM",
        title: "The GPU ran out of memory: at start-up (configuration), while serving (capacity), or held by another process (the node)",
        run: oom::gpu_oom,
    },
    Rule {
        id: "TRI-GPU-HARDWARE",
        title: "Hardware Xid errors, uncorrectable ECC, a GPU off the bus, or the node's GPU software (driver too old or not loaded, no nvidia runtime) under the pod",
        run: gpu::gpu_hardware,
    },
    Rule {
        id: "TRI-NCCL",
        title: "NCCL collectives time out or fail between GPU ranks; /dev/shm too small for NCCL",
        run: nccl::nccl,
    },
    Rule {
        id: "TRI-SCHEDULING",
        title: "The scheduler cannot place the pod: GPUs, taints, affinity, volume claims",
        run: scheduling::failed_scheduling,
    },
    Rule {
        id: "TRI-ADMISSION",
        title: "The kubelet rejected the scheduled pod: the device plugin could not allocate its GPUs (UnexpectedAdmissionError)",
        run: scheduling::admission_rejected,
    },
    Rule {
        id: "TRI-PREEMPTED",
        title: "The scheduler preempted the pod for a higher-priority one",
        run: scheduling::preempted,
    },
    Rule {
        id: "TRI-NODE-LOST",
        title: "The pod's node is NotReady, or the node's disk filled and the kubelet evicted it (configuration when this pod's undeclared cache filled it)",
        run: scheduling::node_lost,
    },
    Rule {
        id: "TRI-IMAGE-PULL",
        title: "The image cannot be pulled: wrong name or tag, credentials, rate limits, network",
        run: image::image_pull,
    },
    Rule {
        id: "TRI-MODEL-LOAD",
        title: "The model cannot be loaded: gated or missing repository, empty storage URI, missing or corrupt files, incompatible engine, remote code, architecture",
        run: model_load::model_load,
    },
    Rule {
        id: "TRI-CONFIG-REFERENCE",
        title: "A Secret, ConfigMap or key the container references does not exist (CreateContainerConfigError)",
        run: config::missing_reference,
    },
    Rule {
        id: "TRI-CONFIG-START",
        title: "The container's command cannot start (CreateContainerError, StartError)",
        run: config::cannot_start,
    },
    Rule {
        id: "TRI-CONFIG-ARGS",
        title: "The server rejects its flags or configuration values",
        run: config::bad_arguments,
    },
    Rule {
        id: "TRI-CONFIG-EPHEMERAL",
        title: "The pod exceeded its own ephemeral-storage limit (model cache on local disk)",
        run: config::ephemeral_storage,
    },
    Rule {
        id: "TRI-CONFIG-SHM",
        title: "/dev/shm is too small for the server's shared memory (Triton Python backend, PyTorch)",
        run: config::shm_too_small,
    },
    Rule {
        id: "TRI-CONFIG-FILESYSTEM",
        title: "The server cannot write its cache: read-only root filesystem or no permission",
        run: config::unwritable_path,
    },
    Rule {
        id: "TRI-CONFIG-SERVICE-LINKS",
        title: "A Service's injected `<SERVICE>_PORT=tcp://…` variable took the place of the server's own setting",
        run: config::service_link_collision,
    },
    Rule {
        id: "TRI-SIDECAR-CRASH",
        title: "A sidecar (proxy, auth gate) crash-loops beside a model server that is up and ready",
        run: config::sidecar_crash,
    },
    Rule {
        id: "TRI-PROBE-KILL",
        title: "A liveness or startup probe killed a server that was loading or busy (exit 137 without OOMKilled)",
        run: probe::probe_kill,
    },
    Rule {
        id: "TRI-PROBE-AUTH",
        title: "A probe gets 401/403 from a server that requires an API key",
        run: probe::probe_refused_auth,
    },
    Rule {
        id: "TRI-NET-LOOPBACK",
        title: "The server listens on loopback only, so probes and Services are refused",
        run: network::loopback_only,
    },
    Rule {
        id: "TRI-NET-UNREACHABLE",
        title: "A host name does not resolve, a dependency does not answer, or a download from it stalls (hub, object store, peers)",
        run: network::unreachable,
    },
    Rule {
        id: "TRI-CRASH-CUDA",
        title: "A GPU kernel faulted (illegal memory access; Xid 13/31/43): the application, not the hardware",
        run: crash::cuda_fault,
    },
    Rule {
        id: "TRI-SERVING-ERRORS",
        title: "The server is up but fails every request: a missing setting (chat template) or the same server error each time",
        run: serving::failing_requests,
    },
    Rule {
        id: "TRI-CRASH-ENGINE-DEAD",
        title: "The server's engine died and the server stopped, even with exit 0 (Completed)",
        run: crash::engine_died,
    },
    Rule {
        id: "TRI-CRASH-SIGNAL",
        title: "The server died on SIGSEGV or SIGABRT (below any rule whose cause the log also names)",
        run: crash::signal,
    },
    Rule {
        id: "TRI-CRASH-EXCEPTION",
        title: "The server exited on a Python exception no other rule recognises",
        run: crash::exception,
    },
];

/// Every diagnosis the rules reach for `pod`, most confident first.
pub fn diagnose_all(pod: &PodEvidence) -> Vec<Diagnosis> {
    ranked(pod, &Hits::scan(pod))
}

fn ranked<'a>(pod: &'a PodEvidence, hits: &Hits<'a>) -> Vec<Diagnosis> {
    let mut found: Vec<Diagnosis> = RULES.iter().filter_map(|r| (r.run)(pod, hits)).collect();
    found.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    found
}

/// The most confident diagnosis for `pod`; `healthy` when no rule fires and the pod is not in
/// trouble, `unknown` (with what was looked at) otherwise.
pub fn diagnose(pod: &PodEvidence) -> Diagnosis {
    let hits = Hits::scan(pod);
    match ranked(pod, &hits).into_iter().next() {
        Some(best) => best,
        None if hits.troubled() => unknown(pod),
        None => healthy(pod).unwrap_or_else(|| unknown(pod)),
    }
}

/// The pod is not in trouble (`facts::troubled`): say what was looked at.
fn healthy(pod: &PodEvidence) -> Option<Diagnosis> {
    let containers: Vec<_> = long_running_containers(pod).collect();
    if containers.is_empty() {
        return None;
    }
    let mut evidence: Vec<Evidence> = containers
        .iter()
        .map(|c| Evidence {
            source: format!("{} ({})", status_path(pod, c), pod.origin),
            text: format!("ready=true state=running restartCount={}", c.restart_count),
            at: match &c.state {
                Some(ContainerState::Running { started_at }) => started_at.clone(),
                _ => None,
            },
        })
        .collect();
    // Old restarts are shown, so a reader sees they were weighed and set aside.
    evidence.extend(
        terminations(pod)
            .into_iter()
            .filter(|t| t.exit_code != 0)
            .map(|t| {
                let mut e = t.evidence(pod);
                e.text
                    .push_str(" (more than an hour before the evidence was gathered)");
                e
            }),
    );
    Some(Diagnosis {
        rule: "TRI-HEALTHY",
        category: Category::Healthy,
        side: None,
        confidence: 0.9,
        summary: format!(
            "All {} containers are running and ready, with no recent restarts or warnings.",
            containers.len()
        ),
        evidence,
        next_steps: vec![format!(
            "If clients still see errors, look past the pod: the Service, gateway and the endpoint's other pods; {}",
            Kubectl::of(pod).describe()
        )],
    })
}

/// Nothing recognised: say what was looked at and how to look further.
fn unknown(pod: &PodEvidence) -> Diagnosis {
    let mut evidence = vec![pod_status_evidence(pod)];
    evidence.extend(waiting(pod).iter().map(|w| w.evidence(pod)));
    evidence.extend(
        terminations(pod)
            .iter()
            .filter(|t| t.matters(pod))
            .map(|t| t.evidence(pod)),
    );
    let lines: usize = facts::tails(pod)
        .iter()
        .map(|(_, _, t)| t.lines.len())
        .sum();
    evidence.push(Evidence {
        source: format!("{} (what triage read)", pod.pod),
        text: format!(
            "{} events about the pod, {} about its node, {lines} log lines from {} log tails; no rule matched",
            pod.events.len(),
            pod.node_events.len(),
            facts::tails(pod).len()
        ),
        at: None,
    });
    let kubectl = Kubectl::of(pod);
    let mut next_steps = vec![kubectl.describe(), kubectl.events()];
    for c in long_running_containers(pod) {
        let crashed = c.restart_count > 0 || c.last_state.is_some();
        next_steps.push(kubectl.logs(&c.name, crashed, None) + " | tail -n 100");
    }
    Diagnosis {
        rule: "TRI-UNKNOWN",
        category: Category::Unknown,
        side: None,
        confidence: 0.0,
        summary: "No rule recognised the cause; the evidence below is what was examined.".into(),
        evidence,
        next_steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::*;
    use hangar_core::Runtime;

    #[test]
    fn rule_ids_are_unique_and_prefixed() {
        let mut ids = std::collections::HashSet::new();
        for rule in RULES {
            assert!(rule.id.starts_with("TRI-"), "{}", rule.id);
            assert!(ids.insert(rule.id), "{} twice", rule.id);
        }
    }

    #[test]
    fn a_running_ready_pod_is_healthy_and_a_crashing_one_is_not() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.8.5", "vllm serve m");
        pod.containers[0].ready = true;
        let d = diagnose(&pod);
        assert_eq!((d.category, d.side), (Category::Healthy, None));

        pod.containers[0].ready = false;
        pod.containers[0].state = Some(waiting_state("CrashLoopBackOff"));
        pod.containers[0].last_state = Some(terminated(
            "Error",
            1,
            "2025-05-01T10:00:00Z",
            "2025-05-01T10:00:40Z",
        ));
        let d = diagnose(&pod);
        assert_eq!((d.category, d.side), (Category::Unknown, None));
        assert!(d.next_steps.iter().any(|s| s.contains("--previous")));
    }

    #[test]
    fn an_old_restart_does_not_make_a_pod_sick() {
        let mut pod = pod_with(
            Runtime::Tgi,
            "ghcr.io/huggingface/text-generation-inference:3.0.1",
            "text-generation-launcher",
        );
        pod.containers[0].ready = true;
        pod.containers[0].restart_count = 1;
        pod.containers[0].last_state = Some(terminated(
            "OOMKilled",
            137,
            "2025-05-01T08:00:00Z",
            "2025-05-01T09:00:00Z",
        ));
        pod.containers[0].state = Some(running("2025-05-01T09:00:05Z"));
        pod.observed_at = Some("2025-05-03T09:00:00Z".into());
        assert_eq!(diagnose(&pod).category, Category::Healthy);
        pod.observed_at = Some("2025-05-01T09:10:00Z".into());
        assert_eq!(diagnose(&pod).category, Category::HostOom);
    }

    #[test]
    fn an_init_containers_old_failure_does_not_make_a_pod_sick() {
        let mut pod = pod_with(
            Runtime::Kserve,
            "kserve/huggingfaceserver:v0.15.0-gpu",
            "--model_name=gemma --backend=vllm",
        );
        pod.containers[0].name = "kserve-container".into();
        pod.containers[0].ready = true;
        pod.containers.insert(
            0,
            crate::evidence::ContainerEvidence {
                name: "storage-initializer".into(),
                image: "kserve/storage-initializer:v0.15.0".into(),
                init: true,
                memory_limit: Some("1Gi".into()),
                restart_count: 1,
                last_state: Some(terminated(
                    "OOMKilled",
                    137,
                    "2025-05-01T09:40:00Z",
                    "2025-05-01T09:50:00Z",
                )),
                state: Some(terminated(
                    "Completed",
                    0,
                    "2025-05-01T09:50:05Z",
                    "2025-05-01T09:59:00Z",
                )),
                ..Default::default()
            },
        );
        pod.observed_at = Some("2025-05-03T10:00:00Z".into());
        assert!(super::oom::host_oom(&pod, &Hits::scan(&pod)).is_none());
        assert_eq!(diagnose(&pod).category, Category::Healthy);
        // Within the hour it is as recent as a main container's restart would be.
        pod.observed_at = Some("2025-05-01T10:05:00Z".into());
        assert_eq!(diagnose(&pod).category, Category::HostOom);
    }

    #[test]
    fn the_most_confident_rule_wins() {
        let mut pod = pod_with(
            Runtime::Vllm,
            "vllm/vllm-openai:v0.8.5",
            "vllm serve m --tensor-parallel-size 2",
        );
        pod.containers[0].state = Some(waiting_state("CrashLoopBackOff"));
        pod.containers[0].last_state = Some(terminated(
            "Error",
            1,
            "2025-05-01T10:00:00Z",
            "2025-05-01T12:00:00Z",
        ));
        pod.containers[0].previous_log = Some(tail(&[
            "[rank0]:[E ProcessGroupNCCL.cpp:563] [Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=2, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=600000) ran for 600059 milliseconds before timing out.",
        ]));
        let mut xid = event(
            "Warning",
            "NVLinkError",
            "NVRM: Xid (PCI:0000:3b:00): 74, pid=1234, NVLink: fatal error",
        );
        xid.last_seen = Some("2025-05-01T11:58:00Z".into());
        pod.node_events.push(xid);
        let all = diagnose_all(&pod);
        assert_eq!(all[0].category, Category::GpuHardware);
        assert!(all.iter().any(|d| d.category == Category::Nccl));
    }
}
