//! The server's configuration is invalid: Secrets and ConfigMaps it references are missing, its
//! command cannot start, its flags are rejected, its ephemeral-storage budget is smaller than
//! the model it downloads, `/dev/shm` is too small, it cannot write its cache, a Service's link
//! variables took the place of its own settings, or a sidecar beside it is misconfigured. All
//! **configuration**: the manifest must change.

use std::sync::LazyLock;

use regex::Regex;

use crate::evidence::{ContainerEvidence, ContainerState, PodEvidence};
use crate::rules::facts::{
    Kubectl, Line, ended_at, events, eviction_evidence, is_model_server, is_recent,
    long_running_containers, pod_event, runtime_name, runtime_of, shorten, status_path,
    terminations, up_and_ready, waiting,
};
use crate::rules::signatures::{Hit, Hits, Kind};
use crate::rules::steps;
use crate::verdict::{Category, Diagnosis, Evidence, Side};

/// A referenced Secret, ConfigMap or key does not exist.
pub(crate) fn missing_reference(pod: &PodEvidence, _scan: &Hits<'_>) -> Option<Diagnosis> {
    let stuck = waiting(pod)
        .into_iter()
        .find(|w| w.reason == "CreateContainerConfigError")?;
    let message = stuck.message.unwrap_or_default();
    let kubectl = Kubectl::of(pod);
    let mut evidence = vec![stuck.evidence(pod)];
    evidence.extend(
        events(pod, &["Failed"])
            .into_iter()
            .rev()
            .find(|e| e.message.starts_with("Error: "))
            .map(|e| pod_event(pod, e)),
    );
    Some(Diagnosis {
        rule: "TRI-CONFIG-REFERENCE",
        category: Category::Config,
        side: Some(Side::Configuration),
        confidence: 0.95,
        summary: format!(
            "Container {} cannot be created: {}",
            stuck.container.name,
            if message.is_empty() {
                "a referenced Secret or ConfigMap is missing."
            } else {
                message
            }
        ),
        evidence,
        next_steps: vec![
            format!(
                "Create the Secret or ConfigMap (or the key) in namespace {} before the pod starts, or mark the reference optional: true.",
                pod.pod.namespace
            ),
            format!(
                "List what exists: kubectl -n {} get secrets,configmaps",
                pod.pod.namespace
            ),
            format!("Confirm: {}", kubectl.describe()),
        ],
    })
}

/// The container's command cannot be started at all.
pub(crate) fn cannot_start(pod: &PodEvidence, _scan: &Hits<'_>) -> Option<Diagnosis> {
    let stuck = waiting(pod)
        .into_iter()
        .find(|w| matches!(w.reason, "CreateContainerError" | "RunContainerError"));
    // A start error from the NVIDIA runtime hook is the driver's, not the command's (`gpu.rs`).
    let gpu_driver = |m: Option<&str>| {
        m.is_some_and(|m| m.contains("nvidia-container-cli") || m.contains("nvml error"))
    };
    let start_error = terminations(pod).into_iter().find(|t| {
        matches!(t.reason, Some("StartError" | "ContainerCannotRun"))
            && t.matters(pod)
            && !gpu_driver(t.message)
    });
    let (name, mut evidence) = match (&stuck, &start_error) {
        (Some(w), _) => (w.container.name.clone(), vec![w.evidence(pod)]),
        (None, Some(t)) => (t.container.name.clone(), vec![t.evidence(pod)]),
        (None, None) => return None,
    };
    if let (Some(_), Some(t)) = (&stuck, &start_error) {
        evidence.push(t.evidence(pod));
    }
    Some(Diagnosis {
        rule: "TRI-CONFIG-START",
        category: Category::Config,
        side: Some(Side::Configuration),
        confidence: 0.9,
        summary: format!("The runtime cannot start container {name}: its command, working directory or mounts are wrong for the image."),
        evidence,
        next_steps: vec![
            "Check that `command` names an executable that exists in the image (vLLM images start with `vllm serve` or `python3 -m vllm.entrypoints.openai.api_server`; TGI with `text-generation-launcher`).".into(),
            format!("Confirm: {}", Kubectl::of(pod).describe()),
        ],
    })
}

const ARGS: &[Kind] = &[Kind::BadArgs];

