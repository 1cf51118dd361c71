//! The consumer: typed handlers per topic, and the loop that reads messages and
//! hands each partition's to its worker.
//!
//! Workers (see [`super::partition`]) handle different keys concurrently and each key
//! in order, and *store* (not commit) the lowest unfinished offset; librdkafka's
//! auto-commit then commits stored offsets only. A crash therefore redelivers at most
//! the messages in flight, never skips one, which is why handlers must be idempotent.
//! What happens to a single message (retries, dead letters) is [`super::handling`].

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::Consumer;
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::client::base_config;
use super::group::{GroupConsumer, GroupContext, commit_now, store_position};
use super::handler::{ErasedHandler, EventMeta, HandlerError, Incoming, LaneOf};
use super::handling::Handling;
use super::partition::PartitionWorker;
use super::producer::EventPublisher;
use super::resets::LogResets;
use super::rewind::{Found, Rewinds, seek_to_beginning};
use super::workers::Workers;
use crate::configuration::KafkaSettings;
use crate::health::{ConsumerStatus, subscribed};
use contracts::events::Event;
use platform::health::Readiness;

/// Messages a partition's worker may have queued before its partition is paused.
const PARTITION_QUEUE: usize = 64;

/// What the consumer loop holds per partition: the channel to its worker, and the
/// messages held back while that worker is full (its partition paused meanwhile).
#[derive(Default)]
struct Flow {
    senders: HashMap<(String, i32), mpsc::Sender<OwnedMessage>>,
    backlog: HashMap<(String, i32), VecDeque<OwnedMessage>>,
}

/// Registers one handler per event type, then builds the consumer.
pub struct ConsumerBuilder {
    settings: KafkaSettings,
    group: String,
    publisher: EventPublisher,
    handlers: HashMap<String, ErasedHandler>,
    lanes: HashMap<String, LaneOf>,
    dependencies: Option<Readiness>,
    resets: Option<LogResets>,
}

impl ConsumerBuilder {
    /// A consumer in `group_base` (prefixed like topics), dead-lettering through `publisher`.
    pub fn new(settings: &KafkaSettings, group_base: &str, publisher: EventPublisher) -> Self {
        Self {
            settings: settings.clone(),
            group: settings.group(group_base),
            publisher,
            handlers: HashMap::new(),
            lanes: HashMap::new(),
            dependencies: None,
            resets: None,
        }
    }

    /// Handles events of type `E` with `handler`.
    #[must_use]
    pub fn on<E, H, Fut>(mut self, handler: H) -> Self
    where
        E: Event,
        H: Fn(Incoming<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: ErasedHandler = Arc::new(move |payload: Vec<u8>, meta: EventMeta| {
            let handler = Arc::clone(&handler);
            Box::pin(async move {
                let event: E = serde_json::from_slice(&payload)
                    .with_context(|| format!("payload is not a valid {}", E::TYPE))
                    .map_err(HandlerError::Permanent)?;
                handler(Incoming { event, meta }).await
            })
        });
        self.handlers.insert(self.settings.topic(E::TOPIC), erased);
        self
    }

    /// Orders events of type `E` by `lane(event)` instead of their message key: events of one
    /// lane are handled one after another, different lanes concurrently. For events whose
    /// handling depends on no earlier event of the same key, only on earlier events of the
    /// same lane (a payment depends on its order, not on the user's other orders).
    #[must_use]
    pub fn ordered_by<E: Event>(mut self, lane: fn(&E) -> Uuid) -> Self {
        let lane_of: LaneOf = Arc::new(move |payload: &[u8]| {
            serde_json::from_slice::<E>(payload).ok().map(|event| lane(&event).as_bytes().to_vec())
        });
        self.lanes.insert(self.settings.topic(E::TOPIC), lane_of);
        self
    }

    /// Checks the handlers' own dependencies (their database). While one is down, a failing
    /// message waits for it instead of spending its retries: an outage pauses consumption
    /// rather than filling the dead-letter topic.
    #[must_use]
    pub fn pause_while_down(mut self, dependencies: Readiness) -> Self {
        self.dependencies = Some(dependencies);
        self
    }

    /// Reads a partition again from the beginning when `resets` says its topic's log
    /// restarted (see [`super::TopicKeeper::log_resets`]): otherwise the consumer would wait
    /// at its old position in the new log and skip every message below it.
    #[must_use]
    pub fn rewind_on(mut self, resets: LogResets) -> Self {
        self.resets = Some(resets);
        self
    }

