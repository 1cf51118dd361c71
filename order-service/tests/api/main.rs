//! order-service against the real PostgreSQL and Kafka broker: one database and
//! one topic prefix per test.

mod events;
mod helpers;
mod orders;
