//! `/orders`: placing, reading, listing, and bad input.

use std::time::Duration;

use rdkafka::Message;
use shared::events::OrderCreated;
use shared::testing::TopicProbe;
use uuid::Uuid;

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test(flavor = "multi_thread")]
async fn placing_an_order_stores_it_with_an_exact_total_and_publishes_order_created() {
    let app = spawn_app().await;
    let user_id = Uuid::new_v4();
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
    let message = probe.next_matching(Duration::from_secs(20), |_| true).await;
    let event: OrderCreated = serde_json::from_slice(message.payload().unwrap()).unwrap();
    assert_eq!(event.order_id.to_string(), id);
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
    let user_id = Uuid::new_v4();
    let body = serde_json::json!({"userId": user_id, "items": [{"productId": "product-1", "quantity": 1, "price": 5}]});
    assert_eq!(app.client().post(app.url("/orders")).json(&body).send().await.unwrap().status(), 201);
    let pending: Vec<serde_json::Value> =
        app.client().get(app.url("/orders?status=pending")).send().await.unwrap().json().await.unwrap();
    assert_eq!(pending.len(), 1);
    let paid: Vec<serde_json::Value> =
        app.client().get(app.url("/orders?status=paid")).send().await.unwrap().json().await.unwrap();
    assert!(paid.is_empty());
}
