//! AZF020-AZF038: controller-level workload identity. Each Flux controller that some object
//! needs (or that carries any wiring) is checked in the mode it uses: webhook (ServiceAccount
//! annotations + pod-template label, the webhook injects the rest) or manual (env vars and a
//! projected token written into the Deployment). Which credential a controller really ends up
//! with, and at which release, is the resolver's; these checks read it.

use std::collections::BTreeMap;

use super::{Area, Check, Findings, FixAction, Severity, identity_fix};
use crate::model::azure_use::{
    AzureService, WiringMode, describe_objects, has_use_label, join_words, verb_s,
};
use crate::model::{ObjectRef, Skip, Snapshot, Workload};
use crate::resolve::{
    AzureUse, ControllerCredential, ControllerWiring, Resolved, features,
    supports_workload_identity,
};
use crate::wiring::{
    AZURE_PUBLIC, CLIENT_ID_ANNOTATION, Cloud, ENV_AUTHORITY_HOST, ENV_CLIENT_ID, ENV_TENANT_ID,
    ENV_TOKEN_FILE, MANUAL_TOKEN_DIR, MANUAL_TOKEN_PATH, MANUAL_TOKEN_VOLUME, TENANT_ID_ANNOTATION,
    TOKEN_AUDIENCE, USE_LABEL, WebhookLayout, is_uuid,
};

fn controllers_known(snapshot: &Snapshot) -> Result<(), Skip> {
    if snapshot.controllers.get()?.is_empty() {
        return Err(no_controllers(snapshot));
    }
    Ok(())
}

/// The controllers worth checking: those something needs, and those with any wiring at all,
/// at a release that knows workload identity (older ones are wiring-ignored-by-version's).
/// Service accounts must be known, or every verdict would be a guess.
fn relevant(snapshot: &Resolved) -> Result<Vec<ControllerWiring<'_>>, Skip> {
    controllers_known(snapshot)?;
    snapshot.service_accounts.get()?;
    Ok(snapshot
        .wirings()
        .into_iter()
        .filter(|w| w.mode != WiringMode::None || !w.needed_by.is_empty())
        .filter(|w| supports_workload_identity(w.name(), &w.path.running) != Some(false))
        .collect())
}

fn in_mode(snapshot: &Resolved, mode: WiringMode) -> Result<Vec<ControllerWiring<'_>>, Skip> {
    Ok(relevant(snapshot)?
        .into_iter()
        .filter(|w| w.mode == mode)
        .collect())
}

fn sa_ref(wiring: &ControllerWiring<'_>) -> ObjectRef {
    ObjectRef::namespaced(
        "ServiceAccount",
        &wiring.workload.namespace,
        &wiring.workload.service_account,
    )
}

fn container_name(workload: &Workload) -> String {
    workload
        .main_container()
        .map_or_else(|| "manager".to_string(), |c| c.name.clone())
}

fn restart(workload: &Workload) -> FixAction {
    FixAction::RolloutRestart {
        target: workload.object_ref(),
    }
}

/// The cloud the controllers should authenticate against: `--cloud`, else the cloud of the
/// registries and storage accounts in use, else the public cloud.
pub fn expected_cloud(snapshot: &Resolved) -> Cloud {
    snapshot.cloud.unwrap_or_else(|| {
        snapshot
            .uses()
            .find_map(|u| u.object.url.as_deref().and_then(Cloud::by_endpoint))
            .unwrap_or(AZURE_PUBLIC)
    })
}

fn no_controllers(snapshot: &Snapshot) -> Skip {
    Skip(format!(
        "no Flux controller Deployment in namespace {}",
        snapshot.flux_namespace
    ))
}

/// Whether the controller ends at a node's managed identity with nothing of its own: no
/// workload identity, no AAD Pod Identity, no application credential.
fn only_node_identity(wiring: &ControllerWiring<'_>) -> bool {
    wiring.mode == WiringMode::None
        && matches!(
            wiring.path.credential,
            ControllerCredential::ManagedIdentity {
                pod_identity: None,
                ..
            }
        )
}

/// Other controllers that carry workload identity nothing uses: when one of them was meant
/// for these objects, this says who really serves them.
fn wired_elsewhere(snapshot: &Resolved, controller: &str) -> Option<String> {
    let idle: Vec<String> = snapshot
        .wirings()
        .into_iter()
        .filter(|w| w.name() != controller && w.mode != WiringMode::None && w.needed_by.is_empty())
        .map(|w| w.name().to_string())
        .collect();
    (!idle.is_empty()).then(|| {
        format!(
            "; workload identity is on {}, which does not serve these objects: {controller} does",
            join_words(&idle)
        )
    })
}

/// The `enable` line that completes a controller's wiring in `mode` (plus `extra`
/// arguments), where the change lasts.
fn wire_fix(snapshot: &Resolved, wiring: &ControllerWiring<'_>, mode: &str, extra: &str) -> String {
    super::fitted_fix(
        snapshot,
        &wiring.workload.labels,
        wiring.workload,
        &format!("--controllers {} --mode {mode}{extra}", wiring.name()),
    )
}

/// An env var of the controller's container set to `value`, or removed with `None`.
fn env_fix(
    snapshot: &Resolved,
    wiring: &ControllerWiring<'_>,
    name: &str,
    value: Option<&str>,
) -> String {
    super::fixes::patch_deployment(
        snapshot,
        wiring.workload,
        &super::fixes::env_patch(&container_name(wiring.workload), name, value),
    )
}

pub static AZURE_CONTROLLER_NOT_WIRED: Check = Check {
    id: "AZF020",
    name: "azure-controller-not-wired",
    area: Area::Controllers,
    severity: Severity::Error,
    title: "Objects use Azure through a controller that has no workload identity",
    healthy: "Every controller that objects reach Azure through has workload identity",
    explanation: "Objects with `provider: azure` and no `serviceAccountName` authenticate with \
the identity of the controller that reconciles them (source-controller for Git, OCI, Helm and \
Bucket sources, image-reflector-controller for ImageRepository, kustomize-controller for SOPS \
with Key Vault, notification-controller for Azure DevOps and Event Hubs providers). When that \
controller has no workload identity, Flux falls back to the node's managed identity or fails \
with `no default identity is assigned` / `missing environment variables for workload identity`. \
A controller release older than workload identity (Flux 2.0) must be upgraded first.",
    fix: "Wire the controller: webhook mode (annotate its ServiceAccount with client and tenant \
ID, label its pod template `azure.workload.identity/use: \"true\"`) where the webhook runs, \
manual mode (env vars and a projected token) elsewhere. `kubectl azflux enable` plans both; \
for the AKS Flux extension, its `workloadIdentity.*` settings.",
    run: azure_controller_not_wired,
};

/// Whether an unwired controller's ACR pulls may still work through the AKS kubelet identity:
/// on AKS, or where we cannot tell (manifests), but not on a cluster known to be elsewhere.
fn kubelet_fallback_possible(snapshot: &Snapshot) -> bool {
    snapshot.cluster.known().is_none_or(|c| c.is_aks)
}

/// The uses an unwired controller serves, split into ACR pulls that may fall back to the
/// kubelet identity and everything else.
fn unwired_uses<'a>(
    snapshot: &Snapshot,
    wiring: &ControllerWiring<'a>,
) -> (Vec<AzureUse<'a>>, Vec<AzureUse<'a>>) {
    wiring.needed_by.iter().copied().partition(|u| {
        kubelet_fallback_possible(snapshot) && u.service == AzureService::ContainerRegistry
    })
}

