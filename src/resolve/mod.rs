//! The resolver: for every Flux controller, and every object that reaches Azure, the
//! credential its controller will really use, decided in the order that controller's source
//! decides it at the version it runs, with the reason. Checks and fixes read these paths;
//! none decides precedence on its own, so a kind or a version rule is changed here and only
//! here. Pure: a function of the snapshot.

pub mod features;
mod objects;

use std::collections::BTreeMap;
use std::ops::Deref;

use serde::Serialize;

use crate::model::azure_use::{AzureService, WiringMode, has_use_label, wiring_mode};
use crate::model::version::{OBJECT_LEVEL_GATE, feature_gates, flag_value};
use crate::model::{Container, FluxObject, ServiceAccount, Snapshot, Workload};
use crate::wiring::{
    CLIENT_ID_ANNOTATION, ENV_AUTHORITY_HOST, ENV_CLIENT_ID, ENV_TENANT_ID, ENV_TOKEN_FILE,
};
use features::Running;

/// A snapshot together with its resolution: what the checks run on.
#[derive(Debug, Clone)]
pub struct Resolved {
    snapshot: Snapshot,
    resolution: Resolution,
}

impl Resolved {
    pub fn new(snapshot: Snapshot) -> Resolved {
        let resolution = resolve(&snapshot);
        Resolved {
            snapshot,
            resolution,
        }
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn into_snapshot(self) -> Snapshot {
        self.snapshot
    }

    /// What Azure Resource Manager says, read after resolution: the resolver does not look at it.
    pub fn set_azure(&mut self, azure: crate::model::Fact<crate::azure::state::AzureState>) {
        self.snapshot.azure = azure;
    }

    /// The probes' results, likewise outside what the resolver reads.
    pub fn set_probes(&mut self, probes: crate::model::Fact<Vec<crate::azure::state::Probe>>) {
        self.snapshot.probes = probes;
    }

    pub fn resolution(&self) -> &Resolution {
        &self.resolution
    }

    /// Every object's path to Azure, in inventory order.
    pub fn uses(&self) -> impl Iterator<Item = AzureUse<'_>> {
        self.resolution.uses.iter().map(|path| AzureUse {
            object: &self.snapshot.flux.objects[path.object],
            service: path.service,
            controller: path.controller,
            credential: &path.credential,
            path,
        })
    }

    pub fn controller_path(&self, name: &str) -> Option<&ControllerPath> {
        self.resolution.controllers.iter().find(|c| c.name == name)
    }

    /// Every Flux controller with its path and the uses that rely on its own identity.
    pub fn wirings(&self) -> Vec<ControllerWiring<'_>> {
        let Some(workloads) = self.snapshot.controllers.known() else {
            return Vec::new();
        };
        workloads
            .iter()
            .zip(&self.resolution.controllers)
            .map(|(workload, path)| ControllerWiring {
                workload,
                service_account: self
                    .snapshot
                    .service_account(&workload.namespace, &workload.service_account),
                mode: path.wiring,
                path,
                needed_by: self
                    .uses()
                    .filter(|u| {
                        u.controller == workload.name && *u.credential == Credential::Controller
                    })
                    .collect(),
            })
            .collect()
    }
}

impl Deref for Resolved {
    type Target = Snapshot;

    fn deref(&self) -> &Snapshot {
        &self.snapshot
    }
}

/// What the resolver decided.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Resolution {
    /// One per Flux controller Deployment, in the snapshot's order.
    pub controllers: Vec<ControllerPath>,
    pub uses: Vec<UsePath>,
}

/// How a controller process authenticates when an object leaves it to the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ControllerCredential {
    /// Workload identity: a federated service-account token exchanged at Entra ID.
    WorkloadIdentity { mode: WiringMode },
    /// An application's client secret or certificate in the controller's environment
    /// (`EnvironmentCredential`), which every chain tries before workload identity.
    #[serde(rename_all = "camelCase")]
    Environment { credential: &'static str },
    /// A managed identity over IMDS: AAD Pod Identity's NMI answers for a pod its binding
    /// selects; otherwise the node's identities (the kubelet identity on AKS). `AZURE_CLIENT_ID`
    /// picks one of several.
    #[serde(rename_all = "camelCase")]
    ManagedIdentity {
        client_id: Option<String>,
        pod_identity: Option<String>,
    },
    /// The Azure CLI, which no controller image contains: kustomize-controller v0.x without
    /// `AZURE_AUTH_METHOD`. Every Key Vault call fails with `Invoking Azure CLI failed`.
    AzureCli,
}

