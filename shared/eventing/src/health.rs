//! The event infrastructure's readiness checks, registered by each service on its
//! [`Readiness`]: the Kafka cluster answers a metadata request, the service's topics
//! exist, and each consumer holds its partitions.

use std::future::Future;
use std::pin::Pin;

pub use platform::health::Status;
use platform::health::{CHECK_TIMEOUT, Check, Readiness};
use rdkafka::producer::{FutureProducer, Producer};

/// What a consumer tells readiness: whether the group gave it its partitions.
pub type ConsumerStatus = Status;

/// The verdict for a consumer that holds (or has lost) its group assignment.
pub(crate) fn subscribed(holds: bool) -> Result<(), String> {
    if holds { Ok(()) } else { Err("not subscribed".to_owned()) }
}

/// The Kafka cluster answers a metadata request with at least one broker.
struct KafkaBroker(FutureProducer);

impl Check for KafkaBroker {
    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
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
