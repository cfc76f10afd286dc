//! The route table: a public model name → its versions and their weights. It is a plain value
//! built from the configuration; a reload (or, later, a model release) builds a new one and the
//! runtime swaps it whole, so a request in flight keeps the version it was given.

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::{CapField, ModelRoute, Sticky};
use crate::error::Refusal;
use crate::upstream::BaseUrl;

/// Where one version of a model is served.
#[derive(Debug)]
pub struct Version {
    /// The version's name, for logs, metrics and the `x-hangar-version` header.
    pub name: Arc<str>,
    /// The model server.
    pub base: BaseUrl,
    /// The model name to send upstream.
    pub upstream_model: Arc<str>,
    /// The `Authorization` value to present upstream, read from the environment at load.
    pub upstream_auth: Option<http::HeaderValue>,
    /// `name` as a header value, made once (`None` if the name cannot be one).
    pub name_header: Option<http::HeaderValue>,
    /// The field the cap on generated tokens goes in.
    pub cap_field: CapField,
    weight: u64,
    /// Whether it takes requests the model's other versions could not run.
    fallback: bool,
}

/// One public model.
#[derive(Debug)]
pub struct Route {
    versions: Vec<Arc<Version>>,
    total_weight: u64,
    sticky: Sticky,
}

/// Who is asking, for stickiness.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The verified tenant.
    pub tenant: &'a str,
    /// The client's `x-session-id`, if it sent one.
    pub session: Option<&'a str>,
}

/// Every public model.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: BTreeMap<String, Route>,
    draws: AtomicU64,
}

impl RouteTable {
    /// Builds the table. Base URLs were checked at load; an environment variable named for an
    /// upstream key that is unset is reported here.
    pub fn new(models: &BTreeMap<String, ModelRoute>) -> Result<RouteTable, Vec<String>> {
        let mut problems = Vec::new();
        let mut routes = BTreeMap::new();
        for (name, route) in models {
            let mut versions = Vec::new();
            for (i, version) in route.versions.iter().enumerate() {
                let base = match crate::upstream::parse_base_url(&version.url) {
                    Ok(base) => base,
                    Err(e) => {
                        problems.push(format!("models.{name}.versions[{i}].url: {e}"));
                        continue;
                    }
                };
                let upstream_auth = match &version.api_key_env {
                    None => None,
                    Some(var) => match upstream_auth(var) {
                        Ok(value) => Some(value),
                        Err(e) => {
                            problems.push(format!("models.{name}.versions[{i}].apiKeyEnv: {e}"));
                            continue;
                        }
                    },
                };
                versions.push(Arc::new(Version {
                    name: Arc::from(version.name.as_str()),
                    name_header: http::HeaderValue::try_from(version.name.as_str()).ok(),
                    base,
                    upstream_model: Arc::from(version.upstream_model.as_deref().unwrap_or(name)),
                    upstream_auth,
                    cap_field: version.cap_field,
                    weight: u64::from(version.weight),
                    fallback: version.fallback,
                }));
            }
            let total_weight = versions.iter().map(|v| v.weight).sum();
            routes.insert(
                name.clone(),
                Route {
                    versions,
                    total_weight,
                    sticky: route.sticky,
                },
            );
        }
        if problems.is_empty() {
            // Each table draws from its own random start: from 0, every reload and every replica
            // would send the same first requests to the same versions.
            let start = std::hash::RandomState::new().hash_one(0u8);
            Ok(RouteTable {
                routes,
                draws: AtomicU64::new(start),
            })
        } else {
            Err(problems)
        }
    }

    /// The versions of `model` other than `failed` that take others' requests, for a request
    /// whose version's model server did not run it: the one with the most weight first (a
    /// blue-green pair's other half, a canary's stable version), then the others by weight, in
    /// their listed order when equal.
    pub fn fallbacks(&self, model: &str, failed: &str) -> Vec<Arc<Version>> {
        let mut others: Vec<_> = self.fallbacks_of(model, failed).cloned().collect();
        others.sort_by_key(|v| std::cmp::Reverse(v.weight));
        others
    }

    /// Whether a request to `model` that `version` did not run could go to another version.
    pub fn has_fallbacks(&self, model: &str, version: &str) -> bool {
        self.fallbacks_of(model, version).next().is_some()
    }

    fn fallbacks_of<'a>(
        &'a self,
        model: &str,
        failed: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Version>> {
        (self.routes.get(model).into_iter())
            .flat_map(|route| &route.versions)
            .filter(move |v| v.fallback && &*v.name != failed)
    }

    /// Whether `model` is a public model name.
    pub fn contains(&self, model: &str) -> bool {
        self.routes.contains_key(model)
    }

