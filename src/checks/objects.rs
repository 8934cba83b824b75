//! AZF040-AZF051: the Flux objects that talk to Azure: provider fields, object-level identity
//! (feature gate, ServiceAccounts, lockdown defaults), version gates, remote clusters and
//! secret-based credentials.

use std::collections::BTreeMap;

use super::{Area, Check, Findings, FixAction, Severity};
use crate::model::azure_use::{
    AzureService, AzureUse, Identity, azure_uses, describe_objects, join_words, verb_s,
};
use crate::model::version::{
    OBJECT_LEVEL_GATE, Version, controller_version, flux_version, object_level_enabled,
};
use crate::model::{FluxKind, FluxObject, ObjectRef, Skip, Snapshot};
use crate::wiring::{AZURE_CHINA, CLIENT_ID_ANNOTATION, Cloud, TENANT_ID_ANNOTATION, host_of};

/// Object checks need the objects; a kind that could not be listed is reported by AZF000 and
/// only hides its own objects.
fn objects(snapshot: &Snapshot) -> Result<&[FluxObject], Skip> {
    if snapshot.flux.read {
        Ok(&snapshot.flux.objects)
    } else {
        Err(Skip("Flux objects were not read".into()))
    }
}

fn is_ado_host(host: &str) -> bool {
    host == "dev.azure.com" || host.ends_with(".visualstudio.com")
}

/// The Azure service an endpoint belongs to, judged by its host alone.
fn endpoint_service(object: &FluxObject) -> Option<AzureService> {
    let url = object.url.as_deref()?;
    let host = host_of(url);
    let kind = object.kind?;
    match kind {
        FluxKind::GitRepository if is_ado_host(&host) && url.starts_with("https://") => {
            Some(AzureService::DevOps)
        }
        FluxKind::OCIRepository | FluxKind::ImageRepository
            if crate::wiring::CLOUDS
                .iter()
                .any(|c| host.ends_with(c.registry_suffix)) =>
        {
            Some(AzureService::ContainerRegistry)
        }
        FluxKind::HelmRepository
            if object.type_.as_deref() == Some("oci")
                && crate::wiring::CLOUDS
                    .iter()
                    .any(|c| host.ends_with(c.registry_suffix)) =>
        {
            Some(AzureService::ContainerRegistry)
        }
        FluxKind::Bucket
            if crate::wiring::CLOUDS
                .iter()
                .any(|c| host.ends_with(c.storage_suffix)) =>
        {
            Some(AzureService::BlobStorage)
        }
        _ => None,
    }
}

pub static AZURE_ENDPOINT_WITHOUT_PROVIDER: Check = Check {
    id: "AZF040",
    name: "azure-endpoint-without-provider",
    area: Area::Objects,
    severity: Severity::Warning,
    title: "An Azure endpoint is used without `provider: azure`",
    explanation: "Flux uses workload identity for an object only when it says `provider: azure`; \
controller-level wiring does not change that. An Azure DevOps URL (dev.azure.com, \
*.visualstudio.com), an ACR registry (*.azurecr.io, .cn, .us) or a Blob Storage endpoint \
without it, and without a secretRef, is accessed anonymously: fine for a public registry, \
`401 Unauthorized` for anything private.",
    fix: "Set `.spec.provider: azure` on the object (and wire an identity for it), or give it a \
secretRef if it should use static credentials.",
    run: azure_endpoint_without_provider,
};

fn azure_endpoint_without_provider(
    snapshot: &Snapshot,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    for object in objects(snapshot)? {
        let Some(service) = endpoint_service(object) else {
            continue;
        };
        if object.provider_is_azure() || object.secret_ref.is_some() {
            continue;
        }
        let provider = object.provider.as_deref().unwrap_or("generic (unset)");
        findings.add(
            object.object_ref(),
            format!(
                "{} reaches {service} at {} with provider {provider} and no secretRef: Flux will not use workload identity and tries anonymous access",
                object.object_ref(),
                object.url.as_deref().unwrap_or_default()
            ),
            "set spec.provider: azure (or a secretRef for static credentials)",
        );
    }
    Ok(())
}

