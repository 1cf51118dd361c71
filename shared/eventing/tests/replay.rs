//! A replay of the outbox (a topic lost its log) on the real PostgreSQL: it waits for the
//! relay's batch in flight, so rows that batch marks published are sent again too.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should fail loudly

use std::time::Duration;

use eventing::republish::{RELAY_LOCK, replay};
use sqlx::PgPool;
use testkit::eventually;
use uuid::Uuid;

/// The outbox as the services create it.
const OUTBOX: &str = include_str!("../../../user-service/migrations/20261121000002_create_outbox.sql");

async fn outbox_database() -> PgPool {
    let name = testkit::create_database().await;
    let pool = PgPool::connect(&format!("{}/{name}", testkit::server_url())).await.unwrap();
    sqlx::raw_sql(OUTBOX).execute(&pool).await.unwrap();
    pool
}

#[tokio::test]
async fn a_replay_waits_for_the_batch_in_flight_and_sends_its_rows_again() {
    let pool = outbox_database().await;
    let event_id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO outbox (event_id, topic, event_type, message_key, payload) VALUES ($1, 'user.created', 't', 'k', '{}')",
    )
    .bind(event_id)
    .execute(&pool)
    .await
    .unwrap();

    // The relay's batch: its session holds the lock while the row's acknowledgement is
    // awaited (here the old log acknowledged it just before the broker lost its store).
    let mut batch = pool.acquire().await.unwrap();
    let locked: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(RELAY_LOCK).fetch_one(&mut *batch).await.unwrap();
    assert!(locked);

    let replaying = tokio::spawn({
        let pool = pool.clone();
        async move { replay(&pool, &["user.created".to_owned()], Duration::from_secs(3600), None).await }
    });
    eventually("the replay to wait for the relay's lock", Duration::from_secs(10), || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
                 WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()",
        )
        .fetch_one(&pool)
        .await
        .ok()?;
        (waiting > 0).then_some(())
    })
    .await;
    assert!(!replaying.is_finished(), "the replay must not run beside the batch");

    // The batch is acknowledged and marked, then lets the lock go.
    sqlx::query("UPDATE outbox SET published_at = now() WHERE event_id = $1")
        .bind(event_id)
        .execute(&mut *batch)
        .await
        .unwrap();
    assert!(!replaying.is_finished(), "the replay waits until the relay lets the lock go");
    sqlx::query("SELECT pg_advisory_unlock_all()").execute(&mut *batch).await.unwrap();

    let replayed = replaying.await.unwrap().unwrap();
    assert_eq!(replayed, 1, "the batch's row is replayed");
    let published: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT published_at FROM outbox WHERE event_id = $1")
            .bind(event_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(published, None, "the row waits to be sent again");
}
