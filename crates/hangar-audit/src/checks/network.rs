//! NET: whether the network fences inference pods in and out.

use hangar_core::inventory::Endpoint;
use hangar_core::network_policy::{restricts_egress, restricts_ingress};
use hangar_core::selector::selects;
use hangar_core::{Located, Policy, Severity, Snapshot};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyEgressRule};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

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
        remediation: "Add a NetworkPolicy with `policyTypes: [Egress]` selecting the inference pods, allowing DNS and the model store only: a rule without `to`, or to `0.0.0.0/0`, allows every address on its ports (one that opens port 53 alone, for DNS, is accepted).",
        run: Run::Endpoint(no_egress_policy),
        applies: always,
    },
    Check {
        id: "NET-003",
        family: Family::Network,
        title: "Egress policy allows the cloud metadata address",
        severity: Severity::High,
        rationale: "169.254.169.254 hands out node credentials; a prompt that makes the server fetch a URL (multimodal inputs, tools) can steal them.",
        remediation: "Add `except: [169.254.169.254/32]` to every egress `ipBlock` that covers it, or narrow the CIDR; give every egress rule that opens TCP port 80 a `to`, since a rule without one allows every address.",
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

fn no_ingress_policy(snapshot: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    if policies_for(snapshot, endpoint)
        .iter()
        .any(|p| restricts_ingress(&p.object))
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

/// The policies selecting the endpoint's pods that fence their egress.
fn egress_policies<'a>(
    snapshot: &'a Snapshot,
    endpoint: &Endpoint,
) -> Vec<&'a Located<NetworkPolicy>> {
    policies_for(snapshot, endpoint)
        .into_iter()
        .filter(|p| restricts_egress(&p.object))
        .collect()
}

