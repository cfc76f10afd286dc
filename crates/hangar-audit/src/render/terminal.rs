//! The terminal report: grouped by endpoint, readable at a glance, colour on a TTY only.

use std::fmt::Write;

use hangar_core::Severity;
use hangar_core::printable::printable;

use super::{auth_line, exposure_line, location, model_line, reasons_line};
use crate::report::{ControlStatus, Report, ReportFinding};

/// Whether to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminalStyle {
    Plain,
    Colour,
}

struct Paint(TerminalStyle);

impl Paint {
    fn code(&self, code: &str, text: &str) -> String {
        match self.0 {
            TerminalStyle::Colour => format!("\x1b[{code}m{text}\x1b[0m"),
            TerminalStyle::Plain => text.to_owned(),
        }
    }
    fn bold(&self, text: &str) -> String {
        self.code("1", text)
    }
    fn dim(&self, text: &str) -> String {
        self.code("2", text)
    }
    fn severity(&self, s: Severity) -> String {
        let label = format!("{:<8}", s.as_str().to_uppercase());
        let code = match s {
            Severity::Critical => "1;37;41",
            Severity::High => "1;31",
            Severity::Medium => "33",
            Severity::Low => "36",
            Severity::Info => "2",
        };
        self.code(code, &label)
    }
}

pub(super) fn render(report: &Report, style: TerminalStyle) -> String {
    let p = Paint(style);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}  {}",
        p.bold("Hangar audit"),
        report.tool.version,
        p.dim(&printable(&report.source))
    );
    let _ = writeln!(
        out,
        "{} objects, {} inference endpoints\n",
        report.summary.objects, report.summary.endpoints
    );

    let by_endpoint = report.findings_by_endpoint();

    for endpoint in &report.endpoints {
        let findings: &[&ReportFinding] = by_endpoint
            .get(endpoint.id.as_str())
            .map_or(&[], Vec::as_slice);
        let open = findings.iter().filter(|f| !f.is_waived()).count();
        let worst = findings
            .iter()
            .filter(|f| !f.is_waived())
            .map(|f| f.severity)
            .max();
        let marker = match worst {
            Some(s) if s >= Severity::High => p.code("31", "●"),
            Some(_) => p.code("33", "●"),
            None => p.code("32", "●"),
        };
        let _ = writeln!(
            out,
            "{marker} {}  {}  {}",
            p.bold(&printable(&endpoint.id)),
            endpoint.runtime,
            p.dim(&format!("{} finding(s)", open))
        );
        let scope = endpoint.data_scope.map_or("undeclared", |s| s.as_str());
        let team = printable(endpoint.team.as_deref().unwrap_or("unknown"));
        let _ = writeln!(out, "    model     {}", printable(&model_line(endpoint)));
        let _ = writeln!(out, "    exposure  {}", printable(&exposure_line(endpoint)));
        let _ = writeln!(out, "    auth      {}", printable(&auth_line(endpoint)));
        let _ = writeln!(
            out,
            "    scope     {scope}    team {team}    deployers {}",
            endpoint.deployers.len()
        );
        let _ = writeln!(
            out,
            "    {}",
            p.dim(&format!("why: {}", printable(&reasons_line(endpoint))))
        );
        write_findings(&mut out, &p, findings);
        out.push('\n');
    }

    if !report.gateways_not_read.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            p.bold("Hangar gateways not read — endpoints behind them are judged without them")
        );
        for g in &report.gateways_not_read {
            let _ = writeln!(
                out,
                "  {}: {}",
                printable(&g.gateway.to_string()),
                printable(&g.why)
            );
        }
        out.push('\n');
    }

    let cluster: Vec<&ReportFinding> = report.cluster_findings().collect();
    if !cluster.is_empty() {
        let _ = writeln!(out, "{}", p.bold("Cluster-wide"));
        write_findings(&mut out, &p, &cluster);
        out.push('\n');
    }

    if !report.errors.is_empty() || !report.not_covered.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            p.code("1;31", "Not read — the scan is incomplete")
        );
        for e in &report.errors {
            let object = e
                .object
                .as_deref()
                .map(|o| format!(" ({})", printable(o)))
                .unwrap_or_default();
            let origin = e.origin.to_string();
            let _ = writeln!(
                out,
                "  {}{object}: {}",
                printable(&origin),
                printable(&e.message)
            );
        }
        for n in &report.not_covered {
            let _ = writeln!(
                out,
                "  {}: not covered: {}",
                printable(&n.kind),
                printable(&n.reason)
            );
        }
        out.push('\n');
    }

    let _ = writeln!(out, "{}", p.bold("Controls"));
    for framework in &report.frameworks {
        let count = |s: ControlStatus| framework.controls.iter().filter(|c| c.status == s).count();
        let failed: Vec<&str> = framework
            .controls
            .iter()
            .filter(|c| c.status == ControlStatus::Failed)
            .map(|c| c.id.as_str())
            .collect();
        let _ = writeln!(
            out,
            "  {:<40} {} failed, {} passed, {} not evaluated{}",
            format!("{} {}", framework.name, framework.version),
            count(ControlStatus::Failed),
            count(ControlStatus::Passed),
            count(ControlStatus::NotEvaluated),
            if failed.is_empty() {
                String::new()
            } else {
                p.dim(&format!("  ({})", failed.join(", ")))
            }
        );
    }

    let w = &report.waivers;
    if !w.used.is_empty() || !w.unused.is_empty() || !w.expired.is_empty() {
        let _ = writeln!(
            out,
            "\n{}  {} used, {} unused, {} expired",
            p.bold("Waivers"),
            w.used.len(),
            w.unused.len(),
            w.expired.len()
        );
        for e in &w.expired {
            let _ = writeln!(
                out,
                "  expired {}  {} (approved by {}, expired {})",
                printable(&e.check),
                printable(&e.reason),
                printable(&e.approver),
                e.expires
            );
        }
        for u in &w.unused {
            let _ = writeln!(
                out,
                "  unused  {}  {}",
                printable(&u.check),
                printable(&u.reason)
            );
        }
    }

    let _ = writeln!(out, "\n{}", summary_line(report, &p));
    out
}

