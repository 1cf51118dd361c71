//! One JSON object per log line: timestamp, level, target, service, message, the fields of
//! the enclosing spans (such as `request_id`), the event's own fields, and the active span's
//! OpenTelemetry `trace_id` and `span_id`.
//!
//! A layer of its own rather than `tracing_subscriber::fmt` with a JSON format: that layer
//! formats every span's fields to JSON text when the span opens, parses and re-serialises
//! the text each time a field is recorded, and a JSON event format must parse each
//! enclosing span's text again for every line. Here each field is written as JSON text once,
//! when it is recorded, and a line copies those texts into a reused buffer. Lines go to a
//! writer thread (see [`super::init`]), so a request never waits on the log's `write`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::Write;
use std::ops::Range;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::TraceContextExt as _;
use serde::Serializer as _;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
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

/// Named values as JSON text, in the order first recorded; recording a name again replaces
/// its value. Each value is written once, when recorded, and copied into every line.
struct Fields {
    /// Each name and where its value's text lies in `text`.
    names: Vec<(&'static str, Range<usize>)>,
    text: Vec<u8>,
}

impl Default for Fields {
    /// Room for a request span's fields, so that recording them does not grow the buffers
    /// step by step.
    fn default() -> Self {
        Self { names: Vec::with_capacity(8), text: Vec::with_capacity(256) }
    }
}

impl Fields {
    fn clear(&mut self) {
        self.names.clear();
        self.text.clear();
    }

    fn set(&mut self, name: &'static str, write: impl FnOnce(&mut Vec<u8>)) {
        if name.starts_with(OTEL_FIELD_PREFIX) {
            return;
        }
        let existing = self.names.iter().position(|(existing, _)| *existing == name);
        if let Some(at) = existing {
            // The old text goes, so a span recorded again and again (a loop's) keeps only
            // its current values.
            let old = self.names[at].1.clone();
            self.text.drain(old.clone());
            for (_, range) in &mut self.names {
                if range.start >= old.end {
                    *range = range.start - old.len()..range.end - old.len();
                }
            }
        }
        let start = self.text.len();
        write(&mut self.text);
        let range = start..self.text.len();
        match existing {
            Some(at) => self.names[at].1 = range,
            None => self.names.push((name, range)),
        }
    }

    fn get(&self, name: &str) -> Option<&[u8]> {
        self.names.iter().find(|(existing, _)| *existing == name).map(|(_, range)| &self.text[range.clone()])
    }

    fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|(existing, _)| *existing == name)
    }

    fn iter(&self) -> impl Iterator<Item = (&'static str, &[u8])> {
        self.names.iter().map(|(name, range)| (*name, &self.text[range.clone()]))
    }
}

/// Writes `value` as JSON; writing into a `Vec` cannot fail.
fn json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let _ = serde_json::to_writer(out, value);
}

