//! EXP: who can reach a model server, through what, and what they can do once there.

use hangar_core::inventory::{
    AuthKind, Endpoint, Exposure, ExposureKind, Inventory, Runtime, serving_runtime_container,
};
use hangar_core::workload::PodTemplate;
use hangar_core::{KubeObject, Policy, Severity, Snapshot};
use k8s_openapi::api::core::v1::{Container, EnvVar, Service};
use k8s_openapi::api::networking::v1::Ingress;
use serde_json::Value;

use crate::check::{Check, Family, Finding, Run, always};

pub(crate) const CHECKS: &[Check] = &[
    Check {
        id: "EXP-001",
        family: Family::Exposure,
        title: "Endpoint reachable from outside the cluster with no authentication on the path",
        severity: Severity::Critical,
        rationale: "Anyone who can reach the address can use the model: run up GPU cost, extract the model through the API, or feed it prompts that reach regulated data, and nothing records who did.",
        remediation: "Put authentication on the path: route through the Hangar gateway or an Envoy Gateway SecurityPolicy (jwt, apiKeyAuth, oidc), Istio RequestAuthentication + AuthorizationPolicy, or ingress-nginx `auth-url` with oauth2-proxy. If the endpoint need not be public, make the Service ClusterIP (or an internal load balancer) and drop the route.",
        run: Run::Endpoint(unauthenticated_external),
        applies: always,
    },
    Check {
        id: "EXP-002",
        family: Family::Exposure,
        title: "Ollama served through a Service or route with no authentication",
        severity: Severity::High,
        rationale: "Ollama has no authentication of its own, and its image binds every interface (`OLLAMA_HOST=0.0.0.0`): whoever reaches the port can generate, pull, push, copy and delete models.",
        remediation: "Put an authenticating proxy in front (oauth2-proxy or kube-rbac-proxy sidecar with Ollama bound to `OLLAMA_HOST=127.0.0.1:11434`, or the Hangar gateway), and restrict ingress to it with a NetworkPolicy.",
        run: Run::Endpoint(ollama_without_auth),
        applies: always,
    },
    Check {
        id: "EXP-003",
        family: Family::Exposure,
        title: "vLLM runs without an API key and without an authenticating layer",
        severity: Severity::High,
        rationale: "Without `--api-key` and with no gateway, sidecar or mesh policy, every pod that can reach the server can call it; the server cannot tell tenants apart or refuse anyone.",
        remediation: "Route callers through the Hangar gateway (with a NetworkPolicy that admits only the gateway's pods, so nothing walks around it) or another authenticating layer; at minimum set `VLLM_API_KEY` from a Secret (`valueFrom.secretKeyRef`).",
        run: Run::Endpoint(vllm_without_key),
        applies: always,
    },
    Check {
        id: "EXP-004",
        family: Family::Exposure,
        title: "vLLM's API key is its only protection, yet non-/v1 routes are forwarded",
        severity: Severity::Medium,
        rationale: "vLLM checks its API key on `/v1` routes only: `/invocations`, `/tokenize`, `/detokenize`, `/pause` and (in dev mode) `/update_weights` answer without it, so a route or Service that forwards `/` leaves them open.",
        remediation: "Route only `/v1/` prefixes to the server (Ingress path or HTTPRoute match `/v1/`), or put an authenticating gateway in front that answers 404 outside the inference API.",
        run: Run::Endpoint(vllm_key_only_guards_v1),
        applies: always,
    },
    Check {
        id: "EXP-005",
        family: Family::Exposure,
        title: "vLLM development mode is on (VLLM_SERVER_DEV_MODE)",
        severity: Severity::Critical,
        rationale: "Development mode registers `/collective_rpc`, `/reset_prefix_cache`, `/sleep`, `/wake_up` and similar routes that let any caller run remote procedure calls on the workers or take the model offline.",
        remediation: "Remove `VLLM_SERVER_DEV_MODE` (or set it to `0`) outside local development.",
        run: Run::Endpoint(vllm_dev_mode),
        applies: always,
    },
    Check {
        id: "EXP-006",
        family: Family::Exposure,
        title: "vLLM runtime LoRA updating is enabled",
        severity: Severity::High,
        rationale: "`VLLM_ALLOW_RUNTIME_LORA_UPDATING` opens `/v1/load_lora_adapter` and `/v1/unload_lora_adapter`: any caller can load adapter weights from a path or hub repository of its choosing and change what the model answers.",
        remediation: "Unset `VLLM_ALLOW_RUNTIME_LORA_UPDATING`; declare adapters at start-up with `--lora-modules` and ship changes through the normal deployment path.",
        run: Run::Endpoint(runtime_lora_updating),
        applies: always,
    },
    Check {
        id: "EXP-007",
        family: Family::Exposure,
        title: "Triton loads models on demand without a restricted model-repository API",
        severity: Severity::High,
        rationale: "With `--model-control-mode=explicit` or `poll`, Triton loads models at runtime; NVIDIA warns this can lead to arbitrary code execution (a Python-backend model is code), so the model-repository API must be reserved to trusted callers.",
        remediation: "Use `--model-control-mode=none` in production, or restrict the API on every enabled protocol: `--http-restricted-api=model-repository:<header>=<secret>` and `--grpc-restricted-protocol=model-repository:<header>=<secret>` (or `--allow-grpc=false`). For `poll`, also mount the model repository read-only.",
        run: Run::Endpoint(triton_model_control),
        applies: always,
    },
    Check {
        id: "EXP-008",
        family: Family::Exposure,
        title: "Management, metrics or dashboard port reachable from outside the cluster",
        severity: Severity::High,
        rationale: "Management APIs register and delete models (TorchServe 8081 can load a model archive from a URL), the Ray dashboard (8265) and client port (10001) run arbitrary jobs, and metrics ports reveal models, traffic and errors.",
        remediation: "Expose only the inference port on external Services and routes; serve management and metrics on a separate ClusterIP Service reachable only from the operators' and Prometheus namespaces.",
        run: Run::Endpoint(admin_ports_exposed),
        applies: always,
    },
    Check {
        id: "EXP-009",
        family: Family::Exposure,
        title: "External route to the endpoint without TLS",
        severity: Severity::High,
        rationale: "Prompts, completions and API keys cross the network in clear text and can be read or altered on the way (PCI DSS 4.2.1 requires strong cryptography in transit).",
        remediation: "Terminate TLS on the route: `spec.tls` on the Ingress, an HTTPS listener on the Gateway, a certificate annotation on the load balancer, or `--ssl-certfile`/`--ssl-keyfile` on the server.",
        run: Run::Endpoint(no_tls),
        applies: always,
    },
    Check {
        id: "EXP-010",
        family: Family::Exposure,
        title: "Server trusts remote code from the model repository",
        severity: Severity::High,
        rationale: "`--trust-remote-code` runs the Python files shipped with the model at load time, with the server's credentials and GPU access: whoever controls the repository (or a hub account) controls the pod.",
        remediation: "Drop `--trust-remote-code`. If the architecture needs it, pin the exact commit with `--revision`/`--code-revision`, review the code, and mirror the repository to an approved registry.",
        run: Run::Endpoint(trust_remote_code),
        applies: always,
    },
    Check {
        id: "EXP-011",
        family: Family::Exposure,
        title: "Multimodal model served by vLLM without a media-domain allowlist",
        severity: Severity::Medium,
        rationale: "A multimodal model fetches `image_url`, `video_url` and `audio_url` from wherever the prompt says, so a caller can make the server request internal addresses or the cloud metadata service (SSRF).",
        remediation: "Set `--allowed-media-domains` to the domains media may come from (vLLM 0.11 or later), or accept only base64 `data:` URLs at the gateway; also deny egress to 169.254.169.254 (NET-003).",
        run: Run::Endpoint(multimodal_without_media_allowlist),
        applies: always,
    },
    Check {
        id: "EXP-012",
        family: Family::Exposure,
        title: "Profiler or tokenizer-info endpoint enabled",
        severity: Severity::Medium,
        rationale: "The profiler (`VLLM_TORCH_PROFILER_DIR`, `VLLM_TORCH_CUDA_PROFILE`, `--profiler-config`) lets any caller start traces that slow the server and fill its disk; `--enable-tokenizer-info-endpoint` serves the tokenizer configuration and chat template.",
        remediation: "Remove the profiler settings and `--enable-tokenizer-info-endpoint` outside development, or block `/start_profile`, `/stop_profile` and `/tokenizer_info` at the gateway.",
        run: Run::Endpoint(debug_endpoints),
        applies: always,
    },
    Check {
        id: "EXP-013",
        family: Family::Exposure,
        title: "Externally exposed endpoint with no rate limit",
        severity: Severity::Medium,
        rationale: "Without a request limit one caller can exhaust the GPUs for everyone, run up cost, or extract the model through volume (OWASP LLM10 unbounded consumption).",
        remediation: "Limit every external path: the Hangar gateway's per-tenant token buckets, an Envoy Gateway BackendTrafficPolicy with `rateLimit`, ingress-nginx `limit-rps`/`limit-rpm`, a Kong `rate-limiting` plugin or a Traefik `rateLimit` middleware. A bare load balancer cannot limit: route it through one of these.",
        run: Run::Endpoint(no_rate_limit),
        applies: always,
    },
    Check {
        id: "EXP-014",
        family: Family::Exposure,
        title: "Multi-node collective or KV-transfer port exposed by a Service",
        severity: Severity::Medium,
        rationale: "torch.distributed (29500), KV-cache transfer (vLLM 14579, NIXL 5600) and Ray GCS (6379) have no authentication or encryption and are meant for an isolated network; a peer that connects can read tensors or crash the group.",
        remediation: "Remove these ports from Services (multi-node pods find each other through a headless Service or LeaderWorkerSet); restrict them with a NetworkPolicy to the endpoint's own pods, ideally on a secondary network.",
        run: Run::Endpoint(internal_ports_exposed),
        applies: always,
    },
    Check {
        id: "EXP-015",
        family: Family::Exposure,
        title: "Hangar gateway replicas each grant a tenant its whole limits",
        severity: Severity::Medium,
        rationale: "Without `limits.shared` each gateway replica counts a tenant's requests and tokens per minute and its requests in flight on its own (with `concurrency: false`, the requests in flight), so with N replicas a tenant gets up to N times its limits, unevenly (HTTP/2 clients stay on one replica), and more as an autoscaler adds replicas (OWASP LLM10 unbounded consumption).",
        remediation: "Keep the limits in Redis with `limits.shared` (`url`, and `passwordFile` from a Secret; `concurrency` left on) so every replica counts against one limit per tenant; or run one replica. Dividing each limit by the replica count only holds while the count and the balancing stay fixed.",
        run: Run::Cluster(limits_per_replica),
        applies: always,
    },
];

