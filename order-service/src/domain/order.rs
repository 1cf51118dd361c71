//! The order aggregate and its status machine.

use chrono::{DateTime, Utc};
use contracts::events::OrderItem;
use contracts::money::Money;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where an order stands. `pending` is the only state that can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Awaiting payment.
    Pending,
    /// Paid.
    Paid,
    /// The payment was declined.
    PaymentFailed,
    /// Cancelled before payment.
    Cancelled,
}

impl OrderStatus {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Paid => "paid",
            Self::PaymentFailed => "payment_failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Reads a stored or query name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "pending" => Some(Self::Pending),
            "paid" => Some(Self::Paid),
            "payment_failed" => Some(Self::PaymentFailed),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }

    /// Whether the machine allows `self → next`. Final states never move again.
    pub fn can_become(self, next: Self) -> bool {
        matches!((self, next), (Self::Pending, Self::Paid | Self::PaymentFailed | Self::Cancelled))
    }
}

/// Why the order exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderKind {
    /// Placed through the API.
    Standard,
    /// Made for a new user on `user.created`; at most one per user.
    Welcome,
}

impl OrderKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Welcome => "welcome",
        }
    }
}

/// A stored order as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// Id.
    pub id: Uuid,
    /// The ordering user.
    pub user_id: Uuid,
    /// Lines.
    pub items: Vec<OrderItem>,
    /// Sum of the lines.
    pub total_amount: Money,
    /// Status.
    pub status: OrderStatus,
    /// Why it exists.
    pub kind: OrderKind,
    /// When created.
    pub created_at: DateTime<Utc>,
    /// When last changed.
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::*;

    #[test]
    fn only_pending_orders_move() {
        assert!(Pending.can_become(Paid));
        assert!(Pending.can_become(PaymentFailed));
        assert!(Pending.can_become(Cancelled));
        for done in [Paid, PaymentFailed, Cancelled] {
            for next in [Pending, Paid, PaymentFailed, Cancelled] {
                assert!(!done.can_become(next), "{done:?} -> {next:?}");
            }
        }
    }
}
