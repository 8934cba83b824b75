//! Reading a live cluster. The number of requests does not grow with the number of objects
//! (apart from pages of 500): one discovery round, then list calls, all concurrent except where
//! a request needs another's answer (Flux lists need the versions discovery found). Anything
//! forbidden or failing becomes data in the snapshot; only an unreachable API server aborts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::future::join_all;
use futures::{StreamExt, stream};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::kubeconfig::one_line;
use crate::model::extract;
use crate::model::{
    ClusterInfo, ConfigMapInfo, Fact, FluxInstanceInfo, FluxInventory, FluxKind, FluxReportInfo,
    SecretInfo, ServiceAccount, ServiceAccounts, Snapshot, Source, Unreadable,
};

const PAGE_SIZE: usize = 500;
/// A list longer than this many pages (half a million objects of one kind) is not read to the
/// end: a server that keeps answering with a `continue` token would otherwise hold doctor
/// forever.
pub const MAX_PAGES: usize = 1000;
/// A response body larger than this is refused as it streams in, never buffered whole: a page
/// of 500 objects is a few megabytes.
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
/// Legacy discovery requests in flight at once; a cluster may serve hundreds of versions.
pub const DISCOVERY_CONCURRENCY: usize = 8;
const MAX_RETRIES: u32 = 3;
/// A server asking to wait longer than this is treated as failing rather than waited on.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

const DISCOVERY_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    Forbidden,
    NotFound,
    Unauthorized,
    Status(u16, String),
    /// The request never got an HTTP answer: connection refused, TLS, credentials plugin, timeout.
    Transport(String),
    Decode(String),
    /// The answer was refused before it was read to the end (too large, paging without end).
    Refused(String),
}

impl ReadError {
    pub(crate) fn cause(&self) -> String {
        match self {
            ReadError::Forbidden => "forbidden".into(),
            ReadError::NotFound => "not found".into(),
            ReadError::Unauthorized => "unauthorized".into(),
            ReadError::Status(code, message) => format!("HTTP {code}: {message}"),
            ReadError::Transport(message) | ReadError::Refused(message) => message.clone(),
            ReadError::Decode(message) => format!("malformed response: {message}"),
        }
    }
}

/// The API server could not be reached (or refused our credentials) at all.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub String);

#[derive(Clone)]
pub struct Reader {
    client: kube::Client,
    timeout: Duration,
}

impl Reader {
    pub fn new(client: kube::Client, timeout: Duration) -> Reader {
        Reader { client, timeout }
    }

