#![allow(clippy::unwrap_used, clippy::panic)]
//! The JWT verifier against real signatures: RSA from a checked-in key, EC, Ed25519 and HMAC
//! from keys made by ring, and JWKS served by a small identity provider on loopback.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use hangar_gateway::auth::jwt::{JwtVerifier, MAX_TOKEN_BYTES, MIN_REFETCH_INTERVAL};
use hangar_gateway::auth::{AuthError, Identity};
use hangar_gateway::config::{JwksSource, JwtConfig, Seconds};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use jiff::Timestamp;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

const ISSUER: &str = "https://idp.example.com/";
const AUDIENCE: &str = "hangar-gateway";
const RSA_KID: &str = "rsa-2026-1";
const ALL_ALGORITHMS: [&str; 10] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256",
];

fn t0() -> Timestamp {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

fn at(seconds_after_t0: i64) -> Timestamp {
    Timestamp::from_second(t0().as_second() + seconds_after_t0).unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt")
        .join(name)
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn pem_body(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

// ---------- keys that sign ----------

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Hmac(Vec<u8>),
}

/// A signing key and its public JWK.
struct TestKey {
    signer: Signer,
    jwk: Value,
}

impl TestKey {
    /// The checked-in RSA key and its JWK from `jwks.json`.
    fn rsa() -> TestKey {
        let pair = RsaKeyPair::from_pkcs8(&pem_body(&fixture("rsa-2048.pem"))).unwrap();
        let jwks: Value =
            serde_json::from_str(&std::fs::read_to_string(fixture("jwks.json")).unwrap()).unwrap();
        TestKey {
            signer: Signer::Rsa(pair),
            jwk: jwks["keys"][0].clone(),
        }
    }

    fn ec(kid: &str, curve: &str) -> TestKey {
        let (signing, len) = match curve {
            "P-256" => (&signature::ECDSA_P256_SHA256_FIXED_SIGNING, 32),
            _ => (&signature::ECDSA_P384_SHA384_FIXED_SIGNING, 48),
        };
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let jwk = json!({
            "kty": "EC", "crv": curve, "kid": kid, "use": "sig",
            "x": b64(&point[1..=len]), "y": b64(&point[len + 1..]),
        });
        TestKey {
            signer: Signer::Ec(pair),
            jwk,
        }
    }

    fn ed25519(kid: &str) -> TestKey {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwk = json!({
            "kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(pair.public_key()),
        });
        TestKey {
            signer: Signer::Ed25519(pair),
            jwk,
        }
    }

    fn hmac(kid: &str) -> TestKey {
        let secret: [u8; 32] = ring::rand::generate(&SystemRandom::new()).unwrap().expose();
        let jwk = json!({ "kty": "oct", "kid": kid, "alg": "HS256", "k": b64(secret) });
        TestKey {
            signer: Signer::Hmac(secret.to_vec()),
            jwk,
        }
    }

    /// An HMAC "key" made of arbitrary bytes, as an attacker would pick them.
    fn hmac_secret(secret: &[u8]) -> TestKey {
        TestKey {
            signer: Signer::Hmac(secret.to_vec()),
            jwk: Value::Null,
        }
    }

    fn with_jwk(mut self, change: impl FnOnce(&mut Value)) -> TestKey {
        change(&mut self.jwk);
        self
    }

    fn sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Rsa(pair) => {
                let encoding: &'static dyn signature::RsaEncoding = match alg {
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    "PS256" => &signature::RSA_PSS_SHA256,
                    "PS384" => &signature::RSA_PSS_SHA384,
                    "PS512" => &signature::RSA_PSS_SHA512,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(encoding, &rng, input, &mut out).unwrap();
                out
            }
            Signer::Ec(pair) => pair.sign(&rng, input).unwrap().as_ref().to_vec(),
            Signer::Ed25519(pair) => pair.sign(input).as_ref().to_vec(),
            Signer::Hmac(secret) => {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
                ring::hmac::sign(&key, input).as_ref().to_vec()
            }
        }
    }

    /// A token with this header and these claims, signed by this key.
    fn token(&self, header: &Value, claims: &Value) -> String {
        let alg = header["alg"].as_str().unwrap_or("RS256");
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let signature = self.sign(alg, input.as_bytes());
        format!("{input}.{}", b64(signature))
    }

    /// A token with the usual claims, `alg` and this key's `kid`.
    fn sign_claims(&self, alg: &str, claims: &Value) -> String {
        self.token(&header(alg, self.jwk["kid"].as_str()), claims)
    }
}

fn header(alg: &str, kid: Option<&str>) -> Value {
    let mut header = json!({ "alg": alg, "typ": "JWT" });
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    header
}

/// Claims valid from `t0` for an hour.
fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "tenant": "payments",
        "iat": t0().as_second() - 10,
        "exp": t0().as_second() + 3600,
    })
}

fn claims_with(change: impl FnOnce(&mut Value)) -> Value {
    let mut claims = claims();
    change(&mut claims);
    claims
}

fn jwks(keys: &[&TestKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() }).to_string()
}

// ---------- verifiers ----------

fn config(jwks: JwksSource, algorithms: &[&str]) -> JwtConfig {
    JwtConfig {
        issuer: ISSUER.into(),
        audiences: vec![AUDIENCE.into(), "hangar-admin".into()],
        jwks,
        algorithms: algorithms.iter().map(|a| (*a).to_owned()).collect(),
        tenant_claim: "tenant".into(),
        subject_claim: "sub".into(),
        leeway: Seconds(Duration::from_secs(30)),
        max_lifetime: Seconds(Duration::from_secs(24 * 3600)),
        cache_for: Seconds(Duration::from_secs(300)),
        ca_file: None,
    }
}

/// A verifier over a JWKS file holding `keys`; the directory lives as long as the verifier is
/// used.
struct FileVerifier {
    verifier: JwtVerifier,
    _dir: tempfile::TempDir,
}

fn file_verifier(keys: &[&TestKey], algorithms: &[&str]) -> FileVerifier {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(keys)).unwrap();
    let verifier = JwtVerifier::new(&config(JwksSource::File(path), algorithms)).unwrap();
    FileVerifier {
        verifier,
        _dir: dir,
    }
}

fn new_error(jwks_text: &str) -> (String, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idp-keys.json");
    std::fs::write(&path, jwks_text).unwrap();
    let err = JwtVerifier::new(&config(JwksSource::File(path.clone()), &["RS256"])).unwrap_err();
    (err, path, dir)
}

fn alice() -> Identity {
    Identity {
        tenant: Arc::from("payments"),
        key_id: Arc::from("alice"),
    }
}

async fn refusal(verifier: &JwtVerifier, token: &str, now: Timestamp) -> String {
    match verifier.verify(token, now).await {
        Err(AuthError::Token(reason)) => reason,
        other => panic!("expected a token refusal, got {other:?}"),
    }
}

// ---------- valid tokens ----------

#[tokio::test]
async fn an_rs256_token_from_the_checked_in_jwks_names_its_tenant_and_subject() {
    let config = config(JwksSource::File(fixture("jwks.json")), &["RS256"]);
    let verifier = JwtVerifier::new(&config).unwrap();
    let token = TestKey::rsa().sign_claims("RS256", &claims());
    assert_eq!(verifier.verify(&token, t0()).await, Ok(alice()));
}

