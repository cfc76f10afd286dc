//! How to roll the endpoint back, for what manages it: a ModelRelease, Argo Rollouts or Flagger,
//! Helm or GitOps, and underneath them the kind itself (Deployment revisions, a KServe canary,
//! a RayService spec, a NIMService image tag, a LeaderWorkerSet template).

use hangar_core::Endpoint;
use hangar_core::image::ImageRef;
use hangar_core::snapshot::{DynamicObject, KubeObject};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::facts::{Facts, kube_objects, referrer};
use super::health::{load_budget, status_commands};
use super::runtimes;
use super::text::{Markdown, code, duration, operand, plural, sh_quote};

/// The label that names the ModelRelease managing an endpoint.
pub const RELEASE_LABEL: &str = "hangar.dev/release";

pub(super) fn section(doc: &mut Markdown, facts: &Facts<'_>) {
    doc.heading(2, "Roll back");
    if let Some(release) = model_release(facts) {
        release_rollback(doc, facts, &release);
    } else if let Some(rollout) = referrer(
        facts.snapshot,
        facts.endpoint,
        "Rollout",
        "spec.workloadRef.name",
    ) {
        argo_rollback(doc, facts, &rollout.object);
    } else if let Some(canary) = &facts.canary {
        flagger_rollback(doc, facts, canary);
    } else {
        kind_rollback(doc, facts, false);
    }
    managed_elsewhere(doc, facts);
    pinning(doc, facts);
    confirm(doc, facts);
}

/// The rollback the kind itself offers, with nothing managing it from above.
/// `managed`: something above the kind (a ModelRelease) is what should have rolled it back.
fn kind_rollback(doc: &mut Markdown, facts: &Facts<'_>, managed: bool) {
    match facts.kind() {
        "Pod" => doc.para(format!(
            "A bare Pod keeps no revision history. Delete it and create it again from the last good manifest{}; better, move it into a Deployment so the next rollback is one command.",
            manifest_hint(facts)
        )),
        _ if facts.is_workload() => workload_rollback(doc, facts, managed),
        "InferenceService" => kserve_rollback(doc, facts),
        "NIMService" => nim_rollback(doc, facts),
        "LeaderWorkerSet" => lws_rollback(doc, facts),
        "RayService" => ray_rollback(doc, facts),
        kind => doc.para(format!(
            "Revert the {kind}'s spec to the last good version{} and apply it; its operator rolls the pods.",
            manifest_hint(facts)
        )),
    }
}

/// A ModelRelease that manages the endpoint: named by the `hangar.dev/release` label, or one
/// whose `spec.target` names the endpoint.
fn model_release(facts: &Facts<'_>) -> Option<Release> {
    if let Some(name) = facts.meta_value(RELEASE_LABEL) {
        let object = facts
            .snapshot
            .find_other("ModelRelease", facts.ns(), name)
            .map(|o| &o.object);
        return Some(Release::new(
            name,
            format!("the label {} names it", code(RELEASE_LABEL)),
            object,
        ));
    }
    facts
        .snapshot
        .others
        .iter()
        .filter(|o| o.object.kind == "ModelRelease" && o.object.group() == "hangar.dev")
        .find(|o| targets(&o.object, facts.endpoint))
        .map(|o| {
            Release::new(
                o.object.name(),
                "its `spec.target` names this endpoint".into(),
                Some(&o.object),
            )
        })
}

struct Release {
    name: String,
    why: String,
    model: Option<String>,
    /// Whether the ModelRelease itself is in the input.
    object: bool,
    /// Whether its `spec.model` is an object (`{name: …}`) rather than a string.
    model_is_object: bool,
}

impl Release {
    fn new(name: &str, why: String, object: Option<&DynamicObject>) -> Release {
        Release {
            name: name.to_owned(),
            why,
            model: object.and_then(release_model),
            object: object.is_some(),
            model_is_object: object
                .and_then(|o| o.get("spec.model"))
                .is_some_and(Value::is_object),
        }
    }
}

