//! `clusters list` and `clusters sync`: find the AKS clusters of one or more subscriptions
//! through Resource Manager, and write kubelogin kubeconfig entries for them. Gathering reads
//! Azure, PATH and the kubeconfig into a [`FleetSnapshot`]; the fleet checks judge it; the
//! kubeconfig edit lives in `entries`.

mod entries;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use futures::stream::{self, StreamExt};
use serde_json::{Value, json};

use self::entries::{Change, Credential, Entries, MergeError, Names};
use crate::apply::files;
use crate::azure::AzureConnection;
use crate::azure::arm::{Arm, ArmError, Bearer};
use crate::azure::clusters::{self, LIST_ADMIN_CREDENTIAL, LIST_USER_CREDENTIAL};
use crate::azure::credential::{self, NoLogin};
use crate::checks::{Diagnosis, FLEET_CHECKS, Status, run_checks};
use crate::cli::DryRun;
use crate::cli::{FailOn, GlobalArgs, OutputFormat};
use crate::kubeconfig::{self, KubeconfigError};
use crate::model::Fact;
use crate::model::fleet::{Access, FleetCluster, FleetSnapshot};
use crate::render::json::SCHEMA_VERSION;
use crate::wiring::{AZURE_PUBLIC, Cloud, host_of};

/// Subscriptions, and then clusters, read at once.
const CONCURRENCY: usize = 8;
/// The environment variable the Azure SDKs and CLIs read for a default subscription.
const ENV_SUBSCRIPTION: &str = "AZURE_SUBSCRIPTION_ID";

#[derive(Debug, Clone, Args)]
pub struct ClustersArgs {
    #[command(subcommand)]
    pub command: ClustersCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ClustersCommand {
    /// List the AKS clusters with their Entra ID, OIDC issuer and workload identity settings
    List(ListArgs),
    /// Write kubelogin kubeconfig entries for the AKS clusters (merged, backed up, mode 0600)
    Sync(SyncArgs),
}

/// Which clusters, and how to reach Azure.
#[derive(Debug, Clone, Args)]
pub struct Selection {
    /// Subscription to search (repeatable; default: AZURE_SUBSCRIPTION_ID when set, else every subscription the login can read)
    #[arg(
        long = "subscription",
        value_name = "ID",
        conflicts_with = "all_subscriptions"
    )]
    pub subscriptions: Vec<String>,
    /// Search every subscription the login can read, even with AZURE_SUBSCRIPTION_ID set
    #[arg(long)]
    pub all_subscriptions: bool,
    /// Only clusters in this resource group (repeatable)
    #[arg(long = "resource-group", value_name = "NAME")]
    pub resource_groups: Vec<String>,
    /// Only clusters whose name matches this pattern (`*` and `?`, any case)
    #[arg(long, value_name = "GLOB")]
    pub name_pattern: Option<String>,
    /// Azure cloud (default: AzurePublicCloud)
    #[arg(long, value_parser = ["AzurePublicCloud", "AzureUSGovernment", "AzureChinaCloud"])]
    pub cloud: Option<String>,
    #[command(flatten)]
    pub connection: AzureConnection,
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Lowest severity that makes the exit code 1
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,
}

/// How kubelogin logs in for the written entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LoginMode {
    /// The Azure CLI's login (`az login`)
    Azurecli,
    /// A service principal from AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or AAD_SERVICE_PRINCIPAL_*) in the environment
    Spn,
    /// Workload identity from the variables the webhook injects (CI in a pod)
    Workloadidentity,
    /// The managed identity of the machine
    Msi,
}

impl LoginMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginMode::Azurecli => "azurecli",
            LoginMode::Spn => "spn",
            LoginMode::Workloadidentity => "workloadidentity",
            LoginMode::Msi => "msi",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// How kubelogin logs in for the written entries (no secret is ever written)
    #[arg(long, value_enum, default_value_t = LoginMode::Azurecli)]
    pub login: LoginMode,
    /// Context name: {name}, {resource_group}, {subscription} and {location} are replaced
    #[arg(long, default_value = "{name}", value_name = "TEMPLATE")]
    pub context_template: String,
    /// Also write clusters without Entra ID, with their local admin certificate (cluster-admin for whoever reads the file)
    #[arg(long)]
    pub admin: bool,
    /// Print the ClusterRoleBinding that gives the synced identity read access (ClusterRole view) in each cluster; the summary goes to stderr
    #[arg(long, conflicts_with = "output")]
    pub print_rbac: bool,
    /// none, client or server: show what would change without writing the kubeconfig; --dry-run alone is client
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "client", default_value_t = DryRun::None, value_name = "STRATEGY")]
    pub dry_run: DryRun,
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Lowest severity that makes the exit code 1
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,
}

