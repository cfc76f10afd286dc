//! The audit: run the catalogue over a snapshot, apply waivers, roll findings up per control.

use std::collections::{BTreeMap, HashMap};

use hangar_core::inventory::{Endpoint, GatewayNotRead, NotAnEndpoint};
use hangar_core::{
    Inventory, LoadError, NotCovered, ObjectRef, Policy, Severity, Snapshot, discover,
};
use rayon::prelude::*;
use serde::Serialize;

use crate::check::{Check, Family, Finding, Run};
use crate::checks::catalogue;
use crate::date::Date;
use crate::frameworks::{controls_for, frameworks};
use crate::waivers::{WAIVE_ANNOTATION_PREFIX, Waiver};

/// The version of the JSON report's shape. Bumped on any incompatible change.
pub const REPORT_SCHEMA: &str = "hangar.dev/audit-report/v1";

/// What to audit against.
pub struct AuditOptions<'a> {
    pub policy: &'a Policy,
    pub waivers: &'a [Waiver],
    pub today: Date,
    /// What was scanned, for the report header: paths or a cluster context.
    pub source: String,
}

/// The whole audit result; every renderer reads this.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub tool: Tool,
    pub date: String,
    pub source: String,
    /// False when something could not be read or listed: the report is then never "clean".
    pub complete: bool,
    pub summary: Summary,
    pub endpoints: Vec<Endpoint>,
    /// Findings, most severe first. Waived findings are included, marked with their waiver.
    pub findings: Vec<ReportFinding>,
    pub frameworks: Vec<FrameworkResult>,
    pub waivers: WaiverReport,
    /// What could not be read, with file and line.
    pub errors: Vec<LoadError>,
    /// Kinds a live scan could not list.
    pub not_covered: Vec<NotCovered>,
    /// Checks that did not run, and why.
    pub checks_not_run: Vec<CheckNotRun>,
    /// Accelerator workloads that are not endpoints (training, notebooks…), and why.
    pub not_endpoints: Vec<NotAnEndpoint>,
    /// Hangar gateways whose configuration could not be read, and why: the endpoints behind
    /// them are judged as if they were not there.
    pub gateways_not_read: Vec<GatewayNotRead>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub objects: usize,
    pub endpoints: usize,
    /// Unwaived findings per severity.
    pub findings: BTreeMap<Severity, usize>,
    pub waived: usize,
}

/// A finding with everything a reader needs next to it.
#[derive(Debug, Clone, Serialize)]
pub struct ReportFinding {
    #[serde(flatten)]
    pub finding: Finding,
    pub title: &'static str,
    pub severity: Severity,
    pub family: Family,
    pub remediation: &'static str,
    /// `PCI DSS 4.0.1 1.3.1`, `SOC 2 CC6.6`, …
    pub controls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiver: Option<AppliedWaiver>,
}

