//! Which model an endpoint serves, and how precisely it is pinned.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Container;
use serde::Serialize;
use serde_json::Value;

use super::Runtime;
use crate::image::ImageRef;
use crate::snapshot::DynamicObject;
use crate::workload::PodTemplate;

/// The model an endpoint serves, as far as its declaration tells.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Model {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A version, revision or tag that names the exact weights.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Where the weights come from: `hf://…`, `s3://…`, `oci://…`, a path, or an image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The field the model was read from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Labels that declare the model explicitly, overriding what the command says.
pub const MODEL_LABEL: &str = "hangar.dev/model";
pub const MODEL_VERSION_LABEL: &str = "hangar.dev/model-version";

/// Flags that name the model, per server.
const MODEL_FLAGS: &[&str] = &[
    "--model",
    "--model-id",
    "--model-path",
    "-m",
    "--hf-repo",
    "-hf",
    "--model-repository",
    "--model-store",
    "--model_base_path",
    "--model-name",
];
const REVISION_FLAGS: &[&str] = &["--revision", "--code-revision"];

pub(super) fn from_templates(
    templates: &[PodTemplate],
    runtime: Runtime,
    labels: &BTreeMap<String, String>,
) -> Model {
    let mut model = Model::default();
    for t in templates {
        for (path, c) in t.containers() {
            let args = argv(c);
            if model.source.is_none()
                && let Some(value) =
                    flag_value(&args, MODEL_FLAGS).or_else(|| positional_after(&args, "serve"))
            {
                model.source = Some(value.to_owned());
                model.field = Some(format!("{path}.args"));
            }
            if model.version.is_none() {
                model.version = flag_value(&args, REVISION_FLAGS).map(str::to_owned);
            }
            let env = |name: &str| {
                c.env
                    .iter()
                    .flatten()
                    .find(|e| e.name == name)
                    .and_then(|e| e.value.clone())
            };
            if model.source.is_none()
                && let Some(id) = env("MODEL_ID").or_else(|| env("MODEL_NAME"))
            {
                model.source = Some(id);
                model.field = Some(format!("{path}.env"));
            }
            if model.version.is_none() {
                model.version = env("REVISION");
            }
            // A NIM image is the model: its tag is the version, its digest the pin.
            if runtime == Runtime::Nim
                && model.source.is_none()
                && let Some(image) = c.image.as_deref()
            {
                let parsed = ImageRef::parse(image);
                model.source = Some(image.to_owned());
                model.version = parsed.tag.map(str::to_owned);
                model.digest = parsed.digest.map(str::to_owned);
                model.field = Some(format!("{path}.image"));
            }
        }
    }
    if let Some(source) = &model.source {
        model.name.get_or_insert_with(|| short_model_name(source));
        if model.digest.is_none() {
            model.digest = source
                .split_once('@')
                .map(|(_, d)| d.to_owned())
                .filter(|d| d.starts_with("sha256:"));
        }
    }
    apply_labels(&mut model, labels);
    model
}

pub(super) fn from_custom_resource(object: &DynamicObject) -> Model {
    let mut model = Model::default();
    let fields = [
        "spec.predictor.model.storageUri",
        "spec.predictor.storageUri",
        "spec.model.uri",
        "spec.storageUri",
        "spec.url",
        "spec.inference.preset.name",
        "spec.predictor.huggingface.storageUri",
    ];
    if let Some((field, uri)) = fields
        .iter()
        .find_map(|f| object.str_at(f).map(|v| (*f, v)))
    {
        model.source = Some(uri.to_owned());
        model.field = Some(field.to_owned());
    }
    if let Some(image) = object
        .get("spec.image")
        .and_then(|i| i.get("repository"))
        .and_then(Value::as_str)
    {
        let tag = object.str_at("spec.image.tag");
        model
            .source
            .get_or_insert_with(|| format!("{image}:{}", tag.unwrap_or("latest")));
        model.version = tag.map(str::to_owned);
        model.field.get_or_insert_with(|| "spec.image".into());
    }
    if let Some(args) = object
        .get("spec.predictor.model.args")
        .and_then(Value::as_array)
    {
        let args: Vec<&str> = args
            .iter()
            .filter_map(Value::as_str)
            .flat_map(|a| a.split_whitespace())
            .collect();
        model.version = model
            .version
            .take()
            .or_else(|| flag_value(&args, REVISION_FLAGS).map(str::to_owned));
        if model.source.is_none() {
            model.source = flag_value(&args, MODEL_FLAGS).map(str::to_owned);
        }
    }
    if let Some(source) = model.source.clone() {
        model.name = Some(short_model_name(&source));
        if let Some((_, digest)) = source.split_once('@') {
            model.digest = Some(digest.to_owned());
        }
    }
    apply_labels(
        &mut model,
        object.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()),
    );
    model
}

fn apply_labels(model: &mut Model, labels: &BTreeMap<String, String>) {
    if let Some(name) = labels.get(MODEL_LABEL) {
        model.name = Some(name.clone());
    }
    // The label is a claim; a revision the server is actually given wins over it.
    if let Some(version) = labels.get(MODEL_VERSION_LABEL) {
        model.version.get_or_insert_with(|| version.clone());
    }
}

/// `meta-llama/Llama-3.1-8B-Instruct` for `hf://meta-llama/Llama-3.1-8B-Instruct@abc`.
fn short_model_name(source: &str) -> String {
    let source = source.split_once('@').map_or(source, |(s, _)| s);
    let source = source.split_once("://").map_or(source, |(_, rest)| rest);
    source.trim_end_matches('/').to_owned()
}

/// A container's command and args as words; `sh -c "vllm serve …"` splits into its words too.
pub(super) fn argv(c: &Container) -> Vec<&str> {
    c.command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .flat_map(|a| a.split_whitespace())
        .collect()
}

/// The value of the first of `flags` in `args`, as `--flag value` or `--flag=value`.
pub(super) fn flag_value<'a>(args: &[&'a str], flags: &[&str]) -> Option<&'a str> {
    for (i, arg) in args.iter().enumerate() {
        // `python -m sglang.launch_server` names a module, not a model (llama.cpp's `-m` does).
        let after_python = i > 0 && is_python(args[i - 1]);
        for flag in flags {
            if *flag == "-m" && after_python {
                continue;
            }
            if arg == flag {
                return args.get(i + 1).copied().filter(|v| !v.starts_with('-'));
            }
            if let Some(value) = arg
                .strip_prefix(flag)
                .and_then(|rest| rest.strip_prefix('='))
            {
                return Some(value);
            }
        }
    }
    None
}

fn is_python(word: &str) -> bool {
    let name = word.rsplit('/').next().unwrap_or(word);
    name == "python"
        || name
            .strip_prefix("python3")
            .is_some_and(|v| v.is_empty() || v.starts_with('.'))
}

/// The first non-flag word after `word` (`vllm serve <model>`).
fn positional_after<'a>(args: &[&'a str], word: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| *a == word)?;
    args.get(at + 1).copied().filter(|v| !v.starts_with('-'))
}
