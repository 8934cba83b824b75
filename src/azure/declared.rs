//! Role assignments declared as Azure Service Operator `RoleAssignment` objects, judged without
//! Azure credentials: whose principal each names, the scope its `owner` grants at, the built-in
//! role its `roleDefinitionReference` names (see `builtin_roles`), and its condition, against
//! what a Flux integration needs on a resource. Values left to a Flux post-build substitution
//! (`${NAME}`) are unresolved, never wrong. Pure.
//!
//! ASO's shapes (Azure/azure-service-operator, `v2/api/authorization/v1api20220401`
//! `RoleAssignment_Spec`; `v2/pkg/genruntime` `ArbitraryOwnerReference`,
//! `WellKnownResourceReference`, `ConfigMapReference`): `owner` is an `armId` or a Kubernetes
//! object (`group`, `kind`, `name`) in the assignment's namespace whose Azure resource is the
//! scope; `roleDefinitionReference` is an `armId` or a `wellKnownName` (a built-in role's name);
//! the principal is `principalId` or `principalIdFromConfig`, a ConfigMap key that a
//! `UserAssignedIdentity` fills through `operatorSpec.configMaps.principalId`.

use super::condition::{self, Outcome, Repository};
use super::permissions::{Operation, RoleDefinition};
use super::roles::{self, Need};
use super::subjects::Target;
use crate::model::{AsoReference, DeclaredIdentity, DeclaredPrincipal, DeclaredResource};
use crate::model::{DeclaredRoleAssignment, azure_use::AzureService};

/// Whether a value is (or contains) a Flux post-build substitution.
pub fn substituted(value: &str) -> bool {
    value.split("${").skip(1).any(|rest| rest.contains('}'))
}

/// Whose principal a declared assignment names, for one identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Identity,
    Other,
    /// Doctor cannot tell from the inputs; why.
    Unresolved(String),
}

/// `principal_id` is the identity's object ID when Resource Manager said it.
pub fn principal_of(
    assignment: &DeclaredRoleAssignment,
    identity: &DeclaredIdentity,
    principal_id: Option<&str>,
) -> Principal {
    match &assignment.principal {
        DeclaredPrincipal::FromConfig { name, key } => {
            let own = identity
                .principal_id_config
                .as_ref()
                .is_some_and(|(n, k)| n == name && k == key);
            if own {
                Principal::Identity
            } else if substituted(name) || substituted(key) {
                Principal::Unresolved(format!("principalIdFromConfig {name}/{key}"))
            } else {
                Principal::Other
            }
        }
        DeclaredPrincipal::Id(id) if substituted(id) => {
            Principal::Unresolved(format!("principalId {id}"))
        }
        DeclaredPrincipal::Id(id) => match principal_id {
            Some(known) if known.eq_ignore_ascii_case(id) => Principal::Identity,
            Some(_) => Principal::Other,
            None => Principal::Unresolved(format!(
                "principalId {id}, whose identity only Resource Manager knows (--azure)"
            )),
        },
        DeclaredPrincipal::Missing => Principal::Other,
    }
}

/// The resource a use needs a role on, as the inputs name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The ASO kind declaring such a resource, e.g. `Registry`.
    pub aso_kind: &'static str,
    /// Its ARM resource type, e.g. `Microsoft.ContainerRegistry/registries`.
    pub arm_type: &'static str,
    /// Its name in Azure, lowercased.
    pub name: String,
    /// "registry contoso".
    pub text: String,
}

/// What a target is in Azure, when the inputs name it.
pub fn wanted(target: &Target) -> Option<Wanted> {
    let first_label = |host: &str| host.split('.').next().unwrap_or(host).to_ascii_lowercase();
    let (aso_kind, arm_type, noun, name) = match target {
        Target::Registry(host) => (
            "Registry",
            "Microsoft.ContainerRegistry/registries",
            "registry",
            first_label(host),
        ),
        Target::StorageAccount(account) => (
            "StorageAccount",
            "Microsoft.Storage/storageAccounts",
            "storage account",
            account.to_ascii_lowercase(),
        ),
        Target::KeyVault(Some(vault)) => (
            "Vault",
            "Microsoft.KeyVault/vaults",
            "Key Vault",
            vault.to_ascii_lowercase(),
        ),
        Target::EventHubs(Some(namespace)) => (
            "Namespace",
            "Microsoft.EventHub/namespaces",
            "Event Hubs namespace",
            first_label(namespace),
        ),
        Target::Cluster(id) => (
            "ManagedCluster",
            "Microsoft.ContainerService/managedClusters",
            "AKS cluster",
            id.rsplit('/')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase(),
        ),
        _ => return None,
    };
    Some(Wanted {
        aso_kind,
        arm_type,
        text: format!("{noun} {name}"),
        name,
    })
}

