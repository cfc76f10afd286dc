//! Images that cannot be pulled.
//!
//! A tag or repository that does not exist, and a registry that refuses the credentials, are
//! **configuration**: the manifest names the wrong image or lacks the pull secret. So is
//! `imagePullPolicy: Never` on a node that does not hold the image (`ErrImageNeverPull`): the
//! manifest forbids the pull that would fix it. Rate limits, timeouts, TLS failures and a full
//! node disk are **infrastructure**: the same manifest pulls once the registry or node recovers.

use crate::evidence::{EventRecord, PodEvidence};
use crate::rules::facts::{Kubectl, events, is_recent, pod_event, waiting};
use crate::rules::signatures::Hits;
use crate::verdict::{Category, Diagnosis, Side};

const WAITING_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
];

/// The kubelet's reason, and the words of its message, for an image it may not pull.
const NEVER_PULL: &str = "ErrImageNeverPull";
const NEVER_PULL_MESSAGE: &str = "is not present with pull policy of never";

#[derive(Debug, PartialEq, Eq)]
enum Cause {
    NeverPull,
    NotFound,
    Unauthorized,
    RateLimited,
    Unreachable,
    DiskFull,
    InvalidName,
    Unknown,
}

fn cause(text: &str) -> Cause {
    let t = text.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| t.contains(n));
    if any(&["errimageneverpull", NEVER_PULL_MESSAGE]) {
        Cause::NeverPull
    } else if any(&["toomanyrequests", "429 too many requests", "rate limit"]) {
        Cause::RateLimited
    } else if any(&["no space left on device"]) {
        Cause::DiskFull
    } else if any(&["invalidimagename", "invalid reference format"]) {
        Cause::InvalidName
    } else if any(&[
        "401 unauthorized",
        "403 forbidden",
        "unauthorized",
        "authentication required",
        "access denied",
        "denied: ",
        "invalid username/password",
        "failed to fetch anonymous token",
    ]) {
        Cause::Unauthorized
    } else if any(&[
        "not found",
        "manifest unknown",
        "notfound",
        "repository does not exist",
        "name unknown",
    ]) {
        Cause::NotFound
    } else if any(&[
        "i/o timeout",
        "tls handshake timeout",
        "context deadline exceeded",
        "context canceled",
        "request canceled",
        "connection reset",
        "connection refused",
        "no such host",
        "net/http: request canceled",
        "eof",
        "x509",
    ]) {
        Cause::Unreachable
    } else {
        Cause::Unknown
    }
}

/// A kubelet event about a pull that failed, or that the pull policy forbade.
/// The image a kubelet message quotes: `… image "REF" …`.
fn quoted_image(message: &str) -> Option<String> {
    let (_, rest) = message.split_once("image \"")?;
    let (image, _) = rest.split_once('"')?;
    Some(image.to_owned())
}

fn pull_failure(event: &EventRecord) -> bool {
    event.reason == NEVER_PULL || event.message.starts_with("Failed to pull image")
}

