//! A cluster whose Flux the AKS Flux extension (`microsoft.flux`) installed: live with Azure
//! (the fake API server with the extension's labelled controllers, the fake Resource Manager
//! with the extension resource and its fluxConfigurations), live without an Azure login, and
//! in manifests. Shapes follow Azure/azure-rest-api-specs kubernetesconfiguration
//! `extensions/stable/2025-03-01` and `fluxConfigurations/stable/2025-04-01`; settings
//! MicrosoftDocs azure-management-docs `tutorial-use-gitops-flux2.md`.

// Scenario tests read top to bottom, however long.
#![allow(clippy::too_many_lines)]

#[path = "support/mod.rs"]
mod support;

use std::process::Command;

use serde_json::{Value, json};
use support::fake_apiserver::FakeConfig;
use support::fake_azure::{ClusterChild, FakeAzure, Login, Resource, RunningAzure};
use support::flux::{self, NS, TENANT_ID};
use support::run::{Cluster, Outcome, Sandbox};

const SUB: &str = "0b1f6471-1bf0-4dda-aec3-cb9272f09590";
const LOGIN_CLIENT: &str = "9a0c1b2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d";
const SECRET: &str = "canary-secret-6c1f9e0a7b";
const ISSUER: &str = "https://westeurope.oic.prod-aks.azure.com/72f988bf-86f1-41af-91ab-2d7cd011db47/5c8a3f6b-1d2e-4f5a-9b7c-0d1e2f3a4b5c/";
/// What every extension fix starts with on this cluster.
const UPDATE: &str =
    "az k8s-extension update --cluster-type managedClusters -c aks-prod -g rg-aks -n flux";
const EXTENSION_CHECKS: [&str; 4] = [
    "aks-extension-unhealthy",
    "aks-extension-identity-off",
    "aks-extension-controller-disabled",
    "flux-configuration-auth-broken",
];

fn cluster_id() -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/rg-aks/providers/Microsoft.ContainerService/managedClusters/aks-prod"
    )
}

/// The four controllers the extension deploys by default, labelled as its Helm release labels
/// them, with its rebuilt image tags; an ACR OCIRepository and an ImageRepository.
fn extension_cluster(minor: u32, extension_version: &str) -> Vec<Value> {
    let mut objects: Vec<Value> = flux::install(minor)
        .into_iter()
        .filter(|o| {
            let name = o["metadata"]["name"].as_str().unwrap_or_default();
            !name.starts_with("image-")
        })
        .collect();
    for controller in [
        "source-controller",
        "kustomize-controller",
        "helm-controller",
        "notification-controller",
    ] {
        let deployment = flux::find(&mut objects, "Deployment", controller);
        let labels = &mut deployment["metadata"]["labels"];
        labels["app.kubernetes.io/name"] = json!("microsoft.flux");
        labels["app.kubernetes.io/managed-by"] = json!("Helm");
        labels["clusterconfig.azure.com/extension-version"] = json!(extension_version);
    }
    objects.push(flux::oci_repository(minor, NS, "platform"));
    objects.push(flux::object(
        minor,
        "ImageRepository",
        NS,
        "app",
        json!({"interval": "5m", "image": "contoso.azurecr.io/app", "provider": "azure"}),
    ));
    objects.push(flux::aks_webhook());
    objects.push(flux::aks_node());
    objects
}

fn aks() -> Resource {
    Resource {
        id: cluster_id(),
        name: "aks-prod".into(),
        kind: "Microsoft.ContainerService/managedClusters".into(),
        properties: json!({
            "fqdn": "127.0.0.1",
            "oidcIssuerProfile": {"enabled": true, "issuerURL": ISSUER},
            "securityProfile": {"workloadIdentity": {"enabled": true}},
        }),
    }
}

fn extension(properties: Value) -> ClusterChild {
    ClusterChild {
        cluster_id: cluster_id(),
        name: "flux".into(),
        properties,
        identity: Some(
            json!({"type": "SystemAssigned", "principalId": "p", "tenantId": TENANT_ID}),
        ),
    }
}

fn configuration(name: &str, properties: Value) -> ClusterChild {
    ClusterChild {
        cluster_id: cluster_id(),
        name: name.into(),
        properties,
        identity: None,
    }
}

fn azure(extensions: Vec<ClusterChild>, configurations: Vec<ClusterChild>) -> FakeAzure {
    FakeAzure {
        tenants: vec![TENANT_ID.into()],
        subscriptions: vec![SUB.into()],
        logins: vec![Login {
            tenant_id: TENANT_ID.into(),
            client_id: LOGIN_CLIENT.into(),
            secret: SECRET.into(),
        }],
        resources: vec![aks()],
        extensions,
        flux_configurations: configurations,
        scope: "https://management.azure.com/.default".into(),
        ..FakeAzure::default()
    }
}

