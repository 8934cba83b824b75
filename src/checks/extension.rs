//! The AKS Flux cluster extension (`microsoft.flux`) as Resource Manager describes it: its
//! provisioning, the identity its settings give the controllers, the controllers it deploys,
//! and the source auth of its fluxConfigurations. Every fix is an `az k8s-extension update` or
//! `az k8s-configuration flux update` line: the extension reverts any other change. Without
//! the extension resource (no Azure login) these checks skip where the controllers carry the
//! extension's labels, saying what the login would add, and pass where nothing shows the
//! extension.

use super::{Area, Check, Findings, Severity, owned_by_aks_extension};
use crate::azure::extension::{
    self, DEVOPS_WORKLOAD_IDENTITY, ExtensionFeature, ExtensionState, FluxConfiguration,
    FluxExtension, NOTIFICATION_WORKLOAD_IDENTITY, OBJECT_LEVEL_WORKLOAD_IDENTITY,
    WORKLOAD_IDENTITY,
};
use crate::model::azure_use::{AzureService, describe_objects, verb_s};
use crate::model::version::Version;
use crate::model::{ObjectRef, Skip, Snapshot, Workload};
use crate::resolve::{AzureUse, Credential, Resolved, features};
use crate::wiring::is_uuid;

/// The Flux controllers that carry the extension's labels.
pub fn extension_controllers(snapshot: &Snapshot) -> Vec<&Workload> {
    snapshot
        .controllers
        .known()
        .into_iter()
        .flatten()
        .filter(|w| owned_by_aks_extension(&w.labels) || owned_by_aks_extension(&w.template_labels))
        .collect()
}

/// What Resource Manager says of the extension, when it was read.
pub fn extension_state(snapshot: &Snapshot) -> Option<&ExtensionState> {
    snapshot.azure.known()?.flux_extension.known()
}

/// The extension when Resource Manager was read; a skip saying what the login would add when
/// the controllers show the extension and it was not; nothing to check otherwise.
fn read(snapshot: &Resolved) -> Result<Option<(&ExtensionState, &FluxExtension)>, Skip> {
    match snapshot.azure.get().and_then(|a| a.flux_extension.get()) {
        Ok(state) => Ok(state.extension.as_ref().map(|e| (state, e))),
        Err(_) if extension_controllers(snapshot).is_empty() => Ok(None),
        Err(Skip(reason)) => Err(Skip(format!(
            "{reason}; with it doctor reads the microsoft.flux extension's version, settings and fluxConfigurations from Azure Resource Manager"
        ))),
    }
}

fn extension_ref(state: &ExtensionState, extension: &FluxExtension) -> ObjectRef {
    ObjectRef::cluster_scoped(
        "Extension",
        &format!("{}/{}", state.cluster, extension.name),
    )
}

fn configuration_ref(state: &ExtensionState, config: &FluxConfiguration) -> ObjectRef {
    ObjectRef::cluster_scoped(
        "FluxConfiguration",
        &format!("{}/{}", state.cluster, config.name),
    )
}

/// The extension's workload identity settings, with the cluster and group filled in when
/// Resource Manager named them.
pub fn identity_fix(snapshot: &Snapshot) -> String {
    match extension_state(snapshot) {
        Some(state) => state.update(&identity_settings()),
        None => super::EXTENSION_IDENTITY.to_string(),
    }
}

fn identity_settings() -> [(&'static str, &'static str); 3] {
    [
        ("workloadIdentity.enable", "true"),
        ("workloadIdentity.azureClientId", "CLIENT_ID"),
        ("workloadIdentity.azureTenantId", "TENANT_ID"),
    ]
}

/// The extension update that moves to the first release bundling `flux`, or why there is none.
pub fn upgrade_fix(snapshot: &Snapshot, flux: Version) -> String {
    match extension::first_bundling(flux) {
        Some(release) => upgrade_to(snapshot, release),
        None => super::fixes::commented(
            &format!(
                "no microsoft.flux release known to doctor bundles Flux {flux} yet (the release notes: learn.microsoft.com/azure/azure-arc/kubernetes/flux-gitops-release-notes): let the extension take the release that does"
            ),
            &auto_upgrade(snapshot),
        ),
    }
}

fn auto_upgrade(snapshot: &Snapshot) -> String {
    let (cluster, group, name) = extension_names(snapshot);
    format!(
        "az k8s-extension update --cluster-type managedClusters -c {cluster} -g {group} -n {name} --auto-upgrade-minor-version true"
    )
}

