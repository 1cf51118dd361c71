//! Publishing events: JSON body, CloudEvents headers, trace context, and a wait
//! for the broker's acknowledgement.
//!
//! The producer is idempotent (acks=all, `enable.idempotence`): the broker writes each
//! message once and, within a partition, in the order it was handed over, even with
//! several requests in flight and retries after a lost connection. So callers may hand
//! over many messages before the first acknowledgement ([`EventPublisher::dispatch`])
//! without giving up per-key order.

use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use tracing::{Instrument, field};
use uuid::Uuid;

use super::client::base_config;
use super::headers::{self, header};
use super::propagation;
use crate::configuration::KafkaSettings;
use contracts::events::Event;
use platform::http::RequestId;

/// A publish the broker did not acknowledge in time.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The event could not be serialised (a bug, not an outage).
    #[error("cannot serialise event for {topic}")]
    Serialise {
        /// Destination topic.
        topic: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The broker refused the message or did not acknowledge it in time.
    #[error("broker did not acknowledge the message on {topic}")]
    Broker {
        /// Destination topic.
        topic: String,
        /// The client's error.
        #[source]
        source: KafkaError,
    },
}

/// A serialised event and the metadata its message carries.
#[derive(Debug, Clone)]
pub struct OutgoingEvent<'a> {
    /// Topic name without the deployment's prefix.
    pub topic_base: &'a str,
    /// CloudEvents type.
    pub event_type: &'a str,
    /// CloudEvents id; consumers deduplicate on it.
    pub event_id: Uuid,
    /// Partitioning key (the user id).
    pub key: &'a str,
    /// JSON body.
    pub payload: &'a [u8],
    /// When the event happened.
    pub time: DateTime<Utc>,
    /// The request that caused it.
    pub request_id: &'a str,
    /// The trace context it continues, when not the current span's.
    pub parent: Option<opentelemetry::Context>,
}

/// A message handed to the producer; resolves once the broker acknowledged it (or the
/// producer gave up on it).
pub type Acknowledgement = std::pin::Pin<Box<dyn Future<Output = Result<(), PublishError>> + Send>>;

/// Publishes events and dead letters for one service. Cheap to clone.
#[derive(Clone)]
pub struct EventPublisher {
    /// The producer in use and when it started; replaced after a fatal error or a timeout
    /// (see [`EventPublisher::renew_after`]).
    session: Arc<RwLock<(FutureProducer, Instant)>>,
    config: Arc<ClientConfig>,
    settings: Arc<KafkaSettings>,
}

impl EventPublisher {
    /// Creates the producer; it connects lazily. A message the broker has not acknowledged
    /// within `KAFKA_PRODUCE_TIMEOUT_MS` fails, so a handler can retry or report it.
    pub fn new(settings: &KafkaSettings) -> anyhow::Result<Self> {
        Self::with_timeout(settings, settings.produce_timeout)
    }

    fn with_timeout(settings: &KafkaSettings, timeout: Duration) -> anyhow::Result<Self> {
        let mut config = base_config(settings);
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            // The most the idempotent producer allows while still keeping order.
            .set("max.in.flight.requests.per.connection", "5")
            // No lingering: with requests in flight, what is handed over meanwhile goes out
            // together in the next request anyway, so batching costs no latency.
            .set("linger.ms", "0")
            .set("message.timeout.ms", timeout.as_millis().to_string())
            // A message for a topic the cluster lacks waits until the topic appears (the
            // keeper recreates it); librdkafka would look again only every 5 minutes.
            .set("topic.metadata.refresh.interval.ms", settings.topic_check_interval.as_millis().to_string());
        let producer: FutureProducer = config.create().context("cannot create Kafka producer")?;
        Ok(Self {
            session: Arc::new(RwLock::new((producer, Instant::now()))),
            config: Arc::new(config),
            settings: Arc::new(settings.clone()),
        })
    }

