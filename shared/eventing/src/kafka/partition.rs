//! One partition's work, in key order (the model: Confluent's Parallel Consumer in
//! key-ordering mode).
//!
//! - Messages with different keys are handled concurrently, up to
//!   `KAFKA_MAX_IN_FLIGHT` accepted messages (and `KAFKA_MAX_IN_FLIGHT_BYTES` of
//!   payload) per partition; messages with the same key strictly one after another,
//!   in offset order. A key whose message is being retried holds back only itself.
//! - The stored position is the lowest offset accepted and not yet finished, so a
//!   crash redelivers at most what was in flight and never skips a message.
//! - A worker at its limit stops reading its channel; the consumer loop then pauses
//!   the partition at the broker, so nothing grows without bound.
//! - Revocation stops the worker: handlers already running finish (within a grace),
//!   waiting messages are abandoned unstored, and the final position is stored before
//!   the rebalance callback returns, so no two instances handle a message at once.
//! - A partition read again from its beginning (its log restarted) *retires* its worker:
//!   what it holds comes from the old log, so it finishes that without storing any
//!   position, and a fresh worker takes the new log's messages (see [`Workers::retire`]).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::group::GroupContext;
use super::handling::{Handling, Outcome};

/// How long a stopping worker lets its running handlers finish before abandoning them.
pub(super) const STOP_GRACE: Duration = Duration::from_secs(5);

/// Offsets accepted and not yet finished; the position to store is the lowest of them.
#[derive(Debug, Default)]
pub(super) struct OffsetTracker {
    unfinished: BTreeSet<i64>,
    /// One past the highest offset accepted.
    next: Option<i64>,
    /// The position last returned by [`OffsetTracker::advance`].
    stored: Option<i64>,
}

impl OffsetTracker {
    /// `offset` was read and is now this worker's to finish.
    pub(super) fn accept(&mut self, offset: i64) {
        self.unfinished.insert(offset);
        self.next = Some(self.next.map_or(offset + 1, |next| next.max(offset + 1)));
    }

    /// `offset` was handled or dead-lettered.
    pub(super) fn finish(&mut self, offset: i64) {
        self.unfinished.remove(&offset);
    }

    /// Messages accepted and not finished.
    pub(super) fn in_flight(&self) -> usize {
        self.unfinished.len()
    }

    /// The position a restart should read from (every offset below it is finished), when it
    /// moved since the last call.
    pub(super) fn advance(&mut self) -> Option<i64> {
        let position = self.unfinished.first().copied().or(self.next)?;
        if self.stored.is_some_and(|stored| stored >= position) {
            return None;
        }
        self.stored = Some(position);
        Some(position)
    }
}

/// Per-key lanes: a key has a lane while one of its messages runs; later messages of
/// that key wait in it, in the order they arrived.
#[derive(Debug)]
pub(super) struct KeyLanes<M> {
    lanes: HashMap<Vec<u8>, VecDeque<M>>,
}

impl<M> Default for KeyLanes<M> {
    fn default() -> Self {
        Self { lanes: HashMap::new() }
    }
}

impl<M> KeyLanes<M> {
    /// Takes `message`; hands it back when its key is idle (start it now), else queues it.
    pub(super) fn admit(&mut self, key: &[u8], message: M) -> Option<M> {
        if let Some(lane) = self.lanes.get_mut(key) {
            lane.push_back(message);
            None
        } else {
            self.lanes.insert(key.to_vec(), VecDeque::new());
            Some(message)
        }
    }

    /// The running message of `key` finished; returns the key's next message to start.
    pub(super) fn finish(&mut self, key: &[u8]) -> Option<M> {
        let lane = self.lanes.get_mut(key)?;
        let next = lane.pop_front();
        if next.is_none() {
            self.lanes.remove(key);
        }
        next
    }

    /// Keys with a message running.
    #[cfg(test)]
    pub(super) fn running(&self) -> usize {
        self.lanes.len()
    }
}

/// Set once a worker has stopped and stored its last position; waitable from the
/// synchronous rebalance callback.
#[derive(Debug, Default)]
pub(super) struct Finished {
    done: Mutex<bool>,
    changed: Condvar,
}

impl Finished {
    fn set(&self) {
        *self.done.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.changed.notify_all();
    }

