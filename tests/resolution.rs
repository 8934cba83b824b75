//! The resolver's rules, one test per rule: for each object, the credential its controller
//! really uses at the release it runs, and the findings derived from that. Each test names the
//! upstream source (repository, file, tag) the rule was read from. Fixtures written here.

#[path = "support/mod.rs"]
mod support;

use kubectl_azflux::checks::diagnose;
use kubectl_azflux::gather::manifests::{self, Document};
use kubectl_azflux::resolve::{ControllerCredential, Credential, Resolved, SecretHolds};
use serde_json::{Value, json};
use support::flux::{self, CLIENT_ID, NS, TENANT_ID};

fn resolve(objects: &[Value]) -> Resolved {
    let docs: Vec<Document> = objects
        .iter()
        .map(|v| Document::whole("fixture".into(), None, v.clone()))
        .collect();
    Resolved::new(manifests::snapshot(docs, vec![], NS))
}

/// The credential resolved for the object named `name`.
fn credential<'a>(resolved: &'a Resolved, name: &str) -> &'a Credential {
    resolved
        .uses()
        .find(|u| u.object.name == name)
        .unwrap_or_else(|| panic!("{name} uses no Azure"))
        .credential
}

fn reason(resolved: &Resolved, name: &str) -> String {
    resolved
        .uses()
        .find(|u| u.object.name == name)
        .map(|u| u.path.reason.clone())
        .unwrap()
}

/// `(check name, subject, message)` of every finding.
fn findings(resolved: &Resolved) -> Vec<(String, String, String)> {
    diagnose(resolved)
        .findings
        .iter()
        .map(|f| {
            (
                f.check.name.to_string(),
                f.subject.to_string(),
                f.message.clone(),
            )
        })
        .collect()
}

fn finding(resolved: &Resolved, name: &str) -> Option<(String, String)> {
    findings(resolved)
        .into_iter()
        .find(|f| f.0 == name)
        .map(|f| (f.1, f.2))
}

fn set_image(objects: &mut [Value], controller: &str, tag: &str) {
    let deployment = flux::find(objects, "Deployment", controller);
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!(format!("ghcr.io/fluxcd/{controller}:{tag}"));
}

fn add_env(objects: &mut [Value], controller: &str, name: &str, value: &str) {
    let deployment = flux::find(objects, "Deployment", controller);
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": name, "value": value}));
}

fn sops_kustomization(minor: u32, name: &str, secret: Option<&str>) -> Value {
    let mut decryption = json!({"provider": "sops"});
    if let Some(secret) = secret {
        decryption["secretRef"] = json!({"name": secret});
    }
    flux::object(
        minor,
        "Kustomization",
        NS,
        name,
        json!({"interval": "10m", "path": "./apps", "prune": true,
               "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
               "decryption": decryption}),
    )
}

fn key_vault_file() -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "apps"},
           "sops": {"azure_kv": [{"vault_url": "https://contoso.vault.azure.net", "name": "sops"}]}})
}

fn secret(name: &str, data: &[&str]) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|k| ((*k).to_string(), json!("UkVEQUNURUQ=")))
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS}, "data": data})
}

/// Rule 1. Controller-level workload identity came with v1.0.0-rc.1 of source- and
/// kustomize-controller (fluxcd/source-controller CHANGELOG.md 1.0.0-rc.1;
/// fluxcd/kustomize-controller internal/sops/azkv/keysource.go @ v1.0.0-rc.1): a release
/// candidate before it ignores the wiring, one after it has it; `v1.0.0-rc.4` is not v1.0.0.
#[test]
fn rule_1_versions_decide_whether_wiring_is_read() {
    let mut objects = flux::install(7);
    flux::wire_webhook(&mut objects, "kustomize-controller");
    objects.push(sops_kustomization(7, "apps", None));
    objects.push(key_vault_file());

    set_image(&mut objects, "kustomize-controller", "v1.0.0-rc.4");
    let resolved = resolve(&objects);
    let path = resolved.controller_path("kustomize-controller").unwrap();
    assert!(
        matches!(
            path.credential,
            ControllerCredential::WorkloadIdentity { .. }
        ),
        "{path:?}"
    );

    set_image(&mut objects, "kustomize-controller", "v0.35.1");
    let resolved = resolve(&objects);
    let path = resolved.controller_path("kustomize-controller").unwrap();
    assert_eq!(path.credential, ControllerCredential::AzureCli, "{path:?}");
    assert!(!path.ignored.is_empty(), "{path:?}");
    let (subject, message) = finding(&resolved, "wiring-ignored-by-version").unwrap();
    assert_eq!(subject, "flux-system/Deployment/kustomize-controller");
    assert!(message.contains("v0.35.1"), "{message}");
    assert!(
        message.contains("v2.0.0"),
        "names the release to upgrade to: {message}"
    );
}