pub fn run(program: &'static str, global: &GlobalArgs, args: &ClustersArgs) -> Result<u8, String> {
    let timeout = global
        .connection()?
        .request_timeout
        .unwrap_or(super::doctor::NO_TIMEOUT);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    match &args.command {
        ClustersCommand::List(list) => {
            runtime.block_on(list_command(program, global, list, timeout))
        }
        ClustersCommand::Sync(sync) => {
            runtime.block_on(sync_command(program, global, sync, timeout))
        }
    }
}

/// The fleet as read, the client to read more with, and what could not be read.
struct Gathered {
    fleet: FleetSnapshot,
    arm: Arm,
    cloud: Cloud,
    /// Subscriptions whose clusters could not be listed, with the reason.
    unreadable: Vec<String>,
}

fn no_login(error: NoLogin) -> String {
    match error {
        NoLogin::NotFound(reason) | NoLogin::Unusable(reason) => reason,
    }
}

/// The subscriptions to search: those named, else AZURE_SUBSCRIPTION_ID, else every one the
/// login can read.
async fn subscriptions(arm: &Arm, selection: &Selection) -> Result<Vec<String>, String> {
    if !selection.subscriptions.is_empty() {
        return Ok(selection.subscriptions.clone());
    }
    if !selection.all_subscriptions
        && let Some(one) = std::env::var(ENV_SUBSCRIPTION)
            .ok()
            .filter(|s| !s.trim().is_empty())
    {
        return Ok(vec![one.trim().to_string()]);
    }
    crate::azure::gather::subscriptions(arm)
        .await
        .map_err(|e| format!("could not list the subscriptions the login can read: {e}"))
}

fn selected(cluster: &FleetCluster, selection: &Selection) -> bool {
    (selection.resource_groups.is_empty()
        || selection
            .resource_groups
            .iter()
            .any(|g| g.eq_ignore_ascii_case(&cluster.resource_group)))
        && selection
            .name_pattern
            .as_deref()
            .is_none_or(|p| clusters::glob_matches(p, &cluster.name))
}

/// The contexts of the kubeconfig in use, by the host of their cluster's server. A missing
/// kubeconfig (one `sync` is about to create) has none; an unreadable one is named on stderr
/// and read as none.
fn contexts_by_host(global: &GlobalArgs) -> BTreeMap<String, Vec<String>> {
    if global.kubeconfig.as_deref().is_some_and(|p| !p.exists()) {
        return BTreeMap::new();
    }
    let options = kubeconfig::ConnectionOptions {
        kubeconfig: global.kubeconfig.clone(),
        ..kubeconfig::ConnectionOptions::default()
    };
    let config = match kubeconfig::load_merged(&options) {
        Ok((config, _)) => config,
        Err(KubeconfigError::NotFound) => return BTreeMap::new(),
        Err(e) => {
            eprintln!("warning: {e}; contexts are not matched to clusters");
            return BTreeMap::new();
        }
    };
    let mut by_host: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for context in &config.contexts {
        let Some(server) = context
            .context
            .as_ref()
            .and_then(|c| config.clusters.iter().find(|k| k.name == c.cluster))
            .and_then(|k| k.cluster.as_ref())
            .and_then(|k| k.server.as_deref())
        else {
            continue;
        };
        by_host
            .entry(host_of(server))
            .or_default()
            .push(context.name.clone());
    }
    by_host
}

/// Which action a cluster's credentials need: the user credential, or for a cluster without
/// managed Entra ID synced with `--admin`, the admin one.
fn needed_action(cluster: &FleetCluster, admin: bool) -> &'static str {
    if admin && !cluster.entra.is_managed() {
        LIST_ADMIN_CREDENTIAL
    } else {
        LIST_USER_CREDENTIAL
    }
}

/// Clusters are shown by subscription, resource group and name.
fn fleet_order(cluster: &FleetCluster) -> (String, String, String) {
    (
        cluster.subscription_id.to_ascii_lowercase(),
        cluster.resource_group.to_ascii_lowercase(),
        cluster.name.to_ascii_lowercase(),
    )
}

