//! The HTTP service runtime every service (the gateway included) is built on: settings,
//! the server with its standard layers and RFC 7807 problems, telemetry, metrics,
//! health as a registry of checks, the stop signal, and the service-key and principal
//! middleware. Knows nothing of Kafka or PostgreSQL; the event infrastructure
//! (`eventing`) adds its own settings and readiness checks on top.

pub mod auth;
pub mod configuration;
pub mod health;
pub mod http;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;
