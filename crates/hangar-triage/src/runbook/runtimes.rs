//! What each model server answers on, which of its metrics say it is in trouble, and what it
//! calls the model it serves.

use hangar_core::Runtime;
use hangar_core::image::ImageRef;

use super::facts::{Facts, Server};

/// How prose names a runtime.
pub(super) fn label(runtime: Runtime) -> &'static str {
    match runtime {
        Runtime::Vllm => "vLLM",
        Runtime::Tgi => "Text Generation Inference (TGI)",
        Runtime::Tei => "Text Embeddings Inference (TEI)",
        Runtime::Triton => "Triton Inference Server",
        Runtime::Ollama => "Ollama",
        Runtime::Sglang => "SGLang",
        Runtime::Llamacpp => "llama.cpp server",
        Runtime::Torchserve => "TorchServe",
        Runtime::Tfserving => "TensorFlow Serving",
        Runtime::Mlserver => "MLServer",
        Runtime::Nim => "NVIDIA NIM",
        Runtime::Rayserve => "Ray Serve",
        Runtime::Kserve => "a KServe model server",
        Runtime::Seldon => "Seldon",
        Runtime::Kaito => "KAITO",
        Runtime::Kubeai => "KubeAI",
        Runtime::Lmdeploy => "LMDeploy",
        Runtime::Localai => "LocalAI",
        Runtime::Other => "an unrecognised model server",
    }
}

/// One HTTP route worth calling, and what a healthy answer looks like.
pub(super) struct Check {
    pub method: &'static str,
    pub path: String,
    pub expect: String,
    /// A port other than the API's (TorchServe's management API on 8081).
    pub port: Option<i32>,
}

fn get(path: impl Into<String>, expect: impl Into<String>) -> Check {
    Check {
        method: "GET",
        path: path.into(),
        expect: expect.into(),
        port: None,
    }
}

/// The routes that tell whether this server is up and serving the right model.
pub(super) fn checks(facts: &Facts<'_>) -> Vec<Check> {
    let served = served_model(facts);
    let server = facts.server.as_ref();
    if let Some(prefix) = server.map(|s| s.openai_prefix).filter(|p| !p.is_empty()) {
        // KServe's own model server: its v1 protocol, and the OpenAI API under a prefix.
        let name = served.clone().unwrap_or_else(|| facts.name().to_owned());
        return vec![
            get(
                format!("/v1/models/{name}"),
                "`\"ready\": true` once the model is loaded",
            ),
            get(format!("{prefix}/v1/models"), lists(&served)),
        ];
    }
    match facts.endpoint.runtime {
        Runtime::Vllm => vec![
            get("/health", "200 with an empty body once the engine is up"),
            get("/v1/models", lists(&served)),
        ],
        Runtime::Tgi => vec![
            get("/health", "200 once the model is loaded and warmed up"),
            get(
                "/info",
                "`model_id`, `model_sha` and the token limits it actually runs with",
            ),
        ],
        Runtime::Tei => vec![
            get("/health", "200 once the model is loaded"),
            get(
                "/info",
                "`model_id`, `max_batch_tokens` and `max_client_batch_size`",
            ),
        ],
        Runtime::Triton => {
            let mut out = vec![get(
                "/v2/health/ready",
                "200 when the server and every loaded model are ready",
            )];
            let models = triton_models(server);
            for m in &models {
                out.push(get(
                    format!("/v2/models/{m}/ready"),
                    format!("200 when `{m}` is loaded"),
                ));
            }
            out.push(Check {
                method: "POST",
                path: "/v2/repository/index".into(),
                expect: "every model in the repository and its state (`READY`, `UNAVAILABLE` with a reason)".into(),
                port: None,
            });
            out
        }
        Runtime::Ollama => vec![
            get("/api/version", "the Ollama version"),
            get("/api/tags", "the models on disk"),
            get(
                "/api/ps",
                "the models in memory; `size_vram` below `size` means layers run on the CPU",
            ),
        ],
        Runtime::Sglang => vec![
            get("/health", "200 when the server process is up"),
            get(
                "/health_generate",
                "200 after a one-token generation: the check that proves the GPU path works",
            ),
            get("/get_model_info", "`model_path` and whether it generates"),
            get(
                "/get_server_info",
                "the settings it runs with, `mem_fraction_static` and `context_length` included",
            ),
        ],
        Runtime::Nim => vec![
            get(
                "/v1/health/ready",
                "200 when the model is loaded and serving",
            ),
            get("/v1/health/live", "200 while the process is alive"),
            get("/v1/models", lists(&served)),
        ],
        Runtime::Rayserve => vec![
            get("/-/healthz", "200 when the Serve proxy on this pod is up"),
            get(
                "/-/routes",
                "each route prefix and the application behind it",
            ),
        ],
        Runtime::Torchserve => {
            let mut out = vec![get("/ping", "`{\"status\": \"Healthy\"}`")];
            if let Some(model) = torchserve_model(server) {
                out.push(Check {
                    port: Some(8081),
                    ..get(
                        format!("/models/{model}"),
                        "the model's workers and their status (management API)",
                    )
                });
            }
            out
        }
        Runtime::Llamacpp => vec![
            get("/health", "`{\"status\":\"ok\"}` once the model is loaded"),
            get("/v1/models", lists(&served)),
        ],
        _ => probe_paths(server)
            .into_iter()
            .map(|p| get(p, "200 (the path the readiness probe uses)"))
            .collect(),
    }
}

