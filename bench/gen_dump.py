#!/usr/bin/env python3
"""Writes a `kubectl cluster-info dump --output-directory` tree of inference incidents.

    gen_dump.py examples/incidents            the curated examples (one of each incident)
    gen_dump.py --pods 500 bench/out/dump500   a namespace of 500 pods for the triage benchmark

The layout is kubectl's: DIR/nodes.json, DIR/<ns>/{events,replicationcontrollers,services,
daemonsets,deployments,replicasets,pods}.json (each a `kind: List`), and DIR/<ns>/<pod>/logs.txt
with each container's log between `==== START logs for container C of pod NS/P ====` and
`==== END …` lines. Deterministic: the same arguments write the same bytes.
"""

import argparse
import datetime
import json
import os
import random



def ts(minutes_before_now):
    """An RFC 3339 time `minutes_before_now` minutes before NOW."""
    now = datetime.datetime(2026, 11, 28, 3, 30, tzinfo=datetime.timezone.utc)
    return (now - datetime.timedelta(minutes=minutes_before_now)).strftime("%Y-%m-%dT%H:%M:%SZ")


def node(name, gpus, product, created_min, driver=("550", "127", "05"), taint=True, pool="h100-pool"):
    labels = {
        "kubernetes.io/hostname": name,
        "node.kubernetes.io/instance-type": "p5.48xlarge" if gpus else "m6i.4xlarge",
    }
    spec = {}
    allocatable = {"cpu": "190", "memory": "2000Gi", "pods": "110"}
    if gpus:
        labels.update({
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": product,
            "nvidia.com/gpu.count": str(gpus),
            "nvidia.com/cuda.driver.major": driver[0],
            "nvidia.com/cuda.driver.minor": driver[1],
            "nvidia.com/cuda.driver.rev": driver[2],
            "eks.amazonaws.com/nodegroup": pool,
        })
        allocatable["nvidia.com/gpu"] = str(gpus)
        if taint:
            spec["taints"] = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels, "creationTimestamp": ts(created_min)},
        "spec": spec,
        "status": {
            "allocatable": allocatable, "capacity": dict(allocatable),
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
                {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "lastTransitionTime": ts(created_min)},
            ],
            "nodeInfo": {"kubeletVersion": "v1.33.4", "containerRuntimeVersion": "containerd://1.7.27",
                         "kernelVersion": "6.1.147-172.266.amzn2023.x86_64", "osImage": "Amazon Linux 2023",
                         "architecture": "amd64", "bootID": "", "machineID": "", "systemUUID": "",
                         "kubeProxyVersion": "", "operatingSystem": "linux"},
        },
    }


def deployment(ns, name, labels, containers, revision, created_min, replicas=1, tolerate=True, node_selector=None):
    spec = {"containers": containers}
    if tolerate:
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": labels, "creationTimestamp": ts(created_min),
                     "annotations": {"deployment.kubernetes.io/revision": str(revision)}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {**labels, "app": name}}, "spec": spec}},
    }


def replica_set(deploy, revision, suffix, containers, created_min, replicas):
    meta = deploy["metadata"]
    template = json.loads(json.dumps(deploy["spec"]["template"]))
    template["spec"]["containers"] = containers
    template["metadata"]["labels"]["pod-template-hash"] = suffix
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": f"{meta['name']}-{suffix}", "namespace": meta["namespace"],
            "creationTimestamp": ts(created_min),
            "labels": template["metadata"]["labels"],
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"],
                                 "uid": f"uid-{meta['name']}", "controller": True}],
        },
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": meta["name"]}}, "template": template},
    }


def pod(rs, name, node_name, statuses, phase="Running", conditions=None, start_min=60):
    template = rs["spec"]["template"]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": rs["metadata"]["namespace"], "labels": template["metadata"]["labels"],
            "creationTimestamp": ts(start_min),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs["metadata"]["name"],
                                 "uid": f"uid-{rs['metadata']['name']}", "controller": True}],
        },
        "spec": {**template["spec"], **({"nodeName": node_name} if node_name else {})},
        "status": {
            "phase": phase, "startTime": ts(start_min),
            "conditions": conditions or [],
            "containerStatuses": statuses,
        },
    }


