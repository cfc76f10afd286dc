//! Out of memory, host or GPU: how to tell which, what uses each kind of memory in this runtime,
//! and the settings to change, with this endpoint's current values and the next one to try.

use hangar_core::Runtime;

use super::facts::{
    Facts, Server, human, kube_objects, model_size, qos_class, quantity, server_template,
};
use super::health::ALL_LINES;
use super::text::{Markdown, code, sh_quote};

pub(super) fn section(doc: &mut Markdown, facts: &Facts<'_>) {
    let Some(server) = &facts.server else {
        return;
    };
    doc.heading(2, "Out of memory");
    which_one(doc, facts, server);
    host(doc, facts, server);
    if facts.gpus.is_some() {
        gpu(doc, facts, server);
    }
}

/// Log lines that mean the GPU ran out, per runtime, as an extended regex.
fn gpu_oom_pattern(runtime: Runtime) -> &'static str {
    match runtime {
        Runtime::Vllm | Runtime::Nim => {
            "CUDA out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED|No available memory for the cache blocks|stored in KV cache"
        }
        Runtime::Tgi => "CUDA out of memory|OutOfMemoryError|Not enough memory to handle",
        Runtime::Sglang => "CUDA out of memory|OutOfMemoryError|Not enough memory",
        Runtime::Tei => "CUDA_ERROR_OUT_OF_MEMORY|out of memory",
        Runtime::Ollama => "cudaMalloc failed|out of memory|requires more system memory",
        Runtime::Triton => "failed to allocate|out of memory|OutOfMemory",
        Runtime::Rayserve => "CUDA out of memory|OutOfMemoryError|running low on memory",
        _ => "CUDA out of memory|OutOfMemoryError|out of memory",
    }
}

fn which_one(doc: &mut Markdown, facts: &Facts<'_>, server: &Server) {
    let k = facts.kubectl();
    // A LeaderWorkerSet's workers and a Ray cluster's pods run other containers than the server.
    let container = match facts.kind() {
        "RayService" | "LeaderWorkerSet" => "*".to_owned(),
        _ => format!("?(@.name==\"{}\")", server.container),
    };
    let selector = facts
        .selector
        .as_ref()
        .map(|s| format!(" -l {s}"))
        .unwrap_or_default();
    let c = sh_quote(&server.container);
    let logs_target = match (facts.kind(), facts.server_pods_selector()) {
        (_, None) => format!("{} -c {c}", facts.serving_resource()),
        _ if facts.is_workload() => format!("{} -c {c}", facts.serving_resource()),
        ("RayService", Some(selector)) => format!("-l {selector} {ALL_LINES}"),
        (_, Some(selector)) => format!("-l {selector} -c {c} {ALL_LINES}"),
    };
    // The whole template is one quoted word: the container name inside it comes from the input.
    let jsonpath = format!(
        "{{range .items[*]}}{{.metadata.name}}{{\"\\t\"}}{{.status.containerStatuses[{container}].lastState.terminated.reason}}{{\"\\t\"}}{{.status.containerStatuses[{container}].lastState.terminated.exitCode}}{{\"\\n\"}}{{end}}"
    );
    doc.shell([
        format!("{k} get pods{selector} -o jsonpath={}", sh_quote(&jsonpath)),
        format!(
            "{k} logs {logs_target} --previous | grep -E '{}'",
            gpu_oom_pattern(facts.endpoint.runtime)
        ),
    ]);
    doc.bullets([
        "`OOMKilled` with exit code 137: the container went over its memory limit. Host memory, below.".to_owned(),
        "`Error` (exit code 1) and the previous log matches: the GPU ran out. GPU memory, further below.".to_owned(),
        "Exit code 137 without `OOMKilled`: a failing liveness probe or a preemption killed it, not memory (see Check health).".to_owned(),
    ]);
}

fn host(doc: &mut Markdown, facts: &Facts<'_>, server: &Server) {
    doc.heading(3, "Host memory (`OOMKilled`)");
    let mut text = Vec::new();
    let qos = server_template(facts).map(qos_class);
    match server.memory_limit {
        Some(limit) => {
            let request = server
                .memory_request
                .map(|r| {
                    if r == limit {
                        " and requests the same".to_owned()
                    } else {
                        format!(" but requests only {}, so it may land where no more than that is free", human(r))
                    }
                })
                .unwrap_or_default();
            text.push(format!(
                "The {} container may use {} (`resources.limits.memory`){request}.",
                code(&server.container),
                human(limit)
            ));
        }
        None if server.unusable_memory_limit.is_some() => text.push(format!(
            "The {} container's memory limit, {}, is not a size Hangar can use (not a quantity, or more than any node has): fix it before reading the rest of this section.",
            code(&server.container),
            code(server.unusable_memory_limit.as_deref().unwrap_or_default())
        )),
        None => text.push(format!(
            "The {} container has **no memory limit**: its cgroup never kills it, but it can fill the node. Under node memory pressure the kubelet evicts pods by QoS class{}, and the kernel may kill the server anyway.",
            code(&server.container),
            qos.map(|q| format!(" (this one is {q}{})", if q == "BestEffort" { ": first in line" } else { "" }))
                .unwrap_or_default()
        )),
    }
    for (path, size) in &server.memory_volumes {
        text.push(format!(
            "The memory-backed emptyDir at {}{} counts against the same limit.",
            code(path),
            size.map(|s| format!(" (up to {})", human(s)))
                .unwrap_or_default()
        ));
    }
    if let (Some(size), Some(limit)) = (
        model_size(facts.endpoint, Some(server)),
        server.memory_limit,
    ) {
        let weights = size.gb() * 1e9;
        if (limit as f64) < weights * 1.1 {
            text.push(format!(
                "The weights are {}, more than the limit leaves: loading streams every shard through host memory, so expect `OOMKilled` at start-up until the limit is raised above them.",
                size.text()
            ));
        } else if facts.endpoint.runtime != Runtime::Ollama {
            text.push(format!(
                "The weights are {}; they pass through host memory while loading, which the limit covers.",
                size.text()
            ));
        }
    }
    doc.para(text.join(" "));
    doc.para(format!(
        "What else holds host memory in {}:",
        super::runtimes::label(facts.endpoint.runtime)
    ));
    doc.bullets(host_consumers(facts, server));
    raise_limit(doc, facts, server);
}

