//! The Azure side against loopback fakes of Entra ID and Resource Manager
//! (`support::fake_azure`) and the fake API server: every Azure check caught and cleared, the
//! probe's success and each decoded refusal, paging, throttling, ARM's error envelope, another
//! cloud, the three login methods, `enable --federate`, and proof that no secret or token ever
//! reaches output or disk.

// Scenario tests read top to bottom, however long.
#![allow(clippy::too_many_lines)]

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use support::fake_apiserver::FakeConfig;
use support::fake_azure::roles::{self, RoleDefinition};
use support::fake_azure::{
    ACR_PULL, AzureFault, Credential, DenyAssignment, FakeAzure, Identity, KEY_VAULT_CRYPTO_USER,
    Login, READER, REPOSITORY_READER, Resource, RoleAssignment, RunningAzure,
    STORAGE_BLOB_DATA_READER,
};
use support::flux::{self, CLIENT_ID, NS, TENANT_ID};
use support::run::{Cluster, Outcome};

const MINOR: u32 = 7;
const SUB: &str = "0b1f6471-1bf0-4dda-aec3-cb9272f09590";
const SUB2: &str = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b";
const LOGIN_CLIENT: &str = "9a0c1b2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d";
/// Every test logs in with this secret, so any test's output could be searched for it.
const SECRET: &str = "canary-secret-6c1f9e0a7b";
const ACCESS_MARKER: &str = "canaryaccess7d3e";
const PRINCIPAL: &str = "5d2a7c1e-8b3f-4e6a-9c0d-1f2e3a4b5c6d";
const ISSUER: &str = "https://westeurope.oic.prod-aks.azure.com/72f988bf-86f1-41af-91ab-2d7cd011db47/5c8a3f6b-1d2e-4f5a-9b7c-0d1e2f3a4b5c/";
const SC_SUBJECT: &str = "system:serviceaccount:flux-system:source-controller";
const PUBLIC_SCOPE: &str = "https://management.azure.com/.default";
const CHINA_SCOPE: &str = "https://management.chinacloudapi.cn/.default";

const AZURE_CHECKS: [&str; 14] = [
    "aks-oidc-issuer-disabled",
    "aks-workload-identity-disabled",
    "issuer-mismatch-cluster",
    "identity-not-found",
    "fic-missing",
    "fic-issuer-mismatch",
    "fic-subject-mismatch",
    "fic-audience-mismatch",
    "fic-limit-reached",
    "role-missing",
    "registry-refuses-arm-tokens",
    "azure-devops-onboarding-unknown",
    "token-exchange-failed",
    "deny-assignment-blocks",
];

fn cluster_id() -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/rg-aks/providers/Microsoft.ContainerService/managedClusters/aks-prod"
    )
}

fn registry_id(name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/rg-acr/providers/Microsoft.ContainerRegistry/registries/{name}"
    )
}

fn aks(issuer: Option<&str>, oidc: bool, workload_identity: bool) -> Resource {
    let mut properties = json!({
        "fqdn": "127.0.0.1",
        "oidcIssuerProfile": {"enabled": oidc},
        "securityProfile": {"workloadIdentity": {"enabled": workload_identity}},
    });
    if let Some(issuer) = issuer {
        properties["oidcIssuerProfile"]["issuerURL"] = json!(issuer);
    }
    Resource {
        id: cluster_id(),
        name: "aks-prod".into(),
        kind: "Microsoft.ContainerService/managedClusters".into(),
        properties,
    }
}

fn registry(name: &str, login_server: &str) -> Resource {
    Resource {
        id: registry_id(name),
        name: name.into(),
        kind: "Microsoft.ContainerRegistry/registries".into(),
        properties: json!({"loginServer": login_server}),
    }
}

fn identity(credentials: Vec<Credential>) -> Identity {
    Identity {
        subscription_id: SUB.into(),
        resource_group: "rg-identities".into(),
        name: "flux-source".into(),
        client_id: CLIENT_ID.into(),
        principal_id: PRINCIPAL.into(),
        tenant_id: TENANT_ID.into(),
        credentials,
    }
}

fn acr_pull_at(scope: &str) -> RoleAssignment {
    RoleAssignment {
        principal_id: PRINCIPAL.into(),
        role: ACR_PULL.into(),
        scope: scope.into(),
        condition: None,
    }
}

/// A cluster and an Azure that agree: everything wired, federated and granted.
struct World {
    objects: Vec<Value>,
    issuer: String,
    token_override: Option<String>,
    azure: FakeAzure,
}

fn healthy() -> World {
    World {
        objects: flux::healthy_aks(MINOR),
        issuer: ISSUER.into(),
        token_override: None,
        azure: FakeAzure {
            tenants: vec![TENANT_ID.into()],
            subscriptions: vec![SUB.into()],
            logins: vec![Login {
                tenant_id: TENANT_ID.into(),
                client_id: LOGIN_CLIENT.into(),
                secret: SECRET.into(),
            }],
            identities: vec![identity(vec![Credential::new(
                "source-controller",
                ISSUER,
                SC_SUBJECT,
            )])],
            resources: vec![
                aks(Some(ISSUER), true, true),
                registry("contoso", "contoso.azurecr.io"),
            ],
            role_assignments: vec![acr_pull_at(&registry_id("contoso"))],
            scope: PUBLIC_SCOPE.into(),
            access_token_marker: ACCESS_MARKER.into(),
            ..FakeAzure::default()
        },
    }
}

struct Running {
    cluster: Cluster,
    azure: RunningAzure,
}