    async fn send_once(
        &self,
        path: &str,
        accept: &str,
    ) -> Result<(StatusCode, Option<Duration>, Vec<u8>), ReadError> {
        let request = Request::get(path)
            .header(http::header::ACCEPT, accept)
            .body(kube::client::Body::empty())
            .map_err(|e| ReadError::Transport(e.to_string()))?;
        let exchange = async {
            let response = self.client.send(request).await.map_err(|e| {
                // The client's own timeouts and the one around this exchange are the
                // same duration; whichever fires first, the message is the same.
                ReadError::Transport(if crate::kubeconfig::is_timeout(&e) {
                    self.no_answer()
                } else {
                    crate::kubeconfig::client_error(&e)
                })
            })?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let declared = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|length| length > MAX_RESPONSE_BYTES as u64) {
                return Err(too_large());
            }
            let body = self.read_body(response.into_body()).await?;
            Ok((status, retry_after, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ReadError::Transport(self.no_answer()))?
    }

    /// The body, frame by frame, given up once it passes [`MAX_RESPONSE_BYTES`].
    async fn read_body(&self, mut body: kube::client::Body) -> Result<Vec<u8>, ReadError> {
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                ReadError::Transport(if crate::kubeconfig::is_timeout(&e) {
                    self.no_answer()
                } else {
                    format!(
                        "connection closed while reading the response: {}",
                        one_line(&e)
                    )
                })
            })?;
            if let Ok(data) = frame.into_data() {
                if bytes.len() + data.len() > MAX_RESPONSE_BYTES {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok(bytes)
    }

    fn no_answer(&self) -> String {
        format!(
            "no answer within {}s (--request-timeout)",
            self.timeout.as_secs_f32()
        )
    }

    /// GET a JSON document, retrying 429 and 5xx a bounded number of times, honouring
    /// Retry-After.
    pub async fn get_json(&self, path: &str, accept: &str) -> Result<Value, ReadError> {
        let mut attempt = 0;
        loop {
            let (status, retry_after, body) = self.send_once(path, accept).await?;
            if status.is_success() {
                if is_html(&body) {
                    return Err(ReadError::Decode(HTML_PAGE.into()));
                }
                return serde_json::from_slice(&body).map_err(|e| ReadError::Decode(e.to_string()));
            }
            let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            let wait = retry_after.unwrap_or(Duration::from_millis(200 << attempt));
            if retryable && attempt < MAX_RETRIES && wait <= MAX_RETRY_AFTER {
                attempt += 1;
                tokio::time::sleep(wait).await;
                continue;
            }
            return Err(match status {
                StatusCode::FORBIDDEN => ReadError::Forbidden,
                StatusCode::NOT_FOUND => ReadError::NotFound,
                StatusCode::UNAUTHORIZED => ReadError::Unauthorized,
                other => ReadError::Status(other.as_u16(), status_message(&body)),
            });
        }
    }

    /// LIST with pagination, handing each item to `each` so a page is dropped before the next
    /// one is read.
    pub async fn list(&self, path: &str, mut each: impl FnMut(&Value)) -> Result<(), ReadError> {
        let mut continue_token: Option<String> = None;
        let mut seen = BTreeSet::new();
        for _ in 0..MAX_PAGES {
            let separator = if path.contains('?') { '&' } else { '?' };
            let mut url = format!("{path}{separator}limit={PAGE_SIZE}");
            if let Some(token) = &continue_token {
                url.push_str("&continue=");
                url.push_str(&encode_query(token));
            }
            let page = self.get_json(&url, "application/json").await?;
            let items = page
                .get("items")
                .and_then(Value::as_array)
                .ok_or_else(|| ReadError::Decode(format!("{path}: list without items")))?;
            items.iter().for_each(&mut each);
            continue_token = page
                .pointer("/metadata/continue")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            match &continue_token {
                None => return Ok(()),
                Some(token) if !seen.insert(token.clone()) => {
                    return Err(ReadError::Refused(
                        "the server sent the same continue token twice; paging stopped".into(),
                    ));
                }
                Some(_) => {}
            }
        }
        Err(ReadError::Refused(format!(
            "more than {MAX_PAGES} pages of {PAGE_SIZE}; paging stopped"
        )))
    }
}

fn too_large() -> ReadError {
    ReadError::Refused(format!(
        "the response is larger than {} MiB and was not read",
        MAX_RESPONSE_BYTES / 1024 / 1024
    ))
}

const HTML_PAGE: &str =
    "an HTML page, not the Kubernetes API (does the server URL point at a proxy or login page?)";

fn is_html(body: &[u8]) -> bool {
    let start = body.trim_ascii_start();
    start.len() >= 5
        && (start[..5].eq_ignore_ascii_case(b"<!doc") || start[..5].eq_ignore_ascii_case(b"<html"))
}

fn status_message(body: &[u8]) -> String {
    if is_html(body) {
        return HTML_PAGE.into();
    }
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect())
}

fn encode_query(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// What to read.
#[derive(Debug, Clone)]
pub struct LiveRequest {
    pub context: String,
    pub server: String,
    pub flux_namespace: String,
    /// `-n`: only Flux objects (and tenant ServiceAccounts) of this namespace.
    pub namespace: Option<String>,
    /// `--read-secrets`: read the key names of the Secrets Flux objects reference.
    pub read_secrets: bool,
}

/// For each Flux kind, the version the cluster serves it at (the group's preferred version when
/// it serves the kind, else the most preferred one that does). Kinds absent are not served.
fn versions_from_aggregated(doc: &Value) -> Discovered {
    let mut found = BTreeMap::new();
    let mut operator = BTreeSet::new();
    for group in doc
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let group_name = group
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        for version in group
            .get("versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let version_name = version
                .get("version")
                .and_then(Value::as_str)
                .unwrap_or_default();
            for resource in version
                .get("resources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let plural = resource
                    .get("resource")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if let Some(kind) = FluxKind::ALL
                    .into_iter()
                    .find(|k| k.group() == group_name && k.plural() == plural)
                {
                    found
                        .entry(kind)
                        .or_insert_with(|| version_name.to_string());
                }
                if let Some(resource) = operator_resource(group_name, version_name, plural) {
                    operator.insert(resource);
                }
            }
        }
    }
    Discovered {
        versions: found,
        failed: Vec::new(),
        operator,
    }
}