def status(name, image, ready, restarts, state, last=None):
    s = {"name": name, "image": image, "imageID": "", "ready": ready, "restartCount": restarts,
         "started": ready, "state": state}
    s["lastState"] = last or {}
    return s


def terminated(reason, code, started_min, finished_min, message=None):
    t = {"reason": reason, "exitCode": code, "startedAt": ts(started_min), "finishedAt": ts(finished_min),
         "containerID": "containerd://0"}
    if message:
        t["message"] = message
    return {"terminated": t}


def waiting(reason, message):
    return {"waiting": {"reason": reason, "message": message}}


def running(started_min):
    return {"running": {"startedAt": ts(started_min)}}


def event(ns, kind, name, reason, message, type_="Warning", count=1, first_min=10, last_min=1,
          component="kubelet", event_name=None):
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": event_name or f"{name}.{reason.lower()}", "namespace": ns},
        "involvedObject": {"kind": kind, "namespace": ns if kind != "Node" else "", "name": name,
                           "apiVersion": "v1"},
        "reason": reason, "message": message, "type": type_, "count": count,
        "firstTimestamp": ts(first_min), "lastTimestamp": ts(last_min),
        "source": {"component": component},
    }


def container(name, image, args, gpus=1, memory="64Gi", probes=True, port=8000, env=None):
    c = {"name": name, "image": image, "args": args,
         "ports": [{"containerPort": port, "name": "http"}],
         "resources": {"limits": {"nvidia.com/gpu": str(gpus), "memory": memory, "cpu": "8"},
                       "requests": {"nvidia.com/gpu": str(gpus), "memory": memory, "cpu": "8"}}}
    if gpus == 0:
        for r in c["resources"].values():
            del r["nvidia.com/gpu"]
    if env:
        c["env"] = [{"name": k, "value": v} for k, v in env.items()]
    if probes:
        c["livenessProbe"] = {"httpGet": {"path": "/health", "port": port}, "periodSeconds": 10,
                              "failureThreshold": 3, "initialDelaySeconds": 60}
        c["readinessProbe"] = {"httpGet": {"path": "/health", "port": port}, "periodSeconds": 5}
    return c


def vllm_start(model, tp=1, extra=()):
    return [
        "INFO 11-28 03:02:01 [__init__.py:239] Automatically detected platform cuda.",
        f"INFO 11-28 03:02:10 [api_server.py:1090] vLLM API server version 0.11.0",
        f"INFO 11-28 03:02:10 [api_server.py:1091] args: Namespace(model='{model}', tensor_parallel_size={tp})",
        f"INFO 11-28 03:02:31 [config.py:717] This model supports multiple tasks: {{'generate'}}. Defaulting to 'generate'.",
        "INFO 11-28 03:02:45 [gpu_model_runner.py:1329] Starting to load model " + model + "...",
        *extra,
    ]


class Dump:
    def __init__(self):
        self.nodes, self.ns = [], {}

    def space(self, ns):
        return self.ns.setdefault(ns, {"events": [], "replicationcontrollers": [], "services": [],
                                       "daemonsets": [], "deployments": [], "replicasets": [],
                                       "pods": [], "logs": {}})

    def add(self, ns, kind, obj):
        self.space(ns)[kind].append(obj)

    def log(self, ns, pod_name, container_name, lines):
        self.space(ns)["logs"].setdefault(pod_name, []).append((container_name, lines))

    def write(self, out):
        os.makedirs(out, exist_ok=True)
        def write_list(path, kind, items):
            with open(path, "w") as f:
                json.dump({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                           "items": items}, f, indent=4)
                f.write("\n")
        write_list(os.path.join(out, "nodes.json"), "NodeList", self.nodes)
        for ns, space in sorted(self.ns.items()):
            d = os.path.join(out, ns)
            os.makedirs(d, exist_ok=True)
            for key, kind in [("events", "EventList"), ("replicationcontrollers", "ReplicationControllerList"),
                              ("services", "ServiceList"), ("daemonsets", "DaemonSetList"),
                              ("deployments", "DeploymentList"), ("replicasets", "ReplicaSetList"),
                              ("pods", "PodList")]:
                write_list(os.path.join(d, f"{key}.json"), kind, space[key])
            for pod_name, containers in sorted(space["logs"].items()):
                pd = os.path.join(d, pod_name)
                os.makedirs(pd, exist_ok=True)
                with open(os.path.join(pd, "logs.txt"), "w") as f:
                    for cname, lines in containers:
                        f.write(f"==== START logs for container {cname} of pod {ns}/{pod_name} ====\n")
                        for line in lines:
                            f.write(line + "\n")
                        f.write(f"==== END logs for container {cname} of pod {ns}/{pod_name} ====\n")


