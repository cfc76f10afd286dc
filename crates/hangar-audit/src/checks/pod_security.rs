//! PSS: whether inference pods meet the Kubernetes Pod Security Standards, and whether their
//! model weights and service-account tokens are protected.

use std::collections::BTreeSet;

use hangar_core::inventory::Endpoint;
use hangar_core::workload::PodTemplate;
use hangar_core::{Inventory, KubeObject, Policy, Severity, Snapshot};
use k8s_openapi::api::core::v1::{Container, Namespace, SecurityContext, ServiceAccount, Volume};

use crate::check::{Check, Family, Finding, Run, always};

pub(crate) const CHECKS: &[Check] = &[
    Check {
        id: "PSS-001",
        family: Family::PodSecurity,
        title: "Inference namespace does not enforce a Pod Security level",
        severity: Severity::Medium,
        rationale: "Without `pod-security.kubernetes.io/enforce` at baseline or restricted, nothing stops a privileged, host-namespace or hostPath pod from being created beside the model server.",
        remediation: "Label the namespace `pod-security.kubernetes.io/enforce: restricted` (or `baseline` while the workloads are fixed), after checking with `--dry-run=server` which pods would be rejected.",
        run: Run::Cluster(namespace_not_enforced),
        applies: always,
    },
    Check {
        id: "PSS-002",
        family: Family::PodSecurity,
        title: "Inference container is privileged",
        severity: Severity::High,
        rationale: "A privileged container has every capability and every host device, GPUs included: a compromise of the model server is a compromise of the node.",
        remediation: "Remove `securityContext.privileged: true`; request GPUs through `resources.limits` and add only the specific capability the server needs.",
        run: Run::Endpoint(privileged),
        applies: always,
    },
    Check {
        id: "PSS-003",
        family: Family::PodSecurity,
        title: "Inference pod shares the host PID or IPC namespace",
        severity: Severity::High,
        rationale: "`hostPID` lets the pod see and signal every process on the node; `hostIPC` shares the node's shared memory, where other pods' tensors and prompts may sit.",
        remediation: "Remove `hostPID`/`hostIPC`. For tensor-parallel shared memory, mount an `emptyDir` with `medium: Memory` at `/dev/shm` instead of `hostIPC: true`.",
        run: Run::Endpoint(host_namespaces),
        applies: always,
    },
    Check {
        id: "PSS-004",
        family: Family::PodSecurity,
        title: "Inference pod mounts a hostPath volume",
        severity: Severity::High,
        rationale: "A hostPath volume exposes the node's filesystem to the pod: it can read other pods' data and credentials, or write to the host to escape the container.",
        remediation: "Replace the hostPath with a PersistentVolumeClaim (or a read-only image/CSI volume for model weights); for `/dev/shm` use an `emptyDir` with `medium: Memory`.",
        run: Run::Endpoint(host_path),
        applies: always,
    },
    Check {
        id: "PSS-005",
        family: Family::PodSecurity,
        title: "Inference container may run as root",
        severity: Severity::Medium,
        rationale: "Model server images usually run as root by default; root in the container turns any server or remote-code flaw into far easier container escape and file tampering.",
        remediation: "Set `securityContext.runAsNonRoot: true` and a non-zero `runAsUser` (pod level covers every container); make the model cache writable by that user (`fsGroup`).",
        run: Run::Endpoint(may_run_as_root),
        applies: always,
    },
    Check {
        id: "PSS-006",
        family: Family::PodSecurity,
        title: "Inference container allows privilege escalation",
        severity: Severity::Medium,
        rationale: "Unless `allowPrivilegeEscalation` is false, setuid binaries in the image can gain privileges the container did not start with.",
        remediation: "Set `securityContext.allowPrivilegeEscalation: false` on every container.",
        run: Run::Endpoint(privilege_escalation),
        applies: always,
    },
    Check {
        id: "PSS-007",
        family: Family::PodSecurity,
        title: "Inference container keeps or adds Linux capabilities",
        severity: Severity::Medium,
        rationale: "Capabilities beyond NET_BIND_SERVICE (SYS_ADMIN, NET_RAW, SYS_PTRACE…) widen what a compromised model server can do to the node; the runtime's default set is kept unless `ALL` is dropped.",
        remediation: "Set `securityContext.capabilities.drop: [ALL]` and add back only `NET_BIND_SERVICE` if the server binds a port below 1024.",
        run: Run::Endpoint(capabilities),
        applies: always,
    },
    Check {
        id: "PSS-008",
        family: Family::PodSecurity,
        title: "Inference container runs without a seccomp profile",
        severity: Severity::Low,
        rationale: "Without `RuntimeDefault` (or a Localhost profile) every system call is available to the server, including the ones most kernel exploits need.",
        remediation: "Set `securityContext.seccompProfile.type: RuntimeDefault` at pod level.",
        run: Run::Endpoint(no_seccomp),
        applies: always,
    },
    Check {
        id: "PSS-009",
        family: Family::PodSecurity,
        title: "Model weights are mounted read-write from shared storage",
        severity: Severity::Medium,
        rationale: "A model server that can write to the volume its weights come from can poison them for every replica and every later start (OWASP LLM04 data and model poisoning).",
        remediation: "Populate the weights with a separate job and mount them `readOnly: true` in the server; if the server must download at start-up, download into an `emptyDir` instead of shared storage.",
        run: Run::Endpoint(weights_read_write),
        applies: always,
    },
    Check {
        id: "PSS-010",
        family: Family::PodSecurity,
        title: "Inference pod automounts its service-account token",
        severity: Severity::Low,
        rationale: "Model servers do not call the Kubernetes API; a mounted token only gives whoever compromises the server (through remote code or a tool call) credentials to the cluster.",
        remediation: "Set `automountServiceAccountToken: false` in the pod spec (or on its ServiceAccount), and mount a projected token only where the pod really needs one.",
        run: Run::Endpoint(token_automounted),
        applies: always,
    },
];

