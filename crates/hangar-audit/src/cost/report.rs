//! The showback report: line items, their roll-ups, idle GPUs, and what could not be billed.
//! Every renderer reads this; the JSON form is this, field for field.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use hangar_core::{LoadError, NotCovered, ObjectRef};
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::report::Tool;

/// The `schema` of the JSON report; bumped when a field changes meaning or disappears.
pub const COST_SCHEMA: &str = "hangar.dev/cost-report/v1";

/// What usage is rolled up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Team,
    Namespace,
    Model,
    Endpoint,
}

impl GroupBy {
    pub const NAMES: &'static str = "team, namespace, model, endpoint";

    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Team => "team",
            GroupBy::Namespace => "namespace",
            GroupBy::Model => "model",
            GroupBy::Endpoint => "endpoint",
        }
    }

    /// The group a line item falls in.
    pub fn key(self, usage: &Usage) -> String {
        let value = match self {
            GroupBy::Team => usage.team.clone(),
            GroupBy::Namespace => Some(usage.namespace.clone()),
            GroupBy::Model => usage.model.clone(),
            GroupBy::Endpoint => usage.endpoint.clone(),
        };
        value.unwrap_or_else(|| self.missing().to_owned())
    }

    /// The key of items that have no value for this grouping.
    pub fn missing(self) -> &'static str {
        match self {
            GroupBy::Team => "(no team)",
            GroupBy::Namespace => "(no namespace)",
            GroupBy::Model => "(no model)",
            GroupBy::Endpoint => "(not an endpoint)",
        }
    }
}

impl FromStr for GroupBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "team" => Ok(GroupBy::Team),
            "namespace" | "ns" => Ok(GroupBy::Namespace),
            "model" => Ok(GroupBy::Model),
            "endpoint" => Ok(GroupBy::Endpoint),
            other => Err(format!(
                "cannot group by `{other}` (expected one of {})",
                GroupBy::NAMES
            )),
        }
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the usage figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    /// Pods that were running on nodes when the input was taken.
    Observed,
    /// No pods in the input: each workload's pod template × replicas, as the manifests ask.
    Declared,
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Observed => "observed",
            Basis::Declared => "declared",
        }
    }
}

/// One thing that holds accelerators: a running pod, or a declared pod template × replicas.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    /// The pod (observed), or the object whose pod template is costed (declared).
    pub object: ObjectRef,
    /// Declared: where the pod template sits in `object`.
    pub template: Option<String>,
    /// Declared: how many pods the template runs (observed: 1).
    pub replicas: u32,
    /// Declared: where the replica count was read (`spec.replicas`, `default`…).
    pub replicas_from: Option<String>,
    /// Observed: the pod's top controller (a Deployment, a Job…), when it has one.
    pub workload: Option<ObjectRef>,
    /// Whether this serves an inference endpoint.
    pub inference: bool,
    /// For other work: what it is (a training workload, a notebook…).
    pub what: Option<String>,
    pub endpoint: Option<String>,
    pub namespace: String,
    pub team: Option<String>,
    pub model: Option<String>,
    /// Observed: the node the pod runs on.
    pub node: Option<String>,
    /// The node pool; declared: only when every node it may run on is in one pool.
    pub pool: Option<String>,
    pub gpu_model: Option<String>,
    /// What the pod asks for, as `resource=count`.
    pub accelerators: Vec<String>,
    /// Physical accelerators held (MIG instances and shared replicas as fractions), × replicas.
    #[serde(serialize_with = "gpus")]
    pub gpus: f64,
    #[serde(serialize_with = "money_opt")]
    pub price_per_gpu_hour: Option<f64>,
    pub price_source: String,
    /// `gpus × price_per_gpu_hour`: the run rate.
    #[serde(serialize_with = "money_opt")]
    pub hourly: Option<f64>,
    /// The run rate over the period.
    #[serde(serialize_with = "money_opt")]
    pub projected: Option<f64>,
    /// Observed: `status.startTime`.
    pub started: Option<String>,
    /// Observed: hours from `started` to `at`.
    #[serde(serialize_with = "hours_opt")]
    pub running_hours: Option<f64>,
    /// Observed: the run rate over `running_hours`: what the pod has cost so far.
    #[serde(serialize_with = "money_opt")]
    pub accrued: Option<f64>,
}

