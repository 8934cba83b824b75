//! AKS as the fleet commands use it: managed clusters listed per subscription (paged), the
//! caller's effective permissions on a cluster (from the role assignments the fake holds, with
//! the role definitions of `roles`), and the credential kubeconfigs:
//! `listClusterUserCredential` (exec format for Entra ID clusters with `format=exec`, the
//! retired `azure` auth provider without it, a local-account certificate for clusters without
//! Entra ID) and `listClusterAdminCredential`, each refused with 403 `AuthorizationFailed`
//! unless a role grants its action, as Resource Manager does.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::server::{Answer, Shared, page, query_param};
use super::{FakeAzure, Resource, roles};

const MANAGED_CLUSTERS: &str = "microsoft.containerservice/managedclusters";
const USER_ACTION: &str =
    "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action";
const ADMIN_ACTION: &str =
    "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action";
/// The Azure CLI's application, which AKS puts into exec kubeconfigs.
const AZURE_CLI_CLIENT: &str = "80faf920-1908-4b52-b5ef-a8e7bedfc67a";
const AKS_SERVER_ID: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";

/// `*` matches any run, ignoring case, as Azure matches actions.
fn wildcard(pattern: &str, text: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let text = text.to_ascii_lowercase();
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == text;
    };
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// The object ID in a bearer token the fake issued.
fn caller(bearer: &str) -> String {
    bearer
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|c| c["oid"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn covers(scope: &str, id: &str) -> bool {
    let scope = scope.trim_end_matches('/').to_ascii_lowercase();
    let id = id.to_ascii_lowercase();
    id == scope || id.starts_with(&format!("{scope}/"))
}

/// One `{actions, notActions}` entry per role assignment of the caller covering the resource.
fn effective(config: &FakeAzure, object_id: &str, id: &str) -> Vec<Value> {
    config
        .role_assignments
        .iter()
        .filter(|a| a.principal_id.eq_ignore_ascii_case(object_id) && covers(&a.scope, id))
        .map(|a| {
            let role = roles::find(config, &a.role).unwrap_or_default();
            json!({"actions": role.actions, "notActions": role.not_actions,
                "dataActions": role.data_actions, "notDataActions": role.not_data_actions})
        })
        .collect()
}

fn allows(permissions: &[Value], action: &str) -> bool {
    let list = |p: &Value, key: &str| -> Vec<String> {
        p[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    permissions.iter().any(|p| {
        list(p, "actions").iter().any(|a| wildcard(a, action))
            && !list(p, "notActions").iter().any(|n| wildcard(n, action))
    })
}

fn cluster<'c>(config: &'c FakeAzure, id: &str) -> Option<&'c Resource> {
    config
        .resources
        .iter()
        .find(|r| r.kind.eq_ignore_ascii_case(MANAGED_CLUSTERS) && r.id.eq_ignore_ascii_case(id))
}

fn not_found(id: &str) -> Answer {
    Answer::error(
        404,
        "ResourceNotFound",
        &format!("The Resource '{id}' was not found."),
    )
}

fn resource_json(r: &Resource) -> Value {
    let location = r.properties["location"].as_str().unwrap_or("westeurope");
    json!({"id": r.id, "name": r.name, "type": "Microsoft.ContainerService/ManagedClusters",
        "location": location, "properties": r.properties})
}

/// `GET /subscriptions/{s}/providers/Microsoft.ContainerService/managedClusters`.
pub fn list(shared: &Shared, path: &str, query: Option<&str>, subscription: &str) -> Answer {
    let config = shared.config();
    if !config
        .subscriptions
        .iter()
        .any(|s| s.eq_ignore_ascii_case(subscription))
    {
        return Answer::error(
            404,
            "SubscriptionNotFound",
            &format!("The subscription '{subscription}' could not be found."),
        );
    }
    let items: Vec<Value> = config
        .resources
        .iter()
        .filter(|r| r.kind.eq_ignore_ascii_case(MANAGED_CLUSTERS))
        .filter(|r| {
            r.subscription()
                .is_some_and(|s| s.eq_ignore_ascii_case(subscription))
        })
        .map(resource_json)
        .collect();
    page(shared, path, query, &items)
}

/// `GET {cluster}/providers/Microsoft.Authorization/permissions`.
pub fn permissions(shared: &Shared, path: &str, query: Option<&str>, bearer: &str) -> Answer {
    let id = path.rsplitn(4, '/').nth(3).unwrap_or_default().to_owned();
    let config = shared.config();
    if cluster(&config, &id).is_none() {
        return not_found(&id);
    }
    let items = effective(&config, &caller(bearer), &id);
    page(shared, path, query, &items)
}

fn encoded(kubeconfig: &str) -> Answer {
    Answer::ok(
        json!({"kubeconfigs": [{"name": "clusterUser", "value": STANDARD.encode(kubeconfig)}]}),
    )
}

/// `POST {cluster}/listClusterUserCredential` (`admin`: `listClusterAdminCredential`).
pub fn credential(
    shared: &Shared,
    path: &str,
    query: Option<&str>,
    bearer: &str,
    admin: bool,
) -> Answer {
    let id = path.rsplit_once('/').map_or("", |(id, _)| id).to_owned();
    let config = shared.config();
    let Some(resource) = cluster(&config, &id) else {
        return not_found(&id);
    };
    let object_id = caller(bearer);
    let action = if admin { ADMIN_ACTION } else { USER_ACTION };
    if !allows(&effective(&config, &object_id, &id), action) {
        return Answer::error(
            403,
            "AuthorizationFailed",
            &format!(
                "The client '{object_id}' with object id '{object_id}' does not have authorization to perform action '{action}' over scope '{id}' or the scope is invalid. If access was recently granted, please refresh your credentials."
            ),
        );
    }
    let properties = &resource.properties;
    let entra = properties["aadProfile"]["managed"].as_bool() == Some(true);
    if admin && properties["disableLocalAccounts"].as_bool() == Some(true) {
        return Answer::error(
            400,
            "BadRequest",
            "Getting static credential is not allowed because this cluster is set to disable local accounts.",
        );
    }
    let server = config
        .api_servers
        .iter()
        .find(|(cluster, _)| cluster.eq_ignore_ascii_case(&id))
        .map_or_else(
            || {
                format!(
                    "https://{}:443",
                    properties["fqdn"]
                        .as_str()
                        .or(properties["privateFQDN"].as_str())
                        .unwrap_or_default()
                )
            },
            |(_, server)| server.clone(),
        );
    // A plain-http test server has no certificate; a real one has the cluster CA.
    let ca = if server.starts_with("https://") {
        format!(
            "    certificate-authority-data: {}\n",
            STANDARD.encode(format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                resource.name
            ))
        )
    } else {
        String::new()
    };
    let group = resource.resource_group().unwrap_or_default();
    let name = &resource.name;
    let user = format!(
        "{}_{group}_{name}",
        if admin { "clusterAdmin" } else { "clusterUser" }
    );
    let head = format!(
        "apiVersion: v1\nclusters:\n- cluster:\n{ca}    server: {server}\n  name: {name}\ncontexts:\n- context:\n    cluster: {name}\n    user: {user}\n  name: {name}\ncurrent-context: {name}\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n"
    );
    if admin || !entra {
        let key = STANDARD.encode(format!("{}-{name}", config.local_key_marker));
        return encoded(&format!(
            "{head}    client-certificate-data: {}\n    client-key-data: {key}\n    token: {}\n",
            STANDARD.encode("cert"),
            config.local_key_marker
        ));
    }
    let tenant = properties["aadProfile"]["tenantID"]
        .as_str()
        .unwrap_or_default();
    let body = if query_param(query, "format").as_deref() == Some("exec") {
        format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      args:\n      - get-token\n      - --environment\n      - AzurePublicCloud\n      - --server-id\n      - {AKS_SERVER_ID}\n      - --client-id\n      - {AZURE_CLI_CLIENT}\n      - --tenant-id\n      - {tenant}\n      - --login\n      - devicecode\n      command: kubelogin\n      env: null\n      installHint: |2\n\n        kubelogin is not installed which is required to connect to AAD enabled cluster.\n\n        To learn more, please go to https://aka.ms/aks/kubelogin\n      interactiveMode: IfAvailable\n      provideClusterInfo: false\n"
        )
    } else {
        format!(
            "    auth-provider:\n      config:\n        apiserver-id: {AKS_SERVER_ID}\n        client-id: {AZURE_CLI_CLIENT}\n        config-mode: '1'\n        environment: AzurePublicCloud\n        tenant-id: {tenant}\n      name: azure\n"
        )
    };
    encoded(&format!("{head}{body}"))
}