/// What the runtime keeps in host memory, with this endpoint's settings.
fn host_consumers(facts: &Facts<'_>, server: &Server) -> Vec<String> {
    let setting = |flags: &[&str], env: &str| server.setting(flags, env);
    match facts.endpoint.runtime {
        Runtime::Vllm => {
            let mut out = vec![
                "the API server and engine-core processes, each with a tokenizer, a few GiB together".to_owned(),
            ];
            match setting(&["--cpu-offload-gb"], "") {
                Some(gb) => out.push(format!("{}: that many GiB of weights live in host memory", code(&format!("--cpu-offload-gb {gb}")))),
                None => out.push("`--cpu-offload-gb` (not set: no weights offloaded)".into()),
            }
            let v1 = server.image_version().is_none_or(|(major, minor)| major > 0 || minor >= 8);
            if v1 {
                out.push(format!(
                    "`--swap-space` is ignored by the V1 engine{}: preempted sequences are recomputed, not swapped",
                    server.image_ref().tag.map(|t| format!(" this image runs ({t})")).unwrap_or_default()
                ));
            } else {
                let swap = setting(&["--swap-space"], "").unwrap_or_else(|| "4 (default)".into());
                out.push(format!("`--swap-space` is {swap} GiB of pinned host memory per GPU for preempted sequences; 2 halves it"));
            }
            if let Ok(tp) = parallel_size(server, &["--tensor-parallel-size", "-tp"])
                && tp > 1
            {
                out.push(format!("{tp} tensor-parallel workers exchange data through `/dev/shm`"));
            }
            if server.has_flag("--limit-mm-per-prompt") {
                out.push(format!(
                    "images are decoded in host memory; `--limit-mm-per-prompt` ({}) caps them per request",
                    server.flag(&["--limit-mm-per-prompt"]).unwrap_or_default()
                ));
            }
            out
        }
        Runtime::Tgi => vec![
            format!(
                "the launcher starts one shard process per GPU (`--num-shard`, {}), each with its own Python heap",
                setting(&["--num-shard"], "NUM_SHARD").unwrap_or_else(|| format!("{} here", facts.gpus.as_ref().map_or(1, |g| g.per_pod)))
            ),
            format!(
                "the router holds queued requests: `--max-concurrent-requests` is {}",
                setting(&["--max-concurrent-requests"], "MAX_CONCURRENT_REQUESTS").unwrap_or_else(|| "128 (default)".into())
            ),
        ],
        Runtime::Tei => {
            let workers = setting(&["--tokenization-workers"], "TOKENIZATION_WORKERS");
            let node_cpus = node_cpus(facts);
            vec![
                match (workers, node_cpus) {
                    (Some(w), _) => format!("`--tokenization-workers` is {w}, each with a tokenizer"),
                    (None, Some(cpus)) => format!(
                        "tokenization workers: `--tokenization-workers` defaults to the node's CPU count ({cpus} on these nodes), not the pod's; set it to the CPU request{}",
                        server.cpu_request.as_deref().map(|c| format!(" ({c})")).unwrap_or_default()
                    ),
                    (None, None) => "tokenization workers: `--tokenization-workers` defaults to the node's CPU count, not the pod's; set it to the CPU request".into(),
                },
                format!(
                    "queued payloads: `--max-concurrent-requests` is {}, `--max-client-batch-size` {}",
                    setting(&["--max-concurrent-requests"], "MAX_CONCURRENT_REQUESTS").unwrap_or_else(|| "512 (default)".into()),
                    setting(&["--max-client-batch-size"], "MAX_CLIENT_BATCH_SIZE").unwrap_or_else(|| "32 (default)".into())
                ),
            ]
        }
        Runtime::Sglang => vec![
            "the tokenizer manager, scheduler and detokenizer run as separate processes".to_owned(),
            if server.has_flag("--enable-hierarchical-cache") {
                format!(
                    "`--enable-hierarchical-cache` keeps KV cache in host memory too (`--hicache-ratio` {})",
                    server.flag(&["--hicache-ratio"]).unwrap_or_else(|| "2 (default)".into())
                )
            } else {
                "no hierarchical cache (`--enable-hierarchical-cache` unset): KV cache stays on the GPU".into()
            },
        ],
        Runtime::Ollama => vec![
            "layers that do not fit in GPU memory run from host RAM: `/api/ps` shows `size_vram` below `size` when that happens".to_owned(),
            format!(
                "`OLLAMA_KEEP_ALIVE` is {}: loaded models stay resident that long after their last request",
                server.env("OLLAMA_KEEP_ALIVE").unwrap_or("5m (default)")
            ),
            format!(
                "`OLLAMA_MAX_LOADED_MODELS` is {}: several models can be resident at once",
                server.env("OLLAMA_MAX_LOADED_MODELS").unwrap_or("unset (3 per GPU)")
            ),
        ],
        Runtime::Triton => vec![
            format!(
                "the pinned-memory pool: `--pinned-memory-pool-byte-size` is {}",
                server.flag(&["--pinned-memory-pool-byte-size"]).unwrap_or_else(|| "256 MiB (default)".into())
            ),
            "each Python-backend model instance is a process with its own copy of the model".to_owned(),
        ],
        Runtime::Nim => vec![
            "the model profile is read from the NIM cache and passes through host memory while the engine loads".to_owned(),
            "the API server and its tokenizer".to_owned(),
        ],
        Runtime::Rayserve => vec![
            "Ray's memory monitor kills tasks before the kernel does once a node passes 95% memory (`RAY_memory_usage_threshold`); the log says `Task was killed due to the node running low on memory`".to_owned(),
            format!(
                "the object store takes 30% of the pod's memory by default{} unless `object-store-memory` is set in `rayStartParams`",
                server.memory_limit.map(|l| format!(" ({} here)", human(l / 10 * 3))).unwrap_or_default()
            ),
        ],
        Runtime::Torchserve => vec![
            "the Java frontend, its heap set by `-Xmx` in `vmargs` of config.properties".to_owned(),
            "one Python process per worker, each with its own copy of the model".to_owned(),
        ],
        _ => vec!["the model while it loads, the server process and its request queue".to_owned()],
    }
}