pub static PROVIDER_AZURE_WITH_SECRETREF: Check = Check {
    id: "AZF041",
    name: "provider-azure-with-secretref",
    area: Area::Objects,
    severity: Severity::Warning,
    title: "Workload identity is requested but a secretRef is set too",
    explanation: "An object that asks for workload identity (`provider: azure`, or an Azure \
notification Provider with `serviceAccountName`) and also names a secretRef is ambiguous: for a \
Bucket the Secret wins and the identity is ignored, for OCI sources the static credentials are \
used, and the notification Provider API rejects the combination outright.",
    fix: "Remove `.spec.secretRef` to use workload identity, or drop `provider: azure` / \
`serviceAccountName` to keep the Secret.",
    run: provider_azure_with_secretref,
};

fn provider_azure_with_secretref(
    snapshot: &Snapshot,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    for object in objects(snapshot)? {
        let Some(secret) = &object.secret_ref else {
            continue;
        };
        let (requested, severity, consequence) = match object.kind {
            Some(FluxKind::Provider) => (
                object.service_account_name.is_some()
                    && matches!(
                        object.type_.as_deref(),
                        Some("azuredevops" | "azureeventhub")
                    ),
                Severity::Error,
                "the Provider API rejects static credentials together with serviceAccountName",
            ),
            // provider: azure + secretRef on a Bucket is the documented certificate path;
            // only an explicit serviceAccountName makes it a contradiction.
            Some(FluxKind::Bucket) => (
                object.provider_is_azure() && object.service_account_name.is_some(),
                Severity::Warning,
                "the Secret wins and serviceAccountName is ignored",
            ),
            Some(
                FluxKind::GitRepository
                | FluxKind::OCIRepository
                | FluxKind::HelmRepository
                | FluxKind::ImageRepository,
            ) => (
                object.provider_is_azure(),
                Severity::Warning,
                "the static credentials in the Secret are used, not workload identity",
            ),
            _ => (false, Severity::Warning, ""),
        };
        if requested {
            findings
                .add(
                    object.object_ref(),
                    format!("{} asks for workload identity but also sets secretRef {secret}: {consequence}", object.object_ref()),
                    "remove spec.secretRef to use workload identity, or remove provider: azure / serviceAccountName to keep the Secret",
                )
                .severity(severity);
        }
    }
    Ok(())
}

pub static GITREPOSITORY_SA_REQUIRES_PROVIDER_AZURE: Check = Check {
    id: "AZF042",
    name: "gitrepository-sa-requires-provider-azure",
    area: Area::Objects,
    severity: Severity::Error,
    title: "A GitRepository sets serviceAccountName without `provider: azure`",
    explanation: "Since Flux 2.7 a GitRepository's `serviceAccountName` selects the workload \
identity for Azure DevOps, and the API rejects it unless `provider: azure` is set \
(`serviceAccountName can only be set when provider is 'azure'`): the object is not admitted or \
not updated.",
    fix: "Set `.spec.provider: azure` (HTTPS dev.azure.com URL), or remove `serviceAccountName`.",
    run: gitrepository_sa_requires_provider_azure,
};

fn gitrepository_sa_requires_provider_azure(
    snapshot: &Snapshot,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    for object in objects(snapshot)? {
        if object.kind == Some(FluxKind::GitRepository)
            && object.service_account_name.is_some()
            && !object.provider_is_azure()
        {
            findings.add(
                object.object_ref(),
                format!(
                    "{} sets serviceAccountName {} but provider is {}; the API accepts serviceAccountName only with provider: azure",
                    object.object_ref(),
                    object.service_account_name.as_deref().unwrap_or_default(),
                    object.provider.as_deref().unwrap_or("unset")
                ),
                "set spec.provider: azure, or remove spec.serviceAccountName",
            );
        }
    }
    Ok(())
}

