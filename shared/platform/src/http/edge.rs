//! The one middleware every request passes through, in this order: the request id, the
//! server span (continuing or linking the caller's trace, see [`CallerContext`]), the
//! refusal of paths the service must not read (an encoded NUL, and whatever the service's
//! [`PathPolicy`] adds), the body's deadline, the handler with its panics caught (and, on
//! services that ask for it, run to completion as a task of its own), then the RED metrics,
//! the access log line and the check of the answer's status.
//!
//! One hand-written service rather than a stack of `from_fn` layers: axum clones a route's
//! whole service stack for every request, and each `from_fn` layer clones the stack inside
//! it again and boxes its own future, so eight such layers cost about a tenth of the
//! gateway's instructions a request (callgrind) before any of them did its work.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::FutureExt as _;
use futures::future::BoxFuture;
use http_body::Body as _;
use tower::{Layer, Service};
use tracing::{Instrument as _, Span, field};

use super::Problem;
use super::deadline::within;
use super::extract::{has_encoded_nul, refuse_nul};
use super::problem::InternalError;
use super::request_id::{REQUEST_ID_HEADER, RequestId};
use crate::telemetry::propagation::{self, CallerContext};

/// The response header naming the request's trace id.
pub const TRACE_ID_HEADER: axum::http::HeaderName = axum::http::HeaderName::from_static("x-trace-id");

/// Why a raw request path is refused (a 400 problem with that reason), or `None` when the
/// service may read it. A path with an encoded NUL is refused whatever the policy says.
pub type PathPolicy = fn(&str) -> Option<&'static str>;

/// Watches the status of every answer to a routed request, such as a check that each
/// status is one the API's document lists.
pub trait AnswerCheck: Send + Sync {
    /// Called once per answer, with the route's template.
    fn check(&self, method: &Method, route: &str, status: StatusCode);
}

/// What the edge does besides its fixed steps.
#[derive(Clone)]
pub(super) struct EdgeSettings {
    /// How the request's span treats the caller's trace context.
    pub callers: CallerContext,
    /// How long a request's body may take to arrive.
    pub body_deadline: Duration,
    /// The service's own refusals of raw paths.
    pub paths: Option<PathPolicy>,
    /// Runs the handler as a task of its own, so a client that goes away cannot cut it short.
    pub finish_abandoned: bool,
    /// Sees every answer's status.
    pub answers: Option<Arc<dyn AnswerCheck>>,
}

/// The layer that puts [`Edge`] around every route (and the fallbacks).
#[derive(Clone)]
pub(super) struct EdgeLayer(Arc<EdgeSettings>);

impl EdgeLayer {
    pub(super) fn new(settings: EdgeSettings) -> Self {
        Self(Arc::new(settings))
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge { inner, settings: self.0.clone() }
    }
}

/// See the module's documentation.
#[derive(Clone)]
pub(super) struct Edge<S> {
    inner: S,
    settings: Arc<EdgeSettings>,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The service that was polled ready serves this request; a clone stays for the next.
        let inner = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, inner);
        Box::pin(handle(inner, self.settings.clone(), request).map(Ok))
    }
}

async fn handle<S>(inner: S, settings: Arc<EdgeSettings>, mut request: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    let supplied = request.headers().get(&REQUEST_ID_HEADER).and_then(|v| v.to_str().ok());
    let id = RequestId::parse_or_generate(supplied);
    let id_header = id.header_value();
    request.headers_mut().insert(REQUEST_ID_HEADER, id.header_value());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let span = make_span(&request, id.as_str(), route.as_ref(), settings.callers);
    request.extensions_mut().insert(id);
    let started = Instant::now();
    let mut response = answer(inner, &settings, request).instrument(span.clone()).await;
    let _entered = span.enter();
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    if let Some(InternalError(cause)) = response.extensions().get::<InternalError>() {
        tracing::error!(error = %cause, "request failed");
    }
    response.headers_mut().insert(REQUEST_ID_HEADER, id_header);
    // The trace to open in Jaeger for this request (absent when span export is off).
    if let Some(trace_id) = propagation::current_trace_id()
        && let Ok(value) = HeaderValue::from_str(&trace_id)
    {
        response.headers_mut().insert(TRACE_ID_HEADER, value);
    }
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    record(&method, route, status, started.elapsed());
    if let Some(answers) = &settings.answers
        && route != "unmatched"
    {
        answers.check(&method, route, status);
    }
    response
}

/// The handler's answer, or the edge's own refusal.
async fn answer<S>(mut inner: S, settings: &EdgeSettings, request: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    let uri = request.uri();
    // PostgreSQL cannot store NUL in text, so a path or query that carries one (`%00`) is
    // a 400 before any route or extractor sees it.
    if has_encoded_nul(uri.path()) || uri.query().is_some_and(has_encoded_nul) {
        return refuse_nul().into_response();
    }
    if let Some(reason) = settings.paths.and_then(|refusal| refusal(uri.path())) {
        tracing::info!(path = uri.path(), reason, "path refused");
        return Problem::bad_request(reason).into_response();
    }
    // A request without a body (most reads) needs no deadline, nor its timer.
    let request = if request.body().is_end_stream() {
        request
    } else {
        let (parts, body) = request.into_parts();
        Request::from_parts(parts, within(body, settings.body_deadline))
    };
    let handled = AssertUnwindSafe(inner.call(request)).catch_unwind();
    let outcome = if settings.finish_abandoned {
        // A task of its own, so a client that disconnects halfway does not cancel it. A
        // handler future dropped inside a transaction gives its connection back
        // mid-transaction, and a handler that had stored something would stop before the
        // rest of its work. Finishing costs a little work for nobody; it never leaves half.
        match tokio::spawn(handled.in_current_span()).await {
            Ok(outcome) => outcome,
            Err(error) => Err(Box::new(error) as Box<dyn std::any::Any + Send>),
        }
    } else {
        handled.await
    };
    match outcome {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_panic) => {
            tracing::error!("handler panicked");
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, None).into_response()
        }
    }
}

/// Writes the current span's trace context (`traceparent`, `tracestate`) into outgoing headers.
pub fn inject_trace_context(headers: &mut HeaderMap) {
    propagation::inject_http(&Span::current(), headers);
}

fn is_probe(route: &str) -> bool {
    route.starts_with("/health") || route == "/metrics"
}

fn make_span(request: &Request<Body>, request_id: &str, route: Option<&MatchedPath>, callers: CallerContext) -> Span {
    let route = route.map_or("unmatched", MatchedPath::as_str);
    let method = request.method().as_str();
    let span = tracing::info_span!(
        "http.server.request",
        otel.name = %format_args!("{method} {route}"),
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

/// The method as a metrics label: any client can send any method token, so only the
/// standard ones become label values, and the rest share `other` (bounded series).
fn method_label(method: &Method) -> &'static str {
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

/// Records RED metrics and writes the access log line (inside the request's span, so the
/// line carries its request and trace ids).
fn record(method: &Method, route: &str, status: StatusCode, elapsed: Duration) {
    // Probes are scraped every few seconds; counting and logging them would drown the real traffic.
    if is_probe(route) {
        tracing::debug!(status = status.as_u16(), "probe answered");
        return;
    }
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::error!(status = status.as_u16(), latency_ms, "request failed");
    } else {
        tracing::info!(status = status.as_u16(), latency_ms, "request completed");
    }
    super::red::record(method_label(method), route, status, elapsed);
}
