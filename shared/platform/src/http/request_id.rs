//! Request ids: keep a sane client-supplied `X-Request-Id`, otherwise make a UUID.
//!
//! The id is put back on the request (so proxies and handlers see one value),
//! stored as a [`RequestId`] extension for handlers, and echoed on the response.

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use uuid::Uuid;

/// The header carrying the request id, on HTTP and on Kafka messages.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static(contracts::headers::REQUEST_ID);

/// The id of the request being handled.
///
/// Held as the header value it travels in: checked once, when made, and shared by every
/// copy (the request's extension, the handler's, the header on the request, on its answer
/// and on a call to a backend), so a copy allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

const NIL: HeaderValue = HeaderValue::from_static("00000000-0000-0000-0000-000000000000");

impl RequestId {
    /// A fresh random id.
    pub fn generate() -> Self {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        Uuid::new_v4().hyphenated().encode_lower(&mut text);
        // A hyphenated UUID is always a valid header value: the nil UUID only keeps this
        // path free of panics.
        Self(HeaderValue::from_maybe_shared(Bytes::from_owner(text)).unwrap_or(NIL))
    }

    /// Accepts a client- or message-supplied id if it is safe to log and forward:
    /// 1 to 128 characters of `[A-Za-z0-9._:-]`. Anything else could forge log
    /// lines or bloat every downstream header, so it is replaced.
    pub fn parse(candidate: &str) -> Option<Self> {
        let ok = (1..=128).contains(&candidate.len())
            && candidate.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if !ok {
            return None;
        }
        HeaderValue::from_maybe_shared(Bytes::copy_from_slice(candidate.as_bytes())).ok().map(Self)
    }

    /// Parses `candidate`, or generates a fresh id when it is missing or unsafe.
    pub fn parse_or_generate(candidate: Option<&str>) -> Self {
        candidate.and_then(Self::parse).unwrap_or_else(Self::generate)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only the characters `parse` accepts, or a UUID's, are ever stored: this cannot fail.
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value, shared rather than copied.
    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
        let id = RequestId::parse_or_generate(Some("demo-request-123"));
        assert_eq!(id.as_str(), "demo-request-123");
        assert_eq!(id.to_string(), "demo-request-123");
        assert_eq!(id.header_value(), "demo-request-123");
    }

    #[test]
    fn replaces_an_unsafe_or_missing_id() {
        for bad in [Some("a\nb"), Some(""), Some(&*"x".repeat(129)), Some("<script>"), None] {
            let id = RequestId::parse_or_generate(bad);
            assert!(Uuid::parse_str(id.as_str()).is_ok(), "{bad:?} gave {id}");
            assert_eq!(id.header_value(), id.as_str());
        }
    }
}