fn azure_controller_not_wired(
    snapshot: &Resolved,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    controllers_known(snapshot)?;
    snapshot.service_accounts.get()?;
    for wiring in snapshot.wirings() {
        if !only_node_identity(&wiring) {
            continue;
        }
        let (_, broken) = unwired_uses(snapshot, &wiring);
        if broken.is_empty() {
            continue;
        }
        let mut services: Vec<_> = broken.iter().map(|u| u.service).collect();
        services.sort();
        services.dedup();
        let services: Vec<String> = services.iter().map(ToString::to_string).collect();
        let too_old =
            supports_workload_identity(wiring.name(), &wiring.path.running) == Some(false);
        let (why, fix) = if too_old {
            let feature =
                features::workload_identity(wiring.name()).expect("too old for a feature it has");
            (
                format!(
                    "; {} {} predates workload identity, which came with {} (Flux {})",
                    wiring.name(),
                    wiring.path.running.describe(),
                    feature.since,
                    feature.flux
                ),
                format!(
                    "upgrade Flux to {} or later first, then wire it: {}",
                    feature.upgrade_to(),
                    identity_fix(snapshot, wiring.workload)
                ),
            )
        } else {
            (
                wired_elsewhere(snapshot, wiring.name()).unwrap_or_default(),
                identity_fix(snapshot, wiring.workload),
            )
        };
        findings.add(
            wiring.workload.object_ref(),
            format!(
                "{} has no workload identity, but {} use{} {} through it{why}",
                wiring.name(),
                describe_objects(&broken),
                verb_s(broken.len()),
                join_words(&services),
            ),
            fix,
        );
    }
    Ok(())
}

pub static SA_MISSING_CLIENT_ID: Check = Check {
    id: "AZF021",
    name: "sa-missing-client-id",
    area: Area::Controllers,
    severity: Severity::Error,
    title: "The controller's identity has no client ID",
    healthy: "Controller identities have a client ID",
    explanation: "Workload identity has to know which managed identity to become. In webhook \
mode that is the `azure.workload.identity/client-id` annotation on the controller's \
ServiceAccount (the webhook turns it into AZURE_CLIENT_ID); in manual mode it is the \
AZURE_CLIENT_ID env var. Without it the token exchange fails with `no client ID specified`.",
    fix: "Webhook mode: annotate the ServiceAccount with `azure.workload.identity/client-id: \
CLIENT_ID` and restart the controller. Manual mode: set AZURE_CLIENT_ID in the Deployment.",
    run: sa_missing_client_id,
};

fn sa_missing_client_id(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    for wiring in relevant(snapshot)? {
        match wiring.mode {
            WiringMode::Webhook => match wiring.service_account {
                None => {
                    findings.add(
                        sa_ref(&wiring),
                        format!(
                            "{} runs as ServiceAccount {}, which does not exist",
                            wiring.name(),
                            wiring.workload.service_account
                        ),
                        "create the ServiceAccount with the azure.workload.identity/client-id and tenant-id annotations",
                    );
                }
                Some(sa) if !sa.annotations.contains_key(CLIENT_ID_ANNOTATION) => {
                    findings
                        .add(
                            sa.object_ref(),
                            format!(
                                "{} has no `{CLIENT_ID_ANNOTATION}` annotation",
                                sa.object_ref()
                            ),
                            super::fitted_fix(
                                snapshot,
                                &sa.labels,
                                wiring.workload,
                                &format!("--controllers {} --client-id CLIENT_ID", wiring.name()),
                            ),
                        )
                        .action(FixAction::Annotate {
                            target: sa.object_ref(),
                            annotations: BTreeMap::from([(
                                CLIENT_ID_ANNOTATION.into(),
                                "CLIENT_ID".into(),
                            )]),
                        })
                        .action(restart(wiring.workload));
                }
                Some(_) => {}
            },
            WiringMode::Manual => {
                if missing_env(wiring.workload, ENV_CLIENT_ID) {
                    findings
                        .add(
                            wiring.workload.object_ref(),
                            format!(
                                "{} is wired manually but sets no {ENV_CLIENT_ID}",
                                wiring.name()
                            ),
                            wire_fix(snapshot, &wiring, "manual", " --client-id CLIENT_ID"),
                        )
                        .action(set_env(wiring.workload, ENV_CLIENT_ID, "CLIENT_ID"));
                }
            }
            WiringMode::None => {}
        }
    }
    Ok(())
}

fn missing_env(workload: &Workload, name: &str) -> bool {
    workload
        .main_container()
        .is_none_or(|c| c.env(name).is_none())
}

fn set_env(workload: &Workload, name: &str, value: &str) -> FixAction {
    FixAction::SetEnv {
        target: workload.object_ref(),
        container: container_name(workload),
        name: name.to_string(),
        value: value.to_string(),
    }
}

pub static SA_MISSING_TENANT_ID: Check = Check {
    id: "AZF022",
    name: "sa-missing-tenant-id",
    area: Area::Controllers,
    severity: Severity::Error,
    title: "The controller's identity has no tenant ID",
    healthy: "Controller identities have a tenant ID",
    explanation: "The token exchange goes to the Entra tenant of the managed identity. In webhook \
mode the `azure.workload.identity/tenant-id` annotation names it; the AKS webhook falls back to \
the cluster's own tenant when it is missing, which is wrong when the identity lives in another \
tenant (a warning). In manual mode AZURE_TENANT_ID must be set (an error). Object-level identity \
in Flux reads only the annotation and has no fallback.",
    fix: "Annotate the ServiceAccount with `azure.workload.identity/tenant-id: TENANT_ID` \
(webhook mode) or set AZURE_TENANT_ID in the Deployment (manual mode).",
    run: sa_missing_tenant_id,
};

fn sa_missing_tenant_id(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    for wiring in relevant(snapshot)? {
        match wiring.mode {
            WiringMode::Webhook => {
                let Some(sa) = wiring.service_account else {
                    continue;
                };
                if !sa.annotations.contains_key(TENANT_ID_ANNOTATION) {
                    findings
                        .add(
                            sa.object_ref(),
                            format!(
                                "no `{TENANT_ID_ANNOTATION}` annotation: the webhook uses the cluster's tenant"
                            ),
                            super::fitted_fix(
                                snapshot,
                                &sa.labels,
                                wiring.workload,
                                &format!("--controllers {} --tenant-id TENANT_ID", wiring.name()),
                            ),
                        )
                        .severity(Severity::Warning)
                        .action(FixAction::Annotate {
                            target: sa.object_ref(),
                            annotations: BTreeMap::from([(TENANT_ID_ANNOTATION.into(), "TENANT_ID".into())]),
                        });
                }
            }
            WiringMode::Manual => {
                if missing_env(wiring.workload, ENV_TENANT_ID) {
                    findings
                        .add(
                            wiring.workload.object_ref(),
                            format!(
                                "{} is wired manually but sets no {ENV_TENANT_ID}",
                                wiring.name()
                            ),
                            wire_fix(snapshot, &wiring, "manual", " --tenant-id TENANT_ID"),
                        )
                        .action(set_env(wiring.workload, ENV_TENANT_ID, "TENANT_ID"));
                }
            }
            WiringMode::None => {}
        }
    }
    Ok(())
}

pub static IDENTITY_ANNOTATION_MALFORMED: Check = Check {
    id: "AZF023",
    name: "identity-annotation-malformed",
    area: Area::Controllers,
    severity: Severity::Error,
    title: "A client or tenant ID is not a UUID",
    healthy: "Client and tenant IDs are UUIDs",
    explanation: "Client and tenant IDs are UUIDs (8-4-4-4-12 hex digits). A placeholder left \
from a guide (`managed identity client id`, `${CLIENT_ID}`), an identity's name or its resource \
ID in their place makes Entra answer AADSTS700016 or AADSTS90002.",
    fix: "Put the managed identity's client ID (`az identity show -g RG -n NAME --query clientId`) \
and its tenant ID in the annotation or env var.",
    run: identity_annotation_malformed,
};

fn identity_annotation_malformed(
    snapshot: &Resolved,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    let mut reported: Vec<String> = Vec::new();
    for wiring in relevant(snapshot)? {
        let mut values: Vec<(ObjectRef, String, &str)> = Vec::new();
        if let Some(sa) = wiring.service_account {
            for key in [CLIENT_ID_ANNOTATION, TENANT_ID_ANNOTATION] {
                if let Some(v) = sa.annotations.get(key) {
                    values.push((sa.object_ref(), format!("annotation `{key}`"), v));
                }
            }
        }
        if let Some(container) = wiring.workload.main_container() {
            for key in [ENV_CLIENT_ID, ENV_TENANT_ID] {
                if let Some(v) = container.env(key).and_then(|e| e.value.as_deref()) {
                    values.push((wiring.workload.object_ref(), format!("env {key}"), v));
                }
            }
        }
        for (subject, field, value) in values {
            if !is_uuid(value) {
                let what = if is_placeholder(value) {
                    "a placeholder left in"
                } else {
                    "not a UUID"
                };
                findings.add(
                    subject,
                    format!("{field} of {} is {value:?}, {what}", wiring.name()),
                    id_fix(
                        &field,
                        &super::fitted_fix(
                            snapshot,
                            &wiring.workload.labels,
                            wiring.workload,
                            &format!(
                                "--controllers {} {} --overwrite",
                                wiring.name(),
                                id_args(&field)
                            ),
                        ),
                    ),
                );
                reported.push(value.to_string());
            }
        }
    }
    instance_values_malformed(snapshot, &reported, findings);
    Ok(())
}