/// Rule 1, only the bundle label known (no image tag): the Flux release decides. Object-level
/// identity for OCIRepository came with Flux 2.6 (fluxcd/source-controller
/// internal/controller/ocirepository_controller.go @ v1.6.0).
#[test]
fn rule_1_the_bundle_label_stands_in_for_the_image_tag() {
    let mut objects = flux::install(5);
    let deployment = flux::find(&mut objects, "Deployment", "source-controller");
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!("registry.example.com/source-controller@sha256:0123");
    let mut oci = flux::oci_repository(5, "apps", "app");
    oci["spec"]["serviceAccountName"] = json!("app");
    objects.push(oci);
    let resolved = resolve(&objects);
    let use_path = resolved
        .uses()
        .find(|u| u.object.name == "app")
        .unwrap()
        .path;
    assert_eq!(use_path.needs.len(), 1, "{use_path:?}");
    assert_eq!(use_path.needs[0].flux.to_string(), "v2.6.0");
}

/// Rule 2. `--azure-autologin-for-acr` was removed from image-reflector-controller v1.0.0: the
/// controller does not start (fluxcd/image-reflector-controller CHANGELOG.md 1.0.0, main.go @
/// v1.0.0). Before, it logs in to ACR for `provider: generic` objects through the controller's
/// identity (internal/registry/options.go @ v0.26.0), so the object is not anonymous.
#[test]
fn rule_2_the_removed_autologin_flag() {
    let image_repository = |minor| {
        flux::object(
            minor,
            "ImageRepository",
            NS,
            "app",
            json!({"interval": "5m", "image": "contoso.azurecr.io/app"}),
        )
    };
    let mut objects = flux::install(6);
    set_image(&mut objects, "image-reflector-controller", "v0.30.0");
    flux::add_arg(
        &mut objects,
        "image-reflector-controller",
        "--azure-autologin-for-acr",
    );
    objects.push(image_repository(6));
    let resolved = resolve(&objects);
    assert_eq!(credential(&resolved, "app"), &Credential::Autologin);

    let mut objects = flux::install(7);
    flux::add_arg(
        &mut objects,
        "image-reflector-controller",
        "--azure-autologin-for-acr",
    );
    objects.push(image_repository(7));
    let resolved = resolve(&objects);
    let path = resolved
        .controller_path("image-reflector-controller")
        .unwrap();
    assert!(path.start_failure.is_some(), "{path:?}");
    let (subject, _) = finding(&resolved, "controller-will-not-start").unwrap();
    assert_eq!(subject, "flux-system/Deployment/image-reflector-controller");
}

/// Rule 2. A lockdown flag without the object-level gate stops the controller at start from
/// Flux 2.7 (fluxcd/pkg auth/controller_options.go: `cannot set default service accounts when
/// the feature gate ObjectLevelWorkloadIdentity is not enabled`).
#[test]
fn rule_2_a_lockdown_flag_without_the_gate_stops_the_controller() {
    let mut objects = flux::install(7);
    flux::add_arg(
        &mut objects,
        "source-controller",
        "--default-service-account=flux",
    );
    let resolved = resolve(&objects);
    let failure = resolved
        .controller_path("source-controller")
        .unwrap()
        .start_failure
        .clone()
        .unwrap();
    assert!(failure.contains("ObjectLevelWorkloadIdentity"), "{failure}");
    flux::add_arg(
        &mut objects,
        "source-controller",
        "--feature-gates=ObjectLevelWorkloadIdentity=true",
    );
    let resolved = resolve(&objects);
    assert_eq!(
        resolved
            .controller_path("source-controller")
            .unwrap()
            .start_failure,
        None
    );
}

