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
//! A partition librdkafka cannot seek yet is tried again a second later; the message that
//! found it is handled meanwhile, never dropped.
//!
//! The same tick commits the store's generation in the group ([`StoreWatch`]): a group
//! that finds another generation committed (or none, while it had offsets before this
//! process started) may hold positions from the old logs, and reads every partition again.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::task::JoinHandle;

use super::consumer::{EventConsumer, Flow};
use super::generation::{LogReset, LogResets};
use super::group::GroupContext;

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

/// How long a rewind waits for librdkafka to move a partition's position.
const SEEK_TIMEOUT: Duration = Duration::from_secs(5);

/// What the consumer loop keeps to act on a lost store: the rewinds still to do, and the
/// store generation still to compare with the group's and commit.
pub(super) struct StoreWatch {
    rewinds: Rewinds,
    /// The generation announced and not yet committed in the group.
    generation_due: Option<i64>,
    /// Whether the group had committed offsets before this process could commit any
    /// (looked up at start, off the loop): only those can point into logs an earlier
    /// store held.
    commits_at_start: Option<JoinHandle<Option<bool>>>,
    had_commits: Option<bool>,
    /// Whether this process has recorded a generation: then a missing one was wiped.
    recorded_generation: bool,
    /// The generation's comparison and commit, in flight off the loop: a synchronous commit
    /// may wait for the group's join, and the loop must keep polling meanwhile (librdkafka
    /// hands out the assignment through it).
    committing: Option<(i64, JoinHandle<Option<bool>>)>,
    housekeeping: tokio::time::Interval,
}

impl StoreWatch {
    pub(super) fn new(resets: Option<LogResets>, commits_at_start: JoinHandle<Option<bool>>) -> Self {
        let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            rewinds: Rewinds::new(resets),
            generation_due: None,
            commits_at_start: Some(commits_at_start),
            had_commits: None,
            recorded_generation: false,
            committing: None,
            housekeeping,
        }
    }

    /// The next thing to act on: an announcement from the keeper, or the tick (every
    /// second) at which a due generation is committed and pending partitions are looked at.
    /// Cancel-safe, for the consumer loop's `select!`.
    pub(super) async fn next(&mut self) -> StoreEvent {
        tokio::select! {
            reset = self.rewinds.announced() => StoreEvent::Reset(reset),
            _ = self.housekeeping.tick() => StoreEvent::Tick,
        }
    }
}

/// See [`StoreWatch::next`].
pub(super) enum StoreEvent {
    Reset(LogReset),
    Tick,
}

/// Whether the consumer's group has committed a position past the start of any partition
/// of `topics`. `None` when the broker does not answer.
fn has_committed_offsets(consumer: &StreamConsumer<GroupContext>, topics: &[String]) -> Option<bool> {
    let committed = super::watch::group_committed(consumer, topics)?;
    Some(committed.elements().iter().any(|element| matches!(element.offset(), Offset::Offset(offset) if offset > 0)))
}

impl EventConsumer {
    /// Looks up, off the loop, whether the group had committed offsets before this process.
    pub(super) fn spawn_commit_snapshot(&self) -> JoinHandle<Option<bool>> {
        let (consumer, topics) = (Arc::clone(&self.consumer), self.topics.clone());
        tokio::task::spawn_blocking(move || has_committed_offsets(&consumer, &topics))
    }

    /// The keeper announced topics whose logs restarted (rewound now where held), or the
    /// store's generation (compared and committed at the next tick).
    pub(super) async fn on_reset(&self, reset: LogReset, store: &mut StoreWatch, flow: &mut Flow) {
        match reset {
            LogReset::Topics(topics) => self.rewind_held(&topics, &mut store.rewinds, flow).await,
            LogReset::Generation(generation) => store.generation_due = Some(generation),
        }
    }

    /// Commits a due generation (announcing every topic when the group's offsets may
    /// predate the store) and rewinds the pending partitions that got a position since.
    pub(super) async fn housekeep(&self, store: &mut StoreWatch, flow: &mut Flow) {
        if let Some(snapshot) = store.commits_at_start.take_if(|snapshot| snapshot.is_finished()) {
            store.had_commits = snapshot.await.ok().flatten();
        }
        if let Some((committed, task)) = store.committing.take_if(|(_, task)| task.is_finished())
            && let Ok(Some(stale)) = task.await
        {
            if stale {
                store.rewinds.announce(&self.topics.iter().cloned().collect());
            }
            store.recorded_generation = true;
            // A newer generation announced meanwhile is still due.
            if store.generation_due == Some(committed) {
                store.generation_due = None;
            }
        }
        if let (Some(generation), Some(marker), None, None) =
            (store.generation_due, store.rewinds.marker_topic(), &store.commits_at_start, &store.committing)
        {
            let had = if store.recorded_generation { Some(true) } else { store.had_commits };
            store.committing = Some((generation, self.commit_generation(marker, generation, had)));
        }
        let pending = store.rewinds.pending_topics();
        if !pending.is_empty() {
            self.rewind_held(&pending, &mut store.rewinds, flow).await;
        }
    }

