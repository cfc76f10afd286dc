//! The gateway's configuration file: one YAML document, typed here, documented on each field
//! (the docs become the JSON Schema `hangar gateway schema` prints), and checked at load so a
//! mistake is reported with its line or its field before any traffic is served.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use hangar_guard::GuardAction;

/// The whole gateway configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewayConfig {
    /// Address the inference API listens on, e.g. `0.0.0.0:8443`.
    pub listen: SocketAddr,
    /// Serve HTTPS (HTTP/1.1 and HTTP/2 by ALPN) with this certificate and key, read again when
    /// they change (a renewed certificate needs no restart). Without it the gateway speaks plain
    /// HTTP/1.1 and HTTP/2 (prior knowledge), for a mesh or a local test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Address of the operator listener: `/metrics` (Prometheus), `/healthz`, `/readyz`. It is
    /// never served on the inference port, where every path but the inference API is 404.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_listen: Option<SocketAddr>,
    /// Load balancers and proxies in front of the gateway, as address blocks (`10.0.0.0/8`,
    /// `fd00::/8`, or one address). A request from one of them is recorded as coming from the
    /// right-most address in its `X-Forwarded-For` that is not itself trusted; from any other
    /// peer the header is not read, for a client can write it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// How clients prove who they are.
    pub auth: AuthConfig,
    /// The tenants, by name. A credential names its tenant; nothing the client sends can.
    pub tenants: BTreeMap<String, TenantConfig>,
    /// The models clients may ask for, by the name they use, and where each version runs.
    pub models: BTreeMap<String, ModelRoute>,
    /// How `https://` model servers are trusted beyond the system's CA certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_tls: Option<ClientTlsConfig>,
    /// Gateway-wide limits that protect the gateway itself.
    #[serde(default)]
    pub limits: GlobalLimits,
    /// What the guards look for.
    #[serde(default)]
    pub guards: GuardsConfig,
    /// The audit log (one hash-chained record per request) and the optional content log.
    pub audit: AuditConfig,
    /// SHA-256 of the file this was read from (`sha256:…`), for the audit log's records of
    /// starts and reloads: not a setting.
    #[serde(skip)]
    #[schemars(skip)]
    pub file_sha256: Option<String>,
}

/// TLS to servers the gateway calls (model servers, Redis): whom it trusts, and how it proves
/// who it is. The files are read again when they change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientTlsConfig {
    /// PEM certificates of the CAs that sign the servers' certificates (an in-cluster CA,
    /// cert-manager's for instance), trusted besides the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain (leaf first) the gateway presents to servers that ask for one
    /// (mutual TLS); with `keyFile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `certFile` (PKCS#8, PKCS#1 or SEC1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

impl ClientTlsConfig {
    /// The files it names.
    pub(crate) fn files(&self) -> Vec<&Path> {
        [&self.ca_file, &self.cert_file, &self.key_file]
            .into_iter()
            .filter_map(Option::as_deref)
            .collect()
    }
}

/// The certificate chain and private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// API keys and OIDC/JWT. Both may be on; a token starting with `hgk_` is an API key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthConfig {
    /// Gateway API keys, stored as hashes. `hangar gateway keygen` makes one.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyEntry>,
    /// OIDC/JWT bearer tokens from an identity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtConfig>,
}

/// One API key. The key itself is never stored: only its SHA-256, and its public prefix to
/// find the entry without comparing every hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiKeyEntry {
    /// Names the key in logs and metrics (never the key itself), e.g. `payments-2026-11`.
    pub id: String,
    /// The tenant this key acts for.
    pub tenant: String,
    /// The key's public prefix: the 8 characters after `hgk_`.
    pub prefix: String,
    /// `sha256:` and the hex SHA-256 of the whole key.
    pub sha256: String,
    /// The key stops working at this time (RFC 3339). Rotate by adding the new key first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// A revoked key is refused, and kept here so the audit log's key id stays explained.
    #[serde(default)]
    pub revoked: bool,
}

/// OIDC/JWT validation. Tokens are accepted only if signed by a key from the JWKS with an
/// algorithm from `algorithms`, issued by `issuer` for one of `audiences`, and in date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtConfig {
    /// The exact `iss` required.
    pub issuer: String,
    /// `aud` must contain one of these.
    pub audiences: Vec<String>,
    /// Where the signing keys come from: a JWKS URL (fetched, cached, refetched for an
    /// unknown `kid`) or a JWKS file.
    pub jwks: JwksSource,
    /// Signature algorithms accepted, e.g. `[RS256, ES256]`. `none` is never accepted; an HMAC
    /// algorithm only with a key of type `oct` from the JWKS.
    pub algorithms: Vec<String>,
    /// The claim naming the tenant.
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    /// The claim used as the key id in logs (the caller's identity), `sub` by default.
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_leeway")]
    pub leeway: Seconds,
    /// The longest a token may be valid: one whose `exp` lies further than this after the
    /// later of its `nbf` and `iat` (after now when it has neither) is refused, so a stolen
    /// token signed to last for years is not honoured for years. 24 h by default.
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime: Seconds,
    /// How long fetched keys are trusted before they are fetched again.
    #[serde(default = "default_jwks_cache")]
    pub cache_for: Seconds,
    /// PEM certificates of the CAs that sign the identity provider's certificate (one in the
    /// cluster, behind an internal CA), trusted for `jwks.url` besides the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// A JWKS by URL or by file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum JwksSource {
    /// `https://…/.well-known/jwks.json` (plain `http://` only for loopback).
    Url(String),
    /// A JWKS document on disk, read again when it changes (or the configuration does).
    File(PathBuf),
}

/// What one tenant may do, and how much.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TenantConfig {
    /// Models this tenant may use, by the names in `models`; `"*"` for all of them.
    pub models: Vec<String>,
    /// Routes this tenant may call (`chat`, `completion`, `embedding`, `models` for the model
    /// list); every one when not set. Any other is refused with 403.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<crate::request::Endpoint>>,
    /// Largest `max_tokens` (or `max_completion_tokens`) accepted; also what is reserved
    /// against the token rate when a request does not say.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u64,
    /// Largest `n` (choices per request), and `best_of`.
    #[serde(default = "default_max_n")]
    pub max_n: u64,
    /// Whether `logprobs`, `top_logprobs` and vLLM's `prompt_logprobs` may be asked for (they
    /// help extract a model).
    #[serde(default)]
    pub allow_logprobs: bool,
    /// Whether `logit_bias`, and vLLM's `allowed_token_ids`, `bad_words`, `logits_processors`
    /// and `vllm_xargs`, may be sent.
    #[serde(default)]
    pub allow_logit_bias: bool,
    /// Whether `tools`/`functions` may be sent (also inside vLLM's `chat_template_kwargs`).
    #[serde(default = "default_true")]
    pub allow_tools: bool,
    /// Whether a request may bring its own chat template (vLLM's and SGLang's `chat_template`),
    /// a Jinja program the model server runs.
    #[serde(default)]
    pub allow_chat_template: bool,
    /// Request fields beyond those the gateway knows (OpenAI's, and the sampling and
    /// structured-output ones vLLM and SGLang share) that may reach the model server, such as a
    /// server's own extension (`["top_a"]`); `["*"]` passes any. Every other field is refused
    /// with 400, for some choose another tenant's adapter, run code, or carry a prompt the guards
    /// cannot read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_parameters: Vec<String>,
    /// Largest request body.
    #[serde(default = "default_body_limit")]
    pub max_body_bytes: Bytes,
    /// Most chat messages in one request.
    #[serde(default = "default_max_messages")]
    pub max_messages: usize,
    /// Requests per minute; past it, 429 with `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_RATE))]
    pub requests_per_minute: Option<u64>,
    /// Tokens per minute (prompt + completion). Each request reserves its prompt estimate plus
    /// its `max_tokens` up front and gives back what the upstream's usage shows it did not use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_RATE))]
    pub tokens_per_minute: Option<u64>,
    /// Requests in flight at once; past it, 429 with `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// Whether this tenant may pin a model version with the `x-hangar-version` header.
    #[serde(default)]
    pub allow_version_pin: bool,
    /// Redact secrets and personal data from prompts before they reach the model server too,
    /// not only before logging.
    #[serde(default)]
    pub redact_upstream: bool,
    /// What to do when a prompt looks like an injection, or a response leaks a canary: `log`
    /// it, `flag` it (log and add the `x-hangar-guard` response header), `block` it (refuse
    /// the request with 400, or cut the leaking answer), or `off` (do not scan).
    #[serde(default = "default_injection_action")]
    pub injection: GuardAction,
    /// Canary strings this tenant placed in its system prompts; a response containing one is a
    /// system-prompt leak.
    #[serde(default)]
    pub canaries: Vec<String>,
    /// Also add a gateway canary token to each system message, so leaks are caught even when
    /// the tenant placed none.
    #[serde(default)]
    pub inject_canary: bool,
    /// Timeouts for this tenant's requests, overriding `limits.timeouts` (the connect
    /// timeout is gateway-wide).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<TenantTimeouts>,
}