/// A live FluxInstance's patches are what the operator applies next: a placeholder in them is
/// an error even before (or without) the controllers showing it, as it is in a FluxInstance
/// file. Values the controllers already show were reported on them.
fn instance_values_malformed(
    snapshot: &Resolved,
    reported: &[String],
    findings: &mut Findings<'_>,
) {
    let Some(instance) = snapshot.flux_instance() else {
        return;
    };
    for patched in &instance.identity_values {
        if is_uuid(&patched.value) || reported.contains(&patched.value) {
            continue;
        }
        let what = if is_placeholder(&patched.value) {
            "a placeholder left in"
        } else {
            "not a UUID"
        };
        let target = if patched.target.is_empty() {
            patched.kind.clone()
        } else {
            format!("{} {}", patched.kind, patched.target)
        };
        findings.add(
            instance.object_ref(),
            format!(
                "the FluxInstance's .spec.kustomize.patches[{}] sets {} of {target} to {:?}, {what}",
                patched.patch, patched.field, patched.value
            ),
            id_fix(
                &patched.field,
                &super::flux_instance_fix(
                    snapshot,
                    &format!("--all {} --overwrite", id_args(&patched.field)),
                ),
            ),
        );
    }
}

fn is_tenant_field(field: &str) -> bool {
    field.contains("tenant") || field.contains("TENANT")
}

/// The `enable` arguments that set the ID a field holds.
fn id_args(field: &str) -> &'static str {
    if is_tenant_field(field) {
        "--tenant-id TENANT_ID"
    } else {
        "--client-id CLIENT_ID"
    }
}

/// A fix that sets an ID, with where to look the ID up above it.
fn id_fix(field: &str, fix: &str) -> String {
    let (placeholder, query) = if is_tenant_field(field) {
        ("TENANT_ID", "tenantId")
    } else {
        ("CLIENT_ID", "clientId")
    };
    super::fixes::commented(
        &format!(
            "{placeholder}: az identity show -n IDENTITY -g RESOURCE_GROUP --query {query} -o tsv"
        ),
        fix,
    )
}

