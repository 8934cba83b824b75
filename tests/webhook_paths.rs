//! Where the workload identity webhook puts the token, by release (Azure/azure-workload-identity
//! `pkg/webhook/consts.go`: /var/run/secrets/azure/tokens/azure-identity-token up to v1.5.x,
//! /var/run/secrets/azure/wi/token/azure-identity-token from v1.6.0), and what AZF029 says of a
//! pod template that pins AZURE_FEDERATED_TOKEN_FILE, which the webhook leaves as set.

#[path = "support/mod.rs"]
mod support;

use serde_json::{Value, json};
use support::flux;
use support::run::{Cluster, Outcome, Sandbox};

const MINOR: u32 = 7;
const AKS_ISSUER: &str = "https://westeurope.oic.prod-aks.azure.com/72f988bf-86f1-41af-91ab-2d7cd011db47/5c8a3f6b-1d2e-4f5a-9b7c-0d1e2f3a4b5c/";
const BEFORE_1_6: &str = "/var/run/secrets/azure/tokens/azure-identity-token";
const SINCE_1_6: &str = "/var/run/secrets/azure/wi/token/azure-identity-token";

fn object<'a>(objects: &'a mut [Value], kind: &str, name: &str) -> &'a mut Value {
    objects
        .iter_mut()
        .find(|o| {
            o["kind"] == kind
                && o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with(name)
        })
        .expect("object")
}

/// `healthy_aks` with source-controller's template setting the token file to `path`.
fn pinned(path: &str) -> Vec<Value> {
    let mut objects = flux::healthy_aks(MINOR);
    let deploy = object(&mut objects, "Deployment", "source-controller");
    deploy["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "AZURE_FEDERATED_TOKEN_FILE", "value": path}));
    objects
}

/// Makes the running source-controller pod look mutated by webhook v1.6.0: its reserved volume
/// at /var/run/secrets/azure/wi (`pkg/webhook/webhook.go` `addProjectedVolume` at v1.6.0).
fn mutated_by_1_6(objects: &mut [Value]) {
    let pod = object(objects, "Pod", "source-controller-");
    let volume = pod["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|v| v["name"] == "azure-identity-token")
        .unwrap();
    volume["name"] =
        json!("azure-workload-identity-reserved-6b1d9c0e2f4a8b7c3d5e1f0a9b8c7d6e5f4a3b2c1");
    volume["projected"]["sources"][0]["serviceAccountToken"]["path"] =
        json!("token/azure-identity-token");
}

fn token_path(out: &Outcome) -> Vec<(String, String, String)> {
    let report = out.json();
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["name"] == "token-path-mismatch")
        .map(|f| {
            (
                f["subject"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                f["severity"].as_str().unwrap_or_default().to_string(),
                f["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn offline(objects: &[Value]) -> Outcome {
    let sandbox = Sandbox::new();
    let dir = sandbox.path("wired");
    support::run::write_yaml(&dir.join("flux.yaml"), objects);
    sandbox.run(&["doctor", "-o", "json", "-f", &dir.display().to_string()])
}

#[test]
fn a_pinned_token_path_is_judged_against_the_webhook_release_the_pods_show() {
    // Live, the pods were mutated by a release before v1.6.0: its own path is a warning (an
    // upgrade breaks it), the v1.6.0 path an error.
    let out = Cluster::with_objects(pinned(BEFORE_1_6), AKS_ISSUER).doctor(&[]);
    let found = token_path(&out);
    assert!(
        found.len() == 1
            && found[0].0 == "source-controller"
            && found[0].1 == "warning"
            && found[0]
                .2
                .contains("right for the installed webhook (webhook releases v1.0.0 to v1.5.x)")
            && found[0].2.contains(SINCE_1_6),
        "{found:#?}"
    );
    let out = Cluster::with_objects(pinned(SINCE_1_6), AKS_ISSUER).doctor(&[]);
    let found = token_path(&out);
    assert!(
        found.len() == 1
            && found[0].1 == "error"
            && found[0]
                .2
                .contains("the installed webhook is webhook releases v1.0.0 to v1.5.x")
            && found[0].2.contains(BEFORE_1_6),
        "{found:#?}"
    );

    // Pods mutated by v1.6.0: the old path is the broken one.
    let mut objects = pinned(BEFORE_1_6);
    mutated_by_1_6(&mut objects);
    let out = Cluster::with_objects(objects, AKS_ISSUER).doctor(&[]);
    let found = token_path(&out);
    assert!(
        found.len() == 1
            && found[0].1 == "error"
            && found[0].2.contains("webhook v1.6.0 and later, which mounts it at /var/run/secrets/azure/wi/token/azure-identity-token"),
        "{found:#?}"
    );
    let report = out.json();
    let fix = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "token-path-mismatch")
        .unwrap()["fix"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        fix,
        r#"kubectl patch deployment source-controller -n flux-system -p '{"spec":{"template":{"spec":{"containers":[{"env":[{"$patch":"delete","name":"AZURE_FEDERATED_TOKEN_FILE"}],"name":"manager"}]}}}}'"#
    );

    // Without the variable in the template the webhook sets it: nothing to say, whichever
    // release mutated the pods.
    let mut objects = flux::healthy_aks(MINOR);
    mutated_by_1_6(&mut objects);
    let out = Cluster::with_objects(objects, AKS_ISSUER).doctor(&[]);
    assert_eq!(
        out.status("token-path-mismatch"),
        "pass",
        "{:#?}",
        token_path(&out)
    );
    assert_eq!(out.status("pod-not-mutated"), "pass");
}

#[test]
fn manifests_say_which_release_a_pinned_path_belongs_to() {
    let found = token_path(&offline(&pinned(SINCE_1_6)));
    assert!(
        found.len() == 1
            && found[0].1 == "warning"
            && found[0]
                .2
                .contains("the path of webhook v1.6.0 and later only"),
        "{found:#?}"
    );
    let found = token_path(&offline(&pinned("/var/run/secrets/tokens/azure-token")));
    assert!(
        found.len() == 1
            && found[0].1 == "error"
            && found[0]
                .2
                .contains("where no webhook release mounts the token"),
        "{found:#?}"
    );
}
