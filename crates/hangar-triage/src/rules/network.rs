//! The server cannot reach what it needs, or cannot be reached.
//!
//! A name that does not resolve or a dependency that does not answer (the model hub, an object
//! store, a Ray head) is **infrastructure**: DNS, egress policy or a proxy between the pod and
//! the world. A server that listens on 127.0.0.1 only is **configuration**: nothing outside the
//! container, the kubelet's probes included, can connect to it.

use std::sync::LazyLock;

use crate::evidence::PodEvidence;
use crate::rules::facts::{Kubectl, events, is_recent, pod_event, terminations};
use crate::rules::oom::hit_matters;
use crate::rules::signatures::{Kind, Scanner};
use crate::verdict::{Category, Diagnosis, Side};

static LOOPBACK: LazyLock<Scanner> = LazyLock::new(|| Scanner::new(&[Kind::LoopbackOnly]));

/// The server binds to loopback, so probes and Services get `connection refused`.
pub(crate) fn loopback_only(pod: &PodEvidence) -> Option<Diagnosis> {
    let hits = LOOPBACK.scan(pod);
    let hit = hits.iter().find(|h| hit_matters(pod, h))?;
    let c = hit.line.container;
    let refused = events(pod, &["Unhealthy"]).into_iter().rfind(|e| {
        e.message.contains("connection refused") && is_recent(pod, e.last_seen.as_deref())
    });
    if refused.is_none() && c.ready {
        return None;
    }
    let mut evidence = vec![hit.line.evidence()];
    evidence.extend(refused.map(|e| pod_event(pod, e)));
    let fix = if hit.signature.id == "ollama-loopback" {
        format!(
            "Set OLLAMA_HOST=0.0.0.0:11434 in `{}` (now {}).",
            c.name,
            c.env
                .get("OLLAMA_HOST")
                .map(String::as_str)
                .unwrap_or("not set; Ollama then binds 127.0.0.1")
        )
    } else {
        format!("Pass --host 0.0.0.0 to the server in `{}`.", c.name)
    };
    Some(Diagnosis {
        rule: "TRI-NET-LOOPBACK",
        category: Category::Network,
        side: Some(Side::Configuration),
        confidence: 0.92,
        summary: format!(
            "The server in {} listens on loopback only, so the kubelet's probes and the Service cannot connect.",
            c.name
        ),
        evidence,
        next_steps: vec![
            fix,
            format!(
                "Confirm: {}",
                Kubectl::of(pod).logs(
                    &c.name,
                    hit.line.previous,
                    Some("Listening|Uvicorn running")
                )
            ),
        ],
    })
}

static REACH: LazyLock<Scanner> =
    LazyLock::new(|| Scanner::new(&[Kind::NameResolution, Kind::Unreachable]));

/// A dependency's name does not resolve, or it does not answer.
pub(crate) fn unreachable(pod: &PodEvidence) -> Option<Diagnosis> {
    let hits = REACH.scan(pod);
    let relevant: Vec<_> = hits.iter().filter(|h| hit_matters(pod, h)).collect();
    let dns = relevant.iter().find(|h| h.kind() == Kind::NameResolution);
    let hit = dns.or(relevant.first())?;
    let c = hit.line.container;
    let mut evidence = vec![hit.line.evidence()];
    evidence.extend(
        terminations(pod)
            .into_iter()
            .find(|t| std::ptr::eq(t.container, c) && t.exit_code != 0 && t.matters(pod))
            .map(|t| t.evidence(pod)),
    );
    let ns = &pod.pod.namespace;
    let what = if dns.is_some() {
        "could not resolve a host name"
    } else {
        "could not connect to a dependency"
    };
    let proxy = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY"]
        .iter()
        .find_map(|k| c.env.get(*k).map(|v| format!("{k}={v}")))
        .unwrap_or_else(|| "no HTTPS_PROXY set".into());
    Some(Diagnosis {
        rule: "TRI-NET-UNREACHABLE",
        category: Category::Network,
        side: Some(Side::Infrastructure),
        confidence: if dns.is_some() { 0.88 } else { 0.8 },
        summary: format!("Container {} {what} it needs to start (model hub, object store or peer).", c.name),
        evidence,
        next_steps: vec![
            format!("Test from the pod's network: kubectl -n {ns} run nettest --rm -it --image=busybox:1.36 --restart=Never -- nslookup huggingface.co"),
            format!("Check egress NetworkPolicies and the proxy ({proxy}): kubectl -n {ns} get networkpolicy"),
            "In clusters without egress, stage the weights on a volume and set HF_HUB_OFFLINE=1 (or point the server at the local path).".into(),
            format!("Confirm: {}", Kubectl::of(pod).logs(&c.name, hit.line.previous, Some("resolve|connect|timed out|refused"))),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::*;
    use hangar_core::Runtime;

    #[test]
    fn dns_failures_are_infrastructure() {
        let mut pod = pod_with(
            Runtime::Vllm,
            "vllm/vllm-openai:v0.8.5",
            "vllm serve Qwen/Qwen3-8B",
        );
        pod.containers[0].previous_log = Some(tail(&[
            "'(MaxRetryError('HTTPSConnectionPool(host=\\'huggingface.co\\', port=443): Max retries exceeded with url: /Qwen/Qwen3-8B/resolve/main/config.json (Caused by NameResolutionError(\"<urllib3.connection.HTTPSConnection object at 0x7f>: Failed to resolve \\'huggingface.co\\' ([Errno -3] Temporary failure in name resolution)\"))'))'",
        ]));
        let d = unreachable(&pod).unwrap();
        assert_eq!(d.side, Some(Side::Infrastructure));
        assert!(d.summary.contains("could not resolve"));
    }

    #[test]
    fn loopback_binding_with_refused_probes_is_configuration() {
        let mut pod = pod_with(Runtime::Ollama, "ollama/ollama:0.6.2", "ollama serve");
        pod.containers[0].log = Some(tail(&[
            "time=2025-03-25T09:40:00.000Z level=INFO source=routes.go:1256 msg=\"Listening on 127.0.0.1:11434 (version 0.6.2)\"",
        ]));
        pod.events.push(event("Warning", "Unhealthy", "Readiness probe failed: Get \"http://10.1.2.3:11434/api/tags\": dial tcp 10.1.2.3:11434: connect: connection refused"));
        let d = loopback_only(&pod).unwrap();
        assert_eq!(d.side, Some(Side::Configuration));
        assert!(d.next_steps[0].contains("OLLAMA_HOST=0.0.0.0:11434"));
    }

    #[test]
    fn quiet_on_a_reachable_server() {
        let mut pod = pod_with(Runtime::Ollama, "ollama/ollama:0.6.2", "ollama serve");
        pod.containers[0].ready = true;
        pod.containers[0].log = Some(tail(&[
            "time=2025-03-25T09:40:00.000Z level=INFO msg=\"Listening on [::]:11434 (version 0.6.2)\"",
        ]));
        assert!(loopback_only(&pod).is_none());
        assert!(unreachable(&pod).is_none());
    }
}
