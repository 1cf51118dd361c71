//! The saga's timeout: an order still `pending` when its payment should long have been
//! answered has lost a message somewhere (its `order.created`, or the answer).
//!
//! Every sweep finds pending orders whose payment was requested more than
//! `PAYMENT_TIMEOUT_MS` ago. While requests remain (`PAYMENT_MAX_REQUESTS`), the payment
//! is requested again with the *same* `order.created` event id: payment-service derives
//! the payment id from the order, and order-service applies a `payment.completed` once
//! per event id, so a request that was merely slow still yields one payment. After the
//! last request the order becomes `payment_failed`, its reason recorded. A payment answer
//! arriving after that changes nothing: final states never move.

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use eventing::outbox::{self, RelayWake};
use platform::http::RequestId;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::events::{order_created, order_created_event_id};
use crate::repository::orders;

/// Orders one sweep handles at most; the next sweep takes the rest.
const BATCH: i64 = 200;

/// The reason recorded on an order the timeout failed.
pub const TIMED_OUT: &str = "payment timed out: no answer from payment-service";

/// When and how often payments are requested again.
#[derive(Debug, Clone, Copy)]
pub struct PaymentTimeout {
    /// How long a request may go unanswered.
    pub timeout: Duration,
    /// Requests in all, the first included; then the order fails.
    pub max_requests: u32,
}

/// What one sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Orders whose payment was requested again.
    pub requested_again: usize,
    /// Orders failed for want of an answer.
    pub failed: usize,
}

/// Sweeps every `timeout / 4` (at least 100 ms) until `shutdown`.
pub async fn run(pool: PgPool, settings: PaymentTimeout, relay: RelayWake, shutdown: CancellationToken) {
    let every = (settings.timeout / 4).max(Duration::from_millis(100));
    // Series exist from the start, so the alert reads 0 rather than "no data".
    for outcome in ["requested_again", "failed"] {
        metrics::counter!("order_payment_timeouts_total", "outcome" => outcome).absolute(0);
    }
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match sweep(&pool, settings).await {
            Ok(swept) if swept.requested_again > 0 => relay.wake(),
            Ok(_) => {}
            Err(error) => tracing::warn!(error = format!("{error:#}"), "payment timeout sweep failed"),
        }
    }
}

/// One sweep, in one transaction.
pub async fn sweep(pool: &PgPool, settings: PaymentTimeout) -> anyhow::Result<Sweep> {
    let older_than = Utc::now() - chrono::Duration::from_std(settings.timeout).context("timeout out of range")?;
    let mut transaction = pool.begin().await.context("cannot begin transaction")?;
    let due = orders::lock_unanswered(&mut transaction, older_than, BATCH).await?;
    if due.is_empty() {
        return Ok(Sweep::default());
    }
    let max = i32::try_from(settings.max_requests).unwrap_or(i32::MAX);
    let (exhausted, retry): (Vec<_>, Vec<_>) = due.into_iter().partition(|(_, requests)| *requests >= max);
    let failed_ids: Vec<Uuid> = exhausted.iter().map(|(order, _)| order.id).collect();
    let failed = orders::fail_pending(&mut *transaction, &failed_ids, TIMED_OUT).await?;
    let retry_ids: Vec<Uuid> = retry.iter().map(|(order, _)| order.id).collect();
    orders::count_payment_request(&mut *transaction, &retry_ids).await?;
    for (order, requests) in &retry {
        let request_id = RequestId::generate();
        let mut event = outbox::prepare(&order_created(order), &request_id).context("cannot prepare order.created")?;
        event.event_id = order_created_event_id(order.id);
        outbox::enqueue_again(&mut transaction, &event).await?;
        tracing::warn!(order_id = %order.id, request = requests + 1, "payment unanswered; requested again");
    }
    transaction.commit().await.context("cannot commit the payment timeout sweep")?;
    metrics::counter!("order_payment_timeouts_total", "outcome" => "requested_again").increment(retry.len() as u64);
    metrics::counter!("order_payment_timeouts_total", "outcome" => "failed").increment(failed);
    if failed > 0 {
        metrics::counter!("order_status_changes_total", "status" => "payment_failed").increment(failed);
        tracing::warn!(orders = ?failed_ids, "payment never answered; orders failed");
    }
    Ok(Sweep { requested_again: retry.len(), failed: usize::try_from(failed).unwrap_or(usize::MAX) })
}
