//! Framework mappings, kept as data (`frameworks/*.yaml`) so an assessor can read them on their
//! own, and rolled up per control in the report.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// A compliance framework and its controls, with the checks that give evidence for each.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Framework {
    /// Short id: `pci-dss`, `soc2`, `owasp-llm`.
    pub id: String,
    pub name: String,
    pub version: String,
    pub controls: Vec<Control>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    pub id: String,
    pub title: String,
    /// Check ids whose findings mean this control fails. Empty: Hangar cannot evaluate it.
    #[serde(default)]
    pub checks: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

const SOURCES: &[(&str, &str)] = &[
    (
        "pci-dss-4.0.1.yaml",
        include_str!("../frameworks/pci-dss-4.0.1.yaml"),
    ),
    (
        "soc2-2017.yaml",
        include_str!("../frameworks/soc2-2017.yaml"),
    ),
    (
        "owasp-llm-2025.yaml",
        include_str!("../frameworks/owasp-llm-2025.yaml"),
    ),
];

fn parse_all() -> Result<Vec<Framework>, String> {
    SOURCES
        .iter()
        .map(|(name, text)| {
            serde_saphyr::from_str(text).map_err(|e| format!("frameworks/{name}: {e}"))
        })
        .collect()
}

/// Every framework Hangar maps to. The files are compiled in and checked by a test, so a parse
/// failure cannot reach a user; should it happen anyway, no framework is reported.
pub fn frameworks() -> &'static [Framework] {
    static FRAMEWORKS: OnceLock<Vec<Framework>> = OnceLock::new();
    FRAMEWORKS.get_or_init(|| parse_all().unwrap_or_default())
}

impl Framework {
    /// `PCI DSS 4.0.1`.
    pub fn label(&self) -> String {
        format!("{} {}", self.name, self.version)
    }
}

/// The controls a check gives evidence for, as `(framework, control)`.
pub fn controls_for(check: &str) -> Vec<(&'static Framework, &'static Control)> {
    frameworks()
        .iter()
        .flat_map(|f| f.controls.iter().map(move |c| (f, c)))
        .filter(|(_, c)| c.checks.iter().any(|id| id == check))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::catalogue;

    #[test]
    fn every_framework_file_parses() {
        let frameworks = parse_all().unwrap();
        assert_eq!(frameworks.len(), SOURCES.len());
        assert!(frameworks.iter().all(|f| !f.controls.is_empty()));
    }

    #[test]
    fn every_mapped_check_exists() {
        for f in frameworks() {
            for c in &f.controls {
                for id in &c.checks {
                    assert!(
                        crate::checks::find(id).is_some(),
                        "{} {} maps unknown check {id}",
                        f.id,
                        c.id
                    );
                }
            }
        }
    }

    #[test]
    fn every_check_maps_to_a_control() {
        for check in catalogue() {
            assert!(
                !controls_for(check.id).is_empty(),
                "{} maps to no control",
                check.id
            );
        }
    }

    #[test]
    fn pci_change_management_is_6_5() {
        let pci = frameworks().iter().find(|f| f.id == "pci-dss").unwrap();
        assert!(pci.controls.iter().any(|c| c.id == "6.5.1"));
        assert!(
            !pci.controls.iter().any(|c| c.id.starts_with("6.4.3")),
            "6.4.3 is about payment page scripts"
        );
    }
}
