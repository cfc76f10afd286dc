//! GPU showback (`hangar cost`): what the accelerators cost, by team, namespace, model or
//! endpoint, what the nodes hold that nothing uses, and what is asked for but not running.
//!
//! The model, in short (docs/cost.md has the long form):
//! - A running pod holds the accelerators it requests (init containers as the scheduler counts
//!   them), converted to physical devices: a MIG instance is its compute slices out of 7, a
//!   time-sliced replica is 1/replicas of a GPU (or of a MIG instance).
//! - A device's hourly price comes from the policy's `gpuPrices`: by GPU model from the node's
//!   labels, else the node's instance price ÷ its devices, else the default, else unpriced.
//! - The run rate (per hour) × `--period` is the projection; the run rate × the hours since each
//!   pod started up to `--at` is what it has cost so far (accrued).
//! - With no pods in the input (manifests), each workload's template × replicas is costed
//!   instead, priced on the nodes it may run on, and labelled `declared`.

mod csv;
mod declared;
pub mod devices;
mod html;
mod idle;
mod observed;
pub mod price;
mod report;
mod table;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use hangar_core::inventory::MODEL_LABEL;
use hangar_core::nodes::is_gpu_node;
use hangar_core::snapshot::DynamicObject;
use hangar_core::{Endpoint, Inventory, KubeObject, ObjectRef, Policy, Snapshot, discover};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub use k8s_openapi::jiff::Timestamp;
pub use report::{
    Amount, Basis, COST_SCHEMA, CostReport, Group, GroupBy, Idle, Kind, NoGpuPod, NodeIdle,
    Pending, PoolIdle, Split, Totals, Usage,
};

use devices::{
    GPU_MODEL_LABELS, INSTANCE_TYPE_LABELS, NodeDevices, POOL_LABELS, base_model, first_label,
    node_devices,
};
use price::{Hardware, Quote, quote};

/// What to cost, and how.
pub struct CostOptions<'a> {
    pub policy: &'a Policy,
    pub by: GroupBy,
    /// How many hours the projection covers (730: a month).
    pub period_hours: f64,
    /// The instant running time is measured to.
    pub at: Timestamp,
    /// What was read, for the report header: paths or a cluster context.
    pub source: String,
}

/// Hours in an average month (8760 / 12), the default `--period`.
pub const MONTH_HOURS: f64 = 730.0;

/// Computes the showback of `snapshot`.
pub fn showback(snapshot: &Snapshot, options: &CostOptions<'_>) -> CostReport {
    let inventory = discover(snapshot, options.policy);
    let context = Context::new(snapshot, &inventory, options);
    let mut warnings = Vec::new();
    let basis = if observed::has_observed_pods(snapshot) {
        Basis::Observed
    } else {
        Basis::Declared
    };
    let mut found = match basis {
        Basis::Observed => observed::collect(&context, &mut warnings),
        Basis::Declared => declared::collect(&context, &mut warnings),
    };
    found.usage.sort_by(|a, b| {
        b.gpus
            .total_cmp(&a.gpus)
            .then_with(|| a.object.cmp(&b.object))
    });
    let period = options.period_hours;
    let idle = idle::idle(&context, basis, &found.usage, &mut warnings);
    let totals = Totals {
        offered: idle::offered(&context, period),
        allocated: Amount::sum(&found.usage, period),
        off_nodes: found.off_nodes,
        idle: idle.pools.iter().fold(Amount::default(), |mut sum, p| {
            sum.merge(&p.idle);
            sum
        }),
    };
    warn_inferred_mig(&context, &mut warnings);
    warn_unpriced(&found.usage, &idle, &mut warnings);
    dedup(&mut warnings);
    CostReport {
        schema: COST_SCHEMA,
        tool: crate::report::Tool {
            name: "hangar",
            version: env!("CARGO_PKG_VERSION"),
        },
        source: options.source.clone(),
        at: options.at.to_string(),
        period_hours: period,
        currency: options.policy.gpu_prices.currency.clone(),
        group_by: options.by,
        basis,
        complete: snapshot.errors.is_empty() && snapshot.not_covered.is_empty(),
        groups: report::group(&found.usage, options.by, period),
        split: report::split(&found.usage, period),
        totals,
        idle,
        usage: found.usage,
        batch: found.batch,
        pending: found.pending,
        no_gpu_pods: found.no_gpu_pods,
        node_agents: found.node_agents,
        warnings,
        errors: snapshot.errors.clone(),
        not_covered: snapshot.not_covered.clone(),
    }
}

