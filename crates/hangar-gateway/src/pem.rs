//! PEM files the configuration names: the gateway's own certificate chain and key (`tls`), the
//! CAs it trusts for model servers and the certificate it shows them (`upstreamTls`).

use std::path::Path;

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
