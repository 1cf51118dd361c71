//! Events order-service consumes and publishes.

mod payment_completed;
mod payment_refunded;
mod user_created;
mod user_deleted;

use anyhow::Context;
use chrono::Utc;
use contracts::events::{OrderCancelled, OrderCreated};
use contracts::money::Money;
use eventing::kafka::HandlerError;
use eventing::outbox;
use platform::http::RequestId;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::Order;
pub use payment_completed::on_payment_completed;
pub use payment_refunded::on_payment_refunded;
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

/// Writes `order.cancelled` for an order cancelled in `connection`'s transaction: from then
/// on payment-service takes no payment for it, and gives back one it already took.
pub async fn announce_cancellation(
    connection: &mut PgConnection,
    order_id: Uuid,
    user_id: Uuid,
    total_cents: i64,
    request_id: &RequestId,
) -> anyhow::Result<()> {
    let total_amount = Money::from_cents(total_cents).context("negative total in database")?;
    let event = OrderCancelled { order_id, user_id, total_amount, cancelled_at: Utc::now() };
    outbox::enqueue(connection, &event, request_id).await?;
    Ok(())
}

/// A payment event refused for what it says: counted by `reason`, then dead-lettered.
fn refuse(reason: &'static str, detail: String) -> HandlerError {
    metrics::counter!("payments_refused_total", "reason" => reason).increment(1);
    tracing::warn!(reason, detail, "payment event refused");
    HandlerError::Permanent(anyhow::anyhow!(detail))
}
