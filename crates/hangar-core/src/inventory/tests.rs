use super::*;
use crate::snapshot_from_text;

fn inventory(yaml: &str) -> Inventory {
    discover(&snapshot_from_text("t.yaml", yaml), &Policy::default())
}

const VLLM: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: chat, namespace: ml, labels: {team: search}}
spec:
  template:
    metadata: {labels: {app: chat}}
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.8.5
        args: ["--model", "meta-llama/Llama-3.1-8B-Instruct", "--revision", "0e9e39f"]
        resources: {limits: {nvidia.com/gpu: "1"}}
---
apiVersion: v1
kind: Service
metadata: {name: chat, namespace: ml}
spec:
  type: LoadBalancer
  selector: {app: chat}
  ports: [{port: 80, targetPort: 8000}]
"#;

#[test]
fn a_vllm_deployment_is_an_endpoint_with_its_reasons_model_and_exposure() {
    let inv = inventory(VLLM);
    assert_eq!(inv.endpoints.len(), 1);
    let e = &inv.endpoints[0];
    assert_eq!(e.id, "Deployment/ml/chat");
    assert_eq!(e.runtime, Runtime::Vllm);
    let signals: Vec<_> = e.reasons.iter().map(|r| r.signal).collect();
    assert!(
        signals.contains(&"image") && signals.contains(&"accelerator"),
        "{signals:?}"
    );
    assert_eq!(
        e.model.source.as_deref(),
        Some("meta-llama/Llama-3.1-8B-Instruct")
    );
    assert_eq!(e.model.version.as_deref(), Some("0e9e39f"));
    assert_eq!(e.team.as_deref(), Some("search"));
    assert_eq!(e.exposure.len(), 1);
    assert!(e.is_externally_exposed());
    assert_eq!(e.exposure[0].ports, [8000]);
    assert_eq!(e.origin.line, Some(2));
}

#[test]
fn training_jobs_notebooks_and_smi_pods_are_not_endpoints() {
    let inv = inventory(
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: finetune, namespace: ml}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: t, image: "pytorch/pytorch:2.4", command: [torchrun, train.py], resources: {limits: {nvidia.com/gpu: "8"}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: smi, namespace: default}
spec:
  restartPolicy: OnFailure
  containers: [{name: smi, image: "nvidia/cuda:12.4.0-base", command: [nvidia-smi], resources: {limits: {nvidia.com/gpu: "1"}}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: lab, namespace: research}
spec:
  template:
    metadata: {labels: {notebook-name: lab}}
    spec:
      containers: [{name: nb, image: "jupyter/pytorch-notebook", resources: {limits: {nvidia.com/gpu: "1"}}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    spec:
      containers: [{name: web, image: "nginx:1.27", ports: [{containerPort: 8000}]}]
"#,
    );
    assert!(
        inv.endpoints.is_empty(),
        "{:?}",
        inv.endpoints.iter().map(|e| &e.id).collect::<Vec<_>>()
    );
    let why: Vec<_> = inv
        .other_accelerator_workloads
        .iter()
        .map(|n| (n.object.name.as_str(), n.why.as_str()))
        .collect();
    assert_eq!(why.len(), 3, "{why:?}");
}

#[test]
fn a_gpu_workload_with_a_serving_hint_is_an_endpoint_of_unknown_runtime() {
    let inv = inventory(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: custom, namespace: ml}
spec:
  template:
    spec:
      containers:
      - name: srv
        image: registry.example.com/ml/in-house-server:3
        readinessProbe: {httpGet: {path: /v1/models, port: 9000}}
        resources: {limits: {nvidia.com/gpu: "1"}}
"#,
    );
    assert_eq!(inv.endpoints.len(), 1);
    assert_eq!(inv.endpoints[0].runtime, Runtime::Other);
}

#[test]
fn an_inference_service_and_the_deployment_it_owns_are_one_endpoint() {
    let inv = inventory(
        r#"
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: fraud, namespace: risk, labels: {networking.kserve.io/visibility: cluster-local}}
spec:
  predictor:
    model:
      modelFormat: {name: huggingface}
      storageUri: hf://acme/fraud-bert@sha256:abc
      resources: {limits: {nvidia.com/gpu: "1"}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: fraud-predictor
  namespace: risk
  labels: {serving.kserve.io/inferenceservice: fraud}
spec:
  template:
    metadata: {labels: {serving.kserve.io/inferenceservice: fraud}}
    spec:
      containers: [{name: kserve-container, image: "kserve/huggingfaceserver:v0.14", resources: {limits: {nvidia.com/gpu: "1"}}}]
"#,
    );
    assert_eq!(
        inv.endpoints.len(),
        1,
        "{:?}",
        inv.endpoints.iter().map(|e| &e.id).collect::<Vec<_>>()
    );
    let e = &inv.endpoints[0];
    assert_eq!(e.id, "InferenceService/risk/fraud");
    assert_eq!(e.runtime, Runtime::Vllm);
    assert!(e.workloads.iter().any(|w| w.name == "fraud-predictor"));
    assert_eq!(e.model.digest.as_deref(), Some("sha256:abc"));
    assert!(!e.is_externally_exposed());
}

#[test]
fn a_serving_runtimes_api_key_guards_the_inference_service() {
    let inv = inventory(
        r#"
apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata: {name: kserve-vllm, namespace: risk}
spec:
  containers:
  - name: kserve-container
    image: vllm/vllm-openai:v0.11.0
    command: [python3, -m, vllm.entrypoints.openai.api_server]
    args: [--model, /mnt/models, --api-key, $(VLLM_API_KEY)]
---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: narrator, namespace: risk}
spec:
  predictor:
    model:
      runtime: kserve-vllm
      modelFormat: {name: vllm}
      storageUri: s3://models/narrator/v3
"#,
    );
    let auth = &inv.endpoints[0].auth;
    assert_eq!(auth.len(), 1, "{auth:?}");
    assert!(
        auth[0].detail.contains("ServingRuntime kserve-vllm"),
        "{}",
        auth[0].detail
    );
}

