//! `payment.refunded` → the cancelled order becomes `refunded`, the refund its reason.

use anyhow::Context;
use contracts::events::PaymentRefunded;
use contracts::money::Money;
use eventing::idempotency::first_delivery;
use eventing::kafka::{HandlerError, Incoming};

use super::refuse;
use crate::domain::OrderStatus;
use crate::repository::orders;
use crate::state::AppState;

/// Records the refund. Like a payment, trusted for nothing it says: a refund for an
/// unknown order, of another amount or owner, or for an order that was never cancelled is
/// refused (dead-lettered with the reason, counted, nothing changed).
pub async fn on_payment_refunded(state: AppState, message: Incoming<PaymentRefunded>) -> Result<(), HandlerError> {
    let refund = &message.event;
    let mut transaction = state.pool.begin().await.context("cannot begin transaction")?;
    if !first_delivery(&mut transaction, &message.meta).await? {
        return Ok(());
    }
    let reason = format!("payment {} of {} refunded", refund.payment_id, refund.amount);
    let found =
        orders::refund(&mut *transaction, refund.order_id, refund.user_id, refund.amount.cents(), &reason).await?;
    let Some(order) = found else {
        return Err(refuse(
            "unknown_order",
            format!("refund {} is for unknown order {}", refund.payment_id, refund.order_id),
        ));
    };
    if order.total_cents != refund.amount.cents() || order.user_id != refund.user_id {
        let total = Money::from_cents(order.total_cents).map(|total| total.to_string()).unwrap_or_default();
        return Err(refuse(
            "not_the_order",
            format!(
                "refund {} of {} to user {} does not match order {} (total {total}, owner {})",
                refund.payment_id, refund.amount, refund.user_id, refund.order_id, order.user_id
            ),
        ));
    }
    match order.previous {
        OrderStatus::Cancelled => {}
        // A redelivery under another event id: already recorded.
        OrderStatus::Refunded => return Ok(()),
        other => {
            return Err(refuse(
                "not_cancelled",
                format!("refund {} is for order {}, which is {}", refund.payment_id, refund.order_id, other.as_str()),
            ));
        }
    }
    transaction.commit().await.context("cannot commit the refund")?;
    metrics::counter!("order_status_changes_total", "status" => OrderStatus::Refunded.as_str()).increment(1);
    metrics::counter!("order_refunds_cents_total").increment(u64::try_from(refund.amount.cents()).unwrap_or(0));
    tracing::info!(order_id = %refund.order_id, amount = %refund.amount, "order refunded");
    Ok(())
}
