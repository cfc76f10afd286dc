//! SEC: credentials where anyone who can read a manifest can read them too.
//!
//! SEC-001 and SEC-002 look at every pod template in the namespaces that run AI workloads
//! (inference endpoints, and the training jobs and notebooks found beside them), not only at
//! the endpoints: the job that downloads the weights or the notebook that tests the model
//! carries the same Hugging Face or NGC token, and is read by the same people.
//! No finding ever prints a secret: messages name where it is and give a masked hint.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::LazyLock;

use hangar_core::inventory::Endpoint;
use hangar_core::rbac::{Access, Objects, RbacIndex, Subject};
use hangar_core::workload::PodTemplate;
use hangar_core::{Inventory, KubeObject, ObjectRef, Origin, Policy, Severity, Snapshot};
use k8s_openapi::api::core::v1::{Container, Namespace};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use regex::Regex;

use crate::check::{Check, Family, Finding, Run, always};

pub(crate) const CHECKS: &[Check] = &[
    Check {
        id: "SEC-001",
        family: Family::Secrets,
        title: "Credential as a literal environment value",
        severity: Severity::High,
        rationale: "A token written into `env[].value` is stored in plain text in the pod spec, the manifests repository and every dump of the cluster: whoever can read the Deployment holds the Hugging Face, NGC or API key.",
        remediation: "Move the value into a Secret and reference it with `valueFrom.secretKeyRef` (or an external secret store via the CSI driver), then rotate the exposed token.",
        run: Run::Cluster(literal_env_credentials),
        applies: always,
    },
    Check {
        id: "SEC-002",
        family: Family::Secrets,
        title: "Secret in a container's command or args",
        severity: Severity::Critical,
        rationale: "Command lines are part of the pod spec and show up in `kubectl describe`, `ps` on the node and process listings in monitoring: a key passed as `--api-key sk-…` is readable by anyone who can read the pod.",
        remediation: "Pass the key through an environment variable filled from a Secret (`--api-key $(VLLM_API_KEY)` with `valueFrom.secretKeyRef`, or `VLLM_API_KEY` directly), then rotate the exposed key.",
        run: Run::Cluster(secrets_in_command_lines),
        applies: always,
    },
    Check {
        id: "SEC-003",
        family: Family::Secrets,
        title: "Token in a ConfigMap or an annotation",
        severity: Severity::High,
        rationale: "ConfigMaps and annotations are not secrets: they are readable with far broader RBAC than Secrets, are not encrypted at rest, and are copied into logs, Helm releases and GitOps repositories.",
        remediation: "Move the token into a Secret (mounted as a file or referenced with `secretKeyRef`), remove it from the ConfigMap or annotation, and rotate it.",
        run: Run::Cluster(tokens_in_config),
        applies: always,
    },
    Check {
        id: "SEC-004",
        family: Family::Secrets,
        title: "Secrets readable by broad subjects in an inference namespace",
        severity: Severity::High,
        rationale: "`get`, `list` or `watch` on Secrets returns their values: when every user, every service account or a crowd of principals holds it, the model-hub tokens, API keys and TLS keys of the endpoints are theirs too.",
        remediation: "Bind Secret read access to named service accounts only, through a Role with `resourceNames`; remove bindings to `system:authenticated`, `system:serviceaccounts[:<ns>]` or the `default` service account.",
        run: Run::Cluster(broad_secret_readers),
        applies: always,
    },
];

// ---------------------------------------------------------------------------------------------
// What a secret looks like.

/// Token formats with a recognisable prefix, as `(what it is, pattern)`.
static TOKEN_PATTERNS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    [
        ("a Hugging Face token", r"\bhf_[A-Za-z0-9]{20,}"),
        ("an OpenAI-style API key", r"\bsk-[A-Za-z0-9_-]{20,}"),
        ("an NVIDIA API key", r"\bnvapi-[A-Za-z0-9_-]{20,}"),
        (
            "a GitHub token",
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
        ),
        ("an AWS access key id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    ]
    .into_iter()
    .filter_map(|(what, pattern)| Regex::new(pattern).ok().map(|r| (what, r)))
    .collect()
});

/// `key: value` or `KEY=value` inside a config file held in a ConfigMap or a shell line. A value
/// stops at flow punctuation, so `outer: {key: value}` is read as `key: value`.
static ASSIGNMENT: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r#"([A-Za-z0-9_.-]+)["']?\s*[:=]\s*["']?([^\s"',;{}\[\]]+)"#).ok());

