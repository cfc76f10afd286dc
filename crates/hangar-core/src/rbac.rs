//! Who may do what, from Roles, ClusterRoles and their bindings.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, RoleBinding, RoleRef, Subject as RbacSubject,
};
use serde::Serialize;

use crate::selector::selects;
use crate::snapshot::{KubeObject, Located, Snapshot};

/// A principal RBAC grants rights to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Subject {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

impl Subject {
    fn from_rbac(s: &RbacSubject, binding_namespace: &str) -> Subject {
        // A service account's token authenticates as this user: the same principal as the
        // `ServiceAccount` subject, so both forms of a binding meet.
        if s.kind == "User"
            && let Some((namespace, name)) = (s.name.strip_prefix("system:serviceaccount:"))
                .and_then(|account| account.split_once(':'))
        {
            return Subject {
                kind: "ServiceAccount".to_owned(),
                name: name.to_owned(),
                namespace: namespace.to_owned(),
            };
        }
        let namespace = match s.kind.as_str() {
            "ServiceAccount" => s
                .namespace
                .clone()
                .unwrap_or_else(|| binding_namespace.to_owned()),
            _ => String::new(),
        };
        Subject {
            kind: s.kind.clone(),
            name: s.name.clone(),
            namespace,
        }
    }

    /// How many principals this subject stands for, as the audit weighs a grant to it.
    pub fn breadth(&self) -> Breadth {
        let name = self.name.as_str();
        match self.kind.as_str() {
            "ServiceAccount" if self.namespace == "kube-system" => Breadth::ControlPlane,
            "ServiceAccount" => Breadth::ServiceAccount,
            "Group" => match name {
                // OpenShift's OAuth users are a group of their own.
                "system:authenticated" | "system:authenticated:oauth" => {
                    Breadth::Everyone("every authenticated user")
                }
                "system:unauthenticated" => {
                    Breadth::Everyone("every caller that does not authenticate")
                }
                "system:serviceaccounts" => {
                    Breadth::Everyone("every service account of the cluster")
                }
                _ => match name.strip_prefix("system:serviceaccounts:") {
                    Some(namespace) => Breadth::ServiceAccountsOf(namespace.to_owned()),
                    None => reserved_or_named(name),
                },
            },
            "User" => match name {
                "system:anonymous" => Breadth::Everyone("every caller that does not authenticate"),
                // A service account's token authenticates as this user.
                _ => match name.strip_prefix("system:serviceaccount:") {
                    Some(account) if account.starts_with("kube-system:") => Breadth::ControlPlane,
                    Some(_) => Breadth::ServiceAccount,
                    None => reserved_or_named(name),
                },
            },
            _ => Breadth::Named,
        }
    }

    /// Kubernetes' own components: granted rights by design, not a finding.
    pub fn is_system(&self) -> bool {
        self.breadth() == Breadth::ControlPlane
    }

    /// Everyone, every authenticated user, anonymous callers or every service account: the
    /// broadest grants there are.
    pub fn is_everyone(&self) -> bool {
        matches!(self.breadth(), Breadth::Everyone(_))
    }

    /// Everyone, or every service account of a namespace (`system:serviceaccounts:<ns>`).
    pub fn is_broad(&self) -> bool {
        self.crowd().is_some()
    }

    /// Who a broad subject stands for, such as every service account of namespace `ml`;
    /// `None` for one service account, a named user or group, and Kubernetes' own components.
    pub fn crowd(&self) -> Option<String> {
        match self.breadth() {
            Breadth::Everyone(who) => Some(who.to_owned()),
            Breadth::ServiceAccountsOf(namespace) => {
                Some(format!("every service account of namespace `{namespace}`"))
            }
            Breadth::ControlPlane | Breadth::ServiceAccount | Breadth::Named => None,
        }
    }
}

