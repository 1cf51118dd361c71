//! Publishing events: JSON body, CloudEvents headers, trace context, and a wait
//! for the broker's acknowledgement (acks=all, one request in flight).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use tracing::{Instrument, field};
use uuid::Uuid;

use super::propagation;
use super::{base_config, headers};
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

/// Publishes events and dead letters for one service. Cheap to clone.
#[derive(Clone)]
pub struct EventPublisher {
    producer: FutureProducer,
    settings: Arc<KafkaSettings>,
}

impl EventPublisher {
    /// Creates the producer; it connects lazily.
    pub fn new(settings: &KafkaSettings) -> anyhow::Result<Self> {
        let producer: FutureProducer = base_config(settings)
            .set("acks", "all")
            .set("enable.idempotence", settings.enable_idempotence.to_string())
            // One request in flight: a retried send cannot overtake the next one.
            .set("max.in.flight.requests.per.connection", "1")
            // No lingering: with one request in flight, messages sent meanwhile queue up and
            // go out together in the next request anyway, so batching costs no latency.
            .set("linger.ms", "0")
            .set("message.timeout.ms", settings.produce_timeout.as_millis().to_string())
            .create()
            .context("cannot create Kafka producer")?;
        Ok(Self { producer, settings: Arc::new(settings.clone()) })
    }

    /// The underlying producer (readiness checks ask it for metadata).
    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &KafkaSettings {
        &self.settings
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
        self.publish_outgoing(&outgoing).await?;
        Ok(event_id)
    }

    /// Publishes a serialised event with its metadata. Its producer span is a child of
    /// `parent` when given (an outbox row's stored context), else of the current span.
    pub async fn publish_outgoing(&self, event: &OutgoingEvent<'_>) -> Result<(), PublishError> {
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
        self.send(&topic, event.key, event.payload, message_headers).instrument(span).await?;
        tracing::debug!(topic, event_id = %event.event_id, event_type = event.event_type, "event published");
        Ok(())
    }

    /// Sends raw bytes (dead letters, replays) and waits for the acknowledgement.
    pub(crate) async fn send(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        message_headers: OwnedHeaders,
    ) -> Result<(), PublishError> {
        let started = Instant::now();
        let record = FutureRecord::to(topic).key(key).payload(payload).headers(message_headers);
        let result = self.producer.send(record, Timeout::After(self.settings.produce_timeout)).await;
        let outcome = if result.is_ok() { "acked" } else { "failed" };
        metrics::counter!("kafka_messages_produced_total", "topic" => topic.to_owned(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("kafka_produce_duration_seconds", "topic" => topic.to_owned())
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(delivery) => {
                let span = tracing::Span::current();
                span.record("messaging.destination.partition.id", delivery.partition.to_string());
                span.record("messaging.kafka.offset", delivery.offset);
                Ok(())
            }
            Err((source, _message)) => {
                tracing::Span::current().record("otel.status_code", "ERROR");
                Err(PublishError::Broker { topic: topic.to_owned(), source })
            }
        }
    }
}

pub(crate) fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a [u8]> {
    Header { key, value: Some(value.as_bytes()) }
}

fn producer_span(topic: &str, key: &str) -> tracing::Span {
    tracing::info_span!(
        "kafka.publish",
        otel.name = format!("send {topic}"),
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
