//! Gateway routes: public sign-up and sign-in, the API behind a bearer token
//! (forwarded to the services), and the API documentation.

mod auth;
mod index;
mod path_guard;
mod proxy;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodFilter, MethodRouter, get, on, post};

pub use path_guard::refusal as ambiguous_path;
pub use proxy::{FORWARDED_ROUTES, ForwardedRoute};

use crate::auth::{Accounts, Gatekeeping, RateLimits, Tokens, limit_by_client_address};
use crate::upstream::Upstreams;

/// What the gateway's handlers share, behind one reference count ([`SharedState`]): every
/// layer and handler takes a clone per request, which must not copy keys, sets or strings.
pub struct AppState {
    /// The backends.
    pub upstreams: Upstreams,
    /// Token issuing and checking.
    pub tokens: Arc<Tokens>,
    /// Whether a token's account still exists with its role.
    pub accounts: Accounts,
    /// The per-principal and per-address limits.
    pub limits: RateLimits,
}

impl Gatekeeping for AppState {
    fn tokens(&self) -> &Tokens {
        &self.tokens
    }
    fn limits(&self) -> &RateLimits {
        &self.limits
    }
}

/// The state the router hands its handlers.
pub type SharedState = Arc<AppState>;

/// The public API routes, with `document` served as the API's description.
pub fn router(state: AppState, document: utoipa::openapi::OpenApi) -> Router {
    let state = Arc::new(state);
    // The body limit binds the routes that read a body themselves. A forwarded body streams
    // through `Upstreams`, which holds it to the same limit; a layer on those routes would
    // only add a boxed service to every call's path.
    let sign_in = Router::new()
        .route("/api/auth/register", post(auth::register))
        .route("/api/auth/login", post(auth::login))
        .layer(DefaultBodyLimit::max(state.upstreams.max_body_bytes()))
        .layer(from_fn_with_state(state.limits.clone(), limit_by_client_address));
    // Each forwarded route authenticates its caller and checks its rate limit itself
    // (the [`crate::auth::Authenticated`] extractor).
    let protected =
        FORWARDED_ROUTES.iter().fold(Router::new(), |router, route| router.route(route.public, forwarder(route)));
    sign_in
        .merge(protected)
        .with_state(state)
        .route("/", get(index::root))
        .route("/api", get(index::index))
        .merge(crate::docs::router(document))
}

/// The handler for one table entry, on exactly the methods the backend serves there.
fn forwarder(route: &'static ForwardedRoute) -> MethodRouter<SharedState> {
    let filter = route
        .methods
        .iter()
        .filter_map(|method| MethodFilter::try_from(method.clone()).ok())
        .reduce(MethodFilter::or)
        .unwrap_or(MethodFilter::GET);
    on(filter, move |state, caller, request_id, params, request| {
        proxy::forward_route(route, state, caller, request_id, params, request)
    })
}
