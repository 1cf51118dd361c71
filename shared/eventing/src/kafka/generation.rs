//! How a service learns that the broker lost its store, and what it does about it.
//!
//! The store marker is a one-partition topic whose end every [`TopicKeeper`] remembers:
//! its end moving back means the store was lost, however much traffic has refilled the
//! other topics since. The number in its first record is the store's *generation*: it
//! changes only when the store is lost. Consumer groups commit the generation they read
//! under, and each outbox records the one it last sent under, so a process that starts
//! after a loss it never saw (or dies between noticing one and acting on it) still reads
//! the new logs from their beginning and sends its recent events again. [`LogResets`]
//! carries both kinds of news from the keeper to the service's consumer.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use super::admin::{REQUEST_TIMEOUT, TopicKeeper};
use super::base_config;

/// A one-partition topic every keeper writes a record to (at start, and after a loss) and
/// whose end it remembers. Nothing else writes there and its records
/// never expire, so its end moving back means the broker lost its store, however much
/// traffic has refilled the other topics since.
pub(super) const STORE_MARKER_TOPIC: &str = "platform.store-marker";

/// Topics whose logs restarted from offset 0 (recreated, or the broker lost its store),
/// each with how many times this keeper has seen that happen. A consumer compares with
/// the counts it last acted on and rewinds the partitions whose count went up.
///
/// It also carries the store's *generation*: the random number in the store marker's
/// first record, which changes only when the broker lost its store. A consumer group commits the
/// generation it has read under (see [`super::ConsumerBuilder::rewind_on`]), so a process
/// that starts after a loss it did not see, with offsets committed into the new logs from
/// the old ones, still knows to read from the beginning.
#[derive(Debug, Clone)]
pub struct LogResets {
    counts: tokio::sync::watch::Receiver<BTreeMap<String, u64>>,
    generation: tokio::sync::watch::Receiver<Option<i64>>,
    marker: String,
}

/// What a keeper announced.
#[derive(Debug)]
pub enum LogReset {
    /// These topics' logs restarted.
    Topics(BTreeSet<String>),
    /// The store's generation is now this (see [`LogResets`]).
    Generation(i64),
}

impl LogResets {
    /// Waits for the next announcement; topics are those reset since `seen`, which is
    /// updated. `None` once the keeper is gone (the service is stopping).
    pub async fn next(&mut self, seen: &mut BTreeMap<String, u64>) -> Option<LogReset> {
        tokio::select! {
            changed = self.counts.changed() => {
                changed.ok()?;
                let now = self.counts.borrow_and_update().clone();
                let reset =
                    now.iter().filter(|(topic, count)| seen.get(*topic) < Some(*count)).map(|(t, _)| t.clone()).collect();
                *seen = now;
                Some(LogReset::Topics(reset))
            }
            changed = self.generation.changed() => {
                changed.ok()?;
                match *self.generation.borrow_and_update() {
                    Some(generation) => Some(LogReset::Generation(generation)),
                    None => Some(LogReset::Topics(BTreeSet::new())),
                }
            }
        }
    }

    /// The counts as they stand, to start comparing from. A generation already known is
    /// announced by the first [`Self::next`].
    pub fn current(&mut self) -> BTreeMap<String, u64> {
        self.generation.mark_changed();
        self.counts.borrow().clone()
    }

    /// The store-marker topic, whose partition 0 carries the group's committed generation.
    pub fn marker_topic(&self) -> &str {
        &self.marker
    }
}

impl TopicKeeper {
    /// Announcements of topics whose logs restarted, for the service's consumer
    /// ([`super::ConsumerBuilder::rewind_on`]).
    pub fn log_resets(&self) -> LogResets {
        LogResets {
            counts: self.resets.subscribe(),
            generation: self.generation.subscribe(),
            marker: self.settings.topic(STORE_MARKER_TOPIC),
        }
    }

    /// Whether the store-marker topic ends before the end this keeper last saw: the broker
    /// lost its store. Writes a fresh marker when there is none to compare with yet, or
    /// after a loss, and remembers the new end. `None` when the broker does not answer.
    pub(super) async fn store_lost(&self, remembered: &mut Option<i64>) -> Option<bool> {
        let topic = self.settings.topic(STORE_MARKER_TOPIC);
        let admin = Arc::clone(&self.admin);
        let probe = topic.clone();
        let high = tokio::task::spawn_blocking(move || admin.inner().fetch_watermarks(&probe, 0, REQUEST_TIMEOUT))
            .await
            .ok()?
            .ok()?
            .1;
        let lost = remembered.is_some_and(|seen| high < seen);
        if remembered.is_none() || lost {
            let producer: rdkafka::producer::FutureProducer = base_config(&self.settings).create().ok()?;
            // A random number: if this becomes the first record, it names the store's generation.
            let generation = (uuid::Uuid::new_v4().as_u64_pair().0 >> 1).to_string();
            let record = rdkafka::producer::FutureRecord::<(), _>::to(&topic).partition(0).payload(&generation);
            let delivery = producer.send(record, REQUEST_TIMEOUT).await.ok()?;
            *remembered = Some(delivery.offset + 1);
        } else {
            *remembered = Some(high);
        }
        Some(lost)
    }

