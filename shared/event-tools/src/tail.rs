//! A live view of the platform's topics: every message as it arrives, with its
//! CloudEvents id and type, trace id and request id. Behind `make events`.
//!
//! It reads without a consumer group (partitions are assigned by hand and no offset is
//! ever committed), so watching changes nothing on the broker: no group to rebalance,
//! and no member left behind when it is stopped with Ctrl-C. Topics are looked up
//! again every few seconds, so a topic created or recreated
//! after the start (a dead-letter topic's first letter, a broker that lost its store) is
//! followed from its first message.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;

use eventing::configuration::KafkaSettings;
use eventing::kafka::client::{REQUEST_TIMEOUT, base_config, partitions};
use eventing::kafka::headers;

/// How long one poll waits; also how often a stop request is noticed.
const POLL: Duration = Duration::from_millis(100);

/// Where watching starts in the topics that exist when it begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// Only messages published from now on.
    Now,
    /// Everything the broker still holds.
    Beginning,
}

/// One message, as `make events` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Seen {
    /// The message's timestamp (when it was produced), or when it was read.
    pub time: DateTime<Utc>,
    /// The topic, with the deployment's prefix.
    pub topic: String,
    /// Partition and offset: where to find it again.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// The key (the user id for every platform event).
    pub key: Option<String>,
    /// CloudEvents type (`ce_type`).
    pub event_type: Option<String>,
    /// CloudEvents id (`ce_id`).
    pub event_id: Option<String>,
    /// The W3C trace id from `traceparent`: the same for every hop of one request.
    pub trace_id: Option<String>,
    /// `x-request-id`: the HTTP request that started the chain.
    pub request_id: Option<String>,
    /// For a dead letter, why it was parked (`x-dlq-error`).
    pub dlq_error: Option<String>,
    /// The body as text (lossy for bytes that are not UTF-8).
    pub payload: String,
}

impl Seen {
    fn from_message(message: &BorrowedMessage<'_>) -> Self {
        let get = |name: &str| headers::get(message.headers(), name).map(str::to_owned);
        let time = message.timestamp().to_millis().and_then(DateTime::from_timestamp_millis).unwrap_or_else(Utc::now);
        Self {
            time,
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            event_type: get(headers::CE_TYPE),
            event_id: get(headers::CE_ID),
            trace_id: headers::get(message.headers(), headers::TRACEPARENT).and_then(trace_id_of).map(str::to_owned),
            request_id: get(headers::REQUEST_ID),
            dlq_error: get(headers::DLQ_ERROR),
            payload: String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned(),
        }
    }

    /// One line for a terminal: time, topic, key, type, event id, trace id, request id
    /// and the payload cut to `payload_chars` characters.
    pub fn line(&self, payload_chars: usize) -> String {
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
        let mut payload: String = self.payload.chars().take(payload_chars).collect();
        if self.payload.chars().count() > payload_chars {
            payload.push('…');
        }
        let error = self.dlq_error.as_ref().map(|e| format!(" error={e:?}")).unwrap_or_default();
        format!(
            "{} {:<22} key={} type={} id={} trace={} request={}{error} {payload}",
            self.time.format("%H:%M:%S%.3f"),
            self.topic,
            dash(&self.key),
            dash(&self.event_type),
            dash(&self.event_id),
            dash(&self.trace_id),
            dash(&self.request_id),
        )
    }
}

