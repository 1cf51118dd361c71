//! `/health/live` and `/health/ready`.
//!
//! Liveness says the process answers; it never checks dependencies, or a
//! database outage would get every pod restarted. Readiness checks for real
//! that each dependency answers now, so traffic only goes where it can be served.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use futures::future::join_all;
use rdkafka::producer::{FutureProducer, Producer};
use serde_json::{Map, Value, json};
use sqlx::PgPool;

use crate::kafka::TopicStatus;

/// How long one readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What a consumer tells readiness: whether the group gave it its partitions, and
/// whether it looks stranded (see `kafka::watch`).
#[derive(Debug, Clone, Default)]
pub struct ConsumerStatus {
    subscribed: Arc<AtomicBool>,
    stranded: Arc<AtomicBool>,
}

impl ConsumerStatus {
    /// Records whether the consumer holds a live group assignment.
    pub fn set_subscribed(&self, subscribed: bool) {
        self.subscribed.store(subscribed, Ordering::Release);
    }

    /// Whether the consumer holds a live group assignment.
    pub fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    /// Records whether the consumer holds no partitions while its group's messages wait
    /// and nobody consumes them.
    pub fn set_stranded(&self, stranded: bool) {
        self.stranded.store(stranded, Ordering::Release);
    }

    /// Whether the consumer looks stranded.
    pub fn is_stranded(&self) -> bool {
        self.stranded.load(Ordering::Acquire)
    }
}

/// One dependency to check.
#[derive(Clone)]
enum Check {
    Postgres(PgPool),
    KafkaBroker(FutureProducer),
    Consumer(ConsumerStatus),
    Topics(TopicStatus),
}

impl Check {
    async fn run(&self) -> Result<(), String> {
        match self {
            Self::Postgres(pool) => {
                let ping = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(pool);
                match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(_)) => Err("query failed".to_owned()),
                    Err(_) => Err("timed out".to_owned()),
                }
            }
            Self::KafkaBroker(producer) => {
                let producer = producer.clone();
                // librdkafka's metadata call blocks its thread.
                let metadata = tokio::task::spawn_blocking(move || {
                    producer.client().fetch_metadata(None, CHECK_TIMEOUT).map(|m| m.brokers().len())
                });
                match metadata.await {
                    Ok(Ok(brokers)) if brokers > 0 => Ok(()),
                    Ok(Ok(_)) => Err("no brokers in metadata".to_owned()),
                    Ok(Err(_)) => Err("metadata request failed".to_owned()),
                    Err(_) => Err("check panicked".to_owned()),
                }
            }
            Self::Topics(status) => status.check(),
            Self::Consumer(status) => {
                if !status.is_subscribed() {
                    Err("not subscribed".to_owned())
                } else if status.is_stranded() {
                    Err("holds no partitions while the group's messages wait and nothing consumes them".to_owned())
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// The named checks behind `/health/ready`.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(String, Check)>,
}

impl Readiness {
    /// Checks that PostgreSQL answers a query.
    #[must_use]
    pub fn postgres(mut self, pool: PgPool) -> Self {
        self.checks.push(("postgres".to_owned(), Check::Postgres(pool)));
        self
    }

    /// Checks that the Kafka cluster answers a metadata request.
    #[must_use]
    pub fn kafka(mut self, producer: FutureProducer) -> Self {
        self.checks.push(("kafka".to_owned(), Check::KafkaBroker(producer)));
        self
    }

    /// Checks that the service's topics exist (see [`crate::kafka::TopicKeeper`]).
    #[must_use]
    pub fn topics(mut self, status: TopicStatus) -> Self {
        self.checks.push(("kafka_topics".to_owned(), Check::Topics(status)));
        self
    }

    /// Checks that a consumer of `group` holds its assignment.
    #[must_use]
    pub fn consumer(mut self, group: &str, status: ConsumerStatus) -> Self {
        self.checks.push((format!("consumer:{group}"), Check::Consumer(status)));
        self
    }

    /// Runs every check concurrently; the whole is ready when each one is.
    pub async fn evaluate(&self) -> (bool, Map<String, Value>) {
        let results = join_all(self.checks.iter().map(|(_, check)| check.run())).await;
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
