//! Running out of memory: the host's (the container's cgroup limit or the node) and the GPU's.
//!
//! Sides, and why:
//! - Host OOM with a container limit is **configuration**: the limit was set below what the server
//!   needs (weights pass through host memory while they load; vLLM pins swap space there).
//! - Host OOM without a limit, under node `MemoryPressure`, or an eviction for memory is
//!   **infrastructure**: the node ran out, not the container's budget.
//! - GPU OOM before the server ever became ready is **configuration**: context length, memory
//!   fraction or parallelism ask for more than the GPUs hold, and it fails the same way every time.
//! - GPU OOM after the server started and served is **infrastructure** (capacity): the same
//!   configuration loaded, profiled and served, so what changed is the load on it. The fix is
//!   more replicas or GPUs and admission control; the steps also show the knobs that trade
//!   headroom for throughput, since lowering them is the other way out.

use std::sync::LazyLock;

use crate::evidence::{ContainerEvidence, PodEvidence};
use crate::rules::facts::{
    Kubectl, Termination, ended_at, eviction_evidence, is_recent, node_condition,
    node_condition_evidence, runtime_name, runtime_of, terminations,
};
use crate::rules::signatures::{Hit, Hits, Kind, after};
use crate::rules::steps;
use crate::verdict::{Category, Diagnosis, Evidence, Side};

/// The container's memory limit as evidence.
fn limit_evidence(pod: &PodEvidence, c: &ContainerEvidence) -> Option<Evidence> {
    let limit = c.memory_limit.as_ref()?;
    let list = if c.init {
        "initContainers"
    } else {
        "containers"
    };
    Some(Evidence {
        source: format!(
            "{} spec.{list}[{}].resources ({})",
            pod.pod, c.name, pod.origin
        ),
        text: format!(
            "limits.memory={limit} requests.memory={}",
            c.memory_request.as_deref().unwrap_or("-")
        ),
        at: None,
    })
}

/// The last line the container printed before it died: what it was doing.
fn last_words(c: &ContainerEvidence) -> Option<Evidence> {
    let tail = c.previous_log.as_ref()?;
    let index = tail.lines.iter().rposition(|l| !l.trim().is_empty())?;
    let line = crate::rules::facts::Line {
        container: c,
        tail,
        previous: true,
        index,
        text: &tail.lines[index],
    };
    Some(line.evidence())
}

/// `OOMKilled`: the kernel killed the container for memory.
pub(crate) fn host_oom(pod: &PodEvidence, _scan: &Hits<'_>) -> Option<Diagnosis> {
    let kill: Termination = terminations(pod)
        .into_iter()
        .find(|t| t.reason_is("OOMKilled") && t.matters(pod))?;
    let c = kill.container;
    let pressure = node_condition(pod, "MemoryPressure").filter(|p| p.status == "True");
    let mut evidence = vec![kill.evidence(pod)];
    evidence.extend(limit_evidence(pod, c));
    evidence.extend(pressure.map(|p| node_condition_evidence(pod, p)));
    evidence.extend(last_words(c));
    let kubectl = Kubectl::of(pod);
    let runtime = runtime_of(pod, c);
    let (side, summary, mut next_steps) = match (&c.memory_limit, pressure) {
        (Some(limit), None) => (
            Side::Configuration,
            format!(
                "Container {} was OOMKilled (exit {}) at its {limit} memory limit: the limit is below what the server needs.",
                c.name, kill.exit_code
            ),
            steps::host_oom_limit(runtime, c, limit),
        ),
        (_, Some(_)) => (
            Side::Infrastructure,
            format!(
                "Container {} was OOMKilled (exit {}) while node {} was under MemoryPressure: the node ran out of memory.",
                c.name,
                kill.exit_code,
                pod.node.as_ref().map(|n| n.name.as_str()).unwrap_or("-")
            ),
            vec![format!(
                "Give `{}` a memory request equal to its limit (Guaranteed QoS) so the node's OOM killer picks it last, and keep GPU nodes for GPU workloads.",
                c.name
            )],
        ),
        (None, None) => (
            Side::Infrastructure,
            format!(
                "Container {} was OOMKilled (exit {}) with no memory limit: the node itself ran out of memory.",
                c.name, kill.exit_code
            ),
            vec![format!(
                "Set a memory request and limit on `{}` sized for the model, so the scheduler places it on a node with room.",
                c.name
            )],
        ),
    };
    next_steps.push(format!("Confirm the kill: {}", kubectl.last_state(c)));
    next_steps.push(format!(
        "See what it was doing: {}",
        kubectl.logs(&c.name, true, None) + " | tail -n 50"
    ));
    if let Some(node) = &pod.node {
        next_steps.push(format!(
            "Check the node's memory: {}",
            Kubectl::node(&node.name)
        ));
    }
    Some(Diagnosis {
        rule: "TRI-HOST-OOM",
        category: Category::HostOom,
        side: Some(side),
        confidence: 0.95,
        summary,
        evidence,
        next_steps,
    })
}