/// The server rejected its command line or configuration.
pub(crate) fn bad_arguments<'a>(pod: &'a PodEvidence, scan: &Hits<'a>) -> Option<Diagnosis> {
    let hits = scan.of(ARGS);
    let hit = hits.iter().find(|h| scan.matters(pod, h))?;
    let c = hit.line.container;
    let runtime = runtime_name(runtime_of(pod, c));
    let mut evidence = vec![hit.line.evidence()];
    evidence.extend(
        terminations(pod)
            .into_iter()
            .find(|t| std::ptr::eq(t.container, c) && t.exit_code != 0 && t.matters(pod))
            .map(|t| t.evidence(pod)),
    );
    let mut next_steps: Vec<String> = lora_rank_step(hit, c).into_iter().collect();
    next_steps.extend([
        format!(
            "Fix the flag in the container's args: `{}`. Flags change between releases: check them against `--help` of the image's version ({}).",
            shorten(&c.command_line),
            c.image
        ),
        format!(
            "Confirm: {}",
            Kubectl::of(pod).logs(
                &c.name,
                hit.line.previous,
                Some("error|invalid|unrecognized|unexpected|greater than|smaller than")
            )
        ),
    ]);
    Some(Diagnosis {
        rule: "TRI-CONFIG-ARGS",
        category: Category::Config,
        side: Some(Side::Configuration),
        confidence: 0.9,
        summary: format!(
            "{runtime} in {} rejected its configuration: {}",
            c.name,
            shorten(hit.line.text.trim())
        ),
        evidence,
        next_steps,
    })
}

static LORA_RANK: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"LoRA rank (\d+) is greater than max_lora_rank (\d+)").ok());

/// An adapter of a higher rank than the server reserves for: the flag that fits it.
fn lora_rank_step(hit: &Hit<'_>, c: &ContainerEvidence) -> Option<String> {
    let captures = LORA_RANK.as_ref()?.captures(hit.line.text)?;
    let rank = captures.get(1)?.as_str();
    Some(format!(
        "Raise {} to at least {rank}, the rank of the adapter it loads (vLLM accepts 8, 16, 32, 64, 128, 256…; a larger rank reserves more GPU memory per LoRA slot), or serve an adapter trained at a lower rank.",
        steps::setting(c, &["--max-lora-rank"], "16")
    ))
}

/// The pod was evicted for using more ephemeral storage than its own limits allow.
pub(crate) fn ephemeral_storage(pod: &PodEvidence, _scan: &Hits<'_>) -> Option<Diagnosis> {
    let over = |m: &str| {
        m.contains("ephemeral local storage usage exceeds the total limit")
            || m.contains("exceeded its local ephemeral storage limit")
            || (m.contains("Usage of EmptyDir volume") && m.contains("exceeds the limit"))
    };
    let dated_recently = is_recent(pod, ended_at(pod).as_deref());
    let evidence = eviction_evidence(pod, &over, dated_recently)?;
    Some(Diagnosis {
        rule: "TRI-CONFIG-EPHEMERAL",
        category: Category::Config,
        side: Some(Side::Configuration),
        confidence: 0.88,
        summary: "The pod wrote more to local disk than its ephemeral-storage limit or emptyDir sizeLimit allows (model downloads land there).".into(),
        evidence,
        next_steps: vec![
            "Put the model cache (HF_HOME, /root/.cache/huggingface, /root/.ollama) on a PersistentVolumeClaim, or raise the ephemeral-storage limit and the emptyDir sizeLimit above the model's size on disk.".into(),
            format!("Confirm: {}", Kubectl::of(pod).describe()),
        ],
    })
}

/// The first log hit of the scanner's kinds that still matters.
fn first_hit<'a>(pod: &'a PodEvidence, scan: &Hits<'a>, kinds: &[Kind]) -> Option<Hit<'a>> {
    scan.relevant(pod, kinds).into_iter().next()
}

/// The termination of `c`, if it failed and still matters.
fn failed_termination(pod: &PodEvidence, c: &ContainerEvidence) -> Option<Evidence> {
    terminations(pod)
        .into_iter()
        .find(|t| std::ptr::eq(t.container, c) && t.exit_code != 0 && t.matters(pod))
        .map(|t| t.evidence(pod))
}

const SHM: &[Kind] = &[Kind::ShmTooSmall];

