//! Which directions a NetworkPolicy fences, read as Kubernetes reads it.

use k8s_openapi::api::networking::v1::NetworkPolicy;

/// Whether `policy` limits the ingress of the pods it selects.
pub fn restricts_ingress(policy: &NetworkPolicy) -> bool {
    has_policy_type(policy, "Ingress")
}

/// Whether `policy` limits the egress of the pods it selects.
pub fn restricts_egress(policy: &NetworkPolicy) -> bool {
    has_policy_type(policy, "Egress")
}

/// Whether `policyTypes`, as Kubernetes defaults it, holds `kind`. When it is absent or empty
/// the API server sets Ingress, and Egress too when the policy has at least one egress rule:
/// `egress: []` alone does not make a policy fence egress.
fn has_policy_type(policy: &NetworkPolicy, kind: &str) -> bool {
    let Some(spec) = &policy.spec else {
        return false;
    };
    match spec.policy_types.as_deref() {
        Some(types) if !types.is_empty() => types.iter().any(|t| t == kind),
        _ => match kind {
            "Ingress" => true,
            "Egress" => spec.egress.as_ref().is_some_and(|rules| !rules.is_empty()),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(spec: &str) -> NetworkPolicy {
        let yaml = format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p, namespace: ml}}\nspec: {spec}\n"
        );
        let snapshot = crate::snapshot_from_text("t.yaml", &yaml);
        assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
        snapshot.network_policies[0].object.clone()
    }

    #[test]
    fn without_policy_types_ingress_is_fenced_and_egress_only_with_an_egress_rule() {
        let bare = policy("{podSelector: {}}");
        assert!(restricts_ingress(&bare) && !restricts_egress(&bare));
        let no_egress_rule = policy("{podSelector: {}, egress: []}");
        assert!(restricts_ingress(&no_egress_rule) && !restricts_egress(&no_egress_rule));
        let egress_rule = policy("{podSelector: {}, egress: [{}]}");
        assert!(restricts_ingress(&egress_rule) && restricts_egress(&egress_rule));
    }

    #[test]
    fn empty_policy_types_are_defaulted_like_absent_ones() {
        let empty = policy("{podSelector: {}, policyTypes: []}");
        assert!(restricts_ingress(&empty) && !restricts_egress(&empty));
        let with_egress = policy("{podSelector: {}, policyTypes: [], egress: [{}]}");
        assert!(restricts_ingress(&with_egress) && restricts_egress(&with_egress));
        let egress_only = policy("{podSelector: {}, policyTypes: [Egress]}");
        assert!(!restricts_ingress(&egress_only) && restricts_egress(&egress_only));
    }
}
