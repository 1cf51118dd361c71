//! `Authorization: Bearer <token>` → the caller's [`Verified`] token, or a 401; then the
//! caller's rate limit, or a 429. An extractor rather than middleware: it runs only on the
//! routes that name it, at the cost of a function call.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use platform::http::Problem;

use super::{RateLimits, Tokens, Verified};

fn unauthorized(detail: &str) -> Response {
    let mut response = Problem::new(StatusCode::UNAUTHORIZED, Some(detail.to_owned())).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// State that can check a caller: the gateway's.
pub trait Gatekeeping: Send + Sync {
    /// Token checking.
    fn tokens(&self) -> &Tokens;
    /// The per-principal limit.
    fn limits(&self) -> &RateLimits;
}

/// A caller with a valid bearer token, within its rate limit.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated(pub Verified);

impl<S: Gatekeeping> FromRequestParts<Arc<S>> for Authenticated {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> Result<Self, Response> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
        let Some(token) = token else { return Err(unauthorized("a bearer token is required")) };
        let verified = state.tokens().verify(token.trim()).map_err(|error| {
            tracing::info!(%error, "token refused");
            unauthorized("the token is invalid or expired")
        })?;
        state.limits().check_principal(&verified.principal).map_err(IntoResponse::into_response)?;
        Ok(Self(verified))
    }
}