/// `spec.model` of a ModelRelease, when it is a plain string or has a `name`.
fn release_model(release: &DynamicObject) -> Option<String> {
    match release.get("spec.model")? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("name").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// Whether a ModelRelease's `spec.target` names `endpoint`: as a string (`name`, `Kind/name`,
/// `namespace/name` or the endpoint id) or as `{kind, name, namespace}`.
pub(super) fn targets(release: &DynamicObject, endpoint: &Endpoint) -> bool {
    let me = &endpoint.object;
    let namespace = if release.namespace().is_empty() {
        me.namespace.as_str()
    } else {
        release.namespace()
    };
    match release.get("spec.target") {
        Some(Value::String(s)) => {
            let candidates = [
                me.name.clone(),
                format!("{}/{}", me.kind, me.name),
                format!("{}/{}", me.namespace, me.name),
                endpoint.id.clone(),
            ];
            namespace == me.namespace && candidates.contains(s)
        }
        Some(Value::Object(o)) => {
            let field = |k: &str| o.get(k).and_then(Value::as_str);
            field("name") == Some(me.name.as_str())
                && field("kind").is_none_or(|k| k == me.kind)
                && field("namespace").unwrap_or(namespace) == me.namespace
        }
        _ => false,
    }
}

fn release_rollback(doc: &mut Markdown, facts: &Facts<'_>, release: &Release) {
    let k = facts.kubectl();
    let release_ref = kube_objects("modelrelease", &[release.name.as_str()]);
    doc.para(format!(
        "ModelRelease {} manages this endpoint ({}){}. Roll back through it, not underneath it: its controller would put back whatever `kubectl` changed in the {}.",
        code(&release.name),
        release.why,
        release
            .model
            .as_ref()
            .map(|m| format!(" and currently releases {}", code(m)))
            .unwrap_or_default(),
        facts.kind()
    ));
    doc.para(format!(
        "`hangar release history|rollback|status` is planned (issue 5) and **not available in this build**. Until it is, set the ModelRelease's `spec.model` back to the last good version with `kubectl`; its `status.history` lists the versions it released{}:",
        if release.object { "" } else { " (the ModelRelease is not in the input: read it from the cluster)" }
    ));
    doc.shell([
        format!(
            "{k} get {release_ref} -o yaml   # spec.model now; status.history: the versions before"
        ),
        "GOOD=   # the last good version from that history".to_owned(),
        format!(
            "{k} patch {release_ref} --type merge -p {}",
            release_model_patch(release.model_is_object)
        ),
    ]);
    doc.para(format!(
        "If no ModelRelease controller runs in the cluster, nothing acts on that change: roll the {} back directly as below, then set `spec.model` to match so the controller does not roll it forward when it returns.",
        facts.kind()
    ));
    kind_rollback(doc, facts, true);
}

/// The merge patch that sets a ModelRelease's model to `$GOOD`, in the shape `spec.model` has.
fn release_model_patch(object: bool) -> String {
    if object {
        r#""{\"spec\":{\"model\":{\"name\":\"$GOOD\"}}}""#.into()
    } else {
        r#""{\"spec\":{\"model\":\"$GOOD\"}}""#.into()
    }
}

fn argo_rollback(doc: &mut Markdown, facts: &Facts<'_>, rollout: &DynamicObject) {
    let ns = facts.ns_flag();
    doc.para(format!(
        "Argo Rollout {} drives this {} (`spec.workloadRef`). Abort a bad rollout while it runs; undo one that finished:",
        code(rollout.name()),
        facts.kind()
    ));
    // The plugin takes the name last, so `--` keeps one that starts with `-` from being a flag.
    let name = operand(rollout.name());
    doc.shell([
        format!("kubectl argo rollouts{ns} get rollout {name}"),
        format!("kubectl argo rollouts{ns} abort {name}   # mid-rollout: traffic back to the stable ReplicaSet"),
        format!("kubectl argo rollouts{ns} undo {name}    # after it: roll back to the previous revision"),
    ]);
}

fn flagger_rollback(doc: &mut Markdown, facts: &Facts<'_>, canary: &str) {
    let name = facts.name();
    let primary_name = format!("{name}-primary");
    let (deploy, primary) = (
        code(&format!("deploy/{name}")),
        code(&format!("deploy/{primary_name}")),
    );
    doc.para(format!(
        "Flagger's Canary {} guards this {kind}: after a promotion the traffic is served by {primary}, a copy Flagger keeps of the last promoted spec, and {deploy} runs only during an analysis. A canary that fails its analysis is rolled back by Flagger itself (`status.phase: Failed`); the primary never changed. To go back from a version already promoted, apply the previous {kind} spec{} to {deploy}: Flagger analyses it like any change and promotes it into the primary. Never edit {primary}: Flagger overwrites it.",
        code(canary),
        manifest_hint(facts),
        kind = facts.kind(),
    ));
    doc.shell([
        format!(
            "{} get {}",
            facts.kubectl(),
            kube_objects("canary", &[canary])
        ),
        format!(
            "{} get {} -o wide   # the images of the candidate and of what serves",
            facts.kubectl(),
            kube_objects("deploy", &[name, primary_name.as_str()])
        ),
    ]);
}

fn workload_rollback(doc: &mut Markdown, facts: &Facts<'_>, managed: bool) {
    let k = facts.kubectl();
    let r = facts.resource();
    doc.para(if managed {
        "Roll back to a revision from its history:".to_owned()
    } else {
        format!(
            "This {} is changed in place: no ModelRelease, Argo Rollout or Flagger Canary manages it. Roll back to a revision from its history:",
            facts.kind()
        )
    });
    doc.shell([
        format!("{k} rollout history {r}"),
        "REV=   # the last good revision in the list; read it before you trust it:".to_owned(),
        format!("{k} rollout history {r} --revision=$REV"),
        format!("{k} rollout undo {r} --to-revision=$REV"),
    ]);
    let mut notes = Vec::new();
    if let Some(version) = facts.endpoint.model.version.as_deref() {
        notes.push(format!(
            "Each revision's pod template carries the image, the args and the model version ({} now), so `--revision=$REV` shows which model it ran.",
            code(version)
        ));
    }
    notes.extend(strategy_notes(facts));
    if !notes.is_empty() {
        doc.para(notes.join(" "));
    }
    if facts.kind() == "StatefulSet" {
        forced_rollback(doc, facts);
    }
}

/// Kubernetes' forced rollback: a StatefulSet stuck on a pod of the bad revision that never
/// becomes Ready stays stuck after the undo, until that pod is deleted.
fn forced_rollback(doc: &mut Markdown, facts: &Facts<'_>) {
    let k = facts.kubectl();
    doc.para("If the rollout was stuck on a pod that never became Ready (crash loop, failed model load), the undo alone does not move it: the StatefulSet waits for that pod for ever. Delete the pods still on the bad revision and it recreates them from the restored template (Kubernetes' forced rollback):");
    let selector = facts
        .selector
        .as_ref()
        .map(|s| format!(" -l {s}"))
        .unwrap_or_default();
    doc.shell([
        format!(
            "{k} get {} -o jsonpath='{{.status.currentRevision}}{{\" → \"}}{{.status.updateRevision}}{{\"\\n\"}}'",
            facts.resource()
        ),
        format!("{k} get pods{selector} -L controller-revision-hash   # the revision each pod runs"),
        format!(
            "{k} delete {}   # each pod whose hash is the bad revision's, highest ordinal first",
            kube_objects("pod", &[format!("{}-N", facts.name()).as_str()])
        ),
    ]);
}

/// What the update strategy means for a rollback of pods that each hold GPUs.
fn strategy_notes(facts: &Facts<'_>) -> Vec<String> {
    let (ns, name) = (facts.ns(), facts.name());
    let load = load_budget(facts)
        .map(|b| format!(" (up to {} with this startup budget)", duration(b)))
        .unwrap_or_default();
    let replicas = facts.replicas.as_ref().map_or(1, |r| r.min);
    match facts.kind() {
        "Deployment" => {
            let Some(d) = facts.snapshot.find::<Deployment>(ns, name) else {
                return Vec::new();
            };
            let strategy = d.object.spec.as_ref().and_then(|s| s.strategy.as_ref());
            if strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate") {
                return vec![format!(
                    "The strategy is `Recreate`: all {} stop before the old version starts, so the endpoint is down for one model load{load}.",
                    plural(replicas, "pod")
                )];
            }
            let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
            let surge =
                percent_or_count(rolling.and_then(|r| r.max_surge.as_ref()), replicas, true);
            let unavailable = percent_or_count(
                rolling.and_then(|r| r.max_unavailable.as_ref()),
                replicas,
                false,
            );
            let mut out = vec![if unavailable == 0 {
                format!(
                    "The rolling update starts up to {} first and takes an old pod down only once its replacement is ready.",
                    plural(surge, "extra pod")
                )
            } else {
                format!(
                    "The rolling update starts up to {} and takes down up to {} at a time.",
                    plural(surge, "extra pod"),
                    plural(unavailable, "pod")
                )
            }];
            if surge > 0
                && let Some(gpus) = &facts.gpus
            {
                out.push(format!(
                    "Each extra pod needs {} free {} on {}; if the pool is full, the rollback waits `Pending`. Then let it replace pods in place: {} (one replica down at a time).",
                    gpus.per_pod,
                    gpus.resource,
                    match gpus.products.as_slice() {
                        [product] => format!("the {product} nodes"),
                        _ => "the GPU nodes".into(),
                    },
                    code(&format!(
                        "{} patch {} -p '{{\"spec\":{{\"strategy\":{{\"rollingUpdate\":{{\"maxSurge\":0,\"maxUnavailable\":1}}}}}}}}'",
                        facts.kubectl(),
                        facts.resource()
                    ))
                ));
            }
            out
        }
        "StatefulSet" => {
            let update = facts.snapshot.find::<StatefulSet>(ns, name).and_then(|s| {
                s.object
                    .spec
                    .as_ref()?
                    .update_strategy
                    .as_ref()?
                    .type_
                    .clone()
            });
            if update.as_deref() == Some("OnDelete") {
                vec!["The update strategy is `OnDelete`: after the undo, delete each pod yourself for it to come back at the old revision.".into()]
            } else {
                vec![format!(
                    "A StatefulSet replaces its pods one at a time from the highest ordinal, each waiting for the one before to be ready: count one model load{load} per pod."
                )]
            }
        }
        _ => Vec::new(),
    }
}

