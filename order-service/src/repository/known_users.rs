//! The `known_users` table: order-service's own view of the users, from their events.

use anyhow::Context;
use sqlx::PgExecutor;
use uuid::Uuid;

/// Records a user announced by `user.created`. A user already deleted stays deleted,
/// whichever event arrived first.
#[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", otel.name = "INSERT known_users", db.system.name = "postgresql", db.operation.name = "INSERT", db.collection.name = "known_users"))]
pub async fn record(executor: impl PgExecutor<'_>, user_id: Uuid) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO known_users (user_id) VALUES ($1) ON CONFLICT (user_id) DO NOTHING")
        .bind(user_id)
        .execute(executor)
        .await
        .context("INSERT INTO known_users failed")?;
    Ok(())
}

/// Marks a user deleted (known or not yet: a late `user.created` cannot revive them)
/// and cancels their pending orders. Returns the orders cancelled: id and total in cents.
#[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", otel.name = "UPDATE known_users", db.system.name = "postgresql", db.operation.name = "UPDATE", db.collection.name = "known_users"))]
pub async fn forget(executor: impl PgExecutor<'_>, user_id: Uuid) -> anyhow::Result<Vec<(Uuid, i64)>> {
    sqlx::query_as(
        "WITH gone AS (
             INSERT INTO known_users (user_id, deleted_at) VALUES ($1, now())
             ON CONFLICT (user_id) DO UPDATE SET deleted_at = COALESCE(known_users.deleted_at, now())
         )
         UPDATE orders SET status = 'cancelled', updated_at = now()
         WHERE user_id = $1 AND status = 'pending'
         RETURNING id, total_cents",
    )
    .bind(user_id)
    .fetch_all(executor)
    .await
    .context("forgetting a deleted user failed")
}
