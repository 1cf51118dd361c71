//! How a keeper notices that the broker lost its store, and what the service does about
//! lost logs: the store marker's end moving back means the store was lost; the outbox's
//! recent events are then sent again, since what the lost logs held and no consumer had
//! read yet would otherwise be gone. Consumers deduplicate by event id.

use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;

use super::client::{REQUEST_TIMEOUT, base_config};
use super::resets::STORE_MARKER_TOPIC;
use crate::configuration::KafkaSettings;

/// Whether the store-marker topic ends before `remembered`, the end last seen: the broker
/// lost its store. Writes a marker record when there is nothing to compare with yet, or
/// after a loss, and remembers the new end. `None` when the broker does not answer.
/// Blocking: run it off the async threads.
pub(super) fn store_lost(
    admin: &AdminClient<DefaultClientContext>,
    settings: &KafkaSettings,
    remembered: &mut Option<i64>,
) -> Option<bool> {
    let topic = settings.topic(STORE_MARKER_TOPIC);
    let (_, high) = admin.inner().fetch_watermarks(&topic, 0, REQUEST_TIMEOUT).ok()?;
    let lost = remembered.is_some_and(|seen| high < seen);
    if remembered.is_none() || lost {
        let producer: rdkafka::producer::BaseProducer =
            base_config(settings).set("enable.idempotence", "true").create().ok()?;
        let record =
            rdkafka::producer::BaseRecord::<(), _>::to(&topic).partition(0).payload(settings.client_id.as_str());
        producer.send(record).ok()?;
        rdkafka::producer::Producer::flush(&producer, REQUEST_TIMEOUT).ok()?;
        let (_, high) = admin.inner().fetch_watermarks(&topic, 0, REQUEST_TIMEOUT).ok()?;
        *remembered = Some(high);
    } else {
        *remembered = Some(high);
    }
    Some(lost)
}

/// Marks the outbox rows of `topics` (names as the outbox knows them) published within
/// `retention` unpublished, so the relay sends them again, in their original order.
/// With `published_before`, only rows published before then.
pub(super) async fn replay_outbox(
    pool: &sqlx::PgPool,
    topics: &[String],
    retention: Duration,
    published_before: Option<chrono::DateTime<chrono::Utc>>,
) {
    if topics.is_empty() {
        return;
    }
    let replayed = sqlx::query(
        "UPDATE outbox SET published_at = NULL
         WHERE topic = ANY($1) AND published_at > now() - make_interval(secs => $2)
           AND ($3::timestamptz IS NULL OR published_at < $3)",
    )
    .bind(topics)
    .bind(retention.as_secs_f64())
    .bind(published_before)
    .execute(pool)
    .await;
    match replayed {
        Ok(result) => {
            tracing::warn!(
                ?topics,
                events = result.rows_affected(),
                "a topic lost its log; replaying the outbox's recent events"
            );
            metrics::counter!("outbox_replayed_events_total").increment(result.rows_affected());
        }
        Err(error) => tracing::warn!(%error, ?topics, "cannot replay the outbox"),
    }
}
