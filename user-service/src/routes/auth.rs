//! Sign-up and credential checks for the gateway. A hash never leaves this service.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{AppendHeaders, IntoResponse, Response};
use contracts::api::users::{LoginRequest, RegisterRequest};
use platform::auth::CREDENTIALS_VERSION_HEADER;
use platform::http::{ApiJson, Problem, RequestId};

use crate::accounts::{check_credentials, create_user, parse_new_user};
use crate::domain::{Role, User};
use crate::repository::users::CredentialsVersion;
use crate::state::AppState;

/// `POST /auth/register`: a new account always has role `user`.
pub async fn register(
    State(state): State<AppState>,
    request_id: RequestId,
    ApiJson(request): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<User>), Problem> {
    let new_user = parse_new_user(&request.email, &request.name, request.password, Role::User)?;
    let user = create_user(&state.pool, &state.hasher, &request_id, &new_user).await?;
    state.relay.wake();
    Ok((StatusCode::CREATED, Json(user)))
}

/// `POST /auth/verify` (the gateway's sign-in, same body): the user for these credentials,
/// with their credentials version in a header for the token, or one 401 for a wrong e-mail
/// address and a wrong password alike.
pub async fn verify(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Response, Problem> {
    let (user, version) = check_credentials(&state.pool, &state.hasher, &request.email, request.password)
        .await?
        .ok_or_else(|| Problem::new(StatusCode::UNAUTHORIZED, Some("wrong e-mail address or password".to_owned())))?;
    Ok(with_credentials_version(user, version))
}

/// `user` as JSON, with its account's credentials version in a header for the gateway.
pub(super) fn with_credentials_version(user: User, version: CredentialsVersion) -> Response {
    (AppendHeaders([(CREDENTIALS_VERSION_HEADER, version.to_string())]), Json(user)).into_response()
}
