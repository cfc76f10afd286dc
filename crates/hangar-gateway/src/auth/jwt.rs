//! OIDC/JWT bearer tokens, verified without a JWT library so that every check is in sight:
//! the compact JWS form, an explicit algorithm allowlist, the key type bound to the algorithm
//! (which is what refuses `none` and HS/RS confusion), the signature (by ring), then `iss`,
//! `aud`, `exp`, `nbf`, `iat` and the tenant claim.
//!
//! Keys come from a JWKS file, read when the verifier is built, or a JWKS URL, fetched on first
//! use, cached for `cacheFor`, fetched again for an unknown `kid` (key rotation), and never
//! more than once per [`MIN_REFETCH_INTERVAL`] whatever asks for it ([`RETRY_WITHOUT_KEYS`]
//! while no fetch has succeeded yet, when nothing can be verified). Embedded keys (`jwk`,
//! `jku`, `x5u`, `x5c`) are never read.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::header::ACCEPT;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jiff::Timestamp;
use ring::signature::{self, RsaParameters, RsaPublicKeyComponents, UnparsedPublicKey};
use rustls::pki_types::CertificateDer;
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::{AuthError, Identity};
use crate::config::{JwksSource, JwtConfig, SUPPORTED_JWT_ALGORITHMS};

/// Longest token accepted, checked before any decoding.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Largest JWKS document read from the identity provider.
pub const MAX_JWKS_BYTES: usize = 1 << 20;
/// Time allowed for one JWKS fetch, body included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// At most one JWKS fetch per this interval, whatever asks for it (an unknown `kid`, an expired
/// cache, an earlier failure), so tokens with made-up key ids cannot make the gateway hammer
/// the identity provider.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// The same, while no fetch has brought keys: every token is refused meanwhile, so an identity
/// provider back from an outage (or reachable a moment after the gateway started) is asked
/// again soon, at one fetch a second at most.
pub const RETRY_WITHOUT_KEYS: Duration = Duration::from_secs(1);
/// Verified tokens remembered, so a client repeating its token costs one signature check.
const VERIFIED_CACHE_ENTRIES: usize = 10_000;
const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 8192;
/// RFC 7518 §3.2: an HS256 key at least as long as the hash.
const MIN_HMAC_KEY_BYTES: usize = 32;

type JwksClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Checks bearer tokens against one `auth.jwt` configuration. Built again on configuration
/// reload; shared behind an `Arc` by the requests in flight.
pub struct JwtVerifier {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    tenant_claim: String,
    subject_claim: String,
    leeway_seconds: i64,
    max_lifetime_seconds: i64,
    keys: Keys,
    /// What `caFile` held when this verifier was built.
    ca_certificates: Vec<CertificateDer<'static>>,
    verified: Mutex<VerifiedTokens>,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algorithms: Vec<&str> = self.algorithms.iter().map(|a| a.name()).collect();
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("algorithms", &algorithms)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// The certificates `auth.jwt.caFile` held when this verifier was built.
    pub fn ca_certificates(&self) -> &[CertificateDer<'static>] {
        &self.ca_certificates
    }

    /// Builds the verifier. A JWKS file is read now, and a bad key in it is an error naming the
    /// file and the key's index and field; a JWKS URL is checked now and fetched on first use.
    pub fn new(config: &JwtConfig) -> Result<JwtVerifier, String> {
        JwtVerifier::after(config, None)
    }

