//! `enable --apply` against the fake API server's server-side apply: dry run first, no write
//! without --apply, idempotent re-runs, conflicts named by their manager, restarts only where
//! pods need re-mutation, and an interrupted run that a second run completes.

#[path = "support/mod.rs"]
mod support;

use serde_json::{Value, json};
use support::fake_apiserver::{FakeConfig, Fault, FaultBehaviour, RequestRecord};
use support::flux::{self, CLIENT_ID, NS, TENANT_ID};
use support::run::Cluster;

const AKS_ISSUER: &str = "https://westeurope.oic.prod-aks.azure.com/72f988bf-86f1-41af-91ab-2d7cd011db47/5c8a3f6b-1d2e-4f5a-9b7c-0d1e2f3a4b5c/";

/// An AKS cluster with the webhook, an ACR source, and source-controller not wired.
fn unwired() -> Vec<Value> {
    let mut objects = flux::install(7);
    objects.extend([
        flux::aks_webhook(),
        flux::aks_node(),
        flux::oci_repository(7, NS, "platform"),
    ]);
    objects.push(flux::object(7, "Bucket", NS, "manifests", json!({"provider": "azure", "bucketName": "m", "endpoint": "https://contoso.blob.core.windows.net"})));
    let pods: Vec<Value> = flux::CONTROLLERS
        .iter()
        .map(|c| flux::pod_of(&objects, c, false))
        .collect();
    objects.extend(pods);
    objects
}

fn cluster(objects: Vec<Value>, faults: Vec<Fault>) -> Cluster {
    Cluster::start(FakeConfig {
        objects,
        issuer: Some(AKS_ISSUER.into()),
        faults,
        ..FakeConfig::default()
    })
}

fn enable(cluster: &Cluster, args: &[&str]) -> support::run::Outcome {
    let kubeconfig = cluster.kubeconfig.display().to_string();
    let mut all = vec![
        "enable",
        "--kubeconfig",
        kubeconfig.as_str(),
        "--client-id",
        CLIENT_ID,
        "--tenant-id",
        TENANT_ID,
    ];
    all.extend_from_slice(args);
    cluster.sandbox.run(&all)
}

fn patches(requests: &[RequestRecord]) -> Vec<(String, bool)> {
    requests
        .iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| {
            (
                r.path.clone(),
                r.query.as_deref().is_some_and(|q| q.contains("dryRun=All")),
            )
        })
        .collect()
}

fn fixable_findings(cluster: &Cluster) -> Vec<String> {
    cluster
        .doctor(&[])
        .findings()
        .into_iter()
        .filter(|f| kubectl_azflux::plan::FIXABLE.contains(&f.0.as_str()))
        .map(|f| format!("{} {}", f.0, f.1))
        .collect()
}

