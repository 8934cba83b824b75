//! A loopback stand-in for the parts of Azure doctor talks to: the Entra ID token endpoint
//! (client secret and client assertion grants, judged the way Entra ID judges them), and Azure
//! Resource Manager (subscriptions, Resource Graph, AKS, managed identities with their federated
//! credentials, role assignments with their conditions, deny assignments, built-in and custom role
//! definitions,
//! registries with their role assignment mode and ARM-token policy, vaults with their
//! permission model and access policies, the `Microsoft.KubernetesConfiguration` extensions
//! and fluxConfigurations of a managed cluster), and for the fleet commands the AKS cluster
//! list, the caller's effective permissions and the credential kubeconfigs (`aks`).
//!
//! It answers like the real services for what it implements: Entra ID errors carry
//! `error_codes`, ARM errors the `{"error":{"code","message"}}` envelope, lists page with
//! `nextLink` (Resource Graph with `$skipToken`) when `page_size` is set, and every route checks
//! its api-version. Resource Manager calls need a bearer token the fake issued.
//!
//! Not implemented: Resource Graph's query language. The fake recognises the few query shapes
//! doctor sends by the resource type they name and matches the quoted values in them.

mod aks;
mod entra;
pub mod roles;
mod server;

use std::sync::Arc;
use std::thread::JoinHandle;

use serde_json::Value;
use tokio::sync::oneshot;

pub const API_AKS: &str = "2025-10-01";
pub const API_MSI: &str = "2024-11-30";
pub const API_AUTHORIZATION: &str = "2022-04-01";
pub const API_RESOURCE_GRAPH: &str = "2024-04-01";
pub const API_SUBSCRIPTIONS: &str = "2022-12-01";
/// Azure/azure-rest-api-specs kubernetesconfiguration `extensions/stable/2025-03-01`.
pub const API_EXTENSIONS: &str = "2025-03-01";
/// Azure/azure-rest-api-specs kubernetesconfiguration `fluxConfigurations/stable/2025-04-01`.
pub const API_FLUX_CONFIGURATIONS: &str = "2025-04-01";

pub const ACR_PULL: &str = "7f951dda-4ed3-4680-a7ca-43fe172d538d";
pub const STORAGE_BLOB_DATA_READER: &str = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1";
pub const KEY_VAULT_CRYPTO_USER: &str = "12338af0-0e69-4776-bea7-57ae8d297424";
pub const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
pub const REPOSITORY_READER: &str = "b93aa761-3e63-49ed-ac28-beffa264f7ac";
pub const AKS_CLUSTER_USER: &str = "4abbcc35-e782-43d8-92c5-2d3f1bd2253f";
pub const AKS_CLUSTER_ADMIN: &str = "0ab0b1a8-8aac-4efd-b8c2-3ee1fb270be8";
pub const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
/// The object ID of every service principal the fake logs in.
pub const LOGIN_OBJECT_ID: &str = "00000000-0000-4000-8000-00000000d0c7";

#[derive(Clone, Debug, Default)]
pub struct Credential {
    pub name: String,
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
}

impl Credential {
    pub fn new(name: &str, issuer: &str, subject: &str) -> Credential {
        Credential {
            name: name.to_owned(),
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
            audiences: vec!["api://AzureADTokenExchange".to_owned()],
        }
    }
}

/// A user-assigned managed identity.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
    pub client_id: String,
    pub principal_id: String,
    pub tenant_id: String,
    pub credentials: Vec<Credential>,
}

impl Identity {
    pub fn id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{}",
            self.subscription_id, self.resource_group, self.name
        )
    }
}

/// A service principal that logs in with a client secret.
#[derive(Clone, Debug)]
pub struct Login {
    pub tenant_id: String,
    pub client_id: String,
    pub secret: String,
}

/// Any resource Resource Graph can return: `type` decides how doctor's queries match it.
#[derive(Clone, Debug)]
pub struct Resource {
    pub id: String,
    pub name: String,
    pub kind: String,
    /// `properties` as ARM returns them.
    pub properties: Value,
}

impl Resource {
    pub fn subscription(&self) -> Option<&str> {
        let mut parts = self.id.split('/');
        while let Some(part) = parts.next() {
            if part.eq_ignore_ascii_case("subscriptions") {
                return parts.next();
            }
        }
        None
    }

    pub fn resource_group(&self) -> Option<&str> {
        let mut parts = self.id.split('/');
        while let Some(part) = parts.next() {
            if part.eq_ignore_ascii_case("resourceGroups") {
                return parts.next();
            }
        }
        None
    }
}

/// A `Microsoft.KubernetesConfiguration` resource of a managed cluster (an extension or a
/// fluxConfiguration), listed under `{cluster}/providers/Microsoft.KubernetesConfiguration/`.
#[derive(Clone, Debug)]
pub struct ClusterChild {
    /// The managed cluster's ARM ID; it must be one of `resources`.
    pub cluster_id: String,
    pub name: String,
    /// `properties` as ARM returns them (read-only ones such as `provisioningState` included).
    pub properties: Value,
    /// The resource's `identity`, when it has one.
    pub identity: Option<Value>,
}