impl World {
    fn start(self) -> Running {
        let cluster = Cluster::start(FakeConfig {
            objects: self.objects,
            issuer: Some(self.issuer),
            token_override: self.token_override,
            ..FakeConfig::default()
        });
        Running {
            cluster,
            azure: RunningAzure::start(self.azure),
        }
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

impl Running {
    /// The binary with the service principal login in its environment.
    fn command(&self) -> Command {
        let mut command = self.cluster.sandbox.command();
        command
            .env("AZURE_CLIENT_ID", LOGIN_CLIENT)
            .env("AZURE_TENANT_ID", TENANT_ID)
            .env("AZURE_CLIENT_SECRET", SECRET);
        command
    }

    fn endpoints(&self) -> Vec<String> {
        vec![
            "--authority-host".into(),
            self.azure.url(),
            "--arm-endpoint".into(),
            self.azure.url(),
        ]
    }

    /// `doctor -o json` against both fakes, logged in with the client secret.
    fn doctor(&self, args: &[&str]) -> Outcome {
        let kubeconfig = self.cluster.kubeconfig.display().to_string();
        let mut command = self.command();
        command
            .args([
                "doctor",
                "-o",
                "json",
                "--kubeconfig",
                &kubeconfig,
                "--azure-auth",
                "client-secret",
            ])
            .args(self.endpoints())
            .args(args);
        outcome(&mut command)
    }

    fn requests_to(&self, path_contains: &str) -> Vec<support::fake_azure::AzureRequest> {
        self.azure
            .requests()
            .into_iter()
            .filter(|r| {
                format!("{}?{}", r.path, r.query.clone().unwrap_or_default())
                    .contains(path_contains)
            })
            .collect()
    }
}

fn azure_findings(out: &Outcome) -> Vec<(String, String, String)> {
    out.findings()
        .into_iter()
        .filter(|(name, _, _)| AZURE_CHECKS.contains(&name.as_str()))
        .collect()
}

fn azure_names(out: &Outcome) -> Vec<String> {
    let mut names: Vec<String> = azure_findings(out).into_iter().map(|(n, _, _)| n).collect();
    names.dedup();
    names
}

fn reason(out: &Outcome, check: &str) -> String {
    out.json()["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == check)
        .and_then(|c| c["reason"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn messages_of(out: &Outcome, check: &str) -> Vec<String> {
    out.json()["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["name"] == check)
        .map(|f| f["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn jwt(claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"fake"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

#[test]
fn healthy_setup_passes_every_azure_check_with_the_documented_calls() {
    let running = healthy().start();
    let out = running.doctor(&["--probe"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(azure_findings(&out).is_empty(), "{:#?}", out.findings());
    for check in AZURE_CHECKS {
        assert_eq!(
            out.status(check),
            "pass",
            "{check}: {}",
            reason(&out, check)
        );
    }
    let calls: Vec<(String, String, String)> = running
        .azure
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path, r.query.unwrap_or_default()))
        .collect();
    let has = |method: &str, path: &str, query: &str| {
        calls
            .iter()
            .any(|(m, p, q)| m == method && p == path && q.contains(query))
    };
    let token_path = format!("/{TENANT_ID}/oauth2/v2.0/token");
    assert!(has("POST", &token_path, ""), "{calls:#?}");
    assert!(has("GET", "/subscriptions", "api-version=2022-12-01"));
    assert!(has(
        "POST",
        "/providers/Microsoft.ResourceGraph/resources",
        "api-version=2024-04-01"
    ));
    let identity_id = identity(vec![]).id();
    assert!(has(
        "GET",
        &format!("{identity_id}/federatedIdentityCredentials"),
        "api-version=2024-11-30"
    ));
    assert!(has(
        "GET",
        &format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments"),
        &format!("api-version=2022-04-01&$filter=principalId%20eq%20%27{PRINCIPAL}%27")
    ));
    assert!(has(
        "GET",
        &format!(
            "/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{ACR_PULL}"
        ),
        "api-version=2022-04-01"
    ));
    assert!(has(
        "GET",
        &format!(
            "{}/providers/Microsoft.Authorization/denyAssignments",
            registry_id("contoso")
        ),
        "api-version=2022-04-01"
    ));
    // Login first, then the exchange the controller would make, both for the ARM scope.
    let tokens = running.requests_to(&token_path);
    assert_eq!(tokens.len(), 2, "{tokens:#?}");
    let login = tokens[0].form();
    assert!(login.contains(&("grant_type".into(), "client_credentials".into())));
    assert!(login.contains(&("scope".into(), PUBLIC_SCOPE.into())));
    let exchange = tokens[1].form();
    assert!(exchange.contains(&("client_id".into(), CLIENT_ID.into())));
    assert!(exchange.contains(&(
        "client_assertion_type".into(),
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()
    )));
    assert!(exchange.contains(&("scope".into(), PUBLIC_SCOPE.into())));
    let minted: Vec<_> = running
        .cluster
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/serviceaccounts/source-controller/token"))
        .collect();
    assert_eq!(minted.len(), 1);
    let body: Value = serde_json::from_str(minted[0].body.as_deref().unwrap_or("{}")).unwrap();
    assert_eq!(
        body["spec"]["audiences"],
        json!(["api://AzureADTokenExchange"])
    );
    assert_eq!(body["spec"]["expirationSeconds"], 600);
}

#[test]
fn without_credentials_the_azure_checks_are_skipped_never_failed() {
    let running = healthy().start();
    let kubeconfig = running.cluster.kubeconfig.display().to_string();
    for extra in [vec![], vec!["--azure"]] {
        let mut args = vec!["doctor", "-o", "json", "--kubeconfig", kubeconfig.as_str()];
        args.extend(extra.iter().copied());
        let out = running.cluster.sandbox.run(&args);
        assert_eq!(out.code, 0, "{}", out.stdout);
        for check in AZURE_CHECKS
            .iter()
            .filter(|c| **c != "token-exchange-failed")
        {
            assert_eq!(out.status(check), "skip", "{check}");
            assert!(
                reason(&out, check).contains("no Azure login"),
                "{}",
                reason(&out, check)
            );
        }
        assert!(reason(&out, "token-exchange-failed").contains("--probe"));
    }
    let never = running.doctor(&["--azure=never"]);
    assert_eq!(never.status("fic-missing"), "skip");
    assert!(reason(&never, "fic-missing").contains("--azure=never"));
    assert!(running.azure.requests().is_empty(), "nothing was read");
    // The default report says it once for every Azure check; -v lists each.
    let text = running
        .cluster
        .sandbox
        .run(&["doctor", "--kubeconfig", &kubeconfig]);
    let skipped: Vec<&str> = text
        .stdout
        .lines()
        .filter(|l| l.contains("no Azure login"))
        .collect();
    assert_eq!(skipped.len(), 1, "{}", text.stdout);
    assert!(
        skipped[0].starts_with("– 13 Azure checks skipped: no Azure login"),
        "{}",
        text.stdout
    );
    let verbose = running
        .cluster
        .sandbox
        .run(&["doctor", "--kubeconfig", &kubeconfig, "-v"]);
    assert!(verbose.stdout.contains("\nAzure\n"), "{}", verbose.stdout);
    assert!(
        verbose
            .stdout
            .contains("AZF064 fic-missing (skipped: no Azure login"),
        "{}",
        verbose.stdout
    );
}

#[test]
fn aks_features_that_are_off_are_reported_with_the_command_that_turns_them_on() {
    let mut world = healthy();
    world.azure.resources[0] = aks(None, false, false);
    let out = world.start().doctor(&[]);
    assert_eq!(out.code, 1);
    let names = azure_names(&out);
    assert!(
        names.contains(&"aks-oidc-issuer-disabled".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"aks-workload-identity-disabled".to_string()));
    let report = out.json();
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "aks-workload-identity-disabled")
        .unwrap();
    assert_eq!(
        finding["subject"],
        json!({"kind": "ManagedCluster", "name": "aks-prod"})
    );
    assert_eq!(
        finding["actions"][0]["command"],
        json!([
            "az",
            "aks",
            "update",
            "--resource-group",
            "rg-aks",
            "--name",
            "aks-prod",
            "--enable-oidc-issuer",
            "--enable-workload-identity"
        ])
    );
    assert_eq!(out.status("issuer-mismatch-cluster"), "skip");
}

#[test]
fn the_cluster_can_be_named_instead_of_found_by_fqdn() {
    let mut world = healthy();
    world.azure.resources[0].properties["fqdn"] =
        json!("aks-prod-dns-12345678.hcp.westeurope.azmk8s.io");
    let running = world.start();
    let unfound = running.doctor(&[]);
    assert_eq!(unfound.status("aks-oidc-issuer-disabled"), "skip");
    assert!(
        reason(&unfound, "aks-oidc-issuer-disabled")
            .contains("no AKS cluster has the API server FQDN 127.0.0.1")
    );
    let named = running.doctor(&["--resource-group", "rg-aks", "--cluster-name", "aks-prod"]);
    assert_eq!(
        named.status("aks-oidc-issuer-disabled"),
        "pass",
        "{}",
        reason(&named, "aks-oidc-issuer-disabled")
    );
    assert!(
        running
            .requests_to(&format!("{}?api-version=2025-10-01", cluster_id()))
            .iter()
            .any(|r| r.method == "GET")
    );
}

#[test]
fn an_aks_issuer_without_the_trailing_slash_is_a_cluster_issuer_mismatch() {
    let mut world = healthy();
    world.azure.resources[0] = aks(Some(ISSUER.trim_end_matches('/')), true, true);
    let out = world.start().doctor(&[]);
    assert_eq!(azure_names(&out), vec!["issuer-mismatch-cluster"]);
    let message = &messages_of(&out, "issuer-mismatch-cluster")[0];
    assert!(
        message.contains("the trailing slash is missing"),
        "{message}"
    );
    assert!(message.contains(ISSUER));
}

#[test]
fn an_unknown_client_id_is_not_found_with_one_query_for_all_identities() {
    let mut world = healthy();
    flux::wire_webhook(&mut world.objects, "kustomize-controller");
    let sa = flux::find(&mut world.objects, "ServiceAccount", "kustomize-controller");
    sa["metadata"]["annotations"]["azure.workload.identity/client-id"] =
        json!("0d9e8f7a-6b5c-4d3e-2f1a-0b9c8d7e6f5a");
    let running = world.start();
    let out = running.doctor(&[]);
    assert_eq!(
        azure_names(&out),
        vec!["identity-not-found"],
        "{:#?}",
        out.findings()
    );
    let findings = azure_findings(&out);
    assert_eq!(
        findings[0].1,
        "flux-system/ServiceAccount/kustomize-controller"
    );
    assert!(
        messages_of(&out, "identity-not-found")[0].contains("0d9e8f7a-6b5c-4d3e-2f1a-0b9c8d7e6f5a")
    );
    let identity_queries = running
        .requests_to("/providers/Microsoft.ResourceGraph/resources")
        .into_iter()
        .filter(|r| r.body.contains("userassignedidentities"))
        .count();
    assert_eq!(identity_queries, 1);
}

#[test]
fn a_missing_federated_credential_is_reported_with_the_command_that_creates_it() {
    let mut world = healthy();
    world.azure.identities[0].credentials = vec![Credential::new(
        "other-cluster",
        "https://oidc.example.com/other/",
        SC_SUBJECT,
    )];
    let out = world.start().doctor(&[]);
    assert_eq!(azure_names(&out), vec!["fic-missing"]);
    let message = &messages_of(&out, "fic-missing")[0];
    assert!(
        message.contains(SC_SUBJECT) && message.contains(ISSUER),
        "{message}"
    );
    assert!(message.contains("another cluster"), "{message}");
    let report = out.json();
    let command = &report["findings"][0]["actions"][0]["command"];
    assert_eq!(command[0], "az");
    assert!(command.as_array().unwrap().iter().any(|c| c == ISSUER));
}

#[test]
fn close_credentials_say_exactly_what_differs() {
    let cases = [
        (
            Credential::new("slash", ISSUER.trim_end_matches('/'), SC_SUBJECT),
            "fic-issuer-mismatch",
            "the trailing slash is missing",
        ),
        (
            Credential::new(
                "case",
                &ISSUER.replace("westeurope", "WestEurope"),
                SC_SUBJECT,
            ),
            "fic-issuer-mismatch",
            "letter case differs",
        ),
        (
            Credential::new("ns", ISSUER, "system:serviceaccount:flux:source-controller"),
            "fic-subject-mismatch",
            "namespace is flux, not flux-system",
        ),
        (
            Credential {
                audiences: vec!["api://AzureADTokenExchangeChina".into()],
                ..Credential::new("aud", ISSUER, SC_SUBJECT)
            },
            "fic-audience-mismatch",
            "'api://AzureADTokenExchange'",
        ),
    ];
    for (credential, check, how) in cases {
        let mut world = healthy();
        world.azure.identities[0].credentials = vec![credential.clone()];
        let out = world.start().doctor(&[]);
        assert_eq!(
            azure_names(&out),
            vec![check],
            "{}: {:#?}",
            credential.name,
            out.findings()
        );
        let message = &messages_of(&out, check)[0];
        assert!(message.contains(how), "{message}");
        assert!(
            message.contains(&format!("federated credential {}", credential.name)),
            "{message}"
        );
    }
}

#[test]
fn twenty_credentials_are_the_limit_and_paging_reads_them_all() {
    let mut world = healthy();
    let mut credentials: Vec<Credential> = (0..20)
        .map(|i| {
            Credential::new(
                &format!("tenant-{i}"),
                ISSUER,
                &format!("system:serviceaccount:team-{i}:flux"),
            )
        })
        .collect();
    world.azure.page_size = Some(6);
    world.azure.identities[0].credentials = credentials.clone();
    let running = world.start();
    let out = running.doctor(&[]);
    let findings = azure_findings(&out);
    assert!(
        findings.contains(&(
            "fic-limit-reached".into(),
            "UserAssignedIdentity/flux-source".into(),
            "error".into()
        )),
        "{findings:#?}"
    );
    assert!(findings.iter().any(|(n, _, _)| n == "fic-missing"));
    assert!(messages_of(&out, "fic-limit-reached")[0].contains(
        "the missing one for system:serviceaccount:flux-system:source-controller cannot be added"
    ));
    let pages = running.requests_to("federatedIdentityCredentials");
    assert_eq!(pages.len(), 4, "20 credentials in pages of 6");
    assert!(
        pages[1]
            .query
            .as_deref()
            .unwrap_or_default()
            .contains("$skiptoken=6")
    );

    credentials[19] = Credential::new("source-controller", ISSUER, SC_SUBJECT);
    let mut world = healthy();
    world.azure.identities[0].credentials = credentials;
    let out = world.start().doctor(&[]);
    assert_eq!(
        azure_findings(&out),
        vec![(
            "fic-limit-reached".into(),
            "UserAssignedIdentity/flux-source".into(),
            "warning".into()
        )]
    );
}

#[test]
fn resource_graph_skip_tokens_and_role_next_links_are_followed() {
    let mut world = healthy();
    world.azure.page_size = Some(2);
    for name in ["fabrikam", "tailspin"] {
        world.objects.push(flux::object(MINOR, "OCIRepository", NS, name, json!({
            "interval": "5m", "url": format!("oci://{name}.azurecr.io/manifests"), "ref": {"tag": "latest"}, "provider": "azure"})));
        world
            .azure
            .resources
            .push(registry(name, &format!("{name}.azurecr.io")));
        world
            .azure
            .role_assignments
            .push(acr_pull_at(&registry_id(name)));
    }
    let running = world.start();
    let out = running.doctor(&[]);
    assert!(azure_findings(&out).is_empty(), "{:#?}", out.findings());
    assert_eq!(out.status("role-missing"), "pass");
    let target_pages: Vec<Value> = running
        .requests_to("/providers/Microsoft.ResourceGraph/resources")
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
        .filter(|b| {
            b["query"]
                .as_str()
                .unwrap_or_default()
                .contains("registries")
        })
        .collect();
    assert_eq!(target_pages.len(), 2, "three registries in pages of two");
    assert_eq!(target_pages[1]["options"]["$skipToken"], "2");
    let role_pages = running.requests_to("roleAssignments");
    assert_eq!(role_pages.len(), 2, "three assignments in pages of two");
    assert!(
        role_pages[1]
            .query
            .as_deref()
            .unwrap_or_default()
            .ends_with("$skiptoken=2")
    );
}

#[test]
fn roles_are_found_at_any_covering_scope_and_missing_ones_reported() {
    let covering = [
        registry_id("contoso"),
        format!("/subscriptions/{SUB}/resourceGroups/RG-ACR"),
        format!("/subscriptions/{SUB}"),
        "/providers/Microsoft.Management/managementGroups/platform".to_string(),
    ];
    for scope in covering {
        let mut world = healthy();
        world.azure.role_assignments = vec![acr_pull_at(&scope)];
        let out = world.start().doctor(&[]);
        assert_eq!(
            out.status("role-missing"),
            "pass",
            "{scope}: {:#?}",
            out.findings()
        );
    }
    let wrong = [
        acr_pull_at(&format!("/subscriptions/{SUB}/resourceGroups/rg-other")),
        RoleAssignment {
            role: STORAGE_BLOB_DATA_READER.into(),
            ..acr_pull_at(&registry_id("contoso"))
        },
    ];
    for assignment in wrong {
        let mut world = healthy();
        world.azure.role_assignments = vec![assignment];
        let out = world.start().doctor(&[]);
        assert_eq!(
            azure_findings(&out),
            vec![(
                "role-missing".into(),
                "flux-system/ServiceAccount/source-controller".into(),
                "error".into()
            )]
        );
        let message = &messages_of(&out, "role-missing")[0];
        assert!(
            message.contains(
                "has no role that allows action Microsoft.ContainerRegistry/registries/pull/read (AcrPull does) on registry contoso"
            ),
            "{message}"
        );
        assert!(
            message.contains("flux-system/OCIRepository/platform"),
            "{message}"
        );
        let report = out.json();
        let command = report["findings"][0]["actions"][0]["command"]
            .as_array()
            .unwrap()
            .clone();
        assert!(
            command.contains(&json!(ACR_PULL)) && command.contains(&json!(registry_id("contoso")))
        );
    }
}

fn abac_registry(name: &str, login_server: &str) -> Resource {
    let mut registry = registry(name, login_server);
    registry.properties["roleAssignmentMode"] = json!("AbacRepositoryPermissions");
    registry
}

/// The condition ACR's documentation gives for limiting a role to one repository.
fn repository_condition(repository: &str) -> String {
    format!(
        "((!(ActionMatches{{'Microsoft.ContainerRegistry/registries/repositories/content/read'}}) AND !(ActionMatches{{'Microsoft.ContainerRegistry/registries/repositories/metadata/read'}})) OR (@Request[Microsoft.ContainerRegistry/registries/repositories:name] StringEqualsIgnoreCase '{repository}'))"
    )
}

#[test]
fn abac_registries_honour_repository_roles_and_not_acr_pull() {
    let with = |role: &str, condition: Option<String>| {
        let mut world = healthy();
        world.azure.resources[1] = abac_registry("contoso", "contoso.azurecr.io");
        world.azure.role_assignments = vec![RoleAssignment {
            role: role.into(),
            condition,
            ..acr_pull_at(&registry_id("contoso"))
        }];
        world.start().doctor(&[])
    };
    // Repository Reader passes, registry wide or limited to the repository the
    // OCIRepository reads (oci://contoso.azurecr.io/manifests/app).
    for condition in [None, Some(repository_condition("manifests/app"))] {
        let out = with(REPOSITORY_READER, condition.clone());
        assert_eq!(
            out.status("role-missing"),
            "pass",
            "{condition:?}: {:#?}",
            out.findings()
        );
    }
    // AcrPull, Owner and Reader carry actions only, which an ABAC registry ignores.
    for role in [ACR_PULL, roles::OWNER, READER] {
        let out = with(role, None);
        assert_eq!(
            azure_findings(&out),
            vec![(
                "role-missing".into(),
                "flux-system/ServiceAccount/source-controller".into(),
                "error".into()
            )],
            "{role}"
        );
        let message = &messages_of(&out, "role-missing")[0];
        assert!(
            message.contains("(Container Registry Repository Reader does) on registry contoso")
                && message.contains("the registry uses ABAC repository permissions, where"),
            "{message}"
        );
        let report = out.json();
        let command = report["findings"][0]["actions"][0]["command"]
            .as_array()
            .unwrap()
            .clone();
        assert!(command.contains(&json!(REPOSITORY_READER)), "{command:?}");
    }
    // A Repository Reader limited to another repository grants nothing here.
    let out = with(
        REPOSITORY_READER,
        Some(repository_condition("manifests/other")),
    );
    let message = &messages_of(&out, "role-missing")[0];
    assert!(
        message.contains("has a condition that excludes repository manifests/app"),
        "{message}"
    );
    // In legacy mode Reader's `*/read` covers the pull action, as ACR's role matrix says.
    let mut world = healthy();
    world.azure.role_assignments = vec![RoleAssignment {
        role: READER.into(),
        ..acr_pull_at(&registry_id("contoso"))
    }];
    assert_eq!(world.start().doctor(&[]).status("role-missing"), "pass");
}

fn refusing_arm_tokens(world: &mut World) {
    world.azure.resources[1].properties["policies"] =
        json!({"azureADAuthenticationAsArmPolicy": {"status": "disabled"}});
}

fn set_image(objects: &mut [Value], controller: &str, tag: &str) {
    let image = format!("ghcr.io/fluxcd/{controller}:{tag}");
    for object in objects.iter_mut() {
        let named = object["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n == controller || n.starts_with(&format!("{controller}-")));
        let containers = match object["kind"].as_str() {
            Some("Deployment") => &mut object["spec"]["template"]["spec"]["containers"],
            Some("Pod") => &mut object["spec"]["containers"],
            _ => continue,
        };
        if named {
            containers[0]["image"] = json!(image);
        }
    }
}

#[test]
fn registries_refusing_arm_tokens_break_flux_before_acr_scoped_tokens() {
    // Flux 2.7 (source-controller v1.7.0) asks for a Resource Manager token.
    let mut world = healthy();
    refusing_arm_tokens(&mut world);
    let out = world.start().doctor(&[]);
    assert_eq!(
        azure_findings(&out),
        vec![(
            "registry-refuses-arm-tokens".into(),
            "Registry/contoso".into(),
            "error".into()
        )]
    );
    let message = &messages_of(&out, "registry-refuses-arm-tokens")[0];
    assert!(
        message.contains("source-controller v1.7.0 asks for one")
            && message.contains("flux-system/OCIRepository/platform")
            && message.contains("from v1.8.1 (Flux v2.8.2)"),
        "{message}"
    );
    assert!(
        out.json()["findings"][0]["fix"]
            .as_str()
            .unwrap_or_default()
            .contains(
                "az acr config authentication-as-arm update --registry contoso --status enabled"
            )
    );

    // source-controller v1.8.1 asks for an ACR-scoped token: nothing to report.
    let mut world = healthy();
    refusing_arm_tokens(&mut world);
    set_image(&mut world.objects, "source-controller", "v1.8.1");
    let out = world.start().doctor(&[]);
    assert_eq!(
        out.status("registry-refuses-arm-tokens"),
        "pass",
        "{:#?}",
        out.findings()
    );

    // image-reflector-controller has its own release line: v1.0.4 (Flux 2.7) breaks.
    let mut world = healthy();
    refusing_arm_tokens(&mut world);
    set_image(&mut world.objects, "source-controller", "v1.8.1");
    flux::wire_webhook(&mut world.objects, "image-reflector-controller");
    world.objects.push(flux::object(
        MINOR,
        "ImageRepository",
        NS,
        "app",
        json!({
        "interval": "5m", "image": "contoso.azurecr.io/manifests/app", "provider": "azure"}),
    ));
    let out = world.start().doctor(&[]);
    let messages = messages_of(&out, "registry-refuses-arm-tokens");
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert!(
        messages[0].contains("image-reflector-controller v1.0.4 asks for one")
            && messages[0].contains("flux-system/ImageRepository/app"),
        "{}",
        messages[0]
    );
}

fn with_bucket(world: &mut World) -> String {
    world.objects.push(flux::object(MINOR, "Bucket", NS, "configs", json!({
        "interval": "5m", "bucketName": "configs", "endpoint": "https://configsacct.blob.core.windows.net", "provider": "azure"})));
    let account = format!(
        "/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.Storage/storageAccounts/configsacct"
    );
    world.azure.resources.push(Resource {
        id: account.clone(),
        name: "configsacct".into(),
        kind: "Microsoft.Storage/storageAccounts".into(),
        properties: json!({}),
    });
    account
}

fn custom_role(id: &str, data_actions: &[&str], not_data_actions: &[&str]) -> RoleDefinition {
    RoleDefinition {
        id: id.into(),
        name: "Flux bucket reader".into(),
        custom: true,
        data_actions: data_actions.iter().map(|s| (*s).to_string()).collect(),
        not_data_actions: not_data_actions.iter().map(|s| (*s).to_string()).collect(),
        ..RoleDefinition::default()
    }
}

const CUSTOM: &str = "c0ffee00-0000-4000-8000-00000000b10b";
const BLOBS_ALL: &str = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*";
const BLOBS_READ: &str = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read";

#[test]
fn custom_roles_are_judged_by_the_data_actions_they_grant() {
    // A custom role whose wildcard covers the read passes, read from its definition.
    let mut world = healthy();
    let account = with_bucket(&mut world);
    world.azure.custom_roles = vec![custom_role(CUSTOM, &[BLOBS_ALL], &[])];
    world.azure.role_assignments.push(RoleAssignment {
        role: CUSTOM.into(),
        ..acr_pull_at(&account)
    });
    let running = world.start();
    let out = running.doctor(&[]);
    assert_eq!(out.status("role-missing"), "pass", "{:#?}", out.findings());
    assert_eq!(
        running
            .requests_to(&format!("/roleDefinitions/{CUSTOM}?api-version=2022-04-01"))
            .len(),
        1,
        "each role's definition is read once"
    );

    // notDataActions take the read away again.
    let mut world = healthy();
    let account = with_bucket(&mut world);
    world.azure.custom_roles = vec![custom_role(CUSTOM, &[BLOBS_ALL], &[BLOBS_READ])];
    world.azure.role_assignments.push(RoleAssignment {
        role: CUSTOM.into(),
        ..acr_pull_at(&account)
    });
    let out = world.start().doctor(&[]);
    let messages = messages_of(&out, "role-missing");
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert!(
        messages[0].contains(&format!("has no role that allows data action {BLOBS_READ} (Storage Blob Data Reader does) on container configs of storage account configsacct")),
        "{}",
        messages[0]
    );

    // A role whose definition cannot be read, and a condition on a blob container, are not
    // evaluable: a warning, never a pass or an error.
    for (role, condition) in [
        ("0bad0000-0000-4000-8000-000000000000", None),
        (
            STORAGE_BLOB_DATA_READER,
            Some(
                "((!(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'})) OR (@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] StringEquals 'configs'))",
            ),
        ),
    ] {
        let mut world = healthy();
        let account = with_bucket(&mut world);
        world.azure.role_assignments.push(RoleAssignment {
            role: role.into(),
            condition: condition.map(str::to_string),
            ..acr_pull_at(&account)
        });
        let out = world.start().doctor(&[]);
        let findings: Vec<_> = azure_findings(&out);
        assert_eq!(
            findings,
            vec![(
                "role-missing".into(),
                "flux-system/ServiceAccount/source-controller".into(),
                "warning".into()
            )],
            "{role}"
        );
        let message = &messages_of(&out, "role-missing")[0];
        let why = if condition.is_some() {
            "has a condition"
        } else {
            "its role definition could not be read"
        };
        assert!(
            message.contains("not evaluable") && message.contains(why),
            "{message}"
        );
    }
}

const VAULT_URL: &str = "https://flux-sops.vault.azure.net";

fn vault_id(name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/{name}")
}

fn vault(name: &str, properties: Value) -> Resource {
    Resource {
        id: vault_id(name),
        name: name.into(),
        kind: "Microsoft.KeyVault/vaults".into(),
        properties,
    }
}

/// The manifests of `healthy_aks` with a Kustomization decrypting SOPS documents whose data
/// key is in the vault at `VAULT_URL`.
fn sops_manifests(running: &Running) -> String {
    let mut objects = flux::healthy_aks(MINOR);
    objects.push(flux::object(MINOR, "Kustomization", NS, "secrets", json!({
        "interval": "5m", "path": "./", "prune": true, "sourceRef": {"kind": "OCIRepository", "name": "platform"},
        "decryption": {"provider": "sops", "serviceAccountName": "source-controller"}})));
    objects.push(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": NS},
        "stringData": {"password": "ENC[AES256_GCM,data:AAAA,iv:BBBB,tag:CCCC,type:str]"},
        "sops": {"azure_kv": [{"vault_url": VAULT_URL, "name": "sops-key", "version": "0123456789abcdef",
                 "created_at": "2026-01-01T00:00:00Z", "enc": "c29tZS13cmFwcGVkLWtleQ"}],
                 "lastmodified": "2026-01-01T00:00:00Z", "mac": "ENC[AES256_GCM,data:DDDD,iv:EEEE,tag:FFFF,type:str]",
                 "version": "3.9.4"}
    }));
    let dir = running.cluster.sandbox.path("sops");
    support::run::write_yaml(&dir.join("flux.yaml"), &objects);
    dir.display().to_string()
}

fn doctor_sops(world: World) -> Outcome {
    let running = world.start();
    let dir = sops_manifests(&running);
    running.doctor(&[
        "-f",
        &dir,
        "--resource-group",
        "rg-aks",
        "--cluster-name",
        "aks-prod",
    ])
}

fn access_policy(keys: &[&str]) -> Value {
    json!({"tenantId": TENANT_ID, "objectId": PRINCIPAL,
           "permissions": {"keys": keys, "secrets": [], "certificates": []}})
}

#[test]
fn sops_vaults_are_resolved_and_judged_by_their_permission_model() {
    // An access-policy vault (enableRbacAuthorization null, as on vaults made before RBAC
    // became the default) is judged by the identity's key permissions, not by roles.
    let mut world = healthy();
    world.azure.resources.push(vault(
        "flux-sops",
        json!({"enableRbacAuthorization": null, "accessPolicies": [access_policy(&["Get", "Decrypt"])]}),
    ));
    let out = doctor_sops(world);
    assert_eq!(out.status("role-missing"), "pass", "{:#?}", out.findings());

    for (policies, says) in [
        (
            json!([access_policy(&["get", "encrypt"])]),
            "its entry for the identity lacks the key permission decrypt",
        ),
        (json!([]), "it has no entry for the identity's object ID"),
    ] {
        let mut world = healthy();
        world.azure.resources.push(vault(
            "flux-sops",
            json!({"enableRbacAuthorization": false, "accessPolicies": policies}),
        ));
        let out = doctor_sops(world);
        let messages = messages_of(&out, "role-missing");
        assert_eq!(messages.len(), 1, "{messages:#?}");
        assert!(
            messages[0].contains("Key Vault flux-sops")
                && messages[0].contains("authorizes with access policies")
                && messages[0].contains(says),
            "{}",
            messages[0]
        );
        let report = out.json();
        let finding = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "role-missing")
            .cloned()
            .unwrap();
        assert_eq!(
            finding["actions"][0]["command"],
            json!([
                "az",
                "keyvault",
                "set-policy",
                "--name",
                "flux-sops",
                "--object-id",
                PRINCIPAL,
                "--key-permissions",
                "decrypt"
            ])
        );
    }

    // An RBAC vault: Key Vault Crypto User counts on the vault the metadata names, not on
    // another vault of the subscription.
    for (scope, passes) in [(vault_id("other"), false), (vault_id("flux-sops"), true)] {
        let mut world = healthy();
        world
            .azure
            .resources
            .push(vault("flux-sops", json!({"enableRbacAuthorization": true})));
        world.azure.role_assignments.push(RoleAssignment {
            role: KEY_VAULT_CRYPTO_USER.into(),
            ..acr_pull_at(&scope)
        });
        let out = doctor_sops(world);
        if passes {
            assert_eq!(out.status("role-missing"), "pass", "{:#?}", out.findings());
        } else {
            let messages = messages_of(&out, "role-missing");
            assert!(
                messages.len() == 1
                    && messages[0].contains(&format!(
                        "on Key Vault flux-sops ({})",
                        vault_id("flux-sops")
                    )),
                "{messages:#?}"
            );
        }
    }

    // A vault Resource Graph does not return cannot be judged: a warning naming it.
    let out = doctor_sops(healthy());
    let messages = messages_of(&out, "role-missing");
    assert!(
        messages.len() == 1
            && messages[0]
                .contains("Key Vault flux-sops used by flux-system/Kustomization/secrets"),
        "{messages:#?}"
    );
}

fn aso_credential(name: &str, issuer: &str, subject: &str, audiences: &[&str]) -> Value {
    json!({
        "apiVersion": "managedidentity.azure.com/v1api20230131",
        "kind": "FederatedIdentityCredential",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"owner": {"name": "flux-source"}, "issuer": issuer, "subject": subject, "audiences": audiences}
    })
}

/// doctor on `healthy_aks` manifests plus `extra`, offline (`--azure=never`).
fn doctor_offline(extra: Vec<Value>) -> Outcome {
    let sandbox = support::run::Sandbox::new();
    let mut objects = flux::healthy_aks(MINOR);
    objects.extend(extra);
    let dir = sandbox.path("aso");
    support::run::write_yaml(&dir.join("flux.yaml"), &objects);
    let dir = dir.display().to_string();
    sandbox.run(&["doctor", "-o", "json", "-f", &dir, "--azure=never"])
}

#[test]
fn declared_federated_credentials_are_checked_offline() {
    const AUDIENCE: &str = "api://AzureADTokenExchange";
    // Right in every field: nothing to say.
    let out = doctor_offline(vec![aso_credential("sc", ISSUER, SC_SUBJECT, &[AUDIENCE])]);
    assert_eq!(
        out.status("declared-fic-mismatch"),
        "pass",
        "{:#?}",
        out.findings()
    );

    let out = doctor_offline(vec![
        aso_credential("sc", ISSUER.trim_end_matches('/'), SC_SUBJECT, &[AUDIENCE]),
        aso_credential(
            "other-ns",
            ISSUER,
            "system:serviceaccount:flux:source-controller",
            &[AUDIENCE],
        ),
        aso_credential("two", ISSUER, SC_SUBJECT, &[AUDIENCE, "api://other"]),
        aso_credential("later", "${ISSUER_URL}", SC_SUBJECT, &[AUDIENCE]),
    ]);
    let found: Vec<(String, String)> = out
        .findings()
        .into_iter()
        .filter(|f| f.0 == "declared-fic-mismatch")
        .map(|f| (f.1, f.2))
        .collect();
    let subject = |name: &str| format!("flux-system/FederatedIdentityCredential/{name}");
    assert_eq!(
        found,
        vec![
            (subject("later"), "info".into()),
            (subject("other-ns"), "error".into()),
            (subject("sc"), "error".into()),
            (subject("two"), "error".into()),
        ]
    );
    let messages = messages_of(&out, "declared-fic-mismatch");
    assert!(
        messages[0].contains("leaves issuer ${ISSUER_URL} to a substitution"),
        "{}",
        messages[0]
    );
    assert!(
        messages[1].contains("namespace is flux, not flux-system"),
        "{}",
        messages[1]
    );
    assert!(
        messages[2].contains("lacks the trailing slash every AKS issuer URL has"),
        "{}",
        messages[2]
    );
    assert!(
        messages[3].contains("declares 2 audiences"),
        "{}",
        messages[3]
    );

    // Credentials are declared, but not for the ServiceAccount Flux authenticates as.
    let out = doctor_offline(vec![aso_credential(
        "kc",
        ISSUER,
        "system:serviceaccount:flux-system:kustomize-controller",
        &[AUDIENCE],
    )]);
    assert_eq!(
        out.findings()
            .into_iter()
            .filter(|f| f.0 == "declared-fic-mismatch")
            .collect::<Vec<_>>(),
        vec![(
            "declared-fic-mismatch".into(),
            "flux-system/ServiceAccount/source-controller".into(),
            "warning".into()
        )]
    );
}

#[test]
fn declared_credentials_are_compared_with_the_issuer_aks_reports() {
    // With the AKS cluster read, its issuer is known: a credential for another cluster is a
    // warning, a close one an error.
    let running = healthy().start();
    let dir = running.cluster.sandbox.path("aso-live");
    let mut objects = flux::healthy_aks(MINOR);
    objects.push(aso_credential(
        "mine",
        &ISSUER.to_uppercase(),
        SC_SUBJECT,
        &["api://AzureADTokenExchange"],
    ));
    objects.push(aso_credential(
        "theirs",
        "https://oidc.example.com/other/",
        SC_SUBJECT,
        &["api://AzureADTokenExchange"],
    ));
    support::run::write_yaml(&dir.join("flux.yaml"), &objects);
    let dir = dir.display().to_string();
    let out = running.doctor(&[
        "-f",
        &dir,
        "--resource-group",
        "rg-aks",
        "--cluster-name",
        "aks-prod",
    ]);
    let found: Vec<(String, String)> = out
        .findings()
        .into_iter()
        .filter(|f| f.0 == "declared-fic-mismatch")
        .map(|f| (f.1, f.2))
        .collect();
    assert_eq!(
        found,
        vec![
            (
                "flux-system/FederatedIdentityCredential/mine".into(),
                "error".into()
            ),
            (
                "flux-system/FederatedIdentityCredential/theirs".into(),
                "warning".into()
            ),
        ]
    );
    let messages = messages_of(&out, "declared-fic-mismatch");
    assert!(
        messages[0].contains("letter case differs"),
        "{}",
        messages[0]
    );
    assert!(messages[1].contains("another cluster"), "{}", messages[1]);
}

/// doctor on `healthy_aks` manifests plus `extra`, with the AKS cluster and identities read.
fn doctor_with_azure(world: World, extra: Vec<Value>) -> Outcome {
    let running = world.start();
    let dir = running.cluster.sandbox.path("aso-azure");
    let mut objects = flux::healthy_aks(MINOR);
    objects.extend(extra);
    support::run::write_yaml(&dir.join("flux.yaml"), &objects);
    let dir = dir.display().to_string();
    running.doctor(&[
        "-f",
        &dir,
        "--resource-group",
        "rg-aks",
        "--cluster-name",
        "aks-prod",
    ])
}

#[test]
fn declared_credentials_are_compared_with_the_identities_azure_has() {
    // Declared on another identity than the one the ServiceAccount names: the owner is an
    // Azure Service Operator identity whose Azure name is not flux-source.
    let mut credential = aso_credential("sc", ISSUER, SC_SUBJECT, &["api://AzureADTokenExchange"]);
    credential["spec"]["owner"]["name"] = json!("platform-mi");
    let identity = json!({"apiVersion": "managedidentity.azure.com/v1api20230131", "kind": "UserAssignedIdentity",
        "metadata": {"name": "platform-mi", "namespace": NS}, "spec": {"azureName": "flux-platform", "location": "westeurope"}});
    let out = doctor_with_azure(healthy(), vec![credential.clone(), identity.clone()]);
    let messages = messages_of(&out, "declared-fic-mismatch");
    assert!(
        messages.len() == 1
            && messages[0].contains("with identity flux-platform")
            && messages[0].contains("names identity flux-source"),
        "{messages:#?}"
    );
    // The same object named flux-source in Azure is the right owner.
    let mut renamed = identity;
    renamed["spec"]["azureName"] = json!("flux-source");
    let out = doctor_with_azure(healthy(), vec![credential, renamed]);
    assert_eq!(
        out.status("declared-fic-mismatch"),
        "pass",
        "{:#?}",
        out.findings()
    );

    // Declared in Git but not in Azure: the operator has not created it yet.
    let mut world = healthy();
    world.azure.identities[0].credentials.clear();
    let out = doctor_with_azure(
        world,
        vec![aso_credential(
            "sc",
            ISSUER,
            SC_SUBJECT,
            &["api://AzureADTokenExchange"],
        )],
    );
    assert_eq!(out.status("declared-fic-mismatch"), "pass");
    let message = &messages_of(&out, "fic-missing")[0];
    assert!(
        message.contains("FederatedIdentityCredential flux-system/sc in the inputs declares it")
            && message.contains("several minutes"),
        "{message}"
    );
}

#[test]
fn event_hubs_providers_are_judged_on_the_namespace_their_channel_names() {
    let namespace_id = |name: &str| {
        format!(
            "/subscriptions/{SUB}/resourceGroups/rg-events/providers/Microsoft.EventHub/namespaces/{name}"
        )
    };
    let with = |assignment_scope: Option<String>, known: bool| {
        let mut world = healthy();
        flux::wire_webhook(&mut world.objects, "notification-controller");
        world.objects.push(flux::object(MINOR, "Provider", NS, "events", json!({
            "type": "azureeventhub", "address": "flux-hub", "channel": "flux-events.servicebus.windows.net"})));
        if known {
            world.azure.resources.push(Resource {
                id: namespace_id("flux-events"),
                name: "flux-events".into(),
                kind: "Microsoft.EventHub/namespaces".into(),
                properties: json!({}),
            });
        }
        if let Some(scope) = assignment_scope {
            world.azure.role_assignments.push(RoleAssignment {
                role: roles::EVENT_HUBS_DATA_SENDER.into(),
                ..acr_pull_at(&scope)
            });
        }
        world.start().doctor(&[])
    };
    let out = with(Some(namespace_id("flux-events")), true);
    assert_eq!(out.status("role-missing"), "pass", "{:#?}", out.findings());
    // Data Sender on another namespace of the subscription does not count any more.
    let out = with(Some(namespace_id("other")), true);
    let messages = messages_of(&out, "role-missing");
    assert!(
        messages.len() == 1
            && messages[0].contains(&format!(
                "data action Microsoft.EventHub/namespaces/messages/send/action (Azure Event Hubs Data Sender does) on Event Hubs namespace flux-events ({})",
                namespace_id("flux-events")
            )),
        "{messages:#?}"
    );
    // A namespace Resource Graph does not return is a warning naming it.
    let out = with(None, false);
    let messages = messages_of(&out, "role-missing");
    assert!(
        messages.len() == 1
            && messages[0]
                .contains("Event Hubs namespace flux-events used by flux-system/Provider/events"),
        "{messages:#?}"
    );
}

#[test]
fn buckets_and_sops_need_their_data_roles() {
    let mut world = healthy();
    world.objects.push(flux::object(MINOR, "Bucket", NS, "configs", json!({
        "interval": "5m", "bucketName": "configs", "endpoint": "https://configsacct.blob.core.windows.net", "provider": "azure"})));
    world.objects.push(flux::object(MINOR, "Kustomization", NS, "secrets", json!({
        "interval": "5m", "path": "./", "prune": true, "sourceRef": {"kind": "OCIRepository", "name": "platform"},
        "decryption": {"provider": "sops", "serviceAccountName": "source-controller"}})));
    let account = format!(
        "/subscriptions/{SUB2}/resourceGroups/rg-data/providers/Microsoft.Storage/storageAccounts/configsacct"
    );
    world.azure.subscriptions.push(SUB2.into());
    world.azure.resources.push(Resource {
        id: account.clone(),
        name: "configsacct".into(),
        kind: "Microsoft.Storage/storageAccounts".into(),
        properties: json!({}),
    });
    let running = world.start();
    let out = running.doctor(&[]);
    let messages = messages_of(&out, "role-missing");
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(messages.iter().any(
        |m| m.contains("Storage Blob Data Reader") && m.contains("storage account configsacct")
    ));
    assert!(messages.iter().any(|m| m.contains("Key Vault Crypto User")
        && m.contains("the vault is not named")
        && m.contains("if the vault authorizes with access policies")));
    // Without the vault's name an access policy may grant it: a warning, not an error.
    let severities: Vec<String> = out
        .findings()
        .into_iter()
        .filter(|f| f.0 == "role-missing")
        .map(|f| f.2)
        .collect();
    assert_eq!(severities, ["warning", "error"], "{messages:#?}");
    assert!(
        !running
            .requests_to(&format!(
                "/subscriptions/{SUB2}/providers/Microsoft.Authorization/roleAssignments"
            ))
            .is_empty(),
        "the storage account's subscription is listed too"
    );

    let mut world = healthy();
    world.objects.push(flux::object(MINOR, "Bucket", NS, "configs", json!({
        "interval": "5m", "bucketName": "configs", "endpoint": "https://configsacct.blob.core.windows.net", "provider": "azure"})));
    world.azure.resources.push(Resource {
        id: account.replace(SUB2, SUB),
        name: "configsacct".into(),
        kind: "Microsoft.Storage/storageAccounts".into(),
        properties: json!({}),
    });
    world.azure.role_assignments.push(RoleAssignment {
        role: STORAGE_BLOB_DATA_READER.into(),
        ..acr_pull_at(&format!(
            "{}/blobServices/default/containers/configs",
            account.replace(SUB2, SUB)
        ))
    });
    world.azure.role_assignments.push(RoleAssignment {
        role: KEY_VAULT_CRYPTO_USER.into(),
        ..acr_pull_at(&format!(
            "/subscriptions/{SUB}/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/sops"
        ))
    });
    let out = world.start().doctor(&[]);
    assert_eq!(out.status("role-missing"), "pass", "{:#?}", out.findings());

    // The Bucket names its container: a grant on another container of the account is not
    // the Bucket's, and the grant to make is on its container.
    let mut world = healthy();
    let account = with_bucket(&mut world);
    world.azure.role_assignments.push(RoleAssignment {
        role: STORAGE_BLOB_DATA_READER.into(),
        ..acr_pull_at(&format!("{account}/blobServices/default/containers/other"))
    });
    let out = world.start().doctor(&[]);
    let messages = messages_of(&out, "role-missing");
    assert!(
        messages.len() == 1
            && messages[0].contains("on container configs of storage account configsacct"),
        "{messages:#?}"
    );
    let report = out.json();
    let command = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "role-missing")
        .map(|f| f["actions"][0]["command"].clone())
        .unwrap();
    assert!(
        command.as_array().unwrap().contains(&json!(format!(
            "{account}/blobServices/default/containers/configs"
        ))),
        "{command}"
    );
}

#[test]
fn azure_devops_access_is_an_info_with_what_to_check() {
    let mut world = healthy();
    world.objects.push(flux::object(MINOR, "GitRepository", NS, "fleet", json!({
        "interval": "5m", "url": "https://dev.azure.com/contoso/platform/_git/fleet", "ref": {"branch": "main"}, "provider": "azure"})));
    let out = world.start().doctor(&[]);
    assert_eq!(out.code, 0, "info does not fail the run");
    assert_eq!(
        azure_findings(&out),
        vec![(
            "azure-devops-onboarding-unknown".into(),
            "flux-system/ServiceAccount/source-controller".into(),
            "info".into()
        )]
    );
    let message = &messages_of(&out, "azure-devops-onboarding-unknown")[0];
    assert!(
        message.contains("organization(s) contoso in group Readers"),
        "{message}"
    );
    assert!(
        message.contains(&format!("object ID {PRINCIPAL}")),
        "{message}"
    );
}

/// Runs `doctor --probe` on `world` and expects one refusal with `code`, explained with `says`.
fn probe_refusal(world: World, code: &str, says: &[&str]) {
    let out = world.start().doctor(&["--probe"]);
    let messages = messages_of(&out, "token-exchange-failed");
    assert_eq!(
        messages.len(),
        1,
        "{code}: {:#?}\n{}",
        out.findings(),
        out.stderr
    );
    let message = &messages[0];
    assert!(
        message.contains(&format!("failed with {code}")),
        "{message}"
    );
    for text in says {
        assert!(message.contains(text), "{code}: {text:?} not in {message}");
    }
    assert_eq!(out.code, 1);
}

#[test]
fn the_probe_decodes_each_refusal_from_its_code() {
    let mut world = healthy();
    world.azure.identities[0].credentials = vec![Credential::new(
        "sc",
        ISSUER.trim_end_matches('/'),
        SC_SUBJECT,
    )];
    probe_refusal(
        world,
        "AADSTS700211",
        &[
            "trailing slash",
            &format!("presented iss '{ISSUER}'"),
            &format!("issuers '{}' (sc)", ISSUER.trim_end_matches('/')),
        ],
    );

    let mut world = healthy();
    world.azure.identities[0].credentials = vec![Credential::new(
        "sc",
        ISSUER,
        "system:serviceaccount:flux:source-controller",
    )];
    probe_refusal(
        world,
        "AADSTS700213",
        &[
            &format!("presented sub '{SC_SUBJECT}'"),
            "'system:serviceaccount:flux:source-controller' (sc)",
        ],
    );

    let mut world = healthy();
    world.azure.identities[0].credentials = vec![Credential::new(
        "sc",
        ISSUER,
        "system:serviceaccount:flux-system:Source-Controller",
    )];
    probe_refusal(
        world,
        "AADSTS7002138",
        &["case-sensitive", "subject expected", "letter case differs"],
    );

    let mut world = healthy();
    world.azure.identities[0].credentials = vec![Credential {
        audiences: vec!["api://other".into()],
        ..Credential::new("sc", ISSUER, SC_SUBJECT)
    }];
    probe_refusal(
        world,
        "AADSTS70021",
        &["audience expected 'api://AzureADTokenExchange' but found 'api://other'"],
    );

    let mut world = healthy();
    world.azure.identities.clear();
    probe_refusal(
        world,
        "AADSTS700016",
        &[
            "no application or managed identity with this client ID",
            CLIENT_ID,
        ],
    );

    let mut world = healthy();
    let stranger = "11111111-2222-4333-8444-555555555555";
    let sa = flux::find(&mut world.objects, "ServiceAccount", "source-controller");
    sa["metadata"]["annotations"]["azure.workload.identity/tenant-id"] = json!(stranger);
    probe_refusal(
        world,
        "AADSTS90002",
        &["the tenant does not exist", stranger],
    );

    let mut world = healthy();
    world.token_override = Some(jwt(
        &json!({"iss": ISSUER, "sub": SC_SUBJECT, "aud": ["api://AzureADTokenExchange"], "iat": unix_now() - 7200, "exp": unix_now() - 3600}),
        "c2lnbmF0dXJlLWJ5dGVz",
    ));
    probe_refusal(
        world,
        "AADSTS700024",
        &["expired or not yet valid", "and expires at"],
    );

    let presented_iss = format!("presented iss '{ISSUER}'");
    for (code, says, presented) in [
        (90061, "discovery document", presented_iss.as_str()),
        (700_027, "signature", presented_iss.as_str()),
        (
            700_212,
            "audience",
            "presented aud 'api://AzureADTokenExchange'",
        ),
    ] {
        let mut world = healthy();
        world.azure.forced_exchange_error = Some(code);
        probe_refusal(world, &format!("AADSTS{code}"), &[says, presented]);
    }

    let mut world = healthy();
    world.azure.forced_exchange_error = Some(123_456);
    probe_refusal(
        world,
        "AADSTS123456",
        &["Entra ID refused it (invalid_client)", "Injected error"],
    );
}

#[test]
fn the_probe_needs_a_live_cluster_and_the_manifests_still_get_azure_checks() {
    let running = healthy().start();
    let dir = running.cluster.sandbox.path("manifests");
    support::run::write_yaml(&dir.join("flux.yaml"), &flux::healthy_aks(MINOR));
    let dir = dir.display().to_string();
    let out = running.doctor(&[
        "-f",
        &dir,
        "--probe",
        "--resource-group",
        "rg-aks",
        "--cluster-name",
        "aks-prod",
    ]);
    assert_eq!(out.status("token-exchange-failed"), "skip");
    assert!(reason(&out, "token-exchange-failed").contains("needs a live cluster"));
    assert_eq!(
        out.status("fic-missing"),
        "pass",
        "the AKS issuer stands in: {}",
        reason(&out, "fic-missing")
    );
    assert_eq!(out.status("role-missing"), "pass");
}

#[test]
fn throttling_is_waited_out_and_long_waits_reported() {
    let mut world = healthy();
    world.azure.faults = vec![
        AzureFault::new(
            "/providers/Microsoft.ResourceGraph/resources",
            429,
            "TooManyRequests",
            "Too many requests",
        )
        .times(1)
        .retry_after(1),
        AzureFault::new(
            "/providers/Microsoft.Authorization/roleAssignments",
            503,
            "ServiceUnavailable",
            "Try again",
        )
        .times(1)
        .retry_after(1),
    ];
    let running = world.start();
    let started = Instant::now();
    let out = running.doctor(&[]);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(azure_findings(&out).is_empty(), "{:#?}", out.findings());
    assert_eq!(out.status("role-missing"), "pass");
    let statuses: Vec<u16> = running
        .requests_to("roleAssignments")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![503, 200]);
    assert!(
        running
            .requests_to("ResourceGraph")
            .iter()
            .any(|r| r.status == 429)
    );

    let mut world = healthy();
    world.azure.faults = vec![
        AzureFault::new("/subscriptions?", 429, "TooManyRequests", "slow down").retry_after(120),
    ];
    let out = world.start().doctor(&[]);
    assert_eq!(out.status("fic-missing"), "skip");
    assert!(
        reason(&out, "fic-missing").contains("asked to retry after 120s"),
        "{}",
        reason(&out, "fic-missing")
    );
}

#[test]
fn arm_errors_are_shown_from_their_envelope() {
    let mut world = healthy();
    let message = format!(
        "The client '{LOGIN_CLIENT}' with object id 'x' does not have authorization to perform action 'Microsoft.Authorization/roleAssignments/read' over scope '/subscriptions/{SUB}'."
    );
    world.azure.faults = vec![AzureFault::new(
        "roleAssignments",
        403,
        "AuthorizationFailed",
        &message,
    )];
    let out = world.start().doctor(&[]);
    assert_eq!(out.status("role-missing"), "skip");
    assert_eq!(
        reason(&out, "role-missing"),
        format!(
            "GET /subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments: HTTP 403 AuthorizationFailed: {message}"
        )
    );
    assert_eq!(out.status("fic-missing"), "pass", "the rest still runs");

    let mut world = healthy();
    world.azure.logins[0].secret = "another-secret-value".into();
    let out = world.start().doctor(&[]);
    let why = reason(&out, "fic-missing");
    assert!(why.contains("could not log in to Azure"), "{why}");
    assert!(why.contains("the client secret is wrong"), "{why}");
    assert!(!out.stdout.contains(SECRET));
}

#[test]
fn another_cloud_uses_its_scope_and_endpoints() {
    let mut world = healthy();
    world.azure.scope = CHINA_SCOPE.into();
    world.azure.resources[1] = registry("contoso", "contoso.azurecr.cn");
    let platform = flux::find(&mut world.objects, "OCIRepository", "platform");
    platform["spec"]["url"] = json!("oci://contoso.azurecr.cn/manifests/app");
    let running = world.start();
    let out = running.doctor(&["--cloud", "AzureChinaCloud", "--probe"]);
    assert!(
        azure_findings(&out).is_empty(),
        "{:#?}\n{}",
        out.findings(),
        out.stderr
    );
    let tokens = running.requests_to("/oauth2/v2.0/token");
    assert_eq!(tokens.len(), 2);
    assert!(
        tokens
            .iter()
            .all(|t| t.form().contains(&("scope".into(), CHINA_SCOPE.into())))
    );

    let out = running.doctor(&["--cloud", "AzureUSGovernment"]);
    assert!(
        reason(&out, "fic-missing").contains("AADSTS500011"),
        "a public or US scope is refused by this tenant: {}",
        reason(&out, "fic-missing")
    );
}

#[test]
fn the_azure_cli_login_is_used_when_nothing_else_is_set() {
    let mut world = healthy();
    let cli_token = format!("eyJhbGciOiJub25lIn0.eyJvaWQiOiJ1c2VyIn0.{ACCESS_MARKER}cli");
    world.azure.accepted_tokens = vec![cli_token.clone()];
    let running = world.start();
    let sandbox = &running.cluster.sandbox;
    sandbox.executable(
        "bin/az",
        &format!(
            "#!/bin/sh\necho \"$@\" > \"{}\"\nprintf '%s' '{{\"accessToken\":\"{cli_token}\",\"expiresOn\":\"2099-01-01 00:00:00.000000\",\"expires_on\":4070908800,\"subscription\":\"{SUB}\",\"tenant\":\"{TENANT_ID}\",\"tokenType\":\"Bearer\"}}'\n",
            sandbox.path("az.args").display()
        ),
    );
    let kubeconfig = running.cluster.kubeconfig.display().to_string();
    let mut command = sandbox.command();
    command
        .args(["doctor", "-o", "json", "--kubeconfig", &kubeconfig])
        .args(running.endpoints());
    let out = outcome(&mut command);
    assert!(azure_findings(&out).is_empty(), "{:#?}", out.findings());
    assert_eq!(
        out.status("fic-missing"),
        "pass",
        "{}",
        reason(&out, "fic-missing")
    );
    let args = std::fs::read_to_string(sandbox.path("az.args")).unwrap();
    assert!(
        args.contains(&format!(
            "account get-access-token -o json --scope {PUBLIC_SCOPE}"
        )),
        "{args}"
    );
    assert!(!out.stdout.contains(ACCESS_MARKER) && !out.stderr.contains(ACCESS_MARKER));

    sandbox.executable(
        "bin/az",
        "#!/bin/sh\necho \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1\n",
    );
    let out = outcome(&mut command);
    assert!(
        reason(&out, "fic-missing").contains("Please run 'az login'"),
        "{}",
        reason(&out, "fic-missing")
    );
}

#[test]
fn workload_identity_logs_doctor_in_where_it_runs_in_a_pod() {
    let mut world = healthy();
    let ci_client = "7c6b5a49-3827-4160-9f5e-4d3c2b1a0f9e";
    let assertion = jwt(
        &json!({"iss": "https://token.ci.example.com", "sub": "repo:fleet:ref:main", "aud": ["api://AzureADTokenExchange"], "iat": unix_now(), "exp": unix_now() + 3600}),
        "c2lnbmF0dXJl",
    );
    world.azure.identities.push(Identity {
        name: "ci".into(),
        client_id: ci_client.into(),
        principal_id: "0f0e0d0c-0b0a-4908-8706-050403020100".into(),
        credentials: vec![Credential::new(
            "ci",
            "https://token.ci.example.com",
            "repo:fleet:ref:main",
        )],
        ..identity(vec![])
    });
    let running = world.start();
    let token_file = running.cluster.sandbox.write("ci-token", &assertion);
    let kubeconfig = running.cluster.kubeconfig.display().to_string();
    let mut command = running.cluster.sandbox.command();
    command
        .env("AZURE_FEDERATED_TOKEN_FILE", &token_file)
        .env("AZURE_CLIENT_ID", ci_client)
        .env("AZURE_TENANT_ID", TENANT_ID)
        .args(["doctor", "-o", "json", "--kubeconfig", &kubeconfig])
        .args(running.endpoints());
    let out = outcome(&mut command);
    assert_eq!(
        out.status("fic-missing"),
        "pass",
        "{}",
        reason(&out, "fic-missing")
    );
    let login = &running.requests_to("/oauth2/v2.0/token")[0];
    assert!(
        login
            .form()
            .contains(&("client_assertion".into(), assertion.clone()))
    );
}

#[test]
fn plain_http_endpoints_are_refused_unless_on_loopback() {
    let running = healthy().start();
    let kubeconfig = running.cluster.kubeconfig.display().to_string();
    let mut command = running.command();
    command.args([
        "doctor",
        "--kubeconfig",
        &kubeconfig,
        "--authority-host",
        "http://login.example.com",
    ]);
    let out = outcome(&mut command);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("plain http is accepted only for a loopback address"),
        "{}",
        out.stderr
    );
}

fn files_under(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, found);
        } else {
            found.push(path);
        }
    }
}