impl ControllerCredential {
    pub fn describe(&self) -> String {
        match self {
            ControllerCredential::WorkloadIdentity { mode } => {
                format!("workload identity ({mode} mode)")
            }
            ControllerCredential::Environment { credential } => {
                format!("an application's {credential} in its environment")
            }
            ControllerCredential::ManagedIdentity {
                pod_identity: Some(selector),
                ..
            } => format!("AAD Pod Identity (binding {selector})"),
            ControllerCredential::ManagedIdentity {
                client_id: Some(id),
                ..
            } => format!("the managed identity {id} over IMDS (a node identity)"),
            ControllerCredential::ManagedIdentity { .. } => {
                "the node's managed identity over IMDS (the kubelet identity on AKS)".to_string()
            }
            ControllerCredential::AzureCli => "the Azure CLI, which its image lacks".to_string(),
        }
    }
}

/// One Flux controller: the release it runs and the credential it will use.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ControllerPath {
    pub name: String,
    #[serde(skip)]
    pub running: Running,
    pub wiring: WiringMode,
    pub credential: ControllerCredential,
    /// Why this credential, in the controller's own order.
    pub reason: String,
    /// `--feature-gates=ObjectLevelWorkloadIdentity=...`; `None` when unset (off).
    pub object_level_gate: Option<bool>,
    /// Lockdown flags (`--default-service-account` and the like) and the ServiceAccount each
    /// names.
    pub lockdown: BTreeMap<String, String>,
    /// Why the controller exits at start, when it does.
    pub start_failure: Option<String>,
    /// Configuration this release ignores.
    pub ignored: Vec<String>,
    /// The `aadpodidbinding` label of its pods.
    pub pod_identity: Option<String>,
}

impl ControllerPath {
    pub fn gate_on(&self) -> bool {
        self.object_level_gate == Some(true)
    }
}

/// What a Secret an object names holds, as far as its controller is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SecretHolds {
    /// An application's client secret (or the az CLI's appId/password form).
    ServicePrincipal,
    Certificate,
    /// A client ID alone: a managed identity over IMDS, never workload identity.
    #[serde(rename_all = "camelCase")]
    ManagedIdentity {
        client_id: Option<String>,
    },
    /// Credentials Entra ID has no part in: a registry login, a Git token, a storage key.
    #[serde(rename_all = "camelCase")]
    Static {
        what: &'static str,
    },
    /// Its keys were not read.
    Unknown,
}

/// The credential an object's controller uses for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Credential {
    /// The controller's own ([`ControllerPath::credential`]).
    Controller,
    /// Object-level workload identity: a token the controller mints for this ServiceAccount in
    /// the object's namespace.
    #[serde(rename_all = "camelCase")]
    ServiceAccount {
        name: String,
        /// The lockdown flag that chose it, when the object names none.
        lockdown_default: Option<&'static str>,
    },
    Secret {
        name: String,
        holds: SecretHolds,
    },
    /// No credential at all.
    Anonymous,
    /// image-reflector-controller's `--azure-autologin-for-acr` (before v1.0.0): the
    /// controller's own credential for ACR hosts, whatever the object's provider.
    Autologin,
}

impl Credential {
    pub fn service_account(&self) -> Option<&str> {
        match self {
            Credential::ServiceAccount { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// One object's path to Azure.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsePath {
    /// Index of the object in the snapshot's Flux inventory.
    #[serde(skip)]
    pub object: usize,
    pub service: AzureService,
    pub controller: &'static str,
    pub credential: Credential,
    /// Why this credential: the rule of the controller's source that decided it.
    pub reason: String,
    /// The workload identity the object asks for (or its controller has) that its Secret
    /// silently overrides.
    pub bypasses: Option<String>,
    /// What the object needs that its controller's release lacks.
    pub needs: Vec<features::Feature>,
    /// Why the API or the controller refuses the object as written.
    pub refused: Option<String>,
}

/// A use as checks see it: the object and its path.
#[derive(Debug, Clone, Copy)]
pub struct AzureUse<'a> {
    pub object: &'a FluxObject,
    pub service: AzureService,
    pub controller: &'static str,
    pub credential: &'a Credential,
    pub path: &'a UsePath,
}

impl AzureUse<'_> {
    /// Object-level identity, named by the object or by a lockdown default.
    pub fn service_account(&self) -> Option<&str> {
        self.credential.service_account()
    }

    pub fn lockdown_default(&self) -> bool {
        matches!(
            self.credential,
            Credential::ServiceAccount {
                lockdown_default: Some(_),
                ..
            }
        )
    }
}

/// A Flux controller with its ServiceAccount, path, and the uses of its own identity.
#[derive(Debug, Clone)]
pub struct ControllerWiring<'a> {
    pub workload: &'a Workload,
    pub service_account: Option<&'a ServiceAccount>,
    pub mode: WiringMode,
    pub path: &'a ControllerPath,
    pub needed_by: Vec<AzureUse<'a>>,
}

