//! Order domain types: parsed once at the edge, trusted everywhere after.

mod new_order;
mod order;
mod product_id;

pub use new_order::{CreateOrderRequest, NewOrder, NewOrderItem, WELCOME_ITEM};
pub use order::{Order, OrderKind, OrderStatus};
pub use product_id::ProductId;
