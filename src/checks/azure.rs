//! AZF060-AZF073: the Azure side of the chain, judged from what `--azure` read through Resource
//! Manager and what `--probe` saw at Entra ID: the AKS cluster's OIDC issuer and workload
//! identity settings, the identities the wiring names, their federated credentials, their
//! roles on the resources Flux objects reach, and the token exchange itself.

use std::collections::BTreeMap;

use super::{Area, Check, Findings, FixAction, Severity};
use crate::azure::aadsts::{self, About};
use crate::azure::condition::Repository;
use crate::azure::federate::FIC_LIMIT;
use crate::azure::fic::{Difference, Expected, Verdict, assess, closeness};
use crate::azure::roles::{self, Grant, Need, covers, need};
use crate::azure::state::{
    AksCluster, AzureResource, AzureState, FederatedCredential, ManagedIdentity, Probe,
    ProbeOutcome, ResourceKind, RoleAssignment, RoleDefinition, TokenClaims,
};
use crate::azure::subjects::{SubjectUse, Target, WiSubject, subjects};
use crate::model::azure_use::{AzureService, controller_for, join_words};
use crate::model::{FluxKind, ObjectRef, Skip, Snapshot};
use crate::resolve::Resolved;
use crate::resolve::features::{self, Feature};
use crate::wiring::{TOKEN_AUDIENCE, host_of};

fn azure(snapshot: &Resolved) -> Result<&AzureState, Skip> {
    snapshot.azure.get()
}

fn cluster(snapshot: &Resolved) -> Result<&AksCluster, Skip> {
    azure(snapshot)?.cluster.get()
}

fn cluster_ref(cluster: &AksCluster) -> ObjectRef {
    ObjectRef::cluster_scoped("ManagedCluster", &cluster.name)
}

fn identity_ref(identity: &ManagedIdentity) -> ObjectRef {
    ObjectRef::cluster_scoped("UserAssignedIdentity", &identity.name)
}

fn run_action(command: &str) -> FixAction {
    FixAction::Run {
        command: command.split(' ').map(str::to_string).collect(),
    }
}

/// The service principal added to each Azure DevOps organization, through the service
/// principal entitlements API (Azure DevOps REST 7.1, `serviceprincipalentitlements`; the
/// resource is Azure DevOps' own application ID), then to the project group it needs.
fn devops_fix(organisations: &[String], object_id: &str, group: &str) -> String {
    let placeholder = ["ORGANIZATION".to_string()];
    let organisations = if organisations.is_empty() {
        &placeholder[..]
    } else {
        organisations
    };
    let body = serde_json::json!({
        "accessLevel": {"accountLicenseType": "express"},
        "servicePrincipal": {"origin": "aad", "originId": object_id, "subjectKind": "servicePrincipal"},
    })
    .to_string();
    let adds: Vec<String> = organisations
        .iter()
        .map(|org| {
            super::fixes::command(&[
                "az",
                "rest",
                "--method",
                "post",
                "--uri",
                &format!("https://vsaex.dev.azure.com/{org}/_apis/serviceprincipalentitlements?api-version=7.1-preview.1"),
                "--resource",
                "499b84ac-1321-427f-aa17-267ca6975798",
                "--body",
                &body,
            ])
        })
        .collect();
    super::fixes::commented(
        &format!(
            "then add it to the project's {group} group (Project settings > Permissions); the organization must be connected to the identity's Entra tenant"
        ),
        &adds.join("\n"),
    )
}

fn quoted(value: &str) -> String {
    format!("'{value}'")
}

pub static AKS_OIDC_ISSUER_DISABLED: Check = Check {
    id: "AZF060",
    name: "aks-oidc-issuer-disabled",
    area: Area::Azure,
    severity: Severity::Error,
    title: "The AKS cluster does not publish an OIDC issuer",
    healthy: "The AKS cluster publishes an OIDC issuer",
    explanation: "Entra ID accepts a Kubernetes token only after fetching the discovery document \
and signing keys of the token's issuer. On AKS that issuer exists only when the cluster's OIDC \
issuer is enabled (`oidcIssuerProfile.enabled`); without it every exchange fails (AADSTS90061 \
or AADSTS70021) and there is no issuer URL to put in a federated credential.",
    fix: "`az aks update -g RG -n CLUSTER --enable-oidc-issuer`, then create the federated \
credentials with the issuer URL it reports and restart the Flux controllers.",
    run: aks_oidc_issuer_disabled,
};

fn aks_oidc_issuer_disabled(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    let cluster = cluster(snapshot)?;
    if !cluster.oidc_issuer_enabled {
        let command = format!(
            "az aks update --resource-group {} --name {} --enable-oidc-issuer",
            cluster.resource_group, cluster.name
        );
        findings
            .add(
                cluster_ref(cluster),
                format!(
                    "AKS cluster {} ({}) has its OIDC issuer disabled: Entra ID cannot verify its ServiceAccount tokens",
                    cluster.name, cluster.id
                ),
                super::fixes::commented("then federate with the issuer URL it reports", &command),
            )
            .action(run_action(&command));
    }
    Ok(())
}

pub static AKS_WORKLOAD_IDENTITY_DISABLED: Check = Check {
    id: "AZF061",
    name: "aks-workload-identity-disabled",
    area: Area::Azure,
    severity: Severity::Error,
    title: "The AKS cluster has workload identity disabled",
    healthy: "The AKS cluster has workload identity enabled",
    explanation: "On AKS the workload identity webhook, which injects the token volume and the \
AZURE_* variables into labelled pods, is the cluster feature \
`securityProfile.workloadIdentity.enabled`. With it off, controllers wired in webhook mode get \
nothing injected and fail with `missing environment variables for workload identity`.",
    fix: "`az aks update -g RG -n CLUSTER --enable-oidc-issuer --enable-workload-identity`, then \
restart the Flux controllers so their pods are mutated.",
    run: aks_workload_identity_disabled,
};

fn aks_workload_identity_disabled(
    snapshot: &Resolved,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    let cluster = cluster(snapshot)?;
    if !cluster.workload_identity_enabled {
        let command = format!(
            "az aks update --resource-group {} --name {} --enable-oidc-issuer --enable-workload-identity",
            cluster.resource_group, cluster.name
        );
        findings
            .add(
                cluster_ref(cluster),
                format!(
                    "AKS cluster {} ({}) has workload identity disabled: the webhook that injects tokens into Flux's pods does not run",
                    cluster.name, cluster.id
                ),
                super::fixes::steps(&[
                    command.clone(),
                    "kubectl rollout restart deployment -n flux-system".to_string(),
                ]),
            )
            .action(run_action(&command));
    }
    Ok(())
}

pub static ISSUER_MISMATCH_CLUSTER: Check = Check {
    id: "AZF062",
    name: "issuer-mismatch-cluster",
    area: Area::Azure,
    severity: Severity::Error,
    title: "AKS reports another issuer than the API server issues tokens with",
    healthy: "AKS reports the issuer the API server issues tokens with",
    explanation: "Federated credentials are usually created from the issuer URL `az aks show` \
reports (`oidcIssuerProfile.issuerURL`). Entra ID compares it byte for byte with the `iss` claim \
of the tokens the API server actually signs, which doctor reads from \
`/.well-known/openid-configuration`. When the two differ (a trailing slash, an issuer changed \
by hand), every credential made from the AKS value fails with AADSTS700211.",
    fix: "Create the federated credentials with the issuer the API server uses (shown in the \
finding). If the cluster's issuer was changed recently, `az aks update` reconciles it.",
    run: issuer_mismatch_cluster,
};

fn issuer_mismatch_cluster(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    let cluster = cluster(snapshot)?;
    let actual = snapshot.issuer.get()?;
    let Some(reported) = &cluster.issuer_url else {
        return Err(Skip(format!(
            "AKS cluster {} reports no issuer URL",
            cluster.name
        )));
    };
    if reported != actual {
        let how = closeness(actual, reported).unwrap_or_else(|| "they are different URLs".into());
        findings.add(
            cluster_ref(cluster),
            format!(
                "AKS reports issuer {} but the API server issues tokens with iss {}: {how}",
                quoted(reported),
                quoted(actual)
            ),
            super::fixes::commented(
                "one per ServiceAccount Flux authenticates as, with the issuer the API server uses",
                &create_command_for(
                    None,
                    actual,
                    "system:serviceaccount:NAMESPACE:SERVICE_ACCOUNT",
                ),
            ),
        );
    }
    Ok(())
}

