//! Hangar's Kubernetes I/O: a Snapshot from files, or from a live cluster (read-only).

pub mod files;
mod kustomize;
pub mod live;
pub mod triage_files;

pub use files::load_paths;
