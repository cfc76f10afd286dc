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

/// What a listener's variables hold.
#[derive(Clone, Copy)]
enum Holds {
    /// A port number.
    Port,
    /// An address `[scheme://]host[:port]`; without a port, the scheme's (`http://` 80,
    /// `https://` 443, as Ollama's `envconfig.Host()` takes it), else the listener's default.
    Address,
    /// An address `host:port` that must name its port (Nemotron Parse's `NIM_SERVER_BIND_ADDR`).
    HostPort,
}

/// One port a model server listens on for its API: the flags and variables that set it, and
/// the port it takes otherwise.
struct Listener {
    flags: &'static [&'static str],
    vars: &'static [&'static str],
    holds: Holds,
    /// The port it takes when nothing sets it; `None` for a listener that is closed unless one
    /// of its variables is set (a NIM's gRPC port).
    default: Option<i32>,
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
        holds: Holds::Port,
        default: Some(default),
        image_default: None,
    }
}

/// A listener set by its variables alone, else on `default`.
const fn by_variable(
    vars: &'static [&'static str],
    holds: Holds,
    default: Option<i32>,
) -> Listener {
    Listener {
        flags: &[],
        vars,
        holds,
        default,
        image_default: None,
    }
}

/// The listener of Hugging Face's launchers (TGI and TEI).
const HF_LAUNCHER: Listener = Listener {
    flags: &["--port", "-p"],
    vars: &["PORT"],
    holds: Holds::Port,
    default: Some(3000),
    image_default: Some(80),
};

/// The API listeners of the servers whose ports are documented; servers not listed (TorchServe
/// and TF Serving read theirs from configuration, KServe and Seldon wrap another) have none.
/// A NIM's image does not tell which family it is of, so every family's listener is listed:
/// LLM NIMs read `NIM_SERVER_PORT`; the others `NIM_HTTP_API_PORT` and, for gRPC,
/// `NIM_GRPC_API_PORT` (its 50051 is not assumed: LLM NIMs have none, and a Service to it is
/// counted as an exposure's port); Nemotron Parse `NIM_SERVER_BIND_ADDR` and, when set,
/// `NIM_SERVER_GRPC_BIND_ADDR`.
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
    (
        Runtime::Nim,
        &[
            // Which family's variable a NIM reads cannot be told (LLM NIMs have been seen
            // reading either): a port one moves may still be the other's 8000.
            by_variable(&["NIM_SERVER_PORT"], Holds::Port, Some(8000)),
            by_variable(&["NIM_HTTP_API_PORT"], Holds::Port, Some(8000)),
            by_variable(&["NIM_SERVER_BIND_ADDR"], Holds::HostPort, None),
            by_variable(&["NIM_GRPC_API_PORT"], Holds::Port, None),
            by_variable(&["NIM_SERVER_GRPC_BIND_ADDR"], Holds::HostPort, None),
        ],
    ),
    (
        Runtime::Ollama,
        &[by_variable(&["OLLAMA_HOST"], Holds::Address, Some(11434))],
    ),
    (Runtime::Tgi, &[HF_LAUNCHER]),
    (Runtime::Tei, &[HF_LAUNCHER]),
];

/// Flags naming a configuration file that may set the port too (vLLM's `--config` YAML).
const CONFIG_FILE_FLAGS: &[(Runtime, &[&str])] = &[(Runtime::Vllm, &["--config"])];

/// Shells whose `-c` runs a command line that may set the server's variables itself.
const SHELLS: &[&str] = &["sh", "bash", "ash", "dash", "zsh", "ksh"];

