//! Which Flux objects talk to Azure, through which controller, with which identity; and how each
//! controller is wired for workload identity. Pure functions of the snapshot, shared by checks.

use std::collections::BTreeMap;
use std::fmt;

use super::{FluxKind, FluxObject, ServiceAccount, Snapshot, Workload};
use crate::wiring::{
    CLIENT_ID_ANNOTATION, ENV_CLIENT_ID, ENV_TOKEN_FILE, TENANT_ID_ANNOTATION, TOKEN_AUDIENCE,
    USE_LABEL,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AzureService {
    ContainerRegistry,
    DevOps,
    BlobStorage,
    KeyVault,
    EventHubs,
    /// A remote AKS cluster that Kustomizations or HelmReleases apply to.
    KubernetesService,
}

impl fmt::Display for AzureService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AzureService::ContainerRegistry => "Azure Container Registry",
            AzureService::DevOps => "Azure DevOps",
            AzureService::BlobStorage => "Azure Blob Storage",
            AzureService::KeyVault => "Azure Key Vault",
            AzureService::EventHubs => "Azure Event Hubs",
            AzureService::KubernetesService => "a remote AKS cluster",
        })
    }
}

/// How an object authenticates to Azure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The controller's own identity (controller-level workload identity).
    Controller,
    /// Object-level workload identity through a ServiceAccount in the object's namespace.
    ServiceAccount(String),
    /// Credentials from a Secret (client secret or certificate).
    Secret(String),
}

#[derive(Debug, Clone)]
pub struct AzureUse<'a> {
    pub object: &'a FluxObject,
    pub service: AzureService,
    pub controller: &'static str,
    pub identity: Identity,
    /// The identity is the controller's lockdown default (`--default-*-service-account`),
    /// not one the object names.
    pub lockdown_default: bool,
}

/// The lockdown flag that replaces the controller's identity for a service, if any.
pub fn lockdown_flag(controller: &str, service: AzureService) -> Option<&'static str> {
    match (controller, service) {
        ("kustomize-controller", AzureService::KeyVault) => {
            Some("--default-decryption-service-account")
        }
        ("kustomize-controller" | "helm-controller", AzureService::KubernetesService) => {
            Some("--default-kubeconfig-service-account")
        }
        (
            "source-controller"
            | "notification-controller"
            | "image-reflector-controller"
            | "image-automation-controller",
            _,
        ) => Some("--default-service-account"),
        _ => None,
    }
}

/// Under multi-tenant lockdown an object without its own ServiceAccount gets the controller's
/// default one in its namespace, never the controller's identity.
fn apply_lockdown<'a>(snapshot: &Snapshot, mut azure_use: AzureUse<'a>) -> AzureUse<'a> {
    if azure_use.identity != Identity::Controller {
        return azure_use;
    }
    let default = lockdown_flag(azure_use.controller, azure_use.service)
        .zip(snapshot.controller(azure_use.controller))
        .and_then(|(flag, workload)| {
            workload
                .main_container()
                .and_then(|c| super::version::flag_value(c, flag))
        })
        .filter(|sa| !sa.is_empty());
    if let Some(sa) = default {
        azure_use.identity = Identity::ServiceAccount(sa.to_string());
        azure_use.lockdown_default = true;
    }
    azure_use
}

pub fn controller_for(kind: FluxKind) -> &'static str {
    match kind {
        FluxKind::GitRepository
        | FluxKind::OCIRepository
        | FluxKind::HelmRepository
        | FluxKind::Bucket => "source-controller",
        FluxKind::ImageRepository => "image-reflector-controller",
        FluxKind::ImageUpdateAutomation => "image-automation-controller",
        FluxKind::Kustomization => "kustomize-controller",
        FluxKind::HelmRelease => "helm-controller",
        FluxKind::Provider => "notification-controller",
    }
}

fn identity_of(object: &FluxObject) -> Identity {
    if let Some(sa) = &object.service_account_name {
        Identity::ServiceAccount(sa.clone())
    } else if let Some(secret) = &object.secret_ref {
        Identity::Secret(secret.clone())
    } else {
        Identity::Controller
    }
}

