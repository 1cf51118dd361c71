//! What happens to one message: its span (continuing the producer's trace), the
//! handler, bounded retries with backoff, a pause while the handlers' database is
//! down, and the dead-letter topic when nothing else works.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::Message;
use rdkafka::message::OwnedMessage;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, field};
use uuid::Uuid;

use super::backoff::backoff;
use super::handler::{ErasedHandler, EventMeta, HandlerError, LaneOf};
use super::headers::header;
use super::producer::EventPublisher;
use super::{headers, propagation};
use crate::configuration::KafkaSettings;
use contracts::events::dead_letter_topic;
use platform::health::Readiness;
use platform::http::RequestId;

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Handled,
    DeadLettered,
    /// Shutdown or revocation came first: the offset must not be stored, the message will be redelivered.
    Interrupted,
}

/// Everything needed to handle a message, shared by every partition worker of a consumer.
pub(super) struct Handling {
    pub(super) group: String,
    pub(super) handlers: HashMap<String, ErasedHandler>,
    /// Topics whose events are ordered by a lane of their own rather than the message key.
    pub(super) lanes: HashMap<String, LaneOf>,
    pub(super) publisher: EventPublisher,
    pub(super) settings: KafkaSettings,
    pub(super) dependencies: Option<Readiness>,
}

impl Handling {
    /// The lane `message` runs in: its topic's lane of the payload when the consumer was
    /// given one, else the message key.
    pub(super) fn lane_of(&self, message: &OwnedMessage) -> Vec<u8> {
        let key = || message.key().unwrap_or_default().to_vec();
        match self.lanes.get(message.topic()) {
            Some(lane_of) => message.payload().and_then(|payload| lane_of(payload)).unwrap_or_else(key),
            None => key(),
        }
    }

    /// Handles `message` in a consumer span; `shutdown` cuts retries and waits short.
    pub(super) async fn process(&self, message: &OwnedMessage, shutdown: &CancellationToken) -> Outcome {
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
            otel.name = %format_args!("process {topic}"),
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
                        // Not the message's fault: retried without spending an attempt.
                        HandlerError::Unavailable(error) => {
                            if !self.retry(&topic, &error, attempt.min(6), shutdown).await {
                                return Outcome::Interrupted;
                            }
                        }
                        HandlerError::Transient(error) if attempt < max_attempts => {
                            if !self.retry(&topic, &error, attempt, shutdown).await {
                                return Outcome::Interrupted;
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

    /// Logs and counts a retry, then waits the backoff of its `step`; false when shutdown
    /// came first.
    async fn retry(&self, topic: &str, error: &anyhow::Error, step: u32, shutdown: &CancellationToken) -> bool {
        let delay = backoff(self.settings.retry_base, step);
        let delay_ms = delay.as_millis() as u64;
        tracing::warn!(error = format!("{error:#}"), step, delay_ms, "handler failed; retrying");
        metrics::counter!("kafka_handler_retries_total", "topic" => topic.to_owned()).increment(1);
        pause(delay, shutdown).await
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
            if !pause(Duration::from_millis(500), shutdown).await {
                back = false;
                break;
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
        let dlq_headers = message
            .headers()
            .cloned()
            .unwrap_or_default()
            .insert(header(headers::DLQ_ORIGINAL_TOPIC, &meta.topic))
            .insert(header(headers::DLQ_ORIGINAL_PARTITION, &meta.partition.to_string()))
            .insert(header(headers::DLQ_ORIGINAL_OFFSET, &meta.offset.to_string()))
            .insert(header(headers::DLQ_ERROR, &reason))
            .insert(header(headers::DLQ_ATTEMPTS, &attempts.to_string()))
            .insert(header(headers::DLQ_FIRST_FAILURE, &first_failure.to_rfc3339()));
        let mut retry = 0;
        loop {
            match self.publisher.send(&dlq, &key, payload, dlq_headers.clone()).await {
                Ok(()) => return Outcome::DeadLettered,
                Err(error) => {
                    retry += 1;
                    let delay = backoff(self.settings.retry_base, retry.min(10));
                    tracing::warn!(%error, retry, "cannot publish dead letter; retrying");
                    if !pause(delay, shutdown).await {
                        return Outcome::Interrupted;
                    }
                }
            }
        }
    }
}

/// Waits `delay`; false when shutdown (or revocation) came first.
async fn pause(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = tokio::time::sleep(delay) => true,
    }
}
