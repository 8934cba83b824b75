//! The HTTP side: one fallback handler that parses paths the way the real
//! server's mux does, then answers from the store.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::future::{Future, IntoFuture};
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::catalog::{Catalog, ResourceType, split_api_version};
use super::discovery::{self, AGGREGATED_CONTENT_TYPE};
use super::openapi;
use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{ApplyOptions, Store, render};
use super::table::{self, Include};
use super::token::{self, Subject};
use super::{FakeConfig, Fault, FaultBehaviour, RequestRecord};

/// Request bodies are TokenRequests and apply patches: kilobytes.
/// Megabytes would be a client bug worth a refusal rather than memory.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
const JSON: &str = "application/json";
const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// Marks a response whose request changed stored state, for the log.
#[derive(Clone, Copy)]
struct StoreChanged;

pub struct Shared {
    store: RwLock<Store>,
    issuer: String,
    latency: Duration,
    faults: Mutex<Vec<Fault>>,
    required_token: Option<String>,
    token_override: Option<String>,
    page_limit_max: Option<usize>,
    aggregated_discovery: bool,
    records: Mutex<Vec<RequestRecord>>,
    log_file: Option<Mutex<File>>,
    tokens_issued: AtomicU64,
    held: AtomicU64,
    discovery_in_flight: AtomicU64,
    discovery_most_in_flight: AtomicU64,
}

/// One group-version discovery request being answered; counted out when dropped, also when
/// the client gives up on it.
struct DiscoveryInFlight<'a>(&'a Shared);

impl Drop for DiscoveryInFlight<'_> {
    fn drop(&mut self) {
        self.0.discovery_in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether `path` is a group version's discovery document (`/api/v1`, `/apis/GROUP/VERSION`).
fn is_group_version_discovery(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    matches!(segments.as_slice(), ["api", _] | ["apis", _, _])
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not take the server down with it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Requests a Hang fault has received and will never answer.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::SeqCst)
    }

    /// The most group-version discovery requests answered at the same time so far.
    pub fn discovery_most_in_flight(&self) -> u64 {
        self.discovery_most_in_flight.load(Ordering::SeqCst)
    }

    fn discovery_started(&self) -> DiscoveryInFlight<'_> {
        let now = self.discovery_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.discovery_most_in_flight
            .fetch_max(now, Ordering::SeqCst);
        DiscoveryInFlight(self)
    }

    pub fn new(config: FakeConfig) -> io::Result<Shared> {
        let store = Store::from_seed(
            config.objects,
            Timestamp::now(),
            config.seed_manager.as_deref(),
        )
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let log_file = match &config.request_log {
            Some(path) => Some(Mutex::new(
                OpenOptions::new().create(true).append(true).open(path)?,
            )),
            None => None,
        };
        Ok(Shared {
            store: RwLock::new(store),
            issuer: config
                .issuer
                .unwrap_or_else(|| super::DEFAULT_ISSUER.to_owned()),
            latency: config.latency,
            faults: Mutex::new(config.faults),
            required_token: config.required_token,
            token_override: config.token_override,
            page_limit_max: config.page_limit_max,
            aggregated_discovery: !config.disable_aggregated_discovery,
            records: Mutex::new(Vec::new()),
            log_file,
            tokens_issued: AtomicU64::new(0),
            held: AtomicU64::new(0),
            discovery_in_flight: AtomicU64::new(0),
            discovery_most_in_flight: AtomicU64::new(0),
        })
    }

    fn store_mut(&self) -> std::sync::RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn store(&self) -> std::sync::RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.records).clone()
    }

    pub fn object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let store = self.store();
        let (group, version) = split_api_version(api_version);
        let resource = store.catalog().by_kind(group, kind)?;
        resource.version(version)?;
        store
            .get(resource, namespace, name)
            .map(|object| render(object, api_version))
    }

    fn record(&self, request: &Incoming<'_>, response: &Response, duration: Duration) {
        let header_text = |headers: &HeaderMap, name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let record = RequestRecord {
            method: request.method.to_string(),
            path: request.uri.path().to_owned(),
            query: request.uri.query().map(str::to_owned),
            status: response.status().as_u16(),
            duration,
            content_type: header_text(request.headers, header::CONTENT_TYPE),
            accept: header_text(request.headers, header::ACCEPT),
            user_agent: header_text(request.headers, header::USER_AGENT),
            response_content_type: header_text(response.headers(), header::CONTENT_TYPE),
            body: (request.method != Method::GET && !request.body.is_empty())
                .then(|| String::from_utf8_lossy(request.body).into_owned()),
            wrote: response.extensions().get::<StoreChanged>().is_some(),
        };
        if let Some(file) = &self.log_file {
            let line = json!({
                "method": record.method,
                "path": record.path,
                "query": record.query,
                "status": record.status,
                "durationMs": u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            });
            // One write per line keeps lines whole for a reader tailing the file.
            if let Err(e) = lock(file).write_all(format!("{line}\n").as_bytes()) {
                eprintln!("fake apiserver: cannot append to the request log: {e}");
            }
        }
        lock(&self.records).push(record);
    }
}

