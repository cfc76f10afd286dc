//! `hangar runbook` end to end: every endpoint of the bundled examples to a directory, one
//! endpoint to stdout, and the names that match nothing or too much.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn hangar(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hangar"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn all_endpoints_of_the_examples_get_a_runbook_and_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runbooks");
    let o = hangar(&[
        "runbook",
        "--all",
        "-o",
        out.to_str().unwrap(),
        "--from",
        "examples/cluster",
        "--policy",
        "examples/hangar.yaml",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).is_empty(), "nothing on stdout with -o");
    assert!(
        stderr(&o).contains("wrote 19 runbooks and index.md"),
        "{}",
        stderr(&o)
    );

    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 20, "{files:?}");
    assert!(files.contains(&"index.md".to_owned()));
    assert!(files.contains(&"platform--vllm-llama-3-1-8b.md".to_owned()));
    assert!(files.contains(&"payments-risk--risk-narrator.md".to_owned()));

    // The index links every runbook it lists, and each link resolves.
    let index = std::fs::read_to_string(out.join("index.md")).unwrap();
    assert!(
        index.contains("19 inference endpoints in `examples/cluster`"),
        "{index}"
    );
    for file in files.iter().filter(|f| *f != "index.md") {
        assert!(
            index.contains(&format!("]({file})")),
            "{file} not linked:\n{index}"
        );
    }

    // Each page is its endpoint's, with its own commands.
    let vllm = std::fs::read_to_string(out.join("platform--vllm-llama-3-1-8b.md")).unwrap();
    for needle in [
        "# Runbook: platform/vllm-llama-3-1-8b",
        "kubectl -n platform port-forward svc/vllm-llama-3-1-8b 8000:8000",
        "kubectl -n platform rollout undo deploy/vllm-llama-3-1-8b --to-revision=$REV",
        "hangar validate --golden golden/vllm-llama-3-1-8b.yaml --url http://127.0.0.1:8000",
        "| `--gpu-memory-utilization` | 0.90 | 0.85 for OOM under load",
        "| `--max-model-len` | 16384 | 8192 |",
    ] {
        assert!(vllm.contains(needle), "missing `{needle}`:\n{vllm}");
    }
    let narrator = std::fs::read_to_string(out.join("payments-risk--risk-narrator.md")).unwrap();
    assert!(
        narrator.contains("runs in `RawDeployment` mode, which has no canary"),
        "{narrator}"
    );
    assert!(narrator.contains("**PCI DSS scope.**"), "{narrator}");
    let playground = std::fs::read_to_string(out.join("research--vllm-dev-playground.md")).unwrap();
    assert!(playground.contains("## Known risks"), "{playground}");
    assert!(
        playground.contains("**EXP-005** (critical)"),
        "{playground}"
    );
}

