//! The ServiceAccounts Flux authenticates to Azure as, the client IDs they name, and the Azure
//! resources each one is used for. A pure function of the snapshot, shared by gathering (what to
//! look up), the Azure checks, the probe and `enable --federate` (what to federate).

use std::collections::BTreeMap;

use super::condition::Repository;
use super::fic::kube_subject;
use crate::model::azure_use::{AzureService, WiringMode};
use crate::model::{FluxKind, FluxObject, ObjectRef, Snapshot};
use crate::resolve::{AzureUse, Resolved};
use crate::wiring::{
    CLIENT_ID_ANNOTATION, CLOUDS, ENV_CLIENT_ID, ENV_TENANT_ID, TENANT_ID_ANNOTATION, host_of,
    is_uuid,
};

/// Where a use of Azure lands, as far as the Flux objects say.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// A registry's login server, e.g. `contoso.azurecr.io`.
    Registry(String),
    /// A Blob Storage account name.
    StorageAccount(String),
    /// An AKS cluster's ARM ID (from the remote-cluster ConfigMap).
    Cluster(String),
    /// The Key Vault SOPS metadata (`sops.azure_kv[].vault_url`) names, by vault name; `None`
    /// when no encrypted document says (the cluster never does).
    KeyVault(Option<String>),
    /// The Event Hubs namespace a Provider names in `spec.channel` (a name or its FQDN),
    /// lowercased; `None` when it names none.
    EventHubs(Option<String>),
    DevOps,
    /// The object names no endpoint doctor can resolve.
    Unresolved,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectUse {
    pub object: ObjectRef,
    pub service: AzureService,
    pub target: Target,
    /// The registry repository it reads, for ABAC conditions.
    pub repository: Option<Repository>,
    /// The Blob container a Bucket reads (`bucketName`), a scope of its own.
    pub container: Option<String>,
}

/// The repository an OCI source or ImageRepository reads: the URL's path. An OCI
/// HelmRepository names only the start of it; the chart completes it.
fn repository_of(object: &FluxObject) -> Option<Repository> {
    let url = object.url.as_deref()?;
    let without_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (_, path) = without_scheme.split_once('/')?;
    let path = path.trim_matches('/');
    if path.is_empty() {
        return None;
    }
    Some(match object.kind {
        Some(FluxKind::HelmRepository) => Repository::Under(format!("{path}/")),
        _ => Repository::Exact(path.to_string()),
    })
}

/// One Kubernetes ServiceAccount that authenticates to Azure through workload identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WiSubject {
    pub namespace: String,
    pub service_account: String,
    /// The client ID it names, as written (annotation, or `AZURE_CLIENT_ID` in manual mode).
    pub client_id: Option<String>,
    pub tenant_id: Option<String>,
    /// The Flux controller whose own identity this is; `None` for object-level ServiceAccounts.
    pub controller: Option<String>,
    pub uses: Vec<SubjectUse>,
}

impl WiSubject {
    /// `system:serviceaccount:NS:NAME`, the `sub` claim of its tokens.
    pub fn subject(&self) -> String {
        kube_subject(&self.namespace, &self.service_account)
    }

    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef::namespaced("ServiceAccount", &self.namespace, &self.service_account)
    }

    /// The client ID when it is one Entra ID could know (other checks report malformed ones).
    pub fn valid_client_id(&self) -> Option<&str> {
        self.client_id.as_deref().filter(|c| is_uuid(c))
    }

    pub fn valid_tenant_id(&self) -> Option<&str> {
        self.tenant_id.as_deref().filter(|t| is_uuid(t))
    }

    /// "the identity of source-controller" or "ServiceAccount team-a/git".
    pub fn describe(&self) -> String {
        match &self.controller {
            Some(controller) => format!(
                "{controller}'s ServiceAccount {}/{}",
                self.namespace, self.service_account
            ),
            None => format!("ServiceAccount {}/{}", self.namespace, self.service_account),
        }
    }
}

fn storage_account(host: &str) -> Option<String> {
    CLOUDS
        .iter()
        .find_map(|c| host.strip_suffix(c.storage_suffix))
        .filter(|account| !account.is_empty() && !account.contains('.'))
        .map(str::to_string)
}

