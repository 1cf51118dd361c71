//! Events payment-service consumes, and the outcomes it announces through its outbox.

mod order_cancelled;
mod order_created;

pub use order_cancelled::on_order_cancelled;
pub use order_created::on_order_created;
