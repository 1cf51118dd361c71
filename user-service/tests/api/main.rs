//! user-service against the real PostgreSQL and Kafka broker: one database and
//! one topic prefix per test.

mod auth;
mod health;
mod helpers;
mod users;
