//! Manifest mode: the same snapshot built from YAML files, folders, stdin, or a kustomization
//! rendered the way Flux's kustomize-controller renders it (no load restrictor). Facts only a
//! live cluster has (pods, webhooks, the issuer, the kubeconfig) are marked unknown, so the
//! checks that need them are skipped with that reason.

use std::io::Read;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::model::{
    ConfigMapInfo, DeclaredCredential, DeclaredIdentity, DeclaredResource, DeclaredRoleAssignment,
    Fact, FluxObject, ObjectRef, Origin, PodIdentityBinding, SecretInfo, ServiceAccount, Snapshot,
    Source, Workload, extract,
};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}:{line}:{column}: {reason}")]
    Parse {
        path: String,
        line: u64,
        column: u64,
        reason: String,
    },
    #[error("-k needs kubectl (it runs `kubectl kustomize`), and kubectl is not on PATH")]
    KubectlMissing,
    #[error("kubectl kustomize {dir} failed: {reason}")]
    Kustomize { dir: String, reason: String },
    #[error("no Kubernetes object in {inputs}{notes}")]
    NoObjects { inputs: String, notes: String },
}

/// One YAML document and where it came from.
#[derive(Debug, Clone)]
pub struct Document {
    /// Where it was read, in words: a file, `<stdin>`, a folder's build.
    pub origin: String,
    /// The file and line to point a report at, when there is one.
    pub location: Option<Origin>,
    pub body: Body,
}

/// A document's content: the parsed value, or only what the snapshot takes from it. A parsed
/// object takes about ten times the memory of its text, so the objects of a file are read down
/// to their facts as they are parsed rather than all held whole at once.
#[derive(Debug, Clone)]
pub enum Body {
    Whole(Value),
    Read(Box<ReadObject>),
}

/// An object read down to what the snapshot takes from it, and to what the walk of the inputs
/// asks of every object: its kind, namespace and name as written (empty when not).
#[derive(Debug, Clone)]
pub struct ReadObject {
    identity: (String, String, String),
    facts: Facts,
}

impl Document {
    pub fn whole(origin: String, location: Option<Origin>, value: Value) -> Self {
        Document {
            origin,
            location,
            body: Body::Whole(value),
        }
    }

    /// The parsed value, for a document kept whole.
    pub fn value(&self) -> Option<&Value> {
        match &self.body {
            Body::Whole(value) => Some(value),
            Body::Read(_) => None,
        }
    }

    pub fn value_mut(&mut self) -> Option<&mut Value> {
        match &mut self.body {
            Body::Whole(value) => Some(value),
            Body::Read(_) => None,
        }
    }

    pub fn into_value(self) -> Option<Value> {
        match self.body {
            Body::Whole(value) => Some(value),
            Body::Read(_) => None,
        }
    }

    /// Kind, namespace and name as written, each empty when the document has none.
    pub fn identity(&self) -> (String, String, String) {
        match &self.body {
            Body::Whole(value) => identity_of(value),
            Body::Read(read) => read.identity.clone(),
        }
    }
}

fn identity_of(value: &Value) -> (String, String, String) {
    let at = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (at("/kind"), at("/metadata/namespace"), at("/metadata/name"))
}

/// Kinds kept whole when parsed, because the walk of the inputs reads more of them
/// than their identity: Deployments (whether one is a patch, which controllers a FluxInstance
/// leaves out, the controllers `enable` patches), Flux Kustomizations (the folders they apply)
/// and FluxInstances (the objects the operator creates).
const KEPT_WHOLE: [&str; 3] = ["Deployment", "Kustomization", "FluxInstance"];

/// `value` as a document's body: read down to its facts, in `flux_namespace`, when it is an
/// object with an apiVersion and a kind that nothing reads further; whole when no namespace is
/// given (a kustomize build, whose objects are located and labelled after they are parsed).
fn body_of(value: Value, flux_namespace: Option<&str>) -> Body {
    let Some(namespace) = flux_namespace else {
        return Body::Whole(value);
    };
    let typed = |field: &str| value[field].as_str().filter(|v| !v.is_empty());
    let read = matches!(
        (typed("apiVersion"), typed("kind")),
        (Some(_), Some(kind)) if !KEPT_WHOLE.contains(&kind)
    );
    if !read {
        return Body::Whole(value);
    }
    Body::Read(Box::new(ReadObject {
        identity: identity_of(&value),
        facts: facts_of(&value, namespace),
    }))
}

