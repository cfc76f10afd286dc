//! A server that is up, often ready, and fails the requests it gets: the kubelet sees a healthy
//! container while every client gets an error.
//!
//! Sides, and why: a request that fails for a setting the server lacks (a base model without a
//! chat template, a broken template) is **configuration**: the flag or the model choice must
//! change, and it fails the same way for every client. The same server-side exception on every
//! request, answered with 5xx, is a **crash** in all but name and falls on **configuration** as
//! crashes do: the server build and the options it runs with. So is a serving framework (Ray
//! Serve) that keeps stopping the replicas it starts inside a container that looks healthy. One
//! client's bad request among successes is neither: it is the client's, and the pod stays healthy.

use std::sync::LazyLock;

use regex::Regex;

use crate::evidence::{ContainerEvidence, ContainerState, PodEvidence};
use crate::rules::facts::{Kubectl, main_containers, runtime_of, shorten, status_path};
use crate::rules::signatures::{Hit, Hits, Kind};
use crate::rules::steps;
use crate::verdict::{Category, Diagnosis, Evidence, Side};
use hangar_core::Runtime;

const SERVING: &[Kind] = &[
    Kind::ServingConfig,
    Kind::Exception,
    Kind::EngineDead,
    Kind::RequestFailed,
    Kind::ReplicaFailed,
    Kind::Traffic,
];

static STATUS: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r#"HTTP/1\.[01]" (\d{3})|\| (\d{3}) \|"#).ok());

static EXCEPTION: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"([A-Za-z_][\w.]*(?:Error|Exception))(?::|$)").ok());

/// The status code of an access-log line.
fn status(line: &str) -> Option<u16> {
    let captures = STATUS.as_ref()?.captures(line)?;
    captures.get(1).or(captures.get(2))?.as_str().parse().ok()
}

static PROMPT_THROUGHPUT: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"Avg prompt throughput: ([0-9.]+)").ok());

/// Whether a line shows a real request served. A probe's `GET /v1/models` answering 200, or an
/// idle engine's zero throughput, does not: they go on while every chat request fails.
fn served_a_request(hit: &Hit<'_>) -> bool {
    if hit.kind() != Kind::Traffic || hit.line.text.contains("\"GET ") {
        return false;
    }
    if hit.signature.id != "vllm-throughput" {
        return true;
    }
    PROMPT_THROUGHPUT
        .as_ref()
        .and_then(|re| re.captures(hit.line.text))
        .and_then(|m| m.get(1)?.as_str().parse::<f64>().ok())
        .is_some_and(|t| t > 0.0)
}

/// The line from its exception onwards, without the logger's prefix.
fn from_exception(line: &str) -> &str {
    EXCEPTION
        .as_ref()
        .and_then(|re| re.find(line))
        .map_or(line, |m| &line[m.start()..])
        .trim()
}

/// An exception line's class, which stays the same from one request to the next while the
/// message may carry request ids.
fn exception_class(line: &str) -> Option<&str> {
    Some(EXCEPTION.as_ref()?.captures(line)?.get(1)?.as_str())
}

/// What one container's current log says about the requests it served.
struct Requests<'a> {
    container: &'a ContainerEvidence,
    /// Lines that name a setting the server lacks.
    config: Vec<&'a Hit<'a>>,
    /// The most repeated server-side exception, with every line of it.
    repeated: Vec<&'a Hit<'a>>,
    /// Requests answered 4xx or 5xx after the first error line.
    failed: Vec<(&'a Hit<'a>, u16)>,
    /// Whether any request succeeded after the first error line.
    succeeded_since: bool,
}

