//! Reading Azure for doctor: the AKS cluster of the context and its Flux extension
//! (`microsoft.flux`, with its fluxConfigurations), the identities the wiring names, their
//! federated credentials, the resources Flux objects reach and the identities' role
//! assignments. The number of calls follows the number of identities, never of objects: one
//! Resource Graph query finds every identity, one resolves every resource.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::join_all;

use super::arm::{
    API_AKS, API_AUTHORIZATION, API_MSI, API_SUBSCRIPTIONS, Arm, ArmError, encode, kql_string,
};
use super::extension::{self, API_EXTENSIONS, API_FLUX_CONFIGURATIONS, ExtensionState};
use super::permissions::RoleDefinition;
use super::roles::{need, role_guid};
use super::shapes::{
    aks_cluster, deny_assignment, federated_credential, resource_group_of, resource_of,
    role_definition, text,
};
use super::state::{
    AksCluster, AzureResource, AzureState, DenyAssignment, FederatedCredential, ManagedIdentity,
    RoleAssignment, subscription_of,
};
use super::subjects::{Target, WiSubject};
use crate::model::{Fact, Snapshot, Source};
use crate::wiring::host_of;

/// How to find the AKS cluster when its API server FQDN is not enough.
#[derive(Debug, Clone, Default)]
pub struct ClusterLocator {
    pub subscription: Option<String>,
    pub resource_group: Option<String>,
    pub cluster_name: Option<String>,
}

fn unknown<T>(error: &ArmError) -> Fact<T> {
    Fact::Unknown(error.to_string())
}

async fn find_cluster(
    arm: &Arm,
    snapshot: &Snapshot,
    locator: &ClusterLocator,
    subscriptions: &[String],
) -> Fact<AksCluster> {
    if let (Some(group), Some(name)) = (&locator.resource_group, &locator.cluster_name) {
        let subscription = match (&locator.subscription, subscriptions) {
            (Some(s), _) => s.clone(),
            (None, [only]) => only.clone(),
            (None, all) => {
                return Fact::Unknown(format!(
                    "pass --subscription with --resource-group and --cluster-name: this login reads {} subscriptions",
                    all.len()
                ));
            }
        };
        let path = format!(
            "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.ContainerService/managedClusters/{name}?api-version={API_AKS}"
        );
        return match arm.get(&path).await {
            Ok(value) => Fact::Known(aks_cluster(&value)),
            Err(e) => unknown(&e),
        };
    }
    let Source::Live { server, .. } = &snapshot.source else {
        return Fact::Unknown(
            "manifest mode: pass --resource-group and --cluster-name to check the AKS cluster"
                .into(),
        );
    };
    if snapshot.cluster.known().is_some_and(|c| !c.is_aks) {
        return Fact::Unknown("the cluster of this context is not AKS".into());
    }
    let host = host_of(server);
    let query = format!(
        "Resources | where type =~ 'microsoft.containerservice/managedclusters' | where tolower(tostring(properties.fqdn)) == {host} or tolower(tostring(properties.privateFQDN)) == {host} or tolower(tostring(properties.azurePortalFQDN)) == {host} | project id, name, resourceGroup, subscriptionId, properties",
        host = kql_string(&host)
    );
    let scope: Vec<String> = locator.subscription.iter().cloned().collect();
    match arm.graph(&query, &scope).await {
        Ok(rows) => rows.first().map_or_else(
            || {
                Fact::Unknown(format!(
                    "no AKS cluster has the API server FQDN {host} in the {} subscription(s) this login can read; pass --resource-group and --cluster-name",
                    subscriptions.len()
                ))
            },
            |row| Fact::Known(aks_cluster(row)),
        ),
        Err(e) => unknown(&e),
    }
}

/// The federated credentials of one user-assigned identity.
pub async fn list_credentials(arm: &Arm, identity_id: &str) -> Fact<Vec<FederatedCredential>> {
    let path = format!("{identity_id}/federatedIdentityCredentials?api-version={API_MSI}");
    match arm.list(&path).await {
        Ok(items) => Fact::Known(items.iter().map(federated_credential).collect()),
        Err(e) => unknown(&e),
    }
}

