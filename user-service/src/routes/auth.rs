//! Sign-up and credential checks for the gateway. A hash never leaves this service.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use contracts::api::users::{LoginRequest, RegisterRequest};
use platform::http::{ApiJson, Problem, RequestId};

use crate::accounts::{check_credentials, create_user, parse_new_user};
use crate::domain::{Role, User};
use crate::state::AppState;

/// `POST /auth/register`: a new account always has role `user`.
pub async fn register(
    State(state): State<AppState>,
    request_id: RequestId,
    ApiJson(request): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<User>), Problem> {
    let new_user = parse_new_user(&request.email, &request.name, request.password, Role::User)?;
    Ok((StatusCode::CREATED, Json(create_user(&state.pool, &state.hasher, &request_id, &new_user).await?)))
}

/// `POST /auth/verify` (the gateway's sign-in, same body): the user for these credentials, or one 401 for a wrong e-mail
/// address and a wrong password alike.
pub async fn verify(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Json<User>, Problem> {
    check_credentials(&state.pool, &state.hasher, &request.email, request.password)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::new(StatusCode::UNAUTHORIZED, Some("wrong e-mail address or password".to_owned())))
}
