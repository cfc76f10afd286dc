//! What a reload changed, for its log line. Settings are named by their path in the file, never
//! with their values (a canary seed, a URL with a password or a key's hash must not reach the
//! log), except what an operator checks after a release or a rotation: the versions' weights
//! and order, a model's stickiness, and which keys came, went, were revoked or expire when.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::{ApiKeyEntry, GatewayConfig, ModelRoute};

/// How many changes one log line names before it counts the rest.
const NAMED: usize = 12;

/// The changes from `old` to `new`, one phrase each; empty when the settings are the same (a
/// reload brought in a file the configuration names: a certificate, a JWKS).
pub fn describe(old: &GatewayConfig, new: &GatewayConfig) -> Vec<String> {
    let mut changes = Vec::new();
    // What an operator checks after a rotation or a release first, so that it is named even
    // when the line is cut.
    keys(&old.auth.api_keys, &new.auth.api_keys, &mut changes);
    for (name, route) in &new.models {
        if let Some(before) = old.models.get(name) {
            versions(name, before, route, &mut changes);
        }
    }
    let (mut old_value, mut new_value) = (plain(old), plain(new));
    // Keys and versions are told apart by their names, not their places in a list.
    for value in [&mut old_value, &mut new_value] {
        if let Some(auth) = value.get_mut("auth").and_then(Value::as_object_mut) {
            auth.remove("apiKeys");
        }
        if let Some(models) = value.get_mut("models").and_then(Value::as_object_mut) {
            for route in models.values_mut().filter_map(Value::as_object_mut) {
                route.remove("versions");
                route.remove("sticky");
            }
        }
    }
    settings("", &old_value, &new_value, &mut changes);
    changes
}

/// `describe`'s changes as one phrase for a log line, the first few named.
pub fn summary(changes: &[String]) -> String {
    match changes.len() {
        0 => "no setting differs from the running configuration (files it names, such as certificates, were read again)".into(),
        n if n <= NAMED => changes.join("; "),
        n => format!("{}; and {} more", changes[..NAMED].join("; "), n - NAMED),
    }
}

fn plain(settings: &impl serde::Serialize) -> Value {
    serde_json::to_value(settings).unwrap_or(Value::Null)
}

/// Names each setting that differs: the deepest path at which the two differ.
fn settings(path: &str, old: &Value, new: &Value, changes: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            for (key, before) in old {
                let at = join(path, key);
                match new.get(key) {
                    Some(after) => settings(&at, before, after, changes),
                    None => changes.push(format!("{at} removed")),
                }
            }
            for key in new.keys().filter(|key| !old.contains_key(*key)) {
                changes.push(format!("{} added", join(path, key)));
            }
        }
        _ if old != new => changes.push(format!("{path} changed")),
        _ => {}
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn keys(old: &[ApiKeyEntry], new: &[ApiKeyEntry], changes: &mut Vec<String>) {
    let before: BTreeMap<&str, &ApiKeyEntry> = old.iter().map(|k| (k.id.as_str(), k)).collect();
    let after: BTreeMap<&str, &ApiKeyEntry> = new.iter().map(|k| (k.id.as_str(), k)).collect();
    for (id, key) in &after {
        let Some(was) = before.get(id) else {
            let expiry = key
                .expires
                .as_deref()
                .map_or(String::new(), |at| format!(", expires {at}"));
            changes.push(format!("key `{id}` added (tenant {}{expiry})", key.tenant));
            continue;
        };
        if key.revoked != was.revoked {
            let now = if key.revoked {
                "revoked"
            } else {
                "no longer revoked"
            };
            changes.push(format!("key `{id}` {now}"));
        }
        if key.expires != was.expires {
            let now = key
                .expires
                .as_deref()
                .map_or("no longer expires".into(), |at| format!("expires {at}"));
            changes.push(format!("key `{id}` {now}"));
        }
        if (&key.tenant, &key.prefix, &key.sha256) != (&was.tenant, &was.prefix, &was.sha256) {
            changes.push(format!("key `{id}` changed"));
        }
    }
    for id in before.keys().filter(|id| !after.contains_key(*id)) {
        changes.push(format!("key `{id}` removed"));
    }
}

