//! Azure Service Operator objects: the role assignments a team declares next to its identity
//! and federated credentials, judged offline (AZF074) on manifests written for these tests.

// Scenario tests read top to bottom, however long.
#![allow(clippy::too_many_lines)]

#[path = "support/mod.rs"]
mod support;

use serde_json::{Value, json};
use support::flux::{self, NS};
use support::run::Outcome;

const MINOR: u32 = 7;
const ISSUER: &str = "https://westeurope.oic.prod-aks.azure.com/72f988bf-86f1-41af-91ab-2d7cd011db47/5c8a3f6b-1d2e-4f5a-9b7c-0d1e2f3a4b5c/";
const SC_SUBJECT: &str = "system:serviceaccount:flux-system:source-controller";
const SUB: &str = "0b1f6471-1bf0-4dda-aec3-cb9272f09590";
const ACR_PULL_GUID: &str = "7f951dda-4ed3-4680-a7ca-43fe172d538d";

fn registry_id(name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/rg-acr/providers/Microsoft.ContainerRegistry/registries/{name}"
    )
}

fn role_id(guid: &str) -> String {
    format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{guid}")
}

/// The identity, its ConfigMap of IDs and the credential of source-controller, as a team
/// keeps them in Git.
fn identity_objects() -> Vec<Value> {
    vec![
        json!({"apiVersion": "managedidentity.azure.com/v1api20230131", "kind": "UserAssignedIdentity",
            "metadata": {"name": "flux-source", "namespace": NS},
            "spec": {"location": "westeurope", "owner": {"name": "rg-flux"},
                "operatorSpec": {"configMaps": {
                    "principalId": {"name": "flux-source-ids", "key": "principalId"},
                    "clientId": {"name": "flux-source-ids", "key": "clientId"}}}}}),
        json!({"apiVersion": "managedidentity.azure.com/v1api20230131", "kind": "FederatedIdentityCredential",
            "metadata": {"name": "source-controller", "namespace": NS},
            "spec": {"owner": {"name": "flux-source"}, "issuer": ISSUER, "subject": SC_SUBJECT,
                "audiences": ["api://AzureADTokenExchange"]}}),
    ]
}

/// A RoleAssignment of the identity, with `owner` and `roleDefinitionReference` as given.
fn role_assignment(name: &str, owner: &Value, role: &Value) -> Value {
    json!({"apiVersion": "authorization.azure.com/v1api20220401", "kind": "RoleAssignment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"owner": owner, "roleDefinitionReference": role,
            "principalIdFromConfig": {"name": "flux-source-ids", "key": "principalId"},
            "principalType": "ServicePrincipal"}})
}

fn doctor_offline(extra: Vec<Value>) -> Outcome {
    let sandbox = support::run::Sandbox::new();
    let mut objects = flux::healthy_aks(MINOR);
    objects.extend(identity_objects());
    objects.extend(extra);
    let dir = sandbox.path("aso");
    support::run::write_yaml(&dir.join("flux.yaml"), &objects);
    let dir = dir.display().to_string();
    sandbox.run(&["doctor", "-o", "json", "-f", &dir, "--azure=never"])
}