async fn gather(
    global: &GlobalArgs,
    selection: &Selection,
    timeout: Duration,
    admin: bool,
) -> Result<Gathered, String> {
    selection.connection.validate()?;
    let cloud = selection
        .cloud
        .as_deref()
        .and_then(Cloud::by_name)
        .unwrap_or(AZURE_PUBLIC);
    let endpoints = selection.connection.endpoints(cloud)?;
    let login = credential::login(selection.connection.azure_auth, &endpoints).map_err(no_login)?;
    let token = credential::arm_token(&login, &endpoints).await?;
    let caller = clusters::caller(&token);
    let http = crate::azure::http_client(timeout)?;
    let arm = Arm::new(http, &endpoints.arm, Bearer::new(token));
    let mut searched = subscriptions(&arm, selection).await?;
    searched.sort();
    searched.dedup();
    let listed: Vec<(String, Result<Vec<FleetCluster>, ArmError>)> = stream::iter(&searched)
        .map(|s| async { (s.clone(), clusters::list(&arm, s).await) })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut unreadable = Vec::new();
    let mut found = Vec::new();
    for (subscription, result) in listed {
        match result {
            Ok(list) => found.extend(list.into_iter().filter(|c| selected(c, selection))),
            Err(e) => unreadable.push(format!(
                "could not list the AKS clusters of subscription {subscription}: {e}"
            )),
        }
    }
    unreadable.sort();
    found.sort_by_key(fleet_order);
    let access: Vec<Fact<Access>> = stream::iter(&found)
        .map(|c| clusters::access(&arm, &c.id, needed_action(c, admin)))
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let by_host = contexts_by_host(global);
    for (cluster, access) in found.iter_mut().zip(access) {
        cluster.credential_access = access;
        if let Some(fqdn) = &cluster.fqdn {
            cluster.contexts = by_host
                .get(&fqdn.to_ascii_lowercase())
                .cloned()
                .unwrap_or_default();
        }
    }
    Ok(Gathered {
        fleet: FleetSnapshot {
            login: login.method.to_string(),
            caller,
            subscriptions: searched,
            clusters: found,
            kubelogin: which::which("kubelogin").ok(),
        },
        arm,
        cloud,
        unreadable,
    })
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

fn access_text(access: &Fact<Access>) -> &'static str {
    match access {
        Fact::Known(Access::Allowed) => "allowed",
        Fact::Known(Access::Denied { .. }) => "denied",
        Fact::Unknown(_) => "unknown",
    }
}

fn cluster_json(cluster: &FleetCluster) -> Value {
    let (tenant, azure_rbac) = match &cluster.entra {
        crate::model::fleet::Entra::Managed {
            tenant_id,
            azure_rbac,
        } => (tenant_id.clone(), *azure_rbac),
        _ => (None, false),
    };
    json!({
        "id": cluster.id,
        "name": cluster.name,
        "subscriptionId": cluster.subscription_id,
        "resourceGroup": cluster.resource_group,
        "location": cluster.location,
        "kubernetesVersion": cluster.kubernetes_version,
        "fqdn": cluster.fqdn,
        "entraId": cluster.entra.as_str(),
        "tenantId": tenant,
        "azureRbac": azure_rbac,
        "localAccountsDisabled": cluster.local_accounts_disabled,
        "oidcIssuer": cluster.oidc_issuer,
        "workloadIdentity": cluster.workload_identity,
        "contexts": cluster.contexts,
        "credentialAccess": access_text(&cluster.credential_access),
    })
}

/// The checks and findings of a fleet diagnosis, as in doctor's JSON report.
fn diagnosis_json(diagnosis: &Diagnosis<FleetSnapshot>) -> (Value, Value) {
    let (checks, findings) = crate::render::json::checks_and_findings(diagnosis);
    (json!(checks), json!(findings))
}

/// Failing checks with their findings; nothing when all passed.
fn write_findings(
    out: &mut dyn Write,
    diagnosis: &Diagnosis<FleetSnapshot>,
    program: &str,
) -> std::io::Result<()> {
    for result in &diagnosis.results {
        match &result.status {
            Status::Fail => {}
            Status::Skip(reason) => {
                writeln!(
                    out,
                    "  – {} {} (skipped: {reason})",
                    result.check.id, result.check.name
                )?;
                continue;
            }
            Status::Pass => continue,
        }
        writeln!(
            out,
            "  {} {}: {}",
            result.check.id, result.check.name, result.check.title
        )?;
        for finding in diagnosis
            .findings
            .iter()
            .filter(|f| f.check.id == result.check.id)
        {
            writeln!(out, "      {}: {}", finding.severity, finding.subject)?;
            writeln!(out, "        {}", finding.message)?;
            writeln!(out, "        fix: {}", finding.fix)?;
        }
        writeln!(out, "      see: {program} explain {}", result.check.id)?;
    }
    Ok(())
}

/// Columns padded to their widest cell.
pub(crate) fn write_table(out: &mut dyn Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i + 1 == columns {
                    cell.clone()
                } else {
                    format!("{cell:<width$}", width = widths[i])
                }
            })
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}