#[test]
fn python_module_flags_are_not_models() {
    let inv = inventory(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: qwen, namespace: lab}
spec:
  template:
    spec:
      containers:
      - name: sglang
        image: lmsysorg/sglang:v0.5.2-cu126
        command: [python3, -m, sglang.launch_server]
        args: [--model-path, Qwen/Qwen2.5-7B-Instruct]
        resources: {limits: {nvidia.com/gpu: "1"}}
"#,
    );
    assert_eq!(
        inv.endpoints[0].model.source.as_deref(),
        Some("Qwen/Qwen2.5-7B-Instruct")
    );
}

#[test]
fn retention_parses_common_units() {
    assert_eq!(parse_days("400d"), Some(400));
    assert_eq!(parse_days("13mo"), Some(396));
    assert_eq!(parse_days("12mo"), Some(365));
    assert_eq!(parse_days("1y"), Some(365));
    assert_eq!(parse_days("90"), Some(90));
    assert_eq!(parse_days("forever"), None);
}

#[test]
fn inline_containers_of_custom_resources_keep_their_real_field_path() {
    let inv = inventory(
        r#"
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: m, namespace: ml}
spec:
  predictor:
    serviceAccountName: sa
    model:
      modelFormat: {name: huggingface}
      storageUri: hf://org/model
"#,
    );
    let paths: Vec<String> = inv.endpoints[0]
        .containers()
        .map(|(_, path, _)| path)
        .collect();
    assert_eq!(paths, ["spec.predictor.model"]);
}

#[test]
fn a_server_key_counts_only_for_servers_that_read_one() {
    let with_key = VLLM.replace(
        r#"args: ["--model""#,
        r#"args: ["--api-key=$(KEY)", "--model""#,
    );
    let inv = inventory(&with_key);
    let auth = &inv.endpoints[0].auth;
    assert_eq!(auth.len(), 1, "{auth:?}");
    assert_eq!(auth[0].kind, AuthKind::ServerApiKey);
    assert!(
        auth[0].detail.contains("/v1 routes only"),
        "{}",
        auth[0].detail
    );

    let ollama = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: o, namespace: lab}
spec:
  template:
    spec:
      containers:
      - name: ollama
        image: ollama/ollama:0.5.7
        args: ["--api-key", "x"]
        env: [{name: API_KEY, value: x}]
"#;
    assert!(
        inventory(ollama).endpoints[0].auth.is_empty(),
        "Ollama reads no API key"
    );
}

#[test]
fn a_nim_service_is_exposed_as_its_operator_would() {
    let nim = |expose: &str| {
        format!(
            r#"
apiVersion: apps.nvidia.com/v1alpha1
kind: NIMService
metadata: {{name: llama, namespace: nim}}
spec:
  image: {{repository: nvcr.io/nim/meta/llama-3.1-8b-instruct, tag: "1.3.3"}}
  resources: {{limits: {{nvidia.com/gpu: "1"}}}}
  expose: {expose}
"#
        )
    };
    let inv = inventory(&nim("{service: {type: ClusterIP, port: 8000}}"));
    assert_eq!(inv.endpoints[0].exposure.len(), 1);
    assert!(!inv.endpoints[0].is_externally_exposed());
    let inv = inventory(&nim("{service: {type: LoadBalancer}}"));
    assert!(inv.endpoints[0].is_externally_exposed());
    let inv = inventory(&nim("{ingress: {enabled: true}}"));
    assert!(inv.endpoints[0].is_externally_exposed());
}

const WEB_CHAT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: chat, namespace: ml}\nspec:\n  template:\n    spec:\n      containers: [{name: web, image: \"nginx:1.27\"}]\n";

#[test]
fn an_object_defined_twice_is_an_error_naming_both_places_and_the_last_copy_is_audited() {
    // Kubernetes keeps the last one applied: a web copy first must not hide the vLLM one.
    let snapshot = snapshot_from_text("t.yaml", &format!("{WEB_CHAT}---{VLLM}"));
    assert_eq!(snapshot.deployments.len(), 1, "the earlier copy is dropped");
    assert_eq!(snapshot.errors.len(), 1, "{:?}", snapshot.errors);
    let error = &snapshot.errors[0];
    assert_eq!(error.origin.line, Some(1));
    assert_eq!(error.object.as_deref(), Some("Deployment ml/chat"));
    assert!(error.message.contains("t.yaml:9"), "{}", error.message);
    assert!(error.message.contains("last"), "{}", error.message);
    let inv = discover(&snapshot, &Policy::default());
    assert_eq!(inv.endpoints.len(), 1);
    assert_eq!(inv.endpoints[0].runtime, Runtime::Vllm);
}

#[test]
fn identical_copies_of_an_object_are_read_once_without_an_error() {
    // The same Namespace in the manifests of every app that lives in it loses nothing.
    let namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: ml}\n";
    let snapshot = snapshot_from_text("t.yaml", &format!("{namespace}---\n{namespace}"));
    assert_eq!(snapshot.namespaces.len(), 1);
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
}

#[test]
fn custom_resources_of_the_same_kind_name_in_different_groups_are_not_duplicates() {
    let snapshot = snapshot_from_text(
        "t.yaml",
        "apiVersion: kubeai.org/v1\nkind: Model\nmetadata: {name: m, namespace: ml}\n---\napiVersion: mlops.seldon.io/v1alpha1\nkind: Model\nmetadata: {name: m, namespace: ml}\n",
    );
    assert_eq!(snapshot.others.len(), 2);
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
}

/// An HTTPRoute `chat` in `namespace` whose one rule sends to `backend`.
fn route(namespace: &str, backend: &str) -> String {
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: chat, namespace: {namespace}}}\nspec:\n  parentRefs: [{{name: public}}]\n  rules: [{{backendRefs: [{backend}]}}]\n"
    )
}

