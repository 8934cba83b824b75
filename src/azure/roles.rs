//! What each Flux integration must be allowed to do, judged against the definitions of the
//! roles assigned (built-in or custom) on a scope that covers the resource, with their
//! conditions. Role definition IDs of built-in roles are the same in every tenant and cloud.

use super::condition::{self, Outcome, Repository};
use super::permissions::{Operation, RoleDefinition};
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
pub const STORAGE_BLOB_DATA_READER: BuiltinRole = BuiltinRole {
    name: "Storage Blob Data Reader",
    id: "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
};
pub const KEY_VAULT_CRYPTO_USER: BuiltinRole = BuiltinRole {
    name: "Key Vault Crypto User",
    id: "12338af0-0e69-4776-bea7-57ae8d297424",
};
pub const EVENT_HUBS_DATA_SENDER: BuiltinRole = BuiltinRole {
    name: "Azure Event Hubs Data Sender",
    id: "2b629674-e913-4c01-ae53-ef4638d8f975",
};
pub const AKS_CLUSTER_USER: BuiltinRole = BuiltinRole {
    name: "Azure Kubernetes Service Cluster User Role",
    id: "4abbcc35-e782-43d8-92c5-2d3f1bd2253f",
};
/// Carries every action and no data action: enough for a legacy registry, nothing in ABAC mode.
pub const OWNER: BuiltinRole = BuiltinRole {
    name: "Owner",
    id: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
};

/// ACR roles honoured by registries in ABAC mode ("RBAC Registry + ABAC Repository
/// Permissions"); role IDs from the built-in role reference
/// (learn.microsoft.com/azure/role-based-access-control/built-in-roles/containers).
pub const REPOSITORY_READER: BuiltinRole = BuiltinRole {
    name: "Container Registry Repository Reader",
    id: "b93aa761-3e63-49ed-ac28-beffa264f7ac",
};

/// Pulling from a registry in legacy mode (AcrPull's only action).
pub const ACR_PULL_ACTION: Operation =
    Operation::Action("Microsoft.ContainerRegistry/registries/pull/read");
/// Reading manifests and blobs of a repository in ABAC mode.
pub const ACR_CONTENT_READ: Operation =
    Operation::DataAction("Microsoft.ContainerRegistry/registries/repositories/content/read");
/// Listing a repository's tags in ABAC mode (ImageRepository scans, OCIRepository semver).
pub const ACR_METADATA_READ: Operation =
    Operation::DataAction("Microsoft.ContainerRegistry/registries/repositories/metadata/read");
/// Listing and reading a Bucket's blobs.
pub const BLOB_READ: Operation =
    Operation::DataAction("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read");
/// What SOPS asks of Key Vault to unwrap a data key.
pub const KEY_DECRYPT: Operation =
    Operation::DataAction("Microsoft.KeyVault/vaults/keys/decrypt/action");
/// Sending an event to a hub of the namespace.
pub const EVENT_SEND: Operation =
    Operation::DataAction("Microsoft.EventHub/namespaces/messages/send/action");
/// Reading a remote AKS cluster (its Entra integration) and its user kubeconfig.
pub const AKS_READ: Operation =
    Operation::Action("Microsoft.ContainerService/managedClusters/read");
pub const AKS_USER_CREDENTIAL: Operation = Operation::Action(
    "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action",
);

/// What a Flux integration must be allowed to do, and the built-in role that allows it which
/// Flux's and the service's documentation name.
#[derive(Debug, Clone, Copy)]
pub struct Need {
    pub operations: &'static [Operation],
    pub role: BuiltinRole,
}