/// Whether `line` is a document marker (`---` or `...`, alone or followed by a space or tab):
/// YAML forbids such a line inside any scalar, so a stream can be cut there without parsing.
fn marker(line: &str) -> Option<&'static str> {
    ["---", "..."].into_iter().find(|m| {
        line.strip_prefix(m)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
    })
}

/// Cuts a YAML stream at its document markers, keeping each piece's first line number, so
/// that pieces parse on several cores, a parse error names the line in the file and one bad
/// document does not hide the others' place. The parser reads each piece whole, markers and
/// directives (`%YAML`) included; it decides what the documents are.
pub(super) fn split_documents(text: &str) -> Vec<(u64, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1u64;
    // Directives and comments before a `---` belong to the document it starts.
    let mut only_prologue = true;
    for (index, line) in text.lines().enumerate() {
        let line_no = u64::try_from(index).unwrap_or(u64::MAX).saturating_add(1);
        match marker(line) {
            Some("---") if !only_prologue => {
                docs.push((start, std::mem::take(&mut current)));
                start = line_no;
            }
            Some("...") => {
                current.push_str(line);
                current.push('\n');
                docs.push((start, std::mem::take(&mut current)));
                start = line_no + 1;
                only_prologue = true;
                continue;
            }
            _ => {}
        }
        let trimmed = line.trim_start();
        only_prologue &= marker(line).is_none()
            && (trimmed.is_empty() || trimmed.starts_with('#') || line.starts_with('%'));
        current.push_str(line);
        current.push('\n');
    }
    docs.push((start, current));
    docs.retain(|(_, doc)| doc.lines().any(has_content));
    docs
}

/// The line a piece's document starts on: its first line with content, so a report points at
/// `apiVersion:` rather than at the comment or marker before it.
pub(super) fn content_line(first_line: u64, piece: &str) -> u64 {
    let offset = piece.lines().position(has_content).unwrap_or_default();
    first_line.saturating_add(u64::try_from(offset).unwrap_or_default())
}

/// Whether a line holds more than a comment, a marker or a directive.
fn has_content(line: &str) -> bool {
    let trimmed = line.trim_start();
    !(trimmed.is_empty() || trimmed.starts_with('#') || line.starts_with('%'))
        && marker(line).is_none_or(|_| {
            line.get(3..)
                .is_some_and(|rest| !rest.trim().is_empty() && !rest.trim().starts_with('#'))
        })
}

fn parse_options() -> serde_saphyr::Options {
    // A key given twice (`kind:` among them) reads as its last value, as kubectl and the API
    // server read it.
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::LastWins;
    options
}

/// Parses a YAML (or JSON) stream into documents; `kind: List` is expanded into its items.
/// With `flux_namespace`, objects are read down to their facts as they are parsed (see
/// [`Body`]); without, every document is kept whole.
pub fn parse_stream(
    origin: &str,
    text: &str,
    flux_namespace: Option<&str>,
) -> Result<Vec<Document>, ManifestError> {
    let parse = |(first_line, doc): &(u64, String)| {
        if skippable(doc) {
            return Ok((0, Vec::new()));
        }
        let values = serde_saphyr::from_multiple_with_options::<Value>(doc, parse_options());
        values
            .map(|values| (content_line(*first_line, doc), values))
            .map_err(|e| {
                ManifestError::Parse {
                    path: origin.to_string(),
                    line: first_line + e.location().map_or(0, |l| l.line().saturating_sub(1)),
                    column: e.location().map_or(0, |l| l.column()),
                    // Never the quoted source lines: the document may be a Secret.
                    reason: crate::kubeconfig::yaml_description(&e),
                }
            })
    };
    let read = |parsed: Result<(u64, Vec<Value>), ManifestError>| {
        parsed.map(|(line, values)| {
            let mut bodies = Vec::new();
            for value in values {
                expand_list(value, &mut |item| {
                    bodies.push(body_of(item, flux_namespace));
                });
            }
            (line, bodies)
        })
    };
    let mut out = Vec::new();
    for parsed in parse_all(&split_documents(text), parse, read) {
        let (line, bodies) = parsed?;
        let location = Origin {
            path: origin.to_string(),
            line: Some(line),
        };
        out.extend(bodies.into_iter().map(|body| Document {
            origin: origin.to_string(),
            location: Some(location.clone()),
            body,
        }));
    }
    Ok(out)
}

