//! What triage concludes: a category, the side it falls on, how sure it is, the evidence and the
//! next steps.

use std::fmt;

use serde::Serialize;

/// What is wrong, in the words an on-call engineer searches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// The container's cgroup memory limit (or the node's memory) was exhausted: OOMKilled, 137.
    HostOom,
    /// The accelerator's memory was exhausted: CUDA out of memory, no KV cache blocks.
    GpuOom,
    /// The GPU or its interconnect failed: Xid 79/48/63/64/74/94/95, NVML errors.
    GpuHardware,
    /// Distributed inference stalled or failed between ranks: NCCL timeouts and errors.
    Nccl,
    /// The pod cannot be placed: not enough GPUs, untolerated taints, affinity.
    Scheduling,
    /// The image cannot be pulled: wrong name or tag, registry credentials, rate limits.
    ImagePull,
    /// The model cannot be loaded: gated or missing repository, missing files, bad weights,
    /// unsupported architecture.
    ModelLoad,
    /// The server's configuration is invalid: unknown flags, bad values, missing Secrets.
    Config,
    /// Probes kill or hold back a container that is otherwise working (often a slow model load).
    Probe,
    /// The server cannot reach or be reached: DNS, refused connections, ports.
    Network,
    /// The process crashed for another reason.
    Crash,
    Healthy,
    Unknown,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::HostOom => "host_oom",
            Category::GpuOom => "gpu_oom",
            Category::GpuHardware => "gpu_hardware",
            Category::Nccl => "nccl",
            Category::Scheduling => "scheduling",
            Category::ImagePull => "image_pull",
            Category::ModelLoad => "model_load",
            Category::Config => "config",
            Category::Probe => "probe",
            Category::Network => "network",
            Category::Crash => "crash",
            Category::Healthy => "healthy",
            Category::Unknown => "unknown",
        }
    }

    pub fn parse(text: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == text)
    }

    pub const ALL: [Category; 13] = [
        Category::HostOom,
        Category::GpuOom,
        Category::GpuHardware,
        Category::Nccl,
        Category::Scheduling,
        Category::ImagePull,
        Category::ModelLoad,
        Category::Config,
        Category::Probe,
        Category::Network,
        Category::Crash,
        Category::Healthy,
        Category::Unknown,
    ];
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whose problem it is: the model team's, the service's configuration, or the platform's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The model artifact itself: weights, files, architecture, its repository.
    Model,
    /// How the service is configured: flags, limits, probes, Secrets, manifests.
    Configuration,
    /// What it runs on: nodes, GPUs, drivers, network, registries, capacity.
    Infrastructure,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Model => "model",
            Side::Configuration => "configuration",
            Side::Infrastructure => "infrastructure",
        }
    }

    pub fn parse(text: &str) -> Option<Side> {
        [Side::Model, Side::Configuration, Side::Infrastructure]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One fact a diagnosis rests on: the exact text and where it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// Where: `Pod/ml/vllm-0 status.containerStatuses[vllm].lastState.terminated`,
    /// `log vllm (previous) dump/ml/vllm-0/logs.txt:812`, `Event Warning FailedScheduling`.
    pub source: String,
    /// The status fields, event message or log line, verbatim (long lines are shortened).
    pub text: String,
    /// When it happened, if known (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// What one rule concluded about one pod.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnosis {
    /// The rule that concluded it (`TRI-GPU-OOM-STARTUP`).
    pub rule: &'static str,
    pub category: Category,
    /// `None` for `healthy` and `unknown`.
    pub side: Option<Side>,
    /// From 0 to 1: how sure the rule is, given how specific its evidence is.
    pub confidence: f32,
    /// One sentence: what happened.
    pub summary: String,
    pub evidence: Vec<Evidence>,
    /// Concrete steps for this runtime and configuration, kubectl commands to confirm included.
    pub next_steps: Vec<String>,
}

/// Triage's answer for an endpoint, or for one of its pods where the pods differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// The endpoint's id (`Deployment/ml/vllm-llama`).
    pub endpoint: String,
    /// The pod the verdict is about (`ml/vllm-llama-7c9d-x2k4`); `None` when the endpoint has no
    /// pods in the input.
    pub pod: Option<String>,
    #[serde(flatten)]
    pub diagnosis: Diagnosis,
}
