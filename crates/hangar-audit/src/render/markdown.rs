//! Markdown: for pull-request comments, wikis and tickets.

use std::fmt::Write;

use hangar_core::printable::printable;

use super::{auth_line, exposure_line, location, model_line};
use crate::report::{ControlStatus, Report};

/// Escapes the characters that break a Markdown table cell or would render as HTML (names and
/// arguments come from the manifests), and writes out control characters. Backticks stay: the
/// checks' own texts write code with them, and one from a manifest cannot leave its line.
fn cell(text: &str) -> String {
    printable(&text.replace('\n', " "))
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A cell shown as code: no HTML is rendered there, but a backtick would end it, so it
/// becomes a quote.
fn code(text: &str) -> String {
    printable(&text.replace('\n', " "))
        .replace('|', "\\|")
        .replace('`', "'")
}

pub(super) fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Hangar audit\n");
    let _ = writeln!(
        out,
        "Source: `{}` · {} · Hangar {}\n",
        code(&report.source),
        report.date,
        report.tool.version
    );
    if !report.complete {
        let _ = writeln!(
            out,
            "> **Incomplete scan.** Some input could not be read (see *Not read*); this report is not a clean bill of health.\n"
        );
    }
    let counts: Vec<String> = report
        .summary
        .findings
        .iter()
        .rev()
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    let _ = writeln!(
        out,
        "**{}** objects, **{}** inference endpoints, findings: {}{}.\n",
        report.summary.objects,
        report.summary.endpoints,
        if counts.is_empty() {
            "none".to_owned()
        } else {
            counts.join(", ")
        },
        if report.summary.waived > 0 {
            format!(" ({} waived)", report.summary.waived)
        } else {
            String::new()
        }
    );

    let _ = writeln!(out, "## Endpoints\n");
    let _ = writeln!(
        out,
        "| Endpoint | Runtime | Model | Exposure | Auth | Scope | Team | Findings |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    let by_endpoint = report.findings_by_endpoint();
    for e in &report.endpoints {
        let open = by_endpoint
            .get(e.id.as_str())
            .map_or(0, |f| f.iter().filter(|f| !f.is_waived()).count());
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} |",
            code(&e.id),
            e.runtime,
            cell(&model_line(e)),
            cell(&exposure_line(e)),
            cell(&auth_line(e)),
            e.data_scope.map_or("undeclared", |s| s.as_str()),
            cell(e.team.as_deref().unwrap_or("unknown")),
            open
        );
    }

    if !report.gateways_not_read.is_empty() {
        let _ = writeln!(
            out,
            "\nHangar gateways not read (endpoints behind them are judged without them):\n"
        );
        for g in &report.gateways_not_read {
            let _ = writeln!(
                out,
                "- `{}`: {}",
                code(&g.gateway.to_string()),
                printable(&g.why)
            );
        }
    }

    let _ = writeln!(out, "\n## Findings\n");
    if report.findings.is_empty() {
        let _ = writeln!(out, "No findings.");
    } else {
        let _ = writeln!(
            out,
            "| Severity | Check | Object | Finding | Where | Remediation |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for f in &report.findings {
            let severity = match &f.waiver {
                Some(w) => format!("waived ({})", cell(&w.reason)),
                None => f.severity.to_string(),
            };
            let _ = writeln!(
                out,
                "| {severity} | [{}](docs/checks.md#{}) {} | `{}` | {} | `{}` | {} |",
                f.finding.check,
                f.finding.check.to_ascii_lowercase(),
                cell(f.title),
                code(&f.finding.object.to_string()),
                cell(&f.finding.message),
                code(&location(&f.finding)),
                cell(f.remediation)
            );
        }
    }

    let _ = writeln!(out, "\n## Controls\n");
    for framework in &report.frameworks {
        let _ = writeln!(out, "### {} {}\n", framework.name, framework.version);
        let _ = writeln!(out, "| Control | Title | Status | Findings |");
        let _ = writeln!(out, "|---|---|---|---|");
        for c in &framework.controls {
            let status = match c.status {
                ControlStatus::Failed => "❌ failed".to_owned(),
                ControlStatus::Passed => "✅ passed".to_owned(),
                ControlStatus::NotEvaluated => {
                    format!("➖ not evaluated ({})", c.reason.as_deref().unwrap_or(""))
                }
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                c.id,
                cell(&c.title),
                status,
                c.findings
            );
        }
        out.push('\n');
    }

    let w = &report.waivers;
    let _ = writeln!(
        out,
        "## Waivers\n\n{} used, {} unused, {} expired.\n",
        w.used.len(),
        w.unused.len(),
        w.expired.len()
    );
    for u in &w.used {
        let _ = writeln!(
            out,
            "- used: **{}** via {} — {} ({} finding(s))",
            printable(&u.check),
            cell(&u.source),
            cell(&u.reason),
            u.findings
        );
    }
    for u in &w.unused {
        let _ = writeln!(
            out,
            "- unused: **{}** — {}",
            printable(&u.check),
            cell(&u.reason)
        );
    }
    for e in &w.expired {
        let _ = writeln!(
            out,
            "- expired: **{}** on {} — {} (approved by {})",
            printable(&e.check),
            e.expires,
            cell(&e.reason),
            cell(&e.approver)
        );
    }

    if !report.errors.is_empty() || !report.not_covered.is_empty() {
        let _ = writeln!(out, "\n## Not read\n");
        for e in &report.errors {
            let _ = writeln!(
                out,
                "- `{}`: {}",
                code(&e.origin.to_string()),
                cell(&e.message)
            );
        }
        for n in &report.not_covered {
            let _ = writeln!(
                out,
                "- `{}` not covered: {}",
                code(&n.kind),
                cell(&n.reason)
            );
        }
    }
    out
}