/// Rule 2. An object at an API version the installed release no longer serves is refused:
/// source.toolkit.fluxcd.io/v1beta2 is gone from Flux 2.8 (fluxcd/source-controller
/// config/crd/bases @ v1.8.0).
#[test]
fn rule_2_objects_at_api_versions_no_longer_served() {
    let mut objects = flux::install(8);
    flux::wire_webhook(&mut objects, "source-controller");
    let mut oci = flux::oci_repository(8, NS, "app");
    oci["apiVersion"] = json!("source.toolkit.fluxcd.io/v1beta2");
    objects.push(oci);
    let resolved = resolve(&objects);
    let (subject, message) = finding(&resolved, "api-version-not-served").unwrap();
    assert_eq!(subject, "flux-system/OCIRepository/app");
    assert!(
        message.contains("source.toolkit.fluxcd.io/v1beta2"),
        "{message}"
    );
}

/// Rule 3. Only a `sops.azure-kv` key overrides the controller's identity, and its content
/// decides the credential (fluxcd/kustomize-controller internal/decryptor/decryptor.go and
/// internal/sops/azkv/config.go @ v1.6.0): a client ID alone is a managed identity over IMDS, a
/// tenant/client/secret triple a service principal; age keys have nothing to do with Azure.
#[test]
fn rule_3_sops_secrets_by_their_content() {
    let base = || {
        let mut objects = flux::install(7);
        flux::wire_webhook(&mut objects, "kustomize-controller");
        objects.push(key_vault_file());
        objects
    };
    let with_secret = |secret_value: Value| {
        let mut objects = base();
        objects.push(sops_kustomization(7, "apps", Some("sops-keys")));
        objects.push(secret_value);
        resolve(&objects)
    };
    let client_only = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sops-keys", "namespace": NS},
        "stringData": {"sops.azure-kv": format!("clientId: {CLIENT_ID}\n")}});
    let resolved = with_secret(client_only);
    match credential(&resolved, "apps") {
        Credential::Secret {
            holds: SecretHolds::ManagedIdentity { client_id },
            ..
        } => assert_eq!(client_id.as_deref(), Some(CLIENT_ID)),
        other => panic!("{other:?}"),
    }
    let (subject, _) = finding(&resolved, "secret-overrides-workload-identity").unwrap();
    assert_eq!(subject, "flux-system/Kustomization/apps");

    let principal = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sops-keys", "namespace": NS},
        "stringData": {"sops.azure-kv": format!("tenantId: {TENANT_ID}\nclientId: {CLIENT_ID}\nclientSecret: s3cret\n")}});
    assert!(matches!(
        credential(&with_secret(principal), "apps"),
        Credential::Secret {
            holds: SecretHolds::ServicePrincipal,
            ..
        }
    ));

    let age = secret("sops-keys", &["identity.agekey"]);
    let resolved = with_secret(age);
    assert_eq!(credential(&resolved, "apps"), &Credential::Controller);
    // A Kustomization decrypting through the controller is a user of its identity.
    assert_eq!(finding(&resolved, "controller-identity-unused"), None);
}

/// Rule 4. Per kind, which wins when a Secret and workload identity are both configured. A
/// Bucket's Secret with data wins (fluxcd/source-controller internal/bucket/azure/blob.go @
/// v1.7.0); a GitRepository with `provider: azure` keeps only TLS and SSH data from its Secret
/// from v1.6.0, and before it the Secret's username and password win
/// (internal/controller/gitrepository_controller.go getAuthOpts @ v1.5.0, v1.6.0).
#[test]
fn rule_4_secrets_against_workload_identity_per_kind() {
    let mut objects = flux::install(7);
    flux::wire_webhook(&mut objects, "source-controller");
    objects.push(flux::object(
        7,
        "Bucket",
        NS,
        "artifacts",
        json!({"interval": "5m", "provider": "azure", "bucketName": "flux",
        "endpoint": "https://contoso.blob.core.windows.net", "secretRef": {"name": "storage"}}),
    ));
    objects.push(secret("storage", &["accountKey"]));
    objects.push(flux::object(7, "GitRepository", NS, "fleet", json!({"interval": "1m", "provider": "azure",
        "url": "https://dev.azure.com/contoso/fleet/_git/fleet", "ref": {"branch": "main"}, "secretRef": {"name": "git"}})));
    objects.push(secret("git", &["username", "password"]));
    let resolved = resolve(&objects);
    assert!(matches!(
        credential(&resolved, "artifacts"),
        Credential::Secret { name, .. } if name == "storage"
    ));
    assert_eq!(credential(&resolved, "fleet"), &Credential::Controller);
    assert!(reason(&resolved, "fleet").contains("replaces its credentials"));
    let bypass: Vec<String> = findings(&resolved)
        .into_iter()
        .filter(|f| f.0 == "secret-overrides-workload-identity")
        .map(|f| f.1)
        .collect();
    assert_eq!(bypass, ["flux-system/Bucket/artifacts"]);

    let mut older = flux::install(5);
    flux::wire_webhook(&mut older, "source-controller");
    older.push(flux::object(5, "GitRepository", NS, "fleet", json!({"interval": "1m", "provider": "azure",
        "url": "https://dev.azure.com/contoso/fleet/_git/fleet", "ref": {"branch": "main"}, "secretRef": {"name": "git"}})));
    older.push(secret("git", &["username", "password"]));
    let resolved = resolve(&older);
    assert!(matches!(
        credential(&resolved, "fleet"),
        Credential::Secret { .. }
    ));
}