/// A model name clients use, and the versions that serve it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelRoute {
    /// The versions, each with a weight: 100/0 is blue-green, 90/10 a canary.
    pub versions: Vec<ModelVersion>,
    /// Keep a client on one version: per `tenant`, per `session` (the `x-session-id` header,
    /// falling back to the tenant), or `none` (each request drawn by weight).
    #[serde(default)]
    pub sticky: Sticky,
}

/// One version of a model and where it is served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelVersion {
    /// The version's name, e.g. `1.4.0` or `blue`; shown in logs, metrics and the
    /// `x-hangar-version` response header. ASCII letters, digits and `.` `_` `-` `+` `:`.
    pub name: String,
    /// Base URL of the model server, e.g. `http://vllm-llama.ml.svc:8000`. The request path
    /// (`/v1/chat/completions`…) is appended.
    pub url: String,
    /// The model name the server knows, when it differs from the public name. Answers are given
    /// the public name back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_model: Option<String>,
    /// Share of traffic, relative to the other versions' weights.
    pub weight: u32,
    /// Whether the version takes requests the model's other versions could not run (refused,
    /// unreachable, or answered 429 or 503). `false` keeps one still being validated, such as
    /// a green at weight 0, from answering real traffic whenever blue sheds load.
    #[serde(default = "default_true")]
    pub fallback: bool,
    /// Environment variable holding the key the gateway presents to this model server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// The field that carries the cap on generated tokens to this model server.
    #[serde(default, skip_serializing_if = "CapField::is_default")]
    pub cap_field: CapField,
}

/// How a request's cap on generated tokens is written for a model server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CapField {
    /// `max_tokens`, always, beside a client's `max_completion_tokens`: the servers that read
    /// only `max_tokens` (vLLM's completions, Ollama, TGI) are held to the cap too.
    #[default]
    MaxTokens,
    /// `max_completion_tokens` only, a client's `max_tokens` moved there: for OpenAI's and
    /// Azure OpenAI's APIs, which refuse the two together and `max_tokens` for reasoning models.
    MaxCompletionTokens,
}

impl CapField {
    fn is_default(&self) -> bool {
        *self == CapField::default()
    }
}

/// How a model's traffic stays on one version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sticky {
    /// The same tenant always lands on the same version (for the same weights).
    #[default]
    Tenant,
    /// The same `x-session-id` lands on the same version.
    Session,
    /// Every request is drawn by weight.
    None,
}

/// Limits that protect the gateway as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GlobalLimits {
    /// Requests in flight across all tenants; past it, 503 with `Retry-After`.
    #[serde(default = "default_global_concurrency")]
    pub max_concurrent: u32,
    /// Time allowed to receive a request's headers and body (slow clients are cut off); also
    /// the time a new connection has to send its first request, and an idle one its next.
    #[serde(default = "default_request_read")]
    pub request_read: Seconds,
    /// Client connections open at once; past it, new ones wait in the listen backlog.
    #[serde(default = "default_max_connections")]
    #[schemars(range(min = 1))]
    pub max_connections: u32,
    /// Client connections open at once from one address; past it a new one is closed at once,
    /// so that one client cannot take every place among `maxConnections`. Peers in
    /// `trustedProxies` are not limited (a proxy carries many clients). None by default: behind
    /// a load balancer that hides clients' addresses, all connections come from a few.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_connections_per_client: Option<u32>,
    /// The largest answer head (status line and headers) a model server may send, in bytes;
    /// a larger one is a 502 (`upstream_malformed`). Answers are read in pieces of this size,
    /// so each connection to a model server holds it: 4 KiB by default, as nginx's
    /// `proxy_buffer_size`. Raise it for a proxy before the model servers that adds large
    /// headers (each 4 KiB more is about 4 MiB more for 1,000 open streams). 1 KiB to 64 KiB.
    #[serde(default = "default_answer_head_bytes")]
    #[schemars(range(min = 1024, max = 65536))]
    pub answer_head_bytes: u32,
    /// Default upstream timeouts.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// How long shutdown waits for streams in flight to finish.
    #[serde(default = "default_drain")]
    pub drain: Seconds,
    /// On SIGTERM, how long the gateway goes on serving, `/readyz` answering 503, before it
    /// stops accepting and drains: the time Kubernetes takes to stop sending it new connections
    /// after the pod is deleted. `0s` stops accepting at once; SIGINT (Ctrl-C) always does.
    #[serde(default = "default_shutdown_delay")]
    pub shutdown_delay: Seconds,
    /// Keep the tenants' request and token rates and their requests in flight in Redis, so that
    /// all replicas of the gateway count against one limit per tenant. Without it each replica
    /// counts on its own, and a tenant gets its limits from each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<SharedLimitsConfig>,
}

/// Where the shared rate limits live and what happens when they cannot be reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SharedLimitsConfig {
    /// The Redis server: `redis://host:port/database`, or `rediss://` for TLS; with an ACL user
    /// as `redis://user@host`. The password goes in `passwordFile`, never in the URL. For a
    /// Redis Cluster, any node (or the cluster's configuration endpoint): its `MOVED` and
    /// `ASK` redirections are followed.
    pub url: String,
    /// The name of the primary (`mymaster`) when Redis runs with Sentinel: `url`'s host and
    /// port are then a Sentinel's (a Service in front of the Sentinels, port 26379), asked
    /// where the primary is at each new connection and every 2 s, so a failover is followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel_master: Option<String>,
    /// For a `rediss://` URL: the CAs trusted besides the system's (`caFile`), and the
    /// certificate the gateway presents when Redis asks for one (`certFile`, `keyFile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsConfig>,
    /// A file holding the Redis password (surrounding whitespace ignored), such as a key of a
    /// mounted Secret. Read again at each reload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// Prefix of the keys the gateway writes (`PREFIX:{TENANT}:rates` and
    /// `PREFIX:{TENANT}:inflight`); give gateways that must not share limits different prefixes.
    /// Without `{` or `}`: the braces around the tenant keep its keys on one Redis Cluster node.
    #[serde(default = "default_shared_prefix")]
    pub prefix: String,
    /// Count the tenants' requests in flight (`maxConcurrent`) across the replicas too, which
    /// costs tenants with only `maxConcurrent` a call to Redis per request. With `false`, each
    /// replica lets a tenant have `maxConcurrent` requests in flight.
    #[serde(default = "default_true")]
    pub concurrency: bool,
    /// Keep each caller's extraction window (`guards.extraction`) here too, so a caller spread
    /// across the replicas is watched as a whole, at a call to Redis per answered request, off
    /// its path. With `false`, each replica watches the share it serves.
    #[serde(default = "default_true")]
    pub extraction: bool,
    /// How long a request waits for Redis before the limits are decided without it (at most
    /// `1s`). After a failure Redis is left alone for a second, so an outage costs each request
    /// nothing.
    #[serde(default = "default_shared_timeout")]
    pub timeout: Seconds,
    /// Without Redis: `local` decides with this replica's own counts (a tenant may then get up
    /// to its limit from each replica), `refuse` answers 503 with `Retry-After` (strict quotas).
    #[serde(default)]
    pub on_unavailable: SharedUnavailable,
}

/// What the gateway does when the shared limits cannot be reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SharedUnavailable {
    /// Count on this replica alone until Redis is back.
    #[default]
    Local,
    /// Refuse requests of tenants with a limit Redis keeps (a rate, or `maxConcurrent` with
    /// `concurrency` on) until Redis is back.
    Refuse,
}

impl SharedUnavailable {
    /// The name the configuration uses.
    pub fn as_str(self) -> &'static str {
        match self {
            SharedUnavailable::Local => "local",
            SharedUnavailable::Refuse => "refuse",
        }
    }
}

impl Default for GlobalLimits {
    fn default() -> Self {
        GlobalLimits {
            max_concurrent: default_global_concurrency(),
            request_read: default_request_read(),
            max_connections: default_max_connections(),
            max_connections_per_client: None,
            answer_head_bytes: default_answer_head_bytes(),
            timeouts: Timeouts::default(),
            drain: default_drain(),
            shutdown_delay: default_shutdown_delay(),
            shared: None,
        }
    }
}

/// Upstream timeouts. A model server that does not answer in time is a 504, never a hang.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Timeouts {
    /// Connecting to the model server.
    #[serde(default = "default_connect")]
    pub connect: Seconds,
    /// From sending the request to the response headers (for a stream, the first token).
    #[serde(default = "default_first_token")]
    pub first_token: Seconds,
    /// Longest silence between two chunks of a stream, or the whole body of a non-streamed
    /// answer after its headers.
    #[serde(default = "default_idle")]
    pub idle: Seconds,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: default_connect(),
            first_token: default_first_token(),
            idle: default_idle(),
        }
    }
}

/// A tenant's own model-server timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TenantTimeouts {
    /// From sending the request to the response headers (for a stream, the first token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_token: Option<Seconds>,
    /// Longest silence between two chunks of a stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<Seconds>,
}

