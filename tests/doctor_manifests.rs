//! `doctor -f` / `-k` on manifests: the bundled example, kustomizations rendered as Flux
//! renders them, bad input, and the Flux object checks, each positive and negative, across
//! Flux releases.

#[path = "support/mod.rs"]
mod support;

use serde_json::{Value, json};
use support::flux::{self, NS, TENANT_ID};
use support::run::{Outcome, Sandbox, write_yaml};

fn doctor_on(objects: &[Value], extra: &[&str]) -> Outcome {
    let sandbox = Sandbox::new();
    let dir = sandbox.path("manifests");
    write_yaml(&dir.join("all.yaml"), objects);
    let dir = dir.display().to_string();
    let mut args = vec!["doctor", "-o", "json", "-f", dir.as_str()];
    args.extend_from_slice(extra);
    sandbox.run(&args)
}

fn names(out: &Outcome) -> Vec<String> {
    let mut names = out.finding_names();
    names.dedup();
    names
}

/// A Flux 2.`minor` install in webhook mode for source-controller, plus `extra` objects.
fn setup(minor: u32, extra: Vec<Value>) -> Vec<Value> {
    let mut objects = flux::install(minor);
    flux::wire_webhook(&mut objects, "source-controller");
    objects.push(flux::oci_repository(minor, NS, "platform"));
    objects.extend(extra);
    objects
}

#[test]
fn bundled_example_is_diagnosed() {
    let sandbox = Sandbox::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/broken-aks");
    let out = sandbox.run(&["doctor", "-o", "json", "-f", example]);
    assert_eq!(out.code, 1);
    let findings: Vec<(String, String)> = out.findings().into_iter().map(|f| (f.0, f.1)).collect();
    assert_eq!(
        findings,
        vec![
            (
                "sa-missing-tenant-id".to_string(),
                "flux-system/ServiceAccount/kustomize-controller".to_string()
            ),
            (
                "identity-annotation-malformed".to_string(),
                "flux-system/ServiceAccount/kustomize-controller".to_string()
            ),
            (
                "label-on-wrong-object".to_string(),
                "flux-system/ServiceAccount/source-controller".to_string()
            ),
            (
                "kubelet-identity-fallback".to_string(),
                "flux-system/Deployment/image-reflector-controller".to_string()
            ),
        ]
    );
    let report = out.json();
    assert_eq!(report["mode"], "manifests");
    assert_eq!(report["context"], Value::Null);
    assert_eq!(report["status"], Value::Null);
    for check in report["checks"].as_array().unwrap() {
        if check["status"] == "skip" {
            assert!(
                check["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "{check}"
            );
        }
    }
    // What manifest mode cannot check is counted, not listed; -v lists it with the reason.
    let text = sandbox.run(&["doctor", "-f", example]);
    assert!(
        text.stdout
            .contains(" not run (manifest mode); -v lists every check"),
        "{}",
        text.stdout
    );
    let verbose = sandbox.run(&["doctor", "-f", example, "-v"]);
    assert!(
        verbose.stdout.contains("skipped: manifest mode"),
        "{}",
        verbose.stdout
    );
}

#[test]
fn healthy_install_has_no_findings_in_any_release() {
    for minor in 2..=9 {
        let out = doctor_on(&setup(minor, vec![]), &[]);
        assert_eq!(out.code, 0, "2.{minor}: {}", out.stdout);
        assert!(names(&out).is_empty(), "2.{minor}: {:?}", out.findings());
    }
}

#[test]
fn output_is_deterministic() {
    let objects = setup(
        7,
        vec![
            flux::object(
                7,
                "OCIRepository",
                "team-b",
                "z",
                json!({"url": "oci://x.azurecr.io/a"}),
            ),
            flux::object(
                7,
                "OCIRepository",
                "team-a",
                "y",
                json!({"url": "oci://x.azurecr.io/b"}),
            ),
        ],
    );
    let sandbox = Sandbox::new();
    let dir = sandbox.path("m");
    write_yaml(&dir.join("all.yaml"), &objects);
    let dir = dir.display().to_string();
    let first = sandbox.run(&["doctor", "-o", "json", "-f", &dir]);
    let second = sandbox.run(&["doctor", "-o", "json", "-f", &dir]);
    assert_eq!(first.stdout, second.stdout);
    let subjects: Vec<String> = first.findings().into_iter().map(|f| f.1).collect();
    assert_eq!(
        subjects,
        vec!["team-a/OCIRepository/y", "team-b/OCIRepository/z"]
    );
}

#[test]
fn stdin_is_read_with_dash() {
    let sandbox = Sandbox::new();
    let path = sandbox.path("in.yaml");
    write_yaml(&path, &setup(7, vec![]));
    let output = sandbox
        .command()
        .args(["doctor", "-o", "json", "-f", "-"])
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["inputs"], json!(["-"]));
}

#[test]
fn bad_yaml_names_file_and_line_and_exits_2() {
    let sandbox = Sandbox::new();
    let file = sandbox.write("bad.yaml", "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: ok\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: [unclosed\n");
    let out = sandbox.run(&["doctor", "-f", &file.display().to_string()]);
    assert_eq!(out.code, 2);
    assert_eq!(out.stdout, "");
    let expected = format!("error: {}:", file.display());
    assert!(out.stderr.starts_with(&expected), "{}", out.stderr);
}

