//! From a snapshot, its inventory and log tails to verdicts per endpoint, and how they print.

use std::fmt::Write as _;

use hangar_core::snapshot::{KubeObject, Located};
use hangar_core::{Endpoint, Inventory, ObjectRef, Snapshot};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::change::{ChangeReport, correlate};
use crate::collect::{EventIndex, newest_time, pod_evidence};
use crate::evidence::{Logs, PodEvidence};
use crate::rules::diagnose;
use crate::verdict::{Category, Diagnosis, Evidence, Verdict};

/// The schema of the JSON report, versioned like the audit report's.
pub const TRIAGE_SCHEMA: &str = "hangar.dev/triage-report/v1";

/// Triage of one endpoint: the verdict for the endpoint (its most telling pod), the unhealthy pods
/// whose verdict differs, and what changed before the symptoms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointTriage {
    pub verdict: Verdict,
    /// Unhealthy pods whose category differs from the endpoint's verdict, one per category.
    pub other_pods: Vec<Verdict>,
    /// Pods examined, and how many of them are unhealthy (ended pods of a replaced revision are
    /// examined, not counted).
    pub pods: usize,
    pub unhealthy_pods: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangeReport>,
}

impl EndpointTriage {
    pub fn is_healthy(&self) -> bool {
        self.verdict.diagnosis.category == Category::Healthy
    }

    /// Whether someone must look at it: a pod is unhealthy, or the verdict names a problem. An
    /// endpoint the input holds no pods of (manifests) is `unknown` without needing attention.
    pub fn needs_attention(&self) -> bool {
        self.unhealthy_pods > 0
            || !matches!(
                self.verdict.diagnosis.category,
                Category::Healthy | Category::Unknown
            )
    }
}

