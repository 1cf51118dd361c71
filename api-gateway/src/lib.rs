//! api-gateway: the one public entry point. Settles the request id, continues
//! the trace, and forwards `/api/users…` and `/api/orders…` to their services.

pub mod configuration;
pub mod routes;
pub mod startup;

pub use configuration::Settings;
pub use startup::Application;
