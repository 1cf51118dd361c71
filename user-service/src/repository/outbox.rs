//! The events this service wrote to its outbox, as a consumer checking an event's origin
//! asks for them. Rows are kept an hour after publishing (`eventing::outbox`), longer than
//! the topics keep the events themselves.

use anyhow::Context;
use contracts::api::events::PublishedEvent;
use sqlx::PgExecutor;
use uuid::Uuid;

/// The event with `event_id`, if this service wrote it and still keeps its row.
#[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", otel.name = "SELECT outbox", db.system.name = "postgresql", db.operation.name = "SELECT", db.collection.name = "outbox"))]
pub async fn find(executor: impl PgExecutor<'_>, event_id: Uuid) -> anyhow::Result<Option<PublishedEvent>> {
    let row: Option<(String, String, sqlx::types::Json<serde_json::Value>)> =
        sqlx::query_as("SELECT topic, event_type, payload FROM outbox WHERE event_id = $1")
            .bind(event_id)
            .fetch_optional(executor)
            .await
            .context("SELECT FROM outbox failed")?;
    Ok(row.map(|(topic, event_type, payload)| PublishedEvent { topic, event_type, payload: payload.0 }))
}