/// The Azure uses of one object (a Kustomization can decrypt with Key Vault and apply to a
/// remote AKS cluster at once). SOPS decryption without a key Secret counts as Key Vault only
/// when `key_vault_evidence` says this setup uses Key Vault, since the same spec also fits AWS
/// or GCP KMS.
fn uses_of<'a>(
    snapshot: &'a Snapshot,
    object: &'a FluxObject,
    key_vault_evidence: bool,
    git: &std::collections::HashMap<(&str, &str), &'a FluxObject>,
) -> Vec<AzureUse<'a>> {
    let Some(kind) = object.kind else {
        return Vec::new();
    };
    let controller = controller_for(kind);
    let use_of = |service, identity| AzureUse {
        object,
        service,
        controller,
        identity,
        lockdown_default: false,
    };
    let service = match kind {
        FluxKind::GitRepository if object.provider_is_azure() => AzureService::DevOps,
        FluxKind::OCIRepository | FluxKind::ImageRepository if object.provider_is_azure() => {
            AzureService::ContainerRegistry
        }
        FluxKind::HelmRepository
            if object.provider_is_azure() && object.type_.as_deref() == Some("oci") =>
        {
            AzureService::ContainerRegistry
        }
        FluxKind::Bucket if object.provider_is_azure() => AzureService::BlobStorage,
        FluxKind::Provider => match object.type_.as_deref() {
            Some("azuredevops") => AzureService::DevOps,
            Some("azureeventhub") => AzureService::EventHubs,
            _ => return Vec::new(),
        },
        FluxKind::ImageUpdateAutomation => {
            let Some(repo) = object.source_ref.as_ref().and_then(|s| {
                let ns = s.namespace.as_deref().unwrap_or(&object.namespace);
                git.get(&(ns, s.name.as_str())).copied()
            }) else {
                return Vec::new();
            };
            if !repo.provider_is_azure() {
                return Vec::new();
            }
            return vec![use_of(AzureService::DevOps, identity_of(repo))];
        }
        FluxKind::Kustomization | FluxKind::HelmRelease => {
            let mut uses = Vec::new();
            if let Some(identity) = sops_identity(object, key_vault_evidence) {
                uses.push(use_of(AzureService::KeyVault, identity));
            }
            if let Some(identity) = remote_cluster_identity(snapshot, object) {
                uses.push(use_of(AzureService::KubernetesService, identity));
            }
            return uses;
        }
        _ => return Vec::new(),
    };
    match (kind, identity_of(object)) {
        // A Provider's secretRef holds the ADO token or Event Hubs connection string: not Entra.
        (FluxKind::Provider, Identity::Secret(_)) => Vec::new(),
        (_, identity) => vec![use_of(service, identity)],
    }
}

/// The GitRepository an ImageUpdateAutomation pushes to.
pub fn update_automation_repository<'a>(
    snapshot: &'a Snapshot,
    automation: &FluxObject,
) -> Option<&'a FluxObject> {
    let source = automation.source_ref.as_ref()?;
    let namespace = source.namespace.as_deref().unwrap_or(&automation.namespace);
    snapshot
        .flux
        .find(FluxKind::GitRepository, namespace, &source.name)
}

fn sops_identity(object: &FluxObject, key_vault_evidence: bool) -> Option<Identity> {
    let decryption = object.decryption.as_ref()?;
    if decryption.provider.as_deref() != Some("sops") {
        return None;
    }
    if let Some(sa) = &decryption.service_account_name {
        Some(Identity::ServiceAccount(sa.clone()))
    } else if let Some(secret) = &decryption.secret_ref {
        Some(Identity::Secret(secret.clone()))
    } else {
        key_vault_evidence.then_some(Identity::Controller)
    }
}

/// `.spec.kubeConfig.configMapRef` pointing at a ConfigMap with `provider: azure`.
fn remote_cluster_identity(snapshot: &Snapshot, object: &FluxObject) -> Option<Identity> {
    let name = object.kube_config.as_ref()?.config_map_ref.as_ref()?;
    let config_map = snapshot.config_map(&object.namespace, name)?;
    if config_map.data.get("provider").map(String::as_str) != Some("azure") {
        return None;
    }
    Some(match config_map.data.get("serviceAccountName") {
        Some(sa) if !sa.is_empty() => Identity::ServiceAccount(sa.clone()),
        _ => Identity::Controller,
    })
}

