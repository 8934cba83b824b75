//! The fake kube-apiserver driven by real clients: kubectl, kube-rs, and
//! plain HTTP where the protocol itself is the point.

#[path = "support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use support::fake_apiserver::{
    FakeConfig, Fault, FaultBehaviour, KubeUser, RequestRecord, RunningServer,
};
use support::flux;

const GROUP: &str = "source.toolkit.fluxcd.io";
const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

fn crd(plural: &str, kind: &str, versions: &[&str], storage: &str) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            json!({
                "name": v,
                "served": true,
                "storage": *v == storage,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}},
            })
        })
        .collect();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{GROUP}")},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": format!("{kind}List"),
                "plural": plural,
                "singular": kind.to_ascii_lowercase(),
                "categories": ["fluxcd"],
            },
            "scope": "Namespaced",
            "versions": versions,
        },
    })
}

/// Flux's source-controller with a GitRepository (served at v1 and v1beta2)
/// and an OCIRepository (served at v1beta2 only, as in Flux 2.2).
fn flux_seed() -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}}),
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": "source-controller",
                "namespace": "flux-system",
                "annotations": {"azure.workload.identity/client-id": "11111111-2222-3333-4444-555555555555"},
            },
        }),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "source-controller", "namespace": "flux-system", "labels": {"app": "source-controller"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "source-controller"}},
                "template": {
                    "metadata": {"labels": {"app": "source-controller", "azure.workload.identity/use": "true"}},
                    "spec": {
                        "serviceAccountName": "source-controller",
                        "containers": [{"name": "manager", "image": "ghcr.io/fluxcd/source-controller:v1.6.0"}],
                    },
                },
            },
        }),
        crd("gitrepositories", "GitRepository", &["v1", "v1beta2"], "v1"),
        crd("ocirepositories", "OCIRepository", &["v1beta2"], "v1beta2"),
        json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": "flux-system", "namespace": "flux-system"},
            "spec": {"url": "https://github.com/example/fleet", "interval": "1m"},
        }),
        json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1beta2",
            "kind": "OCIRepository",
            "metadata": {"name": "podinfo", "namespace": "flux-system"},
            "spec": {"url": "oci://example.azurecr.io/podinfo", "provider": "azure"},
        }),
    ]
}

fn flux_server() -> RunningServer {
    RunningServer::start(FakeConfig {
        objects: flux_seed(),
        ..FakeConfig::default()
    })
}

// ---------------------------------------------------------------- kubectl

struct Kubectl {
    binary: String,
    kubeconfig: PathBuf,
    home: PathBuf,
}

impl Kubectl {
    /// A fresh HOME per client, because kubectl caches discovery under
    /// ~/.kube/cache and a cache from another server would hide requests.
    fn new(binary: &str, server: &RunningServer, dir: &Path, user: KubeUser) -> Kubectl {
        std::fs::create_dir_all(dir).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        server.write_kubeconfig(&kubeconfig, user).unwrap();
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        Kubectl {
            binary: binary.to_owned(),
            kubeconfig,
            home,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.binary)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("HOME", &self.home)
            .env_remove("KUBECONFIG")
            .env_remove("KUBECACHEDIR")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.binary))
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(!output.status.success(), "kubectl {args:?} succeeded");
        String::from_utf8(output.stderr).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }
}

fn kubectl_path() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned())
}

/// The Google Cloud SDK's `kubectl` is a dispatcher: it asks `/version` and
/// runs the bundled kubectl of the server's minor version (1.33 here). When
/// the 1.32 binary is installed next to it, it is driven directly too.
fn kubectl_binaries() -> Vec<String> {
    let mut binaries = vec![kubectl_path()];
    let pinned = "/usr/lib/google-cloud-sdk/bin/kubectl.1.32";
    if Path::new(pinned).exists() {
        binaries.push(pinned.to_owned());
    }
    binaries
}

fn item_names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

fn served_paths(requests: &[RequestRecord]) -> Vec<&str> {
    requests.iter().map(|r| r.path.as_str()).collect()
}

#[test]
fn kubectl_reads_flux_objects_through_aggregated_discovery() {
    for binary in kubectl_binaries() {
        let server = flux_server();
        let dir = tempfile::tempdir().unwrap();
        let kubectl = Kubectl::new(
            &binary,
            &server,
            dir.path(),
            KubeUser::Token("t0ken".to_owned()),
        );

        let deployments = kubectl.json(&["get", "deployments", "-n", "flux-system", "-o", "json"]);
        assert_eq!(item_names(&deployments), ["source-controller"]);
        assert_eq!(deployments["items"][0]["apiVersion"], "apps/v1");
        assert_eq!(
            deployments["items"][0]["spec"]["template"]["spec"]["serviceAccountName"],
            "source-controller"
        );

        let repositories = kubectl.json(&[
            "get",
            "gitrepositories.source.toolkit.fluxcd.io",
            "-A",
            "-o",
            "json",
        ]);
        assert_eq!(item_names(&repositories), ["flux-system"]);
        assert_eq!(
            repositories["items"][0]["apiVersion"],
            "source.toolkit.fluxcd.io/v1"
        );
        assert_eq!(
            repositories["items"][0]["spec"]["url"],
            "https://github.com/example/fleet"
        );

        let accounts = kubectl.ok(&["get", "sa", "-n", "flux-system", "-o", "name"]);
        assert_eq!(accounts, "serviceaccount/source-controller\n");

        let beta = kubectl.json(&[
            "get",
            "gitrepositories.v1beta2.source.toolkit.fluxcd.io",
            "-A",
            "-o",
            "json",
        ]);
        assert_eq!(item_names(&beta), ["flux-system"]);
        assert_eq!(
            beta["items"][0]["apiVersion"],
            "source.toolkit.fluxcd.io/v1beta2"
        );

        // OCIRepository exists only at v1beta2, so kubectl must find it there.
        let oci = kubectl.json(&["get", "ocirepositories", "-n", "flux-system", "-o", "json"]);
        assert_eq!(item_names(&oci), ["podinfo"]);
        assert_eq!(
            oci["items"][0]["apiVersion"],
            "source.toolkit.fluxcd.io/v1beta2"
        );

        let table = kubectl.ok(&["get", "deployments", "-n", "flux-system"]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["NAME", "AGE"],
            "{table}"
        );
        assert!(lines[1].starts_with("source-controller "), "{table}");

        let requests = server.requests();
        for discovery in requests
            .iter()
            .filter(|r| r.path == "/api" || r.path == "/apis")
        {
            assert!(
                discovery
                    .accept
                    .as_deref()
                    .unwrap()
                    .contains("as=APIGroupDiscoveryList")
            );
            assert_eq!(discovery.response_content_type.as_deref(), Some(AGGREGATED));
        }
        assert!(
            !requests
                .iter()
                .any(|r| r.path.starts_with("/apis/apps") && r.path.split('/').count() == 4),
            "aggregated discovery should make per-group discovery unnecessary: {:?}",
            served_paths(&requests)
        );
        // kubectl asks for a server-side Table and prints the server's columns.
        let table_request = requests.last().unwrap();
        assert!(
            table_request
                .accept
                .as_deref()
                .unwrap()
                .contains("as=Table")
        );
        assert_eq!(
            table_request.response_content_type.as_deref(),
            Some("application/json;as=Table;v=v1;g=meta.k8s.io")
        );
        let agent = table_request.user_agent.as_deref().unwrap();
        assert!(agent.starts_with("kubectl"), "{agent}");
    }
}