#[test]
fn missing_file_is_named() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["doctor", "-f", "/nonexistent/flux.yaml"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("/nonexistent/flux.yaml"),
        "{}",
        out.stderr
    );
}

/// A flux-system folder as `flux bootstrap` writes it, with the Azure patches in its
/// kustomization.yaml, rendered with `kubectl kustomize` as Flux does.
#[test]
fn kustomization_is_rendered_like_flux_does() {
    let sandbox = Sandbox::new();
    let mut components = flux::install(7);
    components.retain(|o| o["kind"] != "CustomResourceDefinition");
    write_yaml(
        &sandbox.path("repo/clusters/prod/flux-system/gotk-components.yaml"),
        &components,
    );
    write_yaml(
        &sandbox.path("repo/apps/sources.yaml"),
        &[flux::oci_repository(7, NS, "platform")],
    );
    sandbox.write(
        "repo/clusters/prod/flux-system/kustomization.yaml",
        &format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- gotk-components.yaml\n- ../../../apps/sources.yaml\npatches:\n- target:\n    kind: ServiceAccount\n    name: source-controller\n  patch: |\n    apiVersion: v1\n    kind: ServiceAccount\n    metadata:\n      name: source-controller\n      annotations:\n        azure.workload.identity/client-id: {}\n        azure.workload.identity/tenant-id: {TENANT_ID}\n- target:\n    kind: Deployment\n    name: source-controller\n  patch: |\n    apiVersion: apps/v1\n    kind: Deployment\n    metadata:\n      name: source-controller\n    spec:\n      template:\n        metadata:\n          labels:\n            azure.workload.identity/use: \"true\"\n",
            flux::CLIENT_ID
        ),
    );
    let dir = sandbox
        .path("repo/clusters/prod/flux-system")
        .display()
        .to_string();
    let out = sandbox.run(&["doctor", "-o", "json", "-k", &dir]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(names(&out).is_empty(), "{:?}", out.findings());
    assert_eq!(out.status("controller-identity-unused"), "pass");

    let broken = sandbox.write("repo/clusters/broken/kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- missing.yaml\n");
    let out = sandbox.run(&[
        "doctor",
        "-k",
        &broken.parent().unwrap().display().to_string(),
    ]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.starts_with("error: kubectl kustomize"),
        "{}",
        out.stderr
    );
}

#[test]
fn kustomize_without_kubectl_says_so() {
    let sandbox = Sandbox::new();
    let output = sandbox
        .command()
        .env("PATH", sandbox.path("bin"))
        .args(["doctor", "-k", "."])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("-k needs kubectl"), "{stderr}");
}

#[test]
fn loose_objects_skip_controller_checks() {
    let out = doctor_on(&[flux::oci_repository(7, "apps", "x")], &[]);
    assert_eq!(out.code, 0);
    assert_eq!(
        out.findings(),
        vec![(
            "flux-not-found".to_string(),
            "Cluster/manifests".to_string(),
            "info".to_string()
        )]
    );
    assert_eq!(out.status("azure-controller-not-wired"), "skip");
}

#[test]
fn azure_endpoint_without_provider() {
    let out = doctor_on(
        &setup(
            7,
            vec![
                flux::object(
                    7,
                    "OCIRepository",
                    "apps",
                    "no-provider",
                    json!({"url": "oci://contoso.azurecr.io/app"}),
                ),
                flux::object(
                    7,
                    "OCIRepository",
                    "apps",
                    "with-secret",
                    json!({"url": "oci://contoso.azurecr.io/app", "secretRef": {"name": "pull"}}),
                ),
                flux::object(
                    7,
                    "OCIRepository",
                    "apps",
                    "ghcr",
                    json!({"url": "oci://ghcr.io/org/app"}),
                ),
                flux::object(
                    7,
                    "HelmRepository",
                    "apps",
                    "https-helm",
                    json!({"url": "https://contoso.azurecr.io/helm/v1/repo"}),
                ),
                flux::object(
                    7,
                    "GitRepository",
                    "apps",
                    "ado",
                    json!({"url": "https://dev.azure.com/org/proj/_git/repo"}),
                ),
                flux::object(
                    7,
                    "GitRepository",
                    "apps",
                    "ado-ssh",
                    json!({"url": "ssh://git@ssh.dev.azure.com/v3/org/proj/repo", "secretRef": {"name": "ssh"}}),
                ),
                flux::object(
                    7,
                    "Bucket",
                    "apps",
                    "blob",
                    json!({"bucketName": "c", "endpoint": "https://acct.blob.core.windows.net", "provider": "generic"}),
                ),
                flux::object(
                    7,
                    "ImageRepository",
                    "apps",
                    "img",
                    json!({"image": "contoso.azurecr.cn/app"}),
                ),
            ],
        ),
        &[],
    );
    let subjects: Vec<String> = out
        .findings()
        .into_iter()
        .filter(|f| f.0 == "azure-endpoint-without-provider")
        .map(|f| f.1)
        .collect();
    assert_eq!(
        subjects,
        vec![
            "apps/Bucket/blob",
            "apps/GitRepository/ado",
            "apps/ImageRepository/img",
            "apps/OCIRepository/no-provider"
        ]
    );
}

