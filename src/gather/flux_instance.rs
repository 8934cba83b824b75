//! A flux-operator FluxInstance read as the objects the operator makes of it, so the checks run
//! on what will run: a ServiceAccount and a Deployment per component, with the flags its
//! `.spec.cluster` settings add, the `.spec.kustomize.patches` applied by kustomize (as the
//! operator applies them), and the sync objects of `.spec.sync`. Facts from
//! controlplaneio-fluxcd/flux-operator api/v1/fluxinstance_types.go and
//! internal/builder/{profiles,workload_identity}.go @ 17c6aead.

use serde_json::{Value, json};

use super::manifests::{self, Document, ManifestError};
use crate::model::version::OBJECT_LEVEL_GATE;

/// The components the operator installs when `.spec.components` is empty.
const DEFAULT_COMPONENTS: [&str; 4] = [
    "source-controller",
    "kustomize-controller",
    "helm-controller",
    "notification-controller",
];

/// What a FluxInstance expands to.
#[derive(Debug, Default)]
pub struct Expanded {
    pub docs: Vec<Document>,
    pub notes: Vec<String>,
}

pub fn is_flux_instance(value: &Value) -> bool {
    value["kind"] == "FluxInstance"
        && value["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("fluxcd.controlplane.io/"))
}

/// The objects the operator creates from `instance`, leaving out components in `present`
/// (Deployments that the inputs hold already).
pub fn expand(
    instance: &Value,
    origin: &str,
    present: &[String],
) -> Result<Expanded, ManifestError> {
    let namespace = instance["metadata"]["namespace"]
        .as_str()
        .unwrap_or("flux-system");
    let name = instance["metadata"]["name"].as_str().unwrap_or("flux");
    let spec = &instance["spec"];
    let mut expanded = Expanded::default();
    let (version, version_note) = distribution_version(spec["distribution"]["version"].as_str());
    let registry = spec["distribution"]["registry"]
        .as_str()
        .unwrap_or("ghcr.io/fluxcd")
        .trim_end_matches('/');
    let components: Vec<String> = match spec["components"].as_array() {
        Some(list) if !list.is_empty() => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => DEFAULT_COMPONENTS.iter().map(ToString::to_string).collect(),
    };
    let labels = json!({
        "app.kubernetes.io/managed-by": "flux-operator",
        "app.kubernetes.io/part-of": "flux",
        "fluxcd.controlplane.io/name": name,
        "fluxcd.controlplane.io/namespace": namespace,
    });
    let mut objects = Vec::new();
    for component in components.iter().filter(|c| !present.contains(c)) {
        let mut component_labels = labels.clone();
        component_labels["app.kubernetes.io/component"] = json!(component);
        if let Some(version) = &version {
            component_labels["app.kubernetes.io/version"] = json!(version);
        }
        objects.push(json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": component, "namespace": namespace, "labels": component_labels},
        }));
        objects.push(deployment(
            component,
            namespace,
            registry,
            &component_labels,
            &spec["cluster"],
        ));
    }
    objects.extend(sync_objects(&spec["sync"], namespace, &labels));
    let patches = spec["kustomize"]["patches"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let built = if patches.is_empty() {
        objects
    } else {
        with_patches(&objects, &patches, origin)?
    };
    expanded.notes.push(format!(
        "{origin}: FluxInstance {namespace}/{name} read as the objects the operator creates: {} ({version_note}), {} patch(es) applied{}",
        components.join(", "),
        patches.len(),
        spec["sync"]["kind"]
            .as_str()
            .map(|kind| format!(", sync {kind} {namespace}/{}", sync_name(&spec["sync"], namespace)))
            .unwrap_or_default()
    ));
    expanded.docs = built
        .into_iter()
        .map(|value| {
            Document::whole(
                format!("{origin} (FluxInstance {namespace}/{name})"),
                None,
                value,
            )
        })
        .collect();
    Ok(expanded)
}

