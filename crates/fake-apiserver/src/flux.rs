//! Test fixtures: a Flux install (CRDs served at each release's versions, controller
//! Deployments and ServiceAccounts), Flux objects, pods, webhooks and nodes, as API objects.
//! Written for this project from the shapes Flux installs; scenarios start from a healthy
//! install and change one thing.

use serde_json::{Value, json};

pub const CLIENT_ID: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
pub const TENANT_ID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const NS: &str = "flux-system";

pub const CONTROLLERS: [&str; 6] = [
    "source-controller",
    "kustomize-controller",
    "helm-controller",
    "notification-controller",
    "image-reflector-controller",
    "image-automation-controller",
];

/// The versions each Flux release serves per kind, storage version first, as its CRDs declare
/// them: the last row for the kind whose first release is not newer than the one asked for.
const SERVED: &[(&str, u32, &[&str])] = &[
    ("GitRepository", 0, &["v1", "v1beta1", "v1beta2"]),
    ("GitRepository", 7, &["v1", "v1beta2"]),
    ("GitRepository", 8, &["v1"]),
    ("Kustomization", 0, &["v1", "v1beta1", "v1beta2"]),
    ("Kustomization", 7, &["v1", "v1beta2"]),
    ("Kustomization", 8, &["v1"]),
    ("HelmRepository", 0, &["v1beta2", "v1beta1"]),
    ("HelmRepository", 3, &["v1", "v1beta1", "v1beta2"]),
    ("HelmRepository", 7, &["v1", "v1beta2"]),
    ("HelmRepository", 8, &["v1"]),
    ("Bucket", 0, &["v1beta2", "v1beta1"]),
    ("Bucket", 4, &["v1", "v1beta1", "v1beta2"]),
    ("Bucket", 7, &["v1", "v1beta2"]),
    ("Bucket", 8, &["v1"]),
    ("OCIRepository", 0, &["v1beta2"]),
    ("OCIRepository", 6, &["v1", "v1beta2"]),
    ("OCIRepository", 8, &["v1"]),
    ("HelmRelease", 0, &["v2beta2", "v2beta1"]),
    ("HelmRelease", 3, &["v2", "v2beta1", "v2beta2"]),
    ("HelmRelease", 7, &["v2", "v2beta2"]),
    ("HelmRelease", 8, &["v2"]),
    ("Provider", 0, &["v1beta3", "v1beta1", "v1beta2"]),
    ("Provider", 7, &["v1beta3", "v1beta2"]),
    ("Provider", 9, &["v1beta3"]),
    ("ImageRepository", 0, &["v1beta2", "v1beta1"]),
    ("ImageRepository", 7, &["v1", "v1beta2"]),
    ("ImageRepository", 9, &["v1"]),
    ("ImageUpdateAutomation", 0, &["v1beta2", "v1beta1"]),
    ("ImageUpdateAutomation", 7, &["v1", "v1beta2"]),
    ("ImageUpdateAutomation", 9, &["v1"]),
];

fn served_versions(minor: u32, kind: &str) -> &'static [&'static str] {
    SERVED
        .iter()
        .filter(|(k, since, _)| *k == kind && *since <= minor)
        .map(|(_, _, versions)| *versions)
        .next_back()
        .unwrap_or_else(|| panic!("no versions for {kind}"))
}

fn group_of(kind: &str) -> &'static str {
    match kind {
        "GitRepository" | "OCIRepository" | "HelmRepository" | "Bucket" => {
            "source.toolkit.fluxcd.io"
        }
        "ImageRepository" | "ImageUpdateAutomation" => "image.toolkit.fluxcd.io",
        "Kustomization" => "kustomize.toolkit.fluxcd.io",
        "HelmRelease" => "helm.toolkit.fluxcd.io",
        _ => "notification.toolkit.fluxcd.io",
    }
}

pub const FLUX_KINDS: [&str; 9] = [
    "GitRepository",
    "OCIRepository",
    "HelmRepository",
    "Bucket",
    "ImageRepository",
    "ImageUpdateAutomation",
    "Kustomization",
    "HelmRelease",
    "Provider",
];

