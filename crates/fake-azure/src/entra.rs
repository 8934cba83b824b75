//! The Entra ID token endpoint (`POST /{tenant}/oauth2/v2.0/token`): client secret logins and
//! client assertion exchanges, refused with the codes Entra ID uses.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{FakeAzure, Identity};

pub struct Issued {
    pub status: u16,
    pub body: Value,
    /// The access token, when one was issued.
    pub token: Option<String>,
}

fn refuse(status: u16, error: &str, code: u64, description: &str) -> Issued {
    Issued {
        status,
        body: json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description}\r\nTrace ID: 0b7e2f7e-0000-4000-8000-000000000000\r\nCorrelation ID: 1c8f3a8f-0000-4000-8000-000000000000\r\nTimestamp: 2026-11-20 10:00:00Z"),
            "error_codes": [code],
            "timestamp": "2026-11-20 10:00:00Z",
            "trace_id": "0b7e2f7e-0000-4000-8000-000000000000",
            "correlation_id": "1c8f3a8f-0000-4000-8000-000000000000",
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
        token: None,
    }
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn access_token(
    config: &FakeAzure,
    tenant: &str,
    client_id: &str,
    object_id: &str,
    serial: u64,
) -> String {
    let header = json!({"typ": "JWT", "alg": "RS256"});
    let claims = json!({
        "aud": config.scope.trim_end_matches("/.default"),
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "appid": client_id,
        "oid": object_id,
        "sub": object_id,
        "tid": tenant,
    });
    format!(
        "{}.{}.{}{serial}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        config.access_token_marker
    )
}

fn granted(
    config: &FakeAzure,
    tenant: &str,
    client_id: &str,
    object_id: &str,
    serial: u64,
) -> Issued {
    let token = access_token(config, tenant, client_id, object_id, serial);
    Issued {
        status: 200,
        body: json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
        token: Some(token),
    }
}

fn claims(assertion: &str) -> Option<Value> {
    let payload = assertion.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

fn forced(code: u64) -> Issued {
    let description = match code {
        90061 => "Request to External OIDC endpoint failed.",
        700_027 => "Client assertion failed signature validation.",
        700_212 => {
            "No matching federated identity record found for presented assertion audience 'x'."
        }
        _ => "Injected error.",
    };
    refuse(400, "invalid_client", code, description)
}

/// Entra ID's federated credential matching, as observed: issuer first, then subject, both
/// case-sensitive since 2025; a case-only difference has its own code.
fn judge_assertion(
    identity: &Identity,
    claims: &Value,
    config: &FakeAzure,
    tenant: &str,
    serial: u64,
) -> Issued {
    let text = |key: &str| {
        claims
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (iss, sub) = (text("iss"), text("sub"));
    let audiences: Vec<String> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    let creds = &identity.credentials;
    if creds.iter().any(|c| {
        c.issuer == iss && c.subject == sub && audiences.iter().any(|a| c.audiences.contains(a))
    }) {
        return granted(
            config,
            tenant,
            &identity.client_id,
            &identity.principal_id,
            serial,
        );
    }
    let case_only = creds.iter().any(|c| {
        c.issuer.eq_ignore_ascii_case(&iss)
            && c.subject.eq_ignore_ascii_case(&sub)
            && (c.issuer != iss || c.subject != sub)
    });
    if case_only {
        return refuse(
            400,
            "invalid_client",
            7_002_138,
            &format!(
                "No matching federated identity record found for presented assertion. The federated identity credential matching is case-sensitive. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'."
            ),
        );
    }
    if !creds.iter().any(|c| c.issuer == iss) {
        return refuse(
            400,
            "invalid_client",
            700_211,
            &format!(
                "No matching federated identity record found for presented assertion issuer '{iss}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion."
            ),
        );
    }
    if !creds.iter().any(|c| c.issuer == iss && c.subject == sub) {
        return refuse(
            400,
            "invalid_client",
            700_213,
            &format!(
                "No matching federated identity record found for presented assertion subject '{sub}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion."
            ),
        );
    }
    refuse(
        400,
        "invalid_client",
        70021,
        &format!(
            "No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{}'.",
            audiences.join(",")
        ),
    )
}

// One function per endpoint, like the real one: every refusal it can give stands in order.
#[allow(clippy::too_many_lines)]
pub fn token(
    config: &FakeAzure,
    tenant: &str,
    form: &[(String, String)],
    now: i64,
    serial: u64,
) -> Issued {
    if field(form, "grant_type") != Some("client_credentials") {
        return refuse(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if !config.tenants.iter().any(|t| t == tenant) {
        return refuse(
            400,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    let scope = field(form, "scope").unwrap_or_default();
    if scope != config.scope {
        return refuse(
            400,
            "invalid_resource",
            500_011,
            &format!(
                "The resource principal named {} was not found in the tenant named {tenant}.",
                scope.trim_end_matches("/.default")
            ),
        );
    }
    let client_id = field(form, "client_id").unwrap_or_default();
    if let Some(secret) = field(form, "client_secret") {
        let Some(login) = config
            .logins
            .iter()
            .find(|l| l.tenant_id == tenant && l.client_id == client_id)
        else {
            return refuse(
                400,
                "unauthorized_client",
                700_016,
                &format!(
                    "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
                ),
            );
        };
        if login.secret != secret {
            return refuse(
                401,
                "invalid_client",
                7_000_215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.",
            );
        }
        return granted(config, tenant, client_id, super::LOGIN_OBJECT_ID, serial);
    }
    let Some(assertion) = field(form, "client_assertion") else {
        return refuse(
            400,
            "invalid_request",
            900_144,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    };
    if field(form, "client_assertion_type")
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return refuse(
            400,
            "invalid_request",
            50027,
            "Invalid client_assertion_type.",
        );
    }
    if let Some(code) = config.forced_exchange_error {
        return forced(code);
    }
    let Some(identity) = config
        .identities
        .iter()
        .find(|i| i.tenant_id == tenant && i.client_id.eq_ignore_ascii_case(client_id))
    else {
        return refuse(
            400,
            "unauthorized_client",
            700_016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant."
            ),
        );
    };
    let Some(claims) = claims(assertion) else {
        return refuse(
            400,
            "invalid_client",
            50027,
            "JWT token is invalid or malformed.",
        );
    };
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if exp <= now {
        return refuse(
            400,
            "invalid_client",
            700_024,
            &format!(
                "Client assertion is not within its valid time range. Current time: {now}, expiry time of assertion {exp}."
            ),
        );
    }
    judge_assertion(identity, &claims, config, tenant, serial)
}