pub(crate) fn image_pull(pod: &PodEvidence, _scan: &Hits<'_>) -> Option<Diagnosis> {
    let stuck = waiting(pod)
        .into_iter()
        .find(|w| WAITING_REASONS.contains(&w.reason));
    let failures: Vec<_> = events(pod, &["Failed", NEVER_PULL])
        .into_iter()
        // While a container still waits on the pull, the last failure explains it however old.
        .filter(|e| pull_failure(e) && (stuck.is_some() || is_recent(pod, e.last_seen.as_deref())))
        .collect();
    if stuck.is_none() && failures.is_empty() {
        return None;
    }
    let detail = failures.last().map(|e| e.message.clone()).or_else(|| {
        stuck
            .as_ref()
            .and_then(|w| w.message.map(|m| format!("{} {m}", w.reason)))
    });
    // The waiting reason says it outright, whatever an older pull failure said.
    let never_pull = stuck.as_ref().is_some_and(|w| w.reason == NEVER_PULL);
    let found = if never_pull {
        Cause::NeverPull
    } else {
        cause(
            detail
                .as_deref()
                .unwrap_or_else(|| stuck.as_ref().map(|w| w.reason).unwrap_or_default()),
        )
    };
    let container = stuck.as_ref().map(|w| w.container);
    // Without a waiting container (events only), the kubelet's message names the image:
    // `Container image "vllm/vllm-openai:v0.9" is not present…`.
    let image = (container.map(|c| c.image.clone()))
        .or_else(|| failures.iter().find_map(|e| quoted_image(&e.message)))
        .unwrap_or_default();
    let node = pod.node.as_ref().map(|n| n.name.as_str()).unwrap_or("-");
    let mut evidence = Vec::new();
    evidence.extend(stuck.as_ref().map(|w| w.evidence(pod)));
    evidence.extend(failures.iter().rev().take(2).map(|e| pod_event(pod, e)));
    let kubectl = Kubectl::of(pod);
    let secrets = format!(
        "kubectl -n {} get pod {} -o jsonpath='{{.spec.imagePullSecrets}}'",
        pod.pod.namespace, pod.pod.name
    );
    let (side, summary, mut next_steps) = match found {
        Cause::NeverPull => (
            Side::Configuration,
            format!("The image {image} is not on node {node} and the pod's imagePullPolicy is Never, so the kubelet may not pull it."),
            vec![format!("Pre-pull {image} on the GPU nodes (in the node image, or with a DaemonSet that runs it), or set imagePullPolicy: IfNotPresent so the kubelet pulls it where it is missing.")],
        ),
        Cause::NotFound => (
            Side::Configuration,
            format!("The image {image} does not exist in its registry: the repository or tag is wrong."),
            vec![format!("Check the tag exists (e.g. `crane ls {}` or the registry's UI) and fix the image in the manifest; pin a released tag or digest.", image.rsplit_once(':').map(|(r, _)| r).unwrap_or(&image))],
        ),
        Cause::Unauthorized => (
            Side::Configuration,
            format!("The registry refused to serve {image}: the pod has no valid pull secret for it."),
            vec![
                format!("Check the pod's pull secrets: {secrets}, and that the secret exists in namespace {} with credentials for the registry.", pod.pod.namespace),
                "For nvcr.io the secret's username is `$oauthtoken` and the password an NGC API key; create it with kubectl create secret docker-registry.".into(),
            ],
        ),
        Cause::InvalidName => (
            Side::Configuration,
            format!("The image reference {image} is not valid."),
            vec!["Fix the image reference in the manifest (registry/repository:tag or @sha256:digest).".into()],
        ),
        Cause::RateLimited => (
            Side::Infrastructure,
            format!("The registry rate-limited pulls of {image}."),
            vec!["Authenticate pulls (a pull secret for Docker Hub) or mirror the image into your own registry, and set imagePullPolicy: IfNotPresent.".into()],
        ),
        Cause::DiskFull => (
            Side::Infrastructure,
            format!("The node's disk is too full to unpack {image}."),
            vec!["Free the node's image filesystem (image garbage collection thresholds) or give GPU nodes larger disks: inference images run to 10-20 GB.".into()],
        ),
        Cause::Unreachable | Cause::Unknown => (
            Side::Infrastructure,
            format!("The node could not fetch {image} from its registry (network, TLS or timeout)."),
            vec!["Check the node's route to the registry (proxy, firewall, DNS) and pre-pull or mirror large serving images close to the cluster.".into()],
        ),
    };
    next_steps.push(format!("Confirm: {}", kubectl.events()));
    Some(Diagnosis {
        rule: "TRI-IMAGE-PULL",
        category: Category::ImagePull,
        side: Some(side),
        confidence: if found == Cause::Unknown { 0.7 } else { 0.92 },
        summary,
        evidence,
        next_steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::*;
    use hangar_core::Runtime;

    fn pulling(message: &str) -> PodEvidence {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.9.9", "vllm serve m");
        pod.phase = Some("Pending".into());
        pod.containers[0].state = Some(waiting_state("ImagePullBackOff"));
        pod.events.push(event("Warning", "Failed", message));
        pod
    }

    #[test]
    fn a_missing_tag_is_configuration() {
        let d = run(image_pull, &pulling("Failed to pull image \"vllm/vllm-openai:v0.9.9\": rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/vllm/vllm-openai:v0.9.9\": failed to resolve reference \"docker.io/vllm/vllm-openai:v0.9.9\": docker.io/vllm/vllm-openai:v0.9.9: not found")).unwrap();
        assert_eq!(d.side, Some(Side::Configuration));
    }

    #[test]
    fn rate_limits_are_infrastructure() {
        let d = run(image_pull, &pulling("Failed to pull image \"vllm/vllm-openai:v0.9.9\": rpc error: code = Unknown desc = failed to pull and unpack image: 429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit.")).unwrap();
        assert_eq!(d.side, Some(Side::Infrastructure));
    }

    #[test]
    fn a_pull_policy_of_never_without_the_image_is_configuration() {
        let message = "Container image \"registry.local/vllm-openai:v0.9.9\" is not present with pull policy of Never";
        let mut pod = pod_with(
            Runtime::Vllm,
            "registry.local/vllm-openai:v0.9.9",
            "vllm serve m",
        );
        pod.phase = Some("Pending".into());
        pod.containers[0].state = Some(crate::evidence::ContainerState::Waiting {
            reason: Some("ErrImageNeverPull".into()),
            message: Some(message.into()),
        });
        pod.events
            .push(event("Warning", "ErrImageNeverPull", message));
        let d = run(image_pull, &pod).unwrap();
        assert_eq!(d.side, Some(Side::Configuration));
        assert!(d.confidence > 0.9, "{}", d.confidence);
        assert!(
            d.summary.contains("imagePullPolicy is Never"),
            "{}",
            d.summary
        );
        assert!(
            d.next_steps[0].contains("Pre-pull") && d.next_steps[0].contains("IfNotPresent"),
            "{:?}",
            d.next_steps
        );
        assert!(
            d.evidence
                .iter()
                .any(|e| e.text.contains("ErrImageNeverPull"))
        );

        // The event alone, once the container status is gone, says the same, image named.
        pod.containers[0].state = None;
        let d = run(image_pull, &pod).unwrap();
        assert_eq!(d.side, Some(Side::Configuration));
        assert!(
            d.summary
                .contains("image registry.local/vllm-openai:v0.9.9 is not on"),
            "{}",
            d.summary
        );
    }

    #[test]
    fn quiet_when_the_image_is_there() {
        let pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.8.5", "vllm serve m");
        assert!(run(image_pull, &pod).is_none());
    }
}
