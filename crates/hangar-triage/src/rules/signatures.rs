//! What model servers, PyTorch, NCCL, the Hugging Face hub client and the NVIDIA stack print when
//! something goes wrong, as patterns. Learned from the projects' documentation and public issue
//! reports (the corpus cases cite them); written here in our own patterns.
//!
//! `diagnose` scans a pod's logs once with every signature ([`Hits`]) and hands the hits to each
//! rule, which takes the kinds it reads; a [`Scanner`] matches single texts (status messages,
//! events).

use std::sync::LazyLock;

use regex::{Regex, RegexSet};

use crate::evidence::{ContainerEvidence, PodEvidence};
use crate::rules::facts::{Line, still_current, superseded, tails, troubled};

/// What a log line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An allocation on the GPU failed.
    GpuOom,
    /// The server found too little GPU memory left for its KV cache at start-up.
    KvCache,
    /// Something else already holds the GPU's memory when the server starts.
    GpuMemoryHeld,
    /// The server refused to load a model, or a memory monitor killed its workers, for lack of
    /// host memory.
    HostMemory,
    NcclTimeout,
    NcclError,
    /// NCCL could not create its shared-memory segment: `/dev/shm` is too small.
    NcclShm,
    /// The GPU or its driver failed: uncorrectable ECC, fallen off the bus, NVML mismatch.
    GpuFault,
    /// A kernel faulted: illegal memory access, misaligned address, device-side assert.
    CudaAppFault,
    /// CUDA cannot reach a device it had: unknown error, no device, initialisation failure.
    CudaDeviceError,
    /// The node's NVIDIA driver is older than the CUDA version the image was built for.
    DriverTooOld,
    /// The server's engine died; the process may still exit 0 after it.
    EngineDead,
    /// The hub refused the credentials, or the repository is gated.
    HubAuth,
    /// The object store refused the credentials the model is fetched with.
    StorageAuth,
    /// The repository, revision or model tag does not exist.
    HubNotFound,
    /// The hub rate-limited the download.
    HubThrottled,
    /// A file the model needs is missing from the repository or directory.
    MissingFile,
    /// A weights or config file exists but cannot be read.
    CorruptWeights,
    /// The storage URI the model is fetched from holds no model.
    StorageEmpty,
    /// A compiled or exported model (a TensorRT plan, an ONNX file) was built for another version
    /// of the runtime, or another GPU.
    IncompatibleEngine,
    /// The model ships code the server must be told to trust.
    RemoteCode,
    /// The server does not know the model's architecture.
    UnsupportedArch,
    /// The server rejected its command line or configuration.
    BadArgs,
    /// `/dev/shm` is too small for the server's shared-memory segments (not NCCL's).
    ShmTooSmall,
    /// The server cannot write where it caches: a read-only root filesystem, or no permission.
    Unwritable,
    /// A Kubernetes service-link variable (`<NAME>_PORT=tcp://…`) took the place of a setting.
    ServiceLinkEnv,
    /// Every request fails for a setting the server lacks (no chat template).
    ServingConfig,
    NameResolution,
    /// A dependency (hub, object store, head node) did not answer.
    Unreachable,
    /// A transfer from a dependency timed out or was cut off midway.
    Interrupted,
    /// The server listens on loopback only, so nothing outside the container reaches it.
    LoopbackOnly,
    /// The process died on a signal.
    Signal,
    /// `Traceback (most recent call last):`.
    TracebackStart,
    /// The exception line of a Python traceback.
    Exception,
    /// The server finished starting and serves.
    Ready,
    /// Requests were served.
    Traffic,
    /// A request was answered with a 4xx or 5xx status.
    RequestFailed,
    /// A serving framework stopped a replica that crashed or failed its health check.
    ReplicaFailed,
    /// The model is being downloaded or loaded.
    Loading,
}

impl Kind {
    /// Whether a line of this kind names a cause by itself. The catch-all crash rules step aside
    /// when the crashed container's log holds one: an abort next to an explicit OOM line is the
    /// OOM, not the abort.
    pub(crate) fn names_a_cause(self) -> bool {
        !matches!(
            self,
            Kind::Signal
                | Kind::TracebackStart
                | Kind::Exception
                | Kind::EngineDead
                | Kind::Ready
                | Kind::Traffic
                | Kind::RequestFailed
                | Kind::ReplicaFailed
                | Kind::Loading
        )
    }
}

/// One recognisable message.
#[derive(Debug)]
pub struct Signature {
    /// Stable id, for documentation and tests.
    pub id: &'static str,
    pub(crate) kind: Kind,
    /// Who prints it.
    pub printed_by: &'static str,
    pub pattern: &'static str,
}

