//! The transactional outbox: an event is written in the same transaction as the state
//! change it announces, so a commit always has its event and a rollback never does. A relay
//! publishes it afterwards, woken in process by the writer after its commit ([`RelayWake`])
//! and sweeping every second for rows written elsewhere (another instance, a replay). Not by
//! `NOTIFY`: PostgreSQL commits notifying transactions one at a time across the server.
//! One relay at a time (an advisory lock) keeps each key's events in order across instances;
//! a relay refused the lock retries shortly, as the holder may have read before its rows.
//!
//! A batch is pipelined: its rows are handed to the producer in id order before the first
//! acknowledgement. Order per key holds because the producer is idempotent (the broker takes
//! a producer session's messages of a partition only in order). A row the producer refuses
//! stops its key for the batch, and the relay then starts a new producer session, so rows
//! sent again cannot land behind a later row of the old one. A row is marked published only
//! once acknowledged; a crash in between sends it again under the same event id, which
//! consumers deduplicate. The table: each service's `migrations/*_create_outbox.sql`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{ConnectOptions, PgConnection, PgPool, Postgres};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::configuration::KafkaSettings;
use crate::kafka::{Acknowledgement, EventPublisher, OutgoingEvent};
use crate::republish::RELAY_LOCK;
use contracts::events::{Event, EventTooLarge, MAX_EVENT_BYTES};
use platform::http::RequestId;
use platform::telemetry::propagation;

/// Rows published per relay transaction.
const BATCH: i64 = 200;
/// How often the relay looks even without a notification.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How soon a relay refused the lock tries again.
const LOCK_RETRY: Duration = Duration::from_millis(20);
/// Published rows are kept this long for inspection, then pruned.
const KEEP_PUBLISHED: &str = "1 hour";
/// How often the backlog gauges are refreshed: not on every wake-up, which under load is
/// every few milliseconds.
const GAUGES_EVERY: Duration = Duration::from_secs(1);
/// How often published rows past [`KEEP_PUBLISHED`] are deleted (a scan, kept off the hot path).
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// An event ready to be written to the outbox: what a row holds, before it is stored.
/// A repository that stores a state change and its event in one statement binds these.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    /// The event's id (`ce_id`).
    pub event_id: Uuid,
    /// Topic name without the deployment's prefix.
    pub topic: &'static str,
    /// CloudEvents type.
    pub event_type: &'static str,
    /// Partitioning key.
    pub key: String,
    /// The JSON body.
    pub payload: serde_json::Value,
    /// Trace context and request id, carried to the published message's headers.
    pub headers: HashMap<String, String>,
}

/// Prepares `event` for the outbox with the current trace context and `request_id`. An
/// event over [`MAX_EVENT_BYTES`] is refused with [`EventTooLarge`] (a request that would
/// make one gets a 4xx), so no stored event can outgrow what the broker and consumers take.
pub fn prepare<E: Event>(event: &E, request_id: &RequestId) -> anyhow::Result<PreparedEvent> {
    let mut headers = propagation::capture_current();
    headers.insert(crate::kafka::REQUEST_ID_HEADER.to_owned(), request_id.as_str().to_owned());
    let payload = serde_json::to_value(event).with_context(|| format!("cannot serialise {}", E::TYPE))?;
    // What the message will carry: the body, its key, the stored headers and the envelope's.
    let bytes = payload.to_string().len()
        + headers.iter().map(|(name, value)| name.len() + value.len()).sum::<usize>()
        + ENVELOPE_BYTES;
    if bytes > MAX_EVENT_BYTES {
        return Err(EventTooLarge { event_type: E::TYPE, bytes }.into());
    }
    Ok(PreparedEvent {
        event_id: Uuid::new_v4(),
        topic: E::TOPIC,
        event_type: E::TYPE,
        key: event.key().to_string(),
        payload,
        headers,
    })
}

/// An upper bound of the CloudEvents headers and key the publisher adds to every message.
const ENVELOPE_BYTES: usize = 512;

/// Writes `event` to the outbox within the caller's transaction, with the current
/// trace context and `request_id`, and returns its event id.
pub async fn enqueue<E: Event>(
    connection: &mut PgConnection,
    event: &E,
    request_id: &RequestId,
) -> anyhow::Result<Uuid> {
    let prepared = prepare(event, request_id)?;
    insert(connection, &prepared, "").await?;
    Ok(prepared.event_id)
}

/// Writes `event` to the outbox again under its own id, within the caller's transaction:
/// a row still kept (published, not yet pruned) is re-armed, otherwise inserted. For a
/// request that must be repeated with the same event id, so its consumer's idempotency
/// recognises it (the saga's payment timeout).
pub async fn enqueue_again(connection: &mut PgConnection, event: &PreparedEvent) -> anyhow::Result<()> {
    insert(connection, event, ARM_AGAIN).await
}

