//! Refusals in the OpenAI error format, so the official SDKs raise the matching exception
//! (`AuthenticationError` for 401, `PermissionDeniedError` 403, `NotFoundError` 404,
//! `RateLimitError` 429, `BadRequestError` 400, `InternalServerError` 5xx).

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode, header};
use serde_json::json;

use crate::limits::Quotas;

/// Why the gateway answered instead of the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: StatusCode,
    /// OpenAI's `error.type`.
    pub kind: &'static str,
    /// OpenAI's `error.code`, also the `reason` label in metrics and the audit record.
    pub code: &'static str,
    /// What the client should know; never a secret, never upstream internals.
    pub message: String,
    /// The request field at fault, if one is.
    pub param: Option<Cow<'static, str>>,
    /// When to try again, for 429 and 503.
    pub retry_after: Option<Duration>,
    /// The tenant's rate buckets, on a refusal by one (boxed: refusals travel in `Result`s).
    pub quotas: Option<Box<Quotas>>,
    /// On a 405, the endpoint the path names, whose method the `Allow` header gives (an
    /// endpoint is a byte; a `Method` would make every refusal larger).
    pub allow: Option<crate::request::Endpoint>,
}

impl Refusal {
    fn new(status: StatusCode, kind: &'static str, code: &'static str, message: String) -> Self {
        Refusal {
            status,
            kind,
            code,
            message,
            param: None,
            retry_after: None,
            allow: None,
            quotas: None,
        }
    }

    /// 400: the request is malformed or breaks the tenant's parameter policy.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message.into(),
        )
    }

    /// 401: no valid credential.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid_api_key",
            message.into(),
        )
    }

    /// 403: the tenant may not do this.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            code,
            message.into(),
        )
    }

    /// 404: no such route or model.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            code,
            message.into(),
        )
    }

    /// 413: the body is larger than the tenant's limit.
    pub fn too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!("the request body is larger than this tenant's limit of {limit} bytes"),
        )
    }

    /// 429: a tenant limit; try again after `retry_after`.
    pub fn rate_limited(
        code: &'static str,
        message: impl Into<String>,
        retry_after: Duration,
    ) -> Self {
        Refusal {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                code,
                message.into(),
            )
        }
    }

    /// 503: the gateway or the model is overloaded or unavailable; try again later.
    pub fn unavailable(
        code: &'static str,
        message: impl Into<String>,
        retry_after: Duration,
    ) -> Self {
        Refusal {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                code,
                message.into(),
            )
        }
    }

    /// 502: the model server failed or answered with something that is not an answer.
    pub fn bad_gateway(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "server_error",
            code,
            message.into(),
        )
    }

    /// 504: the model server did not answer in time.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "server_error",
            "upstream_timeout",
            message.into(),
        )
    }

    /// 408: the client was too slow to send its request.
    pub fn client_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            "request_timeout",
            "the request was not received in time".into(),
        )
    }

    /// Tells the client where the tenant's rate buckets stand.
    pub fn with_quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = Some(Box::new(quotas));
        self
    }

    /// Names the request field at fault.
    pub fn with_param(mut self, param: impl Into<Cow<'static, str>>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// The OpenAI error body.
    pub fn body(&self) -> Bytes {
        let body = json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }});
        Bytes::from(body.to_string())
    }

    /// The whole response.
    pub fn into_response<B: From<Bytes>>(self) -> Response<B> {
        let mut response = Response::new(B::from(self.body()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(wait) = self.retry_after {
            // Whole seconds, rounded up: `Retry-After: 0` would invite an immediate retry.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            // OpenAI's SDKs prefer this one when it is there: they wait no longer than needed
            // (rounded up too: a retry a fraction early is refused again).
            let millis = wait.as_nanos().div_ceil(1_000_000);
            let millis = u64::try_from(millis).unwrap_or(u64::MAX).max(1);
            headers.insert(
                HeaderName::from_static("retry-after-ms"),
                HeaderValue::from(millis),
            );
        }
        if let Some(quotas) = &self.quotas {
            quotas.write(headers);
        }
        if let Some(method) = self.allow.map(|endpoint| endpoint.method())
            && let Ok(value) = HeaderValue::from_str(method.as_str())
        {
            headers.insert(header::ALLOW, value);
        }
        response
    }
}

/// An error with its causes, `outer: inner: …`: hyper and hyper-util put the useful part (the
/// refused connection, the unknown certificate issuer) in the sources.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_openai_shaped() {
        let refusal =
            Refusal::bad_request("max_tokens_too_large", "too many").with_param("max_tokens");
        let body: serde_json::Value = serde_json::from_slice(&refusal.body()).unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["param"], "max_tokens");
        assert_eq!(body["error"]["code"], "max_tokens_too_large");
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_never_zero() {
        let r: Response<Bytes> =
            Refusal::rate_limited("rpm", "slow down", Duration::from_millis(1200)).into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        assert_eq!(r.headers()["retry-after-ms"], "1200");
        let r: Response<Bytes> =
            Refusal::rate_limited("rpm", "slow down", Duration::ZERO).into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        assert_eq!(r.headers()["retry-after-ms"], "1");
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}
