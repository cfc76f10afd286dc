//! The model servers' side: their base URLs and the pooled HTTP client that reaches them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A model server's base URL, split once at load so each request only appends its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// `http` or `https`.
    pub scheme: http::uri::Scheme,
    /// Host and port.
    pub authority: http::uri::Authority,
    /// A path prefix without its trailing `/` (empty for most servers; `/openai` for some).
    pub prefix: String,
}

impl BaseUrl {
    /// The upstream URI for `path` (which starts with `/v1/`).
    pub fn uri(&self, path: &str) -> Result<http::Uri, http::Error> {
        http::Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(format!("{}{path}", self.prefix))
            .build()
    }
}

/// Parses `http://host:port[/prefix]`. A trailing `/v1` is dropped, since the request path
/// brings its own.
pub fn parse_base_url(text: &str) -> Result<BaseUrl, String> {
    let uri: http::Uri = text
        .parse()
        .map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    let scheme = uri
        .scheme()
        .filter(|s| **s == http::uri::Scheme::HTTP || **s == http::uri::Scheme::HTTPS)
        .cloned()
        .ok_or_else(|| format!("`{text}` must start with http:// or https://"))?;
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| format!("`{text}` has no host"))?;
    if uri.query().is_some() {
        return Err(format!("`{text}` must not have a query"));
    }
    let path = uri.path().trim_end_matches('/');
    let prefix = path.strip_suffix("/v1").unwrap_or(path).to_owned();
    Ok(BaseUrl {
        scheme,
        authority,
        prefix,
    })
}

/// The pooled client for every model server.
pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Builds the client: keep-alive pool, `TCP_NODELAY`, the connect timeout, and the system's CA
/// certificates for https model servers (none if they cannot be loaded: https then fails with
/// a clear 502, and plain http still works).
pub fn client(connect_timeout: Duration) -> Result<UpstreamClient, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = match hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(Arc::clone(&provider))
    {
        Ok(builder) => builder,
        Err(err) => {
            tracing::warn!("no CA certificates for https model servers: {err}");
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("cannot set up TLS: {e}"))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        }
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let connector = builder
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        // Reads of at most 4 KiB: an open stream's events are small, and a thousand streams
        // hold 2 MiB less than with buffers that grow; a large answer takes more reads.
        .http1_read_buf_exact_size(4096)
        .build(connector))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_keep_their_prefix_and_drop_v1() {
        let base = parse_base_url("http://vllm.ml.svc:8000/v1/").unwrap();
        assert_eq!(base.prefix, "");
        assert_eq!(
            base.uri("/v1/models").unwrap().to_string(),
            "http://vllm.ml.svc:8000/v1/models"
        );
        let base = parse_base_url("https://host/openai").unwrap();
        assert_eq!(
            base.uri("/v1/chat/completions").unwrap().to_string(),
            "https://host/openai/v1/chat/completions"
        );
    }

    #[test]
    fn bad_base_urls_say_why() {
        assert!(parse_base_url("vllm:8000").unwrap_err().contains("http://"));
        assert!(parse_base_url("ftp://x").unwrap_err().contains("http://"));
        assert!(
            parse_base_url("http://x/?a=b")
                .unwrap_err()
                .contains("query")
        );
    }
}
