//! The whole chain on the real broker and PostgreSQL: gateway → user-service →
//! `user.created` → order-service → `order.created` → payment-service →
//! `payment.completed` → order-service.

use std::time::{Duration, Instant};

use rdkafka::Message;
use testkit::{TopicProbe, header_of};

use crate::helpers::{Platform, assert_problem};

#[tokio::test(flavor = "multi_thread")]
async fn a_user_signed_up_through_the_gateway_gets_a_settled_welcome_order() {
    let platform = Platform::start("0.1").await;
    let response = platform
        .gateway
        .client
        .post(platform.url("/api/auth/register"))
        .header("x-request-id", "e2e-request-1")
        .json(&serde_json::json!({"email": "john.doe@example.com", "name": "John Doe", "password": "SecurePass123!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-request-id"], "e2e-request-1");
    let body: serde_json::Value = response.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    let user_id = body["user"]["id"].as_str().unwrap().to_owned();

    let order = platform.wait_for_settled_order(&token).await;
    assert_eq!(order["kind"], "welcome");
    assert_eq!(order["userId"], user_id);

    // The request id crossed all three hops.
    let payments = TopicProbe::new(&format!("{}payment.completed", platform.topic_prefix));
    let payment = payments.next_matching(Duration::from_secs(20), |m| m.key() == Some(user_id.as_bytes())).await;
    assert_eq!(header_of(&payment, "x-request-id").as_deref(), Some("e2e-request-1"));
    let by_id: serde_json::Value = platform
        .gateway
        .client
        .get(platform.url(&format!("/api/orders/{}", order["id"].as_str().unwrap())))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_id["status"], order["status"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_through_the_gateway_keeps_its_problem_shape() {
    let platform = Platform::start("0").await;
    let client = &platform.gateway.client;
    let admin = platform.admin_token().await;
    let invalid = client
        .post(platform.url("/api/users"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"email": "x", "name": "J", "password": "p"}))
        .send()
        .await
        .unwrap();
    let body = assert_problem(invalid, 400).await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 3);
    assert_problem(client.get(platform.url("/api/orders/not-a-uuid")).bearer_auth(&admin).send().await.unwrap(), 400)
        .await;
    let unknown = client
        .get(platform.url(&format!("/api/users/{}", uuid::Uuid::new_v4())))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_problem(unknown, 404).await;
    let not_json = client
        .post(platform.url("/api/auth/register"))
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_problem(not_json, 415).await;
}

/// Run with `make latency`: sign-up → welcome order settled for 20 users, payment delay 0.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement, not a check; run with `make latency`"]
async fn chain_latency_over_twenty_users() {
    let platform = Platform::start("0.1").await;
    let mut samples = Vec::new();
    for i in 0..20 {
        let started = Instant::now();
        let (_, token) = platform.register(&format!("user{i}@example.com")).await;
        // A tight poll: the sample's resolution is this interval plus one GET.
        loop {
            let orders: Vec<serde_json::Value> = platform
                .gateway
                .client
                .get(platform.url("/api/orders"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if orders.iter().any(|o| o["status"] == "paid" || o["status"] == "payment_failed") {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "user {i}'s order was not settled in 30 s");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        samples.push(started.elapsed());
    }
    samples.sort();
    let median = (samples[9] + samples[10]) / 2;
    println!(
        "chain latency over {} users: median {:.1} ms, worst {:.1} ms, best {:.1} ms",
        samples.len(),
        median.as_secs_f64() * 1000.0,
        samples[samples.len() - 1].as_secs_f64() * 1000.0,
        samples[0].as_secs_f64() * 1000.0
    );
}
