//! AZF040-AZF053: the Flux objects that talk to Azure: the credential each one's controller
//! really uses for it (the resolver decides; these checks judge), object-level identity
//! (feature gate, ServiceAccounts, lockdown defaults), the releases features need, API
//! versions, remote clusters, secret-based credentials and federated credentials declared in
//! Kubernetes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Area, Check, Findings, FixAction, Severity, enable_command};
use crate::model::azure_use::{AzureService, describe_objects, join_words, verb_s};
use crate::model::version::{OBJECT_LEVEL_GATE, Version};
use crate::model::{FluxKind, FluxObject, ObjectRef, Skip, Snapshot};
use crate::resolve::features::{self, Feature, Running};
use crate::resolve::{AzureUse, Credential, Resolved, SecretHolds};
use crate::wiring::{CLIENT_ID_ANNOTATION, TENANT_ID_ANNOTATION, is_uuid};

/// Object checks need the objects; a kind that could not be listed is reported by AZF000 and
/// only hides its own objects.
fn objects(snapshot: &Snapshot) -> Result<&[FluxObject], Skip> {
    if snapshot.flux.read {
        Ok(&snapshot.flux.objects)
    } else {
        Err(Skip("Flux objects were not read".into()))
    }
}

fn controllers_known(snapshot: &Snapshot) -> Result<(), Skip> {
    if snapshot.controllers.get()?.is_empty() {
        return Err(Skip(format!(
            "no Flux controller Deployment in namespace {}",
            snapshot.flux_namespace
        )));
    }
    Ok(())
}

/// A Flux postBuild substitution (`${VAR}`): resolved when Flux applies the object, so its
/// value cannot be judged here.
pub fn is_substitution(value: &str) -> bool {
    value.contains("${")
}

pub static AZURE_ENDPOINT_WITHOUT_PROVIDER: Check = Check {
    id: "AZF040",
    name: "azure-endpoint-without-provider",
    area: Area::Objects,
    severity: Severity::Warning,
    title: "An Azure endpoint is used without `provider: azure`",
    healthy: "Objects on Azure endpoints set `provider: azure`",
    explanation: "Flux uses workload identity for an object only when it says `provider: azure`; \
controller-level wiring does not change that. An Azure DevOps URL (dev.azure.com, \
*.visualstudio.com), an ACR registry (*.azurecr.io, .cn, .us) or a Blob Storage endpoint \
without it, and without a secretRef, is accessed anonymously: fine for a public registry, \
`401 Unauthorized` for anything private. image-reflector-controller before v1.0.0 with \
`--azure-autologin-for-acr` is the exception: it logs in to ACR for such objects.",
    fix: "Set `.spec.provider: azure` on the object (and wire an identity for it), or give it a \
secretRef if it should use static credentials.",
    run: azure_endpoint_without_provider,
};

fn azure_endpoint_without_provider(
    snapshot: &Resolved,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    objects(snapshot)?;
    for azure_use in snapshot.uses() {
        if *azure_use.credential != Credential::Anonymous {
            continue;
        }
        let object = azure_use.object;
        findings.add(
            object.object_ref(),
            format!(
                "{} reaches {} at {}: {}; Flux will not use workload identity",
                object.object_ref(),
                azure_use.service,
                object.url.as_deref().unwrap_or_default(),
                azure_use.path.reason
            ),
            super::fixes::merge_patch(
                snapshot,
                &super::fixes::flux_target(object),
                &serde_json::json!({"spec": {"provider": "azure"}}),
            ),
        );
    }
    Ok(())
}

/// A remote AKS cluster reached with the controller's own identity (Flux 2.7: a ConfigMap
/// with `provider: azure`, the cluster's resource ID and its API server address, in
/// `spec.kubeConfig.configMapRef`; fluxcd/pkg auth/azure), in place of the exec kubeconfig.
fn kube_config_fix(snapshot: &Snapshot, object: &FluxObject) -> String {
    let config_map = format!("{}-kubeconfig", object.name);
    let create = super::fixes::command(&[
        "kubectl",
        "create",
        "configmap",
        &config_map,
        "-n",
        &object.namespace,
        "--from-literal=provider=azure",
        "--from-literal=cluster=AKS_CLUSTER_RESOURCE_ID",
        "--from-literal=address=https://AKS_API_SERVER",
    ]);
    super::fixes::steps(&[
        create,
        super::fixes::merge_patch(
            snapshot,
            &super::fixes::flux_target(object),
            &serde_json::json!({"spec": {"kubeConfig": {"configMapRef": {"name": config_map}, "secretRef": null}}}),
        ),
    ])
}