    /// As [`JwtVerifier::new`], keeping the keys `previous` fetched when they come from the same
    /// URL through the same CAs, so that a reload changing another setting (a leeway, an
    /// audience) does not need the identity provider to answer at that moment.
    pub fn after(
        config: &JwtConfig,
        previous: Option<&JwtVerifier>,
    ) -> Result<JwtVerifier, String> {
        let algorithms = config
            .algorithms
            .iter()
            .map(|name| {
                Algorithm::from_name(name).ok_or_else(|| {
                    format!(
                        "auth.jwt.algorithms: `{name}` is not supported (use {})",
                        SUPPORTED_JWT_ALGORITHMS.join(", ")
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if algorithms.is_empty() {
            return Err("auth.jwt.algorithms: list the algorithms to accept, e.g. [RS256]".into());
        }
        if config.audiences.is_empty() {
            return Err("auth.jwt.audiences: at least one audience is required".into());
        }
        let ca_certificates = match &config.ca_file {
            Some(path) => {
                crate::pem::certificates(path).map_err(|e| format!("auth.jwt.caFile: {e}"))?
            }
            None => Vec::new(),
        };
        let keys = match &config.jwks {
            JwksSource::File(_) if config.ca_file.is_some() => {
                return Err("auth.jwt.caFile: only used with `jwks: {url: …}`".into());
            }
            JwksSource::File(path) => Keys::File(Arc::new(read_jwks_file(path)?)),
            JwksSource::Url(url) => {
                let fetched = previous.and_then(|previous| match &previous.keys {
                    Keys::Url(remote)
                        if jwks_url(url).is_ok_and(|url| url == remote.url)
                            && previous.ca_certificates == ca_certificates =>
                    {
                        Some(Arc::clone(remote))
                    }
                    _ => None,
                });
                let cache_for = config.cache_for.get();
                match fetched {
                    Some(remote) if remote.cache_for == cache_for => Keys::Url(remote),
                    // The keys fetched still serve (the identity provider may be down now).
                    Some(remote) => Keys::Url(Arc::new(remote.with_cache_for(cache_for))),
                    None => Keys::Url(Arc::new(RemoteKeys::new(url, cache_for, &ca_certificates)?)),
                }
            }
        };
        Ok(JwtVerifier {
            issuer: config.issuer.clone(),
            audiences: config.audiences.clone(),
            algorithms,
            tenant_claim: config.tenant_claim.clone(),
            subject_claim: config.subject_claim.clone(),
            leeway_seconds: i64::try_from(config.leeway.get().as_secs()).unwrap_or(i64::MAX),
            max_lifetime_seconds: i64::try_from(config.max_lifetime.get().as_secs())
                .unwrap_or(i64::MAX),
            keys,
            ca_certificates,
            verified: Mutex::new(VerifiedTokens::default()),
        })
    }

    /// Verifies `token` at `now` and returns who it is. `now` also times the JWKS cache and the
    /// refetch interval. A refusal's reason is safe to send to the client: it never quotes the
    /// token.
    pub async fn verify(&self, token: &str, now: Timestamp) -> Result<Identity, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(refuse("token too large"));
        }
        let parsed = parse_compact(token, &self.algorithms).map_err(refuse)?;
        let keys = self.keys.current(now).await?;
        let digest = sha256(token.as_bytes());
        let now_seconds = now.as_second();
        if let Some(identity) = lock(&self.verified).get(&digest, keys.generation, now_seconds) {
            return Ok(identity);
        }
        let verified = self.verify_uncached(&parsed, keys, now).await?;
        let identity = verified.identity.clone();
        lock(&self.verified).insert(digest, verified, now_seconds);
        Ok(identity)
    }

    async fn verify_uncached(
        &self,
        token: &Compact<'_>,
        mut keys: Arc<KeySet>,
        now: Timestamp,
    ) -> Result<Verified, AuthError> {
        let (kid, alg) = (token.kid.as_deref(), token.alg);
        let mut refreshed = false;
        if let Keys::Url(remote) = &self.keys
            && keys.select(kid, alg).err() == Some(KeyLookup::UnknownKid)
        {
            // Key rotation: the identity provider may have published a new key since.
            keys = remote.refresh(now).await?;
            refreshed = true;
        }
        let mut signed = signed_by(token, &keys)?;
        if !signed
            && !refreshed
            && let Keys::Url(remote) = &self.keys
        {
            // A key replaced under the same `kid`, or the only key of a provider whose tokens
            // name none: the refetch is as rate-limited as for an unknown `kid`.
            let newer = remote.refresh(now).await?;
            if newer.generation != keys.generation {
                keys = newer;
                signed = signed_by(token, &keys)?;
            }
        }
        if !signed {
            return Err(refuse("bad signature"));
        }
        // Only now, with the signature checked, is the payload worth reading.
        let payload = decode_part(token.payload).map_err(refuse)?;
        let claims = parse_object(&payload).ok_or_else(|| refuse("malformed claims"))?;
        self.check_claims(&claims, now.as_second(), keys.generation)
            .map_err(refuse)
    }

    /// The registered claims, then who the token speaks for; `generation` is the key set's
    /// that checked the signature.
    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        now: i64,
        generation: u64,
    ) -> Result<Verified, &'static str> {
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err("wrong issuer");
        }
        if !self.audience_matches(claims.get("aud")) {
            return Err("wrong audience");
        }
        let leeway = self.leeway_seconds;
        let expires = numeric_date(claims, "exp", Round::Down)?.ok_or("missing expiry")?;
        if now >= expires.saturating_add(leeway) {
            return Err("expired");
        }
        let not_before = numeric_date(claims, "nbf", Round::Up)?;
        if not_before.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Err("not yet valid");
        }
        let issued_at = numeric_date(claims, "iat", Round::Up)?;
        if issued_at.is_some_and(|iat| iat > now.saturating_add(leeway)) {
            return Err("issued in the future");
        }
        let starts = not_before.max(issued_at);
        if expires.saturating_sub(starts.unwrap_or(now)) > self.max_lifetime_seconds {
            return Err("lifetime too long");
        }
        let tenant = non_empty_string(claims, &self.tenant_claim).ok_or("missing tenant claim")?;
        let key_id = [self.subject_claim.as_str(), "client_id", "azp"]
            .into_iter()
            .find_map(|name| non_empty_string(claims, name))
            .ok_or("missing subject")?;
        let starts = starts.unwrap_or(i64::MIN);
        Ok(Verified {
            identity: Identity {
                tenant: Arc::from(tenant),
                key_id: Arc::from(key_id),
            },
            valid_from: starts.saturating_sub(leeway),
            valid_until: expires.saturating_add(leeway),
            generation,
        })
    }

    fn audience_matches(&self, aud: Option<&Value>) -> bool {
        let accepted = |a: &str| self.audiences.iter().any(|ours| ours == a);
        match aud {
            Some(Value::String(one)) => accepted(one),
            Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).any(accepted),
            _ => false,
        }
    }
}

fn refuse(reason: &'static str) -> AuthError {
    AuthError::Token(reason.to_owned())
}

/// A JWS signature algorithm the verifier implements (`config::SUPPORTED_JWT_ALGORITHMS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
    Hs256,
}