/// The Flux release that first supported a use, and how to say it.
fn required_flux(azure_use: &AzureUse<'_>) -> (Version, &'static str) {
    let kind = azure_use.object.kind;
    let object_level = matches!(azure_use.identity, Identity::ServiceAccount(_));
    match (object_level, azure_use.service, kind) {
        (_, AzureService::KubernetesService, _) => (
            Version::new(2, 7, 0),
            "remote AKS clusters through a kubeConfig ConfigMap",
        ),
        (true, AzureService::BlobStorage | AzureService::DevOps, _) => (
            Version::new(2, 7, 0),
            "object-level workload identity for Bucket, GitRepository, ImageUpdateAutomation and Azure DevOps Providers",
        ),
        (true, _, _) => (Version::new(2, 6, 0), "object-level workload identity"),
        (false, AzureService::DevOps, Some(FluxKind::ImageUpdateAutomation)) => (
            Version::new(2, 7, 0),
            "Azure DevOps workload identity for image automation",
        ),
        (false, AzureService::DevOps, _) => (
            Version::new(2, 4, 0),
            "Azure DevOps workload identity (OIDC)",
        ),
        (false, _, _) => (Version::new(2, 0, 0), "Azure workload identity"),
    }
}

pub static FLUX_VERSION_TOO_OLD: Check = Check {
    id: "AZF043",
    name: "flux-version-too-old",
    area: Area::Objects,
    severity: Severity::Error,
    title: "An Azure feature in use is newer than the running Flux",
    explanation: "Flux gained its Azure features release by release: workload identity in 2.0, \
Azure DevOps OIDC in 2.4, object-level identity in 2.6 (OCI, image, SOPS, Event Hubs) and 2.7 \
(Bucket, GitRepository, Azure DevOps Providers, image automation, remote clusters), and a fix for \
Azure China in source-controller 1.7.4. An older controller ignores the fields or fails the \
object.",
    fix: "Upgrade Flux to the version named (`flux install --export` or the bootstrap \
manifests), or stop using the feature.",
    run: flux_version_too_old,
};

fn flux_version_too_old(snapshot: &Snapshot, findings: &mut Findings<'_>) -> Result<(), Skip> {
    if snapshot.controllers.get()?.is_empty() {
        return Err(Skip(format!(
            "no Flux controller Deployment in namespace {}",
            snapshot.flux_namespace
        )));
    }
    let uses = azure_uses(snapshot);
    let mut groups: BTreeMap<(&str, Version, &str), Vec<AzureUse<'_>>> = BTreeMap::new();
    for azure_use in &uses {
        let Some(running) = snapshot
            .controller(azure_use.controller)
            .and_then(flux_version)
        else {
            continue;
        };
        let (required, feature) = required_flux(azure_use);
        if running < required {
            groups
                .entry((azure_use.controller, required, feature))
                .or_default()
                .push(azure_use.clone());
        }
    }
    for ((controller, required, feature), group) in groups {
        let workload = snapshot
            .controller(controller)
            .expect("grouped by existing controller");
        let running = flux_version(workload)
            .map(|v| v.to_string())
            .unwrap_or_default();
        findings.add(
            workload.object_ref(),
            format!(
                "{} use{} {feature}, which needs Flux {}.{} or later; {controller} is from Flux {running}",
                describe_objects(&group),
                verb_s(group.len()),
                required.major,
                required.minor
            ),
            format!("upgrade Flux to v{}.{} or later", required.major, required.minor),
        );
    }
    if let Some(source) = snapshot.controller("source-controller") {
        let china = uses.iter().any(|u| {
            u.controller == "source-controller"
                && u.object.url.as_deref().and_then(Cloud::by_endpoint) == Some(AZURE_CHINA)
        }) || snapshot.cloud == Some(AZURE_CHINA);
        let fixed = Version::new(1, 7, 4);
        if let Some(version) = controller_version(source).filter(|v| china && *v < fixed) {
            findings.add(
                source.object_ref(),
                format!("source-controller {version} uses Azure China endpoints; workload identity in Azure China needs source-controller v1.7.4 or later"),
                "upgrade Flux to a release with source-controller v1.7.4 or later",
            );
        }
    }
    Ok(())
}

