//! `fake-upstream`: a minimal OpenAI-compatible model server for load tests (see
//! `hangar_bench::upstream`). Prints `fake-upstream: listening on ADDR` on stderr when ready.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use hangar_bench::upstream::{self, StreamShape};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A fast fake model server: a fixed small chat answer, or a paced stream.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Token events per streamed answer.
    #[arg(long, default_value_t = 100)]
    chunks: usize,
    /// Milliseconds before each token event.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// Milliseconds before an answer not streamed (its whole generation).
    #[arg(long, default_value_t = 0)]
    whole_delay_ms: u64,
    /// Runtime threads; 1 runs everything on the calling thread.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = hangar_bench::runtime(args.threads)?;
    let shape = StreamShape {
        chunks: args.chunks,
        interval: Duration::from_millis(args.interval_ms),
        whole_delay: Duration::from_millis(args.whole_delay_ms),
    };
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        eprintln!("fake-upstream: listening on {}", listener.local_addr()?);
        upstream::serve(listener, shape).await;
        Ok(())
    })
}
