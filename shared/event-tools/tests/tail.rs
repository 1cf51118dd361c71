//! `make events`' follower on the real broker: started "from now", it shows every message
//! published after it says it follows, and none from before, on every partition.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should fail loudly

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_tools::tail::{self, Seen, StartAt};
use eventing::configuration::KafkaSettings;
use eventing::kafka::ensure_topics;
use testkit::eventually;

/// Messages per phase, spread over the topic's partitions by key.
const MESSAGES: usize = 12;

fn settings(prefix: &str) -> KafkaSettings {
    let env = testkit::kafka_env()
        .with("KAFKA_TOPIC_PREFIX", prefix.to_owned())
        .with("KAFKA_TOPIC_PARTITIONS", "3".to_owned());
    KafkaSettings::from_env(&env, "tail-test").unwrap()
}

async fn produce(topic: &str, phase: &str) {
    for i in 0..MESSAGES {
        testkit::produce_raw(topic, &format!("{phase}-{i}"), b"{}").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn from_now_it_shows_exactly_what_is_published_after_it_follows() {
    let prefix = testkit::topic_prefix();
    let settings = settings(&prefix);
    ensure_topics(&settings, &["user.created"]).await.unwrap();
    let topic = format!("{prefix}user.created");
    produce(&topic, "before").await;

    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (following_tx, following_rx) = std::sync::mpsc::channel();
    let follower = {
        let (seen, stop, topics) = (Arc::clone(&seen), Arc::clone(&stop), vec![topic.clone()]);
        std::thread::spawn(move || {
            tail::follow(
                &settings,
                &topics,
                StartAt::Now,
                Duration::from_millis(300),
                || stop.load(Ordering::Relaxed),
                |partitions| following_tx.send(partitions).unwrap(),
                |message| seen.lock().unwrap().push(message),
            )
        })
    };
    let partitions = tokio::task::spawn_blocking(move || following_rx.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("the follower says it follows");
    assert_eq!(partitions, 3);

    produce(&topic, "after").await;
    eventually("every message published after it follows to be shown", Duration::from_secs(30), || async {
        (seen.lock().unwrap().len() >= MESSAGES).then_some(())
    })
    .await;
    // Several lookups of the topics (every 300 ms) pass without showing anything again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    follower.join().unwrap().unwrap();

    let mut keys: Vec<String> = seen.lock().unwrap().iter().filter_map(|m| m.key.clone()).collect();
    keys.sort();
    let mut expected: Vec<String> = (0..MESSAGES).map(|i| format!("after-{i}")).collect();
    expected.sort();
    assert_eq!(keys, expected, "only the messages published after it followed, each once");
}
