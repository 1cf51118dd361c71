//! The order aggregate and its status machine: the wire types of `contracts::api::orders`,
//! which the API answers with and order-service stores, so the document and the service
//! cannot disagree about an order's shape or its statuses.

pub use contracts::api::orders::{Order, OrderKind, OrderStatus};
