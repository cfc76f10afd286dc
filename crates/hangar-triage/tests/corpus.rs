#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The triage corpus: one YAML file per case under `corpus/`, each a real failure written as the
//! software prints it. Every case goes through the same path as a cluster dump — parsed into a
//! snapshot, events indexed, logs attached, `collect::pod_evidence`, then `rules::diagnose` — and
//! the verdict is compared with the expected category and side.
//!
//! `docs/triage-corpus.md` is generated from the results; refresh it with
//! `HANGAR_BLESS=1 cargo test -p hangar-triage --test corpus`.
//!
//! A case file is a YAML stream: first a `TriageCase` document (name, runtime, where the message
//! format was learned, the expected verdict, events in a compact form, logs per container), then
//! the Pod, and optionally its Node and full `Event` objects.
//!
//! `corpus-holdout/` and `corpus-holdout-2/` hold cases in the same format written by people who
//! had not read the rules (see `ROUNDS`). They are loaded the same way and reported apart in the
//! generated page: they measure, they do not gate (no accuracy threshold), but a case that does
//! not load fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use hangar_core::snapshot::Object;
use hangar_core::{Origin, Runtime, snapshot_from_text};
use hangar_triage::collect::{EventIndex, pod_evidence};
use hangar_triage::rules::{RULES, diagnose};
use hangar_triage::{Category, LogTail, Logs, PodEvidence, Side};
use serde::Deserialize;
use serde_json::json;

/// Below this share of cases with the right category and side, the test fails.
const MIN_ACCURACY: f64 = 0.90;
const MIN_CASES: usize = 50;
/// Runtimes the corpus must cover.
const RUNTIMES: &[&str] = &["vllm", "tgi", "triton", "ollama", "sglang"];

#[derive(Debug, Deserialize)]
struct Case {
    metadata: Meta,
    runtime: String,
    learned_from: Vec<String>,
    expect: Expect,
    #[serde(default)]
    observed_at: Option<String>,
    #[serde(default)]
    events: Vec<CompactEvent>,
    #[serde(default)]
    node_events: Vec<CompactEvent>,
    #[serde(default)]
    logs: BTreeMap<String, LogPair>,
}

#[derive(Debug, Deserialize)]
struct Meta {
    name: String,
}

#[derive(Debug, Deserialize)]
struct Expect {
    category: String,
    #[serde(default)]
    side: Option<String>,
}

/// An event written in one line: `{type: Warning, reason: BackOff, message: …, count: 12}`.
#[derive(Debug, Deserialize)]
struct CompactEvent {
    #[serde(rename = "type")]
    kind: String,
    reason: String,
    message: String,
    #[serde(default)]
    count: Option<i64>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    first: Option<String>,
    #[serde(default)]
    last: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct LogPair {
    #[serde(default)]
    current: Option<String>,
    #[serde(default)]
    previous: Option<String>,
}

/// One case's outcome.
struct Outcome {
    name: String,
    runtime: String,
    learned_from: Vec<String>,
    expected: (Category, Option<Side>),
    got: (Category, Option<Side>),
    rule: &'static str,
}

impl Outcome {
    fn right(&self) -> bool {
        self.expected == self.got
    }
}

/// The corpus the rules were written against; it gates at `MIN_ACCURACY`.
const CORPUS: &str = "corpus";
/// A set of cases written without reading the rules; measured, never gated.
struct Round {
    dir: &'static str,
    title: &'static str,
    /// What happened with the set, so its figure is read for what it is.
    history: &'static str,
}

const ROUNDS: &[Round] = &[
    Round {
        dir: "corpus-holdout",
        title: "Held-out round 1",
        history: "They were written from public reports by someone who had not read the rules,\ntheir documentation or the corpus. Their first measurement was **10/30 (33.3%)**. The rules were\nthen changed to close the gaps these cases showed — a catch-all crash rule winning over specific\nerrors, pod-level reasons and sandbox or start errors nobody read, running containers called\nhealthy while their log showed every request failing — so the figure below is no longer a\nmeasure of unseen failures; round 2 is.",
    },
    Round {
        dir: "corpus-holdout-2",
        title: "Held-out round 2",
        history: "They were written after the changes that followed round 1, by someone who had read\nneither the rules nor round 1, and measured once: this is the figure for failures the rules' authors\ndid not see. A rule is not changed to make one of these pass.",
    },
];

/// The case files of one corpus directory, sorted.
fn case_paths(dir: &str) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
    paths.sort();
    paths
}