/// The kubelet evicted the pod because the node was low on memory.
pub(crate) fn evicted_for_memory(pod: &PodEvidence, _scan: &Hits<'_>) -> Option<Diagnosis> {
    let low_on_memory = |m: &str| m.contains("low on resource: memory");
    let dated_recently = is_recent(pod, ended_at(pod).as_deref());
    let mut evidence = eviction_evidence(pod, &low_on_memory, dated_recently)?;
    evidence.extend(
        node_condition(pod, "MemoryPressure")
            .filter(|p| p.status == "True")
            .map(|p| node_condition_evidence(pod, p)),
    );
    let kubectl = Kubectl::of(pod);
    let node = pod
        .node
        .as_ref()
        .map(|n| n.name.clone())
        .unwrap_or_default();
    Some(Diagnosis {
        rule: "TRI-HOST-OOM-EVICTED",
        category: Category::HostOom,
        side: Some(Side::Infrastructure),
        confidence: 0.9,
        summary: format!(
            "The kubelet evicted the pod because node {node} was low on memory."
        ),
        evidence,
        next_steps: vec![
            "Set the server's memory request to what it uses (and equal to the limit) so the scheduler reserves it and the kubelet evicts others first.".into(),
            "Keep memory-hungry non-GPU workloads off GPU nodes (taints and tolerations), or add memory to the pool.".into(),
            format!("Check the node: {}", Kubectl::node(&node)),
            format!("Confirm: {}", kubectl.describe()),
        ],
    })
}

const HOST_MEMORY: &[Kind] = &[Kind::HostMemory];

/// The server refused to load the model for lack of host memory (Ollama checks before loading),
/// or Ray's memory monitor killed a worker before the kernel had to: the container is never
/// OOMKilled, yet the model does not fit in the memory it has.
pub(crate) fn server_refused_for_memory<'a>(
    pod: &'a PodEvidence,
    scan: &Hits<'a>,
) -> Option<Diagnosis> {
    let hits = scan.of(HOST_MEMORY);
    let hit = hits.iter().find(|h| scan.matters(pod, h))?;
    let c = hit.line.container;
    let ray = hit.signature.id == "ray-memory-monitor";
    let mut evidence = vec![hit.line.evidence()];
    // A monitor that keeps killing shows it in more than one line.
    evidence.extend(
        hits.iter()
            .rfind(|h| std::ptr::eq(h.line.tail, hit.line.tail) && h.line.index != hit.line.index)
            .map(|h| h.line.evidence()),
    );
    evidence.extend(limit_evidence(pod, c));
    let kubectl = Kubectl::of(pod);
    let (side, mut next_steps) = match &c.memory_limit {
        Some(limit) => (
            Side::Configuration,
            steps::host_oom_limit(runtime_of(pod, c), c, limit),
        ),
        None => (
            Side::Infrastructure,
            vec!["The node has too little free memory for the model: set a memory request sized for it so the scheduler places the pod where it fits.".into()],
        ),
    };
    let (summary, grep) = if ray {
        next_steps.push(format!(
            "Ray kills the newest worker once memory use passes {} of what the container may use: raise the limit rather than the threshold, since the kernel OOM killer comes next.",
            c.env
                .get("RAY_memory_usage_threshold")
                .map(|t| format!("RAY_memory_usage_threshold (now {t})"))
                .unwrap_or_else(|| "RAY_memory_usage_threshold (not set; default 0.95)".into())
        ));
        (
            format!(
                "Ray's memory monitor in {} killed workers (a Serve replica) for lack of host memory: the {} is too small for what they load.",
                c.name,
                c.memory_limit
                    .as_deref()
                    .map(|l| format!("{l} memory limit"))
                    .unwrap_or_else(|| "node's free memory".into())
            ),
            "killed due to|memory pressure|OutOfMemoryError",
        )
    } else {
        (
            format!(
                "The server in {} refused to load the model: it needs more host memory than the container has.",
                c.name
            ),
            "system memory|too large",
        )
    };
    next_steps.push(format!(
        "Confirm: {}",
        kubectl.logs(&c.name, hit.line.previous, Some(grep))
    ));
    Some(Diagnosis {
        rule: "TRI-HOST-MEMORY-REFUSED",
        category: Category::HostOom,
        side: Some(side),
        confidence: 0.85,
        summary,
        evidence,
        next_steps,
    })
}