fn extension_names(snapshot: &Snapshot) -> (&str, &str, &str) {
    match extension_state(snapshot) {
        Some(state) => (
            state.cluster.as_str(),
            state.resource_group.as_str(),
            state.extension.as_ref().map_or("flux", |e| e.name.as_str()),
        ),
        None => ("CLUSTER", "RESOURCE_GROUP", "flux"),
    }
}

fn upgrade_to(snapshot: &Snapshot, release: Version) -> String {
    let (cluster, group, name) = extension_names(snapshot);
    // A pinned version needs auto-upgrade off (extensions.json: "To use 'version',
    // autoUpgradeMinorVersion must be 'false'").
    format!(
        "az k8s-extension update --cluster-type managedClusters -c {cluster} -g {group} -n {name} --auto-upgrade-minor-version false --version {}",
        extension::plain(release)
    )
}

/// The extension version a feature needs, when the installed one is known to lack it.
fn lacks(extension: &FluxExtension, feature: &ExtensionFeature) -> bool {
    extension.has(feature) == Some(false)
}

pub static AKS_EXTENSION_UNHEALTHY: Check = Check {
    id: "AZF014",
    name: "aks-extension-unhealthy",
    area: Area::Cluster,
    severity: Severity::Error,
    title: "The AKS Flux extension or one of its fluxConfigurations failed",
    healthy: "The AKS Flux extension and its fluxConfigurations are provisioned",
    explanation: "Resource Manager reports how the `microsoft.flux` extension and each \
fluxConfiguration were provisioned. An extension in state Failed or Canceled has not applied \
its settings (identity included); a fluxConfiguration that failed created no Flux objects, and \
one that is Non-Compliant has objects that do not reconcile: the Ready message of each, often \
an AADSTS error, says why. With `--azure`, from the extension resource and its \
fluxConfigurations.",
    fix: "Read the cause (`az k8s-extension show` or `az k8s-configuration flux show` with \
`--query`), fix it, and apply the extension's settings again with `az k8s-extension update`.",
    run: aks_extension_unhealthy,
};

fn aks_extension_unhealthy(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    let Some((state, extension)) = read(snapshot)? else {
        return Ok(());
    };
    let show = |what: &str, name: &str, query: &str| {
        format!(
            "az {what} show --cluster-type managedClusters -c {} -g {} -n {name} --query \"{query}\"",
            state.cluster, state.resource_group
        )
    };
    if extension.failed() {
        let why = if extension.errors.is_empty() {
            String::new()
        } else {
            format!(": {}", extension.errors.join("; "))
        };
        let retry = if extension.settings.is_empty() {
            upgrade_or_retry(state, extension)
        } else {
            let settings: Vec<(&str, &str)> = extension
                .settings
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            state.update(&settings)
        };
        findings.add(
            extension_ref(state, extension),
            format!(
                "the microsoft.flux extension {} {} is in provisioning state {}{why}; its settings, identity included, are not applied",
                extension.name,
                extension.describe(),
                extension.provisioning_state
            ),
            super::fixes::steps(&[
                super::fixes::commented(
                    "the cause",
                    &show(
                        "k8s-extension",
                        &extension.name,
                        "{state: provisioningState, error: errorInfo, statuses: statuses}",
                    ),
                ),
                super::fixes::commented("once it is fixed, the settings again", &retry),
            ]),
        );
    }
    let Some(configurations) = state.configurations.known() else {
        return Ok(());
    };
    for config in configurations {
        if config.failed() {
            findings.add(
                configuration_ref(state, config),
                format!(
                    "fluxConfiguration {} failed to provision{}",
                    config.name,
                    config
                        .error_message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ),
                super::fixes::commented(
                    "the cause",
                    &show(
                        "k8s-configuration flux",
                        &config.name,
                        "{state: provisioningState, error: errorMessage, statuses: statuses}",
                    ),
                ),
            );
        } else if config.non_compliant() {
            let objects = if config.failing.is_empty() {
                String::new()
            } else {
                format!(": {}", config.failing.join("; "))
            };
            findings
                .add(
                    configuration_ref(state, config),
                    format!(
                        "fluxConfiguration {} is Non-Compliant{objects}",
                        config.name
                    ),
                    super::fixes::commented(
                        "each object's Ready condition",
                        &show("k8s-configuration flux", &config.name, "statuses"),
                    ),
                )
                .severity(Severity::Warning);
        }
    }
    Ok(())
}

fn upgrade_or_retry(state: &ExtensionState, extension: &FluxExtension) -> String {
    format!(
        "az k8s-extension update --cluster-type managedClusters -c {} -g {} -n {} --auto-upgrade-minor-version {}",
        state.cluster, state.resource_group, extension.name, extension.auto_upgrade
    )
}

