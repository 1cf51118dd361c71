//! HTTP routes of user-service. All of them need the service API key; the
//! gateway calls them on behalf of a principal, or of nobody for sign-up and sign-in, and
//! consumers of its events ask it about the events it published.

mod auth;
mod events;
mod users;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

/// The service's API routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/users", get(users::list).post(users::create))
        .route("/users/{id}", get(users::get).put(users::update).delete(users::delete))
        .route("/auth/register", post(auth::register))
        .route("/auth/verify", post(auth::verify))
        .route("/events/{id}", get(events::get))
        .with_state(state)
}
