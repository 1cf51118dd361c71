//! Faults the consumers meet: a database that refuses connections, poison messages, and
//! an instance that stops while another takes over its partitions.

use super::*;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "fault test: run with `make chaos`"]
async fn a_database_that_refuses_connections_pauses_consumption_and_loses_nothing() {
    let platform = Platform::start().await;
    let progress = Arc::new(AtomicUsize::new(0));
    let registrations = platform.register(USERS, Arc::clone(&progress));
    eventually("welcome orders to flow", Duration::from_secs(120), || async {
        (platform.welcome_orders().await >= i64::try_from(USERS / 4).unwrap()).then_some(())
    })
    .await;

    platform.set_order_db_connections(false).await;
    let outage_started = Instant::now();
    eventually("order-service to report not ready", Duration::from_secs(10), || async {
        (platform.orders.ready_status().await == Some(503)).then_some(())
    })
    .await;
    let not_ready_after = outage_started.elapsed();
    tokio::time::sleep(OUTAGE.saturating_sub(outage_started.elapsed())).await;
    assert_eq!(platform.orders.ready_status().await, Some(503), "still not ready during the outage");
    platform.set_order_db_connections(true).await;
    let recovered = Instant::now();
    platform.orders.wait_ready().await;

    let users = registrations.await.unwrap();
    let settled = platform.wait_until_settled(&users, Duration::from_secs(180)).await;
    let (messages, redelivered) = platform.assert_exactly_once(&users).await;
    let metrics = platform.client.get(platform.orders.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(
        testkit::metric_sum(&metrics, "kafka_dead_letters_total"),
        0.0,
        "the outage parked messages:\n{metrics}"
    );
    println!(
        "database outage: /health/ready said 503 after {:.1} s; backlog drained {:.1} s after connections were \
         allowed again; {messages} payment messages ({redelivered} redelivered); no dead letters",
        not_ready_after.as_secs_f64(),
        (settled - recovered).as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "fault test: run with `make chaos`"]
async fn poison_messages_are_parked_and_the_chain_goes_on() {
    let platform = Platform::start().await;
    let progress = Arc::new(AtomicUsize::new(0));
    let first = platform.register(25, Arc::clone(&progress)).await.unwrap();
    let brokers = platform.broker.address();
    let producer: rdkafka::producer::FutureProducer = cluster::operator_config(&brokers).create().unwrap();
    for topic in ["user.created", "order.created", "payment.completed"] {
        // Keyed like real traffic, so the poison shares partitions with good messages.
        for key in first.iter().take(3) {
            let key = key.to_string();
            let record = rdkafka::producer::FutureRecord::to(topic).key(&key).payload("{poison");
            producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
        }
    }
    let second = platform.register(25, Arc::clone(&progress)).await.unwrap();
    let users: Vec<Uuid> = first.into_iter().chain(second).collect();
    platform.wait_until_settled(&users, Duration::from_secs(120)).await;
    platform.assert_exactly_once(&users).await;

    for topic in ["user.created", "order.created", "payment.completed"] {
        let settings = eventing::configuration::KafkaSettings::from_env(
            &platform::configuration::Env::from_pairs(cluster::principal_env("platform-operator"))
                .with("KAFKA_BROKERS", brokers.as_str()),
            "fault-test",
        )
        .unwrap();
        let letters = eventually("the poison to be parked", Duration::from_secs(30), || async {
            let letters = event_tools::dead_letters::list(&settings, topic).ok()?;
            (letters.len() >= 3).then_some(letters)
        })
        .await;
        assert!(letters.iter().all(|l| l.payload == "{poison"), "{topic}: {letters:?}");
        println!("poison: {} letters in {topic}.dlq", letters.len());
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "fault test: run with `make chaos`"]
async fn a_second_order_service_takes_over_the_partitions_of_one_that_stops() {
    // Dynamic members: a stopping instance leaves the group and its partitions move at once.
    let mut platform = Platform::start_with(false, &[]).await;
    let second = Service::start("order-service", &platform.dir, platform.order_env.clone()).await;
    let progress = Arc::new(AtomicUsize::new(0));
    let registrations = platform.register(200, Arc::clone(&progress));
    eventually("welcome orders to flow", Duration::from_secs(120), || async {
        (platform.welcome_orders().await >= 50).then_some(())
    })
    .await;
    // Both instances share the group: each must have handled some of the stream.
    let stored_before = platform.welcome_orders().await;
    // SIGTERM, as a scale-down or a rolling deploy does: the instance leaves the group and the
    // survivor is handed its partitions at once. (After a SIGKILL, the broker reassigns them
    // once the member's session times out.)
    platform.orders.terminate();
    let users = registrations.await.unwrap();
    platform.wait_until_settled(&users, Duration::from_secs(120)).await;
    platform.assert_exactly_once(&users).await;
    let metrics = platform.client.get(second.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("kafka_messages_consumed_total"), "the survivor consumed");
    println!(
        "scale-out: one of two order-service instances stopped with {stored_before} welcome orders stored; the survivor finished all {}",
        users.len()
    );
}