/// Guard settings shared by all tenants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GuardsConfig {
    /// Kinds of secret and personal data masked before anything is logged: `card_number`,
    /// `iban`, `provider_key`, `private_key`, `bearer_token`, `email`, `phone`. All by default; an
    /// empty list turns redaction off (then no content log and no `redactUpstream`).
    #[serde(default = "default_redact_kinds")]
    pub redact: Vec<String>,
    /// Secret seed for the canary token added to system messages (`injectCanary`). Without
    /// it, a random seed is drawn at start, so the token changes with each restart; set it to
    /// keep tokens stable across replicas. Keep it secret: the token is derived from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_seed: Option<String>,
    /// A file holding the canary seed instead (surrounding whitespace ignored), such as a key of
    /// a Kubernetes Secret mounted into the pod, so the rest of the configuration can live in a
    /// ConfigMap. Read again when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_seed_file: Option<PathBuf>,
    /// When a key's traffic looks like model extraction.
    #[serde(default)]
    pub extraction: ExtractionConfig,
}

impl Default for GuardsConfig {
    fn default() -> Self {
        GuardsConfig {
            redact: default_redact_kinds(),
            canary_seed: None,
            canary_seed_file: None,
            extraction: ExtractionConfig::default(),
        }
    }
}

/// Thresholds of the per-key extraction signals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtractionConfig {
    /// The sliding window the signals are measured over.
    #[serde(default = "default_extraction_window")]
    pub window: Seconds,
    /// Fewer requests than this in the window never alert. At most 65,536: the requests a
    /// key's window remembers.
    #[serde(default = "default_extraction_min_requests")]
    #[schemars(range(min = 1, max = 65_536))]
    pub min_requests: u64,
    /// Share of distinct prompts in the window at or above which a key looks like it sweeps
    /// the input space: more than 0, at most 1.
    #[serde(default = "default_distinct_ratio")]
    pub distinct_ratio: f64,
    /// Completion tokens per prompt token at or above which a key looks like it harvests
    /// outputs: more than 0.
    #[serde(default = "default_output_input_ratio")]
    pub output_input_ratio: f64,
}

impl ExtractionConfig {
    /// Thresholds that could never alert, or would alert on everything.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.window.0.is_zero() {
            problems.push("guards.extraction.window: must be more than 0s".to_owned());
        }
        let most = hangar_guard::extraction::MAX_ENTRIES_PER_KEY as u64;
        if !(1..=most).contains(&self.min_requests) {
            problems.push(format!(
                "guards.extraction.minRequests: must be from 1 to {most}, the requests a key's window remembers (more would never alert)"
            ));
        }
        if !(self.distinct_ratio > 0.0 && self.distinct_ratio <= 1.0) {
            problems.push(
                "guards.extraction.distinctRatio: must be more than 0 and at most 1 (a share of the prompts)".to_owned(),
            );
        }
        if !(self.output_input_ratio > 0.0 && self.output_input_ratio.is_finite()) {
            problems.push(
                "guards.extraction.outputInputRatio: must be a number more than 0".to_owned(),
            );
        }
        problems
    }
}

impl Default for ExtractionConfig {
    fn default() -> Self {
        ExtractionConfig {
            window: default_extraction_window(),
            min_requests: default_extraction_min_requests(),
            distinct_ratio: default_distinct_ratio(),
            output_input_ratio: default_output_input_ratio(),
        }
    }
}

/// Where audit records go and how long they stay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuditConfig {
    /// Directory of the hash-chained audit files (created 0700 if missing).
    pub dir: PathBuf,
    /// Days a file is kept after its last record; older files are deleted at rotation, and
    /// the deletion is itself recorded in the chain.
    #[schemars(range(min = 1))]
    pub retention_days: u32,
    /// Start a new file past this size.
    #[serde(default = "default_rotate_size")]
    pub rotate_size: Bytes,
    /// Refused requests recorded one by one each second; past it, that second's refusals are
    /// counted by client, tenant, status and code and written as one `refusals` record, so a
    /// flood cannot fill the disk. 0: record every refusal.
    #[serde(default = "default_refusals_per_second")]
    pub refusals_per_second: u32,
    /// Also log prompts and completions, redacted, in their own chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<ContentLogConfig>,
    /// While the audit or content log cannot be written (a full disk, a directory gone or
    /// read-only) or its writer falls behind (its queue three-quarters full, or too short
    /// for the requests in flight were the disk to stall),
    /// refuse inference requests (503 `audit_unavailable`) and answer `/readyz` 503, rather
    /// than serve requests no record may be kept of. Off: serve, log the failure and export
    /// `hangar_gateway_audit_write_failing`.
    #[serde(default)]
    pub fail_closed: bool,
}

/// The optional content log.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContentLogConfig {
    /// Days content is kept; usually much shorter than the audit log.
    #[schemars(range(min = 1))]
    pub retention_days: u32,
}

/// A duration written as `30s`, `500ms`, `5m`, `2h`, `1d`, or a sum such as `5m30s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seconds(pub Duration);

impl Seconds {
    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if !millis.is_multiple_of(1000) {
            write!(f, "{millis}ms")
        } else {
            write!(f, "{}s", millis / 1000)
        }
    }
}

/// Parses `30s`, `500ms`, `5m`, `2h`, `1d` and sums of them such as `5m30s` or `1h30m` (a bare
/// number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let not_a_duration = || format!("`{text}` is not a duration like 30s, 500ms, 5m30s, 2h or 1d");
    let mut seconds = 0.0;
    let mut rest = text;
    loop {
        let number_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_end);
        let value: f64 = number.parse().map_err(|_| not_a_duration())?;
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let scale = match unit.trim() {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            // A bare number only alone: in `5m30` the 30 could be seconds or a typo.
            "" if rest.len() == text.len() => 1.0,
            "" => return Err(not_a_duration()),
            other => {
                return Err(format!(
                    "unknown unit `{other}` in `{text}` (use ms, s, m, h or d, or a sum like 5m30s)"
                ));
            }
        };
        seconds += value * scale;
        if next.is_empty() {
            break;
        }
        rest = next;
    }
    let duration =
        Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is out of range"))?;
    // Times are added to clocks; a thousand years would overflow them where a request waits.
    if duration > MAX_DURATION {
        return Err(format!("`{text}` is more than a year"));
    }
    Ok(duration)
}

/// The longest duration the configuration takes.
const MAX_DURATION: Duration = Duration::from_secs(366 * 86_400);

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = StringOrNumber::deserialize(deserializer)?.0;
        parse_duration(&text)
            .map(Seconds)
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Seconds {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": ["string", "number"],
            "pattern": "^([0-9]+(\\.[0-9]+)?(ms|s|m|h|d))+$|^[0-9]+(\\.[0-9]+)?$",
            "description": "A duration: 30s, 500ms, 5m, 2h, 1d or a sum such as 5m30s; a bare number is seconds."
        })
    }
}

/// A size written as `1MiB`, `512KiB`, `64MB` or a number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub u64);

/// Parses `1MiB`, `512KiB`, `2GiB`, `64MB`, `10kB` or a bare number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 1MiB, 512KiB or 4096"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (use B, KiB, MiB, GiB)"
            ));
        }
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is out of range"))
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = StringOrNumber::deserialize(deserializer)?.0;
        parse_size(&text)
            .map(Bytes)
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Bytes {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Size".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": ["string", "integer"],
            "pattern": "^[0-9]+ ?(B|kB|KB|KiB|MB|MiB|GB|GiB)?$",
            "description": "A size: 1MiB, 512KiB or a number of bytes."
        })
    }
}

/// YAML writes `30` and `30s` alike; both arrive here as text.
struct StringOrNumber(String);

impl<'de> Deserialize<'de> for StringOrNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Whole(u64),
            Real(f64),
        }
        Ok(StringOrNumber(match Raw::deserialize(deserializer)? {
            Raw::Text(text) => text,
            Raw::Whole(n) => n.to_string(),
            Raw::Real(n) => n.to_string(),
        }))
    }
}

fn default_tenant_claim() -> String {
    "tenant".to_owned()
}
fn default_subject_claim() -> String {
    "sub".to_owned()
}
fn default_leeway() -> Seconds {
    Seconds(Duration::from_secs(30))
}
fn default_max_lifetime() -> Seconds {
    Seconds(Duration::from_secs(24 * 3600))
}
fn default_jwks_cache() -> Seconds {
    Seconds(Duration::from_secs(300))
}
fn default_max_tokens() -> u64 {
    4096
}
fn default_max_n() -> u64 {
    1
}
fn default_true() -> bool {
    true
}
fn default_body_limit() -> Bytes {
    Bytes(1 << 20)
}
fn default_max_messages() -> usize {
    256
}
fn default_injection_action() -> GuardAction {
    GuardAction::Log
}
fn default_global_concurrency() -> u32 {
    4096
}
fn default_request_read() -> Seconds {
    Seconds(Duration::from_secs(30))
}
fn default_max_connections() -> u32 {
    10_000
}
fn default_answer_head_bytes() -> u32 {
    4096
}
/// The range of `limits.answerHeadBytes`: below 1 KiB ordinary answers' heads do not fit; above
/// 64 KiB a thousand streams would hold 64 MiB to read heads that large.
const ANSWER_HEAD_BYTES: std::ops::RangeInclusive<u32> = 1024..=65536;
/// The longest `limits.shared.timeout`: well below the time the Redis client gives a connection
/// to answer before it replaces it.
const MAX_SHARED_TIMEOUT: Duration = Duration::from_secs(crate::redis::STALLED.as_secs() / 2);