/// What the observed or declared pass found.
#[derive(Debug, Default)]
struct Found {
    usage: Vec<Usage>,
    /// The part of `usage` no GPU node of the input holds.
    off_nodes: Amount,
    batch: Vec<Usage>,
    pending: Vec<Pending>,
    no_gpu_pods: Vec<NoGpuPod>,
    node_agents: usize,
}

impl Found {
    /// Adds a line item to the usage, and to `off_nodes` when no GPU node of the input holds it.
    fn bill(&mut self, usage: Usage, on_gpu_node: bool, period_hours: f64) {
        if !on_gpu_node {
            self.off_nodes.add(&usage, period_hours);
        }
        self.usage.push(usage);
    }
}

/// A node as showback sees it: where it belongs, what it holds, what a device costs on it.
#[derive(Debug, Clone)]
struct NodeInfo<'a> {
    node: &'a Node,
    name: String,
    pool: String,
    instance_type: Option<String>,
    gpu_model: Option<String>,
    is_gpu: bool,
    devices: NodeDevices,
    quote: Quote,
}

impl<'a> NodeInfo<'a> {
    fn new(node: &'a Node, policy: &Policy) -> NodeInfo<'a> {
        let devices = node_devices(node);
        let instance_type = first_label(node, INSTANCE_TYPE_LABELS).map(|(_, v)| v.to_owned());
        let models: Vec<(&str, &str)> = GPU_MODEL_LABELS
            .iter()
            .filter_map(|label| Some((*label, base_model(node.label(label)?))))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let quote = quote(
            &policy.gpu_prices,
            Hardware {
                models: &models,
                instance_type: instance_type.as_deref(),
                devices_per_node: Some(devices.devices),
            },
        );
        NodeInfo {
            node,
            name: node.name().to_owned(),
            pool: first_label(node, POOL_LABELS)
                .map(|(_, v)| v.to_owned())
                .or_else(|| instance_type.clone())
                .unwrap_or_else(|| "(no pool label)".into()),
            gpu_model: devices.sharing.gpu_model.clone(),
            instance_type,
            is_gpu: is_gpu_node(node, policy),
            devices,
            quote,
        }
    }
}

/// Indexes the passes share.
struct Context<'a> {
    snapshot: &'a Snapshot,
    inventory: &'a Inventory,
    options: &'a CostOptions<'a>,
    /// Every node of the input, by name.
    nodes: BTreeMap<String, NodeInfo<'a>>,
    namespaces: HashMap<&'a str, &'a Namespace>,
    /// The endpoint each pod serves.
    pod_endpoints: HashMap<&'a ObjectRef, &'a Endpoint>,
}

/// Who a line item is charged to.
#[derive(Debug, Clone, Default)]
struct Owner {
    endpoint: Option<String>,
    team: Option<String>,
    model: Option<String>,
    what: Option<String>,
}

impl<'a> Context<'a> {
    fn new(snapshot: &'a Snapshot, inventory: &'a Inventory, options: &'a CostOptions<'a>) -> Self {
        Context {
            snapshot,
            inventory,
            options,
            nodes: snapshot
                .nodes
                .iter()
                .map(|n| {
                    let info = NodeInfo::new(&n.object, options.policy);
                    (info.name.clone(), info)
                })
                .collect(),
            namespaces: snapshot
                .namespaces
                .iter()
                .map(|n| (n.object.name(), &n.object))
                .collect(),
            pod_endpoints: inventory
                .endpoints
                .iter()
                .flat_map(|e| e.pods.iter().map(move |p| (p, e)))
                .collect(),
        }
    }

