//! Watches a consumer's standing in its group, for two faults the client library does not
//! see by itself.
//!
//! **A log that restarted below our position.** A broker that lost its store (a local
//! broker restarted on an empty volume) numbers each partition from 0 again. Apache Kafka
//! answers a fetch past the end with `OFFSET_OUT_OF_RANGE` and the client resets; tansu 0.6
//! answers with nothing, so the consumer would wait at its old position and then skip
//! every message below it. When an assigned partition's position is past its high
//! watermark, the watch has the consumer loop read it again from the beginning: what is
//! there now is new. An end of 0 is not believed (see [`log_ends_before`]).
//!
//! **A consumer left without partitions while its group's messages wait.** A broker that never expires a member that died without leaving (tansu 0.6) keeps the
//! dead member's partitions assigned to it: the restarted consumer joins with none, its
//! group's messages pile up, and nothing else looks wrong. Static membership
//! (`KAFKA_GROUP_INSTANCE_ID`) prevents it; this watch makes it visible when it happens
//! anyway: a consumer that holds no partitions while its topics have unconsumed messages,
//! and whose group's committed positions did not move since the last look, is stranded.
//! Readiness then fails and `kafka_consumer_stranded` is 1 (the `KafkaConsumerStranded` alert).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::group::GroupContext;
use crate::health::ConsumerStatus;

/// How often to look; two looks in a row without progress make "stranded".
const EVERY: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Watches until `shutdown`.
pub(super) async fn watch(
    consumer: Arc<StreamConsumer<GroupContext>>,
    topics: Vec<String>,
    group: String,
    status: ConsumerStatus,
    restarted: mpsc::Sender<Vec<((String, i32), Offset)>>,
    shutdown: CancellationToken,
) {
    let gauge = metrics::gauge!("kafka_consumer_stranded", "group" => group.clone());
    gauge.set(0.0);
    let mut previous: Option<i64> = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
        let holds_partitions = consumer.assignment().map(|assignment| assignment.count() > 0).unwrap_or(true);
        if holds_partitions {
            let probe = Arc::clone(&consumer);
            if let Ok(past_end) = tokio::task::spawn_blocking(move || past_their_end(&probe)).await
                && !past_end.is_empty()
                && restarted.send(past_end).await.is_err()
            {
                return;
            }
            previous = None;
            status.set_stranded(false);
            gauge.set(0.0);
            continue;
        }
        let probe = Arc::clone(&consumer);
        let topics = topics.clone();
        let Ok(Some((committed, lag))) = tokio::task::spawn_blocking(move || group_position(&probe, &topics)).await
        else {
            continue;
        };
        let stranded = lag > 0 && previous == Some(committed);
        if stranded && !status.is_stranded() {
            tracing::error!(
                group,
                lag,
                "consumer holds no partitions while its group's messages wait; nothing consumes them"
            );
        }
        status.set_stranded(stranded);
        gauge.set(if stranded { 1.0 } else { 0.0 });
        previous = Some(committed);
    }
}

/// The assigned partitions whose position is past their log's end, with that position.
fn past_their_end(consumer: &StreamConsumer<GroupContext>) -> Vec<((String, i32), Offset)> {
    let Ok(positions) = consumer.position() else { return Vec::new() };
    let mut past_end = Vec::new();
    for element in positions.elements() {
        let watermarks = consumer.fetch_watermarks(element.topic(), element.partition(), REQUEST_TIMEOUT);
        tracing::debug!(topic = element.topic(), partition = element.partition(), offset = ?element.offset(), ?watermarks, "position");
        let Offset::Offset(position) = element.offset() else { continue };
        let Ok((_, high)) = watermarks else { continue };
        if log_ends_before(position, high) {
            tracing::warn!(
                topic = element.topic(),
                partition = element.partition(),
                position,
                high,
                "the partition's log ends before our position (the broker lost its store?); reading it from the beginning"
            );
            past_end.push(((element.topic().to_owned(), element.partition()), element.offset()));
        }
    }
    past_end
}

/// Whether a partition's log ends before `position`, given the end ListOffsets gave.
///
/// tansu 0.6 answers ListOffsets "latest" from the newest record it still stores, and
/// with 0 once retention has deleted it, while the partition goes on numbering from
/// where it was. An end of 0 therefore says nothing: a platform left idle longer than
/// the retention would otherwise read its partitions again from 0, finding nothing, and
/// on tansu the next message would then arrive without its headers (see `tail`). A log
/// that did restart is caught once it holds its first message.
pub(super) fn log_ends_before(position: i64, listed_end: i64) -> bool {
    listed_end > 0 && position > listed_end
}

/// The sum of the group's committed positions over every partition of `topics`, and the
/// messages past them. `None` when the broker does not answer.
fn group_position(consumer: &StreamConsumer<GroupContext>, topics: &[String]) -> Option<(i64, i64)> {
    let committed = group_committed(consumer, topics)?;
    let (mut position_sum, mut lag) = (0, 0);
    for element in committed.elements() {
        let (low, high) = consumer.fetch_watermarks(element.topic(), element.partition(), REQUEST_TIMEOUT).ok()?;
        let position = match element.offset() {
            Offset::Offset(offset) => offset.max(low),
            _ => low,
        };
        position_sum += position;
        lag += (high - position).max(0);
    }
    Some((position_sum, lag))
}

/// The group's committed offsets for every partition of `topics` (blocking). `None` when
/// the broker does not answer.
pub(super) fn group_committed(
    consumer: &StreamConsumer<GroupContext>,
    topics: &[String],
) -> Option<TopicPartitionList> {
    let mut partitions = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT).ok()?;
        for partition in metadata.topics().iter().flat_map(|topic| topic.partitions()) {
            partitions.add_partition(topic, partition.id());
        }
    }
    consumer.committed_offsets(partitions, REQUEST_TIMEOUT).ok()
}

#[cfg(test)]
mod tests {
    use super::log_ends_before;

    #[test]
    fn a_log_ends_before_a_position_only_by_an_end_tansu_can_mean() {
        assert!(log_ends_before(40, 3), "restarted, and holding 3 messages");
        assert!(!log_ends_before(40, 40), "at the end");
        assert!(!log_ends_before(40, 52), "behind");
        assert!(!log_ends_before(40, 0), "retention deleted every record: tansu says 0");
    }
}