    fn is_set(&self) -> bool {
        *self.done.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks until set or `timeout`; true if set.
    fn wait(&self, timeout: Duration) -> bool {
        let done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        let (done, _) =
            self.changed.wait_timeout_while(done, timeout, |done| !*done).unwrap_or_else(PoisonError::into_inner);
        *done
    }
}

/// What the consumer loop and the rebalance callback hold of a running worker.
#[derive(Debug, Clone)]
pub(super) struct WorkerHandle {
    stop: CancellationToken,
    finished: Arc<Finished>,
    /// Set when the partition was read again from its beginning: this worker's offsets
    /// belong to a log that is gone, and it must never store one again. A lock rather than
    /// a flag, so that a store in progress cannot land after the retirement.
    retired: Arc<Mutex<bool>>,
}

/// The running workers by (topic, partition), shared by the consumer loop (which starts
/// them) and the group context (which stops them on revocation).
#[derive(Debug, Clone, Default)]
pub(super) struct Workers(Arc<Mutex<HashMap<(String, i32), WorkerHandle>>>);

impl Workers {
    /// Registers a worker for `key` that stops when `parent` is cancelled or on revocation.
    pub(super) fn register(&self, key: (String, i32), parent: &CancellationToken) -> WorkerHandle {
        let handle = WorkerHandle { stop: parent.child_token(), finished: Arc::default(), retired: Arc::default() };
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(key, handle.clone());
        handle
    }

    /// Stops the workers of `partitions` and blocks, at most [`STOP_GRACE`] plus a margin,
    /// until each has stored its final position. Called from the rebalance callback, which
    /// librdkafka runs inside the consumer loop's poll: the workers run on other runtime
    /// threads (services use the multi-threaded runtime); on a single-threaded runtime the
    /// wait simply times out and the unstored messages are redelivered.
    pub(super) fn stop_and_wait(&self, partitions: &TopicPartitionList) {
        let handles: Vec<WorkerHandle> = {
            let mut workers = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            partitions
                .elements()
                .iter()
                .filter_map(|element| workers.remove(&(element.topic().to_owned(), element.partition())))
                .collect()
        };
        for handle in &handles {
            handle.stop.cancel();
        }
        let deadline = std::time::Instant::now() + STOP_GRACE + Duration::from_secs(1);
        for handle in handles {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if !handle.finished.wait(left) {
                tracing::warn!(
                    "a revoked partition's worker did not stop in time; its unstored messages will be redelivered"
                );
            }
        }
    }

    /// Retires the worker of `key`, whose partition was just sought to its new log's
    /// beginning: from now on it stores no position (it may still be finishing messages
    /// read from the old log, whose offsets would skip the new log's messages below them),
    /// and then stores `position` for the partition, so that a revocation commits where
    /// the new log is read from, not where the old one was. The consumer loop starts a
    /// fresh worker for the partition's next message.
    pub(super) fn retire(&self, key: &(String, i32), consumer: &StreamConsumer<GroupContext>, position: Offset) {
        if let Some(handle) = self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(key) {
            // The worker stores under this lock: once it is set, no store of its can follow.
            *handle.retired.lock().unwrap_or_else(PoisonError::into_inner) = true;
        }
        let mut list = TopicPartitionList::new();
        if list.add_partition_offset(&key.0, key.1, position).is_ok()
            && let Err(error) = consumer.store_offsets(&list)
        {
            tracing::debug!(%error, topic = key.0, partition = key.1, "cannot store the rewound position");
        }
    }

    /// Forgets workers that have stopped.
    pub(super) fn prune(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).retain(|_, handle| !handle.finished.is_set());
    }
}

/// The worker of one assigned partition.
pub(super) struct PartitionWorker {
    pub(super) handling: Arc<Handling>,
    pub(super) consumer: Arc<StreamConsumer<GroupContext>>,
    pub(super) topic: String,
    pub(super) partition: i32,
}

type Running = FuturesUnordered<BoxFuture<'static, (OwnedMessage, Outcome)>>;

fn key_of(message: &OwnedMessage) -> &[u8] {
    message.key().unwrap_or_default()
}

fn size_of(message: &OwnedMessage) -> usize {
    message.payload().map_or(0, <[u8]>::len) + message.key().map_or(0, <[u8]>::len)
}