/// A value copied from a guide and never filled in: `<AZURE_CLIENT_ID>`, `CLIENT_ID`.
fn is_placeholder(value: &str) -> bool {
    (value.starts_with('<') && value.ends_with('>'))
        || (!value.is_empty()
            && value
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_' || c == '-'))
}

pub static POD_LABEL_MISSING: Check = Check {
    id: "AZF024",
    name: "pod-label-missing",
    area: Area::Controllers,
    severity: Severity::Error,
    title: "The pod template lacks the azure.workload.identity/use label",
    healthy: "Webhook-wired pod templates carry the azure.workload.identity/use label",
    explanation: "Since webhook v1.0 the Azure workload identity webhook mutates only pods \
labelled `azure.workload.identity/use: \"true\"`. The label belongs on the Deployment's pod \
template (`spec.template.metadata.labels`); without it the ServiceAccount annotations do \
nothing and the controller gets no token.",
    fix: "Add the label to `spec.template.metadata.labels` of the controller Deployment (in the \
flux-system kustomization.yaml patches) and let the Deployment roll out.",
    run: pod_label_missing,
};

fn label_action(workload: &Workload) -> FixAction {
    FixAction::LabelPodTemplate {
        target: workload.object_ref(),
        labels: BTreeMap::from([(USE_LABEL.into(), "true".into())]),
    }
}

fn misplaced_label_on(wiring: &ControllerWiring<'_>) -> Vec<ObjectRef> {
    let mut places = Vec::new();
    if let Some(sa) = wiring
        .service_account
        .filter(|sa| has_use_label(&sa.labels))
    {
        places.push(sa.object_ref());
    }
    if has_use_label(&wiring.workload.labels) {
        places.push(wiring.workload.object_ref());
    }
    places
}

fn pod_label_missing(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    for wiring in in_mode(snapshot, WiringMode::Webhook)? {
        let labelled = has_use_label(&wiring.workload.template_labels);
        // A label sitting elsewhere is reported by label-on-wrong-object, with the same fix.
        if labelled || !misplaced_label_on(&wiring).is_empty() {
            continue;
        }
        let label_value = wiring.workload.template_labels.get(USE_LABEL);
        let detail = match label_value {
            Some(v) => format!("is {v:?}, not \"true\""),
            None => "is missing".to_string(),
        };
        findings
            .add(
                wiring.workload.object_ref(),
                format!(
                    "the pod template of {} has its ServiceAccount annotated, but label `{USE_LABEL}` {detail}, so the webhook will not inject the token",
                    wiring.name()
                ),
                wire_fix(snapshot, &wiring, "webhook", ""),
            )
            .action(label_action(wiring.workload));
    }
    Ok(())
}

pub static LABEL_ON_WRONG_OBJECT: Check = Check {
    id: "AZF025",
    name: "label-on-wrong-object",
    area: Area::Controllers,
    severity: Severity::Error,
    title: "The azure.workload.identity/use label is on the wrong object",
    healthy: "The azure.workload.identity/use label is on the pod template",
    explanation: "Before webhook v1.0 the label went on the ServiceAccount, and many guides still \
put it there or on the Deployment's own metadata. The webhook only looks at the pod, so a label \
on the ServiceAccount or the Deployment metadata alone leaves the pod unmutated.",
    fix: "Move the label to `spec.template.metadata.labels` of the Deployment; it can stay on the \
other object, where it does nothing.",
    run: label_on_wrong_object,
};

fn label_on_wrong_object(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    for wiring in in_mode(snapshot, WiringMode::Webhook)? {
        if has_use_label(&wiring.workload.template_labels) {
            continue;
        }
        for place in misplaced_label_on(&wiring) {
            findings
                .add(
                    place.clone(),
                    format!(
                        "`{USE_LABEL}` is a label of {place}, but the webhook reads it only from the pod template of {}",
                        wiring.name()
                    ),
                    wire_fix(snapshot, &wiring, "webhook", ""),
                )
                .action(label_action(wiring.workload));
        }
    }
    Ok(())
}

pub static POD_NOT_MUTATED: Check = Check {
    id: "AZF026",
    name: "pod-not-mutated",
    area: Area::Controllers,
    severity: Severity::Error,
    title: "A running controller pod was not mutated by the webhook",
    healthy: "Running controller pods were mutated by the webhook",
    explanation: "The webhook injects workload identity only when a pod is created. A pod that \
started before the label or annotations were added, or while the webhook was down, runs without \
AZURE_FEDERATED_TOKEN_FILE and the projected token volume (`azure-identity-token` before webhook \
v1.6.0, `azure-workload-identity-reserved-…` since), although its template is correct now.",
    fix: "Restart the controller: `kubectl rollout restart deployment/NAME -n flux-system`.",
    run: pod_not_mutated,
};

fn pod_not_mutated(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    let pods = snapshot.pods.get()?;
    for wiring in in_mode(snapshot, WiringMode::Webhook)? {
        if !has_use_label(&wiring.workload.template_labels) {
            continue;
        }
        let name = wiring.name();
        for pod in pods
            .iter()
            .filter(|p| {
                p.namespace == wiring.workload.namespace && p.matches(&wiring.workload.selector)
            })
            .filter(|p| !matches!(p.phase.as_deref(), Some("Succeeded" | "Failed")))
        {
            if !pod.has_injected_identity() {
                findings
                    .add(
                        pod.object_ref(),
                        format!(
                            "pod {} of {name} has no {ENV_TOKEN_FILE} and no projected token: it was created before the wiring (or while the webhook was down)",
                            pod.name
                        ),
                        format!("kubectl rollout restart deployment/{name} -n {}", wiring.workload.namespace),
                    )
                    .action(restart(wiring.workload));
            }
        }
    }
    Ok(())
}

/// The projected token volumes of a manually wired controller, with the mount of each in the
/// main container.
fn token_volumes(
    workload: &Workload,
) -> Vec<(&crate::model::Volume, Option<&crate::model::VolumeMount>)> {
    let container = workload.main_container();
    workload
        .volumes
        .iter()
        .filter(|v| !v.projected_tokens.is_empty())
        .map(|v| {
            (
                v,
                container.and_then(|c| c.volume_mounts.iter().find(|m| m.name == v.name)),
            )
        })
        .collect()
}

fn token_volume_action(workload: &Workload) -> FixAction {
    FixAction::AddTokenVolume {
        target: workload.object_ref(),
        container: container_name(workload),
        volume: MANUAL_TOKEN_VOLUME.into(),
        mount_path: MANUAL_TOKEN_DIR.into(),
        path: MANUAL_TOKEN_PATH.into(),
        audience: TOKEN_AUDIENCE.into(),
    }
}

pub static TOKEN_VOLUME_MISSING: Check = Check {
    id: "AZF027",
    name: "token-volume-missing",
    area: Area::Controllers,
    severity: Severity::Error,
    title: "Manual wiring has no projected service-account token mounted",
    healthy: "Manual wiring mounts a projected service-account token",
    explanation: "Without the webhook, the Deployment itself must mount a projected \
service-account token with audience `api://AzureADTokenExchange` and point \
AZURE_FEDERATED_TOKEN_FILE at it. Without the volume, or with the volume declared but not \
mounted in the controller container, the token file does not exist (`open ...: no such file or \
directory`).",
    fix: "Add a projected volume `azure-token` (serviceAccountToken, audience \
api://AzureADTokenExchange, expirationSeconds 3600, path azure-token) mounted read-only at \
/var/run/service-account.",
    run: token_volume_missing,
};

fn token_volume_missing(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    for wiring in in_mode(snapshot, WiringMode::Manual)? {
        let volumes = token_volumes(wiring.workload);
        let message = if volumes.is_empty() {
            format!(
                "{} is wired manually but has no projected service-account token volume",
                wiring.name()
            )
        } else if volumes.iter().all(|(_, mount)| mount.is_none()) {
            let names: Vec<&str> = volumes.iter().map(|(v, _)| v.name.as_str()).collect();
            format!(
                "{} declares the token volume {} but does not mount it in container {}",
                wiring.name(),
                names.join(", "),
                container_name(wiring.workload)
            )
        } else {
            continue;
        };
        findings
            .add(
                wiring.workload.object_ref(),
                message,
                wire_fix(snapshot, &wiring, "manual", ""),
            )
            .action(token_volume_action(wiring.workload));
    }
    Ok(())
}

pub static TOKEN_AUDIENCE_MISMATCH: Check = Check {
    id: "AZF028",
    name: "token-audience-mismatch",
    area: Area::Controllers,
    severity: Severity::Error,
    title: "The projected token's audience is not api://AzureADTokenExchange",
    healthy: "Projected tokens have the audience api://AzureADTokenExchange",
    explanation: "Entra ID accepts a federated token only if its audience matches the federated \
credential's, which is `api://AzureADTokenExchange`. A projected token with no audience (the API \
server's own) or another one is refused with AADSTS70021.",
    fix: "Set `audience: api://AzureADTokenExchange` on the serviceAccountToken source of the \
projected volume.",
    run: token_audience_mismatch,
};

fn token_audience_mismatch(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    for wiring in in_mode(snapshot, WiringMode::Manual)? {
        for (volume, _) in token_volumes(wiring.workload) {
            for token in &volume.projected_tokens {
                if token.audience.as_deref() != Some(TOKEN_AUDIENCE) {
                    let found = token
                        .audience
                        .as_deref()
                        .unwrap_or("(none: the API server's audience)");
                    findings.add(
                        wiring.workload.object_ref(),
                        format!(
                            "projected token {}/{} of {} has audience {found}, expected {TOKEN_AUDIENCE}",
                            volume.name,
                            token.path,
                            wiring.name()
                        ),
                        wire_fix(snapshot, &wiring, "manual", " --overwrite"),
                    );
                }
            }
        }
    }
    Ok(())
}

pub static TOKEN_PATH_MISMATCH: Check = Check {
    id: "AZF029",
    name: "token-path-mismatch",
    area: Area::Controllers,
    severity: Severity::Error,
    title: "AZURE_FEDERATED_TOKEN_FILE does not point at the projected token",
    healthy: "AZURE_FEDERATED_TOKEN_FILE points at the projected token",
    explanation: "The Azure SDK in the controller reads the token from the file named by \
AZURE_FEDERATED_TOKEN_FILE. With manual wiring it has to be the volume's mountPath joined with \
the token's `path` (for the documented setup: /var/run/service-account/azure-token). With the \
webhook, the webhook sets it, but only when the container does not set it itself \
(Azure/azure-workload-identity `pkg/webhook/webhook.go`, `addEnvironmentVariables`), and where \
the token lands depends on its release: /var/run/secrets/azure/tokens/azure-identity-token up \
to v1.5.x, /var/run/secrets/azure/wi/token/azure-identity-token from v1.6.0 (`pkg/webhook/\
consts.go` at tag v1.6.0). A template that copies the path from an older pod keeps working only \
until the webhook is upgraded; the running pods show which layout the installed webhook uses. A \
mismatch gives `no such file or directory` at every reconcile.",
    fix: "Manual wiring: set AZURE_FEDERATED_TOKEN_FILE to MOUNT_PATH/PATH of the projected \
token, e.g. /var/run/service-account/azure-token. Webhook: remove AZURE_FEDERATED_TOKEN_FILE from \
the pod template and let the webhook set it.",
    run: token_path_mismatch,
};

/// Webhook mode: a template that sets AZURE_FEDERATED_TOKEN_FILE itself keeps its value after
/// mutation, so it has to be where the installed webhook release mounts the token.
fn webhook_token_path(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    let observed = snapshot.webhook_layout();
    for wiring in in_mode(snapshot, WiringMode::Webhook)? {
        let workload = wiring.workload;
        if !has_use_label(&workload.template_labels) {
            continue;
        }
        let Some(path) = workload
            .main_container()
            .and_then(|c| c.env(ENV_TOKEN_FILE))
            .and_then(|e| e.value.as_deref())
        else {
            continue;
        };
        // A template that projects a token of its own at that path does not rely on the webhook.
        let own = token_volumes(workload).iter().any(|(volume, mount)| {
            mount.is_some_and(|m| {
                volume
                    .projected_tokens
                    .iter()
                    .any(|t| format!("{}/{}", m.mount_path.trim_end_matches('/'), t.path) == path)
            })
        });
        if own {
            continue;
        }
        let name = wiring.name();
        let fix = env_fix(snapshot, &wiring, ENV_TOKEN_FILE, None);
        let pinned = WebhookLayout::of_token_file(path);
        let (severity, message) = match (pinned, observed) {
            (Some(pinned), Some(observed)) if pinned == observed => (
                Severity::Warning,
                format!(
                    "{name} sets {ENV_TOKEN_FILE}={path} in its pod template: right for the installed webhook ({}), but the webhook keeps a value the template sets, so the token is not found once it is upgraded ({} mounts it at {})",
                    pinned.releases(),
                    WebhookLayout::Reserved.releases(),
                    WebhookLayout::Reserved.token_file()
                ),
            ),
            (Some(pinned), Some(observed)) => (
                Severity::Error,
                format!(
                    "{name} sets {ENV_TOKEN_FILE}={path}, where {} mounted the token, but the pods show the installed webhook is {}, which mounts it at {} and keeps the template's value: no such file",
                    pinned.releases(),
                    observed.releases(),
                    observed.token_file()
                ),
            ),
            (Some(pinned), None) => (
                Severity::Warning,
                format!(
                    "{name} sets {ENV_TOKEN_FILE}={path} in its pod template, the path of {} only; the webhook keeps a value the template sets, and {} mounts the token at {}",
                    pinned.releases(),
                    WebhookLayout::Reserved.releases(),
                    WebhookLayout::Reserved.token_file()
                ),
            ),
            (None, _) => (
                Severity::Error,
                format!(
                    "{name} sets {ENV_TOKEN_FILE}={path}, where no webhook release mounts the token ({} up to v1.5.x, {} from v1.6.0), and the webhook keeps a value the template sets: no such file",
                    WebhookLayout::Tokens.token_file(),
                    WebhookLayout::Reserved.token_file()
                ),
            ),
        };
        findings
            .add(workload.object_ref(), message, fix)
            .severity(severity);
    }
    Ok(())
}

fn token_path_mismatch(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    webhook_token_path(snapshot, findings)?;
    for wiring in in_mode(snapshot, WiringMode::Manual)? {
        let candidates: Vec<String> = token_volumes(wiring.workload)
            .iter()
            .filter_map(|(volume, mount)| mount.map(|m| (volume, m)))
            .flat_map(|(volume, mount)| {
                volume
                    .projected_tokens
                    .iter()
                    .map(move |t| match &mount.sub_path {
                        Some(sub) if sub == &t.path => mount.mount_path.clone(),
                        Some(_) => String::new(),
                        None => format!("{}/{}", mount.mount_path.trim_end_matches('/'), t.path),
                    })
            })
            .filter(|p| !p.is_empty())
            .collect();
        let Some(expected) = candidates.first() else {
            // No mounted token: token-volume-missing says so.
            continue;
        };
        let env = wiring
            .workload
            .main_container()
            .and_then(|c| c.env(ENV_TOKEN_FILE));
        match env.and_then(|e| e.value.as_deref()) {
            Some(path) if candidates.iter().any(|c| c == path) => {}
            Some(path) => {
                findings
                    .add(
                        wiring.workload.object_ref(),
                        format!(
                            "{ENV_TOKEN_FILE} of {} is {path}, but the projected token is mounted at {expected}{}",
                            wiring.name(),
                            WebhookLayout::of_token_file(path).map_or_else(String::new, |l| format!(
                                " ({path} is where {} mount the token of pods they mutate; manual wiring has no webhook)",
                                l.releases()
                            ))
                        ),
                        env_fix(snapshot, &wiring, ENV_TOKEN_FILE, Some(expected)),
                    )
                    .action(set_env(wiring.workload, ENV_TOKEN_FILE, expected));
            }
            None if env.is_some_and(|e| e.from_ref) => {}
            None => {
                findings
                    .add(
                        wiring.workload.object_ref(),
                        format!("{} mounts a projected token at {expected} but does not set {ENV_TOKEN_FILE}", wiring.name()),
                        env_fix(snapshot, &wiring, ENV_TOKEN_FILE, Some(expected)),
                    )
                    .action(set_env(wiring.workload, ENV_TOKEN_FILE, expected));
            }
        }
    }
    Ok(())
}

pub static AUTHORITY_HOST_MISMATCH: Check = Check {
    id: "AZF030",
    name: "authority-host-mismatch",
    area: Area::Controllers,
    severity: Severity::Error,
    title: "AZURE_AUTHORITY_HOST is missing or belongs to another cloud",
    healthy: "AZURE_AUTHORITY_HOST belongs to the cloud in use",
    explanation: "Manual wiring must tell the SDK where Entra ID is: \
https://login.microsoftonline.com/ for the public cloud, https://login.microsoftonline.us/ for \
US Government, https://login.chinacloudapi.cn/ for China. The webhook sets it on its own; by hand \
it is easy to forget or to copy from another cloud, and the exchange then fails or goes to the \
wrong tenant directory.",
    fix: "Set AZURE_AUTHORITY_HOST to the authority host of the cloud in use (`--cloud` chooses it \
when the registry suffix does not tell).",
    run: authority_host_mismatch,
};

fn authority_host_mismatch(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    let cloud = expected_cloud(snapshot);
    for wiring in in_mode(snapshot, WiringMode::Manual)? {
        let env = wiring
            .workload
            .main_container()
            .and_then(|c| c.env(ENV_AUTHORITY_HOST));
        let message = match env.and_then(|e| e.value.as_deref()) {
            None if env.is_some_and(|e| e.from_ref) => continue,
            None => format!(
                "{} is wired manually but sets no {ENV_AUTHORITY_HOST}",
                wiring.name()
            ),
            Some(host) => match Cloud::by_authority_host(host) {
                Some(found) if found == cloud => continue,
                Some(found) => format!(
                    "{ENV_AUTHORITY_HOST} of {} is {host} ({}), but the endpoints in use are in {}",
                    wiring.name(),
                    found.name,
                    cloud.name
                ),
                None => format!(
                    "{ENV_AUTHORITY_HOST} of {} is {host}, not the authority of any Azure cloud",
                    wiring.name()
                ),
            },
        };
        findings
            .add(
                wiring.workload.object_ref(),
                message,
                wire_fix(
                    snapshot,
                    &wiring,
                    "manual",
                    &format!(" --cloud {} --overwrite", cloud.name),
                ),
            )
            .action(set_env(
                wiring.workload,
                ENV_AUTHORITY_HOST,
                cloud.authority_host,
            ));
    }
    Ok(())
}

pub static LEGACY_AAD_POD_IDENTITY: Check = Check {
    id: "AZF031",
    name: "legacy-aad-pod-identity",
    area: Area::Controllers,
    severity: Severity::Warning,
    title: "A controller or a workload Flux depends on uses AAD Pod Identity",
    healthy: "Nothing Flux depends on uses AAD Pod Identity",
    explanation: "AAD Pod Identity (the `aadpodidbinding` pod label and its AzureIdentityBinding) \
was deprecated in 2022 and is not supported on current AKS. Its NMI answers a pod's managed \
identity (IMDS) requests. kustomize-controller before v1.0.0-rc.1 (Flux 0.x) reaches IMDS for Key \
Vault only with `AZURE_AUTH_METHOD=msi`; without it SOPS runs the Azure CLI, which its image \
lacks (`Invoking Azure CLI failed`). From v1.0.0-rc.1 `AZURE_AUTH_METHOD` is not read at all and \
workload identity, when wired, comes before the managed identity. A credential-sync workload \
that refreshes a Flux object's registry Secret through pod identity stops with it.",
    fix: "Upgrade Flux to 2.0 or later if it is older, then wire workload identity \
(`kubectl azflux enable`) and remove the `aadpodidbinding` label and AZURE_AUTH_METHOD. For a \
credential sync: set `provider: azure` on the objects and drop the sync.",
    run: legacy_aad_pod_identity,
};

/// Flux objects that read a Secret a workload fills: the workload's env or envFrom ConfigMaps
/// name the Secret (how credential syncs are configured).
fn fed_objects<'a>(
    snapshot: &'a Snapshot,
    workload: &Workload,
) -> Vec<(&'a crate::model::FluxObject, String)> {
    let mut values: Vec<String> = workload
        .env_from_config_maps
        .iter()
        .filter_map(|cm| snapshot.config_map(&workload.namespace, cm))
        .flat_map(|cm| cm.data.values().cloned())
        .collect();
    values.extend(
        workload
            .containers
            .iter()
            .flat_map(|c| &c.env)
            .filter_map(|e| e.value.clone()),
    );
    snapshot
        .flux
        .objects
        .iter()
        .filter(|o| o.namespace == workload.namespace)
        .filter_map(|o| {
            let secret = o.secret_ref.as_ref()?;
            values
                .iter()
                .any(|v| v == secret)
                .then(|| (o, secret.clone()))
        })
        .collect()
}