    /// For a message just read: when its partition is due a rewind and the message comes
    /// from past the start of the restarted log, seeks the partition to the beginning and
    /// returns true (the message will come again). A partition librdkafka cannot seek yet
    /// returns false: the message is handled as it is, never dropped, and the rewind is
    /// tried again at the next tick (handlers are idempotent, so reading it twice is safe).
    pub(super) async fn rewound_instead(
        &self,
        key: &(String, i32),
        offset: i64,
        store: &mut StoreWatch,
        flow: &mut Flow,
    ) -> bool {
        if !store.rewinds.must_rewind(&key.0, key.1, offset) {
            return false;
        }
        let moved = self.rewind(vec![(key.clone(), Offset::Offset(offset))], flow).await;
        for (topic, partition) in &moved {
            store.rewinds.done(topic, *partition);
        }
        !moved.is_empty()
    }

    /// Compares the store generation the group last committed under with `generation`, and
    /// commits `generation`, on a blocking thread. `Some(true)`: the group's offsets may have been committed before
    /// the broker lost its store, so they may point into the old logs. `None`: not settled yet
    /// (the broker did not answer, or the group has not let this member commit), to try again.
    ///
    /// `had_commits`: whether the group had committed offsets when this process started
    /// (`None`: unknown, then they are looked up now).
    fn commit_generation(
        &self,
        marker: String,
        generation: i64,
        had_commits: Option<bool>,
    ) -> JoinHandle<Option<bool>> {
        let consumer = Arc::clone(&self.consumer);
        let group = self.handling.group.clone();
        let topics = self.topics.clone();
        tokio::task::spawn_blocking(move || {
            let mut partition = TopicPartitionList::new();
            partition.add_partition(&marker, 0);
            let committed = consumer.committed_offsets(partition, SEEK_TIMEOUT).ok()?;
            let before =
                committed.elements().first().map(rdkafka::topic_partition_list::TopicPartitionListElem::offset);
            // No generation at all is stale too when the group had committed offsets before
            // this process: on tansu a wipe deletes the group's commits with the topics, and a
            // member that dies mid-wipe may commit old positions into the new logs. (A group
            // from before generations existed reads its retained messages once more.)
            let stale = match (before, had_commits) {
                (Some(Offset::Offset(before)), _) => before != generation,
                (_, Some(had_commits)) => had_commits,
                (_, None) => has_committed_offsets(&consumer, &topics)?,
            };
            if before != Some(Offset::Offset(generation)) {
                let mut update = TopicPartitionList::new();
                update.add_partition_offset(&marker, 0, Offset::Offset(generation)).ok()?;
                if let Err(error) = consumer.commit(&update, CommitMode::Sync) {
                    tracing::info!(%error, group, "cannot commit the store generation yet");
                    return None;
                }
                tracing::info!(group, ?before, generation, "store generation committed");
            }
            if stale {
                tracing::warn!(
                    group,
                    ?before,
                    generation,
                    "the group's offsets may predate the broker's store; reading every partition from the beginning"
                );
            }
            Some(stale)
        })
    }

    /// Reads the held partitions of `topics` that are due (see [`Rewinds`]) again from the
    /// beginning. The position librdkafka reports is that of the last message handed out,
    /// unknown until one was: such a partition may sit at an old committed offset at or past
    /// the new log's end, where no message would ever come to tell, so it is rewound too.
    async fn rewind_held(&self, topics: &BTreeSet<String>, rewinds: &mut Rewinds, flow: &mut Flow) {
        let Ok(positions) = self.consumer.position() else { return };
        let mut due = Vec::new();
        for element in positions.elements() {
            if !topics.contains(element.topic()) || !rewinds.is_due(element.topic(), element.partition()) {
                continue;
            }
            if element.offset() == Offset::Offset(0) {
                rewinds.done(element.topic(), element.partition());
            } else {
                due.push(((element.topic().to_owned(), element.partition()), element.offset()));
            }
        }
        for (topic, partition) in self.rewind(due, flow).await {
            rewinds.done(&topic, partition);
        }
    }

    /// Seeks each partition to the beginning. For each it moved: what was held back for it
    /// (read from the old log) is dropped, since librdkafka discards what it had fetched
    /// before the seek, and its worker is retired (see [`super::partition::Workers::retire`]),
    /// so positions from the old log are never stored again. Returns the partitions it
    /// moved; one librdkafka is not ready to move keeps its messages and is tried again later.
    pub(super) async fn rewind(&self, partitions: Vec<((String, i32), Offset)>, flow: &mut Flow) -> Vec<(String, i32)> {
        let consumer = Arc::clone(&self.consumer);
        let group = self.handling.group.clone();
        // Seeking waits for librdkafka's answer: off the async threads.
        let moved = tokio::task::spawn_blocking(move || {
            let mut moved = Vec::new();
            for ((topic, partition), position) in partitions {
                match consumer.seek(&topic, partition, Offset::Beginning, SEEK_TIMEOUT) {
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
        .unwrap_or_default();
        for key in &moved {
            flow.senders.remove(key);
            self.workers.retire(key, &self.consumer, Offset::Offset(0));
            if flow.backlog.remove(key).is_some() {
                self.set_paused(key, false);
            }
        }
        moved
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
