//! The one use case both the API and the `user.created` handler share: store an
//! order and, in the same transaction, its `order.created` event.

use anyhow::Context;
use chrono::{SubsecRound, Utc};
use contracts::events::OrderItem;
use eventing::outbox;
use platform::http::{FieldError, Problem, RequestId};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{NewOrder, Order, OrderKind, OrderStatus};
use crate::events::{order_created, order_created_event_id};
use crate::repository::orders;

/// Why an order could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum PlaceOrderError {
    /// Input failed validation.
    #[error("invalid order")]
    Invalid(Vec<FieldError>),
    /// The user is not one order-service knows (never announced, or deleted).
    #[error("unknown or deleted user {0}")]
    UnknownUser(Uuid),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<PlaceOrderError> for Problem {
    fn from(error: PlaceOrderError) -> Self {
        match error {
            PlaceOrderError::Invalid(errors) => Problem::validation(errors),
            PlaceOrderError::UnknownUser(id) => Problem::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                Some(format!("user {id} does not exist or was deleted")),
            ),
            PlaceOrderError::Unexpected(error) => Problem::internal(&error),
        }
    }
}

/// Stores `order` with its `order.created` event, atomically, in one statement on
/// `connection` (inside the caller's transaction, when it has one). Returns `None` for a
/// welcome order the user already has (nothing is stored or announced twice), or for a
/// user deleted before their welcome order; a standard order for a user order-service
/// does not know is [`PlaceOrderError::UnknownUser`].
pub async fn place_order(
    connection: &mut PgConnection,
    order: &NewOrder,
    kind: OrderKind,
    request_id: &RequestId,
) -> Result<Option<Order>, PlaceOrderError> {
    // PostgreSQL keeps microseconds: the event must carry the time the row will hold.
    let now = Utc::now().trunc_subsecs(6);
    let candidate = Order {
        id: Uuid::new_v4(),
        user_id: order.user_id,
        items: order
            .items
            .iter()
            .map(|i| OrderItem { product_id: i.product_id.as_str().to_owned(), quantity: i.quantity, price: i.price })
            .collect(),
        total_amount: order.total(),
        status: OrderStatus::Pending,
        kind,
        created_at: now,
        updated_at: now,
    };
    let mut event = outbox::prepare(&order_created(&candidate), request_id).context("cannot prepare order.created")?;
    event.event_id = order_created_event_id(candidate.id);
    let Some(stored) = orders::insert_with_event(&mut *connection, &candidate, &event).await? else {
        if kind == OrderKind::Standard {
            return Err(PlaceOrderError::UnknownUser(order.user_id));
        }
        tracing::info!(user_id = %order.user_id, "user already has a welcome order, or was deleted; not creating one");
        return Ok(None);
    };
    metrics::counter!("orders_created_total", "kind" => kind.as_str()).increment(1);
    tracing::info!(order_id = %stored.id, user_id = %stored.user_id, kind = kind.as_str(), total = %stored.total_amount, "order placed");
    Ok(Some(stored))
}
