//! Orders: placing one, the order as answered, its status machine, the admin's status
//! change and statistics.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::events::OrderItem;
use crate::money::Money;

/// A new order: for yourself, or for anyone as an admin.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOrderRequest {
    /// The ordering user.
    pub user_id: Uuid,
    /// 1 to 100 lines.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<OrderLine>,
}

/// One line of a new order, as sent (no other fields). The numbers stay raw JSON numbers
/// until order-service validates them, so `1.234` gets a field error rather than a
/// generic parse failure, and `2.0` is the integer 2, as JSON Schema says.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderLine {
    /// Product identifier (`product-…`).
    #[schema(pattern = "^product-[A-Za-z0-9-]+$", max_length = 100, example = "product-123")]
    pub product_id: String,
    /// How many, 1 to 9999.
    #[schema(value_type = u32, minimum = 1, maximum = 9999, example = 2)]
    pub quantity: serde_json::Number,
    /// An exact decimal with at most two places.
    #[schema(value_type = f64, minimum = 0.01, maximum = 999_999.99, multiple_of = 0.01, example = 29.99)]
    pub price: serde_json::Number,
}

/// Where an order stands: `pending` until its payment is answered or it is cancelled; a
/// `paid` order may still be cancelled, and a cancelled order whose payment had been taken
/// becomes `refunded` when payment-service gives it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Awaiting payment.
    Pending,
    /// Paid.
    Paid,
    /// The payment was declined, or never answered in time.
    PaymentFailed,
    /// Cancelled; a payment already taken is being refunded.
    Cancelled,
    /// Cancelled after its payment was taken, and the payment given back.
    Refunded,
}

impl OrderStatus {
    /// Every status, in the machine's order.
    pub const ALL: [Self; 5] = [Self::Pending, Self::Paid, Self::PaymentFailed, Self::Cancelled, Self::Refunded];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Paid => "paid",
            Self::PaymentFailed => "payment_failed",
            Self::Cancelled => "cancelled",
            Self::Refunded => "refunded",
        }
    }

    /// Reads a stored or query name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// Whether the machine allows `self → next`. `payment_failed` and `refunded` are final;
    /// `cancelled` moves only to `refunded`, when payment-service gives a taken payment back.
    pub fn can_become(self, next: Self) -> bool {
        matches!(
            (self, next),
            (Self::Pending, Self::Paid | Self::PaymentFailed | Self::Cancelled)
                | (Self::Paid, Self::Cancelled)
                | (Self::Cancelled, Self::Refunded)
        )
    }
}

/// Why the order exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderKind {
    /// Placed through the API.
    Standard,
    /// Made for a new user on `user.created`; at most one per user.
    Welcome,
}

impl OrderKind {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Welcome => "welcome",
        }
    }
}

/// An order, as every answer shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// Id.
    pub id: Uuid,
    /// The ordering user.
    pub user_id: Uuid,
    /// The lines.
    pub items: Vec<OrderItem>,
    /// Sum of quantity × price over the lines.
    pub total_amount: Money,
    /// Where the order stands.
    pub status: OrderStatus,
    /// Why the order exists.
    pub kind: OrderKind,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// An admin's status change: pending → paid, payment_failed or cancelled.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"status": "paid"}))]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    /// Where the order stands.
    pub status: OrderStatus,
}

/// Order statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderStats {
    /// Orders per status, every status listed (zero included).
    #[schema(example = json!({"pending": 1, "paid": 8, "payment_failed": 1, "cancelled": 0}))]
    pub counts_by_status: BTreeMap<OrderStatus, i64>,
    /// Orders of every status.
    pub total_orders: i64,
    /// Sum of paid orders.
    pub revenue: Money,
    /// Revenue ÷ paid orders, rounded half up to the cent (0 when none is paid).
    pub average_order_value: Money,
}

/// The query of `GET /api/orders`, newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct OrderListQuery {
    /// Admins: any user's orders; others: only their own.
    pub user_id: Option<Uuid>,
    /// Only orders in this status. Kept as text, so an unknown status is a field error.
    #[param(pattern = "^(pending|paid|payment_failed|cancelled)$")]
    pub status: Option<String>,
    /// Page size (50 when absent).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Orders to skip.
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::{self, *};

    #[test]
    fn the_machine_moves_only_where_the_saga_allows() {
        let allowed =
            [(Pending, Paid), (Pending, PaymentFailed), (Pending, Cancelled), (Paid, Cancelled), (Cancelled, Refunded)];
        for from in OrderStatus::ALL {
            for next in OrderStatus::ALL {
                assert_eq!(from.can_become(next), allowed.contains(&(from, next)), "{from:?} -> {next:?}");
            }
        }
    }

    #[test]
    fn every_status_reads_back_from_its_name() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert_eq!(OrderStatus::parse("shipped"), None);
    }
}
