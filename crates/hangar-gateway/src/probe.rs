//! `gateway check --probe`: asks each model server what it serves, through the gateway's own
//! connections (its CAs, client certificate and the model servers' keys), so that a wrong URL,
//! port, certificate or key shows before a client meets it as a 502.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};

use crate::json::Json;
use crate::routes::Version;
use crate::runtime::Runtime;

/// The most of a model list read.
const MAX_LISTING: usize = 1024 * 1024;

/// What one version's model server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It lists the model the gateway asks it for.
    Serves,
    /// It answers, but does not list that model: the ones it lists (some servers, TGI among
    /// them, answer for any name, so this is a warning).
    Unlisted(Vec<String>),
    /// `GET /v1/models` answered this status: whether it serves the model cannot be told.
    NoListing(u16),
    /// It refused the gateway's credentials (401, 403): `apiKeyEnv` is wrong or missing.
    Refused(u16),
    /// It could not be reached or did not answer in time.
    Failed(String),
}

impl Outcome {
    /// Whether requests routed there would fail.
    pub fn fails(&self) -> bool {
        matches!(self, Outcome::Refused(_) | Outcome::Failed(_))
    }
}

/// One version's probe.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The public model name.
    pub model: String,
    /// The version's name.
    pub version: String,
    /// The model name the gateway sends it.
    pub upstream_model: String,
    /// What it answered.
    pub outcome: Outcome,
}

/// Probes every version of every model, one after the other, each within `timeout`.
pub async fn probe_all(runtime: &Runtime, timeout: Duration) -> Vec<Probe> {
    let mut probes = Vec::new();
    for (model, version) in runtime.routes.versions() {
        let outcome = match tokio::time::timeout(timeout, ask(runtime, version)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Failed(format!("no answer within {timeout:?}")),
        };
        probes.push(Probe {
            model: model.to_owned(),
            version: version.name.to_string(),
            upstream_model: version.upstream_model.to_string(),
            outcome,
        });
    }
    probes
}

async fn ask(runtime: &Runtime, version: &Version) -> Outcome {
    let Ok(uri) = version.base.uri("/v1/models") else {
        return Outcome::Failed("its URL cannot be joined with /v1/models".into());
    };
    let mut request = Request::get(uri);
    if let Some(auth) = &version.upstream_auth {
        request = request.header(header::AUTHORIZATION, auth.clone());
    }
    let Ok(request) = request.body(Full::new(Bytes::new())) else {
        return Outcome::Failed("the request could not be built".into());
    };
    let response = match runtime.upstreams.send(request).await {
        Ok(response) => response,
        Err(error) => return Outcome::Failed(error.to_string()),
    };
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Outcome::Refused(status.as_u16());
    }
    if !status.is_success() {
        return Outcome::NoListing(status.as_u16());
    }
    let body = match Limited::new(response.into_body(), MAX_LISTING)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Outcome::Failed("its model list broke off or is over 1 MiB".into()),
    };
    let listed = listed_models(&body);
    if listed.iter().any(|id| *id == *version.upstream_model) {
        Outcome::Serves
    } else {
        Outcome::Unlisted(listed)
    }
}

/// The `id`s of an OpenAI model list (`{"data": [{"id": …}, …]}`).
fn listed_models(body: &[u8]) -> Vec<String> {
    let Ok(list) = Json::parse(body) else {
        return Vec::new();
    };
    match list.get("data") {
        Some(Json::Array(models)) => models
            .iter()
            .filter_map(|model| model.get("id").and_then(Json::as_str))
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_list_is_read_for_its_ids() {
        let list =
            br#"{"object": "list", "data": [{"id": "a", "object": "model"}, {"id": "b/c"}]}"#;
        assert_eq!(listed_models(list), ["a", "b/c"]);
        assert!(listed_models(b"<html>").is_empty());
        assert!(listed_models(br#"{"data": "x"}"#).is_empty());
    }
}
