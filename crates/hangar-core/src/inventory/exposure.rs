//! How an endpoint can be reached: Services, Ingresses, Gateway API routes, InferencePools and
//! the operators' own routes, and what authenticates each path.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::networking::v1::{Ingress, IngressServiceBackend};
use serde::Serialize;
use serde_json::Value;

use super::{Endpoint, Runtime, command_line, metrics_ports};
use crate::object::{ObjectRef, Origin};
use crate::selector::{map_selects, value_selects};
use crate::snapshot::{DynamicObject, KubeObject, Located, Snapshot};

/// What kind of object exposes the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExposureKind {
    ClusterIp,
    NodePort,
    LoadBalancer,
    ExternalIp,
    Ingress,
    HttpRoute,
    InferencePool,
    /// The route a serving operator creates for its custom resource (KServe, NIM).
    OperatorRoute,
}

/// One way to reach the endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Exposure {
    pub kind: ExposureKind,
    pub via: ObjectRef,
    #[serde(skip)]
    pub origin: Origin,
    /// Reachable from outside the cluster.
    pub external: bool,
    /// Whether the external route terminates TLS; `None` when it cannot be told.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    /// Path prefixes routed to the endpoint (`/` when everything is).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Container ports reachable through it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<i32>,
    /// Authentication enforced on this path (ingress auth, a SecurityPolicy…).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub auth: Vec<Auth>,
    /// Why the path is counted though the input cannot show it works: a route to a backend in
    /// another namespace when no ReferenceGrant of that namespace was read (files without one
    /// there, a live listing that failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unconfirmed: Option<String>,
}

/// What kind of layer authenticates callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthKind {
    /// The model server's own API key (vLLM `--api-key`, SGLang, llama.cpp…).
    ServerApiKey,
    /// An authenticating proxy in the pod (oauth2-proxy, kube-rbac-proxy, Envoy).
    Sidecar,
    /// The Hangar gateway, in the pod or in front of it.
    HangarGateway,
    /// A service-mesh policy (Istio AuthorizationPolicy with RequestAuthentication).
    MeshPolicy,
    /// A Gateway API policy on the route (Envoy Gateway SecurityPolicy).
    GatewayPolicy,
    /// Authentication configured on an Ingress (ingress-nginx auth-url, ALB, Kong, Traefik).
    IngressAuth,
    /// The serving platform's own switch (OpenShift AI / Authorino).
    Operator,
}

/// One authenticating layer and where it was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Auth {
    pub kind: AuthKind,
    /// What it is and where, e.g. `server API key: --api-key (spec.template.spec.containers[0])`.
    pub detail: String,
}