impl<'a> Requests<'a> {
    fn of(hits: &'a [Hit<'a>], c: &'a ContainerEvidence) -> Option<Requests<'a>> {
        let mine: Vec<&Hit> = hits
            .iter()
            .filter(|h| std::ptr::eq(h.line.container, c) && !h.line.previous)
            .collect();
        let config: Vec<&Hit> = mine
            .iter()
            .copied()
            .filter(|h| h.kind() == Kind::ServingConfig)
            .collect();
        let mut by_class: Vec<(&str, Vec<&Hit>)> = Vec::new();
        for h in mine
            .iter()
            .filter(|h| matches!(h.kind(), Kind::Exception | Kind::EngineDead))
        {
            let class = exception_class(h.line.text).unwrap_or(h.signature.id);
            match by_class.iter_mut().find(|(k, _)| *k == class) {
                Some((_, lines)) => lines.push(h),
                None => by_class.push((class, vec![h])),
            }
        }
        let repeated = by_class
            .into_iter()
            .map(|(_, lines)| lines)
            .max_by_key(Vec::len)
            .unwrap_or_default();
        let first = config.iter().chain(&repeated).map(|h| h.line.index).min()?;
        let failed = mine
            .iter()
            .filter(|h| h.kind() == Kind::RequestFailed && h.line.index > first)
            .filter_map(|h| status(h.line.text).map(|s| (*h, s)))
            .collect();
        let succeeded_since = mine
            .iter()
            .any(|h| served_a_request(h) && h.line.index > first);
        Some(Requests {
            container: c,
            config,
            repeated,
            failed,
            succeeded_since,
        })
    }

    /// No request succeeded since the first error, which came back at least twice with requests
    /// failing: as failed requests in the access log, or, for lines that each report a refused
    /// request (a missing chat template), the lines themselves (TGI logs no access line).
    fn failing(&self, errors: usize, each_a_request: bool) -> bool {
        let failed = self
            .failed
            .iter()
            .filter(|(_, s)| each_a_request || *s >= 500)
            .count();
        !self.succeeded_since && errors >= 2 && (failed >= 2 || each_a_request)
    }
}

/// The server is up but fails every request it gets, the same way each time.
pub(crate) fn failing_requests<'a>(pod: &'a PodEvidence, scan: &Hits<'a>) -> Option<Diagnosis> {
    let hits = scan.of(SERVING);
    let running = main_containers(pod)
        .filter(|c| matches!(c.state, Some(ContainerState::Running { .. })) && c.log.is_some());
    for c in running {
        if let Some(requests) = Requests::of(&hits, c) {
            if requests.failing(requests.config.len(), true) {
                return Some(missing_setting(pod, &requests));
            }
            if requests.failing(requests.repeated.len(), false) {
                return Some(repeated_exception(pod, &requests));
            }
        }
        if let Some(diagnosis) = server_errors_only(pod, &hits, c) {
            return Some(diagnosis);
        }
    }
    replicas_keep_failing(pod, &hits)
}

/// At least this many 5xx answers in a row, with nothing served between them, make a pattern.
const SERVER_ERRORS_IN_A_ROW: usize = 3;