#[tokio::test]
async fn every_rsa_algorithm_verifies_with_the_rsa_key() {
    let rsa = TestKey::rsa();
    let v = file_verifier(&[&rsa], &ALL_ALGORITHMS);
    for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
        let token = rsa.sign_claims(alg, &claims());
        assert_eq!(v.verifier.verify(&token, t0()).await, Ok(alice()), "{alg}");
    }
}

#[tokio::test]
async fn es256_es384_eddsa_and_hs256_tokens_verify() {
    let p256 = TestKey::ec("ec-256", "P-256");
    let p384 = TestKey::ec("ec-384", "P-384");
    let ed = TestKey::ed25519("ed-1");
    let oct = TestKey::hmac("oct-1");
    let v = file_verifier(&[&p256, &p384, &ed, &oct], &ALL_ALGORITHMS);
    for (key, alg) in [
        (&p256, "ES256"),
        (&p384, "ES384"),
        (&ed, "EdDSA"),
        (&oct, "HS256"),
    ] {
        let token = key.sign_claims(alg, &claims());
        assert_eq!(v.verifier.verify(&token, t0()).await, Ok(alice()), "{alg}");
    }
    // The curve is bound to the algorithm: a P-256 key never checks an ES384 signature.
    let token = p256.sign_claims("ES384", &claims());
    assert_eq!(
        refusal(&v.verifier, &token, t0()).await,
        "algorithm does not match the key"
    );
}

#[tokio::test]
async fn access_token_types_are_accepted_and_others_are_not() {
    let rsa = TestKey::rsa();
    let v = file_verifier(&[&rsa], &["RS256"]);
    for typ in ["JWT", "jwt", "at+jwt", "application/at+jwt", "AT+JWT"] {
        let header = json!({ "alg": "RS256", "kid": RSA_KID, "typ": typ });
        let token = rsa.token(&header, &claims());
        assert!(v.verifier.verify(&token, t0()).await.is_ok(), "{typ}");
    }
    let without_typ = rsa.token(&json!({ "alg": "RS256", "kid": RSA_KID }), &claims());
    assert!(v.verifier.verify(&without_typ, t0()).await.is_ok());
    for typ in [
        json!("JOSE"),
        json!("dpop+jwt"),
        json!("application/"),
        json!(1),
    ] {
        let header = json!({ "alg": "RS256", "kid": RSA_KID, "typ": typ });
        let token = rsa.token(&header, &claims());
        assert_eq!(refusal(&v.verifier, &token, t0()).await, "wrong token type");
    }
}

// ---------- algorithm attacks ----------

#[tokio::test]
async fn alg_none_is_refused_in_any_spelling_with_or_without_a_signature() {
    let rsa = TestKey::rsa();
    let v = file_verifier(&[&rsa], &ALL_ALGORITHMS);
    let payload = b64(claims().to_string());
    for alg in ["none", "None", "NONE", "nOnE"] {
        let head = b64(json!({ "alg": alg, "kid": RSA_KID, "typ": "JWT" }).to_string());
        let unsigned = format!("{head}.{payload}.");
        assert_eq!(
            refusal(&v.verifier, &unsigned, t0()).await,
            "algorithm none is not accepted"
        );
        let signature = b64(rsa.sign("RS256", format!("{head}.{payload}").as_bytes()));
        let signed = format!("{head}.{payload}.{signature}");
        assert_eq!(
            refusal(&v.verifier, &signed, t0()).await,
            "algorithm none is not accepted"
        );
        let two_parts = format!("{head}.{payload}");
        assert_eq!(
            refusal(&v.verifier, &two_parts, t0()).await,
            "malformed token"
        );
    }
    let mut config = config(JwksSource::File(fixture("jwks.json")), &["RS256", "none"]);
    assert!(JwtVerifier::new(&config).unwrap_err().contains("`none`"));
    config.algorithms = vec!["NONE".into()];
    assert!(JwtVerifier::new(&config).is_err());
}

#[tokio::test]
async fn an_hs256_token_keyed_with_the_rsa_public_key_is_refused() {
    // The classic confusion: the attacker "signs" with HMAC, using the public key as the
    // secret, hoping the verifier feeds that same key to HMAC.
    let rsa = TestKey::rsa();
    let public_pem = std::fs::read(fixture("rsa-2048.pub.pem")).unwrap();
    let public_der = pem_body(&fixture("rsa-2048.pub.pem"));
    let modulus = URL_SAFE_NO_PAD
        .decode(rsa.jwk["n"].as_str().unwrap())
        .unwrap();
    let jwk_text = rsa.jwk.to_string().into_bytes();
    let with_hs256 = file_verifier(&[&rsa], &["RS256", "HS256"]);
    let without_hs256 = file_verifier(&[&rsa], &["RS256"]);
    for secret in [&public_pem, &public_der, &modulus, &jwk_text] {
        let forger = TestKey::hmac_secret(secret);
        for kid in [Some(RSA_KID), None] {
            let token = forger.token(&header("HS256", kid), &claims());
            assert_eq!(
                refusal(&with_hs256.verifier, &token, t0()).await,
                "algorithm does not match the key"
            );
            assert_eq!(
                refusal(&without_hs256.verifier, &token, t0()).await,
                "algorithm not allowed"
            );
        }
    }
}

#[tokio::test]
async fn an_algorithm_outside_the_allowlist_is_refused() {
    let p256 = TestKey::ec("ec-256", "P-256");
    let rsa = TestKey::rsa();
    let v = file_verifier(&[&p256, &rsa], &["RS256"]);
    let token = p256.sign_claims("ES256", &claims());
    assert_eq!(
        refusal(&v.verifier, &token, t0()).await,
        "algorithm not allowed"
    );
    // An RSA algorithm the key could do, but the configuration does not allow.
    let token = rsa.sign_claims("PS256", &claims());
    assert_eq!(
        refusal(&v.verifier, &token, t0()).await,
        "algorithm not allowed"
    );
    for alg in ["HS512", "ES512", "rs256", ""] {
        let token = rsa.token(&header(alg, Some(RSA_KID)), &claims());
        assert_eq!(
            refusal(&v.verifier, &token, t0()).await,
            "algorithm not allowed"
        );
    }
    let no_alg = rsa.token(&json!({ "kid": RSA_KID }), &claims());
    assert_eq!(
        refusal(&v.verifier, &no_alg, t0()).await,
        "missing algorithm"
    );
}

#[tokio::test]
async fn a_jwk_for_encryption_or_for_another_algorithm_is_not_used() {
    let enc = TestKey::ec("enc-1", "P-256").with_jwk(|jwk| jwk["use"] = json!("enc"));
    let wrap_only =
        TestKey::ec("wrap-1", "P-256").with_jwk(|jwk| jwk["key_ops"] = json!(["wrapKey"]));
    let rs256_only = TestKey::rsa().with_jwk(|jwk| jwk["alg"] = json!("RS256"));
    let v = file_verifier(&[&enc, &wrap_only, &rs256_only], &ALL_ALGORITHMS);
    let token = enc.sign_claims("ES256", &claims());
    assert_eq!(refusal(&v.verifier, &token, t0()).await, "unknown key id");
    let token = wrap_only.sign_claims("ES256", &claims());
    assert_eq!(refusal(&v.verifier, &token, t0()).await, "unknown key id");
    let token = rs256_only.sign_claims("PS256", &claims());
    assert_eq!(
        refusal(&v.verifier, &token, t0()).await,
        "algorithm does not match the key"
    );
    let token = rs256_only.sign_claims("RS256", &claims());
    assert_eq!(v.verifier.verify(&token, t0()).await, Ok(alice()));
}

