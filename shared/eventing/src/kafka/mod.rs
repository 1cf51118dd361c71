//! Kafka: topics kept in existence, an acknowledged publisher, and a consumer loop that
//! stores an offset only once its message was handled or dead-lettered, and a live view
//! of the topics for people (`tail`).

mod admin;
mod backoff;
mod consumer;
pub mod dead_letters;
mod generation;
mod group;
mod handling;
pub mod headers;
mod partition;
mod producer;
pub mod propagation;
mod rewind;
pub mod tail;
mod watch;

pub use admin::{TopicKeeper, TopicStatus, ensure_topics};
pub use consumer::{ConsumerBuilder, EventConsumer, EventMeta, HandlerError, Incoming};
pub use generation::{LogReset, LogResets};
pub use headers::REQUEST_ID as REQUEST_ID_HEADER;
pub use producer::{EventPublisher, OutgoingEvent, PublishError};

use rdkafka::ClientConfig;

use crate::configuration::KafkaSettings;

/// Client configuration common to producers, consumers and admin clients.
fn base_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("client.id", &settings.client_id)
        // librdkafka logs through its own callback; keep it to warnings.
        .set("log_level", "4");
    config
}