const GPU_MEMORY: &[Kind] = &[
    Kind::GpuOom,
    Kind::KvCache,
    Kind::GpuMemoryHeld,
    Kind::Ready,
    Kind::Traffic,
    Kind::Loading,
];

/// Loading, profiling and warming up take minutes; a server that ran this long before running out
/// of GPU memory had been serving, even when its start-up lines are no longer in the log tail.
const SERVED_AFTER_SECONDS: i64 = 1800;

/// How long the container that printed `hit` had been running when it printed it, as far as the
/// status tells: the previous container's whole life, or the running one's age.
fn uptime(pod: &PodEvidence, hit: &Hit<'_>) -> Option<i64> {
    let c = hit.line.container;
    if hit.line.previous {
        return terminations(pod)
            .into_iter()
            .find(|t| std::ptr::eq(t.container, c) && t.field == "lastState")?
            .lifetime_seconds();
    }
    match &c.state {
        Some(crate::evidence::ContainerState::Running { started_at }) => {
            let started = crate::rules::facts::parse_time(started_at.as_deref()?)?;
            Some(crate::rules::facts::now(pod)?.as_second() - started.as_second())
        }
        _ => None,
    }
}

/// Signatures that only occur while a model loads or warms up, whatever came before.
const LOAD_TIME_ONLY: &[&str] = &[
    "tgi-not-enough-memory",
    "sglang-mem-fraction",
    "cudamalloc-oom",
    "ggml-cuda-buffer",
];

static FITTING: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
    regex::Regex::new(r"stored in KV cache \((\d+)\)|estimated maximum model length is (\d+)").ok()
});

/// The context length vLLM says would fit, from its own KV-cache message.
fn fitting_length(line: &str) -> Option<u64> {
    let captures = FITTING.as_ref()?.captures(line)?;
    captures.get(1).or(captures.get(2))?.as_str().parse().ok()
}

