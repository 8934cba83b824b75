//! Robustness: doctor against an API server that refuses, fails, throttles, hangs, breaks off
//! or talks nonsense; against kubeconfigs that are missing, conflicting or whose credential
//! plugin fails, hangs or prints garbage; and with secrets in the kubeconfig that must never be
//! printed. Each fault gives a partial report or one clear line, never a hang or a panic.

#[path = "support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::fake_apiserver::{FakeConfig, Fault, FaultBehaviour, KubeUser, kubeconfig_yaml};
use support::flux::{self, NS};
use support::run::{Cluster, Outcome, Sandbox};

const AKS_ISSUER: &str = "https://westeurope.oic.prod-aks.azure.com/72f988bf-86f1-41af-91ab-2d7cd011db47/5c8a3f6b-1d2e-4f5a-9b7c-0d1e2f3a4b5c/";
const MINOR: u32 = 7;

/// A healthy AKS setup with a remote-cluster Kustomization, so the ConfigMap and Secret reads
/// happen too.
fn healthy() -> Vec<Value> {
    let mut objects = flux::healthy_aks(MINOR);
    objects.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "remote", "namespace": NS}, "data": {"provider": "generic"}}));
    objects.push(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "remote-kubeconfig", "namespace": NS}, "stringData": {"value": "x"}}));
    objects.push(flux::object(
        MINOR,
        "Kustomization",
        NS,
        "remote",
        json!({
        "path": "./", "sourceRef": {"kind": "OCIRepository", "name": "platform"},
        "kubeConfig": {"configMapRef": {"name": "remote"}}}),
    ));
    objects.push(flux::object(
        MINOR,
        "Kustomization",
        NS,
        "remote-secret",
        json!({
        "path": "./", "sourceRef": {"kind": "OCIRepository", "name": "platform"},
        "kubeConfig": {"secretRef": {"name": "remote-kubeconfig"}}}),
    ));
    objects
}

fn with_faults(faults: Vec<Fault>) -> Cluster {
    Cluster::start(FakeConfig {
        objects: healthy(),
        issuer: Some(AKS_ISSUER.into()),
        faults,
        ..FakeConfig::default()
    })
}

fn timed(run: impl FnOnce() -> Outcome) -> (Outcome, Duration) {
    let started = Instant::now();
    let outcome = run();
    (outcome, started.elapsed())
}

fn requests_to(cluster: &Cluster, path: &str) -> usize {
    cluster
        .server
        .requests()
        .iter()
        .filter(|r| r.path == path)
        .count()
}

/// The state-unreadable messages of a report.
fn unreadable(out: &Outcome) -> Vec<String> {
    out.json()["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["name"] == "state-unreadable")
        .map(|f| format!("{} | {}", f["message"], f["fix"]))
        .collect()
}

fn assert_one_line_error(out: &Outcome, starts: &str) {
    assert_eq!(
        out.code, 2,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.starts_with(&format!("error: {starts}")),
        "{}",
        out.stderr
    );
}

#[test]
fn each_forbidden_read_gives_a_partial_report_with_the_right_skips() {
    // (path fault, what the finding names, the RBAC permission it names, checks skipped)
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "/apis/apps/v1/namespaces/flux-system/deployments",
            "deployments in flux-system: forbidden",
            "list deployments.apps in namespace flux-system",
            &[
                "flux-not-found",
                "sa-missing-client-id",
                "pod-label-missing",
            ],
        ),
        (
            "/api/v1/serviceaccounts",
            "serviceaccounts: forbidden",
            "list serviceaccounts (all namespaces)",
            &["sa-missing-client-id", "sa-missing-tenant-id"],
        ),
        (
            "/api/v1/namespaces/flux-system/pods",
            "pods in flux-system: forbidden",
            "list pods in namespace flux-system",
            &["pod-not-mutated"],
        ),
        (
            "/mutatingwebhookconfigurations",
            "mutatingwebhookconfigurations: forbidden",
            "list mutatingwebhookconfigurations.admissionregistration.k8s.io",
            &["workload-identity-webhook-missing"],
        ),
        (
            "/.well-known/openid-configuration",
            "the service-account issuer (/.well-known/openid-configuration): forbidden",
            "get on the non-resource URL /.well-known/openid-configuration",
            &["issuer-not-public"],
        ),
        (
            "/api/v1/nodes",
            "nodes (to recognise AKS): forbidden",
            "list nodes",
            &["object-level-on-aks-unstable"],
        ),
        (
            "/api/v1/namespaces/flux-system/configmaps/remote",
            "configmap flux-system/remote: forbidden",
            "get configmaps in namespace flux-system",
            &[],
        ),
    ];
    for (path, what, permission, skipped) in cases {
        let out = with_faults(vec![Fault::new(path, 403, FaultBehaviour::Status)]).doctor(&[]);
        assert_ne!(out.code, 2, "{path}: {}", out.stderr);
        let messages = unreadable(&out);
        assert_eq!(messages.len(), 1, "{path}: {messages:?}");
        assert!(messages[0].contains(what), "{path}: {messages:?}");
        assert!(messages[0].contains(permission), "{path}: {messages:?}");
        for check in *skipped {
            assert_eq!(out.status(check), "skip", "{path}: {check}");
        }
        assert_eq!(
            out.status("secret-in-kubeconfig"),
            "pass",
            "{path}: the rest still runs"
        );
    }
}

#[test]
fn each_forbidden_flux_kind_gives_a_partial_report() {
    for kind in flux::FLUX_KINDS {
        let plural = flux::crd(MINOR, kind)["spec"]["names"]["plural"]
            .as_str()
            .expect("plural")
            .to_string();
        let out = with_faults(vec![Fault::new(
            &format!("/{plural}?"),
            403,
            FaultBehaviour::Status,
        )])
        .doctor(&[]);
        assert_ne!(out.code, 2, "{kind}: {}", out.stderr);
        let messages = unreadable(&out);
        assert_eq!(messages.len(), 1, "{kind}: {messages:?}");
        assert!(
            messages[0].contains(&format!("{plural} in all namespaces: forbidden")),
            "{kind}: {messages:?}"
        );
        assert!(
            messages[0].contains(&format!("list {plural}.")),
            "{kind}: {messages:?}"
        );
        // "Nothing uses this identity" cannot be concluded from a partial list.
        assert_eq!(out.status("controller-identity-unused"), "skip", "{kind}");
    }
}