/// Every request since the first one that failed was answered 5xx, with no exception the other
/// checks could read: the server is up and does not serve.
fn server_errors_only(
    pod: &PodEvidence,
    hits: &[Hit<'_>],
    c: &ContainerEvidence,
) -> Option<Diagnosis> {
    let mine: Vec<&Hit> = hits
        .iter()
        .filter(|h| std::ptr::eq(h.line.container, c) && !h.line.previous)
        .collect();
    let errors: Vec<&&Hit> = mine
        .iter()
        .filter(|h| {
            h.kind() == Kind::RequestFailed && status(h.line.text).is_some_and(|s| s >= 500)
        })
        .collect();
    let first = errors.first()?;
    let served_since = mine
        .iter()
        .any(|h| served_a_request(h) && h.line.index > first.line.index);
    if errors.len() < SERVER_ERRORS_IN_A_ROW || served_since {
        return None;
    }
    let last = errors[errors.len() - 1];
    Some(Diagnosis {
        rule: "TRI-SERVING-ERRORS",
        category: Category::Crash,
        side: Some(Side::Configuration),
        confidence: 0.4,
        summary: format!(
            "Container {} is up{} but answered its last {} requests with server errors and served none: {}",
            c.name,
            if c.ready { " and ready" } else { "" },
            errors.len(),
            shorten(last.line.text.trim())
        ),
        evidence: vec![
            first.line.evidence(),
            last.line.evidence(),
            Evidence {
                source: format!("{} ({})", status_path(pod, c), pod.origin),
                text: format!(
                    "state=running ready={} restartCount={}",
                    c.ready, c.restart_count
                ),
                at: None,
            },
        ],
        next_steps: vec![
            format!(
                "Read what the server logs around a failed request: {} | grep -B 20 -m 1 \" 5[0-9][0-9] \"",
                Kubectl::of(pod).logs(&c.name, false, None)
            ),
            format!(
                "If the engine behind the API is stuck or dead, restart the pod (kubectl -n {} delete pod {}) and give it a liveness probe on the server's health path so the kubelet does it next time.",
                pod.pod.namespace, pod.pod.name
            ),
        ],
    })
}

/// A serving framework inside the container keeps stopping the replicas it starts (Ray Serve's
/// controller: `Exception in replica …, the replica will be stopped`).
fn replicas_keep_failing(pod: &PodEvidence, hits: &[Hit<'_>]) -> Option<Diagnosis> {
    let failures: Vec<&Hit> = hits
        .iter()
        .filter(|h| h.kind() == Kind::ReplicaFailed && !h.line.previous)
        .filter(|h| matches!(h.line.container.state, Some(ContainerState::Running { .. })))
        .collect();
    let first = failures.first()?;
    let c = first.line.container;
    let mine: Vec<&&Hit> = failures
        .iter()
        .filter(|h| std::ptr::eq(h.line.container, c))
        .collect();
    if mine.len() < 2 {
        return None;
    }
    // The exception the replicas die on, printed with the first failure.
    let cause = hits.iter().find(|h| {
        h.kind() == Kind::Exception
            && std::ptr::eq(h.line.tail, first.line.tail)
            && h.line.index > first.line.index
    });
    let last = mine[mine.len() - 1];
    let mut evidence = vec![first.line.evidence()];
    evidence.extend(cause.map(|h| h.line.evidence()));
    evidence.push(last.line.evidence());
    evidence.push(Evidence {
        source: format!("{} ({})", status_path(pod, c), pod.origin),
        text: format!(
            "state=running ready={} restartCount={}; {} replica failures in the log",
            c.ready,
            c.restart_count,
            mine.len()
        ),
        at: None,
    });
    Some(Diagnosis {
        rule: "TRI-SERVING-ERRORS",
        category: Category::Crash,
        side: Some(Side::Configuration),
        confidence: 0.45,
        summary: format!(
            "The serving framework in {} keeps stopping the replicas it starts ({} times){}: the container looks healthy, the model does not serve.",
            c.name,
            mine.len(),
            cause
                .map(|h| format!(", on {}", shorten(from_exception(h.line.text))))
                .unwrap_or_default()
        ),
        evidence,
        next_steps: vec![
            format!(
                "Read a replica's own log for the full traceback: kubectl -n {} exec {} -c {} -- sh -c 'ls /tmp/ray/session_latest/logs | grep -i replica'",
                pod.pod.namespace, pod.pod.name, c.name
            ),
            format!(
                "Confirm: {}",
                Kubectl::of(pod).logs(
                    &c.name,
                    false,
                    Some("replica will be stopped|failed health check|crashed")
                )
            ),
        ],
    })
}

/// Evidence shared by both verdicts: the error, the last failed request, the container's state.
fn evidence(pod: &PodEvidence, requests: &Requests<'_>, error: &Hit<'_>) -> Vec<Evidence> {
    let c = requests.container;
    let mut evidence = vec![error.line.evidence()];
    evidence.extend(requests.failed.last().map(|(h, _)| h.line.evidence()));
    evidence.push(Evidence {
        source: format!("{} ({})", status_path(pod, c), pod.origin),
        text: format!(
            "state=running ready={} restartCount={}; {} requests failed and none succeeded since the first error",
            c.ready,
            c.restart_count,
            requests.failed.len()
        ),
        at: None,
    });
    evidence
}

/// Requests fail for a setting the server lacks: no chat template for a base model.
fn missing_setting(pod: &PodEvidence, requests: &Requests<'_>) -> Diagnosis {
    let c = requests.container;
    let error = requests.config[0];
    let template = match runtime_of(pod, c) {
        Runtime::Vllm => format!(
            "Give vLLM a chat template: {} with a Jinja file mounted from a ConfigMap, or serve the model's Instruct variant, whose tokenizer defines one.",
            steps::setting(c, &["--chat-template"], "the tokenizer's own")
        ),
        Runtime::Sglang => format!(
            "Give SGLang a chat template: {}, or serve the model's Instruct variant.",
            steps::setting(c, &["--chat-template"], "the tokenizer's own")
        ),
        _ => "Give the server a chat template (its chat-template flag, or `chat_template` in tokenizer_config.json), or serve the model's Instruct variant.".into(),
    };
    Diagnosis {
        rule: "TRI-SERVING-ERRORS",
        category: Category::Config,
        side: Some(Side::Configuration),
        confidence: 0.85,
        summary: format!(
            "Container {} is up{} but fails every chat request: {}",
            c.name,
            if c.ready { " and ready" } else { "" },
            shorten(from_exception(error.line.text))
        ),
        evidence: evidence(pod, requests, error),
        next_steps: vec![
            template,
            "Clients that send raw prompts can use /v1/completions meanwhile; a base model answers chat poorly even with a template.".into(),
            format!(
                "Confirm: {}",
                Kubectl::of(pod).logs(&c.name, false, Some("chat template|chat_template|HTTP/1.1. [45]"))
            ),
        ],
    }
}

/// Every request fails with the same server-side exception and a 5xx.
fn repeated_exception(pod: &PodEvidence, requests: &Requests<'_>) -> Diagnosis {
    let c = requests.container;
    let error = requests.repeated[requests.repeated.len() - 1];
    let engine = requests
        .repeated
        .iter()
        .any(|h| h.kind() == Kind::EngineDead);
    Diagnosis {
        rule: "TRI-SERVING-ERRORS",
        category: Category::Crash,
        side: Some(Side::Configuration),
        confidence: 0.5,
        summary: format!(
            "Container {} is up{} but answers every request with a server error{}: {}",
            c.name,
            if c.ready { " and ready" } else { "" },
            if engine {
                " because its engine died"
            } else {
                ""
            },
            shorten(from_exception(error.line.text))
        ),
        evidence: evidence(pod, requests, error),
        next_steps: vec![
            format!(
                "Read the first traceback: {} | grep -m 1 -B 40 \"{}\"",
                Kubectl::of(pod).logs(&c.name, false, None),
                exception_class(error.line.text).unwrap_or("Error")
            ),
            if engine {
                format!(
                    "The engine is dead and the server will not recover by itself: restart the pod (kubectl -n {} delete pod {}), and add a liveness probe on /health so the kubelet does it next time.",
                    pod.pod.namespace, pod.pod.name
                )
            } else {
                format!(
                    "A fault of the server build or its options for this model: try the previous image tag of {} or turn off the feature the traceback names.",
                    c.image
                )
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::*;

    fn ready(lines: &[&str]) -> PodEvidence {
        let mut pod = pod_with(
            Runtime::Vllm,
            "vllm/vllm-openai:v0.6.3",
            "vllm serve meta-llama/Llama-3.1-8B",
        );
        pod.containers[0].ready = true;
        pod.containers[0].log = Some(tail(lines));
        pod
    }

    const TEMPLATE: &str = "ERROR 10-24 09:05:17 serving_chat.py:158] ValueError: As of transformers v4.44, default chat template is no longer allowed, so you must provide a chat template if the tokenizer does not define one.";
    const BAD_REQUEST: &str =
        "INFO:     10.42.3.17:41840 - \"POST /v1/chat/completions HTTP/1.1\" 400 Bad Request";
    const OK: &str = "INFO:     10.42.3.17:41840 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK";

    #[test]
    fn a_missing_chat_template_on_every_request_is_configuration() {
        let pod = ready(&[
            TEMPLATE,
            BAD_REQUEST,
            TEMPLATE,
            BAD_REQUEST,
            TEMPLATE,
            BAD_REQUEST,
        ]);
        let d = run(failing_requests, &pod).unwrap();
        assert_eq!(
            (d.category, d.side),
            (Category::Config, Some(Side::Configuration))
        );
        assert!(d.next_steps[0].contains("--chat-template"));
    }

    #[test]
    fn tgi_refusing_chat_without_a_template_is_configuration() {
        let mut pod = pod_with(
            Runtime::Tgi,
            "ghcr.io/huggingface/text-generation-inference:2.0.4",
            "text-generation-launcher --model-id m",
        );
        pod.containers[0].ready = true;
        let refused = "2024-05-08T10:00:00.000000Z ERROR chat_completions: text_generation_router::server: router/src/server.rs:1020: Template error: template not found";
        pod.containers[0].log = Some(tail(&[refused, refused]));
        assert_eq!(
            run(failing_requests, &pod).unwrap().category,
            Category::Config
        );
    }

    #[test]
    fn probes_and_idle_stats_are_not_requests_served() {
        let probe = "INFO:     10.42.0.1:50212 - \"GET /v1/models HTTP/1.1\" 200 OK";
        let idle = "INFO 10-24 09:06:00 metrics.py:345] Avg prompt throughput: 0.0 tokens/s, Avg generation throughput: 0.0 tokens/s, Running: 0 reqs";
        let pod = ready(&[TEMPLATE, BAD_REQUEST, probe, idle, TEMPLATE, BAD_REQUEST]);
        assert_eq!(
            run(failing_requests, &pod).unwrap().category,
            Category::Config
        );
    }

    #[test]
    fn one_bad_request_among_successes_is_the_clients() {
        let pod = ready(&[
            OK,
            "ERROR 07-29 10:41:02 serving_chat.py:196] ValueError: This model's maximum context length is 8192 tokens. However, you requested 9146 tokens.",
            BAD_REQUEST,
            OK,
        ]);
        assert!(run(failing_requests, &pod).is_none());
        let pod = ready(&[TEMPLATE, BAD_REQUEST, OK, TEMPLATE, BAD_REQUEST]);
        assert!(
            run(failing_requests, &pod).is_none(),
            "a request succeeded since"
        );
    }

    #[test]
    fn the_same_exception_with_a_500_on_every_request_is_a_crash() {
        let error = "ERROR 06-26 23:10:17 [serving_chat.py:201] vllm.engine.async_llm_engine.AsyncEngineDeadError: Background loop has errored already.";
        let failed = "INFO:     10.42.7.21:51244 - \"POST /v1/chat/completions HTTP/1.1\" 500 Internal Server Error";
        let d = run(
            failing_requests,
            &ready(&[error, failed, error, failed, error, failed]),
        )
        .unwrap();
        assert_eq!(
            (d.category, d.side),
            (Category::Crash, Some(Side::Configuration))
        );
        assert!(d.summary.contains("engine died"));
        let client = "ERROR 07-29 10:41:02 serving_chat.py:196] ValueError: This model's maximum context length is 8192 tokens.";
        assert!(
            run(
                failing_requests,
                &ready(&[client, BAD_REQUEST, client, BAD_REQUEST])
            )
            .is_none(),
            "4xx are client errors unless a setting is missing"
        );
    }

    #[test]
    fn only_server_errors_since_the_first_one_is_not_healthy() {
        let failed = "INFO:     10.42.7.21:51244 - \"POST /v1/chat/completions HTTP/1.1\" 500 Internal Server Error";
        let health = "INFO:     10.42.0.1:50298 - \"GET /health HTTP/1.1\" 200 OK";
        let d = run(
            failing_requests,
            &ready(&[OK, failed, health, failed, failed]),
        )
        .unwrap();
        assert_eq!(d.category, Category::Crash);
        assert!(d.summary.contains("last 3 requests"));
        assert!(run(failing_requests, &ready(&[failed, failed, OK, failed])).is_none());
        assert!(run(failing_requests, &ready(&[failed, failed])).is_none());
    }

    #[test]
    fn ray_serve_replicas_that_keep_failing_are_not_healthy() {
        let mut pod = pod_with(
            Runtime::Rayserve,
            "rayproject/ray-ml:2.40.0-py311-gpu",
            "ray start --head",
        );
        pod.containers[0].ready = true;
        let stopped = "(ServeController pid=530) ERROR 2025-01-30 11:39:18,102 controller 530 deployment_state.py:715 - Exception in replica 'default#VLLMDeployment#k2jd8', the replica will be stopped.";
        pod.containers[0].log = Some(tail(&[
            stopped,
            "(ServeController pid=530) ValueError: Unsupported LoRA config",
            stopped,
        ]));
        let d = run(failing_requests, &pod).unwrap();
        assert_eq!(d.category, Category::Crash);
        assert!(
            d.summary.contains("2 times") && d.summary.contains("ValueError"),
            "{}",
            d.summary
        );
        pod.containers[0].log = Some(tail(&[stopped]));
        assert!(
            run(failing_requests, &pod).is_none(),
            "one failed start is not a loop"
        );
    }
}
