//! Working with dead letters: list what is parked in `<topic>.dlq`, and replay it
//! to the original topic once the cause is fixed.
//!
//! Listing reads the whole dead-letter topic and changes nothing. Replaying
//! remembers its progress in a consumer group of its own, so each dead letter is
//! replayed once; a dry run shows what would be replayed and moves nothing.

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;

use contracts::events::dead_letter_topic;
use eventing::configuration::KafkaSettings;
use eventing::kafka::EventPublisher;
use eventing::kafka::client::{REQUEST_TIMEOUT, base_config, partitions};
use eventing::kafka::headers;
use eventing::kafka::headers::header;

const POLL: Duration = Duration::from_millis(500);

/// One parked message, as listed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// Partition of the dead-letter topic.
    pub partition: i32,
    /// Offset in the dead-letter topic.
    pub offset: i64,
    /// Where the message was first published.
    pub original_topic: Option<String>,
    /// Its partition there.
    pub original_partition: Option<String>,
    /// Its offset there.
    pub original_offset: Option<String>,
    /// Why it was parked.
    pub error: Option<String>,
    /// Attempts made before parking.
    pub attempts: Option<String>,
    /// When the first attempt failed.
    pub first_failure_time: Option<String>,
    /// Its event id, if it had one.
    pub event_id: Option<String>,
    /// Its key.
    pub key: Option<String>,
    /// Its body, as text (lossy for binary bodies).
    pub payload: String,
}

impl DeadLetter {
    fn from_message(message: &OwnedMessage) -> Self {
        let get = |name: &str| headers::get(message.headers(), name).map(str::to_owned);
        Self {
            partition: message.partition(),
            offset: message.offset(),
            original_topic: get(headers::DLQ_ORIGINAL_TOPIC),
            original_partition: get(headers::DLQ_ORIGINAL_PARTITION),
            original_offset: get(headers::DLQ_ORIGINAL_OFFSET),
            error: get(headers::DLQ_ERROR),
            attempts: get(headers::DLQ_ATTEMPTS),
            first_failure_time: get(headers::DLQ_FIRST_FAILURE),
            event_id: get(headers::CE_ID),
            key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            payload: String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned(),
        }
    }
}

/// What a replay did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    /// Whether anything was actually sent.
    pub dry_run: bool,
    /// The letters replayed (or that would be).
    pub replayed: Vec<DeadLetter>,
}

/// Every dead letter of `topic` (base name; the prefix and `.dlq` are added).
pub fn list(settings: &KafkaSettings, topic: &str) -> anyhow::Result<Vec<DeadLetter>> {
    let dlq = dead_letter_topic(&settings.topic(topic));
    let consumer: BaseConsumer = base_config(settings)
        .set("group.id", format!("{}platform-dlq-list", settings.topic_prefix))
        .set("enable.auto.commit", "false")
        .create()
        .context("cannot create a Kafka consumer")?;
    let mut assignment = TopicPartitionList::new();
    let ranges = partition_ends(&consumer, &dlq)?;
    for (partition, low, _) in &ranges {
        assignment.add_partition_offset(&dlq, *partition, Offset::Offset(*low))?;
    }
    consumer.assign(&assignment).context("cannot assign the dead-letter partitions")?;
    Ok(read_until(&consumer, &ranges)?.iter().map(DeadLetter::from_message).collect())
}

