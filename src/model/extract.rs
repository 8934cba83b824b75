//! From raw API objects (JSON, as the API server or a manifest gives them) to the snapshot's
//! plain types. Live gathering and manifest loading both go through here, so a check sees the
//! same data whichever way the objects arrived. Missing or odd fields give empty values, never
//! an error: a half-written manifest is still worth diagnosing.

use serde_json::Value;

use super::{
    AsoReference, AzureKvShape, ConfigMapInfo, Container, DeclaredCredential, DeclaredIdentity,
    DeclaredPrincipal, DeclaredResource, DeclaredRoleAssignment, Decryption, EnvVar, FluxKind,
    FluxObject, KubeConfigRef, ObjectRef, Pod, PodIdentityBinding, ProjectedToken, SecretInfo,
    ServiceAccount, SourceRef, StringMap, Volume, VolumeMount, Webhook, Workload,
};
use crate::wiring::NON_SECRET_ENV;

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
}

fn string_at(value: &Value, path: &[&str]) -> Option<String> {
    str_at(value, path)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn array_at<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A string map such as labels; non-string values (a YAML `true` label) are kept as text.
fn map_at(value: &Value, path: &[&str]) -> StringMap {
    let Some(object) = path
        .iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_object)
    else {
        return StringMap::new();
    };
    object
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}

pub fn kind_of(value: &Value) -> &str {
    str_at(value, &["kind"]).unwrap_or_default()
}

pub fn api_version_of(value: &Value) -> &str {
    str_at(value, &["apiVersion"]).unwrap_or_default()
}

pub fn name_of(value: &Value) -> &str {
    str_at(value, &["metadata", "name"]).unwrap_or_default()
}

pub fn namespace_of(value: &Value) -> Option<&str> {
    str_at(value, &["metadata", "namespace"]).filter(|ns| !ns.is_empty())
}

pub fn service_account(value: &Value, default_namespace: &str) -> ServiceAccount {
    ServiceAccount {
        namespace: namespace_of(value).unwrap_or(default_namespace).to_string(),
        name: name_of(value).to_string(),
        labels: map_at(value, &["metadata", "labels"]),
        annotations: map_at(value, &["metadata", "annotations"]),
        image_pull_secrets: array_at(value, &["imagePullSecrets"])
            .iter()
            .filter_map(|s| string_at(s, &["name"]))
            .collect(),
    }
}

/// The fields of `apps/v1` DeploymentSpec and PodTemplateSpec (k8s.io/api apps/v1 types.go).
const DEPLOYMENT_SPEC_FIELDS: [&str; 8] = [
    "minReadySeconds",
    "paused",
    "progressDeadlineSeconds",
    "replicas",
    "revisionHistoryLimit",
    "selector",
    "strategy",
    "template",
];
const POD_TEMPLATE_FIELDS: [&str; 2] = ["metadata", "spec"];

