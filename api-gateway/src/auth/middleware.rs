//! `Authorization: Bearer <token>` → the request's [`Principal`], or a 401.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use platform::http::Problem;

use super::Tokens;

fn unauthorized(detail: &str) -> Response {
    let mut response = Problem::new(StatusCode::UNAUTHORIZED, Some(detail.to_owned())).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Middleware: requires a valid bearer token and stores what it says in the request: its
/// [`platform::auth::Principal`] and the whole [`super::Verified`].
pub async fn authenticate(State(tokens): State<Arc<Tokens>>, mut request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    let Some(token) = token else { return unauthorized("a bearer token is required") };
    match tokens.verify(token.trim()) {
        Ok(verified) => {
            request.extensions_mut().insert(verified.principal);
            request.extensions_mut().insert(verified);
            next.run(request).await
        }
        Err(error) => {
            tracing::info!(%error, "token refused");
            unauthorized("the token is invalid or expired")
        }
    }
}
