//! The one use case both the API and the `user.created` handler share: store an
//! order and announce it.

use anyhow::Context;
use shared::http::{FieldError, Problem, RequestId};
use shared::kafka::{EventPublisher, PublishError};
use sqlx::PgPool;

use crate::domain::{NewOrder, Order, OrderKind, OrderStatus};
use crate::events::order_created;
use crate::repository::orders;

/// Why an order could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum PlaceOrderError {
    /// Input failed validation.
    #[error("invalid order")]
    Invalid(Vec<FieldError>),
    /// `order.created` could not be published, so nothing was stored.
    #[error("cannot publish order.created")]
    EventBus(#[source] PublishError),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<PlaceOrderError> for Problem {
    fn from(error: PlaceOrderError) -> Self {
        match error {
            PlaceOrderError::Invalid(errors) => Problem::validation(errors),
            PlaceOrderError::EventBus(error) => {
                tracing::error!(error = format!("{:#}", anyhow::Error::new(error)), "order not placed: event bus down");
                Problem::unavailable("the service cannot accept orders right now; try again shortly")
            }
            PlaceOrderError::Unexpected(error) => Problem::internal(&error),
        }
    }
}

/// Stores `order` and publishes `order.created`; the transaction commits only after the
/// broker acknowledged the event, so no order exists without its event.
///
/// For a welcome order that already exists (a redelivered `user.created`), nothing new is
/// stored; while it is still pending its event is published again, because the first
/// delivery may have died between commit and acknowledgement. Payment ids derive from the
/// order id, so a repeated event never pays twice.
pub async fn place_order(
    pool: &PgPool,
    publisher: &EventPublisher,
    order: &NewOrder,
    kind: OrderKind,
    request_id: &RequestId,
) -> Result<Order, PlaceOrderError> {
    let mut transaction = pool.begin().await.context("cannot begin transaction")?;
    let (stored, is_new) = match orders::insert(&mut transaction, order, kind).await? {
        Some(stored) => (stored, true),
        None => {
            let existing = orders::find_welcome(&mut transaction, order.user_id)
                .await?
                .context("welcome order conflicted but cannot be found")?;
            (existing, false)
        }
    };
    if is_new || stored.status == OrderStatus::Pending {
        publisher.publish(&order_created(&stored), request_id).await.map_err(PlaceOrderError::EventBus)?;
    }
    transaction.commit().await.context("cannot commit order")?;
    if is_new {
        metrics::counter!("orders_created_total", "kind" => kind.as_str()).increment(1);
        tracing::info!(order_id = %stored.id, user_id = %stored.user_id, kind = kind.as_str(), total = %stored.total_amount, "order placed");
    } else {
        tracing::info!(order_id = %stored.id, "welcome order already exists; not creating another");
    }
    Ok(stored)
}
