//! The terminal table: the roll-up, inference against other work, idle pools, and what could
//! not be billed, in plain text.

use std::fmt::Write;

use super::report::{Amount, Basis, CostReport};
use super::{clip, money, number, period_text, priced, trim_number};

pub(super) fn render(r: &CostReport) -> String {
    let mut out = String::new();
    header(&mut out, r);
    groups(&mut out, r);
    split(&mut out, r);
    idle(&mut out, r);
    batch(&mut out, r);
    pending(&mut out, r);
    no_gpu(&mut out, r);
    notes(&mut out, r);
    out
}

fn header(out: &mut String, r: &CostReport) {
    let _ = writeln!(out, "Hangar GPU showback {}  {}", r.tool.version, r.source);
    let _ = writeln!(
        out,
        "at {} · period {} · prices in {} per GPU-hour",
        r.at,
        period_text(r.period_hours),
        r.currency
    );
    let basis = match r.basis {
        Basis::Declared => "basis: DECLARED. The input holds no running pods, so each workload's pod template × replicas is costed as the manifests ask, priced on the GPU nodes it may run on. This is what the manifests would cost, not observed usage.".to_owned(),
        Basis::Observed => format!(
            "basis: OBSERVED. {} running pod(s) hold accelerators. PER HOUR is their run rate now, PROJECTED that rate over the period, ACCRUED what each pod has cost from its start to {}.",
            r.usage.len(),
            r.at
        ),
    };
    let _ = writeln!(out, "{basis}\n");
}

struct Columns {
    key: usize,
    accrued: bool,
}

impl Columns {
    fn heading(&self, out: &mut String, first: &str) {
        let _ = write!(
            out,
            "{:<k$}  {:>8}  {:>11}  {:>11}  {:>13}",
            first,
            "GPUS",
            "GPU-HOURS",
            "PER HOUR",
            "PROJECTED",
            k = self.key
        );
        if self.accrued {
            let _ = write!(out, "  {:>12}", "ACCRUED");
        }
        let _ = writeln!(out, "  {:>9}", "INFERENCE");
    }

    fn row(&self, out: &mut String, key: &str, a: &Amount, inference: Option<f64>) {
        let mark = if a.unpriced_gpus > 0.0 { "*" } else { " " };
        let _ = write!(
            out,
            "{:<k$}  {:>8}  {:>11}  {:>10}{mark}  {:>13}",
            clip(key, self.key),
            trim_number(a.gpus),
            number(a.gpu_hours, 1),
            priced(a.hourly()),
            priced(a.projected()),
            k = self.key
        );
        if self.accrued {
            let accrued = priced(a.accrued);
            let _ = write!(out, "  {accrued:>12}");
        }
        let share = match inference {
            Some(i) if a.gpus > 0.0 => format!("{:.0}%", 100.0 * i / a.gpus),
            _ => String::new(),
        };
        let _ = writeln!(out, "  {share:>9}");
    }
}

fn groups(out: &mut String, r: &CostReport) {
    let longest = r.groups.iter().map(|g| g.key.chars().count()).max();
    let columns = Columns {
        key: longest.unwrap_or(0).clamp(14, 48),
        accrued: r.basis == Basis::Observed,
    };
    columns.heading(out, &r.group_by.as_str().to_uppercase());
    if r.groups.is_empty() {
        let _ = writeln!(out, "(nothing holds an accelerator)");
    }
    for g in &r.groups {
        columns.row(out, &g.key, &g.amount, Some(g.inference.gpus));
    }
    let _ = writeln!(out, "{}", "-".repeat(columns.key + 72));
    let t = &r.totals;
    columns.row(out, "allocated", &t.allocated, Some(r.split.inference.gpus));
    columns.row(out, "idle", &t.idle, None);
    columns.row(out, "GPU nodes hold", &t.offered, None);
    if let Some(note) = super::beyond_note(r) {
        let _ = writeln!(out, "{note}");
    }
    let unpriced = r.unpriced_gpus();
    if unpriced > 0.0 {
        let _ = writeln!(
            out,
            "* {} GPU(s) have no price: counted in GPUS and GPU-HOURS, not in the money (see Warnings).",
            trim_number(unpriced)
        );
    }
    if !r.has_prices() && r.warnings.iter().any(|w| w.contains("unpriced")) {
        let _ = writeln!(
            out,
            "  Add a price table (gpuPrices) to the policy file to see costs: see docs/cost.md."
        );
    }
    out.push('\n');
}

