//! What the handlers share: in a module of its own, so routes and event handlers
//! depend on it and `startup` wires it, without either importing the other.

use std::sync::Arc;

use eventing::outbox::RelayWake;
use sqlx::PgPool;

use crate::admission::Admission;
use crate::origin::Producer;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The orders database (and its outbox).
    pub pool: PgPool,
    /// user-service, asked whether it published the user events acted on.
    pub users: Arc<Producer>,
    /// Places for pending orders: how many more the chain has room for.
    pub admission: Arc<Admission>,
    /// Wakes the outbox relay after a commit that wrote events.
    pub relay: RelayWake,
}
