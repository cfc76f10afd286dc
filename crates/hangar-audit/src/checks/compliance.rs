//! CMP: whether each endpoint's compliance scope is declared, and what in scope leaves the
//! cluster.

use std::collections::{BTreeMap, HashSet};

use hangar_core::inventory::Endpoint;
use hangar_core::policy::DATA_SCOPE_LABEL;
use hangar_core::workload::PodTemplate;
use hangar_core::{DataScope, Inventory, KubeObject, ObjectRef, Policy, Severity, Snapshot};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, Service};

use crate::check::{Check, Family, Finding, Run, always};

pub(crate) const CHECKS: &[Check] = &[
    Check {
        id: "CMP-001",
        family: Family::ComplianceScope,
        title: "Endpoint declares no data scope",
        severity: Severity::Medium,
        rationale: "Without a declared scope nobody can tell whether the endpoint sees cardholder or personal data, so the logging, retention, isolation and third-party rules that depend on scope cannot be applied (PCI DSS 12.5.2).",
        remediation: "Label the workload, its pod template or its namespace with `hangar.dev/data-scope: pci|pii|internal|none`, or set `defaultDataScope` in the policy.",
        run: Run::Endpoint(no_data_scope),
        applies: always,
    },
    Check {
        id: "CMP-002",
        family: Family::ComplianceScope,
        title: "PCI-scoped workload calls an external LLM provider without a third-party record",
        severity: Severity::High,
        rationale: "Prompts from a cardholder-data environment sent to a hosted model make the provider a third-party service provider: PCI DSS 12.8 requires it to be listed, under a written agreement, with its compliance monitored.",
        remediation: "Record the provider (12.8.1 list, agreement, responsibility matrix) and reference the record with the `hangar.dev/third-party-record` annotation on the workload or namespace; otherwise route the calls to an in-scope model or through the gateway's redaction.",
        run: Run::Cluster(pci_calls_external_provider),
        applies: always,
    },
    Check {
        id: "CMP-003",
        family: Family::ComplianceScope,
        title: "Regulated endpoint has no owner",
        severity: Severity::Medium,
        rationale: "PCI DSS 12.5.1 asks for an inventory of in-scope system components with an owner; an endpoint that sees cardholder or personal data and names no team has nobody to approve changes or answer for incidents.",
        remediation: "Add one of the policy's team labels (`team`, `hangar.dev/team`, `app.kubernetes.io/team`…) to the workload, its pod template or its namespace.",
        run: Run::Endpoint(regulated_without_owner),
        applies: always,
    },
];

// ---------------------------------------------------------------------------------------------
// CMP-001

fn no_data_scope(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    if endpoint.data_scope.is_some() {
        return Vec::new();
    }
    let declared = endpoint.label(DATA_SCOPE_LABEL);
    let why = match declared {
        Some(value) => {
            format!("`{DATA_SCOPE_LABEL}: {value}` is not a known scope (pci, pii, internal, none)")
        }
        None => format!(
            "no `{DATA_SCOPE_LABEL}` label on the object, its pod template or namespace `{}`, and the policy sets no `defaultDataScope`",
            endpoint.namespace()
        ),
    };
    vec![Finding::on_endpoint(
        "CMP-001",
        endpoint,
        Some("metadata.labels".into()),
        why,
    )]
}

// ---------------------------------------------------------------------------------------------
// CMP-003

fn regulated_without_owner(_: &Snapshot, endpoint: &Endpoint, policy: &Policy) -> Vec<Finding> {
    let Some(scope) = endpoint.data_scope.filter(|s| s.is_regulated()) else {
        return Vec::new();
    };
    if endpoint.team.is_some() {
        return Vec::new();
    }
    vec![Finding::on_endpoint(
        "CMP-003",
        endpoint,
        Some("metadata.labels".into()),
        format!(
            "the endpoint is `{}`-scoped but none of the team labels ({}) is set on it, its pod template or namespace `{}`",
            scope.as_str(),
            policy
                .team_labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", "),
            endpoint.namespace()
        ),
    )]
}

