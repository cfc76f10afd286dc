//! Next steps worded for the pod's runtime, with the values it actually runs with: its flags,
//! environment, limits and GPU requests.

use hangar_core::Runtime;

use crate::evidence::ContainerEvidence;

/// The value of a command-line flag written `--name value` or `--name=value`; `_` and `-` are the
/// same in flag names, as argparse and clap treat them.
pub(crate) fn flag<'a>(command_line: &'a str, names: &[&str]) -> Option<&'a str> {
    let wanted = |token: &str| {
        let token = token.replace('_', "-");
        names.iter().any(|n| token == n.replace('_', "-"))
    };
    let mut tokens = command_line.split_whitespace();
    while let Some(token) = tokens.next() {
        if let Some((name, value)) = token.split_once('=')
            && wanted(name)
        {
            return Some(value);
        }
        if wanted(token) {
            return tokens.next().filter(|v| !v.starts_with("--"));
        }
    }
    None
}

/// `--name (now X)` or `--name (not set; default D)`.
pub(crate) fn setting(c: &ContainerEvidence, names: &[&str], default: &str) -> String {
    let shown = names.first().copied().unwrap_or_default();
    match flag(&c.command_line, names) {
        Some(value) => format!("`{shown}` (now {value})"),
        None => format!("`{shown}` (not set; default {default})"),
    }
}

/// `NAME (now X)` or `NAME (not set; default D)` for an environment variable.
fn env_setting(c: &ContainerEvidence, name: &str, default: &str) -> String {
    match c.env.get(name) {
        Some(value) => format!("`{name}` (now {value})"),
        None => format!("`{name}` (not set; default {default})"),
    }
}

/// How many accelerators the container asks for, and of which resource.
pub(crate) fn gpus(c: &ContainerEvidence) -> Option<(String, u32)> {
    c.accelerators.iter().find_map(|a| {
        let (name, count) = a.split_once('=')?;
        Some((name.to_owned(), count.trim().parse().ok()?))
    })
}

fn gpu_request(c: &ContainerEvidence) -> String {
    match gpus(c) {
        Some((name, count)) => format!("{name}={count}"),
        None => "no accelerator request".into(),
    }
}