impl Auth {
    pub(super) fn new(kind: AuthKind, detail: impl Into<String>) -> Auth {
        Auth {
            kind,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl Exposure {
    fn new(kind: ExposureKind, via: ObjectRef, origin: &Origin, external: bool) -> Exposure {
        Exposure {
            kind,
            via,
            origin: origin.clone(),
            external,
            tls: None,
            paths: Vec::new(),
            ports: Vec::new(),
            auth: Vec::new(),
            unconfirmed: None,
        }
    }
}

/// Routing objects by namespace, built once per discovery.
pub(super) struct ExposureIndex<'a> {
    services: HashMap<&'a str, Vec<&'a Located<Service>>>,
    ingresses: HashMap<&'a str, Vec<&'a Located<Ingress>>>,
    /// Dynamic objects by namespace and kind: HTTPRoute, InferencePool, SecurityPolicy, Istio…
    dynamic: HashMap<(&'a str, &'a str), Vec<&'a Located<DynamicObject>>>,
    /// Every HTTPRoute, whatever its namespace: a route may send to a Service in another.
    http_routes: Vec<&'a Located<DynamicObject>>,
    /// Whether no listing of ReferenceGrants failed (see `grants_read`).
    grants_listed: bool,
}

/// The API group of the Gateway API, whose ReferenceGrants allow references across namespaces.
const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";

/// Whether a reference from a route to a backend is allowed.
enum Grant {
    /// The backend is in the route's namespace.
    NotNeeded,
    /// A ReferenceGrant in the backend's namespace allows it.
    Found,
    /// The grants there were read, and none allows it: the route cannot use the backend.
    Missing,
    /// The ReferenceGrants of the backend's namespace were not read (files without one there,
    /// a listing that failed), so whether one allows it is unknown.
    NotRead,
}

/// Ingress annotations that put authentication in front of the backend.
const INGRESS_AUTH_ANNOTATIONS: &[(&str, &str)] = &[
    (
        "nginx.ingress.kubernetes.io/auth-url",
        "ingress-nginx external auth",
    ),
    (
        "nginx.ingress.kubernetes.io/auth-type",
        "ingress-nginx basic auth",
    ),
    (
        "nginx.ingress.kubernetes.io/auth-tls-verify-client",
        "ingress-nginx client certificates",
    ),
    (
        "alb.ingress.kubernetes.io/auth-type",
        "AWS ALB authentication",
    ),
    ("konghq.com/plugins", "Kong plugins"),
    (
        "traefik.ingress.kubernetes.io/router.middlewares",
        "Traefik middleware",
    ),
];

/// Auth sidecars: an image path fragment and how to call it.
const AUTH_SIDECARS: &[(&str, &str, AuthKind)] = &[
    ("oauth2-proxy", "oauth2-proxy sidecar", AuthKind::Sidecar),
    (
        "kube-rbac-proxy",
        "kube-rbac-proxy sidecar",
        AuthKind::Sidecar,
    ),
    ("envoy", "Envoy sidecar", AuthKind::Sidecar),
    (
        "hangar-gateway",
        "Hangar gateway sidecar",
        AuthKind::HangarGateway,
    ),
];

impl<'a> ExposureIndex<'a> {
    pub(super) fn new(snapshot: &'a Snapshot) -> Self {
        let mut services: HashMap<&str, Vec<_>> = HashMap::new();
        for s in &snapshot.services {
            services.entry(s.object.namespace()).or_default().push(s);
        }
        let mut ingresses: HashMap<&str, Vec<_>> = HashMap::new();
        for i in &snapshot.ingresses {
            ingresses.entry(i.object.namespace()).or_default().push(i);
        }
        let mut dynamic: HashMap<(&str, &str), Vec<_>> = HashMap::new();
        for o in &snapshot.others {
            dynamic
                .entry((o.object.namespace(), o.object.kind.as_str()))
                .or_default()
                .push(o);
        }
        let http_routes = snapshot
            .others
            .iter()
            .filter(|o| o.object.kind == "HTTPRoute")
            .collect();
        let grants_listed = !snapshot.not_covered.iter().any(|gap| {
            // A live scan names the kind `ReferenceGrant.gateway.networking.k8s.io`, a failed
            // group `gateway.networking.k8s.io/v1`, failed discovery `custom resources`.
            gap.kind.starts_with("ReferenceGrant")
                || gap.kind.starts_with(GATEWAY_API_GROUP)
                || gap.kind == "custom resources"
        });
        ExposureIndex {
            services,
            ingresses,
            dynamic,
            http_routes,
            grants_listed,
        }
    }

    /// Whether the input tells which routes the ReferenceGrants of `namespace` let refer to its
    /// backends: no listing of them failed, and it holds one there, or `live`, the backend was
    /// read from a cluster (whose scan lists ReferenceGrants in every namespace it reads, as it
    /// does Services: none there means none allows the route). When it does not (files without
    /// a grant there, grants only in other namespaces, a cluster role without the kind), such
    /// routes count, saying so: better an exposure reported that a grant would have to allow
    /// than one hidden.
    fn grants_read(&self, namespace: &str, live: bool) -> bool {
        self.grants_listed
            && (live
                || self
                    .dynamic(namespace, "ReferenceGrant")
                    .any(|grant| is_reference_grant(&grant.object)))
    }

    fn dynamic(
        &self,
        namespace: &'a str,
        kind: &'static str,
    ) -> impl Iterator<Item = &'a Located<DynamicObject>> + '_ {
        self.dynamic
            .get(&(namespace, kind))
            .into_iter()
            .flatten()
            .copied()
    }

    /// Every way to reach `endpoint`, and the authentication in front of all of them.
    pub(super) fn for_endpoint(&self, endpoint: &Endpoint) -> (Vec<Exposure>, Vec<Auth>) {
        let namespace = endpoint.namespace();
        let selected = |selector: Option<&BTreeMap<String, String>>| {
            endpoint
                .templates
                .iter()
                .any(|t| map_selects(selector, &t.labels))
        };
        let services = self
            .services
            .get(namespace)
            .into_iter()
            .flatten()
            .copied()
            .filter(|s| selected(s.object.spec.as_ref().and_then(|s| s.selector.as_ref())))
            .collect();
        let pools = self
            .dynamic(namespace, "InferencePool")
            .filter(|p| {
                endpoint
                    .templates
                    .iter()
                    .any(|t| value_selects(p.object.get("spec.selector"), &t.labels))
            })
            .collect();
        let backends = Backends {
            endpoint,
            services,
            pools,
        };

        let mut out: Vec<Exposure> = backends
            .services
            .iter()
            .map(|svc| service_exposure(endpoint, svc))
            .collect();
        let ingresses = self.ingresses.get(namespace).into_iter().flatten();
        out.extend(ingresses.filter_map(|ing| ingress_exposure(&backends, ing)));
        out.extend(backends.pools.iter().map(|pool| pool_exposure(pool)));
        out.extend(
            self.http_routes
                .iter()
                .filter_map(|route| self.route_exposure(&backends, route)),
        );
        let declaration = self
            .dynamic(namespace, "NIMService")
            .find(|o| o.object.name() == endpoint.object.name);
        if let Some(exposure) = operator_route(endpoint, declaration.map(|o| &o.object)) {
            out.push(exposure);
        }
        let ports = policy_ports(&endpoint.serving_ports, &metrics_ports(endpoint), &out);
        let auth = self.endpoint_auth(endpoint, &ports);
        (out, auth)
    }

    /// The HTTPRoute's way to the endpoint, when a rule's backend is a Service or InferencePool
    /// that selects it. The route may live in any namespace: a backend in another one than the
    /// route's counts only when a ReferenceGrant there allows it (see `grants_read` for when
    /// none was read).
    fn route_exposure(
        &self,
        backends: &Backends<'_, '_>,
        route: &Located<DynamicObject>,
    ) -> Option<Exposure> {
        let mut paths = Vec::new();
        let mut ports = Vec::new();
        let mut ungranted = false;
        // A backend is always in the endpoint's namespace (see `reached_from_route`).
        let live = backends.endpoint.origin.is_live();
        let rules = route.object.get("spec.rules").and_then(Value::as_array);
        for rule in rules.into_iter().flatten() {
            let references = rule.get("backendRefs").and_then(Value::as_array);
            let reached: Vec<Vec<i32>> = references
                .into_iter()
                .flatten()
                .filter_map(|r| {
                    let reached = backends.reached_from_route(route.object.namespace(), r)?;
                    match self.grant(&route.object, r, live) {
                        Grant::NotNeeded | Grant::Found => Some(reached),
                        Grant::Missing => None,
                        Grant::NotRead => {
                            ungranted = true;
                            Some(reached)
                        }
                    }
                })
                .collect();
            if reached.is_empty() {
                continue;
            }
            reached.into_iter().for_each(|r| add_ports(&mut ports, r));
            let matches = rule.get("matches").and_then(Value::as_array);
            let rule_paths: Vec<String> = matches
                .into_iter()
                .flatten()
                .filter_map(|m| m.pointer("/path/value")?.as_str().map(str::to_owned))
                .collect();
            if rule_paths.is_empty() {
                paths.push("/".into())
            } else {
                paths.extend(rule_paths)
            }
        }
        if paths.is_empty() {
            return None;
        }
        let mut exposure = Exposure::new(
            ExposureKind::HttpRoute,
            route.object_ref(),
            &route.origin,
            true,
        );
        exposure.paths = paths;
        exposure.ports = ports;
        exposure.tls = self.gateway_tls(&route.object);
        exposure.auth = self.security_policies(&route.object);
        if ungranted {
            exposure.unconfirmed = Some(format!(
                "its backend is in namespace `{}`, where a ReferenceGrant must allow HTTPRoutes of `{}`; no ReferenceGrant was read there, so it is counted",
                backends.endpoint.namespace(),
                route.object.namespace()
            ));
        }
        Some(exposure)
    }

    /// Whether `route` may use `reference`, one of its `backendRefs`: a backend in another
    /// namespace needs a ReferenceGrant there whose `from` names the route's kind and namespace
    /// and whose `to` names the backend's group and kind, and its name or none. `live`: the
    /// backend was read from a cluster (see `grants_read`).
    fn grant(&self, route: &DynamicObject, reference: &Value, live: bool) -> Grant {
        let namespace = match str_field(reference, "namespace") {
            "" => route.namespace(),
            namespace => namespace,
        };
        if namespace == route.namespace() {
            return Grant::NotNeeded;
        }
        if !self.grants_read(namespace, live) {
            return Grant::NotRead;
        }
        let name = str_field(reference, "name");
        let group = str_field(reference, "group");
        let kind = match str_field(reference, "kind") {
            "" => "Service",
            kind => kind,
        };
        let allows = |grant: &Located<DynamicObject>| {
            grant_allows(&grant.object, route, (group, kind, name))
        };
        if self.dynamic(namespace, "ReferenceGrant").any(allows) {
            Grant::Found
        } else {
            Grant::Missing
        }
    }

    /// Whether the Gateways a route attaches to terminate TLS on every listener it may use.
    fn gateway_tls(&self, route: &DynamicObject) -> Option<bool> {
        let mut verdict = None;
        for parent in route
            .get("spec.parentRefs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = parent.get("name").and_then(Value::as_str)?;
            let namespace = parent
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or(route.namespace());
            let gateway = self
                .dynamic(namespace, "Gateway")
                .find(|g| g.object.name() == name)?;
            let listeners = gateway
                .object
                .get("spec.listeners")
                .and_then(Value::as_array)?;
            let section = parent.get("sectionName").and_then(Value::as_str);
            let tls = listeners
                .iter()
                .filter(|l| {
                    section.is_none_or(|s| l.get("name").and_then(Value::as_str) == Some(s))
                })
                .all(|l| {
                    matches!(
                        l.get("protocol").and_then(Value::as_str),
                        Some("HTTPS" | "TLS")
                    )
                });
            verdict = Some(verdict.unwrap_or(true) && tls);
        }
        verdict
    }

    /// Envoy Gateway SecurityPolicies that authenticate a route (directly or via its Gateway).
    fn security_policies(&self, route: &DynamicObject) -> Vec<Auth> {
        let gateways: Vec<&str> = route
            .get("spec.parentRefs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("name")?.as_str())
            .collect();
        let mut auth = Vec::new();
        for policy in self.dynamic(route.namespace(), "SecurityPolicy") {
            let targets: Vec<&Value> = policy
                .object
                .get("spec.targetRefs")
                .and_then(Value::as_array)
                .map(|t| t.iter().collect())
                .or_else(|| policy.object.get("spec.targetRef").map(|t| vec![t]))
                .unwrap_or_default();
            let targeted = targets.iter().any(|t| {
                let name = t.get("name").and_then(Value::as_str).unwrap_or_default();
                match t.get("kind").and_then(Value::as_str) {
                    Some("HTTPRoute") => name == route.name(),
                    Some("Gateway") => gateways.contains(&name),
                    _ => false,
                }
            });
            let methods: Vec<&str> = ["jwt", "apiKeyAuth", "oidc", "basicAuth", "extAuth"]
                .into_iter()
                .filter(|m| policy.object.get(&format!("spec.{m}")).is_some())
                .collect();
            if targeted && !methods.is_empty() {
                auth.push(Auth::new(
                    AuthKind::GatewayPolicy,
                    format!(
                        "Envoy Gateway SecurityPolicy {} ({})",
                        policy.object.name(),
                        methods.join(", ")
                    ),
                ));
            }
        }
        auth
    }

    /// Authentication that guards every path to the endpoint: the server's own key, an auth
    /// sidecar, an Istio request-authentication policy, an operator's auth switch. `ports` are
    /// the container ports requests to its API may arrive on (see `policy_ports`).
    fn endpoint_auth(&self, endpoint: &Endpoint, ports: &[i32]) -> Vec<Auth> {
        let mut auth = Vec::new();
        for (_, path, c) in endpoint.containers() {
            if let Some(how) = server_api_key(endpoint.runtime, c) {
                let scope = if endpoint.runtime == Runtime::Vllm {
                    " (guards /v1 routes only)"
                } else {
                    ""
                };
                auth.push(Auth::new(
                    AuthKind::ServerApiKey,
                    format!("server API key{scope}: {how} ({path})"),
                ));
            }
            let image = c.image.as_deref().unwrap_or_default();
            // A sidecar only guards anything when it sits beside the server in the same pod.
            let has_sidecars = endpoint
                .templates
                .iter()
                .any(|t| t.spec.containers.len() > 1);
            if let Some((_, what, kind)) = AUTH_SIDECARS.iter().find(|(fragment, _, _)| {
                image.contains(fragment) && !path.contains("initContainers")
            }) && has_sidecars
            {
                auth.push(Auth::new(*kind, format!("{what} ({path})")));
            }
        }
        if endpoint
            .annotations
            .get("security.opendatahub.io/enable-auth")
            .is_some_and(|v| v == "true")
        {
            auth.push(Auth::new(
                AuthKind::Operator,
                "OpenShift AI / Authorino (security.opendatahub.io/enable-auth)",
            ));
        }
        let namespace = endpoint.namespace();
        let selected = |o: &&Located<DynamicObject>| {
            let selector = o.object.get("spec.selector");
            selector.is_none()
                || endpoint
                    .templates
                    .iter()
                    .any(|t| value_selects(selector, &t.labels))
        };
        let istio_authn = self
            .dynamic(namespace, "RequestAuthentication")
            .chain(self.dynamic("istio-system", "RequestAuthentication"))
            .find(selected);
        let authorization: Vec<&Located<DynamicObject>> = self
            .dynamic(namespace, "AuthorizationPolicy")
            .chain(self.dynamic("istio-system", "AuthorizationPolicy"))
            .filter(|p| selected(p))
            .collect();
        if let Some(authz) = istio_authorization(&authorization, ports) {
            let authn = istio_authn
                .map(|a| format!(" + RequestAuthentication {}", a.object.name()))
                .unwrap_or_default();
            auth.push(Auth::new(
                AuthKind::MeshPolicy,
                format!("Istio AuthorizationPolicy {}{authn}", authz.object.name()),
            ));
        }
        auth
    }
}

/// Whether `object` is a Gateway API ReferenceGrant.
fn is_reference_grant(object: &DynamicObject) -> bool {
    object.kind == "ReferenceGrant" && object.group() == GATEWAY_API_GROUP
}

/// Whether ReferenceGrant `grant` lets `route` refer to the backend `(group, kind, name)` in the
/// grant's namespace: an entry of its `from` names the route's group, kind and namespace, and
/// one of its `to` the backend's group and kind, and its name or none (every one of them).
fn grant_allows(grant: &DynamicObject, route: &DynamicObject, backend: (&str, &str, &str)) -> bool {
    let (group, kind, name) = backend;
    let from = list(grant, "spec.from").iter().any(|f| {
        str_field(f, "group") == route.group()
            && str_field(f, "kind") == route.kind
            && str_field(f, "namespace") == route.namespace()
    });
    let to = list(grant, "spec.to").iter().any(|t| {
        let named = str_field(t, "name");
        str_field(t, "group") == group
            && str_field(t, "kind") == kind
            && (named.is_empty() || named == name)
    });
    is_reference_grant(grant) && from && to
}

/// The list at `path` in `object`, empty when there is none.
fn list<'v>(object: &'v DynamicObject, path: &str) -> &'v [Value] {
    object
        .get(path)
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
}

/// The text at `key` in `value`, empty when there is none.
fn str_field<'v>(value: &'v Value, key: &str) -> &'v str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// What a route may reach the endpoint through: the Services and InferencePools of its
/// namespace that select its pods.
struct Backends<'e, 'a> {
    endpoint: &'e Endpoint,
    services: Vec<&'a Located<Service>>,
    pools: Vec<&'a Located<DynamicObject>>,
}