/// Command-line flags whose value is a credential.
const KEY_FLAGS: &[&str] = &["--api-key", "--api_key", "--hf-token", "--hf_token"];

/// A secret found in some text: what it is, and the value (never printed whole).
struct Hit {
    what: String,
    value: String,
}

impl Hit {
    fn describe(&self) -> String {
        format!("{} ({})", self.what, mask(&self.value))
    }
}

/// Known token formats in `text`.
fn token_hits(text: &str) -> Vec<Hit> {
    let mut hits: Vec<Hit> = Vec::new();
    for (what, pattern) in TOKEN_PATTERNS.iter() {
        for m in pattern.find_iter(text) {
            push_unique(
                &mut hits,
                Hit {
                    what: (*what).to_owned(),
                    value: m.as_str().to_owned(),
                },
            );
        }
    }
    hits
}

fn push_unique(hits: &mut Vec<Hit>, hit: Hit) {
    if !hits.iter().any(|h| h.value == hit.value) {
        hits.push(hit);
    }
}

/// A hint that lets the owner recognise the value and nobody else use it: the first three
/// characters (usually the token's public prefix) and the length. Short values show only their
/// length, since three characters of an eight-character password is most of it.
pub(super) fn mask(value: &str) -> String {
    let length = value.chars().count();
    if length >= 12 {
        let head: String = value.chars().take(3).collect();
        format!("`{head}…`, {length} chars")
    } else {
        format!("{length} chars")
    }
}

/// Environment variable names that hold credentials by convention.
fn is_credential_env_name(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    const SUFFIXES: &[&str] = &[
        "_API_KEY",
        "_TOKEN",
        "_SECRET",
        "_PASSWORD",
        "_SECRET_KEY",
        "_SECRET_ACCESS_KEY",
    ];
    matches!(
        name.as_str(),
        "HF_TOKEN" | "HUGGING_FACE_HUB_TOKEN" | "NGC_API_KEY" | "API_KEY"
    ) || SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// Keys in config data or annotations that name a credential (`hf_token`, `apiKey`,
/// `client-secret`), but not `tokenizer` or `max_tokens`.
fn is_credential_key(key: &str) -> bool {
    // Split camelCase and separators into lowercase words.
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut previous = ' ';
    for c in key.chars() {
        if !c.is_ascii_alphanumeric() {
            words.push(std::mem::take(&mut current));
        } else {
            if c.is_ascii_uppercase() && previous.is_ascii_lowercase() {
                words.push(std::mem::take(&mut current));
            }
            current.push(c.to_ascii_lowercase());
        }
        previous = c;
    }
    words.push(current);
    let words: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .filter(|w| !w.is_empty())
        .collect();
    let single = ["token", "secret", "password", "passwd", "apikey"];
    // `canarySeed`: the Hangar gateway derives its canary tokens from it.
    let pairs = [["api", "key"], ["access", "key"], ["canary", "seed"]];
    words.iter().any(|w| single.contains(w))
        || words.windows(2).any(|pair| pairs.iter().any(|p| pair == p))
}

/// A value that is a literal (not a reference to a variable) and not obviously a setting.
fn is_literal(value: &str) -> bool {
    let value = value.trim().trim_matches(['"', '\'']);
    let reference = value.starts_with(['$', '-']);
    let placeholder = value.starts_with('<') && value.ends_with('>');
    let setting = value.chars().all(|c| c.is_ascii_digit())
        || matches!(
            value.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "none" | "null"
        );
    !(value.is_empty() || reference || placeholder || setting)
}

/// A long, random-looking value: what sits under a credential key when it is a real one (a
/// Secret's name, a path or a URL sits there too and is not reported).
fn looks_like_credential(value: &str) -> bool {
    let value = value.trim();
    value.chars().count() >= 20
        && !value.chars().any(char::is_whitespace)
        && is_literal(value)
        && !value.starts_with('/')
        && !value.contains("://")
        && value.chars().any(|c| c.is_ascii_digit())
        && value.chars().any(|c| c.is_ascii_alphabetic())
}

// ---------------------------------------------------------------------------------------------
// The pod templates SEC-001 and SEC-002 read.

/// A pod template in scope, with the endpoint it belongs to when there is one.
struct ScopedTemplate<'a> {
    endpoint: Option<&'a Endpoint>,
    template: &'a PodTemplate,
}

