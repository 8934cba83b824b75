//! Writes that lose nothing: `enable --apply` keeps every field earlier runs set (the fake API
//! server prunes an applier's omitted fields as the real one does), `--dry-run` writes nothing
//! in each of its forms, existing values change only with `--overwrite`, Ctrl-C reports what
//! was applied, and GitOps edits go through links, refuse special and read-only files, never
//! overwrite a change made meanwhile and are undone as a whole when a step fails.

// Scenario tests read top to bottom, however long.
#![allow(clippy::too_many_lines)]

#[path = "support/mod.rs"]
mod support;

use std::io::BufRead;
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;
use support::fake_apiserver::{FakeConfig, Fault, FaultBehaviour, RequestRecord};
use support::flux::{self, CLIENT_ID, NS, TENANT_ID};
use support::run::{Cluster, Outcome, Sandbox, write_yaml};

const OTHER_CLIENT: &str = "b8a3c1d2-9e4f-4a6b-8c7d-1e2f3a4b5c6d";
const AKS_ISSUER: &str = "https://westeurope.oic.prod-aks.azure.com/72f988bf-86f1-41af-91ab-2d7cd011db47/5c8a3f6b-1d2e-4f5a-9b7c-0d1e2f3a4b5c/";

/// AKS with the webhook, Flux 2.7, an ACR source and nothing wired.
fn unwired() -> Vec<Value> {
    let mut objects = flux::install(7);
    objects.extend([
        flux::aks_webhook(),
        flux::aks_node(),
        flux::oci_repository(7, NS, "platform"),
    ]);
    let pods: Vec<Value> = flux::CONTROLLERS
        .iter()
        .map(|c| flux::pod_of(&objects, c, false))
        .collect();
    objects.extend(pods);
    objects
}

fn start(objects: Vec<Value>, faults: Vec<Fault>) -> Cluster {
    Cluster::start(FakeConfig {
        objects,
        issuer: Some(AKS_ISSUER.into()),
        faults,
        ..FakeConfig::default()
    })
}

fn enable(cluster: &Cluster, args: &[&str]) -> Outcome {
    let kubeconfig = cluster.kubeconfig.display().to_string();
    let mut all = vec!["enable", "--kubeconfig", kubeconfig.as_str()];
    all.extend_from_slice(args);
    cluster.sandbox.run(&all)
}

/// PATCHes that changed the cluster (not dry runs, not refused).
fn writes(requests: &[RequestRecord]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| {
            r.method == "PATCH"
                && r.status < 300
                && !r.query.as_deref().unwrap_or_default().contains("dryRun")
        })
        .map(|r| r.path.clone())
        .collect()
}

fn service_account(cluster: &Cluster) -> Value {
    cluster
        .server
        .object("v1", "ServiceAccount", Some(NS), "source-controller")
        .unwrap()
}

fn deployment(cluster: &Cluster) -> Value {
    cluster
        .server
        .object("apps/v1", "Deployment", Some(NS), "source-controller")
        .unwrap()
}

fn annotation(sa: &Value, key: &str) -> Value {
    sa["metadata"]["annotations"][format!("azure.workload.identity/{key}")].clone()
}

fn pod_label(deploy: &Value) -> Value {
    deploy["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"].clone()
}