/// A probe's successful exchange proves the client ID exists even where Resource Manager does
/// not show it (an app registration rather than a managed identity).
fn exchanged(snapshot: &Resolved, client_id: &str) -> bool {
    snapshot.probes.known().is_some_and(|probes| {
        probes.iter().any(|p| {
            p.client_id.eq_ignore_ascii_case(client_id)
                && matches!(p.outcome, ProbeOutcome::Exchanged { .. })
        })
    })
}

pub static IDENTITY_NOT_FOUND: Check = Check {
    id: "AZF063",
    name: "identity-not-found",
    area: Area::Azure,
    severity: Severity::Error,
    title: "No managed identity has the client ID the wiring names",
    healthy: "A managed identity has each client ID the wiring names",
    explanation: "The client ID on a ServiceAccount (or in AZURE_CLIENT_ID) must be the \
`clientId` of a user-assigned managed identity, not its principal (object) ID, its name or its \
resource ID. doctor looks for every client ID in use with one Resource Graph query over the \
subscriptions the login can read. A client ID nothing has is a typo, an identity that was \
deleted, or one in a subscription this login cannot read; Entra ID answers AADSTS700016. An app \
registration is not a managed identity and is not found this way (a successful `--probe` \
proves it exists).",
    fix: "Annotate the ServiceAccount with the identity's client ID (`az identity show -g RG -n \
NAME --query clientId -o tsv`), or give this login Reader on the identity's subscription.",
    run: identity_not_found,
};

fn identity_not_found(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    let state = azure(snapshot)?;
    state.identities.get()?;
    for subject in subjects(snapshot) {
        let Some(client_id) = subject.valid_client_id() else {
            continue;
        };
        if state.identity(client_id).is_some() || exchanged(snapshot, client_id) {
            continue;
        }
        findings.add(
            subject.object_ref(),
            format!(
                "{} names client ID {client_id}, which no user-assigned managed identity has in the {} subscription(s) {} can read",
                subject.describe(),
                state.subscriptions.len(),
                state.login
            ),
            super::fixes::commented(
                "the identity's client ID, for the annotation (or give this login Reader where the identity lives)",
                "az identity show --name IDENTITY --resource-group RESOURCE_GROUP --query clientId -o tsv",
            ),
        );
    }
    Ok(())
}

/// What the token of a subject carries: the probe's real claims when there are some, else the
/// issuer the API server publishes, else the one AKS reports.
fn expected_issuer(snapshot: &Resolved, state: &AzureState, subject: &WiSubject) -> Option<String> {
    probe_for(snapshot, subject)
        .and_then(|p| p.claims.as_ref())
        .map(|c| c.issuer.clone())
        .or_else(|| snapshot.issuer.known().cloned())
        .or_else(|| state.cluster.known().and_then(|c| c.issuer_url.clone()))
}

fn probe_for<'a>(snapshot: &'a Snapshot, subject: &WiSubject) -> Option<&'a Probe> {
    snapshot
        .probes
        .known()?
        .iter()
        .find(|p| p.namespace == subject.namespace && p.service_account == subject.service_account)
}

/// One subject's credentials judged against its expected issuer, subject and audience.
struct Judged<'a> {
    subject: WiSubject,
    identity: &'a ManagedIdentity,
    issuer: String,
    verdict: Verdict<'a>,
}

fn judge(snapshot: &Resolved) -> Result<Vec<Judged<'_>>, Skip> {
    let state = azure(snapshot)?;
    state.identities.get()?;
    let mut judged = Vec::new();
    for subject in subjects(snapshot) {
        let Some(identity) = subject.valid_client_id().and_then(|c| state.identity(c)) else {
            continue;
        };
        let credentials = identity.credentials.get()?;
        let Some(issuer) = expected_issuer(snapshot, state, &subject) else {
            return Err(Skip(
                "the cluster's issuer is unknown (neither the API server nor AKS reported one)"
                    .into(),
            ));
        };
        let kube_subject = subject.subject();
        let verdict = assess(
            credentials,
            &Expected {
                issuer: &issuer,
                subject: &kube_subject,
                audience: TOKEN_AUDIENCE,
            },
        );
        judged.push(Judged {
            subject,
            identity,
            issuer,
            verdict,
        });
    }
    Ok(judged)
}

/// [`create_command`] for the identity when Resource Manager showed it, else with its names
/// as placeholders.
fn create_command_for(identity: Option<&ManagedIdentity>, issuer: &str, subject: &str) -> String {
    if let Some(identity) = identity {
        return create_command(identity, issuer, subject);
    }
    super::fixes::command(&[
        "az",
        "identity",
        "federated-credential",
        "create",
        "--resource-group",
        "RESOURCE_GROUP",
        "--identity-name",
        "IDENTITY",
        "--name",
        &crate::azure::federate::credential_name(issuer, subject),
        "--issuer",
        issuer,
        "--subject",
        subject,
        "--audiences",
        TOKEN_AUDIENCE,
    ])
}

fn create_command(identity: &ManagedIdentity, issuer: &str, subject: &str) -> String {
    let name = crate::azure::federate::credential_name(issuer, subject);
    format!(
        "az identity federated-credential create --subscription {} --resource-group {} --identity-name {} --name {name} --issuer {issuer} --subject {subject} --audiences {TOKEN_AUDIENCE}",
        identity.subscription_id, identity.resource_group, identity.name
    )
}

fn describe_identity(identity: &ManagedIdentity) -> String {
    format!(
        "identity {} (client ID {})",
        identity.name, identity.client_id
    )
}

pub static FIC_MISSING: Check = Check {
    id: "AZF064",
    name: "fic-missing",
    area: Area::Azure,
    severity: Severity::Error,
    title: "An identity has no federated credential for a ServiceAccount Flux uses",
    healthy: "Identities have federated credentials for the ServiceAccounts Flux uses",
    explanation: "For Entra ID to exchange a ServiceAccount's token, the identity it names must \
hold a federated credential with this cluster's issuer, the subject \
`system:serviceaccount:NAMESPACE:NAME` and the audience `api://AzureADTokenExchange`. Each \
controller ServiceAccount and each ServiceAccount objects name needs its own; a credential for \
another cluster's issuer does not count. Without one the exchange fails with AADSTS70021 or \
AADSTS700213.",
    fix: "Create the credential (`kubectl azflux enable --federate --identity ID`, or the `az \
identity federated-credential create` command in the finding). Entra ID can take several \
minutes to honour a new credential; exchanges fail with AADSTS70021 until then.",
    run: fic_missing,
};

fn fic_missing(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    for judged in judge(snapshot)? {
        let Verdict::Missing { same_subject } = &judged.verdict else {
            continue;
        };
        let subject = judged.subject.subject();
        let elsewhere = if same_subject.is_empty() {
            String::new()
        } else {
            let issuers: Vec<String> = same_subject
                .iter()
                .map(|c| format!("{} ({})", quoted(&c.issuer), c.name))
                .collect();
            format!(
                "; it has one for this subject under other issuers (another cluster?): {}",
                issuers.join(", ")
            )
        };
        let declared = snapshot
            .declared_credentials
            .iter()
            .find(|d| d.subject.as_deref() == Some(subject.as_str()))
            .map_or_else(String::new, |d| {
                format!(
                    "; FederatedIdentityCredential {}/{} in the inputs declares it: Azure Service Operator has not created it yet (or it was created moments ago: Entra ID can take several minutes to honour it)",
                    d.namespace, d.name
                )
            });
        let command = create_command(judged.identity, &judged.issuer, &subject);
        findings
            .add(
                judged.subject.object_ref(),
                format!(
                    "{} has no federated credential for {} with issuer {}, used by {}{elsewhere}{declared}",
                    describe_identity(judged.identity),
                    quoted(&subject),
                    quoted(&judged.issuer),
                    judged.subject.describe()
                ),
                command.clone(),
            )
            .action(run_action(&command));
    }
    Ok(())
}

fn mismatch_finding(
    findings: &mut Findings<'_>,
    judged: &Judged<'_>,
    credential: &FederatedCredential,
    field: &str,
    difference: &Difference,
) {
    findings.add(
        judged.subject.object_ref(),
        format!(
            "federated credential {} on {} has {field} {} where {} needs {}: {}",
            credential.name,
            describe_identity(judged.identity),
            quoted(&difference.found),
            judged.subject.describe(),
            quoted(&difference.expected),
            difference.how
        ),
        format!(
            "az identity federated-credential update --subscription {} --resource-group {} --identity-name {} --name {} --{} {}",
            judged.identity.subscription_id,
            judged.identity.resource_group,
            judged.identity.name,
            credential.name,
            if field == "audience" { "audiences" } else { field },
            quoted(&difference.expected)
        ),
    );
}

