//! LOG: what the model servers write to their logs, how long it is kept, and where it lands.

use hangar_core::inventory::{Endpoint, RETENTION_ANNOTATION};
use hangar_core::workload::PodTemplate;
use hangar_core::{KubeObject, Policy, Severity, Snapshot};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, PersistentVolumeClaimSpec};
use k8s_openapi::api::storage::v1::StorageClass;

use crate::check::{Check, Family, Finding, Run, always};

pub(crate) const CHECKS: &[Check] = &[
    Check {
        id: "LOG-001",
        family: Family::Logging,
        title: "Prompts or responses are logged by a regulated endpoint",
        severity: Severity::High,
        rationale: "Prompts sent to a PCI or PII endpoint carry card numbers and personal data; a server that logs them copies that data, unredacted, into every log pipeline and store downstream (PCI DSS 3.3-3.5, 10.2; OWASP LLM02).",
        remediation: "Turn request logging off on the model server (remove `--enable-log-requests`/`--enable-log-outputs`, `OLLAMA_DEBUG`, `VLLM_LOGGING_LEVEL=DEBUG`; on older vLLM releases, which log requests by default, add `--disable-log-requests`) and log at the gateway instead, with card numbers and personal data redacted.",
        run: Run::Endpoint(regulated_request_logging),
        applies: always,
    },
    Check {
        id: "LOG-002",
        family: Family::Logging,
        title: "Regulated endpoint with no declared log retention",
        severity: Severity::Medium,
        rationale: "Without a declared retention nobody can show that inference logs of a PCI or PII endpoint are kept long enough for an investigation (PCI DSS 10.5.1), or deleted when they should be.",
        remediation: "Declare the retention your log pipeline enforces with the annotation `hangar.dev/log-retention` on the endpoint or its namespace, e.g. `\"400d\"`, `\"13mo\"` or `\"1y\"`, and make the log store keep that long. Behind a Hangar gateway that NetworkPolicy leaves as the only caller, the gateway's `audit.retentionDays` is the declaration.",
        run: Run::Endpoint(retention_undeclared),
        applies: always,
    },
    Check {
        id: "LOG-003",
        family: Family::Logging,
        title: "Log retention below policy, or unreadable",
        severity: Severity::High,
        rationale: "PCI DSS 10.5.1 requires audit logs to be kept at least 12 months, with the last three immediately available; a shorter retention loses the evidence an investigation needs, and a value Hangar cannot read cannot be shown to comply.",
        remediation: "Raise the log store's retention to at least the policy minimum (`minLogRetentionDays`, 365 by default) and set `hangar.dev/log-retention` to match, written as days, weeks, months or years (`400d`, `13mo`, `1y`).",
        run: Run::Endpoint(retention_too_short),
        applies: always,
    },
    Check {
        id: "LOG-004",
        family: Family::Logging,
        title: "Logs or model caches on an unencrypted storage class",
        severity: Severity::Medium,
        rationale: "Volumes of a model server hold its logs, its downloaded weights and often cached prompts; on an unencrypted disk they can be read from a snapshot or a detached volume (PCI DSS 3.5).",
        remediation: "Move the claim to a StorageClass with encryption at rest (`parameters.encrypted: \"true\"` on AWS EBS, with a KMS key if required), then migrate the data and delete the old volume.",
        run: Run::Endpoint(unencrypted_volumes),
        applies: always,
    },
];

/// `--enable-log-requests (spec.template.spec.containers[0])` as inventory writes it, split
/// into the setting and the container path.
fn split_setting(request_logging: &str) -> (&str, Option<&str>) {
    match request_logging.rsplit_once(" (") {
        Some((setting, path)) => (setting, path.strip_suffix(')')),
        None => (request_logging, None),
    }
}

fn regulated_request_logging(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    let (Some(logging), Some(scope)) = (&endpoint.logging.request_logging, endpoint.data_scope)
    else {
        return Vec::new();
    };
    if !scope.is_regulated() {
        return Vec::new();
    }
    let (setting, path) = split_setting(logging);
    let field = path.map(|p| {
        if setting.starts_with("--") {
            format!("{p}.args")
        } else {
            format!("{p}.env")
        }
    });
    vec![Finding::on_endpoint(
        "LOG-001",
        endpoint,
        field,
        format!(
            "`{setting}` makes the server log prompts or responses, and the endpoint's data scope is `{}`",
            scope.as_str()
        ),
    )]
}

