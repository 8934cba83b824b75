//! The local side of the chain: which credentials the chosen context uses, whether its exec
//! plugin can be found, and where secrets sit. Secret values are never copied out.

use std::path::{Path, PathBuf};

use kube::config::ExecConfig;

use crate::kubeconfig::{ConnectionOptions, LoadedKubeconfig};
use crate::model::{ExecPlugin, LocalConfig};

const SECRET_FLAGS: [&str; 3] = [
    "--client-secret",
    "--password",
    "--client-certificate-password",
];

fn is_secret_env(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.contains("SECRET") || upper.contains("PASSWORD")
}

/// The value of `--flag X`, `--flag=X`, or of a short alias, in kubelogin's arguments.
fn flag_value(args: &[String], names: &[&str]) -> Option<String> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        for name in names {
            if arg == name {
                return iter.next().cloned();
            }
            if let Some(value) = arg
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
            {
                return Some(value.to_string());
            }
        }
    }
    None
}

/// Finds an exec command as kubectl would: a bare name on PATH, a path with a separator
/// relative to the kubeconfig file that names it.
fn resolve_command(command: &str, kubeconfig_dir: Option<&Path>) -> Option<PathBuf> {
    if command.contains('/') || command.contains('\\') {
        let path = Path::new(command);
        let full = match kubeconfig_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        };
        return full.is_file().then_some(full);
    }
    which::which(command).ok()
}

fn exec_plugin(exec: &ExecConfig, kubeconfig_dir: Option<&Path>) -> ExecPlugin {
    let command = exec.command.clone().unwrap_or_default();
    let args = exec.args.clone().unwrap_or_default();
    let base = Path::new(&command)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    let is_kubelogin = base == "kubelogin" && args.iter().any(|a| a == "get-token");
    let env_value = |name: &str| {
        exec.env.iter().flatten().find_map(|entry| {
            (entry.get("name").map(String::as_str) == Some(name))
                .then(|| entry.get("value").cloned())
                .flatten()
        })
    };
    let login_mode = is_kubelogin.then(|| {
        flag_value(&args, &["--login", "-l"])
            .or_else(|| env_value("AAD_LOGIN_METHOD"))
            .unwrap_or_else(|| "devicecode".to_string())
    });
    ExecPlugin {
        resolved: resolve_command(&command, kubeconfig_dir).map(|p| p.display().to_string()),
        install_hint: exec.install_hint.clone(),
        login_mode,
        server_id: flag_value(&args, &["--server-id"]),
        is_kubelogin,
        command,
    }
}

fn secret_locations(loaded: &LoadedKubeconfig, user: &str) -> Vec<String> {
    let Some(auth) = loaded.auth_info(user) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    if let Some(exec) = &auth.exec {
        for arg in exec.args.iter().flatten() {
            if let Some(flag) = SECRET_FLAGS
                .iter()
                .find(|f| arg == *f || arg.starts_with(&format!("{f}=")))
            {
                found.push(format!("exec argument {flag}"));
            }
        }
        for entry in exec.env.iter().flatten() {
            if let Some(name) = entry.get("name").filter(|n| is_secret_env(n))
                && entry.get("value").is_some_and(|v| !v.is_empty())
            {
                found.push(format!("exec env {name}"));
            }
        }
    }
    if auth.password.is_some() {
        found.push("basic-auth password".to_string());
    }
    if let Some(provider) = &auth.auth_provider {
        for key in provider.config.keys().filter(|k| is_secret_env(k)) {
            found.push(format!("auth-provider config {key}"));
        }
    }
    found
}

pub fn gather(loaded: &LoadedKubeconfig, options: &ConnectionOptions) -> LocalConfig {
    let user = loaded.user_name(options).unwrap_or_default();
    let auth = loaded.auth_info(&user);
    // kubectl resolves a relative exec command against the file that defined the user; with
    // merged files the first one is the best guess we have.
    let kubeconfig_dir = loaded.files.first().and_then(|f| f.parent());
    LocalConfig {
        context: loaded.context.clone(),
        server: loaded.server(options),
        exec: auth
            .and_then(|a| a.exec.as_ref())
            .map(|e| exec_plugin(e, kubeconfig_dir)),
        auth_provider: auth
            .and_then(|a| a.auth_provider.as_ref())
            .map(|p| p.name.clone()),
        secret_locations: secret_locations(loaded, &user),
        user,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn flag_values_in_all_spellings() {
        let a = args(&["get-token", "--login", "azurecli", "--server-id=abc"]);
        assert_eq!(
            flag_value(&a, &["--login", "-l"]).as_deref(),
            Some("azurecli")
        );
        assert_eq!(flag_value(&a, &["--server-id"]).as_deref(), Some("abc"));
        let b = args(&["get-token", "-l", "spn"]);
        assert_eq!(flag_value(&b, &["--login", "-l"]).as_deref(), Some("spn"));
        assert_eq!(flag_value(&b, &["--server-id"]), None);
    }

    #[test]
    fn kubelogin_defaults_to_devicecode() {
        let exec = ExecConfig {
            command: Some("kubelogin".into()),
            args: Some(args(&["get-token", "--server-id", "x"])),
            ..ExecConfig::default()
        };
        let plugin = exec_plugin(&exec, None);
        assert!(plugin.is_kubelogin);
        assert_eq!(plugin.login_mode.as_deref(), Some("devicecode"));
    }
}
