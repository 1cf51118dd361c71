//! News of topics whose logs restarted, from a service's [`TopicKeeper`] to its consumer.
//!
//! A topic recreated (by the keeper, or by anyone) or a broker back on an empty store
//! numbers its partitions from 0 again, and neither the broker nor librdkafka tells a
//! running consumer (confluentinc/librdkafka#3255): it would wait at its old position and
//! skip every new message below it. The keeper counts, per topic, how often it saw the log
//! restart; the consumer compares with the counts it last acted on and reads the
//! partitions of each topic whose count went up again from the beginning.
//!
//! [`TopicKeeper`]: super::TopicKeeper

use std::collections::{BTreeMap, BTreeSet};

/// Topics whose logs restarted, each with how many times the keeper has seen that happen.
#[derive(Debug, Clone)]
pub struct LogResets {
    counts: tokio::sync::watch::Receiver<BTreeMap<String, u64>>,
}

impl LogResets {
    pub(super) fn new(counts: tokio::sync::watch::Receiver<BTreeMap<String, u64>>) -> Self {
        Self { counts }
    }

    /// Waits for the next announcement: the topics reset since `seen`, which is updated.
    /// `None` once the keeper is gone (the service is stopping).
    pub async fn next(&mut self, seen: &mut BTreeMap<String, u64>) -> Option<BTreeSet<String>> {
        self.counts.changed().await.ok()?;
        let now = self.counts.borrow_and_update().clone();
        let reset =
            now.iter().filter(|(topic, count)| seen.get(*topic) < Some(*count)).map(|(t, _)| t.clone()).collect();
        *seen = now;
        Some(reset)
    }

    /// The counts as they stand, to start comparing from.
    pub fn current(&self) -> BTreeMap<String, u64> {
        self.counts.borrow().clone()
    }
}
