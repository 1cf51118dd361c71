//! `POST /api/auth/register` and `POST /api/auth/login`: the only public API routes.
//!
//! user-service keeps the credentials and checks them; the gateway only signs the
//! token for the user it returns.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use contracts::api::users::{TokenResponse, User};
use platform::auth::Principal;
use platform::http::{ApiBytes, Problem, RequestId};

use super::AppState;

/// `POST /api/auth/register` `{email, password, name}` → 201 with a token; the account has role `user`.
pub async fn register(
    State(state): State<AppState>,
    request_id: RequestId,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<(StatusCode, Json<TokenResponse>), Problem> {
    let (user, version) = state.upstreams.call_user_service("/auth/register", &request_id, &headers, body).await?;
    Ok((StatusCode::CREATED, Json(token_for(&state, user, version)?)))
}

/// `POST /api/auth/login` `{email, password}` → 200 with a token; one 401 for any wrong credential.
pub async fn login(
    State(state): State<AppState>,
    request_id: RequestId,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Json<TokenResponse>, Problem> {
    let (user, version) = state.upstreams.call_user_service("/auth/verify", &request_id, &headers, body).await?;
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