const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";

fn namespace_not_enforced(snapshot: &Snapshot, inventory: &Inventory, _: &Policy) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut seen = BTreeSet::new();
    for endpoint in &inventory.endpoints {
        let name = endpoint.namespace();
        if !seen.insert(name) {
            continue;
        }
        let namespace = snapshot.find::<Namespace>("", name);
        let Some(namespace) = namespace else {
            let message = if name.is_empty() {
                format!(
                    "`{}` names no namespace and the namespace it will run in is not in the input: Pod Security enforcement unknown",
                    endpoint.id
                )
            } else {
                format!(
                    "namespace `{name}` is not in the input, enforcement unknown: no `{ENFORCE_LABEL}` label could be seen for `{}`",
                    endpoint.id
                )
            };
            findings.push(Finding::on_endpoint("PSS-001", endpoint, None, message));
            continue;
        };
        let level = namespace.object.label(ENFORCE_LABEL);
        let message = match level {
            Some("baseline" | "restricted") => continue,
            Some(level) => format!("namespace `{name}` enforces Pod Security level `{level}`"),
            None => {
                let softer: Vec<String> = ["warn", "audit"]
                    .into_iter()
                    .filter_map(|mode| {
                        let key = format!("pod-security.kubernetes.io/{mode}");
                        namespace.object.label(&key).map(|v| format!("{mode}={v}"))
                    })
                    .collect();
                let softer = if softer.is_empty() {
                    String::new()
                } else {
                    format!(" (only {})", softer.join(", "))
                };
                format!("namespace `{name}` has no `{ENFORCE_LABEL}` label{softer}")
            }
        };
        findings.push(Finding::on(
            "PSS-001",
            namespace.object_ref(),
            &namespace.origin,
            Some(format!("metadata.labels.{ENFORCE_LABEL}")),
            message,
        ));
    }
    findings
}