/// The HTTPRoutes that reach the `VLLM` endpoint, each with the container ports it reaches.
fn routes_to_chat(routes: &str) -> Vec<(String, Vec<i32>)> {
    inventory(&format!("{VLLM}{routes}")).endpoints[0]
        .exposure
        .iter()
        .filter(|e| e.kind == ExposureKind::HttpRoute)
        .map(|e| (e.via.to_string(), e.ports.clone()))
        .collect()
}

#[test]
fn an_http_route_exposes_the_service_its_backend_names_in_whatever_namespace() {
    let across = route("gateway", "{name: chat, namespace: ml, port: 80}");
    assert_eq!(
        routes_to_chat(&across),
        [("HTTPRoute/gateway/chat".to_owned(), vec![8000])]
    );
    let beside = route("ml", "{name: chat, port: 80}");
    assert_eq!(
        routes_to_chat(&beside),
        [("HTTPRoute/ml/chat".to_owned(), vec![8000])]
    );
    // A route beside the endpoint whose backend is another namespace's `chat` does not reach it.
    let elsewhere = route("ml", "{name: chat, namespace: other, port: 80}");
    assert!(routes_to_chat(&elsewhere).is_empty());
}

/// A ReferenceGrant in `namespace` letting the HTTPRoutes of namespace `from` refer to `to`.
fn reference_grant(namespace: &str, from: &str, to: &str) -> String {
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {{name: routes, namespace: {namespace}}}\nspec:\n  from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: {from}}}]\n  to: [{to}]\n"
    )
}

const EVERY_SERVICE: &str = "{group: \"\", kind: Service}";

#[test]
fn a_route_into_another_namespace_counts_only_when_a_reference_grant_there_allows_it() {
    let across = route("gateway", "{name: chat, namespace: ml, port: 80}");
    let routed = |grants: &str| -> Vec<String> {
        let routes = routes_to_chat(&format!("{across}{grants}"));
        routes.into_iter().map(|(via, _)| via).collect()
    };
    for to in [EVERY_SERVICE, "{group: \"\", kind: Service, name: chat}"] {
        assert_eq!(
            routed(&reference_grant("ml", "gateway", to)),
            ["HTTPRoute/gateway/chat"],
            "{to}"
        );
    }
    // The gateway refuses the backend: another Service is named, or the routes of another
    // namespace are trusted.
    for grant in [
        reference_grant("ml", "gateway", "{group: \"\", kind: Service, name: other}"),
        reference_grant("ml", "elsewhere", EVERY_SERVICE),
    ] {
        assert!(routed(&grant).is_empty(), "{grant}");
    }
    // A route beside its backend needs none.
    let beside = route("ml", "{name: chat, port: 80}");
    let grant = reference_grant("gateway", "gateway", EVERY_SERVICE);
    assert_eq!(routes_to_chat(&format!("{beside}{grant}")).len(), 1);
}

/// The HTTPRoutes that reach the `VLLM` endpoint in `snapshot`, each with why it is counted
/// though the input cannot show it works (`unconfirmed`).
fn why_counted(snapshot: &Snapshot) -> Vec<Option<String>> {
    let inventory = discover(snapshot, &Policy::default());
    (inventory.endpoints[0].exposure.iter())
        .filter(|e| e.kind == ExposureKind::HttpRoute)
        .map(|e| e.unconfirmed.clone())
        .collect()
}

/// Whether `notes` (see `why_counted`) are one route's, counted because no grant was read.
fn counted_unread(notes: &[Option<String>]) -> bool {
    matches!(notes, [Some(why)] if why.contains("no ReferenceGrant was read"))
}

#[test]
fn a_route_into_another_namespace_counts_when_no_reference_grant_was_read_and_says_why() {
    let across = route("gateway", "{name: chat, namespace: ml, port: 80}");
    // A scan of one directory: no ReferenceGrant anywhere in the input.
    let notes = why_counted(&snapshot_from_text("t.yaml", &format!("{VLLM}{across}")));
    assert!(counted_unread(&notes), "{notes:?}");
    // Grants in `ml` were read, and none allows the route: it is refused...
    let others = reference_grant("ml", "other", EVERY_SERVICE);
    let mut live = snapshot_from_text("t.yaml", &format!("{VLLM}{across}{others}"));
    assert!(why_counted(&live).is_empty());
    // ...unless a live scan could not list them all.
    live.not_covered.push(crate::NotCovered {
        kind: "ReferenceGrant.gateway.networking.k8s.io".into(),
        reason: "forbidden".into(),
    });
    assert_eq!(why_counted(&live).len(), 1);
}

#[test]
fn a_reference_grant_tells_only_about_routes_into_its_own_namespace() {
    let across = route("gateway", "{name: chat, namespace: ml, port: 80}");
    // Another team's grant, one in the route's namespace rather than the backend's, or one
    // whose namespace the file leaves to `kubectl -n`: none says what `ml` allows, so the
    // route counts, as when no grant is in the input at all.
    let unplaced = reference_grant("ml", "gateway", EVERY_SERVICE)
        .replace("{name: routes, namespace: ml}", "{name: routes}");
    for grant in [
        reference_grant("billing", "billing", EVERY_SERVICE),
        reference_grant("gateway", "gateway", EVERY_SERVICE),
        unplaced,
    ] {
        let notes = why_counted(&snapshot_from_text(
            "t.yaml",
            &format!("{VLLM}{across}{grant}"),
        ));
        assert!(counted_unread(&notes), "{grant}: {notes:?}");
    }
}

