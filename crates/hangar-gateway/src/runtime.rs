//! The configuration compiled for serving: key index, JWT verifier, tenants, route table,
//! guards and the upstream client. One value, built whole from a checked configuration and
//! swapped whole on reload, so a request sees one consistent configuration from start to end.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hangar_guard::{InjectionScanner, Redactor, SecretKind};
use rustls::sign::CertifiedKey;

use crate::auth::jwt::JwtVerifier;
use crate::auth::keys::KeyStore;
use crate::config::{GatewayConfig, GuardAction, GuardsConfig, JwtConfig, TlsConfig};
use crate::forwarded::Cidr;
use crate::limits::{SharedLimits, TenantLimits};
use crate::request::{Endpoint, ParameterPolicy};
use crate::routes::RouteTable;
use crate::upstream::Upstreams;

/// One tenant, ready to serve.
#[derive(Debug)]
pub struct Tenant {
    /// The tenant's name.
    pub name: Arc<str>,
    /// `None` means every model.
    pub models: Option<HashSet<String>>,
    /// `None` means every route.
    pub endpoints: Option<Vec<Endpoint>>,
    /// Parameter caps and permissions.
    pub params: ParameterPolicy,
    /// Largest body accepted.
    pub max_body_bytes: u64,
    /// Rate and concurrency limits.
    pub limits: TenantLimits,
    /// May pin a version with `x-hangar-version`.
    pub allow_version_pin: bool,
    /// Redact prompts before the model server.
    pub redact_upstream: bool,
    /// What the injection and canary guards do.
    pub injection: GuardAction,
    /// Strings whose appearance in an answer means the system prompt leaked.
    pub canaries: Vec<String>,
    /// The gateway's own canary, added to system messages when `inject_canary` is on.
    pub injected_canary: Option<String>,
    /// Time to the response headers or first token.
    pub first_token: Duration,
    /// Longest silence within an answer.
    pub idle: Duration,
}

impl Tenant {
    /// Whether the tenant may use the public model `model`.
    pub fn may_use(&self, model: &str) -> bool {
        self.models.as_ref().is_none_or(|m| m.contains(model))
    }

    /// Whether the tenant may call `endpoint`.
    pub fn may_call(&self, endpoint: Endpoint) -> bool {
        self.endpoints
            .as_ref()
            .is_none_or(|e| e.contains(&endpoint))
    }
}

