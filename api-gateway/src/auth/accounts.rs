//! Revocation: a token outlives no account and no change of credentials. Before
//! forwarding, the gateway checks that the token's account still exists with the role
//! and the credentials version the token names, asking user-service at most once per
//! account per `AUTH_STATUS_TTL_MS` (a small cache, not a database call per request). A
//! deleted account, a changed role, or a changed password or e-mail address stops every
//! earlier token within that time (2 s by default).

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use moka::future::Cache;
use platform::auth::Role;
use platform::http::{Problem, RequestId};
use uuid::Uuid;

use super::Verified;
use crate::routes::Upstreams;

/// What user-service says of an account now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountState {
    /// It exists with this role and credentials version.
    Active(Role, u32),
    /// It was deleted.
    Gone,
}

/// The cached account states.
#[derive(Clone)]
pub struct Accounts {
    cache: Cache<Uuid, AccountState>,
}

impl Accounts {
    /// States are kept for `ttl`, for at most `capacity` accounts.
    pub fn new(ttl: Duration, capacity: u64) -> Self {
        Self { cache: Cache::builder().time_to_live(ttl).max_capacity(capacity).build() }
    }

    /// Refuses (401) a token whose account is gone, or whose role or credentials changed
    /// since it was issued; the client signs in again.
    pub async fn check(&self, upstreams: &Upstreams, token: Verified, request_id: &RequestId) -> Result<(), Problem> {
        let principal = token.principal;
        let state = self
            .cache
            .try_get_with(principal.id, upstreams.account_state(principal, request_id))
            .await
            .map_err(|error: Arc<Problem>| (*error).clone())?;
        match state {
            AccountState::Active(role, _) if role != principal.role => {
                Err(revoked("the account's role changed; sign in again"))
            }
            AccountState::Active(_, version) if version != token.credentials_version => {
                Err(revoked("the account's password or e-mail address changed; sign in again"))
            }
            AccountState::Active(..) => Ok(()),
            AccountState::Gone => Err(revoked("the account no longer exists")),
        }
    }
}

fn revoked(detail: &str) -> Problem {
    metrics::counter!("gateway_tokens_revoked_total").increment(1);
    Problem::new(StatusCode::UNAUTHORIZED, Some(detail.to_owned()))
}
