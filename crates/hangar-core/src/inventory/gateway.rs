//! The Hangar gateway in front of model servers. A workload that runs `hangar gateway run` is
//! found with its configuration (read from the ConfigMap mounted at its `--config` path), and
//! each model server behind a Service that configuration routes to learns of it. The gateway
//! counts as the server's authentication only when NetworkPolicy admits nothing else: a gateway
//! that other pods can walk around protects nothing.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Container};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer};
use serde::Serialize;
use serde_json::Value;

use super::model::{argv, flag_value};
use super::{Auth, AuthKind, Endpoint, Exposure};
use crate::network_policy::restricts_ingress;
use crate::object::{ObjectRef, Origin};
use crate::selector::selects;
use crate::snapshot::{KubeObject, Located, Snapshot};
use crate::workload::{PodTemplate, Workload};

/// The label every namespace carries with its own name.
pub(super) const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A Hangar gateway that routes to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayFront {
    /// The workload that runs the gateway.
    pub gateway: ObjectRef,
    /// The Service of the endpoint its configuration names.
    pub service: String,
    /// The public model names routed there.
    pub models: Vec<String>,
    /// How long the gateway keeps its audit records (`audit.retentionDays`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_retention_days: Option<u32>,
    /// Why other callers can reach the endpoint without the gateway; `None` when NetworkPolicy
    /// admits only the gateway's pods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bypass: Option<String>,
    /// The gateway runs as several replicas and counts its tenants' limits in each.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits_per_replica: Option<LimitsPerReplica>,
}

/// A gateway that may run as several replicas while its tenants' limits (request and token
/// rates, requests in flight) are counted in each replica, so a tenant gets them from every
/// replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitsPerReplica {
    /// How many replicas there may be, and what says so.
    pub replicas: String,
    /// Where: the workload, or the autoscaler that scales it.
    pub source: ObjectRef,
    /// Where `source` was read.
    #[serde(skip)]
    pub origin: Origin,
    /// The field of `source` that sets the count.
    pub field: String,
    /// The tenants with a limit counted per replica.
    pub tenants: Vec<String>,
    /// Those limits, as the configuration names them (`requestsPerMinute`, `maxConcurrent`…).
    pub limits: Vec<String>,
    /// Why they are per replica: no `limits.shared`, or `limits.shared.concurrency: false`.
    pub why: String,
}

impl GatewayFront {
    /// Where the gateway declares its audit retention, as `Logging::retention_source` names it.
    pub fn retention_source(&self) -> String {
        format!("{} audit.retentionDays", self.gateway)
    }
}

/// A workload running the gateway whose configuration the audit could not read, and why. The
/// endpoints behind it are judged as if it were not there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayNotRead {
    pub gateway: ObjectRef,
    pub why: String,
}

/// A gateway workload and the Services its configuration routes to.
pub(super) struct HangarGateway {
    workload: ObjectRef,
    labels: BTreeMap<String, String>,
    /// (namespace, Service name) → the public models routed there.
    routes: BTreeMap<(String, String), Vec<String>>,
    audit_retention_days: Option<u32>,
    limits_per_replica: Option<LimitsPerReplica>,
}

/// Every workload in the snapshot that runs the gateway: those whose configuration Hangar can
/// read, and the others with why not.
pub(super) fn find(
    snapshot: &Snapshot,
    workloads: &[Workload],
) -> (Vec<HangarGateway>, Vec<GatewayNotRead>) {
    let mut gateways = Vec::new();
    let mut not_read = Vec::new();
    for workload in workloads.iter().filter(|w| !w.runs_to_completion) {
        let template = &workload.template;
        for (_, container) in template.containers() {
            let argv = argv(container);
            if !runs_gateway(&argv, container.image.as_deref().unwrap_or_default()) {
                continue;
            }
            let config = flag_value(&argv, &["--config", "-c"])
                .ok_or_else(|| "its command line has no `--config`".to_owned())
                .and_then(|path| mounted_config(snapshot, template, container, path))
                .and_then(|(text, source)| {
                    serde_saphyr::from_str::<Value>(text).map_err(|e| {
                        let line = e.location().map_or(0, |l| l.line());
                        let message = crate::parse::yaml_error_message(&e);
                        format!("the configuration in {source} is not valid YAML (its line {line}): {message}")
                    })
                });
            let config = match config {
                Ok(config) => config,
                Err(why) => {
                    not_read.push(GatewayNotRead {
                        gateway: template.owner.clone(),
                        why,
                    });
                    continue;
                }
            };
            gateways.push(HangarGateway {
                workload: template.owner.clone(),
                labels: template.labels.clone(),
                routes: routes(&config, &template.owner.namespace),
                audit_retention_days: config
                    .pointer("/audit/retentionDays")
                    .and_then(Value::as_u64)
                    .and_then(|days| u32::try_from(days).ok()),
                limits_per_replica: limits_per_replica(snapshot, template, &config),
            });
        }
    }
    (gateways, not_read)
}