/// EXP-015: once per gateway, at the field that sets its replica count.
fn limits_per_replica(_: &Snapshot, inventory: &Inventory, _: &Policy) -> Vec<Finding> {
    let mut seen = std::collections::BTreeSet::new();
    let mut findings = Vec::new();
    let fronts = inventory.endpoints.iter().flat_map(|e| &e.gateways);
    for front in fronts {
        let Some(rates) = &front.limits_per_replica else {
            continue;
        };
        if !seen.insert(front.gateway.to_string()) {
            continue;
        }
        let tenants: Vec<String> = rates.tenants.iter().map(|t| format!("`{t}`")).collect();
        let (whose, who) = match tenants.len() {
            1 => ("tenant", "it gets its limits"),
            _ => ("tenants", "each gets its limits"),
        };
        let limits: Vec<String> = rates.limits.iter().map(|l| format!("`{l}`")).collect();
        let message = format!(
            "the Hangar gateway `{}` may run {} and counts the {} of {whose} {} in each replica ({}), so {who} once per replica",
            front.gateway,
            rates.replicas,
            limits.join(", "),
            tenants.join(", "),
            rates.why
        );
        let field = Some(rates.field.clone());
        findings.push(Finding::on(
            "EXP-015",
            rates.source.clone(),
            &rates.origin,
            field,
            message,
        ));
    }
    findings
}

// ---------------------------------------------------------------------------------------------
// Reading containers.

/// A container's command and args as words (quotes stripped), each with the field it came from,
/// so that `sh -c "vllm serve … --api-key x"` reads like a list of arguments.
fn words(c: &Container) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (field, list) in [("command", &c.command), ("args", &c.args)] {
        for item in list.iter().flatten() {
            for word in item.split_whitespace() {
                let word = word.trim_matches(|ch| ch == '"' || ch == '\'');
                if !word.is_empty() {
                    out.push((field, word.to_owned()));
                }
            }
        }
    }
    out
}

/// One occurrence of a flag: the field it is in, and its value (`--f=v` or `--f v`).
struct Flag<'a> {
    field: &'static str,
    value: Option<&'a str>,
}

/// Every occurrence of any of `names`.
fn flags<'a>(words: &'a [(&'static str, String)], names: &[&str]) -> Vec<Flag<'a>> {
    let mut out = Vec::new();
    for (i, (field, word)) in words.iter().enumerate() {
        for name in names {
            if word == name {
                let value = words
                    .get(i + 1)
                    .map(|(_, v)| v.as_str())
                    .filter(|v| !v.starts_with('-'));
                out.push(Flag { field, value });
            } else if let Some(value) = word.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
                out.push(Flag {
                    field,
                    value: Some(value),
                });
            }
        }
    }
    out
}

/// The first occurrence of a boolean switch that is on (`--x`, `--x=true`), with its field.
fn switch_on(words: &[(&'static str, String)], names: &[&str]) -> Option<(&'static str, String)> {
    words.iter().find_map(|(field, word)| {
        let on = names.iter().any(|name| {
            word == name
                || word
                    .strip_prefix(name)
                    .and_then(|r| r.strip_prefix('='))
                    .is_some_and(truthy)
        });
        on.then(|| (*field, word.clone()))
    })
}

/// Whether a setting's value turns something on (`1`, `true`, `yes`, `on`).
fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// Whether a setting's value is anything but off or empty.
fn not_off(value: &str) -> bool {
    !matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "" | "0" | "false" | "no" | "off" | "none"
    )
}

/// An environment variable with its index, for the field path.
fn env<'a>(c: &'a Container, name: &str) -> Option<(usize, &'a EnvVar)> {
    c.env
        .iter()
        .flatten()
        .enumerate()
        .find(|(_, e)| e.name == name)
}

/// The literal value of an environment variable, with its field path.
fn env_value<'a>(path: &str, c: &'a Container, name: &str) -> Option<(String, &'a str)> {
    let (i, var) = env(c, name)?;
    Some((format!("{path}.env[{i}]"), var.value.as_deref()?))
}

/// The container that runs the model server: the first main container whose image or command
/// names the endpoint's runtime, else the first main container.
fn server_container(endpoint: &Endpoint) -> Option<(&PodTemplate, String, &Container)> {
    let mut main = endpoint
        .containers()
        .filter(|(_, path, _)| !path.contains("initContainers"));
    let first = main.next()?;
    let runs_server = |c: &Container| {
        let image = c.image.as_deref().unwrap_or_default();
        hangar_core::inventory::runtime_from_image(image) == Some(endpoint.runtime)
            || hangar_core::inventory::runtime_from_command(&hangar_core::inventory::command_line(
                c,
            ))
            .is_some_and(|(_, r)| r == endpoint.runtime)
    };
    if runs_server(first.2) {
        return Some(first);
    }
    Some(main.find(|(_, _, c)| runs_server(c)).unwrap_or(first))
}

// ---------------------------------------------------------------------------------------------
// Describing exposures.

fn kind_name(kind: ExposureKind) -> &'static str {
    match kind {
        ExposureKind::ClusterIp => "ClusterIP Service",
        ExposureKind::NodePort => "NodePort Service",
        ExposureKind::LoadBalancer => "LoadBalancer Service",
        ExposureKind::ExternalIp => "Service with externalIPs",
        ExposureKind::Ingress => "Ingress",
        ExposureKind::HttpRoute => "HTTPRoute",
        ExposureKind::InferencePool => "InferencePool",
        ExposureKind::OperatorRoute => "operator-managed route",
    }
}

/// The field of the exposing object that makes it reachable.
fn exposing_field(kind: ExposureKind) -> &'static str {
    match kind {
        ExposureKind::NodePort | ExposureKind::LoadBalancer => "spec.type",
        ExposureKind::ExternalIp => "spec.externalIPs",
        ExposureKind::ClusterIp => "spec.ports",
        ExposureKind::Ingress | ExposureKind::HttpRoute => "spec.rules",
        ExposureKind::InferencePool => "spec.selector",
        // KServe: `networking.kserve.io/visibility: cluster-local` keeps it internal.
        ExposureKind::OperatorRoute => "metadata.labels",
    }
}

fn is_service(kind: ExposureKind) -> bool {
    matches!(
        kind,
        ExposureKind::ClusterIp
            | ExposureKind::NodePort
            | ExposureKind::LoadBalancer
            | ExposureKind::ExternalIp
    )
}

/// How messages name an exposure (Ingress `Ingress/ml/chat`), with why the path is counted when
/// the input cannot show it works (a route across namespaces and no ReferenceGrant read).
fn describe(exposure: &Exposure) -> String {
    let name = format!("{} `{}`", kind_name(exposure.kind), exposure.via);
    match &exposure.unconfirmed {
        Some(why) => format!("{name} ({why})"),
        None => name,
    }
}

