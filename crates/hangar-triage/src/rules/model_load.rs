//! The model cannot be loaded: its repository, files, weights or architecture.
//!
//! Sides, and why: a repository, revision or tag that does not exist, files missing from it,
//! weights that cannot be read and an architecture the server does not know are the **model**'s
//! side — the artifact named is not a servable model. A gated repository or a refused token is
//! **configuration**: the model is fine, the credentials the deployment carries are not. So is
//! code the server must be told to trust (`--trust-remote-code`): trusting it is a decision the
//! deployment makes, not a defect of the model. A storage URI with no model under it, and a
//! compiled engine (a TensorRT plan) built for another TensorRT version or GPU, are the **model**'s
//! too: the artifact the release pipeline published must be published or rebuilt. An object store
//! that refuses the credentials is **configuration**, as a refused hub token is.

use std::sync::LazyLock;

use crate::evidence::{ContainerEvidence, PodEvidence};
use crate::rules::facts::{Kubectl, runtime_name, runtime_of, terminations};
use crate::rules::signatures::{Hit, Hits, Kind};
use crate::rules::steps::flag;
use crate::verdict::{Category, Diagnosis, Side};
use hangar_core::Runtime;

const MODEL: &[Kind] = &[
    Kind::HubAuth,
    Kind::StorageAuth,
    Kind::HubNotFound,
    Kind::HubThrottled,
    Kind::MissingFile,
    Kind::CorruptWeights,
    Kind::StorageEmpty,
    Kind::IncompatibleEngine,
    Kind::RemoteCode,
    Kind::UnsupportedArch,
];