#[test]
fn no_secret_or_token_reaches_output_logs_or_files() {
    let sa_signature = "Y2FuYXJ5c2F0b2tlbjViOWE";
    let sa_token = jwt(
        &json!({"iss": ISSUER, "sub": SC_SUBJECT, "aud": ["api://AzureADTokenExchange"], "iat": unix_now(), "exp": unix_now() + 600}),
        sa_signature,
    );
    let mut runs = Vec::new();
    for credentials in [
        vec![Credential::new("sc", ISSUER, SC_SUBJECT)],
        vec![Credential::new(
            "sc",
            ISSUER.trim_end_matches('/'),
            SC_SUBJECT,
        )],
    ] {
        let mut world = healthy();
        world.token_override = Some(sa_token.clone());
        world.azure.identities[0].credentials = credentials;
        let running = world.start();
        let kubeconfig = running.cluster.kubeconfig.display().to_string();
        for output in ["json", "text"] {
            let mut command = running.command();
            command
                .args([
                    "doctor",
                    "-o",
                    output,
                    "--show-all",
                    "--probe",
                    "--kubeconfig",
                    &kubeconfig,
                    "--azure-auth",
                    "client-secret",
                ])
                .args(running.endpoints());
            runs.push(outcome(&mut command));
        }
        let issued: Vec<String> = running
            .azure
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/oauth2/v2.0/token"))
            .map(|r| {
                r.form()
                    .into_iter()
                    .find(|(k, _)| k == "client_assertion")
                    .map(|(_, v)| v)
                    .unwrap_or_default()
            })
            .collect();
        assert!(
            issued.contains(&sa_token),
            "the probe presented the minted token"
        );
        let mut files = Vec::new();
        files_under(running.cluster.sandbox.dir.path(), &mut files);
        for file in files {
            let bytes = std::fs::read(&file).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            for canary in [SECRET, ACCESS_MARKER, sa_signature, sa_token.as_str()] {
                assert!(!text.contains(canary), "{canary} in {}", file.display());
            }
        }
    }
    assert!(
        runs[3].stdout.contains("AADSTS700211"),
        "the failing probe ran: {}",
        runs[3].stdout
    );
    for run in &runs {
        for canary in [SECRET, ACCESS_MARKER, sa_signature, sa_token.as_str()] {
            assert!(
                !run.stdout.contains(canary),
                "{canary} in stdout:\n{}",
                run.stdout
            );
            assert!(
                !run.stderr.contains(canary),
                "{canary} in stderr:\n{}",
                run.stderr
            );
        }
    }
}

