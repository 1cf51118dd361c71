//! The consumer's view of its group: readiness follows the assignment, revoked
//! partitions' workers stop (and store their position) before the revocation
//! completes, lag comes from librdkafka's statistics, failed commits are logged.

use rdkafka::consumer::{Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::workers::Workers;
use crate::health::{ConsumerStatus, subscribed};

/// The consumer of a group, with this context.
pub(super) type GroupConsumer = rdkafka::consumer::StreamConsumer<GroupContext>;

/// Raises the readiness flag when the group assigns partitions, and stops the workers of
/// partitions the group takes away.
pub(super) struct GroupContext {
    pub(super) status: ConsumerStatus,
    pub(super) group: String,
    pub(super) workers: Workers,
}

impl ClientContext for GroupContext {
    /// librdkafka's statistics (every `statistics.interval.ms`) carry each partition's lag.
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, stats) in &statistics.topics {
            for (partition, stats) in &stats.partitions {
                // Partition -1 is librdkafka's internal "unassigned" queue; negative lag means unknown.
                if *partition >= 0 && stats.consumer_lag >= 0 {
                    #[allow(clippy::cast_precision_loss)]
                    metrics::gauge!("kafka_consumer_lag", "topic" => topic.clone(), "partition" => partition.to_string(), "group" => self.group.clone())
                        .set(stats.consumer_lag as f64);
                }
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    /// Before partitions go to another member: their workers finish what runs (within a
    /// grace), store their positions, and those are committed, so the next owner starts
    /// where this one stopped and no message is handled by two members at once.
    fn pre_rebalance(&self, consumer: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            self.workers.stop_and_wait(partitions);
            commit_now(consumer, "commit before revocation");
        }
    }

    fn post_rebalance(&self, _consumer: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                tracing::info!(partitions = partitions.count(), "partitions assigned");
                self.status.set(subscribed(true));
            }
            Rebalance::Revoke(partitions) => {
                tracing::info!(partitions = partitions.count(), "partitions revoked");
            }
            Rebalance::Error(error) => {
                tracing::warn!(%error, "rebalance failed");
                self.status.set(subscribed(false));
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(error) = result
            && !nothing_to_commit(&error)
        {
            tracing::warn!(%error, "offset commit failed");
        }
    }
}

/// Commits the stored offsets now and waits; a failure is logged as `what`.
pub(super) fn commit_now<C: Consumer<GroupContext>>(consumer: &C, what: &str) {
    if let Err(error) = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        && !nothing_to_commit(&error)
    {
        tracing::warn!(%error, "{what} failed");
    }
}

/// Stores `position` as where the partition is read from next; auto-commit sends it.
pub(super) fn store_position(consumer: &GroupConsumer, topic: &str, partition: i32, position: i64) -> KafkaResult<()> {
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Offset(position))?;
    consumer.store_offsets(&list)
}

/// "No offset stored" is routine when nothing new was handled since the last commit.
fn nothing_to_commit(error: &rdkafka::error::KafkaError) -> bool {
    matches!(error, rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset))
}