/// The GPU ran out of memory: at start-up (configuration) or under load (capacity).
pub(crate) fn gpu_oom<'a>(pod: &'a PodEvidence, scan: &Hits<'a>) -> Option<Diagnosis> {
    let hits = scan.of(GPU_MEMORY);
    // Memory held by someone else explains any allocation that fails after it.
    if let Some(held) = hits
        .iter()
        .find(|h| h.kind() == Kind::GpuMemoryHeld && scan.matters(pod, h))
    {
        return Some(gpu_memory_held(pod, held));
    }
    let hit = hits
        .iter()
        .find(|h| matches!(h.kind(), Kind::GpuOom | Kind::KvCache) && scan.matters(pod, h))?;
    let c = hit.line.container;
    let runtime = runtime_of(pod, c);
    let served = hits.iter().rev().find(|h| {
        matches!(h.kind(), Kind::Ready | Kind::Traffic)
            && std::ptr::eq(h.line.tail, hit.line.tail)
            && h.line.index < hit.line.index
    });
    let served_before = after(&hits, hit, Kind::Ready) || after(&hits, hit, Kind::Traffic);
    let long_lived = !after(&hits, hit, Kind::Loading)
        && uptime(pod, hit).is_some_and(|s| s > SERVED_AFTER_SECONDS);
    let at_startup = hit.kind() == Kind::KvCache
        || LOAD_TIME_ONLY.contains(&hit.signature.id)
        || !(served_before || long_lived);
    let mut evidence = vec![hit.line.evidence()];
    if let Some(served) = served.filter(|_| !at_startup) {
        evidence.push(served.line.evidence());
    }
    if !at_startup && !served_before {
        evidence.push(Evidence {
            source: format!("{} ({})", crate::rules::facts::status_path(pod, c), pod.origin),
            text: format!(
                "the container had run {} s when it ran out of GPU memory; its start-up lines are no longer in the log",
                uptime(pod, hit).unwrap_or_default()
            ),
            at: None,
        });
    }
    evidence.extend(
        terminations(pod)
            .into_iter()
            .find(|t| std::ptr::eq(t.container, c) && t.matters(pod))
            .map(|t| t.evidence(pod)),
    );
    if let Some((resource, count)) = steps::gpus(c) {
        evidence.push(Evidence {
            source: format!(
                "{} spec.containers[{}].resources ({})",
                pod.pod, c.name, pod.origin
            ),
            text: if c.command_line.is_empty() {
                format!("{resource}={count}")
            } else {
                format!(
                    "{resource}={count}; command: {}",
                    crate::rules::facts::shorten(&c.command_line)
                )
            },
            at: None,
        });
    }
    let kubectl = Kubectl::of(pod);
    let grep =
        "out of memory|OutOfMemoryError|cache blocks|KV cache|Not enough memory|CUDA0 buffer";
    let (side, summary, mut next_steps, confidence) = if at_startup {
        (
            Side::Configuration,
            format!(
                "{} in container `{}` ran out of GPU memory while loading the model, before it ever served: the configuration asks for more than the GPUs hold.",
                runtime_name(runtime),
                c.name
            ),
            steps::gpu_oom_at_startup(
                runtime,
                c,
                hit.kind() == Kind::KvCache,
                fitting_length(hit.line.text),
            ),
            0.9,
        )
    } else {
        (
            Side::Infrastructure,
            format!(
                "{} in container `{}` ran out of GPU memory while serving requests: the load outgrew the GPUs it runs on.",
                runtime_name(runtime),
                c.name
            ),
            steps::gpu_oom_under_load(runtime, c),
            0.85,
        )
    };
    next_steps.push(format!(
        "Confirm: {}",
        kubectl.logs(&c.name, hit.line.previous, Some(grep))
    ));
    next_steps.push(format!(
        "See what holds GPU memory: kubectl -n {} exec {} -c {} -- nvidia-smi",
        pod.pod.namespace, pod.pod.name, c.name
    ));
    Some(Diagnosis {
        rule: "TRI-GPU-OOM",
        category: Category::GpuOom,
        side: Some(side),
        confidence,
        summary,
        evidence,
        next_steps,
    })
}

static FREE_OF_TOTAL: LazyLock<Option<regex::Regex>> =
    LazyLock::new(|| regex::Regex::new(r"\(([0-9.]+)/([0-9.]+) GiB\)").ok());

/// Whether the node shares each GPU between pods on purpose (time-slicing or MPS), as the GPU
/// operator labels it.
fn gpu_shared_on_purpose(pod: &PodEvidence) -> Option<String> {
    let labels = &pod.node.as_ref()?.labels;
    let strategy = labels
        .get("nvidia.com/gpu.sharing-strategy")
        .filter(|s| s.as_str() != "none");
    let replicas = labels
        .get("nvidia.com/gpu.replicas")
        .filter(|r| r.parse::<u32>().is_ok_and(|n| n > 1));
    match (strategy, replicas) {
        (None, None) => None,
        (s, r) => Some(format!(
            "nvidia.com/gpu.sharing-strategy={} nvidia.com/gpu.replicas={}",
            s.map(String::as_str).unwrap_or("-"),
            r.map(String::as_str).unwrap_or("-")
        )),
    }
}

