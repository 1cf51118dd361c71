//! Admission of new orders: the API takes an order only while the event chain has room
//! for it.
//!
//! Every order placed is work for the outbox relay, the broker, payment-service and the
//! way back. When the API accepts orders faster than the chain settles them, the difference
//! is a backlog that grows for as long as the burst lasts, and every order in it waits longer
//! for its payment; after the burst the chain is still busy for as long again. So the orders
//! still `pending` are bounded (`ORDER_ADMISSION_MAX_PENDING`):
//!
//! - **First come, first served.** At the bound a new order waits, in arrival order (tokio's
//!   semaphore is fair), for one to settle; after `ORDER_ADMISSION_MAX_WAIT_MS` it is a 503
//!   with `Retry-After`, before anything is stored. Clients of a busy chain slow down to
//!   what it settles instead of piling orders up behind it.
//! - **Events are never held.** A welcome order comes from `user.created`, which has already
//!   happened; it counts towards the bound but never waits for it.
//! - **Counted in process, corrected from the database.** A stored order takes a place, and a
//!   settlement this instance handles gives one back at once; a recount every second
//!   ([`RECOUNT_EVERY`]) sets the count to what the database holds, which covers what this
//!   instance does not see (other instances' orders and settlements, welcome orders,
//!   cancellations and payment timeouts). With several instances the bound is therefore
//!   approximate between recounts, never unbounded.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use platform::http::Problem;
use sqlx::PgPool;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;

/// How often the pending orders are counted in the database.
pub const RECOUNT_EVERY: Duration = Duration::from_secs(1);

/// How admission is bounded.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    /// Orders that may be pending at once, across every instance.
    pub max_pending: usize,
    /// How long a new order may wait for a place.
    pub max_wait: Duration,
}

/// The chain has no room for another order within the wait.
#[derive(Debug, thiserror::Error)]
#[error("the event chain is at capacity")]
pub struct AtCapacity;

impl From<AtCapacity> for Problem {
    fn from(_: AtCapacity) -> Self {
        metrics::counter!("order_admission_refused_total").increment(1);
        Problem::busy("too many orders are waiting for payment; retry shortly", 1)
    }
}

/// Places for pending orders.
#[derive(Debug)]
pub struct Admission {
    places: Semaphore,
    limits: AdmissionLimits,
}

/// A place taken for an order being stored: [`Place::keep`] once it is stored, or drop it
/// (the request failed) to give the place back.
#[derive(Debug)]
pub struct Place<'a>(SemaphorePermit<'a>);

impl Place<'_> {
    /// The order is stored and pending: its place is held until it settles.
    pub fn keep(self) {
        self.0.forget();
    }
}

impl Admission {
    /// Every place free, until the first recount.
    pub fn new(limits: AdmissionLimits) -> Self {
        Self { places: Semaphore::new(limits.max_pending), limits }
    }

    /// Waits, in arrival order, for a place, at most the configured wait.
    pub async fn admit(&self) -> Result<Place<'_>, AtCapacity> {
        let permit = match self.places.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                let started = std::time::Instant::now();
                let waited = tokio::time::timeout(self.limits.max_wait, self.places.acquire()).await;
                metrics::histogram!("order_admission_wait_seconds").record(started.elapsed().as_secs_f64());
                waited.map_err(|_| AtCapacity)?.map_err(|_| AtCapacity)?
            }
        };
        Ok(Place(permit))
    }

    /// `orders` left `pending` here (paid, failed, cancelled): their places are free.
    pub fn settled(&self, orders: usize) {
        let room = self.limits.max_pending.saturating_sub(self.places.available_permits());
        self.places.add_permits(orders.min(room));
    }

    /// Sets the free places from `pending`, the orders the database holds as pending.
    pub fn recount(&self, pending: usize) {
        let free = self.limits.max_pending.saturating_sub(pending);
        let available = self.places.available_permits();
        if free > available {
            self.places.add_permits(free - available);
        } else {
            self.places.forget_permits(available - free);
        }
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("orders_pending").set(pending as f64);
    }

    /// Recounts every [`RECOUNT_EVERY`] until `shutdown`.
    pub async fn recount_until(self: Arc<Self>, pool: PgPool, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(RECOUNT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        metrics::counter!("order_admission_refused_total").absolute(0);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            match count_pending(&pool).await {
                Ok(pending) => self.recount(pending),
                Err(error) => tracing::warn!(error = format!("{error:#}"), "cannot count pending orders"),
            }
        }
    }
}

async fn count_pending(pool: &PgPool) -> anyhow::Result<usize> {
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'pending'")
        .fetch_one(pool)
        .await
        .context("cannot count pending orders")?;
    Ok(usize::try_from(pending).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max_pending: usize) -> Admission {
        Admission::new(AdmissionLimits { max_pending, max_wait: Duration::from_millis(20) })
    }

    #[tokio::test]
    async fn a_kept_place_is_held_until_its_order_settles() {
        let admission = admission(1);
        admission.admit().await.expect("a free place").keep();
        assert!(admission.admit().await.is_err(), "the only place is held");
        admission.settled(1);
        assert!(admission.admit().await.is_ok(), "the settlement freed it");
    }

    #[tokio::test]
    async fn a_place_not_kept_goes_back() {
        let admission = admission(1);
        drop(admission.admit().await.expect("a free place"));
        assert!(admission.admit().await.is_ok());
    }

    #[tokio::test]
    async fn the_recount_sets_the_free_places_and_settlements_never_exceed_the_bound() {
        let admission = admission(3);
        admission.recount(3);
        assert!(admission.admit().await.is_err(), "three pending elsewhere fill the bound");
        admission.recount(1);
        assert_eq!(admission.places.available_permits(), 2);
        admission.settled(5);
        assert_eq!(admission.places.available_permits(), 3, "never more places than the bound");
    }
}
