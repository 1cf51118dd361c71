//! `payment.completed` → the order becomes `paid` or `payment_failed`.

use anyhow::Context;
use contracts::events::{PaymentCompleted, PaymentStatus};
use eventing::idempotency::first_delivery;
use eventing::kafka::{HandlerError, Incoming};

use crate::domain::OrderStatus;
use crate::repository::orders;
use crate::state::AppState;

/// Applies the payment's outcome; an order already final is left alone, and a
/// redelivered event is recognised by its id.
pub async fn on_payment_completed(state: AppState, message: Incoming<PaymentCompleted>) -> Result<(), HandlerError> {
    let payment = &message.event;
    let mut transaction = state.pool.begin().await.context("cannot begin transaction")?;
    if !first_delivery(&mut transaction, &message.meta).await? {
        return Ok(());
    }
    let next = match payment.status {
        PaymentStatus::Completed => OrderStatus::Paid,
        PaymentStatus::Failed => OrderStatus::PaymentFailed,
    };
    let Some(previous) = orders::transition(&mut *transaction, payment.order_id, next).await? else {
        // Rolled back with the processed mark, so a replay from the dead-letter topic is handled afresh.
        return Err(HandlerError::Permanent(anyhow::anyhow!(
            "payment {} is for unknown order {}",
            payment.payment_id,
            payment.order_id
        )));
    };
    transaction.commit().await.context("cannot commit the status change")?;
    match previous {
        previous if previous.can_become(next) => {
            metrics::counter!("order_status_changes_total", "status" => next.as_str()).increment(1);
            if next == OrderStatus::Paid {
                metrics::counter!("order_revenue_cents_total")
                    .increment(u64::try_from(payment.amount.cents()).unwrap_or(0));
            }
            tracing::info!(order_id = %payment.order_id, status = next.as_str(), "order status updated");
            Ok(())
        }
        previous => {
            tracing::info!(order_id = %payment.order_id, status = previous.as_str(), "order already final; payment event ignored");
            Ok(())
        }
    }
}