fn lists(served: &Option<String>) -> String {
    match served {
        Some(m) => format!("lists `{m}`"),
        None => "lists the served model".into(),
    }
}

fn probe_paths(server: Option<&Server>) -> Vec<String> {
    let Some(server) = server else {
        return Vec::new();
    };
    let mut paths: Vec<String> = [
        &server.readiness_probe,
        &server.startup_probe,
        &server.liveness_probe,
    ]
    .into_iter()
    .flatten()
    .filter_map(|p| p.action.strip_prefix("GET ").map(str::to_owned))
    .collect();
    paths.dedup();
    paths
}

/// Triton models loaded explicitly (`--load-model`), in order.
pub(super) fn triton_models(server: Option<&Server>) -> Vec<String> {
    let Some(server) = server else {
        return Vec::new();
    };
    server
        .words()
        .iter()
        .filter_map(|w| w.strip_prefix("--load-model="))
        .map(str::to_owned)
        .chain(server.flag(&["--load-model"]))
        .fold(Vec::new(), |mut acc, m| {
            if !acc.contains(&m) {
                acc.push(m);
            }
            acc
        })
}

/// The model TorchServe registers at start (`--models resnet50=resnet50.mar`).
pub(super) fn torchserve_model(server: Option<&Server>) -> Option<String> {
    let value = server?.flag(&["--models"])?;
    let name = value.split_once('=').map_or(value.as_str(), |(n, _)| n);
    Some(name.trim_end_matches(".mar").to_owned())
}