impl Algorithm {
    const ALL: [Algorithm; 10] = [
        Algorithm::Rs256,
        Algorithm::Rs384,
        Algorithm::Rs512,
        Algorithm::Ps256,
        Algorithm::Ps384,
        Algorithm::Ps512,
        Algorithm::Es256,
        Algorithm::Es384,
        Algorithm::EdDsa,
        Algorithm::Hs256,
    ];

    /// The `alg` value; names are case-sensitive (RFC 7515 §4.1.1).
    fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|alg| alg.name() == name)
    }

    fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Rs384 => "RS384",
            Algorithm::Rs512 => "RS512",
            Algorithm::Ps256 => "PS256",
            Algorithm::Ps384 => "PS384",
            Algorithm::Ps512 => "PS512",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::EdDsa => "EdDSA",
            Algorithm::Hs256 => "HS256",
        }
    }

    /// ring's parameters when this is an RSA algorithm; they also refuse keys under 2048 bits.
    fn rsa(self) -> Option<&'static RsaParameters> {
        match self {
            Algorithm::Rs256 => Some(&signature::RSA_PKCS1_2048_8192_SHA256),
            Algorithm::Rs384 => Some(&signature::RSA_PKCS1_2048_8192_SHA384),
            Algorithm::Rs512 => Some(&signature::RSA_PKCS1_2048_8192_SHA512),
            Algorithm::Ps256 => Some(&signature::RSA_PSS_2048_8192_SHA256),
            Algorithm::Ps384 => Some(&signature::RSA_PSS_2048_8192_SHA384),
            Algorithm::Ps512 => Some(&signature::RSA_PSS_2048_8192_SHA512),
            _ => None,
        }
    }

    /// ring's ECDSA algorithm and the fixed signature length when this algorithm uses `curve`.
    fn ecdsa(
        self,
        curve: Curve,
    ) -> Option<(&'static signature::EcdsaVerificationAlgorithm, usize)> {
        match (self, curve) {
            (Algorithm::Es256, Curve::P256) => Some((&signature::ECDSA_P256_SHA256_FIXED, 64)),
            (Algorithm::Es384, Curve::P384) => Some((&signature::ECDSA_P384_SHA384_FIXED, 96)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

impl Curve {
    fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }
}

/// The public part of a JWK, ready for ring.
enum PublicKey {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed point `0x04 || x || y`.
    Ec {
        curve: Curve,
        point: Vec<u8>,
    },
    Ed25519(Vec<u8>),
    Hmac(ring::hmac::Key),
}

impl PublicKey {
    /// Whether this key may check a signature made with `alg`. This pairing is the defence
    /// against algorithm confusion: an HMAC algorithm only ever gets an `oct` secret from the
    /// JWKS, never the bytes of a public key.
    fn fits(&self, alg: Algorithm) -> bool {
        match self {
            PublicKey::Rsa { .. } => alg.rsa().is_some(),
            PublicKey::Ec { curve, .. } => alg.ecdsa(*curve).is_some(),
            PublicKey::Ed25519(_) => alg == Algorithm::EdDsa,
            PublicKey::Hmac(_) => alg == Algorithm::Hs256,
        }
    }

    fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Rsa { n, e } => alg.rsa().is_some_and(|params| {
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, signature)
                    .is_ok()
            }),
            PublicKey::Ec { curve, point } => {
                alg.ecdsa(*curve).is_some_and(|(ecdsa, signature_len)| {
                    signature.len() == signature_len
                        && UnparsedPublicKey::new(ecdsa, point)
                            .verify(message, signature)
                            .is_ok()
                })
            }
            PublicKey::Ed25519(x) => {
                alg == Algorithm::EdDsa
                    && signature.len() == 64
                    && UnparsedPublicKey::new(&signature::ED25519, x)
                        .verify(message, signature)
                        .is_ok()
            }
            // Constant time, so the comparison leaks nothing about the expected MAC.
            PublicKey::Hmac(key) => {
                alg == Algorithm::Hs256 && ring::hmac::verify(key, message, signature).is_ok()
            }
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            PublicKey::Rsa { .. } => "RSA",
            PublicKey::Ec {
                curve: Curve::P256, ..
            } => "EC P-256",
            PublicKey::Ec {
                curve: Curve::P384, ..
            } => "EC P-384",
            PublicKey::Ed25519(_) => "OKP Ed25519",
            PublicKey::Hmac(_) => "oct",
        }
    }
}

/// One signing key of a JWKS.
struct Jwk {
    kid: Option<String>,
    /// The JWK's own `alg`, when it names one: the key is then used for that algorithm only.
    alg: Option<Algorithm>,
    key: PublicKey,
}

impl Jwk {
    fn fits(&self, alg: Algorithm) -> bool {
        self.alg.is_none_or(|own| own == alg) && self.key.fits(alg)
    }
}