/// The vault name of a Key Vault URL (`https://NAME.vault.azure.net/`), in any cloud.
pub fn vault_name(url: &str) -> Option<String> {
    let host = host_of(url);
    let (name, rest) = host.split_once('.')?;
    (rest.starts_with("vault.") && !name.is_empty()).then(|| name.to_ascii_lowercase())
}

fn target_of(snapshot: &Snapshot, azure_use: &AzureUse<'_>) -> Target {
    let url = azure_use.object.url.as_deref().unwrap_or_default();
    let host = host_of(url);
    match azure_use.service {
        AzureService::ContainerRegistry if !host.is_empty() => Target::Registry(host),
        AzureService::BlobStorage => {
            storage_account(&host).map_or(Target::Unresolved, Target::StorageAccount)
        }
        AzureService::KeyVault => Target::KeyVault(None),
        AzureService::EventHubs => Target::EventHubs(
            azure_use
                .object
                .channel
                .as_deref()
                .map(|c| host_of(c).split('.').next().unwrap_or_default().to_string())
                .filter(|n| !n.is_empty()),
        ),
        AzureService::DevOps => Target::DevOps,
        AzureService::KubernetesService => azure_use
            .object
            .kube_config
            .as_ref()
            .and_then(|k| k.config_map_ref.as_deref())
            .and_then(|name| snapshot.config_map(&azure_use.object.namespace, name))
            .and_then(|cm| cm.data.get("cluster"))
            .filter(|id| id.starts_with('/'))
            .map_or(Target::Unresolved, |id| Target::Cluster(id.clone())),
        AzureService::ContainerRegistry => Target::Unresolved,
    }
}

/// The uses of one object: one per vault for SOPS, since a Kustomization decrypts whatever
/// vaults its documents were encrypted with.
fn subject_uses(snapshot: &Snapshot, azure_use: &AzureUse<'_>) -> Vec<SubjectUse> {
    let one = |target| SubjectUse {
        object: azure_use.object.object_ref(),
        service: azure_use.service,
        target,
        repository: (azure_use.service == AzureService::ContainerRegistry)
            .then(|| repository_of(azure_use.object))
            .flatten(),
        container: (azure_use.service == AzureService::BlobStorage)
            .then(|| azure_use.object.bucket_name.clone())
            .flatten(),
    };
    let vaults: Vec<String> = snapshot
        .sops_key_vaults
        .iter()
        .filter_map(|url| vault_name(url))
        .collect();
    if azure_use.service == AzureService::KeyVault && !vaults.is_empty() {
        return vaults
            .into_iter()
            .map(|v| one(Target::KeyVault(Some(v))))
            .collect();
    }
    vec![one(target_of(snapshot, azure_use))]
}

fn literal_env(workload: &crate::model::Workload, name: &str) -> Option<String> {
    workload
        .main_container()
        .and_then(|c| c.env(name))
        .filter(|e| !e.from_ref)
        .and_then(|e| e.value.clone())
}

