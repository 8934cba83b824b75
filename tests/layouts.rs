//! The layouts Flux users have, read as Flux reads them: a cluster folder without
//! kustomization.yaml (kustomize-controller generates one), the Kustomizations it holds leading
//! to the folders they apply, patch files and templates lying in `-f` folders, a FluxInstance
//! with patches and sync, and inputs that hold nothing to read. Fixtures written here.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;

use serde_json::{Value, json};
use support::flux::{self, CLIENT_ID, NS, TENANT_ID};
use support::run::{Outcome, Sandbox, write_yaml};

const BOOTSTRAP_KUSTOMIZATION: &str = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- gotk-components.yaml\n- gotk-sync.yaml\npatches:\n- path: identity-patch.yaml\n  target:\n    kind: Deployment\n    name: kustomize-controller\n";

/// A repository as `flux bootstrap` lays it out, with kustomize-controller wired in webhook
/// mode by a patch file, and apps decrypted with Key Vault:
///
/// ```text
/// repo/clusters/prod/                (no kustomization.yaml)
///   flux-system/                     gotk-components, gotk-sync, kustomization.yaml, a patch
///   apps.yaml                        Kustomization apps: ./apps/prod, SOPS
///   infra/sources.yaml               an OCIRepository (a sub-folder without kustomization)
///   values.yaml                      Helm values: not a Kubernetes object
///   .github/workflows/ci.yml         left out of every artifact
/// repo/apps/prod/                    (no kustomization.yaml) a SOPS-encrypted Secret
/// ```
fn repository(sandbox: &Sandbox) -> std::path::PathBuf {
    let repo = sandbox.path("repo");
    let cluster = repo.join("clusters/prod");
    let flux_system = cluster.join("flux-system");
    let mut components = flux::install(7);
    components.retain(|o| o["kind"] != "CustomResourceDefinition");
    let sa = flux::find(&mut components, "ServiceAccount", "kustomize-controller");
    sa["metadata"]["annotations"] = json!({
        "azure.workload.identity/client-id": CLIENT_ID,
        "azure.workload.identity/tenant-id": TENANT_ID,
    });
    write_yaml(&flux_system.join("gotk-components.yaml"), &components);
    write_yaml(
        &flux_system.join("gotk-sync.yaml"),
        &[
            flux::object(
                7,
                "GitRepository",
                NS,
                "flux-system",
                json!({"interval": "1m", "url": "https://github.com/contoso/fleet", "ref": {"branch": "main"}}),
            ),
            flux::object(
                7,
                "Kustomization",
                NS,
                "flux-system",
                json!({"interval": "10m", "path": "./clusters/prod", "prune": true, "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}),
            ),
        ],
    );
    // A strategic-merge patch: a Deployment without selector or containers.
    std::fs::write(
        flux_system.join("identity-patch.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: kustomize-controller\n  namespace: flux-system\nspec:\n  template:\n    metadata:\n      labels:\n        azure.workload.identity/use: \"true\"\n",
    )
    .unwrap();
    std::fs::write(
        flux_system.join("kustomization.yaml"),
        BOOTSTRAP_KUSTOMIZATION,
    )
    .unwrap();
    write_yaml(
        &cluster.join("apps.yaml"),
        &[flux::object(
            7,
            "Kustomization",
            NS,
            "apps",
            json!({"interval": "10m", "path": "./apps/prod", "prune": true, "sourceRef": {"kind": "GitRepository", "name": "flux-system"}, "decryption": {"provider": "sops"}}),
        )],
    );
    write_yaml(
        &cluster.join("infra/sources.yaml"),
        &[flux::oci_repository(7, NS, "platform")],
    );
    std::fs::write(
        cluster.join("values.yaml"),
        "replicaCount: 2\nimage:\n  tag: v1\n",
    )
    .unwrap();
    std::fs::create_dir_all(cluster.join(".github/workflows")).unwrap();
    std::fs::write(
        cluster.join(".github/workflows/ci.yml"),
        "on: push\njobs: {}\n",
    )
    .unwrap();
    write_yaml(
        &repo.join("apps/prod/secret.enc.yaml"),
        &[json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "apps"},
            "data": {"password": "ENC[AES256_GCM,data:AAAA,type:str]"},
            "sops": {"azure_kv": [{"vault_url": "https://contoso.vault.azure.net", "name": "sops", "version": "1"}]},
        })],
    );
    cluster
}

fn doctor(sandbox: &Sandbox, args: &[&str]) -> Outcome {
    let mut all = vec!["doctor", "-o", "json"];
    all.extend_from_slice(args);
    sandbox.run(&all)
}