fn runtime(name: &str) -> Runtime {
    const ALL: &[Runtime] = &[
        Runtime::Vllm,
        Runtime::Tgi,
        Runtime::Tei,
        Runtime::Triton,
        Runtime::Ollama,
        Runtime::Sglang,
        Runtime::Llamacpp,
        Runtime::Torchserve,
        Runtime::Tfserving,
        Runtime::Mlserver,
        Runtime::Nim,
        Runtime::Rayserve,
        Runtime::Kserve,
        Runtime::Seldon,
        Runtime::Kaito,
        Runtime::Kubeai,
        Runtime::Lmdeploy,
        Runtime::Localai,
        Runtime::Other,
    ];
    *ALL.iter()
        .find(|r| r.as_str() == name)
        .unwrap_or_else(|| panic!("unknown runtime {name}"))
}

fn side(name: &Option<String>) -> Option<Side> {
    name.as_deref()
        .map(|s| Side::parse(s).unwrap_or_else(|| panic!("unknown side {s}")))
}

/// The 1-based line of each list item of the top-level key `key` (`events:`).
fn item_lines(text: &str, key: &str) -> Vec<u32> {
    let mut lines = Vec::new();
    let mut inside = false;
    for (i, line) in text.lines().enumerate() {
        if line == "---" {
            break;
        }
        if !line.starts_with(' ') && !line.starts_with('-') && !line.is_empty() {
            inside = line.trim_end() == format!("{key}:");
            continue;
        }
        if inside && line.starts_with("  - ") {
            lines.push(i as u32 + 1);
        }
    }
    lines
}

/// The 1-based line where the block of `logs.<container>.<which>` starts.
fn log_line(text: &str, container: &str, which: &str) -> Option<u32> {
    let mut in_logs = false;
    let mut in_container = false;
    for (i, line) in text.lines().enumerate() {
        if line == "---" {
            break;
        }
        if !line.starts_with(' ') && !line.is_empty() {
            in_logs = line.trim_end() == "logs:";
            in_container = false;
            continue;
        }
        if in_logs && line.starts_with("  ") && !line.starts_with("   ") {
            in_container = line.trim().trim_end_matches(':') == container;
            continue;
        }
        if in_container
            && line.trim_start().starts_with(&format!("{which}:"))
            && line.starts_with("    ")
            && !line.starts_with("     ")
        {
            return Some(i as u32 + 2);
        }
    }
    None
}

fn event_object(
    e: &CompactEvent,
    index: usize,
    about_kind: &str,
    namespace: &str,
    name: &str,
) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": format!("{name}.{index}"), "namespace": if about_kind == "Node" { "default" } else { namespace }},
        "involvedObject": {"kind": about_kind, "namespace": if about_kind == "Node" { "" } else { namespace }, "name": name},
        "type": e.kind,
        "reason": e.reason,
        "message": e.message,
        "count": e.count.unwrap_or(1),
        "source": {"component": e.source.clone().unwrap_or_else(|| "kubelet".into())},
        "firstTimestamp": e.first.clone().or_else(|| e.last.clone()),
        "lastTimestamp": e.last.clone(),
    })
}

