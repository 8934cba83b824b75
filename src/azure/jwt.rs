//! Reading the claims of a token without keeping the token, and scrubbing tokens out of text
//! that came back from a server before it goes anywhere near a report.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::state::TokenClaims;

/// The payload of a JWT as JSON, or `None` when the token is not a JWT. The signature is not
/// checked: the claims are shown, not trusted.
pub fn payload(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `iss`, `sub` and `aud` (a string or a list) of a service account token.
pub fn claims(token: &str) -> Option<TokenClaims> {
    let payload = payload(token)?;
    let text = |key: &str| payload.get(key).and_then(Value::as_str).map(str::to_string);
    let audiences = match payload.get("aud") {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) => many
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    Some(TokenClaims {
        issuer: text("iss")?,
        subject: text("sub")?,
        audiences,
        expires_at: payload.get("exp").and_then(Value::as_i64),
        issued_at: payload.get("iat").and_then(Value::as_i64),
    })
}

/// Text from a server or a tool with every secret it might echo removed: the exact `secrets`
/// given, and anything shaped like a bearer token.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    crate::scrub::redact(text, secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &Value) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode("signature-bytes")
        )
    }

    #[test]
    fn claims_accept_string_or_list_audiences() {
        let one = jwt(&serde_json::json!({"iss": "https://i/", "sub": "s", "aud": "a", "exp": 5}));
        let claims = claims(&one).unwrap();
        assert_eq!(claims.audiences, vec!["a"]);
        assert_eq!(claims.expires_at, Some(5));
        let many = jwt(&serde_json::json!({"iss": "https://i/", "sub": "s", "aud": ["a", "b"]}));
        assert_eq!(super::claims(&many).unwrap().audiences, vec!["a", "b"]);
        assert!(super::claims("not-a-jwt").is_none());
        assert!(super::claims("a.b.c.d").is_none());
    }

    #[test]
    fn redaction_removes_given_secrets_and_anything_jwt_shaped() {
        let token = jwt(&serde_json::json!({"iss": "x", "sub": "y"}));
        let text = format!("assertion {token} rejected; secret hunter2-secret leaked, v1.2.3 kept");
        let clean = redact(&text, &["hunter2-secret"]);
        assert!(!clean.contains(&token));
        assert!(!clean.contains("hunter2-secret"));
        assert!(clean.contains("v1.2.3 kept"), "{clean}");
        assert_eq!(
            redact("https://login.microsoftonline.com/", &[]),
            "https://login.microsoftonline.com/"
        );
    }
}
