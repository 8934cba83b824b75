//! The kubeconfig side of `clusters sync`: a cluster's credential kubeconfig turned into a
//! cluster, a user and a context entry that log in through kubelogin, merged into the user's
//! kubeconfig with minimal text edits (`plan::kustomization::upsert_item`), and written with a
//! backup (`apply::files` does the writing).
//!
//! Entries are emitted with every string double-quoted: a JSON string is a YAML scalar that
//! YAML 1.1 (kubectl) and 1.2 (kube-rs) read the same, so a cluster named `yes` or an ID like
//! `1e10` stays a string.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::LoginMode;
use crate::plan::kustomization::{EditError, set_scalar, upsert_item};
use crate::wiring::AKS_AAD_SERVER_ID;

/// What kubelogin prints nowhere else: where to get it.
const INSTALL_HINT: &str = "kubelogin is not installed which is required to connect to AAD enabled cluster.\n\nTo learn more, please go to https://aka.ms/aks/kubelogin\n";

/// The names of one cluster's entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub context: String,
    pub cluster: String,
    pub user: String,
}

impl Names {
    /// The context from the template; the cluster entry takes its name, the user entry the
    /// `clusterUser_RG_NAME` form `az aks get-credentials` writes (`clusterAdmin_` for local
    /// admin certificates), so a sync after `az aks get-credentials` updates those entries.
    pub fn new(context: String, resource_group: &str, admin: bool) -> Names {
        let kind = if admin { "clusterAdmin" } else { "clusterUser" };
        Names {
            cluster: context.clone(),
            user: format!("{kind}_{resource_group}_{context}"),
            context,
        }
    }
}

/// How the written user logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// The kubelogin exec plugin in this mode.
    Kubelogin(LoginMode),
    /// The local admin account's certificate, as Resource Manager returned it (`--admin`).
    LocalAdmin,
}

/// The three entries of one cluster, ready to merge.
#[derive(Debug, Clone, PartialEq)]
pub struct Entries {
    pub names: Names,
    /// The API server URL.
    pub server: String,
    cluster: Map<String, Value>,
    user: Value,
}

fn first_entry<'v>(config: &'v Value, list: &str, field: &str) -> Option<&'v Value> {
    config.get(list)?.as_array()?.first()?.get(field)
}

/// The value after `flag` in exec arguments.
fn argument<'v>(args: &'v [Value], flag: &str) -> Option<&'v str> {
    args.iter()
        .position(|a| a.as_str() == Some(flag))
        .and_then(|i| args.get(i + 1))
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty() && !v.starts_with('-'))
}

/// kubelogin's arguments for a login mode, as `kubelogin convert-kubeconfig -l MODE` writes
/// them. Credentials never appear: spn reads the client ID and secret from the environment
/// (`AZURE_CLIENT_ID`/`AZURE_CLIENT_SECRET` or `AAD_SERVICE_PRINCIPAL_CLIENT_ID`/`…_SECRET`),
/// workloadidentity the variables the webhook injects, msi the machine's identity, azurecli the
/// `az login` session (whose tenant it follows).
fn kubelogin_args(mode: LoginMode, server_id: &str, environment: &str, tenant: &str) -> Vec<Value> {
    let mut args = vec![
        "get-token",
        "--login",
        mode.as_str(),
        "--server-id",
        server_id,
    ];
    if mode == LoginMode::Spn {
        args.extend(["--environment", environment, "--tenant-id", tenant]);
    }
    args.into_iter().map(|a| json!(a)).collect()
}

