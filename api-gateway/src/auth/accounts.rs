//! Revocation: a token outlives no account and no change of credentials. Before
//! forwarding, the gateway checks that the token's account still exists with the role
//! and the credentials version the token names, asking user-service at most once per
//! account per `AUTH_STATUS_TTL_MS` (a small cache, not a database call per request). A
//! deleted account, a changed role, or a changed password or e-mail address stops every
//! earlier token within that time (2 s by default).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode};
use moka::future::Cache;
use platform::auth::{CREDENTIALS_VERSION_HEADER, Principal, Role};
use platform::http::{Problem, RequestId};
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
            .try_get_with(principal.id, account_state(upstreams, principal, request_id))
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
