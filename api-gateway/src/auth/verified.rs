//! Tokens already verified, remembered until they expire, so a client's every call does
//! not repeat the signature check and the parsing of its header and claims (a tenth of the
//! gateway's CPU time a forwarded read, measured), as Envoy's `jwt_cache_config` does.
//!
//! Only a token that passed every check is remembered, under the SHA-256 digest of its
//! text: the cache holds no bearer token a memory dump could replay, and a token differing
//! in any byte (another signature, say) is another key and gets the full check. A
//! remembered token is still refused from the second its `exp` passes.

use quick_cache::sync::Cache;
use sha2::{Digest, Sha256};

use super::Verified;

/// How many tokens are remembered at most (about 100 bytes each): the ones in use by the
/// busiest clients stay; a token pushed out is verified again on its next call.
const CAPACITY: usize = 4096;

/// A token's key: the SHA-256 digest of its text.
pub(super) type TokenDigest = [u8; 32];

/// What a remembered token says, and until when.
#[derive(Debug, Clone, Copy)]
struct Remembered {
    verified: Verified,
    /// The token's `exp` (Unix seconds): valid through this second, as the full check has it.
    expires_at: i64,
}

/// See the module's documentation.
pub(super) struct VerifiedTokens {
    entries: Cache<TokenDigest, Remembered>,
}

impl VerifiedTokens {
    pub(super) fn new() -> Self {
        Self { entries: Cache::new(CAPACITY) }
    }

    /// The key `token` is remembered under.
    pub(super) fn digest(token: &str) -> TokenDigest {
        Sha256::digest(token.as_bytes()).into()
    }

    /// What the token with this digest says, if it was verified and has not expired at `now`.
    pub(super) fn get(&self, digest: &TokenDigest, now: i64) -> Option<Verified> {
        self.entries.get(digest).filter(|known| now <= known.expires_at).map(|known| known.verified)
    }

    /// Remembers a token that passed every check, until `expires_at`.
    pub(super) fn remember(&self, digest: TokenDigest, verified: Verified, expires_at: i64) {
        self.entries.insert(digest, Remembered { verified, expires_at });
    }
}