fn object_level_uses(snapshot: &Snapshot) -> Vec<AzureUse<'_>> {
    azure_uses(snapshot)
        .into_iter()
        .filter(|u| matches!(u.identity, Identity::ServiceAccount(_)))
        .collect()
}

pub static OBJECT_LEVEL_GATE_MISSING: Check = Check {
    id: "AZF044",
    name: "object-level-gate-missing",
    area: Area::Objects,
    severity: Severity::Error,
    title: "Objects use their own identity but the controller's feature gate is off",
    explanation: "`serviceAccountName` on an Azure object (or `decryption.serviceAccountName`, \
or `serviceAccountName` in a remote-cluster kubeConfig ConfigMap) needs the controller to run \
with `--feature-gates=ObjectLevelWorkloadIdentity=true`. Without it the object stalls with \
reason `FeatureGateDisabled`.",
    fix: "Add `--feature-gates=ObjectLevelWorkloadIdentity=true` to the controller's args \
through the flux-system kustomization.yaml patches (or `objectLevelWorkloadIdentity: true` in a \
FluxInstance).",
    run: object_level_gate_missing,
};

fn object_level_gate_missing(snapshot: &Snapshot, findings: &mut Findings<'_>) -> Result<(), Skip> {
    if snapshot.controllers.get()?.is_empty() {
        return Err(Skip(format!(
            "no Flux controller Deployment in namespace {}",
            snapshot.flux_namespace
        )));
    }
    let mut by_controller: BTreeMap<&str, Vec<AzureUse<'_>>> = BTreeMap::new();
    for azure_use in object_level_uses(snapshot) {
        by_controller
            .entry(azure_use.controller)
            .or_default()
            .push(azure_use);
    }
    for (controller, uses) in by_controller {
        let Some(workload) = snapshot.controller(controller) else {
            continue;
        };
        if object_level_enabled(workload) {
            continue;
        }
        findings.add(
            workload.object_ref(),
            format!(
                "{} use{} their own ServiceAccount, but {controller} runs without --feature-gates={OBJECT_LEVEL_GATE}=true",
                describe_objects(&uses),
                verb_s(uses.len())
            ),
            format!("add --feature-gates={OBJECT_LEVEL_GATE}=true to the {controller} container args (kubectl azflux enable --object-level)"),
        );
    }
    Ok(())
}

/// Every ServiceAccount named by object-level uses, with the uses that name it.
fn service_accounts_in_use<'a>(
    uses: &[AzureUse<'a>],
    lockdown: bool,
) -> BTreeMap<(String, String), Vec<AzureUse<'a>>> {
    let mut by_sa: BTreeMap<(String, String), Vec<AzureUse<'a>>> = BTreeMap::new();
    for azure_use in uses.iter().filter(|u| u.lockdown_default == lockdown) {
        if let Identity::ServiceAccount(sa) = &azure_use.identity {
            by_sa
                .entry((azure_use.object.namespace.clone(), sa.clone()))
                .or_default()
                .push(azure_use.clone());
        }
    }
    by_sa
}

pub static OBJECT_SA_NOT_FOUND: Check = Check {
    id: "AZF045",
    name: "object-sa-not-found",
    area: Area::Objects,
    severity: Severity::Error,
    title: "An object's ServiceAccount does not exist",
    explanation: "With object-level identity the controller mints a token for the \
ServiceAccount the object names, in the object's own namespace. When that ServiceAccount does \
not exist the token request fails and the object never authenticates.",
    fix: "Create the ServiceAccount in the object's namespace with the \
`azure.workload.identity/client-id` and `tenant-id` annotations (`kubectl azflux enable tenant`).",
    run: object_sa_not_found,
};