impl Backends<'_, '_> {
    /// The container ports a route reaches through Service `name` on its port `number` or
    /// `port_name` (every port of the Service when it names none); `None` when no Service of
    /// that name selects the endpoint.
    fn service_ports(
        &self,
        name: &str,
        number: Option<i32>,
        port_name: Option<&str>,
    ) -> Option<Vec<i32>> {
        let service = self.services.iter().find(|s| s.object.name() == name)?;
        let declared = service
            .object
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_deref())
            .unwrap_or_default();
        let named = |p: &&ServicePort| {
            Some(p.port) == number || (port_name.is_some() && p.name.as_deref() == port_name)
        };
        let chosen: Vec<&ServicePort> = match (number, port_name) {
            (None, None) => declared.iter().collect(),
            _ => declared.iter().filter(named).collect(),
        };
        if chosen.is_empty() {
            // A port the Service does not declare: its number is all there is to go by.
            return Some(number.into_iter().collect());
        }
        Some(
            chosen
                .into_iter()
                .map(|p| target_port(self.endpoint, p))
                .collect(),
        )
    }

    /// The container ports an HTTPRoute `reference` (one of its `backendRefs`) reaches, when
    /// it names a Service or InferencePool that selects the endpoint; its namespace is the
    /// route's unless it names another.
    fn reached_from_route(&self, route_namespace: &str, reference: &Value) -> Option<Vec<i32>> {
        let namespace = reference
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or(route_namespace);
        if namespace != self.endpoint.namespace() {
            return None;
        }
        let name = reference.get("name").and_then(Value::as_str)?;
        let port = reference.get("port").and_then(port_number);
        match reference
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("Service")
        {
            "Service" => self.service_ports(name, port, None),
            "InferencePool" => {
                let pool = self.pools.iter().find(|p| p.object.name() == name)?;
                Some(pool_ports(&pool.object))
            }
            _ => None,
        }
    }
}