/// How to give the container more memory, and whether the nodes can take it.
fn raise_limit(doc: &mut Markdown, facts: &Facts<'_>, server: &Server) {
    if server.unusable_memory_limit.is_some() {
        return;
    }
    let Some(limit) = server.memory_limit else {
        let suggestion = model_size(facts.endpoint, Some(server))
            .map(|s| {
                let wanted = ((s.gb() * 1e9) as u64).saturating_add(8 << 30);
                format!(
                    " of about {} (the weights plus 8 GiB)",
                    quantity(round_up(wanted))
                )
            })
            .unwrap_or_else(|| " at what `kubectl top pod` shows at peak, plus a quarter".into());
        doc.para(format!(
            "Give it a limit{suggestion}, with the request equal to it, so the scheduler reserves the memory and an overrun is an `OOMKilled` you can see rather than a node in trouble."
        ));
        return;
    };
    let next = round_up(limit.saturating_add(limit / 4));
    let value = quantity(next);
    let command = match facts.kind() {
        _ if facts.is_workload() && facts.kind() != "Pod" => Some(format!(
            "{} set resources {} -c {} --limits=memory={value} --requests=memory={value}",
            facts.kubectl(),
            facts.resource(),
            sh_quote(&server.container)
        )),
        "InferenceService" => Some(format!(
            "{} patch {} --type merge -p '{{\"spec\":{{\"predictor\":{{\"model\":{{\"resources\":{{\"limits\":{{\"memory\":\"{value}\"}},\"requests\":{{\"memory\":\"{value}\"}}}}}}}}}}}}'",
            facts.kubectl(),
            kube_objects("isvc", &[facts.name()])
        )),
        "NIMService" => Some(format!(
            "{} patch {} --type merge -p '{{\"spec\":{{\"resources\":{{\"limits\":{{\"memory\":\"{value}\"}},\"requests\":{{\"memory\":\"{value}\"}}}}}}}}'",
            facts.kubectl(),
            kube_objects("nimservice", &[facts.name()])
        )),
        _ => None,
    };
    let mut text = format!(
        "Raise the limit from {} to {}, a quarter more",
        human(limit),
        human(next)
    );
    match command {
        Some(_) => text.push_str(": it rolls the pods."),
        None => text.push_str(&format!(
            ", in `{}.resources.limits.memory` of the manifest, and apply it: it rolls the pods.",
            server.path
        )),
    }
    if let Some(node) = facts.node_memory() {
        if next <= node {
            text.push_str(&format!(
                " The nodes it may run on have up to {} allocatable, so it fits.",
                human(node)
            ));
        } else {
            text.push_str(&format!(
                " That is more than the {} its nodes can allocate: cut what the server holds instead.",
                human(node)
            ));
        }
    }
    if facts.endpoint.origin.file.is_some() && command.is_some() {
        text.push_str(" Make the same change in the manifest, or the next apply reverts it.");
    }
    doc.para(text);
    if let Some(command) = command {
        doc.shell([command]);
    }
}

/// Rounds memory up to a tidy step: 16 GiB above 128 GiB, 4 GiB above 16 GiB, 2 GiB above
/// 4 GiB, else 512 MiB.
fn round_up(bytes: u64) -> u64 {
    const GIB: u64 = 1 << 30;
    let step = if bytes > 128 * GIB {
        16 * GIB
    } else if bytes > 16 * GIB {
        4 * GIB
    } else if bytes > 4 * GIB {
        2 * GIB
    } else {
        GIB / 2
    };
    bytes.div_ceil(step).saturating_mul(step)
}

fn node_cpus(facts: &Facts<'_>) -> Option<u64> {
    let eligible = facts.endpoint.placement.eligible_nodes.as_ref()?;
    eligible
        .iter()
        .filter_map(|n| {
            facts
                .snapshot
                .find::<k8s_openapi::api::core::v1::Node>("", n)
        })
        .filter_map(|n| {
            let cpu = &n.object.status.as_ref()?.capacity.as_ref()?.get("cpu")?.0;
            cpu.parse::<u64>().ok()
        })
        .max()
}

/// The largest parallel size taken at face value.
const MAX_PARALLEL: u32 = 1024;

/// A parallel size flag: 1 when unset, the value as written when it is not a size.
fn parallel_size(server: &Server, flags: &[&str]) -> Result<u32, String> {
    match server.flag(flags) {
        None => Ok(1),
        Some(value) => value
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PARALLEL).contains(n))
            .ok_or(value),
    }
}

/// The tensor-parallel size to try after `tp`: the next power of two, since attention heads
/// divide by those and rarely by 3 or 6.
fn next_parallel(tp: u32) -> Option<u32> {
    let power = tp.checked_next_power_of_two()?;
    if power > tp {
        Some(power)
    } else {
        power.checked_mul(2)
    }
}

/// How a runtime words its tensor-parallel knob.
struct Parallelism<'a> {
    flag: &'a str,
    /// `splits weights and KV cache`, `shards the model`.
    verb: &'a str,
    /// What to do once one node's GPUs are all in use.
    beyond: &'a str,
}

/// The tensor-parallel knob: the next power of two, the GPUs it needs (times the other parallel
/// sizes, `others`), and whether the pod must ask for more; only when what it already has (a
/// LeaderWorkerSet group's, for one) falls short.
fn tensor_parallel(
    facts: &Facts<'_>,
    how: &Parallelism<'_>,
    tp: Result<u32, String>,
    others: u32,
) -> Knob {
    let tp = match tp {
        Ok(tp) => tp,
        Err(raw) => {
            return knob(
                how.flag,
                format!("{raw}: not a size Hangar can use"),
                "a power of two the GPUs allow",
                "fix the value first: the server refuses to start with it",
            );
        }
    };
    let per_node = facts.gpus_per_node().unwrap_or(8);
    let Some(next) = next_parallel(tp).filter(|n| u64::from(*n) <= per_node) else {
        return knob(
            how.flag,
            tp.to_string(),
            "keep",
            &format!("already spans a whole {per_node}-GPU node; {}", how.beyond),
        );
    };
    let resource = code(
        facts
            .gpus
            .as_ref()
            .map_or("nvidia.com/gpu", |g| g.resource.as_str()),
    );
    let needed = u64::from(next) * u64::from(others);
    let have = facts.gpus_available().unwrap_or(0);
    let unit = if facts.group_size.is_some() {
        "group"
    } else {
        "pod"
    };
    let over = if others > 1 {
        format!(
            "{} over {next} GPUs ({needed} with the other parallel sizes)",
            how.verb
        )
    } else {
        format!("{} over {next} GPUs", how.verb)
    };
    let tradeoff = if needed <= have {
        format!("{over}; the {unit} already has {have} {resource}, so it needs no more")
    } else if let Some(pods) = facts.group_size.filter(|p| *p > 1) {
        format!(
            "{over}: raise {resource} to {} per pod with it, {needed} per group where it has {have}",
            needed.div_ceil(u64::from(pods))
        )
    } else {
        format!(
            "{over}: raise {resource} from {have} to {needed} per pod with it, {} more GPU{} per replica",
            needed - have,
            if needed - have == 1 { "" } else { "s" }
        )
    };
    knob(how.flag, tp.to_string(), next.to_string(), &tradeoff)
}

