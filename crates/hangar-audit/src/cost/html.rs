//! A self-contained HTML page in the audit report's style: the roll-up as an inline SVG bar
//! chart and tables. One file, no external assets, every text escaped.

use std::fmt::Write;

use super::report::{Amount, Basis, CostReport, Group};
use super::{clip, money, number, period_text, priced, trim_number};
use crate::render::html::{STYLE, esc, not_read};

/// Additions to the audit report's stylesheet, in its palette.
const COST_STYLE: &str = r#"
.note{background:#ebf8ff;border:1px solid #90cdf4;color:#2a4365;padding:12px 16px;border-radius:6px;margin-bottom:16px}
.chart{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 16px;margin-bottom:12px}
.chart svg{width:100%;height:auto;display:block}
.legend{color:var(--mute);font-size:12px}.legend i{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px;border-radius:2px}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.unpriced{color:var(--med);font-weight:600}
"#;

const INFERENCE_FILL: &str = "#2b6cb0";
const OTHER_FILL: &str = "#b7791f";
const IDLE_FILL: &str = "#a0aec0";

/// Groups drawn in the chart; the rest are summed in one bar.
const CHART_BARS: usize = 15;

pub(super) fn render(r: &CostReport) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Hangar GPU showback — {}</title><style>{STYLE}{COST_STYLE}</style></head><body>\
         <header><h1>Hangar GPU showback</h1><p>{} · at {} · period {} · prices in {} · Hangar {}</p></header><main>",
        esc(&r.source),
        esc(&r.source),
        esc(&r.at),
        esc(&period_text(r.period_hours)),
        esc(&r.currency),
        esc(r.tool.version)
    );
    if !r.complete {
        out.push_str("<div class=\"banner\"><b>Incomplete input.</b> Some of it could not be read (see <a href=\"#not-read\">Not read</a>); the figures miss whatever it held.</div>");
    }
    let basis = match r.basis {
        Basis::Declared => "<b>Declared, not observed.</b> The input holds no running pods, so each workload's pod template × replicas is costed as the manifests ask, priced on the GPU nodes it may run on.".to_owned(),
        Basis::Observed => format!(
            "<b>Observed.</b> {} running pod(s) hold accelerators. <i>Per hour</i> is their run rate now, <i>projected</i> that rate over the period, <i>accrued</i> what each pod has cost from its start to {}.",
            r.usage.len(),
            esc(&r.at)
        ),
    };
    let _ = write!(out, "<div class=\"note\">{basis}</div>");
    stats(&mut out, r);
    groups(&mut out, r);
    split(&mut out, r);
    idle(&mut out, r);
    lists(&mut out, r);
    items(&mut out, r);
    notes(&mut out, r);
    out.push_str("</main></body></html>\n");
    out
}

fn stats(out: &mut String, r: &CostReport) {
    let t = &r.totals;
    out.push_str("<h2>Summary</h2><div class=\"stats\">");
    let mut stat = |value: String, label: &str| {
        let _ = write!(
            out,
            "<div class=\"stat\"><b>{}</b><span>{}</span></div>",
            esc(&value),
            esc(label)
        );
    };
    let currency = &r.currency;
    stat(
        priced(t.allocated.hourly()),
        &format!("{currency} per hour, allocated"),
    );
    stat(
        priced(t.allocated.projected()),
        &format!("{currency} over the period, allocated"),
    );
    if let Some(accrued) = t.allocated.accrued {
        stat(
            money(accrued),
            &format!("{currency} accrued by running pods"),
        );
    }
    stat(trim_number(t.allocated.gpus), "GPUs allocated");
    stat(trim_number(t.idle.gpus), "GPUs idle");
    stat(
        priced(t.idle.projected()),
        &format!("{currency} idle over the period"),
    );
    stat(trim_number(t.offered.gpus), "GPUs on GPU nodes");
    let unpriced = r.unpriced_gpus();
    if unpriced > 0.0 {
        stat(trim_number(unpriced), "GPUs without a price");
    }
    out.push_str("</div>");
}

