//! AZF074: the role assignments a team declares in Git as Azure Service Operator objects,
//! judged without Azure credentials against what each Flux integration needs (see
//! `azure::declared`).

use std::collections::BTreeMap;

use super::{Area, Check, Findings, Severity};
use crate::azure::condition::Repository;
use crate::azure::declared::{self, Judgement, Principal};
use crate::azure::subjects::{SubjectUse, Target, WiSubject, subjects};
use crate::model::azure_use::{AzureService, join_words};
use crate::model::{DeclaredIdentity, DeclaredRoleAssignment, Skip};
use crate::resolve::Resolved;

pub static DECLARED_ROLE_MISSING: Check = Check {
    id: "AZF074",
    name: "declared-role-missing",
    area: Area::Azure,
    severity: Severity::Warning,
    title: "The role assignments declared in the manifests do not allow what a Flux integration does",
    healthy: "The role assignments declared in the manifests allow what Flux does",
    explanation: "Teams that keep their Azure side in Git declare role assignments as Azure \
Service Operator `RoleAssignment` objects (authorization.azure.com) next to the \
`UserAssignedIdentity` and `FederatedIdentityCredential` of a controller. doctor judges them \
offline, the way Azure RBAC will: the identity is the one whose federated credential names the \
ServiceAccount, and an assignment is its when `principalIdFromConfig` reads the ConfigMap the \
identity's `operatorSpec.configMaps.principalId` writes (or, with `--azure`, when \
`principalId` is its object ID); the scope is the `owner` (an ARM ID, or a registry, storage \
account, vault, Event Hubs namespace, cluster or resource group object); the role is the \
built-in role `roleDefinitionReference` names by `armId` or `wellKnownName`, judged by its \
actions and data actions (AcrPull's `Microsoft.ContainerRegistry/registries/pull/read` for a \
registry, `…/blobs/read` for a Bucket, `…/keys/decrypt/action` for SOPS, \
`…/messages/send/action` for a Provider); a condition is evaluated for the repository in use. \
Values left to a Flux post-build substitution (`${REGISTRY_ID}`), custom roles and scopes \
whose members the inputs do not show are reported as unresolved, not wrong. Only identities \
whose assignments the inputs declare are judged: the rest may be granted outside Git.",
    fix: "Declare a RoleAssignment owned by the resource (or its resource group) with the role \
the finding names, `principalIdFromConfig` pointing at the identity's ConfigMap; or correct the \
owner or role of the one named.",
    run: declared_role_missing,
};

/// The declared identity a ServiceAccount's tokens are federated with, through a declared
/// credential naming its subject.
fn declared_identity<'a>(
    snapshot: &'a Resolved,
    subject: &WiSubject,
) -> Option<&'a DeclaredIdentity> {
    let kube_subject = subject.subject();
    snapshot
        .declared_credentials
        .iter()
        .filter(|c| c.subject.as_deref() == Some(kube_subject.as_str()))
        .find_map(|c| {
            let owner = c.owner.as_deref()?;
            snapshot
                .declared_identities
                .iter()
                .find(|i| i.namespace == c.namespace && i.name == owner)
        })
}

fn objects_text(uses: &[&SubjectUse]) -> String {
    let names: Vec<String> = uses.iter().map(|u| u.object.to_string()).collect();
    join_words(&names)
}

type Group<'a> = (&'a Target, AzureService, Option<&'a Repository>);

fn declared_role_missing(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    if snapshot.declared_role_assignments.is_empty() {
        return Ok(());
    }
    let azure = snapshot.azure.known();
    for subject in subjects(snapshot) {
        let Some(identity) = declared_identity(snapshot, &subject) else {
            continue;
        };
        let principal_id = subject
            .valid_client_id()
            .and_then(|c| azure.and_then(|s| s.identity(c)))
            .map(|i| i.principal_id.as_str());
        let mut mine = Vec::new();
        let mut unresolved = Vec::new();
        for assignment in &snapshot.declared_role_assignments {
            match declared::principal_of(assignment, identity, principal_id) {
                Principal::Identity => mine.push(assignment),
                Principal::Unresolved(why) => unresolved.push((assignment, why)),
                Principal::Other => {}
            }
        }
        if mine.is_empty() {
            continue;
        }
        let mut groups: BTreeMap<Group<'_>, Vec<&SubjectUse>> = BTreeMap::new();
        for use_ in &subject.uses {
            groups
                .entry((&use_.target, use_.service, use_.repository.as_ref()))
                .or_default()
                .push(use_);
        }
        for ((target, service, repository), uses) in groups {
            let Some(wanted) = declared::wanted(target) else {
                continue;
            };
            let Some(judgement) = declared::judge(
                &mine,
                service,
                &wanted,
                &snapshot.declared_resources,
                repository,
            ) else {
                continue;
            };
            let case = Case {
                subject: &subject,
                identity,
                uses: &uses,
                wanted: &wanted,
                service,
                unresolved: &unresolved,
            };
            report(findings, &case, judgement);
        }
    }
    Ok(())
}

