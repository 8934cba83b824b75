//! The vocabulary of Azure use shared by the resolver and the checks: the Azure services, the
//! controller of each kind, how a controller is wired for workload identity, and how to name
//! groups of objects in messages. Which credential an object really gets is the resolver's
//! (`crate::resolve`).

use std::collections::BTreeMap;
use std::fmt;

use super::{FluxKind, ServiceAccount, Workload};
use crate::resolve::AzureUse;
use crate::wiring::{
    CLIENT_ID_ANNOTATION, ENV_CLIENT_ID, ENV_TOKEN_FILE, TENANT_ID_ANNOTATION, TOKEN_AUDIENCE,
    USE_LABEL,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "camelCase")]
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

/// How a controller gets its Azure token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "camelCase")]
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
    let labelled = has_use_label(&workload.template_labels);
    // A labelled template that only sets the token file is still mutated by the webhook, which
    // projects the token and keeps the variable as set (Azure/azure-workload-identity
    // pkg/webhook/webhook.go, addEnvironmentVariables); token-path-mismatch judges the value.
    if manual_volume || (manual_env && !labelled) {
        return WiringMode::Manual;
    }
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