/// One setting to change: its current value, the next to try and what it costs.
struct Knob {
    setting: String,
    now: String,
    next: String,
    tradeoff: String,
}

/// `setting` is a flag or variable name, set in code; a phrase is taken as Markdown.
fn knob(setting: &str, now: impl Into<String>, next: impl Into<String>, tradeoff: &str) -> Knob {
    Knob {
        setting: if setting.contains(' ') {
            setting.to_owned()
        } else {
            code(setting)
        },
        now: now.into(),
        next: next.into(),
        tradeoff: tradeoff.to_owned(),
    }
}

fn knob_table(doc: &mut Markdown, knobs: Vec<Knob>) {
    let rows: Vec<Vec<String>> = knobs
        .into_iter()
        .map(|k| vec![k.setting, k.now, k.next, k.tradeoff])
        .collect();
    doc.table(&["Setting", "Now", "Try", "Trade-off"], &rows);
}

/// `0.90` → `0.85`, never below 0.5.
fn lower_fraction(value: f64) -> String {
    format!("{:.2}", (value - 0.05).max(0.5))
}

fn raise_fraction(value: f64) -> String {
    format!("{:.2}", (value + 0.05).min(0.95))
}

/// `16384` → `8192`; a value that is not a count is named for what to do with it.
fn halve(value: &str) -> String {
    value.parse::<u64>().map_or_else(
        |_| format!("half of {value}"),
        |n| (n / 2).max(1).to_string(),
    )
}

fn gpu(doc: &mut Markdown, facts: &Facts<'_>, server: &Server) {
    doc.heading(3, "GPU memory (CUDA out of memory)");
    match facts.endpoint.runtime {
        Runtime::Vllm => vllm(doc, facts, server),
        Runtime::Tgi => tgi(doc, facts, server),
        Runtime::Sglang => sglang(doc, facts, server),
        Runtime::Tei => tei(doc, server),
        Runtime::Triton => triton(doc, facts),
        Runtime::Ollama => ollama(doc, server),
        Runtime::Nim => nim(doc, facts, server),
        Runtime::Rayserve => rayserve(doc, facts),
        Runtime::Torchserve => torchserve(doc, facts),
        Runtime::Llamacpp => llamacpp(doc, server),
        runtime => doc.para(format!(
            "Hangar knows no memory settings for {}: GPU memory is the model plus the batch it runs, so smaller batches or a smaller model are the levers.",
            super::runtimes::label(runtime)
        )),
    }
    if !matches!(
        facts.endpoint.runtime,
        Runtime::Triton | Runtime::Torchserve
    ) {
        doc.para(format!(
            "Change one setting at a time, {}, then run the golden set above.",
            where_settings_live(facts, server)
        ));
    }
}

/// Where this endpoint's server settings are written.
fn where_settings_live(facts: &Facts<'_>, server: &Server) -> String {
    match facts.kind() {
        "InferenceService" => "in `spec.predictor.model.args` of the InferenceService: they are appended to the ServingRuntime's, the last value of a flag wins, and the runtime other services share stays untouched".into(),
        "NIMService" => "in `spec.env` of the NIMService".into(),
        "RayService" => "in `serveConfigV2` of the RayService".into(),
        _ if facts.endpoint.runtime == Runtime::Ollama => format!(
            "in the environment of container {} (`{}.env`)",
            code(&server.container),
            server.path
        ),
        _ => format!(
            "in the args of container {} (`{}.args`)",
            code(&server.container),
            server.path
        ),
    }
}

