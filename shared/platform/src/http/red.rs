//! The RED series of every route (`http_requests_total`, `http_request_duration_seconds`),
//! resolved once per thread and kept. Resolving a series from its name and labels builds
//! and hashes the labels, allocates the owned ones and looks the series up in the
//! registry, on every request otherwise; a route's series never change, and the recorder
//! keeps every series for the life of the process, so a handle stays good.

use std::cell::RefCell;
use std::time::Duration;

use axum::http::StatusCode;
use metrics::{Counter, Histogram};
use rustc_hash::FxHashMap;

/// One route's series under one method.
struct Series {
    duration: Histogram,
    /// The request counter by status: a route answers with a handful of them.
    requests: Vec<(StatusCode, Counter)>,
}

/// A route's series by method label.
type ByMethod = Vec<(&'static str, Series)>;

thread_local! {
    /// By route template, then method label. Both are bounded: routes are the router's
    /// templates (or `unmatched`), methods the standard ones (or `other`); no client
    /// chooses a key, so a fast hash serves.
    static SERIES: RefCell<FxHashMap<Box<str>, ByMethod>> = RefCell::new(FxHashMap::default());
}

/// Counts one answer of `route` to `method` with `status`, which took `elapsed`.
pub(super) fn record(method: &'static str, route: &str, status: StatusCode, elapsed: Duration) {
    SERIES.with_borrow_mut(|by_route| {
        if !by_route.contains_key(route) {
            by_route.insert(route.into(), Vec::new());
        }
        let Some(by_method) = by_route.get_mut(route) else { return };
        let index = match by_method.iter().position(|(known, _)| *known == method) {
            Some(index) => index,
            None => {
                let duration = metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route.to_owned());
                by_method.push((method, Series { duration, requests: Vec::new() }));
                by_method.len() - 1
            }
        };
        let series = &mut by_method[index].1;
        series.duration.record(elapsed.as_secs_f64());
        match series.requests.iter().find(|(known, _)| *known == status) {
            Some((_, counter)) => counter.increment(1),
            None => {
                let counter = metrics::counter!("http_requests_total", "method" => method, "route" => route.to_owned(), "status" => status.as_str().to_owned());
                counter.increment(1);
                series.requests.push((status, counter));
            }
        }
    });
}