fn write_findings(out: &mut String, p: &Paint, findings: &[&ReportFinding]) {
    for f in findings {
        if let Some(w) = &f.waiver {
            let _ = writeln!(
                out,
                "    {} {}  {}  {}",
                p.dim("WAIVED  "),
                p.dim(f.finding.check),
                p.dim(f.title),
                p.dim(&format!("({})", printable(&w.reason)))
            );
            continue;
        }
        let _ = writeln!(
            out,
            "    {} {}  {}",
            p.severity(f.severity),
            f.finding.check,
            f.title
        );
        let _ = writeln!(out, "             {}", printable(&f.finding.message));
        let _ = writeln!(
            out,
            "             {}",
            p.dim(&format!("at {}", printable(&location(&f.finding))))
        );
    }
}

fn summary_line(report: &Report, p: &Paint) -> String {
    let counts: Vec<String> = Severity::ALL
        .iter()
        .filter_map(|s| report.summary.findings.get(s).map(|n| format!("{n} {s}")))
        .collect();
    let findings = if counts.is_empty() {
        "no findings".to_owned()
    } else {
        counts.join(", ")
    };
    let state = if report.complete {
        String::new()
    } else {
        p.code(
            "1;31",
            " — INCOMPLETE: some input could not be read, so this is not a clean bill of health",
        )
    };
    format!(
        "{} {findings}{}{state}",
        p.bold("Summary:"),
        if report.summary.waived > 0 {
            format!(" ({} waived)", report.summary.waived)
        } else {
            String::new()
        }
    )
}