#[test]
fn kubectl_falls_back_to_legacy_discovery() {
    for binary in kubectl_binaries() {
        let server = RunningServer::start(FakeConfig {
            objects: flux_seed(),
            disable_aggregated_discovery: true,
            ..FakeConfig::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let kubectl = Kubectl::new(
            &binary,
            &server,
            dir.path(),
            KubeUser::Token("t".to_owned()),
        );

        let beta = kubectl.json(&[
            "get",
            "gitrepositories.v1beta2.source.toolkit.fluxcd.io",
            "-A",
            "-o",
            "json",
        ]);
        assert_eq!(
            beta["items"][0]["apiVersion"],
            "source.toolkit.fluxcd.io/v1beta2"
        );
        let oci = kubectl.json(&["get", "ocirepositories", "-A", "-o", "json"]);
        assert_eq!(item_names(&oci), ["podinfo"]);

        let requests = server.requests();
        let apis = requests.iter().find(|r| r.path == "/apis").unwrap();
        assert!(
            apis.accept
                .as_deref()
                .unwrap()
                .contains("as=APIGroupDiscoveryList")
        );
        assert_eq!(
            apis.response_content_type.as_deref(),
            Some("application/json")
        );
        let paths = served_paths(&requests);
        assert!(
            paths.contains(&"/apis/source.toolkit.fluxcd.io/v1beta2"),
            "{paths:?}"
        );
        assert!(
            paths.contains(&"/apis/source.toolkit.fluxcd.io/v1"),
            "{paths:?}"
        );
    }
}

fn claims(token: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    assert!(!token.contains('='), "JWT segments carry no padding");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header, json!({"alg": "RS256", "kid": "fake"}));
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

#[test]
fn kubectl_create_token_is_answered_from_its_protobuf_body() {
    let server = flux_server();
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl::new(
        &kubectl_path(),
        &server,
        dir.path(),
        KubeUser::Token("t".to_owned()),
    );

    let token = kubectl.ok(&[
        "create",
        "token",
        "source-controller",
        "-n",
        "flux-system",
        "--audience",
        "api://AzureADTokenExchange",
        "--duration",
        "2h",
    ]);
    let claims = claims(token.trim());
    assert_eq!(claims["aud"], json!(["api://AzureADTokenExchange"]));
    assert_eq!(
        claims["sub"],
        "system:serviceaccount:flux-system:source-controller"
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        7200
    );
    let request = server
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/token"))
        .unwrap();
    assert_eq!(
        request.content_type.as_deref(),
        Some("application/vnd.kubernetes.protobuf")
    );

    let short = kubectl.fails(&[
        "create",
        "token",
        "source-controller",
        "-n",
        "flux-system",
        "--duration",
        "1m",
    ]);
    assert!(
        short.contains("may not specify a duration less than 10 minutes"),
        "{short}"
    );
}

#[test]
fn kubectl_reports_the_real_errors() {
    let server = flux_server();
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl::new(
        &kubectl_path(),
        &server,
        dir.path(),
        KubeUser::Token("t".to_owned()),
    );

    let missing = kubectl.fails(&["get", "deployment", "nope", "-n", "flux-system"]);
    assert!(
        missing.contains(r#"Error from server (NotFound): deployments.apps "nope" not found"#),
        "{missing}"
    );
    let unknown = kubectl.fails(&["get", "helmreleases"]);
    assert!(
        unknown.contains(r#"the server doesn't have a resource type "helmreleases""#),
        "{unknown}"
    );
    let delete = kubectl.fails(&[
        "delete",
        "deployment",
        "source-controller",
        "-n",
        "flux-system",
    ]);
    assert!(delete.contains("MethodNotAllowed"), "{delete}");
}

/// client-go attaches credentials (token, exec plugin, auth provider) only
/// to TLS connections (kubernetes/kubectl#744), so against this plain-HTTP
/// fake kubectl is anonymous whatever the kubeconfig says.
#[test]
fn kubectl_sends_no_credentials_over_plain_http() {
    let server = RunningServer::start(FakeConfig {
        objects: flux_seed(),
        required_token: Some("right-token".to_owned()),
        ..FakeConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl::new(
        &kubectl_path(),
        &server,
        dir.path(),
        KubeUser::Token("right-token".to_owned()),
    );
    let refused = kubectl.fails(&["get", "sa", "-n", "flux-system"]);
    assert!(
        refused.contains("Unauthorized") || refused.contains("provide credentials"),
        "{refused}"
    );
    assert!(server.requests().iter().all(|r| r.status == 401));
}

// ---------------------------------------------------------------- kube-rs

async fn kube_client(server: &RunningServer, user: KubeUser) -> kube::Client {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig_yaml(user)).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    kube::Client::try_from(config).unwrap()
}

#[tokio::test]
async fn kube_rs_authenticates_with_a_token_or_an_exec_plugin() {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use kube::api::Api;

    let server = RunningServer::start(FakeConfig {
        objects: flux_seed(),
        required_token: Some("exec-secret".to_owned()),
        ..FakeConfig::default()
    });
    let credential = r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"exec-secret"}}"#;
    let exec = KubeUser::Exec {
        command: "sh".to_owned(),
        args: vec!["-c".to_owned(), r#"printf '%s' "$CREDENTIAL""#.to_owned()],
        env: vec![("CREDENTIAL".to_owned(), credential.to_owned())],
    };
    for user in [exec, KubeUser::Token("exec-secret".to_owned())] {
        let accounts: Api<ServiceAccount> =
            Api::namespaced(kube_client(&server, user).await, "flux-system");
        let account = accounts.get("source-controller").await.unwrap();
        assert_eq!(account.metadata.name.as_deref(), Some("source-controller"));
    }
    let anonymous: Api<ServiceAccount> = Api::namespaced(
        kube_client(&server, KubeUser::Token("wrong".to_owned())).await,
        "flux-system",
    );
    let Err(kube::Error::Api(status)) = anonymous.get("source-controller").await else {
        panic!("a wrong token must be refused");
    };
    assert_eq!((status.code, status.reason.as_str()), (401, "Unauthorized"));
}

#[tokio::test]
async fn kube_rs_discovers_lists_and_requests_tokens() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    use kube::api::{Api, DynamicObject, GroupVersionKind, ListParams, PostParams};
    use kube::config::{KubeConfigOptions, Kubeconfig};
    use kube::{Client, Config, Discovery};

    let server = flux_server();
    let kubeconfig =
        Kubeconfig::from_yaml(&server.kubeconfig_yaml(KubeUser::Token("t".to_owned()))).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = Client::try_from(config).unwrap();

    let aggregated = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .unwrap();
    let legacy = Discovery::new(client.clone()).run().await.unwrap();
    for discovery in [&aggregated, &legacy] {
        let flux = discovery.get(GROUP).unwrap();
        assert_eq!(flux.preferred_version_or_latest(), "v1");
        let oci_v1 = GroupVersionKind::gvk(GROUP, "v1", "OCIRepository");
        assert!(discovery.resolve_gvk(&oci_v1).is_none());
        let oci_beta = GroupVersionKind::gvk(GROUP, "v1beta2", "OCIRepository");
        assert!(discovery.resolve_gvk(&oci_beta).is_some());
        let (_, caps) = discovery
            .resolve_gvk(&GroupVersionKind::gvk("", "v1", "ServiceAccount"))
            .unwrap();
        assert!(
            caps.subresources
                .iter()
                .any(|(r, _)| r.plural == "token" && r.kind == "TokenRequest")
        );
    }

    let (resource, _) = aggregated
        .resolve_gvk(&GroupVersionKind::gvk(GROUP, "v1beta2", "GitRepository"))
        .unwrap();
    let repositories: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let listed = repositories.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    let types = listed.items[0].types.as_ref().unwrap();
    assert_eq!(types.api_version, "source.toolkit.fluxcd.io/v1beta2");

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "flux-system");
    let deployment = deployments.get("source-controller").await.unwrap();
    assert_eq!(
        deployment
            .spec
            .template
            .spec
            .unwrap()
            .service_account_name
            .as_deref(),
        Some("source-controller")
    );
    assert_eq!(deployment.metadata.generation, Some(1));
    let metadata = deployments
        .list_metadata(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(
        metadata.items[0].metadata.name.as_deref(),
        Some("source-controller")
    );
    let Err(kube::Error::Api(status)) = deployments.get("nope").await else {
        panic!("a missing deployment must be an API error");
    };
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert_eq!(status.message, r#"deployments.apps "nope" not found"#);

    let accounts: Api<ServiceAccount> = Api::namespaced(client, "flux-system");
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(vec!["api://AzureADTokenExchange".to_owned()]),
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let issued = accounts
        .create_token_request("source-controller", &PostParams::default(), &request)
        .await
        .unwrap();
    let claims = claims(&issued.status.unwrap().token.unwrap());
    assert_eq!(
        claims["iss"],
        "https://kubernetes.default.svc.cluster.local"
    );
    assert_eq!(
        claims["kubernetes.io"]["serviceaccount"]["name"],
        "source-controller"
    );
}

// ---------------------------------------------------------------- plain HTTP

struct Reply {
    status: u16,
    content_type: String,
    retry_after: Option<String>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

fn call(request: ureq::RequestBuilder<ureq::typestate::WithoutBody>) -> Reply {
    reply(request.call().unwrap())
}

fn reply(mut response: ureq::http::Response<ureq::Body>) -> Reply {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let content_type = header("content-type").unwrap_or_default();
    let retry_after = header("retry-after");
    Reply {
        status: response.status().as_u16(),
        content_type,
        retry_after,
        body: response.body_mut().read_to_string().unwrap(),
    }
}

fn get(server: &RunningServer, path: &str) -> Reply {
    call(agent(Duration::from_secs(10)).get(format!("{}{path}", server.url())))
}

fn get_accepting(server: &RunningServer, path: &str, accept: &str) -> Reply {
    call(
        agent(Duration::from_secs(10))
            .get(format!("{}{path}", server.url()))
            .header("Accept", accept),
    )
}

fn post_json(server: &RunningServer, path: &str, body: &Value) -> Reply {
    let response = agent(Duration::from_secs(10))
        .post(format!("{}{path}", server.url()))
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .unwrap();
    reply(response)
}

fn assert_status(reply: &Reply, code: u16, reason: &str) -> Value {
    assert_eq!(reply.status, code, "{}", reply.body);
    assert_eq!(reply.content_type, "application/json");
    let status = reply.json();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["apiVersion"], "v1");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], reason);
    assert_eq!(status["code"], code);
    status
}

#[test]
fn version_health_and_legacy_discovery() {
    let server = flux_server();
    let version = get(&server, "/version").json();
    assert_eq!(
        (version["major"].as_str(), version["minor"].as_str()),
        (Some("1"), Some("33"))
    );
    assert_eq!(version["gitVersion"], "v1.33.2");
    for path in ["/healthz", "/readyz", "/livez"] {
        assert_eq!(get(&server, path).body, "ok");
    }

    let core = get(&server, "/api").json();
    assert_eq!(core["kind"], "APIVersions");
    assert_eq!(core["versions"], json!(["v1"]));

    let groups = get(&server, "/apis").json();
    assert_eq!(groups["kind"], "APIGroupList");
    let flux = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == GROUP)
        .unwrap();
    assert_eq!(
        flux["preferredVersion"],
        json!({"groupVersion": "source.toolkit.fluxcd.io/v1", "version": "v1"})
    );
    assert_eq!(flux["versions"][1]["version"], "v1beta2");
    assert_eq!(
        get(&server, "/apis/source.toolkit.fluxcd.io").json()["kind"],
        "APIGroup"
    );

    let names_at = |version: &str| -> Vec<String> {
        get(&server, &format!("/apis/{GROUP}/{version}")).json()["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names_at("v1"),
        ["gitrepositories", "gitrepositories/status"]
    );
    assert_eq!(
        names_at("v1beta2"),
        [
            "gitrepositories",
            "gitrepositories/status",
            "ocirepositories",
            "ocirepositories/status"
        ]
    );

    let core_resources = get(&server, "/api/v1").json();
    let service_accounts = core_resources["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "serviceaccounts")
        .unwrap();
    assert_eq!(
        service_accounts,
        &json!({
            "name": "serviceaccounts",
            "singularName": "serviceaccount",
            "namespaced": true,
            "kind": "ServiceAccount",
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": ["sa"],
        })
    );
    assert!(
        core_resources["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "serviceaccounts/token" && r["group"] == "authentication.k8s.io")
    );
    assert_status(
        &get(&server, "/apis/source.toolkit.fluxcd.io/v2"),
        404,
        "NotFound",
    );
}

#[test]
fn aggregated_discovery_is_served_when_asked_for() {
    let server = flux_server();
    let accept = format!("{AGGREGATED},application/json");
    let reply = get_accepting(&server, "/apis", &accept);
    assert_eq!(reply.content_type, AGGREGATED);
    let list = reply.json();
    assert_eq!(list["kind"], "APIGroupDiscoveryList");
    assert_eq!(list["apiVersion"], "apidiscovery.k8s.io/v2");
    let flux = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == GROUP)
        .unwrap();
    let versions: Vec<&str> = flux["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["v1", "v1beta2"]);
    let v1_resources: Vec<&str> = flux["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["resource"].as_str().unwrap())
        .collect();
    assert_eq!(v1_resources, ["gitrepositories"]);
    let oci = &flux["versions"][1]["resources"][1];
    assert_eq!(oci["resource"], "ocirepositories");
    assert_eq!(
        oci["responseKind"],
        json!({"group": GROUP, "version": "v1beta2", "kind": "OCIRepository"})
    );
    assert_eq!(oci["scope"], "Namespaced");
    assert_eq!(oci["categories"], json!(["fluxcd"]));

    let core = get_accepting(&server, "/api", &accept).json();
    assert_eq!(core["items"].as_array().unwrap().len(), 1);
    assert_eq!(core["items"][0]["versions"][0]["version"], "v1");

    // A client that does not ask gets the legacy shape.
    assert_eq!(get(&server, "/apis").content_type, "application/json");
    let refused = get_accepting(&server, "/apis", "application/vnd.kubernetes.protobuf");
    assert_status(&refused, 406, "NotAcceptable");
}

fn configmap(namespace: &str, name: &str, labels: &Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": {"k": "v"},
    })
}

fn configmap_server(page_limit_max: Option<usize>) -> RunningServer {
    let objects = vec![
        configmap("b", "one", &json!({"app": "web", "tier": "front"})),
        configmap("a", "two", &json!({"app": "web", "tier": "back"})),
        configmap("a", "one", &json!({"app": "db"})),
        configmap("c", "one", &json!({"app": "web", "release": "stable"})),
        configmap("b", "two", &json!({})),
        configmap("c", "two", &json!({"app": "cache", "tier": "back"})),
        configmap("a", "three", &json!({"app": "web"})),
    ];
    RunningServer::start(FakeConfig {
        objects,
        page_limit_max,
        ..FakeConfig::default()
    })
}

fn keys(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["metadata"]["namespace"].as_str().unwrap(),
                i["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn lists_page_with_limit_and_continue_in_stable_order() {
    let server = configmap_server(None);
    let mut seen = Vec::new();
    let mut remaining = Vec::new();
    let mut path = "/api/v1/configmaps?limit=3".to_owned();
    loop {
        let page = get(&server, &path).json();
        assert_eq!(page["kind"], "ConfigMapList");
        assert_eq!(page["apiVersion"], "v1");
        assert_eq!(page["items"][0]["kind"], "ConfigMap");
        seen.push(keys(&page));
        match page["metadata"]["continue"].as_str() {
            Some(token) => {
                remaining.push(page["metadata"]["remainingItemCount"].as_u64().unwrap());
                path = format!("/api/v1/configmaps?limit=3&continue={token}");
            }
            None => break,
        }
    }
    assert_eq!(
        seen,
        vec![
            vec!["a/one", "a/three", "a/two"],
            vec!["b/one", "b/two", "c/one"],
            vec!["c/two"],
        ]
    );
    assert_eq!(remaining, [4, 1]);

    let in_a = get(&server, "/api/v1/namespaces/a/configmaps?limit=2").json();
    assert_eq!(keys(&in_a), ["a/one", "a/three"]);
    assert_eq!(in_a["metadata"]["remainingItemCount"], 1);

    let everything = get(&server, "/api/v1/configmaps").json();
    assert_eq!(keys(&everything).len(), 7);
    assert!(everything["metadata"].get("continue").is_none());
    assert!(everything["metadata"]["resourceVersion"].is_string());

    let namespaces = get(&server, "/api/v1/namespaces").json();
    assert_eq!(item_names(&namespaces), ["a", "b", "c", "default"]);
    assert_eq!(
        namespaces["items"][0]["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "a"
    );

    assert_status(
        &get(&server, "/api/v1/configmaps?limit=2&continue=bm9wZQ"),
        400,
        "BadRequest",
    );
}

#[test]
fn page_limit_max_caps_what_the_client_asks_for() {
    let server = configmap_server(Some(2));
    let first = get(&server, "/api/v1/configmaps?limit=5").json();
    assert_eq!(keys(&first), ["a/one", "a/three"]);
    let token = first["metadata"]["continue"].as_str().unwrap();
    let second = get(
        &server,
        &format!("/api/v1/configmaps?limit=5&continue={token}"),
    )
    .json();
    assert_eq!(keys(&second), ["a/two", "b/one"]);
    assert_eq!(keys(&get(&server, "/api/v1/configmaps").json()).len(), 7);
}

#[test]
fn label_and_field_selectors_filter_lists() {
    let server = configmap_server(None);
    let select = |query: &str| keys(&get(&server, &format!("/api/v1/configmaps?{query}")).json());
    assert_eq!(
        select("labelSelector=app%3Dweb"),
        ["a/three", "a/two", "b/one", "c/one"]
    );
    assert_eq!(select("labelSelector=app%3D%3Dweb,tier%3Dfront"), ["b/one"]);
    assert_eq!(
        select("labelSelector=app!%3Dweb"),
        ["a/one", "b/two", "c/two"]
    );
    assert_eq!(select("labelSelector=tier"), ["a/two", "b/one", "c/two"]);
    assert_eq!(select("labelSelector=!app"), ["b/two"]);
    assert_eq!(
        select("labelSelector=app+in+(db,cache)"),
        ["a/one", "c/two"]
    );
    assert_eq!(
        select("labelSelector=tier+notin+(back)"),
        ["a/one", "a/three", "b/one", "b/two", "c/one"]
    );
    assert_eq!(
        select("fieldSelector=metadata.name%3Dtwo"),
        ["a/two", "b/two", "c/two"]
    );
    assert_eq!(
        select("fieldSelector=metadata.namespace%3Dc,metadata.name!%3Dtwo"),
        ["c/one"]
    );
    assert_eq!(
        select("labelSelector=app%3Dweb&fieldSelector=metadata.namespace%3Da"),
        ["a/three", "a/two"]
    );

    let filtered = get(
        &server,
        "/api/v1/configmaps?labelSelector=app%3Dweb&limit=1",
    )
    .json();
    assert!(filtered["metadata"]["continue"].is_string());
    assert!(filtered["metadata"].get("remainingItemCount").is_none());

    let bad = assert_status(
        &get(&server, "/api/v1/configmaps?labelSelector=app+in+()"),
        400,
        "BadRequest",
    );
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .starts_with("unable to parse requirement")
    );
    let field = assert_status(
        &get(&server, "/api/v1/configmaps?fieldSelector=data.k%3Dv"),
        400,
        "BadRequest",
    );
    assert_eq!(field["message"], "field label not supported: data.k");
}

#[test]
fn missing_things_answer_404_like_the_real_server() {
    let server = flux_server();
    let unknown = assert_status(
        &get(&server, "/apis/apps/v1/namespaces/flux-system/widgets"),
        404,
        "NotFound",
    );
    assert_eq!(
        unknown["message"],
        "the server could not find the requested resource"
    );
    assert_eq!(unknown["details"], json!({}));
    // OCIRepository is not served at v1.
    assert_status(
        &get(&server, "/apis/source.toolkit.fluxcd.io/v1/ocirepositories"),
        404,
        "NotFound",
    );
    // A namespaced kind has no cluster-scoped object path.
    assert_status(
        &get(&server, "/apis/apps/v1/deployments/source-controller"),
        404,
        "NotFound",
    );

    let deployment = assert_status(
        &get(
            &server,
            "/apis/apps/v1/namespaces/flux-system/deployments/nope",
        ),
        404,
        "NotFound",
    );
    assert_eq!(
        deployment["message"],
        r#"deployments.apps "nope" not found"#
    );
    assert_eq!(
        deployment["details"],
        json!({"name": "nope", "group": "apps", "kind": "deployments"})
    );
    let account = assert_status(
        &get(
            &server,
            "/api/v1/namespaces/flux-system/serviceaccounts/nope",
        ),
        404,
        "NotFound",
    );
    assert_eq!(account["message"], r#"serviceaccounts "nope" not found"#);
    assert_eq!(
        account["details"],
        json!({"name": "nope", "kind": "serviceaccounts"})
    );
    let repository = assert_status(
        &get(
            &server,
            "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories/nope",
        ),
        404,
        "NotFound",
    );
    assert_eq!(
        repository["message"],
        r#"gitrepositories.source.toolkit.fluxcd.io "nope" not found"#
    );

    let namespace = get(&server, "/api/v1/namespaces/flux-system").json();
    assert_eq!(namespace["kind"], "Namespace");
    let status = get(&server, "/api/v1/namespaces/flux-system/status").json();
    assert_eq!(status["metadata"]["name"], "flux-system");
}

#[test]
fn custom_resources_are_served_at_every_served_version() {
    let server = flux_server();
    let path = |version: &str| {
        format!("/apis/{GROUP}/{version}/namespaces/flux-system/gitrepositories/flux-system")
    };
    let v1 = get(&server, &path("v1")).json();
    let beta = get(&server, &path("v1beta2")).json();
    assert_eq!(v1["apiVersion"], "source.toolkit.fluxcd.io/v1");
    assert_eq!(beta["apiVersion"], "source.toolkit.fluxcd.io/v1beta2");
    assert_eq!(v1["metadata"], beta["metadata"]);
    assert_eq!(v1["spec"], beta["spec"]);

    let stored = server
        .object(
            "source.toolkit.fluxcd.io/v1beta2",
            "GitRepository",
            Some("flux-system"),
            "flux-system",
        )
        .unwrap();
    assert_eq!(stored, beta);
    let metadata = &stored["metadata"];
    assert_eq!(metadata["uid"].as_str().unwrap().len(), 36);
    assert_eq!(metadata["generation"], 1);
    assert!(
        metadata["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );
    assert!(
        metadata["creationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert!(
        server
            .object(
                "source.toolkit.fluxcd.io/v1",
                "OCIRepository",
                Some("flux-system"),
                "podinfo"
            )
            .is_none()
    );
    let crd = server
        .object(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            "gitrepositories.source.toolkit.fluxcd.io",
        )
        .unwrap();
    assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));
    assert_eq!(crd["status"]["conditions"][1]["type"], "Established");
}

#[test]
fn table_and_metadata_renderings_follow_the_accept_header() {
    let server = flux_server();
    let table = get_accepting(
        &server,
        "/apis/apps/v1/namespaces/flux-system/deployments?includeObject=Object",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    );
    assert_eq!(
        table.content_type,
        "application/json;as=Table;v=v1;g=meta.k8s.io"
    );
    let table = table.json();
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["columnDefinitions"][0]["name"], "Name");
    assert_eq!(table["rows"][0]["cells"][0], "source-controller");
    assert!(
        table["rows"][0]["cells"][1]
            .as_str()
            .unwrap()
            .ends_with('s')
    );
    assert_eq!(table["rows"][0]["object"]["kind"], "Deployment");

    let metadata = get_accepting(
        &server,
        "/apis/apps/v1/namespaces/flux-system/deployments",
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    )
    .json();
    assert_eq!(metadata["kind"], "PartialObjectMetadataList");
    assert_eq!(metadata["items"][0]["kind"], "PartialObjectMetadata");
    assert!(metadata["items"][0].get("spec").is_none());
}

#[test]
fn token_requests_issue_jwts_with_the_real_claims() {
    let server = RunningServer::start(FakeConfig {
        objects: flux_seed(),
        issuer: Some("https://oidc.example.test/tenant/".to_owned()),
        ..FakeConfig::default()
    });
    let path = "/api/v1/namespaces/flux-system/serviceaccounts/source-controller/token";
    let request = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"audiences": ["api://AzureADTokenExchange"], "expirationSeconds": 3600},
    });
    let reply = post_json(&server, path, &request);
    assert_eq!(reply.status, 201, "{}", reply.body);
    let issued = reply.json();
    assert_eq!(issued["kind"], "TokenRequest");
    assert_eq!(issued["apiVersion"], "authentication.k8s.io/v1");
    let payload = claims(issued["status"]["token"].as_str().unwrap());
    assert_eq!(payload["iss"], "https://oidc.example.test/tenant/");
    assert_eq!(
        payload["sub"],
        "system:serviceaccount:flux-system:source-controller"
    );
    assert_eq!(payload["aud"], json!(["api://AzureADTokenExchange"]));
    let iat = payload["iat"].as_i64().unwrap();
    assert_eq!(payload["nbf"].as_i64().unwrap(), iat);
    assert_eq!(payload["exp"].as_i64().unwrap(), iat + 3600);
    let account = server
        .object(
            "v1",
            "ServiceAccount",
            Some("flux-system"),
            "source-controller",
        )
        .unwrap();
    assert_eq!(
        payload["kubernetes.io"],
        json!({
            "namespace": "flux-system",
            "serviceaccount": {"name": "source-controller", "uid": account["metadata"]["uid"]},
        })
    );
    let expiration: jiff::Timestamp = issued["status"]["expirationTimestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(expiration.as_second(), iat + 3600);

    let issued_default = post_json(&server, path, &json!({"spec": {}})).json();
    let defaulted = claims(issued_default["status"]["token"].as_str().unwrap());
    assert_eq!(
        defaulted["aud"],
        json!(["https://oidc.example.test/tenant/"])
    );
    assert_eq!(
        defaulted["exp"].as_i64().unwrap() - defaulted["iat"].as_i64().unwrap(),
        3600
    );

    let short = post_json(&server, path, &json!({"spec": {"expirationSeconds": 60}}));
    let invalid = assert_status(&short, 422, "Invalid");
    assert_eq!(
        invalid["details"]["causes"][0]["field"],
        "spec.expirationSeconds"
    );
    assert!(
        invalid["message"]
            .as_str()
            .unwrap()
            .ends_with("may not specify a duration less than 10 minutes")
    );

    let missing = post_json(
        &server,
        "/api/v1/namespaces/flux-system/serviceaccounts/nope/token",
        &request,
    );
    assert_status(&missing, 404, "NotFound");

    let recorded = server
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert_eq!(recorded.content_type.as_deref(), Some("application/json"));
    assert_eq!(recorded.body.as_deref(), Some(request.to_string().as_str()));
}

#[test]
fn token_override_replaces_every_issued_token() {
    let server = RunningServer::start(FakeConfig {
        objects: flux_seed(),
        token_override: Some("canary-token-7f3a".to_owned()),
        ..FakeConfig::default()
    });
    let issued = post_json(
        &server,
        "/api/v1/namespaces/flux-system/serviceaccounts/source-controller/token",
        &json!({"spec": {"audiences": ["api://AzureADTokenExchange"]}}),
    )
    .json();
    assert_eq!(issued["status"]["token"], "canary-token-7f3a");
}

#[test]
fn oidc_discovery_documents_describe_the_issuer() {
    let server = RunningServer::start(FakeConfig {
        issuer: Some("https://westeurope.oic.prod-aks.azure.com/tenant/cluster/".to_owned()),
        ..FakeConfig::default()
    });
    let configuration = get(&server, "/.well-known/openid-configuration").json();
    assert_eq!(
        configuration,
        json!({
            "issuer": "https://westeurope.oic.prod-aks.azure.com/tenant/cluster/",
            "jwks_uri": "https://westeurope.oic.prod-aks.azure.com/tenant/cluster/openid/v1/jwks",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })
    );
    let jwks = get(&server, "/openid/v1/jwks");
    assert_eq!(jwks.content_type, "application/jwk-set+json");
    let key = &jwks.json()["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["alg"].as_str(),
            key["kid"].as_str()
        ),
        (Some("RSA"), Some("RS256"), Some("fake"))
    );
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(key["n"].as_str().unwrap())
            .unwrap()
            .len(),
        256
    );
}

#[test]
fn writes_and_watches_are_refused_with_405() {
    let server = flux_server();
    let path = "/apis/apps/v1/namespaces/flux-system/deployments";
    let create = post_json(
        &server,
        path,
        &json!({"apiVersion": "apps/v1", "kind": "Deployment"}),
    );
    assert_status(&create, 405, "MethodNotAllowed");
    let delete = agent(Duration::from_secs(5))
        .delete(format!("{}{path}/source-controller", server.url()))
        .call()
        .unwrap();
    assert_status(&reply(delete), 405, "MethodNotAllowed");
    assert_status(
        &get(&server, &format!("{path}?watch=true")),
        405,
        "MethodNotAllowed",
    );
    // A write to something that does not exist is still a 404 first.
    let unknown = post_json(
        &server,
        "/apis/apps/v1/namespaces/flux-system/widgets",
        &json!({}),
    );
    assert_status(&unknown, 404, "NotFound");
}

#[test]
fn a_required_token_turns_away_everyone_else() {
    let server = RunningServer::start(FakeConfig {
        objects: flux_seed(),
        required_token: Some("s3cret".to_owned()),
        ..FakeConfig::default()
    });
    let path = "/api/v1/namespaces/flux-system/serviceaccounts";
    let refused = assert_status(&get(&server, path), 401, "Unauthorized");
    assert_eq!(refused["message"], "Unauthorized");
    let wrong = get_with_token(&server, path, "Bearer nope");
    assert_status(&wrong, 401, "Unauthorized");
    let allowed = get_with_token(&server, path, "Bearer s3cret");
    assert_eq!(allowed.status, 200);
    assert_eq!(item_names(&allowed.json()), ["source-controller"]);
}

fn get_with_token(server: &RunningServer, path: &str, authorization: &str) -> Reply {
    call(
        agent(Duration::from_secs(5))
            .get(format!("{}{path}", server.url()))
            .header("Authorization", authorization),
    )
}

// ---------------------------------------------------------------- faults

#[test]
fn status_faults_carry_the_real_reasons_and_count_down() {
    let deployments = "/apis/apps/v1/namespaces/flux-system/deployments";
    let server = RunningServer::start(FakeConfig {
        objects: flux_seed(),
        faults: vec![
            Fault::new("/deployments", 403, FaultBehaviour::Status)
                .method("GET")
                .times(2),
            Fault::new("/serviceaccounts", 429, FaultBehaviour::Status)
                .retry_after(7)
                .times(1),
            Fault::new("/gitrepositories", 500, FaultBehaviour::Status),
            Fault::new("limit=404", 404, FaultBehaviour::Status),
        ],
        ..FakeConfig::default()
    });
    let forbidden = assert_status(&get(&server, deployments), 403, "Forbidden");
    assert_eq!(
        forbidden["message"],
        r#"deployments.apps is forbidden: User "fake" cannot list resource "deployments" in API group "apps" in the namespace "flux-system""#
    );
    let named = assert_status(
        &get(&server, &format!("{deployments}/source-controller")),
        403,
        "Forbidden",
    );
    assert_eq!(
        named["details"],
        json!({"name": "source-controller", "group": "apps", "kind": "deployments"})
    );
    // Two were injected; the third request is answered normally.
    assert_eq!(get(&server, deployments).status, 200);

    let throttled = get(&server, "/api/v1/namespaces/flux-system/serviceaccounts");
    let status = assert_status(&throttled, 429, "TooManyRequests");
    assert_eq!(throttled.retry_after.as_deref(), Some("7"));
    assert_eq!(status["details"]["retryAfterSeconds"], 7);
    assert_eq!(
        get(&server, "/api/v1/namespaces/flux-system/serviceaccounts").status,
        200
    );

    for _ in 0..3 {
        let failed = assert_status(
            &get(&server, "/apis/source.toolkit.fluxcd.io/v1/gitrepositories"),
            500,
            "InternalError",
        );
        assert_eq!(failed["message"], "Internal error occurred: injected fault");
    }
    // Matching covers the query string too.
    assert_status(
        &get(&server, "/api/v1/configmaps?limit=404"),
        404,
        "NotFound",
    );
    assert_eq!(get(&server, "/api/v1/configmaps?limit=5").status, 200);
}

#[test]
fn a_hanging_request_times_out_while_others_are_served() {
    let server = RunningServer::start(FakeConfig {
        objects: flux_seed(),
        faults: vec![Fault::new("/serviceaccounts", 200, FaultBehaviour::Hang).times(1)],
        ..FakeConfig::default()
    });
    let started = Instant::now();
    let hung = agent(Duration::from_millis(400))
        .get(format!(
            "{}/api/v1/namespaces/flux-system/serviceaccounts",
            server.url()
        ))
        .call();
    assert!(hung.is_err(), "a hung request must time out");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(get(&server, "/version").status, 200);
    assert_eq!(
        get(&server, "/api/v1/namespaces/flux-system/serviceaccounts").status,
        200
    );
    assert!(!server.requests().iter().any(|r| r.status != 200));
    // Dropping the server with a connection still hanging must not block.
}

/// Raw HTTP/1.1, to see exactly what reached the socket.
fn raw_get(server: &RunningServer, path: &str) -> (String, Vec<u8>) {
    let address = server.url().trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: fake\r\nAccept: application/json\r\n\r\n"
    )
    .unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).unwrap();
    let split = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(received[..split].to_vec()).unwrap();
    (head, received[split + 4..].to_vec())
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn close_mid_response_cuts_the_body_short() {
    let path = "/apis/apps/v1/namespaces/flux-system/deployments";
    let server = RunningServer::start(FakeConfig {
        objects: flux_seed(),
        faults: vec![Fault::new("/deployments", 200, FaultBehaviour::CloseMidResponse).times(2)],
        ..FakeConfig::default()
    });
    let (head, body) = raw_get(&server, path);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let promised = content_length(&head);
    assert!(
        !body.is_empty() && body.len() < promised,
        "{} of {promised} bytes",
        body.len()
    );
    assert!(body.starts_with(br#"{"kind":"DeploymentList""#) || body.starts_with(b"{"));

    let cut = agent(Duration::from_secs(5))
        .get(format!("{}{path}", server.url()))
        .call()
        .unwrap();
    assert_eq!(cut.status().as_u16(), 200);
    assert!(
        cut.into_body().read_to_string().is_err(),
        "a cut body must fail to read"
    );

    let whole = get(&server, path);
    assert_eq!(item_names(&whole.json()), ["source-controller"]);
}

#[test]
fn malformed_json_is_a_complete_response_that_does_not_parse() {
    let server = RunningServer::start(FakeConfig {
        objects: flux_seed(),
        faults: vec![
            Fault::new("/deployments", 200, FaultBehaviour::MalformedJson).times(1),
            Fault::new("/configmaps", 503, FaultBehaviour::MalformedJson).retry_after(1),
        ],
        ..FakeConfig::default()
    });
    let broken = get(&server, "/apis/apps/v1/namespaces/flux-system/deployments");
    assert_eq!(broken.status, 200);
    assert_eq!(broken.content_type, "application/json");
    assert!(
        serde_json::from_str::<Value>(&broken.body).is_err(),
        "{}",
        broken.body
    );
    let unavailable = get(&server, "/api/v1/configmaps");
    assert_eq!(unavailable.status, 503);
    assert_eq!(unavailable.retry_after.as_deref(), Some("1"));
    assert!(serde_json::from_str::<Value>(&unavailable.body).is_err());
}

#[test]
fn latency_is_added_to_every_response() {
    let server = RunningServer::start(FakeConfig {
        latency: Duration::from_millis(250),
        ..FakeConfig::default()
    });
    for path in [
        "/version",
        "/api/v1/namespaces",
        "/apis/apps/v1/namespaces/x/deployments/nope",
    ] {
        let started = Instant::now();
        get(&server, path);
        assert!(started.elapsed() >= Duration::from_millis(250), "{path}");
    }
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.duration >= Duration::from_millis(250))
    );
}

