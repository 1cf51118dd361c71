//! SQL over the users database; functions take any executor so callers choose the transaction.

pub mod outbox;
pub mod users;