#[test]
fn enable_federate_creates_missing_credentials_one_by_one_and_reuses_exact_ones() {
    let mut world = healthy();
    flux::wire_webhook(&mut world.objects, "kustomize-controller");
    flux::wire_webhook(&mut world.objects, "helm-controller");
    world.azure.identities[0].credentials =
        vec![Credential::new("source-controller", ISSUER, SC_SUBJECT)];
    let running = world.start();
    let kubeconfig = running.cluster.kubeconfig.display().to_string();
    let identity_id = identity(vec![]).id();
    let enable = |extra: &[&str]| {
        let mut command = running.command();
        command
            .args([
                "enable",
                "--kubeconfig",
                &kubeconfig,
                "--federate",
                "--identity",
                &identity_id,
                "--azure-auth",
                "client-secret",
            ])
            .args(running.endpoints())
            .args(extra);
        outcome(&mut command)
    };
    let preview = enable(&[]);
    assert_eq!(preview.code, 0, "{}\n{}", preview.stdout, preview.stderr);
    assert!(
        preview
            .stderr
            .contains("keep federated credential source-controller"),
        "{}",
        preview.stderr
    );
    assert!(
        preview
            .stderr
            .contains("system:serviceaccount:flux-system:kustomize-controller"),
        "{}",
        preview.stderr
    );
    assert!(preview.stderr.contains("add --apply"), "{}", preview.stderr);
    assert!(
        running
            .requests_to("federatedIdentityCredentials/")
            .iter()
            .all(|r| r.method != "PUT"),
        "a preview writes nothing"
    );

    let printed = enable(&["--print", "terraform"]);
    assert_eq!(printed.code, 0, "{}", printed.stderr);
    assert_eq!(
        printed
            .stdout
            .matches("resource \"azurerm_federated_identity_credential\"")
            .count(),
        2,
        "{}",
        printed.stdout
    );
    assert!(printed.stdout.contains("depends_on"), "{}", printed.stdout);

    let applied = enable(&["--apply"]);
    assert_eq!(applied.code, 0, "{}\n{}", applied.stdout, applied.stderr);
    assert!(
        applied
            .stderr
            .contains("created 2 federated credential(s) on flux-source"),
        "{}",
        applied.stderr
    );
    assert!(
        applied
            .stderr
            .contains("Entra ID can take several minutes to honour a new federated credential"),
        "{}",
        applied.stderr
    );
    let credentials = running.azure.credentials(CLIENT_ID);
    let subjects: Vec<&str> = credentials.iter().map(|c| c.subject.as_str()).collect();
    assert_eq!(
        subjects,
        vec![
            SC_SUBJECT,
            "system:serviceaccount:flux-system:helm-controller",
            "system:serviceaccount:flux-system:kustomize-controller",
        ]
    );
    assert!(
        credentials
            .iter()
            .all(|c| c.issuer == ISSUER && c.audiences == ["api://AzureADTokenExchange"])
    );
    let puts = running.requests_to("federatedIdentityCredentials/");
    let puts: Vec<_> = puts.iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(puts.len(), 2);
    assert!(
        puts.iter().all(|r| r.status == 201),
        "sequential writes never collide: {puts:#?}"
    );
    assert!(
        puts.iter()
            .all(|r| r.query.as_deref() == Some("api-version=2024-11-30"))
    );

    let again = enable(&["--apply"]);
    assert!(
        again.stderr.contains("keep federated credential"),
        "{}",
        again.stderr
    );
    assert!(!again.stderr.contains("created"), "{}", again.stderr);
}