    /// Reads the store's generation (the number in the store marker's first record) and
    /// announces it when it changed.
    pub(super) async fn read_generation(&self) {
        let Ok(reader) = self.marker_reader.create::<rdkafka::consumer::BaseConsumer>() else { return };
        let topic = self.settings.topic(STORE_MARKER_TOPIC);
        let read = tokio::task::spawn_blocking(move || first_record(&reader, &topic)).await.ok().flatten();
        tracing::debug!(generation = read, "store generation read");
        if let Some(generation) = read {
            self.generation.send_if_modified(|current| {
                let changed = *current != Some(generation);
                *current = Some(generation);
                changed
            });
        }
    }

    /// Replays the outbox once per store generation, and records that it did: a process that
    /// dies between noticing a loss and replaying, or that starts after a loss it never saw,
    /// would otherwise never send again what the lost logs held. The generation last sent
    /// under is the committed offset of this service's `<service>.outbox-generation` group on
    /// the store marker, so a wipe deletes it with the logs. Returns whether that is settled.
    /// `recorded_before`: whether this process already recorded a generation (it sent
    /// under an earlier store, so all its recent rows go again).
    pub(super) async fn outbox_sent_under(&self, generation: i64, recorded_before: bool) -> bool {
        use rdkafka::consumer::Consumer;
        let mut partition = rdkafka::TopicPartitionList::new();
        partition.add_partition(&self.settings.topic(STORE_MARKER_TOPIC), 0);
        let Ok(reader) = self.marker_reader.create::<rdkafka::consumer::BaseConsumer>() else { return false };
        let reader = Arc::new(reader);
        let (probe, asking) = (partition.clone(), Arc::clone(&reader));
        let before = tokio::task::spawn_blocking(move || asking.committed_offsets(probe, REQUEST_TIMEOUT))
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|committed| {
                committed.elements().first().map(rdkafka::topic_partition_list::TopicPartitionListElem::offset)
            });
        let Some(before) = before else { return false };
        if before == rdkafka::Offset::Offset(generation) {
            return true;
        }
        // With none recorded (a new service, or a wipe deleted it), what this process sent
        // went to the store as it is now, unless it had recorded an earlier generation; what
        // an earlier process sent may be gone.
        let published_before = (before == rdkafka::Offset::Invalid && !recorded_before).then_some(self.started);
        tracing::warn!(
            ?before,
            generation,
            "the outbox last sent under another store generation; sending its recent events again"
        );
        let topics: Vec<String> =
            self.needed.iter().filter(|t| t.outbox_topic.is_some()).map(|t| t.name.clone()).collect();
        self.replay_outbox(&topics, published_before).await;
        if partition.set_all_offsets(rdkafka::Offset::Offset(generation)).is_err() {
            return false;
        }
        tokio::task::spawn_blocking(move || reader.commit(&partition, rdkafka::consumer::CommitMode::Sync))
            .await
            .is_ok_and(|committed| committed.is_ok())
    }

    /// Marks the outbox rows of `topics` published within the retention unpublished, so
    /// the relay sends them again, in their original order.
    /// With `published_before`, only rows published before then.
    pub(super) async fn replay_outbox(
        &self,
        topics: &[String],
        published_before: Option<chrono::DateTime<chrono::Utc>>,
    ) {
        let Some(pool) = &self.outbox else { return };
        let bases: Vec<String> =
            self.needed.iter().filter(|t| topics.contains(&t.name)).filter_map(|t| t.outbox_topic.clone()).collect();
        if bases.is_empty() {
            return;
        }
        let replayed = sqlx::query(
            "UPDATE outbox SET published_at = NULL
             WHERE topic = ANY($1) AND published_at > now() - make_interval(secs => $2)
               AND ($3::timestamptz IS NULL OR published_at < $3)",
        )
        .bind(&bases)
        .bind(self.settings.retention.as_secs_f64())
        .bind(published_before)
        .execute(pool)
        .await;
        match replayed {
            Ok(result) => {
                tracing::warn!(topics = ?bases, events = result.rows_affected(), "a topic lost its log; replaying the outbox's recent events");
                metrics::counter!("outbox_replayed_events_total").increment(result.rows_affected());
            }
            Err(error) => tracing::warn!(%error, topics = ?bases, "cannot replay the outbox"),
        }
    }
}

/// The number in the first record of `topic`'s partition 0, if it has one (0 for a record
/// from before markers carried numbers).
fn first_record(reader: &rdkafka::consumer::BaseConsumer, topic: &str) -> Option<i64> {
    use rdkafka::Message;
    use rdkafka::consumer::Consumer;
    let mut partitions = rdkafka::TopicPartitionList::new();
    partitions.add_partition_offset(topic, 0, rdkafka::Offset::Beginning).ok()?;
    if let Err(error) = reader.assign(&partitions) {
        tracing::warn!(%error, "cannot read the store marker");
        return None;
    }
    let deadline = std::time::Instant::now() + REQUEST_TIMEOUT;
    let found = loop {
        if std::time::Instant::now() >= deadline {
            break None;
        }
        match reader.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let number = message.payload().and_then(|payload| std::str::from_utf8(payload).ok()?.parse().ok());
                break Some(number.unwrap_or(0));
            }
            Some(Err(error)) => tracing::debug!(%error, "cannot read the store marker"),
            None => {}
        }
    };
    let _ = reader.unassign();
    found
}
