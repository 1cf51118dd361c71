//! What the services must agree on, and nothing else: the public API's bodies, the events
//! on the topics, money, roles, and the names of the headers that travel with every message.
//!
//! Only serde-level dependencies (serde, uuid, chrono, and utoipa's schema derive for
//! the OpenAPI and AsyncAPI documents), so a client, a test or another service can take the contracts
//! without taking the platform's runtime.

pub mod api;
pub mod asyncapi;
pub mod auth;
pub mod events;
pub mod headers;
pub mod money;
