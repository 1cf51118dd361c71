//! Idempotent consumers: remember handled event ids in the handler's own transaction.
//!
//! Each service that consumes keeps a `processed_events(consumer_group, event_id)`
//! table. A handler calls [`first_delivery`] inside the transaction that applies
//! its effect, or writes the mark in the very statement that applies it
//! ([`MARK_INTO`]): a redelivered event finds its id already there and the handler
//! skips, and a handler that fails rolls the mark back with the effect.

use anyhow::Context;
use sqlx::PgConnection;

use crate::kafka::EventMeta;

/// The head of a statement recording processed events, `(group, event id)` rows following; an
/// effect and its mark in one statement report a conflict with [`redelivery_skipped`].
pub const MARK_INTO: &str = "INSERT INTO processed_events (consumer_group, event_id)";

/// Records `meta.event_id` for its consumer group; true on its first delivery, false on a redelivery.
pub async fn first_delivery(connection: &mut PgConnection, meta: &EventMeta) -> anyhow::Result<bool> {
    let inserted = sqlx::query(&format!("{MARK_INTO} VALUES ($1, $2) ON CONFLICT DO NOTHING"))
        .bind(&meta.group)
        .bind(meta.event_id)
        .execute(connection)
        .await
        .context("cannot record the processed event")?
        .rows_affected();
    if inserted == 0 {
        redelivery_skipped(meta);
    }
    Ok(inserted == 1)
}

/// Logs and counts a redelivered event whose effect was applied before.
pub fn redelivery_skipped(meta: &EventMeta) {
    tracing::info!(event_id = %meta.event_id, "event already handled; skipping the redelivery");
    metrics::counter!("kafka_redeliveries_skipped_total", "topic" => meta.topic.clone()).increment(1);
}
