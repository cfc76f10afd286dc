//! NET: whether the network fences inference pods in and out.

use hangar_core::inventory::Endpoint;
use hangar_core::selector::selects;
use hangar_core::{Located, Policy, Severity, Snapshot};
use k8s_openapi::api::networking::v1::NetworkPolicy;

use crate::check::{Check, Family, Finding, Run, always};

pub(crate) const CHECKS: &[Check] = &[
    Check {
        id: "NET-001",
        family: Family::Network,
        title: "Inference pods are not selected by any ingress NetworkPolicy",
        severity: Severity::High,
        rationale: "Without an ingress policy every pod in the cluster can call the model server directly, bypassing the gateway, its authentication, limits and audit log.",
        remediation: "Add a NetworkPolicy with `policyTypes: [Ingress]` selecting the inference pods, allowing only the gateway or ingress controller namespace.",
        run: Run::Endpoint(no_ingress_policy),
        applies: always,
    },
    Check {
        id: "NET-002",
        family: Family::Network,
        title: "Inference pods have unrestricted egress",
        severity: Severity::Medium,
        rationale: "A model server that can reach anywhere can exfiltrate prompts, fetch unvetted weights or be used for SSRF through multimodal URLs.",
        remediation: "Add a NetworkPolicy with `policyTypes: [Egress]` selecting the inference pods, allowing DNS and the model store only.",
        run: Run::Endpoint(no_egress_policy),
        applies: always,
    },
    Check {
        id: "NET-003",
        family: Family::Network,
        title: "Egress policy allows the cloud metadata address",
        severity: Severity::High,
        rationale: "169.254.169.254 hands out node credentials; a prompt that makes the server fetch a URL (multimodal inputs, tools) can steal them.",
        remediation: "Add `except: [169.254.169.254/32]` to every egress `ipBlock` that covers it, or narrow the CIDR.",
        run: Run::Endpoint(metadata_reachable),
        applies: always,
    },
    Check {
        id: "NET-004",
        family: Family::Network,
        title: "Ingress policy admits any namespace or any source",
        severity: Severity::Medium,
        rationale: "A rule with no `from`, an empty `namespaceSelector` or a 0.0.0.0/0 block lets any workload skip the gateway and call the model server directly.",
        remediation: "Restrict `from` to the gateway's namespace and pods (namespaceSelector + podSelector).",
        run: Run::Endpoint(ingress_from_anywhere),
        applies: always,
    },
    Check {
        id: "NET-005",
        family: Family::Network,
        title: "Inference pod uses the host network",
        severity: Severity::High,
        rationale: "`hostNetwork: true` puts the server on the node's interfaces: NetworkPolicies no longer apply and every port is reachable at the node address.",
        remediation: "Remove `hostNetwork: true`; expose the server through a Service. For multi-node NCCL traffic, use a secondary network (Multus) instead.",
        run: Run::Endpoint(host_network),
        applies: always,
    },
];

/// The NetworkPolicies that select at least one of the endpoint's pods.
fn policies_for<'a>(
    snapshot: &'a Snapshot,
    endpoint: &Endpoint,
) -> Vec<&'a Located<NetworkPolicy>> {
    snapshot
        .in_namespace::<NetworkPolicy>(endpoint.namespace())
        .filter(|p| {
            let Some(spec) = &p.object.spec else {
                return false;
            };
            // A missing podSelector selects every pod in the namespace.
            spec.pod_selector
                .as_ref()
                .is_none_or(|s| endpoint.templates.iter().any(|t| selects(s, &t.labels)))
        })
        .collect()
}

fn has_policy_type(policy: &NetworkPolicy, kind: &str) -> bool {
    let Some(spec) = &policy.spec else {
        return false;
    };
    match &spec.policy_types {
        Some(types) => types.iter().any(|t| t == kind),
        // Without policyTypes, Ingress always applies and Egress only if egress rules exist.
        None => kind == "Ingress" || spec.egress.is_some(),
    }
}