fn declared(out: &Outcome) -> Vec<(String, String, String)> {
    let report = out.json();
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["name"] == "declared-role-missing")
        .map(|f| {
            let s = &f["subject"];
            (
                format!(
                    "{}/{}/{}",
                    s["namespace"].as_str().unwrap_or_default(),
                    s["kind"].as_str().unwrap_or_default(),
                    s["name"].as_str().unwrap_or_default()
                ),
                f["severity"].as_str().unwrap_or_default().to_string(),
                f["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn declared_role_assignments_are_judged_offline_by_what_the_role_allows() {
    let registry = json!({"armId": registry_id("contoso")});
    // AcrPull by ARM ID on the registry: covered. So is AcrPush by its well-known name, and
    // AcrPull on the registry's resource group, when the declared registry says it is there.
    for objects in [
        vec![role_assignment(
            "pull",
            &registry,
            &json!({"armId": role_id(ACR_PULL_GUID)}),
        )],
        vec![role_assignment(
            "push",
            &registry,
            &json!({"wellKnownName": "AcrPush"}),
        )],
        vec![
            json!({"apiVersion": "resources.azure.com/v1api20200601", "kind": "ResourceGroup",
                "metadata": {"name": "acr-group", "namespace": NS}, "spec": {"azureName": "rg-acr", "location": "westeurope"}}),
            json!({"apiVersion": "containerregistry.azure.com/v1api20230701", "kind": "Registry",
                "metadata": {"name": "acr", "namespace": NS}, "spec": {"azureName": "contoso", "owner": {"name": "acr-group"}}}),
            role_assignment(
                "group-pull",
                &json!({"group": "resources.azure.com", "kind": "ResourceGroup", "name": "acr-group"}),
                &json!({"wellKnownName": "AcrPull"}),
            ),
        ],
    ] {
        let out = doctor_offline(objects);
        assert_eq!(
            out.status("declared-role-missing"),
            "pass",
            "{:#?}",
            declared(&out)
        );
    }

    // A role that does not pull, on the registry itself: an error naming it.
    let out = doctor_offline(vec![role_assignment(
        "wrong-role",
        &registry,
        &json!({"wellKnownName": "Storage Blob Data Reader"}),
    )]);
    let found = declared(&out);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].0, "flux-system/ServiceAccount/source-controller");
    assert_eq!(found[0].1, "error");
    assert!(
        found[0].2.contains("RoleAssignment flux-system/wrong-role grants Storage Blob Data Reader on registry contoso")
            && found[0].2.contains("Microsoft.ContainerRegistry/registries/pull/read")
            && found[0].2.contains("flux-system/OCIRepository/platform"),
        "{}",
        found[0].2
    );

    // AcrPull on another registry: a warning (it may be granted outside Git), with the fix.
    let out = doctor_offline(vec![role_assignment(
        "elsewhere",
        &json!({"armId": registry_id("fabrikam")}),
        &json!({"wellKnownName": "AcrPull"}),
    )]);
    let found = declared(&out);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].1, "warning");
    let report = out.json();
    let fix = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "declared-role-missing")
        .unwrap()["fix"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        fix.contains(ACR_PULL_GUID)
            && fix.contains(
                "principalIdFromConfig:\n    key: principalId\n    name: flux-source-ids"
            ),
        "{fix}"
    );

    // Left to substitutions, or a custom role: unresolved, an info, never wrong.
    let out = doctor_offline(vec![role_assignment(
        "later",
        &json!({"armId": "${REGISTRY_ID}"}),
        &json!({"armId": role_id(ACR_PULL_GUID)}),
    )]);
    let found = declared(&out);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].1, "info");
    assert!(
        found[0].2.contains("owner armId ${REGISTRY_ID}"),
        "{}",
        found[0].2
    );
    let out = doctor_offline(vec![role_assignment(
        "custom",
        &registry,
        &json!({"armId": role_id("0000aaaa-0000-4000-8000-000000000000")}),
    )]);
    let found = declared(&out);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].1, "info");
    assert!(
        found[0].2.contains("custom role is read with --azure"),
        "{}",
        found[0].2
    );
}

#[test]
fn declared_conditions_limit_the_repositories_a_role_reaches() {
    let condition = |repository: &str| {
        let mut a = role_assignment(
            "scoped",
            &json!({"armId": registry_id("contoso")}),
            &json!({"wellKnownName": "AcrPull"}),
        );
        a["spec"]["condition"] = json!(format!(
            "((!(ActionMatches{{'Microsoft.ContainerRegistry/registries/pull/read'}})) OR (@Request[Microsoft.ContainerRegistry/registries/repositories:name] StringEqualsIgnoreCase '{repository}'))"
        ));
        a["spec"]["conditionVersion"] = json!("2.0");
        a
    };
    let out = doctor_offline(vec![condition("manifests/app")]);
    assert_eq!(
        out.status("declared-role-missing"),
        "pass",
        "{:#?}",
        declared(&out)
    );
    let out = doctor_offline(vec![condition("charts/db")]);
    let found = declared(&out);
    assert!(
        found.len() == 1
            && found[0].1 == "error"
            && found[0]
                .2
                .contains("condition that excludes repository manifests/app"),
        "{found:#?}"
    );
}