/// The apiVersion a Flux release stores a kind at.
pub fn api_version(minor: u32, kind: &str) -> String {
    format!("{}/{}", group_of(kind), served_versions(minor, kind)[0])
}

pub fn crd(minor: u32, kind: &str) -> Value {
    let lower = kind.to_lowercase();
    let plural = match lower.strip_suffix("repository") {
        Some(stem) => format!("{stem}repositories"),
        None => format!("{lower}s"),
    };
    let versions: Vec<Value> = served_versions(minor, kind)
        .iter()
        .enumerate()
        .map(|(i, v)| {
            json!({"name": v, "served": true, "storage": i == 0,
                   "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}})
        })
        .collect();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{}", group_of(kind))},
        "spec": {
            "group": group_of(kind),
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
            "scope": "Namespaced",
            "versions": versions
        }
    })
}

pub fn service_account(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/instance": "flux-system", "app.kubernetes.io/part-of": "flux"}}
    })
}

pub fn controller(minor: u32, name: &str) -> Value {
    let image_tag = match name {
        "source-controller" | "kustomize-controller" | "notification-controller" => {
            format!("v1.{minor}.0")
        }
        other => release_tag(minor, other).to_string(),
    };
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name, "namespace": NS,
            "labels": {"app.kubernetes.io/component": name, "app.kubernetes.io/instance": "flux-system",
                       "app.kubernetes.io/part-of": "flux", "app.kubernetes.io/version": format!("v2.{minor}.0"),
                       "control-plane": "controller"}
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "serviceAccountName": name,
                    "containers": [{
                        "name": "manager",
                        "image": format!("ghcr.io/fluxcd/{name}:{image_tag}"),
                        "args": ["--events-addr=http://notification-controller.flux-system.svc.cluster.local./",
                                 "--watch-all-namespaces=true", "--log-level=info", "--enable-leader-election"],
                        "env": [{"name": "RUNTIME_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                        "volumeMounts": [{"name": "temp", "mountPath": "/tmp"}]
                    }],
                    "volumes": [{"name": "temp", "emptyDir": {}}]
                }
            }
        }
    })
}

/// A Flux install of release 2.`minor`: namespace, CRDs, controllers and their ServiceAccounts.
/// The helm-, image-reflector- and image-automation-controller releases each Flux 2.x
/// release ships (the latest patch of each minor), as fluxcd/flux2's
/// manifests/bases/*/kustomization.yaml pin them at the release tags.
fn release_tag(minor: u32, controller: &str) -> &'static str {
    const TAGS: [(&str, &str, &str); 10] = [
        ("v0.35.0", "v0.29.0", "v0.35.0"),
        ("v0.36.2", "v0.30.0", "v0.36.1"),
        ("v0.37.2", "v0.31.1", "v0.37.0"),
        ("v1.0.1", "v0.32.0", "v0.38.0"),
        ("v1.1.0", "v0.33.0", "v0.39.0"),
        ("v1.2.0", "v0.34.0", "v0.40.0"),
        ("v1.3.0", "v0.35.2", "v0.41.2"),
        ("v1.4.5", "v1.0.4", "v1.0.4"),
        ("v1.5.5", "v1.1.2", "v1.1.4"),
        ("v1.6.3", "v1.2.4", "v1.2.4"),
    ];
    let (helm, reflector, automation) = TAGS[usize::try_from(minor).unwrap_or(9).min(9)];
    match controller {
        "helm-controller" => helm,
        "image-reflector-controller" => reflector,
        _ => automation,
    }
}

pub fn install(minor: u32) -> Vec<Value> {
    let mut objects =
        vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})];
    objects.extend(FLUX_KINDS.iter().map(|k| crd(minor, k)));
    for name in CONTROLLERS {
        objects.push(service_account(NS, name));
        objects.push(controller(minor, name));
    }
    objects
}

pub fn find<'a>(objects: &'a mut [Value], kind: &str, name: &str) -> &'a mut Value {
    objects
        .iter_mut()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("fixture has no {kind} {name}"))
}

