//! A self-contained HTML report: one file, no external assets, readable offline.

use std::fmt::Write;

use hangar_core::{LoadError, NotCovered, Severity};

use super::{auth_line, exposure_line, location, model_line, reasons_line};
use crate::report::{ControlStatus, Report, ReportFinding};

pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) const STYLE: &str = r#"
:root{--bg:#f6f7f9;--card:#fff;--ink:#1d2330;--mute:#5d6678;--line:#e2e5ea;--crit:#8b0000;--high:#c62828;--med:#b7791f;--low:#2b6cb0;--info:#718096;--ok:#2f855a}
*{box-sizing:border-box}body{margin:0;font:14px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:var(--bg);color:var(--ink)}
header{background:#1d2330;color:#fff;padding:20px 32px}header h1{margin:0;font-size:22px}header p{margin:4px 0 0;color:#c5cad6}
main{padding:24px 32px;max-width:1280px;margin:auto}h2{margin:32px 0 12px;font-size:18px}
.banner{background:#fff5f5;border:1px solid #feb2b2;color:#822727;padding:12px 16px;border-radius:6px;margin-bottom:16px}
.stats{display:flex;gap:12px;flex-wrap:wrap}.stat{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 16px;min-width:120px}
.stat b{display:block;font-size:24px}.stat span{color:var(--mute)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:12px}
.card{background:var(--card);border:1px solid var(--line);border-left:5px solid var(--ok);border-radius:8px;padding:12px 16px}
.card.critical{border-left-color:var(--crit)}.card.high{border-left-color:var(--high)}.card.medium{border-left-color:var(--med)}.card.low{border-left-color:var(--low)}
.card h3{margin:0 0 6px;font-size:15px;word-break:break-all}.card dl{display:grid;grid-template-columns:80px 1fr;gap:2px 8px;margin:0}.card dt{color:var(--mute)}.card dd{margin:0;overflow-wrap:anywhere}
.why{color:var(--mute);font-size:12px;margin-top:6px;overflow-wrap:anywhere}
.sev{display:inline-block;border-radius:4px;padding:0 6px;color:#fff;font-size:12px;font-weight:600;text-transform:uppercase}
.sev.critical{background:var(--crit)}.sev.high{background:var(--high)}.sev.medium{background:var(--med)}.sev.low{background:var(--low)}.sev.info,.sev.waived{background:var(--info)}
table{width:100%;border-collapse:collapse;background:var(--card);border:1px solid var(--line)}th,td{text-align:left;padding:6px 10px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#eef0f4;font-weight:600}td code{font-size:12px;word-break:break-all}
.failed{color:var(--high);font-weight:600}.passed{color:var(--ok)}.not_evaluated{color:var(--mute)}
.fix{color:var(--mute);font-size:12px}.controls{color:var(--mute);font-size:12px}
details{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:8px 16px;margin-bottom:8px}summary{cursor:pointer;font-weight:600}
"#;

pub(super) fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Hangar audit — {}</title><style>{STYLE}</style></head><body>\
         <header><h1>Hangar audit</h1><p>{} · {} · Hangar {}</p></header><main>",
        esc(&report.source),
        esc(&report.source),
        esc(&report.date),
        esc(report.tool.version)
    );
    if !report.complete {
        out.push_str("<div class=\"banner\"><b>Incomplete scan.</b> Some input could not be read (see <a href=\"#not-read\">Not read</a>); this report is not a clean bill of health.</div>");
    }
    summary(&mut out, report);
    endpoints(&mut out, report);
    findings_table(&mut out, report);
    controls(&mut out, report);
    waivers(&mut out, report);
    not_read(&mut out, &report.errors, &report.not_covered);
    out.push_str("</main></body></html>\n");
    out
}

fn summary(out: &mut String, report: &Report) {
    out.push_str("<h2>Summary</h2><div class=\"stats\">");
    let _ = write!(
        out,
        "<div class=\"stat\"><b>{}</b><span>objects</span></div>",
        report.summary.objects
    );
    let _ = write!(
        out,
        "<div class=\"stat\"><b>{}</b><span>inference endpoints</span></div>",
        report.summary.endpoints
    );
    for s in Severity::ALL {
        let n = report.summary.findings.get(&s).copied().unwrap_or(0);
        let _ = write!(
            out,
            "<div class=\"stat\"><b>{n}</b><span class=\"sev {s}\">{s}</span></div>"
        );
    }
    let _ = write!(
        out,
        "<div class=\"stat\"><b>{}</b><span>waived</span></div></div>",
        report.summary.waived
    );
}

fn worst(findings: &[&ReportFinding]) -> &'static str {
    findings
        .iter()
        .filter(|f| !f.is_waived())
        .map(|f| f.severity)
        .max()
        .map_or("ok", Severity::as_str)
}

fn endpoints(out: &mut String, report: &Report) {
    out.push_str("<h2>Endpoints</h2><div class=\"cards\">");
    let by_endpoint = report.findings_by_endpoint();
    for e in &report.endpoints {
        let findings: &[&ReportFinding] = by_endpoint.get(e.id.as_str()).map_or(&[], Vec::as_slice);
        let open: Vec<&&ReportFinding> = findings.iter().filter(|f| !f.is_waived()).collect();
        let _ = write!(
            out,
            "<div class=\"card {}\"><h3>{}</h3><dl>",
            worst(findings),
            esc(&e.id)
        );
        let rows = [
            ("runtime", e.runtime.to_string()),
            ("model", model_line(e)),
            ("exposure", exposure_line(e)),
            ("auth", auth_line(e)),
            (
                "scope",
                e.data_scope.map_or("undeclared", |s| s.as_str()).to_owned(),
            ),
            ("team", e.team.clone().unwrap_or_else(|| "unknown".into())),
            (
                "deployers",
                e.deployers
                    .iter()
                    .map(|d| d.subject.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("findings", open.len().to_string()),
        ];
        for (k, v) in rows {
            let _ = write!(out, "<dt>{k}</dt><dd>{}</dd>", esc(&v));
        }
        out.push_str("</dl>");
        for f in &open {
            let _ = write!(
                out,
                "<div><span class=\"sev {}\">{}</span> {} {}</div>",
                f.severity,
                f.severity,
                esc(f.finding.check),
                esc(f.title)
            );
        }
        let _ = write!(
            out,
            "<div class=\"why\">why: {}</div></div>",
            esc(&reasons_line(e))
        );
    }
    out.push_str("</div>");
    if !report.gateways_not_read.is_empty() {
        out.push_str(
            "<p>Hangar gateways not read (endpoints behind them are judged without them):</p><ul>",
        );
        for g in &report.gateways_not_read {
            let _ = write!(
                out,
                "<li><code>{}</code>: {}</li>",
                esc(&g.gateway.to_string()),
                esc(&g.why)
            );
        }
        out.push_str("</ul>");
    }
}

fn findings_table(out: &mut String, report: &Report) {
    out.push_str("<h2>Findings</h2>");
    if report.findings.is_empty() {
        out.push_str("<p>No findings.</p>");
        return;
    }
    out.push_str("<table><thead><tr><th>Severity</th><th>Check</th><th>Object</th><th>Finding and remediation</th><th>Where</th></tr></thead><tbody>");
    for f in &report.findings {
        let severity = match &f.waiver {
            Some(w) => format!(
                "<span class=\"sev waived\" title=\"{}\">waived</span>",
                esc(&w.reason)
            ),
            None => format!("<span class=\"sev {0}\">{0}</span>", f.severity),
        };
        let _ = write!(
            out,
            "<tr id=\"f-{}\"><td>{severity}</td><td><b>{}</b><br>{}</td><td><code>{}</code></td><td>{}<div class=\"fix\">Fix: {}</div><div class=\"controls\">{}</div></td><td><code>{}</code></td></tr>",
            esc(f.finding.check),
            esc(f.finding.check),
            esc(f.title),
            esc(&f.finding.object.to_string()),
            esc(&f.finding.message),
            esc(f.remediation),
            esc(&f.controls.join(" · ")),
            esc(&location(&f.finding))
        );
    }
    out.push_str("</tbody></table>");
}

fn controls(out: &mut String, report: &Report) {
    out.push_str("<h2>Controls</h2>");
    for framework in &report.frameworks {
        let count = |s: ControlStatus| framework.controls.iter().filter(|c| c.status == s).count();
        let _ = write!(
            out,
            "<details open><summary>{} {} — {} failed, {} passed, {} not evaluated</summary><table><thead><tr><th>Control</th><th>Title</th><th>Status</th><th>Findings</th></tr></thead><tbody>",
            esc(&framework.name),
            esc(&framework.version),
            count(ControlStatus::Failed),
            count(ControlStatus::Passed),
            count(ControlStatus::NotEvaluated)
        );
        for c in &framework.controls {
            let (class, label) = match c.status {
                ControlStatus::Failed => ("failed", "failed".to_owned()),
                ControlStatus::Passed => ("passed", "passed".to_owned()),
                ControlStatus::NotEvaluated => (
                    "not_evaluated",
                    format!("not evaluated — {}", c.reason.as_deref().unwrap_or("")),
                ),
            };
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"{class}\">{}</td><td>{}</td></tr>",
                esc(&c.id),
                esc(&c.title),
                esc(&label),
                c.findings
            );
        }
        out.push_str("</tbody></table></details>");
    }
}

fn waivers(out: &mut String, report: &Report) {
    let w = &report.waivers;
    let _ = write!(
        out,
        "<h2>Waivers</h2><p>{} used, {} unused, {} expired.</p><ul>",
        w.used.len(),
        w.unused.len(),
        w.expired.len()
    );
    for u in &w.used {
        let _ = write!(
            out,
            "<li>used: <b>{}</b> via {} — {} ({} finding(s))</li>",
            esc(&u.check),
            esc(&u.source),
            esc(&u.reason),
            u.findings
        );
    }
    for u in &w.unused {
        let _ = write!(
            out,
            "<li>unused: <b>{}</b> — {}</li>",
            esc(&u.check),
            esc(&u.reason)
        );
    }
    for e in &w.expired {
        let _ = write!(
            out,
            "<li>expired: <b>{}</b> on {} — {} (approved by {})</li>",
            esc(&e.check),
            esc(&e.expires),
            esc(&e.reason),
            esc(&e.approver)
        );
    }
    out.push_str("</ul>");
}

/// The "Not read" section: input errors and kinds a live read could not list. Shared by the
/// audit report and the cost page.
pub(crate) fn not_read(out: &mut String, errors: &[LoadError], not_covered: &[NotCovered]) {
    if errors.is_empty() && not_covered.is_empty() {
        return;
    }
    out.push_str("<h2 id=\"not-read\">Not read</h2><ul>");
    for e in errors {
        let _ = write!(
            out,
            "<li><code>{}</code>: {}</li>",
            esc(&e.origin.to_string()),
            esc(&e.message)
        );
    }
    for n in not_covered {
        let _ = write!(
            out,
            "<li><code>{}</code> not covered: {}</li>",
            esc(&n.kind),
            esc(&n.reason)
        );
    }
    out.push_str("</ul>");
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<script>alert('x')</script>&"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"
        );
    }
}
