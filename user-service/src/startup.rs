//! Wiring: database, Kafka, routes and the server, in the order they must come up.

use contracts::events::{Event, UserCreated, UserDeleted};
use database::DatabaseReadiness;
use eventing::health::ReadinessExt;
use eventing::kafka::{EventPublisher, TopicKeeper};
use eventing::outbox::OutboxRelay;
use platform::health::Readiness;
use platform::http::{Server, ServerBuilder};
use sqlx::migrate::Migrator;

use crate::configuration::Settings;
use crate::hashing::Hasher;
use crate::routes;
use crate::state::AppState;

/// The schema, embedded at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Builds user-service. The result is a bound [`Server`]: `port()`, `run_until_stopped()`, `run_until(signal)`.
pub struct Application;

impl Application {
    /// Connects, migrates, creates missing topics and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Server> {
        platform::metrics::handle();
        let pool = database::connect_and_migrate(&settings.database, &MIGRATOR).await?;
        let topics = TopicKeeper::start(&settings.kafka, &[UserCreated::TOPIC, UserDeleted::TOPIC])
            .await?
            .replay_outbox_on_loss(pool.clone());
        let publisher = EventPublisher::new(&settings.kafka)?;
        let readiness = Readiness::default().postgres(pool.clone()).kafka(publisher.producer()).topics(topics.status());
        let relay = OutboxRelay::new(pool.clone(), &settings.kafka)?;
        let hasher = Hasher::start(settings.hashing)?;
        crate::accounts::ensure_admin(&pool, &hasher, &settings.admin.email, &settings.admin.password).await?;
        let mut server =
            ServerBuilder::new(routes::router(AppState { pool: pool.clone(), hasher, relay: relay.waker() }))
                .service_key(settings.service_key.clone())
                .readiness(readiness);
        let shutdown = server.shutdown_token();
        server.spawn(topics.run(shutdown.clone()));
        server.spawn(relay.run(shutdown.clone()));
        server.spawn(database::report_pool_metrics(pool, shutdown));
        server.bind(&settings.http).await
    }
}
