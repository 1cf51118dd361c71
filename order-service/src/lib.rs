//! order-service: orders in their own database; reacts to `user.created`, `user.deleted`,
//! `payment.completed` and `payment.refunded`, announces `order.created` and `order.cancelled`.

pub mod admission;
pub mod configuration;
pub mod domain;
pub mod events;
pub mod ordering;
pub mod origin;
pub mod payment_timeout;
pub mod repository;
pub mod routes;
pub mod startup;
pub mod state;

pub use configuration::Settings;
pub use startup::Application;
