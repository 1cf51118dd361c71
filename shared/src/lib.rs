//! Building blocks shared by every service of the platform.
//!
//! Each service composes these pieces in its own `startup.rs`; nothing here
//! knows about users, orders or payments except the event contracts in
//! [`events`], which are the one thing the services must agree on.

pub mod auth;
pub mod configuration;
pub mod db;
pub mod events;
pub mod health;
pub mod http;
pub mod idempotency;
pub mod kafka;
pub mod metrics;
pub mod money;
pub mod outbox;
pub mod shutdown;
pub mod telemetry;

#[cfg(feature = "testing")]
pub mod testing;
