//! RFC 7807 `application/problem+json` responses: the one error shape of the platform.
//!
//! Each use case has its own `thiserror` enum and converts into [`Problem`];
//! that conversion is the only place an error becomes a status code. A 5xx
//! body never says more than its status: the cause rides in the response's extensions
//! to the logging middleware (`layers::log_internal_errors`, as the axum examples do),
//! which logs it inside the request's span, joined by `request_id` and trace id.

use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Path of the field, e.g. `items[0].price`.
    #[schema(example = "items[0].price")]
    pub field: String,
    /// What is wrong with it.
    #[schema(example = "must have at most 2 decimal places")]
    pub message: String,
}

impl FieldError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl ToString) -> Self {
        Self { field: field.into(), message: message.to_string() }
    }
}

/// An RFC 7807 problem document with its status. Its schema in the OpenAPI document is
/// derived from this struct, so the document shows exactly the fields a body has.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub kind: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What happened in this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Every failing field, for validation problems.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Seconds after which a retry may succeed, sent as `Retry-After` (not in the body).
    #[serde(skip)]
    pub retry_after: Option<u32>,
    /// What went wrong inside, for the log only (never in the body).
    #[serde(skip)]
    cause: Option<InternalError>,
}

/// The cause of a 500, carried in the response's extensions to the middleware that logs it.
/// (`Arc<String>`, a thin pointer, keeps `Problem` within clippy's size for an `Err`.)
#[derive(Debug, Clone)]
pub struct InternalError(pub Arc<String>);

impl Problem {
    /// A problem whose title is the status's reason phrase.
    pub fn new(status: StatusCode, detail: impl Into<Option<String>>) -> Self {
        Self {
            kind: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
            cause: None,
        }
    }

    /// 400 with a detail.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(detail.into()))
    }

    /// 400 listing every failing field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        Self {
            kind: "/problems/validation".to_owned(),
            title: "Your request parameters didn't validate".to_owned(),
            errors,
            ..Self::bad_request("one or more fields are invalid")
        }
    }

    /// 404 for something that does not exist.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, Some(detail.into()))
    }

    /// 409 for a conflict with stored state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, Some(detail.into()))
    }

    /// 503 for a dependency that is down; the detail must not reveal internals.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, Some(detail.into()))
    }

    /// 503 for a service at capacity: the client should retry after `seconds`.
    pub fn busy(detail: impl Into<String>, seconds: u32) -> Self {
        Self { retry_after: Some(seconds), ..Self::unavailable(detail) }
    }

    /// 500. The error's whole cause chain is logged by the middleware; the body says nothing of it.
    pub fn internal(error: &anyhow::Error) -> Self {
        Self {
            cause: Some(InternalError(Arc::new(format!("{error:#}")))),
            ..Self::new(StatusCode::INTERNAL_SERVER_ERROR, None)
        }
    }

    /// The status as a [`StatusCode`].
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<anyhow::Error> for Problem {
    fn from(error: anyhow::Error) -> Self {
        Self::internal(&error)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let retry_after = self.retry_after;
        let cause = self.cause.clone();
        let mut response = (status, Json(self)).into_response();
        if let Some(cause) = cause {
            response.extensions_mut().insert(cause);
        }
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        // A client too slow to send its request loses the connection, not just the request.
        if status == StatusCode::REQUEST_TIMEOUT {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_error_reveals_nothing() {
        let problem = Problem::internal(&anyhow::anyhow!("password authentication failed for user app"));
        let body = serde_json::to_string(&problem).unwrap();
        assert!(!body.contains("password"), "{body}");
        assert_eq!(problem.status, 500);
    }

    #[test]
    fn the_response_has_the_problem_media_type() {
        let response = Problem::not_found("no such order").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }
}