/// Webhook-mode wiring, as the Flux docs lay it out for AKS.
pub fn wire_webhook(objects: &mut [Value], controller: &str) {
    let sa = find(objects, "ServiceAccount", controller);
    sa["metadata"]["annotations"] = json!({
        "azure.workload.identity/client-id": CLIENT_ID,
        "azure.workload.identity/tenant-id": TENANT_ID
    });
    let deploy = find(objects, "Deployment", controller);
    deploy["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"] = json!("true");
}

/// Manual wiring (no webhook): env vars and a projected token, as the Flux docs lay it out.
pub fn wire_manual(objects: &mut [Value], controller: &str) {
    let deploy = find(objects, "Deployment", controller);
    let container = &mut deploy["spec"]["template"]["spec"]["containers"][0];
    let env = container["env"].as_array_mut().expect("env");
    env.extend([
        json!({"name": "AZURE_TENANT_ID", "value": TENANT_ID}),
        json!({"name": "AZURE_CLIENT_ID", "value": CLIENT_ID}),
        json!({"name": "AZURE_AUTHORITY_HOST", "value": "https://login.microsoftonline.com/"}),
        json!({"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/var/run/service-account/azure-token"}),
    ]);
    container["volumeMounts"]
        .as_array_mut()
        .expect("mounts")
        .push(json!({"name": "azure-token", "mountPath": "/var/run/service-account", "readOnly": true}));
    deploy["spec"]["template"]["spec"]["volumes"]
        .as_array_mut()
        .expect("volumes")
        .push(json!({"name": "azure-token", "projected": {"sources": [{"serviceAccountToken": {
            "audience": "api://AzureADTokenExchange", "expirationSeconds": 3600, "path": "azure-token"}}]}}));
}

pub fn add_arg(objects: &mut [Value], controller: &str, arg: &str) {
    let deploy = find(objects, "Deployment", controller);
    deploy["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array_mut()
        .expect("args")
        .push(json!(arg));
}

/// A Flux object of `kind` at the version release 2.`minor` stores it.
pub fn object(minor: u32, kind: &str, namespace: &str, name: &str, spec: Value) -> Value {
    let mut object = json!({
        "apiVersion": api_version(minor, kind),
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
    });
    object["spec"] = spec;
    object
}

pub fn oci_repository(minor: u32, namespace: &str, name: &str) -> Value {
    object(
        minor,
        "OCIRepository",
        namespace,
        name,
        json!({
            "interval": "5m", "url": "oci://contoso.azurecr.io/manifests/app", "ref": {"tag": "latest"}, "provider": "azure"
        }),
    )
}

/// The AKS workload identity webhook configuration (add-on flavour).
pub fn aks_webhook() -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "azure-wi-webhook-mutating-webhook-configuration"},
        "webhooks": [{"name": "mutation.azure-workload-identity.io",
                      "clientConfig": {"service": {"name": "azure-wi-webhook-webhook-service", "namespace": "kube-system", "path": "/mutate-v1-pod"}},
                      "objectSelector": {"matchLabels": {"azure.workload.identity/use": "true"}},
                      "admissionReviewVersions": ["v1"], "sideEffects": "None"}]
    })
}

pub fn aks_node() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "aks-nodepool1-12345678-vmss000000",
                     "labels": {"kubernetes.azure.com/cluster": "MC_rg_aks_westeurope", "kubernetes.io/os": "linux"}},
        "spec": {"providerID": "azure:///subscriptions/0000/resourceGroups/mc_rg/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1/virtualMachines/0"}
    })
}

