//! The command line itself: help, version, explain, and the plugin names it answers to.

#[path = "support/mod.rs"]
mod support;

use support::run::{BIN, Sandbox};

#[test]
fn explain_prints_a_check_by_id_or_name() {
    let sandbox = Sandbox::new();
    let by_id = sandbox.run(&["explain", "AZF025"]);
    assert_eq!(by_id.code, 0);
    assert!(
        by_id
            .stdout
            .starts_with("AZF025 label-on-wrong-object (error, Flux controllers)"),
        "{}",
        by_id.stdout
    );
    assert!(by_id.stdout.contains("Fix:"));
    let by_name = sandbox.run(&["explain", "label-on-wrong-object", "-o", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&by_name.stdout).unwrap();
    assert_eq!(doc["id"], "AZF025");
    assert_eq!(doc["severity"], "error");
    assert_eq!(
        doc["title"],
        "The azure.workload.identity/use label is on the wrong object"
    );
    assert_eq!(
        doc["healthy"],
        "The azure.workload.identity/use label is on the pod template"
    );
    assert!(
        by_id.stdout.contains(
            "\nFinding: The azure.workload.identity/use label is on the wrong object\nPassed:  The azure.workload.identity/use label is on the pod template\n"
        ),
        "{}",
        by_id.stdout
    );
    let unknown = sandbox.run(&["explain", "AZF999"]);
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("no check \"AZF999\""));
}

#[test]
fn version_names_the_commit() {
    let out = Sandbox::new().run(&["version"]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.starts_with(&format!(
            "kubectl-azflux {} (commit ",
            env!("CARGO_PKG_VERSION")
        )),
        "{}",
        out.stdout
    );
}

#[test]
fn help_documents_exit_codes_and_kubectl_flags() {
    let out = Sandbox::new().run(&["doctor", "--help"]);
    assert_eq!(out.code, 0);
    for needle in [
        "Exit codes:",
        "--kubeconfig",
        "--context",
        "--request-timeout",
        "--as-group",
        "--fail-on",
        "Usage: kubectl azflux doctor",
    ] {
        assert!(
            out.stdout.contains(needle),
            "missing {needle}: {}",
            out.stdout
        );
    }
}

