//! AZF010-AZF013: cluster-wide prerequisites: Flux itself, the webhook, the issuer.

use std::net::IpAddr;

use super::{Area, Check, Findings, Severity};
use crate::model::azure_use::WiringMode;
use crate::model::{ObjectRef, Skip, Snapshot};
use crate::resolve::Resolved;

fn cluster_ref(snapshot: &Snapshot) -> ObjectRef {
    let name = match &snapshot.source {
        crate::model::Source::Live { context, .. } => context.clone(),
        crate::model::Source::Manifests { .. } => "manifests".to_string(),
    };
    ObjectRef::cluster_scoped("Cluster", &name)
}

pub static FLUX_NOT_FOUND: Check = Check {
    id: "AZF010",
    name: "flux-not-found",
    area: Area::Cluster,
    severity: Severity::Warning,
    title: "No Flux controllers were found",
    healthy: "Flux controllers found",
    explanation: "doctor looks for the Flux controller Deployments in the Flux namespace \
(`--flux-namespace`, default flux-system). Without them there is nothing to wire: either Flux is \
not installed on this cluster, it runs in another namespace, or the manifests given do not \
contain the Flux install (gotk-components.yaml).",
    fix: "Pass `--flux-namespace` if Flux runs elsewhere, include gotk-components.yaml in the \
manifests, or install Flux (`flux bootstrap` / `flux install`).",
    run: flux_not_found,
};

fn flux_not_found(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    let controllers = snapshot.controllers.get()?;
    if !controllers.is_empty() {
        return Ok(());
    }
    let namespace = &snapshot.flux_namespace;
    let mut elsewhere: Vec<&str> = snapshot
        .workloads
        .known()
        .into_iter()
        .flatten()
        .filter(|w| w.is_flux_controller() && &w.namespace != namespace)
        .map(|w| w.namespace.as_str())
        .collect();
    elsewhere.sort_unstable();
    elsewhere.dedup();
    if let [other, ..] = elsewhere.as_slice() {
        findings.add(
            cluster_ref(snapshot),
            format!(
                "no Flux controller Deployment in namespace {namespace}, but there are Flux controllers in namespace {}",
                elsewhere.join(", ")
            ),
            doctor_again(snapshot, &["--flux-namespace", other]),
        );
        return Ok(());
    }
    if snapshot.source.is_live() {
        let served = snapshot.flux.not_served.len() < crate::model::FluxKind::ALL.len();
        let apis = if served {
            "The Flux APIs are served"
        } else {
            "The Flux APIs are not served either"
        };
        findings.add(
            cluster_ref(snapshot),
            format!("no Flux controller Deployment runs in namespace {namespace}. {apis}."),
            super::fixes::commented(
                "where Flux runs, if it runs; then doctor there with --flux-namespace",
                "kubectl get deployments --all-namespaces -l app.kubernetes.io/part-of=flux",
            ),
        );
    } else {
        // Loose Flux objects are a normal thing to diagnose; say what was not covered.
        findings
            .add(
                cluster_ref(snapshot),
                format!(
                    "the manifests hold no Flux controller Deployment in namespace {namespace}, so the controller checks were skipped"
                ),
                super::fixes::commented(
                    "with the Flux install among the inputs (or --flux-namespace NAMESPACE where it runs)",
                    &doctor_again(snapshot, &["-f", "gotk-components.yaml"]),
                ),
            )
            .severity(Severity::Info);
    }
    Ok(())
}

/// `doctor` run again on the same inputs, with `extra` arguments.
fn doctor_again(snapshot: &Snapshot, extra: &[&str]) -> String {
    let mut words = vec!["kubectl", "azflux", "doctor"];
    if let crate::model::Source::Manifests { inputs } = &snapshot.source {
        for input in inputs {
            match input.strip_prefix("-k ") {
                Some(dir) => words.extend(["-k", dir]),
                None => words.extend(["-f", input.as_str()]),
            }
        }
    }
    words.extend_from_slice(extra);
    super::fixes::command(&words)
}

fn on_aks(snapshot: &Snapshot) -> bool {
    snapshot.cluster.known().is_some_and(|c| c.is_aks)
}