/// How many principals a subject stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Breadth {
    /// Kubernetes' own components (the scheduler, controllers, nodes, kube-system's service
    /// accounts), and `system:masters`, whose members RBAC never limits, so no binding changes
    /// what they may do.
    ControlPlane,
    /// Every caller, every authenticated user or every service account, as said here.
    Everyone(&'static str),
    /// Every service account of one namespace.
    ServiceAccountsOf(String),
    /// One service account, as a `ServiceAccount` subject or as the user its token is.
    ServiceAccount,
    /// A user or group the organisation names.
    Named,
}

/// A user or group name that is none of the broad ones: Kubernetes reserves `system:` for its
/// own components (`system:kube-scheduler`, `system:node:<node>`, `system:nodes`,
/// `system:masters`…).
fn reserved_or_named(name: &str) -> Breadth {
    if name.starts_with("system:") {
        Breadth::ControlPlane
    } else {
        Breadth::Named
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// What is being asked: a verb on a resource of an API group, in a namespace.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    pub verbs: &'a [&'a str],
    pub group: &'a str,
    /// The plural resource name, e.g. `deployments` or `pods/exec`.
    pub resource: &'a str,
    pub namespace: &'a str,
    /// Which objects of the resource: a rule limited by `resourceNames` grants only those.
    pub objects: Objects<'a>,
}

/// Which objects of a resource an access question is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objects<'a> {
    /// The object of this name: a rule limited by `resourceNames` grants it when it names it.
    Named(&'a str),
    /// Some object whose name is not known (the pods of a Deployment): a rule limited by
    /// `resourceNames` may name it, so it grants.
    Any,
    /// Every object of the resource: a rule limited by `resourceNames` does not grant that.
    Every,
}

/// The RBAC objects of a snapshot, indexed for "who may …" questions.
pub struct RbacIndex<'a> {
    roles: HashMap<(&'a str, &'a str), &'a [PolicyRule]>,
    /// Each ClusterRole's rules, with those an `aggregationRule` gathers from the others.
    cluster_roles: HashMap<&'a str, Vec<&'a PolicyRule>>,
    bindings: HashMap<&'a str, Vec<&'a RoleBinding>>,
    cluster_bindings: Vec<&'a ClusterRoleBinding>,
}

impl<'a> RbacIndex<'a> {
    pub fn new(snapshot: &'a Snapshot) -> Self {
        let roles = snapshot
            .roles
            .iter()
            .map(|r| {
                (
                    (r.object.namespace(), r.object.name()),
                    r.object.rules.as_deref().unwrap_or_default(),
                )
            })
            .collect();
        let all = &snapshot.cluster_roles;
        let cluster_roles = all
            .iter()
            .map(|r| {
                let mut seen = Vec::new();
                (
                    r.object.name(),
                    cluster_role_rules(all, &r.object, &mut seen),
                )
            })
            .collect();
        let mut bindings: HashMap<&str, Vec<&RoleBinding>> = HashMap::new();
        for b in &snapshot.role_bindings {
            bindings
                .entry(b.object.namespace())
                .or_default()
                .push(&b.object);
        }
        let cluster_bindings = snapshot
            .cluster_role_bindings
            .iter()
            .map(|b| &b.object)
            .collect();
        RbacIndex {
            roles,
            cluster_roles,
            bindings,
            cluster_bindings,
        }
    }

    /// Every subject granted `access`, with the binding that grants it.
    pub fn who_can(&self, access: Access<'_>) -> BTreeSet<(Subject, String)> {
        let mut out = BTreeSet::new();
        for b in self.bindings.get(access.namespace).into_iter().flatten() {
            if self.role_allows(&b.role_ref, access.namespace, access) {
                let via = format!("RoleBinding/{}/{}", access.namespace, b.name());
                for s in b.subjects.iter().flatten() {
                    out.insert((Subject::from_rbac(s, access.namespace), via.clone()));
                }
            }
        }
        for b in &self.cluster_bindings {
            if self.role_allows(&b.role_ref, "", access) {
                let via = format!("ClusterRoleBinding/{}", b.name());
                for s in b.subjects.iter().flatten() {
                    out.insert((Subject::from_rbac(s, ""), via.clone()));
                }
            }
        }
        out
    }

