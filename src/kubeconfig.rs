//! Loading the kubeconfig the way kubectl does, and turning the kubectl flags into a client
//! configuration. There is deliberately no in-cluster fallback: a diagnosis of the wrong cluster
//! is worse than an error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig, NamedContext};

/// The kubectl connection flags, parsed by the plugin itself (kubectl forwards none).
#[derive(Debug, Clone, Default)]
pub struct ConnectionOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub cluster: Option<String>,
    pub user: Option<String>,
    pub namespace: Option<String>,
    pub request_timeout: Option<Duration>,
    pub impersonate: Option<String>,
    pub impersonate_groups: Vec<String>,
    pub insecure_skip_tls_verify: bool,
    pub tls_server_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error(
        "no kubeconfig found: pass --kubeconfig, set KUBECONFIG, or create ~/.kube/config (doctor does not fall back to in-cluster credentials)"
    )]
    NotFound,
    #[error("cannot read kubeconfig {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("kubeconfig has no current-context; pass --context (contexts: {available})")]
    NoCurrentContext { available: String },
    #[error("context {name:?} not found in kubeconfig (contexts: {available})")]
    ContextNotFound { name: String, available: String },
    #[error("context {context:?}: {reason}")]
    Invalid { context: String, reason: String },
}

/// A kubeconfig read from disk (merged from several files where KUBECONFIG lists them), with
/// the context chosen by `--context` or `current-context`.
#[derive(Debug, Clone)]
pub struct LoadedKubeconfig {
    pub config: Kubeconfig,
    pub context: String,
    pub files: Vec<PathBuf>,
}

impl LoadedKubeconfig {
    pub fn named_context(&self) -> Option<&NamedContext> {
        self.config.contexts.iter().find(|c| c.name == self.context)
    }

    /// The user entry the context (or `--user`) selects.
    pub fn user_name(&self, options: &ConnectionOptions) -> Option<String> {
        options.user.clone().or_else(|| {
            self.named_context()
                .and_then(|c| c.context.as_ref())
                .and_then(|c| c.user.clone())
        })
    }

    /// The credentials of the user entry named `user`.
    pub fn auth_info(&self, user: &str) -> Option<&kube::config::AuthInfo> {
        self.config
            .auth_infos
            .iter()
            .find(|a| a.name == user)
            .and_then(|a| a.auth_info.as_ref())
    }

    pub fn cluster_name(&self, options: &ConnectionOptions) -> Option<String> {
        options.cluster.clone().or_else(|| {
            self.named_context()
                .and_then(|c| c.context.as_ref())
                .map(|c| c.cluster.clone())
        })
    }

    /// The server URL of the cluster in use, without credentials, for display.
    pub fn server(&self, options: &ConnectionOptions) -> Option<String> {
        let cluster = self.cluster_name(options)?;
        self.config
            .clusters
            .iter()
            .find(|c| c.name == cluster)
            .and_then(|c| c.cluster.as_ref())
            .and_then(|c| c.server.as_deref())
            .map(crate::scrub::without_credentials)
    }
}

/// A kubeconfig larger than this is refused: real ones are kilobytes, and the file is read
/// whole.
pub const MAX_KUBECONFIG_BYTES: u64 = 16 * 1024 * 1024;

fn read_file(path: &Path) -> Result<Kubeconfig, KubeconfigError> {
    let unreadable = |reason: String| KubeconfigError::Unreadable {
        path: path.display().to_string(),
        reason,
    };
    // A FIFO or a device would block or never end; kube reads whatever it is given.
    let metadata = std::fs::metadata(path).map_err(|e| unreadable(e.to_string()))?;
    if !metadata.is_file() {
        return Err(unreadable(
            "not a regular file (a FIFO, device or folder is not read)".into(),
        ));
    }
    if metadata.len() > MAX_KUBECONFIG_BYTES {
        return Err(unreadable(format!(
            "larger than {} MiB",
            MAX_KUBECONFIG_BYTES / 1024 / 1024
        )));
    }
    Kubeconfig::read_from(path).map_err(|e| unreadable(load_error(&e)))
}

/// A kubeconfig load error without the lines of the file the YAML parser quotes around the
/// error, where a token or password may be: only where it is and what is wrong.
fn load_error(error: &kube::config::KubeconfigError) -> String {
    match error {
        kube::config::KubeconfigError::Parse(parse) => yaml_error(parse),
        other => one_line(other),
    }
}