#[test]
fn one_endpoint_by_name_prints_its_runbook() {
    let o = hangar(&["runbook", "tgi-mistral-7b", "--from", "examples/cluster"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.starts_with("# Runbook: search/tgi-mistral-7b\n"),
        "{text}"
    );
    assert!(
        text.contains("kubectl -n search port-forward svc/tgi-mistral-7b 8080:80"),
        "{text}"
    );
    assert!(
        !text.contains("# Runbook: platform/"),
        "only the one endpoint"
    );

    // The id and namespace/name reach the same page.
    let by_id = hangar(&[
        "runbook",
        "Deployment/search/tgi-mistral-7b",
        "--from",
        "examples/cluster",
    ]);
    let by_path = hangar(&[
        "runbook",
        "search/tgi-mistral-7b",
        "--from",
        "examples/cluster",
    ]);
    assert_eq!(stdout(&by_id), text);
    assert_eq!(stdout(&by_path), text);
}

#[test]
fn an_unknown_name_exits_2_and_lists_candidates() {
    let o = hangar(&["runbook", "tgi", "--from", "examples/cluster"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("no endpoint is named `tgi`; did you mean:"),
        "{err}"
    );
    assert!(err.contains("Deployment/search/tgi-mistral-7b"), "{err}");
    assert!(err.contains("Deployment/shop/tgi-product-writer"), "{err}");
    assert!(stdout(&o).is_empty());

    let o = hangar(&["runbook", "nothing-like-it", "--from", "examples/cluster"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("the endpoints are:"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("RayService/research/ray-summarizer"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_name_two_endpoints_share_exits_2_and_lists_both() {
    let dir = tempfile::tempdir().unwrap();
    let one = |ns: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: chat, namespace: {ns}}}\nspec:\n  template:\n    metadata: {{labels: {{app: chat}}}}\n    spec:\n      containers: [{{name: vllm, image: \"vllm/vllm-openai:v0.11.0\", args: [--model, m/x-7b]}}]\n"
        )
    };
    let path = dir.path().join("two.yaml");
    std::fs::write(&path, format!("{}---\n{}", one("a"), one("b"))).unwrap();
    let o = hangar(&["runbook", "chat", "--from", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("`chat` names 2 endpoints; say which:"),
        "{err}"
    );
    assert!(
        err.contains("Deployment/a/chat") && err.contains("Deployment/b/chat"),
        "{err}"
    );

    let o = hangar(&["runbook", "b/chat", "--from", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("# Runbook: b/chat\n"));
}

#[test]
fn a_path_where_the_endpoint_belongs_is_a_clear_error() {
    let o = hangar(&["runbook", "examples/cluster"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("`examples/cluster` is a file or directory, not an endpoint: read it with `--from examples/cluster`"),
        "{}",
        stderr(&o)
    );
    let o = hangar(&["runbook"]);
    assert_eq!(o.status.code(), Some(2), "neither an endpoint nor --all");
}

#[test]
fn help_teaches_with_examples() {
    let o = hangar(&["runbook", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = stdout(&o);
    for needle in [
        "hangar runbook --all -o runbooks/ --from examples/cluster",
        "namespace/name",
        "hangar.dev/oncall",
        "--output-dir",
    ] {
        assert!(help.contains(needle), "missing `{needle}`:\n{help}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_cluster_gets_runbooks_for_its_endpoints_and_is_only_read() {
    let server = hangar_testkit::FakeApiServer::builder()
        .objects([
            hangar_testkit::objects::namespace("ml"),
            hangar_testkit::objects::deployment("ml", "llama", "vllm/vllm-openai:v0.11.0"),
            hangar_testkit::objects::service("ml", "llama"),
        ])
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.write_kubeconfig(dir.path()).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        hangar(&[
            "runbook",
            "llama",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("# Runbook: ml/llama\n"), "{text}");
    assert!(
        text.contains("kubectl -n ml rollout undo deploy/llama"),
        "{text}"
    );
    assert!(server.requests().iter().all(|r| r.method == "GET"));
}

/// Writes runbooks for the cluster `HANGAR_TEST_KUBECONFIG` points at. Run with `--ignored`.
#[test]
#[ignore = "needs a real cluster: set HANGAR_TEST_KUBECONFIG"]
fn a_real_cluster_gets_runbooks() {
    let Some(kubeconfig) = std::env::var_os("HANGAR_TEST_KUBECONFIG") else {
        eprintln!("skipped: HANGAR_TEST_KUBECONFIG is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = hangar(&[
        "runbook",
        "--all",
        "-o",
        dir.path().to_str().unwrap(),
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ]);
    assert!(matches!(out.status.code(), Some(0 | 2)), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("wrote") || err.contains("no inference endpoint found"),
        "the runbooks written, or that there is none to write, are reported: {err}"
    );
}

#[test]
fn hostile_names_are_written_as_plain_files_inside_the_output_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runbooks");
    let input = dir.path().join("hostile.yaml");
    let deployment = |meta: &str, app: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {meta}\nspec:\n  selector: {{matchLabels: {{app: {app}}}}}\n  template:\n    metadata: {{labels: {{app: {app}}}}}\n    spec:\n      containers: [{{name: vllm, image: \"vllm/vllm-openai:v0.11.0\", args: [--model, m/x-7b]}}]\n"
        )
    };
    std::fs::write(
        &input,
        [
            deployment("{name: \"../rbpwn\"}", "one"),
            deployment("{name: chat, namespace: \"../..\"}", "two"),
            deployment("{name: index}", "three"),
            deployment("{name: Index}", "four"),
        ]
        .join("---\n"),
    )
    .unwrap();
    let o = hangar(&[
        "runbook",
        "--all",
        "-o",
        out.to_str().unwrap(),
        "--from",
        input.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // Nothing beside the output directory, nothing above it.
    let mut beside: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    beside.sort();
    assert_eq!(beside, ["hostile.yaml", "runbooks"]);
    assert!(!dir.path().join("../rbpwn.md").exists());

    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    // `index` and `Index` must neither replace the index nor each other.
    assert_eq!(
        files,
        [
            "Index--deployment.md",
            "___..--chat.md",
            "___rbpwn.md",
            "index--deployment-3.md",
            "index.md"
        ]
    );
    let index = std::fs::read_to_string(out.join("index.md")).unwrap();
    assert!(index.starts_with("# Runbooks\n"), "{index}");
    for file in files.iter().filter(|f| *f != "index.md") {
        assert!(index.contains(&format!("]({file})")), "{file}:\n{index}");
    }
}

/// `--all` that finds no endpoint (a mistyped namespace, input with nothing in it) writes nothing
/// and says so, exit 2, in the words `triage` uses.
#[test]
fn all_with_no_endpoint_in_scope_is_an_error_as_for_triage() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runbooks");
    let o = hangar(&[
        "runbook",
        "--all",
        "--from",
        "examples/cluster",
        "-n",
        "nope",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let expected = "error: no inference endpoint found in examples/cluster namespace nope";
    assert!(stderr(&o).contains(expected), "{}", stderr(&o));
    assert!(!out.exists(), "no directory of no runbooks");
    let triage = hangar(&["triage", "--from", "examples/cluster", "-n", "nope"]);
    assert_eq!(triage.status.code(), Some(2));
    assert!(stderr(&triage).contains(expected), "{}", stderr(&triage));

    let o = hangar(&[
        "runbook",
        "--all",
        "--from",
        "examples/cluster",
        "-n",
        "nope",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).is_empty());

    // Input that holds no object at all says that first.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = hangar(&["runbook", "--all", "--from", empty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("no Kubernetes object in this directory")
            && err.contains("no inference endpoint found"),
        "{err}"
    );
}
