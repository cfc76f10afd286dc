//! Accelerators: which extended resources count whole devices and which a share of one, what a
//! pod asks for, and how many physical devices a node holds.

use std::collections::{BTreeMap, BTreeSet};

use hangar_core::KubeObject;
use hangar_core::inventory::is_accelerator;
use k8s_openapi::api::core::v1::{Container, Node, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Node labels that name the GPU model, in order of preference.
pub const GPU_MODEL_LABELS: &[&str] = &[
    "nvidia.com/gpu.product",
    "cloud.google.com/gke-accelerator",
    "cloud.google.com/gke-tpu-accelerator",
    "karpenter.k8s.aws/instance-gpu-name",
    "karpenter.k8s.aws/instance-accelerator-name",
    "amd.com/gpu.product-name",
];

/// Node labels that name the instance type.
pub const INSTANCE_TYPE_LABELS: &[&str] = &[
    "node.kubernetes.io/instance-type",
    "beta.kubernetes.io/instance-type",
];

/// Node labels that name the node pool, in order of preference; the instance type stands in for
/// a pool when none is set.
pub const POOL_LABELS: &[&str] = &[
    "karpenter.sh/nodepool",
    "cloud.google.com/gke-nodepool",
    "eks.amazonaws.com/nodegroup",
    "kubernetes.azure.com/agentpool",
    "agentpool",
];

/// Extended resources that describe an accelerator without counting devices (Intel's GPU
/// Aware Scheduling shares); they are not billed on their own.
const DESCRIPTORS: &[&str] = &[
    "gpu.intel.com/millicores",
    "gpu.intel.com/memory.max",
    "gpu.intel.com/tiles",
];

/// NeuronCores per Neuron device when the node does not say (Inferentia2, Trainium1).
const NEURON_CORES_PER_DEVICE: f64 = 2.0;

/// What the NVIDIA device plugin appends to a resource it time-slices or shares with MPS when
/// `renameByDefault` is set: `nvidia.com/gpu.shared`, `nvidia.com/mig-1g.5gb.shared`.
const SHARED_RESOURCE_SUFFIX: &str = ".shared";

/// How one unit of an accelerator resource relates to a physical device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// One whole device: `amd.com/gpu`, `habana.ai/gaudi`, `google.com/tpu` chips…
    Device,
    /// `nvidia.com/gpu`: whole, unless the node time-slices it or is in MIG `single` mode.
    NvidiaGpu,
    /// `nvidia.com/gpu.shared`: one of the replicas the node makes of each GPU.
    NvidiaShared,
    /// A MIG instance (`nvidia.com/mig-3g.40gb`, MIG `mixed` strategy): `slices` compute slices
    /// of the GPU; one of its replicas when the node time-slices the profile without renaming it.
    Mig(MigProfile),
    /// `nvidia.com/mig-1g.5gb.shared`: one of the replicas the node makes of each instance of
    /// the profile (time-slicing with `renameByDefault`).
    MigShared(MigProfile),
    /// `aws.amazon.com/neuroncore`: a core of a Neuron device.
    NeuronCore,
    /// An accelerator resource Hangar does not know; counted as whole devices.
    Unknown,
}

/// A MIG profile such as `3g.40gb`: compute slices and memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigProfile {
    /// Compute slices the instance gives a pod (`3` in `3g.40gb`, `1` in `1c.3g.40gb`).
    pub slices: u32,
    /// Slices of the GPU instance it sits in (`3` in both `3g.40gb` and `1c.3g.40gb`).
    pub instance_slices: u32,
    pub memory_gb: u32,
}

impl MigProfile {
    /// Reads `1g.10gb`, `3g.40gb`, `1g.10gb+me` or, with a compute instance, `1c.3g.40gb`
    /// (one slice of a three-slice instance: one slice is what the pod gets).
    pub fn parse(profile: &str) -> Option<MigProfile> {
        // The feature discovery appends `-SHARED` to a MIG `single` product it time-slices.
        let profile = strip_shared(profile);
        let profile = profile.split('+').next()?;
        let mut parts: Vec<&str> = profile.split('.').collect();
        let compute = match parts.first() {
            Some(p) if p.ends_with('c') => {
                let c = p.trim_end_matches('c').parse::<u32>().ok()?;
                parts.remove(0);
                Some(c)
            }
            _ => None,
        };
        let [slices, memory] = parts.as_slice() else {
            return None;
        };
        let slices = slices.strip_suffix('g')?.parse::<u32>().ok()?;
        let memory_gb = memory.strip_suffix("gb")?.parse::<u32>().ok()?;
        (slices > 0).then_some(MigProfile {
            slices: compute.unwrap_or(slices).clamp(1, slices),
            instance_slices: slices,
            memory_gb,
        })
    }

    /// Compute slices of the whole GPU: 4 on an A30 (whose profiles are 1g.6gb, 2g.12gb and
    /// 4g.24gb), 7 on the others.
    fn slices_per_gpu(self, gpu_model: Option<&str>) -> u32 {
        let a30 = match gpu_model {
            Some(model) => model_matches("A30", model),
            None => matches!(
                (self.instance_slices, self.memory_gb),
                (1, 6) | (2, 12) | (4, 24)
            ),
        };
        if a30 { 4 } else { 7 }
    }

    /// The share of the physical GPU: compute slices out of 7, or out of 4 on an A30.
    pub fn share(self, gpu_model: Option<&str>) -> f64 {
        let per_gpu = self.slices_per_gpu(gpu_model);
        (f64::from(self.slices) / f64::from(per_gpu)).min(1.0)
    }