/// A rolling-update bound as a pod count (percentages round up for surge, down otherwise).
fn percent_or_count(value: Option<&IntOrString>, replicas: i32, round_up: bool) -> i32 {
    let default = IntOrString::String("25%".into());
    let count = match value.unwrap_or(&default) {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(s) => {
            let percent = i64::from(s.trim_end_matches('%').parse::<i32>().unwrap_or(25));
            let scaled = i64::from(replicas) * percent;
            if round_up {
                (scaled + 99) / 100
            } else {
                scaled / 100
            }
        }
    };
    i32::try_from(count.max(0)).unwrap_or(i32::MAX)
}

fn kserve_rollback(doc: &mut Markdown, facts: &Facts<'_>) {
    let k = facts.kubectl();
    let name = facts.name();
    let isvc_ref = kube_objects("isvc", &[name]);
    let isvc = facts.custom_resource();
    let raw = facts.kserve_raw();
    let storage = isvc.and_then(|o| {
        o.str_at("spec.predictor.model.storageUri")
            .or_else(|| o.str_at("spec.predictor.storageUri"))
    });
    let canary = isvc.and_then(|o| o.get("spec.predictor.canaryTrafficPercent")?.as_i64());
    if raw {
        doc.para(format!(
            "This InferenceService runs in `RawDeployment` mode, which has no canary: KServe rolls its Deployment {} in place. Roll back by applying the previous predictor spec{}{}. Do not `rollout undo` the predictor Deployment: KServe reconciles it back to the InferenceService.",
            code(&format!("{name}-predictor")),
            storage
                .map(|s| format!(" — today `storageUri` is {}: point it at the last good version", code(s)))
                .unwrap_or_default(),
            manifest_hint(facts)
        ));
        doc.shell([
            format!(
                "{k} rollout history {}   # the storage-initializer args of each revision show the storageUri it ran",
                sh_quote(&format!("deploy/{name}-predictor"))
            ),
            format!("{k} edit {isvc_ref}   # or re-apply the last good manifest"),
        ]);
        return;
    }
    let now = canary.map_or_else(
        || "sets no `canaryTrafficPercent`, so each change takes all traffic once ready".to_owned(),
        |c| format!("sends {c}% of traffic to the latest revision (`canaryTrafficPercent`)"),
    );
    doc.para(format!(
        "This InferenceService {now}. Setting `canaryTrafficPercent` to 0 pins all traffic to the previous rolled-out revision (`status.components.predictor.previousRolledoutRevision`) and leaves the new one running for debugging:"
    ));
    doc.shell([
        format!("{k} get {isvc_ref}   # PREV and LATEST: the traffic split"),
        format!("{k} patch {isvc_ref} --type merge -p '{{\"spec\":{{\"predictor\":{{\"canaryTrafficPercent\":0}}}}}}'"),
    ]);
    doc.para(format!(
        "Then revert the predictor spec{}{} so the next change starts from the good version.",
        storage
            .map(|s| format!(" (`storageUri` is {} now)", code(s)))
            .unwrap_or_default(),
        manifest_hint(facts)
    ));
}

