//! W3C trace context across process boundaries: HTTP headers and Kafka headers.
//!
//! The parent must be set before a span is first entered, so callers create the
//! span, call `set_parent_from_*`, and only then instrument work with it.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::global;
use opentelemetry::propagation::{Extractor, Injector};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HttpInjector<'a>(&'a mut HeaderMap);

impl Injector for HttpInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(key.as_bytes()), HeaderValue::from_str(&value)) {
            self.0.insert(name, value);
        }
    }
}

struct HttpExtractor<'a>(&'a HeaderMap);

impl Extractor for HttpExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct KafkaInjector(Vec<(String, String)>);

impl Injector for KafkaInjector {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_owned(), value));
    }
}

struct KafkaExtractor<'a, H>(&'a H);

impl<H: Headers> Extractor for KafkaExtractor<'_, H> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .filter(|h| h.key.eq_ignore_ascii_case(key))
            .filter_map(|h| h.value.and_then(|v| std::str::from_utf8(v).ok()))
            .last()
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|h| h.key).collect()
    }
}

/// Writes `span`'s context into outgoing HTTP headers.
pub fn inject_http(span: &Span, headers: &mut HeaderMap) {
    let context = span.context();
    global::get_text_map_propagator(|propagator| propagator.inject_context(&context, &mut HttpInjector(headers)));
}

/// Makes the caller's span (from incoming HTTP headers) the parent of `span`.
pub fn set_parent_from_http(span: &Span, headers: &HeaderMap) {
    let parent = global::get_text_map_propagator(|propagator| propagator.extract(&HttpExtractor(headers)));
    // Fails only when no OpenTelemetry layer is installed (export disabled): nothing to join then.
    let _ = span.set_parent(parent);
}

/// Returns `headers` with `span`'s context appended.
pub fn inject_kafka(span: &Span, headers: OwnedHeaders) -> OwnedHeaders {
    let context = span.context();
    let mut injector = KafkaInjector(Vec::new());
    global::get_text_map_propagator(|propagator| propagator.inject_context(&context, &mut injector));
    injector.0.iter().fold(headers, |headers, (key, value)| {
        headers.insert(Header { key: key.as_str(), value: Some(value.as_bytes()) })
    })
}

/// Makes the producer's span (from the message's headers) the parent of `span`.
pub fn set_parent_from_kafka<H: Headers>(span: &Span, headers: Option<&H>) {
    if let Some(headers) = headers {
        let parent = global::get_text_map_propagator(|propagator| propagator.extract(&KafkaExtractor(headers)));
        let _ = span.set_parent(parent);
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
