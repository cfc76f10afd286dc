//! MOD: whether the image and the weights an endpoint serves are the ones someone approved,
//! and who may change them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use hangar_core::image::ImageRef;
use hangar_core::inventory::Endpoint;
use hangar_core::rbac::Subject;
use hangar_core::workload::PodTemplate;
use hangar_core::{Inventory, KubeObject, Policy, Runtime, Severity, Snapshot};
use k8s_openapi::api::core::v1::{Container, Namespace};
use regex::Regex;
use serde_json::Value;

use super::secrets::{finding_on_binding, list_some};
use crate::check::{Check, Family, Finding, Run, always};

pub(crate) const CHECKS: &[Check] = &[
    Check {
        id: "MOD-001",
        family: Family::ModelVersioning,
        title: "Model server image with a mutable tag",
        severity: Severity::High,
        rationale: "A tag such as `latest` or none at all resolves to whatever was pushed last: two pods of one endpoint can run different servers, and nobody can say which version served a given request (PCI DSS 6.5.1, OWASP LLM03).",
        remediation: "Use a release tag and pin the digest: `image: vllm/vllm-openai:v0.11.0@sha256:…` (`crane digest` or `docker buildx imagetools inspect` prints it).",
        run: Run::Endpoint(mutable_image_tags),
        applies: always,
    },
    Check {
        id: "MOD-002",
        family: Family::ModelVersioning,
        title: "Image pinned by tag but not by digest",
        severity: Severity::Low,
        rationale: "Registries let tags be re-pushed: a release tag is a convention, a digest is a guarantee that the bytes reviewed are the bytes running.",
        remediation: "Append the digest to the reference (`:v0.11.0@sha256:…`), and let a bot such as Renovate keep tag and digest up to date.",
        run: Run::Endpoint(images_without_digest),
        applies: always,
    },
    Check {
        id: "MOD-003",
        family: Family::ModelVersioning,
        title: "Model weights not pinned to a revision or digest",
        severity: Severity::Medium,
        rationale: "A hub model without a revision, an unversioned bucket path or an Ollama `latest` tag loads whatever the source holds when the pod starts: the weights can change, or be poisoned, with no change to the manifest (OWASP LLM03/LLM04, PCI DSS 6.5.1).",
        remediation: "Pin the weights: `--revision <commit sha>` for hub models, a versioned path or object version (`s3://models/fraud/v3/`) or a digest for storage URIs, an explicit tag for Ollama models; record it in `hangar.dev/model-version`.",
        run: Run::Endpoint(unpinned_weights),
        applies: always,
    },
    Check {
        id: "MOD-004",
        family: Family::ModelVersioning,
        title: "Missing model, version or owner metadata",
        severity: Severity::Low,
        rationale: "An inventory of models in production (PCI DSS 6.3.2, 12.5.1) needs each endpoint to say which model and version it serves and which team answers for it.",
        remediation: "Label the endpoint with `hangar.dev/model`, `hangar.dev/model-version` and a team label (`team`, `hangar.dev/team`, or one listed in the policy's `teamLabels`), on the object or its namespace.",
        run: Run::Endpoint(missing_metadata),
        applies: always,
    },
    Check {
        id: "MOD-005",
        family: Family::ModelVersioning,
        title: "Image outside approved registries",
        severity: Severity::High,
        rationale: "Images from registries nobody vetted bypass the scanning, signing and provenance controls the approved registries enforce (OWASP LLM03, SOC 2 CC8.1).",
        remediation: "Mirror the image into an approved registry (or add its registry to `approvedRegistries` after review) and reference it from there.",
        run: Run::Endpoint(unapproved_images),
        applies: has_approved_registries,
    },
    Check {
        id: "MOD-006",
        family: Family::ModelVersioning,
        title: "Model source outside approved registries",
        severity: Severity::High,
        rationale: "Weights pulled from an unvetted hub repository or bucket can carry backdoors or poisoned behaviour that no image scan sees (OWASP LLM03/LLM04).",
        remediation: "Copy the reviewed weights into an approved model store (`s3://models-prod/…`, an internal hub mirror) and load them from there, or add the source to `approvedRegistries` after review.",
        run: Run::Endpoint(unapproved_model_sources),
        applies: has_approved_registries,
    },
    Check {
        id: "MOD-007",
        family: Family::ModelVersioning,
        title: "Too many principals may change the endpoint",
        severity: Severity::High,
        rationale: "Everyone who may create, patch or exec into an inference workload can swap its model or read its traffic; change management (PCI DSS 6.5.1-6.5.2, 7.2, SOC 2 CC8.1) needs that circle to be small and named.",
        remediation: "Let a deployment pipeline's service account change inference workloads, bind people to read-only roles, and remove bindings to broad groups; raise `maxDeployers` only with a documented reason.",
        run: Run::Endpoint(too_many_deployers),
        applies: always,
    },
    Check {
        id: "MOD-008",
        family: Family::ModelVersioning,
        title: "No separation between production and non-production deploy rights",
        severity: Severity::Medium,
        rationale: "A principal that may change inference workloads in both a development and a production namespace carries untested models and test credentials across the boundary PCI DSS 6.5.3 asks for.",
        remediation: "Give production its own deployer (a pipeline service account with an approval step) and keep people's write access to non-production namespaces.",
        run: Run::Cluster(shared_deployers),
        applies: always,
    },
    Check {
        id: "MOD-009",
        family: Family::ModelVersioning,
        title: "No staged rollout path",
        severity: Severity::Low,
        rationale: "When the only way to ship a model is to edit the workload, a new version takes all traffic as soon as its pods are ready, with no canary, analysis or one-step rollback (PCI DSS 6.5.1 back-out procedures).",
        remediation: "Release models through a ModelRelease (`hangar.dev/release` label), an Argo Rollout with `workloadRef`, a Flagger Canary, or KServe `canaryTrafficPercent`.",
        run: Run::Endpoint(no_staged_rollout),
        applies: always,
    },
    Check {
        id: "MOD-010",
        family: Family::ModelVersioning,
        title: "Weights downloaded from the internet at start-up",
        severity: Severity::Medium,
        rationale: "A pod that fetches its weights from a public hub each time it starts trusts that hub at every restart: the repository can change, disappear or be compromised, and start-up fails when it is unreachable (OWASP LLM03).",
        remediation: "Stage reviewed weights in an internal store or a pre-populated volume, point the server at the local path, and set `HF_HUB_OFFLINE=1` so it never reaches the hub.",
        run: Run::Endpoint(downloads_at_start),
        applies: always,
    },
];

