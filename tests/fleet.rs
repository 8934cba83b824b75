//! The fleet commands against loopback fakes of Entra ID and Resource Manager
//! (`support::fake_azure`) and of several API servers: discovery paging across subscriptions,
//! `clusters sync` into an existing kubeconfig (comments and other clusters kept, re-sync in
//! place, a file both kube-rs and real `kubectl` load, no secret written), local accounts only
//! with `--admin`, the RBAC binding, the fleet checks, and `doctor` over five contexts of which
//! one never answers.

// Scenario tests read top to bottom, however long.
#![allow(clippy::too_many_lines)]

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::fake_apiserver::{FakeConfig, RunningServer};
use support::fake_azure::{
    AKS_CLUSTER_USER, AzureFault, FakeAzure, LOGIN_OBJECT_ID, Login, READER, Resource,
    RoleAssignment, RunningAzure,
};
use support::flux::{self, TENANT_ID};
use support::run::{Outcome, Sandbox};

const MINOR: u32 = 7;
const SUB: &str = "0b1f6471-1bf0-4dda-aec3-cb9272f09590";
const SUB2: &str = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b";
const LOGIN_CLIENT: &str = "9a0c1b2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d";
const SECRET: &str = "canary-secret-6c1f9e0a7b";
const ACCESS_MARKER: &str = "canaryaccess7d3e";
const KEY_MARKER: &str = "canarylocalkey41f9";
const ISSUER: &str = "https://westeurope.oic.prod-aks.azure.com/72f988bf-86f1-41af-91ab-2d7cd011db47/5c8a3f6b-1d2e-4f5a-9b7c-0d1e2f3a4b5c/";
const AKS_SERVER_ID: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";

fn cluster_id(subscription: &str, group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.ContainerService/managedClusters/{name}"
    )
}

/// A managed cluster; `entra` is `managed`, `rbac` (managed with Azure RBAC), `legacy` or
/// `none`.
fn aks(subscription: &str, group: &str, name: &str, entra: &str) -> Resource {
    let aad = match entra {
        "managed" => json!({"managed": true, "tenantID": TENANT_ID}),
        "rbac" => json!({"managed": true, "enableAzureRBAC": true, "tenantID": TENANT_ID}),
        "legacy" => json!({"managed": false, "clientAppID": "x", "serverAppID": "y"}),
        _ => Value::Null,
    };
    Resource {
        id: cluster_id(subscription, group, name),
        name: name.into(),
        kind: "Microsoft.ContainerService/managedClusters".into(),
        properties: json!({
            "location": "westeurope",
            "kubernetesVersion": "1.33",
            "currentKubernetesVersion": "1.33.2",
            "fqdn": format!("{name}-dns.hcp.westeurope.azmk8s.io"),
            "aadProfile": aad,
            "oidcIssuerProfile": {"enabled": entra != "none"},
            "securityProfile": {"workloadIdentity": {"enabled": entra == "managed"}},
        }),
    }
}

fn role(role: &str, scope: &str) -> RoleAssignment {
    RoleAssignment {
        principal_id: LOGIN_OBJECT_ID.into(),
        role: role.into(),
        scope: scope.into(),
        condition: None,
    }
}

fn azure(resources: Vec<Resource>, roles: Vec<RoleAssignment>) -> FakeAzure {
    FakeAzure {
        tenants: vec![TENANT_ID.into()],
        subscriptions: vec![SUB.into(), SUB2.into()],
        logins: vec![Login {
            tenant_id: TENANT_ID.into(),
            client_id: LOGIN_CLIENT.into(),
            secret: SECRET.into(),
        }],
        resources,
        role_assignments: roles,
        scope: "https://management.azure.com/.default".into(),
        access_token_marker: ACCESS_MARKER.into(),
        local_key_marker: KEY_MARKER.into(),
        ..FakeAzure::default()
    }
}