/// `/dev/shm` is smaller than the server's shared-memory segments: Triton's Python backend wants
/// 64 MB per model instance, PyTorch's data loaders theirs; container runtimes give 64 MB.
pub(crate) fn shm_too_small<'a>(pod: &'a PodEvidence, scan: &Hits<'a>) -> Option<Diagnosis> {
    let hit = first_hit(pod, scan, SHM)?;
    let c = hit.line.container;
    let runtime = runtime_of(pod, c);
    let mut evidence = vec![hit.line.evidence()];
    evidence.extend(failed_termination(pod, c));
    let limit = c
        .memory_limit
        .as_deref()
        .map(|l| format!("its memory limit ({l})"))
        .unwrap_or_else(|| "the pod's memory".into());
    let mut next_steps = vec![format!(
        "Mount a memory-backed emptyDir at /dev/shm in `{}`: volumes: [{{name: dshm, emptyDir: {{medium: Memory, sizeLimit: 1Gi}}}}] and volumeMounts: [{{name: dshm, mountPath: /dev/shm}}]; what it holds counts against {limit}.",
        c.name
    )];
    if runtime == hangar_core::Runtime::Triton {
        next_steps.push("Size it for Triton's Python backend: at least 64 MB per Python model instance (instance_group count × models), plus growth; `--backend-config=python,shm-default-byte-size=…` lowers the initial region.".into());
    }
    next_steps.push(format!(
        "Confirm: {}",
        Kubectl::of(pod).logs(&c.name, hit.line.previous, Some("shared memory|shm"))
    ));
    Some(Diagnosis {
        rule: "TRI-CONFIG-SHM",
        category: Category::Config,
        side: Some(Side::Configuration),
        confidence: 0.9,
        summary: format!(
            "{} in {} cannot allocate shared memory: /dev/shm is the container runtime's default (64 MB), too small for it.",
            runtime_name(runtime),
            c.name
        ),
        evidence,
        next_steps,
    })
}

const UNWRITABLE: &[Kind] = &[Kind::Unwritable];

static QUOTED_PATH: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"'(/[^']*)'|mkdir (/\S*?):").ok());

/// The server cannot write where it caches: the root filesystem is read-only
/// (`readOnlyRootFilesystem`) and no volume is mounted there, or its user may not write there.
pub(crate) fn unwritable_path<'a>(pod: &'a PodEvidence, scan: &Hits<'a>) -> Option<Diagnosis> {
    // Libraries warn and fall back when a cache is not writable: only a container that failed
    // on it, or is not ready, is explained by it.
    let hit = scan
        .of(UNWRITABLE)
        .into_iter()
        .find(|h| scan.matters(pod, h) && (h.line.previous || !up_and_ready(h.line.container)))?;
    let c = hit.line.container;
    let path = QUOTED_PATH
        .as_ref()
        .and_then(|re| re.captures(hit.line.text))
        .and_then(|m| m.get(1).or(m.get(2)))
        .map(|m| m.as_str().to_owned());
    let shown = path.as_deref().unwrap_or("its cache directory");
    let mut evidence = vec![hit.line.evidence()];
    if c.read_only_root_filesystem {
        evidence.push(Evidence {
            source: format!(
                "{} spec.containers[{}].securityContext ({})",
                pod.pod, c.name, pod.origin
            ),
            text: "readOnlyRootFilesystem=true".into(),
            at: None,
        });
    }
    evidence.extend(failed_termination(pod, c));
    let why = if c.read_only_root_filesystem {
        "the container's root filesystem is read-only (securityContext.readOnlyRootFilesystem: true) and no volume is mounted there"
    } else if hit.signature.id == "read-only-filesystem" {
        "the path is on a read-only filesystem or volume"
    } else {
        "the container's user may not write there (runAsUser, fsGroup, or a HOME of /)"
    };
    let cache_env = [
        "HF_HOME",
        "HF_HUB_CACHE",
        "TRANSFORMERS_CACHE",
        "XDG_CACHE_HOME",
    ]
    .iter()
    .find_map(|k| c.env.get(*k).map(|v| format!("{k}={v}")))
    .unwrap_or_else(|| "HF_HOME not set, so ~/.cache/huggingface".into());
    Some(Diagnosis {
        rule: "TRI-CONFIG-FILESYSTEM",
        category: Category::Config,
        side: Some(Side::Configuration),
        confidence: 0.88,
        summary: format!("Container {} cannot write to {shown}: {why}.", c.name),
        evidence,
        next_steps: vec![
            format!(
                "Mount a writable volume at {shown} in `{}` (an emptyDir, or a PersistentVolumeClaim for a model cache so downloads survive restarts), or point the cache at one that is mounted ({cache_env}).",
                c.name
            ),
            if c.read_only_root_filesystem {
                "Keep readOnlyRootFilesystem: true and mount emptyDirs for every path the server writes (the hub cache, /tmp, Triton's and torch's compile caches).".into()
            } else {
                "Give the volume to the container's user: securityContext.fsGroup on the pod, or an image whose HOME is writable.".into()
            },
            format!(
                "Confirm: {}",
                Kubectl::of(pod).logs(
                    &c.name,
                    hit.line.previous,
                    Some("Read-only|read-only|Permission denied")
                )
            ),
        ],
    })
}