/// A YAML error as its line, column and the parser's description, which may quote a scalar
/// of the file: quoted parts are left out.
pub fn yaml_error(error: &serde_saphyr::Error) -> String {
    let description = yaml_description(error);
    match error.location() {
        Some(at) if at.line() > 0 => {
            format!("line {}, column {}: {description}", at.line(), at.column())
        }
        _ => description,
    }
}

/// What a YAML error says is wrong, without where and without the scalars it quotes.
pub fn yaml_description(error: &serde_saphyr::Error) -> String {
    let plain = error.without_snippet().to_string();
    let first = plain.lines().next().unwrap_or_default();
    // The description follows the location the parser puts first.
    let description = first
        .find("column ")
        .and_then(|at| first[at..].split_once(':'))
        .map_or(first, |(_, rest)| rest);
    let description = description
        .split_once(" at line ")
        .map_or(description, |(before, _)| before);
    let description = without_quoted(description);
    if description.trim().is_empty() {
        "invalid YAML".to_string()
    } else {
        description.trim().to_string()
    }
}

/// `text` with everything between quotes or backticks replaced by `…`.
fn without_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut open: Option<char> = None;
    for c in text.chars() {
        match open {
            Some(quote) if c == quote => {
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None if matches!(c, '"' | '\'' | '`') => {
                out.push(c);
                out.push('…');
                open = Some(c);
            }
            None => out.push(c),
        }
    }
    out
}

/// An error and its causes on one line, as CLI errors should be.
pub fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.replace('\n', " ")
}

/// A kube client error on one line, without what kube puts into its exec-plugin errors: the
/// plugin's whole command line and environment (where a client secret may be passed) and its
/// standard output (the token). The plugin's last line on stderr is kept: it says why.
pub fn client_error(error: &kube::Error) -> String {
    if let Some(why) = exec_failure(error) {
        return format!("credential plugin {why}");
    }
    if is_timeout(error) {
        return "the API server did not answer in time (--request-timeout)".to_owned();
    }
    let text = one_line(error);
    // hyper-util's words when a SOCKS5 proxy accepts none of the methods offered; kube 5.0
    // offers only "no authentication" (kube-client src/client/builder.rs builds its SocksV5
    // connector without credentials), so the proxy wants a username and password.
    if text.contains("SOCKS error: server does not support user/pass authentication") {
        return "the SOCKS5 proxy (proxy-url) requires a username and password, and the Kubernetes client library sends none: use a SOCKS5 proxy without authentication or an http:// proxy-url".to_owned();
    }
    text
}

/// Whether the client gave up waiting: its connect, read and write timeouts (set from
/// `--request-timeout`) surface as an I/O error of kind `TimedOut` somewhere in the chain.
pub fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if current
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = current.source();
    }
    false
}

/// Why the exec credential plugin failed, when that is what `error` is (also when a request
/// ran the plugin again to refresh an expired token).
pub fn exec_failure(error: &kube::Error) -> Option<String> {
    use kube::client::AuthError;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(auth) = current.downcast_ref::<AuthError>() {
            return match auth {
                AuthError::AuthExecRun { out, .. } => {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    if let Some(verdict) = crate::plugin::verdict(out.status, &stderr) {
                        return Some(verdict.to_string());
                    }
                    Some(
                        match stderr.lines().map(str::trim).rfind(|l| !l.is_empty()) {
                            Some(line) => format!("failed ({}): {line}", out.status),
                            None => {
                                format!("failed ({}) and printed nothing on stderr", out.status)
                            }
                        },
                    )
                }
                AuthError::AuthExecParse(_) | AuthError::ExecPluginFailed => Some(
                    "printed something that is not an ExecCredential (JSON with status.token)"
                        .to_string(),
                ),
                AuthError::AuthExecStart(e) => Some(format!("could not be started: {e}")),
                _ => None,
            };
        }
        cause = current.source();
    }
    None
}

