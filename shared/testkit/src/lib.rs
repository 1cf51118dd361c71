//! Test helpers: a throw-away database per test, a unique topic prefix per test,
//! and polling with a deadline instead of sleeping.

use std::future::Future;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use database::DatabaseSettings;
use platform::configuration::{Env, TelemetrySettings};

/// The PostgreSQL server tests use (`TEST_DATABASE_URL`, default the local trust-auth server).
pub fn server_url() -> String {
    Env::from_process().string("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432")
}

/// The Kafka brokers tests use (`TEST_KAFKA_BROKERS`, default the local broker).
pub fn kafka_brokers() -> String {
    Env::from_process().string("TEST_KAFKA_BROKERS", "127.0.0.1:9092")
}

/// How tests sign in to their broker: `KAFKA_SASL_USERNAME` and `KAFKA_SASL_PASSWORD` of
/// the test process (`make test` gives it the operator's), as service settings; none for
/// a broker without authentication.
pub fn kafka_credentials() -> Vec<(&'static str, String)> {
    let env = Env::from_process();
    ["KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"]
        .into_iter()
        .filter_map(|name| env.raw(name).map(|value| (name, value.to_owned())))
        .collect()
}

/// The settings that reach the tests' broker (brokers and credentials).
pub fn kafka_env() -> Env {
    Env::from_pairs(kafka_credentials()).with("KAFKA_BROKERS", kafka_brokers())
}

/// A client configuration for the tests' own producers and probes, signed in like the services.
pub fn kafka_config() -> rdkafka::ClientConfig {
    let settings = eventing::configuration::KafkaSettings::from_env(&kafka_env(), "test-client")
        .expect("valid test Kafka settings");
    eventing::kafka::client::base_config(&settings)
}

/// A fresh name unique to this test run, safe as a database name and topic prefix.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::new_v4().simple())
}

