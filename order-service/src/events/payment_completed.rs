//! `payment.completed` → the order becomes `paid` or `payment_failed`.

use shared::events::{PaymentCompleted, PaymentStatus};
use shared::kafka::{HandlerError, Incoming};

use crate::domain::OrderStatus;
use crate::repository::orders;
use crate::startup::AppState;

/// Applies the payment's outcome; an order already final is left alone.
pub async fn on_payment_completed(state: AppState, message: Incoming<PaymentCompleted>) -> Result<(), HandlerError> {
    let payment = &message.event;
    let next = match payment.status {
        PaymentStatus::Completed => OrderStatus::Paid,
        PaymentStatus::Failed => OrderStatus::PaymentFailed,
    };
    match orders::transition(&state.pool, payment.order_id, next).await? {
        None => Err(HandlerError::Permanent(anyhow::anyhow!(
            "payment {} is for unknown order {}",
            payment.payment_id,
            payment.order_id
        ))),
        Some(previous) if previous.can_become(next) => {
            metrics::counter!("order_status_changes_total", "status" => next.as_str()).increment(1);
            if next == OrderStatus::Paid {
                #[allow(clippy::cast_precision_loss)]
                metrics::counter!("order_revenue_cents_total")
                    .increment(u64::try_from(payment.amount.cents()).unwrap_or(0));
            }
            tracing::info!(order_id = %payment.order_id, status = next.as_str(), "order status updated");
            Ok(())
        }
        Some(previous) => {
            tracing::info!(order_id = %payment.order_id, status = previous.as_str(), "order already final; payment event ignored");
            Ok(())
        }
    }
}