/// Rule 4, HelmRepository: it has no serviceAccountName (fluxcd/source-controller
/// api/v1/helmrepository_types.go at v1.9.1), so an OCI chart is always pulled with
/// source-controller's identity (internal/helm/getter/client_opts.go at v1.9.1), and Flux's
/// server-side dry-run refuses the unknown field.
#[test]
fn rule_4_a_helm_repository_has_no_service_account() {
    let mut objects = flux::install(7);
    flux::wire_webhook(&mut objects, "source-controller");
    flux::add_arg(
        &mut objects,
        "source-controller",
        "--feature-gates=ObjectLevelWorkloadIdentity=true",
    );
    let chart = |name: &str, sa: Option<&str>| {
        let mut spec = json!({"interval": "10m", "type": "oci", "provider": "azure",
            "url": "oci://contoso.azurecr.io/charts"});
        if let Some(sa) = sa {
            spec["serviceAccountName"] = json!(sa);
        }
        flux::object(7, "HelmRepository", "team-a", name, spec)
    };
    objects.push(chart("tenant-charts", Some("team-a-puller")));
    objects.push(chart("shared-charts", None));
    let resolved = resolve(&objects);
    assert_eq!(
        credential(&resolved, "tenant-charts"),
        &Credential::Controller
    );
    let refused: Vec<(String, String)> = diagnose(&resolved)
        .findings
        .iter()
        .filter(|f| f.check.name == "helmrepository-sa-not-a-field")
        .map(|f| (f.subject.to_string(), f.fix.clone()))
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    let (subject, fix) = &refused[0];
    assert_eq!(subject, "team-a/HelmRepository/tenant-charts");
    let snippet: Value = serde_saphyr::from_str(fix).expect("the fix is YAML");
    assert_eq!(snippet["kind"], "OCIRepository");
    assert_eq!(snippet["metadata"]["namespace"], "team-a");
    assert_eq!(snippet["spec"]["serviceAccountName"], "team-a-puller");
    assert_eq!(snippet["spec"]["provider"], "azure");
    assert_eq!(
        snippet["spec"]["url"],
        "oci://contoso.azurecr.io/charts/CHART"
    );
}

/// Rule 5. Without workload identity, an ACR object falls to a managed identity over IMDS: the
/// kubelet identity on AKS, which needs AZURE_CLIENT_ID when the node pool has several
/// (fluxcd/pkg auth/azure/provider.go: azidentity's default chain ends at
/// ManagedIdentityCredential).
#[test]
fn rule_5_the_node_identity_fallback() {
    let mut objects = flux::install(7);
    objects.push(flux::oci_repository(7, NS, "app"));
    let resolved = resolve(&objects);
    let path = resolved.controller_path("source-controller").unwrap();
    assert_eq!(
        path.credential,
        ControllerCredential::ManagedIdentity {
            client_id: None,
            pod_identity: None
        }
    );
    let (_, message) = finding(&resolved, "kubelet-identity-fallback").unwrap();
    assert!(message.contains("AZURE_CLIENT_ID"), "{message}");
}

