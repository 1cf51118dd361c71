//! `/orders`: placing, reading, listing, and bad input.

use std::time::Duration;

use contracts::events::OrderCreated;
use rdkafka::Message;
use testkit::{TopicProbe, eventually};
use uuid::Uuid;

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test(flavor = "multi_thread")]
async fn placing_an_order_stores_it_with_an_exact_total_and_publishes_order_created() {
    let app = spawn_app().await;
    let user_id = app.known_user().await;
    let response = app
        .client()
        .post(app.url("/orders"))
        .json(&serde_json::json!({
            "userId": user_id,
            "items": [{"productId": "product-123", "quantity": 2, "price": 29.99},
                      {"productId": "product-abc-def", "quantity": 3, "price": 0.1}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let order: serde_json::Value = response.json().await.unwrap();
    assert_eq!(order["status"], "pending");
    assert_eq!(order["totalAmount"], serde_json::json!(60.28));
    assert_eq!(order["items"][0]["price"], serde_json::json!(29.99));

    let id = order["id"].as_str().unwrap();
    let fetched: serde_json::Value =
        app.client().get(app.url(&format!("/orders/{id}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(fetched, order);

    let probe = TopicProbe::new(&app.topic("order.created"));
    let message = probe
        .next_matching(Duration::from_secs(20), |m| {
            serde_json::from_slice::<OrderCreated>(m.payload().unwrap()).is_ok_and(|e| e.order_id.to_string() == id)
        })
        .await;
    let event: OrderCreated = serde_json::from_slice(message.payload().unwrap()).unwrap();
    assert_eq!(event.total_amount.cents(), 6028);
    assert_eq!(message.key(), Some(user_id.to_string().as_bytes()));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_invalid_field_is_reported_and_nothing_is_stored() {
    let app = spawn_app().await;
    let user_id = Uuid::new_v4();
    let response = app
        .client()
        .post(app.url("/orders"))
        .json(&serde_json::json!({
            "userId": user_id,
            "items": [{"productId": "item-1", "quantity": 0, "price": 1.234}]
        }))
        .send()
        .await
        .unwrap();
    let body = assert_problem(response, 400).await;
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["items[0].productId", "items[0].quantity", "items[0].price"]);
    assert!(app.orders_of(user_id).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_are_4xx_problems() {
    let app = spawn_app().await;
    let post = |body: &'static str| {
        app.client().post(app.url("/orders")).header("content-type", "application/json").body(body).send()
    };
    assert_problem(post("{").await.unwrap(), 400).await;
    assert_problem(post(r#"{"userId": "not-a-uuid", "items": []}"#).await.unwrap(), 400).await;
    assert_problem(post(r#"{"items": []}"#).await.unwrap(), 400).await;
    assert_problem(app.client().get(app.url("/orders/123")).send().await.unwrap(), 400).await;
    assert_problem(app.client().get(app.url(&format!("/orders/{}", Uuid::new_v4()))).send().await.unwrap(), 404).await;
    assert_problem(app.client().get(app.url("/orders?status=shipped")).send().await.unwrap(), 400).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn orders_can_be_filtered_by_status() {
    let app = spawn_app().await;
    let user_id = app.known_user().await;
    let body = serde_json::json!({"userId": user_id, "items": [{"productId": "product-1", "quantity": 1, "price": 5}]});
    assert_eq!(app.client().post(app.url("/orders")).json(&body).send().await.unwrap().status(), 201);
    let pending: Vec<serde_json::Value> =
        app.client().get(app.url("/orders?status=pending")).send().await.unwrap().json().await.unwrap();
    assert_eq!(pending.len(), 2, "the welcome order and this one, no payment-service here");
    let paid: Vec<serde_json::Value> =
        app.client().get(app.url("/orders?status=paid")).send().await.unwrap().json().await.unwrap();
    assert!(paid.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn orders_only_for_known_users_and_a_deletion_cancels_pending_ones() {
    let app = spawn_app().await;
    let order = |user_id: Uuid| {
        let body =
            serde_json::json!({"userId": user_id, "items": [{"productId": "product-1", "quantity": 1, "price": 5}]});
        app.client().post(app.url("/orders")).json(&body).send()
    };
    // Never announced: refused, nothing stored.
    let stranger = Uuid::new_v4();
    assert_problem(order(stranger).await.unwrap(), 422).await;
    assert!(app.orders_of(stranger).await.is_empty());

    // Known: accepted. Then deleted: pending orders cancelled, new ones refused.
    let user_id = app.known_user().await;
    assert_eq!(order(user_id).await.unwrap().status(), 201);
    app.publish(&contracts::events::UserDeleted { user_id, deleted_at: chrono::Utc::now() }).await;
    eventually("the user's pending orders to be cancelled", Duration::from_secs(30), || async {
        let orders = app.orders_of(user_id).await;
        (orders.len() == 2 && orders.iter().all(|o| o["status"] == "cancelled")).then_some(())
    })
    .await;
    assert_problem(order(user_id).await.unwrap(), 422).await;

    // A user.created that arrives after the deletion does not bring the user back.
    let late = Uuid::new_v4();
    let event = contracts::events::UserCreated {
        user_id,
        email: "late@example.com".into(),
        name: "Late Event".into(),
        created_at: chrono::Utc::now(),
    };
    app.publish_with_id(&event, late).await;
    let pool = sqlx::PgPool::connect(&format!("{}/{}", testkit::server_url(), app.database_name)).await.unwrap();
    eventually("the late user.created to be handled", Duration::from_secs(30), || async {
        let handled: Option<i32> = sqlx::query_scalar("SELECT 1 FROM processed_events WHERE event_id = $1")
            .bind(late)
            .fetch_optional(&pool)
            .await
            .ok()?;
        handled.map(|_| ())
    })
    .await;
    assert_problem(order(user_id).await.unwrap(), 422).await;
    assert_eq!(app.orders_of(user_id).await.len(), 2, "no second welcome order for a deleted user");
}