/// The secret values of a kubeconfig, to scrub from anything printed: plugins and libraries
/// may echo them in errors. Values are secret by what holds them (a token, a password, a
/// client key, a secret-named exec flag or variable, an auth-provider token, URL credentials),
/// so identifiers next to them (client and server IDs, login modes) still show.
pub fn secret_values(config: &Kubeconfig) -> Vec<String> {
    let mut values = Vec::new();
    for named in &config.clusters {
        let Some(cluster) = &named.cluster else {
            continue;
        };
        for url in [&cluster.server, &cluster.proxy_url].into_iter().flatten() {
            values.extend(crate::scrub::url_credentials(url));
        }
    }
    for named in &config.auth_infos {
        // kube keeps these behind `secrecy`; its serializer is the one way to the values.
        if let Some(auth) = named
            .auth_info
            .as_ref()
            .and_then(|a| serde_json::to_value(a).ok())
        {
            values.extend(user_secrets(&auth));
        }
    }
    values.retain(|v| !v.is_empty());
    values.sort();
    values.dedup();
    values
}

fn user_secrets(auth: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    let text = |value: &Value| value.as_str().map(str::to_string);
    let mut values: Vec<String> = ["/token", "/password", "/client-key-data"]
        .iter()
        .filter_map(|pointer| auth.pointer(pointer).and_then(text))
        .collect();
    if let Some(args) = auth.pointer("/exec/args").and_then(Value::as_array) {
        let args: Vec<String> = args.iter().filter_map(text).collect();
        values.extend(crate::scrub::secret_arguments(&args));
    }
    for variable in auth
        .pointer("/exec/env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if variable
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(crate::scrub::is_secret_name)
        {
            values.extend(variable.get("value").and_then(text));
        }
    }
    if let Some(settings) = auth
        .pointer("/auth-provider/config")
        .and_then(Value::as_object)
    {
        values.extend(
            settings
                .iter()
                .filter(|(key, _)| crate::scrub::is_secret_name(key))
                .filter_map(|(_, value)| text(value)),
        );
    }
    values
}

/// `text` with every value of `secrets`, and anything token-shaped, replaced.
pub fn redact(text: &str, secrets: &[String]) -> String {
    crate::scrub::redact(text, secrets)
}

/// The files kubectl would read: `--kubeconfig`, else every existing file in KUBECONFIG (missing
/// ones are skipped, as kubectl does), else ~/.kube/config.
fn kubeconfig_files(explicit: Option<&Path>) -> Result<Vec<PathBuf>, KubeconfigError> {
    if let Some(path) = explicit {
        if !path.exists() {
            return Err(KubeconfigError::Unreadable {
                path: path.display().to_string(),
                reason: "no such file".into(),
            });
        }
        return Ok(vec![path.to_path_buf()]);
    }
    if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let files: Vec<PathBuf> = std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty() && p.exists())
            .collect();
        return if files.is_empty() {
            Err(KubeconfigError::NotFound)
        } else {
            Ok(files)
        };
    }
    let home = std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .map(PathBuf::from)
        .ok_or(KubeconfigError::NotFound)?;
    let default = home.join(".kube").join("config");
    if default.exists() {
        Ok(vec![default])
    } else {
        Err(KubeconfigError::NotFound)
    }
}

/// Every file kubectl would read, merged as kubectl merges them, whatever the context.
pub fn load_merged(
    options: &ConnectionOptions,
) -> Result<(Kubeconfig, Vec<PathBuf>), KubeconfigError> {
    let files = kubeconfig_files(options.kubeconfig.as_deref())?;
    let mut merged = Kubeconfig::default();
    for file in &files {
        // The first file to define a name wins, as with kubectl.
        merged = merged
            .merge(read_file(file)?)
            .map_err(|e| KubeconfigError::Unreadable {
                path: file.display().to_string(),
                reason: one_line(&e),
            })?;
    }
    crate::scrub::remember(&secret_values(&merged));
    Ok((merged, files))
}

