//! Bounded sign-up admission: past the hashing queue's bound a sign-up is a 503 with
//! `Retry-After`, and nothing of it is stored; every 201 is a whole user with its event.

use futures::StreamExt;
use platform::auth::Role;
use sqlx::PgPool;
use testkit::trusted_client;

use crate::helpers::{assert_problem, spawn_app_with, valid_user};

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_past_the_bound_is_refused_with_retry_after_and_nothing_half_created() {
    // No queue: only as many hashes as there are hashing threads run at once.
    let app = spawn_app_with(|env| env.with("HASHING_MAX_QUEUED", "0")).await;
    let gateway = trusted_client(Role::User);
    let emails: Vec<String> = (0..48).map(|i| format!("burst-{i}@example.com")).collect();
    let answers: Vec<(String, reqwest::Response)> = futures::stream::iter(emails.clone())
        .map(|email| {
            let request = gateway.post(app.url("/auth/register")).json(&valid_user(&email)).send();
            async move { (email, request.await.unwrap()) }
        })
        .buffer_unordered(48)
        .collect()
        .await;

    let mut created = Vec::new();
    let mut refused = Vec::new();
    for (email, response) in answers {
        match response.status().as_u16() {
            201 => created.push(email),
            503 => {
                assert_eq!(response.headers()["retry-after"], "1");
                assert_problem(response, 503).await;
                refused.push(email);
            }
            other => panic!("{email}: unexpected {other}"),
        }
    }
    assert!(!refused.is_empty(), "48 simultaneous sign-ups never met the bound");
    assert!(!created.is_empty(), "the bound refused everything");

    let pool = PgPool::connect(&format!("{}/{}", testkit::server_url(), app.database_name)).await.unwrap();
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT email FROM users WHERE email LIKE 'burst-%'").fetch_all(&pool).await.unwrap();
    let mut stored_sorted = stored.clone();
    stored_sorted.sort();
    created.sort();
    assert_eq!(stored_sorted, created, "exactly the 201s are stored");
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE event_type = 'platform.user.created.v1' AND payload->>'email' LIKE 'burst-%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(usize::try_from(events).unwrap(), created.len(), "every stored user has its event, no refused one has");

    // Once the burst is over, a refused sign-up goes through on retry.
    let retried = gateway.post(app.url("/auth/register")).json(&valid_user(&refused[0])).send().await.unwrap();
    assert_eq!(retried.status(), 201);
}