    /// The public model names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.routes.keys().map(String::as_str)
    }

    /// Every version of every model, with the model's public name.
    pub fn versions(&self) -> impl Iterator<Item = (&str, &Version)> {
        (self.routes.iter())
            .flat_map(|(name, route)| route.versions.iter().map(move |v| (name.as_str(), &**v)))
    }

    /// The version that serves this request: the pinned one if the caller may pin, else one
    /// drawn by weight (stickily when the route says so).
    pub fn pick(
        &self,
        model: &str,
        caller: Caller<'_>,
        pin: Option<&str>,
    ) -> Result<Arc<Version>, Refusal> {
        let route = self.routes.get(model).ok_or_else(|| {
            Refusal::not_found(
                "model_not_found",
                format!("the model `{model}` does not exist"),
            )
            .with_param("model")
        })?;
        if let Some(pin) = pin {
            return route
                .versions
                .iter()
                .find(|v| &*v.name == pin)
                .cloned()
                .ok_or_else(|| {
                    Refusal::not_found(
                        "version_not_found",
                        format!("the model `{model}` has no version `{pin}`"),
                    )
                });
        }
        // Sticky callers are placed per model: a tenant in one model's canary band is not
        // therefore in every model's.
        let point = match route.sticky {
            Sticky::Tenant => stable_hash(&[model, caller.tenant]),
            Sticky::Session => stable_hash(&[model, caller.session.unwrap_or(caller.tenant)]),
            Sticky::None => mix(self.draws.fetch_add(1, Ordering::Relaxed)),
        };
        route.choose(point).ok_or_else(|| {
            Refusal::unavailable(
                "no_version",
                format!("the model `{model}` has no version taking traffic"),
                std::time::Duration::from_secs(5),
            )
        })
    }
}

impl Route {
    /// The version whose band of `[0, total_weight)` holds `point` scaled into it. Bands follow
    /// the configured order, so moving 10% of weight between two versions moves only the
    /// callers in that 10%; and a point keeps its place as a share of the whole, so weights
    /// written anew in the same proportions (90/10 as 9/1) move no one.
    fn choose(&self, point: u64) -> Option<Arc<Version>> {
        if self.total_weight == 0 {
            return None;
        }
        let scaled = (u128::from(point) * u128::from(self.total_weight)) >> 64;
        let mut at = u64::try_from(scaled).unwrap_or(u64::MAX);
        for version in &self.versions {
            if at < version.weight {
                return Some(Arc::clone(version));
            }
            at -= version.weight;
        }
        None
    }
}

