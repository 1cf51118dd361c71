//! The shared consumer on the real broker: within one partition, different keys are
//! handled concurrently and each key strictly in offset order, exactly once.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should fail loudly

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use contracts::events::{Event, UserCreated};
use eventing::configuration::KafkaSettings;
use eventing::health::ConsumerStatus;
use eventing::kafka::{ConsumerBuilder, EventPublisher, ensure_topics};
use platform::http::RequestId;
use rand::Rng;
use testkit::eventually;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const KEYS: usize = 24;
const PER_KEY: usize = 25;

fn settings(prefix: &str) -> KafkaSettings {
    let env = testkit::kafka_env()
        .with("KAFKA_TOPIC_PREFIX", prefix.to_owned())
        .with("KAFKA_TOPIC_PARTITIONS", "1".to_owned())
        .with("KAFKA_MAX_IN_FLIGHT", "16".to_owned());
    KafkaSettings::from_env(&env, "key-order-test").unwrap()
}

#[derive(Default)]
struct Observed {
    /// Offsets seen per key, in the order their handlers started.
    by_key: Mutex<HashMap<Uuid, Vec<i64>>>,
    running: AtomicUsize,
    most_running: AtomicUsize,
    handled: AtomicUsize,
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_run_concurrently_and_each_key_in_offset_order_exactly_once() {
    let prefix = testkit::topic_prefix();
    let settings = settings(&prefix);
    ensure_topics(&settings, &[UserCreated::TOPIC]).await.unwrap();

    // Interleaved keys on a single partition: user k's n-th event follows every key's (n-1)-th.
    let publisher = EventPublisher::new(&settings).unwrap();
    let users: Vec<Uuid> = (0..KEYS).map(|_| Uuid::new_v4()).collect();
    let mut sends = Vec::new();
    let sender = &publisher;
    for round in 0..PER_KEY {
        for user in &users {
            let event = UserCreated {
                user_id: *user,
                email: format!("{round}@example.com"),
                name: "Order Tester".to_owned(),
                created_at: Utc::now(),
            };
            sends.push(async move { sender.publish(&event, &RequestId::generate()).await.unwrap() });
        }
        // One round at a time: within a key the publish order is the offset order.
        futures::future::join_all(sends.drain(..)).await;
    }

    let observed = Arc::new(Observed::default());
    let seen = Arc::clone(&observed);
    let consumer = ConsumerBuilder::new(&settings, "key-order", publisher.clone())
        .on(move |message: eventing::kafka::Incoming<UserCreated>| {
            let seen = Arc::clone(&seen);
            async move {
                seen.by_key.lock().unwrap().entry(message.event.user_id).or_default().push(message.meta.offset);
                let now = seen.running.fetch_add(1, Ordering::SeqCst) + 1;
                seen.most_running.fetch_max(now, Ordering::SeqCst);
                let delay = rand::rng().random_range(0..8);
                tokio::time::sleep(Duration::from_millis(delay)).await;
                seen.running.fetch_sub(1, Ordering::SeqCst);
                seen.handled.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .build(ConsumerStatus::default())
        .unwrap();
    let stop = CancellationToken::new();
    let run = tokio::spawn(consumer.run(stop.clone()));
    eventually("every message to be handled", Duration::from_secs(60), || async {
        (observed.handled.load(Ordering::SeqCst) >= KEYS * PER_KEY).then_some(())
    })
    .await;
    stop.cancel();
    run.await.unwrap();

    let by_key = observed.by_key.lock().unwrap();
    assert_eq!(by_key.len(), KEYS);
    let mut every_offset = BTreeMap::new();
    for (user, offsets) in by_key.iter() {
        assert_eq!(offsets.len(), PER_KEY, "user {user}: each message exactly once");
        assert!(offsets.windows(2).all(|pair| pair[0] < pair[1]), "user {user} out of order: {offsets:?}");
        for offset in offsets {
            assert!(every_offset.insert(*offset, *user).is_none(), "offset {offset} handled twice");
        }
    }
    assert_eq!(every_offset.len(), KEYS * PER_KEY);
    let most = observed.most_running.load(Ordering::SeqCst);
    assert!(most > 1, "handlers never overlapped: no concurrency across keys");
    assert!(most <= 16, "more than KAFKA_MAX_IN_FLIGHT ran at once: {most}");
    println!("most handlers running at once: {most}");
}
