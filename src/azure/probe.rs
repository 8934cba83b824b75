//! The probe: for each ServiceAccount Flux authenticates as, mint a short-lived token through the
//! TokenRequest API (audience `api://AzureADTokenExchange`, 600 seconds, as the webhook's
//! projected token has) and exchange it at Entra ID exactly as the controller's credential does.
//! Only the claims of the tokens are kept; the tokens themselves live in this function's locals
//! and go nowhere but the token endpoint.

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use serde_json::Value;

use super::arm::transport_message;
use super::endpoints::Endpoints;
use super::jwt::{claims, payload, redact};
use super::state::{AzureState, EntraError, Probe, ProbeOutcome};
use super::subjects::WiSubject;
use crate::kubeconfig::one_line;
use crate::wiring::TOKEN_AUDIENCE;

/// The shortest lifetime the API server allows; the token only has to last one exchange.
const EXPIRATION_SECONDS: i64 = 600;
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

async fn mint(kube: &kube::Client, namespace: &str, name: &str) -> Result<String, String> {
    let api: Api<ServiceAccount> = Api::namespaced(kube.clone(), namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(vec![TOKEN_AUDIENCE.to_string()]),
            expiration_seconds: Some(EXPIRATION_SECONDS),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let response = api
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .map_err(|e| {
            format!(
                "could not create a token for ServiceAccount {namespace}/{name}: {}",
                one_line(&e)
            )
        })?;
    response
        .status
        .and_then(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            format!("the API server returned no token for ServiceAccount {namespace}/{name}")
        })
}

fn entra_error(status: u16, body: &[u8], secrets: &[&str]) -> EntraError {
    let value: Value = serde_json::from_slice(body).unwrap_or_default();
    let description = value
        .get("error_description")
        .and_then(Value::as_str)
        .map_or_else(
            || String::from_utf8_lossy(body).chars().take(200).collect(),
            str::to_string,
        );
    EntraError {
        status,
        code: value
            .get("error_codes")
            .and_then(Value::as_array)
            .and_then(|codes| codes.first())
            .and_then(Value::as_u64),
        error: value
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        description: redact(description.lines().next().unwrap_or_default(), secrets),
    }
}

/// Exchanges a ServiceAccount token for a Resource Manager token, as azidentity's
/// WorkloadIdentityCredential does: client credentials with the token as client assertion.
async fn exchange(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    tenant: &str,
    client_id: &str,
    assertion: &str,
) -> ProbeOutcome {
    let form = [
        ("client_assertion", assertion),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_id", client_id),
        ("grant_type", "client_credentials"),
        ("scope", endpoints.arm_scope.as_str()),
    ];
    let response = match http
        .post(endpoints.token_url(tenant))
        .form(&form)
        .send()
        .await
    {
        Ok(response) => response,
        Err(e) => {
            return ProbeOutcome::ExchangeFailed(redact(
                &format!(
                    "POST {}: {}",
                    endpoints.token_url(tenant),
                    transport_message(&e)
                ),
                &[assertion],
            ));
        }
    };
    let status = response.status();
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(e) => {
            return ProbeOutcome::ExchangeFailed(format!(
                "POST {}: the answer was cut off: {e}",
                endpoints.token_url(tenant)
            ));
        }
    };
    if !status.is_success() {
        return ProbeOutcome::Rejected(entra_error(status.as_u16(), &body, &[assertion]));
    }
    let access_token = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v.get("access_token")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let Some(access_token) = access_token else {
        return ProbeOutcome::ExchangeFailed(format!(
            "POST {}: HTTP {} without an access token",
            endpoints.token_url(tenant),
            status.as_u16()
        ));
    };
    let claims = payload(&access_token).unwrap_or_default();
    let text = |key: &str| claims.get(key).and_then(Value::as_str).map(str::to_string);
    ProbeOutcome::Exchanged {
        object_id: text("oid"),
        tenant_id: text("tid"),
    }
}

async fn probe_one(
    kube: &kube::Client,
    http: &reqwest::Client,
    endpoints: &Endpoints,
    azure: Option<&AzureState>,
    subject: &WiSubject,
) -> Option<Probe> {
    let client_id = subject.valid_client_id()?.to_string();
    let tenant_id = subject.valid_tenant_id().map(str::to_string).or_else(|| {
        azure
            .and_then(|a| a.identity(&client_id))
            .map(|i| i.tenant_id.clone())
            .filter(|t| !t.is_empty())
    });
    let mut probe = Probe {
        namespace: subject.namespace.clone(),
        service_account: subject.service_account.clone(),
        client_id: client_id.clone(),
        tenant_id: tenant_id.clone(),
        claims: None,
        outcome: ProbeOutcome::NotTried(String::new()),
    };
    let Some(tenant) = tenant_id else {
        probe.outcome = ProbeOutcome::NotTried(
            "no tenant ID: neither the ServiceAccount nor Resource Manager names one".into(),
        );
        return Some(probe);
    };
    let token = match mint(kube, &subject.namespace, &subject.service_account).await {
        Ok(token) => token,
        Err(reason) => {
            probe.outcome = ProbeOutcome::TokenRequestFailed(reason);
            return Some(probe);
        }
    };
    probe.claims = claims(&token);
    probe.outcome = exchange(http, endpoints, &tenant, &client_id, &token).await;
    Some(probe)
}

/// Probes every subject with a client ID, one after another: each token lives only for its
/// own exchange.
pub async fn run(
    kube: &kube::Client,
    http: &reqwest::Client,
    endpoints: &Endpoints,
    azure: Option<&AzureState>,
    subjects: &[WiSubject],
) -> Vec<Probe> {
    let mut probes = Vec::new();
    for subject in subjects {
        if let Some(probe) = probe_one(kube, http, endpoints, azure, subject).await {
            probes.push(probe);
        }
    }
    probes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entra_errors_are_keyed_on_the_first_code_and_scrubbed() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS700213: No matching federated identity record found for presented assertion subject 'system:serviceaccount:a:b'. Assertion secret-assertion-value\r\nTrace ID: 1","error_codes":[700213,1],"timestamp":"x"}"#;
        let error = entra_error(401, body, &["secret-assertion-value"]);
        assert_eq!(error.code, Some(700_213));
        assert_eq!(error.error, "invalid_client");
        assert!(!error.description.contains("secret-assertion-value"));
        assert!(!error.description.contains("Trace ID"));
        let unreadable = entra_error(502, b"bad gateway", &[]);
        assert_eq!(unreadable.code, None);
        assert_eq!(unreadable.description, "bad gateway");
    }
}