/// GPUs and money, summed over line items.
///
/// Money covers the priced GPUs only; `unpriced_gpus` says how many are left out, and when
/// none of the GPUs has a price the money is unknown (`None`, `null` in JSON), not zero.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Amount {
    /// Physical accelerators held now.
    pub gpus: f64,
    /// `gpus` over the period.
    pub gpu_hours: f64,
    /// What running pods have cost since they started (observed only; pods with no start time
    /// are left out, and a warning names them).
    pub accrued: Option<f64>,
    /// GPUs with no price: in `gpus` and `gpu_hours`, not in the money.
    pub unpriced_gpus: f64,
    priced_hourly: f64,
    priced_projected: f64,
}

impl Amount {
    /// The run rate of the priced GPUs; `None` when every GPU here is unpriced.
    pub fn hourly(&self) -> Option<f64> {
        self.is_priced().then_some(self.priced_hourly)
    }

    /// `hourly` over the period.
    pub fn projected(&self) -> Option<f64> {
        self.is_priced().then_some(self.priced_projected)
    }

    /// Whether the money means something: no GPUs at all (it is zero), or some with a price.
    fn is_priced(&self) -> bool {
        self.gpus <= 0.0 || self.unpriced_gpus < self.gpus
    }

    pub fn add(&mut self, usage: &Usage, period_hours: f64) {
        self.add_gpus(usage.gpus, usage.price_per_gpu_hour, period_hours);
        if let Some(accrued) = usage.accrued {
            *self.accrued.get_or_insert(0.0) += accrued;
        }
    }

    pub fn add_gpus(&mut self, gpus: f64, price: Option<f64>, period_hours: f64) {
        self.gpus += gpus;
        self.gpu_hours += gpus * period_hours;
        match price {
            Some(price) => {
                self.priced_hourly += gpus * price;
                self.priced_projected += gpus * price * period_hours;
            }
            None => self.unpriced_gpus += gpus,
        }
    }

    pub fn merge(&mut self, other: &Amount) {
        self.gpus += other.gpus;
        self.gpu_hours += other.gpu_hours;
        self.priced_hourly += other.priced_hourly;
        self.priced_projected += other.priced_projected;
        self.unpriced_gpus += other.unpriced_gpus;
        if let Some(accrued) = other.accrued {
            *self.accrued.get_or_insert(0.0) += accrued;
        }
    }

    pub fn sum<'a>(items: impl IntoIterator<Item = &'a Usage>, period_hours: f64) -> Amount {
        let mut amount = Amount::default();
        for usage in items {
            amount.add(usage, period_hours);
        }
        amount
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_struct("Amount", 6)?;
        out.serialize_field("gpus", &round(self.gpus, 4))?;
        out.serialize_field("gpu_hours", &round(self.gpu_hours, 2))?;
        out.serialize_field("hourly", &self.hourly().map(|v| round(v, 2)))?;
        out.serialize_field("projected", &self.projected().map(|v| round(v, 2)))?;
        out.serialize_field("accrued", &self.accrued.map(|v| round(v, 2)))?;
        out.serialize_field("unpriced_gpus", &round(self.unpriced_gpus, 4))?;
        out.end()
    }
}

/// Usage rolled up by `group_by`.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub key: String,
    /// Line items in the group.
    pub items: usize,
    #[serde(flatten)]
    pub amount: Amount,
    /// The part of `amount` that serves inference endpoints.
    pub inference: Amount,
}

/// Inference endpoints against everything else that holds GPUs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Split {
    pub inference: Amount,
    pub other: Amount,
    /// `other` by what it is (a training workload, a notebook…).
    pub other_by_kind: Vec<Kind>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Kind {
    pub what: String,
    #[serde(flatten)]
    pub amount: Amount,
}

/// A GPU node's accelerators that no pod holds.
#[derive(Debug, Clone, Serialize)]
pub struct NodeIdle {
    pub node: String,
    pub pool: String,
    pub gpu_model: Option<String>,
    pub instance_type: Option<String>,
    /// Physical accelerators on the node.
    #[serde(serialize_with = "gpus")]
    pub gpus: f64,
    /// Held by pods running on it.
    #[serde(serialize_with = "gpus")]
    pub requested: f64,
    #[serde(serialize_with = "gpus")]
    pub idle: f64,
    #[serde(serialize_with = "money_opt")]
    pub price_per_gpu_hour: Option<f64>,
    pub price_source: String,
    #[serde(serialize_with = "money_opt")]
    pub hourly: Option<f64>,
    #[serde(serialize_with = "money_opt")]
    pub projected: Option<f64>,
}