pub async fn run(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let app = Router::new().fallback(handle).with_state(shared);
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            eprintln!("fake apiserver: cannot set TCP_NODELAY: {e}");
        }
    });
    // Not a graceful shutdown: a connection held by a Hang fault never
    // finishes, and the runtime drops every connection task when it stops.
    tokio::select! {
        result = axum::serve(listener, app).into_future() => result,
        () = shutdown => Ok(()),
    }
}

struct Incoming<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let _discovery =
        is_group_version_discovery(parts.uri.path()).then(|| shared.discovery_started());
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES).await;
    let incoming = Incoming {
        method: &parts.method,
        uri: &parts.uri,
        headers: &parts.headers,
        body: body.as_deref().unwrap_or_default(),
    };
    if !shared.latency.is_zero() {
        tokio::time::sleep(shared.latency).await;
    }
    let response = if body.is_err() {
        ApiError::new(413, "the request body is too large or could not be read").into_response()
    } else {
        respond(&shared, &incoming).await
    };
    shared.record(&incoming, &response, started.elapsed());
    response
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn respond(shared: &Shared, request: &Incoming<'_>) -> Response {
    if let Some(expected) = &shared.required_token
        && bearer_token(request.headers) != Some(expected.as_str())
    {
        return ApiError::unauthorized().into_response();
    }
    if let Some(fault) = take_fault(shared, request) {
        return fault_response(shared, &fault, request).await;
    }
    route(shared, request).unwrap_or_else(IntoResponse::into_response)
}

fn take_fault(shared: &Shared, request: &Incoming<'_>) -> Option<Fault> {
    let target = match request.uri.query() {
        Some(query) => format!("{}?{query}", request.uri.path()),
        None => request.uri.path().to_owned(),
    };
    let mut faults = lock(&shared.faults);
    for fault in faults.iter_mut() {
        let matches = fault.times != Some(0)
            && fault
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(request.method.as_str()))
            && target.contains(&fault.path_contains);
        if !matches {
            continue;
        }
        if fault.skip > 0 {
            fault.skip -= 1;
            continue;
        }
        if let Some(times) = &mut fault.times {
            *times -= 1;
        }
        return Some(fault.clone());
    }
    None
}

fn json_response(status: StatusCode, content_type: &'static str, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn ok_json(body: &Value) -> Response {
    json_response(StatusCode::OK, JSON, body)
}

fn parse_query(uri: &Uri) -> Result<HashMap<String, String>, ApiError> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(pairs)| pairs.into_iter().collect())
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
}

#[derive(Clone, Copy, PartialEq)]
enum Representation {
    Json,
    Table,
    Metadata,
    AggregatedDiscovery,
}

const OBJECT_REPRESENTATIONS: &[Representation] = &[
    Representation::Json,
    Representation::Table,
    Representation::Metadata,
];

