//! Gateway API keys: `hgk_<prefix>_<secret>`. The store keeps only each key's SHA-256 and its
//! public prefix; a lookup finds the entries by prefix, then compares hashes in constant time.
//! A fast hash suffices because the secret is 32 random base62 characters, not a password.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use subtle::ConstantTimeEq;

use super::{AuthError, Identity};
use crate::config::ApiKeyEntry;

/// What every key starts with, so scanners (and our own redaction) recognise it.
pub const KEY_PREFIX: &str = "hgk_";
const PREFIX_LEN: usize = 8;
const SECRET_LEN: usize = 32;

/// The API keys of one configuration, indexed by prefix.
#[derive(Debug, Default)]
pub struct KeyStore {
    by_prefix: HashMap<String, Vec<StoredKey>>,
}

#[derive(Debug)]
struct StoredKey {
    identity: Identity,
    sha256: [u8; 32],
    expires: Option<Timestamp>,
    revoked: bool,
}

impl KeyStore {
    /// Indexes the configured keys. Entries were checked at load (`check_entry`); one that
    /// still fails to parse is left out rather than accepted.
    pub fn new(entries: &[ApiKeyEntry]) -> KeyStore {
        let mut by_prefix: HashMap<String, Vec<StoredKey>> = HashMap::new();
        for entry in entries {
            let Ok(sha256) = parse_hash(&entry.sha256) else {
                continue;
            };
            let Ok(expires) = entry.expires.as_deref().map(str::parse).transpose() else {
                continue;
            };
            by_prefix
                .entry(entry.prefix.clone())
                .or_default()
                .push(StoredKey {
                    identity: Identity {
                        tenant: Arc::from(entry.tenant.as_str()),
                        key_id: Arc::from(entry.id.as_str()),
                    },
                    sha256,
                    expires,
                    revoked: entry.revoked,
                });
        }
        KeyStore { by_prefix }
    }

    /// The identity of `key`, if it is a live key of this store.
    pub fn verify(&self, key: &str, now: Timestamp) -> Result<Identity, AuthError> {
        let prefix = key_prefix(key).ok_or(AuthError::Invalid)?;
        let candidates = self.by_prefix.get(prefix).ok_or(AuthError::Invalid)?;
        let digest = sha256(key.as_bytes());
        let stored = candidates
            .iter()
            .find(|k| bool::from(k.sha256.ct_eq(&digest)))
            .ok_or(AuthError::Invalid)?;
        if stored.revoked {
            return Err(AuthError::Revoked(stored.identity.clone()));
        }
        if stored.expires.is_some_and(|at| at <= now) {
            return Err(AuthError::Expired(stored.identity.clone()));
        }
        Ok(stored.identity.clone())
    }
}

