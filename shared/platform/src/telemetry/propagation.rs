//! W3C trace context across process boundaries: HTTP headers (through
//! `opentelemetry-http`'s carriers) and maps stored beside outbox rows. Kafka headers
//! are the event infrastructure's (`eventing::kafka::propagation`).
//!
//! The parent must be set before a span is first entered, so callers create the
//! span, call `set_parent_from_*`, and only then instrument work with it.

use axum::http::HeaderMap;
use opentelemetry::global;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Writes `span`'s context into outgoing HTTP headers.
pub fn inject_http(span: &Span, headers: &mut HeaderMap) {
    let context = span.context();
    global::get_text_map_propagator(|propagator| propagator.inject_context(&context, &mut HeaderInjector(headers)));
}

/// Makes the caller's span (from incoming HTTP headers) the parent of `span`.
pub fn set_parent_from_http(span: &Span, headers: &HeaderMap) {
    let parent = global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)));
    // Fails only when no OpenTelemetry layer is installed (export disabled): nothing to join then.
    let _ = span.set_parent(parent);
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