fn exit_code(diagnosis: &Diagnosis<FleetSnapshot>, fail_on: FailOn) -> u8 {
    u8::from(diagnosis.worst().is_some_and(|w| w >= fail_on.threshold()))
}

/// Prints what could not be read on stderr; the exit code is then 2.
fn report_unreadable(unreadable: &[String]) -> Option<u8> {
    for line in unreadable {
        eprintln!("error: {line}");
    }
    (!unreadable.is_empty()).then_some(2)
}

async fn list_command(
    program: &'static str,
    global: &GlobalArgs,
    args: &ListArgs,
    timeout: Duration,
) -> Result<u8, String> {
    let gathered = gather(global, &args.selection, timeout, false).await?;
    let fleet = &gathered.fleet;
    let diagnosis = run_checks(FLEET_CHECKS, fleet);
    super::write_stdout(|out| match args.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            let (checks, findings) = diagnosis_json(&diagnosis);
            let doc = json!({
                "schemaVersion": SCHEMA_VERSION,
                "kind": "ClusterList",
                "login": fleet.login,
                "subscriptions": fleet.subscriptions,
                "clusters": fleet.clusters.iter().map(cluster_json).collect::<Vec<_>>(),
                "errors": gathered.unreadable,
                "checks": checks,
                "findings": findings,
            });
            super::write_document(out, args.output, &doc)
        }
        OutputFormat::Text => {
            let mut rows = vec![
                [
                    "SUBSCRIPTION",
                    "RESOURCE GROUP",
                    "NAME",
                    "LOCATION",
                    "VERSION",
                    "ENTRA ID",
                    "OIDC",
                    "WORKLOAD ID",
                    "CREDENTIALS",
                    "CONTEXT",
                ]
                .map(String::from)
                .to_vec(),
            ];
            rows.extend(fleet.clusters.iter().map(|c| {
                vec![
                    c.subscription_id.clone(),
                    c.resource_group.clone(),
                    c.name.clone(),
                    c.location.clone(),
                    c.kubernetes_version.clone().unwrap_or_else(|| "-".into()),
                    c.entra.as_str().to_string(),
                    yes_no(c.oidc_issuer).to_string(),
                    yes_no(c.workload_identity).to_string(),
                    access_text(&c.credential_access).to_string(),
                    if c.contexts.is_empty() {
                        "-".to_string()
                    } else {
                        c.contexts.join(",")
                    },
                ]
            }));
            write_table(out, &rows)?;
            writeln!(
                out,
                "\n{} cluster(s) in {} subscription(s), read with {}",
                fleet.clusters.len(),
                fleet.subscriptions.len(),
                fleet.login
            )?;
            write_findings(out, &diagnosis, program)
        }
    })?;
    Ok(report_unreadable(&gathered.unreadable)
        .unwrap_or_else(|| exit_code(&diagnosis, args.fail_on)))
}

/// `{name}`, `{resource_group}`, `{subscription}`, `{location}` replaced; anything else in
/// braces is refused.
fn context_name(template: &str, cluster: &FleetCluster) -> Result<String, String> {
    let mut name = template
        .replace("{name}", &cluster.name)
        .replace("{resource_group}", &cluster.resource_group)
        .replace("{subscription}", &cluster.subscription_id)
        .replace("{location}", &cluster.location);
    if let Some(start) = name.find('{') {
        let unknown: String = name[start..].chars().take_while(|c| *c != '}').collect();
        return Err(format!(
            "--context-template {template:?}: unknown placeholder {unknown}}} (use {{name}}, {{resource_group}}, {{subscription}}, {{location}})"
        ));
    }
    name = name.trim().to_string();
    if name.is_empty() {
        return Err(format!(
            "--context-template {template:?} gives an empty name"
        ));
    }
    Ok(name)
}

/// What happened to one cluster.
#[derive(Debug, Clone)]
struct Outcome {
    cluster: FleetCluster,
    context: Option<String>,
    result: Result<Change, String>,
    /// A skip that is the cluster's own state (no Entra ID, no role), not a failure to read.
    expected_skip: bool,
}

fn skipped(
    cluster: &FleetCluster,
    context: Option<String>,
    why: String,
    expected: bool,
) -> Outcome {
    Outcome {
        cluster: cluster.clone(),
        context,
        result: Err(why),
        expected_skip: expected,
    }
}

/// A cluster to fetch credentials for, the names of its entries, and how they log in.
type Planned = (FleetCluster, Names, Credential);