/// The signing keys of one JWKS document.
struct KeySet {
    keys: Vec<Jwk>,
    /// Changes when the document does, so tokens verified with older keys are checked again.
    generation: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyLookup {
    UnknownKid,
    MissingKid,
    WrongAlgorithm,
}

/// Whether one of the keys `token` names in `keys` made its signature.
fn signed_by(token: &Compact<'_>, keys: &KeySet) -> Result<bool, AuthError> {
    let candidates = keys
        .select(token.kid.as_deref(), token.alg)
        .map_err(|e| refuse(e.reason()))?;
    Ok(candidates.iter().any(|key| {
        key.key
            .verify(token.alg, token.signing_input.as_bytes(), &token.signature)
    }))
}

impl KeyLookup {
    fn reason(self) -> &'static str {
        match self {
            KeyLookup::UnknownKid => "unknown key id",
            KeyLookup::MissingKid => "missing key id",
            KeyLookup::WrongAlgorithm => "algorithm does not match the key",
        }
    }
}

impl KeySet {
    /// The keys named by the token's `kid` that fit its `alg` (a provider may publish two
    /// under one `kid` while it rotates). A token without `kid` is accepted only when the set
    /// holds a single key, so the choice is never a guess.
    fn select(&self, kid: Option<&str>, alg: Algorithm) -> Result<Vec<&Jwk>, KeyLookup> {
        let Some(kid) = kid else {
            return match self.keys.as_slice() {
                [only] if only.fits(alg) => Ok(vec![only]),
                [_] => Err(KeyLookup::WrongAlgorithm),
                _ => Err(KeyLookup::MissingKid),
            };
        };
        let named: Vec<&Jwk> = (self.keys.iter())
            .filter(|key| key.kid.as_deref() == Some(kid))
            .collect();
        if named.is_empty() {
            return Err(KeyLookup::UnknownKid);
        }
        let fitting: Vec<&Jwk> = named.into_iter().filter(|key| key.fits(alg)).collect();
        match fitting.is_empty() {
            true => Err(KeyLookup::WrongAlgorithm),
            false => Ok(fitting),
        }
    }
}

/// Where the keys come from.
enum Keys {
    File(Arc<KeySet>),
    Url(Arc<RemoteKeys>),
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Keys::File(set) => write!(f, "file ({} keys)", set.keys.len()),
            Keys::Url(remote) => write!(f, "url ({})", remote.url),
        }
    }
}

impl Keys {
    async fn current(&self, now: Timestamp) -> Result<Arc<KeySet>, AuthError> {
        match self {
            Keys::File(set) => Ok(Arc::clone(set)),
            Keys::Url(remote) => remote.current(now).await,
        }
    }
}

/// A JWKS fetched by URL, and when.
struct RemoteKeys {
    url: Uri,
    client: JwksClient,
    cache_for: Duration,
    state: Mutex<Fetched>,
    /// Held while a fetch is in flight, so concurrent refetches wait for it and reuse its
    /// answer instead of repeating it.
    fetching: tokio::sync::Mutex<()>,
    /// Set while a task renews keys that are past `cache_for`.
    renewing: AtomicBool,
}

#[derive(Clone, Default)]
struct Fetched {
    keys: Option<Arc<KeySet>>,
    fetched_at: Option<Timestamp>,
    attempted_at: Option<Timestamp>,
    /// Fetches ended so far: a request that waited for one to end takes its outcome, whatever
    /// its own clock says (a slow provider would otherwise queue fetch after fetch).
    attempts: u64,
    /// The last fetch failed with no keys to fall back on (said once, not at every retry).
    failing: bool,
    document_sha256: [u8; 32],
}

