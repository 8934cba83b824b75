//! What a role definition grants, judged the way Azure RBAC judges it: an operation is allowed
//! by a permission block when one of its `actions` (or `dataActions`) matches it and none of its
//! `notActions` (or `notDataActions`) does; a definition allows what any of its blocks allows.
//! Operation names compare without regard to case and `*` matches any run of characters,
//! slashes included (learn.microsoft.com/azure/role-based-access-control/role-definitions,
//! "Actions", "NotActions", "DataActions"). Pure.

/// One `permissions[]` block of a role definition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permission {
    pub actions: Vec<String>,
    pub not_actions: Vec<String>,
    pub data_actions: Vec<String>,
    pub not_data_actions: Vec<String>,
}

/// A role definition, built-in or custom, as Resource Manager returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleDefinition {
    /// The definition's GUID, lowercased.
    pub id: String,
    pub name: String,
    /// `roleType` is `CustomRole`.
    pub custom: bool,
    pub permissions: Vec<Permission>,
}

/// An operation a Flux controller performs: control-plane actions authorize Resource Manager
/// calls (and ACR pulls in legacy mode); data actions authorize data-plane requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Action(&'static str),
    DataAction(&'static str),
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Action(name) | Operation::DataAction(name) => name,
        }
    }

    /// "action X" or "data action X", for messages.
    pub fn describe(self) -> String {
        match self {
            Operation::Action(name) => format!("action {name}"),
            Operation::DataAction(name) => format!("data action {name}"),
        }
    }
}

/// Whether `pattern` (with `*` wildcards) matches `operation`, ignoring case. Operation names
/// never contain `?`, so the fleet's name matching serves.
pub fn matches(pattern: &str, operation: &str) -> bool {
    super::clusters::glob_matches(pattern, operation)
}

impl Permission {
    pub fn allows(&self, operation: Operation) -> bool {
        let (allow, deny) = match operation {
            Operation::Action(_) => (&self.actions, &self.not_actions),
            Operation::DataAction(_) => (&self.data_actions, &self.not_data_actions),
        };
        let name = operation.name();
        allow.iter().any(|p| matches(p, name)) && !deny.iter().any(|p| matches(p, name))
    }
}

impl RoleDefinition {
    pub fn allows(&self, operation: Operation) -> bool {
        self.permissions.iter().any(|p| p.allows(operation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(
        actions: &[&str],
        not_actions: &[&str],
        data: &[&str],
        not_data: &[&str],
    ) -> Permission {
        let owned = |v: &[&str]| v.iter().map(|s| (*s).to_string()).collect();
        Permission {
            actions: owned(actions),
            not_actions: owned(not_actions),
            data_actions: owned(data),
            not_data_actions: owned(not_data),
        }
    }

    #[test]
    fn wildcards_match_any_run_of_characters_and_case_is_ignored() {
        assert!(matches(
            "*",
            "Microsoft.ContainerRegistry/registries/pull/read"
        ));
        assert!(matches(
            "Microsoft.EventHub/*/send/action",
            "microsoft.eventhub/namespaces/messages/send/action"
        ));
        assert!(matches("*/read", "Microsoft.Storage/storageAccounts/read"));
        assert!(matches(
            "Microsoft.KeyVault/vaults/keys/*",
            "Microsoft.KeyVault/vaults/keys/decrypt/action"
        ));
        assert!(!matches(
            "Microsoft.KeyVault/vaults/secrets/*",
            "Microsoft.KeyVault/vaults/keys/decrypt/action"
        ));
        assert!(!matches(
            "*/read",
            "Microsoft.KeyVault/vaults/keys/decrypt/action"
        ));
        assert!(!matches("a*b*c", "abc-x"));
        assert!(matches("a*b*c", "a-b-c"));
        assert!(!matches("ab", "abc"));
    }

    #[test]
    fn not_actions_subtract_within_their_block_only() {
        // Contributor: every action but those of Microsoft.Authorization that write or delete.
        let contributor = RoleDefinition {
            permissions: vec![block(
                &["*"],
                &[
                    "Microsoft.Authorization/*/Delete",
                    "Microsoft.Authorization/*/Write",
                ],
                &[],
                &[],
            )],
            ..RoleDefinition::default()
        };
        assert!(contributor.allows(Operation::Action(
            "Microsoft.ContainerRegistry/registries/pull/read"
        )));
        assert!(!contributor.allows(Operation::Action(
            "Microsoft.Authorization/roleAssignments/write"
        )));
        assert!(!contributor.allows(Operation::DataAction(
            "Microsoft.KeyVault/vaults/keys/decrypt/action"
        )));
        let split = RoleDefinition {
            permissions: vec![
                block(
                    &[],
                    &[],
                    &["Microsoft.KeyVault/vaults/keys/*"],
                    &["*/decrypt/action"],
                ),
                block(
                    &[],
                    &[],
                    &["Microsoft.KeyVault/vaults/keys/decrypt/action"],
                    &[],
                ),
            ],
            ..RoleDefinition::default()
        };
        assert!(split.allows(Operation::DataAction(
            "Microsoft.KeyVault/vaults/keys/decrypt/action"
        )));
    }

    #[test]
    fn not_data_actions_remove_what_data_actions_grant() {
        let role = RoleDefinition {
            permissions: vec![block(
                &[],
                &[],
                &["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*"],
                &["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"],
            )],
            ..RoleDefinition::default()
        };
        assert!(!role.allows(Operation::DataAction(
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
        )));
        assert!(role.allows(Operation::DataAction(
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"
        )));
        // An action never grants a data action of the same name.
        assert!(!role.allows(Operation::Action(
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"
        )));
    }
}
