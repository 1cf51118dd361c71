//! Wiring: database, Kafka topics, the consumer, routes and the server.

use contracts::events::ALL_TOPICS;
use database::DatabaseReadiness;
use eventing::health::{ConsumerStatus, ReadinessExt};
use eventing::kafka::{ConsumerBuilder, EventPublisher, TopicKeeper};
use eventing::outbox::OutboxRelay;
use platform::health::Readiness;
use platform::http::{Server, ServerBuilder};
use sqlx::migrate::Migrator;

use std::sync::Arc;

use crate::admission::Admission;
use crate::configuration::Settings;
use crate::events::{on_payment_completed, on_payment_refunded, on_user_created, on_user_deleted};
use crate::origin::Producer;
use crate::routes;
use crate::state::AppState;

/// The schema, embedded at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The consumer group, before the deployment's prefix.
pub const CONSUMER_GROUP: &str = "order-service-group";

/// Builds order-service. The result is a bound [`Server`]: `port()`, `run_until_stopped()`, `run_until(signal)`.
pub struct Application;

impl Application {
    /// Connects, migrates, creates missing topics, subscribes and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Server> {
        platform::metrics::handle();
        let pool = database::connect_and_migrate(&settings.database, &MIGRATOR).await?;
        // order-service consumes or publishes every topic of the platform.
        let topics = TopicKeeper::start(&settings.kafka, &ALL_TOPICS).await?.replay_outbox_on_loss(pool.clone());
        let publisher = EventPublisher::new(&settings.kafka)?;
        let users = Arc::new(Producer::new(settings.user_service.as_str(), settings.service_key.clone())?);
        let admission = Arc::new(Admission::new(settings.admission));
        let relay = OutboxRelay::new(pool.clone(), &settings.kafka)?;
        let state = AppState { pool: pool.clone(), users, admission: Arc::clone(&admission), relay: relay.waker() };

        let (on_user, on_deleted) = (state.clone(), state.clone());
        let (on_payment, on_refund) = (state.clone(), state.clone());
        let consumer = ConsumerBuilder::new(&settings.kafka, CONSUMER_GROUP, publisher.clone())
            .rewind_on(topics.log_resets())
            .on(move |message| on_user_created(on_user.clone(), message))
            .on(move |message| on_user_deleted(on_deleted.clone(), message))
            .on(move |message| on_payment_completed(on_payment.clone(), message))
            .on(move |message| on_payment_refunded(on_refund.clone(), message))
            .pause_while_down(Readiness::default().postgres(pool.clone()));
        let status = ConsumerStatus::default();
        let readiness = Readiness::default()
            .postgres(pool.clone())
            .kafka(publisher.producer())
            .topics(topics.status())
            .consumer(consumer.group(), status.clone());
        let consumer = consumer.build(status)?;

        let mut server =
            ServerBuilder::new(routes::router(state)).service_key(settings.service_key.clone()).readiness(readiness);
        let shutdown = server.shutdown_token();
        server.spawn(topics.run(shutdown.clone()));
        server.spawn(consumer.run(shutdown.clone()));
        let timeout = settings.payment_timeout;
        server.spawn(crate::payment_timeout::run(pool.clone(), timeout, relay.waker(), shutdown.clone()));
        server.spawn(admission.recount_until(pool.clone(), shutdown.clone()));
        server.spawn(relay.run(shutdown.clone()));
        server.spawn(database::report_pool_metrics(pool, shutdown));
        server.bind(&settings.http).await
    }
}