/// Reads one case file of `dir` into its case and the pod's evidence, through the collector.
fn load(dir: &str, path: &Path) -> (Case, PodEvidence) {
    let text = std::fs::read_to_string(path).unwrap();
    let relative = format!(
        "crates/hangar-triage/{dir}/{}",
        path.file_name().unwrap().to_string_lossy()
    );
    let file: Arc<str> = Arc::from(relative.as_str());
    let mut snapshot = snapshot_from_text(&relative, &text);
    assert!(
        snapshot.errors.is_empty(),
        "{relative}: {:?}",
        snapshot.errors
    );
    let header = snapshot
        .others
        .iter()
        .find(|o| o.object.kind == "TriageCase")
        .unwrap_or_else(|| panic!("{relative}: no TriageCase document"));
    let case: Case = serde_json::from_value(header.object.body.clone())
        .unwrap_or_else(|e| panic!("{relative}: {e}"));
    assert_eq!(snapshot.pods.len(), 1, "{relative}: exactly one Pod");
    let pod_ref = snapshot.pods[0].object_ref();
    let node_name = snapshot.pods[0]
        .object
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone());
    for (key, about, list) in [
        ("events", "Pod", &case.events),
        ("node_events", "Node", &case.node_events),
    ] {
        let lines = item_lines(&text, key);
        assert_eq!(
            lines.len(),
            list.len(),
            "{relative}: write each of {key} as `  - {{…}}`"
        );
        for (i, e) in list.iter().enumerate() {
            let name = if about == "Node" {
                node_name
                    .clone()
                    .unwrap_or_else(|| panic!("{relative}: node_events need spec.nodeName"))
            } else {
                pod_ref.name.clone()
            };
            let object =
                Object::decode(event_object(e, i, about, &pod_ref.namespace, &name)).unwrap();
            snapshot.insert(object, Origin::file(file.clone(), lines[i]));
        }
    }
    let mut logs = Logs::default();
    for (container, pair) in &case.logs {
        for (which, content) in [("current", &pair.current), ("previous", &pair.previous)] {
            let Some(content) = content else { continue };
            let tail = LogTail {
                source: relative.clone(),
                first_line: log_line(&text, container, which),
                lines: content.lines().map(str::to_owned).collect(),
                truncated: false,
            };
            assert!(
                tail.first_line.is_some(),
                "{relative}: logs.{container}.{which} not found"
            );
            let key = (
                pod_ref.namespace.clone(),
                pod_ref.name.clone(),
                container.clone(),
            );
            if which == "current" {
                logs.current.insert(key, tail);
            } else {
                logs.previous.insert(key, tail);
            }
        }
    }
    let events = EventIndex::new(&snapshot);
    let mut evidence = pod_evidence(
        &snapshot.pods[0],
        runtime(&case.runtime),
        &snapshot,
        &events,
        &logs,
    );
    evidence.observed_at = case.observed_at.clone();
    (case, evidence)
}

fn run_corpus(dir: &str) -> Vec<Outcome> {
    case_paths(dir)
        .iter()
        .map(|path| {
            let (case, evidence) = load(dir, path);
            let stem = path.file_stem().unwrap().to_string_lossy();
            assert_eq!(case.metadata.name, stem, "the case is named after its file");
            let verdict = diagnose(&evidence);
            assert!(
                RULES.iter().any(|r| r.id == verdict.rule)
                    || matches!(verdict.rule, "TRI-HEALTHY" | "TRI-UNKNOWN"),
                "{stem}: verdict from an unlisted rule {}",
                verdict.rule
            );
            Outcome {
                name: case.metadata.name,
                runtime: case.runtime,
                learned_from: case.learned_from,
                expected: (
                    Category::parse(&case.expect.category)
                        .unwrap_or_else(|| panic!("{stem}: unknown category")),
                    side(&case.expect.side),
                ),
                got: (verdict.category, verdict.side),
                rule: verdict.rule,
            }
        })
        .collect()
}

fn verdict_text((category, side): (Category, Option<Side>)) -> String {
    match side {
        Some(side) => format!("{category} / {side}"),
        None => category.to_string(),
    }
}

fn share(right: usize, total: usize) -> String {
    format!(
        "{right}/{total} ({:.1}%)",
        100.0 * right as f64 / total.max(1) as f64
    )
}

/// How each family picks its side; the reasoning is written at the top of each rule module.
const SIDES: &str = "
### How the side is decided

- **host_oom** — *configuration* when the container's own memory limit was hit; *infrastructure* when
  the node ran out (MemoryPressure, an eviction, or no limit at all).
- **gpu_oom** — *configuration* when it happens before the server ever served (context length,
  memory fraction, parallelism); *infrastructure* (capacity) when the same configuration had loaded
  and served, shown by ready or request lines before the error, or by hours of uptime when the log
  tail no longer holds the start-up.
- **gpu_hardware** — *infrastructure*. Xid 48, 61–64, 74, 79, 92, 94, 95, 119, 120 and 140 count as
  hardware; an Xid on the node ranks below a cause the pod's own log names unless the pod also shows
  GPU-level errors. Xid 13/31/43 go to **crash**.
- **nccl** — *infrastructure* for timeouts and transport errors; *configuration* when /dev/shm is too
  small for NCCL's segments.