pub static SECRET_OVERRIDES_WORKLOAD_IDENTITY: Check = Check {
    id: "AZF041",
    name: "secret-overrides-workload-identity",
    area: Area::Objects,
    severity: Severity::Warning,
    title: "A Secret silently takes the place of workload identity",
    healthy: "No Secret takes the place of workload identity",
    explanation: "Each controller tries static credentials in its own order, and for most kinds \
they win without a word: an OCIRepository's or HelmRepository's secretRef (or the \
imagePullSecrets of the ServiceAccount it names) skips the provider login; a Bucket Secret with \
data is used instead of any identity; a `sops.azure-kv` key in a Kustomization's decryption \
Secret overrides the controller's and the object's identity, and a `clientId` alone in it means \
a managed identity over IMDS (the node's identities), not workload identity; an Azure DevOps \
Provider's token wins over its serviceAccountName; a GitRepository's Secret wins before \
source-controller v1.6.0. Some combinations the API or the controller refuses outright (a \
Bucket with both secretRef and serviceAccountName, an Event Hubs Provider with a SAS and a \
serviceAccountName).",
    fix: "Remove the static credential (the secretRef, the Secret's key, or the pull secret) to \
use workload identity, or drop `provider: azure` / serviceAccountName to keep the Secret.",
    run: secret_overrides_workload_identity,
};

fn holds_text(holds: &SecretHolds) -> String {
    match holds {
        SecretHolds::ServicePrincipal => "an application's client secret".into(),
        SecretHolds::Certificate => "an application's certificate".into(),
        SecretHolds::ManagedIdentity {
            client_id: Some(id),
        } => format!("only a client ID ({id}), which means a managed identity over IMDS"),
        SecretHolds::ManagedIdentity { client_id: None } => {
            "only a client ID, which means a managed identity over IMDS".into()
        }
        SecretHolds::Static { what } => (*what).to_string(),
        SecretHolds::Unknown => "credentials (its keys were not read)".into(),
    }
}

fn secret_overrides_workload_identity(
    snapshot: &Resolved,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    objects(snapshot)?;
    for azure_use in snapshot.uses() {
        let object = azure_use.object;
        if let Some(refused) = &azure_use.path.refused {
            findings
                .add(
                    object.object_ref(),
                    format!("{}: {refused}", object.object_ref()),
                    super::fixes::merge_patch(
                        snapshot,
                        &super::fixes::flux_target(object),
                        &serde_json::json!({"spec": {"secretRef": null}}),
                    ),
                )
                .severity(Severity::Error);
            continue;
        }
        let (Some(bypassed), Credential::Secret { name, holds }) =
            (&azure_use.path.bypasses, azure_use.credential)
        else {
            continue;
        };
        let mut message = format!(
            "{} is set up for {bypassed}, but Secret {name} ({}) takes its place: {}",
            object.object_ref(),
            holds_text(holds),
            azure_use.path.reason
        );
        let mut fix = secret_removal(snapshot, object, name);
        if let SecretHolds::ManagedIdentity { client_id } = holds {
            message.push_str("; IMDS knows only the node's managed identities, so on AKS with workload identity this fails unless that identity is assigned to the node pool");
            let controller_sa = snapshot
                .controller(azure_use.controller)
                .and_then(|w| snapshot.service_account(&w.namespace, &w.service_account));
            if let (Some(id), Some(sa)) = (client_id, controller_sa)
                && sa.annotations.get(CLIENT_ID_ANNOTATION) == Some(id)
            {
                let _ = write!(
                    message,
                    " (it is the client ID {} is annotated with: the Secret was meant for workload identity)",
                    sa.object_ref()
                );
            }
            fix = secret_key_removal(snapshot, &object.namespace, name, "sops.azure-kv");
        }
        findings.add(object.object_ref(), message, fix);
    }
    Ok(())
}

