//! What order-service does with the events it consumes.

use std::time::Duration;

use chrono::Utc;
use contracts::events::{PaymentCompleted, PaymentStatus, UserCreated, UserDeleted};
use contracts::money::Money;
use rdkafka::Message;
use testkit::{TopicProbe, eventually, header_of, metric_sum, produce_raw};
use uuid::Uuid;

use crate::helpers::{spawn_app, spawn_app_with};

fn user_created(user_id: Uuid) -> UserCreated {
    UserCreated { user_id, email: "new@example.com".into(), name: "New User".into(), created_at: Utc::now() }
}

pub fn payment(order: &serde_json::Value, status: PaymentStatus) -> PaymentCompleted {
    PaymentCompleted {
        payment_id: Uuid::new_v4(),
        order_id: order["id"].as_str().unwrap().parse().unwrap(),
        user_id: order["userId"].as_str().unwrap().parse().unwrap(),
        amount: serde_json::from_value(order["totalAmount"].clone())
            .unwrap_or_else(|_| Money::from_cents(1000).unwrap()),
        status,
        completed_at: Utc::now(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_user_gets_exactly_one_welcome_order_and_one_event_however_often_it_is_told() {
    let app = spawn_app_with(|env| env.with("KAFKA_TOPIC_PARTITIONS", "1")).await;
    let (user_id, marker) = (Uuid::new_v4(), Uuid::new_v4());
    let event_id = Uuid::new_v4();
    let created = user_created(user_id);
    app.publish_with_id(&created, event_id).await;
    app.publish_with_id(&created, event_id).await; // a redelivery
    app.publish(&user_created(user_id)).await; // a duplicate with an id of its own

    let order = app.wait_for_order(user_id, |s| s == "pending").await;
    assert_eq!(order["kind"], "welcome");
    // Different users' events are handled and relayed concurrently, so the marker goes out
    // only once all three messages were handled and every outbox row they made was published:
    // then everything announced for the user precedes the marker on the topic.
    let pool = sqlx::PgPool::connect(&format!("{}/{}", testkit::server_url(), app.database_name)).await.unwrap();
    eventually("the three messages to be handled and relayed", Duration::from_secs(20), || async {
        let metrics = app.client().get(app.url("/metrics")).send().await.ok()?.text().await.ok()?;
        let topic = format!("topic=\"{}\"", app.topic("user.created"));
        let consumed = testkit::metric_sum_where(&metrics, "kafka_messages_consumed_total", &topic);
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetch_one(&pool).await.ok()?;
        (consumed >= 3.0 && pending == 0).then_some(())
    })
    .await;
    app.publish(&user_created(marker)).await;
    let probe = TopicProbe::new(&app.topic("order.created"));
    let mut announced = Vec::new();
    loop {
        let message = probe.next_matching(Duration::from_secs(20), |_| true).await;
        let event: contracts::events::OrderCreated = serde_json::from_slice(message.payload().unwrap()).unwrap();
        if event.user_id == marker {
            break;
        }
        announced.push(event.order_id.to_string());
    }
    assert_eq!(announced, [order["id"].as_str().unwrap()], "one order.created for the one welcome order");
    assert_eq!(app.orders_of(user_id).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payment_outcome_sets_the_order_status_once_and_for_all() {
    let app = spawn_app().await;
    let (paid_user, failed_user) = (Uuid::new_v4(), Uuid::new_v4());
    app.publish(&user_created(paid_user)).await;
    app.publish(&user_created(failed_user)).await;
    let paid = app.wait_for_order(paid_user, |s| s == "pending").await;
    let failed = app.wait_for_order(failed_user, |s| s == "pending").await;

    app.publish(&payment(&paid, PaymentStatus::Completed)).await;
    app.publish(&payment(&failed, PaymentStatus::Failed)).await;
    app.wait_for_order(paid_user, |s| s == "paid").await;
    app.wait_for_order(failed_user, |s| s == "payment_failed").await;

    // A contradicting late event must not move a final order. A second order of the same
    // user, paid by an event behind it on the same key, tells when it was handled.
    app.publish(&payment(&paid, PaymentStatus::Failed)).await;
    let body =
        serde_json::json!({"userId": paid_user, "items": [{"productId": "product-1", "quantity": 1, "price": 1}]});
    let marker: serde_json::Value =
        app.client().post(app.url("/orders")).json(&body).send().await.unwrap().json().await.unwrap();
    app.publish(&payment(&marker, PaymentStatus::Completed)).await;
    eventually("the marker order to be paid", Duration::from_secs(30), || async {
        let orders = app.orders_of(paid_user).await;
        orders.iter().any(|o| o["id"] == marker["id"] && o["status"] == "paid").then_some(())
    })
    .await;
    let orders = app.orders_of(paid_user).await;
    let welcome = orders.iter().find(|o| o["id"] == paid["id"]).unwrap();
    assert_eq!(welcome["status"], "paid");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_message_goes_to_the_dead_letter_topic_and_the_next_one_is_handled() {
    let app = spawn_app().await;
    let user_id = Uuid::new_v4();
    produce_raw(&app.topic("user.created"), &user_id.to_string(), b"{not json").await;
    app.publish(&user_created(user_id)).await;

    app.wait_for_order(user_id, |s| s == "pending").await;
    let dead_letters = TopicProbe::new(&app.topic("user.created.dlq"));
    let letter = dead_letters.next_matching(Duration::from_secs(20), |_| true).await;
    assert_eq!(letter.payload(), Some(&b"{not json"[..]));
    assert_eq!(header_of(&letter, "x-dlq-original-topic"), Some(app.topic("user.created")));
    assert!(header_of(&letter, "x-dlq-error").is_some_and(|e| e.contains("not a valid")));
    assert_eq!(header_of(&letter, "x-dlq-attempts").as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payment_for_an_unknown_order_is_dead_lettered() {
    let app = spawn_app().await;
    let ghost = serde_json::json!({"id": Uuid::new_v4(), "userId": Uuid::new_v4()});
    app.publish(&payment(&ghost, PaymentStatus::Completed)).await;
    let dead_letters = TopicProbe::new(&app.topic("payment.completed.dlq"));
    let letter = dead_letters.next_matching(Duration::from_secs(20), |_| true).await;
    assert!(header_of(&letter, "x-dlq-error").is_some_and(|e| e.contains("unknown order")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payment_that_is_not_the_orders_own_is_dead_lettered_and_changes_nothing() {
    let app = spawn_app().await;
    let user_id = Uuid::new_v4();
    app.publish(&user_created(user_id)).await;
    let order = app.wait_for_order(user_id, |s| s == "pending").await;
    let dead_letters = TopicProbe::new(&app.topic("payment.completed.dlq"));

    // A forged payment of 0.01 for the order, then one by another user for its full total.
    let mut cheap = payment(&order, PaymentStatus::Completed);
    cheap.amount = Money::from_cents(1).unwrap();
    app.publish(&cheap).await;
    let letter = dead_letters.next_matching(Duration::from_secs(20), |_| true).await;
    assert!(header_of(&letter, "x-dlq-error").is_some_and(|e| e.contains("does not match order")), "{letter:?}");
    let mut stranger = payment(&order, PaymentStatus::Failed);
    stranger.user_id = Uuid::new_v4();
    app.publish(&stranger).await;
    dead_letters.next_matching(Duration::from_secs(20), |_| true).await;
    assert_eq!(app.orders_of(user_id).await[0]["status"], "pending", "a refused payment changed the order");

    // The order's own payment still settles it.
    app.publish(&payment(&order, PaymentStatus::Completed)).await;
    app.wait_for_order(user_id, |s| s == "paid").await;
    let metrics = app.client().get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(metric_sum(&metrics, "payments_refused_total"), 2.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parked_message_is_replayed_once_its_cause_is_fixed() {
    let app = spawn_app().await;
    // A payment for an order this service does not have (yet): parked at once.
    let order_id = Uuid::new_v4();
    let user_id = Uuid::new_v4();
    app.publish(&payment(&serde_json::json!({"id": order_id, "userId": user_id}), PaymentStatus::Completed)).await;
    let dead_letters = TopicProbe::new(&app.topic("payment.completed.dlq"));
    dead_letters.next_matching(Duration::from_secs(30), |_| true).await;

    let kafka = app.kafka_settings();
    let listed = event_tools::dead_letters::list(&kafka, "payment.completed").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key.as_deref(), Some(user_id.to_string().as_str()));
    assert!(listed[0].error.as_deref().is_some_and(|e| e.contains("unknown order")));

    // The fix: the missing order is restored (say, from a backup).
    let pool = sqlx::PgPool::connect(&format!("{}/{}", testkit::server_url(), app.database_name)).await.unwrap();
    sqlx::query("INSERT INTO orders (id, user_id, total_cents) VALUES ($1, $2, 1000)")
        .bind(order_id)
        .bind(user_id)
        .execute(&pool)
        .await
        .unwrap();

    let dry = event_tools::dead_letters::replay(&kafka, "payment.completed", true).await.unwrap();
    assert_eq!(dry.replayed.len(), 1);
    assert_eq!(app.orders_of(user_id).await[0]["status"], "pending", "a dry run changes nothing");

    let replay = event_tools::dead_letters::replay(&kafka, "payment.completed", false).await.unwrap();
    assert_eq!(replay.replayed.len(), 1);
    app.wait_for_order(user_id, |s| s == "paid").await;
    let again = event_tools::dead_letters::replay(&kafka, "payment.completed", false).await.unwrap();
    assert!(again.replayed.is_empty(), "a letter is replayed once");
}

#[tokio::test(flavor = "multi_thread")]
async fn while_the_database_is_down_consumption_pauses_instead_of_dead_lettering() {
    let app = spawn_app_with(|env| env.with("DATABASE_ACQUIRE_TIMEOUT_MS", "300")).await;
    let admin = sqlx::PgPool::connect(&format!("{}/postgres", testkit::server_url())).await.unwrap();
    let database = app.database_name.clone();
    sqlx::query(&format!(r#"ALTER DATABASE "{database}" ALLOW_CONNECTIONS false"#)).execute(&admin).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&database)
        .execute(&admin)
        .await
        .unwrap();
    let user_id = Uuid::new_v4();
    app.publish(&user_created(user_id)).await;
    eventually("readiness to report the outage", Duration::from_secs(10), || async {
        let ready = app.client().get(app.url("/health/ready")).send().await.ok()?;
        (ready.status() == 503).then_some(())
    })
    .await;
    let metrics = || async { app.client().get(app.url("/metrics")).send().await.ok()?.text().await.ok() };
    let paused = eventually("the consumer to pause", Duration::from_secs(20), || async {
        metrics().await.filter(|m| m.lines().any(|l| l.starts_with("kafka_consumer_paused{") && l.ends_with(" 1")))
    })
    .await;
    assert!(metric_sum(&paused, "kafka_handler_failures_total") >= 1.0, "it paused because the handler failed");
    assert_eq!(metric_sum(&paused, "kafka_dead_letters_total"), 0.0, "nothing was parked: {paused}");
    sqlx::query(&format!(r#"ALTER DATABASE "{database}" ALLOW_CONNECTIONS true"#)).execute(&admin).await.unwrap();
    app.wait_for_order(user_id, |s| s == "pending").await;
    let resumed = metrics().await.unwrap();
    assert!(resumed.lines().any(|l| l.starts_with("kafka_consumer_paused{") && l.ends_with(" 0")), "{resumed}");
    assert_eq!(metric_sum(&resumed, "kafka_dead_letters_total"), 0.0, "{resumed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_created_its_producer_never_published_is_dead_lettered_and_makes_no_welcome_order() {
    let app = spawn_app().await;
    let ghost = Uuid::new_v4();
    app.forge_with_id(&user_created(ghost), Uuid::new_v4()).await;
    let dead_letters = TopicProbe::new(&app.topic("user.created.dlq"));
    let letter = dead_letters.next_matching(Duration::from_secs(20), |_| true).await;
    assert!(header_of(&letter, "x-dlq-error").is_some_and(|e| e.contains("unknown_to_producer")), "{letter:?}");
    assert!(app.orders_of(ghost).await.is_empty(), "a forged sign-up made an order");
    // The same user, altered from what user-service published under a real event id.
    let real = Uuid::new_v4();
    app.publish_with_id(&user_created(ghost), real).await;
    app.wait_for_order(ghost, |s| s == "pending").await;
    let mut altered = user_created(ghost);
    altered.email = "attacker@example.com".into();
    app.forge_with_id(&altered, real).await;
    let letter = dead_letters.next_matching(Duration::from_secs(20), |_| true).await;
    assert!(header_of(&letter, "x-dlq-error").is_some_and(|e| e.contains("not_as_published")), "{letter:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_user_deleted_is_dead_lettered_and_the_users_orders_stay() {
    let app = spawn_app().await;
    let user_id = app.known_user().await;
    app.forge_with_id(&UserDeleted { user_id, deleted_at: Utc::now() }, Uuid::new_v4()).await;
    let dead_letters = TopicProbe::new(&app.topic("user.deleted.dlq"));
    let letter = dead_letters.next_matching(Duration::from_secs(20), |_| true).await;
    assert!(header_of(&letter, "x-dlq-error").is_some_and(|e| e.contains("unknown_to_producer")), "{letter:?}");
    let orders = app.orders_of(user_id).await;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["status"], "pending", "the forged deletion cancelled an order");
}
