//! What doctor read from Azure, as plain data in the snapshot. Gathering fills it; the Azure
//! checks only read it. No token, secret or assertion is ever kept here: only identifiers,
//! settings and the claims of tokens.

use crate::model::Fact;

pub use super::permissions::{Permission, RoleDefinition};

/// Everything read through Azure Resource Manager with the caller's login.
#[derive(Debug, Clone)]
pub struct AzureState {
    /// How doctor logged in, e.g. `Azure CLI`, for messages.
    pub login: String,
    /// The subscriptions the login can read, by ID.
    pub subscriptions: Vec<String>,
    /// The AKS cluster of the current context.
    pub cluster: Fact<AksCluster>,
    /// The user-assigned identities whose client IDs the wiring uses (only those found).
    pub identities: Fact<Vec<ManagedIdentity>>,
    /// The Azure resources Flux objects reach, resolved to their ARM IDs (only those found).
    pub resources: Fact<Vec<AzureResource>>,
    /// Role assignments of the identities' principals, listed per subscription of interest.
    pub role_assignments: Fact<Vec<RoleAssignment>>,
    /// The definitions (built-in and custom) of the roles those assignments name.
    pub role_definitions: Fact<Vec<RoleDefinition>>,
    /// The AKS Flux extension (`microsoft.flux`) of the cluster and its fluxConfigurations.
    pub flux_extension: Fact<super::extension::ExtensionState>,
    /// The deny assignments that apply at each resource Flux objects reach.
    pub deny_assignments: Fact<Vec<DenyAssignment>>,
}

impl AzureState {
    pub fn identity(&self, client_id: &str) -> Option<&ManagedIdentity> {
        self.identities
            .known()?
            .iter()
            .find(|i| i.client_id.eq_ignore_ascii_case(client_id))
    }
}

/// The AKS settings workload identity depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AksCluster {
    pub id: String,
    pub name: String,
    pub resource_group: String,
    pub subscription_id: String,
    pub oidc_issuer_enabled: bool,
    /// `oidcIssuerProfile.issuerURL` exactly as ARM reports it.
    pub issuer_url: Option<String>,
    pub workload_identity_enabled: bool,
}

#[derive(Debug, Clone)]
pub struct ManagedIdentity {
    pub id: String,
    pub name: String,
    pub resource_group: String,
    pub subscription_id: String,
    pub client_id: String,
    pub principal_id: String,
    pub tenant_id: String,
    pub credentials: Fact<Vec<FederatedCredential>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FederatedCredential {
    pub name: String,
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
}

/// The kinds of Azure resource a Flux object can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ResourceKind {
    ContainerRegistry,
    StorageAccount,
    ManagedCluster,
    KeyVault,
    EventHubsNamespace,
}

impl ResourceKind {
    pub fn noun(self) -> &'static str {
        match self {
            ResourceKind::ContainerRegistry => "registry",
            ResourceKind::StorageAccount => "storage account",
            ResourceKind::ManagedCluster => "AKS cluster",
            ResourceKind::KeyVault => "Key Vault",
            ResourceKind::EventHubsNamespace => "Event Hubs namespace",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureResource {
    pub kind: ResourceKind,
    /// What it was looked up by, lowercased: a registry login server, a storage account,
    /// vault or Event Hubs namespace name, or an ARM ID.
    pub key: String,
    pub id: String,
    pub name: String,
    pub settings: ResourceSettings,
}

/// The settings of a resource that decide who may use its data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceSettings {
    /// A registry's `roleAssignmentMode`: `AbacRepositoryPermissions` or
    /// `LegacyRegistryPermissions` (absent on registries that predate the setting).
    pub role_assignment_mode: Option<String>,
    /// A registry's `policies.azureADAuthenticationAsArmPolicy.status`: `enabled` or
    /// `disabled` (absent means enabled).
    pub arm_token_policy: Option<String>,
    /// A vault's `enableRbacAuthorization`; absent or false means access policies.
    pub rbac_authorization: Option<bool>,
    /// A vault's `accessPolicies`.
    pub access_policies: Vec<AccessPolicy>,
}

impl ResourceSettings {
    /// The registry authorizes with ABAC repository permissions.
    pub fn abac(&self) -> bool {
        self.role_assignment_mode
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case("AbacRepositoryPermissions"))
    }