fn no_ingress_policy(snapshot: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    if policies_for(snapshot, endpoint)
        .iter()
        .any(|p| has_policy_type(&p.object, "Ingress"))
    {
        return Vec::new();
    }
    vec![Finding::on_endpoint(
        "NET-001",
        endpoint,
        None,
        format!(
            "no NetworkPolicy in namespace `{}` restricts ingress to these pods",
            endpoint.namespace()
        ),
    )]
}

fn no_egress_policy(snapshot: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    if policies_for(snapshot, endpoint)
        .iter()
        .any(|p| has_policy_type(&p.object, "Egress"))
    {
        return Vec::new();
    }
    vec![Finding::on_endpoint(
        "NET-002",
        endpoint,
        None,
        format!(
            "no NetworkPolicy in namespace `{}` restricts egress from these pods",
            endpoint.namespace()
        ),
    )]
}

const METADATA_ADDRESS: [u8; 4] = [169, 254, 169, 254];

fn metadata_reachable(snapshot: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    let mut findings = Vec::new();
    for policy in policies_for(snapshot, endpoint) {
        let rules = policy.object.spec.as_ref().and_then(|s| s.egress.as_ref());
        for (i, rule) in rules.into_iter().flatten().enumerate() {
            for (j, peer) in rule.to.iter().flatten().enumerate() {
                let Some(block) = &peer.ip_block else {
                    continue;
                };
                let covered = cidr_contains(&block.cidr, METADATA_ADDRESS);
                let excepted = block
                    .except
                    .iter()
                    .flatten()
                    .any(|e| cidr_contains(e, METADATA_ADDRESS));
                if covered && !excepted {
                    findings.push(Finding {
                        endpoint: Some(endpoint.id.clone()),
                        ..Finding::on(
                            "NET-003",
                            policy.object_ref(),
                            &policy.origin,
                            Some(format!("spec.egress[{i}].to[{j}].ipBlock")),
                            format!("egress to `{}` includes the metadata address 169.254.169.254 with no `except`", block.cidr),
                        )
                    });
                }
            }
        }
    }
    findings
}

/// Whether an IPv4 CIDR such as `0.0.0.0/0` contains `address`. IPv6 and malformed blocks
/// contain nothing.
fn cidr_contains(cidr: &str, address: [u8; 4]) -> bool {
    let (ip, bits) = cidr.split_once('/').unwrap_or((cidr, "32"));
    let (Ok(bits), Ok(ip)) = (bits.parse::<u32>(), ip.parse::<std::net::Ipv4Addr>()) else {
        return false;
    };
    if bits > 32 {
        return false;
    }
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    (u32::from(ip) & mask) == (u32::from_be_bytes(address) & mask)
}

fn ingress_from_anywhere(snapshot: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    let mut findings = Vec::new();
    for policy in policies_for(snapshot, endpoint) {
        let rules = policy.object.spec.as_ref().and_then(|s| s.ingress.as_ref());
        for (i, rule) in rules.into_iter().flatten().enumerate() {
            let peers = rule.from.as_deref().unwrap_or_default();
            let open = if peers.is_empty() {
                Some("has no `from`: every source is admitted".to_owned())
            } else {
                peers.iter().find_map(|peer| {
                    let any_namespace = peer.namespace_selector.as_ref().is_some_and(|s| {
                        s.match_labels.as_ref().is_none_or(|m| m.is_empty())
                            && s.match_expressions.as_ref().is_none_or(|m| m.is_empty())
                    });
                    let any_pod = peer.pod_selector.as_ref().is_none_or(|s| {
                        s.match_labels.as_ref().is_none_or(|m| m.is_empty())
                            && s.match_expressions.as_ref().is_none_or(|m| m.is_empty())
                    });
                    let any_ip = peer
                        .ip_block
                        .as_ref()
                        .is_some_and(|b| b.cidr == "0.0.0.0/0" || b.cidr == "::/0");
                    if any_namespace && any_pod {
                        Some(
                            "admits every pod of every namespace (`namespaceSelector: {}`)"
                                .to_owned(),
                        )
                    } else if any_ip {
                        Some("admits every address (`0.0.0.0/0`)".to_owned())
                    } else {
                        None
                    }
                })
            };
            if let Some(why) = open {
                findings.push(Finding {
                    endpoint: Some(endpoint.id.clone()),
                    ..Finding::on(
                        "NET-004",
                        policy.object_ref(),
                        &policy.origin,
                        Some(format!("spec.ingress[{i}]")),
                        format!("ingress rule {i} {why}"),
                    )
                });
            }
        }
    }
    findings
}

