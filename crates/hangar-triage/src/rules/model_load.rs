//! The model cannot be loaded: its repository, files, weights or architecture.
//!
//! Sides, and why: a repository, revision or tag that does not exist, files missing from it,
//! weights that cannot be read and an architecture the server does not know are the **model**'s
//! side — the artifact named is not a servable model. A gated repository or a refused token is
//! **configuration**: the model is fine, the credentials the deployment carries are not. So is
//! code the server must be told to trust (`--trust-remote-code`): trusting it is a decision the
//! deployment makes, not a defect of the model.

use std::sync::LazyLock;

use crate::evidence::{ContainerEvidence, PodEvidence};
use crate::rules::facts::{Kubectl, runtime_name, runtime_of, terminations};
use crate::rules::oom::hit_matters;
use crate::rules::signatures::{Hit, Kind, Scanner};
use crate::rules::steps::flag;
use crate::verdict::{Category, Diagnosis, Side};
use hangar_core::Runtime;

static MODEL: LazyLock<Scanner> = LazyLock::new(|| {
    Scanner::new(&[
        Kind::HubAuth,
        Kind::HubNotFound,
        Kind::HubThrottled,
        Kind::MissingFile,
        Kind::CorruptWeights,
        Kind::RemoteCode,
        Kind::UnsupportedArch,
    ])
});

/// The model the container serves, from its flags or environment.
fn model_name(c: &ContainerEvidence) -> Option<String> {
    let from_flags = flag(
        &c.command_line,
        &[
            "--model",
            "--model-id",
            "--model-path",
            "--model-repository",
        ],
    );
    let positional = || {
        let mut tokens = c.command_line.split_whitespace();
        tokens.find(|t| *t == "serve")?;
        tokens.next().filter(|t| !t.starts_with('-'))
    };
    from_flags
        .or_else(positional)
        .map(str::to_owned)
        .or_else(|| c.env.get("MODEL_ID").cloned())
        .or_else(|| c.env.get("MODEL_NAME").cloned())
}

fn trust_flag(runtime: Runtime) -> &'static str {
    match runtime {
        Runtime::Tgi | Runtime::Vllm | Runtime::Sglang => "--trust-remote-code",
        _ => "the server's trust-remote-code setting",
    }
}

/// Lower is more specific. Trusting remote code comes first: nothing loads until it is set.
fn specificity(hit: &Hit<'_>) -> u8 {
    match (hit.kind(), hit.signature.id) {
        (Kind::RemoteCode, _) => 0,
        (Kind::HubAuth, "hf-gated") => 1,
        (Kind::HubNotFound | Kind::HubThrottled, _) => 2,
        (Kind::MissingFile, _) => 3,
        (Kind::CorruptWeights, _) => 4,
        (Kind::UnsupportedArch, _) => 5,
        _ => 6,
    }
}

