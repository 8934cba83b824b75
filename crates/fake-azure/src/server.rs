//! The HTTP side: one fallback handler routing the token endpoint and the Resource Manager
//! paths doctor uses, with faults, bearer checks, api-version checks and paging.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{
    API_AKS, API_AUTHORIZATION, API_EXTENSIONS, API_FLUX_CONFIGURATIONS, API_MSI,
    API_RESOURCE_GRAPH, API_SUBSCRIPTIONS, AzureFault, AzureRequest, Credential, FakeAzure,
    Identity, percent_decode, url_decode_form,
};
use super::{aks, entra, roles};

const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How long a federated credential write holds the identity: long enough for a concurrent
/// writer to collide, as on the real service.
const WRITE_HOLD: Duration = Duration::from_millis(50);

pub struct Shared {
    config: Mutex<FakeAzure>,
    url: String,
    issued: Mutex<HashSet<String>>,
    records: Mutex<Vec<AzureRequest>>,
    faults: Mutex<Vec<AzureFault>>,
    writing: Mutex<HashSet<String>>,
    serial: AtomicU64,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new(config: FakeAzure, url: String) -> Shared {
        let faults = config.faults.clone();
        let accepted = config.accepted_tokens.iter().cloned().collect();
        Shared {
            config: Mutex::new(config),
            url,
            issued: Mutex::new(accepted),
            records: Mutex::new(Vec::new()),
            faults: Mutex::new(faults),
            writing: Mutex::new(HashSet::new()),
            serial: AtomicU64::new(1),
        }
    }

    pub fn requests(&self) -> Vec<AzureRequest> {
        lock(&self.records).clone()
    }

    pub(super) fn config(&self) -> FakeAzure {
        lock(&self.config).clone()
    }

    pub fn credentials(&self, client_id: &str) -> Vec<Credential> {
        lock(&self.config)
            .identities
            .iter()
            .find(|i| i.client_id.eq_ignore_ascii_case(client_id))
            .map(|i| i.credentials.clone())
            .unwrap_or_default()
    }
}

pub async fn run(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let app = Router::new().fallback(handle).with_state(shared);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        eprintln!("fake azure: {e}");
    }
}

pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: Value,
    pub(super) retry_after: Option<u32>,
}

impl Answer {
    pub(super) fn ok(body: Value) -> Answer {
        Answer {
            status: 200,
            body,
            retry_after: None,
        }
    }

    pub(super) fn error(status: u16, code: &str, message: &str) -> Answer {
        Answer {
            status,
            body: json!({"error": {"code": code, "message": message}}),
            retry_after: None,
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, MAX_BODY_BYTES).await.unwrap_or_default();
    let body = String::from_utf8_lossy(&body).into_owned();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    let answer = answer(
        &shared,
        &parts.method,
        &path,
        query.as_deref(),
        &parts.headers,
        &body,
    )
    .await;
    lock(&shared.records).push(AzureRequest {
        method: parts.method.to_string(),
        path,
        query,
        body,
        status: answer.status,
    });
    let mut response = (
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        answer.body.to_string(),
    )
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Some(seconds) = answer.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

fn take_fault(shared: &Shared, method: &Method, target: &str) -> Option<AzureFault> {
    let mut faults = lock(&shared.faults);
    let fault = faults.iter_mut().find(|f| {
        f.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()))
            && target.contains(&f.path_contains)
            && f.times != Some(0)
    })?;
    if let Some(times) = fault.times.as_mut() {
        *times -= 1;
    }
    Some(fault.clone())
}

pub(super) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| percent_decode(k) == name)
        .map(|(_, v)| percent_decode(v))
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