/// What an identity needs for a service; `abac` is whether the registry is in ABAC mode.
/// Azure DevOps has its own permission system.
pub fn need(service: AzureService, abac: bool) -> Option<Need> {
    Some(match service {
        AzureService::ContainerRegistry if abac => Need {
            operations: &[ACR_CONTENT_READ, ACR_METADATA_READ],
            role: REPOSITORY_READER,
        },
        AzureService::ContainerRegistry => Need {
            operations: &[ACR_PULL_ACTION],
            role: ACR_PULL,
        },
        AzureService::BlobStorage => Need {
            operations: &[BLOB_READ],
            role: STORAGE_BLOB_DATA_READER,
        },
        AzureService::KeyVault => Need {
            operations: &[KEY_DECRYPT],
            role: KEY_VAULT_CRYPTO_USER,
        },
        AzureService::EventHubs => Need {
            operations: &[EVENT_SEND],
            role: EVENT_HUBS_DATA_SENDER,
        },
        AzureService::KubernetesService => Need {
            operations: &[AKS_READ, AKS_USER_CREDENTIAL],
            role: AKS_CLUSTER_USER,
        },
        AzureService::DevOps => return None,
    })
}

/// Whether the assignments that apply allow what is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    Yes,
    /// Some assignment could allow it; why doctor cannot tell, one reason per assignment.
    Maybe(Vec<String>),
    /// Nothing allows it; notes say why assignments that look related do not count.
    No(Vec<String>),
}

fn describe_assignment(assignment: &RoleAssignment, definition: Option<&RoleDefinition>) -> String {
    let name = definition.map_or(assignment.role.as_str(), |d| d.name.as_str());
    let custom = if definition.is_some_and(|d| d.custom) {
        " (custom role)"
    } else {
        ""
    };
    format!("{name}{custom} at {}", assignment.scope)
}

enum Verdict {
    Yes,
    Maybe(String),
    No(Option<String>),
}

fn judge_one(
    assignment: &RoleAssignment,
    definitions: &[RoleDefinition],
    operation: Operation,
    repository: Option<&Repository>,
) -> Verdict {
    let definition = definitions
        .iter()
        .find(|d| d.id.eq_ignore_ascii_case(&assignment.role));
    let who = describe_assignment(assignment, definition);
    let Some(definition) = definition else {
        return Verdict::Maybe(format!("{who}: its role definition could not be read"));
    };
    if !definition.allows(operation) {
        return Verdict::No(None);
    }
    let Some(condition) = assignment
        .condition
        .as_deref()
        .filter(|c| !c.trim().is_empty())
    else {
        return Verdict::Yes;
    };
    match condition::assess(
        condition,
        assignment.condition_version.as_deref(),
        operation.name(),
        repository,
    ) {
        Outcome::Allows => Verdict::Yes,
        Outcome::Denies => Verdict::No(Some(format!(
            "{who} has a condition that excludes {}",
            repository.map_or_else(|| "this use".to_string(), describe_repository)
        ))),
        Outcome::Unknown(reason) => Verdict::Maybe(format!("{who} has a condition: {reason}")),
    }
}

/// "repository manifests/app", "repositories under charts/".
pub fn describe_repository(repository: &Repository) -> String {
    match repository {
        Repository::Exact(name) => format!("repository {name}"),
        Repository::Under(prefix) => format!("repositories under {prefix}"),
    }
}