fn mismatch_check(
    snapshot: &Resolved,
    findings: &mut Findings<'_>,
    field: &str,
    pick: for<'v> fn(&'v Verdict<'v>) -> Option<(&'v FederatedCredential, &'v Difference)>,
) -> Result<(), Skip> {
    for judged in judge(snapshot)? {
        if let Some((credential, difference)) = pick(&judged.verdict) {
            mismatch_finding(findings, &judged, credential, field, difference);
        }
    }
    Ok(())
}

pub static FIC_ISSUER_MISMATCH: Check = Check {
    id: "AZF065",
    name: "fic-issuer-mismatch",
    area: Area::Azure,
    severity: Severity::Error,
    title: "A federated credential's issuer is close to the cluster's but not equal",
    healthy: "Federated credential issuers are exact, not near misses",
    explanation: "Entra ID compares the credential's issuer with the token's `iss` claim byte \
for byte: a missing or extra trailing slash, or a difference in letter case, is a different \
issuer (AADSTS700211, or AADSTS7002138 for case since matching became case-sensitive).",
    fix: "Update the credential's issuer to the exact value in the finding.",
    run: fic_issuer_mismatch,
};

fn fic_issuer_mismatch(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    mismatch_check(snapshot, findings, "issuer", |verdict| match verdict {
        Verdict::Mismatch {
            credential,
            issuer: Some(d),
            ..
        } => Some((credential, d)),
        _ => None,
    })
}

pub static FIC_SUBJECT_MISMATCH: Check = Check {
    id: "AZF066",
    name: "fic-subject-mismatch",
    area: Area::Azure,
    severity: Severity::Error,
    title: "A federated credential's subject is close to the ServiceAccount's but not equal",
    healthy: "Federated credential subjects are exact, not near misses",
    explanation: "The subject must be `system:serviceaccount:NAMESPACE:NAME` of the ServiceAccount \
the controller or object uses, exactly: another namespace, other letter case or stray \
whitespace is another subject (AADSTS700213).",
    fix: "Update the credential's subject to the exact value in the finding, or create one for it.",
    run: fic_subject_mismatch,
};

fn fic_subject_mismatch(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    mismatch_check(snapshot, findings, "subject", |verdict| match verdict {
        Verdict::Mismatch {
            credential,
            subject: Some(d),
            ..
        } => Some((credential, d)),
        _ => None,
    })
}

pub static FIC_AUDIENCE_MISMATCH: Check = Check {
    id: "AZF067",
    name: "fic-audience-mismatch",
    area: Area::Azure,
    severity: Severity::Error,
    title: "A federated credential does not accept the token exchange audience",
    healthy: "Federated credentials accept the token exchange audience",
    explanation: "Flux's tokens (the webhook's projected token, or the one a controller mints for \
an object-level ServiceAccount) carry the audience `api://AzureADTokenExchange`; a credential \
must list exactly that audience, or Entra ID finds no matching record (AADSTS70021).",
    fix: "Set the credential's audiences to `[\"api://AzureADTokenExchange\"]`.",
    run: fic_audience_mismatch,
};

fn fic_audience_mismatch(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    mismatch_check(snapshot, findings, "audience", |verdict| match verdict {
        Verdict::Mismatch {
            credential,
            audience: Some(d),
            ..
        } => Some((credential, d)),
        _ => None,
    })
}

pub static FIC_LIMIT_REACHED: Check = Check {
    id: "AZF068",
    name: "fic-limit-reached",
    area: Area::Azure,
    severity: Severity::Warning,
    title: "An identity already has 20 federated credentials",
    healthy: "Identities have room for more federated credentials",
    explanation: "Entra ID allows at most 20 federated credentials per identity. Object-level \
workload identity fans out quickly: each tenant ServiceAccount on each cluster needs its own. \
At the limit, no credential can be added, so a ServiceAccount that still lacks one cannot be \
federated to this identity.",
    fix: "Delete credentials no longer used, or give some ServiceAccounts a second identity.",
    run: fic_limit_reached,
};

fn fic_limit_reached(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    let state = azure(snapshot)?;
    // Without the issuer nothing can be judged, but the count alone still tells.
    let judged = judge(snapshot).unwrap_or_default();
    for identity in state.identities.get()? {
        let count = identity.credentials.get()?.len();
        if count < FIC_LIMIT {
            continue;
        }
        let blocked: Vec<String> = judged
            .iter()
            .filter(|j| {
                std::ptr::eq(j.identity, identity) && !matches!(j.verdict, Verdict::Match(_))
            })
            .map(|j| j.subject.subject())
            .collect();
        let finding = findings.add(
            identity_ref(identity),
            if blocked.is_empty() {
                format!(
                    "{} has {count} federated credentials, Entra ID's limit: no ServiceAccount can be added to it",
                    describe_identity(identity)
                )
            } else {
                format!(
                    "{} has {count} federated credentials, Entra ID's limit, so the missing one for {} cannot be added",
                    describe_identity(identity),
                    join_words(&blocked)
                )
            },
            super::fixes::commented(
                "the credentials, to delete the unused ones (`az identity federated-credential delete`), or federate a second identity",
                &format!(
                    "az identity federated-credential list --resource-group {} --identity-name {} -o table",
                    identity.resource_group, identity.name
                ),
            ),
        );
        if !blocked.is_empty() {
            finding.severity(Severity::Error);
        }
    }
    Ok(())
}

pub(super) fn resource_for<'a>(
    resources: &'a [AzureResource],
    target: &Target,
) -> Option<&'a AzureResource> {
    let (Target::Registry(key)
    | Target::StorageAccount(key)
    | Target::Cluster(key)
    | Target::KeyVault(Some(key))
    | Target::EventHubs(Some(key))) = target
    else {
        return None;
    };
    resources.iter().find(|r| r.key.eq_ignore_ascii_case(key))
}

fn target_text(target: &Target) -> String {
    match target {
        Target::Registry(host) => format!("registry {host}"),
        Target::StorageAccount(account) => format!("storage account {account}"),
        Target::Cluster(id) => format!("AKS cluster {id}"),
        Target::KeyVault(Some(vault)) => format!("Key Vault {vault}"),
        Target::KeyVault(None) => "the Key Vault of its SOPS keys".into(),
        Target::EventHubs(Some(namespace)) => format!("Event Hubs namespace {namespace}"),
        Target::EventHubs(None) => "its Event Hubs namespace".into(),
        Target::DevOps => "Azure DevOps".into(),
        Target::Unresolved => "an unresolved endpoint".into(),
    }
}

fn objects_text(uses: &[&SubjectUse]) -> String {
    let names: Vec<String> = uses.iter().map(|u| u.object.to_string()).collect();
    join_words(&names)
}

pub static ROLE_MISSING: Check = Check {
    id: "AZF069",
    name: "role-missing",
    area: Area::Azure,
    severity: Severity::Error,
    title: "An identity is not allowed what a Flux integration does",
    healthy: "Identities are allowed what their Flux integrations do",
    explanation: "A federated token only proves who the controller is; the identity also needs \
a role that allows what the controller does, assigned at the resource's scope or one that covers \
it (resource < resource group < subscription < management group). doctor reads the definition \
of every role assigned, built-in or custom, and looks for the operation: the action \
`Microsoft.ContainerRegistry/registries/pull/read` for a registry in legacy mode (AcrPull), the \
data actions `…/repositories/content/read` and `…/metadata/read` for a registry in ABAC mode \
(Container Registry Repository Reader: there AcrPull, AcrPush, Owner and Contributor give no \
data access), `…/blobs/read` for a Bucket (Storage Blob Data Reader), \
`Microsoft.KeyVault/vaults/keys/decrypt/action` for SOPS (Key Vault Crypto User), \
`Microsoft.EventHub/namespaces/messages/send/action` for a Provider (Azure Event Hubs Data \
Sender) and the AKS credential action for a remote cluster (Azure Kubernetes Service Cluster \
User Role). `notActions` and `notDataActions` subtract; a condition is evaluated when it limits \
ACR repositories, and reported as not evaluable otherwise. A vault with access policies instead \
of RBAC is judged by its policy: `decrypt` among the key permissions for the identity's object \
ID. Without the permission pulls and decryption fail with 401/403 although the token exchange \
works. The vault is named by the SOPS metadata of the manifests, the Event Hubs namespace by the \
Provider's `channel`; without them any assignment in the subscriptions read counts.",
    fix: "Grant the role at the resource's scope (the `az role assignment create` command in the \
finding), or for an access-policy vault `az keyvault set-policy --key-permissions decrypt`.",
    run: role_missing,
};

/// Where one identity's assignments are looked for, for one target.
struct Scope {
    /// "on registry contoso (/subscriptions/…)".
    text: String,
    /// The scope to grant at, with placeholders where doctor cannot know it.
    grant_at: String,
}