/// Every Azure use among the readable Flux objects, in inventory order.
pub fn azure_uses(snapshot: &Snapshot) -> Vec<AzureUse<'_>> {
    let objects = &snapshot.flux.objects;
    let git = objects
        .iter()
        .filter(|o| o.kind == Some(FluxKind::GitRepository))
        .map(|o| ((o.namespace.as_str(), o.name.as_str()), o))
        .rev()
        .collect();
    let key_vault_evidence = !snapshot.sops_key_vaults.is_empty()
        || snapshot
            .controller("kustomize-controller")
            .is_some_and(|w| {
                wiring_mode(
                    w,
                    snapshot.service_account(&w.namespace, &w.service_account),
                ) != WiringMode::None
            });
    objects
        .iter()
        .flat_map(|o| uses_of(snapshot, o, key_vault_evidence, &git))
        .map(|u| apply_lockdown(snapshot, u))
        .collect()
}

/// How a controller gets its Azure token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WiringMode {
    /// The AKS (or open-source) webhook injects env and token: SA annotations + pod label.
    Webhook,
    /// Env vars and a projected token volume written into the Deployment by hand.
    Manual,
    /// No workload identity wiring at all.
    None,
}

impl fmt::Display for WiringMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WiringMode::Webhook => "webhook",
            WiringMode::Manual => "manual",
            WiringMode::None => "none",
        })
    }
}

pub fn has_use_label(labels: &BTreeMap<String, String>) -> bool {
    labels.get(USE_LABEL).is_some_and(|v| v == "true")
}

/// Manual signs win: with env and token in the template the webhook is not needed, and a label
/// next to them is the thing to question, not the other way round.
pub fn wiring_mode(workload: &Workload, sa: Option<&ServiceAccount>) -> WiringMode {
    let container = workload.main_container();
    let manual_env = container.is_some_and(|c| c.env(ENV_TOKEN_FILE).is_some());
    let manual_volume = workload.volumes.iter().any(|v| {
        v.projected_tokens
            .iter()
            .any(|t| t.audience.as_deref() == Some(TOKEN_AUDIENCE))
    });
    if manual_env || manual_volume {
        return WiringMode::Manual;
    }
    let labelled = has_use_label(&workload.template_labels);
    let annotated = sa.is_some_and(|sa| {
        sa.annotations.contains_key(CLIENT_ID_ANNOTATION)
            || sa.annotations.contains_key(TENANT_ID_ANNOTATION)
    });
    let misplaced_label =
        has_use_label(&workload.labels) || sa.is_some_and(|sa| has_use_label(&sa.labels));
    let client_env = container.is_some_and(|c| c.env(ENV_CLIENT_ID).is_some());
    if labelled || annotated || misplaced_label {
        WiringMode::Webhook
    } else if client_env {
        WiringMode::Manual
    } else {
        WiringMode::None
    }
}

/// A Flux controller together with its ServiceAccount, wiring mode, and what needs it.
#[derive(Debug, Clone)]
pub struct ControllerWiring<'a> {
    pub workload: &'a Workload,
    pub service_account: Option<&'a ServiceAccount>,
    pub mode: WiringMode,
    /// Objects that use Azure through this controller's own identity.
    pub needed_by: Vec<AzureUse<'a>>,
}

impl ControllerWiring<'_> {
    pub fn name(&self) -> &str {
        &self.workload.name
    }
}

/// Every Flux controller Deployment in the snapshot, with its wiring.
pub fn controller_wirings(snapshot: &Snapshot) -> Vec<ControllerWiring<'_>> {
    let Some(workloads) = snapshot.controllers.known() else {
        return Vec::new();
    };
    let uses = azure_uses(snapshot);
    workloads
        .iter()
        .map(|workload| {
            let service_account =
                snapshot.service_account(&workload.namespace, &workload.service_account);
            ControllerWiring {
                workload,
                service_account,
                mode: wiring_mode(workload, service_account),
                needed_by: uses
                    .iter()
                    .filter(|u| u.controller == workload.name && u.identity == Identity::Controller)
                    .cloned()
                    .collect(),
            }
        })
        .collect()
}