#[test]
fn forbidden_secret_reads_are_named_when_asked_for() {
    let cluster = with_faults(vec![Fault::new(
        "/namespaces/flux-system/secrets/remote-kubeconfig",
        403,
        FaultBehaviour::Status,
    )]);
    let out = cluster.doctor(&["--read-secrets"]);
    assert_ne!(out.code, 2, "{}", out.stderr);
    let messages = unreadable(&out);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].contains("secret flux-system/remote-kubeconfig: forbidden"),
        "{messages:?}"
    );
    assert!(
        messages[0].contains("get secrets in namespace flux-system"),
        "{messages:?}"
    );
}

#[test]
fn a_forbidden_group_version_hides_only_its_own_kinds() {
    // Legacy discovery: the group-version documents are separate requests to refuse.
    let cluster = Cluster::start(FakeConfig {
        objects: healthy(),
        issuer: Some(AKS_ISSUER.into()),
        disable_aggregated_discovery: true,
        faults: vec![Fault::new(
            "/apis/source.toolkit.fluxcd.io/",
            403,
            FaultBehaviour::Status,
        )],
        ..FakeConfig::default()
    });
    let out = cluster.doctor(&[]);
    assert_ne!(out.code, 2, "{}", out.stderr);
    let messages = unreadable(&out);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].contains("API discovery (/apis/source.toolkit.fluxcd.io/v1): forbidden"),
        "{messages:?}"
    );
    let requests = cluster.server.requests();
    assert!(
        requests
            .iter()
            .all(|r| !r.path.ends_with("/ocirepositories")),
        "no list without the versions discovery gives"
    );
    assert!(
        requests.iter().any(|r| r.path.ends_with("/kustomizations")),
        "the other groups' kinds are still read"
    );
}

/// A CRD in a Flux group serving `versions` made-up versions, so legacy discovery has that
/// many more group-version documents to read.
fn crd_with_versions(group: &str, versions: usize) -> Value {
    let versions: Vec<Value> = (1..=versions)
        .map(|i| {
            json!({"name": format!("v1alpha{i}"), "served": true, "storage": i == 1,
                   "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}})
        })
        .collect();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {
            "group": group,
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "scope": "Namespaced",
            "versions": versions
        }
    })
}

#[test]
fn legacy_discovery_reads_at_most_eight_group_versions_at_once() {
    // 4 x 12 made-up versions plus Flux's own: enough rounds of 8 for a missing bound to show,
    // and with latency on every request, enough overlap for the bound itself to show (more
    // than one at a time).
    let mut objects = healthy();
    for group in [
        "source.toolkit.fluxcd.io",
        "kustomize.toolkit.fluxcd.io",
        "helm.toolkit.fluxcd.io",
        "notification.toolkit.fluxcd.io",
    ] {
        objects.push(crd_with_versions(group, 12));
    }
    let cluster = Cluster::start(FakeConfig {
        objects,
        issuer: Some(AKS_ISSUER.into()),
        disable_aggregated_discovery: true,
        latency: Duration::from_millis(50),
        ..FakeConfig::default()
    });
    let out = cluster.doctor(&[]);
    assert_ne!(out.code, 2, "{}", out.stderr);
    let group_versions = cluster
        .server
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/apis/") && r.path.matches('/').count() == 3)
        .filter(|r| r.path.contains(".toolkit.fluxcd.io/"))
        .count();
    assert!(group_versions >= 48, "{group_versions} group versions read");
    let most = cluster.server.discovery_most_in_flight();
    assert!(most <= 8, "{most} discovery requests in flight at once");
    assert!(most > 1, "discovery ran one request at a time");
    // The made-up versions serve no Flux kind: the real ones are still found and read.
    assert!(
        cluster
            .server
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/kustomizations")),
        "{}",
        out.stdout
    );
}

#[test]
fn flux_apis_not_found_is_a_finding_not_a_failure() {
    // The CRDs are still in discovery but their lists answer 404 (being uninstalled) and no
    // controller runs: Flux is not installed.
    let mut objects = healthy();
    objects.retain(|o| o["kind"] != "Deployment" && o["kind"] != "Pod");
    let cluster = Cluster::start(FakeConfig {
        objects,
        issuer: Some(AKS_ISSUER.into()),
        faults: vec![Fault::new(
            "toolkit.fluxcd.io/",
            404,
            FaultBehaviour::Status,
        )],
        ..FakeConfig::default()
    });
    let out = cluster.doctor(&[]);
    assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
    assert!(
        out.finding_names().contains(&"flux-not-found".to_string()),
        "{:?}",
        out.findings()
    );
    assert!(
        out.message_of("flux-not-found")
            .contains("The Flux APIs are not served either"),
        "{}",
        out.stdout
    );
    assert!(
        unreadable(&out).is_empty(),
        "404 is an answer, not a failure"
    );
}

#[test]
fn one_flux_kind_not_found_reads_as_not_served() {
    let out = with_faults(vec![Fault::new(
        "/helmreleases?",
        404,
        FaultBehaviour::Status,
    )])
    .doctor(&[]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(unreadable(&out).is_empty(), "{:?}", out.findings());
}

#[test]
fn server_errors_are_retried_with_backoff() {
    let path = "/api/v1/namespaces/flux-system/pods";
    let cluster = with_faults(vec![Fault::new(path, 500, FaultBehaviour::Status).times(2)]);
    let (out, elapsed) = timed(|| cluster.doctor(&[]));
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(unreadable(&out).is_empty(), "{:?}", out.findings());
    assert_eq!(requests_to(&cluster, path), 3, "two failures, then success");
    assert!(
        elapsed >= Duration::from_millis(600),
        "backed off 200 ms, then 400 ms: {elapsed:?}"
    );
}

#[test]
fn throttling_honours_retry_after() {
    let path = "/api/v1/serviceaccounts";
    let cluster = with_faults(vec![
        Fault::new(path, 429, FaultBehaviour::Status)
            .times(1)
            .retry_after(2),
    ]);
    let (out, elapsed) = timed(|| cluster.doctor(&[]));
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(unreadable(&out).is_empty(), "{:?}", out.findings());
    let statuses: Vec<u16> = cluster
        .server
        .requests()
        .iter()
        .filter(|r| r.path == path)
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![429, 200]);
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
}

