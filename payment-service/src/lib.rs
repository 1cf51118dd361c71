//! payment-service: settles each `order.created` (simulated) and announces `payment.completed`;
//! refunds a cancelled order it had charged and announces `payment.refunded`.

pub mod configuration;
pub mod domain;
pub mod events;
pub mod repository;
pub mod startup;
pub mod state;

pub use configuration::Settings;
pub use startup::Application;