/// Sends every dead letter of `topic` not replayed before back to its original topic,
/// unchanged but for the dead-letter headers; a dry run only reports them.
pub async fn replay(settings: &KafkaSettings, topic: &str, dry_run: bool) -> anyhow::Result<ReplayReport> {
    let dlq = dead_letter_topic(&settings.topic(topic));
    let consumer: BaseConsumer = base_config(settings)
        .set("group.id", format!("{}platform-dlq-replay", settings.topic_prefix))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("cannot create a Kafka consumer")?;
    let ends = partition_ends(&consumer, &dlq)?;
    let mut wanted = TopicPartitionList::new();
    for (partition, _, _) in &ends {
        wanted.add_partition(&dlq, *partition);
    }
    let committed = consumer.committed_offsets(wanted, POLL * 10).context("cannot read replay progress")?;
    let mut assignment = TopicPartitionList::new();
    let mut ranges = Vec::with_capacity(ends.len());
    for (partition, low, high) in ends {
        // Where the last replay stopped, or the oldest retained letter.
        let start = match committed.find_partition(&dlq, partition).map(|p| p.offset()) {
            Some(Offset::Offset(offset)) => offset.max(low),
            _ => low,
        };
        assignment.add_partition_offset(&dlq, partition, Offset::Offset(start))?;
        ranges.push((partition, start, high));
    }
    consumer.assign(&assignment).context("cannot assign the dead-letter partitions")?;
    let letters = read_until(&consumer, &ranges)?;
    let mut report = ReplayReport { dry_run, replayed: Vec::new() };
    let publisher = if dry_run { None } else { Some(EventPublisher::new(settings)?) };
    for message in &letters {
        let letter = DeadLetter::from_message(message);
        if let Some(publisher) = &publisher {
            let target = letter.original_topic.clone().context("dead letter without x-dlq-original-topic")?;
            let replayed_at = Utc::now().to_rfc3339();
            let mut replay_headers = OwnedHeaders::new();
            if let Some(original) = message.headers() {
                for h in original.iter().filter(|h| !h.key.starts_with("x-dlq-")) {
                    replay_headers = replay_headers.insert(Header { key: h.key, value: h.value });
                }
            }
            replay_headers = replay_headers.insert(header("x-dlq-replayed-at", &replayed_at));
            let key = letter.key.clone().unwrap_or_default();
            publisher.send(&target, &key, message.payload().unwrap_or_default(), replay_headers).await?;
            let mut done = TopicPartitionList::new();
            done.add_partition_offset(&dlq, message.partition(), Offset::Offset(message.offset() + 1))?;
            consumer.commit(&done, CommitMode::Sync).context("cannot record replay progress")?;
            metrics::counter!("kafka_dead_letters_replayed_total", "topic" => target).increment(1);
        }
        report.replayed.push(letter);
    }
    Ok(report)
}

/// `(partition, low watermark, high watermark)` for each partition of `topic`.
fn partition_ends(consumer: &BaseConsumer, topic: &str) -> anyhow::Result<Vec<(i32, i64, i64)>> {
    let partitions = partitions(consumer.client(), &[topic]).context("cannot fetch topic metadata")?;
    anyhow::ensure!(partitions.count() > 0, "topic {topic} does not exist");
    partitions
        .elements()
        .iter()
        .map(|element| {
            let (low, high) = consumer.fetch_watermarks(topic, element.partition(), REQUEST_TIMEOUT)?;
            Ok((element.partition(), low, high))
        })
        .collect()
}

/// Reads each partition from its start offset up to its high watermark as it was when
/// the command began (later dead letters wait for the next run).
fn read_until(consumer: &BaseConsumer, ranges: &[(i32, i64, i64)]) -> anyhow::Result<Vec<OwnedMessage>> {
    let mut next: std::collections::HashMap<i32, (i64, i64)> =
        ranges.iter().map(|(partition, start, high)| (*partition, (*start, *high))).collect();
    next.retain(|_, (start, high)| start < high);
    let mut messages = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !next.is_empty() {
        anyhow::ensure!(std::time::Instant::now() < deadline, "timed out reading the dead-letter topic");
        match consumer.poll(POLL) {
            Some(Ok(message)) => {
                if let Some((position, high)) = next.get_mut(&message.partition()) {
                    if message.offset() < *high {
                        messages.push(message.detach());
                    }
                    *position = message.offset() + 1;
                    if *position >= *high {
                        next.remove(&message.partition());
                    }
                }
            }
            Some(Err(error)) => return Err(error).context("cannot read the dead-letter topic"),
            None => {}
        }
    }
    messages.sort_by_key(|m| (m.partition(), m.offset()));
    Ok(messages)
}
