//! The organisation's settings (`hangar.yaml`): what "good" means in this cluster.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::severity::Severity;

/// An organisation's audit policy, read from `hangar.yaml` (`--policy`). Every field is optional;
/// the defaults describe a typical NVIDIA GPU cluster under PCI DSS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Policy {
    /// How GPU nodes are recognised and how they must be fenced off.
    pub gpu_pool: GpuPoolPolicy,
    /// Image and model registries that are approved, as prefixes (`nvcr.io/nim/`,
    /// `registry.example.com/`, `s3://models-prod/`). Empty means every registry is accepted and
    /// the check is not evaluated.
    pub approved_registries: Vec<String>,
    /// Minimum retention of inference logs, in days (PCI DSS 10.5.1 asks for 12 months).
    pub min_log_retention_days: u32,
    /// The data scope assumed for endpoints that declare none (`pci`, `pii`, `internal`, `none`).
    /// Unset means an undeclared scope is itself a finding.
    pub default_data_scope: Option<DataScope>,
    /// Labels (on the object, its pod template or its namespace) that name the owning team, in
    /// order of preference.
    pub team_labels: Vec<String>,
    /// How many distinct principals may change an endpoint before it is a finding.
    pub max_deployers: usize,
    /// Hourly accelerator prices for `hangar cost` (GPU showback). Without a price a GPU's hours
    /// are still reported, marked unpriced, never counted as free.
    pub gpu_prices: GpuPrices,
    /// Severity per check id, replacing the catalogue's (`EXP-001: critical`).
    pub severity_overrides: BTreeMap<String, Severity>,
    /// Check ids that are not run at all. Their controls show as not evaluated.
    pub disabled_checks: Vec<String>,
}

/// How GPU nodes are recognised and fenced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct GpuPoolPolicy {
    /// Taint keys that fence GPU nodes; a GPU node must carry one with effect `NoSchedule` or
    /// `NoExecute`, and a pod that tolerates one is expected to request an accelerator.
    pub taint_keys: Vec<String>,
    /// Node labels whose presence marks a GPU node, besides allocatable accelerators.
    pub node_labels: Vec<String>,
}

impl Default for GpuPoolPolicy {
    fn default() -> Self {
        GpuPoolPolicy {
            taint_keys: vec![
                "nvidia.com/gpu".into(),
                "amd.com/gpu".into(),
                "hangar.dev/inference".into(),
            ],
            node_labels: vec![
                "nvidia.com/gpu.product".into(),
                "nvidia.com/gpu.present".into(),
                "cloud.google.com/gke-accelerator".into(),
                "karpenter.k8s.aws/instance-gpu-name".into(),
            ],
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            gpu_pool: GpuPoolPolicy::default(),
            approved_registries: Vec::new(),
            min_log_retention_days: 365,
            default_data_scope: None,
            team_labels: vec![
                "team".into(),
                "hangar.dev/team".into(),
                "app.kubernetes.io/team".into(),
                "owner".into(),
                "cost-center".into(),
            ],
            max_deployers: 5,
            gpu_prices: GpuPrices::default(),
            severity_overrides: BTreeMap::new(),
            disabled_checks: Vec::new(),
        }
    }
}

/// Hourly accelerator prices, for `hangar cost`. A GPU is priced by the first that applies:
/// its model (`models`), its node's instance type (`instanceTypes`, divided by the node's GPUs),
/// then `default`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct GpuPrices {
    /// The currency every price is in (an ISO 4217 code such as `USD` or `EUR`); reports show it.
    pub currency: String,
    /// Price of one whole accelerator per hour, by GPU model. A key matches a node whose GPU
    /// model label (`nvidia.com/gpu.product`, `cloud.google.com/gke-accelerator`,
    /// `karpenter.k8s.aws/instance-gpu-name`, …) equals it or contains it between dashes,
    /// ignoring case: `H100` matches `NVIDIA-H100-80GB-HBM3`, `nvidia-h100-80gb` and `h100`, but
    /// `L4` does not match `L40S`. The longest matching key wins, so `A100-SXM4-80GB` can be
    /// priced apart from `A100`.
    pub models: BTreeMap<String, Price>,
    /// Price of a whole node per hour, by `node.kubernetes.io/instance-type` (`p5.48xlarge`,
    /// `a2-highgpu-8g`, `Standard_ND96asr_v4`); each GPU costs this divided by the node's GPUs.
    /// Used when no model price matches.
    pub instance_types: BTreeMap<String, Price>,
    /// Price of one accelerator per hour when neither a model nor an instance type matches.
    /// Unset: such GPUs are reported with their GPU-hours and a warning instead of a cost.
    pub default: Option<Price>,
}