/// The Flux release a distribution version selects, as the version label the controllers
/// carry, and how it was read. `2.7.x` asks the operator for the newest 2.7 patch, which this
/// cannot know: it is read as 2.7.0, so patch-level features count as missing.
fn distribution_version(version: Option<&str>) -> (Option<String>, String) {
    let Some(text) = version.map(str::trim) else {
        return (
            None,
            "no distribution version: the release is unknown".to_string(),
        );
    };
    let parts: Vec<&str> = text.trim_start_matches('v').split('.').collect();
    let number = |s: &str| s.parse::<u64>().ok();
    match parts.as_slice() {
        [major, minor, patch] if number(major).is_some() && number(minor).is_some() => {
            match number(patch) {
                Some(_) => (
                    Some(format!("v{major}.{minor}.{patch}")),
                    format!("Flux v{major}.{minor}.{patch}"),
                ),
                None if *patch == "x" || *patch == "*" => (
                    Some(format!("v{major}.{minor}.0")),
                    format!(
                        "distribution {text} read as Flux v{major}.{minor}.0, the oldest release it allows"
                    ),
                ),
                None => (
                    None,
                    format!(
                        "distribution {text}: not a version this reads; the release is unknown"
                    ),
                ),
            }
        }
        _ => (
            None,
            format!("distribution {text}: a range this does not read; the release is unknown"),
        ),
    }
}

fn deployment(
    component: &str,
    namespace: &str,
    registry: &str,
    labels: &Value,
    cluster: &Value,
) -> Value {
    let mut args = vec![
        format!("--events-addr=http://notification-controller.{namespace}.svc.cluster.local./"),
        "--watch-all-namespaces=true".to_string(),
        "--log-level=info".to_string(),
        "--log-encoding=json".to_string(),
        "--enable-leader-election".to_string(),
    ];
    args.extend(cluster_flags(component, cluster));
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": component, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": component}},
            "template": {
                "metadata": {"labels": {"app": component}},
                "spec": {
                    "serviceAccountName": component,
                    "containers": [{
                        "name": "manager",
                        // No tag: the release is the operator's to pick; the version label says it.
                        "image": format!("{registry}/{component}"),
                        "args": args,
                    }],
                },
            },
        },
    })
}

/// The flags `.spec.cluster` adds to a component (internal/builder/profiles.go).
fn cluster_flags(component: &str, cluster: &Value) -> Vec<String> {
    let mut flags = Vec::new();
    if let Some(object_level) = cluster["objectLevelWorkloadIdentity"].as_bool() {
        flags.push(format!(
            "--feature-gates={OBJECT_LEVEL_GATE}={object_level}"
        ));
    }
    if cluster["multitenant"].as_bool() == Some(true) {
        flags.push("--no-cross-namespace-refs=true".to_string());
        if matches!(component, "kustomize-controller" | "helm-controller") {
            let account = cluster["tenantDefaultServiceAccount"]
                .as_str()
                .unwrap_or("default");
            flags.push(format!("--default-service-account={account}"));
        }
    }
    if cluster["multitenantWorkloadIdentity"].as_bool() == Some(true) {
        let account = |field: &str| cluster[field].as_str().unwrap_or("default").to_string();
        match component {
            "kustomize-controller" => {
                flags.push(format!(
                    "--default-decryption-service-account={}",
                    account("tenantDefaultDecryptionServiceAccount")
                ));
                flags.push(format!(
                    "--default-kubeconfig-service-account={}",
                    account("tenantDefaultKubeConfigServiceAccount")
                ));
            }
            "helm-controller" => flags.push(format!(
                "--default-kubeconfig-service-account={}",
                account("tenantDefaultKubeConfigServiceAccount")
            )),
            _ => flags.push(format!(
                "--default-service-account={}",
                account("tenantDefaultServiceAccount")
            )),
        }
    }
    flags
}