struct Case<'a> {
    subject: &'a WiSubject,
    identity: &'a DeclaredIdentity,
    uses: &'a [&'a SubjectUse],
    wanted: &'a declared::Wanted,
    service: AzureService,
    unresolved: &'a [(&'a DeclaredRoleAssignment, String)],
}

/// The Azure Service Operator RoleAssignment that grants the role, unless it is granted
/// outside Git (authorization.azure.com v1api20220401: `owner` by ARM ID,
/// `principalIdFromConfig`, `roleDefinitionReference`).
fn role_assignment_fix(case: &Case<'_>, role: &crate::azure::roles::BuiltinRole) -> String {
    let (config, key) = case
        .identity
        .principal_id_config
        .clone()
        .unwrap_or_else(|| ("PRINCIPAL_ID_CONFIGMAP".into(), "principalId".into()));
    let object = serde_json::json!({
        "apiVersion": "authorization.azure.com/v1api20220401",
        "kind": "RoleAssignment",
        "metadata": {
            "name": format!("{}-{}", case.identity.name, case.wanted.name),
            "namespace": case.identity.namespace,
        },
        "spec": {
            "owner": {"armId": format!(
                "/subscriptions/SUBSCRIPTION_ID/resourceGroups/RESOURCE_GROUP/providers/{}/{}",
                case.wanted.arm_type, case.wanted.name
            )},
            "principalIdFromConfig": {"name": config, "key": key},
            "roleDefinitionReference": {"armId": format!(
                "/providers/Microsoft.Authorization/roleDefinitions/{}", role.id
            )},
        },
    });
    super::fixes::commented(
        &format!(
            "{} on {}, unless it is granted outside Git",
            role.name, case.wanted.text
        ),
        serde_saphyr::to_string(&object)
            .unwrap_or_default()
            .trim_end(),
    )
}

fn report(findings: &mut Findings<'_>, case: &Case<'_>, judgement: Judgement) {
    let Some(need) = crate::azure::roles::need(case.service, false) else {
        return;
    };
    let operations: Vec<String> = need.operations.iter().map(|o| o.describe()).collect();
    let who = format!(
        "the RoleAssignments declared for identity {} (UserAssignedIdentity {}/{})",
        case.identity.azure_name, case.identity.namespace, case.identity.name
    );
    let needed = format!(
        "{} on {}, needed by {} through {}",
        join_words(&operations),
        case.wanted.text,
        objects_text(case.uses),
        case.subject.describe()
    );
    let object = case.subject.object_ref();
    match judgement {
        Judgement::Granted => {}
        Judgement::Unresolved(mut reasons) => {
            reasons.extend(
                case.unresolved
                    .iter()
                    .map(|(a, why)| format!("RoleAssignment {}/{}: {why}", a.namespace, a.name)),
            );
            findings
                .add(
                    object,
                    format!(
                        "whether {who} allow {needed} cannot be told from these inputs: {}",
                        reasons.join("; ")
                    ),
                    "",
                )
                .severity(Severity::Info);
        }
        Judgement::Missing { notes, at_resource } => {
            let mut why = notes;
            why.extend(case.unresolved.iter().map(|(a, reason)| {
                format!(
                    "RoleAssignment {}/{} may be for it too ({reason})",
                    a.namespace, a.name
                )
            }));
            let why = if why.is_empty() {
                String::new()
            } else {
                format!(": {}", why.join("; "))
            };
            let finding = findings.add(
                object,
                format!("none of {who} allows {needed}{why}"),
                role_assignment_fix(case, &need.role),
            );
            if at_resource && case.unresolved.is_empty() {
                finding.severity(Severity::Error);
            }
        }
    }
}
