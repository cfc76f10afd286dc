//! The server cannot reach what it needs, or cannot be reached.
//!
//! A name that does not resolve or a dependency that does not answer (the model hub, an object
//! store, a Ray head) is **infrastructure**: DNS, egress policy or a proxy between the pod and
//! the world. So is a download that connected and then timed out or was cut off midway, when the
//! container that printed it failed on it. A server that listens on 127.0.0.1 only is
//! **configuration**: nothing outside the container, the kubelet's probes included, can connect to
//! it.

use std::sync::LazyLock;

use crate::evidence::PodEvidence;
use regex::Regex;

use crate::rules::facts::{Kubectl, container_failed, events, is_recent, pod_event, terminations};
use crate::rules::signatures::{Hits, Kind};
use crate::verdict::{Category, Diagnosis, Side};

const LOOPBACK: &[Kind] = &[Kind::LoopbackOnly];

/// The server binds to loopback, so probes and Services get `connection refused`.
pub(crate) fn loopback_only<'a>(pod: &'a PodEvidence, scan: &Hits<'a>) -> Option<Diagnosis> {
    let hits = scan.of(LOOPBACK);
    let hit = hits.iter().find(|h| scan.matters(pod, h))?;
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

const REACH: &[Kind] = &[Kind::NameResolution, Kind::Unreachable, Kind::Interrupted];

static REMOTE_HOST: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r#"host='([^']+)'|endpoint URL: "?https?://([^/"'\s]+)|https?://([^/"'\s:]+)"#).ok()
});