fn args_of(deploy: &Value) -> Vec<String> {
    deploy["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

const GATE: &str = "--feature-gates=ObjectLevelWorkloadIdentity=true";

#[test]
fn every_apply_keeps_what_earlier_runs_set() {
    let cluster = start(unwired(), vec![]);
    let wire = |extra: &[&str]| {
        let mut args = vec![
            "--controllers",
            "source-controller",
            "--apply",
            "--timeout",
            "30s",
        ];
        args.extend_from_slice(extra);
        let out = enable(&cluster, &args);
        assert_eq!(out.code, 0, "{extra:?}: {}\n{}", out.stdout, out.stderr);
        out
    };

    wire(&["--client-id", CLIENT_ID]);
    assert_eq!(
        annotation(&service_account(&cluster), "client-id"),
        CLIENT_ID
    );
    assert_eq!(pod_label(&deployment(&cluster)), "true");

    // The tenant ID later: the ServiceAccount changes and the controller restarts; neither
    // apply may drop the client ID or the pod label set by the first run.
    let preview = enable(
        &cluster,
        &[
            "--controllers",
            "source-controller",
            "--client-id",
            CLIENT_ID,
            "--tenant-id",
            TENANT_ID,
        ],
    );
    assert_eq!(preview.code, 0, "{}", preview.stderr);
    assert!(
        preview
            .stdout
            .contains("+    azure.workload.identity/tenant-id: "),
        "{}",
        preview.stdout
    );
    assert!(
        !preview
            .stdout
            .lines()
            .any(|l| l.trim_start().starts_with("-    ") || l.trim_start().starts_with("-  ")),
        "the preview removes nothing: {}",
        preview.stdout
    );
    wire(&["--client-id", CLIENT_ID, "--tenant-id", TENANT_ID]);
    let sa = service_account(&cluster);
    assert_eq!(annotation(&sa, "client-id"), CLIENT_ID);
    assert_eq!(annotation(&sa, "tenant-id"), TENANT_ID);
    let deploy = deployment(&cluster);
    assert_eq!(pod_label(&deploy), "true", "the restart kept the label");
    assert!(
        deploy["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string()
    );

    // Object-level identity later: the gate is added, the label stays. The args list belongs
    // to the installer (client-side apply), hence the explicit takeover.
    wire(&["--object-level", "--force-conflicts"]);
    let deploy = deployment(&cluster);
    assert_eq!(pod_label(&deploy), "true");
    assert!(args_of(&deploy).contains(&GATE.to_string()));

    // Rotating the client ID: refused without --overwrite, before any write.
    let before = cluster.server.requests().len();
    let refused = enable(
        &cluster,
        &[
            "--controllers",
            "source-controller",
            "--client-id",
            OTHER_CLIENT,
            "--apply",
        ],
    );
    assert_eq!(refused.code, 2, "{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains(CLIENT_ID)
            && refused.stderr.contains(OTHER_CLIENT)
            && refused.stderr.contains("--overwrite"),
        "old and new value named: {}",
        refused.stderr
    );
    assert!(writes(&cluster.server.requests()[before..]).is_empty());
    assert_eq!(
        annotation(&service_account(&cluster), "client-id"),
        CLIENT_ID
    );

    wire(&["--client-id", OTHER_CLIENT, "--overwrite"]);
    let sa = service_account(&cluster);
    assert_eq!(annotation(&sa, "client-id"), OTHER_CLIENT);
    assert_eq!(
        annotation(&sa, "tenant-id"),
        TENANT_ID,
        "the tenant ID stays"
    );
    let deploy = deployment(&cluster);
    assert_eq!(pod_label(&deploy), "true", "the label stays");
    assert!(
        args_of(&deploy).contains(&GATE.to_string()),
        "the gate stays"
    );
}

#[test]
fn dry_run_writes_nothing_in_any_form() {
    let cluster = start(unwired(), vec![]);
    let ids = ["--client-id", CLIENT_ID, "--tenant-id", TENANT_ID];

    let before = cluster.server.requests().len();
    let server = enable(
        &cluster,
        &[&ids[..], &["--apply", "--dry-run=server"]].concat(),
    );
    assert_eq!(server.code, 0, "{}\n{}", server.stdout, server.stderr);
    let sent: Vec<RequestRecord> = cluster.server.requests()[before..]
        .iter()
        .filter(|r| r.method == "PATCH")
        .cloned()
        .collect();
    assert!(!sent.is_empty(), "the server was asked");
    assert!(
        sent.iter().all(|r| r
            .query
            .as_deref()
            .unwrap_or_default()
            .contains("dryRun=All")),
        "every patch is a dry run"
    );
    assert!(
        server
            .stdout
            .contains("+    azure.workload.identity/client-id: "),
        "{}",
        server.stdout
    );
    assert!(server.stderr.contains("dry run"), "{}", server.stderr);

    for client in ["--dry-run", "--dry-run=client"] {
        let before = cluster.server.requests().len();
        let out = enable(&cluster, &[&ids[..], &["--apply", client]].concat());
        assert_eq!(out.code, 0, "{client}: {}", out.stderr);
        assert!(
            cluster.server.requests()[before..]
                .iter()
                .all(|r| r.method == "GET"),
            "{client}: only reads"
        );
        assert!(
            out.stdout
                .contains("patch flux-system/ServiceAccount/source-controller")
        );
    }
    assert!(annotation(&service_account(&cluster), "client-id").is_null());

    let bad = enable(
        &cluster,
        &[&ids[..], &["--apply", "--dry-run=maybe"]].concat(),
    );
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("maybe"), "{}", bad.stderr);
}

#[test]
#[cfg(unix)]
fn ctrl_c_reports_what_was_applied_and_a_rerun_completes_it() {
    // The Deployment's real write (after its dry run) never gets an answer, and Ctrl-C is
    // sent only once the server holds it, so the run is waiting for it however slow the
    // machine is.
    let hang = Fault::new("/deployments/source-controller", 200, FaultBehaviour::Hang)
        .method("PATCH")
        .skip(1)
        .times(1);
    let cluster = start(unwired(), vec![hang]);
    let kubeconfig = cluster.kubeconfig.display().to_string();
    let mut child = cluster
        .sandbox
        .command()
        .args([
            "enable",
            "--kubeconfig",
            &kubeconfig,
            "--client-id",
            CLIENT_ID,
            "--tenant-id",
            TENANT_ID,
            "--apply",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "ended early: {seen}"
        );
        seen.push_str(&line);
        if line.starts_with("applied flux-system/ServiceAccount/source-controller") {
            break;
        }
    }
    // The Deployment's write is sent after the line above is printed; on a loaded machine
    // it may not have reached the server yet, and an interrupt before it would leave the
    // fault armed for the rerun.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while cluster.server.held_requests() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the Deployment's write never reached the server"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(130), "{seen}{rest}");
    assert!(
        rest.contains("interrupted. Applied: flux-system/ServiceAccount/source-controller.")
            && rest.contains("Maybe applied (the request was under way): flux-system/Deployment/source-controller.")
            && rest.contains("Run the same command again"),
        "{rest}"
    );

    let rerun = enable(
        &cluster,
        &[
            "--client-id",
            CLIENT_ID,
            "--tenant-id",
            TENANT_ID,
            "--apply",
            "--timeout",
            "30s",
        ],
    );
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    assert_eq!(pod_label(&deployment(&cluster)), "true");
    assert_eq!(
        annotation(&service_account(&cluster), "client-id"),
        CLIENT_ID
    );
}

#[test]
fn flux_instance_must_be_a_flux_instance() {
    let cluster = start(unwired(), vec![]);
    let deployment_file = cluster.sandbox.path("deploy.yaml");
    write_yaml(
        &deployment_file,
        &[flux::controller(7, "source-controller")],
    );
    let list = cluster.sandbox.write(
        "list.yaml",
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ServiceAccount\n  metadata:\n    name: a\n",
    );
    for (file, said) in [
        (&deployment_file, "apps/v1 Deployment, not a FluxInstance"),
        (&list, "v1 List, not a FluxInstance"),
    ] {
        let before = std::fs::read_to_string(file).unwrap();
        let out = enable(
            &cluster,
            &[
                "--client-id",
                CLIENT_ID,
                "--tenant-id",
                TENANT_ID,
                "--flux-instance",
                &file.display().to_string(),
            ],
        );
        assert_eq!(out.code, 2, "{}", out.stdout);
        assert!(out.stderr.contains(said), "{}", out.stderr);
        assert_eq!(std::fs::read_to_string(file).unwrap(), before);
    }
}

/// A bootstrap folder: the Flux install, its sync objects and a kustomization.yaml.
fn bootstrap(sandbox: &Sandbox) -> std::path::PathBuf {
    let dir = sandbox.path("repo/clusters/prod/flux-system");
    let mut components = flux::install(7);
    components.retain(|o| o["kind"] != "CustomResourceDefinition");
    write_yaml(&dir.join("gotk-components.yaml"), &components);
    let mut tenant = flux::oci_repository(7, "team-a", "app");
    tenant["spec"].as_object_mut().unwrap().remove("provider");
    write_yaml(
        &dir.join("gotk-sync.yaml"),
        &[flux::oci_repository(7, NS, "platform"), tenant],
    );
    std::fs::write(
        dir.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- gotk-components.yaml\n- gotk-sync.yaml\n",
    )
    .unwrap();
    dir
}

fn gitops(sandbox: &Sandbox, dir: &Path, extra: &[&str]) -> Outcome {
    let dir = dir.display().to_string();
    let mut args = vec![
        "enable",
        "--gitops",
        dir.as_str(),
        "--mode",
        "webhook",
        "--client-id",
        CLIENT_ID,
        "--tenant-id",
        TENANT_ID,
    ];
    args.extend_from_slice(extra);
    sandbox.run(&args)
}

fn tenant(sandbox: &Sandbox, dir: &Path, namespace: &str) -> Outcome {
    let dir = dir.display().to_string();
    sandbox.run(&[
        "enable",
        "tenant",
        "-n",
        namespace,
        "--service-account",
        "flux-azure",
        "--set-objects",
        "--gitops",
        &dir,
        "--client-id",
        CLIENT_ID,
        "--tenant-id",
        TENANT_ID,
    ])
}

/// Every file of a folder with its bytes, to compare before and after.
fn folder(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let bytes = std::fs::read(e.path()).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    files.sort();
    files
}

/// A `kubectl` in the sandbox that runs `before` (shell) and then the real kubectl.
fn kubectl_wrapper(sandbox: &Sandbox, before: &str) {
    let real = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .expect("kubectl on PATH");
    sandbox.executable(
        "bin/kubectl",
        &format!("#!/bin/sh\n{before}\nexec '{}' \"$@\"\n", real.display()),
    );
}

#[test]
#[cfg(unix)]
fn gitops_edits_the_target_of_a_link_and_keeps_the_link() {
    let sandbox = Sandbox::new();
    let dir = bootstrap(&sandbox);
    let real = dir.join("real-kustomization.yaml");
    std::fs::rename(dir.join("kustomization.yaml"), &real).unwrap();
    std::os::unix::fs::symlink("real-kustomization.yaml", dir.join("kustomization.yaml")).unwrap();
    let out = gitops(&sandbox, &dir, &[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        std::fs::symlink_metadata(dir.join("kustomization.yaml"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "still a link"
    );
    assert!(std::fs::read_to_string(&real).unwrap().contains("patches:"));
}

#[test]
#[cfg(unix)]
fn gitops_refuses_read_only_and_special_files() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let dir = bootstrap(&sandbox);
    let file = dir.join("kustomization.yaml");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).unwrap();
    let before = folder(&dir);
    let out = gitops(&sandbox, &dir, &[]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(out.stderr.contains("read-only"), "{}", out.stderr);
    assert_eq!(folder(&dir), before);
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o444
    );

    std::fs::remove_file(&file).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&file)
        .status()
        .unwrap();
    assert!(made.success());
    let out = gitops(&sandbox, &dir, &[]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stderr.contains("a FIFO, not a regular file"),
        "{}",
        out.stderr
    );
}

#[test]
fn gitops_never_overwrites_a_change_made_meanwhile() {
    let sandbox = Sandbox::new();
    let dir = bootstrap(&sandbox);
    let file = dir.join("kustomization.yaml");
    // Someone saves the file while the folder is being rendered.
    kubectl_wrapper(
        &sandbox,
        &format!("echo '# my change' >> '{}'", file.display()),
    );
    let out = gitops(&sandbox, &dir, &[]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("changed while this command was working"),
        "{}",
        out.stderr
    );
    let now = std::fs::read_to_string(&file).unwrap();
    assert!(
        now.ends_with("# my change\n") && !now.contains("patches:"),
        "{now}"
    );
}

#[test]
fn a_failed_gitops_edit_leaves_the_folder_as_it_was_and_a_rerun_works() {
    let sandbox = Sandbox::new();
    let dir = bootstrap(&sandbox);
    let before = folder(&dir);
    // The render that plans works; the one that checks the edited folder fails.
    let count = sandbox.path("renders");
    kubectl_wrapper(
        &sandbox,
        &format!(
            "echo x >> '{0}'; if [ \"$(wc -l < '{0}')\" -ge 2 ]; then echo 'injected failure' >&2; exit 1; fi",
            count.display()
        ),
    );
    let out = tenant(&sandbox, &dir, "team-a");
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("the folder was left as it was"),
        "{}",
        out.stderr
    );
    assert_eq!(folder(&dir), before, "new files removed, the edit undone");

    std::fs::remove_file(sandbox.path("bin/kubectl")).unwrap();
    let rerun = tenant(&sandbox, &dir, "team-a");
    assert_eq!(rerun.code, 0, "{}{}", rerun.stdout, rerun.stderr);
    assert!(
        dir.join("azflux-serviceaccount-team-a-flux-azure.yaml")
            .is_file()
    );
}

#[test]
fn names_that_become_paths_must_be_kubernetes_names() {
    let sandbox = Sandbox::new();
    let dir = bootstrap(&sandbox);
    let before = folder(&dir);
    let out = tenant(&sandbox, &dir, "../../x");
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stderr.contains("not a valid namespace name"),
        "{}",
        out.stderr
    );
    let dir_arg = dir.display().to_string();
    let out = sandbox.run(&[
        "enable",
        "tenant",
        "-n",
        "team-a",
        "--service-account",
        "../escape",
        "--gitops",
        &dir_arg,
        "--client-id",
        CLIENT_ID,
        "--tenant-id",
        TENANT_ID,
    ]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stderr.contains("not a valid ServiceAccount name"),
        "{}",
        out.stderr
    );
    assert_eq!(folder(&dir), before);
    assert!(!sandbox.path("repo/clusters/x").exists());
}

#[test]
fn gitops_replaces_an_existing_client_id_only_with_overwrite() {
    let sandbox = Sandbox::new();
    let dir = bootstrap(&sandbox);
    let first = gitops(&sandbox, &dir, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let written = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();

    let dir_arg = dir.display().to_string();
    let rotate = |extra: &[&str]| {
        let mut args = vec![
            "enable",
            "--gitops",
            dir_arg.as_str(),
            "--client-id",
            OTHER_CLIENT,
        ];
        args.extend_from_slice(extra);
        sandbox.run(&args)
    };
    let refused = rotate(&[]);
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    assert!(
        refused.stderr.contains(CLIENT_ID) && refused.stderr.contains(OTHER_CLIENT),
        "{}",
        refused.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap(),
        written
    );

    let dry = rotate(&["--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(dry.stdout.contains("(dry run: the file was not written)"));
    assert_eq!(
        std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap(),
        written
    );

    let replaced = rotate(&["--overwrite"]);
    assert_eq!(replaced.code, 0, "{}", replaced.stderr);
    assert!(
        std::fs::read_to_string(dir.join("kustomization.yaml"))
            .unwrap()
            .contains(OTHER_CLIENT)
    );
}