/// A running pod of a controller Deployment; `mutated` adds what the webhook injects.
pub fn pod_of(objects: &[Value], controller: &str, mutated: bool) -> Value {
    let deploy = objects
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == controller)
        .expect("deployment");
    let template = &deploy["spec"]["template"];
    let mut spec = template["spec"].clone();
    if mutated {
        spec["containers"][0]["env"].as_array_mut().expect("env").extend([
            json!({"name": "AZURE_CLIENT_ID", "value": CLIENT_ID}),
            json!({"name": "AZURE_TENANT_ID", "value": TENANT_ID}),
            json!({"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/var/run/secrets/azure/tokens/azure-identity-token"}),
            json!({"name": "AZURE_AUTHORITY_HOST", "value": "https://login.microsoftonline.com/"}),
        ]);
        spec["volumes"].as_array_mut().expect("volumes").push(json!({"name": "azure-identity-token", "projected": {
            "sources": [{"serviceAccountToken": {"audience": "api://AzureADTokenExchange", "expirationSeconds": 3600, "path": "azure-identity-token"}}]}}));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": format!("{controller}-7d9f8b6c5d-x2x4k"), "namespace": NS, "labels": template["metadata"]["labels"].clone()},
        "spec": spec,
        "status": {"phase": "Running"}
    })
}

/// A healthy AKS setup in webhook mode: source-controller wired, an ACR OCIRepository, the
/// webhook, an AKS node and running, mutated pods.
pub fn healthy_aks(minor: u32) -> Vec<Value> {
    healthy_aks_on(install(minor), minor)
}

/// [`healthy_aks`] on a given install of release 2.`minor` (one as `flux install --export`
/// writes it, say), which must hold a ServiceAccount and a Deployment of every controller.
pub fn healthy_aks_on(mut objects: Vec<Value>, minor: u32) -> Vec<Value> {
    wire_webhook(&mut objects, "source-controller");
    objects.push(oci_repository(minor, NS, "platform"));
    objects.push(aks_webhook());
    objects.push(aks_node());
    let pods: Vec<Value> = CONTROLLERS
        .iter()
        .map(|c| pod_of(&objects, c, *c == "source-controller"))
        .collect();
    objects.extend(pods);
    objects
}

/// A healthy non-AKS setup in manual mode: env and projected token, no webhook.
pub fn healthy_manual(minor: u32) -> Vec<Value> {
    let mut objects = install(minor);
    wire_manual(&mut objects, "source-controller");
    objects.push(oci_repository(minor, NS, "platform"));
    let pods: Vec<Value> = CONTROLLERS
        .iter()
        .map(|c| pod_of(&objects, c, false))
        .collect();
    objects.extend(pods);
    objects
}

/// A flux-operator CRD as controlplaneio-fluxcd/flux-operator declares it at v0.58.1
/// (config/crd/bases/fluxcd.controlplane.io_{fluxinstances,fluxreports}.yaml): namespaced,
/// `v1` served and stored, with a status subresource. The schema is left open, as for the
/// Flux CRDs here: the fake does not validate.
pub fn operator_crd(kind: &str) -> Value {
    let plural = format!("{}s", kind.to_lowercase());
    let categories = if kind == "FluxInstance" {
        json!(["fluxcd", "fluxcd-appliers"])
    } else {
        json!(["fluxcd"])
    };
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.fluxcd.controlplane.io")},
        "spec": {
            "group": "fluxcd.controlplane.io",
            "names": {"kind": kind, "listKind": format!("{kind}List"), "plural": plural,
                      "singular": kind.to_lowercase(), "categories": categories},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true,
                          "subresources": {"status": {}},
                          "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    })
}

/// The FluxInstance `flux` (the only name the CRD accepts) in the Flux namespace.
pub fn flux_instance(spec: Value) -> Value {
    let mut instance = json!({
        "apiVersion": "fluxcd.controlplane.io/v1",
        "kind": "FluxInstance",
        "metadata": {"name": "flux", "namespace": NS},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
                                   "message": "Reconciliation finished in 12s", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                   "lastAppliedRevision": "v2.7.3@sha256:2b1d7bd1e5e2c5b42f4a6b0e8e7f4c1d2a3b4c5d6e7f8091a2b3c4d5e6f70819"}
    });
    instance["spec"] = spec;
    instance
}