fn list(exposures: &[&Exposure]) -> String {
    exposures
        .iter()
        .map(|e| describe(e))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A finding located on the object that exposes the endpoint.
fn on_exposure(
    check: &'static str,
    endpoint: &Endpoint,
    exposure: &Exposure,
    field: &str,
    message: String,
) -> Finding {
    Finding {
        endpoint: Some(endpoint.id.clone()),
        ..Finding::on(
            check,
            exposure.via.clone(),
            &exposure.origin,
            Some(field.to_owned()),
            message,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// EXP-001

fn unauthenticated_external(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    if !endpoint.auth.is_empty() {
        return Vec::new();
    }
    endpoint
        .exposure
        .iter()
        .filter(|e| e.external && e.auth.is_empty())
        .map(|e| {
            on_exposure(
                "EXP-001",
                endpoint,
                e,
                exposing_field(e.kind),
                format!(
                    "{} makes the endpoint reachable from outside the cluster (paths: {}) and nothing on that path authenticates callers",
                    describe(e),
                    e.paths.join(", ")
                ),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// EXP-002

fn ollama_without_auth(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    if endpoint.runtime != Runtime::Ollama {
        return Vec::new();
    }
    // Ollama reads no API key, so only a layer in front of it counts.
    if endpoint
        .auth
        .iter()
        .any(|a| a.kind != AuthKind::ServerApiKey)
    {
        return Vec::new();
    }
    let open: Vec<&Exposure> = endpoint
        .exposure
        .iter()
        .filter(|e| e.auth.is_empty())
        .collect();
    if open.is_empty() {
        return Vec::new();
    }
    let Some((template, path, _)) = server_container(endpoint) else {
        return Vec::new();
    };
    let mut message = format!(
        "Ollama has no authentication and is reachable through {}",
        list(&open)
    );
    let mut field = path.clone();
    if let Some((env_field, host)) = endpoint
        .containers()
        .find_map(|(_, p, c)| env_value(&p, c, "OLLAMA_HOST"))
        .filter(|(_, host)| {
            let host = host.trim_start_matches("http://");
            host.starts_with("0.0.0.0") || host.starts_with("[::]") || host.starts_with(':')
        })
    {
        message.push_str(&format!(
            "; `OLLAMA_HOST={host}` binds it to every interface"
        ));
        field = env_field;
    }
    vec![Finding::on_template(
        "EXP-002", endpoint, template, field, message,
    )]
}

// ---------------------------------------------------------------------------------------------
// EXP-003

/// Whether the container configures vLLM's own key (`--api-key` or `VLLM_API_KEY`).
fn has_vllm_key(c: &Container) -> bool {
    !flags(&words(c), &["--api-key"]).is_empty() || env(c, "VLLM_API_KEY").is_some()
}

fn vllm_without_key(snapshot: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    if endpoint.runtime != Runtime::Vllm {
        return Vec::new();
    }
    // Core counts a generic `API_KEY` env as the server's key; vLLM reads only these two.
    let keyed = endpoint.containers().any(|(_, _, c)| has_vllm_key(c))
        || serving_runtime_container(snapshot, endpoint).is_some_and(|(_, c)| has_vllm_key(&c));
    let other_auth = endpoint
        .auth
        .iter()
        .any(|a| a.kind != AuthKind::ServerApiKey)
        || endpoint.exposure.iter().any(|e| !e.auth.is_empty());
    if keyed || other_auth {
        return Vec::new();
    }
    let Some((template, path, container)) = server_container(endpoint) else {
        return Vec::new();
    };
    let reach = if endpoint.exposure.is_empty() {
        "no Service selects it yet, but any pod can call it by address".to_owned()
    } else {
        format!(
            "reachable through {}",
            list(&endpoint.exposure.iter().collect::<Vec<_>>())
        )
    };
    // Only a gateway nothing can walk around counts as authentication (see `endpoint.auth`).
    let message = match endpoint.gateways.first() {
        Some(front) => format!(
            "container `{}` runs vLLM without `--api-key` or `VLLM_API_KEY`; the Hangar gateway `{}` routes to it, but {}; {reach}",
            container.name,
            front.gateway,
            front.bypass.as_deref().unwrap_or("it can be bypassed"),
        ),
        None => format!(
            "container `{}` runs vLLM without `--api-key` or `VLLM_API_KEY` and nothing in front of it authenticates; {reach}",
            container.name
        ),
    };
    vec![Finding::on_template(
        "EXP-003",
        endpoint,
        template,
        format!("{path}.args"),
        message,
    )]
}

// ---------------------------------------------------------------------------------------------
// EXP-004

/// Whether a routed path stays inside vLLM's `/v1` API (`/v1`, `/v1/`, `/v1/chat`…).
fn under_v1(path: &str) -> bool {
    path.strip_prefix("/v1").is_some_and(|rest| {
        rest.chars()
            .next()
            .is_none_or(|c| !c.is_ascii_alphanumeric())
    })
}

fn vllm_key_only_guards_v1(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    if endpoint.runtime != Runtime::Vllm
        || endpoint.auth.is_empty()
        || !endpoint
            .auth
            .iter()
            .all(|a| a.kind == AuthKind::ServerApiKey)
    {
        return Vec::new();
    }
    let gaps: Vec<String> = endpoint
        .exposure
        .iter()
        .filter(|e| e.auth.is_empty())
        .filter_map(|e| {
            let path = e.paths.iter().find(|p| !under_v1(p))?;
            Some(format!("{} forwards `{path}`", describe(e)))
        })
        .collect();
    if gaps.is_empty() {
        return Vec::new();
    }
    let Some((template, path, _)) = endpoint
        .containers()
        .find(|(_, _, c)| has_vllm_key(c))
        .or_else(|| server_container(endpoint))
    else {
        return Vec::new();
    };
    vec![Finding::on_template(
        "EXP-004",
        endpoint,
        template,
        format!("{path}.args"),
        format!(
            "vLLM's API key is the only protection and guards `/v1` routes only, but {}: `/invocations`, `/tokenize`, `/pause` and the like answer without the key",
            gaps.join("; ")
        ),
    )]
}

// ---------------------------------------------------------------------------------------------
// EXP-005, EXP-006

fn vllm_dev_mode(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    env_findings(endpoint, "EXP-005", "VLLM_SERVER_DEV_MODE", not_off, |v| {
        format!(
            "`VLLM_SERVER_DEV_MODE={v}` registers the development routes (`/collective_rpc`, `/sleep`, `/reset_prefix_cache`…)"
        )
    })
}

fn runtime_lora_updating(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    env_findings(
        endpoint,
        "EXP-006",
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING",
        truthy,
        |v| {
            format!(
                "`VLLM_ALLOW_RUNTIME_LORA_UPDATING={v}` lets callers load and unload LoRA adapters through `/v1/load_lora_adapter`"
            )
        },
    )
}

/// One finding per container whose literal env `name` satisfies `on`.
fn env_findings(
    endpoint: &Endpoint,
    check: &'static str,
    name: &str,
    on: fn(&str) -> bool,
    message: impl Fn(&str) -> String,
) -> Vec<Finding> {
    endpoint
        .containers()
        .filter_map(|(template, path, c)| {
            let (field, value) = env_value(&path, c, name)?;
            on(value)
                .then(|| Finding::on_template(check, endpoint, template, field, message(value)))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// EXP-007

/// Whether a `--http-restricted-api`/`--grpc-restricted-protocol` value (`apis:key=value`)
/// covers the model-repository API.
fn restricts_model_repository(value: Option<&str>) -> bool {
    let Some(value) = value else {
        return false;
    };
    let (apis, secret) = value.split_once(':').unwrap_or((value, ""));
    secret.contains('=') && apis.split(',').any(|a| a.trim() == "model-repository")
}

fn triton_model_control(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (template, path, c) in endpoint.containers() {
        let words = words(c);
        // getopt accepts the unambiguous `--model-control` for `--model-control-mode`.
        let Some((field, mode)) = flags(&words, &["--model-control-mode", "--model-control"])
            .into_iter()
            .find_map(|f| {
                let mode = f.value?.to_ascii_lowercase();
                matches!(mode.as_str(), "explicit" | "poll").then_some((f.field, mode))
            })
        else {
            continue;
        };
        let enabled = |switch: &str| {
            flags(&words, &[switch])
                .iter()
                .all(|f| f.value.is_none_or(|v| !matches!(v, "false" | "0")))
        };
        let mut open = Vec::new();
        if enabled("--allow-http")
            && !flags(&words, &["--http-restricted-api"])
                .iter()
                .any(|f| restricts_model_repository(f.value))
        {
            open.push("HTTP (`--http-restricted-api`)");
        }
        if enabled("--allow-grpc")
            && !flags(&words, &["--grpc-restricted-protocol"])
                .iter()
                .any(|f| restricts_model_repository(f.value))
        {
            open.push("gRPC (`--grpc-restricted-protocol`)");
        }
        if open.is_empty() {
            continue;
        }
        findings.push(Finding::on_template(
            "EXP-007",
            endpoint,
            template,
            format!("{path}.{field}"),
            format!(
                "`--model-control-mode={mode}` lets clients load and unload models, and the model-repository API is not restricted on {}",
                open.join(" or ")
            ),
        ));
    }
    findings
}

// ---------------------------------------------------------------------------------------------
// EXP-008

/// Container ports that serve management, metrics or dashboards, and the runtime they belong
/// to (`None`: whatever the runtime).
const ADMIN_PORTS: &[(i32, &str, Option<Runtime>)] = &[
    (8081, "TorchServe management API", Some(Runtime::Torchserve)),
    (8082, "TorchServe metrics", Some(Runtime::Torchserve)),
    (
        7071,
        "TorchServe gRPC management API",
        Some(Runtime::Torchserve),
    ),
    (8002, "Triton metrics", Some(Runtime::Triton)),
    (8265, "Ray dashboard and job submission API", None),
    (10001, "Ray client server", None),
];

fn admin_ports_exposed(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    endpoint
        .exposure
        .iter()
        .filter(|e| e.external)
        .filter_map(|e| {
            let ports: Vec<String> = e
                .ports
                .iter()
                .filter_map(|port| {
                    ADMIN_PORTS
                        .iter()
                        .find(|(p, _, runtime)| {
                            p == port && runtime.is_none_or(|r| r == endpoint.runtime)
                        })
                        .map(|(p, what, _)| format!("{p} ({what})"))
                })
                .collect();
            // A route publishes the port its backend names in its rules.
            let field = if is_service(e.kind) {
                "spec.ports"
            } else {
                exposing_field(e.kind)
            };
            (!ports.is_empty()).then(|| {
                on_exposure(
                    "EXP-008",
                    endpoint,
                    e,
                    field,
                    format!(
                        "{} exposes port {} outside the cluster",
                        describe(e),
                        ports.join(", ")
                    ),
                )
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// EXP-009

/// Server flags that make the server itself speak TLS.
const SERVER_TLS_FLAGS: &[&str] = &[
    "--ssl-certfile",
    "--ssl-keyfile",
    "--ssl-cert-file",
    "--ssl-key-file",
    "--grpc-use-ssl",
];

/// Service annotations with which cloud load balancers terminate TLS.
const LB_TLS_ANNOTATIONS: &[&str] = &[
    "service.beta.kubernetes.io/aws-load-balancer-ssl-cert",
    "service.beta.kubernetes.io/do-loadbalancer-certificate-id",
    "service.beta.kubernetes.io/oci-load-balancer-ssl-ports",
];

fn no_tls(snapshot: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    let server_tls = endpoint
        .containers()
        .any(|(_, _, c)| !flags(&words(c), SERVER_TLS_FLAGS).is_empty());
    let mut findings = Vec::new();
    for e in endpoint.exposure.iter().filter(|e| e.external) {
        let (field, message) = match e.kind {
            ExposureKind::Ingress if e.tls == Some(false) => (
                "spec.tls",
                format!(
                    "{} serves its hosts over plain HTTP: no `spec.tls` entry covers them",
                    describe(e)
                ),
            ),
            ExposureKind::HttpRoute if e.tls == Some(false) => (
                "spec.parentRefs",
                format!(
                    "{} attaches to a Gateway listener that is not HTTPS or TLS",
                    describe(e)
                ),
            ),
            ExposureKind::LoadBalancer | ExposureKind::NodePort | ExposureKind::ExternalIp
                if !server_tls =>
            {
                let lb_tls = snapshot
                    .find::<Service>(&e.via.namespace, &e.via.name)
                    .is_some_and(|s| {
                        LB_TLS_ANNOTATIONS
                            .iter()
                            .any(|a| s.object.annotation(a).is_some())
                    });
                if lb_tls {
                    continue;
                }
                (
                    "spec.ports",
                    format!(
                        "{} forwards plain TCP to a server started without `--ssl-certfile`/`--ssl-keyfile`, and no load-balancer certificate is configured",
                        describe(e)
                    ),
                )
            }
            _ => continue,
        };
        findings.push(on_exposure("EXP-009", endpoint, e, field, message));
    }
    findings
}

// ---------------------------------------------------------------------------------------------
// EXP-010

fn trust_remote_code(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (template, path, c) in endpoint.containers() {
        let words = words(c);
        let found = switch_on(&words, &["--trust-remote-code", "--trust_remote_code"])
            .map(|(field, word)| (format!("{path}.{field}"), format!("`{word}`")))
            .or_else(|| {
                // TGI reads its flags from the environment too.
                env_value(&path, c, "TRUST_REMOTE_CODE")
                    .filter(|(_, v)| truthy(v))
                    .map(|(field, v)| (field, format!("`TRUST_REMOTE_CODE={v}`")))
            });
        if let Some((field, setting)) = found {
            let model = endpoint
                .model
                .source
                .as_deref()
                .or(endpoint.model.name.as_deref())
                .map(|m| format!(" from `{m}`"))
                .unwrap_or_default();
            findings.push(Finding::on_template(
                "EXP-010",
                endpoint,
                template,
                field,
                format!(
                    "container `{}` sets {setting}: Python shipped with the model{model} runs inside the server",
                    c.name
                ),
            ));
        }
    }
    findings
}

// ---------------------------------------------------------------------------------------------
// EXP-011

/// Whole words (split on anything but letters and digits) that mark a multimodal model.
const MULTIMODAL_WORDS: &[&str] = &["vl", "vlm", "vision", "omni", "multimodal", "audio"];
/// Word prefixes of multimodal model families.
const MULTIMODAL_PREFIXES: &[&str] = &[
    "llava",
    "idefics",
    "pixtral",
    "paligemma",
    "internvl",
    "molmo",
    "fuyu",
    "mllama",
    "ultravox",
    "cogvlm",
    "smolvlm",
    "blip",
];
/// Fragments that span word boundaries (`MiniCPM-V`, `GLM-4V`) or families that take images
/// without saying so in the name.
const MULTIMODAL_FRAGMENTS: &[&str] = &[
    "minicpm-v",
    "minicpm-o",
    "glm-4v",
    "glm-4.1v",
    "glm-4.5v",
    "llama-4",
    "mistral-small-3.1",
    "mistral-small-3.2",
];

/// Whether a model name or source names a model that accepts images, video or audio.
fn is_multimodal(model: &str) -> bool {
    let lower = model.to_ascii_lowercase();
    if MULTIMODAL_FRAGMENTS.iter().any(|f| lower.contains(f)) {
        return true;
    }
    lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .any(|w| {
            MULTIMODAL_WORDS.contains(&w)
                || MULTIMODAL_PREFIXES.iter().any(|p| w.starts_with(p))
                || (w.len() > 3 && (w.ends_with("vl") || w.ends_with("vlm")))
        })
}

fn multimodal_without_media_allowlist(
    _: &Snapshot,
    endpoint: &Endpoint,
    _: &Policy,
) -> Vec<Finding> {
    if endpoint.runtime != Runtime::Vllm {
        return Vec::new();
    }
    let Some(model) = [&endpoint.model.name, &endpoint.model.source]
        .into_iter()
        .flatten()
        .find(|m| is_multimodal(m))
    else {
        return Vec::new();
    };
    if endpoint
        .containers()
        .any(|(_, _, c)| !flags(&words(c), &["--allowed-media-domains"]).is_empty())
    {
        return Vec::new();
    }
    let Some((template, path, _)) = server_container(endpoint) else {
        return Vec::new();
    };
    vec![Finding::on_template(
        "EXP-011",
        endpoint,
        template,
        format!("{path}.args"),
        format!(
            "model `{model}` accepts media URLs and vLLM runs without `--allowed-media-domains`: the server fetches any URL a prompt names"
        ),
    )]
}

// ---------------------------------------------------------------------------------------------
// EXP-012

fn debug_endpoints(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (template, path, c) in endpoint.containers() {
        let mut found: Vec<(String, String)> = Vec::new();
        if let Some((i, var)) = env(c, "VLLM_TORCH_PROFILER_DIR") {
            let value = var.value.as_deref();
            if value.is_none_or(|v| !v.trim().is_empty()) {
                found.push((
                    format!("{path}.env[{i}]"),
                    format!(
                        "`VLLM_TORCH_PROFILER_DIR={}` registers `/start_profile` and `/stop_profile`",
                        value.unwrap_or("<from a reference>")
                    ),
                ));
            }
        }
        if let Some((field, value)) =
            env_value(&path, c, "VLLM_TORCH_CUDA_PROFILE").filter(|(_, v)| truthy(v))
        {
            found.push((
                field,
                format!("`VLLM_TORCH_CUDA_PROFILE={value}` registers `/start_profile` and `/stop_profile`"),
            ));
        }
        let words = words(c);
        if let Some(flag) = flags(&words, &["--profiler-config"]).into_iter().find(|f| {
            f.value
                .is_none_or(|v| !v.to_ascii_lowercase().contains("none"))
        }) {
            found.push((
                format!("{path}.{}", flag.field),
                "`--profiler-config` registers `/start_profile` and `/stop_profile`".to_owned(),
            ));
        }
        if let Some((field, word)) = switch_on(&words, &["--enable-tokenizer-info-endpoint"]) {
            found.push((
                format!("{path}.{field}"),
                format!(
                    "`{word}` serves `/tokenizer_info` (tokenizer configuration and chat template)"
                ),
            ));
        }
        for (field, message) in found {
            findings.push(Finding::on_template(
                "EXP-012",
                endpoint,
                template,
                field,
                format!("container `{}`: {message}", c.name),
            ));
        }
    }
    findings
}

// ---------------------------------------------------------------------------------------------
// EXP-013

/// Ingress annotations that limit request rates.
const RATE_LIMIT_ANNOTATIONS: &[&str] = &[
    "nginx.ingress.kubernetes.io/limit-rps",
    "nginx.ingress.kubernetes.io/limit-rpm",
    "nginx.ingress.kubernetes.io/limit-connections",
    "haproxy.org/rate-limit-requests",
];

/// The rate limit on one exposure, if any, as a short description.
fn rate_limit(snapshot: &Snapshot, exposure: &Exposure) -> Option<String> {
    let namespace = exposure.via.namespace.as_str();
    let annotations = match exposure.kind {
        ExposureKind::Ingress => snapshot
            .find::<Ingress>(&exposure.via.namespace, &exposure.via.name)?
            .object
            .metadata
            .annotations
            .clone(),
        ExposureKind::HttpRoute => {
            let route = snapshot.find_other_ref(&exposure.via)?;
            if let Some(policy) = envoy_rate_limit(snapshot, &route.object) {
                return Some(policy);
            }
            route.object.metadata.annotations.clone()
        }
        _ => return None,
    }
    .unwrap_or_default();
    if let Some(key) = RATE_LIMIT_ANNOTATIONS
        .iter()
        .find(|k| annotations.contains_key(**k))
    {
        return Some(format!("annotation `{key}`"));
    }
    if let Some(plugins) = annotations.get("konghq.com/plugins") {
        for name in plugins.split(',').map(str::trim) {
            let kind = snapshot
                .others
                .iter()
                .find(|o| {
                    matches!(o.object.kind.as_str(), "KongPlugin" | "KongClusterPlugin")
                        && o.object.name() == name
                        && (o.object.kind == "KongClusterPlugin"
                            || o.object.namespace() == namespace)
                })
                .and_then(|o| o.object.str_at("plugin"));
            if kind.unwrap_or(name).contains("rate-limiting") {
                return Some(format!("Kong plugin `{name}`"));
            }
        }
    }
    if let Some(middlewares) = annotations.get("traefik.ingress.kubernetes.io/router.middlewares") {
        let limited = snapshot.others.iter().find(|o| {
            o.object.kind == "Middleware"
                && o.object.get("spec.rateLimit").is_some()
                && middlewares.split(',').any(|m| {
                    let m = m.trim();
                    let m = m.split_once('@').map_or(m, |(n, _)| n);
                    m == format!("{}-{}", o.object.namespace(), o.object.name())
                })
        });
        if let Some(m) = limited {
            return Some(format!("Traefik middleware `{}`", m.object.name()));
        }
    }
    None
}

/// An Envoy Gateway BackendTrafficPolicy with `rateLimit` targeting the route or its Gateway.
fn envoy_rate_limit(
    snapshot: &Snapshot,
    route: &hangar_core::snapshot::DynamicObject,
) -> Option<String> {
    let parents: Vec<(String, String)> = route
        .get("spec.parentRefs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let name = p.get("name")?.as_str()?.to_owned();
            let namespace = p
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or(route.namespace())
                .to_owned();
            Some((namespace, name))
        })
        .collect();
    snapshot
        .others
        .iter()
        .filter(|p| {
            p.object.kind == "BackendTrafficPolicy" && p.object.get("spec.rateLimit").is_some()
        })
        .find(|p| {
            let targets: Vec<&Value> = p
                .object
                .get("spec.targetRefs")
                .and_then(Value::as_array)
                .map(|t| t.iter().collect())
                .or_else(|| p.object.get("spec.targetRef").map(|t| vec![t]))
                .unwrap_or_default();
            targets.iter().any(|t| {
                let name = t.get("name").and_then(Value::as_str).unwrap_or_default();
                let ns = p.object.namespace();
                match t.get("kind").and_then(Value::as_str) {
                    Some("HTTPRoute") => ns == route.namespace() && name == route.name(),
                    Some("Gateway") => parents.iter().any(|(pn, n)| pn == ns && n == name),
                    _ => false,
                }
            })
        })
        .map(|p| format!("BackendTrafficPolicy `{}`", p.object.name()))
}

fn no_rate_limit(snapshot: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    // The Hangar gateway meters every request itself.
    if endpoint
        .auth
        .iter()
        .any(|a| a.kind == AuthKind::HangarGateway)
    {
        return Vec::new();
    }
    let unlimited: Vec<&Exposure> = endpoint
        .exposure
        .iter()
        .filter(|e| e.external && rate_limit(snapshot, e).is_none())
        .collect();
    let Some(first) = unlimited.first() else {
        return Vec::new();
    };
    let field = match first.kind {
        ExposureKind::Ingress | ExposureKind::HttpRoute => "metadata.annotations",
        kind => exposing_field(kind),
    };
    vec![on_exposure(
        "EXP-013",
        endpoint,
        first,
        field,
        format!(
            "no rate limit on the external path{} {}",
            if unlimited.len() > 1 { "s" } else { "" },
            list(&unlimited)
        ),
    )]
}

// ---------------------------------------------------------------------------------------------
// EXP-014

/// Ports of multi-node communication that have no authentication.
const INTERNAL_PORTS: &[(i32, &str)] = &[
    (29500, "torch.distributed / data-parallel master"),
    (14579, "vLLM KV-cache transfer"),
    (5600, "NIXL side channel"),
    (6379, "Ray GCS"),
];

/// Flags and env variables that move those ports.
const PORT_FLAGS: &[(&str, &str)] = &[
    ("--kv-port", "vLLM KV-cache transfer"),
    ("--data-parallel-rpc-port", "data-parallel RPC"),
    ("--master-port", "torch.distributed master"),
    ("--master_port", "torch.distributed master"),
    ("--nccl-port", "NCCL rendezvous"),
];
const PORT_ENV: &[(&str, &str)] = &[
    ("MASTER_PORT", "torch.distributed master"),
    ("VLLM_NIXL_SIDE_CHANNEL_PORT", "NIXL side channel"),
];

/// The collective and KV-transfer ports the endpoint's containers use.
fn internal_ports(endpoint: &Endpoint) -> Vec<(i32, String)> {
    let mut ports: Vec<(i32, String)> = INTERNAL_PORTS
        .iter()
        .map(|(p, what)| (*p, (*what).to_owned()))
        .collect();
    let mut add = |port: Option<i32>, what: &str| {
        if let Some(port) = port.filter(|port| !ports.iter().any(|(p, _)| p == port)) {
            ports.push((port, what.to_owned()));
        }
    };
    for (_, _, c) in endpoint.containers() {
        let words = words(c);
        for (flag, what) in PORT_FLAGS {
            for f in flags(&words, &[flag]) {
                add(f.value.and_then(|v| v.parse().ok()), what);
            }
        }
        for f in flags(&words, &["--dist-init-addr"]) {
            let port = f
                .value
                .and_then(|v| v.rsplit_once(':'))
                .and_then(|(_, p)| p.parse().ok());
            add(port, "SGLang distributed init");
        }
        for (name, what) in PORT_ENV {
            let port = env(c, name)
                .and_then(|(_, e)| e.value.as_deref())
                .and_then(|v| v.trim().parse().ok());
            add(port, what);
        }
    }
    ports
}

fn internal_ports_exposed(snapshot: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    let internal = internal_ports(endpoint);
    let mut findings = Vec::new();
    for e in endpoint.exposure.iter().filter(|e| is_service(e.kind)) {
        // A headless Service only names pods for rendezvous; it opens nothing new.
        let headless = e.kind == ExposureKind::ClusterIp
            && snapshot
                .find::<Service>(&e.via.namespace, &e.via.name)
                .and_then(|s| s.object.spec.as_ref())
                .is_some_and(|s| s.cluster_ip.as_deref() == Some("None"));
        if headless {
            continue;
        }
        let hits: Vec<String> = e
            .ports
            .iter()
            .filter_map(|port| {
                internal
                    .iter()
                    .find(|(p, _)| p == port)
                    .map(|(p, what)| format!("{p} ({what})"))
            })
            .collect();
        if hits.is_empty() {
            continue;
        }
        let reach = if e.external {
            "from outside the cluster"
        } else {
            "to every pod in the cluster"
        };
        findings.push(on_exposure(
            "EXP-014",
            endpoint,
            e,
            "spec.ports",
            format!(
                "{} exposes unauthenticated multi-node port {} {reach}",
                describe(e),
                hits.join(", ")
            ),
        ));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::{hangar_gateway, run, vllm};

    /// A Service named `chat` in `ml` selecting the `vllm()` pods.
    fn service(kind: &str, ports: &str) -> String {
        format!(
            r#"---
apiVersion: v1
kind: Service
metadata: {{name: chat, namespace: ml}}
spec:
  type: {kind}
  selector: {{app: chat}}
  ports: {ports}
"#
        )
    }

    fn lb() -> String {
        service("LoadBalancer", "[{port: 80, targetPort: 8000}]")
    }

    fn cluster_ip() -> String {
        service("ClusterIP", "[{port: 80, targetPort: 8000}]")
    }

    /// An Ingress to the `chat` Service with `path`, optional TLS and annotations.
    fn ingress(path: &str, tls: bool, annotations: &str) -> String {
        let tls = if tls {
            "  tls: [{hosts: [chat.example.com], secretName: chat-tls}]\n"
        } else {
            ""
        };
        format!(
            r#"---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: chat
  namespace: ml
  annotations: {{{annotations}}}
spec:
{tls}  rules:
  - host: chat.example.com
    http:
      paths:
      - path: {path}
        pathType: Prefix
        backend: {{service: {{name: chat, port: {{number: 80}}}}}}
"#
        )
    }

    const API_KEY: &str =
        r#"        args: [--model, meta-llama/Llama-3.1-8B-Instruct, --api-key, "$(KEY)"]"#;

    // EXP-001

    #[test]
    fn exp_001_fires_on_a_public_load_balancer_with_no_auth() {
        let findings = run("EXP-001", &format!("{}{}", vllm(""), lb()));
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].object.kind, "Service");
        assert_eq!(findings[0].field.as_deref(), Some("spec.type"));
        assert_eq!(findings[0].endpoint.as_deref(), Some("Deployment/ml/chat"));
        assert!(
            findings[0]
                .message
                .contains("LoadBalancer Service `Service/ml/chat`")
        );
    }

    #[test]
    fn exp_001_is_quiet_behind_ingress_auth_or_a_server_key_or_inside_the_cluster() {
        let with_auth = ingress(
            "/",
            true,
            "nginx.ingress.kubernetes.io/auth-url: https://auth.example.com/check",
        );
        assert!(
            run(
                "EXP-001",
                &format!("{}{}{with_auth}", vllm(""), cluster_ip())
            )
            .is_empty()
        );
        assert!(run("EXP-001", &format!("{}{}", vllm(API_KEY), lb())).is_empty());
        assert!(run("EXP-001", &format!("{}{}", vllm(""), cluster_ip())).is_empty());
    }

    #[test]
    fn exp_001_reports_each_open_path_on_its_own_object() {
        let yaml = format!("{}{}{}", vllm(""), lb(), ingress("/", true, ""));
        let findings = run("EXP-001", &yaml);
        let kinds: Vec<&str> = findings.iter().map(|f| f.object.kind.as_str()).collect();
        assert_eq!(kinds, ["Service", "Ingress"]);
    }

    #[test]
    fn exp_001_counts_a_route_from_another_namespace_only_when_a_reference_grant_allows_it() {
        let route = r#"---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: chat, namespace: gw}
spec:
  parentRefs: [{name: public}]
  rules: [{backendRefs: [{name: chat, namespace: ml, port: 80}]}]
"#;
        let grant = |service: &str| {
            format!(
                r#"---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: gw-routes, namespace: ml}}
spec:
  from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: gw}}]
  to: [{{group: "", kind: Service, name: {service}}}]
"#
            )
        };
        let base = format!("{}{}{route}", vllm(""), cluster_ip());
        let findings = run("EXP-001", &format!("{base}{}", grant("chat")));
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].object.kind, "HTTPRoute");
        assert!(
            run("EXP-001", &format!("{base}{}", grant("other"))).is_empty(),
            "the gateway refuses a backend no grant allows"
        );
        // No ReferenceGrant in the input at all: the route counts, and the finding says why.
        let findings = run("EXP-001", &base);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0].message.contains("no ReferenceGrant was read"),
            "{}",
            findings[0].message
        );
    }

    /// An Istio AuthorizationPolicy `name` for the `vllm()` pods, with `spec` (flow style, the
    /// selector aside).
    fn authorization_policy(name: &str, spec: &str) -> String {
        format!(
            "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: {name}, namespace: ml}}\nspec: {{selector: {{matchLabels: {{app: chat}}}}, {spec}}}\n"
        )
    }

    #[test]
    fn exp_001_is_quiet_behind_istio_whatever_a_rule_for_another_port_allows() {
        let jwt = authorization_policy(
            "require-jwt",
            r#"rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]"#,
        );
        // A rule admitting anyone on `port`: the metrics port, or vLLM's own.
        let yaml = |port: &str| {
            let open = authorization_policy(
                "scrape",
                &format!(r#"rules: [{{to: [{{operation: {{ports: ["{port}"]}}}}]}}]"#),
            );
            format!("{}{}{jwt}{open}", vllm(""), lb())
        };
        assert!(run("EXP-001", &yaml("9090")).is_empty());
        assert_eq!(run("EXP-001", &yaml("8000")).len(), 1);
    }

    #[test]
    fn exp_001_fires_when_istio_guards_the_servers_port_but_requests_enter_through_a_proxy() {
        // nginx in the pod takes requests on 8080, which the load balancer targets, and passes
        // them to vLLM on 127.0.0.1:8000: Istio sees connections on 8080.
        let proxied = vllm(
            "        args: [--host, 127.0.0.1, --port, \"8000\"]\n      - name: proxy\n        image: nginx:1.27",
        );
        let to_proxy = service("LoadBalancer", "[{port: 80, targetPort: 8080}]");
        let deny_anonymous_on = |ports: &str| {
            authorization_policy(
                "deny-anonymous",
                &format!(
                    r#"action: DENY, rules: [{{from: [{{source: {{notRequestPrincipals: ["*"]}}}}], to: [{{operation: {{ports: [{ports}]}}}}]}}]"#
                ),
            )
        };
        let findings = run(
            "EXP-001",
            &format!("{proxied}{to_proxy}{}", deny_anonymous_on(r#""8000""#)),
        );
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].object.kind, "Service");
        let every_way_in = deny_anonymous_on(r#""8000", "8080""#);
        assert!(run("EXP-001", &format!("{proxied}{to_proxy}{every_way_in}")).is_empty());
    }

    #[test]
    fn exp_001_is_quiet_when_istio_guards_tritons_apis_though_its_metrics_port_is_published() {
        let triton = triton("--log-info=true").replace("app: triton", "app: chat");
        let every_port = service(
            "LoadBalancer",
            "[{name: http, port: 8000, targetPort: 8000}, {name: grpc, port: 8001, targetPort: 8001}, {name: metrics, port: 8002, targetPort: 8002}]",
        );
        let findings = run("EXP-001", &format!("{triton}{every_port}"));
        assert_eq!(findings.len(), 1, "{findings:?}");
        // Requests without a token are refused on HTTP and gRPC inference; 8002 serves only
        // Triton's metrics, no inference API.
        let deny_anonymous = authorization_policy(
            "deny-anonymous",
            r#"action: DENY, rules: [{from: [{source: {notRequestPrincipals: ["*"]}}], to: [{operation: {ports: ["8000", "8001"]}}]}]"#,
        );
        let findings = run("EXP-001", &format!("{triton}{every_port}{deny_anonymous}"));
        assert!(findings.is_empty(), "{findings:?}");
    }

    // EXP-002

    const OLLAMA: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: chat, namespace: ml}
spec:
  template:
    metadata: {labels: {app: chat}}
    spec:
      containers:
      - name: ollama
        image: ollama/ollama:0.5.7
        env: [{name: OLLAMA_HOST, value: "0.0.0.0:11434"}]
"#;

    #[test]
    fn exp_002_fires_on_ollama_behind_a_plain_service_and_names_the_bind_address() {
        let findings = run("EXP-002", &format!("{OLLAMA}{}", cluster_ip()));
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("OLLAMA_HOST=0.0.0.0:11434"));
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.template.spec.containers[0].env[0]")
        );
    }

    #[test]
    fn exp_002_is_quiet_without_a_service_or_behind_an_auth_sidecar() {
        assert!(run("EXP-002", OLLAMA).is_empty());
        let sidecar = OLLAMA.replace(
            "      - name: ollama",
            "      - name: proxy\n        image: quay.io/oauth2-proxy/oauth2-proxy:v7.6.0\n      - name: ollama",
        );
        assert!(run("EXP-002", &format!("{sidecar}{}", cluster_ip())).is_empty());
    }

    #[test]
    fn exp_002_does_not_take_an_api_key_env_as_ollama_auth() {
        let keyed = OLLAMA.replace(
            "env: [{name: OLLAMA_HOST, value: \"0.0.0.0:11434\"}]",
            "env: [{name: API_KEY, value: x}]",
        );
        let findings = run("EXP-002", &format!("{keyed}{}", cluster_ip()));
        assert_eq!(findings.len(), 1);
        assert!(!findings[0].message.contains("OLLAMA_HOST"));
    }

    // EXP-003

    #[test]
    fn exp_003_fires_on_vllm_without_a_key_even_when_not_exposed() {
        let findings = run("EXP-003", &vllm(""));
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.template.spec.containers[0].args")
        );
        assert!(findings[0].message.contains("without `--api-key`"));
    }

    #[test]
    fn exp_003_is_quiet_with_a_key_flag_a_key_env_or_an_authenticating_route() {
        assert!(run("EXP-003", &vllm(API_KEY)).is_empty());
        let env =
            "        env: [{name: VLLM_API_KEY, valueFrom: {secretKeyRef: {name: k, key: k}}}]";
        assert!(run("EXP-003", &vllm(env)).is_empty());
        let guarded = ingress(
            "/",
            true,
            "nginx.ingress.kubernetes.io/auth-url: https://a/check",
        );
        assert!(run("EXP-003", &format!("{}{}{guarded}", vllm(""), cluster_ip())).is_empty());
    }

    #[test]
    fn exp_003_reads_the_key_of_a_kserve_serving_runtime() {
        let isvc = |args: &str| {
            format!(
                r#"apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata: {{name: kserve-vllm, namespace: ml}}
spec:
  containers:
  - name: kserve-container
    image: vllm/vllm-openai:v0.11.0
    args: [--model, /mnt/models{args}]
---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {{name: narrator, namespace: ml}}
spec:
  predictor:
    model:
      runtime: kserve-vllm
      modelFormat: {{name: vllm}}
      storageUri: s3://models/narrator/v3
"#
            )
        };
        assert_eq!(run("EXP-003", &isvc("")).len(), 1);
        assert!(run("EXP-003", &isvc(", --api-key, $(VLLM_API_KEY)")).is_empty());
    }

    // EXP-004

    #[test]
    fn exp_004_fires_when_only_the_key_protects_a_root_route() {
        let yaml = format!(
            "{}{}{}",
            vllm(API_KEY),
            cluster_ip(),
            ingress("/", true, "")
        );
        let findings = run("EXP-004", &yaml);
        assert_eq!(findings.len(), 1);
        assert!(
            findings[0]
                .message
                .contains("Ingress `Ingress/ml/chat` forwards `/`")
        );
        assert!(findings[0].message.contains("/invocations"));
    }

    #[test]
    fn exp_004_is_quiet_without_a_key_or_when_no_route_reaches_past_v1() {
        // Without a key, EXP-003 speaks instead.
        assert!(run("EXP-004", &format!("{}{}", vllm(""), cluster_ip())).is_empty());
        // A key and no Service or route at all.
        assert!(run("EXP-004", &vllm(API_KEY)).is_empty());
        assert!(under_v1("/v1/"));
        assert!(under_v1("/v1"));
        assert!(!under_v1("/v10"));
        assert!(!under_v1("/"));
    }

    // EXP-005

    #[test]
    fn exp_005_fires_on_dev_mode_and_not_when_off() {
        let on = "        env: [{name: VLLM_SERVER_DEV_MODE, value: \"1\"}]";
        let findings = run("EXP-005", &vllm(on));
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.template.spec.containers[0].env[0]")
        );
        assert!(findings[0].message.contains("VLLM_SERVER_DEV_MODE=1"));
        let off = "        env: [{name: VLLM_SERVER_DEV_MODE, value: \"0\"}]";
        assert!(run("EXP-005", &vllm(off)).is_empty());
        assert!(run("EXP-005", &vllm("")).is_empty());
    }

    // EXP-006

    #[test]
    fn exp_006_fires_on_runtime_lora_updating_and_not_when_false() {
        let on = "        env: [{name: VLLM_ALLOW_RUNTIME_LORA_UPDATING, value: \"True\"}]";
        let findings = run("EXP-006", &vllm(on));
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("/v1/load_lora_adapter"));
        let off = "        env: [{name: VLLM_ALLOW_RUNTIME_LORA_UPDATING, value: \"false\"}]";
        assert!(run("EXP-006", &vllm(off)).is_empty());
    }

    // EXP-007

    fn triton(args: &str) -> String {
        format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: triton, namespace: ml}}
spec:
  template:
    metadata: {{labels: {{app: triton}}}}
    spec:
      containers:
      - name: triton
        image: nvcr.io/nvidia/tritonserver:24.08-py3
        command: [tritonserver]
        args: [--model-repository=s3://models, {args}]
"#
        )
    }

    #[test]
    fn exp_007_fires_on_explicit_mode_in_either_form() {
        let findings = run("EXP-007", &triton("--model-control-mode=explicit"));
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.template.spec.containers[0].args")
        );
        assert!(findings[0].message.contains("HTTP"));
        assert!(findings[0].message.contains("gRPC"));
        let separate = run("EXP-007", &triton("--model-control-mode, poll"));
        assert_eq!(separate.len(), 1);
        assert!(separate[0].message.contains("=poll"));
    }

    #[test]
    fn exp_007_names_the_protocol_left_open() {
        let findings = run(
            "EXP-007",
            &triton(
                "--model-control-mode=explicit, \"--http-restricted-api=model-repository:admin-key=s3cret\"",
            ),
        );
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("gRPC"));
        assert!(!findings[0].message.contains("HTTP"));
    }

    #[test]
    fn exp_007_is_quiet_when_restricted_or_static() {
        let restricted = "--model-control-mode=explicit, \"--http-restricted-api=model-repository,statistics:admin-key=s\", \"--grpc-restricted-protocol=model-repository:admin-key=s\"";
        assert!(run("EXP-007", &triton(restricted)).is_empty());
        let http_only = "--model-control-mode=explicit, --allow-grpc=false, \"--http-restricted-api=model-repository:k=v\"";
        assert!(run("EXP-007", &triton(http_only)).is_empty());
        assert!(run("EXP-007", &triton("--model-control-mode=none")).is_empty());
    }

    // EXP-008

    const TORCHSERVE: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: chat, namespace: ml}