- **scheduling** — *infrastructure* for too few GPUs, preemption, NotReady nodes and disk-pressure
  evictions; *configuration* for an untolerated GPU taint, a selector no node matches, or an unbound
  claim.
- **image_pull** — *configuration* for a wrong name or tag and refused credentials; *infrastructure*
  for rate limits, timeouts and full disks.
- **model_load** — *model* for a repository, revision or file that does not exist, unreadable
  weights and unsupported architectures; *configuration* for gated repositories and tokens and for
  `--trust-remote-code`; *infrastructure* when the hub throttles downloads.
- **config**, **probe** — *configuration*, a crashing sidecar beside a ready server included.
  **network** — *infrastructure*, except a server bound to loopback (*configuration*). **crash** —
  *configuration*, at low confidence: the server build, its kernels or options; also a server that
  stays up while its log shows every request failing.
- GPU memory held by another process is *infrastructure*, unless the node shares GPUs on purpose
  (time-slicing or MPS): then *configuration*. A disk filled by a cache the pod never declared
  (no ephemeral-storage request) is **scheduling**, *configuration*. Object-store credentials the
  store refuses are **model_load**, *configuration*. A device plugin that cannot allocate what the
  scheduler promised (`UnexpectedAdmissionError`) is **scheduling**, *infrastructure*.

### Adding a case

One YAML file per case in `crates/hangar-triage/corpus/`, named after the case: a `TriageCase`
document (`runtime`, `learned_from` — the public issue or document the message format comes from —,
`expect`, optional `observed_at`, `events` and `node_events` as one-line mappings, `logs` per
container with `current` and `previous` blocks), then the Pod as `kubectl get -o yaml` prints it,
and optionally its Node. Write the logs as the software prints them; if a rule then gets it wrong,
fix the rule, not the case. `HANGAR_CORPUS_SHOW=<case>` prints a case's verdict in full
(`cargo test -p hangar-triage --test corpus verdicts -- --nocapture`).
";

/// `docs/triage-corpus.md`.
fn render(outcomes: &[Outcome], rounds: &[Vec<Outcome>]) -> String {
    let right = outcomes.iter().filter(|o| o.right()).count();
    let mut out = String::new();
    out.push_str("# Triage corpus\n\n");
    out.push_str("<!-- Generated by `crates/hangar-triage/tests/corpus.rs`; do not edit. A test fails when it is stale:\n     refresh with `HANGAR_BLESS=1 cargo test -p hangar-triage --test corpus`. -->\n\n");
    let _ = writeln!(
        out,
        "`hangar triage` gives each pod a verdict — a category, the side it falls on (model, configuration,\ninfrastructure), the evidence and the next steps — from {} rules over its status, events, node and logs.\nThey are measured on {} cases under `crates/hangar-triage/corpus/`, each written from what the real\nsoftware prints, as learned from the public issue or document cited with the case. Every case goes\nthrough the same collector as a cluster dump. A case counts as right when both the category and the\nside match; the test fails below {:.0}%.\n",
        RULES.len(),
        outcomes.len(),
        MIN_ACCURACY * 100.0
    );
    out.push_str("## Rules\n\n| Id | Recognises |\n|---|---|\n");
    for rule in RULES {
        let _ = writeln!(out, "| {} | {} |", rule.id, rule.title);
    }
    out.push_str("\nWhen no rule fires the verdict is `healthy` (every container running and ready, no recent\nrestart or warning) or `unknown`, with what was examined as evidence.\n");
    out.push_str(SIDES);
    out.push_str("\n## Accuracy\n\n");
    let _ = writeln!(out, "**Overall: {}.**\n", share(right, outcomes.len()));
    render_category_table(&mut out, outcomes);
    out.push_str("\n| Runtime | Cases | Right |\n|---|---|---|\n");
    let runtimes: BTreeSet<&str> = outcomes.iter().map(|o| o.runtime.as_str()).collect();
    for name in runtimes {
        let of: Vec<_> = outcomes.iter().filter(|o| o.runtime == name).collect();
        let ok = of.iter().filter(|o| o.right()).count();
        let _ = writeln!(out, "| {name} | {} | {} |", of.len(), share(ok, of.len()));
    }
    out.push_str("\n### Misses\n\n");
    let misses: Vec<_> = outcomes.iter().filter(|o| !o.right()).collect();
    if misses.is_empty() {
        out.push_str("None.\n");
    } else {
        out.push_str("| Case | Expected | Got (rule) |\n|---|---|---|\n");
        for o in misses {
            let _ = writeln!(
                out,
                "| {} | {} | {} ({}) |",
                o.name,
                verdict_text(o.expected),
                verdict_text(o.got),
                o.rule
            );
        }
    }
    out.push_str("\n## Cases\n\n");
    render_case_list(&mut out, outcomes);
    for (round, holdout) in ROUNDS.iter().zip(rounds) {
        render_holdout(&mut out, round, holdout);
    }
    out
}

