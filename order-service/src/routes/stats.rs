//! `GET /orders/stats` (admin): counts by status, revenue, average order value.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use contracts::api::orders::{OrderStats, OrderStatus};
use contracts::money::Money;
use platform::auth::Principal;
use platform::http::Problem;

use crate::repository::orders;
use crate::state::AppState;

/// `GET /orders/stats`.
pub async fn get(State(state): State<AppState>, principal: Principal) -> Result<Json<OrderStats>, Problem> {
    principal.require_admin()?;
    let totals = orders::totals_by_status(&state.pool).await?;
    let mut counts: BTreeMap<OrderStatus, i64> = OrderStatus::ALL.into_iter().map(|s| (s, 0)).collect();
    let (mut revenue_cents, mut paid) = (0i64, 0i64);
    for row in &totals {
        if let Some(count) = OrderStatus::parse(&row.status).and_then(|status| counts.get_mut(&status)) {
            *count = row.orders;
        }
        if row.status == "paid" {
            revenue_cents = row.total_cents;
            paid = row.orders;
        }
    }
    let average = if paid == 0 { 0 } else { (revenue_cents + paid / 2) / paid };
    Ok(Json(OrderStats {
        total_orders: counts.values().sum(),
        counts_by_status: counts,
        revenue: Money::from_cents(revenue_cents).map_err(anyhow::Error::from)?,
        average_order_value: Money::from_cents(average).map_err(anyhow::Error::from)?,
    }))
}
