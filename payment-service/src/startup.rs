//! Wiring: database, Kafka topics, the consumer, the outbox relay and the server.

use std::sync::Arc;

use contracts::events::{Event, OrderCancelled, OrderCreated, PaymentCompleted, PaymentRefunded};
use database::DatabaseReadiness;
use eventing::health::{ConsumerStatus, ReadinessExt};
use eventing::kafka::{ConsumerBuilder, EventPublisher, TopicKeeper};
use eventing::outbox::OutboxRelay;
use platform::health::Readiness;
use platform::http::{Server, ServerBuilder};
use sqlx::migrate::Migrator;

use crate::configuration::Settings;
use crate::events::{on_order_cancelled, on_order_created};
use crate::state::AppState;

/// The schema, embedded at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The consumer group, before the deployment's prefix.
pub const CONSUMER_GROUP: &str = "payment-service-group";

/// Builds payment-service. The result is a bound [`Server`]: `port()`, `run_until_stopped()`, `run_until(signal)`.
pub struct Application;

impl Application {
    /// Connects, migrates, creates missing topics, subscribes and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Server> {
        platform::metrics::handle();
        let pool = database::connect_and_migrate(&settings.database, &MIGRATOR).await?;
        let topics = TopicKeeper::start(
            &settings.kafka,
            &[OrderCreated::TOPIC, OrderCancelled::TOPIC, PaymentCompleted::TOPIC, PaymentRefunded::TOPIC],
        )
        .await?
        .replay_outbox_on_loss(pool.clone());
        let publisher = EventPublisher::new(&settings.kafka)?;
        let relay = OutboxRelay::new(pool.clone(), &settings.kafka)?;
        let state = AppState { pool: pool.clone(), payment: Arc::new(settings.payment.clone()), relay: relay.waker() };
        let on_cancel = state.clone();
        let consumer = ConsumerBuilder::new(&settings.kafka, CONSUMER_GROUP, publisher.clone())
            .rewind_on(topics.log_resets())
            .on(move |message| on_order_created(state.clone(), message))
            .on(move |message| on_order_cancelled(on_cancel.clone(), message))
            // A payment depends on its order only: one user's orders are paid concurrently.
            .ordered_by(|order: &OrderCreated| order.order_id)
            .pause_while_down(Readiness::default().postgres(pool.clone()));
        let status = ConsumerStatus::default();
        let readiness = Readiness::default()
            .postgres(pool.clone())
            .kafka(publisher.producer())
            .topics(topics.status())
            .consumer(consumer.group(), status.clone());
        let consumer = consumer.build(status)?;

        let mut server = ServerBuilder::new(axum::Router::new()).readiness(readiness);
        let shutdown = server.shutdown_token();
        server.spawn(topics.run(shutdown.clone()));
        server.spawn(consumer.run(shutdown.clone()));
        server.spawn(relay.run(shutdown.clone()));
        server.spawn(database::report_pool_metrics(pool, shutdown));
        server.bind(&settings.http).await
    }
}