#[test]
fn enable_federate_refuses_past_the_limit_and_prints_without_a_login() {
    let mut world = healthy();
    flux::wire_webhook(&mut world.objects, "kustomize-controller");
    world.azure.identities[0].credentials = (0..20)
        .map(|i| {
            Credential::new(
                &format!("tenant-{i}"),
                ISSUER,
                &format!("system:serviceaccount:team-{i}:flux"),
            )
        })
        .collect();
    let running = world.start();
    let kubeconfig = running.cluster.kubeconfig.display().to_string();
    let identity_id = identity(vec![]).id();
    let mut command = running.command();
    command
        .args([
            "enable",
            "--kubeconfig",
            &kubeconfig,
            "--federate",
            "--client-id",
            CLIENT_ID,
            "--apply",
            "--azure-auth",
            "client-secret",
        ])
        .args(running.endpoints());
    let refused = outcome(&mut command);
    assert_eq!(refused.code, 2);
    assert!(
        refused
            .stderr
            .contains("has 20 federated credentials and needs 2 more, past Entra ID's limit of 20"),
        "{}",
        refused.stderr
    );
    assert_eq!(running.azure.credentials(CLIENT_ID).len(), 20);

    let mut offline = running.cluster.sandbox.command();
    offline.args([
        "enable",
        "--kubeconfig",
        &kubeconfig,
        "--federate",
        "--identity",
        &identity_id,
        "--client-id",
        CLIENT_ID,
        "--print",
        "bicep",
    ]);
    let printed = outcome(&mut offline);
    assert_eq!(printed.code, 0, "{}", printed.stderr);
    assert!(
        printed.stderr.contains("not logged in to Azure"),
        "{}",
        printed.stderr
    );
    assert!(
        printed.stdout.contains("parent: identity"),
        "{}",
        printed.stdout
    );
    assert!(
        printed.stdout.contains(&format!("subject: '{SC_SUBJECT}'")),
        "{}",
        printed.stdout
    );
    assert!(printed.stdout.contains("dependsOn"), "{}", printed.stdout);
}