/// Registry checks mean nothing without a list of approved registries.
fn has_approved_registries(policy: &Policy) -> bool {
    !policy.approved_registries.is_empty()
}

use hangar_core::inventory::{MODEL_LABEL, MODEL_VERSION_LABEL};
const RELEASE_LABEL: &str = "hangar.dev/release";

// ---------------------------------------------------------------------------------------------
// Images: MOD-001, MOD-002, MOD-005

/// Every container with a non-empty image.
fn images(endpoint: &Endpoint) -> impl Iterator<Item = (&PodTemplate, String, &Container, &str)> {
    endpoint.containers().filter_map(|(t, path, c)| {
        c.image
            .as_deref()
            .filter(|i| !i.trim().is_empty())
            .map(|i| (t, path, c, i))
    })
}

fn mutable_image_tags(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    images(endpoint)
        .filter(|(_, _, _, image)| ImageRef::parse(image).has_mutable_tag())
        .map(|(t, path, c, image)| {
            let how = match ImageRef::parse(image).tag {
                Some(tag) => format!("the mutable tag `{tag}`"),
                None => "no tag, so it resolves to `latest`".to_owned(),
            };
            Finding::on_template(
                "MOD-001",
                endpoint,
                t,
                format!("{path}.image"),
                format!("image `{image}` of container `{}` has {how}", c.name),
            )
        })
        .collect()
}

fn images_without_digest(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    images(endpoint)
        .filter_map(|(t, path, c, image)| {
            let parsed = ImageRef::parse(image);
            if parsed.is_pinned() || parsed.has_mutable_tag() {
                return None;
            }
            Some(Finding::on_template(
                "MOD-002",
                endpoint,
                t,
                format!("{path}.image"),
                format!(
                    "image `{image}` of container `{}` is pinned by tag `{}` but not by digest",
                    c.name,
                    parsed.tag.unwrap_or_default()
                ),
            ))
        })
        .collect()
}

/// Whether `candidate` starts with `prefix`. A prefix naming only a host (`nvcr.io`,
/// `s3://bucket`) must end where a host or bucket ends, so `nvcr.io` does not approve
/// `nvcr.io.example.com`.
fn prefix_matches(prefix: &str, candidate: &str) -> bool {
    let Some(rest) = candidate.strip_prefix(prefix) else {
        return false;
    };
    let body = prefix.split_once("://").map_or(prefix, |(_, b)| b);
    body.contains('/')
        || prefix.ends_with(['/', ':', '@'])
        || rest.is_empty()
        || rest.starts_with(['/', ':', '@'])
}

fn approved(policy: &Policy, candidates: &[String]) -> bool {
    policy
        .approved_registries
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .any(|p| candidates.iter().any(|c| prefix_matches(p, c)))
}

/// The forms an image reference is matched in: as written, and with Docker Hub's implicit
/// `docker.io/` (and `docker.io/library/` for official images) spelled out.
fn image_candidates(image: &str) -> Vec<String> {
    let mut out = vec![image.to_owned()];
    let parsed = ImageRef::parse(image);
    let hub = ["docker.io", "index.docker.io", "registry-1.docker.io"];
    if hub.contains(&parsed.registry) {
        let rest = hub
            .iter()
            .find_map(|h| image.strip_prefix(&format!("{h}/")))
            .unwrap_or(image);
        out.push(format!("docker.io/{rest}"));
        if !parsed.path.contains('/') {
            out.push(format!("docker.io/library/{rest}"));
        }
    }
    out
}

fn approved_list(policy: &Policy) -> String {
    list_some(policy.approved_registries.iter().map(|r| format!("`{r}`")))
}