impl Default for GpuPrices {
    fn default() -> Self {
        GpuPrices {
            currency: "USD".into(),
            models: BTreeMap::new(),
            instance_types: BTreeMap::new(),
            default: None,
        }
    }
}

/// An hourly price: a finite, non-negative number.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Price(f64);

impl Price {
    pub fn new(value: f64) -> Result<Price, String> {
        if value.is_finite() && value >= 0.0 {
            Ok(Price(value))
        } else {
            Err(format!(
                "a price must be a non-negative number, got {value}"
            ))
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Price {
    type Error = String;
    fn try_from(value: f64) -> Result<Self, Self::Error> {
        Price::new(value)
    }
}

impl From<Price> for f64 {
    fn from(price: Price) -> f64 {
        price.0
    }
}

impl JsonSchema for Price {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Price".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An hourly price in `gpuPrices.currency`.",
            "type": "number",
            "minimum": 0
        })
    }
}

/// What data an endpoint may see, declared with the `hangar.dev/data-scope` label.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DataScope {
    /// Cardholder data: the endpoint is in PCI DSS scope.
    Pci,
    /// Personal data.
    Pii,
    /// Internal business data, no regulated data.
    Internal,
    /// Public or synthetic data only.
    None,
}

impl DataScope {
    pub fn parse(value: &str) -> Option<DataScope> {
        match value.trim().to_ascii_lowercase().as_str() {
            "pci" | "cde" | "pci-dss" => Some(DataScope::Pci),
            "pii" | "personal" => Some(DataScope::Pii),
            "internal" | "confidential" => Some(DataScope::Internal),
            "none" | "public" => Some(DataScope::None),
            _ => None,
        }
    }

    /// Regulated data: logging and retention rules apply in full.
    pub fn is_regulated(self) -> bool {
        matches!(self, DataScope::Pci | DataScope::Pii)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DataScope::Pci => "pci",
            DataScope::Pii => "pii",
            DataScope::Internal => "internal",
            DataScope::None => "none",
        }
    }
}

/// The label that declares an object's data scope.
pub const DATA_SCOPE_LABEL: &str = "hangar.dev/data-scope";

/// A check id a policy file names, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedCheck {
    /// The key naming it: `disabledChecks` or `severityOverrides`.
    pub key: &'static str,
    pub id: String,
    /// The 1-based line, when the file could be read for positions.
    pub line: Option<u64>,
}

/// The positions of the check ids in a policy file, read apart from the policy itself. (A map
/// key has no position of its own here: an override's is its value's, on the key's line as
/// policies are written, `EXP-001: low`.)
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct CheckLines {
    disabled_checks: Vec<serde_saphyr::Spanned<String>>,
    severity_overrides: BTreeMap<String, serde_saphyr::Spanned<serde::de::IgnoredAny>>,
}

/// Why a policy file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

impl Policy {
    /// Reads a policy from YAML, rejecting unknown keys and wrong types with the line they are on.
    pub fn from_yaml(text: &str) -> Result<Policy, PolicyError> {
        if text.trim().is_empty() {
            return Ok(Policy::default());
        }
        // The parser's text begins `error: `, which the command's own `error:` says already.
        serde_saphyr::from_str(text).map_err(|e| {
            let message = e.to_string();
            PolicyError(
                message
                    .strip_prefix("error: ")
                    .unwrap_or(&message)
                    .to_owned(),
            )
        })
    }

    /// The check ids this policy names, `disabledChecks` first, then the keys of
    /// `severityOverrides`, each with the line of `text` (the file it was read from) naming it:
    /// which ids exist is known only to the catalogue, so an unknown one is found after reading.
    pub fn named_checks(&self, text: &str) -> Vec<NamedCheck> {
        let lines: CheckLines = serde_saphyr::from_str(text).unwrap_or_default();
        let known = |line: u64| (line > 0).then_some(line);
        let disabled = self.disabled_checks.iter().enumerate().map(|(i, id)| {
            let spanned = lines.disabled_checks.get(i).filter(|s| s.value == *id);
            NamedCheck {
                key: "disabledChecks",
                id: id.clone(),
                line: spanned.and_then(|s| known(s.referenced.line())),
            }
        });
        let overridden = self.severity_overrides.keys().map(|id| NamedCheck {
            key: "severityOverrides",
            id: id.clone(),
            line: lines
                .severity_overrides
                .get(id)
                .and_then(|s| known(s.referenced.line())),
        });
        disabled.chain(overridden).collect()
    }

