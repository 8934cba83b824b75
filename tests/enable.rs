//! `enable`: the round trip (apply a plan to a snapshot, run the checks again: nothing `enable`
//! can fix remains) for every scenario, and the GitOps edit of real bootstrap folders, checked
//! with `kubectl kustomize` and `doctor -k`.

#[path = "support/mod.rs"]
mod support;

use kubectl_azflux::checks::diagnose;
use kubectl_azflux::gather::manifests::{self, Document};
use kubectl_azflux::model::azure_use::WiringMode;
use kubectl_azflux::model::{Fact, extract};
use kubectl_azflux::plan::{self, EnableRequest, FIXABLE, TenantRequest, simulate};
use kubectl_azflux::resolve::Resolved;
use serde_json::{Value, json};
use support::flux::{self, CLIENT_ID, NS, TENANT_ID};
use support::run::{Sandbox, write_yaml};

/// A snapshot as a live read gives it: pods and webhooks known.
fn live_snapshot(objects: &[Value]) -> Resolved {
    let docs: Vec<Document> = objects
        .iter()
        .map(|v| Document::whole("fixture".into(), None, v.clone()))
        .collect();
    let mut snapshot = manifests::snapshot(docs, vec![], NS);
    snapshot.pods = Fact::Known(
        objects
            .iter()
            .filter(|o| o["kind"] == "Pod")
            .map(|p| extract::pod(p, NS))
            .collect(),
    );
    snapshot.webhooks = Fact::Known(
        objects
            .iter()
            .filter_map(extract::workload_identity_webhook)
            .collect(),
    );
    Resolved::new(snapshot)
}

fn fixable(snapshot: &Resolved) -> Vec<String> {
    diagnose(snapshot)
        .findings
        .iter()
        .filter(|f| FIXABLE.contains(&f.check.name))
        .map(|f| format!("{} {}", f.check.name, f.subject))
        .collect()
}

fn ids() -> EnableRequest {
    EnableRequest {
        client_id: Some(CLIENT_ID.into()),
        tenant_id: Some(TENANT_ID.into()),
        ..EnableRequest::default()
    }
}

fn round_trip(name: &str, objects: &[Value], request: &EnableRequest) {
    let snapshot = live_snapshot(objects);
    assert!(
        !fixable(&snapshot).is_empty(),
        "{name}: the scenario must start broken"
    );
    let plan = plan::plan_enable(&snapshot, request).unwrap_or_else(|e| panic!("{name}: {e}"));
    let after = Resolved::new(simulate::apply(&snapshot, &plan));
    assert_eq!(
        fixable(&after),
        Vec::<String>::new(),
        "{name}: plan {plan:#?}"
    );
    let again = plan::plan_enable(&after, request).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        again.is_empty(),
        "{name}: a second plan must be empty: {again:#?}"
    );
}