const SERVICE_LINKS: &[Kind] = &[Kind::ServiceLinkEnv];

static LINK_VARIABLE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?-u:\b)([A-Z][A-Z0-9_]*_PORT)(?-u:\b)").ok());

/// Kubernetes injected `<SERVICE>_PORT=tcp://ip:port` for a Service in the namespace, and the
/// server read it as its own setting (vLLM's `VLLM_PORT` when the Service is named `vllm`).
pub(crate) fn service_link_collision<'a>(
    pod: &'a PodEvidence,
    scan: &Hits<'a>,
) -> Option<Diagnosis> {
    let hit = first_hit(pod, scan, SERVICE_LINKS)?;
    let c = hit.line.container;
    let variable = LINK_VARIABLE
        .as_ref()
        .and_then(|re| re.captures(hit.line.text))
        .and_then(|m| m.get(1))
        .map(|m| m.as_str().to_owned());
    let mut evidence = vec![hit.line.evidence()];
    evidence.extend(failed_termination(pod, c));
    let kubectl = Kubectl::of(pod);
    let ns = &pod.pod.namespace;
    let links = match pod.enable_service_links {
        Some(true) => "now true",
        Some(false) => "now false",
        None => "not set; default true",
    };
    let (name, service) = match &variable {
        Some(v) => (
            v.clone(),
            v.trim_end_matches("_PORT")
                .to_ascii_lowercase()
                .replace('_', "-"),
        ),
        None => ("<NAME>_PORT".into(), "<name>".into()),
    };
    let set_explicitly = variable.as_ref().is_some_and(|v| c.env.contains_key(v));
    let summary = if set_explicitly {
        format!(
            "Container {} sets {name} to a URL where the server expects a port number.",
            c.name
        )
    } else {
        format!(
            "Kubernetes injected {name}=tcp://… into {} for the Service `{service}`, and the server read it as its own {name} setting.",
            c.name
        )
    };
    Some(Diagnosis {
        rule: "TRI-CONFIG-SERVICE-LINKS",
        category: Category::Config,
        side: Some(Side::Configuration),
        confidence: 0.9,
        summary,
        evidence,
        next_steps: vec![
            format!(
                "Set `enableServiceLinks: false` in the pod template ({links}): the server finds its peers through DNS, and Kubernetes stops injecting <SERVICE>_PORT variables."
            ),
            format!(
                "Or rename the Service `{service}` so its variables no longer carry the server's prefix: kubectl -n {ns} get svc {service}"
            ),
            format!(
                "Or set {name} explicitly in `{}`'s env to the value the server expects; an explicit variable wins over an injected one.",
                c.name
            ),
            format!(
                "Confirm: {}",
                kubectl.logs(&c.name, hit.line.previous, Some("tcp://"))
            ),
        ],
    })
}

/// Words a program uses when it gives up.
const FAILURE_WORDS: &[&str] = &[
    "error", "invalid", "fatal", "panic", "failed", "must be", "cannot",
];

/// The line a crashed container died on: the last one that says it failed, else its last line.
fn last_failure<'a>(c: &'a ContainerEvidence) -> Option<Line<'a>> {
    let tail = c.previous_log.as_ref().or(c.log.as_ref())?;
    let says_failed = |l: &str| {
        let l = l.to_ascii_lowercase();
        FAILURE_WORDS.iter().any(|w| l.contains(w))
    };
    let index = tail
        .lines
        .iter()
        .rposition(|l| says_failed(l))
        .or_else(|| tail.lines.iter().rposition(|l| !l.trim().is_empty()))?;
    Some(Line {
        container: c,
        tail,
        previous: c.previous_log.is_some(),
        index,
        text: tail.lines.get(index)?,
    })
}

