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
}

impl TryFrom<UserRow> for User {
    type Error = anyhow::Error;
    fn try_from(row: UserRow) -> anyhow::Result<Self> {
        Ok(Self {
            id: row.id.into(),
            email: row.email,
            name: row.name,
            role: Role::from_db(&row.role)?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const COLUMNS: &str = "id, email, name, role, created_at, updated_at";

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

/// The user with `id`, if any.
#[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", otel.name = "SELECT users", db.system.name = "postgresql", db.operation.name = "SELECT", db.collection.name = "users"))]
pub async fn find(executor: impl PgExecutor<'_>, id: UserId) -> anyhow::Result<Option<User>> {
    sqlx::query_as::<_, UserRow>(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
        .bind(id.as_uuid())
        .fetch_optional(executor)
        .await
        .context("SELECT user by id failed")?
        .map(User::try_from)
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