fn remove_template_label(objects: &mut [Value], controller: &str) {
    let deploy = flux::find(objects, "Deployment", controller);
    deploy["spec"]["template"]["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("azure.workload.identity/use");
}

const MINOR: u32 = 7;

#[test]
fn round_trip_unwired_controllers_in_both_modes() {
    let minor = MINOR;
    let unwired = {
        let mut o = flux::install(minor);
        o.extend([
            flux::aks_webhook(),
            flux::aks_node(),
            flux::oci_repository(minor, NS, "platform"),
        ]);
        o.push(flux::object(minor, "Bucket", NS, "b", json!({"provider": "azure", "bucketName": "c", "endpoint": "https://a.blob.core.windows.net"})));
        let pods: Vec<Value> = flux::CONTROLLERS
            .iter()
            .map(|c| flux::pod_of(&o, c, false))
            .collect();
        o.extend(pods);
        o
    };
    round_trip("unwired, webhook", &unwired, &ids());
    let no_webhook: Vec<Value> = unwired
        .iter()
        .filter(|o| o["kind"] != "MutatingWebhookConfiguration")
        .cloned()
        .collect();
    round_trip("unwired, manual", &no_webhook, &ids());
}

#[test]
fn round_trip_partial_webhook_wiring() {
    let minor = MINOR;
    let mut missing_label = flux::healthy_aks(minor);
    remove_template_label(&mut missing_label, "source-controller");
    round_trip("pod label missing", &missing_label, &ids());

    let mut wrong_object = flux::healthy_aks(minor);
    remove_template_label(&mut wrong_object, "source-controller");
    flux::find(&mut wrong_object, "ServiceAccount", "source-controller")["metadata"]["labels"]["azure.workload.identity/use"] =
        json!("true");
    round_trip("label on the ServiceAccount", &wrong_object, &ids());

    let mut no_client = flux::healthy_aks(minor);
    flux::find(&mut no_client, "ServiceAccount", "source-controller")["metadata"]["annotations"] =
        json!({"azure.workload.identity/client-id": "managed identity client id"});
    round_trip("malformed client id, no tenant", &no_client, &ids());

    let mut stale = flux::healthy_aks(minor);
    stale.retain(|o| {
        !(o["kind"] == "Pod"
            && o["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("source-controller"))
    });
    let pod = flux::pod_of(&stale, "source-controller", false);
    stale.push(pod);
    let snapshot = live_snapshot(&stale);
    let stale_plan = plan::plan_enable(&snapshot, &ids()).unwrap();
    assert!(
        stale_plan.patches.is_empty(),
        "only a restart is needed: {stale_plan:#?}"
    );
    assert_eq!(stale_plan.restarts.len(), 1);
    round_trip("pod not mutated", &stale, &ids());
}

#[test]
fn round_trip_partial_manual_wiring() {
    let mut manual = flux::healthy_manual(MINOR);
    {
        let deploy = flux::find(&mut manual, "Deployment", "source-controller");
        let spec = &mut deploy["spec"]["template"]["spec"];
        spec["volumes"]
            .as_array_mut()
            .unwrap()
            .retain(|v| v["name"] != "azure-token");
        spec["containers"][0]["env"]
            .as_array_mut()
            .unwrap()
            .retain(|e| {
                e["name"] != "AZURE_AUTHORITY_HOST" && e["name"] != "AZURE_FEDERATED_TOKEN_FILE"
            });
    }
    round_trip("manual wiring incomplete", &manual, &ids());
}

#[test]
fn round_trip_tenants_and_lockdown() {
    let minor = MINOR;
    let mut gate = flux::healthy_aks(minor);
    let mut oci = flux::oci_repository(minor, "team-a", "app");
    oci["spec"]["serviceAccountName"] = json!("team-a-sa");
    gate.push(oci);
    let tenant_request = EnableRequest {
        tenant: Some(TenantRequest {
            namespace: "team-a".into(),
            service_account: "team-a-sa".into(),
            set_objects: false,
        }),
        ..ids()
    };
    round_trip("tenant service account and gate", &gate, &tenant_request);

    let mut set_objects = flux::healthy_aks(minor);
    set_objects.push(flux::object(
        minor,
        "OCIRepository",
        "team-b",
        "app",
        json!({"url": "oci://contoso.azurecr.io/app"}),
    ));
    let snapshot = live_snapshot(&set_objects);
    let plan_b = plan::plan_enable(
        &snapshot,
        &EnableRequest {
            tenant: Some(TenantRequest {
                namespace: "team-b".into(),
                service_account: "flux".into(),
                set_objects: true,
            }),
            ..ids()
        },
    )
    .unwrap();
    let after = simulate::apply(&snapshot, &plan_b);
    let object = after
        .flux
        .objects
        .iter()
        .find(|o| o.namespace == "team-b")
        .unwrap();
    assert_eq!(object.provider.as_deref(), Some("azure"));
    assert_eq!(object.service_account_name.as_deref(), Some("flux"));
    assert_eq!(fixable(&Resolved::new(after.clone())), Vec::<String>::new());

    let mut lockdown = flux::healthy_aks(minor);
    lockdown.retain(|o| o["kind"] != "OCIRepository");
    flux::add_arg(
        &mut lockdown,
        "source-controller",
        "--feature-gates=ObjectLevelWorkloadIdentity=true",
    );
    flux::add_arg(
        &mut lockdown,
        "source-controller",
        "--default-service-account=flux-tenant",
    );
    lockdown.push(flux::oci_repository(minor, "team-c", "app"));
    round_trip(
        "lockdown default",
        &lockdown,
        &EnableRequest {
            tenant: Some(TenantRequest {
                namespace: "team-c".into(),
                service_account: "flux-tenant".into(),
                set_objects: false,
            }),
            ..ids()
        },
    );
}

#[test]
fn feature_gates_are_extended_not_duplicated() {
    let mut objects = flux::healthy_aks(7);
    flux::add_arg(
        &mut objects,
        "source-controller",
        "--feature-gates=CacheSecretsAndConfigMaps=true",
    );
    let mut oci = flux::oci_repository(7, NS, "own");
    oci["spec"]["serviceAccountName"] = json!("own-sa");
    objects.push(oci);
    let snapshot = live_snapshot(&objects);
    let plan = plan::plan_enable(
        &snapshot,
        &EnableRequest {
            object_level: true,
            ..ids()
        },
    )
    .unwrap();
    let args = plan
        .patches
        .iter()
        .find_map(|p| p.args.clone())
        .expect("an args edit");
    let gates: Vec<&String> = args
        .after
        .iter()
        .filter(|a| a.starts_with("--feature-gates"))
        .collect();
    assert_eq!(
        gates,
        vec!["--feature-gates=CacheSecretsAndConfigMaps=true,ObjectLevelWorkloadIdentity=true"]
    );
    assert_eq!(args.after.len(), args.before.len());
}

#[test]
fn plan_errors_say_what_is_missing() {
    let mut objects = flux::install(7);
    objects.push(flux::oci_repository(7, NS, "platform"));
    let snapshot = live_snapshot(&objects);
    let err = plan::plan_enable(
        &snapshot,
        &EnableRequest {
            mode: Some(WiringMode::Webhook),
            ..EnableRequest::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "source-controller needs a client ID and none is set: pass --client-id"
    );
    let err = plan::plan_enable(
        &snapshot,
        &EnableRequest {
            client_id: Some("not-a-uuid".into()),
            ..EnableRequest::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("not a UUID"));
    let mut manifest = manifests::snapshot(Vec::new(), vec![], NS);
    manifest.controllers = snapshot.controllers.clone();
    manifest.service_accounts = snapshot.service_accounts.clone();
    manifest.flux = snapshot.flux.clone();
    let err = plan::plan_enable(&Resolved::new(manifest), &ids()).unwrap_err();
    assert!(err.to_string().contains("pass --mode webhook"), "{err}");
}

/// A flux bootstrap folder: gotk-components.yaml, gotk-sync.yaml, an OCI source, and the
/// given kustomization.yaml.
fn bootstrap(sandbox: &Sandbox, kustomization: &str, extra: Vec<Value>) -> std::path::PathBuf {
    let dir = sandbox.path("repo/clusters/prod/flux-system");
    let mut components = flux::install(7);
    components.retain(|o| o["kind"] != "CustomResourceDefinition");
    write_yaml(&dir.join("gotk-components.yaml"), &components);
    let mut sync = vec![
        flux::object(
            7,
            "GitRepository",
            NS,
            "flux-system",
            json!({"interval": "1m", "url": "ssh://git@ssh.dev.azure.com/v3/contoso/platform/fleet", "ref": {"branch": "main"}, "secretRef": {"name": "flux-system"}}),
        ),
        flux::oci_repository(7, NS, "platform"),
    ];
    sync.extend(extra);
    write_yaml(&dir.join("gotk-sync.yaml"), &sync);
    std::fs::write(dir.join("kustomization.yaml"), kustomization).unwrap();
    dir
}

fn render(dir: &std::path::Path) -> Vec<Value> {
    let output = std::process::Command::new("kubectl")
        .args(["kustomize", "--load-restrictor=LoadRestrictionsNone"])
        .arg(dir)
        .output()
        .expect("kubectl on PATH");
    assert!(
        output.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    manifests::parse_stream("rendered", &String::from_utf8_lossy(&output.stdout), None)
        .unwrap()
        .into_iter()
        .filter_map(Document::into_value)
        .collect()
}

fn rendered<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap()
}

const KUSTOMIZATIONS: [(&str, &str); 4] = [
    (
        "plain",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- gotk-components.yaml\n- gotk-sync.yaml\n",
    ),
    (
        "comments and odd indentation",
        "# managed by flux bootstrap\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:    # the two files\n    - gotk-components.yaml\n    - gotk-sync.yaml   # sync\n\n# patches below\n",
    ),
    (
        "existing patches",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- gotk-components.yaml\n- gotk-sync.yaml\npatches:\n  # resource limits\n  - target:\n      kind: Deployment\n      name: helm-controller\n    patch: |\n      - op: add\n        path: /spec/template/spec/priorityClassName\n        value: system-cluster-critical\n",
    ),
    (
        "patchesStrategicMerge",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- gotk-components.yaml\n- gotk-sync.yaml\npatchesStrategicMerge:\n- |-\n  apiVersion: apps/v1\n  kind: Deployment\n  metadata:\n    name: notification-controller\n    namespace: flux-system\n  spec:\n    replicas: 1\n",
    ),
];

#[test]
fn gitops_edit_keeps_the_file_and_builds_the_wiring() {
    for (case, kustomization) in KUSTOMIZATIONS {
        let sandbox = Sandbox::new();
        let dir = bootstrap(&sandbox, kustomization, vec![]);
        let dir_arg = dir.display().to_string();
        let out = sandbox.run(&[
            "enable",
            "--gitops",
            &dir_arg,
            "--mode",
            "webhook",
            "--client-id",
            CLIENT_ID,
            "--tenant-id",
            TENANT_ID,
        ]);
        assert_eq!(out.code, 0, "{case}: {}{}", out.stdout, out.stderr);
        let edited = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
        let mut edited_lines = edited.lines();
        for line in kustomization.lines() {
            assert!(
                edited_lines.any(|l| l == line),
                "{case}: original line {line:?} kept in order:\n{edited}"
            );
        }
        let objects = render(&dir);
        let sa = rendered(&objects, "ServiceAccount", "source-controller");
        assert_eq!(
            sa["metadata"]["annotations"]["azure.workload.identity/client-id"], CLIENT_ID,
            "{case}"
        );
        assert_eq!(
            sa["metadata"]["annotations"]["azure.workload.identity/tenant-id"], TENANT_ID,
            "{case}"
        );
        let deploy = rendered(&objects, "Deployment", "source-controller");
        assert_eq!(
            deploy["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"], "true",
            "{case}"
        );
        assert_eq!(
            deploy["spec"]["template"]["metadata"]["labels"]["app"], "source-controller",
            "{case}: labels merged"
        );
        let untouched = rendered(&objects, "Deployment", "kustomize-controller");
        assert!(
            untouched["spec"]["template"]["metadata"]["labels"]
                .get("azure.workload.identity/use")
                .is_none(),
            "{case}"
        );

        let doctor = sandbox.run(&["doctor", "-o", "json", "-k", &dir_arg]);
        let left: Vec<String> = doctor
            .finding_names()
            .into_iter()
            .filter(|n| FIXABLE.contains(&n.as_str()))
            .collect();
        assert!(left.is_empty(), "{case}: {:?}", doctor.findings());

        let again = sandbox.run(&[
            "enable",
            "--gitops",
            &dir_arg,
            "--mode",
            "webhook",
            "--client-id",
            CLIENT_ID,
            "--tenant-id",
            TENANT_ID,
        ]);
        assert_eq!(again.code, 0, "{case}: {}", again.stderr);
        assert!(
            again.stdout.contains("Nothing") || again.stdout.contains("nothing to add"),
            "{case}: {}",
            again.stdout
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap(),
            edited,
            "{case}: second run changes nothing"
        );
    }
}

#[test]
fn gitops_manual_mode_object_level_and_ado_provider() {
    let sandbox = Sandbox::new();
    let mut own = flux::oci_repository(7, NS, "own");
    own["spec"]["serviceAccountName"] = json!("own-sa");
    let dir = bootstrap(&sandbox, KUSTOMIZATIONS[0].1, vec![own]);
    let dir_arg = dir.display().to_string();
    let out = sandbox.run(&[
        "enable",
        "--gitops",
        &dir_arg,
        "--mode",
        "manual",
        "--client-id",
        CLIENT_ID,
        "--tenant-id",
        TENANT_ID,
        "--object-level",
        "--git-provider",
        "azure",
        "--cloud",
        "AzureUSGovernment",
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let objects = render(&dir);
    let deploy = rendered(&objects, "Deployment", "source-controller");
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_string(),
                e["value"].as_str().unwrap_or("").to_string(),
            ))
        })
        .collect();
    assert!(
        env.contains(&(
            "AZURE_AUTHORITY_HOST".into(),
            "https://login.microsoftonline.us/".into()
        )),
        "{env:?}"
    );
    assert!(env.contains(&(
        "AZURE_FEDERATED_TOKEN_FILE".into(),
        "/var/run/service-account/azure-token".into()
    )));
    assert!(
        env.iter().any(|(n, _)| n == "RUNTIME_NAMESPACE"),
        "existing env kept: {env:?}"
    );
    let args: Vec<&str> = container["args"]
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
        "existing args kept: {args:?}"
    );
    let volumes = deploy["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    assert!(volumes.iter().any(|v| v["name"] == "azure-token"));
    assert!(
        volumes.iter().any(|v| v["name"] == "temp"),
        "existing volumes kept"
    );
    let repo = rendered(&objects, "GitRepository", "flux-system");
    assert_eq!(repo["spec"]["provider"], "azure");
    assert!(repo["spec"].get("secretRef").is_none());
}

#[test]
fn gitops_refuses_a_file_that_does_not_parse() {
    let sandbox = Sandbox::new();
    let broken = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [gotk-components.yaml\n";
    let dir = bootstrap(&sandbox, KUSTOMIZATIONS[0].1, vec![]);
    let out = sandbox.run(&[
        "enable",
        "-f",
        &dir.display().to_string(),
        "--mode",
        "webhook",
        "--client-id",
        CLIENT_ID,
        "-o",
        "yaml",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with(
            "patches:\n- target:\n    kind: ServiceAccount\n    name: source-controller\n"
        ),
        "{}",
        out.stdout
    );
    std::fs::write(dir.join("kustomization.yaml"), broken).unwrap();
    let out = sandbox.run(&[
        "enable",
        "--gitops",
        &dir.display().to_string(),
        "--mode",
        "webhook",
        "--client-id",
        CLIENT_ID,
    ]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("kustomization.yaml: line 3"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap(),
        broken,
        "file untouched"
    );
}

#[test]
fn flux_instance_gets_patches_and_the_gate() {
    let sandbox = Sandbox::new();
    let file = sandbox.write("flux.yaml", "apiVersion: fluxcd.controlplane.io/v1\nkind: FluxInstance\nmetadata:\n  name: flux\n  namespace: flux-system\nspec:\n  distribution:\n    version: \"2.7.x\"\n    registry: ghcr.io/fluxcd\n  cluster:\n    type: azure\n");
    let text = kubectl_azflux::plan::kustomization::append_items(
        &std::fs::read_to_string(&file).unwrap(),
        &["spec", "kustomize", "patches"],
        &["- target:\n    kind: ServiceAccount\n    name: source-controller\n  patch: |-\n    apiVersion: v1\n    kind: ServiceAccount\n    metadata:\n      name: source-controller\n".to_string()],
    )
    .unwrap();
    let doc: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(
        doc["spec"]["kustomize"]["patches"][0]["target"]["kind"],
        "ServiceAccount"
    );
    assert_eq!(doc["spec"]["cluster"]["type"], "azure");
}

#[test]
fn preview_diffs_are_coloured_only_when_asked() {
    let sandbox = Sandbox::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/broken-aks");
    let plain = sandbox.run(&[
        "enable",
        "-f",
        example,
        "--mode",
        "webhook",
        "--client-id",
        CLIENT_ID,
    ]);
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    assert!(plain.stdout.contains("+  annotations:"), "{}", plain.stdout);
    assert!(
        !plain.stdout.contains('\u{1b}'),
        "no colour without a terminal"
    );
    let coloured = sandbox.run(&[
        "--color",
        "always",
        "enable",
        "-f",
        example,
        "--mode",
        "webhook",
        "--client-id",
        CLIENT_ID,
    ]);
    assert!(
        coloured.stdout.contains("\u{1b}[32m+  annotations:"),
        "{}",
        coloured.stdout
    );
}

#[test]
fn gitops_tenant_creates_the_service_account_as_a_resource() {
    let sandbox = Sandbox::new();
    let mut tenant_source = flux::oci_repository(7, "team-a", "app");
    tenant_source["spec"]
        .as_object_mut()
        .unwrap()
        .remove("provider");
    let dir = bootstrap(&sandbox, KUSTOMIZATIONS[0].1, vec![tenant_source]);
    let dir_arg = dir.display().to_string();
    let out = sandbox.run(&[
        "enable",
        "tenant",
        "-n",
        "team-a",
        "--service-account",
        "flux-azure",
        "--set-objects",
        "--gitops",
        &dir_arg,
        "--client-id",
        CLIENT_ID,
        "--tenant-id",
        TENANT_ID,
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        dir.join("azflux-serviceaccount-team-a-flux-azure.yaml")
            .is_file()
    );
    let objects = render(&dir);
    let sa = objects
        .iter()
        .find(|o| o["kind"] == "ServiceAccount" && o["metadata"]["namespace"] == "team-a")
        .unwrap();
    assert_eq!(
        sa["metadata"]["annotations"]["azure.workload.identity/tenant-id"],
        TENANT_ID
    );
    let oci = objects
        .iter()
        .find(|o| o["kind"] == "OCIRepository" && o["metadata"]["namespace"] == "team-a")
        .unwrap();
    assert_eq!(oci["spec"]["provider"], "azure");
    assert_eq!(oci["spec"]["serviceAccountName"], "flux-azure");
    let deploy = rendered(&objects, "Deployment", "source-controller");
    let args: Vec<&str> = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        args.contains(&"--feature-gates=ObjectLevelWorkloadIdentity=true"),
        "the gate comes with the tenant: {args:?}"
    );
    let again = sandbox.run(&[
        "enable",
        "tenant",
        "-n",
        "team-a",
        "--service-account",
        "flux-azure",
        "--set-objects",
        "--gitops",
        &dir_arg,
        "--client-id",
        CLIENT_ID,
        "--tenant-id",
        TENANT_ID,
    ]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("nothing to add"), "{}", again.stdout);
}

/// Flux 0.41's source-controller (v0.36) reads no workload identity: its Azure credential is
/// azidentity v1.1's chain, without a workload identity member (fluxcd/source-controller
/// CHANGELOG.md 1.0.0-rc.1, the first release with it).
fn flux_0_41() -> Vec<Value> {
    let mut objects = flux::install(0);
    for (name, tag) in [
        ("source-controller", "v0.36.1"),
        ("kustomize-controller", "v0.35.1"),
        ("helm-controller", "v0.31.2"),
        ("notification-controller", "v0.33.0"),
        ("image-reflector-controller", "v0.26.1"),
        ("image-automation-controller", "v0.31.0"),
    ] {
        let deployment = flux::find(&mut objects, "Deployment", name);
        deployment["metadata"]["labels"]["app.kubernetes.io/version"] = json!("v0.41.2");
        deployment["spec"]["template"]["spec"]["containers"][0]["image"] =
            json!(format!("ghcr.io/fluxcd/{name}:{tag}"));
    }
    objects.push(flux::aks_webhook());
    objects.push(flux::oci_repository(0, NS, "platform"));
    objects
}

#[test]
fn enable_refuses_wiring_that_the_running_release_ignores() {
    let snapshot = live_snapshot(&flux_0_41());
    let err = plan::plan_enable(&snapshot, &ids()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "source-controller v0.36.1 has no workload identity: it came with source-controller v1.0.0-rc.1, in Flux v2.0.0; upgrade Flux to v2.0.0 or later first, then run enable again (wiring it now changes nothing the controller reads)"
    );
    let err = plan::plan_enable(
        &snapshot,
        &EnableRequest {
            controllers: vec!["kustomize-controller".into()],
            ..ids()
        },
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("kustomize-controller v0.35.1 has no workload identity for SOPS"),
        "{err}"
    );

    // Asked for every controller, the ones that cannot use it are left alone, and said so.
    let mut mixed = flux::install(7);
    let reflector = flux::find(&mut mixed, "Deployment", "image-reflector-controller");
    reflector["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!("ghcr.io/fluxcd/image-reflector-controller:v0.26.1");
    mixed.push(flux::aks_webhook());
    let snapshot = live_snapshot(&mixed);
    let plan = plan::plan_enable(&snapshot, &EnableRequest { all: true, ..ids() }).unwrap();
    assert!(
        plan.patches
            .iter()
            .all(|p| p.target.name != "image-reflector-controller"),
        "{plan:#?}"
    );
    assert!(
        plan.notes.iter().any(|n| n
            == "image-reflector-controller v0.26.1 has no workload identity: left as it is (upgrade Flux to wire it)"),
        "{:?}",
        plan.notes
    );
    assert!(
        plan.patches
            .iter()
            .any(|p| p.target.name == "source-controller")
    );
}

#[test]
fn enable_refuses_the_object_level_gate_before_the_release_that_knows_it() {
    // The gate came with Flux 2.6 (fluxcd/source-controller internal/controller/
    // ocirepository_controller.go @ v1.6.0); a gate a controller does not know stops it at start.
    let mut objects = flux::install(5);
    objects.push(flux::aks_webhook());
    objects.push(flux::oci_repository(5, NS, "platform"));
    let request = EnableRequest {
        object_level: true,
        controllers: vec!["source-controller".into()],
        ..ids()
    };
    let err = plan::plan_enable(&live_snapshot(&objects), &request).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "source-controller v1.5.0 has no object-level workload identity for OCIRepository: it came with source-controller v1.6.0, in Flux v2.6.0"
        ),
        "{err}"
    );
    let mut objects = flux::install(6);
    objects.push(flux::aks_webhook());
    objects.push(flux::oci_repository(6, NS, "platform"));
    let plan = plan::plan_enable(&live_snapshot(&objects), &request).unwrap();
    assert!(
        plan.patches.iter().any(|p| p
            .changes
            .iter()
            .any(|c| c.contains("ObjectLevelWorkloadIdentity=true"))),
        "{plan:#?}"
    );
}

/// kustomize-controller set up for AAD Pod Identity, as Flux 0.x documented it.
fn on_pod_identity(objects: &mut [Value]) {
    let deployment = flux::find(objects, "Deployment", "kustomize-controller");
    deployment["spec"]["template"]["metadata"]["labels"]["aadpodidbinding"] = json!("sops-akv");
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "AZURE_AUTH_METHOD", "value": "msi"}));
}

#[test]
fn moving_off_pod_identity_in_git_removes_the_binding_label_and_auth_method() {
    let sandbox = Sandbox::new();
    let dir = bootstrap(
        &sandbox,
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- gotk-components.yaml\n- gotk-sync.yaml\n",
        vec![],
    );
    let components = dir.join("gotk-components.yaml");
    let mut objects: Vec<Value> = manifests::parse_stream(
        "components",
        &std::fs::read_to_string(&components).unwrap(),
        None,
    )
    .unwrap()
    .into_iter()
    .filter_map(Document::into_value)
    .collect();
    on_pod_identity(&mut objects);
    write_yaml(&components, &objects);
    let dir_arg = dir.display().to_string();
    let out = sandbox.run(&[
        "enable",
        "--gitops",
        &dir_arg,
        "--mode",
        "webhook",
        "--controllers",
        "kustomize-controller",
        "--client-id",
        CLIENT_ID,
        "--tenant-id",
        TENANT_ID,
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("+      path: /spec/template/metadata/labels/aadpodidbinding")
            && out
                .stdout
                .contains("+      path: /spec/template/spec/containers/0/env/1"),
        "the preview shows the removals: {}",
        out.stdout
    );
    let rendered_objects = render(&dir);
    let deploy = rendered(&rendered_objects, "Deployment", "kustomize-controller");
    let labels = &deploy["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["azure.workload.identity/use"], "true");
    assert!(labels.get("aadpodidbinding").is_none(), "{labels}");
    let env = deploy["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    assert!(
        env.iter().all(|e| e["name"] != "AZURE_AUTH_METHOD"),
        "{env:?}"
    );
    assert!(
        env.iter().any(|e| e["name"] == "RUNTIME_NAMESPACE"),
        "{env:?}"
    );
}

#[test]
fn live_runs_say_how_to_remove_what_an_apply_cannot() {
    let mut objects = flux::install(7);
    objects.push(flux::aks_webhook());
    on_pod_identity(&mut objects);
    let mut plan = plan::plan_enable(
        &live_snapshot(&objects),
        &EnableRequest {
            controllers: vec!["kustomize-controller".into()],
            ..ids()
        },
    )
    .unwrap();
    let notes = plan.take_removals();
    assert_eq!(
        notes,
        [
            "flux-system/Deployment/kustomize-controller: not done live (remove the pod label aadpodidbinding (AAD Pod Identity); remove AZURE_AUTH_METHOD from container manager), as a server-side apply cannot remove fields another manager set; remove them where they are defined, or with: kubectl patch deployment kustomize-controller -n flux-system --type json -p '[{\"op\":\"remove\",\"path\":\"/spec/template/metadata/labels/aadpodidbinding\"},{\"op\":\"remove\",\"path\":\"/spec/template/spec/containers/0/env/1\"}]'"
        ]
    );
    let deployment = plan
        .patches
        .iter()
        .find(|p| p.target.kind == "Deployment")
        .unwrap();
    assert!(deployment.remove.is_empty());
    assert!(
        deployment.changes.iter().all(|c| !c.starts_with("remove")),
        "{:?}",
        deployment.changes
    );
}
