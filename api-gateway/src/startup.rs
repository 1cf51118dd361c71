//! Wiring: tokens, rate limits, the upstream client, CORS, routes and the server.

use std::sync::Arc;

use axum::http::{Method, header};
use platform::http::{Server, ServerBuilder};
use platform::telemetry::propagation::CallerContext;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::OpenApi as _;

use crate::auth::{Accounts, RateLimits, Tokens};
use crate::configuration::Settings;
use crate::conformance::Conformance;
use crate::docs::ApiDoc;
use crate::routes::{self, AppState};
use crate::upstream::Upstreams;

/// Builds api-gateway. The result is a bound [`Server`]: `port()`, `run_until_stopped()`, `run_until(signal)`.
pub struct Application;

impl Application {
    /// Builds the upstream client and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Server> {
        platform::metrics::handle();
        let upstreams = Upstreams::new(&settings.upstreams, &settings.service_key, settings.limits.max_body_bytes)?;
        let accounts = Accounts::new(settings.jwt.status_ttl, 100_000);
        let limits = RateLimits::new(&settings.limits);
        let state =
            AppState { upstreams, tokens: Arc::new(Tokens::new(&settings.jwt)), accounts, limits: limits.clone() };
        // Built once: served as is, and read for the statuses the conformance check expects.
        let document = ApiDoc::openapi();
        let conformance = Conformance::of(&document);
        let api = routes::router(state, document);
        // Health and metrics are for operators and Prometheus: not on the public port.
        let callers = if settings.trust_client_trace_context { CallerContext::Parent } else { CallerContext::Link };
        let mut server = ServerBuilder::new(api)
            .abandon_with_client()
            .serving_threads(settings.serving_threads)
            .admin_listener(settings.admin)
            .caller_context(callers)
            .path_policy(routes::ambiguous_path)
            .answer_check(conformance);
        let shutdown = server.shutdown_token();
        server.spawn(limits.prune(shutdown));
        if !settings.limits.cors_origins.is_empty() {
            // At the edge: a preflight is answered whatever methods its route serves.
            let cors = CorsLayer::new()
                .allow_origin(AllowOrigin::list(settings.limits.cors_origins.clone()))
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, platform::http::REQUEST_ID_HEADER])
                .expose_headers([platform::http::REQUEST_ID_HEADER]);
            server = server.edge_layer(move |router| router.layer(cors));
        }
        // The gateway holds no state of its own: ready as soon as it listens. Backends
        // report their own readiness; tying it to theirs would cascade one outage into all.
        server.bind(&settings.http).await
    }
}