struct Live {
    cluster: Cluster,
    azure: RunningAzure,
}

impl Live {
    fn start(objects: Vec<Value>, azure: FakeAzure) -> Live {
        Live {
            cluster: Cluster::start(FakeConfig {
                objects,
                issuer: Some(ISSUER.into()),
                ..FakeConfig::default()
            }),
            azure: RunningAzure::start(azure),
        }
    }

    fn doctor(&self, args: &[&str]) -> Outcome {
        self.run("json", args)
    }

    fn run(&self, output: &str, args: &[&str]) -> Outcome {
        let kubeconfig = self.cluster.kubeconfig.display().to_string();
        let url = self.azure.url();
        let mut command: Command = self.cluster.sandbox.command();
        command
            .env("AZURE_CLIENT_ID", LOGIN_CLIENT)
            .env("AZURE_TENANT_ID", TENANT_ID)
            .env("AZURE_CLIENT_SECRET", SECRET)
            .args(["doctor", "-o", output, "--kubeconfig", &kubeconfig])
            .args(["--azure-auth", "client-secret", "--authority-host", &url])
            .args(["--arm-endpoint", &url])
            .args(args);
        let output = command.output().expect("run kubectl-azflux");
        Outcome {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// `(message, fix)` of every finding of `check`.
fn of(out: &Outcome, check: &str) -> Vec<(String, String)> {
    out.json()["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["name"] == check)
        .map(|f| {
            (
                f["message"].as_str().unwrap_or_default().to_string(),
                f["fix"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn reason(out: &Outcome, check: &str) -> String {
    out.json()["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == check)
        .and_then(|c| c["reason"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// No fix of an extension-managed cluster is a patch or a live edit: the extension reverts them.
fn assert_no_patches(out: &Outcome) {
    for finding in out.json()["findings"].as_array().expect("findings") {
        let fix = finding["fix"].as_str().unwrap_or_default();
        assert!(
            !fix.contains("kubectl azflux enable")
                && !fix.contains("kubectl patch")
                && !fix.contains("kubectl annotate"),
            "{}: {fix}",
            finding["name"]
        );
    }
}

#[test]
fn a_live_extension_install_is_diagnosed_from_its_settings_and_fixed_with_az() {
    let live = Live::start(
        extension_cluster(6, "1.19.5"),
        azure(
            vec![
                extension(json!({
                    "extensionType": "microsoft.flux", "autoUpgradeMinorVersion": true,
                    "releaseTrain": "Stable", "version": null, "currentVersion": "1.19.5",
                    "provisioningState": "Succeeded", "isSystemExtension": false,
                    "scope": {"cluster": {"releaseNamespace": "flux-system"}},
                    "configurationSettings": {"multiTenancy.enforce": "false"},
                    "statuses": []})),
                // Another extension type on the same cluster is not Flux's.
                ClusterChild {
                    name: "dapr".into(),
                    identity: None,
                    ..extension(
                        json!({"extensionType": "microsoft.dapr", "provisioningState": "Succeeded"}),
                    )
                },
            ],
            vec![
                configuration(
                    "platform",
                    json!({"scope": "cluster", "namespace": "flux-system", "sourceKind": "GitRepository",
                        "gitRepository": {"url": "https://dev.azure.com/contoso/platform/_git/fleet",
                            "repositoryRef": {"branch": "main"}, "provider": "Azure"},
                        "kustomizations": {"infra": {"name": "infra", "path": "./infra"}},
                        "provisioningState": "Succeeded", "complianceState": "Non-Compliant",
                        "statuses": [{"name": "platform", "namespace": "flux-system", "kind": "GitRepository",
                            "complianceState": "Non-Compliant",
                            "statusConditions": [{"type": "Ready", "status": "False", "reason": "GitOperationFailed",
                                "message": "failed to get credential from azure: ManagedIdentityCredential authentication failed"}]}]}),
                ),
                configuration(
                    "apps",
                    json!({"scope": "cluster", "namespace": "apps", "sourceKind": "GitRepository",
                        "gitRepository": {"url": "https://contoso.visualstudio.com/apps/_git/apps"},
                        "provisioningState": "Succeeded", "complianceState": "Compliant", "statuses": []}),
                ),
            ],
        ),
    );
    let out = live.doctor(&[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);

    let installed = of(&out, "flux-installed-by-aks-extension");
    assert_eq!(installed.len(), 1, "{installed:#?}");
    assert!(
        installed[0]
            .0
            .contains("microsoft.flux extension flux version 1.19.5 (Flux v2.6.4) on aks-prod"),
        "{}",
        installed[0].0
    );
    let identity_fix = format!(
        "{UPDATE} --configuration-settings workloadIdentity.enable=true workloadIdentity.azureClientId=CLIENT_ID workloadIdentity.azureTenantId=TENANT_ID"
    );
    assert_eq!(installed[0].1, identity_fix);

    // The OCIRepository and the Azure DevOps source need the controllers' identity; the
    // extension's settings give them none.
    let identity = of(&out, "aks-extension-identity-off");
    assert_eq!(identity.len(), 1, "{identity:#?}");
    assert!(identity[0].0.contains("OCIRepository"), "{}", identity[0].0);
    assert!(identity[0].0.contains("fluxConfiguration platform"));
    assert!(identity[0].0.contains("workloadIdentity.enable is unset"));
    assert_eq!(
        out.findings()
            .iter()
            .find(|f| f.0 == "aks-extension-identity-off")
            .map(|f| f.2.as_str()),
        Some("error")
    );
    assert_eq!(identity[0].1, identity_fix);

    // image-reflector-controller is off by default in the extension.
    let disabled = of(&out, "aks-extension-controller-disabled");
    assert_eq!(disabled.len(), 1, "{disabled:#?}");
    assert!(
        disabled[0]
            .0
            .contains("image-reflector-controller.enabled is unset (default false)"),
        "{}",
        disabled[0].0
    );
    assert_eq!(
        disabled[0].1,
        format!("{UPDATE} --configuration-settings image-reflector-controller.enabled=true")
    );

    let auth = of(&out, "flux-configuration-auth-broken");
    assert_eq!(auth.len(), 2, "{auth:#?}");
    assert!(
        auth[0]
            .0
            .starts_with("fluxConfiguration apps: its Azure DevOps repository has no credential"),
        "{auth:#?}"
    );
    assert_eq!(
        auth[0].1,
        format!(
            "{identity_fix}\n\naz k8s-configuration flux update --cluster-type managedClusters -c aks-prod -g rg-aks -n apps --provider azure"
        )
    );
    assert!(
        auth[1]
            .0
            .contains("platform: its GitRepository uses provider Azure")
    );
    assert_eq!(auth[1].1, identity_fix);

    let unhealthy = of(&out, "aks-extension-unhealthy");
    assert_eq!(unhealthy.len(), 1, "{unhealthy:#?}");
    assert!(unhealthy[0].0.contains("fluxConfiguration platform is Non-Compliant: GitRepository platform: failed to get credential from azure"));
    // The controllers' own findings are fixed through the same settings, with this cluster's
    // names.
    let fallback = of(&out, "kubelet-identity-fallback");
    assert_eq!(fallback.len(), 1, "{fallback:#?}");
    assert_eq!(fallback[0].1, identity_fix);
    assert!(
        fallback[0].0.contains("useKubeletIdentity=true"),
        "{}",
        fallback[0].0
    );
    assert_no_patches(&out);

    // The text report's last line is the extension's settings for this cluster.
    let text = live.run("text", &[]);
    let last: String = text
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("Fix "))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        last.contains("az k8s-extension update --cluster-type managedClusters -c aks-prod -g")
            && last.contains("workloadIdentity.enable=true"),
        "{}",
        text.stdout
    );

    let calls: Vec<(String, u16)> = live
        .azure
        .requests()
        .into_iter()
        .map(|r| {
            (
                format!("{}?{}", r.path, r.query.unwrap_or_default()),
                r.status,
            )
        })
        .collect();
    for (path, version) in [
        ("extensions", "2025-03-01"),
        ("fluxConfigurations", "2025-04-01"),
    ] {
        let wanted = format!(
            "{}/providers/Microsoft.KubernetesConfiguration/{path}?api-version={version}",
            cluster_id()
        );
        assert!(
            calls.contains(&(wanted.clone(), 200)),
            "{wanted} in {calls:#?}"
        );
    }
}

#[test]
fn a_failed_pinned_extension_is_an_error_and_upgrades_go_through_its_version() {
    let mut objects = extension_cluster(5, "1.16.12");
    objects.retain(|o| o["kind"] != "ImageRepository");
    // Object-level identity for an OCIRepository needs source-controller v1.6.0 (Flux 2.6).
    let oci = flux::find(&mut objects, "OCIRepository", "platform");
    oci["spec"]["serviceAccountName"] = json!("platform");
    objects.push(flux::service_account(NS, "platform"));
    let live = Live::start(
        objects,
        azure(
            vec![extension(json!({
                "extensionType": "microsoft.flux", "autoUpgradeMinorVersion": false,
                "version": "1.16.12", "currentVersion": "1.16.12", "provisioningState": "Failed",
                "configurationSettings": {"workloadIdentity.enable": "true",
                    "workloadIdentity.azureClientId": "<client-id>"},
                "errorInfo": {"code": "ExtensionOperationFailed", "message": "helm upgrade failed: timed out waiting for the condition"},
                "statuses": [{"code": "InstallationFailed", "level": "Error", "displayStatus": "Failed", "message": "source-controller: CrashLoopBackOff"}]}))],
            vec![configuration(
                "apps",
                json!({"sourceKind": "OCIRepository", "namespace": "apps",
                    "ociRepository": {"url": "oci://contoso.azurecr.io/apps", "serviceAccountName": "apps"},
                    "provisioningState": "Failed", "errorMessage": "extension not ready",
                    "complianceState": "Unknown"}),
            )],
        ),
    );
    let out = live.doctor(&[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);

    let unhealthy = of(&out, "aks-extension-unhealthy");
    assert_eq!(unhealthy.len(), 2, "{unhealthy:#?}");
    assert!(
        unhealthy[0].0.contains(
            "extension flux version 1.16.12 (Flux v2.5.1) is in provisioning state Failed: helm upgrade failed: timed out waiting for the condition; source-controller: CrashLoopBackOff"
        ),
        "{}",
        unhealthy[0].0
    );
    assert!(unhealthy[0].1.contains(
        "az k8s-extension show --cluster-type managedClusters -c aks-prod -g rg-aks -n flux --query"
    ));
    assert!(
        unhealthy[0].1.ends_with(&format!(
            "{UPDATE} --configuration-settings workloadIdentity.azureClientId=<client-id> workloadIdentity.enable=true"
        )),
        "{}",
        unhealthy[0].1
    );
    assert_eq!(
        unhealthy[1].0,
        "fluxConfiguration apps failed to provision: extension not ready"
    );

    let identity = of(&out, "aks-extension-identity-off");
    assert_eq!(identity.len(), 1, "{identity:#?}");
    assert!(
        identity[0]
            .0
            .contains("workloadIdentity.azureClientId is \"<client-id>\", not a UUID")
    );
    assert_eq!(
        identity[0].1,
        format!(
            "{UPDATE} --configuration-settings workloadIdentity.azureClientId=CLIENT_ID workloadIdentity.azureTenantId=TENANT_ID"
        )
    );

    // The Flux release a feature needs maps to the extension release that bundles it.
    let old = of(&out, "flux-version-too-old");
    assert_eq!(old.len(), 1, "{old:#?}");
    assert_eq!(
        old[0].1,
        format!("{UPDATE} --auto-upgrade-minor-version false --version 1.17.2")
    );
    let auth = of(&out, "flux-configuration-auth-broken");
    assert_eq!(auth.len(), 1, "{auth:#?}");
    assert!(auth[0].0.contains("logs in as ServiceAccount apps, but the extension version 1.16.12 (Flux v2.5.1) predates object-level workload identity"));
    assert_eq!(
        auth[0].1,
        format!("{UPDATE} --auto-upgrade-minor-version false --version 1.20.4")
    );
    assert_no_patches(&out);
}

#[test]
fn without_an_azure_login_the_labels_still_name_the_extension_and_its_flux_release() {
    let live = Live::start(extension_cluster(6, "1.19.5"), azure(vec![], vec![]));
    let out = live.cluster.doctor(&[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let installed = of(&out, "flux-installed-by-aks-extension");
    assert_eq!(installed.len(), 1);
    assert!(
        installed[0]
            .0
            .contains("microsoft.flux cluster extension version 1.19.5 (Flux v2.6.4)"),
        "{}",
        installed[0].0
    );
    assert!(installed[0].1.starts_with(
        "az k8s-extension update --resource-group RESOURCE_GROUP --cluster-name CLUSTER"
    ));
    for check in EXTENSION_CHECKS {
        assert_eq!(out.status(check), "skip", "{check}");
        let why = reason(&out, check);
        assert!(why.starts_with("no Azure login"), "{why}");
        assert!(
            why.ends_with("with it doctor reads the microsoft.flux extension's version, settings and fluxConfigurations from Azure Resource Manager"),
            "{why}"
        );
    }
    assert_no_patches(&out);
    assert!(live.azure.requests().is_empty());
}

#[test]
fn the_same_install_in_manifests_is_diagnosed_from_its_labels() {
    let sandbox = Sandbox::new();
    let objects: Vec<Value> = extension_cluster(6, "1.19.5")
        .into_iter()
        .filter(|o| o["kind"] != "Node" && o["kind"] != "CustomResourceDefinition")
        .collect();
    let dir = sandbox.path("cluster");
    support::run::write_yaml(&dir.join("flux.yaml"), &objects);
    let dir = dir.display().to_string();
    let out = sandbox.run(&["doctor", "-o", "json", "-f", &dir]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let installed = of(&out, "flux-installed-by-aks-extension");
    assert_eq!(installed.len(), 1, "{}", out.stdout);
    assert_eq!(
        installed[0].0,
        "the Flux controllers (source-controller, kustomize-controller, helm-controller, notification-controller) are managed by the microsoft.flux cluster extension version 1.19.5 (Flux v2.6.4); changes to them must go through the extension's settings"
    );
    // The ACR OCIRepository's controller has no identity: the fix is the extension's workload
    // identity settings; the message names the extension's switch for the kubelet identity.
    let fallback = of(&out, "kubelet-identity-fallback");
    assert_eq!(fallback.len(), 1, "{}", out.stdout);
    assert!(
        fallback[0]
            .1
            .contains("--name flux --configuration-settings workloadIdentity.enable=true"),
        "{}",
        fallback[0].1
    );
    assert!(
        fallback[0].0.contains("useKubeletIdentity=true"),
        "{}",
        fallback[0].0
    );
    for check in EXTENSION_CHECKS {
        assert_eq!(out.status(check), "skip", "{check}");
        assert!(
            reason(&out, check)
                .contains("microsoft.flux extension's version, settings and fluxConfigurations")
        );
    }
    assert_no_patches(&out);
}

#[test]
fn a_cluster_without_the_extension_passes_the_extension_checks() {
    let live = Live::start(flux::healthy_aks(7), azure(vec![], vec![]));
    let out = live.doctor(&[]);
    for check in EXTENSION_CHECKS {
        assert_eq!(
            out.status(check),
            "pass",
            "{check}: {}",
            reason(&out, check)
        );
    }
    assert!(of(&out, "flux-installed-by-aks-extension").is_empty());
    // The extension list was read; with no extension there are no fluxConfigurations to list.
    let calls: Vec<String> = live.azure.requests().into_iter().map(|r| r.path).collect();
    assert!(
        calls
            .iter()
            .any(|p| p.ends_with("/providers/Microsoft.KubernetesConfiguration/extensions")),
        "{calls:#?}"
    );
    assert!(
        !calls.iter().any(|p| p.ends_with("/fluxConfigurations")),
        "{calls:#?}"
    );
}

/// The fake answers these lists as Resource Manager does: at their own api-version only, and
/// not under a cluster that does not exist.
#[test]
fn the_fake_serves_extensions_and_flux_configurations_at_their_api_versions() {
    let mut config = azure(
        vec![extension(json!({"extensionType": "microsoft.flux"}))],
        vec![configuration(
            "apps",
            json!({"sourceKind": "GitRepository"}),
        )],
    );
    config.accepted_tokens = vec!["token".into()];
    let fake = RunningAzure::start(config);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let get = |cluster: &str, list: &str, version: &str| -> (u16, Value) {
        let url = format!(
            "{}{cluster}/providers/Microsoft.KubernetesConfiguration/{list}?api-version={version}",
            fake.url()
        );
        let mut response = agent
            .get(&url)
            .header("Authorization", "Bearer token")
            .call()
            .expect("the fake answers");
        let body = response.body_mut().read_to_string().expect("body");
        (
            response.status().as_u16(),
            serde_json::from_str(&body).expect("JSON"),
        )
    };
    let (status, body) = get(&cluster_id(), "extensions", "2025-03-01");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"][0]["name"], "flux");
    assert_eq!(
        body["value"][0]["type"],
        "Microsoft.KubernetesConfiguration/extensions"
    );
    assert_eq!(body["value"][0]["identity"]["type"], "SystemAssigned");
    let (status, body) = get(&cluster_id(), "fluxConfigurations", "2025-04-01");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"][0]["name"], "apps");
    for (list, version) in [
        ("extensions", "2024-11-01"),
        ("fluxConfigurations", "2025-03-01"),
    ] {
        let (status, body) = get(&cluster_id(), list, version);
        assert_eq!(status, 400);
        assert_eq!(body["error"]["code"], "InvalidApiVersionParameter");
    }
    let missing = cluster_id().replace("aks-prod", "aks-gone");
    let (status, body) = get(&missing, "extensions", "2025-03-01");
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "ParentResourceNotFound");
}