impl Entries {
    /// The entries for a credential kubeconfig from `listClusterUserCredential` (or, for
    /// `LocalAdmin`, `listClusterAdminCredential`). `environment` and `tenant` stand in for
    /// what the credential's exec arguments lack.
    pub fn from_credential(
        yaml: &str,
        names: Names,
        credential: Credential,
        environment: &str,
        tenant: Option<&str>,
    ) -> Result<Entries, String> {
        let config: Value = serde_saphyr::from_str(yaml).map_err(|_| {
            "the credential Resource Manager returned is not a kubeconfig".to_string()
        })?;
        let cluster = first_entry(&config, "clusters", "cluster")
            .and_then(Value::as_object)
            .cloned()
            .ok_or("the credential has no cluster entry")?;
        let server = cluster
            .get("server")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or("the credential's cluster entry has no server")?
            .to_string();
        let returned = first_entry(&config, "users", "user").ok_or("the credential has no user")?;
        let user = match credential {
            Credential::LocalAdmin => returned.clone(),
            Credential::Kubelogin(mode) => {
                let args = returned
                    .pointer("/exec/args")
                    .and_then(Value::as_array)
                    .ok_or("the credential does not log in through kubelogin (no exec arguments); is Entra ID on?")?;
                let server_id = argument(args, "--server-id").unwrap_or(AKS_AAD_SERVER_ID);
                let environment = argument(args, "--environment").unwrap_or(environment);
                let tenant = argument(args, "--tenant-id")
                    .or(tenant)
                    .ok_or("neither the credential nor the cluster names the Entra tenant")?;
                json!({"exec": {
                    "apiVersion": "client.authentication.k8s.io/v1beta1",
                    "command": "kubelogin",
                    "args": kubelogin_args(mode, server_id, environment, tenant),
                    "installHint": INSTALL_HINT,
                    "interactiveMode": "Never",
                    "provideClusterInfo": false,
                }})
            }
        };
        Ok(Entries {
            names,
            server,
            cluster,
            user,
        })
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(m) if m.is_empty() => "{}".into(),
        other => other.to_string(),
    }
}

fn key(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        name.to_string()
    } else {
        Value::from(name).to_string()
    }
}

fn is_block(value: &Value) -> bool {
    match value {
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
        _ => false,
    }
}

/// Block YAML lines for the contents of a mapping or list, at `indent`.
fn emit(value: &Value, indent: usize, out: &mut Vec<String>) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (name, child) in map {
                if is_block(child) {
                    out.push(format!("{pad}{}:", key(name)));
                    emit(child, indent + 2, out);
                } else {
                    out.push(format!("{pad}{}: {}", key(name), scalar(child)));
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                if is_block(item) {
                    let first = out.len();
                    emit(item, indent + 2, out);
                    out[first].replace_range(..indent + 2, &format!("{pad}- "));
                } else {
                    out.push(format!("{pad}- {}", scalar(item)));
                }
            }
        }
        other => out.push(format!("{pad}{}", scalar(other))),
    }
}

/// A named kubeconfig list item (`- name: …` first, then `field:` and its body).
fn item(name: &str, field: &str, body: &Value) -> String {
    let mut lines = vec![format!("- name: {}", Value::from(name))];
    if is_block(body) {
        lines.push(format!("  {field}:"));
        emit(body, 4, &mut lines);
    } else {
        lines.push(format!("  {field}: {}", scalar(body)));
    }
    lines.join("\n") + "\n"
}

fn named<'v>(config: &'v Value, list: &str, name: &str) -> Option<&'v Value> {
    config
        .get(list)?
        .as_array()?
        .iter()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(name))
}

/// Server URLs compared as kubectl would reach them: scheme and host in any case, no trailing
/// slash.
fn same_server(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

/// What a merge did to one cluster's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Updated,
    Unchanged,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Updated => "updated",
            Change::Unchanged => "unchanged",
        }
    }
}

/// Why entries were not merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// The names belong to another cluster's entries, which a sync never touches.
    #[error(
        "the kubeconfig's cluster entry {name:?} points at {existing}, another cluster; choose other names with --context-template"
    )]
    Taken { name: String, existing: String },
    #[error("{0}")]
    Edit(#[from] EditError),
}

