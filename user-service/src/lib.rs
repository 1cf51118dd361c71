//! user-service: user accounts in their own database, announced on `user.created`.

pub mod accounts;
pub mod configuration;
pub mod domain;
pub mod events;
pub mod hashing;
pub mod repository;
pub mod routes;
pub mod startup;
pub mod state;

pub use configuration::Settings;
pub use startup::Application;