/// The head of a statement writing one outbox row, its six values in [`bind`]'s order: a state
/// change and its event in one statement write `{INSERT_INTO} SELECT $n, … FROM …`.
pub const INSERT_INTO: &str = "INSERT INTO outbox (event_id, topic, event_type, message_key, payload, headers)";

/// The conflict clause of [`enqueue_again`]: a row with the event's id still kept is re-armed.
pub const ARM_AGAIN: &str = "ON CONFLICT (event_id) DO UPDATE SET published_at = NULL, headers = EXCLUDED.headers";

/// Binds `event`'s six outbox values to `query`, after the parameters already bound.
pub fn bind<'q>(query: Query<'q, Postgres, PgArguments>, event: &'q PreparedEvent) -> Query<'q, Postgres, PgArguments> {
    query
        .bind(event.event_id)
        .bind(event.topic)
        .bind(event.event_type)
        .bind(&event.key)
        .bind(sqlx::types::Json(&event.payload))
        .bind(sqlx::types::Json(&event.headers))
}

/// One outbox row for `event`; `on_conflict` is the statement's conflict clause, if any.
async fn insert(connection: &mut PgConnection, event: &PreparedEvent, on_conflict: &str) -> anyhow::Result<()> {
    bind(sqlx::query(&format!("{INSERT_INTO} VALUES ($1, $2, $3, $4, $5, $6) {on_conflict}")), event)
        .execute(connection)
        .await
        .with_context(|| format!("cannot write {} to the outbox", event.event_type))?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    event_id: Uuid,
    topic: String,
    event_type: String,
    message_key: String,
    payload: sqlx::types::Json<serde_json::Value>,
    headers: sqlx::types::Json<HashMap<String, String>>,
    created_at: DateTime<Utc>,
}

/// Wakes this process's relay ([`OutboxRelay::waker`]) right after a commit that wrote
/// outbox rows. Cheap to clone; wake-ups while the relay is busy coalesce into one.
#[derive(Debug, Clone, Default)]
pub struct RelayWake(Arc<tokio::sync::Notify>);

impl RelayWake {
    /// Rows were committed: the relay drains the outbox now rather than at its next sweep.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Publishes outbox rows of one database.
pub struct OutboxRelay {
    pool: PgPool,
    publisher: EventPublisher,
    wake: RelayWake,
}

impl OutboxRelay {
    /// A relay over `pool`'s outbox, with a producer of its own.
    pub fn new(pool: PgPool, settings: &KafkaSettings) -> anyhow::Result<Self> {
        let publisher = EventPublisher::new(settings)?;
        Ok(Self { pool, publisher, wake: RelayWake::default() })
    }

    /// What the writers of this process wake the relay with.
    pub fn waker(&self) -> RelayWake {
        self.wake.clone()
    }