/// `yaml` as a live scan reads it: every object from the cluster, none from a file.
fn live_snapshot(yaml: &str) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let parsed = crate::parse::parse_text(&std::sync::Arc::from("cluster.yaml"), yaml);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    for (object, _) in parsed.objects {
        snapshot.insert(object, Origin::live());
    }
    snapshot
}

#[test]
fn a_live_scan_that_found_no_reference_grant_in_the_backends_namespace_refuses_the_route() {
    let across = route("gateway", "{name: chat, namespace: ml, port: 80}");
    let yaml = format!("{VLLM}{across}");
    // The scan listed the ReferenceGrants of `ml` with its Services, and found none there (a
    // grant in the route's namespace allows nothing in `ml`): the gateway refuses the backend.
    assert!(why_counted(&live_snapshot(&yaml)).is_empty());
    let beside_the_route = reference_grant("gateway", "gateway", EVERY_SERVICE);
    assert!(why_counted(&live_snapshot(&format!("{yaml}{beside_the_route}"))).is_empty());
    // A grant in `ml` that allows it: counted, and confirmed.
    let allowing = reference_grant("ml", "gateway", EVERY_SERVICE);
    let notes = why_counted(&live_snapshot(&format!("{yaml}{allowing}")));
    assert_eq!(notes, [None::<String>]);
    // The listing failed: what it would have found is unknown, so the route counts, saying why.
    let mut failed = live_snapshot(&yaml);
    failed.not_covered.push(crate::NotCovered {
        kind: "ReferenceGrant.gateway.networking.k8s.io".into(),
        reason: "forbidden".into(),
    });
    let notes = why_counted(&failed);
    assert!(counted_unread(&notes), "{notes:?}");
    // Files hold what they hold: without a grant in `ml`, the grants there are unknown.
    let notes = why_counted(&snapshot_from_text("t.yaml", &yaml));
    assert!(counted_unread(&notes), "{notes:?}");
}