impl RemoteKeys {
    fn new(
        url: &str,
        cache_for: Duration,
        ca_certificates: &[CertificateDer<'static>],
    ) -> Result<RemoteKeys, String> {
        let url = jwks_url(url)?;
        Ok(RemoteKeys {
            client: jwks_client(&url, ca_certificates)?,
            url,
            cache_for,
            state: Mutex::new(Fetched::default()),
            fetching: tokio::sync::Mutex::new(()),
            renewing: AtomicBool::new(false),
        })
    }

    /// The same keys from the same place, kept for another time.
    fn with_cache_for(&self, cache_for: Duration) -> RemoteKeys {
        RemoteKeys {
            url: self.url.clone(),
            client: self.client.clone(),
            cache_for,
            state: Mutex::new(lock(&self.state).clone()),
            fetching: tokio::sync::Mutex::new(()),
            renewing: AtomicBool::new(false),
        }
    }

    /// The cached keys while fresh; otherwise fetched again. A stale set keeps serving while a
    /// task fetches its successor: no request waits on the identity provider, slow or down as
    /// it may be, but the first one, and one naming a key the set lacks.
    async fn current(self: &Arc<Self>, now: Timestamp) -> Result<Arc<KeySet>, AuthError> {
        let (cached, fresh) = {
            let state = lock(&self.state);
            let fresh = state
                .fetched_at
                .is_some_and(|at| within(now, at, self.cache_for));
            (state.keys.clone(), fresh)
        };
        match cached {
            Some(keys) if fresh => Ok(keys),
            Some(keys) => {
                if !self.renewing.swap(true, Ordering::AcqRel) {
                    let renew = Arc::clone(self);
                    tokio::spawn(async move {
                        let _ = renew.refresh(now).await;
                        renew.renewing.store(false, Ordering::Release);
                    });
                }
                Ok(keys)
            }
            None => self.refresh(now).await,
        }
    }

    /// Fetches the set again, unless a fetch began within [`MIN_REFETCH_INTERVAL`], and returns
    /// the newest keys: stale ones if the fetch failed.
    async fn refresh(&self, now: Timestamp) -> Result<Arc<KeySet>, AuthError> {
        let seen = lock(&self.state).attempts;
        let fetching = self.fetching.lock().await;
        {
            let state = lock(&self.state);
            if state.attempts != seen {
                return state.keys.clone().ok_or_else(unavailable);
            }
        }
        self.refresh_holding(fetching, now).await
    }

    async fn refresh_holding(
        &self,
        _fetching: tokio::sync::MutexGuard<'_, ()>,
        now: Timestamp,
    ) -> Result<Arc<KeySet>, AuthError> {
        {
            let mut state = lock(&self.state);
            // This also coalesces: whoever waited for a fetch in flight finds it just began.
            let interval = match state.keys {
                Some(_) => MIN_REFETCH_INTERVAL,
                None => RETRY_WITHOUT_KEYS,
            };
            if state
                .attempted_at
                .is_some_and(|at| within(now, at, interval))
            {
                return state.keys.clone().ok_or_else(unavailable);
            }
            state.attempted_at = Some(now);
        }
        let fetched = self.fetch().await;
        let mut state = lock(&self.state);
        state.attempts += 1;
        match fetched {
            Ok((keys, document_sha256)) => {
                let previous = state.keys.as_ref().map(|set| set.generation);
                let generation = match previous {
                    Some(generation) if state.document_sha256 == document_sha256 => generation,
                    Some(generation) => generation + 1,
                    None => 1,
                };
                let set = Arc::new(KeySet { keys, generation });
                state.keys = Some(Arc::clone(&set));
                state.fetched_at = Some(now);
                state.document_sha256 = document_sha256;
                if std::mem::take(&mut state.failing) {
                    tracing::info!(jwks = %self.url, "fetched the identity provider's keys: tokens are verified again");
                }
                Ok(set)
            }
            Err(reason) => match (&state.keys, state.fetched_at) {
                (Some(keys), Some(fetched_at)) => {
                    tracing::warn!(
                        jwks = %self.url,
                        error = %reason,
                        "cannot fetch the identity provider's keys; still using those fetched at {fetched_at}"
                    );
                    Ok(Arc::clone(keys))
                }
                _ => {
                    if !std::mem::replace(&mut state.failing, true) {
                        tracing::warn!(
                            jwks = %self.url,
                            error = %reason,
                            "cannot fetch the identity provider's keys; no token can be verified until it answers (asked again at most every second)"
                        );
                    }
                    Err(unavailable())
                }
            },
        }
    }

    /// One GET of the JWKS, bounded in time and size; the keys it holds and the document's
    /// digest.
    async fn fetch(&self) -> Result<(Vec<Jwk>, [u8; 32]), String> {
        let request = Request::get(self.url.clone())
            .header(ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| crate::error::chain(&e))?;
            if response.status() != StatusCode::OK {
                return Err(format!("answered {}", response.status()));
            }
            Limited::new(response.into_body(), MAX_JWKS_BYTES)
                .collect()
                .await
                .map(|body| body.to_bytes())
                .map_err(|e| format!("reading the body: {e}"))
        };
        let body = tokio::time::timeout(FETCH_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("no answer within {} s", FETCH_TIMEOUT.as_secs()))??;
        let (keys, problems) = parse_jwks(&body)?;
        // Once while the provider serves no usable key, not at each retry.
        let said = lock(&self.state).failing;
        for problem in problems.into_iter().filter(|_| !said) {
            tracing::warn!(jwks = %self.url, "left out a key of the identity provider's JWKS: {problem}");
        }
        if keys.is_empty() {
            return Err(format!("no usable signing key ({USABLE_KEYS})"));
        }
        Ok((keys, sha256(&body)))
    }
}

fn unavailable() -> AuthError {
    AuthError::Unavailable("the identity provider's signing keys could not be fetched".into())
}

/// Whether `now` is less than `span` away from `at`. Either direction: a clock stepping back
/// must neither freeze the cache forever nor break coalescing between requests whose `now`
/// was read in a different order than they took the lock.
fn within(now: Timestamp, at: Timestamp, span: Duration) -> bool {
    now.duration_since(at).unsigned_abs() < span
}

