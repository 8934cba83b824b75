//! `enable --federate`: the federated credentials one identity needs so that the ServiceAccounts
//! Flux uses can exchange their tokens for it. Planning is pure: an exact existing credential is
//! reused, the 20-credential limit is enforced before anything is written, and close-but-wrong
//! credentials are left alone and named. Applying creates them one at a time (Entra ID rejects
//! concurrent writes to one identity with 409). The same plan prints as az commands, Terraform
//! or Bicep instead.

use std::fmt::Write as _;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::json;

use super::AzureConnection;
use super::arm::{API_MSI, Arm, ArmError, Bearer};
use super::credential;
use super::fic::{Expected, Verdict, assess, kube_subject};
use super::gather::{find_identities, list_credentials};
use super::state::{FederatedCredential, ManagedIdentity, subscription_of};
use super::subjects::subjects;
use crate::model::Fact;
use crate::resolve::Resolved;
use crate::wiring::{CLIENT_ID_ANNOTATION, Cloud, TOKEN_AUDIENCE, is_uuid};

/// Entra ID's limit of federated credentials per identity.
pub const FIC_LIMIT: usize = 20;
const CONFLICT_RETRIES: u32 = 3;
const CONFLICT_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrintFormat {
    Az,
    Terraform,
    Bicep,
}

/// `enable`'s federation flags.
#[derive(Debug, Clone, Args)]
pub struct FederateArgs {
    /// Also create the federated credentials the planned ServiceAccounts need on the identity
    /// (named by --identity or --client-id)
    #[arg(long, global = true)]
    pub federate: bool,
    /// The user-assigned identity to federate, by ARM resource ID (default: the one with --client-id)
    #[arg(long, global = true, value_name = "RESOURCE_ID", requires = "federate")]
    pub identity: Option<String>,
    /// Print the federated credentials as az commands, Terraform or Bicep instead of creating them
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "FORMAT",
        requires = "federate"
    )]
    pub print: Option<PrintFormat>,
    /// The cluster's service-account issuer (default: the one the cluster publishes)
    #[arg(long, global = true, value_name = "URL", requires = "federate")]
    pub issuer: Option<String>,
    #[command(flatten)]
    pub connection: AzureConnection,
}

/// A credential to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCredential {
    pub name: String,
    pub issuer: String,
    pub subject: String,
    pub audience: String,
}

/// What federating one identity for a set of subjects takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatePlan {
    pub identity_id: String,
    pub identity_name: String,
    pub resource_group: String,
    pub subscription_id: String,
    pub create: Vec<NewCredential>,
    /// `(subject, name)` of the credentials that already match exactly.
    pub reuse: Vec<(String, String)>,
    /// Credentials that are close to a needed one but wrong; they stay, and are named so the
    /// person can delete them.
    pub near_misses: Vec<String>,
}

/// 32-bit FNV-1a: a short, stable tag of the issuer so two clusters' credentials for the same
/// ServiceAccount get different names.
fn issuer_tag(issuer: &str) -> String {
    let hash = issuer.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{hash:08x}")
}

/// A credential name Entra ID accepts (3-120 characters: letters, digits, `-` and `_`, starting
/// with a letter or digit), e.g. `flux-system-source-controller-1a2b3c4d`.
pub fn credential_name(issuer: &str, subject: &str) -> String {
    let account = subject
        .strip_prefix("system:serviceaccount:")
        .unwrap_or(subject)
        .replace(':', "-");
    let cleaned: String = account
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let stem: String = cleaned
        .trim_start_matches(['-', '_'])
        .chars()
        .take(110)
        .collect();
    let stem = if stem.is_empty() { "flux".into() } else { stem };
    format!("{stem}-{}", issuer_tag(issuer))
}

fn unique_name(wanted: String, taken: &[String]) -> String {
    if !taken.contains(&wanted) {
        return wanted;
    }
    // `taken` holds `wanted`, so fewer than `taken.len()` of these candidates can be taken.
    (2..=taken.len() + 1)
        .map(|n| format!("{wanted}-{n}"))
        .find(|candidate| !taken.contains(candidate))
        .unwrap_or(wanted)
}