/// One row per case: where its message format comes from, what was expected and what came out.
fn render_case_list(out: &mut String, outcomes: &[Outcome]) {
    out.push_str("| Case | Runtime | Message format learned from | Expected | Got | |\n|---|---|---|---|---|---|\n");
    for o in outcomes {
        let sources: Vec<String> = o
            .learned_from
            .iter()
            .map(|url| format!("[{}]({url})", short_url(url)))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            o.name,
            o.runtime,
            sources.join(", "),
            verdict_text(o.expected),
            verdict_text(o.got),
            if o.right() { "✓" } else { "✗" }
        );
    }
}

/// Right answers per expected category, in the order of `Category::ALL`.
fn render_category_table(out: &mut String, outcomes: &[Outcome]) {
    out.push_str("| Expected category | Cases | Right |\n|---|---|---|\n");
    let categories: BTreeSet<Category> = outcomes.iter().map(|o| o.expected.0).collect();
    for category in Category::ALL.iter().filter(|c| categories.contains(c)) {
        let of: Vec<_> = outcomes
            .iter()
            .filter(|o| o.expected.0 == *category)
            .collect();
        let ok = of.iter().filter(|o| o.right()).count();
        let _ = writeln!(
            out,
            "| {category} | {} | {} |",
            of.len(),
            share(ok, of.len())
        );
    }
}

/// A held-out section: measured the same way, reported apart, never part of the threshold.
fn render_holdout(out: &mut String, round: &Round, holdout: &[Outcome]) {
    let right = holdout.iter().filter(|o| o.right()).count();
    let _ = writeln!(out, "\n## {}\n", round.title);
    let _ = writeln!(
        out,
        "{} cases under `crates/hangar-triage/{}/`. {} They go through the same loader and\ncollector as the corpus, and do not count towards its {:.0}% threshold.\n",
        holdout.len(),
        round.dir,
        round.history,
        MIN_ACCURACY * 100.0
    );
    let _ = writeln!(
        out,
        "**{} overall: {}.**\n",
        round.title,
        share(right, holdout.len())
    );
    render_category_table(out, holdout);
    let _ = writeln!(out, "\n### {} misses\n", round.title);
    let misses: Vec<_> = holdout.iter().filter(|o| !o.right()).collect();
    if misses.is_empty() {
        out.push_str("None.\n");
    } else {
        out.push_str("| Case | Expected | Got | Rule that fired |\n|---|---|---|---|\n");
        for o in misses {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                o.name,
                verdict_text(o.expected),
                verdict_text(o.got),
                o.rule
            );
        }
    }
    let _ = writeln!(out, "\n### {} case list\n", round.title);
    render_case_list(out, holdout);
}

/// `vllm-project/vllm#2248` for GitHub issues, the host and path otherwise.
fn short_url(url: &str) -> String {
    let bare = url
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    if let Some(rest) = bare.strip_prefix("github.com/") {
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() >= 4 && matches!(parts[2], "issues" | "pull") {
            return format!("{}/{}#{}", parts[0], parts[1], parts[3]);
        }
        if parts.len() >= 2 {
            return format!("{}/{}: {}", parts[0], parts[1], parts.last().unwrap_or(&""));
        }
    }
    bare.to_owned()
}