fn vllm(doc: &mut Markdown, facts: &Facts<'_>, server: &Server) {
    let util_text = server.flag(&["--gpu-memory-utilization"]);
    let util: f64 = util_text
        .as_deref()
        .and_then(|u| u.parse().ok())
        .unwrap_or(0.9);
    let tp = parallel_size(server, &["--tensor-parallel-size", "-tp"]);
    let pp = parallel_size(server, &["--pipeline-parallel-size", "-pp"]);
    let dp = parallel_size(server, &["--data-parallel-size", "-dp"]);
    // GPUs one copy of the weights is split over, when the sizes are usable.
    let split_over = match (&tp, &pp) {
        (Ok(tp), Ok(pp)) => Some(tp * pp),
        _ => None,
    };
    let gpus = facts.gpus.as_ref();
    let default = if util_text.is_none() {
        ", the default"
    } else {
        ""
    };
    let mut intro = format!(
        "vLLM claims {util:.2} of each GPU's memory at start-up (`--gpu-memory-utilization`{default})"
    );
    if let Some(mem) = gpus.and_then(|g| g.memory_gib) {
        intro.push_str(&format!(": {:.0} of {mem} GiB", util * f64::from(mem)));
        if let (Some(size), Some(split_over)) =
            (model_size(facts.endpoint, Some(server)), split_over)
        {
            let weights_gib = size.gb() * 1e9 / f64::from(1u32 << 30) / f64::from(split_over);
            let left = util * f64::from(mem) - weights_gib;
            let split = if split_over > 1 {
                format!(", split over {split_over} GPUs")
            } else {
                String::new()
            };
            if left > 0.0 {
                intro.push_str(&format!(
                    ". The weights ({}{split}) take about {weights_gib:.0} GiB of it per GPU; the other ≈{left:.0} GiB is KV cache",
                    size.short()
                ));
            } else {
                intro.push_str(&format!(
                    ". The weights alone ({}{split}) need about {weights_gib:.0} GiB per GPU: this cannot start as configured",
                    size.short()
                ));
            }
        }
    }
    intro.push_str(". So a GPU OOM is a setting that no longer fits far more often than load.");
    doc.para(intro);
    doc.bullets([
        "At start-up, `No available memory for the cache blocks` or `... larger than the maximum number of tokens that can be stored in KV cache`: the KV cache cannot hold one request of `--max-model-len` tokens.".to_owned(),
        "Under load, `torch.OutOfMemoryError: CUDA out of memory`: a peak outside the KV cache (a long prefill, sampling over a large batch, an image encoder, CUDA graphs).".to_owned(),
    ]);
    let mut knobs = Vec::new();
    match server.flag(&["--max-model-len"]) {
        Some(len) => knobs.push(knob(
            "--max-model-len",
            len.clone(),
            halve(&len),
            &format!("frees KV cache for start-up; requests longer than {} tokens (prompt plus output) are refused with a 400", halve(&len)),
        )),
        None => knobs.push(knob(
            "--max-model-len",
            "unset: the model's full context",
            "half the `max_model_len` that `/v1/models` shows",
            "the KV cache must hold one full-length request; longer requests are refused with a 400",
        )),
    }
    knobs.push(knob(
        "--gpu-memory-utilization",
        if util_text.is_some() { format!("{util:.2}") } else { format!("{util:.2} (default)") },
        if util >= 0.95 {
            lower_fraction(util)
        } else {
            format!("{} for OOM under load; {} when the KV cache does not fit at start-up", lower_fraction(util), raise_fraction(util))
        },
        "lower leaves headroom for peaks but shrinks the KV cache (fewer requests at once); higher only when nothing else uses the GPU",
    ));
    let seqs = server.flag(&["--max-num-seqs"]);
    let default_seqs = vllm_default_max_num_seqs(
        gpus.map(|g| g.products.as_slice()).unwrap_or_default(),
        gpus.and_then(|g| g.memory_gib),
    );
    let (now, base) = match (&seqs, default_seqs) {
        (Some(s), _) => (s.clone(), s.clone()),
        (None, Some((n, why))) => (format!("{n} (default {why})"), n.to_string()),
        (None, None) => (
            "unset: 256, or 1024 on H100-class GPUs".into(),
            "256".into(),
        ),
    };
    knobs.push(knob(
        "--max-num-seqs",
        now,
        halve(&base),
        "fewer sequences per step: smaller peaks, more queueing (watch `vllm:num_requests_waiting`)",
    ));
    match server.flag(&["--kv-cache-dtype"]) {
        Some(d) if d.starts_with("fp8") => {}
        current => knobs.push(knob(
            "--kv-cache-dtype",
            current.unwrap_or_else(|| "auto (the model's dtype)".into()),
            "fp8",
            "halves the KV cache's memory; check the golden set for a small accuracy cost",
        )),
    }
    let others = pp
        .as_ref()
        .ok()
        .zip(dp.as_ref().ok())
        .map_or(1, |(p, d)| p * d);
    knobs.push(tensor_parallel(
        facts,
        &Parallelism {
            flag: "--tensor-parallel-size",
            verb: "splits weights and KV cache",
            beyond: "more memory means more pipeline stages (`--pipeline-parallel-size`, more nodes) or a quantized model",
        },
        tp,
        others,
    ));
    knob_table(doc, knobs);
}

/// vLLM's server default for `--max-num-seqs`: 1024 on GPUs of 70 GiB or more other than the
/// A100, else 256.
fn vllm_default_max_num_seqs(
    products: &[String],
    memory_gib: Option<u32>,
) -> Option<(u32, String)> {
    let [product] = products else {
        return None;
    };
    let memory = memory_gib?;
    if memory >= 70 && !product.to_ascii_lowercase().contains("a100") {
        Some((1024, format!("on {product}")))
    } else {
        Some((256, format!("on {product}")))
    }
}

fn tgi(doc: &mut Markdown, facts: &Facts<'_>, server: &Server) {
    doc.para("TGI measures free GPU memory at warm-up and sizes its batches to it (`--max-batch-total-tokens`). A warm-up failure is a limit that does not fit; an OOM later means a peak the warm-up did not see, or something else on the GPU.");
    doc.bullets([
        "At warm-up, `Not enough memory to handle N prefill tokens. You need to decrease --max-batch-prefill-tokens`.".to_owned(),
        "Under load, `torch.cuda.OutOfMemoryError: CUDA out of memory` in a shard's log.".to_owned(),
    ]);
    let input = server.setting(
        &["--max-input-tokens", "--max-input-length"],
        "MAX_INPUT_TOKENS",
    );
    let total = server.setting(&["--max-total-tokens"], "MAX_TOTAL_TOKENS");
    let mut knobs = Vec::new();
    match (&input, &total) {
        (Some(i), Some(t)) => {
            let (i_n, t_n) = (i.parse::<u64>().unwrap_or(0), t.parse::<u64>().unwrap_or(0));
            let output = t_n.saturating_sub(i_n);
            let next_input = i_n / 2;
            knobs.push(knob(
                "`--max-input-tokens` / `--max-total-tokens`",
                format!("{i} / {t}"),
                format!("{next_input} / {}", next_input.saturating_add(output)),
                "halves the longest prompt and keeps the output budget; longer prompts are refused with a 422",
            ));
        }
        _ => knobs.push(knob(
            "`--max-input-tokens` / `--max-total-tokens`",
            format!(
                "{} / {}",
                input.clone().unwrap_or_else(|| "unset".into()),
                total.clone().unwrap_or_else(|| "unset".into())
            ),
            "set both, to what your longest request needs",
            "unset, TGI takes them from the model's context, which sizes every batch for the longest request",
        )),
    }
    let prefill = server.setting(&["--max-batch-prefill-tokens"], "MAX_BATCH_PREFILL_TOKENS");
    let prefill_now = prefill.clone().unwrap_or_else(|| {
        match input.as_deref().and_then(|i| i.parse::<u64>().ok()) {
            Some(i) => format!("{} (default: max input + 50)", i.saturating_add(50)),
            None => "unset".into(),
        }
    });
    let prefill_next = match input.as_deref().and_then(|i| i.parse::<u64>().ok()) {
        Some(i) => format!(
            "{} (it must stay at least the max input tokens)",
            i / 2 + 50
        ),
        None => prefill
            .as_deref()
            .map(halve)
            .unwrap_or_else(|| "4096".into()),
    };
    knobs.push(knob(
        "--max-batch-prefill-tokens",
        prefill_now,
        prefill_next,
        "smaller prefill batches: lower peaks, slower first tokens under load",
    ));
    let fraction = server.setting(&["--cuda-memory-fraction"], "CUDA_MEMORY_FRACTION");
    let current: f64 = fraction
        .as_deref()
        .and_then(|f| f.parse().ok())
        .unwrap_or(1.0);
    knobs.push(knob(
        "--cuda-memory-fraction",
        fraction.unwrap_or_else(|| "1.0 (default)".into()),
        lower_fraction(current),
        "leaves the rest of the GPU for peaks and other processes; batches shrink with it",
    ));
    // TGI shards over every GPU it sees unless told otherwise.
    let shards = match server.setting(&["--num-shard"], "NUM_SHARD") {
        Some(value) => value
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PARALLEL).contains(n))
            .ok_or(value),
        None => Ok(facts
            .gpus
            .as_ref()
            .map_or(1, |g| g.per_pod.clamp(1, MAX_PARALLEL))),
    };
    knobs.push(tensor_parallel(
        facts,
        &Parallelism {
            flag: "--num-shard",
            verb: "shards the model",
            beyond: "more memory means a quantized model (`--quantize`)",
        },
        shards,
        1,
    ));
    knob_table(doc, knobs);
}