    /// Relays until `shutdown`, then returns (unpublished rows wait for the next start).
    pub async fn run(self, shutdown: CancellationToken) {
        // On a task of its own, so the backlog gauges and pruning keep their schedule while
        // a long backlog drains.
        let housekeeping = tokio::spawn(housekeeping(self.pool.clone(), shutdown.clone()));
        let (mut connection, mut failures) = (None, 0u32);
        loop {
            let drained = tokio::select! {
                () = shutdown.cancelled() => break,
                result = self.drain(&mut connection) => result,
            };
            match drained {
                Ok(()) => failures = 0,
                Err(error) => {
                    failures += 1;
                    // Once per outage, then quietly: the backlog metrics tell the rest.
                    if failures == 1 {
                        tracing::warn!(error = format!("{error:#}"), "outbox relay cannot publish; retrying");
                    }
                }
            }
            let pause = if failures == 0 { SWEEP_EVERY } else { SWEEP_EVERY * failures.min(5) };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.0.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
        let _ = housekeeping.await;
        tracing::info!("outbox relay stopped");
    }

    /// Publishes pending rows in order until none are left, on the relay's own connection: one
    /// that fails holding the relay's lock is closed, letting it go (a pool would hand it on).
    async fn drain(&self, slot: &mut Option<PgConnection>) -> anyhow::Result<()> {
        let connection = match slot {
            Some(connection) => connection,
            None => slot.insert(self.pool.connect_options().connect().await.context("cannot connect the relay")?),
        };
        loop {
            match self.publish_batch(connection).await {
                Ok(None) => tokio::time::sleep(LOCK_RETRY).await,
                Ok(Some((read, None))) if read == BATCH as usize => {}
                Ok(Some((_, failure))) => return failure.map_or(Ok(()), Err),
                Err(error) => {
                    *slot = None;
                    return Err(error);
                }
            }
        }
    }

    /// One batch, four statements, no transaction: the relay's lock is taken for the session
    /// (`None` when another relay holds it), and goes only once the mark is committed, so a
    /// replay never sees a batch half marked. `Err` is the database's.
    async fn publish_batch(
        &self,
        connection: &mut PgConnection,
    ) -> anyhow::Result<Option<(usize, Option<anyhow::Error>)>> {
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(RELAY_LOCK)
            .fetch_one(&mut *connection)
            .await
            .context("cannot take the relay's lock")?;
        if !locked {
            return Ok(None);
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, event_id, topic, event_type, message_key, payload, headers, created_at
             FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(BATCH)
        .fetch_all(&mut *connection)
        .await
        .context("cannot read the outbox")?;
        let (published, failure) = self.publish_rows(&rows).await;
        if failure.is_some() {
            self.publisher.renew();
        }
        if !published.is_empty() {
            sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
                .bind(&published)
                .execute(&mut *connection)
                .await
                .context("cannot mark outbox rows published")?;
        }
        sqlx::query("SELECT pg_advisory_unlock_all()").execute(&mut *connection).await.context("cannot unlock")?;
        Ok(Some((rows.len(), failure)))
    }

    /// Publishes `rows` (in id order): every row is handed to the producer before any
    /// acknowledgement is awaited; a key whose row the producer refuses hands over nothing
    /// more of itself. Returns the ids acknowledged, each key's up to its first failure,
    /// and the first failure, if any.
    async fn publish_rows(&self, rows: &[Row]) -> (Vec<i64>, Option<anyhow::Error>) {
        // Each key's first failed row: nothing of the key from there on counts as published.
        let mut stopped_at: HashMap<&str, i64> = HashMap::new();
        let mut failure = None;
        let mut sent: Vec<(&Row, Acknowledgement)> = Vec::with_capacity(rows.len());
        for row in rows {
            if stopped_at.contains_key(row.message_key.as_str()) {
                continue;
            }
            match self.dispatch(row) {
                Ok(acknowledgement) => sent.push((row, acknowledgement)),
                Err(error) => {
                    stopped_at.insert(&row.message_key, row.id);
                    failure.get_or_insert(error);
                }
            }
        }
        let (rows_sent, acknowledgements): (Vec<&Row>, Vec<Acknowledgement>) = sent.into_iter().unzip();
        let results = futures::future::join_all(acknowledgements).await;
        let mut acknowledged = Vec::with_capacity(rows_sent.len());
        for (row, result) in rows_sent.into_iter().zip(results) {
            match result {
                Ok(()) => acknowledged.push(row),
                Err(error) => {
                    let first = stopped_at.entry(&row.message_key).or_insert(row.id);
                    *first = (*first).min(row.id);
                    failure.get_or_insert(error.into());
                }
            }
        }
        // A key's rows after one that failed go again, after it, with the same event ids.
        let published = acknowledged
            .into_iter()
            .filter(|row| stopped_at.get(row.message_key.as_str()).is_none_or(|first| row.id < *first))
            .map(|row| {
                metrics::counter!("outbox_published_total", "topic" => row.topic.clone()).increment(1);
                row.id
            })
            .collect();
        (published, failure)
    }

    /// Hands one row to the producer.
    fn dispatch(&self, row: &Row) -> anyhow::Result<Acknowledgement> {
        let payload = serde_json::to_vec(&row.payload.0).context("cannot serialise outbox payload")?;
        let request_id = row.headers.get(crate::kafka::REQUEST_ID_HEADER).map_or("", String::as_str);
        let outgoing = OutgoingEvent {
            topic_base: &row.topic,
            event_type: &row.event_type,
            event_id: row.event_id,
            key: &row.message_key,
            payload: &payload,
            time: row.created_at,
            request_id,
            parent: Some(propagation::context_from_map(&row.headers.0)),
        };
        Ok(self.publisher.dispatch(&outgoing)?)
    }
}

/// Refreshes the backlog gauges every [`GAUGES_EVERY`] and prunes published rows every
/// [`PRUNE_EVERY`], until `shutdown`.
async fn housekeeping(pool: PgPool, shutdown: CancellationToken) {
    let mut gauges = tokio::time::interval(GAUGES_EVERY);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    for timer in [&mut gauges, &mut prune] {
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = gauges.tick() => record_backlog(&pool).await,
            _ = prune.tick() => prune_published(&pool).await,
        }
    }
}

async fn prune_published(pool: &PgPool) {
    let pruned = sqlx::query(&format!("DELETE FROM outbox WHERE published_at < now() - interval '{KEEP_PUBLISHED}'"))
        .execute(pool)
        .await;
    if let Err(error) = pruned {
        tracing::warn!(%error, "cannot prune published outbox rows");
    }
}

async fn record_backlog(pool: &PgPool) {
    let backlog: Result<(i64, Option<f64>), _> = sqlx::query_as(
        "SELECT count(*), EXTRACT(EPOCH FROM now() - min(created_at))::float8
         FROM outbox WHERE published_at IS NULL",
    )
    .fetch_one(pool)
    .await;
    if let Ok((pending, oldest)) = backlog {
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("outbox_pending_events").set(pending as f64);
        metrics::gauge!("outbox_oldest_pending_age_seconds").set(oldest.unwrap_or(0.0).max(0.0));
    }
}
