//! Authentication at the edge: tokens the gateway issues and checks, the
//! extractor that turns a bearer token into a principal, the check that its
//! account still exists with that role, and rate limits.

mod accounts;
mod authenticated;
mod jwt;
mod rate_limit;
mod verified;

pub use accounts::{AccountState, Accounts, credentials_version};
pub use authenticated::{Authenticated, Gatekeeping};
pub use jwt::{Claims, TokenError, Tokens, Verified};
pub use rate_limit::{RateLimits, limit_by_client_address};