/// A Deployment `srv` in `ml` (pod label `app: chat`) running `image`, its container given
/// `fields` too (flow style, each starting with a comma).
fn server(image: &str, fields: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: srv, namespace: ml}}\nspec:\n  template:\n    metadata: {{labels: {{app: chat}}}}\n    spec:\n      containers: [{{name: srv, image: \"{image}\"{fields}}}]\n"
    )
}

const TGI: &str = "ghcr.io/huggingface/text-generation-inference:3.0";

/// The ports the one endpoint in `yaml` is found to serve on.
fn serving_ports_of(yaml: &str) -> Vec<i32> {
    inventory(yaml).endpoints[0].serving_ports.clone()
}

#[test]
fn the_serving_ports_come_from_the_servers_flags_and_variables_or_its_defaults() {
    let ports = serving_ports_of;
    assert_eq!(ports(VLLM), [8000]);
    let flag = |value: &str| {
        VLLM.replace(
            r#"args: ["--model""#,
            &format!(r#"args: ["--port", "{value}", "--model""#),
        )
    };
    assert_eq!(ports(&flag("8080")), [8080]);
    let with_env = |env: &str| {
        flag("$(API_PORT)").replace(
            "        resources:",
            &format!("        env: [{env}]\n        resources:"),
        )
    };
    assert_eq!(
        ports(&with_env("{name: API_PORT, value: \"9000\"}")),
        [9000]
    );
    // A port from a Secret, or a variable that is not set, cannot be told.
    let secret = "{name: API_PORT, valueFrom: {secretKeyRef: {name: s, key: port}}}";
    assert!(ports(&with_env(secret)).is_empty());
    assert!(ports(&flag("$(API_PORT)")).is_empty());

    let triton = server(
        "nvcr.io/nvidia/tritonserver:24.08-py3",
        ", command: [tritonserver, --model-repository=/models, --grpc-port=9001]",
    );
    assert_eq!(ports(&triton), [8000, 9001]);
    let ollama = |host: &str| {
        server(
            "ollama/ollama:0.5.7",
            &format!(", env: [{{name: OLLAMA_HOST, value: \"{host}\"}}]"),
        )
    };
    assert_eq!(ports(&ollama("0.0.0.0")), [11434]);
    assert_eq!(ports(&ollama("http://0.0.0.0:8080")), [8080]);
    // TGI's image sets `PORT=80`; its launcher alone would listen on 3000.
    assert_eq!(ports(&server(TGI, "")), [80]);
    assert_eq!(ports(&server(TGI, ", args: [--port, \"8080\"]")), [8080]);
    // TorchServe reads its addresses from a configuration file.
    assert!(ports(&server("pytorch/torchserve:0.12.0", "")).is_empty());
}

#[test]
fn a_port_variable_that_env_from_may_set_cannot_be_told() {
    // The ConfigMap may hold `PORT=8080`: the image's 80 is not to be assumed.
    let env_from = ", envFrom: [{configMapRef: {name: tgi-settings}}]";
    assert!(serving_ports_of(&server(TGI, env_from)).is_empty());
    // `env` wins over `envFrom`.
    let both = format!("{env_from}, env: [{{name: PORT, value: \"8080\"}}]");
    assert_eq!(serving_ports_of(&server(TGI, &both)), [8080]);
}

#[test]
fn a_nims_ports_are_read_from_the_variables_of_every_nim_family() {
    // An embedding NIM, whose image does not say it is no LLM NIM: each family's port counts.
    let ports = |env: &str| {
        let nim = "nvcr.io/nim/nvidia/nv-embedqa-e5-v5:1.0.0";
        serving_ports_of(&server(nim, &format!(", env: [{env}]")))
    };
    assert_eq!(ports(""), [8000]);
    // Its HTTP port, or an LLM NIM's: which one the NIM reads cannot be told, so a port moved
    // by one family's variable may still be the other's 8000.
    for variable in ["NIM_HTTP_API_PORT", "NIM_SERVER_PORT"] {
        let moved = format!("{{name: {variable}, value: \"9000\"}}");
        let mut found = ports(&moved);
        found.sort_unstable();
        assert_eq!(found, [8000, 9000], "{variable}");
    }
    // Its gRPC port, when set; Nemotron Parse's address.
    assert_eq!(
        ports("{name: NIM_GRPC_API_PORT, value: \"50052\"}"),
        [8000, 50052]
    );
    assert_eq!(
        ports("{name: NIM_SERVER_BIND_ADDR, value: \"0.0.0.0:9000\"}"),
        [8000, 9000]
    );
    // An address without its port, or a port from a Secret, cannot be told.
    assert!(ports("{name: NIM_SERVER_BIND_ADDR, value: \"0.0.0.0\"}").is_empty());
    let secret = "{name: NIM_GRPC_API_PORT, valueFrom: {secretKeyRef: {name: s, key: port}}}";
    assert!(ports(secret).is_empty());
}

#[test]
fn ollama_takes_the_port_of_its_hosts_scheme_when_the_host_names_none() {
    // As Ollama's `envconfig.Host()`: `http://` means 80, `https://` 443, no scheme 11434.
    let ollama = |host: &str| {
        let env = format!(", env: [{{name: OLLAMA_HOST, value: \"{host}\"}}]");
        serving_ports_of(&server("ollama/ollama:0.5.7", &env))
    };
    assert_eq!(ollama("http://0.0.0.0"), [80]);
    assert_eq!(ollama("https://0.0.0.0"), [443]);
    assert_eq!(ollama("0.0.0.0"), [11434]);
    assert_eq!(ollama("https://0.0.0.0:8443"), [8443]);
}

#[test]
fn a_port_set_where_hangar_cannot_read_it_is_not_known() {
    // vLLM's `--config` file may hold `port:`.
    let config = VLLM.replace(
        r#"args: ["--model""#,
        r#"args: ["--config", "/etc/vllm/config.yaml", "--model""#,
    );
    assert!(serving_ports_of(&config).is_empty());
    // A shell that sets the launcher's variable itself.
    let shell = |script: &str| {
        serving_ports_of(&server(
            TGI,
            &format!(", command: [sh, -c], args: [\"{script}\"]"),
        ))
    };
    assert!(shell("export PORT=9000; text-generation-launcher --model-id m").is_empty());
    assert!(shell("PORT=9000 exec text-generation-launcher --model-id m").is_empty());
    // A shell that leaves it alone, or sets another variable, changes nothing.
    assert_eq!(shell("exec text-generation-launcher --model-id m"), [80]);
    assert_eq!(
        shell("export MASTER_PORT=29500; text-generation-launcher --model-id m"),
        [80]
    );
    // The launchers' short flag, its value attached.
    assert_eq!(
        serving_ports_of(&server(TGI, ", args: [\"-p8080\"]")),
        [8080]
    );
}

#[test]
fn an_ingress_reaches_the_container_port_its_backend_port_leads_to() {
    let ingress = |port: &str| {
        format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: chat, namespace: ml}}\nspec:\n  rules: [{{http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: chat, port: {port}}}}}}}]}}}}]\n"
        )
    };
    let named = VLLM.replace("ports: [{port: 80, ", "ports: [{name: http, port: 80, ");
    for (yaml, port) in [
        (format!("{VLLM}{}", ingress("{number: 80}")), "number"),
        (format!("{named}{}", ingress("{name: http}")), "name"),
    ] {
        let inv = inventory(&yaml);
        let ingress = inv.endpoints[0]
            .exposure
            .iter()
            .find(|e| e.kind == ExposureKind::Ingress);
        assert_eq!(ingress.map(|e| e.ports.clone()), Some(vec![8000]), "{port}");
    }
}

/// The Istio policies credited as the `VLLM` endpoint's authentication.
fn mesh_auth(policies: &[(&str, &str)]) -> Vec<String> {
    mesh_auth_on(VLLM, policies)
}

/// The Istio policies credited as the authentication of the endpoint in `base` (pod label
/// `app: chat`, namespace `ml`).
fn mesh_auth_on(base: &str, policies: &[(&str, &str)]) -> Vec<String> {
    let policies: String = policies
        .iter()
        .map(|(name, spec)| {
            format!(
                "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: {name}, namespace: ml}}\nspec: {{selector: {{matchLabels: {{app: chat}}}}, {spec}}}\n"
            )
        })
        .collect();
    inventory(&format!("{base}{policies}")).endpoints[0]
        .auth
        .iter()
        .filter(|a| a.kind == AuthKind::MeshPolicy)
        .map(|a| a.detail.clone())
        .collect()
}

const REQUIRE_JWT: &str =
    "action: ALLOW, rules: [{from: [{source: {requestPrincipals: [\"*\"]}}]}]";

