//! The check catalogue: one module per family, each exporting its `CHECKS`.

mod compliance;
mod cost;
mod exposure;
mod gpu;
mod logging;
mod model;
mod network;
mod pod_security;
mod secrets;

use std::sync::OnceLock;

use crate::check::Check;

/// Every check, in catalogue order (family, then id).
pub fn catalogue() -> &'static [Check] {
    static CATALOGUE: OnceLock<Vec<Check>> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        let families: [&[Check]; 9] = [
            exposure::CHECKS,
            network::CHECKS,
            gpu::CHECKS,
            pod_security::CHECKS,
            secrets::CHECKS,
            logging::CHECKS,
            model::CHECKS,
            cost::CHECKS,
            compliance::CHECKS,
        ];
        families
            .iter()
            .flat_map(|family| family.iter())
            .map(|c| Check { ..*c })
            .collect()
    })
}

/// The check with this id.
pub fn find(id: &str) -> Option<&'static Check> {
    catalogue().iter().find(|c| c.id.eq_ignore_ascii_case(id))
}

#[cfg(test)]
pub(crate) mod testing {
    //! Given manifests, when one check runs, then these findings.

    use hangar_core::{Policy, discover, snapshot_from_text};

    use crate::check::{Finding, Run};

    /// Runs check `id` over `yaml` with the default policy.
    pub fn run(id: &str, yaml: &str) -> Vec<Finding> {
        run_with(id, yaml, &Policy::default())
    }

    pub fn run_with(id: &str, yaml: &str, policy: &Policy) -> Vec<Finding> {
        let snapshot = snapshot_from_text("test.yaml", yaml);
        assert!(
            snapshot.errors.is_empty(),
            "fixture does not parse: {:?}",
            snapshot.errors
        );
        let inventory = discover(&snapshot, policy);
        let check = super::find(id).unwrap_or_else(|| panic!("no check {id}"));
        match check.run {
            Run::Endpoint(f) => inventory
                .endpoints
                .iter()
                .flat_map(|e| f(&snapshot, e, policy))
                .collect(),
            Run::Cluster(f) => f(&snapshot, &inventory, policy),
        }
    }

    /// A vLLM Deployment in namespace `ml` with pod label `app: chat`, one GPU, and `extra`
    /// appended to its container (indent 8 spaces) — the base most fixtures start from.
    pub fn vllm(extra: &str) -> String {
        format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: chat, namespace: ml}}
spec:
  template:
    metadata: {{labels: {{app: chat}}}}
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.11.0
        resources: {{limits: {{nvidia.com/gpu: "1"}}}}
{extra}
"#
        )
    }

    /// What [`vllm`]'s pods need to sit behind a Hangar gateway: a Service `chat` for them and a
    /// gateway Deployment `gateway` (pod label `app: gateway`) whose configuration routes to it.
    /// `config` adds lines to its gateway.yaml (indent 4 spaces), `spec` to the Deployment's
    /// spec (indent 2).
    pub fn hangar_gateway(config: &str, spec: &str) -> String {
        format!(
            r#"---
apiVersion: v1
kind: Service
metadata: {{name: chat, namespace: ml}}
spec: {{selector: {{app: chat}}, ports: [{{port: 8000}}]}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: gateway, namespace: ml}}
data:
  gateway.yaml: |
    models: {{chat: {{versions: [{{name: v1, url: "http://chat:8000", weight: 1}}]}}}}
{config}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: gateway, namespace: ml}}
spec:
{spec}
  template:
    metadata: {{labels: {{app: gateway}}}}
    spec:
      containers:
      - {{name: gateway, image: hangar:0.1, args: [gateway, run, --config, /etc/hangar/gateway.yaml],
         volumeMounts: [{{name: config, mountPath: /etc/hangar}}]}}
      volumes: [{{name: config, configMap: {{name: gateway}}}}]
"#
        )
    }
}