/// Merges one cluster's entries into kubeconfig text. The cluster entry keeps settings the
/// user added (`proxy-url`, `tls-server-name`, extensions) and the context its namespace; the
/// user entry is replaced whole, so a change of login mode leaves nothing of the old one.
pub fn merge(text: &str, entries: &Entries) -> Result<(String, Change), MergeError> {
    let current: Value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_saphyr::from_str(text).map_err(|e| {
            MergeError::Edit(EditError::Parse {
                line: e.location().map_or(0, |l| l.line()),
                message: e.to_string().lines().next().unwrap_or_default().to_string(),
            })
        })?
    };
    let names = &entries.names;
    let old_cluster = named(&current, "clusters", &names.cluster).and_then(|e| e.get("cluster"));
    if let Some(existing) = old_cluster
        .and_then(|c| c.get("server"))
        .and_then(Value::as_str)
        .filter(|s| !same_server(s, &entries.server))
    {
        return Err(MergeError::Taken {
            name: names.cluster.clone(),
            existing: existing.to_string(),
        });
    }
    let mut cluster = old_cluster
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for replaced in [
        "server",
        "certificate-authority",
        "certificate-authority-data",
        "insecure-skip-tls-verify",
    ] {
        cluster.remove(replaced);
    }
    cluster.extend(entries.cluster.clone());
    let mut context = named(&current, "contexts", &names.context)
        .and_then(|e| e.get("context"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    context.insert("cluster".into(), json!(names.cluster));
    context.insert("user".into(), json!(names.user));
    let existed = [
        ("clusters", &names.cluster),
        ("users", &names.user),
        ("contexts", &names.context),
    ]
    .iter()
    .any(|(list, name)| named(&current, list, name).is_some());
    let mut edited = text.to_string();
    for (list, name, field, body) in [
        (
            "clusters",
            &names.cluster,
            "cluster",
            Value::Object(cluster),
        ),
        ("users", &names.user, "user", entries.user.clone()),
        (
            "contexts",
            &names.context,
            "context",
            Value::Object(context),
        ),
    ] {
        edited = upsert_item(&edited, &[list], "name", name, &item(name, field, &body))?;
    }
    let change = if edited == text {
        Change::Unchanged
    } else if existed {
        Change::Updated
    } else {
        Change::Added
    };
    Ok((edited, change))
}

/// A kubeconfig that did not exist yet.
pub const NEW_KUBECONFIG: &str = "apiVersion: v1\nkind: Config\npreferences: {}\n";

/// Sets `current-context` when the kubeconfig has none, as `az aks get-credentials` does; an
/// existing choice is the user's and stays.
pub fn default_context(text: &str, context: &str) -> Result<String, EditError> {
    let has_current = serde_saphyr::from_str::<Value>(text)
        .ok()
        .and_then(|v| {
            v.get("current-context")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .is_some_and(|c| !c.is_empty());
    if has_current {
        Ok(text.to_string())
    } else {
        set_scalar(
            text,
            &["current-context"],
            &Value::from(context).to_string(),
        )
    }
}

/// Where `clusters sync` writes: `--kubeconfig`, else the first file of KUBECONFIG (as kubectl
/// writes new entries), else ~/.kube/config.
pub fn target(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    if let Some(first) = std::env::var_os("KUBECONFIG")
        .and_then(|list| std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty()))
    {
        return Ok(first);
    }
    std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .map(|home| PathBuf::from(home).join(".kube").join("config"))
        .ok_or_else(|| "no kubeconfig to write to: pass --kubeconfig, or set HOME".to_string())
}

/// The backup a sync leaves of the file it changed.
pub fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".azflux-backup");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    fn credential(server: &str) -> String {
        format!(
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: aks-prod\ncontexts:\n- context:\n    cluster: aks-prod\n    user: clusterUser_rg_aks-prod\n  name: aks-prod\ncurrent-context: aks-prod\nkind: Config\npreferences: {{}}\nusers:\n- name: clusterUser_rg_aks-prod\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      args:\n      - get-token\n      - --environment\n      - AzurePublicCloud\n      - --server-id\n      - 6dae42f8-4368-4678-94ff-3960e28e3630\n      - --client-id\n      - 80faf920-1908-4b52-b5ef-a8e7bedfc67a\n      - --tenant-id\n      - {TENANT}\n      - --login\n      - devicecode\n      command: kubelogin\n      env: null\n      interactiveMode: IfAvailable\n      provideClusterInfo: false\n",
            ca = base64::engine::general_purpose::STANDARD.encode("-----BEGIN CERTIFICATE-----")
        )
    }

    fn entries(mode: LoginMode) -> Entries {
        Entries::from_credential(
            &credential("https://aks-prod-dns.hcp.westeurope.azmk8s.io:443"),
            Names::new("aks-prod".into(), "rg", false),
            Credential::Kubelogin(mode),
            "AzurePublicCloud",
            None,
        )
        .unwrap()
    }

    fn args(entries: &Entries) -> Vec<String> {
        entries.user["exec"]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn login_modes_get_kubelogins_arguments_and_no_secret() {
        assert_eq!(
            args(&entries(LoginMode::Spn)),
            [
                "get-token",
                "--login",
                "spn",
                "--server-id",
                AKS_AAD_SERVER_ID,
                "--environment",
                "AzurePublicCloud",
                "--tenant-id",
                TENANT
            ]
        );
        assert_eq!(
            args(&entries(LoginMode::Azurecli)),
            [
                "get-token",
                "--login",
                "azurecli",
                "--server-id",
                AKS_AAD_SERVER_ID
            ]
        );
        let wi = entries(LoginMode::Workloadidentity);
        assert_eq!(args(&wi)[2], "workloadidentity");
        assert_eq!(wi.user["exec"]["interactiveMode"], "Never");
        assert!(wi.user["exec"].get("env").is_none());
    }

    #[test]
    fn a_credential_without_kubelogin_is_refused_unless_admin() {
        let local = "clusters:\n- cluster:\n    server: https://x:443\n  name: x\nusers:\n- name: clusterAdmin_rg_x\n  user:\n    client-certificate-data: Y2VydA==\n    client-key-data: a2V5\n";
        let names = || Names::new("x".into(), "rg", true);
        let refused = Entries::from_credential(
            local,
            names(),
            Credential::Kubelogin(LoginMode::Spn),
            "AzurePublicCloud",
            None,
        )
        .unwrap_err();
        assert!(refused.contains("kubelogin"), "{refused}");
        let admin = Entries::from_credential(
            local,
            names(),
            Credential::LocalAdmin,
            "AzurePublicCloud",
            None,
        )
        .unwrap();
        assert_eq!(admin.user["client-key-data"], "a2V5");
        assert_eq!(admin.names.user, "clusterAdmin_rg_x");
    }

    #[test]
    fn merging_adds_then_updates_in_place_then_changes_nothing() {
        let existing = "# my kubeconfig\napiVersion: v1\nkind: Config\nclusters:\n- name: other # keep\n  cluster:\n    server: https://other:443\ncontexts:\n- name: other\n  context:\n    cluster: other\n    user: other\ncurrent-context: other\nusers:\n- name: other\n  user:\n    token: abc\n";
        let spn = entries(LoginMode::Spn);
        let (added, change) = merge(existing, &spn).unwrap();
        assert_eq!(change, Change::Added);
        assert!(added.starts_with(
            "# my kubeconfig\napiVersion: v1\nkind: Config\nclusters:\n- name: other # keep\n"
        ));
        let parsed = kube::config::Kubeconfig::from_yaml(&added).unwrap();
        assert_eq!(parsed.contexts.len(), 2);
        assert_eq!(parsed.current_context.as_deref(), Some("other"));
        let (again, change) = merge(&added, &spn).unwrap();
        assert_eq!(
            (again.as_str(), change),
            (added.as_str(), Change::Unchanged)
        );
        let with_namespace = added.replace(
            "    cluster: \"aks-prod\"\n",
            "    cluster: \"aks-prod\"\n    namespace: \"flux-system\"\n",
        );
        let (switched, change) = merge(&with_namespace, &entries(LoginMode::Azurecli)).unwrap();
        assert_eq!(change, Change::Updated);
        assert!(
            switched.contains("namespace: \"flux-system\""),
            "{switched}"
        );
        assert!(!switched.contains("\"spn\""), "{switched}");
        assert!(switched.contains("- name: other # keep\n"), "{switched}");
    }

    #[test]
    fn another_clusters_entry_of_the_same_name_is_left_alone() {
        let existing =
            "clusters:\n- name: aks-prod\n  cluster:\n    server: https://elsewhere:443\n";
        let err = merge(existing, &entries(LoginMode::Spn)).unwrap_err();
        assert!(
            matches!(err, MergeError::Taken { ref existing, .. } if existing == "https://elsewhere:443"),
            "{err}"
        );
    }

    #[test]
    fn odd_names_stay_strings_for_kubectl_and_kube() {
        let mut odd = entries(LoginMode::Azurecli);
        odd.names = Names::new("yes".into(), "1e10", false);
        let (text, _) = merge(NEW_KUBECONFIG, &odd).unwrap();
        let text = default_context(&text, "yes").unwrap();
        assert!(text.contains("- name: \"yes\"\n"), "{text}");
        assert!(text.contains("current-context: \"yes\""), "{text}");
        let parsed = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(parsed.auth_infos[0].name, "clusterUser_1e10_yes");
        assert_eq!(default_context(&text, "other").unwrap(), text);
    }

    #[test]
    fn the_backup_sits_beside_the_file() {
        assert_eq!(
            backup_path(Path::new("/home/me/.kube/config")),
            Path::new("/home/me/.kube/config.azflux-backup")
        );
    }
}
