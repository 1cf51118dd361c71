//! HTTP routes of order-service. All need the service API key and a principal.

mod orders;
mod stats;

use axum::Router;
use axum::routing::get;

use crate::state::AppState;

/// The service's API routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/orders", get(orders::list).post(orders::create))
        .route("/orders/stats", get(stats::get))
        .route("/orders/{id}", get(orders::get).patch(orders::update_status).delete(orders::cancel))
        .with_state(state)
}