fn object_sa_not_found(snapshot: &Snapshot, findings: &mut Findings<'_>) -> Result<(), Skip> {
    snapshot.service_accounts.get()?;
    let live = snapshot.source.is_live();
    for ((namespace, name), uses) in service_accounts_in_use(&object_level_uses(snapshot), false) {
        if snapshot.service_account(&namespace, &name).is_some() {
            continue;
        }
        let (where_, severity) = if live {
            ("does not exist", Severity::Error)
        } else {
            // Manifests are often a slice of the cluster; say what we saw, not more.
            ("is not defined in the manifests", Severity::Warning)
        };
        findings
            .add(
                ObjectRef::namespaced("ServiceAccount", &namespace, &name),
                format!("ServiceAccount {namespace}/{name}, used by {}, {where_}", describe_objects(&uses)),
                format!("kubectl azflux enable tenant -n {namespace} --service-account {name} --client-id CLIENT_ID --tenant-id TENANT_ID"),
            )
            .severity(severity);
    }
    Ok(())
}

pub static OBJECT_SA_MISSING_ANNOTATIONS: Check = Check {
    id: "AZF046",
    name: "object-sa-missing-annotations",
    area: Area::Objects,
    severity: Severity::Error,
    title: "An object's ServiceAccount lacks the client or tenant ID annotation",
    explanation: "Object-level identity reads both `azure.workload.identity/client-id` and \
`azure.workload.identity/tenant-id` from the ServiceAccount the object names; unlike the webhook \
there is no fallback to the cluster's tenant. Either one missing fails with `azure client ID is \
not set in the service account annotation` (or tenant ID).",
    fix: "Annotate the ServiceAccount with both the managed identity's client ID and its tenant ID.",
    run: object_sa_missing_annotations,
};

fn object_sa_missing_annotations(
    snapshot: &Snapshot,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    snapshot.service_accounts.get()?;
    let uses = object_level_uses(snapshot);
    for lockdown in [false, true] {
        for ((namespace, name), group) in service_accounts_in_use(&uses, lockdown) {
            let Some(sa) = snapshot.service_account(&namespace, &name) else {
                continue;
            };
            let missing: Vec<String> = [CLIENT_ID_ANNOTATION, TENANT_ID_ANNOTATION]
                .into_iter()
                .filter(|a| sa.annotations.get(*a).is_none_or(String::is_empty))
                .map(|a| format!("`{a}`"))
                .collect();
            if missing.is_empty() {
                continue;
            }
            let annotations: BTreeMap<String, String> =
                [CLIENT_ID_ANNOTATION, TENANT_ID_ANNOTATION]
                    .into_iter()
                    .filter(|a| sa.annotations.get(*a).is_none_or(String::is_empty))
                    .map(|a| {
                        (
                            a.to_string(),
                            if a == CLIENT_ID_ANNOTATION {
                                "CLIENT_ID"
                            } else {
                                "TENANT_ID"
                            }
                            .to_string(),
                        )
                    })
                    .collect();
            findings
                .add(
                    sa.object_ref(),
                    format!(
                        "{} lacks {}; it is the identity of {}",
                        sa.object_ref(),
                        join_words(&missing),
                        describe_objects(&group)
                    ),
                    format!("annotate {} with {}", sa.object_ref(), join_words(&missing)),
                )
                .action(FixAction::Annotate {
                    target: sa.object_ref(),
                    annotations,
                });
        }
    }
    Ok(())
}

pub static LOCKDOWN_DEFAULT_SA_MISSING: Check = Check {
    id: "AZF047",
    name: "lockdown-default-sa-missing",
    area: Area::Objects,
    severity: Severity::Error,
    title: "Multi-tenant lockdown names a default ServiceAccount a namespace lacks",
    explanation: "With `--default-service-account`, `--default-decryption-service-account` or \
`--default-kubeconfig-service-account` set, an object without its own serviceAccountName uses \
that ServiceAccount in its own namespace, never the controller's identity. A namespace with \
Azure objects but no such ServiceAccount fails with `the specified default service account does \
not exist in the object namespace`.",
    fix: "Create the default ServiceAccount (annotated with client and tenant ID) in each listed \
namespace, or give the objects their own serviceAccountName.",
    run: lockdown_default_sa_missing,
};

