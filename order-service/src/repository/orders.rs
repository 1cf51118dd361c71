//! The `orders` and `order_items` tables.

use std::collections::HashMap;
use std::sync::LazyLock;

use anyhow::Context;
use chrono::{DateTime, Utc};
use contracts::events::OrderItem;
use contracts::money::Money;
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

use eventing::idempotency;
use eventing::kafka::EventMeta;
use eventing::outbox::{self, PreparedEvent};

use crate::domain::{Order, OrderKind, OrderStatus};

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    user_id: Uuid,
    kind: String,
    status: String,
    total_cents: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    order_id: Uuid,
    product_id: String,
    quantity: i32,
    unit_price_cents: i64,
}

const COLUMNS: &str = "id, user_id, kind, status, total_cents, created_at, updated_at";

fn to_order(row: OrderRow, items: Vec<OrderItem>) -> anyhow::Result<Order> {
    Ok(Order {
        id: row.id,
        user_id: row.user_id,
        items,
        total_amount: Money::from_cents(row.total_cents).context("negative total in database")?,
        status: OrderStatus::parse(&row.status).with_context(|| format!("unknown status {:?}", row.status))?,
        kind: if row.kind == "welcome" { OrderKind::Welcome } else { OrderKind::Standard },
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn to_item(row: ItemRow) -> anyhow::Result<OrderItem> {
    Ok(OrderItem {
        product_id: row.product_id,
        quantity: u32::try_from(row.quantity).context("negative quantity in database")?,
        price: Money::from_cents(row.unit_price_cents).context("negative price in database")?,
    })
}

/// Inserts an order with its lines and its outbox event, in one statement (one round
/// trip, atomic on its own). Returns `None`, and stores nothing (the event included),
/// when the user is not a known, undeleted user (`known_users`), or when it is a welcome
/// order and the user already has one.
#[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", otel.name = "INSERT orders", db.system.name = "postgresql", db.operation.name = "INSERT", db.collection.name = "orders"))]
pub async fn insert_with_event(
    executor: impl PgExecutor<'_>,
    order: &Order,
    event: &PreparedEvent,
) -> anyhow::Result<Option<Order>> {
    let (mut products, mut quantities, mut prices, mut lines) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (line, item) in (1..).zip(&order.items) {
        lines.push(line);
        products.push(item.product_id.as_str());
        quantities.push(i32::try_from(item.quantity).context("quantity out of range")?);
        prices.push(item.price.cents());
    }
    let query = sqlx::query(INSERT_WITH_EVENT)
        .bind(order.id)
        .bind(order.user_id)
        .bind(order.kind.as_str())
        .bind(order.total_amount.cents())
        .bind(order.created_at)
        .bind(&lines)
        .bind(&products)
        .bind(&quantities)
        .bind(&prices);
    let row =
        outbox::bind(query, event).fetch_optional(executor).await.context("INSERT order with its event failed")?;
    row.map(|row| to_order(OrderRow::from_row(&row)?, order.items.clone())).transpose()
}

/// The order, its lines and its `order.created` outbox row. The CTEs see one snapshot:
/// when the user is unknown or deleted, or the welcome-order conflict skips the order,
/// `new_order` is empty and so are the lines and the event. `bench/harness.py` replays this statement in `pgbench`.
pub const INSERT_WITH_EVENT: &str = "\
WITH new_order AS (
    INSERT INTO orders (id, user_id, kind, total_cents, created_at, updated_at)
    SELECT $1, $2, $3, $4, $5, $5
    WHERE EXISTS (SELECT 1 FROM known_users WHERE user_id = $2 AND deleted_at IS NULL)
    ON CONFLICT (user_id) WHERE kind = 'welcome' DO NOTHING
    RETURNING id, user_id, kind, status, total_cents, created_at, updated_at
), lines AS (
    INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price_cents)
    SELECT new_order.id, item.* FROM new_order, UNNEST($6::int[], $7::text[], $8::int[], $9::bigint[]) AS item
), event AS (
    INSERT INTO outbox (event_id, topic, event_type, message_key, payload, headers)
    SELECT $10, $11, $12, $13, $14, $15 FROM new_order
)
SELECT id, user_id, kind, status, total_cents, created_at, updated_at FROM new_order";

async fn with_items(connection: &mut PgConnection, rows: Vec<OrderRow>) -> anyhow::Result<Vec<Order>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let item_rows = sqlx::query_as::<_, ItemRow>(
        "SELECT order_id, product_id, quantity, unit_price_cents FROM order_items
         WHERE order_id = ANY($1) ORDER BY order_id, line_no",
    )
    .bind(&ids)
    .fetch_all(&mut *connection)
    .await
    .context("SELECT order_items failed")?;
    let mut items: HashMap<Uuid, Vec<OrderItem>> = HashMap::new();
    for row in item_rows {
        items.entry(row.order_id).or_default().push(to_item(row)?);
    }
    rows.into_iter()
        .map(|row| {
            let lines = items.remove(&row.id).unwrap_or_default();
            to_order(row, lines)
        })
        .collect()
}

