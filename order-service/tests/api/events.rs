//! What order-service does with the events it consumes.

use std::time::Duration;

use chrono::Utc;
use rdkafka::Message;
use shared::events::{PaymentCompleted, PaymentStatus, UserCreated};
use shared::money::Money;
use shared::testing::{TopicProbe, eventually, header_of, produce_raw};
use uuid::Uuid;

use crate::helpers::{spawn_app, spawn_app_with};

fn user_created(user_id: Uuid) -> UserCreated {
    UserCreated { user_id, email: "new@example.com".into(), name: "New User".into(), created_at: Utc::now() }
}

fn payment(order: &serde_json::Value, status: PaymentStatus) -> PaymentCompleted {
    PaymentCompleted {
        payment_id: Uuid::new_v4(),
        order_id: order["id"].as_str().unwrap().parse().unwrap(),
        user_id: order["userId"].as_str().unwrap().parse().unwrap(),
        amount: Money::from_cents(1000).unwrap(),
        status,
        completed_at: Utc::now(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_user_gets_exactly_one_welcome_order_and_one_event_however_often_it_is_told() {
    // One partition: every event is handled in publication order, so the marker user's
    // order tells when everything before it was handled.
    let app = spawn_app_with(|env| env.with("KAFKA_TOPIC_PARTITIONS", "1")).await;
    let (user_id, marker) = (Uuid::new_v4(), Uuid::new_v4());
    let event_id = Uuid::new_v4();
    app.publish_with_id(&user_created(user_id), event_id).await;
    app.publish_with_id(&user_created(user_id), event_id).await; // a redelivery
    app.publish(&user_created(user_id)).await; // a duplicate with an id of its own
    app.publish(&user_created(marker)).await;

    let order = app.wait_for_order(user_id, |s| s == "pending").await;
    assert_eq!(order["kind"], "welcome");
    let probe = TopicProbe::new(&app.topic("order.created"));
    let mut announced = Vec::new();
    loop {
        let message = probe.next_matching(Duration::from_secs(20), |_| true).await;
        let event: shared::events::OrderCreated = serde_json::from_slice(message.payload().unwrap()).unwrap();
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
async fn a_message_that_kept_failing_is_parked_then_replayed_once_the_cause_is_fixed() {
    let app = spawn_app_with(|env| {
        env.with("KAFKA_HANDLER_MAX_ATTEMPTS", "2").with("DATABASE_ACQUIRE_TIMEOUT_MS", "300")
    })
    .await;
    let admin = sqlx::PgPool::connect(&format!("{}/postgres", shared::testing::server_url())).await.unwrap();
    let set_connections = |allowed: bool| {
        let admin = admin.clone();
        let database = app.database_name.clone();
        async move {
            sqlx::query(&format!(r#"ALTER DATABASE "{database}" ALLOW_CONNECTIONS {allowed}"#))
                .execute(&admin)
                .await
                .unwrap();
            if !allowed {
                sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
                    .bind(&database)
                    .execute(&admin)
                    .await
                    .unwrap();
            }
        }
    };

    // The database is down for longer than the retries last: the event is parked.
    set_connections(false).await;
    let user_id = Uuid::new_v4();
    app.publish(&user_created(user_id)).await;
    let dead_letters = TopicProbe::new(&app.topic("user.created.dlq"));
    let letter = dead_letters.next_matching(Duration::from_secs(30), |_| true).await;
    assert_eq!(header_of(&letter, "x-dlq-attempts").as_deref(), Some("2"));
    set_connections(true).await;

    let kafka = app.kafka_settings();
    let listed = shared::kafka::dead_letters::list(&kafka, "user.created").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key.as_deref(), Some(user_id.to_string().as_str()));

    let dry = shared::kafka::dead_letters::replay(&kafka, "user.created", true).await.unwrap();
    assert_eq!(dry.replayed.len(), 1);
    assert!(app.orders_of(user_id).await.is_empty(), "a dry run changes nothing");

    let replay = shared::kafka::dead_letters::replay(&kafka, "user.created", false).await.unwrap();
    assert_eq!(replay.replayed.len(), 1);
    app.wait_for_order(user_id, |s| s == "pending").await;
    let again = shared::kafka::dead_letters::replay(&kafka, "user.created", false).await.unwrap();
    assert!(again.replayed.is_empty(), "a letter is replayed once");
}