// ---------------------------------------------------------------------------------------------
// CMP-002

/// Host fragments of hosted LLM APIs, matched case-insensitively.
const PROVIDER_HOSTS: &[&str] = &[
    "api.openai.com",
    "openai.azure.com",
    "services.ai.azure.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    "aiplatform.googleapis.com",
    "bedrock-runtime",
    "api.mistral.ai",
    "api.cohere.",
    "api.groq.com",
    "api.together.xyz",
    "api.deepseek.com",
    "api.x.ai",
    "openrouter.ai",
    "api.fireworks.ai",
];

/// The annotation that references the provider's entry in the third-party register.
const THIRD_PARTY_RECORD: &str = "hangar.dev/third-party-record";

/// The provider host a value names, if any.
fn provider_in(value: &str) -> Option<&'static str> {
    let lower = value.to_ascii_lowercase();
    PROVIDER_HOSTS.iter().copied().find(|h| lower.contains(h))
}

/// Whether `text` names the Service `name` as a host (`http://name`, `name.ns.svc:443`), not as
/// part of a longer word.
fn names_host(text: &str, name: &str) -> bool {
    let is_host_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices(name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        before.is_none_or(|c| !is_host_char(c) && c != '.')
            && after.is_none_or(|c| !is_host_char(c))
    })
}

/// ExternalName Services that point at a provider, by namespace: (service, host fragment).
fn provider_aliases(snapshot: &Snapshot) -> Vec<(&hangar_core::Located<Service>, &'static str)> {
    snapshot
        .services
        .iter()
        .filter_map(|s| {
            let spec = s.object.spec.as_ref()?;
            if spec.type_.as_deref() != Some("ExternalName") {
                return None;
            }
            Some((s, provider_in(spec.external_name.as_deref()?)?))
        })
        .collect()
}

/// Everything that resolves names and values while scanning one namespace.
struct Lookup<'a> {
    config_maps: &'a [hangar_core::Located<ConfigMap>],
    aliases: &'a [(&'a hangar_core::Located<Service>, &'static str)],
}

impl Lookup<'_> {
    fn config_map(&self, namespace: &str, name: &str) -> Option<&ConfigMap> {
        self.config_maps
            .iter()
            .map(|c| &c.object)
            .find(|c| c.namespace() == namespace && c.name() == name)
    }

    /// The provider a value reaches, directly or through an ExternalName Service.
    fn provider(&self, namespace: &str, value: &str) -> Option<String> {
        if let Some(host) = provider_in(value) {
            return Some(format!("`{host}`"));
        }
        self.aliases
            .iter()
            .filter(|(s, _)| s.object.namespace() == namespace)
            .find(|(s, _)| names_host(value, s.object.name()))
            .map(|(s, host)| {
                format!(
                    "`{host}` (through ExternalName Service `{}`)",
                    s.object.name()
                )
            })
    }

    /// The first place in a container that names a provider: (field, provider).
    fn container_call(
        &self,
        namespace: &str,
        path: &str,
        c: &Container,
    ) -> Option<(String, String)> {
        for (i, var) in c.env.iter().flatten().enumerate() {
            if let Some(p) = var
                .value
                .as_deref()
                .and_then(|v| self.provider(namespace, v))
            {
                return Some((format!("{path}.env[{i}].value"), p));
            }
            let key_ref = var
                .value_from
                .as_ref()
                .and_then(|v| v.config_map_key_ref.as_ref());
            if let Some(r) = key_ref {
                let value = self
                    .config_map(namespace, &r.name)
                    .and_then(|m| m.data.as_ref()?.get(&r.key));
                if let Some(p) = value.and_then(|v| self.provider(namespace, v)) {
                    return Some((
                        format!("{path}.env[{i}].valueFrom"),
                        format!("{p} in ConfigMap `{}`", r.name),
                    ));
                }
            }
        }
        for (i, from) in c.env_from.iter().flatten().enumerate() {
            let Some(name) = from.config_map_ref.as_ref().map(|r| r.name.as_str()) else {
                continue;
            };
            let data = self
                .config_map(namespace, name)
                .and_then(|m| m.data.as_ref());
            if let Some(p) = data
                .into_iter()
                .flat_map(BTreeMap::values)
                .find_map(|v| self.provider(namespace, v))
            {
                return Some((
                    format!("{path}.envFrom[{i}]"),
                    format!("{p} in ConfigMap `{name}`"),
                ));
            }
        }
        for (field, list) in [("command", &c.command), ("args", &c.args)] {
            if let Some(p) = list
                .iter()
                .flatten()
                .find_map(|a| self.provider(namespace, a))
            {
                return Some((format!("{path}.{field}"), p));
            }
        }
        None
    }

    fn template_call(&self, template: &PodTemplate) -> Option<(String, String)> {
        template
            .containers()
            .find_map(|(path, c)| self.container_call(&template.owner.namespace, &path, c))
    }
}