impl ScopedTemplate<'_> {
    fn finding(&self, check: &'static str, field: String, message: String) -> Finding {
        match self.endpoint {
            Some(endpoint) => Finding::on_template(check, endpoint, self.template, field, message),
            None => Finding::on(
                check,
                self.template.owner.clone(),
                &self.template.origin,
                Some(field),
                message,
            ),
        }
    }
}

/// Every pod template of the endpoints, plus every other workload in the namespaces that run
/// AI workloads. A template is reported once, on the top-most object the snapshot holds (a
/// Deployment rather than its ReplicaSets and Pods).
fn templates_in_scope(inventory: &Inventory) -> Vec<ScopedTemplate<'_>> {
    let all = &inventory.workloads;
    let namespaces: HashSet<&str> = inventory
        .endpoints
        .iter()
        .map(|e| e.namespace())
        .chain(
            inventory
                .other_accelerator_workloads
                .iter()
                .map(|w| w.object.namespace.as_str()),
        )
        .collect();
    let mut known: HashSet<ObjectRef> = all.iter().map(|w| w.object_ref().clone()).collect();
    known.extend(inventory.endpoints.iter().map(|e| e.object.clone()));
    let controllers: HashMap<&ObjectRef, ObjectRef> = all
        .iter()
        .filter_map(|w| {
            let refs = w.meta.owner_references.as_deref().unwrap_or_default();
            let owner = refs
                .iter()
                .find(|o| o.controller == Some(true))
                .or(refs.first())?;
            Some((
                w.object_ref(),
                ObjectRef::new(&owner.kind, &w.object_ref().namespace, &owner.name),
            ))
        })
        .collect();
    let derived = |owner: &ObjectRef| controllers.get(owner).is_some_and(|c| known.contains(c));

    let endpoint_of: HashMap<&ObjectRef, &Endpoint> = inventory
        .endpoints
        .iter()
        .flat_map(|e| e.workloads.iter().map(move |w| (w, e)))
        .collect();
    let mut seen: HashSet<(ObjectRef, String)> = HashSet::new();
    let mut out = Vec::new();
    for endpoint in &inventory.endpoints {
        for template in &endpoint.templates {
            if seen.insert((template.owner.clone(), template.spec_path.clone()))
                && !derived(&template.owner)
            {
                out.push(ScopedTemplate {
                    endpoint: Some(endpoint),
                    template,
                });
            }
        }
    }
    for workload in all {
        let template = &workload.template;
        if !namespaces.contains(template.owner.namespace.as_str())
            || derived(&template.owner)
            || !seen.insert((template.owner.clone(), template.spec_path.clone()))
        {
            continue;
        }
        let endpoint = endpoint_of.get(&template.owner).copied();
        out.push(ScopedTemplate { endpoint, template });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// SEC-001

fn literal_env_credentials(_: &Snapshot, inventory: &Inventory, _: &Policy) -> Vec<Finding> {
    let mut findings = Vec::new();
    for scoped in templates_in_scope(inventory) {
        for (path, container) in scoped.template.containers() {
            for (i, env) in container.env.iter().flatten().enumerate() {
                let Some(value) = env.value.as_deref() else {
                    continue;
                };
                let field = format!("{path}.env[{i}].value");
                let tokens = token_hits(value);
                let message = if let Some(token) = tokens.first() {
                    format!(
                        "env `{}` of container `{}` holds {} as a literal value",
                        env.name,
                        container.name,
                        token.describe()
                    )
                } else if is_credential_env_name(&env.name) && is_literal(value) {
                    format!(
                        "env `{}` of container `{}` is set to a literal value ({}) instead of `valueFrom.secretKeyRef`",
                        env.name,
                        container.name,
                        mask(value)
                    )
                } else {
                    continue;
                };
                findings.push(scoped.finding("SEC-001", field, message));
            }
        }
    }
    findings
}

// ---------------------------------------------------------------------------------------------
// SEC-002

/// Secrets in a container's command and args, each with the field of the element it is in.
fn command_line_secrets(path: &str, container: &Container) -> Vec<(String, Hit)> {
    let mut words: Vec<(String, &str)> = Vec::new();
    for (list, values) in [("command", &container.command), ("args", &container.args)] {
        for (i, element) in values.iter().flatten().enumerate() {
            let field = format!("{path}.{list}[{i}]");
            words.extend(element.split_whitespace().map(|w| (field.clone(), w)));
        }
    }
    let mut out: Vec<(String, Hit)> = Vec::new();
    let mut push = |field: &str, hit: Hit| {
        if !out.iter().any(|(_, h)| h.value == hit.value) {
            out.push((field.to_owned(), hit));
        }
    };
    for (index, (field, word)) in words.iter().enumerate() {
        for hit in token_hits(word) {
            push(field, hit);
        }
        // `--api-key value`, `--api-key=value`, and `OPENAI_API_KEY=value` in a shell line.
        let flagged = KEY_FLAGS.iter().find_map(|flag| {
            if word == flag {
                let (next_field, next) = words.get(index + 1)?;
                Some((*flag, next_field.as_str(), *next))
            } else {
                let value = word.strip_prefix(flag)?.strip_prefix('=')?;
                Some((*flag, field.as_str(), value))
            }
        });
        let assigned = word
            .split_once('=')
            .filter(|(name, _)| {
                name.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                    && is_credential_env_name(name)
            })
            .map(|(name, value)| (name, field.as_str(), value));
        if let Some((name, at, value)) = flagged.or(assigned) {
            let value = value.trim_matches(['"', '\'']);
            if is_literal(value) {
                push(
                    at,
                    Hit {
                        what: format!("a literal `{name}`"),
                        value: value.to_owned(),
                    },
                );
            }
        }
    }
    out
}

fn secrets_in_command_lines(_: &Snapshot, inventory: &Inventory, _: &Policy) -> Vec<Finding> {
    let mut findings = Vec::new();
    for scoped in templates_in_scope(inventory) {
        for (path, container) in scoped.template.containers() {
            for (field, hit) in command_line_secrets(&path, container) {
                let element = field.rsplit('.').next().unwrap_or(&field).to_owned();
                let message = format!(
                    "`{element}` of container `{}` holds {} in plain text",
                    container.name,
                    hit.describe()
                );
                findings.push(scoped.finding("SEC-002", field, message));
            }
        }
    }
    findings
}

// ---------------------------------------------------------------------------------------------
// SEC-003

/// Mirrors the whole object, which SEC-001/SEC-002 already read field by field.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Secrets in one `key: value` entry of config data or annotations.
fn config_hits(key: &str, value: &str) -> Vec<Hit> {
    let mut hits = token_hits(value);
    if is_credential_key(key) && looks_like_credential(value) {
        push_unique(
            &mut hits,
            Hit {
                what: format!("a credential-like value under `{key}`"),
                value: value.trim().to_owned(),
            },
        );
    }
    // A config file held as one value: `api_key: …` lines inside it.
    if let Some(assignment) = ASSIGNMENT.as_ref() {
        for caps in assignment.captures_iter(value) {
            let (Some(name), Some(inner)) = (caps.get(1), caps.get(2)) else {
                continue;
            };
            if is_credential_key(name.as_str()) && looks_like_credential(inner.as_str()) {
                push_unique(
                    &mut hits,
                    Hit {
                        what: format!("a credential-like `{}`", name.as_str()),
                        value: inner.as_str().to_owned(),
                    },
                );
            }
        }
    }
    hits
}

fn describe_all(hits: &[Hit]) -> String {
    hits.iter()
        .map(Hit::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every object's identity, origin and metadata, whatever its kind.
fn every_object(snapshot: &Snapshot) -> Vec<(ObjectRef, &Origin, &ObjectMeta)> {
    let mut out = Vec::new();
    macro_rules! collect {
        ($($field:ident),* $(,)?) => {$(
            for o in &snapshot.$field {
                out.push((o.object_ref(), &o.origin, o.object.meta()));
            }
        )*};
    }
    collect!(
        namespaces,
        nodes,
        deployments,
        stateful_sets,
        daemon_sets,
        replica_sets,
        pods,
        jobs,
        cron_jobs,
        services,
        ingresses,
        network_policies,
        config_maps,
        secrets,
        service_accounts,
        roles,
        cluster_roles,
        role_bindings,
        cluster_role_bindings,
        resource_quotas,
        persistent_volume_claims,
        storage_classes,
        others,
    );
    out
}

fn annotation_findings(
    object: &ObjectRef,
    origin: &Origin,
    prefix: &str,
    annotations: &BTreeMap<String, String>,
) -> Vec<Finding> {
    annotations
        .iter()
        .filter(|(key, _)| key.as_str() != LAST_APPLIED)
        .filter_map(|(key, value)| {
            let hits = config_hits(key, value);
            (!hits.is_empty()).then(|| {
                Finding::on(
                    "SEC-003",
                    object.clone(),
                    origin,
                    Some(format!("{prefix}.annotations.{key}")),
                    format!("annotation `{key}` holds {}", describe_all(&hits)),
                )
            })
        })
        .collect()
}

fn tokens_in_config(snapshot: &Snapshot, inventory: &Inventory, _: &Policy) -> Vec<Finding> {
    let mut findings = Vec::new();
    for config_map in &snapshot.config_maps {
        for (key, value) in config_map.object.data.iter().flatten() {
            let hits = config_hits(key, value);
            if !hits.is_empty() {
                findings.push(Finding::on(
                    "SEC-003",
                    config_map.object_ref(),
                    &config_map.origin,
                    Some(format!("data.{key}")),
                    format!("ConfigMap key `{key}` holds {}", describe_all(&hits)),
                ));
            }
        }
    }
    for (object, origin, meta) in every_object(snapshot) {
        if let Some(annotations) = &meta.annotations {
            findings.extend(annotation_findings(
                &object,
                origin,
                "metadata",
                annotations,
            ));
        }
    }
    // Pod-template annotations of controllers (a bare Pod's are its own, read above).
    for workload in &inventory.workloads {
        let template = &workload.template;
        if let Some(prefix) = template.spec_path.strip_suffix(".spec") {
            findings.extend(annotation_findings(
                &template.owner,
                &template.origin,
                &format!("{prefix}.metadata"),
                &template.annotations,
            ));
        }
    }
    findings
}

// ---------------------------------------------------------------------------------------------
// SEC-004

const READ_VERBS: &[&str] = &["get", "list", "watch"];

/// Why a subject is a broad reader of Secrets, if it is one.
fn broad_reader(subject: &Subject) -> Option<String> {
    if let Some(crowd) = subject.crowd() {
        return Some(format!("`{}` is {crowd}", subject.name));
    }
    if subject.kind == "Group" && looks_organisation_wide(&subject.name) {
        return Some(format!(
            "`{}` is named like an organisation-wide group",
            subject.name
        ));
    }
    if subject.kind == "ServiceAccount" && subject.name == "default" {
        return Some(format!(
            "`{}/default` is the service account of every pod in `{}` that names none",
            subject.namespace, subject.namespace
        ));
    }
    None
}

/// Group names that, by convention, hold everybody: `all-engineering`, `everyone`, `staff`.
/// RBAC cannot tell how many people a group holds; the name is the only hint.
fn looks_organisation_wide(group: &str) -> bool {
    let name = group.to_ascii_lowercase();
    ["all-", "all_", "everyone"]
        .iter()
        .any(|p| name.starts_with(p))
        || ["-all", "_all"].iter().any(|s| name.ends_with(s))
        || matches!(
            name.as_str(),
            "all" | "employees" | "staff" | "users" | "all-staff" | "all-users"
        )
}

/// The binding a `who_can` grant came through, with the field of `subject` in it.
pub(super) fn binding_location(
    snapshot: &Snapshot,
    via: &str,
    subject: &Subject,
) -> Option<(ObjectRef, Origin, Option<String>)> {
    let matches = |s: &k8s_openapi::api::rbac::v1::Subject, binding_namespace: &str| {
        s.kind == subject.kind
            && s.name == subject.name
            && (s.kind != "ServiceAccount"
                || s.namespace.as_deref().unwrap_or(binding_namespace) == subject.namespace)
    };
    let field = |subjects: Option<&Vec<k8s_openapi::api::rbac::v1::Subject>>, ns: &str| {
        subjects
            .into_iter()
            .flatten()
            .position(|s| matches(s, ns))
            .map(|i| format!("subjects[{i}]"))
    };
    let mut parts = via.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("RoleBinding"), Some(namespace), Some(name)) => {
            let b = snapshot.find::<RoleBinding>(namespace, name)?;
            Some((
                b.object_ref(),
                b.origin.clone(),
                field(b.object.subjects.as_ref(), namespace),
            ))
        }
        (Some("ClusterRoleBinding"), Some(name), None) => {
            let b = snapshot.find::<ClusterRoleBinding>("", name)?;
            Some((
                b.object_ref(),
                b.origin.clone(),
                field(b.object.subjects.as_ref(), ""),
            ))
        }
        _ => None,
    }
}

/// A finding on the binding `via`, or on `fallback` when the binding is not in the snapshot.
pub(super) fn finding_on_binding(
    check: &'static str,
    snapshot: &Snapshot,
    via: &str,
    subject: &Subject,
    fallback: (ObjectRef, Origin),
    message: String,
) -> Finding {
    match binding_location(snapshot, via, subject) {
        Some((object, origin, field)) => Finding::on(check, object, &origin, field, message),
        None => Finding::on(check, fallback.0, &fallback.1, None, message),
    }
}

fn namespace_location(snapshot: &Snapshot, namespace: &str) -> (ObjectRef, Origin) {
    snapshot.find::<Namespace>("", namespace).map_or_else(
        || {
            (
                ObjectRef::new("Namespace", "", namespace),
                Origin::default(),
            )
        },
        |n| (n.object_ref(), n.origin.clone()),
    )
}

fn broad_secret_readers(
    snapshot: &Snapshot,
    inventory: &Inventory,
    policy: &Policy,
) -> Vec<Finding> {
    let rbac = RbacIndex::new(snapshot);
    let namespaces: BTreeSet<&str> = inventory.endpoints.iter().map(|e| e.namespace()).collect();
    // A ClusterRoleBinding grants in every namespace: one finding per grant, naming them all.
    let mut broad: BTreeMap<(String, Subject), (String, Vec<&str>)> = BTreeMap::new();
    let mut findings = Vec::new();
    for namespace in namespaces {
        let readers = |objects| {
            rbac.who_can(Access {
                verbs: READ_VERBS,
                group: "",
                resource: "secrets",
                namespace,
                objects,
            })
        };
        // A broad subject that may read even one named Secret holds its value.
        let grants = readers(Objects::Any);
        for (subject, via) in &grants {
            if let Some(why) = broad_reader(subject) {
                broad
                    .entry((via.clone(), subject.clone()))
                    .or_insert_with(|| (why, Vec::new()))
                    .1
                    .push(namespace);
            }
        }
        // Readers held to named Secrets (`resourceNames`, the remediation) are no crowd.
        let named: BTreeSet<Subject> = readers(Objects::Every)
            .into_iter()
            .map(|(s, _)| s)
            .filter(|s| !s.is_system() && broad_reader(s).is_none())
            .collect();
        if named.len() > policy.max_deployers {
            let (object, origin) = namespace_location(snapshot, namespace);
            findings.push(Finding::on(
                "SEC-004",
                object,
                &origin,
                None,
                format!(
                    "{} subjects may read Secrets in namespace `{namespace}` (policy allows {}): {}",
                    named.len(),
                    policy.max_deployers,
                    list_some(named.iter().map(|s| s.to_string()))
                ),
            ));
        }
    }
    for ((via, subject), (why, namespaces)) in broad {
        let fallback =
            namespace_location(snapshot, namespaces.first().copied().unwrap_or_default());
        let message = format!(
            "{subject} may read Secrets in inference namespace{} `{}` through {via}: {why}",
            if namespaces.len() == 1 { "" } else { "s" },
            namespaces.join("`, `"),
        );
        findings.push(finding_on_binding(
            "SEC-004", snapshot, &via, &subject, fallback, message,
        ));
    }
    findings
}

/// Up to five items, then "and N more".
pub(super) fn list_some(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    let shown = items.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    match items.len().saturating_sub(5) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::{run, run_with, vllm};

    const HF: &str = "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345";

    fn env(name: &str, value: &str) -> String {
        format!("        env:\n        - {{name: {name}, value: \"{value}\"}}")
    }

    #[test]
    fn sec_001_fires_on_a_literal_hf_token_and_masks_it() {
        let findings = run("SEC-001", &vllm(&env("HF_TOKEN", HF)));
        assert_eq!(findings.len(), 1);
        let f = &findings[0];
        assert_eq!(
            f.field.as_deref(),
            Some("spec.template.spec.containers[0].env[0].value")
        );
        assert!(f.message.contains("HF_TOKEN"), "{}", f.message);
        assert!(f.message.contains("`hf_…`"), "{}", f.message);
        assert!(!f.message.contains(HF), "the token leaked: {}", f.message);
        assert_eq!(f.endpoint.as_deref(), Some("Deployment/ml/chat"));
    }

    #[test]
    fn sec_001_fires_on_a_literal_api_key_by_its_name() {
        let findings = run("SEC-001", &vllm(&env("VLLM_API_KEY", "changeme-please")));
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("VLLM_API_KEY"));
        assert!(!findings[0].message.contains("changeme"));
    }

    #[test]
    fn sec_001_is_quiet_for_secret_refs_references_and_settings() {
        let yaml = vllm(
            r#"        env:
        - name: HF_TOKEN
          valueFrom: {secretKeyRef: {name: hf, key: token}}
        - {name: OTHER_TOKEN, value: "$(HF_TOKEN)"}
        - {name: HF_HUB_DISABLE_IMPLICIT_TOKEN, value: "1"}
        - {name: HF_HOME, value: /models/cache}"#,
        );
        assert!(run("SEC-001", &yaml).is_empty());
    }

    #[test]
    fn sec_001_covers_a_download_job_beside_the_endpoint_but_not_other_namespaces() {
        let job = |namespace: &str| {
            format!(
                r#"apiVersion: batch/v1
kind: Job
metadata: {{name: fetch-weights, namespace: {namespace}}}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: fetch
        image: python:3.12
        env: [{{name: HF_TOKEN, value: "{HF}"}}]
"#
            )
        };
        let beside = format!("{}---\n{}", vllm(""), job("ml"));
        let findings = run("SEC-001", &beside);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].object.name, "fetch-weights");
        assert_eq!(findings[0].endpoint, None);
        let elsewhere = format!("{}---\n{}", vllm(""), job("web"));
        assert!(run("SEC-001", &elsewhere).is_empty());
    }

    #[test]
    fn sec_001_reports_a_template_once_not_per_replica_set() {
        let replica_set = format!(
            r#"---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: chat-5d8f
  namespace: ml
  ownerReferences: [{{apiVersion: apps/v1, kind: Deployment, name: chat, uid: u1, controller: true}}]
spec:
  template:
    metadata: {{labels: {{app: chat}}}}
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.11.0
        env: [{{name: HF_TOKEN, value: "{HF}"}}]
"#
        );
        let yaml = format!("{}{replica_set}", vllm(&env("HF_TOKEN", HF)));
        let findings = run("SEC-001", &yaml);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].object.kind, "Deployment");
    }

    #[test]
    fn sec_002_fires_on_a_literal_api_key_flag_and_on_a_token_in_a_shell_line() {
        let yaml = vllm(&format!(
            r#"        args: ["--model", "meta-llama/Llama-3.1-8B-Instruct", "--api-key", "s3cr3t-key-for-chat"]
      initContainers:
      - name: fetch
        image: python:3.12
        command: ["sh", "-c", "huggingface-cli login --token {HF} && download"]"#
        ));
        let findings = run("SEC-002", &yaml);
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.template.spec.containers[0].args[3]")
        );
        assert!(findings[0].message.contains("--api-key"));
        assert!(!findings[0].message.contains("s3cr3t"));
        assert_eq!(
            findings[1].field.as_deref(),
            Some("spec.template.spec.initContainers[0].command[2]")
        );
        assert!(findings[1].message.contains("Hugging Face token"));
        assert!(!findings[1].message.contains(HF));
    }

    #[test]
    fn sec_002_fires_on_an_nvidia_key_in_an_equals_flag() {
        let yaml = vllm(r#"        args: ["--api-key=nvapi-abcdefghijklmnopqrstuvwxyz0123"]"#);
        let findings = run("SEC-002", &yaml);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].message.contains("NVIDIA API key"));
    }

    #[test]
    fn sec_002_is_quiet_when_the_key_comes_from_the_environment() {
        let yaml = vllm(
            r#"        args: ["--model", "org/model", "--api-key", "$(VLLM_API_KEY)"]
        command: ["sh", "-c", "vllm serve org/model --api-key ${VLLM_API_KEY}"]"#,
        );
        assert!(run("SEC-002", &yaml).is_empty());
    }

    #[test]
    fn sec_003_fires_on_a_token_in_a_config_map_and_in_an_annotation() {
        let yaml = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: gateway-config
  namespace: ml
data:
  config.yaml: |
    model_list:
    - model_name: gpt
      litellm_params: {model: openai/gpt-4o, api_key: sk-proj-AbCdEfGhIjKlMnOpQrStUv12}
  tokenizer: meta-llama/Llama-3.1-8B-Instruct
  gateway.yaml: |
    guards: {canarySeed: 9fQ2mX7vL4pR8tK1wZ6nB3cY}
---
apiVersion: v1
kind: Service
metadata:
  name: chat
  namespace: ml
  annotations: {hangar.dev/upstream-token: "a8f5f167f44f4964e6c998dee827110c"}
spec: {ports: [{port: 80}]}
"#;
        let findings = run("SEC-003", yaml);
        assert_eq!(findings.len(), 3, "{findings:?}");
        assert_eq!(findings[0].field.as_deref(), Some("data.config.yaml"));
        assert!(findings[0].message.contains("OpenAI-style API key"));
        assert!(!findings[0].message.contains("AbCdEf"));
        // The Hangar gateway's canary seed, which belongs in `guards.canarySeedFile`.
        assert_eq!(findings[1].field.as_deref(), Some("data.gateway.yaml"));
        assert!(
            findings[1]
                .message
                .contains("a credential-like `canarySeed`"),
            "{}",
            findings[1].message
        );
        assert!(!findings[1].message.contains("9fQ2mX"));
        assert_eq!(
            findings[2].field.as_deref(),
            Some("metadata.annotations.hangar.dev/upstream-token")
        );
    }

    #[test]
    fn sec_003_is_quiet_for_references_tokenizers_and_ordinary_settings() {
        let yaml = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: ml
  annotations: {meta.helm.sh/release-name: chat}
data:
  tokenizer: meta-llama/Llama-3.1-8B-Instruct
  max_tokens: "4096"
  hf_token_secret: huggingface-token-secret
  config.yaml: |
    api_key: os.environ/OPENAI_API_KEY
"#;
        assert!(run("SEC-003", yaml).is_empty());
    }

    fn binding(subject: &str) -> String {
        format!(
            r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: read-secrets, namespace: ml}}