#[test]
fn the_request_log_has_one_json_line_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let server = RunningServer::start(FakeConfig {
        objects: flux_seed(),
        request_log: Some(log.clone()),
        ..FakeConfig::default()
    });
    get(&server, "/version");
    get(
        &server,
        "/api/v1/namespaces/flux-system/serviceaccounts?limit=1&labelSelector=a%3Db",
    );
    get(
        &server,
        "/api/v1/namespaces/flux-system/serviceaccounts/nope",
    );
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let mut fields: Vec<&String> = lines[1].as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(fields, ["durationMs", "method", "path", "query", "status"]);
    assert_eq!(lines[0]["query"], Value::Null);
    assert_eq!(
        lines[1]["path"],
        "/api/v1/namespaces/flux-system/serviceaccounts"
    );
    assert_eq!(lines[1]["query"], "limit=1&labelSelector=a%3Db");
    assert_eq!(lines[2]["status"], 404);
    assert!(
        lines
            .iter()
            .all(|l| l["method"] == "GET" && l["durationMs"].is_u64())
    );

    let records = server.requests();
    assert_eq!(records.len(), 3);
    assert_eq!(records[2].status, 404);
    assert_eq!(
        records[1].query.as_deref(),
        Some("limit=1&labelSelector=a%3Db")
    );
}