fn upstream_auth(var: &str) -> Result<http::HeaderValue, String> {
    let key =
        std::env::var(var).map_err(|_| format!("the environment variable `{var}` is not set"))?;
    let mut value = http::HeaderValue::try_from(format!("Bearer {}", key.trim()))
        .map_err(|_| format!("`{var}` holds characters a header cannot carry"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// FNV-1a over the parts, each followed by a NUL, then a SplitMix64 finish: stable across
/// runs and releases, unlike std's hasher.
fn stable_hash(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in part.as_bytes().iter().chain(&[0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    mix(hash)
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelVersion;

    fn table(weights: &[(&str, u32)], sticky: Sticky) -> RouteTable {
        let versions = weights
            .iter()
            .map(|(name, weight)| ModelVersion {
                name: (*name).to_owned(),
                url: "http://127.0.0.1:8000".into(),
                upstream_model: None,
                weight: *weight,
                api_key_env: None,
                cap_field: CapField::default(),
                fallback: !name.ends_with("-validating"),
            })
            .collect();
        let models = BTreeMap::from([("llama".to_owned(), ModelRoute { versions, sticky })]);
        RouteTable::new(&models).unwrap()
    }

    #[test]
    fn fallbacks_go_by_weight_and_skip_versions_that_take_none() {
        let table = table(
            &[
                ("a", 10),
                ("b", 80),
                ("c-validating", 0),
                ("d", 10),
                ("e", 0),
            ],
            Sticky::Tenant,
        );
        let names = |failed| -> Vec<String> {
            (table.fallbacks("llama", failed).iter())
                .map(|v| v.name.to_string())
                .collect()
        };
        assert_eq!(names("b"), ["a", "d", "e"]);
        assert_eq!(names("a"), ["b", "d", "e"]);
        assert_eq!(names("c-validating"), ["b", "a", "d", "e"]);
        assert!(table.has_fallbacks("llama", "a"));
        assert!(!table.has_fallbacks("gpt", "a"));

        let pair = super::tests::table(&[("blue", 100), ("green-validating", 0)], Sticky::None);
        assert!(!pair.has_fallbacks("llama", "blue"));
        assert!(pair.has_fallbacks("llama", "green-validating"));
    }

    fn caller(tenant: &str) -> Caller<'_> {
        Caller {
            tenant,
            session: None,
        }
    }

    #[test]
    fn weights_split_traffic_in_proportion() {
        let table = table(&[("blue", 90), ("green", 10)], Sticky::None);
        let green = (0..10_000)
            .filter(|_| &*table.pick("llama", caller("t"), None).unwrap().name == "green")
            .count();
        assert!((800..1200).contains(&green), "green got {green} of 10000");
    }

    #[test]
    fn a_tenant_sticks_to_one_version_and_tenants_spread() {
        let table = table(&[("blue", 50), ("green", 50)], Sticky::Tenant);
        let first = table
            .pick("llama", caller("payments"), None)
            .unwrap()
            .name
            .clone();
        for _ in 0..50 {
            assert_eq!(
                table.pick("llama", caller("payments"), None).unwrap().name,
                first
            );
        }
        let greens = (0..200)
            .filter(|i| {
                let tenant = format!("tenant-{i}");
                &*table.pick("llama", caller(&tenant), None).unwrap().name == "green"
            })
            .count();
        assert!(
            (60..140).contains(&greens),
            "{greens} of 200 tenants on green"
        );
    }

    /// The version each of 1,000 tenants of `model` is placed on.
    fn placements(table: &RouteTable, model: &str) -> Vec<Arc<str>> {
        (0..1000)
            .map(|i| {
                let tenant = format!("tenant-{i}");
                table
                    .pick(model, caller(&tenant), None)
                    .unwrap()
                    .name
                    .clone()
            })
            .collect()
    }

    #[test]
    fn sticky_callers_move_only_with_the_weight_that_moves() {
        let before = placements(
            &table(&[("blue", 90), ("green", 10)], Sticky::Tenant),
            "llama",
        );
        // The same proportions written anew: no one moves.
        let scaled = placements(
            &table(&[("blue", 9), ("green", 1)], Sticky::Tenant),
            "llama",
        );
        assert_eq!(before, scaled);
        // 40 more to green, the total kept: only blue's callers move, and only to green.
        let after = placements(
            &table(&[("blue", 50), ("green", 50)], Sticky::Tenant),
            "llama",
        );
        let moved: Vec<_> = (before.iter().zip(&after))
            .filter(|(b, a)| b != a)
            .collect();
        assert!(
            moved
                .iter()
                .all(|(b, a)| &***b == "blue" && &***a == "green")
        );
        assert!((300..500).contains(&moved.len()), "{} moved", moved.len());
    }

    #[test]
    fn tenants_are_placed_per_model() {
        let versions = || {
            (["blue", "green"].into_iter().zip([50, 50]))
                .map(|(name, weight)| ModelVersion {
                    name: name.to_owned(),
                    url: "http://127.0.0.1:8000".into(),
                    upstream_model: None,
                    weight,
                    api_key_env: None,
                    cap_field: CapField::default(),
                    fallback: true,
                })
                .collect()
        };
        let route = || ModelRoute {
            versions: versions(),
            sticky: Sticky::Tenant,
        };
        let models = BTreeMap::from([("a".to_owned(), route()), ("b".to_owned(), route())]);
        let table = RouteTable::new(&models).unwrap();
        let (a, b) = (placements(&table, "a"), placements(&table, "b"));
        let same = (a.iter().zip(&b)).filter(|(a, b)| a == b).count();
        // Independent placements agree about half the time; the same one, always.
        assert!((400..600).contains(&same), "{same} of 1000 alike");
    }

    #[test]
    fn draws_start_anew_with_each_table() {
        let sequence = |table: &RouteTable| -> Vec<Arc<str>> {
            (0..64)
                .map(|_| table.pick("llama", caller("t"), None).unwrap().name.clone())
                .collect()
        };
        let weights = [("blue", 50), ("green", 50)];
        let first = sequence(&table(&weights, Sticky::None));
        assert_ne!(first, sequence(&table(&weights, Sticky::None)));
    }

    #[test]
    fn blue_green_at_zero_sends_nothing_to_the_idle_side() {
        let table = table(&[("blue", 100), ("green", 0)], Sticky::None);
        assert!(
            (0..1000).all(|_| &*table.pick("llama", caller("t"), None).unwrap().name == "blue")
        );
    }

    #[test]
    fn a_pin_picks_the_named_version_and_an_unknown_one_is_404() {
        let table = table(&[("blue", 100), ("green", 0)], Sticky::None);
        assert_eq!(
            &*table
                .pick("llama", caller("t"), Some("green"))
                .unwrap()
                .name,
            "green"
        );
        let refusal = table.pick("llama", caller("t"), Some("red")).unwrap_err();
        assert_eq!(refusal.status, http::StatusCode::NOT_FOUND);
    }

    #[test]
    fn an_unknown_model_is_404_model_not_found() {
        let table = table(&[("blue", 1)], Sticky::None);
        let refusal = table.pick("gpt-5", caller("t"), None).unwrap_err();
        assert_eq!(refusal.code, "model_not_found");
    }

    #[test]
    fn a_missing_upstream_key_variable_is_reported() {
        let models = BTreeMap::from([(
            "m".to_owned(),
            ModelRoute {
                versions: vec![ModelVersion {
                    name: "v1".into(),
                    url: "http://127.0.0.1:1".into(),
                    upstream_model: None,
                    weight: 1,
                    api_key_env: Some("HANGAR_TEST_SURELY_UNSET_VARIABLE".into()),
                    cap_field: CapField::default(),
                    fallback: true,
                }],
                sticky: Sticky::None,
            },
        )]);
        let problems = RouteTable::new(&models).unwrap_err();
        assert!(problems[0].contains("HANGAR_TEST_SURELY_UNSET_VARIABLE"));
    }
}