/// Plans the credentials `identity` needs so that tokens from `issuer` for each of `subjects`
/// (`system:serviceaccount:NS:NAME`) are accepted. Refuses, before anything is written, when
/// the result would pass the 20-credential limit.
pub fn plan(
    identity: &ManagedIdentity,
    existing: &[FederatedCredential],
    issuer: &str,
    subjects: &[String],
) -> Result<FederatePlan, String> {
    let mut plan = FederatePlan {
        identity_id: identity.id.clone(),
        identity_name: identity.name.clone(),
        resource_group: identity.resource_group.clone(),
        subscription_id: identity.subscription_id.clone(),
        create: Vec::new(),
        reuse: Vec::new(),
        near_misses: Vec::new(),
    };
    let mut taken: Vec<String> = existing.iter().map(|c| c.name.clone()).collect();
    let mut seen = Vec::new();
    for subject in subjects {
        if seen.contains(subject) {
            continue;
        }
        seen.push(subject.clone());
        let expected = Expected {
            issuer,
            subject,
            audience: TOKEN_AUDIENCE,
        };
        match assess(existing, &expected) {
            Verdict::Match(credential) => {
                plan.reuse.push((subject.clone(), credential.name.clone()));
                continue;
            }
            Verdict::Mismatch { credential, .. } => plan.near_misses.push(credential.name.clone()),
            Verdict::Missing { .. } => {}
        }
        let name = unique_name(credential_name(issuer, subject), &taken);
        taken.push(name.clone());
        plan.create.push(NewCredential {
            name,
            issuer: issuer.to_string(),
            subject: subject.clone(),
            audience: TOKEN_AUDIENCE.to_string(),
        });
    }
    let total = existing.len() + plan.create.len();
    if total > FIC_LIMIT {
        return Err(format!(
            "identity {} has {} federated credentials and needs {} more, past Entra ID's limit of {FIC_LIMIT} per identity; delete unused ones (`az identity federated-credential list -g {} --identity-name {}`) or use a second identity for some ServiceAccounts",
            identity.name,
            existing.len(),
            plan.create.len(),
            identity.resource_group,
            identity.name
        ));
    }
    Ok(plan)
}

fn conflict(error: &ArmError) -> bool {
    error.status() == Some(409)
}

/// Creates the planned credentials one after another, retrying a 409 (another writer on the
/// same identity) a few times. Returns the names created; stops at the first failure, naming
/// the credential.
pub async fn apply(arm: &Arm, plan: &FederatePlan) -> Result<Vec<String>, String> {
    let mut created = Vec::new();
    for credential in &plan.create {
        let path = format!(
            "{}/federatedIdentityCredentials/{}?api-version={API_MSI}",
            plan.identity_id, credential.name
        );
        let body = json!({"properties": {
            "issuer": credential.issuer,
            "subject": credential.subject,
            "audiences": [credential.audience],
        }});
        let mut attempt = 0;
        loop {
            match arm.put(&path, &body).await {
                Ok(_) => break,
                Err(e) if conflict(&e) && attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(CONFLICT_WAIT * attempt).await;
                }
                Err(e) => {
                    return Err(format!(
                        "could not create federated credential {} on identity {} (created so far: {}): {e}",
                        credential.name,
                        plan.identity_name,
                        if created.is_empty() {
                            "none".to_string()
                        } else {
                            created.join(", ")
                        }
                    ));
                }
            }
        }
        created.push(credential.name.clone());
    }
    Ok(created)
}

fn terraform_label(name: &str) -> String {
    let label: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if label.starts_with(|c: char| c.is_ascii_digit()) {
        format!("fic_{label}")
    } else {
        label
    }
}

