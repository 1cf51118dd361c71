//! One JSON object per log line: timestamp, level, target, service, message, the fields of
//! the enclosing spans (such as `request_id`), the event's own fields, and the active span's
//! OpenTelemetry `trace_id` and `span_id`.
//!
//! A layer of its own rather than `tracing_subscriber::fmt` with a JSON format: that layer
//! formats every span's fields to JSON text when the span opens, parses and re-serialises
//! the text each time a field is recorded, and a JSON event format must parse each
//! enclosing span's text again for every line. Here a span keeps its fields as values, and
//! a line is serialised once, straight into a reused buffer. Lines go to a writer thread
//! (see [`super::init`]), so a request never waits on the log's `write`.

use std::cell::RefCell;
use std::fmt;
use std::io::Write;

use opentelemetry::trace::TraceContextExt as _;
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Span fields that only steer the OpenTelemetry layer; they mean nothing in a log line.
const OTEL_FIELD_PREFIX: &str = "otel.";

/// The layer that writes log lines as JSON to `writer`.
pub struct JsonLogLayer<W> {
    service: String,
    writer: W,
}

impl<W> JsonLogLayer<W> {
    /// A layer that stamps every line with `service` and writes it to `writer`.
    pub fn new(service: &str, writer: W) -> Self {
        Self { service: service.to_owned(), writer }
    }
}

/// Named values, in the order first recorded; recording a name again replaces its value.
#[derive(Default)]
struct Fields(Vec<(&'static str, Value)>);

impl Fields {
    fn set(&mut self, name: &'static str, value: Value) {
        if name.starts_with(OTEL_FIELD_PREFIX) {
            return;
        }
        match self.0.iter_mut().find(|(existing, _)| *existing == name) {
            Some((_, slot)) => *slot = value,
            None => self.0.push((name, value)),
        }
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field.name(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field.name(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.set(field.name(), Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field.name(), Value::from(format!("{value:?}")));
    }
}

thread_local! {
    /// The line being written, reused so that a line costs no allocation of its own.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl<S, W> Layer<S> for JsonLogLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attributes.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut own = Fields::default();
        event.record(&mut own);
        let message = own.0.iter().position(|(name, _)| *name == "message").map(|at| own.0.remove(at).1);
        let mut timestamp = String::new();
        if SystemTime.format_time(&mut Writer::new(&mut timestamp)).is_err() {
            timestamp.clear();
        }
        let metadata = event.metadata();
        LINE.with_borrow_mut(|line| {
            line.clear();
            let mut object = JsonObject::new(line);
            object.member("timestamp", &Value::from(timestamp));
            object.member("level", &Value::from(metadata.level().as_str()));
            object.member("target", &Value::from(metadata.target()));
            object.member("service", &Value::from(self.service.as_str()));
            object.member("message", message.as_ref().unwrap_or(&Value::from("")));
            // Outer spans first; an inner span's field, and then the event's own, win over a
            // field of the same name further out.
            if let Some(scope) = ctx.event_scope(event) {
                let spans: Vec<_> = scope.collect();
                for (depth, span) in spans.iter().enumerate().rev() {
                    let extensions = span.extensions();
                    let Some(fields) = extensions.get::<Fields>() else { continue };
                    for (name, value) in &fields.0 {
                        let shadowed = own.0.iter().any(|(other, _)| other == name)
                            || spans[..depth].iter().any(|inner| {
                                inner.extensions().get::<Fields>().is_some_and(|f| f.0.iter().any(|(n, _)| n == name))
                            });
                        if !shadowed {
                            object.member(name, value);
                        }
                    }
                }
            }
            for (name, value) in &own.0 {
                object.member(name, value);
            }
            if let Some((trace_id, span_id)) = current_otel_ids() {
                object.member("trace_id", &Value::from(trace_id));
                object.member("span_id", &Value::from(span_id));
            }
            object.finish();
            // A line that cannot be written is dropped: logging must never fail a request.
            let _ = self.writer.make_writer_for(metadata).write_all(line);
        });
    }
}

/// Writes one JSON object into a buffer, member by member.
struct JsonObject<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> JsonObject<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    fn member(&mut self, name: &str, value: &Value) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        // Writing JSON into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *self.out, name);
        self.out.push(b':');
        let _ = serde_json::to_writer(&mut *self.out, value);
    }

    fn finish(self) {
        self.out.extend_from_slice(b"}\n");
    }
}

/// Ids of the entered span, read from the OpenTelemetry context the layer activates on
/// enter: lock-free, unlike asking the span itself from inside the subscriber.
fn current_otel_ids() -> Option<(String, String)> {
    let context = opentelemetry::Context::current();
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| (span_context.trace_id().to_string(), span_context.span_id().to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Self;
        fn make_writer(&'w self) -> Self {
            self.clone()
        }
    }

    #[test]
    fn a_line_carries_its_spans_fields_with_the_innermost_and_the_events_own_winning() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(JsonLogLayer::new("test-service", captured.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("outer", request_id = "r-1", place = "outer", otel.kind = "server");
            let _outer = outer.enter();
            let inner = tracing::info_span!("inner", place = "inner", status = tracing::field::Empty);
            inner.record("status", 200);
            let _inner = inner.enter();
            tracing::info!(latency_ms = 1.5, status = 201, "request \"completed\"");
        });
        let bytes = captured.0.lock().expect("captured lines").clone();
        let text = String::from_utf8(bytes).expect("UTF-8");
        assert!(text.ends_with("}\n") && text.lines().count() == 1, "{text}");
        let line: serde_json::Map<String, Value> = serde_json::from_str(&text).expect("one JSON object");
        assert_eq!(line["service"], "test-service");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "request \"completed\"");
        assert_eq!(line["request_id"], "r-1");
        assert_eq!(line["place"], "inner");
        assert_eq!(line["status"], 201);
        assert_eq!(line["latency_ms"], 1.5);
        assert!(!line.contains_key("otel.kind"));
        let names: Vec<&str> = text.matches("\"place\":").collect();
        assert_eq!(names.len(), 1, "each name once: {text}");
    }
}
