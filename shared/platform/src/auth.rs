//! Who is calling: the service API key between gateway and backends, and the
//! authenticated principal the gateway passes along.
//!
//! Only the gateway faces clients; it verifies their JWT and calls a backend
//! with the shared service key and the principal in headers. A backend accepts
//! API calls only with the right key (health and metrics excepted), so nobody
//! can reach it around the gateway, and it trusts the principal headers only
//! because the key came with them. Each backend decides what the principal may
//! do with its own resources.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, OptionalFromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
pub use contracts::auth::Role;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::configuration::{ConfigError, Env, Environment};
use crate::http::Problem;

/// The service key header.
pub const API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");
/// The principal's user id, set by the gateway.
pub const PRINCIPAL_ID_HEADER: HeaderName = HeaderName::from_static("x-principal-id");
/// The principal's role, set by the gateway.
pub const PRINCIPAL_ROLE_HEADER: HeaderName = HeaderName::from_static("x-principal-role");
/// How often the account's password or e-mail changed, as user-service tells the gateway
/// (on sign-in and on an account check); a token issued under another count is refused.
pub const CREDENTIALS_VERSION_HEADER: HeaderName = HeaderName::from_static("x-credentials-version");

/// The development default of `SERVICE_API_KEY`; refused in production.
pub const DEVELOPMENT_API_KEY: &str = "development-service-key-change-me";

/// The authenticated caller, as the gateway vouches for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The caller's user id.
    pub id: Uuid,
    /// The caller's role.
    pub role: Role,
}

impl Principal {
    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether the caller may act on a resource owned by `owner`: its owner or an admin.
    pub fn may_access(&self, owner: Uuid) -> bool {
        self.is_admin() || self.id == owner
    }

    /// 403 unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), Problem> {
        if self.is_admin() { Ok(()) } else { Err(forbidden()) }
    }
}

/// 403 with the platform's wording.
pub fn forbidden() -> Problem {
    Problem::new(StatusCode::FORBIDDEN, Some("you may not do this".to_owned()))
}

fn principal_from(parts: &Parts) -> Option<Principal> {
    let id = parts.headers.get(&PRINCIPAL_ID_HEADER)?.to_str().ok()?.parse().ok()?;
    let role = parts.headers.get(&PRINCIPAL_ROLE_HEADER)?.to_str().ok()?.parse().ok()?;
    Some(Principal { id, role })
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        principal_from(parts)
            .ok_or_else(|| Problem::new(StatusCode::UNAUTHORIZED, Some("authentication required".to_owned())))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(principal_from(parts))
    }
}

/// The key gateway and backends share (`SERVICE_API_KEY`).
#[derive(Clone)]
pub struct ServiceKey(SecretString);

impl std::fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceKey([redacted])")
    }
}

impl ServiceKey {
    /// Reads `SERVICE_API_KEY`; production refuses the development default and short keys.
    pub fn from_env(env: &Env, environment: Environment) -> Result<Self, ConfigError> {
        let key = env.string("SERVICE_API_KEY", DEVELOPMENT_API_KEY);
        if environment == Environment::Production && (key == DEVELOPMENT_API_KEY || key.len() < 32) {
            return Err(ConfigError::new("SERVICE_API_KEY", "production needs a random key of at least 32 characters"));
        }
        Ok(Self(SecretString::from(key)))
    }

    /// The key, for the gateway's outgoing calls.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Compares in constant time, so response timing does not reveal how much of a guess was right.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        // `subtle` compares every byte whatever the first difference; only the length leaks.
        self.0.expose_secret().as_bytes().ct_eq(candidate).into()
    }
}

/// Middleware: the API answers only callers holding the service key.
pub async fn require_service_key(key: ServiceKey, request: Request, next: Next) -> Response {
    let supplied = request.headers().get(&API_KEY_HEADER).map(|v| v.as_bytes());
    if supplied.is_some_and(|candidate| key.matches(candidate)) {
        next.run(request).await
    } else {
        Problem::new(StatusCode::UNAUTHORIZED, Some("a valid service API key is required".to_owned())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_matches_only_itself() {
        let key = ServiceKey::from_env(&Env::default(), Environment::Development).unwrap();
        assert!(key.matches(DEVELOPMENT_API_KEY.as_bytes()));
        assert!(!key.matches(b"development-service-key-change-mE"));
        assert!(!key.matches(b""));
    }

    #[test]
    fn production_refuses_the_development_key() {
        let error = ServiceKey::from_env(&Env::default(), Environment::Production).unwrap_err();
        assert_eq!(error.variable, "SERVICE_API_KEY");
        let strong = Env::from_pairs([("SERVICE_API_KEY", "k".repeat(40))]);
        assert!(ServiceKey::from_env(&strong, Environment::Production).is_ok());
    }

    #[test]
    fn only_admins_and_owners_may_access() {
        let owner = Uuid::new_v4();
        assert!(Principal { id: owner, role: Role::User }.may_access(owner));
        assert!(!Principal { id: Uuid::new_v4(), role: Role::User }.may_access(owner));
        assert!(Principal { id: Uuid::new_v4(), role: Role::Admin }.may_access(owner));
    }
}
