//! `/orders`: place, read, list, change status (admin) and cancel.

use anyhow::Context;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use contracts::api::orders::{OrderListQuery, StatusChange};
use platform::auth::{Principal, forbidden};
use platform::http::{ApiJson, ApiPath, ApiQuery, FieldError, Page, Problem, RequestId};
use uuid::Uuid;

use crate::domain::{CreateOrderRequest, NewOrder, Order, OrderKind, OrderStatus};
use crate::events::announce_cancellation;
use crate::ordering::{PlaceOrderError, place_order};
use crate::repository::orders::{self, OrderFilter};
use crate::state::AppState;

/// `POST /orders`: for the caller themself, or for anyone when an admin asks.
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiJson(request): ApiJson<CreateOrderRequest>,
) -> Result<(StatusCode, Json<Order>), Problem> {
    let order = NewOrder::try_from(request).map_err(PlaceOrderError::Invalid)?;
    if !principal.may_access(order.user_id) {
        return Err(forbidden());
    }
    let place = state.admission.admit().await?;
    // One statement stores the order, its lines and its event: no transaction to open,
    // and nothing half-done if the client goes away mid-request.
    let mut connection = state.pool.acquire().await.context("cannot get a connection")?;
    let stored = place_order(&mut connection, &order, OrderKind::Standard, &request_id)
        .await?
        .context("a standard order never conflicts")?;
    place.keep();
    state.relay.wake();
    Ok((StatusCode::CREATED, Json(stored)))
}

fn not_found(id: Uuid) -> Problem {
    Problem::not_found(format!("order {id} does not exist"))
}

/// The order, if the principal may see it. Another user's order is a 404, not a 403:
/// whether an order id exists is itself private.
async fn visible_order(state: &AppState, principal: &Principal, id: Uuid) -> Result<Order, Problem> {
    let mut connection = state.pool.acquire().await.context("cannot get a connection")?;
    orders::find(&mut connection, id).await?.filter(|o| principal.may_access(o.user_id)).ok_or_else(|| not_found(id))
}

/// `GET /orders/{id}` (its owner or an admin).
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Order>, Problem> {
    visible_order(&state, &principal, id).await.map(Json)
}

/// Moves an order to `next`, or says why it cannot move. A cancellation writes
/// `order.cancelled` in the same transaction, so payment-service takes no payment for the
/// order, or gives back the one it took.
async fn transition(state: &AppState, id: Uuid, next: OrderStatus, request_id: &RequestId) -> Result<Order, Problem> {
    let mut transaction = state.pool.begin().await.context("cannot begin transaction")?;
    let previous = orders::transition(&mut transaction, id, next).await?.ok_or_else(|| not_found(id))?;
    if !previous.can_become(next) {
        return Err(Problem::conflict(format!(
            "the order is {}; it can no longer become {}",
            previous.as_str(),
            next.as_str()
        )));
    }
    let order = orders::find(&mut transaction, id).await?.context("order vanished inside its transaction")?;
    if next == OrderStatus::Cancelled {
        announce_cancellation(&mut transaction, order.id, order.user_id, order.total_amount.cents(), request_id)
            .await?;
    }
    transaction.commit().await.context("cannot commit the status change")?;
    if next == OrderStatus::Cancelled {
        state.relay.wake();
    }
    if previous == OrderStatus::Pending && next != OrderStatus::Pending {
        state.admission.settled(1);
    }
    metrics::counter!("order_status_changes_total", "status" => next.as_str()).increment(1);
    tracing::info!(order_id = %id, status = next.as_str(), "order status changed");
    Ok(order)
}

/// `PATCH /orders/{id}` (admin): only valid transitions (pending → paid, payment_failed or
/// cancelled; paid → cancelled). `refunded` follows payment-service's refund, never a request.
pub async fn update_status(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(change): ApiJson<StatusChange>,
) -> Result<Json<Order>, Problem> {
    principal.require_admin()?;
    if change.status == OrderStatus::Refunded {
        return Err(Problem::conflict("an order becomes refunded only by payment-service's refund; cancel it instead"));
    }
    transition(&state, id, change.status, &request_id).await.map(Json)
}

/// `DELETE /orders/{id}` (its owner or an admin): cancels a pending or paid order; a
/// payment already taken is refunded.
pub async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, Problem> {
    visible_order(&state, &principal, id).await?;
    transition(&state, id, OrderStatus::Cancelled, &request_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /orders?userId=&status=&limit=&offset=`, newest first: the caller's own orders,
/// or anyone's for an admin.
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<OrderListQuery>,
) -> Result<Json<Vec<Order>>, Problem> {
    let mut errors = Vec::new();
    let status = match query.status.as_deref().map(OrderStatus::parse) {
        Some(None) => {
            errors.push(FieldError::new("status", "must be pending, paid, payment_failed, cancelled or refunded"));
            None
        }
        Some(status) => status,
        None => None,
    };
    let page = Page::check(query.limit, query.offset, &mut errors);
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let user_id = match (principal.is_admin(), query.user_id) {
        (true, filter) => filter,
        (false, Some(other)) if other != principal.id => return Err(forbidden()),
        (false, _) => Some(principal.id),
    };
    let filter = OrderFilter { user_id, status };
    let mut connection = state.pool.acquire().await.context("cannot get a connection")?;
    Ok(Json(orders::list(&mut connection, &filter, page.limit, page.offset).await?))
}
