//! The consumer's window on the real broker: a burst of one key waits in its own lane
//! without holding up other keys on the same partition, and a record larger than the
//! fetch size is delivered and handled.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should fail loudly

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use contracts::events::{Event, UserCreated};
use eventing::configuration::KafkaSettings;
use eventing::health::ConsumerStatus;
use eventing::kafka::{ConsumerBuilder, EventPublisher, Incoming, ensure_topics};
use platform::http::RequestId;
use testkit::eventually;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// One partition, so the hot key and everyone else share it; a small window.
fn settings(prefix: &str) -> KafkaSettings {
    let env = testkit::kafka_env()
        .with("KAFKA_TOPIC_PREFIX", prefix.to_owned())
        .with("KAFKA_TOPIC_PARTITIONS", "1".to_owned())
        .with("KAFKA_MAX_IN_FLIGHT", "4".to_owned());
    KafkaSettings::from_env(&env, "window-test").unwrap()
}

fn user_created(user_id: Uuid, name: String) -> UserCreated {
    UserCreated { user_id, email: "window@example.com".to_owned(), name, created_at: Utc::now() }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_one_key_does_not_hold_up_other_keys_behind_it() {
    const BURST: usize = 40; // ten times the window
    const OTHERS: usize = 6;
    let prefix = testkit::topic_prefix();
    let settings = settings(&prefix);
    ensure_topics(&settings, &[UserCreated::TOPIC]).await.unwrap();
    let publisher = EventPublisher::new(&settings).unwrap();
    let hot = Uuid::new_v4();
    for i in 0..BURST {
        publisher.publish(&user_created(hot, format!("hot {i}")), &RequestId::generate()).await.unwrap();
    }
    let others: Vec<Uuid> = (0..OTHERS).map(|_| Uuid::new_v4()).collect();
    for user in &others {
        publisher.publish(&user_created(*user, "other".to_owned()), &RequestId::generate()).await.unwrap();
    }

    // The hot key's first message blocks until every other key's message was handled.
    let release = Arc::new(Notify::new());
    let (hot_handled, others_handled) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(HashSet::new())));
    let consumer = {
        let (release, hot_handled, others_handled) =
            (Arc::clone(&release), Arc::clone(&hot_handled), Arc::clone(&others_handled));
        ConsumerBuilder::new(&settings, "window", publisher.clone())
            .on(move |message: Incoming<UserCreated>| {
                let (release, hot_handled, others_handled) =
                    (Arc::clone(&release), Arc::clone(&hot_handled), Arc::clone(&others_handled));
                async move {
                    if message.event.user_id == hot {
                        if hot_handled.load(Ordering::SeqCst) == 0 {
                            release.notified().await;
                        }
                        hot_handled.fetch_add(1, Ordering::SeqCst);
                    } else {
                        others_handled.lock().unwrap().insert(message.event.user_id);
                    }
                    Ok(())
                }
            })
            .build(ConsumerStatus::default())
            .unwrap()
    };
    let stop = CancellationToken::new();
    let run = tokio::spawn(consumer.run(stop.clone()));
    eventually("every other key's message to be handled", Duration::from_secs(30), || async {
        (others_handled.lock().unwrap().len() == OTHERS).then_some(())
    })
    .await;
    assert_eq!(hot_handled.load(Ordering::SeqCst), 0, "the hot key's first message is still running");
    release.notify_one();
    eventually("the hot key's burst to be handled", Duration::from_secs(30), || async {
        (hot_handled.load(Ordering::SeqCst) == BURST).then_some(())
    })
    .await;
    stop.cancel();
    run.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_larger_than_the_fetch_size_is_delivered_and_handled() {
    let prefix = testkit::topic_prefix();
    let settings = settings(&prefix);
    let fetch = settings.fetch_max_bytes;
    ensure_topics(&settings, &[UserCreated::TOPIC]).await.unwrap();
    let publisher = EventPublisher::new(&settings).unwrap();
    let large = Uuid::new_v4();
    let name = "x".repeat(fetch + 8 * 1024);
    publisher.publish(&user_created(large, name), &RequestId::generate()).await.unwrap();
    let after = Uuid::new_v4();
    publisher.publish(&user_created(after, "after".to_owned()), &RequestId::generate()).await.unwrap();

    let handled: Arc<Mutex<Vec<(Uuid, usize)>>> = Arc::default();
    let consumer = {
        let handled = Arc::clone(&handled);
        ConsumerBuilder::new(&settings, "large", publisher.clone())
            .on(move |message: Incoming<UserCreated>| {
                let handled = Arc::clone(&handled);
                async move {
                    handled.lock().unwrap().push((message.event.user_id, message.event.name.len()));
                    Ok(())
                }
            })
            .build(ConsumerStatus::default())
            .unwrap()
    };
    let stop = CancellationToken::new();
    let run = tokio::spawn(consumer.run(stop.clone()));
    eventually("both records to be handled", Duration::from_secs(30), || async {
        (handled.lock().unwrap().len() >= 2).then_some(())
    })
    .await;
    stop.cancel();
    run.await.unwrap();
    let handled = handled.lock().unwrap();
    assert_eq!(handled[0], (large, fetch + 8 * 1024), "the large record first, whole");
    assert_eq!(handled[1].0, after, "and the partition goes on after it");
}

#[tokio::test(flavor = "multi_thread")]
async fn events_ordered_by_their_own_lane_run_concurrently_under_one_key() {
    use contracts::events::{OrderCreated, OrderItem};
    use contracts::money::Money;
    const ORDERS: usize = 4; // the window: all of them run at once or the test waits
    let prefix = testkit::topic_prefix();
    let settings = settings(&prefix);
    ensure_topics(&settings, &[OrderCreated::TOPIC]).await.unwrap();
    let publisher = EventPublisher::new(&settings).unwrap();
    let user_id = Uuid::new_v4();
    let orders: Vec<Uuid> = (0..ORDERS).map(|_| Uuid::new_v4()).collect();
    for order_id in &orders {
        let price = Money::parse_decimal("1.50").unwrap();
        let item = OrderItem { product_id: "product-lane".to_owned(), quantity: 1, price };
        let order = OrderCreated {
            order_id: *order_id,
            user_id,
            items: vec![item],
            total_amount: price,
            created_at: Utc::now(),
        };
        publisher.publish(&order, &RequestId::generate()).await.unwrap();
    }
    // Every order's handler waits until all of them have started: only lanes of their own
    // (one user, one message key) let them run at once.
    let started = Arc::new(AtomicUsize::new(0));
    let all_started = Arc::new(Notify::new());
    let consumer = {
        let (started, all_started) = (Arc::clone(&started), Arc::clone(&all_started));
        ConsumerBuilder::new(&settings, "lanes", publisher.clone())
            .on(move |_: Incoming<OrderCreated>| {
                let (started, all_started) = (Arc::clone(&started), Arc::clone(&all_started));
                async move {
                    let waiting = all_started.notified();
                    if started.fetch_add(1, Ordering::SeqCst) + 1 == ORDERS {
                        all_started.notify_waiters();
                    } else {
                        waiting.await;
                    }
                    Ok(())
                }
            })
            .ordered_by(|order: &OrderCreated| order.order_id)
            .build(ConsumerStatus::default())
            .unwrap()
    };
    let stop = CancellationToken::new();
    let run = tokio::spawn(consumer.run(stop.clone()));
    eventually("every order of the one user to start at once", Duration::from_secs(30), || async {
        (started.load(Ordering::SeqCst) == ORDERS).then_some(())
    })
    .await;
    stop.cancel();
    run.await.unwrap();
}