/// A port number held in a dynamic object.
fn port_number(value: &Value) -> Option<i32> {
    value.as_i64().and_then(|p| i32::try_from(p).ok())
}

/// The container ports an InferencePool sends to: `spec.targetPorts[].number` (v1) or
/// `spec.targetPortNumber` (v1alpha2).
fn pool_ports(pool: &DynamicObject) -> Vec<i32> {
    let listed = pool
        .get("spec.targetPorts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("number").and_then(port_number));
    let single = pool.get("spec.targetPortNumber").and_then(port_number);
    listed.chain(single).collect()
}

/// The container ports requests to the endpoint's API may arrive on, which Istio matches an
/// AuthorizationPolicy's `ports` against: those its server listens on (`serving`) and those its
/// exposures reach (a proxy in the pod in front of the server, an exposed gRPC port), less those
/// on which the server serves only metrics (`metrics`, Triton's 8002, unless it serves its API
/// there too): a policy need not guard those for the API to be guarded. Empty, any port, when
/// the server's or an exposure's cannot be told.
fn policy_ports(serving: &[i32], metrics: &[i32], exposures: &[Exposure]) -> Vec<i32> {
    if serving.is_empty() || exposures.iter().any(|e| e.ports.is_empty()) {
        return Vec::new();
    }
    let mut ports = serving.to_vec();
    for exposure in exposures {
        let api = (exposure.ports.iter().copied())
            .filter(|port| serving.contains(port) || !metrics.contains(port));
        add_ports(&mut ports, api.collect());
    }
    ports
}

/// Adds each of `ports` to `to` once.
fn add_ports(to: &mut Vec<i32>, ports: Vec<i32>) {
    for port in ports {
        if !to.contains(&port) {
            to.push(port);
        }
    }
}

/// The Service's way to the endpoint it selects, and from where.
fn service_exposure(endpoint: &Endpoint, svc: &Located<Service>) -> Exposure {
    let spec = svc.object.spec.clone().unwrap_or_default();
    let (kind, external) = match spec.type_.as_deref() {
        Some("LoadBalancer") => (
            ExposureKind::LoadBalancer,
            !is_internal_load_balancer(&svc.object),
        ),
        Some("NodePort") => (ExposureKind::NodePort, true),
        _ if spec
            .external_ips
            .as_ref()
            .is_some_and(|ips| !ips.is_empty()) =>
        {
            (ExposureKind::ExternalIp, true)
        }
        _ => (ExposureKind::ClusterIp, false),
    };
    let mut exposure = Exposure::new(kind, svc.object_ref(), &svc.origin, external);
    exposure.ports = spec
        .ports
        .iter()
        .flatten()
        .map(|p| target_port(endpoint, p))
        .collect();
    exposure.paths.push("/".into());
    exposure
}

/// The Ingress's way to the endpoint, when one of its backends is a Service that selects it,
/// with the container ports those backends reach.
fn ingress_exposure(backends: &Backends<'_, '_>, ing: &Located<Ingress>) -> Option<Exposure> {
    let spec = ing.object.spec.as_ref()?;
    let reached = |backend: Option<&IngressServiceBackend>| {
        let backend = backend?;
        let port = backend.port.as_ref();
        let number = port.and_then(|p| p.number);
        backends.service_ports(&backend.name, number, port.and_then(|p| p.name.as_deref()))
    };
    let mut paths = Vec::new();
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    let default = spec
        .default_backend
        .as_ref()
        .and_then(|b| b.service.as_ref());
    if let Some(reached) = reached(default) {
        paths.push("/".to_owned());
        add_ports(&mut ports, reached);
    }
    for rule in spec.rules.iter().flatten() {
        for path in rule.http.iter().flat_map(|h| &h.paths) {
            if let Some(reached) = reached(path.backend.service.as_ref()) {
                paths.push(path.path.clone().unwrap_or_else(|| "/".into()));
                hosts.push(rule.host.clone().unwrap_or_default());
                add_ports(&mut ports, reached);
            }
        }
    }
    if paths.is_empty() {
        return None;
    }
    let mut exposure = Exposure::new(ExposureKind::Ingress, ing.object_ref(), &ing.origin, true);
    let tls_hosts: Vec<&String> = spec
        .tls
        .iter()
        .flatten()
        .flat_map(|t| t.hosts.iter().flatten())
        .collect();
    let has_tls = spec.tls.as_ref().is_some_and(|t| !t.is_empty());
    exposure.tls = Some(
        has_tls
            && hosts
                .iter()
                .all(|h| h.is_empty() || tls_hosts.is_empty() || tls_hosts.contains(&h)),
    );
    exposure.paths = paths;
    exposure.ports = ports;
    exposure.auth = ingress_auth(&ing.object);
    Some(exposure)
}

/// The authentication an Ingress's annotations put in front of its backends.
fn ingress_auth(ing: &Ingress) -> Vec<Auth> {
    let mut auth = Vec::new();
    for (annotation, what) in INGRESS_AUTH_ANNOTATIONS {
        if let Some(value) = ing.annotation(annotation) {
            let authenticates = match *annotation {
                "konghq.com/plugins" | "traefik.ingress.kubernetes.io/router.middlewares" => {
                    ["auth", "jwt", "oidc", "key"]
                        .iter()
                        .any(|k| value.contains(k))
                }
                "nginx.ingress.kubernetes.io/auth-tls-verify-client" => value == "on",
                _ => true,
            };
            if authenticates {
                auth.push(Auth::new(
                    AuthKind::IngressAuth,
                    format!("{what} ({annotation})"),
                ));
            }
        }
    }
    auth
}

/// The InferencePool's way to the endpoint it selects.
fn pool_exposure(pool: &Located<DynamicObject>) -> Exposure {
    let mut exposure = Exposure::new(
        ExposureKind::InferencePool,
        pool.object_ref(),
        &pool.origin,
        false,
    );
    exposure.paths.push("/".into());
    exposure.ports = pool_ports(&pool.object);
    exposure
}

/// The AuthorizationPolicy, among those selecting a workload, that keeps out every request
/// without a request principal (a JWT its RequestAuthentication validated), if one does. Istio
/// asks CUSTOM policies first (an external authoriser decides), then DENY ones: a DENY rule
/// for `notRequestPrincipals: ["*"]` refuses those requests whatever else allows them. Then,
/// when ALLOW policies exist, a request passes if any of their rules matches it, so every rule
/// of every one of them that may take in the inference API must require a principal.
/// `ports` are the container ports requests to the API may arrive on (see `policy_ports`;
/// empty when not known: any port may be). A CUSTOM or DENY policy must take in every one of
/// them, or requests on the others pass it by; an ALLOW rule that takes in any one of them lets
/// those requests in, and rules limited to other ports (a scraper's metrics port) do not.
fn istio_authorization<'p>(
    policies: &[&'p Located<DynamicObject>],
    ports: &[i32],
) -> Option<&'p Located<DynamicObject>> {
    let with_action = |action: &str| -> Vec<&'p Located<DynamicObject>> {
        policies
            .iter()
            .copied()
            .filter(|p| p.object.str_at("spec.action").unwrap_or("ALLOW") == action)
            .collect()
    };
    let reaches = |policy: &Located<DynamicObject>| {
        (istio_rules(&policy.object).iter()).any(|rule| reaches_inference(rule, ports))
    };
    // CUSTOM policies send the requests their rules match to an external authoriser: they count
    // when their rules, between them, take in the inference API on every port (a policy
    // without rules matches nothing).
    let custom = with_action("CUSTOM");
    let custom_rules: Vec<&Value> = (custom.iter().flat_map(|p| istio_rules(&p.object))).collect();
    if takes_in_every_port(&custom_rules, ports) {
        return custom.into_iter().find(|&p| reaches(p));
    }
    // DENY rules for requests without a principal count when, between them, they keep those
    // out on every port: one rule a port is as good as one for all.
    let deny = with_action("DENY");
    let denying_on = |on: &[i32]| {
        (deny.iter().copied()).find(|p| {
            (istio_rules(&p.object).iter()).any(|rule| denies_without_principal(rule, on))
        })
    };
    let denying = match ports {
        [] => denying_on(&[]),
        _ => (ports.iter().map(|&port| denying_on(&[port])))
            .collect::<Option<Vec<_>>>()
            .and_then(|found| found.first().copied()),
    };
    if denying.is_some() {
        return denying;
    }
    let allow = with_action("ALLOW");
    // Rules for other paths or ports (a scraper's `/metrics`) let nobody into the inference API.
    let rules: Vec<&Value> = (allow.iter().flat_map(|p| istio_rules(&p.object)))
        .filter(|rule| reaches_inference(rule, ports))
        .collect();
    if rules.is_empty() || !rules.iter().all(|rule| requires_principal(rule)) {
        return None;
    }
    allow.into_iter().find(|&p| reaches(p))
}

