//! The few Azure Resource Manager calls doctor and `enable --federate` make, over plain reqwest:
//! `nextLink` and `$skipToken` paging, ARM's error envelope turned into a readable message, and
//! 429/503 retried after `Retry-After`, a bounded number of times.

use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::jwt::redact;

pub const API_AKS: &str = "2025-10-01";
pub const API_MSI: &str = "2024-11-30";
pub const API_AUTHORIZATION: &str = "2022-04-01";
pub const API_RESOURCE_GRAPH: &str = "2024-04-01";
pub const API_SUBSCRIPTIONS: &str = "2022-12-01";

const MAX_RETRIES: u32 = 3;
/// Longer waits than this are reported instead of waited on: doctor is interactive.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Pages followed before giving up, so a server that keeps sending `nextLink` cannot loop us.
const MAX_PAGES: usize = 200;

/// A bearer token for Resource Manager. It has no `Debug` or `Display` of its value, so it
/// cannot end up in output by accident.
pub struct Bearer(String);

impl Bearer {
    pub fn new(token: String) -> Bearer {
        Bearer(token)
    }
}

impl fmt::Debug for Bearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bearer(..)")
    }
}

/// A failed Resource Manager call, naming what was asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArmError {
    #[error("{what}: HTTP {status} {code}: {message}")]
    Status {
        what: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{what}: {message}")]
    Transport { what: String, message: String },
}

impl ArmError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ArmError::Status { status, .. } => Some(*status),
            ArmError::Transport { .. } => None,
        }
    }
}

#[derive(Debug)]
pub struct Arm {
    http: reqwest::Client,
    base: String,
    token: Bearer,
}