/// The order with `id`, if any.
#[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", otel.name = "SELECT orders", db.system.name = "postgresql", db.operation.name = "SELECT", db.collection.name = "orders"))]
pub async fn find(connection: &mut PgConnection, id: Uuid) -> anyhow::Result<Option<Order>> {
    let rows = sqlx::query_as::<_, OrderRow>(&format!("SELECT {COLUMNS} FROM orders WHERE id = $1"))
        .bind(id)
        .fetch_all(&mut *connection)
        .await
        .context("SELECT order by id failed")?;
    Ok(with_items(connection, rows).await?.pop())
}

/// Filters for listing orders.
#[derive(Debug, Default)]
pub struct OrderFilter {
    /// Only this user's orders.
    pub user_id: Option<Uuid>,
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
}

/// A page of orders, newest first.
#[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", otel.name = "SELECT orders", db.system.name = "postgresql", db.operation.name = "SELECT", db.collection.name = "orders"))]
pub async fn list(
    connection: &mut PgConnection,
    filter: &OrderFilter,
    limit: i64,
    offset: i64,
) -> anyhow::Result<Vec<Order>> {
    let rows = sqlx::query_as::<_, OrderRow>(&format!(
        "SELECT {COLUMNS} FROM orders
         WHERE ($1::uuid IS NULL OR user_id = $1) AND ($2::text IS NULL OR status = $2)
         ORDER BY created_at DESC, id LIMIT $3 OFFSET $4"
    ))
    .bind(filter.user_id)
    .bind(filter.status.map(OrderStatus::as_str))
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *connection)
    .await
    .context("SELECT orders failed")?;
    with_items(connection, rows).await
}