/// Triages every endpoint of `inventory` (those `select` accepts), unhealthy ones first.
/// `observed_at` is when the input was read (RFC 3339), when known: now for a live cluster;
/// without it, the newest time in the snapshot.
pub fn triage(
    snapshot: &Snapshot,
    inventory: &Inventory,
    logs: &Logs,
    observed_at: Option<&str>,
    select: &dyn Fn(&Endpoint) -> bool,
) -> Vec<EndpointTriage> {
    let events = EventIndex::new(snapshot);
    // A dump records no capture time: the newest time anywhere in it is the dump's clock, the
    // same for every pod, so a pod quiet for two days is judged as quiet as it is.
    let clock = observed_at
        .map(str::to_owned)
        .or_else(|| newest_time(snapshot, &events).map(|t| t.to_string()));
    let mut out: Vec<EndpointTriage> = inventory
        .endpoints
        .iter()
        .filter(|e| select(e))
        .map(|endpoint| triage_endpoint(snapshot, endpoint, &events, logs, clock.as_deref()))
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
    let evidence: Vec<(PodEvidence, bool)> = endpoint
        .pods
        .iter()
        .filter_map(|pod| snapshot.find::<Pod>(&pod.namespace, &pod.name))
        .map(|pod| {
            let evidence = PodEvidence {
                observed_at: observed_at.map(str::to_owned),
                ..pod_evidence(pod, endpoint.runtime, snapshot, events, logs)
            };
            (evidence, superseded(snapshot, pod))
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
    // Pods of a revision the Deployment has left behind that ended come last: last week's
    // evicted pods are history, not the endpoint's state.
    let mut diagnosed: Vec<(&PodEvidence, bool, Diagnosis)> = evidence
        .iter()
        .map(|(pod, old)| (pod, *old, diagnose(pod)))
        .collect();
    diagnosed.sort_by(|(a, a_old, x), (b, b_old, y)| {
        a_old
            .cmp(b_old)
            .then(rank(x).cmp(&rank(y)))
            .then(y.confidence.total_cmp(&x.confidence))
            .then(a.pod.name.cmp(&b.pod.name))
    });
    let unhealthy: Vec<&PodEvidence> = diagnosed
        .iter()
        .filter(|(_, old, d)| !old && d.category != Category::Healthy)
        .map(|(p, _, _)| *p)
        .collect();
    let change = (!unhealthy.is_empty()).then(|| correlate(snapshot, endpoint, &unhealthy));
    let verdict_for = |pod: &PodEvidence, diagnosis: &Diagnosis| Verdict {
        endpoint: endpoint.id.clone(),
        pod: Some(pod_name(&pod.pod)),
        diagnosis: diagnosis.clone(),
    };
    let (lead_pod, _, lead) = &diagnosed[0];
    let mut seen = vec![lead.category];
    let mut other_pods = Vec::new();
    for (pod, old, diagnosis) in &diagnosed[1..] {
        if !old && diagnosis.category != Category::Healthy && !seen.contains(&diagnosis.category) {
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

/// Whether `pod` ended (Failed, Succeeded) and belongs to a ReplicaSet its Deployment has
/// replaced with a later revision.
fn superseded(snapshot: &Snapshot, pod: &Located<Pod>) -> bool {
    let ended = pod
        .object
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|phase| matches!(phase, "Failed" | "Succeeded"));
    if !ended {
        return false;
    }
    let namespace = pod.object.namespace();
    let Some(set) = owner(&pod.object.metadata, "ReplicaSet")
        .and_then(|name| snapshot.find::<ReplicaSet>(namespace, name))
    else {
        return false;
    };
    let Some(deployment) = owner(&set.object.metadata, "Deployment") else {
        return false;
    };
    let revision = |rs: &Located<ReplicaSet>| -> u64 {
        rs.object
            .annotation("deployment.kubernetes.io/revision")
            .and_then(|r| r.parse().ok())
            .unwrap_or(0)
    };
    snapshot
        .in_namespace::<ReplicaSet>(namespace)
        .filter(|rs| owner(&rs.object.metadata, "Deployment") == Some(deployment))
        .any(|rs| revision(rs) > revision(set))
}

/// The name of the object's controller of this kind, from its owner references.
fn owner<'a>(meta: &'a ObjectMeta, kind: &str) -> Option<&'a str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == kind)
        .map(|o| o.name.as_str())
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
    /// One verdict per endpoint (its most telling pod), then one per unhealthy pod whose
    /// category differs.
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
    let sick = endpoints.iter().filter(|e| e.needs_attention()).count();
    let healthy = endpoints.iter().filter(|e| e.is_healthy()).count();
    let unjudged = endpoints.len() - sick - healthy;
    let _ = write!(
        out,
        "{} endpoint(s) triaged: {sick} need attention, {healthy} healthy",
        endpoints.len(),
    );
    if unjudged > 0 {
        let _ = write!(out, ", {unjudged} not judged (no current pods read)");
    }
    out.push_str(".\n\n");
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

#[cfg(test)]
mod tests {
    use super::*;
    use hangar_core::{Policy, discover, snapshot_from_text};

    const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: vllm, namespace: ml}
spec:
  selector: {matchLabels: {app: vllm}}
  template:
    metadata: {labels: {app: vllm}}
    spec:
      containers:
        - name: vllm
          image: vllm/vllm-openai:v0.10.1
          args: [--model, m]
          resources: {limits: {nvidia.com/gpu: "1", memory: 32Gi}}
"#;

    fn replica_set(name: &str, revision: u32) -> String {
        format!(
            r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: {name}
  namespace: ml
  annotations: {{deployment.kubernetes.io/revision: "{revision}"}}
  ownerReferences: [{{apiVersion: apps/v1, kind: Deployment, name: vllm, uid: u, controller: true}}]
spec:
  selector: {{matchLabels: {{app: vllm}}}}
  template:
    metadata: {{labels: {{app: vllm}}}}
    spec:
      containers: [{{name: vllm, image: vllm/vllm-openai:v0.10.1, args: [--model, m]}}]
"#
        )
    }

    /// A pod of ReplicaSet `set` with the given `status` (YAML at four spaces' indent).
    fn pod(name: &str, set: &str, status: &str) -> String {
        format!(
            r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: ml
  labels: {{app: vllm}}
  ownerReferences: [{{apiVersion: apps/v1, kind: ReplicaSet, name: {set}, uid: u, controller: true}}]
spec:
  containers:
    - name: vllm
      image: vllm/vllm-openai:v0.10.1
      args: [--model, m]
      resources: {{limits: {{nvidia.com/gpu: "1", memory: 32Gi}}}}
status:
{status}
"#
        )
    }

    fn triage_all(documents: &[String]) -> Vec<EndpointTriage> {
        let text = documents.join("---\n");
        let snapshot = snapshot_from_text("dump.yaml", &text);
        assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
        let inventory = discover(&snapshot, &Policy::default());
        triage(&snapshot, &inventory, &Logs::default(), None, &|_| true)
    }

    const READY_SINCE_AN_OLD_OOM: &str = r#"
    phase: Running
    conditions: [{type: Ready, status: "True", lastTransitionTime: "2025-05-01T09:00:10Z"}]
    containerStatuses:
      - name: vllm
        image: vllm/vllm-openai:v0.10.1
        imageID: ""
        ready: true
        restartCount: 1
        state: {running: {startedAt: "2025-05-01T09:00:05Z"}}
        lastState: {terminated: {reason: OOMKilled, exitCode: 137, startedAt: "2025-05-01T08:00:00Z", finishedAt: "2025-05-01T09:00:00Z"}}"#;

    const SERVING: &str = r#"
    phase: Running
    conditions: [{type: Ready, status: "True", lastTransitionTime: "2025-05-01T09:00:10Z"}]
    containerStatuses:
      - {name: vllm, image: vllm/vllm-openai:v0.10.1, imageID: "", ready: true, restartCount: 0, state: {running: {startedAt: "2025-05-01T09:00:05Z"}}}"#;

    #[test]
    fn a_dump_is_judged_by_its_newest_time_not_each_pods_own() {
        // Another pod of the dump started two days after the OOM kill: the dump was taken then.
        let later = pod(
            "other-0",
            "unrelated",
            r#"    phase: Running
    startTime: "2025-05-03T09:00:00Z""#,
        );
        let documents = [
            DEPLOYMENT.to_owned(),
            replica_set("vllm-1", 1),
            pod("vllm-1-a", "vllm-1", READY_SINCE_AN_OLD_OOM),
            later,
        ];
        let results = triage_all(&documents);
        let vllm = results
            .iter()
            .find(|e| e.verdict.endpoint == "Deployment/ml/vllm")
            .unwrap();
        assert_eq!(vllm.verdict.diagnosis.category, Category::Healthy);

        // Without the later pod, the dump's clock is minutes after the kill: it is recent.
        let results = triage_all(&documents[..3]);
        assert_eq!(results[0].verdict.diagnosis.category, Category::HostOom);
    }

    #[test]
    fn ended_pods_of_a_replaced_revision_and_healthy_pods_do_not_speak_for_the_endpoint() {
        let evicted = r#"    phase: Failed
    reason: Evicted
    message: "The node was low on resource: memory. Threshold quantity: 100Mi, available: 87608Ki.""#;
        let pending = r#"    phase: Pending
    conditions: [{type: PodScheduled, status: "False", reason: Unschedulable, message: "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."}]"#;
        let documents = [
            DEPLOYMENT.to_owned(),
            replica_set("vllm-1", 1),
            replica_set("vllm-2", 2),
            pod("vllm-1-a", "vllm-1", evicted),
            pod("vllm-2-b", "vllm-2", SERVING),
            pod("vllm-2-c", "vllm-2", pending),
        ];
        let results = triage_all(&documents);
        let endpoint = &results[0];
        assert_eq!(
            endpoint.verdict.diagnosis.category,
            Category::Scheduling,
            "{:?}",
            endpoint.verdict
        );
        assert_eq!(endpoint.pods, 3);
        assert_eq!(endpoint.unhealthy_pods, 1);
        assert!(endpoint.other_pods.is_empty(), "{:?}", endpoint.other_pods);
    }
}