fn binding_of(snapshot: &Snapshot, namespace: &str, selector: &str) -> String {
    snapshot
        .pod_identity_bindings
        .iter()
        .find(|b| b.namespace == namespace && b.selector == selector)
        .map_or_else(
            || format!("binding {selector}"),
            |b| match &b.client_id {
                Some(id) => format!(
                    "AzureIdentityBinding {}, identity {} ({id})",
                    b.name, b.identity
                ),
                None => format!("AzureIdentityBinding {}, identity {}", b.name, b.identity),
            },
        )
}

/// AAD Pod Identity installed (its Helm chart) by a Kustomization that itself needs the
/// controller's pod identity: on a new cluster that Kustomization cannot decrypt, so it never
/// applies what would let it.
fn self_installed_pod_identity(
    snapshot: &Resolved,
    wiring: &crate::resolve::ControllerWiring<'_>,
) -> String {
    let users: Vec<String> = wiring
        .needed_by
        .iter()
        .filter(|u| u.object.kind == Some(crate::model::FluxKind::Kustomization))
        .map(|u| format!("{}/{}", u.object.namespace, u.object.name))
        .collect();
    snapshot
        .flux
        .objects
        .iter()
        .find(|o| {
            o.chart.as_deref() == Some("aad-pod-identity")
                && o.applied_by().is_some_and(|k| users.contains(&k))
        })
        .map(|release| {
            format!(
                ". AAD Pod Identity itself ({}) is applied by Kustomization {}, which needs it to decrypt: on a new cluster that Kustomization fails before it installs it, unless the node itself has the identity",
                release.object_ref(),
                release.applied_by().unwrap_or_default()
            )
        })
        .unwrap_or_default()
}