fn retention_undeclared(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    let Some(scope) = endpoint.data_scope.filter(|s| s.is_regulated()) else {
        return Vec::new();
    };
    if endpoint.logging.retention_source.is_some() {
        return Vec::new();
    }
    vec![Finding::on_endpoint(
        "LOG-002",
        endpoint,
        Some(format!("metadata.annotations.{RETENTION_ANNOTATION}")),
        format!(
            "data scope is `{}` but neither the endpoint nor namespace `{}` has a `{RETENTION_ANNOTATION}` annotation",
            scope.as_str(),
            endpoint.namespace()
        ),
    )]
}

/// A finding on wherever the retention was declared: the endpoint, or its namespace.
fn on_retention_source(
    snapshot: &Snapshot,
    endpoint: &Endpoint,
    message: impl FnOnce(&str, &str) -> String,
) -> Finding {
    let field = Some(format!("metadata.annotations.{RETENTION_ANNOTATION}"));
    let namespace = endpoint
        .logging
        .retention_source
        .as_deref()
        .filter(|s| s.starts_with("Namespace/"))
        .and_then(|_| snapshot.find::<Namespace>("", endpoint.namespace()));
    match namespace {
        Some(ns) => {
            let value = ns
                .object
                .annotation(RETENTION_ANNOTATION)
                .unwrap_or_default();
            let where_ = format!("namespace `{}`", endpoint.namespace());
            Finding {
                endpoint: Some(endpoint.id.clone()),
                ..Finding::on(
                    "LOG-003",
                    ns.object_ref(),
                    &ns.origin,
                    field,
                    message(value, &where_),
                )
            }
        }
        None => {
            let value = endpoint
                .annotations
                .get(RETENTION_ANNOTATION)
                .map(String::as_str)
                .unwrap_or_default();
            Finding::on_endpoint("LOG-003", endpoint, field, message(value, "the endpoint"))
        }
    }
}