/// Judges the assignments that apply to a resource against what is needed: every operation
/// must be allowed by some assignment whose role allows it and whose condition, if any, holds.
pub fn grant(
    applying: &[&RoleAssignment],
    definitions: &[RoleDefinition],
    need: &Need,
    repository: Option<&Repository>,
) -> Grant {
    let mut maybe = Vec::new();
    let mut notes = Vec::new();
    let mut all_granted = true;
    for operation in need.operations {
        let mut granted = false;
        let mut possible = false;
        for assignment in applying {
            match judge_one(assignment, definitions, *operation, repository) {
                Verdict::Yes => granted = true,
                Verdict::Maybe(reason) => {
                    possible = true;
                    maybe.push(reason);
                }
                Verdict::No(note) => notes.extend(note),
            }
        }
        if !granted {
            all_granted = false;
            if !possible {
                notes.sort();
                notes.dedup();
                return Grant::No(notes);
            }
        }
    }
    if all_granted {
        return Grant::Yes;
    }
    maybe.sort();
    maybe.dedup();
    Grant::Maybe(maybe)
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
            definition_id: String::new(),
            scope: scope.into(),
            condition: None,
            condition_version: None,
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

    fn definition(id: &str, name: &str, actions: &[&str], data: &[&str]) -> RoleDefinition {
        RoleDefinition {
            id: id.into(),
            name: name.into(),
            custom: false,
            permissions: vec![crate::azure::permissions::Permission {
                actions: actions.iter().map(|s| (*s).to_string()).collect(),
                data_actions: data.iter().map(|s| (*s).to_string()).collect(),
                ..Default::default()
            }],
        }
    }

    fn definitions() -> Vec<RoleDefinition> {
        vec![
            definition(ACR_PULL.id, "AcrPull", &[ACR_PULL_ACTION.name()], &[]),
            definition(OWNER.id, "Owner", &["*"], &[]),
            definition(
                REPOSITORY_READER.id,
                "Container Registry Repository Reader",
                &[],
                &[ACR_CONTENT_READ.name(), ACR_METADATA_READ.name()],
            ),
        ]
    }

    fn with_role(role: &str, condition: Option<&str>) -> RoleAssignment {
        RoleAssignment {
            role: role.into(),
            condition: condition.map(str::to_string),
            condition_version: condition.map(|_| "2.0".to_string()),
            ..assignment(&registry())
        }
    }

    #[test]
    fn legacy_registries_honour_pull_actions_and_abac_ones_only_data_actions() {
        let legacy = need(AzureService::ContainerRegistry, false).unwrap();
        let abac = need(AzureService::ContainerRegistry, true).unwrap();
        let defs = definitions();
        for role in [ACR_PULL.id, OWNER.id] {
            let a = with_role(role, None);
            assert_eq!(grant(&[&a], &defs, &legacy, None), Grant::Yes, "{role}");
            assert_eq!(
                grant(&[&a], &defs, &abac, None),
                Grant::No(vec![]),
                "{role}"
            );
        }
        let reader = with_role(REPOSITORY_READER.id, None);
        assert_eq!(grant(&[&reader], &defs, &abac, None), Grant::Yes);
        assert_eq!(abac.role, REPOSITORY_READER);
        assert!(need(AzureService::DevOps, false).is_none());
    }

    #[test]
    fn repository_conditions_are_evaluated_and_others_reported() {
        let abac = need(AzureService::ContainerRegistry, true).unwrap();
        let defs = definitions();
        let condition = "((!(ActionMatches{'Microsoft.ContainerRegistry/registries/repositories/content/read'}) AND !(ActionMatches{'Microsoft.ContainerRegistry/registries/repositories/metadata/read'})) OR (@Request[Microsoft.ContainerRegistry/registries/repositories:name] StringEqualsIgnoreCase 'app'))";
        let scoped = with_role(REPOSITORY_READER.id, Some(condition));
        let app = Repository::Exact("app".into());
        let other = Repository::Exact("db".into());
        assert_eq!(grant(&[&scoped], &defs, &abac, Some(&app)), Grant::Yes);
        let Grant::No(notes) = grant(&[&scoped], &defs, &abac, Some(&other)) else {
            panic!("a condition for another repository grants nothing here");
        };
        assert!(notes[0].contains("excludes repository db"), "{notes:?}");
        assert!(matches!(
            grant(&[&scoped], &defs, &abac, None),
            Grant::Maybe(_)
        ));
        let unknown_role = with_role("0000aaaa-0000-4000-8000-000000000000", None);
        let Grant::Maybe(reasons) = grant(&[&unknown_role], &defs, &abac, None) else {
            panic!("an unreadable definition is not evaluable");
        };
        assert!(reasons[0].contains("could not be read"), "{reasons:?}");
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
