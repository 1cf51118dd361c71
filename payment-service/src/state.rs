//! What the handlers share: in a module of its own, so routes and event handlers
//! depend on it and `startup` wires it, without either importing the other.

use std::sync::Arc;

use eventing::outbox::RelayWake;
use sqlx::PgPool;

use crate::configuration::PaymentSettings;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The payments and the outbox that announces them.
    pub pool: PgPool,
    /// The simulated provider's behaviour.
    pub payment: Arc<PaymentSettings>,
    /// Wakes the outbox relay after a commit that wrote events.
    pub relay: RelayWake,
}