/// `https://…`, or plain `http://` to a loopback host (a local identity provider in a test).
fn jwks_url(text: &str) -> Result<Uri, String> {
    let at = "auth.jwt.jwks.url";
    let uri: Uri = text
        .parse()
        .map_err(|e| format!("{at}: `{text}` is not a URL: {e}"))?;
    let host = uri
        .host()
        .ok_or_else(|| format!("{at}: `{text}` has no host"))?;
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if is_loopback(host) => Ok(uri),
        Some("http") => Err(format!(
            "{at}: `{text}` is plain http to a host that is not loopback; signing keys must come over https"
        )),
        _ => Err(format!("{at}: `{text}` must start with https://")),
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// An HTTP/1.1 client trusting the system's CA certificates and `ca_certificates` (for https
/// URLs).
fn jwks_client(
    url: &Uri,
    ca_certificates: &[CertificateDer<'static>],
) -> Result<JwksClient, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = if url.scheme_str() == Some("https") {
        crate::pem::trusted_roots(ca_certificates, "the JWKS URL")
            .map_err(|e| format!("auth.jwt.caFile: {e}"))?
    } else {
        // Plain http to loopback never uses TLS; an empty trust store keeps the system's out.
        rustls::RootCertStore::empty()
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("auth.jwt.jwks.url: cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config);
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(FETCH_TIMEOUT));
    let connector = builder.https_or_http().enable_http1().wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// Reads a JWKS file strictly: every key of a supported type must be well formed.
fn read_jwks_file(path: &Path) -> Result<KeySet, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("JWKS file {shown}: cannot read: {e}"))?;
    let (keys, problems) = parse_jwks(&bytes).map_err(|e| format!("JWKS file {shown}: {e}"))?;
    if !problems.is_empty() {
        return Err(format!("JWKS file {shown}: {}", problems.join("; ")));
    }
    if keys.is_empty() {
        return Err(format!(
            "JWKS file {shown}: no signing key the gateway can use ({USABLE_KEYS})"
        ));
    }
    Ok(KeySet {
        keys,
        generation: 0,
    })
}

const USABLE_KEYS: &str = "RSA of 2048 bits or more, EC P-256 or P-384, OKP Ed25519, or oct";

/// The signing keys of a JWKS document, and the problems of the keys left out because a field
/// is wrong (`keys[2].n: …`). Keys meant for encryption, or of a type or curve the gateway
/// does not implement, are left out silently: identity providers publish those too.
fn parse_jwks(bytes: &[u8]) -> Result<(Vec<Jwk>, Vec<String>), String> {
    let document: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JSON document: {e}"))?;
    let entries = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("`keys` is missing or not an array")?;
    let mut keys = Vec::new();
    let mut problems = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        match parse_key(entry) {
            Ok(Some(key)) => keys.push(key),
            Ok(None) => {}
            Err(problem) => problems.push(format!("keys[{i}].{problem}")),
        }
    }
    Ok((keys, problems))
}

/// One JWK; `None` when it is not a signing key the gateway implements. Errors start with the
/// field they are about.
fn parse_key(entry: &Value) -> Result<Option<Jwk>, String> {
    let Some(jwk) = entry.as_object() else {
        return Err("kty: the key is not a JSON object".into());
    };
    if text_field(jwk, "use")?.is_some_and(|purpose| purpose != "sig") {
        return Ok(None);
    }
    if let Some(ops) = jwk.get("key_ops") {
        let ops = ops.as_array().ok_or("key_ops: not an array")?;
        if !ops.iter().any(|op| op.as_str() == Some("verify")) {
            return Ok(None);
        }
    }
    let alg = match text_field(jwk, "alg")? {
        None => None,
        Some(name) => match Algorithm::from_name(name) {
            Some(alg) => Some(alg),
            // RSA-OAEP, HS512, none…: a key the gateway is not allowed to use.
            None => return Ok(None),
        },
    };
    let kid = text_field(jwk, "kid")?.map(str::to_owned);
    let Some(key) = parse_public_key(jwk)? else {
        return Ok(None);
    };
    if let Some(alg) = alg
        && !key.fits(alg)
    {
        return Err(format!(
            "alg: {} does not fit a {} key",
            alg.name(),
            key.kind()
        ));
    }
    Ok(Some(Jwk { kid, alg, key }))
}

fn parse_public_key(jwk: &Map<String, Value>) -> Result<Option<PublicKey>, String> {
    let kty = text_field(jwk, "kty")?.ok_or("kty: missing")?;
    let crv = text_field(jwk, "crv")?;
    let key = match (kty, crv) {
        ("RSA", _) => rsa_key(jwk)?,
        ("EC", Some("P-256")) => ec_key(jwk, Curve::P256)?,
        ("EC", Some("P-384")) => ec_key(jwk, Curve::P384)?,
        ("OKP", Some("Ed25519")) => PublicKey::Ed25519(fixed_bytes(jwk, "x", 32)?),
        ("EC" | "OKP", None) => return Err("crv: missing".into()),
        ("oct", _) => hmac_key(jwk)?,
        // P-521, secp256k1, X25519, Ed448 and unknown types are not implemented.
        _ => return Ok(None),
    };
    Ok(Some(key))
}

fn rsa_key(jwk: &Map<String, Value>) -> Result<PublicKey, String> {
    let n = strip_leading_zeros(jwk_bytes(jwk, "n")?);
    let bits = match n.first() {
        Some(top) => n.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    };
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "n: a {bits}-bit modulus is too weak; at least {MIN_RSA_BITS} bits are required"
        ));
    }
    if bits > MAX_RSA_BITS {
        return Err(format!(
            "n: a {bits}-bit modulus is larger than the {MAX_RSA_BITS} bits supported"
        ));
    }
    let e = strip_leading_zeros(jwk_bytes(jwk, "e")?);
    if e.is_empty() || e.len() > 4 {
        return Err("e: not a usable public exponent".into());
    }
    Ok(PublicKey::Rsa { n, e })
}

fn ec_key(jwk: &Map<String, Value>, curve: Curve) -> Result<PublicKey, String> {
    let len = curve.coordinate_len();
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04);
    point.extend(fixed_bytes(jwk, "x", len)?);
    point.extend(fixed_bytes(jwk, "y", len)?);
    Ok(PublicKey::Ec { curve, point })
}