    /// The full consumer group name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Creates the consumer and subscribes it to every registered topic.
    pub fn build(self, status: ConsumerStatus) -> anyhow::Result<EventConsumer> {
        let workers = Workers::default();
        let context = GroupContext { status: status.clone(), group: self.group.clone(), workers: workers.clone() };
        let mut config = base_config(&self.settings);
        if let Some(instance) = &self.settings.group_instance_id {
            config.set("group.instance.id", instance);
        }
        let consumer: GroupConsumer = config
            .set("group.id", &self.group)
            .set("enable.auto.commit", "true")
            // The committed position trails the stored one by at most this: a crash redelivers what
            // was in flight and what finished since. Shorter multiplies offset commits, each a
            // write to the broker's store.
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", self.settings.fetch_wait_max_ms.to_string())
            // See `KafkaSettings::fetch_max_bytes`. librdkafka raises fetch.max.bytes to at
            // least message.max.bytes (1 MB by default), so both are set.
            .set("fetch.max.bytes", self.settings.fetch_max_bytes.to_string())
            .set("message.max.bytes", self.settings.fetch_max_bytes.to_string())
            .set("max.partition.fetch.bytes", self.settings.fetch_max_bytes.to_string())
            // Apache Kafka's default since 3.0: a broker slow to answer heartbeats under load
            // must not cost the group its assignment.
            .set("session.timeout.ms", self.settings.session_timeout.as_millis().to_string())
            // Frequent: a member learns of a rebalance in a heartbeat answer, so the interval
            // sets how long a start or a scale-out waits for its partitions.
            .set("heartbeat.interval.ms", "1000")
            .set("statistics.interval.ms", "5000")
            // A topic deleted and recreated (see `TopicKeeper`) is noticed at the next refresh;
            // librdkafka's 5 min default would leave the group without partitions that long.
            .set("topic.metadata.refresh.interval.ms", self.settings.topic_check_interval.as_millis().to_string())
            // librdkafka prefetches up to 64 MiB by default; the workers bound what is in
            // flight, so a few MiB ahead keeps them busy without inflating the footprint.
            .set("queued.max.messages.kbytes", "4096")
            // Small: pausing a partition discards what was prefetched for it, to be fetched again.
            .set("queued.min.messages", "200")
            .create_with_context(context)
            .context("cannot create Kafka consumer")?;
        // Sorted: the subscription is part of the member's join metadata, and a static member
        // rejoining with the same metadata gets its assignment back without a rebalance.
        let mut topics: Vec<&str> = self.handlers.keys().map(String::as_str).collect();
        topics.sort_unstable();
        // Series exist from the start, so dashboards and alerts read 0 rather than "no data".
        for topic in &topics {
            let topic = (*topic).to_owned();
            metrics::counter!("kafka_messages_consumed_total", "topic" => topic.clone(), "group" => self.group.clone())
                .absolute(0);
            metrics::counter!("kafka_handler_failures_total", "topic" => topic.clone()).absolute(0);
            metrics::counter!("kafka_handler_retries_total", "topic" => topic.clone()).absolute(0);
            metrics::counter!("kafka_dead_letters_total", "topic" => topic).absolute(0);
        }
        metrics::gauge!("kafka_consumer_paused", "group" => self.group.clone()).set(0.0);
        consumer.subscribe(&topics).with_context(|| format!("cannot subscribe to {topics:?}"))?;
        tracing::info!(group = self.group, ?topics, "consumer subscribed");
        let handling = Handling {
            group: self.group,
            handlers: self.handlers,
            lanes: self.lanes,
            publisher: self.publisher,
            settings: self.settings,
            dependencies: self.dependencies,
        };
        Ok(EventConsumer {
            consumer: Arc::new(consumer),
            handling: Arc::new(handling),
            workers,
            status,
            resets: self.resets,
        })
    }
}

/// A subscribed consumer, ready to run.
pub struct EventConsumer {
    consumer: Arc<GroupConsumer>,
    handling: Arc<Handling>,
    workers: Workers,
    status: ConsumerStatus,
    resets: Option<LogResets>,
}