fn nim_rollback(doc: &mut Markdown, facts: &Facts<'_>) {
    let k = facts.kubectl();
    let name = facts.name();
    let tag = facts
        .custom_resource()
        .and_then(|o| o.str_at("spec.image.tag"));
    doc.para(format!(
        "The NIM Operator owns the Deployment {} and rolls it when the NIMService changes. The image is the model, so roll back by setting `spec.image.tag` back{}:",
        code(name),
        tag.map(|t| format!(" (it is {} now)", code(t))).unwrap_or_default()
    ));
    doc.shell([
        format!(
            "{k} rollout history {}   # the image of each revision the operator rolled",
            sh_quote(&format!("deploy/{name}"))
        ),
        "TAG=   # the last good tag from that history".to_owned(),
        format!(
            "{k} patch {} --type merge -p \"{{\\\"spec\\\":{{\\\"image\\\":{{\\\"tag\\\":\\\"$TAG\\\"}}}}}}\"",
            kube_objects("nimservice", &[name])
        ),
    ]);
    if let Some(cache) = facts
        .custom_resource()
        .and_then(|o| o.str_at("spec.storage.nimCache.name"))
    {
        doc.para(format!(
            "The NIMCache {} was filled for the current image's model profiles: an older tag may need its own cache before its pods can start offline.",
            code(cache)
        ));
    }
}