    fn gpu_nodes(&self) -> impl Iterator<Item = &NodeInfo<'a>> {
        self.nodes.values().filter(|n| n.is_gpu)
    }

    fn period(&self) -> f64 {
        self.options.period_hours
    }

    /// An endpoint's charges: its team, its model.
    fn endpoint_owner(&self, endpoint: &Endpoint) -> Owner {
        Owner {
            endpoint: Some(endpoint.id.clone()),
            team: endpoint.team.clone(),
            model: endpoint
                .model
                .name
                .clone()
                .or_else(|| endpoint.label(MODEL_LABEL).map(str::to_owned)),
            what: None,
        }
    }

    /// Other work's charges: the team from its labels or its namespace's (as discovery reads
    /// them for endpoints), its model label, and what it is.
    fn other_owner(
        &self,
        labels: &BTreeMap<String, String>,
        namespace: &str,
        root: &ObjectRef,
    ) -> Owner {
        let ns = self.namespaces.get(namespace);
        let team = self.options.policy.team_labels.iter().find_map(|key| {
            labels
                .get(key)
                .map(String::as_str)
                .or_else(|| ns.and_then(|n| n.label(key)))
                .map(str::to_owned)
        });
        let what = self
            .inventory
            .other_accelerator_workloads
            .iter()
            .find(|w| w.object == *root)
            .map(|w| w.why.clone())
            .unwrap_or_else(|| match root.kind.as_str() {
                "DaemonSet" => "a node agent (DaemonSet)".into(),
                _ => "not an inference endpoint".into(),
            });
        Owner {
            endpoint: None,
            team,
            model: labels.get(MODEL_LABEL).cloned(),
            what: Some(what),
        }
    }

    /// The object a pod ultimately belongs to, following controller owner references through
    /// the input (Pod → ReplicaSet → Deployment, Pod → Job → CronJob).
    fn top_owner(&self, pod: &Pod) -> Option<ObjectRef> {
        let namespace = pod.namespace();
        let mut owner = controller(&pod.metadata)?;
        // Chains are short; the cap guards against cycles in hand-written input.
        for _ in 0..8 {
            let meta = self.metadata_of(&owner.kind, namespace, &owner.name);
            match meta.and_then(controller) {
                Some(next) => owner = next,
                None => break,
            }
        }
        Some(ObjectRef::new(owner.kind, namespace, owner.name))
    }

    fn metadata_of(&self, kind: &str, namespace: &str, name: &str) -> Option<&'a ObjectMeta> {
        self.object(kind, namespace, name).map(|o| o.metadata())
    }

    /// An object of the input by kind, namespace and name: typed for the kinds the snapshot
    /// types, untyped for the rest.
    fn object(&self, kind: &str, namespace: &str, name: &str) -> Option<InputObject<'a>> {
        let s = self.snapshot;
        Some(match kind {
            "Deployment" => InputObject::Deployment(&s.find(namespace, name)?.object),
            "StatefulSet" => InputObject::StatefulSet(&s.find(namespace, name)?.object),
            "ReplicaSet" => InputObject::ReplicaSet(&s.find(namespace, name)?.object),
            "DaemonSet" => InputObject::DaemonSet(&s.find(namespace, name)?.object),
            "Job" => InputObject::Job(&s.find(namespace, name)?.object),
            "CronJob" => InputObject::CronJob(&s.find(namespace, name)?.object),
            _ => InputObject::Other(&s.find_other(kind, namespace, name)?.object),
        })
    }
}

