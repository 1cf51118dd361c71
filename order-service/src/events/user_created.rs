//! `user.created` → order-service knows the user, and the user's welcome order.

use anyhow::Context;
use contracts::events::UserCreated;
use eventing::idempotency::first_delivery;
use eventing::kafka::{HandlerError, Incoming};

use crate::domain::{NewOrder, OrderKind};
use crate::ordering::{PlaceOrderError, place_order};
use crate::repository::known_users;
use crate::state::AppState;

/// Creates the welcome order and its event in one transaction with the event's
/// processed mark; a redelivery finds the mark and does nothing.
pub async fn on_user_created(state: AppState, message: Incoming<UserCreated>) -> Result<(), HandlerError> {
    state.users.vouches_for(&message.event, &message.meta).await?;
    let mut transaction = state.pool.begin().await.context("cannot begin transaction")?;
    if !first_delivery(&mut transaction, &message.meta).await? {
        return Ok(());
    }
    known_users::record(&mut *transaction, message.event.user_id).await?;
    let order = NewOrder::welcome(message.event.user_id);
    match place_order(&mut transaction, &order, OrderKind::Welcome, &message.meta.request_id).await {
        Ok(_) => {}
        Err(PlaceOrderError::Invalid(errors)) => {
            return Err(HandlerError::Permanent(anyhow::anyhow!("welcome order is invalid: {errors:?}")));
        }
        Err(PlaceOrderError::Unexpected(error)) => return Err(HandlerError::Transient(error)),
        Err(PlaceOrderError::TooLarge(too_large)) => {
            return Err(HandlerError::Permanent(anyhow::anyhow!("welcome order refused: {too_large}")));
        }
        Err(PlaceOrderError::UnknownUser(id)) => {
            return Err(HandlerError::Permanent(anyhow::anyhow!("a welcome order is never refused as unknown ({id})")));
        }
    }
    transaction.commit().await.context("cannot commit the welcome order")?;
    state.relay.wake();
    Ok(())
}
