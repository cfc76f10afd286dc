//! From a snapshot, its inventory and log tails to verdicts per endpoint, and how they print.

use std::fmt::Write as _;

use hangar_core::{Endpoint, Inventory, ObjectRef, Snapshot};
use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

use crate::change::{ChangeReport, correlate};
use crate::collect::{EventIndex, pod_evidence};
use crate::evidence::{Logs, PodEvidence};
use crate::rules::diagnose;
use crate::verdict::{Category, Diagnosis, Evidence, Verdict};

/// The schema of the JSON report, versioned like the audit report's.
pub const TRIAGE_SCHEMA: &str = "hangar.dev/triage-report/v1";

/// Triage of one endpoint: the verdict for the endpoint (its most telling pod), the pods whose
/// verdict differs, and what changed before the symptoms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointTriage {
    pub verdict: Verdict,
    /// Pods whose category differs from the endpoint's verdict.
    pub other_pods: Vec<Verdict>,
    /// Pods examined, and how many of them are unhealthy.
    pub pods: usize,
    pub unhealthy_pods: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangeReport>,
}

impl EndpointTriage {
    pub fn is_healthy(&self) -> bool {
        self.verdict.diagnosis.category == Category::Healthy
    }
}

/// Triages every endpoint of `inventory` (those `select` accepts), unhealthy ones first.
/// `observed_at` is when the input was read (RFC 3339), when known: now for a live cluster.
pub fn triage(
    snapshot: &Snapshot,
    inventory: &Inventory,
    logs: &Logs,
    observed_at: Option<&str>,
    select: &dyn Fn(&Endpoint) -> bool,
) -> Vec<EndpointTriage> {
    let events = EventIndex::new(snapshot);
    let mut out: Vec<EndpointTriage> = inventory
        .endpoints
        .iter()
        .filter(|e| select(e))
        .map(|endpoint| triage_endpoint(snapshot, endpoint, &events, logs, observed_at))
        .collect();
    out.sort_by(|a, b| {
        rank(&a.verdict.diagnosis)
            .cmp(&rank(&b.verdict.diagnosis))
            .then(
                b.verdict
                    .diagnosis
                    .confidence
                    .total_cmp(&a.verdict.diagnosis.confidence),
            )
            .then(a.verdict.endpoint.cmp(&b.verdict.endpoint))
    });
    out
}

/// Sick first, then unknown, then healthy.
fn rank(diagnosis: &Diagnosis) -> u8 {
    match diagnosis.category {
        Category::Healthy => 2,
        Category::Unknown => 1,
        _ => 0,
    }
}

fn triage_endpoint(
    snapshot: &Snapshot,
    endpoint: &Endpoint,
    events: &EventIndex,
    logs: &Logs,
    observed_at: Option<&str>,
) -> EndpointTriage {
    let evidence: Vec<PodEvidence> = endpoint
        .pods
        .iter()
        .filter_map(|pod| snapshot.find::<Pod>(&pod.namespace, &pod.name))
        .map(|pod| PodEvidence {
            observed_at: observed_at.map(str::to_owned),
            ..pod_evidence(pod, endpoint.runtime, snapshot, events, logs)
        })
        .collect();
    if evidence.is_empty() {
        return EndpointTriage {
            verdict: Verdict {
                endpoint: endpoint.id.clone(),
                pod: None,
                diagnosis: no_pods(endpoint),
            },
            other_pods: Vec::new(),
            pods: 0,
            unhealthy_pods: 0,
            change: None,
        };
    }
    let mut diagnosed: Vec<(&PodEvidence, Diagnosis)> =
        evidence.iter().map(|pod| (pod, diagnose(pod))).collect();
    diagnosed.sort_by(|(a, x), (b, y)| {
        rank(x)
            .cmp(&rank(y))
            .then(y.confidence.total_cmp(&x.confidence))
            .then(a.pod.name.cmp(&b.pod.name))
    });
    let unhealthy: Vec<&PodEvidence> = diagnosed
        .iter()
        .filter(|(_, d)| d.category != Category::Healthy)
        .map(|(p, _)| *p)
        .collect();
    let change = (!unhealthy.is_empty()).then(|| correlate(snapshot, endpoint, &unhealthy));
    let verdict_for = |pod: &PodEvidence, diagnosis: &Diagnosis| Verdict {
        endpoint: endpoint.id.clone(),
        pod: Some(pod_name(&pod.pod)),
        diagnosis: diagnosis.clone(),
    };
    let (lead_pod, lead) = &diagnosed[0];
    let mut seen = vec![lead.category];
    let mut other_pods = Vec::new();
    for (pod, diagnosis) in &diagnosed[1..] {
        if !seen.contains(&diagnosis.category) {
            seen.push(diagnosis.category);
            other_pods.push(verdict_for(pod, diagnosis));
        }
    }
    EndpointTriage {
        verdict: verdict_for(lead_pod, lead),
        other_pods,
        pods: diagnosed.len(),
        unhealthy_pods: unhealthy.len(),
        change,
    }
}

fn pod_name(pod: &ObjectRef) -> String {
    format!("{}/{}", pod.namespace, pod.name)
}