#[test]
fn bad_flags_exit_2() {
    let out = Sandbox::new().run(&["doctor", "--fail-on", "sometimes"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--fail-on"), "{}", out.stderr);
}

#[cfg(unix)]
#[test]
fn invoked_as_flux_plugin_it_says_flux_azflux() {
    let sandbox = Sandbox::new();
    let link = sandbox.path("flux-azflux");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let output = std::process::Command::new(&link)
        .arg("--help")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Usage: flux azflux"), "{stdout}");
}

#[test]
fn explain_lists_every_check_and_suggests_the_one_meant() {
    let sandbox = Sandbox::new();
    let list = sandbox.run(&["explain", "--list"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert!(
        lines[0].starts_with("AZF000  state-unreadable"),
        "{}",
        list.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("AZF041  secret-overrides-workload-identity")),
        "{}",
        list.stdout
    );
    let json = sandbox.run(&["explain", "--list", "-o", "json"]);
    let checks: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(checks.as_array().unwrap().len(), lines.len());
    for check in checks.as_array().unwrap() {
        let (title, healthy) = (check["title"].as_str(), check["healthy"].as_str());
        assert!(
            title.is_some() && healthy.is_some() && title != healthy,
            "{check}"
        );
    }
    let typo = sandbox.run(&["explain", "sa-missing-tenant"]);
    assert_eq!(typo.code, 2);
    assert!(
        typo.stderr
            .contains("did you mean AZF022 sa-missing-tenant-id?"),
        "{}",
        typo.stderr
    );
}

/// `--select`/`--ignore` choose the checks a run reports (ruff's habit); the
/// `azflux.io/ignore` annotation silences checks on the one object that carries it.
#[test]
fn checks_are_selected_ignored_and_silenced_per_object() {
    use serde_json::json;
    use support::flux::{self, NS};
    let sandbox = Sandbox::new();
    let mut objects = flux::install(7);
    flux::wire_webhook(&mut objects, "source-controller");
    flux::wire_webhook(&mut objects, "kustomize-controller");
    for controller in ["source-controller", "kustomize-controller"] {
        let sa = flux::find(&mut objects, "ServiceAccount", controller);
        sa["metadata"]["annotations"] =
            json!({"azure.workload.identity/client-id": flux::CLIENT_ID});
    }
    objects.push(flux::oci_repository(7, NS, "app"));
    let file = sandbox.path("flux.yaml");
    support::run::write_yaml(&file, &objects);
    let file_arg = file.display().to_string();
    let doctor = |extra: &[&str]| {
        let mut args = vec!["doctor", "-o", "json", "-f", file_arg.as_str()];
        args.extend_from_slice(extra);
        sandbox.run(&args)
    };
    let all = doctor(&[]);
    assert!(
        all.finding_names()
            .contains(&"sa-missing-tenant-id".to_string())
    );
    let selected = doctor(&["--select", "AZF022,controller-identity-unused"]);
    let ids: Vec<String> = selected.json()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["AZF022", "AZF032"]);
    let ignored = doctor(&["--ignore", "sa-missing-tenant-id"]);
    assert!(
        !ignored
            .finding_names()
            .contains(&"sa-missing-tenant-id".to_string())
    );
    let unknown = doctor(&["--ignore", "AZF99"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("--ignore: no check \"AZF99\""),
        "{}",
        unknown.stderr
    );

    // Silenced on kustomize-controller's ServiceAccount only.
    let sa = flux::find(&mut objects, "ServiceAccount", "kustomize-controller");
    sa["metadata"]["annotations"]["azflux.io/ignore"] = json!("AZF022");
    support::run::write_yaml(&file, &objects);
    let silenced = doctor(&[]);
    let tenant: Vec<String> = silenced
        .findings()
        .into_iter()
        .filter(|f| f.0 == "sa-missing-tenant-id")
        .map(|f| f.1)
        .collect();
    assert_eq!(tenant, ["flux-system/ServiceAccount/source-controller"]);
}

/// kubectl's habits: own flags first and the connection flags under their own heading,
/// examples in the help, `-o yaml`, `-q`, `-A`.
#[test]
fn help_and_output_follow_kubectl_habits() {
    let sandbox = Sandbox::new();
    for command in ["doctor", "enable", "explain", "clusters"] {
        let help = sandbox.run(&[command, "--help"]);
        assert_eq!(help.code, 0, "{command}");
        assert!(
            help.stdout.contains("\nExamples:\n"),
            "{command}: {}",
            help.stdout
        );
        let own = help.stdout.find("\nOptions:\n").unwrap();
        let kubectl = help.stdout.find("\nKubectl and Flux flags:\n").unwrap();
        let kubeconfig = help.stdout.find("--kubeconfig").unwrap();
        assert!(
            own < kubectl && kubectl < kubeconfig,
            "{command}: {}",
            help.stdout
        );
    }
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/broken-aks");
    let json = sandbox.run(&["doctor", "-k", example, "-o", "json"]);
    let yaml = sandbox.run(&["doctor", "-k", example, "-o", "yaml"]);
    assert_eq!(json.code, yaml.code);
    let from_yaml: serde_json::Value = serde_saphyr::from_str(&yaml.stdout).unwrap();
    assert_eq!(from_yaml, json.json());
    let quiet = sandbox.run(&["doctor", "-k", example, "-q"]);
    assert_eq!(quiet.code, json.code);
    assert_eq!(quiet.stdout, "");
    let all = sandbox.run(&["doctor", "-k", example, "-A", "-o", "json"]);
    assert_eq!(all.json()["findings"], json.json()["findings"]);
    let both = sandbox.run(&["doctor", "-k", example, "-A", "-n", "apps"]);
    assert_eq!(both.code, 2, "{}", both.stderr);
}

/// Completion offers the kubeconfig's contexts (merged from KUBECONFIG, as kubectl merges it)
/// and the namespaces they name, without contacting any cluster.
#[test]
fn completion_offers_contexts_and_namespaces_from_the_kubeconfig() {
    let sandbox = Sandbox::new();
    let config = sandbox.write(
        "config",
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user: {}\ncontexts:\n- name: aks-prod\n  context: {cluster: c, user: u, namespace: apps}\n- name: aks-dev\n  context: {cluster: c, user: u}\ncurrent-context: aks-prod\n",
    );
    let complete = |words: &[&str]| {
        let output = sandbox
            .command()
            .env("KUBECONFIG", &config)
            .arg("__complete")
            .args(words)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| !l.starts_with(':'))
            .map(|l| l.split('\t').next().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        complete(&["doctor", "--context", "aks-"]),
        ["aks-prod", "aks-dev"]
    );
    assert_eq!(
        complete(&["doctor", "--contexts", "aks-prod,"]),
        ["aks-prod,aks-dev"]
    );
    assert_eq!(complete(&["doctor", "-n", ""]), ["apps", "flux-system"]);
}