/// When `config` keeps tenants' limits per replica and `workload` may run more than one.
fn limits_per_replica(
    snapshot: &Snapshot,
    workload: &PodTemplate,
    config: &Value,
) -> Option<LimitsPerReplica> {
    const RATES: [&str; 2] = ["requestsPerMinute", "tokensPerMinute"];
    let shared = config.pointer("/limits/shared").filter(|s| !s.is_null());
    // `limits.shared` shares the rates, and the requests in flight unless `concurrency: false`.
    let (per_replica, why): (&[&str], &str) = match shared {
        None => (&[RATES[0], RATES[1], "maxConcurrent"], "no `limits.shared`"),
        Some(shared) if shared.get("concurrency") == Some(&Value::Bool(false)) => {
            (&["maxConcurrent"], "`limits.shared.concurrency: false`")
        }
        Some(_) => return None,
    };
    let set = |tenant: &Value, limit: &&str| tenant.get(*limit).is_some_and(|v| !v.is_null());
    let tenants: Vec<(&String, &Value)> = config
        .get("tenants")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, t)| per_replica.iter().any(|limit| set(t, limit)))
        .collect();
    if tenants.is_empty() {
        return None;
    }
    let limits = per_replica
        .iter()
        .filter(|limit| tenants.iter().any(|(_, t)| set(t, limit)))
        .map(|limit| (*limit).to_owned())
        .collect();
    let (replicas, source, origin, field) = replicas(snapshot, workload)?;
    Some(LimitsPerReplica {
        replicas,
        source,
        origin,
        field,
        tenants: tenants.into_iter().map(|(name, _)| name.clone()).collect(),
        limits,
        why: why.to_owned(),
    })
}

/// How many replicas `workload` may run, what says so and in which field, when more than one:
/// its own count, or the largest an autoscaler (HorizontalPodAutoscaler, KEDA) may set.
fn replicas(
    snapshot: &Snapshot,
    template: &PodTemplate,
) -> Option<(String, ObjectRef, Origin, String)> {
    let workload = &template.owner;
    let (namespace, name) = (workload.namespace.as_str(), workload.name.as_str());
    // (kind, its largest count, the count when unset, the target's kind when unset)
    const AUTOSCALERS: [(&str, &str, Option<u64>, Option<&str>); 2] = [
        ("HorizontalPodAutoscaler", "spec.maxReplicas", None, None),
        // KEDA, common for inference scaled on queue length.
        (
            "ScaledObject",
            "spec.maxReplicaCount",
            Some(100),
            Some("Deployment"),
        ),
    ];
    for (kind, field, default_most, default_target) in AUTOSCALERS {
        let scaler = snapshot
            .others
            .iter()
            .filter(|o| o.object.kind == kind && o.object.namespace() == namespace)
            .find(|o| {
                let target = o
                    .object
                    .str_at("spec.scaleTargetRef.kind")
                    .or(default_target);
                target == Some(workload.kind.as_str())
                    && o.object.str_at("spec.scaleTargetRef.name") == Some(name)
            });
        let Some(scaler) = scaler else {
            continue;
        };
        let most = scaler
            .object
            .get(field)
            .and_then(Value::as_u64)
            .or(default_most)?;
        let name = field.rsplit('.').next().unwrap_or(field);
        return (most > 1).then(|| {
            let source = scaler.object_ref();
            let says = format!("up to {most} replicas (`{source}` {name})");
            (says, source, scaler.origin.clone(), field.to_owned())
        });
    }
    let count = match workload.kind.as_str() {
        "Deployment" => {
            snapshot
                .find::<Deployment>(namespace, name)?
                .object
                .spec
                .as_ref()?
                .replicas
        }
        "StatefulSet" => {
            snapshot
                .find::<StatefulSet>(namespace, name)?
                .object
                .spec
                .as_ref()?
                .replicas
        }
        "ReplicaSet" => {
            snapshot
                .find::<ReplicaSet>(namespace, name)?
                .object
                .spec
                .as_ref()?
                .replicas
        }
        "DaemonSet" => {
            let says = "a replica on every node it runs on (a DaemonSet)".to_owned();
            let origin = template.origin.clone();
            return Some((says, workload.clone(), origin, "kind".to_owned()));
        }
        _ => return None,
    };
    // Kubernetes runs one when `replicas` is not set.
    let count = count.unwrap_or(1);
    (count > 1).then(|| {
        let says = format!("{count} replicas (`spec.replicas`)");
        let origin = template.origin.clone();
        (says, workload.clone(), origin, "spec.replicas".to_owned())
    })
}

