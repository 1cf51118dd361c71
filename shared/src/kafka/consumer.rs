//! The consumer loop: typed handlers per topic, bounded retries with backoff,
//! dead letters, and offsets stored only after a message was dealt with.
//!
//! Offsets are *stored* (not committed) after each message that was handled or
//! dead-lettered; librdkafka's auto-commit then commits stored offsets only. A
//! crash therefore redelivers at most the messages in flight, never skips one,
//! which is why handlers must be idempotent.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::{Message, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, field};
use uuid::Uuid;

use super::backoff::backoff;
use super::group::GroupContext;
use super::producer::header;
use super::{EventPublisher, base_config, headers};
use crate::configuration::KafkaSettings;
use crate::events::{Event, dead_letter_topic};
use crate::health::{ConsumerStatus, Readiness};
use crate::http::RequestId;
use crate::telemetry::propagation;

/// Why a handler could not deal with a message.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Might work on a later attempt (database or broker hiccup).
    #[error(transparent)]
    Transient(anyhow::Error),
    /// Will never work (unparseable or invalid message): dead-letter it at once.
    #[error(transparent)]
    Permanent(anyhow::Error),
}

impl From<anyhow::Error> for HandlerError {
    fn from(error: anyhow::Error) -> Self {
        Self::Transient(error)
    }
}