fn legacy_aad_pod_identity(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    snapshot.controllers.get()?;
    for wiring in snapshot.wirings() {
        let path = wiring.path;
        let name = wiring.name();
        let running = path.running.describe();
        let auth_method = wiring
            .workload
            .main_container()
            .and_then(|c| c.env(crate::wiring::ENV_AUTH_METHOD))
            .map(|e| e.value.clone().unwrap_or_default());
        let uses = if wiring.needed_by.is_empty() {
            "nothing uses Azure through it".to_string()
        } else {
            format!(
                "{} rel{} on it",
                describe_objects(&wiring.needed_by),
                if wiring.needed_by.len() == 1 {
                    "ies"
                } else {
                    "y"
                }
            )
        };
        let too_old = supports_workload_identity(name, &path.running) == Some(false);
        let mut steps: Vec<String> = features::workload_identity(name)
            .filter(|_| too_old)
            .map(|f| super::fixes::upgrade_flux(snapshot, wiring.workload, f.upgrade_to()))
            .into_iter()
            .collect();
        steps.push(identity_fix(snapshot, wiring.workload));
        steps.push(pod_identity_removal(
            snapshot,
            &wiring,
            auth_method.is_some(),
        ));
        let migrate = super::fixes::steps(&steps);
        match (&path.credential, &path.pod_identity) {
            (
                ControllerCredential::ManagedIdentity {
                    pod_identity: Some(selector),
                    ..
                },
                _,
            ) => {
                let binding = binding_of(snapshot, &wiring.workload.namespace, selector);
                let how = match auth_method.as_deref() {
                    Some("msi") if too_old => ", AZURE_AUTH_METHOD=msi".to_string(),
                    Some(_) if !too_old => {
                        "; its AZURE_AUTH_METHOD is not read by this release".to_string()
                    }
                    _ => String::new(),
                };
                let bootstrap = self_installed_pod_identity(snapshot, &wiring);
                findings.add(
                    wiring.workload.object_ref(),
                    format!("{name} {running} authenticates to Azure through AAD Pod Identity ({binding}{how}), deprecated and not supported on current AKS; {uses}{bootstrap}"),
                    migrate,
                );
            }
            (ControllerCredential::AzureCli, Some(selector)) => {
                findings
                    .add(
                        wiring.workload.object_ref(),
                        format!("{name} {running} has the AAD Pod Identity label (binding {selector}) but no AZURE_AUTH_METHOD=msi: SOPS runs the Azure CLI, which the image lacks, so every Key Vault decryption fails with `Invoking Azure CLI failed`; {uses}"),
                        migrate,
                    )
                    .severity(Severity::Error);
            }
            (_, Some(selector)) => {
                findings
                    .add(
                        wiring.workload.object_ref(),
                        format!("{name} {running} still carries the AAD Pod Identity label (binding {selector}); it is inert: {} comes first", path.credential.describe()),
                        pod_identity_removal(snapshot, &wiring, false),
                    )
                    .severity(Severity::Info);
            }
            (_, None) if auth_method.is_some() && !too_old => {
                findings
                    .add(
                        wiring.workload.object_ref(),
                        format!("{name} {running} sets AZURE_AUTH_METHOD, which it does not read (only kustomize-controller before v1.0.0-rc.1 did): it uses {}", path.credential.describe()),
                        env_fix(snapshot, &wiring, crate::wiring::ENV_AUTH_METHOD, None),
                    )
                    .severity(Severity::Info);
            }
            _ => {}
        }
    }
    pod_identity_feeders(snapshot, findings);
    Ok(())
}

/// The patch that takes AAD Pod Identity off a controller: its pod template's binding label,
/// and AZURE_AUTH_METHOD where it is set.
fn pod_identity_removal(
    snapshot: &Resolved,
    wiring: &ControllerWiring<'_>,
    auth_method: bool,
) -> String {
    let mut patch = serde_json::json!({"spec": {"template": {"metadata": {"labels": {
        crate::wiring::POD_IDENTITY_LABEL: null
    }}}}});
    if auth_method {
        let env = super::fixes::env_patch(
            &container_name(wiring.workload),
            crate::wiring::ENV_AUTH_METHOD,
            None,
        );
        patch["spec"]["template"]["spec"] = env["spec"]["template"]["spec"].clone();
    }
    super::fixes::patch_deployment(snapshot, wiring.workload, &patch)
}

/// Flux logging in itself in place of a workload that refreshes the object's Secret: the
/// object with `provider: azure` and no secretRef, its controller wired, the workload removed.
fn feeder_removal(
    snapshot: &Resolved,
    workload: &Workload,
    object: &crate::model::FluxObject,
) -> String {
    let controller = object
        .kind
        .map(crate::model::azure_use::controller_for)
        .and_then(|name| snapshot.controller(name));
    let mut steps = vec![super::fixes::merge_patch(
        snapshot,
        &super::fixes::flux_target(object),
        &serde_json::json!({"spec": {"provider": "azure", "secretRef": null}}),
    )];
    steps.extend(controller.map(|c| identity_fix(snapshot, c)));
    steps.push(if snapshot.source.is_live() && crate::plan::reconciler(&workload.labels).is_none() {
        super::fixes::command(&[
            "kubectl",
            "delete",
            "deployment",
            &workload.name,
            "-n",
            &workload.namespace,
        ])
    } else {
        super::fixes::commented(
            &format!(
                "take Deployment {}/{} out of the manifests too: Flux prunes it, or this deletes it",
                workload.namespace, workload.name
            ),
            &format!("kubectl delete deployment {} -n {}", workload.name, workload.namespace),
        )
    });
    super::fixes::steps(&steps)
}

/// Workloads that refresh a Flux object's Secret through AAD Pod Identity.
fn pod_identity_feeders(snapshot: &Resolved, findings: &mut Findings<'_>) {
    for workload in snapshot.workloads.known().into_iter().flatten() {
        let Some(selector) = workload
            .template_labels
            .get(crate::wiring::POD_IDENTITY_LABEL)
        else {
            continue;
        };
        for (object, secret) in fed_objects(snapshot, workload) {
            findings.add(
                workload.object_ref(),
                format!(
                    "{} refreshes Secret {secret}, which {} authenticates with, through AAD Pod Identity ({}), deprecated and not supported on current AKS",
                    workload.object_ref(),
                    object.object_ref(),
                    binding_of(snapshot, &workload.namespace, selector)
                ),
                feeder_removal(snapshot, workload, object),
            );
        }
    }
}

pub static CONTROLLER_IDENTITY_UNUSED: Check = Check {
    id: "AZF032",
    name: "controller-identity-unused",
    area: Area::Controllers,
    severity: Severity::Info,
    title: "A controller is wired for Azure but nothing uses its identity",
    healthy: "Every controller identity serves some object",
    explanation: "The controller carries workload identity wiring, but no Flux object \
authenticates to Azure through it (none has `provider: azure` without its own \
`serviceAccountName`, no Kustomization decrypts with Key Vault through it). This is harmless, \
but the identity's roles are granted for nothing. Often another controller serves the objects \
the wiring was meant for (OCI HelmRepositories are pulled by source-controller, not \
helm-controller).",
    fix: "Nothing is broken. Remove the wiring (and the identity's role assignments) if no \
object will need it, or move it to the controller that serves the objects.",
    run: controller_identity_unused,
};