    /// The registry refuses Entra tokens issued for Resource Manager.
    pub fn refuses_arm_tokens(&self) -> bool {
        self.arm_token_policy
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("disabled"))
    }

    /// The vault authorizes data access with Azure RBAC rather than its access policies.
    pub fn vault_rbac(&self) -> bool {
        self.rbac_authorization == Some(true)
    }
}

/// One entry of a vault's access policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    pub tenant_id: String,
    pub object_id: String,
    /// Set for a compound identity (an application acting for a user), which the identity
    /// alone does not match.
    pub application_id: Option<String>,
    /// `permissions.keys`, as written (`decrypt`, `Decrypt`, `all`…).
    pub keys: Vec<String>,
}

impl AccessPolicy {
    /// Whether it lets `object_id` decrypt with the vault's keys.
    pub fn decrypts_for(&self, object_id: &str) -> bool {
        self.object_id.eq_ignore_ascii_case(object_id)
            && self.application_id.as_deref().is_none_or(str::is_empty)
            && self
                .keys
                .iter()
                .any(|k| k.eq_ignore_ascii_case("decrypt") || k.eq_ignore_ascii_case("all"))
    }
}

impl AzureResource {
    /// The subscription in the resource's ARM ID.
    pub fn subscription_id(&self) -> Option<&str> {
        subscription_of(&self.id)
    }
}

/// The subscription named in an ARM ID (`/subscriptions/{id}/...`).
pub fn subscription_of(arm_id: &str) -> Option<&str> {
    let mut parts = arm_id.split('/').filter(|p| !p.is_empty());
    while let Some(part) = parts.next() {
        if part.eq_ignore_ascii_case("subscriptions") {
            return parts.next();
        }
    }
    None
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    pub principal_id: String,
    /// The role definition's GUID, lowercased (the last segment of `roleDefinitionId`).
    pub role: String,
    /// `roleDefinitionId` as listed, to read the definition by.
    pub definition_id: String,
    pub scope: String,
    /// An ABAC `condition`, with its `conditionVersion`.
    pub condition: Option<String>,
    pub condition_version: Option<String>,
    /// The subscription whose list returned it: assignments inherited from a management group
    /// apply to that subscription.
    pub listed_in: String,
}

/// A deny assignment as Resource Manager lists it for a resource's scope
/// (`{scope}/providers/Microsoft.Authorization/denyAssignments`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DenyAssignment {
    pub name: String,
    pub scope: String,
    pub permissions: Vec<Permission>,
    /// `principals[].id`; the all-zero ID (type `SystemDefined`) is every principal.
    pub principals: Vec<String>,
    /// `principals[].type` is `Group` for some: their members are not visible here.
    pub group_principals: bool,
    pub exclude_principals: Vec<String>,
    pub do_not_apply_to_child_scopes: bool,
    /// The ARM ID of the resource whose list returned it.
    pub listed_for: String,
}

/// The claims of a service account token, never the token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenClaims {
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
    pub expires_at: Option<i64>,
    pub issued_at: Option<i64>,
}

/// One token exchange tried the way the controller does it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub namespace: String,
    pub service_account: String,
    pub client_id: String,
    pub tenant_id: Option<String>,
    /// The claims of the token the API server minted (absent when it minted none, or it was
    /// not a JWT).
    pub claims: Option<TokenClaims>,
    pub outcome: ProbeOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Entra ID issued an access token; these are claims of it.
    Exchanged {
        object_id: Option<String>,
        tenant_id: Option<String>,
    },
    /// Entra ID refused the assertion.
    Rejected(EntraError),
    /// The API server would not mint a token.
    TokenRequestFailed(String),
    /// The token endpoint could not be reached or answered something unreadable.
    ExchangeFailed(String),
    /// Not tried, with the reason.
    NotTried(String),
}

/// An Entra ID error response, with secrets already removed from its text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntraError {
    pub status: u16,
    /// `error_codes[0]`: the AADSTS number.
    pub code: Option<u64>,
    /// `error`, e.g. `invalid_client`.
    pub error: String,
    /// The first line of `error_description`.
    pub description: String,
}