#[test]
fn preview_writes_nothing_and_apply_fixes_everything_once() {
    let cluster = cluster(unwired(), vec![]);
    assert!(!fixable_findings(&cluster).is_empty());

    let preview = enable(&cluster, &[]);
    assert_eq!(preview.code, 0, "{}", preview.stderr);
    assert!(
        preview
            .stdout
            .contains("patch flux-system/ServiceAccount/source-controller"),
        "{}",
        preview.stdout
    );
    assert!(
        preview
            .stdout
            .contains("+    azure.workload.identity/client-id: "),
        "diff shows the annotation: {}",
        preview.stdout
    );
    assert!(
        patches(&cluster.server.requests()).is_empty(),
        "a preview makes no PATCH"
    );

    let applied = enable(&cluster, &["--apply", "--timeout", "30s"]);
    assert_eq!(applied.code, 0, "{}\n{}", applied.stdout, applied.stderr);
    let sent = patches(&cluster.server.requests());
    let dry: Vec<&String> = sent.iter().filter(|(_, d)| *d).map(|(p, _)| p).collect();
    let real: Vec<&String> = sent.iter().filter(|(_, d)| !*d).map(|(p, _)| p).collect();
    assert_eq!(
        dry.len(),
        2,
        "every patch is tried with dry run first: {sent:?}"
    );
    assert_eq!(real, dry, "then applied in the same order");
    let first_real = sent.iter().position(|(_, d)| !*d).unwrap();
    assert!(
        sent[..first_real].iter().all(|(_, d)| *d),
        "all dry runs come before the first write"
    );

    let sa = cluster
        .server
        .object("v1", "ServiceAccount", Some(NS), "source-controller")
        .unwrap();
    assert_eq!(
        sa["metadata"]["annotations"]["azure.workload.identity/client-id"],
        CLIENT_ID
    );
    assert_eq!(
        sa["metadata"]["labels"]["app.kubernetes.io/part-of"], "flux",
        "existing labels stay"
    );
    let managers: Vec<&str> = sa["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"kubectl-azflux"), "{managers:?}");

    assert_eq!(
        fixable_findings(&cluster),
        Vec::<String>::new(),
        "doctor is clean after --apply"
    );

    let before = cluster.server.requests().len();
    let again = enable(&cluster, &["--apply"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stdout.contains("Nothing to change"),
        "{}",
        again.stdout
    );
    assert!(
        patches(&cluster.server.requests()[before..]).is_empty(),
        "a second --apply changes nothing"
    );
}

#[test]
fn restarts_only_where_pods_need_re_mutation() {
    let mut objects = flux::healthy_aks(7);
    objects.retain(|o| {
        !(o["kind"] == "Pod"
            && o["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("source-controller"))
    });
    let stale = flux::pod_of(&objects, "source-controller", false);
    objects.push(stale);
    let cluster = cluster(objects, vec![]);
    let out = enable(&cluster, &["--apply", "--timeout", "30s"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let sent = patches(&cluster.server.requests());
    assert_eq!(
        sent,
        vec![(
            "/apis/apps/v1/namespaces/flux-system/deployments/source-controller".to_string(),
            false
        )],
        "one restart, nothing else"
    );
    let deploy = cluster
        .server
        .object("apps/v1", "Deployment", Some(NS), "source-controller")
        .unwrap();
    assert!(
        deploy["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string()
    );
    assert_eq!(fixable_findings(&cluster), Vec::<String>::new());
}

#[test]
fn conflicts_name_the_other_manager_and_force_takes_over() {
    let mut objects = flux::healthy_aks(7);
    let mut oci = flux::oci_repository(7, "team-a", "app");
    oci["spec"]["serviceAccountName"] = json!("team-a-sa");
    objects.push(oci);
    let cluster = cluster(objects, vec![]);
    let out = enable(&cluster, &["--object-level", "--apply"]);
    assert_eq!(
        out.code, 2,
        "a conflict stops the run: {}\n{}",
        out.stdout, out.stderr
    );
    assert!(
        out.stderr.contains("kubectl-client-side-apply"),
        "the owner of args is named: {}",
        out.stderr
    );
    assert!(out.stderr.contains("nothing was changed"), "{}", out.stderr);
    assert!(
        patches(&cluster.server.requests())
            .iter()
            .all(|(_, dry)| *dry),
        "no write after a conflict"
    );

    let forced = enable(
        &cluster,
        &[
            "--object-level",
            "--apply",
            "--force-conflicts",
            "--timeout",
            "30s",
        ],
    );
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    let deploy = cluster
        .server
        .object("apps/v1", "Deployment", Some(NS), "source-controller")
        .unwrap();
    let args: Vec<&str> = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        args.contains(&"--feature-gates=ObjectLevelWorkloadIdentity=true"),
        "{args:?}"
    );
    assert!(
        args.contains(&"--watch-all-namespaces=true"),
        "other args kept: {args:?}"
    );
}

#[test]
fn an_interrupted_apply_is_reported_and_completed_by_a_second_run() {
    let mut objects = unwired();
    objects.push(flux::object(
        7,
        "ImageRepository",
        NS,
        "web",
        json!({"image": "contoso.azurecr.io/web", "provider": "azure"}),
    ));
    // ServiceAccounts go first, then Deployments, each first as a dry run; the third real write
    // (after its dry run got through) fails once.
    let third = Fault::new(
        "/deployments/image-reflector-controller",
        500,
        FaultBehaviour::Status,
    )
    .method("PATCH")
    .skip(1)
    .times(1);
    let cluster = cluster(objects, vec![third]);
    let out = enable(&cluster, &["--apply", "--timeout", "30s"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("Applied: flux-system/ServiceAccount/image-reflector-controller, flux-system/ServiceAccount/source-controller. Not applied: flux-system/Deployment/image-reflector-controller, flux-system/Deployment/source-controller."),
        "{}",
        out.stderr
    );
    let rerun = enable(&cluster, &["--apply", "--timeout", "30s"]);
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    let mut written: Vec<String> = cluster
        .server
        .requests()
        .iter()
        .filter(|r| {
            r.method == "PATCH"
                && r.status < 300
                && !r.query.as_deref().unwrap_or_default().contains("dryRun")
        })
        .map(|r| r.path.clone())
        .collect();
    written.sort();
    let mut unique = written.clone();
    unique.dedup();
    assert_eq!(written, unique, "nothing applied twice");
    assert_eq!(fixable_findings(&cluster), Vec::<String>::new());
}

#[test]
fn flux_managed_objects_get_a_drift_warning_and_the_aks_extension_a_refusal() {
    let mut objects = unwired();
    for o in objects.iter_mut().filter(|o| {
        o["metadata"]["namespace"] == NS
            && (o["kind"] == "Deployment" || o["kind"] == "ServiceAccount")
    }) {
        o["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"] = json!("flux-system");
        o["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/namespace"] = json!("flux-system");
    }
    let managed = cluster(objects, vec![]);
    let preview = enable(&managed, &[]);
    assert!(
        preview
            .stdout
            .contains("reconciled by the Flux Kustomization flux-system/flux-system"),
        "{}",
        preview.stdout
    );
    let out = enable(&managed, &["--apply", "--timeout", "30s"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("warning: flux-system/Deployment/source-controller is reconciled by the Flux Kustomization flux-system/flux-system"), "{}", out.stderr);
    assert!(out.stderr.contains("enable --gitops DIR"), "{}", out.stderr);

    let mut objects = unwired();
    for o in objects
        .iter_mut()
        .filter(|o| o["kind"] == "Deployment" || o["kind"] == "ServiceAccount")
    {
        o["metadata"]["labels"]["app.kubernetes.io/name"] = json!("microsoft.flux");
    }
    let extension = cluster(objects, vec![]);
    let refused = enable(&extension, &["--apply"]);
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("AKS Flux extension"),
        "{}",
        refused.stderr
    );
    assert!(patches(&extension.server.requests()).is_empty());
}