/// Percent-encodes a query value (`$filter=principalId eq '…'`).
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A KQL string literal.
pub fn kql_string(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// ARM's `{"error":{"code","message"}}`, or the start of whatever else came back.
fn error_of(body: &[u8]) -> (String, String) {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let text = |key: &str| {
        error
            .and_then(|e| e.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match (text("code"), text("message")) {
        (Some(code), Some(message)) => (code, redact(&message, &[])),
        (Some(code), None) => (code, String::new()),
        _ => (
            String::new(),
            redact(
                &String::from_utf8_lossy(body)
                    .chars()
                    .take(200)
                    .collect::<String>(),
                &[],
            ),
        ),
    }
}

impl Arm {
    pub fn new(http: reqwest::Client, base: &str, token: Bearer) -> Arm {
        Arm {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
        }
    }

    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.base)
        }
    }

    /// What a request was for, in messages: method and path, without the query.
    fn what(method: &Method, path_or_url: &str) -> String {
        let path = path_or_url.split('?').next().unwrap_or_default();
        format!("{method} {path}")
    }

    /// Sends one request, retrying 429 and 503 after `Retry-After` (or a short backoff).
    pub async fn send(
        &self,
        method: Method,
        path_or_url: &str,
        body: Option<&Value>,
    ) -> Result<Value, ArmError> {
        let what = Self::what(&method, path_or_url);
        let url = self.url(path_or_url);
        let mut attempt = 0;
        loop {
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&self.token.0);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(|e| ArmError::Transport {
                what: what.clone(),
                message: redact(&transport_message(&e), &[&self.token.0]),
            })?;
            let status = response.status();
            if matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            ) && attempt < MAX_RETRIES
            {
                let wait = retry_after(&response).unwrap_or(Duration::from_millis(500 << attempt));
                if wait > MAX_RETRY_AFTER {
                    return Err(ArmError::Status {
                        what,
                        status: status.as_u16(),
                        code: "Throttled".into(),
                        message: format!(
                            "Resource Manager asked to retry after {}s, longer than doctor waits ({}s); run again later",
                            wait.as_secs(),
                            MAX_RETRY_AFTER.as_secs()
                        ),
                    });
                }
                attempt += 1;
                tokio::time::sleep(wait).await;
                continue;
            }
            let bytes = response.bytes().await.map_err(|e| ArmError::Transport {
                what: what.clone(),
                message: format!("connection closed while reading the response: {e}"),
            })?;
            if !status.is_success() {
                let (code, message) = error_of(&bytes);
                return Err(ArmError::Status {
                    what,
                    status: status.as_u16(),
                    code,
                    message,
                });
            }
            if bytes.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes).map_err(|e| ArmError::Transport {
                what,
                message: format!("malformed JSON in the response: {e}"),
            });
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value, ArmError> {
        self.send(Method::GET, path, None).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, ArmError> {
        self.send(Method::PUT, path, Some(body)).await
    }

    /// Every item of a list, following `nextLink` on the same host only: the bearer token is
    /// never sent anywhere else.
    pub async fn list(&self, path: &str) -> Result<Vec<Value>, ArmError> {
        let mut items = Vec::new();
        let mut next = Some(path.to_string());
        let mut pages = 0;
        while let Some(current) = next.take() {
            pages += 1;
            let page = self.get(&current).await?;
            if let Some(values) = page.get("value").and_then(Value::as_array) {
                items.extend(values.iter().cloned());
            }
            next = page
                .get("nextLink")
                .and_then(Value::as_str)
                .filter(|link| !link.is_empty())
                .map(str::to_string);
            if let Some(link) = &next {
                if !link.starts_with(&format!("{}/", self.base)) {
                    return Err(ArmError::Transport {
                        what: Self::what(&Method::GET, path),
                        message: format!(
                            "nextLink points away from {} ({}); not followed",
                            self.base,
                            link.split('?').next().unwrap_or_default()
                        ),
                    });
                }
                if pages >= MAX_PAGES {
                    return Err(ArmError::Transport {
                        what: Self::what(&Method::GET, path),
                        message: format!("more than {MAX_PAGES} pages; stopped"),
                    });
                }
            }
        }
        Ok(items)
    }

    /// A Resource Graph query over every subscription the login can read (or those given),
    /// following `$skipToken`.
    pub async fn graph(
        &self,
        query: &str,
        subscriptions: &[String],
    ) -> Result<Vec<Value>, ArmError> {
        let path = format!(
            "/providers/Microsoft.ResourceGraph/resources?api-version={API_RESOURCE_GRAPH}"
        );
        let mut rows = Vec::new();
        let mut skip_token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut options = json!({"resultFormat": "objectArray"});
            if let Some(token) = &skip_token {
                options["$skipToken"] = json!(token);
            }
            let mut body = json!({"query": query, "options": options});
            if !subscriptions.is_empty() {
                body["subscriptions"] = json!(subscriptions);
            }
            let page = self.send(Method::POST, &path, Some(&body)).await?;
            if let Some(data) = page.get("data").and_then(Value::as_array) {
                rows.extend(data.iter().cloned());
            }
            skip_token = page
                .get("$skipToken")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if skip_token.is_none() {
                return Ok(rows);
            }
        }
        Err(ArmError::Transport {
            what: Self::what(&Method::POST, &path),
            message: format!("more than {MAX_PAGES} pages; stopped"),
        })
    }
}

/// reqwest's error with its causes, on one line.
pub fn transport_message(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_envelope_becomes_code_and_message() {
        let (code, message) = error_of(
            br#"{"error":{"code":"AuthorizationFailed","message":"The client 'x' does not have authorization"}}"#,
        );
        assert_eq!(code, "AuthorizationFailed");
        assert!(message.starts_with("The client"));
        let (code, message) = error_of(b"<html>bad gateway</html>");
        assert_eq!(code, "");
        assert_eq!(message, "<html>bad gateway</html>");
    }

    #[test]
    fn query_values_and_kql_strings_are_escaped() {
        assert_eq!(encode("principalId eq 'a'"), "principalId%20eq%20%27a%27");
        assert_eq!(kql_string("it's"), r"'it\'s'");
    }

    #[test]
    fn the_bearer_token_never_formats() {
        assert_eq!(format!("{:?}", Bearer::new("secret".into())), "Bearer(..)");
    }
}