/// flux-operator's group: its FluxInstance and FluxReport are read at `v1`, the version
/// controlplaneio-fluxcd/flux-operator api/v1 declares and stores (v0.58.1).
const OPERATOR_GROUP: &str = "fluxcd.controlplane.io";
const FLUX_INSTANCES: &str = "fluxinstances";
const FLUX_REPORTS: &str = "fluxreports";

fn operator_resource(group: &str, version: &str, plural: &str) -> Option<&'static str> {
    if group != OPERATOR_GROUP || version != "v1" {
        return None;
    }
    [FLUX_INSTANCES, FLUX_REPORTS]
        .into_iter()
        .find(|p| *p == plural)
}

/// What discovery found: each served Flux kind's version, and the kinds whose group version
/// could not be read (with the problem), which are unknown rather than not served.
#[derive(Default)]
struct Discovered {
    versions: BTreeMap<FluxKind, String>,
    failed: Vec<(FluxKind, Unreadable)>,
    /// flux-operator's resources served at v1.
    operator: BTreeSet<&'static str>,
}

async fn discover_flux_versions(reader: &Reader) -> Result<Discovered, ReadError> {
    let doc = reader.get_json("/apis", DISCOVERY_ACCEPT).await?;
    if doc.get("kind").and_then(Value::as_str) == Some("APIGroupDiscoveryList") {
        return Ok(versions_from_aggregated(&doc));
    }
    // Legacy discovery: the group list, then each Flux group version, all in one round.
    let mut wanted: Vec<(String, Vec<String>)> = Vec::new();
    for group in doc
        .get("groups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = group
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !FluxKind::ALL.iter().any(|k| k.group() == name) && name != OPERATOR_GROUP {
            continue;
        }
        let preferred = group
            .pointer("/preferredVersion/version")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut versions: Vec<String> = group
            .get("versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.get("version").and_then(Value::as_str).map(str::to_string))
            .collect();
        versions.sort_by_key(|v| v != preferred);
        wanted.push((name.to_string(), versions));
    }
    let fetches = wanted.iter().flat_map(|(group, versions)| {
        versions.iter().map(move |version| async move {
            let list = reader
                .get_json(&format!("/apis/{group}/{version}"), "application/json")
                .await;
            (group.clone(), version.clone(), list)
        })
    });
    // In order, so the problem reported for a group is the same from run to run.
    let answers: Vec<_> = stream::iter(fetches)
        .buffered(DISCOVERY_CONCURRENCY)
        .collect()
        .await;
    let mut found = BTreeMap::new();
    let mut operator = BTreeSet::new();
    let mut failed_groups = Vec::new();
    for (group, version, list) in answers {
        let list = match list {
            Ok(list) => list,
            Err(error) => {
                failed_groups.push((group, version, error));
                continue;
            }
        };
        for resource in list
            .get("resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let plural = resource
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if let Some(resource) = operator_resource(&group, &version, plural) {
                operator.insert(resource);
            }
            if let Some(kind) = FluxKind::ALL
                .into_iter()
                .find(|k| k.group() == group && k.plural() == plural)
            {
                let entry = found.entry(kind).or_insert_with(|| version.clone());
                let order = |v: &str| {
                    wanted
                        .iter()
                        .find(|(g, _)| g == &group)
                        .and_then(|(_, vs)| vs.iter().position(|x| x == v))
                };
                if order(&version) < order(entry) {
                    entry.clone_from(&version);
                }
            }
        }
    }
    Ok(Discovered {
        failed: hidden_kinds(failed_groups, &found),
        versions: found,
        operator,
    })
}

/// A group version that could not be read hides only the kinds of its group that no other
/// version serves.
fn hidden_kinds(
    failed_groups: Vec<(String, String, ReadError)>,
    found: &BTreeMap<FluxKind, String>,
) -> Vec<(FluxKind, Unreadable)> {
    let mut failed: Vec<(FluxKind, Unreadable)> = Vec::new();
    for (group, version, error) in failed_groups {
        for kind in FluxKind::ALL {
            if kind.group() == group
                && !found.contains_key(&kind)
                && !failed.iter().any(|(k, _)| *k == kind)
            {
                let path = format!("/apis/{group}/{version}");
                failed.push((
                    kind,
                    unreadable(
                        &format!("API discovery ({path})"),
                        &format!("get on {path}"),
                        &error,
                    ),
                ));
            }
        }
    }
    failed
}

fn unreadable(what: &str, verb_resource: &str, error: &ReadError) -> Unreadable {
    Unreadable {
        what: what.to_string(),
        cause: error.cause(),
        missing_permission: (*error == ReadError::Forbidden).then(|| verb_resource.to_string()),
    }
}

async fn list_kind<T>(
    reader: &Reader,
    path: &str,
    extract_item: impl Fn(&Value) -> Option<T>,
) -> Result<Vec<T>, ReadError> {
    let mut out = Vec::new();
    reader
        .list(path, |item| {
            if let Some(value) = extract_item(item) {
                out.push(value);
            }
        })
        .await?;
    Ok(out)
}

struct FluxRead {
    inventory: FluxInventory,
    operator: OperatorRead,
    problems: Vec<Unreadable>,
}

#[derive(Default)]
struct OperatorRead {
    instances: Vec<crate::model::FluxInstanceInfo>,
    report: Option<crate::model::FluxReportInfo>,
}

/// flux-operator's FluxInstances (in every namespace, or the Flux namespace with `-n`) and the
/// FluxReport of the Flux namespace, where discovery found them served. The report's name is
/// always `flux` (api/v1/fluxreport_types.go @ v0.58.1), so it is one GET.
async fn read_operator(
    reader: &Reader,
    served: &BTreeSet<&'static str>,
    request: &LiveRequest,
    problems: &mut Vec<Unreadable>,
) -> OperatorRead {
    let flux_ns = request.flux_namespace.as_str();
    let base = format!("/apis/{OPERATOR_GROUP}/v1");
    let (scope, instances_path) = if request.namespace.is_some() {
        (
            format!("namespace {flux_ns}"),
            format!("{base}/namespaces/{flux_ns}/{FLUX_INSTANCES}"),
        )
    } else {
        (
            "all namespaces".to_string(),
            format!("{base}/{FLUX_INSTANCES}"),
        )
    };
    let report_path = format!("{base}/namespaces/{flux_ns}/{FLUX_REPORTS}/flux");
    let instances = async {
        if !served.contains(FLUX_INSTANCES) {
            return Ok(Vec::new());
        }
        list_kind(reader, &instances_path, |v| {
            Some(extract::flux_instance(v, flux_ns))
        })
        .await
    };
    let report = async {
        if !served.contains(FLUX_REPORTS) {
            return Ok(None);
        }
        match reader.get_json(&report_path, "application/json").await {
            Ok(value) => Ok(Some(extract::flux_report(&value, flux_ns))),
            Err(ReadError::NotFound) => Ok(None),
            Err(error) => Err(error),
        }
    };
    let (instances, report) = tokio::join!(instances, report);
    let mut read = OperatorRead::default();
    match instances {
        Ok(list) => read.instances = list,
        Err(error) => problems.push(unreadable(
            &format!("{FLUX_INSTANCES} in {scope}"),
            &format!("list {FLUX_INSTANCES}.{OPERATOR_GROUP} in {scope}"),
            &error,
        )),
    }
    match report {
        Ok(report) => read.report = report,
        Err(error) => problems.push(unreadable(
            &format!("fluxreport {flux_ns}/flux"),
            &format!("get {FLUX_REPORTS}.{OPERATOR_GROUP} in namespace {flux_ns}"),
            &error,
        )),
    }
    read
}

async fn read_flux(reader: &Reader, request: &LiveRequest) -> FluxRead {
    let namespace = request.namespace.as_deref();
    let discovered = match discover_flux_versions(reader).await {
        Ok(d) => d,
        Err(error) => {
            let reason = format!("API discovery failed: {}", error.cause());
            return FluxRead {
                inventory: FluxInventory {
                    unreadable: FluxKind::ALL.iter().map(|k| (*k, reason.clone())).collect(),
                    read: true,
                    ..FluxInventory::default()
                },
                operator: OperatorRead::default(),
                problems: vec![unreadable("API discovery (/apis)", "get on /apis", &error)],
            };
        }
    };
    let versions = &discovered.versions;
    let lists = FluxKind::ALL.into_iter().filter_map(|kind| {
        let version = versions.get(&kind)?.clone();
        Some(async move {
            let path = match namespace {
                Some(ns) => format!(
                    "/apis/{}/{version}/namespaces/{ns}/{}",
                    kind.group(),
                    kind.plural()
                ),
                None => format!("/apis/{}/{version}/{}", kind.group(), kind.plural()),
            };
            let default_ns = namespace.unwrap_or("default");
            (
                kind,
                list_kind(reader, &path, |item| {
                    Some(extract::flux_object_as(kind, item, default_ns))
                })
                .await,
            )
        })
    });
    let mut read = FluxRead {
        inventory: FluxInventory {
            not_served: FluxKind::ALL
                .into_iter()
                .filter(|k| {
                    !versions.contains_key(k) && !discovered.failed.iter().any(|(f, _)| f == k)
                })
                .collect(),
            read: true,
            ..FluxInventory::default()
        },
        operator: OperatorRead::default(),
        problems: Vec::new(),
    };
    let mut operator_problems = Vec::new();
    let (listed, operator) = tokio::join!(
        join_all(lists),
        read_operator(
            reader,
            &discovered.operator,
            request,
            &mut operator_problems
        )
    );
    read.operator = operator;
    for (kind, problem) in &discovered.failed {
        read.inventory
            .unreadable
            .push((*kind, problem.cause.clone()));
        if !read.problems.iter().any(|p| p.what == problem.what) {
            read.problems.push(problem.clone());
        }
    }
    read.problems.extend(operator_problems);
    for (kind, result) in listed {
        match result {
            Ok(objects) => read.inventory.objects.extend(objects),
            Err(ReadError::NotFound) => read.inventory.not_served.push(kind),
            Err(error) => {
                let scope =
                    namespace.map_or("all namespaces".to_string(), |ns| format!("namespace {ns}"));
                read.problems.push(unreadable(
                    &format!("{} in {scope}", kind.plural()),
                    &format!("list {}.{} in {scope}", kind.plural(), kind.group()),
                    &error,
                ));
                read.inventory.unreadable.push((kind, error.cause()));
            }
        }
    }
    read.inventory
        .objects
        .sort_by(|a, b| (a.kind, &a.namespace, &a.name).cmp(&(b.kind, &b.namespace, &b.name)));
    read
}

fn record<T>(
    problems: &mut Vec<Unreadable>,
    what: &str,
    permission: &str,
    result: Result<T, ReadError>,
) -> Fact<T> {
    match result {
        Ok(value) => Fact::Known(value),
        Err(error) => {
            let reason = format!("could not read {what}: {}", error.cause());
            problems.push(unreadable(what, permission, &error));
            Fact::Unknown(reason)
        }
    }
}

async fn read_service_accounts(
    reader: &Reader,
    request: &LiveRequest,
) -> Result<Vec<ServiceAccount>, ReadError> {
    let flux_ns = request.flux_namespace.as_str();
    let in_namespace = |ns: &str| format!("/api/v1/namespaces/{ns}/serviceaccounts");
    let Some(ns) = request.namespace.as_deref().filter(|ns| *ns != flux_ns) else {
        let path = if request.namespace.is_some() {
            in_namespace(flux_ns)
        } else {
            "/api/v1/serviceaccounts".to_string()
        };
        return list_kind(reader, &path, |v| {
            Some(extract::service_account(v, flux_ns))
        })
        .await;
    };
    let (controller_path, tenant_path) = (in_namespace(flux_ns), in_namespace(ns));
    let (controllers, tenants) = tokio::join!(
        list_kind(reader, &controller_path, |v| Some(
            extract::service_account(v, flux_ns)
        )),
        list_kind(reader, &tenant_path, |v| Some(extract::service_account(
            v, ns
        ))),
    );
    let mut all = controllers?;
    all.extend(tenants?);
    Ok(all)
}

type Fetched = (String, String, Result<Value, ReadError>);

/// GETs each named object of a core resource, concurrently.
async fn get_each(
    reader: &Reader,
    refs: &BTreeSet<(String, String)>,
    resource: &str,
) -> Vec<Fetched> {
    join_all(refs.iter().map(|(ns, name)| async move {
        let path = format!("/api/v1/namespaces/{ns}/{resource}/{name}");
        (
            ns.clone(),
            name.clone(),
            reader.get_json(&path, "application/json").await,
        )
    }))
    .await
}

/// The ConfigMaps (remote-cluster kubeconfigs) and, with `--read-secrets`, the Secrets the Flux
/// objects reference. One GET each: they are few, and listing every Secret of a cluster to find
/// them would read far more than we may keep.
/// The ConfigMaps and Secrets Flux objects name, and what could not be read of them.
type References = (
    Fact<Vec<ConfigMapInfo>>,
    Fact<Vec<SecretInfo>>,
    Vec<Unreadable>,
);

async fn read_references(
    reader: &Reader,
    objects: &[crate::model::FluxObject],
    read_secrets: bool,
) -> References {
    let mut config_map_refs = BTreeSet::new();
    let mut secret_refs = BTreeSet::new();
    for object in objects {
        let ns = object.namespace.clone();
        if let Some(kube_config) = &object.kube_config {
            if let Some(name) = &kube_config.config_map_ref {
                config_map_refs.insert((ns.clone(), name.clone()));
            }
            if let Some(name) = &kube_config.secret_ref {
                secret_refs.insert((ns.clone(), name.clone()));
            }
        }
        if let Some(name) = object
            .decryption
            .as_ref()
            .and_then(|d| d.secret_ref.as_ref())
        {
            secret_refs.insert((ns.clone(), name.clone()));
        }
        // Whether these win over workload identity depends on what the Secret holds.
        let content_decides = match object.kind {
            Some(FluxKind::Bucket) => object.provider_is_azure(),
            Some(FluxKind::Provider) => matches!(
                object.type_.as_deref(),
                Some("azuredevops" | "azureeventhub")
            ),
            _ => false,
        };
        if content_decides && let Some(name) = &object.secret_ref {
            secret_refs.insert((ns, name.clone()));
        }
    }
    let secrets_wanted = if read_secrets {
        secret_refs.clone()
    } else {
        BTreeSet::new()
    };
    let (config_map_results, secret_results) = tokio::join!(
        get_each(reader, &config_map_refs, "configmaps"),
        get_each(reader, &secrets_wanted, "secrets")
    );
    let mut problems = Vec::new();
    let mut config_maps = Vec::new();
    for (ns, name, result) in config_map_results {
        match result {
            Ok(value) => config_maps.push(extract::config_map(&value, &ns)),
            Err(ReadError::NotFound) => {}
            Err(error) => problems.push(unreadable(
                &format!("configmap {ns}/{name}"),
                &format!("get configmaps in namespace {ns}"),
                &error,
            )),
        }
    }
    let secrets = if read_secrets {
        let mut secrets = Vec::new();
        for (ns, name, result) in secret_results {
            match result {
                Ok(value) => secrets.push(extract::secret(&value, &ns)),
                Err(ReadError::NotFound) => {}
                Err(error) => problems.push(unreadable(
                    &format!("secret {ns}/{name}"),
                    &format!("get secrets in namespace {ns}"),
                    &error,
                )),
            }
        }
        Fact::Known(secrets)
    } else if secret_refs.is_empty() {
        Fact::Known(Vec::new())
    } else {
        Fact::Unknown("reading Secrets is off; pass --read-secrets to check the Secrets Flux objects reference (key names only)".into())
    };
    (Fact::Known(config_maps), secrets, problems)
}

fn cluster_info(
    request: &LiveRequest,
    version: Option<Value>,
    nodes: Result<Value, ReadError>,
) -> ClusterInfo {
    let first_node = nodes.ok().and_then(|n| {
        n.get("items")
            .and_then(Value::as_array)
            .and_then(|items| items.first().cloned())
    });
    ClusterInfo {
        server_version: version.and_then(|v| {
            v.get("gitVersion")
                .and_then(Value::as_str)
                .map(str::to_string)
        }),
        is_aks: request.server.contains(".azmk8s.io")
            || first_node.is_some_and(|node| extract::is_aks_node(&node)),
    }
}

/// `/version` tells whether the API server can be talked to at all: no connection, or
/// credentials refused, end the read; any other answer is data.
fn reachable(
    version: Result<Value, ReadError>,
    request: &LiveRequest,
) -> Result<Option<Value>, Unreachable> {
    match version {
        Err(ReadError::Transport(cause)) => Err(Unreachable(format!(
            "cannot reach the API server {} (context {}): {cause}",
            request.server, request.context
        ))),
        Err(ReadError::Unauthorized) => Err(Unreachable(format!(
            "the API server {} rejected the credentials of context {} (401 Unauthorized)",
            request.server, request.context
        ))),
        other => Ok(other.ok()),
    }
}

fn issuer_of(discovery: &Value) -> Result<String, ReadError> {
    discovery
        .get("issuer")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ReadError::Decode("openid-configuration has no issuer".into()))
}