#[test]
fn provider_azure_with_secretref() {
    let out = doctor_on(
        &setup(
            7,
            vec![
                flux::object(
                    7,
                    "OCIRepository",
                    NS,
                    "both",
                    json!({"url": "oci://contoso.azurecr.io/app", "provider": "azure", "secretRef": {"name": "pull"}}),
                ),
                flux::object(
                    7,
                    "Provider",
                    NS,
                    "hub",
                    json!({"type": "azureeventhub", "serviceAccountName": "hub-sa", "secretRef": {"name": "conn"}}),
                ),
                flux::object(
                    7,
                    "Bucket",
                    NS,
                    "cert",
                    json!({"bucketName": "c", "endpoint": "https://acct.blob.core.windows.net", "provider": "azure", "secretRef": {"name": "cert"}}),
                ),
            ],
        ),
        &[],
    );
    let found: Vec<(String, String)> = out
        .findings()
        .into_iter()
        .filter(|f| f.0 == "secret-overrides-workload-identity")
        .map(|f| (f.1, f.2))
        .collect();
    // The Bucket's Secret, unread here, wins over source-controller's workload identity when
    // it has data: said as a warning naming both, like the OCIRepository's.
    assert_eq!(
        found,
        vec![
            ("flux-system/Bucket/cert".to_string(), "warning".to_string()),
            (
                "flux-system/OCIRepository/both".to_string(),
                "warning".to_string()
            ),
            ("flux-system/Provider/hub".to_string(), "error".to_string()),
        ]
    );
}

#[test]
fn gitrepository_service_account_needs_provider_azure() {
    let out = doctor_on(
        &setup(
            7,
            vec![
                flux::object(
                    7,
                    "GitRepository",
                    "apps",
                    "bad",
                    json!({"url": "https://dev.azure.com/o/p/_git/r", "serviceAccountName": "git"}),
                ),
                flux::object(
                    7,
                    "GitRepository",
                    "apps",
                    "good",
                    json!({"url": "https://dev.azure.com/o/p/_git/r", "serviceAccountName": "git", "provider": "azure"}),
                ),
            ],
        ),
        &[],
    );
    let found: Vec<String> = out
        .findings()
        .into_iter()
        .filter(|f| f.0 == "gitrepository-sa-requires-provider-azure")
        .map(|f| f.1)
        .collect();
    assert_eq!(found, vec!["apps/GitRepository/bad"]);
}