fn subscriptions_read(identity: &ManagedIdentity, mine: &[&RoleAssignment]) -> String {
    let mut subscriptions: Vec<&str> = mine.iter().map(|a| a.listed_in.as_str()).collect();
    subscriptions.push(identity.subscription_id.as_str());
    subscriptions.sort_unstable();
    subscriptions.dedup();
    subscriptions.join(", ")
}

/// The assignments that apply to the target and where they were looked for; `None` when the
/// target needs no Azure role.
fn applying<'a>(
    identity: &ManagedIdentity,
    mine: &[&'a RoleAssignment],
    resource: Option<&AzureResource>,
    target: &Target,
    container: Option<&str>,
) -> Option<(Vec<&'a RoleAssignment>, Scope)> {
    if let Some(resource) = resource {
        // A Bucket's container is a scope of its own under the account; without its name a
        // grant on any container of the account is taken as the Bucket's.
        let container_scope =
            container.map(|c| format!("{}/blobServices/default/containers/{c}", resource.id));
        let blob = resource.kind == ResourceKind::StorageAccount;
        let found = mine
            .iter()
            .copied()
            .filter(|a| {
                covers(a, &resource.id)
                    || match &container_scope {
                        Some(scope) => covers(a, scope),
                        None => blob && roles::below(a, &resource.id),
                    }
            })
            .collect();
        let (text, grant_at) = match &container_scope {
            Some(scope) => (
                format!(
                    "on container {} of {} {} ({})",
                    container.unwrap_or_default(),
                    resource.kind.noun(),
                    resource.name,
                    resource.id
                ),
                scope.clone(),
            ),
            None => (
                format!(
                    "on {} {} ({})",
                    resource.kind.noun(),
                    resource.name,
                    resource.id
                ),
                resource.id.clone(),
            ),
        };
        return Some((found, Scope { text, grant_at }));
    }
    let (what, provider) = match target {
        Target::KeyVault(None) => ("the vault", "Microsoft.KeyVault/vaults/VAULT"),
        Target::EventHubs(None) => ("the namespace", "Microsoft.EventHub/namespaces/NAMESPACE"),
        _ => return None,
    };
    Some((
        mine.to_vec(),
        Scope {
            text: format!(
                "at any scope in subscription(s) {} ({what} is not named in the inputs)",
                subscriptions_read(identity, mine)
            ),
            grant_at: format!(
                "/subscriptions/{}/resourceGroups/RESOURCE_GROUP/providers/{provider}",
                identity.subscription_id
            ),
        },
    ))
}

/// The assignments of roles an ABAC registry ignores, by the action they carry.
fn ignored_by_abac(applying: &[&RoleAssignment], definitions: &[RoleDefinition]) -> Vec<String> {
    applying
        .iter()
        .filter_map(|a| {
            let definition = definitions.iter().find(|d| d.id == a.role)?;
            definition
                .allows(roles::ACR_PULL_ACTION)
                .then(|| format!("{} at {}", definition.name, a.scope))
        })
        .collect()
}

/// Everything one role finding says.
struct RoleCase<'a> {
    subject: &'a WiSubject,
    identity: &'a ManagedIdentity,
    uses: &'a [&'a SubjectUse],
    resource: Option<&'a AzureResource>,
    need: Need,
}

fn operations_text(need: &Need) -> String {
    let names: Vec<String> = need.operations.iter().map(|o| o.describe()).collect();
    join_words(&names)
}

fn report_grant(
    findings: &mut Findings<'_>,
    case: &RoleCase<'_>,
    scope: &Scope,
    grant: Grant,
    abac_ignored: &[String],
) {
    let command = format!(
        "az role assignment create --assignee-object-id {} --assignee-principal-type ServicePrincipal --role {} --scope {}",
        case.identity.principal_id, case.need.role.id, scope.grant_at
    );
    let message = format!(
        "{} has no role that allows {} ({} does) {}, needed by {} through {}",
        describe_identity(case.identity),
        operations_text(&case.need),
        case.need.role.name,
        scope.text,
        objects_text(case.uses),
        case.subject.describe()
    );
    let fix = command.clone();
    match grant {
        Grant::Yes => {}
        Grant::No(notes) => {
            let mut why = notes;
            if !abac_ignored.is_empty() {
                why.insert(
                    0,
                    format!(
                        "the registry uses ABAC repository permissions, where {} give no data access",
                        join_words(abac_ignored)
                    ),
                );
            }
            // A vault doctor cannot name may authorize with access policies instead.
            let unnamed_vault =
                case.need.role == roles::KEY_VAULT_CRYPTO_USER && case.resource.is_none();
            if unnamed_vault {
                why.push(
                    "if the vault authorizes with access policies rather than Azure RBAC, its policy decides instead (run doctor on the manifests with the SOPS files to name the vault)".into(),
                );
            }
            let why = if why.is_empty() {
                String::new()
            } else {
                format!("; {}", why.join("; "))
            };
            let finding = findings
                .add(case.subject.object_ref(), format!("{message}{why}"), fix)
                .action(run_action(&command));
            if unnamed_vault {
                finding.severity(Severity::Warning);
            }
        }
        Grant::Maybe(reasons) => {
            findings
                .add(
                    case.subject.object_ref(),
                    format!(
                        "{message}, as far as doctor can tell; not evaluable: {}",
                        reasons.join("; ")
                    ),
                    super::fixes::commented(
                        "unless the assignments doctor could not evaluate allow it",
                        &fix,
                    ),
                )
                .severity(Severity::Warning);
        }
    }
}

/// A vault with access policies: its policy, not RBAC, decides.
fn access_policy_finding(findings: &mut Findings<'_>, case: &RoleCase<'_>, vault: &AzureResource) {
    let policies = &vault.settings.access_policies;
    if policies
        .iter()
        .any(|p| p.decrypts_for(&case.identity.principal_id))
    {
        return;
    }
    let has_entry = policies.iter().any(|p| {
        p.object_id
            .eq_ignore_ascii_case(&case.identity.principal_id)
    });
    let entry = if has_entry {
        "its entry for the identity lacks the key permission decrypt"
    } else {
        "it has no entry for the identity's object ID"
    };
    let command = format!(
        "az keyvault set-policy --name {} --object-id {} --key-permissions decrypt",
        vault.name, case.identity.principal_id
    );
    findings
        .add(
            case.subject.object_ref(),
            format!(
                "Key Vault {} ({}) authorizes with access policies, not Azure RBAC, and {entry}: {} cannot decrypt for {} through {}",
                vault.name,
                vault.id,
                describe_identity(case.identity),
                objects_text(case.uses),
                case.subject.describe()
            ),
            command.clone(),
        )
        .action(run_action(&command));
}

fn unresolved_finding(
    findings: &mut Findings<'_>,
    state: &AzureState,
    subject: &WiSubject,
    identity: &ManagedIdentity,
    target: &Target,
    uses: &[&SubjectUse],
) {
    findings
        .add(
            subject.object_ref(),
            format!(
                "{} used by {} ({}) is not among the resources {} can read, so the roles of {} on it cannot be checked",
                target_text(target),
                objects_text(uses),
                subject.describe(),
                state.login,
                describe_identity(identity)
            ),
            super::fixes::commented(
                "check the endpoint's host; or let the login read the resource's subscription",
                &format!(
                    "az role assignment create --assignee LOGIN --role Reader --scope /subscriptions/{}",
                    identity.subscription_id
                ),
            ),
        )
        .severity(Severity::Warning);
}

type UseGroup<'a> = (
    &'a Target,
    AzureService,
    Option<&'a Repository>,
    Option<&'a str>,
);

