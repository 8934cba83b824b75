//! Every command the README shows runs as written. Each ```sh block is either run here, line by
//! line through `sh` in a scene set up for its section (a loopback fake AKS cluster, a Git
//! repository laid out as `flux bootstrap` lays it, the fake Resource Manager and Entra ID), or
//! follows a paragraph that says, visibly, `Not run by the README test (tests/readme.rs): why`.
//! A block under a heading this file has no scene for fails the test, and so does a section
//! whose number of commands differs from the exit codes expected here, so a new command cannot
//! go unrun.
//!
//! How lines are read: `kubectl azflux ...` goes through the machine's real kubectl, which finds
//! the binary under test on PATH as `kubectl-azflux`; `flux azflux ...` through a stand-in for
//! the Flux CLI that does what Flux 2.9 does with a plugin (runs `flux-azflux` from
//! `$FLUXCD_PLUGINS`, else `~/.fluxcd/plugins`); `cargo run --release --` and
//! `./target/release/kubectl-azflux` are the binary under test, and `cargo build --release &&`
//! the build `cargo test` has done; `cargo run --release -p fake-apiserver -- --demo` is the
//! demo cluster (its command line is tested in crates/fake-apiserver/tests/demo_command.rs),
//! and the `export KUBECONFIG=` line it prints is the scene's environment. `$CLIENT_ID`,
//! `$TENANT_ID` and the `...` of an `export` are the fake's values.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::fake_apiserver::{FakeConfig, RunningServer, demo};
use support::fake_azure::{
    AKS_CLUSTER_USER, FakeAzure, LOGIN_OBJECT_ID, Login, READER, Resource, RoleAssignment,
    RunningAzure,
};
use support::flux::{self, CLIENT_ID, NS, TENANT_ID};
use support::run::{BIN, Cluster, Sandbox, write_yaml};

const SKIP_MARK: &str = "Not run by the README test (tests/readme.rs):";

/// A ```sh block: the heading it is under, its commands (continuation lines joined), and
/// whether the paragraph before it marks it as not run.
#[derive(Debug)]
struct Block {
    heading: String,
    commands: Vec<String>,
    /// Why it is not run, when it is marked so.
    skipped: Option<String>,
}

fn blocks(readme: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut heading = String::new();
    let mut last_text = String::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.starts_with('#') && !line.starts_with("#!") {
            heading = line.trim_start_matches('#').trim().to_string();
            continue;
        }
        if line.starts_with("```") {
            let info = line.trim_start_matches('`');
            let mut body = Vec::new();
            for inner in lines.by_ref() {
                if inner.starts_with("```") {
                    break;
                }
                body.push(inner.to_string());
            }
            if info == "sh" {
                blocks.push(Block {
                    heading: heading.clone(),
                    commands: commands(&body),
                    skipped: last_text
                        .strip_prefix(SKIP_MARK)
                        .map(|why| why.trim().to_string()),
                });
            }
            last_text.clear();
            continue;
        }
        if !line.trim().is_empty() {
            last_text = line.to_string();
        }
    }
    blocks
}

fn commands(body: &[String]) -> Vec<String> {
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in body {
        if let Some(start) = line.strip_suffix('\\') {
            current.push_str(start);
            continue;
        }
        current.push_str(line);
        let command = std::mem::take(&mut current);
        if !command.trim().is_empty() && !command.trim_start().starts_with('#') {
            commands.push(command.trim().to_string());
        }
    }
    commands
}

/// Where a section's commands run: a working directory and the environment a reader has.
struct Scene {
    sandbox: Sandbox,
    cwd: PathBuf,
    env: Vec<(String, String)>,
    /// What `...` in `export NAME=...` stands for.
    placeholders: Vec<(&'static str, String)>,
    clusters: Vec<Cluster>,
    servers: Vec<RunningServer>,
    azure: Option<RunningAzure>,
}

impl Scene {
    fn new() -> Scene {
        let sandbox = Sandbox::new();
        let bin = sandbox.path("bin");
        #[cfg(unix)]
        std::os::unix::fs::symlink(BIN, bin.join("kubectl-azflux")).unwrap();
        sandbox.executable(
            "bin/flux",
            "#!/bin/sh\n# What the Flux CLI does with `flux NAME ARGS` when NAME is a plugin.\nname=\"$1\"; shift\nexec \"${FLUXCD_PLUGINS:-$HOME/.fluxcd/plugins}/flux-$name\" \"$@\"\n",
        );
        let cwd = sandbox.path("work");
        std::fs::create_dir_all(&cwd).unwrap();
        Scene {
            sandbox,
            cwd,
            env: vec![
                ("CLIENT_ID".into(), CLIENT_ID.into()),
                ("TENANT_ID".into(), TENANT_ID.into()),
            ],
            placeholders: Vec::new(),
            clusters: Vec::new(),
            servers: Vec::new(),
            azure: None,
        }
    }

