//! `/orders`: place (publishing `order.created`), read one, list with filters.

use anyhow::Context;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use shared::http::{ApiJson, ApiPath, ApiQuery, FieldError, Problem, RequestId};
use uuid::Uuid;

use crate::domain::{NewOrder, Order, OrderKind, OrderRequest, OrderStatus};
use crate::ordering::{PlaceOrderError, place_order};
use crate::repository::orders::{self, OrderFilter};
use crate::startup::AppState;

/// `POST /orders`.
pub async fn create(
    State(state): State<AppState>,
    request_id: RequestId,
    ApiJson(request): ApiJson<OrderRequest>,
) -> Result<(StatusCode, Json<Order>), Problem> {
    let order = NewOrder::try_from(request).map_err(PlaceOrderError::Invalid)?;
    let mut transaction = state.pool.begin().await.context("cannot begin transaction")?;
    let stored = place_order(&mut transaction, &order, OrderKind::Standard, &request_id)
        .await?
        .context("a standard order never conflicts")?;
    transaction.commit().await.context("cannot commit the order")?;
    Ok((StatusCode::CREATED, Json(stored)))
}

/// `GET /orders/{id}`.
pub async fn get(State(state): State<AppState>, ApiPath(id): ApiPath<Uuid>) -> Result<Json<Order>, Problem> {
    let mut connection = state.pool.acquire().await.context("cannot get a connection")?;
    orders::find(&mut connection, id)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("order {id} does not exist")))
}

/// Query of `GET /orders`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    user_id: Option<Uuid>,
    status: Option<String>,
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

fn default_limit() -> i64 {
    50
}

/// `GET /orders?userId=&status=&limit=&offset=`, newest first.
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Vec<Order>>, Problem> {
    let mut errors = Vec::new();
    let status = match query.status.as_deref().map(OrderStatus::parse) {
        Some(None) => {
            errors.push(FieldError::new("status", "must be pending, paid, payment_failed or cancelled"));
            None
        }
        Some(status) => status,
        None => None,
    };
    if !(1..=100).contains(&query.limit) {
        errors.push(FieldError::new("limit", "must be 1 to 100"));
    }
    if query.offset < 0 {
        errors.push(FieldError::new("offset", "must not be negative"));
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let filter = OrderFilter { user_id: query.user_id, status };
    let mut connection = state.pool.acquire().await.context("cannot get a connection")?;
    Ok(Json(orders::list(&mut connection, &filter, query.limit, query.offset).await?))
}