#[test]
fn flux_version_too_old_names_the_version_needed() {
    let ado = |minor| {
        flux::object(
            minor,
            "GitRepository",
            NS,
            "fleet",
            json!({"url": "https://dev.azure.com/o/p/_git/r", "provider": "azure"}),
        )
    };
    let old = doctor_on(&setup(3, vec![ado(3)]), &[]);
    assert!(
        old.message_of("flux-version-too-old")
            .contains("needs source-controller v1.4.0 (Flux v2.4.0)"),
        "{}",
        old.stdout
    );
    // The fix regenerates the file the controllers were read from when it holds the install
    // alone; a file that also holds other objects is not overwritten.
    let fix_of = |out: &Outcome| {
        out.json()["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "flux-version-too-old")
            .and_then(|f| f["fix"].as_str())
            .unwrap()
            .to_string()
    };
    let shared = fix_of(&old);
    assert!(
        shared.ends_with("\nflux install --version=v2.4.0 --export > gotk-components.yaml"),
        "{shared}"
    );
    let sandbox = Sandbox::new();
    let install = sandbox.path("flux-system/gotk-components.yaml");
    // As bootstrap lays it out: the install in gotk-components.yaml, the sync objects apart.
    let (mut sync, components): (Vec<Value>, Vec<Value>) =
        setup(3, Vec::new()).into_iter().partition(|o| {
            o["apiVersion"]
                .as_str()
                .is_some_and(|v| v.contains("toolkit.fluxcd.io"))
        });
    write_yaml(&install, &components);
    sync.push(ado(3));
    write_yaml(&sandbox.path("flux-system/gotk-sync.yaml"), &sync);
    let dir = sandbox.path("flux-system").display().to_string();
    let alone = sandbox.run(&["doctor", "-o", "json", "-f", &dir]);
    assert_eq!(
        fix_of(&alone),
        format!(
            "flux install --version=v2.4.0 --export > {}",
            install.display()
        )
    );
    let new = doctor_on(&setup(4, vec![ado(4)]), &[]);
    assert!(
        !names(&new).contains(&"flux-version-too-old".to_string()),
        "{:?}",
        new.findings()
    );

    let object_level = |minor| {
        let mut o = flux::oci_repository(minor, "team-a", "app");
        o["spec"]["serviceAccountName"] = json!("team-a-sa");
        o
    };
    for minor in 2..=9 {
        let out = doctor_on(&setup(minor, vec![object_level(minor)]), &[]);
        let too_old = names(&out).contains(&"flux-version-too-old".to_string());
        assert_eq!(too_old, minor < 6, "2.{minor}: {:?}", out.findings());
    }
}

#[test]
fn azure_china_needs_a_newer_source_controller() {
    let china = |tag: &str| {
        let mut objects = setup(
            7,
            vec![flux::object(
                7,
                "OCIRepository",
                NS,
                "cn",
                json!({"url": "oci://contoso.azurecr.cn/app", "provider": "azure"}),
            )],
        );
        let deploy = flux::find(&mut objects, "Deployment", "source-controller");
        deploy["spec"]["template"]["spec"]["containers"][0]["image"] =
            json!(format!("ghcr.io/fluxcd/source-controller:{tag}"));
        doctor_on(&objects, &[])
    };
    assert!(
        china("v1.7.3")
            .message_of("flux-version-too-old")
            .contains("v1.7.4")
    );
    assert!(!names(&china("v1.7.4")).contains(&"flux-version-too-old".to_string()));
}

fn object_level_setup(minor: u32, gate: bool, sa_annotations: Option<Value>) -> Vec<Value> {
    let mut objects = setup(minor, vec![]);
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
    if let Some(annotations) = sa_annotations {
        let mut sa = flux::service_account("team-a", "team-a-sa");
        sa["metadata"]["annotations"] = annotations;
        objects.push(sa);
    }
    objects
}

fn full_annotations() -> Value {
    json!({"azure.workload.identity/client-id": flux::CLIENT_ID, "azure.workload.identity/tenant-id": TENANT_ID})
}

#[test]
fn object_level_gate_missing() {
    for minor in 6..=9 {
        let off = doctor_on(
            &object_level_setup(minor, false, Some(full_annotations())),
            &[],
        );
        assert_eq!(names(&off), vec!["object-level-gate-missing"], "2.{minor}");
        assert!(
            off.message_of("object-level-gate-missing")
                .starts_with("1 OCIRepository in team-a uses their own ServiceAccount")
                || off
                    .message_of("object-level-gate-missing")
                    .contains("1 OCIRepository in team-a")
        );
        let on = doctor_on(
            &object_level_setup(minor, true, Some(full_annotations())),
            &[],
        );
        assert!(names(&on).is_empty(), "2.{minor}: {:?}", on.findings());
    }
}

#[test]
fn object_service_account_missing_or_unannotated() {
    let missing = doctor_on(&object_level_setup(7, true, None), &[]);
    assert_eq!(
        missing.findings(),
        vec![(
            "object-sa-not-found".to_string(),
            "team-a/ServiceAccount/team-a-sa".to_string(),
            "warning".to_string()
        )]
    );
    let half = doctor_on(
        &object_level_setup(
            7,
            true,
            Some(json!({"azure.workload.identity/client-id": flux::CLIENT_ID})),
        ),
        &[],
    );
    assert_eq!(names(&half), vec!["object-sa-missing-annotations"]);
    assert!(
        half.message_of("object-sa-missing-annotations")
            .contains("lacks `azure.workload.identity/tenant-id`")
    );
}

#[test]
fn lockdown_default_service_account_missing() {
    let mut objects = setup(7, vec![]);
    flux::add_arg(
        &mut objects,
        "source-controller",
        "--feature-gates=ObjectLevelWorkloadIdentity=true",
    );
    flux::add_arg(
        &mut objects,
        "source-controller",
        "--default-service-account=flux-tenant",
    );
    objects.push(flux::oci_repository(7, "team-b", "app"));
    let mut present = flux::service_account(NS, "flux-tenant");
    present["metadata"]["annotations"] = full_annotations();
    objects.push(present);
    let out = doctor_on(&objects, &[]);
    // Under lockdown nothing uses the controller's own identity any more: that is worth an info.
    assert_eq!(
        out.findings(),
        vec![
            (
                "controller-identity-unused".to_string(),
                "flux-system/Deployment/source-controller".to_string(),
                "info".to_string()
            ),
            (
                "lockdown-default-sa-missing".to_string(),
                "team-b/ServiceAccount/flux-tenant".to_string(),
                "error".to_string()
            ),
        ]
    );
}

#[test]
fn remote_cluster_kubeconfig_with_exec_plugin() {
    let kubeconfig = "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: kubelogin\n      args: [get-token, --login, azurecli]\n";
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "prod-kubeconfig", "namespace": NS}, "stringData": {"value": kubeconfig}});
    let ks = flux::object(
        7,
        "Kustomization",
        NS,
        "prod-apps",
        json!({"path": "./apps", "sourceRef": {"kind": "OCIRepository", "name": "platform"}, "kubeConfig": {"secretRef": {"name": "prod-kubeconfig"}}}),
    );
    let out = doctor_on(&setup(7, vec![secret, ks]), &[]);
    assert_eq!(names(&out), vec!["remote-cluster-exec-kubeconfig"]);
    assert!(
        out.message_of("remote-cluster-exec-kubeconfig")
            .contains("`kubelogin`")
    );
    assert!(
        !out.stdout.contains("get-token"),
        "no kubeconfig content in the report"
    );
}