/// Picks the first media range in Accept that the endpoint can produce, as
/// the real server does (clients list their preference in order and do not
/// rely on q-values).
fn negotiate(headers: &HeaderMap, allowed: &[Representation]) -> Result<Representation, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if accept.trim().is_empty() {
        return Ok(Representation::Json);
    }
    for range in accept.split(',') {
        let mut pieces = range.split(';').map(str::trim);
        let mime = pieces.next().unwrap_or_default().to_ascii_lowercase();
        if !matches!(mime.as_str(), "application/json" | "application/*" | "*/*") {
            continue;
        }
        let params: HashMap<String, &str> = pieces
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim()))
            .collect();
        let param = |key: &str| params.get(key).copied();
        let candidate = match param("as") {
            None => Some(Representation::Json),
            Some("Table") if param("g") == Some("meta.k8s.io") && param("v") == Some("v1") => {
                Some(Representation::Table)
            }
            Some("PartialObjectMetadata" | "PartialObjectMetadataList")
                if param("g") == Some("meta.k8s.io") && param("v") == Some("v1") =>
            {
                Some(Representation::Metadata)
            }
            Some("APIGroupDiscoveryList")
                if param("g") == Some("apidiscovery.k8s.io") && param("v") == Some("v2") =>
            {
                Some(Representation::AggregatedDiscovery)
            }
            Some(_) => None,
        };
        if let Some(candidate) = candidate.filter(|c| allowed.contains(c)) {
            return Ok(candidate);
        }
    }
    Err(ApiError::new(
        406,
        "only the following media types are accepted: application/json",
    ))
}

fn route(shared: &Shared, request: &Incoming<'_>) -> Result<Response, ApiError> {
    let segments: Vec<&str> = request
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    if *request.method == Method::PATCH {
        match segments.as_slice() {
            ["api", version, rest @ ..] if !rest.is_empty() => {
                return patch(shared, request, "", version, rest);
            }
            ["apis", group, version, rest @ ..] if !rest.is_empty() => {
                return patch(shared, request, group, version, rest);
            }
            _ => {}
        }
    }
    let store = shared.store();
    let catalog = store.catalog();
    let read_only = |response: Response| {
        if matches!(*request.method, Method::GET | Method::HEAD) {
            Ok(response)
        } else {
            Err(ApiError::method_not_allowed())
        }
    };
    match segments.as_slice() {
        [] => read_only(ok_json(&discovery::root_paths(catalog))),
        ["version"] => read_only(ok_json(&discovery::version_info())),
        ["healthz" | "readyz" | "livez"] => {
            read_only(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "ok").into_response())
        }
        [".well-known", "openid-configuration"] => {
            read_only(ok_json(&token::openid_configuration(&shared.issuer)))
        }
        ["openapi", "v3"] => read_only(ok_json(&openapi::root(catalog))),
        ["openapi", "v3", rest @ ..] => openapi::group_version_document(catalog, &rest.join("/"))
            .map(|d| ok_json(&d))
            .ok_or_else(ApiError::unknown_resource)
            .and_then(read_only),
        ["openid", "v1", "jwks"] => read_only(json_response(
            StatusCode::OK,
            "application/jwk-set+json",
            &token::jwks(),
        )),
        ["api" | "apis"] => {
            let core = segments[0] == "api";
            let offered: &[Representation] = if shared.aggregated_discovery {
                &[Representation::Json, Representation::AggregatedDiscovery]
            } else {
                &[Representation::Json]
            };
            let representation = negotiate(request.headers, offered)?;
            let mut response = if representation == Representation::AggregatedDiscovery {
                json_response(
                    StatusCode::OK,
                    AGGREGATED_CONTENT_TYPE,
                    &discovery::aggregated(catalog, core),
                )
            } else if core {
                let host = request
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("127.0.0.1");
                ok_json(&discovery::api_versions(catalog, host))
            } else {
                ok_json(&discovery::api_group_list(catalog))
            };
            response
                .headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Accept"));
            read_only(response)
        }
        ["apis", group] => discovery::api_group(catalog, group)
            .map(|g| ok_json(&g))
            .ok_or_else(ApiError::unknown_resource)
            .and_then(read_only),
        ["api", version] => discovery::api_resource_list(catalog, "", version)
            .map(|l| ok_json(&l))
            .ok_or_else(ApiError::unknown_resource)
            .and_then(read_only),
        ["apis", group, version] => discovery::api_resource_list(catalog, group, version)
            .map(|l| ok_json(&l))
            .ok_or_else(ApiError::unknown_resource)
            .and_then(read_only),
        ["api", version, rest @ ..] => resource_request(shared, &store, request, "", version, rest),
        ["apis", group, version, rest @ ..] => {
            resource_request(shared, &store, request, group, version, rest)
        }
        _ => Err(ApiError::unknown_resource()),
    }
}