/// The ports container `c`, running the `runtime` server, may listen on for its API: each
/// listener's flag (the last one given) or variable, else its default. `None` when the server's
/// ports are not documented here or a setting cannot be read (`--port $(PORT)` with `PORT`
/// from a Secret, a variable that `envFrom` may set, a configuration file, a shell command
/// that sets the variable).
pub(super) fn api_ports(runtime: Runtime, c: &Container) -> Option<Vec<i32>> {
    let (_, listeners) = LISTENERS.iter().find(|(r, _)| *r == runtime)?;
    let line = super::command_line(c);
    let words = words_of(&line);
    let config_file = CONFIG_FILE_FLAGS
        .iter()
        .any(|(r, flags)| *r == runtime && last_flag(&words, flags).is_some());
    if config_file {
        return None;
    }
    let launch = Launch::new(runtime, c, &line, &words);
    let mut ports = Vec::new();
    for listener in listeners.iter() {
        if let Some(port) = launch.port(listener)?
            && !ports.contains(&port)
        {
            ports.push(port);
        }
    }
    Some(ports)
}

/// A listener that serves only metrics, never the inference API, and the flags that switch it
/// on or off.
struct MetricsListener {
    runtime: Runtime,
    listener: Listener,
    switch: &'static [&'static str],
}

/// The servers that serve metrics on a port of their own: Triton on `--metrics-port` (8002)
/// while `--allow-metrics` does not switch it off, TEI on `--prometheus-port` or
/// `PROMETHEUS_PORT` (9000). Others (vLLM, SGLang, a NIM for LLMs) serve their metrics on the
/// API's own port.
const METRICS_LISTENERS: &[MetricsListener] = &[
    MetricsListener {
        runtime: Runtime::Triton,
        listener: listener(&["--metrics-port"], &[], 8002),
        switch: &["--allow-metrics"],
    },
    MetricsListener {
        runtime: Runtime::Tei,
        listener: listener(&["--prometheus-port"], &["PROMETHEUS_PORT"], 9000),
        switch: &[],
    },
];

/// The port on which container `c`, running the `runtime` server, serves only metrics (Triton's
/// 8002, TEI's 9000). `None` when the server has no such port, the container may switch it off
/// (Triton's `--allow-metrics` with any value but `true`, `on` or `1`), or the port cannot be
/// told (a variable from a Secret or perhaps from `envFrom`, a shell command that sets it).
pub(super) fn metrics_port(runtime: Runtime, c: &Container) -> Option<i32> {
    let metrics = METRICS_LISTENERS.iter().find(|m| m.runtime == runtime)?;
    let line = super::command_line(c);
    let words = words_of(&line);
    if let Some(value) = last_flag(&words, metrics.switch) {
        let on =
            value.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "on" | "1"));
        if !on {
            return None;
        }
    }
    Launch::new(runtime, c, &line, &words)
        .port(&metrics.listener)
        .flatten()
}

/// The words of a command line, without their quotes.
fn words_of(line: &str) -> Vec<String> {
    line.split_whitespace()
        .map(|w| w.trim_matches(|ch| ch == '"' || ch == '\'').to_owned())
        .collect()
}

/// How a container starts its server: what the port of a listener is read from.
struct Launch<'c> {
    container: &'c Container,
    /// The command and args, split into words without their quotes.
    words: &'c [String],
    /// The command line, when a shell runs it (`sh -c "…"`).
    script: Option<&'c str>,
    /// Whether the image is the server's own (whose defaults it may set).
    own_image: bool,
}

impl<'c> Launch<'c> {
    /// How `container`, whose command line is `line` (in `words`), starts the `runtime` server.
    fn new(runtime: Runtime, container: &'c Container, line: &'c str, words: &'c [String]) -> Self {
        Launch {
            container,
            script: runs_in_shell(words).then_some(line),
            words,
            own_image: (container.image.as_deref())
                .and_then(runtime_from_image)
                .is_some_and(|r| r == runtime),
        }
    }

