//! Tools for measuring the inference gateway on one machine: a fake OpenAI-compatible model
//! server that costs as little as possible per request ([`upstream`]), and a load generator
//! that sends a constant rate, a closed loop or a crowd of long streams and reports latency
//! percentiles from an HDR histogram ([`load`]). `bench/gateway.sh` runs them.

pub mod load;
pub mod upstream;