/// The clusters to fetch credentials for, and those skipped with the reason.
fn plan_sync(
    fleet: &FleetSnapshot,
    args: &SyncArgs,
) -> Result<(Vec<Planned>, Vec<Outcome>), String> {
    let mut fetch = Vec::new();
    let mut skips = Vec::new();
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    for cluster in &fleet.clusters {
        let context = context_name(&args.context_template, cluster)?;
        if let Some(other) = taken.insert(context.clone(), cluster.id.clone()) {
            return Err(format!(
                "--context-template {:?} gives {context:?} to two clusters ({other} and {}); add {{resource_group}} or {{subscription}}",
                args.context_template, cluster.id
            ));
        }
        let credential = if cluster.entra.is_managed() {
            Credential::Kubelogin(args.login)
        } else if args.admin {
            Credential::LocalAdmin
        } else {
            let why = if cluster.entra == crate::model::fleet::Entra::Legacy {
                "legacy Entra ID integration, which kubelogin cannot use; pass --admin to write its local admin certificate"
            } else {
                "no Entra ID, only a local admin certificate; pass --admin to write it"
            };
            skips.push(skipped(cluster, Some(context), why.to_string(), true));
            continue;
        };
        if let Fact::Known(Access::Denied { action, .. }) = &cluster.credential_access {
            skips.push(skipped(
                cluster,
                Some(context),
                format!("the login may not run {action}"),
                true,
            ));
            continue;
        }
        let names = Names::new(
            context,
            &cluster.resource_group,
            credential == Credential::LocalAdmin,
        );
        fetch.push((cluster.clone(), names, credential));
    }
    Ok((fetch, skips))
}

/// The ClusterRoleBinding that lets the synced identity read each cluster (ClusterRole
/// `view`), one YAML document per cluster, to apply with an administrator's access.
fn rbac_yaml(
    fleet: &FleetSnapshot,
    outcomes: &[Outcome],
    mode: LoginMode,
) -> Result<String, String> {
    let caller = fleet.caller.as_ref().ok_or(
        "cannot tell which identity was synced: the Resource Manager token names no object ID",
    )?;
    let who = if caller.kubernetes_user == caller.object_id {
        "the object ID of the identity this sync logged in as"
    } else {
        "the sign-in name of the user this sync logged in as"
    };
    let mut parts = Vec::new();
    for outcome in outcomes.iter().filter(|o| o.result.is_ok()) {
        let cluster = &outcome.cluster;
        parts.push(format!(
            "# {} (resource group {}, subscription {}): apply with an administrator's access to it\n",
            cluster.name, cluster.resource_group, cluster.subscription_id
        ));
        if let crate::model::fleet::Entra::Managed {
            azure_rbac: true, ..
        } = cluster.entra
        {
            parts.push(format!(
                "# Azure RBAC for Kubernetes is on: `az role assignment create --assignee {} --role \"Azure Kubernetes Service RBAC Reader\" --scope {}` grants the same\n",
                caller.assignee, cluster.id
            ));
        }
        parts.push(format!(
            "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: azflux-fleet-view\n  labels:\n    app.kubernetes.io/managed-by: kubectl-azflux\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: view\nsubjects:\n# {who}; kubelogin --login {} must log in as this identity\n- apiGroup: rbac.authorization.k8s.io\n  kind: User\n  name: {}\n",
            mode.as_str(),
            Value::from(caller.kubernetes_user.as_str())
        ));
    }
    Ok(parts.concat())
}

/// What a sync did, for the summary.
struct Written {
    path: std::path::PathBuf,
    backup: Option<std::path::PathBuf>,
    changed: bool,
}