fn versions(model: &str, old: &ModelRoute, new: &ModelRoute, changes: &mut Vec<String>) {
    let weights = |route: &ModelRoute| {
        (route.versions.iter())
            .map(|v| format!("{} {}", v.name, v.weight))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (before, after) = (weights(old), weights(new));
    if before != after {
        // The same versions and weights listed in another order: bands follow the order.
        let sorted = |route: &ModelRoute| {
            let mut pairs: Vec<(String, u32)> = (route.versions.iter())
                .map(|v| (v.name.clone(), v.weight))
                .collect();
            pairs.sort();
            pairs
        };
        let what = if sorted(old) == sorted(new) {
            "versions reordered, so sticky callers move"
        } else {
            "weights"
        };
        changes.push(format!("models.{model}: {what} {before} → {after}"));
    }
    if old.sticky != new.sticky {
        let name = |sticky| plain(&sticky).as_str().unwrap_or_default().to_owned();
        let (was, now) = (name(old.sticky), name(new.sticky));
        changes.push(format!("models.{model}: sticky {was} → {now}"));
    }
    for version in &new.versions {
        let Some(was) = old.versions.iter().find(|v| v.name == version.name) else {
            continue;
        };
        let (mut was, mut now) = (plain(was), plain(version));
        for value in [&mut was, &mut now] {
            if let Some(fields) = value.as_object_mut() {
                fields.remove("weight");
            }
        }
        let at = format!("models.{model}.versions.{}", version.name);
        settings(&at, &was, &now, changes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(edit: impl FnOnce(&mut String)) -> GatewayConfig {
        let mut text = "
listen: 127.0.0.1:8080
auth:
  apiKeys:
    - {id: a-1, tenant: a, prefix: abcdefgh, sha256: \"sha256:0000000000000000000000000000000000000000000000000000000000000000\"}
tenants:
  a:
    models: [m]
    requestsPerMinute: 60
models:
  m:
    versions:
      - {name: blue, url: \"http://127.0.0.1:8000\", weight: 90}
      - {name: green, url: \"http://127.0.0.1:8001/t/secret\", weight: 10}
guards:
  canarySeed: first-seed-of-enough-length
audit:
  dir: /tmp/audit
  retentionDays: 30
"
        .to_string();
        edit(&mut text);
        GatewayConfig::from_yaml(&text).unwrap()
    }

    fn changes(edit: impl FnOnce(&mut String)) -> Vec<String> {
        describe(&config(|_| {}), &config(edit))
    }

    #[test]
    fn the_same_settings_are_no_change() {
        assert!(changes(|_| {}).is_empty());
        assert_eq!(
            summary(&[]),
            "no setting differs from the running configuration (files it names, such as certificates, were read again)"
        );
    }

    #[test]
    fn weights_are_shown_before_and_after() {
        let found = changes(|text| {
            *text = text
                .replace("weight: 90", "weight: 50")
                .replace("weight: 10", "weight: 50");
        });
        assert_eq!(
            found,
            ["models.m: weights blue 90, green 10 → blue 50, green 50"]
        );
    }

    #[test]
    fn versions_reordered_and_stickiness_are_shown_as_such() {
        let found = changes(|text| {
            *text = text
                .replace("- {name: blue", "- {name: GREEN")
                .replace("- {name: green", "- {name: blue")
                .replace("- {name: GREEN", "- {name: green")
                .replace("weight: 90}", "weight: 9X}")
                .replace("weight: 10}", "weight: 90}")
                .replace("weight: 9X}", "weight: 10}")
                .replace(
                    "  m:\n    versions:",
                    "  m:\n    sticky: session\n    versions:",
                );
        });
        assert_eq!(
            found,
            [
                "models.m: versions reordered, so sticky callers move blue 90, green 10 → green 10, blue 90",
                "models.m: sticky tenant → session",
                "models.m.versions.green.url changed",
                "models.m.versions.blue.url changed",
            ]
        );
    }

    #[test]
    fn a_new_version_shows_in_the_weights() {
        let found = changes(|text| {
            *text = text.replace(
                "weight: 10}",
                "weight: 10}\n      - {name: canary, url: \"http://127.0.0.1:8002\", weight: 1}",
            );
        });
        assert_eq!(
            found,
            ["models.m: weights blue 90, green 10 → blue 90, green 10, canary 1"]
        );
    }

    #[test]
    fn values_that_may_be_secret_are_named_not_shown() {
        let found = changes(|text| {
            *text = text
                .replace("t/secret", "t/other")
                .replace("first-seed", "second-seed");
        });
        assert_eq!(
            found,
            [
                "models.m.versions.green.url changed",
                "guards.canarySeed changed"
            ]
        );
        assert!(!summary(&found).contains("secret"));
    }

    #[test]
    fn keys_are_told_apart_by_id() {
        let found = changes(|text| {
            *text = text.replace(
                "0000\"}",
                "0000\", revoked: true}\n    - {id: a-2, tenant: a, prefix: bcdefghi, sha256: \"sha256:1111111111111111111111111111111111111111111111111111111111111111\", expires: \"2027-01-31T00:00:00Z\"}",
            );
        });
        assert_eq!(
            found,
            [
                "key `a-1` revoked",
                "key `a-2` added (tenant a, expires 2027-01-31T00:00:00Z)"
            ]
        );
        assert!(!found.concat().contains("1111"), "{found:?}");
    }

    #[test]
    fn tenants_and_their_limits_are_named() {
        let found = changes(|text| {
            *text = text
                .replace("requestsPerMinute: 60", "requestsPerMinute: 120")
                .replace("models:\n  m:", "  b:\n    models: [m]\nmodels:\n  m:");
        });
        assert_eq!(
            found,
            ["tenants.a.requestsPerMinute changed", "tenants.b added"]
        );
    }

    #[test]
    fn a_long_list_is_cut() {
        let many: Vec<String> = (0..15).map(|i| format!("change {i}")).collect();
        let line = summary(&many);
        assert!(line.ends_with("change 11; and 3 more"), "{line}");
    }
}