fn controller_identity_unused(
    snapshot: &Resolved,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    snapshot.flux.complete()?;
    for wiring in relevant(snapshot)? {
        if wiring.mode == WiringMode::None || !wiring.needed_by.is_empty() {
            continue;
        }
        // A Secret that overrides the identity is reported, with the identity, as such.
        if snapshot
            .uses()
            .any(|u| u.controller == wiring.name() && u.path.bypasses.is_some())
        {
            continue;
        }
        let needing: Vec<String> = snapshot
            .wirings()
            .into_iter()
            .filter(|w| {
                w.name() != wiring.name() && only_node_identity(w) && !w.needed_by.is_empty()
            })
            .map(|w| format!("{} ({})", w.name(), describe_objects(&w.needed_by)))
            .collect();
        let hint = if needing.is_empty() {
            String::new()
        } else {
            format!(
                "; the objects that need an identity are served by {}",
                join_words(&needing)
            )
        };
        findings.add(
            wiring.workload.object_ref(),
            format!(
                "{} is wired for workload identity ({} mode), but no Flux object uses Azure through it{hint}",
                wiring.name(),
                wiring.mode
            ),
            "",
        );
    }
    Ok(())
}

pub static KUBELET_IDENTITY_FALLBACK: Check = Check {
    id: "AZF033",
    name: "kubelet-identity-fallback",
    area: Area::Controllers,
    severity: Severity::Warning,
    title: "ACR objects rely on the AKS kubelet identity",
    healthy: "No ACR object relies on the AKS kubelet identity",
    explanation: "On AKS, an ACR-backed object with `provider: azure` whose controller has no \
workload identity authenticates with the node's kubelet managed identity over IMDS (what the \
AKS Flux extension's `useKubeletIdentity` does). It works only if that identity has AcrPull on \
the registry, and when the node pool carries several user-assigned identities IMDS needs to be \
told which: AZURE_CLIENT_ID on the controller. Anything other than ACR does not work this way.",
    fix: "Keep it if intended (grant the kubelet identity AcrPull; set AZURE_CLIENT_ID when the \
nodes have several identities), or wire the controller with its own identity: `kubectl azflux \
enable --controllers NAME`.",
    run: kubelet_identity_fallback,
};

fn kubelet_identity_fallback(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    controllers_known(snapshot)?;
    snapshot.service_accounts.get()?;
    for wiring in snapshot.wirings() {
        if !only_node_identity(&wiring) {
            continue;
        }
        let (acr, _) = unwired_uses(snapshot, &wiring);
        if acr.is_empty() {
            continue;
        }
        let where_ = if snapshot.cluster.known().is_some() {
            "on this AKS cluster"
        } else {
            "if this runs on AKS"
        };
        let picked = match &wiring.path.credential {
            ControllerCredential::ManagedIdentity {
                client_id: Some(id),
                ..
            } => {
                format!(" (AZURE_CLIENT_ID {id} picks the node identity)")
            }
            _ => ", and AZURE_CLIENT_ID if the nodes have several".to_string(),
        };
        // The extension has a switch of its own for the kubelet identity.
        let kubelet = if super::owned_by_aks_extension(&wiring.workload.labels)
            || super::owned_by_aks_extension(&wiring.workload.template_labels)
        {
            "; to keep it, grant it AcrPull and set the extension's useKubeletIdentity=true; the fix gives the controllers an identity of their own"
        } else {
            ""
        };
        findings.add(
            wiring.workload.object_ref(),
            format!(
                "{} pull{} from Azure Container Registry through {}, which has no workload identity: {where_} that is the kubelet identity, which needs AcrPull{picked}{kubelet}",
                describe_objects(&acr),
                verb_s(acr.len()),
                wiring.name()
            ),
            identity_fix(snapshot, wiring.workload),
        );
    }
    Ok(())
}

pub static WIRING_IGNORED_BY_VERSION: Check = Check {
    id: "AZF034",
    name: "wiring-ignored-by-version",
    area: Area::Controllers,
    severity: Severity::Error,
    title: "A controller is wired for workload identity its release does not have",
    healthy: "Controller releases read the workload identity they are wired with",
    explanation: "Workload identity arrived with source- and kustomize-controller v1.0.0-rc.1 \
and image-reflector-controller v0.27.0 (Flux 2.0), image-automation-controller v0.39.0 (Flux \
2.4) and notification-controller v1.6.0 (Flux 2.6). An older controller ignores the annotations, \
label and env vars: its Azure SDK has no workload identity credential, so it goes on to a \
managed identity over IMDS (the node's, or AAD Pod Identity's) and the wiring looks right while \
nothing uses it.",
    fix: "Upgrade Flux to the release named first; the wiring then takes effect (restart the \
controller). Until then keep what this release supports.",
    run: wiring_ignored_by_version,
};

fn wiring_ignored_by_version(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    controllers_known(snapshot)?;
    for wiring in snapshot.wirings() {
        if wiring.mode == WiringMode::None
            || supports_workload_identity(wiring.name(), &wiring.path.running) != Some(false)
        {
            continue;
        }
        let Some(feature) = features::workload_identity(wiring.name()) else {
            continue;
        };
        findings.add(
            wiring.workload.object_ref(),
            format!(
                "{} {} is wired for workload identity ({} mode), which it does not have (it came with {} {}, Flux {}): it uses {}",
                wiring.name(),
                wiring.path.running.describe(),
                wiring.mode,
                feature.controller,
                feature.since,
                feature.flux,
                wiring.path.credential.describe()
            ),
            super::fixes::upgrade_flux(snapshot, wiring.workload, feature.upgrade_to()),
        );
    }
    Ok(())
}

pub static CONTROLLER_WILL_NOT_START: Check = Check {
    id: "AZF035",
    name: "controller-will-not-start",
    area: Area::Controllers,
    severity: Severity::Error,
    title: "A controller's flags make it exit at start",
    healthy: "Controller flags let them start",
    explanation: "image-reflector-controller v1.0.0 (Flux 2.7) removed `--azure-autologin-for-acr`; \
the flag parser then rejects it (`unknown flag`) and the container exits. From Flux 2.7 every \
controller also refuses to start with a `--default-*-service-account` lockdown flag but without \
`--feature-gates=ObjectLevelWorkloadIdentity=true` (`cannot set default service accounts when \
the feature gate ObjectLevelWorkloadIdentity is not enabled`). Nothing it reconciles moves.",
    fix: "Remove the removed flag (set `provider: azure` on the ImageRepositories instead), or add \
the feature gate next to the lockdown flag.",
    run: controller_will_not_start,
};

fn controller_will_not_start(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    controllers_known(snapshot)?;
    for wiring in snapshot.wirings() {
        if let Some(why) = &wiring.path.start_failure {
            findings.add(
                wiring.workload.object_ref(),
                format!(
                    "{} {} does not start: {why}",
                    wiring.name(),
                    wiring.path.running.describe()
                ),
                if why.contains(crate::resolve::AUTOLOGIN_FLAG) {
                    autologin_removal(snapshot, wiring.workload)
                } else {
                    super::controller_command(
                        snapshot,
                        wiring.workload,
                        &format!("--object-level --controllers {}", wiring.name()),
                    )
                },
            );
        }
    }
    Ok(())
}

/// The pod annotation AKS identity bindings add (azure-workload-identity webhook v1.6.0 with
/// the custom token endpoint), and the audience of the token it then projects.
pub const IDENTITY_BINDING_ANNOTATION: &str = "azure.workload.identity/use-identity-binding";
pub const IDENTITY_BINDING_AUDIENCE: &str = "api://AKSIdentityBinding";