    /// The producer in use (readiness checks ask it for metadata).
    pub fn producer(&self) -> FutureProducer {
        self.session.read().unwrap_or_else(PoisonError::into_inner).0.clone()
    }

    /// Replaces the producer after a send failed with `error`, when that can help:
    /// - after a fatal error: an idempotent producer whose state the broker no longer knows
    ///   (a broker back on an empty store answers `UNKNOWN_PRODUCER_ID`) refuses every
    ///   message from then on, and librdkafka's remedy is a new producer;
    /// - after a timeout, at most once per `KAFKA_PRODUCE_TIMEOUT_MS`: a producer whose
    ///   topic was deleted and recreated keeps sending with sequence numbers the new topic
    ///   never saw, and the broker refuses them until a new producer id starts afresh.
    ///
    /// Messages the old producer still held fail and are sent again by their callers.
    fn renew_after(&self, failed: &FutureProducer, error: &KafkaError) {
        let fatal = failed.client().fatal_error();
        let timed_out = matches!(error, KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut));
        if fatal.is_none() && !timed_out {
            return;
        }
        let mut session = self.session.write().unwrap_or_else(PoisonError::into_inner);
        // Whoever notices first renews it; the others find a new one in its place.
        let stale = if fatal.is_some() {
            session.0.client().fatal_error().is_some()
        } else {
            session.1.elapsed() >= self.settings.produce_timeout
        };
        if stale {
            tracing::warn!(?fatal, %error, "the producer cannot go on; a new one takes its place");
            self.replace(&mut session);
        }
    }

    /// Starts a new producer session: what the old producer still holds fails, and the
    /// broker sees a new producer id, so nothing of the old session can land after what
    /// the new one sends. The outbox relay renews after a batch with a failure, so that a
    /// key's rows sent again never follow a later row of the old session.
    pub(crate) fn renew(&self) {
        self.replace(&mut self.session.write().unwrap_or_else(PoisonError::into_inner));
    }

    fn replace(&self, session: &mut (FutureProducer, Instant)) {
        match self.config.create::<FutureProducer>() {
            Ok(fresh) => {
                metrics::counter!("kafka_producer_renewals_total").increment(1);
                // Dropping the old one purges what it still queues; those sends fail.
                *session = (fresh, Instant::now());
            }
            Err(error) => tracing::warn!(%error, "cannot create a new producer; trying again at the next send"),
        }
    }

    /// Publishes `event` to its topic keyed by its user id under a fresh event id, and
    /// returns the id once the broker acknowledged it.
    pub async fn publish<E: Event>(&self, event: &E, request_id: &RequestId) -> Result<Uuid, PublishError> {
        self.publish_with_id(event, Uuid::new_v4(), request_id).await
    }

    /// Publishes `event` under a given event id: a handler that derives the id from its input
    /// publishes the same event however often the input is redelivered.
    pub async fn publish_with_id<E: Event>(
        &self,
        event: &E,
        event_id: Uuid,
        request_id: &RequestId,
    ) -> Result<Uuid, PublishError> {
        let payload = serde_json::to_vec(event)
            .map_err(|source| PublishError::Serialise { topic: self.settings.topic(E::TOPIC), source })?;
        let key = event.key().to_string();
        let outgoing = OutgoingEvent {
            topic_base: E::TOPIC,
            event_type: E::TYPE,
            event_id,
            key: &key,
            payload: &payload,
            time: Utc::now(),
            request_id: request_id.as_str(),
            parent: None,
        };
        self.dispatch(&outgoing)?.await?;
        Ok(event_id)
    }

    /// Hands a serialised event to the producer and returns at once; the returned future
    /// resolves with the broker's acknowledgement. Events dispatched one after another
    /// reach their partition in that order. An error here (the producer refused the
    /// message: too large, queue full) means nothing was handed over. Its producer span
    /// is a child of `parent` when given (an outbox row's stored context), else of the
    /// current span.
    pub fn dispatch(&self, event: &OutgoingEvent<'_>) -> Result<Acknowledgement, PublishError> {
        let topic = self.settings.topic(event.topic_base);
        let span = producer_span(&topic, event.key);
        if let Some(parent) = &event.parent {
            let _ = tracing_opentelemetry::OpenTelemetrySpanExt::set_parent(&span, parent.clone());
        }
        let id_text = event.event_id.to_string();
        let time = event.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let mut message_headers = OwnedHeaders::new()
            .insert(header(headers::CE_ID, &id_text))
            .insert(header(headers::CE_TYPE, event.event_type))
            .insert(header(headers::CE_SOURCE, &self.settings.client_id))
            .insert(header(headers::CE_TIME, &time))
            .insert(header(headers::CE_SPECVERSION, "1.0"))
            .insert(header(headers::CONTENT_TYPE, "application/json"))
            .insert(header(headers::REQUEST_ID, event.request_id));
        message_headers = propagation::inject_kafka(&span, message_headers);
        let acknowledgement = span.in_scope(|| self.hand_over(&topic, event.key, event.payload, message_headers))?;
        Ok(Box::pin(acknowledgement.instrument(span)))
    }

    /// Sends raw bytes (dead letters, replays) and waits for the acknowledgement.
    pub async fn send(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        message_headers: OwnedHeaders,
    ) -> Result<(), PublishError> {
        self.hand_over(topic, key, payload, message_headers)?.await
    }

    /// Enqueues one message in the producer; the future resolves with its acknowledgement
    /// and records the outcome in the current span and the metrics.
    fn hand_over(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        message_headers: OwnedHeaders,
    ) -> Result<impl Future<Output = Result<(), PublishError>> + Send + 'static, PublishError> {
        let started = Instant::now();
        let record = FutureRecord::to(topic).key(key).payload(payload).headers(message_headers);
        let topic = topic.to_owned();
        let producer = self.producer();
        let delivery = match producer.send_result(record) {
            Ok(delivery) => delivery,
            Err((source, _record)) => {
                self.renew_after(&producer, &source);
                return Err(failed(topic, started, source));
            }
        };
        let publisher = self.clone();
        Ok(async move {
            match delivery.await {
                Ok(Ok(delivery)) => {
                    let span = tracing::Span::current();
                    span.record("messaging.destination.partition.id", delivery.partition.to_string());
                    span.record("messaging.kafka.offset", delivery.offset);
                    record_outcome(&topic, started, "acked");
                    Ok(())
                }
                Ok(Err((source, _message))) => {
                    publisher.renew_after(&producer, &source);
                    Err(failed(topic, started, source))
                }
                Err(_canceled) => Err(failed(topic, started, KafkaError::Canceled)),
            }
        })
    }
}

/// Counts a send and its duration by outcome (`acked` or `failed`).
fn record_outcome(topic: &str, started: Instant, outcome: &'static str) {
    metrics::counter!("kafka_messages_produced_total", "topic" => topic.to_owned(), "outcome" => outcome).increment(1);
    metrics::histogram!("kafka_produce_duration_seconds", "topic" => topic.to_owned())
        .record(started.elapsed().as_secs_f64());
}

/// Counts a failed send and marks the current span; the error to return.
fn failed(topic: String, started: Instant, source: KafkaError) -> PublishError {
    record_outcome(&topic, started, "failed");
    tracing::Span::current().record("otel.status_code", "ERROR");
    PublishError::Broker { topic, source }
}

fn producer_span(topic: &str, key: &str) -> tracing::Span {
    tracing::info_span!(
        "kafka.publish",
        otel.name = %format_args!("send {topic}"),
        otel.kind = "producer",
        otel.status_code = field::Empty,
        messaging.system = "kafka",
        messaging.operation.type = "send",
        messaging.operation.name = "send",
        messaging.destination.name = topic,
        messaging.kafka.message.key = key,
        messaging.destination.partition.id = field::Empty,
        messaging.kafka.offset = field::Empty,
    )
}