const fn sig(
    id: &'static str,
    kind: Kind,
    printed_by: &'static str,
    pattern: &'static str,
) -> Signature {
    Signature {
        id,
        kind,
        printed_by,
        pattern,
    }
}

/// Every signature, by kind. Word boundaries are ASCII (`(?-u:\b)`): a Unicode `\b` makes the
/// regex engine give up its fast automaton on the first non-ASCII byte, and a long line of model
/// output in Cyrillic or CJK then takes seconds.
pub static SIGNATURES: &[Signature] = &[
    // GPU memory.
    sig(
        "torch-oom",
        Kind::GpuOom,
        "PyTorch",
        r"OutOfMemoryError: CUDA out of memory",
    ),
    sig(
        "cuda-oom-tried",
        Kind::GpuOom,
        "PyTorch",
        r"CUDA out of memory\. Tried to allocate",
    ),
    sig(
        "cuda-error-oom",
        Kind::GpuOom,
        "CUDA runtime",
        r"CUDA error: out of memory",
    ),
    sig(
        "cublas-alloc",
        Kind::GpuOom,
        "cuBLAS",
        r"CUBLAS_STATUS_ALLOC_FAILED",
    ),
    sig(
        "cudamalloc-oom",
        Kind::GpuOom,
        "llama.cpp / Ollama",
        r"cudaMalloc(?:Async)? failed: out of memory",
    ),
    sig(
        "ggml-cuda-buffer",
        Kind::GpuOom,
        "llama.cpp / Ollama",
        r"(?:unable|failed) to allocate CUDA\d* buffer",
    ),
    sig(
        "trtllm-oom",
        Kind::GpuOom,
        "TensorRT-LLM / Triton",
        r"\[TensorRT-LLM\]\[ERROR\].*out of memory",
    ),
    sig(
        "tgi-not-enough-memory",
        Kind::GpuOom,
        "TGI",
        r"Not enough memory to handle \d+ (?:prefill|total) tokens",
    ),
    sig(
        "sglang-mem-fraction",
        Kind::GpuOom,
        "SGLang",
        r"Not enough memory\. Please try to increase --mem-fraction-static",
    ),
    sig(
        "turbomind-oom",
        Kind::GpuOom,
        "LMDeploy TurboMind",
        r"\[TM\]\[ERROR\] CUDA runtime error: out of memory",
    ),
    sig(
        "cuda-driver-oom",
        Kind::GpuOom,
        "CUDA driver API / ROCm HIP",
        r"CUDA_ERROR_OUT_OF_MEMORY|cudaErrorMemoryAllocation|HIP out of memory|hipErrorOutOfMemory",
    ),
    sig(
        "vllm-no-cache-blocks",
        Kind::KvCache,
        "vLLM",
        r"No available memory for the cache blocks",
    ),
    sig(
        "vllm-kv-smaller-than-len",
        Kind::KvCache,
        "vLLM",
        r"is larger than the maximum number of tokens that can be stored in KV cache",
    ),
    sig(
        "vllm-kv-needed",
        Kind::KvCache,
        "vLLM",
        r"KV cache is needed, which is larger than the available KV cache memory",
    ),
    sig(
        "vllm-free-memory-at-startup",
        Kind::GpuMemoryHeld,
        "vLLM",
        r"Free memory on device(?-u:\b)[^\n]*on startup is less than desired GPU memory utilization",
    ),
    sig(
        "vllm-memory-profiling",
        Kind::GpuMemoryHeld,
        "vLLM (V0)",
        r"Error in memory profiling\. Initial free memory",
    ),
    // Host memory.
    sig(
        "ollama-system-memory",
        Kind::HostMemory,
        "Ollama",
        r"model requires more system memory \([^)]*\) than is available",
    ),
    sig(
        "ray-memory-monitor",
        Kind::HostMemory,
        "Ray memory monitor",
        r"(?:Task|Actor) was killed due to the node running low on memory|worker\(s\) (?:were|was) killed due to the node running low on memory|Workers \(tasks / actors\) killed due to memory pressure \(OOM\)",
    ),
    // NCCL.
    sig(
        "nccl-watchdog",
        Kind::NcclTimeout,
        "PyTorch ProcessGroupNCCL",
        r"Watchdog caught collective operation timeout: WorkNCCL",
    ),
    sig(
        "nccl-timeout-work",
        Kind::NcclTimeout,
        "PyTorch ProcessGroupNCCL",
        r"Timeout at NCCL work: \d+",
    ),
    sig(
        "nccl-error",
        Kind::NcclError,
        "NCCL",
        r"NCCL error(?: in:|:)|DistBackendError: NCCL|nccl(?:System|Internal|UnhandledCuda|Remote|InvalidUsage)Error",
    ),
    sig(
        "nccl-shm",
        Kind::NcclShm,
        "NCCL",
        r"Error while (?:creating|attaching to) shared memory segment /dev/shm/nccl",
    ),
    // GPU faults.
    sig(
        "ecc-uncorrectable",
        Kind::GpuFault,
        "CUDA runtime",
        r"uncorrectable ECC error encountered",
    ),
    sig(
        "fallen-off-bus",
        Kind::GpuFault,
        "NVIDIA driver",
        r"(?i)fallen off the bus",
    ),
    sig(
        "nvml-mismatch",
        Kind::GpuFault,
        "NVML",
        r"(?i)driver/library version mismatch",
    ),
    sig(
        "nvml-device-handle",
        Kind::GpuFault,
        "nvidia-smi",
        r"Unable to determine the device handle for GPU",
    ),
    sig("gpu-lost", Kind::GpuFault, "NVIDIA driver", r"GPU is lost"),
    sig(
        "cuda-illegal-access",
        Kind::CudaAppFault,
        "CUDA runtime",
        r"(?i:cuda error)(?-u:\b)[^\n]*an illegal (?:memory access|instruction) was encountered|CUDA_ERROR_ILLEGAL_ADDRESS|cudaErrorIllegalAddress",
    ),
    sig(
        "nvidia-container-cli",
        Kind::GpuFault,
        "NVIDIA container toolkit",
        r"nvidia-container-cli: (?:initialization|detection|mount) error|nvml error: driver not loaded|NVML_ERROR_DRIVER_NOT_LOADED|Failed to initialize NVML: Unknown Error",
    ),
    sig(
        "nvidia-runtime-missing",
        Kind::GpuFault,
        "containerd / CRI-O",
        r#"no runtime for "nvidia[\w.-]*" is configured|RuntimeHandler "nvidia[\w.-]*" not supported|failed to find runtime handler nvidia"#,
    ),
    sig(
        "driver-too-old",
        Kind::DriverTooOld,
        "PyTorch / CUDA runtime / NVIDIA container toolkit",
        r"The NVIDIA driver on your system is too old|CUDA driver version is insufficient for CUDA runtime version|cudaErrorInsufficientDriver|CUDA_ERROR_INSUFFICIENT_DRIVER|forward compatibility was attempted on non supported HW|requirement error: unsatisfied condition: cuda ?>= ?[0-9.]+",
    ),
    sig(
        "cuda-misaligned",
        Kind::CudaAppFault,
        "CUDA runtime",
        r"CUDA error: misaligned address",
    ),
    sig(
        "cuda-device-assert",
        Kind::CudaAppFault,
        "CUDA runtime",
        r"device-side assert triggered",
    ),
    sig(
        "cuda-launch-failure",
        Kind::CudaAppFault,
        "CUDA runtime",
        r"CUDA error: unspecified launch failure",
    ),
    sig(
        "cuda-device-error",
        Kind::CudaDeviceError,
        "CUDA runtime",
        r"CUDA error: (?:unknown error|initialization error|no CUDA-capable device is detected|invalid device ordinal|system not yet initialized)|CUDA-capable device\(s\) is/are busy or unavailable",
    ),
    sig(
        "cuda-device-count",
        Kind::CudaDeviceError,
        "Triton / CUDA driver",
        r"unable to get number of CUDA devices|CUDA_ERROR_NO_DEVICE|CUDA_ERROR_UNKNOWN",
    ),
    sig(
        "engine-dead",
        Kind::EngineDead,
        "vLLM",
        r"EngineDeadError|EngineCore encountered a fatal error|Background loop has errored already|died unexpectedly, shutting down executor|Engine loop has died",
    ),
    // The Hugging Face hub and model artifacts.
    sig(
        "hf-gated",
        Kind::HubAuth,
        "huggingface_hub",
        r"GatedRepoError|Cannot access gated repo|You are trying to access a gated repo",
    ),
    sig(
        "hf-401",
        Kind::HubAuth,
        "huggingface_hub",
        r"401 Client Error: Unauthorized for url: https://huggingface\.co",
    ),
    sig(
        "hf-403",
        Kind::HubAuth,
        "huggingface_hub",
        r"403 Client Error[^\n]*huggingface\.co",
    ),
    sig(
        "hf-bad-token",
        Kind::HubAuth,
        "huggingface_hub",
        r"Invalid user token|Invalid credentials in Authorization header",
    ),
    sig(
        "object-store-denied",
        Kind::StorageAuth,
        "botocore / google-auth / Azure SDK",
        r"An error occurred \((?:AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|ExpiredToken|InvalidToken|403)\) when calling the \w+ operation|NoCredentialsError|Unable to locate credentials|DefaultCredentialsError|AuthorizationPermissionMismatch",
    ),
    sig(
        "hf-repo-not-found",
        Kind::HubNotFound,
        "huggingface_hub",
        r"RepositoryNotFoundError|Repository Not Found for url",
    ),
    sig(
        "hf-revision-not-found",
        Kind::HubNotFound,
        "huggingface_hub",
        r"RevisionNotFoundError|Revision Not Found for url",
    ),
    sig(
        "hf-not-a-model-id",
        Kind::HubNotFound,
        "transformers",
        r"is not a valid model identifier listed on 'https://huggingface\.co/models'",
    ),
    sig(
        "ollama-no-manifest",
        Kind::HubNotFound,
        "Ollama",
        r"pull model manifest: file does not exist",
    ),
    sig(
        "hf-429",
        Kind::HubThrottled,
        "huggingface_hub",
        r"429 Client Error: Too Many Requests for url: https://huggingface\.co",
    ),
    sig(
        "hf-hub-rs-429",
        Kind::HubThrottled,
        "hf-hub (TEI, TGI router)",
        r"\(429 Too Many Requests\) for url \(https://huggingface\.co",
    ),
    sig(
        "hf-missing-file",
        Kind::MissingFile,
        "transformers",
        r"does not appear to have a file named",
    ),
    sig(
        "vllm-no-config",
        Kind::MissingFile,
        "vLLM",
        r"No supported config format found in|Could not detect config format for no config file found",
    ),
    sig(
        "hf-entry-not-found",
        Kind::MissingFile,
        "huggingface_hub",
        r"EntryNotFoundError",
    ),
    sig(
        "triton-missing-file",
        Kind::MissingFile,
        "Triton",
        r"failed to stat file /\S+|failed to load '[^']+', no version is available",
    ),
    sig(
        "safetensors-header",
        Kind::CorruptWeights,
        "safetensors",
        r"SafetensorError: Error while deserializing header|HeaderTooLarge",
    ),
    sig(
        "json-config-invalid",
        Kind::CorruptWeights,
        "transformers",
        r"is not a valid JSON file",
    ),
    sig(
        "onnx-protobuf",
        Kind::CorruptWeights,
        "ONNX Runtime / Triton",
        r"Protobuf parsing failed|onnx runtime error \d+: Load model from",
    ),
    sig(
        "gguf-corrupt",
        Kind::CorruptWeights,
        "llama.cpp / GGML",
        r"is not within the file bounds, model is corrupted or incomplete|gguf_init_from_file(?:_impl)?: (?:invalid magic|failed to read)|done_getting_tensors: wrong number of tensors|invalid file magic",
    ),
    sig(
        "torch-unpickling",
        Kind::CorruptWeights,
        "PyTorch / transformers",
        r"UnpicklingError: invalid load key|Unable to load weights from pytorch checkpoint file",
    ),
    sig(
        "kserve-no-model",
        Kind::StorageEmpty,
        "KServe storage initializer",
        r"Failed to fetch model\. (?:No model found in|The path or model \S+ does not exist)|Cannot locate source uri \S+ for PVC|An error occurred \((?:NoSuchBucket|NoSuchKey|404)\) when calling the \w+ operation",
    ),
    sig(
        "tensorrt-plan-mismatch",
        Kind::IncompatibleEngine,
        "TensorRT",
        r"The engine plan file is (?:not compatible with this version of TensorRT|generated on an incompatible device)|Version tag does not match",
    ),
    sig(
        "onnx-version",
        Kind::IncompatibleEngine,
        "ONNX Runtime",
        r"Unknown model file format version|Unsupported model IR version",
    ),
    sig(
        "remote-code",
        Kind::RemoteCode,
        "transformers",
        r"contains custom code which must be executed|requires you to execute the configuration file in that repo",
    ),
    sig(
        "vllm-unsupported-arch",
        Kind::UnsupportedArch,
        "vLLM",
        r"Model architectures \[[^\]]*\] are not supported",
    ),
    sig(
        "transformers-unknown-arch",
        Kind::UnsupportedArch,
        "transformers",
        r"does not recognize this architecture",
    ),
    sig(
        "tgi-unsupported-model",
        Kind::UnsupportedArch,
        "TGI",
        r"Unsupported model type",
    ),
    sig(
        "gguf-unknown-arch",
        Kind::UnsupportedArch,
        "llama.cpp / Ollama",
        r"unknown model architecture: '[^']+'",
    ),
    // Configuration.
    sig(
        "argparse-unrecognized",
        Kind::BadArgs,
        "argparse (vLLM, SGLang)",
        r"error: unrecognized arguments:",
    ),
    sig(
        "argparse-invalid",
        Kind::BadArgs,
        "argparse (vLLM, SGLang)",
        r"error: argument [^:]+: (?:invalid|expected|ambiguous)",
    ),
    sig(
        "argparse-required",
        Kind::BadArgs,
        "argparse (vLLM, SGLang)",
        r"error: the following arguments are required",
    ),
    sig(
        "clap-unexpected",
        Kind::BadArgs,
        "clap (TGI launcher)",
        r"error: unexpected argument '[^']+' found",
    ),
    sig(
        "clap-invalid-value",
        Kind::BadArgs,
        "clap (TGI launcher)",
        r"error: invalid value '[^']*' for '",
    ),
    sig(
        "tgi-argument-validation",
        Kind::BadArgs,
        "TGI",
        r"ArgumentValidation\(",
    ),
    sig(
        "vllm-tp-divisible",
        Kind::BadArgs,
        "vLLM",
        r"must be divisible by (?:tensor|pipeline) parallel size",
    ),
    sig(
        "pydantic-engine-args",
        Kind::BadArgs,
        "vLLM",
        r"validation errors? for (?:EngineArgs|ModelConfig|ParallelConfig|SchedulerConfig|CacheConfig)",
    ),
    sig(
        "triton-backend-missing",
        Kind::BadArgs,
        "Triton",
        r"unable to find backend library for backend",
    ),
    sig(
        "kserve-storage-scheme",
        Kind::BadArgs,
        "KServe storage initializer",
        r"Cannot recognize storage type for",
    ),
    sig(
        "vllm-lora-limits",
        Kind::BadArgs,
        "vLLM",
        r"LoRA rank \d+ is greater than max_lora_rank \d+|is greater than lora_extra_vocab_size|max_lora_rank \(\d+\) must be one of|max_loras \(\d+\) must be",
    ),
    sig(
        "vllm-value-bounds",
        Kind::BadArgs,
        "vLLM",
        r"User-specified max_model_len \(\d+\) is greater than the derived max_model_len|max_num_batched_tokens \(\d+\) is smaller than max_model_len|GPU memory utilization must be less than 1\.0|Unknown quantization method: \S+\. Must be one of|does not match the quantization method specified in the `quantization` argument",
    ),
    sig(
        "gpu-capability",
        Kind::BadArgs,
        "vLLM / PyTorch",
        r"Bfloat16 is only supported on GPUs with compute capability of at least 8\.0|is not supported for the current GPU\. Minimum capability: \d+",
    ),
    sig(
        "triton-python-shm",
        Kind::ShmTooSmall,
        "Triton Python backend",
        r"Unable to initialize shared memory key '[^']*' to requested size|Failed to increase the shared memory pool size",
    ),
    sig(
        "torch-shm",
        Kind::ShmTooSmall,
        "PyTorch DataLoader",
        r"insufficient shared memory \(shm\)|out of shared memory\. Please try to raise your shared memory limit",
    ),
    sig(
        "read-only-filesystem",
        Kind::Unwritable,
        "Linux (Python, Go)",
        r"\[Errno 30\] Read-only file system|: read-only file system",
    ),
    sig(
        "cache-permission-denied",
        Kind::Unwritable,
        "Linux (Python, Go)",
        r"\[Errno 13\] Permission denied: '[^']*(?:cache|huggingface|\.triton|\.ollama|/models?(?-u:\b))[^']*'|mkdir \S*(?:cache|\.ollama)\S*: permission denied",
    ),
    sig(
        "service-link-env",
        Kind::ServiceLinkEnv,
        "Kubernetes service links",
        r#"(?:tcp|udp)://\d{1,3}(?:\.\d{1,3}){3}:\d+'? appears to be a URI|invalid literal for int\(\) with base 10: '(?:tcp|udp)://|strconv\.\w+: parsing "(?:tcp|udp)://|address (?:tcp|udp)://\S+: too many colons|input_value='(?:tcp|udp)://"#,
    ),
    sig(
        "chat-template-missing",
        Kind::ServingConfig,
        "transformers (vLLM, SGLang, TGI)",
        r"default chat template is no longer allowed|Cannot use chat template functions because tokenizer\.chat_template is not set|jinja2\.exceptions\.TemplateSyntaxError|Template error: template not found",
    ),
    // Network.
    sig(
        "dns-temporary",
        Kind::NameResolution,
        "glibc / urllib3",
        r"Temporary failure in name resolution|NameResolutionError|Failed to resolve '[^']+'",
    ),
    sig(
        "go-dns-lookup",
        Kind::NameResolution,
        "Go net (Ollama)",
        r"dial tcp: lookup \S+(?: on \S+)?: (?:no such host|server misbehaving|i/o timeout|read udp)",
    ),
    sig(
        "curl-resolve",
        Kind::NameResolution,
        "curl",
        r"Could not resolve host",
    ),
    sig(
        "hf-cannot-connect",
        Kind::Unreachable,
        "transformers",
        r"We couldn't connect to 'https://huggingface\.co'",
    ),
    sig(
        "urllib3-connect",
        Kind::Unreachable,
        "urllib3",
        r"Max retries exceeded with url.*(?:ConnectTimeoutError|NewConnectionError|Connection refused)",
    ),
    sig(
        "boto-endpoint",
        Kind::Unreachable,
        "botocore",
        r"EndpointConnectionError: Could not connect to the endpoint URL",
    ),
    sig(
        "go-dial-refused",
        Kind::Unreachable,
        "Go net",
        r"dial tcp [0-9a-fA-F.:\[\]]+: connect: (?:connection refused|no route to host)|dial tcp [0-9a-fA-F.:\[\]]+: i/o timeout",
    ),
    sig(
        "ray-gcs",
        Kind::Unreachable,
        "Ray",
        r"Failed to connect to GCS|Unable to connect to GCS",
    ),
    sig(
        "read-timeout",
        Kind::Interrupted,
        "urllib3 / requests / botocore",
        r"ConnectionPool\(host='[^']+', port=\d+\): Read timed out|Read timeout on endpoint URL|Connect timeout on endpoint URL|Connection broken: IncompleteRead|ChunkedEncodingError",
    ),
    sig(
        "go-http-timeout",
        Kind::Interrupted,
        "Go net/http",
        r"net/http: TLS handshake timeout|Client\.Timeout exceeded while awaiting headers|read: connection reset by peer",
    ),
    sig(
        "ollama-loopback",
        Kind::LoopbackOnly,
        "Ollama",
        r"Listening on 127\.0\.0\.1:\d+",
    ),
    sig(
        "uvicorn-loopback",
        Kind::LoopbackOnly,
        "uvicorn (vLLM, SGLang)",
        r"Uvicorn running on https?://(?:127\.0\.0\.1|localhost):\d+",
    ),
    // Crashes.
    sig(
        "segfault",
        Kind::Signal,
        "kernel / Python",
        r"Segmentation fault|SIGSEGV|Fatal Python error: (?:Segmentation fault|Aborted|Bus error)",
    ),
    sig(
        "abort",
        Kind::Signal,
        "libc",
        r"SIGABRT|core dumped|terminate called after throwing",
    ),
    sig(
        "traceback",
        Kind::TracebackStart,
        "Python",
        r"Traceback \(most recent call last\)",
    ),
    sig(
        "exception",
        Kind::Exception,
        "Python",
        r"(?:^|[\s\]|)])(?:[a-z_][a-z0-9_]*\.)*[A-Z][A-Za-z0-9]*(?:Error|Exception): \S",
    ),
    // Progress.
    sig(
        "uvicorn-startup",
        Kind::Ready,
        "uvicorn (vLLM, SGLang)",
        r"Application startup complete\.",
    ),
    sig(
        "vllm-api-server",
        Kind::Ready,
        "vLLM",
        r"Starting vLLM API server",
    ),
    sig(
        "tgi-connected",
        Kind::Ready,
        "TGI",
        r"text_generation_router(?:_v3)?::server: .*Connected",
    ),
    sig(
        "sglang-ready",
        Kind::Ready,
        "SGLang",
        r"The server is fired up and ready to roll",
    ),
    sig(
        "triton-http",
        Kind::Ready,
        "Triton",
        r"Started (?:HTTPService|GRPCInferenceService) at",
    ),
    sig(
        "ollama-listening",
        Kind::Ready,
        "Ollama",
        r#"Listening on (?:\[::\]|0\.0\.0\.0):\d+"#,
    ),
    sig(
        "openai-request-ok",
        Kind::Traffic,
        "uvicorn (vLLM, SGLang)",
        r#""(?:POST|GET) /v1/[a-z/]+ HTTP/1\.1" 200"#,
    ),
    sig(
        "vllm-throughput",
        Kind::Traffic,
        "vLLM",
        r"Avg prompt throughput: [0-9.]+ tokens/s",
    ),
    sig(
        "tgi-success",
        Kind::Traffic,
        "TGI",
        r"text_generation_router(?:_v3)?::server: .*Success",
    ),
    sig(
        "sglang-batch",
        Kind::Traffic,
        "SGLang",
        r"(?:Decode|Prefill) batch\. #",
    ),
    sig(
        "gin-ok",
        Kind::Traffic,
        "Ollama (gin)",
        r#"\[GIN\] .*\| 200 \|.*"/api/(?:chat|generate)""#,
    ),
    sig(
        "http-error-status",
        Kind::RequestFailed,
        "uvicorn (vLLM, SGLang, LMDeploy)",
        r#""(?:POST|GET|PUT) /(?:v\d+|api|generate|invocations|predict|infer)\S* HTTP/1\.[01]" [45]\d\d"#,
    ),
    sig(
        "gin-error-status",
        Kind::RequestFailed,
        "Ollama (gin)",
        r#"\[GIN\] [^|]*\| [45]\d\d \|[^\n]*"/api/"#,
    ),
    sig(
        "ray-serve-replica-failed",
        Kind::ReplicaFailed,
        "Ray Serve controller",
        r"Exception in replica '[^']+', the replica will be stopped|Actor for replica \S+ crashed, marking it unhealthy|failed health check, stopping it",
    ),
    sig(
        "loading-shards",
        Kind::Loading,
        "vLLM / transformers",
        r"Loading (?:safetensors|pt) checkpoint shards|Starting to load model|Loading model weights|Loading weights",
    ),
    sig(
        "tgi-download",
        Kind::Loading,
        "TGI",
        r"Download file: |Starting (?:download|shard)|Waiting for shard to be ready",
    ),
    sig(
        "triton-loading",
        Kind::Loading,
        "Triton",
        r#"model_lifecycle\.cc:\d+\] "?loading: "#,
    ),
    sig("sglang-load", Kind::Loading, "SGLang", r"Load weight begin"),
    sig(
        "ollama-loading",
        Kind::Loading,
        "Ollama",
        r#"msg="loading model""#,
    ),
];

