//! `/users`: what a client sees, and what the service publishes.

use std::time::Duration;

use contracts::events::UserCreated;
use rdkafka::Message;
use testkit::{TopicProbe, header_of};

use crate::helpers::{assert_problem, spawn_app, spawn_app_with, valid_user};

#[tokio::test(flavor = "multi_thread")]
async fn creating_a_user_stores_it_and_publishes_user_created() {
    let app = spawn_app().await;
    let response = app
        .client()
        .post(app.url("/users"))
        .header("x-request-id", "req-create-1")
        .json(&valid_user("john.doe@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let user: serde_json::Value = response.json().await.unwrap();
    assert_eq!(user["email"], "john.doe@example.com");
    assert_eq!(user["role"], "user");
    assert!(user.get("password").is_none() && user.get("passwordHash").is_none(), "{user}");
    let id = user["id"].as_str().unwrap().to_owned();

    let fetched: serde_json::Value =
        app.client().get(app.url(&format!("/users/{id}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(fetched, user);

    let probe = TopicProbe::new(&format!("{}user.created", app.topic_prefix));
    // The first admin's event comes first; this test's user is keyed by its id.
    let message = probe.next_matching(Duration::from_secs(20), |m| m.key() == Some(id.as_bytes())).await;
    let event: UserCreated = serde_json::from_slice(message.payload().unwrap()).unwrap();
    assert_eq!(event.user_id.to_string(), id);
    assert_eq!(event.email, "john.doe@example.com");
    assert_eq!(message.key(), Some(id.as_bytes()), "events are keyed by user id");
    assert_eq!(header_of(&message, "x-request-id").as_deref(), Some("req-create-1"));
    assert_eq!(header_of(&message, "ce_type").as_deref(), Some("platform.user.created.v1"));
    assert!(header_of(&message, "ce_id").is_some_and(|id| uuid::Uuid::parse_str(&id).is_ok()));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_invalid_field_is_reported_at_once() {
    let app = spawn_app().await;
    let response = app.post_user(&serde_json::json!({"email": "nope", "name": "X", "password": "weak"})).await;
    let body = assert_problem(response, 400).await;
    let mut fields: Vec<&str> =
        body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["email", "name", "password"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_bodies_get_4xx_problems_and_store_nothing() {
    let app = spawn_app().await;
    let cases: [(&str, &str, u16); 5] = [
        ("application/json", "{\"email\": ", 400),
        ("application/json", "{\"email\": \"a@example.com\"}", 400),
        ("application/json", "{\"email\": 5, \"name\": \"Jo\", \"password\": \"SecurePass123!\"}", 400),
        ("application/json", "[]", 400),
        ("text/plain", "hello", 415),
    ];
    for (content_type, body, status) in cases {
        let response =
            app.client().post(app.url("/users")).header("content-type", content_type).body(body).send().await.unwrap();
        let problem = assert_problem(response, status).await;
        assert!(problem["detail"].is_string(), "{body}: {problem}");
    }
    let users: Vec<serde_json::Value> = app.client().get(app.url("/users")).send().await.unwrap().json().await.unwrap();
    let emails: Vec<&str> = users.iter().map(|u| u["email"].as_str().unwrap()).collect();
    assert_eq!(emails, ["admin@example.com"], "only the first admin exists");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_email_in_any_case_is_a_conflict_and_the_first_user_stays() {
    let app = spawn_app().await;
    assert_eq!(app.post_user(&valid_user("jane@example.com")).await.status(), 201);
    assert_problem(app.post_user(&valid_user("JANE@example.com")).await, 409).await;
    let users: Vec<serde_json::Value> = app.client().get(app.url("/users")).send().await.unwrap().json().await.unwrap();
    let janes: Vec<&serde_json::Value> =
        users.iter().filter(|u| u["email"].as_str().unwrap().starts_with("jane")).collect();
    assert_eq!(janes.len(), 1);
    assert_eq!(janes[0]["email"], "jane@example.com");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_ids_are_404_and_malformed_ids_are_400() {
    let app = spawn_app().await;
    let unknown = app.client().get(app.url(&format!("/users/{}", uuid::Uuid::new_v4()))).send().await.unwrap();
    assert_problem(unknown, 404).await;
    assert_problem(app.client().get(app.url("/users/not-a-uuid")).send().await.unwrap(), 400).await;
    assert_problem(app.client().get(app.url("/users?limit=0")).send().await.unwrap(), 400).await;
    assert_problem(app.client().get(app.url("/users?limit=abc")).send().await.unwrap(), 400).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_broker_the_service_starts_keeps_its_events_and_says_it_is_not_ready() {
    let app = tokio::time::timeout(
        Duration::from_secs(30),
        spawn_app_with(|env| env.with("KAFKA_BROKERS", "127.0.0.1:1").with("KAFKA_PRODUCE_TIMEOUT_MS", "500")),
    )
    .await
    .expect("start-up does not wait for the broker");
    let created = app.post_user(&valid_user("no-broker@example.com")).await;
    assert_eq!(created.status(), 201, "the API answers; the outbox keeps the event");
    let ready = app.client().get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let report: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(report["checks"]["kafka"]["status"], "down", "{report}");
    assert_eq!(report["checks"]["kafka_topics"]["status"], "down", "{report}");
    assert_eq!(report["checks"]["postgres"]["status"], "up", "{report}");
}