spec:
  template:
    metadata: {labels: {app: chat}}
    spec:
      containers:
      - name: ts
        image: pytorch/torchserve:0.12.0-gpu
        ports: [{containerPort: 8080}, {containerPort: 8081, name: management}]
"#;

    #[test]
    fn exp_008_fires_on_a_public_management_port() {
        let svc = service(
            "LoadBalancer",
            "[{port: 80, targetPort: 8080}, {port: 8081, targetPort: management}]",
        );
        let findings = run("EXP-008", &format!("{TORCHSERVE}{svc}"));
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].field.as_deref(), Some("spec.ports"));
        assert!(
            findings[0]
                .message
                .contains("8081 (TorchServe management API)")
        );
    }

    #[test]
    fn exp_008_is_quiet_for_internal_services_and_inference_ports() {
        let internal = service("ClusterIP", "[{port: 8081, targetPort: 8081}]");
        assert!(run("EXP-008", &format!("{TORCHSERVE}{internal}")).is_empty());
        let inference = service("LoadBalancer", "[{port: 80, targetPort: 8080}]");
        assert!(run("EXP-008", &format!("{TORCHSERVE}{inference}")).is_empty());
        // 8081 on a vLLM pod is not TorchServe's management API.
        let vllm_8081 = service("LoadBalancer", "[{port: 8081, targetPort: 8081}]");
        assert!(run("EXP-008", &format!("{}{vllm_8081}", vllm(""))).is_empty());
    }

    #[test]
    fn exp_008_fires_on_a_management_port_behind_an_ingress() {
        let svc = service(
            "ClusterIP",
            "[{port: 80, targetPort: 8080}, {name: management, port: 8081, targetPort: management}]",
        );
        for port in ["{number: 8081}", "{name: management}"] {
            let backend_port = format!("port: {port}");
            let route = ingress("/", true, "").replace("port: {number: 80}", &backend_port);
            let findings = run("EXP-008", &format!("{TORCHSERVE}{svc}{route}"));
            assert_eq!(findings.len(), 1, "{port}: {findings:?}");
            assert_eq!(findings[0].object.kind, "Ingress");
            assert_eq!(findings[0].field.as_deref(), Some("spec.rules"));
            assert!(
                findings[0]
                    .message
                    .contains("8081 (TorchServe management API)")
            );
        }
        // The inference port alone is no finding.
        let inference = format!("{TORCHSERVE}{svc}{}", ingress("/", true, ""));
        assert!(run("EXP-008", &inference).is_empty());
    }

    #[test]
    fn exp_008_flags_the_ray_dashboard_whatever_the_runtime() {
        let svc = service("NodePort", "[{port: 8265, targetPort: 8265}]");
        let findings = run("EXP-008", &format!("{}{svc}", vllm("")));
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("Ray dashboard"));
    }

    // EXP-009

    #[test]
    fn exp_009_fires_on_an_ingress_without_tls_and_a_plain_load_balancer() {
        let yaml = format!("{}{}{}", vllm(""), lb(), ingress("/", false, ""));
        let findings = run("EXP-009", &yaml);
        let fields: Vec<_> = findings.iter().map(|f| f.field.as_deref()).collect();
        assert_eq!(fields, [Some("spec.ports"), Some("spec.tls")]);
        assert!(findings[1].message.contains("plain HTTP"));
    }

    #[test]
    fn exp_009_is_quiet_with_tls_on_the_route_the_server_or_the_load_balancer() {
        assert!(
            run(
                "EXP-009",
                &format!("{}{}{}", vllm(""), cluster_ip(), ingress("/", true, ""))
            )
            .is_empty()
        );
        let server_tls =
            "        args: [--ssl-certfile, /tls/tls.crt, --ssl-keyfile, /tls/tls.key]";
        assert!(run("EXP-009", &format!("{}{}", vllm(server_tls), lb())).is_empty());
        let lb_cert = lb().replace(
            "{name: chat, namespace: ml}",
            "{name: chat, namespace: ml, annotations: {service.beta.kubernetes.io/aws-load-balancer-ssl-cert: \"arn:aws:acm:x\"}}",
        );
        assert!(run("EXP-009", &format!("{}{lb_cert}", vllm(""))).is_empty());
    }

    // EXP-010

    #[test]
    fn exp_010_fires_on_trust_remote_code() {
        let args = "        args: [--model, deepseek-ai/DeepSeek-V3, --trust-remote-code]";
        let findings = run("EXP-010", &vllm(args));
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("`--trust-remote-code`"));
        assert!(findings[0].message.contains("deepseek-ai/DeepSeek-V3"));
    }

    #[test]
    fn exp_010_reads_kserve_args_and_ignores_the_negative_switch() {
        let isvc = r#"apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: phi, namespace: ml}
spec:
  predictor:
    model:
      modelFormat: {name: huggingface}
      args: [--model_name=phi, --trust_remote_code]
"#;
        let findings = run("EXP-010", isvc);
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.predictor.model.args")
        );
        assert!(run("EXP-010", &vllm("        args: [--no-trust-remote-code]")).is_empty());
        assert!(run("EXP-010", &vllm("")).is_empty());
    }

    // EXP-011

    #[test]
    fn exp_011_fires_on_a_vision_model_without_an_allowlist() {
        let args = "        args: [--model, Qwen/Qwen2.5-VL-7B-Instruct]";
        let findings = run("EXP-011", &vllm(args));
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("Qwen/Qwen2.5-VL-7B-Instruct"));
    }

    #[test]
    fn exp_011_is_quiet_with_an_allowlist_or_a_text_model() {
        let allowed = "        args: [--model, llava-hf/llava-1.5-7b-hf, --allowed-media-domains, cdn.example.com]";
        assert!(run("EXP-011", &vllm(allowed)).is_empty());
        let text = "        args: [--model, meta-llama/Llama-3.1-8B-Instruct]";
        assert!(run("EXP-011", &vllm(text)).is_empty());
    }

    #[test]
    fn multimodal_names_respect_word_boundaries() {
        for name in [
            "Qwen/Qwen2-VL-7B-Instruct",
            "meta-llama/Llama-3.2-11B-Vision-Instruct",
            "mistralai/Pixtral-12B-2409",
            "OpenGVLab/InternVL2-8B",
            "openbmb/MiniCPM-V-2_6",
            "Qwen/Qwen2.5-Omni-7B",
            "HuggingFaceTB/SmolVLM-Instruct",
        ] {
            assert!(is_multimodal(name), "{name}");
        }
        for name in [
            "meta-llama/Llama-3.1-8B-Instruct",
            "s3://models/vllm-cache/mistral-7b",
            "omnivore/chat-7b",
            "devlin/bert",
        ] {
            assert!(!is_multimodal(name), "{name}");
        }
    }

    // EXP-012

    #[test]
    fn exp_012_fires_on_the_profiler_and_the_tokenizer_info_endpoint() {
        let extra = "        args: [--enable-tokenizer-info-endpoint]\n        env: [{name: VLLM_TORCH_PROFILER_DIR, value: /tmp/traces}]";
        let findings = run("EXP-012", &vllm(extra));
        assert_eq!(findings.len(), 2);
        assert!(
            findings[0]
                .message
                .contains("VLLM_TORCH_PROFILER_DIR=/tmp/traces")
        );
        assert!(findings[1].message.contains("/tokenizer_info"));
        assert_eq!(
            findings[1].field.as_deref(),
            Some("spec.template.spec.containers[0].args")
        );
    }

    #[test]
    fn exp_012_is_quiet_without_them() {
        let extra = "        env: [{name: VLLM_TORCH_PROFILER_DIR, value: \"\"}]";
        assert!(run("EXP-012", &vllm(extra)).is_empty());
        assert!(run("EXP-012", &vllm("")).is_empty());
    }

    // EXP-013

    #[test]
    fn exp_013_fires_once_per_endpoint_and_names_every_unlimited_path() {
        let yaml = format!("{}{}{}", vllm(API_KEY), lb(), ingress("/v1", true, ""));
        let findings = run("EXP-013", &yaml);
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("paths LoadBalancer Service"));
        assert!(findings[0].message.contains("Ingress `Ingress/ml/chat`"));
    }

    #[test]
    fn exp_013_is_quiet_with_an_nginx_limit_or_an_envoy_policy_or_no_external_path() {
        let limited = ingress("/v1", true, "nginx.ingress.kubernetes.io/limit-rps: \"5\"");
        assert!(run("EXP-013", &format!("{}{}{limited}", vllm(""), cluster_ip())).is_empty());
        assert!(run("EXP-013", &format!("{}{}", vllm(""), cluster_ip())).is_empty());
        let route = r#"---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: chat, namespace: ml}
spec:
  parentRefs: [{name: public, namespace: gw}]
  rules: [{backendRefs: [{name: chat, port: 80}]}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: limits, namespace: gw}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: public}]
  rateLimit: {type: Global, global: {rules: [{limit: {requests: 10, unit: Minute}}]}}
