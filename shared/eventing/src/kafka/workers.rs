//! The registry of running partition workers, shared by the consumer loop (which starts
//! them), the rebalance callback (which stops them on revocation) and a rewind (which
//! retires them): revocation waits until each stopped worker has stored its position.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::TopicPartitionList;
use tokio_util::sync::CancellationToken;

/// How long a stopping worker lets its running handlers finish before abandoning them.
pub(super) const STOP_GRACE: Duration = Duration::from_secs(5);

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
    pub(super) stop: CancellationToken,
    finished: Arc<Finished>,
    /// Set when the partition was read again from its beginning: this worker's offsets
    /// belong to a log that is gone, and it must never store one again. A lock rather than
    /// a flag, so that a store in progress cannot land after the retirement.
    retired: Arc<Mutex<bool>>,
}

impl WorkerHandle {
    /// Runs `store` unless the worker was retired, holding the retirement lock meanwhile.
    pub(super) fn unless_retired(&self, store: impl FnOnce()) {
        let retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        if !*retired {
            store();
        }
    }

    /// Says the worker has stopped and stored its last position.
    pub(super) fn finished(&self) {
        self.finished.set();
    }
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
    /// read from the old log, whose offsets would skip the new log's messages below them).
    /// The consumer loop starts a fresh worker for the partition's next message.
    pub(super) fn retire(&self, key: &(String, i32)) {
        if let Some(handle) = self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(key) {
            // The worker stores under this lock: once it is set, no store of its can follow.
            *handle.retired.lock().unwrap_or_else(PoisonError::into_inner) = true;
        }
    }

    /// Forgets workers that have stopped.
    pub(super) fn prune(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).retain(|_, handle| !handle.finished.is_set());
    }
}