#[test]
fn identities_whose_roles_are_not_declared_are_left_alone() {
    // An assignment for another identity's ConfigMap says nothing about this one.
    let mut other = role_assignment(
        "other",
        &json!({"armId": registry_id("fabrikam")}),
        &json!({"wellKnownName": "AcrPull"}),
    );
    other["spec"]["principalIdFromConfig"]["name"] = json!("someone-else");
    let out = doctor_offline(vec![other]);
    assert_eq!(
        out.status("declared-role-missing"),
        "pass",
        "{:#?}",
        declared(&out)
    );
    // No RoleAssignment at all: nothing to judge.
    let out = doctor_offline(vec![]);
    assert_eq!(out.status("declared-role-missing"), "pass");
}

/// A live cluster serving ASO's CRDs, with the identity objects and `extra` in it.
fn live(extra: Vec<Value>, faults: Vec<support::fake_apiserver::Fault>) -> Outcome {
    let mut objects = flux::healthy_aks(MINOR);
    objects.extend(flux::aso_crds());
    objects.extend(identity_objects());
    objects.extend(extra);
    let cluster = support::run::Cluster::start(support::fake_apiserver::FakeConfig {
        objects,
        issuer: Some(ISSUER.into()),
        faults,
        ..support::fake_apiserver::FakeConfig::default()
    });
    cluster.doctor(&["--azure=never"])
}

#[test]
fn aso_objects_in_the_cluster_are_read_and_judged_like_manifests() {
    // The CRDs are served: the RoleAssignment and the credentials are read live.
    let wrong = role_assignment(
        "wrong-role",
        &json!({"armId": registry_id("contoso")}),
        &json!({"wellKnownName": "Storage Blob Data Reader"}),
    );
    let mut audience = identity_objects()[1].clone();
    audience["metadata"]["name"] = json!("typo");
    audience["spec"]["audiences"] = json!(["api://AzureADTokenExchange "]);
    let out = live(vec![wrong.clone(), audience], vec![]);
    let found = declared(&out);
    assert!(
        found.len() == 1 && found[0].1 == "error" && found[0].2.contains("wrong-role"),
        "{found:#?}\n{}",
        out.stderr
    );
    let fic: Vec<_> = out
        .findings()
        .into_iter()
        .filter(|f| f.0 == "declared-fic-mismatch")
        .collect();
    assert_eq!(
        fic,
        vec![(
            "declared-fic-mismatch".into(),
            "flux-system/FederatedIdentityCredential/typo".into(),
            "error".into()
        )]
    );
    let right = role_assignment(
        "pull",
        &json!({"armId": registry_id("contoso")}),
        &json!({"wellKnownName": "AcrPull"}),
    );
    let out = live(vec![right.clone()], vec![]);
    assert_eq!(
        out.status("declared-role-missing"),
        "pass",
        "{:#?}",
        declared(&out)
    );
    assert_eq!(out.status("declared-fic-mismatch"), "pass");

    // Forbidden to list RoleAssignments: a note, no failure, and the rest still read.
    let forbidden = support::fake_apiserver::Fault::new(
        "roleassignments",
        403,
        support::fake_apiserver::FaultBehaviour::Status,
    );
    let out = live(vec![wrong], vec![forbidden]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.status("declared-role-missing"), "pass");
    let notes = out.json()["inputNotes"].to_string();
    assert!(
        notes.contains("roleassignments not read: forbidden"),
        "{notes}"
    );
    assert_eq!(out.status("state-unreadable"), "pass");
}

#[test]
fn a_cluster_without_aso_has_nothing_to_read() {
    let cluster = support::run::Cluster::with_objects(flux::healthy_aks(MINOR), ISSUER);
    let out = cluster.doctor(&["--azure=never"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.status("declared-role-missing"), "pass");
    let asked: Vec<String> = cluster
        .server
        .requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.contains("azure.com"))
        .collect();
    assert!(
        asked
            .iter()
            .all(|p| p.starts_with("/apis/managedidentity.azure.com")
                || p.starts_with("/apis/authorization.azure.com")),
        "{asked:#?}"
    );
    assert!(
        asked.iter().all(|p| p.split('/').count() == 3),
        "only discovery: {asked:#?}"
    );
}