#[test]
fn remote_aks_cluster_through_config_map_uses_object_level_identity() {
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "prod-aks", "namespace": NS},
        "data": {"provider": "azure", "cluster": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/prod", "serviceAccountName": "prod-deployer"}});
    let hr = flux::object(
        7,
        "HelmRelease",
        NS,
        "app",
        json!({"chart": {"spec": {"chart": "app"}}, "kubeConfig": {"configMapRef": {"name": "prod-aks"}}}),
    );
    let out = doctor_on(&setup(7, vec![config_map, hr]), &[]);
    assert_eq!(
        names(&out),
        vec!["object-level-gate-missing", "object-sa-not-found"]
    );
    assert_eq!(
        out.findings()[0].1,
        "flux-system/Deployment/helm-controller"
    );
}

#[test]
fn secret_based_azure_auth_is_recommended_away() {
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bucket-cert", "namespace": NS},
        "stringData": {"tenantId": TENANT_ID, "clientId": flux::CLIENT_ID, "clientCertificate": "CANARY-PEM-DATA"}});
    let bucket = flux::object(
        7,
        "Bucket",
        NS,
        "b",
        json!({"bucketName": "c", "endpoint": "https://acct.blob.core.windows.net", "provider": "azure", "secretRef": {"name": "bucket-cert"}}),
    );
    let out = doctor_on(&setup(7, vec![secret.clone(), bucket.clone()]), &[]);
    // source-controller has workload identity here: the certificate takes its place.
    assert_eq!(
        out.findings(),
        vec![(
            "secret-overrides-workload-identity".to_string(),
            "flux-system/Bucket/b".to_string(),
            "warning".to_string()
        )]
    );
    assert!(
        out.message_of("secret-overrides-workload-identity")
            .contains("source-controller's workload identity, but Secret bucket-cert (an application's certificate)"),
        "{}",
        out.stdout
    );
    // Without workload identity on source-controller, the certificate is the credential.
    let mut unwired = flux::install(7);
    unwired.extend([secret, bucket]);
    let out = doctor_on(&unwired, &[]);
    assert_eq!(
        out.findings(),
        vec![(
            "secret-based-azure-auth".to_string(),
            "flux-system/Bucket/b".to_string(),
            "info".to_string()
        )]
    );
    assert!(!out.stdout.contains("CANARY-PEM-DATA"));
}

#[test]
fn sops_with_key_vault_needs_kustomize_controller_identity() {
    let encrypted = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "apps"},
        "data": {"password": "ENC[AES256_GCM,data:abc,type:str]"},
        "sops": {"azure_kv": [{"vault_url": "https://contoso.vault.azure.net", "name": "sops", "version": "1"}]}});
    let ks = flux::object(
        7,
        "Kustomization",
        NS,
        "apps",
        json!({"path": "./apps", "sourceRef": {"kind": "OCIRepository", "name": "platform"}, "decryption": {"provider": "sops"}}),
    );
    let out = doctor_on(&setup(7, vec![encrypted, ks]), &[]);
    assert_eq!(names(&out), vec!["azure-controller-not-wired"]);
    assert!(out.message_of("azure-controller-not-wired").contains("kustomize-controller has no workload identity, but 1 Kustomization in flux-system uses Azure Key Vault"));
}

#[test]
fn many_findings_are_grouped_and_folded_in_text() {
    let mut extra = Vec::new();
    for ns in ["team-a", "team-b"] {
        for i in 0..8 {
            extra.push(flux::object(
                7,
                "OCIRepository",
                ns,
                &format!("app-{i}"),
                json!({"url": "oci://contoso.azurecr.io/app"}),
            ));
        }
    }
    extra.push(flux::object(
        7,
        "OCIRepository",
        "team-c",
        "one",
        json!({"url": "oci://contoso.azurecr.io/app"}),
    ));
    let sandbox = Sandbox::new();
    let dir = sandbox.path("m");
    write_yaml(&dir.join("all.yaml"), &setup(7, extra));
    let dir = dir.display().to_string();
    let text = sandbox.run(&["doctor", "-f", &dir]);
    assert!(
        text.stdout
            .contains("17 findings: 8 in team-a, 8 in team-b, 1 in team-c"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("… and 7 more (--show-all lists them"),
        "{}",
        text.stdout
    );
    let all = sandbox.run(&["doctor", "-f", &dir, "--show-all"]);
    assert_eq!(
        all.stdout
            .lines()
            .filter(|l| l.starts_with("⚠ ") && l.contains(" team-"))
            .count(),
        17,
        "{}",
        all.stdout
    );
    let json = sandbox.run(&["doctor", "-f", &dir, "-o", "json"]);
    assert_eq!(json.finding_names().len(), 17);
}

/// The default report is read in seconds: problems first (errors, then warnings), nothing
/// wider than 100 columns, at most 30 lines for the bundled example, ending with the verdict
/// and the one `enable` line that fixes what it can.
#[test]
fn the_default_report_puts_problems_first_and_ends_with_the_fix() {
    let sandbox = Sandbox::new();
    // As README runs it: from the project folder, with the relative path.
    for args in [["-f", "examples/broken-aks"], ["-k", "examples/broken-aks"]] {
        let output = sandbox
            .command()
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["doctor", args[0], args[1]])
            .output()
            .unwrap();
        let out = support::run::Outcome {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        assert_eq!(out.code, 1, "{}", out.stderr);
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert!(lines.len() <= 30, "{} lines:\n{}", lines.len(), out.stdout);
        assert!(
            lines.iter().all(|l| l.chars().count() <= 100),
            "{}",
            out.stdout
        );
        let heads: Vec<&str> = lines
            .iter()
            .filter(|l| l.starts_with('✗') || l.starts_with('⚠'))
            .copied()
            .collect();
        assert_eq!(
            heads
                .iter()
                .filter_map(|h| h.chars().next())
                .collect::<String>(),
            "✗✗⚠⚠",
            "{}",
            out.stdout
        );
        assert!(
            out.stdout.contains(
                "Azure authentication is broken: 2 errors, 2 warnings (`kubectl azflux explain ID` for more)."
            ),
            "{}",
            out.stdout
        );
        let fix = out.stdout.split("\nFix ").nth(1).unwrap_or_default();
        assert!(
            fix.starts_with("AZF022, AZF023, AZF025, AZF033: kubectl azflux enable --gitops"),
            "{}",
            out.stdout
        );
        assert!(
            !out.stdout.contains("✔ AZF"),
            "passed checks are a count, not a list"
        );
    }
}

/// README's "Try it" shows the bundled example's report; it is the report the binary prints.
#[test]
fn readme_shows_the_report_the_bundled_example_gives() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let shown = readme
        .split("```text\n")
        .nth(1)
        .and_then(|rest| rest.split("```\n").next())
        .expect("README has the example's report");
    let output = Sandbox::new()
        .command()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["doctor", "-f", "examples/broken-aks"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), shown);
}