/// The Flux namespace's Deployments as the Flux controllers and the rest; when it has no
/// controller, the Flux controllers of other namespaces join the rest.
async fn split_deployments(
    reader: &Reader,
    flux_ns: &str,
    problems: &mut Vec<Unreadable>,
    deployments: Result<Vec<crate::model::Workload>, ReadError>,
) -> (
    Fact<Vec<crate::model::Workload>>,
    Fact<Vec<crate::model::Workload>>,
) {
    let deployments = record(
        problems,
        &format!("deployments in {flux_ns}"),
        &format!("list deployments.apps in namespace {flux_ns}"),
        deployments,
    );
    match deployments {
        Fact::Known(all) => {
            let (controllers, mut others): (Vec<_>, Vec<_>) = all
                .into_iter()
                .partition(crate::model::Workload::is_flux_controller);
            if controllers.is_empty() {
                others.extend(controllers_elsewhere(reader, flux_ns).await);
            }
            (Fact::Known(controllers), Fact::Known(others))
        }
        Fact::Unknown(why) => (Fact::Unknown(why.clone()), Fact::Unknown(why)),
    }
}

/// Flux controllers in other namespaces than `flux_ns`, read when it has none so that AZF010
/// can say where they are: the Deployments with Flux's `app.kubernetes.io/part-of: flux` label,
/// and those named like a Flux controller (labels can be stripped), each list selected on the
/// server so it stays small whatever the cluster holds. These reads only add a hint: one that
/// fails leaves it out rather than reporting a permission doctor does not otherwise need.
async fn controllers_elsewhere(reader: &Reader, flux_ns: &str) -> Vec<crate::model::Workload> {
    let mut paths = vec![
        "/apis/apps/v1/deployments?labelSelector=app.kubernetes.io%2Fpart-of%3Dflux".to_string(),
    ];
    paths.extend(
        crate::wiring::FLUX_CONTROLLERS
            .iter()
            .map(|name| format!("/apis/apps/v1/deployments?fieldSelector=metadata.name%3D{name}")),
    );
    let lists = join_all(paths.iter().map(|path| {
        list_kind(reader, path, |v| {
            let workload = extract::workload(v, flux_ns);
            (workload.namespace != flux_ns && workload.is_flux_controller()).then_some(workload)
        })
    }))
    .await;
    let mut found: Vec<crate::model::Workload> = lists.into_iter().flatten().flatten().collect();
    found.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    found.dedup_by(|a, b| a.namespace == b.namespace && a.name == b.name);
    found
}