/// A log line that matched a signature.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit<'a> {
    pub line: Line<'a>,
    pub signature: &'static Signature,
}

impl Hit<'_> {
    pub(crate) fn kind(&self) -> Kind {
        self.signature.kind
    }
}

/// A compiled set of the signatures of some kinds.
pub(crate) struct Scanner {
    set: RegexSet,
    /// For each pattern of `set`, its signature.
    signatures: Vec<&'static Signature>,
}

impl Scanner {
    /// Compiles the signatures of `kinds`. A pattern that does not compile is left out (a unit
    /// test proves none does).
    pub(crate) fn new(kinds: &[Kind]) -> Scanner {
        let signatures: Vec<&'static Signature> = SIGNATURES
            .iter()
            .filter(|s| kinds.contains(&s.kind) && Regex::new(s.pattern).is_ok())
            .collect();
        let set = RegexSet::new(signatures.iter().map(|s| s.pattern))
            .unwrap_or_else(|_| RegexSet::empty());
        Scanner { set, signatures }
    }

    /// The first signature that matches `text` (a status message or an event), if any.
    pub(crate) fn first_match(&self, text: &str) -> Option<&'static Signature> {
        let matched = self.set.matches(text);
        matched
            .iter()
            .next()
            .and_then(|i| self.signatures.get(i).copied())
    }
}

