//! Wiring: Kafka topics, the consumer and the server (no database: a payment's
//! outcome is a pure function of its order).

use std::sync::Arc;

use contracts::events::{Event, OrderCreated, PaymentCompleted};
use eventing::health::{ConsumerStatus, ReadinessExt};
use eventing::kafka::{ConsumerBuilder, EventPublisher, TopicKeeper};
use platform::health::Readiness;
use platform::http::{Server, ServerBuilder};

use crate::configuration::Settings;
use crate::events::on_order_created;
use crate::state::AppState;

/// The consumer group, before the deployment's prefix.
pub const CONSUMER_GROUP: &str = "payment-service-group";

/// Builds payment-service. The result is a bound [`Server`]: `port()`, `run_until_stopped()`, `run_until(signal)`.
pub struct Application;

impl Application {
    /// Creates missing topics, subscribes and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Server> {
        platform::metrics::handle();
        let topics = TopicKeeper::start(&settings.kafka, &[OrderCreated::TOPIC, PaymentCompleted::TOPIC]).await?;
        let publisher = EventPublisher::new(&settings.kafka)?;
        let state = AppState { publisher: publisher.clone(), payment: Arc::new(settings.payment.clone()) };
        let consumer = ConsumerBuilder::new(&settings.kafka, CONSUMER_GROUP, publisher.clone())
            .rewind_on(topics.log_resets())
            .on(move |message| on_order_created(state.clone(), message))
            // A payment depends on its order only: one user's orders are paid concurrently.
            .ordered_by(|order: &OrderCreated| order.order_id);
        let status = ConsumerStatus::default();
        let readiness = Readiness::default()
            .kafka(publisher.producer())
            .topics(topics.status())
            .consumer(consumer.group(), status.clone());
        let consumer = consumer.build(status)?;

        let mut server = ServerBuilder::new(axum::Router::new()).readiness(readiness);
        let shutdown = server.shutdown_token();
        server.spawn(topics.run(shutdown.clone()));
        server.spawn(consumer.run(shutdown));
        server.bind(&settings.http).await
    }
}