pub static IDENTITY_BINDING_UNSUPPORTED: Check = Check {
    id: "AZF036",
    name: "identity-binding-unsupported",
    area: Area::Controllers,
    severity: Severity::Error,
    title: "A Flux controller is set up for AKS identity bindings, which Flux does not support",
    healthy: "No Flux controller is set up for AKS identity bindings",
    explanation: "With `azure.workload.identity/use-identity-binding: \"true\"` on the pod, the \
webhook (v1.6.0) projects the token with audience `api://AKSIdentityBinding` and points the pod \
at a token proxy. Flux's Azure SDK never opts in to the proxy (`EnableAzureTokenProxy`), so it \
sends that token straight to Entra ID, which refuses it: the federated credential expects \
`api://AzureADTokenExchange`. Identity bindings lift the 20-credential limit for apps; Flux \
needs a federated credential per ServiceAccount.",
    fix: "Remove the annotation (or the `api://AKSIdentityBinding` audience) from the controller \
and give its ServiceAccount a federated credential (`kubectl azflux enable --federate`).",
    run: identity_binding_unsupported,
};

fn identity_binding_unsupported(
    snapshot: &Resolved,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    controllers_known(snapshot)?;
    for workload in snapshot.controllers.get()? {
        let annotated = workload
            .template_annotations
            .get(IDENTITY_BINDING_ANNOTATION)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let audience = workload.volumes.iter().any(|v| {
            v.projected_tokens
                .iter()
                .any(|t| t.audience.as_deref() == Some(IDENTITY_BINDING_AUDIENCE))
        });
        if annotated || audience {
            let how = if annotated {
                format!("its pod template has `{IDENTITY_BINDING_ANNOTATION}: \"true\"`")
            } else {
                format!("it projects a token with audience {IDENTITY_BINDING_AUDIENCE}")
            };
            findings.add(
                workload.object_ref(),
                format!("{} is set up for AKS identity bindings ({how}): Flux does not support them, Entra ID refuses the {IDENTITY_BINDING_AUDIENCE} token it would present", workload.name),
                {
                    let mut steps = Vec::new();
                    if annotated {
                        steps.push(super::fixes::patch_deployment(snapshot, workload, &template_annotations(&[(IDENTITY_BINDING_ANNOTATION, None)])));
                    }
                    steps.push(identity_fix(snapshot, workload));
                    super::fixes::steps(&steps)
                },
            );
        }
    }
    Ok(())
}

/// Webhook settings that are pod annotations (azure-workload-identity pkg/webhook/consts.go);
/// as labels the webhook never reads them.
const WEBHOOK_ANNOTATIONS: [&str; 5] = [
    "azure.workload.identity/inject-proxy-sidecar",
    "azure.workload.identity/proxy-sidecar-port",
    "azure.workload.identity/skip-containers",
    "azure.workload.identity/service-account-token-expiration",
    IDENTITY_BINDING_ANNOTATION,
];

pub static PATCH_MISPLACED_FIELD: Check = Check {
    id: "AZF037",
    name: "patch-misplaced-field",
    area: Area::Controllers,
    severity: Severity::Error,
    title: "A patch put a field where the API or the webhook does not read it",
    healthy: "Patched fields are where the API and the webhook read them",
    explanation: "A kustomize patch that writes `containers` (or `env`) under a Deployment's `spec` \
instead of `spec.template.spec` produces a field the Deployment API does not have: the API server \
refuses the object, so the Kustomization that applies the controllers fails, and the env var \
never reaches the container. The webhook's settings (`inject-proxy-sidecar`, `skip-containers`, \
`service-account-token-expiration`, ...) are pod annotations; given as labels they do nothing.",
    fix: "Move the field to `spec.template.spec.containers[]` (or `spec.template.metadata.annotations` \
for webhook settings).",
    run: patch_misplaced_field,
};

fn patch_misplaced_field(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    controllers_known(snapshot)?;
    for workload in snapshot.controllers.get()? {
        for field in &workload.unknown_fields {
            findings.add(
                workload.object_ref(),
                format!("{} has `{field}`, which a Deployment does not have: the API server refuses the object (`field not declared in schema`), so the Kustomization that applies it fails", workload.object_ref()),
                misplaced_field_fix(workload, field),
            );
        }
        for key in WEBHOOK_ANNOTATIONS {
            if workload.template_labels.contains_key(key) || workload.labels.contains_key(key) {
                findings
                    .add(
                        workload.object_ref(),
                        format!("`{key}` is a label on {}, but the webhook reads it only as a pod annotation: it does nothing", workload.name),
                        {
                            let value = workload.template_labels.get(key).or_else(|| workload.labels.get(key)).cloned().unwrap_or_default();
                            let mut patch = template_annotations(&[(key, Some(&value))]);
                            let labels = serde_json::json!({ key: null });
                            if workload.template_labels.contains_key(key) {
                                patch["spec"]["template"]["metadata"]["labels"] = labels.clone();
                            }
                            if workload.labels.contains_key(key) {
                                patch["metadata"] = serde_json::json!({ "labels": labels });
                            }
                            super::fixes::patch_deployment(snapshot, workload, &patch)
                        },
                    )
                    .severity(Severity::Warning);
            }
        }
    }
    Ok(())
}

/// A Deployment patch setting pod template annotations, or removing them with `None`.
fn template_annotations(annotations: &[(&str, Option<&str>)]) -> serde_json::Value {
    let annotations: serde_json::Map<String, serde_json::Value> = annotations
        .iter()
        .map(|(key, value)| {
            (
                (*key).to_string(),
                value.map_or(serde_json::Value::Null, Into::into),
            )
        })
        .collect();
    serde_json::json!({"spec": {"template": {"metadata": {"annotations": annotations}}}})
}

/// Where a field a patch put under a Deployment's `spec` belongs, as the YAML to write in
/// that patch instead.
fn misplaced_field_fix(workload: &Workload, field: &str) -> String {
    let key = field.rsplit('.').next().unwrap_or(field);
    super::fixes::commented(
        &format!(
            "in the patch of Deployment {}/{}: what it sets as `{field}` goes under spec.template.spec",
            workload.namespace, workload.name
        ),
        &format!("spec:\n  template:\n    spec:\n      {key}: []"),
    )
}

/// The JSON patch that takes the removed autologin flag out of the container's args.
fn autologin_removal(snapshot: &Resolved, workload: &Workload) -> String {
    let operations: Vec<serde_json::Value> = workload
        .containers
        .iter()
        .enumerate()
        .flat_map(|(c, container)| {
            container
                .args
                .iter()
                .enumerate()
                .filter(|(_, arg)| arg.starts_with(crate::resolve::AUTOLOGIN_FLAG))
                .map(move |(a, _)| (c, a))
        })
        // Later args first, so each index still points at its flag when it is removed.
        .rev()
        .map(|(c, a)| {
            serde_json::json!({"op": "remove", "path": format!("/spec/template/spec/containers/{c}/args/{a}")})
        })
        .collect();
    super::fixes::json_patch_deployment(snapshot, workload, &serde_json::Value::Array(operations))
}

pub const PROXY_SIDECAR_ANNOTATION: &str = "azure.workload.identity/inject-proxy-sidecar";

pub static PROXY_SIDECAR_UNNEEDED: Check = Check {
    id: "AZF038",
    name: "proxy-sidecar-unneeded",
    area: Area::Controllers,
    severity: Severity::Info,
    title: "A Flux controller asks for the workload identity proxy sidecar, which it does not need",
    healthy: "No Flux controller asks for the workload identity proxy sidecar",
    explanation: "`azure.workload.identity/inject-proxy-sidecar` (any value, even \"false\") makes \
the webhook add a privileged init container with NET_ADMIN and a proxy that answers IMDS calls \
for SDKs without workload identity. Flux's controllers read the federated token themselves; the \
proxy only adds a container the namespace's pod security may refuse.",
    fix: "Remove the annotation from the controller's pod template.",
    run: proxy_sidecar_unneeded,
};

fn proxy_sidecar_unneeded(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    controllers_known(snapshot)?;
    for wiring in snapshot.wirings() {
        if wiring
            .workload
            .template_annotations
            .contains_key(PROXY_SIDECAR_ANNOTATION)
            && supports_workload_identity(wiring.name(), &wiring.path.running) != Some(false)
        {
            findings.add(
                wiring.workload.object_ref(),
                format!("{} asks the webhook for the proxy sidecar ({PROXY_SIDECAR_ANNOTATION}); {} reads the federated token itself", wiring.workload.object_ref(), wiring.name()),
                super::fixes::patch_deployment(snapshot, wiring.workload, &template_annotations(&[(PROXY_SIDECAR_ANNOTATION, None)])),
            );
        }
    }
    Ok(())
}
