//! Renderers: the same `Report`, for a terminal, for machines (JSON, SARIF) and for people
//! (Markdown, HTML).

pub(crate) mod html;
mod markdown;
mod sarif;
mod terminal;

use std::fmt;
use std::str::FromStr;

use hangar_core::inventory::Endpoint;

use crate::report::Report;

pub use terminal::TerminalStyle;

/// An output format of `hangar audit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Sarif,
    Markdown,
    Html,
}

impl Format {
    pub const NAMES: &'static str = "table, json, sarif, markdown, html";
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "table" | "text" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "sarif" => Ok(Format::Sarif),
            "markdown" | "md" => Ok(Format::Markdown),
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
            Format::Sarif => "sarif",
            Format::Markdown => "markdown",
            Format::Html => "html",
        })
    }
}

/// Renders `report` in `format`. `style` only matters for the terminal table.
pub fn render(report: &Report, format: Format, style: TerminalStyle) -> String {
    match format {
        Format::Table => terminal::render(report, style),
        Format::Json => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
        Format::Sarif => {
            serde_json::to_string_pretty(&sarif::sarif(report)).unwrap_or_default() + "\n"
        }
        Format::Markdown => markdown::render(report),
        Format::Html => html::render(report),
    }
}

/// Writes `report` in `format` to `out`. JSON is written as it is serialised: a report on a
/// large cluster is tens of megabytes, not worth holding twice.
pub fn write(
    report: &Report,
    format: Format,
    style: TerminalStyle,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, report)?;
            out.write_all(b"\n")?;
        }
        _ => out.write_all(render(report, format, style).as_bytes())?,
    }
    out.flush()
}

/// One line on how to reach the endpoint: `LoadBalancer Service/ml/chat (external)`, …
pub(crate) fn exposure_line(endpoint: &Endpoint) -> String {
    if endpoint.exposure.is_empty() {
        return "not exposed by any Service or route".into();
    }
    endpoint
        .exposure
        .iter()
        .map(|e| {
            let kind = serde_json::to_value(e.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let scope = if e.external { "external" } else { "in-cluster" };
            format!("{kind} {} ({scope})", e.via)
        })
        .chain(endpoint.gateways.iter().map(|g| {
            format!(
                "Hangar gateway {} (models {})",
                g.gateway,
                g.models.join(", ")
            )
        }))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One line on what authenticates the endpoint.
pub(crate) fn auth_line(endpoint: &Endpoint) -> String {
    let mut auth: Vec<&str> = endpoint.auth.iter().map(|a| a.detail.as_str()).collect();
    for e in &endpoint.exposure {
        auth.extend(e.auth.iter().map(|a| a.detail.as_str()));
    }
    if auth.is_empty() {
        "none found".into()
    } else {
        auth.join("; ")
    }
}

/// One line on the model: `meta-llama/Llama-3.1-8B @0e9e39f`.
pub(crate) fn model_line(endpoint: &Endpoint) -> String {
    let model = &endpoint.model;
    let mut line = model
        .name
        .clone()
        .or_else(|| model.source.clone())
        .unwrap_or_else(|| "unknown".into());
    if let Some(v) = &model.version {
        line.push_str(&format!(" @{v}"));
    }
    if let Some(d) = &model.digest {
        line.push_str(&format!(" ({})", short_digest(d)));
    }
    line
}

fn short_digest(digest: &str) -> &str {
    let cut = digest
        .char_indices()
        .nth(19)
        .map_or(digest.len(), |(i, _)| i);
    &digest[..cut]
}

/// The reasons as one line: `image vllm/vllm-openai:v0.8.5, accelerator nvidia.com/gpu=1`.
pub(crate) fn reasons_line(endpoint: &Endpoint) -> String {
    endpoint
        .reasons
        .iter()
        .map(|r| format!("{} {}", r.signal, r.detail))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a finding is: `file:line` (with the field), or the object for live scans.
pub(crate) fn location(f: &crate::check::Finding) -> String {
    let mut at = match (&f.origin.file, f.origin.line) {
        (Some(file), Some(line)) => format!("{file}:{line}"),
        (Some(file), None) => file.to_string(),
        _ => f.object.to_string(),
    };
    if let Some(field) = &f.field {
        at.push_str(&format!(" {field}"));
    }
    at
}

/// One CSV cell (RFC 4180): quoted when it holds a comma, a quote or a line break. A text a
/// spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage
/// return: names and arguments come from the manifests) is prefixed with `'`; a number, even
/// negative, is left a number.
pub fn csv_cell(text: &str) -> String {
    let formula =
        text.starts_with(['=', '+', '-', '@', '\t', '\r']) && text.parse::<f64>().is_err();
    let text = if formula {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod csv_tests {
    use super::csv_cell;

    #[test]
    fn cells_are_quoted_and_defused() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(
            csv_cell("-2+3+cmd|' /C calc'!A0"),
            "'-2+3+cmd|' /C calc'!A0"
        );
        assert_eq!(csv_cell("@SUM(1+1)"), "'@SUM(1+1)");
        assert_eq!(csv_cell("\t=1"), "'\t=1");
        assert_eq!(csv_cell("12.50"), "12.50");
        assert_eq!(csv_cell("-3.25"), "-3.25");
    }
}