fn role_missing(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    let state = azure(snapshot)?;
    state.identities.get()?;
    let resources = state.resources.get()?;
    let assignments = state.role_assignments.get()?;
    let definitions = state.role_definitions.get()?;
    for subject in subjects(snapshot) {
        let Some(identity) = subject.valid_client_id().and_then(|c| state.identity(c)) else {
            continue;
        };
        let mine: Vec<&RoleAssignment> = assignments
            .iter()
            .filter(|a| a.principal_id.eq_ignore_ascii_case(&identity.principal_id))
            .collect();
        let mut groups: BTreeMap<UseGroup<'_>, Vec<&SubjectUse>> = BTreeMap::new();
        for use_ in &subject.uses {
            groups
                .entry((
                    &use_.target,
                    use_.service,
                    use_.repository.as_ref(),
                    use_.container.as_deref(),
                ))
                .or_default()
                .push(use_);
        }
        for ((target, service, repository, container), uses) in groups {
            let resource = resource_for(resources, target);
            let resolvable = matches!(
                target,
                Target::Registry(_)
                    | Target::StorageAccount(_)
                    | Target::Cluster(_)
                    | Target::KeyVault(Some(_))
                    | Target::EventHubs(Some(_))
            );
            if resolvable && resource.is_none() {
                unresolved_finding(findings, state, &subject, identity, target, &uses);
                continue;
            }
            let abac = resource.is_some_and(|r| r.settings.abac());
            let Some(need) = need(service, abac) else {
                continue;
            };
            let case = RoleCase {
                subject: &subject,
                identity,
                uses: &uses,
                resource,
                need,
            };
            if let Some(vault) = case
                .resource
                .filter(|r| r.kind == ResourceKind::KeyVault && !r.settings.vault_rbac())
            {
                access_policy_finding(findings, &case, vault);
                continue;
            }
            let Some((applying, scope)) = applying(identity, &mine, resource, target, container)
            else {
                continue;
            };
            let grant = roles::grant(&applying, definitions, &need, repository);
            let ignored = if abac {
                ignored_by_abac(&applying, definitions)
            } else {
                Vec::new()
            };
            report_grant(findings, &case, &scope, grant, &ignored);
        }
    }
    Ok(())
}

pub static REGISTRY_REFUSES_ARM_TOKENS: Check = Check {
    id: "AZF072",
    name: "registry-refuses-arm-tokens",
    area: Area::Azure,
    severity: Severity::Error,
    title: "A registry refuses the Resource Manager tokens this Flux release presents",
    healthy: "Registries accept the tokens this Flux release presents",
    explanation: "Flux exchanges an Entra ID token for an ACR refresh token at the registry's \
`/oauth2/exchange`. Until source-controller v1.8.1 and image-reflector-controller v1.1.1 (both \
first in Flux v2.8.2) that token was issued for Resource Manager \
(`https://management.azure.com/.default`); later releases ask for the registry's own audience \
(`https://containerregistry.azure.net/.default`). A registry whose \
`policies.azureADAuthenticationAsArmPolicy.status` is `disabled` (`az acr config \
authentication-as-arm update --status disabled`, enforced by the built-in Azure Policy \
\"Container registries should have ARM audience token authentication disabled\") refuses the \
older token, so every pull from it fails with 401 although the identity and its role are right. \
The AKS Flux extension still ships an older release.",
    fix: "Upgrade Flux to v2.8.2 or later; or, where policy allows, re-enable ARM audience \
tokens on the registry (`az acr config authentication-as-arm update -r REGISTRY --status \
enabled`).",
    run: registry_refuses_arm_tokens,
};

/// The release of each controller that first asks ACR for an ACR-scoped token.
fn acr_scoped_token(controller: &str) -> Option<&'static Feature> {
    match controller {
        "source-controller" => Some(&features::SOURCE_ACR_SCOPED_TOKEN),
        "image-reflector-controller" => Some(&features::IMAGE_REFLECTOR_ACR_SCOPED_TOKEN),
        _ => None,
    }
}

fn registry_refuses_arm_tokens(
    snapshot: &Resolved,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    let resources = azure(snapshot)?.resources.get()?;
    let mut by_registry: BTreeMap<(&str, &str), Vec<SubjectUse>> = BTreeMap::new();
    let subjects = subjects(snapshot);
    for use_ in subjects.iter().flat_map(|s| &s.uses) {
        let Some(registry) = resource_for(resources, &use_.target).filter(|r| {
            r.kind == ResourceKind::ContainerRegistry && r.settings.refuses_arm_tokens()
        }) else {
            continue;
        };
        let Some(kind) = FluxKind::ALL
            .into_iter()
            .find(|k| k.as_str() == use_.object.kind)
        else {
            continue;
        };
        by_registry
            .entry((registry.id.as_str(), controller_for(kind)))
            .or_default()
            .push(use_.clone());
    }
    for ((registry_id, controller), uses) in by_registry {
        let Some(feature) = acr_scoped_token(controller) else {
            continue;
        };
        let Some(registry) = resources.iter().find(|r| r.id == registry_id) else {
            continue;
        };
        let running = snapshot
            .controller_path(controller)
            .map(|p| p.running)
            .unwrap_or_default();
        let has = running.has(feature);
        if has == Some(true) {
            continue;
        }
        let refs: Vec<&SubjectUse> = uses.iter().collect();
        let release = match has {
            Some(_) => format!("{controller} {} asks for one", running.describe()),
            None => format!(
                "the release of {controller} cannot be told, and before {} it asks for one",
                feature.since
            ),
        };
        let finding = findings.add(
            ObjectRef::cluster_scoped("Registry", &registry.name),
            format!(
                "registry {} ({}) refuses Entra ID tokens issued for Resource Manager (azureADAuthenticationAsArmPolicy disabled), and {release}: {} cannot pull from it. {controller} asks for ACR-scoped tokens from {} (Flux {})",
                registry.name,
                registry.id,
                objects_text(&refs),
                feature.since,
                feature.upgrade_to()
            ),
            super::fixes::commented(
                &format!(
                    "or upgrade Flux to {} or later, whose {controller} asks for ACR-scoped tokens",
                    feature.upgrade_to()
                ),
                &format!(
                    "az acr config authentication-as-arm update --registry {} --status enabled",
                    registry.name
                ),
            ),
        );
        if has.is_none() {
            finding.severity(Severity::Warning);
        }
    }
    Ok(())
}

pub static DECLARED_FIC_MISMATCH: Check = Check {
    id: "AZF073",
    name: "declared-fic-mismatch",
    area: Area::Azure,
    severity: Severity::Error,
    title: "A federated credential declared in the manifests would not match Flux's tokens",
    healthy: "Federated credentials declared in the manifests match Flux's tokens",
    explanation: "Teams that keep their Azure side in Git declare federated credentials as Azure \
Service Operator `FederatedIdentityCredential` objects, owned by a `UserAssignedIdentity`. \
doctor checks them offline, without Azure credentials, the way Entra ID will match them: \
exactly one audience, `api://AzureADTokenExchange`; the issuer byte for byte the cluster's (the API server's or \
AKS's when known; AKS issuer URLs end with a slash); the subject \
`system:serviceaccount:NAMESPACE:NAME` of a ServiceAccount Flux authenticates as, without \
wildcards, whitespace or another namespace. A value written as a Flux post-build substitution \
(`${ISSUER_URL}`) is filled in when a Kustomization applies the object; doctor reports it as \
unresolved, not wrong. When the inputs declare credentials, a ServiceAccount Flux uses that none \
of them federates is reported too; with `--azure`, a credential owned by another identity than \
the one the ServiceAccount's client ID names.",
    fix: "Correct the field of the object named in the finding; declare a credential for each \
ServiceAccount Flux authenticates as.",
    run: declared_fic_mismatch,
};

/// The names of the `${NAME}` substitutions in a value.
fn substitutions(value: &str) -> Vec<String> {
    value
        .split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_string()))
        .collect()
}

/// The cluster's issuer when something said it: the API server, else AKS.
fn known_issuer(snapshot: &Resolved) -> Option<String> {
    snapshot.issuer.known().cloned().or_else(|| {
        snapshot
            .azure
            .known()
            .and_then(|s| s.cluster.known())
            .and_then(|c| c.issuer_url.clone())
    })
}

/// What is wrong with a declared issuer, if anything.
fn issuer_problem(issuer: &str, known: Option<&str>) -> Option<(Severity, String)> {
    if let Some(known) = known {
        if issuer == known {
            return None;
        }
        return Some(closeness(known, issuer).map_or_else(
            || {
                (
                    Severity::Warning,
                    format!(
                        "issuer {} is not this cluster's issuer {} (a credential for another cluster?)",
                        quoted(issuer),
                        quoted(known)
                    ),
                )
            },
            |how| {
                (
                    Severity::Error,
                    format!(
                        "issuer {} is not the cluster's {}: {how}",
                        quoted(issuer),
                        quoted(known)
                    ),
                )
            },
        ));
    }
    if issuer.trim() != issuer {
        return Some((
            Severity::Error,
            format!(
                "issuer {} has surrounding whitespace, which Entra ID refuses",
                quoted(issuer)
            ),
        ));
    }
    if !issuer.starts_with("https://") {
        return Some((
            Severity::Error,
            format!("issuer {} is not an https URL", quoted(issuer)),
        ));
    }
    (host_of(issuer).ends_with(".oic.prod-aks.azure.com") && !issuer.ends_with('/')).then(|| {
        (
            Severity::Error,
            format!(
                "issuer {} lacks the trailing slash every AKS issuer URL has",
                quoted(issuer)
            ),
        )
    })
}