struct Target<'c> {
    resource: &'c ResourceType,
    api_version: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

/// Splits `namespaces/{ns}/{plural}/{name}/{sub}` or `{plural}/{name}/{sub}`
/// the way the real server does: `namespaces/x/status` is the status of
/// namespace `x` because `status` is no resource.
fn resolve<'c>(
    catalog: &'c Catalog,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Target<'c>, ApiError> {
    let namespaced = match rest {
        ["namespaces", namespace, plural, tail @ ..] if tail.len() <= 2 => catalog
            .by_plural(group, version, plural)
            .filter(|r| r.namespaced)
            .map(|r| (r, Some((*namespace).to_owned()), tail)),
        _ => None,
    };
    let (resource, namespace, tail) = if let Some(found) = namespaced {
        found
    } else {
        let [plural, tail @ ..] = rest else {
            return Err(ApiError::unknown_resource());
        };
        let resource = catalog
            .by_plural(group, version, plural)
            .ok_or_else(ApiError::unknown_resource)?;
        if tail.len() > 2 || (resource.namespaced && !tail.is_empty()) {
            return Err(ApiError::unknown_resource());
        }
        (resource, None, tail)
    };
    let subresource = tail.get(1).map(|s| (*s).to_owned());
    if let Some(sub) = &subresource
        && !resource
            .version(version)
            .is_some_and(|v| v.has_subresource(sub))
    {
        return Err(ApiError::unknown_resource());
    }
    Ok(Target {
        resource,
        api_version: resource.api_version(version),
        namespace,
        name: tail.first().map(|s| (*s).to_owned()),
        subresource,
    })
}

fn is_watch(query: &HashMap<String, String>) -> bool {
    query
        .get("watch")
        .is_some_and(|w| matches!(w.as_str(), "true" | "1"))
}

