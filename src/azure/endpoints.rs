//! Where Azure is for this run: the cloud's Resource Manager endpoint, the scope of its tokens
//! and the Entra ID authority host, with the overrides private clouds (and tests) need.

use std::net::IpAddr;

use reqwest::Url;

use crate::wiring::Cloud;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub cloud: Cloud,
    /// Resource Manager base URL, without a trailing slash.
    pub arm: String,
    /// The scope of a Resource Manager token.
    pub arm_scope: String,
    /// Entra ID authority host, without a trailing slash.
    pub authority: String,
}

fn is_loopback(url: &Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// An endpoint override: https anywhere, plain http only on a loopback address (a local proxy or
/// test double), since tokens and secrets would otherwise cross the network unencrypted.
pub fn check_override(flag: &str, value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("{flag} {value}: not a URL ({e})"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(format!(
            "{flag} {value}: plain http is accepted only for a loopback address (a local proxy or test double); tokens would cross the network unencrypted"
        )),
        other => Err(format!(
            "{flag} {value}: scheme {other} is not http or https"
        )),
    }
}

impl Endpoints {
    /// The cloud's endpoints with the overrides applied. An https Resource Manager override is a
    /// private cloud with its own token audience; a loopback http one stands in for the cloud's
    /// endpoint, so tokens keep the cloud's scope.
    pub fn resolve(
        cloud: Cloud,
        arm_override: Option<&str>,
        authority_override: Option<&str>,
    ) -> Result<Endpoints, String> {
        let trim = |url: &Url| url.as_str().trim_end_matches('/').to_string();
        let (arm, arm_scope) = match arm_override {
            Some(value) => {
                let url = check_override("--arm-endpoint", value)?;
                let base = trim(&url);
                let scope = if url.scheme() == "https" {
                    format!("{base}/.default")
                } else {
                    cloud.arm_scope()
                };
                (base, scope)
            }
            None => (cloud.arm_endpoint.to_string(), cloud.arm_scope()),
        };
        let authority = match authority_override {
            Some(value) => trim(&check_override("--authority-host", value)?),
            None => cloud.authority_host.trim_end_matches('/').to_string(),
        };
        Ok(Endpoints {
            cloud,
            arm,
            arm_scope,
            authority,
        })
    }

    /// The Entra ID token endpoint of a tenant.
    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.authority)
    }

    /// Whether the authority is a loopback http endpoint (a test double or local proxy).
    pub fn authority_is_plain_loopback(&self) -> bool {
        self.authority.starts_with("http://")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wiring::{AZURE_CHINA, AZURE_PUBLIC};

    #[test]
    fn defaults_come_from_the_cloud() {
        let e = Endpoints::resolve(AZURE_CHINA, None, None).unwrap();
        assert_eq!(e.arm, "https://management.chinacloudapi.cn");
        assert_eq!(e.arm_scope, "https://management.chinacloudapi.cn/.default");
        assert_eq!(
            e.token_url("t"),
            "https://login.chinacloudapi.cn/t/oauth2/v2.0/token"
        );
    }

    #[test]
    fn loopback_http_stands_in_and_keeps_the_clouds_scope() {
        let e = Endpoints::resolve(
            AZURE_CHINA,
            Some("http://127.0.0.1:8080/"),
            Some("http://localhost:9090"),
        )
        .unwrap();
        assert_eq!(e.arm, "http://127.0.0.1:8080");
        assert_eq!(e.arm_scope, "https://management.chinacloudapi.cn/.default");
        assert!(e.authority_is_plain_loopback());
    }

    #[test]
    fn a_private_cloud_gets_its_own_scope_and_remote_http_is_refused() {
        let e = Endpoints::resolve(AZURE_PUBLIC, Some("https://management.contoso.local"), None)
            .unwrap();
        assert_eq!(e.arm_scope, "https://management.contoso.local/.default");
        let refused =
            Endpoints::resolve(AZURE_PUBLIC, None, Some("http://login.example.com")).unwrap_err();
        assert!(refused.contains("--authority-host"), "{refused}");
        assert!(Endpoints::resolve(AZURE_PUBLIC, Some("ftp://x"), None).is_err());
    }
}