fn audience_problem(audiences: &[String]) -> Option<String> {
    match audiences {
        [one] if one == TOKEN_AUDIENCE => None,
        [] => Some(format!(
            "declares no audience; it needs {}",
            quoted(TOKEN_AUDIENCE)
        )),
        [one] => Some(format!(
            "audience {} is not {}: {}",
            quoted(one),
            quoted(TOKEN_AUDIENCE),
            closeness(TOKEN_AUDIENCE, one)
                .unwrap_or_else(|| "it is not the token exchange audience".into())
        )),
        many => Some(format!(
            "declares {} audiences; a federated credential has exactly one, {}",
            many.len(),
            quoted(TOKEN_AUDIENCE)
        )),
    }
}

/// One declared credential's fields: problems, and fields left to substitution.
fn judge_declared(
    declared: &crate::model::DeclaredCredential,
    issuer: Option<&str>,
    used: &[String],
) -> (Vec<(Severity, String)>, Vec<String>) {
    let mut problems = Vec::new();
    let mut unresolved = Vec::new();
    let mut pending = |field: &str, value: Option<&str>| -> Option<String> {
        match value {
            None => {
                unresolved.push(format!(
                    "{field} (not written in the object: from a ConfigMap?)"
                ));
                None
            }
            Some(v) if !substitutions(v).is_empty() => {
                unresolved.push(format!("{field} {v}"));
                None
            }
            Some(v) => Some(v.to_string()),
        }
    };
    if let Some(value) = pending("issuer", declared.issuer.as_deref()) {
        problems.extend(issuer_problem(&value, issuer));
    }
    let subject = pending("subject", declared.subject.as_deref());
    if let Some(value) = subject.filter(|v| !used.contains(v))
        && let Some((wanted, how)) = used
            .iter()
            .find_map(|u| closeness(u, &value).map(|how| (u, how)))
    {
        problems.push((
            Severity::Error,
            format!(
                "subject {} is not {}, which Flux authenticates as: {how}",
                quoted(&value),
                quoted(wanted)
            ),
        ));
    }
    let audiences: Vec<String> = declared.audiences.clone();
    if audiences.iter().any(|a| !substitutions(a).is_empty()) {
        unresolved.push(format!("audiences {}", audiences.join(", ")));
    } else if let Some(problem) = audience_problem(&audiences) {
        problems.push((Severity::Error, problem));
    }
    (problems, unresolved)
}

/// With Azure read: a credential declared on another identity than the one the
/// ServiceAccount's client ID names never serves its token exchange.
fn owner_problem(
    snapshot: &Resolved,
    credential: &crate::model::DeclaredCredential,
    subjects: &[WiSubject],
) -> Option<(Severity, String)> {
    let state = snapshot.azure.known()?;
    let subject = subjects
        .iter()
        .find(|s| credential.subject.as_deref() == Some(s.subject().as_str()))?;
    let identity = subject.valid_client_id().and_then(|c| state.identity(c))?;
    let owner = credential.owner.as_deref()?;
    let azure_name = snapshot
        .declared_identities
        .iter()
        .find(|i| i.namespace == credential.namespace && i.name == owner)
        .map_or(owner, |i| i.azure_name.as_str());
    if !substitutions(azure_name).is_empty() || azure_name.eq_ignore_ascii_case(&identity.name) {
        return None;
    }
    Some((
        Severity::Error,
        format!(
            "federates {} with identity {azure_name}, but {} names {}: Entra ID looks for the credential on that identity",
            subject.subject(),
            subject.describe(),
            describe_identity(identity)
        ),
    ))
}

fn declared_fic_mismatch(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    let declared = &snapshot.declared_credentials;
    if declared.is_empty() {
        return Ok(());
    }
    let issuer = known_issuer(snapshot);
    let subjects = subjects(snapshot);
    let used: Vec<String> = subjects
        .iter()
        .filter(|s| s.client_id.is_some())
        .map(WiSubject::subject)
        .collect();
    for credential in declared {
        let object = ObjectRef::namespaced(
            "FederatedIdentityCredential",
            &credential.namespace,
            &credential.name,
        );
        let owner = credential.owner.as_deref().unwrap_or("its identity");
        let (mut problems, unresolved) = judge_declared(credential, issuer.as_deref(), &used);
        problems.extend(owner_problem(snapshot, credential, &subjects));
        for (severity, problem) in problems {
            findings
                .add(
                    object.clone(),
                    format!(
                        "FederatedIdentityCredential {}/{} (on {owner}) {problem}",
                        credential.namespace, credential.name
                    ),
                    declared_fix(credential, issuer.as_deref(), &used),
                )
                .severity(severity);
        }
        if !unresolved.is_empty() {
            let against = issuer.as_ref().map_or_else(String::new, |i| {
                format!("; it must come out as the cluster's issuer {}", quoted(i))
            });
            findings
                .add(
                    object.clone(),
                    format!(
                        "FederatedIdentityCredential {}/{} (on {owner}) leaves {} to a substitution doctor cannot resolve from these inputs (Flux post-build fills it in when a Kustomization applies it){against}",
                        credential.namespace,
                        credential.name,
                        join_words(&unresolved)
                    ),
                    "",
                )
                .severity(Severity::Info);
        }
    }
    let open_subject = declared.iter().any(|d| {
        d.subject
            .as_deref()
            .is_none_or(|s| !substitutions(s).is_empty())
    });
    if open_subject {
        return Ok(());
    }
    for subject in subjects.iter().filter(|s| s.client_id.is_some()) {
        let kube_subject = subject.subject();
        if declared
            .iter()
            .any(|d| d.subject.as_deref() == Some(kube_subject.as_str()))
        {
            continue;
        }
        findings
            .add(
                subject.object_ref(),
                format!(
                    "the manifests declare federated credentials, but none for {} ({}): unless it is made outside Git, its token exchange fails (AADSTS70021)",
                    quoted(&kube_subject),
                    subject.describe()
                ),
                new_declared_fix(&declared[0], issuer.as_deref(), &kube_subject),
            )
            .severity(Severity::Warning);
    }
    Ok(())
}

/// A declared credential's spec with the values Entra ID needs, as its manifest should say.
fn declared_fix(
    credential: &crate::model::DeclaredCredential,
    issuer: Option<&str>,
    used: &[String],
) -> String {
    let subject = match (credential.subject.as_deref(), used) {
        (Some(subject), _) if used.iter().any(|u| u == subject) => subject.to_string(),
        (_, [only]) => only.clone(),
        _ => "system:serviceaccount:NAMESPACE:SERVICE_ACCOUNT".to_string(),
    };
    let spec = serde_json::json!({"spec": {
        "issuer": issuer.unwrap_or("ISSUER_URL"),
        "subject": subject,
        "audiences": [TOKEN_AUDIENCE],
    }});
    super::fixes::commented(
        &format!(
            "FederatedIdentityCredential {}/{}: in its manifest (Entra ID matches issuer, subject and audience exactly)",
            credential.namespace, credential.name
        ),
        serde_saphyr::to_string(&spec)
            .unwrap_or_default()
            .trim_end(),
    )
}

/// The Azure Service Operator credential a subject lacks, beside the ones declared
/// (managedidentity.azure.com v1api20230131, Azure/azure-service-operator v2/api/managedidentity).
fn new_declared_fix(
    beside: &crate::model::DeclaredCredential,
    issuer: Option<&str>,
    subject: &str,
) -> String {
    let name = subject.rsplit(':').next().unwrap_or(subject);
    let object = serde_json::json!({
        "apiVersion": "managedidentity.azure.com/v1api20230131",
        "kind": "FederatedIdentityCredential",
        "metadata": {"name": name, "namespace": beside.namespace},
        "spec": {
            "owner": {"name": beside.owner.as_deref().unwrap_or("IDENTITY")},
            "issuer": issuer.unwrap_or("ISSUER_URL"),
            "subject": subject,
            "audiences": [TOKEN_AUDIENCE],
        },
    });
    super::fixes::commented(
        "beside the other FederatedIdentityCredentials",
        serde_saphyr::to_string(&object)
            .unwrap_or_default()
            .trim_end(),
    )
}

/// What a refusal means and its fix: the code's own, or Entra ID's reference for a code
/// doctor does not know.
fn rejection(
    snapshot: &Resolved,
    probe: &Probe,
    explained: Option<&aadsts::Aadsts>,
    error: &str,
) -> (String, String) {
    explained.map_or_else(
        || {
            (
                format!("Entra ID refused it ({error})"),
                super::fixes::commented(
                    "Entra ID's error reference explains the code: https://login.microsoftonline.com/error?code=CODE",
                    "kubectl azflux explain AZF071",
                ),
            )
        },
        |e| {
            (
                e.cause.to_string(),
                super::fixes::commented(e.fix, &probe_fix(snapshot, probe, e.about)),
            )
        },
    )
}