fn unapproved_images(_: &Snapshot, endpoint: &Endpoint, policy: &Policy) -> Vec<Finding> {
    images(endpoint)
        .filter(|(_, _, _, image)| !approved(policy, &image_candidates(image)))
        .map(|(t, path, c, image)| {
            Finding::on_template(
                "MOD-005",
                endpoint,
                t,
                format!("{path}.image"),
                format!(
                    "image `{image}` of container `{}` is not under an approved registry ({})",
                    c.name,
                    approved_list(policy)
                ),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Where the weights come from: MOD-003, MOD-006, MOD-010

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceKind {
    /// A Hugging Face Hub repository: `org/name`, `hf://org/name`, a huggingface.co URL.
    Hub,
    /// Any other http(s) URL.
    Web,
    /// Object or volume storage: `s3://`, `gs://`, `pvc://`, …
    Storage,
    /// An OCI artifact (KServe modelcars).
    Oci,
    /// An Ollama model name.
    Ollama,
    /// The image is the model (NIM): the image checks cover it.
    Image,
    /// A path inside the container: weights baked in or mounted.
    Local,
    /// A name Hangar cannot place (a KAITO preset, a Triton model name).
    Other,
}

fn is_hub_id(source: &str) -> bool {
    let mut parts = source.split('/');
    let (Some(org), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let valid = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    valid(org) && valid(name)
}

fn source_kind(runtime: Runtime, source: &str) -> SourceKind {
    let lower = source.to_ascii_lowercase();
    let web = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    if lower.starts_with("hf://") || lower.starts_with("huggingface://") {
        SourceKind::Hub
    } else if let Some(rest) = web {
        if rest.starts_with("huggingface.co/") || rest.starts_with("hf.co/") {
            SourceKind::Hub
        } else {
            SourceKind::Web
        }
    } else if lower.starts_with("oci://") {
        SourceKind::Oci
    } else if lower.starts_with("file://") || lower.starts_with(['/', '.', '~']) {
        SourceKind::Local
    } else if lower.contains("://") {
        SourceKind::Storage
    } else if runtime == Runtime::Ollama {
        SourceKind::Ollama
    } else if is_hub_id(source) {
        SourceKind::Hub
    } else {
        SourceKind::Other
    }
}

/// A model the endpoint loads, with where it is named.
struct Source {
    kind: SourceKind,
    name: String,
    field: Option<String>,
    /// Fetched by an `ollama pull`/`ollama run` the pod runs itself.
    pulled: bool,
    /// A revision declared beside the source (a Ray application's `REVISION` variable).
    revision: Option<String>,
    /// `HF_HUB_OFFLINE=1` declared beside the source (a Ray application's variables).
    offline: bool,
}

impl Source {
    fn new(kind: SourceKind, name: &str, field: Option<String>) -> Source {
        Source {
            kind,
            name: name.to_owned(),
            field,
            pulled: false,
            revision: None,
            offline: false,
        }
    }
}

/// The models an endpoint loads: the one inventory found, plus Ollama models pulled by a
/// command or a postStart hook (`ollama pull llama3`).
fn sources(snapshot: &Snapshot, endpoint: &Endpoint) -> Vec<Source> {
    let mut out = Vec::new();
    if let Some(source) = endpoint.model.source.as_deref() {
        let field = endpoint.model.field.clone();
        let kind = match field.as_deref() {
            Some(f) if f.ends_with(".image") || f == "spec.image" => SourceKind::Image,
            _ => source_kind(endpoint.runtime, source),
        };
        out.push(Source::new(kind, source, field));
    }
    for (_, path, c) in endpoint.containers() {
        for (field, name) in ollama_pulls(&path, c) {
            if !out.iter().any(|s| s.name == name) {
                out.push(Source {
                    pulled: true,
                    ..Source::new(SourceKind::Ollama, &name, Some(field))
                });
            }
        }
    }
    out.extend(ray_sources(snapshot, endpoint));
    out
}

/// The applications of a RayService, read from the YAML string in `spec.serveConfigV2`.
fn ray_applications(snapshot: &Snapshot, endpoint: &Endpoint) -> Vec<Value> {
    if endpoint.object.kind != "RayService" {
        return Vec::new();
    }
    let text = snapshot
        .find_other_ref(&endpoint.object)
        .and_then(|o| o.object.str_at(RAY_SERVE_CONFIG));
    let config: Option<Value> = text.and_then(|t| serde_saphyr::from_str(t).ok());
    config
        .as_ref()
        .and_then(|c| c.get("applications"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

const RAY_SERVE_CONFIG: &str = "spec.serveConfigV2";

/// The model each Ray Serve application names in its `runtime_env.env_vars`.
fn ray_sources(snapshot: &Snapshot, endpoint: &Endpoint) -> Vec<Source> {
    let mut out = Vec::new();
    for app in ray_applications(snapshot, endpoint) {
        let vars = app.get("runtime_env").and_then(|r| r.get("env_vars"));
        let var = |name: &str| vars.and_then(|v| v.get(name)).and_then(Value::as_str);
        let Some(model) = ["MODEL_ID", "MODEL_NAME", "HF_MODEL_ID", "MODEL"]
            .iter()
            .find_map(|name| var(name))
        else {
            continue;
        };
        out.push(Source {
            revision: ["REVISION", "MODEL_REVISION", "HF_REVISION"]
                .iter()
                .find_map(|name| var(name))
                .map(str::to_owned),
            offline: ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"]
                .iter()
                .any(|name| var(name).is_some_and(truthy)),
            ..Source::new(
                source_kind(Runtime::Rayserve, model),
                model,
                Some(RAY_SERVE_CONFIG.into()),
            )
        });
    }
    out
}

/// Code a Ray Serve application fetches at start: `runtime_env.working_dir` and `py_modules`
/// URLs, as `(application, setting, url)`.
fn ray_code_urls(snapshot: &Snapshot, endpoint: &Endpoint) -> Vec<(String, &'static str, String)> {
    let mut out = Vec::new();
    for app in ray_applications(snapshot, endpoint) {
        let name = app
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        let env = app.get("runtime_env");
        let working_dir = env
            .and_then(|e| e.get("working_dir"))
            .and_then(Value::as_str);
        let modules = env
            .and_then(|e| e.get("py_modules"))
            .and_then(Value::as_array);
        let urls = working_dir.map(|u| ("working_dir", u)).into_iter().chain(
            modules
                .into_iter()
                .flatten()
                .filter_map(|m| m.as_str().map(|u| ("py_modules", u))),
        );
        for (setting, url) in urls {
            let lower = url.to_ascii_lowercase();
            if (lower.starts_with("https://") || lower.starts_with("http://"))
                && !is_internal_host(url)
            {
                out.push((name.clone(), setting, url.to_owned()));
            }
        }
    }
    out
}

/// The words of a container's command, args and postStart hook, each with its field.
fn command_words(path: &str, c: &Container) -> Vec<(String, String)> {
    let hook = c
        .lifecycle
        .as_ref()
        .and_then(|l| l.post_start.as_ref())
        .and_then(|h| h.exec.as_ref())
        .and_then(|e| e.command.as_ref());
    let lists = [
        (format!("{path}.command"), c.command.as_ref()),
        (format!("{path}.args"), c.args.as_ref()),
        (format!("{path}.lifecycle.postStart.exec.command"), hook),
    ];
    let mut words = Vec::new();
    for (field, list) in lists {
        for element in list.into_iter().flatten() {
            for word in element.split_whitespace() {
                let word = word.trim_matches(|ch: char| matches!(ch, '"' | '\'' | ';' | '&' | '|'));
                if !word.is_empty() {
                    words.push((field.clone(), word.to_owned()));
                }
            }
        }
    }
    words
}

fn ollama_pulls(path: &str, c: &Container) -> Vec<(String, String)> {
    let words = command_words(path, c);
    let mut out = Vec::new();
    for (i, pair) in words.windows(2).enumerate() {
        if pair[0].1 == "ollama" && matches!(pair[1].1.as_str(), "pull" | "run") {
            let model = words[i + 2..].iter().find(|(_, w)| !w.starts_with('-'));
            if let Some((field, name)) = model {
                out.push((field.clone(), name.clone()));
            }
        }
    }
    out
}

/// The revision a hub model is loaded at: `@rev`/`:rev` on the URI, `--revision`, or the
/// `REVISION` variable TGI reads. The `hangar.dev/model-version` label is not one: it records a
/// version but does not make the server load it.
fn hub_revision(endpoint: &Endpoint, source: &Source) -> Option<String> {
    if let Some(revision) = &source.revision {
        return Some(revision.clone());
    }
    let source = source.name.as_str();
    let bare = source.split_once("://").map_or(source, |(_, rest)| rest);
    let last = bare.rsplit('/').next().unwrap_or(bare);
    if let Some((_, revision)) = bare.split_once('@').or_else(|| last.split_once(':')) {
        return Some(revision.to_owned());
    }
    const FLAGS: &[&str] = &["--revision", "--model-revision", "--model_revision"];
    for (_, path, c) in endpoint.containers() {
        let words = command_words(&path, c);
        for (i, (_, word)) in words.iter().enumerate() {
            for flag in FLAGS {
                if word == flag {
                    if let Some((_, value)) = words.get(i + 1).filter(|(_, v)| !v.starts_with('-'))
                    {
                        return Some(value.clone());
                    }
                } else if let Some(value) =
                    word.strip_prefix(flag).and_then(|r| r.strip_prefix('='))
                {
                    return Some(value.to_owned());
                }
            }
        }
        let env = c.env.iter().flatten().find(|e| e.name == "REVISION");
        if let Some(value) = env.and_then(|e| e.value.clone()) {
            return Some(value);
        }
    }
    None
}

fn is_branch(revision: &str) -> bool {
    matches!(
        revision.to_ascii_lowercase().as_str(),
        "main" | "master" | "latest" | "head" | "dev"
    )
}

/// A path segment that names a version: `v3`, `3`, `2024-05-01`, a commit hash, `rev-7`,
/// `fraud-llm-v2`.
static VERSION_SEGMENT: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)^(v\d[\w.-]*|\d+([._-]\d+)*|[0-9a-f]{7,64}|(rev|ver|version)[-_=]?\d\w*|.*[-_]v\d+(\.\d+)*)$").ok()
});

/// Whether a storage URI names a version or an immutable object: a version segment below the
/// bucket, an `@` pin, or an S3 `versionId`.
fn storage_is_versioned(uri: &str) -> bool {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    if query.contains("versionId=") || query.contains("generation=") {
        return true;
    }
    let bare = path.split_once("://").map_or(path, |(_, rest)| rest);
    if bare.contains('@') {
        return true;
    }
    let Some(pattern) = VERSION_SEGMENT.as_ref() else {
        return false;
    };
    bare.split('/')
        .skip(1)
        .filter(|s| !s.is_empty())
        .any(|s| pattern.is_match(s))
}

/// Why a source is not pinned, if it is not.
fn unpinned(endpoint: &Endpoint, source: &Source) -> Option<String> {
    let name = &source.name;
    match source.kind {
        SourceKind::Hub => {
            let claimed = endpoint
                .label(MODEL_VERSION_LABEL)
                .map(|v| {
                    format!(
                        "; the `{MODEL_VERSION_LABEL}: {v}` label records a version but does not make the server load it"
                    )
                })
                .unwrap_or_default();
            match hub_revision(endpoint, source) {
                Some(revision) if is_branch(&revision) => Some(format!(
                    "hub model `{name}` is loaded at revision `{revision}`, a branch that moves with every push"
                )),
                Some(_) => None,
                None => Some(format!(
                    "hub model `{name}` is loaded with no `--revision`, so each start takes the head of its main branch{claimed}"
                )),
            }
        }
        SourceKind::Storage | SourceKind::Web => {
            (endpoint.model.digest.is_none() && !storage_is_versioned(name)).then(|| {
                format!(
                    "`{name}` has no version segment, object version or digest: whatever is stored there when a pod starts is served"
                )
            })
        }
        SourceKind::Oci => (!ImageRef::parse(name.trim_start_matches("oci://")).is_pinned())
            .then(|| format!("OCI model `{name}` is not pinned by digest")),
        SourceKind::Ollama => match name.rsplit_once(':') {
            Some((_, tag)) if tag != "latest" => None,
            Some(_) => Some(format!("Ollama model `{name}` uses the `latest` tag")),
            None => Some(format!(
                "Ollama model `{name}` has no tag, so it resolves to `latest`"
            )),
        },
        SourceKind::Image | SourceKind::Local | SourceKind::Other => None,
    }
}

fn unpinned_weights(snapshot: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    sources(snapshot, endpoint)
        .iter()
        .filter_map(|s| {
            unpinned(endpoint, s)
                .map(|message| Finding::on_endpoint("MOD-003", endpoint, s.field.clone(), message))
        })
        .collect()
}

/// The forms a model source is matched in against approved registries.
fn source_candidates(source: &Source) -> Vec<String> {
    let name = source.name.as_str();
    match source.kind {
        SourceKind::Hub if !name.contains("://") => vec![name.to_owned(), format!("hf://{name}")],
        SourceKind::Hub => {
            let lower = name.to_ascii_lowercase();
            let repo = [
                "https://huggingface.co/",
                "http://huggingface.co/",
                "https://hf.co/",
            ]
            .iter()
            .find_map(|p| lower.strip_prefix(p).map(|_| &name[p.len()..]));
            let mut out = vec![name.to_owned()];
            out.extend(repo.map(|r| format!("hf://{r}")));
            out
        }
        SourceKind::Ollama => {
            let path = if name.contains('/') {
                name.to_owned()
            } else {
                format!("library/{name}")
            };
            vec![name.to_owned(), format!("registry.ollama.ai/{path}")]
        }
        SourceKind::Web | SourceKind::Storage | SourceKind::Oci => vec![name.to_owned()],
        SourceKind::Image | SourceKind::Local | SourceKind::Other => Vec::new(),
    }
}

fn unapproved_model_sources(
    snapshot: &Snapshot,
    endpoint: &Endpoint,
    policy: &Policy,
) -> Vec<Finding> {
    sources(snapshot, endpoint)
        .iter()
        .filter_map(|s| {
            let candidates = source_candidates(s);
            if candidates.is_empty() || approved(policy, &candidates) {
                return None;
            }
            let shown = candidates.last().map_or(s.name.as_str(), String::as_str);
            Some(Finding::on_endpoint(
                "MOD-006",
                endpoint,
                s.field.clone(),
                format!(
                    "model source `{shown}` is not under an approved registry ({})",
                    approved_list(policy)
                ),
            ))
        })
        .collect()
}

/// A host inside the cluster or a private network: not "the internet".
fn is_internal_host(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, h)| h)
        .split(':')
        .next()
        .unwrap_or(authority)
        .to_ascii_lowercase();
    if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
        return ip.is_private() || ip.is_loopback() || ip.is_link_local();
    }
    !host.contains('.')
        || [".svc", ".cluster.local", ".local", ".internal", ".lan"]
            .iter()
            .any(|suffix| host.ends_with(suffix))
}

fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

fn hub_offline(endpoint: &Endpoint) -> bool {
    endpoint.containers().any(|(_, _, c)| {
        c.env.iter().flatten().any(|e| {
            matches!(e.name.as_str(), "HF_HUB_OFFLINE" | "TRANSFORMERS_OFFLINE")
                && e.value.as_deref().is_some_and(truthy)
        })
    })
}

fn downloads_at_start(snapshot: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    let offline = hub_offline(endpoint);
    let weights = sources(snapshot, endpoint).into_iter().filter_map(|s| {
        // KServe's storage initializer downloads a storageUri whatever the server's env says.
        let by_initializer = s.field.as_deref().is_some_and(|f| f.contains("storageUri"));
        let message = match s.kind {
            SourceKind::Hub if by_initializer || !(offline || s.offline) => format!(
                "`{}` is downloaded from the Hugging Face Hub each time a pod starts{}",
                s.name,
                if by_initializer {
                    " (by the storage initializer)"
                } else {
                    "; `HF_HUB_OFFLINE=1` is not set"
                }
            ),
            SourceKind::Web if !is_internal_host(&s.name) => {
                format!(
                    "`{}` is downloaded from the internet each time a pod starts",
                    s.name
                )
            }
            SourceKind::Ollama if s.pulled => {
                format!(
                    "Ollama model `{}` is pulled from the Ollama registry each time a pod starts",
                    s.name
                )
            }
            _ => return None,
        };
        Some(Finding::on_endpoint("MOD-010", endpoint, s.field, message))
    });
    let code = ray_code_urls(snapshot, endpoint).into_iter().map(|(app, setting, url)| {
        let lower = url.to_ascii_lowercase();
        let moving = ["/refs/heads/", "/archive/main.", "/archive/master.", "/tree/"]
            .iter()
            .any(|b| lower.contains(b));
        Finding::on_endpoint(
            "MOD-010",
            endpoint,
            Some(RAY_SERVE_CONFIG.into()),
            format!(
                "application `{app}` fetches its code from `{url}` (`runtime_env.{setting}`) each time the Ray cluster starts{}",
                if moving { ", from a branch that moves with every push" } else { "" }
            ),
        )
    });
    weights.chain(code).collect()
}

// ---------------------------------------------------------------------------------------------
// MOD-004

fn missing_metadata(_: &Snapshot, endpoint: &Endpoint, policy: &Policy) -> Vec<Finding> {
    let mut missing = Vec::new();
    for label in [MODEL_LABEL, MODEL_VERSION_LABEL] {
        if endpoint.label(label).is_none() {
            missing.push(format!("the `{label}` label"));
        }
    }
    if endpoint.team.is_none() {
        missing.push(format!(
            "an owner (none of {} on the endpoint or its namespace)",
            list_some(policy.team_labels.iter().map(|l| format!("`{l}`")))
        ));
    }
    if missing.is_empty() {
        return Vec::new();
    }
    vec![Finding::on_endpoint(
        "MOD-004",
        endpoint,
        Some("metadata.labels".into()),
        format!("missing {}", missing.join(", ")),
    )]
}

// ---------------------------------------------------------------------------------------------
// Deploy rights: MOD-007, MOD-008

fn too_many_deployers(_: &Snapshot, endpoint: &Endpoint, policy: &Policy) -> Vec<Finding> {
    let crowds: Vec<String> = endpoint
        .deployers
        .iter()
        .filter_map(|d| {
            let crowd = d.subject.crowd()?;
            Some(format!("{} ({crowd}, via {})", d.subject, d.via))
        })
        .collect();
    let named: Vec<String> = endpoint
        .deployers
        .iter()
        .filter(|d| !d.subject.is_system())
        .map(|d| d.subject.to_string())
        .collect();
    let message = if !crowds.is_empty() {
        format!(
            "{} may change `{}` or exec into its pods",
            list_some(crowds.into_iter()),
            endpoint.object.name
        )
    } else if named.len() > policy.max_deployers {
        format!(
            "{} principals may change `{}` or exec into its pods (policy allows {}): {}",
            named.len(),
            endpoint.object.name,
            policy.max_deployers,
            list_some(named.into_iter())
        )
    } else {
        return Vec::new();
    };
    vec![Finding::on_endpoint("MOD-007", endpoint, None, message)]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Environment {
    Production,
    NonProduction,
}

const ENVIRONMENT_LABELS: &[&str] = &["environment", "env", "hangar.dev/environment"];

fn environment_from(value: &str) -> Option<Environment> {
    match value.trim().to_ascii_lowercase().as_str() {
        "prod" | "production" | "prd" => Some(Environment::Production),
        "dev" | "development" | "staging" | "stage" | "stg" | "test" | "testing" | "qa"
        | "sandbox" | "nonprod" | "non-prod" | "preprod" | "pre-prod" => {
            Some(Environment::NonProduction)
        }
        _ => None,
    }
}

/// An endpoint's environment: its namespace's label, its own label, or the namespace name's
/// suffix (`-prod`, `-dev`, `-staging`, `-test`).
fn environment(snapshot: &Snapshot, endpoint: &Endpoint) -> Option<Environment> {
    let namespace = snapshot.find::<Namespace>("", endpoint.namespace());
    let labelled = ENVIRONMENT_LABELS.iter().find_map(|key| {
        namespace
            .and_then(|n| n.object.label(key))
            .or_else(|| endpoint.label(key))
    });
    if let Some(value) = labelled {
        return environment_from(value);
    }
    let suffix = endpoint.namespace().rsplit('-').next()?;
    (suffix != endpoint.namespace())
        .then(|| environment_from(suffix))
        .flatten()
}

/// Where a subject may deploy: namespace → (binding, an endpoint there).
type Grants<'a> = BTreeMap<String, (String, &'a Endpoint)>;

fn shared_deployers(snapshot: &Snapshot, inventory: &Inventory, _: &Policy) -> Vec<Finding> {
    let mut by_subject: BTreeMap<Subject, (Grants<'_>, Grants<'_>)> = BTreeMap::new();
    for endpoint in &inventory.endpoints {
        let Some(env) = environment(snapshot, endpoint) else {
            continue;
        };
        for deployer in endpoint.deployers.iter().filter(|d| !d.subject.is_system()) {
            let (prod, nonprod) = by_subject.entry(deployer.subject.clone()).or_default();
            let side = match env {
                Environment::Production => prod,
                Environment::NonProduction => nonprod,
            };
            side.entry(endpoint.namespace().to_owned())
                .or_insert_with(|| (deployer.via.clone(), endpoint));
        }
    }
    let namespaces = |grants: &Grants<'_>| list_some(grants.keys().map(|ns| format!("`{ns}`")));
    by_subject
        .into_iter()
        .filter(|(_, (prod, nonprod))| !prod.is_empty() && !nonprod.is_empty())
        .filter_map(|(subject, (prod, nonprod))| {
            let (_, (via, endpoint)) = prod.iter().next()?;
            let bindings: BTreeSet<&str> = prod
                .values()
                .chain(nonprod.values())
                .map(|(via, _)| via.as_str())
                .collect();
            let message = format!(
                "{subject} may change inference workloads in production ({}) and in non-production ({}), through {}",
                namespaces(&prod),
                namespaces(&nonprod),
                list_some(bindings.into_iter().map(str::to_owned))
            );
            Some(finding_on_binding(
                "MOD-008",
                snapshot,
                via,
                &subject,
                (endpoint.object.clone(), endpoint.origin.clone()),
                message,
            ))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// MOD-009

fn references(snapshot: &Snapshot, endpoint: &Endpoint, kind: &str, path: &str) -> bool {
    snapshot.others.iter().any(|o| {
        o.object.kind == kind
            && o.object.namespace() == endpoint.namespace()
            && o.object.str_at(path) == Some(endpoint.object.name.as_str())
    })
}

fn no_staged_rollout(snapshot: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    if endpoint.label(RELEASE_LABEL).is_some() {
        return Vec::new();
    }
    let name = &endpoint.object.name;
    let message = match endpoint.object.kind.as_str() {
        "Deployment" | "StatefulSet" => {
            if references(snapshot, endpoint, "Rollout", "spec.workloadRef.name")
                || references(snapshot, endpoint, "Canary", "spec.targetRef.name")
            {
                return Vec::new();
            }
            format!(
                "{} `{name}` is changed in place: no Argo Rollout or Flagger Canary references it and no ModelRelease manages it (`{RELEASE_LABEL}` label), so a new model version takes all traffic once its pods are ready",
                endpoint.object.kind
            )
        }
        "InferenceService" => {
            let canary = snapshot.find_other_ref(&endpoint.object).is_some_and(|o| {
                o.object
                    .get("spec.predictor.canaryTrafficPercent")
                    .is_some()
            });
            if canary {
                return Vec::new();
            }
            format!(
                "InferenceService `{name}` sets no `canaryTrafficPercent` and no ModelRelease manages it (`{RELEASE_LABEL}` label): a change goes to all traffic at once"
            )
        }
        _ => return Vec::new(),
    };
    vec![Finding::on_endpoint("MOD-009", endpoint, None, message)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::find;
    use crate::checks::testing::{run, run_with, vllm};

    const DIGEST: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn serving(model_args: &str) -> String {
        vllm(&format!("        args: [{model_args}]"))
    }

    fn with_registries(registries: &[&str]) -> Policy {
        Policy {
            approved_registries: registries.iter().map(|r| (*r).to_owned()).collect(),
            ..Policy::default()
        }
    }

    const KSERVE: &str = r#"apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: fraud, namespace: ml}
spec:
  predictor:
    model:
      modelFormat: {name: huggingface}
      storageUri: s3://models-prod/fraud-llm
"#;

    fn ollama(hook: &str) -> String {
        format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: ollama, namespace: ml}}
spec:
  template:
    spec:
      containers:
      - name: ollama
        image: ollama/ollama:0.5.7
        command: [ollama, serve]
        lifecycle: {{postStart: {{exec: {{command: ["/bin/sh", "-c", "{hook}"]}}}}}}
"#
        )
    }

    #[test]
    fn mod_001_fires_on_latest_and_on_no_tag() {
        let latest = vllm("").replace("v0.11.0", "latest");
        let findings = run("MOD-001", &latest);
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("`latest`"));
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.template.spec.containers[0].image")
        );
        let untagged = vllm("").replace(":v0.11.0", "");
        assert!(run("MOD-001", &untagged)[0].message.contains("no tag"));
    }

    #[test]
    fn mod_001_is_quiet_on_a_release_tag() {
        assert!(run("MOD-001", &vllm("")).is_empty());
    }

    #[test]
    fn mod_002_fires_on_a_tag_without_digest_and_not_with_one() {
        let findings = run("MOD-002", &vllm(""));
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("`v0.11.0`"));
        let pinned = vllm("").replace("v0.11.0", &format!("v0.11.0@{DIGEST}"));
        assert!(run("MOD-002", &pinned).is_empty());
        let latest = vllm("").replace("v0.11.0", "latest");
        assert!(run("MOD-002", &latest).is_empty(), "MOD-001 covers it");
    }

    #[test]
    fn mod_003_fires_on_a_hub_model_without_revision_even_with_a_version_label() {
        let yaml = serving(r#""--model", "meta-llama/Llama-3.1-8B-Instruct""#).replace(
            "metadata: {name: chat, namespace: ml}",
            "metadata: {name: chat, namespace: ml, labels: {hangar.dev/model-version: \"3.1\"}}",
        );
        let findings = run("MOD-003", &yaml);
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("no `--revision`"));
        assert!(
            findings[0]
                .message
                .contains("does not make the server load it")
        );
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.template.spec.containers[0].args")
        );
    }

    #[test]
    fn mod_003_fires_on_a_branch_revision_and_not_on_a_commit() {
        let branch = serving(r#""--model", "org/model", "--revision", "main""#);
        assert!(run("MOD-003", &branch)[0].message.contains("a branch"));
        let commit = serving(
            r#""--model", "org/model", "--revision", "0e9e39f249a16976918f6564b8830bc894c89659""#,
        );
        assert!(run("MOD-003", &commit).is_empty());
    }

    #[test]
    fn mod_003_fires_on_an_unversioned_storage_uri_and_not_on_a_versioned_one() {
        let findings = run("MOD-003", KSERVE);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.predictor.model.storageUri")
        );
        let versioned = KSERVE.replace("fraud-llm", "fraud-llm/v3");
        assert!(run("MOD-003", &versioned).is_empty());
    }

    #[test]
    fn mod_003_fires_on_an_untagged_ollama_model_and_not_on_a_tagged_one() {
        let findings = run("MOD-003", &ollama("ollama pull llama3"));
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].message.contains("`llama3`"));
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.template.spec.containers[0].lifecycle.postStart.exec.command")
        );
        assert!(run("MOD-003", &ollama("ollama pull llama3.1:8b-instruct-q4_0")).is_empty());
    }

    #[test]
    fn mod_004_lists_everything_missing_in_one_finding() {
        let findings = run("MOD-004", &vllm(""));
        assert_eq!(findings.len(), 1);
        let m = &findings[0].message;
        assert!(m.contains("`hangar.dev/model`") && m.contains("`hangar.dev/model-version`"));
        assert!(m.contains("an owner"), "{m}");
    }

    #[test]
    fn mod_004_is_quiet_when_model_version_and_team_are_declared() {
        let yaml = vllm("").replace(
            "metadata: {name: chat, namespace: ml}",
            "metadata: {name: chat, namespace: ml, labels: {hangar.dev/model: llama-3.1-8b, hangar.dev/model-version: \"2024-07\", team: search}}",
        );
        assert!(run("MOD-004", &yaml).is_empty());
    }

    #[test]
    fn mod_005_fires_on_an_image_outside_approved_registries() {
        let policy = with_registries(&["registry.example.com/", "nvcr.io"]);
        let findings = run_with("MOD-005", &vllm(""), &policy);
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("`vllm/vllm-openai:v0.11.0`"));
        let lookalike = vllm("").replace("vllm/vllm-openai", "nvcr.io.example.com/vllm");
        assert_eq!(run_with("MOD-005", &lookalike, &policy).len(), 1);
    }

    #[test]
    fn mod_005_normalises_docker_hub_and_is_not_evaluated_without_a_list() {
        let policy = with_registries(&["docker.io/vllm/"]);
        assert!(run_with("MOD-005", &vllm(""), &policy).is_empty());
        let check = find("MOD-005").map(|c| c.applies);
        assert_eq!(
            check.map(|applies| applies(&Policy::default())),
            Some(false)
        );
    }

    #[test]
    fn mod_006_treats_a_hub_id_as_hf_and_checks_it() {
        let yaml = serving(r#""--model", "meta-llama/Llama-3.1-8B-Instruct""#);
        let findings = run_with("MOD-006", &yaml, &with_registries(&["s3://models-prod/"]));
        assert_eq!(findings.len(), 1);
        assert!(
            findings[0]
                .message
                .contains("`hf://meta-llama/Llama-3.1-8B-Instruct`")
        );
        assert!(run_with("MOD-006", &yaml, &with_registries(&["hf://meta-llama/"])).is_empty());
        assert!(run_with("MOD-006", KSERVE, &with_registries(&["s3://models-prod"])).is_empty());
        let lookalike = KSERVE.replace("models-prod", "models-prod-copy");
        assert_eq!(
            run_with(
                "MOD-006",
                &lookalike,
                &with_registries(&["s3://models-prod"])
            )
            .len(),
            1
        );
    }

    fn edit_binding(namespace: &str, users: &[&str]) -> String {
        let subjects = users
            .iter()
            .map(|u| format!("{{kind: User, name: {u}, apiGroup: rbac.authorization.k8s.io}}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            r#"apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: editors, namespace: {namespace}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}}
subjects: [{subjects}]
"#
        )
    }

    #[test]
    fn mod_007_fires_on_too_many_deployers_listing_five() {
        let users = ["ana", "ben", "cai", "dee", "eli", "fay", "gus"];
        let yaml = format!("{}---\n{}", vllm(""), edit_binding("ml", &users));
        let findings = run("MOD-007", &yaml);
        assert_eq!(findings.len(), 1);
        let m = &findings[0].message;
        assert!(m.starts_with("7 principals"), "{m}");
        assert!(m.ends_with("and 2 more"), "{m}");
    }

    #[test]
    fn mod_007_fires_on_everyone_and_is_quiet_for_a_few() {
        let everyone = edit_binding("ml", &[]).replace(
            "subjects: []",
            "subjects: [{kind: Group, name: \"system:authenticated\", apiGroup: rbac.authorization.k8s.io}]",
        );
        let findings = run("MOD-007", &format!("{}---\n{everyone}", vllm("")));
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("system:authenticated"));
        let few = format!("{}---\n{}", vllm(""), edit_binding("ml", &["ana", "ben"]));
        assert!(run("MOD-007", &few).is_empty());
    }

    fn binding_to(subjects: &str) -> String {
        let subjects = format!("subjects: [{subjects}]");
        let binding = edit_binding("ml", &[]).replace("subjects: []", &subjects);
        format!("{}---\n{binding}", vllm(""))
    }

    #[test]
    fn mod_007_fires_on_every_service_account_of_a_namespace_and_anonymous_callers() {
        for (subject, crowd) in [
            (
                "{kind: Group, name: \"system:serviceaccounts:ml\", apiGroup: rbac.authorization.k8s.io}",
                "every service account of namespace `ml`",
            ),
            (
                "{kind: Group, name: \"system:serviceaccounts\", apiGroup: rbac.authorization.k8s.io}",
                "every service account of the cluster",
            ),
            (
                "{kind: User, name: \"system:anonymous\", apiGroup: rbac.authorization.k8s.io}",
                "every caller that does not authenticate",
            ),
        ] {
            let findings = run("MOD-007", &binding_to(subject));
            assert_eq!(findings.len(), 1, "{subject}: {findings:?}");
            assert!(
                findings[0].message.contains(crowd),
                "{}",
                findings[0].message
            );
        }
    }

    #[test]
    fn mod_007_counts_a_service_account_named_as_a_user_but_not_the_control_plane() {
        let policy = Policy {
            max_deployers: 1,
            ..Policy::default()
        };
        let users = binding_to(
            "{kind: User, name: \"system:serviceaccount:ci:deployer\", apiGroup: rbac.authorization.k8s.io}, {kind: User, name: ana, apiGroup: rbac.authorization.k8s.io}",
        );
        let findings = run_with("MOD-007", &users, &policy);
        assert_eq!(findings.len(), 1, "{findings:?}");
        let message = &findings[0].message;
        assert!(message.starts_with("2 principals"), "{message}");
        let control_plane = binding_to(
            "{kind: User, name: \"system:kube-controller-manager\", apiGroup: rbac.authorization.k8s.io}, {kind: Group, name: \"system:nodes\", apiGroup: rbac.authorization.k8s.io}, {kind: Group, name: \"system:masters\", apiGroup: rbac.authorization.k8s.io}, {kind: User, name: ana, apiGroup: rbac.authorization.k8s.io}",
        );
        assert!(run_with("MOD-007", &control_plane, &policy).is_empty());
    }

    fn two_environments(prod_users: &[&str], dev_users: &[&str]) -> String {
        let in_namespace =
            |ns: &str| vllm("").replace("namespace: ml}", &format!("namespace: {ns}}}"));
        format!(
            "{}---\n{}---\n{}---\n{}",
            in_namespace("chat-prod"),
            in_namespace("chat-dev"),
            edit_binding("chat-prod", prod_users),
            edit_binding("chat-dev", dev_users)
        )
    }

    #[test]
    fn mod_008_fires_when_one_person_deploys_to_prod_and_dev() {
        let findings = run(
            "MOD-008",
            &two_environments(&["ana", "ops-bot"], &["ana", "ben"]),
        );
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].message.starts_with("User ana"));
        assert_eq!(findings[0].object.kind, "RoleBinding");
        assert_eq!(findings[0].object.namespace, "chat-prod");
        assert_eq!(findings[0].field.as_deref(), Some("subjects[0]"));
    }

    #[test]
    fn mod_008_fires_on_a_service_account_named_as_a_user_in_prod_and_dev() {
        let account = "\"system:serviceaccount:ci:deployer\"";
        let findings = run("MOD-008", &two_environments(&[account], &[account]));
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0]
                .message
                .starts_with("ServiceAccount ci/deployer"),
            "{}",
            findings[0].message
        );
        // The same account bound in each form: one principal.
        let as_account = two_environments(&[account], &[]).replace(
            "subjects: []",
            "subjects: [{kind: ServiceAccount, name: deployer, namespace: ci}]",
        );
        assert_eq!(run("MOD-008", &as_account).len(), 1, "{as_account}");
    }

    #[test]
    fn mod_008_is_quiet_when_prod_has_its_own_deployers() {
        assert!(run("MOD-008", &two_environments(&["ops-bot"], &["ana", "ben"])).is_empty());
    }

    #[test]
    fn mod_009_fires_on_a_bare_deployment_and_a_kserve_service_without_canary() {
        let findings = run("MOD-009", &vllm(""));
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("changed in place"));
        assert_eq!(run("MOD-009", KSERVE).len(), 1);
    }

    #[test]
    fn mod_009_is_quiet_with_a_rollout_a_release_or_a_canary() {
        let rollout = r#"---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: chat, namespace: ml}
spec:
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: chat}
  strategy: {canary: {steps: [{setWeight: 10}]}}