/// Whether an assignment's scope covers the wanted resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coverage {
    Covers,
    No,
    Unknown(String),
}

/// The resource group a declared resource is owned by, by its Azure name.
fn resource_group_of(
    resource: &DeclaredResource,
    resources: &[DeclaredResource],
) -> Option<String> {
    match resource.owner.as_ref()? {
        AsoReference::Object { name, .. } => resources
            .iter()
            .find(|r| {
                r.kind == "ResourceGroup" && r.namespace == resource.namespace && &r.name == name
            })
            .map_or_else(|| Some(name.clone()), |g| Some(g.azure_name.clone())),
        AsoReference::ArmId(id) => arm_resource_group(id).map(str::to_string),
        AsoReference::WellKnown(_) => None,
    }
}

/// The resource group an ARM ID names, if any.
fn arm_resource_group(id: &str) -> Option<&str> {
    let mut parts = id.split('/').filter(|p| !p.is_empty());
    while let Some(part) = parts.next() {
        if part.eq_ignore_ascii_case("resourceGroups") {
            return parts.next();
        }
    }
    None
}

/// A scope above the resource (resource group, subscription, management group) covers it
/// only if the resource sits there, which a declared resource can say.
fn above(
    scope_group: Option<&str>,
    what: &str,
    wanted: &Wanted,
    namespace: &str,
    resources: &[DeclaredResource],
) -> Coverage {
    let declared = resources.iter().find(|r| {
        r.namespace == namespace
            && r.kind == wanted.aso_kind
            && r.azure_name.eq_ignore_ascii_case(&wanted.name)
    });
    if let (Some(group), Some(resource)) = (scope_group, declared)
        && resource_group_of(resource, resources).is_some_and(|g| g.eq_ignore_ascii_case(group))
    {
        return Coverage::Covers;
    }
    Coverage::Unknown(format!(
        "it is granted at {what}, and the inputs do not say whether {} is in it",
        wanted.text
    ))
}

fn arm_coverage(
    id: &str,
    wanted: &Wanted,
    namespace: &str,
    resources: &[DeclaredResource],
) -> Coverage {
    let lower = id.trim_end_matches('/').to_ascii_lowercase();
    let resource_path = format!(
        "/providers/{}/{}",
        wanted.arm_type.to_ascii_lowercase(),
        wanted.name
    );
    if lower.ends_with(&resource_path) {
        return Coverage::Covers;
    }
    let provider_free = lower
        .split_once("/providers/")
        .is_none_or(|(before, _)| before.is_empty() && lower.contains("managementgroups"));
    if !provider_free {
        return Coverage::No;
    }
    match arm_resource_group(id) {
        Some(group) => above(
            Some(group),
            &format!("resource group {group}"),
            wanted,
            namespace,
            resources,
        ),
        None => above(None, id, wanted, namespace, resources),
    }
}

/// Whether a declared assignment's `owner` covers the wanted resource.
pub fn coverage(
    assignment: &DeclaredRoleAssignment,
    wanted: &Wanted,
    resources: &[DeclaredResource],
) -> Coverage {
    let namespace = assignment.namespace.as_str();
    match &assignment.owner {
        None => Coverage::Unknown("it names no owner, so no scope".into()),
        Some(AsoReference::ArmId(id)) if substituted(id) => {
            Coverage::Unknown(format!("owner armId {id}"))
        }
        Some(AsoReference::ArmId(id)) => arm_coverage(id, wanted, namespace, resources),
        Some(AsoReference::Object { name, .. }) if substituted(name) => {
            Coverage::Unknown(format!("owner {name}"))
        }
        Some(AsoReference::Object { kind, name, .. }) => {
            let declared = resources
                .iter()
                .find(|r| r.namespace == namespace && &r.name == name);
            let kind = declared.map(|r| r.kind.as_str()).or(kind.as_deref());
            let azure_name = declared.map_or(name.as_str(), |r| r.azure_name.as_str());
            match kind {
                Some("ResourceGroup") => above(
                    Some(azure_name),
                    &format!("resource group {azure_name}"),
                    wanted,
                    namespace,
                    resources,
                ),
                Some(k) if k == wanted.aso_kind => {
                    if azure_name.eq_ignore_ascii_case(&wanted.name) {
                        Coverage::Covers
                    } else if substituted(azure_name) {
                        Coverage::Unknown(format!("owner {name} is named {azure_name} in Azure"))
                    } else {
                        Coverage::No
                    }
                }
                Some(_) => Coverage::No,
                None => Coverage::Unknown(format!(
                    "its owner {name} is not among the inputs, so its kind is unknown"
                )),
            }
        }
        Some(AsoReference::WellKnown(name)) => {
            Coverage::Unknown(format!("owner {name} is not a resource reference"))
        }
    }
}