/// Everything a request needs from the configuration.
pub struct Runtime {
    /// The configuration this was built from.
    pub config: GatewayConfig,
    /// API keys by prefix.
    pub keys: KeyStore,
    /// The JWT verifier, if tokens are accepted.
    pub jwt: Option<Arc<JwtVerifier>>,
    /// Tenants by name.
    pub tenants: HashMap<String, Tenant>,
    /// Public model → versions.
    pub routes: RouteTable,
    /// The connections to model servers.
    pub upstreams: Upstreams,
    /// Redaction, unless `guards.redact` is empty.
    pub redactor: Option<Arc<Redactor>>,
    /// Prompt-injection heuristics.
    pub scanner: Arc<InjectionScanner>,
    /// The rate buckets in Redis, with `limits.shared`.
    pub shared_limits: Option<Arc<SharedLimits>>,
    /// The certificate and key served on the API listener, when it speaks TLS. Each handshake
    /// takes the current one, so a reload brings in a renewed certificate.
    pub served_certificate: Option<Arc<CertifiedKey>>,
    /// When the certificates the gateway shows expire, in seconds since 1970: `served` (the API
    /// listener's) and `model_client` (the one shown to model servers).
    pub certificate_expiry: Vec<(&'static str, i64)>,
    /// `trustedProxies`: peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<Cidr>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("tenants", &self.tenants.len())
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

/// The injection scanner, compiled once per process: its rules are built in, and compiling
/// them takes tens of milliseconds that a reload need not spend again.
fn shared_scanner() -> Arc<InjectionScanner> {
    static SCANNER: OnceLock<Arc<InjectionScanner>> = OnceLock::new();
    Arc::clone(SCANNER.get_or_init(|| Arc::new(InjectionScanner::default())))
}

impl Runtime {
    /// Compiles a checked configuration. `previous` lends its JWT verifier (and so its cached
    /// keys) when the JWT settings did not change.
    pub fn build(
        config: GatewayConfig,
        previous: Option<&Runtime>,
    ) -> Result<Runtime, Vec<String>> {
        let mut problems = config.problems();
        let routes = RouteTable::new(&config.models).unwrap_or_else(|mut more| {
            problems.append(&mut more);
            RouteTable::default()
        });
        let jwt = match &config.auth.jwt {
            None => None,
            Some(jwt_config) => match reuse_verifier(jwt_config, previous) {
                Some(verifier) => Some(verifier),
                None => {
                    match JwtVerifier::after(jwt_config, previous.and_then(|p| p.jwt.as_deref())) {
                        Ok(verifier) => Some(Arc::new(verifier)),
                        Err(e) => {
                            problems.push(format!("auth.jwt: {e}"));
                            None
                        }
                    }
                }
            },
        };
        let upstream_tls = config.upstream_tls.as_ref();
        let head_limit = config.limits.answer_head_bytes as usize;
        let connect = config.limits.timeouts.connect.get();
        let upstreams = match Upstreams::new(connect, head_limit, upstream_tls) {
            Ok(upstreams) => Some(upstreams),
            Err(e) => {
                problems.push(e);
                None
            }
        };
        let served_certificate = match &config.tls {
            Some(tls) => match served_certificate(tls) {
                Ok(certified) => Some(certified),
                Err(e) => {
                    problems.push(e);
                    None
                }
            },
            // TLS is switched on or off only by a restart: until then the listener keeps
            // serving the certificate it has.
            None => previous.and_then(|p| p.served_certificate.clone()),
        };
        let shared_limits = match config.limits.shared.as_ref().map(SharedLimits::new) {
            None => None,
            // A reload that changes nothing here keeps the connections and the outage state.
            Some(Ok(new)) => previous
                .and_then(|p| p.shared_limits.clone())
                .filter(|old| old.same_as(&new))
                .or_else(|| Some(Arc::new(new))),
            Some(Err(e)) => {
                problems.push(e);
                None
            }
        };
        let canary_seed = canary_seed(&config.guards).unwrap_or_else(|e| {
            problems.push(e);
            None
        });
        let scanner = shared_scanner();
        if !scanner.is_ready() {
            // Serving without it would scan nothing and say nothing.
            problems.push("the built-in injection rules did not compile: a bug in Hangar".into());
        }
        let (Some(upstreams), true) = (upstreams, problems.is_empty()) else {
            problems.dedup();
            return Err(problems);
        };
        let kinds: Vec<SecretKind> = config
            .guards
            .redact
            .iter()
            .filter_map(|k| SecretKind::parse(k))
            .collect();
        let redactor = (!kinds.is_empty()).then(|| Arc::new(Redactor::new(&kinds)));
        let tenants = config
            .tenants
            .iter()
            .map(|(name, t)| {
                let tenant = tenant(name, t, &config, canary_seed.as_deref());
                (name.clone(), tenant)
            })
            .collect();
        // Checked by `problems` above.
        let trusted_proxies = (config.trusted_proxies.iter())
            .filter_map(|block| Cidr::parse(block).ok())
            .collect();
        Ok(Runtime {
            keys: KeyStore::new(&config.auth.api_keys),
            jwt,
            tenants,
            routes,
            upstreams,
            redactor,
            scanner,
            shared_limits,
            certificate_expiry: certificate_expiry(&config, served_certificate.as_deref()),
            served_certificate,
            trusted_proxies,
            config,
        })
    }
}

/// A certificate that expires within this time is warned about at each load.
const EXPIRY_WARNING: i64 = 14 * 24 * 3600;

/// When the served and the model-client certificates expire; a warning for one that has expired
/// or soon will.
fn certificate_expiry(
    config: &GatewayConfig,
    served: Option<&CertifiedKey>,
) -> Vec<(&'static str, i64)> {
    let served = served.and_then(|key| key.end_entity_cert().ok().cloned());
    let model_client = config
        .upstream_tls
        .as_ref()
        .and_then(|tls| tls.cert_file.as_deref())
        .and_then(|path| crate::pem::certificates(path).ok())
        .and_then(|chain| chain.into_iter().next());
    let now = jiff::Timestamp::now().as_second();
    let mut expiry = Vec::new();
    for (name, certificate) in [("served", served), ("model_client", model_client)] {
        let Some(not_after) = certificate.as_ref().and_then(crate::pem::not_after) else {
            continue;
        };
        if not_after - now < EXPIRY_WARNING {
            let when = jiff::Timestamp::from_second(not_after)
                .map_or_else(|_| not_after.to_string(), |t| t.to_string());
            let verb = if not_after <= now {
                "expired"
            } else {
                "expires"
            };
            tracing::warn!("the {name} certificate {verb} at {when}: renew it");
        }
        expiry.push((name, not_after));
    }
    expiry
}

/// The certificate chain and key of `tls`, checked to belong together.
fn served_certificate(tls: &TlsConfig) -> Result<Arc<CertifiedKey>, String> {
    let chain = crate::pem::certificates(&tls.cert).map_err(|e| format!("tls.cert: {e}"))?;
    let key = crate::pem::private_key(&tls.key).map_err(|e| format!("tls.key: {e}"))?;
    CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider())
        .map(Arc::new)
        .map_err(|e| format!("tls: the cert and key do not fit together: {e}"))
}

/// A random seed drawn once per process, for canaries when the configuration sets none: a
/// token nobody can compute from the tenant's name.
fn process_seed() -> &'static str {
    static SEED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SEED.get_or_init(|| {
        let bytes: [u8; 16] = match ring::rand::generate(&ring::rand::SystemRandom::new()) {
            Ok(random) => random.expose(),
            Err(_) => {
                tracing::error!(
                    "the system's random source failed: set guards.canarySeed, or the \
                     gateway's own canaries can be guessed"
                );
                [0; 16]
            }
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    })
}

fn reuse_verifier(config: &JwtConfig, previous: Option<&Runtime>) -> Option<Arc<JwtVerifier>> {
    let previous = previous?;
    // A JWKS file is read again on reload: that is how its keys are rotated.
    if matches!(config.jwks, crate::config::JwksSource::File(_)) {
        return None;
    }
    let verifier = previous.jwt.clone()?;
    // So is a CA file: the verifier (and its cached keys) stays only while it is the same.
    let same_ca = config.ca_file.as_deref().is_none_or(|path| {
        crate::pem::certificates(path).is_ok_and(|certs| certs == verifier.ca_certificates())
    });
    (previous.config.auth.jwt.as_ref() == Some(config) && same_ca).then_some(verifier)
}

/// The configured canary seed, written inline or read from its file.
fn canary_seed(guards: &GuardsConfig) -> Result<Option<String>, String> {
    let Some(path) = &guards.canary_seed_file else {
        return Ok(guards.canary_seed.clone());
    };
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("guards.canarySeedFile: cannot read {shown}: {e}"))?;
    match text.trim() {
        "" => Err(format!("guards.canarySeedFile: {shown} is empty")),
        seed => Ok(Some(seed.to_owned())),
    }
}

