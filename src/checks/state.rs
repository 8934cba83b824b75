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
            Some(permission) => super::fixes::commented(
                &format!(
                    "grant `{permission}` to USER, the user of this context (or run doctor as one who has it), then run doctor again"
                ),
                &grant(permission),
            ),
            None => super::fixes::commented(
                "the API server's health checks, one by one; run doctor again once they pass",
                "kubectl get --raw '/readyz?verbose'",
            ),
        };
        findings.add(
            ObjectRef::cluster_scoped("Resource", &item.what),
            format!("could not read {}: {}", item.what, item.cause),
            fix,
        );
    }
    Ok(())
}

/// The RBAC objects that grant a permission as the gather names it (`list pods in namespace
/// flux-system`, `list serviceaccounts (all namespaces)`, `get on the non-resource URL /x`).
fn grant(permission: &str) -> String {
    let (verb, rest) = permission.split_once(' ').unwrap_or((permission, ""));
    let cluster_role = |name: &str, rule: &[String]| {
        let mut role = vec![
            "kubectl".to_string(),
            "create".into(),
            "clusterrole".into(),
            name.to_string(),
            format!("--verb={verb}"),
        ];
        role.extend_from_slice(rule);
        format!(
            "{} && {}",
            super::fixes::command(&role),
            super::fixes::command(&[
                "kubectl",
                "create",
                "clusterrolebinding",
                name,
                &format!("--clusterrole={name}"),
                "--user=USER",
            ])
        )
    };
    if let Some(url) = rest
        .strip_prefix("on the non-resource URL ")
        .or_else(|| rest.strip_prefix("on "))
    {
        return cluster_role(
            "azflux-doctor-discovery",
            &[format!("--non-resource-url={url}")],
        );
    }
    let (resource, namespace) = match rest.split_once(" in namespace ") {
        Some((resource, namespace)) => (resource, Some(namespace)),
        None => (
            rest.trim_end_matches(" in all namespaces")
                .trim_end_matches(" (all namespaces)"),
            None,
        ),
    };
    let name = format!(
        "azflux-doctor-{}",
        resource.split('.').next().unwrap_or(resource)
    );
    let Some(namespace) = namespace else {
        return cluster_role(&name, &[format!("--resource={resource}")]);
    };
    format!(
        "{} && {}",
        super::fixes::command(&[
            "kubectl",
            "create",
            "role",
            &name,
            "-n",
            namespace,
            &format!("--verb={verb}"),
            &format!("--resource={resource}"),
        ]),
        super::fixes::command(&[
            "kubectl",
            "create",
            "rolebinding",
            &name,
            "-n",
            namespace,
            &format!("--role={name}"),
            "--user=USER",
        ])
    )
}

#[cfg(test)]
mod tests {
    use super::grant;

    #[test]
    fn permissions_become_the_roles_that_grant_them() {
        assert_eq!(
            grant("list pods in namespace flux-system"),
            "kubectl create role azflux-doctor-pods -n flux-system --verb=list --resource=pods && kubectl create rolebinding azflux-doctor-pods -n flux-system --role=azflux-doctor-pods --user=USER"
        );
        assert_eq!(
            grant("list ocirepositories.source.toolkit.fluxcd.io in all namespaces"),
            "kubectl create clusterrole azflux-doctor-ocirepositories --verb=list --resource=ocirepositories.source.toolkit.fluxcd.io && kubectl create clusterrolebinding azflux-doctor-ocirepositories --clusterrole=azflux-doctor-ocirepositories --user=USER"
        );
        assert!(grant("list serviceaccounts (all namespaces)").starts_with(
            "kubectl create clusterrole azflux-doctor-serviceaccounts --verb=list --resource=serviceaccounts &&"
        ));
        assert!(
            grant("get on the non-resource URL /.well-known/openid-configuration")
                .starts_with("kubectl create clusterrole azflux-doctor-discovery --verb=get --non-resource-url=/.well-known/openid-configuration &&")
        );
    }
}