/// Runs `judge` on every container of every template of the endpoint; each `Some((field,
/// message))` becomes a finding.
fn per_container(
    endpoint: &Endpoint,
    id: &'static str,
    judge: impl Fn(&PodTemplate, &str, &Container) -> Option<(String, String)>,
) -> Vec<Finding> {
    endpoint
        .containers()
        .filter_map(|(t, path, c)| {
            judge(t, &path, c)
                .map(|(field, message)| Finding::on_template(id, endpoint, t, field, message))
        })
        .collect()
}

fn context(c: &Container) -> Option<&SecurityContext> {
    c.security_context.as_ref()
}

fn privileged(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    per_container(endpoint, "PSS-002", |_, path, c| {
        (context(c)?.privileged == Some(true)).then(|| {
            (
                format!("{path}.securityContext.privileged"),
                format!("container `{}` sets `privileged: true`", c.name),
            )
        })
    })
}

fn host_namespaces(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    let mut findings = Vec::new();
    for t in &endpoint.templates {
        for (field, set) in [("hostPID", t.spec.host_pid), ("hostIPC", t.spec.host_ipc)] {
            if set == Some(true) {
                findings.push(Finding::on_template(
                    "PSS-003",
                    endpoint,
                    t,
                    format!("{}.{field}", t.spec_path),
                    format!("`{field}: true`"),
                ));
            }
        }
    }
    findings
}

fn host_path(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    let mut findings = Vec::new();
    for t in &endpoint.templates {
        for (i, volume) in t.spec.volumes.iter().flatten().enumerate() {
            let Some(source) = &volume.host_path else {
                continue;
            };
            findings.push(Finding::on_template(
                "PSS-004",
                endpoint,
                t,
                format!("{}.volumes[{i}].hostPath", t.spec_path),
                format!(
                    "volume `{}` mounts host path `{}`",
                    volume.name, source.path
                ),
            ));
        }
    }
    findings
}

fn may_run_as_root(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    per_container(endpoint, "PSS-005", |t, path, c| {
        let pod = t.spec.security_context.as_ref();
        let own = context(c);
        let non_root = own
            .and_then(|s| s.run_as_non_root)
            .or_else(|| pod.and_then(|s| s.run_as_non_root));
        let user = own
            .and_then(|s| s.run_as_user)
            .or_else(|| pod.and_then(|s| s.run_as_user));
        if non_root == Some(true) || user.is_some_and(|u| u > 0) {
            return None;
        }
        let why = match (user, non_root) {
            (Some(0), _) => "runs as UID 0 (`runAsUser: 0`)".to_owned(),
            (_, Some(false)) => "sets `runAsNonRoot: false` and no non-zero `runAsUser`".to_owned(),
            _ => "sets neither `runAsNonRoot: true` nor a non-zero `runAsUser` (pod or container), so the image's user, often root, applies".to_owned(),
        };
        Some((
            format!("{path}.securityContext.runAsNonRoot"),
            format!("container `{}` may run as root: it {why}", c.name),
        ))
    })
}

fn privilege_escalation(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    per_container(endpoint, "PSS-006", |_, path, c| {
        let setting = context(c).and_then(|s| s.allow_privilege_escalation);
        let observed = match setting {
            Some(false) => return None,
            Some(true) => "sets `allowPrivilegeEscalation: true`",
            None => "does not set `allowPrivilegeEscalation: false`",
        };
        Some((
            format!("{path}.securityContext.allowPrivilegeEscalation"),
            format!("container `{}` {observed}", c.name),
        ))
    })
}

/// `cap_sys_admin` and `SYS_ADMIN` name the same capability.
fn capability(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    upper
        .strip_prefix("CAP_")
        .map(str::to_owned)
        .unwrap_or(upper)
}