/// The egress rules of `policy`, each with its index.
fn egress_rules(policy: &NetworkPolicy) -> impl Iterator<Item = (usize, &NetworkPolicyEgressRule)> {
    policy
        .spec
        .as_ref()
        .and_then(|s| s.egress.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
}

/// A rule without `to` (or with `to: []`) lets the pods reach every address on its ports.
fn allows_every_address(rule: &NetworkPolicyEgressRule) -> bool {
    rule.to.as_ref().is_none_or(Vec::is_empty)
}

/// Why a rule lets the pods reach every address, if it does: it has no `to`, or sends to a
/// block of every address (`0.0.0.0/0`, `::/0`, whatever it excepts).
fn open_to_every_address(rule: &NetworkPolicyEgressRule) -> Option<String> {
    if allows_every_address(rule) {
        return Some("has no `to`".to_owned());
    }
    rule.to
        .iter()
        .flatten()
        .filter_map(|peer| peer.ip_block.as_ref())
        .find(|block| block.cidr.ends_with("/0"))
        .map(|block| format!("sends to `{}`", block.cidr))
}

/// A rule that opens port 53 alone: names resolve outside through the cluster's own resolver
/// anyway, so letting DNS reach every address opens little more.
fn opens_dns_only(rule: &NetworkPolicyEgressRule) -> bool {
    let ports = rule.ports.as_deref().unwrap_or_default();
    !ports.is_empty()
        && ports.iter().all(|p| match &p.port {
            Some(IntOrString::Int(53)) => p.end_port.is_none_or(|end| end == 53),
            // CoreDNS names its ports `dns` and `dns-tcp`.
            Some(IntOrString::String(name)) => name.starts_with("dns"),
            _ => false,
        })
}

/// The ports a rule opens, as a message names them.
fn ports_opened(rule: &NetworkPolicyEgressRule) -> String {
    let ports: Vec<String> = rule
        .ports
        .iter()
        .flatten()
        .map(|p| {
            let port = match (&p.port, p.end_port) {
                (Some(IntOrString::Int(port)), Some(end)) => format!("{port}-{end}"),
                (Some(IntOrString::Int(port)), None) => port.to_string(),
                (Some(IntOrString::String(name)), _) => format!("`{name}`"),
                (None, _) => "every port".to_owned(),
            };
            format!("{port}/{}", p.protocol.as_deref().unwrap_or("TCP"))
        })
        .collect();
    if ports.is_empty() {
        "on every port".to_owned()
    } else {
        format!("on {}", ports.join(", "))
    }
}

fn no_egress_policy(snapshot: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    let policies = egress_policies(snapshot, endpoint);
    if policies.is_empty() {
        return vec![Finding::on_endpoint(
            "NET-002",
            endpoint,
            None,
            format!(
                "no NetworkPolicy in namespace `{}` restricts egress from these pods",
                endpoint.namespace()
            ),
        )];
    }
    // Egress rules of all the policies add up: one rule open to every address opens the pods.
    let mut findings = Vec::new();
    for policy in policies {
        let rules = egress_rules(&policy.object).filter(|(_, rule)| !opens_dns_only(rule));
        for (i, rule) in rules {
            let Some(why) = open_to_every_address(rule) else {
                continue;
            };
            findings.push(Finding {
                endpoint: Some(endpoint.id.clone()),
                ..Finding::on(
                    "NET-002",
                    policy.object_ref(),
                    &policy.origin,
                    Some(format!("spec.egress[{i}]")),
                    format!(
                        "egress rule {i} {why}, so these pods may reach every address {}",
                        ports_opened(rule)
                    ),
                )
            });
        }
    }
    findings
}

const METADATA_ADDRESS: [u8; 4] = [169, 254, 169, 254];

/// The port the cloud metadata services answer on (plain HTTP).
const METADATA_PORT: i32 = 80;

/// Whether a rule lets TCP through to the metadata port. Without `ports` every port is open. A
/// named port is resolved against the destination pod's own ports, and the metadata address is
/// no pod, so a named port never opens it.
fn opens_metadata_port(rule: &NetworkPolicyEgressRule) -> bool {
    let ports = rule.ports.as_deref().unwrap_or_default();
    ports.is_empty()
        || ports.iter().any(|p| {
            let tcp = p
                .protocol
                .as_deref()
                .is_none_or(|protocol| protocol == "TCP");
            let covers = match &p.port {
                None => true,
                Some(IntOrString::String(_)) => false,
                Some(IntOrString::Int(port)) => {
                    (*port..=p.end_port.unwrap_or(*port)).contains(&METADATA_PORT)
                }
            };
            tcp && covers
        })
}

/// Where rule `i` lets traffic reach the metadata address, each as (field, message).
fn metadata_openings(i: usize, rule: &NetworkPolicyEgressRule) -> Vec<(String, String)> {
    if !opens_metadata_port(rule) {
        return Vec::new();
    }
    if allows_every_address(rule) {
        let message = format!(
            "egress rule {i} has no `to`, so it allows every address {}, the metadata address 169.254.169.254 included",
            ports_opened(rule)
        );
        return vec![(format!("spec.egress[{i}]"), message)];
    }
    let mut openings = Vec::new();
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
            let message = format!(
                "egress to `{}` includes the metadata address 169.254.169.254 with no `except`",
                block.cidr
            );
            openings.push((format!("spec.egress[{i}].to[{j}].ipBlock"), message));
        }
    }
    openings
}