/// The FluxReport `flux` the operator keeps up to date in its namespace, from
/// api/v1/fluxreport_types.go at v0.58.1: distribution, components and sync status.
pub fn flux_report(
    version: &str,
    components: &[(&str, bool, &str)],
    sync: Option<(bool, &str)>,
) -> Value {
    let components: Vec<Value> = components
        .iter()
        .map(|(name, ready, status)| {
            json!({"name": name, "ready": ready, "status": status,
                                            "image": format!("ghcr.io/fluxcd/{name}:v1.7.0")})
        })
        .collect();
    let mut spec = json!({
        "distribution": {"entitlement": "Unknown", "status": "Installed", "version": version, "managedBy": "flux-operator"},
        "operator": {"apiVersion": "fluxcd.controlplane.io/v1", "version": "v0.58.1", "platform": "linux/amd64"},
        "components": components,
        "reconcilers": [{"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
                         "stats": {"running": 1, "failing": 1, "suspended": 0}}],
    });
    if let Some((ready, status)) = sync {
        spec["sync"] = json!({"id": "kustomization/flux-system", "path": "clusters/prod", "ready": ready,
                              "status": status, "source": "oci://contoso.azurecr.io/fleet"});
    }
    json!({
        "apiVersion": "fluxcd.controlplane.io/v1",
        "kind": "FluxReport",
        "metadata": {"name": "flux", "namespace": NS},
        "spec": spec,
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
                                   "message": "Reporting finished", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    })
}

/// What flux-operator installs from a FluxInstance: the install of release 2.`minor` whose
/// controllers and ServiceAccounts carry the labels the operator puts on everything it applies
/// (internal/builder/templates.go's LabelTransformer, and the owner labels its resource manager
/// sets, internal/controller/fluxinstance_controller.go at v0.58.1), the operator's CRDs, and
/// the FluxInstance itself with `spec`.
pub fn operator_install(minor: u32, spec: Value) -> Vec<Value> {
    let mut objects = install(minor);
    for object in &mut objects {
        if matches!(
            object["kind"].as_str(),
            Some("Deployment" | "ServiceAccount")
        ) {
            let labels = &mut object["metadata"]["labels"];
            labels["app.kubernetes.io/managed-by"] = json!("flux-operator");
            labels["app.kubernetes.io/instance"] = json!(NS);
            labels["fluxcd.controlplane.io/name"] = json!("flux");
            labels["fluxcd.controlplane.io/namespace"] = json!(NS);
        }
    }
    objects.push(operator_crd("FluxInstance"));
    objects.push(operator_crd("FluxReport"));
    objects.push(flux_instance(spec));
    objects
}

/// A CustomResourceDefinition of Azure Service Operator v2 as its release installs it: one
/// served version per ARM API version, with the `…storage` version ASO converts through as
/// the storage version (Azure/azure-service-operator `v2/api/{group}/`, CRD names
/// `{plural}.{group}`, category `azure`).
fn aso_crd(group: &str, kind: &str, versions: &[&str], storage: &str) -> Value {
    let lower = kind.to_lowercase();
    let plural = match lower.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None => format!("{lower}s"),
    };
    let mut entries: Vec<Value> = versions
        .iter()
        .map(|v| {
            json!({"name": v, "served": true, "storage": false,
                   "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}})
        })
        .collect();
    entries.push(json!({"name": storage, "served": true, "storage": true,
        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}));
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group,
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(),
                      "listKind": format!("{kind}List"), "categories": ["azure", group.split('.').next().unwrap_or_default()]},
            "scope": "Namespaced",
            "versions": entries
        }
    })
}

/// The CRDs of the Azure Service Operator kinds doctor reads: FederatedIdentityCredential and
/// UserAssignedIdentity (managedidentity.azure.com), RoleAssignment (authorization.azure.com).
pub fn aso_crds() -> Vec<Value> {
    vec![
        aso_crd(
            "managedidentity.azure.com",
            "UserAssignedIdentity",
            &["v1api20230131", "v1api20181130"],
            "v1api20230131storage",
        ),
        aso_crd(
            "managedidentity.azure.com",
            "FederatedIdentityCredential",
            &["v1api20230131", "v1api20220131preview"],
            "v1api20230131storage",
        ),
        aso_crd(
            "authorization.azure.com",
            "RoleAssignment",
            &["v1api20220401", "v1api20200801preview"],
            "v1api20220401storage",
        ),
    ]
}