fn host_network(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    endpoint
        .templates
        .iter()
        .filter(|t| t.spec.host_network == Some(true))
        .map(|t| {
            Finding::on_template(
                "NET-005",
                endpoint,
                t,
                format!("{}.hostNetwork", t.spec_path),
                "`hostNetwork: true`",
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::{run, vllm};

    fn with_policy(policy: &str) -> String {
        format!("{}---\n{policy}", vllm(""))
    }

    const INGRESS_FROM_GATEWAY: &str = r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-gateway, namespace: ml}
spec:
  podSelector: {matchLabels: {app: chat}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: gateway}}
  egress:
  - to:
    - ipBlock: {cidr: 10.0.0.0/8}
"#;

    #[test]
    fn net_001_fires_without_a_policy_and_not_with_one() {
        assert_eq!(run("NET-001", &vllm("")).len(), 1);
        assert!(run("NET-001", &with_policy(INGRESS_FROM_GATEWAY)).is_empty());
    }

    #[test]
    fn net_001_ignores_policies_for_other_pods() {
        let other = INGRESS_FROM_GATEWAY.replace("app: chat", "app: web");
        assert_eq!(run("NET-001", &with_policy(&other)).len(), 1);
    }

    #[test]
    fn net_002_fires_without_egress_and_not_with_it() {
        assert_eq!(run("NET-002", &vllm("")).len(), 1);
        assert!(run("NET-002", &with_policy(INGRESS_FROM_GATEWAY)).is_empty());
    }

    #[test]
    fn net_003_fires_on_an_open_ip_block_and_not_with_an_except() {
        let open = INGRESS_FROM_GATEWAY.replace("{cidr: 10.0.0.0/8}", "{cidr: 0.0.0.0/0}");
        let findings = run("NET-003", &with_policy(&open));
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.egress[0].to[0].ipBlock")
        );
        let closed = INGRESS_FROM_GATEWAY.replace(
            "{cidr: 10.0.0.0/8}",
            "{cidr: 0.0.0.0/0, except: [169.254.0.0/16]}",
        );
        assert!(run("NET-003", &with_policy(&closed)).is_empty());
        assert!(run("NET-003", &with_policy(INGRESS_FROM_GATEWAY)).is_empty());
    }

    #[test]
    fn net_004_fires_on_any_namespace_and_not_on_a_named_one() {
        let open = INGRESS_FROM_GATEWAY.replace(
            "{matchLabels: {kubernetes.io/metadata.name: gateway}}",
            "{}",
        );
        assert_eq!(run("NET-004", &with_policy(&open)).len(), 1);
        assert!(run("NET-004", &with_policy(INGRESS_FROM_GATEWAY)).is_empty());
    }

    #[test]
    fn net_005_fires_on_host_network_only() {
        let yaml = vllm("").replace(
            "      containers:",
            "      hostNetwork: true\n      containers:",
        );
        assert_eq!(run("NET-005", &yaml).len(), 1);
        assert!(run("NET-005", &vllm("")).is_empty());
    }

    #[test]
    fn cidrs() {
        assert!(cidr_contains("0.0.0.0/0", METADATA_ADDRESS));
        assert!(cidr_contains("169.254.0.0/16", METADATA_ADDRESS));
        assert!(!cidr_contains("10.0.0.0/8", METADATA_ADDRESS));
        assert!(!cidr_contains("garbage", METADATA_ADDRESS));
    }
}