/// On AKS the cluster feature installs the webhook; elsewhere manual mode needs none.
fn webhook_fix(snapshot: &Snapshot, wiring: &crate::resolve::ControllerWiring<'_>) -> String {
    if on_aks(snapshot) {
        return "az aks update --resource-group RESOURCE_GROUP --name CLUSTER --enable-oidc-issuer --enable-workload-identity".to_string();
    }
    super::controller_command(
        snapshot,
        wiring.workload,
        &format!(
            "--controllers {} --mode manual {}",
            wiring.name(),
            super::IDS
        ),
    )
}

/// On AKS the cluster's OIDC issuer; elsewhere the API server's issuer flags, shown as
/// kubeadm's ClusterConfiguration sets them.
fn issuer_fix(snapshot: &Snapshot) -> String {
    if on_aks(snapshot) {
        return "az aks update --resource-group RESOURCE_GROUP --name CLUSTER --enable-oidc-issuer"
            .to_string();
    }
    super::fixes::commented(
        "kube-apiserver flags (kubeadm ClusterConfiguration); ISSUER_URL serves the discovery document and JWKS over public https",
        "apiServer:\n  extraArgs:\n    service-account-issuer: ISSUER_URL\n    service-account-jwks-uri: ISSUER_URL/openid/v1/jwks",
    )
}

pub static WORKLOAD_IDENTITY_WEBHOOK_MISSING: Check = Check {
    id: "AZF011",
    name: "workload-identity-webhook-missing",
    area: Area::Cluster,
    severity: Severity::Error,
    title: "Controllers rely on the workload identity webhook, which is not installed",
    healthy: "The workload identity webhook is installed where controllers rely on it",
    explanation: "In webhook mode the ServiceAccount annotations and the pod label only ask for \
workload identity; the Azure workload identity mutating webhook does the work, injecting \
AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE and the projected token when a pod \
is created. Without the webhook nothing is injected and the controller fails with `missing \
environment variables for workload identity`.",
    fix: "On AKS: `az aks update -g RG -n CLUSTER --enable-oidc-issuer --enable-workload-identity`, \
then restart the controllers. Elsewhere install the azure-workload-identity webhook chart, or \
wire the controllers in manual mode (`kubectl azflux enable --mode manual`).",
    run: workload_identity_webhook_missing,
};

fn workload_identity_webhook_missing(
    snapshot: &Resolved,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    let webhooks = snapshot.webhooks.get()?;
    if !webhooks.is_empty() {
        return Ok(());
    }
    for wiring in snapshot.wirings() {
        if wiring.mode == WiringMode::Webhook {
            findings.add(
                wiring.workload.object_ref(),
                format!(
                    "{} is wired for webhook injection, but no Azure workload identity webhook \
(MutatingWebhookConfiguration) is installed",
                    wiring.name()
                ),
                webhook_fix(snapshot, &wiring),
            );
        }
    }
    Ok(())
}

pub static ISSUER_NOT_PUBLIC: Check = Check {
    id: "AZF012",
    name: "issuer-not-public",
    area: Area::Cluster,
    severity: Severity::Error,
    title: "The service-account issuer is not reachable by Entra ID",
    healthy: "The service-account issuer is reachable by Entra ID",
    explanation: "Entra ID validates a Kubernetes token by fetching the issuer's OpenID \
configuration and keys over the internet. An issuer such as \
`https://kubernetes.default.svc.cluster.local` (the default on non-AKS clusters), a private IP \
or plain http cannot be fetched, and every exchange fails with AADSTS70021 or AADSTS90061.",
    fix: "On AKS enable the OIDC issuer (`az aks update --enable-oidc-issuer`). Elsewhere set the \
API server's `--service-account-issuer` to a public HTTPS URL and publish the discovery document \
and JWKS there (`azwi jwks` helps).",
    run: issuer_not_public,
};

/// Why an issuer URL cannot be fetched from the internet, if it cannot.
pub fn issuer_problem(issuer: &str) -> Option<&'static str> {
    if !issuer.starts_with("https://") {
        return Some("it is not an https URL");
    }
    let host = crate::wiring::host_of(issuer);
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
        let private = match ip {
            IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
            IpAddr::V6(v6) => v6.is_loopback() || v6.is_unique_local(),
        };
        return private.then_some("its host is a private address");
    }
    let in_cluster = host == "kubernetes"
        || host.starts_with("kubernetes.default")
        || [".svc", ".cluster.local", ".local"]
            .iter()
            .any(|suffix| host.ends_with(suffix))
        || host == "localhost"
        || !host.contains('.');
    in_cluster.then_some("its host is an in-cluster name")
}