/// The trace id of a `traceparent` value (`00-<trace id>-<span id>-<flags>`).
fn trace_id_of(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (_version, trace_id) = (parts.next()?, parts.next()?);
    (trace_id.len() == 32 && trace_id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(trace_id)
}

/// Follows `topics` (full names) until `stop` says so, handing each message to `on_seen`.
/// `on_following` is called once the first partitions are assigned, with their number:
/// from then on, nothing published to them is missed.
///
/// Blocking: run it on a thread of its own (the command line tool is its only user).
pub fn follow(
    settings: &KafkaSettings,
    topics: &[String],
    start: StartAt,
    refresh: Duration,
    mut stop: impl FnMut() -> bool,
    on_following: impl FnOnce(usize),
    mut on_seen: impl FnMut(Seen),
) -> anyhow::Result<()> {
    let mut on_following = Some(on_following);
    let consumer: BaseConsumer = base_config(settings)
        // Needed by the client, never joined: partitions are assigned by hand.
        .set("group.id", format!("{}platform-events", settings.topic_prefix))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", settings.fetch_wait_max_ms.to_string())
        .set("topic.metadata.refresh.interval.ms", refresh.as_millis().to_string())
        .create()
        .context("cannot create a Kafka consumer")?;
    let mut positions = Positions::default();
    let mut first_lookup = true;
    let mut next_lookup = Instant::now();
    while !stop() {
        if Instant::now() >= next_lookup {
            next_lookup = Instant::now() + refresh;
            // Topics that appear after the first lookup are new: all of them is news.
            let from = if first_lookup { start } else { StartAt::Beginning };
            let looking = Instant::now();
            let looked = positions.update(&consumer, topics, from);
            // Nothing is polled meanwhile, so this is how late a message can show.
            tracing::debug!(
                millis = looking.elapsed().as_millis(),
                partitions = positions.next.len(),
                "looked up the topics"
            );
            match looked {
                Ok(changed) if changed || first_lookup => {
                    first_lookup = false;
                    consumer.assign(&positions.assignment()?).context("cannot assign partitions")?;
                    if let Some(on_following) = on_following.take() {
                        on_following(positions.next.len());
                    }
                }
                Ok(_) => {}
                // The broker may be restarting: keep what we follow and look again later.
                Err(error) => tracing::warn!(error = format!("{error:#}"), "cannot look up the topics"),
            }
        }
        match consumer.poll(POLL) {
            // Once per message: the check moves the partition's position past it.
            Some(Ok(message)) if positions.arrived(message.topic(), message.partition(), message.offset()) => {
                on_seen(Seen::from_message(&message));
            }
            Some(Ok(_)) | None => {}
            Some(Err(error)) => tracing::warn!(%error, "cannot read"),
        }
    }
    Ok(())
}

/// The next offset to read of every followed partition.
#[derive(Default)]
struct Positions {
    next: BTreeMap<(String, i32), Offset>,
}

impl Positions {
    /// Adds partitions that appeared and rewinds those whose log was lost (its end is now
    /// before our position: the broker lost its store or the topic was recreated). Returns
    /// whether the assignment changed.
    ///
    /// Two requests whatever the number of partitions: the metadata, and one ListOffsets
    /// for every log's end. This runs between polls every few seconds; two watermark
    /// requests per partition (24 partitions here) kept the watcher from polling for
    /// seconds on a loaded broker, and the messages published meanwhile showed late.
    fn update(&mut self, consumer: &BaseConsumer, topics: &[String], start: StartAt) -> anyhow::Result<bool> {
        let wanted: Vec<&str> = topics.iter().map(String::as_str).collect();
        let mut ends = partitions(consumer.client(), &wanted).context("cannot fetch metadata")?;
        if ends.count() == 0 {
            return Ok(false);
        }
        // In a ListOffsets request the offset field is a timestamp, and "latest" is the log's end.
        ends.set_all_offsets(Offset::End).context("cannot build the log-end request")?;
        let ends = consumer.offsets_for_times(ends, REQUEST_TIMEOUT).context("cannot look up the logs' ends")?;
        let mut changed = false;
        for element in ends.elements() {
            let Offset::Offset(end) = element.offset() else { continue };
            if element.error().is_err() {
                continue;
            }
            let key = (element.topic().to_owned(), element.partition());
            match self.next.get(&key) {
                None => {
                    // The end is read now rather than left to `Offset::End`, which the
                    // client resolves at its first fetch, later: whatever is published
                    // once `follow` reports that it is following is shown.
                    let from = match start {
                        StartAt::Now => Offset::Offset(end),
                        StartAt::Beginning => Offset::Beginning,
                    };
                    self.next.insert(key, from);
                    changed = true;
                }
                Some(Offset::Offset(position)) if *position > end => {
                    self.next.insert(key, Offset::Beginning);
                    changed = true;
                }
                Some(_) => {}
            }
        }
        Ok(changed)
    }

    /// Whether a message that just arrived at `offset` is news, moving the position past
    /// it. One before the position was fetched before a rewind took effect: it was shown
    /// already, or will be when its turn comes.
    fn arrived(&mut self, topic: &str, partition: i32, offset: i64) -> bool {
        let Some(position) = self.next.get_mut(&(topic.to_owned(), partition)) else { return true };
        if matches!(*position, Offset::Offset(next) if offset < next) {
            return false;
        }
        *position = Offset::Offset(offset + 1);
        true
    }

    fn assignment(&self) -> anyhow::Result<TopicPartitionList> {
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in &self.next {
            list.add_partition_offset(topic, *partition, *offset).context("cannot build the assignment")?;
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_is_the_second_field_of_traceparent() {
        assert_eq!(
            trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(trace_id_of("00-not-hex-01"), None);
        assert_eq!(trace_id_of(""), None);
    }

    #[test]
    fn a_message_is_shown_once_and_one_from_before_a_rewind_not_again() {
        let mut positions = Positions::default();
        let key = ("t".to_owned(), 0);
        positions.next.insert(key.clone(), Offset::Offset(5));
        assert!(positions.arrived("t", 0, 5));
        assert!(positions.arrived("t", 0, 9), "records 6 to 8 are gone: 9 is next");
        assert!(!positions.arrived("t", 0, 9), "shown once");
        assert_eq!(positions.next[&key], Offset::Offset(10));
        positions.next.insert(key, Offset::Beginning);
        assert!(positions.arrived("t", 0, 3), "from the beginning, whatever comes first");
        assert!(positions.arrived("unknown", 0, 3), "a partition not followed is not ours to judge");
    }

    #[test]
    fn a_line_cuts_the_payload_and_marks_missing_fields() {
        let seen = Seen {
            time: DateTime::UNIX_EPOCH,
            topic: "user.created".into(),
            partition: 0,
            offset: 7,
            key: Some("k".into()),
            event_type: None,
            event_id: Some("e".into()),
            trace_id: None,
            request_id: Some("r".into()),
            dlq_error: None,
            payload: "é".repeat(10),
        };
        let line = seen.line(4);
        assert!(line.starts_with("00:00:00.000 user.created"), "{line}");
        assert!(line.contains("key=k type=- id=e trace=- request=r"), "{line}");
        assert!(line.ends_with(" éééé…"), "{line}");
    }
}
