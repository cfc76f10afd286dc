//! SARIF 2.1.0 for GitHub code scanning and other SARIF readers.

use hangar_core::Severity;
use serde_json::{Value, json};

use crate::checks::catalogue;
use crate::frameworks::controls_for;
use crate::report::Report;

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// GitHub ranks alerts by this CVSS-like score.
fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "0.0",
    }
}

pub(super) fn sarif(report: &Report) -> Value {
    let rules: Vec<Value> = catalogue()
        .iter()
        .map(|c| {
            let controls: Vec<String> = controls_for(c.id).iter().map(|(f, ctl)| format!("{} {}", f.name, ctl.id)).collect();
            json!({
                "id": c.id,
                "name": c.title,
                "shortDescription": {"text": c.title},
                "fullDescription": {"text": c.rationale},
                "help": {
                    "text": format!("{}\n\nRemediation: {}\n\nControls: {}", c.rationale, c.remediation, controls.join(", ")),
                    "markdown": format!("{}\n\n**Remediation:** {}\n\n**Controls:** {}", c.rationale, c.remediation, controls.join(", ")),
                },
                "helpUri": format!("https://github.com/hangar-dev/hangar/blob/main/docs/checks.md#{}", c.id.to_ascii_lowercase()),
                "defaultConfiguration": {"level": level(c.severity)},
                "properties": {
                    "tags": ["security", c.family.prefix()],
                    "security-severity": security_severity(c.severity),
                    "precision": "high",
                },
            })
        })
        .collect();
    let rule_index = |id: &str| catalogue().iter().position(|c| c.id == id);

    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let finding = &f.finding;
            let mut result = json!({
                "ruleId": finding.check,
                "level": level(f.severity),
                "message": {"text": format!("{}: {} ({})", f.title, finding.message, finding.object)},
                "properties": {"severity": f.severity, "controls": f.controls, "object": finding.object},
            });
            if let Some(index) = rule_index(finding.check) {
                result["ruleIndex"] = json!(index);
            }
            let logical = json!([{"fullyQualifiedName": finding.object.to_string(), "kind": "resource"}]);
            result["locations"] = match finding.origin.file.as_deref().and_then(uri) {
                Some(uri) => {
                    let mut physical = json!({"artifactLocation": {"uri": uri}});
                    if let Some(line) = finding.origin.line {
                        physical["region"] = json!({"startLine": line});
                    }
                    json!([{"physicalLocation": physical, "logicalLocations": logical}])
                }
                None => json!([{"logicalLocations": logical}]),
            };
            if let Some(w) = &f.waiver {
                result["suppressions"] = json!([{"kind": "external", "justification": w.reason}]);
            }
            result
        })
        .collect();

    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "hangar",
                "version": report.tool.version,
                "informationUri": "https://github.com/hangar-dev/hangar",
                "rules": rules,
            }},
            "results": results,
            "invocations": [{
                "executionSuccessful": report.complete,
                "toolExecutionNotifications": report.errors.iter().map(|e| {
                    let mut n = json!({"level": "error", "message": {"text": e.message}});
                    if let Some(uri) = e.origin.file.as_deref().and_then(uri) {
                        let mut physical = json!({"artifactLocation": {"uri": uri}});
                        if let Some(line) = e.origin.line {
                            physical["region"] = json!({"startLine": line});
                        }
                        n["locations"] = json!([{"physicalLocation": physical}]);
                    }
                    n
                }).chain(report.not_covered.iter().map(|n| json!({"level": "error", "message": {"text": format!("{} not covered: {}", n.kind, n.reason)}})))
                .chain(report.gateways_not_read.iter().map(|g| json!({"level": "warning", "message": {"text": format!("Hangar gateway {} not read (the endpoints behind it are judged without it): {}", g.gateway, g.why)}})))
                .collect::<Vec<_>>(),
            }],
        }],
    })
}

/// The file as a URI GitHub maps to the repository: relative to the working directory (where
/// the scan ran, usually the checkout), forward slashes, percent-encoded; a file outside it as a
/// `file://` URI. Standard input is no file: `None`.
fn uri(file: &str) -> Option<String> {
    if file == "<stdin>" || file == "-" {
        return None;
    }
    let path = std::path::Path::new(file);
    let under = |path: &std::path::Path, cwd: &std::path::Path| {
        path.strip_prefix(cwd)
            .ok()
            .map(std::path::Path::to_path_buf)
    };
    // As written, then with links resolved (a checkout under a linked /tmp).
    let relative = std::env::current_dir().ok().and_then(|cwd| {
        under(path, &cwd).or_else(|| {
            let real = |p: &std::path::Path| std::fs::canonicalize(p).ok();
            under(&real(path)?, &real(&cwd)?)
        })
    });
    let (prefix, path) = match relative {
        Some(relative) => ("", relative),
        None if file.starts_with('/') => ("file://", path.to_path_buf()),
        // `C:\k8s\a.yaml`: the drive goes in the path, after an empty host.
        None if path.is_absolute() => ("file:///", path.to_path_buf()),
        None => ("", path.to_path_buf()),
    };
    let text = path.to_string_lossy().replace('\\', "/");
    let text = text.strip_prefix("./").unwrap_or(&text);
    Some(format!("{prefix}{}", percent_encode(text)))
}

/// Every byte but RFC 3986's unreserved characters and `/` as `%XX`.
fn percent_encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::uri;

    #[test]
    fn file_uris_are_relative_encoded_and_never_stdin() {
        assert_eq!(uri("k8s/app.yaml").as_deref(), Some("k8s/app.yaml"));
        assert_eq!(uri("./k8s/app.yaml").as_deref(), Some("k8s/app.yaml"));
        assert_eq!(
            uri("my app#1/100%.yaml").as_deref(),
            Some("my%20app%231/100%25.yaml")
        );
        let cwd = std::env::current_dir().unwrap();
        let inside = cwd.join("k8s/app.yaml");
        assert_eq!(
            uri(inside.to_str().unwrap()).as_deref(),
            Some("k8s/app.yaml")
        );
        assert_eq!(
            uri("/elsewhere/a b.yaml").as_deref(),
            Some("file:///elsewhere/a%20b.yaml")
        );
        assert_eq!(uri("<stdin>"), None);
    }
}