/// An object of the input that owns pods or pod templates.
#[derive(Debug, Clone, Copy)]
enum InputObject<'a> {
    Deployment(&'a Deployment),
    StatefulSet(&'a StatefulSet),
    ReplicaSet(&'a ReplicaSet),
    DaemonSet(&'a DaemonSet),
    Job(&'a Job),
    CronJob(&'a CronJob),
    /// A kind the snapshot does not type: custom resources (`LeaderWorkerSet`, `RayService`…).
    Other(&'a DynamicObject),
}

impl<'a> InputObject<'a> {
    fn metadata(self) -> &'a ObjectMeta {
        match self {
            InputObject::Deployment(o) => &o.metadata,
            InputObject::StatefulSet(o) => &o.metadata,
            InputObject::ReplicaSet(o) => &o.metadata,
            InputObject::DaemonSet(o) => &o.metadata,
            InputObject::Job(o) => &o.metadata,
            InputObject::CronJob(o) => &o.metadata,
            InputObject::Other(o) => &o.metadata,
        }
    }
}

/// The controller (or first) owner of an object, as `kind` and `name`.
fn controller(meta: &ObjectMeta) -> Option<ObjectRef> {
    let owners = meta.owner_references.as_deref()?;
    let owner = owners
        .iter()
        .find(|o| o.controller == Some(true))
        .or(owners.first())?;
    Some(ObjectRef::new(owner.kind.clone(), "", owner.name.clone()))
}

/// Physical devices that `asks` hold under `sharing`, with a warning for each assumption.
fn held(
    sharing: &devices::Sharing,
    asks: &BTreeMap<String, f64>,
    subject: &str,
    warnings: &mut Vec<String>,
) -> f64 {
    let mut total = 0.0;
    for (resource, count) in asks {
        match devices::unit(resource) {
            Some(devices::Unit::Unknown) => warnings.push(format!(
                "{subject}: `{resource}` is an accelerator Hangar does not know; counted as whole devices"
            )),
            Some(devices::Unit::NvidiaShared) if !sharing.is_time_sliced() => {
                warnings.push(format!(
                    "{subject}: asks for `{resource}`, but how many replicas share each GPU is unknown (no nvidia.com/gpu.replicas label); counted as whole GPUs"
                ))
            }
            Some(devices::Unit::MigShared(_)) if sharing.replicas_of(resource) == 1 => {
                warnings.push(format!(
                    "{subject}: asks for `{resource}`, but how many replicas share each MIG instance is unknown (no {}.replicas label); counted as whole instances",
                    devices::unshared(resource)
                ))
            }
            _ => {}
        }
        total += sharing.devices(resource, *count).unwrap_or(0.0);
    }
    total
}

/// One warning per reason for GPUs that have no price: they are counted in GPU-hours only.
fn warn_unpriced(usage: &[Usage], idle: &Idle, warnings: &mut Vec<String>) {
    let mut by_reason: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for u in usage.iter().filter(|u| u.price_per_gpu_hour.is_none()) {
        let entry = by_reason.entry(&u.price_source).or_default();
        entry.0 += u.gpus;
        entry.1 += 1;
    }
    for (reason, (gpus, items)) in by_reason {
        warnings.push(format!(
            "{} GPU(s) in {items} line item(s) are unpriced ({reason}): their GPU-hours are reported, their cost is not",
            trim_number(gpus)
        ));
    }
    // Unpriced GPUs that pods hold are warned about above; here only those nothing holds.
    let unpriced_idle = idle
        .nodes
        .iter()
        .filter(|n| n.price_per_gpu_hour.is_none() && n.idle > 0.0);
    for n in unpriced_idle {
        warnings.push(format!(
            "node {}: {} ({} idle GPU(s) unpriced)",
            n.node,
            n.price_source,
            trim_number(n.idle)
        ));
    }
}

/// Says which nodes' GPU counts are inferred from their MIG instances.
fn warn_inferred_mig(context: &Context<'_>, warnings: &mut Vec<String>) {
    for n in context.gpu_nodes().filter(|n| n.devices.mig_inferred) {
        warnings.push(format!(
            "node {}: it offers MIG instances and no nvidia.com/gpu.count label, so its {} GPU(s) are inferred: the fewest that can hold its instances",
            n.name,
            trim_number(n.devices.devices)
        ));
    }
}

fn dedup(warnings: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    warnings.retain(|w| seen.insert(w.clone()));
}

/// Why a `--period` or `--at` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CostArgError(pub String);

/// Reads a period such as `730h`, `30d`, `4w`, `1mo` (730 h) or `1y` (8760 h), in hours.
pub fn parse_period(text: &str) -> Result<f64, CostArgError> {
    let text = text.trim().to_ascii_lowercase();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || {
        CostArgError(format!(
            "`{text}` is not a period: expected a number and a unit, h, d, w, mo or y (e.g. 730h, 30d, 1mo)"
        ))
    };
    let number: f64 = number.parse().map_err(|_| bad())?;
    let hours_per_unit = match unit.trim() {
        "h" | "hour" | "hours" => 1.0,
        "d" | "day" | "days" => 24.0,
        "w" | "week" | "weeks" => 168.0,
        "mo" | "month" | "months" => MONTH_HOURS,
        "y" | "year" | "years" => 8760.0,
        _ => return Err(bad()),
    };
    let hours = number * hours_per_unit;
    if hours.is_finite() && hours > 0.0 {
        Ok(hours)
    } else {
        Err(CostArgError(format!(
            "the period `{text}` must be longer than zero"
        )))
    }
}

/// Reads `--at`: an RFC 3339 instant (`2026-03-01T12:00:00Z`) or a date (`2026-03-01`, midnight
/// UTC).
pub fn parse_at(text: &str) -> Result<Timestamp, CostArgError> {
    let text = text.trim();
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    text.parse::<k8s_openapi::jiff::civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| {
            CostArgError(format!(
                "`{text}` is not a time: expected RFC 3339 (2026-03-01T12:00:00Z) or a date (2026-03-01)"
            ))
        })
}

/// An output format of `hangar cost`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
    Html,
}

impl Format {
    pub const NAMES: &'static str = "table, json, csv, html";
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "table" | "text" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "html" => Ok(Format::Html),
            other => Err(format!(
                "unknown format `{other}` (expected one of {})",
                Format::NAMES
            )),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Html => "html",
        })
    }
}

