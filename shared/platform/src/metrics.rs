//! The Prometheus recorder and the `/metrics` route.
//!
//! A process has one global recorder, so it is installed once and shared,
//! even when a test runs several services in one process.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets for latencies in seconds: 1 ms to 10 s, dense where services live.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder on first use and returns its handle.
///
/// # Panics
/// If another recorder was installed first, which is a start-up wiring bug.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                // Without buckets every histogram renders as a summary, which cannot be aggregated.
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                .and_then(|builder| builder.install_recorder())
                .expect("the Prometheus recorder is installed once, at start-up");
            let upkeep = handle.clone();
            // Histograms are drained into the rendered state by upkeep; without it they grow unbounded.
            std::thread::Builder::new()
                .name("metrics-upkeep".to_owned())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .expect("a thread can be spawned at start-up");
            handle
        })
        .clone()
}

/// Process metrics (`process_*`) and the runtime's scheduling lag, refreshed every
/// few seconds until `shutdown`.
pub async fn report_runtime_metrics(shutdown: tokio_util::sync::CancellationToken) {
    const TICK: Duration = Duration::from_millis(250);
    let collector = metrics_process::Collector::default();
    collector.describe();
    let mut ticks = 0u32;
    loop {
        // A timer that should fire after TICK: how late it fires is how long ready tasks wait
        // for a worker thread (the counterpart of Node's event-loop lag).
        let started = tokio::time::Instant::now();
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(TICK) => {}
        }
        let lag = started.elapsed().saturating_sub(TICK);
        metrics::gauge!("runtime_scheduling_lag_seconds").set(lag.as_secs_f64());
        ticks += 1;
        if ticks % 8 == 1 {
            collector.collect();
        }
    }
}

/// `GET /metrics` in the Prometheus text format.
pub fn router() -> Router {
    Router::new().route("/metrics", get(render))
}

async fn render() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle().render())
}