fn sglang(doc: &mut Markdown, facts: &Facts<'_>, server: &Server) {
    doc.para("SGLang gives a fixed share of GPU memory to weights and KV cache at start-up (`--mem-fraction-static`); activations and CUDA graphs live in the rest.");
    doc.bullets([
        "At start-up, `Not enough memory. Please try to increase --mem-fraction-static`: the KV cache pool is too small for the settings.".to_owned(),
        "Under load, `CUDA out of memory`: the share left for activations is too small. Lower the fraction.".to_owned(),
    ]);
    let mut knobs = Vec::new();
    match server.flag(&["--mem-fraction-static"]).and_then(|f| f.parse::<f64>().ok()) {
        Some(f) => knobs.push(knob(
            "--mem-fraction-static",
            format!("{f:.2}"),
            format!("{} for OOM under load; {} when the pool is too small at start-up", lower_fraction(f), raise_fraction(f)),
            "lower leaves room for activations but shrinks the KV cache pool (fewer requests at once)",
        )),
        None => knobs.push(knob(
            "--mem-fraction-static",
            "unset: SGLang picks it from GPU memory and TP size; `/get_server_info` shows it",
            "0.05 below the value it shows",
            "lower leaves room for activations but shrinks the KV cache pool (fewer requests at once)",
        )),
    }
    let chunk = server.flag(&["--chunked-prefill-size"]);
    knobs.push(knob(
        "--chunked-prefill-size",
        chunk
            .clone()
            .unwrap_or_else(|| "unset (SGLang's default for the GPU)".into()),
        chunk.as_deref().map(halve).unwrap_or_else(|| {
            "half the `chunked_prefill_size` that `/get_server_info` shows".into()
        }),
        "smaller prefill chunks: lower peaks, slower long prompts",
    ));
    let context = server.flag(&["--context-length"]);
    knobs.push(knob(
        "--context-length",
        context
            .clone()
            .unwrap_or_else(|| "unset: the model's full context".into()),
        context
            .as_deref()
            .map(halve)
            .unwrap_or_else(|| "half the `context_length` that `/get_server_info` shows".into()),
        "bounds the KV cache one request can claim; longer requests are refused",
    ));
    let tp = parallel_size(server, &["--tp", "--tp-size", "--tensor-parallel-size"]);
    let pp = parallel_size(server, &["--pp", "--pp-size", "--pipeline-parallel-size"]);
    let dp = parallel_size(server, &["--dp", "--dp-size", "--data-parallel-size"]);
    knobs.push(tensor_parallel(
        facts,
        &Parallelism {
            flag: "--tp",
            verb: "splits the model",
            beyond: "more memory means more pipeline stages (`--pp-size`, more nodes) or a quantized model",
        },
        tp,
        pp.ok().zip(dp.ok()).map_or(1, |(p, d)| p * d),
    ));
    knob_table(doc, knobs);
}

fn tei(doc: &mut Markdown, server: &Server) {
    doc.para("TEI has no memory fraction: its GPU memory is the model plus the largest batch, bounded by `--max-batch-tokens`. Under load the error reads `CUDA_ERROR_OUT_OF_MEMORY`.");
    let batch = server.setting(&["--max-batch-tokens"], "MAX_BATCH_TOKENS");
    let client = server.setting(&["--max-client-batch-size"], "MAX_CLIENT_BATCH_SIZE");
    knob_table(
        doc,
        vec![
            knob(
                "--max-batch-tokens",
                batch.clone().unwrap_or_else(|| "16384 (default)".into()),
                halve(batch.as_deref().unwrap_or("16384")),
                "smaller batches: lower peaks, less throughput",
            ),
            knob(
                "--max-client-batch-size",
                client.clone().unwrap_or_else(|| "32 (default)".into()),
                halve(client.as_deref().unwrap_or("32")),
                "clients that send more inputs per request get a 413 and must split them",
            ),
        ],
    );
}

fn triton(doc: &mut Markdown, facts: &Facts<'_>) {
    let model = super::runtimes::triton_models(facts.server.as_ref())
        .into_iter()
        .next();
    doc.para("Triton's GPU memory is the sum of its model instances: each `instance_group` entry of kind `KIND_GPU` holds its own copy of the model, plus the batch it runs (`max_batch_size`, dynamic batching) and the CUDA memory pool (`--cuda-memory-pool-byte-size`). The settings live in each model's `config.pbtxt` in the repository, not in the Deployment; read the live ones:");
    let base = facts
        .route
        .as_ref()
        .map_or_else(|| "http://127.0.0.1:8000".into(), |r| r.base_url());
    // `$MODEL` stays outside quotes so the shell expands it.
    let model_name = model
        .as_deref()
        .map_or_else(|| "\"$MODEL\"".into(), sh_quote);
    let mut lines = Vec::new();
    if model.is_none() {
        lines.push(format!(
            "curl -fsS -X POST {base}/v2/repository/index   # pick MODEL from these names"
        ));
    }
    lines.push(format!(
        "curl -fsS {base}/v2/models/{model_name}/config | jq '{{instance_group, max_batch_size, dynamic_batching}}'"
    ));
    doc.shell(lines);
    knob_table(
        doc,
        vec![
            knob(
                "instance_group[].count",
                "from the config above",
                "one fewer",
                "each instance is a copy of the model; fewer run fewer requests in parallel",
            ),
            knob(
                "max_batch_size",
                "from the config above",
                "half",
                "smaller batches: lower peaks, less throughput; clients sending bigger batches are refused",
            ),
        ],
    );
    let explicit = facts
        .server
        .as_ref()
        .and_then(|s| s.flag(&["--model-control-mode"]))
        .is_some_and(|m| m == "explicit");
    doc.para(if explicit {
        format!(
            "Edit `config.pbtxt` in the model repository, then reload the model (model control is `explicit`): {}. Then run the known request above.",
            code(&format!("curl -fsS -X POST {base}/v2/repository/models/{model_name}/load"))
        )
    } else {
        "Edit `config.pbtxt` in the model repository and restart the pods to load it. Then run the known request above.".into()
    });
}

