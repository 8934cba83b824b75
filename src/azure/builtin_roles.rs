//! The built-in role definitions doctor judges declared role assignments with when it cannot
//! read them from Resource Manager (Azure Service Operator `RoleAssignment` objects checked
//! offline). Built-in roles have the same GUID and permissions in every tenant and cloud.
//!
//! Source: the Azure built-in role reference, learn.microsoft.com/azure/role-based-access-control/
//! built-in-roles/ (MicrosoftDocs/azure-docs `articles/role-based-access-control/built-in-roles/`
//! `containers.md`, `storage.md`, `security.md`, `integration.md`, `general.md`), each role's
//! JSON block. Owner's and Contributor's `notActions` are abridged to Microsoft.Authorization's:
//! the rest name no operation a Flux integration performs. Roles not listed here are judged
//! only with `--azure`, which reads their definitions.

use super::permissions::{Permission, RoleDefinition};

/// A built-in role with its single permission block, as published.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    pub id: &'static str,
    pub name: &'static str,
    pub actions: &'static [&'static str],
    pub not_actions: &'static [&'static str],
    pub data_actions: &'static [&'static str],
    pub not_data_actions: &'static [&'static str],
}

const ACR_PULL: &str = "Microsoft.ContainerRegistry/registries/pull/read";
const ACR_CONTENT_READ: &str = "Microsoft.ContainerRegistry/registries/repositories/content/read";
const ACR_METADATA_READ: &str = "Microsoft.ContainerRegistry/registries/repositories/metadata/read";
const AKS_READ: &str = "Microsoft.ContainerService/managedClusters/read";
const AUTHORIZATION_WRITES: &[&str] = &[
    "Microsoft.Authorization/*/Delete",
    "Microsoft.Authorization/*/Write",
    "Microsoft.Authorization/elevateAccess/Action",
];

const fn role(id: &'static str, name: &'static str) -> Builtin {
    Builtin {
        id,
        name,
        actions: &[],
        not_actions: &[],
        data_actions: &[],
        not_data_actions: &[],
    }
}

/// Every built-in role doctor knows offline.
pub static BUILTIN_ROLES: &[Builtin] = &[
    Builtin {
        actions: &["*"],
        ..role("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner")
    },
    Builtin {
        actions: &["*"],
        not_actions: AUTHORIZATION_WRITES,
        ..role("b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor")
    },
    Builtin {
        actions: &["*/read"],
        ..role("acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader")
    },
    Builtin {
        actions: &[ACR_PULL],
        ..role("7f951dda-4ed3-4680-a7ca-43fe172d538d", "AcrPull")
    },
    Builtin {
        actions: &[
            ACR_PULL,
            "Microsoft.ContainerRegistry/registries/push/write",
        ],
        ..role("8311e382-0749-4cb8-b61a-304f252e45ec", "AcrPush")
    },
    Builtin {
        data_actions: &[ACR_CONTENT_READ, ACR_METADATA_READ],
        ..role(
            "b93aa761-3e63-49ed-ac28-beffa264f7ac",
            "Container Registry Repository Reader",
        )
    },
    Builtin {
        data_actions: &[
            ACR_CONTENT_READ,
            "Microsoft.ContainerRegistry/registries/repositories/content/write",
            ACR_METADATA_READ,
            "Microsoft.ContainerRegistry/registries/repositories/metadata/write",
        ],
        ..role(
            "2a1e307c-b015-4ebd-883e-5b7698a07328",
            "Container Registry Repository Writer",
        )
    },
    Builtin {
        data_actions: &[
            ACR_CONTENT_READ,
            "Microsoft.ContainerRegistry/registries/repositories/content/write",
            "Microsoft.ContainerRegistry/registries/repositories/content/delete",
            ACR_METADATA_READ,
            "Microsoft.ContainerRegistry/registries/repositories/metadata/write",
            "Microsoft.ContainerRegistry/registries/repositories/metadata/delete",
        ],
        ..role(
            "2efddaa5-3f1f-4df3-97df-af3f13818f4c",
            "Container Registry Repository Contributor",
        )
    },
    Builtin {
        actions: &[
            "Microsoft.Storage/storageAccounts/blobServices/containers/read",
            "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
        ],
        data_actions: &["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"],
        ..role(
            "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
            "Storage Blob Data Reader",
        )
    },
    Builtin {
        actions: &[
            "Microsoft.Storage/storageAccounts/blobServices/containers/delete",
            "Microsoft.Storage/storageAccounts/blobServices/containers/read",
            "Microsoft.Storage/storageAccounts/blobServices/containers/write",
            "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
        ],
        data_actions: &[
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/move/action",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action",
        ],
        ..role(
            "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
            "Storage Blob Data Contributor",
        )
    },
    Builtin {
        actions: &[
            "Microsoft.Storage/storageAccounts/blobServices/containers/*",
            "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
        ],
        data_actions: &["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*"],
        ..role(
            "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
            "Storage Blob Data Owner",
        )
    },
    Builtin {
        data_actions: &[
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
        ..role(
            "12338af0-0e69-4776-bea7-57ae8d297424",
            "Key Vault Crypto User",
        )
    },
    Builtin {
        actions: &[
            "Microsoft.Authorization/*/read",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Support/*",
            "Microsoft.KeyVault/checkNameAvailability/read",
            "Microsoft.KeyVault/deletedVaults/read",
            "Microsoft.KeyVault/locations/*/read",
            "Microsoft.KeyVault/vaults/*/read",
            "Microsoft.KeyVault/operations/read",
        ],
        data_actions: &[
            "Microsoft.KeyVault/vaults/keys/*",
            "Microsoft.KeyVault/vaults/keyrotationpolicies/*",
        ],
        ..role(
            "14b46e9e-c2b7-41b4-b07b-48a6ebf60603",
            "Key Vault Crypto Officer",
        )
    },
    Builtin {
        actions: &[
            "Microsoft.Authorization/*/read",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Support/*",
            "Microsoft.KeyVault/checkNameAvailability/read",
            "Microsoft.KeyVault/deletedVaults/read",
            "Microsoft.KeyVault/locations/*/read",
            "Microsoft.KeyVault/vaults/*/read",
            "Microsoft.KeyVault/operations/read",
        ],
        data_actions: &["Microsoft.KeyVault/vaults/*"],
        ..role(
            "00482a5a-887f-4fb3-b363-3b7fe8e74483",
            "Key Vault Administrator",
        )
    },
    Builtin {
        actions: &["Microsoft.EventHub/*/eventhubs/read"],
        data_actions: &["Microsoft.EventHub/*/send/action"],
        ..role(
            "2b629674-e913-4c01-ae53-ef4638d8f975",
            "Azure Event Hubs Data Sender",
        )
    },
    Builtin {
        actions: &["Microsoft.EventHub/*"],
        data_actions: &["Microsoft.EventHub/*"],
        ..role(
            "f526a384-b230-433a-b45c-95f59c4a2dec",
            "Azure Event Hubs Data Owner",
        )
    },
    Builtin {
        actions: &[
            "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action",
            AKS_READ,
        ],
        ..role(
            "4abbcc35-e782-43d8-92c5-2d3f1bd2253f",
            "Azure Kubernetes Service Cluster User Role",
        )
    },
    Builtin {
        actions: &[
            "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action",
            "Microsoft.ContainerService/managedClusters/accessProfiles/listCredential/action",
            AKS_READ,
            "Microsoft.ContainerService/managedClusters/runcommand/action",
        ],
        ..role(
            "0ab0b1a8-8aac-4efd-b8c2-3ee1fb270be8",
            "Azure Kubernetes Service Cluster Admin Role",
        )
    },
];

fn owned(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_string()).collect()
}