#[test]
fn retries_are_bounded() {
    let path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";
    let cluster = with_faults(vec![
        Fault::new(path, 503, FaultBehaviour::Status).retry_after(1),
    ]);
    let (out, elapsed) = timed(|| cluster.doctor(&[]));
    assert_ne!(out.code, 2, "{}", out.stderr);
    assert_eq!(requests_to(&cluster, path), 4, "one try and three retries");
    assert!(elapsed >= Duration::from_secs(3), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    let messages = unreadable(&out);
    assert!(
        messages[0].contains("mutatingwebhookconfigurations: HTTP 503"),
        "{messages:?}"
    );
    assert_eq!(out.status("workload-identity-webhook-missing"), "skip");
}

#[test]
fn a_retry_after_beyond_the_cap_is_not_waited_for() {
    let path = "/api/v1/serviceaccounts";
    let cluster = with_faults(vec![
        Fault::new(path, 429, FaultBehaviour::Status).retry_after(3600),
    ]);
    let (out, elapsed) = timed(|| cluster.doctor(&[]));
    assert_ne!(out.code, 2, "{}", out.stderr);
    assert_eq!(requests_to(&cluster, path), 1);
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert!(
        unreadable(&out)[0].contains("serviceaccounts: HTTP 429"),
        "{:?}",
        out.findings()
    );
}

#[test]
fn a_hung_version_request_is_the_one_that_exits_2() {
    let cluster = with_faults(vec![Fault::new("/version", 200, FaultBehaviour::Hang)]);
    let (out, elapsed) = timed(|| cluster.doctor(&["--request-timeout", "1s"]));
    assert_one_line_error(&out, "cannot reach the API server");
    assert!(out.stderr.contains("--request-timeout"), "{}", out.stderr);
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert!(out.json()["error"].as_str().is_some());
}

#[test]
fn a_hung_list_gives_a_partial_report_naming_the_timeout() {
    let cluster = with_faults(vec![Fault::new(
        "/namespaces/flux-system/pods",
        200,
        FaultBehaviour::Hang,
    )]);
    // Long enough for the answered requests on a loaded CI machine, short enough for the test.
    let (out, elapsed) = timed(|| cluster.doctor(&["--request-timeout", "3s"]));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    let messages = unreadable(&out);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].contains("pods in flux-system"), "{messages:?}");
    assert!(messages[0].contains("--request-timeout"), "{messages:?}");
    assert_eq!(out.status("pod-not-mutated"), "skip");
}

#[test]
fn a_connection_closed_mid_response_gives_a_partial_report() {
    for (path, what) in [
        ("/namespaces/flux-system/pods", "pods in flux-system"),
        ("/ocirepositories?", "ocirepositories in all namespaces"),
    ] {
        let out = with_faults(vec![Fault::new(
            path,
            200,
            FaultBehaviour::CloseMidResponse,
        )])
        .doctor(&[]);
        assert_ne!(out.code, 2, "{path}: {}", out.stderr);
        let messages = unreadable(&out);
        assert_eq!(messages.len(), 1, "{path}: {messages:?}");
        assert!(messages[0].contains(what), "{path}: {messages:?}");
        assert!(
            messages[0].contains("connection closed"),
            "{path}: {messages:?}"
        );
    }
}

#[test]
fn malformed_json_gives_a_partial_report() {
    for (path, what) in [
        ("/namespaces/flux-system/pods", "pods in flux-system"),
        ("/kustomizations?", "kustomizations in all namespaces"),
        (
            "/.well-known/openid-configuration",
            "service-account issuer",
        ),
    ] {
        let out =
            with_faults(vec![Fault::new(path, 200, FaultBehaviour::MalformedJson)]).doctor(&[]);
        assert_ne!(out.code, 2, "{path}: {}", out.stderr);
        let messages = unreadable(&out);
        assert_eq!(messages.len(), 1, "{path}: {messages:?}");
        assert!(messages[0].contains(what), "{path}: {messages:?}");
        assert!(
            messages[0].contains("malformed response"),
            "{path}: {messages:?}"
        );
    }
}

fn kubeconfig_for(sandbox: &Sandbox, url: &str, user: &KubeUser) -> String {
    sandbox
        .write("kubeconfig", &kubeconfig_yaml(url, user))
        .display()
        .to_string()
}