/// `hangar gateway run`, from a `hangar` binary or an image named for Hangar.
fn runs_gateway(argv: &[&str], image: &str) -> bool {
    let subcommand = argv.windows(2).any(|w| w == ["gateway", "run"]);
    let binary = argv
        .first()
        .is_some_and(|first| first.rsplit('/').next() == Some("hangar"));
    let repository = image.rsplit('/').next().unwrap_or(image);
    subcommand && (binary || repository.starts_with("hangar"))
}

/// The text of the file at `path` in the container and the ConfigMap key it comes from, or why
/// it cannot be read: only a ConfigMap volume is read (Secret values never enter Hangar).
fn mounted_config<'a>(
    snapshot: &'a Snapshot,
    template: &PodTemplate,
    container: &Container,
    path: &str,
) -> Result<(&'a str, String), String> {
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| {
            let dir = m.mount_path.trim_end_matches('/');
            path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
        })
        .max_by_key(|m| m.mount_path.len())
        .ok_or_else(|| format!("no volume is mounted at its `--config` {path}"))?;
    let volume = template
        .spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .ok_or_else(|| format!("its volume mount `{}` names no volume", mount.name))?;
    let Some(source) = volume.config_map.as_ref() else {
        return Err(match &volume.secret {
            Some(secret) => format!(
                "{path} comes from Secret `{}`, whose values Hangar does not read: keep the \
                 configuration in a ConfigMap and the canary seed alone in a Secret \
                 (`guards.canarySeedFile`)",
                secret.secret_name.as_deref().unwrap_or_default()
            ),
            None => format!(
                "{path} comes from volume `{}`, which is not a ConfigMap",
                volume.name
            ),
        });
    };
    let inside = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
        Some(sub_path) => sub_path,
        None => path
            .strip_prefix(mount.mount_path.trim_end_matches('/'))
            .unwrap_or_default()
            .trim_start_matches('/'),
    };
    let name = format!("ConfigMap `{}/{}`", template.owner.namespace, source.name);
    let key = match &source.items {
        Some(items) => {
            let item = items.iter().find(|i| i.path == inside);
            &item
                .ok_or_else(|| format!("{name} as mounted has no item for {path}"))?
                .key
        }
        None => inside,
    };
    let config_map = snapshot
        .find::<ConfigMap>(&template.owner.namespace, &source.name)
        .ok_or_else(|| format!("{name}, which holds its configuration, is not in the input"))?;
    let name = format!("{name} ({})", config_map.origin);
    let text = config_map
        .object
        .data
        .as_ref()
        .and_then(|data| data.get(key))
        .ok_or_else(|| format!("{name} has no key `{key}` for {path}"))?;
    Ok((text, format!("{name} key `{key}`")))
}

/// The Services each model version's `url` names, with the public models sent there.
fn routes(config: &Value, namespace: &str) -> BTreeMap<(String, String), Vec<String>> {
    let mut routes: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let models = config.get("models").and_then(Value::as_object);
    for (model, route) in models.into_iter().flatten() {
        let versions = route.get("versions").and_then(Value::as_array);
        for url in versions.into_iter().flatten().filter_map(|v| v.get("url")) {
            if let Some(service) = url.as_str().and_then(|u| service_of(u, namespace)) {
                let models = routes.entry(service).or_default();
                if !models.contains(model) {
                    models.push(model.clone());
                }
            }
        }
    }
    routes
}

/// The in-cluster Service a URL names: `http://name`, `http://name.namespace`, and
/// `http://name.namespace.svc[.cluster.local]`, with any port. Other hosts are outside.
fn service_of(url: &str, namespace: &str) -> Option<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() || host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok() {
        return None;
    }
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        [name] => Some((namespace.to_owned(), (*name).to_owned())),
        [name, ns] => Some(((*ns).to_owned(), (*name).to_owned())),
        [name, ns, "svc", ..] => Some(((*ns).to_owned(), (*name).to_owned())),
        _ => None,
    }
}

