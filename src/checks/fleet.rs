//! AZF100-AZF102: the AKS fleet that `clusters list` and `clusters sync` read: kubelogin for
//! the kubeconfig entries they write, the login's right to fetch each cluster's credentials,
//! and clusters without managed Entra ID, which kubelogin cannot log in to.

use super::local::kubelogin_install_hint;
use super::{Area, Check, Findings, FixAction, Severity};
use crate::azure::clusters::LIST_ADMIN_CREDENTIAL;
use crate::model::fleet::{Access, Entra, FleetCluster, FleetSnapshot};
use crate::model::{Fact, ObjectRef, Skip};

/// The fleet catalogue, in report order; `catalogue()` lists it after doctor's.
pub static FLEET_CHECKS: &[&Check<FleetSnapshot>] = &[
    &KUBELOGIN_MISSING,
    &CLUSTER_ACCESS_ROLE_MISSING,
    &ENTRA_INTEGRATION_DISABLED,
];

type Out<'a> = Findings<'a, FleetSnapshot>;

fn cluster_ref(cluster: &FleetCluster) -> ObjectRef {
    ObjectRef::cluster_scoped(
        "ManagedCluster",
        &format!("{}/{}", cluster.resource_group, cluster.name),
    )
}

/// "a, b, c and 2 more".
fn some_names(names: &[&str]) -> String {
    const SHOWN: usize = 5;
    let text = names
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        format!("{text} and {} more", names.len() - SHOWN)
    } else {
        text
    }
}

pub static KUBELOGIN_MISSING: Check<FleetSnapshot> = Check {
    id: "AZF100",
    name: "kubelogin-missing",
    area: Area::Fleet,
    severity: Severity::Error,
    title: "kubelogin is not on PATH, and the fleet's Entra ID clusters need it",
    healthy: "kubelogin is on PATH, or no cluster needs it",
    explanation: "A kubeconfig entry of an AKS cluster with Entra ID gets its token by running \
kubelogin (an exec credential plugin): kubectl, Flux's CLI and this tool run it for every call. \
`clusters sync` writes such entries; without kubelogin on PATH each of them fails with \
`executable kubelogin not found`. On Windows kubectl does not look in the current folder.",
    fix: "Install kubelogin: `az aks install-cli` (any OS with the Azure CLI), `brew install \
Azure/kubelogin/kubelogin` (macOS), `winget install --id=Microsoft.Azure.Kubelogin -e` or \
`choco install kubelogin` (Windows), or unzip `kubelogin-linux-amd64.zip` from the \
Azure/kubelogin GitHub releases into a folder on PATH. Check with `kubelogin --version`.",
    run: kubelogin_missing,
};

fn kubelogin_missing(fleet: &FleetSnapshot, findings: &mut Out<'_>) -> Result<(), Skip> {
    if fleet.kubelogin.is_some() {
        return Ok(());
    }
    let entra: Vec<&str> = fleet
        .clusters
        .iter()
        .filter(|c| c.entra.is_managed())
        .map(|c| c.name.as_str())
        .collect();
    if entra.is_empty() {
        return Ok(());
    }
    findings.add(
        ObjectRef::cluster_scoped("Executable", "kubelogin"),
        format!(
            "kubelogin is not on PATH; the kubeconfig entries of {} Entra ID cluster(s) ({}) run it for every call",
            entra.len(),
            some_names(&entra)
        ),
        kubelogin_install_hint().to_string(),
    );
    Ok(())
}

pub static CLUSTER_ACCESS_ROLE_MISSING: Check<FleetSnapshot> = Check {
    id: "AZF101",
    name: "cluster-access-role-missing",
    area: Area::Fleet,
    severity: Severity::Error,
    title: "The login has no role that allows fetching the cluster's credentials",
    healthy: "The login may fetch each cluster's credentials",
    explanation: "The kubeconfig of an AKS cluster comes from Resource Manager: \
`listClusterUserCredential` (what `az aks get-credentials` and `clusters sync` call) needs the \
action `Microsoft.ContainerService/managedClusters/listClusterUserCredential/action`, which \
Reader does not carry. Built-in roles that do: Azure Kubernetes Service Cluster User Role (the \
least), Cluster Admin Role, Contributor and Owner. Local-account credentials (`--admin`) need \
`listClusterAdminCredential/action` (Cluster Admin Role). The check reads the login's effective \
permissions on each cluster (`Microsoft.Authorization/permissions`), so roles given through \
groups and custom roles count. Kubernetes access itself is separate: an RBAC binding in the \
cluster (`clusters sync --print-rbac`) or, with Azure RBAC for Kubernetes, an AKS RBAC role.",
    fix: "`az role assignment create --assignee CLIENT_ID --role \"Azure Kubernetes Service \
Cluster User Role\" --scope CLUSTER_RESOURCE_ID` (or at the resource group or subscription for \
every cluster in it); role assignments take a few minutes to apply.",
    run: cluster_access_role_missing,
};