    /// A cluster served for the scene, its kubeconfig the reader's.
    fn serve(&mut self, config: FakeConfig) {
        let cluster = Cluster::start(config);
        self.env.push((
            "KUBECONFIG".into(),
            cluster.kubeconfig.display().to_string(),
        ));
        self.clusters.push(cluster);
    }

    /// Runs one README command as written, and returns its exit code and output.
    fn run(&mut self, command: &str) -> (i32, String) {
        if command.starts_with("cargo run --release -p fake-apiserver -- --demo") {
            self.serve(demo::config().unwrap());
            return (0, String::new());
        }
        if let Some(assignments) = command.strip_prefix("export ") {
            // The shell the reader types into keeps these for the commands that follow.
            let assignments = assignments.split(" # ").next().unwrap_or_default();
            for assignment in assignments.split_whitespace() {
                let (name, value) = assignment.split_once('=').unwrap();
                let value = match value {
                    "..." => self
                        .placeholders
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map_or_else(|| panic!("no value for {name}"), |(_, v)| v.clone()),
                    value => value.to_string(),
                };
                self.env.push((name.to_string(), value));
            }
            return (0, String::new());
        }
        let line = command
            .trim_start_matches("cargo build --release && ")
            .replace("./target/release/kubectl-azflux ", "kubectl-azflux ")
            .replace("cargo run --release -- ", "kubectl-azflux ");
        // The sandbox's HOME and PATH (the binary as kubectl-azflux, the Flux stand-in).
        let sandboxed = self.sandbox.command();
        let mut shell = Command::new("sh");
        shell
            .arg("-c")
            .arg(&line)
            .current_dir(&self.cwd)
            .env_clear()
            .envs(sandboxed.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("NO_COLOR", "1")
            .env("GIT_AUTHOR_NAME", "Reader")
            .env("GIT_AUTHOR_EMAIL", "reader@example.com")
            .env("GIT_COMMITTER_NAME", "Reader")
            .env("GIT_COMMITTER_EMAIL", "reader@example.com");
        let output = shell.output().unwrap();
        let text = format!(
            "$ {command}\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code().unwrap_or(-1), text)
    }

    /// Runs a section's commands in order: each exits as expected, and the check IDs a
    /// command's comment names (`# AZF020 ...`) are in its output.
    fn play(&mut self, heading: &str, commands: &[String], codes: &[i32]) {
        assert_eq!(
            commands.len(),
            codes.len(),
            "{heading}: the README shows {commands:?}; tests/readme.rs expects {} commands",
            codes.len()
        );
        for (command, code) in commands.iter().zip(codes) {
            let (got, output) = self.run(command);
            assert_eq!(got, *code, "{heading}: {output}");
            let comment = command.split(" # ").nth(1).unwrap_or_default();
            for id in comment.split_whitespace().filter(|w| w.starts_with("AZF")) {
                assert!(output.contains(id), "{heading}: {id} not shown\n{output}");
            }
        }
    }
}

/// The cluster of the walkthrough: Flux on AKS with the webhook, an ACR source whose
/// controller nobody wired, and a tenant namespace pulling from ACR.
fn broken_aks() -> FakeConfig {
    let mut objects = flux::install(7);
    objects.push(flux::oci_repository(7, NS, "platform"));
    objects.push(flux::aks_webhook());
    objects.push(flux::aks_node());
    let pods: Vec<_> = flux::CONTROLLERS
        .iter()
        .map(|c| flux::pod_of(&objects, c, false))
        .collect();
    objects.extend(pods);
    objects.push(serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "team-a"}}));
    objects.push(flux::oci_repository(7, "team-a", "apps"));
    FakeConfig {
        objects,
        issuer: Some("https://westeurope.oic.prod-aks.azure.com/tenant/cluster/".into()),
        ..FakeConfig::default()
    }
}

/// A repository as `flux bootstrap` leaves it, committed, with a remote to push to.
fn bootstrap_repository(cwd: &Path) {
    let folder = cwd.join("clusters/prod/flux-system");
    let mut components = flux::install(7);
    components.retain(|o| o["kind"] != "CustomResourceDefinition");
    write_yaml(&folder.join("gotk-components.yaml"), &components);
    write_yaml(
        &folder.join("gotk-sync.yaml"),
        &[flux::oci_repository(7, NS, "platform")],
    );
    std::fs::write(
        folder.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- gotk-components.yaml\n- gotk-sync.yaml\n",
    )
    .unwrap();
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args(args)
            .current_dir(cwd)
            .env("GIT_AUTHOR_NAME", "Flux")
            .env("GIT_AUTHOR_EMAIL", "flux@example.com")
            .env("GIT_COMMITTER_NAME", "Flux")
            .env("GIT_COMMITTER_EMAIL", "flux@example.com")
            .output()
            .unwrap();
        assert!(status.status.success(), "git {args:?}: {status:?}");
    };
    let remote = cwd.with_file_name("remote.git");
    git(&["init", "-q", "--bare", remote.to_str().unwrap()]);
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "flux bootstrap"]);
    git(&["remote", "add", "origin", remote.to_str().unwrap()]);
    git(&["push", "-q", "-u", "origin", "main"]);
}

