//! What a live scan lists: the kinds Hangar types, and the inference, routing and policy custom
//! resources found through API discovery.

use hangar_core::NotCovered;
use hangar_core::snapshot::TYPED_KINDS;
use kube::Client;
use kube::core::{ApiResource, GroupVersion, GroupVersionKind, Version};
use kube::discovery::{self, Scope, verbs};

use super::listing::describe;

/// One kind to list.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub resource: ApiResource,
    pub namespaced: bool,
    /// List only metadata, so the values never leave the API server (Secrets).
    pub metadata_only: bool,
}

impl Target {
    /// How reports name the kind: `Pod` for the kinds Hangar types,
    /// `InferenceService.serving.kserve.io` for custom resources.
    pub fn label(&self) -> String {
        if self.resource.group.is_empty()
            || is_typed(&self.resource.api_version, &self.resource.kind)
        {
            self.resource.kind.clone()
        } else {
            format!("{}.{}", self.resource.kind, self.resource.group)
        }
    }
}

/// Kinds among `TYPED_KINDS` that are not namespaced.
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "ClusterRole",
    "ClusterRoleBinding",
    "StorageClass",
];

/// API groups of custom resources that serve, route or guard inference, with the kinds read from
/// each (`None`: every kind of the group).
pub(crate) const CUSTOM_GROUPS: &[(&str, Option<&[&str]>)] = &[
    (
        "serving.kserve.io",
        Some(&[
            "InferenceService",
            "LLMInferenceService",
            "ServingRuntime",
            "ClusterServingRuntime",
        ]),
    ),
    ("machinelearning.seldon.io", None),
    ("mlops.seldon.io", None),
    ("ray.io", Some(&["RayService", "RayCluster"])),
    ("apps.nvidia.com", Some(&["NIMService", "NIMCache"])),
    ("kaito.sh", None),
    ("kubeai.org", None),
    ("leaderworkerset.x-k8s.io", None),
    (
        "gateway.networking.k8s.io",
        Some(&["Gateway", "HTTPRoute", "ReferenceGrant"]),
    ),
    (
        "inference.networking.k8s.io",
        Some(&["InferencePool", "InferenceModel", "InferenceObjective"]),
    ),
    (
        "inference.networking.x-k8s.io",
        Some(&["InferencePool", "InferenceModel", "InferenceObjective"]),
    ),
    (
        "security.istio.io",
        Some(&["AuthorizationPolicy", "RequestAuthentication"]),
    ),
    (
        "gateway.envoyproxy.io",
        Some(&["SecurityPolicy", "BackendTrafficPolicy"]),
    ),
    ("argoproj.io", Some(&["Rollout"])),
    (
        "monitoring.coreos.com",
        Some(&["ServiceMonitor", "PodMonitor"]),
    ),
    ("karpenter.sh", Some(&["NodePool"])),
    // Autoscalers: how many replicas a workload may reach (EXP-015 reads them for the gateway).
    ("autoscaling", Some(&["HorizontalPodAutoscaler"])),
    ("keda.sh", Some(&["ScaledObject"])),
    // Hangar's own release history: triage relates regressions to model changes through it.
    ("hangar.dev", Some(&["ModelRelease"])),
];

fn is_typed(api_version: &str, kind: &str) -> bool {
    TYPED_KINDS
        .iter()
        .any(|(v, k)| *v == api_version && *k == kind)
}

/// The kinds Hangar types, listed whether or not discovery mentions them: every conformant API
/// server serves them.
pub(crate) fn typed_targets() -> Vec<Target> {
    TYPED_KINDS
        .iter()
        .map(|(api_version, kind)| {
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
            Target {
                resource,
                namespaced: !CLUSTER_SCOPED.contains(kind),
                metadata_only: *kind == "Secret" && group.is_empty(),
            }
        })
        .collect()
}

/// Events (core `v1`), listed for triage only: there can be many, and audits do not read them.
pub(crate) fn event_target() -> Target {
    Target {
        resource: ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Event")),
        namespaced: true,
        metadata_only: false,
    }
}

/// Pods (core `v1`), for a listing of some pods apart from the kind's own: the GPU driver's, which
/// a triage of one namespace reads in the others.
pub(crate) fn pod_target() -> Target {
    Target {
        resource: ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Pod")),
        namespaced: true,
        metadata_only: false,
    }
}

