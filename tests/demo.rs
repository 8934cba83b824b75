//! The live demo's cluster (`cargo run -p fake-apiserver -- --demo`): the bundled broken
//! example on a fake AKS cluster, diagnosed by `doctor` and repaired by `enable --apply` as
//! the README's "Try it" section says.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use support::fake_apiserver::demo;
use support::flux::{CLIENT_ID, TENANT_ID};

use support::run::{Cluster, Sandbox};

#[test]
fn doctor_finds_the_example_broken_and_enable_apply_repairs_it() {
    let cluster = Cluster::start(demo::config().unwrap());
    let before = cluster.doctor(&["--azure=never"]);
    assert_eq!(before.code, 1, "{}", before.stdout);
    let names = before.finding_names();
    for expected in [
        "label-on-wrong-object",
        "identity-annotation-malformed",
        "pod-not-mutated",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
    }

    let kubeconfig = cluster.kubeconfig.display().to_string();
    let enable = cluster.sandbox.run(&[
        "enable",
        "--kubeconfig",
        &kubeconfig,
        "--client-id",
        CLIENT_ID,
        "--tenant-id",
        TENANT_ID,
        "--overwrite",
        "--force-conflicts",
        "--apply",
        "--timeout",
        "30s",
    ]);
    assert_eq!(enable.code, 0, "{}\n{}", enable.stdout, enable.stderr);
    assert!(
        !cluster.server.writes().is_empty(),
        "enable --apply wrote to the cluster"
    );

    let after = cluster.doctor(&["--azure=never"]);
    assert_eq!(after.code, 0, "{}", after.stdout);
    assert_eq!(after.finding_names(), Vec::<String>::new());
}

/// The last line of the bundled example's text report is pasted as a person would: with the
/// identity's IDs in place of the placeholders and the ` \` continuations read back by a shell.
/// Run on a copy of the example, it leaves nothing for doctor to find.
#[test]
fn the_closing_fix_of_the_bundled_example_repairs_a_copy_of_it() {
    let sandbox = Sandbox::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/broken-aks");
    let copy = sandbox.path("broken-aks");
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(&example).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    let report = sandbox
        .command()
        .current_dir(sandbox.dir.path())
        .args(["doctor", "-f", "broken-aks"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&report.stdout).into_owned();
    let last = text
        .split("\nFix ")
        .nth(1)
        .and_then(|tail| tail.split_once(": "))
        .map_or_else(
            || panic!("no closing fix:\n{text}"),
            |(_, command)| command.replace(" \\\n", " "),
        );
    let pasted = last
        .trim()
        .replace("CLIENT_ID", CLIENT_ID)
        .replace("TENANT_ID", TENANT_ID);
    let words: Vec<&str> = pasted.split_whitespace().collect();
    assert_eq!(words[..2], ["kubectl", "azflux"], "{pasted}");
    let enable = sandbox
        .command()
        .current_dir(sandbox.dir.path())
        .args(&words[2..])
        .output()
        .unwrap();
    assert!(
        enable.status.success(),
        "{pasted}\n{}",
        String::from_utf8_lossy(&enable.stderr)
    );
    let after = sandbox
        .command()
        .current_dir(sandbox.dir.path())
        .args(["doctor", "-o", "json", "-f", "broken-aks", "--azure=never"])
        .output()
        .unwrap();
    let after = support::run::Outcome {
        code: after.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&after.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&after.stderr).into_owned(),
    };
    assert_eq!(after.code, 0, "{}", after.stdout);
    assert_eq!(after.finding_names(), Vec::<String>::new());
}
