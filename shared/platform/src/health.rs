//! `/health/live` and `/health/ready`.
//!
//! Liveness says the process answers; it never checks dependencies, or a
//! database outage would get every pod restarted. Readiness checks for real
//! that each dependency answers now, so traffic only goes where it can be served.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use futures::future::join_all;
use serde_json::{Map, Value, json};

/// How long one readiness check may take; one that takes longer is down.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// One dependency readiness checks. Services register the checks they need (the
/// `database` crate provides PostgreSQL's; the event infrastructure Kafka's, its topics'
/// and its consumers'); this module knows none of them.
pub trait Check: Send + Sync + 'static {
    /// `Ok` when the dependency answers now; otherwise why not, in words safe to show.
    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}

/// A check whose verdict is set by whatever watches the thing checked (a background task,
/// a callback) rather than looked up at each probe. Cheap to clone; fails until first set.
#[derive(Debug, Clone)]
pub struct Status(Arc<RwLock<Result<(), String>>>);

impl Default for Status {
    fn default() -> Self {
        Self(Arc::new(RwLock::new(Err("not checked yet".to_owned()))))
    }
}

impl Status {
    /// Records the latest verdict: `Err(problem)` while the thing checked is not right.
    pub fn set(&self, verdict: Result<(), String>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = verdict;
    }

    /// The latest verdict.
    pub fn get(&self) -> Result<(), String> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Check for Status {
    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(std::future::ready(self.get()))
    }
}

/// The named checks behind `/health/ready`.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(String, Arc<dyn Check>)>,
}

impl Readiness {
    /// Adds a check reported under `name`.
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, check: impl Check) -> Self {
        self.checks.push((name.into(), Arc::new(check)));
        self
    }

    /// Runs every check concurrently, each within [`CHECK_TIMEOUT`]; the whole is ready
    /// when each one is.
    pub async fn evaluate(&self) -> (bool, Map<String, Value>) {
        let results = join_all(self.checks.iter().map(|(_, check)| async {
            tokio::time::timeout(CHECK_TIMEOUT, check.check()).await.unwrap_or_else(|_| Err("timed out".to_owned()))
        }))
        .await;
        let mut ready = true;
        let mut report = Map::new();
        for ((name, _), result) in self.checks.iter().zip(results) {
            let entry = match result {
                Ok(()) => json!({ "status": "up" }),
                Err(reason) => {
                    ready = false;
                    json!({ "status": "down", "reason": reason })
                }
            };
            report.insert(name.clone(), entry);
        }
        (ready, report)
    }
}

/// The two health routes.
pub fn router(readiness: Readiness) -> Router {
    Router::new().route("/health/live", get(live)).route("/health/ready", get(ready)).with_state(readiness)
}

async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(readiness): State<Readiness>) -> (StatusCode, Json<Value>) {
    let (ok, checks) = readiness.evaluate().await;
    if !ok {
        tracing::warn!(checks = %serde_json::Value::Object(checks.clone()), "not ready");
    }
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "status": if ok { "ready" } else { "not_ready" }, "checks": checks })))
}