fn resource_request(
    shared: &Shared,
    store: &Store,
    request: &Incoming<'_>,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Response, ApiError> {
    if rest.first() == Some(&"watch") {
        return Err(ApiError::method_not_allowed());
    }
    let target = resolve(store.catalog(), group, version, rest)?;
    let query = parse_query(request.uri)?;
    let method = request.method;
    let allows = |verb: &str| target.resource.verbs.iter().any(|v| v == verb);
    match (target.name.as_deref(), target.subresource.as_deref()) {
        _ if *method == Method::GET && is_watch(&query) => Err(ApiError::method_not_allowed()),
        (None, None) if *method == Method::GET && allows("list") => {
            let representation = negotiate(request.headers, OBJECT_REPRESENTATIONS)?;
            list(shared, store, &target, &query, representation)
        }
        (Some(name), None | Some("status")) if *method == Method::GET && allows("get") => {
            let representation = negotiate(request.headers, OBJECT_REPRESENTATIONS)?;
            get(store, &target, name, &query, representation)
        }
        (Some(name), Some("token")) if *method == Method::POST => {
            create_token(shared, store, &target, name, request.headers, request.body)
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// Go's conversion of a query parameter to a bool: anything but the
/// spellings of false is true.
fn query_bool(value: Option<&String>) -> bool {
    value.is_some_and(|v| {
        !(v == "0"
            || ["f", "false", "n", "no"]
                .iter()
                .any(|f| v.eq_ignore_ascii_case(f)))
    })
}

/// Server-side apply. Other patch types are not implemented.
fn patch(
    shared: &Shared,
    request: &Incoming<'_>,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Response, ApiError> {
    if rest.first() == Some(&"watch") {
        return Err(ApiError::method_not_allowed());
    }
    let mut store = shared.store_mut();
    let target = resolve(store.catalog(), group, version, rest)?;
    let resource = target.resource.clone();
    let Target {
        api_version,
        namespace,
        name,
        subresource,
        ..
    } = target;
    let (Some(name), None) = (name, subresource) else {
        return Err(ApiError::method_not_allowed());
    };
    if !resource.verbs.iter().any(|v| v == "patch") {
        return Err(ApiError::method_not_allowed());
    }
    check_patch_type(&resource, request.headers)?;
    let query = parse_query(request.uri)?;
    let (manager, dry_run) = patch_options(&query)?;
    let outcome = store.apply(
        &resource,
        &ApplyOptions {
            api_version: &api_version,
            namespace: namespace.as_deref(),
            name: &name,
            manager,
            force: query_bool(query.get("force")),
            dry_run,
        },
        applied_object(request.body)?,
        Timestamp::now(),
    )?;
    let code = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = json_response(code, JSON, &render(&outcome.object, &api_version));
    if outcome.wrote {
        response.extensions_mut().insert(StoreChanged);
    }
    Ok(response)
}

/// The real server takes four patch types (three for custom resources);
/// the fake answers the ones it does not implement as a method it does not
/// allow, and anything else as the real server does.
fn check_patch_type(resource: &ResourceType, headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if content_type == APPLY_PATCH {
        return Ok(());
    }
    let mut accepted = vec![
        "application/json-patch+json",
        "application/merge-patch+json",
    ];
    if resource.builtin {
        accepted.push("application/strategic-merge-patch+json");
    }
    if accepted.contains(&content_type.as_str()) {
        return Err(ApiError::method_not_allowed());
    }
    accepted.push(APPLY_PATCH);
    Err(ApiError::new(
        415,
        format!(
            "the body of the request was in an unknown format - accepted media types include: {}",
            accepted.join(", ")
        ),
    ))
}

/// The field manager and whether it is a dry run, with `PatchOptions`
/// validated as the real server validates them.
fn patch_options(query: &HashMap<String, String>) -> Result<(&str, bool), ApiError> {
    let manager = query.get("fieldManager").map_or("", String::as_str);
    if manager.is_empty() {
        return Err(ApiError::invalid_options(
            "PatchOptions",
            "fieldManager",
            "FieldValueRequired",
            "Required value: is required for apply patch",
        ));
    }
    let dry_run = match query.get("dryRun").map(String::as_str) {
        None => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::invalid_options(
                "PatchOptions",
                "dryRun",
                "FieldValueNotSupported",
                &format!("Unsupported value: []string{{{other:?}}}: supported values: \"All\""),
            ));
        }
    };
    // Accepted and not acted on: the fake checks no schema, so there are no
    // unknown or duplicate fields to report or refuse.
    let field_validation = query.get("fieldValidation").map_or("", String::as_str);
    if !matches!(field_validation, "" | "Ignore" | "Warn" | "Strict") {
        return Err(ApiError::invalid_options(
            "PatchOptions",
            "fieldValidation",
            "FieldValueNotSupported",
            &format!(
                "Unsupported value: {field_validation:?}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
            ),
        ));
    }
    Ok((manager, dry_run))
}

/// An apply body, YAML or JSON. Like the real server, an empty document is
/// an empty object, which then fails as an object of no type.
fn applied_object(body: &[u8]) -> Result<Value, ApiError> {
    let decoding =
        |e: &dyn std::fmt::Display| ApiError::bad_request(format!("error decoding YAML: {e}"));
    let text = std::str::from_utf8(body).map_err(|e| decoding(&e))?;
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    let config: Value = serde_saphyr::from_str(text).map_err(|e| decoding(&e))?;
    Ok(if config.is_null() { json!({}) } else { config })
}

fn get(
    store: &Store,
    target: &Target<'_>,
    name: &str,
    query: &HashMap<String, String>,
    representation: Representation,
) -> Result<Response, ApiError> {
    let object = store
        .get(target.resource, target.namespace.as_deref(), name)
        .ok_or_else(|| ApiError::not_found(target.resource, name))?;
    Ok(match representation {
        Representation::Table => {
            let include = Include::parse(query.get("includeObject").map(String::as_str))
                .map_err(ApiError::bad_request)?;
            let metadata = json!({
                "resourceVersion": object.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null),
            });
            json_response(
                StatusCode::OK,
                table::TABLE_CONTENT_TYPE,
                &table::table(
                    &[object],
                    &metadata,
                    include,
                    &target.api_version,
                    Timestamp::now(),
                ),
            )
        }
        Representation::Metadata => json_response(
            StatusCode::OK,
            table::METADATA_CONTENT_TYPE,
            &table::partial_metadata(object),
        ),
        Representation::Json | Representation::AggregatedDiscovery => {
            ok_json(&render(object, &target.api_version))
        }
    })
}

