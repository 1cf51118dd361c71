//! Gateway routes: `/api/users…` and `/api/orders…` go to their services.

mod proxy;

use axum::Router;
use axum::routing::any;

pub use proxy::Upstreams;

/// The public API routes.
pub fn router(upstreams: Upstreams) -> Router {
    Router::new()
        .route("/api/users", any(proxy::users))
        .route("/api/users/{*rest}", any(proxy::users))
        .route("/api/orders", any(proxy::orders))
        .route("/api/orders/{*rest}", any(proxy::orders))
        .with_state(upstreams)
}