fn ollama(doc: &mut Markdown, server: &Server) {
    doc.para("Ollama rarely dies of GPU OOM: a model that does not fit is split, and the layers that miss the GPU run on the CPU. The symptom is latency, and `/api/ps` showing `size_vram` below `size`. A hard failure reads `cudaMalloc failed: out of memory`.");
    let env = |name: &str, default: &str| {
        server
            .env(name)
            .map_or_else(|| default.to_owned(), str::to_owned)
    };
    let keep = server.env("OLLAMA_KEEP_ALIVE").unwrap_or("5m");
    knob_table(
        doc,
        vec![
            knob(
                "OLLAMA_MAX_LOADED_MODELS",
                env("OLLAMA_MAX_LOADED_MODELS", "unset (3 per GPU)"),
                "1",
                "one model in GPU memory at a time; switching models reloads",
            ),
            knob(
                "OLLAMA_NUM_PARALLEL",
                env("OLLAMA_NUM_PARALLEL", "unset (1 or more, by memory)"),
                "1",
                "each parallel slot reserves a full context of KV cache; requests queue instead",
            ),
            knob(
                "`OLLAMA_CONTEXT_LENGTH` (or `num_ctx` per request)",
                env(
                    "OLLAMA_CONTEXT_LENGTH",
                    "unset: Ollama sizes it to GPU memory",
                ),
                server.env("OLLAMA_CONTEXT_LENGTH").map_or_else(
                    || "half the `context_length` that `/api/ps` shows".into(),
                    halve,
                ),
                "the KV cache grows with it; a request's `options.num_ctx` still overrides it",
            ),
            knob(
                "`OLLAMA_KV_CACHE_TYPE` with `OLLAMA_FLASH_ATTENTION=1`",
                env("OLLAMA_KV_CACHE_TYPE", "f16 (default)"),
                "q8_0",
                "halves the KV cache; a small quality cost",
            ),
            knob(
                "OLLAMA_KEEP_ALIVE",
                keep.to_owned(),
                shorter_keep_alive(keep),
                "idle models leave memory sooner; the next request pays the load",
            ),
        ],
    );
}

/// A keep-alive shorter than `current`: the default 5 minutes, then 1, then unloading after each
/// request. A negative value keeps models loaded for ever.
fn shorter_keep_alive(current: &str) -> String {
    match keep_alive_seconds(current) {
        None => "5m (the default)".into(),
        Some(s) if s < 0 => "5m (the default; a negative value never unloads)".into(),
        Some(s) if s > 300 => "5m".into(),
        Some(s) if s > 60 => "1m".into(),
        Some(s) if s > 0 => "0 (unload after each request)".into(),
        Some(_) => "keep: it already unloads after each request".into(),
    }
}

/// Seconds in an Ollama keep-alive: a bare number of seconds or a Go duration (`24h`, `1h30m`).
fn keep_alive_seconds(value: &str) -> Option<i64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<i64>() {
        return Some(seconds);
    }
    let (sign, rest) = match value.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, value),
    };
    let mut total: i64 = 0;
    let mut number = String::new();
    for c in rest.chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => return None,
        };
        let amount: f64 = number.parse().ok()?;
        total = total.saturating_add((amount * unit) as i64);
        number.clear();
    }
    number.is_empty().then_some(sign * total)
}

fn nim(doc: &mut Markdown, facts: &Facts<'_>, server: &Server) {
    doc.para(format!(
        "A NIM picks a model profile for the GPUs it finds (engine, precision, tensor parallelism) and sizes the KV cache to the rest. The profiles this image offers: {}.",
        code(&format!(
            "{} exec {} -- list-model-profiles",
            facts.kubectl(),
            sh_quote(&format!("deploy/{}", facts.name()))
        ))
    ));
    let len = server.env("NIM_MAX_MODEL_LEN");
    knob_table(
        doc,
        vec![
            knob(
                "NIM_MAX_MODEL_LEN",
                len.map_or_else(|| "unset: the profile's full context".into(), str::to_owned),
                len.map_or_else(
                    || "half the `max_model_len` that `/v1/models` shows".into(),
                    halve,
                ),
                "the KV cache must hold one full-length request; longer requests are refused",
            ),
            knob(
                "NIM_MODEL_PROFILE",
                server
                    .env("NIM_MODEL_PROFILE")
                    .unwrap_or("unset: chosen at start-up")
                    .to_owned(),
                "a profile with more GPUs (tp2) or fp8 from the list above",
                "more GPUs cost more; fp8 changes the numbers (check the golden set)",
            ),
        ],
    );
}

fn rayserve(doc: &mut Markdown, facts: &Facts<'_>) {
    let setting = |key: &str| facts.serve_config(key).into_iter().next();
    doc.para("GPU memory belongs to the Serve replicas: each asks `ray_actor_options.num_gpus` and loads its own copy of the model. A replica that runs out dies with `CUDA out of memory` in the worker's log and Serve starts another, so the symptom is restarts and errors, not a pod status.");
    let ongoing = setting("max_ongoing_requests");
    let mut knobs = vec![knob(
        "max_ongoing_requests",
        ongoing
            .clone()
            .unwrap_or_else(|| "unset (5, Serve's default)".into()),
        ongoing.as_deref().map(halve).unwrap_or_else(|| "2".into()),
        "fewer requests in a replica at once: lower peaks, more queueing in the proxy",
    )];
    if let Some(input) = setting("MAX_INPUT_TOKENS") {
        knobs.push(knob(
            "`MAX_INPUT_TOKENS` (the application's `env_vars`)",
            input.clone(),
            halve(&input),
            "the application's own cap on prompt length; longer inputs are refused or truncated by its code",
        ));
    }
    if let Some(gpus) = setting("num_gpus") {
        knobs.push(knob(
            "ray_actor_options.num_gpus",
            gpus,
            "keep, unless the model shards",
            "more than 1 only helps when the application splits the model across GPUs",
        ));
    }
    knob_table(doc, knobs);
}

