//! A Flux install made by flux-operator, live: doctor reads the FluxInstance
//! (`fluxinstances.fluxcd.controlplane.io/v1`) and the FluxReport (`fluxreports`) when their
//! CRDs are served, as controlplaneio-fluxcd/flux-operator api/v1/fluxinstance_types.go and
//! fluxreport_types.go declare them at v0.58.1, and sends every fix to the FluxInstance, which
//! the operator applies the controllers from.

#[path = "support/mod.rs"]
mod support;

use serde_json::{Value, json};
use support::fake_apiserver::FakeConfig;
use support::flux::{self, CLIENT_ID, NS, TENANT_ID};
use support::run::{Cluster, Outcome};

const AKS_ISSUER: &str = "https://westeurope.oic.prod-aks.azure.com/72f988bf-86f1-41af-91ab-2d7cd011db47/5c8a3f6b-1d2e-4f5a-9b7c-0d1e2f3a4b5c/";
const MINOR: u32 = 7;

fn instance_spec(object_level: bool, patches: &Value) -> Value {
    json!({
        "distribution": {"version": "2.7.x", "registry": "ghcr.io/fluxcd"},
        "cluster": {"type": "azure", "objectLevelWorkloadIdentity": object_level},
        "sync": {"kind": "OCIRepository", "url": "oci://contoso.azurecr.io/fleet", "ref": "latest",
                 "path": "clusters/prod", "provider": "azure"},
        "kustomize": {"patches": patches},
    })
}

/// An AKS cluster whose Flux flux-operator installed, with an ACR source source-controller
/// serves; `spec` is the FluxInstance's.
fn operator_cluster(spec: Value, extra: Vec<Value>) -> Cluster {
    let mut objects = flux::operator_install(MINOR, spec);
    objects.extend([
        flux::aks_webhook(),
        flux::aks_node(),
        flux::oci_repository(MINOR, NS, "platform"),
        flux::object(
            MINOR,
            "Bucket",
            NS,
            "manifests",
            json!({"provider": "azure", "bucketName": "m",
            "endpoint": "https://contoso.blob.core.windows.net"}),
        ),
    ]);
    objects.extend(extra);
    let pods: Vec<Value> = flux::CONTROLLERS
        .iter()
        .map(|c| flux::pod_of(&objects, c, false))
        .collect();
    objects.extend(pods);
    Cluster::with_objects(objects, AKS_ISSUER)
}

fn report() -> Value {
    flux::flux_report(
        "v2.7.3",
        &[
            (
                "source-controller",
                true,
                "Current Deployment is available. Replicas: 1",
            ),
            (
                "kustomize-controller",
                false,
                "InProgress Deployment generation is 2, observed 1",
            ),
        ],
        Some((
            false,
            "OCIRepository flux-system/flux-system: failed to get credential from azure",
        )),
    )
}

