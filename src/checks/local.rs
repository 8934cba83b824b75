//! AZF001-AZF005: the local side, read from the kubeconfig context in use.

use super::{Area, Check, Findings, FixAction, Severity};
use crate::model::{LocalConfig, ObjectRef, Skip};
use crate::resolve::Resolved;
use crate::wiring::AKS_AAD_SERVER_ID;

/// The fix for an azure auth provider or a device-code login: kubelogin's Azure CLI mode.
fn convert_to_azurecli(context: &str) -> (String, FixAction) {
    let command = [
        "kubelogin",
        "convert-kubeconfig",
        "-l",
        "azurecli",
        "--context",
        context,
    ];
    (
        command.join(" "),
        FixAction::Run {
            command: command.iter().map(ToString::to_string).collect(),
        },
    )
}

fn context_ref(local: &LocalConfig) -> ObjectRef {
    ObjectRef::cluster_scoped("KubeconfigContext", &local.context)
}

/// How to install kubelogin on the operating system doctor runs on.
pub fn kubelogin_install_hint() -> &'static str {
    match std::env::consts::OS {
        "macos" => "brew install Azure/kubelogin/kubelogin",
        "windows" => "winget install --id=Microsoft.Azure.Kubelogin -e",
        // The Azure CLI installs kubectl and kubelogin on any OS; the other ways are in the
        // check's documentation (`explain AZF001`).
        _ => "az aks install-cli",
    }
}

pub static EXEC_PLUGIN_NOT_FOUND: Check = Check {
    id: "AZF001",
    name: "exec-plugin-not-found",
    area: Area::Local,
    severity: Severity::Error,
    title: "The kubeconfig's credential plugin is not on PATH",
    healthy: "The kubeconfig's credential plugin is on PATH",
    explanation: "The context's user gets its token by running an exec credential plugin (for \
AKS with Entra ID, kubelogin). When the command is not on PATH every kubectl call fails with \
`executable kubelogin not found`. On Windows kubectl does not look in the current folder.",
    fix: "Install the plugin (kubelogin: `az aks install-cli`, `brew install \
Azure/kubelogin/kubelogin`, `winget install Microsoft.Azure.Kubelogin`) or write its absolute \
path into the kubeconfig.",
    run: exec_plugin_not_found,
};

fn exec_plugin_not_found(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    let local = snapshot.local.get()?;
    if let Some(exec) = local.exec.as_ref().filter(|e| e.resolved.is_none()) {
        let hint = if exec.is_kubelogin {
            kubelogin_install_hint().to_string()
        } else {
            exec.install_hint
                .clone()
                .unwrap_or_else(|| format!("install `{}` or give its absolute path", exec.command))
        };
        findings.add(
            context_ref(local),
            format!(
                "context {} runs `{}` for credentials, but it is not on PATH",
                local.context, exec.command
            ),
            hint,
        );
    }
    Ok(())
}

pub static LEGACY_AZURE_AUTH_PROVIDER: Check = Check {
    id: "AZF002",
    name: "legacy-azure-auth-provider",
    area: Area::Local,
    severity: Severity::Error,
    title: "The kubeconfig uses the removed `azure` auth provider",
    healthy: "The kubeconfig uses no removed auth provider",
    explanation: "kubectl 1.26 removed the in-tree `auth-provider: azure`; clients reject it \
(`The azure auth plugin is not supported; use kubelogin instead`). The user entry has to be \
converted to the kubelogin exec plugin.",
    fix: "Run `kubelogin convert-kubeconfig -l azurecli` (or fetch a fresh kubeconfig with `az \
aks get-credentials`, which writes the exec format).",
    run: legacy_azure_auth_provider,
};

fn legacy_azure_auth_provider(
    snapshot: &Resolved,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    let local = snapshot.local.get()?;
    if local.auth_provider.as_deref() == Some("azure") {
        let (fix, action) = convert_to_azurecli(&local.context);
        findings
            .add(
                context_ref(local),
                format!(
                    "user {} of context {} uses `auth-provider: azure`, which kubectl no longer supports",
                    local.user, local.context
                ),
                fix,
            )
            .action(action);
    }
    Ok(())
}

pub static SECRET_IN_KUBECONFIG: Check = Check {
    id: "AZF003",
    name: "secret-in-kubeconfig",
    area: Area::Local,
    severity: Severity::Warning,
    title: "A client secret or password is stored in the kubeconfig",
    healthy: "The kubeconfig stores no client secret or password",
    explanation: "`kubelogin convert-kubeconfig -l spn --client-secret ...` and some dashboards \
write the secret into the exec arguments or environment of the kubeconfig, where every backup, \
copy and screen share carries it. The value is never printed by doctor; only where it sits.",
    fix: "Remove it from the kubeconfig and let kubelogin read it from the environment \
(`AAD_SERVICE_PRINCIPAL_CLIENT_SECRET`), or switch to `-l azurecli` or `-l workloadidentity`.",
    run: secret_in_kubeconfig,
};

