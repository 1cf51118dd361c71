//! api-gateway: the one public entry point. Settles the request id, continues
//! the trace, authenticates (JWT), limits rates, forwards `/api/users…` and
//! `/api/orders…` to their services, and serves the API docs at `/api/docs`.

pub mod auth;
pub mod configuration;
pub mod conformance;
pub mod docs;
pub mod routes;
pub mod startup;
pub mod upstream;

pub use configuration::Settings;
pub use startup::Application;