/// A Kubernetes quantity in bytes: `48Gi`, `512Mi`, `64G`, `1e9`, `1000`.
pub(crate) fn bytes(quantity: &str) -> Option<f64> {
    let q = quantity.trim();
    let units: [(&str, f64); 12] = [
        ("Ki", 1024.0),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("k", 1e3),
        ("K", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
    ];
    for (suffix, factor) in units {
        if let Some(number) = q.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    q.parse::<f64>().ok()
}

/// A limit half again as large as `quantity`, rounded up to whole GiB: what to try next.
pub(crate) fn larger(quantity: &str) -> Option<String> {
    let gib = bytes(quantity)? / 1024f64.powi(3);
    Some(format!("{}Gi", (gib * 1.5).ceil().max(1.0) as u64))
}

/// Steps when the GPU ran out of memory before the server ever served: the configuration asks
/// for more than the GPUs hold. `kv_cache` is set when the server itself reported that the KV
/// cache does not fit (rather than an allocation failing while loading or warming up).
pub(crate) fn gpu_oom_at_startup(
    runtime: Runtime,
    c: &ContainerEvidence,
    kv_cache: bool,
    fits: Option<u64>,
) -> Vec<String> {
    let gpus = gpu_request(c);
    match runtime {
        Runtime::Vllm => {
            let target = fits
                .map(|n| format!(" to at most {n}, the length vLLM says fits,"))
                .unwrap_or_default();
            let mut steps = vec![format!(
                "Lower {}{target} so the KV cache for one full-length sequence fits in what is left after the weights.",
                setting(c, &["--max-model-len"], "the model's max_position_embeddings")
            )];
            if kv_cache {
                steps.push(format!(
                    "Or raise {} towards 0.95 to give the KV cache more of the GPU, if nothing else runs on it.",
                    setting(c, &["--gpu-memory-utilization"], "0.9")
                ));
            } else {
                steps.push(format!(
                    "Lower {} (e.g. by 0.05) or add `--enforce-eager` so activations and CUDA graphs have room.",
                    setting(c, &["--gpu-memory-utilization"], "0.9")
                ));
            }
            steps.push(format!(
                "Shard the model over more GPUs: raise {} and the GPU request ({gpus}) together, or serve a quantized variant.",
                setting(c, &["--tensor-parallel-size", "-tp"], "1")
            ));
            steps
        }
        Runtime::Tgi => vec![
            format!(
                "Lower {} and {} so the warm-up batch fits.",
                setting(c, &["--max-batch-prefill-tokens"], "max-input-tokens + 50"),
                setting(c, &["--max-total-tokens"], "model dependent")
            ),
            format!(
                "Check {}: it caps the share of GPU memory TGI may use.",
                setting(c, &["--cuda-memory-fraction"], "1.0")
            ),
            format!(
                "Shard over more GPUs: raise {} with the GPU request ({gpus}), or use `--quantize`.",
                setting(c, &["--num-shard"], "1")
            ),
        ],
        Runtime::Sglang => vec![
            format!(
                "Adjust {}: raise it when the weights leave no room for the KV cache pool (\"Not enough memory\" at start-up), lower it when activations run out.",
                setting(c, &["--mem-fraction-static"], "chosen from the GPU size")
            ),
            format!(
                "Lower {} or {}.",
                setting(c, &["--context-length"], "the model's"),
                setting(c, &["--chunked-prefill-size"], "8192")
            ),
            format!(
                "Shard over more GPUs: raise {} with the GPU request ({gpus}).",
                setting(c, &["--tp", "--tp-size", "--tensor-parallel-size"], "1")
            ),
        ],
        Runtime::Ollama => vec![
            format!(
                "Lower the context: {} or `num_ctx` in the request or Modelfile; the KV cache grows with it.",
                env_setting(c, "OLLAMA_CONTEXT_LENGTH", "4096")
            ),
            format!(
                "Lower {} and {}: each parallel slot and loaded model takes its own memory.",
                env_setting(c, "OLLAMA_NUM_PARALLEL", "auto"),
                env_setting(c, "OLLAMA_MAX_LOADED_MODELS", "3 per GPU")
            ),
            format!(
                "Use a smaller quantization tag of the model, or more GPUs ({gpus}); `OLLAMA_FLASH_ATTENTION=1` with `OLLAMA_KV_CACHE_TYPE=q8_0` halves the KV cache."
            ),
        ],
        Runtime::Triton => vec![
            "Lower the instance_group count or max_batch_size in the model's config.pbtxt: every instance holds its own copy of the weights and buffers.".into(),
            "For TensorRT-LLM engines, lower `kv_cache_free_gpu_mem_fraction` in the tensorrt_llm model's config.pbtxt, or rebuild the engine with a smaller max_batch_size / max_num_tokens.".into(),
            format!("Or give the server more GPUs ({gpus}) and pin each model to its own: `instance_group [ {{ count: 1, kind: KIND_GPU, gpus: [ 0 ] }} ]` in one model's config.pbtxt, `gpus: [ 1 ]` in another's. By default Triton loads an instance of every model on every GPU it sees."),
        ],
        Runtime::Lmdeploy => vec![
            format!(
                "Lower {} or {}: the KV cache takes that share of the GPU memory left after the weights.",
                setting(c, &["--session-len"], "the model's"),
                setting(c, &["--cache-max-entry-count"], "0.8")
            ),
            format!(
                "Shard over more GPUs: raise {} with the GPU request ({gpus}), or serve an AWQ-quantized variant (`--model-format awq`).",
                setting(c, &["--tp"], "1")
            ),
        ],
        _ => vec![
            "Lower the context length, batch size or number of concurrent sequences the server reserves memory for.".into(),
            format!("Or shard the model over more GPUs ({gpus}) or serve a quantized variant."),
        ],
    }
}

/// Steps when the GPU ran out of memory while serving: the configuration once fit, so the
/// traffic outgrew what the GPUs hold.
pub(crate) fn gpu_oom_under_load(runtime: Runtime, c: &ContainerEvidence) -> Vec<String> {
    let mut steps = vec![
        "Add capacity for the traffic: more replicas behind the endpoint, or larger GPUs; and cap concurrency and prompt length at the gateway so one burst cannot take the server down.".to_owned(),
    ];
    steps.push(match runtime {
        Runtime::Vllm => format!(
            "Leave more headroom per replica: lower {}, {} or {}.",
            setting(c, &["--max-num-seqs"], "256"),
            setting(c, &["--max-num-batched-tokens"], "chosen by vLLM"),
            setting(c, &["--gpu-memory-utilization"], "0.9")
        ),
        Runtime::Tgi => format!(
            "Leave more headroom per replica: lower {} or {}.",
            setting(c, &["--max-batch-total-tokens"], "inferred at warm-up"),
            setting(c, &["--max-concurrent-requests"], "128")
        ),
        Runtime::Sglang => format!(
            "Leave more headroom per replica: lower {} or {}.",
            setting(c, &["--mem-fraction-static"], "chosen from the GPU size"),
            setting(c, &["--max-running-requests"], "chosen by SGLang")
        ),
        Runtime::Ollama => format!(
            "Leave more headroom: lower {} and the requests' `num_ctx`.",
            env_setting(c, "OLLAMA_NUM_PARALLEL", "auto")
        ),
        Runtime::Triton => "Leave more headroom: lower max_batch_size or the dynamic batcher's preferred sizes in config.pbtxt.".into(),
        Runtime::Lmdeploy => format!(
            "Leave more headroom per replica: lower {} (the share of free GPU memory the KV cache takes) or {}.",
            setting(c, &["--cache-max-entry-count"], "0.8"),
            setting(c, &["--max-batch-size"], "chosen by LMDeploy")
        ),
        _ => "Leave more headroom per replica: lower the maximum batch size or concurrent sequences.".into(),
    });
    steps
}

/// The `major.minor` of a vLLM image tag (`vllm/vllm-openai:v0.8.5` → `(0, 8)`), if it has one.
fn vllm_version(image: &str) -> Option<(u32, u32)> {
    let tag = image.rsplit_once(':')?.1;
    let mut parts = tag.trim_start_matches('v').split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Whether the container runs vLLM's V1 engine: the default from v0.8 unless `VLLM_USE_V1=0`,
/// the only engine from v0.11; a tag without a version (`latest`, a digest) is taken as current.
/// V1 has no CPU swap space, so `--swap-space` advice does not apply to it.
pub(crate) fn vllm_v1(c: &ContainerEvidence) -> bool {
    match vllm_version(&c.image) {
        Some(version) if version >= (0, 11) => true,
        Some(version) if version >= (0, 8) => {
            c.env.get("VLLM_USE_V1").map(String::as_str) != Some("0")
        }
        Some(_) => false,
        None => true,
    }
}

/// Steps when the container's memory limit was hit.
pub(crate) fn host_oom_limit(runtime: Runtime, c: &ContainerEvidence, limit: &str) -> Vec<String> {
    let mut steps = vec![format!(
        "Raise the memory limit of `{}` above {limit} (e.g. to {}), and the request with it: the model's weights pass through host memory while they load.",
        c.name,
        larger(limit).unwrap_or_else(|| "a larger value".into())
    )];
    match runtime {
        Runtime::Vllm if vllm_v1(c) => steps.push(format!(
            "Check {}: weights offloaded to the CPU are host memory and count against the limit.",
            setting(c, &["--cpu-offload-gb"], "0")
        )),
        Runtime::Vllm => steps.push(format!(
            "Check {}: the CPU swap space is pinned host memory per GPU and counts against the limit; `--cpu-offload-gb` does too.",
            setting(c, &["--swap-space"], "4 GiB per GPU")
        )),
        Runtime::Tgi => steps.push(
            "Prefer safetensors weights (TGI converts .bin files in host memory) and check `--max-concurrent-requests` for tokenizer memory.".into(),
        ),
        Runtime::Ollama => steps.push(format!(
            "Lower {} or use a smaller quantization: layers that do not fit on the GPU run from host memory.",
            env_setting(c, "OLLAMA_MAX_LOADED_MODELS", "3 per GPU")
        )),
        _ => {}
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_flags_in_both_spellings() {
        let line =
            "vllm serve m --max-model-len 8192 --gpu_memory_utilization=0.85 -tp 2 --enforce-eager";
        assert_eq!(flag(line, &["--max-model-len"]), Some("8192"));
        assert_eq!(flag(line, &["--gpu-memory-utilization"]), Some("0.85"));
        assert_eq!(flag(line, &["--tensor-parallel-size", "-tp"]), Some("2"));
        assert_eq!(
            flag(line, &["--enforce-eager"]),
            None,
            "a switch has no value"
        );
        assert_eq!(flag(line, &["--max-num-seqs"]), None);
    }

    #[test]
    fn reads_quantities_and_suggests_a_larger_limit() {
        assert_eq!(bytes("64Gi"), Some(64.0 * 1024f64.powi(3)));
        assert_eq!(bytes("500M"), Some(5e8));
        assert_eq!(bytes("lots"), None);
        assert_eq!(larger("64Gi").as_deref(), Some("96Gi"));
        assert_eq!(larger("512Mi").as_deref(), Some("1Gi"));
    }

    #[test]
    fn swap_space_advice_is_only_for_vllms_v0_engine() {
        let vllm = |image: &str, v1: Option<&str>| ContainerEvidence {
            name: "vllm".into(),
            image: image.into(),
            env: v1
                .map(|v| [("VLLM_USE_V1".to_owned(), v.to_owned())].into())
                .unwrap_or_default(),
            ..ContainerEvidence::default()
        };
        let swap = |c: &ContainerEvidence| {
            host_oom_limit(Runtime::Vllm, c, "32Gi")
                .iter()
                .any(|s| s.contains("--swap-space"))
        };
        assert!(swap(&vllm("vllm/vllm-openai:v0.6.3", None)));
        assert!(!swap(&vllm("vllm/vllm-openai:v0.8.5", None)));
        assert!(swap(&vllm("vllm/vllm-openai:v0.8.5", Some("0"))));
        assert!(!swap(&vllm("vllm/vllm-openai:v0.11.0", Some("0"))));
        assert!(!swap(&vllm("vllm/vllm-openai:latest", None)));
        assert!(
            host_oom_limit(
                Runtime::Vllm,
                &vllm("vllm/vllm-openai:v0.10.1", None),
                "32Gi"
            )[1]
            .contains("--cpu-offload-gb")
        );
    }

    #[test]
    fn triton_spreads_instances_over_gpus_with_instance_group() {
        let c = ContainerEvidence {
            accelerators: vec!["nvidia.com/gpu=2".into()],
            ..ContainerEvidence::default()
        };
        let steps = gpu_oom_at_startup(Runtime::Triton, &c, false, None);
        assert!(
            steps
                .iter()
                .any(|s| s.contains("kind: KIND_GPU, gpus: [ 0 ]"))
        );
        assert!(!steps.iter().any(|s| s.contains("model-control-mode")));
    }

    #[test]
    fn lmdeploy_steps_name_its_own_flags() {
        let c = ContainerEvidence {
            command_line: "lmdeploy serve api_server m --max-batch-size 128".into(),
            ..ContainerEvidence::default()
        };
        let steps = gpu_oom_under_load(Runtime::Lmdeploy, &c);
        assert!(
            steps[1].contains("`--max-batch-size` (now 128)")
                && steps[1].contains("--cache-max-entry-count")
        );
        assert!(
            gpu_oom_at_startup(Runtime::Lmdeploy, &c, false, None)[0].contains("--session-len")
        );
    }

    #[test]
    fn startup_steps_use_the_pods_own_values() {
        let c = ContainerEvidence {
            command_line: "--model m --max-model-len 131072 --gpu-memory-utilization 0.9".into(),
            accelerators: vec!["nvidia.com/gpu=1".into()],
            ..ContainerEvidence::default()
        };
        let steps = gpu_oom_at_startup(Runtime::Vllm, &c, true, Some(50944));
        assert!(steps[0].contains("now 131072") && steps[0].contains("at most 50944"));
        assert!(steps[1].contains("now 0.9"));
        assert!(steps[2].contains("nvidia.com/gpu=1"));
        let ollama = ContainerEvidence {
            env: [("OLLAMA_NUM_PARALLEL".to_owned(), "4".to_owned())].into(),
            ..ContainerEvidence::default()
        };
        assert!(
            gpu_oom_at_startup(Runtime::Ollama, &ollama, false, None)[1]
                .contains("`OLLAMA_NUM_PARALLEL` (now 4)")
        );
    }
}