fn namespace_and_name(object: &Value) -> (String, String) {
    let field = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (field("/metadata/namespace"), field("/metadata/name"))
}

/// Continue tokens are opaque to clients; like the real server's they carry
/// the list's resource version and the key to resume after.
fn encode_continue(resource_version: u64, after: &(String, String)) -> String {
    let token = json!({
        "v": "meta.k8s.io/v1",
        "rv": resource_version,
        "start": format!("{}/{}", after.0, after.1),
    });
    URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let decoded: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if decoded.get("v").and_then(Value::as_str) != Some("meta.k8s.io/v1") {
        return Err(invalid());
    }
    let start = decoded
        .get("start")
        .and_then(Value::as_str)
        .ok_or_else(invalid)?;
    let (namespace, name) = start.split_once('/').ok_or_else(invalid)?;
    Ok((namespace.to_owned(), name.to_owned()))
}

fn list(
    shared: &Shared,
    store: &Store,
    target: &Target<'_>,
    query: &HashMap<String, String>,
    representation: Representation,
) -> Result<Response, ApiError> {
    let text = |key: &str| query.get(key).map_or("", String::as_str);
    let labels = LabelSelector::parse(text("labelSelector"))
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let fields = FieldSelector::parse(text("fieldSelector")).map_err(ApiError::bad_request)?;
    let limit = match text("limit") {
        "" => None,
        raw => {
            let parsed: i64 = raw
                .parse()
                .map_err(|_| ApiError::bad_request(format!("limit: invalid value {raw:?}")))?;
            // The real server treats a limit of zero or less as no limit.
            usize::try_from(parsed).ok().filter(|l| *l > 0)
        }
    };
    let limit = match (limit, shared.page_limit_max) {
        (Some(asked), Some(cap)) => Some(asked.min(cap.max(1))),
        (asked, _) => asked,
    };
    let after = match text("continue") {
        "" => None,
        token => Some(decode_continue(token)?),
    };
    let matching: Vec<&Value> = store
        .list(target.resource, target.namespace.as_deref())
        .into_iter()
        .filter(|o| {
            labels.matches(o.pointer("/metadata/labels").and_then(Value::as_object))
                && fields.matches(o)
                && after.as_ref().is_none_or(|a| namespace_and_name(o) > *a)
        })
        .collect();
    let page_size = limit.unwrap_or(matching.len()).min(matching.len());
    let (page, remaining) = matching.split_at(page_size);
    let resource_version = store.resource_version();
    let mut metadata = Map::new();
    metadata.insert(
        "resourceVersion".to_owned(),
        json!(resource_version.to_string()),
    );
    if let (Some(last), false) = (page.last(), remaining.is_empty()) {
        metadata.insert(
            "continue".to_owned(),
            json!(encode_continue(resource_version, &namespace_and_name(last))),
        );
        // Like the real server, the count is only known without selectors.
        if text("labelSelector").is_empty() && fields.is_empty() {
            metadata.insert("remainingItemCount".to_owned(), json!(remaining.len()));
        }
    }
    let metadata = Value::Object(metadata);
    Ok(match representation {
        Representation::Table => {
            let include = Include::parse(query.get("includeObject").map(String::as_str))
                .map_err(ApiError::bad_request)?;
            json_response(
                StatusCode::OK,
                table::TABLE_CONTENT_TYPE,
                &table::table(
                    page,
                    &metadata,
                    include,
                    &target.api_version,
                    Timestamp::now(),
                ),
            )
        }
        Representation::Metadata => json_response(
            StatusCode::OK,
            table::METADATA_LIST_CONTENT_TYPE,
            &json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": metadata,
                "items": page.iter().map(|o| table::partial_metadata(o)).collect::<Vec<_>>(),
            }),
        ),
        Representation::Json | Representation::AggregatedDiscovery => ok_json(&json!({
            "kind": format!("{}List", target.resource.kind),
            "apiVersion": target.api_version,
            "metadata": metadata,
            "items": page.iter().map(|o| render(o, &target.api_version)).collect::<Vec<_>>(),
        })),
    })
}

