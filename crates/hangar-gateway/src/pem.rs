//! PEM files the configuration names: the gateway's own certificate chain and key (`tls`), the
//! CAs it trusts for model servers and Redis and the certificate it shows them (`upstreamTls`,
//! `limits.shared.tls`), the CAs of the identity provider (`auth.jwt.caFile`).

use std::path::Path;
use std::sync::Arc;

use crate::config::ClientTlsConfig;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Every certificate in the PEM file at `path`; an error (naming the path) when it cannot be
/// read or holds none.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let problem = |why: String| format!("{}: {why}", path.display());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect())
        .map_err(|e| problem(e.to_string()))?;
    if certs.is_empty() {
        return Err(problem("no certificate in the file".into()));
    }
    Ok(certs)
}

/// The first private key in the PEM file at `path`; an error naming the path.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The system's CA certificates plus `extra`, for TLS to `what`. Without system certificates
/// only `extra` is trusted, with a warning: a private CA still works, and other servers fail
/// their handshake with a clear error.
pub fn trusted_roots(
    extra: &[CertificateDer<'static>],
    what: &str,
) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (_, unusable) = roots.add_parsable_certificates(native.certs);
    if roots.is_empty() {
        let why = native.errors.first().map_or_else(
            || format!("{unusable} unusable certificates"),
            ToString::to_string,
        );
        tracing::warn!("no system CA certificates for {what}: {why}");
    }
    for cert in extra {
        roots
            .add(cert.clone())
            .map_err(|e| format!("a certificate cannot be used: {e}"))?;
    }
    Ok(roots)
}

/// The TLS settings for calling `what`: the system's CA certificates plus `caFile`'s, and
/// `certFile` and `keyFile` for servers that ask for a client certificate. Errors name the
/// setting, `field` being where `tls` sits in the configuration.
pub fn client_config(
    tls: Option<&ClientTlsConfig>,
    field: &str,
    what: &str,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let extra = match tls.and_then(|tls| tls.ca_file.as_deref()) {
        Some(path) => certificates(path),
        None => Ok(Vec::new()),
    };
    let roots = extra
        .and_then(|extra| trusted_roots(&extra, what))
        .map_err(|e| format!("{field}.caFile: {e}"))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots);
    match tls.map(|tls| (tls.cert_file.as_deref(), tls.key_file.as_deref())) {
        None | Some((None, None)) => Ok(builder.with_no_client_auth()),
        Some((Some(cert), Some(key))) => {
            let chain = certificates(cert).map_err(|e| format!("{field}.certFile: {e}"))?;
            let key = private_key(key).map_err(|e| format!("{field}.keyFile: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("{field}: the certFile and keyFile do not fit together: {e}"))
        }
        Some((Some(_), None)) => Err(format!("{field}.certFile needs a keyFile")),
        Some((None, Some(_))) => Err(format!("{field}.keyFile needs a certFile")),
    }
}

/// When `certificate` expires, in seconds since 1970; `None` when it cannot be read.
pub fn not_after(certificate: &CertificateDer<'_>) -> Option<i64> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).ok()?;
    Some(parsed.validity().not_after.timestamp())
}