#[test]
fn an_unreachable_server_exits_2_with_one_line() {
    let sandbox = Sandbox::new();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    let kubeconfig = kubeconfig_for(
        &sandbox,
        &format!("http://127.0.0.1:{port}"),
        &KubeUser::Token("t".into()),
    );
    let (out, elapsed) = timed(|| {
        sandbox.run(&[
            "doctor",
            "--kubeconfig",
            &kubeconfig,
            "--request-timeout",
            "5s",
        ])
    });
    assert_one_line_error(&out, "cannot reach the API server");
    assert!(out.stderr.contains("context fake"), "{}", out.stderr);
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

#[test]
fn a_server_that_is_not_http_exits_2_with_one_line() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    listener.set_nonblocking(true).expect("nonblocking");
    // Answers every connection with garbage for a bounded time, then stops by itself.
    let server = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(15);
        while Instant::now() < until {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
                    let _ = stream.read(&mut [0u8; 1024]);
                    let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\x00\x01garbage\r\n\r\n");
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    let sandbox = Sandbox::new();
    let kubeconfig = kubeconfig_for(
        &sandbox,
        &format!("http://127.0.0.1:{port}"),
        &KubeUser::Token("t".into()),
    );
    let out = sandbox.run(&[
        "doctor",
        "--kubeconfig",
        &kubeconfig,
        "--request-timeout",
        "5s",
    ]);
    assert_one_line_error(&out, "cannot reach the API server");
    drop(server);
}

#[test]
fn a_missing_kubeconfig_file_is_named() {
    let sandbox = Sandbox::new();
    let missing = sandbox.path("nope/config").display().to_string();
    let out = sandbox.run(&["doctor", "--kubeconfig", &missing]);
    assert_one_line_error(
        &out,
        &format!("cannot read kubeconfig {missing}: no such file"),
    );
    let out = sandbox
        .command()
        .env("KUBECONFIG", &missing)
        .args(["doctor"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("no kubeconfig found"), "{stderr}");
}

#[test]
fn a_context_that_does_not_exist_is_named_with_the_ones_that_do() {
    let cluster = with_faults(vec![]);
    let out = cluster.doctor(&["--context", "aks-prod"]);
    assert_one_line_error(
        &out,
        "context \"aks-prod\" not found in kubeconfig (contexts: fake)",
    );
}

#[test]
fn merged_kubeconfigs_resolve_conflicts_like_kubectl_first_file_wins() {
    let cluster = with_faults(vec![]);
    let dead = TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("http://{}", dead.local_addr().expect("address"));
    drop(dead);
    // Same context, cluster and user names, another server, another current context.
    let other = kubeconfig_yaml(&dead_url, &KubeUser::Token("other".into()))
        .replace("current-context: fake", "current-context: elsewhere")
        + "- name: elsewhere-user\n  user:\n    token: x\n";
    let other = other.replace(
        "contexts:\n",
        "contexts:\n- name: elsewhere\n  context:\n    cluster: fake\n    user: elsewhere-user\n",
    );
    let second = cluster.sandbox.write("second", &other);
    let run = |files: [&std::path::Path; 2]| {
        let list = std::env::join_paths(files).expect("KUBECONFIG");
        let output = cluster
            .sandbox
            .command()
            .env("KUBECONFIG", list)
            .args(["doctor", "-o", "json", "--request-timeout", "5s"])
            .output()
            .expect("run");
        let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        (output.status.code(), report)
    };
    let (code, report) = run([&cluster.kubeconfig, &second]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["context"], "fake", "the first current-context wins");
    let (code, report) = run([&second, &cluster.kubeconfig]);
    assert_eq!(code, Some(2), "the dead server's definitions win: {report}");
    assert_eq!(report["context"], "elsewhere");
}

fn exec_user(command: &str, args: &[&str], env: &[(&str, &str)]) -> KubeUser {
    KubeUser::Exec {
        command: command.into(),
        args: args.iter().map(ToString::to_string).collect(),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
    }
}

const CLIENT_SECRET: &str = "CANARY-client-secret-4f1c";
const ENV_SECRET: &str = "CANARY-env-secret-93ab";

/// kubelogin with a service principal whose secret sits in the kubeconfig twice over.
fn spn_user() -> KubeUser {
    exec_user(
        "kubelogin",
        &[
            "get-token",
            "--login",
            "spn",
            "--server-id",
            "6dae42f8-4368-4678-94ff-3960e28e3630",
            "--client-id",
            "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
            "--client-secret",
            CLIENT_SECRET,
        ],
        &[("AAD_SERVICE_PRINCIPAL_CLIENT_SECRET", ENV_SECRET)],
    )
}

fn cluster_with_plugin(script: &str) -> Cluster {
    let cluster = Cluster::start_as(
        FakeConfig {
            objects: healthy(),
            issuer: Some(AKS_ISSUER.into()),
            ..FakeConfig::default()
        },
        spn_user(),
    );
    cluster.sandbox.executable("bin/kubelogin", script);
    cluster
}

fn assert_no_secret(out: &Outcome, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "{secret} printed:\n{}\n{}",
            out.stdout,
            out.stderr
        );
    }
}

#[test]
fn a_failing_credential_plugin_says_why_and_leaks_nothing() {
    let cluster = cluster_with_plugin(
        "#!/bin/sh\necho 'token cache: refreshing' >&2\necho 'AADSTS7000215: Invalid client secret provided.' >&2\nexit 1\n",
    );
    for format in ["json", "text"] {
        let kubeconfig = cluster.kubeconfig.display().to_string();
        let out = cluster
            .sandbox
            .run(&["doctor", "-o", format, "--kubeconfig", &kubeconfig]);
        assert_one_line_error(
            &out,
            "cannot authenticate to context fake: its credential plugin `kubelogin` failed (exit status: 1): AADSTS7000215: Invalid client secret provided.",
        );
        assert_no_secret(&out, &[CLIENT_SECRET, ENV_SECRET, "KUBERNETES_EXEC_INFO"]);
    }
}