fn default_shared_prefix() -> String {
    "hangar".to_owned()
}
fn default_shared_timeout() -> Seconds {
    Seconds(Duration::from_millis(50))
}
fn default_drain() -> Seconds {
    Seconds(Duration::from_secs(30))
}
fn default_shutdown_delay() -> Seconds {
    Seconds(Duration::from_secs(5))
}
fn default_connect() -> Seconds {
    Seconds(Duration::from_secs(5))
}
fn default_first_token() -> Seconds {
    Seconds(Duration::from_secs(60))
}
fn default_idle() -> Seconds {
    Seconds(Duration::from_secs(30))
}
/// The largest `requestsPerMinute` or `tokensPerMinute`.
const MAX_RATE: u64 = 1_000_000_000_000;

fn default_redact_kinds() -> Vec<String> {
    hangar_guard::SecretKind::ALL
        .iter()
        .map(|k| k.as_str().to_owned())
        .collect()
}
fn default_extraction_window() -> Seconds {
    Seconds(Duration::from_secs(600))
}
fn default_extraction_min_requests() -> u64 {
    500
}
fn default_distinct_ratio() -> f64 {
    0.95
}
fn default_output_input_ratio() -> f64 {
    20.0
}
fn default_rotate_size() -> Bytes {
    Bytes(64 << 20)
}

fn default_refusals_per_second() -> u32 {
    100
}

/// A configuration that could not be used, with every problem found.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {}", problems.join("\n  "))]
pub struct ConfigError {
    /// The file.
    pub path: String,
    /// Each problem, with its line (`line 12: …`) or its field (`tenants.payments.models: …`).
    pub problems: Vec<String>,
}

impl ApiKeyEntry {
    /// Whether the key is neither revoked nor expired at `now`.
    pub fn in_force(&self, now: jiff::Timestamp) -> bool {
        !self.revoked && !self.has_expired(now)
    }

    /// Whether the key's expiry is past at `now` (an unreadable one is a load problem).
    pub fn has_expired(&self, now: jiff::Timestamp) -> bool {
        self.expiry().is_some_and(|at| at <= now)
    }

    /// When the key stops working, if it ever does.
    pub fn expiry(&self) -> Option<jiff::Timestamp> {
        self.expires.as_deref()?.parse().ok()
    }
}

impl GatewayConfig {
    /// What works but leaves tenants unable to do what they are there for, said at start, at
    /// each reload and by `gateway check`: worth a warning, not a refusal (keys may come in a
    /// later edit).
    pub fn tenant_warnings(&self, now: jiff::Timestamp) -> Vec<String> {
        let mut warnings = Vec::from_iter(self.keyless_warning(now));
        for (name, tenant) in &self.tenants {
            // A request that sets no `max_tokens` reserves the tenant's `maxTokens`, and the
            // SDKs set none by default.
            if let Some(per_minute) = tenant.tokens_per_minute.filter(|&n| n <= tenant.max_tokens) {
                warnings.push(format!(
                    "tenants.{name}: tokensPerMinute {per_minute} is not above maxTokens {}: a request that sets no max_tokens reserves its prompt plus {} tokens and is refused; lower maxTokens or raise tokensPerMinute",
                    tenant.max_tokens, tenant.max_tokens
                ));
            }
        }
        warnings
    }

    /// The tenants nothing can authenticate as at `now`, in a sentence, if there are any.
    pub fn keyless_warning(&self, now: jiff::Timestamp) -> Option<String> {
        let keyless = self.tenants_without_a_key(now);
        (!keyless.is_empty()).then(|| format!(
            "no API key in force (not revoked, not expired) acts for {} and there is no `auth.jwt`: requests for them cannot authenticate",
            keyless.join(", ")
        ))
    }

    /// Tenants nothing can authenticate as at `now`: no key in force acts for them, and there
    /// is no `auth.jwt`. Worth a warning, not a refusal: keys may come in a later edit.
    pub fn tenants_without_a_key(&self, now: jiff::Timestamp) -> Vec<&str> {
        if self.auth.jwt.is_some() {
            return Vec::new();
        }
        let keys = &self.auth.api_keys;
        (self.tenants.keys())
            .filter(|tenant| !keys.iter().any(|k| &k.tenant == *tenant && k.in_force(now)))
            .map(String::as_str)
            .collect()
    }

