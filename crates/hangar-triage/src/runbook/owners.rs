//! Who owns an endpoint and whom to call: the model team for model symptoms, the platform team
//! for GPUs, nodes, network and scheduling.

use hangar_core::snapshot::KubeObject;

use super::facts::Facts;
use super::text::{Markdown, code};

/// The team answerable for the service as a whole.
pub const OWNER: &str = "hangar.dev/owner";
/// The team answerable for the model: its weights, version and answers.
pub const MODEL_OWNER: &str = "hangar.dev/model-owner";
/// The team that runs the GPUs, nodes and network under the endpoint.
pub const PLATFORM_OWNER: &str = "hangar.dev/platform-owner";
/// The on-call rotation (a schedule name or URL).
pub const ONCALL: &str = "hangar.dev/oncall";
/// How to escalate past the on-call (a name, a URL, a policy).
pub const ESCALATION: &str = "hangar.dev/escalation";
/// The chat channel of the owning team.
pub const SLACK: &str = "hangar.dev/slack";

/// Labels that commonly name a team, read when no `hangar.dev/` key does.
const TEAM_KEYS: &[&str] = &[
    "team",
    "hangar.dev/team",
    "app.kubernetes.io/team",
    "owner",
    "cost-center",
];

/// A value and where it was read from.
struct Found {
    value: String,
    source: String,
    /// Read from a label or annotation someone set, rather than inferred (from RBAC).
    declared: bool,
}

/// Reads `keys` in order, each on the object, its pod templates, then its namespace.
fn lookup(facts: &Facts<'_>, keys: &[&str]) -> Option<Found> {
    let endpoint = facts.endpoint;
    let object = format!("{}/{}", endpoint.object.kind, endpoint.object.name);
    let namespace = facts.namespace_ref();
    for key in keys {
        let candidates = [
            (endpoint.annotations.get(*key), "annotation", &object),
            (endpoint.labels.get(*key), "label", &object),
        ];
        for (value, what, on) in candidates {
            if let Some(value) = value {
                return Some(found(value, what, key, on));
            }
        }
        for t in &endpoint.templates {
            if let Some(value) = t.annotations.get(*key).or_else(|| t.labels.get(*key)) {
                return Some(found(value, "label", key, &"its pod template".to_owned()));
            }
        }
        if let Some(ns) = facts.namespace {
            if let Some(value) = ns.annotation(key) {
                return Some(found(value, "annotation", key, &namespace));
            }
            if let Some(value) = ns.label(key) {
                return Some(found(value, "label", key, &namespace));
            }
        }
    }
    None
}

fn found(value: &str, what: &str, key: &str, on: &String) -> Found {
    Found {
        value: value.to_owned(),
        source: format!("{what} `{key}` on {on}"),
        declared: true,
    }
}

/// The team that answers for the model, and where that was read.
fn model_team(facts: &Facts<'_>) -> Option<Found> {
    if let Some(found) = lookup(facts, &[MODEL_OWNER, OWNER]) {
        return Some(found);
    }
    if let Some(team) = &facts.endpoint.team {
        // The policy's team labels already chose it; cite the key that holds the same value.
        let source = TEAM_KEYS
            .iter()
            .filter_map(|k| lookup(facts, &[k]))
            .find(|f| f.value == *team)
            .map_or_else(|| "the policy's team labels".to_owned(), |f| f.source);
        return Some(Found {
            value: team.clone(),
            source,
            declared: true,
        });
    }
    lookup(facts, &["app.kubernetes.io/part-of"])
}

/// The platform team: declared, or the groups that hold cluster-wide rights over the endpoint.
fn platform_team(facts: &Facts<'_>) -> Option<Found> {
    if let Some(found) = lookup(facts, &[PLATFORM_OWNER]) {
        return Some(found);
    }
    let cluster_wide: Vec<_> = facts
        .endpoint
        .deployers
        .iter()
        .filter(|d| d.via.starts_with("ClusterRoleBinding/"))
        .filter(|d| d.subject.kind == "Group" && !d.subject.is_system() && !d.subject.is_broad())
        .collect();
    let first = cluster_wide.first()?;
    Some(Found {
        value: cluster_wide
            .iter()
            .map(|d| format!("Group {}", code(&d.subject.name)))
            .collect::<Vec<_>>()
            .join(", "),
        source: format!(
            "it holds cluster-wide rights through {}; no {} is declared",
            first.via,
            code(PLATFORM_OWNER)
        ),
        declared: false,
    })
}