/// Idle accelerators of one node pool.
#[derive(Debug, Clone, Serialize)]
pub struct PoolIdle {
    pub pool: String,
    pub nodes: usize,
    pub gpu_model: Option<String>,
    #[serde(serialize_with = "gpus")]
    pub gpus: f64,
    /// Observed: held by pods on the pool's nodes. Declared: asked for by workloads that can only
    /// run in this pool.
    #[serde(serialize_with = "gpus")]
    pub requested: f64,
    /// What the idle accelerators cost (`gpus` here is the idle count).
    pub idle: Amount,
}

/// GPUs the nodes hold that nothing asks for.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Idle {
    /// Per node (observed only).
    pub nodes: Vec<NodeIdle>,
    pub pools: Vec<PoolIdle>,
    /// Declared: accelerators asked for by workloads that may run in more than one pool, or on
    /// no GPU node of the input (`totals.off_nodes`); they are subtracted from no pool, so idle
    /// is an upper bound.
    #[serde(serialize_with = "gpus")]
    pub unpinned_gpus: f64,
}

/// A pod that asks for accelerators and is not on a node: demand the cluster does not meet.
#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    pub pod: ObjectRef,
    pub team: Option<String>,
    pub endpoint: Option<String>,
    pub accelerators: Vec<String>,
    /// Accelerators asked for, as whole devices and MIG fractions.
    #[serde(serialize_with = "gpus")]
    pub gpus: f64,
    /// The scheduler's message, when it gave one.
    pub reason: Option<String>,
}

/// A pod on a GPU node that asks for no accelerator: it takes CPU and memory the GPUs need.
#[derive(Debug, Clone, Serialize)]
pub struct NoGpuPod {
    pub pod: ObjectRef,
    pub node: String,
    pub pool: String,
    pub team: Option<String>,
    pub workload: Option<ObjectRef>,
    /// Its CPU and memory requests, e.g. `cpu=2 memory=8Gi`.
    pub requests: String,
}

/// The totals of the report. GPUs add up as `allocated − off_nodes − (what pods or pools are
/// asked beyond their devices) − (declared: demand that may land in several pools) + idle =
/// offered`; see docs/cost.md.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// Every accelerator the GPU nodes hold, at the nodes' prices.
    pub offered: Amount,
    /// Held by pods (observed) or asked for by templates × replicas (declared).
    pub allocated: Amount,
    /// The part of `allocated` that no GPU node of the input holds: pods on nodes missing from
    /// the input (observed), templates no GPU node of the input can run (declared).
    pub off_nodes: Amount,
    /// Held by nodes and by nothing else.
    pub idle: Amount,
}

/// GPU showback for one input: `hangar cost`.
#[derive(Debug, Clone, Serialize)]
pub struct CostReport {
    pub schema: &'static str,
    pub tool: Tool,
    pub source: String,
    /// The instant running time is measured to (RFC 3339).
    pub at: String,
    /// The period `projected` covers, in hours.
    pub period_hours: f64,
    pub currency: String,
    pub group_by: GroupBy,
    pub basis: Basis,
    /// False when something could not be read: the figures then miss what was not read.
    pub complete: bool,
    pub totals: Totals,
    /// Allocated usage by `group_by`, dearest first.
    pub groups: Vec<Group>,
    pub split: Split,
    pub idle: Idle,
    /// Every line item the groups sum.
    pub usage: Vec<Usage>,
    /// Declared Jobs, CronJobs and one-off pods: they run to completion, so their run rate is
    /// shown but not projected over the period.
    pub batch: Vec<Usage>,
    pub pending: Vec<Pending>,
    pub no_gpu_pods: Vec<NoGpuPod>,
    /// Node agents (DaemonSet and static pods) on GPU nodes, not listed in `no_gpu_pods`.
    pub node_agents: usize,
    /// Assumptions and gaps, each once: unpriced GPUs, unknown nodes, unreadable requests.
    pub warnings: Vec<String>,
    pub errors: Vec<LoadError>,
    pub not_covered: Vec<NotCovered>,
}

