//! Azure Service Operator objects in a live cluster: when the cluster serves ASO's CRDs
//! (managedidentity.azure.com `FederatedIdentityCredential` and `UserAssignedIdentity`,
//! authorization.azure.com `RoleAssignment`), they are listed in all namespaces (or the `-n`
//! namespace) at the group's preferred version, into the snapshot fields the manifests fill, so
//! AZF073 and AZF074 run on them live. A group the cluster does not serve is not an error; a
//! forbidden list becomes a note (ASO's CRDs are not part of the `view` role), anything else an
//! unreadable read.

use futures::future::join_all;
use serde_json::Value;

use super::live::{ReadError, Reader};
use crate::model::{Snapshot, Unreadable, extract};

/// The ASO kinds read live: group, plural.
const KINDS: [(&str, &str); 3] = [
    ("managedidentity.azure.com", "federatedidentitycredentials"),
    ("managedidentity.azure.com", "userassignedidentities"),
    ("authorization.azure.com", "roleassignments"),
];

/// What was read, by kind, in `KINDS` order.
pub struct AsoRead {
    lists: Vec<Result<Vec<Value>, ReadError>>,
}

/// The group's versions, its preferred one first (`/apis/{group}`).
async fn group_versions(reader: &Reader, group: &str) -> Result<Vec<String>, ReadError> {
    let doc = reader
        .get_json(&format!("/apis/{group}"), "application/json")
        .await?;
    let preferred = doc
        .pointer("/preferredVersion/groupVersion")
        .and_then(Value::as_str);
    let mut versions: Vec<String> = preferred.into_iter().map(str::to_string).collect();
    versions.extend(
        doc.get("versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.get("groupVersion").and_then(Value::as_str))
            .filter(|v| Some(*v) != preferred)
            .map(str::to_string),
    );
    Ok(versions)
}

/// Lists a kind at the group's preferred version, or, since one group's CRDs need not share
/// their versions (an ASO kind exists only at the ARM API versions that have it), at the next
/// version that serves it.
async fn list(
    reader: &Reader,
    group: &str,
    plural: &str,
    namespace: Option<&str>,
) -> Result<Vec<Value>, ReadError> {
    let mut last = ReadError::NotFound;
    for group_version in group_versions(reader, group).await? {
        let path = match namespace {
            Some(ns) => format!("/apis/{group_version}/namespaces/{ns}/{plural}"),
            None => format!("/apis/{group_version}/{plural}"),
        };
        let mut items = Vec::new();
        match reader.list(&path, |item| items.push(item.clone())).await {
            Ok(()) => return Ok(items),
            Err(ReadError::NotFound) => {}
            Err(error) => last = error,
        }
        if last != ReadError::NotFound {
            break;
        }
    }
    Err(last)
}

pub async fn read(reader: &Reader, namespace: Option<&str>) -> AsoRead {
    AsoRead {
        lists: join_all(
            KINDS
                .iter()
                .map(|(group, plural)| list(reader, group, plural, namespace)),
        )
        .await,
    }
}

impl AsoRead {
    /// Fills the snapshot's declared objects, and notes what could not be read.
    pub fn apply(self, snapshot: &mut Snapshot, problems: &mut Vec<Unreadable>) {
        let default_ns = snapshot.flux_namespace.clone();
        for ((group, plural), result) in KINDS.iter().zip(self.lists) {
            let items = match result {
                Ok(items) => items,
                Err(ReadError::NotFound) => continue,
                Err(ReadError::Forbidden) => {
                    snapshot.input_notes.push(format!(
                        "Azure Service Operator {plural} not read: forbidden (list {plural}.{group} would let AZF073/AZF074 check them)"
                    ));
                    continue;
                }
                Err(error) => {
                    problems.push(Unreadable {
                        what: format!("{plural}.{group}"),
                        cause: error.cause(),
                        missing_permission: None,
                    });
                    continue;
                }
            };
            for item in &items {
                match *plural {
                    "federatedidentitycredentials" => snapshot
                        .declared_credentials
                        .push(extract::declared_credential(item, &default_ns)),
                    "userassignedidentities" => snapshot
                        .declared_identities
                        .push(extract::declared_identity(item, &default_ns)),
                    _ => snapshot
                        .declared_role_assignments
                        .push(extract::declared_role_assignment(item, &default_ns)),
                }
            }
        }
    }
}