// ---------------------------------------------------------------- seeds

#[test]
fn seed_directories_load_yaml_json_and_lists() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("flux/sources");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::write(
        dir.path().join("crd.yaml"),
        serde_json::to_string(&crd("gitrepositories", "GitRepository", &["v1"], "v1")).unwrap(),
    )
    .unwrap();
    std::fs::write(
        nested.join("repos.yml"),
        "---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  url: https://example.test/apps\n---\n# an empty document\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ServiceAccount\n  metadata:\n    name: kustomize-controller\n    namespace: flux-system\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: settings\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("node.json"),
        r#"{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "aks-nodepool1-0", "namespace": "ignored"}}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("README.md"), "not a manifest").unwrap();

    let config = FakeConfig::from_seed_dir(dir.path()).unwrap();
    assert_eq!(config.objects.len(), 5);
    let server = RunningServer::start(config);
    assert!(
        server
            .object(
                "source.toolkit.fluxcd.io/v1",
                "GitRepository",
                Some("flux-system"),
                "apps"
            )
            .is_some()
    );
    assert!(
        server
            .object(
                "v1",
                "ServiceAccount",
                Some("flux-system"),
                "kustomize-controller"
            )
            .is_some()
    );
    let settings = server
        .object("v1", "ConfigMap", Some("default"), "settings")
        .unwrap();
    assert_eq!(settings["metadata"]["namespace"], "default");
    let node = server
        .object("v1", "Node", None, "aks-nodepool1-0")
        .unwrap();
    assert!(node["metadata"].get("namespace").is_none());
    assert_eq!(
        item_names(&get(&server, "/api/v1/namespaces").json()),
        ["default", "flux-system"]
    );

    std::fs::write(
        dir.path().join("helm.yaml"),
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: podinfo\n  namespace: flux-system\n",
    )
    .unwrap();
    let error = FakeConfig::from_seed_dir(dir.path()).unwrap_err();
    assert!(error.contains("HelmRelease"), "{error}");
}