impl CostReport {
    /// Whether any allocated or idle GPU has a price.
    pub fn has_prices(&self) -> bool {
        [&self.totals.allocated, &self.totals.idle]
            .iter()
            .any(|a| a.hourly().is_some_and(|h| h > 0.0))
    }

    /// GPUs without a price: those of the GPU nodes, and those held off them. Pods that hold
    /// more than their node has are not counted again: those GPUs do not exist.
    pub fn unpriced_gpus(&self) -> f64 {
        self.totals.offered.unpriced_gpus + self.totals.off_nodes.unpriced_gpus
    }

    /// Why `allocated + idle` exceeds what the GPU nodes hold, as (GPUs, reason), largest
    /// reasons first; empty when they add up.
    pub fn beyond_the_nodes(&self) -> Vec<(f64, &'static str)> {
        let over = |requested: f64, gpus: f64| (requested - gpus).max(0.0);
        let mut parts = match self.basis {
            Basis::Observed => vec![(
                self.idle
                    .nodes
                    .iter()
                    .map(|n| over(n.requested, n.gpus))
                    .sum(),
                "held by pods beyond their node's devices",
            )],
            Basis::Declared => vec![
                (
                    self.idle
                        .pools
                        .iter()
                        .map(|p| over(p.requested, p.gpus))
                        .sum(),
                    "asked of a pool beyond its devices",
                ),
                (
                    self.idle.unpinned_gpus - self.totals.off_nodes.gpus,
                    "asked by workloads that may land in several pools, set against none",
                ),
            ],
        };
        parts.push((self.totals.off_nodes.gpus, "on no GPU node of the input"));
        parts.retain(|(gpus, _)| *gpus > 1e-9);
        parts.sort_by(|a, b| b.0.total_cmp(&a.0));
        parts
    }
}

/// Rolls usage up by `by`, dearest first (then most GPUs, then by name).
pub fn group(usage: &[Usage], by: GroupBy, period_hours: f64) -> Vec<Group> {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for u in usage {
        let key = by.key(u);
        let group = groups.entry(key.clone()).or_insert_with(|| Group {
            key,
            items: 0,
            amount: Amount::default(),
            inference: Amount::default(),
        });
        group.items += 1;
        group.amount.add(u, period_hours);
        if u.inference {
            group.inference.add(u, period_hours);
        }
    }
    let mut out: Vec<Group> = groups.into_values().collect();
    out.sort_by(|a, b| {
        b.amount
            .hourly()
            .unwrap_or(0.0)
            .total_cmp(&a.amount.hourly().unwrap_or(0.0))
            .then(b.amount.gpus.total_cmp(&a.amount.gpus))
            .then(a.key.cmp(&b.key))
    });
    out
}

/// Inference against the rest, and the rest by kind.
pub fn split(usage: &[Usage], period_hours: f64) -> Split {
    let mut split = Split::default();
    let mut kinds: BTreeMap<String, Amount> = BTreeMap::new();
    for u in usage {
        if u.inference {
            split.inference.add(u, period_hours);
        } else {
            split.other.add(u, period_hours);
            let what = u.what.clone().unwrap_or_else(|| "other".into());
            kinds.entry(what).or_default().add(u, period_hours);
        }
    }
    split.other_by_kind = kinds
        .into_iter()
        .map(|(what, amount)| Kind { what, amount })
        .collect();
    split
        .other_by_kind
        .sort_by(|a, b| b.amount.gpus.total_cmp(&a.amount.gpus));
    split
}

// Figures are computed unrounded and rounded only when written: cents for money, 1/10000 of a
// GPU (1/7 is 0.1429), hundredths of an hour.
fn round(value: f64, places: i32) -> f64 {
    let factor = 10f64.powi(places);
    (value * factor).round() / factor
}

fn money<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round(*value, 2))
}

fn money_opt<S: Serializer>(value: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => money(v, s),
        None => s.serialize_none(),
    }
}

fn gpus<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round(*value, 4))
}

fn hours<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round(*value, 2))
}

fn hours_opt<S: Serializer>(value: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => hours(v, s),
        None => s.serialize_none(),
    }
}
