//! Creates the platform's topics, and their dead-letter topics, when missing.

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use super::base_config;
use crate::configuration::KafkaSettings;
use crate::events::dead_letter_topic;

/// Ensures each topic in `bases` and its `.dlq` exist, with the configured
/// partitions and replication. Existing topics are left as they are.
pub async fn ensure_topics(settings: &KafkaSettings, bases: &[&str]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        base_config(settings).create().context("cannot create Kafka admin client")?;
    let names: Vec<String> =
        bases.iter().flat_map(|base| [settings.topic(base), dead_letter_topic(&settings.topic(base))]).collect();
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| NewTopic::new(name, settings.partitions, TopicReplication::Fixed(settings.replication_factor)))
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(settings.produce_timeout))
        .request_timeout(Some(settings.produce_timeout));
    let results = admin.create_topics(&topics, &options).await.context("create_topics request failed")?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = name, partitions = settings.partitions, "topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("cannot create topic {name}: {code}"),
        }
    }
    Ok(())
}