/// Renders `report` in `format`.
pub fn render(report: &CostReport, format: Format) -> String {
    match format {
        Format::Table => table::render(report),
        Format::Json => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
        Format::Csv => csv::render(report),
        Format::Html => html::render(report),
    }
}

/// `80,358.40`: money with thousands separators, for people.
fn money(value: f64) -> String {
    number(value, 2)
}

/// Money, or `–` when it is unknown (no price, no start time, nothing run yet).
fn priced(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), money)
}

/// `15,330.5`: a number with thousands separators and `decimals` places.
fn number(value: f64, decimals: usize) -> String {
    // Half away from zero, as money is rounded (and as the JSON figures are).
    let factor = 10f64.powi(i32::try_from(decimals).unwrap_or(2));
    let text = format!("{:.decimals$}", (value.abs() * factor).round() / factor);
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (text.as_str(), None),
    };
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let negative = value < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0');
    let sign = if negative { "-" } else { "" };
    match fraction {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// `2`, `0.14`, `12.5`: a count (GPUs, hours, a request) without trailing zeros.
fn trim_number(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Why allocated + idle is more than the GPU nodes hold, in a sentence; `None` when they add up.
fn beyond_note(report: &CostReport) -> Option<String> {
    let parts = report.beyond_the_nodes();
    if parts.is_empty() {
        return None;
    }
    let total: f64 = parts.iter().map(|(gpus, _)| gpus).sum();
    let reasons: Vec<String> = parts
        .iter()
        .map(|(gpus, why)| format!("{} {why}", trim_number(*gpus)))
        .collect();
    Some(format!(
        "allocated + idle is {} GPU(s) more than the GPU nodes hold: {}.",
        trim_number(total),
        reasons.join("; ")
    ))
}

/// `730 h (30.4 days)`.
fn period_text(hours: f64) -> String {
    format!("{} h ({:.1} days)", trim_number(hours), hours / 24.0)
}

/// `text`, cut to `width` characters with an ellipsis.
fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}…")
}

#[cfg(test)]
mod tests;