    /// The files this configuration names: certificates, keys, CAs, a JWKS. They are read at
    /// load, and a change to any of them reloads the configuration (how rotated ones come in).
    pub fn named_files(&self) -> Vec<&Path> {
        let mut files = Vec::new();
        if let Some(tls) = &self.tls {
            files.extend([tls.cert.as_path(), tls.key.as_path()]);
        }
        files.extend(
            self.upstream_tls
                .as_ref()
                .map_or(Vec::new(), ClientTlsConfig::files),
        );
        if let Some(jwt) = &self.auth.jwt {
            if let JwksSource::File(jwks) = &jwt.jwks {
                files.push(jwks.as_path());
            }
            files.extend(jwt.ca_file.as_deref());
        }
        files.extend(self.guards.canary_seed_file.as_deref());
        if let Some(shared) = &self.limits.shared {
            files.extend(shared.password_file.as_deref());
            files.extend(
                shared
                    .tls
                    .as_ref()
                    .map_or(Vec::new(), ClientTlsConfig::files),
            );
        }
        files
    }

    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<GatewayConfig, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: shown.clone(),
            problems: vec![format!("cannot read: {e}")],
        })?;
        let mut config = GatewayConfig::from_yaml(&text).map_err(|problems| ConfigError {
            path: shown,
            problems,
        })?;
        config.file_sha256 = Some(crate::auth::keys::sha256_label(text.as_bytes()));
        Ok(config)
    }

    /// Parses and checks a configuration; the errors name their line or field.
    pub fn from_yaml(text: &str) -> Result<GatewayConfig, Vec<String>> {
        // The path of the field at fault, whatever the YAML's style (flow maps, quoted keys).
        let mut field = String::new();
        let parsed = serde_saphyr::with_deserializer_from_str(text, |yaml| {
            serde_path_to_error::deserialize(yaml).map_err(|e| {
                field = e.path().to_string();
                e.into_inner()
            })
        });
        let config: GatewayConfig = parsed.map_err(|e| vec![yaml_error(&e, &field)])?;
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    /// What the types cannot say: references between sections, weights, formats.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(admin) = self
            .admin_listen
            .filter(|admin| same_port(*admin, self.listen))
        {
            problems.push(format!(
                "adminListen: {admin} takes the port of `listen` ({}); metrics, health and readiness are never served on the inference port, so give them a port of their own",
                self.listen
            ));
        }
        for (name, tenant) in &self.tenants {
            // The name is in metrics, audit records and the shared limits' keys, where it is
            // the hash tag that keeps a tenant's keys on one Redis Cluster node.
            if name.trim().is_empty() {
                problems.push(format!("tenants: `{name}` is not a tenant's name"));
            } else if self.limits.shared.is_some() && name.contains(['{', '}']) {
                problems.push(format!(
                    "tenants.{name}: a name with `{{` or `}}` cannot key the shared limits in Redis"
                ));
            }
            for model in &tenant.models {
                if model != "*" && !self.models.contains_key(model) {
                    problems.push(format!(
                        "tenants.{name}.models: `{model}` is not in `models` (known: {})",
                        known(self.models.keys())
                    ));
                }
            }
            if tenant.models.is_empty() {
                problems.push(format!(
                    "tenants.{name}.models: empty, so the tenant can use nothing (use \"*\" for all)"
                ));
            }
            if tenant.endpoints.as_ref().is_some_and(Vec::is_empty) {
                problems.push(format!(
                    "tenants.{name}.endpoints: empty, so the tenant can call nothing (leave it out for all)"
                ));
            }
            let rates = [
                ("requestsPerMinute", tenant.requests_per_minute),
                ("tokensPerMinute", tenant.tokens_per_minute),
            ];
            for (field, _) in rates.iter().filter(|(_, rate)| *rate == Some(0)) {
                problems.push(format!(
                    "tenants.{name}.{field}: must be more than 0 (to stop a tenant, revoke its keys or remove it)"
                ));
            }
            // Rates are counted in floating point, here and in Redis: past this, whole units
            // would be lost (and no tenant needs them: leave the rate out for no limit).
            for (field, _) in (rates.iter()).filter(|(_, rate)| rate.is_some_and(|n| n > MAX_RATE))
            {
                problems.push(format!(
                    "tenants.{name}.{field}: at most {MAX_RATE} (leave it out for no limit)"
                ));
            }
            for field in &tenant.extra_parameters {
                if let Some(switch) = crate::request::governed_by(field) {
                    problems.push(format!(
                        "tenants.{name}.extraParameters: `{field}` is governed by `{switch}`, not by this list"
                    ));
                }
            }
            for canary in &tenant.canaries {
                if canary.trim().len() < 8 {
                    problems.push(format!(
                        "tenants.{name}.canaries: `{canary}` is shorter than 8 characters and would match ordinary text"
                    ));
                }
            }
        }
        for (name, route) in &self.models {
            if route.versions.is_empty() {
                problems.push(format!("models.{name}.versions: no version to route to"));
            }
            if route.versions.iter().all(|v| v.weight == 0) && !route.versions.is_empty() {
                problems.push(format!(
                    "models.{name}.versions: every weight is 0, so no request could be routed"
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            for (i, version) in route.versions.iter().enumerate() {
                if !seen.insert(&version.name) {
                    problems.push(format!(
                        "models.{name}.versions[{i}].name: `{}` appears twice",
                        version.name
                    ));
                }
                // It travels in `x-hangar-version`, both ways: a name a header cannot carry as
                // written could be neither pinned nor reported.
                let allowed = |c: char| c.is_ascii_alphanumeric() || "._-+:".contains(c);
                if version.name.is_empty() || !version.name.chars().all(allowed) {
                    problems.push(format!(
                        "models.{name}.versions[{i}].name: `{}` must be letters, digits and `.` `_` `-` `+` `:` (ASCII), as it is sent in x-hangar-version",
                        version.name
                    ));
                }
                if let Err(e) = crate::upstream::parse_base_url(&version.url) {
                    problems.push(format!("models.{name}.versions[{i}].url: {e}"));
                }
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        let mut hashes = BTreeMap::new();
        for (i, key) in self.auth.api_keys.iter().enumerate() {
            let at = format!("auth.apiKeys[{i}] ({})", key.id);
            if key.id.trim().is_empty() {
                problems.push(format!(
                    "auth.apiKeys[{i}].id: empty; name the key (logs and metrics show its id)"
                ));
            } else if !ids.insert(&key.id) {
                problems.push(format!("{at}.id: appears twice; key ids must be unique"));
            }
            // Only the first entry of a key would be read, so a copy could keep a revoked key
            // working, or send it to another tenant.
            let first = hashes
                .entry(key.sha256.to_ascii_lowercase())
                .or_insert(&key.id);
            if *first != &key.id {
                problems.push(format!(
                    "{at}.sha256: the same key as `{first}`; give each key one entry"
                ));
            }
            if !self.tenants.contains_key(&key.tenant) {
                problems.push(format!(
                    "{at}.tenant: `{}` is not in `tenants` (known: {})",
                    key.tenant,
                    known(self.tenants.keys())
                ));
            }
            if let Err(e) = crate::auth::keys::check_entry(key) {
                problems.push(format!("{at}: {e}"));
            }
        }
        if self.auth.api_keys.is_empty() && self.auth.jwt.is_none() {
            problems.push(
                "auth: neither apiKeys nor jwt is set, so every request would be refused".into(),
            );
        }
        if let Some(jwt) = &self.auth.jwt {
            if jwt.audiences.is_empty() {
                problems.push("auth.jwt.audiences: at least one audience is required".into());
            }
            for alg in &jwt.algorithms {
                if !SUPPORTED_JWT_ALGORITHMS.contains(&alg.as_str()) {
                    problems.push(format!(
                        "auth.jwt.algorithms: `{alg}` is not supported (use {})",
                        SUPPORTED_JWT_ALGORITHMS.join(", ")
                    ));
                }
            }
            if jwt.algorithms.is_empty() {
                problems.push(
                    "auth.jwt.algorithms: list the algorithms to accept, e.g. [RS256]".into(),
                );
            }
        }
        for kind in &self.guards.redact {
            if hangar_guard::SecretKind::parse(kind).is_none() {
                let kinds: Vec<&str> = hangar_guard::SecretKind::ALL
                    .iter()
                    .map(|k| k.as_str())
                    .collect();
                problems.push(format!(
                    "guards.redact: unknown kind `{kind}` (use {})",
                    kinds.join(", ")
                ));
            }
        }
        if self.guards.canary_seed.is_some() && self.guards.canary_seed_file.is_some() {
            problems.push(
                "guards: set canarySeed or canarySeedFile, not both (the file is for a seed kept in a Secret)"
                    .into(),
            );
        }
        for (i, block) in self.trusted_proxies.iter().enumerate() {
            if let Err(e) = crate::forwarded::Cidr::parse(block) {
                problems.push(format!("trustedProxies[{i}]: {e}"));
            }
        }
        // What the ledger refuses to open with is refused here too: `audit` takes effect only
        // at a restart, so a reload that let it through would crash-loop the next pod.
        if self.audit.retention_days == 0 {
            problems.push("audit.retentionDays: must be at least 1".into());
        }
        if self
            .audit
            .content
            .is_some_and(|content| content.retention_days == 0)
        {
            problems.push("audit.content.retentionDays: must be at least 1".into());
        }
        if self.audit.rotate_size.0 == 0 {
            problems.push("audit.rotateSize: must be more than 0 (64MiB if left out)".into());
        }
        if !ANSWER_HEAD_BYTES.contains(&self.limits.answer_head_bytes) {
            problems.push(format!(
                "limits.answerHeadBytes: must be from {} to {} (bytes)",
                ANSWER_HEAD_BYTES.start(),
                ANSWER_HEAD_BYTES.end()
            ));
        }
        if self.limits.max_connections == 0 {
            problems.push("limits.maxConnections: must be at least 1, or nothing is served".into());
        }
        problems.extend(self.guards.extraction.problems());
        if self.limits.max_connections_per_client == Some(0) {
            problems.push(
                "limits.maxConnectionsPerClient: must be at least 1, or no client is served (leave it out for no limit)".into(),
            );
        }
        // A zero time would refuse or cut everything (and the idle watch would spin).
        let timeouts = &self.limits.timeouts;
        let mut times = vec![
            ("limits.requestRead".to_owned(), self.limits.request_read),
            ("limits.timeouts.connect".to_owned(), timeouts.connect),
            (
                "limits.timeouts.firstToken".to_owned(),
                timeouts.first_token,
            ),
            ("limits.timeouts.idle".to_owned(), timeouts.idle),
        ];
        for (name, tenant) in &self.tenants {
            let own = tenant.timeouts.as_ref();
            let first_token = own.and_then(|t| t.first_token);
            let idle = own.and_then(|t| t.idle);
            times.extend(first_token.map(|t| (format!("tenants.{name}.timeouts.firstToken"), t)));
            times.extend(idle.map(|t| (format!("tenants.{name}.timeouts.idle"), t)));
        }
        if let Some(jwt) = &self.auth.jwt {
            times.push(("auth.jwt.maxLifetime".to_owned(), jwt.max_lifetime));
        }
        if let Some(shared) = &self.limits.shared {
            times.push(("limits.shared.timeout".to_owned(), shared.timeout));
            if shared.timeout.get() > MAX_SHARED_TIMEOUT {
                problems.push(format!(
                    "limits.shared.timeout: at most {} (a request should not wait longer for its limits)",
                    Seconds(MAX_SHARED_TIMEOUT)
                ));
            }
            // The password is not known here; the URL's form is.
            match crate::redis::Target::parse(&shared.url, None) {
                Err(e) => problems.push(format!("limits.shared.url: {e}")),
                Ok(target) if target.username.is_some() && shared.password_file.is_none() => {
                    problems.push(
                        "limits.shared.url: names a user but `passwordFile` is not set".to_owned(),
                    );
                }
                Ok(_) if shared.sentinel_master.as_deref().is_some_and(str::is_empty) => {
                    problems.push("limits.shared.sentinelMaster: must not be empty".to_owned());
                }
                // Sentinels stand in for each other; servers do not.
                Ok(target)
                    if !target.more_addresses.is_empty() && shared.sentinel_master.is_none() =>
                {
                    problems.push(
                        "limits.shared.url: several hosts are only for Sentinels: set `sentinelMaster` (a Redis Cluster needs one node's address)".to_owned(),
                    );
                }
                Ok(target) if !target.tls && shared.tls.is_some() => {
                    problems.push("limits.shared.tls: only used with a `rediss://` URL".to_owned());
                }
                Ok(_) => {}
            }
            // A `{…}` in the prefix would be every key's hash tag: one Redis Cluster node for
            // all tenants, or (`{}`) a tenant's two keys on different nodes.
            if shared.prefix.contains(['{', '}']) {
                problems.push(
                    "limits.shared.prefix: `{` and `}` are kept for the tenant's name, which keeps a tenant's keys on one Redis Cluster node".to_owned(),
                );
            }
        }
        for (field, time) in times {
            if time.get().is_zero() {
                problems.push(format!("{field}: must be more than 0"));
            }
        }
        problems
    }
}

/// Whether two listeners would take the same port: the same address, or one of them on every
/// address. Port 0 asks for any free port, so two of them never clash.
fn same_port(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// The JWS algorithms the verifier implements; `none` is deliberately absent.
pub const SUPPORTED_JWT_ALGORITHMS: [&str; 10] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256",
];

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// A YAML or type error at its line, naming the `field` at fault unless the message does
/// (`line 72: models.llama-3-8b.versions[0].weight: expected a whole number from 0 to
/// 4294967295`, ``line 20: tenants.acme.injection: unknown variant `strict`…``).
fn yaml_error(err: &serde_saphyr::Error, field: &str) -> String {
    let options = serde_saphyr::render_options! {
        snippets: serde_saphyr::SnippetMode::Off,
    };
    let rendered = err.render_with_options(options);
    let first = rendered.lines().next().unwrap_or_default();
    let message = match first.rfind(" at line ") {
        Some(cut) => &first[..cut],
        None => first,
    };
    let unknown = plain_unknown_field(message);
    // The unknown key, which the path ends with.
    let unknown_name = (message.strip_prefix("unknown field `"))
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name);
    let mut message = (unknown.clone())
        .or_else(|| plain_type_error(message))
        .or_else(|| plain_duplicate_key(message))
        .or_else(|| plain_not_a_mapping(message))
        .unwrap_or_else(|| message.to_owned());
    // A key not read yet (a duplicate one) is `?` in the path: the mapping that holds it is named.
    let mut field = field.trim_end_matches(".?");
    // An unknown key is named in the message: the path says which mapping holds it.
    if let Some(name) = unknown_name {
        field = (field.strip_suffix(name))
            .map_or(field, |parent| parent.strip_suffix('.').unwrap_or(parent));
    }
    // A section missing at the top is most often a file cut short (a write in progress, a paste
    // that stopped), and the line is where the top-level mapping ends, not the section's.
    let top = field.is_empty() || field == "." || field == "?";
    if let Some(name) = (message.strip_prefix("missing field `"))
        .and_then(|rest| rest.strip_suffix('`'))
        .filter(|_| top)
    {
        message = format!(
            "`{name}` is missing, and required: the file's top level ends here (is the file cut short?)"
        );
    }
    let named = unknown_name.is_none() && names_field(&message, field);
    if !field.is_empty() && field != "." && field != "?" && !named {
        message = format!("{field}: {message}");
    }
    match err.location().map(|l| l.line()).filter(|&l| l > 0) {
        Some(line) => format!("line {line}: {message}"),
        None => message,
    }
}

/// Whether `message` already names the last part of `field`, as in "unknown field `maxToken`".
fn names_field(message: &str, field: &str) -> bool {
    let last = field.rsplit('.').next().unwrap_or(field);
    let name = last.split('[').next().unwrap_or(last);
    !name.is_empty() && message.contains(&format!("`{name}`"))
}

/// serde's unknown field message, with the known field closest to a misspelt one.
fn plain_unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (name, expected) = rest.split_once("`, expected one of ")?;
    let closest = (expected.split(", "))
        .map(|known| (edit_distance(name, known), known))
        .filter(|(distance, _)| *distance <= 2)
        .min();
    Some(match closest {
        Some((_, known)) => {
            format!("unknown field `{name}` (did you mean `{known}`?); expected one of {expected}")
        }
        None => message.to_owned(),
    })
}

/// How many single-letter insertions, deletions, substitutions and swaps of neighbours make
/// `a` into `b` (a swap is one typing slip, as in `auht`).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: the distance between the first i letters of `a` and the first j of `b`.
    let mut d = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let substitution = d[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(substitution);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The YAML library's "expected mapping start" (a section left empty, or given one value).
fn plain_not_a_mapping(message: &str) -> Option<String> {
    (message == "expected mapping start").then(|| {
        "expected settings indented under it (a mapping), and found none (every key commented out?), a single value or a list".to_owned()
    })
}

/// The YAML library's duplicate key message without its advice, which is for programmers.
fn plain_duplicate_key(message: &str) -> Option<String> {
    let rest = message.strip_suffix(", set DuplicateKeyPolicy in Options if acceptable")?;
    Some(match rest.strip_prefix("duplicate mapping key: ") {
        Some(key) => format!("`{key}` appears twice in this mapping; keep one"),
        None => "a key appears twice in this mapping; keep one".to_owned(),
    })
}

/// serde's "invalid u32" in words.
fn plain_type_error(message: &str) -> Option<String> {
    let wanted = message.strip_prefix("invalid ")?;
    Some(match wanted {
        "u8" => format!("expected a whole number from 0 to {}", u8::MAX),
        "u16" => format!("expected a whole number from 0 to {}", u16::MAX),
        "u32" => format!("expected a whole number from 0 to {}", u32::MAX),
        "u64" | "usize" => "expected a whole number, 0 or more".to_owned(),
        "i32" | "i64" => "expected a whole number".to_owned(),
        "f32" | "f64" => "expected a number".to_owned(),
        "bool" => "expected true or false".to_owned(),
        _ => return None,
    })
}

/// The JSON Schema of the configuration file.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(GatewayConfig)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Endpoint;

    #[test]
    fn an_unknown_key_is_named_with_its_mapping_and_the_known_key_it_is_closest_to() {
        let problems = with_tenant("    models: [llama]\n    requestPerMinute: 5").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("line 8: tenants.t: unknown field `requestPerMinute` (did you mean `requestsPerMinute`?); expected one of models, "),
            "{problems:?}"
        );
        // Nothing close: no guess.
        let problems = with_tenant("    models: [llama]\n    colour: blue").unwrap_err();
        assert!(
            problems[0].starts_with("line 8: tenants.t: unknown field `colour`, expected one of"),
            "{problems:?}"
        );
        // At the top, and under a key of the same name.
        let top = "listen: 127.0.0.1:8080\nauht: {}\ntenants: {}\nmodels: {}\naudit: {dir: /x, retentionDays: 1}\n";
        let problems = GatewayConfig::from_yaml(top).unwrap_err();
        assert!(
            problems[0].starts_with("line 2: unknown field `auht` (did you mean `auth`?)"),
            "{problems:?}"
        );
        let nested = top.replace("auht: {}", "auth: {auth: 1}");
        let problems = GatewayConfig::from_yaml(&nested).unwrap_err();
        assert!(
            problems[0].starts_with("line 2: auth: unknown field `auth`, expected one of"),
            "{problems:?}"
        );
        assert_eq!(edit_distance("auht", "auth"), 1);
        assert_eq!(edit_distance("auht", "audit"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("limits", "limits"), 0);
    }

    #[test]
    fn a_section_missing_at_the_top_is_said_to_be_missing_where_the_file_ends() {
        let cut = "listen: 127.0.0.1:8080\nauth: {}\ntenants: {}\nmodels: {}\n";
        let problems = GatewayConfig::from_yaml(cut).unwrap_err();
        assert_eq!(
            problems,
            [
                "line 4: `audit` is missing, and required: the file's top level ends here (is the file cut short?)"
            ]
        );
        // Deeper down, the mapping that lacks it is named.
        let no_url = cut.replace(
            "models: {}",
            "models: {m: {versions: [{name: a, weight: 1}]}}",
        ) + "audit: {dir: /x, retentionDays: 1}\n";
        let problems = GatewayConfig::from_yaml(&no_url).unwrap_err();
        assert!(problems[0].contains("missing field `url`"), "{problems:?}");
    }

    #[test]
    fn an_empty_section_is_said_to_be_empty() {
        let problems = GatewayConfig::from_yaml(
            "listen: 127.0.0.1:8080\nauth: {}\ntenants: {}\nmodels: {}\nlimits:\naudit: {dir: /x, retentionDays: 1}\n",
        )
        .unwrap_err();
        assert_eq!(
            problems,
            [
                "line 5: limits: expected settings indented under it (a mapping), and found none (every key commented out?), a single value or a list"
            ]
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named_by_its_field_in_words() {
        let text = "listen: 127.0.0.1:8080
auth:
  apiKeys:
    - {id: k, tenant: t, prefix: hgk_k, sha256: aa}
tenants:
  t:
    models: [m]
models:
  m:
    versions:
      - name: v1
        url: http://127.0.0.1:9
        weight: ninety
audit: {dir: /tmp/a, retentionDays: 1}
";
        let problems = GatewayConfig::from_yaml(text).unwrap_err();
        assert_eq!(
            problems,
            ["line 13: models.m.versions[0].weight: expected a whole number from 0 to 4294967295"]
        );
        // Whatever the style: a flow map, a key with colons.
        let flow = text
            .replace(
                "audit: {dir: /tmp/a, retentionDays: 1}",
                "audit: {dir: /tmp/a, retentionDays: many}",
            )
            .replace("weight: ninety", "weight: 1")
            .replace("  m:\n", "  \"llama3.1:8b\":\n")
            .replace("models: [m]", "models: [\"llama3.1:8b\"]");
        let problems = GatewayConfig::from_yaml(&flow).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("audit.retentionDays: expected a whole number"),
            "{problems:?}"
        );
    }

    /// A whole configuration with `tenant` as the one tenant's fields.
    fn with_tenant(tenant: &str) -> Result<GatewayConfig, Vec<String>> {
        with_tenant_and_version(tenant, "blue")
    }

    fn with_tenant_and_version(tenant: &str, version: &str) -> Result<GatewayConfig, Vec<String>> {
        GatewayConfig::from_yaml(&format!(
            "listen: 127.0.0.1:8080
auth:
  apiKeys:
    - {{id: k1, tenant: t, prefix: abcdefgh, sha256: \"sha256:{}\"}}
tenants:
  t:
{tenant}
models:
  llama:
    versions:
      - {{name: {version:?}, url: \"http://127.0.0.1:8000\", weight: 100}}
audit:
  dir: /var/lib/hangar/audit
  retentionDays: 30
",
            "0".repeat(64)
        ))
    }

    #[test]
    fn a_tenant_whose_keys_are_all_revoked_or_expired_has_no_way_in() {
        let mut config = with_tenant("    models: [llama]").unwrap();
        let now = jiff::Timestamp::now();
        assert!(config.tenants_without_a_key(now).is_empty());
        config.auth.api_keys[0].expires = Some("2020-01-01T00:00:00Z".into());
        assert_eq!(config.tenants_without_a_key(now), ["t"]);
        config.auth.api_keys[0].expires = None;
        config.auth.api_keys[0].revoked = true;
        assert_eq!(config.tenants_without_a_key(now), ["t"]);
    }

    #[test]
    fn a_token_limit_not_above_max_tokens_is_warned_about() {
        let now = jiff::Timestamp::now();
        let affordable = with_tenant("    models: [llama]\n    tokensPerMinute: 8000").unwrap();
        assert!(affordable.tenant_warnings(now).is_empty());
        // The prompt comes on top: a minute's worth of exactly maxTokens is not enough either.
        for short in [1000, 4096] {
            let tenant = format!("    models: [llama]\n    tokensPerMinute: {short}");
            let config = with_tenant(&tenant).unwrap();
            assert_eq!(
                config.tenant_warnings(now),
                [format!(
                    "tenants.t: tokensPerMinute {short} is not above maxTokens 4096: a request that sets no max_tokens reserves its prompt plus 4096 tokens and is refused; lower maxTokens or raise tokensPerMinute"
                )]
            );
        }
    }

    #[test]
    fn every_file_the_configuration_names_is_watched() {
        assert!(
            with_tenant("    models: [llama]")
                .unwrap()
                .named_files()
                .is_empty()
        );
        let config = GatewayConfig::from_yaml(
            "listen: 127.0.0.1:8443
tls: {cert: /tls/tls.crt, key: /tls/tls.key}
upstreamTls: {caFile: /models/ca.pem, keyFile: /models/client.key}
auth:
  jwt: {issuer: i, audiences: [a], jwks: {file: /idp/jwks.json}, caFile: /idp/ca.pem, algorithms: [RS256], tenantClaim: t}
tenants: {}
models: {}
guards: {canarySeedFile: /secrets/canary-seed}
audit: {dir: /var/lib/hangar/audit, retentionDays: 30}
",
        )
        .unwrap();
        let named: Vec<&str> = config
            .named_files()
            .iter()
            .filter_map(|path| path.to_str())
            .collect();
        assert_eq!(
            named,
            [
                "/tls/tls.crt",
                "/tls/tls.key",
                "/models/ca.pem",
                "/models/client.key",
                "/idp/jwks.json",
                "/idp/ca.pem",
                "/secrets/canary-seed"
            ]
        );
    }

    #[test]
    fn a_tenant_may_be_limited_to_some_endpoints() {
        let config =
            with_tenant("    models: [llama]\n    endpoints: [embedding, models]").unwrap();
        assert_eq!(
            config.tenants["t"].endpoints,
            Some(vec![Endpoint::Embedding, Endpoint::Models])
        );
        assert_eq!(
            with_tenant("    models: [llama]").unwrap().tenants["t"].endpoints,
            None
        );
    }

    #[test]
    fn endpoint_mistakes_name_their_line_or_field() {
        let problems = with_tenant("    models: [llama]\n    endpoints: []").unwrap_err();
        assert!(
            problems[0].starts_with("tenants.t.endpoints: empty"),
            "{problems:?}"
        );
        let problems = with_tenant("    models: [llama]\n    endpoints: [chats]").unwrap_err();
        assert!(
            problems[0].starts_with("line 8:") && problems[0].contains("chats"),
            "{problems:?}"
        );
    }

    #[test]
    fn times_must_be_more_than_zero() {
        let problems = with_tenant("    models: [llama]\n    timeouts: {idle: 0s}\nlimits:\n  requestRead: 0ms\n  timeouts: {firstToken: 0s}").unwrap_err();
        assert_eq!(
            problems,
            [
                "limits.requestRead: must be more than 0",
                "limits.timeouts.firstToken: must be more than 0",
                "tenants.t.timeouts.idle: must be more than 0",
            ]
        );
    }

    #[test]
    fn an_answer_head_limit_outside_its_range_is_refused() {
        let with_limit = |bytes: u32| {
            let mut config = with_tenant("    models: [llama]").unwrap();
            config.limits.answer_head_bytes = bytes;
            config.problems()
        };
        assert_eq!(with_limit(4096), Vec::<String>::new());
        assert_eq!(with_limit(1024), Vec::<String>::new());
        assert_eq!(with_limit(65536), Vec::<String>::new());
        for refused in [0, 1023, 65537] {
            assert_eq!(
                with_limit(refused),
                ["limits.answerHeadBytes: must be from 1024 to 65536 (bytes)"]
            );
        }
        let loaded = with_tenant("    models: [llama]\nlimits: {answerHeadBytes: 16384}").unwrap();
        assert_eq!(loaded.limits.answer_head_bytes, 16384);
    }

    #[test]
    fn audit_settings_the_ledger_would_refuse_at_start_are_refused_at_load() {
        let mut config = with_tenant("    models: [llama]").unwrap();
        config.audit.rotate_size = Bytes(0);
        config.audit.content = Some(ContentLogConfig { retention_days: 0 });
        assert_eq!(
            config.problems(),
            [
                "audit.content.retentionDays: must be at least 1",
                "audit.rotateSize: must be more than 0 (64MiB if left out)",
            ]
        );
    }

    #[test]
    fn no_connection_limit_of_zero_and_no_time_past_a_year() {
        let problems =
            with_tenant("    models: [llama]\nlimits:\n  maxConnections: 0").unwrap_err();
        assert_eq!(
            problems,
            ["limits.maxConnections: must be at least 1, or nothing is served"]
        );
        let far = with_tenant("    models: [llama]\n    timeouts: {idle: 200000000000000d}");
        let problems = far.unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("is more than a year"), "{problems:?}");
        assert_eq!(
            parse_duration("366d"),
            Ok(Duration::from_secs(366 * 86_400))
        );
        assert!(parse_duration("367d").is_err());
    }

    #[test]
    fn extraction_thresholds_that_could_never_alert_are_refused() {
        let problems = with_tenant(
            "    models: [llama]\nguards:\n  extraction: {window: 0s, minRequests: 100000, distinctRatio: -1, outputInputRatio: .nan}",
        )
        .unwrap_err();
        let fields: Vec<&str> = problems
            .iter()
            .filter_map(|problem| problem.split(':').next())
            .collect();
        assert_eq!(
            fields,
            [
                "guards.extraction.window",
                "guards.extraction.minRequests",
                "guards.extraction.distinctRatio",
                "guards.extraction.outputInputRatio"
            ],
            "{problems:?}"
        );
        assert!(
            with_tenant(
                "    models: [llama]\nguards:\n  extraction: {minRequests: 65536, distinctRatio: 1}"
            )
            .is_ok()
        );
    }

    #[test]
    fn no_connection_limit_per_client_of_zero() {
        let problems =
            with_tenant("    models: [llama]\nlimits:\n  maxConnectionsPerClient: 0").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("limits.maxConnectionsPerClient: must be at least 1"));
    }

    #[test]
    fn a_tenant_needs_a_name_that_can_key_the_shared_limits() {
        let problems = with_tenant("    models: [llama]\n  \" \":\n    models: [llama]");
        assert_eq!(
            problems.unwrap_err(),
            ["tenants: ` ` is not a tenant's name"]
        );
        let braces = "    models: [llama]\n  \"}a\":\n    models: [llama]";
        assert!(with_tenant(braces).is_ok());
        let shared = format!("{braces}\nlimits:\n  shared: {{url: redis://redis}}");
        assert_eq!(
            with_tenant(&shared).unwrap_err(),
            ["tenants.}a: a name with `{` or `}` cannot key the shared limits in Redis"]
        );
    }

    #[test]
    fn a_key_has_one_entry() {
        let config = with_tenant("    models: [llama]").unwrap();
        let mut yaml = serde_saphyr::to_string(&config).unwrap();
        let copy = format!(
            "apiKeys:\n  - id: k2\n    tenant: t\n    prefix: abcdefgh\n    sha256: sha256:{}\n    revoked: true\n",
            "0".repeat(64)
        );
        yaml = yaml.replacen("apiKeys:\n", &copy, 1);
        assert_eq!(
            GatewayConfig::from_yaml(&yaml).unwrap_err(),
            ["auth.apiKeys[1] (k1).sha256: the same key as `k2`; give each key one entry"]
        );
    }

    #[test]
    fn a_shared_prefix_leaves_the_hash_tag_to_the_tenant() {
        for prefix in ["hangar{a}", "{}", "x}"] {
            let shared = format!(
                "    models: [llama]\nlimits:\n  shared: {{url: redis://redis, prefix: \"{prefix}\"}}"
            );
            assert_eq!(
                with_tenant(&shared).unwrap_err(),
                [
                    "limits.shared.prefix: `{` and `}` are kept for the tenant's name, which keeps a tenant's keys on one Redis Cluster node"
                ],
                "{prefix}"
            );
        }
        let plain =
            "    models: [llama]\nlimits:\n  shared: {url: redis://redis, prefix: \"team-a:gw\"}";
        assert!(with_tenant(plain).is_ok());
    }

    #[test]
    fn shared_limits_need_a_redis_url_without_a_password_and_a_timeout() {
        let problems = with_tenant(
            "    models: [llama]\nlimits:\n  shared: {url: \"redis://gw:hunter2@redis:6379\", timeout: 0ms}",
        )
        .unwrap_err();
        assert_eq!(
            problems,
            [
                "limits.shared.url: put the password in `passwordFile`, not in the URL",
                "limits.shared.timeout: must be more than 0",
            ]
        );
        let fine = with_tenant("    models: [llama]\nlimits:\n  shared: {url: redis://redis}");
        assert!(fine.is_ok(), "{fine:?}");
        let problems = with_tenant(
            "    models: [llama]\nlimits:\n  shared: {url: \"redis://gw@redis\", timeout: 2s}",
        )
        .unwrap_err();
        assert_eq!(
            problems,
            [
                "limits.shared.timeout: at most 1s (a request should not wait longer for its limits)",
                "limits.shared.url: names a user but `passwordFile` is not set",
            ]
        );
        let problems = with_tenant(
            "    models: [llama]\nlimits:\n  shared: {url: redis://redis, tls: {caFile: /ca.pem}}",
        )
        .unwrap_err();
        assert_eq!(
            problems,
            ["limits.shared.tls: only used with a `rediss://` URL"]
        );
        let problems = with_tenant(
            "    models: [llama]\nlimits:\n  shared: {url: \"redis://redis:26379\", sentinelMaster: \"\"}",
        )
        .unwrap_err();
        assert_eq!(
            problems,
            ["limits.shared.sentinelMaster: must not be empty"]
        );
        let several = "    models: [llama]\nlimits:\n  shared: {url: \"redis://s0:26379,s1:26379\"";
        let problems = with_tenant(&format!("{several}}}")).unwrap_err();
        assert!(
            problems[0].starts_with("limits.shared.url: several hosts are only for Sentinels"),
            "{problems:?}"
        );
        assert!(with_tenant(&format!("{several}, sentinelMaster: limits}}")).is_ok());
        let tls =
            "    models: [llama]\nlimits:\n  shared: {url: rediss://redis, tls: {caFile: /ca.pem}}";
        let config = with_tenant(tls).unwrap();
        assert!(config.named_files().contains(&Path::new("/ca.pem")));
    }

    #[test]
    fn version_names_are_what_a_header_carries_as_written() {
        let with_version = |name: &str| with_tenant_and_version("    models: [llama]", name);
        for name in ["1.4.0+build.7", "llama3:8b", "blue_2"] {
            assert!(with_version(name).is_ok(), "{name}");
        }
        for name in ["grün", "", "blue one"] {
            let problems = with_version(name).unwrap_err();
            assert!(
                problems[0].starts_with("models.llama.versions[0].name: "),
                "{name}: {problems:?}"
            );
        }
    }

    #[test]
    fn rates_of_zero_or_past_a_trillion_are_refused() {
        let problems =
            with_tenant("    models: [llama]\n    requestsPerMinute: 0\n    tokensPerMinute: 0")
                .unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("tenants.t.requestsPerMinute: must be more than 0"));
        assert!(problems[1].starts_with("tenants.t.tokensPerMinute: must be more than 0"));
        let huge = "    models: [llama]\n    tokensPerMinute: 9223372036854775808";
        let problems = with_tenant(huge).unwrap_err();
        assert_eq!(
            problems,
            ["tenants.t.tokensPerMinute: at most 1000000000000 (leave it out for no limit)"]
        );
        assert!(with_tenant("    models: [llama]\n    tokensPerMinute: 1000000000000").is_ok());
    }

    #[test]
    fn extra_parameters_cannot_open_what_a_switch_governs() {
        let problems =
            with_tenant("    models: [llama]\n    extraParameters: [top_a, logprobs, tools]")
                .unwrap_err();
        assert_eq!(
            problems,
            [
                "tenants.t.extraParameters: `logprobs` is governed by `allowLogprobs`, not by this list",
                "tenants.t.extraParameters: `tools` is governed by `allowTools`, not by this list",
            ]
        );
        with_tenant("    models: [llama]\n    extraParameters: [top_a]").unwrap();
    }

    #[test]
    fn trusted_proxies_are_address_blocks() {
        let fine = with_tenant(
            "    models: [llama]\ntrustedProxies: [10.0.0.0/8, \"fd00::/8\", 192.0.2.7]",
        );
        assert_eq!(fine.unwrap().trusted_proxies.len(), 3);
        let problems =
            with_tenant("    models: [llama]\ntrustedProxies: [10.0.0.0/33, load-balancer]")
                .unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("trustedProxies[0]: `10.0.0.0/33`: the prefix length"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("trustedProxies[1]: `load-balancer` is not an address block"),
            "{problems:?}"
        );
    }

    #[test]
    fn the_operator_listener_needs_a_port_of_its_own() {
        let mut config = with_tenant("    models: [llama]").unwrap();
        config.admin_listen = Some(config.listen);
        assert_eq!(
            config.problems(),
            [
                "adminListen: 127.0.0.1:8080 takes the port of `listen` (127.0.0.1:8080); metrics, health and readiness are never served on the inference port, so give them a port of their own"
            ]
        );
        config.admin_listen = Some("0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.problems().len(), 1);
        config.admin_listen = Some("127.0.0.1:9090".parse().unwrap());
        assert!(config.problems().is_empty());
        // Port 0 is any free port: two listeners asking for it never clash.
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.admin_listen = Some(config.listen);
        assert!(config.problems().is_empty());
    }

    #[test]
    fn a_key_needs_an_id() {
        let mut config = with_tenant("    models: [llama]").unwrap();
        config.auth.api_keys[0].id = " ".to_owned();
        assert_eq!(
            config.problems(),
            ["auth.apiKeys[0].id: empty; name the key (logs and metrics show its id)"]
        );
    }

    #[test]
    fn a_wrong_choice_names_its_field_and_a_repeated_key_its_name() {
        let problems = with_tenant("    models: [llama]\n    injection: strict").unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("line 8: tenants.t.injection: unknown variant `strict`"),
            "{problems:?}"
        );
        let problems = with_tenant("    models: [llama]\n  t:\n    models: [llama]").unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("line 8: ")
                && problems[0].contains("`t` appears twice in this mapping; keep one")
                && !problems[0].contains("DuplicateKeyPolicy"),
            "{problems:?}"
        );
    }

    #[test]
    fn durations_may_be_sums_and_a_wrong_unit_names_its_field() {
        assert_eq!(parse_duration("5m30s"), Ok(Duration::from_secs(330)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1m500ms"), Ok(Duration::from_millis(60_500)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        // A bare number only alone: in `5m30` the 30 could be anything.
        assert!(parse_duration("5m30").is_err());
        let config = with_tenant("    models: [llama]\nlimits:\n  drain: 5m30s").unwrap();
        assert_eq!(config.limits.drain, Seconds(Duration::from_secs(330)));
        let problems = with_tenant("    models: [llama]\nlimits:\n  drain: 5min").unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].ends_with(
                "limits.drain: unknown unit `min` in `5min` (use ms, s, m, h or d, or a sum like 5m30s)"
            ),
            "{problems:?}"
        );
    }

    #[test]
    fn models_a_tenant_names_must_exist() {
        let problems = with_tenant("    models: [llama, mistral]").unwrap_err();
        assert!(
            problems[0].starts_with("tenants.t.models: `mistral` is not in `models`"),
            "{problems:?}"
        );
    }
}