fn torchserve(doc: &mut Markdown, facts: &Facts<'_>) {
    let model = super::runtimes::torchserve_model(facts.server.as_ref())
        .as_deref()
        .map_or_else(|| "\"$MODEL\"".into(), sh_quote);
    doc.para("Each TorchServe worker loads its own copy of the model on the GPU, and runs batches of the size set at registration. Fewer workers is the first lever, and it needs no restart:");
    doc.shell([
        format!(
            "{} port-forward {} 8081:8081 &",
            facts.kubectl(),
            facts.serving_resource()
        ),
        format!("curl -fsS http://127.0.0.1:8081/models/{model}   # workers and batch size now"),
        format!(
            "curl -fsS -X PUT http://127.0.0.1:8081/models/{model}'?min_worker=1&max_worker=1'"
        ),
    ]);
}

fn llamacpp(doc: &mut Markdown, server: &Server) {
    doc.para("llama.cpp puts `--n-gpu-layers` layers on the GPU and allocates the KV cache for `--ctx-size` tokens, split across `--parallel` slots. Its log says how many layers the model has: `offloaded N/M layers to GPU`.");
    let layers = server.flag(&["--n-gpu-layers", "-ngl", "--gpu-layers"]);
    let ctx = server.flag(&["--ctx-size", "-c"]);
    let (layers_now, layers_next) = gpu_layers(layers.as_deref());
    knob_table(
        doc,
        vec![
            knob(
                "--ctx-size",
                ctx.clone().unwrap_or_else(|| "unset (the model's)".into()),
                ctx.as_deref()
                    .map(halve)
                    .unwrap_or_else(|| "half the `n_ctx` that `/props` shows".into()),
                "a smaller KV cache; longer prompts are refused",
            ),
            knob(
                "--n-gpu-layers",
                layers_now,
                layers_next,
                "layers left on the CPU free GPU memory and cost speed",
            ),
        ],
    );
}

/// At or above this, `--n-gpu-layers` means every layer: no model has this many.
const ALL_LAYERS: u32 = 99;

/// `--n-gpu-layers` now and the value to try: a quarter fewer layers on the GPU.
fn gpu_layers(value: Option<&str>) -> (String, String) {
    let Some(value) = value else {
        return ("unset".into(), "fewer than the model has".into());
    };
    match value.parse::<i64>() {
        Ok(n) if n < 0 || n >= i64::from(ALL_LAYERS) => (
            format!("{value} (every layer)"),
            "M − M/4, where M is the layer count the log shows".into(),
        ),
        Ok(0) => (
            "0 (no layer on the GPU)".into(),
            "keep: the GPU holds only the KV cache".into(),
        ),
        Ok(n) => (value.to_owned(), (n - (n / 4).max(1)).to_string()),
        Err(_) => (
            format!("{value}: not a layer count"),
            "a number of layers".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::facts::bytes;

    #[test]
    fn memory_is_rounded_up_to_tidy_steps() {
        const GIB: u64 = 1 << 30;
        assert_eq!(round_up(50 * GIB), 52 * GIB);
        assert_eq!(round_up(10 * GIB), 10 * GIB);
        assert_eq!(round_up(9 * GIB + 1), 10 * GIB);
        assert_eq!(round_up(1250 * GIB), 1264 * GIB);
        assert_eq!(
            quantity(round_up(bytes("48Gi").unwrap_or(0) * 5 / 4)),
            "60Gi"
        );
    }

    #[test]
    fn fractions_step_by_five_points_within_bounds() {
        assert_eq!(lower_fraction(0.90), "0.85");
        assert_eq!(lower_fraction(0.52), "0.50");
        assert_eq!(raise_fraction(0.93), "0.95");
    }

    #[test]
    fn the_next_parallel_size_is_the_next_power_of_two() {
        assert_eq!(next_parallel(1), Some(2));
        assert_eq!(next_parallel(2), Some(4));
        assert_eq!(next_parallel(3), Some(4));
        assert_eq!(next_parallel(6), Some(8));
        assert_eq!(next_parallel(u32::MAX), None);
    }

    #[test]
    fn keep_alive_only_ever_gets_shorter() {
        assert_eq!(shorter_keep_alive("24h"), "5m");
        assert_eq!(shorter_keep_alive("5m"), "1m");
        assert_eq!(shorter_keep_alive("2m"), "1m");
        assert_eq!(shorter_keep_alive("30s"), "0 (unload after each request)");
        assert_eq!(shorter_keep_alive("45"), "0 (unload after each request)");
        assert!(shorter_keep_alive("-1").starts_with("5m"));
        assert!(shorter_keep_alive("0").starts_with("keep"));
        assert_eq!(keep_alive_seconds("1h30m"), Some(5400));
        assert_eq!(keep_alive_seconds("soon"), None);
    }

    #[test]
    fn gpu_layers_at_or_above_the_model_mean_all_and_come_down_for_real() {
        assert_eq!(gpu_layers(Some("999")).0, "999 (every layer)");
        assert!(gpu_layers(Some("-1")).0.contains("every layer"));
        assert_eq!(gpu_layers(Some("40")).1, "30");
        assert_eq!(gpu_layers(Some("2")).1, "1");
        assert!(gpu_layers(Some("0")).1.starts_with("keep"));
    }

    #[test]
    fn vllm_defaults_follow_the_gpu() {
        let h100 = vec!["NVIDIA-H100-80GB-HBM3".to_owned()];
        let a100 = vec!["NVIDIA-A100-SXM4-80GB".to_owned()];
        let l4 = vec!["NVIDIA-L4".to_owned()];
        assert_eq!(
            vllm_default_max_num_seqs(&h100, Some(80)).map(|d| d.0),
            Some(1024)
        );
        assert_eq!(
            vllm_default_max_num_seqs(&a100, Some(80)).map(|d| d.0),
            Some(256)
        );
        assert_eq!(
            vllm_default_max_num_seqs(&l4, Some(23)).map(|d| d.0),
            Some(256)
        );
        assert_eq!(vllm_default_max_num_seqs(&[], Some(80)), None);
    }
}
