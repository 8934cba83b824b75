//! Logging in to Azure for Resource Manager reads, with azure_identity: workload identity when
//! `AZURE_FEDERATED_TOKEN_FILE` is set, a service principal secret from `AZURE_CLIENT_ID`,
//! `AZURE_TENANT_ID` and `AZURE_CLIENT_SECRET`, then the Azure CLI's login.
//!
//! azure_identity refuses authority hosts that are not https. A loopback http authority (a test
//! double or local proxy) is therefore given to it as https and its transport turns the scheme
//! back at the last moment, for that host and port only: the credential code that runs is the
//! production code either way.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::error::ErrorKind;
use azure_core::http::{
    AsyncRawResponse, ClientOptions, HttpClient, Request, Transport, new_http_client,
};
use azure_identity::{
    AzureCliCredential, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use super::AuthChoice;
use super::endpoints::Endpoints;
use super::jwt::redact;
use crate::wiring::{
    AZURE_CHINA, AZURE_US_GOVERNMENT, ENV_CLIENT_ID, ENV_TENANT_ID, ENV_TOKEN_FILE,
};

pub const ENV_CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";

/// A credential doctor can log in with, and what to call it in messages.
pub struct Login {
    pub method: &'static str,
    pub credential: Arc<dyn TokenCredential>,
}

/// Why there is no login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoLogin {
    /// Nothing to log in with was found (auto mode).
    NotFound(String),
    /// The chosen method lacks what it needs, or could not be set up.
    Unusable(String),
}

#[derive(Debug)]
struct PlainHttpLoopback {
    inner: Arc<dyn HttpClient>,
    host: String,
    port: Option<u16>,
}

#[async_trait]
impl HttpClient for PlainHttpLoopback {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let mut request = request.clone();
        let url = request.url_mut();
        if url.host_str() == Some(self.host.as_str()) && url.port() == self.port {
            // Both schemes are "special" in the URL standard, so the switch cannot fail.
            let _ = url.set_scheme("http");
        }
        self.inner.execute_request(&request).await
    }
}

fn client_options(endpoints: &Endpoints) -> Result<ClientOptions, String> {
    let mut options = ClientOptions::default();
    let default_authority = endpoints.cloud.authority_host.trim_end_matches('/');
    let cloud = if endpoints.authority == default_authority {
        match endpoints.cloud.name {
            name if name == AZURE_US_GOVERNMENT.name => CloudConfiguration::AzureGovernment,
            name if name == AZURE_CHINA.name => CloudConfiguration::AzureChina,
            _ => CloudConfiguration::AzurePublic,
        }
    } else {
        let mut custom = CustomConfiguration::default();
        custom.authority_host = match endpoints.authority.strip_prefix("http://") {
            Some(rest) => {
                let url = reqwest::Url::parse(&endpoints.authority)
                    .map_err(|e| format!("--authority-host {}: {e}", endpoints.authority))?;
                options.transport = Some(Transport::new(Arc::new(PlainHttpLoopback {
                    inner: new_http_client(None),
                    host: url.host_str().unwrap_or_default().to_string(),
                    port: url.port_or_known_default(),
                })));
                format!("https://{rest}")
            }
            None => endpoints.authority.clone(),
        };
        CloudConfiguration::Custom(custom)
    };
    options.cloud = Some(Arc::new(cloud));
    Ok(options)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn missing(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter(|n| env(n).is_none())
        .map(|n| (*n).to_string())
        .collect()
}

fn workload_identity(endpoints: &Endpoints) -> Result<Login, NoLogin> {
    let absent = missing(&[ENV_TOKEN_FILE, ENV_CLIENT_ID, ENV_TENANT_ID]);
    if !absent.is_empty() {
        return Err(NoLogin::Unusable(format!(
            "--azure-auth workload-identity needs {} in the environment",
            absent.join(", ")
        )));
    }
    let options = WorkloadIdentityCredentialOptions {
        credential_options: ClientAssertionCredentialOptions {
            client_options: client_options(endpoints).map_err(NoLogin::Unusable)?,
        },
        ..WorkloadIdentityCredentialOptions::default()
    };
    let credential = WorkloadIdentityCredential::new(Some(options))
        .map_err(|e| NoLogin::Unusable(format!("workload identity: {e}")))?;
    Ok(Login {
        method: "workload identity",
        credential,
    })
}

fn client_secret(endpoints: &Endpoints) -> Result<Login, NoLogin> {
    let (Some(client_id), Some(tenant_id), Some(secret)) = (
        env(ENV_CLIENT_ID),
        env(ENV_TENANT_ID),
        env(ENV_CLIENT_SECRET),
    ) else {
        let absent = missing(&[ENV_CLIENT_ID, ENV_TENANT_ID, ENV_CLIENT_SECRET]);
        return Err(NoLogin::Unusable(format!(
            "--azure-auth client-secret needs {} in the environment",
            absent.join(", ")
        )));
    };
    let options = ClientSecretCredentialOptions {
        client_options: client_options(endpoints).map_err(NoLogin::Unusable)?,
    };
    let credential =
        ClientSecretCredential::new(&tenant_id, client_id, Secret::new(secret), Some(options))
            .map_err(|e| NoLogin::Unusable(format!("client secret: {e}")))?;
    Ok(Login {
        method: "a service principal secret (AZURE_CLIENT_SECRET)",
        credential,
    })
}

fn az_cli() -> Result<Login, NoLogin> {
    if which::which("az").is_err() {
        return Err(NoLogin::Unusable(
            "--azure-auth az-cli needs the Azure CLI (`az`) on PATH".into(),
        ));
    }
    let credential =
        AzureCliCredential::new(None).map_err(|e| NoLogin::Unusable(format!("Azure CLI: {e}")))?;
    Ok(Login {
        method: "the Azure CLI login",
        credential,
    })
}

/// The credential to use, chosen as asked or, with `auto`, the first whose inputs are present.
pub fn login(choice: AuthChoice, endpoints: &Endpoints) -> Result<Login, NoLogin> {
    match choice {
        AuthChoice::WorkloadIdentity => workload_identity(endpoints),
        AuthChoice::ClientSecret => client_secret(endpoints),
        AuthChoice::AzCli => az_cli(),
        AuthChoice::Auto => {
            if env(ENV_TOKEN_FILE).is_some() {
                workload_identity(endpoints)
            } else if env(ENV_CLIENT_SECRET).is_some() {
                client_secret(endpoints)
            } else if which::which("az").is_ok() {
                az_cli()
            } else {
                Err(NoLogin::NotFound(
                    "no Azure login (`az login`; --azure-auth for others)".into(),
                ))
            }
        }
    }
}

/// The AADSTS number Entra ID put first in `error_codes`, from the error chain (not its text).
fn entra_code(error: &azure_core::Error) -> Option<u64> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(ErrorKind::HttpResponse {
            error_code: Some(codes),
            ..
        }) = e
            .downcast_ref::<azure_core::Error>()
            .map(azure_core::Error::kind)
        {
            return codes.split(',').next()?.trim().parse().ok();
        }
        current = e.source();
    }
    None
}