/// "3 HelmRepositories and 1 OCIRepository in flux-system": a short count of objects by kind
/// and namespace, for messages.
pub fn describe_objects(uses: &[AzureUse<'_>]) -> String {
    let mut counts: BTreeMap<(&str, FluxKind), usize> = BTreeMap::new();
    for u in uses {
        if let Some(kind) = u.object.kind {
            *counts
                .entry((u.object.namespace.as_str(), kind))
                .or_default() += 1;
        }
    }
    let mut ordered: Vec<((&str, FluxKind), usize)> = counts.into_iter().collect();
    // Most numerous first within a namespace: the count that explains most comes first.
    ordered.sort_by(|((ns_a, kind_a), n_a), ((ns_b, kind_b), n_b)| {
        ns_a.cmp(ns_b).then(n_b.cmp(n_a)).then(kind_a.cmp(kind_b))
    });
    let mut by_namespace: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for ((ns, kind), n) in ordered {
        let noun = if n == 1 {
            kind.as_str().to_string()
        } else {
            plural_kind(kind)
        };
        by_namespace
            .entry(ns)
            .or_default()
            .push(format!("{n} {noun}"));
    }
    by_namespace
        .into_iter()
        .map(|(ns, parts)| format!("{} in {ns}", join_words(&parts)))
        .collect::<Vec<_>>()
        .join("; ")
}

fn plural_kind(kind: FluxKind) -> String {
    match kind {
        FluxKind::GitRepository => "GitRepositories".into(),
        FluxKind::OCIRepository => "OCIRepositories".into(),
        FluxKind::HelmRepository => "HelmRepositories".into(),
        FluxKind::ImageRepository => "ImageRepositories".into(),
        other => format!("{other}s"),
    }
}

/// The third-person `s` a present-tense verb takes after `n` objects: "1 object uses",
/// "2 objects use".
pub fn verb_s(n: usize) -> &'static str {
    if n == 1 { "s" } else { "" }
}

/// "a", "a and b", "a, b and c".
pub fn join_words(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Fact, Source};

    fn obj(kind: FluxKind, ns: &str, name: &str) -> FluxObject {
        FluxObject {
            kind: Some(kind),
            namespace: ns.into(),
            name: name.into(),
            provider: Some("azure".into()),
            ..FluxObject::default()
        }
    }

    fn snapshot(objects: Vec<FluxObject>) -> Snapshot {
        let mut s = Snapshot::new(Source::Manifests { inputs: vec![] }, "flux-system");
        s.flux.objects = objects;
        s.flux.read = true;
        s.controllers = Fact::Known(vec![]);
        s
    }

    #[test]
    fn describes_counts_by_kind_and_namespace() {
        let objects = vec![
            FluxObject {
                type_: Some("oci".into()),
                ..obj(FluxKind::HelmRepository, "flux-system", "a")
            },
            FluxObject {
                type_: Some("oci".into()),
                ..obj(FluxKind::HelmRepository, "flux-system", "b")
            },
            FluxObject {
                type_: Some("oci".into()),
                ..obj(FluxKind::HelmRepository, "flux-system", "c")
            },
            obj(FluxKind::OCIRepository, "flux-system", "d"),
        ];
        let snap = snapshot(objects);
        let uses = azure_uses(&snap);
        assert_eq!(
            describe_objects(&uses),
            "3 HelmRepositories and 1 OCIRepository in flux-system"
        );
    }

    #[test]
    fn helm_repository_needs_type_oci() {
        let snap = snapshot(vec![obj(FluxKind::HelmRepository, "a", "b")]);
        assert!(azure_uses(&snap).is_empty());
    }

    #[test]
    fn image_update_automation_follows_its_git_repository() {
        let mut iua = obj(FluxKind::ImageUpdateAutomation, "apps", "auto");
        iua.provider = None;
        iua.source_ref = Some(crate::model::SourceRef {
            kind: "GitRepository".into(),
            namespace: None,
            name: "repo".into(),
        });
        let mut repo = obj(FluxKind::GitRepository, "apps", "repo");
        repo.service_account_name = Some("git-sa".into());
        let snap = snapshot(vec![iua, repo]);
        let uses = azure_uses(&snap);
        let auto = uses.iter().find(|u| u.object.name == "auto").unwrap();
        assert_eq!(auto.controller, "image-automation-controller");
        assert_eq!(auto.identity, Identity::ServiceAccount("git-sa".into()));
    }

    #[test]
    fn sops_without_key_vault_evidence_is_not_azure() {
        let mut ks = obj(FluxKind::Kustomization, "flux-system", "apps");
        ks.provider = None;
        ks.decryption = Some(crate::model::Decryption {
            provider: Some("sops".into()),
            ..Default::default()
        });
        let mut snap = snapshot(vec![ks]);
        assert!(azure_uses(&snap).is_empty());
        snap.sops_key_vaults
            .insert("https://v.vault.azure.net".into());
        assert_eq!(azure_uses(&snap)[0].service, AzureService::KeyVault);
    }
}