fn pci(value: Option<&str>) -> bool {
    value.and_then(DataScope::parse) == Some(DataScope::Pci)
}

fn recorded(annotations: Option<&BTreeMap<String, String>>) -> bool {
    annotations.is_some_and(|a| a.contains_key(THIRD_PARTY_RECORD))
}

fn pci_calls_external_provider(
    snapshot: &Snapshot,
    inventory: &Inventory,
    _: &Policy,
) -> Vec<Finding> {
    let namespace = |name: &str| -> Option<&Namespace> {
        snapshot.find::<Namespace>("", name).map(|n| &n.object)
    };
    let namespace_pci = |name: &str| pci(namespace(name).and_then(|n| n.label(DATA_SCOPE_LABEL)));
    let namespace_recorded =
        |name: &str| recorded(namespace(name).and_then(|n| n.metadata.annotations.as_ref()));
    let aliases = provider_aliases(snapshot);
    let lookup = Lookup {
        config_maps: &snapshot.config_maps,
        aliases: &aliases,
    };
    let mut findings = Vec::new();
    let message = |what: &str, provider: &str| {
        format!(
            "PCI-scoped {what} calls the external LLM provider {provider}, and neither it nor its namespace carries `{THIRD_PARTY_RECORD}`"
        )
    };

    // Endpoints: their scope is already decided (labels, namespace, policy default).
    let mut covered: HashSet<&ObjectRef> = HashSet::new();
    for endpoint in &inventory.endpoints {
        covered.extend(endpoint.workloads.iter());
        if endpoint.data_scope != Some(DataScope::Pci)
            || recorded(Some(&endpoint.annotations))
            || namespace_recorded(endpoint.namespace())
        {
            continue;
        }
        for template in &endpoint.templates {
            if recorded(Some(&template.annotations)) {
                continue;
            }
            if let Some((field, provider)) = lookup.template_call(template) {
                findings.push(Finding::on_template(
                    "CMP-002",
                    endpoint,
                    template,
                    field,
                    message("endpoint", &provider),
                ));
            }
        }
    }

    // Every other workload: the application pods that call hosted models.
    let all = &inventory.workloads;
    let refs: HashSet<ObjectRef> = all.iter().map(|w| w.object_ref().clone()).collect();
    for w in all {
        let me = w.object_ref();
        if covered.contains(me) {
            continue;
        }
        // A ReplicaSet or Pod whose controller is in the snapshot speaks through it.
        let controlled = w.meta.owner_references.iter().flatten().any(|o| {
            refs.contains(&ObjectRef::new(
                o.kind.clone(),
                me.namespace.clone(),
                o.name.clone(),
            ))
        });
        if controlled {
            continue;
        }
        let own_label = w
            .meta
            .labels
            .as_ref()
            .and_then(|l| l.get(DATA_SCOPE_LABEL))
            .or_else(|| w.template.labels.get(DATA_SCOPE_LABEL))
            .map(String::as_str);
        let in_scope = match own_label {
            Some(value) => pci(Some(value)),
            None => namespace_pci(&me.namespace),
        };
        if !in_scope
            || recorded(w.meta.annotations.as_ref())
            || recorded(Some(&w.template.annotations))
            || namespace_recorded(&me.namespace)
        {
            continue;
        }
        if let Some((field, provider)) = lookup.template_call(&w.template) {
            findings.push(Finding::on(
                "CMP-002",
                me.clone(),
                &w.template.origin,
                Some(field),
                message(&format!("workload `{}`", me.name), &provider),
            ));
        }
    }

    // The ExternalName Services themselves: a route out of a PCI namespace.
    for (service, host) in &aliases {
        let ns = service.object.namespace();
        if !namespace_pci(ns)
            || namespace_recorded(ns)
            || recorded(service.object.metadata.annotations.as_ref())
        {
            continue;
        }
        findings.push(Finding::on(
            "CMP-002",
            service.object_ref(),
            &service.origin,
            Some("spec.externalName".into()),
            format!(
                "ExternalName Service `{}` in PCI-scoped namespace `{ns}` routes to the external LLM provider `{host}`, and neither it nor the namespace carries `{THIRD_PARTY_RECORD}`",
                service.object.name()
            ),
        ));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::{run, run_with, vllm};

    fn namespace(labels: &str, annotations: &str) -> String {
        format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: ml, labels: {{{labels}}}, annotations: {{{annotations}}}}}\n"
        )
    }

    // CMP-001

    #[test]
    fn cmp_001_fires_when_no_scope_is_declared() {
        let findings = run("CMP-001", &vllm(""));
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].field.as_deref(), Some("metadata.labels"));
        assert!(findings[0].message.contains("namespace `ml`"));
    }

    #[test]
    fn cmp_001_names_an_unknown_scope_value() {
        let yaml = vllm("").replace(
            "labels: {app: chat}",
            "labels: {app: chat, hangar.dev/data-scope: secret}",
        );
        let findings = run("CMP-001", &yaml);
        assert_eq!(findings.len(), 1);
        assert!(
            findings[0]
                .message
                .contains("`hangar.dev/data-scope: secret`")
        );
    }

    #[test]
    fn cmp_001_is_quiet_with_a_namespace_label_or_a_policy_default() {
        let yaml = format!(
            "{}{}",
            vllm(""),
            namespace("hangar.dev/data-scope: internal", "")
        );
        assert!(run("CMP-001", &yaml).is_empty());
        let policy = Policy {
            default_data_scope: Some(DataScope::Internal),
            ..Policy::default()
        };
        assert!(run_with("CMP-001", &vllm(""), &policy).is_empty());
    }

    // CMP-003

    #[test]
    fn cmp_003_fires_on_a_pci_endpoint_with_no_team() {
        let yaml = format!(
            "{}{}",
            vllm(""),
            namespace("hangar.dev/data-scope: pci", "")
        );
        let findings = run("CMP-003", &yaml);
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("`pci`-scoped"));
        assert!(findings[0].message.contains("`team`"));
    }

    #[test]
    fn cmp_003_is_quiet_with_a_team_or_outside_regulated_scope() {
        let owned = format!(
            "{}{}",
            vllm(""),
            namespace("hangar.dev/data-scope: pii, team: payments", "")
        );
        assert!(run("CMP-003", &owned).is_empty());
        let internal = format!(
            "{}{}",
            vllm(""),
            namespace("hangar.dev/data-scope: internal", "")
        );
        assert!(run("CMP-003", &internal).is_empty());
    }

    // CMP-002

    /// A checkout application (not an inference endpoint) in namespace `ml`.
    fn checkout(env: &str) -> String {
        format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: checkout, namespace: ml}}