fn notes(out: &Outcome) -> Vec<String> {
    out.json()["inputNotes"]
        .as_array()
        .map(|n| {
            n.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn finding(out: &Outcome, name: &str) -> Value {
    out.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no {name} in {}", out.stdout))
}

#[test]
fn the_flux_instance_and_report_are_read_and_fixes_go_to_the_instance() {
    let cluster = operator_cluster(instance_spec(false, &json!([])), vec![report()]);
    let out = cluster.doctor(&[]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let notes = notes(&out);
    assert!(
        notes.iter().any(|n| n
            == "FluxInstance flux-system/flux: the controllers are installed by flux-operator from it; distribution 2.7.x, v2.7.3 applied, cluster type azure, object-level workload identity off, components source-controller, kustomize-controller, helm-controller, notification-controller, 0 patch(es), sync OCIRepository oci://contoso.azurecr.io/fleet, Ready"),
        "{notes:#?}"
    );
    assert!(
        notes.iter().any(|n| n == "FluxReport flux-system/flux: Flux v2.7.3 Installed, managed by flux-operator; not ready: kustomize-controller (InProgress Deployment generation is 2, observed 1); failing: 1 OCIRepository; sync kustomization/flux-system not ready: OCIRepository flux-system/flux-system: failed to get credential from azure"),
        "{notes:#?}"
    );
    // The FluxInstance was applied by hand: exported, edited by enable, applied back.
    let unwired = finding(&out, "azure-controller-not-wired");
    assert_eq!(
        unwired["subject"]["name"], "source-controller",
        "{unwired:#}"
    );
    assert!(
        unwired["fix"].as_str().unwrap().starts_with(
            "kubectl get fluxinstance flux -n flux-system -o yaml > flux.yaml && kubectl azflux enable --flux-instance flux.yaml --controllers source-controller --mode webhook"
        ) && unwired["fix"].as_str().unwrap().ends_with("&& kubectl apply -f flux.yaml"),
        "{unwired:#}"
    );
    let mut reads: Vec<String> = cluster
        .server
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/apis/fluxcd.controlplane.io/v1/"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    reads.sort();
    assert_eq!(
        reads,
        [
            "GET /apis/fluxcd.controlplane.io/v1/fluxinstances",
            "GET /apis/fluxcd.controlplane.io/v1/namespaces/flux-system/fluxreports/flux"
        ]
    );

    // The text report's last line sends the whole fix there too.
    let kubeconfig = cluster.kubeconfig.display().to_string();
    let text = cluster
        .sandbox
        .run(&["doctor", "--kubeconfig", &kubeconfig]);
    // Long commands break with ` \` continuations; a shell reads them back whole.
    let unwrapped = text
        .stdout
        .split_whitespace()
        .filter(|w| *w != "\\")
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        unwrapped.contains("Fix AZF020, AZF033: kubectl get fluxinstance flux -n flux-system -o yaml > flux.yaml && kubectl azflux enable --flux-instance flux.yaml --mode webhook"),
        "{}",
        text.stdout
    );

    // Servers without aggregated discovery list the group version: the same reads.
    let mut objects = flux::operator_install(MINOR, instance_spec(false, &json!([])));
    objects.push(report());
    let legacy = Cluster::start(FakeConfig {
        objects,
        issuer: Some(AKS_ISSUER.into()),
        disable_aggregated_discovery: true,
        ..FakeConfig::default()
    });
    let legacy_notes = self::notes(&legacy.doctor(&[]));
    assert!(
        legacy_notes
            .iter()
            .any(|n| n.starts_with("FluxInstance flux-system/flux:"))
            && legacy_notes
                .iter()
                .any(|n| n.starts_with("FluxReport flux-system/flux:")),
        "{legacy_notes:?}"
    );

    // A cluster without flux-operator's CRDs is not asked for its objects.
    let plain = Cluster::with_objects(flux::healthy_aks(MINOR), AKS_ISSUER);
    let out = plain.doctor(&[]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        !plain
            .server
            .requests()
            .iter()
            .any(|r| r.path.starts_with("/apis/fluxcd.controlplane.io/v1/")),
        "no flux-operator read without its CRDs"
    );
    assert!(notes_of_plain(&out), "{}", out.stdout);
}

fn notes_of_plain(out: &Outcome) -> bool {
    !notes(out).iter().any(|n| n.starts_with("FluxInstance"))
}

/// A tenant OCIRepository with its own ServiceAccount needs the object-level gate: the fix is
/// the FluxInstance's `.spec.cluster.objectLevelWorkloadIdentity` (enable --object-level sets
/// it), and where the FluxInstance is applied from Git the fix says which Kustomization.
#[test]
fn object_level_identity_is_set_in_the_flux_instance() {
    let tenant = || {
        let mut oci = flux::oci_repository(MINOR, "team-a", "app");
        oci["spec"]["serviceAccountName"] = json!("team-a-sa");
        let mut sa = flux::service_account("team-a", "team-a-sa");
        sa["metadata"]["annotations"] = json!({"azure.workload.identity/client-id": CLIENT_ID,
            "azure.workload.identity/tenant-id": TENANT_ID});
        vec![oci, sa]
    };
    let mut objects = flux::operator_install(MINOR, instance_spec(false, &json!([])));
    let instance = flux::find(&mut objects, "FluxInstance", "flux");
    instance["metadata"]["labels"] = json!({"kustomize.toolkit.fluxcd.io/name": "flux-system",
        "kustomize.toolkit.fluxcd.io/namespace": "flux-system"});
    flux::wire_webhook(&mut objects, "source-controller");
    objects.extend(tenant());
    objects.extend([flux::aks_webhook(), flux::aks_node()]);
    let pods: Vec<Value> = flux::CONTROLLERS
        .iter()
        .map(|c| flux::pod_of(&objects, c, *c == "source-controller"))
        .collect();
    objects.extend(pods);
    let cluster = Cluster::with_objects(objects.clone(), AKS_ISSUER);
    let out = cluster.doctor(&[]);
    let gate = finding(&out, "object-level-gate-missing");
    assert_eq!(
        gate["fix"],
        "# FILE: the manifest of FluxInstance flux-system/flux in Git, which the Flux Kustomization flux-system/flux-system applies\nkubectl azflux enable --flux-instance FILE --object-level --controllers source-controller",
        "{gate:#}"
    );

    // With object-level identity on in the FluxInstance (and so the gate on the controllers),
    // the tenant's path is whole.
    let instance = flux::find(&mut objects, "FluxInstance", "flux");
    instance["spec"]["cluster"]["objectLevelWorkloadIdentity"] = json!(true);
    for controller in flux::CONTROLLERS {
        flux::add_arg(
            &mut objects,
            controller,
            "--feature-gates=ObjectLevelWorkloadIdentity=true",
        );
    }
    let cluster = Cluster::with_objects(objects, AKS_ISSUER);
    let out = cluster.doctor(&[]);
    assert_eq!(out.code, 0, "{:?}", out.findings());
    assert!(
        notes(&out)
            .iter()
            .any(|n| n.contains("object-level workload identity on")),
        "{:?}",
        notes(&out)
    );
}

/// The guide's `<AZURE_CLIENT_ID>` in the live FluxInstance is an error there, even while the
/// controllers do not show it yet (the operator has not applied it).
#[test]
fn a_placeholder_in_the_live_flux_instance_is_an_error_on_it() {
    let patches = json!([{
        "target": {"kind": "ServiceAccount", "name": "source-controller"},
        "patch": "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: source-controller\n  annotations:\n    azure.workload.identity/client-id: <AZURE_CLIENT_ID>\n",
    }]);
    let cluster = operator_cluster(instance_spec(false, &patches), vec![]);
    let out = cluster.doctor(&[]);
    let malformed = finding(&out, "identity-annotation-malformed");
    assert_eq!(
        malformed["subject"],
        json!({"kind": "FluxInstance", "namespace": NS, "name": "flux"})
    );
    assert_eq!(
        malformed["message"],
        "the FluxInstance's .spec.kustomize.patches[0] sets annotation `azure.workload.identity/client-id` of ServiceAccount source-controller to \"<AZURE_CLIENT_ID>\", a placeholder left in"
    );
    assert_eq!(malformed["severity"], "error");
}

/// `enable --apply` never patches what the operator installs: it stops before any request
/// and says to put the change in the FluxInstance; `--flux-instance FILE` plans from the
/// cluster and writes the patches there.
#[test]
fn enable_routes_operator_managed_controllers_to_the_flux_instance() {
    let cluster = operator_cluster(instance_spec(false, &json!([])), vec![report()]);
    let kubeconfig = cluster.kubeconfig.display().to_string();
    let base = [
        "enable",
        "--kubeconfig",
        kubeconfig.as_str(),
        "--client-id",
        CLIENT_ID,
        "--tenant-id",
        TENANT_ID,
    ];
    let mut apply = base.to_vec();
    apply.push("--apply");
    let refused = cluster.sandbox.run(&apply);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused
            .stderr
            .contains("is installed by flux-operator from FluxInstance flux-system/flux")
            && refused
                .stderr
                .contains("kubectl get fluxinstance flux -n flux-system -o yaml > flux.yaml"),
        "{}",
        refused.stderr
    );
    assert!(
        !cluster
            .server
            .requests()
            .iter()
            .any(|r| r.method == "PATCH"),
        "nothing sent"
    );

    let file = cluster.sandbox.write(
        "flux.yaml",
        "apiVersion: fluxcd.controlplane.io/v1\nkind: FluxInstance\nmetadata:\n  name: flux\n  namespace: flux-system\nspec:\n  distribution:\n    version: \"2.7.x\"\n    registry: ghcr.io/fluxcd\n  cluster:\n    type: azure\n",
    );
    let file_arg = file.display().to_string();
    let mut to_file = base.to_vec();
    to_file.extend(["--flux-instance", file_arg.as_str()]);
    let out = cluster.sandbox.run(&to_file);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let edited = std::fs::read_to_string(&file).unwrap();
    assert!(
        edited.contains("name: source-controller")
            && edited.contains("azure.workload.identity/use: \"true\""),
        "{edited}"
    );
    assert!(
        cluster.server.writes().is_empty(),
        "the cluster is not written"
    );
}

/// `--flux-namespace` that holds no Flux controller: AZF010 names the namespace they run in,
/// found with a label-selected and name-selected list of Deployments across namespaces.
#[test]
fn a_wrong_flux_namespace_names_where_the_controllers_are() {
    let cluster = Cluster::with_objects(flux::healthy_aks(MINOR), AKS_ISSUER);
    let out = cluster.doctor(&["--flux-namespace", "gitops"]);
    let not_found = finding(&out, "flux-not-found");
    assert_eq!(
        not_found["message"],
        "no Flux controller Deployment in namespace gitops, but there are Flux controllers in namespace flux-system"
    );
    assert_eq!(
        not_found["fix"],
        "kubectl azflux doctor --flux-namespace flux-system"
    );
    let cross: Vec<String> = cluster
        .server
        .requests()
        .iter()
        .filter(|r| r.path == "/apis/apps/v1/deployments")
        .map(|r| r.query.clone().unwrap_or_default())
        .collect();
    assert_eq!(cross.len(), 7, "{cross:?}");
    assert!(
        cross
            .iter()
            .all(|q| q.contains("labelSelector=") || q.contains("fieldSelector=metadata.name")),
        "{cross:?}"
    );

    // With the right namespace nothing is looked for elsewhere.
    let out = cluster.doctor(&[]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let after = cluster
        .server
        .requests()
        .iter()
        .filter(|r| r.path == "/apis/apps/v1/deployments")
        .count();
    assert_eq!(after, 7);
}