/// The plan as az commands, Terraform or Bicep. Terraform and Bicep would create the
/// credentials in parallel and hit 409, so each depends on the one before.
pub fn render(plan: &FederatePlan, format: PrintFormat) -> String {
    let mut out = String::new();
    match format {
        PrintFormat::Az => {
            for c in &plan.create {
                let _ = writeln!(
                    out,
                    "az identity federated-credential create --subscription {} --resource-group {} --identity-name {} --name {} --issuer '{}' --subject '{}' --audiences '{}'",
                    plan.subscription_id,
                    plan.resource_group,
                    plan.identity_name,
                    c.name,
                    c.issuer,
                    c.subject,
                    c.audience
                );
            }
        }
        PrintFormat::Terraform => {
            let mut previous: Option<String> = None;
            for c in &plan.create {
                let label = terraform_label(&c.name);
                let _ = writeln!(
                    out,
                    "resource \"azurerm_federated_identity_credential\" \"{label}\" {{"
                );
                let _ = writeln!(out, "  name                = \"{}\"", c.name);
                let _ = writeln!(out, "  resource_group_name = \"{}\"", plan.resource_group);
                let _ = writeln!(out, "  parent_id           = \"{}\"", plan.identity_id);
                let _ = writeln!(out, "  issuer              = \"{}\"", c.issuer);
                let _ = writeln!(out, "  subject             = \"{}\"", c.subject);
                let _ = writeln!(out, "  audience            = [\"{}\"]", c.audience);
                if let Some(previous) = &previous {
                    let _ = writeln!(
                        out,
                        "  depends_on          = [azurerm_federated_identity_credential.{previous}]"
                    );
                }
                let _ = writeln!(out, "}}\n");
                previous = Some(label);
            }
        }
        PrintFormat::Bicep => {
            let _ = writeln!(
                out,
                "resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@{API_MSI}' existing = {{\n  name: '{}'\n}}\n",
                plan.identity_name
            );
            let mut previous: Option<String> = None;
            for (i, c) in plan.create.iter().enumerate() {
                let symbol = format!("fic{}", i + 1);
                let _ = writeln!(
                    out,
                    "resource {symbol} 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@{API_MSI}' = {{"
                );
                let _ = writeln!(out, "  parent: identity");
                let _ = writeln!(out, "  name: '{}'", c.name);
                let _ = writeln!(out, "  properties: {{");
                let _ = writeln!(out, "    issuer: '{}'", c.issuer);
                let _ = writeln!(out, "    subject: '{}'", c.subject);
                let _ = writeln!(out, "    audiences: [\n      '{}'\n    ]", c.audience);
                let _ = writeln!(out, "  }}");
                if let Some(previous) = &previous {
                    let _ = writeln!(out, "  dependsOn: [\n    {previous}\n  ]");
                }
                let _ = writeln!(out, "}}\n");
                previous = Some(symbol);
            }
        }
    }
    out
}

/// A one-paragraph account of the plan, for dry runs.
pub fn describe(plan: &FederatePlan) -> String {
    let mut out = String::new();
    for c in &plan.create {
        let _ = writeln!(
            out,
            "create federated credential {} on {}: issuer {}, subject {}, audience {}",
            c.name, plan.identity_name, c.issuer, c.subject, c.audience
        );
    }
    for (subject, name) in &plan.reuse {
        let _ = writeln!(
            out,
            "keep federated credential {name} on {}: it already matches {subject}",
            plan.identity_name
        );
    }
    for name in &plan.near_misses {
        let _ = writeln!(
            out,
            "note: federated credential {name} on {} is close to a needed one but does not match; it is left as is (delete it once the new one works)",
            plan.identity_name
        );
    }
    out
}

/// What `enable` does next after federation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Federated {
    /// The definitions were printed (`--print`); nothing else should be.
    Printed,
    /// Federation is done (or previewed); `enable` carries on.
    Continue,
}

/// The result of `--federate`: what to print and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederateOutcome {
    pub next: Federated,
    /// The definitions (stdout) with `--print`; otherwise the account of what was (or would
    /// be) done (stderr, next to enable's other progress lines).
    pub text: String,
    /// Remarks for stderr.
    pub notes: Vec<String>,
}