#[test]
fn a_plugin_echoing_its_secret_is_redacted() {
    let cluster = cluster_with_plugin(
        "#!/bin/sh\necho \"login failed for secret $AAD_SERVICE_PRINCIPAL_CLIENT_SECRET ($*)\" >&2\nexit 3\n",
    );
    let out = cluster.doctor(&[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("[redacted]"), "{}", out.stderr);
    assert_no_secret(&out, &[CLIENT_SECRET, ENV_SECRET]);
}

#[test]
fn a_hanging_credential_plugin_is_bounded_by_the_request_timeout() {
    // Ends by itself, in case nothing else stops it.
    let cluster = cluster_with_plugin("#!/bin/sh\nexec sleep 20\n");
    let (out, elapsed) = timed(|| cluster.doctor(&["--request-timeout", "2s"]));
    assert_one_line_error(
        &out,
        "cannot authenticate to context fake: its credential plugin `kubelogin` did not finish within 2s (--request-timeout)",
    );
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert!(cluster.server.requests().is_empty());
}

/// Whether process `pid` still runs. A killed process whose parent is gone too is a zombie
/// until init reaps it: that is gone as well.
fn is_running(pid: &str) -> bool {
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        return !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'));
    }
    std::process::Command::new("kill")
        .args(["-0", pid])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[test]
fn a_stopped_credential_plugin_takes_what_it_started_with_it() {
    // The plugin leaves a child of its own behind (as `kubelogin --login azurecli` runs `az`),
    // which would outlive the plugin when only the plugin is killed.
    let scratch = tempfile::tempdir().unwrap();
    let pid_file = scratch.path().join("child.pid");
    let cluster = cluster_with_plugin(&format!(
        "#!/bin/sh\nsleep 60 &\necho $! > '{}'\nexec sleep 20\n",
        pid_file.display()
    ));
    let out = cluster.doctor(&["--request-timeout", "3s"]);
    assert_one_line_error(
        &out,
        "cannot authenticate to context fake: its credential plugin `kubelogin` did not finish within 3s (--request-timeout)",
    );
    let pid = std::fs::read_to_string(&pid_file).expect("the plugin wrote its child's pid");
    let pid = pid.trim();
    assert!(pid.parse::<u32>().is_ok(), "{pid:?}");
    // Killing is asynchronous: give the kernel a generous while to finish it.
    let bound = Instant::now() + Duration::from_secs(30);
    while is_running(pid) && Instant::now() < bound {
        std::thread::sleep(Duration::from_millis(20));
    }
    let survived = is_running(pid);
    if survived {
        let _ = std::process::Command::new("kill")
            .args(["-9", pid])
            .status();
    }
    assert!(!survived, "the plugin's child {pid} outlived it");
}

/// Runs `kubectl-azflux args` in the sandbox, sampling its peak resident set (VmHWM, in KiB)
/// while it runs; the peak is `None` where /proc does not tell it.
fn run_sampling_peak(sandbox: &Sandbox, args: &[&str]) -> (Outcome, Option<u64>) {
    let mut child = sandbox
        .command()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kubectl-azflux");
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = read(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = read(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = None;
    let status = loop {
        // The high-water mark only grows: the last reading is the closest to the peak.
        if let Some(kib) = std::fs::read_to_string(&status_file).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        }) {
            peak = Some(kib);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let outcome = Outcome {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().expect("stdout"),
        stderr: stderr.join().expect("stderr"),
    };
    (outcome, peak)
}

#[test]
fn a_credential_plugin_flooding_stdout_is_stopped_at_the_cap() {
    // 300 MB and then it would stop: read whole (as kube reads it), hundreds of megabytes
    // would be held before the garbage is even looked at.
    let cluster = cluster_with_plugin(
        "#!/bin/sh
echo 'fetching a token' >&2
head -c 300000000 /dev/zero | tr '\\0' 'A'
",
    );
    fails_bounded(
        &cluster,
        "cannot authenticate to context fake: its credential plugin `kubelogin` printed more than 1 MiB on stdout (the most an ExecCredential may be) and was stopped",
    );
}

/// doctor against a flooding plugin: one line naming the plugin, nothing of the flood or a
/// secret, a bounded resident set, and no request to the server.
fn fails_bounded(cluster: &Cluster, error: &str) {
    let kubeconfig = cluster.kubeconfig.display().to_string();
    let (out, peak) = run_sampling_peak(
        &cluster.sandbox,
        &[
            "doctor",
            "-o",
            "json",
            "--kubeconfig",
            &kubeconfig,
            "--request-timeout",
            "60s",
        ],
    );
    assert_one_line_error(&out, error);
    assert_no_secret(&out, &[CLIENT_SECRET, ENV_SECRET, "AAAAAAAA"]);
    if let Some(kib) = peak {
        assert!(kib < 100 * 1024, "peak resident set {kib} KiB");
    }
    assert!(cluster.server.requests().is_empty());
}

#[test]
fn a_credential_plugin_flooding_stderr_keeps_its_last_line_and_little_else() {
    // 150 MB of one line, then the line that says why: kube holds all the plugin prints on
    // stderr, so the wrapper passes on the first MiB and then only the end.
    let cluster = cluster_with_plugin(
        "#!/bin/sh
head -c 150000000 /dev/zero | tr '\\0' 'A' >&2
echo >&2
echo 'AADSTS700016: Application not found in the directory.' >&2
exit 1
",
    );
    fails_bounded(
        &cluster,
        "cannot authenticate to context fake: its credential plugin `kubelogin` failed (exit status: 1): AADSTS700016: Application not found in the directory.",
    );
}

#[test]
fn a_bounded_credential_plugin_keeps_the_exec_protocol() {
    // What the plugin was given, as kube gives it: arguments, the kubeconfig's variables,
    // KUBERNETES_EXEC_INFO, and stdin not a terminal (interactiveMode: Never).
    let seen = "plugin.seen";
    let cluster = cluster_with_plugin(&format!(
        "#!/bin/sh
{{ echo \"args $*\"; echo \"env $AAD_SERVICE_PRINCIPAL_CLIENT_SECRET\"; echo \"info $KUBERNETES_EXEC_INFO\"; [ -t 0 ] || echo 'stdin not a terminal'; }} > {seen}\nprintf '%s' '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"fake-token\"}}}}'\n"
    ));
    let kubeconfig = cluster.kubeconfig.display().to_string();
    let mut command = cluster.sandbox.command();
    command.current_dir(cluster.sandbox.path("")).args([
        "doctor",
        "-o",
        "json",
        "--kubeconfig",
        &kubeconfig,
    ]);
    let output = command.output().expect("run");
    assert_ne!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen = std::fs::read_to_string(cluster.sandbox.path(seen)).expect("the plugin ran");
    assert!(
        seen.contains(&format!("args get-token --login spn --server-id 6dae42f8-4368-4678-94ff-3960e28e3630 --client-id 3f2504e0-4f89-41d3-9a0c-0305e82c3301 --client-secret {CLIENT_SECRET}\n")),
        "{seen}"
    );
    assert!(seen.contains(&format!("env {ENV_SECRET}\n")), "{seen}");
    assert!(
        seen.contains("info {")
            && seen.contains("\"kind\":\"ExecCredential\"")
            && seen.contains("\"interactive\":false"),
        "{seen}"
    );
    assert!(seen.contains("stdin not a terminal"), "{seen}");
    assert!(!cluster.server.requests().is_empty());
}

#[test]
fn a_credential_plugin_printing_garbage_is_named_without_echoing_it() {
    let garbage = "CANARY-raw-token-7d1e";
    let cluster = cluster_with_plugin(&format!(
        "#!/bin/sh\necho 'Welcome! {{{{ not: [json'\necho '{garbage}'\n"
    ));
    let out = cluster.doctor(&[]);
    assert_one_line_error(
        &out,
        "cannot authenticate to context fake: its credential plugin `kubelogin` printed something that is not an ExecCredential",
    );
    assert_no_secret(&out, &[garbage, CLIENT_SECRET, ENV_SECRET]);
}

#[test]
fn a_missing_kubelogin_gets_the_install_hint() {
    let cluster = Cluster::start_as(FakeConfig::default(), spn_user());
    let out = cluster.doctor(&[]);
    assert_one_line_error(
        &out,
        "cannot authenticate to context fake: its credential plugin `kubelogin` is not on PATH (install it: `az aks install-cli`",
    );
    assert_no_secret(&out, &[CLIENT_SECRET, ENV_SECRET]);
}

#[test]
fn kubeconfig_secrets_appear_in_no_output_format() {
    let token = "CANARY-issued-token-c0de";
    let cluster = cluster_with_plugin(&format!(
        "#!/bin/sh\nprintf '%s' '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{token}\"}}}}'\n"
    ));
    let kubeconfig = cluster.kubeconfig.display().to_string();
    for args in [
        &["-o", "json"][..],
        &["-o", "text"],
        &["-o", "text", "--show-all"],
        &["-o", "json", "--read-secrets", "--fail-on", "info"],
    ] {
        let mut all = vec!["doctor", "--kubeconfig", &kubeconfig];
        all.extend_from_slice(args);
        let out = cluster.sandbox.run(&all);
        assert_ne!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stdout.contains("secret-in-kubeconfig") || out.stdout.contains("AZF003"),
            "{args:?}: the secret's place is reported: {}",
            out.stdout
        );
        assert_no_secret(&out, &[CLIENT_SECRET, ENV_SECRET, token]);
    }
}

#[test]
fn kubeconfig_secrets_appear_in_no_error() {
    let password = "CANARY-basic-auth-password";
    let token = "CANARY-bearer-token-5e5e";
    let sandbox = Sandbox::new();
    let dead = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", dead.local_addr().expect("address"));
    drop(dead);
    let yaml = kubeconfig_yaml(&url, &KubeUser::Token(token.into()))
        + &format!("    username: admin\n    password: {password}\n");
    let kubeconfig = sandbox.write("kubeconfig", &yaml).display().to_string();
    for format in ["json", "text"] {
        let out = sandbox.run(&[
            "doctor",
            "-o",
            format,
            "--kubeconfig",
            &kubeconfig,
            "--request-timeout",
            "5s",
        ]);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert_no_secret(&out, &[password, token]);
    }
}

const TOKEN_IN_FILE: &str = "CANARY-file-token-31d7";
const PASSWORD_IN_FILE: &str = "CANARY-file-password-8e02";

#[test]
fn a_malformed_kubeconfig_is_named_by_line_and_column_without_its_lines() {
    let sandbox = Sandbox::new();
    let broken = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: {TOKEN_IN_FILE}\n    password: {PASSWORD_IN_FILE}\n    username: [unclosed\n"
    );
    let kubeconfig = sandbox.write("kubeconfig", &broken).display().to_string();
    for args in [
        &["doctor", "-o", "json"][..],
        &["doctor", "-o", "text"],
        &["doctor", "--all-contexts"],
        &[
            "enable",
            "--client-id",
            "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
        ],
    ] {
        let mut all = args.to_vec();
        all.extend(["--kubeconfig", &kubeconfig]);
        let out = sandbox.run(&all);
        assert_one_line_error(
            &out,
            &format!("cannot read kubeconfig {kubeconfig}: line 9, column "),
        );
        assert_no_secret(&out, &[TOKEN_IN_FILE, PASSWORD_IN_FILE, "unclosed"]);
    }
}

#[test]
fn credentials_in_the_server_and_proxy_urls_are_never_printed() {
    let sandbox = Sandbox::new();
    let dead = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = dead.local_addr().expect("address");
    drop(dead);
    let password = "CANARY-url-pw";
    let proxy_password = "CANARY-proxy-pw";
    for (server, proxy) in [
        (format!("http://admin:{password}@{address}"), None),
        (
            format!("http://{address}"),
            Some(format!("http://proxy-user:{proxy_password}@{address}")),
        ),
    ] {
        let mut yaml = kubeconfig_yaml(&server, &KubeUser::Token("t".into()));
        if let Some(proxy) = &proxy {
            yaml = yaml.replace(
                "  cluster:\n",
                &format!("  cluster:\n    proxy-url: {proxy}\n"),
            );
        }
        let kubeconfig = sandbox.write("kubeconfig", &yaml).display().to_string();
        for format in ["json", "text"] {
            let out = sandbox.run(&[
                "doctor",
                "-o",
                format,
                "--kubeconfig",
                &kubeconfig,
                "--request-timeout",
                "5s",
            ]);
            assert_eq!(out.code, 2, "{}", out.stderr);
            assert!(
                out.stderr.contains(&format!("http://{address}")),
                "the server is named without its credentials: {}",
                out.stderr
            );
            assert_no_secret(&out, &[password, proxy_password, "admin:", "proxy-user"]);
        }
    }
}

#[test]
fn exec_secrets_are_scrubbed_by_meaning_and_identifiers_still_show() {
    let short = "hunter2";
    let equals = "CANARY-equals-secret-77aa";
    let opaque = "Zq8mX2vL9pR4tK7wN3bH6jF1cD5sG0aY";
    let user = exec_user(
        "kubelogin",
        &[
            "get-token",
            "--login",
            "devicecode",
            "--server-id",
            "a1b2c3d4-0000-4000-8000-000000000001",
            "--tenant-id",
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "--environment",
            "AzurePublicCloud",
            &format!("--client-secret={equals}"),
            "--password",
            short,
        ],
        &[("AZURE_CLIENT_SECRET", ENV_SECRET)],
    );
    let cluster = Cluster::start_as(
        FakeConfig {
            objects: healthy(),
            issuer: Some(AKS_ISSUER.into()),
            ..FakeConfig::default()
        },
        user,
    );
    // Fails echoing its whole command line, its secret variable and an opaque token.
    cluster.sandbox.executable(
        "bin/kubelogin",
        &format!(
            "#!/bin/sh\necho \"kubelogin $* env $AZURE_CLIENT_SECRET got {opaque}\" >&2\nexit 1\n"
        ),
    );
    let out = cluster.doctor(&[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    for shown in [
        "--login devicecode",
        "--server-id a1b2c3d4-0000-4000-8000-000000000001",
        "--tenant-id 72f988bf-86f1-41af-91ab-2d7cd011db47",
        "--environment AzurePublicCloud",
        "--client-secret=[redacted]",
        "--password [redacted]",
    ] {
        assert!(out.stderr.contains(shown), "{shown} hidden: {}", out.stderr);
    }
    assert_no_secret(&out, &[short, equals, ENV_SECRET, opaque]);
    // With a plugin that works, the local findings name the login mode and the server ID.
    cluster.sandbox.stub_kubelogin("CANARY-issued-token-0b0e");
    let kubeconfig = cluster.kubeconfig.display().to_string();
    let out = cluster
        .sandbox
        .run(&["doctor", "-o", "text", "--kubeconfig", &kubeconfig]);
    assert_ne!(out.code, 2, "{}", out.stderr);
    for shown in [
        "AZF004 kubelogin-devicecode-login",
        "kubelogin device code",
        "server ID a1b2c3d4-0000-4000-8000-000000000001",
        "6dae42f8-4368-4678-94ff-3960e28e3630",
    ] {
        assert!(out.stdout.contains(shown), "{shown} hidden: {}", out.stdout);
    }
    assert!(!out.stdout.contains("[redacted]"), "{}", out.stdout);
    assert_no_secret(
        &out,
        &[short, equals, ENV_SECRET, "CANARY-issued-token-0b0e"],
    );
}

#[test]
fn auth_provider_tokens_are_never_printed() {
    let id_token = "CANARY-id-token-aa11";
    let refresh = "CANARY-refresh-token-bb22";
    let sandbox = Sandbox::new();
    let dead = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", dead.local_addr().expect("address"));
    drop(dead);
    let yaml = kubeconfig_yaml(&url, &KubeUser::Token("t".into())).replace(
        "    token: t\n",
        &format!(
            "    auth-provider:\n      name: oidc\n      config:\n        client-id: kubernetes\n        idp-issuer-url: {url}\n        id-token: {id_token}\n        refresh-token: {refresh}\n"
        ),
    );
    let kubeconfig = sandbox.write("kubeconfig", &yaml).display().to_string();
    for format in ["json", "text"] {
        let out = sandbox.run(&[
            "doctor",
            "-o",
            format,
            "--kubeconfig",
            &kubeconfig,
            "--request-timeout",
            "5s",
        ]);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert_no_secret(&out, &[id_token, refresh]);
    }
}

#[test]
fn terminal_escapes_from_the_cluster_never_reach_the_terminal() {
    let title = "\u{1b}]0;pwned\u{7}";
    let clear = "\u{1b}[2J\u{1b}[H";
    let mut objects = healthy();
    objects.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}));
    objects.push(flux::object(
        MINOR,
        "OCIRepository",
        "team-a",
        "tenant",
        json!({"interval": "5m", "ref": {"tag": "latest"},
            "url": format!("oci://contoso.azurecr.io/{title}app{clear}\r\u{9b}31m\u{202e}x")}),
    ));
    let cluster = Cluster::start(FakeConfig {
        objects,
        issuer: Some(AKS_ISSUER.into()),
        ..FakeConfig::default()
    });
    let kubeconfig = cluster.kubeconfig.display().to_string();
    for color in ["never", "always", "auto"] {
        let out = cluster.sandbox.run(&[
            "doctor",
            "-o",
            "text",
            "--color",
            color,
            "--kubeconfig",
            &kubeconfig,
        ]);
        assert_ne!(out.code, 2, "{}", out.stderr);
        assert!(
            out.stdout
                .contains("oci://contoso.azurecr.io/]0;pwnedapp[2J[H"),
            "the URL is shown without its control characters: {}",
            out.stdout
        );
        for forbidden in ['\u{7}', '\r', '\u{9b}', '\u{202e}'] {
            assert!(!out.stdout.contains(forbidden), "{forbidden:?} printed");
        }
        let escapes = out.stdout.matches('\u{1b}').count();
        let colours = out.stdout.matches("\u{1b}[").count();
        assert_eq!(escapes, colours, "only colour sequences use ESC");
        assert!(!out.stdout.contains("\u{1b}[2J") && !out.stdout.contains("\u{1b}]"));
        if color == "never" {
            assert_eq!(escapes, 0, "{}", out.stdout);
        }
    }
    // JSON keeps the value, escaped.
    let out = cluster.doctor(&[]);
    let report = out.json();
    assert!(
        report.to_string().contains("\\u001b]0;pwned\\u0007"),
        "{report}"
    );
    assert!(!out.stdout.contains('\u{1b}'));
}

/// A fault on every path of the API.
fn everywhere(status: u16, behaviour: FaultBehaviour) -> Cluster {
    with_faults(vec![Fault::new("/", status, behaviour)])
}

#[test]
fn a_cluster_where_nothing_of_flux_can_be_read_exits_2_naming_why() {
    for (cluster, why) in [
        (everywhere(403, FaultBehaviour::Status), "forbidden"),
        (everywhere(500, FaultBehaviour::Status), "HTTP 500"),
        (
            everywhere(200, FaultBehaviour::Html),
            "an HTML page, not the Kubernetes API",
        ),
        (
            everywhere(503, FaultBehaviour::Html),
            "HTTP 503: an HTML page",
        ),
    ] {
        for format in ["json", "text"] {
            let kubeconfig = cluster.kubeconfig.display().to_string();
            let out = cluster
                .sandbox
                .run(&["doctor", "-o", format, "--kubeconfig", &kubeconfig]);
            assert_one_line_error(&out, "could not read any Flux state from the API server");
            assert!(
                out.stderr.contains("deployments in flux-system"),
                "{}",
                out.stderr
            );
            assert!(out.stderr.contains(why), "{why}: {}", out.stderr);
            assert!(!out.stderr.contains("<html"), "{}", out.stderr);
        }
    }
}

#[test]
fn a_partial_read_keeps_the_partial_report() {
    // Only the Flux lists fail: the controllers are read, so the report stands.
    let cluster = with_faults(vec![Fault::new(
        ".toolkit.fluxcd.io/",
        403,
        FaultBehaviour::Status,
    )]);
    let out = cluster.doctor(&[]);
    assert_ne!(out.code, 2, "{}", out.stderr);
    assert!(!unreadable(&out).is_empty());
}

#[test]
fn paging_stops_on_a_repeated_continue_token() {
    let cluster = with_faults(vec![Fault::new(
        "/namespaces/flux-system/pods",
        200,
        FaultBehaviour::RepeatedContinue,
    )]);
    let out = cluster.doctor(&["--request-timeout", "30s"]);
    assert_ne!(out.code, 2, "{}", out.stderr);
    let messages = unreadable(&out);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].contains("pods in flux-system"), "{messages:?}");
    assert!(messages[0].contains("same continue token"), "{messages:?}");
    assert_eq!(
        requests_to(&cluster, "/api/v1/namespaces/flux-system/pods"),
        2
    );
}

#[test]
fn paging_stops_after_the_page_cap() {
    let cluster = with_faults(vec![Fault::new(
        "/namespaces/flux-system/pods",
        200,
        FaultBehaviour::EndlessContinue,
    )]);
    let out = cluster.doctor(&["--request-timeout", "30s"]);
    assert_ne!(out.code, 2, "{}", out.stderr);
    let messages = unreadable(&out);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].contains("pods in flux-system"), "{messages:?}");
    assert!(messages[0].contains("more than 1000 pages"), "{messages:?}");
    assert_eq!(
        requests_to(&cluster, "/api/v1/namespaces/flux-system/pods"),
        1000
    );
}

