//! Recognising a model server from its image and command.

use std::fmt;

use serde::Serialize;

use crate::image::ImageRef;

/// The model server (or serving platform) behind an endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Vllm,
    Tgi,
    Tei,
    Triton,
    Ollama,
    Sglang,
    Llamacpp,
    Torchserve,
    Tfserving,
    Mlserver,
    Nim,
    Rayserve,
    Kserve,
    Seldon,
    Kaito,
    Kubeai,
    Lmdeploy,
    Localai,
    #[default]
    Other,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Vllm => "vllm",
            Runtime::Tgi => "tgi",
            Runtime::Tei => "tei",
            Runtime::Triton => "triton",
            Runtime::Ollama => "ollama",
            Runtime::Sglang => "sglang",
            Runtime::Llamacpp => "llamacpp",
            Runtime::Torchserve => "torchserve",
            Runtime::Tfserving => "tfserving",
            Runtime::Mlserver => "mlserver",
            Runtime::Nim => "nim",
            Runtime::Rayserve => "rayserve",
            Runtime::Kserve => "kserve",
            Runtime::Seldon => "seldon",
            Runtime::Kaito => "kaito",
            Runtime::Kubeai => "kubeai",
            Runtime::Lmdeploy => "lmdeploy",
            Runtime::Localai => "localai",
            Runtime::Other => "other",
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Image repository names (the last path segment, or a longer path suffix) of model servers.
/// The tag is ignored: teams retag, but rarely rename.
const IMAGE_NAMES: &[(&str, Runtime)] = &[
    ("vllm-openai", Runtime::Vllm),
    ("vllm", Runtime::Vllm),
    ("text-generation-inference", Runtime::Tgi),
    ("text-embeddings-inference", Runtime::Tei),
    ("tritonserver", Runtime::Triton),
    ("ollama", Runtime::Ollama),
    ("sglang", Runtime::Sglang),
    ("llama.cpp", Runtime::Llamacpp),
    ("llama-cpp-server", Runtime::Llamacpp),
    ("torchserve", Runtime::Torchserve),
    ("tensorflow/serving", Runtime::Tfserving),
    ("tensorflow-serving", Runtime::Tfserving),
    ("mlserver", Runtime::Mlserver),
    ("lmdeploy", Runtime::Lmdeploy),
    ("localai", Runtime::Localai),
    ("local-ai", Runtime::Localai),
    ("xinference", Runtime::Other),
    ("huggingfaceserver", Runtime::Kserve),
    ("sklearnserver", Runtime::Kserve),
    ("xgbserver", Runtime::Kserve),
];

/// Recognises a model server from an image reference.
pub fn runtime_from_image(image: &str) -> Option<Runtime> {
    let image = ImageRef::parse(image);
    let path = image.path.to_ascii_lowercase();
    if image.registry == "nvcr.io" && path.starts_with("nim/") {
        return Some(Runtime::Nim);
    }
    let short = path.rsplit('/').next().unwrap_or(&path);
    IMAGE_NAMES
        .iter()
        .find(|(name, _)| {
            if name.contains('/') {
                path.ends_with(name)
            } else {
                short == *name || short.starts_with(&format!("{name}-"))
            }
        })
        .map(|(_, runtime)| *runtime)
}

/// Command-line fragments that start a model server.
const COMMANDS: &[(&str, Runtime)] = &[
    ("vllm serve", Runtime::Vllm),
    ("vllm.entrypoints", Runtime::Vllm),
    ("text-generation-launcher", Runtime::Tgi),
    ("text-embeddings-router", Runtime::Tei),
    ("tritonserver", Runtime::Triton),
    ("ollama serve", Runtime::Ollama),
    ("sglang.launch_server", Runtime::Sglang),
    ("llama-server", Runtime::Llamacpp),
    ("llama_cpp.server", Runtime::Llamacpp),
    ("torchserve", Runtime::Torchserve),
    ("tensorflow_model_server", Runtime::Tfserving),
    ("mlserver start", Runtime::Mlserver),
    ("serve run ", Runtime::Rayserve),
    ("serve deploy ", Runtime::Rayserve),
    ("lmdeploy serve", Runtime::Lmdeploy),
    ("local-ai", Runtime::Localai),
    ("xinference-local", Runtime::Other),
];

/// Recognises a model server from a container's command and args joined by spaces.
pub fn runtime_from_command(command_line: &str) -> Option<(&'static str, Runtime)> {
    COMMANDS
        .iter()
        .find(|(fragment, _)| command_line.contains(fragment))
        .map(|(fragment, runtime)| (fragment.trim_end(), *runtime))
}

/// Ports model servers listen on by default: weak evidence on its own.
pub const SERVING_PORTS: &[(i32, &str)] = &[
    (8000, "vLLM/NIM/Triton HTTP"),
    (8001, "Triton gRPC"),
    (11434, "Ollama"),
    (30000, "SGLang"),
    (8500, "TF Serving gRPC"),
    (8501, "TF Serving REST"),
    (23333, "LMDeploy"),
];

/// Health and discovery routes that model servers answer.
pub const SERVING_PROBE_PATHS: &[&str] = &[
    "/v1/models",
    "/v2/health/ready",
    "/v2/health/live",
    "/api/tags",
    "/v1/health",
    "/ping",
];

/// Environment variables that only model servers read.
pub const SERVING_ENV_PREFIXES: &[&str] = &[
    "VLLM_",
    "OLLAMA_",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_HOME",
    "NIM_",
    "SGLANG_",
    "MODEL_ID",
    "TRANSFORMERS_CACHE",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_recognised_by_repository_not_tag() {
        assert_eq!(
            runtime_from_image("vllm/vllm-openai:v0.8.5"),
            Some(Runtime::Vllm)
        );
        assert_eq!(
            runtime_from_image("ghcr.io/huggingface/text-generation-inference:3.0"),
            Some(Runtime::Tgi)
        );
        assert_eq!(
            runtime_from_image("nvcr.io/nvidia/tritonserver:24.08-py3"),
            Some(Runtime::Triton)
        );
        assert_eq!(
            runtime_from_image("nvcr.io/nim/meta/llama-3.1-8b-instruct:1.3"),
            Some(Runtime::Nim)
        );
        assert_eq!(runtime_from_image("ollama/ollama"), Some(Runtime::Ollama));
        assert_eq!(
            runtime_from_image("lmsysorg/sglang:latest"),
            Some(Runtime::Sglang)
        );
        assert_eq!(
            runtime_from_image("ghcr.io/ggml-org/llama.cpp:server-cuda"),
            Some(Runtime::Llamacpp)
        );
        assert_eq!(
            runtime_from_image("tensorflow/serving:2.15"),
            Some(Runtime::Tfserving)
        );
        assert_eq!(
            runtime_from_image("registry.example.com/ml/vllm-cuda12:0.6"),
            Some(Runtime::Vllm)
        );
        assert_eq!(runtime_from_image("nginx:1.27"), None);
        assert_eq!(runtime_from_image("pytorch/pytorch:2.4-cuda12"), None);
    }

    #[test]
    fn commands_are_recognised() {
        assert_eq!(
            runtime_from_command("python3 -m vllm.entrypoints.openai.api_server --model x")
                .map(|r| r.1),
            Some(Runtime::Vllm)
        );
        assert_eq!(
            runtime_from_command("python -m sglang.launch_server --model-path x").map(|r| r.1),
            Some(Runtime::Sglang)
        );
        assert_eq!(runtime_from_command("python train.py --epochs 3"), None);
    }
}
