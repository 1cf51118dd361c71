//! `order.created` → a payment → `payment.completed`.

use chrono::Utc;
use contracts::events::{OrderCreated, PaymentCompleted};
use eventing::kafka::{HandlerError, Incoming, PublishError};

use uuid::Uuid;

use crate::domain::{decide, payment_id};
use crate::state::AppState;

/// Settles the order's payment and announces the outcome.
pub async fn on_order_created(state: AppState, message: Incoming<OrderCreated>) -> Result<(), HandlerError> {
    let order = &message.event;
    if !state.payment.delay.is_zero() {
        // Stands in for the provider's round trip.
        tokio::time::sleep(state.payment.delay).await;
    }
    let payment_id = payment_id(order.order_id);
    let status = decide(payment_id, state.payment.failure_rate);
    let payment = PaymentCompleted {
        payment_id,
        order_id: order.order_id,
        user_id: order.user_id,
        amount: order.total_amount,
        status,
        completed_at: Utc::now(),
    };
    // The event id derives from the payment id: a redelivered order yields an event the
    // order-service recognises as already handled.
    let event_id = Uuid::new_v5(&payment_id, b"payment.completed");
    state
        .publisher
        .publish_with_id(&payment, event_id, &message.meta.request_id)
        .await
        // A broker that does not acknowledge in time is no fault of the order: wait for it
        // rather than dead-letter a payment (seen under the bench's flood).
        .map_err(|e| match e {
            PublishError::Broker { .. } => HandlerError::Unavailable(e.into()),
            PublishError::Serialise { .. } => HandlerError::Permanent(e.into()),
        })?;
    metrics::counter!("payments_total", "status" => status.as_str()).increment(1);
    metrics::counter!("payments_amount_cents_total", "status" => status.as_str())
        .increment(u64::try_from(order.total_amount.cents()).unwrap_or(0));
    tracing::info!(order_id = %order.order_id, %payment_id, status = status.as_str(), amount = %order.total_amount, "payment settled");
    Ok(())
}
