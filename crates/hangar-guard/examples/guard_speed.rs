//! Times redaction and injection scanning of a realistic 4 KB chat prompt, clean and with
//! secrets. Run in release mode:
//!
//! ```text
//! cargo run --release -p hangar-guard --example guard_speed
//! ```

use std::hint::black_box;
use std::time::Instant;

use hangar_guard::{InjectionScanner, Redactor};

const ITERATIONS: u32 = 20_000;
const ROUNDS: u32 = 10;

/// A support conversation with code, versions, dates, numbers and a stack trace: the kind of
/// prompt a gateway sees all day.
const TURN: &str = "\
Hi! We upgraded our inference stack last week (vLLM 0.6.3 -> 0.8.5, CUDA 12.4, driver 550.90.07) \
and since 2025-03-14 the p99 latency of /v1/chat/completions went from 420 ms to 1.9 s on the \
8xH100 nodes. Nothing else changed except max_num_seqs=256 and gpu_memory_utilization=0.92. \
Here is the relevant part of the config:\n\n\
```yaml\nmodel: meta-llama/Llama-3.1-70B-Instruct\ntensor_parallel_size: 8\nmax_model_len: 32768\n\
enable_prefix_caching: true\n```\n\n\
The logs show lines like `INFO 03-14 12:30:45 metrics.py:351] Avg prompt throughput: 1520.3 \
tokens/s, Running: 212 reqs, Pending: 37 reqs, GPU KV cache usage: 97.8%` and every few \
minutes a preemption warning. Could the new scheduler be preempting more often because of the \
larger batch? Our traffic is about 35 requests per second with prompts of 2-3k tokens. \
What would you check first, and in which order? Please answer in short bullet points.\n\n";

fn main() {
    let mut clean = String::new();
    while clean.len() < 4096 {
        clean.push_str(TURN);
    }
    clean.truncate(4096);
    let secrets = format!(
        "{}\nMy card is 4111 1111 1111 1111, mail me at jane.doe@example.com or call \
         +1 (415) 555-0123; the key we use is sk-{} and the header was Authorization: Bearer \
         abc123def456ghi789jkl012.",
        &clean[..3700],
        "T3BlbkFJ9x".repeat(5)
    );
    let non_ascii = clean.replace("Hi!", "Grüße aus München — 你好 🙂!");
    // Every `@` wakes the e-mail pattern, which reads letters of any script around it.
    let addresses = non_ascii.replace(
        "Could the",
        "Schreib an jürgen@bücher.de oder @ops: could the",
    );

    let compiling = Instant::now();
    let redactor = Redactor::default();
    let scanner = InjectionScanner::default();
    println!(
        "rules compiled in {:.1} ms; µs per call, best of {ROUNDS} rounds of {} calls (build \
         with --release)\n",
        compiling.elapsed().as_secs_f64() * 1e3,
        ITERATIONS / ROUNDS
    );
    for (name, prompt) in [
        ("clean 4 KB", clean.as_str()),
        ("with secrets", secrets.as_str()),
        ("non-ASCII", non_ascii.as_str()),
        ("with @s", addresses.as_str()),
    ] {
        let redact = time(|| redactor.redact(black_box(prompt)).found.len());
        let scan = time(|| scanner.scan(black_box(prompt)).map_or(0, |s| s.rules.len()));
        let both = time(|| {
            redactor.redact(black_box(prompt)).found.len()
                + scanner.scan(black_box(prompt)).map_or(0, |s| s.rules.len())
        });
        let found = redactor.redact(prompt).found;
        println!(
            "{name:<13} {:>5} bytes  redact {redact:>6.1} µs  scan {scan:>6.1} µs  \
             both {both:>6.1} µs  found {found:?}",
            prompt.len()
        );
    }
}

/// Microseconds per call of `f`: the best of [`ROUNDS`] rounds after a warm-up, so that other
/// work on the machine skews the figure as little as possible.
fn time(mut f: impl FnMut() -> usize) -> f64 {
    let per_round = ITERATIONS / ROUNDS;
    let mut sink = 0;
    for _ in 0..per_round {
        sink += f();
    }
    let mut best = f64::INFINITY;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..per_round {
            sink += f();
        }
        best = best.min(start.elapsed().as_secs_f64() * 1e6 / f64::from(per_round));
    }
    black_box(sink);
    best
}