fn retention_too_short(snapshot: &Snapshot, endpoint: &Endpoint, policy: &Policy) -> Vec<Finding> {
    let logging = &endpoint.logging;
    let Some(source) = &logging.retention_source else {
        return Vec::new();
    };
    let minimum = policy.min_log_retention_days;
    let regulated = endpoint.data_scope.is_some_and(|s| s.is_regulated());
    // Declared by the Hangar gateway in front (see `GatewayFront`), not by an annotation.
    if let Some(front) = endpoint
        .gateways
        .iter()
        .find(|f| f.retention_source() == *source)
    {
        return match logging.retention_days {
            Some(days) if days < minimum && regulated => vec![Finding::on_endpoint(
                "LOG-003",
                endpoint,
                None,
                format!(
                    "the Hangar gateway `{}` in front keeps its audit records {days} days (`audit.retentionDays`); policy requires at least {minimum}",
                    front.gateway
                ),
            )],
            _ => Vec::new(),
        };
    }
    match logging.retention_days {
        // A declaration nobody can read is worth fixing whatever the scope.
        None => vec![on_retention_source(snapshot, endpoint, |value, where_| {
            format!(
                "`{RETENTION_ANNOTATION}: \"{value}\"` on {where_} is not a duration Hangar can read (use days, weeks, months or years: `400d`, `13mo`, `1y`)"
            )
        })],
        Some(days) if days < minimum && regulated => {
            vec![on_retention_source(snapshot, endpoint, |value, where_| {
                format!(
                    "`{RETENTION_ANNOTATION}: \"{value}\"` on {where_} keeps logs {days} days; policy requires at least {minimum}"
                )
            })]
        }
        Some(_) => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// LOG-004

const DEFAULT_CLASS_ANNOTATIONS: &[&str] = &[
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

/// Why a storage class stores data unencrypted, when its parameters say so.
fn unencrypted(class: &StorageClass) -> Option<String> {
    let encrypted = class
        .parameters
        .as_ref()
        .and_then(|p| p.get("encrypted"))
        .map(|v| v.trim().to_ascii_lowercase());
    if encrypted.as_deref() == Some("false") {
        return Some("sets `encrypted: \"false\"`".into());
    }
    let ebs = matches!(
        class.provisioner.as_str(),
        "ebs.csi.aws.com" | "kubernetes.io/aws-ebs"
    );
    if ebs && encrypted.as_deref() != Some("true") {
        return Some(format!(
            "is an AWS EBS class (`{}`) without `encrypted: \"true\"` (only account-wide EBS encryption by default would still encrypt it)",
            class.provisioner
        ));
    }
    None
}

/// The class a claim gets: the one it names, or the cluster default when it names none.
/// `storageClassName: ""` asks for no class at all (a pre-provisioned volume).
fn class_for<'a>(
    snapshot: &'a Snapshot,
    spec: Option<&PersistentVolumeClaimSpec>,
) -> Option<&'a StorageClass> {
    let classes = || snapshot.storage_classes.iter().map(|c| &c.object);
    match spec.and_then(|s| s.storage_class_name.as_deref()) {
        Some("") => None,
        Some(name) => classes().find(|c| c.name() == name),
        None => {
            let mut defaults = classes().filter(|c| {
                DEFAULT_CLASS_ANNOTATIONS
                    .iter()
                    .any(|a| c.annotation(a) == Some("true"))
            });
            // Several defaults: Kubernetes picks the newest, which a manifest cannot tell.
            match (defaults.next(), defaults.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        }
    }
}

/// Every claim a template's pods use, as `(field, what, claim spec)`.
fn claims<'a>(
    snapshot: &'a Snapshot,
    template: &'a PodTemplate,
) -> Vec<(String, String, Option<&'a PersistentVolumeClaimSpec>)> {
    let mut out = Vec::new();
    for (i, volume) in template.spec.volumes.iter().flatten().enumerate() {
        if let Some(pvc) = &volume.persistent_volume_claim {
            let claim =
                snapshot.find::<PersistentVolumeClaim>(&template.owner.namespace, &pvc.claim_name);
            if let Some(claim) = claim {
                out.push((
                    format!(
                        "{}.volumes[{i}].persistentVolumeClaim.claimName",
                        template.spec_path
                    ),
                    format!("volume `{}` (PVC `{}`)", volume.name, pvc.claim_name),
                    claim.object.spec.as_ref(),
                ));
            }
        }
        if let Some(claim) = volume
            .ephemeral
            .as_ref()
            .and_then(|e| e.volume_claim_template.as_ref())
        {
            out.push((
                format!("{}.volumes[{i}].ephemeral", template.spec_path),
                format!("ephemeral volume `{}`", volume.name),
                Some(&claim.spec),
            ));
        }
    }
    if template.owner.kind == "StatefulSet" {
        let set = snapshot.find::<StatefulSet>(&template.owner.namespace, &template.owner.name);
        let claim_templates = set
            .and_then(|s| s.object.spec.as_ref())
            .and_then(|s| s.volume_claim_templates.as_ref());
        for (i, claim) in claim_templates.into_iter().flatten().enumerate() {
            out.push((
                format!("spec.volumeClaimTemplates[{i}]"),
                format!("volume claim template `{}`", claim.name()),
                claim.spec.as_ref(),
            ));
        }
    }
    out
}

fn unencrypted_volumes(snapshot: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    let mut findings = Vec::new();
    for template in &endpoint.templates {
        for (field, what, spec) in claims(snapshot, template) {
            let Some(class) = class_for(snapshot, spec) else {
                continue;
            };
            let Some(why) = unencrypted(class) else {
                continue;
            };
            let default = if spec.and_then(|s| s.storage_class_name.as_ref()).is_none() {
                " (the default class)"
            } else {
                ""
            };
            findings.push(Finding::on_template(
                "LOG-004",
                endpoint,
                template,
                field,
                format!(
                    "{what} uses StorageClass `{}`{default}, which {why}",
                    class.name()
                ),
            ));
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use hangar_core::DataScope;

    use super::*;
    use crate::checks::testing::{hangar_gateway, run, run_with, vllm};

    /// The vLLM fixture with labels and annotations on the Deployment.
    fn endpoint(meta: &str, extra: &str) -> String {
        vllm(extra).replace(
            "metadata: {name: chat, namespace: ml}",
            &format!("metadata: {{name: chat, namespace: ml, {meta}}}"),
        )
    }

    fn pci(annotations: &str, extra: &str) -> String {
        endpoint(
            &format!("labels: {{hangar.dev/data-scope: pci}}, annotations: {{{annotations}}}"),
            extra,
        )
    }

    const LOG_REQUESTS: &str = r#"        args: ["--model", "org/model", "--enable-log-requests"]"#;

    /// A Service for the fixture's pods, a Hangar gateway routing to it that keeps its audit
    /// records `days`, and a NetworkPolicy that admits only the gateway.
    fn behind_gateway(days: u32) -> String {
        let config = format!("    audit: {{dir: /audit, retentionDays: {days}}}");
        format!(
            r#"{}---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: only-gateway, namespace: ml}}
spec:
  podSelector: {{matchLabels: {{app: chat}}}}
  policyTypes: [Ingress]
  ingress: [{{from: [{{podSelector: {{matchLabels: {{app: gateway}}}}}}]}}]
"#,
            hangar_gateway(&config, "")
        )
    }

    #[test]
    fn the_audit_log_of_a_gateway_in_front_declares_the_retention() {
        let kept_a_month = format!("{}{}", pci("", ""), behind_gateway(30));
        assert!(run("LOG-002", &kept_a_month).is_empty());
        let findings = run("LOG-003", &kept_a_month);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0]
                .message
                .contains("`Deployment/ml/gateway` in front keeps its audit records 30 days"),
            "{}",
            findings[0].message
        );
        let kept_a_year = format!("{}{}", pci("", ""), behind_gateway(400));
        assert!(run("LOG-002", &kept_a_year).is_empty());
        assert!(run("LOG-003", &kept_a_year).is_empty());
        // An annotation on the endpoint says more than the gateway: it wins.
        let annotated = format!(
            "{}{}",
            pci("hangar.dev/log-retention: 90d", ""),
            behind_gateway(400)
        );
        let findings = run("LOG-003", &annotated);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0].message.contains("90 days"),
            "{}",
            findings[0].message
        );
        // Without the policy, callers can skip the gateway and its log: nothing is declared.
        let bypassed = kept_a_year.replace("kind: NetworkPolicy", "kind: NotAPolicy");
        assert_eq!(run("LOG-002", &bypassed).len(), 1);
    }

    #[test]
    fn log_001_fires_when_a_pci_endpoint_logs_requests() {
        let findings = run("LOG-001", &pci("", LOG_REQUESTS));
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("`--enable-log-requests`"));
        assert!(findings[0].message.contains("`pci`"));
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.template.spec.containers[0].args")
        );
    }

    #[test]
    fn log_001_is_quiet_without_request_logging_or_outside_regulated_scope() {
        assert!(run("LOG-001", &pci("", "")).is_empty());
        let internal = endpoint("labels: {hangar.dev/data-scope: internal}", LOG_REQUESTS);
        assert!(run("LOG-001", &internal).is_empty());
    }

    #[test]
    fn log_001_fires_on_an_old_vllm_that_logs_by_default_unless_told_not_to() {
        let old = pci("", "").replace("vllm/vllm-openai:v0.11.0", "vllm/vllm-openai:v0.8.5");
        let findings = run("LOG-001", &old);
        assert_eq!(findings.len(), 1);
        assert!(
            findings[0].message.contains("by default"),
            "{}",
            findings[0].message
        );
        let quiet =
            pci("", r#"        args: ["--disable-log-requests"]"#).replace("v0.11.0", "v0.8.5");
        assert!(run("LOG-001", &quiet).is_empty());
    }

    #[test]
    fn log_001_names_an_env_setting() {
        let yaml = pci("", "        env: [{name: OLLAMA_DEBUG, value: \"1\"}]");
        let findings = run("LOG-001", &yaml);
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.template.spec.containers[0].env")
        );
    }

    #[test]
    fn log_002_fires_for_a_pci_endpoint_without_retention() {
        let findings = run("LOG-002", &pci("", ""));
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains(RETENTION_ANNOTATION));
    }

    #[test]
    fn log_002_is_quiet_with_retention_on_the_namespace_or_outside_regulated_scope() {
        let namespace = r#"apiVersion: v1
kind: Namespace
metadata: {name: ml, annotations: {hangar.dev/log-retention: "400d"}}
---
"#;
        assert!(run("LOG-002", &format!("{namespace}{}", pci("", ""))).is_empty());
        assert!(run("LOG-002", &vllm("")).is_empty());
        let policy = Policy {
            default_data_scope: Some(DataScope::Pii),
            ..Policy::default()
        };
        assert_eq!(run_with("LOG-002", &vllm(""), &policy).len(), 1);
    }

    #[test]
    fn log_003_fires_when_retention_is_below_the_minimum() {
        let findings = run("LOG-003", &pci("hangar.dev/log-retention: 90d", ""));
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("90 days"));
        assert!(findings[0].message.contains("365"));
    }

    #[test]
    fn log_003_points_at_the_namespace_when_it_declares_retention() {
        let yaml = format!(
            r#"apiVersion: v1
kind: Namespace
metadata: {{name: ml, annotations: {{hangar.dev/log-retention: "3mo"}}}}
---
{}"#,
            pci("", "")
        );
        let findings = run("LOG-003", &yaml);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].object.kind, "Namespace");
        assert_eq!(findings[0].endpoint.as_deref(), Some("Deployment/ml/chat"));
        assert!(findings[0].message.contains("\"3mo\""));
    }

    #[test]
    fn log_003_fires_separately_on_an_unreadable_value() {
        let yaml = endpoint("annotations: {hangar.dev/log-retention: forever}", "");
        let findings = run("LOG-003", &yaml);
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("not a duration"));
    }

    #[test]
    fn log_003_is_quiet_when_retention_meets_policy() {
        assert!(run("LOG-003", &pci("hangar.dev/log-retention: 13mo", "")).is_empty());
        assert!(run("LOG-003", &pci("hangar.dev/log-retention: 1y", "")).is_empty());
        // Outside regulated scope a short retention is the team's call.
        let internal = endpoint("annotations: {hangar.dev/log-retention: 30d}", "");
        assert!(run("LOG-003", &internal).is_empty());
    }

    fn with_cache(class: &str, claim_class: &str) -> String {
        format!(
            r#"{}---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: model-cache, namespace: ml}}
spec: {{{claim_class}accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 100Gi}}}}}}
---
{class}"#,
            vllm(
                r#"        volumeMounts: [{name: cache, mountPath: /root/.cache/huggingface}]
      volumes:
      - name: cache
        persistentVolumeClaim: {claimName: model-cache}"#
            )
        )
    }

    const GP3_PLAIN: &str = r#"apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: gp3, annotations: {storageclass.kubernetes.io/is-default-class: "true"}}