/// The gateways routing to `endpoint` through one of its Services, each with how other callers
/// can walk around them, if they can. `workloads` are every workload in the snapshot: the pods
/// a NetworkPolicy may admit besides the gateway's.
pub(super) fn fronts(
    snapshot: &Snapshot,
    gateways: &[HangarGateway],
    namespace_labels: &dyn Fn(&str) -> BTreeMap<String, String>,
    endpoint: &Endpoint,
    exposure: &[Exposure],
    workloads: &[Workload],
) -> Vec<GatewayFront> {
    let mut fronts = Vec::new();
    let mut routing: Vec<(&HangarGateway, BTreeMap<String, String>)> = Vec::new();
    for gateway in gateways {
        for service in exposure.iter().filter(|e| e.via.kind == "Service") {
            let key = (service.via.namespace.clone(), service.via.name.clone());
            let Some(models) = gateway.routes.get(&key) else {
                continue;
            };
            fronts.push(GatewayFront {
                gateway: gateway.workload.clone(),
                service: service.via.to_string(),
                models: models.clone(),
                audit_retention_days: gateway.audit_retention_days,
                bypass: None,
                limits_per_replica: gateway.limits_per_replica.clone(),
            });
            if !routing.iter().any(|(g, _)| std::ptr::eq(*g, gateway)) {
                routing.push((gateway, namespace_labels(&gateway.workload.namespace)));
            }
        }
    }
    if !fronts.is_empty() {
        let callers = Callers {
            workloads,
            namespace_labels,
        };
        let bypass = bypass(snapshot, endpoint, &routing, &callers);
        for front in &mut fronts {
            front.bypass.clone_from(&bypass);
        }
    }
    fronts
}

/// The Hangar gateway as the endpoint's authentication, when nothing can walk around it.
pub(super) fn auth(fronts: &[GatewayFront]) -> Option<Auth> {
    let front = fronts.iter().find(|f| f.bypass.is_none())?;
    Some(Auth::new(
        AuthKind::HangarGateway,
        format!(
            "Hangar gateway {} (the only caller NetworkPolicy admits)",
            front.gateway
        ),
    ))
}

/// The retention of the audit records of a gateway nothing can walk around, with where it is
/// declared: every request to the endpoint passes through it and is recorded there.
pub(super) fn audit_retention(fronts: &[GatewayFront]) -> Option<(u32, String)> {
    fronts.iter().filter(|f| f.bypass.is_none()).find_map(|f| {
        let days = f.audit_retention_days?;
        Some((days, f.retention_source()))
    })
}

/// The pods a NetworkPolicy peer may admit: every workload's, in namespaces known by their labels.
struct Callers<'a> {
    workloads: &'a [Workload],
    namespace_labels: &'a dyn Fn(&str) -> BTreeMap<String, String>,
}

impl Callers<'_> {
    /// A workload other than the `gateways` whose pods `peer`, in a policy of `namespace`,
    /// admits: a selector written for the gateway may match more than its pods.
    fn other_than_gateways(
        &self,
        peer: &NetworkPolicyPeer,
        namespace: &str,
        gateways: &[(&HangarGateway, BTreeMap<String, String>)],
    ) -> Option<&ObjectRef> {
        let pods = peer.pod_selector.as_ref()?;
        self.workloads
            .iter()
            .map(|w| (w.object_ref(), &w.template.labels))
            .filter(|(owner, _)| !gateways.iter().any(|(g, _)| g.workload == **owner))
            // The pods' labels first: a namespace's labels are built only for the few that match.
            .find(|(owner, labels)| {
                selects(pods, labels)
                    && match &peer.namespace_selector {
                        None => owner.namespace == namespace,
                        Some(namespaces) => {
                            selects(namespaces, &(self.namespace_labels)(&owner.namespace))
                        }
                    }
            })
            .map(|(owner, _)| owner)
    }
}

