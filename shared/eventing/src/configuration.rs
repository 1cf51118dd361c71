//! Settings of the event infrastructure: how to reach the Kafka cluster and name topics
//! and groups, read from the environment like every other setting (see
//! [`platform::configuration`]).

use std::time::Duration;

use platform::configuration::{ConfigError, Env};
use secrecy::SecretString;

/// How to reach the Kafka brokers and name topics and groups.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `KAFKA_BROKERS`, comma-separated `host:port`.
    pub brokers: String,
    /// `KAFKA_CLIENT_ID`.
    pub client_id: String,
    /// `KAFKA_TOPIC_PREFIX`, prepended to every topic and consumer group (tests isolate themselves with it).
    pub topic_prefix: String,
    /// `KAFKA_TOPIC_PARTITIONS`, used when the platform creates a missing topic.
    pub partitions: i32,
    /// `KAFKA_REPLICATION_FACTOR`, used when the platform creates a missing topic.
    pub replication_factor: i32,
    /// `KAFKA_FETCH_WAIT_MAX_MS` (10): how long a fetch may wait for data. Brokers answer as
    /// soon as data arrives; the wait bounds how long a partition resumed after a pause
    /// waits to join the consumer's next fetch.
    pub fetch_wait_max_ms: u32,
    /// `KAFKA_FETCH_MAX_BYTES` (32 KiB): the most one fetch may bring back, per request and
    /// per partition. Chosen by measuring the order flood (docs/decisions/fetch-size.md).
    /// A record larger than this is still delivered: brokers return a fetch's first record
    /// whatever its size.
    pub fetch_max_bytes: usize,
    /// `KAFKA_PRODUCE_TIMEOUT_MS`: how long a publish waits for the broker's acknowledgement.
    pub produce_timeout: Duration,
    /// `KAFKA_HANDLER_MAX_ATTEMPTS`: attempts at a failing message before it goes to the dead-letter topic.
    pub handler_max_attempts: u32,
    /// `KAFKA_RETRY_BASE_MS`: first retry delay; attempt n waits about base × n².
    pub retry_base: Duration,
    /// `KAFKA_GROUP_INSTANCE_ID`: a stable identity for this instance in its consumer groups
    /// (static membership, KIP-345), e.g. the pod name. A restarted instance then gets its
    /// partitions back at once instead of after a rebalance.
    pub group_instance_id: Option<String>,
    /// `KAFKA_SESSION_TIMEOUT_MS` (45000): how long the broker may go without a heartbeat
    /// before the group reassigns this member's partitions.
    pub session_timeout: Duration,
    /// `KAFKA_MAX_IN_FLIGHT` (64): messages of one partition handled at once (each of
    /// another key). At the limit the partition pauses until one finishes.
    pub max_in_flight: usize,
    /// `KAFKA_MAX_WAITING` (1024): messages of one partition held waiting behind an
    /// earlier message of their key. A burst of one key waits here without taking the
    /// handling slots other keys need; at the limit the partition pauses.
    pub max_waiting: usize,
    /// `KAFKA_MAX_IN_FLIGHT_BYTES` (4 MiB): payload bytes of one partition's messages
    /// running or waiting.
    pub max_in_flight_bytes: usize,
    /// `KAFKA_RETENTION_MS` (1 h): how long the broker keeps the events of a topic the
    /// platform creates (`cleanup.policy=delete`). Every event is handled within seconds
    /// or dead-lettered; an hour bounds a local broker's store while leaving time to look.
    pub retention: Duration,
    /// `KAFKA_DLQ_RETENTION_MS` (7 days): the same for dead-letter topics, whose letters
    /// wait for a person to inspect and replay them.
    pub dlq_retention: Duration,
    /// `KAFKA_TOPIC_CHECK_INTERVAL_MS` (2000): how often a service checks that its topics
    /// exist, recreating missing ones.
    pub topic_check_interval: Duration,
    /// How this client proves who it is to the brokers.
    pub security: KafkaSecurity,
}

/// `KAFKA_SECURITY_PROTOCOL`: `PLAINTEXT` (no credentials set), `SASL_PLAINTEXT` (the
/// default once credentials are set) or `SASL_SSL`. With SASL the client signs in as
/// `KAFKA_SASL_USERNAME` with `KAFKA_SASL_PASSWORD` by `KAFKA_SASL_MECHANISM`
/// (`SCRAM-SHA-512` or `SCRAM-SHA-256`): each service has a principal of its own, which
/// the brokers' ACLs allow to write only the topics it owns.
#[derive(Debug, Clone)]
pub enum KafkaSecurity {
    /// No authentication: a broker that accepts anyone (local experiments only).
    Plaintext,
    /// SASL/SCRAM, over plain TCP or TLS.
    #[allow(missing_docs)] // the fields are librdkafka's settings of the same names
    Sasl { protocol: &'static str, mechanism: &'static str, username: String, password: SecretString },
}