/// Moves an order to `next` when its status machine allows it. Returns the status the
/// order had, or `None` when there is no such order. The row lock makes concurrent
/// transitions (and payments) take turns.
#[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", otel.name = "UPDATE orders", db.system.name = "postgresql", db.operation.name = "UPDATE", db.collection.name = "orders"))]
pub async fn transition(
    connection: &mut PgConnection,
    id: Uuid,
    next: OrderStatus,
) -> anyhow::Result<Option<OrderStatus>> {
    let current: Option<String> = sqlx::query_scalar("SELECT status FROM orders WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut *connection)
        .await
        .context("SELECT order status failed")?;
    let Some(previous) = current.map(|s| OrderStatus::parse(&s).with_context(|| format!("unknown status {s:?}")))
    else {
        return Ok(None);
    };
    let previous = previous?;
    if previous.can_become(next) {
        sqlx::query("UPDATE orders SET status = $2, updated_at = now() WHERE id = $1")
            .bind(id)
            .bind(next.as_str())
            .execute(&mut *connection)
            .await
            .context("UPDATE order status failed")?;
    }
    Ok(Some(previous))
}

/// Marks a cancelled order `refunded` for a refund of `amount_cents` to `user_id`, with
/// `reason`, but only when the order is cancelled and both are its own. Returns what the
/// order was, or `None` when there is no such order.
#[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", otel.name = "UPDATE orders", db.system.name = "postgresql", db.operation.name = "UPDATE", db.collection.name = "orders"))]
pub async fn refund(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    user_id: Uuid,
    amount_cents: i64,
    reason: &str,
) -> anyhow::Result<Option<PaymentTarget>> {
    let found: Option<(String, i64, Uuid)> = sqlx::query_as(
        "WITH current AS (SELECT id, status, total_cents, user_id FROM orders WHERE id = $1 FOR UPDATE),
              due AS (SELECT c.status = 'cancelled' AND c.total_cents = $2 AND c.user_id = $3 AS ok FROM current c)
         UPDATE orders o SET status = CASE WHEN due.ok THEN 'refunded' ELSE o.status END,
                             status_reason = CASE WHEN due.ok THEN $4 ELSE o.status_reason END,
                             updated_at = CASE WHEN due.ok THEN now() ELSE o.updated_at END
         FROM current c, due WHERE o.id = c.id
         RETURNING c.status, c.total_cents, c.user_id",
    )
    .bind(id)
    .bind(amount_cents)
    .bind(user_id)
    .bind(reason)
    .fetch_optional(executor)
    .await
    .context("UPDATE order status for a refund failed")?;
    found.map(PaymentTarget::try_from).transpose()
}

/// What a payment or a refund found of its order.
#[derive(Debug, Clone, Copy)]
pub struct PaymentTarget {
    /// The status the order had.
    pub previous: OrderStatus,
    /// Its total, in cents.
    pub total_cents: i64,
    /// Its owner.
    pub user_id: Uuid,
}

/// [`settle_once`]'s statement, built once from the processed mark's insert.
static SETTLE_ONCE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH current AS (SELECT id, status, total_cents, user_id FROM orders WHERE id = $1 FOR UPDATE),
              mark AS ({} SELECT $5, $6 FROM current WHERE total_cents = $3 AND user_id = $4
                       ON CONFLICT DO NOTHING RETURNING event_id),
              moved AS (UPDATE orders o SET status = $2, updated_at = now()
                        FROM current c WHERE o.id = c.id AND c.status = 'pending' AND EXISTS (SELECT 1 FROM mark)
                        RETURNING o.id)
         SELECT c.status, c.total_cents, c.user_id, EXISTS (SELECT 1 FROM mark) FROM current c",
        idempotency::MARK_INTO
    )
});

/// Applies a payment's outcome once, in one statement (one round trip, atomic on its own):
/// records the event as processed for `meta`'s group and moves a `pending` order to `next`,
/// but only when the payment's `amount_cents` and `user_id` are the order's own. A payment
/// that names another amount or owner, or an unknown order, writes nothing (not even the
/// processed mark, so a replay once it is fixed is handled afresh). Returns what the order
/// was and whether this was the event's first delivery, or `None` when there is no such order.
#[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", otel.name = "UPDATE orders", db.system.name = "postgresql", db.operation.name = "UPDATE", db.collection.name = "orders"))]
pub async fn settle_once(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    user_id: Uuid,
    amount_cents: i64,
    next: OrderStatus,
    meta: &EventMeta,
) -> anyhow::Result<Option<(PaymentTarget, bool)>> {
    let found: Option<(String, i64, Uuid, bool)> = sqlx::query_as(&SETTLE_ONCE)
        .bind(id)
        .bind(next.as_str())
        .bind(amount_cents)
        .bind(user_id)
        .bind(&meta.group)
        .bind(meta.event_id)
        .fetch_optional(executor)
        .await
        .context("UPDATE order status for a payment failed")?;
    found
        .map(|(status, total_cents, user_id, first)| {
            Ok((PaymentTarget::try_from((status, total_cents, user_id))?, first))
        })
        .transpose()
}