fn tenant(
    name: &str,
    t: &crate::config::TenantConfig,
    config: &GatewayConfig,
    canary_seed: Option<&str>,
) -> Tenant {
    let models = (!t.models.iter().any(|m| m == "*")).then(|| t.models.iter().cloned().collect());
    let injected_canary = t.inject_canary.then(|| {
        let seed = canary_seed.unwrap_or_else(|| process_seed());
        hangar_guard::new_canary_token(format!("{seed}/{name}").as_bytes())
    });
    let mut canaries = t.canaries.clone();
    canaries.extend(injected_canary.clone());
    let timeouts = t.timeouts.unwrap_or(crate::config::TenantTimeouts {
        first_token: None,
        idle: None,
    });
    Tenant {
        name: Arc::from(name),
        models,
        endpoints: t.endpoints.clone(),
        params: ParameterPolicy {
            max_tokens: t.max_tokens,
            max_n: t.max_n,
            allow_logprobs: t.allow_logprobs,
            allow_logit_bias: t.allow_logit_bias,
            allow_tools: t.allow_tools,
            allow_chat_template: t.allow_chat_template,
            max_messages: t.max_messages,
            extra_parameters: t.extra_parameters.iter().cloned().collect(),
        },
        max_body_bytes: t.max_body_bytes.0,
        limits: TenantLimits {
            requests_per_minute: t.requests_per_minute,
            tokens_per_minute: t.tokens_per_minute,
            max_concurrent: t.max_concurrent,
        },
        allow_version_pin: t.allow_version_pin,
        redact_upstream: t.redact_upstream,
        injection: t.injection,
        canaries,
        injected_canary,
        first_token: timeouts
            .first_token
            .unwrap_or(config.limits.timeouts.first_token)
            .get(),
        idle: timeouts.idle.unwrap_or(config.limits.timeouts.idle).get(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The canary the gateway injects for tenant `t` with `guards` as the guard settings.
    fn injected_canary(guards: &str) -> Result<Option<String>, Vec<String>> {
        let yaml = format!(
            "listen: 127.0.0.1:8080
auth:
  apiKeys:
    - {{id: k1, tenant: t, prefix: abcdefgh, sha256: \"sha256:{}\"}}
tenants:
  t: {{models: [llama], injectCanary: true}}
models:
  llama:
    versions:
      - {{name: blue, url: \"http://127.0.0.1:8000\", weight: 100}}
guards: {guards}
audit: {{dir: /var/lib/hangar/audit, retentionDays: 30}}
",
            "0".repeat(64)
        );
        let runtime = Runtime::build(GatewayConfig::from_yaml(&yaml)?, None)?;
        Ok(runtime.tenants["t"].injected_canary.clone())
    }

    #[test]
    fn the_canary_seed_can_be_kept_in_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("canary-seed");
        let from_file = || injected_canary(&format!("{{canarySeedFile: {}}}", seed.display()));
        std::fs::write(&seed, "rotate-me-2026-11\n").unwrap();
        let inline = injected_canary("{canarySeed: rotate-me-2026-11}").unwrap();
        assert!(inline.is_some());
        assert_eq!(from_file().unwrap(), inline);
        assert_ne!(
            injected_canary("{canarySeed: another-seed}").unwrap(),
            inline
        );

        std::fs::write(&seed, " \n").unwrap();
        let problems = from_file().unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("guards.canarySeedFile:") && p.ends_with("is empty")),
            "{problems:?}"
        );
        std::fs::remove_file(&seed).unwrap();
        let problems = from_file().unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("guards.canarySeedFile: cannot read")),
            "{problems:?}"
        );
        let both = format!("{{canarySeed: s, canarySeedFile: {}}}", seed.display());
        let problems = injected_canary(&both).unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("not both")),
            "{problems:?}"
        );
    }
}