#[test]
fn kubeconfigs_name_the_fake_context() {
    let server = RunningServer::start(FakeConfig::default());
    let yaml = server.kubeconfig_yaml(KubeUser::Token("abc".to_owned()));
    let parsed: Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(parsed["current-context"], "fake");
    assert_eq!(
        parsed["contexts"][0]["context"],
        json!({"cluster": "fake", "user": "fake", "namespace": "default"})
    );
    assert_eq!(parsed["clusters"][0]["cluster"]["server"], server.url());
    assert_eq!(parsed["users"][0]["user"]["token"], "abc");
}

// ---------------------------------------------------------------- server-side apply

const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/flux-system/deployments/source-controller";
const APPLY_YAML: &str = "application/apply-patch+yaml";
const SEED_MANAGER: &str = r#""kubectl-client-side-apply" using apps/v1"#;

/// source-controller as Flux installs it (args, env, a mount, a volume), its
/// ServiceAccount and a running pod of it.
fn controller_seed() -> Vec<Value> {
    let mut objects = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": flux::NS}}),
        flux::service_account(flux::NS, "source-controller"),
        flux::controller(7, "source-controller"),
    ];
    objects.push(flux::pod_of(&objects, "source-controller", false));
    objects
}

fn controller_server() -> RunningServer {
    RunningServer::start(FakeConfig {
        objects: controller_seed(),
        ..FakeConfig::default()
    })
}

fn patch_as(
    server: &RunningServer,
    path: &str,
    query: &str,
    content_type: &str,
    body: &str,
) -> Reply {
    let response = agent(Duration::from_secs(10))
        .patch(format!("{}{path}?{query}", server.url()))
        .header("Content-Type", content_type)
        .send(body.to_owned())
        .unwrap();
    reply(response)
}

fn apply(server: &RunningServer, path: &str, query: &str, body: &Value) -> Reply {
    patch_as(server, path, query, APPLY_YAML, &body.to_string())
}

fn deployment_config(spec: &Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "source-controller", "namespace": flux::NS},
        "spec": spec,
    })
}

/// A configuration of the manager container alone.
fn manager_config(container: &Value) -> Value {
    let mut container = container.clone();
    container["name"] = json!("manager");
    deployment_config(&json!({"template": {"spec": {"containers": [container]}}}))
}

fn deployment(server: &RunningServer) -> Value {
    server
        .object("apps/v1", "Deployment", Some(flux::NS), "source-controller")
        .unwrap()
}

fn managed_entry<'a>(object: &'a Value, manager: &str) -> &'a Value {
    object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == manager)
        .unwrap_or_else(|| panic!("no managedFields entry of {manager}: {object:#}"))
}

fn managers(object: &Value) -> Vec<String> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    format!(
                        "{}/{}",
                        e["manager"].as_str().unwrap(),
                        e["operation"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn container(object: &Value) -> &Value {
    &object["spec"]["template"]["spec"]["containers"][0]
}

fn field_of(items: &Value, field: &str) -> Vec<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i[field].as_str().unwrap().to_owned())
        .collect()
}

fn names(items: &Value) -> Vec<String> {
    field_of(items, "name")
}