fn lws_rollback(doc: &mut Markdown, facts: &Facts<'_>) {
    let k = facts.kubectl();
    let selector = sh_quote(&format!(
        "leaderworkerset.sigs.k8s.io/name={}",
        facts.name()
    ));
    let groups = facts.replicas.as_ref().map_or(1, |r| r.min);
    doc.para(format!(
        "A LeaderWorkerSet has no `kubectl rollout undo`. Re-apply the previous spec{}; the controller replaces whole groups (leader and workers together) following `spec.rolloutStrategy`.{}",
        manifest_hint(facts),
        if groups <= 1 {
            " With a single group the endpoint is down while the new group starts and loads the model."
        } else {
            ""
        }
    ));
    let mut lines = vec![format!(
        "{k} get controllerrevisions -l {selector}   # the templates LWS has run"
    )];
    if let Some(file) = &facts.endpoint.origin.file {
        let file = sh_quote(file);
        lines.push(format!("git log -p -- {file}   # the last good spec"));
        lines.push(format!("kubectl apply -f {file}"));
    }
    lines.push(format!(
        "{k} get pods -l {selector} -L leaderworkerset.sigs.k8s.io/template-revision-hash"
    ));
    doc.shell(lines);
}

fn ray_rollback(doc: &mut Markdown, facts: &Facts<'_>) {
    let k = facts.kubectl();
    let rayservice = kube_objects("rayservice", &[facts.name()]);
    doc.para(format!(
        "KubeRay applies a RayService change in one of two ways: a `serveConfigV2` change redeploys the Serve applications on the running cluster; a `rayClusterConfig` change starts a second Ray cluster and switches traffic once it is ready, which needs the GPUs of both for a while. Roll back by applying the previous spec{}.",
        manifest_hint(facts)
    ));
    let mut lines = vec![format!(
        "{k} get {rayservice} -o jsonpath='{{.status.activeServiceStatus.rayClusterName}}{{\"\\n\"}}{{.status.pendingServiceStatus.rayClusterName}}{{\"\\n\"}}'   # active, then pending cluster"
    )];
    if let Some(file) = &facts.endpoint.origin.file {
        let file = sh_quote(file);
        lines.push(format!("git log -p -- {file}"));
        lines.push(format!("kubectl apply -f {file}"));
    }
    doc.shell(lines);
    if let Some(url) = moving_working_dir(facts) {
        doc.note(format!(
            "**The application code is not pinned.** `working_dir` is {}, a branch: applying an older spec fetches today's code again. Pin it to a commit's archive so that a rollback rolls the code back too.",
            code(&url)
        ));
    }
}

