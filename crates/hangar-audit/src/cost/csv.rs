//! CSV: one row per line item the totals sum (usage, then idle, then batch), with every
//! dimension as a column, so a spreadsheet can pivot by any of them. The first column holds the
//! `--by` group; rows come in the order of the groups.

use super::report::{Basis, CostReport, Usage};
use super::trim_number;
use crate::render::csv_cell;

const HEADER: &[&str] = &[
    "group",
    "kind",
    "basis",
    "object",
    "template",
    "replicas",
    "workload",
    "inference",
    "what",
    "endpoint",
    "namespace",
    "team",
    "model",
    "node",
    "pool",
    "gpu_model",
    "accelerators",
    "gpus",
    "price_per_gpu_hour",
    "price_source",
    "hourly",
    "period_hours",
    "projected",
    "started",
    "running_hours",
    "accrued",
    "currency",
];

pub(super) fn render(r: &CostReport) -> String {
    let mut out = String::new();
    push_row(&mut out, HEADER.iter().map(|h| (*h).to_owned()));
    let rank = |u: &Usage| {
        let key = r.group_by.key(u);
        r.groups
            .iter()
            .position(|g| g.key == key)
            .unwrap_or(usize::MAX)
    };
    let mut usage: Vec<&Usage> = r.usage.iter().collect();
    usage.sort_by_key(|u| rank(u));
    for u in usage {
        push_row(&mut out, usage_row(r, u, &r.group_by.key(u), "usage"));
    }
    idle_rows(&mut out, r);
    for b in &r.batch {
        push_row(&mut out, usage_row(r, b, &r.group_by.key(b), "batch"));
    }
    out
}

fn usage_row(r: &CostReport, u: &Usage, group: &str, kind: &str) -> Vec<String> {
    vec![
        group.to_owned(),
        kind.to_owned(),
        r.basis.as_str().to_owned(),
        u.object.to_string(),
        u.template.clone().unwrap_or_default(),
        u.replicas.to_string(),
        u.workload
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        u.inference.to_string(),
        u.what.clone().unwrap_or_default(),
        u.endpoint.clone().unwrap_or_default(),
        u.namespace.clone(),
        u.team.clone().unwrap_or_default(),
        u.model.clone().unwrap_or_default(),
        u.node.clone().unwrap_or_default(),
        u.pool.clone().unwrap_or_default(),
        u.gpu_model.clone().unwrap_or_default(),
        u.accelerators.join(" "),
        format!("{:.4}", u.gpus),
        fixed(u.price_per_gpu_hour, 4),
        u.price_source.clone(),
        fixed(u.hourly, 4),
        trim_number(r.period_hours),
        fixed(u.projected, 2),
        u.started.clone().unwrap_or_default(),
        fixed(u.running_hours, 2),
        fixed(u.accrued, 2),
        r.currency.clone(),
    ]
}

/// Idle accelerators: per node when observed, per pool when declared.
fn idle_rows(out: &mut String, r: &CostReport) {
    match r.basis {
        Basis::Observed => {
            for n in r.idle.nodes.iter().filter(|n| n.idle > 0.0) {
                let row = IdleRow {
                    object: format!("Node/{}", n.node),
                    node: &n.node,
                    pool: &n.pool,
                    model: n.gpu_model.as_deref(),
                    gpus: n.idle,
                    price: n.price_per_gpu_hour,
                    source: &n.price_source,
                };
                push_row(out, row.cells(r));
            }
        }
        Basis::Declared => {
            for p in r.idle.pools.iter().filter(|p| p.idle.gpus > 0.0) {
                let priced = p.idle.gpus - p.idle.unpriced_gpus;
                let pool_row = |gpus: f64, price: Option<f64>, source: &'static str| IdleRow {
                    object: String::new(),
                    node: "",
                    pool: &p.pool,
                    model: p.gpu_model.as_deref(),
                    gpus,
                    price,
                    source,
                };
                if priced > 0.0 {
                    let average = p.idle.hourly().unwrap_or(0.0) / priced;
                    let row = pool_row(priced, Some(average), "average price of the pool's GPUs");
                    push_row(out, row.cells(r));
                }
                if p.idle.unpriced_gpus > 0.0 {
                    push_row(
                        out,
                        pool_row(p.idle.unpriced_gpus, None, "no price").cells(r),
                    );
                }
            }
        }
    }
}

/// Idle accelerators of one node, or of one pool when declared.
struct IdleRow<'a> {
    object: String,
    node: &'a str,
    pool: &'a str,
    model: Option<&'a str>,
    gpus: f64,
    price: Option<f64>,
    source: &'a str,
}

impl IdleRow<'_> {
    fn cells(self, r: &CostReport) -> Vec<String> {
        let hourly = self.price.map(|p| p * self.gpus);
        let mut cells = vec![String::new(); HEADER.len()];
        let mut set = |column: &str, value: String| {
            if let Some(i) = HEADER.iter().position(|h| *h == column) {
                cells[i] = value;
            }
        };
        set("group", "(idle)".into());
        set("kind", "idle".into());
        set("basis", r.basis.as_str().into());
        set("object", self.object);
        set("replicas", "1".into());
        set("inference", "false".into());
        set(
            "what",
            "idle: held by GPU nodes, asked for by nothing".into(),
        );
        set("node", self.node.to_owned());
        set("pool", self.pool.to_owned());
        set("gpu_model", self.model.unwrap_or_default().to_owned());
        set("gpus", format!("{:.4}", self.gpus));
        set("price_per_gpu_hour", fixed(self.price, 4));
        set("price_source", self.source.to_owned());
        set("hourly", fixed(hourly, 4));
        set("period_hours", trim_number(r.period_hours));
        set("projected", fixed(hourly.map(|h| h * r.period_hours), 2));
        set("currency", r.currency.clone());
        cells
    }
}

/// A figure with `places` decimals, or an empty cell when it is unknown.
fn fixed(value: Option<f64>, places: usize) -> String {
    value.map(|v| format!("{v:.places$}")).unwrap_or_default()
}

fn push_row(out: &mut String, cells: impl IntoIterator<Item = String>) {
    let line: Vec<String> = cells.into_iter().map(|c| csv_cell(&c)).collect();
    out.push_str(&line.join(","));
    out.push('\n');
}