/// The change that stops Secret `name` from taking the place of workload identity: the
/// object's `secretRef` to it, else the imagePullSecrets of the ServiceAccount it names.
fn secret_removal(snapshot: &Snapshot, object: &FluxObject, name: &str) -> String {
    let sa = object
        .service_account_name
        .as_deref()
        .and_then(|sa| snapshot.service_account(&object.namespace, sa))
        .filter(|sa| sa.image_pull_secrets.iter().any(|s| s == name));
    match sa {
        Some(sa) if object.secret_ref.as_deref() != Some(name) => super::fixes::merge_patch(
            snapshot,
            &super::fixes::Target::new("serviceaccount", sa.object_ref(), &sa.labels),
            &serde_json::json!({"imagePullSecrets": null}),
        ),
        _ => super::fixes::merge_patch(
            snapshot,
            &super::fixes::flux_target(object),
            &serde_json::json!({"spec": {"secretRef": null}}),
        ),
    }
}

/// One key taken out of a Secret, the rest kept.
fn secret_key_removal(snapshot: &Snapshot, namespace: &str, name: &str, key: &str) -> String {
    // Secrets carry no reconciler labels in the snapshot: a decryption key is created by hand
    // (`kubectl create secret`), not kept in Git in the clear.
    let labels = crate::model::StringMap::default();
    super::fixes::merge_patch(
        snapshot,
        &super::fixes::Target::new(
            "secret",
            ObjectRef::namespaced("Secret", namespace, name),
            &labels,
        ),
        &serde_json::json!({"data": {key: null}}),
    )
}

pub static GITREPOSITORY_SA_REQUIRES_PROVIDER_AZURE: Check = Check {
    id: "AZF042",
    name: "gitrepository-sa-requires-provider-azure",
    area: Area::Objects,
    severity: Severity::Error,
    title: "A GitRepository sets serviceAccountName without `provider: azure`",
    healthy: "GitRepositories with serviceAccountName set `provider: azure`",
    explanation: "Since Flux 2.7 a GitRepository's `serviceAccountName` selects the workload \
identity for Azure DevOps, and the API rejects it unless `provider: azure` is set \
(`serviceAccountName can only be set when provider is 'azure'`; from source-controller v1.9.0 \
also `aws`): the object is not admitted or not updated.",
    fix: "Set `.spec.provider: azure` (HTTPS dev.azure.com URL), or remove `serviceAccountName`.",
    run: gitrepository_sa_requires_provider_azure,
};

fn gitrepository_sa_requires_provider_azure(
    snapshot: &Resolved,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    for object in objects(snapshot)? {
        if object.kind == Some(FluxKind::GitRepository)
            && object.service_account_name.is_some()
            && !object.provider_is_azure()
            && object.provider.as_deref() != Some("aws")
        {
            findings.add(
                object.object_ref(),
                format!(
                    "{} sets serviceAccountName {} but provider is {}; the API accepts serviceAccountName only with provider: azure (or aws)",
                    object.object_ref(),
                    object.service_account_name.as_deref().unwrap_or_default(),
                    object.provider.as_deref().unwrap_or("unset")
                ),
                super::fixes::merge_patch(
                    snapshot,
                    &super::fixes::flux_target(object),
                    &serde_json::json!({"spec": {"provider": "azure"}}),
                ),
            );
        }
    }
    Ok(())
}

pub static HELMREPOSITORY_SA_NOT_A_FIELD: Check = Check {
    id: "AZF053",
    name: "helmrepository-sa-not-a-field",
    area: Area::Objects,
    severity: Severity::Error,
    title: "A HelmRepository sets serviceAccountName, a field HelmRepository does not have",
    healthy: "No HelmRepository sets a serviceAccountName it does not have",
    explanation: "HelmRepository has no `serviceAccountName` (fluxcd/source-controller \
api/v1/helmrepository_types.go, v1.0.0 to v1.9.1): an OCI HelmRepository with `provider: azure` \
always logs in with source-controller's own identity (internal/helm/getter/client_opts.go at \
v1.9.1 calls the provider login with no ServiceAccount). The field does not reach the \
controller at all: kustomize-controller's server-side dry-run refuses the object \
(`HelmRepository/NS/NAME dry-run failed: failed to convert new object: \
.spec.serviceAccountName: field not declared in schema`), which fails the whole Kustomization, \
and `kubectl apply` refuses it as an unknown field. Object-level identity for charts comes \
with an OCIRepository (`serviceAccountName`, Flux 2.6) that the HelmRelease names in \
`spec.chartRef`.",
    fix: "Move the chart to an OCIRepository with `provider: azure` and the \
serviceAccountName, referenced by the HelmRelease's `spec.chartRef`; or remove \
`serviceAccountName` and let source-controller's identity pull the chart.",
    run: helmrepository_sa_not_a_field,
};

