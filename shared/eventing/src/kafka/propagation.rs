//! W3C trace context in Kafka headers: written by the publisher, read by the consumer,
//! so one request's trace runs through every hop of the event chain.
//!
//! The parent must be set before a span is first entered, so callers create the
//! span, call [`set_parent_from_kafka`], and only then instrument work with it.

use opentelemetry::global;
use opentelemetry::propagation::{Extractor, Injector};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

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