/// Reads everything doctor needs from the cluster.
/// The Flux objects with the ASO objects, then the references the Flux objects name.
async fn read_objects(
    reader: &Reader,
    request: &LiveRequest,
) -> (FluxRead, References, super::aso::AsoRead) {
    let (flux, aso) = tokio::join!(
        read_flux(reader, request),
        super::aso::read(reader, request.namespace.as_deref())
    );
    let references = read_references(reader, &flux.inventory.objects, request.read_secrets).await;
    (flux, references, aso)
}

pub async fn gather(reader: &Reader, request: &LiveRequest) -> Result<Snapshot, Unreachable> {
    let flux_ns = request.flux_namespace.as_str();
    let deployments_path = format!("/apis/apps/v1/namespaces/{flux_ns}/deployments");
    let pods_path = format!("/api/v1/namespaces/{flux_ns}/pods");
    // Everything but the references starts at once; the references wait only for the Flux
    // objects that name them.
    let flux_and_references = read_objects(reader, request);
    let (
        version,
        deployments,
        service_accounts,
        pods,
        webhooks,
        nodes,
        issuer,
        (flux, references, aso),
    ) = tokio::join!(
        reader.get_json("/version", "application/json"),
        list_kind(reader, &deployments_path, |v| Some(extract::workload(
            v, flux_ns
        ))),
        read_service_accounts(reader, request),
        list_kind(reader, &pods_path, |v| Some(extract::pod(v, flux_ns))),
        list_kind(
            reader,
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
            extract::workload_identity_webhook,
        ),
        reader.get_json("/api/v1/nodes?limit=1", "application/json"),
        reader.get_json("/.well-known/openid-configuration", "application/json"),
        flux_and_references,
    );
    let version = reachable(version, request)?;
    let mut snapshot = Snapshot::new(
        Source::Live {
            context: request.context.clone(),
            server: request.server.clone(),
        },
        flux_ns,
    );
    let mut problems = Vec::new();
    // Without a node (or an AKS server name) whether this is AKS is unknown, not "no".
    snapshot.cluster = match nodes {
        Err(error) if !request.server.contains(".azmk8s.io") => record(
            &mut problems,
            "nodes (to recognise AKS)",
            "list nodes",
            Err(error),
        ),
        nodes => Fact::Known(cluster_info(request, version, nodes)),
    };
    (snapshot.controllers, snapshot.workloads) =
        split_deployments(reader, flux_ns, &mut problems, deployments).await;
    snapshot.service_accounts = record(
        &mut problems,
        "serviceaccounts",
        "list serviceaccounts (all namespaces)",
        service_accounts.map(ServiceAccounts::from),
    );
    snapshot.pods = record(
        &mut problems,
        &format!("pods in {flux_ns}"),
        &format!("list pods in namespace {flux_ns}"),
        pods,
    );
    snapshot.webhooks = record(
        &mut problems,
        "mutatingwebhookconfigurations",
        "list mutatingwebhookconfigurations.admissionregistration.k8s.io",
        webhooks,
    );
    let issuer = issuer.and_then(|doc| issuer_of(&doc));
    snapshot.issuer = record(
        &mut problems,
        "the service-account issuer (/.well-known/openid-configuration)",
        "get on the non-resource URL /.well-known/openid-configuration",
        issuer,
    );
    snapshot.flux = flux.inventory;
    snapshot.flux_instances = flux.operator.instances;
    snapshot.flux_report = flux.operator.report;
    snapshot
        .input_notes
        .extend(snapshot.flux_instance().map(FluxInstanceInfo::note));
    snapshot
        .input_notes
        .extend(snapshot.flux_report.as_ref().map(FluxReportInfo::note));
    problems.extend(flux.problems);
    let (config_maps, secrets, reference_problems) = references;
    snapshot.config_maps = config_maps;
    snapshot.secrets = secrets;
    problems.extend(reference_problems);
    aso.apply(&mut snapshot, &mut problems);
    snapshot.unreadable = problems;
    if let Some(reason) = nothing_read(&snapshot) {
        return Err(Unreachable(format!(
            "could not read any Flux state from the API server {} (context {}): {reason}",
            request.server, request.context
        )));
    }
    Ok(snapshot)
}