    fn role_allows(&self, role: &RoleRef, namespace: &str, access: Access<'_>) -> bool {
        if role.kind == "Role" {
            let rules = self.roles.get(&(namespace, role.name.as_str()));
            return rules.is_some_and(|rules| rules.iter().any(|rule| rule_allows(rule, access)));
        }
        match self.cluster_roles.get(role.name.as_str()) {
            Some(rules) => rules.iter().any(|rule| rule_allows(rule, access)),
            // Kubernetes' built-in roles are rarely in a manifest dump; they still grant.
            None => role.kind == "ClusterRole" && builtin_role_allows(&role.name, access),
        }
    }
}

/// The rules of ClusterRole `role` among `all`: its own and, when it has an `aggregationRule`,
/// those of every ClusterRole its selectors match (whose own aggregation counts in turn), as
/// the aggregation controller fills them in. A manifest often leaves `rules: []` there.
fn cluster_role_rules<'a>(
    all: &'a [Located<ClusterRole>],
    role: &'a ClusterRole,
    seen: &mut Vec<&'a str>,
) -> Vec<&'a PolicyRule> {
    seen.push(role.name());
    let mut rules: Vec<&PolicyRule> = role.rules.iter().flatten().collect();
    let selectors = role
        .aggregation_rule
        .as_ref()
        .and_then(|a| a.cluster_role_selectors.as_deref())
        .unwrap_or_default();
    if selectors.is_empty() {
        return rules;
    }
    let no_labels = BTreeMap::new();
    for other in all {
        let labels = other.object.metadata.labels.as_ref().unwrap_or(&no_labels);
        let gathered = !seen.contains(&other.object.name())
            && selectors.iter().any(|selector| selects(selector, labels));
        if gathered {
            rules.extend(cluster_role_rules(all, &other.object, seen));
        }
    }
    rules
}

fn rule_allows(rule: &PolicyRule, access: Access<'_>) -> bool {
    let any = |list: Option<&Vec<String>>, wanted: &str| {
        list.into_iter().flatten().any(|v| v == "*" || v == wanted)
    };
    let names = rule.resource_names.as_deref().unwrap_or_default();
    let limited = !names.is_empty();
    let names_match = match access.objects {
        _ if !limited => true,
        Objects::Named(name) => names.iter().any(|n| n == name),
        Objects::Any => true,
        Objects::Every => false,
    };
    // A name cannot limit `create` or `deletecollection` of a resource: the request names no
    // object (a subresource such as `pods/exec` is asked of a named object).
    let verb_allowed = |verb: &&str| {
        let unnamed =
            matches!(*verb, "create" | "deletecollection") && !access.resource.contains('/');
        !(limited && unnamed) && any(Some(&rule.verbs), verb)
    };
    access.verbs.iter().any(verb_allowed)
        && any(rule.api_groups.as_ref(), access.group)
        && resource_matches(
            rule.resources.as_deref().unwrap_or_default(),
            access.resource,
        )
        && names_match
}

/// Whether a rule's `resources` cover `resource`: by name, `*`, or `*/<subresource>`.
fn resource_matches(resources: &[String], resource: &str) -> bool {
    let subresource = resource.split_once('/').map(|(_, sub)| sub);
    resources.iter().any(|r| {
        r == "*" || r == resource || (subresource.is_some() && r.strip_prefix("*/") == subresource)
    })
}

fn builtin_role_allows(name: &str, access: Access<'_>) -> bool {
    match name {
        "cluster-admin" => true,
        // `admin` and `edit` write every namespaced workload (operators aggregate their CRDs in).
        "admin" | "edit" => {
            !access.namespace.is_empty()
                && !access.resource.starts_with("roles")
                && !access.resource.starts_with("rolebindings")
        }
        _ => false,
    }
}

/// Verbs that change an object.
pub const WRITE_VERBS: &[&str] = &["create", "update", "patch", "delete", "*"];

