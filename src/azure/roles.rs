//! The built-in roles each Flux integration needs, and whether an assignment's scope covers a
//! resource. Role definition IDs of built-in roles are the same in every tenant and cloud.

use super::state::RoleAssignment;
use crate::model::azure_use::AzureService;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinRole {
    pub name: &'static str,
    pub id: &'static str,
}

pub const ACR_PULL: BuiltinRole = BuiltinRole {
    name: "AcrPull",
    id: "7f951dda-4ed3-4680-a7ca-43fe172d538d",
};
pub const ACR_PUSH: BuiltinRole = BuiltinRole {
    name: "AcrPush",
    id: "8311e382-0749-4cb8-b61a-304f252e45ec",
};
pub const STORAGE_BLOB_DATA_READER: BuiltinRole = BuiltinRole {
    name: "Storage Blob Data Reader",
    id: "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
};
pub const STORAGE_BLOB_DATA_CONTRIBUTOR: BuiltinRole = BuiltinRole {
    name: "Storage Blob Data Contributor",
    id: "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
};
pub const STORAGE_BLOB_DATA_OWNER: BuiltinRole = BuiltinRole {
    name: "Storage Blob Data Owner",
    id: "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
};
pub const KEY_VAULT_CRYPTO_USER: BuiltinRole = BuiltinRole {
    name: "Key Vault Crypto User",
    id: "12338af0-0e69-4776-bea7-57ae8d297424",
};
pub const KEY_VAULT_CRYPTO_OFFICER: BuiltinRole = BuiltinRole {
    name: "Key Vault Crypto Officer",
    id: "14b46e9e-c2b7-41b4-b07b-48a6ebf60603",
};
pub const KEY_VAULT_ADMINISTRATOR: BuiltinRole = BuiltinRole {
    name: "Key Vault Administrator",
    id: "00482a5a-887f-4fb3-b363-3b7fe8e74483",
};
pub const EVENT_HUBS_DATA_SENDER: BuiltinRole = BuiltinRole {
    name: "Azure Event Hubs Data Sender",
    id: "2b629674-e913-4c01-ae53-ef4638d8f975",
};
pub const EVENT_HUBS_DATA_OWNER: BuiltinRole = BuiltinRole {
    name: "Azure Event Hubs Data Owner",
    id: "f526a384-b230-433a-b45c-95f59c4a2dec",
};
pub const AKS_CLUSTER_USER: BuiltinRole = BuiltinRole {
    name: "Azure Kubernetes Service Cluster User Role",
    id: "4abbcc35-e782-43d8-92c5-2d3f1bd2253f",
};
pub const CONTRIBUTOR: BuiltinRole = BuiltinRole {
    name: "Contributor",
    id: "b24988ac-6180-42a0-ab88-20f7382dd24c",
};
pub const OWNER: BuiltinRole = BuiltinRole {
    name: "Owner",
    id: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
};
/// Grants none of what Flux needs; known so that it is not mistaken for a custom role.
pub const READER: BuiltinRole = BuiltinRole {
    name: "Reader",
    id: "acdd72a7-3385-48ef-bd42-f606fba81ae7",
};

/// The role Flux's documentation recommends for a service, and the built-in roles that also
/// grant what it needs. Contributor and Owner carry every action but no data action, so they
/// satisfy only the services that authorize with actions (ACR pulls, AKS credentials).
#[derive(Debug, Clone, Copy)]
pub struct Requirement {
    pub role: BuiltinRole,
    pub also: &'static [BuiltinRole],
}

impl Requirement {
    pub fn satisfied_by(&self, role_id: &str) -> bool {
        std::iter::once(&self.role)
            .chain(self.also)
            .any(|r| r.id.eq_ignore_ascii_case(role_id))
    }

    /// "AcrPull (or AcrPush, Contributor, Owner)".
    pub fn describe(&self) -> String {
        if self.also.is_empty() {
            return self.role.name.to_string();
        }
        let also: Vec<&str> = self.also.iter().map(|r| r.name).collect();
        format!("{} (or {})", self.role.name, also.join(", "))
    }
}

