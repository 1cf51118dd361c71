//! Authentication at the edge: tokens the gateway issues and checks, the
//! middleware that turns a bearer token into a principal, the check that its
//! account still exists with that role, and rate limits.

mod accounts;
mod jwt;
mod middleware;
mod rate_limit;

pub use accounts::{AccountState, Accounts, credentials_version};
pub use jwt::{Claims, TokenError, Tokens, Verified};
pub use middleware::authenticate;
pub use rate_limit::{RateLimits, limit_by_client_address, limit_by_principal};