/// Rule 6. AAD Pod Identity on v0.x works only with AZURE_AUTH_METHOD=msi; otherwise SOPS runs
/// the Azure CLI (go.mozilla.org/sops/v3 azkv/keysource.go as vendored by
/// fluxcd/kustomize-controller @ v0.35.1). On v1+ AZURE_AUTH_METHOD is inert.
#[test]
fn rule_6_aad_pod_identity_by_release() {
    let pod_identity = |tag: &str, auth_method: Option<&str>| {
        let mut objects = flux::install(7);
        set_image(&mut objects, "kustomize-controller", tag);
        let deployment = flux::find(&mut objects, "Deployment", "kustomize-controller");
        deployment["spec"]["template"]["metadata"]["labels"]["aadpodidbinding"] = json!("sops");
        if let Some(method) = auth_method {
            add_env(
                &mut objects,
                "kustomize-controller",
                "AZURE_AUTH_METHOD",
                method,
            );
        }
        objects.push(sops_kustomization(7, "apps", None));
        objects.push(key_vault_file());
        resolve(&objects)
    };
    let resolved = pod_identity("v0.35.1", Some("msi"));
    assert_eq!(
        resolved
            .controller_path("kustomize-controller")
            .unwrap()
            .credential,
        ControllerCredential::ManagedIdentity {
            client_id: None,
            pod_identity: Some("sops".into())
        }
    );
    let resolved = pod_identity("v0.35.1", None);
    assert_eq!(
        resolved
            .controller_path("kustomize-controller")
            .unwrap()
            .credential,
        ControllerCredential::AzureCli
    );
    let resolved = pod_identity("v1.7.0", Some("msi"));
    let path = resolved.controller_path("kustomize-controller").unwrap();
    assert!(
        path.ignored.iter().any(|i| i.contains("AZURE_AUTH_METHOD")),
        "{path:?}"
    );
}

/// Rule 7. A federated credential declared (Azure Service Operator) for a ServiceAccount that
/// is not annotated: the intent was workload identity.
#[test]
fn rule_7_a_declared_federated_credential_shows_the_intent() {
    let mut objects = flux::install(7);
    objects.push(flux::oci_repository(7, NS, "app"));
    objects.push(json!({
        "apiVersion": "managedidentity.azure.com/v1api20230131", "kind": "FederatedIdentityCredential",
        "metadata": {"name": "source-controller-fic", "namespace": NS},
        "spec": {"owner": {"name": "flux-identity"}, "audiences": ["api://AzureADTokenExchange"],
                 "issuer": "https://oidc.example.com/", "subject": "system:serviceaccount:flux-system:source-controller"}
    }));
    let resolved = resolve(&objects);
    let (subject, message) = finding(&resolved, "federated-credential-unused").unwrap();
    assert_eq!(subject, "flux-system/ServiceAccount/source-controller");
    assert!(message.contains("source-controller-fic"), "{message}");
}

/// Rule 8. AKS identity bindings (`azure.workload.identity/use-identity-binding`): no Flux
/// controller supports them (no fluxcd repository mentions them).
#[test]
fn rule_8_identity_bindings_are_unsupported() {
    let mut objects = flux::install(7);
    flux::wire_webhook(&mut objects, "source-controller");
    let deployment = flux::find(&mut objects, "Deployment", "source-controller");
    deployment["spec"]["template"]["metadata"]["annotations"] =
        json!({"azure.workload.identity/use-identity-binding": "true"});
    objects.push(flux::oci_repository(7, NS, "app"));
    let resolved = resolve(&objects);
    let (subject, _) = finding(&resolved, "identity-binding-unsupported").unwrap();
    assert_eq!(subject, "flux-system/Deployment/source-controller");
}

/// Rule 9. Patch shapes that break the wiring: `spec.containers` on a Deployment (not in its
/// schema: the API server refuses the object) and the proxy-sidecar switch given as a label
/// (the webhook reads it only as a pod annotation: Azure/azure-workload-identity
/// pkg/webhook/webhook.go @ v1.5.0).
#[test]
fn rule_9_patches_that_put_fields_where_nothing_reads_them() {
    let mut objects = flux::install(7);
    flux::wire_webhook(&mut objects, "kustomize-controller");
    let deployment = flux::find(&mut objects, "Deployment", "kustomize-controller");
    deployment["spec"]["containers"] =
        json!([{"name": "manager", "env": [{"name": "AZURE_CLIENT_ID", "value": CLIENT_ID}]}]);
    deployment["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/inject-proxy-sidecar"] =
        json!("true");
    let resolved = resolve(&objects);
    let misplaced: Vec<String> = findings(&resolved)
        .into_iter()
        .filter(|f| f.0 == "patch-misplaced-field")
        .map(|f| f.2)
        .collect();
    assert_eq!(misplaced.len(), 2, "{misplaced:?}");
    assert!(
        misplaced.iter().any(|m| m.contains("spec.containers")),
        "{misplaced:?}"
    );
    assert!(
        misplaced.iter().any(|m| m.contains("inject-proxy-sidecar")),
        "{misplaced:?}"
    );
}