/// Fields a Deployment has that its API does not: what a patch written at the wrong level
/// leaves behind (`spec.containers` instead of `spec.template.spec.containers`).
fn unknown_deployment_fields(value: &Value) -> Vec<String> {
    let keys = |path: &str| -> Vec<String> {
        value
            .pointer(path)
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let mut unknown: Vec<String> = keys("/spec")
        .into_iter()
        .filter(|k| !DEPLOYMENT_SPEC_FIELDS.contains(&k.as_str()))
        .map(|k| format!("spec.{k}"))
        .collect();
    unknown.extend(
        keys("/spec/template")
            .into_iter()
            .filter(|k| !POD_TEMPLATE_FIELDS.contains(&k.as_str()))
            .map(|k| format!("spec.template.{k}")),
    );
    unknown
}

pub fn workload(value: &Value, default_namespace: &str) -> Workload {
    let pod_spec = value.pointer("/spec/template/spec").unwrap_or(&Value::Null);
    Workload {
        namespace: namespace_of(value).unwrap_or(default_namespace).to_string(),
        name: name_of(value).to_string(),
        labels: map_at(value, &["metadata", "labels"]),
        annotations: map_at(value, &["metadata", "annotations"]),
        selector: map_at(value, &["spec", "selector", "matchLabels"]),
        template_labels: map_at(value, &["spec", "template", "metadata", "labels"]),
        template_annotations: map_at(value, &["spec", "template", "metadata", "annotations"]),
        service_account: service_account_name(pod_spec),
        containers: containers(pod_spec),
        volumes: volumes(pod_spec),
        unknown_fields: unknown_deployment_fields(value),
        env_from_config_maps: array_at(pod_spec, &["containers"])
            .iter()
            .flat_map(|c| array_at(c, &["envFrom"]))
            .filter_map(|e| string_at(e, &["configMapRef", "name"]))
            .collect(),
    }
}

pub fn pod(value: &Value, default_namespace: &str) -> Pod {
    let spec = value.get("spec").unwrap_or(&Value::Null);
    Pod {
        namespace: namespace_of(value).unwrap_or(default_namespace).to_string(),
        name: name_of(value).to_string(),
        labels: map_at(value, &["metadata", "labels"]),
        phase: string_at(value, &["status", "phase"]),
        containers: containers(spec),
        volumes: volumes(spec),
        silenced: ignore_list(value).unwrap_or_default(),
    }
}

fn service_account_name(pod_spec: &Value) -> String {
    string_at(pod_spec, &["serviceAccountName"])
        .or_else(|| string_at(pod_spec, &["serviceAccount"]))
        .unwrap_or_else(|| "default".to_string())
}

fn containers(pod_spec: &Value) -> Vec<Container> {
    array_at(pod_spec, &["containers"])
        .iter()
        .map(|c| Container {
            name: string_at(c, &["name"]).unwrap_or_default(),
            image: string_at(c, &["image"]).unwrap_or_default(),
            args: array_at(c, &["args"])
                .iter()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect(),
            env: array_at(c, &["env"]).iter().map(env_var).collect(),
            volume_mounts: array_at(c, &["volumeMounts"])
                .iter()
                .map(|m| VolumeMount {
                    name: string_at(m, &["name"]).unwrap_or_default(),
                    mount_path: string_at(m, &["mountPath"]).unwrap_or_default(),
                    sub_path: string_at(m, &["subPath"]),
                })
                .collect(),
        })
        .collect()
}

pub fn env_var(value: &Value) -> EnvVar {
    let name = string_at(value, &["name"]).unwrap_or_default();
    let keep_value = NON_SECRET_ENV.contains(&name.as_str());
    EnvVar {
        value: if keep_value {
            str_at(value, &["value"]).map(str::to_string)
        } else {
            None
        },
        from_ref: value.get("valueFrom").is_some(),
        name,
    }
}

pub fn volumes(pod_spec: &Value) -> Vec<Volume> {
    array_at(pod_spec, &["volumes"])
        .iter()
        .map(|v| Volume {
            name: string_at(v, &["name"]).unwrap_or_default(),
            projected_tokens: array_at(v, &["projected", "sources"])
                .iter()
                .filter_map(|s| s.get("serviceAccountToken"))
                .map(|t| ProjectedToken {
                    audience: string_at(t, &["audience"]),
                    path: string_at(t, &["path"]).unwrap_or_default(),
                    expiration_seconds: t.get("expirationSeconds").and_then(Value::as_i64),
                })
                .collect(),
            secret_name: string_at(v, &["secret", "secretName"]),
        })
        .collect()
}

pub fn config_map(value: &Value, default_namespace: &str) -> ConfigMapInfo {
    ConfigMapInfo {
        namespace: namespace_of(value).unwrap_or(default_namespace).to_string(),
        name: name_of(value).to_string(),
        data: map_at(value, &["data"]),
    }
}

/// Keys under which Flux looks for a kubeconfig in a Secret.
const KUBECONFIG_KEYS: [&str; 2] = ["value", "value.yaml"];

/// A Secret reduced to its key names. A kubeconfig value is decoded only to learn which exec
/// command its user runs; nothing of the value is kept.
pub fn secret(value: &Value, default_namespace: &str) -> SecretInfo {
    use base64::Engine as _;
    let encrypted = value.get("sops").is_some();
    let data = value.get("data").and_then(Value::as_object);
    let string_data = value.get("stringData").and_then(Value::as_object);
    let mut keys: Vec<String> = data
        .into_iter()
        .chain(string_data)
        .flat_map(|m| m.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    let kubeconfig_exec = if encrypted {
        None
    } else {
        KUBECONFIG_KEYS.iter().find_map(|key| {
            let text = string_data
                .and_then(|m| m.get(*key))
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| {
                    let encoded = data?.get(*key)?.as_str()?;
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(encoded.trim())
                        .ok()?;
                    String::from_utf8(bytes).ok()
                })?;
            kubeconfig_exec_command(&text)
        })
    };
    let azure_kv = if encrypted {
        None
    } else {
        secret_text(data, string_data, "sops.azure-kv").and_then(|t| azure_kv_shape(&t))
    };
    SecretInfo {
        namespace: namespace_of(value).unwrap_or(default_namespace).to_string(),
        name: name_of(value).to_string(),
        keys,
        azure_kv,
        encrypted,
        kubeconfig_exec,
    }
}

/// The text of a Secret's key, from `stringData` or decoded from `data`.
fn secret_text(
    data: Option<&serde_json::Map<String, Value>>,
    string_data: Option<&serde_json::Map<String, Value>>,
    key: &str,
) -> Option<String> {
    use base64::Engine as _;
    if let Some(text) = string_data.and_then(|m| m.get(key)).and_then(Value::as_str) {
        return Some(text.to_string());
    }
    let encoded = data?.get(key)?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The field names of a `sops.azure-kv` value (YAML or JSON), and its client ID when it is a
/// UUID. Nothing else of the value is kept.
fn azure_kv_shape(text: &str) -> Option<AzureKvShape> {
    let doc: Value = serde_saphyr::from_str(text).ok()?;
    let map = doc.as_object()?;
    let mut fields: Vec<String> = map
        .iter()
        .filter(|(_, v)| v.as_str().is_none_or(|s| !s.is_empty()))
        .map(|(k, _)| k.clone())
        .collect();
    fields.sort();
    let client_id = ["clientId", "appId"]
        .iter()
        .find_map(|k| map.get(*k).and_then(Value::as_str))
        .filter(|id| crate::wiring::is_uuid(id))
        .map(str::to_string);
    Some(AzureKvShape { fields, client_id })
}

/// An `aadpodidentity.k8s.io` AzureIdentityBinding (identity resolved later).
pub fn pod_identity_binding(value: &Value, default_namespace: &str) -> PodIdentityBinding {
    PodIdentityBinding {
        namespace: namespace_of(value).unwrap_or(default_namespace).to_string(),
        name: name_of(value).to_string(),
        selector: string_at(value, &["spec", "selector"]).unwrap_or_default(),
        identity: string_at(value, &["spec", "azureIdentity"]).unwrap_or_default(),
        client_id: None,
    }
}

/// The client ID of an `aadpodidentity.k8s.io` AzureIdentity.
pub fn pod_identity_client_id(value: &Value) -> Option<String> {
    string_at(value, &["spec", "clientID"])
}

/// An Azure Service Operator `FederatedIdentityCredential` (managedidentity.azure.com).
pub fn declared_credential(value: &Value, default_namespace: &str) -> DeclaredCredential {
    let spec = value.get("spec").unwrap_or(&Value::Null);
    DeclaredCredential {
        namespace: namespace_of(value).unwrap_or(default_namespace).to_string(),
        name: name_of(value).to_string(),
        owner: string_at(spec, &["owner", "name"]),
        issuer: string_at(spec, &["issuer"]),
        subject: string_at(spec, &["subject"]),
        audiences: array_at(spec, &["audiences"])
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect(),
    }
}

/// An Azure Service Operator `UserAssignedIdentity` (managedidentity.azure.com).
pub fn declared_identity(value: &Value, default_namespace: &str) -> DeclaredIdentity {
    let name = name_of(value).to_string();
    let config = value.pointer("/spec/operatorSpec/configMaps/principalId");
    DeclaredIdentity {
        namespace: namespace_of(value).unwrap_or(default_namespace).to_string(),
        azure_name: string_at(value, &["spec", "azureName"]).unwrap_or_else(|| name.clone()),
        name,
        principal_id_config: config
            .and_then(|c| Some((string_at(c, &["name"])?, string_at(c, &["key"])?))),
    }
}

/// An ASO reference (`armId`, or `group`/`kind`/`name`, or `wellKnownName`).
fn aso_reference(value: Option<&Value>) -> Option<AsoReference> {
    let value = value?;
    if let Some(id) = string_at(value, &["armId"]) {
        return Some(AsoReference::ArmId(id));
    }
    if let Some(name) = string_at(value, &["wellKnownName"]) {
        return Some(AsoReference::WellKnown(name));
    }
    Some(AsoReference::Object {
        group: string_at(value, &["group"]),
        kind: string_at(value, &["kind"]),
        name: string_at(value, &["name"])?,
    })
}

/// An Azure Service Operator `RoleAssignment` (authorization.azure.com, `RoleAssignment_Spec`
/// of v1api20220401: `principalId` or `principalIdFromConfig`, `roleDefinitionReference`,
/// `owner`, `condition`, `conditionVersion`).
pub fn declared_role_assignment(value: &Value, default_namespace: &str) -> DeclaredRoleAssignment {
    let spec = value.get("spec").unwrap_or(&Value::Null);
    let principal = if let Some(id) = string_at(spec, &["principalId"]) {
        DeclaredPrincipal::Id(id)
    } else if let Some(config) = spec.get("principalIdFromConfig")
        && let (Some(name), Some(key)) = (string_at(config, &["name"]), string_at(config, &["key"]))
    {
        DeclaredPrincipal::FromConfig { name, key }
    } else {
        DeclaredPrincipal::Missing
    };
    DeclaredRoleAssignment {
        namespace: namespace_of(value).unwrap_or(default_namespace).to_string(),
        name: name_of(value).to_string(),
        principal,
        role: aso_reference(spec.get("roleDefinitionReference")),
        owner: aso_reference(spec.get("owner")),
        condition: string_at(spec, &["condition"]),
        condition_version: string_at(spec, &["conditionVersion"]),
    }
}

/// The ASO groups and kinds a role assignment can be owned by, among those doctor resolves.
pub const ASO_SCOPE_KINDS: [(&str, &str); 6] = [
    ("containerregistry.azure.com", "Registry"),
    ("storage.azure.com", "StorageAccount"),
    ("keyvault.azure.com", "Vault"),
    ("eventhub.azure.com", "Namespace"),
    ("containerservice.azure.com", "ManagedCluster"),
    ("resources.azure.com", "ResourceGroup"),
];

/// An ASO resource a role assignment can be owned by, if the object is one.
pub fn declared_resource(value: &Value, default_namespace: &str) -> Option<DeclaredResource> {
    let group = api_version_of(value).split('/').next().unwrap_or_default();
    let kind = kind_of(value);
    ASO_SCOPE_KINDS
        .iter()
        .any(|(g, k)| *g == group && *k == kind)
        .then(|| {
            let name = name_of(value).to_string();
            DeclaredResource {
                namespace: namespace_of(value).unwrap_or(default_namespace).to_string(),
                group: group.to_string(),
                kind: kind.to_string(),
                azure_name: string_at(value, &["spec", "azureName"])
                    .unwrap_or_else(|| name.clone()),
                name,
                owner: aso_reference(value.pointer("/spec/owner")),
            }
        })
}

/// The exec command of the first user in a kubeconfig that has one.
fn kubeconfig_exec_command(text: &str) -> Option<String> {
    let doc: Value = serde_saphyr::from_str(text).ok()?;
    array_at(&doc, &["users"])
        .iter()
        .find_map(|u| string_at(u, &["user", "exec", "command"]))
}

/// The Azure workload identity webhooks in a `MutatingWebhookConfiguration`, if it is one.
pub fn workload_identity_webhook(value: &Value) -> Option<Webhook> {
    let name = name_of(value);
    let hooks = array_at(value, &["webhooks"]);
    let is_wi = name.starts_with("azure-wi-webhook")
        || hooks.iter().any(|h| {
            str_at(h, &["name"]).is_some_and(|n| n.ends_with("azure-workload-identity.io"))
        });
    is_wi.then(|| Webhook {
        name: name.to_string(),
        service_namespace: hooks
            .iter()
            .find_map(|h| string_at(h, &["clientConfig", "service", "namespace"])),
    })
}

/// Whether a Node runs on AKS: Azure provider ID and the AKS node labels.
pub fn is_aks_node(value: &Value) -> bool {
    let azure_provider =
        str_at(value, &["spec", "providerID"]).is_some_and(|p| p.starts_with("azure://"));
    let aks_labels = map_at(value, &["metadata", "labels"])
        .keys()
        .any(|k| k.starts_with("kubernetes.azure.com/"));
    azure_provider && aks_labels
}

pub fn flux_object(value: &Value, default_namespace: &str) -> Option<FluxObject> {
    let kind = FluxKind::from_api(api_version_of(value), kind_of(value))?;
    Some(flux_object_as(kind, value, default_namespace))
}

/// A Flux object whose kind is already known (list items may omit `kind`).
pub fn flux_object_as(kind: FluxKind, value: &Value, default_namespace: &str) -> FluxObject {
    let spec = value.get("spec").unwrap_or(&Value::Null);
    let url = match kind {
        FluxKind::ImageRepository => string_at(spec, &["image"]),
        FluxKind::Bucket => string_at(spec, &["endpoint"]),
        FluxKind::Provider => string_at(spec, &["address"]),
        _ => string_at(spec, &["url"]),
    };
    let sa = string_at(spec, &["serviceAccountName"]);
    let impersonates = matches!(kind, FluxKind::Kustomization | FluxKind::HelmRelease);
    FluxObject {
        kind: Some(kind),
        api_version: api_version_of(value).to_string(),
        namespace: namespace_of(value).unwrap_or(default_namespace).to_string(),
        name: name_of(value).to_string(),
        provider: string_at(spec, &["provider"]),
        type_: string_at(spec, &["type"]),
        url,
        service_account_name: if impersonates { None } else { sa.clone() },
        impersonation_service_account: if impersonates { sa } else { None },
        secret_ref: string_at(spec, &["secretRef", "name"]),
        decryption: spec.get("decryption").map(|d| Decryption {
            provider: string_at(d, &["provider"]),
            secret_ref: string_at(d, &["secretRef", "name"]),
            service_account_name: string_at(d, &["serviceAccountName"]),
        }),
        kube_config: spec.get("kubeConfig").map(|k| KubeConfigRef {
            secret_ref: string_at(k, &["secretRef", "name"]),
            config_map_ref: string_at(k, &["configMapRef", "name"]),
        }),
        channel: (kind == FluxKind::Provider)
            .then(|| string_at(spec, &["channel"]))
            .flatten(),
        bucket_name: (kind == FluxKind::Bucket)
            .then(|| string_at(spec, &["bucketName"]))
            .flatten(),
        source_ref: spec.get("sourceRef").map(|s| SourceRef {
            kind: string_at(s, &["kind"]).unwrap_or_default(),
            namespace: string_at(s, &["namespace"]),
            name: string_at(s, &["name"]).unwrap_or_default(),
        }),
        chart: (kind == FluxKind::HelmRelease)
            .then(|| string_at(spec, &["chart", "spec", "chart"]))
            .flatten(),
        labels: map_at(value, &["metadata", "labels"]),
        silenced: ignore_list(value).unwrap_or_default(),
    }
}

/// The check IDs or names an object's `azflux.io/ignore` annotation lists, if it has one.
pub fn ignore_list(value: &Value) -> Option<Vec<String>> {
    let listed = value
        .pointer("/metadata/annotations")?
        .get(crate::checks::select::IGNORE_ANNOTATION)?
        .as_str()?;
    Some(split_ignore_list(listed))
}

/// `AZF022, sa-missing-tenant-id` as its entries.
pub fn split_ignore_list(listed: &str) -> Vec<String> {
    listed
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

/// The checks an object's `azflux.io/ignore` annotation silences on it, with the object they
/// apply to (namespaced objects without a namespace are in `default_namespace`).
pub fn silenced_checks(value: &Value, default_namespace: &str) -> Option<(ObjectRef, Vec<String>)> {
    let keys = ignore_list(value)?;
    Some((object_ref_of(value, default_namespace), keys))
}

/// The reference findings use for an object: cluster-scoped kinds without a namespace,
/// namespaced ones in `default_namespace` when the manifest names none.
pub fn object_ref_of(value: &Value, default_namespace: &str) -> ObjectRef {
    let kind = kind_of(value);
    let name = name_of(value);
    if matches!(
        kind,
        "Namespace" | "Node" | "ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition"
    ) {
        ObjectRef::cluster_scoped(kind, name)
    } else {
        ObjectRef::namespaced(kind, namespace_of(value).unwrap_or(default_namespace), name)
    }
}

/// The components flux-operator installs when `.spec.components` is empty
/// (api/v1/fluxinstance_types.go GetComponents @ v0.58.1).
pub const OPERATOR_DEFAULT_COMPONENTS: [&str; 4] = [
    "source-controller",
    "kustomize-controller",
    "helm-controller",
    "notification-controller",
];

/// The `Ready` condition of an object's status: whether it is `True`, and its message.
fn ready_condition(value: &Value) -> Option<(bool, String)> {
    array_at(value, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == Some("Ready"))
        .map(|c| {
            (
                str_at(c, &["status"]) == Some("True"),
                str_at(c, &["message"]).unwrap_or_default().to_string(),
            )
        })
}

pub fn flux_instance(value: &Value, default_namespace: &str) -> super::FluxInstanceInfo {
    let cluster = &value["spec"]["cluster"];
    let mut components: Vec<String> = array_at(value, &["spec", "components"])
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    if components.is_empty() {
        components = OPERATOR_DEFAULT_COMPONENTS
            .iter()
            .map(ToString::to_string)
            .collect();
    }
    let patches = array_at(value, &["spec", "kustomize", "patches"]);
    super::FluxInstanceInfo {
        namespace: string_at(value, &["metadata", "namespace"])
            .unwrap_or_else(|| default_namespace.to_string()),
        name: string_at(value, &["metadata", "name"]).unwrap_or_default(),
        labels: map_at(value, &["metadata", "labels"]),
        distribution_version: string_at(value, &["spec", "distribution", "version"]),
        components,
        cluster_type: string_at(cluster, &["type"]),
        object_level: cluster["objectLevelWorkloadIdentity"].as_bool() == Some(true),
        multitenant_workload_identity: cluster["multitenantWorkloadIdentity"].as_bool()
            == Some(true),
        patches: patches.len(),
        identity_values: patches
            .iter()
            .enumerate()
            .flat_map(|(index, patch)| patched_values(index, patch))
            .collect(),
        sync: string_at(value, &["spec", "sync", "kind"]).map(|kind| {
            (
                kind,
                string_at(value, &["spec", "sync", "url"]).unwrap_or_default(),
            )
        }),
        ready: ready_condition(value),
        last_applied_revision: string_at(value, &["status", "lastAppliedRevision"]),
    }
}

const IDENTITY_ANNOTATIONS: [&str; 2] = [
    "azure.workload.identity/client-id",
    "azure.workload.identity/tenant-id",
];
const IDENTITY_ENV: [&str; 2] = ["AZURE_CLIENT_ID", "AZURE_TENANT_ID"];

/// The workload identity values a kustomize patch sets: the ServiceAccount annotations and the
/// env vars of a strategic merge patch, or the same fields in JSON 6902 operations. A patch
/// that does not parse sets nothing this can tell.
fn patched_values(index: usize, patch: &Value) -> Vec<super::PatchedValue> {
    let Some(body) = patch["patch"]
        .as_str()
        .and_then(|text| serde_saphyr::from_str::<Value>(text).ok())
    else {
        return Vec::new();
    };
    let target_kind = str_at(patch, &["target", "kind"]).or_else(|| str_at(&body, &["kind"]));
    let target_name = str_at(patch, &["target", "name"])
        .or_else(|| str_at(&body, &["metadata", "name"]))
        .unwrap_or_default();
    let mut found: Vec<(String, String)> = Vec::new();
    let from_object = |object: &Value, found: &mut Vec<(String, String)>| {
        for key in IDENTITY_ANNOTATIONS {
            if let Some(v) = str_at(object, &["metadata", "annotations", key]) {
                found.push((format!("annotation `{key}`"), v.to_string()));
            }
        }
        for container in array_at(object, &["spec", "template", "spec", "containers"]) {
            env_values(array_at(container, &["env"]), found);
        }
    };
    match &body {
        Value::Array(operations) => {
            for op in operations {
                let pointer = str_at(op, &["path"]).unwrap_or_default();
                let value = &op["value"];
                for key in IDENTITY_ANNOTATIONS {
                    if pointer.ends_with(&format!("/annotations/{}", key.replace('/', "~1")))
                        && let Some(v) = value.as_str()
                    {
                        found.push((format!("annotation `{key}`"), v.to_string()));
                    }
                    if pointer.ends_with("/annotations")
                        && let Some(v) = str_at(value, &[key])
                    {
                        found.push((format!("annotation `{key}`"), v.to_string()));
                    }
                }
                if pointer.contains("/env") {
                    match value {
                        Value::Array(list) => env_values(list, &mut found),
                        one => env_values(std::slice::from_ref(one), &mut found),
                    }
                }
            }
        }
        object => from_object(object, &mut found),
    }
    found
        .into_iter()
        .map(|(field, value)| super::PatchedValue {
            patch: index,
            kind: target_kind.unwrap_or_default().to_string(),
            target: target_name.to_string(),
            field,
            value,
        })
        .collect()
}

fn env_values(env: &[Value], found: &mut Vec<(String, String)>) {
    for var in env {
        if let (Some(name), Some(value)) = (str_at(var, &["name"]), str_at(var, &["value"]))
            && IDENTITY_ENV.contains(&name)
        {
            found.push((format!("env {name}"), value.to_string()));
        }
    }
}

pub fn flux_report(value: &Value, default_namespace: &str) -> super::FluxReportInfo {
    let spec = &value["spec"];
    super::FluxReportInfo {
        namespace: string_at(value, &["metadata", "namespace"])
            .unwrap_or_else(|| default_namespace.to_string()),
        name: string_at(value, &["metadata", "name"]).unwrap_or_default(),
        status: string_at(spec, &["distribution", "status"]),
        version: string_at(spec, &["distribution", "version"]),
        managed_by: string_at(spec, &["distribution", "managedBy"]),
        components: array_at(spec, &["components"])
            .iter()
            .map(|c| {
                (
                    str_at(c, &["name"]).unwrap_or_default().to_string(),
                    c["ready"].as_bool() == Some(true),
                    str_at(c, &["status"]).unwrap_or_default().to_string(),
                )
            })
            .collect(),
        failing: array_at(spec, &["reconcilers"])
            .iter()
            .filter_map(|r| {
                let failing = r["stats"]["failing"].as_u64().filter(|n| *n > 0)?;
                Some((str_at(r, &["kind"])?.to_string(), failing))
            })
            .collect(),
        sync: spec.get("sync").filter(|s| s.is_object()).map(|s| {
            (
                str_at(s, &["id"]).unwrap_or_default().to_string(),
                s["ready"].as_bool() == Some(true),
                str_at(s, &["status"]).unwrap_or_default().to_string(),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_env_values_are_dropped() {
        let deploy = json!({
            "metadata": {"name": "source-controller", "namespace": "flux-system"},
            "spec": {"template": {"spec": {"containers": [{
                "name": "manager",
                "env": [
                    {"name": "AZURE_CLIENT_ID", "value": "abc"},
                    {"name": "AZURE_CLIENT_SECRET", "value": "s3cr3t"},
                    {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "x", "key": "y"}}}
                ]
            }]}}}
        });
        let w = workload(&deploy, "flux-system");
        let env = &w.containers[0].env;
        assert_eq!(env[0].value.as_deref(), Some("abc"));
        assert_eq!(env[1].value, None);
        assert!(env[2].from_ref);
        assert_eq!(w.service_account, "default");
    }

    #[test]
    fn kustomization_service_account_is_impersonation_not_identity() {
        let ks = json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": "apps", "namespace": "team-a"},
            "spec": {"serviceAccountName": "reconciler", "decryption": {"provider": "sops", "serviceAccountName": "sops-kv"}}
        });
        let obj = flux_object(&ks, "default").unwrap();
        assert_eq!(obj.service_account_name, None);
        assert_eq!(
            obj.impersonation_service_account.as_deref(),
            Some("reconciler")
        );
        assert_eq!(
            obj.decryption.unwrap().service_account_name.as_deref(),
            Some("sops-kv")
        );
    }

    #[test]
    fn secrets_keep_key_names_and_the_exec_command_only() {
        use base64::Engine as _;
        let kubeconfig = "users:\n- name: u\n  user:\n    exec:\n      command: kubelogin\n      args: [get-token]\n";
        let encoded = base64::engine::general_purpose::STANDARD.encode(kubeconfig);
        let secret_doc = json!({"metadata": {"name": "remote"}, "data": {"value": encoded, "token": "c2VjcmV0"}});
        let info = secret(&secret_doc, "ns");
        assert_eq!(info.keys, vec!["token", "value"]);
        assert_eq!(info.kubeconfig_exec.as_deref(), Some("kubelogin"));
        assert!(!format!("{info:?}").contains("c2VjcmV0"));
    }

    #[test]
    fn non_flux_objects_are_ignored() {
        let ks = json!({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"});
        assert!(flux_object(&ks, "default").is_none());
    }

    #[test]
    fn webhook_recognised_by_webhook_name() {
        let mwc = json!({
            "metadata": {"name": "custom"},
            "webhooks": [{"name": "mutation.azure-workload-identity.io",
                          "clientConfig": {"service": {"namespace": "kube-system"}}}]
        });
        let hook = workload_identity_webhook(&mwc).unwrap();
        assert_eq!(hook.service_namespace.as_deref(), Some("kube-system"));
        assert!(workload_identity_webhook(&json!({"metadata": {"name": "other"}})).is_none());
    }

    #[test]
    fn azure_kv_keeps_field_names_and_the_client_id_only() {
        let secret_doc = json!({"metadata": {"name": "sops-keys"}, "stringData": {
            "sops.azure-kv": "clientId: 1a56e740-6165-4bd9-b29a-70f9aa1e4069\n"}});
        let info = secret(&secret_doc, "flux-system");
        let shape = info.azure_kv.unwrap();
        assert_eq!(shape.fields, vec!["clientId"]);
        assert_eq!(
            shape.credential(),
            crate::model::AzureKvCredential::ManagedIdentity
        );
        let full = json!({"metadata": {"name": "sp"}, "stringData": {
            "sops.azure-kv": "tenantId: t\nclientId: c\nclientSecret: canary-value-91f\n"}});
        let info = secret(&full, "flux-system");
        assert!(!format!("{info:?}").contains("canary-value-91f"));
        assert_eq!(
            info.azure_kv.unwrap().credential(),
            crate::model::AzureKvCredential::ClientSecret
        );
        let encrypted = json!({"metadata": {"name": "enc"}, "sops": {"azure_kv": []},
            "stringData": {"sops.azure-kv": "ENC[AES256_GCM,data:x]"}});
        assert!(secret(&encrypted, "ns").azure_kv.is_none());
    }

    #[test]
    fn fields_a_deployment_does_not_have_are_named() {
        let deploy = json!({"metadata": {"name": "kustomize-controller"},
            "spec": {"containers": [{"name": "manager"}], "template": {"metadata": {}, "spec": {}, "labels": {}}}});
        assert_eq!(
            workload(&deploy, "flux-system").unknown_fields,
            vec!["spec.containers", "spec.template.labels"]
        );
    }

    #[test]
    fn identity_values_of_merge_and_json_patches() {
        let instance = serde_json::json!({"metadata": {"name": "flux", "namespace": "flux-system"},
        "spec": {"kustomize": {"patches": [
            {"target": {"kind": "Deployment", "name": "kustomize-controller"},
             "patch": "- op: add\n  path: /spec/template/spec/containers/0/env/-\n  value:\n    name: AZURE_CLIENT_ID\n    value: CLIENT_ID\n"},
            {"target": {"kind": "ServiceAccount"},
             "patch": "- op: add\n  path: /metadata/annotations/azure.workload.identity~1tenant-id\n  value: <TENANT>\n"},
            {"patch": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: source-controller\nspec:\n  template:\n    spec:\n      containers:\n      - name: manager\n        env:\n        - name: AZURE_TENANT_ID\n          value: t\n"},
            {"patch": "not: [valid"}
        ]}}});
        let info = flux_instance(&instance, "flux-system");
        assert_eq!(info.patches, 4);
        assert_eq!(info.components, OPERATOR_DEFAULT_COMPONENTS);
        let values: Vec<(usize, &str, &str, &str, &str)> = info
            .identity_values
            .iter()
            .map(|v| {
                (
                    v.patch,
                    v.kind.as_str(),
                    v.target.as_str(),
                    v.field.as_str(),
                    v.value.as_str(),
                )
            })
            .collect();
        assert_eq!(
            values,
            [
                (
                    0,
                    "Deployment",
                    "kustomize-controller",
                    "env AZURE_CLIENT_ID",
                    "CLIENT_ID"
                ),
                (
                    1,
                    "ServiceAccount",
                    "",
                    "annotation `azure.workload.identity/tenant-id`",
                    "<TENANT>"
                ),
                (
                    2,
                    "Deployment",
                    "source-controller",
                    "env AZURE_TENANT_ID",
                    "t"
                ),
            ]
        );
    }
}