"#;
        assert!(run("EXP-013", &format!("{}{}{route}", vllm(""), cluster_ip())).is_empty());
        let unlimited = route.replace("kind: Gateway, name: public", "kind: Gateway, name: other");
        assert_eq!(
            run(
                "EXP-013",
                &format!("{}{}{unlimited}", vllm(""), cluster_ip())
            )
            .len(),
            1
        );
    }

    // EXP-014

    #[test]
    fn exp_014_fires_on_a_service_exposing_torch_distributed() {
        let svc = service(
            "ClusterIP",
            "[{port: 8000, targetPort: 8000}, {port: 29500, targetPort: 29500}]",
        );
        let findings = run("EXP-014", &format!("{}{svc}", vllm("")));
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("29500 (torch.distributed"));
        assert!(findings[0].message.contains("every pod"));
    }

    #[test]
    fn exp_014_follows_ports_moved_by_flags() {
        let args = "        args: [--kv-port, \"15000\"]";
        let svc = service("LoadBalancer", "[{port: 15000, targetPort: 15000}]");
        let findings = run("EXP-014", &format!("{}{svc}", vllm(args)));
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("from outside the cluster"));
    }

    #[test]
    fn exp_014_is_quiet_for_inference_ports_and_headless_services() {
        assert!(run("EXP-014", &format!("{}{}", vllm(""), cluster_ip())).is_empty());
        let headless = service("ClusterIP", "[{port: 29500, targetPort: 29500}]")
            .replace("  type: ClusterIP", "  type: ClusterIP\n  clusterIP: None");
        assert!(run("EXP-014", &format!("{}{headless}", vllm(""))).is_empty());
    }

    /// vLLM behind a Hangar gateway run as `workload_spec` (lines of its Deployment's spec)
    /// whose configuration adds `config` (lines of gateway.yaml).
    fn behind_gateway(workload_spec: &str, config: &str) -> String {
        format!("{}{}", vllm(""), hangar_gateway(config, workload_spec))
    }

    const RATES: &str = "    tenants:\n      a: {models: [chat], requestsPerMinute: 60}\n      b: {models: [chat], tokensPerMinute: 1000}\n      c: {models: [chat]}";

    #[test]
    fn gateway_replicas_that_each_count_the_rates_are_found_where_the_count_is_set() {
        let findings = run("EXP-015", &behind_gateway("  replicas: 3", RATES));
        assert_eq!(findings.len(), 1, "{findings:?}");
        let finding = &findings[0];
        assert_eq!(finding.object.to_string(), "Deployment/ml/gateway");
        assert_eq!(finding.field.as_deref(), Some("spec.replicas"));
        assert!(
            finding.message.contains("may run 3 replicas")
                && finding.message.contains(
                    "counts the `requestsPerMinute`, `tokensPerMinute` of tenants `a`, `b` in each replica (no `limits.shared`)"
                ),
            "{}",
            finding.message
        );

        // An autoscaler that may add replicas says it, even over one replica set by hand.
        let hpa = "---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: gateway, namespace: ml}\nspec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: gateway}, minReplicas: 2, maxReplicas: 6}\n";
        let scaled = format!("{}{hpa}", behind_gateway("  replicas: 1", RATES));
        let findings = run("EXP-015", &scaled);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(
            findings[0].object.to_string(),
            "HorizontalPodAutoscaler/ml/gateway"
        );
        assert_eq!(findings[0].field.as_deref(), Some("spec.maxReplicas"));
        assert!(
            findings[0].message.contains("up to 6 replicas"),
            "{}",
            findings[0].message
        );

        // KEDA: its target's kind and its largest count have defaults (Deployment, 100).
        let keda = "---\napiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: gateway, namespace: ml}\nspec: {scaleTargetRef: {name: gateway}, triggers: []}\n";
        let scaled = format!("{}{keda}", behind_gateway("  replicas: 1", RATES));
        let findings = run("EXP-015", &scaled);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].object.to_string(), "ScaledObject/ml/gateway");
        assert_eq!(findings[0].field.as_deref(), Some("spec.maxReplicaCount"));
        assert!(
            findings[0].message.contains("up to 100 replicas"),
            "{}",
            findings[0].message
        );
    }

    #[test]
    fn requests_in_flight_counted_per_replica_are_found_too() {
        let in_flight = "    tenants:\n      c: {models: [chat], maxConcurrent: 4}";
        // Shared limits with `concurrency: false` leave only the requests in flight per replica.
        let both = format!("{RATES}\n      d: {{models: [chat], maxConcurrent: 4}}");
        let unshared = format!(
            "{both}\n    limits: {{shared: {{url: \"redis://redis:6379\", concurrency: false}}}}"
        );
        for (config, says) in [
            (
                in_flight,
                "`maxConcurrent` of tenant `c` in each replica (no `limits.shared`)",
            ),
            (
                &unshared,
                "`maxConcurrent` of tenant `d` in each replica (`limits.shared.concurrency: false`)",
            ),
        ] {
            let findings = run("EXP-015", &behind_gateway("  replicas: 3", config));
            assert_eq!(findings.len(), 1, "{findings:?}");
            let message = &findings[0].message;
            assert!(message.contains(&format!("counts the {says}")), "{message}");
        }
    }

    #[test]
    fn one_replica_or_shared_limits_are_not_findings() {
        let shared = format!("{RATES}\n    limits: {{shared: {{url: \"redis://redis:6379\"}}}}");
        let in_flight_shared = "    tenants:\n      c: {models: [chat], maxConcurrent: 4}\n    limits: {shared: {url: \"redis://redis:6379\"}}";
        let no_limits = "    tenants:\n      c: {models: [chat]}";
        for (spec, config) in [
            ("  replicas: 1", RATES),
            ("  selector: {matchLabels: {app: gateway}}", RATES),
            ("  replicas: 3", shared.as_str()),
            ("  replicas: 3", in_flight_shared),
            ("  replicas: 3", no_limits),
        ] {
            let findings = run("EXP-015", &behind_gateway(spec, config));
            assert!(findings.is_empty(), "{spec} {config}: {findings:?}");
        }
    }
}
