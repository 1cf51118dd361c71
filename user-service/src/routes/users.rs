//! `/users`: create (publishing `user.created`), read one, list.

use anyhow::Context;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use shared::http::{ApiJson, ApiPath, ApiQuery, FieldError, Problem, RequestId};
use shared::outbox;
use uuid::Uuid;

use crate::domain::{Email, NewUser, Password, Role, User, UserName};
use crate::events::user_created;
use crate::repository::users::{self, InsertUserError};
use crate::startup::AppState;

/// Body of `POST /users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    email: String,
    name: String,
    password: String,
    #[serde(default)]
    role: Option<Role>,
}

impl TryFrom<CreateUserRequest> for NewUser {
    type Error = Vec<FieldError>;

    /// Checks every field and reports every failure, not just the first.
    fn try_from(request: CreateUserRequest) -> Result<Self, Self::Error> {
        let email = Email::parse(&request.email).map_err(|e| FieldError::new("email", e));
        let name = UserName::parse(&request.name).map_err(|e| FieldError::new("name", e));
        let password = Password::parse(request.password).map_err(|e| FieldError::new("password", e));
        match (email, name, password) {
            (Ok(email), Ok(name), Ok(password)) => {
                Ok(Self { email, name, password, role: request.role.unwrap_or_default() })
            }
            (email, name, password) => Err([email.err(), name.err(), password.err()].into_iter().flatten().collect()),
        }
    }
}

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// Input failed validation.
    #[error("invalid user")]
    Invalid(Vec<FieldError>),
    /// The e-mail address is taken.
    #[error("e-mail address already registered")]
    DuplicateEmail,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<CreateUserError> for Problem {
    fn from(error: CreateUserError) -> Self {
        match error {
            CreateUserError::Invalid(errors) => Problem::validation(errors),
            CreateUserError::DuplicateEmail => Problem::conflict("a user with this e-mail address already exists"),
            CreateUserError::Unexpected(error) => Problem::internal(&error),
        }
    }
}

/// `POST /users`: stores the user and, in the same transaction, its `user.created` event
/// (the outbox relay publishes it), so a user never exists without its event.
pub async fn create(
    State(state): State<AppState>,
    request_id: RequestId,
    ApiJson(request): ApiJson<CreateUserRequest>,
) -> Result<(StatusCode, Json<User>), Problem> {
    let user = create_user(&state, &request_id, request).await?;
    metrics::counter!("users_registered_total").increment(1);
    Ok((StatusCode::CREATED, Json(user)))
}

async fn create_user(
    state: &AppState,
    request_id: &RequestId,
    request: CreateUserRequest,
) -> Result<User, CreateUserError> {
    let new_user = NewUser::try_from(request).map_err(CreateUserError::Invalid)?;
    let password = new_user.password.clone();
    let hash = tokio::task::spawn_blocking(move || password.hash()).await.context("hashing task failed")??;
    let mut transaction = state.pool.begin().await.context("cannot begin transaction")?;
    let user = users::insert(&mut transaction, &new_user, &hash).await.map_err(|e| match e {
        InsertUserError::DuplicateEmail => CreateUserError::DuplicateEmail,
        InsertUserError::Other(e) => CreateUserError::Unexpected(e),
    })?;
    outbox::enqueue(&mut transaction, &user_created(&user), request_id).await?;
    transaction.commit().await.context("cannot commit new user")?;
    tracing::info!(user_id = %user.id.as_uuid(), "user created");
    Ok(user)
}

/// `GET /users/{id}`.
pub async fn get(State(state): State<AppState>, ApiPath(id): ApiPath<Uuid>) -> Result<Json<User>, Problem> {
    users::find(&state.pool, id.into())
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("user {id} does not exist")))
}

/// Paging parameters.
#[derive(Debug, Deserialize)]
pub struct Page {
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

fn default_limit() -> i64 {
    50
}

/// `GET /users?limit=&offset=`, newest first.
pub async fn list(State(state): State<AppState>, ApiQuery(page): ApiQuery<Page>) -> Result<Json<Vec<User>>, Problem> {
    if !(1..=100).contains(&page.limit) || page.offset < 0 {
        return Err(Problem::validation(vec![FieldError::new(
            "limit",
            "must be 1 to 100; offset must not be negative",
        )]));
    }
    Ok(Json(users::list(&state.pool, page.limit, page.offset).await?))
}