fn lockdown_default_sa_missing(
    snapshot: &Snapshot,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    snapshot.service_accounts.get()?;
    for ((namespace, name), uses) in service_accounts_in_use(&object_level_uses(snapshot), true) {
        if snapshot.service_account(&namespace, &name).is_some() {
            continue;
        }
        let controllers: Vec<String> = {
            let mut c: Vec<String> = uses.iter().map(|u| u.controller.to_string()).collect();
            c.dedup();
            c
        };
        findings.add(
            ObjectRef::namespaced("ServiceAccount", &namespace, &name),
            format!(
                "{} fall{} back to the lockdown default ServiceAccount {name} ({}), which namespace {namespace} does not have",
                describe_objects(&uses),
                verb_s(uses.len()),
                join_words(&controllers)
            ),
            format!("kubectl azflux enable tenant -n {namespace} --service-account {name} --client-id CLIENT_ID --tenant-id TENANT_ID"),
        );
    }
    Ok(())
}

pub static OBJECT_LEVEL_ON_AKS_UNSTABLE: Check = Check {
    id: "AZF048",
    name: "object-level-on-aks-unstable",
    area: Area::Objects,
    severity: Severity::Info,
    title: "Object-level identity against Azure on AKS is documented as unstable",
    explanation: "The Flux docs warn that object-level workload identity from AKS to Azure may \
stop working without notice, depending on how AKS hardens service-account token checks; a \
proposed fix adds an annotation with the federated credential's ID (fluxcd/flux2#5359). \
Controller-level identity is not affected.",
    fix: "Nothing to change today; follow https://github.com/fluxcd/flux2/issues/5359 and keep \
controller-level identity as a fallback for critical sources.",
    run: object_level_on_aks_unstable,
};

fn object_level_on_aks_unstable(
    snapshot: &Snapshot,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    if !snapshot.cluster.get()?.is_aks {
        return Ok(());
    }
    let uses = object_level_uses(snapshot);
    if !uses.is_empty() {
        findings.add(
            ObjectRef::cluster_scoped("Cluster", &snapshot.flux_namespace),
            format!(
                "{} use{} object-level workload identity on AKS, which upstream documents as unstable (fluxcd/flux2#5359)",
                describe_objects(&uses),
                verb_s(uses.len())
            ),
            "no change needed now; follow https://github.com/fluxcd/flux2/issues/5359",
        );
    }
    Ok(())
}

pub static REMOTE_CLUSTER_EXEC_KUBECONFIG: Check = Check {
    id: "AZF049",
    name: "remote-cluster-exec-kubeconfig",
    area: Area::Objects,
    severity: Severity::Error,
    title: "A remote-cluster kubeconfig Secret uses an exec plugin",
    explanation: "Kustomizations and HelmReleases that apply to another cluster read a \
kubeconfig from `.spec.kubeConfig.secretRef`. The controllers cannot run exec credential plugins \
such as kubelogin, so a kubeconfig copied from `az aks get-credentials` fails. Flux 2.7 can \
authenticate to AKS itself through `.spec.kubeConfig.configMapRef` with `provider: azure`.",
    fix: "Replace the secretRef with a configMapRef to a ConfigMap holding `provider: azure`, \
`cluster` (the AKS resource ID) and optionally `serviceAccountName` (Flux 2.7+).",
    run: remote_cluster_exec_kubeconfig,
};