fn sync_name(sync: &Value, namespace: &str) -> String {
    sync["name"].as_str().unwrap_or(namespace).to_string()
}

/// The source and the Kustomization the operator creates for `.spec.sync`.
fn sync_objects(sync: &Value, namespace: &str, labels: &Value) -> Vec<Value> {
    let Some(kind) = sync["kind"].as_str() else {
        return Vec::new();
    };
    if !matches!(kind, "GitRepository" | "OCIRepository" | "Bucket") {
        return Vec::new();
    }
    let name = sync_name(sync, namespace);
    let mut source_spec = json!({"interval": sync["interval"].as_str().unwrap_or("1m")});
    if let Some(url) = sync["url"].as_str() {
        let field = if kind == "Bucket" { "endpoint" } else { "url" };
        source_spec[field] = json!(url);
    }
    if let Some(provider) = sync["provider"].as_str() {
        source_spec["provider"] = json!(provider);
    }
    if let Some(secret) = sync["pullSecret"].as_str() {
        source_spec["secretRef"] = json!({"name": secret});
    }
    if kind == "GitRepository"
        && let Some(reference) = sync["ref"].as_str()
    {
        source_spec["ref"] = json!({"name": reference});
    }
    let source = json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": source_spec,
    });
    let kustomization = json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "interval": "10m",
            "path": sync["path"].as_str().unwrap_or("./"),
            "prune": true,
            "sourceRef": {"kind": kind, "name": name},
        },
    });
    vec![source, kustomization]
}

/// Applies the FluxInstance's patches with kustomize, from a temporary folder.
fn with_patches(
    objects: &[Value],
    patches: &[Value],
    origin: &str,
) -> Result<Vec<Value>, ManifestError> {
    let write_error = |e: std::io::Error| ManifestError::Read {
        path: origin.to_string(),
        reason: format!("cannot prepare its patches: {e}"),
    };
    let temp = tempfile::Builder::new()
        .prefix("azflux-fluxinstance-")
        .tempdir()
        .map_err(write_error)?;
    let resources = objects.iter().fold(String::new(), |mut text, o| {
        text.push_str("---\n");
        text.push_str(&o.to_string());
        text.push('\n');
        text
    });
    std::fs::write(temp.path().join("objects.yaml"), resources).map_err(write_error)?;
    let kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["objects.yaml"],
        "patches": patches,
    });
    std::fs::write(
        temp.path().join("kustomization.yaml"),
        kustomization.to_string(),
    )
    .map_err(write_error)?;
    let built = manifests::render_kustomization(temp.path()).map_err(|e| match e {
        ManifestError::Kustomize { reason, .. } => ManifestError::Kustomize {
            dir: format!("{origin}: the FluxInstance's .spec.kustomize.patches"),
            reason,
        },
        other => other,
    })?;
    Ok(built.into_iter().filter_map(Document::into_value).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_versions_are_read_as_their_oldest_release() {
        assert_eq!(
            distribution_version(Some("2.7.x")).0.as_deref(),
            Some("v2.7.0")
        );
        assert_eq!(
            distribution_version(Some("2.8.3")).0.as_deref(),
            Some("v2.8.3")
        );
        assert_eq!(distribution_version(Some(">=2.6.0")).0, None);
        assert_eq!(distribution_version(None).0, None);
    }

    #[test]
    fn multitenant_workload_identity_adds_each_components_default_accounts() {
        let cluster = json!({"objectLevelWorkloadIdentity": true, "multitenantWorkloadIdentity": true,
            "tenantDefaultDecryptionServiceAccount": "sops"});
        assert_eq!(
            cluster_flags("kustomize-controller", &cluster),
            [
                "--feature-gates=ObjectLevelWorkloadIdentity=true",
                "--default-decryption-service-account=sops",
                "--default-kubeconfig-service-account=default"
            ]
        );
        assert_eq!(
            cluster_flags("source-controller", &cluster)[1],
            "--default-service-account=default"
        );
    }
}