    /// How many instances of this profile one GPU holds at most: `3g.40gb` fits twice in 7
    /// slices (one slice stays unused), `1c.3g.40gb` six times (three in each `3g`).
    pub fn per_gpu(self, gpu_model: Option<&str>) -> u32 {
        let instances = self.slices_per_gpu(gpu_model) / self.instance_slices;
        let compute_instances = self.instance_slices / self.slices;
        (instances * compute_instances).max(1)
    }
}

/// What kind of unit `resource` counts, or `None` when it is no accelerator device count.
pub fn unit(resource: &str) -> Option<Unit> {
    if !is_accelerator(resource) || DESCRIPTORS.contains(&resource) {
        return None;
    }
    Some(match resource {
        "nvidia.com/gpu" => Unit::NvidiaGpu,
        "nvidia.com/gpu.shared" => Unit::NvidiaShared,
        "aws.amazon.com/neuroncore" => Unit::NeuronCore,
        "amd.com/gpu"
        | "gpu.intel.com/i915"
        | "gpu.intel.com/xe"
        | "habana.ai/gaudi"
        | "aws.amazon.com/neuron"
        | "aws.amazon.com/neurondevice"
        | "google.com/tpu" => Unit::Device,
        _ => match resource.strip_prefix("nvidia.com/mig-") {
            Some(name) => mig_unit(name),
            None => Unit::Unknown,
        },
    })
}

/// `1g.5gb` is an instance, `1g.5gb.shared` one of its renamed replicas.
fn mig_unit(name: &str) -> Unit {
    match name.strip_suffix(SHARED_RESOURCE_SUFFIX) {
        Some(profile) => MigProfile::parse(profile).map_or(Unit::Unknown, Unit::MigShared),
        None => MigProfile::parse(name).map_or(Unit::Unknown, Unit::Mig),
    }
}

/// The resource the device plugin renamed: `nvidia.com/mig-1g.5gb.shared` is a replica of
/// `nvidia.com/mig-1g.5gb`, whose name its feature discovery labels keep.
pub fn unshared(resource: &str) -> &str {
    resource
        .strip_suffix(SHARED_RESOURCE_SUFFIX)
        .unwrap_or(resource)
}

/// How a node shares or splits its devices, read from the NVIDIA GPU feature discovery labels
/// and its capacity. `Sharing::default()` is a node that does neither (or no node at all).
#[derive(Debug, Clone, PartialEq)]
pub struct Sharing {
    /// Replicas per GPU under time-slicing or MPS (`nvidia.com/gpu.replicas`); 1 when not shared.
    pub replicas: u32,
    /// The time-sliced replicas are offered as `nvidia.com/gpu.shared`, so `nvidia.com/gpu`
    /// itself stays whole.
    pub renamed: bool,
    /// `nvidia.com/gpu` is a MIG instance of this profile (the `single` MIG strategy).
    pub mig_single: Option<MigProfile>,
    /// Replicas per instance of each time-sliced MIG resource of the `mixed` strategy, by the
    /// resource's name before any `.shared` rename (`nvidia.com/mig-1g.5gb` → 4). Profiles
    /// absent here are not shared.
    pub mig_replicas: BTreeMap<String, u32>,
    /// The GPU model, to tell an A30's MIG slices from the others'.
    pub gpu_model: Option<String>,
    /// NeuronCores per Neuron device, from the node's capacity.
    pub neuron_cores_per_device: f64,
}

impl Default for Sharing {
    fn default() -> Self {
        Sharing {
            replicas: 1,
            renamed: false,
            mig_single: None,
            mig_replicas: BTreeMap::new(),
            gpu_model: None,
            neuron_cores_per_device: NEURON_CORES_PER_DEVICE,
        }
    }
}

impl Sharing {
    /// The share of physical devices that `quantity` units of `resource` hold.
    pub fn devices(&self, resource: &str, quantity: f64) -> Option<f64> {
        let whole = match unit(resource)? {
            Unit::Device | Unit::Unknown => 1.0,
            // Under MIG `single` the unit shared is an instance, else a whole GPU.
            Unit::NvidiaGpu | Unit::NvidiaShared => self
                .mig_single
                .map_or(1.0, |profile| profile.share(self.gpu_model.as_deref())),
            Unit::Mig(profile) | Unit::MigShared(profile) => {
                profile.share(self.gpu_model.as_deref())
            }
            Unit::NeuronCore => 1.0 / self.neuron_cores_per_device,
        };
        Some(quantity * (whole / f64::from(self.replicas_of(resource))))
    }

    /// Whether this node shares GPUs among pods by time-slicing or MPS.
    pub fn is_time_sliced(&self) -> bool {
        self.replicas > 1
    }

    /// How many units of `resource` the node makes of each GPU or MIG instance: `replicas` for
    /// `nvidia.com/gpu` (unless its replicas are renamed `.shared`) and `nvidia.com/gpu.shared`,
    /// the profile's own replicas for a MIG resource, 1 for the others.
    pub fn replicas_of(&self, resource: &str) -> u32 {
        let replicas = match unit(resource) {
            Some(Unit::NvidiaGpu) if self.renamed => 1,
            Some(Unit::NvidiaGpu | Unit::NvidiaShared) => self.replicas,
            Some(Unit::Mig(_)) => self.mig_replicas.get(resource).copied().unwrap_or(1),
            // Renamed replicas are shared by definition: when the node does not say how many
            // each instance makes, the GPUs' replicas stand in.
            Some(Unit::MigShared(_)) => self
                .mig_replicas
                .get(unshared(resource))
                .copied()
                .unwrap_or(self.replicas),
            _ => 1,
        };
        replicas.max(1)
    }
}

