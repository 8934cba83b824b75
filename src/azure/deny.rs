//! Deny assignments: Azure refuses an operation to a principal when a deny assignment at the
//! resource's scope (or above it, unless `doNotApplyToChildScopes`) names the principal (or
//! everyone, the all-zero ID of type `SystemDefined`), does not exempt it in
//! `excludePrincipals`, and one of its permission blocks matches the operation in `actions` or
//! `dataActions` without `notActions` or `notDataActions` taking it out; deny assignments win
//! over role assignments (learn.microsoft.com/azure/role-based-access-control/deny-assignments,
//! "Deny assignment properties"). Pure.

use super::permissions::Operation;
use super::state::DenyAssignment;

/// The principal ID that stands for every principal.
pub const EVERYONE: &str = "00000000-0000-0000-0000-000000000000";

/// Whether a deny assignment listed for `resource_id` applies there.
fn applies_at(deny: &DenyAssignment, resource_id: &str) -> bool {
    let scope = deny.scope.trim_end_matches('/').to_ascii_lowercase();
    let resource = resource_id.trim_end_matches('/').to_ascii_lowercase();
    resource == scope
        || (!deny.do_not_apply_to_child_scopes && resource.starts_with(&format!("{scope}/")))
}

/// Whether `deny` refuses `operation` on `resource_id` to the principal `principal_id`.
pub fn denies(
    deny: &DenyAssignment,
    principal_id: &str,
    resource_id: &str,
    operation: Operation,
) -> bool {
    let named = deny
        .principals
        .iter()
        .any(|p| p == EVERYONE || p.eq_ignore_ascii_case(principal_id));
    let exempt = deny
        .exclude_principals
        .iter()
        .any(|p| p.eq_ignore_ascii_case(principal_id));
    named
        && !exempt
        && applies_at(deny, resource_id)
        && deny.permissions.iter().any(|p| p.allows(operation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::permissions::Permission;
    use crate::azure::roles::{ACR_PULL_ACTION, BLOB_READ};

    const ME: &str = "5d2a7c1e-8b3f-4e6a-9c0d-1f2e3a4b5c6d";
    const GROUP: &str = "/subscriptions/s/resourceGroups/rg";

    fn deny(
        principals: &[&str],
        excluded: &[&str],
        data: &[&str],
        not_data: &[&str],
    ) -> DenyAssignment {
        let owned = |v: &[&str]| v.iter().map(|s| (*s).to_string()).collect();
        DenyAssignment {
            name: "stack".into(),
            scope: GROUP.into(),
            permissions: vec![Permission {
                data_actions: owned(data),
                not_data_actions: owned(not_data),
                ..Permission::default()
            }],
            principals: owned(principals),
            exclude_principals: owned(excluded),
            ..DenyAssignment::default()
        }
    }

    #[test]
    fn everyone_or_the_principal_is_denied_unless_exempt_or_taken_out() {
        let account = format!("{GROUP}/providers/Microsoft.Storage/storageAccounts/flux");
        let all = deny(&[EVERYONE], &[], &["*"], &[]);
        assert!(denies(&all, ME, &account, BLOB_READ));
        assert!(
            !denies(&all, ME, &account, ACR_PULL_ACTION),
            "a data block denies no action"
        );
        assert!(!denies(
            &deny(&[EVERYONE], &[ME], &["*"], &[]),
            ME,
            &account,
            BLOB_READ
        ));
        assert!(!denies(
            &deny(&[EVERYONE], &[], &["*"], &["*/blobs/read"]),
            ME,
            &account,
            BLOB_READ
        ));
        assert!(denies(
            &deny(&[&ME.to_uppercase()], &[], &["*"], &[]),
            ME,
            &account,
            BLOB_READ
        ));
        assert!(!denies(
            &deny(&["0a0a0a0a-0000-4000-8000-000000000000"], &[], &["*"], &[]),
            ME,
            &account,
            BLOB_READ
        ));
        let mut here_only = all.clone();
        here_only.do_not_apply_to_child_scopes = true;
        assert!(!denies(&here_only, ME, &account, BLOB_READ));
        assert!(denies(&here_only, ME, GROUP, BLOB_READ));
    }
}
