//! Who is calling. The tenant comes only from a verified credential: a gateway API key or a
//! JWT from the identity provider. Identity headers a client sends are never read.

pub mod jwt;
pub mod keys;

use std::sync::Arc;

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The tenant the credential acts for.
    pub tenant: Arc<str>,
    /// Names the credential in logs and metrics: the API key's id or the token's subject.
    /// Never the secret.
    pub key_id: Arc<str>,
}

/// Why a credential was refused. The message goes to the client, so it never echoes the
/// credential and does not say which part of a key was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer …` header.
    #[error("missing credential: send `Authorization: Bearer <key>`")]
    Missing,
    /// More than one `Authorization` header.
    #[error("more than one `Authorization` header: send one credential")]
    Several,
    /// The key or token is not one the gateway accepts.
    #[error("invalid credential")]
    Invalid,
    /// The key has expired. Its holder is known (the key matched), for the audit record.
    #[error("this API key has expired; ask for a new one")]
    Expired(Identity),
    /// The key was revoked. Its holder is known, for the audit record.
    #[error("this API key has been revoked")]
    Revoked(Identity),
    /// The token failed validation; the reason is safe to show (no token content).
    #[error("invalid token: {0}")]
    Token(String),
    /// The identity provider's keys could not be fetched, so no token can be checked now.
    #[error("cannot verify tokens right now: {0}")]
    Unavailable(String),
}

impl AuthError {
    /// Why, for the audit record: short, and never the credential.
    pub fn reason(&self) -> std::borrow::Cow<'static, str> {
        match self {
            AuthError::Missing => "no credential".into(),
            AuthError::Several => "several credentials".into(),
            AuthError::Invalid => "unknown key or token".into(),
            AuthError::Expired(_) => "expired key".into(),
            AuthError::Revoked(_) => "revoked key".into(),
            AuthError::Token(reason) => format!("token: {reason}").into(),
            AuthError::Unavailable(_) => "identity provider's keys unavailable".into(),
        }
    }

    /// Who holds the credential, when it was proven though refused (a revoked or expired key).
    pub fn holder(&self) -> Option<&Identity> {
        match self {
            AuthError::Expired(holder) | AuthError::Revoked(holder) => Some(holder),
            _ => None,
        }
    }
}