pub fn load(options: &ConnectionOptions) -> Result<LoadedKubeconfig, KubeconfigError> {
    let (merged, files) = load_merged(options)?;
    let available = || {
        let names: Vec<&str> = merged.contexts.iter().map(|c| c.name.as_str()).collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    let Some(context) = options
        .context
        .clone()
        .or_else(|| merged.current_context.clone().filter(|c| !c.is_empty()))
    else {
        return Err(KubeconfigError::NoCurrentContext {
            available: available(),
        });
    };
    if !merged.contexts.iter().any(|c| c.name == context) {
        return Err(KubeconfigError::ContextNotFound {
            name: context,
            available: available(),
        });
    }
    Ok(LoadedKubeconfig {
        config: merged,
        context,
        files,
    })
}

/// The client configuration for the chosen context with the kubectl flags applied.
pub async fn client_config(
    loaded: &LoadedKubeconfig,
    options: &ConnectionOptions,
) -> Result<kube::Config, KubeconfigError> {
    let kube_options = KubeConfigOptions {
        context: Some(loaded.context.clone()),
        cluster: options.cluster.clone(),
        user: options.user.clone(),
    };
    let mut config = kube::Config::from_custom_kubeconfig(loaded.config.clone(), &kube_options)
        .await
        .map_err(|e| KubeconfigError::Invalid {
            context: loaded.context.clone(),
            reason: one_line(&e),
        })?;
    if let Some(namespace) = &options.namespace {
        config.default_namespace.clone_from(namespace);
    }
    if let Some(timeout) = options.request_timeout {
        config.read_timeout = Some(timeout);
        config.connect_timeout = Some(timeout);
        config.write_timeout = Some(timeout);
    }
    if let Some(user) = &options.impersonate {
        config.auth_info.impersonate = Some(user.clone());
    }
    if !options.impersonate_groups.is_empty() {
        config.auth_info.impersonate_groups = Some(options.impersonate_groups.clone());
    }
    if options.insecure_skip_tls_verify {
        config.accept_invalid_certs = true;
    }
    if let Some(name) = &options.tls_server_name {
        config.tls_server_name = Some(name.clone());
    }
    Ok(config)
}

/// The longest duration a flag accepts; `0` (no timeout) stands for this long too. Longer
/// values would overflow the timers.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Parses kubectl's `--request-timeout`: a bare number is seconds, or a number with `s`, `m` or
/// `h` (combinations like `1m30s` too). `0` means no timeout; more than [`MAX_DURATION`] is
/// refused.
pub fn parse_timeout(text: &str) -> Result<Option<Duration>, String> {
    let text = text.trim();
    let too_long = || {
        format!(
            "invalid duration {text:?}: longer than {}h (use 0 for no timeout)",
            MAX_DURATION.as_secs() / 3600
        )
    };
    if let Ok(seconds) = text.parse::<u64>() {
        if seconds > MAX_DURATION.as_secs() {
            return Err(too_long());
        }
        return Ok((seconds > 0).then(|| Duration::from_secs(seconds)));
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(too_long());
    }
    let mut total = Duration::ZERO;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            "ms"
        } else {
            match c {
                's' => "s",
                'm' => "m",
                'h' => "h",
                _ => return Err(format!("invalid duration {text:?}: unknown unit {c:?}")),
            }
        };
        let value: f64 = number
            .parse()
            .map_err(|_| format!("invalid duration {text:?}"))?;
        number.clear();
        let seconds = match unit {
            "ms" => value / 1000.0,
            "s" => value,
            "m" => value * 60.0,
            _ => value * 3600.0,
        };
        if !seconds.is_finite() || seconds > MAX_DURATION.as_secs_f64() {
            return Err(too_long());
        }
        total += Duration::from_secs_f64(seconds);
        if total > MAX_DURATION {
            return Err(too_long());
        }
    }
    if !number.is_empty() {
        return Err(format!("invalid duration {text:?}: missing unit"));
    }
    Ok((!total.is_zero()).then_some(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_like_kubectl() {
        assert_eq!(parse_timeout("0"), Ok(None));
        assert_eq!(parse_timeout("5"), Ok(Some(Duration::from_secs(5))));
        assert_eq!(parse_timeout("30s"), Ok(Some(Duration::from_secs(30))));
        assert_eq!(parse_timeout("1m30s"), Ok(Some(Duration::from_secs(90))));
        assert_eq!(parse_timeout("250ms"), Ok(Some(Duration::from_millis(250))));
        assert!(parse_timeout("5x").is_err());
        assert!(parse_timeout("1m5").is_err());
        assert_eq!(parse_timeout("24h"), Ok(Some(MAX_DURATION)));
        for huge in [
            "86401",
            "18446744073709551615",
            "99999999999999999999",
            "9999999999999999999999999h",
            "23h61m",
        ] {
            assert!(
                parse_timeout(huge).is_err_and(|e| e.contains("longer than 24h")),
                "{huge}"
            );
        }
    }
}