/// User-assigned identities by client ID, across every readable subscription, in one query.
pub async fn find_identities(
    arm: &Arm,
    client_ids: &BTreeSet<String>,
) -> Fact<Vec<ManagedIdentity>> {
    if client_ids.is_empty() {
        return Fact::Known(Vec::new());
    }
    let list: Vec<String> = client_ids.iter().map(|c| kql_string(c)).collect();
    let query = format!(
        "Resources | where type =~ 'microsoft.managedidentity/userassignedidentities' | where tolower(tostring(properties.clientId)) in ({}) | project id, name, resourceGroup, subscriptionId, clientId = tostring(properties.clientId), principalId = tostring(properties.principalId), tenantId = tostring(properties.tenantId)",
        list.join(", ")
    );
    let rows = match arm.graph(&query, &[]).await {
        Ok(rows) => rows,
        Err(e) => return unknown(&e),
    };
    let credentials = join_all(rows.iter().map(|row| {
        let id = text(row, "/id").unwrap_or_default();
        async move { list_credentials(arm, &id).await }
    }))
    .await;
    Fact::Known(
        rows.iter()
            .zip(credentials)
            .map(|(row, credentials)| {
                let id = text(row, "/id").unwrap_or_default();
                ManagedIdentity {
                    name: text(row, "/name").unwrap_or_default(),
                    resource_group: text(row, "/resourceGroup")
                        .or_else(|| resource_group_of(&id))
                        .unwrap_or_default(),
                    subscription_id: text(row, "/subscriptionId")
                        .or_else(|| subscription_of(&id).map(str::to_string))
                        .unwrap_or_default(),
                    client_id: text(row, "/clientId").unwrap_or_default(),
                    principal_id: text(row, "/principalId").unwrap_or_default(),
                    tenant_id: text(row, "/tenantId").unwrap_or_default(),
                    id,
                    credentials,
                }
            })
            .collect(),
    )
}