#[tokio::test]
async fn keys_embedded_in_the_header_are_never_trusted_or_fetched() {
    let idp = Idp::start(Reply::Jwks("{\"keys\":[]}".into())).await;
    let rsa = TestKey::rsa();
    let v = file_verifier(&[&rsa], &["RS256", "ES256"]);
    let attacker = TestKey::ec("attacker", "P-256");
    for kid in ["attacker", RSA_KID] {
        let header = json!({
            "alg": "ES256", "kid": kid, "typ": "JWT",
            "jwk": attacker.jwk, "jku": idp.url(), "x5u": idp.url(),
        });
        let token = attacker.token(&header, &claims());
        let reason = refusal(&v.verifier, &token, t0()).await;
        assert!(
            reason == "unknown key id" || reason == "algorithm does not match the key",
            "{reason}"
        );
    }
    assert_eq!(idp.fetches(), 0, "jku/x5u must never be fetched");
}

#[tokio::test]
async fn critical_headers_are_refused() {
    let rsa = TestKey::rsa();
    let v = file_verifier(&[&rsa], &["RS256"]);
    let header = json!({ "alg": "RS256", "kid": RSA_KID, "crit": ["b64"], "b64": false });
    let token = rsa.token(&header, &claims());
    assert_eq!(
        refusal(&v.verifier, &token, t0()).await,
        "unsupported critical header"
    );
}

// ---------- claims ----------

#[tokio::test]
async fn the_issuer_must_match_exactly() {
    let rsa = TestKey::rsa();
    let v = file_verifier(&[&rsa], &["RS256"]);
    for iss in [
        json!("https://idp.example.com"),
        json!("https://IDP.example.com/"),
        json!("https://evil.example.com/"),
        json!([ISSUER]),
    ] {
        let token = rsa.sign_claims("RS256", &claims_with(|c| c["iss"] = iss.clone()));
        assert_eq!(
            refusal(&v.verifier, &token, t0()).await,
            "wrong issuer",
            "{iss}"
        );
    }
    let token = rsa.sign_claims(
        "RS256",
        &claims_with(|c| {
            c.as_object_mut().unwrap().remove("iss");
        }),
    );
    assert_eq!(refusal(&v.verifier, &token, t0()).await, "wrong issuer");
}

#[tokio::test]
async fn the_audience_is_one_of_ours_as_a_string_or_in_an_array() {
    let rsa = TestKey::rsa();
    let v = file_verifier(&[&rsa], &["RS256"]);
    for aud in [json!("hangar-admin"), json!(["other", AUDIENCE])] {
        let token = rsa.sign_claims("RS256", &claims_with(|c| c["aud"] = aud.clone()));
        assert!(v.verifier.verify(&token, t0()).await.is_ok(), "{aud}");
    }
    for aud in [
        json!("other"),
        json!(["a", "b"]),
        json!([]),
        json!(null),
        json!(7),
    ] {
        let token = rsa.sign_claims("RS256", &claims_with(|c| c["aud"] = aud.clone()));
        assert_eq!(
            refusal(&v.verifier, &token, t0()).await,
            "wrong audience",
            "{aud}"
        );
    }
}

#[tokio::test]
async fn expiry_is_required_and_enforced_with_the_leeway() {
    let rsa = TestKey::rsa();
    let v = file_verifier(&[&rsa], &["RS256"]);
    let now = t0().as_second();
    let token = rsa.sign_claims("RS256", &claims_with(|c| c["exp"] = json!(now - 31)));
    assert_eq!(refusal(&v.verifier, &token, t0()).await, "expired");
    let token = rsa.sign_claims("RS256", &claims_with(|c| c["exp"] = json!(now - 10)));
    assert!(
        v.verifier.verify(&token, t0()).await.is_ok(),
        "within the 30 s leeway"
    );
    let token = rsa.sign_claims(
        "RS256",
        &claims_with(|c| {
            c.as_object_mut().unwrap().remove("exp");
        }),
    );
    assert_eq!(refusal(&v.verifier, &token, t0()).await, "missing expiry");
    let token = rsa.sign_claims("RS256", &claims_with(|c| c["exp"] = json!("tomorrow")));
    assert_eq!(
        refusal(&v.verifier, &token, t0()).await,
        "malformed time claim"
    );
}

#[tokio::test]
async fn a_token_may_not_live_longer_than_the_maximum() {
    let rsa = TestKey::rsa();
    let v = file_verifier(&[&rsa], &["RS256"]);
    let now = t0().as_second();
    let day = 24 * 3600;
    let accepted = [
        // Exactly a day from its issue, as Auth0 signs by default.
        claims_with(|c| c["exp"] = json!(now - 10 + day)),
        // Issued long ago but valid from an hour ago, for a day.
        claims_with(|c| {
            c["iat"] = json!(now - 30 * day);
            c["nbf"] = json!(now - 3600);
            c["exp"] = json!(now - 3600 + day);
        }),
        // Neither `iat` nor `nbf`: counted from now.
        claims_with(|c| {
            c.as_object_mut().unwrap().remove("iat");
            c["exp"] = json!(now + day);
        }),
    ];
    for claims in accepted {
        let token = rsa.sign_claims("RS256", &claims);
        assert!(v.verifier.verify(&token, t0()).await.is_ok(), "{claims}");
    }
    let refused = [
        claims_with(|c| c["exp"] = json!(now - 10 + day + 1)),
        // A token for a century, from an identity provider that signs what it is asked to.
        claims_with(|c| c["exp"] = json!(now + 100 * 365 * day)),
        claims_with(|c| c["exp"] = json!(1e300)),
        // Issued a month ago and still valid: its lifetime is a month.
        claims_with(|c| {
            c["iat"] = json!(now - 30 * day);
            c["exp"] = json!(now + 3600);
        }),
        claims_with(|c| {
            c.as_object_mut().unwrap().remove("iat");
            c["exp"] = json!(now + day + 1);
        }),
    ];
    for claims in refused {
        let token = rsa.sign_claims("RS256", &claims);
        assert_eq!(
            refusal(&v.verifier, &token, t0()).await,
            "lifetime too long",
            "{claims}"
        );
    }
}

#[tokio::test]
async fn a_remembered_token_still_expires() {
    let rsa = TestKey::rsa();
    let v = file_verifier(&[&rsa], &["RS256"]);
    let token = rsa.sign_claims("RS256", &claims());
    assert!(v.verifier.verify(&token, t0()).await.is_ok());
    assert!(v.verifier.verify(&token, at(3600)).await.is_ok(), "leeway");
    assert_eq!(refusal(&v.verifier, &token, at(3630)).await, "expired");
}

