//! Kafka: topics kept in existence, an acknowledged publisher, a consumer loop that
//! stores an offset only once its message was handled or dead-lettered; what every client
//! shares (`client`, `headers`) is public for the operators' tools built on it.
//!
//! Layers, each using only those below it:
//! 1. `client`, `headers`, `propagation`, `backoff`, `handler`, `resets`, `workers`;
//! 2. `producer`, `group`, `loss`;
//! 3. `handling`, `admin`, `rewind`;
//! 4. `partition`; 5. `consumer`.

mod admin;
mod backoff;
pub mod client;
mod consumer;
mod group;
mod handler;
mod handling;
pub mod headers;
mod loss;
mod partition;
mod producer;
pub mod propagation;
mod resets;
mod rewind;
mod workers;

pub use admin::{TopicKeeper, ensure_topics};
pub use consumer::{ConsumerBuilder, EventConsumer};
pub use handler::{EventMeta, HandlerError, Incoming};
pub use headers::REQUEST_ID as REQUEST_ID_HEADER;
pub use producer::{Acknowledgement, EventPublisher, OutgoingEvent, PublishError};
pub use resets::LogResets;
