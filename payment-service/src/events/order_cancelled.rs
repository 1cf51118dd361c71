//! `order.cancelled` → no payment from now on, or the one taken given back →
//! `payment.refunded`: the saga's compensation.

use anyhow::Context;
use chrono::Utc;
use contracts::events::{OrderCancelled, PaymentRefunded, PaymentStatus};
use contracts::money::Money;
use eventing::idempotency::first_delivery;
use eventing::kafka::{HandlerError, Incoming};
use eventing::outbox;

use crate::domain::payment_id;
use crate::repository::payments::{self, Payment, Standing};
use crate::state::AppState;

/// Cancels the order's payment, in one transaction with the event's processed mark: an
/// order not yet charged is marked so that it never will be; a payment taken is refunded
/// in full and `payment.refunded` announced; a declined or refunded one needs nothing.
pub async fn on_order_cancelled(state: AppState, message: Incoming<OrderCancelled>) -> Result<(), HandlerError> {
    let cancelled = &message.event;
    let mut transaction = state.pool.begin().await.context("cannot begin transaction")?;
    if !first_delivery(&mut transaction, &message.meta).await? {
        return Ok(());
    }
    let promise = Payment {
        payment_id: payment_id(cancelled.order_id),
        order_id: cancelled.order_id,
        user_id: cancelled.user_id,
        amount_cents: cancelled.total_amount.cents(),
        standing: Standing::Cancelled,
        created: false,
    };
    let payment = payments::record(&mut transaction, &promise).await?;
    match payment.standing {
        Standing::Cancelled => {
            tracing::info!(order_id = %cancelled.order_id, "order cancelled before its payment; none will be taken");
        }
        Standing::Settled(PaymentStatus::Completed) => {
            payments::mark_refunded(&mut transaction, payment.order_id).await?;
            let amount = Money::from_cents(payment.amount_cents).context("negative payment in database")?;
            let refund = PaymentRefunded {
                payment_id: payment.payment_id,
                order_id: payment.order_id,
                user_id: payment.user_id,
                amount,
                refunded_at: Utc::now(),
            };
            outbox::enqueue(&mut transaction, &refund, &message.meta.request_id).await?;
            metrics::counter!("payments_refunded_total").increment(1);
            metrics::counter!("payments_refunded_cents_total")
                .increment(u64::try_from(payment.amount_cents).unwrap_or(0));
            tracing::info!(order_id = %payment.order_id, payment_id = %payment.payment_id, %amount, "payment refunded");
        }
        Standing::Settled(PaymentStatus::Failed) | Standing::Refunded => {}
    }
    transaction.commit().await.context("cannot commit the cancellation")?;
    state.relay.wake();
    Ok(())
}
