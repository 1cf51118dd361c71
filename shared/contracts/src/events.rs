//! The event contracts between services: one typed struct per topic.
//!
//! A message's body is the event's JSON (camelCase, as the seed documents it);
//! its metadata travels in headers following the CloudEvents Kafka binding in
//! binary mode (`ce_id`, `ce_type`, `ce_source`, `ce_time`, `ce_specversion`),
//! beside `traceparent` and `x-request-id`. The key is always the user id, so
//! every event about one user stays in order on one partition.
//!
//! Each struct derives `ToSchema`, so its JSON Schema comes from the struct and its serde
//! attributes (field docs become descriptions); [`crate::asyncapi`] puts them in the
//! AsyncAPI document.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::money::Money;

/// An event type that has its own topic.
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Topic name without the deployment's prefix.
    const TOPIC: &'static str;
    /// CloudEvents `type`, versioned: a breaking change gets a new version.
    const TYPE: &'static str;
    /// The partitioning key: the user the event is about.
    fn key(&self) -> Uuid;
}

/// `user.created`: a user account was stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserCreated {
    /// The new user's id.
    pub user_id: Uuid,
    /// The user's e-mail address.
    pub email: String,
    /// The user's display name.
    pub name: String,
    /// When the user was stored.
    pub created_at: DateTime<Utc>,
}

impl Event for UserCreated {
    const TOPIC: &'static str = "user.created";
    const TYPE: &'static str = "platform.user.created.v1";
    fn key(&self) -> Uuid {
        self.user_id
    }
}

/// `user.deleted`: a user account was deleted. Consumers forget the user; order-service
/// refuses new orders for them and cancels their pending ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDeleted {
    /// The deleted user's id.
    pub user_id: Uuid,
    /// When the account was deleted.
    pub deleted_at: DateTime<Utc>,
}

impl Event for UserDeleted {
    const TOPIC: &'static str = "user.deleted";
    const TYPE: &'static str = "platform.user.deleted.v1";
    fn key(&self) -> Uuid {
        self.user_id
    }
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    /// Product identifier (`product-…`).
    pub product_id: String,
    /// How many.
    pub quantity: u32,
    /// Unit price.
    pub price: Money,
}

/// `order.created`: an order was stored and awaits payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderCreated {
    /// The order's id.
    pub order_id: Uuid,
    /// The ordering user.
    pub user_id: Uuid,
    /// The order's lines.
    pub items: Vec<OrderItem>,
    /// Sum of quantity × price over the lines.
    pub total_amount: Money,
    /// When the order was stored.
    pub created_at: DateTime<Utc>,
}

impl Event for OrderCreated {
    const TOPIC: &'static str = "order.created";
    const TYPE: &'static str = "platform.order.created.v1";
    fn key(&self) -> Uuid {
        self.user_id
    }
}

/// Outcome of a payment attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// The amount was captured.
    Completed,
    /// The payment was declined.
    Failed,
}

impl PaymentStatus {
    /// The wire name, also used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

/// `payment.completed`: a payment for an order was settled, either way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentCompleted {
    /// The payment's id; derived from the order id, so a retried payment keeps it.
    pub payment_id: Uuid,
    /// The paid order.
    pub order_id: Uuid,
    /// The paying user.
    pub user_id: Uuid,
    /// The amount charged.
    pub amount: Money,
    /// Whether the payment went through.
    pub status: PaymentStatus,
    /// When the payment was settled.
    pub completed_at: DateTime<Utc>,
}

impl Event for PaymentCompleted {
    const TOPIC: &'static str = "payment.completed";
    const TYPE: &'static str = "platform.payment.completed.v1";
    fn key(&self) -> Uuid {
        self.user_id
    }
}

/// `order.cancelled`: an order was cancelled (by its owner, an admin, or because its user
/// was deleted). payment-service takes no payment for it from then on, and refunds one it
/// has already taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderCancelled {
    /// The cancelled order.
    pub order_id: Uuid,
    /// Its owner.
    pub user_id: Uuid,
    /// The order's total: what a refund gives back.
    pub total_amount: Money,
    /// When it was cancelled.
    pub cancelled_at: DateTime<Utc>,
}

impl Event for OrderCancelled {
    const TOPIC: &'static str = "order.cancelled";
    const TYPE: &'static str = "platform.order.cancelled.v1";
    fn key(&self) -> Uuid {
        self.user_id
    }
}

/// `payment.refunded`: a payment taken for an order that was then cancelled was given back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRefunded {
    /// The refunded payment.
    pub payment_id: Uuid,
    /// Its order.
    pub order_id: Uuid,
    /// The user refunded.
    pub user_id: Uuid,
    /// The amount given back: the whole payment.
    pub amount: Money,
    /// When the refund was made.
    pub refunded_at: DateTime<Utc>,
}

impl Event for PaymentRefunded {
    const TOPIC: &'static str = "payment.refunded";
    const TYPE: &'static str = "platform.payment.refunded.v1";
    fn key(&self) -> Uuid {
        self.user_id
    }
}

/// The most bytes one event may take on the broker, body and headers together. Far
/// above the largest event the API's validation allows (an order of 100 lines of the
/// longest product ids and highest prices is about a quarter of it), and small enough that
/// no record grows past what consumers fetch in a few requests.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// An event that would exceed [`MAX_EVENT_BYTES`]; refused before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTooLarge {
    /// The event's type.
    pub event_type: &'static str,
    /// Its size, body and headers.
    pub bytes: usize,
}

impl std::fmt::Display for EventTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} would be {} bytes, over the {MAX_EVENT_BYTES}-byte limit of an event",
            self.event_type, self.bytes
        )
    }
}

impl std::error::Error for EventTooLarge {}

/// Base names of every topic the platform uses, for creating them at start.
pub const ALL_TOPICS: [&str; 6] = [
    UserCreated::TOPIC,
    UserDeleted::TOPIC,
    OrderCreated::TOPIC,
    OrderCancelled::TOPIC,
    PaymentCompleted::TOPIC,
    PaymentRefunded::TOPIC,
];

/// The dead-letter topic for a topic.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_created_has_the_documented_shape() {
        let event = OrderCreated {
            order_id: Uuid::nil(),
            user_id: Uuid::nil(),
            items: vec![OrderItem {
                product_id: "product-123".into(),
                quantity: 2,
                price: Money::from_cents(2999).unwrap(),
            }],
            total_amount: Money::from_cents(5998).unwrap(),
            created_at: DateTime::UNIX_EPOCH,
        };
        let json = serde_json::to_value(&event).unwrap();
        let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["createdAt", "items", "orderId", "totalAmount", "userId"]);
        assert_eq!(json["items"][0]["productId"], "product-123");
        assert_eq!(serde_json::from_value::<OrderCreated>(json).unwrap(), event);
    }

    #[test]
    fn payment_status_is_lower_case_on_the_wire() {
        assert_eq!(serde_json::to_string(&PaymentStatus::Failed).unwrap(), "\"failed\"");
    }
}
