//! Who may do what, from Roles, ClusterRoles and their bindings.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use k8s_openapi::api::rbac::v1::{
    ClusterRoleBinding, PolicyRule, RoleBinding, RoleRef, Subject as RbacSubject,
};
use serde::Serialize;

use crate::snapshot::{KubeObject, Snapshot};

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

    /// Kubernetes' own components: granted rights by design, not a finding.
    pub fn is_system(&self) -> bool {
        self.name.starts_with("system:")
            || (self.kind == "ServiceAccount" && self.namespace == "kube-system")
    }

    /// Everyone, or every authenticated user: the broadest grants there are.
    pub fn is_everyone(&self) -> bool {
        self.kind == "Group"
            && matches!(
                self.name.as_str(),
                "system:authenticated" | "system:unauthenticated" | "system:serviceaccounts"
            )
    }

    /// Everyone, or every service account of a namespace (`system:serviceaccounts:<ns>`).
    pub fn is_broad(&self) -> bool {
        self.is_everyone()
            || (self.kind == "Group" && self.name.starts_with("system:serviceaccounts:"))
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
}

/// The RBAC objects of a snapshot, indexed for "who may …" questions.
pub struct RbacIndex<'a> {
    roles: HashMap<(&'a str, &'a str), &'a [PolicyRule]>,
    cluster_roles: HashMap<&'a str, &'a [PolicyRule]>,
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
        let cluster_roles = snapshot
            .cluster_roles
            .iter()
            .map(|r| {
                (
                    r.object.name(),
                    r.object.rules.as_deref().unwrap_or_default(),
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
        let rules = match role.kind.as_str() {
            "Role" => self.roles.get(&(namespace, role.name.as_str())).copied(),
            _ => self.cluster_roles.get(role.name.as_str()).copied(),
        };
        match rules {
            Some(rules) => rules.iter().any(|rule| rule_allows(rule, access)),
            // Kubernetes' built-in roles are rarely in a manifest dump; they still grant.
            None => role.kind == "ClusterRole" && builtin_role_allows(&role.name, access),
        }
    }
}

fn rule_allows(rule: &PolicyRule, access: Access<'_>) -> bool {
    let any = |list: Option<&Vec<String>>, wanted: &str| {
        list.into_iter().flatten().any(|v| v == "*" || v == wanted)
    };
    access.verbs.iter().any(|verb| any(Some(&rule.verbs), verb))
        && any(rule.api_groups.as_ref(), access.group)
        && any(rule.resources.as_ref(), access.resource)
        && rule.resource_names.as_ref().is_none_or(Vec::is_empty)
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

    #[test]
    fn plurals() {
        assert_eq!(plural("Deployment"), "deployments");
        assert_eq!(plural("InferenceService"), "inferenceservices");
        assert_eq!(plural("NetworkPolicy"), "networkpolicies");
        assert_eq!(plural("Ingress"), "ingresses");
    }
}
