//! Test support for Hangar: Kubernetes objects as JSON, and a fake Kubernetes API server on
//! loopback that speaks enough of the real wire protocol (discovery, paginated lists, metadata-only
//! lists, `Status` errors) for the live loader to be tested without a cluster.

pub mod fake_api;
pub mod fake_openai;
pub mod objects;
pub mod redis;

pub use fake_api::{CustomResource, FakeApiServer, FakeApiServerBuilder, RecordedRequest};
