//! api-gateway: on its own (backends down) and in front of the whole platform.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should fail loudly

mod accounts;
mod auth;
mod chain;
mod docs;
mod forgery;
mod helpers;
mod hostile;
mod proxy;
mod saga;
mod traversal;