/// How long a sync waits for another writer's lock on the kubeconfig. A merge takes
/// milliseconds, but syncs started together queue for the lock one after another, and on a
/// machine with every core busy five of them have taken more than 10 s in all.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Merges the fetched entries into the kubeconfig and writes it (unless `dry_run`), under
/// kubectl's lock on the file: read, merge and write happen while no other writer that
/// honours the lock can change it, so concurrent syncs add up instead of losing entries.
fn write_kubeconfig(
    global: &GlobalArgs,
    fetched: Vec<(FleetCluster, Entries)>,
    outcomes: &mut Vec<Outcome>,
    dry_run: DryRun,
) -> Result<Written, String> {
    let path = entries::target(global.kubeconfig.as_deref())?;
    // What must not be written is refused before a lock file is created beside it.
    files::read_existing(&path).map_err(|e| format!("kubeconfig: {e}"))?;
    let _lock = if dry_run.writes() {
        Some(files::KubeconfigLock::acquire(&path, LOCK_WAIT).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let original = files::read_existing(&path).map_err(|e| format!("kubeconfig: {e}"))?;
    let mut text = original
        .as_ref()
        .map_or_else(|| entries::NEW_KUBECONFIG.to_string(), |o| o.text.clone());
    let mut first_context = None;
    for (cluster, entries) in fetched {
        let context = Some(entries.names.context.clone());
        match entries::merge(&text, &entries) {
            Ok((edited, change)) => {
                text = edited;
                first_context.get_or_insert_with(|| entries.names.context.clone());
                outcomes.push(Outcome {
                    cluster,
                    context,
                    result: Ok(change),
                    expected_skip: false,
                });
            }
            Err(MergeError::Taken { name, existing }) => outcomes.push(skipped(
                &cluster,
                context,
                format!(
                    "the kubeconfig's cluster entry {name:?} points at {existing}, another cluster; choose other names with --context-template"
                ),
                true,
            )),
            Err(MergeError::Edit(e)) => {
                return Err(format!(
                    "kubeconfig {}: {e}; nothing was written",
                    path.display()
                ));
            }
        }
    }
    if let Some(context) = &first_context {
        text = entries::default_context(&text, context)
            .map_err(|e| format!("kubeconfig {}: {e}; nothing was written", path.display()))?;
    }
    // A missing file is created only when there is something to put in it.
    let changed = original
        .as_ref()
        .map_or(first_context.is_some(), |o| o.text != text);
    if changed {
        // The loader the tool itself uses must read the result, or nothing is written.
        kube::config::Kubeconfig::from_yaml(&text).map_err(|e| {
            format!(
                "kubeconfig {}: the merged file would not load ({}); nothing was written",
                path.display(),
                kubeconfig::one_line(&e)
            )
        })?;
    }
    let mut backup = None;
    if changed && dry_run.writes() {
        if let Some(original) = &original {
            let backup_path = entries::backup_path(&original.target);
            files::write_own(&backup_path, &original.text)
                .map_err(|e| format!("cannot write the backup: {e}"))?;
            backup = Some(backup_path);
            files::replace(original, &text).map_err(|e| format!("kubeconfig: {e}"))?;
        } else {
            if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            // It holds cluster endpoints and may hold certificates: owner only, from the
            // first byte.
            files::create(&path, &text, 0o600).map_err(|e| format!("kubeconfig: {e}"))?;
        }
    }
    Ok(Written {
        path,
        backup,
        changed,
    })
}

/// A credential fetch, judged.
enum Fetched {
    Entries(Entries),
    /// Resource Manager refused (403): the role is missing, whatever the permissions said.
    Denied(String),
    Failed(String),
}

async fn fetch(
    arm: &Arm,
    cluster: &FleetCluster,
    names: Names,
    credential: Credential,
    environment: &str,
) -> Fetched {
    let admin = credential == Credential::LocalAdmin;
    match clusters::credentials(arm, &cluster.id, admin).await {
        Ok(yaml) => {
            let tenant = match &cluster.entra {
                crate::model::fleet::Entra::Managed { tenant_id, .. } => tenant_id.as_deref(),
                _ => None,
            };
            match Entries::from_credential(&yaml, names, credential, environment, tenant) {
                Ok(entries) => Fetched::Entries(entries),
                Err(why) => Fetched::Failed(format!("credentials of {}: {why}", cluster.name)),
            }
        }
        Err(e) if e.status() == Some(403) => Fetched::Denied(e.to_string()),
        Err(e) => Fetched::Failed(e.to_string()),
    }
}

fn result_text(result: &Result<Change, String>, expected_skip: bool) -> &'static str {
    match result {
        Ok(change) => change.as_str(),
        Err(_) if expected_skip => "skipped",
        Err(_) => "failed",
    }
}

/// Everything a sync did, for its text and JSON summaries.
struct SyncReport<'a> {
    program: &'static str,
    args: &'a SyncArgs,
    written: Written,
    outcomes: Vec<Outcome>,
    diagnosis: Diagnosis<FleetSnapshot>,
    /// What could not be read or written: the exit code is then 2.
    failures: Vec<String>,
}

