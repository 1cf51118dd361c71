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

use chrono::{DateTime, Utc};

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

/// Outbox topics whose recent events must be sent again, kept until a replay succeeds:
/// a replay that failed (database unreachable, relay batch slow to finish) and was
/// forgotten would lose what the old logs held.
#[derive(Debug, Default)]
pub(super) struct PendingReplay {
    topics: BTreeSet<String>,
    /// Replay only rows published before this (what a process sent before its first look
    /// at the topics); `None` replays everything within retention.
    before: Option<DateTime<Utc>>,
}

impl PendingReplay {
    /// Adds `topics` (names as the outbox knows them); `before` as in [`Self::before`].
    pub(super) fn add(&mut self, topics: impl IntoIterator<Item = String>, before: Option<DateTime<Utc>>) {
        let topics: Vec<String> = topics.into_iter().collect();
        if topics.is_empty() {
            return;
        }
        // The wider of two bounds: `None` (everything) wins.
        self.before = if self.topics.is_empty() { before } else { self.before.zip(before).map(|(a, b)| a.max(b)) };
        self.topics.extend(topics);
    }

    /// Replays what is pending, if anything; forgets it once done.
    pub(super) async fn run(&mut self, pool: &sqlx::PgPool, retention: Duration) {
        if self.topics.is_empty() {
            return;
        }
        let topics: Vec<String> = self.topics.iter().cloned().collect();
        match crate::republish::replay(pool, &topics, retention, self.before).await {
            Ok(events) => {
                tracing::warn!(?topics, events, "a topic lost its log; replaying the outbox's recent events");
                metrics::counter!("outbox_replayed_events_total").increment(events);
                *self = Self::default();
            }
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), ?topics, "cannot replay the outbox yet; trying again");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_replays_merge_to_the_wider_bound() {
        let start = Utc::now();
        let mut pending = PendingReplay::default();
        pending.add(["users".to_owned()], Some(start));
        assert_eq!(pending.before, Some(start));
        pending.add(["orders".to_owned()], None);
        assert_eq!(pending.before, None, "a later loss replays everything within retention");
        pending.add(["users".to_owned()], Some(start));
        assert_eq!(pending.before, None, "a narrower bound does not narrow it");
        assert_eq!(pending.topics.len(), 2);
    }
}
