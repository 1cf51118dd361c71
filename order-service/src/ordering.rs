//! The one use case both the API and the `user.created` handler share: store an
//! order and, in the same transaction, its `order.created` event.

use anyhow::Context;
use shared::http::{FieldError, Problem, RequestId};
use shared::outbox;
use sqlx::PgConnection;

use crate::domain::{NewOrder, Order, OrderKind};
use crate::events::order_created;
use crate::repository::orders;

/// Why an order could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum PlaceOrderError {
    /// Input failed validation.
    #[error("invalid order")]
    Invalid(Vec<FieldError>),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<PlaceOrderError> for Problem {
    fn from(error: PlaceOrderError) -> Self {
        match error {
            PlaceOrderError::Invalid(errors) => Problem::validation(errors),
            PlaceOrderError::Unexpected(error) => Problem::internal(&error),
        }
    }
}

/// Stores `order` with its `order.created` event in the caller's transaction. Returns
/// `None` for a welcome order the user already has: nothing is stored or announced twice.
pub async fn place_order(
    transaction: &mut PgConnection,
    order: &NewOrder,
    kind: OrderKind,
    request_id: &RequestId,
) -> Result<Option<Order>, PlaceOrderError> {
    let Some(stored) = orders::insert(transaction, order, kind).await? else {
        tracing::info!(user_id = %order.user_id, "user already has a welcome order; not creating another");
        return Ok(None);
    };
    outbox::enqueue(transaction, &order_created(&stored), request_id).await.context("cannot enqueue order.created")?;
    metrics::counter!("orders_created_total", "kind" => kind.as_str()).increment(1);
    tracing::info!(order_id = %stored.id, user_id = %stored.user_id, kind = kind.as_str(), total = %stored.total_amount, "order placed");
    Ok(Some(stored))
}