impl SyncReport<'_> {
    fn count(&self, what: &str) -> usize {
        self.outcomes
            .iter()
            .filter(|o| result_text(&o.result, o.expected_skip) == what)
            .count()
    }

    fn text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let written = &self.written;
        let state = match (
            &written.backup,
            written.changed,
            !self.args.dry_run.writes(),
        ) {
            (_, false, _) => "unchanged".to_string(),
            (_, true, true) => "dry run, nothing written".to_string(),
            (Some(backup), true, false) => {
                format!("written, previous version in {}", backup.display())
            }
            (None, true, false) => "written".to_string(),
        };
        writeln!(out, "Kubeconfig {} ({state})", written.path.display())?;
        let rows: Vec<Vec<String>> = self
            .outcomes
            .iter()
            .map(|outcome| {
                let cluster = &outcome.cluster;
                let how = match &outcome.result {
                    Ok(_) if !cluster.entra.is_managed() => {
                        "local admin certificate (--admin)".to_string()
                    }
                    Ok(_) => format!("kubelogin --login {}", self.args.login.as_str()),
                    Err(why) => why.clone(),
                };
                vec![
                    format!("  {}", result_text(&outcome.result, outcome.expected_skip)),
                    outcome.context.clone().unwrap_or_else(|| "-".into()),
                    format!("{}/{}", cluster.resource_group, cluster.name),
                    how,
                ]
            })
            .collect();
        write_table(out, &rows)?;
        writeln!(
            out,
            "{} added, {} updated, {} unchanged, {} skipped, {} failed",
            self.count("added"),
            self.count("updated"),
            self.count("unchanged"),
            self.count("skipped"),
            self.count("failed")
        )?;
        let admin_written: Vec<&str> = self
            .outcomes
            .iter()
            .filter(|o| o.result.is_ok() && !o.cluster.entra.is_managed())
            .map(|o| o.cluster.name.as_str())
            .collect();
        if !admin_written.is_empty() {
            writeln!(
                out,
                "warning: the kubeconfig holds the local admin certificate of {}: whoever reads it is cluster-admin there",
                admin_written.join(", ")
            )?;
        }
        let synced: Vec<&str> = self
            .outcomes
            .iter()
            .filter(|o| o.result.is_ok())
            .filter_map(|o| o.context.as_deref())
            .collect();
        if !synced.is_empty() {
            writeln!(
                out,
                "next: {} doctor --contexts {}",
                self.program,
                synced.join(",")
            )?;
        }
        write_findings(out, &self.diagnosis, self.program)
    }

    fn json(&self) -> Value {
        let (checks, findings) = diagnosis_json(&self.diagnosis);
        let clusters: Vec<Value> = self
            .outcomes
            .iter()
            .map(|o| {
                let mut item = json!({
                    "id": o.cluster.id,
                    "name": o.cluster.name,
                    "subscriptionId": o.cluster.subscription_id,
                    "resourceGroup": o.cluster.resource_group,
                    "context": o.context,
                    "result": result_text(&o.result, o.expected_skip),
                });
                if let Err(why) = &o.result {
                    item["reason"] = json!(why);
                }
                item
            })
            .collect();
        json!({
            "schemaVersion": SCHEMA_VERSION,
            "kind": "ClusterSync",
            "kubeconfig": self.written.path,
            "backup": self.written.backup,
            "changed": self.written.changed,
            "dryRun": !self.args.dry_run.writes(),
            "login": self.args.login.as_str(),
            "clusters": clusters,
            "errors": self.failures,
            "checks": checks,
            "findings": findings,
        })
    }
}

/// The cloud as kubelogin's `--environment` names it (go-autorest's names), for credentials
/// that do not say.
fn kubelogin_environment(cloud: Cloud) -> &'static str {
    if cloud.name == crate::wiring::AZURE_US_GOVERNMENT.name {
        "AzureUSGovernmentCloud"
    } else {
        cloud.name
    }
}

