//! Use cases on accounts that several routes share: creating a user (with its
//! `user.created` event in the same transaction) and checking credentials.

use anyhow::Context;
use eventing::outbox;
use platform::http::{FieldError, Problem, RequestId};
use sqlx::PgPool;

use contracts::events::UserDeleted;

use crate::domain::{Email, NewUser, Password, Role, User, UserId, UserName, verify_password};
use crate::events::user_created;
use crate::hashing::{Hasher, HashingError};
use crate::repository::users::{self, CredentialsVersion, InsertUserError};

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// Input failed validation.
    #[error("invalid user")]
    Invalid(Vec<FieldError>),
    /// The e-mail address is taken.
    #[error("e-mail address already registered")]
    DuplicateEmail,
    /// Too much password work queued already; nothing was stored.
    #[error(transparent)]
    Busy(#[from] HashingError),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<CreateUserError> for Problem {
    fn from(error: CreateUserError) -> Self {
        match error {
            CreateUserError::Invalid(errors) => Problem::validation(errors),
            CreateUserError::DuplicateEmail => Problem::conflict("a user with this e-mail address already exists"),
            CreateUserError::Busy(error) => error.into(),
            CreateUserError::Unexpected(error) => Problem::internal(&error),
        }
    }
}

/// Parses every field of a new user and reports every failure, not just the first.
pub fn parse_new_user(email: &str, name: &str, password: String, role: Role) -> Result<NewUser, CreateUserError> {
    let email = Email::parse(email).map_err(|e| FieldError::new("email", e));
    let name = UserName::parse(name).map_err(|e| FieldError::new("name", e));
    let password = Password::parse(password).map_err(|e| FieldError::new("password", e));
    match (email, name, password) {
        (Ok(email), Ok(name), Ok(password)) => Ok(NewUser { email, name, password, role }),
        (email, name, password) => {
            Err(CreateUserError::Invalid([email.err(), name.err(), password.err()].into_iter().flatten().collect()))
        }
    }
}

/// Stores the user and, in the same transaction, its `user.created` event (the outbox
/// relay publishes it), so a user never exists without its event.
pub async fn create_user(
    pool: &PgPool,
    hasher: &Hasher,
    request_id: &RequestId,
    new_user: &NewUser,
) -> Result<User, CreateUserError> {
    let password = new_user.password.clone();
    // Hashed before the transaction: a refusal (503) or failure leaves nothing behind.
    let hash = hasher.run(new_user.email.as_str(), move || password.hash()).await??;
    let mut transaction = pool.begin().await.context("cannot begin transaction")?;
    let user = users::insert(&mut transaction, new_user, &hash).await.map_err(|e| match e {
        InsertUserError::DuplicateEmail => CreateUserError::DuplicateEmail,
        InsertUserError::Other(e) => CreateUserError::Unexpected(e),
    })?;
    outbox::enqueue(&mut transaction, &user_created(&user), request_id).await?;
    transaction.commit().await.context("cannot commit new user")?;
    metrics::counter!("users_registered_total").increment(1);
    tracing::info!(user_id = %user.id, role = user.role.as_str(), "user created");
    Ok(user)
}

/// Deletes the user and, in the same transaction, writes its `user.deleted` event, so the
/// other services learn of every deletion. False when there is no such user.
pub async fn delete_user(pool: &PgPool, request_id: &RequestId, id: UserId) -> anyhow::Result<bool> {
    let mut transaction = pool.begin().await.context("cannot begin transaction")?;
    if !users::delete(&mut *transaction, id).await? {
        return Ok(false);
    }
    let event = UserDeleted { user_id: id.as_uuid(), deleted_at: chrono::Utc::now() };
    outbox::enqueue(&mut transaction, &event, request_id).await?;
    transaction.commit().await.context("cannot commit the deletion")?;
    metrics::counter!("users_deleted_total").increment(1);
    tracing::info!(user_id = %id.as_uuid(), "user deleted");
    Ok(true)
}

/// Why credentials could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum CheckCredentialsError {
    /// Too much password work queued already.
    #[error(transparent)]
    Busy(#[from] HashingError),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<CheckCredentialsError> for Problem {
    fn from(error: CheckCredentialsError) -> Self {
        match error {
            CheckCredentialsError::Busy(error) => error.into(),
            CheckCredentialsError::Unexpected(error) => Problem::internal(&error),
        }
    }
}

/// The user whose credentials these are, if they are right.
pub async fn check_credentials(
    pool: &PgPool,
    hasher: &Hasher,
    email: &str,
    password: String,
) -> Result<Option<(User, CredentialsVersion)>, CheckCredentialsError> {
    // Any spelling of the address finds its account (see [`Email`]); one that is no
    // address at all finds none, after the same hashing work.
    let normalised = Email::parse(email).map(|email| email.as_str().to_owned()).unwrap_or_default();
    let found = if normalised.is_empty() { None } else { users::find_credentials(pool, &normalised).await? };
    let stored = found.as_ref().map(|found| found.password_hash.clone());
    let account = if normalised.is_empty() { email.to_lowercase() } else { normalised };
    let valid = hasher.run(&account, move || verify_password(&password, stored.as_deref())).await?;
    Ok(found.filter(|_| valid).map(|found| (found.user, found.version)))
}

/// Creates the first admin from settings when no user has its e-mail address yet, and
/// gives an existing one the configured password (and the admin role) when it differs:
/// the settings, generated per machine for a native run, are the source of truth for
/// the bootstrap account.
pub async fn ensure_admin(pool: &PgPool, hasher: &Hasher, email: &Email, password: &Password) -> anyhow::Result<()> {
    if let Some(users::Credentials { user, password_hash: hash, .. }) =
        users::find_credentials(pool, email.as_str()).await?
    {
        let candidate = password.expose().to_owned();
        let matches = hasher.run(email.as_str(), move || verify_password(&candidate, Some(&hash))).await?;
        if !matches || user.role != Role::Admin {
            let password = password.clone();
            let hash = hasher.run(email.as_str(), move || password.hash()).await??;
            let changes =
                users::UserChanges { email: None, name: None, password_hash: Some(hash), role: Some(Role::Admin) };
            users::update(pool, user.id.into(), &changes).await.context("cannot reset the first admin")?;
            tracing::info!("the first admin's password and role were set from settings");
        }
        return Ok(());
    }
    let admin = NewUser {
        email: email.clone(),
        name: UserName::parse("Administrator").map_err(anyhow::Error::msg)?,
        password: password.clone(),
        role: Role::Admin,
    };
    match create_user(pool, hasher, &RequestId::parse_or_generate(Some("startup-admin")), &admin).await {
        Ok(_) | Err(CreateUserError::DuplicateEmail) => Ok(()), // another instance was quicker
        Err(error) => Err(anyhow::anyhow!(error).context("cannot create the first admin")),
    }
}
