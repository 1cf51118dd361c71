//! Logs and traces: JSON log lines on stdout joined to OTLP-exported spans.
//!
//! Every log line carries the active span's `trace_id` and `span_id` (and the
//! `request_id` of the enclosing request or message), so any line leads to its
//! trace in Jaeger and any trace to its lines.

mod json_log;
mod log_writer;
pub mod propagation;

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{KeyValue, global};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::configuration::TelemetrySettings;
pub use json_log::JsonLogLayer;
pub use log_writer::{LineWriter, WriterGuard};

/// Libraries whose own chatter would drown the service's lines, or feed the exporter's
/// failures back into the exporter.
const QUIET_DIRECTIVES: &[&str] = &[
    "h2=warn",
    "tonic=warn",
    "hyper=warn",
    "tower=warn",
    "opentelemetry=off",
    "opentelemetry_sdk=off",
    "opentelemetry_otlp=off",
];

static INSTALLED: OnceLock<()> = OnceLock::new();

/// Flushes pending spans and log lines when the service stops.
#[must_use = "call shutdown() before the process exits, or the last spans and lines are lost"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    /// Dropped, it writes out the lines still queued for the log's writer thread.
    lines: Option<WriterGuard>,
}

impl TelemetryGuard {
    /// Flushes and stops the span exporter. It blocks, so it runs off the async workers.
    pub async fn shutdown(mut self) {
        // Log lines first: the exporter's shutdown can take its timeout.
        drop(self.lines.take());
        if let Some(provider) = self.provider {
            let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(error)) = flushed {
                eprintln!("telemetry shutdown: {error}");
            }
        }
    }
}

/// Installs the global subscriber (JSON logs, and span export when an endpoint is set)
/// and the W3C trace-context and baggage propagators. Must run inside the Tokio runtime.
pub fn init(settings: &TelemetrySettings) -> anyhow::Result<TelemetryGuard> {
    let filter = env_filter(&settings.log_filter)?;
    let provider = settings.otlp_endpoint.as_deref().map(|endpoint| tracer_provider(settings, endpoint)).transpose()?;
    let lines = install(settings, filter, provider.clone())?;
    if let Some(endpoint) = &settings.otlp_endpoint {
        tokio::spawn(report_collector_reachability(endpoint.clone()));
    } else {
        tracing::info!("span export disabled (OTEL_EXPORTER_OTLP_ENDPOINT=none)");
    }
    Ok(TelemetryGuard { provider, lines })
}

/// Installs the given provider's layer once per process; later calls are no-ops. Returns
/// the guard of the log's writer thread on the first call (keep it until the end, so the
/// last lines are written). Tests that run several services in one process share one
/// subscriber.
///
/// Lines go to stdout through a thread that writes them in batches (see [`log_writer`]):
/// a request never waits on a `write`.
pub fn install(
    settings: &TelemetrySettings,
    filter: EnvFilter,
    provider: Option<SdkTracerProvider>,
) -> anyhow::Result<Option<WriterGuard>> {
    if INSTALLED.get().is_some() {
        return Ok(None);
    }
    global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ]));
    let otel_layer = provider.map(|provider| {
        global::set_tracer_provider(provider.clone());
        // A span carries what its own fields say and nothing else: no source location,
        // thread, target or busy/idle time (eight attributes on every span, and two clock
        // reads at each poll), which said nothing an operator looks for and were most of
        // what each span cost to build and export. Log lines become span events only from
        // WARN up: the INFO ones (an access line a request) repeat what the span's own
        // attributes say, and their lines are in the log, under the same trace id.
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(settings.service_name.clone()))
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_filter(filter_fn(|metadata| metadata.is_span() || *metadata.level() <= tracing::Level::WARN))
    });
    let (writer, guard) = log_writer::spawn(std::io::stdout()).context("cannot start the log's writer thread")?;
    let log_layer = JsonLogLayer::new(&settings.service_name, writer);
    // One filter for both layers: a span too verbose to log is too verbose to export.
    tracing_subscriber::registry()
        .with(filter)
        .with(otel_layer)
        .with(log_layer)
        .try_init()
        .context("a global tracing subscriber is already installed")?;
    let _ = INSTALLED.set(());
    Ok(Some(guard))
}

/// The log filter from `RUST_LOG`-style directives, with noisy libraries quietened.
pub fn env_filter(directives: &str) -> anyhow::Result<EnvFilter> {
    let mut filter = EnvFilter::try_new(directives).with_context(|| format!("invalid RUST_LOG {directives:?}"))?;
    for directive in QUIET_DIRECTIVES {
        // A user's explicit directive for the same target wins.
        if !directives.contains(directive.split('=').next().unwrap_or_default()) {
            filter = filter.add_directive(directive.parse().context("built-in log directive")?);
        }
    }
    Ok(filter)
}

/// A batch-exporting tracer provider with the service's resource attributes.
pub fn tracer_provider(settings: &TelemetrySettings, endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(3))
        .build()
        .with_context(|| format!("invalid OTLP endpoint {endpoint:?}"))?;
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("deployment.environment.name", settings.environment.as_str()),
        ])
        .build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

/// Says once whether a collector listens at `endpoint`; the exporter's own repeated
/// connection errors are silenced, so this is the one line an operator sees.
async fn report_collector_reachability(endpoint: String) {
    let address =
        endpoint.trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/').to_owned();
    let reachable = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(&address))
        .await
        .is_ok_and(|connected| connected.is_ok());
    if reachable {
        tracing::info!(endpoint, "exporting spans over OTLP");
    } else {
        tracing::warn!(endpoint, "no OTLP collector answers; the service runs normally and its spans are dropped");
    }
}