pub(crate) fn model_load(pod: &PodEvidence) -> Option<Diagnosis> {
    let hits = MODEL.scan(pod);
    let relevant: Vec<&Hit> = hits.iter().filter(|h| hit_matters(pod, h)).collect();
    // The most specific line names the cause: a chained traceback starts with the transport's
    // bare `401 Client Error`, which the hub also sends for a repository that does not exist,
    // and ends with the hub's own exception class.
    let hit = *relevant.iter().min_by_key(|h| specificity(h))?;
    let c = hit.line.container;
    let runtime = runtime_of(pod, c);
    let model = model_name(c).unwrap_or_else(|| "the model".into());
    let kubectl = Kubectl::of(pod);
    let mut evidence = vec![hit.line.evidence()];
    evidence.extend(
        relevant
            .iter()
            .filter(|h| h.kind() == hit.kind() && !std::ptr::eq(h.line.text, hit.line.text))
            .take(1)
            .map(|h| h.line.evidence()),
    );
    evidence.extend(
        terminations(pod)
            .into_iter()
            .find(|t| std::ptr::eq(t.container, c) && t.exit_code != 0 && t.matters(pod))
            .map(|t| t.evidence(pod)),
    );
    let token_env = ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]
        .iter()
        .find(|k| c.env.contains_key(**k) || c.env_from.iter().any(|e| e == *k))
        .copied();
    let token_is_literal = token_env.is_some_and(|k| c.env.contains_key(k));
    let env_check = format!(
        "kubectl -n {} get pod {} -o jsonpath='{{.spec.containers[?(@.name==\"{}\")].env}}'",
        pod.pod.namespace, pod.pod.name, c.name
    );
    let (side, summary, mut next_steps) = match hit.kind() {
        Kind::HubAuth => (
            Side::Configuration,
            format!("The Hugging Face hub refused access to {model}: the repository is gated or the token is missing or invalid."),
            vec![
                match (token_env, token_is_literal) {
                    (Some(name), true) => format!("The container sets {name} as a literal: replace it with a valid token from a Secret (valueFrom.secretKeyRef)."),
                    (Some(name), false) => format!("The container takes {name} from a Secret: check that the Secret holds a current token ({env_check})."),
                    (None, _) => format!("Give `{}` a token: env HF_TOKEN from a Secret (valueFrom.secretKeyRef); check what it has with {env_check}", c.name),
                },
                format!("Accept the model's licence on huggingface.co/{model} with the account that owns the token; fine-grained tokens also need read access to gated repos."),
            ],
        ),
        Kind::RemoteCode => (
            Side::Configuration,
            format!("{model} ships its own modelling code and the server was not told to trust it."),
            vec![
                format!("Review the repository's code, then add {} and pin `--revision` to the commit you reviewed.", trust_flag(runtime)),
            ],
        ),
        Kind::HubThrottled => (
            Side::Infrastructure,
            format!("The Hugging Face hub rate-limited the download of {model} (429 Too Many Requests)."),
            vec![
                "Stop every replica downloading on its own: stage the weights once on a shared volume or an in-cluster mirror and point the server at the local path (HF_HUB_OFFLINE=1).".into(),
                format!("Authenticated requests get higher limits: {}", if token_env.is_some() { "the container has a token, so the limit is per account or egress address; stagger rollouts (maxSurge)." } else { "give the container an HF_TOKEN from a Secret." }),
            ],
        ),
        Kind::HubNotFound => (
            Side::Model,
            format!("The model {model} (or the revision or tag asked for) does not exist where the server looks."),
            vec![
                format!("Check the name and revision: the repository id is case-sensitive; for a private repository the hub also answers \"not found\" without a token{}.", if token_env.is_none() { " (the container sets no HF_TOKEN)" } else { "" }),
                "For Ollama, check the tag on ollama.com/library; for a release pipeline, check the artifact was published.".into(),
            ],
        ),
        Kind::MissingFile => (
            Side::Model,
            format!("{model} is missing files the server needs (config.json, weights or tokenizer)."),
            vec![format!(
                "List what is there: kubectl -n {} exec {} -c {} -- ls -la <model dir>; a fine-tuning checkpoint or LoRA adapter is not a full model, and a hub cache needs its snapshots/<commit> directory.",
                pod.pod.namespace, pod.pod.name, c.name
            )],
        ),
        Kind::CorruptWeights => (
            Side::Model,
            format!("The weights or config of {model} cannot be read: a file is truncated, corrupt or a Git LFS pointer."),
            vec!["Check the file sizes against the repository (a few hundred bytes means an LFS pointer) and download again with huggingface-cli or `git lfs pull`; verify checksums in the release pipeline.".into()],
        ),
        _ => (
            Side::Model,
            format!("{} does not support the architecture of {model}.", runtime_name(runtime)),
            vec![format!("Check {}'s supported-models list for this architecture and upgrade the image if a newer release supports it; otherwise serve the model with another runtime.", runtime_name(runtime))],
        ),
    };
    next_steps.push(format!(
        "Confirm: {}",
        kubectl.logs(
            &c.name,
            hit.line.previous,
            Some("Error|does not|not supported|gated")
        )
    ));
    Some(Diagnosis {
        rule: "TRI-MODEL-LOAD",
        category: Category::ModelLoad,
        side: Some(side),
        confidence: 0.9,
        summary,
        evidence,
        next_steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::*;

    #[test]
    fn a_gated_repo_is_configuration() {
        let mut pod = pod_with(
            Runtime::Vllm,
            "vllm/vllm-openai:v0.8.5",
            "vllm serve meta-llama/Llama-3.1-8B-Instruct",
        );
        pod.containers[0].previous_log = Some(tail(&[
            "huggingface_hub.errors.GatedRepoError: 401 Client Error. (Request ID: Root=1-66f4b037)",
            "Cannot access gated repo for url https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct/resolve/main/config.json.",
        ]));
        let d = model_load(&pod).unwrap();
        assert_eq!(
            (d.category, d.side),
            (Category::ModelLoad, Some(Side::Configuration))
        );
        assert!(d.summary.contains("meta-llama/Llama-3.1-8B-Instruct"));
    }

    #[test]
    fn missing_config_is_the_model() {
        let mut pod = pod_with(
            Runtime::Vllm,
            "vllm/vllm-openai:v0.8.5",
            "vllm serve /models/mistral",
        );
        pod.containers[0].previous_log = Some(tail(&[
            "OSError: /models/mistral does not appear to have a file named config.json. Checkout 'https://huggingface.co//models/mistral/tree/None' for available files.",
        ]));
        let d = model_load(&pod).unwrap();
        assert_eq!(d.side, Some(Side::Model));
    }

    #[test]
    fn quiet_on_a_clean_load() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.8.5", "vllm serve m");
        pod.containers[0].log = Some(tail(&[
            "INFO Loading safetensors checkpoint shards: 100% Completed | 4/4",
        ]));
        assert!(model_load(&pod).is_none());
    }

    #[test]
    fn finds_the_model_name() {
        let c = ContainerEvidence {
            command_line: "text-generation-launcher --model-id=bigscience/bloom".into(),
            ..ContainerEvidence::default()
        };
        assert_eq!(model_name(&c).as_deref(), Some("bigscience/bloom"));
    }
}
