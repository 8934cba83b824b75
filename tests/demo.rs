//! The live demo's cluster (`cargo run -p fake-apiserver -- --demo`): the bundled broken
//! example on a fake AKS cluster, diagnosed by `doctor` and repaired by `enable --apply` as
//! the README's "Try it" section says.

#[path = "support/mod.rs"]
mod support;

use support::fake_apiserver::demo;
use support::flux::{CLIENT_ID, TENANT_ID};
use support::run::Cluster;

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