/// The plural resource name Kubernetes uses for a kind.
pub fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with('s') {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot_from_text;

    /// The subjects `yaml` lets `verbs` the `resource` of group `apps` in `ml`, as text.
    fn who_can(yaml: &str, verbs: &[&str], resource: &str, objects: Objects<'_>) -> Vec<String> {
        let snapshot = snapshot_from_text("t.yaml", yaml);
        assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
        let access = Access {
            verbs,
            group: "apps",
            resource,
            namespace: "ml",
            objects,
        };
        let index = RbacIndex::new(&snapshot);
        index
            .who_can(access)
            .into_iter()
            .map(|(subject, _)| subject.to_string())
            .collect()
    }

    const CHAT_UPDATER: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: chat-updater, namespace: ml}
rules: [{apiGroups: [apps], resources: [deployments], resourceNames: [chat], verbs: [update, patch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: chat-updater, namespace: ml}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: chat-updater}
subjects: [{kind: User, name: ana, apiGroup: rbac.authorization.k8s.io}]
"#;

    #[test]
    fn a_rule_with_resource_names_grants_the_objects_it_names() {
        let write = |objects| who_can(CHAT_UPDATER, WRITE_VERBS, "deployments", objects);
        assert_eq!(write(Objects::Named("chat")), ["User ana"]);
        assert!(write(Objects::Named("embed")).is_empty());
        // An object whose name is not known may be the one named.
        assert_eq!(write(Objects::Any), ["User ana"]);
        assert!(write(Objects::Every).is_empty());
        // A name cannot limit `create`: the request names no object yet.
        let create = CHAT_UPDATER.replace("verbs: [update, patch]", "verbs: [create]");
        assert!(who_can(&create, WRITE_VERBS, "deployments", Objects::Named("chat")).is_empty());
    }

    const AGGREGATED: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: model-deployer}
aggregationRule:
  clusterRoleSelectors:
  - matchLabels: {hangar.dev/aggregate-to-deployer: "true"}
  - matchExpressions: [{key: team, operator: In, values: [ml]}]
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: deployments-writer, labels: {hangar.dev/aggregate-to-deployer: "true"}}
rules: [{apiGroups: [apps], resources: [deployments], verbs: [patch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: scaler, labels: {team: ml}}
rules: [{apiGroups: [apps], resources: ["*/scale"], verbs: [update]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: web-admin, labels: {team: web}}
rules: [{apiGroups: ["*"], resources: ["*"], verbs: ["*"]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: deployers, namespace: ml}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: model-deployer}
subjects: [{kind: User, name: ben, apiGroup: rbac.authorization.k8s.io}]
"#;

    #[test]
    fn an_aggregated_cluster_role_grants_the_rules_of_the_roles_it_selects() {
        let write = who_can(AGGREGATED, WRITE_VERBS, "deployments", Objects::Every);
        assert_eq!(write, ["User ben"]);
        // `*/scale` covers every resource's scale subresource.
        let scale = who_can(AGGREGATED, &["update"], "deployments/scale", Objects::Every);
        assert_eq!(scale, ["User ben"]);
        // Roles the selectors do not match add nothing.
        assert!(who_can(AGGREGATED, &["delete"], "deployments", Objects::Every).is_empty());
        assert!(
            who_can(
                AGGREGATED,
                &["update"],
                "deployments/status",
                Objects::Every
            )
            .is_empty()
        );
        let unselected = AGGREGATED.replace("values: [ml]", "values: [research]");
        assert!(
            who_can(
                &unselected,
                &["update"],
                "deployments/scale",
                Objects::Every
            )
            .is_empty()
        );
    }

    #[test]
    fn plurals() {
        assert_eq!(plural("Deployment"), "deployments");
        assert_eq!(plural("InferenceService"), "inferenceservices");
        assert_eq!(plural("NetworkPolicy"), "networkpolicies");
        assert_eq!(plural("Ingress"), "ingresses");
    }
}
