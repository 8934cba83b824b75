//! Role definitions as Resource Manager serves them (`GET {scope}/providers/
//! Microsoft.Authorization/roleDefinitions/{id}`, api-version 2022-04-01): the built-in roles
//! the tests assign, with the `actions`, `notActions`, `dataActions` and `notDataActions` the
//! built-in role reference lists (learn.microsoft.com/azure/role-based-access-control/
//! built-in-roles/{containers,storage,security,integration,general}), and the custom roles a
//! test adds. Contributor's `notActions` are abridged to those of Microsoft.Authorization;
//! the others are as published.

use serde_json::{Value, json};

use super::{
    ACR_PULL, AKS_CLUSTER_ADMIN, AKS_CLUSTER_USER, CONTRIBUTOR, FakeAzure, KEY_VAULT_CRYPTO_USER,
    READER, REPOSITORY_READER, STORAGE_BLOB_DATA_READER,
};

pub const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
pub const ACR_PUSH: &str = "8311e382-0749-4cb8-b61a-304f252e45ec";
pub const REPOSITORY_WRITER: &str = "2a1e307c-b015-4ebd-883e-5b7698a07328";
pub const EVENT_HUBS_DATA_SENDER: &str = "2b629674-e913-4c01-ae53-ef4638d8f975";

/// A role definition with one permission block, as nearly every role has.
#[derive(Clone, Debug, Default)]
pub struct RoleDefinition {
    /// The GUID.
    pub id: String,
    pub name: String,
    pub custom: bool,
    pub actions: Vec<String>,
    pub not_actions: Vec<String>,
    pub data_actions: Vec<String>,
    pub not_data_actions: Vec<String>,
}

fn owned(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn built_in(id: &str, name: &str, actions: &[&str], data_actions: &[&str]) -> RoleDefinition {
    RoleDefinition {
        id: id.to_owned(),
        name: name.to_owned(),
        custom: false,
        actions: owned(actions),
        data_actions: owned(data_actions),
        ..RoleDefinition::default()
    }
}

const CONTENT_READ: &str = "Microsoft.ContainerRegistry/registries/repositories/content/read";
const METADATA_READ: &str = "Microsoft.ContainerRegistry/registries/repositories/metadata/read";
const AKS_READ: &str = "Microsoft.ContainerService/managedClusters/read";

/// The built-in roles the fake knows.
pub fn built_ins() -> Vec<RoleDefinition> {
    let mut contributor = built_in(CONTRIBUTOR, "Contributor", &["*"], &[]);
    contributor.not_actions = owned(&[
        "Microsoft.Authorization/*/Delete",
        "Microsoft.Authorization/*/Write",
        "Microsoft.Authorization/elevateAccess/Action",
    ]);
    vec![
        built_in(OWNER, "Owner", &["*"], &[]),
        contributor,
        built_in(READER, "Reader", &["*/read"], &[]),
        built_in(
            ACR_PULL,
            "AcrPull",
            &["Microsoft.ContainerRegistry/registries/pull/read"],
            &[],
        ),
        built_in(
            ACR_PUSH,
            "AcrPush",
            &[
                "Microsoft.ContainerRegistry/registries/pull/read",
                "Microsoft.ContainerRegistry/registries/push/write",
            ],
            &[],
        ),
        built_in(
            REPOSITORY_READER,
            "Container Registry Repository Reader",
            &[],
            &[CONTENT_READ, METADATA_READ],
        ),
        built_in(
            REPOSITORY_WRITER,
            "Container Registry Repository Writer",
            &[],
            &[
                CONTENT_READ,
                "Microsoft.ContainerRegistry/registries/repositories/content/write",
                METADATA_READ,
                "Microsoft.ContainerRegistry/registries/repositories/metadata/write",
            ],
        ),
        built_in(
            STORAGE_BLOB_DATA_READER,
            "Storage Blob Data Reader",
            &[
                "Microsoft.Storage/storageAccounts/blobServices/containers/read",
                "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
            ],
            &["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"],
        ),
        built_in(
            KEY_VAULT_CRYPTO_USER,
            "Key Vault Crypto User",
            &[],
            &[
                "Microsoft.KeyVault/vaults/keys/read",
                "Microsoft.KeyVault/vaults/keys/update/action",
                "Microsoft.KeyVault/vaults/keys/backup/action",
                "Microsoft.KeyVault/vaults/keys/encrypt/action",
                "Microsoft.KeyVault/vaults/keys/decrypt/action",
                "Microsoft.KeyVault/vaults/keys/wrap/action",
                "Microsoft.KeyVault/vaults/keys/unwrap/action",
                "Microsoft.KeyVault/vaults/keys/sign/action",
                "Microsoft.KeyVault/vaults/keys/verify/action",
            ],
        ),
        built_in(
            EVENT_HUBS_DATA_SENDER,
            "Azure Event Hubs Data Sender",
            &["Microsoft.EventHub/*/eventhubs/read"],
            &["Microsoft.EventHub/*/send/action"],
        ),
        built_in(
            AKS_CLUSTER_USER,
            "Azure Kubernetes Service Cluster User Role",
            &[
                "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action",
                AKS_READ,
            ],
            &[],
        ),
        built_in(
            AKS_CLUSTER_ADMIN,
            "Azure Kubernetes Service Cluster Admin Role",
            &[
                "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action",
                "Microsoft.ContainerService/managedClusters/accessProfiles/listCredential/action",
                AKS_READ,
                "Microsoft.ContainerService/managedClusters/runcommand/action",
            ],
            &[],
        ),
    ]
}

/// A role by GUID: a test's custom roles first, then the built-ins.
pub fn find(config: &FakeAzure, id: &str) -> Option<RoleDefinition> {
    config
        .custom_roles
        .iter()
        .cloned()
        .chain(built_ins())
        .find(|r| r.id.eq_ignore_ascii_case(id))
}

/// The definition as the REST API returns it under `scope` (`/subscriptions/{id}`).
pub fn definition_json(role: &RoleDefinition, scope: &str) -> Value {
    json!({
        "id": format!("{scope}/providers/Microsoft.Authorization/roleDefinitions/{}", role.id),
        "name": role.id,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": role.name,
            "type": if role.custom { "CustomRole" } else { "BuiltInRole" },
            "description": "",
            "assignableScopes": if role.custom { json!([scope]) } else { json!(["/"]) },
            "permissions": [{
                "actions": role.actions,
                "notActions": role.not_actions,
                "dataActions": role.data_actions,
                "notDataActions": role.not_data_actions,
            }],
        },
    })
}