/// Reads an extended-resource quantity (`1`, `500m`); `None` when it is none, or negative.
pub fn quantity(q: &Quantity) -> Option<f64> {
    hangar_core::quantity::parse(q.0.trim()).filter(|value| *value >= 0.0)
}

/// The accelerators a pod asks for, per resource, as the scheduler counts them: the app
/// containers and sidecars together, or the peak of an init container, whichever is larger.
/// A container's request counts, or its limit when it sets no request. Unreadable quantities
/// are returned as problems and not counted.
pub fn pod_accelerators(spec: &PodSpec) -> (BTreeMap<String, f64>, Vec<String>) {
    let mut problems = Vec::new();
    let mut running: BTreeMap<String, f64> = BTreeMap::new();
    let mut sidecars: BTreeMap<String, f64> = BTreeMap::new();
    let mut init_peak: BTreeMap<String, f64> = BTreeMap::new();
    for c in spec.init_containers.iter().flatten() {
        let asks = container_accelerators(c, &mut problems);
        let is_sidecar = c.restart_policy.as_deref() == Some("Always");
        for (resource, value) in asks {
            let before = sidecars.get(&resource).copied().unwrap_or(0.0);
            if is_sidecar {
                sidecars.insert(resource.clone(), before + value);
            }
            let peak = init_peak.entry(resource).or_insert(0.0);
            *peak = peak.max(before + value);
        }
    }
    for c in &spec.containers {
        for (resource, value) in container_accelerators(c, &mut problems) {
            *running.entry(resource).or_insert(0.0) += value;
        }
    }
    for (resource, value) in sidecars {
        *running.entry(resource).or_insert(0.0) += value;
    }
    for (resource, peak) in init_peak {
        let total = running.entry(resource).or_insert(0.0);
        *total = total.max(peak);
    }
    running.retain(|_, v| *v > 0.0);
    (running, problems)
}

fn container_accelerators(c: &Container, problems: &mut Vec<String>) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Some(resources) = &c.resources else {
        return out;
    };
    let names: BTreeSet<&String> = [&resources.requests, &resources.limits]
        .into_iter()
        .flatten()
        .flat_map(|m| m.keys())
        .filter(|name| is_accelerator(name))
        .collect();
    for name in names {
        let Some(q) = resources
            .requests
            .as_ref()
            .and_then(|r| r.get(name))
            .or_else(|| resources.limits.as_ref().and_then(|l| l.get(name)))
        else {
            continue;
        };
        match quantity(q) {
            Some(value) => {
                out.insert(name.clone(), value);
            }
            None => problems.push(format!(
                "container `{}` asks for `{name}: {}`, which is not a count; not counted",
                c.name, q.0
            )),
        }
    }
    out
}

/// `nvidia.com/mig-1g.10gb=2` for the report.
pub fn describe(accelerators: &BTreeMap<String, f64>) -> Vec<String> {
    accelerators
        .iter()
        .map(|(name, value)| format!("{name}={}", super::trim_number(*value)))
        .collect()
}

/// Whether a price key names this GPU model: equal, or contained between dashes, ignoring case
/// and treating `_` and spaces as dashes (`L4` matches `nvidia-l4` but not `NVIDIA-L40S`).
pub fn model_matches(key: &str, value: &str) -> bool {
    let key = normalise(key);
    let value = normalise(value);
    if key.is_empty() {
        return false;
    }
    value.match_indices(&key).any(|(at, _)| {
        let end = at + key.len();
        (at == 0 || value.as_bytes()[at - 1] == b'-')
            && (end == value.len() || value.as_bytes()[end] == b'-')
    })
}

fn normalise(text: &str) -> String {
    text.trim().to_ascii_lowercase().replace(['_', ' '], "-")
}

/// The GPU model a node's label names, without the `-SHARED` and `-MIG-<profile>` suffixes the
/// feature discovery adds when it shares or splits the GPU.
pub fn base_model(label_value: &str) -> &str {
    let upper = label_value.to_ascii_uppercase();
    let cut = upper.find("-MIG-").unwrap_or(label_value.len());
    strip_shared(&label_value[..cut])
}

/// `value` without a `-SHARED` suffix, in any case.
fn strip_shared(value: &str) -> &str {
    const SHARED: &str = "-SHARED";
    match value.len().checked_sub(SHARED.len()) {
        Some(at) if value.is_char_boundary(at) && value[at..].eq_ignore_ascii_case(SHARED) => {
            &value[..at]
        }
        _ => value,
    }
}

/// The first label of `keys` the node carries, with its value.
pub fn first_label<'a>(node: &'a Node, keys: &[&'static str]) -> Option<(&'static str, &'a str)> {
    keys.iter()
        .find_map(|k| node.label(k).map(|v| (*k, v)))
        .filter(|(_, v)| !v.is_empty())
}

