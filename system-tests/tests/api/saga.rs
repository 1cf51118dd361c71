//! The cancellation saga through the gateway: a cancelled order is never charged, or is
//! refunded once, and its status and the stats say which.

use std::time::Duration;

use testkit::eventually;

use crate::helpers::Platform;

const ORDER: &str = r#"{"items":[{"productId":"product-1","quantity":2,"price":49.99}]}"#;

/// Places an order of 99.98 for `user` and returns its id.
async fn place(platform: &Platform, token: &str, user_id: &str) -> String {
    let mut body: serde_json::Value = serde_json::from_str(ORDER).unwrap();
    body["userId"] = user_id.into();
    let response =
        platform.gateway.client.post(platform.url("/api/orders")).bearer_auth(token).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201);
    response.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

async fn order(platform: &Platform, token: &str, id: &str) -> serde_json::Value {
    let url = platform.url(&format!("/api/orders/{id}"));
    platform.gateway.client.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap()
}

async fn cancel(platform: &Platform, token: &str, id: &str) {
    let url = platform.url(&format!("/api/orders/{id}"));
    assert_eq!(platform.gateway.client.delete(url).bearer_auth(token).send().await.unwrap().status(), 204);
}

async fn stats(platform: &Platform, admin: &str) -> serde_json::Value {
    let url = platform.url("/api/orders/stats");
    platform.gateway.client.get(url).bearer_auth(admin).send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paid_order_that_is_cancelled_is_refunded_once_and_the_stats_say_so() {
    let platform = Platform::start("0").await;
    let (user, token) = platform.register("refund@example.com").await;
    let id = place(&platform, &token, user["id"].as_str().unwrap()).await;
    eventually("the order to be paid", Duration::from_secs(30), || async {
        (order(&platform, &token, &id).await["status"] == "paid").then_some(())
    })
    .await;

    let admin = platform.admin_token().await;
    let before = stats(&platform, &admin).await;

    cancel(&platform, &token, &id).await;
    let refunded = eventually("the order to be refunded", Duration::from_secs(30), || async {
        Some(order(&platform, &token, &id).await).filter(|o| o["status"] == "refunded")
    })
    .await;
    assert_eq!(refunded["totalAmount"].as_f64(), Some(99.98));
    assert_eq!(platform.metric("payments_refunded_total", "").await, 1.0, "one refund");

    let after = stats(&platform, &admin).await;
    let count = |stats: &serde_json::Value, status: &str| stats["countsByStatus"][status].as_i64().unwrap();
    assert_eq!(count(&after, "paid"), count(&before, "paid") - 1, "{before} → {after}");
    assert_eq!(count(&after, "refunded"), count(&before, "refunded") + 1, "{before} → {after}");
    let revenue = |stats: &serde_json::Value| (stats["revenue"].as_f64().unwrap() * 100.0).round();
    assert_eq!(revenue(&after), revenue(&before) - 9998.0, "the refunded total left the revenue");

    // Refunded is final, and only a refund leads there.
    let url = platform.url(&format!("/api/orders/{id}"));
    let again = platform.gateway.client.delete(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(again.status(), 409);
    let by_hand =
        platform.gateway.client.patch(&url).bearer_auth(&admin).json(&serde_json::json!({"status": "refunded"}));
    assert_eq!(by_hand.send().await.unwrap().status(), 409);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_cancelled_before_its_payment_is_never_charged() {
    // Each payment takes 1.5 s: the cancellation arrives while the order's is under way.
    let platform = Platform::start_full("0", "1500", &[]).await;
    let (user, token) = platform.register("early-cancel@example.com").await;
    let id = place(&platform, &token, user["id"].as_str().unwrap()).await;
    cancel(&platform, &token, &id).await;

    // Every `order.created` (the admin's and the user's welcome orders, and this one) and
    // the cancellation handled by payment-service.
    let created =
        eventually("payment-service to handle the orders and the cancellation", Duration::from_secs(30), || async {
            let created = platform.metric("kafka_messages_consumed_total", "order.created\"").await;
            let cancelled = platform.metric("kafka_messages_consumed_total", "order.cancelled\"").await;
            (created >= 3.0 && cancelled >= 1.0).then_some(created)
        })
        .await;
    assert_eq!(platform.metric("payments_total", "").await, created - 1.0, "every order but the cancelled one charged");
    assert_eq!(platform.metric("payments_refunded_total", "").await, 0.0, "nothing to give back");
    assert_eq!(order(&platform, &token, &id).await["status"], "cancelled");
    let stats = stats(&platform, &platform.admin_token().await).await;
    assert_eq!(stats["countsByStatus"]["cancelled"], 1);
    assert_eq!(stats["countsByStatus"]["refunded"], 0);
}
