//! The AKS fleet through Resource Manager, for `clusters list` and `clusters sync`: every
//! managed cluster of a subscription, whether the login may fetch each one's credentials, and
//! the credentials themselves. Calls go through [`Arm`] (paging, throttling, error envelope).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::Value;

use super::arm::{API_AKS, API_AUTHORIZATION, Arm, ArmError};
use super::shapes::resource_group_of;
use super::state::subscription_of;
use crate::model::Fact;
use crate::model::fleet::{Access, Caller, Entra, FleetCluster};

/// The Resource Manager action behind `az aks get-credentials`.
pub const LIST_USER_CREDENTIAL: &str =
    "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action";
/// The Resource Manager action behind `az aks get-credentials --admin`.
pub const LIST_ADMIN_CREDENTIAL: &str =
    "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action";

fn text(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn flag(value: &Value, pointer: &str) -> bool {
    value
        .pointer(pointer)
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// A managed cluster as `GET …/managedClusters` returns it. Contexts and access are filled in
/// later.
pub fn fleet_cluster(value: &Value) -> FleetCluster {
    let id = text(value, "/id").unwrap_or_default();
    let entra = match value.pointer("/properties/aadProfile") {
        None | Some(Value::Null) => Entra::Disabled,
        Some(profile) if flag(profile, "/managed") => Entra::Managed {
            tenant_id: text(profile, "/tenantID"),
            azure_rbac: flag(profile, "/enableAzureRBAC"),
        },
        Some(_) => Entra::Legacy,
    };
    FleetCluster {
        name: text(value, "/name").unwrap_or_default(),
        subscription_id: subscription_of(&id).unwrap_or_default().to_string(),
        resource_group: resource_group_of(&id).unwrap_or_default(),
        location: text(value, "/location").unwrap_or_default(),
        kubernetes_version: text(value, "/properties/currentKubernetesVersion")
            .or_else(|| text(value, "/properties/kubernetesVersion")),
        fqdn: text(value, "/properties/fqdn").or_else(|| text(value, "/properties/privateFQDN")),
        entra,
        local_accounts_disabled: flag(value, "/properties/disableLocalAccounts"),
        oidc_issuer: flag(value, "/properties/oidcIssuerProfile/enabled"),
        workload_identity: flag(
            value,
            "/properties/securityProfile/workloadIdentity/enabled",
        ),
        contexts: Vec::new(),
        credential_access: Fact::Unknown("not read".into()),
        id,
    }
}

/// Every AKS cluster of a subscription, all pages.
pub async fn list(arm: &Arm, subscription: &str) -> Result<Vec<FleetCluster>, ArmError> {
    let path = format!(
        "/subscriptions/{subscription}/providers/Microsoft.ContainerService/managedClusters?api-version={API_AKS}"
    );
    Ok(arm.list(&path).await?.iter().map(fleet_cluster).collect())
}

/// Shell-style matching of `*` (any run) and `?` (one character), ignoring ASCII case: Azure
/// compares resource names and action names that way.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let text: Vec<char> = text.to_ascii_lowercase().chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it has swallowed up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

fn strings(value: &Value, key: &str) -> Vec<String> {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether effective permissions (one entry per role: `actions` minus its `notActions`)
/// allow an action.
pub fn permits(permissions: &[Value], action: &str) -> bool {
    permissions.iter().any(|p| {
        strings(p, "actions")
            .iter()
            .any(|a| glob_matches(a, action))
            && !strings(p, "notActions")
                .iter()
                .any(|n| glob_matches(n, action))
    })
}

/// Whether the login may perform `action` on the cluster, from its effective permissions
/// there (groups and custom roles included).
pub async fn access(arm: &Arm, cluster_id: &str, action: &str) -> Fact<Access> {
    let path = format!(
        "{cluster_id}/providers/Microsoft.Authorization/permissions?api-version={API_AUTHORIZATION}"
    );
    match arm.list(&path).await {
        Ok(permissions) if permits(&permissions, action) => Fact::Known(Access::Allowed),
        Ok(_) => Fact::Known(Access::Denied {
            action: action.to_string(),
            detail: format!("none of its roles on the cluster allows {action}"),
        }),
        Err(e) => Fact::Unknown(format!("could not read the login's permissions: {e}")),
    }
}

/// The kubeconfig Resource Manager hands out for the cluster: the user credential in exec
/// (kubelogin) format, or with `admin` the local admin account's certificate. The text holds
/// secrets when `admin` is set; it is never printed.
pub async fn credentials(arm: &Arm, cluster_id: &str, admin: bool) -> Result<String, ArmError> {
    let path = if admin {
        format!("{cluster_id}/listClusterAdminCredential?api-version={API_AKS}")
    } else {
        format!("{cluster_id}/listClusterUserCredential?api-version={API_AKS}&format=exec")
    };
    let answer = arm.send(Method::POST, &path, None).await?;
    let failed = |message: &str| ArmError::Transport {
        what: format!("POST {}", path.split('?').next().unwrap_or_default()),
        message: message.to_string(),
    };
    let encoded = answer
        .pointer("/kubeconfigs/0/value")
        .and_then(Value::as_str)
        .ok_or_else(|| failed("the answer holds no kubeconfig"))?;
    let bytes = STANDARD
        .decode(encoded.trim())
        .map_err(|_| failed("the kubeconfig in the answer is not base64"))?;
    String::from_utf8(bytes).map_err(|_| failed("the kubeconfig in the answer is not UTF-8"))
}

/// Who a Resource Manager token was issued to, from its claims; the token itself is not kept.
pub fn caller(token: &str) -> Option<Caller> {
    let claims = super::jwt::payload(token)?;
    let object_id = text(&claims, "/oid")?;
    let user_name = text(&claims, "/upn").or_else(|| {
        text(&claims, "/scp")
            .is_some()
            .then(|| text(&claims, "/preferred_username"))
            .flatten()
    });
    Some(match user_name {
        Some(user) => Caller {
            object_id,
            assignee: user.clone(),
            kubernetes_user: user,
        },
        None => Caller {
            assignee: text(&claims, "/appid")
                .or_else(|| text(&claims, "/azp"))
                .unwrap_or_else(|| object_id.clone()),
            kubernetes_user: object_id.clone(),
            object_id,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs_match_like_a_shell_ignoring_case() {
        assert!(glob_matches("aks-*", "AKS-prod"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("a?c*z", "abcxyz"));
        assert!(glob_matches("*-prod-*", "weu-prod-01"));
        assert!(!glob_matches("aks-*", "dev-aks"));
        assert!(!glob_matches("a?c", "ac"));
        assert!(glob_matches(
            "Microsoft.ContainerService/managedClusters/*",
            LIST_USER_CREDENTIAL
        ));
        assert!(glob_matches("*/read", "Microsoft.Resources/x/read"));
        assert!(!glob_matches("*/read", LIST_USER_CREDENTIAL));
    }

    #[test]
    fn permissions_subtract_not_actions_per_role() {
        let reader = json!({"actions": ["*/read"], "notActions": []});
        let cluster_user = json!({"actions": [LIST_USER_CREDENTIAL, "Microsoft.ContainerService/managedClusters/read"], "notActions": []});
        let odd = json!({"actions": ["*"], "notActions": ["Microsoft.ContainerService/*"]});
        assert!(!permits(
            std::slice::from_ref(&reader),
            LIST_USER_CREDENTIAL
        ));
        assert!(permits(&[reader, cluster_user], LIST_USER_CREDENTIAL));
        assert!(!permits(&[odd], LIST_USER_CREDENTIAL));
        assert!(permits(
            &[json!({"actions": ["*"], "notActions": ["Microsoft.Authorization/*/Write"]})],
            LIST_ADMIN_CREDENTIAL
        ));
    }

    #[test]
    fn entra_modes_and_settings_are_read() {
        let managed = fleet_cluster(&json!({
            "id": "/subscriptions/s1/resourcegroups/rg-a/providers/Microsoft.ContainerService/managedClusters/a",
            "name": "a", "location": "westeurope",
            "properties": {"kubernetesVersion": "1.33", "currentKubernetesVersion": "1.33.2",
                "fqdn": "a-dns.hcp.westeurope.azmk8s.io",
                "aadProfile": {"managed": true, "enableAzureRBAC": true, "tenantID": "t"},
                "oidcIssuerProfile": {"enabled": true},
                "securityProfile": {"workloadIdentity": {"enabled": true}},
                "disableLocalAccounts": true}
        }));
        assert_eq!(managed.subscription_id, "s1");
        assert_eq!(managed.resource_group, "rg-a");
        assert_eq!(managed.kubernetes_version.as_deref(), Some("1.33.2"));
        assert_eq!(
            managed.entra,
            Entra::Managed {
                tenant_id: Some("t".into()),
                azure_rbac: true
            }
        );
        assert!(
            managed.oidc_issuer && managed.workload_identity && managed.local_accounts_disabled
        );
        let private = fleet_cluster(&json!({"id": "x", "properties": {
            "privateFQDN": "p.privatelink.westeurope.azmk8s.io", "aadProfile": {"managed": false}}}));
        assert_eq!(
            private.fqdn.as_deref(),
            Some("p.privatelink.westeurope.azmk8s.io")
        );
        assert_eq!(private.entra, Entra::Legacy);
        let local = fleet_cluster(&json!({"id": "x", "properties": {"aadProfile": null}}));
        assert_eq!(local.entra, Entra::Disabled);
    }

    #[test]
    fn callers_are_applications_or_users() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let token = |claims: Value| {
            format!(
                "e30.{}.sig",
                URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes())
            )
        };
        let app = caller(&token(json!({"oid": "o1", "appid": "c1"}))).unwrap();
        assert_eq!(
            (app.assignee.as_str(), app.kubernetes_user.as_str()),
            ("c1", "o1")
        );
        let user = caller(&token(
            json!({"oid": "o2", "upn": "jane@contoso.com", "scp": "user_impersonation"}),
        ))
        .unwrap();
        assert_eq!(user.kubernetes_user, "jane@contoso.com");
        assert!(caller("not-a-jwt").is_none());
    }
}
