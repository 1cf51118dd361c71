//! `user.created` → the user's welcome order.

use shared::events::UserCreated;
use shared::kafka::{HandlerError, Incoming};

use crate::domain::{NewOrder, OrderKind};
use crate::ordering::{PlaceOrderError, place_order};
use crate::startup::AppState;

/// Creates the welcome order; a redelivery creates nothing new.
pub async fn on_user_created(state: AppState, message: Incoming<UserCreated>) -> Result<(), HandlerError> {
    let order = NewOrder::welcome(message.event.user_id);
    match place_order(&state.pool, &state.publisher, &order, OrderKind::Welcome, &message.meta.request_id).await {
        Ok(_) => Ok(()),
        Err(PlaceOrderError::Invalid(errors)) => {
            Err(HandlerError::Permanent(anyhow::anyhow!("welcome order is invalid: {errors:?}")))
        }
        Err(error) => Err(HandlerError::Transient(error.into())),
    }
}
