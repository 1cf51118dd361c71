//! `payment.completed` → the order becomes `paid` or `payment_failed`.

use contracts::events::{PaymentCompleted, PaymentStatus};
use contracts::money::Money;
use eventing::idempotency::redelivery_skipped;
use eventing::kafka::{HandlerError, Incoming};

use super::refuse;
use crate::domain::OrderStatus;
use crate::repository::orders;
use crate::state::AppState;

/// Applies the payment's outcome. Trusts nothing for being on the broker: a payment for
/// an unknown order, or whose amount or owner is not the order's, is refused (dead-lettered
/// with the reason, counted, nothing changed). An order already final is left alone, and
/// a redelivered event is recognised by its id.
pub async fn on_payment_completed(state: AppState, message: Incoming<PaymentCompleted>) -> Result<(), HandlerError> {
    let payment = &message.event;
    let next = match payment.status {
        PaymentStatus::Completed => OrderStatus::Paid,
        PaymentStatus::Failed => OrderStatus::PaymentFailed,
    };
    let found = orders::settle_once(
        &state.pool,
        payment.order_id,
        payment.user_id,
        payment.amount.cents(),
        next,
        &message.meta,
    )
    .await?;
    // A refusal writes nothing, not even the processed mark, so a replay from the dead-letter
    // topic is handled afresh.
    let Some((order, first)) = found else {
        return Err(refuse(
            "unknown_order",
            format!("payment {} is for unknown order {}", payment.payment_id, payment.order_id),
        ));
    };
    if order.total_cents != payment.amount.cents() || order.user_id != payment.user_id {
        return Err(refuse(
            "not_the_order",
            format!(
                "payment {} of {} by user {} does not match order {} (total {}, owner {})",
                payment.payment_id,
                payment.amount,
                payment.user_id,
                payment.order_id,
                Money::from_cents(order.total_cents).map(|total| total.to_string()).unwrap_or_default(),
                order.user_id
            ),
        ));
    }
    if !first {
        redelivery_skipped(&message.meta);
        return Ok(());
    }
    if !order.previous.can_become(next) {
        tracing::info!(order_id = %payment.order_id, status = order.previous.as_str(), "order already final; payment event ignored");
        return Ok(());
    }
    if order.previous == OrderStatus::Pending {
        state.admission.settled(1);
    }
    metrics::counter!("order_status_changes_total", "status" => next.as_str()).increment(1);
    if next == OrderStatus::Paid {
        metrics::counter!("order_revenue_cents_total").increment(u64::try_from(payment.amount.cents()).unwrap_or(0));
    }
    tracing::info!(order_id = %payment.order_id, status = next.as_str(), "order status updated");
    Ok(())
}