/// An endpoint the input holds no pods for: manifests, or a scan of another namespace.
fn no_pods(endpoint: &Endpoint) -> Diagnosis {
    let ns = endpoint.namespace();
    let selector = endpoint
        .templates
        .first()
        .map(|t| {
            t.labels
                .iter()
                .filter(|(k, _)| !k.contains("pod-template-hash"))
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let get_pods = if selector.is_empty() {
        format!("kubectl -n {ns} get pods")
    } else {
        format!("kubectl -n {ns} get pods -l {selector}")
    };
    Diagnosis {
        rule: "TRI-NO-PODS",
        category: Category::Unknown,
        side: None,
        confidence: 0.0,
        summary: "The input holds no pods of this endpoint, so there is no status, event or log \
                  to judge it by."
            .into(),
        evidence: vec![Evidence {
            source: endpoint.origin.to_string(),
            text: format!(
                "{} declares the endpoint; no running pod of it was read",
                endpoint.id
            ),
            at: None,
        }],
        next_steps: vec![
            format!("Check whether it runs at all: `{get_pods}`."),
            format!(
                "Triage the live cluster (`hangar triage {} -n {ns}`) or a dump of it \
                 (`kubectl cluster-info dump --namespaces {ns} --output-directory dump/` then \
                 `hangar triage --from dump/`).",
                endpoint.object.name
            ),
        ],
    }
}

/// The whole report, as `--format json` prints it.
#[derive(Debug, Serialize)]
pub struct TriageReport<'a> {
    pub schema: &'static str,
    pub source: &'a str,
    /// One verdict per endpoint (its most telling pod), then one per pod whose category differs.
    pub verdicts: Vec<&'a Verdict>,
    pub endpoints: &'a [EndpointTriage],
    /// Input that could not be read.
    pub errors: &'a [hangar_core::LoadError],
    /// What a live read could not reach (kinds, logs).
    pub not_covered: &'a [hangar_core::NotCovered],
}

impl<'a> TriageReport<'a> {
    pub fn new(source: &'a str, snapshot: &'a Snapshot, endpoints: &'a [EndpointTriage]) -> Self {
        let verdicts = endpoints
            .iter()
            .flat_map(|e| std::iter::once(&e.verdict).chain(&e.other_pods))
            .collect();
        TriageReport {
            schema: TRIAGE_SCHEMA,
            source,
            verdicts,
            endpoints,
            errors: &snapshot.errors,
            not_covered: &snapshot.not_covered,
        }
    }
}

/// The terminal report: a summary line per endpoint, then each unhealthy endpoint in full.
pub fn render_text(endpoints: &[EndpointTriage], verbose: bool) -> String {
    let mut out = String::new();
    let sick = endpoints.iter().filter(|e| !e.is_healthy()).count();
    let _ = writeln!(
        out,
        "{} endpoint(s) triaged: {sick} need attention, {} healthy.\n",
        endpoints.len(),
        endpoints.len() - sick
    );
    for e in endpoints {
        let d = &e.verdict.diagnosis;
        let side = d.side.map(|s| s.as_str()).unwrap_or("-");
        let _ = writeln!(
            out,
            "  {:<13} {:<15} {:>4.0}%  {}  ({}/{} pods unhealthy)",
            d.category.as_str(),
            side,
            d.confidence * 100.0,
            e.verdict.endpoint,
            e.unhealthy_pods,
            e.pods
        );
    }
    for e in endpoints
        .iter()
        .filter(|e| verbose || !e.is_healthy() && e.pods > 0)
    {
        out.push('\n');
        render_verdict(&mut out, &e.verdict);
        if let Some(change) = &e.change {
            let _ = writeln!(out, "  What changed:");
            let _ = writeln!(out, "    {}", change.conclusion);
            for c in change.changes.iter().rev().take(5) {
                let _ = writeln!(out, "    - {} [{}] {}", c.at, c.side.as_str(), c.detail);
            }
        }
        for other in &e.other_pods {
            let _ = writeln!(out);
            let _ = writeln!(out, "  Another pod differs:");
            render_verdict(&mut out, other);
        }
    }
    out
}

fn render_verdict(out: &mut String, verdict: &Verdict) {
    let d = &verdict.diagnosis;
    let _ = writeln!(
        out,
        "{} — {} ({}, {:.0}% confident, rule {})",
        verdict
            .pod
            .as_deref()
            .map(|p| format!("{} pod {p}", verdict.endpoint))
            .unwrap_or_else(|| verdict.endpoint.clone()),
        d.category.as_str(),
        d.side.map(|s| s.as_str()).unwrap_or("no side"),
        d.confidence * 100.0,
        d.rule
    );
    let _ = writeln!(out, "  {}", d.summary);
    if !d.evidence.is_empty() {
        let _ = writeln!(out, "  Evidence:");
        for e in &d.evidence {
            let at =
                e.at.as_deref()
                    .map(|t| format!(" at {t}"))
                    .unwrap_or_default();
            let _ = writeln!(out, "    - {}{at}", e.source);
            let _ = writeln!(out, "      {}", e.text);
        }
    }
    if !d.next_steps.is_empty() {
        let _ = writeln!(out, "  Next steps:");
        for (i, step) in d.next_steps.iter().enumerate() {
            let _ = writeln!(out, "    {}. {step}", i + 1);
        }
    }
}