/// Fetches the planned clusters' credentials; a refusal marks the cluster's access denied in
/// the fleet, so the check reports it.
async fn fetch_all(
    gathered: &mut Gathered,
    plan: Vec<Planned>,
    args: &SyncArgs,
    outcomes: &mut Vec<Outcome>,
) -> Vec<(FleetCluster, Entries)> {
    let environment = kubelogin_environment(gathered.cloud);
    let arm = &gathered.arm;
    let fetched: Vec<(FleetCluster, Fetched)> = stream::iter(plan)
        .map(|(cluster, names, credential)| async move {
            let fetched = fetch(arm, &cluster, names, credential, environment).await;
            (cluster, fetched)
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut merge = Vec::new();
    for (cluster, fetched) in fetched {
        let context = context_name(&args.context_template, &cluster).ok();
        match fetched {
            Fetched::Entries(entries) => merge.push((cluster, entries)),
            Fetched::Denied(detail) => {
                let action = needed_action(&cluster, args.admin).to_string();
                if let Some(known) = gathered
                    .fleet
                    .clusters
                    .iter_mut()
                    .find(|c| c.id == cluster.id)
                {
                    known.credential_access = Fact::Known(Access::Denied {
                        action: action.clone(),
                        detail,
                    });
                }
                outcomes.push(skipped(
                    &cluster,
                    context,
                    format!("the login may not run {action}"),
                    true,
                ));
            }
            Fetched::Failed(why) => outcomes.push(skipped(&cluster, context, why, false)),
        }
    }
    merge
}

async fn sync_command(
    program: &'static str,
    global: &GlobalArgs,
    args: &SyncArgs,
    timeout: Duration,
) -> Result<u8, String> {
    let mut gathered = gather(global, &args.selection, timeout, args.admin).await?;
    let (plan, mut outcomes) = plan_sync(&gathered.fleet, args)?;
    let merge = fetch_all(&mut gathered, plan, args, &mut outcomes).await;
    let written = write_kubeconfig(global, merge, &mut outcomes, args.dry_run)?;
    outcomes.sort_by_key(|o| fleet_order(&o.cluster));
    let mut failures: Vec<String> = gathered.unreadable.clone();
    failures.extend(outcomes.iter().filter_map(|o| match &o.result {
        Err(why) if !o.expected_skip => Some(format!("cluster {}: {why}", o.cluster.name)),
        _ => None,
    }));
    let report = SyncReport {
        program,
        args,
        written,
        outcomes,
        diagnosis: run_checks(FLEET_CHECKS, &gathered.fleet),
        failures,
    };
    if args.print_rbac {
        let yaml = rbac_yaml(&gathered.fleet, &report.outcomes, args.login)?;
        report
            .text(&mut std::io::stderr())
            .map_err(|e| format!("cannot write output: {e}"))?;
        super::write_stdout(|out| out.write_all(yaml.as_bytes()))?;
    } else {
        super::write_stdout(|out| match args.output {
            OutputFormat::Json | OutputFormat::Yaml => {
                super::write_document(out, args.output, &report.json())
            }
            OutputFormat::Text => report.text(out),
        })?;
    }
    Ok(report_unreadable(&report.failures)
        .unwrap_or_else(|| exit_code(&report.diagnosis, args.fail_on)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fleet::Entra;

    fn cluster(name: &str, group: &str) -> FleetCluster {
        let mut cluster = clusters::fleet_cluster(&json!({
            "id": format!("/subscriptions/s1/resourceGroups/{group}/providers/Microsoft.ContainerService/managedClusters/{name}"),
            "name": name, "location": "westeurope",
            "properties": {"aadProfile": {"managed": true, "tenantID": "t"}}
        }));
        cluster.credential_access = Fact::Known(Access::Allowed);
        cluster
    }

    #[test]
    fn context_templates_fill_placeholders_and_refuse_unknown_ones() {
        let c = cluster("aks-prod", "rg-weu");
        assert_eq!(context_name("{name}", &c).unwrap(), "aks-prod");
        assert_eq!(
            context_name("{subscription}-{resource_group}-{name}@{location}", &c).unwrap(),
            "s1-rg-weu-aks-prod@westeurope"
        );
        let err = context_name("{cluster}", &c).unwrap_err();
        assert!(err.contains("unknown placeholder {cluster}"), "{err}");
    }

    fn sync_args(template: &str, admin: bool) -> SyncArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            sync: SyncArgs,
        }
        let mut argv = vec![
            "x".to_string(),
            "--context-template".into(),
            template.into(),
        ];
        if admin {
            argv.push("--admin".into());
        }
        Wrapper::parse_from(argv).sync
    }

    #[test]
    fn the_plan_skips_local_accounts_without_admin_and_refuses_name_clashes() {
        let mut local = cluster("aks-local", "rg");
        local.entra = Entra::Disabled;
        let mut denied = cluster("aks-denied", "rg");
        denied.credential_access = Fact::Known(Access::Denied {
            action: LIST_USER_CREDENTIAL.into(),
            detail: "none".into(),
        });
        let fleet = FleetSnapshot {
            clusters: vec![cluster("aks-a", "rg"), local.clone(), denied],
            ..FleetSnapshot::default()
        };
        let (fetch, skips) = plan_sync(&fleet, &sync_args("{name}", false)).unwrap();
        assert_eq!(fetch.len(), 1);
        assert_eq!(fetch[0].1.user, "clusterUser_rg_aks-a");
        assert_eq!(skips.len(), 2);
        assert!(skips.iter().all(|s| s.expected_skip));
        let (fetch, _) = plan_sync(&fleet, &sync_args("{name}", true)).unwrap();
        assert!(fetch.iter().any(|(c, n, credential)| c.name == "aks-local"
            && *credential == Credential::LocalAdmin
            && n.user == "clusterAdmin_rg_aks-local"));
        let twins = FleetSnapshot {
            clusters: vec![cluster("aks", "rg-a"), cluster("aks", "rg-b")],
            ..FleetSnapshot::default()
        };
        let err = plan_sync(&twins, &sync_args("{name}", false)).unwrap_err();
        assert!(err.contains("two clusters"), "{err}");
        assert!(plan_sync(&twins, &sync_args("{resource_group}-{name}", false)).is_ok());
    }
}