/// Kinds no check reads. CustomResourceDefinitions are most of the bytes of a Flux install,
/// and parsing is most of manifest mode's time, so documents of these kinds are recognised by
/// their top-level `kind:` line and not parsed at all.
const UNREAD_KINDS: [&str; 13] = [
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "NetworkPolicy",
    "Namespace",
    "ResourceQuota",
    "LimitRange",
    "PriorityClass",
    "PodDisruptionBudget",
    "ValidatingWebhookConfiguration",
];

/// Whether a document is of a kind no check reads, told without parsing it, and only where
/// its lines leave no doubt: its root is a block mapping of plain keys at column 0 (so every
/// top-level key starts a line, and a line at column 0 inside a multi-line string cannot hide
/// the real `kind:`), with exactly one `kind:` line. Anything else is parsed.
fn skippable(doc: &str) -> bool {
    let starts_key = |line: &str| line.starts_with(|c: char| c.is_ascii_alphabetic());
    let mut lines = doc.lines().filter(|l| has_content(l)).peekable();
    if !lines.peek().is_some_and(|first| starts_key(first)) {
        // An indented, flow or sequence root.
        return false;
    }
    let mut kinds = Vec::new();
    for line in lines.filter(|l| !l.starts_with([' ', '\t'])) {
        if !starts_key(line) {
            // A quoted or complex key, a merge, an alias.
            return false;
        }
        if let Some(rest) = line.strip_prefix("kind")
            && let Some(value) = rest.trim_start().strip_prefix(':')
        {
            kinds.push(value);
        }
    }
    let [kind] = kinds.as_slice() else {
        return false;
    };
    let kind = kind
        .split(" #")
        .next()
        .unwrap_or_default()
        .trim()
        .trim_matches(['"', '\'']);
    UNREAD_KINDS.contains(&kind)
}