fn hmac_key(jwk: &Map<String, Value>) -> Result<PublicKey, String> {
    let k = jwk_bytes(jwk, "k")?;
    if k.len() < MIN_HMAC_KEY_BYTES {
        return Err(format!(
            "k: a {}-byte HMAC key is too short; at least {MIN_HMAC_KEY_BYTES} bytes are required",
            k.len()
        ));
    }
    Ok(PublicKey::Hmac(ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        &k,
    )))
}

fn text_field<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(format!("{name}: not a string")),
    }
}

/// A base64url field of a JWK. Padding is tolerated here (the JWKS is trusted input), never in
/// a token.
fn jwk_bytes(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let text = text_field(jwk, name)?.ok_or_else(|| format!("{name}: missing"))?;
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| format!("{name}: not base64url"))
}

fn fixed_bytes(jwk: &Map<String, Value>, name: &str, len: usize) -> Result<Vec<u8>, String> {
    let bytes = jwk_bytes(jwk, name)?;
    if bytes.len() != len {
        return Err(format!("{name}: {} bytes, expected {len}", bytes.len()));
    }
    Ok(bytes)
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    bytes.drain(..zeros);
    bytes
}

/// A compact JWS whose header passed its checks; the payload is decoded only after the
/// signature is.
struct Compact<'t> {
    alg: Algorithm,
    kid: Option<String>,
    signing_input: &'t str,
    payload: &'t str,
    signature: Vec<u8>,
}

/// `header.payload.signature`, each base64url without padding, and the header's checks.
fn parse_compact<'t>(token: &'t str, allowed: &[Algorithm]) -> Result<Compact<'t>, &'static str> {
    let malformed = "malformed token";
    let (header, rest) = token.split_once('.').ok_or(malformed)?;
    let (payload, signature) = rest.split_once('.').ok_or(malformed)?;
    if signature.contains('.') {
        return Err(malformed);
    }
    let header = parse_object(&decode_part(header)?).ok_or("malformed header")?;
    if header.contains_key("crit") {
        return Err("unsupported critical header");
    }
    if let Some(typ) = header.get("typ") {
        let typ = typ.as_str().ok_or("wrong token type")?;
        let typ = typ
            .get(..12)
            .filter(|prefix| prefix.eq_ignore_ascii_case("application/"))
            .map_or(typ, |_| &typ[12..]);
        if !typ.eq_ignore_ascii_case("JWT") && !typ.eq_ignore_ascii_case("at+jwt") {
            return Err("wrong token type");
        }
    }
    let name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or("missing algorithm")?;
    if name.eq_ignore_ascii_case("none") {
        return Err("algorithm none is not accepted");
    }
    let alg = Algorithm::from_name(name)
        .filter(|alg| allowed.contains(alg))
        .ok_or("algorithm not allowed")?;
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err("malformed header"),
    };
    Ok(Compact {
        alg,
        kid,
        signing_input: &token[..token.len() - signature.len() - 1],
        payload,
        signature: decode_part(signature)?,
    })
}

/// Strict base64url: no padding, no stray bits, so one token has one spelling.
fn decode_part(part: &str) -> Result<Vec<u8>, &'static str> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| "malformed token")
}

/// A JSON object whose members each appear once: a repeated `alg` or `sub` is refused rather
/// than resolved differently from the issuer's parser.
fn parse_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    serde_json::from_slice::<UniqueObject>(bytes)
        .ok()
        .map(|object| object.0)
}

struct UniqueObject(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<UniqueObject, A::Error> {
                let mut members = Map::new();
                while let Some((name, value)) = access.next_entry::<String, Value>()? {
                    if members.contains_key(&name) {
                        return Err(A::Error::custom(format!("`{name}` appears twice")));
                    }
                    members.insert(name, value);
                }
                Ok(UniqueObject(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// Which way a fraction of a second goes: always to the stricter side (an expiry earlier, a
/// start later).
#[derive(Debug, Clone, Copy)]
enum Round {
    Down,
    Up,
}

/// A NumericDate claim in whole seconds (RFC 7519 allows fractions).
fn numeric_date(
    claims: &Map<String, Value>,
    name: &str,
    round: Round,
) -> Result<Option<i64>, &'static str> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    if let Some(seconds) = value.as_i64() {
        return Ok(Some(seconds));
    }
    let whole = |seconds: f64| match round {
        Round::Down => seconds.floor(),
        Round::Up => seconds.ceil(),
    };
    match value.as_f64() {
        // `as` saturates, so an absurd date stays absurd instead of wrapping.
        Some(seconds) if seconds.is_finite() => Ok(Some(whole(seconds) as i64)),
        _ => Err("malformed time claim"),
    }
}

fn non_empty_string<'c>(claims: &'c Map<String, Value>, name: &str) -> Option<&'c str> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
}

/// A token that passed every check, and the span in which it still would.
#[derive(Debug, Clone)]
struct Verified {
    identity: Identity,
    valid_from: i64,
    valid_until: i64,
    /// The key set generation whose key verified it.
    generation: u64,
}

/// Verified tokens by SHA-256, bounded; an entry lives until its token expires or the keys
/// change.
#[derive(Debug, Default)]
struct VerifiedTokens {
    entries: HashMap<[u8; 32], Verified>,
}

