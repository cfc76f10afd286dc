//! Recognising a model server from its image and command.

use std::fmt;

use k8s_openapi::api::core::v1::Container;
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

/// One port a model server listens on for its API: the flags and variables that set it, and
/// the port it takes otherwise.
struct Listener {
    flags: &'static [&'static str],
    /// Variables holding the port, or (`address`) an address `[scheme://]host[:port]`.
    vars: &'static [&'static str],
    address: bool,
    default: i32,
    /// The default the server's own image sets instead (TGI's and TEI's `ENV PORT=80`; the
    /// launchers alone listen on 3000).
    image_default: Option<i32>,
}

const fn listener(
    flags: &'static [&'static str],
    vars: &'static [&'static str],
    default: i32,
) -> Listener {
    Listener {
        flags,
        vars,
        address: false,
        default,
        image_default: None,
    }
}

/// The listener of Hugging Face's launchers (TGI and TEI).
const HF_LAUNCHER: Listener = Listener {
    flags: &["--port", "-p"],
    vars: &["PORT"],
    address: false,
    default: 3000,
    image_default: Some(80),
};

/// The API listeners of the servers whose ports are documented; servers not listed (TorchServe
/// and TF Serving read theirs from configuration, KServe and Seldon wrap another) have none.
const LISTENERS: &[(Runtime, &[Listener])] = &[
    (Runtime::Vllm, &[listener(&["--port"], &[], 8000)]),
    (Runtime::Sglang, &[listener(&["--port"], &[], 30000)]),
    (
        Runtime::Llamacpp,
        &[listener(&["--port"], &["LLAMA_ARG_PORT"], 8080)],
    ),
    (
        Runtime::Lmdeploy,
        &[listener(&["--server-port"], &[], 23333)],
    ),
    (
        Runtime::Triton,
        &[
            listener(&["--http-port"], &[], 8000),
            listener(&["--grpc-port"], &[], 8001),
        ],
    ),
    (Runtime::Nim, &[listener(&[], &["NIM_SERVER_PORT"], 8000)]),
    (
        Runtime::Ollama,
        &[Listener {
            flags: &[],
            vars: &["OLLAMA_HOST"],
            address: true,
            default: 11434,
            image_default: None,
        }],
    ),
    (Runtime::Tgi, &[HF_LAUNCHER]),
    (Runtime::Tei, &[HF_LAUNCHER]),
];

/// The ports container `c`, running the `runtime` server, listens on for its API: each
/// listener's flag (the last one given) or variable, else its default. `None` when the server's
/// ports are not documented here or a setting cannot be read (`--port $(PORT)` with `PORT`
/// from a Secret).
pub(super) fn api_ports(runtime: Runtime, c: &Container) -> Option<Vec<i32>> {
    let (_, listeners) = LISTENERS.iter().find(|(r, _)| *r == runtime)?;
    let words: Vec<String> = super::command_line(c)
        .split_whitespace()
        .map(|w| w.trim_matches(|ch| ch == '"' || ch == '\'').to_owned())
        .collect();
    let own_image = c
        .image
        .as_deref()
        .and_then(runtime_from_image)
        .is_some_and(|r| r == runtime);
    listeners
        .iter()
        .map(|listener| -> Option<i32> {
            if let Some(value) = last_flag(&words, listener.flags) {
                let value = value?;
                let value = match value.strip_prefix("$(").and_then(|v| v.strip_suffix(')')) {
                    Some(var) => env_value(c, var)??,
                    None => value,
                };
                return port_number(value);
            }
            let default = match listener.image_default {
                Some(port) if own_image => port,
                _ => listener.default,
            };
            match listener.vars.iter().find_map(|var| env_value(c, var)) {
                Some(value) if listener.address => port_of_address(value?, default),
                Some(value) => port_number(value?),
                None => Some(default),
            }
        })
        .collect()
}

/// The value of the last of `flags` on the command line (`--f v` or `--f=v`): `None` when none
/// is given, `Some(None)` when one is given without a value.
fn last_flag<'w>(words: &'w [String], flags: &[&str]) -> Option<Option<&'w str>> {
    let mut found = None;
    for (i, word) in words.iter().enumerate() {
        for flag in flags {
            if word == flag {
                found = Some(words.get(i + 1).map(String::as_str));
            } else if let Some(value) = word.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
                found = Some(Some(value));
            }
        }
    }
    found
}

/// A variable of the container: `None` when it does not set it, `Some(None)` when its value
/// comes from elsewhere (a Secret, a ConfigMap, a field).
fn env_value<'c>(c: &'c Container, name: &str) -> Option<Option<&'c str>> {
    let var = c.env.iter().flatten().rev().find(|e| e.name == name)?;
    Some(var.value.as_deref())
}

/// A port number, if `value` is one.
fn port_number(value: &str) -> Option<i32> {
    value
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|p| (1..=65535).contains(p))
}

/// The port of an address such as `0.0.0.0:11434`, `http://[::]:8080` or `0.0.0.0` (which
/// keeps `default`); `None` when it is not an address.
fn port_of_address(value: &str, default: i32) -> Option<i32> {
    let value = value.trim();
    let authority = value.split_once("://").map_or(value, |(_, rest)| rest);
    let authority = authority.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !authority.ends_with(']') => (host, Some(port)),
        _ => (authority, None),
    };
    let host_is_address = host.starts_with('[')
        || host
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '.' || ch == '-');
    if !host_is_address {
        return None;
    }
    port.map_or(Some(default), port_number)
}

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