/// The rules of an AuthorizationPolicy.
fn istio_rules(policy: &DynamicObject) -> &[Value] {
    policy
        .get("spec.rules")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
}

/// Whether a rule may match requests to the inference API (`/v1/chat/completions` on one of
/// `ports`): it names no operation, or one whose `paths` could match that path, whose
/// `notPaths` do not, and whose `ports` and `notPorts` let one of those ports through (any port
/// when `ports` is empty). An empty list sets nothing, as in Istio.
fn reaches_inference(rule: &Value, ports: &[i32]) -> bool {
    reaches_inference_where(rule, |operation| {
        ports.is_empty() || (ports.iter()).any(|&port| operation_takes_port(operation, port))
    })
}

/// Whether `rules` between them take in every request to the inference API on each of
/// `ports`; when those are not known (empty), a rule must take them in whatever the port (it
/// limits none).
fn takes_in_every_port(rules: &[&Value], ports: &[i32]) -> bool {
    if ports.is_empty() {
        return (rules.iter())
            .any(|rule| reaches_inference_where(rule, |operation| !restricts_ports(operation)));
    }
    ports.iter().all(|&port| {
        (rules.iter()).any(|rule| {
            reaches_inference_where(rule, |operation| operation_takes_port(operation, port))
        })
    })
}