/// Why no Flux state could be read, when neither the controllers nor any Flux kind could be:
/// a report of skipped checks would pass a CI gate on a cluster nothing was learnt about.
fn nothing_read(snapshot: &Snapshot) -> Option<String> {
    const SHOWN: usize = 3;
    let flux = &snapshot.flux;
    let no_kind_read = FluxKind::ALL.iter().all(|kind| {
        flux.not_served.contains(kind) || flux.unreadable.iter().any(|(k, _)| k == kind)
    });
    let nothing = matches!(snapshot.controllers, Fact::Unknown(_))
        && flux.objects.is_empty()
        && !flux.unreadable.is_empty()
        && no_kind_read;
    if !nothing {
        return None;
    }
    let flux_reads: Vec<_> = snapshot
        .unreadable
        .iter()
        .filter(|u| {
            u.what.starts_with("deployments")
                || u.what.starts_with("API discovery")
                || FluxKind::ALL.iter().any(|k| u.what.starts_with(k.plural()))
        })
        .collect();
    let mut reasons: Vec<String> = flux_reads
        .iter()
        .take(SHOWN)
        .map(|u| format!("{}: {}", u.what, u.cause))
        .collect();
    if flux_reads.len() > SHOWN {
        reasons.push(format!("{} more", flux_reads.len() - SHOWN));
    }
    Some(reasons.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aggregated_discovery_picks_per_kind_versions() {
        let doc = json!({"kind": "APIGroupDiscoveryList", "items": [{
            "metadata": {"name": "source.toolkit.fluxcd.io"},
            "versions": [
                {"version": "v1", "resources": [{"resource": "gitrepositories"}, {"resource": "buckets"}]},
                {"version": "v1beta2", "resources": [{"resource": "gitrepositories"}, {"resource": "ocirepositories"}]}
            ]
        }]});
        let versions = versions_from_aggregated(&doc).versions;
        assert_eq!(
            versions.get(&FluxKind::GitRepository).map(String::as_str),
            Some("v1")
        );
        assert_eq!(
            versions.get(&FluxKind::OCIRepository).map(String::as_str),
            Some("v1beta2")
        );
        assert_eq!(versions.get(&FluxKind::HelmRepository), None);
    }

    #[test]
    fn continue_tokens_are_escaped() {
        assert_eq!(encode_query("a+b/c="), "a%2Bb%2Fc%3D");
    }
}