pub static AKS_EXTENSION_IDENTITY_OFF: Check = Check {
    id: "AZF015",
    name: "aks-extension-identity-off",
    area: Area::Cluster,
    severity: Severity::Error,
    title: "The AKS Flux extension's settings give its controllers no usable Azure identity",
    healthy: "The AKS Flux extension's settings give its controllers a usable Azure identity",
    explanation: "The `microsoft.flux` extension wires its controllers itself, from its \
configuration settings: `workloadIdentity.enable=true` with `workloadIdentity.azureClientId` \
and `workloadIdentity.azureTenantId` (one identity for its controllers), or \
`useKubeletIdentity=true` (the node's kubelet identity). Flux objects or fluxConfigurations \
that reach Azure through its controllers fail when neither is set, when the client ID is \
missing or not a UUID, or when the extension's version predates the identity it is asked \
for: workload identity on AKS came with extension 1.7.8, notification-controller's with \
1.20.4. With `--azure`, from the extension resource.",
    fix: "`az k8s-extension update --cluster-type managedClusters -c CLUSTER -g GROUP -n flux \
--configuration-settings workloadIdentity.enable=true workloadIdentity.azureClientId=CLIENT_ID \
workloadIdentity.azureTenantId=TENANT_ID`, then a federated credential for each controller's \
ServiceAccount.",
    run: aks_extension_identity_off,
};

/// Azure uses that rely on an extension controller's own identity.
fn controller_uses<'a>(snapshot: &'a Resolved, owned: &[&Workload]) -> Vec<AzureUse<'a>> {
    snapshot
        .uses()
        .filter(|u| *u.credential == Credential::Controller)
        .filter(|u| owned.iter().any(|w| w.name == u.controller))
        .collect()
}

/// fluxConfigurations whose source logs in with the extension's identity.
fn azure_configurations(state: &ExtensionState) -> Vec<&FluxConfiguration> {
    state
        .configurations
        .known()
        .into_iter()
        .flatten()
        .filter(|c| c.git_provider_azure() || c.auth.use_workload_identity)
        .collect()
}

fn aks_extension_identity_off(
    snapshot: &Resolved,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    let Some((state, extension)) = read(snapshot)? else {
        return Ok(());
    };
    let owned = extension_controllers(snapshot);
    let relying = controller_uses(snapshot, &owned);
    let configurations = azure_configurations(state);
    if relying.is_empty() && configurations.is_empty() {
        return Ok(());
    }
    let mut names: Vec<String> = Vec::new();
    if !relying.is_empty() {
        names.push(describe_objects(&relying));
    }
    names.extend(
        configurations
            .iter()
            .map(|c| format!("fluxConfiguration {}", c.name)),
    );
    let users = names.join(" and ");
    let subject = extension_ref(state, extension);
    if !extension.workload_identity() && !extension.kubelet_identity() {
        let enable = extension
            .setting("workloadIdentity.enable")
            .map_or_else(|| "unset".to_string(), |v| format!("\"{v}\""));
        // Registry pulls may still work with whatever identity the node's IMDS hands out (the
        // kubelet's, with AcrPull: kubelet-identity-fallback); the rest need an identity.
        let only_pulls = configurations.is_empty()
            && relying
                .iter()
                .all(|u| u.service == AzureService::ContainerRegistry);
        findings
            .add(
                subject,
                format!(
                    "{users} reach Azure with the identity of the extension's controllers, but its settings give them none of their own: workloadIdentity.enable is {enable} and useKubeletIdentity is not true"
                ),
                state.update(&identity_settings()),
            )
            .severity(if only_pulls {
                Severity::Warning
            } else {
                Severity::Error
            });
        return Ok(());
    }
    if !extension.workload_identity() {
        return Ok(());
    }
    if lacks(extension, &WORKLOAD_IDENTITY) {
        findings.add(
            subject.clone(),
            format!(
                "the extension {} ignores workloadIdentity.enable: {} came with extension {} ({})",
                extension.describe(),
                WORKLOAD_IDENTITY.what,
                extension::plain(WORKLOAD_IDENTITY.since()),
                WORKLOAD_IDENTITY.source
            ),
            upgrade_to(snapshot, WORKLOAD_IDENTITY.since()),
        );
    }
    match extension.client_id() {
        Some(id) if is_uuid(id) => {}
        other => {
            let what =
                other.map_or_else(|| "unset".to_string(), |v| format!("\"{v}\", not a UUID"));
            findings.add(
                subject.clone(),
                format!(
                    "workloadIdentity.enable is true but workloadIdentity.azureClientId is {what}: {users} cannot log in"
                ),
                state.update(&identity_settings()[1..]),
            );
        }
    }
    let notification: Vec<AzureUse<'_>> = relying
        .iter()
        .copied()
        .filter(|u| u.controller == "notification-controller")
        .collect();
    if !notification.is_empty() && lacks(extension, &NOTIFICATION_WORKLOAD_IDENTITY) {
        findings.add(
            subject,
            format!(
                "{} use{} notification-controller's identity, but the extension {} gives it none: {} came with extension {} ({})",
                describe_objects(&notification),
                verb_s(notification.len()),
                extension.describe(),
                NOTIFICATION_WORKLOAD_IDENTITY.what,
                extension::plain(NOTIFICATION_WORKLOAD_IDENTITY.since()),
                NOTIFICATION_WORKLOAD_IDENTITY.source
            ),
            upgrade_to(snapshot, NOTIFICATION_WORKLOAD_IDENTITY.since()),
        );
    }
    Ok(())
}