/// The `AADSTS…: description` sentence inside an error's text. azure_identity 1.0 fails to
/// parse Entra ID's error body when its description holds escapes (it always ends with
/// `\r\nTrace ID: …`), so the code is then only in the text of that parse error.
fn entra_sentence(text: &str) -> Option<(u64, String)> {
    let start = text.find("AADSTS")?;
    let rest = &text[start..];
    let end = ["\\r", "\\n", "\r", "\n", "\""]
        .iter()
        .filter_map(|stop| rest.find(stop))
        .min()
        .unwrap_or(rest.len());
    let sentence = rest[..end].trim().to_string();
    let code = sentence["AADSTS".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()?;
    Some((code, sentence))
}

/// A Resource Manager token, or why there is none (with secrets removed from the reason).
pub async fn arm_token(login: &Login, endpoints: &Endpoints) -> Result<String, String> {
    let scope = endpoints.arm_scope.as_str();
    match login.credential.get_token(&[scope], None).await {
        Ok(token) => Ok(token.token.secret().to_string()),
        Err(error) => {
            let secret = env(ENV_CLIENT_SECRET).unwrap_or_default();
            let text = redact(&error.to_string(), &[secret.as_str()]);
            let sentence = entra_sentence(&text);
            let detail = sentence.as_ref().map_or_else(
                || text.lines().next().unwrap_or_default().to_string(),
                |(_, sentence)| sentence.clone(),
            );
            let hint = entra_code(&error)
                .or(sentence.map(|(code, _)| code))
                .and_then(super::aadsts::lookup)
                .map(|a| format!(" ({}; {})", a.cause, a.fix))
                .unwrap_or_default();
            Err(format!(
                "could not log in to Azure with {}: {detail}{hint}",
                login.method
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entra_sentence_is_found_in_a_parse_error_or_a_plain_message() {
        let parse_error = r#"ClientSecretCredential authentication failed. invalid type: string "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 0b7e", expected a borrowed string at line 1 column 440"#;
        assert_eq!(
            entra_sentence(parse_error),
            Some((
                7_000_215,
                "AADSTS7000215: Invalid client secret provided.".to_string()
            ))
        );
        let plain = "WorkloadIdentityCredential authentication failed. AADSTS700016: Application not found.\nTo troubleshoot";
        assert_eq!(entra_sentence(plain).map(|(c, _)| c), Some(700_016));
        assert_eq!(entra_sentence("az not found on PATH"), None);
    }
}
