//! `doctor` against the loopback fake API server: healthy setups give no finding, and each
//! check has a broken scenario that it catches (and only it, where that is the point).

#[path = "support/mod.rs"]
mod support;

use serde_json::{Value, json};
use support::fake_apiserver::{FakeConfig, Fault, FaultBehaviour, KubeUser};
use support::flux::{self, NS};
use support::run::Cluster;

const AKS_ISSUER: &str = "https://westeurope.oic.prod-aks.azure.com/72f988bf-86f1-41af-91ab-2d7cd011db47/5c8a3f6b-1d2e-4f5a-9b7c-0d1e2f3a4b5c/";
const PUBLIC_ISSUER: &str = "https://oidc.example.com/cluster-1";
const MINOR: u32 = 7;

fn healthy_aks() -> Vec<Value> {
    flux::healthy_aks(MINOR)
}

fn aks(objects: Vec<Value>) -> Cluster {
    Cluster::with_objects(objects, AKS_ISSUER)
}

fn without(mut objects: Vec<Value>, kind: &str, name: &str) -> Vec<Value> {
    objects.retain(|o| !(o["kind"] == kind && o["metadata"]["name"] == name));
    objects
}

fn assert_only(outcome: &support::run::Outcome, expected: &[&str]) {
    let mut names = outcome.finding_names();
    names.dedup();
    assert_eq!(
        names,
        expected,
        "findings: {:#?}\nstderr: {}",
        outcome.findings(),
        outcome.stderr
    );
}

#[test]
fn healthy_aks_webhook_setup_has_no_findings() {
    let cluster = aks(healthy_aks());
    let out = cluster.doctor(&[]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_only(&out, &[]);
    let report = out.json();
    assert_eq!(report["mode"], "live");
    assert_eq!(report["context"], "fake");
    assert_eq!(report["fluxVersion"], "v2.7.0");
    let skipped: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "skip" && c["area"] != "azure")
        .collect();
    assert!(
        skipped.is_empty(),
        "only the Azure side (no credentials here) may be skipped: {skipped:?}"
    );
}