/// What a handler knows about the message besides its event.
#[derive(Debug, Clone)]
pub struct EventMeta {
    /// The event's id (`ce_id`); a message without one gets a fresh id.
    pub event_id: Uuid,
    /// The request that caused the event, carried on to what the handler publishes.
    pub request_id: RequestId,
    /// When the event was published, if the message says.
    pub published_at: Option<DateTime<Utc>>,
    /// Where the message was read.
    pub topic: String,
    /// The consumer group that read it.
    pub group: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

/// A parsed event with its metadata.
#[derive(Debug, Clone)]
pub struct Incoming<E> {
    /// The event.
    pub event: E,
    /// Its metadata.
    pub meta: EventMeta,
}

/// Messages a partition's worker may have queued before its partition is paused.
const PARTITION_QUEUE: usize = 64;

type ErasedHandler = Arc<dyn Fn(Vec<u8>, EventMeta) -> BoxFuture<'static, Result<(), HandlerError>> + Send + Sync>;

/// Registers one handler per event type, then builds the consumer.
pub struct ConsumerBuilder {
    settings: KafkaSettings,
    group: String,
    publisher: EventPublisher,
    handlers: HashMap<String, ErasedHandler>,
    dependencies: Option<Readiness>,
}

impl ConsumerBuilder {
    /// A consumer in `group_base` (prefixed like topics), dead-lettering through `publisher`.
    pub fn new(settings: &KafkaSettings, group_base: &str, publisher: EventPublisher) -> Self {
        Self {
            settings: settings.clone(),
            group: settings.group(group_base),
            publisher,
            handlers: HashMap::new(),
            dependencies: None,
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

    /// Checks the handlers' own dependencies (their database). While one is down, a failing
    /// message waits for it instead of spending its retries: an outage pauses consumption
    /// rather than filling the dead-letter topic.
    #[must_use]
    pub fn pause_while_down(mut self, dependencies: Readiness) -> Self {
        self.dependencies = Some(dependencies);
        self
    }

    /// The full consumer group name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Creates the consumer and subscribes it to every registered topic.
    pub fn build(self, status: ConsumerStatus) -> anyhow::Result<EventConsumer> {
        let context = GroupContext { status: status.clone(), group: self.group.clone() };
        let mut config = base_config(&self.settings);
        if let Some(instance) = &self.settings.group_instance_id {
            config.set("group.instance.id", instance);
        }
        let consumer: StreamConsumer<GroupContext> = config
            .set("group.id", &self.group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", self.settings.fetch_wait_max_ms.to_string())
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("statistics.interval.ms", "5000")
            .create_with_context(context)
            .context("cannot create Kafka consumer")?;
        let topics: Vec<&str> = self.handlers.keys().map(String::as_str).collect();
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
        Ok(EventConsumer {
            consumer,
            group: self.group,
            handlers: self.handlers,
            publisher: self.publisher,
            settings: self.settings,
            status,
            dependencies: self.dependencies,
        })
    }
}

/// What became of one message.
enum Outcome {
    Handled,
    DeadLettered,
    /// Shutdown came first: the offset must not be stored, the message will be redelivered.
    Interrupted,
}

/// A subscribed consumer, ready to run.
pub struct EventConsumer {
    consumer: StreamConsumer<GroupContext>,
    group: String,
    handlers: HashMap<String, ErasedHandler>,
    publisher: EventPublisher,
    settings: KafkaSettings,
    status: ConsumerStatus,
    dependencies: Option<Readiness>,
}

impl EventConsumer {
    /// Consumes until `shutdown` is cancelled, then commits and leaves the group.
    ///
    /// Each partition gets a worker task of its own, so a message being retried holds
    /// back only the messages behind it on its partition. A worker that falls behind
    /// has its partition paused instead of buffering without bound.
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut workers: HashMap<(String, i32), mpsc::Sender<OwnedMessage>> = HashMap::new();
        let mut backlog: HashMap<(String, i32), VecDeque<OwnedMessage>> = HashMap::new();
        let mut tasks = tokio::task::JoinSet::new();
        let mut flush = tokio::time::interval(Duration::from_millis(20));
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => break,
                _ = flush.tick(), if !backlog.is_empty() => {
                    this.flush_backlog(&workers, &mut backlog);
                    continue;
                }
                message = this.consumer.recv() => message,
            };
            let message = match message {
                Ok(message) => message.detach(),
                Err(error) => {
                    tracing::warn!(%error, group = this.group, "consumer error");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    }
                }
            };
            let key = (message.topic().to_owned(), message.partition());
            if let Some(queued) = backlog.get_mut(&key) {
                queued.push_back(message);
                continue;
            }
            let worker = workers.entry(key.clone()).or_insert_with(|| {
                let (sender, receiver) = mpsc::channel(PARTITION_QUEUE);
                tasks.spawn(Arc::clone(&this).partition_worker(receiver, shutdown.clone()));
                sender
            });
            if let Err(mpsc::error::TrySendError::Full(message)) = worker.try_send(message) {
                this.set_paused(&key, true);
                backlog.entry(key).or_default().push_back(message);
            }
        }
        drop(workers);
        while tasks.join_next().await.is_some() {}
        this.status.set_subscribed(false);
        if let Err(error) = this.consumer.commit_consumer_state(CommitMode::Sync)
            && !matches!(error, rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset))
        {
            tracing::warn!(%error, "final offset commit failed");
        }
        tracing::info!(group = this.group, "consumer stopped");
    }

    /// Hands queued messages to workers that have room again, resuming their partitions.
    fn flush_backlog(
        &self,
        workers: &HashMap<(String, i32), mpsc::Sender<OwnedMessage>>,
        backlog: &mut HashMap<(String, i32), VecDeque<OwnedMessage>>,
    ) {
        backlog.retain(|key, queued| {
            let Some(worker) = workers.get(key) else { return false };
            while let Some(message) = queued.pop_front() {
                if let Err(mpsc::error::TrySendError::Full(message)) = worker.try_send(message) {
                    queued.push_front(message);
                    return true;
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

    /// Handles one partition's messages in order, storing each offset once dealt with.
    async fn partition_worker(
        self: Arc<Self>,
        mut messages: mpsc::Receiver<OwnedMessage>,
        shutdown: CancellationToken,
    ) {
        while let Some(message) = messages.recv().await {
            if shutdown.is_cancelled() {
                return; // not stored: the next owner of the partition gets it again
            }
            match self.process(&message, &shutdown).await {
                Outcome::Handled | Outcome::DeadLettered => {
                    if let Err(error) =
                        self.consumer.store_offset(message.topic(), message.partition(), message.offset())
                    {
                        // After a rebalance took the partition away: its new owner redelivers, handlers are idempotent.
                        tracing::debug!(%error, "cannot store offset; the message may be redelivered");
                    }
                }
                Outcome::Interrupted => return,
            }
        }
    }

    async fn process(&self, message: &OwnedMessage, shutdown: &CancellationToken) -> Outcome {
        let topic = message.topic().to_owned();
        let message_headers = message.headers();
        let meta = EventMeta {
            event_id: headers::get(message_headers, headers::CE_ID)
                .and_then(|id| Uuid::parse_str(id).ok())
                .unwrap_or_else(Uuid::new_v4),
            request_id: RequestId::parse_or_generate(headers::get(message_headers, headers::REQUEST_ID)),
            published_at: headers::event_time(message_headers),
            topic: topic.clone(),
            group: self.group.clone(),
            partition: message.partition(),
            offset: message.offset(),
        };
        let key = message.key().and_then(|k| std::str::from_utf8(k).ok()).unwrap_or_default();
        let span = tracing::info_span!(
            "kafka.process",
            otel.name = format!("process {topic}"),
            otel.kind = "consumer",
            otel.status_code = field::Empty,
            messaging.system = "kafka",
            messaging.operation.type = "process",
            messaging.operation.name = "process",
            messaging.destination.name = topic,
            messaging.destination.partition.id = message.partition().to_string(),
            messaging.kafka.offset = message.offset(),
            messaging.kafka.message.key = key,
            messaging.consumer.group.name = self.group,
            messaging.message.id = %meta.event_id,
            request_id = %meta.request_id,
        );
        propagation::set_parent_from_kafka(&span, message_headers);
        self.process_in_span(message, meta, shutdown).instrument(span).await
    }

    async fn process_in_span(&self, message: &OwnedMessage, meta: EventMeta, shutdown: &CancellationToken) -> Outcome {
        let topic = meta.topic.clone();
        let Some(handler) = self.handlers.get(&topic) else {
            tracing::warn!(topic, "no handler for topic; skipping");
            return Outcome::Handled;
        };
        let payload = message.payload().unwrap_or_default().to_vec();
        let max_attempts = self.settings.handler_max_attempts;
        let mut first_failure: Option<DateTime<Utc>> = None;
        let mut attempt = 1;
        let error = loop {
            let started = Instant::now();
            let result = handler(payload.clone(), meta.clone()).await;
            metrics::histogram!("kafka_handler_duration_seconds", "topic" => topic.clone())
                .record(started.elapsed().as_secs_f64());
            match result {
                Ok(()) => {
                    metrics::counter!("kafka_messages_consumed_total", "topic" => topic.clone(), "group" => self.group.clone())
                        .increment(1);
                    if let Some(published_at) = meta.published_at {
                        let latency = (Utc::now() - published_at).to_std().unwrap_or_default();
                        metrics::histogram!("event_handling_latency_seconds", "topic" => topic.clone())
                            .record(latency.as_secs_f64());
                    }
                    return Outcome::Handled;
                }
                Err(error) => {
                    metrics::counter!("kafka_handler_failures_total", "topic" => topic.clone()).increment(1);
                    first_failure.get_or_insert_with(Utc::now);
                    match error {
                        HandlerError::Transient(error) if self.dependency_down().await => {
                            tracing::warn!(
                                error = format!("{error:#}"),
                                "a dependency is down; pausing until it is back"
                            );
                            if !self.wait_for_dependencies(shutdown).await {
                                return Outcome::Interrupted;
                            }
                            tracing::info!("dependencies are back; resuming");
                        }
                        HandlerError::Transient(error) if attempt < max_attempts => {
                            let delay = backoff(self.settings.retry_base, attempt);
                            tracing::warn!(
                                error = format!("{error:#}"),
                                attempt,
                                delay_ms = delay.as_millis() as u64,
                                "handler failed; retrying"
                            );
                            metrics::counter!("kafka_handler_retries_total", "topic" => topic.clone()).increment(1);
                            tokio::select! {
                                () = shutdown.cancelled() => return Outcome::Interrupted,
                                () = tokio::time::sleep(delay) => {},
                            }
                            attempt += 1;
                        }
                        HandlerError::Transient(error) | HandlerError::Permanent(error) => break error,
                    }
                }
            }
        };
        tracing::Span::current().record("otel.status_code", "ERROR");
        self.dead_letter(message, &meta, &error, attempt, first_failure.unwrap_or_else(Utc::now), shutdown).await
    }

    async fn dependency_down(&self) -> bool {
        match &self.dependencies {
            Some(dependencies) => !dependencies.evaluate().await.0,
            None => false,
        }
    }

    /// Polls the dependencies until they are all up; false if shutdown came first.
    async fn wait_for_dependencies(&self, shutdown: &CancellationToken) -> bool {
        let paused = metrics::gauge!("kafka_consumer_paused", "group" => self.group.clone());
        paused.set(1.0);
        let mut back = true;
        while self.dependency_down().await {
            tokio::select! {
                () = shutdown.cancelled() => { back = false; break; }
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        paused.set(0.0);
        back
    }

    /// Sends the message unchanged to `<topic>.dlq`, with headers saying where it came from and why.
    /// Retries until the dead-letter topic takes it: the offset must not move past a message that
    /// is neither handled nor parked.
    async fn dead_letter(
        &self,
        message: &OwnedMessage,
        meta: &EventMeta,
        error: &anyhow::Error,
        attempts: u32,
        first_failure: DateTime<Utc>,
        shutdown: &CancellationToken,
    ) -> Outcome {
        let dlq = dead_letter_topic(&meta.topic);
        let reason = format!("{error:#}");
        tracing::error!(error = reason, attempts, dead_letter_topic = dlq, "message dead-lettered");
        metrics::counter!("kafka_dead_letters_total", "topic" => meta.topic.clone()).increment(1);
        let key = message.key().and_then(|k| std::str::from_utf8(k).ok()).unwrap_or_default().to_owned();
        let payload = message.payload().unwrap_or_default();
        let mut retry = 0;
        loop {
            let mut dlq_headers = OwnedHeaders::new();
            if let Some(original) = message.headers() {
                for h in original.iter() {
                    dlq_headers = dlq_headers.insert(Header { key: h.key, value: h.value });
                }
            }
            let partition = meta.partition.to_string();
            let offset = meta.offset.to_string();
            let attempts_text = attempts.to_string();
            let first = first_failure.to_rfc3339();
            dlq_headers = dlq_headers
                .insert(header(headers::DLQ_ORIGINAL_TOPIC, &meta.topic))
                .insert(header(headers::DLQ_ORIGINAL_PARTITION, &partition))
                .insert(header(headers::DLQ_ORIGINAL_OFFSET, &offset))
                .insert(header(headers::DLQ_ERROR, &reason))
                .insert(header(headers::DLQ_ATTEMPTS, &attempts_text))
                .insert(header(headers::DLQ_FIRST_FAILURE, &first));
            match self.publisher.send(&dlq, &key, payload, dlq_headers).await {
                Ok(()) => return Outcome::DeadLettered,
                Err(error) => {
                    retry += 1;
                    let delay = backoff(self.settings.retry_base, retry.min(10));
                    tracing::warn!(%error, retry, "cannot publish dead letter; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return Outcome::Interrupted,
                        () = tokio::time::sleep(delay) => {},
                    }
                }
            }
        }
    }
}
