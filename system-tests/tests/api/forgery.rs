//! Events written to the broker by someone other than their producer: anyone who can
//! reach the broker can write, so order-service asks user-service before it acts.

use std::time::Duration;

use testkit::{TopicProbe, header_of, produce_raw};
use uuid::Uuid;

use crate::helpers::Platform;

#[tokio::test(flavor = "multi_thread")]
async fn user_events_user_service_never_published_change_nothing() {
    let platform = Platform::start("0").await;
    let (user, token) = platform.register("target@example.com").await;
    let user_id = user["id"].as_str().unwrap();
    let ghost = Uuid::new_v4();
    let created = serde_json::json!({"userId": ghost, "email": "ghost@example.com", "name": "Ghost", "createdAt": "2026-12-05T00:00:00Z"});
    let deleted = serde_json::json!({"userId": user_id, "deletedAt": "2026-12-05T00:00:00Z"});
    let topic = |base: &str| format!("{}{base}", platform.topic_prefix);
    produce_raw(&topic("user.created"), &ghost.to_string(), created.to_string().as_bytes()).await;
    produce_raw(&topic("user.deleted"), user_id, deleted.to_string().as_bytes()).await;

    for base in ["user.created.dlq", "user.deleted.dlq"] {
        let letter = TopicProbe::new(&topic(base)).next_matching(Duration::from_secs(20), |_| true).await;
        assert!(header_of(&letter, "x-dlq-error").is_some_and(|e| e.contains("unknown_to_producer")), "{base}");
    }
    assert_eq!(platform.metric("events_refused_total", "unknown_to_producer").await, 2.0);
    // The forged deletion cancelled nothing: the user still orders, and the ghost is unknown.
    let order = |user: String| serde_json::json!({"userId": user, "items": [{"productId": "product-1", "quantity": 1, "price": 5.0}]});
    let client = &platform.gateway.client;
    let mine = client.post(platform.url("/api/orders")).bearer_auth(&token).json(&order(user_id.to_owned())).send();
    assert_eq!(mine.await.unwrap().status(), 201, "the user was forgotten");
    let admin = platform.admin_token().await;
    let ghosts = client.post(platform.url("/api/orders")).bearer_auth(&admin).json(&order(ghost.to_string())).send();
    assert_eq!(ghosts.await.unwrap().status(), 422, "the forged sign-up made a user order-service knows");
}