#[test]
fn a_gigabyte_response_is_refused_not_buffered() {
    let cluster = with_faults(vec![Fault::new(
        "/namespaces/flux-system/pods",
        200,
        FaultBehaviour::Oversized(1024),
    )]);
    let out = cluster.doctor(&["--request-timeout", "60s"]);
    assert_ne!(out.code, 2, "{}", out.stderr);
    let messages = unreadable(&out);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].contains("pods in flux-system"), "{messages:?}");
    assert!(
        messages[0].contains("larger than 32 MiB and was not read"),
        "{messages:?}"
    );
}

/// A loopback HTTP CONNECT proxy for the length of a test: it records each CONNECT request's
/// head and relays bytes both ways.
struct ConnectProxy {
    url: String,
    heads: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ConnectProxy {
    fn start() -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = heads.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || Self::tunnel(client, &seen));
            }
        });
        ConnectProxy { url, heads }
    }

    fn tunnel(mut client: std::net::TcpStream, seen: &std::sync::Mutex<Vec<String>>) {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if client.read(&mut byte).unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let target = head
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        seen.lock().expect("heads").push(head);
        let Ok(upstream) = std::net::TcpStream::connect(&target) else {
            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
            return;
        };
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .is_err()
        {
            return;
        }
        let (mut from_client, mut to_upstream) = (
            client.try_clone().expect("clone"),
            upstream.try_clone().expect("clone"),
        );
        std::thread::spawn(move || std::io::copy(&mut from_client, &mut to_upstream));
        let (mut from_upstream, mut to_client) = (upstream, client);
        let _ = std::io::copy(&mut from_upstream, &mut to_client);
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("heads").clone()
    }
}