impl ControllerWiring<'_> {
    pub fn name(&self) -> &str {
        &self.workload.name
    }
}

/// Whether the release a controller runs knows workload identity at all; `None` when its
/// version cannot be told (then it is assumed to, as every current release does).
pub fn supports_workload_identity(controller: &str, running: &Running) -> Option<bool> {
    features::workload_identity(controller).and_then(|f| running.has(f))
}

/// The lockdown flags each controller reads, from the release that added them
/// (fluxcd/pkg auth/controller_flags.go; kustomize- and helm-controller's own
/// `--default-service-account` is impersonation, not identity).
fn lockdown_flags(controller: &str) -> &'static [&'static str] {
    match controller {
        "kustomize-controller" => &[
            "--default-decryption-service-account",
            "--default-kubeconfig-service-account",
        ],
        "helm-controller" => &["--default-kubeconfig-service-account"],
        "source-controller"
        | "notification-controller"
        | "image-reflector-controller"
        | "image-automation-controller" => &["--default-service-account"],
        _ => &[],
    }
}

/// image-reflector-controller's flag that logged in to ACR without `provider: azure`.
pub const AUTOLOGIN_FLAG: &str = "--azure-autologin-for-acr";

fn has_flag(workload: &Workload, flag: &str) -> bool {
    workload.main_container().is_some_and(|c| {
        c.args
            .iter()
            .any(|a| a == flag || a.strip_prefix(flag).is_some_and(|r| r.starts_with('=')))
    })
}

/// A boolean flag's value: `--flag`, `--flag=true|false`.
pub fn bool_flag(workload: &Workload, flag: &str) -> Option<bool> {
    let container = workload.main_container()?;
    container.args.iter().find_map(|a| {
        if a == flag {
            Some(true)
        } else {
            a.strip_prefix(flag)?
                .strip_prefix('=')
                .map(|v| v.eq_ignore_ascii_case("true"))
        }
    })
}

/// Configuration the controller's release does not act on.
fn ignored_configuration(
    workload: &Workload,
    wiring: WiringMode,
    running: &Running,
    old_sops: bool,
) -> Vec<String> {
    let name = workload.name.as_str();
    let mut ignored = Vec::new();
    if wiring != WiringMode::None
        && supports_workload_identity(name, running) == Some(false)
        && let Some(feature) = features::workload_identity(name)
    {
        ignored.push(format!(
            "the workload identity wiring: {name} {} has no workload identity (it came with {} {}, Flux {})",
            running.describe(),
            feature.controller,
            feature.since,
            feature.flux
        ));
    }
    let auth_method = workload
        .main_container()
        .is_some_and(|c| c.env(crate::wiring::ENV_AUTH_METHOD).is_some());
    if auth_method && !old_sops {
        ignored.push(
            "AZURE_AUTH_METHOD: kustomize-controller read it only before v1.0.0-rc.1".to_string(),
        );
    }
    ignored
}

/// The service principal the environment credential builds from the container's env vars,
/// which comes before workload identity in every controller's chain.
fn environment_credential(container: &Container, old_sops: bool) -> Option<&'static str> {
    if container.env("AZURE_CLIENT_SECRET").is_some() {
        Some("client secret")
    } else if container.env("AZURE_CLIENT_CERTIFICATE_PATH").is_some()
        || (old_sops && container.env("AZURE_CERTIFICATE_PATH").is_some())
    {
        Some("client certificate")
    } else {
        None
    }
}

