//! HTTP routes of user-service.

mod users;

use axum::Router;
use axum::routing::get;

use crate::startup::AppState;

/// The service's API routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/users", get(users::list).post(users::create))
        .route("/users/{id}", get(users::get))
        .with_state(state)
}
