//! The one use case both the API and the `user.created` handler share: store an
//! order and, in the same transaction, its `order.created` event.

use chrono::{SubsecRound, Utc};
use contracts::events::{EventTooLarge, OrderItem};
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
    /// Its `order.created` event would exceed the events' size limit.
    #[error(transparent)]
    TooLarge(EventTooLarge),
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
            PlaceOrderError::TooLarge(too_large) => {
                Problem::new(axum::http::StatusCode::PAYLOAD_TOO_LARGE, Some(too_large.to_string()))
            }
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
    let mut event = outbox::prepare(&order_created(&candidate), request_id).map_err(|error| {
        match error.downcast::<EventTooLarge>() {
            Ok(too_large) => PlaceOrderError::TooLarge(too_large),
            Err(error) => PlaceOrderError::Unexpected(error.context("cannot prepare order.created")),
        }
    })?;
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

#[cfg(test)]
mod tests {
    use contracts::api::orders::CreateOrderRequest;
    use contracts::events::MAX_EVENT_BYTES;

    use super::*;

    /// The largest order validation lets through: 100 lines, each with the longest product
    /// id, the highest quantity and the highest price.
    fn largest_valid_order() -> Order {
        let line = serde_json::json!({"productId": format!("product-{}", "x".repeat(92)), "quantity": 9999, "price": 999999.99});
        let request: CreateOrderRequest =
            serde_json::from_value(serde_json::json!({"userId": Uuid::new_v4(), "items": vec![line; 100]})).unwrap();
        let order = NewOrder::try_from(request).unwrap();
        let now = Utc::now();
        Order {
            id: Uuid::new_v4(),
            user_id: order.user_id,
            items: order
                .items
                .iter()
                .map(|i| OrderItem {
                    product_id: i.product_id.as_str().to_owned(),
                    quantity: i.quantity,
                    price: i.price,
                })
                .collect(),
            total_amount: order.total(),
            status: OrderStatus::Pending,
            kind: OrderKind::Standard,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn the_largest_valid_order_fits_the_event_limit_with_room() {
        // The longest request id the platform keeps, and the largest trace context a
        // caller's span can give (W3C's limits, which is what the gateway forwards).
        let request_id = RequestId::parse_or_generate(Some(&"r".repeat(128)));
        let event = outbox::prepare(&order_created(&largest_valid_order()), &request_id).unwrap();
        let trace_context = "traceparent".len() + 55 + "tracestate".len() + 512;
        let bytes = event.payload.to_string().len() + event.key.len() + request_id.as_str().len() + trace_context + 512;
        println!("the largest valid order.created is about {bytes} bytes; the limit is {MAX_EVENT_BYTES}");
        assert!(bytes * 2 <= MAX_EVENT_BYTES, "{bytes} bytes leave less than half the limit free");
    }
}
