//! SQL over the orders database; functions take any executor so callers choose the transaction.

pub mod known_users;
pub mod orders;