/// The command behind an AADSTS code's fix, filled in from the probe: the federated
/// credential the token's claims need, the ServiceAccount's IDs, the pods to restart, the keys
/// to publish.
fn probe_fix(snapshot: &Resolved, probe: &Probe, about: About) -> String {
    let sa = snapshot.service_account(&probe.namespace, &probe.service_account);
    let no_labels = crate::model::StringMap::default();
    let annotate = |annotations: serde_json::Value| {
        super::fixes::merge_patch(
            snapshot,
            &super::fixes::Target::new(
                "serviceaccount",
                ObjectRef::namespaced("ServiceAccount", &probe.namespace, &probe.service_account),
                sa.map_or(&no_labels, |sa| &sa.labels),
            ),
            &serde_json::json!({"metadata": {"annotations": annotations}}),
        )
    };
    match about {
        About::Issuer | About::Subject | About::Audience | About::Match | About::Case => {
            let subject = format!(
                "system:serviceaccount:{}:{}",
                probe.namespace, probe.service_account
            );
            let issuer = probe
                .claims
                .as_ref()
                .map_or("ISSUER_URL", |c| c.issuer.as_str());
            let identity = snapshot
                .azure
                .known()
                .and_then(|state| state.identity(&probe.client_id));
            create_command_for(identity, issuer, &subject)
        }
        About::ClientId => {
            annotate(serde_json::json!({crate::wiring::CLIENT_ID_ANNOTATION: "CLIENT_ID"}))
        }
        About::Tenant => {
            annotate(serde_json::json!({crate::wiring::TENANT_ID_ANNOTATION: "TENANT_ID"}))
        }
        About::Lifetime => {
            let deployment = snapshot
                .controllers
                .known()
                .into_iter()
                .flatten()
                .find(|w| {
                    w.namespace == probe.namespace && w.service_account == probe.service_account
                })
                .map_or("DEPLOYMENT", |w| w.name.as_str());
            super::fixes::command(&[
                "kubectl",
                "rollout",
                "restart",
                &format!("deployment/{deployment}"),
                "-n",
                &probe.namespace,
            ])
        }
        About::IssuerKeys => super::fixes::commented(
            "the keys the API server signs with now, to publish at the issuer's jwks_uri",
            "kubectl get --raw /openid/v1/jwks",
        ),
        About::Other => "kubectl azflux explain AZF071".to_string(),
    }
}

fn devops_organisation(snapshot: &Resolved, object: &ObjectRef) -> Option<String> {
    let kind = FluxKind::ALL
        .into_iter()
        .find(|k| k.as_str() == object.kind)?;
    let namespace = object.namespace.as_deref()?;
    let found = snapshot.flux.find(kind, namespace, &object.name)?;
    let url = if kind == FluxKind::ImageUpdateAutomation {
        let source = found.source_ref.as_ref()?;
        let namespace = source.namespace.as_deref().unwrap_or(&found.namespace);
        snapshot
            .flux
            .find(FluxKind::GitRepository, namespace, &source.name)?
            .url
            .clone()?
    } else {
        found.url.clone()?
    };
    let host = host_of(&url);
    let path = url.split_once(&host)?.1;
    let first = path.trim_start_matches(['/', ':']).split('/').next()?;
    if host == "dev.azure.com" {
        (!first.is_empty()).then(|| first.to_string())
    } else {
        host.strip_suffix(".visualstudio.com").map(str::to_string)
    }
}

pub static AZURE_DEVOPS_ONBOARDING_UNKNOWN: Check = Check {
    id: "AZF070",
    name: "azure-devops-onboarding-unknown",
    area: Area::Azure,
    severity: Severity::Info,
    title: "Azure DevOps access cannot be read from Azure Resource Manager",
    healthy: "Azure DevOps access could be read from Azure Resource Manager",
    explanation: "Azure DevOps does not use Azure RBAC: the identity's service principal must be \
added to the organization and to a group there. Readers is enough for a GitRepository; \
ImageUpdateAutomation (pushing commits) and a notification Provider of type azuredevops (commit \
status) need Contributors. The organization must also be connected to the identity's Entra \
tenant. None of this is visible to Resource Manager, so doctor says what to check instead.",
    fix: "In the organization's settings (Users), add the service principal with the object ID \
shown and put it in the group named; or use `az devops security group membership add`.",
    run: azure_devops_onboarding_unknown,
};

fn azure_devops_onboarding_unknown(
    snapshot: &Resolved,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    let state = azure(snapshot)?;
    for subject in subjects(snapshot) {
        let devops: Vec<&SubjectUse> = subject
            .uses
            .iter()
            .filter(|u| u.service == AzureService::DevOps)
            .collect();
        if devops.is_empty() {
            continue;
        }
        let writes = devops
            .iter()
            .any(|u| u.object.kind == "ImageUpdateAutomation" || u.object.kind == "Provider");
        let group = if writes { "Contributors" } else { "Readers" };
        let mut organisations: Vec<String> = devops
            .iter()
            .filter_map(|u| devops_organisation(snapshot, &u.object))
            .collect();
        organisations.sort();
        organisations.dedup();
        let identity = subject.valid_client_id().and_then(|c| state.identity(c));
        let object_id =
            identity.map_or_else(|| "OBJECT_ID".to_string(), |i| i.principal_id.clone());
        let principal = identity.map_or_else(
            || {
                format!(
                    "client ID {}",
                    subject.client_id.as_deref().unwrap_or("(none)")
                )
            },
            |i| {
                format!(
                    "identity {} (client ID {}, object ID {})",
                    i.name, i.client_id, i.principal_id
                )
            },
        );
        let orgs = if organisations.is_empty() {
            "its Azure DevOps organization".to_string()
        } else {
            format!("organization(s) {}", organisations.join(", "))
        };
        findings.add(
            subject.object_ref(),
            format!(
                "{} reach Azure DevOps as {principal} through {}: make sure it is a member of {orgs} in group {group}",
                objects_text(&devops),
                subject.describe()
            ),
            devops_fix(&organisations, &object_id, group),
        );
    }
    Ok(())
}

fn claims_text(claims: &TokenClaims) -> String {
    format!(
        "iss {}, sub {}, aud {}",
        quoted(&claims.issuer),
        quoted(&claims.subject),
        quoted(&claims.audiences.join(", "))
    )
}

/// What the identity's credentials hold for the field the error is about, next to what the
/// token presented.
fn comparison(about: About, claims: &TokenClaims, credentials: &[FederatedCredential]) -> String {
    let list = |field: fn(&FederatedCredential) -> String| {
        let values: Vec<String> = credentials
            .iter()
            .map(|c| format!("{} ({})", quoted(&field(c)), c.name))
            .collect();
        if values.is_empty() {
            "none".to_string()
        } else {
            values.join(", ")
        }
    };
    let issuers = || list(|c| c.issuer.clone());
    let subjects = || list(|c| c.subject.clone());
    let audiences = || list(|c| c.audiences.join(", "));
    match about {
        About::Issuer => format!(
            "presented iss {}; the identity's credentials have issuers {}",
            quoted(&claims.issuer),
            issuers()
        ),
        About::Subject => format!(
            "presented sub {}; the identity's credentials have subjects {}",
            quoted(&claims.subject),
            subjects()
        ),
        About::Audience => format!(
            "presented aud {}; the identity's credentials have audiences {}",
            quoted(&claims.audiences.join(", ")),
            audiences()
        ),
        About::Match | About::Case => {
            let expected = Expected {
                issuer: &claims.issuer,
                subject: &claims.subject,
                audience: claims
                    .audiences
                    .first()
                    .map_or(TOKEN_AUDIENCE, String::as_str),
            };
            let detail = match assess(credentials, &expected) {
                Verdict::Mismatch {
                    credential,
                    issuer,
                    subject,
                    audience,
                } => {
                    let parts: Vec<String> = [
                        ("issuer", issuer),
                        ("subject", subject),
                        ("audience", audience),
                    ]
                    .into_iter()
                    .filter_map(|(field, d)| {
                        d.map(|d| {
                            format!(
                                "{field} expected {} but found {} ({})",
                                quoted(&d.expected),
                                quoted(&d.found),
                                d.how
                            )
                        })
                    })
                    .collect();
                    format!(
                        "closest credential {}: {}",
                        credential.name,
                        parts.join("; ")
                    )
                }
                Verdict::Match(credential) => format!(
                    "credential {} matches now (created recently? Entra ID can take several minutes to honour a new federated credential)",
                    credential.name
                ),
                Verdict::Missing { .. } => format!(
                    "no credential is close; issuers {}, subjects {}",
                    issuers(),
                    subjects()
                ),
            };
            format!("presented {}; {detail}", claims_text(claims))
        }
        About::Lifetime => format!(
            "the token was issued at {} and expires at {} (Unix seconds)",
            claims
                .issued_at
                .map_or_else(|| "?".to_string(), |t| t.to_string()),
            claims
                .expires_at
                .map_or_else(|| "?".to_string(), |t| t.to_string())
        ),
        About::ClientId | About::Tenant | About::IssuerKeys | About::Other => {
            format!("presented {}", claims_text(claims))
        }
    }
}

