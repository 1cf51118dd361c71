//! Contract conformance: every answer the API gives is held against the statuses its
//! operation lists in the OpenAPI document.
//!
//! The document's operations are written by hand (the gateway forwards most bodies
//! without parsing them), so nothing in the type system stops a handler from gaining a
//! status the document does not list. This check, which the platform's edge runs on every
//! answer, catches that drift where it shows: an answer outside the document is logged as
//! a warning and counted in `http_undocumented_responses_total{method,route,status}`. The
//! platform-wide tests require that count to stay zero over every request they make, so a
//! handler that learns a new status fails a test until the document says so.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{Method, StatusCode};
use platform::http::AnswerCheck;
use rustc_hash::FxHashMap;

/// Answers outside the document in this process, for tests to assert on (the metric is
/// the production view of the same count).
static UNDOCUMENTED: AtomicU64 = AtomicU64::new(0);

/// How many answers, in this process, had a status their operation does not document.
pub fn undocumented_answers() -> u64 {
    UNDOCUMENTED.load(Ordering::Relaxed)
}

/// Each documented operation's statuses, by path template, then method.
#[derive(Debug, Default)]
pub struct Conformance {
    operations: FxHashMap<String, FxHashMap<Method, BTreeSet<u16>>>,
}

impl Conformance {
    /// The statuses each operation of `document` lists.
    pub fn of(document: &utoipa::openapi::OpenApi) -> Arc<Self> {
        let mut operations: FxHashMap<String, FxHashMap<Method, BTreeSet<u16>>> = FxHashMap::default();
        for (path, item) in &document.paths.paths {
            let methods = [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
            ];
            for (method, operation) in methods {
                if let Some(operation) = operation {
                    let statuses = operation.responses.responses.keys().filter_map(|s| s.parse().ok()).collect();
                    operations.entry(path.clone()).or_default().insert(method, statuses);
                }
            }
        }
        Arc::new(Self { operations })
    }

    /// Whether `status` is documented for `method` on `route`; `None` when the route is no
    /// documented operation (the docs themselves, `/api`, an unknown path).
    pub fn documents(&self, method: &Method, route: &str, status: u16) -> Option<bool> {
        self.operations.get(route)?.get(method).map(|statuses| statuses.contains(&status))
    }
}

/// Counts and logs every answer whose status its operation does not list. Nothing is
/// allocated unless an answer is out of the document.
impl AnswerCheck for Conformance {
    fn check(&self, method: &Method, route: &str, status: StatusCode) {
        let status = status.as_u16();
        if self.documents(method, route, status) == Some(false) {
            UNDOCUMENTED.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("http_undocumented_responses_total", "method" => method.to_string(), "route" => route.to_owned(), "status" => status.to_string()).increment(1);
            tracing::warn!(%method, route, status, "answered with a status the OpenAPI document does not list");
        }
    }
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    use super::*;

    #[test]
    fn knows_each_operations_statuses_and_nothing_else() {
        let conformance = Conformance::of(&crate::docs::ApiDoc::openapi());
        assert_eq!(conformance.documents(&Method::POST, "/api/orders", 201), Some(true));
        assert_eq!(conformance.documents(&Method::POST, "/api/orders", 200), Some(false));
        assert_eq!(conformance.documents(&Method::DELETE, "/api/orders/{id}", 204), Some(true));
        assert_eq!(conformance.documents(&Method::GET, "/api/docs/openapi.json", 200), None);
    }
}
