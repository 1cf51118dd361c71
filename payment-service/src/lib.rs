//! payment-service: settles each `order.created` (simulated) and announces `payment.completed`.

pub mod configuration;
pub mod domain;
pub mod events;
pub mod startup;
pub mod state;

pub use configuration::Settings;
pub use startup::Application;