/// Where the Prometheus metrics are.
pub(super) struct MetricsEndpoint {
    pub path: &'static str,
    /// A port other than the API's (TEI 9000, Triton 8002, TorchServe 8082).
    pub port: Option<i32>,
    /// What to watch: (metric, what it says).
    pub watch: Vec<(String, &'static str)>,
}

pub(super) fn metrics(facts: &Facts<'_>) -> Option<MetricsEndpoint> {
    let server = facts.server.as_ref();
    let port_flag = |flag: &str, default: i32| {
        server
            .and_then(|s| s.flag(&[flag]))
            .and_then(|p| p.parse().ok())
            .unwrap_or(default)
    };
    let watch = |items: &[(&str, &'static str)]| -> Vec<(String, &'static str)> {
        items.iter().map(|(m, w)| ((*m).to_owned(), *w)).collect()
    };
    let endpoint = match facts.endpoint.runtime {
        Runtime::Vllm => MetricsEndpoint {
            path: "/metrics",
            port: None,
            watch: vec![
                (
                    "vllm:num_requests_waiting".into(),
                    "requests queued; above 0 for minutes means the replicas are saturated",
                ),
                (
                    vllm_kv_metric(server),
                    "share of the KV cache in use; near 1 together with preemptions means the cache is too small for the traffic",
                ),
                (
                    "vllm:num_preemptions_total".into(),
                    "a rising rate means sequences are evicted and recomputed: latency suffers",
                ),
                (
                    "vllm:time_to_first_token_seconds".into(),
                    "the latency users feel; compare p95 with before the change",
                ),
            ],
        },
        Runtime::Tgi => MetricsEndpoint {
            path: "/metrics",
            port: None,
            watch: watch(&[
                ("tgi_queue_size", "requests waiting for a batch slot"),
                ("tgi_batch_current_size", "requests in the running batch"),
                (
                    "tgi_request_queue_duration",
                    "time spent queued; grows before latency does",
                ),
                ("tgi_request_duration", "end-to-end latency"),
            ]),
        },
        Runtime::Tei => MetricsEndpoint {
            path: "/metrics",
            port: Some(port_flag("--prometheus-port", 9000)),
            watch: watch(&[
                ("te_queue_size", "requests waiting for a batch"),
                ("te_request_duration", "end-to-end latency"),
            ]),
        },
        Runtime::Triton => MetricsEndpoint {
            path: "/metrics",
            port: Some(port_flag("--metrics-port", 8002)),
            watch: watch(&[
                (
                    "nv_inference_queue_duration_us",
                    "cumulative queue time; its rate over the rate of `nv_inference_request_success` is the mean wait",
                ),
                (
                    "nv_inference_pending_request_count",
                    "requests waiting right now",
                ),
                (
                    "nv_inference_request_failure",
                    "failed inferences, per model",
                ),
                ("nv_gpu_memory_used_bytes", "GPU memory in use, per GPU"),
            ]),
        },
        Runtime::Sglang if server.is_some_and(|s| s.has_flag("--enable-metrics")) => {
            MetricsEndpoint {
                path: "/metrics",
                port: None,
                watch: watch(&[
                    ("sglang:num_queue_reqs", "requests queued"),
                    ("sglang:token_usage", "share of the KV cache pool in use"),
                    (
                        "sglang:time_to_first_token_seconds",
                        "the latency users feel",
                    ),
                ]),
            }
        }
        Runtime::Nim => MetricsEndpoint {
            path: "/v1/metrics",
            port: None,
            watch: watch(&[
                ("num_requests_waiting", "requests queued"),
                ("gpu_cache_usage_perc", "share of the KV cache in use"),
                ("time_to_first_token_seconds", "the latency users feel"),
            ]),
        },
        Runtime::Torchserve => MetricsEndpoint {
            path: "/metrics",
            port: Some(8082),
            watch: watch(&[
                (
                    "ts_queue_latency_microseconds",
                    "time requests wait for a worker",
                ),
                ("ts_inference_requests_total", "requests served, by status"),
            ]),
        },
        Runtime::Llamacpp if server.is_some_and(|s| s.has_flag("--metrics")) => MetricsEndpoint {
            path: "/metrics",
            port: None,
            watch: watch(&[
                ("llamacpp:requests_deferred", "requests waiting for a slot"),
                (
                    "llamacpp:kv_cache_usage_ratio",
                    "share of the KV cache in use",
                ),
            ]),
        },
        _ => return None,
    };
    Some(endpoint)
}

/// vLLM renamed its KV-cache gauge in the 0.10 series; an unknown version gets both names.
fn vllm_kv_metric(server: Option<&Server>) -> String {
    match server.and_then(Server::image_version) {
        Some((0, minor)) if minor < 10 => "vllm:gpu_cache_usage_perc".into(),
        Some(_) => "vllm:kv_cache_usage_perc".into(),
        None => "vllm:kv_cache_usage_perc (vllm:gpu_cache_usage_perc before 0.10)".into(),
    }
}

/// The model name clients send in OpenAI requests, when it can be told.
pub(super) fn served_model(facts: &Facts<'_>) -> Option<String> {
    let server = facts.server.as_ref()?;
    if !server.openai_prefix.is_empty() {
        // KServe's model server answers to `--model_name`, the InferenceService's name by default.
        return Some(
            server
                .flag(&["--model_name"])
                .unwrap_or_else(|| facts.name().to_owned()),
        );
    }
    let named = server.flag(&["--served-model-name"]);
    match facts.endpoint.runtime {
        Runtime::Vllm | Runtime::Sglang | Runtime::Tei | Runtime::Llamacpp => named
            .or_else(|| server.flag(&["--model", "--model-path", "--model-id", "-m"]))
            .or_else(|| facts.endpoint.model.source.clone()),
        Runtime::Tgi => server
            .flag(&["--model-id"])
            .or_else(|| facts.endpoint.model.source.clone()),
        Runtime::Nim => {
            let image = ImageRef::parse(&server.image);
            image.path.strip_prefix("nim/").map(str::to_owned).or(named)
        }
        _ => named,
    }
}

/// Whether `hangar validate`, which speaks the OpenAI API, can talk to this server.
pub(super) fn speaks_openai(runtime: Runtime) -> bool {
    matches!(
        runtime,
        Runtime::Vllm
            | Runtime::Tgi
            | Runtime::Tei
            | Runtime::Ollama
            | Runtime::Sglang
            | Runtime::Nim
            | Runtime::Llamacpp
            | Runtime::Lmdeploy
            | Runtime::Localai
            | Runtime::Kubeai
    )
}
