//! AZF020-AZF032: controller-level workload identity. Each Flux controller that some object
//! needs (or that carries any wiring) is checked in the mode it uses: webhook (ServiceAccount
//! annotations + pod-template label, the webhook injects the rest) or manual (env vars and a
//! projected token written into the Deployment).

use std::collections::BTreeMap;

use super::{Area, Check, Findings, FixAction, Severity};
use crate::model::azure_use::{
    AzureService, AzureUse, ControllerWiring, WiringMode, azure_uses, controller_wirings,
    describe_objects, has_use_label, join_words, verb_s,
};
use crate::model::{ObjectRef, Skip, Snapshot, Workload};
use crate::wiring::{
    AZURE_PUBLIC, CLIENT_ID_ANNOTATION, Cloud, ENV_AUTHORITY_HOST, ENV_CLIENT_ID, ENV_TENANT_ID,
    ENV_TOKEN_FILE, MANUAL_TOKEN_DIR, MANUAL_TOKEN_PATH, MANUAL_TOKEN_VOLUME, TENANT_ID_ANNOTATION,
    TOKEN_AUDIENCE, USE_LABEL, is_uuid,
};

/// The controllers worth checking: those something needs, and those with any wiring at all.
/// Service accounts must be known, or every verdict would be a guess.
fn relevant(snapshot: &Snapshot) -> Result<Vec<ControllerWiring<'_>>, Skip> {
    if snapshot.controllers.get()?.is_empty() {
        return Err(no_controllers(snapshot));
    }
    snapshot.service_accounts.get()?;
    Ok(controller_wirings(snapshot)
        .into_iter()
        .filter(|w| w.mode != WiringMode::None || !w.needed_by.is_empty())
        .collect())
}

