//! The pipelined outbox relay when a row in the middle of a batch fails: other keys
//! go on, the failing key waits (nothing of it overtakes the failed row), and once
//! the row can be sent every row arrives, each key in order, none lost.

use std::collections::HashMap;
use std::time::Duration;

use eventing::republish::RELAY_LOCK;
use rdkafka::Message;
use sqlx::PgPool;
use testkit::{TopicProbe, eventually};

use crate::helpers::spawn_app;

const ROWS_PER_KEY: i64 = 6;
/// The producer refuses messages over `message.max.bytes` (1 MB): a real send failure.
const TOO_LARGE: usize = 1_200_000;

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_row_holds_back_only_its_key_and_nothing_is_lost_or_reordered() {
    let app = spawn_app().await;
    let pool = PgPool::connect(&format!("{}/{}", testkit::server_url(), app.database_name)).await.unwrap();
    let probe = TopicProbe::new(&app.topic("order.created"));
    let keys = ["key-a", "key-b", "key-c"];
    // One transaction, keys interleaved; key-a's third row cannot be sent.
    let mut transaction = pool.begin().await.unwrap();
    for seq in 1..=ROWS_PER_KEY {
        for key in keys {
            let filler = if key == "key-a" && seq == 3 { "x".repeat(TOO_LARGE) } else { String::new() };
            sqlx::query(
                "INSERT INTO outbox (event_id, topic, event_type, message_key, payload)
                 VALUES (gen_random_uuid(), 'order.created', 'test.relay.v1', $1, jsonb_build_object('seq', $2::bigint, 'filler', $3::text))",
            )
            .bind(key)
            .bind(seq)
            .bind(filler)
            .execute(&mut *transaction)
            .await
            .unwrap();
        }
    }
    transaction.commit().await.unwrap();

    let published = |key: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT (payload->>'seq')::bigint FROM outbox WHERE message_key = $1 AND published_at IS NOT NULL ORDER BY 1",
            )
            .bind(key)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    eventually("the healthy keys to be published", Duration::from_secs(30), || async {
        (published("key-b").await.len() == 6 && published("key-c").await.len() == 6).then_some(())
    })
    .await;
    // Several relay attempts later, key-a is still stopped at its failed row.
    eventually("the relay to try the failed row twice", Duration::from_secs(30), || async {
        let metrics = app.client().get(app.url("/metrics")).send().await.ok()?.text().await.ok()?;
        let failed = testkit::metric_sum_where(&metrics, "kafka_messages_produced_total", r#"outcome="failed""#);
        (failed >= 2.0).then_some(())
    })
    .await;
    assert_eq!(published("key-a").await, vec![1, 2], "nothing of key-a may overtake its failed row");

    // The row becomes sendable: key-a resumes in order.
    sqlx::query("UPDATE outbox SET payload = payload - 'filler' WHERE message_key = 'key-a' AND payload->>'seq' = '3'")
        .execute(&pool)
        .await
        .unwrap();
    eventually("every row to be published", Duration::from_secs(30), || async {
        (published("key-a").await.len() == 6).then_some(())
    })
    .await;

    let mut seen: HashMap<String, Vec<i64>> = HashMap::new();
    for _ in 0..(3 * ROWS_PER_KEY) {
        let message = probe.next_matching(Duration::from_secs(10), |_| true).await;
        let key = String::from_utf8_lossy(message.key().unwrap()).into_owned();
        let body: serde_json::Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        seen.entry(key).or_default().push(body["seq"].as_i64().unwrap());
    }
    for key in keys {
        assert_eq!(seen[key], (1..=ROWS_PER_KEY).collect::<Vec<_>>(), "{key}: each row once, in order");
    }
    // The relay lets its lock go after every batch, the failed ones included: a replay can take it.
    eventually("the relay's lock to be free", Duration::from_secs(10), || async {
        let mut session = pool.acquire().await.ok()?;
        let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(RELAY_LOCK)
            .fetch_one(&mut *session)
            .await
            .ok()?;
        sqlx::query("SELECT pg_advisory_unlock_all()").execute(&mut *session).await.ok()?;
        free.then_some(())
    })
    .await;
}

/// Rows handed to the idempotent producer all at once, across several batches: every
/// key's rows reach the topic in id order, each once.
#[tokio::test(flavor = "multi_thread")]
async fn a_pipelined_backlog_reaches_the_topic_in_key_order() {
    const KEYS: usize = 8;
    const PER_KEY: i64 = 60; // 480 rows: more than two relay batches
    let app = spawn_app().await;
    let pool = PgPool::connect(&format!("{}/{}", testkit::server_url(), app.database_name)).await.unwrap();
    let probe = TopicProbe::new(&app.topic("order.created"));
    sqlx::query(
        "INSERT INTO outbox (event_id, topic, event_type, message_key, payload)
         SELECT gen_random_uuid(), 'order.created', 'test.relay.v1', 'key-' || k, jsonb_build_object('seq', s)
         FROM generate_series(1, $1::bigint) AS s, generate_series(1, $2::int) AS k ORDER BY s, k",
    )
    .bind(PER_KEY)
    .bind(i32::try_from(KEYS).unwrap())
    .execute(&pool)
    .await
    .unwrap();
    let mut seen: HashMap<String, Vec<i64>> = HashMap::new();
    for _ in 0..(KEYS * usize::try_from(PER_KEY).unwrap()) {
        let message = probe.next_matching(Duration::from_secs(20), |_| true).await;
        let key = String::from_utf8_lossy(message.key().unwrap()).into_owned();
        let body: serde_json::Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        seen.entry(key).or_default().push(body["seq"].as_i64().unwrap());
    }
    assert_eq!(seen.len(), KEYS);
    for (key, seqs) in &seen {
        assert_eq!(seqs, &(1..=PER_KEY).collect::<Vec<_>>(), "{key}: each row once, in order");
    }
}
