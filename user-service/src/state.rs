//! What the handlers share: in a module of its own, so routes and event handlers
//! depend on it and `startup` wires it, without either importing the other.

use eventing::outbox::RelayWake;
use sqlx::PgPool;

use crate::hashing::Hasher;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The users database (and its outbox).
    pub pool: PgPool,
    /// Password hashing, with bounded admission.
    pub hasher: Hasher,
    /// Wakes the outbox relay after a commit that wrote events.
    pub relay: RelayWake,
}