/// Writes the owners section.
pub(super) fn section(doc: &mut Markdown, facts: &Facts<'_>) {
    doc.heading(2, "Owners and escalation");
    let model = model_team(facts);
    let platform = platform_team(facts);
    let mut rows = Vec::new();
    let name_of = |f: &Option<Found>| f.as_ref().map(|f| f.value.clone());
    rows.push(match &model {
        Some(f) => vec![
            "Model team".into(),
            format!("**{}** (from {})", f.value, f.source),
        ],
        None => vec![
            "Model team".into(),
            format!(
                "not declared: no {}, {} or team label on {} or {}",
                code(MODEL_OWNER),
                code(OWNER),
                facts.resource(),
                facts.namespace_ref()
            ),
        ],
    });
    rows.push(match &platform {
        Some(f) if !f.declared => vec![
            "Platform team".into(),
            format!("**{}** ({})", f.value, f.source),
        ],
        Some(f) => vec![
            "Platform team".into(),
            format!("**{}** (from {})", f.value, f.source),
        ],
        None => vec![
            "Platform team".into(),
            format!(
                "not declared: set {} on {}, or ask whoever runs the GPU nodes",
                code(PLATFORM_OWNER),
                facts.namespace_ref()
            ),
        ],
    });
    let contacts = [
        ("On-call", ONCALL),
        ("Escalation", ESCALATION),
        ("Chat", SLACK),
    ];
    let mut missing = Vec::new();
    for (title, key) in contacts {
        match lookup(facts, &[key]) {
            Some(f) => rows.push(vec![
                title.into(),
                format!("{} (from {})", f.value, f.source),
            ]),
            None => missing.push(code(key)),
        }
    }
    if let Some(contact) =
        lookup(facts, &["owner", "contact"]).filter(|f| Some(&f.value) != name_of(&model).as_ref())
    {
        rows.push(vec![
            "Contact".into(),
            format!("{} (from {})", contact.value, contact.source),
        ]);
    }
    doc.table(&["", ""], &rows);
    if !missing.is_empty() {
        doc.para(format!(
            "Nothing declares {}. Put them on {} or {} (see docs/runbook.md) and the next runbook will name them.",
            join_or(&missing),
            facts.resource(),
            facts.namespace_ref()
        ));
    }
    let model_name = name_of(&model).unwrap_or_else(|| "the model team".into());
    let platform_name = name_of(&platform).unwrap_or_else(|| "the platform team".into());
    if model.is_some() && name_of(&model) == name_of(&platform) {
        doc.para(format!(
            "**{model_name}** owns both the model and the infrastructure under it: every page below goes to them."
        ));
    }
    doc.bullets([
        format!(
            "**Model symptoms → {model_name}.** Wrong or worse answers, a regression that started with a model version change, the model failing to load (missing files, safetensors or config errors, `trust_remote_code`, unsupported architecture), tokenizer or chat-template errors, Hub 401/403/404 for a gated or moved repository."
        ),
        format!(
            "**Infrastructure symptoms → {platform_name}.** Pods Pending ({}, untolerated taints, affinity), NVIDIA Xid or NVML errors, nodes NotReady, NCCL timeouts, DNS, NetworkPolicy, ingress or certificate failures, a regression that started with a node, driver or runtime change.",
            code(&format!(
                "Insufficient {}",
                facts
                    .gpus
                    .as_ref()
                    .map_or("nvidia.com/gpu", |g| g.resource.as_str())
            ))
        ),
        "**Out of memory → read the OOM section first.** A setting that no longer fits (context length, batch size, memory fraction) is the model team's change; a node with less memory than the pod expects is the platform team's.".to_owned(),
    ]);
    deployers(doc, facts);
}

fn deployers(doc: &mut Markdown, facts: &Facts<'_>) {
    let deployers = &facts.endpoint.deployers;
    if deployers.is_empty() {
        return;
    }
    let list: Vec<String> = deployers
        .iter()
        .map(|d| {
            let name = if d.subject.namespace.is_empty() {
                d.subject.name.clone()
            } else {
                format!("{}/{}", d.subject.namespace, d.subject.name)
            };
            format!("{} {} (via {})", d.subject.kind, code(&name), d.via)
        })
        .collect();
    doc.para(format!(
        "Who can change it ({} principal{}, from RBAC in the input):",
        list.len(),
        if list.len() == 1 { "" } else { "s" }
    ));
    doc.bullets(list);
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}