#[test]
fn a_silent_entra_endpoint_is_bounded_by_the_request_timeout() {
    let running = healthy().start();
    // Accepts connections (the kernel does) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_url = format!("http://{}", silent.local_addr().expect("address"));
    let kubeconfig = running.cluster.kubeconfig.display().to_string();
    let mut command = running.command();
    command.args([
        "doctor",
        "-o",
        "json",
        "--kubeconfig",
        &kubeconfig,
        "--azure-auth",
        "client-secret",
        "--authority-host",
        &silent_url,
        "--arm-endpoint",
        &running.azure.url(),
        "--request-timeout",
        "2s",
    ]);
    let started = Instant::now();
    let out = outcome(&mut command);
    // The bound is 2s; the margin is for a loaded machine, far below the minutes unbounded.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_ne!(out.code, 2, "{}", out.stderr);
    assert!(
        reason(&out, "fic-missing").contains("within 2s (--request-timeout)"),
        "{}",
        reason(&out, "fic-missing")
    );
    drop(silent);
}

#[test]
fn an_arm_error_echoing_an_opaque_token_shows_the_ids_but_not_the_token() {
    let opaque = "Zq8mX2vL9pR4tK7wN3bH6jF1cD5sG0aYb2Ck";
    let mut world = healthy();
    world.azure.faults = vec![AzureFault::new(
        "/subscriptions?",
        401,
        "InvalidAuthenticationToken",
        &format!(
            "The access token {opaque} is invalid for subscription {SUB} (tenant {TENANT_ID})"
        ),
    )];
    let out = world.start().doctor(&[]);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("InvalidAuthenticationToken"), "{all}");
    assert!(!all.contains(opaque), "{all}");
    assert!(
        all.contains(&format!("subscription {SUB} (tenant {TENANT_ID})")),
        "{all}"
    );
}