/// Rule 7. Wiring on a controller that serves none of the Azure objects, while another one
/// serves them without an identity: OCI HelmRepositories are pulled by source-controller
/// (fluxcd/source-controller internal/helm/getter/client_opts.go @ v1.7.0), not helm-controller.
#[test]
fn rule_7_wiring_on_the_controller_that_does_not_serve_the_objects() {
    let mut objects = flux::install(7);
    flux::wire_webhook(&mut objects, "helm-controller");
    objects.push(flux::object(
        7,
        "HelmRepository",
        NS,
        "charts",
        json!({"interval": "5m", "type": "oci",
        "provider": "azure", "url": "oci://contoso.azurecr.io/charts"}),
    ));
    let resolved = resolve(&objects);
    let (subject, message) = finding(&resolved, "controller-identity-unused").unwrap();
    assert_eq!(subject, "flux-system/Deployment/helm-controller");
    assert!(
        message.ends_with("the objects that need an identity are served by source-controller (1 HelmRepository in flux-system)"),
        "{message}"
    );
}

/// A fix goes where the change persists: in manifests, Git through `enable --gitops`; for an
/// object flux-operator reconciles, its FluxInstance. A live `kubectl annotate` would be
/// reverted by either.
#[test]
fn fixes_go_where_the_change_persists() {
    let tenant_fix = |objects: &[Value]| {
        diagnose(&resolve(objects))
            .findings
            .iter()
            .find(|f| f.check.name == "sa-missing-tenant-id")
            .map(|f| f.fix.clone())
            .unwrap()
    };
    let mut objects = flux::install(7);
    flux::wire_webhook(&mut objects, "source-controller");
    let sa = flux::find(&mut objects, "ServiceAccount", "source-controller");
    sa["metadata"]["annotations"] = json!({"azure.workload.identity/client-id": CLIENT_ID});
    objects.push(flux::oci_repository(7, NS, "app"));
    assert_eq!(
        tenant_fix(&objects),
        "kubectl azflux enable --gitops DIR --controllers source-controller --tenant-id TENANT_ID"
    );
    let sa = flux::find(&mut objects, "ServiceAccount", "source-controller");
    sa["metadata"]["labels"] = json!({"app.kubernetes.io/managed-by": "flux-operator"});
    assert_eq!(
        tenant_fix(&objects),
        "# FILE: the FluxInstance manifest\nkubectl azflux enable --flux-instance FILE --controllers source-controller --tenant-id TENANT_ID"
    );
}

/// Controllers of the AKS Flux extension (`microsoft.flux`) are reconciled by it: every fix is
/// its `az k8s-extension update` settings (workloadIdentity.*, useKubeletIdentity), never a
/// patch (MicrosoftDocs azure-management-docs tutorial-use-gitops-flux2.md).
#[test]
fn the_aks_extension_is_fixed_through_its_settings() {
    let mut objects = flux::install(7);
    for controller in flux::CONTROLLERS {
        let deployment = flux::find(&mut objects, "Deployment", controller);
        deployment["metadata"]["labels"]["app.kubernetes.io/name"] = json!("microsoft.flux");
        deployment["metadata"]["labels"]["clusterconfig.azure.com/extension-version"] =
            json!("1.24.1");
    }
    objects.push(flux::oci_repository(7, NS, "app"));
    let resolved = resolve(&objects);
    let diagnosis = diagnose(&resolved);
    let fix_of = |name: &str| {
        diagnosis
            .findings
            .iter()
            .find(|f| f.check.name == name)
            .map_or_else(|| panic!("no {name}"), |f| f.fix.clone())
    };
    assert!(
        fix_of("kubelet-identity-fallback")
            .contains("--configuration-settings workloadIdentity.enable=true"),
        "{}",
        fix_of("kubelet-identity-fallback")
    );
    assert!(
        fix_of("flux-installed-by-aks-extension")
            .contains("workloadIdentity.enable=true workloadIdentity.azureClientId=CLIENT_ID"),
    );
    for finding in &diagnosis.findings {
        assert!(
            !finding.fix.contains("kubectl azflux enable")
                && !finding.fix.contains("kubectl annotate"),
            "{}: {}",
            finding.check.name,
            finding.fix
        );
    }
}

