//! Label selectors, as Services, NetworkPolicies and InferencePools use them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

/// Whether a `LabelSelector` selects `labels`. An empty selector selects everything.
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_match = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    labels_match
        && selector.match_expressions.iter().flatten().all(|expr| {
            let values = expr.values.as_deref().unwrap_or_default();
            let value = labels.get(&expr.key);
            match expr.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

/// Whether a Service-style equality selector (a plain map) selects `labels`. An empty or
/// missing selector selects nothing: such a Service has manually managed endpoints.
pub fn map_selects(
    selector: Option<&BTreeMap<String, String>>,
    labels: &BTreeMap<String, String>,
) -> bool {
    match selector {
        Some(selector) if !selector.is_empty() => {
            selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        }
        _ => false,
    }
}

/// Like `map_selects`, for a selector held in a dynamic object (`{"app": "x"}` or
/// `{"matchLabels": {…}}`).
pub fn value_selects(selector: Option<&Value>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector else {
        return false;
    };
    let map = selector.get("matchLabels").unwrap_or(selector);
    let Some(map) = map.as_object() else {
        return false;
    };
    !map.is_empty()
        && map.iter().all(|(k, v)| {
            v.as_str()
                .is_some_and(|v| labels.get(k).is_some_and(|l| l == v))
        })
}
