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