fn capabilities(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (t, path, c) in endpoint.containers() {
        let caps = context(c).and_then(|s| s.capabilities.as_ref());
        let added: Vec<String> = caps
            .and_then(|k| k.add.as_ref())
            .into_iter()
            .flatten()
            .map(|a| capability(a))
            .filter(|a| a != "NET_BIND_SERVICE")
            .collect();
        if !added.is_empty() {
            findings.push(Finding::on_template(
                "PSS-007",
                endpoint,
                t,
                format!("{path}.securityContext.capabilities.add"),
                format!(
                    "container `{}` adds capabilities {}",
                    c.name,
                    added.join(", ")
                ),
            ));
        }
        let dropped: Vec<String> = caps
            .and_then(|k| k.drop.as_ref())
            .into_iter()
            .flatten()
            .map(|d| capability(d))
            .collect();
        if !dropped.iter().any(|d| d == "ALL") {
            let observed = if dropped.is_empty() {
                "drops no capabilities".to_owned()
            } else {
                format!("drops only {}, not ALL", dropped.join(", "))
            };
            findings.push(Finding::on_template(
                "PSS-007",
                endpoint,
                t,
                format!("{path}.securityContext.capabilities.drop"),
                format!("container `{}` {observed}", c.name),
            ));
        }
    }
    findings
}

fn no_seccomp(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    per_container(endpoint, "PSS-008", |t, path, c| {
        let pod = t
            .spec
            .security_context
            .as_ref()
            .and_then(|s| s.seccomp_profile.as_ref());
        let profile = context(c).and_then(|s| s.seccomp_profile.as_ref()).or(pod);
        let observed = match profile.map(|p| p.type_.as_str()) {
            Some("RuntimeDefault" | "Localhost") => return None,
            Some(other) => format!("has seccomp profile `{other}`"),
            None => "has no seccomp profile (pod or container)".to_owned(),
        };
        Some((
            format!("{path}.securityContext.seccompProfile"),
            format!("container `{}` {observed}", c.name),
        ))
    })
}

/// Mount paths that, by convention, hold model weights or a model hub cache.
const WEIGHT_PATHS: &[&str] = &[
    "model",
    "huggingface",
    "hf_home",
    "hf-home",
    "hf_cache",
    "hf-cache",
    "weights",
    "checkpoint",
    ".ollama",
];

/// Environment variables that point a server at its weights or hub cache.
const WEIGHT_ENV: &[&str] = &[
    "HF_HOME",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "TRANSFORMERS_CACHE",
    "OLLAMA_MODELS",
    "MODEL_PATH",
    "MODEL_DIR",
];

/// Storage that outlives the pod or is shared with others, described; `None` for per-pod
/// volumes (emptyDir, configMap…) and for sources mounted read-only at the volume.
fn shared_storage(volume: &Volume) -> Option<String> {
    if let Some(s) = &volume.persistent_volume_claim {
        return (s.read_only != Some(true)).then(|| format!("PVC `{}`", s.claim_name));
    }
    if let Some(s) = &volume.host_path {
        return Some(format!("hostPath `{}`", s.path));
    }
    if let Some(s) = &volume.nfs {
        return (s.read_only != Some(true)).then(|| format!("NFS `{}:{}`", s.server, s.path));
    }
    if let Some(s) = &volume.csi {
        return (s.read_only != Some(true)).then(|| format!("CSI volume `{}`", s.driver));
    }
    let other = [
        (volume.cephfs.is_some(), "CephFS"),
        (volume.glusterfs.is_some(), "GlusterFS"),
        (volume.azure_file.is_some(), "Azure Files"),
        (volume.iscsi.is_some(), "iSCSI"),
        (volume.rbd.is_some(), "RBD"),
    ];
    other
        .iter()
        .find(|(present, _)| *present)
        .map(|(_, kind)| format!("{kind} volume"))
}

