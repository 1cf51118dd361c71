//! payment-service's tables.

pub mod payments;
