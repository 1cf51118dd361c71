//! The event infrastructure of the backends: Kafka (topics kept in existence, the
//! acknowledged publisher, the consumer loop, dead letters, trace context in headers),
//! the transactional outbox, idempotent handling, the PostgreSQL pool and migrations,
//! their settings and their readiness checks. The gateway does not depend on it.

pub mod configuration;
pub mod db;
pub mod health;
pub mod idempotency;
pub mod kafka;
pub mod outbox;
pub mod republish;