/// The custom resources of `CUSTOM_GROUPS` this API server serves, each at the group's preferred
/// version, or at the most stable version serving it when the preferred one does not (KServe
/// serves `InferenceService` at v1beta1 but `ServingRuntime` only at v1alpha1). What discovery
/// could not tell is recorded in `not_covered`.
pub(crate) async fn custom_targets(
    client: &Client,
    not_covered: &mut Vec<NotCovered>,
) -> Vec<Target> {
    let groups = match client.list_api_groups().await {
        Ok(list) => list.groups,
        Err(error) => {
            not_covered.push(NotCovered {
                kind: "custom resources".into(),
                reason: format!("API discovery (/apis) failed: {}", describe(&error)),
            });
            return Vec::new();
        }
    };
    let mut targets = Vec::new();
    for (name, kinds) in CUSTOM_GROUPS {
        let Some(group) = groups.iter().find(|g| g.name == *name) else {
            continue; // not installed
        };
        let preferred = group.preferred_version.as_ref().map(|v| v.version.as_str());
        let mut versions: Vec<&str> = group.versions.iter().map(|v| v.version.as_str()).collect();
        versions.sort_by_cached_key(|v| {
            (
                Some(*v) != preferred,
                std::cmp::Reverse(Version::parse(v).priority()),
            )
        });
        let mut found: Vec<Target> = Vec::new();
        for version in versions {
            match discovery::pinned_group(client, &GroupVersion::gv(name, version)).await {
                Ok(api_group) => {
                    for (resource, caps) in api_group.versioned_resources(version) {
                        let wanted = kinds.is_none_or(|k| k.contains(&resource.kind.as_str()));
                        let seen = found.iter().any(|t| t.resource.kind == resource.kind);
                        if wanted && !seen && caps.supports_operation(verbs::LIST) {
                            found.push(Target {
                                namespaced: caps.scope == Scope::Namespaced,
                                resource,
                                metadata_only: false,
                            });
                        }
                    }
                }
                Err(error) => not_covered.push(NotCovered {
                    kind: format!("{name}/{version}"),
                    reason: format!("API discovery failed: {}", describe(&error)),
                }),
            }
            // Every kind of a group is read at its preferred version; named kinds are looked for
            // in older versions only while some are missing.
            let complete = match kinds {
                None => true,
                Some(kinds) => kinds
                    .iter()
                    .all(|k| found.iter().any(|t| t.resource.kind == *k)),
            };
            if complete {
                break;
            }
        }
        targets.extend(found);
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_typed_kind_has_its_real_resource_path() {
        let plurals: Vec<(String, bool)> = typed_targets()
            .into_iter()
            .map(|t| (t.resource.plural, t.namespaced))
            .collect();
        for expected in [
            ("networkpolicies", true),
            ("ingresses", true),
            ("storageclasses", false),
            ("clusterrolebindings", false),
            ("persistentvolumeclaims", true),
            ("namespaces", false),
            ("nodes", false),
        ] {
            assert!(
                plurals.contains(&(expected.0.to_owned(), expected.1)),
                "{expected:?} in {plurals:?}"
            );
        }
        assert_eq!(plurals.len(), TYPED_KINDS.len());
    }

    #[test]
    fn only_secrets_are_listed_as_metadata() {
        let metadata_only: Vec<String> = typed_targets()
            .into_iter()
            .filter(|t| t.metadata_only)
            .map(|t| t.label())
            .collect();
        assert_eq!(metadata_only, ["Secret"]);
    }

    /// `deploy/rbac/hangar-auditor.yaml` grants `list` on every kind the scan reads, and
    /// nothing but reads.
    #[test]
    fn the_auditor_role_covers_exactly_what_the_scan_reads() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/rbac/hangar-auditor.yaml"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let snapshot = hangar_core::snapshot_from_text(path, &text);
        assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
        let role = &snapshot.cluster_roles[0].object;
        let rules = role.rules.as_deref().unwrap_or_default();
        for rule in rules {
            for verb in &rule.verbs {
                assert!(
                    ["get", "list", "watch"].contains(&verb.as_str()),
                    "{rule:?}"
                );
            }
        }
        let allows_list = |group: &str, plural: &str| {
            rules.iter().any(|rule| {
                let groups = rule.api_groups.as_deref().unwrap_or_default();
                let resources = rule.resources.as_deref().unwrap_or_default();
                groups.iter().any(|g| g == group)
                    && resources.iter().any(|r| r == plural || r == "*")
                    && rule.verbs.iter().any(|v| v == "list")
            })
        };
        for target in typed_targets() {
            let r = &target.resource;
            assert!(allows_list(&r.group, &r.plural), "{} {}", r.group, r.plural);
        }
        for (group, kinds) in CUSTOM_GROUPS {
            for kind in kinds.unwrap_or(&["*"]) {
                let plural =
                    ApiResource::from_gvk(&GroupVersionKind::gvk(group, "v1", kind)).plural;
                let plural = if *kind == "*" { "*".to_owned() } else { plural };
                assert!(allows_list(group, &plural), "{group} {plural}");
            }
        }
        let secrets = rules
            .iter()
            .find(|r| {
                r.resources
                    .as_deref()
                    .unwrap_or_default()
                    .contains(&"secrets".to_owned())
            })
            .unwrap();
        assert_eq!(secrets.verbs, ["list"], "no get or watch on secrets");
    }
}
