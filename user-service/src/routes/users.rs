//! `/users`: the admin's user management, and a user's own account.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use contracts::api::users::{CreateUserRequest, UpdateUserRequest, UserListQuery};
use platform::auth::{Principal, forbidden};
use platform::http::{ApiJson, ApiPath, ApiQuery, FieldError, Page, Problem, RequestId};
use uuid::Uuid;

use crate::accounts::{CreateUserError, create_user, parse_new_user};
use crate::domain::{Email, Password, User, UserName, verify_password};
use crate::repository::users::{self, InsertUserError, UserChanges};
use crate::state::AppState;

/// `POST /users` (admin).
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiJson(request): ApiJson<CreateUserRequest>,
) -> Result<(StatusCode, Json<User>), Problem> {
    principal.require_admin()?;
    let new_user = parse_new_user(&request.email, &request.name, request.password, request.role.unwrap_or_default())?;
    let user = create_user(&state.pool, &state.hasher, &request_id, &new_user).await?;
    state.relay.wake();
    Ok((StatusCode::CREATED, Json(user)))
}

/// `GET /users/{id}` (the user themself, or an admin); the gateway's account check reads
/// the credentials version in its header.
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, Problem> {
    if !principal.may_access(id) {
        return Err(forbidden());
    }
    let (user, version) = users::find(&state.pool, id.into()).await?.ok_or_else(|| not_found(id))?;
    Ok(super::auth::with_credentials_version(user, version))
}

fn not_found(id: Uuid) -> Problem {
    Problem::not_found(format!("user {id} does not exist"))
}

/// `PUT /users/{id}` (the user themself, or an admin; only an admin changes a role).
pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(request): ApiJson<UpdateUserRequest>,
) -> Result<Json<User>, Problem> {
    if !principal.may_access(id) || (request.role.is_some() && !principal.is_admin()) {
        return Err(forbidden());
    }
    let mut errors = Vec::new();
    let email = request
        .email
        .map(|e| Email::parse(&e))
        .transpose()
        .map_err(|e| errors.push(FieldError::new("email", e)))
        .ok()
        .flatten();
    let name = request
        .name
        .map(|n| UserName::parse(&n))
        .transpose()
        .map_err(|e| errors.push(FieldError::new("name", e)))
        .ok()
        .flatten();
    let password = request
        .password
        .map(Password::parse)
        .transpose()
        .map_err(|e| errors.push(FieldError::new("password", e)))
        .ok()
        .flatten();
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    if email.is_some() || password.is_some() {
        confirm_credentials_change(&state, principal, id, request.current_password).await?;
    }
    let password_hash = match password {
        Some(password) => {
            Some(state.hasher.run(&id.to_string(), move || password.hash()).await.map_err(Problem::from)??)
        }
        None => None,
    };
    let changes = UserChanges {
        email: email.map(|e| e.as_str().to_owned()),
        name: name.map(|n| n.as_str().to_owned()),
        password_hash,
        role: request.role,
    };
    match users::update(&state.pool, id.into(), &changes).await {
        Ok(Some(user)) => Ok(Json(user)),
        Ok(None) => Err(not_found(id)),
        Err(InsertUserError::DuplicateEmail) => Err(CreateUserError::DuplicateEmail.into()),
        Err(InsertUserError::Other(error)) => Err(Problem::internal(&error)),
    }
}

/// A user changing their own password or e-mail address proves they know the current
/// password: a stolen token alone cannot take the account over. An admin changing
/// someone else's needs none, and is logged.
async fn confirm_credentials_change(
    state: &AppState,
    principal: Principal,
    id: Uuid,
    current_password: Option<String>,
) -> Result<(), Problem> {
    if principal.id != id {
        tracing::info!(admin = %principal.id, user = %id, "an admin changes a user's password or e-mail address");
        return Ok(());
    }
    let Some(current) = current_password else {
        return Err(Problem::validation(vec![FieldError::new(
            "currentPassword",
            "is required to change your password or e-mail address",
        )]));
    };
    let hash = users::password_hash(&state.pool, id.into()).await?.ok_or_else(|| not_found(id))?;
    let valid = state
        .hasher
        .run(&id.to_string(), move || verify_password(&current, Some(&hash)))
        .await
        .map_err(Problem::from)?;
    if valid {
        Ok(())
    } else {
        Err(Problem::new(StatusCode::FORBIDDEN, Some("the current password is wrong".to_owned())))
    }
}

/// `DELETE /users/{id}` (admin).
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, Problem> {
    principal.require_admin()?;
    if crate::accounts::delete_user(&state.pool, &request_id, id.into()).await? {
        state.relay.wake();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(id))
    }
}

/// `GET /users?limit=&offset=` (admin), newest first.
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<UserListQuery>,
) -> Result<Json<Vec<User>>, Problem> {
    principal.require_admin()?;
    let mut errors = Vec::new();
    let page = Page::check(query.limit, query.offset, &mut errors);
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    Ok(Json(users::list(&state.pool, page.limit, page.offset).await?))
}