VLLM = "vllm/vllm-openai:v0.11.0"
TGI = "ghcr.io/huggingface/text-generation-inference:3.3.4"
TRITON = "nvcr.io/nvidia/tritonserver:25.01-trtllm-python-py3"
SGLANG = "lmsysorg/sglang:v0.5.2-cu126"
OLLAMA = "ollama/ollama:0.12.3"
TEI = "ghcr.io/huggingface/text-embeddings-inference:1.8"


def service(ns, name, port=8000):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": port, "targetPort": port}]}}


def endpoint(dump, ns, name, team, containers, revisions, node_name, statuses, phase="Running",
             conditions=None, logs=None, events=(), tolerate=True, previous_containers=None, node_selector=None):
    labels = {"app.kubernetes.io/name": name, "team": team, "hangar.dev/data-scope": "internal"}
    deploy = deployment(ns, name, labels, containers, revisions, 24 * 60 * 7, tolerate=tolerate,
                        node_selector=node_selector)
    dump.add(ns, "deployments", deploy)
    dump.add(ns, "services", service(ns, name, containers[0]["ports"][0]["containerPort"]))
    if previous_containers is not None:
        dump.add(ns, "replicasets", replica_set(deploy, revisions - 1, "6d9f7c8b5", previous_containers,
                                                24 * 60 * 7, 0))
    rs = replica_set(deploy, revisions, "7c9d5f4b8", containers, 45 if previous_containers is not None else 24 * 60 * 7, 1)
    dump.add(ns, "replicasets", rs)
    # A stable suffix (not hash(), which is salted per process) keeps the dump deterministic.
    pod_name = f"{name}-7c9d5f4b8-" + "".join("bcdfghjklmnpqrstvwxz"[(ord(c) * 7 + i) % 20] for i, c in enumerate(name[:5]))
    p = pod(rs, pod_name, node_name, statuses, phase=phase, conditions=conditions, start_min=44)
    dump.add(ns, "pods", p)
    for cname, lines in (logs or {}).items():
        dump.log(ns, pod_name, cname, lines)
    for ev in events:
        dump.add(ns, "events", event(ns, "Pod", pod_name, *ev[:2], **ev[2] if len(ev) > 2 else {}))
    return pod_name