impl Builtin {
    pub fn definition(&self) -> RoleDefinition {
        RoleDefinition {
            id: self.id.to_string(),
            name: self.name.to_string(),
            custom: false,
            permissions: vec![Permission {
                actions: owned(self.actions),
                not_actions: owned(self.not_actions),
                data_actions: owned(self.data_actions),
                not_data_actions: owned(self.not_data_actions),
            }],
        }
    }
}

/// A built-in role by its definition GUID.
pub fn by_id(guid: &str) -> Option<&'static Builtin> {
    BUILTIN_ROLES
        .iter()
        .find(|r| r.id.eq_ignore_ascii_case(guid))
}

/// A built-in role by its `roleName`, as Azure Service Operator's `wellKnownName` names it.
pub fn by_name(name: &str) -> Option<&'static Builtin> {
    BUILTIN_ROLES
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(name.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::roles;

    #[test]
    fn the_roles_doctor_recommends_are_known_and_grant_what_they_are_recommended_for() {
        use crate::model::azure_use::AzureService;
        for (service, abac) in [
            (AzureService::ContainerRegistry, false),
            (AzureService::ContainerRegistry, true),
            (AzureService::BlobStorage, false),
            (AzureService::KeyVault, false),
            (AzureService::EventHubs, false),
            (AzureService::KubernetesService, false),
        ] {
            let need = roles::need(service, abac).unwrap();
            let known = by_id(need.role.id).expect(need.role.name);
            assert_eq!(known.name, need.role.name);
            let definition = known.definition();
            for operation in need.operations {
                assert!(
                    definition.allows(*operation),
                    "{} {operation:?}",
                    known.name
                );
            }
        }
    }

    #[test]
    fn ids_and_names_are_unique_and_lookups_ignore_case() {
        for (i, a) in BUILTIN_ROLES.iter().enumerate() {
            for b in &BUILTIN_ROLES[i + 1..] {
                assert_ne!(a.id, b.id);
                assert_ne!(a.name, b.name);
            }
        }
        assert_eq!(by_name("acrpull").unwrap().id, roles::ACR_PULL.id);
        assert_eq!(
            by_id("7F951DDA-4ED3-4680-A7CA-43FE172D538D").unwrap().name,
            "AcrPull"
        );
        let contributor = by_name("Contributor").unwrap().definition();
        assert!(contributor.allows(roles::ACR_PULL_ACTION));
        assert!(!contributor.allows(roles::ACR_CONTENT_READ));
        assert!(by_name("Some Custom Role").is_none());
    }
}
