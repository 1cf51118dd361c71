//! Gateway routes: public sign-up and sign-in, the API behind a bearer token
//! (forwarded to the services), and the API documentation.

mod auth;
mod index;
mod path_guard;
mod proxy;

use std::sync::Arc;

use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{MethodFilter, MethodRouter, get, on, post};
use utoipa::OpenApi;

pub use proxy::{FORWARDED_ROUTES, ForwardedRoute};

use crate::auth::{Accounts, RateLimits, Tokens, authenticate, limit_by_client_address, limit_by_principal};
use crate::conformance::{Conformance, check_answers};
use crate::docs::ApiDoc;
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
}

/// The state the router hands its handlers.
pub type SharedState = Arc<AppState>;

/// The public API routes.
pub fn router(state: AppState, limits: RateLimits) -> Router {
    let state = Arc::new(state);
    let sign_in = Router::new()
        .route("/api/auth/register", post(auth::register))
        .route("/api/auth/login", post(auth::login))
        .layer(from_fn_with_state(limits.clone(), limit_by_client_address));
    // Layers run outside-in from the last added: authenticate, then rate-limit by principal.
    let protected = FORWARDED_ROUTES
        .iter()
        .fold(Router::new(), |router, route| router.route(route.public, forwarder(route)))
        .layer(from_fn_with_state(limits, limit_by_principal))
        .layer(from_fn_with_state(state.tokens.clone(), authenticate));
    // Built once: served as is, and read for the statuses the conformance layer checks.
    let document = ApiDoc::openapi();
    let conformance = Conformance::of(&document);
    sign_in
        .merge(protected)
        .with_state(state)
        .route("/", get(index::root))
        .route("/api", get(index::index))
        .merge(crate::docs::router(document))
        .layer(from_fn_with_state(conformance, check_answers))
}

/// Refuses ambiguous paths before routing (see [`path_guard`]); for [`platform::http::ServerBuilder::edge_layer`].
pub fn guard_paths(router: Router) -> Router {
    router.layer(from_fn(path_guard::refuse_ambiguous_paths))
}

/// The handler for one table entry, on exactly the methods the backend serves there.
fn forwarder(route: &'static ForwardedRoute) -> MethodRouter<SharedState> {
    let filter = route
        .methods
        .iter()
        .filter_map(|method| MethodFilter::try_from(method.clone()).ok())
        .reduce(MethodFilter::or)
        .unwrap_or(MethodFilter::GET);
    on(filter, move |state, principal, request_id, params, request| {
        proxy::forward_route(route, state, principal, request_id, params, request)
    })
}
