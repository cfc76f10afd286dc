//! Distributed inference between GPUs: NCCL collectives that time out or fail.
//!
//! A watchdog timeout or an NCCL error between the ranks of one server is **infrastructure**: a
//! link, a GPU or a peer stopped answering (an Xid on the node makes `gpu.rs` win with more
//! confidence). NCCL failing to create its segment in `/dev/shm` is **configuration**: the pod
//! runs with the container runtime's 64 MiB `/dev/shm` instead of a memory-backed volume.

use crate::evidence::PodEvidence;
use crate::rules::facts::{Kubectl, runtime_name, runtime_of, terminations};
use crate::rules::signatures::{Hits, Kind};
use crate::rules::steps::{flag, gpus};
use crate::verdict::{Category, Diagnosis, Side};

const NCCL: &[Kind] = &[Kind::NcclTimeout, Kind::NcclError, Kind::NcclShm];

pub(crate) fn nccl<'a>(pod: &'a PodEvidence, scan: &Hits<'a>) -> Option<Diagnosis> {
    let hits = scan.of(NCCL);
    let relevant: Vec<_> = hits.iter().filter(|h| scan.matters(pod, h)).collect();
    let shm = relevant.iter().find(|h| h.kind() == Kind::NcclShm);
    let first = shm
        .or_else(|| relevant.iter().find(|h| h.kind() == Kind::NcclTimeout))
        .or(relevant.first())?;
    let c = first.line.container;
    let kubectl = Kubectl::of(pod);
    let mut evidence = vec![first.line.evidence()];
    evidence.extend(
        relevant
            .iter()
            .filter(|h| !std::ptr::eq(h.line.text, first.line.text))
            .take(2)
            .map(|h| h.line.evidence()),
    );
    evidence.extend(
        terminations(pod)
            .into_iter()
            .find(|t| std::ptr::eq(t.container, c) && t.exit_code != 0 && t.matters(pod))
            .map(|t| t.evidence(pod)),
    );
    let parallel = flag(
        &c.command_line,
        &[
            "--tensor-parallel-size",
            "-tp",
            "--tp",
            "--tp-size",
            "--num-shard",
        ],
    )
    .unwrap_or("1");
    let gpu_text = gpus(c)
        .map(|(r, n)| format!("{r}={n}"))
        .unwrap_or_else(|| "no GPU request".into());
    let grep = "NCCL|Watchdog|ProcessGroupNCCL";
    if shm.is_some() {
        return Some(Diagnosis {
            rule: "TRI-NCCL",
            category: Category::Nccl,
            side: Some(Side::Configuration),
            confidence: 0.9,
            summary: format!(
                "NCCL in {} could not create its shared-memory segment: /dev/shm is too small for {parallel}-way parallelism.",
                c.name
            ),
            evidence,
            next_steps: vec![
                format!(
                    "Mount a memory-backed volume at /dev/shm in `{}`: volumes: [{{name: dshm, emptyDir: {{medium: Memory, sizeLimit: 8Gi}}}}] with a volumeMount at /dev/shm (count it in the memory limit).",
                    c.name
                ),
                format!(
                    "Confirm: {}",
                    kubectl.logs(&c.name, first.line.previous, Some("shared memory|/dev/shm"))
                ),
                format!(
                    "Check the mount: kubectl -n {} exec {} -c {} -- df -h /dev/shm",
                    pod.pod.namespace, pod.pod.name, c.name
                ),
            ],
        });
    }
    let timeout = first.kind() == Kind::NcclTimeout;
    let node = pod.node.as_ref().map(|n| n.name.as_str()).unwrap_or("-");
    Some(Diagnosis {
        rule: "TRI-NCCL",
        category: Category::Nccl,
        side: Some(Side::Infrastructure),
        confidence: if timeout { 0.85 } else { 0.8 },
        summary: if timeout {
            format!(
                "A collective between the {parallel} GPU ranks of {} timed out: a GPU, link or peer stopped answering.",
                c.name
            )
        } else {
            format!("NCCL failed between the GPU ranks of {}.", c.name)
        },
        evidence,
        next_steps: vec![
            format!(
                "Check the node's GPUs and links for Xid 74/79 and NVLink errors: {} and `nvidia-smi topo -m` / `nvidia-smi nvlink -s` on the node.",
                Kubectl::node(node)
            ),
            format!(
                "Rerun one replica with NCCL_DEBUG=INFO (and NCCL_DEBUG_SUBSYS=INIT,NET) to see which rank and transport stalls; the server runs {} with {} ranks.",
                runtime_name(runtime_of(pod, c)),
                parallel
            ),
            format!(
                "If it started after a driver, NCCL or image change, roll that back; as a test, NCCL_P2P_DISABLE=1 rules peer-to-peer transfers in or out ({gpu_text})."
            ),
            format!(
                "Confirm: {}",
                kubectl.logs(&c.name, first.line.previous, Some(grep))
            ),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::*;
    use hangar_core::Runtime;

    #[test]
    fn watchdog_timeouts_are_infrastructure() {
        let mut pod = pod_with(
            Runtime::Vllm,
            "vllm/vllm-openai:v0.8.5",
            "vllm serve m --tensor-parallel-size 4",
        );
        pod.containers[0].previous_log = Some(tail(&[
            "[rank1]:[E ProcessGroupNCCL.cpp:563] [Rank 1] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=20518, OpType=ALLREDUCE, NumelIn=106496, NumelOut=106496, Timeout(ms)=600000) ran for 600075 milliseconds before timing out.",
        ]));
        let d = run(nccl, &pod).unwrap();
        assert_eq!(d.side, Some(Side::Infrastructure));
        assert!(d.summary.contains("4 GPU ranks"));
    }

    #[test]
    fn a_small_dev_shm_is_configuration() {
        let mut pod = pod_with(
            Runtime::Sglang,
            "lmsysorg/sglang:v0.4.6",
            "python3 -m sglang.launch_server --tp 8",
        );
        pod.containers[0].previous_log = Some(tail(&[
            "Error while creating shared memory segment /dev/shm/nccl-lNPZ0f (size 7340384)",
            "torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/NCCLUtils.hpp:317, unhandled system error",
        ]));
        let d = run(nccl, &pod).unwrap();
        assert_eq!(d.side, Some(Side::Configuration));
    }

    #[test]
    fn quiet_without_nccl_lines() {
        let mut pod = pod_with(Runtime::Vllm, "vllm/vllm-openai:v0.8.5", "vllm serve m");
        pod.containers[0].log = Some(tail(&["INFO NCCL_DEBUG is not set"]));
        assert!(run(nccl, &pod).is_none());
    }
}