fn helmrepository_sa_not_a_field(
    snapshot: &Resolved,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    for object in objects(snapshot)? {
        let Some(sa) = object.service_account_name.as_deref() else {
            continue;
        };
        if object.kind != Some(FluxKind::HelmRepository) {
            continue;
        }
        let url = object.url.as_deref().unwrap_or("oci://REGISTRY/CHARTS");
        findings.add(
            object.object_ref(),
            format!(
                "{} sets serviceAccountName {sa}, which HelmRepository does not have: Flux's \
apply refuses the object (`.spec.serviceAccountName: field not declared in schema`), and \
its charts could only ever be pulled with source-controller's own identity",
                object.object_ref()
            ),
            chart_source_snippet(object, url, sa),
        );
    }
    Ok(())
}

/// The OCIRepository that pulls a chart with the object's identity, for the HelmRelease's
/// `chartRef`.
fn chart_source_snippet(object: &FluxObject, url: &str, sa: &str) -> String {
    let name = &object.name;
    let lines = [
        format!("# replaces HelmRepository {name}; the HelmRelease takes"),
        format!("# chartRef: {{kind: OCIRepository, name: {name}}}"),
        "apiVersion: source.toolkit.fluxcd.io/v1".to_string(),
        "kind: OCIRepository".to_string(),
        "metadata:".to_string(),
        format!("  name: {name}"),
        format!("  namespace: {}", object.namespace),
        "spec:".to_string(),
        "  interval: 10m".to_string(),
        format!("  url: {}/CHART", url.trim_end_matches('/')),
        "  ref:".to_string(),
        "    semver: \"*\"".to_string(),
        "  layerSelector:".to_string(),
        "    mediaType: application/vnd.cncf.helm.chart.content.v1.tar+gzip".to_string(),
        "    operation: copy".to_string(),
        "  provider: azure".to_string(),
        format!("  serviceAccountName: {sa}"),
    ];
    lines.join("\n")
}

pub static FLUX_VERSION_TOO_OLD: Check = Check {
    id: "AZF043",
    name: "flux-version-too-old",
    area: Area::Objects,
    severity: Severity::Error,
    title: "An Azure feature in use is newer than the controller that serves it",
    healthy: "Controllers are new enough for the Azure features in use",
    explanation: "Flux gained its Azure features controller release by controller release: \
workload identity in Flux 2.0, Azure DevOps for GitRepository in 2.4, object-level identity in \
2.6 (OCIRepository, ImageRepository, SOPS, Event Hubs) and 2.7 (Bucket, GitRepository, Azure \
DevOps Providers, image automation, remote clusters). An older controller ignores the field \
(an API version without it drops it) or never reaches the code that reads it. Workload identity \
in Azure China was broken in source-controller v1.7.2 and v1.7.3.",
    fix: "Upgrade Flux to the release named (`flux install --export`, the bootstrap manifests, \
the FluxInstance's distribution.version or the AKS extension's version), or stop using the \
feature.",
    run: flux_version_too_old,
};

/// How to move to Flux `flux`: through the extension's version when it owns the controller
/// (extension 1.x bundles a Flux release, see `azure::extension`), else by upgrading Flux.
fn upgrade(snapshot: &Resolved, workload: &crate::model::Workload, flux: Version) -> String {
    super::fixes::upgrade_flux(snapshot, workload, flux)
}