#[test]
fn the_corpus_is_diagnosed_and_documented() {
    let started = Instant::now();
    let outcomes = run_corpus(CORPUS);
    let elapsed = started.elapsed();
    // Loading is the held-out sets' only gate: a case that does not parse panics in `load`.
    let rounds: Vec<Vec<Outcome>> = ROUNDS.iter().map(|r| run_corpus(r.dir)).collect();
    assert!(outcomes.len() >= MIN_CASES, "only {} cases", outcomes.len());
    for (round, holdout) in ROUNDS.iter().zip(&rounds) {
        assert!(
            !holdout.is_empty(),
            "no held-out cases under {}/",
            round.dir
        );
    }

    for o in outcomes.iter().chain(rounds.iter().flatten()) {
        assert!(
            !o.learned_from.is_empty(),
            "{}: cite where the format was learned",
            o.name
        );
        for url in &o.learned_from {
            assert!(url.starts_with("https://"), "{}: {url}", o.name);
        }
    }
    for category in Category::ALL {
        let n = outcomes.iter().filter(|o| o.expected.0 == category).count();
        assert!(
            n >= 2,
            "category {category} has {n} cases; every category needs two"
        );
    }
    for name in RUNTIMES {
        assert!(
            outcomes.iter().any(|o| o.runtime == *name),
            "no {name} case"
        );
    }

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/triage-corpus.md");
    let expected = render(&outcomes, &rounds);
    if std::env::var_os("HANGAR_BLESS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    let right = outcomes.iter().filter(|o| o.right()).count();
    let misses: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.right())
        .map(|o| {
            format!(
                "{}: expected {}, got {} ({})",
                o.name,
                verdict_text(o.expected),
                verdict_text(o.got),
                o.rule
            )
        })
        .collect();
    let accuracy = right as f64 / outcomes.len() as f64;
    assert!(
        accuracy >= MIN_ACCURACY,
        "accuracy {:.1}% is below {:.0}%:\n{}",
        accuracy * 100.0,
        MIN_ACCURACY * 100.0,
        misses.join("\n")
    );
    assert!(
        actual == expected,
        "docs/triage-corpus.md is stale: run `HANGAR_BLESS=1 cargo test -p hangar-triage --test corpus`\nmisses:\n{}",
        misses.join("\n")
    );
    assert!(elapsed.as_secs() < 10, "the corpus took {elapsed:?}");
}

/// Every verdict in the corpus quotes its evidence with a source and gives next steps that use
/// the pod's own namespace and name.
#[test]
fn verdicts_carry_evidence_and_concrete_next_steps() {
    // Held-out verdicts are only shown (`HANGAR_CORPUS_SHOW`), never asserted on.
    let gated = case_paths(CORPUS).into_iter().map(|p| (CORPUS, p, true));
    let shown = ROUNDS
        .iter()
        .flat_map(|r| case_paths(r.dir).into_iter().map(|p| (r.dir, p, false)));
    for (dir, path, gate) in gated.chain(shown) {
        let (case, evidence) = load(dir, &path);
        let verdict = diagnose(&evidence);
        // `HANGAR_CORPUS_SHOW=name` prints that case's verdict in full, for writing cases.
        if std::env::var("HANGAR_CORPUS_SHOW").is_ok_and(|n| n == case.metadata.name || n == "all")
        {
            println!("{}", serde_json::to_string_pretty(&verdict).unwrap());
        }
        if std::env::var("HANGAR_CORPUS_SHOW").is_ok_and(|n| n == "summary") {
            let expected = format!(
                "{}/{}",
                case.expect.category,
                case.expect.side.as_deref().unwrap_or("-")
            );
            let got = format!(
                "{}/{}",
                verdict.category,
                verdict.side.map(|s| s.as_str()).unwrap_or("-")
            );
            let mark = if expected == got { "ok  " } else { "MISS" };
            println!(
                "{mark} {:45} expected {expected:32} got {got:32} {}",
                case.metadata.name, verdict.rule
            );
        }
        if !gate {
            continue;
        }
        assert!(
            !verdict.evidence.is_empty(),
            "{}: no evidence",
            case.metadata.name
        );
        for item in &verdict.evidence {
            assert!(
                !item.source.is_empty() && !item.text.is_empty(),
                "{}: {item:?}",
                case.metadata.name
            );
        }
        assert!(
            !verdict.next_steps.is_empty(),
            "{}: no next steps",
            case.metadata.name
        );
        if verdict.category != Category::Healthy {
            assert!(
                verdict.next_steps.iter().any(|s| s.contains("kubectl")
                    && (s.contains(&evidence.pod.name) || s.contains("node"))),
                "{}: no kubectl command for the pod: {:#?}",
                case.metadata.name,
                verdict.next_steps
            );
        }
    }
}