fn metadata_reachable(snapshot: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    let mut findings = Vec::new();
    for policy in egress_policies(snapshot, endpoint) {
        for (i, rule) in egress_rules(&policy.object) {
            for (field, message) in metadata_openings(i, rule) {
                findings.push(Finding {
                    endpoint: Some(endpoint.id.clone()),
                    ..Finding::on(
                        "NET-003",
                        policy.object_ref(),
                        &policy.origin,
                        Some(field),
                        message,
                    )
                });
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
    let policies = policies_for(snapshot, endpoint)
        .into_iter()
        .filter(|p| restricts_ingress(&p.object));
    for policy in policies {
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

    /// A policy in `ml` selecting the `vllm()` pods, with `spec` after its podSelector.
    fn chat_policy(spec: &str) -> String {
        with_policy(&format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: chat, namespace: ml}}\nspec: {{podSelector: {{matchLabels: {{app: chat}}}}, {spec}}}\n"
        ))
    }

    #[test]
    fn net_001_reads_empty_policy_types_as_kubernetes_defaults_them() {
        let yaml = chat_policy(
            "policyTypes: [], ingress: [{from: [{podSelector: {matchLabels: {app: gateway}}}]}]",
        );
        assert!(run("NET-001", &yaml).is_empty());
    }

    #[test]
    fn net_002_fires_when_an_empty_egress_list_sets_no_egress_policy_type() {
        let yaml = chat_policy("egress: []");
        let findings = run("NET-002", &yaml);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].message.starts_with("no NetworkPolicy"));
        // With an explicit type, `egress: []` denies all egress.
        assert!(run("NET-002", &chat_policy("policyTypes: [Egress], egress: []")).is_empty());
    }

    #[test]
    fn net_002_and_net_003_fire_on_an_egress_rule_without_to() {
        let yaml = chat_policy("policyTypes: [Egress], egress: [{ports: [{port: 80}]}]");
        let findings = run("NET-003", &yaml);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].field.as_deref(), Some("spec.egress[0]"));
        assert!(
            findings[0].message.contains("on 80/TCP"),
            "{}",
            findings[0].message
        );
        let findings = run("NET-002", &yaml);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].field.as_deref(), Some("spec.egress[0]"));
        assert_eq!(findings[0].object.kind, "NetworkPolicy");
        let empty_to = chat_policy("policyTypes: [Egress], egress: [{to: []}]");
        assert_eq!(run("NET-003", &empty_to).len(), 1);
        assert_eq!(run("NET-002", &empty_to).len(), 1);
    }

    #[test]
    fn net_002_fires_on_an_egress_rule_to_every_address() {
        let open = INGRESS_FROM_GATEWAY.replace(
            "{cidr: 10.0.0.0/8}",
            "{cidr: 0.0.0.0/0, except: [169.254.169.254/32]}",
        );
        let findings = run("NET-002", &with_policy(&open));
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].message.contains("sends to `0.0.0.0/0`"));
    }

    #[test]
    fn net_003_counts_only_rules_that_open_the_metadata_port() {
        let https = chat_policy("policyTypes: [Egress], egress: [{ports: [{port: 443}]}]");
        assert!(run("NET-003", &https).is_empty());
        let range =
            chat_policy("policyTypes: [Egress], egress: [{ports: [{port: 1, endPort: 1024}]}]");
        assert_eq!(run("NET-003", &range).len(), 1);
        let udp = chat_policy(
            "policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: 80, protocol: UDP}]}]",
        );
        assert!(run("NET-003", &udp).is_empty());
        // DNS to any resolver is no open egress, nor a way to the metadata service.
        let dns = chat_policy(
            "policyTypes: [Egress], egress: [{ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]}]",
        );
        assert!(run("NET-002", &dns).is_empty());
        assert!(run("NET-003", &dns).is_empty());
        // Named as CoreDNS names them; a named port is a pod's, and the metadata address is none.
        let named = chat_policy(
            "policyTypes: [Egress], egress: [{ports: [{port: dns, protocol: UDP}, {port: dns-tcp, protocol: TCP}]}]",
        );
        assert!(run("NET-002", &named).is_empty());
        assert!(run("NET-003", &named).is_empty());
        let web = chat_policy("policyTypes: [Egress], egress: [{ports: [{port: http}]}]");
        assert!(run("NET-003", &web).is_empty());
        assert_eq!(
            run("NET-002", &web).len(),
            1,
            "every address on port `http`"
        );
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