def incidents():
    d = Dump()
    d.nodes = [
        node("gpu-h100-1", 8, "NVIDIA-H100-80GB-HBM3", 60 * 24 * 30),
        node("gpu-h100-2", 8, "NVIDIA-H100-80GB-HBM3", 60 * 24 * 30),
        node("gpu-h100-3", 8, "NVIDIA-H100-80GB-HBM3", 60 * 24 * 30),
        node("gpu-l4-1", 1, "NVIDIA-L4", 60 * 24 * 12, pool="l4-pool"),
        node("cpu-1", 0, "", 60 * 24 * 60),
    ]
    ns = "ml-serving"

    # 1. vLLM: GPU OOM at start-up after revision 4 raised --max-model-len.
    old = [container("vllm", VLLM, ["--model", "meta-llama/Llama-3.1-70B-Instruct", "--tensor-parallel-size", "4",
                                    "--max-model-len", "8192", "--gpu-memory-utilization", "0.90"], gpus=4, memory="200Gi")]
    new = [container("vllm", VLLM, ["--model", "meta-llama/Llama-3.1-70B-Instruct", "--tensor-parallel-size", "4",
                                    "--max-model-len", "131072", "--gpu-memory-utilization", "0.90"], gpus=4, memory="200Gi")]
    endpoint(d, ns, "llama-70b", "assistant", new, 4, "gpu-h100-1",
             [status("vllm", VLLM, False, 6, waiting("CrashLoopBackOff", "back-off 5m0s restarting failed container=vllm"),
                     terminated("Error", 1, 8, 4))],
             logs={"vllm": vllm_start("meta-llama/Llama-3.1-70B-Instruct", 4, [
                 "INFO 11-28 03:24:12 [default_loader.py:267] Loading weights took 61.32 seconds",
                 "INFO 11-28 03:24:13 [gpu_model_runner.py:2392] Model loading took 32.8875 GiB and 62.04 seconds",
                 "INFO 11-28 03:25:40 [gpu_worker.py:298] Available KV cache memory: 3.12 GiB",
                 "ERROR 11-28 03:25:41 [core.py:708] EngineCore failed to start.",
                 "ERROR 11-28 03:25:41 [core.py:708] Traceback (most recent call last):",
                 "ERROR 11-28 03:25:41 [core.py:708]   File \"/usr/local/lib/python3.12/dist-packages/vllm/v1/engine/core.py\", line 699, in run_engine_core",
                 "ERROR 11-28 03:25:41 [core.py:708] ValueError: To serve at least one request with the models's max seq len (131072), (10.00 GiB KV cache is needed, which is larger than the available KV cache memory (3.12 GiB). Based on the available memory, the estimated maximum model length is 40896. Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.",
                 "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}",
             ])},
             events=[("BackOff", "Back-off restarting failed container vllm in pod llama-70b", {"count": 14, "first_min": 40})],
             previous_containers=old)

    # 2. TGI: host OOM — the container's 16Gi limit is below what loading the shards needs.
    endpoint(d, ns, "mistral-tgi", "support", [container("tgi", TGI, ["--model-id", "mistralai/Mistral-7B-Instruct-v0.3",
                                                                      "--max-total-tokens", "8192"], gpus=1, memory="16Gi", port=80)],
             2, "gpu-h100-2",
             [status("tgi", TGI, False, 3, waiting("CrashLoopBackOff", "back-off 2m40s restarting failed container=tgi"),
                     terminated("OOMKilled", 137, 6, 5))],
             logs={"tgi": [
                 '2026-11-28T03:24:01.102Z  INFO text_generation_launcher: Args { model_id: "mistralai/Mistral-7B-Instruct-v0.3", max_total_tokens: Some(8192) }',
                 "2026-11-28T03:24:03.511Z  INFO download: text_generation_launcher: Starting check and download process for mistralai/Mistral-7B-Instruct-v0.3",
                 "2026-11-28T03:24:09.004Z  INFO shard-manager: text_generation_launcher: Starting shard rank=0",
                 "2026-11-28T03:24:19.332Z  INFO shard-manager: text_generation_launcher: Waiting for shard to be ready... rank=0",
             ]},
             events=[("BackOff", "Back-off restarting failed container tgi in pod mistral-tgi", {"count": 5, "first_min": 20})])

    # 3. Triton: the liveness probe kills it while a large TensorRT-LLM engine loads.
    triton = container("triton", TRITON, ["tritonserver", "--model-repository=s3://models-prod/triton", "--log-verbose=0"],
                       gpus=2, memory="120Gi", port=8000)
    triton["livenessProbe"] = {"httpGet": {"path": "/v2/health/live", "port": 8000}, "periodSeconds": 10,
                               "failureThreshold": 3, "initialDelaySeconds": 30}
    endpoint(d, ns, "triton-ensemble", "search", [triton], 3, "gpu-h100-2",
             [status("triton", TRITON, False, 7, running(1), terminated("Error", 137, 13, 12))],
             logs={"triton": [
                 "I1128 03:17:02.118233 1 server.cc:604] Loading model repository s3://models-prod/triton",
                 "I1128 03:17:03.441021 1 model_lifecycle.cc:472] loading: ensemble_llama:1",
                 "I1128 03:17:04.009432 1 model_lifecycle.cc:472] loading: tensorrt_llm:1",
                 "[TensorRT-LLM][INFO] Loading engine from /models/tensorrt_llm/1/rank0.engine (38.2 GiB)",
             ]},
             events=[("Unhealthy", 'Liveness probe failed: Get "http://10.42.3.17:8000/v2/health/live": dial tcp 10.42.3.17:8000: connect: connection refused',
                      {"count": 21, "first_min": 43}),
                     ("Killing", "Container triton failed liveness probe, will be restarted",
                      {"type_": "Normal", "count": 7, "first_min": 42})])

    # 4. SGLang: pending — asks for 8 GPUs, and the only nodes with 8 are full or tainted.
    endpoint(d, ns, "qwen-sglang", "assistant",
             [container("sglang", SGLANG, ["python3", "-m", "sglang.launch_server", "--model-path", "Qwen/Qwen2.5-72B-Instruct",
                                           "--tp", "8", "--port", "30000"], gpus=8, memory="400Gi", port=30000)],
             1, None, [status("sglang", SGLANG, False, 0, waiting("ContainerCreating", ""))], phase="Pending",
             conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                          "message": "0/5 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 Insufficient nvidia.com/gpu, 3 node(s) had untolerated taint {nvidia.com/gpu: present}. preemption: 0/5 nodes are available: 5 Preemption is not helpful for scheduling."}],
             events=[("FailedScheduling", "0/5 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 Insufficient nvidia.com/gpu, 3 node(s) had untolerated taint {nvidia.com/gpu: present}. preemption: 0/5 nodes are available: 5 Preemption is not helpful for scheduling.",
                      {"count": 31, "first_min": 44, "component": "default-scheduler"})],
             tolerate=False)

    # 5. Ollama: the image tag does not exist.
    endpoint(d, ns, "ollama-chat", "support",
             [container("ollama", "ollama/ollama:0.12.30", [], gpus=1, memory="32Gi", port=11434, probes=False)],
             2, "gpu-l4-1",
             [status("ollama", "ollama/ollama:0.12.30", False, 0,
                     waiting("ImagePullBackOff", 'Back-off pulling image "ollama/ollama:0.12.30"'))],
             phase="Pending",
             events=[("Failed", 'Failed to pull image "ollama/ollama:0.12.30": rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/ollama/ollama:0.12.30": failed to resolve reference "docker.io/ollama/ollama:0.12.30": docker.io/ollama/ollama:0.12.30: not found', {"count": 6, "first_min": 30}),
                     ("BackOff", 'Back-off pulling image "ollama/ollama:0.12.30"', {"count": 120, "first_min": 30})],
             node_selector={"nvidia.com/gpu.product": "NVIDIA-L4"})

    # 6. vLLM on a GPU that fell off the bus (Xid 79) after the driver pod restarted.
    endpoint(d, ns, "mixtral", "research",
             [container("vllm", VLLM, ["--model", "mistralai/Mixtral-8x7B-Instruct-v0.1", "--tensor-parallel-size", "2"],
                        gpus=2, memory="160Gi")],
             5, "gpu-h100-3",
             [status("vllm", VLLM, False, 2, waiting("CrashLoopBackOff", "back-off 40s restarting failed container=vllm"),
                     terminated("Error", 1, 9, 7))],
             logs={"vllm": vllm_start("mistralai/Mixtral-8x7B-Instruct-v0.1", 2, [
                 "INFO 11-28 03:21:10 [loggers.py:123] Engine 000: Avg prompt throughput: 812.4 tokens/s, Avg generation throughput: 95.2 tokens/s, Running: 14 reqs",
                 "ERROR 11-28 03:23:02 [core.py:710] EngineCore encountered a fatal error.",
                 "ERROR 11-28 03:23:02 [core.py:710] RuntimeError: CUDA error: unspecified launch failure",
                 "ERROR 11-28 03:23:02 [core.py:710] CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below might be incorrect.",
                 "RuntimeError: NVML_SUCCESS == r INTERNAL ASSERT FAILED at \"/pytorch/c10/cuda/CUDACachingAllocator.cpp\":1016, please report a bug to PyTorch.",
             ])},
             events=[("BackOff", "Back-off restarting failed container vllm in pod mixtral", {"count": 3, "first_min": 7})])
    d.add(ns, "events", event(ns, "Node", "gpu-h100-3", "NVRMXid",
                               "kernel: NVRM: Xid (PCI:0000:9b:00): 79, pid=48213, name=python3, GPU has fallen off the bus.",
                               count=1, first_min=8, last_min=8, component="kernel-monitor"))
    driver_image = "nvcr.io/nvidia/driver:570.172.08-ubuntu22.04"
    d.add("gpu-operator", "daemonsets", {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "nvidia-driver-daemonset", "namespace": "gpu-operator"},
        "spec": {"selector": {"matchLabels": {"app": "nvidia-driver-daemonset"}},
                 "template": {"metadata": {"labels": {"app": "nvidia-driver-daemonset"}},
                              "spec": {"nodeSelector": {"nvidia.com/gpu.present": "true"},
                                       "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                                       "containers": [{"name": "nvidia-driver-ctr", "image": driver_image}]}}},
    })
    d.add("gpu-operator", "pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "nvidia-driver-daemonset-h7x2k", "namespace": "gpu-operator",
                     "labels": {"app": "nvidia-driver-daemonset"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                                          "name": "nvidia-driver-daemonset", "uid": "uid-driver",
                                          "controller": True}]},
        "spec": {"nodeName": "gpu-h100-3",
                 "containers": [{"name": "nvidia-driver-ctr", "image": "nvcr.io/nvidia/driver:570.172.08-ubuntu22.04"}]},
        "status": {"phase": "Running", "startTime": ts(35),
                   "containerStatuses": [status("nvidia-driver-ctr", "nvcr.io/nvidia/driver:570.172.08-ubuntu22.04",
                                                True, 0, running(35))]},
    })

    # 7. TEI embeddings: healthy.
    endpoint(d, ns, "bge-embeddings", "search",
             [container("tei", TEI, ["--model-id", "BAAI/bge-large-en-v1.5", "--max-batch-tokens", "16384"], gpus=1,
                        memory="8Gi", port=80)],
             1, "gpu-l4-1",
             [status("tei", TEI, True, 0, running(44))],
             conditions=[{"type": "Ready", "status": "True"}],
             logs={"tei": [
                 '2026-11-28T02:46:10.021Z  INFO text_embeddings_router: router/src/main.rs:189: Args { model_id: "BAAI/bge-large-en-v1.5" }',
                 "2026-11-28T02:46:31.881Z  INFO text_embeddings_router: router/src/lib.rs:248: Starting model backend",
                 "2026-11-28T02:46:40.337Z  INFO text_embeddings_router::http::server: router/src/http/server.rs:1812: Ready",
             ]},
             node_selector={"nvidia.com/gpu.product": "NVIDIA-L4"})

    # 8. vLLM: a gated model and no token.
    endpoint(d, ns, "llama-guard", "trust-safety",
             [container("vllm", VLLM, ["--model", "meta-llama/Llama-Guard-3-8B"], gpus=1, memory="32Gi")],
             1, "gpu-h100-1",
             [status("vllm", VLLM, False, 4, waiting("CrashLoopBackOff", "back-off 1m20s restarting failed container=vllm"),
                     terminated("Error", 1, 3, 3))],
             logs={"vllm": vllm_start("meta-llama/Llama-Guard-3-8B", 1, [
                 "Traceback (most recent call last):",
                 '  File "/usr/local/lib/python3.12/dist-packages/huggingface_hub/utils/_http.py", line 409, in hf_raise_for_status',
                 "    response.raise_for_status()",
                 "requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: https://huggingface.co/meta-llama/Llama-Guard-3-8B/resolve/main/config.json",
                 "huggingface_hub.errors.GatedRepoError: 401 Client Error. (Request ID: Root=1-6747f1a2-3c1d5e0b2a9f8e7d6c5b4a39;0b7c3f1e-2d4a-4b6c-8e9f-1a2b3c4d5e6f)",
                 "Cannot access gated repo for url https://huggingface.co/meta-llama/Llama-Guard-3-8B/resolve/main/config.json.",
                 "Access to model meta-llama/Llama-Guard-3-8B is restricted. You must have access to it and be authenticated to access it. Please log in.",
             ])},
             events=[("BackOff", "Back-off restarting failed container vllm in pod llama-guard", {"count": 9, "first_min": 25})])
    return d


