#!/usr/bin/env python3
"""Generate a synthetic cluster of about N objects as a directory of manifests.

The mix follows what a multi-team GPU cluster holds: per namespace a few inference
Deployments (vLLM, TGI, Triton, Ollama, SGLang), ordinary applications with their
ReplicaSets and Pods, Services, an Ingress, NetworkPolicies (in some namespaces),
ConfigMaps, Secrets, RBAC, a StatefulSet and a GPU training Job; plus GPU and CPU
Nodes and a few KServe InferenceServices.

usage: gen_cluster.py N OUT_DIR
"""
import os
import random
import sys

SERVERS = [
    ("vllm/vllm-openai:v0.8.5", ["--model", "meta-llama/Llama-3.1-8B-Instruct", "--revision", "0e9e39f"], 8000),
    ("ghcr.io/huggingface/text-generation-inference:3.0.1", ["--model-id", "mistralai/Mistral-7B-Instruct-v0.3"], 80),
    ("nvcr.io/nvidia/tritonserver:24.08-py3", ["tritonserver", "--model-repository=s3://models/triton"], 8000),
    ("ollama/ollama:latest", [], 11434),
    ("lmsysorg/sglang:v0.4.1", ["python3", "-m", "sglang.launch_server", "--model-path", "Qwen/Qwen2.5-7B-Instruct"], 30000),
]


def namespace(ns, team, scope, pss):
    labels = f"team: {team}, hangar.dev/data-scope: {scope}"
    if pss:
        labels += ", pod-security.kubernetes.io/enforce: baseline"
    return f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels: {{{labels}}}\n"


def inference(ns, name, team, rng):
    image, args, port = rng.choice(SERVERS)
    api_key = "\n        - name: VLLM_API_KEY\n          valueFrom: {secretKeyRef: {name: vllm-key, key: key}}" if rng.random() < 0.5 else ""
    log = '\n        - "--enable-log-requests"' if rng.random() < 0.2 else ""
    args_yaml = "".join(f'\n        - "{a}"' for a in args) + log
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {ns}
  labels: {{app: {name}, team: {team}, hangar.dev/model: m-{name}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}, team: {team}}}
    spec:
      nodeSelector: {{nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB}}
      tolerations:
      - {{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}}
      containers:
      - name: server
        image: {image}
        args:{args_yaml if args_yaml else ' []'}
        ports:
        - containerPort: {port}
        env:
        - name: HF_HOME
          value: /models{api_key}
        resources:
          limits: {{nvidia.com/gpu: "1", memory: 64Gi}}
          requests: {{cpu: "8", memory: 64Gi}}
        readinessProbe:
          httpGet: {{path: /health, port: {port}}}
        volumeMounts:
        - {{name: models, mountPath: /models, readOnly: true}}
      volumes:
      - name: models
        persistentVolumeClaim: {{claimName: models-{name}}}
"""


def app(ns, name, team):
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {ns}
  labels: {{app: {name}, team: {team}}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}, team: {team}}}
    spec:
      containers:
      - name: web
        image: registry.example.com/{team}/{name}:1.4.2
        ports: [{{containerPort: 8080}}]
        env:
        - {{name: LOG_LEVEL, value: info}}
        - {{name: DB_HOST, value: postgres}}
        resources:
          requests: {{cpu: 200m, memory: 256Mi}}
          limits: {{memory: 512Mi}}
        securityContext: {{runAsNonRoot: true, allowPrivilegeEscalation: false}}
"""


def replica_set(ns, name, team, hash_):
    return f"""apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: {name}-{hash_}
  namespace: {ns}
  labels: {{app: {name}, pod-template-hash: "{hash_}"}}
  ownerReferences:
  - {{apiVersion: apps/v1, kind: Deployment, name: {name}, uid: u-{name}, controller: true}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: {name}, pod-template-hash: "{hash_}"}}}}
  template:
    metadata:
      labels: {{app: {name}, team: {team}, pod-template-hash: "{hash_}"}}
    spec:
      containers:
      - name: web
        image: registry.example.com/{team}/{name}:1.4.2
"""


def pod(ns, name, hash_, i, team):
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}-{hash_}-{i:05d}
  namespace: {ns}
  labels: {{app: {name}, team: {team}, pod-template-hash: "{hash_}"}}
  ownerReferences:
  - {{apiVersion: apps/v1, kind: ReplicaSet, name: {name}-{hash_}, uid: u-{name}-rs, controller: true}}
spec:
  nodeName: node-{i % 40}
  containers:
  - name: web
    image: registry.example.com/{team}/{name}:1.4.2
    resources:
      requests: {{cpu: 200m, memory: 256Mi}}
status:
  phase: Running
"""


def service(ns, name, kind="ClusterIP", port=80, target=8080):
    return f"""apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {ns}
spec:
  type: {kind}
  selector: {{app: {name}}}
  ports:
  - {{port: {port}, targetPort: {target}}}
