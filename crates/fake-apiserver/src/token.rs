//! Service account tokens and the OIDC documents that describe their issuer.
//!
//! Tokens are shaped like the real server's (RS256 header, `kubernetes.io`
//! claim) but the signature is a fixed placeholder: nothing can verify them,
//! and the JWKS key is made-up public material with no private half.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::proto;
use super::status::ApiError;
use super::store::{rfc3339, uid_for};

pub const KEY_ID: &str = "fake";
const MIN_EXPIRATION_SECONDS: i64 = 600;
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

pub fn openid_configuration(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "jwks_uri": format!("{}/openid/v1/jwks", issuer.trim_end_matches('/')),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    })
}

/// A 2048-bit modulus-shaped value: deterministic filler with the top bit
/// set, so clients that parse the key see a plausible RSA key.
pub fn jwks() -> Value {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut modulus: Vec<u8> = (0..256)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_be_bytes()[0]
        })
        .collect();
    modulus[0] |= 0x80;
    modulus[255] |= 0x01;
    json!({
        "keys": [{
            "use": "sig",
            "kty": "RSA",
            "kid": KEY_ID,
            "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(&modulus),
            "e": "AQAB",
        }]
    })
}

pub struct TokenRequest {
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
}

/// Reads a TokenRequest body, JSON or protobuf, the way the real server
/// does: defaults for what is absent, 422 for an expiration outside
/// 10 minutes..2^32 seconds.
pub fn parse_token_request(
    body: &[u8],
    content_type: Option<&str>,
    issuer: &str,
) -> Result<TokenRequest, ApiError> {
    let media_type = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    let (kind, audiences, expiration) = match media_type.as_deref() {
        Some("application/vnd.kubernetes.protobuf") => proto::token_request(body)
            .map(|(kind, audiences, expiration)| (Some(kind), audiences, expiration))
            .map_err(|e| ApiError::bad_request(format!("error decoding TokenRequest: {e}")))?,
        None | Some("application/json") => json_token_request(body)?,
        Some(other) => {
            return Err(ApiError::new(
                415,
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json, application/vnd.kubernetes.protobuf (got {other})"
                ),
            ));
        }
    };
    if let Some(kind) = kind.filter(|k| !k.is_empty() && k != "TokenRequest") {
        return Err(ApiError::bad_request(format!(
            "the body of the request was in an unknown format: kind {kind:?}, expected TokenRequest"
        )));
    }
    let audiences = if audiences.is_empty() {
        vec![issuer.to_owned()]
    } else {
        audiences
    };
    let expiration_seconds = expiration.unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    let problem = if expiration_seconds < MIN_EXPIRATION_SECONDS {
        Some("may not specify a duration less than 10 minutes")
    } else if expiration_seconds > MAX_EXPIRATION_SECONDS {
        Some("may not specify a duration larger than 2^32 seconds")
    } else {
        None
    };
    if let Some(problem) = problem {
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            // The real server reports TokenRequest validation without a name.
            "",
            "spec.expirationSeconds",
            &json!(expiration_seconds),
            problem,
        ));
    }
    Ok(TokenRequest {
        audiences,
        expiration_seconds,
    })
}

type Requested = (Option<String>, Vec<String>, Option<i64>);

fn json_token_request(body: &[u8]) -> Result<Requested, ApiError> {
    let request: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding TokenRequest: {e}")))?
    };
    let kind = request
        .get("kind")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let audiences = request
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let expiration = match request.pointer("/spec/expirationSeconds") {
        None | Some(Value::Null) => None,
        Some(value) => Some(value.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!(
                "spec.expirationSeconds must be an integer, got {value}"
            ))
        })?),
    };
    Ok((kind, audiences, expiration))
}

pub struct Subject<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
}

/// The 201 body for `POST .../serviceaccounts/{name}/token`.
pub fn issue(
    request: &TokenRequest,
    subject: &Subject<'_>,
    issuer: &str,
    now: Timestamp,
    serial: u64,
    token_override: Option<&str>,
) -> Value {
    let issued_at = now.as_second();
    let expires_at = issued_at + request.expiration_seconds;
    let token = token_override.map_or_else(
        || {
            let header = json!({"alg": "RS256", "kid": KEY_ID});
            let claims = json!({
                "aud": request.audiences,
                "exp": expires_at,
                "iat": issued_at,
                "nbf": issued_at,
                "iss": issuer,
                "jti": uid_for(&format!("token/{}/{}/{serial}", subject.namespace, subject.name)),
                "kubernetes.io": {
                    "namespace": subject.namespace,
                    "serviceaccount": {"name": subject.name, "uid": subject.uid},
                },
                "sub": format!("system:serviceaccount:{}:{}", subject.namespace, subject.name),
            });
            format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string()),
                URL_SAFE_NO_PAD.encode("fake-signature-not-verifiable")
            )
        },
        str::to_owned,
    );
    let expiration = Timestamp::from_second(expires_at).map_or_else(|_| rfc3339(now), rfc3339);
    json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {
            "name": subject.name,
            "namespace": subject.namespace,
            "creationTimestamp": rfc3339(now),
        },
        "spec": {
            "audiences": request.audiences,
            "expirationSeconds": request.expiration_seconds,
            "boundObjectRef": null,
        },
        "status": {
            "token": token,
            "expirationTimestamp": expiration,
        },
    })
}