/// Writes what `value` displays as a JSON string, escaped as it is formatted.
fn json_display(out: &mut Vec<u8>, value: &dyn fmt::Display) {
    let _ = serde_json::Serializer::new(out).collect_str(value);
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field.name(), |out| json(out, &value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), |out| json(out, &value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field.name(), |out| json(out, &value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), |out| json(out, &value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), |out| json(out, value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.set(field.name(), |out| json_display(out, value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field.name(), |out| json_display(out, &format_args!("{value:?}")));
    }
}

thread_local! {
    /// The line being written, reused so that a line costs no allocation of its own.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// The event's own fields, reused likewise.
    static OWN: RefCell<Option<Fields>> = const { RefCell::new(None) };
    /// The last whole second this thread stamped, and its text (`2026-12-08T00:07:00`).
    static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

/// Writes `now` as a JSON string in RFC 3339, UTC, to the microsecond
/// (`"2026-12-08T00:07:00.367028Z"`). The date and time of day change once a second, so
/// each thread formats them once a second and only writes the microseconds for each line.
fn json_timestamp(out: &mut Vec<u8>, now: SystemTime) {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (cached, mut text) = SECOND.get();
    if cached != seconds {
        let formatted = i64::try_from(seconds)
            .ok()
            .and_then(|seconds| chrono::DateTime::from_timestamp(seconds, 0))
            .map(|time| time.format("%Y-%m-%dT%H:%M:%S").to_string())
            .unwrap_or_default();
        if formatted.len() != text.len() {
            // Past the year 9999, or before 1970: no cache, the whole stamp as chrono has it.
            json(out, &chrono::DateTime::<chrono::Utc>::from(now).to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
            return;
        }
        text.copy_from_slice(formatted.as_bytes());
        SECOND.set((seconds, text));
    }
    out.push(b'"');
    out.extend_from_slice(&text);
    let _ = write!(out, ".{:06}Z\"", since_epoch.subsec_micros());
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
        // Taken out while in use: an event logged while this one is written gets fresh ones.
        let mut own = OWN.take().unwrap_or_default();
        own.clear();
        event.record(&mut own);
        self.write_line(event, &own, &ctx);
        OWN.set(Some(own));
    }
}

impl<W> JsonLogLayer<W>
where
    W: for<'w> MakeWriter<'w> + 'static,
{
    /// Writes `event`'s line, with `own` its recorded fields, and hands it to the writer.
    fn write_line<S>(&self, event: &Event<'_>, own: &Fields, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let metadata = event.metadata();
        LINE.with_borrow_mut(|line| {
            line.clear();
            let mut object = JsonObject::new(line);
            json_timestamp(object.member("timestamp"), SystemTime::now());
            json(object.member("level"), metadata.level().as_str());
            json(object.member("target"), metadata.target());
            json(object.member("service"), self.service.as_str());
            object.member("message").extend_from_slice(own.get("message").unwrap_or(b"\"\""));
            // Outer spans first; an inner span's field, and then the event's own, win over a
            // field of the same name further out.
            if let Some(scope) = ctx.event_scope(event) {
                let spans: Vec<_> = scope.collect();
                for (depth, span) in spans.iter().enumerate().rev() {
                    let extensions = span.extensions();
                    let Some(fields) = extensions.get::<Fields>() else { continue };
                    for (name, value) in fields.iter() {
                        let shadowed = own.contains(name)
                            || spans[..depth]
                                .iter()
                                .any(|inner| inner.extensions().get::<Fields>().is_some_and(|f| f.contains(name)));
                        if !shadowed {
                            object.member(name).extend_from_slice(value);
                        }
                    }
                }
            }
            for (name, value) in own.iter().filter(|(name, _)| *name != "message") {
                object.member(name).extend_from_slice(value);
            }
            write_otel_ids(&mut object);
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

    /// Starts member `name`; its value, JSON text, is to be written into what is returned.
    fn member(&mut self, name: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        json(self.out, name);
        self.out.push(b':');
        &mut *self.out
    }

    fn finish(self) {
        self.out.extend_from_slice(b"}\n");
    }
}

/// The entered span's OpenTelemetry ids (`trace_id`, `span_id`), read from the context the
/// layer activates on enter: lock-free, unlike asking the span itself from inside the
/// subscriber. Hex digits need no escaping, so they are written as they are formatted.
fn write_otel_ids(object: &mut JsonObject<'_>) {
    let context = opentelemetry::Context::current();
    let span = context.span();
    let span_context = span.span_context();
    if span_context.is_valid() {
        let _ = write!(object.member("trace_id"), "\"{}\"", span_context.trace_id());
        let _ = write!(object.member("span_id"), "\"{}\"", span_context.span_id());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
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

    fn captured_line(emit: impl FnOnce()) -> serde_json::Map<String, serde_json::Value> {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(JsonLogLayer::new("test-service", captured.clone()));
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = captured.0.lock().expect("captured lines").clone();
        let text = String::from_utf8(bytes).expect("UTF-8");
        assert!(text.ends_with("}\n") && text.lines().count() == 1, "{text}");
        serde_json::from_str(&text).expect("one JSON object")
    }

    #[test]
    fn debug_display_and_error_values_are_escaped_json_strings() {
        let error = std::io::Error::other("disk \"full\"\n");
        let line = captured_line(|| {
            tracing::warn!(debugged = ?("a\"b", '\n'), shown = %"tab\there", error = &error as &dyn std::error::Error, "quote \" and \\");
        });
        assert_eq!(line["debugged"], format!("{:?}", ("a\"b", '\n')));
        assert_eq!(line["shown"], "tab\there");
        assert_eq!(line["error"], "disk \"full\"\n");
        assert_eq!(line["message"], "quote \" and \\");
    }

    #[test]
    fn a_field_recorded_again_replaces_its_text_in_place() {
        let mut fields = Fields::default();
        fields.set("first", |out| json(out, "kept"));
        for round in 0..1_000 {
            fields.set("status", |out| json(out, &round));
        }
        fields.set("last", |out| json(out, &true));
        let names: Vec<&str> = fields.iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["first", "status", "last"]);
        assert_eq!(fields.get("status"), Some(&b"999"[..]));
        assert_eq!(fields.get("first"), Some(&b"\"kept\""[..]));
        assert_eq!(fields.text.len(), "\"kept\"999true".len());
    }

    #[test]
    fn timestamps_read_as_rfc3339_to_the_microsecond_across_second_boundaries() {
        let base = UNIX_EPOCH + std::time::Duration::from_secs(1_796_688_419);
        for micros in [999_999, 0, 1, 367_028, 999_999, 1_000_000, 59_000_000, 86_400_000_000] {
            let now = base + std::time::Duration::from_micros(micros);
            let mut out = Vec::new();
            json_timestamp(&mut out, now);
            let expected =
                chrono::DateTime::<chrono::Utc>::from(now).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            assert_eq!(String::from_utf8(out).expect("UTF-8"), format!("\"{expected}\""));
        }
    }
}