fn role_for(action: &str) -> &'static str {
    if action.eq_ignore_ascii_case(LIST_ADMIN_CREDENTIAL) {
        "Azure Kubernetes Service Cluster Admin Role"
    } else {
        "Azure Kubernetes Service Cluster User Role"
    }
}

fn cluster_access_role_missing(fleet: &FleetSnapshot, findings: &mut Out<'_>) -> Result<(), Skip> {
    if let Some(Fact::Unknown(reason)) = fleet
        .clusters
        .first()
        .map(|c| &c.credential_access)
        .filter(|_| {
            fleet
                .clusters
                .iter()
                .all(|c| matches!(c.credential_access, Fact::Unknown(_)))
        })
    {
        return Err(Skip(reason.clone()));
    }
    let assignee = fleet
        .caller
        .as_ref()
        .map_or("CLIENT_ID", |c| c.assignee.as_str());
    for cluster in &fleet.clusters {
        let Fact::Known(Access::Denied { action, detail }) = &cluster.credential_access else {
            continue;
        };
        let role = role_for(action);
        let command = vec![
            "az".to_string(),
            "role".into(),
            "assignment".into(),
            "create".into(),
            "--assignee".into(),
            assignee.to_string(),
            "--role".into(),
            role.to_string(),
            "--scope".into(),
            cluster.id.clone(),
        ];
        findings
            .add(
                cluster_ref(cluster),
                format!(
                    "{} may not fetch the credentials of {} (subscription {}): {detail}",
                    fleet.login, cluster.name, cluster.subscription_id
                ),
                format!(
                    "az role assignment create --assignee {assignee} --role \"{role}\" --scope {}",
                    cluster.id
                ),
            )
            .action(FixAction::Run { command });
    }
    Ok(())
}

pub static ENTRA_INTEGRATION_DISABLED: Check<FleetSnapshot> = Check {
    id: "AZF102",
    name: "entra-integration-disabled",
    area: Area::Fleet,
    severity: Severity::Warning,
    title: "The cluster has no managed Entra ID integration",
    healthy: "Clusters have managed Entra ID integration",
    explanation: "Without AKS-managed Entra ID a cluster knows no Azure identities: its only \
credentials are local-account certificates, which make whoever holds the kubeconfig \
cluster-admin, cannot be revoked per person, and are written by `clusters sync` only with \
`--admin`. Clusters on the legacy integration (an app registration per cluster) cannot be \
logged in to with kubelogin's service principal mode, and the legacy integration is retired.",
    fix: "`az aks update -g RG -n CLUSTER --enable-aad --aad-admin-group-object-ids GROUP_ID` \
(also migrates the legacy integration), then bind the people and service principals that need \
access, and consider `--disable-local-accounts`.",
    run: entra_integration_disabled,
};

