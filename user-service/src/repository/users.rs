//! The `users` table.

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, Postgres, Transaction};
use uuid::Uuid;

use crate::domain::{NewUser, PasswordHash, Role, User, UserId};

/// Why a user could not be inserted.
#[derive(Debug, thiserror::Error)]
pub enum InsertUserError {
    /// Another user has this e-mail address (in any letter case).
    #[error("a user with this e-mail address already exists")]
    DuplicateEmail,
    /// Anything else.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    name: String,
    role: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    credentials_version: i32,
}

impl TryFrom<UserRow> for User {
    type Error = anyhow::Error;
    fn try_from(row: UserRow) -> anyhow::Result<Self> {
        Ok(Self {
            id: row.id,
            email: row.email,
            name: row.name,
            role: row.role.parse().map_err(|e: String| anyhow::anyhow!(e))?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const COLUMNS: &str = "id, email, name, role, created_at, updated_at, credentials_version";

/// An account's credentials version: counted up by every change of its password or e-mail
/// address, and named by each token, so that a change retires every earlier token.
pub type CredentialsVersion = u32;

impl UserRow {
    fn versioned(self) -> anyhow::Result<(User, CredentialsVersion)> {
        let version = CredentialsVersion::try_from(self.credentials_version).context("negative credentials version")?;
        Ok((User::try_from(self)?, version))
    }
}

/// What sign-in checks a password against: the user, their password hash and the
/// credentials version a token for them names.
pub struct Credentials {
    /// The account.
    pub user: User,
    /// The stored hash.
    pub password_hash: String,
    /// The version a token issued now carries.
    pub version: CredentialsVersion,
}

/// Inserts a user within `transaction`.
#[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", otel.name = "INSERT users", db.system.name = "postgresql", db.operation.name = "INSERT", db.collection.name = "users"))]
pub async fn insert(
    transaction: &mut Transaction<'_, Postgres>,
    user: &NewUser,
    password_hash: &PasswordHash,
) -> Result<User, InsertUserError> {
    let row = sqlx::query_as::<_, UserRow>(&format!(
        "INSERT INTO users (id, email, name, password_hash, role) VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    ))
    .bind(UserId::generate().as_uuid())
    .bind(user.email.as_str())
    .bind(user.name.as_str())
    .bind(password_hash.as_str())
    .bind(user.role.as_str())
    .fetch_one(&mut **transaction)
    .await
    .map_err(|error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => InsertUserError::DuplicateEmail,
        _ => InsertUserError::Other(anyhow::Error::new(error).context("INSERT INTO users failed")),
    })?;
    Ok(User::try_from(row)?)
}

/// The user with `id` and their credentials version, if any: one query serves both.
#[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", otel.name = "SELECT users", db.system.name = "postgresql", db.operation.name = "SELECT", db.collection.name = "users"))]
pub async fn find(executor: impl PgExecutor<'_>, id: UserId) -> anyhow::Result<Option<(User, CredentialsVersion)>> {
    sqlx::query_as::<_, UserRow>(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
        .bind(id.as_uuid())
        .fetch_optional(executor)
        .await
        .context("SELECT user by id failed")?
        .map(UserRow::versioned)
        .transpose()
}

/// A page of users, newest first.
#[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", otel.name = "SELECT users", db.system.name = "postgresql", db.operation.name = "SELECT", db.collection.name = "users"))]
pub async fn list(executor: impl PgExecutor<'_>, limit: i64, offset: i64) -> anyhow::Result<Vec<User>> {
    sqlx::query_as::<_, UserRow>(&format!(
        "SELECT {COLUMNS} FROM users ORDER BY created_at DESC, id LIMIT $1 OFFSET $2"
    ))
    .bind(limit)
    .bind(offset)
    .fetch_all(executor)
    .await
    .context("SELECT users failed")?
    .into_iter()
    .map(User::try_from)
    .collect()
}

/// The user with `email` (in any letter case) and their password hash, for verification.
#[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", otel.name = "SELECT users", db.system.name = "postgresql", db.operation.name = "SELECT", db.collection.name = "users"))]
pub async fn find_credentials(executor: impl PgExecutor<'_>, email: &str) -> anyhow::Result<Option<Credentials>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: UserRow,
        password_hash: String,
    }
    let row =
        sqlx::query_as::<_, Row>(&format!("SELECT {COLUMNS}, password_hash FROM users WHERE lower(email) = lower($1)"))
            .bind(email)
            .fetch_optional(executor)
            .await
            .context("SELECT user by e-mail failed")?;
    row.map(|row| {
        let (user, version) = row.user.versioned()?;
        Ok(Credentials { user, password_hash: row.password_hash, version })
    })
    .transpose()
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct UserChanges {
    /// New e-mail address.
    pub email: Option<String>,
    /// New name.
    pub name: Option<String>,
    /// New password hash.
    pub password_hash: Option<PasswordHash>,
    /// New role.
    pub role: Option<Role>,
}

/// Applies `changes`; `None` when there is no such user.
#[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", otel.name = "UPDATE users", db.system.name = "postgresql", db.operation.name = "UPDATE", db.collection.name = "users"))]
pub async fn update(
    executor: impl PgExecutor<'_>,
    id: UserId,
    changes: &UserChanges,
) -> Result<Option<User>, InsertUserError> {
    let row = sqlx::query_as::<_, UserRow>(&format!(
        "UPDATE users SET email = COALESCE($2, email), name = COALESCE($3, name),
                password_hash = COALESCE($4, password_hash), role = COALESCE($5, role), updated_at = now(),
                credentials_version = credentials_version
                    + CASE WHEN $2::text IS NULL AND $4::text IS NULL THEN 0 ELSE 1 END
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id.as_uuid())
    .bind(changes.email.as_deref())
    .bind(changes.name.as_deref())
    .bind(changes.password_hash.as_ref().map(PasswordHash::as_str))
    .bind(changes.role.map(Role::as_str))
    .fetch_optional(executor)
    .await
    .map_err(|error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => InsertUserError::DuplicateEmail,
        _ => InsertUserError::Other(anyhow::Error::new(error).context("UPDATE users failed")),
    })?;
    Ok(row.map(User::try_from).transpose()?)
}

/// The account's password hash; `None` when there is no such user.
#[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", otel.name = "SELECT users", db.system.name = "postgresql", db.operation.name = "SELECT", db.collection.name = "users"))]
pub async fn password_hash(executor: impl PgExecutor<'_>, id: UserId) -> anyhow::Result<Option<String>> {
    sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_optional(executor)
        .await
        .context("SELECT password hash failed")
}

/// Deletes the user; false when there was none.
#[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", otel.name = "DELETE users", db.system.name = "postgresql", db.operation.name = "DELETE", db.collection.name = "users"))]
pub async fn delete(executor: impl PgExecutor<'_>, id: UserId) -> anyhow::Result<bool> {
    let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id.as_uuid())
        .execute(executor)
        .await
        .context("DELETE FROM users failed")?
        .rows_affected();
    Ok(deleted == 1)
}