fn remote_cluster_exec_kubeconfig(
    snapshot: &Snapshot,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    let referencing: Vec<&FluxObject> = objects(snapshot)?
        .iter()
        .filter(|o| {
            o.kube_config
                .as_ref()
                .and_then(|k| k.secret_ref.as_ref())
                .is_some()
        })
        .collect();
    if referencing.is_empty() {
        return Ok(());
    }
    snapshot.secrets.get()?;
    for object in referencing {
        let name = object
            .kube_config
            .as_ref()
            .and_then(|k| k.secret_ref.as_deref())
            .unwrap_or_default();
        let Some(command) = snapshot
            .secret(&object.namespace, name)
            .and_then(|s| s.kubeconfig_exec.as_deref())
        else {
            continue;
        };
        findings.add(
            object.object_ref(),
            format!(
                "{} applies to a remote cluster with the kubeconfig in Secret {}/{name}, whose user runs the exec plugin `{command}`, which the controller cannot run",
                object.object_ref(),
                object.namespace
            ),
            "use spec.kubeConfig.configMapRef with provider: azure and the AKS cluster's resource ID (Flux 2.7+)",
        );
    }
    Ok(())
}

pub static SECRET_BASED_AZURE_AUTH: Check = Check {
    id: "AZF050",
    name: "secret-based-azure-auth",
    area: Area::Objects,
    severity: Severity::Info,
    title: "Azure access uses a client certificate or secret instead of workload identity",
    explanation: "Bucket and SOPS (Key Vault) can authenticate with an application's \
certificate or secret: a Bucket secretRef with tenantId/clientId/clientCertificate (or \
clientSecret), a Kustomization decryption secretRef with `sops.azure-kv`, or the controller-level \
AZURE_CLIENT_CERTIFICATE_PATH mount. It works, but the credential has to be stored, rotated and \
guarded; workload identity needs none. Key names are read only with --read-secrets (or from \
manifests); values never.",
    fix: "Move to workload identity: a managed identity with a federated credential, \
`provider: azure` and no secretRef.",
    run: secret_based_azure_auth,
};

const BUCKET_AZURE_KEYS: [&str; 5] = [
    "clientCertificate",
    "clientSecret",
    "accountKey",
    "sasKey",
    "clientId",
];

fn secret_based_azure_auth(snapshot: &Snapshot, findings: &mut Findings<'_>) -> Result<(), Skip> {
    for azure_use in azure_uses(snapshot) {
        let Identity::Secret(secret) = &azure_use.identity else {
            continue;
        };
        let keys = snapshot
            .secret(&azure_use.object.namespace, secret)
            .map(|s| &s.keys);
        let azure_material = match azure_use.service {
            AzureService::KeyVault => keys.is_none_or(|k| k.iter().any(|k| k == "sops.azure-kv")),
            AzureService::BlobStorage => {
                keys.is_none_or(|k| k.iter().any(|k| BUCKET_AZURE_KEYS.contains(&k.as_str())))
            }
            _ => false,
        };
        if !azure_material {
            continue;
        }
        let shape = match keys {
            Some(keys) => format!("keys {}", keys.join(", ")),
            None => "key names not read (pass --read-secrets to check its shape)".to_string(),
        };
        findings.add(
            azure_use.object.object_ref(),
            format!("{} authenticates to {} with the credentials in Secret {secret} ({shape})", azure_use.object.object_ref(), azure_use.service),
            "prefer workload identity: a managed identity with a federated credential and no stored secret",
        );
    }
    for workload in snapshot.controllers.known().into_iter().flatten() {
        let Some(container) = workload.main_container() else {
            continue;
        };
        let Some(path) = container
            .env("AZURE_CLIENT_CERTIFICATE_PATH")
            .and_then(|e| e.value.as_deref())
        else {
            continue;
        };
        let mounted = container.volume_mounts.iter().any(|m| {
            path.starts_with(m.mount_path.trim_end_matches('/'))
                && workload
                    .volumes
                    .iter()
                    .any(|v| v.name == m.name && v.secret_name.is_some())
        });
        let shape = if mounted {
            "mounted from a Secret".to_string()
        } else {
            "but no Secret volume is mounted there, so the file will be missing".to_string()
        };
        findings
            .add(
                workload.object_ref(),
                format!(
                    "{} uses an application certificate at {path} ({shape})",
                    workload.name
                ),
                "prefer workload identity; if the certificate stays, mount its Secret at that path",
            )
            .severity(if mounted {
                Severity::Info
            } else {
                Severity::Error
            });
    }
    Ok(())
}
