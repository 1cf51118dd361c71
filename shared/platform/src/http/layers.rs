//! The middleware stack every service's router gets, outermost first:
//! request id → server span (continuing or linking the caller's trace, see
//! [`CallerContext`]) → RED metrics → panic catcher → handler.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, Response};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use tracing::{Span, field};

use super::Problem;
use super::extract::{has_encoded_nul, refuse_nul};
use super::problem::InternalError;
use super::request_id::{REQUEST_ID_HEADER, set_request_id};
use crate::telemetry::propagation::{self, CallerContext};

/// The response header naming the request's trace id.
pub const TRACE_ID_HEADER: axum::http::HeaderName = axum::http::HeaderName::from_static("x-trace-id");

/// Wraps `router` in the platform's standard middleware; callers' spans are parents.
pub fn standard_layers(router: Router) -> Router {
    standard_layers_with(router, CallerContext::Parent)
}

/// Wraps `router` in the platform's standard middleware, treating callers' trace
/// context as `callers` says.
pub fn standard_layers_with(router: Router, callers: CallerContext) -> Router {
    router
        .layer(CatchPanicLayer::custom(|_panic| {
            tracing::error!("handler panicked");
            Problem::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, None).into_response()
        }))
        .layer(middleware::from_fn(log_internal_errors))
        .layer(middleware::from_fn(refuse_encoded_nul))
        .layer(middleware::from_fn(record_metrics))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |request: &Request<Body>| make_span(request, callers))
                .on_request(())
                .on_response(on_response)
                .on_failure(()),
        )
        .layer(middleware::from_fn(set_request_id))
}

/// Logs the cause a 500 carries (see [`Problem::internal`]) inside the request's span.
async fn log_internal_errors(request: Request, next: Next) -> axum::response::Response {
    let response = next.run(request).await;
    if let Some(InternalError(cause)) = response.extensions().get::<InternalError>() {
        tracing::error!(error = %cause, "request failed");
    }
    response
}

/// PostgreSQL cannot store NUL in text, so a path or query that carries one (`%00`) is a
/// 400 before any route or extractor sees it.
async fn refuse_encoded_nul(request: Request, next: Next) -> axum::response::Response {
    let uri = request.uri();
    if has_encoded_nul(uri.path()) || uri.query().is_some_and(has_encoded_nul) {
        return refuse_nul().into_response();
    }
    next.run(request).await
}

/// Writes the current span's trace context (`traceparent`, `tracestate`) into outgoing headers.
pub fn inject_trace_context(headers: &mut HeaderMap) {
    propagation::inject_http(&Span::current(), headers);
}

fn route_of(request: &Request<Body>) -> &str {
    request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str)
}

fn is_probe(route: &str) -> bool {
    route.starts_with("/health") || route == "/metrics"
}

fn make_span(request: &Request<Body>, callers: CallerContext) -> Span {
    let route = route_of(request);
    let method = request.method().as_str();
    let request_id = request.headers().get(&REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let span = tracing::info_span!(
        "http.server.request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = field::Empty,
        http.request.method = method,
        http.route = route,
        url.path = request.uri().path(),
        request_id,
        http.response.status_code = field::Empty,
    );
    propagation::adopt_caller_context(&span, request.headers(), callers);
    span
}

fn on_response(response: &Response<Body>, _latency: Duration, span: &Span) {
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

/// The method as a metrics label: any client can send any method token, so only the
/// standard ones become label values, and the rest share `other` (bounded series).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Records RED metrics and writes the access log line (inside the request's span,
/// so the line carries its request and trace ids).
async fn record_metrics(request: Request, next: Next) -> axum::response::Response {
    let route = route_of(&request).to_owned();
    let method = method_label(request.method());
    let started = Instant::now();
    let mut response = next.run(request).await;
    // The trace to open in Jaeger for this request (absent when span export is off).
    if let Some(trace_id) = propagation::current_trace_id()
        && let Ok(value) = axum::http::HeaderValue::from_str(&trace_id)
    {
        response.headers_mut().insert(TRACE_ID_HEADER, value);
    }
    let elapsed = started.elapsed();
    let status = response.status();
    // Probes are scraped every few seconds; counting and logging them would drown the real traffic.
    if is_probe(&route) {
        tracing::debug!(status = status.as_u16(), "probe answered");
    } else {
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), latency_ms, "request failed");
        } else {
            tracing::info!(status = status.as_u16(), latency_ms, "request completed");
        }
        let status = status.as_u16().to_string();
        metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route.clone())
            .record(elapsed.as_secs_f64());
        metrics::counter!("http_requests_total", "method" => method, "route" => route, "status" => status).increment(1);
    }
    response
}