#[test]
fn an_istio_allow_policy_counts_only_when_every_allowed_request_carries_a_principal() {
    assert_eq!(
        mesh_auth(&[("require-jwt", REQUIRE_JWT)]),
        ["Istio AuthorizationPolicy require-jwt"]
    );
    // `action` defaults to ALLOW.
    let implicit = REQUIRE_JWT.replace("action: ALLOW, ", "");
    assert_eq!(mesh_auth(&[("require-jwt", implicit.as_str())]).len(), 1);
    // A second ALLOW policy admitting everyone lets requests without a token through.
    for open in [
        "rules: [{}]",
        "rules: [{to: [{operation: {paths: [\"/v1/*\"]}}]}]",
    ] {
        assert!(
            mesh_auth(&[("require-jwt", REQUIRE_JWT), ("allow-all", open)]).is_empty(),
            "{open}"
        );
    }
    // A source that only excludes principals admits requests without one.
    let not_principals = "rules: [{from: [{source: {notRequestPrincipals: [\"admin\"]}}]}]";
    assert!(mesh_auth(&[("exclude", not_principals)]).is_empty());
    // A rule for other paths (a scraper's) lets nobody into the inference API.
    let metrics = "rules: [{from: [{source: {namespaces: [monitoring]}}], to: [{operation: {paths: [\"/metrics\"]}}]}]";
    assert_eq!(
        mesh_auth(&[("require-jwt", REQUIRE_JWT), ("scrape", metrics)]).len(),
        1
    );
    let but_not_v1 = "rules: [{to: [{operation: {notPaths: [\"/v1/*\"]}}]}]";
    assert_eq!(
        mesh_auth(&[("require-jwt", REQUIRE_JWT), ("rest", but_not_v1)]).len(),
        1
    );
}

#[test]
fn an_istio_custom_policy_counts_when_its_rules_take_in_the_inference_api() {
    let custom = |rules: &str| {
        let spec = format!("action: CUSTOM, provider: {{name: oauth2}}, {rules}");
        mesh_auth(&[("ext-authz", spec.as_str())])
    };
    assert_eq!(custom("rules: [{}]").len(), 1);
    assert_eq!(
        custom("rules: [{to: [{operation: {paths: [\"/v1/*\"]}}]}]").len(),
        1
    );
    assert!(
        custom("rules: []").is_empty(),
        "a policy without rules matches nothing"
    );
    assert!(custom("rules: [{to: [{operation: {paths: [\"/admin/*\"]}}]}]").is_empty());
}

#[test]
fn an_istio_deny_policy_counts_only_when_it_refuses_requests_without_a_principal() {
    let deny_principals = REQUIRE_JWT.replace("action: ALLOW", "action: DENY");
    assert!(mesh_auth(&[("deny-jwt", deny_principals.as_str())]).is_empty());
    let deny_anonymous =
        "action: DENY, rules: [{from: [{source: {notRequestPrincipals: [\"*\"]}}]}]";
    assert_eq!(
        mesh_auth(&[("deny-anonymous", deny_anonymous)]),
        ["Istio AuthorizationPolicy deny-anonymous"]
    );
    // Refusing them on some paths only leaves the others open.
    let some_paths = "action: DENY, rules: [{from: [{source: {notRequestPrincipals: [\"*\"]}}], to: [{operation: {paths: [\"/admin\"]}}]}]";
    assert!(mesh_auth(&[("deny-admin", some_paths)]).is_empty());
}

/// An Istio ALLOW rule admitting anyone on container port `port`.
fn open_port(port: &str) -> String {
    format!("rules: [{{to: [{{operation: {{ports: [\"{port}\"]}}}}]}}]")
}

/// An Istio policy of `action` whose one rule takes in `source` (flow style, maybe empty) on
/// container `ports`.
fn on_ports(action: &str, source: &str, ports: &[&str]) -> String {
    let ports: Vec<String> = ports.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        "action: {action}, rules: [{{{source}to: [{{operation: {{ports: [{}]}}}}]}}]",
        ports.join(", ")
    )
}

/// An Istio CUSTOM policy sending the requests on container `ports` to an external authoriser.
fn custom_on(ports: &[&str]) -> String {
    format!(
        "provider: {{name: oauth2}}, {}",
        on_ports("CUSTOM", "", ports)
    )
}

/// An Istio DENY policy refusing requests without a principal on container `ports`.
fn deny_anonymous_on(ports: &[&str]) -> String {
    on_ports(
        "DENY",
        "from: [{source: {notRequestPrincipals: [\"*\"]}}], ",
        ports,
    )
}

#[test]
fn an_istio_rule_for_other_ports_neither_opens_nor_guards_the_inference_port() {
    // `VLLM` listens on vLLM's default 8000, which its Service publishes as 80: Istio matches
    // the port of the workload, not the Service's.
    for other in [
        open_port("9090"),
        open_port("80"),
        "rules: [{to: [{operation: {notPorts: [\"8000\"]}}]}]".to_owned(),
    ] {
        assert_eq!(
            mesh_auth(&[("require-jwt", REQUIRE_JWT), ("other", other.as_str())]),
            ["Istio AuthorizationPolicy require-jwt"],
            "{other}"
        );
    }
    let inference = open_port("8000");
    assert!(mesh_auth(&[("require-jwt", REQUIRE_JWT), ("open", inference.as_str())]).is_empty());

    let custom = "action: CUSTOM, provider: {name: oauth2}, rules: [{to: [{operation: {ports: [\"9090\"]}}]}]";
    assert!(mesh_auth(&[("ext-authz", custom)]).is_empty());

    let on_api = deny_anonymous_on(&["8000"]);
    assert_eq!(
        mesh_auth(&[("deny-anonymous", on_api.as_str())]),
        ["Istio AuthorizationPolicy deny-anonymous"]
    );
    let on_metrics = deny_anonymous_on(&["9090"]);
    assert!(mesh_auth(&[("deny-anonymous", on_metrics.as_str())]).is_empty());
}