/// A Ray Serve `working_dir` that follows a branch.
fn moving_working_dir(facts: &Facts<'_>) -> Option<String> {
    facts.serve_config("working_dir").into_iter().find(|v| {
        v.contains("refs/heads/") || v.ends_with("/main.zip") || v.ends_with("/master.zip")
    })
}

/// Helm, Argo CD or Flux: whoever applies this object will undo a manual rollback.
fn managed_elsewhere(doc: &mut Markdown, facts: &Facts<'_>) {
    if let Some(release) = facts.meta_value("meta.helm.sh/release-name") {
        let ns = facts
            .meta_value("meta.helm.sh/release-namespace")
            .map_or_else(|| facts.ns_flag(), |ns| format!(" -n {}", sh_quote(ns)));
        // The release comes last, so `--` keeps one that starts with `-` from being a flag.
        let quoted = operand(release);
        doc.para(format!(
            "Helm release {} installed it: {} then {} rolls back the whole chart, and a later `helm upgrade` would undo a `kubectl` rollback.",
            code(release),
            code(&format!("helm{ns} history {quoted}")),
            code(&format!("helm{ns} rollback {quoted} REVISION"))
        ));
    } else if let Some(app) = facts.meta_value("argocd.argoproj.io/instance").or_else(|| {
        facts
            .meta_value("argocd.argoproj.io/tracking-id")
            .and_then(|t| t.split(':').next())
    }) {
        doc.para(format!(
            "Argo CD application {} syncs it: revert the commit (or {}). With auto-sync on, a `kubectl` rollback lasts only until the next sync.",
            code(app),
            code(&format!("argocd app rollback {}", operand(app)))
        ));
    } else if let Some(kustomization) = facts.meta_value("kustomize.toolkit.fluxcd.io/name") {
        let flux_ns = facts
            .meta_value("kustomize.toolkit.fluxcd.io/namespace")
            .unwrap_or("flux-system");
        doc.para(format!(
            "Flux Kustomization {} applies it: revert the commit, or {} before a `kubectl` rollback and resume it once Git agrees.",
            code(kustomization),
            // The name goes last, after `-n`, so that `--` can come before it.
            code(&format!(
                "flux suspend kustomization -n {} {}",
                sh_quote(flux_ns),
                operand(kustomization)
            ))
        ));
    } else if let Some(origin) = &facts.endpoint.origin.file
        && !matches!(facts.kind(), "LeaderWorkerSet" | "RayService")
    {
        doc.para(format!(
            "It is declared in {}. After an emergency rollback, revert that file too, or the next apply brings the bad version back.",
            code(&format!("{origin}:{}", facts.endpoint.origin.line.unwrap_or(1)))
        ));
    }
}

