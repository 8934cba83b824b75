//! AZF075: a deny assignment at a resource's scope that refuses what a Flux integration does to
//! its identity, whatever roles it holds (see `azure::deny`).

use super::{Area, Check, Findings, Severity};
use crate::azure::deny::denies;
use crate::azure::roles::need;
use crate::azure::state::DenyAssignment;
use crate::azure::subjects::subjects;
use crate::model::Skip;
use crate::model::azure_use::join_words;
use crate::resolve::Resolved;

pub static DENY_ASSIGNMENT_BLOCKS: Check = Check {
    id: "AZF075",
    name: "deny-assignment-blocks",
    area: Area::Azure,
    severity: Severity::Error,
    title: "A deny assignment refuses the identity what a Flux integration does",
    healthy: "No deny assignment refuses the identities what Flux does",
    explanation: "Deny assignments (made by deployment stacks with deny settings, managed \
applications and Blueprints) refuse operations whatever roles a principal holds. doctor lists \
those that apply at each resource Flux objects reach \
(`{resource}/providers/Microsoft.Authorization/denyAssignments`, api-version 2022-04-01) and \
reports one that names the identity's object ID or everyone, does not exempt it in \
`excludePrincipals`, and whose `actions` or `dataActions` match the operation the controller \
performs (not taken out again by `notActions` or `notDataActions`). Requests then fail with 403 \
although role-missing passes. Deny assignments naming groups are not expanded.",
    fix: "Add the identity to the deny assignment's excluded principals where it is made (a \
deployment stack's `--deny-settings-excluded-principals`), or move the resource out of its scope.",
    run: deny_assignment_blocks,
};

fn deny_assignment_blocks(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    let state = snapshot.azure.get()?;
    let resources = state.resources.get()?;
    let denials = state.deny_assignments.get()?;
    for subject in subjects(snapshot) {
        let Some(identity) = subject.valid_client_id().and_then(|c| state.identity(c)) else {
            continue;
        };
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for use_ in &subject.uses {
            let Some(resource) = super::azure::resource_for(resources, &use_.target) else {
                continue;
            };
            let Some(needed) = need(use_.service, resource.settings.abac()) else {
                continue;
            };
            let listed: Vec<&DenyAssignment> = denials
                .iter()
                .filter(|d| d.listed_for.eq_ignore_ascii_case(&resource.id))
                .collect();
            for deny in listed {
                let refused: Vec<String> = needed
                    .operations
                    .iter()
                    .filter(|o| denies(deny, &identity.principal_id, &resource.id, **o))
                    .map(|o| o.describe())
                    .collect();
                if refused.is_empty() || seen.contains(&(resource.id.as_str(), deny.name.as_str()))
                {
                    continue;
                }
                seen.push((resource.id.as_str(), deny.name.as_str()));
                findings.add(
                    subject.object_ref(),
                    format!(
                        "deny assignment {:?} at {} refuses {} on {} {} to identity {} (object ID {}), whatever its roles: {} through {} fails with 403",
                        deny.name,
                        deny.scope,
                        join_words(&refused),
                        resource.kind.noun(),
                        resource.name,
                        identity.name,
                        identity.principal_id,
                        use_.object,
                        subject.describe()
                    ),
                    super::fixes::commented(
                        &format!(
                            "exempt object ID {} where the deny assignment is made (a deployment stack's excluded principals, which this shows), or move {} out of {}",
                            identity.principal_id, resource.name, deny.scope
                        ),
                        "az stack group show --name STACK --resource-group RESOURCE_GROUP --query denySettings",
                    ),
                );
            }
        }
    }
    Ok(())
}