async fn answer(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &str,
) -> Answer {
    let target = query.map_or_else(|| path.to_owned(), |q| format!("{path}?{q}"));
    if let Some(fault) = take_fault(shared, method, &target) {
        let mut answer = Answer::error(fault.status, &fault.code, &fault.message);
        answer.retry_after = fault.retry_after_secs;
        return answer;
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if let [tenant, "oauth2", "v2.0", "token"] = segments.as_slice() {
        if *method != Method::POST {
            return Answer::error(405, "MethodNotAllowed", "use POST");
        }
        let serial = shared.serial.fetch_add(1, Ordering::Relaxed);
        let config = lock(&shared.config).clone();
        let issued = entra::token(&config, tenant, &url_decode_form(body), now(), serial);
        if let Some(token) = issued.token {
            lock(&shared.issued).insert(token);
        }
        return Answer {
            status: issued.status,
            body: issued.body,
            retry_after: None,
        };
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !bearer.is_some_and(|t| lock(&shared.issued).contains(t)) {
        return Answer::error(
            401,
            "InvalidAuthenticationToken",
            "The access token is invalid.",
        );
    }
    let api_version = query_param(query, "api-version").unwrap_or_default();
    let expect = |wanted: &str| refused_api_version(&api_version, wanted);
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    match (method.as_str(), lower.as_slice()) {
        ("GET", ["subscriptions"]) => expect(API_SUBSCRIPTIONS).unwrap_or_else(|| {
            let items: Vec<Value> = lock(&shared.config)
                .subscriptions
                .iter()
                .map(|s| json!({"id": format!("/subscriptions/{s}"), "subscriptionId": s, "displayName": s, "state": "Enabled"}))
                .collect();
            page(shared, path, query, &items)
        }),
        ("POST", ["providers", "microsoft.resourcegraph", "resources"]) => {
            expect(API_RESOURCE_GRAPH).unwrap_or_else(|| graph(shared, body))
        }
        ("GET", ["subscriptions", subscription, "providers", "microsoft.authorization", "roledefinitions", id]) => {
            expect(API_AUTHORIZATION).unwrap_or_else(|| role_definition(shared, subscription, id))
        }
        ("GET", ["subscriptions", subscription, "providers", "microsoft.authorization", "roleassignments"]) => {
            expect(API_AUTHORIZATION).unwrap_or_else(|| role_assignments(shared, path, query, subscription))
        }
        ("GET", ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.containerservice", "managedclusters", _]) => {
            expect(API_AKS).unwrap_or_else(|| managed_cluster(shared, path))
        }
        ("GET", ["subscriptions", subscription, "providers", "microsoft.containerservice", "managedclusters"]) => {
            expect(API_AKS).unwrap_or_else(|| aks::list(shared, path, query, subscription))
        }
        ("GET", ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.containerservice", "managedclusters", _, "providers", "microsoft.authorization", "permissions"]) => {
            expect(API_AUTHORIZATION).unwrap_or_else(|| aks::permissions(shared, path, query, bearer.unwrap_or_default()))
        }
        ("POST", ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.containerservice", "managedclusters", _, "listclusterusercredential"]) => {
            expect(API_AKS).unwrap_or_else(|| aks::credential(shared, path, query, bearer.unwrap_or_default(), false))
        }
        ("POST", ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.containerservice", "managedclusters", _, "listclusteradmincredential"]) => {
            expect(API_AKS).unwrap_or_else(|| aks::credential(shared, path, query, bearer.unwrap_or_default(), true))
        }
        ("GET", ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.containerservice", "managedclusters", _, "providers", "microsoft.kubernetesconfiguration", kind]) => {
            cluster_children(shared, path, query, kind, &api_version)
        }
        ("GET", ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.managedidentity", "userassignedidentities", _]) => {
            expect(API_MSI).unwrap_or_else(|| identity(shared, path))
        }
        ("GET", ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.managedidentity", "userassignedidentities", _, "federatedidentitycredentials"]) => {
            expect(API_MSI).unwrap_or_else(|| list_credentials(shared, path, query))
        }
        ("PUT", ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.managedidentity", "userassignedidentities", _, "federatedidentitycredentials", name]) => {
            match expect(API_MSI) {
                Some(refused) => refused,
                None => put_credential(shared, path, name, body).await,
            }
        }
        ("GET", [.., "providers", "microsoft.authorization", "denyassignments"]) => {
            expect(API_AUTHORIZATION).unwrap_or_else(|| deny_assignments(shared, path, query))
        }
        _ => Answer::error(404, "InvalidResourceType", &format!("The fake serves no {method} {path}.")),
    }
}

/// ARM's answer to an api-version the route does not serve.
fn refused_api_version(api_version: &str, wanted: &str) -> Option<Answer> {
    (api_version != wanted).then(|| {
        Answer::error(
            400,
            "InvalidApiVersionParameter",
            &format!(
                "The api-version '{api_version}' is invalid here; the fake serves '{wanted}'."
            ),
        )
    })
}

/// A `{"value": [...], "nextLink": ...}` page at `$skiptoken` (an offset).
pub(super) fn page(shared: &Shared, path: &str, query: Option<&str>, items: &[Value]) -> Answer {
    let size = lock(&shared.config).page_size.unwrap_or(usize::MAX);
    let offset: usize = query_param(query, "$skiptoken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let end = offset.saturating_add(size).min(items.len());
    let mut body = json!({"value": items.get(offset..end).unwrap_or_default()});
    if end < items.len() {
        let kept: Vec<&str> = query
            .unwrap_or_default()
            .split('&')
            .filter(|p| {
                !p.is_empty() && !p.starts_with("%24skiptoken=") && !p.starts_with("$skiptoken=")
            })
            .collect();
        body["nextLink"] = json!(format!(
            "{}{path}?{}&$skiptoken={end}",
            shared.url,
            kept.join("&")
        ));
    }
    Answer::ok(body)
}

/// The single-quoted values of a query, lowercased (`\'` escapes understood).
fn quoted_values(query: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut chars = query.chars();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(escaped) = chars.next() {
                        value.push(escaped);
                    }
                }
                '\'' => break,
                other => value.push(other),
            }
        }
        values.push(value.to_ascii_lowercase());
    }
    values
}