fn flux_version_too_old(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    controllers_known(snapshot)?;
    let mut groups: BTreeMap<(&str, &str), (Feature, Vec<AzureUse<'_>>)> = BTreeMap::new();
    for azure_use in snapshot.uses() {
        for feature in &azure_use.path.needs {
            groups
                .entry((feature.controller, feature.what))
                .or_insert_with(|| (*feature, Vec::new()))
                .1
                .push(azure_use);
        }
    }
    for ((controller, what), (feature, group)) in groups {
        let Some(workload) = snapshot.controller(controller) else {
            continue;
        };
        findings.add(
            workload.object_ref(),
            format!(
                "{} use{} {what}, which needs {controller} {} (Flux {}); {controller} {} predates it",
                describe_objects(&group),
                verb_s(group.len()),
                feature.since,
                feature.flux,
                Running::of(workload).describe()
            ),
            upgrade(snapshot, workload, feature.upgrade_to()),
        );
    }
    if let Some(source) = snapshot.controller("source-controller") {
        let china = snapshot.uses().any(|u| {
            u.controller == "source-controller"
                && u.object
                    .url
                    .as_deref()
                    .and_then(crate::wiring::Cloud::by_endpoint)
                    == Some(crate::wiring::AZURE_CHINA)
        }) || snapshot.cloud == Some(crate::wiring::AZURE_CHINA);
        let running = Running::of(source);
        if china
            && running.has(&features::SOURCE_CHINA_BROKEN) == Some(true)
            && running.lacks(&features::SOURCE_CHINA_FIXED)
        {
            findings.add(
                source.object_ref(),
                format!("source-controller {} uses Azure China endpoints; workload identity in Azure China is broken from {} until {} (MSAL Go v1.5.0)", running.describe(), features::SOURCE_CHINA_BROKEN.since, features::SOURCE_CHINA_FIXED.since),
                upgrade(snapshot, source, features::SOURCE_CHINA_FIXED.upgrade_to()),
            );
        }
    }
    Ok(())
}

/// Uses with object-level identity the object itself names; lockdown defaults are checked on
/// their own.
fn object_level_uses(snapshot: &Resolved) -> Vec<AzureUse<'_>> {
    snapshot
        .uses()
        .filter(|u| u.service_account().is_some() && u.path.needs.is_empty())
        .collect()
}

pub static OBJECT_LEVEL_GATE_MISSING: Check = Check {
    id: "AZF044",
    name: "object-level-gate-missing",
    area: Area::Objects,
    severity: Severity::Error,
    title: "Objects use their own identity but the controller's feature gate is off",
    healthy: "Controllers of objects with their own identity have the feature gate on",
    explanation: "`serviceAccountName` on an Azure object (or `decryption.serviceAccountName`, \
or `serviceAccountName` in a remote-cluster kubeConfig ConfigMap) needs the controller to run \
with `--feature-gates=ObjectLevelWorkloadIdentity=true`. Without it the object stalls with \
reason `FeatureGateDisabled`.",
    fix: "Add `--feature-gates=ObjectLevelWorkloadIdentity=true` to the controller's args \
through the flux-system kustomization.yaml patches (or `objectLevelWorkloadIdentity: true` in a \
FluxInstance).",
    run: object_level_gate_missing,
};