/// A node's accelerators: what it holds and how it shares them.
#[derive(Debug, Clone)]
pub struct NodeDevices {
    pub sharing: Sharing,
    /// Physical devices: every accelerator in the node's capacity converted back from replicas
    /// and MIG instances, or `nvidia.com/gpu.count` when that is larger.
    pub devices: f64,
    /// The node offers MIG instances (`mixed` strategy) and no `nvidia.com/gpu.count` label says
    /// how many GPUs hold them, so `devices` counts the fewest GPUs that can.
    pub mig_inferred: bool,
    /// Accelerator resources the node offers (capacity above zero).
    pub resources: BTreeSet<String>,
}

/// Reads a node's capacity (its allocatable when it reports no capacity) and GPU labels.
pub fn node_devices(node: &Node) -> NodeDevices {
    let status = node.status.as_ref();
    let capacity: BTreeMap<&str, f64> = status
        .and_then(|s| s.capacity.as_ref().or(s.allocatable.as_ref()))
        .into_iter()
        .flatten()
        .filter(|(name, _)| is_accelerator(name))
        .filter_map(|(name, q)| Some((name.as_str(), quantity(q)?)))
        .filter(|(_, v)| *v > 0.0)
        .collect();
    let label_number = |key: &str| -> Option<f64> {
        node.label(key)?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| *v > 0.0)
    };
    let product = node.label("nvidia.com/gpu.product");
    let gpu_model = first_label(node, GPU_MODEL_LABELS).map(|(_, v)| base_model(v).to_owned());
    // Under the `single` strategy the feature discovery appends the profile to the product;
    // GKE names its partitions in a label of its own, and exposes them as `nvidia.com/gpu` too.
    let mig_single = product
        .and_then(|p| {
            let at = p.to_ascii_uppercase().find("-MIG-")?;
            MigProfile::parse(&p[at + "-MIG-".len()..])
        })
        .or_else(|| {
            node.label("cloud.google.com/gke-gpu-partition-size")
                .and_then(MigProfile::parse)
        });
    let renamed = capacity.contains_key("nvidia.com/gpu.shared");
    // Physical GPUs: GKE's accelerator count always is; the feature discovery's is except under
    // MIG `single`, where it counts instances.
    let gpu_count = label_number("cloud.google.com/gke-accelerator-count")
        .or_else(|| label_number("nvidia.com/gpu.count").filter(|_| mig_single.is_none()));
    // GKE time-sharing and MPS expose this many `nvidia.com/gpu` per physical GPU.
    let gke_shared = node
        .label("cloud.google.com/gke-gpu-sharing-strategy")
        .and_then(|_| label_number("cloud.google.com/gke-max-shared-clients-per-gpu"));
    let replicas = label_number("nvidia.com/gpu.replicas")
        .or(gke_shared)
        .map(|r| r as u32)
        .or_else(|| {
            // Renamed replicas with no replicas label: capacity over physical GPUs.
            let shared = capacity.get("nvidia.com/gpu.shared")?;
            Some((shared / gpu_count?).round() as u32)
        })
        .unwrap_or(1)
        .max(1);
    let devices_per_core = match (
        capacity
            .get("aws.amazon.com/neuron")
            .or(capacity.get("aws.amazon.com/neurondevice")),
        capacity.get("aws.amazon.com/neuroncore"),
    ) {
        (Some(devices), Some(cores)) if *devices > 0.0 => cores / devices,
        _ => NEURON_CORES_PER_DEVICE,
    };
    let sharing = Sharing {
        replicas,
        renamed,
        mig_single,
        mig_replicas: mig_replicas(node, &capacity),
        gpu_model,
        neuron_cores_per_device: devices_per_core,
    };
    let mut nvidia = 0.0;
    let mut mig: Vec<(MigProfile, f64)> = Vec::new();
    let mut neuron: f64 = 0.0;
    let mut others = 0.0;
    for (name, count) in &capacity {
        let (Some(kind), Some(share)) = (unit(name), sharing.devices(name, *count)) else {
            continue;
        };
        match (kind, mig_single) {
            // MIG instances, each made `replicas` times when the node time-slices them. Under
            // MIG `single`, `nvidia.com/gpu` and its `.shared` replicas are instances of the one
            // profile.
            (Unit::Mig(profile) | Unit::MigShared(profile), _)
            | (Unit::NvidiaGpu | Unit::NvidiaShared, Some(profile)) => {
                mig.push((profile, count / f64::from(sharing.replicas_of(name))))
            }
            (Unit::NvidiaGpu | Unit::NvidiaShared, None) => nvidia += share,
            // A Neuron node offers the same hardware as devices and as cores.
            (Unit::NeuronCore | Unit::Device, _) if name.starts_with("aws.amazon.com/") => {
                neuron = neuron.max(share)
            }
            _ => others += share,
        }
    }
    let mut devices = nvidia + mig_gpus(&mig, sharing.gpu_model.as_deref()) + neuron + others;
    if let Some(count) = gpu_count {
        devices = devices.max(count);
    }
    NodeDevices {
        sharing,
        devices,
        mig_inferred: mig_single.is_none() && !mig.is_empty() && gpu_count.is_none(),
        resources: capacity.keys().map(|k| (*k).to_owned()).collect(),
    }
}

