//! The server's configuration is invalid: Secrets and ConfigMaps it references are missing, its
//! command cannot start, its flags are rejected, or its ephemeral-storage budget is smaller than
//! the model it downloads. All **configuration**: the manifest must change.

use std::sync::LazyLock;

use crate::evidence::PodEvidence;
use crate::rules::facts::{
    Kubectl, events, is_recent, pod_event, pod_status_evidence, runtime_name, runtime_of,
    terminations, waiting,
};
use crate::rules::oom::hit_matters;
use crate::rules::signatures::{Kind, Scanner};
use crate::verdict::{Category, Diagnosis, Side};

/// A referenced Secret, ConfigMap or key does not exist.
pub(crate) fn missing_reference(pod: &PodEvidence) -> Option<Diagnosis> {
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
pub(crate) fn cannot_start(pod: &PodEvidence) -> Option<Diagnosis> {
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

static ARGS: LazyLock<Scanner> = LazyLock::new(|| Scanner::new(&[Kind::BadArgs]));

/// The server rejected its command line or configuration.
pub(crate) fn bad_arguments(pod: &PodEvidence) -> Option<Diagnosis> {
    let hits = ARGS.scan(pod);
    let hit = hits.iter().find(|h| hit_matters(pod, h))?;
    let c = hit.line.container;
    let runtime = runtime_name(runtime_of(pod, c));
    let mut evidence = vec![hit.line.evidence()];
    evidence.extend(
        terminations(pod)
            .into_iter()
            .find(|t| std::ptr::eq(t.container, c) && t.exit_code != 0 && t.matters(pod))
            .map(|t| t.evidence(pod)),
    );
    Some(Diagnosis {
        rule: "TRI-CONFIG-ARGS",
        category: Category::Config,
        side: Some(Side::Configuration),
        confidence: 0.9,
        summary: format!(
            "{runtime} in {} rejected its configuration: {}",
            c.name,
            crate::rules::facts::shorten(hit.line.text.trim())
        ),
        evidence,
        next_steps: vec![
            format!(
                "Fix the flag in the container's args: `{}`. Flags change between releases: check them against `--help` of the image's version ({}).",
                crate::rules::facts::shorten(&c.command_line),
                c.image
            ),
            format!(
                "Confirm: {}",
                Kubectl::of(pod).logs(
                    &c.name,
                    hit.line.previous,
                    Some("error|invalid|unrecognized|unexpected")
                )
            ),
        ],
    })
}

/// The pod was evicted for using more ephemeral storage than its own limits allow.
pub(crate) fn ephemeral_storage(pod: &PodEvidence) -> Option<Diagnosis> {
    let over = |m: &str| {
        m.contains("ephemeral local storage usage exceeds the total limit")
            || m.contains("exceeded its local ephemeral storage limit")
            || (m.contains("Usage of EmptyDir volume") && m.contains("exceeds the limit"))
    };
    let status =
        pod.reason.as_deref() == Some("Evicted") && pod.message.as_deref().is_some_and(over);
    let event = events(pod, &["Evicted"])
        .into_iter()
        .rfind(|e| over(&e.message) && is_recent(pod, e.last_seen.as_deref()));
    if !status && event.is_none() {
        return None;
    }
    let mut evidence = Vec::new();
    if status {
        evidence.push(pod_status_evidence(pod));
    }
    evidence.extend(event.map(|e| pod_event(pod, e)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::ContainerState;
    use crate::rules::test_support::*;
    use hangar_core::Runtime;

    #[test]
    fn a_missing_secret_key_is_configuration() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.8.5", "vllm serve m");
        pod.containers[0].state = Some(ContainerState::Waiting {
            reason: Some("CreateContainerConfigError".into()),
            message: Some("couldn't find key HF_TOKEN in Secret ml/hf-token".into()),
        });
        let d = missing_reference(&pod).unwrap();
        assert!(d.summary.contains("couldn't find key HF_TOKEN"));
        assert!(cannot_start(&pod).is_none());
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
        assert_eq!(cannot_start(&pod).unwrap().category, Category::Config);
        assert!(missing_reference(&pod).is_none());
        if let ContainerState::Terminated { message, .. } = &mut start_error {
            *message = Some("nvidia-container-cli: initialization error: nvml error: driver/library version mismatch: unknown".into());
        }
        pod.containers[0].last_state = Some(start_error);
        assert!(cannot_start(&pod).is_none());
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
        let d = bad_arguments(&pod).unwrap();
        assert_eq!(d.category, Category::Config);
        pod.containers[0].previous_log = Some(tail(&[
            "INFO text_generation_launcher: Args { model_id: \"m\" }",
        ]));
        assert!(bad_arguments(&pod).is_none());
    }

    #[test]
    fn ephemeral_storage_over_the_limit_is_configuration() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.8.5", "vllm serve m");
        pod.reason = Some("Evicted".into());
        pod.message = Some(
            "Pod ephemeral local storage usage exceeds the total limit of containers 20Gi. ".into(),
        );
        assert!(ephemeral_storage(&pod).is_some());
        pod.message = Some("The node was low on resource: memory.".into());
        assert!(ephemeral_storage(&pod).is_none());
    }
}
