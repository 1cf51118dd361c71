//! Events order-service consumes and publishes.

mod payment_completed;
mod user_created;
mod user_deleted;

use contracts::events::OrderCreated;

use crate::domain::Order;
pub use payment_completed::on_payment_completed;
pub use user_created::on_user_created;
pub use user_deleted::on_user_deleted;

/// The id of an order's `order.created` event: derived from the order, so a payment
/// requested again after a timeout carries the same id as the first request.
pub fn order_created_event_id(order_id: uuid::Uuid) -> uuid::Uuid {
    uuid::Uuid::new_v5(&order_id, b"order.created")
}

/// The `order.created` event for a stored order.
pub fn order_created(order: &Order) -> OrderCreated {
    OrderCreated {
        order_id: order.id,
        user_id: order.user_id,
        items: order.items.clone(),
        total_amount: order.total_amount,
        created_at: order.created_at,
    }
}