/// Caveats when a rollback cannot bring back the same bytes: unpinned weights or image.
fn pinning(doc: &mut Markdown, facts: &Facts<'_>) {
    let model = &facts.endpoint.model;
    // A version label is only a claim: what counts is the revision the server is given.
    let revision = facts
        .server
        .as_ref()
        .and_then(|s| s.setting(&["--revision"], "REVISION"));
    if let Some(source) = facts.model_source().as_deref()
        && revision.is_none()
        && model.digest.is_none()
        && looks_like_hub_id(source)
    {
        doc.note(format!(
            "**The weights are not pinned.** {} is read from the Hub with no revision, so a rollback restores the spec but not the weights: the pods download whatever the repository holds when they start. Pin `--revision` to a commit.",
            code(source)
        ));
    }
    if let Some(server) = &facts.server
        && !server.image.is_empty()
    {
        let image = ImageRef::parse(&server.image);
        if image.has_mutable_tag() {
            doc.note(format!(
                "**The image moves.** {} is a moving tag: rolling back to a revision with the same tag may pull a newer image. Pin it by digest.",
                code(&server.image)
            ));
        }
    }
}

fn looks_like_hub_id(source: &str) -> bool {
    let bare = source.strip_prefix("hf://").unwrap_or(source);
    !bare.starts_with('/')
        && !bare.contains("://")
        && bare.split('/').count() == 2
        && !bare.contains(':')
}

fn confirm(doc: &mut Markdown, facts: &Facts<'_>) {
    doc.para("Confirm it worked:");
    let mut lines = status_commands(facts);
    if let Some(selector) = &facts.selector
        && facts.endpoint.templates.iter().any(|t| {
            t.labels
                .contains_key(hangar_core::inventory::MODEL_VERSION_LABEL)
        })
    {
        lines.push(format!(
            "{} get pods -l {selector} -L {}",
            facts.kubectl(),
            hangar_core::inventory::MODEL_VERSION_LABEL
        ));
    }
    if let Some(route) = &facts.route {
        let model_check = runtimes::checks(facts).into_iter().find(|c| {
            ["/v1/models", "/info", "/get_model_info", "/api/tags"]
                .iter()
                .any(|p| c.path.ends_with(p))
                || c.path.contains("/v2/models/")
        });
        if let Some(check) = model_check {
            let header = if facts.api_key.is_some() {
                "-H \"Authorization: Bearer $KEY\" "
            } else {
                ""
            };
            lines.push(format!(
                "curl -fsS {header}{}   # {}",
                sh_quote(&format!("{}{}", route.base_url(), check.path)),
                check.expect.replace('`', "").replace('\n', " ")
            ));
        }
    }
    doc.shell(lines);
    doc.para("Then run the golden set below: the rollback is done when it passes.");
}

fn manifest_hint(facts: &Facts<'_>) -> String {
    match (&facts.endpoint.origin.file, facts.endpoint.origin.line) {
        (Some(file), Some(line)) => format!(" ({}, from Git)", code(&format!("{file}:{line}"))),
        (Some(file), None) => format!(" ({}, from Git)", code(file)),
        _ => " (from Git)".into(),
    }
}
