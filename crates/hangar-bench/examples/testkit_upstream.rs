//! The test kit's fake model server (`hangar_testkit::fake_openai`) on one thread, to compare
//! with `fake-upstream` under the same load (see bench/BENCHMARKS.md). Prints its address.
//!
//! cargo run --release -p hangar-bench --example testkit_upstream

use anyhow::Result;
use hangar_testkit::fake_openai::FakeOpenAi;

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let server = FakeOpenAi::builder().model("bench-model").start().await?;
        eprintln!("testkit fake: listening on {}", server.address());
        tokio::signal::ctrl_c().await?;
        eprintln!("testkit fake: {} requests recorded", server.request_count());
        Ok(())
    })
}