fn resolve_controller(snapshot: &Snapshot, workload: &Workload) -> ControllerPath {
    let name = workload.name.as_str();
    let running = Running::of(workload);
    let sa = snapshot.service_account(&workload.namespace, &workload.service_account);
    let wiring = wiring_mode(workload, sa);
    let container = workload.main_container();
    let env = |n: &str| container.and_then(|c| c.env(n));
    let literal = |n: &str| env(n).and_then(|e| e.value.clone());
    let pod_identity = workload
        .template_labels
        .get(crate::wiring::POD_IDENTITY_LABEL)
        .cloned();
    let supports_wi = supports_workload_identity(name, &running);
    let old_sops = name == "kustomize-controller" && supports_wi == Some(false);
    let ignored = ignored_configuration(workload, wiring, &running, old_sops);
    let webhook_injects = wiring == WiringMode::Webhook
        && has_use_label(&workload.template_labels)
        && sa.is_some_and(|sa| sa.annotations.contains_key(CLIENT_ID_ANNOTATION));
    let manual_env = [
        ENV_CLIENT_ID,
        ENV_TENANT_ID,
        ENV_AUTHORITY_HOST,
        ENV_TOKEN_FILE,
    ]
    .iter()
    .all(|n| env(n).is_some());
    let workload_identity = (webhook_injects || (wiring == WiringMode::Manual && manual_env))
        && supports_wi != Some(false);
    let secret = container.and_then(|c| environment_credential(c, old_sops));
    let managed = ControllerCredential::ManagedIdentity {
        client_id: literal(ENV_CLIENT_ID),
        pod_identity: pod_identity.clone(),
    };
    let (credential, reason) = if let Some(credential) = secret {
        (
            ControllerCredential::Environment { credential },
            format!(
                "AZURE_CLIENT_SECRET or a certificate path is set: the environment credential comes first in {name}'s chain"
            ),
        )
    } else if old_sops {
        // SOPS 3.7's own flow (kustomize-controller v0.x): AZURE_AUTH_METHOD, else the CLI.
        match literal(crate::wiring::ENV_AUTH_METHOD).as_deref() {
            Some("msi") => (
                managed,
                format!(
                    "{name} {} follows AZURE_AUTH_METHOD=msi: a managed identity over IMDS",
                    running.describe()
                ),
            ),
            _ => (
                ControllerCredential::AzureCli,
                format!(
                    "{name} {} uses SOPS's Azure flow, which without AZURE_AUTH_METHOD=msi runs the Azure CLI",
                    running.describe()
                ),
            ),
        }
    } else if workload_identity {
        (
            ControllerCredential::WorkloadIdentity { mode: wiring },
            match wiring {
                WiringMode::Manual => "the four workload identity env vars are set in the Deployment".to_string(),
                _ => "the webhook injects the workload identity env vars: the pod template is labelled and the ServiceAccount names a client ID".to_string(),
            },
        )
    } else {
        let why = if supports_wi == Some(false) {
            format!(
                "{name} {} predates workload identity: its chain is environment, then a managed identity over IMDS",
                running.describe()
            )
        } else if wiring == WiringMode::None {
            "no workload identity wiring: the chain ends at a managed identity over IMDS"
                .to_string()
        } else {
            "the workload identity wiring is incomplete, so the env vars it needs are missing and the chain ends at a managed identity over IMDS".to_string()
        };
        (managed, why)
    };
    let object_level_gate =
        container.and_then(|c| feature_gates(c).get(OBJECT_LEVEL_GATE).copied());
    let lockdown = lockdown_defaults(workload);
    let start_failure = start_failure(workload, &running, object_level_gate, &lockdown);
    ControllerPath {
        name: name.to_string(),
        running,
        wiring,
        credential,
        reason,
        object_level_gate,
        lockdown,
        start_failure,
        ignored,
        pod_identity,
    }
}

/// The lockdown flags the controller runs with, and the ServiceAccount each names.
fn lockdown_defaults(workload: &Workload) -> BTreeMap<String, String> {
    let container = workload.main_container();
    lockdown_flags(&workload.name)
        .iter()
        .filter_map(|flag| {
            container
                .and_then(|c| flag_value(c, flag))
                .filter(|v| !v.is_empty())
                .map(|v| ((*flag).to_string(), v.to_string()))
        })
        .collect()
}

/// Why the controller exits before reconciling anything, if its flags make it.
fn start_failure(
    workload: &Workload,
    running: &Running,
    object_level_gate: Option<bool>,
    lockdown: &BTreeMap<String, String>,
) -> Option<String> {
    let name = workload.name.as_str();
    if name == "image-reflector-controller"
        && has_flag(workload, AUTOLOGIN_FLAG)
        && running.has(&features::IMAGE_REFLECTOR_AUTOLOGIN_REMOVED) == Some(true)
    {
        return Some(format!(
            "{AUTOLOGIN_FLAG} was removed in image-reflector-controller {}: the controller exits with `unknown flag: {AUTOLOGIN_FLAG}`",
            features::IMAGE_REFLECTOR_AUTOLOGIN_REMOVED.since
        ));
    }
    (!lockdown.is_empty()
        && object_level_gate != Some(true)
        && features::lockdown(name).is_none_or(|f| running.has(f) != Some(false)))
    .then(|| {
        format!(
            "{} without --feature-gates={OBJECT_LEVEL_GATE}=true: the controller exits with `cannot set default service accounts when the feature gate ObjectLevelWorkloadIdentity is not enabled`",
            lockdown.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })
}

/// Resolves every controller and every use.
pub fn resolve(snapshot: &Snapshot) -> Resolution {
    let controllers: Vec<ControllerPath> = snapshot
        .controllers
        .known()
        .map(|ws| ws.iter().map(|w| resolve_controller(snapshot, w)).collect())
        .unwrap_or_default();
    let uses = objects::resolve_uses(snapshot, &controllers);
    Resolution { controllers, uses }
}