spec:
  template:
    metadata: {{labels: {{app: checkout}}}}
    spec:
      containers:
      - name: app
        image: registry.example.com/shop/checkout:1.4
        env: [{env}]
"#
        )
    }

    const OPENAI: &str = "{name: LLM_BASE_URL, value: \"https://api.openai.com/v1\"}";

    #[test]
    fn cmp_002_fires_on_an_app_in_a_pci_namespace_calling_openai() {
        let yaml = format!(
            "{}{}",
            checkout(OPENAI),
            namespace("hangar.dev/data-scope: pci", "")
        );
        let findings = run("CMP-002", &yaml);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].object.name, "checkout");
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.template.spec.containers[0].env[0].value")
        );
        assert!(findings[0].message.contains("`api.openai.com`"));
    }

    #[test]
    fn cmp_002_is_quiet_with_a_record_or_outside_pci() {
        let recorded = format!(
            "{}{}",
            checkout(OPENAI),
            namespace(
                "hangar.dev/data-scope: pci",
                "hangar.dev/third-party-record: TPSP-0042"
            )
        );
        assert!(run("CMP-002", &recorded).is_empty());
        let pii = format!(
            "{}{}",
            checkout(OPENAI),
            namespace("hangar.dev/data-scope: pii", "")
        );
        assert!(run("CMP-002", &pii).is_empty());
        let local = format!(
            "{}{}",
            checkout("{name: LLM_BASE_URL, value: \"http://chat.ml.svc/v1\"}"),
            namespace("hangar.dev/data-scope: pci", "")
        );
        assert!(run("CMP-002", &local).is_empty());
    }

    #[test]
    fn cmp_002_follows_external_name_services_and_config_maps() {
        let yaml = format!(
            r#"{}{}---
apiVersion: v1
kind: Service
metadata: {{name: claude, namespace: ml}}
spec: {{type: ExternalName, externalName: api.anthropic.com}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: llm, namespace: ml}}
data: {{BASE_URL: "https://claude:443"}}
"#,
            checkout("").replace("env: []", "envFrom: [{configMapRef: {name: llm}}]"),
            namespace("hangar.dev/data-scope: pci", "")
        );
        let findings = run("CMP-002", &yaml);
        let objects: Vec<_> = findings.iter().map(|f| f.object.kind.as_str()).collect();
        assert_eq!(objects, ["Deployment", "Service"]);
        assert!(
            findings[0]
                .message
                .contains("ExternalName Service `claude`")
        );
        assert!(findings[0].message.contains("ConfigMap `llm`"));
        assert_eq!(findings[1].field.as_deref(), Some("spec.externalName"));
    }

    #[test]
    fn cmp_002_covers_pci_endpoints_and_reports_their_controller_once() {
        let endpoint =
            vllm("        env: [{name: UPSTREAM, value: \"https://myres.openai.azure.com\"}]")
                .replace(
                    "labels: {app: chat}",
                    "labels: {app: chat, hangar.dev/data-scope: pci}",
                );
        let findings = run("CMP-002", &endpoint);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].endpoint.as_deref(), Some("Deployment/ml/chat"));
        assert!(findings[0].message.contains("openai.azure.com"));
        let replica_set = r#"---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: checkout-5d8f
  namespace: ml
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: checkout, uid: u, controller: true}]
spec:
  selector: {matchLabels: {app: checkout}}
  template:
    metadata: {labels: {app: checkout}}
    spec:
      containers: [{name: app, image: x, env: [{name: U, value: "https://api.openai.com"}]}]
"#;
        let yaml = format!(
            "{}{}{replica_set}",
            checkout(OPENAI),
            namespace("hangar.dev/data-scope: pci", "")
        );
        assert_eq!(run("CMP-002", &yaml).len(), 1);
    }

    #[test]
    fn service_names_match_as_hosts_only() {
        assert!(names_host("https://claude:443", "claude"));
        assert!(names_host("claude.ml.svc", "claude"));
        assert!(!names_host("https://claude-proxy", "claude"));
        assert!(!names_host("api.claude", "claude"));
    }
}