fn weights_read_write(_: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (t, path, c) in endpoint.containers() {
        let weight_dirs: Vec<&str> = c
            .env
            .iter()
            .flatten()
            .filter(|e| WEIGHT_ENV.contains(&e.name.as_str()))
            .filter_map(|e| e.value.as_deref())
            .collect();
        for (i, mount) in c.volume_mounts.iter().flatten().enumerate() {
            if mount.read_only == Some(true) {
                continue;
            }
            let lowered = mount.mount_path.to_ascii_lowercase();
            let mount_dir = mount.mount_path.trim_end_matches('/');
            let holds_weights = WEIGHT_PATHS.iter().any(|p| lowered.contains(p))
                || weight_dirs.iter().any(|d| {
                    !mount_dir.is_empty()
                        && (*d == mount_dir || d.starts_with(&format!("{mount_dir}/")))
                });
            if !holds_weights {
                continue;
            }
            let volume = t
                .spec
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == mount.name);
            let Some(storage) = volume.and_then(shared_storage) else {
                continue;
            };
            findings.push(Finding::on_template(
                "PSS-009",
                endpoint,
                t,
                format!("{path}.volumeMounts[{i}].readOnly"),
                format!(
                    "container `{}` mounts `{}` ({storage}) read-write",
                    c.name, mount.mount_path
                ),
            ));
        }
    }
    findings
}

fn token_automounted(snapshot: &Snapshot, endpoint: &Endpoint, _: &Policy) -> Vec<Finding> {
    let mut findings = Vec::new();
    for t in &endpoint.templates {
        let account = t
            .spec
            .service_account_name
            .as_deref()
            .or(t.spec.service_account.as_deref())
            .filter(|s| !s.is_empty())
            .unwrap_or("default");
        let observed = match t.spec.automount_service_account_token {
            Some(false) => continue,
            Some(true) => format!(
                "sets `automountServiceAccountToken: true`, mounting the token of service account `{account}`"
            ),
            None => {
                // Unset on the pod, the ServiceAccount decides.
                let sa = snapshot.find::<ServiceAccount>(&t.owner.namespace, account);
                match sa.and_then(|s| s.object.automount_service_account_token) {
                    Some(false) => continue,
                    Some(true) => format!(
                        "mounts the token of service account `{account}`, which sets `automountServiceAccountToken: true`"
                    ),
                    None if sa.is_some() => format!(
                        "mounts the token of service account `{account}`: neither the pod nor the account sets `automountServiceAccountToken: false`"
                    ),
                    None => format!(
                        "mounts the token of service account `{account}`: the pod does not set `automountServiceAccountToken: false` (the account is not in the input)"
                    ),
                }
            }
        };
        findings.push(Finding::on_template(
            "PSS-010",
            endpoint,
            t,
            format!("{}.automountServiceAccountToken", t.spec_path),
            format!("the pod {observed}"),
        ));
    }
    findings
}

#[cfg(test)]
mod tests {
    use crate::checks::testing::{run, vllm};

    /// A vLLM Deployment with `pod` lines (indent 6) added to its pod spec.
    fn with_pod(pod: &str, extra: &str) -> String {
        vllm(extra).replace("      containers:", &format!("{pod}\n      containers:"))
    }

    /// A container hardened to the restricted level.
    const HARDENED: &str = "        securityContext: {runAsNonRoot: true, runAsUser: 1000, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}, seccompProfile: {type: RuntimeDefault}}";