fn pods(server: &RunningServer) -> Vec<Value> {
    get(server, "/api/v1/namespaces/flux-system/pods").json()["items"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn apply_creates_an_object_owned_by_its_applier() {
    let server = flux_server();
    let path = "/api/v1/namespaces/flux-system/configmaps/settings";
    // YAML as well as JSON: JSON is YAML, and clients send either.
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  labels:\n    app: azflux\ndata:\n  mode: webhook\n";
    let created = patch_as(&server, path, "fieldManager=azflux", APPLY_YAML, yaml);
    assert_eq!(created.status, 201, "{}", created.body);
    let object = created.json();
    assert_eq!(object["metadata"]["namespace"], "flux-system");
    assert_eq!(object["data"], json!({"mode": "webhook"}));
    assert!(object["metadata"]["uid"].is_string());
    let entries = object["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["manager"], "azflux");
    assert_eq!(entries[0]["operation"], "Apply");
    assert_eq!(entries[0]["apiVersion"], "v1");
    assert_eq!(entries[0]["fieldsType"], "FieldsV1");
    assert!(entries[0]["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        entries[0]["fieldsV1"],
        json!({"f:data": {"f:mode": {}}, "f:metadata": {"f:labels": {"f:app": {}}}})
    );
    assert_eq!(get(&server, path).json(), object);

    // The same configuration again changes nothing and writes nothing.
    let again = patch_as(&server, path, "fieldManager=azflux", APPLY_YAML, yaml);
    assert_eq!(again.status, 200);
    assert_eq!(again.json(), object);
    assert_eq!(server.writes().len(), 1);

    let elsewhere = apply(
        &server,
        "/api/v1/namespaces/nope/configmaps/settings",
        "fieldManager=azflux",
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}}),
    );
    let status = assert_status(&elsewhere, 404, "NotFound");
    assert_eq!(status["message"], r#"namespaces "nope" not found"#);
}

#[test]
fn seeded_objects_are_owned_by_the_seed_manager() {
    let server = controller_server();
    let object = deployment(&server);
    assert_eq!(managers(&object), ["kubectl-client-side-apply/Update"]);
    let entry = managed_entry(&object, "kubectl-client-side-apply");
    assert_eq!(entry["apiVersion"], "apps/v1");
    let fields = &entry["fieldsV1"];
    assert_eq!(
        fields["f:metadata"]["f:labels"]["f:control-plane"],
        json!({})
    );
    assert_eq!(
        fields["f:spec"]["f:selector"],
        json!({}),
        "selectors are atomic"
    );
    let manager =
        &fields["f:spec"]["f:template"]["f:spec"]["f:containers"][r#"k:{"name":"manager"}"#];
    assert_eq!(manager["."], json!({}));
    assert_eq!(manager["f:args"], json!({}), "args are atomic");
    assert_eq!(
        manager["f:volumeMounts"][r#"k:{"mountPath":"/tmp"}"#],
        json!({".": {}, "f:mountPath": {}, "f:name": {}})
    );
    assert_eq!(
        fields["f:spec"]["f:template"]["f:spec"]["f:volumes"][r#"k:{"name":"temp"}"#],
        json!({".": {}, "f:emptyDir": {}, "f:name": {}})
    );
    // Server-owned metadata and the reset status belong to no one.
    assert!(fields["f:metadata"].get("f:name").is_none());
    assert!(fields.get("f:status").is_none());
    let pod = &pods(&server)[0];
    assert!(
        managed_entry(pod, "kubectl-client-side-apply")["fieldsV1"]
            .get("f:status")
            .is_none()
    );

    // Without a seed manager objects carry no managedFields, and the first
    // apply credits their fields to before-first-apply, as the real server does.
    let untracked = RunningServer::start(FakeConfig {
        objects: controller_seed(),
        seed_manager: None,
        ..FakeConfig::default()
    });
    assert!(
        deployment(&untracked)["metadata"]
            .get("managedFields")
            .is_none()
    );
    let applied = apply(
        &untracked,
        DEPLOYMENT,
        "fieldManager=azflux",
        &manager_config(&json!({"image": "ghcr.io/fluxcd/source-controller:v1.8.0"})),
    );
    let status = assert_status(&applied, 409, "Conflict");
    assert_eq!(
        status["message"],
        r#"Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: .spec.template.spec.containers[name="manager"].image"#
    );
}

#[test]
fn keyed_lists_merge_by_key_and_leave_other_entries_alone() {
    let server = controller_server();
    let before = deployment(&server);
    let config = manager_config(&json!({
        "env": [{"name": "AZURE_CLIENT_ID", "value": flux::CLIENT_ID}],
        "volumeMounts": [{"name": "azure-token", "mountPath": "/var/run/service-account", "readOnly": true}],
    }));
    let mut config = config;
    config["spec"]["template"]["spec"]["volumes"] = json!([{
        "name": "azure-token",
        "projected": {"sources": [{"serviceAccountToken": {"audience": "api://AzureADTokenExchange", "path": "azure-token"}}]},
    }]);
    let reply = apply(&server, DEPLOYMENT, "fieldManager=azflux", &config);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let after = deployment(&server);
    assert_eq!(reply.json()["spec"], after["spec"]);
    let manager = container(&after);
    assert_eq!(
        names(&manager["env"]),
        ["RUNTIME_NAMESPACE", "AZURE_CLIENT_ID"]
    );
    assert_eq!(manager["env"][0], container(&before)["env"][0]);
    assert_eq!(
        field_of(&manager["volumeMounts"], "mountPath"),
        ["/tmp", "/var/run/service-account"]
    );
    assert_eq!(
        names(&after["spec"]["template"]["spec"]["volumes"]),
        ["temp", "azure-token"]
    );
    assert_eq!(manager["args"], container(&before)["args"]);
    assert_eq!(manager["image"], container(&before)["image"]);
    assert_eq!(after["metadata"]["generation"], 2);

    assert_eq!(managers(&after)[0], "azflux/Apply", "appliers come first");
    assert_eq!(
        managed_entry(&after, "azflux")["fieldsV1"],
        json!({"f:spec": {"f:template": {"f:spec": {
            "f:containers": {r#"k:{"name":"manager"}"#: {
                ".": {},
                "f:env": {r#"k:{"name":"AZURE_CLIENT_ID"}"#: {".": {}, "f:name": {}, "f:value": {}}},
                "f:name": {},
                "f:volumeMounts": {r#"k:{"mountPath":"/var/run/service-account"}"#: {
                    ".": {}, "f:mountPath": {}, "f:name": {}, "f:readOnly": {},
                }},
            }},
            "f:volumes": {r#"k:{"name":"azure-token"}"#: {".": {}, "f:name": {}, "f:projected": {"f:sources": {}}}},
        }}}})
    );
    // The seed manager keeps everything it had: nothing of it changed.
    assert_eq!(
        managed_entry(&after, "kubectl-client-side-apply")["fieldsV1"],
        managed_entry(&before, "kubectl-client-side-apply")["fieldsV1"]
    );
}

#[test]
fn conflicts_name_manager_and_field_and_force_takes_ownership() {
    let server = controller_server();
    let args = json!(["--log-level=debug"]);
    let config = manager_config(&json!({"args": args}));
    let refused = apply(&server, DEPLOYMENT, "fieldManager=azflux", &config);
    let status = assert_status(&refused, 409, "Conflict");
    let field = r#".spec.template.spec.containers[name="manager"].args"#;
    assert_eq!(
        status["message"],
        format!("Apply failed with 1 conflict: conflict with {SEED_MANAGER}: {field}")
    );
    assert_eq!(
        status["details"],
        json!({
            "name": "source-controller",
            "group": "apps",
            "kind": "deployments",
            "causes": [{
                "reason": "FieldManagerConflict",
                "message": format!("conflict with {SEED_MANAGER}"),
                "field": field,
            }],
        })
    );
    assert!(server.writes().is_empty());

    let two =
        manager_config(&json!({"args": args, "image": "ghcr.io/fluxcd/source-controller:v1.8.0"}));
    let status = assert_status(
        &apply(&server, DEPLOYMENT, "fieldManager=azflux", &two),
        409,
        "Conflict",
    );
    assert_eq!(
        status["message"],
        format!(
            "Apply failed with 2 conflicts: conflicts with {SEED_MANAGER}:\n- {field}\n- .spec.template.spec.containers[name=\"manager\"].image"
        )
    );
    assert_eq!(status["details"]["causes"].as_array().unwrap().len(), 2);

    let forced = apply(
        &server,
        DEPLOYMENT,
        "fieldManager=azflux&force=true",
        &config,
    );
    assert_eq!(forced.status, 200, "{}", forced.body);
    let after = forced.json();
    assert_eq!(
        container(&after)["args"],
        args,
        "atomic lists are replaced whole"
    );
    let seed_fields = &managed_entry(&after, "kubectl-client-side-apply")["fieldsV1"];
    let seed_container =
        &seed_fields["f:spec"]["f:template"]["f:spec"]["f:containers"][r#"k:{"name":"manager"}"#];
    assert!(seed_container.get("f:args").is_none(), "{seed_container}");
    assert_eq!(seed_container["f:image"], json!({}));
    let applier_container = &managed_entry(&after, "azflux")["fieldsV1"]["f:spec"]["f:template"]["f:spec"]
        ["f:containers"][r#"k:{"name":"manager"}"#];
    assert_eq!(
        applier_container["f:args"],
        json!({}),
        "owned whole, no items"
    );

    // Another applier now conflicts with the first one, named without a version.
    let other = apply(
        &server,
        DEPLOYMENT,
        "fieldManager=other",
        &manager_config(&json!({"args": ["--log-level=info"]})),
    );
    let status = assert_status(&other, 409, "Conflict");
    assert_eq!(
        status["message"],
        format!("Apply failed with 1 conflict: conflict with \"azflux\": {field}")
    );
}

#[test]
fn applying_the_current_value_shares_ownership() {
    let server = controller_server();
    let image = container(&deployment(&server))["image"].clone();
    let shared = apply(
        &server,
        DEPLOYMENT,
        "fieldManager=azflux",
        &manager_config(&json!({"image": image})),
    );
    assert_eq!(shared.status, 200, "{}", shared.body);
    let after = shared.json();
    let image_owners: Vec<&str> = after["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"][r#"k:{"name":"manager"}"#]
                .get("f:image")
                .is_some()
        })
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert_eq!(image_owners, ["azflux", "kubectl-client-side-apply"]);
    assert_eq!(
        after["metadata"]["generation"], 1,
        "nothing but ownership changed"
    );
    assert_eq!(server.writes().len(), 1, "new ownership is a write");

    // Dropping a shared field leaves it to the other owner.
    let dropped = apply(
        &server,
        DEPLOYMENT,
        "fieldManager=azflux",
        &manager_config(&json!({})),
    );
    assert_eq!(dropped.status, 200, "{}", dropped.body);
    assert_eq!(container(&dropped.json())["image"], image);
}

#[test]
fn fields_an_applier_drops_are_removed_unless_another_manager_owns_them() {
    let server = controller_server();
    let mut config =
        manager_config(&json!({"env": [{"name": "AZURE_CLIENT_ID", "value": flux::CLIENT_ID}]}));
    config["spec"]["template"]["metadata"] =
        json!({"labels": {"azure.workload.identity/use": "true", "app": "source-controller"}});
    assert_eq!(
        apply(&server, DEPLOYMENT, "fieldManager=azflux", &config).status,
        200
    );

    let reply = apply(
        &server,
        DEPLOYMENT,
        "fieldManager=azflux",
        &manager_config(&json!({})),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let after = reply.json();
    assert_eq!(names(&container(&after)["env"]), ["RUNTIME_NAMESPACE"]);
    assert_eq!(
        after["spec"]["template"]["metadata"]["labels"],
        json!({"app": "source-controller"}),
        "the label only azflux owned is gone, the shared one stays"
    );
    assert_eq!(
        managed_entry(&after, "azflux")["fieldsV1"],
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {r#"k:{"name":"manager"}"#: {".": {}, "f:name": {}}}}}}})
    );
}

#[test]
fn custom_resource_lists_are_atomic() {
    let server = flux_server();
    let path =
        "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories/flux-system";
    let config = |include: Value| {
        json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": "flux-system", "namespace": "flux-system"},
            "spec": {"include": include, "ref": {"branch": "main"}},
        })
    };
    let first = apply(
        &server,
        path,
        "fieldManager=a",
        &config(json!([{"repository": {"name": "x"}}, {"repository": {"name": "y"}}])),
    );
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(
        managed_entry(&first.json(), "a")["fieldsV1"],
        json!({"f:spec": {".": {}, "f:include": {}, "f:ref": {".": {}, "f:branch": {}}}})
    );
    let second = config(json!([{"repository": {"name": "z"}}]));
    let status = assert_status(
        &apply(&server, path, "fieldManager=b", &second),
        409,
        "Conflict",
    );
    assert_eq!(status["details"]["causes"][0]["field"], ".spec.include");
    assert_eq!(status["details"]["kind"], "gitrepositories");
    let forced = apply(&server, path, "fieldManager=b&force=true", &second);
    assert_eq!(forced.status, 200, "{}", forced.body);
    let object = forced.json();
    assert_eq!(
        object["spec"]["include"],
        json!([{"repository": {"name": "z"}}])
    );
    assert_eq!(object["spec"]["url"], "https://github.com/example/fleet");
    assert!(
        managed_entry(&object, "a")["fieldsV1"]["f:spec"]
            .get("f:include")
            .is_none()
    );
}

#[test]
fn dry_run_answers_the_result_and_stores_nothing() {
    let server = controller_server();
    let before = deployment(&server);
    let pods_before = pods(&server);
    let config =
        manager_config(&json!({"env": [{"name": "AZURE_CLIENT_ID", "value": flux::CLIENT_ID}]}));
    let reply = apply(
        &server,
        DEPLOYMENT,
        "fieldManager=azflux&dryRun=All",
        &config,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answered = reply.json();
    assert_eq!(
        names(&container(&answered)["env"]),
        ["RUNTIME_NAMESPACE", "AZURE_CLIENT_ID"]
    );
    assert_eq!(
        managers(&answered),
        ["azflux/Apply", "kubectl-client-side-apply/Update"]
    );
    assert_eq!(answered["metadata"]["generation"], 2);
    assert_eq!(
        answered["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );

    assert_eq!(deployment(&server), before);
    assert_eq!(pods(&server), pods_before);
    assert!(server.writes().is_empty());
    let record = server
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert!(record.query.as_deref().unwrap().contains("dryRun=All"));
    assert!(!record.wrote);

    let created = apply(
        &server,
        "/api/v1/namespaces/flux-system/configmaps/new",
        "fieldManager=azflux&dryRun=All",
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new"}}),
    );
    assert_eq!(created.status, 201);
    assert!(created.json()["metadata"].get("resourceVersion").is_none());
    assert_status(
        &get(&server, "/api/v1/namespaces/flux-system/configmaps/new"),
        404,
        "NotFound",
    );
    assert!(server.writes().is_empty());
}

#[test]
fn patch_options_are_validated_like_the_real_server() {
    let server = controller_server();
    let config = manager_config(&json!({}));
    let status = assert_status(&apply(&server, DEPLOYMENT, "", &config), 422, "Invalid");
    assert_eq!(
        status["message"],
        r#"PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch"#
    );
    assert_eq!(
        status["details"],
        json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [{
            "reason": "FieldValueRequired",
            "message": "Required value: is required for apply patch",
            "field": "fieldManager",
        }]})
    );
    assert_status(
        &apply(&server, DEPLOYMENT, "fieldManager=m&dryRun=Some", &config),
        422,
        "Invalid",
    );
    assert_status(
        &apply(
            &server,
            DEPLOYMENT,
            "fieldManager=m&fieldValidation=Loose",
            &config,
        ),
        422,
        "Invalid",
    );
    for accepted in ["Strict", "Warn", "Ignore"] {
        let reply = apply(
            &server,
            DEPLOYMENT,
            &format!("fieldManager=m&fieldValidation={accepted}"),
            &config,
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    assert_eq!(
        server.writes().len(),
        1,
        "only the first accepted apply changed anything"
    );
}

#[test]
fn applied_objects_must_be_the_object_the_url_names() {
    let server = controller_server();
    let config = manager_config(&json!({}));
    let mut wrong_kind = config.clone();
    wrong_kind["kind"] = json!("StatefulSet");
    let status = assert_status(
        &apply(&server, DEPLOYMENT, "fieldManager=m", &wrong_kind),
        400,
        "BadRequest",
    );
    assert_eq!(
        status["message"],
        "invalid object type: apps/v1, Kind=StatefulSet"
    );
    let mut wrong_version = config.clone();
    wrong_version["apiVersion"] = json!("v1");
    let status = assert_status(
        &apply(&server, DEPLOYMENT, "fieldManager=m", &wrong_version),
        400,
        "BadRequest",
    );
    assert_eq!(
        status["message"],
        "invalid object type: /v1, Kind=Deployment"
    );
    let mut wrong_name = config.clone();
    wrong_name["metadata"]["name"] = json!("helm-controller");
    let status = assert_status(
        &apply(&server, DEPLOYMENT, "fieldManager=m", &wrong_name),
        400,
        "BadRequest",
    );
    assert_eq!(
        status["message"],
        "the name of the object (helm-controller) does not match the name on the URL (source-controller)"
    );
    let mut with_fields = config.clone();
    with_fields["metadata"]["managedFields"] = json!([]);
    let status = assert_status(
        &apply(&server, DEPLOYMENT, "fieldManager=m", &with_fields),
        400,
        "BadRequest",
    );
    assert_eq!(status["message"], "metadata.managedFields must be nil");
    let mut stale = config.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    let status = assert_status(
        &apply(&server, DEPLOYMENT, "fieldManager=m", &stale),
        409,
        "Conflict",
    );
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("the object has been modified")
    );
    let nameless = manager_config(&json!({"env": [{"value": "x"}]}));
    let reply = apply(&server, DEPLOYMENT, "fieldManager=m", &nameless);
    assert_eq!(reply.status, 500);
    let status = reply.json();
    assert!(
        status.get("reason").is_none(),
        "the real server gives no reason: {status}"
    );
    assert!(
        status["message"].as_str().unwrap().ends_with(
            r#".spec.template.spec.containers[name="manager"].env: element 0: associative list with keys has an element that omits key field "name" (and doesn't have default value)"#
        ),
        "{status}"
    );
    assert!(server.writes().is_empty());
}

#[test]
fn other_patch_types_and_subresources_are_refused() {
    let server = controller_server();
    let config = manager_config(&json!({}));
    let merge = patch_as(
        &server,
        DEPLOYMENT,
        "",
        "application/merge-patch+json",
        "{}",
    );
    assert_status(&merge, 405, "MethodNotAllowed");
    let status = assert_status(
        &patch_as(&server, DEPLOYMENT, "", "text/plain", "{}"),
        415,
        "UnsupportedMediaType",
    );
    assert_eq!(
        status["message"],
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
    );
    let status_path = format!("{DEPLOYMENT}/status");
    assert_status(
        &apply(&server, &status_path, "fieldManager=m", &config),
        405,
        "MethodNotAllowed",
    );
    assert!(server.writes().is_empty());
}

/// source-controller at two replicas, with two running pods of no rollout.
fn two_replica_server() -> RunningServer {
    let mut objects = controller_seed();
    flux::find(&mut objects, "Deployment", "source-controller")["spec"]["replicas"] = json!(2);
    let mut second = flux::pod_of(&objects, "source-controller", false);
    second["metadata"]["name"] = json!("source-controller-7d9f8b6c5d-q8w7e");
    objects.push(second);
    RunningServer::start(FakeConfig {
        objects,
        ..FakeConfig::default()
    })
}

/// What `kubectl rollout restart` changes.
fn restart(at: &str) -> Value {
    deployment_config(
        &json!({"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": at}}}}),
    )
}

fn pod_names(pods: &[Value]) -> Vec<String> {
    pods.iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_template_change_rolls_out_new_running_pods() {
    let server = two_replica_server();
    let reply = apply(
        &server,
        DEPLOYMENT,
        "fieldManager=azflux",
        &restart("2026-01-01T00:00:00Z"),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["metadata"]["generation"], 2);
    assert!(
        reply.json().get("status").is_none(),
        "the answer is the write, before the controllers"
    );

    let rolled = deployment(&server);
    assert_eq!(
        rolled["status"]["observedGeneration"], 2,
        "{:#}",
        rolled["status"]
    );
    for field in [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
    ] {
        assert_eq!(rolled["status"][field], 2, "{field}");
    }
    assert_eq!(rolled["status"]["conditions"][0]["type"], "Available");
    assert_eq!(
        rolled["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    let status_entry = managed_entry(&rolled, "kube-controller-manager");
    assert_eq!(status_entry["subresource"], "status");
    assert_eq!(
        status_entry["fieldsV1"]["f:status"]["f:observedGeneration"],
        json!({})
    );

    let sets = get(&server, "/apis/apps/v1/namespaces/flux-system/replicasets").json();
    let set = &sets["items"][0];
    let set_name = set["metadata"]["name"].as_str().unwrap().to_owned();
    let hash = set["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(set_name, format!("source-controller-{hash}"));
    assert_eq!(set["spec"]["replicas"], 2);
    assert_eq!(
        set["metadata"]["ownerReferences"][0]["uid"],
        rolled["metadata"]["uid"]
    );

    let first_pods = pods(&server);
    assert_eq!(first_pods.len(), 2);
    for pod in &first_pods {
        let name = pod["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with(&format!("{set_name}-")), "{name}");
        assert_eq!(
            pod["metadata"]["labels"]["pod-template-hash"],
            hash.as_str()
        );
        assert_eq!(pod["metadata"]["labels"]["app"], "source-controller");
        assert_eq!(
            pod["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(
            pod["metadata"]["ownerReferences"][0]["name"],
            set_name.as_str()
        );
        assert_eq!(pod["status"]["phase"], "Running");
        assert_eq!(pod["spec"], rolled["spec"]["template"]["spec"]);
        assert_eq!(
            managers(pod),
            ["kube-controller-manager/Update", "kubelet/Update"]
        );
    }
}

#[test]
fn another_restart_rolls_out_again_and_scaling_keeps_running_pods() {
    let server = two_replica_server();
    apply(
        &server,
        DEPLOYMENT,
        "fieldManager=azflux",
        &restart("2026-01-01T00:00:00Z"),
    );
    let first_pods = pods(&server);
    // The same restart again is no change; a new one rolls out again.
    let writes = server.writes().len();
    apply(
        &server,
        DEPLOYMENT,
        "fieldManager=azflux",
        &restart("2026-01-01T00:00:00Z"),
    );
    assert_eq!(server.writes().len(), writes);
    assert_eq!(pods(&server), first_pods);
    apply(
        &server,
        DEPLOYMENT,
        "fieldManager=azflux",
        &restart("2026-01-02T00:00:00Z"),
    );
    let second_pods = pods(&server);
    assert_eq!(second_pods.len(), 2);
    assert!(second_pods.iter().all(|p| {
        !first_pods
            .iter()
            .any(|f| f["metadata"]["name"] == p["metadata"]["name"])
    }));
    let sets = get(&server, "/apis/apps/v1/namespaces/flux-system/replicasets").json();
    let replicas: Vec<(String, i64)> = sets["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                s["spec"]["replicas"].as_i64().unwrap(),
            )
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(replicas, [("1".to_owned(), 0), ("2".to_owned(), 2)]);
    assert_eq!(deployment(&server)["status"]["observedGeneration"], 3);

    // Scaling (by another manager, or the restart annotation would go with
    // azflux's new configuration) keeps the running pods and adds to them.
    let scaled = apply(
        &server,
        DEPLOYMENT,
        "fieldManager=scaler&force=true",
        &deployment_config(&json!({"replicas": 3})),
    );
    assert_eq!(scaled.status, 200, "{}", scaled.body);
    let third_pods = pods(&server);
    assert_eq!(third_pods.len(), 3);
    assert!(
        pod_names(&second_pods)
            .iter()
            .all(|p| pod_names(&third_pods).contains(p)),
        "{:?} {:?}",
        pod_names(&second_pods),
        pod_names(&third_pods)
    );
}

fn webhook_seed(webhook: bool, label: bool, tenant: bool) -> Vec<Value> {
    let mut objects = controller_seed();
    flux::wire_webhook(&mut objects, "source-controller");
    if !label {
        let deployment = flux::find(&mut objects, "Deployment", "source-controller");
        deployment["spec"]["template"]["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("azure.workload.identity/use");
    }
    if !tenant {
        let account = flux::find(&mut objects, "ServiceAccount", "source-controller");
        account["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove("azure.workload.identity/tenant-id");
    }
    if webhook {
        objects.push(flux::aks_webhook());
    }
    objects
}

/// The pod the Deployment runs after a restart.
fn restarted_pod(objects: Vec<Value>) -> Value {
    let server = RunningServer::start(FakeConfig {
        objects,
        ..FakeConfig::default()
    });
    let restart = deployment_config(
        &json!({"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}}}}),
    );
    let reply = apply(&server, DEPLOYMENT, "fieldManager=azflux", &restart);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let pods = pods(&server);
    assert_eq!(pods.len(), 1);
    pods[0].clone()
}

#[test]
fn the_workload_identity_webhook_mutates_pods_that_opt_in() {
    let pod = restarted_pod(webhook_seed(true, true, true));
    let manager = &pod["spec"]["containers"][0];
    assert_eq!(
        manager["env"],
        json!([
            {"name": "RUNTIME_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "AZURE_CLIENT_ID", "value": flux::CLIENT_ID},
            {"name": "AZURE_TENANT_ID", "value": flux::TENANT_ID},
            {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/var/run/secrets/azure/tokens/azure-identity-token"},
            {"name": "AZURE_AUTHORITY_HOST", "value": "https://login.microsoftonline.com/"},
        ])
    );
    assert_eq!(
        manager["volumeMounts"][1],
        json!({"name": "azure-identity-token", "mountPath": "/var/run/secrets/azure/tokens", "readOnly": true})
    );
    assert_eq!(
        pod["spec"]["volumes"][1],
        json!({"name": "azure-identity-token", "projected": {"sources": [{"serviceAccountToken": {
            "audience": "api://AzureADTokenExchange", "expirationSeconds": 3600, "path": "azure-identity-token"}}]}})
    );
    // What the webhook adds belongs to no manager.
    let owned = managed_entry(&pod, "kube-controller-manager")["fieldsV1"].to_string();
    assert!(
        !owned.contains("AZURE_CLIENT_ID") && !owned.contains("azure-identity-token"),
        "{owned}"
    );

    let no_tenant = restarted_pod(webhook_seed(true, true, false));
    let env = names(&no_tenant["spec"]["containers"][0]["env"]);
    assert_eq!(
        env,
        [
            "RUNTIME_NAMESPACE",
            "AZURE_CLIENT_ID",
            "AZURE_FEDERATED_TOKEN_FILE",
            "AZURE_AUTHORITY_HOST"
        ]
    );

    for (webhook, label) in [(false, true), (true, false)] {
        let pod = restarted_pod(webhook_seed(webhook, label, true));
        assert_eq!(
            names(&pod["spec"]["containers"][0]["env"]),
            ["RUNTIME_NAMESPACE"],
            "webhook {webhook}, label {label}"
        );
        assert_eq!(pod["spec"]["volumes"].as_array().unwrap().len(), 1);
    }

    // A pod created by apply is mutated too, and waits for a scheduler.
    let server = RunningServer::start(FakeConfig {
        objects: webhook_seed(true, true, true),
        ..FakeConfig::default()
    });
    let created = apply(
        &server,
        "/api/v1/namespaces/flux-system/pods/probe",
        "fieldManager=azflux",
        &json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "probe", "labels": {"azure.workload.identity/use": "true"}},
            "spec": {"serviceAccountName": "source-controller", "containers": [{"name": "probe", "image": "busybox"}]},
        }),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let probe = created.json();
    assert_eq!(probe["status"], json!({"phase": "Pending"}));
    assert_eq!(
        probe["spec"]["containers"][0]["env"][0]["name"],
        "AZURE_CLIENT_ID"
    );
}

#[test]
fn faults_can_let_the_first_matching_requests_through() {
    let server = RunningServer::start(FakeConfig {
        objects: controller_seed(),
        faults: vec![
            Fault::new("/deployments/", 500, FaultBehaviour::Status)
                .method("PATCH")
                .skip(2)
                .times(1),
        ],
        ..FakeConfig::default()
    });
    let config = |value: &str| manager_config(&json!({"env": [{"name": "STEP", "value": value}]}));
    assert_eq!(
        get(&server, DEPLOYMENT).status,
        200,
        "other methods do not count"
    );
    assert_eq!(
        apply(&server, DEPLOYMENT, "fieldManager=m", &config("1")).status,
        200
    );
    assert_eq!(
        apply(&server, DEPLOYMENT, "fieldManager=m", &config("2")).status,
        200
    );
    assert_status(
        &apply(&server, DEPLOYMENT, "fieldManager=m", &config("3")),
        500,
        "InternalError",
    );
    assert_eq!(
        apply(&server, DEPLOYMENT, "fieldManager=m", &config("4")).status,
        200
    );
    assert_eq!(container(&deployment(&server))["env"][1]["value"], "4");
    let written: Vec<u16> = server
        .writes()
        .iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.status)
        .collect();
    assert_eq!(written, [200, 200, 200], "the refused PATCH wrote nothing");
}

#[test]
fn an_interrupted_apply_is_still_applied() {
    let server = RunningServer::start(FakeConfig {
        objects: controller_seed(),
        faults: vec![
            Fault::new("/deployments/", 200, FaultBehaviour::CloseMidResponse)
                .method("PATCH")
                .times(1),
        ],
        ..FakeConfig::default()
    });
    let config = manager_config(&json!({"env": [{"name": "STEP", "value": "1"}]}));
    let cut = agent(Duration::from_secs(5))
        .patch(format!("{}{DEPLOYMENT}?fieldManager=m", server.url()))
        .header("Content-Type", APPLY_YAML)
        .send(config.to_string())
        .and_then(|mut r| r.body_mut().read_to_string());
    assert!(cut.is_err(), "the response was cut short");
    assert_eq!(
        names(&container(&deployment(&server))["env"]),
        ["RUNTIME_NAMESPACE", "STEP"]
    );
    assert_eq!(server.writes().len(), 1);
}

#[test]
fn kubectl_apply_server_side_merges_and_reports_conflicts() {
    for binary in kubectl_binaries() {
        let server = controller_server();
        let dir = tempfile::tempdir().unwrap();
        let kubectl = Kubectl::new(
            &binary,
            &server,
            dir.path(),
            KubeUser::Token("t".to_owned()),
        );
        let patch = dir.path().join("patch.yaml");
        std::fs::write(
            &patch,
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: source-controller\n  namespace: flux-system\nspec:\n  template:\n    metadata:\n      labels:\n        azure.workload.identity/use: \"true\"\n    spec:\n      containers:\n      - name: manager\n        env:\n        - name: AZURE_CLIENT_ID\n          value: 3f2504e0-4f89-41d3-9a0c-0305e82c3301\n",
        )
        .unwrap();
        let out = kubectl.ok(&[
            "apply",
            "--server-side",
            "--field-manager=test",
            "-f",
            patch.to_str().unwrap(),
        ]);
        assert!(
            out.contains("deployment.apps/source-controller serverside-applied"),
            "{binary}: {out}"
        );
        // kubectl found fieldValidation in the OpenAPI document and left
        // validation to the server.
        let sent = server
            .requests()
            .into_iter()
            .find(|r| r.method == "PATCH")
            .unwrap();
        assert_eq!(sent.content_type.as_deref(), Some(APPLY_YAML));
        assert!(
            sent.query
                .as_deref()
                .unwrap()
                .contains("fieldValidation=Strict"),
            "{binary}: {:?}",
            sent.query
        );

        let object = kubectl.json(&[
            "get",
            "deploy",
            "source-controller",
            "-n",
            "flux-system",
            "-o",
            "json",
        ]);
        assert_eq!(
            object["spec"]["template"]["metadata"]["labels"],
            json!({"app": "source-controller", "azure.workload.identity/use": "true"})
        );
        assert_eq!(
            names(&container(&object)["env"]),
            ["RUNTIME_NAMESPACE", "AZURE_CLIENT_ID"]
        );
        assert_eq!(container(&object)["args"].as_array().unwrap().len(), 4);

        let conflicting = dir.path().join("conflict.yaml");
        std::fs::write(
            &conflicting,
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: source-controller\n  namespace: flux-system\nspec:\n  template:\n    spec:\n      containers:\n      - name: manager\n        args: [\"--log-level=debug\"]\n",
        )
        .unwrap();
        let refused = kubectl.fails(&[
            "apply",
            "--server-side",
            "--field-manager=test",
            "-f",
            conflicting.to_str().unwrap(),
        ]);
        assert!(
            refused.contains(r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.template.spec.containers[name="manager"].args"#),
            "{binary}: {refused}"
        );
        assert!(refused.contains("--force-conflicts"), "{refused}");
        kubectl.ok(&[
            "apply",
            "--server-side",
            "--field-manager=test",
            "--force-conflicts",
            "-f",
            conflicting.to_str().unwrap(),
        ]);
        let object = kubectl.json(&[
            "get",
            "deploy",
            "source-controller",
            "-n",
            "flux-system",
            "-o",
            "json",
        ]);
        assert_eq!(container(&object)["args"], json!(["--log-level=debug"]));
        // The first apply's env and label were test's; this one leaves them out.
        assert_eq!(names(&container(&object)["env"]), ["RUNTIME_NAMESPACE"]);
    }
}

/// flux-operator's CRDs as the fixtures declare them (flux-operator v0.58.1
/// config/crd/bases): namespaced kinds of fluxcd.controlplane.io/v1 with a status subresource,
/// in discovery and on GET, and a namespaced object is not found cluster-wide by name.
#[test]
fn flux_operator_kinds_are_namespaced_with_a_status_subresource() {
    let mut objects = flux::operator_install(7, json!({"distribution": {"version": "2.7.x"}}));
    objects.push(flux::flux_report(
        "v2.7.3",
        &[("source-controller", true, "Current")],
        None,
    ));
    let server = RunningServer::start(FakeConfig {
        objects,
        ..FakeConfig::default()
    });
    let group = get(&server, "/apis/fluxcd.controlplane.io/v1").json();
    let resources: Vec<(String, bool)> = group["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["namespaced"].as_bool().unwrap(),
            )
        })
        .collect();
    for name in [
        "fluxinstances",
        "fluxinstances/status",
        "fluxreports",
        "fluxreports/status",
    ] {
        assert!(
            resources.contains(&(name.to_owned(), true)),
            "{name} in {resources:?}"
        );
    }
    let base = "/apis/fluxcd.controlplane.io/v1/namespaces/flux-system";
    let status = get(&server, &format!("{base}/fluxinstances/flux/status")).json();
    assert_eq!(status["kind"], "FluxInstance");
    assert_eq!(status["status"]["conditions"][0]["type"], "Ready");
    let report = get(&server, &format!("{base}/fluxreports/flux")).json();
    assert_eq!(report["spec"]["distribution"]["version"], "v2.7.3");
    let all = get(&server, "/apis/fluxcd.controlplane.io/v1/fluxinstances").json();
    assert_eq!(item_names(&all), ["flux"]);
    assert_status(
        &get(
            &server,
            "/apis/fluxcd.controlplane.io/v1/fluxinstances/flux",
        ),
        404,
        "NotFound",
    );
}
