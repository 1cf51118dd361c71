//! Gateway routes: public sign-up and sign-in, the API behind a bearer token
//! (forwarded to the services), and the API documentation.

mod auth;
mod index;
mod proxy;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{any, get, post};

pub use proxy::Upstreams;

use crate::auth::{RateLimits, Tokens, authenticate, limit_by_client_address, limit_by_principal};

/// What the gateway's handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The backends.
    pub upstreams: Upstreams,
    /// Token issuing and checking.
    pub tokens: Tokens,
}

/// The public API routes.
pub fn router(state: AppState, limits: RateLimits) -> Router {
    let sign_in = Router::new()
        .route("/api/auth/register", post(auth::register))
        .route("/api/auth/login", post(auth::login))
        .layer(from_fn_with_state(limits.clone(), limit_by_client_address));
    // Layers run outside-in from the last added: authenticate, then rate-limit by principal.
    let protected = Router::new()
        .route("/api/users", any(proxy::users))
        .route("/api/users/{*rest}", any(proxy::users))
        .route("/api/orders", any(proxy::orders))
        .route("/api/orders/{*rest}", any(proxy::orders))
        .layer(from_fn_with_state(limits, limit_by_principal))
        .layer(from_fn_with_state(state.tokens.clone(), authenticate));
    sign_in.merge(protected).with_state(state).route("/api", get(index::index)).merge(crate::docs::router())
}
