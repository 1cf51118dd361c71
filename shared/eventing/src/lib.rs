//! The event infrastructure of the backends: Kafka (topics kept in existence, the
//! acknowledged publisher, the consumer loop, dead letters, trace context in headers),
//! the transactional outbox and idempotent handling (both in the service's own PostgreSQL
//! database, reached through the `database` crate), their settings and their readiness
//! checks. The gateway does not depend on it.

pub mod configuration;
pub mod health;
pub mod idempotency;
pub mod kafka;
pub mod outbox;
pub mod republish;