static EVERY_SIGNATURE: LazyLock<Scanner> = LazyLock::new(|| {
    let kinds: Vec<Kind> = SIGNATURES.iter().map(|s| s.kind).collect();
    Scanner::new(&kinds)
});

/// Every signature's hits in one pod's logs, found in one pass: each line goes through one
/// `RegexSet` however many rules read it. `diagnose_all` scans once and hands it to every rule.
#[derive(Debug, Clone, Default)]
pub struct Hits<'a> {
    /// Previous logs first, each tail in line order.
    all: Vec<Hit<'a>>,
    /// `facts::troubled` for the pod: log lines explain only a pod in trouble.
    troubled: bool,
}

impl<'a> Hits<'a> {
    /// Scans every log tail of `pod`.
    pub fn scan(pod: &'a PodEvidence) -> Hits<'a> {
        let every = &*EVERY_SIGNATURE;
        let mut all = Vec::new();
        for (container, previous, tail) in tails(pod) {
            for (index, text) in tail.lines.iter().enumerate() {
                let matched = every.set.matches(text);
                if !matched.matched_any() {
                    continue;
                }
                for which in matched.iter() {
                    if let Some(signature) = every.signatures.get(which) {
                        all.push(Hit {
                            line: Line {
                                container,
                                tail,
                                previous,
                                index,
                                text,
                            },
                            signature,
                        });
                    }
                }
            }
        }
        let troubled = troubled(pod, &all);
        Hits { all, troubled }
    }

    /// Whether the pod is in trouble (`facts::troubled`).
    pub(crate) fn troubled(&self) -> bool {
        self.troubled
    }

    /// Whether `hit` can explain anything: the pod is in trouble, the line is still current
    /// (`facts::still_current`) and no request served after it superseded it. Every rule that
    /// reads a cause in the logs asks this.
    pub(crate) fn matters(&self, pod: &PodEvidence, hit: &Hit<'_>) -> bool {
        self.troubled && still_current(pod, hit) && !superseded(&self.all, hit)
    }

    /// Whether `c`'s log holds a line that matters and names a cause another rule reads: then a
    /// verdict that only says how the container died (a signal, an exception, a probe's kill)
    /// must step aside.
    pub(crate) fn cause_logged(&self, pod: &PodEvidence, c: &ContainerEvidence) -> bool {
        self.all.iter().any(|h| {
            h.kind().names_a_cause() && std::ptr::eq(h.line.container, c) && self.matters(pod, h)
        })
    }

    /// The hits of these kinds that matter, in log order.
    pub(crate) fn relevant(&self, pod: &PodEvidence, kinds: &[Kind]) -> Vec<Hit<'a>> {
        self.of(kinds)
            .into_iter()
            .filter(|h| self.matters(pod, h))
            .collect()
    }