impl VerifiedTokens {
    fn get(&mut self, digest: &[u8; 32], generation: u64, now: i64) -> Option<Identity> {
        let entry = self.entries.get(digest)?;
        if entry.generation == generation && entry.valid_from <= now && now < entry.valid_until {
            return Some(entry.identity.clone());
        }
        self.entries.remove(digest);
        None
    }

    fn insert(&mut self, digest: [u8; 32], verified: Verified, now: i64) {
        if self.entries.len() >= VERIFIED_CACHE_ENTRIES {
            self.entries.retain(|_, entry| now < entry.valid_until);
        }
        if self.entries.len() >= VERIFIED_CACHE_ENTRIES {
            // Ten thousand live tokens at once is rare; starting over costs one check each.
            self.entries.clear();
        }
        self.entries.insert(digest, verified);
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these locks stays consistent at every step, so a panic elsewhere while
    // holding one leaves nothing half-written.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_algorithm_name_is_implemented() {
        for name in SUPPORTED_JWT_ALGORITHMS {
            let alg = Algorithm::from_name(name).unwrap();
            assert_eq!(alg.name(), name);
        }
        assert_eq!(Algorithm::ALL.len(), SUPPORTED_JWT_ALGORITHMS.len());
        assert_eq!(
            Algorithm::from_name("rs256"),
            None,
            "names are case-sensitive"
        );
        assert_eq!(Algorithm::from_name("none"), None);
    }

    #[test]
    fn repeated_members_are_refused() {
        assert!(parse_object(br#"{"alg":"RS256","kid":"a"}"#).is_some());
        assert!(parse_object(br#"{"alg":"RS256","alg":"HS256"}"#).is_none());
        assert!(parse_object(br#"["alg"]"#).is_none());
        assert!(parse_object(b"not json").is_none());
    }

    #[test]
    fn numeric_dates_accept_integers_and_fractions_only() {
        let claims =
            parse_object(br#"{"a":1700000000,"b":1700000000.9,"c":"1700000000"}"#).unwrap();
        assert_eq!(
            numeric_date(&claims, "a", Round::Up),
            Ok(Some(1_700_000_000))
        );
        assert_eq!(
            numeric_date(&claims, "b", Round::Down),
            Ok(Some(1_700_000_000))
        );
        // A start is never earlier than the token says.
        assert_eq!(
            numeric_date(&claims, "b", Round::Up),
            Ok(Some(1_700_000_001))
        );
        assert_eq!(
            numeric_date(&claims, "c", Round::Down),
            Err("malformed time claim")
        );
        assert_eq!(numeric_date(&claims, "d", Round::Down), Ok(None));
    }

    #[test]
    fn plain_http_is_only_for_loopback() {
        assert!(jwks_url("http://127.0.0.1:8080/jwks.json").is_ok());
        assert!(jwks_url("http://localhost/jwks.json").is_ok());
        assert!(jwks_url("http://[::1]:9000/jwks").is_ok());
        assert!(jwks_url("https://idp.example.com/jwks").is_ok());
        let err = jwks_url("http://idp.example.com/jwks").unwrap_err();
        assert!(err.contains("https"), "{err}");
        assert!(jwks_url("http://127.0.0.1.evil.example/jwks").is_err());
        assert!(jwks_url("ftp://127.0.0.1/jwks").is_err());
        assert!(jwks_url("/jwks.json").is_err());
    }

    #[test]
    fn the_time_window_works_both_ways() {
        let at: Timestamp = "2026-05-01T12:00:00Z".parse().unwrap();
        let span = Duration::from_secs(30);
        assert!(within(at, at, span));
        assert!(within(at + Duration::from_secs(29), at, span));
        assert!(!within(at + Duration::from_secs(30), at, span));
        assert!(within(at - Duration::from_secs(5), at, span));
        assert!(!within(at - Duration::from_secs(3600), at, span));
    }

    fn verified(valid_until: i64, generation: u64) -> Verified {
        Verified {
            identity: Identity {
                tenant: Arc::from("t"),
                key_id: Arc::from("k"),
            },
            valid_from: 100,
            valid_until,
            generation,
        }
    }

    #[test]
    fn a_remembered_token_lives_until_its_expiry_and_its_keys() {
        let mut cache = VerifiedTokens::default();
        cache.insert([1; 32], verified(200, 3), 150);
        assert!(cache.get(&[1; 32], 3, 150).is_some());
        assert!(cache.get(&[1; 32], 3, 99).is_none(), "before nbf");
        cache.insert([1; 32], verified(200, 3), 150);
        assert!(cache.get(&[1; 32], 3, 200).is_none(), "expired");
        assert!(cache.entries.is_empty(), "the expired entry is dropped");
        cache.insert([2; 32], verified(200, 3), 150);
        assert!(cache.get(&[2; 32], 4, 150).is_none(), "the keys changed");
    }

    #[test]
    fn the_verified_cache_is_bounded() {
        let mut cache = VerifiedTokens::default();
        for i in 0..VERIFIED_CACHE_ENTRIES + 5 {
            let mut digest = [0u8; 32];
            digest[..8].copy_from_slice(&(i as u64).to_le_bytes());
            cache.insert(digest, verified(1_000, 0), 150);
        }
        assert!(cache.entries.len() <= VERIFIED_CACHE_ENTRIES);
        assert!(!cache.entries.is_empty());
    }
}