/// The ServiceAccounts that authenticate as `client_id` once the plan is carried out: those
/// annotated with it, and controllers wired with it in manual mode. `planned` is the snapshot
/// with the plan applied.
pub fn planned_subjects(planned: &Resolved, client_id: &str) -> Vec<String> {
    let mut found: Vec<String> = subjects(planned)
        .iter()
        .filter(|s| {
            s.client_id
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case(client_id))
        })
        .map(super::subjects::WiSubject::subject)
        .collect();
    if let Some(accounts) = planned.service_accounts.known() {
        found.extend(
            accounts
                .iter()
                .filter(|sa| {
                    sa.annotations
                        .get(CLIENT_ID_ANNOTATION)
                        .is_some_and(|c| c.eq_ignore_ascii_case(client_id))
                })
                .map(|sa| kube_subject(&sa.namespace, &sa.name)),
        );
    }
    found.sort();
    found.dedup();
    found
}

/// The identity named by its ARM ID alone, for printing without a login.
fn offline_identity(id: &str, client_id: &str) -> Result<ManagedIdentity, String> {
    let parts: Vec<&str> = id.split('/').filter(|p| !p.is_empty()).collect();
    let after = |key: &str| {
        parts
            .iter()
            .position(|p| p.eq_ignore_ascii_case(key))
            .and_then(|i| parts.get(i + 1))
            .map(|s| (*s).to_string())
    };
    let (Some(resource_group), Some(name)) =
        (after("resourceGroups"), after("userAssignedIdentities"))
    else {
        return Err(format!(
            "--identity {id}: not the ARM ID of a user-assigned identity (/subscriptions/SUB/resourceGroups/RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/NAME)"
        ));
    };
    Ok(ManagedIdentity {
        id: id.to_string(),
        name,
        resource_group,
        subscription_id: subscription_of(id).unwrap_or_default().to_string(),
        client_id: client_id.to_string(),
        principal_id: String::new(),
        tenant_id: String::new(),
        credentials: Fact::Known(Vec::new()),
    })
}