#[tokio::test]
async fn not_before_and_issued_at_may_not_be_in_the_future() {
    let rsa = TestKey::rsa();
    let v = file_verifier(&[&rsa], &["RS256"]);
    let now = t0().as_second();
    let token = rsa.sign_claims("RS256", &claims_with(|c| c["nbf"] = json!(now + 120)));
    assert_eq!(refusal(&v.verifier, &token, t0()).await, "not yet valid");
    assert!(
        v.verifier.verify(&token, at(100)).await.is_ok(),
        "valid once nbf is near"
    );
    let token = rsa.sign_claims("RS256", &claims_with(|c| c["nbf"] = json!(now + 20)));
    assert!(
        v.verifier.verify(&token, t0()).await.is_ok(),
        "within the leeway"
    );
    let token = rsa.sign_claims("RS256", &claims_with(|c| c["iat"] = json!(now + 600)));
    assert_eq!(
        refusal(&v.verifier, &token, t0()).await,
        "issued in the future"
    );
}

#[tokio::test]
async fn the_tenant_claim_is_a_non_empty_string() {
    let rsa = TestKey::rsa();
    let v = file_verifier(&[&rsa], &["RS256"]);
    let missing = claims_with(|c| {
        c.as_object_mut().unwrap().remove("tenant");
    });
    for claims in [
        missing,
        claims_with(|c| c["tenant"] = json!("")),
        claims_with(|c| c["tenant"] = json!(42)),
        claims_with(|c| c["tenant"] = json!(["payments"])),
    ] {
        let token = rsa.sign_claims("RS256", &claims);
        assert_eq!(
            refusal(&v.verifier, &token, t0()).await,
            "missing tenant claim"
        );
    }
}

#[tokio::test]
async fn the_tenant_and_subject_claims_are_configurable_with_fallbacks() {
    let rsa = TestKey::rsa();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(&[&rsa])).unwrap();
    let mut config = config(JwksSource::File(path), &["RS256"]);
    config.tenant_claim = "https://hangar.dev/tenant".into();
    config.subject_claim = "email".into();
    let v = JwtVerifier::new(&config).unwrap();
    let base = claims_with(|c| c["https://hangar.dev/tenant"] = json!("search"));
    let who = |key_id: &str| Identity {
        tenant: Arc::from("search"),
        key_id: Arc::from(key_id),
    };

    let token = rsa.sign_claims("RS256", &base);
    assert_eq!(
        refusal(&v, &token, t0()).await,
        "missing subject",
        "`sub` is not read when another subject claim is configured"
    );
    let mut claims = base.clone();
    claims["email"] = json!("bob@example.com");
    claims["client_id"] = json!("svc");
    let token = rsa.sign_claims("RS256", &claims);
    assert_eq!(v.verify(&token, t0()).await, Ok(who("bob@example.com")));
    let mut claims = base.clone();
    claims["client_id"] = json!("batch-runner");
    claims["azp"] = json!("web");
    let token = rsa.sign_claims("RS256", &claims);
    assert_eq!(v.verify(&token, t0()).await, Ok(who("batch-runner")));
    let mut claims = base.clone();
    claims["azp"] = json!("web");
    let token = rsa.sign_claims("RS256", &claims);
    assert_eq!(v.verify(&token, t0()).await, Ok(who("web")));
    // The default `tenant` claim means nothing under this configuration.
    let token = rsa.sign_claims("RS256", &claims_with(|c| c["email"] = json!("eve")));
    assert_eq!(refusal(&v, &token, t0()).await, "missing tenant claim");
}

// ---------- keys and signatures ----------

#[tokio::test]
async fn an_unknown_or_missing_kid_is_refused() {
    let rsa = TestKey::rsa();
    let ed = TestKey::ed25519("ed-1");
    let single = file_verifier(&[&rsa], &["RS256", "EdDSA"]);
    let token = rsa.token(&header("RS256", Some("rsa-2025-9")), &claims());
    assert_eq!(
        refusal(&single.verifier, &token, t0()).await,
        "unknown key id"
    );
    let no_kid = rsa.token(&header("RS256", None), &claims());
    assert_eq!(
        single.verifier.verify(&no_kid, t0()).await,
        Ok(alice()),
        "one key in the set: no kid needed"
    );
    let two = file_verifier(&[&rsa, &ed], &["RS256", "EdDSA"]);
    assert_eq!(
        refusal(&two.verifier, &no_kid, t0()).await,
        "missing key id"
    );
    let numeric_kid = rsa.token(&json!({ "alg": "RS256", "kid": 1 }), &claims());
    assert_eq!(
        refusal(&two.verifier, &numeric_kid, t0()).await,
        "malformed header"
    );
}

#[tokio::test]
async fn tampering_with_the_payload_or_the_signature_breaks_it() {
    let rsa = TestKey::rsa();
    let p256 = TestKey::ec("ec-256", "P-256");
    let v = file_verifier(&[&rsa, &p256], &["RS256", "ES256"]);
    let token = rsa.sign_claims("RS256", &claims());
    let parts: Vec<&str> = token.split('.').collect();

    let forged = b64(claims_with(|c| c["tenant"] = json!("admin")).to_string());
    let tampered_payload = format!("{}.{forged}.{}", parts[0], parts[2]);
    assert_eq!(
        refusal(&v.verifier, &tampered_payload, t0()).await,
        "bad signature"
    );

    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[17] ^= 0x01;
    let tampered_signature = format!("{}.{}.{}", parts[0], parts[1], b64(&signature));
    assert_eq!(
        refusal(&v.verifier, &tampered_signature, t0()).await,
        "bad signature"
    );

    let truncated = format!("{}.{}.{}", parts[0], parts[1], b64(&signature[..128]));
    assert_eq!(
        refusal(&v.verifier, &truncated, t0()).await,
        "bad signature"
    );
    let empty_signature = format!("{}.{}.", parts[0], parts[1]);
    assert_eq!(
        refusal(&v.verifier, &empty_signature, t0()).await,
        "bad signature"
    );

    // Signed by another key that claims the real key's kid.
    let impostor = TestKey::ec("ec-256", "P-256");
    let token = impostor.sign_claims("ES256", &claims());
    assert_eq!(refusal(&v.verifier, &token, t0()).await, "bad signature");

    // A well-formed signature over claims that are not JSON is still refused.
    let head = b64(header("RS256", Some(RSA_KID)).to_string());
    let body = b64("not json");
    let signature = b64(rsa.sign("RS256", format!("{head}.{body}").as_bytes()));
    let token = format!("{head}.{body}.{signature}");
    assert_eq!(refusal(&v.verifier, &token, t0()).await, "malformed claims");
}

#[tokio::test]
async fn a_token_is_bounded_in_size_before_any_work() {
    let rsa = TestKey::rsa();
    let v = file_verifier(&[&rsa], &["RS256"]);
    let large = rsa.sign_claims(
        "RS256",
        &claims_with(|c| c["pad"] = json!("x".repeat(9000))),
    );
    assert!(large.len() < MAX_TOKEN_BYTES);
    assert!(v.verifier.verify(&large, t0()).await.is_ok());
    let huge = rsa.sign_claims(
        "RS256",
        &claims_with(|c| c["pad"] = json!("x".repeat(13_000))),
    );
    assert!(huge.len() > MAX_TOKEN_BYTES);
    assert_eq!(refusal(&v.verifier, &huge, t0()).await, "token too large");
    let junk = "a".repeat(MAX_TOKEN_BYTES + 1);
    assert_eq!(refusal(&v.verifier, &junk, t0()).await, "token too large");
}

