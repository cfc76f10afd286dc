//! What a check is, and what it finds.

use hangar_core::inventory::Endpoint;
use hangar_core::workload::PodTemplate;
use hangar_core::{Inventory, ObjectRef, Origin, Policy, Severity, Snapshot};
use serde::Serialize;

/// The families of checks, as DOMAIN.md groups them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Family {
    /// Exposure and authentication.
    #[serde(rename = "EXP")]
    Exposure,
    #[serde(rename = "NET")]
    Network,
    #[serde(rename = "GPU")]
    GpuIsolation,
    #[serde(rename = "PSS")]
    PodSecurity,
    #[serde(rename = "SEC")]
    Secrets,
    #[serde(rename = "LOG")]
    Logging,
    #[serde(rename = "MOD")]
    ModelVersioning,
    #[serde(rename = "CST")]
    Cost,
    #[serde(rename = "CMP")]
    ComplianceScope,
}

impl Family {
    pub const ALL: [Family; 9] = [
        Family::Exposure,
        Family::Network,
        Family::GpuIsolation,
        Family::PodSecurity,
        Family::Secrets,
        Family::Logging,
        Family::ModelVersioning,
        Family::Cost,
        Family::ComplianceScope,
    ];

    pub fn prefix(self) -> &'static str {
        match self {
            Family::Exposure => "EXP",
            Family::Network => "NET",
            Family::GpuIsolation => "GPU",
            Family::PodSecurity => "PSS",
            Family::Secrets => "SEC",
            Family::Logging => "LOG",
            Family::ModelVersioning => "MOD",
            Family::Cost => "CST",
            Family::ComplianceScope => "CMP",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Family::Exposure => "Exposure and authentication",
            Family::Network => "Network",
            Family::GpuIsolation => "GPU isolation",
            Family::PodSecurity => "Pod security",
            Family::Secrets => "Secrets",
            Family::Logging => "Logging and retention",
            Family::ModelVersioning => "Model versioning and deploy rights",
            Family::Cost => "Cost",
            Family::ComplianceScope => "Compliance scope",
        }
    }
}

/// How a check runs: once per endpoint, or once over the whole snapshot.
#[derive(Clone, Copy)]
pub enum Run {
    Endpoint(fn(&Snapshot, &Endpoint, &Policy) -> Vec<Finding>),
    Cluster(fn(&Snapshot, &Inventory, &Policy) -> Vec<Finding>),
}

/// One check: everything a report says about it lives here, except the framework mappings,
/// which live in the framework data files (`frameworks/*.yaml`).
pub struct Check {
    /// Stable id, `FAMILY-NNN`. Never reused once released.
    pub id: &'static str,
    pub family: Family,
    pub title: &'static str,
    pub severity: Severity,
    /// Why it matters, in a sentence or two.
    pub rationale: &'static str,
    /// How to fix it.
    pub remediation: &'static str,
    pub run: Run,
    /// Whether the check can be evaluated under this policy (e.g. registry checks need a list of
    /// approved registries). When it cannot, its controls are "not evaluated", never "passed".
    pub applies: fn(&Policy) -> bool,
}

/// For checks that always apply.
pub fn always(_: &Policy) -> bool {
    true
}

/// A gap found by a check, on one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: &'static str,
    #[serde(flatten)]
    pub object: ObjectRef,
    #[serde(flatten)]
    pub origin: Origin,
    /// The endpoint the finding concerns, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The field path in the object, e.g. `spec.template.spec.containers[0].args`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What was observed, in a sentence that names the value.
    pub message: String,
}

impl Finding {
    /// A finding about an object that is not tied to an endpoint.
    pub fn on(
        check: &'static str,
        object: ObjectRef,
        origin: &Origin,
        field: Option<String>,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            check,
            object,
            origin: origin.clone(),
            endpoint: None,
            field,
            message: message.into(),
        }
    }

    /// A finding about the endpoint's declaring object.
    pub fn on_endpoint(
        check: &'static str,
        endpoint: &Endpoint,
        field: Option<String>,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            endpoint: Some(endpoint.id.clone()),
            ..Finding::on(
                check,
                endpoint.object.clone(),
                &endpoint.origin,
                field,
                message,
            )
        }
    }

    /// A finding about one of the endpoint's pod templates (which may live in another object).
    pub fn on_template(
        check: &'static str,
        endpoint: &Endpoint,
        template: &PodTemplate,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            endpoint: Some(endpoint.id.clone()),
            ..Finding::on(
                check,
                template.owner.clone(),
                &template.origin,
                Some(field.into()),
                message,
            )
        }
    }
}
