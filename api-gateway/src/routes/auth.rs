//! `POST /api/auth/register` and `POST /api/auth/login`: the only public API routes.
//!
//! user-service keeps the credentials and checks them; the gateway only signs the
//! token for the user it returns.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use contracts::api::users::{TokenResponse, User};
use platform::auth::Principal;
use platform::http::{ApiBytes, Problem, RequestId};

use super::{AppState, SharedState};
use crate::auth::credentials_version;
use crate::upstream::{Call, Service, Upstreams};

/// `POST /api/auth/register` `{email, password, name}` → 201 with a token; the account has role `user`.
pub async fn register(
    State(state): State<SharedState>,
    request_id: RequestId,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<(StatusCode, Json<TokenResponse>), Problem> {
    let (user, version) = call_user_service(&state.upstreams, "/auth/register", &request_id, &headers, body).await?;
    Ok((StatusCode::CREATED, Json(token_for(&state, user, version)?)))
}

/// `POST /api/auth/login` `{email, password}` → 200 with a token; one 401 for any wrong credential.
pub async fn login(
    State(state): State<SharedState>,
    request_id: RequestId,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Json<TokenResponse>, Problem> {
    let (user, version) = call_user_service(&state.upstreams, "/auth/verify", &request_id, &headers, body).await?;
    Ok(Json(token_for(&state, user, version)?))
}

fn token_for(state: &AppState, user: User, credentials_version: u32) -> Result<TokenResponse, Problem> {
    let access_token = state
        .tokens
        .issue(Principal { id: user.id, role: user.role }, credentials_version)
        .map_err(|e| Problem::internal(&anyhow::anyhow!(e)))?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer".to_owned(),
        expires_in: state.tokens.lifetime_seconds(),
        user,
    })
}

/// Calls a user-service auth route with the client's body and content type, and returns
/// the user it answers with and their credentials version; an error answer comes back as
/// the problem user-service gave, with its `Retry-After`.
async fn call_user_service(
    upstreams: &Upstreams,
    path: &str,
    request_id: &RequestId,
    client_headers: &HeaderMap,
    body: Bytes,
) -> Result<(User, u32), Problem> {
    let mut headers = HeaderMap::new();
    if let Some(content_type) = client_headers.get(header::CONTENT_TYPE) {
        headers.insert(header::CONTENT_TYPE, content_type.clone());
    }
    let call = Call {
        service: Service::Users,
        method: Method::POST,
        path,
        query: None,
        headers,
        principal: None,
        body: Body::from(body),
    };
    let (status, headers, bytes) = upstreams.fetch(call, request_id).await?;
    if status.is_success() {
        let user = serde_json::from_slice(&bytes)
            .map_err(|e| Problem::internal(&anyhow::anyhow!(e).context("user-service answered with no valid user")))?;
        Ok((user, credentials_version(&headers)))
    } else {
        let mut problem = serde_json::from_slice::<Problem>(&bytes).unwrap_or_else(|_| Problem::new(status, None));
        // `Retry-After` travels as a header, not in the problem's body.
        problem.retry_after = headers.get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()?.parse().ok());
        Err(problem)
    }
}
