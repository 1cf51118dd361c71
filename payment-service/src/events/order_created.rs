//! `order.created` → a payment, unless the order was cancelled first → `payment.completed`.

use anyhow::Context;
use chrono::Utc;
use contracts::events::{OrderCreated, PaymentCompleted, PaymentStatus};
use contracts::money::Money;
use eventing::kafka::{HandlerError, Incoming};
use eventing::outbox::{self, PreparedEvent};
use uuid::Uuid;

use crate::domain::{decide, payment_id};
use crate::repository::payments::{self, Payment, Standing};
use crate::state::AppState;

/// Settles the order's payment and announces the outcome, atomically. A first charge is
/// one statement (the payment and its event); an order that already has a payment (a
/// redelivery, or a payment requested again after a timeout) has the same outcome
/// announced again under the same event id, and is never charged twice; an order
/// cancelled before its payment is never charged.
pub async fn on_order_created(state: AppState, message: Incoming<OrderCreated>) -> Result<(), HandlerError> {
    let order = &message.event;
    if !state.payment.delay.is_zero() {
        // Stands in for the provider's round trip.
        tokio::time::sleep(state.payment.delay).await;
    }
    let payment_id = payment_id(order.order_id);
    let status = decide(payment_id, state.payment.failure_rate);
    let decided = Payment {
        payment_id,
        order_id: order.order_id,
        user_id: order.user_id,
        amount_cents: order.total_amount.cents(),
        standing: Standing::Settled(status),
        created: true,
    };
    let first = announcement(&decided, status, &message)?;
    if payments::record_first_with_event(&state.pool, &decided, &first).await? {
        state.relay.wake();
        settled(&decided, status);
        return Ok(());
    }
    // The order has a row already: lock it and announce what it holds.
    let mut transaction = state.pool.begin().await.context("cannot begin transaction")?;
    let payment = payments::record(&mut transaction, &Payment { created: false, ..decided }).await?;
    let Standing::Settled(status) = payment.standing else {
        tracing::info!(order_id = %order.order_id, "the order was cancelled before its payment; nothing taken");
        return Ok(());
    };
    // What was recorded, not what this delivery says: a repeat announces the same payment.
    outbox::enqueue_again(&mut transaction, &announcement(&payment, status, &message)?).await?;
    transaction.commit().await.context("cannot commit the payment")?;
    state.relay.wake();
    if payment.created {
        settled(&payment, status);
    }
    Ok(())
}

/// The `payment.completed` event for `payment`, under an id derived from the payment: announced
/// again, it is recognised as the same answer.
fn announcement(
    payment: &Payment,
    status: PaymentStatus,
    message: &Incoming<OrderCreated>,
) -> Result<PreparedEvent, HandlerError> {
    let amount = Money::from_cents(payment.amount_cents).context("negative payment amount")?;
    let event = PaymentCompleted {
        payment_id: payment.payment_id,
        order_id: payment.order_id,
        user_id: payment.user_id,
        amount,
        status,
        completed_at: Utc::now(),
    };
    let mut prepared = outbox::prepare(&event, &message.meta.request_id)?;
    prepared.event_id = Uuid::new_v5(&payment.payment_id, b"payment.completed");
    Ok(prepared)
}

/// Counts and logs a payment this delivery took.
fn settled(payment: &Payment, status: PaymentStatus) {
    metrics::counter!("payments_total", "status" => status.as_str()).increment(1);
    metrics::counter!("payments_amount_cents_total", "status" => status.as_str())
        .increment(u64::try_from(payment.amount_cents).unwrap_or(0));
    tracing::info!(order_id = %payment.order_id, payment_id = %payment.payment_id, status = status.as_str(),
        amount_cents = payment.amount_cents, "payment settled");
}