#[test]
fn healthy_manual_setup_has_no_findings() {
    let cluster = Cluster::with_objects(flux::healthy_manual(MINOR), PUBLIC_ISSUER);
    let out = cluster.doctor(&[]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_only(&out, &[]);
    assert_eq!(out.status("pod-not-mutated"), "pass");
}

#[test]
fn healthy_setups_across_flux_releases() {
    for minor in 2..=9 {
        let cluster = aks(flux::healthy_aks(minor));
        let out = cluster.doctor(&[]);
        assert_eq!(out.code, 0, "Flux 2.{minor}: {}", out.stdout);
        assert_only(&out, &[]);
        assert_eq!(out.json()["fluxVersion"], format!("v2.{minor}.0"));
    }
}

#[test]
fn text_output_names_object_problem_and_fix() {
    let mut objects = healthy_aks();
    let deploy = flux::find(&mut objects, "Deployment", "source-controller");
    deploy["spec"]["template"]["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("azure.workload.identity/use");
    let cluster = aks(objects);
    let kubeconfig = cluster.kubeconfig.display().to_string();
    let out = cluster
        .sandbox
        .run(&["doctor", "--kubeconfig", &kubeconfig]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("✗ AZF024 pod-label-missing"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("flux-system/Deployment/source-controller"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("fix: kubectl azflux enable --controllers source-controller --mode webhook"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("(`kubectl azflux explain ID` for more)."),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains('\u{1b}'),
        "NO_COLOR output has no escape codes"
    );
}

#[test]
fn unreadable_pods_give_a_partial_report_with_skips() {
    let mut config = FakeConfig {
        objects: healthy_aks(),
        issuer: Some(AKS_ISSUER.into()),
        ..FakeConfig::default()
    };
    config.faults.push(Fault::new(
        "/namespaces/flux-system/pods",
        403,
        FaultBehaviour::Status,
    ));
    let cluster = Cluster::start(config);
    let out = cluster.doctor(&[]);
    assert_eq!(
        out.code, 0,
        "a warning does not fail the default --fail-on error"
    );
    assert_only(&out, &["state-unreadable"]);
    assert!(
        out.message_of("state-unreadable")
            .contains("pods in flux-system: forbidden")
    );
    assert_eq!(out.status("pod-not-mutated"), "skip");
    let report = out.json();
    let fix = report["findings"][0]["fix"].as_str().unwrap();
    assert!(fix.contains("list pods in namespace flux-system"), "{fix}");
}

#[test]
fn unreachable_cluster_exits_2_with_one_line() {
    let sandbox = support::run::Sandbox::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let kubeconfig = sandbox.write(
        "kubeconfig",
        &support::fake_apiserver::kubeconfig_yaml(
            &format!("http://127.0.0.1:{port}"),
            &KubeUser::Token("t".into()),
        ),
    );
    let out = sandbox.run(&[
        "doctor",
        "--kubeconfig",
        &kubeconfig.display().to_string(),
        "--request-timeout",
        "5s",
    ]);
    assert_eq!(out.code, 2);
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("error: cannot reach the API server"),
        "{}",
        out.stderr
    );
}

#[test]
fn missing_kubeconfig_is_an_error_not_an_in_cluster_fallback() {
    let sandbox = support::run::Sandbox::new();
    let out = sandbox.run(&["doctor"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no kubeconfig found"), "{}", out.stderr);
}

#[test]
fn unknown_context_is_named() {
    let cluster = aks(healthy_aks());
    let out = cluster.doctor(&["--context", "prod"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("context \"prod\" not found in kubeconfig (contexts: fake)"),
        "{}",
        out.stderr
    );
}

fn kubelogin_user(args: &[&str]) -> KubeUser {
    KubeUser::Exec {
        command: "kubelogin".into(),
        args: args.iter().map(ToString::to_string).collect(),
        env: vec![],
    }
}

#[test]
fn stub_kubelogin_exec_plugin_authenticates_for_real() {
    let config = FakeConfig {
        objects: healthy_aks(),
        issuer: Some(AKS_ISSUER.into()),
        required_token: Some("stub-token".into()),
        ..FakeConfig::default()
    };
    let cluster = Cluster::start_as(
        config,
        kubelogin_user(&[
            "get-token",
            "--login",
            "azurecli",
            "--server-id",
            "6dae42f8-4368-4678-94ff-3960e28e3630",
        ]),
    );
    cluster.sandbox.stub_kubelogin("stub-token");
    let out = cluster.doctor(&[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_only(&out, &[]);
    let args = std::fs::read_to_string(cluster.sandbox.path("kubelogin.args")).unwrap();
    assert!(args.starts_with("get-token --login azurecli"), "{args}");
    assert!(cluster.server.requests().iter().all(|r| r.status != 401));
}

#[test]
fn kubelogin_not_on_path_is_reported_with_install_hint() {
    let cluster = Cluster::start_as(
        FakeConfig {
            objects: healthy_aks(),
            ..FakeConfig::default()
        },
        kubelogin_user(&[
            "get-token",
            "--login",
            "azurecli",
            "--server-id",
            "6dae42f8-4368-4678-94ff-3960e28e3630",
        ]),
    );
    let out = cluster.doctor(&[]);
    assert_eq!(out.code, 2);
    assert_only(&out, &["exec-plugin-not-found"]);
    let report = out.json();
    assert!(report["error"].as_str().unwrap().contains("kubelogin"));
    assert!(
        report["findings"][0]["fix"]
            .as_str()
            .unwrap()
            .contains("install")
    );
    assert!(
        cluster.server.requests().is_empty(),
        "no request without credentials"
    );
}

#[test]
fn kubelogin_devicecode_and_server_id_and_secrets_are_reported() {
    let canary = "CANARY-client-secret-8c1f";
    let config = FakeConfig {
        objects: healthy_aks(),
        issuer: Some(AKS_ISSUER.into()),
        ..FakeConfig::default()
    };
    let user = KubeUser::Exec {
        command: "kubelogin".into(),
        args: [
            "get-token",
            "--server-id",
            "11111111-2222-3333-4444-555555555555",
            "--client-secret",
            canary,
        ]
        .iter()
        .map(ToString::to_string)
        .collect(),
        env: vec![("AAD_SERVICE_PRINCIPAL_CLIENT_SECRET".into(), canary.into())],
    };
    let cluster = Cluster::start_as(config, user);
    cluster.sandbox.stub_kubelogin("fake-token");
    let out = cluster.doctor(&[]);
    assert_eq!(out.code, 0, "warnings only: {}", out.stdout);
    assert_only(
        &out,
        &[
            "secret-in-kubeconfig",
            "kubelogin-devicecode-login",
            "kubelogin-unexpected-server-id",
        ],
    );
    assert!(
        out.findings()
            .iter()
            .filter(|f| f.0 == "secret-in-kubeconfig")
            .count()
            == 2
    );
    let kubeconfig = cluster.kubeconfig.display().to_string();
    let text = cluster
        .sandbox
        .run(&["doctor", "--kubeconfig", &kubeconfig]);
    for output in [&out.stdout, &out.stderr, &text.stdout, &text.stderr] {
        assert!(!output.contains(canary), "the secret leaked: {output}");
    }
}

#[test]
fn legacy_azure_auth_provider_is_reported() {
    let sandbox = support::run::Sandbox::new();
    let kubeconfig = sandbox.write(
        "kubeconfig",
        "apiVersion: v1\nkind: Config\nclusters:\n- name: aks\n  cluster:\n    server: https://aks-dns-1234.hcp.westeurope.azmk8s.io:443\ncontexts:\n- name: aks\n  context:\n    cluster: aks\n    user: u\ncurrent-context: aks\nusers:\n- name: u\n  user:\n    auth-provider:\n      name: azure\n      config:\n        apiserver-id: 6dae42f8-4368-4678-94ff-3960e28e3630\n        client-id: 80faf920-1908-4b52-b5ef-a8e7bedfc67a\n        tenant-id: 72f988bf-86f1-41af-91ab-2d7cd011db47\n",
    );
    let out = sandbox.run(&[
        "doctor",
        "-o",
        "json",
        "--kubeconfig",
        &kubeconfig.display().to_string(),
    ]);
    assert_eq!(out.code, 2);
    assert_only(&out, &["legacy-azure-auth-provider"]);
    assert!(
        out.json()["findings"][0]["fix"]
            .as_str()
            .unwrap()
            .contains("kubelogin convert-kubeconfig -l azurecli --context aks")
    );
}

#[test]
fn flux_not_installed_is_a_finding_not_a_crash() {
    let cluster = aks(vec![flux::aks_node()]);
    let out = cluster.doctor(&[]);
    assert!(out.code == 0 || out.code == 1);
    assert_only(&out, &["flux-not-found"]);
    assert!(out.message_of("flux-not-found").contains("not served"));
    assert_eq!(out.status("sa-missing-client-id"), "skip");
}

#[test]
fn webhook_missing() {
    let cluster = aks(without(
        healthy_aks(),
        "MutatingWebhookConfiguration",
        "azure-wi-webhook-mutating-webhook-configuration",
    ));
    let out = cluster.doctor(&[]);
    assert_eq!(out.code, 1);
    assert_only(&out, &["workload-identity-webhook-missing"]);
}

#[test]
fn in_cluster_issuer_is_not_public() {
    let cluster = Cluster::with_objects(
        healthy_aks(),
        "https://kubernetes.default.svc.cluster.local",
    );
    let out = cluster.doctor(&[]);
    assert_only(&out, &["issuer-not-public"]);
    assert!(
        out.message_of("issuer-not-public")
            .contains("in-cluster name")
    );
}

#[test]
fn aks_flux_extension_is_noticed() {
    let mut objects = healthy_aks();
    for name in flux::CONTROLLERS {
        let deploy = flux::find(&mut objects, "Deployment", name);
        deploy["metadata"]["labels"]["app.kubernetes.io/name"] = json!("microsoft.flux");
        deploy["metadata"]["labels"]["app.kubernetes.io/managed-by"] = json!("Helm");
    }
    let out = aks(objects).doctor(&[]);
    assert_eq!(out.code, 0);
    assert_only(&out, &["flux-installed-by-aks-extension"]);
}

#[test]
fn controller_not_wired_names_the_objects() {
    let mut objects = flux::install(MINOR);
    objects.push(flux::aks_webhook());
    for name in ["a", "b", "c"] {
        objects.push(flux::object(MINOR, "Bucket", NS, name, json!({"provider": "azure", "bucketName": "manifests", "endpoint": "https://contoso.blob.core.windows.net"})));
    }
    objects.push(flux::object(
        MINOR,
        "GitRepository",
        NS,
        "repo",
        json!({"provider": "azure", "url": "https://dev.azure.com/contoso/platform/_git/fleet"}),
    ));
    let out = Cluster::with_objects(objects, PUBLIC_ISSUER).doctor(&[]);
    assert_eq!(out.code, 1);
    assert_only(&out, &["azure-controller-not-wired"]);
    assert_eq!(
        out.message_of("azure-controller-not-wired"),
        "source-controller has no workload identity, but 3 Buckets and 1 GitRepository in flux-system use Azure DevOps and Azure Blob Storage through it"
    );
    assert!(
        out.json()["findings"][0]["fix"]
            .as_str()
            .unwrap()
            .contains("--mode webhook")
    );
}

#[test]
fn acr_objects_on_aks_fall_back_to_the_kubelet_identity() {
    let mut objects = flux::install(MINOR);
    objects.extend([
        flux::aks_webhook(),
        flux::aks_node(),
        flux::oci_repository(MINOR, NS, "platform"),
    ]);
    let out = aks(objects).doctor(&[]);
    assert_eq!(out.code, 0, "a warning: {}", out.stdout);
    assert_only(&out, &["kubelet-identity-fallback"]);
}

fn webhook_sa_annotation_removed(annotation: &str) -> Vec<Value> {
    let mut objects = healthy_aks();
    let sa = flux::find(&mut objects, "ServiceAccount", "source-controller");
    sa["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove(annotation);
    objects
}

#[test]
fn sa_missing_client_id() {
    let out = aks(webhook_sa_annotation_removed(
        "azure.workload.identity/client-id",
    ))
    .doctor(&[]);
    assert_eq!(out.code, 1);
    assert_only(&out, &["sa-missing-client-id"]);
    let report = out.json();
    let actions = &report["findings"][0]["actions"];
    assert_eq!(actions[0]["type"], "annotate");
    assert_eq!(actions[1]["type"], "rolloutRestart");
}

#[test]
fn sa_missing_tenant_id_is_a_warning_in_webhook_mode() {
    let out = aks(webhook_sa_annotation_removed(
        "azure.workload.identity/tenant-id",
    ))
    .doctor(&[]);
    assert_eq!(out.code, 0);
    assert_eq!(
        out.findings(),
        vec![(
            "sa-missing-tenant-id".into(),
            "flux-system/ServiceAccount/source-controller".into(),
            "warning".into()
        )]
    );
    let strict = aks(webhook_sa_annotation_removed(
        "azure.workload.identity/tenant-id",
    ))
    .doctor(&["--fail-on", "warning"]);
    assert_eq!(strict.code, 1);
}

#[test]
fn malformed_client_id() {
    let mut objects = healthy_aks();
    let sa = flux::find(&mut objects, "ServiceAccount", "source-controller");
    sa["metadata"]["annotations"]["azure.workload.identity/client-id"] = json!("${CLIENT_ID}");
    let out = aks(objects).doctor(&[]);
    assert_only(&out, &["identity-annotation-malformed"]);
}

#[test]
fn pod_label_missing() {
    let mut objects = healthy_aks();
    let deploy = flux::find(&mut objects, "Deployment", "source-controller");
    deploy["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"] =
        json!("false");
    let out = aks(objects).doctor(&[]);
    assert_only(&out, &["pod-label-missing"]);
    assert!(out.message_of("pod-label-missing").contains("is \"false\""));
}

#[test]
fn label_on_service_account_instead_of_pod_template() {
    let mut objects = healthy_aks();
    let deploy = flux::find(&mut objects, "Deployment", "source-controller");
    deploy["spec"]["template"]["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("azure.workload.identity/use");
    deploy["metadata"]["labels"]["azure.workload.identity/use"] = json!("true");
    let sa = flux::find(&mut objects, "ServiceAccount", "source-controller");
    sa["metadata"]["labels"]["azure.workload.identity/use"] = json!("true");
    let out = aks(objects).doctor(&[]);
    assert_eq!(
        out.findings()
            .into_iter()
            .map(|f| (f.0, f.1))
            .collect::<Vec<_>>(),
        vec![
            (
                "label-on-wrong-object".to_string(),
                "flux-system/Deployment/source-controller".to_string()
            ),
            (
                "label-on-wrong-object".to_string(),
                "flux-system/ServiceAccount/source-controller".to_string()
            ),
        ]
    );
}

#[test]
fn pod_started_before_the_wiring_is_not_mutated() {
    let mut objects = healthy_aks();
    objects.retain(|o| {
        !(o["kind"] == "Pod"
            && o["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("source-controller"))
    });
    let stale = flux::pod_of(&objects, "source-controller", false);
    objects.push(stale);
    let out = aks(objects).doctor(&[]);
    assert_only(&out, &["pod-not-mutated"]);
    assert_eq!(
        out.findings()[0].1,
        "flux-system/Pod/source-controller-7d9f8b6c5d-x2x4k"
    );
    assert!(
        out.json()["findings"][0]["fix"]
            .as_str()
            .unwrap()
            .contains("kubectl rollout restart deployment/source-controller -n flux-system")
    );
}

fn manual(change: impl FnOnce(&mut Value)) -> Cluster {
    let mut objects = flux::healthy_manual(MINOR);
    change(flux::find(&mut objects, "Deployment", "source-controller"));
    Cluster::with_objects(objects, PUBLIC_ISSUER)
}

#[test]
fn manual_mode_token_volume_missing() {
    let out = manual(|d| {
        d["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["name"] != "azure-token");
    })
    .doctor(&[]);
    assert_only(&out, &["token-volume-missing"]);
    assert!(
        out.message_of("token-volume-missing")
            .contains("does not mount it")
    );
}

#[test]
fn manual_mode_token_audience_mismatch() {
    let out = manual(|d| {
        let volumes = d["spec"]["template"]["spec"]["volumes"]
            .as_array_mut()
            .unwrap();
        let token = volumes
            .iter_mut()
            .find(|v| v["name"] == "azure-token")
            .unwrap();
        token["projected"]["sources"][0]["serviceAccountToken"]["audience"] =
            json!("https://kubernetes.default.svc");
    })
    .doctor(&[]);
    assert_only(&out, &["token-audience-mismatch"]);
}

#[test]
fn manual_mode_token_path_mismatch() {
    let out = manual(|d| {
        let env = d["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array_mut()
            .unwrap();
        let file = env
            .iter_mut()
            .find(|e| e["name"] == "AZURE_FEDERATED_TOKEN_FILE")
            .unwrap();
        file["value"] = json!("/var/run/secrets/azure/tokens/azure-identity-token");
    })
    .doctor(&[]);
    assert_only(&out, &["token-path-mismatch"]);
    assert!(
        out.message_of("token-path-mismatch")
            .contains("/var/run/service-account/azure-token")
    );
}

#[test]
fn manual_mode_authority_host_of_another_cloud() {
    let out = manual(|d| {
        let env = d["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array_mut()
            .unwrap();
        let host = env
            .iter_mut()
            .find(|e| e["name"] == "AZURE_AUTHORITY_HOST")
            .unwrap();
        host["value"] = json!("https://login.chinacloudapi.cn/");
    })
    .doctor(&[]);
    assert_only(&out, &["authority-host-mismatch"]);
    assert!(
        out.message_of("authority-host-mismatch")
            .contains("AzureChinaCloud")
    );
}

#[test]
fn manual_mode_missing_ids() {
    let out = manual(|d| {
        d["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array_mut()
            .unwrap()
            .retain(|e| e["name"] != "AZURE_CLIENT_ID" && e["name"] != "AZURE_TENANT_ID");
    })
    .doctor(&[]);
    assert_only(&out, &["sa-missing-client-id", "sa-missing-tenant-id"]);
    assert!(
        out.findings().iter().all(|f| f.2 == "error"),
        "manual mode has no tenant fallback"
    );
}

#[test]
fn aad_pod_identity_leftovers() {
    let mut objects = healthy_aks();
    let deploy = flux::find(&mut objects, "Deployment", "kustomize-controller");
    deploy["spec"]["template"]["metadata"]["labels"]["aadpodidbinding"] = json!("flux");
    let out = aks(objects).doctor(&[]);
    assert_only(&out, &["legacy-aad-pod-identity"]);
}

#[test]
fn wired_controller_nobody_uses() {
    let mut objects = healthy_aks();
    flux::wire_webhook(&mut objects, "helm-controller");
    objects.retain(|o| {
        !(o["kind"] == "Pod"
            && o["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("helm-controller"))
    });
    let restarted = flux::pod_of(&objects, "helm-controller", true);
    objects.push(restarted);
    let out = aks(objects).doctor(&[]);
    assert_eq!(out.code, 0);
    assert_eq!(
        out.findings(),
        vec![(
            "controller-identity-unused".into(),
            "flux-system/Deployment/helm-controller".into(),
            "info".into()
        )]
    );
    assert_eq!(out.findings().len(), 1);
}

#[test]
fn forbidden_resources_each_give_a_partial_report() {
    let cases = [
        (
            "/apis/apps/v1/namespaces/flux-system/deployments",
            "sa-missing-client-id",
        ),
        ("/api/v1/serviceaccounts", "sa-missing-client-id"),
        (
            "/mutatingwebhookconfigurations",
            "workload-identity-webhook-missing",
        ),
        ("/.well-known/openid-configuration", "issuer-not-public"),
        ("/ocirepositories", "controller-identity-unused"),
    ];
    for (path, skipped) in cases {
        let mut config = FakeConfig {
            objects: healthy_aks(),
            issuer: Some(AKS_ISSUER.into()),
            ..FakeConfig::default()
        };
        config
            .faults
            .push(Fault::new(path, 403, FaultBehaviour::Status));
        let out = Cluster::start(config).doctor(&[]);
        assert_eq!(out.code, 0, "{path}: {}", out.stdout);
        assert!(
            out.finding_names()
                .contains(&"state-unreadable".to_string()),
            "{path}: {:?}",
            out.findings()
        );
        assert_eq!(out.status(skipped), "skip", "{path}");
    }
}

fn tenant(minor: u32, gate: bool, annotated: bool) -> Vec<Value> {
    let mut objects = flux::healthy_aks(minor);
    if gate {
        flux::add_arg(
            &mut objects,
            "source-controller",
            "--feature-gates=ObjectLevelWorkloadIdentity=true",
        );
    }
    let mut oci = flux::oci_repository(minor, "team-a", "app");
    oci["spec"]["serviceAccountName"] = json!("team-a-sa");
    objects.push(oci);
    if annotated {
        let mut sa = flux::service_account("team-a", "team-a-sa");
        sa["metadata"]["annotations"] = json!({"azure.workload.identity/client-id": flux::CLIENT_ID, "azure.workload.identity/tenant-id": flux::TENANT_ID});
        objects.push(sa);
    }
    objects
}

#[test]
fn object_level_identity_on_aks_is_flagged_as_unstable() {
    let out = aks(tenant(MINOR, true, true)).doctor(&[]);
    assert_eq!(out.code, 0);
    assert_eq!(
        out.findings(),
        vec![(
            "object-level-on-aks-unstable".into(),
            "Cluster/flux-system".into(),
            "info".into()
        )]
    );
    assert!(
        out.message_of("object-level-on-aks-unstable")
            .contains("fluxcd/flux2#5359")
    );
}

#[test]
fn missing_tenant_service_account_is_an_error_on_a_live_cluster() {
    let out = aks(tenant(MINOR, true, false)).doctor(&[]);
    assert_eq!(out.code, 1);
    let found: Vec<(String, String)> = out
        .findings()
        .into_iter()
        .filter(|f| f.0 == "object-sa-not-found")
        .map(|f| (f.1, f.2))
        .collect();
    assert_eq!(
        found,
        vec![(
            "team-a/ServiceAccount/team-a-sa".to_string(),
            "error".to_string()
        )]
    );
}

#[test]
fn object_level_identity_needs_flux_2_6_on_older_clusters() {
    let out = aks(tenant(5, true, true)).doctor(&[]);
    assert!(
        out.message_of("flux-version-too-old").contains(
            "needs source-controller v1.6.0 (Flux v2.6.0); source-controller v1.5.0 predates it"
        ),
        "{}",
        out.stdout
    );
    let requests = aks(tenant(5, true, true));
    let _ = requests.doctor(&[]);
    let listed: Vec<String> = requests
        .server
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .filter(|p| p.contains("ocirepositories"))
        .collect();
    assert_eq!(
        listed,
        vec!["/apis/source.toolkit.fluxcd.io/v1beta2/ocirepositories"],
        "listed at the version 2.5 serves"
    );
}

#[test]
fn remote_cluster_secrets_are_read_only_when_asked() {
    let canary = "CANARY-remote-kubeconfig-token";
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: {canary}\n    exec:\n      command: kubelogin\n      args: [get-token]\n"
    );
    let mut objects = healthy_aks();
    objects.push(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "prod", "namespace": NS}, "stringData": {"value": kubeconfig}}));
    objects.push(flux::object(MINOR, "Kustomization", NS, "prod", json!({"path": "./", "sourceRef": {"kind": "OCIRepository", "name": "platform"}, "kubeConfig": {"secretRef": {"name": "prod"}}})));
    let cluster = aks(objects);
    let without = cluster.doctor(&[]);
    assert_eq!(without.status("remote-cluster-exec-kubeconfig"), "skip");
    assert!(
        cluster
            .server
            .requests()
            .iter()
            .all(|r| !r.path.contains("/secrets")),
        "no Secret read without --read-secrets"
    );
    let with = cluster.doctor(&["--read-secrets"]);
    assert_eq!(with.finding_names(), vec!["remote-cluster-exec-kubeconfig"]);
    assert!(!with.stdout.contains(canary) && !with.stderr.contains(canary));
}

#[test]
fn requests_do_not_grow_with_objects() {
    let count = |tenants: usize| {
        let mut objects = tenant(MINOR, true, true);
        for i in 0..tenants {
            let ns = format!("team-{i}");
            let mut oci = flux::oci_repository(MINOR, &ns, "app");
            oci["spec"]["serviceAccountName"] = json!("sa");
            objects.push(oci);
        }
        let cluster = aks(objects);
        let out = cluster.doctor(&[]);
        assert!(out.code == 0 || out.code == 1);
        cluster.server.requests().len()
    };
    assert_eq!(count(1), count(50));
}

/// `azflux.io/ignore` silences checks on the live object that carries it, as it does in
/// manifests: a Flux object and a ServiceAccount read from the API server.
#[test]
fn the_ignore_annotation_silences_checks_on_live_objects() {
    let mut objects = healthy_aks();
    for name in ["quiet", "loud"] {
        let mut repository = flux::oci_repository(MINOR, NS, name);
        repository["spec"]
            .as_object_mut()
            .unwrap()
            .remove("provider");
        objects.push(repository);
    }
    let sa = flux::find(&mut objects, "ServiceAccount", "source-controller");
    sa["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove("azure.workload.identity/tenant-id");
    let before = aks(objects.clone()).doctor(&[]);
    assert_only(
        &before,
        &["sa-missing-tenant-id", "azure-endpoint-without-provider"],
    );

    let sa = flux::find(&mut objects, "ServiceAccount", "source-controller");
    sa["metadata"]["annotations"]["azflux.io/ignore"] = json!("AZF022");
    let quiet = flux::find(&mut objects, "OCIRepository", "quiet");
    quiet["metadata"]["annotations"] =
        json!({"azflux.io/ignore": "sa-missing-client-id, azure-endpoint-without-provider"});
    let after = aks(objects).doctor(&[]);
    let findings: Vec<(String, String)> = after
        .findings()
        .into_iter()
        .map(|(name, subject, _)| (name, subject))
        .collect();
    assert_eq!(
        findings,
        [(
            "azure-endpoint-without-provider".to_string(),
            "flux-system/OCIRepository/loud".to_string()
        )],
        "{}",
        after.stdout
    );
}