/// How a caller other than the `gateways` (with their namespaces' labels) can reach the
/// endpoint's pods, if one can. Ingress rules of all the policies that select the pods add up,
/// so every peer of every rule must be one gateway's pods, and no other workload's. A rule
/// admitting another source on any port counts: which port serves the model is not always known.
fn bypass(
    snapshot: &Snapshot,
    endpoint: &Endpoint,
    gateways: &[(&HangarGateway, BTreeMap<String, String>)],
    callers: &Callers<'_>,
) -> Option<String> {
    let policies: Vec<&Located<NetworkPolicy>> = snapshot
        .network_policies
        .iter()
        .filter(|p| p.object.namespace() == endpoint.namespace() && isolates_ingress(p, endpoint))
        .collect();
    if policies.is_empty() {
        return Some(
            "no NetworkPolicy limits its ingress, so any pod can call it directly".to_owned(),
        );
    }
    let mut admits_gateway = false;
    for policy in &policies {
        let rules = policy.object.spec.as_ref().and_then(|s| s.ingress.as_ref());
        for (i, rule) in rules.into_iter().flatten().enumerate() {
            let at = format!("NetworkPolicy {} rule {i}", policy.object.name());
            let peers = rule.from.as_deref().unwrap_or_default();
            if peers.is_empty() {
                return Some(format!("{at} admits every source"));
            }
            for peer in peers {
                let verdicts: Vec<Result<(), String>> = gateways
                    .iter()
                    .map(|(gateway, labels)| admits_only(peer, endpoint, gateway, labels))
                    .collect();
                if verdicts.iter().any(Result::is_ok) {
                    if let Some(other) =
                        callers.other_than_gateways(peer, endpoint.namespace(), gateways)
                    {
                        return Some(format!(
                            "{at} admits pods other than the gateway's: those of `{other}`"
                        ));
                    }
                    admits_gateway = true;
                } else if let Some(Err(why)) = verdicts.into_iter().next() {
                    return Some(format!("{at} {why}"));
                }
            }
        }
    }
    (!admits_gateway).then(|| {
        "NetworkPolicy admits no caller, not even the gateway, so its route cannot work".to_owned()
    })
}

/// Whether a policy selects the endpoint's pods and limits their ingress.
fn isolates_ingress(policy: &Located<NetworkPolicy>, endpoint: &Endpoint) -> bool {
    let Some(spec) = policy.object.spec.as_ref() else {
        return false;
    };
    let selector = spec.pod_selector.clone().unwrap_or_default();
    restricts_ingress(&policy.object)
        && endpoint
            .templates
            .iter()
            .any(|t| selects(&selector, &t.labels))
}