/// A dependency's name does not resolve, it does not answer, or a transfer from it stalls.
pub(crate) fn unreachable<'a>(pod: &'a PodEvidence, scan: &Hits<'a>) -> Option<Diagnosis> {
    let hits = scan.of(REACH);
    let relevant: Vec<_> = hits
        .iter()
        .filter(|h| scan.matters(pod, h))
        .filter(|h| h.kind() != Kind::Interrupted || container_failed(pod, h.line.container))
        .collect();
    let dns = relevant.iter().find(|h| h.kind() == Kind::NameResolution);
    let refused = relevant.iter().find(|h| h.kind() == Kind::Unreachable);
    let hit = dns.or(refused).or(relevant.first())?;
    let c = hit.line.container;
    let mut evidence = vec![hit.line.evidence()];
    evidence.extend(
        terminations(pod)
            .into_iter()
            .find(|t| std::ptr::eq(t.container, c) && t.exit_code != 0 && t.matters(pod))
            .map(|t| t.evidence(pod)),
    );
    let ns = &pod.pod.namespace;
    let host = REMOTE_HOST
        .as_ref()
        .and_then(|re| re.captures(hit.line.text))
        .and_then(|m| m.get(1).or(m.get(2)).or(m.get(3)))
        .map(|m| format!(" ({})", m.as_str()))
        .unwrap_or_default();
    let summary = match hit.kind() {
        Kind::NameResolution => format!(
            "Container {} could not resolve a host name{host} it needs to start (model hub, object store or peer).",
            c.name
        ),
        Kind::Interrupted => format!(
            "Container {} lost a download from a dependency{host} it needs to start: the connection timed out or was cut off midway.",
            c.name
        ),
        _ => format!(
            "Container {} could not connect to a dependency{host} it needs to start (model hub, object store or peer).",
            c.name
        ),
    };
    let target = REMOTE_HOST
        .as_ref()
        .and_then(|re| re.captures(hit.line.text))
        .and_then(|m| m.get(1).or(m.get(2)).or(m.get(3)))
        .map_or("huggingface.co", |m| m.as_str());
    let proxy = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY"]
        .iter()
        .find_map(|k| c.env.get(*k).map(|v| format!("{k}={v}")))
        .unwrap_or_else(|| "no HTTPS_PROXY set".into());
    Some(Diagnosis {
        rule: "TRI-NET-UNREACHABLE",
        category: Category::Network,
        side: Some(Side::Infrastructure),
        confidence: if dns.is_some() { 0.88 } else { 0.8 },
        summary,
        evidence,
        next_steps: vec![
            format!(
                "Test from the pod's network: kubectl -n {ns} run nettest --rm -it --image=busybox:1.36 --restart=Never -- {}",
                if hit.kind() == Kind::Interrupted {
                    format!("wget -q -O /dev/null -T 30 https://{target}/")
                } else {
                    format!("nslookup {target}")
                }
            ),
            format!(
                "Check egress NetworkPolicies and the proxy ({proxy}): kubectl -n {ns} get networkpolicy"
            ),
            if hit.kind() == Kind::Interrupted {
                "It connected, then stalled: look for a slow or lossy path (proxy, NAT gateway, mirror) and raise the client's timeouts (HF_HUB_DOWNLOAD_TIMEOUT for the hub); better, stage the weights once on a volume so every start does not download them.".into()
            } else {
                "In clusters without egress, stage the weights on a volume and set HF_HUB_OFFLINE=1 (or point the server at the local path).".into()
            },
            format!(
                "Confirm: {}",
                Kubectl::of(pod).logs(
                    &c.name,
                    hit.line.previous,
                    Some("resolve|connect|timed out|timeout|refused|reset")
                )
            ),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::*;
    use crate::verdict::Category;
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
        let d = run(unreachable, &pod).unwrap();
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
        let d = run(loopback_only, &pod).unwrap();
        assert_eq!(d.side, Some(Side::Configuration));
        assert!(d.next_steps[0].contains("OLLAMA_HOST=0.0.0.0:11434"));
    }

    #[test]
    fn a_download_that_times_out_in_a_failed_init_container_is_the_network() {
        let mut pod = pod_with(
            Runtime::Vllm,
            "python:3.11-slim",
            "huggingface-cli download Qwen/Qwen2.5-7B-Instruct",
        );
        pod.containers[0].init = true;
        pod.containers[0].last_state = Some(terminated(
            "Error",
            1,
            "2025-02-07T18:31:40Z",
            "2025-02-07T18:36:58Z",
        ));
        pod.containers[0].previous_log = Some(tail(&[
            "urllib3.exceptions.ReadTimeoutError: HTTPSConnectionPool(host='cdn-lfs-us-1.hf.co', port=443): Read timed out.",
        ]));
        let d = run(unreachable, &pod).unwrap();
        assert_eq!(
            (d.category, d.side),
            (Category::Network, Some(Side::Infrastructure))
        );
        assert!(
            d.summary.contains("cdn-lfs-us-1.hf.co") && d.summary.contains("cut off"),
            "{}",
            d.summary
        );

        // The same line from a server that kept running and ready is not the cause of anything.
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.8.5", "vllm serve m");
        pod.containers[0].ready = true;
        pod.containers[0].log = Some(tail(&[
            "WARNING huggingface_hub: HTTPSConnectionPool(host='huggingface.co', port=443): Read timed out.",
        ]));
        assert!(run(unreachable, &pod).is_none());
    }

    #[test]
    fn a_hub_warning_before_requests_are_served_is_not_the_cause() {
        let mut pod = pod_with(
            Runtime::Vllm,
            "vllm/vllm-openai:v0.8.5",
            "vllm serve Qwen/Qwen3-8B",
        );
        pod.containers[0].ready = true;
        pod.containers[0].log = Some(tail(&[
            "WARNING 05-01 10:00:03 [config.py:120] We couldn't connect to 'https://huggingface.co' to load this file, couldn't find it in the cached files and it looks like Qwen/Qwen3-8B is not the path to a directory containing a file named generation_config.json.",
            "INFO:     Application startup complete.",
            "INFO:     10.0.0.7:51234 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK",
        ]));
        assert!(run(unreachable, &pod).is_none());
        assert_eq!(crate::rules::diagnose(&pod).category, Category::Healthy);

        // The same line in a container that failed on it names the host without its quote.
        pod.containers[0].ready = false;
        pod.containers[0].log = None;
        pod.containers[0].state = Some(waiting_state("CrashLoopBackOff"));
        pod.containers[0].last_state = Some(terminated(
            "Error",
            1,
            "2025-05-01T10:00:00Z",
            "2025-05-01T10:00:30Z",
        ));
        pod.containers[0].previous_log = Some(tail(&[
            "OSError: We couldn't connect to 'https://huggingface.co' to load this file, couldn't find it in the cached files.",
        ]));
        let d = run(unreachable, &pod).unwrap();
        assert!(d.summary.contains("(huggingface.co)"), "{}", d.summary);
    }

    #[test]
    fn quiet_on_a_reachable_server() {
        let mut pod = pod_with(Runtime::Ollama, "ollama/ollama:0.6.2", "ollama serve");
        pod.containers[0].ready = true;
        pod.containers[0].log = Some(tail(&[
            "time=2025-03-25T09:40:00.000Z level=INFO msg=\"Listening on [::]:11434 (version 0.6.2)\"",
        ]));
        assert!(run(loopback_only, &pod).is_none());
        assert!(run(unreachable, &pod).is_none());
    }
}
