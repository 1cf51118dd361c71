//! How a keeper notices that topics lost their logs (deleted and recreated, by anyone, or
//! the broker back on an empty store), and what the service does about it.
//!
//! The keeper commits offset 0 for every partition of its topics in a consumer group of
//! its own, which has no members: a *certificate*. A broker drops a topic's committed
//! offsets with the topic (nisshi and Apache Kafka both do), and an empty store has none,
//! so a certificate gone missing means the topic's log restarted since it was written,
//! whoever recreated the topic and however full the new log is already. The outbox then
//! sends its recent events for those topics again, since what the lost logs held and no
//! consumer had read yet would otherwise be gone; consumers deduplicate by event id.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::client::{REQUEST_TIMEOUT, base_config, partitions};
use crate::configuration::KafkaSettings;

/// The keeper's certificates: what it committed, and the client that commits and reads them.
pub(super) struct Certificates {
    reader: BaseConsumer,
    /// Topics certified by this keeper, whose certificates must still be there.
    certified: BTreeSet<String>,
}

impl Certificates {
    pub(super) fn new(settings: &KafkaSettings) -> anyhow::Result<Self> {
        let reader = base_config(settings)
            .set("group.id", settings.group(&format!("{}.topic-keeper", settings.client_id)))
            .set("enable.auto.commit", "false")
            .create()?;
        Ok(Self { reader, certified: BTreeSet::new() })
    }

    /// The certified topics among `topics` whose certificates are gone: their logs
    /// restarted. Certifies every partition that has none (again, for those). `None` when
    /// the broker does not answer. Blocking: run it off the async threads.
    pub(super) fn restarted(&mut self, topics: &[&str]) -> Option<BTreeSet<String>> {
        let held = partitions(self.reader.client(), topics).ok()?;
        let committed = self.reader.committed_offsets(held, REQUEST_TIMEOUT).ok()?;
        let mut uncertified = TopicPartitionList::new();
        let mut restarted = BTreeSet::new();
        for element in committed.elements() {
            if element.offset() == Offset::Offset(0) {
                continue;
            }
            if self.certified.contains(element.topic()) {
                restarted.insert(element.topic().to_owned());
            }
            uncertified.add_partition_offset(element.topic(), element.partition(), Offset::Offset(0)).ok()?;
        }
        if uncertified.count() > 0 {
            if let Err(error) = self.reader.commit(&uncertified, CommitMode::Sync) {
                tracing::info!(%error, "cannot certify the topics yet");
                return None;
            }
            self.certified.extend(uncertified.elements().iter().map(|element| element.topic().to_owned()));
        }
        Some(restarted)
    }
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