/// The prefix part of a well-formed key.
fn key_prefix(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (prefix, secret) = rest.split_once('_')?;
    (prefix.len() == PREFIX_LEN && secret.len() >= SECRET_LEN).then_some(prefix)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn parse_hash(text: &str) -> Result<[u8; 32], String> {
    let hex = text
        .strip_prefix("sha256:")
        .ok_or("sha256: must start with `sha256:`")?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("sha256: expected 64 hex digits after `sha256:`".into());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| "sha256: not a hex digest".to_owned())?;
    }
    Ok(out)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256:` and the hex SHA-256 of `bytes`: how the configuration writes a key's hash, and how
/// the audit log names a configuration file.
pub fn sha256_label(bytes: &[u8]) -> String {
    format!("sha256:{}", to_hex(&sha256(bytes)))
}

/// Checks one configured key entry, for the configuration's load-time report.
pub fn check_entry(entry: &ApiKeyEntry) -> Result<(), String> {
    parse_hash(&entry.sha256)?;
    if entry.prefix.len() != PREFIX_LEN || !entry.prefix.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(format!(
            "prefix: `{}` must be the {PREFIX_LEN} letters or digits after `{KEY_PREFIX}`",
            entry.prefix
        ));
    }
    if let Some(expires) = &entry.expires {
        expires
            .parse::<Timestamp>()
            .map_err(|e| format!("expires: `{expires}` is not an RFC 3339 time: {e}"))?;
    }
    Ok(())
}

/// A new key and the configuration entry that accepts it. The key is shown once and never
/// stored.
#[derive(Debug)]
pub struct NewKey {
    /// The secret to hand to the client.
    pub key: String,
    /// The entry to add under `auth.apiKeys`.
    pub entry: ApiKeyEntry,
}

/// Makes a key from the system's secure random generator.
pub fn generate(
    id: &str,
    tenant: &str,
    expires: Option<Timestamp>,
) -> Result<NewKey, ring::error::Unspecified> {
    let random = ring::rand::SystemRandom::new();
    let prefix = random_base62(&random, PREFIX_LEN)?;
    let secret = random_base62(&random, SECRET_LEN)?;
    let key = format!("{KEY_PREFIX}{prefix}_{secret}");
    let entry = ApiKeyEntry {
        id: id.to_owned(),
        tenant: tenant.to_owned(),
        prefix,
        sha256: sha256_label(key.as_bytes()),
        expires: expires.map(|t| t.to_string()),
        revoked: false,
    };
    Ok(NewKey { key, entry })
}

fn random_base62(
    random: &ring::rand::SystemRandom,
    len: usize,
) -> Result<String, ring::error::Unspecified> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let byte: [u8; 1] = ring::rand::generate(random)?.expose();
        // 62 * 4 = 248: rejecting 248..=255 keeps every character equally likely.
        if byte[0] < 248 {
            out.push(char::from(ALPHABET[usize::from(byte[0] % 62)]));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(entry: ApiKeyEntry) -> KeyStore {
        KeyStore::new(&[entry])
    }

    #[test]
    fn a_generated_key_verifies_and_names_its_tenant() {
        let new = generate("k1", "payments", None).unwrap();
        assert!(check_entry(&new.entry).is_ok());
        let store = store_with(new.entry);
        let who = store.verify(&new.key, Timestamp::now()).unwrap();
        assert_eq!(&*who.tenant, "payments");
        assert_eq!(&*who.key_id, "k1");
    }

    #[test]
    fn a_wrong_secret_with_the_right_prefix_is_refused() {
        let new = generate("k1", "payments", None).unwrap();
        let store = store_with(new.entry);
        let mut wrong = new.key.clone();
        wrong.pop();
        wrong.push(if new.key.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(
            store.verify(&wrong, Timestamp::now()),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            store.verify("hgk_short", Timestamp::now()),
            Err(AuthError::Invalid)
        );
        assert_eq!(store.verify("", Timestamp::now()), Err(AuthError::Invalid));
    }

    #[test]
    fn expired_and_revoked_keys_are_refused_with_their_reason_and_holder() {
        let holder = |key_id: &str| Identity {
            tenant: "t".into(),
            key_id: key_id.into(),
        };
        let expired = generate("old", "t", Some("2026-01-01T00:00:00Z".parse().unwrap())).unwrap();
        let store = store_with(expired.entry);
        assert_eq!(
            store.verify(&expired.key, Timestamp::now()),
            Err(AuthError::Expired(holder("old")))
        );
        let mut revoked = generate("gone", "t", None).unwrap();
        revoked.entry.revoked = true;
        let store = store_with(revoked.entry);
        assert_eq!(
            store.verify(&revoked.key, Timestamp::now()),
            Err(AuthError::Revoked(holder("gone")))
        );
    }

    #[test]
    fn two_keys_of_one_tenant_both_work_during_rotation() {
        let a = generate("2026-10", "t", None).unwrap();
        let b = generate("2026-11", "t", None).unwrap();
        let store = KeyStore::new(&[a.entry, b.entry]);
        assert_eq!(
            &*store.verify(&a.key, Timestamp::now()).unwrap().key_id,
            "2026-10"
        );
        assert_eq!(
            &*store.verify(&b.key, Timestamp::now()).unwrap().key_id,
            "2026-11"
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let mut entry = generate("k", "t", None).unwrap().entry;
        entry.sha256 = "md5:abc".into();
        assert!(check_entry(&entry).unwrap_err().contains("sha256:"));
        let mut entry = generate("k", "t", None).unwrap().entry;
        entry.sha256 = format!("sha256:a\u{e9}{}", "b".repeat(61));
        assert!(check_entry(&entry).unwrap_err().contains("sha256:"));
        let mut entry = generate("k", "t", None).unwrap().entry;
        entry.expires = Some("tomorrow".into());
        assert!(check_entry(&entry).unwrap_err().contains("expires"));
    }
}