impl TryFrom<(String, i64, Uuid)> for PaymentTarget {
    type Error = anyhow::Error;

    fn try_from((status, total_cents, user_id): (String, i64, Uuid)) -> anyhow::Result<Self> {
        let previous = OrderStatus::parse(&status).with_context(|| format!("unknown status {status:?}"))?;
        Ok(Self { previous, total_cents, user_id })
    }
}

/// Order counts and sums per status.
#[derive(Debug, sqlx::FromRow)]
pub struct StatusTotals {
    /// The status.
    pub status: String,
    /// Orders in it.
    pub orders: i64,
    /// Sum of their totals, in cents.
    pub total_cents: i64,
}

/// Counts and sums per status, over all orders.
#[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", otel.name = "SELECT orders", db.system.name = "postgresql", db.operation.name = "SELECT", db.collection.name = "orders"))]
pub async fn totals_by_status(executor: impl PgExecutor<'_>) -> anyhow::Result<Vec<StatusTotals>> {
    sqlx::query_as::<_, StatusTotals>(
        "SELECT status, count(*) AS orders, COALESCE(sum(total_cents), 0)::bigint AS total_cents
         FROM orders GROUP BY status ORDER BY status",
    )
    .fetch_all(executor)
    .await
    .context("SELECT order totals failed")
}

/// Pending orders whose payment was last requested before `older_than`, locked for
/// this transaction (skipping rows another instance's sweep holds), oldest first.
#[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", otel.name = "SELECT orders", db.system.name = "postgresql", db.operation.name = "SELECT", db.collection.name = "orders"))]
pub async fn lock_unanswered(
    connection: &mut PgConnection,
    older_than: DateTime<Utc>,
    limit: i64,
) -> anyhow::Result<Vec<(Order, i32)>> {
    let requests: Vec<(Uuid, i32)> = sqlx::query_as(
        "SELECT id, payment_requests FROM orders
         WHERE status = 'pending' AND payment_requested_at < $1
         ORDER BY payment_requested_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(older_than)
    .bind(limit)
    .fetch_all(&mut *connection)
    .await
    .context("SELECT unanswered orders failed")?;
    let ids: Vec<Uuid> = requests.iter().map(|(id, _)| *id).collect();
    let rows = sqlx::query_as::<_, OrderRow>(&format!("SELECT {COLUMNS} FROM orders WHERE id = ANY($1)"))
        .bind(&ids)
        .fetch_all(&mut *connection)
        .await
        .context("SELECT unanswered orders failed")?;
    let counts: HashMap<Uuid, i32> = requests.into_iter().collect();
    Ok(with_items(connection, rows)
        .await?
        .into_iter()
        .map(|order| {
            let count = counts.get(&order.id).copied().unwrap_or(1);
            (order, count)
        })
        .collect())
}

/// Records that the payment of `ids` was requested once more, now.
pub async fn count_payment_request(executor: impl PgExecutor<'_>, ids: &[Uuid]) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE orders SET payment_requests = payment_requests + 1, payment_requested_at = now() WHERE id = ANY($1)",
    )
    .bind(ids)
    .execute(executor)
    .await
    .context("UPDATE payment requests failed")?;
    Ok(())
}

/// Fails the still-pending orders among `ids` with `reason`.
pub async fn fail_pending(executor: impl PgExecutor<'_>, ids: &[Uuid], reason: &str) -> anyhow::Result<u64> {
    let result = sqlx::query(
        "UPDATE orders SET status = 'payment_failed', status_reason = $2, updated_at = now()
         WHERE id = ANY($1) AND status = 'pending'",
    )
    .bind(ids)
    .bind(reason)
    .execute(executor)
    .await
    .context("UPDATE timed-out orders failed")?;
    Ok(result.rows_affected())
}
