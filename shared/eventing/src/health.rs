//! The event infrastructure's readiness checks, registered by each service on its
//! [`Readiness`]: PostgreSQL answers a query, the Kafka cluster answers a metadata
//! request, the service's topics exist, and each consumer holds its partitions.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use platform::health::{CHECK_TIMEOUT, Check, Readiness};
use rdkafka::producer::{FutureProducer, Producer};
use sqlx::PgPool;

type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// A check's latest verdict, set by whatever watches the thing checked: the topic keeper,
/// or a consumer's rebalance callbacks. Cheap to clone; fails until first set.
#[derive(Debug, Clone)]
pub struct Status(Arc<RwLock<Result<(), String>>>);

/// What a consumer tells readiness: whether the group gave it its partitions.
pub type ConsumerStatus = Status;

impl Default for Status {
    fn default() -> Self {
        Self(Arc::new(RwLock::new(Err("not checked yet".to_owned()))))
    }
}

impl Status {
    /// Records the latest verdict: `Err(problem)` while the thing checked is not right.
    pub fn set(&self, verdict: Result<(), String>) {
        if let Ok(mut slot) = self.0.write() {
            *slot = verdict;
        }
    }

    /// Records whether a consumer holds a live group assignment.
    pub fn set_subscribed(&self, subscribed: bool) {
        self.set(if subscribed { Ok(()) } else { Err("not subscribed".to_owned()) });
    }

    /// The latest verdict.
    pub fn get(&self) -> Result<(), String> {
        self.0.read().map_or_else(|_| Err("status unavailable".to_owned()), |slot| slot.clone())
    }
}

impl Check for Status {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(std::future::ready(self.get()))
    }
}

/// PostgreSQL answers `SELECT 1`.
struct Postgres(PgPool);

impl Check for Postgres {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            sqlx::query_scalar::<_, i32>("SELECT 1")
                .fetch_one(&self.0)
                .await
                .map(drop)
                .map_err(|_| "query failed".to_owned())
        })
    }
}

/// The Kafka cluster answers a metadata request with at least one broker.
struct KafkaBroker(FutureProducer);

impl Check for KafkaBroker {
    fn check(&self) -> CheckFuture<'_> {
        let producer = self.0.clone();
        Box::pin(async move {
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
        })
    }
}

/// Registers the event infrastructure's checks on a [`Readiness`].
pub trait ReadinessExt: Sized {
    /// Checks that PostgreSQL answers a query (`postgres`).
    #[must_use]
    fn postgres(self, pool: PgPool) -> Self;
    /// Checks that the Kafka cluster answers a metadata request (`kafka`).
    #[must_use]
    fn kafka(self, producer: FutureProducer) -> Self;
    /// Checks that the service's topics exist (`kafka_topics`; see [`crate::kafka::TopicKeeper`]).
    #[must_use]
    fn topics(self, status: Status) -> Self;
    /// Checks that a consumer of `group` holds its assignment (`consumer:<group>`).
    #[must_use]
    fn consumer(self, group: &str, status: ConsumerStatus) -> Self;
}

impl ReadinessExt for Readiness {
    fn postgres(self, pool: PgPool) -> Self {
        self.with("postgres", Postgres(pool))
    }
    fn kafka(self, producer: FutureProducer) -> Self {
        self.with("kafka", KafkaBroker(producer))
    }
    fn topics(self, status: Status) -> Self {
        self.with("kafka_topics", status)
    }
    fn consumer(self, group: &str, status: ConsumerStatus) -> Self {
        self.with(format!("consumer:{group}"), status)
    }
}
