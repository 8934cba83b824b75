//! What `clusters list` and `clusters sync` know about a fleet of AKS clusters, as plain data:
//! the clusters Resource Manager lists, what the login may do with them, and whether kubelogin
//! is installed. Gathering (`azure::clusters`, `commands::clusters`) fills it; the fleet checks
//! (`checks/fleet.rs`) only read it.

use std::path::PathBuf;

use super::Fact;

/// How a cluster authenticates Kubernetes users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entra {
    /// AKS-managed Entra ID: users and service principals log in through kubelogin.
    Managed {
        tenant_id: Option<String>,
        /// Kubernetes authorization through Azure role assignments as well as RBAC bindings.
        azure_rbac: bool,
    },
    /// The legacy integration (an app registration per cluster): kubelogin's service principal
    /// mode cannot log in to it.
    Legacy,
    /// No Entra ID: the cluster's only credentials are local-account certificates.
    Disabled,
}

impl Entra {
    pub fn is_managed(&self) -> bool {
        matches!(self, Entra::Managed { .. })
    }

    /// `managed`, `legacy` or `none`, for tables and JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            Entra::Managed { .. } => "managed",
            Entra::Legacy => "legacy",
            Entra::Disabled => "none",
        }
    }
}

/// Whether the login may fetch a cluster's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Allowed,
    /// Refused: `action` is the Resource Manager action that is missing, `detail` the evidence
    /// (the effective permissions, or Resource Manager's refusal).
    Denied {
        action: String,
        detail: String,
    },
}

/// One AKS cluster as Resource Manager describes it.
#[derive(Debug, Clone)]
pub struct FleetCluster {
    pub id: String,
    pub name: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    pub kubernetes_version: Option<String>,
    /// The API server's host name (the private one for a private cluster).
    pub fqdn: Option<String>,
    pub entra: Entra,
    pub local_accounts_disabled: bool,
    pub oidc_issuer: bool,
    pub workload_identity: bool,
    /// The contexts of the kubeconfig in use whose cluster is this one (by API server host).
    pub contexts: Vec<String>,
    /// Whether the login may fetch the credentials `clusters sync` would write.
    pub credential_access: Fact<Access>,
}

/// Who the Resource Manager token was issued to, from its claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The Entra object ID (`oid`): a service principal's Kubernetes user name on AKS.
    pub object_id: String,
    /// What `az role assignment create --assignee` takes: the application (client) ID of a
    /// service principal, the sign-in name of a user, else the object ID.
    pub assignee: String,
    /// The Kubernetes user name AKS gives this identity: the object ID of an application or
    /// managed identity, the sign-in name (UPN) of a user.
    pub kubernetes_user: String,
}

/// The fleet as `clusters` read it.
#[derive(Debug, Clone, Default)]
pub struct FleetSnapshot {
    /// How the tool logged in to Azure, for messages.
    pub login: String,
    pub caller: Option<Caller>,
    /// The subscriptions searched.
    pub subscriptions: Vec<String>,
    /// The clusters found, after the resource group and name filters.
    pub clusters: Vec<FleetCluster>,
    /// Where kubelogin is on PATH, when it is.
    pub kubelogin: Option<PathBuf>,
}