/// Rule 2. `spec.provider` is not in the image `v1beta1` schema (fluxcd/image-reflector-controller
/// api/v1beta2/imagerepository_types.go @ v0.25.0 added it): the API server prunes it, so the
/// object pulls anonymously.
#[test]
fn rule_2_provider_on_an_api_version_without_the_field() {
    let mut objects = flux::install(6);
    flux::wire_webhook(&mut objects, "image-reflector-controller");
    let mut repository = flux::object(
        6,
        "ImageRepository",
        NS,
        "app",
        json!({"interval": "5m", "image": "contoso.azurecr.io/app", "provider": "azure"}),
    );
    repository["apiVersion"] = json!("image.toolkit.fluxcd.io/v1beta1");
    objects.push(repository.clone());
    let resolved = resolve(&objects);
    assert_eq!(credential(&resolved, "app"), &Credential::Anonymous);
    repository["apiVersion"] = json!("image.toolkit.fluxcd.io/v1beta2");
    let last = objects.len() - 1;
    objects[last] = repository;
    assert_eq!(
        credential(&resolve(&objects), "app"),
        &Credential::Controller
    );
}

/// Rule 6, bootstrap order: AAD Pod Identity installed by the very Kustomization that decrypts
/// through it cannot come up on a new cluster (SOPS fails the whole build, fluxcd/
/// kustomize-controller internal/decryptor/decryptor.go, so nothing of it is applied).
#[test]
fn rule_6_pod_identity_installed_by_the_kustomization_that_needs_it() {
    let mut objects = flux::install(7);
    set_image(&mut objects, "kustomize-controller", "v0.35.1");
    let deployment = flux::find(&mut objects, "Deployment", "kustomize-controller");
    deployment["spec"]["template"]["metadata"]["labels"]["aadpodidbinding"] = json!("sops");
    add_env(
        &mut objects,
        "kustomize-controller",
        "AZURE_AUTH_METHOD",
        "msi",
    );
    objects.push(sops_kustomization(7, "apps", None));
    objects.push(key_vault_file());
    let mut release = flux::object(
        7,
        "HelmRelease",
        "aad-pod-identity",
        "aad-pod-identity",
        json!({"interval": "5m",
        "chart": {"spec": {"chart": "aad-pod-identity", "sourceRef": {"kind": "HelmRepository", "name": "aad-pod-identity"}}}}),
    );
    release["metadata"]["labels"] = json!({"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": NS});
    objects.push(release.clone());
    let (_, message) = finding(&resolve(&objects), "legacy-aad-pod-identity").unwrap();
    assert!(
        message.contains("AAD Pod Identity itself (aad-pod-identity/HelmRelease/aad-pod-identity) is applied by Kustomization flux-system/apps, which needs it to decrypt"),
        "{message}"
    );
    release["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"] = json!("infra");
    let last = objects.len() - 1;
    objects[last] = release;
    let (_, message) = finding(&resolve(&objects), "legacy-aad-pod-identity").unwrap();
    assert!(!message.contains("AAD Pod Identity itself"), "{message}");
}