#[tokio::test]
async fn garbage_is_refused_without_echoing_it() {
    let rsa = TestKey::rsa();
    let v = file_verifier(&[&rsa], &["RS256"]);
    let good = rsa.sign_claims("RS256", &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let (head, body, sig) = (parts[0], parts[1], parts[2]);
    let cases = [
        (String::new(), "malformed token"),
        ("abc".to_owned(), "malformed token"),
        (format!("{head}.{body}"), "malformed token"),
        (format!("{head}.{body}.{sig}.{sig}"), "malformed token"),
        (format!("{head}=.{body}.{sig}"), "malformed token"),
        (format!("{head}.{body}.{sig}="), "malformed token"),
        (format!("{head}.{body}.{sig}!"), "malformed token"),
        (
            format!("{}.{body}.{sig}", head.replace('e', "+")),
            "malformed token",
        ),
        (format!(" {good}"), "malformed token"),
        (
            format!("{}.{body}.{sig}", b64("not json")),
            "malformed header",
        ),
        (
            format!("{}.{body}.{sig}", b64("[\"RS256\"]")),
            "malformed header",
        ),
        (format!("{}.{body}.{sig}", b64("")), "malformed header"),
        (
            format!("{}.{body}.{sig}", b64(r#"{"alg":"RS256","alg":"RS256"}"#)),
            "malformed header",
        ),
    ];
    for (token, reason) in cases {
        let got = refusal(&v.verifier, &token, t0()).await;
        assert_eq!(got, reason, "for {token:?}");
        assert!(!got.contains(body), "the reason never quotes the token");
    }
    let duplicate_sub = {
        let body = b64(
            r#"{"iss":"https://idp.example.com/","aud":"hangar-gateway","sub":"alice","sub":"root","tenant":"payments","exp":9999999999}"#,
        );
        let signature = b64(rsa.sign("RS256", format!("{head}.{body}").as_bytes()));
        format!("{head}.{body}.{signature}")
    };
    assert_eq!(
        refusal(&v.verifier, &duplicate_sub, t0()).await,
        "malformed claims"
    );
}

// ---------- building the verifier ----------

#[test]
fn a_bad_jwks_file_is_named_with_the_key_index_and_field() {
    let rsa = TestKey::rsa();
    let good = rsa.jwk.clone();
    let mut bad_n = good.clone();
    bad_n["n"] = json!("***");
    let (err, path, _dir) = new_error(&json!({ "keys": [good, bad_n] }).to_string());
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("keys[1].n: not base64url"), "{err}");

    let weak = json!({ "kty": "RSA", "kid": "old", "n": b64([0xc5; 128]), "e": "AQAB" });
    let (err, _, _dir) = new_error(&json!({ "keys": [weak] }).to_string());
    assert!(
        err.contains("keys[0].n: a 1024-bit modulus is too weak"),
        "{err}"
    );

    let short = json!({ "kty": "oct", "kid": "s", "k": b64(b"sixteen byte key") });
    let (err, _, _dir) = new_error(&json!({ "keys": [short] }).to_string());
    assert!(
        err.contains("keys[0].k: a 16-byte HMAC key is too short"),
        "{err}"
    );

    let mut mislabelled = good.clone();
    mislabelled["alg"] = json!("ES256");
    let (err, _, _dir) = new_error(&json!({ "keys": [mislabelled] }).to_string());
    assert!(
        err.contains("keys[0].alg: ES256 does not fit a RSA key"),
        "{err}"
    );

    let bad_point = json!({ "kty": "EC", "crv": "P-256", "x": b64([1; 31]), "y": b64([1; 32]) });
    let (err, _, _dir) = new_error(&json!({ "keys": [bad_point] }).to_string());
    assert!(err.contains("keys[0].x: 31 bytes, expected 32"), "{err}");

    let mut no_e = good.clone();
    no_e.as_object_mut().unwrap().remove("e");
    let (err, _, _dir) = new_error(&json!({ "keys": [no_e] }).to_string());
    assert!(err.contains("keys[0].e: missing"), "{err}");

    let only_encryption =
        json!({ "keys": [{ "kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB" }] });
    let (err, _, _dir) = new_error(&only_encryption.to_string());
    assert!(err.contains("no signing key"), "{err}");

    let (err, _, _dir) = new_error("{\"keys\": {}}");
    assert!(err.contains("`keys` is missing or not an array"), "{err}");
    let (err, _, _dir) = new_error("<html>");
    assert!(err.contains("not a JSON document"), "{err}");

    let missing = PathBuf::from("/nonexistent/hangar/jwks.json");
    let err = JwtVerifier::new(&config(JwksSource::File(missing), &["RS256"])).unwrap_err();
    assert!(
        err.contains("/nonexistent/hangar/jwks.json: cannot read"),
        "{err}"
    );
}

#[test]
fn unsupported_keys_in_a_jwks_file_are_skipped_not_fatal() {
    let rsa = TestKey::rsa();
    let p521 = json!({ "kty": "EC", "crv": "P-521", "x": "AA", "y": "AA" });
    let x25519 = json!({ "kty": "OKP", "crv": "X25519", "x": "AA" });
    let hs512 = json!({ "kty": "oct", "alg": "HS512", "k": "AA" });
    let document = json!({ "keys": [p521, x25519, hs512, rsa.jwk] }).to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, document).unwrap();
    assert!(JwtVerifier::new(&config(JwksSource::File(path), &["RS256"])).is_ok());
}

#[test]
fn the_configuration_is_checked_when_the_verifier_is_built() {
    let file = JwksSource::File(fixture("jwks.json"));
    let err = JwtVerifier::new(&config(file.clone(), &[])).unwrap_err();
    assert!(err.contains("auth.jwt.algorithms"), "{err}");
    let err = JwtVerifier::new(&config(file.clone(), &["HS384"])).unwrap_err();
    assert!(err.contains("`HS384` is not supported"), "{err}");
    let mut no_audience = config(file, &["RS256"]);
    no_audience.audiences.clear();
    assert!(
        JwtVerifier::new(&no_audience)
            .unwrap_err()
            .contains("audiences")
    );
    let remote = JwksSource::Url("http://idp.example.com/jwks.json".into());
    let err = JwtVerifier::new(&config(remote, &["RS256"])).unwrap_err();
    assert!(err.contains("https"), "{err}");
}

#[test]
fn the_verifier_can_be_shared_between_tasks() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<JwtVerifier>();
}

// ---------- JWKS by URL ----------

/// What the identity provider answers on its JWKS URL.
#[derive(Clone)]
enum Reply {
    Jwks(String),
    SlowJwks(Duration, String),
    Status(u16),
    Body(Vec<u8>),
}