pub static AKS_EXTENSION_CONTROLLER_DISABLED: Check = Check {
    id: "AZF016",
    name: "aks-extension-controller-disabled",
    area: Area::Cluster,
    severity: Severity::Error,
    title: "Flux objects need a controller the AKS Flux extension does not deploy",
    healthy: "The AKS Flux extension deploys every controller the Flux objects need",
    explanation: "The `microsoft.flux` extension deploys source-, helm-, kustomize- and \
notification-controller unless their `<name>.enabled` setting is false, and the image \
controllers only when `image-reflector-controller.enabled` and \
`image-automation-controller.enabled` are true (MicrosoftDocs azure-management-docs \
tutorial-use-gitops-flux2.md). Objects whose controller it does not deploy are never \
reconciled, so they never reach Azure. With `--azure`, from the extension's settings.",
    fix: "`az k8s-extension update --cluster-type managedClusters -c CLUSTER -g GROUP -n flux \
--configuration-settings image-reflector-controller.enabled=true` (the controller named).",
    run: aks_extension_controller_disabled,
};

fn aks_extension_controller_disabled(
    snapshot: &Resolved,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    let Some((state, extension)) = read(snapshot)? else {
        return Ok(());
    };
    let mut controllers: Vec<&str> = snapshot.uses().map(|u| u.controller).collect();
    controllers.sort_unstable();
    controllers.dedup();
    for controller in controllers {
        if extension.deploys(controller) != Some(false) {
            continue;
        }
        let group: Vec<AzureUse<'_>> = snapshot
            .uses()
            .filter(|u| u.controller == controller)
            .collect();
        let key = format!("{controller}.enabled");
        let setting = extension.setting(&key).map_or_else(
            || "unset (default false)".to_string(),
            |v| format!("\"{v}\""),
        );
        findings.add(
            extension_ref(state, extension),
            format!(
                "{} need{} {controller}, which the extension does not deploy: {key} is {setting}",
                describe_objects(&group),
                verb_s(group.len())
            ),
            state.update(&[(key.as_str(), "true")]),
        );
    }
    Ok(())
}

pub static FLUX_CONFIGURATION_AUTH_BROKEN: Check = Check {
    id: "AZF017",
    name: "flux-configuration-auth-broken",
    area: Area::Cluster,
    severity: Severity::Error,
    title: "A fluxConfiguration's source authentication cannot work",
    healthy: "Each fluxConfiguration's source authentication can work",
    explanation: "A fluxConfiguration's source logs in as its fields say: `gitRepository.provider: \
Azure` and `ociRepository.useWorkloadIdentity` use the extension's workload identity (so the \
extension must have it), Azure DevOps with workload identity needs extension 1.14.1 and Flux's \
`provider: azure` (source-controller v1.4.0), an `ociRepository.serviceAccountName` needs \
object-level identity (extension 1.20.4), `azureBlob.managedIdentity.clientId` must be a client \
ID, and an Azure DevOps repository with no provider, user, SSH key or local secret has no \
credential at all. With `--azure`, from the fluxConfigurations.",
    fix: "`az k8s-configuration flux update --cluster-type managedClusters -c CLUSTER -g GROUP -n \
NAME --provider azure` (or the setting named), after the extension has workload identity.",
    run: flux_configuration_auth_broken,
};

fn is_devops(url: &str) -> bool {
    let host = crate::wiring::host_of(url);
    host == "dev.azure.com" || host.ends_with(".visualstudio.com") || host == "ssh.dev.azure.com"
}