fn object_level_gate_missing(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    controllers_known(snapshot)?;
    let mut by_controller: BTreeMap<&str, Vec<AzureUse<'_>>> = BTreeMap::new();
    for azure_use in object_level_uses(snapshot)
        .into_iter()
        .filter(|u| !u.lockdown_default())
    {
        by_controller
            .entry(azure_use.controller)
            .or_default()
            .push(azure_use);
    }
    for (controller, uses) in by_controller {
        let (Some(workload), Some(path)) = (
            snapshot.controller(controller),
            snapshot.controller_path(controller),
        ) else {
            continue;
        };
        if path.gate_on() {
            continue;
        }
        let state = if path.object_level_gate == Some(false) {
            format!("with --feature-gates={OBJECT_LEVEL_GATE}=false")
        } else {
            format!("without --feature-gates={OBJECT_LEVEL_GATE}=true")
        };
        findings.add(
            workload.object_ref(),
            format!(
                "{} use{} their own ServiceAccount, but {controller} runs {state}: they stall with reason FeatureGateDisabled",
                describe_objects(&uses),
                verb_s(uses.len())
            ),
            super::controller_command(snapshot, workload, &format!("--object-level --controllers {controller}")),
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
    for azure_use in uses.iter().filter(|u| u.lockdown_default() == lockdown) {
        if let Some(sa) = azure_use.service_account() {
            // ImageUpdateAutomation looks its GitRepository's ServiceAccount up in its own
            // namespace.
            by_sa
                .entry((azure_use.object.namespace.clone(), sa.to_string()))
                .or_default()
                .push(*azure_use);
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
    healthy: "Objects' ServiceAccounts exist",
    explanation: "With object-level identity the controller mints a token for the \
ServiceAccount the object names, in the object's own namespace. When that ServiceAccount does \
not exist the token request fails and the object never authenticates.",
    fix: "Create the ServiceAccount in the object's namespace with the \
`azure.workload.identity/client-id` and `tenant-id` annotations (`kubectl azflux enable tenant`).",
    run: object_sa_not_found,
};

fn object_sa_not_found(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
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
                format!(
                    "ServiceAccount {namespace}/{name}, used by {}, {where_}",
                    describe_objects(&uses)
                ),
                enable_command(
                    snapshot,
                    &format!(
                        "tenant -n {namespace} --service-account {name} {}",
                        super::IDS
                    ),
                ),
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
    healthy: "Objects' ServiceAccounts carry client and tenant ID annotations",
    explanation: "Object-level identity reads both `azure.workload.identity/client-id` and \
`azure.workload.identity/tenant-id` from the ServiceAccount the object names; unlike the webhook \
there is no fallback to the cluster's tenant. Either one missing fails with `azure client ID is \
not set in the service account annotation` (or tenant ID); a placeholder in its place fails at \
Entra ID. A `${VAR}` value is a Flux postBuild substitution, filled in when Flux applies it.",
    fix: "Annotate the ServiceAccount with both the managed identity's client ID and its tenant ID.",
    run: object_sa_missing_annotations,
};

/// What is wrong with one identity annotation, if anything.
fn annotation_problem(value: Option<&String>) -> Option<&'static str> {
    match value {
        None => Some("lacks"),
        Some(v) if v.is_empty() => Some("has an empty"),
        Some(v) if is_substitution(v) || is_uuid(v) => None,
        Some(_) => Some("has a placeholder, not a UUID, in"),
    }
}

fn object_sa_missing_annotations(
    snapshot: &Resolved,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    snapshot.service_accounts.get()?;
    let uses = object_level_uses(snapshot);
    for lockdown in [false, true] {
        for ((namespace, name), group) in service_accounts_in_use(&uses, lockdown) {
            let Some(sa) = snapshot.service_account(&namespace, &name) else {
                continue;
            };
            let problems: Vec<(&str, &str)> = [CLIENT_ID_ANNOTATION, TENANT_ID_ANNOTATION]
                .into_iter()
                .filter_map(|a| annotation_problem(sa.annotations.get(a)).map(|p| (a, p)))
                .collect();
            if problems.is_empty() {
                continue;
            }
            let said: Vec<String> = problems.iter().map(|(a, p)| format!("{p} `{a}`")).collect();
            let annotations: BTreeMap<String, String> = problems
                .iter()
                .map(|(a, _)| {
                    let placeholder = if *a == CLIENT_ID_ANNOTATION {
                        "CLIENT_ID"
                    } else {
                        "TENANT_ID"
                    };
                    ((*a).to_string(), placeholder.to_string())
                })
                .collect();
            findings
                .add(
                    sa.object_ref(),
                    format!(
                        "{} {}; it is the identity of {}",
                        sa.object_ref(),
                        join_words(&said),
                        describe_objects(&group)
                    ),
                    super::fixes::merge_patch(
                        snapshot,
                        &super::fixes::Target::new("serviceaccount", sa.object_ref(), &sa.labels),
                        &serde_json::json!({"metadata": {"annotations": annotations}}),
                    ),
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
    healthy: "Namespaces have the default ServiceAccount the lockdown names",
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
    snapshot: &Resolved,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    snapshot.service_accounts.get()?;
    for ((namespace, name), uses) in service_accounts_in_use(&object_level_uses(snapshot), true) {
        if snapshot.service_account(&namespace, &name).is_some() {
            continue;
        }
        let mut controllers: Vec<String> = uses.iter().map(|u| u.controller.to_string()).collect();
        controllers.sort();
        controllers.dedup();
        findings.add(
            ObjectRef::namespaced("ServiceAccount", &namespace, &name),
            format!(
                "{} fall{} back to the lockdown default ServiceAccount {name} ({}), which namespace {namespace} does not have",
                describe_objects(&uses),
                verb_s(uses.len()),
                join_words(&controllers)
            ),
            enable_command(snapshot, &format!("tenant -n {namespace} --service-account {name} {}", super::IDS)),
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
    healthy: "No object relies on object-level identity against Azure on AKS",
    explanation: "The Flux docs warn that object-level workload identity from AKS to Azure may \
stop working without notice, depending on how AKS hardens service-account token checks; a \
proposed fix adds an annotation with the federated credential's ID (fluxcd/flux2#5359). \
Controller-level identity is not affected.",
    fix: "Nothing to change today; follow https://github.com/fluxcd/flux2/issues/5359 and keep \
controller-level identity as a fallback for critical sources.",
    run: object_level_on_aks_unstable,
};

fn object_level_on_aks_unstable(
    snapshot: &Resolved,
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
            "",
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
    healthy: "Remote-cluster kubeconfigs use no exec plugin",
    explanation: "Kustomizations and HelmReleases that apply to another cluster read a \
kubeconfig from `.spec.kubeConfig.secretRef`. The controllers cannot run exec credential plugins \
such as kubelogin, so a kubeconfig copied from `az aks get-credentials` fails. Flux 2.7 can \
authenticate to AKS itself through `.spec.kubeConfig.configMapRef` with `provider: azure`.",
    fix: "Replace the secretRef with a configMapRef to a ConfigMap holding `provider: azure`, \
`cluster` (the AKS resource ID) and optionally `serviceAccountName` (Flux 2.7+).",
    run: remote_cluster_exec_kubeconfig,
};

fn remote_cluster_exec_kubeconfig(
    snapshot: &Resolved,
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
            kube_config_fix(snapshot, object),
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
    healthy: "Azure access uses workload identity, not a client certificate or secret",
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

fn secret_based_azure_auth(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    for azure_use in snapshot.uses() {
        let Credential::Secret { name, holds } = azure_use.credential else {
            continue;
        };
        // A Secret that overrides workload identity is secret-overrides-workload-identity's.
        if azure_use.path.bypasses.is_some() {
            continue;
        }
        let shape = match holds {
            SecretHolds::ServicePrincipal
            | SecretHolds::Certificate
            | SecretHolds::ManagedIdentity { .. } => holds_text(holds),
            SecretHolds::Unknown
                if matches!(
                    azure_use.service,
                    AzureService::KeyVault | AzureService::BlobStorage
                ) =>
            {
                "keys not read (pass --read-secrets to check its shape)".to_string()
            }
            _ => continue,
        };
        findings.add(
            azure_use.object.object_ref(),
            format!(
                "{} authenticates to {} with Secret {name}: {shape}",
                azure_use.object.object_ref(),
                azure_use.service
            ),
            secret_removal(snapshot, azure_use.object, name),
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
                super::identity_fix(snapshot, workload),
            )
            .severity(if mounted {
                Severity::Info
            } else {
                Severity::Error
            });
    }
    Ok(())
}

pub static API_VERSION_NOT_SERVED: Check = Check {
    id: "AZF051",
    name: "api-version-not-served",
    area: Area::Objects,
    severity: Severity::Error,
    title: "An object on a path to Azure is written at an API version its controller no longer serves",
    healthy: "Objects on paths to Azure are at API versions their controllers serve",
    explanation: "Flux 2.7 stopped serving the v1beta1 APIs (source, kustomize, image, \
notification), Flux 2.8 source and kustomize v1beta2, Flux 2.9 image and notification v1beta2 \
(and image v1alpha1/v1alpha2 went in Flux 0.37). An object written at a removed version is \
refused by the API server, so it is never applied. `image.toolkit.fluxcd.io/v1beta1` also has no \
`spec.provider`: the API server drops a `provider: azure` written there.",
    fix: "Rewrite the object at the current version (`flux migrate` rewrites a cluster's stored \
objects before an upgrade; the files in Git need the new apiVersion too).",
    run: api_version_not_served,
};

/// The object written at the API version Flux stores it at.
fn rewrite_fix(object: &FluxObject) -> String {
    let Some(kind) = object.kind else {
        return String::new();
    };
    let current = features::current_api_version(kind);
    super::fixes::commented(
        &format!(
            "{} {}/{}: in its manifest (`flux migrate` rewrites stored objects)",
            kind.as_str(),
            object.namespace,
            object.name
        ),
        &format!("apiVersion: {current}\nkind: {}", kind.as_str()),
    )
}

fn api_version_not_served(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    objects(snapshot)?;
    // The objects on a path to Azure; the others' API versions are not this tool's business.
    let mut on_path: Vec<&FluxObject> = snapshot.uses().map(|u| u.object).collect();
    on_path.dedup_by(|a, b| std::ptr::eq(*a, *b));
    for object in on_path {
        if object.kind == Some(FluxKind::ImageRepository)
            && object.provider.is_some()
            && !features::image_api_has_provider(&object.api_version)
        {
            findings
                .add(
                    object.object_ref(),
                    format!("{} sets spec.provider at {}, whose schema has no provider field: the API server drops it and the ImageRepository pulls as provider generic", object.object_ref(), object.api_version),
                    rewrite_fix(object),
                )
                .severity(Severity::Warning);
        }
        let Some(removal) = features::api_removal(&object.api_version) else {
            continue;
        };
        match snapshot.controller(removal.controller) {
            Some(workload) => {
                let running = Running::of(workload);
                if running.has(removal) == Some(true) {
                    findings.add(
                        object.object_ref(),
                        format!(
                            "{} is written at {}, which {} {} does not serve ({}, Flux {}): the API server refuses it",
                            object.object_ref(),
                            object.api_version,
                            removal.controller,
                            running.describe(),
                            removal.what,
                            removal.flux
                        ),
                        rewrite_fix(object),
                    );
                }
            }
            None if !snapshot.source.is_live() => {
                findings
                    .add(
                        object.object_ref(),
                        format!(
                            "{} is written at {}, which Flux {} and later do not serve ({}): it is refused there",
                            object.object_ref(),
                            object.api_version,
                            removal.flux,
                            removal.what
                        ),
                        rewrite_fix(object),
                    )
                    .severity(Severity::Warning);
            }
            None => {}
        }
    }
    Ok(())
}

pub static FEDERATED_CREDENTIAL_UNUSED: Check = Check {
    id: "AZF052",
    name: "federated-credential-unused",
    area: Area::Objects,
    severity: Severity::Warning,
    title: "A federated credential is declared for a ServiceAccount that does not use it",
    healthy: "Declared federated credentials are used by their ServiceAccounts",
    explanation: "An Azure Service Operator `FederatedIdentityCredential` federates a \
ServiceAccount (`system:serviceaccount:NS:NAME`) with a managed identity. It is the intent to \
run that ServiceAccount as the identity; without the `azure.workload.identity/client-id` \
annotation (and, for a controller, the pod label) nothing presents its token, and the objects it \
was meant for fall back to another credential.",
    fix: "Annotate the ServiceAccount with the identity's client ID (and tenant ID), label the \
controller's pod template: `kubectl azflux enable --controllers NAME` for a controller.",
    run: federated_credential_unused,
};

fn federated_credential_unused(
    snapshot: &Resolved,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    let accounts = snapshot.service_accounts.get()?;
    for declared in &snapshot.declared_credentials {
        let Some((namespace, name)) = declared
            .subject
            .as_deref()
            .and_then(|s| s.strip_prefix("system:serviceaccount:"))
            .and_then(|s| s.split_once(':'))
        else {
            continue;
        };
        let Some(sa) = accounts.get(namespace, name) else {
            continue;
        };
        if sa.annotations.contains_key(CLIENT_ID_ANNOTATION) {
            continue;
        }
        let owner = declared.owner.as_deref().unwrap_or("an identity");
        let controller = snapshot
            .controllers
            .known()
            .into_iter()
            .flatten()
            .find(|w| w.namespace == namespace && w.service_account == name);
        let (detail, fix) = match controller {
            Some(w) => {
                let users: Vec<AzureUse<'_>> = snapshot
                    .uses()
                    .filter(|u| u.controller == w.name && *u.credential == Credential::Controller)
                    .collect();
                let relying = if users.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} use{} Azure through {} meanwhile",
                        describe_objects(&users),
                        verb_s(users.len()),
                        w.name
                    )
                };
                let credential = snapshot
                    .controller_path(&w.name)
                    .map(|p| p.credential.describe())
                    .unwrap_or_default();
                (
                    format!(
                        "{}'s ServiceAccount, which has no `{CLIENT_ID_ANNOTATION}` annotation: {} uses {credential} instead{relying}",
                        w.name, w.name
                    ),
                    super::identity_fix(snapshot, w),
                )
            }
            None => (
                format!("which has no `{CLIENT_ID_ANNOTATION}` annotation"),
                format!(
                    "annotate {} with `{CLIENT_ID_ANNOTATION}` (and `{TENANT_ID_ANNOTATION}`)",
                    sa.object_ref()
                ),
            ),
        };
        findings.add(
            sa.object_ref(),
            format!(
                "FederatedIdentityCredential {}/{} federates {} with {owner}, {detail}",
                declared.namespace,
                declared.name,
                sa.object_ref()
            ),
            fix,
        );
    }
    Ok(())
}