    pub fn is_disabled(&self, check: &str) -> bool {
        self.disabled_checks
            .iter()
            .any(|c| c.eq_ignore_ascii_case(check))
    }

    /// The JSON Schema of the policy file, for editors and `hangar policy schema`.
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(Policy)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_default_policy() {
        assert_eq!(Policy::from_yaml("").unwrap(), Policy::default());
    }

    #[test]
    fn fields_override_defaults() {
        let policy = Policy::from_yaml("approvedRegistries: [nvcr.io/]\nminLogRetentionDays: 400\nseverityOverrides:\n  EXP-001: low\n").unwrap();
        assert_eq!(policy.approved_registries, ["nvcr.io/"]);
        assert_eq!(policy.min_log_retention_days, 400);
        assert_eq!(
            policy.severity_overrides.get("EXP-001"),
            Some(&Severity::Low)
        );
        assert_eq!(policy.max_deployers, 5);
    }

    #[test]
    fn an_unknown_key_is_an_error_with_its_line() {
        let err =
            Policy::from_yaml("minLogRetentionDays: 30\napprovedRegistry: [x]\n").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("approvedRegistry"), "{message}");
        assert!(
            message.contains("line 2") || message.contains(":2:"),
            "{message}"
        );
    }

    #[test]
    fn the_check_ids_named_carry_their_key_and_line() {
        let text = "disabledChecks:\n  - EXP-001\n  - XYZ-001\nseverityOverrides: {EXP-002: low}\n";
        let policy = Policy::from_yaml(text).unwrap();
        let named: Vec<(&str, String, Option<u64>)> = (policy.named_checks(text).into_iter())
            .map(|c| (c.key, c.id, c.line))
            .collect();
        assert_eq!(
            named,
            [
                ("disabledChecks", "EXP-001".to_owned(), Some(2)),
                ("disabledChecks", "XYZ-001".to_owned(), Some(3)),
                ("severityOverrides", "EXP-002".to_owned(), Some(4)),
            ]
        );
    }

    #[test]
    fn a_wrong_type_is_an_error() {
        let err = Policy::from_yaml("minLogRetentionDays: a year\n").unwrap_err();
        // The command says `error:` before it once.
        assert!(!err.to_string().starts_with("error:"), "{err}");
        assert!(
            err.to_string().contains("minLogRetentionDays") || err.to_string().contains("line 1"),
            "{err}"
        );
    }

    #[test]
    fn gpu_prices_read_models_instance_types_and_a_default() {
        let policy = Policy::from_yaml(
            "gpuPrices:\n  currency: EUR\n  models: {H100: 6.5, L4: 0.8}\n  instanceTypes: {p4d.24xlarge: 32.77}\n  default: 2\n",
        )
        .unwrap();
        let prices = &policy.gpu_prices;
        assert_eq!(prices.currency, "EUR");
        assert_eq!(prices.models["H100"].get(), 6.5);
        assert_eq!(prices.instance_types["p4d.24xlarge"].get(), 32.77);
        assert_eq!(prices.default.map(Price::get), Some(2.0));
        assert_eq!(Policy::default().gpu_prices.currency, "USD");
        assert!(Policy::default().gpu_prices.default.is_none());
    }

    #[test]
    fn a_negative_price_is_an_error_with_its_line() {
        let err = Policy::from_yaml("gpuPrices:\n  models:\n    H100: -1\n").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("non-negative"), "{message}");
        assert!(
            message.contains("line 3") || message.contains(":3:"),
            "{message}"
        );
        assert!(Policy::from_yaml("gpuPrices: {unknown: 1}\n").is_err());
    }

    #[test]
    fn the_schema_names_every_field() {
        let schema = Policy::json_schema().to_string();
        for field in [
            "gpuPool",
            "approvedRegistries",
            "minLogRetentionDays",
            "severityOverrides",
            "disabledChecks",
            "gpuPrices",
            "instanceTypes",
        ] {
            assert!(schema.contains(field), "{field} missing from schema");
        }
    }
}
