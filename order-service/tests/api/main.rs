//! order-service against the real PostgreSQL and Kafka broker: one database and
//! one topic prefix per test.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should fail loudly

mod admission;
mod events;
mod helpers;
mod orders;
mod relay;