async fn read_identity(
    arm: &Arm,
    identity: Option<&str>,
    client_id: Option<&str>,
) -> Result<ManagedIdentity, String> {
    if let Some(id) = identity {
        let value = arm
            .get(&format!("{id}?api-version={API_MSI}"))
            .await
            .map_err(|e| format!("cannot read identity {id}: {e}"))?;
        let text = |pointer: &str| {
            value
                .pointer(pointer)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut found = offline_identity(id, &text("/properties/clientId"))?;
        found.principal_id = text("/properties/principalId");
        found.tenant_id = text("/properties/tenantId");
        return Ok(found);
    }
    let client_id = client_id.unwrap_or_default();
    let wanted = std::iter::once(client_id.to_ascii_lowercase()).collect();
    match find_identities(arm, &wanted).await {
        Fact::Known(found) => found.into_iter().next().ok_or_else(|| {
            format!(
                "no user-assigned identity has client ID {client_id} in the subscriptions this login can read; name it with --identity RESOURCE_ID"
            )
        }),
        Fact::Unknown(reason) => Err(format!("cannot look up client ID {client_id}: {reason}")),
    }
}

/// A Resource Manager client logged in as `connection` says: `Ok(Err(reason))` when there is no
/// login, which printing can do without.
async fn log_in(
    connection: &AzureConnection,
    cloud: Cloud,
    timeout: Duration,
) -> Result<Result<Arm, String>, String> {
    let endpoints = connection.endpoints(cloud)?;
    let login = match credential::login(connection.azure_auth, &endpoints) {
        Ok(login) => login,
        Err(credential::NoLogin::NotFound(reason) | credential::NoLogin::Unusable(reason)) => {
            return Ok(Err(reason));
        }
    };
    let token = match credential::arm_token(&login, &endpoints).await {
        Ok(token) => token,
        Err(reason) => return Ok(Err(reason)),
    };
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    Ok(Ok(Arm::new(http, &endpoints.arm, Bearer::new(token))))
}

/// `enable --federate`: plans the credentials the identity needs for the ServiceAccounts that
/// authenticate with it once the plan is carried out (`planned`), then prints them (`--print`),
/// creates them (`apply`) or says what would be created. Printing needs no login when the
/// identity is named by --identity; reading and creating do.
pub async fn federate(
    planned: &Resolved,
    args: &FederateArgs,
    client_id: Option<&str>,
    cloud: Option<Cloud>,
    create: bool,
    timeout: Duration,
) -> Result<FederateOutcome, String> {
    let mut notes = Vec::new();
    args.connection.validate()?;
    if args.identity.is_none() && client_id.is_none() {
        return Err(
            "--federate needs the identity: --identity RESOURCE_ID or --client-id UUID".into(),
        );
    }
    if let Some(id) = client_id.filter(|c| !is_uuid(c)) {
        return Err(format!("--client-id {id} is not a UUID"));
    }
    let issuer = match (&args.issuer, planned.issuer.known()) {
        (Some(issuer), _) | (None, Some(issuer)) => issuer.clone(),
        (None, None) => {
            return Err(
                "--federate needs the cluster's issuer: the cluster did not publish one here; pass --issuer URL".into(),
            );
        }
    };
    let cloud = cloud.unwrap_or_else(|| crate::checks::expected_cloud(planned));
    let arm = log_in(&args.connection, cloud, timeout).await?;
    let (identity, existing) = match (&arm, args.print, args.identity.as_deref()) {
        (Ok(arm), _, identity) => {
            let found = read_identity(arm, identity, client_id).await?;
            let existing = match list_credentials(arm, &found.id).await {
                Fact::Known(list) => list,
                Fact::Unknown(reason) => {
                    return Err(format!(
                        "cannot list the federated credentials of {}: {reason}",
                        found.name
                    ));
                }
            };
            (found, existing)
        }
        (Err(reason), Some(_), Some(id)) => {
            let Some(client_id) = client_id else {
                return Err(format!(
                    "cannot read identity {id} ({reason}); without a login pass --client-id too, so the ServiceAccounts that use it are known"
                ));
            };
            notes.push(format!(
                "not logged in to Azure ({reason}): every planned credential is printed, including any that already exist"
            ));
            (offline_identity(id, client_id)?, Vec::new())
        }
        (Err(reason), _, _) => {
            return Err(format!("--federate needs an Azure login: {reason}"));
        }
    };
    let wanted = planned_subjects(planned, &identity.client_id);
    if wanted.is_empty() {
        return Err(format!(
            "no ServiceAccount is (or is planned to be) annotated with client ID {}: nothing to federate",
            identity.client_id
        ));
    }
    let plan = plan(&identity, &existing, &issuer, &wanted)?;
    if let Some(format) = args.print {
        return Ok(FederateOutcome {
            next: Federated::Printed,
            text: render(&plan, format),
            notes,
        });
    }
    let mut text = describe(&plan);
    match (&arm, create) {
        (Ok(arm), true) if !plan.create.is_empty() => {
            let created = apply(arm, &plan).await?;
            let _ = writeln!(
                text,
                "created {} federated credential(s) on {}: {}",
                created.len(),
                plan.identity_name,
                created.join(", ")
            );
            // Entra ID's workload identity federation considerations: a token request made
            // several minutes after configuring a credential may still fail (AADSTS70021).
            text.push_str(
                "Entra ID can take several minutes to honour a new federated credential; token exchanges may fail with AADSTS70021 until then\n",
            );
        }
        (_, false) if !plan.create.is_empty() => {
            text.push_str("(preview: add --apply to create the federated credentials)\n");
        }
        _ => {}
    }
    Ok(FederateOutcome {
        next: Federated::Continue,
        text,
        notes,
    })
}

/// Prints an outcome: definitions to stdout, everything else to stderr.
pub fn report(outcome: &FederateOutcome) -> Result<(), String> {
    for note in &outcome.notes {
        eprintln!("note: {note}");
    }
    if outcome.next == Federated::Printed {
        crate::commands::write_stdout(|out| out.write_all(outcome.text.as_bytes()))
    } else {
        eprint!("{}", outcome.text);
        Ok(())
    }
}

/// `federate` and `report` for `enable`'s async path.
pub async fn run(
    planned: &Resolved,
    args: &FederateArgs,
    client_id: Option<&str>,
    cloud: Option<Cloud>,
    create: bool,
    timeout: Duration,
) -> Result<Federated, String> {
    let outcome = federate(planned, args, client_id, cloud, create, timeout).await?;
    report(&outcome)?;
    Ok(outcome.next)
}

/// `run` for `enable`'s paths that plan from files, with no runtime of their own.
pub fn run_blocking(
    planned: &Resolved,
    args: &FederateArgs,
    client_id: Option<&str>,
    cloud: Option<Cloud>,
    timeout: Duration,
) -> Result<Federated, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?
        .block_on(run(planned, args, client_id, cloud, false, timeout))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Fact;

    const ISSUER: &str = "https://oidc.example.com/cluster-1/";

    fn identity() -> ManagedIdentity {
        ManagedIdentity {
            id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/flux".into(),
            name: "flux".into(),
            resource_group: "rg".into(),
            subscription_id: "s".into(),
            client_id: "c".into(),
            principal_id: "p".into(),
            tenant_id: "t".into(),
            credentials: Fact::Known(Vec::new()),
        }
    }

    fn fic(name: &str, issuer: &str, subject: &str) -> FederatedCredential {
        FederatedCredential {
            name: name.into(),
            issuer: issuer.into(),
            subject: subject.into(),
            audiences: vec![TOKEN_AUDIENCE.into()],
        }
    }

    const SC: &str = "system:serviceaccount:flux-system:source-controller";
    const KC: &str = "system:serviceaccount:flux-system:kustomize-controller";

    #[test]
    fn exact_matches_are_reused_and_near_misses_named() {
        let existing = vec![
            fic("sc", ISSUER, SC),
            fic("kc-old", ISSUER.trim_end_matches('/'), KC),
        ];
        let plan = plan(
            &identity(),
            &existing,
            ISSUER,
            &[SC.into(), KC.into(), SC.into()],
        )
        .unwrap();
        assert_eq!(plan.reuse, vec![(SC.to_string(), "sc".to_string())]);
        assert_eq!(plan.create.len(), 1);
        assert_eq!(plan.create[0].subject, KC);
        assert_eq!(plan.near_misses, vec!["kc-old"]);
        assert!(
            plan.create[0]
                .name
                .starts_with("flux-system-kustomize-controller-")
        );
    }

    #[test]
    fn the_limit_is_enforced_before_anything_is_written() {
        let existing: Vec<FederatedCredential> = (0..19)
            .map(|i| {
                fic(
                    &format!("c{i}"),
                    ISSUER,
                    &format!("system:serviceaccount:t:{i}"),
                )
            })
            .collect();
        assert!(plan(&identity(), &existing, ISSUER, &[SC.into()]).is_ok());
        let refused = plan(&identity(), &existing, ISSUER, &[SC.into(), KC.into()]).unwrap_err();
        assert!(
            refused.contains("19 federated credentials and needs 2 more"),
            "{refused}"
        );
    }

    #[test]
    fn names_are_valid_unique_and_differ_per_issuer() {
        let a = credential_name(ISSUER, SC);
        let b = credential_name("https://oidc.example.com/cluster-2/", SC);
        assert_ne!(a, b);
        assert!(a.len() <= 120 && a.len() >= 3);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        let taken = vec![a.clone()];
        assert_eq!(unique_name(a.clone(), &taken), format!("{a}-2"));
    }

    #[test]
    fn printers_serialise_creation() {
        let plan = plan(&identity(), &[], ISSUER, &[SC.into(), KC.into()]).unwrap();
        let az = render(&plan, PrintFormat::Az);
        assert_eq!(az.lines().count(), 2);
        assert!(az.contains("--subject 'system:serviceaccount:flux-system:source-controller'"));
        let tf = render(&plan, PrintFormat::Terraform);
        assert_eq!(tf.matches("depends_on").count(), 1);
        assert!(tf.contains("parent_id           = \"/subscriptions/s/"));
        let bicep = render(&plan, PrintFormat::Bicep);
        assert!(bicep.contains("dependsOn: [\n    fic1\n  ]"));
        assert!(bicep.contains("parent: identity"));
    }
}