/// Rule 4, the other kinds. An OCIRepository's `secretRef` makes the keychain non-anonymous
/// and provider login never runs (fluxcd/source-controller
/// internal/controller/ocirepository_controller.go @ v1.6.0); an Event Hubs Provider with a
/// SAS in its Secret and a `serviceAccountName` is refused (fluxcd/notification-controller
/// internal/notifier/azure_eventhub.go @ v1.6.0); from image-reflector-controller v1.0.0 the
/// provider wins over an ImageRepository's `secretRef` (internal/registry/options.go @ v1.0.0).
#[test]
fn rule_4_oci_image_and_notification_kinds() {
    let mut objects = flux::install(7);
    flux::wire_webhook(&mut objects, "source-controller");
    flux::wire_webhook(&mut objects, "image-reflector-controller");
    let mut oci = flux::oci_repository(7, NS, "app");
    oci["spec"]["secretRef"] = json!({"name": "registry"});
    objects.push(oci);
    objects.push(flux::object(
        7,
        "ImageRepository",
        NS,
        "images",
        json!({"interval": "5m",
        "image": "contoso.azurecr.io/app", "provider": "azure", "secretRef": {"name": "registry"}}),
    ));
    objects.push(flux::object(
        7,
        "Provider",
        NS,
        "events",
        json!({"type": "azureeventhub",
        "secretRef": {"name": "hub"}, "serviceAccountName": "events"}),
    ));
    objects.push(secret("registry", &[".dockerconfigjson"]));
    objects.push(secret("hub", &["address"]));
    let resolved = resolve(&objects);
    assert!(
        matches!(credential(&resolved, "app"), Credential::Secret { name, .. } if name == "registry")
    );
    assert_eq!(credential(&resolved, "images"), &Credential::Controller);
    let events = resolved
        .uses()
        .find(|u| u.object.name == "events")
        .unwrap()
        .path;
    assert!(
        events.refused.as_deref().is_some_and(|r| r
            .contains("serviceAccountName and SAS authentication cannot be set at the same time")),
        "{events:?}"
    );
    let bypassed: Vec<String> = findings(&resolved)
        .into_iter()
        .filter(|f| f.0 == "secret-overrides-workload-identity")
        .map(|f| f.1)
        .collect();
    assert!(
        bypassed.contains(&"flux-system/OCIRepository/app".to_string()),
        "{bypassed:?}"
    );
}

/// Every fix works when pasted, in every place a controller can be managed (live, Git,
/// FluxInstance, AKS extension): a command the shell parses (`kubectl azflux` lines the
/// binary's own parser accepts) or a YAML snippet (tests/support/fixes.rs). Placeholders the
/// tool cannot fill (CLIENT_ID, DIR, FILE) are plain words.
#[test]
fn every_fix_command_parses_as_written() {
    let mut scenarios: Vec<Vec<Value>> = Vec::new();
    let mut unwired = flux::install(7);
    unwired.push(flux::oci_repository(7, NS, "app"));
    scenarios.push(unwired.clone());
    let mut partial = unwired.clone();
    flux::wire_webhook(&mut partial, "source-controller");
    let sa = flux::find(&mut partial, "ServiceAccount", "source-controller");
    sa["metadata"]["annotations"] =
        json!({"azure.workload.identity/client-id": "<AZURE_CLIENT_ID>"});
    flux::add_arg(
        &mut partial,
        "kustomize-controller",
        "--default-decryption-service-account=sops",
    );
    partial.push(sops_kustomization(7, "apps", None));
    partial.push(key_vault_file());
    scenarios.push(partial);
    let mut old = flux::install(7);
    set_image(&mut old, "kustomize-controller", "v0.35.1");
    flux::wire_webhook(&mut old, "kustomize-controller");
    let deployment = flux::find(&mut old, "Deployment", "kustomize-controller");
    deployment["spec"]["template"]["metadata"]["labels"]["aadpodidbinding"] = json!("sops");
    old.push(sops_kustomization(7, "apps", None));
    old.push(key_vault_file());
    scenarios.push(old);
    let mut manual = flux::install(7);
    flux::wire_manual(&mut manual, "source-controller");
    let container = &mut flux::find(&mut manual, "Deployment", "source-controller")["spec"]["template"]
        ["spec"]["containers"][0];
    container["env"]
        .as_array_mut()
        .unwrap()
        .retain(|e| e["name"] != "AZURE_TENANT_ID");
    manual.push(flux::oci_repository(7, NS, "app"));
    let mut tenant = flux::oci_repository(7, "team-a", "tenant");
    tenant["spec"]["serviceAccountName"] = json!("missing");
    manual.push(tenant);
    scenarios.push(manual);
    let mut extension = unwired.clone();
    for controller in flux::CONTROLLERS {
        flux::find(&mut extension, "Deployment", controller)["metadata"]["labels"]["app.kubernetes.io/name"] =
            json!("microsoft.flux");
    }
    scenarios.push(extension);

    let mut checked = 0;
    for objects in &scenarios {
        for finding in diagnose(&resolve(objects)).findings {
            if finding.fix.is_empty() && finding.severity == kubectl_azflux::checks::Severity::Info
            {
                continue;
            }
            if let Some(why) = support::fixes::unpasteable(&finding.fix) {
                panic!(
                    "{} on {}: {why}\n{}",
                    finding.check.id, finding.subject, finding.fix
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= scenarios.len(), "{checked} fixes checked");
}