pub static TOKEN_EXCHANGE_FAILED: Check = Check {
    id: "AZF071",
    name: "token-exchange-failed",
    area: Area::Azure,
    severity: Severity::Error,
    title: "Entra ID refused the token a Flux ServiceAccount would present",
    healthy: "Entra ID accepts the tokens Flux ServiceAccounts present",
    explanation: "With `--probe`, doctor asks the API server for a 10-minute token of each \
ServiceAccount Flux authenticates as (audience `api://AzureADTokenExchange`, as the webhook's \
projected token has) and exchanges it at `{authority}/{tenant}/oauth2/v2.0/token` exactly as \
the controller does. A refusal is explained from its AADSTS code (`error_codes[0]`), with the \
token's real `iss`, `sub` and `aud` next to what the identity's federated credentials hold. \
Only claims are shown; tokens are never printed or stored.",
    fix: "Follow the fix of the AADSTS code in the finding; `kubectl azflux explain` and the \
README's troubleshooting table list them all.",
    run: token_exchange_failed,
};

fn token_exchange_failed(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    let probes = snapshot.probes.get()?;
    let state = snapshot.azure.known();
    for probe in probes {
        let subject =
            ObjectRef::namespaced("ServiceAccount", &probe.namespace, &probe.service_account);
        let who = format!(
            "ServiceAccount {}/{} (client ID {}, tenant {})",
            probe.namespace,
            probe.service_account,
            probe.client_id,
            probe.tenant_id.as_deref().unwrap_or("unknown")
        );
        match &probe.outcome {
            ProbeOutcome::Exchanged { .. } => {}
            ProbeOutcome::Rejected(error) => {
                let explained = error.code.and_then(aadsts::lookup);
                let code = error.code.map_or_else(
                    || format!("HTTP {}", error.status),
                    |c| format!("AADSTS{c}"),
                );
                let credentials = state
                    .and_then(|s| s.identity(&probe.client_id))
                    .and_then(|i| i.credentials.known());
                let about = explained.map_or(About::Match, |e| e.about);
                let about_credentials = matches!(
                    about,
                    About::Issuer | About::Subject | About::Audience | About::Match | About::Case
                );
                let compared = match (&probe.claims, credentials) {
                    (None, _) => {
                        "the API server's token is not a JWT, so its claims cannot be shown".into()
                    }
                    (Some(claims), None) if about_credentials => format!(
                        "presented {} (run with Azure credentials to compare them with the identity's federated credentials)",
                        claims_text(claims)
                    ),
                    (Some(claims), credentials) => {
                        comparison(about, claims, credentials.map_or(&[][..], Vec::as_slice))
                    }
                };
                let (cause, fix) = rejection(snapshot, probe, explained, &error.error);
                findings.add(
                    subject,
                    format!(
                        "exchanging the token of {who} failed with {code}: {cause}. {compared}. Entra ID said: {}",
                        error.description
                    ),
                    fix,
                );
            }
            ProbeOutcome::TokenRequestFailed(reason) => {
                findings
                    .add(
                        subject,
                        format!("could not probe {who}: {reason}"),
                        super::fixes::commented(
                            "let USER, the user of this context, request ServiceAccount tokens there",
                            &format!(
                                "kubectl create role azflux-probe -n {ns} --verb=create --resource=serviceaccounts/token && kubectl create rolebinding azflux-probe -n {ns} --role=azflux-probe --user=USER",
                                ns = probe.namespace
                            ),
                        ),
                    )
                    .severity(Severity::Warning);
            }
            ProbeOutcome::ExchangeFailed(reason) => {
                findings
                    .add(
                        subject,
                        format!("could not reach Entra ID to probe {who}: {reason}"),
                        super::fixes::commented(
                            "whether the authority host answers from here (--authority-host and --cloud choose it)",
                            "az cloud show --query endpoints.activeDirectory -o tsv",
                        ),
                    )
                    .severity(Severity::Warning);
            }
            ProbeOutcome::NotTried(reason) => {
                findings
                    .add(
                        subject.clone(),
                        format!("did not probe {who}: {reason}"),
                        super::fixes::merge_patch(
                            snapshot,
                            &super::fixes::Target::new(
                                "serviceaccount",
                                subject.clone(),
                                &crate::model::StringMap::default(),
                            ),
                            &serde_json::json!({"metadata": {"annotations": {
                                crate::wiring::TENANT_ID_ANNOTATION: "TENANT_ID"
                            }}}),
                        ),
                    )
                    .severity(Severity::Warning);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::state::EntraError;
    use crate::checks::diagnose;
    use crate::model::{Fact, Source};

    fn snapshot_with_probe(outcome: ProbeOutcome) -> Resolved {
        let mut s = Snapshot::new(Source::Manifests { inputs: vec![] }, "flux-system");
        s.probes = Fact::Known(vec![Probe {
            namespace: "flux-system".into(),
            service_account: "source-controller".into(),
            client_id: "3f2504e0-4f89-41d3-9a0c-0305e82c3301".into(),
            tenant_id: Some("t".into()),
            claims: Some(TokenClaims {
                issuer: "https://i/".into(),
                subject: "system:serviceaccount:flux-system:source-controller".into(),
                audiences: vec![TOKEN_AUDIENCE.into()],
                expires_at: Some(2),
                issued_at: Some(1),
            }),
            outcome,
        }]);
        Resolved::new(s)
    }

    fn names(snapshot: &Resolved) -> Vec<&'static str> {
        diagnose(snapshot)
            .findings
            .iter()
            .filter(|f| f.check.area == Area::Azure)
            .map(|f| f.check.name)
            .collect()
    }

    #[test]
    fn a_decoded_refusal_names_code_cause_and_claims() {
        let s = snapshot_with_probe(ProbeOutcome::Rejected(EntraError {
            status: 400,
            code: Some(700_024),
            error: "invalid_client".into(),
            description: "AADSTS700024: Client assertion is not within its valid time range."
                .into(),
        }));
        let diagnosis = diagnose(&s);
        let finding = diagnosis
            .findings
            .iter()
            .find(|f| f.check.name == "token-exchange-failed")
            .unwrap();
        assert!(
            finding.message.contains("AADSTS700024"),
            "{}",
            finding.message
        );
        assert!(finding.message.contains("issued at 1 and expires at 2"));
        assert!(finding.fix.contains("restart the pod"));
    }

    #[test]
    fn declared_issuers_are_judged_by_shape_when_the_cluster_is_unknown() {
        assert_eq!(
            substitutions("https://${REGION}.oic/${TENANT}/"),
            ["REGION", "TENANT"]
        );
        assert!(substitutions("https://a/").is_empty());
        let aks = "https://uksouth.oic.prod-aks.azure.com/t/c/";
        assert_eq!(issuer_problem(aks, None), None);
        assert!(
            issuer_problem(aks.trim_end_matches('/'), None)
                .is_some_and(|(s, m)| s == Severity::Error && m.contains("trailing slash"))
        );
        assert!(issuer_problem(" https://x/", None).is_some_and(|(_, m)| m.contains("whitespace")));
        assert!(issuer_problem("http://x/", None).is_some_and(|(_, m)| m.contains("https")));
        // Other issuers may end as they like.
        assert_eq!(
            issuer_problem("https://token.actions.example.com", None),
            None
        );
        assert_eq!(issuer_problem(aks, Some(aks)), None);
        assert!(audience_problem(&["api://AzureADTokenExchange".into()]).is_none());
        assert!(audience_problem(&[]).is_some_and(|m| m.contains("no audience")));
    }

    #[test]
    fn a_successful_exchange_is_no_finding_and_azure_checks_skip_without_azure() {
        let s = snapshot_with_probe(ProbeOutcome::Exchanged {
            object_id: Some("o".into()),
            tenant_id: Some("t".into()),
        });
        assert!(names(&s).is_empty());
        let diagnosis = diagnose(&s);
        let fic = diagnosis
            .results
            .iter()
            .find(|r| r.check.name == "fic-missing")
            .unwrap();
        assert!(matches!(&fic.status, crate::checks::Status::Skip(r) if r.contains("--azure")));
    }
}