fn groups(out: &mut String, r: &CostReport) {
    let _ = write!(out, "<h2>Allocated by {}</h2>", esc(r.group_by.as_str()));
    out.push_str(&chart(r));
    out.push_str("<table><thead><tr>");
    let _ = write!(out, "<th>{}</th>", esc(r.group_by.as_str()));
    amount_headings(out, r);
    out.push_str("<th class=\"num\">inference</th></tr></thead><tbody>");
    for g in &r.groups {
        let _ = write!(out, "<tr><td>{}</td>", esc(&g.key));
        amount_cells(out, r, &g.amount);
        let _ = write!(out, "<td class=\"num\">{}</td></tr>", esc(&share(g)));
    }
    for (label, amount) in [
        ("allocated", &r.totals.allocated),
        ("idle", &r.totals.idle),
        ("GPU nodes hold", &r.totals.offered),
    ] {
        let _ = write!(out, "<tr><th>{}</th>", esc(label));
        amount_cells(out, r, amount);
        out.push_str("<td></td></tr>");
    }
    out.push_str("</tbody></table>");
    if let Some(note) = super::beyond_note(r) {
        let _ = write!(out, "<p class=\"fix\">{}</p>", esc(&note));
    }
}

fn share(g: &Group) -> String {
    if g.amount.gpus > 0.0 {
        format!("{:.0}%", 100.0 * g.inference.gpus / g.amount.gpus)
    } else {
        String::new()
    }
}

fn amount_headings(out: &mut String, r: &CostReport) {
    out.push_str("<th class=\"num\">GPUs</th><th class=\"num\">GPU-hours</th><th class=\"num\">per hour</th><th class=\"num\">projected</th>");
    if r.basis == Basis::Observed {
        out.push_str("<th class=\"num\">accrued</th>");
    }
}

fn amount_cells(out: &mut String, r: &CostReport, a: &Amount) {
    let unpriced = if a.unpriced_gpus > 0.0 {
        format!(
            " <span class=\"unpriced\" title=\"{} GPU(s) without a price are not in the money\">*</span>",
            esc(&trim_number(a.unpriced_gpus))
        )
    } else {
        String::new()
    };
    let _ = write!(
        out,
        "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}{unpriced}</td><td class=\"num\">{}</td>",
        esc(&trim_number(a.gpus)),
        esc(&number(a.gpu_hours, 1)),
        esc(&priced(a.hourly())),
        esc(&priced(a.projected()))
    );
    if r.basis == Basis::Observed {
        let accrued = priced(a.accrued);
        let _ = write!(out, "<td class=\"num\">{}</td>", esc(&accrued));
    }
}

/// A horizontal bar per group, split into inference and other work, and one for idle GPUs:
/// projected cost when prices are known, GPUs otherwise.
fn chart(r: &CostReport) -> String {
    let priced = r.has_prices();
    let metric = |a: &Amount| {
        if priced {
            a.projected().unwrap_or(0.0)
        } else {
            a.gpus
        }
    };
    let shown = |v: f64| {
        if priced {
            money(v)
        } else {
            format!("{} GPUs", trim_number(v))
        }
    };
    let mut bars: Vec<(String, f64, f64)> = r
        .groups
        .iter()
        .take(CHART_BARS)
        .map(|g| (g.key.clone(), metric(&g.inference), metric(&g.amount)))
        .collect();
    if r.groups.len() > CHART_BARS {
        let rest = &r.groups[CHART_BARS..];
        bars.push((
            format!("({} more)", rest.len()),
            rest.iter().map(|g| metric(&g.inference)).sum(),
            rest.iter().map(|g| metric(&g.amount)).sum(),
        ));
    }
    let idle = metric(&r.totals.idle);
    let largest = bars
        .iter()
        .map(|b| b.2)
        .chain([idle])
        .fold(0.0_f64, f64::max);
    if largest <= 0.0 {
        return "<p>Nothing to chart: no accelerators are allocated or idle.</p>".into();
    }
    const LABEL: f64 = 230.0;
    const BAR: f64 = 430.0;
    const ROW: f64 = 26.0;
    let rows = bars.len() + 1;
    let height = ROW * rows as f64 + 8.0;
    let what = if priced {
        format!("projected cost in {} over the period", r.currency)
    } else {
        "GPUs (no prices known)".into()
    };
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<div class=\"chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 800 {height}\" role=\"img\" aria-label=\"{}\"><title>{}</title>",
        esc(&format!("Allocated by {}: {what}", r.group_by)),
        esc(&format!("Allocated by {}: {what}", r.group_by))
    );
    let mut y = 4.0;
    let scale = |v: f64| (v / largest * BAR).max(0.0);
    for (key, inference, total) in &bars {
        let label = clip(key, 34);
        let inference_width = scale(*inference);
        let other_width = scale(total - inference);
        let _ = write!(
            svg,
            "<g><title>{}</title><text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"13\" fill=\"#1d2330\">{}</text>\
             <rect x=\"{LABEL}\" y=\"{}\" width=\"{inference_width:.1}\" height=\"18\" fill=\"{INFERENCE_FILL}\"/>\
             <rect x=\"{:.1}\" y=\"{}\" width=\"{other_width:.1}\" height=\"18\" fill=\"{OTHER_FILL}\"/>\
             <text x=\"{:.1}\" y=\"{}\" font-size=\"12\" fill=\"#5d6678\">{}</text></g>",
            esc(&format!("{key}: {}", shown(*total))),
            LABEL - 8.0,
            y + 14.0,
            esc(&label),
            y,
            LABEL + inference_width,
            y,
            LABEL + inference_width + other_width + 6.0,
            y + 14.0,
            esc(&shown(*total))
        );
        y += ROW;
    }
    let idle_width = scale(idle);
    let _ = write!(
        svg,
        "<g><title>{}</title><text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"13\" font-style=\"italic\" fill=\"#5d6678\">idle</text>\
         <rect x=\"{LABEL}\" y=\"{y}\" width=\"{idle_width:.1}\" height=\"18\" fill=\"{IDLE_FILL}\"/>\
         <text x=\"{:.1}\" y=\"{}\" font-size=\"12\" fill=\"#5d6678\">{}</text></g></svg>",
        esc(&format!("idle: {}", shown(idle))),
        LABEL - 8.0,
        y + 14.0,
        LABEL + idle_width + 6.0,
        y + 14.0,
        esc(&shown(idle))
    );
    let _ = write!(
        svg,
        "<div class=\"legend\"><i style=\"background:{INFERENCE_FILL}\"></i>inference endpoints<i style=\"background:{OTHER_FILL}\"></i>other work<i style=\"background:{IDLE_FILL}\"></i>idle (held by GPU nodes, asked for by nothing)</div></div>"
    );
    svg
}

