//! The `payments` table: one row per order, which a charge and a cancellation of that
//! order take turns on (the primary key serialises their inserts, the row lock the rest).

use std::sync::LazyLock;

use anyhow::Context;
use contracts::events::PaymentStatus;
use eventing::outbox::{self, PreparedEvent};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// Where an order's payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Taken, or declined.
    Settled(PaymentStatus),
    /// The order was cancelled before a payment was taken: none ever will be.
    Cancelled,
    /// Taken, then given back.
    Refunded,
}

impl Standing {
    fn as_str(self) -> &'static str {
        match self {
            Self::Settled(status) => status.as_str(),
            Self::Cancelled => "cancelled",
            Self::Refunded => "refunded",
        }
    }

    fn parse(stored: &str) -> anyhow::Result<Self> {
        Ok(match stored {
            "completed" => Self::Settled(PaymentStatus::Completed),
            "failed" => Self::Settled(PaymentStatus::Failed),
            "cancelled" => Self::Cancelled,
            "refunded" => Self::Refunded,
            other => anyhow::bail!("unknown payment status {other:?}"),
        })
    }
}

/// One order's payment row.
#[derive(Debug, Clone, Copy)]
pub struct Payment {
    /// The payment's id (derived from the order id).
    pub payment_id: Uuid,
    /// The order.
    pub order_id: Uuid,
    /// The paying user.
    pub user_id: Uuid,
    /// The amount, in cents.
    pub amount_cents: i64,
    /// Where it stands.
    pub standing: Standing,
    /// Whether this call created the row (a first charge or cancellation, not a repeat).
    pub created: bool,
}

/// [`record_first_with_event`]'s statement, built once from the outbox's insert.
static RECORD_FIRST_WITH_EVENT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH payment AS (
            INSERT INTO payments (order_id, payment_id, user_id, amount_cents, status)
            VALUES ($1, $2, $3, $4, $5) ON CONFLICT (order_id) DO NOTHING
            RETURNING order_id
        )
        {} SELECT $6, $7, $8, $9, $10, $11 FROM payment {}",
        outbox::INSERT_INTO,
        outbox::ARM_AGAIN
    )
});

/// Records `payment` as the order's first row together with its outbox `event`, in one
/// statement (one round trip, atomic on its own): the common case of a charge, which
/// then needs no transaction. Returns false and stores nothing when the order already has
/// a row (a repeat, or a cancellation first); the caller then takes [`record`]'s locking path.
#[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", otel.name = "INSERT payments", db.system.name = "postgresql", db.operation.name = "INSERT", db.collection.name = "payments"))]
pub async fn record_first_with_event(
    executor: impl PgExecutor<'_>,
    payment: &Payment,
    event: &PreparedEvent,
) -> anyhow::Result<bool> {
    let query = sqlx::query(&RECORD_FIRST_WITH_EVENT)
        .bind(payment.order_id)
        .bind(payment.payment_id)
        .bind(payment.user_id)
        .bind(payment.amount_cents)
        .bind(payment.standing.as_str());
    let inserted = outbox::bind(query, event)
        .execute(executor)
        .await
        .context("INSERT payment with its event failed")?
        .rows_affected();
    Ok(inserted == 1)
}

/// Records `payment` for its order unless the order already has a row (paid, declined,
/// refunded, or cancelled before payment), and returns the order's row, locked.
pub async fn record(connection: &mut PgConnection, payment: &Payment) -> anyhow::Result<Payment> {
    let inserted = sqlx::query(
        "INSERT INTO payments (order_id, payment_id, user_id, amount_cents, status)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(payment.order_id)
    .bind(payment.payment_id)
    .bind(payment.user_id)
    .bind(payment.amount_cents)
    .bind(payment.standing.as_str())
    .execute(&mut *connection)
    .await
    .context("INSERT INTO payments failed")?
    .rows_affected();
    let (payment_id, user_id, amount_cents, status): (Uuid, Uuid, i64, String) =
        sqlx::query_as("SELECT payment_id, user_id, amount_cents, status FROM payments WHERE order_id = $1 FOR UPDATE")
            .bind(payment.order_id)
            .fetch_one(&mut *connection)
            .await
            .context("SELECT payment failed")?;
    Ok(Payment {
        payment_id,
        order_id: payment.order_id,
        user_id,
        amount_cents,
        standing: Standing::parse(&status)?,
        created: inserted == 1,
    })
}

/// Marks the order's taken payment given back.
pub async fn mark_refunded(connection: &mut PgConnection, order_id: Uuid) -> anyhow::Result<()> {
    sqlx::query("UPDATE payments SET status = 'refunded', updated_at = now() WHERE order_id = $1")
        .bind(order_id)
        .execute(connection)
        .await
        .context("UPDATE payment to refunded failed")?;
    Ok(())
}