    fn namespace(labels: &str) -> String {
        format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: ml, labels: {{{labels}}}}}\n")
    }

    #[test]
    fn pss_001_fires_once_per_namespace_without_enforcement() {
        let second = vllm("").replace("name: chat,", "name: embed,");
        let yaml = format!(
            "{}---\n{}---\n{second}",
            namespace("pod-security.kubernetes.io/warn: restricted"),
            vllm("")
        );
        let findings = run("PSS-001", &yaml);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].object.kind, "Namespace");
        assert_eq!(
            findings[0].message,
            "namespace `ml` has no `pod-security.kubernetes.io/enforce` label (only warn=restricted)"
        );
    }

    #[test]
    fn pss_001_fires_on_privileged_and_on_an_unknown_namespace() {
        let yaml = format!(
            "{}---\n{}",
            namespace("pod-security.kubernetes.io/enforce: privileged"),
            vllm("")
        );
        assert!(
            run("PSS-001", &yaml)[0]
                .message
                .contains("enforces Pod Security level `privileged`")
        );
        let unknown = run("PSS-001", &vllm(""));
        assert_eq!(unknown.len(), 1);
        assert!(
            unknown[0]
                .message
                .contains("not in the input, enforcement unknown")
        );
        assert_eq!(unknown[0].endpoint.as_deref(), Some("Deployment/ml/chat"));
    }

    #[test]
    fn pss_001_is_quiet_when_baseline_is_enforced() {
        let yaml = format!(
            "{}---\n{}",
            namespace("pod-security.kubernetes.io/enforce: baseline"),
            vllm("")
        );
        assert!(run("PSS-001", &yaml).is_empty());
    }

    #[test]
    fn pss_002_fires_on_a_privileged_container_only() {
        let findings = run(
            "PSS-002",
            &vllm("        securityContext: {privileged: true}"),
        );
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.template.spec.containers[0].securityContext.privileged")
        );
        assert!(run("PSS-002", &vllm(HARDENED)).is_empty());
    }

    #[test]
    fn pss_003_fires_per_host_namespace_and_not_without() {
        let findings = run(
            "PSS-003",
            &with_pod("      hostPID: true\n      hostIPC: true", ""),
        );
        assert_eq!(findings.len(), 2);
        assert_eq!(
            findings[1].field.as_deref(),
            Some("spec.template.spec.hostIPC")
        );
        assert!(run("PSS-003", &with_pod("      hostPID: false", "")).is_empty());
    }

    #[test]
    fn pss_004_names_the_host_path_and_ignores_empty_dirs() {
        let findings = run(
            "PSS-004",
            &with_pod(
                "      volumes: [{name: shm, emptyDir: {medium: Memory}}, {name: models, hostPath: {path: /mnt/nvme/models}}]",
                "",
            ),
        );
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].message,
            "volume `models` mounts host path `/mnt/nvme/models`"
        );
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.template.spec.volumes[1].hostPath")
        );
        assert!(
            run(
                "PSS-004",
                &with_pod(
                    "      volumes: [{name: shm, emptyDir: {medium: Memory}}]",
                    ""
                )
            )
            .is_empty()
        );
    }

    #[test]
    fn pss_005_fires_without_non_root_settings_and_on_uid_zero() {
        assert_eq!(run("PSS-005", &vllm("")).len(), 1);
        let root = run("PSS-005", &vllm("        securityContext: {runAsUser: 0}"));
        assert!(root[0].message.contains("runs as UID 0"));
        // The container's `runAsNonRoot: false` overrides the pod's `true`.
        let overridden = with_pod(
            "      securityContext: {runAsNonRoot: true}",
            "        securityContext: {runAsNonRoot: false}",
        );
        assert_eq!(run("PSS-005", &overridden).len(), 1);
    }

    #[test]
    fn pss_005_is_quiet_with_non_root_at_pod_level() {
        assert!(
            run(
                "PSS-005",
                &with_pod("      securityContext: {runAsNonRoot: true}", "")
            )
            .is_empty()
        );
        assert!(
            run(
                "PSS-005",
                &with_pod("      securityContext: {runAsUser: 1000}", "")
            )
            .is_empty()
        );
    }

    #[test]
    fn pss_006_fires_unless_escalation_is_disabled() {
        let findings = run("PSS-006", &vllm(""));
        assert_eq!(findings.len(), 1);
        assert!(
            findings[0]
                .message
                .contains("does not set `allowPrivilegeEscalation: false`")
        );
        assert!(run("PSS-006", &vllm(HARDENED)).is_empty());
    }

    #[test]
    fn pss_007_fires_on_added_capabilities_and_on_no_drop_all() {
        let findings = run(
            "PSS-007",
            &vllm(
                "        securityContext: {capabilities: {add: [NET_BIND_SERVICE, CAP_SYS_ADMIN], drop: [NET_RAW]}}",
            ),
        );
        assert_eq!(findings.len(), 2);
        assert_eq!(
            findings[0].message,
            "container `vllm` adds capabilities SYS_ADMIN"
        );
        assert_eq!(
            findings[1].message,
            "container `vllm` drops only NET_RAW, not ALL"
        );
    }

    #[test]
    fn pss_007_is_quiet_with_drop_all_and_net_bind_service() {
        let yaml =
            vllm("        securityContext: {capabilities: {add: [NET_BIND_SERVICE], drop: [all]}}");
        assert!(run("PSS-007", &yaml).is_empty());
    }

    #[test]
    fn pss_008_fires_without_a_profile_or_with_unconfined() {
        assert_eq!(run("PSS-008", &vllm("")).len(), 1);
        let unconfined = with_pod(
            "      securityContext: {seccompProfile: {type: RuntimeDefault}}",
            "        securityContext: {seccompProfile: {type: Unconfined}}",
        );
        let findings = run("PSS-008", &unconfined);
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("`Unconfined`"));
    }

    #[test]
    fn pss_008_is_quiet_with_a_pod_level_runtime_default() {
        let yaml = with_pod(
            "      securityContext: {seccompProfile: {type: RuntimeDefault}}",
            "",
        );
        assert!(run("PSS-008", &yaml).is_empty());
    }

    const MODEL_PVC: &str = "      volumes: [{name: weights, persistentVolumeClaim: {claimName: llama-70b}}, {name: shm, emptyDir: {medium: Memory}}]";

    #[test]
    fn pss_009_fires_on_a_writable_weights_pvc() {
        let yaml = with_pod(
            MODEL_PVC,
            "        volumeMounts: [{name: weights, mountPath: /data/models}, {name: shm, mountPath: /dev/shm}]",
        );
        let findings = run("PSS-009", &yaml);
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].message,
            "container `vllm` mounts `/data/models` (PVC `llama-70b`) read-write"
        );
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.template.spec.containers[0].volumeMounts[0].readOnly")
        );
    }

    #[test]
    fn pss_009_follows_hf_home_to_a_cache_mount() {
        let yaml = with_pod(
            MODEL_PVC,
            "        env: [{name: HF_HOME, value: /cache/hf}]\n        volumeMounts: [{name: weights, mountPath: /cache}]",
        );
        assert_eq!(run("PSS-009", &yaml).len(), 1);
    }

    #[test]
    fn pss_009_is_quiet_read_only_or_on_an_empty_dir() {
        let read_only = with_pod(
            MODEL_PVC,
            "        volumeMounts: [{name: weights, mountPath: /models, readOnly: true}]",
        );
        assert!(run("PSS-009", &read_only).is_empty());
        let scratch = with_pod(
            "      volumes: [{name: weights, emptyDir: {}}]",
            "        volumeMounts: [{name: weights, mountPath: /root/.cache/huggingface}]",
        );
        assert!(run("PSS-009", &scratch).is_empty());
    }

    #[test]
    fn pss_010_fires_when_the_token_is_mounted() {
        let findings = run("PSS-010", &vllm(""));
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("service account `default`"));
        assert_eq!(
            findings[0].field.as_deref(),
            Some("spec.template.spec.automountServiceAccountToken")
        );
    }

    #[test]
    fn pss_010_is_quiet_when_the_pod_or_its_account_opts_out() {
        assert!(
            run(
                "PSS-010",
                &with_pod("      automountServiceAccountToken: false", "")
            )
            .is_empty()
        );
        let account = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: vllm, namespace: ml}\nautomountServiceAccountToken: false\n";
        let yaml = format!(
            "{account}---\n{}",
            with_pod("      serviceAccountName: vllm", "")
        );
        assert!(run("PSS-010", &yaml).is_empty());
    }
}