#[test]
fn a_deny_assignment_at_the_registry_refuses_the_pull_whatever_the_roles() {
    let everyone = "00000000-0000-0000-0000-000000000000";
    let stack = |principals: &[&str], excluded: &[&str], not_actions: &[&str]| DenyAssignment {
        name: "stack-acr".into(),
        scope: format!("/subscriptions/{SUB}/resourceGroups/rg-acr"),
        principals: principals.iter().map(|p| (*p).to_string()).collect(),
        exclude_principals: excluded.iter().map(|p| (*p).to_string()).collect(),
        actions: vec!["Microsoft.ContainerRegistry/*".into()],
        not_actions: not_actions.iter().map(|p| (*p).to_string()).collect(),
        ..DenyAssignment::default()
    };
    // Everyone is denied every registry action at the resource group: AcrPull does not help.
    let mut world = healthy();
    world
        .azure
        .deny_assignments
        .push(stack(&[everyone], &[], &[]));
    let running = world.start();
    let out = running.doctor(&[]);
    assert_eq!(out.status("role-missing"), "pass", "{:#?}", out.findings());
    let messages = messages_of(&out, "deny-assignment-blocks");
    assert!(
        messages.len() == 1
            && messages[0].contains("deny assignment \"stack-acr\"")
            && messages[0].contains("Microsoft.ContainerRegistry/registries/pull/read")
            && messages[0].contains(PRINCIPAL),
        "{messages:#?}"
    );
    assert_eq!(
        out.findings()
            .into_iter()
            .filter(|f| f.0 == "deny-assignment-blocks")
            .collect::<Vec<_>>(),
        vec![(
            "deny-assignment-blocks".into(),
            "flux-system/ServiceAccount/source-controller".into(),
            "error".into()
        )]
    );
    // Exempted, taken out by notActions, or naming someone else: the pull goes through.
    for deny in [
        stack(&[everyone], &[PRINCIPAL], &[]),
        stack(
            &[everyone],
            &[],
            &["Microsoft.ContainerRegistry/registries/pull/read"],
        ),
        stack(&["0a0a0a0a-0000-4000-8000-000000000000"], &[], &[]),
    ] {
        let mut world = healthy();
        world.azure.deny_assignments.push(deny);
        let out = world.start().doctor(&[]);
        assert_eq!(
            out.status("deny-assignment-blocks"),
            "pass",
            "{:#?}",
            out.findings()
        );
    }
}