/// A sidecar (a proxy, an auth gate) crash-loops beside a model server that is up and ready:
/// the pod is not Ready because of the sidecar's configuration.
pub(crate) fn sidecar_crash(pod: &PodEvidence, _scan: &Hits<'_>) -> Option<Diagnosis> {
    // A native sidecar (an init container that runs for the pod's life) crash-loops as one.
    let (servers, sidecars): (Vec<_>, Vec<_>) =
        long_running_containers(pod).partition(|c| is_model_server(c));
    if servers.is_empty() || !servers.iter().all(|c| up_and_ready(c)) {
        return None;
    }
    let crash = terminations(pod).into_iter().find(|t| {
        sidecars.iter().any(|s| std::ptr::eq(*s, t.container))
            && t.exit_code != 0
            && t.matters(pod)
            && !up_and_ready(t.container)
    })?;
    let sidecar = crash.container;
    let mut evidence = vec![crash.evidence(pod)];
    if let Some(ContainerState::Waiting {
        reason: Some(reason),
        ..
    }) = &sidecar.state
    {
        evidence.push(Evidence {
            source: format!("{}.state ({})", status_path(pod, sidecar), pod.origin),
            text: format!("state.waiting: reason={reason}"),
            at: None,
        });
    }
    let words = last_failure(sidecar);
    evidence.extend(words.map(|l| l.evidence()));
    evidence.extend(servers.iter().map(|c| Evidence {
        source: format!("{} ({})", status_path(pod, c), pod.origin),
        text: format!(
            "model server running, ready=true restartCount={}",
            c.restart_count
        ),
        at: None,
    }));
    let kubectl = Kubectl::of(pod);
    let from_secrets = if sidecar.env_from.is_empty() {
        String::new()
    } else {
        format!(
            " (it takes {} from Secrets or ConfigMaps)",
            sidecar.env_from.join(", ")
        )
    };
    Some(Diagnosis {
        rule: "TRI-SIDECAR-CRASH",
        category: Category::Config,
        side: Some(Side::Configuration),
        confidence: 0.7,
        summary: format!(
            "Sidecar {} ({}) crash-loops while the model server {} is up and ready: the sidecar's configuration keeps the pod from becoming Ready{}",
            sidecar.name,
            sidecar.image,
            servers
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            words
                .map(|l| format!(": {}", shorten(l.text.trim())))
                .unwrap_or_else(|| ".".into())
        ),
        evidence,
        next_steps: vec![
            format!(
                "Read why it exits: {} | tail -n 30",
                kubectl.logs(&sidecar.name, true, None)
            ),
            format!(
                "Fix the sidecar's flags, environment or the values it reads{from_secrets}: `{}`; the model server needs no change.",
                shorten(&sidecar.command_line)
            ),
            format!(
                "Confirm the pod turns Ready once it stays up: {}",
                kubectl.describe()
            ),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::*;
    use hangar_core::Runtime;

    #[test]
    fn a_missing_secret_key_is_configuration() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.8.5", "vllm serve m");
        pod.containers[0].state = Some(ContainerState::Waiting {
            reason: Some("CreateContainerConfigError".into()),
            message: Some("couldn't find key HF_TOKEN in Secret ml/hf-token".into()),
        });
        let d = run(missing_reference, &pod).unwrap();
        assert!(d.summary.contains("couldn't find key HF_TOKEN"));
        assert!(run(cannot_start, &pod).is_none());
    }

    #[test]
    fn a_command_that_cannot_start_is_configuration_unless_the_gpu_driver_failed() {
        let mut pod = pod_with(
            Runtime::Vllm,
            "vllm/vllm-openai:v0.8.5",
            "vllm-server --model m",
        );
        let mut start_error = terminated(
            "StartError",
            128,
            "1970-01-01T00:00:00Z",
            "2025-05-01T10:00:00Z",
        );
        if let ContainerState::Terminated { message, .. } = &mut start_error {
            *message =
                Some("exec: \"vllm-server\": executable file not found in $PATH: unknown".into());
        }
        pod.containers[0].last_state = Some(start_error.clone());
        assert_eq!(run(cannot_start, &pod).unwrap().category, Category::Config);
        assert!(run(missing_reference, &pod).is_none());
        if let ContainerState::Terminated { message, .. } = &mut start_error {
            *message = Some("nvidia-container-cli: initialization error: nvml error: driver/library version mismatch: unknown".into());
        }
        pod.containers[0].last_state = Some(start_error);
        assert!(run(cannot_start, &pod).is_none());
    }

    #[test]
    fn rejected_flags_are_configuration() {
        let mut pod = pod_with(
            Runtime::Tgi,
            "ghcr.io/huggingface/text-generation-inference:3.0.1",
            "text-generation-launcher --max-model-len 8192",
        );
        pod.containers[0].previous_log = Some(tail(&[
            "error: unexpected argument '--max-model-len' found",
        ]));
        let d = run(bad_arguments, &pod).unwrap();
        assert_eq!(d.category, Category::Config);
        pod.containers[0].previous_log = Some(tail(&[
            "INFO text_generation_launcher: Args { model_id: \"m\" }",
        ]));
        assert!(run(bad_arguments, &pod).is_none());
    }

    #[test]
    fn ephemeral_storage_over_the_limit_is_configuration() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.8.5", "vllm serve m");
        pod.reason = Some("Evicted".into());
        pod.message = Some(
            "Pod ephemeral local storage usage exceeds the total limit of containers 20Gi. ".into(),
        );
        assert!(run(ephemeral_storage, &pod).is_some());
        pod.message = Some("The node was low on resource: memory.".into());
        assert!(run(ephemeral_storage, &pod).is_none());
    }

    #[test]
    fn an_ephemeral_storage_eviction_days_old_is_history() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.8.5", "vllm serve m");
        pod.phase = Some("Failed".into());
        pod.reason = Some("Evicted".into());
        pod.message = Some(
            "Pod ephemeral local storage usage exceeds the total limit of containers 20Gi. ".into(),
        );
        pod.containers[0].state = Some(terminated(
            "ContainerStatusUnknown",
            137,
            "2025-05-01T08:00:00Z",
            "2025-05-01T10:00:00Z",
        ));
        pod.observed_at = Some("2025-05-01T10:20:00Z".into());
        assert!(run(ephemeral_storage, &pod).is_some());
        pod.observed_at = Some("2025-05-03T10:00:00Z".into());
        assert!(run(ephemeral_storage, &pod).is_none());
    }
    #[test]
    fn flag_values_the_server_refuses_are_configuration() {
        let mut pod = pod_with(
            Runtime::Vllm,
            "vllm/vllm-openai:v0.9.0.1",
            "vllm serve m --enable-lora --lora-modules sql=/adapters/sql",
        );
        pod.containers[0].previous_log = Some(tail(&[
            "(EngineCore pid=86) ERROR 06-01 13:18:12 [core.py:1341] ValueError: LoRA rank 64 is greater than max_lora_rank 16.",
        ]));
        let d = run(bad_arguments, &pod).unwrap();
        assert!(d.next_steps[0].contains("`--max-lora-rank` (not set; default 16) to at least 64"));
        for line in [
            "ValueError: max_num_batched_tokens (2048) is smaller than max_model_len (4096). This effectively limits the maximum sequence length.",
            "ValueError: Bfloat16 is only supported on GPUs with compute capability of at least 8.0. Your Tesla T4 GPU has compute capability 7.5.",
            "Value error, Quantization method specified in the model config (compressed-tensors) does not match the quantization method specified in the `quantization` argument (awq).",
        ] {
            pod.containers[0].previous_log = Some(tail(&[line]));
            let d = run(bad_arguments, &pod).unwrap();
            assert_eq!(d.category, Category::Config, "{line}");
            assert!(!d.next_steps[0].contains("max-lora-rank"));
        }
    }

    #[test]
    fn a_small_dev_shm_is_configuration() {
        let mut pod = pod_with(
            Runtime::Triton,
            "nvcr.io/nvidia/tritonserver:23.04-py3",
            "tritonserver --model-repository=/models",
        );
        pod.containers[0].previous_log = Some(tail(&[
            "E0816 09:14:41.920145 1 model_lifecycle.cc:621] failed to load 'postprocessing' version 1: Internal: Unable to initialize shared memory key 'triton_python_backend_shm_region_3' to requested size (67108864 bytes). If you are running Triton inside docker, use '--shm-size' flag to control the shared memory region size.",
        ]));
        let d = run(shm_too_small, &pod).unwrap();
        assert_eq!(
            (d.category, d.side),
            (Category::Config, Some(Side::Configuration))
        );
        assert!(d.next_steps[0].contains("medium: Memory"));
        pod.containers[0].previous_log = Some(tail(&[
            "I0816 09:14:40.512771 1 pinned_memory_manager.cc:241] Pinned memory pool is created",
        ]));
        assert!(run(shm_too_small, &pod).is_none());
    }

    #[test]
    fn a_read_only_cache_path_is_configuration() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.7.3", "vllm serve m");
        pod.containers[0].read_only_root_filesystem = true;
        pod.containers[0].previous_log = Some(tail(&[
            "OSError: [Errno 30] Read-only file system: '/root/.cache/huggingface'",
        ]));
        let d = run(unwritable_path, &pod).unwrap();
        assert_eq!(d.category, Category::Config);
        assert!(
            d.summary.contains("/root/.cache/huggingface")
                && d.summary.contains("readOnlyRootFilesystem")
        );
        pod.containers[0].previous_log = Some(tail(&[
            "PermissionError: [Errno 13] Permission denied: '/.cache'",
        ]));
        assert!(
            run(unwritable_path, &pod)
                .unwrap()
                .summary
                .contains("/.cache")
        );
        pod.containers[0].previous_log = Some(tail(&[
            "PermissionError: [Errno 13] Permission denied: '/etc/shadow'",
        ]));
        assert!(run(unwritable_path, &pod).is_none(), "not a cache path");
        pod.containers[0].previous_log = None;
        pod.containers[0].ready = true;
        pod.containers[0].log = Some(tail(&[
            "WARNING: [Errno 13] Permission denied: '/.cache/flashinfer'; JIT cache disabled",
        ]));
        assert!(
            run(unwritable_path, &pod).is_none(),
            "a warning of a ready server"
        );
    }

    #[test]
    fn a_service_link_variable_in_place_of_a_port_is_configuration() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.7.2", "vllm serve m");
        pod.containers[0].previous_log = Some(tail(&[
            "ERROR 02-10 09:39:12 [engine.py:458] ValueError: VLLM_PORT 'tcp://10.96.112.45:8000' appears to be a URI. This may be caused by a Kubernetes service discovery issue",
        ]));
        let d = run(service_link_collision, &pod).unwrap();
        assert!(d.summary.contains("VLLM_PORT") && d.summary.contains("`vllm`"));
        assert!(
            d.next_steps[0].contains("enableServiceLinks: false")
                && d.next_steps[0].contains("default true")
        );
        pod.containers[0].previous_log = Some(tail(&[
            "ValueError: invalid literal for int() with base 10: 'tcp://10.0.48.109:9106'",
        ]));
        assert!(run(service_link_collision, &pod).is_some());
        pod.containers[0].previous_log =
            Some(tail(&["INFO Started engine at tcp://127.0.0.1:5570"]));
        assert!(run(service_link_collision, &pod).is_none());
    }

    #[test]
    fn a_crashing_sidecar_beside_a_ready_server_is_the_sidecars_configuration() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.8.1", "vllm serve m");
        pod.containers[0].ready = true;
        pod.containers.push(ContainerEvidence {
            name: "oauth2-proxy".into(),
            image: "quay.io/oauth2-proxy/oauth2-proxy:v7.8.1".into(),
            command_line: "--upstream=http://127.0.0.1:8000".into(),
            state: Some(waiting_state("CrashLoopBackOff")),
            last_state: Some(terminated("Error", 1, "2025-03-04T12:17:55Z", "2025-03-04T12:17:55Z")),
            previous_log: Some(tail(&[
                "[2025/03/04 12:17:55] [main.go:54] invalid configuration:",
                "  cookie_secret must be 16, 24, or 32 bytes to create an AES cipher, but is 44 bytes",
            ])),
            ..ContainerEvidence::default()
        });
        let d = run(sidecar_crash, &pod).unwrap();
        assert_eq!(
            (d.category, d.side),
            (Category::Config, Some(Side::Configuration))
        );
        assert!(d.summary.contains("cookie_secret"), "{}", d.summary);
        assert!(d.next_steps[0].contains("-c oauth2-proxy --previous"));
        pod.containers[0].ready = false;
        assert!(
            run(sidecar_crash, &pod).is_none(),
            "the server is not up: look at the server first"
        );
    }
}