/// What is wrong with one fluxConfiguration's auth, with the fix.
fn configuration_problems(
    snapshot: &Snapshot,
    state: &ExtensionState,
    extension: &FluxExtension,
    config: &FluxConfiguration,
) -> Vec<(Severity, String, String)> {
    let mut problems = Vec::new();
    let has_identity = extension.workload_identity() || extension.kubelet_identity();
    let enable_identity = state.update(&identity_settings());
    let kind = &config.source_kind;
    if config.git_provider_azure() {
        if !has_identity {
            problems.push((Severity::Error, "its GitRepository uses provider Azure, which logs in with the extension's identity, and the extension has none (workloadIdentity.enable is not true)".to_string(), enable_identity.clone()));
        }
        let needed = extension::first_bundling(features::GIT_PROVIDER_AZURE.flux)
            .map_or(DEVOPS_WORKLOAD_IDENTITY.since(), |v| {
                v.max(DEVOPS_WORKLOAD_IDENTITY.since())
            });
        if extension.parsed_version().is_some_and(|v| v < needed) {
            problems.push((
                Severity::Error,
                format!(
                    "its GitRepository uses provider Azure, but the extension {} predates {} (extension {}, {}; Flux's provider azure: {})",
                    extension.describe(),
                    DEVOPS_WORKLOAD_IDENTITY.what,
                    extension::plain(needed),
                    DEVOPS_WORKLOAD_IDENTITY.source,
                    features::GIT_PROVIDER_AZURE.source
                ),
                upgrade_to(snapshot, needed),
            ));
        }
    } else if kind.eq_ignore_ascii_case("GitRepository")
        && config.url.as_deref().is_some_and(is_devops)
        && config.auth.https_user.is_none()
        && config.auth.local_auth_ref.is_none()
        && !config.auth.ssh_key
    {
        let provider = state.update_configuration(&config.name, "--provider azure");
        let fix = if has_identity {
            provider
        } else {
            super::fixes::steps(&[enable_identity.clone(), provider])
        };
        problems.push((Severity::Warning, "its Azure DevOps repository has no credential (no provider Azure, HTTPS user, SSH key or local secret): it reads only a public project".to_string(), fix));
    }
    if kind.eq_ignore_ascii_case("OCIRepository") {
        if config.auth.use_workload_identity && !extension.workload_identity() {
            problems.push((Severity::Error, "its OCIRepository sets useWorkloadIdentity, but the extension has no workload identity (workloadIdentity.enable is not true)".to_string(), enable_identity.clone()));
        }
        if let Some(account) = &config.auth.service_account_name
            && lacks(extension, &OBJECT_LEVEL_WORKLOAD_IDENTITY)
        {
            problems.push((
                    Severity::Error,
                    format!(
                        "its OCIRepository logs in as ServiceAccount {account}, but the extension {} predates {} (extension {}, {})",
                        extension.describe(),
                        OBJECT_LEVEL_WORKLOAD_IDENTITY.what,
                        extension::plain(OBJECT_LEVEL_WORKLOAD_IDENTITY.since()),
                        OBJECT_LEVEL_WORKLOAD_IDENTITY.source
                    ),
                    upgrade_to(snapshot, OBJECT_LEVEL_WORKLOAD_IDENTITY.since()),
                ));
        }
    }
    if let Some(id) = &config.auth.managed_identity_client_id
        && !is_uuid(id)
    {
        {
            problems.push((
                Severity::Error,
                format!("its azureBlob managedIdentity.clientId \"{id}\" is not a UUID"),
                state.update_configuration(&config.name, "--mi-client-id CLIENT_ID"),
            ));
        }
    }
    problems
}

fn flux_configuration_auth_broken(
    snapshot: &Resolved,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    let Some((state, extension)) = read(snapshot)? else {
        return Ok(());
    };
    let configurations = state.configurations.get()?;
    for config in configurations {
        for (severity, problem, fix) in configuration_problems(snapshot, state, extension, config) {
            findings
                .add(
                    configuration_ref(state, config),
                    format!("fluxConfiguration {}: {problem}", config.name),
                    fix,
                )
                .severity(severity);
        }
    }
    Ok(())
}

/// "version 1.18.2 (Flux v2.6.4)" from the extension's version label on a controller.
pub fn labelled_version(workloads: &[&Workload]) -> Option<String> {
    let text = workloads
        .iter()
        .find_map(|w| w.labels.get(extension::VERSION_LABEL))?;
    let flux = Version::parse(text).and_then(extension::flux_release);
    Some(match flux {
        Some(flux) => format!("version {text} (Flux {flux})"),
        None => format!("version {text}"),
    })
}