fn split(out: &mut String, r: &CostReport) {
    out.push_str("<h2>Inference against other work</h2><table><thead><tr><th>work</th>");
    amount_headings(out, r);
    out.push_str("</tr></thead><tbody>");
    let mut row = |label: &str, a: &Amount| {
        let _ = write!(out, "<tr><td>{}</td>", esc(label));
        amount_cells(out, r, a);
        out.push_str("</tr>");
    };
    row("inference endpoints", &r.split.inference);
    row("other work", &r.split.other);
    for k in &r.split.other_by_kind {
        row(&format!("— {}", k.what), &k.amount);
    }
    out.push_str("</tbody></table>");
}

fn idle(out: &mut String, r: &CostReport) {
    out.push_str("<h2>Idle accelerators by node pool</h2>");
    if r.idle.pools.is_empty() {
        out.push_str("<p>No GPU nodes in the input.</p>");
        return;
    }
    out.push_str("<table><thead><tr><th>pool</th><th>GPU model</th><th class=\"num\">nodes</th><th class=\"num\">GPUs</th><th class=\"num\">requested</th><th class=\"num\">idle</th><th class=\"num\">idle per hour</th><th class=\"num\">idle projected</th></tr></thead><tbody>");
    for p in &r.idle.pools {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&p.pool),
            esc(p.gpu_model.as_deref().unwrap_or("mixed")),
            p.nodes,
            esc(&trim_number(p.gpus)),
            esc(&trim_number(p.requested)),
            esc(&trim_number(p.idle.gpus)),
            esc(&priced(p.idle.hourly())),
            esc(&priced(p.idle.projected()))
        );
    }
    out.push_str("</tbody></table>");
    if r.basis == Basis::Declared {
        let _ = write!(
            out,
            "<p class=\"fix\">Declared: <i>requested</i> counts the workloads that can only run in that pool. {} GPU(s) asked for by workloads that may run in several pools, or on no GPU node of the input, are subtracted from no pool, so <i>idle</i> is an upper bound.</p>",
            esc(&trim_number(r.idle.unpinned_gpus))
        );
    }
    let busy: Vec<_> = r.idle.nodes.iter().filter(|n| n.idle > 0.0).collect();
    if !busy.is_empty() {
        out.push_str("<details><summary>Idle GPUs per node</summary><table><thead><tr><th>node</th><th>pool</th><th class=\"num\">GPUs</th><th class=\"num\">idle</th><th class=\"num\">per hour</th><th>price</th></tr></thead><tbody>");
        for n in busy {
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"fix\">{}</td></tr>",
                esc(&n.node),
                esc(&n.pool),
                esc(&trim_number(n.gpus)),
                esc(&trim_number(n.idle)),
                esc(&n.hourly.map_or_else(|| "unpriced".to_owned(), money)),
                esc(&n.price_source)
            );
        }
        out.push_str("</tbody></table></details>");
    }
}