fn create_token(
    shared: &Shared,
    store: &Store,
    target: &Target<'_>,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let namespace = target.namespace.as_deref().unwrap_or_default();
    let account = store
        .get(target.resource, Some(namespace), name)
        .ok_or_else(|| ApiError::not_found(target.resource, name))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let request = token::parse_token_request(body, content_type, &shared.issuer)?;
    let uid = account
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let serial = shared.tokens_issued.fetch_add(1, Ordering::Relaxed);
    let issued = token::issue(
        &request,
        &Subject {
            namespace,
            name,
            uid,
        },
        &shared.issuer,
        Timestamp::now(),
        serial,
        shared.token_override.as_deref(),
    );
    Ok(json_response(StatusCode::CREATED, JSON, &issued))
}

fn verb(method: &Method, name: Option<&str>, uri: &Uri) -> &'static str {
    let watching = parse_query(uri).is_ok_and(|q| is_watch(&q));
    match *method {
        Method::GET if watching => "watch",
        Method::GET | Method::HEAD if name.is_some() => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if name.is_some() => "delete",
        Method::DELETE => "deletecollection",
        _ => "access",
    }
}

/// The Status an injected code would carry on the real server, naming the
/// resource the request addressed when the path is one.
fn injected_status(shared: &Shared, fault: &Fault, request: &Incoming<'_>) -> ApiError {
    let store = shared.store();
    let segments: Vec<&str> = request
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let target = match segments.as_slice() {
        ["api", version, rest @ ..] => resolve(store.catalog(), "", version, rest).ok(),
        ["apis", group, version, rest @ ..] => resolve(store.catalog(), group, version, rest).ok(),
        _ => None,
    };
    let verb = verb(
        request.method,
        target.as_ref().and_then(|t| t.name.as_deref()),
        request.uri,
    );
    match (fault.status, &target) {
        (403, Some(t)) => {
            ApiError::forbidden(t.resource, verb, t.namespace.as_deref(), t.name.as_deref())
        }
        (403, None) => ApiError::new(
            403,
            format!(
                "forbidden: User \"fake\" cannot {verb} path \"{}\"",
                request.uri.path()
            ),
        ),
        (
            404,
            Some(Target {
                resource,
                name: Some(name),
                ..
            }),
        ) => ApiError::not_found(resource, name),
        (404, _) => ApiError::unknown_resource(),
        (429, _) => ApiError {
            details: fault
                .retry_after_secs
                .map_or_else(|| json!({}), |s| json!({"retryAfterSeconds": s})),
            ..ApiError::new(429, "Too many requests, please try again later.")
        },
        (500, _) => ApiError {
            details: json!({"causes": [{"message": "injected fault"}]}),
            ..ApiError::new(500, "Internal error occurred: injected fault")
        },
        (code, _) => ApiError::new(code, "injected fault"),
    }
}