"#;
        assert!(run("MOD-009", &format!("{}{rollout}", vllm(""))).is_empty());
        let released = vllm("").replace(
            "{labels: {app: chat}}",
            "{labels: {app: chat, hangar.dev/release: chat}}",
        );
        assert!(run("MOD-009", &released).is_empty());
        let canary = KSERVE.replace(
            "  predictor:\n",
            "  predictor:\n    canaryTrafficPercent: 10\n",
        );
        assert!(run("MOD-009", &canary).is_empty());
    }

    #[test]
    fn mod_010_fires_on_a_hub_model_and_an_ollama_pull() {
        let yaml = serving(r#""--model", "meta-llama/Llama-3.1-8B-Instruct""#);
        let findings = run("MOD-010", &yaml);
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("HF_HUB_OFFLINE"));
        assert_eq!(run("MOD-010", &ollama("ollama pull llama3:8b")).len(), 1);
    }

    #[test]
    fn mod_010_is_quiet_offline_for_local_paths_and_internal_stores() {
        let offline = vllm(
            r#"        args: ["--model", "meta-llama/Llama-3.1-8B-Instruct"]
        env: [{name: HF_HUB_OFFLINE, value: "1"}]"#,
        );
        assert!(run("MOD-010", &offline).is_empty());
        assert!(run("MOD-010", &serving(r#""--model", "/models/llama-3.1-8b""#)).is_empty());
        let internal = KSERVE.replace(
            "s3://models-prod/fraud-llm",
            "http://minio.storage.svc:9000/models/fraud-llm",
        );
        assert!(run("MOD-010", &internal).is_empty());
        assert!(run("MOD-010", KSERVE).is_empty(), "s3 is not the internet");
    }

    const RAY: &str = r#"apiVersion: ray.io/v1
kind: RayService
metadata: {name: summarizer, namespace: ml}
spec:
  serveConfigV2: |
    applications:
      - name: summarizer
        import_path: summarizer.app:deployment
        runtime_env:
          working_dir: "https://github.com/example/summarizer/archive/refs/heads/main.zip"
          env_vars:
            MODEL_ID: "mistralai/Mistral-7B-Instruct-v0.3"
  rayClusterConfig:
    headGroupSpec:
      template:
        spec:
          containers: [{name: ray-head, image: "rayproject/ray-ml:2.9.3-py310-gpu"}]
"#;

    #[test]
    fn mod_010_reads_a_ray_serve_config_for_weights_and_code() {
        let findings = run("MOD-010", RAY);
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert!(
            findings[0]
                .message
                .contains("`mistralai/Mistral-7B-Instruct-v0.3`")
        );
        assert!(findings[1].message.contains("a branch that moves"));
        assert_eq!(findings[1].field.as_deref(), Some("spec.serveConfigV2"));
        let offline = RAY
            .replace("working_dir: \"https://github.com/example/summarizer/archive/refs/heads/main.zip\"", "working_dir: /srv/summarizer")
            .replace("            MODEL_ID", "            HF_HUB_OFFLINE: \"1\"\n            MODEL_ID");
        assert!(
            run("MOD-010", &offline).is_empty(),
            "{:?}",
            run("MOD-010", &offline)
        );
    }

    #[test]
    fn mod_003_reads_a_ray_application_revision() {
        assert_eq!(run("MOD-003", RAY).len(), 1);
        let pinned = RAY.replace(
            "            MODEL_ID",
            "            REVISION: \"e0bc86c23ce5aae1db576c8cca6f06f1f73af2db\"\n            MODEL_ID",
        );
        assert!(run("MOD-003", &pinned).is_empty());
    }

    #[test]
    fn version_segments() {
        for uri in [
            "s3://m/fraud/v3",
            "gs://m/fraud/2024-05-01/",
            "s3://m/fraud@abc",
            "s3://m/x?versionId=7",
            "pvc://cache/llama-v2",
        ] {
            assert!(storage_is_versioned(uri), "{uri}");
        }
        for uri in [
            "s3://m/fraud-llm",
            "s3://v3/fraud",
            "pvc://cache/llama-3.1-8b",
        ] {
            assert!(!storage_is_versioned(uri), "{uri}");
        }
    }
}
