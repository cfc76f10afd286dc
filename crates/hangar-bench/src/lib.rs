//! Tools for measuring the inference gateway on one machine: a fake OpenAI-compatible model
//! server that costs as little as possible per request ([`upstream`]), and a load generator
//! that sends a constant rate, a closed loop or a crowd of long streams and reports latency
//! percentiles from an HDR histogram ([`load`]). `bench/gateway.sh` runs them.

pub mod load;
pub mod upstream;

/// The runtime the tools run on: `threads` workers, or everything on the calling thread when
/// `threads` is 0 or 1 (the default, so the tools disturb the measurement as little as possible).
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}
