//! api-gateway: on its own (backends down) and in front of the whole platform.

mod auth;
mod chain;
mod docs;
mod helpers;
mod proxy;