fn outcome(command: &mut Command) -> Outcome {
    let output = command.output().expect("run kubectl-azflux");
    Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The binary logged in as the service principal, with both Azure endpoints on the fake.
fn azflux(sandbox: &Sandbox, fake: &RunningAzure, args: &[&str]) -> Outcome {
    let mut command = sandbox.command();
    command
        .env("AZURE_CLIENT_ID", LOGIN_CLIENT)
        .env("AZURE_TENANT_ID", TENANT_ID)
        .env("AZURE_CLIENT_SECRET", SECRET)
        .env("AZURE_AUTHORITY_HOST", fake.url())
        .env("AZFLUX_ARM_ENDPOINT", fake.url())
        .args(args);
    outcome(&mut command)
}

fn finding_names(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["name"].as_str().unwrap_or_default(),
                f["subject"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// Whether some line of `text` starts with these words (columns of any width).
fn has_row(text: &str, words: &[&str]) -> bool {
    text.lines().any(|l| {
        l.split_whitespace()
            .take(words.len())
            .eq(words.iter().copied())
    })
}

fn assert_no_secret(what: &str, text: &str) {
    for canary in [SECRET, ACCESS_MARKER, KEY_MARKER] {
        assert!(!text.contains(canary), "{what} holds {canary}:\n{text}");
    }
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn list_pages_through_every_subscription_and_reports_the_fleet_checks() {
    let fake = RunningAzure::start(FakeAzure {
        page_size: Some(2),
        ..azure(
            vec![
                aks(SUB, "rg-weu", "aks-prod", "rbac"),
                aks(SUB, "rg-weu", "aks-stage", "managed"),
                aks(SUB, "rg-old", "aks-legacy", "legacy"),
                aks(SUB2, "rg-dev", "aks-dev", "managed"),
                aks(SUB2, "rg-dev", "aks-local", "none"),
            ],
            vec![
                role(AKS_CLUSTER_USER, &format!("/subscriptions/{SUB}")),
                role(READER, &format!("/subscriptions/{SUB2}")),
            ],
        )
    });
    let sandbox = Sandbox::new();
    sandbox.write(
        "kubeconfig",
        "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster:\n    server: https://AKS-PROD-dns.hcp.westeurope.azmk8s.io:443\ncontexts:\n- name: prod-admin\n  context:\n    cluster: prod\n    user: me\ncurrent-context: prod-admin\nusers:\n- name: me\n  user:\n    token: t\n",
    );
    let kubeconfig = sandbox.path("kubeconfig").display().to_string();
    let out = azflux(
        &sandbox,
        &fake,
        &[
            "clusters",
            "list",
            "--all-subscriptions",
            "-o",
            "json",
            "--kubeconfig",
            &kubeconfig,
        ],
    );
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let report = out.json();
    assert_eq!(report["kind"], "ClusterList");
    assert_eq!(report["subscriptions"], json!([SUB, SUB2]));
    let clusters = report["clusters"].as_array().unwrap();
    let names: Vec<&str> = clusters
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "aks-legacy",
            "aks-prod",
            "aks-stage",
            "aks-dev",
            "aks-local"
        ],
        "every page of both subscriptions, by subscription, group and name"
    );
    let prod = &clusters[1];
    assert_eq!(prod["resourceGroup"], "rg-weu");
    assert_eq!(prod["location"], "westeurope");
    assert_eq!(prod["kubernetesVersion"], "1.33.2");
    assert_eq!(prod["entraId"], "managed");
    assert_eq!(prod["azureRbac"], true);
    assert_eq!(prod["oidcIssuer"], true);
    assert_eq!(prod["workloadIdentity"], false);
    assert_eq!(prod["contexts"], json!(["prod-admin"]));
    assert_eq!(prod["credentialAccess"], "allowed");
    assert_eq!(clusters[3]["credentialAccess"], "denied");
    assert_eq!(clusters[4]["entraId"], "none");
    assert_eq!(clusters[2]["contexts"], json!([]));
    let mut found = finding_names(&report);
    found.sort();
    assert_eq!(
        found,
        [
            "cluster-access-role-missing rg-dev/aks-dev",
            "cluster-access-role-missing rg-dev/aks-local",
            "entra-integration-disabled rg-dev/aks-local",
            "entra-integration-disabled rg-old/aks-legacy",
            "kubelogin-missing kubelogin",
        ]
    );
    let denied = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["subject"]["name"] == "rg-dev/aks-dev")
        .unwrap();
    assert_eq!(
        denied["actions"][0]["command"],
        json!([
            "az",
            "role",
            "assignment",
            "create",
            "--assignee",
            LOGIN_CLIENT,
            "--role",
            "Azure Kubernetes Service Cluster User Role",
            "--scope",
            cluster_id(SUB2, "rg-dev", "aks-dev")
        ])
    );
    let pages = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/managedClusters"))
        .map(|r| r.query.clone().unwrap_or_default())
        .collect::<Vec<_>>();
    assert_eq!(
        pages.len(),
        3,
        "three clusters in two pages of two, two clusters in one: {pages:?}"
    );
    assert!(pages.iter().any(|q| q.contains("skiptoken")), "{pages:?}");

    let text = azflux(
        &sandbox,
        &fake,
        &[
            "clusters",
            "list",
            "--subscription",
            SUB,
            "--name-pattern",
            "AKS-*",
            "--resource-group",
            "rg-weu",
            "--kubeconfig",
            &kubeconfig,
        ],
    );
    assert_eq!(text.code, 1, "kubelogin is missing: {}", text.stdout);
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert!(lines[0].starts_with("SUBSCRIPTION"), "{}", text.stdout);
    assert!(
        lines[1].contains("aks-prod") && lines[1].ends_with("prod-admin"),
        "{}",
        text.stdout
    );
    assert!(lines[2].contains("aks-stage"), "{}", text.stdout);
    assert!(
        text.stdout.contains("2 cluster(s) in 1 subscription(s)"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("AZF100 kubelogin-missing"),
        "{}",
        text.stdout
    );
    assert_no_secret("list output", &format!("{}{}", out.stdout, text.stdout));
}

#[test]
fn an_unreadable_subscription_is_named_and_the_rest_still_listed() {
    let fake = RunningAzure::start(FakeAzure {
        faults: vec![AzureFault::new(
            &format!("/subscriptions/{SUB2}/providers/Microsoft.ContainerService"),
            403,
            "AuthorizationFailed",
            "The client does not have authorization to perform action 'Microsoft.ContainerService/managedClusters/read'.",
        )],
        ..azure(
            vec![
                aks(SUB, "rg", "aks-a", "managed"),
                aks(SUB2, "rg", "aks-b", "managed"),
            ],
            vec![role(AKS_CLUSTER_USER, &format!("/subscriptions/{SUB}"))],
        )
    });
    let sandbox = Sandbox::new();
    sandbox.stub_kubelogin("unused");
    let out = azflux(&sandbox, &fake, &["clusters", "list", "-o", "json"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let report = out.json();
    assert_eq!(report["clusters"].as_array().unwrap().len(), 1);
    assert!(
        out.stderr.contains(&format!(
            "could not list the AKS clusters of subscription {SUB2}: GET /subscriptions/{SUB2}/providers/Microsoft.ContainerService/managedClusters: HTTP 403 AuthorizationFailed"
        )),
        "{}",
        out.stderr
    );
}

/// Two Entra ID clusters behind fake API servers, one legacy, one with local accounts only.
struct Fleet {
    servers: Vec<RunningServer>,
    azure: RunningAzure,
    sandbox: Sandbox,
}

fn fleet(extra_roles: Vec<RoleAssignment>, faults: Vec<AzureFault>) -> Fleet {
    let servers: Vec<RunningServer> = (0..2)
        .map(|_| {
            RunningServer::start(FakeConfig {
                objects: flux::healthy_aks(MINOR),
                issuer: Some(ISSUER.into()),
                ..FakeConfig::default()
            })
        })
        .collect();
    let mut roles = vec![role(AKS_CLUSTER_USER, &format!("/subscriptions/{SUB}"))];
    roles.extend(extra_roles);
    let config = FakeAzure {
        api_servers: vec![
            (cluster_id(SUB, "rg-weu", "aks-prod"), servers[0].url()),
            (cluster_id(SUB2, "rg-dev", "aks-dev"), servers[1].url()),
        ],
        faults,
        ..azure(
            vec![
                aks(SUB, "rg-weu", "aks-prod", "rbac"),
                aks(SUB2, "rg-dev", "aks-dev", "managed"),
                aks(SUB, "rg-old", "aks-legacy", "legacy"),
                aks(SUB2, "rg-dev", "aks-local", "none"),
            ],
            roles,
        )
    };
    let sandbox = Sandbox::new();
    sandbox.stub_kubelogin("kubelogin-token");
    Fleet {
        servers,
        azure: RunningAzure::start(config),
        sandbox,
    }
}

/// A kubeconfig someone has used for a while: comments, another cluster, their own context.
const EXISTING: &str = "# Work clusters. Do not share.\napiVersion: v1\nkind: Config\nclusters:\n# the kind cluster on my laptop\n- name: kind-dev\n  cluster:\n    server: https://127.0.0.1:6443 # kind\n    insecure-skip-tls-verify: true\ncontexts:\n- name: kind-dev\n  context:\n    cluster: kind-dev\n    user: kind-dev\n    namespace: apps\ncurrent-context: kind-dev\npreferences: {}\nusers:\n- name: kind-dev\n  user:\n    token: kind-token-123\n# end of my entries\n";

/// Every line of `before` is in `after`, in the same order.
fn keeps_every_line(before: &str, after: &str) {
    let mut rest = after.lines();
    for line in before.lines() {
        assert!(
            rest.any(|l| l == line),
            "line {line:?} lost or moved:\n{after}"
        );
    }
}

#[test]
fn sync_merges_into_an_existing_kubeconfig_then_doctor_reads_the_fleet() {
    let fleet = fleet(
        vec![role(AKS_CLUSTER_USER, &format!("/subscriptions/{SUB2}"))],
        Vec::new(),
    );
    let sandbox = &fleet.sandbox;
    let path = sandbox.write("kube/config", EXISTING);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let kubeconfig = path.display().to_string();
    let sync = |login: &str| {
        azflux(
            sandbox,
            &fleet.azure,
            &[
                "clusters",
                "sync",
                "--all-subscriptions",
                "--login",
                login,
                "--kubeconfig",
                &kubeconfig,
            ],
        )
    };
    let first = sync("spn");
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    let written = std::fs::read_to_string(&path).unwrap();
    keeps_every_line(EXISTING, &written);
    assert!(
        first.stdout.contains("(written, previous version in "),
        "{}",
        first.stdout
    );
    for row in [
        ["added", "aks-prod", "rg-weu/aks-prod", "kubelogin"],
        ["added", "aks-dev", "rg-dev/aks-dev", "kubelogin"],
        ["skipped", "aks-legacy", "rg-old/aks-legacy", "legacy"],
        ["skipped", "aks-local", "rg-dev/aks-local", "no"],
    ] {
        assert!(
            has_row(&first.stdout, &row),
            "{row:?} missing:\n{}",
            first.stdout
        );
    }
    for line in [
        "2 added, 0 updated, 0 unchanged, 2 skipped, 0 failed",
        "next: kubectl azflux doctor --contexts aks-prod,aks-dev",
    ] {
        assert!(
            first.stdout.contains(line),
            "{line:?} missing:\n{}",
            first.stdout
        );
    }
    assert!(
        first.stdout.contains("AZF102 entra-integration-disabled"),
        "{}",
        first.stdout
    );
    let backup = sandbox.path("kube/config.azflux-backup");
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), EXISTING);
    #[cfg(unix)]
    {
        assert_eq!(
            mode(&path),
            0o644,
            "the file keeps its mode, as kubectl keeps it"
        );
        assert_eq!(mode(&backup), 0o600, "the backup is the owner's alone");
    }
    assert_no_secret("the kubeconfig", &written);
    assert_no_secret(
        "the sync output",
        &format!("{}{}", first.stdout, first.stderr),
    );
    assert!(!written.contains("client-secret"), "{written}");
    assert!(!written.contains("devicecode"), "{written}");

    // kubectl reads the merged file; its view has the old entries and the new ones.
    let view = Command::new("kubectl")
        .args(["config", "view", "--kubeconfig", &kubeconfig, "-o", "json"])
        .output()
        .expect("kubectl");
    assert!(
        view.status.success(),
        "{}",
        String::from_utf8_lossy(&view.stderr)
    );
    let view: Value = serde_json::from_slice(&view.stdout).unwrap();
    let contexts: Vec<&str> = view["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        contexts,
        ["aks-dev", "aks-prod", "kind-dev"],
        "kubectl sorts by name"
    );
    assert_eq!(view["current-context"], "kind-dev");
    let users = view["users"].as_array().unwrap();
    let prod_user = users
        .iter()
        .find(|u| u["name"] == "clusterUser_rg-weu_aks-prod")
        .expect("the prod user");
    assert_eq!(
        prod_user["user"]["exec"]["args"],
        json!([
            "get-token",
            "--login",
            "spn",
            "--server-id",
            AKS_SERVER_ID,
            "--environment",
            "AzurePublicCloud",
            "--tenant-id",
            TENANT_ID
        ])
    );
    assert_eq!(prod_user["user"]["exec"]["command"], "kubelogin");
    assert_eq!(prod_user["user"]["exec"]["interactiveMode"], "Never");
    let servers: Vec<&str> = view["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cluster"]["server"].as_str().unwrap())
        .collect();
    assert_eq!(
        servers,
        [
            fleet.servers[1].url().as_str(),
            fleet.servers[0].url().as_str(),
            "https://127.0.0.1:6443",
        ]
    );
    // In the file, the new entries follow the old ones.
    let in_file = kube::config::Kubeconfig::from_yaml(&written).unwrap();
    let names: Vec<&str> = in_file.contexts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["kind-dev", "aks-prod", "aks-dev"]);
    let asked: Vec<String> = fleet
        .azure
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/listClusterUserCredential"))
        .map(|r| r.query.clone().unwrap_or_default())
        .collect();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(asked.iter().all(|q| q.contains("format=exec")), "{asked:?}");

    // The tool's own loading (kube-rs) reads it too: doctor reaches both clusters through
    // kubelogin, which gets the service principal from the environment.
    let doctor = azflux(
        sandbox,
        &fleet.azure,
        &[
            "doctor",
            "--kubeconfig",
            &kubeconfig,
            "--contexts",
            "aks-prod,aks-dev",
            "--azure=never",
            "-o",
            "json",
        ],
    );
    assert_eq!(doctor.code, 0, "{}\n{}", doctor.stdout, doctor.stderr);
    let report = doctor.json();
    assert_eq!(report["kind"], "FleetReport");
    let reports = report["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2);
    assert!(
        reports.iter().all(|r| r["fluxVersion"] == "v2.7.0"),
        "{report}"
    );
    let kubelogin_args = std::fs::read_to_string(sandbox.path("kubelogin.args")).unwrap();
    assert!(
        kubelogin_args.starts_with("get-token --login spn --server-id"),
        "{kubelogin_args}"
    );

    // Again: nothing changes, not even the backup.
    let again = sync("spn");
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), written);
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), EXISTING);
    assert!(again.stdout.contains("(unchanged)"), "{}", again.stdout);
    assert!(
        again
            .stdout
            .contains("0 added, 0 updated, 2 unchanged, 2 skipped"),
        "{}",
        again.stdout
    );

    // Another login mode: the same entries, updated in place.
    let switched = sync("azurecli");
    assert_eq!(switched.code, 0, "{}", switched.stderr);
    let rewritten = std::fs::read_to_string(&path).unwrap();
    keeps_every_line(EXISTING, &rewritten);
    assert_eq!(
        rewritten.matches("- name: ").count(),
        written.matches("- name: ").count()
    );
    assert!(!rewritten.contains("\"spn\""), "{rewritten}");
    assert!(rewritten.contains("\"azurecli\""), "{rewritten}");
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), written);
    assert!(
        switched.stdout.contains("0 added, 2 updated, 0 unchanged"),
        "{}",
        switched.stdout
    );
}

