//! What every Kafka client of the platform shares: its base configuration, how long a
//! request to the broker may take, and the listing of a topic's partitions.

use std::time::Duration;

use rdkafka::client::{Client, ClientContext};
use rdkafka::{ClientConfig, TopicPartitionList};

use secrecy::ExposeSecret;

use crate::configuration::{KafkaSecurity, KafkaSettings};

/// How long one metadata, offsets or admin request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Client configuration common to producers, consumers and admin clients.
pub fn base_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("client.id", &settings.client_id)
        // Topics are created by the services' keepers, with the configured partitions and
        // retention, never as a side effect of a producer's metadata request.
        .set("allow.auto.create.topics", "false")
        // librdkafka logs through its own callback; keep it to warnings.
        .set("log_level", "4");
    if let KafkaSecurity::Sasl { protocol, mechanism, username, password } = &settings.security {
        config
            .set("security.protocol", *protocol)
            .set("sasl.mechanisms", *mechanism)
            .set("sasl.username", username)
            .set("sasl.password", password.expose_secret());
    }
    config
}

/// Every partition of `topics` that the cluster has (blocking: one metadata request).
pub fn partitions<C: ClientContext>(
    client: &Client<C>,
    topics: &[&str],
) -> rdkafka::error::KafkaResult<TopicPartitionList> {
    let metadata = client.fetch_metadata(None, REQUEST_TIMEOUT)?;
    let mut list = TopicPartitionList::new();
    for topic in metadata.topics().iter().filter(|topic| topics.contains(&topic.name()) && topic.error().is_none()) {
        for partition in topic.partitions() {
            list.add_partition(topic.name(), partition.id());
        }
    }
    Ok(list)
}