/// Whether a rule may match requests to the inference API (`/v1/chat/completions`): it names
/// no operation, or one whose `paths` could match that path, whose `notPaths` do not, and whose
/// ports `on_port` accepts.
fn reaches_inference_where(rule: &Value, on_port: impl Fn(&Value) -> bool) -> bool {
    const INFERENCE: &str = "/v1/chat/completions";
    let matches = |pattern: &str| {
        pattern == "*"
            || pattern == INFERENCE
            || pattern
                .strip_suffix('*')
                .is_some_and(|prefix| INFERENCE.starts_with(prefix))
            || pattern
                .strip_prefix('*')
                .is_some_and(|suffix| INFERENCE.ends_with(suffix))
    };
    let patterns = |operation: &Value, key: &str| -> Option<Vec<String>> {
        let list = operation.get(key)?.as_array().filter(|l| !l.is_empty())?;
        Some(
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        )
    };
    let operations = rule.get("to").and_then(Value::as_array);
    match operations {
        None => true,
        Some(operations) if operations.is_empty() => true,
        Some(operations) => operations.iter().any(|to| {
            let Some(operation) = to.get("operation") else {
                return true;
            };
            let paths = patterns(operation, "paths");
            let not_paths = patterns(operation, "notPaths").unwrap_or_default();
            paths.is_none_or(|paths| paths.iter().any(|p| matches(p)))
                && !not_paths.iter().any(|p| matches(p))
                && on_port(operation)
        }),
    }
}

