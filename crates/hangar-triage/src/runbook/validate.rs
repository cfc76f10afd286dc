//! How to prove the endpoint still answers right after a change: `hangar validate` with the
//! endpoint's golden set, or a known request for servers that do not speak the OpenAI API.

use hangar_core::Runtime;

use super::facts::Facts;
use super::health::key_setup;
use super::runtimes;
use super::text::{Markdown, code, has_control, left_out, sh_quote};

/// The annotation that names an endpoint's golden-set file.
pub const GOLDEN_SET_ANNOTATION: &str = "hangar.dev/golden-set";

/// The golden-set file of an endpoint: its annotation, else `golden/<name>.yaml`.
pub fn golden_set(facts: &Facts<'_>) -> (String, bool) {
    match facts.meta_value(GOLDEN_SET_ANNOTATION) {
        Some(path) => (path.to_owned(), true),
        None => (format!("golden/{}.yaml", facts.name()), false),
    }
}

/// `VLLM_LLAMA_3_1_8B_API_KEY` for `vllm-llama-3-1-8b`.
fn key_variable(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    out.push_str("_API_KEY");
    out
}

pub(super) fn section(doc: &mut Markdown, facts: &Facts<'_>) {
    doc.heading(2, "Validate after a change");
    let Some(route) = &facts.route else {
        doc.para("Hangar cannot tell how to reach this server, so it cannot write the validation command. Port-forward to its API port and run `hangar validate --golden FILE --url http://127.0.0.1:PORT`.");
        return;
    };
    let runtime = facts.endpoint.runtime;
    if !runtimes::speaks_openai(runtime) {
        not_openai(doc, facts, runtime);
        return;
    }
    let (golden, declared) = golden_set(facts);
    let mut lines = vec![format!("{} &", route.port_forward(facts.ns()))];
    let variable = key_variable(facts.name());
    if facts.api_key.is_some() {
        let mut key_lines = Vec::new();
        key_setup(facts, &mut key_lines);
        lines.extend(key_lines);
        lines.push(format!("export {variable}=\"$KEY\""));
    }
    // A file named with a line break is no file to run against: say so rather than rewrite it.
    lines.push(if has_control(&golden) {
        left_out(if declared {
            GOLDEN_SET_ANNOTATION
        } else {
            "metadata.name"
        })
    } else {
        format!(
            "hangar validate --golden {} --url {}",
            sh_quote(&golden),
            facts.openai_url().unwrap_or_else(|| route.base_url())
        )
    });
    doc.shell(lines);
    let mut text = if declared {
        format!(
            "The golden set is {}, named by the annotation {}.",
            code(&golden),
            code(GOLDEN_SET_ANNOTATION)
        )
    } else {
        format!(
            "{} is this endpoint's golden set by convention; set the annotation {} on {} to name another file.",
            code(&golden),
            code(GOLDEN_SET_ANNOTATION),
            facts.resource()
        )
    };
    if let Some(model) = runtimes::served_model(facts) {
        text.push_str(&format!(
            " Its cases must ask for the model {} (what the server lists as its model).",
            code(&model)
        ));
    }
    if facts.api_key.is_some() {
        text.push_str(&format!(
            " The server wants its API key: the golden set's `defaults.api_key_env` must name `{variable}`."
        ));
    }
    text.push_str(" Run it before the change for a baseline and again after; a failing case is a reason to roll back.");
    doc.para(text);
    if let Some(scope) = facts.endpoint.data_scope
        && scope.is_regulated()
    {
        doc.note(format!(
            "**{} scope.** The golden set lives in Git and its answers appear in reports: write it with synthetic data (test card numbers, invented customers), never with real {}.",
            scope.as_str().to_ascii_uppercase(),
            if scope == hangar_core::DataScope::Pci {
                "cardholder data"
            } else {
                "personal data"
            }
        ));
    }
}

fn not_openai(doc: &mut Markdown, facts: &Facts<'_>, runtime: Runtime) {
    let Some(route) = &facts.route else {
        return;
    };
    let base = route.base_url();
    let forward = format!("{} &", route.port_forward(facts.ns()));
    let golden = format!("golden/{}", facts.name());
    match runtime {
        Runtime::Triton => {
            let model = runtimes::triton_models(facts.server.as_ref())
                .into_iter()
                .next()
                .unwrap_or_else(|| "MODEL".into());
            doc.para(format!(
                "`hangar validate` speaks the OpenAI API; Triton speaks the KServe v2 protocol. Keep a known request and its expected output beside the golden sets ({}) and compare:",
                code(&format!("{golden}.json"))
            ));
            doc.shell([
                forward,
                format!(
                    "curl -fsS {}   # input and output names, shapes and datatypes",
                    sh_quote(&format!("{base}/v2/models/{model}"))
                ),
                format!(
                    "curl -fsS -X POST -H 'Content-Type: application/json' -d {} {}",
                    sh_quote(&format!("@{golden}.json")),
                    sh_quote(&format!("{base}/v2/models/{model}/infer"))
                ),
            ]);
        }
        Runtime::Torchserve => {
            let model = runtimes::torchserve_model(facts.server.as_ref())
                .unwrap_or_else(|| "MODEL".into());
            doc.para(format!(
                "`hangar validate` speaks the OpenAI API; TorchServe does not. Keep a known input and its expected prediction beside the golden sets ({}) and compare:",
                code(&format!("{golden}.input"))
            ));
            doc.shell([
                forward,
                format!(
                    "curl -fsS -X POST -T {} {}",
                    sh_quote(&format!("{golden}.input")),
                    sh_quote(&format!("{base}/predictions/{model}"))
                ),
            ]);
        }
        Runtime::Rayserve => {
            doc.para(format!(
                "The Serve application{} defines its own API. If it speaks the OpenAI API, `hangar validate` works against it; otherwise keep a known request and its expected answer beside the golden sets.",
                serve_application(facts)
                    .map(|a| format!(" ({a})"))
                    .unwrap_or_default()
            ));
            doc.shell([
                forward,
                format!(
                    "hangar validate --golden {} --url {base}",
                    sh_quote(&format!("{golden}.yaml"))
                ),
            ]);
        }
        _ => doc.para(format!(
            "{} does not speak the OpenAI API that `hangar validate` uses: keep a known request and its expected answer beside the golden sets and replay it through {}.",
            runtimes::label(runtime),
            code(&route.port_forward(facts.ns()))
        )),
    }
}

/// `route / → summarizer.app:deployment`, from a RayService's `serveConfigV2`.
fn serve_application(facts: &Facts<'_>) -> Option<String> {
    let route = facts.serve_config("route_prefix").into_iter().next()?;
    let import = facts.serve_config("import_path").into_iter().next()?;
    Some(format!("route {} → {}", code(&route), code(&import)))
}