fn graph(shared: &Shared, body: &str) -> Answer {
    let Ok(request) = serde_json::from_str::<Value>(body) else {
        return Answer::error(400, "BadRequest", "The request body is not JSON.");
    };
    let query = request["query"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let values = quoted_values(&query);
    let wanted = |v: &str| values.contains(&v.to_ascii_lowercase());
    let scope: Vec<String> = request["subscriptions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default();
    let in_scope = |sub: Option<&str>| {
        scope.is_empty() || sub.is_some_and(|s| scope.contains(&s.to_ascii_lowercase()))
    };
    let config = lock(&shared.config).clone();
    let rows: Vec<Value> = if query.contains("microsoft.managedidentity/userassignedidentities") {
        config
            .identities
            .iter()
            .filter(|i| wanted(&i.client_id) && in_scope(Some(&i.subscription_id)))
            .map(|i| {
                json!({"id": i.id(), "name": i.name, "resourceGroup": i.resource_group,
                "subscriptionId": i.subscription_id, "clientId": i.client_id,
                "principalId": i.principal_id, "tenantId": i.tenant_id})
            })
            .collect()
    } else if query.contains("properties.fqdn") {
        config
            .resources
            .iter()
            .filter(|r| {
                r.kind
                    .eq_ignore_ascii_case("microsoft.containerservice/managedclusters")
            })
            .filter(|r| {
                ["fqdn", "privateFQDN", "azurePortalFQDN"]
                    .iter()
                    .any(|k| r.properties[k].as_str().is_some_and(wanted))
            })
            .filter(|r| in_scope(r.subscription()))
            .map(|r| {
                json!({"id": r.id, "name": r.name, "resourceGroup": r.resource_group(),
                "subscriptionId": r.subscription(), "properties": r.properties})
            })
            .collect()
    } else {
        config
            .resources
            .iter()
            .filter(|r| {
                let kind = r.kind.to_ascii_lowercase();
                query.contains(&kind)
                    && match kind.as_str() {
                        "microsoft.containerregistry/registries" => {
                            r.properties["loginServer"].as_str().is_some_and(wanted)
                        }
                        "microsoft.storage/storageaccounts"
                        | "microsoft.keyvault/vaults"
                        | "microsoft.eventhub/namespaces" => wanted(&r.name),
                        "microsoft.containerservice/managedclusters" => wanted(&r.id),
                        _ => false,
                    }
            })
            .filter(|r| in_scope(r.subscription()))
            .map(resource_row)
            .collect()
    };
    let size = config.page_size.unwrap_or(usize::MAX);
    let offset: usize = request["options"]["$skipToken"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let end = offset.saturating_add(size).min(rows.len());
    let data = rows.get(offset..end).unwrap_or_default().to_vec();
    let mut body = json!({"totalRecords": rows.len(), "count": data.len(), "data": data,
        "facets": [], "resultTruncated": "false"});
    if end < rows.len() {
        body["$skipToken"] = json!(end.to_string());
    }
    Answer::ok(body)
}

/// A resource as doctor's query projects it; `tostring()` of a missing property is "".
fn resource_row(r: &super::Resource) -> Value {
    let text = |pointer: &str| {
        r.properties
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    json!({"id": r.id, "name": r.name, "type": r.kind,
        "loginServer": text("/loginServer"),
        "roleAssignmentMode": text("/roleAssignmentMode"),
        "armTokenPolicy": text("/policies/azureADAuthenticationAsArmPolicy/status"),
        "enableRbacAuthorization": r.properties.get("enableRbacAuthorization").cloned().unwrap_or(Value::Null),
        "accessPolicies": r.properties.get("accessPolicies").cloned().unwrap_or(Value::Null)})
}

fn role_definition(shared: &Shared, subscription: &str, id: &str) -> Answer {
    let config = lock(&shared.config).clone();
    roles::find(&config, id).map_or_else(
        || {
            Answer::error(
                404,
                "RoleDefinitionDoesNotExist",
                &format!("The specified role definition with ID '{id}' does not exist."),
            )
        },
        |role| {
            Answer::ok(roles::definition_json(
                &role,
                &format!("/subscriptions/{subscription}"),
            ))
        },
    )
}

fn role_assignments(
    shared: &Shared,
    path: &str,
    query: Option<&str>,
    subscription: &str,
) -> Answer {
    let filter = query_param(query, "$filter").unwrap_or_default();
    let principal = quoted_values(&filter)
        .into_iter()
        .next()
        .unwrap_or_default();
    let within = format!("/subscriptions/{subscription}");
    let items: Vec<Value> = lock(&shared.config)
        .role_assignments
        .iter()
        .filter(|a| a.principal_id.eq_ignore_ascii_case(&principal))
        .filter(|a| {
            let scope = a.scope.to_ascii_lowercase();
            scope == within || scope.starts_with(&format!("{within}/")) || scope.starts_with("/providers/microsoft.management/")
        })
        .enumerate()
        .map(|(i, a)| json!({
            "id": format!("{}/providers/Microsoft.Authorization/roleAssignments/0000000{i}-0000-4000-8000-000000000000", a.scope),
            "name": format!("0000000{i}-0000-4000-8000-000000000000"),
            "type": "Microsoft.Authorization/roleAssignments",
            "properties": {
                "roleDefinitionId": format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{}", a.role),
                "principalId": a.principal_id,
                "principalType": "ServicePrincipal",
                "scope": a.scope,
                "condition": a.condition,
                "conditionVersion": a.condition.as_ref().map(|_| "2.0"),
            }
        }))
        .collect();
    page(shared, path, query, &items)
}

fn principal(id: &str) -> Value {
    let everyone = id == "00000000-0000-0000-0000-000000000000";
    json!({"id": id, "type": if everyone { "SystemDefined" } else { "ServicePrincipal" }})
}

/// The deny assignments that apply at a scope: those at it, and those above it that apply to
/// child scopes, as the list-for-resource call returns them.
fn deny_assignments(shared: &Shared, path: &str, query: Option<&str>) -> Answer {
    let at = path
        .to_ascii_lowercase()
        .trim_end_matches("/providers/microsoft.authorization/denyassignments")
        .to_string();
    let items: Vec<Value> = lock(&shared.config)
        .deny_assignments
        .iter()
        .filter(|d| {
            let scope = d.scope.to_ascii_lowercase();
            scope == at || (!d.do_not_apply_to_child_scopes && at.starts_with(&format!("{scope}/")))
        })
        .enumerate()
        .map(|(i, d)| json!({
            "id": format!("{}/providers/Microsoft.Authorization/denyAssignments/0000000{i}-0000-4000-9000-000000000000", d.scope),
            "name": format!("0000000{i}-0000-4000-9000-000000000000"),
            "type": "Microsoft.Authorization/denyAssignments",
            "properties": {
                "denyAssignmentName": d.name,
                "description": "",
                "permissions": [{"actions": d.actions, "notActions": d.not_actions,
                    "dataActions": d.data_actions, "notDataActions": d.not_data_actions}],
                "scope": d.scope,
                "doNotApplyToChildScopes": d.do_not_apply_to_child_scopes,
                "principals": d.principals.iter().map(|p| principal(p)).collect::<Vec<_>>(),
                "excludePrincipals": d.exclude_principals.iter().map(|p| principal(p)).collect::<Vec<_>>(),
                "isSystemProtected": true,
            }
        }))
        .collect();
    page(shared, path, query, &items)
}

fn managed_cluster(shared: &Shared, path: &str) -> Answer {
    lock(&shared.config)
        .resources
        .iter()
        .find(|r| r.id.eq_ignore_ascii_case(path))
        .map_or_else(
            || {
                Answer::error(
                    404,
                    "ResourceNotFound",
                    &format!("The Resource '{path}' was not found."),
                )
            },
            |r| {
                Answer::ok(
                    json!({"id": r.id, "name": r.name, "type": r.kind, "properties": r.properties}),
                )
            },
        )
}

/// The extensions or fluxConfigurations of the managed cluster the path names; a cluster that
/// does not exist is `ParentResourceNotFound`, as ARM answers for a child of a missing parent.
fn cluster_children(
    shared: &Shared,
    path: &str,
    query: Option<&str>,
    kind: &str,
    api_version: &str,
) -> Answer {
    let (wanted, kind) = match kind {
        "extensions" => (API_EXTENSIONS, "extensions"),
        "fluxconfigurations" => (API_FLUX_CONFIGURATIONS, "fluxConfigurations"),
        _ => {
            return Answer::error(
                404,
                "InvalidResourceType",
                &format!("The fake serves no GET {path}."),
            );
        }
    };
    if let Some(refused) = refused_api_version(api_version, wanted) {
        return refused;
    }
    let config = lock(&shared.config).clone();
    let lower = path.to_ascii_lowercase();
    let cluster = &path[..lower
        .find("/providers/microsoft.kubernetesconfiguration/")
        .unwrap_or(path.len())];
    if !config
        .resources
        .iter()
        .any(|r| r.id.eq_ignore_ascii_case(cluster))
    {
        return Answer::error(
            404,
            "ParentResourceNotFound",
            &format!(
                "Can not perform requested operation on nested resource. Parent resource '{cluster}' not found."
            ),
        );
    }
    let children = if kind == "extensions" {
        &config.extensions
    } else {
        &config.flux_configurations
    };
    let items: Vec<Value> = children
        .iter()
        .filter(|c| c.cluster_id.eq_ignore_ascii_case(cluster))
        .map(|c| {
            let mut item = json!({
                "id": format!("{}/providers/Microsoft.KubernetesConfiguration/{kind}/{}", c.cluster_id, c.name),
                "name": c.name,
                "type": format!("Microsoft.KubernetesConfiguration/{kind}"),
                "properties": c.properties,
            });
            if let Some(identity) = &c.identity {
                item["identity"] = identity.clone();
            }
            item
        })
        .collect();
    page(shared, path, query, &items)
}

fn find_identity<'a>(identities: &'a mut [Identity], id: &str) -> Option<&'a mut Identity> {
    identities
        .iter_mut()
        .find(|i| i.id().eq_ignore_ascii_case(id))
}

fn identity(shared: &Shared, path: &str) -> Answer {
    let mut config = lock(&shared.config);
    find_identity(&mut config.identities, path).map_or_else(
        || Answer::error(404, "ResourceNotFound", &format!("The Resource '{path}' was not found.")),
        |i| Answer::ok(json!({"id": i.id(), "name": i.name, "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
            "properties": {"clientId": i.client_id, "principalId": i.principal_id, "tenantId": i.tenant_id}})),
    )
}

fn credential_json(identity: &Identity, c: &Credential) -> Value {
    json!({
        "id": format!("{}/federatedIdentityCredentials/{}", identity.id(), c.name),
        "name": c.name,
        "type": "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials",
        "properties": {"issuer": c.issuer, "subject": c.subject, "audiences": c.audiences},
    })
}

fn list_credentials(shared: &Shared, path: &str, query: Option<&str>) -> Answer {
    let identity_id = path.trim_end_matches("/federatedIdentityCredentials");
    let items = {
        let mut config = lock(&shared.config);
        let Some(identity) = find_identity(&mut config.identities, identity_id) else {
            return Answer::error(
                404,
                "ResourceNotFound",
                &format!("The Resource '{identity_id}' was not found."),
            );
        };
        identity
            .credentials
            .iter()
            .map(|c| credential_json(identity, c))
            .collect::<Vec<_>>()
    };
    page(shared, path, query, &items)
}

async fn put_credential(shared: &Shared, path: &str, name: &str, body: &str) -> Answer {
    let identity_id = path
        .rsplitn(3, '/')
        .nth(2)
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !lock(&shared.writing).insert(identity_id.clone()) {
        return Answer::error(
            409,
            "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity",
            "Too many Federated Identity Credentials are written concurrently for the managed identity. Concurrent Federated Identity Credentials writes under the same managed identity are not supported.",
        );
    }
    tokio::time::sleep(WRITE_HOLD).await;
    let answer = write_credential(shared, &identity_id, name, body);
    lock(&shared.writing).remove(&identity_id);
    answer
}

fn write_credential(shared: &Shared, identity_id: &str, name: &str, body: &str) -> Answer {
    let Ok(request) = serde_json::from_str::<Value>(body) else {
        return Answer::error(400, "BadRequest", "The request body is not JSON.");
    };
    let properties = &request["properties"];
    let credential = Credential {
        name: name.to_owned(),
        issuer: properties["issuer"].as_str().unwrap_or_default().to_owned(),
        subject: properties["subject"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        audiences: properties["audiences"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    };
    let mut config = lock(&shared.config);
    let Some(identity) = find_identity(&mut config.identities, identity_id) else {
        return Answer::error(
            404,
            "ResourceNotFound",
            &format!("The Resource '{identity_id}' was not found."),
        );
    };
    if let Some(existing) = identity.credentials.iter_mut().find(|c| c.name == name) {
        *existing = credential.clone();
        return Answer::ok(credential_json(identity, &credential));
    }
    if identity.credentials.len() >= 20 {
        return Answer::error(
            400,
            "BadRequest",
            "Too many Federated Identity Credentials are written to Managed Identity. The maximum is 20.",
        );
    }
    if identity
        .credentials
        .iter()
        .any(|c| c.issuer == credential.issuer && c.subject == credential.subject)
    {
        return Answer::error(
            409,
            "Conflict",
            "A Federated Identity Credential with the same issuer and subject already exists.",
        );
    }
    identity.credentials.push(credential.clone());
    let body = credential_json(identity, &credential);
    Answer {
        status: 201,
        body,
        retry_after: None,
    }
}
