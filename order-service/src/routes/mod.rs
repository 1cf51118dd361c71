//! HTTP routes of order-service.

mod orders;

use axum::Router;
use axum::routing::get;

use crate::startup::AppState;

/// The service's API routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/orders", get(orders::list).post(orders::create))
        .route("/orders/{id}", get(orders::get))
        .with_state(state)
}