/// Replicas per instance of each time-sliced MIG resource the node offers (`mixed` strategy), by
/// its name before the `.shared` rename: the feature discovery's `<resource>.replicas` label
/// (it keeps the name the time-slicing config gives, `nvidia.com/mig-1g.5gb.replicas`), else
/// the capacity over its `<resource>.count` label of instances.
fn mig_replicas(node: &Node, capacity: &BTreeMap<&str, f64>) -> BTreeMap<String, u32> {
    let label = |key: String| -> Option<f64> {
        node.label(&key)?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| *v >= 1.0)
    };
    capacity
        .iter()
        .filter(|(name, _)| matches!(unit(name), Some(Unit::Mig(_) | Unit::MigShared(_))))
        .filter_map(|(name, offered)| {
            let resource = unshared(name);
            let replicas = label(format!("{resource}.replicas"))
                .or_else(|| Some((offered / label(format!("{resource}.count"))?).round()))?;
            Some((resource.to_owned(), replicas as u32))
        })
        .filter(|(_, replicas)| *replicas > 1)
        .collect()
}

/// The fewest whole GPUs that can hold these MIG instances: enough for their slices together
/// (a GPU cut 3g + 3g still is a GPU), and enough for each profile on its own (sixteen `3g`
/// instances need eight GPUs, two to a GPU, though their slices fill under seven).
fn mig_gpus(instances: &[(MigProfile, f64)], gpu_model: Option<&str>) -> f64 {
    let whole = |gpus: f64| (gpus - 1e-9).ceil().max(0.0);
    let slices: f64 = instances
        .iter()
        .map(|(profile, count)| count * profile.share(gpu_model))
        .sum();
    instances
        .iter()
        .map(|(profile, count)| whole(count / f64::from(profile.per_gpu(gpu_model))))
        .fold(whole(slices), f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn node(yaml: &str) -> Node {
        let snapshot = hangar_core::snapshot_from_text("node.yaml", yaml);
        assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
        snapshot.nodes[0].object.clone()
    }

    #[test]
    fn mig_profiles_are_compute_slices_of_seven() {
        let share = |p: &str| MigProfile::parse(p).unwrap().share(None);
        assert!(close(share("1g.10gb"), 1.0 / 7.0));
        assert!(close(share("1g.10gb+me"), 1.0 / 7.0));
        assert!(close(share("2g.20gb"), 2.0 / 7.0));
        assert!(close(share("3g.40gb"), 3.0 / 7.0));
        assert!(close(share("4g.40gb"), 4.0 / 7.0));
        assert!(close(share("7g.80gb"), 1.0));
        assert!(close(share("1c.3g.40gb"), 1.0 / 7.0), "a compute instance");
        // The A30 has four slices.
        assert!(close(share("2g.12gb"), 0.5));
        assert!(close(
            MigProfile::parse("1g.6gb")
                .unwrap()
                .share(Some("NVIDIA-A30")),
            0.25
        ));
        assert_eq!(MigProfile::parse("big"), None);
        assert_eq!(unit("nvidia.com/mig-oops"), Some(Unit::Unknown));
    }

    #[test]
    fn units_of_each_accelerator() {
        assert_eq!(unit("nvidia.com/gpu"), Some(Unit::NvidiaGpu));
        assert_eq!(unit("amd.com/gpu"), Some(Unit::Device));
        assert_eq!(unit("habana.ai/gaudi"), Some(Unit::Device));
        assert_eq!(unit("aws.amazon.com/neuroncore"), Some(Unit::NeuronCore));
        assert_eq!(unit("gpu.intel.com/millicores"), None, "a descriptor");
        assert_eq!(unit("cpu"), None);
        assert_eq!(
            unit("nvidia.com/mig-3g.40gb"),
            Some(Unit::Mig(MigProfile {
                slices: 3,
                instance_slices: 3,
                memory_gb: 40
            }))
        );
    }

    #[test]
    fn time_sliced_replicas_are_a_fraction_of_a_gpu() {
        let sharing = Sharing {
            replicas: 4,
            ..Sharing::default()
        };
        assert!(close(sharing.devices("nvidia.com/gpu", 1.0).unwrap(), 0.25));
        assert!(close(
            sharing.devices("nvidia.com/gpu.shared", 2.0).unwrap(),
            0.5
        ));
        let renamed = Sharing {
            renamed: true,
            ..sharing
        };
        assert!(
            close(renamed.devices("nvidia.com/gpu", 1.0).unwrap(), 1.0),
            "with the rename, nvidia.com/gpu stays exclusive"
        );
        assert!(close(
            Sharing::default().devices("amd.com/gpu", 2.0).unwrap(),
            2.0
        ));
        assert!(close(
            Sharing::default()
                .devices("aws.amazon.com/neuroncore", 1.0)
                .unwrap(),
            0.5
        ));
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity(&Quantity("2".into())), Some(2.0));
        assert_eq!(quantity(&Quantity("500m".into())), Some(0.5));
        assert_eq!(quantity(&Quantity("-1".into())), None);
        assert_eq!(quantity(&Quantity("two".into())), None);
    }

    #[test]
    fn a_pod_asks_for_the_larger_of_its_containers_and_its_init_peak() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "initContainers": [
                {"name": "warm", "resources": {"limits": {"nvidia.com/gpu": "3"}}},
                {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"nvidia.com/gpu": "1"}}}
            ],
            "containers": [
                {"name": "a", "resources": {"requests": {"nvidia.com/gpu": "1", "cpu": "2"}, "limits": {"nvidia.com/gpu": "1"}}},
                {"name": "b", "resources": {"limits": {"nvidia.com/mig-1g.10gb": "2"}}},
                {"name": "c", "resources": {"limits": {"amd.com/gpu": "lots"}}}
            ]
        }))
        .unwrap();
        let (asks, problems) = pod_accelerators(&spec);
        // Containers 1 + sidecar 1 = 2, but the first init container held 3.
        assert_eq!(asks["nvidia.com/gpu"], 3.0);
        assert_eq!(asks["nvidia.com/mig-1g.10gb"], 2.0);
        assert!(!asks.contains_key("cpu"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("`c`"), "{problems:?}");
        assert_eq!(
            describe(&asks),
            ["nvidia.com/gpu=3", "nvidia.com/mig-1g.10gb=2"]
        );
    }

    #[test]
    fn sidecars_add_to_the_app_containers() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "initContainers": [
                {"name": "proxy", "restartPolicy": "Always", "resources": {"limits": {"nvidia.com/gpu": "1"}}}
            ],
            "containers": [{"name": "a", "resources": {"limits": {"nvidia.com/gpu": "2"}}}]
        }))
        .unwrap();
        assert_eq!(pod_accelerators(&spec).0["nvidia.com/gpu"], 3.0);
    }

    #[test]
    fn model_keys_match_between_dashes() {
        assert!(model_matches("H100", "NVIDIA-H100-80GB-HBM3"));
        assert!(model_matches("h100", "nvidia-h100-80gb"));
        assert!(model_matches("A100-SXM4-80GB", "NVIDIA-A100-SXM4-80GB"));
        assert!(model_matches("MI300X", "AMD_Instinct_MI300X_OAM"));
        assert!(!model_matches("L4", "NVIDIA-L40S"));
        assert!(!model_matches("A100-80GB", "NVIDIA-A100-SXM4-80GB"));
        assert!(!model_matches("", "NVIDIA-L4"));
        assert_eq!(base_model("Tesla-T4-SHARED"), "Tesla-T4");
        assert_eq!(
            base_model("NVIDIA-A100-SXM4-40GB-MIG-1g.5gb"),
            "NVIDIA-A100-SXM4-40GB"
        );
    }

    #[test]
    fn a_time_sliced_node_holds_its_physical_gpus() {
        let n = node(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: t4\n  labels: {nvidia.com/gpu.product: Tesla-T4-SHARED, nvidia.com/gpu.count: '2', nvidia.com/gpu.replicas: '4', nvidia.com/gpu.sharing-strategy: time-slicing}\nstatus:\n  capacity: {nvidia.com/gpu: '8', cpu: '16'}\n",
        );
        let d = node_devices(&n);
        assert_eq!(d.sharing.replicas, 4);
        assert_eq!(d.sharing.gpu_model.as_deref(), Some("Tesla-T4"));
        assert!(close(d.devices, 2.0));
        assert!(close(
            d.sharing.devices("nvidia.com/gpu", 1.0).unwrap(),
            0.25
        ));
    }

    #[test]
    fn a_renamed_time_sliced_node_without_a_replicas_label() {
        let n = node(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: t4\n  labels: {nvidia.com/gpu.product: Tesla-T4, nvidia.com/gpu.count: '4'}\nstatus:\n  capacity: {nvidia.com/gpu: '0', nvidia.com/gpu.shared: '16'}\n",
        );
        let d = node_devices(&n);
        assert_eq!(d.sharing.replicas, 4);
        assert!(d.sharing.renamed);
        assert!(close(d.devices, 4.0));
        assert_eq!(
            d.resources.iter().collect::<Vec<_>>(),
            ["nvidia.com/gpu.shared"]
        );
    }

    #[test]
    fn mig_nodes_in_mixed_and_single_strategies() {
        let mixed = node_devices(&node(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: mig\n  labels: {nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB}\nstatus:\n  capacity: {nvidia.com/mig-1g.10gb: '7', nvidia.com/mig-3g.40gb: '2'}\n",
        ));
        // 7 × 1/7 + 2 × 3/7 = 13/7 of a GPU in instances: two GPUs.
        assert!(close(mixed.devices, 2.0));
        let single = node_devices(&node(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: mig\n  labels: {nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3-MIG-1g.10gb, nvidia.com/gpu.count: '14'}\nstatus:\n  capacity: {nvidia.com/gpu: '14'}\n",
        ));
        assert!(close(single.devices, 2.0), "{}", single.devices);
        assert_eq!(
            single.sharing.gpu_model.as_deref(),
            Some("NVIDIA-H100-80GB-HBM3")
        );
        assert!(close(
            single.sharing.devices("nvidia.com/gpu", 1.0).unwrap(),
            1.0 / 7.0
        ));
    }

    #[test]
    fn a_single_strategy_node_holds_its_instances_over_how_many_fit_a_gpu() {
        // 8 H100s, each cut in two 3g.40gb instances: 16 `nvidia.com/gpu`, and the feature
        // discovery's gpu.count counts the instances too.
        let h100 = node_devices(&node(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: mig\n  labels: {nvidia.com/mig.strategy: single, nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3-MIG-3g.40gb, nvidia.com/gpu.count: '16'}\nstatus:\n  capacity: {nvidia.com/gpu: '16'}\n",
        ));
        assert!(close(h100.devices, 8.0), "{}", h100.devices);
        assert!(
            !h100.mig_inferred,
            "the strategy says how instances map to GPUs"
        );
        // Each instance is still 3/7 of a GPU: 16 of them leave a slice of each GPU idle.
        assert!(close(
            h100.sharing.devices("nvidia.com/gpu", 16.0).unwrap(),
            48.0 / 7.0
        ));
        // An A30 has four slices: 2g.12gb fits twice.
        let a30 = node_devices(&node(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: a30\n  labels: {nvidia.com/gpu.product: NVIDIA-A30-MIG-2g.12gb, nvidia.com/gpu.count: '8'}\nstatus:\n  capacity: {nvidia.com/gpu: '8'}\n",
        ));
        assert!(close(a30.devices, 4.0), "{}", a30.devices);
        // Three of a three-slice profile need two GPUs.
        let odd = node_devices(&node(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: odd\n  labels: {nvidia.com/gpu.product: NVIDIA-A100-SXM4-40GB-MIG-3g.20gb}\nstatus:\n  capacity: {nvidia.com/gpu: '3'}\n",
        ));
        assert!(close(odd.devices, 2.0), "{}", odd.devices);
    }

    #[test]
    fn a_time_sliced_single_strategy_node_divides_its_instances_by_the_replicas() {
        // 8 A100s, seven 1g.5gb instances each, every instance time-sliced in two: 112.
        let shared = node_devices(&node(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: a100\n  labels: {nvidia.com/gpu.product: A100-SXM4-40GB-MIG-1g.5gb-SHARED, nvidia.com/gpu.replicas: '2'}\nstatus:\n  capacity: {nvidia.com/gpu: '112'}\n",
        ));
        assert_eq!(shared.sharing.mig_single, MigProfile::parse("1g.5gb"));
        assert_eq!(shared.sharing.gpu_model.as_deref(), Some("A100-SXM4-40GB"));
        assert_eq!(shared.sharing.replicas, 2);
        assert!(close(shared.devices, 8.0), "{}", shared.devices);
        // A pod's one device is half of a seventh of a GPU.
        let one = shared.sharing.devices("nvidia.com/gpu", 1.0).unwrap();
        assert!(close(one, 1.0 / 14.0), "{one}");
        // With the rename, the replicas are `nvidia.com/gpu.shared` and count the same way.
        let renamed = node_devices(&node(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: a100\n  labels: {nvidia.com/gpu.product: A100-SXM4-40GB-MIG-1g.5gb-SHARED, nvidia.com/gpu.replicas: '2'}\nstatus:\n  capacity: {nvidia.com/gpu.shared: '112'}\n",
        ));
        assert!(close(renamed.devices, 8.0), "{}", renamed.devices);
        let one = renamed
            .sharing
            .devices("nvidia.com/gpu.shared", 1.0)
            .unwrap();
        assert!(close(one, 1.0 / 14.0), "{one}");
    }

    #[test]
    fn a_shared_suffix_does_not_hide_the_mig_profile() {
        let plain = MigProfile::parse("1g.5gb");
        assert!(plain.is_some());
        assert_eq!(MigProfile::parse("1g.5gb-SHARED"), plain);
        assert_eq!(
            MigProfile::parse("1g.10gb+me-SHARED"),
            MigProfile::parse("1g.10gb")
        );
        assert_eq!(base_model("A100-SXM4-40GB-SHARED"), "A100-SXM4-40GB");
        assert_eq!(base_model("SHARED"), "SHARED");
    }

    #[test]
    fn renamed_mig_replicas_keep_their_profile() {
        let one_g = MigProfile::parse("1g.5gb");
        assert_eq!(
            unit("nvidia.com/mig-1g.5gb.shared"),
            one_g.map(Unit::MigShared)
        );
        assert_eq!(
            unit("nvidia.com/mig-1g.10gb+me.shared"),
            MigProfile::parse("1g.10gb").map(Unit::MigShared),
            "a replica, not an instance"
        );
        assert_eq!(unit("nvidia.com/mig-oops.shared"), Some(Unit::Unknown));
        assert_eq!(
            unshared("nvidia.com/mig-1g.5gb.shared"),
            "nvidia.com/mig-1g.5gb"
        );
        assert_eq!(unshared("nvidia.com/mig-1g.5gb"), "nvidia.com/mig-1g.5gb");
    }

    #[test]
    fn a_time_sliced_mixed_strategy_node_divides_each_profile_by_its_replicas() {
        // 8 A100s, seven 1g.5gb instances each, every instance time-sliced in four and renamed:
        // 224 replicas of 56 instances. No gpu.count label: the GPUs are inferred.
        let labelled = node_devices(&node(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: a100\n  labels: {nvidia.com/mig.strategy: mixed, nvidia.com/gpu.product: NVIDIA-A100-SXM4-40GB, nvidia.com/mig-1g.5gb.replicas: '4'}\nstatus:\n  capacity: {nvidia.com/mig-1g.5gb.shared: '224'}\n",
        ));
        assert_eq!(
            labelled.sharing.mig_replicas.get("nvidia.com/mig-1g.5gb"),
            Some(&4)
        );
        assert!(close(labelled.devices, 8.0), "{}", labelled.devices);
        assert!(labelled.mig_inferred);
        let one = labelled
            .sharing
            .devices("nvidia.com/mig-1g.5gb.shared", 1.0)
            .unwrap();
        assert!(close(one, 1.0 / 28.0), "{one}");
        // Without the replicas label, the instance count label gives them.
        let counted = node_devices(&node(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: a100\n  labels: {nvidia.com/gpu.product: NVIDIA-A100-SXM4-40GB, nvidia.com/mig-1g.5gb.count: '56'}\nstatus:\n  capacity: {nvidia.com/mig-1g.5gb.shared: '224'}\n",
        ));
        assert_eq!(
            counted.sharing.replicas_of("nvidia.com/mig-1g.5gb.shared"),
            4
        );
        assert!(close(counted.devices, 8.0), "{}", counted.devices);
        // Time-sliced without the rename: the replicas keep the instance's name.
        let unrenamed = node_devices(&node(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: a100\n  labels: {nvidia.com/gpu.product: NVIDIA-A100-SXM4-40GB, nvidia.com/mig-1g.5gb.replicas: '4', nvidia.com/mig-1g.5gb.product: NVIDIA-A100-SXM4-40GB-MIG-1g.5gb-SHARED}\nstatus:\n  capacity: {nvidia.com/mig-1g.5gb: '224'}\n",
        ));
        assert!(close(unrenamed.devices, 8.0), "{}", unrenamed.devices);
        let one = unrenamed
            .sharing
            .devices("nvidia.com/mig-1g.5gb", 1.0)
            .unwrap();
        assert!(close(one, 1.0 / 28.0), "{one}");
        // A profile the node does not time-slice stays an instance.
        assert_eq!(unrenamed.sharing.replicas_of("nvidia.com/mig-3g.20gb"), 1);
    }

    #[test]
    fn mixed_strategy_gpus_are_inferred_per_profile_without_a_count_label() {
        let without_count = node_devices(&node(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: mig\n  labels: {nvidia.com/mig.strategy: mixed, nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3}\nstatus:\n  capacity: {nvidia.com/mig-3g.40gb: '16'}\n",
        ));
        assert!(
            close(without_count.devices, 8.0),
            "{}",
            without_count.devices
        );
        assert!(without_count.mig_inferred);
        // The `all-balanced` layout of 8 GPUs (2 × 1g, 1 × 2g, 1 × 3g each): slices fill 8 GPUs,
        // and no profile alone needs more.
        let balanced = node_devices(&node(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: mig\n  labels: {nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB}\nstatus:\n  capacity: {nvidia.com/mig-1g.10gb: '16', nvidia.com/mig-2g.20gb: '8', nvidia.com/mig-3g.40gb: '8'}\n",
        ));
        assert!(close(balanced.devices, 8.0), "{}", balanced.devices);
        // In mixed mode gpu.count is the physical count, and it wins.
        let counted = node_devices(&node(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: mig\n  labels: {nvidia.com/mig.strategy: mixed, nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3, nvidia.com/gpu.count: '8'}\nstatus:\n  capacity: {nvidia.com/mig-3g.40gb: '4', nvidia.com/gpu: '4'}\n",
        ));
        assert!(close(counted.devices, 8.0), "{}", counted.devices);
        assert!(!counted.mig_inferred);
    }

    #[test]
    fn gke_partitions_and_time_sharing_count_physical_gpus() {
        // A GKE A100 node cut into 1g.5gb partitions: 7 per GPU, 14 exposed as nvidia.com/gpu.
        let partitioned = node_devices(&node(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: gke-mig\n  labels: {cloud.google.com/gke-accelerator: nvidia-tesla-a100, cloud.google.com/gke-gpu-partition-size: 1g.5gb, cloud.google.com/gke-accelerator-count: '2'}\nstatus:\n  capacity: {nvidia.com/gpu: '14'}\n",
        ));
        assert!(close(partitioned.devices, 2.0), "{}", partitioned.devices);
        let one = partitioned.sharing.devices("nvidia.com/gpu", 1.0).unwrap();
        assert!(close(one, 1.0 / 7.0), "{one}");
        // GKE time-sharing: 4 clients per GPU, 4 exposed for one L4.
        let shared = node_devices(&node(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: gke-ts\n  labels: {cloud.google.com/gke-accelerator: nvidia-l4, cloud.google.com/gke-gpu-sharing-strategy: time-sharing, cloud.google.com/gke-max-shared-clients-per-gpu: '4'}\nstatus:\n  capacity: {nvidia.com/gpu: '4'}\n",
        ));
        assert!(close(shared.devices, 1.0), "{}", shared.devices);
        let one = shared.sharing.devices("nvidia.com/gpu", 1.0).unwrap();
        assert!(close(one, 0.25), "{one}");
    }

    #[test]
    fn instances_per_gpu_of_each_profile() {
        let per_gpu = |p: &str| MigProfile::parse(p).unwrap().per_gpu(None);
        assert_eq!(per_gpu("1g.10gb"), 7);
        assert_eq!(per_gpu("2g.20gb"), 3);
        assert_eq!(per_gpu("3g.40gb"), 2);
        assert_eq!(per_gpu("4g.40gb"), 1);
        assert_eq!(per_gpu("7g.80gb"), 1);
        assert_eq!(per_gpu("1c.3g.40gb"), 6);
        assert_eq!(per_gpu("1g.6gb"), 4, "an A30");
        assert_eq!(per_gpu("2g.12gb"), 2, "an A30");
        assert_eq!(per_gpu("0c.9g.90gb"), 1, "nonsense stays finite");
    }

    #[test]
    fn neuron_devices_are_not_counted_twice() {
        let d = node_devices(&node(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: inf2\nstatus:\n  capacity: {aws.amazon.com/neuron: '6', aws.amazon.com/neuroncore: '12'}\n",
        ));
        assert!(close(d.devices, 6.0));
        assert!(close(d.sharing.neuron_cores_per_device, 2.0));
    }
}
