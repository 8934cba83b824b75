//! Manifest mode: the same snapshot built from YAML files, folders, stdin, or a kustomization
//! rendered the way Flux's kustomize-controller renders it (no load restrictor). Facts only a
//! live cluster has (pods, webhooks, the issuer, the kubeconfig) are marked unknown, so the
//! checks that need them are skipped with that reason.

use std::io::Read;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::model::{Fact, Origin, Snapshot, Source, extract};

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
    pub value: Value,
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
pub fn parse_stream(origin: &str, text: &str) -> Result<Vec<Document>, ManifestError> {
    let parse = |(first_line, doc): &(u64, String)| {
        if skippable(doc) {
            return Ok((0, Vec::new()));
        }
        let values = serde_saphyr::from_multiple_with_options::<Value>(doc, parse_options());
        values
            .map(|v| (content_line(*first_line, doc), v))
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
    let mut out = Vec::new();
    for parsed in parse_all(&split_documents(text), parse) {
        let (line, values) = parsed?;
        let location = Origin {
            path: origin.to_string(),
            line: Some(line),
        };
        for value in values {
            push_document(origin, &location, value, &mut out);
        }
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

/// Parses documents in order, on every core for a large stream: YAML parsing is most of the
/// time doctor spends on a rendered fleet.
fn parse_all<T: Sync, R: Send>(docs: &[T], parse: impl Fn(&T) -> R + Sync) -> Vec<R> {
    const PER_THREAD: usize = 256;
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(docs.len() / PER_THREAD);
    if threads < 2 {
        return docs.iter().map(parse).collect();
    }
    let parse = &parse;
    std::thread::scope(|scope| {
        let workers: Vec<_> = docs
            .chunks(docs.len().div_ceil(threads))
            .map(|chunk| scope.spawn(move || chunk.iter().map(parse).collect::<Vec<R>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

fn push_document(origin: &str, location: &Origin, value: Value, out: &mut Vec<Document>) {
    match value {
        Value::Null => {}
        Value::Object(ref map)
            if map
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k == "List" || k.ends_with("List"))
                && map.get("items").is_some_and(Value::is_array) =>
        {
            if let Some(Value::Array(items)) = map.get("items") {
                for item in items {
                    push_document(origin, location, item.clone(), out);
                }
            }
        }
        other => out.push(Document {
            origin: origin.to_string(),
            location: Some(location.clone()),
            value: other,
        }),
    }
}

pub const NOT_REGULAR: &str = "not a regular file (a FIFO, socket or device is not read)";

/// Reads `-f` files and `-` for stdin; folders are walked by [`super::layout`].
pub fn read_inputs(inputs: &[String]) -> Result<Vec<Document>, ManifestError> {
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
                parse_stream("<stdin>", &text)?
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
        docs.extend(parse_stream(input, &text)?);
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
    let docs = parse_stream(&format!("kustomize build {}", dir.display()), &text)?;
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

/// The snapshot of a set of manifests. Objects without a namespace are read as being in the
/// Flux namespace, as they are in a flux-system folder that a kustomization namespaces.
pub fn snapshot(docs: &[Document], inputs: Vec<String>, flux_namespace: &str) -> Snapshot {
    let mut snapshot = Snapshot::new(Source::Manifests { inputs }, flux_namespace);
    let mut controllers = Vec::new();
    let mut workloads = Vec::new();
    let mut service_accounts = Vec::new();
    let mut config_maps = Vec::new();
    let mut secrets = Vec::new();
    let mut identities = std::collections::BTreeMap::new();
    for doc in docs {
        let value = &doc.value;
        snapshot.sops_key_vaults.extend(sops_key_vaults(value));
        if let Some((subject, checks)) = extract::silenced_checks(value, flux_namespace) {
            snapshot.silenced.insert(subject, checks);
        }
        if let Some(location) = &doc.location {
            snapshot
                .origins
                .entry(extract::object_ref_of(value, flux_namespace))
                .or_insert_with(|| location.clone());
        }
        let api_version = extract::api_version_of(value);
        let group = api_version.split('/').next().unwrap_or_default();
        match (api_version, extract::kind_of(value)) {
            ("apps/v1", "Deployment") => {
                let workload = extract::workload(value, flux_namespace);
                if workload.namespace == flux_namespace && workload.is_flux_controller() {
                    controllers.push(workload);
                } else {
                    workloads.push(workload);
                }
            }
            (_, "AzureIdentityBinding") if group == "aadpodidentity.k8s.io" => snapshot
                .pod_identity_bindings
                .push(extract::pod_identity_binding(value, flux_namespace)),
            (_, "AzureIdentity") if group == "aadpodidentity.k8s.io" => {
                let namespace = extract::namespace_of(value).unwrap_or(flux_namespace);
                identities.insert(
                    (namespace.to_string(), extract::name_of(value).to_string()),
                    extract::pod_identity_client_id(value),
                );
            }
            (_, "UserAssignedIdentity") if group == "managedidentity.azure.com" => snapshot
                .declared_identities
                .push(extract::declared_identity(value, flux_namespace)),
            (_, "FederatedIdentityCredential") if group == "managedidentity.azure.com" => snapshot
                .declared_credentials
                .push(extract::declared_credential(value, flux_namespace)),
            (_, "RoleAssignment") if group == "authorization.azure.com" => snapshot
                .declared_role_assignments
                .push(extract::declared_role_assignment(value, flux_namespace)),
            ("v1", "ServiceAccount") => {
                service_accounts.push(extract::service_account(value, flux_namespace));
            }
            ("v1", "ConfigMap") => config_maps.push(extract::config_map(value, flux_namespace)),
            ("v1", "Secret") => secrets.push(extract::secret(value, flux_namespace)),
            _ => {
                if let Some(object) = extract::flux_object(value, flux_namespace) {
                    snapshot.flux.objects.push(object);
                } else if let Some(resource) = extract::declared_resource(value, flux_namespace) {
                    snapshot.declared_resources.push(resource);
                }
            }
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
        let err = parse_stream("x.yaml", text).unwrap_err().to_string();
        assert!(err.starts_with("x.yaml:"), "{err}");
        let line: u64 = err.split(':').nth(1).unwrap().parse().unwrap();
        assert!((3..=5).contains(&line), "{err}");
    }

    #[test]
    fn large_streams_keep_order_and_report_the_first_error() {
        let doc = |i: usize| format!("---\nkind: ConfigMap\nmetadata: {{name: cm-{i}}}\n");
        let text: String = (0..2000).map(doc).collect();
        let docs = parse_stream("big.yaml", &text).unwrap();
        let names: Vec<&str> = docs
            .iter()
            .filter_map(|d| d.value["metadata"]["name"].as_str())
            .collect();
        let expected: Vec<String> = (0..2000).map(|i| format!("cm-{i}")).collect();
        assert_eq!(names, expected);
        let broken = text
            .replace("{name: cm-1900}", "[unclosed")
            .replace("{name: cm-1500}", "[unclosed");
        let err = parse_stream("big.yaml", &broken).unwrap_err().to_string();
        let line: u64 = err.split(':').nth(1).unwrap().parse().unwrap();
        assert!((4502..=4504).contains(&line), "{err}");
    }

    #[test]
    fn kinds_no_check_reads_are_not_parsed() {
        let text = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: [broken\n---\nkind: \"ServiceAccount\"\napiVersion: v1\nmetadata: {name: a}\n---\nmetadata:\n  kind: Namespace\nkind: Secret\napiVersion: v1\n";
        let docs = parse_stream("k.yaml", text).unwrap();
        let kinds: Vec<&str> = docs
            .iter()
            .map(|d| d.value["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, vec!["ServiceAccount", "Secret"]);
    }

    #[test]
    fn lists_are_expanded() {
        let text = "kind: List\napiVersion: v1\nitems:\n- kind: ServiceAccount\n  apiVersion: v1\n  metadata: {name: a}\n- kind: ServiceAccount\n  apiVersion: v1\n  metadata: {name: b}\n";
        let docs = parse_stream("l.yaml", text).unwrap();
        assert_eq!(docs.len(), 2);
    }

    #[test]
    fn sops_key_vault_documents_are_noticed() {
        let text = "apiVersion: v1\nkind: Secret\nsops:\n  azure_kv:\n  - vault_url: https://v.vault.azure.net\n";
        let docs = parse_stream("s.yaml", text).unwrap();
        let snap = snapshot(&docs, vec![], "flux-system");
        assert_eq!(
            snap.sops_key_vaults.iter().collect::<Vec<_>>(),
            ["https://v.vault.azure.net"]
        );
    }
}