const SUBSCRIPTION: &str = "0b1f6471-1bf0-4dda-aec3-cb9272f09590";
const LOGIN_CLIENT: &str = "9a0c1b2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d";

/// The fleet's Azure: one subscription with one AKS cluster (managed Entra ID, workload
/// identity) served by a fake API server, and a service principal with Reader and Cluster
/// User on the subscription; both endpoints on the fakes, and kubelogin a stub.
fn fleet(scene: &mut Scene) {
    let server = RunningServer::start(FakeConfig {
        objects: flux::healthy_aks(7),
        issuer: Some("https://westeurope.oic.prod-aks.azure.com/tenant/cluster/".into()),
        ..FakeConfig::default()
    });
    let id = format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-weu/providers/Microsoft.ContainerService/managedClusters/aks-prod"
    );
    let role = |role: &str| RoleAssignment {
        principal_id: LOGIN_OBJECT_ID.into(),
        role: role.into(),
        scope: format!("/subscriptions/{SUBSCRIPTION}"),
        condition: None,
    };
    let azure = RunningAzure::start(FakeAzure {
        tenants: vec![TENANT_ID.into()],
        subscriptions: vec![SUBSCRIPTION.into()],
        logins: vec![Login {
            tenant_id: TENANT_ID.into(),
            client_id: LOGIN_CLIENT.into(),
            secret: "fleet-secret-value".into(),
        }],
        resources: vec![Resource {
            id: id.clone(),
            name: "aks-prod".into(),
            kind: "Microsoft.ContainerService/managedClusters".into(),
            properties: serde_json::json!({
                "location": "westeurope",
                "kubernetesVersion": "1.33",
                "currentKubernetesVersion": "1.33.2",
                "fqdn": "aks-prod-dns.hcp.westeurope.azmk8s.io",
                "aadProfile": {"managed": true, "tenantID": TENANT_ID},
                "oidcIssuerProfile": {"enabled": true},
                "securityProfile": {"workloadIdentity": {"enabled": true}},
            }),
        }],
        role_assignments: vec![role(AKS_CLUSTER_USER), role(READER)],
        api_servers: vec![(id, server.url())],
        scope: "https://management.azure.com/.default".into(),
        ..FakeAzure::default()
    });
    scene.sandbox.stub_kubelogin("kubelogin-token");
    scene.placeholders = vec![
        ("AZURE_CLIENT_ID", LOGIN_CLIENT.into()),
        ("AZURE_TENANT_ID", TENANT_ID.into()),
        ("AZURE_CLIENT_SECRET", "fleet-secret-value".into()),
    ];
    scene.env.extend([
        ("AZURE_AUTHORITY_HOST".to_string(), azure.url()),
        ("AZFLUX_ARM_ENDPOINT".to_string(), azure.url()),
    ]);
    scene.azure = Some(azure);
    scene.servers.push(server);
}

#[test]
fn every_command_block_runs_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let blocks = blocks(&readme);
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for block in blocks.iter().filter(|b| b.skipped.is_none()) {
        match sections.last_mut() {
            Some((heading, commands)) if *heading == block.heading => {
                commands.extend(block.commands.iter().cloned());
            }
            _ => sections.push((block.heading.clone(), block.commands.clone())),
        }
    }
    let mut ran = Vec::new();
    for (heading, commands) in &sections {
        let mut scene = Scene::new();
        match heading.as_str() {
            "Try it (no cluster needed)" => {
                // The example is read from the checkout, as on a fresh clone.
                scene.cwd = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
                scene.play(heading, commands, &[1, 0, 1, 0, 0]);
            }
            "Flux CLI plugin (Flux 2.9+)" => {
                scene.serve(demo::config().unwrap());
                scene.play(heading, commands, &[0, 1]);
            }
            "Walkthrough: from a broken cluster to a working one" => {
                scene.serve(broken_aks());
                bootstrap_repository(&scene.cwd);
                scene.play(heading, commands, &[0, 0, 0, 0, 0, 0, 0, 0, 0]);
            }
            h if h.starts_with("Fleet: AKS clusters") => {
                fleet(&mut scene);
                scene.play(heading, commands, &[0, 0, 0, 1]);
            }
            other => panic!(
                "README section {other:?} has commands no scene here runs: {commands:?}; run them in tests/readme.rs or mark the block with {SKIP_MARK:?}"
            ),
        }
        ran.push(heading.as_str());
    }
    assert_eq!(ran.len(), 4, "{ran:?}");
    for block in blocks.iter().filter(|b| b.skipped.is_some()) {
        assert!(
            block.skipped.as_ref().is_some_and(|why| why.len() > 10),
            "a block not run says why: {block:?}"
        );
    }
}