/// The built-in definition a declared assignment grants, or why doctor cannot say offline.
pub fn role_of(assignment: &DeclaredRoleAssignment) -> Result<RoleDefinition, String> {
    let not_known = |what: String| {
        format!(
            "{what} is not a built-in role doctor knows offline (a custom role is read with --azure)"
        )
    };
    match &assignment.role {
        None => Err("it names no roleDefinitionReference".into()),
        Some(AsoReference::ArmId(id)) if substituted(id) => {
            Err(format!("roleDefinitionReference armId {id}"))
        }
        Some(AsoReference::ArmId(id)) => super::builtin_roles::by_id(&roles::role_guid(id))
            .map(super::builtin_roles::Builtin::definition)
            .ok_or_else(|| not_known(format!("role definition {}", roles::role_guid(id)))),
        Some(AsoReference::WellKnown(name)) if substituted(name) => {
            Err(format!("roleDefinitionReference wellKnownName {name}"))
        }
        Some(AsoReference::WellKnown(name)) => super::builtin_roles::by_name(name)
            .map(super::builtin_roles::Builtin::definition)
            .ok_or_else(|| not_known(format!("role {name:?}"))),
        Some(AsoReference::Object { name, .. }) => Err(format!(
            "its role is the RoleDefinition object {name}, a custom role read only with --azure"
        )),
    }
}

/// How the declared assignments of one identity stand for one use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    Granted,
    /// Some assignment could grant it; what doctor cannot resolve, one reason per assignment.
    Unresolved(Vec<String>),
    /// None grants it. `at_resource`: one is granted on the resource itself, with a role that
    /// does not allow what is needed.
    Missing {
        notes: Vec<String>,
        at_resource: bool,
    },
}

enum One {
    Yes,
    Maybe(String),
    No(Option<String>, bool),
}

fn judge_one(
    assignment: &DeclaredRoleAssignment,
    operation: Operation,
    wanted: &Wanted,
    resources: &[DeclaredResource],
    repository: Option<&Repository>,
) -> One {
    let who = format!(
        "RoleAssignment {}/{}",
        assignment.namespace, assignment.name
    );
    let role = match role_of(assignment) {
        Ok(role) => role,
        Err(reason) => return One::Maybe(format!("{who}: {reason}")),
    };
    let coverage = coverage(assignment, wanted, resources);
    if !role.allows(operation) {
        let here = coverage == Coverage::Covers;
        let note = here.then(|| {
            format!(
                "{who} grants {} on {}, which does not allow {}",
                role.name,
                wanted.text,
                operation.describe()
            )
        });
        return One::No(note, here);
    }
    match coverage {
        Coverage::Covers => {}
        Coverage::No => return One::No(None, false),
        Coverage::Unknown(reason) => return One::Maybe(format!("{who} ({}): {reason}", role.name)),
    }
    let Some(text) = assignment
        .condition
        .as_deref()
        .filter(|c| !c.trim().is_empty())
    else {
        return One::Yes;
    };
    if substituted(text) {
        return One::Maybe(format!("{who}: condition {text}"));
    }
    match condition::assess(
        text,
        assignment.condition_version.as_deref(),
        operation.name(),
        repository,
    ) {
        Outcome::Allows => One::Yes,
        Outcome::Denies => One::No(
            Some(format!(
                "{who} has a condition that excludes {}",
                repository.map_or_else(|| "this use".into(), roles::describe_repository)
            )),
            true,
        ),
        Outcome::Unknown(reason) => One::Maybe(format!("{who} has a condition: {reason}")),
    }
}

fn judge_need(
    assignments: &[&DeclaredRoleAssignment],
    need: &Need,
    wanted: &Wanted,
    resources: &[DeclaredResource],
    repository: Option<&Repository>,
) -> Judgement {
    let mut maybe = Vec::new();
    let mut notes = Vec::new();
    let mut at_resource = false;
    let mut all = true;
    for operation in need.operations {
        let mut granted = false;
        let mut possible = false;
        for assignment in assignments {
            match judge_one(assignment, *operation, wanted, resources, repository) {
                One::Yes => granted = true,
                One::Maybe(reason) => {
                    possible = true;
                    maybe.push(reason);
                }
                One::No(note, here) => {
                    notes.extend(note);
                    at_resource |= here;
                }
            }
        }
        if !granted {
            all = false;
            if !possible {
                notes.sort();
                notes.dedup();
                return Judgement::Missing { notes, at_resource };
            }
        }
    }
    if all {
        return Judgement::Granted;
    }
    maybe.sort();
    maybe.dedup();
    Judgement::Unresolved(maybe)
}

