//! Revocation: a token outlives no account and no change of credentials. Before
//! forwarding, the gateway checks that the token's account still exists with the role
//! and the credentials version the token names, asking user-service at most once per
//! account per `AUTH_STATUS_TTL_MS` (a small cache, not a database call per request). A
//! deleted account, a changed role, or a changed password or e-mail address stops every
//! earlier token within that time (2 s by default).

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode};
use platform::auth::{CREDENTIALS_VERSION_HEADER, Principal, Role};
use platform::http::{Problem, RequestId};
use quick_cache::sync::{Cache, EntryAction, EntryResult};
use uuid::Uuid;

use super::Verified;
use crate::upstream::{Call, Service, Upstreams};

/// What user-service says of an account now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountState {
    /// It exists with this role and credentials version.
    Active(Role, u32),
    /// It was deleted.
    Gone,
}

/// The cached account states.
pub struct Accounts {
    states: Cache<Uuid, Known>,
    ttl: Duration,
}

/// An account's state, and until when it is trusted without asking again.
#[derive(Debug, Clone, Copy)]
struct Known {
    state: AccountState,
    until: Instant,
}

impl Accounts {
    /// States are kept for `ttl`, for at most `capacity` accounts (the least used go first).
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self { states: Cache::new(capacity), ttl }
    }

    /// Refuses (401) a token whose account is gone, or whose role or credentials changed
    /// since it was issued; the client signs in again.
    pub async fn check(&self, upstreams: &Upstreams, token: Verified, request_id: &RequestId) -> Result<(), Problem> {
        let principal = token.principal;
        let state = match self.states.get(&principal.id) {
            Some(known) if Instant::now() < known.until => known.state,
            // Boxed: the call to user-service is a large future, and the rare path should
            // not make every request's future that large.
            _ => Box::pin(self.refresh(upstreams, principal, request_id)).await?,
        };
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

    /// Asks user-service for an account's state that is unknown or too old. Calls that
    /// arrive while it asks wait for its answer instead of asking too; if it fails, the
    /// next of them asks. A failure is not remembered.
    async fn refresh(
        &self,
        upstreams: &Upstreams,
        principal: Principal,
        request_id: &RequestId,
    ) -> Result<AccountState, Problem> {
        let fresh = |_: &Uuid, known: &mut Known| {
            if Instant::now() < known.until { EntryAction::Retain(known.state) } else { EntryAction::ReplaceWithGuard }
        };
        let guard = match self.states.entry_async(&principal.id, fresh).await {
            EntryResult::Retained(state) => return Ok(state),
            EntryResult::Replaced(guard, _) | EntryResult::Vacant(guard) => Some(guard),
            // Not asked for by `fresh`; the state is then asked without being remembered.
            EntryResult::Removed(..) | EntryResult::Timeout => None,
        };
        let state = account_state(upstreams, principal, request_id).await?;
        if let Some(guard) = guard {
            let _ = guard.insert(Known { state, until: Instant::now() + self.ttl });
        }
        Ok(state)
    }
}

/// The account's state as user-service has it, asked as the principal itself (every
/// account may read its own record).
async fn account_state(
    upstreams: &Upstreams,
    principal: Principal,
    request_id: &RequestId,
) -> Result<AccountState, Problem> {
    let path = format!("/users/{}", principal.id);
    let call = Call {
        service: Service::Users,
        method: Method::GET,
        path: &path,
        query: None,
        headers: HeaderMap::new(),
        principal: Some(principal),
        body: Body::empty(),
    };
    let (status, headers, body) = upstreams.fetch(call, request_id).await?;
    match status {
        StatusCode::OK => {
            #[derive(serde::Deserialize)]
            struct Account {
                role: Role,
            }
            let account: Account = serde_json::from_slice(&body)
                .map_err(|e| Problem::internal(&anyhow::anyhow!(e).context("user-service answered without a role")))?;
            Ok(AccountState::Active(account.role, credentials_version(&headers)))
        }
        StatusCode::NOT_FOUND => Ok(AccountState::Gone),
        status => Err(Problem::internal(&anyhow::anyhow!("user-service answered {status} for an account check"))),
    }
}

/// The account's credentials version user-service sent; 0 (an account never changed)
/// when it sent none.
pub fn credentials_version(headers: &HeaderMap) -> u32 {
    headers.get(CREDENTIALS_VERSION_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn revoked(detail: &str) -> Problem {
    metrics::counter!("gateway_tokens_revoked_total").increment(1);
    Problem::new(StatusCode::UNAUTHORIZED, Some(detail.to_owned()))
}