/// A JWKS endpoint on loopback that counts its requests.
struct Idp {
    address: SocketAddr,
    reply: Arc<Mutex<Reply>>,
    fetches: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Idp {
    async fn start(reply: Reply) -> Idp {
        Idp::start_with(reply, None).await
    }

    /// Serves https for `localhost`, with a certificate of its own CA, written to `ca_file`.
    async fn start_tls(reply: Reply, ca_file: &Path) -> Idp {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(ca_file, certified.cert.pem()).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der())
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
        Idp::start_with(
            reply,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
        .await
    }

    async fn start_with(reply: Reply, tls: Option<tokio_rustls::TlsAcceptor>) -> Idp {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let address = listener.local_addr().unwrap();
        let reply = Arc::new(Mutex::new(reply));
        let fetches = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(serve(
            listener,
            tls,
            Arc::clone(&reply),
            Arc::clone(&fetches),
        ));
        Idp {
            address,
            reply,
            fetches,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.address)
    }

    fn set(&self, reply: Reply) {
        *self.reply.lock().unwrap() = reply;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Stops answering: the listener and every open connection close.
    fn shut_down(&self) {
        self.task.abort();
    }

    fn verifier(&self) -> JwtVerifier {
        JwtVerifier::new(&config(JwksSource::Url(self.url()), &ALL_ALGORITHMS)).unwrap()
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    reply: Arc<Mutex<Reply>>,
    fetches: Arc<AtomicUsize>,
) {
    // Owning the connections here means aborting this task closes every one of them.
    let mut connections = JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        let (reply, fetches, tls) = (Arc::clone(&reply), Arc::clone(&fetches), tls.clone());
        connections.spawn(async move {
            let service = service_fn(move |_request| {
                let (reply, fetches) = (Arc::clone(&reply), Arc::clone(&fetches));
                async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let reply = reply.lock().unwrap().clone();
                    Ok::<_, Infallible>(answer(reply).await)
                }
            });
            let http = http1::Builder::new();
            match tls {
                None => {
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                }
                Some(tls) => {
                    if let Ok(stream) = tls.accept(stream).await {
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn answer(reply: Reply) -> Response<Full<Bytes>> {
    let (status, body) = match reply {
        Reply::Jwks(text) => (200, text.into_bytes()),
        Reply::SlowJwks(delay, text) => {
            tokio::time::sleep(delay).await;
            (200, text.into_bytes())
        }
        Reply::Status(status) => (status, b"{\"error\":\"down\"}".to_vec()),
        Reply::Body(bytes) => (200, bytes),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response
}

#[tokio::test]
async fn an_identity_provider_behind_a_private_ca_is_trusted_through_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("idp-ca.pem");
    let ed = TestKey::ed25519("ed-1");
    let idp = Idp::start_tls(Reply::Jwks(jwks(&[&ed])), &ca_file).await;
    let url = format!(
        "https://localhost:{}/.well-known/jwks.json",
        idp.address.port()
    );
    let token = ed.sign_claims("EdDSA", &claims());
    let trusting = JwtVerifier::new(&JwtConfig {
        ca_file: Some(ca_file.clone()),
        ..config(JwksSource::Url(url.clone()), &ALL_ALGORITHMS)
    })
    .unwrap();
    assert_eq!(trusting.ca_certificates().len(), 1);
    assert!(trusting.verify(&token, t0()).await.is_ok());
    assert_eq!(idp.fetches(), 1);

    // With the system's CAs only, the handshake fails and nothing is fetched.
    let system_only = JwtVerifier::new(&config(JwksSource::Url(url), &ALL_ALGORITHMS)).unwrap();
    assert!(system_only.verify(&token, t0()).await.is_err());
    assert_eq!(idp.fetches(), 1);
}

#[test]
fn a_reload_keeps_the_verifier_and_its_keys_until_the_ca_file_changes() {
    use hangar_gateway::config::GatewayConfig;
    use hangar_gateway::runtime::Runtime;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("idp-ca.pem");
    let write_ca = || {
        let certified = rcgen::generate_simple_self_signed(vec!["idp".to_owned()]).unwrap();
        std::fs::write(&ca_file, certified.cert.pem()).unwrap();
    };
    write_ca();
    let yaml = format!(
        "listen: 127.0.0.1:0
auth:
  jwt: {{issuer: i, audiences: [a], jwks: {{url: \"https://idp.example.com/jwks\"}}, caFile: {}, algorithms: [RS256], tenantClaim: t}}
tenants: {{}}
models: {{}}
audit: {{dir: {}, retentionDays: 1}}
",
        ca_file.display(),
        dir.path().join("audit").display()
    );
    let build = |previous: Option<&Runtime>| {
        Runtime::build(GatewayConfig::from_yaml(&yaml).unwrap(), previous).unwrap()
    };
    let first = build(None);
    let same = build(Some(&first));
    assert!(Arc::ptr_eq(
        first.jwt.as_ref().unwrap(),
        same.jwt.as_ref().unwrap()
    ));
    write_ca();
    let renewed = build(Some(&same));
    assert!(!Arc::ptr_eq(
        same.jwt.as_ref().unwrap(),
        renewed.jwt.as_ref().unwrap()
    ));
}

#[test]
fn a_ca_file_must_exist_and_goes_with_a_jwks_url() {
    let dir = tempfile::tempdir().unwrap();
    let url = JwksSource::Url("https://idp.example.com/jwks".into());
    let missing = JwtVerifier::new(&JwtConfig {
        ca_file: Some(dir.path().join("missing.pem")),
        ..config(url, &ALL_ALGORITHMS)
    })
    .unwrap_err();
    assert!(
        missing.starts_with("auth.jwt.caFile: ") && missing.contains("missing.pem"),
        "{missing}"
    );
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks(&[&TestKey::ed25519("ed-1")])).unwrap();
    let ca_file = dir.path().join("ca.pem");
    let certified = rcgen::generate_simple_self_signed(vec!["idp".to_owned()]).unwrap();
    std::fs::write(&ca_file, certified.cert.pem()).unwrap();
    let with_file = JwtVerifier::new(&JwtConfig {
        ca_file: Some(ca_file),
        ..config(JwksSource::File(file), &ALL_ALGORITHMS)
    })
    .unwrap_err();
    assert!(with_file.contains("only used with"), "{with_file}");
}

fn claims_for(subject: &str) -> Value {
    claims_with(|c| c["sub"] = json!(subject))
}

#[tokio::test]
async fn keys_fetched_by_url_are_cached_for_cache_for() {
    let ed = TestKey::ed25519("ed-1");
    let idp = Idp::start(Reply::Jwks(jwks(&[&ed]))).await;
    let v = idp.verifier();
    assert_eq!(
        idp.fetches(),
        0,
        "a URL is fetched on first use, not when built"
    );
    for i in 0..50 {
        let token = ed.sign_claims("EdDSA", &claims_for(&format!("user-{i}")));
        assert!(v.verify(&token, at(i)).await.is_ok());
    }
    assert_eq!(idp.fetches(), 1, "one fetch for fifty distinct tokens");
    let token = ed.sign_claims("EdDSA", &claims());
    assert!(v.verify(&token, at(299)).await.is_ok());
    assert_eq!(idp.fetches(), 1);
    // Once cacheFor (300 s) has passed, the stale keys answer at once while a task renews
    // them: no request waits on a slow identity provider.
    idp.set(Reply::SlowJwks(Duration::from_secs(2), jwks(&[&ed])));
    let asked = Instant::now();
    assert!(v.verify(&token, at(301)).await.is_ok());
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    verify_until_fetched(&v, &token, at(301), &idp, 2).await;
}

/// Verifies `token` at `now` (with the keys at hand, stale or not) until the identity
/// provider has been asked `fetches` times, as a task renewing stale keys asks it.
async fn verify_until_fetched(
    v: &JwtVerifier,
    token: &str,
    now: Timestamp,
    idp: &Idp,
    fetches: usize,
) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while idp.fetches() < fetches {
        assert!(v.verify(token, now).await.is_ok());
        assert!(Instant::now() < deadline, "{} fetches", idp.fetches());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(idp.fetches(), fetches);
}

#[tokio::test]
async fn a_new_key_from_the_idp_is_fetched_when_a_token_names_it() {
    let old = TestKey::ec("2026-05", "P-256");
    let new = TestKey::ec("2026-06", "P-256");
    let idp = Idp::start(Reply::Jwks(jwks(&[&old]))).await;
    let v = idp.verifier();
    assert!(
        v.verify(&old.sign_claims("ES256", &claims()), t0())
            .await
            .is_ok()
    );
    assert_eq!(idp.fetches(), 1);

    // The IdP rotates: it publishes the new key beside the old one.
    idp.set(Reply::Jwks(jwks(&[&old, &new])));
    let token = new.sign_claims("ES256", &claims());
    assert_eq!(v.verify(&token, at(45)).await, Ok(alice()));
    assert_eq!(idp.fetches(), 2, "the unknown kid made one refetch");
    assert!(
        v.verify(&old.sign_claims("ES256", &claims_for("bob")), at(46))
            .await
            .is_ok()
    );
    assert_eq!(idp.fetches(), 2);
}

#[tokio::test]
async fn a_key_replaced_under_its_kid_is_fetched_again_on_a_bad_signature() {
    let first = TestKey::ed25519("main");
    let second = TestKey::ed25519("main");
    let idp = Idp::start(Reply::Jwks(jwks(&[&first]))).await;
    let v = idp.verifier();
    assert!(
        v.verify(&first.sign_claims("EdDSA", &claims()), t0())
            .await
            .is_ok()
    );
    // A careless rotation: a new key under the old `kid`.
    idp.set(Reply::Jwks(jwks(&[&second])));
    let token = second.sign_claims("EdDSA", &claims_for("bob"));
    assert!(v.verify(&token, at(45)).await.is_ok());
    assert_eq!(idp.fetches(), 2, "the bad signature made one refetch");
    // A forgery costs no more fetches than a made-up kid: one each 30 s.
    let forger = TestKey::ed25519("main");
    for i in 0..20 {
        let token = forger.sign_claims("EdDSA", &claims_for(&format!("eve-{i}")));
        assert_eq!(refusal(&v, &token, at(50 + i)).await, "bad signature");
    }
    assert_eq!(idp.fetches(), 2);
    let token = forger.sign_claims("EdDSA", &claims_for("eve"));
    assert_eq!(refusal(&v, &token, at(80)).await, "bad signature");
    assert_eq!(idp.fetches(), 3);
}

#[tokio::test]
async fn tokens_without_kid_follow_the_rotation_of_a_single_key() {
    let old = TestKey::ed25519("k");
    let new = TestKey::ed25519("k2");
    let idp = Idp::start(Reply::Jwks(jwks(&[&old]))).await;
    let v = idp.verifier();
    let unnamed =
        |key: &TestKey, subject: &str| key.token(&header("EdDSA", None), &claims_for(subject));
    assert!(v.verify(&unnamed(&old, "a"), t0()).await.is_ok());
    idp.set(Reply::Jwks(jwks(&[&new])));
    assert!(v.verify(&unnamed(&new, "b"), at(45)).await.is_ok());
    assert_eq!(idp.fetches(), 2);
}

#[tokio::test]
async fn two_keys_under_one_kid_both_verify() {
    let first = TestKey::ec("main", "P-256");
    let second = TestKey::ec("main", "P-256");
    let idp = Idp::start(Reply::Jwks(jwks(&[&first, &second]))).await;
    let v = idp.verifier();
    for (key, subject) in [(&first, "a"), (&second, "b")] {
        let token = key.sign_claims("ES256", &claims_for(subject));
        assert!(v.verify(&token, t0()).await.is_ok(), "{subject}");
    }
    assert_eq!(idp.fetches(), 1, "no refetch was needed");
}

#[tokio::test]
async fn a_reload_that_changes_other_settings_keeps_the_fetched_keys() {
    use hangar_gateway::config::GatewayConfig;
    use hangar_gateway::runtime::Runtime;
    let ed = TestKey::ed25519("ed-1");
    let idp = Idp::start(Reply::Jwks(jwks(&[&ed]))).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = |leeway: &str| {
        format!(
            "listen: 127.0.0.1:0
auth:
  jwt: {{issuer: \"{ISSUER}\", audiences: [{AUDIENCE}], jwks: {{url: \"{}\"}}, algorithms: [EdDSA], {leeway}}}
tenants: {{}}
models: {{}}
audit: {{dir: {}, retentionDays: 1}}
",
            idp.url(),
            dir.path().join("audit").display()
        )
    };
    let build = |leeway: &str, previous: Option<&Runtime>| {
        Runtime::build(GatewayConfig::from_yaml(&yaml(leeway)).unwrap(), previous).unwrap()
    };
    let first = build("leeway: 30s", None);
    let token = ed.sign_claims("EdDSA", &claims());
    assert!(
        first
            .jwt
            .as_ref()
            .unwrap()
            .verify(&token, t0())
            .await
            .is_ok()
    );
    idp.shut_down();
    // The identity provider is away when the leeway changes.
    let second = build("leeway: 60s", Some(&first));
    assert!(!Arc::ptr_eq(
        first.jwt.as_ref().unwrap(),
        second.jwt.as_ref().unwrap()
    ));
    let token = ed.sign_claims("EdDSA", &claims_for("bob"));
    assert!(
        second
            .jwt
            .as_ref()
            .unwrap()
            .verify(&token, at(1))
            .await
            .is_ok()
    );
    // So are they when the time they are kept for changes.
    let kept_longer = build("leeway: 60s, cacheFor: 2h", Some(&second));
    let token = ed.sign_claims("EdDSA", &claims_for("dave"));
    let verified = kept_longer
        .jwt
        .as_ref()
        .unwrap()
        .verify(&token, at(2))
        .await;
    assert!(verified.is_ok(), "{verified:?}");
    // Another URL starts afresh.
    let elsewhere = yaml("leeway: 60s").replace("/.well-known/", "/other/");
    let third =
        Runtime::build(GatewayConfig::from_yaml(&elsewhere).unwrap(), Some(&second)).unwrap();
    let token = ed.sign_claims("EdDSA", &claims_for("carol"));
    assert!(
        third
            .jwt
            .as_ref()
            .unwrap()
            .verify(&token, at(2))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn made_up_key_ids_cannot_make_the_gateway_hammer_the_idp() {
    let ed = TestKey::ed25519("ed-1");
    let idp = Idp::start(Reply::Jwks(jwks(&[&ed]))).await;
    let v = idp.verifier();
    assert!(
        v.verify(&ed.sign_claims("EdDSA", &claims()), t0())
            .await
            .is_ok()
    );
    let floor = i64::try_from(MIN_REFETCH_INTERVAL.as_secs()).unwrap();
    assert_eq!(floor, 30);

    for i in 0..100 {
        let token = ed.token(&header("EdDSA", Some(&format!("made-up-{i}"))), &claims());
        assert_eq!(refusal(&v, &token, at(60 + i / 10)).await, "unknown key id");
    }
    assert_eq!(
        idp.fetches(),
        2,
        "one refetch for a hundred unknown kids within 30 s"
    );
    let token = ed.token(&header("EdDSA", Some("made-up-again")), &claims());
    assert_eq!(
        refusal(&v, &token, at(60 + floor - 1)).await,
        "unknown key id"
    );
    assert_eq!(idp.fetches(), 2);
    assert_eq!(refusal(&v, &token, at(60 + floor)).await, "unknown key id");
    assert_eq!(idp.fetches(), 3, "the next refetch once 30 s have passed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_fetch() {
    let ed = TestKey::ed25519("ed-1");
    let idp = Idp::start(Reply::SlowJwks(Duration::from_millis(300), jwks(&[&ed]))).await;
    let v = Arc::new(idp.verifier());
    let mut tasks = JoinSet::new();
    for i in 0..16 {
        let token = ed.sign_claims("EdDSA", &claims_for(&format!("user-{i}")));
        let v = Arc::clone(&v);
        tasks.spawn(async move { v.verify(&token, t0()).await });
    }
    while let Some(outcome) = tasks.join_next().await {
        assert!(outcome.unwrap().is_ok());
    }
    assert_eq!(idp.fetches(), 1);
}

#[tokio::test]
async fn requests_that_waited_for_a_failed_fetch_take_its_outcome_instead_of_fetching_again() {
    // A slow provider with no usable key: requests keep coming, their clocks a second and more
    // past the fetch they wait for. Each fetching again in turn would queue them for ever.
    let ed = TestKey::ed25519("ed-1");
    let idp = Idp::start(Reply::SlowJwks(Duration::from_millis(300), jwks(&[]))).await;
    let v = Arc::new(idp.verifier());
    let mut tasks = JoinSet::new();
    for i in 0..6 {
        let token = ed.sign_claims("EdDSA", &claims_for(&format!("user-{i}")));
        let v = Arc::clone(&v);
        tasks.spawn(async move { v.verify(&token, at(2 * i)).await });
    }
    while let Some(outcome) = tasks.join_next().await {
        assert!(matches!(outcome.unwrap(), Err(AuthError::Unavailable(_))));
    }
    assert_eq!(idp.fetches(), 1);
}

#[tokio::test]
async fn stale_keys_are_kept_while_the_idp_is_down() {
    let ed = TestKey::ed25519("ed-1");
    let idp = Idp::start(Reply::Jwks(jwks(&[&ed]))).await;
    let v = idp.verifier();
    let token = ed.sign_claims("EdDSA", &claims_for("first"));
    assert!(v.verify(&token, t0()).await.is_ok());

    idp.set(Reply::Status(503));
    let token = ed.sign_claims("EdDSA", &claims_for("second"));
    assert_eq!(
        v.verify(&token, at(400)).await.unwrap().key_id.as_ref(),
        "second"
    );
    // The expired cache is fetched again, and fails.
    verify_until_fetched(&v, &token, at(400), &idp, 2).await;
    let token = ed.sign_claims("EdDSA", &claims_for("third"));
    assert!(v.verify(&token, at(420)).await.is_ok());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(idp.fetches(), 2, "no retry within 30 s of the failure");
    let token = ed.sign_claims("EdDSA", &claims_for("fourth"));
    verify_until_fetched(&v, &token, at(431), &idp, 3).await;

    idp.set(Reply::Body(b"{\"keys\": []}".to_vec()));
    let token = ed.sign_claims("EdDSA", &claims_for("fifth"));
    // An empty set does not replace good keys.
    verify_until_fetched(&v, &token, at(470), &idp, 4).await;
    assert!(v.verify(&token, at(470)).await.is_ok());

    idp.shut_down();
    let token = ed.sign_claims("EdDSA", &claims_for("sixth"));
    assert!(v.verify(&token, at(1000)).await.is_ok());
}

#[tokio::test]
async fn no_token_is_accepted_before_the_idp_ever_answered() {
    // A port that was just free: nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        listener.local_addr().unwrap()
    };
    let url = format!("http://{closed}/jwks.json");
    let v = JwtVerifier::new(&config(JwksSource::Url(url), &["EdDSA"])).unwrap();
    let ed = TestKey::ed25519("ed-1");
    let token = ed.sign_claims("EdDSA", &claims());
    assert!(matches!(
        v.verify(&token, t0()).await,
        Err(AuthError::Unavailable(_))
    ));

    let idp = Idp::start(Reply::Status(500)).await;
    let v = idp.verifier();
    assert!(matches!(
        v.verify(&token, t0()).await,
        Err(AuthError::Unavailable(_))
    ));
    idp.set(Reply::Jwks(jwks(&[&ed])));
    assert!(matches!(
        v.verify(&token, t0()).await,
        Err(AuthError::Unavailable(_))
    ));
    assert_eq!(idp.fetches(), 1, "no retry within a second");
    // With no keys at all the provider is asked again a second later, not 30 s later.
    assert_eq!(v.verify(&token, at(1)).await, Ok(alice()), "recovered");
    assert_eq!(idp.fetches(), 2);
}

#[tokio::test]
async fn an_oversized_or_useless_jwks_is_not_used() {
    let ed = TestKey::ed25519("ed-1");
    let token = ed.sign_claims("EdDSA", &claims());
    let mut huge = jwks(&[&ed]).into_bytes();
    huge.truncate(huge.len() - 2);
    huge.extend(
        format!(
            ",{{\"kty\":\"oct\",\"pad\":\"{}\"}}]}}",
            "x".repeat(1 << 20)
        )
        .bytes(),
    );
    for reply in [
        Reply::Body(huge),
        Reply::Body(b"<html>sign in</html>".to_vec()),
        Reply::Jwks(jwks(&[
            &TestKey::ec("enc", "P-256").with_jwk(|k| k["use"] = json!("enc"))
        ])),
        Reply::Status(302),
    ] {
        let idp = Idp::start(reply).await;
        let v = idp.verifier();
        assert!(matches!(
            v.verify(&token, t0()).await,
            Err(AuthError::Unavailable(_))
        ));
        assert_eq!(idp.fetches(), 1);
    }
}

#[tokio::test]
async fn a_key_the_idp_withdraws_stops_verifying_remembered_tokens() {
    let compromised = TestKey::ed25519("2026-05");
    let replacement = TestKey::ed25519("2026-06");
    let idp = Idp::start(Reply::Jwks(jwks(&[&compromised]))).await;
    let v = idp.verifier();
    let token = compromised.sign_claims("EdDSA", &claims());
    assert!(v.verify(&token, t0()).await.is_ok());
    assert!(v.verify(&token, at(100)).await.is_ok());

    idp.set(Reply::Jwks(jwks(&[&replacement])));
    // Past cacheFor the stale set answers while a task renews it; once renewed, the withdrawn
    // key verifies nothing, remembered tokens included.
    let deadline = Instant::now() + Duration::from_secs(5);
    while v.verify(&token, at(301)).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the withdrawn key still verifies"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(refusal(&v, &token, at(301)).await, "unknown key id");
    assert_eq!(idp.fetches(), 2);
}

#[tokio::test]
async fn reasons_never_quote_the_token() {
    let rsa = TestKey::rsa();
    let v = file_verifier(&[&rsa], &["RS256"]);
    let secretish = "sk-live-0123456789abcdef";
    let token = rsa.token(
        &header("RS256", Some(secretish)),
        &claims_with(|c| c["sub"] = json!(secretish)),
    );
    let err = v.verifier.verify(&token, t0()).await.unwrap_err();
    let shown = err.to_string();
    assert_eq!(shown, "invalid token: unknown key id");
    assert!(!shown.contains(secretish));
}