/// The binary as `azflux` runs it, not yet waited for.
fn spawn_sync(fleet: &Fleet, kubeconfig: &str, template: &str) -> std::process::Child {
    fleet
        .sandbox
        .command()
        .env("AZURE_CLIENT_ID", LOGIN_CLIENT)
        .env("AZURE_TENANT_ID", TENANT_ID)
        .env("AZURE_CLIENT_SECRET", SECRET)
        .env("AZURE_AUTHORITY_HOST", fleet.azure.url())
        .env("AZFLUX_ARM_ENDPOINT", fleet.azure.url())
        .args([
            "clusters",
            "sync",
            "--all-subscriptions",
            "--kubeconfig",
            kubeconfig,
            "--context-template",
            template,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kubectl-azflux")
}

#[test]
fn syncs_run_at_once_on_one_kubeconfig_keep_each_others_entries() {
    let fleet = fleet(
        vec![role(AKS_CLUSTER_USER, &format!("/subscriptions/{SUB2}"))],
        Vec::new(),
    );
    for round in 0..3 {
        let path = fleet
            .sandbox
            .write(&format!("round{round}/config"), EXISTING);
        let kubeconfig = path.display().to_string();
        let children: Vec<_> = (0..5)
            .map(|i| spawn_sync(&fleet, &kubeconfig, &format!("{{name}}-{i}")))
            .collect();
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let merged = std::fs::read_to_string(&path).unwrap();
        keeps_every_line(EXISTING, &merged);
        let config = kube::config::Kubeconfig::from_yaml(&merged).unwrap();
        for i in 0..5 {
            for name in ["aks-prod", "aks-dev"] {
                let context = format!("{name}-{i}");
                assert!(
                    config.contexts.iter().any(|c| c.name == context),
                    "round {round}: {context} lost:\n{merged}"
                );
            }
        }
        assert!(
            !fleet
                .sandbox
                .path(&format!("round{round}/config.lock"))
                .exists(),
            "the lock is released"
        );
    }
}

#[test]
fn sync_waits_for_kubectls_lock_and_names_it_when_it_stays() {
    let fleet = fleet(Vec::new(), Vec::new());
    let path = fleet.sandbox.write("kube/config", EXISTING);
    // kubectl's lock on the file, as `kubectl config` holds it while it writes.
    let lock = fleet.sandbox.write("kube/config.lock", "");
    let out = azflux(
        &fleet.sandbox,
        &fleet.azure,
        &[
            "clusters",
            "sync",
            "--all-subscriptions",
            "--kubeconfig",
            &path.display().to_string(),
        ],
    );
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stderr
            .contains(&format!("{} exists: another program", lock.display())),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), EXISTING);
    assert!(
        lock.exists(),
        "another program's lock is not ours to remove"
    );
}

