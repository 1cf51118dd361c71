//! The store generation on the real broker: every keeper of one store reads the same one
//! from the store marker. (A consumer group acting on it is the fault suite's
//! `consumers_asleep_through_a_wipe…`, which needs a broker of its own to wipe.)

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should fail loudly

use std::time::Duration;

use eventing::configuration::KafkaSettings;
use eventing::kafka::{LogReset, TopicKeeper};
use platform::configuration::Env;
use tokio_util::sync::CancellationToken;

fn settings(prefix: &str) -> KafkaSettings {
    let env = Env::from_pairs([
        ("KAFKA_BROKERS", testkit::kafka_brokers()),
        ("KAFKA_TOPIC_PREFIX", prefix.to_owned()),
        ("KAFKA_TOPIC_PARTITIONS", "3".to_owned()),
        ("KAFKA_TOPIC_CHECK_INTERVAL_MS", "200".to_owned()),
    ]);
    KafkaSettings::from_env(&env, "generation-test").unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_keeper_of_one_store_announces_the_same_generation() {
    testkit::init_tracing();
    let settings = settings(&testkit::topic_prefix());
    let stop = CancellationToken::new();
    let mut generations = Vec::new();
    for _ in 0..2 {
        let keeper = TopicKeeper::start(&settings, &["user.created"]).await.unwrap();
        let mut resets = keeper.log_resets();
        tokio::spawn(keeper.run(stop.clone()));
        let mut seen = resets.current();
        let generation = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Some(LogReset::Generation(generation)) = resets.next(&mut seen).await {
                    return generation;
                }
            }
        })
        .await
        .expect("a generation within 20 s");
        generations.push(generation);
    }
    stop.cancel();
    assert_eq!(generations[0], generations[1], "two keepers, one store: {generations:?}");
}