"""


def ingress(ns, name, tls):
    tls_yaml = f"\n  tls:\n  - hosts: [{name}.example.com]\n    secretName: {name}-tls" if tls else ""
    return f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: {ns}
  annotations:
    nginx.ingress.kubernetes.io/limit-rps: "20"
spec:
  ingressClassName: nginx{tls_yaml}
  rules:
  - host: {name}.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service: {{name: {name}, port: {{number: 80}}}}
"""


def netpol(ns, name):
    return f"""apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {name}
  namespace: {ns}
spec:
  podSelector: {{matchLabels: {{app: {name}}}}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: gateway}}}}
  egress:
  - to:
    - ipBlock: {{cidr: 10.0.0.0/8}}
"""


def config_map(ns, name, i):
    return f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}-config-{i}
  namespace: {ns}
data:
  settings.yaml: |
    feature_flags: [search, recommendations]
    timeout_seconds: 30
  LOG_FORMAT: json
"""


def secret(ns, name, i):
    return f"""apiVersion: v1
kind: Secret
metadata:
  name: {name}-secret-{i}
  namespace: {ns}
type: Opaque
data:
  password: c2VjcmV0LXZhbHVl
"""


def rbac(ns, team):
    return f"""apiVersion: v1
kind: ServiceAccount
metadata:
  name: {team}-deployer
  namespace: {ns}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: deployer
  namespace: {ns}
rules:
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, create, update, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: deployer
  namespace: {ns}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployer}}
subjects:
- {{kind: Group, name: {team}-engineers, apiGroup: rbac.authorization.k8s.io}}
- {{kind: ServiceAccount, name: {team}-deployer, namespace: {ns}}}
"""


def training_job(ns, name):
    return f"""apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  namespace: {ns}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: train
        image: pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime
        command: [torchrun, --nproc_per_node=8, train.py]
        resources:
          limits: {{nvidia.com/gpu: "8"}}
"""


def isvc(ns, name):
    return f"""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name}
  namespace: {ns}
spec:
  predictor:
    model:
      modelFormat: {{name: huggingface}}
      storageUri: s3://models-prod/{name}/v3
      resources:
        limits: {{nvidia.com/gpu: "1", memory: 32Gi}}
"""


def node(i, gpu):
    taint = "\n  taints:\n  - {key: nvidia.com/gpu, value: present, effect: NoSchedule}" if gpu and i % 17 else ""
    alloc = '\n    nvidia.com/gpu: "8"' if gpu else ""
    label = "\n    nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB" if gpu else ""
    return f"""apiVersion: v1
kind: Node
metadata:
  name: node-{i}
  labels:
    kubernetes.io/hostname: node-{i}{label}
spec:
  providerID: aws:///eu-west-1a/i-{i:08x}{taint}
status:
  allocatable:
    cpu: "96"
    memory: 1Ti{alloc}
"""


def namespace_docs(n, rng):
    ns = f"team-{n:04d}"
    team = f"team{n % 37}"
    scope = rng.choice(["pci", "pii", "internal", "none"])
    docs = [namespace(ns, team, scope, pss=n % 3 == 0)]
    docs.append(rbac(ns, team))  # 3 objects
    for k in range(2):
        name = f"llm-{k}"
        docs.append(inference(ns, name, team, rng))
        docs.append(service(ns, name, "LoadBalancer" if rng.random() < 0.1 else "ClusterIP", 80, 8000))
        if n % 2 == 0:
            docs.append(netpol(ns, name))
    for k in range(4):
        name = f"app-{k}"
        docs.append(app(ns, name, team))
        docs.append(replica_set(ns, name, team, f"7c9{k}f8"))
        for i in range(3):
            docs.append(pod(ns, name, f"7c9{k}f8", n * 100 + k * 10 + i, team))
        docs.append(service(ns, name))
        docs.append(config_map(ns, name, 0))
        docs.append(secret(ns, name, 0))
    docs.append(ingress(ns, "app-0", tls=n % 4 != 0))
    docs.append(training_job(ns, f"finetune-{n}"))
    if n % 5 == 0:
        docs.append(isvc(ns, f"isvc-{n}"))
    return ns, docs


def count(docs):
    return sum(d.count("\n---\n") + 1 for d in docs)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    target, out = int(sys.argv[1]), sys.argv[2]
    rng = random.Random(42)
    os.makedirs(out, exist_ok=True)
    nodes = [node(i, gpu=i % 2 == 0) for i in range(max(4, target // 250))]
    with open(os.path.join(out, "nodes.yaml"), "w") as f:
        f.write("---\n".join(nodes))
    total = len(nodes)
    n = 0
    while total < target:
        ns, docs = namespace_docs(n, rng)
        with open(os.path.join(out, f"{ns}.yaml"), "w") as f:
            f.write("---\n".join(docs))
        total += count(docs)
        n += 1
    print(f"{out}: {total} objects in {n} namespaces")


if __name__ == "__main__":
    main()