#[test]
#[cfg(unix)]
fn sync_edits_through_links_and_refuses_what_it_must_not_write() {
    use std::os::unix::fs::PermissionsExt;
    let fleet = fleet(Vec::new(), Vec::new());
    let sandbox = &fleet.sandbox;
    let real = sandbox.write("dotfiles/kubeconfig", EXISTING);
    std::fs::create_dir_all(sandbox.path("kube")).unwrap();
    std::os::unix::fs::symlink(&real, sandbox.path("kube/config")).unwrap();
    let sync = |path: &Path| {
        azflux(
            sandbox,
            &fleet.azure,
            &[
                "clusters",
                "sync",
                "--all-subscriptions",
                "--kubeconfig",
                &path.display().to_string(),
            ],
        )
    };
    let linked = sync(&sandbox.path("kube/config"));
    assert!(linked.code < 2, "{}", linked.stderr);
    assert!(
        std::fs::symlink_metadata(sandbox.path("kube/config"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(std::fs::read_to_string(&real).unwrap().contains("aks-prod"));

    let read_only = sandbox.write("ro/config", EXISTING);
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o444)).unwrap();
    let out = sync(&read_only);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(out.stderr.contains("read-only"), "{}", out.stderr);
    assert_eq!(mode(&read_only), 0o444);
    assert_eq!(std::fs::read_to_string(&read_only).unwrap(), EXISTING);

    std::os::unix::fs::symlink("/dev/null", sandbox.path("null-config")).unwrap();
    let out = sync(&sandbox.path("null-config"));
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stderr.contains("a device, not a regular file"),
        "{}",
        out.stderr
    );
    assert!(!sandbox.path("null-config.lock").exists());
}

