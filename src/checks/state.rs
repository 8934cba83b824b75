//! AZF000: what could not be read. Every other check that needed it is skipped, so this is
//! the finding that says why a report is partial.

use super::{Area, Check, Findings, Severity};
use crate::model::{ObjectRef, Skip};
use crate::resolve::Resolved;

pub static STATE_UNREADABLE: Check = Check {
    id: "AZF000",
    name: "state-unreadable",
    area: Area::State,
    severity: Severity::Warning,
    title: "Part of the cluster state could not be read",
    healthy: "All the cluster state could be read",
    explanation: "doctor reads the Flux controllers, their ServiceAccounts and pods, the \
workload identity webhook, the service-account issuer and every Azure-capable Flux object. When \
a read is forbidden or fails, the checks that needed it are reported as skipped rather than \
guessed, and this finding names what was missing, so a green report is never a partial one in \
disguise.",
    fix: "Run doctor as a user that may read what is listed (the RBAC verb is named), or grant \
that permission; then run doctor again.",
    run,
};

fn run(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    for item in &snapshot.unreadable {
        let fix = match &item.missing_permission {
            Some(permission) => format!(
                "grant `{permission}` to the user of this context (or run as one who has it), \
then run doctor again"
            ),
            None => "check the API server's health and run doctor again".to_string(),
        };
        findings.add(
            ObjectRef::cluster_scoped("Resource", &item.what),
            format!("could not read {}: {}", item.what, item.cause),
            fix,
        );
    }
    Ok(())
}
