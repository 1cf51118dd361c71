//! One partition's work, in key order (the model: Confluent's Parallel Consumer in
//! key-ordering mode).
//!
//! - A message's key is its message key, or the lane its topic's events are ordered by
//!   (see [`super::ConsumerBuilder::ordered_by`]).
//! - Messages with different keys are handled concurrently, up to
//!   `KAFKA_MAX_IN_FLIGHT` at once per partition; messages with the same key strictly
//!   one after another, in offset order. A key whose message is being retried holds
//!   back only itself.
//! - A busy key's later messages wait in its lane without taking a handling slot, up
//!   to `KAFKA_MAX_WAITING` messages (and `KAFKA_MAX_IN_FLIGHT_BYTES` of payload) per
//!   partition: one user's burst of orders does not hold up other users' messages
//!   behind it on the same partition.
//! - The stored position is the lowest offset accepted and not yet finished, so a
//!   crash redelivers at most what was in flight and never skips a message.
//! - A worker at its limit stops reading its channel; the consumer loop then pauses
//!   the partition at the broker, so nothing grows without bound.
//! - Revocation stops the worker: handlers already running finish (within a grace),
//!   waiting messages are abandoned unstored, and the final position is stored before
//!   the rebalance callback returns, so no two instances handle a message at once.
//! - A partition read again from its beginning (its log restarted) *retires* its worker:
//!   what it holds comes from the old log, so it finishes that without storing any
//!   position, and a fresh worker takes the new log's messages (see [`super::workers::Workers::retire`]).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use rdkafka::Message;
use rdkafka::message::OwnedMessage;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::group::{GroupConsumer, store_position};
use super::handling::{Handling, Outcome};
use super::workers::{STOP_GRACE, WorkerHandle};

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

/// The worker of one assigned partition.
pub(super) struct PartitionWorker {
    pub(super) handling: Arc<Handling>,
    pub(super) consumer: Arc<GroupConsumer>,
    pub(super) topic: String,
    pub(super) partition: i32,
}

/// A message waiting in its lane, with that lane.
type Laned = (Vec<u8>, OwnedMessage);

type Running = FuturesUnordered<BoxFuture<'static, (Laned, Outcome)>>;

fn size_of(message: &OwnedMessage) -> usize {
    message.payload().map_or(0, <[u8]>::len) + message.key().map_or(0, <[u8]>::len)
}

impl PartitionWorker {
    /// Handles the partition's messages until its channel closes or `handle` is stopped.
    pub(super) async fn run(self, mut messages: mpsc::Receiver<OwnedMessage>, handle: WorkerHandle) {
        let settings = &self.handling.settings;
        let (max_in_flight, max_waiting, max_bytes) =
            (settings.max_in_flight, settings.max_waiting, settings.max_in_flight_bytes);
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
            // Handling slots count running messages only: what waits behind its key has
            // a bound of its own, so a hot key cannot fill the window.
            let waiting = tracker.in_flight().saturating_sub(running.len());
            let room = running.len() < max_in_flight && waiting < max_waiting && bytes < max_bytes;
            tokio::select! {
                biased;
                () = handle.stop.cancelled() => break,
                Some(((lane, message), outcome)) = running.next() => {
                    bytes = bytes.saturating_sub(size_of(&message));
                    if outcome != Outcome::Interrupted {
                        tracker.finish(message.offset());
                        self.store(&mut tracker, &handle);
                    }
                    if let Some(next) = lanes.finish(&lane) {
                        running.push(self.start((lane, next), &handle.stop));
                    }
                }
                received = messages.recv(), if room => {
                    let Some(message) = received else { break };
                    tracker.accept(message.offset());
                    bytes += size_of(&message);
                    let lane = self.handling.lane_of(&message);
                    if let Some(message) = lanes.admit(&lane, message) {
                        running.push(self.start((lane, message), &handle.stop));
                    }
                }
            }
            #[allow(clippy::cast_precision_loss)]
            in_flight.set(tracker.in_flight() as f64);
        }
        // Stopping: what runs may finish; what waits behind a key stays unstored and is redelivered.
        let drain = async {
            while let Some(((_, message), outcome)) = running.next().await {
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
        handle.finished();
    }

    fn start(&self, (lane, message): Laned, stop: &CancellationToken) -> BoxFuture<'static, (Laned, Outcome)> {
        let handling = Arc::clone(&self.handling);
        let stop = stop.clone();
        Box::pin(async move {
            let outcome = handling.process(&message, &stop).await;
            ((lane, message), outcome)
        })
    }

    /// Stores the partition's position when it moved, unless this worker was retired;
    /// auto-commit sends it to the broker.
    fn store(&self, tracker: &mut OffsetTracker, handle: &WorkerHandle) {
        handle.unless_retired(|| {
            let Some(position) = tracker.advance() else { return };
            if let Err(error) = store_position(&self.consumer, &self.topic, self.partition, position) {
                // After the partition was taken away: its new owner redelivers, handlers are idempotent.
                tracing::debug!(%error, topic = self.topic, partition = self.partition, "cannot store offset");
            }
        });
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