#[test]
fn local_accounts_are_written_only_with_admin_and_it_says_so() {
    let fleet = fleet(
        vec![
            role(
                support::fake_azure::AKS_CLUSTER_ADMIN,
                &cluster_id(SUB2, "rg-dev", "aks-local"),
            ),
            role(AKS_CLUSTER_USER, &format!("/subscriptions/{SUB2}")),
        ],
        Vec::new(),
    );
    let sandbox = &fleet.sandbox;
    let kubeconfig = sandbox.path("config").display().to_string();
    let plain = azflux(
        sandbox,
        &fleet.azure,
        &[
            "clusters",
            "sync",
            "--all-subscriptions",
            "--name-pattern",
            "aks-local",
            "--kubeconfig",
            &kubeconfig,
            "-o",
            "json",
        ],
    );
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    let report = plain.json();
    assert_eq!(report["clusters"][0]["result"], "skipped");
    assert!(
        report["clusters"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("pass --admin"),
        "{report}"
    );
    assert_eq!(report["changed"], false);
    assert!(
        !sandbox.path("config").exists(),
        "nothing to write, no file"
    );
    assert!(
        !fleet
            .azure
            .requests()
            .iter()
            .any(|r| r.path.contains("Credential")),
        "no credential was even fetched"
    );

    let dry = azflux(
        sandbox,
        &fleet.azure,
        &[
            "clusters",
            "sync",
            "--all-subscriptions",
            "--name-pattern",
            "aks-local",
            "--kubeconfig",
            &kubeconfig,
            "--admin",
            "--dry-run",
        ],
    );
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout.contains("(dry run, nothing written)"),
        "{}",
        dry.stdout
    );
    assert!(
        has_row(&dry.stdout, &["added", "aks-local"]),
        "{}",
        dry.stdout
    );
    assert!(!sandbox.path("config").exists(), "a dry run writes nothing");
    let admin = azflux(
        sandbox,
        &fleet.azure,
        &[
            "clusters",
            "sync",
            "--all-subscriptions",
            "--name-pattern",
            "aks-local",
            "--kubeconfig",
            &kubeconfig,
            "--admin",
        ],
    );
    assert_eq!(admin.code, 0, "{}\n{}", admin.stdout, admin.stderr);
    assert!(
        admin.stdout.contains(
            "warning: the kubeconfig holds the local admin certificate of aks-local: whoever reads it is cluster-admin there"
        ),
        "{}",
        admin.stdout
    );
    assert!(
        admin.stdout.contains("local admin certificate (--admin)"),
        "{}",
        admin.stdout
    );
    let written = std::fs::read_to_string(sandbox.path("config")).unwrap();
    assert!(
        written.contains("- name: \"clusterAdmin_rg-dev_aks-local\""),
        "{written}"
    );
    assert!(written.contains("client-key-data"), "{written}");
    assert!(
        written.contains("current-context: \"aks-local\""),
        "{written}"
    );
    assert_no_secret("the output", &format!("{}{}", admin.stdout, admin.stderr));
    #[cfg(unix)]
    assert_eq!(mode(&sandbox.path("config")), 0o600);
    assert!(
        fleet
            .azure
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/listClusterAdminCredential") && r.status == 200)
    );
}