fn issuer_not_public(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    let issuer = snapshot.issuer.get()?;
    let wired = snapshot
        .wirings()
        .iter()
        .any(|w| w.mode != WiringMode::None);
    if !wired && snapshot.uses().next().is_none() {
        return Ok(());
    }
    if let Some(problem) = issuer_problem(issuer) {
        findings.add(
            cluster_ref(snapshot),
            format!(
                "the service-account issuer is {issuer}; Entra ID cannot fetch it because {problem}"
            ),
            issuer_fix(snapshot),
        );
    }
    Ok(())
}

pub static FLUX_INSTALLED_BY_AKS_EXTENSION: Check = Check {
    id: "AZF013",
    name: "flux-installed-by-aks-extension",
    area: Area::Cluster,
    severity: Severity::Info,
    title: "Flux is installed and owned by the AKS Flux cluster extension",
    healthy: "Flux is not owned by the AKS Flux cluster extension",
    explanation: "The `microsoft.flux` cluster extension installs Flux with Helm and reconciles \
it; patches made to its controllers, live or through Git, are reverted. Workload identity for \
the extension is set through the extension's own settings (`workloadIdentity.enable`, \
`workloadIdentity.azureClientId`), and object-level identity is not offered by it.",
    fix: "Configure identity through the extension: `az k8s-extension update --name flux \
--configuration-settings workloadIdentity.enable=true workloadIdentity.azureClientId=CLIENT_ID`.",
    run: flux_installed_by_aks_extension,
};

/// Whether a controller Deployment belongs to the AKS Flux extension.
pub fn owned_by_aks_extension(labels: &crate::model::StringMap) -> bool {
    labels
        .get("app.kubernetes.io/name")
        .is_some_and(|v| v == "microsoft.flux")
        || labels
            .keys()
            .any(|k| k.starts_with("clusterconfig.azure.com/"))
}

fn flux_installed_by_aks_extension(
    snapshot: &Resolved,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    let controllers = snapshot.controllers.get()?;
    let owned: Vec<&crate::model::Workload> = controllers
        .iter()
        .filter(|w| owned_by_aks_extension(&w.labels) || owned_by_aks_extension(&w.template_labels))
        .collect();
    let names: Vec<&str> = owned.iter().map(|w| w.name.as_str()).collect();
    let fix = super::extension::identity_fix(snapshot);
    // Resource Manager's word when it was read, else the version label the extension's Helm
    // release puts on its controllers.
    let read = super::extension::extension_state(snapshot)
        .and_then(|state| state.extension.as_ref().map(|e| (state, e)));
    match read {
        Some((state, extension)) => {
            let upgrades = if extension.auto_upgrade {
                "minor versions upgrade automatically"
            } else {
                "pinned: autoUpgradeMinorVersion is false"
            };
            let message = if names.is_empty() {
                format!(
                    "{} has the microsoft.flux extension {} {} ({upgrades}), but no Flux controller in {} carries its labels",
                    state.cluster,
                    extension.name,
                    extension.describe(),
                    snapshot.flux_namespace
                )
            } else {
                format!(
                    "the Flux controllers ({}) are managed by the microsoft.flux extension {} {} on {} ({upgrades}); changes to them must go through the extension's settings",
                    names.join(", "),
                    extension.name,
                    extension.describe(),
                    state.cluster
                )
            };
            findings.add(cluster_ref(snapshot), message, fix);
        }
        None if !names.is_empty() => {
            let version = super::extension::labelled_version(&owned)
                .map(|v| format!(" {v}"))
                .unwrap_or_default();
            findings.add(
                cluster_ref(snapshot),
                format!(
                    "the Flux controllers ({}) are managed by the microsoft.flux cluster extension{version}; changes to them must go through the extension's settings",
                    names.join(", ")
                ),
                fix,
            );
        }
        None => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::issuer_problem;

    #[test]
    fn issuer_reachability() {
        assert!(issuer_problem("https://kubernetes.default.svc.cluster.local").is_some());
        assert!(issuer_problem("https://kubernetes.default.svc").is_some());
        assert!(issuer_problem("http://issuer.example.com").is_some());
        assert!(issuer_problem("https://10.0.0.1/").is_some());
        assert!(issuer_problem("https://oidc.prod-aks.azure.com/abc/def/").is_none());
        assert!(issuer_problem("https://issuer.example.com").is_none());
    }
}
