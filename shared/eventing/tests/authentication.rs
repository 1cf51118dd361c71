//! The broker takes records only from a principal that signed in: a producer without
//! credentials, or with a wrong password, is refused; the same producer signed in is
//! acknowledged. Runs against the tests' broker, which requires SASL/SCRAM as every
//! broker the platform's scripts start does.

use std::time::Duration;

use eventing::configuration::KafkaSettings;
use eventing::kafka::ensure_topics;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Produces one record to a topic of this test's own, within a few seconds.
async fn produce(mut config: ClientConfig, topic: &str) -> Result<(), String> {
    let producer: FutureProducer =
        config.set("message.timeout.ms", "2500").create().map_err(|error| error.to_string())?;
    producer
        .send(FutureRecord::to(topic).key("k").payload("forged"), Duration::from_secs(5))
        .await
        .map(|_| ())
        .map_err(|(error, _)| error.to_string())
}

fn without(config: ClientConfig, keys: &[&str]) -> ClientConfig {
    let mut stripped = ClientConfig::new();
    for (key, value) in config.config_map() {
        if !keys.contains(&key) {
            stripped.set(key, value);
        }
    }
    stripped
}

#[tokio::test]
async fn the_broker_refuses_records_from_anyone_who_has_not_signed_in() {
    assert!(
        !testkit::kafka_credentials().is_empty(),
        "the suite runs against a broker that requires SASL (make test-rust passes the credentials)"
    );
    let topic = testkit::unique_name("auth");
    let signed_in = testkit::kafka_config();
    let settings = KafkaSettings::from_env(&testkit::kafka_env(), "auth-test").unwrap();
    ensure_topics(&settings, &[&topic]).await.unwrap();

    let anonymous =
        without(signed_in.clone(), &["security.protocol", "sasl.mechanisms", "sasl.username", "sasl.password"]);
    let refused = produce(anonymous, &topic).await;
    assert!(refused.is_err(), "a producer without credentials was acknowledged");

    let mut wrong = signed_in.clone();
    wrong.set("sasl.password", "not-the-password");
    let refused = produce(wrong, &topic).await;
    assert!(refused.is_err(), "a producer with a wrong password was acknowledged");

    let mut impostor = signed_in.clone();
    impostor.set("sasl.username", "user-service-2");
    assert!(produce(impostor, &topic).await.is_err(), "an unknown principal was acknowledged");

    produce(signed_in, &topic).await.expect("the same producer, signed in, is acknowledged");
}