/// The model the container serves, from its flags or environment.
fn model_name(c: &ContainerEvidence) -> Option<String> {
    // llama.cpp names the file with `-m`, which elsewhere is Python's `-m module`.
    let llamacpp = hangar_core::inventory::runtime_from_image(&c.image) == Some(Runtime::Llamacpp)
        || c.image.contains("llama.cpp");
    let from_flags = flag(
        &c.command_line,
        &[
            "--model",
            "--model-id",
            "--model-path",
            "--model-repository",
        ],
    )
    .or_else(|| llamacpp.then(|| flag(&c.command_line, &["-m"])).flatten());
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

/// Where the container fetches the model from: the first URI among its arguments
/// (`s3://bucket/prefix/`, `gs://…`, `pvc://…`).
fn storage_uri(c: &ContainerEvidence) -> Option<&str> {
    c.command_line
        .split_whitespace()
        .map(|t| t.rsplit_once('=').map_or(t, |(_, v)| v))
        .find(|t| t.contains("://"))
}

static TRITON_FAILED: LazyLock<Option<regex::Regex>> =
    LazyLock::new(|| regex::Regex::new(r"failed to load '([^']+)' version (\d+)").ok());

/// The model and version Triton says it failed to load, from the lines after `hit`.
fn failed_triton_model(hit: &Hit<'_>) -> Option<String> {
    let re = TRITON_FAILED.as_ref()?;
    hit.line
        .tail
        .lines
        .iter()
        .skip(hit.line.index)
        .find_map(|l| {
            let m = re.captures(l)?;
            Some(format!(
                "model '{}' version {}",
                m.get(1)?.as_str(),
                m.get(2)?.as_str()
            ))
        })
}

/// Lower is more specific. Trusting remote code comes first: nothing loads until it is set.
fn specificity(hit: &Hit<'_>) -> u8 {
    match (hit.kind(), hit.signature.id) {
        (Kind::RemoteCode, _) => 0,
        (Kind::HubAuth, "hf-gated") => 1,
        (Kind::StorageAuth, _) => 1,
        (Kind::HubNotFound | Kind::HubThrottled | Kind::StorageEmpty, _) => 2,
        (Kind::MissingFile, _) => 3,
        (Kind::CorruptWeights | Kind::IncompatibleEngine, _) => 4,
        (Kind::UnsupportedArch, _) => 5,
        _ => 6,
    }
}

pub(crate) fn model_load<'a>(pod: &'a PodEvidence, scan: &Hits<'a>) -> Option<Diagnosis> {
    let hits = scan.of(MODEL);
    let relevant: Vec<&Hit> = hits.iter().filter(|h| scan.matters(pod, h)).collect();
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
            vec![
                "Check the file sizes against the repository (a few hundred bytes means an LFS pointer) and download again with huggingface-cli or `git lfs pull`; verify checksums in the release pipeline.".into(),
                format!(
                    "See what is on disk: kubectl -n {} exec {} -c {} -- ls -la <model dir>, and compare with the published file's size and sha256 (an interrupted copy leaves a shorter file).",
                    pod.pod.namespace, pod.pod.name, c.name
                ),
            ],
        ),
        Kind::StorageEmpty => {
            let uri = storage_uri(c).unwrap_or("the storage URI");
            (
                Side::Model,
                format!("No model exists under {uri}: the artifact was never published there, or the path names the wrong version."),
                vec![
                    format!("List what is there: `aws s3 ls {uri}` (or gsutil ls / az storage blob list for other stores) and compare with the path the release pipeline uploads to."),
                    format!(
                        "Fix the storageUri of the InferenceService to the published version, or publish the model: kubectl -n {} get inferenceservice -o jsonpath='{{.items[*].spec.predictor.model.storageUri}}'",
                        pod.pod.namespace
                    ),
                ],
            )
        }
        Kind::IncompatibleEngine => (
            Side::Model,
            format!(
                "The compiled model artifact of {} was built for another version of its runtime (TensorRT, ONNX Runtime) or another GPU than {} provides.",
                failed_triton_model(hit).unwrap_or(model.clone()),
                c.image
            ),
            vec![
                format!("Rebuild the artifact (trtexec or the TensorRT-LLM build; the ONNX export's opset) with the runtime version inside {} and on the GPU type it will run on, and publish it as a new model version.", c.image),
                "Or pin the serving image to the release that built it (Triton's release notes list the TensorRT and ONNX Runtime version of each image); keep the build's runtime version in the model's metadata so the pipeline can check it.".into(),
            ],
        ),
        Kind::StorageAuth => {
            let uri = storage_uri(c).unwrap_or("the object store");
            (
                Side::Configuration,
                format!("The object store refused the credentials {} uses to fetch the model from {uri}.", c.name),
                vec![
                    format!(
                        "Check the credentials the pod carries: the Secret or ServiceAccount the InferenceService names ({}), and that its key, role (IRSA / Workload Identity) and bucket policy allow reading {uri}.",
                        if c.env_from.is_empty() { "no credential variables set from Secrets".to_owned() } else { c.env_from.join(", ") }
                    ),
                    format!("Confirm with the same identity: kubectl -n {} get serviceaccount,secret", pod.pod.namespace),
                ],
            )
        }
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
            Some("Error|does not|not supported|gated|No model found|corrupted|compatible|denied")
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
        let d = run(model_load, &pod).unwrap();
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
        let d = run(model_load, &pod).unwrap();
        assert_eq!(d.side, Some(Side::Model));
    }

    #[test]
    fn quiet_on_a_clean_load() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.8.5", "vllm serve m");
        pod.containers[0].log = Some(tail(&[
            "INFO Loading safetensors checkpoint shards: 100% Completed | 4/4",
        ]));
        assert!(run(model_load, &pod).is_none());
    }

    #[test]
    fn an_empty_storage_prefix_and_a_broken_gguf_are_the_model() {
        let mut pod = pod_with(
            Runtime::Kserve,
            "kserve/storage-initializer:v0.13.1",
            "s3://kserve-lab/llama3-ft/v3/ /mnt/models",
        );
        pod.containers[0].init = true;
        pod.containers[0].previous_log = Some(tail(&[
            "RuntimeError: Failed to fetch model. No model found in llama3-ft/v3/.",
        ]));
        let d = run(model_load, &pod).unwrap();
        assert_eq!(
            (d.category, d.side),
            (Category::ModelLoad, Some(Side::Model))
        );
        assert!(d.summary.contains("s3://kserve-lab/llama3-ft/v3/"));

        let mut pod = pod_with(
            Runtime::Llamacpp,
            "ghcr.io/ggml-org/llama.cpp:server-cuda",
            "-m /models/m.gguf",
        );
        pod.containers[0].previous_log = Some(tail(&[
            "llama_model_load: error loading model: tensor 'blk.21.ffn_down.weight' data is not within the file bounds, model is corrupted or incomplete",
        ]));
        let d = run(model_load, &pod).unwrap();
        assert_eq!(d.side, Some(Side::Model));
        assert!(d.summary.contains("/models/m.gguf"), "{}", d.summary);
    }

    #[test]
    fn a_tensorrt_plan_from_another_version_is_the_model() {
        let mut pod = pod_with(
            Runtime::Triton,
            "nvcr.io/nvidia/tritonserver:23.10-py3",
            "tritonserver --model-repository=/models",
        );
        pod.containers[0].previous_log = Some(tail(&[
            "E1121 16:00:12.693512 1 logging.cc:40] 6: The engine plan file is not compatible with this version of TensorRT, expecting library version 8.6.1.6 got 8.5.3.1, please rebuild.",
            "E1121 16:00:12.699842 1 model_lifecycle.cc:621] failed to load 'detector' version 2: Internal: unable to create TensorRT engine",
        ]));
        let d = run(model_load, &pod).unwrap();
        assert_eq!(d.side, Some(Side::Model));
        assert!(
            d.summary.contains("model 'detector' version 2"),
            "{}",
            d.summary
        );
        assert!(d.next_steps[0].contains("tritonserver:23.10-py3"));
        pod.containers[0].previous_log = Some(tail(&[
            "I1121 16:00:12.247315 1 tensorrt.cc:65] TRITONBACKEND_Initialize: tensorrt",
        ]));
        assert!(run(model_load, &pod).is_none());
    }

    #[test]
    fn object_store_credentials_are_configuration_and_missing_triton_files_the_model() {
        let mut pod = pod_with(
            Runtime::Kserve,
            "kserve/storage-initializer:v0.14.0",
            "s3://models/llama/v1/ /mnt/models",
        );
        pod.containers[0].previous_log = Some(tail(&[
            "botocore.exceptions.ClientError: An error occurred (403) when calling the HeadObject operation: Forbidden",
        ]));
        let d = run(model_load, &pod).unwrap();
        assert_eq!(d.side, Some(Side::Configuration));
        assert!(d.summary.contains("s3://models/llama/v1/"));

        let mut pod = pod_with(
            Runtime::Triton,
            "nvcr.io/nvidia/tritonserver:22.09-py3",
            "tritonserver --model-repository=/models",
        );
        pod.containers[0].previous_log = Some(tail(&[
            "E1010 00:39:51.711103 1 model_lifecycle.cc:596] failed to load 'yolox_onnx' version 1: Internal: failed to stat file /models/yolox_onnx/1/model.onnx",
        ]));
        assert_eq!(run(model_load, &pod).unwrap().side, Some(Side::Model));
        pod.containers[0].previous_log = Some(tail(&[
            "UNAVAILABLE: Internal: onnx runtime error 2: Failed to load model with error: Unknown model file format version",
        ]));
        assert!(
            run(model_load, &pod)
                .unwrap()
                .summary
                .contains("another version of its runtime")
        );
        pod.containers[0].previous_log = Some(tail(&[
            "llama_model_load: error loading model: error loading model architecture: unknown model architecture: 'gemma3'",
        ]));
        assert_eq!(run(model_load, &pod).unwrap().side, Some(Side::Model));
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