/// What an identity needs for a service; Azure DevOps has its own permission system.
pub fn requirement(service: AzureService) -> Option<Requirement> {
    Some(match service {
        AzureService::ContainerRegistry => Requirement {
            role: ACR_PULL,
            also: &[ACR_PUSH, CONTRIBUTOR, OWNER],
        },
        AzureService::BlobStorage => Requirement {
            role: STORAGE_BLOB_DATA_READER,
            also: &[STORAGE_BLOB_DATA_CONTRIBUTOR, STORAGE_BLOB_DATA_OWNER],
        },
        AzureService::KeyVault => Requirement {
            role: KEY_VAULT_CRYPTO_USER,
            also: &[KEY_VAULT_CRYPTO_OFFICER, KEY_VAULT_ADMINISTRATOR],
        },
        AzureService::EventHubs => Requirement {
            role: EVENT_HUBS_DATA_SENDER,
            also: &[EVENT_HUBS_DATA_OWNER],
        },
        AzureService::KubernetesService => Requirement {
            role: AKS_CLUSTER_USER,
            also: &[CONTRIBUTOR, OWNER],
        },
        AzureService::DevOps => return None,
    })
}

/// The GUID at the end of a `roleDefinitionId`, lowercased.
pub fn role_guid(role_definition_id: &str) -> String {
    role_definition_id
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

fn is_management_group_or_root(scope: &str) -> bool {
    let scope = scope.trim_end_matches('/');
    scope.is_empty()
        || scope
            .to_ascii_lowercase()
            .starts_with("/providers/microsoft.management/managementgroups/")
}

/// Whether an assignment applies to a resource: scopes inherit downwards (resource < resource
/// group < subscription < management group). A management group's members are not visible
/// here, but the Authorization API lists inherited assignments with each subscription, so one
/// listed for the resource's subscription covers it.
pub fn covers(assignment: &RoleAssignment, resource_id: &str) -> bool {
    if is_management_group_or_root(&assignment.scope) {
        return super::state::subscription_of(resource_id)
            .is_some_and(|s| s.eq_ignore_ascii_case(&assignment.listed_in));
    }
    let scope = assignment.scope.trim_end_matches('/').to_ascii_lowercase();
    let resource = resource_id.trim_end_matches('/').to_ascii_lowercase();
    resource == scope || resource.starts_with(&format!("{scope}/"))
}

/// Whether an assignment sits below a resource (a Blob container under its storage account):
/// enough for a Bucket whose container doctor cannot name.
pub fn below(assignment: &RoleAssignment, resource_id: &str) -> bool {
    let scope = assignment.scope.to_ascii_lowercase();
    let resource = resource_id.trim_end_matches('/').to_ascii_lowercase();
    scope.starts_with(&format!("{resource}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "11111111-1111-1111-1111-111111111111";

    fn assignment(scope: &str) -> RoleAssignment {
        RoleAssignment {
            principal_id: "p".into(),
            role: ACR_PULL.id.into(),
            scope: scope.into(),
            listed_in: SUB.into(),
        }
    }

    fn registry() -> String {
        format!(
            "/subscriptions/{SUB}/resourceGroups/rg-acr/providers/Microsoft.ContainerRegistry/registries/contoso"
        )
    }

    #[test]
    fn scopes_inherit_downwards_and_ignore_case() {
        assert!(covers(&assignment(&registry()), &registry()));
        assert!(covers(
            &assignment(&format!("/subscriptions/{SUB}/resourcegroups/RG-ACR")),
            &registry()
        ));
        assert!(covers(
            &assignment(&format!("/subscriptions/{SUB}")),
            &registry()
        ));
        assert!(!covers(
            &assignment(&format!("/subscriptions/{SUB}/resourceGroups/rg-acr2")),
            &registry()
        ));
        assert!(!covers(
            &assignment(&format!("{}/sub", registry())),
            &registry()
        ));
    }

    #[test]
    fn management_group_assignments_cover_the_subscription_they_were_listed_for() {
        let mg = assignment("/providers/Microsoft.Management/managementGroups/platform");
        assert!(covers(&mg, &registry()));
        let other = registry().replace(SUB, "22222222-2222-2222-2222-222222222222");
        assert!(!covers(&mg, &other));
    }

    #[test]
    fn requirements_accept_broader_built_ins_only_where_they_carry_the_permission() {
        let acr = requirement(AzureService::ContainerRegistry).unwrap();
        assert!(acr.satisfied_by(&CONTRIBUTOR.id.to_uppercase()));
        let blob = requirement(AzureService::BlobStorage).unwrap();
        assert!(!blob.satisfied_by(CONTRIBUTOR.id));
        assert!(blob.satisfied_by(STORAGE_BLOB_DATA_OWNER.id));
        assert!(requirement(AzureService::DevOps).is_none());
        assert_eq!(acr.describe(), "AcrPull (or AcrPush, Contributor, Owner)");
    }

    #[test]
    fn role_guid_takes_the_last_segment() {
        assert_eq!(
            role_guid(
                "/subscriptions/x/providers/Microsoft.Authorization/roleDefinitions/7F951DDA-4ed3-4680-a7ca-43fe172d538d"
            ),
            ACR_PULL.id
        );
    }
}