/// Batch work, pending pods and pods that waste GPU nodes.
fn lists(out: &mut String, r: &CostReport) {
    if !r.batch.is_empty() {
        out.push_str("<h2>Batch work</h2><p>Jobs and one-off pods run to completion: their run rate while running, not projected over the period.</p><table><thead><tr><th>object</th><th>what</th><th class=\"num\">GPUs</th><th class=\"num\">per hour while running</th></tr></thead><tbody>");
        for b in &r.batch {
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&b.object.to_string()),
                esc(b.what.as_deref().unwrap_or("batch")),
                esc(&trim_number(b.gpus)),
                esc(&b.hourly.map_or_else(|| "unpriced".to_owned(), money))
            );
        }
        out.push_str("</tbody></table>");
    }
    if !r.pending.is_empty() {
        out.push_str("<h2>Pending pods</h2><p>Unmet demand: not on a node, so not billed.</p><table><thead><tr><th>pod</th><th>team</th><th>asks for</th><th>scheduler says</th></tr></thead><tbody>");
        for p in &r.pending {
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.pod.to_string()),
                esc(p.team.as_deref().unwrap_or("")),
                esc(&p.accelerators.join(" ")),
                esc(p.reason.as_deref().unwrap_or(""))
            );
        }
        out.push_str("</tbody></table>");
    }
    if !r.no_gpu_pods.is_empty() {
        let _ = write!(
            out,
            "<h2>Pods on GPU nodes that ask for no GPU</h2><p>They take CPU and memory the GPUs need ({} node agent(s) not listed).</p><table><thead><tr><th>pod</th><th>node</th><th>pool</th><th>team</th><th>requests</th></tr></thead><tbody>",
            r.node_agents
        );
        for p in &r.no_gpu_pods {
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.pod.to_string()),
                esc(&p.node),
                esc(&p.pool),
                esc(p.team.as_deref().unwrap_or("")),
                esc(&p.requests)
            );
        }
        out.push_str("</tbody></table>");
    }
}

fn items(out: &mut String, r: &CostReport) {
    if r.usage.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<h2>Line items</h2><details><summary>{} line item(s)</summary><table><thead><tr><th>object</th><th>team</th><th>model</th><th>endpoint</th><th>where</th><th>asks for</th><th class=\"num\">GPUs</th><th class=\"num\">per hour</th><th class=\"num\">projected</th>{}<th>price</th></tr></thead><tbody>",
        r.usage.len(),
        if r.basis == Basis::Observed {
            "<th class=\"num\">accrued</th>"
        } else {
            ""
        }
    );
    for u in &r.usage {
        let place = u.node.clone().or(u.pool.clone()).unwrap_or_default();
        let replicas = if u.replicas > 1 {
            format!(" × {}", u.replicas)
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
            esc(&u.object.to_string()),
            esc(u.team.as_deref().unwrap_or("")),
            esc(u.model.as_deref().unwrap_or("")),
            esc(u.endpoint.as_deref().or(u.what.as_deref()).unwrap_or("")),
            esc(&place),
            esc(&format!("{}{replicas}", u.accelerators.join(" "))),
            esc(&trim_number(u.gpus)),
            esc(&u.hourly.map_or_else(|| "unpriced".to_owned(), money)),
            esc(&priced(u.projected))
        );
        if r.basis == Basis::Observed {
            let _ = write!(out, "<td class=\"num\">{}</td>", esc(&priced(u.accrued)));
        }
        let _ = write!(out, "<td class=\"fix\">{}</td></tr>", esc(&u.price_source));
    }
    out.push_str("</tbody></table></details>");
}

fn notes(out: &mut String, r: &CostReport) {
    if !r.warnings.is_empty() {
        out.push_str("<h2>Warnings</h2><ul>");
        for w in &r.warnings {
            let _ = write!(out, "<li>{}</li>", esc(w));
        }
        out.push_str("</ul>");
    }
    not_read(out, &r.errors, &r.not_covered);
}