fn input_notes(out: &Outcome) -> Vec<String> {
    out.json()["inputNotes"]
        .as_array()
        .map(|notes| {
            notes
                .iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The controller names the report lists, sorted.
fn controllers(out: &Outcome) -> Vec<String> {
    let mut names: Vec<String> = out.json()["controllers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(ToString::to_string).collect();
    names.sort();
    names
}

#[test]
fn a_folder_without_kustomization_is_built_as_flux_generates_it() {
    let sandbox = Sandbox::new();
    let cluster = repository(&sandbox);
    let dir = cluster.display().to_string();
    let out = doctor(&sandbox, &["-k", &dir]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let notes = input_notes(&out);
    assert!(
        notes.contains(&format!(
            "{dir} (no kustomization file), as Flux generates it: apps.yaml, flux-system/, infra/sources.yaml"
        )),
        "{notes:#?}"
    );
    assert!(
        notes.iter().any(|n| n.starts_with(&format!(
            "{dir}/values.yaml: a document has no apiVersion or kind"
        )) && n.contains("kustomize-controller stops on it")),
        "a non-Kubernetes YAML file breaks Flux's build of the folder, and is said so: {notes:#?}"
    );
    assert!(
        notes.iter().all(|n| !n.contains(".github")),
        "CI files are not in the artifact: {notes:#?}"
    );
    // The apps Kustomization applies ./apps/prod from the same repository: read too.
    let apps = sandbox.path("repo/apps/prod").display().to_string();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with(&apps) && n.contains("secret.enc.yaml")),
        "{notes:#?}"
    );
    assert_eq!(controllers(&out), sorted(&flux::CONTROLLERS));
    // kustomize-controller's patched pod label and the Key Vault use of the apps
    // Kustomization, found in the followed folder, make a clean path.
    let paths = out.json()["paths"].clone();
    let apps_path = paths
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["object"]["name"] == "apps")
        .unwrap_or_else(|| panic!("{paths:#}"));
    assert_eq!(
        apps_path["credential"]["type"], "controller",
        "{apps_path:#}"
    );
    assert!(
        !out.finding_names()
            .contains(&"controller-identity-unused".to_string()),
        "{:?}",
        out.findings()
    );
}

#[test]
fn dash_f_builds_folders_with_a_kustomization_and_leaves_patches_out() {
    let sandbox = Sandbox::new();
    let cluster = repository(&sandbox);
    let dir = cluster.display().to_string();
    // A patch lying beside the objects, in a folder without kustomization.
    std::fs::write(
        cluster.join("infra/patch.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: source-controller\n  namespace: flux-system\nspec:\n  template:\n    metadata:\n      labels:\n        azure.workload.identity/use: \"true\"\n",
    )
    .unwrap();
    std::fs::write(
        cluster.join("infra/chart.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n",
    )
    .unwrap();
    let out = doctor(&sandbox, &["-f", &dir]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let notes = input_notes(&out);
    assert!(
        notes.contains(&format!(
            "{dir}/flux-system: built with kustomize (kustomization.yaml)"
        )),
        "{notes:#?}"
    );
    assert!(
        notes.contains(&format!(
            "{dir}/infra/patch.yaml: Deployment source-controller left out: it has no spec.template.spec.containers, so it is a patch, not an object"
        )),
        "{notes:#?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with(&format!("{dir}/infra/chart.yaml:"))
                && n.ends_with("a template?")),
        "{notes:#?}"
    );
    assert_eq!(
        controllers(&out),
        sorted(&flux::CONTROLLERS),
        "no phantom controller"
    );
}

#[test]
fn inputs_with_nothing_to_read_are_refused_naming_them() {
    let sandbox = Sandbox::new();
    let values = sandbox.write("values.yaml", "replicaCount: 2\n");
    let out = sandbox.run(&["doctor", "-f", &values.display().to_string()]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stderr.starts_with(&format!(
            "error: no Kubernetes object in {}",
            values.display()
        )),
        "{}",
        out.stderr
    );
    let empty = sandbox.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = sandbox.run(&["doctor", "-f", &empty.display().to_string()]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stderr.contains("no Kubernetes object in"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_wrong_flux_namespace_says_where_the_controllers_are() {
    let sandbox = Sandbox::new();
    let mut objects = flux::install(7);
    for object in &mut objects {
        if object["metadata"]["namespace"] == NS {
            object["metadata"]["namespace"] = json!("gitops");
        }
    }
    let file = sandbox.path("flux.yaml");
    write_yaml(&file, &objects);
    let out = doctor(&sandbox, &["-f", &file.display().to_string()]);
    let finding = out.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "flux-not-found")
        .cloned()
        .unwrap();
    assert_eq!(
        finding["message"],
        "no Flux controller Deployment in namespace flux-system, but there are Flux controllers in namespace gitops"
    );
    assert_eq!(
        finding["fix"],
        format!(
            "kubectl azflux doctor -f {} --flux-namespace gitops",
            file.display()
        )
    );
}

fn flux_instance(client_id: &str, extra: &str) -> String {
    format!(
        "apiVersion: fluxcd.controlplane.io/v1\nkind: FluxInstance\nmetadata:\n  name: flux\n  namespace: flux-system\nspec:\n  distribution:\n    version: \"2.7.x\"\n    registry: ghcr.io/fluxcd\n  components:\n    - source-controller\n    - kustomize-controller\n  cluster:\n    objectLevelWorkloadIdentity: true\n  sync:\n    kind: OCIRepository\n    provider: azure\n    url: oci://contoso.azurecr.io/fleet\n    path: clusters/prod\n  kustomize:\n    patches:\n    - target:\n        kind: ServiceAccount\n        name: source-controller\n      patch: |-\n        apiVersion: v1\n        kind: ServiceAccount\n        metadata:\n          name: source-controller\n          annotations:\n            azure.workload.identity/client-id: {client_id}\n            azure.workload.identity/tenant-id: {TENANT_ID}\n{extra}"
    )
}

const LABEL_PATCH: &str = "    - target:\n        kind: Deployment\n        name: source-controller\n      patch: |-\n        apiVersion: apps/v1\n        kind: Deployment\n        metadata:\n          name: source-controller\n        spec:\n          template:\n            metadata:\n              labels:\n                azure.workload.identity/use: \"true\"\n";

#[test]
fn a_flux_instance_is_read_as_the_controllers_the_operator_creates() {
    let sandbox = Sandbox::new();
    let file = sandbox.write("flux.yaml", &flux_instance(CLIENT_ID, LABEL_PATCH));
    let file_arg = file.display().to_string();
    let out = doctor(&sandbox, &["-f", &file_arg]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        controllers(&out),
        sorted(&["source-controller", "kustomize-controller"])
    );
    let report = out.json();
    let source = report["controllers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "source-controller")
        .unwrap()
        .clone();
    assert_eq!(source["wiring"], "webhook", "{source:#}");
    assert_eq!(source["featureGates"]["ObjectLevelWorkloadIdentity"], true);
    assert_eq!(source["fluxVersion"], "v2.7.0");
    let notes = input_notes(&out);
    assert!(
        notes.iter().any(|n| n.contains("FluxInstance flux-system/flux read as the objects the operator creates: source-controller, kustomize-controller (distribution 2.7.x read as Flux v2.7.0")
            && n.contains("2 patch(es) applied, sync OCIRepository flux-system/flux-system")),
        "{notes:#?}"
    );
    // The sync source uses source-controller's identity, which the patches wire: nothing to fix.
    assert_eq!(
        out.finding_names(),
        Vec::<String>::new(),
        "{:?}",
        out.findings()
    );

    // The guide's placeholder left in is an error on the ServiceAccount the operator creates.
    let placeholder = sandbox.write(
        "placeholder.yaml",
        &flux_instance("<AZURE_CLIENT_ID>", LABEL_PATCH),
    );
    let out = doctor(&sandbox, &["-f", &placeholder.display().to_string()]);
    let finding = out.json()["findings"][0].clone();
    assert_eq!(finding["name"], "identity-annotation-malformed");
    assert_eq!(
        finding["message"],
        "annotation `azure.workload.identity/client-id` of source-controller is \"<AZURE_CLIENT_ID>\", a placeholder left in"
    );
    assert_eq!(
        finding["fix"],
        format!(
            "# CLIENT_ID: az identity show -n IDENTITY -g RESOURCE_GROUP --query clientId -o tsv\nkubectl azflux enable --flux-instance {} --controllers source-controller --client-id CLIENT_ID --overwrite",
            placeholder.display()
        ),
        "{finding:#}"
    );
}

#[test]
fn enable_plans_a_flux_instance_from_the_file_alone() {
    let sandbox = Sandbox::new();
    let file = sandbox.write("flux.yaml", &flux_instance(CLIENT_ID, ""));
    let before = std::fs::read_to_string(&file).unwrap();
    let file_arg = file.display().to_string();
    // No kubeconfig at all in the sandbox: the file is the only input.
    let out = sandbox.run(&["enable", "--flux-instance", &file_arg, "--mode", "webhook"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let after = std::fs::read_to_string(&file).unwrap();
    assert!(
        after.starts_with(&before),
        "the file's lines are kept:\n{after}"
    );
    let doc: Value = serde_saphyr::from_str(&after).unwrap();
    let patches = doc["spec"]["kustomize"]["patches"].as_array().unwrap();
    assert_eq!(patches.len(), 2, "{after}");
    assert_eq!(patches[1]["target"]["kind"], "Deployment");
    assert!(
        patches[1]["patch"]
            .as_str()
            .unwrap()
            .contains("azure.workload.identity/use: \"true\""),
        "{after}"
    );
    let out = doctor(&sandbox, &["-f", &file_arg]);
    assert_eq!(
        out.finding_names(),
        Vec::<String>::new(),
        "{:?}",
        out.findings()
    );

    // Without a sync on Azure there is nothing to tell which controller to wire.
    let plain = sandbox.write(
        "plain.yaml",
        "apiVersion: fluxcd.controlplane.io/v1\nkind: FluxInstance\nmetadata:\n  name: flux\n  namespace: flux-system\nspec:\n  distribution:\n    version: \"2.7.x\"\n",
    );
    let out = sandbox.run(&[
        "enable",
        "--flux-instance",
        &plain.display().to_string(),
        "--client-id",
        CLIENT_ID,
        "--mode",
        "webhook",
    ]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stderr.contains("shows no Flux object that uses Azure")
            && out.stderr.contains("pass --controllers NAME"),
        "{}",
        out.stderr
    );
}

#[test]
fn enable_on_a_generated_folder_edits_the_flux_system_kustomization() {
    let sandbox = Sandbox::new();
    let cluster = repository(&sandbox);
    // source-controller serves the OCIRepository in infra/ and is not wired.
    let out = sandbox.run(&[
        "enable",
        "--gitops",
        &cluster.display().to_string(),
        "--mode",
        "webhook",
        "--client-id",
        CLIENT_ID,
        "--tenant-id",
        TENANT_ID,
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("the patches go to")
            && out
                .stderr
                .contains("flux-system, which builds the Flux controllers"),
        "{}",
        out.stderr
    );
    assert!(
        !cluster.join("kustomization.yaml").exists(),
        "no kustomization file added where Flux generates one"
    );
    let edited = std::fs::read_to_string(cluster.join("flux-system/kustomization.yaml")).unwrap();
    assert!(edited.starts_with(BOOTSTRAP_KUSTOMIZATION), "{edited}");
    assert!(edited.contains("name: source-controller"), "{edited}");
    let out = doctor(&sandbox, &["-k", &cluster.display().to_string()]);
    assert!(
        !out.finding_names()
            .contains(&"azure-controller-not-wired".to_string()),
        "{:?}",
        out.findings()
    );
    assert!(Path::new(&cluster).join("values.yaml").exists());
}

/// `.sourceignore` files leave out of the artifact what they match, in gitignore syntax, each
/// for its own folder and below (fluxcd/pkg sourceignore/sourceignore.go @
/// sourceignore/v0.18.0): the repository root's file drops the Helm values Flux would stop on,
/// the cluster folder's drops `infra/` but takes one file back with `!`.
#[test]
fn sourceignore_files_leave_out_what_they_match() {
    let sandbox = Sandbox::new();
    let cluster = repository(&sandbox);
    let repo = sandbox.path("repo");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    std::fs::write(
        repo.join(".sourceignore"),
        "# Helm values\n**/values.yaml\n",
    )
    .unwrap();
    std::fs::write(cluster.join(".sourceignore"), "infra/*\n!infra/keep.yaml\n").unwrap();
    write_yaml(
        &cluster.join("infra/keep.yaml"),
        &[flux::object(
            7,
            "HelmRepository",
            NS,
            "charts",
            json!({"interval": "5m", "type": "oci", "provider": "azure", "url": "oci://contoso.azurecr.io/charts"}),
        )],
    );
    let dir = cluster.display().to_string();
    let out = doctor(&sandbox, &["-k", &dir]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let notes = input_notes(&out);
    assert!(
        notes.contains(&format!(
            "{dir} (no kustomization file), as Flux generates it: apps.yaml, flux-system/, infra/keep.yaml"
        )),
        "{notes:#?}"
    );
    let root_ignore = repo.join(".sourceignore").canonicalize().unwrap();
    assert!(
        notes.contains(&format!(
            "{dir}/values.yaml: excluded by {}, so source-controller leaves it out of the artifact; left out here",
            root_ignore.display()
        )),
        "{notes:#?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with(&format!("{dir}/infra/sources.yaml: excluded by"))),
        "{notes:#?}"
    );
    assert!(
        !notes
            .iter()
            .any(|n| n.contains("kustomize-controller stops on it")),
        "{notes:#?}"
    );
    let objects: Vec<String> = out.json()["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["object"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        objects.contains(&"charts".to_string()) && !objects.contains(&"platform".to_string()),
        "{objects:?}"
    );
}