/// `Ok` when `peer` admits the gateway's pods and nothing broader than their selector.
fn admits_only(
    peer: &NetworkPolicyPeer,
    endpoint: &Endpoint,
    gateway: &HangarGateway,
    gateway_namespace: &BTreeMap<String, String>,
) -> Result<(), String> {
    if let Some(block) = &peer.ip_block {
        return Err(format!("admits addresses in {}", block.cidr));
    }
    let Some(pods) = &peer.pod_selector else {
        return Err("admits every pod of the namespaces it selects".to_owned());
    };
    let empty = pods.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && pods.match_expressions.as_ref().is_none_or(|m| m.is_empty());
    if empty || !selects(pods, &gateway.labels) {
        return Err("admits pods other than the gateway's".to_owned());
    }
    let gateway_ns = &gateway.workload.namespace;
    match &peer.namespace_selector {
        None if gateway_ns == endpoint.namespace() => Ok(()),
        None => Err(format!(
            "admits pods of namespace `{}`, and the gateway runs in `{gateway_ns}`",
            endpoint.namespace()
        )),
        Some(namespaces) => {
            let names_one = namespaces
                .match_labels
                .as_ref()
                .is_some_and(|m| m.contains_key(NAMESPACE_NAME_LABEL));
            if names_one && selects(namespaces, gateway_namespace) {
                Ok(())
            } else {
                Err(format!(
                    "admits pods so labelled in namespaces other than the gateway's `{gateway_ns}` (select it by `{NAMESPACE_NAME_LABEL}`)"
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Policy;
    use crate::inventory::discover;
    use crate::snapshot_from_text;

    /// vLLM without a key behind Service `chat` in `ml`, and a gateway in `hangar` whose
    /// ConfigMap routes `llama` there.
    const CLUSTER: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: chat, namespace: ml}
spec:
  template:
    metadata: {labels: {app: chat}}
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.8.5
        args: ["--model", "meta-llama/Llama-3.1-8B-Instruct"]
        resources: {limits: {nvidia.com/gpu: "1"}}
---
apiVersion: v1
kind: Service
metadata: {name: chat, namespace: ml}
spec:
  selector: {app: chat}
  ports: [{port: 8000}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: gateway, namespace: hangar}
data:
  gateway.yaml: |
    listen: 0.0.0.0:8080
    models:
      llama:
        versions:
          - {name: blue, url: "http://chat.ml.svc.cluster.local:8000", weight: 100}
    audit: {dir: /var/lib/hangar/audit, retentionDays: 400}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: hangar-gateway, namespace: hangar}
spec:
  template:
    metadata: {labels: {app.kubernetes.io/name: hangar-gateway}}
    spec:
      containers:
      - name: gateway
        image: registry.example.com/platform/hangar:0.1.0
        args: [gateway, run, --config, /etc/hangar/gateway.yaml]
        volumeMounts: [{name: config, mountPath: /etc/hangar}]
      volumes:
      - name: config
        configMap: {name: gateway}
"#;

    fn policy(from: &str) -> String {
        format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: only-gateway, namespace: ml}}\nspec:\n  podSelector: {{matchLabels: {{app: chat}}}}\n  policyTypes: [Ingress]\n  ingress:\n  - from: {from}\n"
        )
    }

    const GATEWAY_PODS: &str = "{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: hangar}}, podSelector: {matchLabels: {app.kubernetes.io/name: hangar-gateway}}}";

    fn front(yaml: &str) -> (Vec<GatewayFront>, bool) {
        let inventory = discover(&snapshot_from_text("t.yaml", yaml), &Policy::default());
        let chat = inventory
            .endpoints
            .iter()
            .find(|e| e.id == "Deployment/ml/chat")
            .unwrap_or_else(|| panic!("no endpoint: {:?}", inventory.endpoints));
        let credited = chat.auth.iter().any(|a| a.kind == AuthKind::HangarGateway);
        (chat.gateways.clone(), credited)
    }

    #[test]
    fn a_gateway_that_network_policy_leaves_alone_in_front_is_the_authentication() {
        let (fronts, credited) = front(&format!(
            "{CLUSTER}{}",
            policy(&format!("[{GATEWAY_PODS}]"))
        ));
        assert_eq!(fronts.len(), 1, "{fronts:?}");
        assert_eq!(
            fronts[0].gateway.to_string(),
            "StatefulSet/hangar/hangar-gateway"
        );
        assert_eq!(fronts[0].service, "Service/ml/chat");
        assert_eq!(fronts[0].models, ["llama"]);
        assert_eq!(fronts[0].bypass, None);
        assert!(credited);
        assert_eq!(
            audit_retention(&fronts),
            Some((
                400,
                "StatefulSet/hangar/hangar-gateway audit.retentionDays".to_owned()
            ))
        );

        // The file mounted on its own, with subPath.
        let sub_path = CLUSTER.replace(
            "{name: config, mountPath: /etc/hangar}",
            "{name: config, mountPath: /etc/hangar/gateway.yaml, subPath: gateway.yaml}",
        );
        assert_ne!(sub_path, CLUSTER);
        let (fronts, credited) = front(&format!(
            "{sub_path}{}",
            policy(&format!("[{GATEWAY_PODS}]"))
        ));
        assert_eq!(fronts.len(), 1);
        assert!(credited);
    }

    #[test]
    fn two_gateways_routing_to_one_endpoint_may_both_be_admitted() {
        // The same gateway again under another name and labels, reading the same ConfigMap.
        let second = CLUSTER
            .split("\n---\n")
            .last()
            .unwrap_or_default()
            .replace("hangar-gateway", "hangar-gateway-eu");
        let both = format!(
            "[{GATEWAY_PODS}, {}]",
            GATEWAY_PODS.replace("hangar-gateway", "hangar-gateway-eu")
        );
        let (fronts, credited) = front(&format!("{CLUSTER}\n---\n{second}{}", policy(&both)));
        assert_eq!(fronts.len(), 2, "{fronts:?}");
        assert!(fronts.iter().all(|f| f.bypass.is_none()), "{fronts:?}");
        assert!(credited);
    }

    #[test]
    fn a_gateway_other_callers_can_walk_around_is_named_but_not_credited() {
        let cases = [
            (String::new(), "no NetworkPolicy limits its ingress"),
            (policy("[]"), "rule 0 admits every source"),
            (
                policy(&format!(
                    "[{GATEWAY_PODS}, {{ipBlock: {{cidr: 10.0.0.0/8}}}}]"
                )),
                "admits addresses in 10.0.0.0/8",
            ),
            (
                policy(
                    "[{namespaceSelector: {matchLabels: {team: platform}}, podSelector: {matchLabels: {app.kubernetes.io/name: hangar-gateway}}}]",
                ),
                "namespaces other than the gateway's `hangar`",
            ),
            (
                policy("[{podSelector: {matchLabels: {app.kubernetes.io/name: hangar-gateway}}}]"),
                "admits pods of namespace `ml`",
            ),
            (
                policy(
                    "[{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: hangar}}}]",
                ),
                "admits every pod of the namespaces it selects",
            ),
        ];
        for (policy, why) in cases {
            let (fronts, credited) = front(&format!("{CLUSTER}{policy}"));
            assert_eq!(fronts.len(), 1, "{why}: {fronts:?}");
            let bypass = fronts[0].bypass.as_deref().unwrap_or_default();
            assert!(bypass.contains(why), "expected {why:?}, got {bypass:?}");
            assert!(!credited, "{why}");
            // Requests that can avoid the gateway are not all in its audit log.
            assert_eq!(audit_retention(&fronts), None, "{why}");
        }
    }

    /// A Deployment beside the gateway in `hangar`, labelled like an app but no gateway.
    const DEBUG_SHELL: &str = "\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: debug-shell, namespace: hangar}\nspec:\n  template:\n    metadata: {labels: {app.kubernetes.io/name: debug-shell}}\n    spec:\n      containers: [{name: shell, image: \"busybox:1.36\", command: [sleep, infinity]}]\n";

    #[test]
    fn a_peer_that_also_admits_other_workloads_does_not_leave_the_gateway_alone() {
        let any_named = "[{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: hangar}}, podSelector: {matchExpressions: [{key: app.kubernetes.io/name, operator: Exists}]}}]";
        let (fronts, credited) = front(&format!("{CLUSTER}{DEBUG_SHELL}{}", policy(any_named)));
        assert_eq!(fronts.len(), 1, "{fronts:?}");
        let bypass = fronts[0].bypass.as_deref().unwrap_or_default();
        assert!(
            bypass.contains(
                "admits pods other than the gateway's: those of `Deployment/hangar/debug-shell`"
            ),
            "{bypass:?}"
        );
        assert!(!credited);
        // The same selector with the gateway alone in its namespace, or the gateway's own labels
        // beside the other Deployment, admit the gateway only.
        let (_, credited) = front(&format!("{CLUSTER}{}", policy(any_named)));
        assert!(credited);
        let (fronts, credited) = front(&format!(
            "{CLUSTER}{DEBUG_SHELL}{}",
            policy(&format!("[{GATEWAY_PODS}]"))
        ));
        assert_eq!(fronts[0].bypass, None, "{fronts:?}");
        assert!(credited);
    }

    #[test]
    fn empty_policy_types_limit_ingress_as_kubernetes_defaults_them() {
        let empty = policy(&format!("[{GATEWAY_PODS}]"))
            .replace("policyTypes: [Ingress]", "policyTypes: []");
        let (fronts, credited) = front(&format!("{CLUSTER}{empty}"));
        assert_eq!(fronts.len(), 1, "{fronts:?}");
        assert_eq!(fronts[0].bypass, None, "{fronts:?}");
        assert!(credited);
    }

    #[test]
    fn without_a_readable_configuration_no_gateway_is_found_and_the_report_says_why() {
        let allowed = policy(&format!("[{GATEWAY_PODS}]"));
        for (from, to, why) in [
            (
                "configMap: {name: gateway}",
                "secret: {secretName: gateway}",
                "/etc/hangar/gateway.yaml comes from Secret `gateway`, whose values Hangar does not read",
            ),
            (
                "--config, /etc/hangar/gateway.yaml",
                "--config, /config/gateway.yaml",
                "no volume is mounted at its `--config` /config/gateway.yaml",
            ),
            (
                "--config, /etc/hangar/gateway.yaml",
                "--config, /etc/hangar/other.yaml",
                "ConfigMap `hangar/gateway` (t.yaml:22) has no key `other.yaml` for /etc/hangar/other.yaml",
            ),
            (
                "metadata: {name: gateway, namespace: hangar}",
                "metadata: {name: gateway-v2, namespace: hangar}",
                "ConfigMap `hangar/gateway`, which holds its configuration, is not in the input",
            ),
            (
                "configMap: {name: gateway}",
                "emptyDir: {}",
                "/etc/hangar/gateway.yaml comes from volume `config`, which is not a ConfigMap",
            ),
            (
                "    listen: 0.0.0.0:8080\n",
                "    listen: [0.0.0.0:8080\n",
                "the configuration in ConfigMap `hangar/gateway` (t.yaml:22) key `gateway.yaml` is not valid YAML",
            ),
        ] {
            let cluster = CLUSTER.replace(from, to);
            assert_ne!(cluster, CLUSTER, "{from}");
            let yaml = format!("{cluster}{allowed}");
            let (fronts, credited) = front(&yaml);
            assert!(fronts.is_empty() && !credited, "{to}: {fronts:?}");
            let inventory = discover(&snapshot_from_text("t.yaml", &yaml), &Policy::default());
            let [not_read] = inventory.gateways_not_read.as_slice() else {
                panic!("{to}: {:?}", inventory.gateways_not_read);
            };
            assert_eq!(
                not_read.gateway.to_string(),
                "StatefulSet/hangar/hangar-gateway"
            );
            assert!(not_read.why.starts_with(why), "{to}: {}", not_read.why);
        }
        // What is not the gateway, or routes elsewhere, is simply not in front.
        for (from, to) in [
            ("http://chat.ml.svc", "http://other.ml.svc"),
            ("[gateway, run,", "[gateway, check,"),
        ] {
            let yaml = format!("{}{allowed}", CLUSTER.replace(from, to));
            let (fronts, credited) = front(&yaml);
            assert!(fronts.is_empty() && !credited, "{to}: {fronts:?}");
            let inventory = discover(&snapshot_from_text("t.yaml", &yaml), &Policy::default());
            assert!(inventory.gateways_not_read.is_empty(), "{to}");
        }
        let inventory = discover(&snapshot_from_text("t.yaml", CLUSTER), &Policy::default());
        assert!(inventory.gateways_not_read.is_empty());
    }

    #[test]
    fn urls_name_services_in_the_cluster_and_nothing_else() {
        let cases = [
            ("http://vllm:8000", Some(("serving", "vllm"))),
            ("http://vllm.ml:8000/v1", Some(("ml", "vllm"))),
            ("https://vllm.ml.svc:8443", Some(("ml", "vllm"))),
            ("http://VLLM.ml.svc.cluster.local.", Some(("ml", "vllm"))),
            ("http://api.openai.com", None),
            ("http://10.0.0.7:8000", None),
            ("http://[::1]:8000", None),
            ("unix:///run/vllm.sock", None),
        ];
        for (url, want) in cases {
            let want = want.map(|(ns, name)| (ns.to_owned(), name.to_owned()));
            assert_eq!(service_of(url, "serving"), want, "{url}");
        }
    }

    #[test]
    fn only_hangar_running_its_gateway_is_a_gateway() {
        let image = "registry.example.com/platform/hangar:0.1.0";
        assert!(runs_gateway(&["hangar", "gateway", "run"], "any"));
        assert!(runs_gateway(&["/usr/bin/hangar", "gateway", "run"], "any"));
        assert!(runs_gateway(&["gateway", "run", "--config", "x"], image));
        assert!(!runs_gateway(&["hangar", "gateway", "check"], image));
        assert!(!runs_gateway(
            &["envoy", "gateway", "run"],
            "envoyproxy/envoy"
        ));
    }

    #[test]
    fn each_model_is_listed_once_under_each_service_it_reaches() {
        let config = serde_json::json!({"models": {
            "chat": {"versions": [
                {"name": "blue", "url": "http://vllm.ml.svc:8000"},
                {"name": "green", "url": "http://vllm-green.ml.svc:8000"},
                {"name": "again", "url": "http://vllm.ml:8000"}]},
            "embed": {"versions": [{"name": "v1", "url": "http://tei:8080"}]},
            "outside": {"versions": [{"name": "v1", "url": "https://api.example.com"}]},
            "broken": {"versions": "not a list"}}});
        let routes = routes(&config, "platform");
        let key = |ns: &str, name: &str| (ns.to_owned(), name.to_owned());
        assert_eq!(routes.len(), 3, "{routes:?}");
        assert_eq!(routes[&key("ml", "vllm")], ["chat"]);
        assert_eq!(routes[&key("ml", "vllm-green")], ["chat"]);
        assert_eq!(routes[&key("platform", "tei")], ["embed"]);
    }
}
