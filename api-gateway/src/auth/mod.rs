//! Authentication at the edge: tokens the gateway issues and checks, the
//! middleware that turns a bearer token into a principal, and rate limits.

mod jwt;
mod middleware;
mod rate_limit;

pub use jwt::{Claims, TokenError, Tokens};
pub use middleware::authenticate;
pub use rate_limit::{RateLimits, limit_by_client_address, limit_by_principal};
