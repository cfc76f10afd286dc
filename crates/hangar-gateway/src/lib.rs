//! `hangar gateway`: the inference data plane. An OpenAI-compatible reverse proxy that puts
//! authentication, per-tenant policy and limits, weighted routing, guards, a hash-chained audit
//! log and Prometheus metrics in front of model servers that have none of them.
//!
//! A request flows: authenticate → tenant policy → guards → limits → route → upstream
//! (streamed) → response guards → audit record and metrics. Each step is a plain function over
//! the request and the current [`runtime::Runtime`], which configuration reloads swap whole.

mod activity;
pub mod audit;
pub mod auth;
pub mod changes;
mod clients;
pub mod config;
pub mod error;
pub mod forwarded;
pub mod json;
pub mod limits;
pub mod metrics;
pub mod pem;
pub mod probe;
pub mod proxy;
pub mod redis;
pub mod refusals;
pub mod request;
pub mod routes;
pub mod runtime;
pub mod server;
pub mod stream;
pub mod upstream;

pub use config::GatewayConfig;
pub use server::{Server, StartError};
