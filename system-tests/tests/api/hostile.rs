//! Hostile input from outside, through the gateway, against the real platform: NUL
//! characters, made-up methods, orders for users that do not exist, oversized trace headers.

use std::time::Duration;

use testkit::eventually;

use crate::helpers::{Platform, assert_problem, raw_request};

#[tokio::test(flavor = "multi_thread")]
async fn nul_characters_are_400_wherever_text_arrives() {
    let platform = Platform::start("0").await;
    let client = &platform.gateway.client;
    let (user, token) = platform.register("nul@example.com").await;
    for (route, body) in [
        ("/api/auth/login", serde_json::json!({"email": "\u{0}", "password": "x"})),
        (
            "/api/auth/register",
            serde_json::json!({"email": "a@example.com", "name": "Ann\u{0}", "password": "SecurePass123!"}),
        ),
    ] {
        let response = client.post(platform.url(route)).json(&body).send().await.unwrap();
        assert_problem(response, 400).await;
    }
    let order =
        serde_json::json!({"userId": user["id"], "items": [{"productId": "product-\u{0}", "quantity": 1, "price": 1}]});
    assert_problem(
        client.post(platform.url("/api/orders")).bearer_auth(&token).json(&order).send().await.unwrap(),
        400,
    )
    .await;
    let auth = [("Authorization", format!("Bearer {token}"))];
    for path in ["/api/orders?status=%00", "/api/orders?limit=1%00", "/api/users/%00", "/api/orders/x%00"] {
        let (status, answer) = raw_request(&platform.gateway.address, "GET", path, &auth, b"").await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert!(answer.contains("application/problem+json"), "{path}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn made_up_methods_do_not_become_metric_labels() {
    let platform = Platform::start("0").await;
    for method in ["FOO", "BREW", "X-INJECT"] {
        for path in ["/api", "/api/orders", "/api/nowhere"] {
            let (status, _) = raw_request(&platform.gateway.address, method, path, &[], b"").await;
            assert!((400..500).contains(&status), "{method} {path}: {status}");
        }
    }
    let metrics =
        platform.gateway.client.get(platform.gateway.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    for method in ["FOO", "BREW", "X-INJECT"] {
        assert!(!metrics.contains(&format!("method=\"{method}\"")), "{method} became a label");
    }
    assert!(metrics.contains("method=\"other\""), "the requests are still counted");
    assert!(!metrics.contains("route=\"/api/nowhere\""), "raw paths never become labels");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_for_a_user_that_does_not_exist_is_refused() {
    let platform = Platform::start("0").await;
    let admin = platform.admin_token().await;
    let order = serde_json::json!({"userId": uuid::Uuid::new_v4(), "items": [{"productId": "product-1", "quantity": 1, "price": 1}]});
    let response = platform
        .gateway
        .client
        .post(platform.url("/api/orders"))
        .bearer_auth(&admin)
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_problem(response, 422).await;
}

/// 16 KB of `tracestate` and 8 KB of `baggage` on an order do not ride into its events
/// (where records past the consumers' fetch size once stopped a partition): the order
/// settles, and so does the same user's next one on the same partition.
#[tokio::test(flavor = "multi_thread")]
async fn orders_sent_with_oversized_trace_headers_settle_and_so_does_the_next() {
    let platform = Platform::start("0").await;
    let (user, token) = platform.register("big-headers@example.com").await;
    let tracestate = (0..800).map(|i| format!("v{i}=x")).collect::<Vec<_>>().join(",");
    let baggage = format!("role=admin,padding={}", "p".repeat(8 * 1024));
    let order =
        serde_json::json!({"userId": user["id"], "items": [{"productId": "product-1", "quantity": 1, "price": 5}]});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let response = platform
            .gateway
            .client
            .post(platform.url("/api/orders"))
            .bearer_auth(&token)
            .header("tracestate", &tracestate)
            .header("baggage", &baggage)
            .json(&order)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        ids.push(response.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    for id in ids {
        let url = platform.url(&format!("/api/orders/{id}"));
        let status = eventually("the order to settle", Duration::from_secs(30), || async {
            let order: serde_json::Value =
                platform.gateway.client.get(&url).bearer_auth(&token).send().await.ok()?.json().await.ok()?;
            (order["status"] != "pending").then(|| order["status"].clone())
        })
        .await;
        assert_eq!(status, "paid", "order {id}");
    }
}