#[test]
fn missing_roles_skip_clusters_with_a_finding_and_print_rbac_names_the_identity() {
    // Reader alone on the second subscription; the permissions of aks-prod cannot be read, so
    // sync tries and Resource Manager refuses.
    let fleet = fleet(
        vec![role(READER, &format!("/subscriptions/{SUB2}"))],
        vec![AzureFault::new(
            "aks-prod/providers/Microsoft.Authorization/permissions",
            500,
            "InternalServerError",
            "try later",
        )],
    );
    let sandbox = &fleet.sandbox;
    let kubeconfig = sandbox.path("config").display().to_string();
    let out = azflux(
        sandbox,
        &fleet.azure,
        &[
            "clusters",
            "sync",
            "--all-subscriptions",
            "--kubeconfig",
            &kubeconfig,
            "--login",
            "workloadidentity",
            "--print-rbac",
        ],
    );
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        has_row(
            &out.stderr,
            &[
                "skipped",
                "aks-dev",
                "rg-dev/aks-dev",
                "the",
                "login",
                "may",
                "not",
                "run",
                "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action"
            ]
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("AZF101 cluster-access-role-missing"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "az role assignment create --assignee {LOGIN_CLIENT} --role \"Azure Kubernetes Service Cluster User Role\" --scope {}",
            cluster_id(SUB2, "rg-dev", "aks-dev")
        )),
        "{}",
        out.stderr
    );
    assert!(
        has_row(&out.stderr, &["added", "aks-prod"]),
        "the 500 on permissions did not stop the sync: {}",
        out.stderr
    );
    // stdout is the binding, for the one cluster that was synced.
    let yaml = &out.stdout;
    assert_eq!(
        yaml.matches("kind: ClusterRoleBinding").count(),
        1,
        "{yaml}"
    );
    assert!(
        yaml.contains("# aks-prod (resource group rg-weu, subscription"),
        "{yaml}"
    );
    assert!(
        yaml.contains("Azure Kubernetes Service RBAC Reader"),
        "{yaml}"
    );
    assert!(
        yaml.contains(
            "roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: view\n"
        ),
        "{yaml}"
    );
    assert!(
        yaml.contains(&format!("  kind: User\n  name: \"{LOGIN_OBJECT_ID}\"\n")),
        "{yaml}"
    );
    assert!(
        yaml.contains("kubelogin --login workloadidentity"),
        "{yaml}"
    );
    let docs: Vec<Value> = yaml
        .split("\n---\n")
        .skip(1)
        .map(|doc| serde_saphyr::from_str(doc).expect("a YAML document"))
        .collect();
    assert_eq!(docs[0]["subjects"][0]["name"], LOGIN_OBJECT_ID);

    // A 403 on the credential itself counts as the missing role as well.
    let denied = RunningAzure::start(FakeAzure {
        faults: vec![AzureFault::new(
            "/providers/Microsoft.Authorization/permissions",
            500,
            "InternalServerError",
            "down",
        )],
        ..azure(
            vec![aks(SUB, "rg", "aks-x", "managed")],
            vec![role(READER, &format!("/subscriptions/{SUB}"))],
        )
    });
    let refused = azflux(
        sandbox,
        &denied,
        &[
            "clusters",
            "sync",
            "--subscription",
            SUB,
            "--kubeconfig",
            &kubeconfig,
            "-o",
            "json",
        ],
    );
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    let report = refused.json();
    assert_eq!(report["clusters"][0]["result"], "skipped");
    assert_eq!(
        finding_names(&report),
        ["cluster-access-role-missing rg/aks-x"]
    );
    assert!(
        report["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("HTTP 403 AuthorizationFailed"),
        "{report}"
    );
}