impl PartitionWorker {
    /// Handles the partition's messages until its channel closes or `handle` is stopped.
    pub(super) async fn run(self, mut messages: mpsc::Receiver<OwnedMessage>, handle: WorkerHandle) {
        let settings = &self.handling.settings;
        let (max_in_flight, max_bytes) = (settings.max_in_flight, settings.max_in_flight_bytes);
        let in_flight = metrics::gauge!(
            "kafka_consumer_in_flight",
            "topic" => self.topic.clone(),
            "partition" => self.partition.to_string(),
            "group" => self.handling.group.clone()
        );
        let mut tracker = OffsetTracker::default();
        let mut lanes = KeyLanes::default();
        let mut running: Running = FuturesUnordered::new();
        let mut bytes = 0usize;
        loop {
            let room = tracker.in_flight() < max_in_flight && bytes < max_bytes;
            tokio::select! {
                biased;
                () = handle.stop.cancelled() => break,
                Some((message, outcome)) = running.next() => {
                    bytes = bytes.saturating_sub(size_of(&message));
                    if outcome != Outcome::Interrupted {
                        tracker.finish(message.offset());
                        self.store(&mut tracker, &handle);
                    }
                    if let Some(next) = lanes.finish(key_of(&message)) {
                        running.push(self.start(next, &handle.stop));
                    }
                }
                received = messages.recv(), if room => {
                    let Some(message) = received else { break };
                    tracker.accept(message.offset());
                    bytes += size_of(&message);
                    let key = key_of(&message).to_vec();
                    if let Some(message) = lanes.admit(&key, message) {
                        running.push(self.start(message, &handle.stop));
                    }
                }
            }
            #[allow(clippy::cast_precision_loss)]
            in_flight.set(tracker.in_flight() as f64);
        }
        // Stopping: what runs may finish; what waits behind a key stays unstored and is redelivered.
        let drain = async {
            while let Some((message, outcome)) = running.next().await {
                if outcome != Outcome::Interrupted {
                    tracker.finish(message.offset());
                }
            }
        };
        if tokio::time::timeout(STOP_GRACE, drain).await.is_err() {
            tracing::warn!(
                topic = self.topic,
                partition = self.partition,
                "handlers still running at stop; abandoning them"
            );
        }
        self.store(&mut tracker, &handle);
        in_flight.set(0.0);
        handle.finished.set();
    }

    fn start(&self, message: OwnedMessage, stop: &CancellationToken) -> BoxFuture<'static, (OwnedMessage, Outcome)> {
        let handling = Arc::clone(&self.handling);
        let stop = stop.clone();
        Box::pin(async move {
            let outcome = handling.process(&message, &stop).await;
            (message, outcome)
        })
    }

    /// Stores the partition's position when it moved, unless this worker was retired;
    /// auto-commit sends it to the broker.
    fn store(&self, tracker: &mut OffsetTracker, handle: &WorkerHandle) {
        let retired = handle.retired.lock().unwrap_or_else(PoisonError::into_inner);
        if *retired {
            return;
        }
        let Some(position) = tracker.advance() else { return };
        let mut list = TopicPartitionList::new();
        if let Err(error) = list.add_partition_offset(&self.topic, self.partition, Offset::Offset(position)) {
            tracing::warn!(%error, "cannot build the offset list");
            return;
        }
        if let Err(error) = self.consumer.store_offsets(&list) {
            // After the partition was taken away: its new owner redelivers, handlers are idempotent.
            tracing::debug!(%error, topic = self.topic, partition = self.partition, "cannot store offset");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{KeyLanes, OffsetTracker};

    #[test]
    fn the_position_is_the_lowest_unfinished_offset() {
        let mut tracker = OffsetTracker::default();
        for offset in 10..15 {
            tracker.accept(offset);
        }
        assert_eq!(tracker.advance(), Some(10));
        tracker.finish(11);
        tracker.finish(12);
        assert_eq!(tracker.advance(), None, "10 is still running");
        tracker.finish(10);
        assert_eq!(tracker.advance(), Some(13));
        tracker.finish(14);
        tracker.finish(13);
        assert_eq!(tracker.advance(), Some(15), "all finished: one past the highest");
        assert_eq!(tracker.in_flight(), 0);
    }

    #[test]
    fn a_key_runs_one_message_at_a_time_in_arrival_order() {
        let mut lanes = KeyLanes::default();
        assert_eq!(lanes.admit(b"a", 1), Some(1));
        assert_eq!(lanes.admit(b"b", 2), Some(2));
        assert_eq!(lanes.admit(b"a", 3), None);
        assert_eq!(lanes.admit(b"a", 4), None);
        assert_eq!(lanes.running(), 2);
        assert_eq!(lanes.finish(b"a"), Some(3));
        assert_eq!(lanes.finish(b"b"), None);
        assert_eq!(lanes.finish(b"a"), Some(4));
        assert_eq!(lanes.finish(b"a"), None);
        assert_eq!(lanes.running(), 0);
        assert_eq!(lanes.admit(b"a", 5), Some(5), "an idle key starts at once");
    }
}