#[test]
fn istio_ports_are_matched_against_the_port_the_server_listens_on_when_it_is_known() {
    let port_flag = |value: &str| {
        VLLM.replace(
            r#"args: ["--model""#,
            &format!(r#"args: ["--port", "{value}", "--model""#),
        )
    };
    // vLLM moved to 8080, and its Service with it.
    let moved = port_flag("8080").replace("targetPort: 8000", "targetPort: 8080");
    let (old, new) = (open_port("8000"), open_port("8080"));
    assert_eq!(
        mesh_auth_on(
            &moved,
            &[("require-jwt", REQUIRE_JWT), ("open", old.as_str())]
        )
        .len(),
        1
    );
    assert!(
        mesh_auth_on(
            &moved,
            &[("require-jwt", REQUIRE_JWT), ("open", new.as_str())]
        )
        .is_empty()
    );
    // Unknown (a variable that is not set): any port may be the API's, as before.
    let unknown = port_flag("$(API_PORT)");
    let metrics = open_port("9090");
    assert!(
        mesh_auth_on(
            &unknown,
            &[("require-jwt", REQUIRE_JWT), ("open", metrics.as_str())]
        )
        .is_empty()
    );
}

/// `VLLM` behind a proxy in its pod: nginx takes requests on 8080, which its Service targets,
/// and passes them to vLLM on 127.0.0.1:8000.
const PROXIED: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: chat, namespace: ml}
spec:
  template:
    metadata: {labels: {app: chat}}
    spec:
      containers:
      - name: proxy
        image: nginx:1.27
        ports: [{containerPort: 8080}]
      - name: vllm
        image: vllm/vllm-openai:v0.8.5
        args: ["--host", "127.0.0.1", "--port", "8000", "--model", "meta-llama/Llama-3.1-8B-Instruct"]
        resources: {limits: {nvidia.com/gpu: "1"}}
---
apiVersion: v1
kind: Service
metadata: {name: chat, namespace: ml}
spec:
  type: LoadBalancer
  selector: {app: chat}
  ports: [{port: 80, targetPort: 8080}]
"#;

#[test]
fn istio_ports_are_matched_against_every_port_requests_enter_the_pod_on() {
    assert_eq!(serving_ports_of(PROXIED), [8000]);
    // Istio sees the connections on the proxy's 8080: a DENY on vLLM's port alone refuses none.
    let server_only = deny_anonymous_on(&["8000"]);
    assert!(mesh_auth_on(PROXIED, &[("deny-anonymous", server_only.as_str())]).is_empty());
    let both = deny_anonymous_on(&["8000", "8080"]);
    assert_eq!(
        mesh_auth_on(PROXIED, &[("deny-anonymous", both.as_str())]),
        ["Istio AuthorizationPolicy deny-anonymous"]
    );
    // A rule admitting anyone on the proxy's port lets requests without a token in.
    let proxy = open_port("8080");
    assert!(
        mesh_auth_on(
            PROXIED,
            &[("require-jwt", REQUIRE_JWT), ("open", proxy.as_str())]
        )
        .is_empty()
    );
    // A headless Service without ports lets clients pick the port: any may be the way in.
    let headless = "---\napiVersion: v1\nkind: Service\nmetadata: {name: chat-pods, namespace: ml}\nspec: {clusterIP: None, selector: {app: chat}}\n";
    let with_headless = format!("{PROXIED}{headless}");
    assert!(mesh_auth_on(&with_headless, &[("deny-anonymous", both.as_str())]).is_empty());
}

#[test]
fn an_istio_custom_policy_counts_only_when_it_takes_in_every_port_of_the_api() {
    // Triton serves HTTP on 8000 and gRPC on 8001: an authoriser on gRPC alone leaves HTTP open.
    let triton = server(
        "nvcr.io/nvidia/tritonserver:24.08-py3",
        ", command: [tritonserver, --model-repository=/models]",
    );
    let grpc = custom_on(&["8001"]);
    assert!(mesh_auth_on(&triton, &[("ext-authz", grpc.as_str())]).is_empty());
    let both = custom_on(&["8000", "8001"]);
    assert_eq!(
        mesh_auth_on(&triton, &[("ext-authz", both.as_str())]),
        ["Istio AuthorizationPolicy ext-authz"]
    );
    // A policy a port, CUSTOM or DENY, is as good as one for all.
    let http = custom_on(&["8000"]);
    assert_eq!(
        mesh_auth_on(&triton, &[("authz-http", &http), ("authz-grpc", &grpc)]),
        ["Istio AuthorizationPolicy authz-http"]
    );
    let (deny_http, deny_grpc) = (deny_anonymous_on(&["8000"]), deny_anonymous_on(&["8001"]));
    assert_eq!(
        mesh_auth_on(
            &triton,
            &[("deny-http", &deny_http), ("deny-grpc", &deny_grpc)]
        ),
        ["Istio AuthorizationPolicy deny-http"]
    );
    assert!(mesh_auth_on(&triton, &[("deny-http", &deny_http)]).is_empty());
    // When the API's port cannot be told, a rule limited to some ports may miss it.
    let unknown = VLLM.replace(
        r#"args: ["--model""#,
        r#"args: ["--port", "$(API_PORT)", "--model""#,
    );
    let on_8000 = custom_on(&["8000"]);
    assert!(mesh_auth_on(&unknown, &[("ext-authz", on_8000.as_str())]).is_empty());
}