/// Resolves every registry, storage account, vault, Event Hubs namespace and remote cluster
/// the subjects use to its ARM resource, with its data-access settings, in one Resource Graph query.
async fn resolve_targets(arm: &Arm, subjects: &[WiSubject]) -> Fact<Vec<AzureResource>> {
    let mut registries = BTreeSet::new();
    let mut accounts = BTreeSet::new();
    let mut clusters = BTreeSet::new();
    let mut vaults = BTreeSet::new();
    let mut namespaces = BTreeSet::new();
    for target in subjects
        .iter()
        .flat_map(|s| s.uses.iter().map(|u| &u.target))
    {
        match target {
            Target::Registry(host) => registries.insert(host.to_ascii_lowercase()),
            Target::StorageAccount(name) => accounts.insert(name.to_ascii_lowercase()),
            Target::Cluster(id) => clusters.insert(id.to_ascii_lowercase()),
            Target::KeyVault(Some(name)) => vaults.insert(name.to_ascii_lowercase()),
            Target::EventHubs(Some(name)) => namespaces.insert(name.to_ascii_lowercase()),
            _ => false,
        };
    }
    let set = |values: &BTreeSet<String>| {
        values
            .iter()
            .map(|v| kql_string(v))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut clauses = Vec::new();
    if !registries.is_empty() {
        clauses.push(format!(
            "(type =~ 'microsoft.containerregistry/registries' and tolower(tostring(properties.loginServer)) in ({}))",
            set(&registries)
        ));
    }
    if !accounts.is_empty() {
        clauses.push(format!(
            "(type =~ 'microsoft.storage/storageaccounts' and tolower(name) in ({}))",
            set(&accounts)
        ));
    }
    if !clusters.is_empty() {
        clauses.push(format!(
            "(type =~ 'microsoft.containerservice/managedclusters' and tolower(id) in ({}))",
            set(&clusters)
        ));
    }
    if !vaults.is_empty() {
        clauses.push(format!(
            "(type =~ 'microsoft.keyvault/vaults' and tolower(name) in ({}))",
            set(&vaults)
        ));
    }
    if !namespaces.is_empty() {
        clauses.push(format!(
            "(type =~ 'microsoft.eventhub/namespaces' and tolower(name) in ({}))",
            set(&namespaces)
        ));
    }
    if clauses.is_empty() {
        return Fact::Known(Vec::new());
    }
    // The settings that decide data access come along: a registry's role assignment mode and
    // ARM-token policy, a vault's permission model and access policies (REST property names,
    // which Resource Graph keeps).
    let query = format!(
        "Resources | where {} | project id, name, type, loginServer = tostring(properties.loginServer), roleAssignmentMode = tostring(properties.roleAssignmentMode), armTokenPolicy = tostring(properties.policies.azureADAuthenticationAsArmPolicy.status), enableRbacAuthorization = properties.enableRbacAuthorization, accessPolicies = properties.accessPolicies",
        clauses.join(" or ")
    );
    let rows = match arm.graph(&query, &[]).await {
        Ok(rows) => rows,
        Err(e) => return unknown(&e),
    };
    Fact::Known(rows.iter().filter_map(resource_of).collect())
}

/// The role assignments of each identity that needs a role, listed in the subscriptions that
/// matter to it: its own and those of the resources it is used for.
async fn list_role_assignments(
    arm: &Arm,
    subjects: &[WiSubject],
    identities: &[ManagedIdentity],
    resources: &[AzureResource],
) -> Fact<Vec<RoleAssignment>> {
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for subject in subjects {
        let Some(identity) = subject.valid_client_id().and_then(|client| {
            identities
                .iter()
                .find(|i| i.client_id.eq_ignore_ascii_case(client))
        }) else {
            continue;
        };
        for use_ in subject
            .uses
            .iter()
            .filter(|u| need(u.service, false).is_some())
        {
            let subscriptions = wanted.entry(identity.principal_id.clone()).or_default();
            subscriptions.insert(identity.subscription_id.to_ascii_lowercase());
            let resource = resources.iter().find(|r| match &use_.target {
                Target::Registry(key)
                | Target::StorageAccount(key)
                | Target::Cluster(key)
                | Target::KeyVault(Some(key))
                | Target::EventHubs(Some(key)) => r.key.eq_ignore_ascii_case(key),
                _ => false,
            });
            if let Some(sub) = resource.and_then(AzureResource::subscription_id) {
                subscriptions.insert(sub.to_ascii_lowercase());
            }
        }
    }
    let calls: Vec<(String, String)> = wanted
        .into_iter()
        .flat_map(|(principal, subs)| subs.into_iter().map(move |s| (principal.clone(), s)))
        .filter(|(principal, sub)| !principal.is_empty() && !sub.is_empty())
        .collect();
    let lists = join_all(calls.iter().map(|(principal, subscription)| async move {
        let filter = encode(&format!("principalId eq '{principal}'"));
        let path = format!(
            "/subscriptions/{subscription}/providers/Microsoft.Authorization/roleAssignments?api-version={API_AUTHORIZATION}&$filter={filter}"
        );
        arm.list(&path).await.map(|items| {
            items
                .iter()
                .map(|item| {
                    let definition_id =
                        text(item, "/properties/roleDefinitionId").unwrap_or_default();
                    RoleAssignment {
                        principal_id: text(item, "/properties/principalId").unwrap_or_default(),
                        role: role_guid(&definition_id),
                        definition_id,
                        scope: text(item, "/properties/scope").unwrap_or_default(),
                        condition: text(item, "/properties/condition").filter(|c| !c.is_empty()),
                        condition_version: text(item, "/properties/conditionVersion"),
                        listed_in: subscription.clone(),
                    }
                })
                .collect::<Vec<_>>()
        })
    }))
    .await;
    let mut all = Vec::new();
    for list in lists {
        match list {
            Ok(items) => all.extend(items),
            Err(e) => return unknown(&e),
        }
    }
    Fact::Known(all)
}

/// The definition of every role the assignments name, read by the `roleDefinitionId` each
/// lists: one call per distinct role, built-in and custom alike. A definition that cannot be
/// read is left out, and the assignments naming it are reported as not evaluable.
async fn read_role_definitions(arm: &Arm, assignments: &[RoleAssignment]) -> Vec<RoleDefinition> {
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    for assignment in assignments {
        ids.entry(assignment.role.clone())
            .or_insert_with(|| assignment.definition_id.clone());
    }
    let read = join_all(
        ids.values()
            .filter(|id| id.starts_with('/'))
            .map(|id| async move {
                arm.get(&format!("{id}?api-version={API_AUTHORIZATION}"))
                    .await
                    .ok()
                    .map(|value| role_definition(&value))
            }),
    )
    .await;
    read.into_iter().flatten().collect()
}

/// The deny assignments that apply at each resource in use, one list call per resource
/// (`{id}/providers/Microsoft.Authorization/denyAssignments`, api-version 2022-04-01, which
/// returns those at the scope and the inherited ones).
async fn list_deny_assignments(
    arm: &Arm,
    resources: &[AzureResource],
) -> Fact<Vec<DenyAssignment>> {
    let lists = join_all(resources.iter().map(|resource| async move {
        let path = format!(
            "{}/providers/Microsoft.Authorization/denyAssignments?api-version={API_AUTHORIZATION}",
            resource.id
        );
        arm.list(&path).await.map(|items| {
            items
                .iter()
                .map(|item| deny_assignment(item, &resource.id))
                .collect::<Vec<_>>()
        })
    }))
    .await;
    let mut all = Vec::new();
    for list in lists {
        match list {
            Ok(items) => all.extend(items),
            Err(e) => return unknown(&e),
        }
    }
    Fact::Known(all)
}

/// Lists the readable subscriptions: the first call, which also proves the login works.
pub async fn subscriptions(arm: &Arm) -> Result<Vec<String>, ArmError> {
    let items = arm
        .list(&format!("/subscriptions?api-version={API_SUBSCRIPTIONS}"))
        .await?;
    Ok(items
        .iter()
        .filter_map(|s| text(s, "/subscriptionId"))
        .collect())
}

/// Everything the Azure checks need, read with one login.
pub async fn read(
    arm: &Arm,
    login: &str,
    snapshot: &Snapshot,
    subjects: &[WiSubject],
    locator: &ClusterLocator,
) -> Fact<AzureState> {
    let subscriptions = match subscriptions(arm).await {
        Ok(list) => list,
        Err(e) => return Fact::Unknown(format!("could not list subscriptions: {e}")),
    };
    let client_ids: BTreeSet<String> = subjects
        .iter()
        .filter_map(WiSubject::valid_client_id)
        .map(str::to_ascii_lowercase)
        .collect();
    let ((cluster, flux_extension), identities, resources) = futures::join!(
        async {
            let cluster = find_cluster(arm, snapshot, locator, &subscriptions).await;
            let extension = read_flux_extension(arm, &cluster).await;
            (cluster, extension)
        },
        find_identities(arm, &client_ids),
        resolve_targets(arm, subjects)
    );
    let role_assignments = match (&identities, &resources) {
        (Fact::Known(identities), Fact::Known(resources)) => {
            list_role_assignments(arm, subjects, identities, resources).await
        }
        (Fact::Unknown(reason), _) | (_, Fact::Unknown(reason)) => Fact::Unknown(reason.clone()),
    };
    let role_definitions = async {
        match &role_assignments {
            Fact::Known(assignments) => Fact::Known(read_role_definitions(arm, assignments).await),
            Fact::Unknown(reason) => Fact::Unknown(reason.clone()),
        }
    };
    let deny_assignments = async {
        match &resources {
            Fact::Known(resources) => list_deny_assignments(arm, resources).await,
            Fact::Unknown(reason) => Fact::Unknown(reason.clone()),
        }
    };
    let (role_definitions, deny_assignments) = futures::join!(role_definitions, deny_assignments);
    Fact::Known(AzureState {
        login: login.to_string(),
        subscriptions,
        cluster,
        identities,
        resources,
        role_assignments,
        role_definitions,
        flux_extension,
        deny_assignments,
    })
}

/// The cluster's `microsoft.flux` extension, and its fluxConfigurations when it has one: two
/// calls whatever the number of objects.
async fn read_flux_extension(arm: &Arm, cluster: &Fact<AksCluster>) -> Fact<ExtensionState> {
    let cluster = match cluster {
        Fact::Known(cluster) => cluster,
        Fact::Unknown(reason) => return Fact::Unknown(reason.clone()),
    };
    let base = format!("{}/providers/Microsoft.KubernetesConfiguration", cluster.id);
    let extension = match arm
        .list(&format!("{base}/extensions?api-version={API_EXTENSIONS}"))
        .await
    {
        Ok(items) => items.iter().find_map(extension::extension_of),
        Err(e) => return unknown(&e),
    };
    let configurations = if extension.is_some() {
        match arm
            .list(&format!(
                "{base}/fluxConfigurations?api-version={API_FLUX_CONFIGURATIONS}"
            ))
            .await
        {
            Ok(items) => Fact::Known(items.iter().map(extension::flux_configuration_of).collect()),
            Err(e) => unknown(&e),
        }
    } else {
        Fact::Known(Vec::new())
    };
    Fact::Known(ExtensionState {
        cluster: cluster.name.clone(),
        resource_group: cluster.resource_group.clone(),
        extension,
        configurations,
    })
}