fn split(out: &mut String, r: &CostReport) {
    let s = &r.split;
    if r.usage.is_empty() {
        return;
    }
    let _ = writeln!(out, "Inference against other work");
    let line = |label: &str, a: &Amount| {
        format!(
            "  {label:<36} {:>8} GPU(s)  {:>10}/h  {:>13} over the period\n",
            trim_number(a.gpus),
            priced(a.hourly()),
            priced(a.projected())
        )
    };
    out.push_str(&line("inference endpoints", &s.inference));
    out.push_str(&line("other work", &s.other));
    for k in &s.other_by_kind {
        out.push_str(&line(&format!("  {}", clip(&k.what, 34)), &k.amount));
    }
    out.push('\n');
}

fn idle(out: &mut String, r: &CostReport) {
    if r.idle.pools.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "Idle accelerators by node pool (held by GPU nodes, asked for by nothing)"
    );
    let width = r
        .idle
        .pools
        .iter()
        .map(|p| p.pool.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(8, 40);
    let _ = writeln!(
        out,
        "{:<width$}  {:>5}  {:>7}  {:>9}  {:>7}  {:>11}  {:>13}",
        "POOL", "NODES", "GPUS", "REQUESTED", "IDLE", "PER HOUR", "PROJECTED"
    );
    for p in &r.idle.pools {
        let mark = if p.idle.unpriced_gpus > 0.0 { "*" } else { " " };
        let _ = writeln!(
            out,
            "{:<width$}  {:>5}  {:>7}  {:>9}  {:>7}  {:>10}{mark}  {:>13}",
            clip(&p.pool, width),
            p.nodes,
            trim_number(p.gpus),
            trim_number(p.requested),
            trim_number(p.idle.gpus),
            priced(p.idle.hourly()),
            priced(p.idle.projected())
        );
    }
    for n in r.idle.nodes.iter().filter(|n| n.idle > 0.0) {
        let _ = writeln!(
            out,
            "  node {} ({}): {} of {} GPU(s) idle{}",
            n.node,
            n.pool,
            trim_number(n.idle),
            trim_number(n.gpus),
            n.hourly
                .map(|h| format!(", {}/h", money(h)))
                .unwrap_or_default()
        );
    }
    if r.basis == Basis::Declared {
        let _ = writeln!(
            out,
            "  Declared: REQUESTED counts the workloads that can only run in that pool. {} GPU(s) asked for by workloads that may run in several pools, or on no GPU node of the input, are subtracted from no pool, so IDLE is an upper bound.",
            trim_number(r.idle.unpinned_gpus)
        );
    }
    out.push('\n');
}

fn batch(out: &mut String, r: &CostReport) {
    if r.batch.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "Batch work (runs to completion: its run rate while running, not projected)"
    );
    for b in &r.batch {
        let rate = b
            .hourly
            .map_or_else(|| "unpriced".to_owned(), |h| format!("{}/h", money(h)));
        let _ = writeln!(
            out,
            "  {}  {} GPU(s)  {rate} while running  ({})",
            b.object,
            trim_number(b.gpus),
            b.what.as_deref().unwrap_or("batch")
        );
    }
    out.push('\n');
}

fn pending(out: &mut String, r: &CostReport) {
    if r.pending.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "Pending pods (unmet demand: not on a node, so not billed)"
    );
    for p in &r.pending {
        let _ = writeln!(
            out,
            "  {}  {}{}",
            p.pod,
            p.accelerators.join(" "),
            p.reason
                .as_deref()
                .map(|r| format!("  ({r})"))
                .unwrap_or_default()
        );
    }
    out.push('\n');
}

fn no_gpu(out: &mut String, r: &CostReport) {
    if r.no_gpu_pods.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "Pods on GPU nodes that ask for no GPU (they take room the GPUs need; {} node agent(s) not listed)",
        r.node_agents
    );
    for p in &r.no_gpu_pods {
        let _ = writeln!(
            out,
            "  {}  on {} ({})  {}{}",
            p.pod,
            p.node,
            p.pool,
            p.requests,
            p.team
                .as_deref()
                .map(|t| format!("  team {t}"))
                .unwrap_or_default()
        );
    }
    out.push('\n');
}

fn notes(out: &mut String, r: &CostReport) {
    if !r.warnings.is_empty() {
        let _ = writeln!(out, "Warnings");
        for w in &r.warnings {
            let _ = writeln!(out, "  - {w}");
        }
        out.push('\n');
    }
    if !r.errors.is_empty() || !r.not_covered.is_empty() {
        let _ = writeln!(out, "Not read: the figures miss whatever these held");
        for e in &r.errors {
            let _ = writeln!(out, "  - {}: {}", e.origin, e.message);
        }
        for n in &r.not_covered {
            let _ = writeln!(out, "  - {} not covered: {}", n.kind, n.reason);
        }
    }
}
