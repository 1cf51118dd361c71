//! Sending published outbox rows again, for topics whose logs were lost, without racing
//! the relay.
//!
//! The relay marks a batch's rows published only once the whole batch is acknowledged, and
//! holds [`RELAY_LOCK`] from its read until the mark is committed. A batch in flight while
//! the broker loses its store may hold rows the old log acknowledged just before it went:
//! they are unpublished when the loss is noticed and marked published after it, so a replay
//! that ran meanwhile would miss them for good. A replay therefore takes the relay's lock
//! first: it waits for the batch in flight to be marked, then marks it unpublished again.
//!
//! This module knows the outbox table and nothing of Kafka, so that both the relay
//! ([`crate::outbox`]) and the topic keeper ([`crate::kafka::TopicKeeper`]) build on it.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// Advisory lock key held by the relay's batch (`pg_try_advisory_lock`, for its session)
/// and by a replay (`pg_advisory_xact_lock`): one of them per database at a time. Anything
/// else that edits the outbox's `published_at` takes it too.
pub const RELAY_LOCK: i64 = 0x6f75_7462_6f78; // "outbox"

/// How long a replay waits for the relay's batch in flight before giving up (to be tried
/// again): a batch waits at most the producer's delivery timeout for its acknowledgements.
const WAIT_FOR_RELAY: Duration = Duration::from_secs(60);

/// Marks the outbox rows of `topics` (names as the outbox knows them) published within
/// `retention` unpublished, so the relay sends them again, in their original order, after
/// any batch the relay has in flight is marked. With `published_before`, only rows
/// published before then. Returns how many rows it marked.
pub async fn replay(
    pool: &PgPool,
    topics: &[String],
    retention: Duration,
    published_before: Option<DateTime<Utc>>,
) -> anyhow::Result<u64> {
    let mut transaction = pool.begin().await.context("cannot begin the replay transaction")?;
    sqlx::query(&format!("SET LOCAL lock_timeout = '{}ms'", WAIT_FOR_RELAY.as_millis()))
        .execute(&mut *transaction)
        .await
        .context("cannot bound the wait for the relay")?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(RELAY_LOCK)
        .execute(&mut *transaction)
        .await
        .context("the relay's batch in flight did not finish in time")?;
    let replayed = sqlx::query(
        "UPDATE outbox SET published_at = NULL
         WHERE topic = ANY($1) AND published_at > now() - make_interval(secs => $2)
           AND ($3::timestamptz IS NULL OR published_at < $3)",
    )
    .bind(topics)
    .bind(retention.as_secs_f64())
    .bind(published_before)
    .execute(&mut *transaction)
    .await
    .context("cannot mark the outbox's rows unpublished")?;
    transaction.commit().await.context("cannot commit the replay")?;
    Ok(replayed.rows_affected())
}
