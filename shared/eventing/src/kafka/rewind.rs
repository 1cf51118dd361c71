//! Which partitions the consumer must read again from the beginning because their topic's
//! log restarted (announced by the keeper through [`LogResets`]), and the seek that does it.
//!
//! A partition held at the announcement is rewound at once. One that is not (the group is
//! rebalancing, as it does when the broker comes back) is rewound as soon as it has a
//! position (the consumer looks every second) or its first message arrives, whichever
//! comes first: its position may come from an offset committed from the old log, and
//! would skip every new message below it. A message at offset 0 is the new log's first,
//! so that partition needs nothing. Replaying is safe because handlers are idempotent.
//! A partition librdkafka cannot seek yet is tried again a second later; the message that
//! found it is handled meanwhile, never dropped.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::Offset;
use rdkafka::consumer::Consumer;

use super::client::REQUEST_TIMEOUT;
use super::group::GroupConsumer;
use super::resets::LogResets;

/// How long an announcement waits for a partition's first message. Bounded so that a
/// partition another instance handled, and that comes here much later, is not replayed.
const PENDING_FOR: Duration = Duration::from_secs(120);

/// A partition, and the position it was found at.
pub(super) type Found = ((String, i32), Offset);

/// The announcements a consumer has yet to act on.
pub(super) struct Rewinds {
    resets: Option<LogResets>,
    seen: BTreeMap<String, u64>,
    /// Topic → when its log restarted, and the partitions dealt with since.
    pending: HashMap<String, (Instant, HashSet<i32>)>,
    tick: tokio::time::Interval,
}

impl Rewinds {
    pub(super) fn new(resets: Option<LogResets>) -> Self {
        let seen = resets.as_ref().map(LogResets::current).unwrap_or_default();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self { resets, seen, pending: HashMap::new(), tick }
    }

    /// The topics to look at now: those just announced, or, every second, those with
    /// partitions still to rewind. Never resolves without a keeper. Cancel-safe, for the
    /// consumer loop's `select!`.
    pub(super) async fn next(&mut self) -> BTreeSet<String> {
        let announced = async {
            match &mut self.resets {
                Some(resets) => resets.next(&mut self.seen).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            announced = announced => match announced {
                Some(topics) => {
                    for topic in &topics {
                        self.pending.insert(topic.clone(), (Instant::now(), HashSet::new()));
                    }
                    topics
                }
                // The keeper is gone: the service is stopping.
                None => {
                    self.resets = None;
                    BTreeSet::new()
                }
            },
            _ = self.tick.tick() => {
                self.pending.retain(|_, (since, _)| since.elapsed() < PENDING_FOR);
                self.pending.keys().cloned().collect()
            }
        }
    }

    /// Records that `partition` of `topic` was rewound (or needs nothing).
    pub(super) fn done(&mut self, topic: &str, partition: i32) {
        if let Some((_, done)) = self.pending.get_mut(topic) {
            done.insert(partition);
        }
    }

    fn is_due(&self, topic: &str, partition: i32) -> bool {
        self.pending.get(topic).is_some_and(|(_, done)| !done.contains(&partition))
    }

    /// Whether a message just read at `offset` comes from an old position in a restarted
    /// log: then its partition must be read from the beginning (and [`Self::done`] once it
    /// is) and this message dropped. A message at offset 0 starts the new log.
    pub(super) fn must_rewind(&mut self, topic: &str, partition: i32, offset: i64) -> bool {
        self.pending.retain(|_, (since, _)| since.elapsed() < PENDING_FOR);
        if !self.is_due(topic, partition) {
            return false;
        }
        if offset == 0 {
            self.done(topic, partition);
        }
        offset > 0
    }

    /// The held partitions of `topics` that are due. The position librdkafka reports is
    /// that of the last message handed out, unknown until one was: such a partition may sit
    /// at an old committed offset at or past the new log's end, where no message would ever
    /// come to tell, so it is due too. One at offset 0 needs nothing.
    pub(super) fn held_due(&mut self, consumer: &GroupConsumer, topics: &BTreeSet<String>) -> Vec<Found> {
        let Ok(positions) = consumer.position() else { return Vec::new() };
        let mut due = Vec::new();
        for element in positions.elements() {
            let (topic, partition) = (element.topic(), element.partition());
            if !topics.contains(topic) || !self.is_due(topic, partition) {
                continue;
            }
            if element.offset() == Offset::Offset(0) {
                self.done(topic, partition);
            } else {
                due.push(((topic.to_owned(), partition), element.offset()));
            }
        }
        due
    }
}

/// Seeks each partition to the beginning, off the async threads (librdkafka waits for the
/// seek); returns those it moved. One librdkafka cannot move yet is left for later.
pub(super) async fn seek_to_beginning(
    consumer: Arc<GroupConsumer>,
    group: String,
    found: Vec<Found>,
) -> Vec<(String, i32)> {
    tokio::task::spawn_blocking(move || {
        let mut moved = Vec::new();
        for ((topic, partition), position) in found {
            match consumer.seek(&topic, partition, Offset::Beginning, REQUEST_TIMEOUT) {
                Ok(()) => {
                    tracing::warn!(
                        group,
                        topic,
                        partition,
                        ?position,
                        "the topic's log restarted; reading it again from the beginning"
                    );
                    metrics::counter!("kafka_consumer_rewinds_total", "topic" => topic.clone()).increment(1);
                    moved.push((topic, partition));
                }
                Err(error) => tracing::debug!(%error, topic, partition, "cannot rewind the partition yet"),
            }
        }
        moved
    })
    .await
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announced(topic: &str) -> Rewinds {
        let mut rewinds = Rewinds::new(None);
        rewinds.pending.insert(topic.to_owned(), (Instant::now(), HashSet::new()));
        rewinds
    }

    #[tokio::test]
    async fn the_first_message_past_the_start_of_a_restarted_log_rewinds_its_partition_once() {
        let mut rewinds = announced("orders");
        assert!(rewinds.must_rewind("orders", 1, 13));
        assert!(rewinds.must_rewind("orders", 1, 14), "until the seek is done");
        rewinds.done("orders", 1);
        assert!(!rewinds.must_rewind("orders", 1, 0), "after the seek the log is read from its start");
        assert!(!rewinds.must_rewind("orders", 1, 14));
    }

    #[tokio::test]
    async fn a_partition_starting_at_offset_zero_or_already_rewound_needs_nothing() {
        let mut rewinds = announced("orders");
        assert!(!rewinds.must_rewind("orders", 0, 0));
        assert!(!rewinds.must_rewind("orders", 0, 5));
        rewinds.done("orders", 2);
        assert!(!rewinds.must_rewind("orders", 2, 40));
    }

    #[tokio::test]
    async fn other_topics_and_old_announcements_are_left_alone() {
        let mut rewinds = announced("orders");
        assert!(!rewinds.must_rewind("users", 0, 7));
        rewinds.pending.insert("users".to_owned(), (Instant::now() - PENDING_FOR, HashSet::new()));
        assert!(!rewinds.must_rewind("users", 0, 7));
    }
}