impl KafkaSecurity {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let credentials = (env.raw("KAFKA_SASL_USERNAME"), env.raw("KAFKA_SASL_PASSWORD"));
        let default = if credentials == (None, None) { "PLAINTEXT" } else { "SASL_PLAINTEXT" };
        let protocol = env.one_of("KAFKA_SECURITY_PROTOCOL", default, &["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"])?;
        let mechanism = env.one_of("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", &["SCRAM-SHA-512", "SCRAM-SHA-256"])?;
        match (protocol, credentials) {
            ("PLAINTEXT", (None, None)) => Ok(Self::Plaintext),
            ("PLAINTEXT", _) => Err(ConfigError::new(
                "KAFKA_SECURITY_PROTOCOL",
                "PLAINTEXT sends no credentials, yet KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD is set",
            )),
            (_, (Some(username), Some(password))) => Ok(Self::Sasl {
                protocol,
                mechanism,
                username: username.to_owned(),
                password: SecretString::from(password),
            }),
            (_, (None, _)) => Err(ConfigError::new("KAFKA_SASL_USERNAME", format!("{protocol} needs a username"))),
            (_, (_, None)) => Err(ConfigError::new("KAFKA_SASL_PASSWORD", format!("{protocol} needs a password"))),
        }
    }
}

impl KafkaSettings {
    /// Reads the `KAFKA_*` variables.
    pub fn from_env(env: &Env, client_id: &str) -> Result<Self, ConfigError> {
        let settings = Self {
            brokers: env.string("KAFKA_BROKERS", "127.0.0.1:9092"),
            client_id: env.string("KAFKA_CLIENT_ID", client_id),
            topic_prefix: env.string("KAFKA_TOPIC_PREFIX", ""),
            partitions: env.get("KAFKA_TOPIC_PARTITIONS", 3)?,
            replication_factor: env.get("KAFKA_REPLICATION_FACTOR", 1)?,
            fetch_wait_max_ms: env.get("KAFKA_FETCH_WAIT_MAX_MS", 10)?,
            fetch_max_bytes: env.get("KAFKA_FETCH_MAX_BYTES", 32 * 1024)?,
            produce_timeout: env.millis("KAFKA_PRODUCE_TIMEOUT_MS", 5_000)?,
            handler_max_attempts: env.get("KAFKA_HANDLER_MAX_ATTEMPTS", 4)?,
            retry_base: env.millis("KAFKA_RETRY_BASE_MS", 100)?,
            group_instance_id: env.raw("KAFKA_GROUP_INSTANCE_ID").map(str::to_owned),
            session_timeout: env.millis("KAFKA_SESSION_TIMEOUT_MS", 45_000)?,
            max_in_flight: env.get("KAFKA_MAX_IN_FLIGHT", 64)?,
            max_waiting: env.get("KAFKA_MAX_WAITING", 1024)?,
            max_in_flight_bytes: env.get("KAFKA_MAX_IN_FLIGHT_BYTES", 4 * 1024 * 1024)?,
            retention: env.millis("KAFKA_RETENTION_MS", 3_600_000)?,
            dlq_retention: env.millis("KAFKA_DLQ_RETENTION_MS", 7 * 24 * 3_600_000)?,
            topic_check_interval: env.millis("KAFKA_TOPIC_CHECK_INTERVAL_MS", 2_000)?,
            security: KafkaSecurity::from_env(env)?,
        };
        // librdkafka's own floor for message.max.bytes, which the fetch size may not undercut.
        if !(1000..=100_000_000).contains(&settings.fetch_max_bytes) {
            return Err(ConfigError::new("KAFKA_FETCH_MAX_BYTES", "must be between 1000 and 100000000"));
        }
        let at_least_one = [
            ("KAFKA_TOPIC_PARTITIONS", settings.partitions >= 1),
            ("KAFKA_REPLICATION_FACTOR", settings.replication_factor >= 1),
            ("KAFKA_MAX_IN_FLIGHT", settings.max_in_flight >= 1),
            ("KAFKA_MAX_WAITING", settings.max_waiting >= 1),
            ("KAFKA_TOPIC_CHECK_INTERVAL_MS", !settings.topic_check_interval.is_zero()),
            ("KAFKA_HANDLER_MAX_ATTEMPTS", settings.handler_max_attempts >= 1),
        ];
        if let Some((variable, _)) = at_least_one.into_iter().find(|(_, valid)| !valid) {
            return Err(ConfigError::new(variable, "must be at least 1"));
        }
        Ok(settings)
    }

    /// The full name of a topic, with the configured prefix.
    pub fn topic(&self, base: &str) -> String {
        format!("{}{base}", self.topic_prefix)
    }

    /// The full name of a consumer group, with the configured prefix.
    pub fn group(&self, base: &str) -> String {
        format!("{}{base}", self.topic_prefix)
    }
}