/// Creates an empty database and returns its name. Test databases are named
/// `test_…` and dropped by `make test` once the suite finishes.
pub async fn create_database() -> String {
    let name = unique_name("test");
    let settings = DatabaseSettings::from_env(&Env::from_pairs([("DATABASE_URL", server_url())]), &name)
        .expect("valid test database settings");
    let mut connection = PgConnection::connect_with(&settings.server_options().expect("valid server URL"))
        .await
        .expect("PostgreSQL must be running for integration tests (see docs/getting-started.md)");
    sqlx::query(&format!(r#"CREATE DATABASE "{name}""#))
        .execute(&mut connection)
        .await
        .expect("can create a test database");
    name
}

/// An environment for a service under test: its own database, a unique topic
/// prefix, port 0, no payment delay, no span export.
pub async fn service_env(topic_prefix: &str) -> Env {
    let mut pairs: Vec<(&str, String)> = vec![
        ("PORT", "0".to_owned()),
        ("HOST", "127.0.0.1".to_owned()),
        ("DATABASE_URL", server_url()),
        ("DATABASE_NAME", create_database().await),
        ("KAFKA_BROKERS", kafka_brokers()),
        ("KAFKA_TOPIC_PREFIX", topic_prefix.to_owned()),
        ("KAFKA_TOPIC_PARTITIONS", "2".to_owned()),
        ("KAFKA_RETRY_BASE_MS", "20".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "none".to_owned()),
    ];
    pairs.extend(kafka_credentials());
    Env::from_pairs(pairs)
}

/// A unique topic and group prefix for one test.
pub fn topic_prefix() -> String {
    format!("{}.", unique_name("t"))
}

/// Installs JSON logging for tests once; `TEST_LOG=debug` (or any filter) shows it.
pub fn init_tracing() {
    let env = Env::from_process();
    let Some(filter) = env.raw("TEST_LOG") else { return };
    let settings = TelemetrySettings::from_env(&Env::from_pairs([("OTEL_EXPORTER_OTLP_ENDPOINT", "none")]), "test")
        .expect("valid test telemetry settings");
    if let Ok(filter) = platform::telemetry::env_filter(filter)
        && let Ok(Some(writer)) = platform::telemetry::install(&settings, filter, None)
    {
        // The log's writer thread runs for the rest of the test process.
        std::mem::forget(writer);
    }
}

/// Polls `probe` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// A client that calls a backend as the gateway would: with the (development) service key
/// and a fresh principal of `role`.
pub fn trusted_client(role: platform::auth::Role) -> reqwest::Client {
    trusted_client_for(Uuid::new_v4(), role)
}

/// Like [`trusted_client`], for the principal `id`.
pub fn trusted_client_for(id: Uuid, role: platform::auth::Role) -> reqwest::Client {
    use reqwest::header::{HeaderMap, HeaderValue};
    let mut headers = HeaderMap::new();
    headers.insert(platform::auth::API_KEY_HEADER, HeaderValue::from_static(platform::auth::DEVELOPMENT_API_KEY));
    if let Ok(id) = HeaderValue::from_str(&id.to_string()) {
        headers.insert(platform::auth::PRINCIPAL_ID_HEADER, id);
    }
    headers.insert(platform::auth::PRINCIPAL_ROLE_HEADER, HeaderValue::from_static(role.as_str()));
    reqwest::Client::builder().default_headers(headers).build().expect("a test client")
}

/// A service running inside the test, stopped when this is dropped.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// `http://127.0.0.1:<admin port>` when health and metrics have a listener of their
    /// own, else the same as `address`.
    pub admin_address: String,
    /// A client for it.
    pub client: reqwest::Client,
    stop: tokio_util::sync::CancellationToken,
}

impl TestServer {
    /// Runs `server` in the background.
    pub fn spawn(server: platform::http::Server) -> Self {
        let address = format!("http://127.0.0.1:{}", server.port());
        let admin_address =
            server.admin_port().map_or_else(|| address.clone(), |port| format!("http://127.0.0.1:{port}"));
        let stop = tokio_util::sync::CancellationToken::new();
        let signal = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            if let Err(error) = server.run_until(signal).await {
                eprintln!("test server failed: {error:#}");
            }
        });
        Self { address, admin_address, client: trusted_client(platform::auth::Role::Admin), stop }
    }

    /// A client without the service key or a principal: what someone going around the gateway has.
    pub fn untrusted_client(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    /// `address` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// `admin_address` + `path`: where `/health/*` and `/metrics` are.
    pub fn admin_url(&self, path: &str) -> String {
        format!("{}{path}", self.admin_address)
    }

    /// Waits until `/health/ready` says 200 (consumers hold their partitions).
    pub async fn wait_ready(&self) {
        let url = self.admin_url("/health/ready");
        eventually("the service to become ready", Duration::from_secs(30), || async {
            let response = self.client.get(&url).send().await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Reads one topic from the beginning in a group of its own, to observe what services publish.
pub struct TopicProbe {
    consumer: rdkafka::consumer::StreamConsumer,
}

impl TopicProbe {
    /// Subscribes to `topic` (full name, prefix included).
    pub fn new(topic: &str) -> Self {
        use rdkafka::consumer::Consumer;
        let consumer: rdkafka::consumer::StreamConsumer = kafka_config()
            .set("group.id", unique_name("probe"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .expect("can create a probe consumer");
        consumer.subscribe(&[topic]).expect("can subscribe the probe");
        Self { consumer }
    }

    /// The first message for which `matches` holds, within `timeout`.
    pub async fn next_matching(
        &self,
        timeout: Duration,
        mut matches: impl FnMut(&rdkafka::message::OwnedMessage) -> bool,
    ) -> rdkafka::message::OwnedMessage {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.consumer.recv())
                .await
                .unwrap_or_else(|_| panic!("no matching message within {timeout:?}"));
            if let Ok(message) = message {
                let owned = message.detach();
                if matches(&owned) {
                    return owned;
                }
            }
        }
    }
}

/// The value of header `name` on `message`, as text.
pub fn header_of(message: &rdkafka::message::OwnedMessage, name: &str) -> Option<String> {
    use rdkafka::Message;
    use rdkafka::message::Headers;
    let headers = message.headers()?;
    headers
        .iter()
        .filter(|h| h.key == name)
        .filter_map(|h| h.value.and_then(|v| std::str::from_utf8(v).ok()).map(str::to_owned))
        .last()
}

/// Produces raw bytes to `topic` (poison-message tests), waiting for the acknowledgement.
pub async fn produce_raw(topic: &str, key: &str, payload: &[u8]) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = kafka_config().create().expect("can create a test producer");
    producer
        .send(FutureRecord::to(topic).key(key).payload(payload), Duration::from_secs(10))
        .await
        .map_err(|(error, _)| error)
        .expect("the broker acknowledges the test message");
}

/// The sum of the series of `name` whose labels contain `label` (say `outcome="failed"`).
pub fn metric_sum_where(exposition: &str, name: &str, label: &str) -> f64 {
    exposition
        .lines()
        .filter(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with('{')) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The sum of every series of `name` in a Prometheus text exposition (0 when absent).
pub fn metric_sum(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .filter(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