/// The GPU's memory was already taken when the server started: a process of another pod (often
/// a force-deleted replica) holds it. **Infrastructure**, unless the node shares GPUs on purpose,
/// when the server must ask for less (**configuration**).
fn gpu_memory_held(pod: &PodEvidence, hit: &Hit<'_>) -> Diagnosis {
    let c = hit.line.container;
    let runtime = runtime_of(pod, c);
    let node = pod.node.as_ref().map(|n| n.name.as_str()).unwrap_or("-");
    let free = FREE_OF_TOTAL
        .as_ref()
        .and_then(|re| re.captures(hit.line.text))
        .and_then(|m| {
            Some(format!(
                " (only {} of {} GiB free)",
                m.get(1)?.as_str(),
                m.get(2)?.as_str()
            ))
        })
        .unwrap_or_default();
    let mut evidence = vec![hit.line.evidence()];
    evidence.extend(
        terminations(pod)
            .into_iter()
            .find(|t| std::ptr::eq(t.container, c) && t.exit_code != 0 && t.matters(pod))
            .map(|t| t.evidence(pod)),
    );
    let shared = gpu_shared_on_purpose(pod);
    evidence.extend(shared.as_ref().map(|labels| Evidence {
        source: format!("Node/{node} metadata.labels"),
        text: labels.clone(),
        at: None,
    }));
    let utilization = steps::setting(c, &["--gpu-memory-utilization"], "0.9");
    let kubectl = Kubectl::of(pod);
    let nvidia_smi = format!(
        "find the NVIDIA driver pod on the node (kubectl get pods -A -o wide --field-selector spec.nodeName={node} | grep -i nvidia) and run nvidia-smi in it"
    );
    let (side, summary, mut next_steps) = match shared {
        Some(_) => (
            Side::Configuration,
            format!(
                "{} in {} found the GPU's memory already in use at start-up{free}: node {node} shares its GPUs between pods, and the server asks for more than its share.",
                runtime_name(runtime),
                c.name
            ),
            vec![
                format!(
                    "Lower {utilization} to the share this pod gets, or give it a whole GPU (a node pool without time-slicing or MPS)."
                ),
                format!("See who else holds the GPU: {nvidia_smi}."),
            ],
        ),
        None => (
            Side::Infrastructure,
            format!(
                "{} in {} found the GPU's memory already in use at start-up{free}: another process on node {node} holds the GPU it was given.",
                runtime_name(runtime),
                c.name
            ),
            vec![
                format!(
                    "See what holds the GPU: {nvidia_smi}; a process of a pod that no longer exists (a force-deleted replica) keeps its memory until it is killed."
                ),
                format!(
                    "Free the GPU: kubectl cordon {node}, kill the orphaned process or reboot the node, then kubectl uncordon {node}; raising {utilization} will not help."
                ),
            ],
        ),
    };
    next_steps.push(format!(
        "Confirm: {}",
        kubectl.logs(
            &c.name,
            hit.line.previous,
            Some("Free memory|memory profiling")
        )
    ));
    Diagnosis {
        rule: "TRI-GPU-OOM",
        category: Category::GpuOom,
        side: Some(side),
        confidence: 0.9,
        summary,
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
    fn an_oom_kill_at_the_limit_is_configuration() {
        let mut pod = pod_with(
            Runtime::Vllm,
            "vllm/vllm-openai:v0.8.5",
            "vllm serve meta-llama/Llama-3.1-8B",
        );
        pod.containers[0].memory_limit = Some("16Gi".into());
        pod.containers[0].last_state = Some(terminated(
            "OOMKilled",
            137,
            "2025-05-01T10:00:00Z",
            "2025-05-01T10:02:00Z",
        ));
        pod.containers[0].state = Some(waiting_state("CrashLoopBackOff"));
        let d = run(host_oom, &pod).unwrap();
        assert_eq!(
            (d.category, d.side),
            (Category::HostOom, Some(Side::Configuration))
        );
        assert!(
            d.next_steps
                .iter()
                .any(|s| s.contains("16Gi") && s.contains("24Gi"))
        );
        assert!(d.evidence[0].text.contains("reason=OOMKilled exitCode=137"));
    }

    #[test]
    fn exit_137_without_oomkilled_is_not_host_oom() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.8.5", "vllm serve m");
        pod.containers[0].last_state = Some(terminated(
            "Error",
            137,
            "2025-05-01T10:00:00Z",
            "2025-05-01T10:02:00Z",
        ));
        assert!(run(host_oom, &pod).is_none());
    }

    #[test]
    fn kv_cache_errors_are_startup_configuration() {
        let mut pod = pod_with(
            Runtime::Vllm,
            "vllm/vllm-openai:v0.8.5",
            "vllm serve m --max-model-len 131072",
        );
        pod.containers[0].previous_log = Some(tail(&[
            "INFO 05-01 10:00:00 [api_server.py:1043] vLLM API server version 0.8.5",
            "ERROR 05-01 10:01:10 [core.py:396] ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine.",
        ]));
        let d = run(gpu_oom, &pod).unwrap();
        assert_eq!(d.side, Some(Side::Configuration));
        assert!(d.next_steps[0].contains("now 131072"));
    }

    #[test]
    fn oom_after_serving_is_capacity() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.8.5", "vllm serve m");
        pod.containers[0].previous_log = Some(tail(&[
            "INFO:     Application startup complete.",
            "INFO:     10.0.0.7:51234 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK",
            "ERROR 05-01 12:00:00 [core.py:396] torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.",
        ]));
        let d = run(gpu_oom, &pod).unwrap();
        assert_eq!(d.side, Some(Side::Infrastructure));
        assert!(d.evidence[1].text.contains("POST /v1/chat/completions"));
    }

    #[test]
    fn a_log_without_oom_is_quiet() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.8.5", "vllm serve m");
        pod.containers[0].log = Some(tail(&[
            "INFO 05-01 10:00:05 [gpu_model_runner.py:1801] If out-of-memory error occurs during cudagraph capture, consider decreasing `gpu_memory_utilization` or switching to eager mode.",
        ]));
        assert!(run(gpu_oom, &pod).is_none());
        assert!(run(server_refused_for_memory, &pod).is_none());
    }

    #[test]
    fn memory_evictions_are_infrastructure() {
        let mut pod = pod_with(
            Runtime::Tgi,
            "ghcr.io/huggingface/text-generation-inference:3.0",
            "text-generation-launcher",
        );
        pod.reason = Some("Evicted".into());
        pod.message = Some(
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 87608Ki."
                .into(),
        );
        let d = run(evicted_for_memory, &pod).unwrap();
        assert_eq!(d.side, Some(Side::Infrastructure));
        pod.message = Some(
            "Pod ephemeral local storage usage exceeds the total limit of containers 10Gi.".into(),
        );
        assert!(run(evicted_for_memory, &pod).is_none());
    }

    #[test]
    fn an_eviction_days_old_is_history() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.8.5", "vllm serve m");
        pod.phase = Some("Failed".into());
        pod.reason = Some("Evicted".into());
        pod.message = Some(
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 87608Ki."
                .into(),
        );
        pod.containers[0].state = Some(terminated(
            "ContainerStatusUnknown",
            137,
            "2025-05-01T08:00:00Z",
            "2025-05-01T10:00:00Z",
        ));
        pod.observed_at = Some("2025-05-01T10:20:00Z".into());
        assert!(run(evicted_for_memory, &pod).is_some());
        pod.observed_at = Some("2025-05-03T10:00:00Z".into());
        assert!(run(evicted_for_memory, &pod).is_none());
    }

    #[test]
    fn gpu_memory_held_by_another_process_is_the_node_unless_shared_on_purpose() {
        let mut pod = pod_with(
            Runtime::Vllm,
            "vllm/vllm-openai:v0.9.1",
            "vllm serve Qwen/Qwen2.5-32B-Instruct --gpu-memory-utilization 0.9",
        );
        pod.containers[0].previous_log = Some(tail(&[
            "ERROR 07-02 08:45:55 [core.py:515] ValueError: Free memory on device (0.49/79.32 GiB) on startup is less than desired GPU memory utilization (0.9, 71.39 GiB). Decrease GPU memory utilization or reduce GPU memory used by other processes.",
        ]));
        let d = run(gpu_oom, &pod).unwrap();
        assert_eq!(
            (d.category, d.side),
            (Category::GpuOom, Some(Side::Infrastructure))
        );
        assert!(d.summary.contains("only 0.49 of 79.32 GiB free"));
        assert!(d.next_steps.iter().any(|s| s.contains("cordon gpu-1")));
        if let Some(node) = pod.node.as_mut() {
            node.labels.insert(
                "nvidia.com/gpu.sharing-strategy".into(),
                "time-slicing".into(),
            );
        }
        let d = run(gpu_oom, &pod).unwrap();
        assert_eq!(d.side, Some(Side::Configuration));
        assert!(d.next_steps[0].contains("(now 0.9)"));
    }

    #[test]
    fn turbomind_oom_after_serving_is_capacity() {
        let mut pod = pod_with(
            Runtime::Lmdeploy,
            "openmmlab/lmdeploy:v0.8.0-cu12",
            "lmdeploy serve api_server m",
        );
        pod.containers[0].previous_log = Some(tail(&[
            "INFO:     Application startup complete.",
            "INFO:     10.42.9.14:51822 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK",
            "terminate called after throwing an instance of 'std::runtime_error'",
            "  what():  [TM][ERROR] CUDA runtime error: out of memory /lmdeploy/src/turbomind/core/allocator.cc:49",
        ]));
        let d = run(gpu_oom, &pod).unwrap();
        assert_eq!(d.side, Some(Side::Infrastructure));
    }

    #[test]
    fn rays_memory_monitor_is_host_oom_at_the_limit() {
        let mut pod = pod_with(
            Runtime::Rayserve,
            "rayproject/ray-ml:2.40.0-py311-gpu",
            "ray start --head",
        );
        pod.containers[0].ready = true;
        pod.containers[0].memory_limit = Some("16Gi".into());
        pod.containers[0].log = Some(tail(&[
            "(ServeController pid=530) ray.exceptions.OutOfMemoryError: Task was killed due to the node running low on memory.",
        ]));
        let d = run(server_refused_for_memory, &pod).unwrap();
        assert_eq!(
            (d.category, d.side),
            (Category::HostOom, Some(Side::Configuration))
        );
        assert!(d.summary.contains("Ray's memory monitor") && d.summary.contains("16Gi"));
        pod.containers[0].log = Some(tail(&["INFO memory usage 0.61 of 16GiB; threshold 0.95"]));
        assert!(run(server_refused_for_memory, &pod).is_none());
    }

    #[test]
    fn ollama_refusing_for_memory_is_host_oom() {
        let mut pod = pod_with(Runtime::Ollama, "ollama/ollama:0.6.2", "ollama serve");
        pod.containers[0].memory_limit = Some("8Gi".into());
        pod.containers[0].log = Some(tail(&[
            "time=2025-03-25T09:45:06.861Z level=INFO source=sched.go:511 msg=\"Load failed\" model=/root/.ollama/models/blobs/sha256-667b error=\"model requires more system memory (5.3 GiB) than is available (4.8 GiB)\"",
        ]));
        let d = run(server_refused_for_memory, &pod).unwrap();
        assert_eq!(
            (d.category, d.side),
            (Category::HostOom, Some(Side::Configuration))
        );
    }
}