SCENARIOS = ["healthy", "healthy", "healthy", "gpu_oom", "host_oom", "probe", "scheduling", "image_pull", "model_load"]


def many(pods, seed=7):
    """`pods` endpoints of one pod each in namespace `bulk`, with ~200 log lines per pod."""
    rng = random.Random(seed)
    d = Dump()
    d.nodes = [node(f"gpu-{i}", 8, "NVIDIA-H100-80GB-HBM3", 60 * 24 * 30) for i in range(max(1, pods // 8))]
    ns = "bulk"
    for i in range(pods):
        kind = SCENARIOS[i % len(SCENARIOS)]
        name = f"llm-{i:04d}"
        noise = [f"INFO 11-28 03:{rng.randrange(60):02d}:{rng.randrange(60):02d} [loggers.py:123] Engine 000: Avg prompt throughput: {rng.random() * 900:.1f} tokens/s, Running: {rng.randrange(40)} reqs, Waiting: 0 reqs, GPU KV cache usage: {rng.random() * 90:.1f}%"
                 for _ in range(200)]
        c = [container("vllm", VLLM, ["--model", "meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "32768"],
                       gpus=1, memory="48Gi")]
        node_name = f"gpu-{i % len(d.nodes)}"
        if kind == "healthy":
            st, logs, events, phase = [status("vllm", VLLM, True, 0, running(44))], {"vllm": noise}, [], "Running"
        elif kind == "gpu_oom":
            st = [status("vllm", VLLM, False, 3, waiting("CrashLoopBackOff", "back-off"), terminated("Error", 1, 5, 4))]
            logs = {"vllm": noise + ["torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB of which 1.06 GiB is free."]}
            events, phase = [("BackOff", f"Back-off restarting failed container vllm in pod {name}")], "Running"
        elif kind == "host_oom":
            st = [status("vllm", VLLM, False, 2, waiting("CrashLoopBackOff", "back-off"), terminated("OOMKilled", 137, 5, 4))]
            logs, events, phase = {"vllm": noise}, [], "Running"
        elif kind == "probe":
            st = [status("vllm", VLLM, False, 5, running(1), terminated("Error", 137, 12, 11))]
            logs = {"vllm": noise[:20]}
            events = [("Unhealthy", 'Liveness probe failed: Get "http://10.0.0.1:8000/health": dial tcp 10.0.0.1:8000: connect: connection refused'),
                      ("Killing", "Container vllm failed liveness probe, will be restarted", {"type_": "Normal"})]
            phase = "Running"
        elif kind == "scheduling":
            st, logs, phase, node_name = [status("vllm", VLLM, False, 0, waiting("ContainerCreating", ""))], {}, "Pending", None
            events = [("FailedScheduling", "0/64 nodes are available: 64 Insufficient nvidia.com/gpu. preemption: 0/64 nodes are available: 64 No preemption victims found for incoming pod.", {"component": "default-scheduler"})]
        elif kind == "image_pull":
            st = [status("vllm", VLLM, False, 0, waiting("ImagePullBackOff", 'Back-off pulling image "vllm/vllm-openai:v0.11.0"'))]
            logs, phase = {}, "Pending"
            events = [("Failed", 'Failed to pull image "vllm/vllm-openai:v0.11.0": rpc error: code = Unknown desc = failed to pull and unpack image: unexpected status from HEAD request: 429 Too Many Requests')]
        else:
            st = [status("vllm", VLLM, False, 4, waiting("CrashLoopBackOff", "back-off"), terminated("Error", 1, 3, 3))]
            logs = {"vllm": noise + ["OSError: meta-llama/Llama-3.1-8B-Instruct does not appear to have a file named config.json. Checkout 'https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct/tree/main' for available files."]}
            events, phase = [], "Running"
        endpoint(d, ns, name, f"team-{i % 7}", c, 1, node_name, st, phase=phase, logs=logs, events=events)
    return d


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--pods", type=int, help="write a bulk namespace of this many pods instead of the incidents")
    args = parser.parse_args()
    dump = many(args.pods) if args.pods else incidents()
    dump.write(args.out)


if __name__ == "__main__":
    main()
