//! The fake kube-apiserver seeded with each real Flux install in `../shared/corpus` (not part
//! of the project), read as `flux install --export` wrote it, and listed by real kubectl.
//! `.ci/run` runs these with `--ignored` when the corpus is present.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::fake_apiserver::{FakeConfig, KubeUser, RunningServer};

const INSTALLS: &[&str] = &[
    "00-gotk-v0.41.2",
    "01-gotk-v2.2.3",
    "02-gotk-v2.3.0",
    "03-gotk-v2.4.0",
    "04-gotk-v2.5.1",
    "05-gotk-v2.6.4",
    "06-gotk-v2.7.5",
    "07-gotk-v2.8.8",
    "08-gotk-v2.9.3",
];

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
}

/// `(kind, namespace, name)` of the NetworkPolicies and ResourceQuotas in the install file,
/// read straight from it.
fn declared(file: &Path) -> BTreeSet<(String, String, String)> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut options = serde_saphyr::Options::default();
    options.budget = None;
    let documents: Vec<Value> = serde_saphyr::from_multiple_with_options(&text, options).unwrap();
    documents
        .iter()
        .filter(|d| matches!(d["kind"].as_str(), Some("NetworkPolicy" | "ResourceQuota")))
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_owned(),
                d["metadata"]["namespace"].as_str().unwrap().to_owned(),
                d["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
#[ignore = "needs ../shared/corpus; .ci/run runs it when the folder is present"]
fn every_flux_install_loads_unmodified_and_kubectl_lists_its_policies_and_quotas() {
    for install in INSTALLS {
        let dir = corpus().join(install);
        let expected = declared(&dir.join("gotk-components.yaml"));
        assert!(
            expected.iter().any(|(kind, _, _)| kind == "NetworkPolicy"),
            "{install} declares NetworkPolicies"
        );
        let config = FakeConfig::from_seed_dir(&dir).unwrap_or_else(|e| panic!("{install}: {e}"));
        let server = RunningServer::start(config);
        let home = tempfile::tempdir().unwrap();
        let kubeconfig = home.path().join("kubeconfig");
        server
            .write_kubeconfig(&kubeconfig, KubeUser::Token("t".to_owned()))
            .unwrap();
        let out = Command::new(std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned()))
            .args(["get", "networkpolicies,resourcequotas", "-A", "-o", "json"])
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", home.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{install}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
        let listed: BTreeSet<(String, String, String)> = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                (
                    item["kind"].as_str().unwrap().to_owned(),
                    item["metadata"]["namespace"].as_str().unwrap().to_owned(),
                    item["metadata"]["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(listed, expected, "{install}");
    }
}
