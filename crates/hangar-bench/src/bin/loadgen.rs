//! `loadgen`: HTTP/1.1 load for the gateway benchmark (see `hangar_bench::load`). Prints one
//! JSON object on stdout (latencies in milliseconds) and a one-line summary on stderr.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use hangar_bench::load::{self, LoopRun, RateRun, StreamsRun, Target};
use hangar_bench::upstream::{self, StreamShape};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Load for an OpenAI-compatible server: constant rate, closed loop, or many open streams.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    target: TargetArgs,
    /// Runtime threads; 1 runs everything on the calling thread.
    #[arg(long, default_value_t = 1, global = true)]
    threads: usize,
    /// A name for this run, copied into the JSON.
    #[arg(long, default_value = "", global = true)]
    label: String,
    /// Also serve the fake model server (`fake-upstream`) on this address, in this process and
    /// on its thread: with one thread, the load and the answers then never wait on the
    /// scheduler for each other, so an extra hop's tail latency is its own.
    #[arg(long, global = true)]
    serve_upstream: Option<SocketAddr>,
    /// Token events per streamed answer of `--serve-upstream`.
    #[arg(long, default_value_t = 100, global = true)]
    upstream_chunks: usize,
    /// Milliseconds before each token event of `--serve-upstream`.
    #[arg(long, default_value_t = 100, global = true)]
    upstream_interval_ms: u64,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Args)]
struct TargetArgs {
    /// The server, e.g. 127.0.0.1:8080.
    #[arg(long, global = true, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// The request path.
    #[arg(long, global = true, default_value = "/v1/chat/completions")]
    path: String,
    /// Bearer token to send.
    #[arg(long, global = true)]
    key: Option<String>,
    /// Size of the user message in bytes (ordinary English text).
    #[arg(long, global = true, default_value_t = 64)]
    prompt_bytes: usize,
    /// Send this file as the body instead of the generated chat request.
    #[arg(long, global = true)]
    body: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Open loop: a constant rate, latency counted from when each request was due.
    Rate {
        /// Requests per second.
        #[arg(long, default_value_t = 3000.0)]
        rate: f64,
        /// Keep-alive connections sharing the schedule.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Seconds sent before measuring.
        #[arg(long, default_value_t = 3.0)]
        warmup: f64,
        /// Seconds measured.
        #[arg(long, default_value_t = 20.0)]
        duration: f64,
    },
    /// Closed loop: each connection sends again as soon as its answer is read.
    Max {
        /// Connections.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Seconds run before measuring.
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        /// Seconds measured.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
    /// Many streamed requests open at once, each on its own connection.
    Streams {
        /// Streams at once.
        #[arg(long, default_value_t = 1000)]
        streams: usize,
        /// Seconds before a stream is given up.
        #[arg(long, default_value_t = 120.0)]
        timeout: f64,
        /// Read this process's resident memory when all streams are open and at the end.
        #[arg(long)]
        watch_pid: Option<u32>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let streaming = matches!(cli.mode, Mode::Streams { .. });
    let body = match &cli.target.body {
        Some(path) => Bytes::from(
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
        ),
        None => load::chat_body(cli.target.prompt_bytes, streaming),
    };
    let target = Target {
        address: cli.target.addr,
        path: cli.target.path.clone(),
        body,
        bearer: cli.target.key.clone(),
    };
    let runtime = hangar_bench::runtime(cli.threads)?;
    let report = runtime.block_on(async {
        if let Some(address) = cli.serve_upstream {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address}"))?;
            let shape = StreamShape {
                chunks: cli.upstream_chunks,
                interval: Duration::from_millis(cli.upstream_interval_ms),
                whole_delay: Duration::ZERO,
            };
            tokio::spawn(upstream::serve(listener, shape));
        }
        match cli.mode {
            Mode::Rate {
                rate,
                connections,
                warmup,
                duration,
            } => {
                let run = RateRun {
                    rate,
                    connections,
                    warmup: seconds(warmup)?,
                    duration: seconds(duration)?,
                };
                Ok::<_, anyhow::Error>(load::constant_rate(target, run).await?)
            }
            Mode::Max {
                connections,
                warmup,
                duration,
            } => {
                let run = LoopRun {
                    connections,
                    warmup: seconds(warmup)?,
                    duration: seconds(duration)?,
                };
                Ok(load::closed_loop(target, run).await?)
            }
            Mode::Streams {
                streams,
                timeout,
                watch_pid,
            } => {
                let run = StreamsRun {
                    streams,
                    timeout: seconds(timeout)?,
                    watch_pid,
                };
                Ok(load::streams(target, run).await?)
            }
        }
    })?;
    eprintln!("{}", report.summary(&cli.label));
    println!("{}", report.to_json(&cli.label));
    Ok(())
}

fn seconds(value: f64) -> Result<Duration> {
    if !(value.is_finite() && value >= 0.0) {
        bail!("`{value}` is not a number of seconds");
    }
    Ok(Duration::from_secs_f64(value))
}