impl EventConsumer {
    /// Consumes until `shutdown` is cancelled, then commits and leaves the group.
    ///
    /// Each partition gets a worker task of its own (see [`super::partition`]). A worker
    /// at its in-flight limit stops taking messages; the loop then pauses its partition
    /// and holds what librdkafka had already fetched until the worker has room.
    pub async fn run(mut self, shutdown: CancellationToken) {
        // The keeper's news of restarted logs (see [`super::rewind`]).
        let mut rewinds = Rewinds::new(self.resets.take());
        let mut flow = Flow::default();
        let mut tasks = tokio::task::JoinSet::new();
        let mut flush = tokio::time::interval(Duration::from_millis(20));
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => break,
                _ = flush.tick(), if !flow.backlog.is_empty() => {
                    self.flush_backlog(&mut flow);
                    continue;
                }
                topics = rewinds.next() => {
                    let due = rewinds.held_due(&self.consumer, &topics);
                    for (topic, partition) in self.rewind(due, &mut flow).await {
                        rewinds.done(&topic, partition);
                    }
                    continue;
                }
                message = self.consumer.recv() => message,
            };
            let message = match message {
                Ok(message) => message.detach(),
                Err(error) => {
                    tracing::warn!(%error, group = self.handling.group, "consumer error");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    }
                }
            };
            let key = (message.topic().to_owned(), message.partition());
            // A message from an old position in a restarted log: read the partition from its
            // beginning instead. One librdkafka cannot seek yet is handled as it is (handlers
            // are idempotent) and the rewind is tried again at the next tick.
            if rewinds.must_rewind(&key.0, key.1, message.offset()) {
                let moved = self.rewind(vec![(key.clone(), Offset::Offset(message.offset()))], &mut flow).await;
                if !moved.is_empty() {
                    rewinds.done(&key.0, key.1);
                    continue;
                }
            }
            if let Some(queued) = flow.backlog.get_mut(&key) {
                queued.push_back(message);
                continue;
            }
            let sender =
                flow.senders.entry(key.clone()).or_insert_with(|| self.start_worker(&key, &shutdown, &mut tasks));
            match sender.try_send(message) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(full)) => {
                    self.set_paused(&key, true);
                    flow.backlog.entry(key).or_default().push_back(full);
                }
                // A worker stopped by revocation: the partition came back, so start afresh
                // (a fresh channel has room).
                Err(mpsc::error::TrySendError::Closed(closed)) => {
                    self.workers.prune();
                    let fresh = self.start_worker(&key, &shutdown, &mut tasks);
                    if let Err(full) = fresh.try_send(closed) {
                        flow.backlog.entry(key.clone()).or_default().push_back(full.into_inner());
                    }
                    flow.senders.insert(key, fresh);
                }
            }
        }
        drop(flow);
        while tasks.join_next().await.is_some() {}
        self.status.set(subscribed(false));
        commit_now(self.consumer.as_ref(), "final offset commit");
        tracing::info!(group = self.handling.group, "consumer stopped");
    }

    fn start_worker(
        &self,
        (topic, partition): &(String, i32),
        shutdown: &CancellationToken,
        tasks: &mut tokio::task::JoinSet<()>,
    ) -> mpsc::Sender<OwnedMessage> {
        let (sender, receiver) = mpsc::channel(PARTITION_QUEUE);
        // A partition paused under an earlier assignment may come back paused: a fresh
        // worker starts with it flowing.
        self.set_paused(&(topic.clone(), *partition), false);
        let handle = self.workers.register((topic.clone(), *partition), shutdown);
        let worker = PartitionWorker {
            handling: Arc::clone(&self.handling),
            consumer: Arc::clone(&self.consumer),
            topic: topic.clone(),
            partition: *partition,
        };
        tasks.spawn(worker.run(receiver, handle));
        sender
    }

    /// Seeks each partition to the beginning. For each it moved: what was held back for it
    /// (read from the old log) is dropped, since librdkafka discards what it had fetched
    /// before the seek, and its worker is retired (see [`Workers::retire`]) and position 0
    /// stored, so that a revocation commits where the new log is read from. Returns the
    /// partitions it moved.
    async fn rewind(&self, found: Vec<Found>, flow: &mut Flow) -> Vec<(String, i32)> {
        if found.is_empty() {
            return Vec::new();
        }
        let moved = seek_to_beginning(Arc::clone(&self.consumer), self.handling.group.clone(), found).await;
        for key in &moved {
            flow.senders.remove(key);
            self.workers.retire(key);
            if let Err(error) = store_position(&self.consumer, &key.0, key.1, 0) {
                tracing::debug!(%error, topic = key.0, partition = key.1, "cannot store the rewound position");
            }
            if flow.backlog.remove(key).is_some() {
                self.set_paused(key, false);
            }
        }
        moved
    }

    /// Hands queued messages to workers that have room again, resuming their partitions.
    /// A queue whose worker was stopped (revoked partition) is dropped unstored.
    fn flush_backlog(&self, flow: &mut Flow) {
        let Flow { senders, backlog } = flow;
        backlog.retain(|key, queued| {
            let Some(sender) = senders.get(key) else { return false };
            while let Some(message) = queued.pop_front() {
                match sender.try_send(message) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(message)) => {
                        queued.push_front(message);
                        return true;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        senders.remove(key);
                        return false;
                    }
                }
            }
            self.set_paused(key, false);
            false
        });
    }

    fn set_paused(&self, (topic, partition): &(String, i32), paused: bool) {
        let mut list = TopicPartitionList::new();
        list.add_partition(topic, *partition);
        let result = if paused { self.consumer.pause(&list) } else { self.consumer.resume(&list) };
        if let Err(error) = result {
            tracing::warn!(%error, topic, partition, paused, "cannot change partition flow");
        }
    }
}