/// Every ServiceAccount that authenticates to Azure: wired controllers (with what they serve)
/// and the ServiceAccounts objects name, in namespace/name order.
pub fn subjects(snapshot: &Resolved) -> Vec<WiSubject> {
    let mut by_account: BTreeMap<(String, String), WiSubject> = BTreeMap::new();
    for wiring in snapshot.wirings() {
        if wiring.mode == WiringMode::None {
            continue;
        }
        let workload = wiring.workload;
        let annotation = |key: &str| {
            wiring
                .service_account
                .and_then(|sa| sa.annotations.get(key).cloned())
        };
        let (client_id, tenant_id) = match wiring.mode {
            WiringMode::Manual => (
                literal_env(workload, ENV_CLIENT_ID),
                literal_env(workload, ENV_TENANT_ID),
            ),
            _ => (
                annotation(CLIENT_ID_ANNOTATION),
                annotation(TENANT_ID_ANNOTATION),
            ),
        };
        by_account.insert(
            (workload.namespace.clone(), workload.service_account.clone()),
            WiSubject {
                namespace: workload.namespace.clone(),
                service_account: workload.service_account.clone(),
                client_id,
                tenant_id,
                controller: Some(workload.name.clone()),
                uses: wiring
                    .needed_by
                    .iter()
                    .flat_map(|u| subject_uses(snapshot, u))
                    .collect(),
            },
        );
    }
    for azure_use in snapshot.uses() {
        let Some(name) = azure_use.service_account() else {
            continue;
        };
        let name = name.to_string();
        let namespace = azure_use.object.namespace.clone();
        let account = snapshot.service_account(&namespace, &name);
        let annotation = |key: &str| account.and_then(|sa| sa.annotations.get(key).cloned());
        let uses = subject_uses(snapshot, &azure_use);
        by_account
            .entry((namespace.clone(), name.clone()))
            .or_insert_with(|| WiSubject {
                namespace,
                service_account: name.clone(),
                client_id: annotation(CLIENT_ID_ANNOTATION),
                tenant_id: annotation(TENANT_ID_ANNOTATION),
                controller: None,
                uses: Vec::new(),
            })
            .uses
            .extend(uses);
    }
    by_account.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        Container, EnvVar, Fact, ServiceAccount, ServiceAccounts, Source, Workload,
    };

    const CLIENT: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";

    fn snapshot() -> Snapshot {
        let mut s = Snapshot::new(Source::Manifests { inputs: vec![] }, "flux-system");
        s.flux.read = true;
        s.controllers = Fact::Known(vec![Workload {
            namespace: "flux-system".into(),
            name: "source-controller".into(),
            service_account: "source-controller".into(),
            containers: vec![Container {
                name: "manager".into(),
                env: vec![
                    EnvVar {
                        name: "AZURE_CLIENT_ID".into(),
                        value: Some(CLIENT.into()),
                        from_ref: false,
                    },
                    EnvVar {
                        name: "AZURE_FEDERATED_TOKEN_FILE".into(),
                        value: Some("/var/run/service-account/azure-token".into()),
                        from_ref: false,
                    },
                ],
                ..Container::default()
            }],
            ..Workload::default()
        }]);
        s.service_accounts = Fact::Known(ServiceAccounts::from(vec![ServiceAccount {
            namespace: "team-a".into(),
            name: "pull".into(),
            annotations: [(CLIENT_ID_ANNOTATION.to_string(), CLIENT.to_string())].into(),
            ..ServiceAccount::default()
        }]));
        s.flux.objects = vec![
            FluxObject {
                kind: Some(FluxKind::OCIRepository),
                namespace: "flux-system".into(),
                name: "platform".into(),
                provider: Some("azure".into()),
                url: Some("oci://Contoso.azurecr.io/manifests".into()),
                ..FluxObject::default()
            },
            FluxObject {
                kind: Some(FluxKind::Bucket),
                namespace: "team-a".into(),
                name: "configs".into(),
                provider: Some("azure".into()),
                url: Some("https://acct.blob.core.windows.net".into()),
                service_account_name: Some("pull".into()),
                ..FluxObject::default()
            },
        ];
        s
    }

    #[test]
    fn manual_controllers_and_object_level_accounts_are_subjects() {
        let found = subjects(&Resolved::new(snapshot()));
        assert_eq!(found.len(), 2);
        let controller = &found[0];
        assert_eq!(
            controller.subject(),
            "system:serviceaccount:flux-system:source-controller"
        );
        assert_eq!(controller.valid_client_id(), Some(CLIENT));
        assert_eq!(
            controller.uses[0].target,
            Target::Registry("contoso.azurecr.io".into())
        );
        assert_eq!(
            controller.uses[0].repository,
            Some(Repository::Exact("manifests".into()))
        );
        let tenant = &found[1];
        assert_eq!(tenant.controller, None);
        assert_eq!(tenant.uses[0].target, Target::StorageAccount("acct".into()));
    }

    #[test]
    fn sops_vaults_are_named_by_their_url_in_any_cloud() {
        assert_eq!(
            vault_name("https://Flux-Sops.vault.azure.net/").as_deref(),
            Some("flux-sops")
        );
        assert_eq!(
            vault_name("https://kv1.vault.azure.cn").as_deref(),
            Some("kv1")
        );
        assert_eq!(vault_name("an unnamed vault"), None);
        assert_eq!(vault_name("https://example.com/"), None);
    }
}