/// What the request would have been answered with: the real response for
/// a success code, the injected Status otherwise. The real response is the
/// request served, so a write it makes is made.
async fn intended_body(
    shared: &Shared,
    fault: &Fault,
    request: &Incoming<'_>,
) -> (Bytes, HeaderValue, Option<StoreChanged>) {
    let json = HeaderValue::from_static(JSON);
    if fault.status >= 400 {
        return (
            Bytes::from(injected_status(shared, fault, request).body().to_string()),
            json,
            None,
        );
    }
    let response = route(shared, request).unwrap_or_else(IntoResponse::into_response);
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(json);
    let changed = response.extensions().get::<StoreChanged>().copied();
    let body = axum::body::to_bytes(response.into_body(), MAX_BODY_BYTES)
        .await
        .unwrap_or_default();
    (body, content_type, changed)
}

fn html_page(status: StatusCode) -> Response {
    let page = "<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Sign in to continue</body></html>\n";
    let mut response = (status, page).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

async fn continued_list(
    shared: &Shared,
    fault: &Fault,
    request: &Incoming<'_>,
    status: StatusCode,
) -> Response {
    static PAGES: AtomicU64 = AtomicU64::new(0);
    let (body, content_type, _) = intended_body(shared, fault, request).await;
    let mut list: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!({}));
    // The store refuses a token it never issued: later pages are empty lists.
    if list.get("items").is_none() {
        list = json!({"kind": "List", "apiVersion": "v1", "metadata": {}, "items": []});
    }
    let token = if fault.behaviour == FaultBehaviour::RepeatedContinue {
        "same-token".to_string()
    } else {
        format!("page-{}", PAGES.fetch_add(1, Ordering::SeqCst))
    };
    list["metadata"]["continue"] = json!(token);
    let mut response = (status, list.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    response
}

fn oversized(status: StatusCode, mebibytes: u32) -> Response {
    let chunk = Bytes::from(vec![b' '; 1024 * 1024]);
    let chunks = futures::stream::iter(
        std::iter::once(Bytes::from_static(b"{\"items\":["))
            .chain(std::iter::repeat_n(chunk, mebibytes as usize))
            .chain(std::iter::once(Bytes::from_static(b"]}")))
            .map(Ok::<_, io::Error>),
    );
    let mut response = Response::new(Body::from_stream(chunks));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

async fn fault_response(shared: &Shared, fault: &Fault, request: &Incoming<'_>) -> Response {
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match fault.behaviour {
        FaultBehaviour::Hang => {
            shared.held.fetch_add(1, Ordering::SeqCst);
            return std::future::pending().await;
        }
        FaultBehaviour::Status => injected_status(shared, fault, request).into_response(),
        FaultBehaviour::MalformedJson => {
            let (body, content_type, changed) = intended_body(shared, fault, request).await;
            let mut broken = body[..body.len() / 2].to_vec();
            broken.extend_from_slice(b"<html>injected fault: this is not JSON</html>");
            let mut response = (status, broken).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, content_type);
            if let Some(changed) = changed {
                response.extensions_mut().insert(changed);
            }
            response
        }
        FaultBehaviour::Html => html_page(status),
        FaultBehaviour::RepeatedContinue | FaultBehaviour::EndlessContinue => {
            continued_list(shared, fault, request, status).await
        }
        FaultBehaviour::Oversized(mebibytes) => oversized(status, mebibytes),
        FaultBehaviour::CloseMidResponse => {
            let (body, content_type, changed) = intended_body(shared, fault, request).await;
            let full_length = body.len();
            let part = body.slice(..full_length / 2);
            // The pause lets the first half reach the socket before the
            // error makes hyper drop the connection.
            let chunks = futures::stream::unfold(0u8, move |step| {
                let part = part.clone();
                async move {
                    match step {
                        0 => Some((Ok(part), 1)),
                        1 => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Some((
                                Err(io::Error::new(
                                    io::ErrorKind::ConnectionAborted,
                                    "injected fault: connection closed mid-response",
                                )),
                                2,
                            ))
                        }
                        _ => None,
                    }
                }
            });
            let mut response = Response::new(Body::from_stream(chunks));
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, content_type);
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(full_length));
            if let Some(changed) = changed {
                response.extensions_mut().insert(changed);
            }
            response
        }
    };
    if let Some(seconds) = fault.retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