/// CI formats: SARIF 2.1.0 (deserialized into the types generated from the OASIS schema), JUnit
/// XML and GitHub workflow commands, each with every finding and, for `-f` inputs, its file.
#[test]
fn ci_formats_carry_every_finding_with_its_file() {
    let sandbox = Sandbox::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/broken-aks");
    let json = sandbox.run(&["doctor", "-f", example, "-o", "json"]);
    let findings = json.findings();

    let sarif = sandbox.run(&["doctor", "-f", example, "-o", "sarif"]);
    assert_eq!(sarif.code, json.code);
    let typed: serde_sarif::sarif::Sarif = serde_json::from_str(&sarif.stdout).unwrap();
    assert_eq!(typed.runs.len(), 1);
    let doc: Value = serde_json::from_str(&sarif.stdout).unwrap();
    assert_eq!(doc["version"], "2.1.0");
    let results = doc["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), findings.len());
    let rules = doc["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    for result in results {
        let index = usize::try_from(result["ruleIndex"].as_u64().unwrap()).unwrap();
        assert_eq!(rules[index]["id"], result["ruleId"]);
        let uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap();
        assert!(
            uri.starts_with(example)
                && std::path::Path::new(uri)
                    .extension()
                    .is_some_and(|e| e == "yaml"),
            "{result:#}"
        );
    }
    assert!(
        results.iter().any(|r| r["level"] == "error")
            && results.iter().any(|r| r["level"] == "warning")
    );

    let junit = sandbox.run(&["doctor", "-f", example, "-o", "junit"]);
    assert!(junit.stdout.starts_with(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"kubectl-azflux doctor\""
    ));
    assert_eq!(
        junit.stdout.matches("<failure ").count(),
        json.json()["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] == "fail")
            .count()
    );
    assert!(
        junit
            .stdout
            .contains("<testsuite name=\"Flux controllers\""),
        "{}",
        junit.stdout
    );

    let github = sandbox.run(&["doctor", "-f", example, "-o", "github"]);
    let annotations: Vec<&str> = github.stdout.lines().collect();
    assert_eq!(annotations.len(), findings.len(), "{}", github.stdout);
    assert!(
        annotations.iter().any(|a| a.starts_with("::error file=") && a.contains("title=AZF025 label-on-wrong-object flux-system/ServiceAccount/source-controller::")),
        "{}",
        github.stdout
    );
}

/// A broken Flux 2.7 install: kustomize-controller's client ID is no UUID, source-controller's
/// label sits on its ServiceAccount, and an ACR source names no provider.
fn broken_install() -> Vec<Value> {
    let mut objects = flux::install(7);
    objects.retain(|o| o["kind"] != "CustomResourceDefinition");
    flux::wire_webhook(&mut objects, "source-controller");
    let sa = flux::find(&mut objects, "ServiceAccount", "source-controller");
    sa["metadata"]["labels"] = json!({"azure.workload.identity/use": "true"});
    flux::find(&mut objects, "Deployment", "source-controller")["spec"]["template"]["metadata"]
        ["labels"]
        .as_object_mut()
        .unwrap()
        .remove("azure.workload.identity/use");
    let sa = flux::find(&mut objects, "ServiceAccount", "kustomize-controller");
    sa["metadata"]["annotations"] = json!({"azure.workload.identity/client-id": "not a uuid"});
    objects
}

/// `namespace/Kind/name`, as SARIF's logical locations name an object.
fn subject_of(object: &Value) -> String {
    format!(
        "{}/{}/{}",
        object["metadata"]["namespace"].as_str().unwrap_or(NS),
        object["kind"].as_str().unwrap(),
        object["metadata"]["name"].as_str().unwrap()
    )
}

/// Objects as one YAML stream the way people write them (a leading comment, markers with
/// comments, an explicit document end), and the line each object's document starts on.
fn stream(objects: &[Value]) -> (String, std::collections::BTreeMap<String, u64>) {
    let mut text = String::from("# Flux, as installed\n\n");
    let mut lines = std::collections::BTreeMap::new();
    for (index, object) in objects.iter().enumerate() {
        text.push_str(match index % 3 {
            0 => "---\n",
            1 => "--- # next\n# a note on it\n",
            _ => "...\n---\n",
        });
        let line = u64::try_from(text.lines().count()).unwrap() + 1;
        lines.insert(subject_of(object), line);
        text.push_str(&serde_saphyr::to_string(object).unwrap());
    }
    (text, lines)
}

/// Each SARIF result located in a file, with its object: `(object, uri, startLine)`.
fn sarif_places(out: &Outcome) -> Vec<(String, String, Option<u64>)> {
    let typed: serde_sarif::sarif::Sarif = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(typed.runs.len(), 1);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    doc["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| {
            let location = &r["locations"][0];
            let physical = location.get("physicalLocation")?;
            Some((
                location["logicalLocations"][0]["fullyQualifiedName"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                physical["artifactLocation"]["uri"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                physical["region"]["startLine"].as_u64(),
            ))
        })
        .collect()
}

/// Every CI format points at the line of the object's document in a multi-document file:
/// SARIF's region, the GitHub annotation's `line=`, JUnit's `file`/`line` and failure text.
#[test]
fn ci_formats_point_at_each_object_s_line_in_a_multi_document_file() {
    let sandbox = Sandbox::new();
    let mut objects = broken_install();
    let mut source = flux::oci_repository(7, NS, "platform");
    source["spec"].as_object_mut().unwrap().remove("provider");
    objects.push(source);
    let (text, lines) = stream(&objects);
    let file = sandbox.write("flux system.yaml", &text);
    let file = file.display().to_string();
    let sarif = sandbox.run(&["doctor", "-f", &file, "-o", "sarif"]);
    let places = sarif_places(&sarif);
    let subjects: Vec<&str> = places.iter().map(|(s, _, _)| s.as_str()).collect();
    for expected in [
        "flux-system/ServiceAccount/kustomize-controller",
        "flux-system/ServiceAccount/source-controller",
        "flux-system/OCIRepository/platform",
    ] {
        assert!(subjects.contains(&expected), "{expected}: {places:?}");
    }
    for (subject, uri, line) in &places {
        assert_eq!(uri, &file.replace(' ', "%20"), "{subject}");
        assert_eq!(*line, Some(lines[subject]), "{subject}\n{text}");
    }

    let github = sandbox.run(&["doctor", "-f", &file, "-o", "github"]);
    for (subject, _, line) in &places {
        let annotation = github
            .stdout
            .lines()
            .find(|l| l.contains(&format!(" {subject}::")))
            .unwrap_or_else(|| panic!("{subject}: {}", github.stdout));
        assert!(
            annotation.contains(&format!("file={file},line={},title=", line.unwrap())),
            "{annotation}"
        );
    }

    let junit = sandbox.run(&["doctor", "-f", &file, "-o", "junit"]);
    let (subject, _, line) = &places[0];
    assert!(
        junit
            .stdout
            .contains(&format!("{subject} ({file}:{}): ", line.unwrap())),
        "{}",
        junit.stdout
    );
    assert!(
        junit.stdout.contains(&format!(
            "AZF025 label-on-wrong-object\" file=\"{file}\" line=\"{}\">",
            lines["flux-system/ServiceAccount/source-controller"]
        )),
        "{}",
        junit.stdout
    );
}

/// `-k`: each object is located at the file it was written in, through a nested kustomization
/// and a patch, relative to the working directory as the folder was given; the user's folders
/// are not written to and the objects carry no trace of how they were located.
#[test]
fn sarif_traces_a_kustomize_build_to_each_object_s_file_and_line() {
    let sandbox = Sandbox::new();
    let repo = sandbox.path("repo");
    let mut objects = broken_install();
    // The patch, not the base, breaks kustomize-controller's client ID.
    flux::find(&mut objects, "ServiceAccount", "kustomize-controller")["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("annotations");
    let (components, lines) = stream(&objects);
    sandbox.write("repo/base/flux/components.yaml", &components);
    sandbox.write(
        "repo/base/flux/kustomization.yaml",
        "resources:\n- components.yaml\n",
    );
    sandbox.write("repo/base/kustomization.yaml", "resources:\n- flux\n");
    let mut source = flux::oci_repository(7, NS, "platform");
    source["spec"].as_object_mut().unwrap().remove("provider");
    sandbox.write(
        "repo/clusters/prod/sources.yaml",
        &format!(
            "# the apps\n---\n{}",
            serde_saphyr::to_string(&source).unwrap()
        ),
    );
    sandbox.write(
        "repo/clusters/prod/patch.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: kustomize-controller\n  namespace: flux-system\n  annotations:\n    azure.workload.identity/client-id: not a uuid\n",
    );
    sandbox.write(
        "repo/clusters/prod/kustomization.yaml",
        "resources:\n- ../../base\n- sources.yaml\npatches:\n- path: patch.yaml\nconfigMapGenerator:\n- name: settings\n  literals: [a=b]\n",
    );
    let listing = |dir: &std::path::Path| {
        let mut files: Vec<_> = walk(dir);
        files.sort();
        files
    };
    let before = listing(&repo);
    let run = |args: &[&str]| {
        let output = sandbox
            .command()
            .current_dir(&repo)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    };
    let sarif = Outcome {
        code: 0,
        stdout: run(&["doctor", "-k", "clusters/prod", "-o", "sarif"]),
        stderr: String::new(),
    };
    let places = sarif_places(&sarif);
    let place = |subject: &str| {
        places.iter().find(|(s, _, _)| s == subject).map_or_else(
            || panic!("{subject}: {places:?}"),
            |(_, uri, line)| (uri.as_str(), *line),
        )
    };
    let kustomize_sa = "flux-system/ServiceAccount/kustomize-controller";
    assert_eq!(
        place(kustomize_sa),
        ("base/flux/components.yaml", Some(lines[kustomize_sa]))
    );
    let source_sa = "flux-system/ServiceAccount/source-controller";
    assert_eq!(
        place(source_sa),
        ("base/flux/components.yaml", Some(lines[source_sa]))
    );
    assert_eq!(
        place("flux-system/OCIRepository/platform"),
        ("clusters/prod/sources.yaml", Some(3))
    );
    assert_eq!(
        listing(&repo),
        before,
        "the user's folders are not written to"
    );
    let yaml = run(&["doctor", "-k", "clusters/prod", "-o", "json"]);
    assert!(!yaml.contains("config.kubernetes.io/origin"), "{yaml}");
    let absolute = repo.join("clusters/prod").display().to_string();
    let sarif = Outcome {
        code: 0,
        stdout: run(&["doctor", "-k", &absolute, "-o", "sarif"]),
        stderr: String::new(),
    };
    let expected = repo
        .join("clusters/prod/sources.yaml")
        .display()
        .to_string();
    assert!(
        sarif_places(&sarif)
            .iter()
            .any(|(_, uri, line)| *uri == expected && *line == Some(3)),
        "{}",
        sarif.stdout
    );
}

fn walk(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            files.push((path, bytes));
        }
    }
    files
}

/// `--chain`: each Azure-using object's chain to Azure with the state of every link; JSON
/// carries it with each path.
#[test]
fn chains_show_where_the_path_to_azure_breaks() {
    let sandbox = Sandbox::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/broken-aks");
    let text = sandbox.run(&["doctor", "-f", example, "--chain"]);
    let chains = text.stdout.split("\nChains\n").nth(1).unwrap_or_default();
    assert!(
        chains.contains("\n  OCIRepository flux-system/platform ✔ -> source-controller "),
        "{}",
        text.stdout
    );
    let json = sandbox.run(&["doctor", "-f", example, "-o", "json"]);
    let paths = json.json()["paths"].as_array().unwrap().clone();
    let chain_of = |name: &str| -> Vec<(String, String)> {
        paths.iter().find(|p| p["object"]["name"] == name).unwrap()["chain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["link"].as_str().unwrap().to_string(),
                    l["state"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    // source-controller's label sits on its ServiceAccount: the pod wiring link is broken.
    let platform = chain_of("platform");
    assert!(
        platform.contains(&("pod wiring".into(), "error".into())),
        "{platform:?}"
    );
    // Without Azure credentials nothing is known of the federated credential.
    assert!(
        platform.contains(&("federated credential".into(), "unknown".into())),
        "{platform:?}"
    );
    // kustomize-controller's client ID is not a UUID: its ServiceAccount link is broken.
    let apps = chain_of("apps");
    assert!(
        apps.contains(&(
            "ServiceAccount flux-system/kustomize-controller".into(),
            "error".into()
        )),
        "{apps:?}"
    );
}

/// A passed check reads as the health it confirms, a failed one as the problem: `-v` says
/// "Flux controllers found", not "flux-not-found: no finding"; a run of a few selected checks
/// names what passed on the summary line.
#[test]
fn passed_checks_read_as_statements_of_health() {
    let sandbox = Sandbox::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/broken-aks");
    let verbose = sandbox.run(&["doctor", "-f", example, "-v"]);
    assert!(
        verbose
            .stdout
            .contains("\n  ✔ AZF010 flux-not-found: Flux controllers found\n"),
        "{}",
        verbose.stdout
    );
    assert!(
        verbose.stdout.contains(
            "\n  ✗ AZF025 label-on-wrong-object: The azure.workload.identity/use label is on the wrong object\n"
        ),
        "{}",
        verbose.stdout
    );
    let selected = sandbox.run(&["doctor", "-f", example, "--select", "AZF010,AZF021,AZF022"]);
    assert!(
        selected
            .stdout
            .contains("\n✔ Flux controllers found; Controller identities have a client ID\n"),
        "{}",
        selected.stdout
    );
    let all = sandbox.run(&["doctor", "-f", example]);
    assert!(
        all.stdout
            .contains("\n✔ 36 checks passed, 10 not run (manifest mode); -v lists every check\n"),
        "{}",
        all.stdout
    );
}
