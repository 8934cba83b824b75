//! `Status` bodies shaped like the real server's failures.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::catalog::ResourceType;

#[derive(Debug)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Value,
}

/// The reason the real server gives for a status code.
pub fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

fn resource_details(resource: &ResourceType, name: Option<&str>) -> Value {
    let mut details = serde_json::Map::new();
    if let Some(name) = name {
        details.insert("name".to_owned(), json!(name));
    }
    if !resource.group.is_empty() {
        details.insert("group".to_owned(), json!(resource.group));
    }
    details.insert("kind".to_owned(), json!(resource.plural));
    Value::Object(details)
}

impl ApiError {
    pub fn new(code: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason: reason_for(code),
            message: message.into(),
            details: json!({}),
        }
    }

    pub fn unknown_resource() -> ApiError {
        ApiError::new(404, "the server could not find the requested resource")
    }

    pub fn not_found(resource: &ResourceType, name: &str) -> ApiError {
        ApiError {
            details: resource_details(resource, Some(name)),
            ..ApiError::new(
                404,
                format!("{} \"{name}\" not found", resource.qualified_name()),
            )
        }
    }

    pub fn forbidden(
        resource: &ResourceType,
        verb: &str,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> ApiError {
        let subject = match name {
            Some(name) => format!("{} \"{name}\"", resource.qualified_name()),
            None => resource.qualified_name(),
        };
        let scope = match namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_owned(),
        };
        ApiError {
            details: resource_details(resource, name),
            ..ApiError::new(
                403,
                format!(
                    "{subject} is forbidden: User \"fake\" cannot {verb} resource \"{}\" in API group \"{}\" {scope}",
                    resource.plural, resource.group
                ),
            )
        }
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "the server does not allow this method on the requested resource",
        )
    }

    /// A 409 about one object, as optimistic-concurrency failures read.
    pub fn conflict(resource: &ResourceType, name: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            details: resource_details(resource, Some(name)),
            ..ApiError::new(409, message)
        }
    }

    /// A failure the real server has no Status for: code 500 and no reason,
    /// as it answers errors that are not API errors.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            reason: "",
            ..ApiError::new(500, message)
        }
    }

    /// A 422 about request options rather than an object, such as
    /// `PatchOptions`, which the real server names with an empty name.
    pub fn invalid_options(kind: &str, field: &str, reason: &str, cause: &str) -> ApiError {
        ApiError {
            details: json!({
                "group": "meta.k8s.io",
                "kind": kind,
                "causes": [{"reason": reason, "message": cause, "field": field}],
            }),
            ..ApiError::new(
                422,
                format!("{kind}.meta.k8s.io \"\" is invalid: {field}: {cause}"),
            )
        }
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized")
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }

    /// A 422 naming one invalid field, as validation failures read.
    pub fn invalid(
        group: &str,
        kind: &str,
        name: &str,
        field: &str,
        value: &Value,
        problem: &str,
    ) -> ApiError {
        let cause = format!("Invalid value: {value}: {problem}");
        ApiError {
            details: json!({
                "name": name,
                "group": group,
                "kind": kind,
                "causes": [{"reason": "FieldValueInvalid", "message": cause, "field": field}],
            }),
            ..ApiError::new(
                422,
                format!("{kind}.{group} \"{name}\" is invalid: {field}: {cause}"),
            )
        }
    }

    pub fn body(&self) -> Value {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        });
        // Like every empty field of a real Status, an unknown reason is left out.
        if self.reason.is_empty()
            && let Some(map) = body.as_object_mut()
        {
            map.remove("reason");
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, self.body().to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}