/// Parses documents on every core for a large stream (YAML parsing is most of the time doctor
/// spends on a rendered fleet), and hands each parse to `finish` on this thread, in order.
/// The parsers wait while `finish` is [`IN_FLIGHT`] documents behind, so only those few parsed
/// values exist at once, and what `finish` keeps of them is allocated by this thread: what a
/// parser thread allocates and frees stays with that thread's allocator arena rather than
/// going back to the system, so nothing lasting is allocated there.
fn parse_all<T: Sync, R: Send, O>(
    docs: &[T],
    parse: impl Fn(&T) -> R + Sync,
    mut finish: impl FnMut(R) -> O,
) -> Vec<O> {
    const PER_THREAD: usize = 256;
    const IN_FLIGHT: usize = 64;
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(docs.len() / PER_THREAD);
    if threads < 2 {
        return docs.iter().map(|doc| finish(parse(doc))).collect();
    }
    let parse = &parse;
    std::thread::scope(|scope| {
        let (sender, parsed) = std::sync::mpsc::sync_channel(IN_FLIGHT);
        let size = docs.len().div_ceil(threads);
        let workers: Vec<_> = docs
            .chunks(size)
            .enumerate()
            .map(|(index, chunk)| {
                let sender = sender.clone();
                scope.spawn(move || {
                    for (offset, doc) in chunk.iter().enumerate() {
                        if sender.send((index * size + offset, parse(doc))).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        drop(sender);
        let mut slots: Vec<Option<O>> = std::iter::repeat_with(|| None).take(docs.len()).collect();
        for (index, result) in parsed {
            slots[index] = Some(finish(result));
        }
        for worker in workers {
            worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        }
        slots.into_iter().flatten().collect()
    })
}

/// Hands `value` to `keep`, or each of its items when it is a list (`kind: List` or any kind
/// ending in `List`, with an `items` array); a null document is nothing.
fn expand_list(value: Value, keep: &mut impl FnMut(Value)) {
    match value {
        Value::Null => {}
        Value::Object(mut map)
            if map
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k == "List" || k.ends_with("List"))
                && map.get("items").is_some_and(Value::is_array) =>
        {
            if let Some(Value::Array(items)) = map.remove("items") {
                for item in items {
                    expand_list(item, keep);
                }
            }
        }
        other => keep(other),
    }
}

/// A failed read of a user path, naming it.
pub(super) fn read_error(path: &Path, error: &std::io::Error) -> ManifestError {
    ManifestError::Read {
        path: path.display().to_string(),
        reason: error.to_string(),
    }
}

pub const NOT_REGULAR: &str = "not a regular file (a FIFO, socket or device is not read)";

/// Reads `-f` files and `-` for stdin; folders are walked by [`super::layout`]. With
/// `flux_namespace`, objects are read down to their facts as they are parsed.
pub fn read_inputs(
    inputs: &[String],
    flux_namespace: Option<&str>,
) -> Result<Vec<Document>, ManifestError> {
    let mut docs = Vec::new();
    for input in inputs {
        if input == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| ManifestError::Read {
                    path: "<stdin>".into(),
                    reason: e.to_string(),
                })?;
            docs.extend(
                parse_stream("<stdin>", &text, flux_namespace)?
                    .into_iter()
                    .map(|doc| Document {
                        location: None,
                        ..doc
                    }),
            );
            continue;
        }
        let refused = |reason: String| ManifestError::Read {
            path: input.clone(),
            reason,
        };
        // A FIFO or a device would block or never end.
        let metadata = std::fs::metadata(input).map_err(|e| refused(e.to_string()))?;
        if !metadata.is_file() {
            return Err(refused(NOT_REGULAR.into()));
        }
        let text = std::fs::read_to_string(input).map_err(|e| refused(e.to_string()))?;
        docs.extend(parse_stream(input, &text, flux_namespace)?);
    }
    Ok(docs)
}

/// How long `kubectl kustomize` may run, in milliseconds: `--request-timeout`, set once by the
/// command, since folders are built from deep inside the walk of the inputs.
static KUSTOMIZE_BOUND_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Bounds every later `kubectl kustomize` run by `timeout`.
pub fn bound_kustomize(timeout: std::time::Duration) {
    let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    KUSTOMIZE_BOUND_MS.store(millis, std::sync::atomic::Ordering::Relaxed);
}

/// Renders a kustomization like kustomize-controller does: `kubectl kustomize` without the
/// load restrictor, within the bound [`bound_kustomize`] set (else the longest a flag gives).
pub fn render_kustomization(dir: &Path) -> Result<Vec<Document>, ManifestError> {
    render_kustomization_within(dir, kustomize_bound())
}

/// How long one `kubectl kustomize` run may take: what [`bound_kustomize`] set, else the
/// longest a flag gives.
pub fn kustomize_bound() -> std::time::Duration {
    let millis = KUSTOMIZE_BOUND_MS.load(std::sync::atomic::Ordering::Relaxed);
    if millis == 0 {
        crate::kubeconfig::MAX_DURATION
    } else {
        std::time::Duration::from_millis(millis).min(crate::kubeconfig::MAX_DURATION)
    }
}

/// The most `kubectl kustomize` may print: a rendered fleet is tens of megabytes.
pub const MAX_KUSTOMIZE_OUTPUT: u64 = 512 * 1024 * 1024;

/// [`render_kustomization`], `kubectl kustomize` killed once it has run for `timeout`
/// (`--request-timeout`: remote bases are fetched over the network).
pub fn render_kustomization_within(
    dir: &Path,
    timeout: std::time::Duration,
) -> Result<Vec<Document>, ManifestError> {
    let kubectl = which::which("kubectl").map_err(|_| ManifestError::KubectlMissing)?;
    let failed = |reason: String| ManifestError::Kustomize {
        dir: dir.display().to_string(),
        reason,
    };
    let mut child = Command::new(kubectl)
        .args(["kustomize", "--load-restrictor=LoadRestrictionsNone"])
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    // Read on their own threads, so a full pipe never stalls the child while we wait.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(pipe) = pipe {
                let _ = pipe.take(MAX_KUSTOMIZE_OUTPUT + 1).read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| failed(e.to_string()))? {
            break status;
        }
        if started.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(failed(format!(
                "did not finish within {}s (--request-timeout)",
                timeout.as_secs_f32()
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        let stderr = String::from_utf8_lossy(&stderr);
        return Err(failed(stderr.trim().lines().collect::<Vec<_>>().join(" ")));
    }
    if stdout.len() as u64 > MAX_KUSTOMIZE_OUTPUT {
        return Err(failed(format!(
            "printed more than {} MiB",
            MAX_KUSTOMIZE_OUTPUT / 1024 / 1024
        )));
    }
    let text = String::from_utf8_lossy(&stdout);
    // Lines of kustomize's output point nowhere a person can open.
    let docs = parse_stream(&format!("kustomize build {}", dir.display()), &text, None)?;
    Ok(docs
        .into_iter()
        .map(|doc| Document {
            location: None,
            ..doc
        })
        .collect())
}

/// The Key Vaults a SOPS-encrypted document's data keys are in.
fn sops_key_vaults(value: &Value) -> impl Iterator<Item = String> + '_ {
    value
        .pointer("/sops/azure_kv")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|key| {
            key.get("vault_url")
                .and_then(Value::as_str)
                .unwrap_or("an unnamed vault")
                .trim_end_matches('/')
                .to_string()
        })
}

fn live_only(what: &str) -> String {
    format!("manifest mode: {what} need a live cluster")
}

/// Everything the snapshot takes from one object.
#[derive(Debug, Clone)]
struct Facts {
    sops_key_vaults: Vec<String>,
    silenced: Option<(ObjectRef, Vec<String>)>,
    object: ObjectRef,
    part: Part,
}

/// The part of the snapshot an object is.
#[derive(Debug, Clone)]
enum Part {
    Workload(Box<Workload>),
    PodIdentityBinding(PodIdentityBinding),
    /// An AzureIdentity: its namespace and name, and its client ID.
    PodIdentity((String, String), Option<String>),
    DeclaredIdentity(DeclaredIdentity),
    DeclaredCredential(DeclaredCredential),
    DeclaredRoleAssignment(DeclaredRoleAssignment),
    ServiceAccount(ServiceAccount),
    ConfigMap(ConfigMapInfo),
    Secret(SecretInfo),
    Flux(Box<FluxObject>),
    Resource(DeclaredResource),
    Nothing,
}

/// What the snapshot takes from `value`, an object whose namespace, when it names none, is
/// `flux_namespace`.
fn facts_of(value: &Value, flux_namespace: &str) -> Facts {
    let api_version = extract::api_version_of(value);
    let group = api_version.split('/').next().unwrap_or_default();
    let part = match (api_version, extract::kind_of(value)) {
        ("apps/v1", "Deployment") => {
            Part::Workload(Box::new(extract::workload(value, flux_namespace)))
        }
        (_, "AzureIdentityBinding") if group == "aadpodidentity.k8s.io" => {
            Part::PodIdentityBinding(extract::pod_identity_binding(value, flux_namespace))
        }
        (_, "AzureIdentity") if group == "aadpodidentity.k8s.io" => {
            let namespace = extract::namespace_of(value).unwrap_or(flux_namespace);
            Part::PodIdentity(
                (namespace.to_string(), extract::name_of(value).to_string()),
                extract::pod_identity_client_id(value),
            )
        }
        (_, "UserAssignedIdentity") if group == "managedidentity.azure.com" => {
            Part::DeclaredIdentity(extract::declared_identity(value, flux_namespace))
        }
        (_, "FederatedIdentityCredential") if group == "managedidentity.azure.com" => {
            Part::DeclaredCredential(extract::declared_credential(value, flux_namespace))
        }
        (_, "RoleAssignment") if group == "authorization.azure.com" => {
            Part::DeclaredRoleAssignment(extract::declared_role_assignment(value, flux_namespace))
        }
        ("v1", "ServiceAccount") => {
            Part::ServiceAccount(extract::service_account(value, flux_namespace))
        }
        ("v1", "ConfigMap") => Part::ConfigMap(extract::config_map(value, flux_namespace)),
        ("v1", "Secret") => Part::Secret(extract::secret(value, flux_namespace)),
        _ => extract::flux_object(value, flux_namespace)
            .map(|object| Part::Flux(Box::new(object)))
            .or_else(|| extract::declared_resource(value, flux_namespace).map(Part::Resource))
            .unwrap_or(Part::Nothing),
    };
    Facts {
        sops_key_vaults: sops_key_vaults(value).collect(),
        silenced: extract::silenced_checks(value, flux_namespace),
        object: extract::object_ref_of(value, flux_namespace),
        part,
    }
}

/// The snapshot of a set of manifests. Objects without a namespace are read as being in the
/// Flux namespace, as they are in a flux-system folder that a kustomization namespaces; the
/// documents read down to their facts were read in that same namespace.
pub fn snapshot(docs: Vec<Document>, inputs: Vec<String>, flux_namespace: &str) -> Snapshot {
    let mut snapshot = Snapshot::new(Source::Manifests { inputs }, flux_namespace);
    let mut controllers = Vec::new();
    let mut workloads = Vec::new();
    let mut service_accounts = Vec::new();
    let mut config_maps = Vec::new();
    let mut secrets = Vec::new();
    let mut identities = std::collections::BTreeMap::new();
    for doc in docs {
        let facts = match doc.body {
            Body::Whole(value) => facts_of(&value, flux_namespace),
            Body::Read(read) => read.facts,
        };
        snapshot.sops_key_vaults.extend(facts.sops_key_vaults);
        if let Some((subject, checks)) = facts.silenced {
            snapshot.silenced.insert(subject, checks);
        }
        if let Some(location) = doc.location {
            snapshot.origins.entry(facts.object).or_insert(location);
        }
        match facts.part {
            Part::Workload(workload) => {
                if workload.namespace == flux_namespace && workload.is_flux_controller() {
                    controllers.push(*workload);
                } else {
                    workloads.push(*workload);
                }
            }
            Part::PodIdentityBinding(binding) => snapshot.pod_identity_bindings.push(binding),
            Part::PodIdentity(key, client_id) => {
                identities.insert(key, client_id);
            }
            Part::DeclaredIdentity(identity) => snapshot.declared_identities.push(identity),
            Part::DeclaredCredential(credential) => {
                snapshot.declared_credentials.push(credential);
            }
            Part::DeclaredRoleAssignment(assignment) => {
                snapshot.declared_role_assignments.push(assignment);
            }
            Part::ServiceAccount(account) => service_accounts.push(account),
            Part::ConfigMap(config_map) => config_maps.push(config_map),
            Part::Secret(secret) => secrets.push(secret),
            Part::Flux(object) => snapshot.flux.objects.push(*object),
            Part::Resource(resource) => snapshot.declared_resources.push(resource),
            Part::Nothing => {}
        }
    }
    for binding in &mut snapshot.pod_identity_bindings {
        binding.client_id = identities
            .get(&(binding.namespace.clone(), binding.identity.clone()))
            .cloned()
            .flatten();
    }
    snapshot.flux.read = true;
    snapshot.controllers = Fact::Known(controllers);
    snapshot.workloads = Fact::Known(workloads);
    snapshot.service_accounts = Fact::Known(service_accounts.into());
    snapshot.config_maps = Fact::Known(config_maps);
    snapshot.secrets = Fact::Known(secrets);
    snapshot.pods = Fact::Unknown(live_only("running pods"));
    snapshot.webhooks = Fact::Unknown(live_only("the installed webhooks"));
    snapshot.issuer = Fact::Unknown(live_only("the service-account issuer and its reachability"));
    snapshot.cluster = Fact::Unknown(live_only("the cluster's version and platform"));
    snapshot.local = Fact::Unknown("manifest mode reads no kubeconfig".to_string());
    snapshot
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_and_keeps_line_numbers() {
        let text = "a: 1\n---\nb: 2\n--- # comment\nc: 3\n---\n";
        let docs = split_documents(text);
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].0, 1);
        assert_eq!(docs[1].0, 2);
    }

    #[test]
    fn parse_error_names_file_and_line() {
        let text = "kind: A\n---\nkind: B\nmetadata: [unclosed\n";
        let err = parse_stream("x.yaml", text, None).unwrap_err().to_string();
        assert!(err.starts_with("x.yaml:"), "{err}");
        let line: u64 = err.split(':').nth(1).unwrap().parse().unwrap();
        assert!((3..=5).contains(&line), "{err}");
    }

    #[test]
    fn large_streams_keep_order_and_report_the_first_error() {
        let doc = |i: usize| format!("---\nkind: ConfigMap\nmetadata: {{name: cm-{i}}}\n");
        let text: String = (0..2000).map(doc).collect();
        let docs = parse_stream("big.yaml", &text, None).unwrap();
        let names: Vec<&str> = docs
            .iter()
            .filter_map(|d| d.value()?["metadata"]["name"].as_str())
            .collect();
        let expected: Vec<String> = (0..2000).map(|i| format!("cm-{i}")).collect();
        assert_eq!(names, expected);
        let broken = text
            .replace("{name: cm-1900}", "[unclosed")
            .replace("{name: cm-1500}", "[unclosed");
        let err = parse_stream("big.yaml", &broken, Some("flux-system"))
            .unwrap_err()
            .to_string();
        let line: u64 = err.split(':').nth(1).unwrap().parse().unwrap();
        assert!((4502..=4504).contains(&line), "{err}");
    }

    #[test]
    fn kinds_no_check_reads_are_not_parsed() {
        let text = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: [broken\n---\nkind: \"ServiceAccount\"\napiVersion: v1\nmetadata: {name: a}\n---\nmetadata:\n  kind: Namespace\nkind: Secret\napiVersion: v1\n";
        let docs = parse_stream("k.yaml", text, None).unwrap();
        let kinds: Vec<&str> = docs
            .iter()
            .map(|d| d.value().unwrap()["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, vec!["ServiceAccount", "Secret"]);
    }

    #[test]
    fn lists_are_expanded() {
        let text = "kind: List\napiVersion: v1\nitems:\n- kind: ServiceAccount\n  apiVersion: v1\n  metadata: {name: a}\n- kind: ServiceAccount\n  apiVersion: v1\n  metadata: {name: b}\n";
        for flux_namespace in [None, Some("flux-system")] {
            let docs = parse_stream("l.yaml", text, flux_namespace).unwrap();
            let names: Vec<_> = docs.iter().map(|d| d.identity().2).collect();
            assert_eq!(names, ["a", "b"]);
        }
    }

    #[test]
    fn sops_key_vault_documents_are_noticed() {
        let text = "apiVersion: v1\nkind: Secret\nsops:\n  azure_kv:\n  - vault_url: https://v.vault.azure.net\n";
        let docs = parse_stream("s.yaml", text, Some("flux-system")).unwrap();
        assert!(matches!(docs[0].body, Body::Read(_)));
        let snap = snapshot(docs, vec![], "flux-system");
        assert_eq!(
            snap.sops_key_vaults.iter().collect::<Vec<_>>(),
            ["https://v.vault.azure.net"]
        );
    }

    #[test]
    fn objects_read_where_parsed_give_the_snapshot_of_whole_ones() {
        // Every kind the snapshot takes, with and without a namespace, a silenced check, a
        // SOPS vault, a list and a controller.
        let text = concat!(
            include_str!("../../examples/broken-aks/flux-system.yaml"),
            "\n---\n",
            include_str!("../../examples/broken-aks/sources.yaml"),
            "\n---\napiVersion: v1\nkind: List\nitems:\n",
            "- {apiVersion: v1, kind: ConfigMap, metadata: {name: c, namespace: apps}, data: {a: b}}\n",
            "- {apiVersion: v1, kind: Secret, metadata: {name: s}, sops: {azure_kv: [{vault_url: 'https://v.vault.azure.net/'}]}}\n",
            "---\napiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentity\nmetadata: {name: i}\nspec: {clientID: x}\n",
            "---\napiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentityBinding\nmetadata: {name: b}\nspec: {azureIdentity: i, selector: s}\n",
            "---\napiVersion: managedidentity.azure.com/v1api20230131\nkind: UserAssignedIdentity\nmetadata: {name: u}\n",
            "---\napiVersion: managedidentity.azure.com/v1api20230131\nkind: FederatedIdentityCredential\nmetadata: {name: f}\n",
            "---\napiVersion: authorization.azure.com/v1api20220401\nkind: RoleAssignment\nmetadata: {name: r, annotations: {azflux.io/ignore: AZF001}}\n",
            "---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa, namespace: apps}\n",
        );
        let whole = parse_stream("all.yaml", text, None).unwrap();
        let read = parse_stream("all.yaml", text, Some("flux-system")).unwrap();
        assert!(read.iter().any(|d| matches!(d.body, Body::Read(_))));
        assert!(whole.iter().all(|d| matches!(d.body, Body::Whole(_))));
        assert_eq!(
            whole.iter().map(Document::identity).collect::<Vec<_>>(),
            read.iter().map(Document::identity).collect::<Vec<_>>()
        );
        let whole = snapshot(whole, vec![], "flux-system");
        let read = snapshot(read, vec![], "flux-system");
        assert!(!read.flux.objects.is_empty() && !read.declared_identities.is_empty());
        assert_eq!(format!("{whole:?}"), format!("{read:?}"));
    }
}