rules: [{{apiGroups: [""], resources: [secrets], verbs: [get, list]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: read-secrets, namespace: ml}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-secrets}}
subjects: [{subject}]
"#
        )
    }

    #[test]
    fn sec_004_fires_when_every_service_account_of_a_namespace_reads_secrets() {
        let yaml = format!(
            "{}---\n{}",
            vllm(""),
            binding(
                "{kind: Group, name: \"system:serviceaccounts:ml\", apiGroup: rbac.authorization.k8s.io}"
            )
        );
        let findings = run("SEC-004", &yaml);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].object.kind, "RoleBinding");
        assert_eq!(findings[0].field.as_deref(), Some("subjects[0]"));
        assert!(findings[0].message.contains("every service account"));
    }

    #[test]
    fn sec_004_fires_on_edit_for_an_organisation_wide_group() {
        let yaml = format!(
            r#"{}---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: editors, namespace: ml}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}}
subjects: [{{kind: Group, name: all-engineering, apiGroup: rbac.authorization.k8s.io}}]
"#,
            vllm("")
        );
        let findings = run("SEC-004", &yaml);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].message.contains("organisation-wide"));
        let team = yaml.replace("all-engineering", "ml-platform");
        assert!(run("SEC-004", &team).is_empty());
    }

    #[test]
    fn sec_004_fires_when_too_many_people_read_secrets() {
        let people = (1..=3)
            .map(|i| format!("{{kind: User, name: user{i}, apiGroup: rbac.authorization.k8s.io}}"))
            .collect::<Vec<_>>()
            .join(", ");
        let yaml = format!("{}---\n{}", vllm(""), binding(&people));
        let policy = Policy {
            max_deployers: 2,
            ..Policy::default()
        };
        let findings = run_with("SEC-004", &yaml, &policy);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].message.starts_with("3 subjects"));
        assert!(
            run("SEC-004", &yaml).is_empty(),
            "3 is within the default 5"
        );
    }

    #[test]
    fn sec_004_is_quiet_for_one_named_service_account_and_outside_inference_namespaces() {
        let one = binding("{kind: ServiceAccount, name: external-secrets, namespace: ml}");
        assert!(run("SEC-004", &format!("{}---\n{one}", vllm(""))).is_empty());
        let everyone = binding(
            "{kind: Group, name: \"system:authenticated\", apiGroup: rbac.authorization.k8s.io}",
        )
        .replace("namespace: ml", "namespace: web");
        assert!(run("SEC-004", &format!("{}---\n{everyone}", vllm(""))).is_empty());
    }

    #[test]
    fn masks_never_show_more_than_three_characters() {
        assert_eq!(mask(HF), "`hf_…`, 35 chars");
        assert_eq!(mask("hunter2"), "7 chars");
    }

    #[test]
    fn credential_keys() {
        for key in [
            "hf_token",
            "HF_TOKEN",
            "apiKey",
            "api-key",
            "client_secret",
            "authToken",
        ] {
            assert!(is_credential_key(key), "{key}");
        }
        for key in ["tokenizer", "max_tokens", "secretive", "tokens_per_second"] {
            assert!(!is_credential_key(key), "{key}");
        }
    }
}
