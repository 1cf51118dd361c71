//! A platform left idle longer than its topics' retention: every record of the chain's
//! topics is deleted, the partitions go on numbering from where they were, and neither
//! the services' consumers nor `make events` take an emptied log for a restarted one.
//! The next events arrive whole, with their ids, types and request ids.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_tools::tail::{self, Seen, StartAt};
use eventing::configuration::KafkaSettings;
use platform::configuration::Env;
use rdkafka::consumer::{BaseConsumer, Consumer};
use testkit::eventually;
use uuid::Uuid;

use super::Platform;
use super::cluster::{Broker, operator_config, principal_env, scratch_dir};

const CHAIN: [&str; 3] = ["user.created", "order.created", "payment.completed"];
/// Enough users for every partition of the three topics (3 each) to hold records.
const USERS: usize = 12;
/// Longer than two looks of a service's topic keeper (every KAFKA_TOPIC_CHECK_INTERVAL_MS, 2 s).
const WATCH_EVERY: Duration = Duration::from_secs(5);

/// Whether every partition of the chain's topics had all its records deleted (its log
/// starts where it ends), after records were written to them.
fn chain_topics_emptied(brokers: &str) -> bool {
    let Ok(consumer) = operator_config(brokers).create::<BaseConsumer>() else {
        return false;
    };
    let mut written = false;
    let emptied = CHAIN.iter().all(|topic| {
        (0..3).all(|partition| match consumer.fetch_watermarks(topic, partition, Duration::from_secs(5)) {
            Ok((low, high)) => {
                written |= high > 0;
                low == high
            }
            Err(_) => false,
        })
    });
    emptied && written
}

/// Signs a user up with a request id of its own: (user id, request id).
async fn sign_up(platform: &Platform) -> (String, String) {
    let request_id = Uuid::new_v4().to_string();
    let body = serde_json::json!({
        "email": format!("retention-{}@example.com", Uuid::new_v4().simple()),
        "name": "Retention Tester",
        "password": "SecurePass123!"
    });
    let response = testkit::trusted_client(platform::auth::Role::User)
        .post(platform.users.url("/auth/register"))
        .header("x-request-id", &request_id)
        .json(&body)
        .send()
        .await
        .expect("user-service answers");
    assert_eq!(response.status(), 201);
    let user: serde_json::Value = response.json().await.unwrap();
    (user["id"].as_str().unwrap().to_owned(), request_id)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "fault test: run with `make chaos`"]
async fn after_retention_emptied_the_topics_every_event_keeps_its_headers_through_the_chain() {
    let dir = scratch_dir();
    let broker = Broker::start_with_maintenance(&dir, "1s").await;
    let platform = Platform::start_on(dir, broker, true, &[("KAFKA_RETENTION_MS", "2000")]).await;
    let brokers = platform.broker.address();
    let before = platform.register(USERS, Arc::default()).await.unwrap();
    platform.wait_until_settled(&before, Duration::from_secs(60)).await;
    eventually("retention to delete every record of the chain's topics", Duration::from_secs(60), || {
        let brokers = brokers.clone();
        async move { tokio::task::spawn_blocking(move || chain_topics_emptied(&brokers)).await.ok()?.then_some(()) }
    })
    .await;
    // Two looks of every keeper: one that took emptied logs for restarted ones would have
    // its consumer read them again from the beginning.
    tokio::time::sleep(WATCH_EVERY * 2).await;
    for service in [&platform.orders, &platform.payments] {
        assert!(
            !service.log().contains("reading it from the beginning"),
            "{} took a log emptied by retention for a restarted one",
            service.name
        );
    }

    // `make events`, from now.
    let settings = KafkaSettings::from_env(
        &Env::from_pairs(principal_env("platform-operator")).with("KAFKA_BROKERS", brokers.clone()),
        "retention-test",
    )
    .unwrap();
    let topics: Vec<String> = CHAIN.iter().map(|topic| (*topic).to_owned()).collect();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (following_tx, following_rx) = std::sync::mpsc::channel();
    let follower = {
        let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
        std::thread::spawn(move || {
            tail::follow(
                &settings,
                &topics,
                StartAt::Now,
                Duration::from_millis(500),
                || stop.load(Ordering::Relaxed),
                |partitions| following_tx.send(partitions).unwrap(),
                |message| seen.lock().unwrap().push(message),
            )
        })
    };
    tokio::task::spawn_blocking(move || following_rx.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("the follower says it follows");

    let mut after = Vec::new();
    for _ in 0..USERS {
        after.push(sign_up(&platform).await);
    }
    let users: Vec<Uuid> = after.iter().map(|(user, _)| user.parse().unwrap()).collect();
    platform.wait_until_settled(&users, Duration::from_secs(60)).await;
    eventually("every event of the new sign-ups to be shown", Duration::from_secs(30), || async {
        let seen = seen.lock().unwrap();
        let ours = seen.iter().filter(|m| after.iter().any(|(user, _)| m.key.as_deref() == Some(user))).count();
        (ours >= USERS * CHAIN.len()).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    follower.join().unwrap().unwrap();

    let seen = seen.lock().unwrap();
    for (user, request_id) in &after {
        for topic in CHAIN {
            let message = seen
                .iter()
                .find(|m| m.topic == topic && m.key.as_deref() == Some(user))
                .unwrap_or_else(|| panic!("no {topic} shown for {user}"));
            assert!(
                message.event_id.is_some() && message.event_type.is_some(),
                "{topic} without its CloudEvents headers: {message:?}"
            );
            // The services run without a trace exporter here, so no trace context: the
            // request id is what each service read from the event before it.
            assert_eq!(
                message.request_id.as_deref(),
                Some(request_id.as_str()),
                "{topic} of {user} does not carry its sign-up's request id"
            );
        }
    }
}
