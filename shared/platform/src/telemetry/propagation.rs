//! W3C trace context across process boundaries: HTTP headers (through
//! `opentelemetry-http`'s carriers) and maps stored beside outbox rows. Kafka headers
//! are the event infrastructure's (`eventing::kafka::propagation`).
//!
//! The parent must be set before a span is first entered, so callers create the
//! span, call `set_parent_from_*`, and only then instrument work with it.

use axum::http::{HeaderMap, HeaderName};
use opentelemetry::global;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Writes `span`'s context into outgoing HTTP headers.
pub fn inject_http(span: &Span, headers: &mut HeaderMap) {
    let context = span.context();
    global::get_text_map_propagator(|propagator| propagator.inject_context(&context, &mut HeaderInjector(headers)));
}

/// Most `tracestate` members and bytes a caller may send (W3C Trace Context, level 1).
const TRACESTATE_MAX_MEMBERS: usize = 32;
const TRACESTATE_MAX_BYTES: usize = 512;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// How a server treats the trace context its callers send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallerContext {
    /// A trusted caller's span is the parent of the request's span (the platform's own
    /// services calling each other).
    #[default]
    Parent,
    /// An untrusted caller's span is only linked: the request starts a trace of its own,
    /// so no client can join, pollute or force the sampling of the platform's traces
    /// (OpenTelemetry's advice for public endpoints). Its baggage is ignored.
    Link,
}

/// Applies `policy` to `span` with the caller's context from `headers`. Either way the
/// caller's `baggage` is dropped and a `tracestate` beyond W3C's limits is ignored, so
/// nothing a client sends grows the headers of the calls and events the request causes.
pub fn adopt_caller_context(span: &Span, headers: &HeaderMap, policy: CallerContext) {
    // A span no layer records (logs above INFO, no span export) takes no parent and no link:
    // reading the caller's context for it would be work for nothing on every request.
    if span.is_disabled() {
        return;
    }
    let mut trace_headers = HeaderMap::new();
    for name in [TRACEPARENT, TRACESTATE] {
        if let Some(value) = headers.get(&name) {
            trace_headers.insert(name, value.clone());
        }
    }
    let oversized = trace_headers.get(&TRACESTATE).is_some_and(|state| {
        state.len() > TRACESTATE_MAX_BYTES || state.as_bytes().split(|b| *b == b',').count() > TRACESTATE_MAX_MEMBERS
    });
    if oversized {
        trace_headers.remove(&TRACESTATE);
    }
    let caller = TraceContextPropagator::new().extract(&HeaderExtractor(&trace_headers));
    match policy {
        // Fails only when no OpenTelemetry layer is installed (export disabled): nothing to join then.
        CallerContext::Parent => {
            let _ = span.set_parent(caller);
        }
        CallerContext::Link => {
            use opentelemetry::trace::TraceContextExt as _;
            let linked = caller.span().span_context().clone();
            if linked.is_valid() {
                span.add_link(linked);
            }
        }
    }
}

/// The current span's context as a header map, to store beside an outbox row.
pub fn capture_current() -> std::collections::HashMap<String, String> {
    let context = Span::current().context();
    let mut carrier = std::collections::HashMap::new();
    global::get_text_map_propagator(|propagator| propagator.inject_context(&context, &mut carrier));
    carrier
}

/// A context from a stored header map.
pub fn context_from_map(carrier: &std::collections::HashMap<String, String>) -> opentelemetry::Context {
    global::get_text_map_propagator(|propagator| propagator.extract(carrier))
}

/// The current span's trace id, when spans are being recorded.
pub fn current_trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt as _;
    let context = Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| span_context.trace_id().to_string())
}
