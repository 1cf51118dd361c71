//! `user.deleted` → order-service forgets the user: new orders for them are refused and
//! their pending orders are cancelled, each announcing `order.cancelled`.

use anyhow::Context;
use contracts::events::UserDeleted;
use eventing::idempotency::first_delivery;
use eventing::kafka::{HandlerError, Incoming};

use super::announce_cancellation;
use crate::repository::known_users;
use crate::state::AppState;

/// Marks the user deleted and cancels their pending orders, in one transaction with the
/// event's processed mark and each cancellation's `order.cancelled`.
pub async fn on_user_deleted(state: AppState, message: Incoming<UserDeleted>) -> Result<(), HandlerError> {
    let user_id = message.event.user_id;
    state.users.vouches_for(&message.event, &message.meta).await?;
    let mut transaction = state.pool.begin().await.context("cannot begin transaction")?;
    if !first_delivery(&mut transaction, &message.meta).await? {
        return Ok(());
    }
    let orders = known_users::forget(&mut *transaction, user_id).await?;
    for (order_id, total_cents) in &orders {
        announce_cancellation(&mut transaction, *order_id, user_id, *total_cents, &message.meta.request_id).await?;
    }
    transaction.commit().await.context("cannot commit the user's deletion")?;
    state.relay.wake();
    let cancelled = orders.len() as u64;
    metrics::counter!("order_status_changes_total", "status" => "cancelled").increment(cancelled);
    tracing::info!(%user_id, cancelled, "user deleted; pending orders cancelled");
    Ok(())
}