/// Whether an operation's `ports` and `notPorts` let a request on `port` through. Istio
/// compares them, as numbers, with the port of the connection to the workload: the container
/// port, not the Service's. An entry that is no port number (Istio refuses those) is taken to
/// name any port in `ports` and none in `notPorts`.
fn operation_takes_port(operation: &Value, port: i32) -> bool {
    let entries =
        |key: &str| (operation.get(key).and_then(Value::as_array)).filter(|list| !list.is_empty());
    let listed = entries("ports").is_none_or(|ports| {
        ports
            .iter()
            .any(|p| port_entry(p).is_none_or(|number| number == port))
    });
    let excluded =
        entries("notPorts").is_some_and(|ports| ports.iter().any(|p| port_entry(p) == Some(port)));
    listed && !excluded
}

/// A port of an Istio operation: a string (`"8000"`), or a number in hand-written YAML.
fn port_entry(entry: &Value) -> Option<i32> {
    match entry.as_str() {
        Some(text) => text.trim().parse::<i32>().ok(),
        None => port_number(entry),
    }
}

/// Whether an operation limits the ports it takes in (`ports` or `notPorts`, not empty).
fn restricts_ports(operation: &Value) -> bool {
    ["ports", "notPorts"].iter().any(|key| {
        (operation.get(*key).and_then(Value::as_array)).is_some_and(|list| !list.is_empty())
    })
}

/// Whether a rule's operations (`to`) match every request to the inference API: it names none,
/// or one that restricts nothing, or (when the `ports` requests may arrive on are known)
/// operations that restrict only the port and between them take in each of those ports.
fn every_api_request(rule: &Value, ports: &[i32]) -> bool {
    let Some(operations) = (rule.get("to").and_then(Value::as_array)).filter(|o| !o.is_empty())
    else {
        return true;
    };
    if operations.iter().any(|to| to.get("operation").is_none()) {
        return true;
    }
    let ports_only: Vec<&Value> = operations
        .iter()
        .filter_map(|to| to.get("operation"))
        .filter(|operation| {
            operation.as_object().is_some_and(|fields| {
                fields.iter().all(|(key, value)| {
                    matches!(key.as_str(), "ports" | "notPorts")
                        || value.as_array().is_some_and(Vec::is_empty)
                })
            })
        })
        .collect();
    let takes =
        |port: i32| (ports_only.iter()).any(|&operation| operation_takes_port(operation, port));
    ports_only
        .iter()
        .any(|&operation| !restricts_ports(operation))
        || (!ports.is_empty() && ports.iter().all(|&port| takes(port)))
}