fn secret_in_kubeconfig(snapshot: &Resolved, findings: &mut Findings<'_>) -> Result<(), Skip> {
    let local = snapshot.local.get()?;
    for location in &local.secret_locations {
        findings.add(
            context_ref(local),
            format!(
                "user {} of context {} keeps a secret in the kubeconfig ({location})",
                local.user, local.context
            ),
            super::fixes::commented(
                "log in with the Azure CLI instead (or keep -l spn and export AAD_SERVICE_PRINCIPAL_CLIENT_SECRET)",
                &super::fixes::command(&[
                    "kubelogin",
                    "convert-kubeconfig",
                    "-l",
                    "azurecli",
                    "--context",
                    &local.context,
                ]),
            ),
        );
    }
    Ok(())
}

pub static KUBELOGIN_DEVICECODE_LOGIN: Check = Check {
    id: "AZF004",
    name: "kubelogin-devicecode-login",
    area: Area::Local,
    severity: Severity::Warning,
    title: "kubelogin uses device-code login",
    healthy: "kubelogin logs in without device code",
    explanation: "Device-code login (kubelogin's default) is blocked where Conditional Access \
applies to the tenant, and in CI it waits for a human forever. The Azure CLI login mode reuses \
`az login` and works in both places.",
    fix: "Run `kubelogin convert-kubeconfig -l azurecli` (or `-l workloadidentity` in CI).",
    run: kubelogin_devicecode_login,
};

fn kubelogin_devicecode_login(
    snapshot: &Resolved,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    let local = snapshot.local.get()?;
    let Some(exec) = local.exec.as_ref().filter(|e| e.is_kubelogin) else {
        return Ok(());
    };
    if exec.login_mode.as_deref() == Some("devicecode") {
        let (fix, action) = convert_to_azurecli(&local.context);
        findings
            .add(
                context_ref(local),
                format!(
                    "context {} logs in with kubelogin device code, which Conditional Access can block and CI cannot answer",
                    local.context
                ),
                fix,
            )
            .action(action);
    }
    Ok(())
}

pub static KUBELOGIN_UNEXPECTED_SERVER_ID: Check = Check {
    id: "AZF005",
    name: "kubelogin-unexpected-server-id",
    area: Area::Local,
    severity: Severity::Warning,
    title: "kubelogin asks for a token for an unexpected server ID",
    healthy: "kubelogin asks for a token for the AKS server ID",
    explanation: "Managed Entra ID on AKS accepts tokens for the AKS AAD server application \
`6dae42f8-4368-4678-94ff-3960e28e3630`. Any other `--server-id` (a legacy AAD server app, a \
typo) gets a token the API server rejects with `Unauthorized`.",
    fix: "Use `--server-id 6dae42f8-4368-4678-94ff-3960e28e3630`, or fetch a fresh kubeconfig \
with `az aks get-credentials` and convert it with kubelogin.",
    run: kubelogin_unexpected_server_id,
};

/// kubelogin rewriting the context's exec args with the AKS server ID, in the login mode it
/// already uses.
fn server_id_fix(local: &LocalConfig, exec: &crate::model::ExecPlugin) -> String {
    let mode = exec.login_mode.as_deref().unwrap_or("azurecli");
    super::fixes::command(&[
        "kubelogin",
        "convert-kubeconfig",
        "-l",
        mode,
        "--server-id",
        AKS_AAD_SERVER_ID,
        "--context",
        &local.context,
    ])
}

fn kubelogin_unexpected_server_id(
    snapshot: &Resolved,
    findings: &mut Findings<'_>,
) -> Result<(), Skip> {
    let local = snapshot.local.get()?;
    let Some(exec) = local.exec.as_ref().filter(|e| e.is_kubelogin) else {
        return Ok(());
    };
    match exec.server_id.as_deref() {
        Some(AKS_AAD_SERVER_ID) => {}
        Some(other) => {
            findings.add(
                context_ref(local),
                format!(
                    "context {} asks kubelogin for server ID {other}, not the AKS AAD server {AKS_AAD_SERVER_ID}",
                    local.context
                ),
                server_id_fix(local, exec),
            );
        }
        None => {
            findings.add(
                context_ref(local),
                format!(
                    "context {} runs kubelogin without --server-id; kubelogin cannot know which audience to ask for",
                    local.context
                ),
                server_id_fix(local, exec),
            );
        }
    }
    Ok(())
}