fn in_mode(snapshot: &Snapshot, mode: WiringMode) -> Result<Vec<ControllerWiring<'_>>, Skip> {
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
pub fn expected_cloud(snapshot: &Snapshot) -> Cloud {
    snapshot.cloud.unwrap_or_else(|| {
        azure_uses(snapshot)
            .iter()
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

pub static AZURE_CONTROLLER_NOT_WIRED: Check = Check {
    id: "AZF020",
    name: "azure-controller-not-wired",
    area: Area::Controllers,
    severity: Severity::Error,
    title: "Objects use Azure through a controller that has no workload identity",
    explanation: "Objects with `provider: azure` and no `serviceAccountName` authenticate with \
the identity of the controller that reconciles them (source-controller for Git, OCI, Helm and \
Bucket sources, image-reflector-controller for ImageRepository, kustomize-controller for SOPS \
with Key Vault, notification-controller for Azure DevOps and Event Hubs providers). When that \
controller has no workload identity, Flux falls back to the node's managed identity or fails \
with `no default identity is assigned` / `missing environment variables for workload identity`.",
    fix: "Wire the controller: webhook mode (annotate its ServiceAccount with client and tenant \
ID, label its pod template `azure.workload.identity/use: \"true\"`) where the webhook runs, \
manual mode (env vars and a projected token) elsewhere. `kubectl azflux enable` plans both.",
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
    wiring.needed_by.iter().cloned().partition(|u| {
        kubelet_fallback_possible(snapshot) && u.service == AzureService::ContainerRegistry
    })
}

fn azure_controller_not_wired(
    snapshot: &Snapshot,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    let mode_hint = match snapshot.webhooks.known() {
        Some(hooks) if !hooks.is_empty() => " --mode webhook",
        Some(_) => " --mode manual",
        None => "",
    };
    for wiring in relevant(snapshot)? {
        if wiring.mode != WiringMode::None {
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
        findings.add(
            wiring.workload.object_ref(),
            format!(
                "{} has no workload identity, but {} use{} {} through it",
                wiring.name(),
                describe_objects(&broken),
                verb_s(broken.len()),
                join_words(&services),
            ),
            format!(
                "kubectl azflux enable --controllers {}{mode_hint} --client-id CLIENT_ID --tenant-id TENANT_ID",
                wiring.name()
            ),
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
    explanation: "Workload identity has to know which managed identity to become. In webhook \
mode that is the `azure.workload.identity/client-id` annotation on the controller's \
ServiceAccount (the webhook turns it into AZURE_CLIENT_ID); in manual mode it is the \
AZURE_CLIENT_ID env var. Without it the token exchange fails with `no client ID specified`.",
    fix: "Webhook mode: annotate the ServiceAccount with `azure.workload.identity/client-id: \
CLIENT_ID` and restart the controller. Manual mode: set AZURE_CLIENT_ID in the Deployment.",
    run: sa_missing_client_id,
};

fn sa_missing_client_id(snapshot: &Snapshot, findings: &mut Findings<'_>) -> Result<(), Skip> {
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
                            format!("{} has no `{CLIENT_ID_ANNOTATION}` annotation", sa.object_ref()),
                            format!(
                                "kubectl annotate serviceaccount {} -n {} {CLIENT_ID_ANNOTATION}=CLIENT_ID, then restart {}",
                                sa.name, sa.namespace, wiring.name()
                            ),
                        )
                        .action(FixAction::Annotate {
                            target: sa.object_ref(),
                            annotations: BTreeMap::from([(CLIENT_ID_ANNOTATION.into(), "CLIENT_ID".into())]),
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
                            format!("{} is wired manually but sets no {ENV_CLIENT_ID}", wiring.name()),
                            format!("set {ENV_CLIENT_ID} to the managed identity's client ID in the Deployment"),
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
    explanation: "The token exchange goes to the Entra tenant of the managed identity. In webhook \
mode the `azure.workload.identity/tenant-id` annotation names it; the AKS webhook falls back to \
the cluster's own tenant when it is missing, which is wrong when the identity lives in another \
tenant (a warning). In manual mode AZURE_TENANT_ID must be set (an error). Object-level identity \
in Flux reads only the annotation and has no fallback.",
    fix: "Annotate the ServiceAccount with `azure.workload.identity/tenant-id: TENANT_ID` \
(webhook mode) or set AZURE_TENANT_ID in the Deployment (manual mode).",
    run: sa_missing_tenant_id,
};

fn sa_missing_tenant_id(snapshot: &Snapshot, findings: &mut Findings<'_>) -> Result<(), Skip> {
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
                                "{} has no `{TENANT_ID_ANNOTATION}` annotation; the webhook will use the cluster's tenant",
                                sa.object_ref()
                            ),
                            format!(
                                "kubectl annotate serviceaccount {} -n {} {TENANT_ID_ANNOTATION}=TENANT_ID",
                                sa.name, sa.namespace
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
                            format!(
                                "set {ENV_TENANT_ID} to the identity's tenant ID in the Deployment"
                            ),
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
    explanation: "Client and tenant IDs are UUIDs (8-4-4-4-12 hex digits). A placeholder left \
from a guide (`managed identity client id`, `${CLIENT_ID}`), an identity's name or its resource \
ID in their place makes Entra answer AADSTS700016 or AADSTS90002.",
    fix: "Put the managed identity's client ID (`az identity show -g RG -n NAME --query clientId`) \
and its tenant ID in the annotation or env var.",
    run: identity_annotation_malformed,
};

fn identity_annotation_malformed(
    snapshot: &Snapshot,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
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
                findings.add(
                    subject,
                    format!("{field} of {} is {value:?}, not a UUID", wiring.name()),
                    "set it to the managed identity's client ID or tenant ID (az identity show --query '{clientId:clientId,tenantId:tenantId}')",
                );
            }
        }
    }
    Ok(())
}

pub static POD_LABEL_MISSING: Check = Check {
    id: "AZF024",
    name: "pod-label-missing",
    area: Area::Controllers,
    severity: Severity::Error,
    title: "The pod template lacks the azure.workload.identity/use label",
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

fn pod_label_missing(snapshot: &Snapshot, findings: &mut Findings<'_>) -> Result<(), Skip> {
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
                format!("add `{USE_LABEL}: \"true\"` under spec.template.metadata.labels of {}", wiring.name()),
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
    explanation: "Before webhook v1.0 the label went on the ServiceAccount, and many guides still \
put it there or on the Deployment's own metadata. The webhook only looks at the pod, so a label \
on the ServiceAccount or the Deployment metadata alone leaves the pod unmutated.",
    fix: "Move the label to `spec.template.metadata.labels` of the Deployment; it can stay on the \
other object, where it does nothing.",
    run: label_on_wrong_object,
};

fn label_on_wrong_object(snapshot: &Snapshot, findings: &mut Findings<'_>) -> Result<(), Skip> {
    for wiring in in_mode(snapshot, WiringMode::Webhook)? {
        if has_use_label(&wiring.workload.template_labels) {
            continue;
        }
        for place in misplaced_label_on(&wiring) {
            findings
                .add(
                    place.clone(),
                    format!(
                        "label `{USE_LABEL}` is on {place}, but the webhook reads it only from the pod template of {}",
                        wiring.name()
                    ),
                    format!("add `{USE_LABEL}: \"true\"` under spec.template.metadata.labels of {}", wiring.name()),
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
    explanation: "The webhook injects workload identity only when a pod is created. A pod that \
started before the label or annotations were added, or while the webhook was down, runs without \
AZURE_FEDERATED_TOKEN_FILE and the `azure-identity-token` volume, although its template is \
correct now.",
    fix: "Restart the controller: `kubectl rollout restart deployment/NAME -n flux-system`.",
    run: pod_not_mutated,
};

fn pod_not_mutated(snapshot: &Snapshot, findings: &mut Findings<'_>) -> Result<(), Skip> {
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

fn token_volume_missing(snapshot: &Snapshot, findings: &mut Findings<'_>) -> Result<(), Skip> {
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
                format!(
                    "add projected volume {MANUAL_TOKEN_VOLUME} (audience {TOKEN_AUDIENCE}, path {MANUAL_TOKEN_PATH}) mounted at {MANUAL_TOKEN_DIR}"
                ),
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
    explanation: "Entra ID accepts a federated token only if its audience matches the federated \
credential's, which is `api://AzureADTokenExchange`. A projected token with no audience (the API \
server's own) or another one is refused with AADSTS70021.",
    fix: "Set `audience: api://AzureADTokenExchange` on the serviceAccountToken source of the \
projected volume.",
    run: token_audience_mismatch,
};

fn token_audience_mismatch(snapshot: &Snapshot, findings: &mut Findings<'_>) -> Result<(), Skip> {
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
                        format!("set audience: {TOKEN_AUDIENCE} on the serviceAccountToken source"),
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
    explanation: "The Azure SDK in the controller reads the token from the file named by \
AZURE_FEDERATED_TOKEN_FILE. It has to be the volume's mountPath joined with the token's `path` \
(for the documented setup: /var/run/service-account/azure-token). A mismatch gives `no such file \
or directory` at every reconcile.",
    fix: "Set AZURE_FEDERATED_TOKEN_FILE to MOUNT_PATH/PATH of the projected token, e.g. \
/var/run/service-account/azure-token.",
    run: token_path_mismatch,
};

fn token_path_mismatch(snapshot: &Snapshot, findings: &mut Findings<'_>) -> Result<(), Skip> {
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
                        format!("{ENV_TOKEN_FILE} of {} is {path}, but the projected token is mounted at {expected}", wiring.name()),
                        format!("set {ENV_TOKEN_FILE}={expected}"),
                    )
                    .action(set_env(wiring.workload, ENV_TOKEN_FILE, expected));
            }
            None if env.is_some_and(|e| e.from_ref) => {}
            None => {
                findings
                    .add(
                        wiring.workload.object_ref(),
                        format!("{} mounts a projected token at {expected} but does not set {ENV_TOKEN_FILE}", wiring.name()),
                        format!("set {ENV_TOKEN_FILE}={expected}"),
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
    explanation: "Manual wiring must tell the SDK where Entra ID is: \
https://login.microsoftonline.com/ for the public cloud, https://login.microsoftonline.us/ for \
US Government, https://login.chinacloudapi.cn/ for China. The webhook sets it on its own; by hand \
it is easy to forget or to copy from another cloud, and the exchange then fails or goes to the \
wrong tenant directory.",
    fix: "Set AZURE_AUTHORITY_HOST to the authority host of the cloud in use (`--cloud` chooses it \
when the registry suffix does not tell).",
    run: authority_host_mismatch,
};

fn authority_host_mismatch(snapshot: &Snapshot, findings: &mut Findings<'_>) -> Result<(), Skip> {
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
                format!(
                    "set {ENV_AUTHORITY_HOST}={} ({})",
                    cloud.authority_host, cloud.name
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
    title: "A controller still uses AAD Pod Identity",
    explanation: "AAD Pod Identity (the `aadpodidbinding` label, `AZURE_AUTH_METHOD=msi`) was \
deprecated in 2022 and is not supported on current AKS versions. Flux's Azure code uses workload \
identity; the NMI interception it relied on is gone after an upgrade.",
    fix: "Remove the `aadpodidbinding` label and AZURE_AUTH_METHOD, and wire workload identity \
instead (`kubectl azflux enable`).",
    run: legacy_aad_pod_identity,
};

fn legacy_aad_pod_identity(snapshot: &Snapshot, findings: &mut Findings<'_>) -> Result<(), Skip> {
    let controllers = snapshot.controllers.get()?;
    if controllers.is_empty() {
        return Err(no_controllers(snapshot));
    }
    for workload in controllers {
        let mut signs = Vec::new();
        if workload.template_labels.contains_key("aadpodidbinding")
            || workload.labels.contains_key("aadpodidbinding")
        {
            signs.push("label aadpodidbinding".to_string());
        }
        if workload
            .containers
            .iter()
            .any(|c| c.env("AZURE_AUTH_METHOD").and_then(|e| e.value.as_deref()) == Some("msi"))
        {
            signs.push("env AZURE_AUTH_METHOD=msi".to_string());
        }
        if !signs.is_empty() {
            findings.add(
                workload.object_ref(),
                format!("{} uses AAD Pod Identity ({})", workload.name, signs.join(", ")),
                "remove the aadpodidbinding label and AZURE_AUTH_METHOD, then wire workload identity: kubectl azflux enable",
            );
        }
    }
    Ok(())
}

pub static CONTROLLER_IDENTITY_UNUSED: Check = Check {
    id: "AZF032",
    name: "controller-identity-unused",
    area: Area::Controllers,
    severity: Severity::Info,
    title: "A controller is wired for Azure but nothing uses its identity",
    explanation: "The controller carries workload identity wiring, but no Flux object \
authenticates to Azure through it (none has `provider: azure` without its own \
`serviceAccountName`). This is harmless, but the identity's roles are granted for nothing; \
remove the wiring or the roles if they are not planned for use.",
    fix: "Nothing is broken. Remove the wiring (and the identity's role assignments) if no \
object will need it.",
    run: controller_identity_unused,
};

fn controller_identity_unused(
    snapshot: &Snapshot,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    snapshot.flux.complete()?;
    for wiring in relevant(snapshot)? {
        if wiring.mode != WiringMode::None && wiring.needed_by.is_empty() {
            findings.add(
                wiring.workload.object_ref(),
                format!(
                    "{} is wired for workload identity ({} mode), but no Flux object uses Azure through it",
                    wiring.name(),
                    wiring.mode
                ),
                "no action needed; remove the wiring if no object will use it",
            );
        }
    }
    Ok(())
}

pub static KUBELET_IDENTITY_FALLBACK: Check = Check {
    id: "AZF033",
    name: "kubelet-identity-fallback",
    area: Area::Controllers,
    severity: Severity::Warning,
    title: "ACR objects rely on the AKS kubelet identity",
    explanation: "On AKS, an ACR-backed object with `provider: azure` whose controller has no \
workload identity authenticates with the node's kubelet managed identity (what the AKS Flux \
extension's `useKubeletIdentity` does). It works only if that identity has AcrPull on the \
registry, and needs AZURE_CLIENT_ID when the nodes carry several identities. It is a \
deliberate setup for some, an accident for others; anything other than ACR does not work this \
way.",
    fix: "Keep it if intended (grant the kubelet identity AcrPull), or wire the controller with \
its own identity: `kubectl azflux enable --controllers NAME`.",
    run: kubelet_identity_fallback,
};

fn kubelet_identity_fallback(snapshot: &Snapshot, findings: &mut Findings<'_>) -> Result<(), Skip> {
    for wiring in relevant(snapshot)? {
        if wiring.mode != WiringMode::None {
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
        findings.add(
            wiring.workload.object_ref(),
            format!(
                "{} use{} Azure Container Registry through {}, which has no workload identity: {where_} the kubelet identity is used, which needs AcrPull on the registry",
                describe_objects(&acr),
                verb_s(acr.len()),
                wiring.name()
            ),
            format!(
                "grant the kubelet identity AcrPull, or give {} its own identity: kubectl azflux enable --controllers {} --client-id CLIENT_ID --tenant-id TENANT_ID",
                wiring.name(),
                wiring.name()
            ),
        );
    }
    Ok(())
}