#[test]
fn a_kubeconfig_proxy_url_is_used_and_its_credentials_never_printed() {
    let cluster = with_faults(vec![]);
    let proxy = ConnectProxy::start();
    let password = "CANARY-proxy-password-19";
    let proxied = proxy
        .url
        .replace("http://", &format!("http://azflux:{password}@"));
    let yaml = std::fs::read_to_string(&cluster.kubeconfig)
        .expect("kubeconfig")
        .replace(
            "  cluster:\n",
            &format!("  cluster:\n    proxy-url: {proxied}\n"),
        );
    std::fs::write(&cluster.kubeconfig, yaml).expect("kubeconfig");
    let out = cluster.doctor(&["--request-timeout", "20s"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(unreadable(&out).is_empty(), "{:?}", unreadable(&out));
    let heads = proxy.heads();
    let server = cluster
        .server
        .url()
        .trim_start_matches("http://")
        .to_string();
    assert!(
        heads
            .iter()
            .any(|h| h.starts_with(&format!("CONNECT {server} "))),
        "{heads:?}"
    );
    assert!(
        heads.iter().all(|h| h
            .to_ascii_lowercase()
            .contains("proxy-authorization: basic ")),
        "{heads:?}"
    );
    assert_no_secret(&out, &[password]);
}

/// The kubeconfig of `cluster` with `proxy-url: proxy` on its cluster.
fn with_proxy_url(cluster: &Cluster, proxy: &str) {
    let yaml = std::fs::read_to_string(&cluster.kubeconfig)
        .expect("kubeconfig")
        .replace(
            "  cluster:\n",
            &format!("  cluster:\n    proxy-url: {proxy}\n"),
        );
    std::fs::write(&cluster.kubeconfig, yaml).expect("kubeconfig");
}

#[test]
fn a_socks5_proxy_url_is_used() {
    let cluster = with_faults(vec![]);
    let proxy = support::socks::SocksProxy::start(None);
    with_proxy_url(&cluster, &format!("socks5://{}", proxy.address));
    let out = cluster.doctor(&["--request-timeout", "20s"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(unreadable(&out).is_empty(), "{:?}", unreadable(&out));
    let server = cluster
        .server
        .url()
        .trim_start_matches("http://")
        .to_string();
    let sessions = proxy.sessions();
    assert!(
        sessions
            .iter()
            .any(|s| s.target.as_deref() == Some(server.as_str())),
        "{sessions:?}"
    );
    assert!(!cluster.server.requests().is_empty());
}

#[test]
fn a_socks5_proxy_asking_for_credentials_is_refused_clearly_and_they_are_never_printed() {
    // kube 5.0 sends no SOCKS5 credentials (kube-client src/client/builder.rs builds its
    // SocksV5 connector without `with_auth`): only "no authentication" is offered, and a
    // proxy that requires a username and password turns the connection down.
    let cluster = with_faults(vec![]);
    let password = "CANARY-socks-password-77";
    let proxy = support::socks::SocksProxy::start(Some(("azflux", password)));
    with_proxy_url(
        &cluster,
        &format!("socks5://azflux:{password}@{}", proxy.address),
    );
    for format in ["json", "text"] {
        let kubeconfig = cluster.kubeconfig.display().to_string();
        let out = cluster.sandbox.run(&[
            "doctor",
            "-o",
            format,
            "--kubeconfig",
            &kubeconfig,
            "--request-timeout",
            "20s",
        ]);
        assert_one_line_error(&out, "cannot reach the API server");
        assert!(out.stderr.contains("SOCKS5"), "{}", out.stderr);
        assert_no_secret(&out, &[password, "azflux:"]);
    }
    let sessions = proxy.sessions();
    assert!(!sessions.is_empty());
    assert!(
        sessions
            .iter()
            .all(|s| s.methods == [0] && s.credentials.is_none()),
        "{sessions:?}"
    );
    assert!(cluster.server.requests().is_empty());
}
