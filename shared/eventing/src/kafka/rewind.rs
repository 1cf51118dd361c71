//! Which partitions the consumer must read again from the beginning because their topic's
//! log restarted (announced by [`super::TopicKeeper`] through [`LogResets`]).
//!
//! A partition held at the announcement is rewound at once. One that is not (the group is
//! rebalancing, as it does when the broker comes back) is rewound as soon as it has a
//! position (the consumer looks every second) or its first message arrives, whichever
//! comes first: its position then comes from a committed offset that may have been written into
//! the new log from the old one (a revocation commits what was stored before anyone knew),
//! and would skip every new message below it. A message at offset 0 is the new log's first,
//! so that partition needs nothing. Replaying is safe because handlers are idempotent.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use super::generation::{LogReset, LogResets};

/// How long an announcement waits for a partition's first message. Bounded so that a
/// partition another instance handled, and that comes here much later, is not replayed.
const PENDING_FOR: Duration = Duration::from_secs(120);

/// The announcements a consumer has yet to act on.
#[derive(Debug, Default)]
pub(super) struct Rewinds {
    resets: Option<LogResets>,
    seen: BTreeMap<String, u64>,
    /// Topic → when its log restarted, and the partitions dealt with since.
    pending: HashMap<String, (Instant, HashSet<i32>)>,
}

impl Rewinds {
    pub(super) fn new(mut resets: Option<LogResets>) -> Self {
        let seen = resets.as_mut().map(LogResets::current).unwrap_or_default();
        Self { resets, seen, pending: HashMap::new() }
    }

    /// Waits for the next announcement; never resolves without a keeper, or once the
    /// keeper is gone. Announced topics are pending from here on.
    pub(super) async fn announced(&mut self) -> LogReset {
        let Some(resets) = &mut self.resets else { return std::future::pending().await };
        let Some(reset) = resets.next(&mut self.seen).await else {
            self.resets = None;
            return std::future::pending().await;
        };
        if let LogReset::Topics(topics) = &reset {
            self.announce(topics);
        }
        reset
    }

    /// Marks `topics` as restarted: each partition is to be read from its beginning.
    pub(super) fn announce(&mut self, topics: &BTreeSet<String>) {
        for topic in topics {
            self.pending.insert(topic.clone(), (Instant::now(), HashSet::new()));
        }
    }

    /// The store-marker topic, where the group's generation is committed.
    pub(super) fn marker_topic(&self) -> Option<String> {
        self.resets.as_ref().map(|resets| resets.marker_topic().to_owned())
    }

    /// Records that `partition` of `topic` was rewound (or needs nothing) for the last
    /// announcement.
    pub(super) fn done(&mut self, topic: &str, partition: i32) {
        if let Some((_, done)) = self.pending.get_mut(topic) {
            done.insert(partition);
        }
    }

    /// Topics with partitions still to rewind.
    pub(super) fn pending_topics(&mut self) -> BTreeSet<String> {
        self.pending.retain(|_, (since, _)| since.elapsed() < PENDING_FOR);
        self.pending.keys().cloned().collect()
    }

    /// Whether `partition` of `topic` is still to be rewound.
    pub(super) fn is_due(&self, topic: &str, partition: i32) -> bool {
        self.pending.get(topic).is_some_and(|(_, done)| !done.contains(&partition))
    }

    /// Whether a message just read at `offset` comes from an old position in a restarted
    /// log: then the partition must be read from the beginning (and [`Self::done`] once it
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announced(topic: &str) -> Rewinds {
        let mut rewinds = Rewinds::default();
        rewinds.pending.insert(topic.to_owned(), (Instant::now(), HashSet::new()));
        rewinds
    }

    #[test]
    fn the_first_message_past_the_start_of_a_restarted_log_rewinds_its_partition_once() {
        let mut rewinds = announced("orders");
        assert!(rewinds.must_rewind("orders", 1, 13));
        assert!(rewinds.must_rewind("orders", 1, 14), "until the seek is done");
        rewinds.done("orders", 1);
        assert!(!rewinds.must_rewind("orders", 1, 0), "after the seek the log is read from its start");
        assert!(!rewinds.must_rewind("orders", 1, 14));
    }

    #[test]
    fn a_partition_starting_at_offset_zero_or_already_rewound_needs_nothing() {
        let mut rewinds = announced("orders");
        assert!(!rewinds.must_rewind("orders", 0, 0));
        assert!(!rewinds.must_rewind("orders", 0, 5));
        rewinds.done("orders", 2);
        assert!(!rewinds.must_rewind("orders", 2, 40));
    }

    #[test]
    fn other_topics_and_old_announcements_are_left_alone() {
        let mut rewinds = announced("orders");
        assert!(!rewinds.must_rewind("users", 0, 7));
        rewinds.pending.insert("users".to_owned(), (Instant::now() - PENDING_FOR, HashSet::new()));
        assert!(!rewinds.must_rewind("users", 0, 7));
    }
}