/// A TCP listener that accepts and never answers: a cluster that hangs.
fn silent_server() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

#[test]
fn doctor_over_five_contexts_survives_the_one_that_hangs() {
    let mut broken = flux::healthy_aks(MINOR);
    flux::find(&mut broken, "Deployment", "source-controller")["spec"]["template"]["metadata"]
        ["labels"]
        .as_object_mut()
        .unwrap()
        .remove("azure.workload.identity/use");
    let servers: Vec<RunningServer> = [
        flux::healthy_aks(MINOR),
        broken,
        flux::healthy_aks(MINOR),
        flux::healthy_aks(MINOR),
    ]
    .into_iter()
    .map(|objects| {
        RunningServer::start(FakeConfig {
            objects,
            issuer: Some(ISSUER.into()),
            ..FakeConfig::default()
        })
    })
    .collect();
    let (_hanging, hanging_url) = silent_server();
    let names = ["aks-a", "aks-b", "aks-c", "aks-d", "aks-hung"];
    let urls: Vec<String> = servers
        .iter()
        .map(RunningServer::url)
        .chain([hanging_url])
        .collect();
    let clusters: String = names
        .iter()
        .zip(&urls)
        .map(|(name, url)| format!("- name: {name}\n  cluster:\n    server: {url}\n"))
        .collect::<Vec<_>>()
        .concat();
    let contexts: String = names
        .iter()
        .map(|name| format!("- name: {name}\n  context:\n    cluster: {name}\n    user: u\n"))
        .collect::<Vec<_>>()
        .concat();
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n{clusters}contexts:\n{contexts}current-context: aks-a\nusers:\n- name: u\n  user:\n    token: fleet-token-5b1d\n"
    );
    let sandbox = Sandbox::new();
    let kubeconfig = sandbox.write("config", &text).display().to_string();
    let doctor = |extra: &[&str]| {
        let mut args = vec![
            "doctor",
            "--kubeconfig",
            kubeconfig.as_str(),
            // The timeout ends the hung context; the healthy ones must never meet it, even on a
            // machine whose cores are all busy, where one answer of the fake (a debug build)
            // has taken more than 2 s. 10 s keeps the whole run around a minute at worst.
            "--request-timeout",
            "10s",
        ];
        args.extend_from_slice(extra);
        sandbox.run(&args)
    };

    let started = Instant::now();
    let json_run = doctor(&["--all-contexts", "--parallel", "2", "-o", "json"]);
    // A hang guard, not a speed target: without the timeout this run never ends.
    assert!(
        started.elapsed() < Duration::from_secs(180),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(json_run.code, 2, "{}\n{}", json_run.stdout, json_run.stderr);
    let report = json_run.json();
    assert_eq!(report["kind"], "FleetReport");
    assert_eq!(report["schemaVersion"], "v1");
    assert_eq!(
        report["summary"],
        json!({"contexts": 5, "failing": 1, "unreadable": 1})
    );
    let reports = report["reports"].as_array().unwrap();
    let contexts: Vec<&str> = reports
        .iter()
        .map(|r| r["context"].as_str().unwrap())
        .collect();
    assert_eq!(contexts, names);
    for r in &reports[..4] {
        assert_eq!(r["kind"], "DoctorReport");
        assert_eq!(r["fluxVersion"], "v2.7.0", "{r}");
        assert!(r.get("error").is_none(), "{r}");
    }
    assert!(
        finding_names(&reports[1]).contains(&"pod-label-missing source-controller".to_string()),
        "{}",
        reports[1]
    );
    assert!(reports[4]["error"].as_str().is_some(), "{}", reports[4]);
    assert!(
        json_run.stderr.contains("error: context aks-hung:"),
        "{}",
        json_run.stderr
    );
    assert!(!json_run.stdout.contains("fleet-token-5b1d"));

    let table = doctor(&["--all-contexts"]);
    assert_eq!(table.code, 2, "{}", table.stderr);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(lines[0].starts_with("CONTEXT"), "{}", table.stdout);
    assert!(lines[0].contains("TOP PROBLEM"), "{}", table.stdout);
    assert!(
        lines[1].starts_with("aks-a") && lines[1].contains("v2.7.0") && lines[1].ends_with('-'),
        "{}",
        table.stdout
    );
    assert!(
        lines[2].contains("AZF024 pod-label-missing"),
        "{}",
        table.stdout
    );
    assert!(
        lines[5].starts_with("aks-hung") && lines[5].contains("unreadable: "),
        "{}",
        table.stdout
    );
    assert!(
        table
            .stdout
            .contains("5 context(s): 1 with findings at or above error, 1 unreadable"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("=== context aks-b ==="),
        "{}",
        table.stdout
    );
    assert!(
        !table.stdout.contains("=== context aks-a ==="),
        "{}",
        table.stdout
    );

    let worst_is_findings = doctor(&["--contexts", "aks-a,aks-b", "-o", "json"]);
    assert_eq!(worst_is_findings.code, 1, "{}", worst_is_findings.stderr);
    let clean = doctor(&["--contexts", "aks-c,aks-d,aks-c"]);
    assert_eq!(clean.code, 0, "{}\n{}", clean.stdout, clean.stderr);
    assert_eq!(
        clean
            .stdout
            .lines()
            .filter(|l| l.starts_with("aks-"))
            .count(),
        2
    );
    let unknown = doctor(&["--contexts", "aks-a,nope"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("context(s) nope not found"),
        "{}",
        unknown.stderr
    );
}