/// A deny assignment (`Microsoft.Authorization/denyAssignments`, api-version 2022-04-01):
/// Azure creates them for managed applications, deployment stacks and Blueprints; one block of
/// permissions, the principals it denies (the all-zero ID with type `SystemDefined` is
/// everyone) and those it exempts.
#[derive(Clone, Debug, Default)]
pub struct DenyAssignment {
    pub name: String,
    pub scope: String,
    pub principals: Vec<String>,
    pub exclude_principals: Vec<String>,
    pub actions: Vec<String>,
    pub not_actions: Vec<String>,
    pub data_actions: Vec<String>,
    pub not_data_actions: Vec<String>,
    pub do_not_apply_to_child_scopes: bool,
}

#[derive(Clone, Debug, Default)]
pub struct RoleAssignment {
    pub principal_id: String,
    /// The role definition GUID.
    pub role: String,
    pub scope: String,
    /// An ABAC condition (served with `conditionVersion` 2.0).
    pub condition: Option<String>,
}

/// A fault injected for requests whose method matches (any when `None`) and whose path with
/// query contains `path_contains`: an ARM error envelope with `code` and `message`.
#[derive(Clone, Debug)]
pub struct AzureFault {
    pub method: Option<String>,
    pub path_contains: String,
    pub status: u16,
    pub code: String,
    pub message: String,
    /// How many matching requests it applies to; `None` for all.
    pub times: Option<u32>,
    pub retry_after_secs: Option<u32>,
}

impl AzureFault {
    pub fn new(path_contains: &str, status: u16, code: &str, message: &str) -> AzureFault {
        AzureFault {
            method: None,
            path_contains: path_contains.to_owned(),
            status,
            code: code.to_owned(),
            message: message.to_owned(),
            times: None,
            retry_after_secs: None,
        }
    }

    #[must_use]
    pub fn times(mut self, times: u32) -> AzureFault {
        self.times = Some(times);
        self
    }

    #[must_use]
    pub fn retry_after(mut self, seconds: u32) -> AzureFault {
        self.retry_after_secs = Some(seconds);
        self
    }
}

/// What the fake serves.
#[derive(Clone, Debug, Default)]
pub struct FakeAzure {
    pub tenants: Vec<String>,
    pub subscriptions: Vec<String>,
    pub logins: Vec<Login>,
    pub identities: Vec<Identity>,
    /// Managed clusters, registries, storage accounts...
    pub resources: Vec<Resource>,
    pub role_assignments: Vec<RoleAssignment>,
    /// Cluster extensions (`microsoft.flux` among them), listed per cluster.
    pub extensions: Vec<ClusterChild>,
    /// fluxConfigurations, listed per cluster.
    pub flux_configurations: Vec<ClusterChild>,
    /// Deny assignments, listed at every scope they cover.
    pub deny_assignments: Vec<DenyAssignment>,
    /// Custom role definitions, served next to the built-in ones of `roles`.
    pub custom_roles: Vec<roles::RoleDefinition>,
    /// The only token scope accepted (the cloud's Resource Manager scope).
    pub scope: String,
    /// Items per page of every list and Resource Graph query; all in one page when `None`.
    pub page_size: Option<usize>,
    pub faults: Vec<AzureFault>,
    /// Every client assertion exchange answers with this Entra ID error code instead.
    pub forced_exchange_error: Option<u64>,
    /// Put into every access token the fake issues, so tests can look for it.
    pub access_token_marker: String,
    /// Bearer tokens Resource Manager accepts besides those the fake issued (a fake `az`
    /// prints one).
    pub accepted_tokens: Vec<String>,
    /// The API server URL a managed cluster's credential kubeconfig names, by cluster ID;
    /// `https://{fqdn}:443` otherwise.
    pub api_servers: Vec<(String, String)>,
    /// The key of every local-account certificate the fake hands out, so tests can look for
    /// it.
    pub local_key_marker: String,
}

/// One request the fake answered.
#[derive(Clone, Debug)]
pub struct AzureRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub body: String,
    pub status: u16,
}

impl AzureRequest {
    /// The form fields of a token request.
    pub fn form(&self) -> Vec<(String, String)> {
        url_decode_form(&self.body)
    }
}

pub fn url_decode_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The fake on its own thread and runtime; stops on drop.
pub struct RunningAzure {
    url: String,
    shared: Arc<server::Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl RunningAzure {
    pub fn start(config: FakeAzure) -> RunningAzure {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .unwrap_or_else(|e| panic!("fake azure: cannot bind: {e}"));
        listener
            .set_nonblocking(true)
            .expect("fake azure: non-blocking listener");
        let address = listener.local_addr().expect("fake azure: address");
        let url = format!("http://{address}");
        let shared = Arc::new(server::Shared::new(config, url.clone()));
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("fake-azure".to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fake azure: runtime");
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("fake azure: listener");
                    server::run(listener, serving, async {
                        // A dropped sender means the same as a sent stop.
                        let _ = stopped.await;
                    })
                    .await;
                });
            })
            .expect("fake azure: thread");
        RunningAzure {
            url,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, both the authority host and the Resource Manager endpoint.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn requests(&self) -> Vec<AzureRequest> {
        self.shared.requests()
    }

    /// The federated credentials an identity holds now (after `enable --federate`).
    pub fn credentials(&self, client_id: &str) -> Vec<Credential> {
        self.shared.credentials(client_id)
    }
}

impl Drop for RunningAzure {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