impl ReportFinding {
    pub fn is_waived(&self) -> bool {
        self.waiver.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedWaiver {
    /// `annotation` or `file`.
    pub source: &'static str,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckNotRun {
    pub check: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlStatus {
    Failed,
    Passed,
    NotEvaluated,
}

#[derive(Debug, Clone, Serialize)]
pub struct FrameworkResult {
    pub id: String,
    pub name: String,
    pub version: String,
    pub controls: Vec<ControlResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ControlResult {
    pub id: String,
    pub title: String,
    pub status: ControlStatus,
    /// Unwaived findings against it.
    pub findings: usize,
    pub checks: Vec<String>,
    /// Why it was not evaluated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct WaiverReport {
    pub used: Vec<WaiverUse>,
    /// File waivers in force that matched nothing: stale, or scoped wrongly.
    pub unused: Vec<Waiver>,
    /// File waivers past their date; the findings they would cover are reported.
    pub expired: Vec<Waiver>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WaiverUse {
    pub check: String,
    /// `annotation on Deployment/ns/name` or `waiver file`.
    pub source: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    pub findings: usize,
}

/// Runs every enabled check over `snapshot` and builds the report.
pub fn audit(snapshot: &Snapshot, options: &AuditOptions<'_>) -> Report {
    let policy = options.policy;
    let started = std::time::Instant::now();
    let inventory = discover(snapshot, policy);
    tracing::debug!(endpoints = inventory.endpoints.len(), elapsed = ?started.elapsed(), "inventory built");
    let mut checks_not_run = Vec::new();
    let mut runnable = Vec::new();
    for check in catalogue() {
        if policy.is_disabled(check.id) {
            checks_not_run.push(CheckNotRun {
                check: check.id,
                reason: "disabled by policy".into(),
            });
        } else if !(check.applies)(policy) {
            checks_not_run.push(CheckNotRun {
                check: check.id,
                reason: "needs policy settings that are not given (see docs/checks.md)".into(),
            });
        } else {
            runnable.push(check);
        }
    }
    let findings = run_checks(snapshot, &inventory, policy, &runnable);
    let annotation_waivers = annotation_waivers(snapshot);
    let endpoint_objects: HashMap<&str, &ObjectRef> = inventory
        .endpoints
        .iter()
        .map(|e| (e.id.as_str(), &e.object))
        .collect();

    // Every finding of a check names the same controls: work them out once per check.
    let control_labels: HashMap<&str, Vec<String>> = runnable
        .iter()
        .map(|c| {
            (
                c.id,
                controls_for(c.id)
                    .iter()
                    .map(|(f, ctl)| format!("{} {}", f.name, ctl.id))
                    .collect(),
            )
        })
        .collect();
    let mut file_uses = vec![0usize; options.waivers.len()];
    let mut annotation_uses: BTreeMap<(ObjectRef, String), usize> = BTreeMap::new();
    let mut report_findings: Vec<ReportFinding> = findings
        .into_iter()
        .filter_map(|finding| {
            let check = crate::checks::find(finding.check)?;
            let endpoint_object = finding
                .endpoint
                .as_deref()
                .and_then(|id| endpoint_objects.get(id).copied());
            let waiver = waive_by_annotation(
                &annotation_waivers,
                &finding,
                endpoint_object,
                &mut annotation_uses,
            )
            .or_else(|| waive_by_file(options, &finding, endpoint_object, &mut file_uses));
            Some(ReportFinding {
                title: check.title,
                severity: policy
                    .severity_overrides
                    .get(check.id)
                    .copied()
                    .unwrap_or(check.severity),
                family: check.family,
                remediation: check.remediation,
                controls: control_labels.get(check.id).cloned().unwrap_or_default(),
                waiver,
                finding,
            })
        })
        .collect();
    report_findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.finding.check.cmp(b.finding.check))
            .then_with(|| a.finding.object.cmp(&b.finding.object))
    });

    let complete = snapshot.errors.is_empty() && snapshot.not_covered.is_empty();
    let frameworks = roll_up(&report_findings, &checks_not_run, complete);
    let waivers = waiver_report(options, &file_uses, &annotation_uses, &annotation_waivers);
    let mut summary = Summary {
        objects: snapshot.object_count(),
        endpoints: inventory.endpoints.len(),
        ..Summary::default()
    };
    for f in &report_findings {
        if f.is_waived() {
            summary.waived += 1;
        } else {
            *summary.findings.entry(f.severity).or_default() += 1;
        }
    }
    Report {
        schema: REPORT_SCHEMA,
        tool: Tool {
            name: "hangar",
            version: env!("CARGO_PKG_VERSION"),
        },
        date: options.today.to_string(),
        source: options.source.clone(),
        complete,
        summary,
        endpoints: inventory.endpoints,
        findings: report_findings,
        frameworks,
        waivers,
        errors: snapshot.errors.clone(),
        not_covered: snapshot.not_covered.clone(),
        checks_not_run,
        not_endpoints: inventory.other_accelerator_workloads,
        gateways_not_read: inventory.gateways_not_read,
    }
}

/// Runs checks in parallel: endpoint checks fan out over endpoints, cluster checks run once.
fn run_checks(
    snapshot: &Snapshot,
    inventory: &Inventory,
    policy: &Policy,
    checks: &[&Check],
) -> Vec<Finding> {
    checks
        .par_iter()
        .flat_map_iter(|check| {
            let started = std::time::Instant::now();
            let findings = match check.run {
                Run::Endpoint(f) => inventory
                    .endpoints
                    .iter()
                    .flat_map(|e| f(snapshot, e, policy))
                    .collect::<Vec<_>>(),
                Run::Cluster(f) => f(snapshot, inventory, policy),
            };
            tracing::debug!(check = check.id, findings = findings.len(), elapsed = ?started.elapsed(), "check ran");
            findings
        })
        .collect()
}

/// `hangar.dev/waive.<CHECK>` annotations, by object and check id (upper case).
type AnnotationWaivers = HashMap<(ObjectRef, String), String>;

fn annotation_waivers(snapshot: &Snapshot) -> AnnotationWaivers {
    let mut out = HashMap::new();
    snapshot.for_each_object(|kind, meta| {
        for (key, reason) in meta.annotations.iter().flatten() {
            if let Some(check) = key.strip_prefix(WAIVE_ANNOTATION_PREFIX) {
                let object = ObjectRef::new(
                    kind,
                    meta.namespace.clone().unwrap_or_default(),
                    meta.name.clone().unwrap_or_default(),
                );
                out.insert((object, check.to_ascii_uppercase()), reason.clone());
            }
        }
    });
    out
}

fn waive_by_annotation(
    waivers: &AnnotationWaivers,
    finding: &Finding,
    endpoint_object: Option<&ObjectRef>,
    uses: &mut BTreeMap<(ObjectRef, String), usize>,
) -> Option<AppliedWaiver> {
    let check = finding.check.to_owned();
    for object in std::iter::once(&finding.object).chain(endpoint_object) {
        let key = (object.clone(), check.clone());
        if let Some(reason) = waivers.get(&key) {
            *uses.entry(key).or_default() += 1;
            return Some(AppliedWaiver {
                source: "annotation",
                reason: reason.clone(),
                approver: None,
                expires: None,
            });
        }
    }
    None
}

fn waive_by_file(
    options: &AuditOptions<'_>,
    finding: &Finding,
    endpoint_object: Option<&ObjectRef>,
    uses: &mut [usize],
) -> Option<AppliedWaiver> {
    for (i, waiver) in options.waivers.iter().enumerate() {
        if waiver.is_expired(options.today) {
            continue;
        }
        let covered = std::iter::once(&finding.object)
            .chain(endpoint_object)
            .any(|o| waiver.covers(finding.check, o));
        if covered {
            uses[i] += 1;
            return Some(AppliedWaiver {
                source: "file",
                reason: waiver.reason.clone(),
                approver: Some(waiver.approver.clone()),
                expires: Some(waiver.expires.clone()),
            });
        }
    }
    None
}

fn waiver_report(
    options: &AuditOptions<'_>,
    file_uses: &[usize],
    annotation_uses: &BTreeMap<(ObjectRef, String), usize>,
    annotations: &AnnotationWaivers,
) -> WaiverReport {
    let mut report = WaiverReport::default();
    for ((object, check), count) in annotation_uses {
        let reason = annotations
            .get(&(object.clone(), check.clone()))
            .cloned()
            .unwrap_or_default();
        report.used.push(WaiverUse {
            check: check.clone(),
            source: format!("annotation on {object}"),
            reason,
            approver: None,
            expires: None,
            findings: *count,
        });
    }
    for (key, reason) in annotations {
        let (object, check) = key;
        if !annotation_uses.contains_key(key) {
            report.unused.push(Waiver {
                check: check.clone(),
                scope: crate::waivers::WaiverScope {
                    namespace: Some(object.namespace.clone()).filter(|n| !n.is_empty()),
                    kind: Some(object.kind.clone()),
                    name: Some(object.name.clone()),
                },
                reason: reason.clone(),
                approver: "(annotation)".into(),
                expires: String::new(),
            });
        }
    }
    for (waiver, count) in options.waivers.iter().zip(file_uses) {
        if waiver.is_expired(options.today) {
            report.expired.push(waiver.clone());
        } else if *count == 0 {
            report.unused.push(waiver.clone());
        } else {
            report.used.push(WaiverUse {
                check: waiver.check.clone(),
                source: "waiver file".into(),
                reason: waiver.reason.clone(),
                approver: Some(waiver.approver.clone()),
                expires: Some(waiver.expires.clone()),
                findings: *count,
            });
        }
    }
    // By check, then by what it covers: annotations come from a map whose order changes from
    // run to run, and the report must not.
    let order = |w: &Waiver| {
        (
            w.check.clone(),
            w.scope.namespace.clone(),
            w.scope.kind.clone(),
            w.scope.name.clone(),
        )
    };
    report.unused.sort_by_key(order);
    report
}

/// Per framework and control: failed when an unwaived finding maps to it, passed when all its
/// checks ran cleanly on a complete scan, not evaluated otherwise.
fn roll_up(
    findings: &[ReportFinding],
    not_run: &[CheckNotRun],
    complete: bool,
) -> Vec<FrameworkResult> {
    let mut failing: HashMap<&str, usize> = HashMap::new();
    for f in findings.iter().filter(|f| !f.is_waived()) {
        *failing.entry(f.finding.check).or_default() += 1;
    }
    frameworks()
        .iter()
        .map(|framework| FrameworkResult {
            id: framework.id.clone(),
            name: framework.name.clone(),
            version: framework.version.clone(),
            controls: framework
                .controls
                .iter()
                .map(|control| {
                    let count: usize = control
                        .checks
                        .iter()
                        .map(|c| failing.get(c.as_str()).copied().unwrap_or(0))
                        .sum();
                    let ran = control
                        .checks
                        .iter()
                        .any(|c| !not_run.iter().any(|n| n.check == c));
                    let (status, reason) = if count > 0 {
                        (ControlStatus::Failed, None)
                    } else if control.checks.is_empty() {
                        (
                            ControlStatus::NotEvaluated,
                            Some("no automated check; needs evidence from a person".into()),
                        )
                    } else if !ran {
                        (
                            ControlStatus::NotEvaluated,
                            Some("its checks did not run".into()),
                        )
                    } else if !complete {
                        (
                            ControlStatus::NotEvaluated,
                            Some("the scan was incomplete".into()),
                        )
                    } else {
                        (ControlStatus::Passed, None)
                    };
                    ControlResult {
                        id: control.id.clone(),
                        title: control.title.clone(),
                        status,
                        findings: count,
                        checks: control.checks.clone(),
                        reason,
                    }
                })
                .collect(),
        })
        .collect()
}

impl Report {
    /// Unwaived findings at or above `threshold`.
    pub fn failing(&self, threshold: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| !f.is_waived() && f.severity >= threshold)
            .count()
    }

    /// Findings per endpoint id (waived included), most severe first.
    pub fn findings_by_endpoint(&self) -> HashMap<&str, Vec<&ReportFinding>> {
        let mut by_endpoint: HashMap<&str, Vec<&ReportFinding>> = HashMap::new();
        for f in &self.findings {
            if let Some(id) = f.finding.endpoint.as_deref() {
                by_endpoint.entry(id).or_default().push(f);
            }
        }
        by_endpoint
    }

    /// Findings that concern no endpoint (nodes, namespaces, RBAC…).
    pub fn cluster_findings(&self) -> impl Iterator<Item = &ReportFinding> {
        self.findings
            .iter()
            .filter(|f| f.finding.endpoint.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::vllm;
    use crate::waivers::WaiverFile;
    use hangar_core::snapshot_from_text;

    fn today() -> Date {
        Date::parse("2026-11-28").unwrap()
    }

    fn run(yaml: &str, policy: &Policy, waivers: &[Waiver]) -> Report {
        let snapshot = snapshot_from_text("cluster.yaml", yaml);
        audit(
            &snapshot,
            &AuditOptions {
                policy,
                waivers,
                today: today(),
                source: "test".into(),
            },
        )
    }

    fn open(report: &Report, check: &str) -> usize {
        report
            .findings
            .iter()
            .filter(|f| f.finding.check == check && !f.is_waived())
            .count()
    }

    #[test]
    fn findings_carry_title_severity_controls_and_location() {
        let report = run(&vllm(""), &Policy::default(), &[]);
        assert_eq!(report.summary.endpoints, 1);
        let f = report
            .findings
            .iter()
            .find(|f| f.finding.check == "NET-001")
            .unwrap();
        assert_eq!(f.severity, Severity::High);
        assert_eq!(f.finding.origin.file.as_deref(), Some("cluster.yaml"));
        assert_eq!(f.finding.origin.line, Some(1));
        assert!(
            f.controls.iter().any(|c| c.starts_with("PCI DSS")),
            "{:?}",
            f.controls
        );
        assert!(report.complete);
    }

    #[test]
    fn an_annotation_waives_a_check_on_its_object() {
        let yaml = vllm("").replace("metadata: {name: chat, namespace: ml}", "metadata: {name: chat, namespace: ml, annotations: {hangar.dev/waive.NET-001: \"behind the mesh\"}}");
        let report = run(&yaml, &Policy::default(), &[]);
        assert_eq!(open(&report, "NET-001"), 0);
        assert_eq!(
            report.summary.waived,
            report.findings.iter().filter(|f| f.is_waived()).count()
        );
        assert_eq!(report.waivers.used.len(), 1);
        assert_eq!(report.waivers.used[0].reason, "behind the mesh");
    }

    #[test]
    fn file_waivers_are_used_unused_or_expired() {
        let file = WaiverFile::from_yaml(
            "waivers:\n- {check: NET-001, scope: {namespace: ml}, reason: mesh, approver: a, expires: 2027-01-01}\n- {check: NET-002, scope: {namespace: other}, reason: x, approver: b, expires: 2027-01-01}\n- {check: NET-002, scope: {namespace: ml}, reason: old, approver: c, expires: 2026-01-15}\n",
        )
        .unwrap();
        let report = run(&vllm(""), &Policy::default(), &file.waivers);
        assert_eq!(open(&report, "NET-001"), 0);
        assert_eq!(
            open(&report, "NET-002"),
            1,
            "an expired waiver does not apply"
        );
        assert_eq!(report.waivers.used.len(), 1);
        assert_eq!(report.waivers.unused.len(), 1);
        assert_eq!(report.waivers.expired.len(), 1);
        assert_eq!(report.waivers.expired[0].reason, "old");
    }

    #[test]
    fn controls_fail_pass_or_are_not_evaluated() {
        let report = run(&vllm(""), &Policy::default(), &[]);
        let controls: Vec<&ControlResult> =
            report.frameworks.iter().flat_map(|f| &f.controls).collect();
        assert!(controls.iter().any(
            |c| c.status == ControlStatus::Failed && c.checks.iter().any(|id| id == "NET-001")
        ));
        assert!(
            controls
                .iter()
                .any(|c| c.status == ControlStatus::NotEvaluated && c.checks.is_empty())
        );
    }

    #[test]
    fn a_disabled_check_does_not_run_and_its_controls_are_not_passed() {
        let policy = Policy {
            disabled_checks: vec!["NET-001".into()],
            ..Policy::default()
        };
        let report = run(&vllm(""), &policy, &[]);
        assert_eq!(open(&report, "NET-001"), 0);
        assert!(report.checks_not_run.iter().any(|c| c.check == "NET-001"));
    }

    #[test]
    fn severity_overrides_apply() {
        let policy = Policy {
            severity_overrides: [("NET-001".to_owned(), Severity::Low)].into(),
            ..Policy::default()
        };
        let report = run(&vllm(""), &policy, &[]);
        let f = report
            .findings
            .iter()
            .find(|f| f.finding.check == "NET-001")
            .unwrap();
        assert_eq!(f.severity, Severity::Low);
    }

    #[test]
    fn a_scan_with_unreadable_input_is_never_clean() {
        let yaml = "apiVersion: v1\nkind: Namespace\nmetadata: {name: empty}\n---\nkind: [broken\n";
        let report = run(yaml, &Policy::default(), &[]);
        assert!(!report.complete);
        assert_eq!(report.errors.len(), 1);
        assert!(
            report
                .frameworks
                .iter()
                .flat_map(|f| &f.controls)
                .all(|c| c.status != ControlStatus::Passed)
        );
    }
}