fn entra_integration_disabled(fleet: &FleetSnapshot, findings: &mut Out<'_>) -> Result<(), Skip> {
    for cluster in &fleet.clusters {
        let message = match cluster.entra {
            Entra::Managed { .. } => continue,
            Entra::Legacy => format!(
                "{} uses the legacy Entra ID integration; kubelogin's spn mode cannot log in to it",
                cluster.name
            ),
            Entra::Disabled => format!(
                "{} has no Entra ID integration: its only credentials are local-account certificates (cluster-admin), written by `clusters sync` only with --admin",
                cluster.name
            ),
        };
        let command = [
            "az",
            "aks",
            "update",
            "-g",
            &cluster.resource_group,
            "-n",
            &cluster.name,
            "--enable-aad",
            "--aad-admin-group-object-ids",
            "GROUP_ID",
        ];
        findings
            .add(cluster_ref(cluster), message, command.join(" "))
            .action(FixAction::Run {
                command: command.iter().map(ToString::to_string).collect(),
            });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::clusters::LIST_USER_CREDENTIAL;
    use crate::checks::run_checks;
    use crate::model::fleet::Caller;

    fn cluster(name: &str, entra: Entra, access: Fact<Access>) -> FleetCluster {
        FleetCluster {
            id: format!(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/{name}"
            ),
            name: name.into(),
            subscription_id: "s".into(),
            resource_group: "rg".into(),
            location: "westeurope".into(),
            kubernetes_version: Some("1.33.2".into()),
            fqdn: Some(format!("{name}.hcp.westeurope.azmk8s.io")),
            entra,
            local_accounts_disabled: false,
            oidc_issuer: true,
            workload_identity: true,
            contexts: Vec::new(),
            credential_access: access,
        }
    }

    fn managed() -> Entra {
        Entra::Managed {
            tenant_id: Some("t".into()),
            azure_rbac: false,
        }
    }

    fn fleet(clusters: Vec<FleetCluster>, kubelogin: bool) -> FleetSnapshot {
        FleetSnapshot {
            login: "a service principal secret (AZURE_CLIENT_SECRET)".into(),
            caller: Some(Caller {
                object_id: "oid".into(),
                assignee: "app-id".into(),
                kubernetes_user: "oid".into(),
            }),
            subscriptions: vec!["s".into()],
            clusters,
            kubelogin: kubelogin.then(|| "/usr/local/bin/kubelogin".into()),
        }
    }

    fn names(fleet: &FleetSnapshot) -> Vec<(&'static str, String)> {
        run_checks(FLEET_CHECKS, fleet)
            .findings
            .iter()
            .map(|f| (f.check.name, f.subject.name.clone()))
            .collect()
    }

    #[test]
    fn a_healthy_fleet_has_no_findings() {
        let fleet = fleet(
            vec![cluster("a", managed(), Fact::Known(Access::Allowed))],
            true,
        );
        assert!(names(&fleet).is_empty());
    }

    #[test]
    fn kubelogin_matters_only_for_entra_clusters() {
        let local_only = fleet(
            vec![cluster("a", Entra::Disabled, Fact::Known(Access::Allowed))],
            false,
        );
        assert_eq!(
            names(&local_only),
            vec![("entra-integration-disabled", "rg/a".to_string())]
        );
        let entra = fleet(
            vec![cluster("b", managed(), Fact::Known(Access::Allowed))],
            false,
        );
        assert_eq!(
            names(&entra),
            vec![("kubelogin-missing", "kubelogin".to_string())]
        );
    }

    #[test]
    fn denied_access_names_the_role_and_the_assignee() {
        let fleet = fleet(
            vec![
                cluster(
                    "a",
                    managed(),
                    Fact::Known(Access::Denied {
                        action: LIST_USER_CREDENTIAL.into(),
                        detail: "no role grants it".into(),
                    }),
                ),
                cluster(
                    "b",
                    Entra::Disabled,
                    Fact::Known(Access::Denied {
                        action: LIST_ADMIN_CREDENTIAL.into(),
                        detail: "HTTP 403 AuthorizationFailed".into(),
                    }),
                ),
            ],
            true,
        );
        let diagnosis = run_checks(FLEET_CHECKS, &fleet);
        let denied: Vec<&str> = diagnosis
            .findings
            .iter()
            .filter(|f| f.check.name == "cluster-access-role-missing")
            .map(|f| f.fix.as_str())
            .collect();
        assert_eq!(denied.len(), 2);
        assert!(
            denied[0].contains("--assignee app-id --role \"Azure Kubernetes Service Cluster User Role\" --scope /subscriptions/s/"),
            "{}",
            denied[0]
        );
        assert!(denied[1].contains("Cluster Admin Role"), "{}", denied[1]);
    }

    #[test]
    fn unknown_access_everywhere_skips_the_check() {
        let fleet = fleet(
            vec![cluster(
                "a",
                managed(),
                Fact::Unknown("HTTP 500 InternalServerError".into()),
            )],
            true,
        );
        let diagnosis = run_checks(FLEET_CHECKS, &fleet);
        let result = diagnosis
            .results
            .iter()
            .find(|r| r.check.name == "cluster-access-role-missing")
            .unwrap();
        assert_eq!(
            result.status,
            crate::checks::Status::Skip("HTTP 500 InternalServerError".into())
        );
    }
}
