//! Request ids: keep a sane client-supplied `X-Request-Id`, otherwise make a UUID.
//!
//! The id is put back on the request (so proxies and handlers see one value),
//! stored as a [`RequestId`] extension for handlers, and echoed on the response.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::HeaderName;
use axum::http::request::Parts;
use uuid::Uuid;

/// The header carrying the request id, on HTTP and on Kafka messages.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static(contracts::headers::REQUEST_ID);

/// The id of the request being handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(Uuid::new_v4().to_string())
    }

    /// Accepts a client- or message-supplied id if it is safe to log and forward:
    /// 1 to 128 characters of `[A-Za-z0-9._:-]`. Anything else could forge log
    /// lines or bloat every downstream header, so it is replaced.
    pub fn parse(candidate: &str) -> Option<Self> {
        let ok = (1..=128).contains(&candidate.len())
            && candidate.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        ok.then(|| Self(candidate.to_owned()))
    }

    /// Parses `candidate`, or generates a fresh id when it is missing or unsafe.
    pub fn parse_or_generate(candidate: Option<&str>) -> Self {
        candidate.and_then(Self::parse).unwrap_or_else(Self::generate)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned().unwrap_or_else(Self::generate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_sane_client_id() {
        assert_eq!(RequestId::parse_or_generate(Some("demo-request-123")).as_str(), "demo-request-123");
    }

    #[test]
    fn replaces_an_unsafe_or_missing_id() {
        for bad in [Some("a\nb"), Some(""), Some(&*"x".repeat(129)), Some("<script>"), None] {
            let id = RequestId::parse_or_generate(bad);
            assert!(Uuid::parse_str(id.as_str()).is_ok(), "{bad:?} gave {id}");
        }
    }
}