    /// The hits of these kinds, previous logs first, each tail in line order.
    pub(crate) fn of(&self, kinds: &[Kind]) -> Vec<Hit<'a>> {
        self.all
            .iter()
            .filter(|h| kinds.contains(&h.kind()))
            .copied()
            .collect()
    }
}

/// Whether `hit` comes after a line of `kind` in the same log tail.
pub(crate) fn after(hits: &[Hit<'_>], hit: &Hit<'_>, kind: Kind) -> bool {
    hits.iter().any(|other| {
        other.kind() == kind
            && std::ptr::eq(other.line.tail, hit.line.tail)
            && other.line.index < hit.line.index
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signature_compiles_and_ids_are_unique() {
        let mut ids = std::collections::HashSet::new();
        for s in SIGNATURES {
            assert!(Regex::new(s.pattern).is_ok(), "{} does not compile", s.id);
            assert!(ids.insert(s.id), "{} twice", s.id);
        }
    }

    #[test]
    fn harmless_mentions_of_memory_are_not_oom() {
        let scanner = Scanner::new(&[Kind::GpuOom, Kind::KvCache]);
        let quiet = [
            "INFO 06-02 10:00:01 [gpu_model_runner.py:1801] If out-of-memory error occurs during cudagraph capture, consider decreasing `gpu_memory_utilization` or switching to eager mode.",
            "INFO 06-02 10:00:00 [api_server.py:1090] args: Namespace(gpu_memory_utilization=0.9, max_model_len=8192)",
            "CUDA graphs can take additional 1~3 GiB memory per GPU. If you are running out of memory, consider decreasing `gpu_memory_utilization`",
        ];
        for line in quiet {
            assert!(!scanner.set.is_match(line), "{line}");
        }
        assert!(
            scanner.set.is_match(
                "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.15 GiB."
            )
        );
    }

    #[test]
    fn one_pass_serves_every_kind_in_log_order() {
        use crate::rules::test_support::*;
        use hangar_core::Runtime;
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.8.5", "vllm serve m");
        pod.containers[0].previous_log = Some(tail(&[
            "INFO:     Application startup complete.",
            "Traceback (most recent call last):",
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.",
        ]));
        pod.containers[0].log = Some(tail(&[
            "Loading safetensors checkpoint shards:   0% Completed | 0/4",
        ]));
        let hits = Hits::scan(&pod);
        let found: Vec<_> = hits
            .of(&[Kind::GpuOom, Kind::Ready, Kind::Loading])
            .iter()
            .map(|h| (h.signature.id, h.line.index, h.line.previous))
            .collect();
        assert_eq!(
            found,
            [
                ("uvicorn-startup", 0, true),
                ("torch-oom", 2, true),
                ("cuda-oom-tried", 2, true),
                ("loading-shards", 0, false),
            ]
        );
        assert!(hits.of(&[Kind::NcclError]).is_empty());
    }

    #[test]
    fn exception_lines_are_recognised_behind_prefixes() {
        let scanner = Scanner::new(&[Kind::Exception]);
        assert!(
            scanner
                .set
                .is_match("ERROR 04-28 15:55:45 [core.py:396] ValueError: bad")
        );
        assert!(scanner.set.is_match("[rank0]: RuntimeError: NCCL error"));
        assert!(
            scanner
                .set
                .is_match("huggingface_hub.errors.GatedRepoError: 401 Client Error.")
        );
        assert!(!scanner.set.is_match("INFO no errors here"));
    }
}
