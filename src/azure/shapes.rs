//! Resource Manager's answers as data: the shapes of managed clusters, federated credentials,
//! resources, role definitions and deny assignments, read from their JSON without I/O, so the
//! reading in [`super::gather`] stays only the calls.

use serde_json::Value;

use super::permissions::{Permission, RoleDefinition};
use super::roles::role_guid;
use super::state::{
    AccessPolicy, AksCluster, AzureResource, DenyAssignment, FederatedCredential, ResourceKind,
    ResourceSettings, subscription_of,
};

pub(super) fn text(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The AKS settings from a managed cluster as ARM (or Resource Graph) returns it. The REST API
/// says `issuerURL`; the az CLI shows `issuerUrl`.
pub(super) fn aks_cluster(value: &Value) -> AksCluster {
    let properties = value.get("properties").cloned().unwrap_or_default();
    let issuer = text(&properties, "/oidcIssuerProfile/issuerURL")
        .or_else(|| text(&properties, "/oidcIssuerProfile/issuerUrl"));
    let flag = |pointer: &str| {
        properties
            .pointer(pointer)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let id = text(value, "/id").unwrap_or_default();
    AksCluster {
        name: text(value, "/name").unwrap_or_default(),
        resource_group: text(value, "/resourceGroup")
            .or_else(|| resource_group_of(&id))
            .unwrap_or_default(),
        subscription_id: subscription_of(&id).unwrap_or_default().to_string(),
        id,
        oidc_issuer_enabled: flag("/oidcIssuerProfile/enabled"),
        issuer_url: issuer.filter(|i| !i.is_empty()),
        workload_identity_enabled: flag("/securityProfile/workloadIdentity/enabled"),
    }
}

pub(crate) fn resource_group_of(arm_id: &str) -> Option<String> {
    let mut parts = arm_id.split('/').filter(|p| !p.is_empty());
    while let Some(part) = parts.next() {
        if part.eq_ignore_ascii_case("resourceGroups") {
            return parts.next().map(str::to_string);
        }
    }
    None
}

pub(super) fn federated_credential(value: &Value) -> FederatedCredential {
    FederatedCredential {
        name: text(value, "/name").unwrap_or_default(),
        issuer: text(value, "/properties/issuer").unwrap_or_default(),
        subject: text(value, "/properties/subject").unwrap_or_default(),
        audiences: value
            .pointer("/properties/audiences")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

pub(super) fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A vault's `accessPolicies[]`: who, and which key permissions.
pub(super) fn access_policy(value: &Value) -> AccessPolicy {
    AccessPolicy {
        tenant_id: text(value, "/tenantId").unwrap_or_default(),
        object_id: text(value, "/objectId").unwrap_or_default(),
        application_id: text(value, "/applicationId").filter(|a| !a.is_empty()),
        keys: strings(value.pointer("/permissions/keys")),
    }
}

/// The data-access settings of a Resource Graph row (empty strings are `tostring(null)`).
pub(super) fn settings(row: &Value) -> ResourceSettings {
    let present = |pointer: &str| text(row, pointer).filter(|v| !v.is_empty());
    ResourceSettings {
        role_assignment_mode: present("/roleAssignmentMode"),
        arm_token_policy: present("/armTokenPolicy"),
        rbac_authorization: row.get("enableRbacAuthorization").and_then(Value::as_bool),
        access_policies: row
            .get("accessPolicies")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(access_policy).collect())
            .unwrap_or_default(),
    }
}

/// A Resource Graph row of `resolve_targets`, as the resource it names.
pub(super) fn resource_of(row: &Value) -> Option<AzureResource> {
    let id = text(row, "/id")?;
    let name = text(row, "/name").unwrap_or_default();
    let kind = text(row, "/type")?.to_ascii_lowercase();
    let (kind, key) = match kind.as_str() {
        "microsoft.containerregistry/registries" => (
            ResourceKind::ContainerRegistry,
            text(row, "/loginServer").unwrap_or_default(),
        ),
        "microsoft.storage/storageaccounts" => (ResourceKind::StorageAccount, name.clone()),
        "microsoft.containerservice/managedclusters" => (ResourceKind::ManagedCluster, id.clone()),
        "microsoft.keyvault/vaults" => (ResourceKind::KeyVault, name.clone()),
        "microsoft.eventhub/namespaces" => (ResourceKind::EventHubsNamespace, name.clone()),
        _ => return None,
    };
    Some(AzureResource {
        kind,
        key: key.to_ascii_lowercase(),
        id,
        name,
        settings: settings(row),
    })
}

pub(super) fn role_definition(value: &Value) -> RoleDefinition {
    let properties = value.get("properties").cloned().unwrap_or_default();
    let role_type = text(&properties, "/type").or_else(|| text(&properties, "/roleType"));
    RoleDefinition {
        id: text(value, "/name")
            .unwrap_or_else(|| role_guid(&text(value, "/id").unwrap_or_default()))
            .to_ascii_lowercase(),
        name: text(&properties, "/roleName").unwrap_or_default(),
        custom: role_type.is_some_and(|t| t.eq_ignore_ascii_case("CustomRole")),
        permissions: permissions(&properties),
    }
}

/// The `permissions` blocks of a role definition or a deny assignment, which share their shape.
pub(super) fn permissions(properties: &Value) -> Vec<Permission> {
    properties
        .get("permissions")
        .and_then(Value::as_array)
        .map(|blocks| {
            blocks
                .iter()
                .map(|b| Permission {
                    actions: strings(b.get("actions")),
                    not_actions: strings(b.get("notActions")),
                    data_actions: strings(b.get("dataActions")),
                    not_data_actions: strings(b.get("notDataActions")),
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn principal_ids(value: Option<&Value>) -> (Vec<String>, bool) {
    let items = value
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let ids = items.iter().filter_map(|p| text(p, "/id")).collect();
    let groups = items
        .iter()
        .any(|p| text(p, "/type").is_some_and(|t| t.eq_ignore_ascii_case("Group")));
    (ids, groups)
}

pub(super) fn deny_assignment(value: &Value, listed_for: &str) -> DenyAssignment {
    let properties = value.get("properties").cloned().unwrap_or_default();
    let (principals, group_principals) = principal_ids(properties.get("principals"));
    DenyAssignment {
        name: text(&properties, "/denyAssignmentName")
            .or_else(|| text(value, "/name"))
            .unwrap_or_default(),
        scope: text(&properties, "/scope").unwrap_or_default(),
        permissions: permissions(&properties),
        principals,
        group_principals,
        exclude_principals: principal_ids(properties.get("excludePrincipals")).0,
        do_not_apply_to_child_scopes: properties
            .get("doNotApplyToChildScopes")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        listed_for: listed_for.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aks_issuer_is_read_under_either_spelling() {
        let rest = json!({"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks",
            "name": "aks", "properties": {"oidcIssuerProfile": {"enabled": true, "issuerURL": "https://i/"},
            "securityProfile": {"workloadIdentity": {"enabled": true}}}});
        let cluster = aks_cluster(&rest);
        assert_eq!(cluster.issuer_url.as_deref(), Some("https://i/"));
        assert!(cluster.workload_identity_enabled);
        assert_eq!(cluster.resource_group, "rg");
        assert_eq!(cluster.subscription_id, "s");
        let cli = json!({"id": "x", "properties": {"oidcIssuerProfile": {"enabled": false, "issuerUrl": "https://j/"}}});
        let cluster = aks_cluster(&cli);
        assert_eq!(cluster.issuer_url.as_deref(), Some("https://j/"));
        assert!(!cluster.oidc_issuer_enabled);
        assert!(!cluster.workload_identity_enabled);
    }

    #[test]
    fn role_definitions_and_vault_policies_are_read_from_their_rest_shapes() {
        let definition = json!({"id": "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/ABC",
            "name": "ABC", "properties": {"roleName": "Pull only", "type": "CustomRole",
            "permissions": [{"actions": [], "notActions": [], "dataActions": ["x/read"], "notDataActions": ["x/y/read"]}]}});
        let definition = role_definition(&definition);
        assert_eq!(definition.id, "abc");
        assert!(definition.custom);
        assert_eq!(definition.permissions[0].not_data_actions, vec!["x/y/read"]);
        let row = json!({"id": "v", "enableRbacAuthorization": null, "roleAssignmentMode": "",
            "accessPolicies": [{"tenantId": "t", "objectId": "o", "permissions": {"keys": ["Get", "Decrypt"], "secrets": []}}]});
        let settings = settings(&row);
        assert_eq!(settings.rbac_authorization, None);
        assert_eq!(settings.role_assignment_mode, None);
        assert!(settings.access_policies[0].decrypts_for("O"));
        assert!(!settings.vault_rbac());
    }
}