/// Judges an identity's declared assignments (and those whose principal is unresolved) for
/// one use. A registry's mode is not in the inputs: the legacy pull action decides, and a role
/// that grants only the ABAC repository permissions counts as unresolved.
pub fn judge(
    assignments: &[&DeclaredRoleAssignment],
    service: AzureService,
    wanted: &Wanted,
    resources: &[DeclaredResource],
    repository: Option<&Repository>,
) -> Option<Judgement> {
    let need = roles::need(service, false)?;
    let legacy = judge_need(assignments, &need, wanted, resources, repository);
    if service != AzureService::ContainerRegistry || legacy == Judgement::Granted {
        return Some(legacy);
    }
    let abac = roles::need(service, true)?;
    if judge_need(assignments, &abac, wanted, resources, repository) == Judgement::Granted {
        return Some(Judgement::Unresolved(vec![format!(
            "the declared roles grant the ABAC repository permissions of {}, which count only if {} is in ABAC mode (not said in the inputs)",
            abac.role.name, wanted.text
        )]));
    }
    Some(legacy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(owner: AsoReference, role: AsoReference) -> DeclaredRoleAssignment {
        DeclaredRoleAssignment {
            namespace: "flux-system".into(),
            name: "pull".into(),
            principal: DeclaredPrincipal::FromConfig {
                name: "flux-identity".into(),
                key: "principalId".into(),
            },
            role: Some(role),
            owner: Some(owner),
            condition: None,
            condition_version: None,
        }
    }

    fn registry_id(name: &str) -> String {
        format!(
            "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg-acr/providers/Microsoft.ContainerRegistry/registries/{name}"
        )
    }

    fn acr_pull() -> AsoReference {
        AsoReference::ArmId(
            "/subscriptions/11111111-1111-1111-1111-111111111111/providers/Microsoft.Authorization/roleDefinitions/7f951dda-4ed3-4680-a7ca-43fe172d538d".into(),
        )
    }

    fn contoso() -> Wanted {
        wanted(&Target::Registry("contoso.azurecr.io".into())).unwrap()
    }

    fn run(a: &DeclaredRoleAssignment, resources: &[DeclaredResource]) -> Judgement {
        judge(
            &[a],
            AzureService::ContainerRegistry,
            &contoso(),
            resources,
            None,
        )
        .unwrap()
    }

    #[test]
    fn a_pull_role_on_the_registry_grants_and_one_on_another_does_not() {
        let here = assignment(AsoReference::ArmId(registry_id("Contoso")), acr_pull());
        assert_eq!(run(&here, &[]), Judgement::Granted);
        let there = assignment(AsoReference::ArmId(registry_id("fabrikam")), acr_pull());
        assert_eq!(
            run(&there, &[]),
            Judgement::Missing {
                notes: vec![],
                at_resource: false
            }
        );
        let named = assignment(
            AsoReference::ArmId(registry_id("contoso")),
            AsoReference::WellKnown("AcrPush".into()),
        );
        assert_eq!(run(&named, &[]), Judgement::Granted);
    }

    #[test]
    fn a_role_without_the_operation_on_the_registry_is_a_clear_miss() {
        let blob = assignment(
            AsoReference::ArmId(registry_id("contoso")),
            AsoReference::WellKnown("Storage Blob Data Reader".into()),
        );
        let Judgement::Missing { notes, at_resource } = run(&blob, &[]) else {
            panic!("a storage role does not pull");
        };
        assert!(at_resource);
        assert!(
            notes[0].contains("grants Storage Blob Data Reader on registry contoso"),
            "{notes:?}"
        );
        // Reader's `*/read` covers the pull action, as ACR's role table says.
        let reader = assignment(
            AsoReference::ArmId(registry_id("contoso")),
            AsoReference::WellKnown("Reader".into()),
        );
        assert_eq!(run(&reader, &[]), Judgement::Granted);
    }

    #[test]
    fn kubernetes_owners_resolve_through_declared_objects_and_groups() {
        let registry = DeclaredResource {
            namespace: "flux-system".into(),
            name: "acr".into(),
            group: "containerregistry.azure.com".into(),
            kind: "Registry".into(),
            azure_name: "contoso".into(),
            owner: Some(AsoReference::Object {
                group: None,
                kind: None,
                name: "rg".into(),
            }),
        };
        let group = DeclaredResource {
            name: "rg".into(),
            group: "resources.azure.com".into(),
            kind: "ResourceGroup".into(),
            azure_name: "rg-acr".into(),
            owner: None,
            ..registry.clone()
        };
        let object = |name: &str| AsoReference::Object {
            group: None,
            kind: None,
            name: name.into(),
        };
        let resources = [registry, group];
        assert_eq!(
            run(&assignment(object("acr"), acr_pull()), &resources),
            Judgement::Granted
        );
        assert_eq!(
            run(&assignment(object("rg"), acr_pull()), &resources),
            Judgement::Granted
        );
        let group_ref = AsoReference::Object {
            group: Some("resources.azure.com".into()),
            kind: Some("ResourceGroup".into()),
            name: "rg".into(),
        };
        let Judgement::Unresolved(reasons) = run(&assignment(group_ref, acr_pull()), &[]) else {
            panic!("a group whose members are unknown cannot be judged");
        };
        assert!(
            reasons[0].contains("do not say whether registry contoso"),
            "{reasons:?}"
        );
        let rg_arm = AsoReference::ArmId(
            "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/RG-ACR".into(),
        );
        assert_eq!(
            run(&assignment(rg_arm, acr_pull()), &resources),
            Judgement::Granted
        );
    }

    #[test]
    fn substitutions_custom_roles_and_abac_roles_are_unresolved_not_wrong() {
        let sub = assignment(AsoReference::ArmId("${REGISTRY_ID}".into()), acr_pull());
        let Judgement::Unresolved(reasons) = run(&sub, &[]) else {
            panic!("a substituted owner is unresolved");
        };
        assert!(
            reasons[0].contains("owner armId ${REGISTRY_ID}"),
            "{reasons:?}"
        );
        let custom = assignment(
            AsoReference::ArmId(registry_id("contoso")),
            AsoReference::ArmId("/providers/Microsoft.Authorization/roleDefinitions/0000aaaa-0000-4000-8000-000000000000".into()),
        );
        assert!(matches!(run(&custom, &[]), Judgement::Unresolved(_)));
        let abac = assignment(
            AsoReference::ArmId(registry_id("contoso")),
            AsoReference::WellKnown("Container Registry Repository Reader".into()),
        );
        let Judgement::Unresolved(reasons) = run(&abac, &[]) else {
            panic!("repository permissions depend on the registry's mode");
        };
        assert!(reasons[0].contains("ABAC mode"), "{reasons:?}");
    }

    #[test]
    fn conditions_are_evaluated_for_the_repository() {
        let mut scoped = assignment(
            AsoReference::ArmId(registry_id("contoso")),
            AsoReference::WellKnown("AcrPull".into()),
        );
        scoped.condition = Some("((!(ActionMatches{'Microsoft.ContainerRegistry/registries/pull/read'})) OR (@Request[Microsoft.ContainerRegistry/registries/repositories:name] StringEqualsIgnoreCase 'app'))".into());
        scoped.condition_version = Some("2.0".into());
        let app = Repository::Exact("app".into());
        let other = Repository::Exact("db".into());
        let judged = |repo| {
            judge(
                &[&scoped],
                AzureService::ContainerRegistry,
                &contoso(),
                &[],
                Some(repo),
            )
            .unwrap()
        };
        assert_eq!(judged(&app), Judgement::Granted);
        assert!(matches!(
            judged(&other),
            Judgement::Missing {
                at_resource: true,
                ..
            }
        ));
    }

    #[test]
    fn principals_link_through_the_identity_config_map() {
        let identity = DeclaredIdentity {
            namespace: "flux-system".into(),
            name: "flux".into(),
            azure_name: "flux".into(),
            principal_id_config: Some(("flux-identity".into(), "principalId".into())),
        };
        let mut a = assignment(AsoReference::ArmId(registry_id("contoso")), acr_pull());
        assert_eq!(principal_of(&a, &identity, None), Principal::Identity);
        a.principal = DeclaredPrincipal::FromConfig {
            name: "other".into(),
            key: "principalId".into(),
        };
        assert_eq!(principal_of(&a, &identity, None), Principal::Other);
        a.principal = DeclaredPrincipal::Id("${PRINCIPAL_ID}".into());
        assert!(matches!(
            principal_of(&a, &identity, None),
            Principal::Unresolved(_)
        ));
        a.principal = DeclaredPrincipal::Id("3f2504e0-4f89-41d3-9a0c-0305e82c3301".into());
        assert_eq!(
            principal_of(&a, &identity, Some("3F2504E0-4F89-41D3-9A0C-0305E82C3301")),
            Principal::Identity
        );
    }
}