/// Triton, its three ports declared by name, behind a load balancer whose `ports` are given
/// (flow style).
fn triton_behind(args: &str, ports: &str) -> String {
    let server = server(
        "nvcr.io/nvidia/tritonserver:24.08-py3",
        &format!(
            ", command: [tritonserver, --model-repository=/models{args}], ports: [{{name: http, containerPort: 8000}}, {{name: grpc, containerPort: 8001}}, {{name: metrics, containerPort: 8002}}]"
        ),
    );
    format!(
        "{server}---\napiVersion: v1\nkind: Service\nmetadata: {{name: triton, namespace: ml}}\nspec: {{type: LoadBalancer, selector: {{app: chat}}, ports: {ports}}}\n"
    )
}

#[test]
fn a_policy_need_not_guard_tritons_metrics_port_for_its_api_to_count_as_guarded() {
    let by_name = "[{name: http, port: 8000, targetPort: http}, {name: grpc, port: 8001, targetPort: grpc}, {name: metrics, port: 8002, targetPort: metrics}]";
    let by_number = "[{port: 80, targetPort: 8000}, {port: 81, targetPort: 8001}, {port: 82, targetPort: 8002}]";
    let deny = deny_anonymous_on(&["8000", "8001"]);
    let custom = custom_on(&["8000", "8001"]);
    // Istio guards HTTP and gRPC inference; the Service publishes metrics too, which serve no
    // inference API.
    for ports in [by_name, by_number] {
        let triton = triton_behind("", ports);
        assert_eq!(
            mesh_auth_on(&triton, &[("deny-anonymous", deny.as_str())]),
            ["Istio AuthorizationPolicy deny-anonymous"],
            "{ports}"
        );
        assert_eq!(
            mesh_auth_on(&triton, &[("ext-authz", custom.as_str())]),
            ["Istio AuthorizationPolicy ext-authz"],
            "{ports}"
        );
    }
    // Metrics moved to 9102: 8002 may be anything now, and 9102 serves only metrics.
    let moved = triton_behind(", --metrics-port=9102", by_number);
    assert!(mesh_auth_on(&moved, &[("deny-anonymous", deny.as_str())]).is_empty());
    let to_moved = "[{port: 80, targetPort: 8000}, {port: 81, targetPort: 8001}, {port: 82, targetPort: 9102}]";
    let moved = triton_behind(", --metrics-port=9102", to_moved);
    assert_eq!(
        mesh_auth_on(&moved, &[("deny-anonymous", deny.as_str())]),
        ["Istio AuthorizationPolicy deny-anonymous"]
    );
    // A metrics port that cannot be told, or metrics switched off (something else may listen
    // on 8002): any port the Service reaches may be a way in.
    for args in [
        ", \"--metrics-port=$(METRICS_PORT)\"",
        ", --allow-metrics=false",
    ] {
        let unknown = triton_behind(args, by_number);
        assert!(
            mesh_auth_on(&unknown, &[("deny-anonymous", deny.as_str())]).is_empty(),
            "{args}"
        );
    }
}

#[test]
fn a_policy_need_not_guard_teis_prometheus_port_either() {
    // TEI's own image serves its API on 80 and Prometheus on 9000, or on `PROMETHEUS_PORT`.
    let tei = |fields: &str, metrics_target: i32| {
        let server = server("ghcr.io/huggingface/text-embeddings-inference:1.5", fields);
        format!(
            "{server}---\napiVersion: v1\nkind: Service\nmetadata: {{name: tei, namespace: ml}}\nspec: {{type: LoadBalancer, selector: {{app: chat}}, ports: [{{port: 80, targetPort: 80}}, {{port: 9000, targetPort: {metrics_target}}}]}}\n"
        )
    };
    let deny = deny_anonymous_on(&["80"]);
    let guarded = |yaml: &str| !mesh_auth_on(yaml, &[("deny-anonymous", deny.as_str())]).is_empty();
    assert!(guarded(&tei("", 9000)));
    let moved = ", env: [{name: PROMETHEUS_PORT, value: \"9100\"}]";
    assert!(!guarded(&tei(moved, 9000)), "9000 may be anything now");
    assert!(guarded(&tei(moved, 9100)));
}

#[test]
fn a_ray_services_pods_belong_to_it_whatever_their_serve_label_says() {
    // KubeRay's `ray.io/serve` is "true" or "false" (whether the pod takes Serve traffic), not
    // the RayService's name: the pods belong to it through their RayCluster.
    let inv = inventory(
        r#"
apiVersion: ray.io/v1
kind: RayService
metadata: {name: summarizer, namespace: ml}
spec:
  rayClusterConfig:
    headGroupSpec:
      template:
        spec:
          containers: [{name: ray-head, image: "rayproject/ray-ml:2.9.0"}]
---
apiVersion: ray.io/v1
kind: RayCluster
metadata:
  name: summarizer-raycluster-x7k2p
  namespace: ml
  ownerReferences: [{apiVersion: ray.io/v1, kind: RayService, name: summarizer, controller: true, uid: a}]
---
apiVersion: v1
kind: Pod
metadata:
  name: summarizer-raycluster-x7k2p-head-abcde
  namespace: ml
  labels: {ray.io/serve: "true", ray.io/node-type: head}
  ownerReferences: [{apiVersion: ray.io/v1, kind: RayCluster, name: summarizer-raycluster-x7k2p, controller: true, uid: b}]
spec:
  containers: [{name: ray-head, image: "rayproject/ray-ml:2.9.0", resources: {limits: {nvidia.com/gpu: "1"}}}]
status: {phase: Running}
"#,
    );
    let ids: Vec<_> = inv.endpoints.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["RayService/ml/summarizer"]);
    let pods: Vec<_> = inv.endpoints[0]
        .pods
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(pods, ["summarizer-raycluster-x7k2p-head-abcde"]);
}