    /// The port `listener` takes: `Some(None)` when it is closed (not set, and no default),
    /// `None` when it cannot be told.
    fn port(&self, listener: &Listener) -> Option<Option<i32>> {
        let c = self.container;
        if let Some(value) = last_flag(self.words, listener.flags) {
            let value = value?;
            let value = match value.strip_prefix("$(").and_then(|v| v.strip_suffix(')')) {
                Some(var) => env_value(c, var)??,
                None => value,
            };
            return port_number(value).map(Some);
        }
        // `export PORT=9000; text-generation-launcher`: the shell sets what `env` does not say.
        let script = self.script.unwrap_or_default();
        if listener.vars.iter().any(|var| mentions(script, var)) {
            return None;
        }
        let default = match listener.image_default {
            Some(port) if self.own_image => Some(port),
            _ => listener.default,
        };
        let Some(value) = listener.vars.iter().find_map(|var| env_value(c, var)) else {
            return Some(default);
        };
        let value = value?;
        let port = match listener.holds {
            Holds::Port => port_number(value),
            Holds::Address => port_of_address(value, scheme_port(value).or(default)),
            Holds::HostPort => port_of_address(value, None),
        };
        port.map(Some)
    }
}

/// The value of the last of `flags` on the command line (`--f v`, `--f=v`, and for a short
/// flag `-f8080`): `None` when none is given, `Some(None)` when one is given without a value.
fn last_flag<'w>(words: &'w [String], flags: &[&str]) -> Option<Option<&'w str>> {
    let mut found = None;
    for (i, word) in words.iter().enumerate() {
        for flag in flags {
            let short = flag.len() == 2 && !flag.starts_with("--");
            if word == flag {
                found = Some(words.get(i + 1).map(String::as_str));
            } else if let Some(rest) = word.strip_prefix(flag) {
                if let Some(value) = rest.strip_prefix('=') {
                    found = Some(Some(value));
                } else if short && !rest.is_empty() {
                    found = Some(Some(rest));
                }
            }
        }
    }
    found
}

/// Whether the command line runs through a shell's `-c` (`sh -c`, `/bin/bash -ec`).
fn runs_in_shell(words: &[String]) -> bool {
    let Some((first, rest)) = words.split_first() else {
        return false;
    };
    let program = first.rsplit('/').next().unwrap_or(first.as_str());
    SHELLS.contains(&program)
        && (rest.iter())
            .take_while(|w| w.starts_with('-'))
            .any(|w| !w.starts_with("--") && w.contains('c'))
}

/// Whether `script` names variable `var` as a word of its own (`PORT=9000`, `$PORT`, `${PORT}`,
/// not `MASTER_PORT`).
fn mentions(script: &str, var: &str) -> bool {
    let identifier = |ch: char| ch.is_ascii_alphanumeric() || ch == '_';
    script.match_indices(var).any(|(at, _)| {
        let before = script.get(..at).and_then(|s| s.chars().next_back());
        let after = script.get(at + var.len()..).and_then(|s| s.chars().next());
        !before.is_some_and(identifier) && !after.is_some_and(identifier)
    })
}

/// A variable of the container: `None` when it does not set it, `Some(None)` when its value
/// comes from elsewhere (a Secret, a ConfigMap, a field) or may (`env` does not name it, and
/// `envFrom` may hold it: Kubernetes sets both, `env` winning).
fn env_value<'c>(c: &'c Container, name: &str) -> Option<Option<&'c str>> {
    match c.env.iter().flatten().rev().find(|e| e.name == name) {
        Some(var) => Some(var.value.as_deref()),
        None if c.env_from.as_ref().is_some_and(|from| !from.is_empty()) => Some(None),
        None => None,
    }
}

/// A port number, if `value` is one.
fn port_number(value: &str) -> Option<i32> {
    value
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|p| (1..=65535).contains(p))
}

/// The port a URL's scheme implies, `http://` 80 and `https://` 443; `None` without a scheme
/// or for another one.
fn scheme_port(address: &str) -> Option<i32> {
    match address.trim().split_once("://")?.0 {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// The port of an address such as `0.0.0.0:11434`, `http://[::]:8080` or `0.0.0.0` (which
/// takes `default`); `None` when it is not an address, or names no port and there is no
/// `default`.
fn port_of_address(value: &str, default: Option<i32>) -> Option<i32> {
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
    port.map_or(default, port_number)
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