/// Whether an ALLOW rule matches only requests with a request principal: it has sources
/// (`from`; a rule without any, `{}` included, matches everyone), each naming
/// `requestPrincipals`. `notRequestPrincipals` alone matches requests without one.
fn requires_principal(rule: &Value) -> bool {
    let sources = rule.get("from").and_then(Value::as_array);
    sources.is_some_and(|sources| {
        !sources.is_empty()
            && sources.iter().all(|from| {
                from.pointer("/source/requestPrincipals")
                    .and_then(Value::as_array)
                    .is_some_and(|principals| !principals.is_empty())
            })
    })
}

/// Whether a DENY rule refuses every request without a request principal to the inference
/// API: a source with `notRequestPrincipals: ["*"]` and nothing else, no `when`, and operations
/// that take in every request on each of `ports` (see `every_api_request`).
fn denies_without_principal(rule: &Value, ports: &[i32]) -> bool {
    let no_conditions = (rule.get("when").and_then(Value::as_array)).is_none_or(Vec::is_empty);
    let sources = rule.get("from").and_then(Value::as_array);
    no_conditions
        && every_api_request(rule, ports)
        && sources.into_iter().flatten().any(|from| {
            let Some(source) = from.get("source").and_then(Value::as_object) else {
                return false;
            };
            let anyone = source
                .get("notRequestPrincipals")
                .and_then(Value::as_array)
                .is_some_and(|principals| principals.iter().any(|p| p.as_str() == Some("*")));
            anyone && source.len() == 1
        })
}

/// The flags and variables through which each server takes an API key of its own.
/// Servers not listed (Ollama, Triton, TGI, NIM…) have none.
const SERVER_KEYS: &[(Runtime, &[&str], &[&str])] = &[
    (Runtime::Vllm, &["--api-key"], &["VLLM_API_KEY"]),
    (Runtime::Sglang, &["--api-key"], &[]),
    (
        Runtime::Llamacpp,
        &["--api-key", "--api-key-file"],
        &["LLAMA_ARG_API_KEY"],
    ),
    (Runtime::Lmdeploy, &["--api-keys"], &[]),
    (
        Runtime::Localai,
        &["--api-keys"],
        &["API_KEY", "LOCALAI_API_KEY"],
    ),
];

/// How the container gives the server its own API key, if it does.
pub(super) fn server_api_key(
    runtime: Runtime,
    c: &k8s_openapi::api::core::v1::Container,
) -> Option<String> {
    let (_, flags, vars) = SERVER_KEYS.iter().find(|(r, _, _)| *r == runtime)?;
    let line = command_line(c);
    let flag = line.split_whitespace().find_map(|token| {
        flags.iter().find(|f| {
            token == **f
                || token
                    .strip_prefix(**f)
                    .is_some_and(|rest| rest.starts_with('='))
        })
    });
    if let Some(flag) = flag {
        return Some((*flag).to_owned());
    }
    c.env
        .iter()
        .flatten()
        .find(|e| vars.contains(&e.name.as_str()))
        .map(|e| e.name.clone())
}

fn is_internal_load_balancer(svc: &Service) -> bool {
    const INTERNAL: &[(&str, &str)] = &[
        (
            "service.beta.kubernetes.io/aws-load-balancer-internal",
            "true",
        ),
        (
            "service.beta.kubernetes.io/aws-load-balancer-scheme",
            "internal",
        ),
        ("networking.gke.io/load-balancer-type", "Internal"),
        ("cloud.google.com/load-balancer-type", "Internal"),
        (
            "service.beta.kubernetes.io/azure-load-balancer-internal",
            "true",
        ),
    ];
    INTERNAL
        .iter()
        .any(|(k, v)| svc.annotation(k).is_some_and(|a| a.eq_ignore_ascii_case(v)))
}

/// The container port a Service port reaches, resolving named target ports.
fn target_port(endpoint: &Endpoint, port: &k8s_openapi::api::core::v1::ServicePort) -> i32 {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    match &port.target_port {
        Some(IntOrString::Int(p)) => *p,
        Some(IntOrString::String(name)) => endpoint
            .containers()
            .flat_map(|(_, _, c)| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map_or(port.port, |p| p.container_port),
        None => port.port,
    }
}

/// The route a serving operator creates for its own custom resource.
/// `nim` is the endpoint's NIMService, when it is one.
fn operator_route(endpoint: &Endpoint, nim: Option<&DynamicObject>) -> Option<Exposure> {
    let external = match endpoint.object.kind.as_str() {
        // KServe publishes every InferenceService on its ingress unless marked cluster-local.
        "InferenceService" | "LLMInferenceService" => endpoint
            .labels
            .get("networking.kserve.io/visibility")
            .is_none_or(|v| v != "cluster-local"),
        // The NIM operator creates a Service of `spec.expose.service.type` (ClusterIP by
        // default) and, when enabled, an Ingress.
        "NIMService" => {
            let nim = nim?;
            let service_type = nim
                .str_at("spec.expose.service.type")
                .unwrap_or("ClusterIP");
            let ingress = nim
                .get("spec.expose.ingress.enabled")
                .and_then(Value::as_bool)
                == Some(true);
            ingress || matches!(service_type, "LoadBalancer" | "NodePort")
        }
        _ => return None,
    };
    let mut exposure = Exposure::new(
        ExposureKind::OperatorRoute,
        endpoint.object.clone(),
        &endpoint.origin,
        external,
    );
    exposure.paths.push("/".into());
    Some(exposure)
}