provisioner: ebs.csi.aws.com
parameters: {type: gp3}
"#;

    #[test]
    fn log_004_fires_on_a_default_ebs_class_without_encryption() {
        let findings = run("LOG-004", &with_cache(GP3_PLAIN, ""));
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.template.spec.volumes[0].persistentVolumeClaim.claimName")
        );
        assert!(findings[0].message.contains("`gp3` (the default class)"));
    }

    #[test]
    fn log_004_fires_on_a_named_class_with_encryption_off() {
        let class = r#"apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: fast}
provisioner: pd.csi.storage.gke.io
parameters: {encrypted: "false"}
"#;
        let findings = run("LOG-004", &with_cache(class, "storageClassName: fast, "));
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].message.contains("`encrypted: \"false\"`"));
    }

    #[test]
    fn log_004_is_quiet_when_encrypted_or_the_class_is_unknown() {
        let encrypted = GP3_PLAIN.replace("{type: gp3}", "{type: gp3, encrypted: \"true\"}");
        assert!(run("LOG-004", &with_cache(&encrypted, "")).is_empty());
        let other = GP3_PLAIN.replace("name: gp3", "name: gp3-elsewhere");
        assert!(
            run("LOG-004", &with_cache(&other, "storageClassName: gp3, ")).is_empty(),
            "a class missing from the snapshot says nothing"
        );
    }
}
