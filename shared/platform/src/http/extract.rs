//! Extractors that turn every kind of bad input into a 4xx problem+json.
//!
//! axum's own extractors answer with `text/plain` (and 422 for JSON that does
//! not fit the type); these wrap them so a client always gets the one shape.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::Problem;

/// A raw body within the router's `DefaultBodyLimit`; an oversized one is a 413 problem.
/// (Written out: `#[derive(FromRequest)]`'s `via` wants a wrapper like `Json<T>`, and
/// `Bytes` is none.)
#[derive(Debug, Clone, Default)]
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(Bytes::from_request(request, state).await?))
    }
}

impl From<BytesRejection> for Problem {
    fn from(rejection: BytesRejection) -> Self {
        let otherwise = Problem::new(rejection.status(), Some(rejection.body_text()));
        super::body_problem(&rejection, otherwise)
    }
}

/// A JSON body; a malformed, mistyped or oversized body is a 400, 413 or 415 problem.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Some("Expected request with `Content-Type: application/json`".to_owned()),
            ));
        }
        let ApiBytes(bytes) = ApiBytes::from_request(request, state).await?;
        if has_nul_escape(&bytes) {
            return Err(refuse_nul());
        }
        Json::<T>::from_bytes(&bytes).map(|Json(value)| Self(value)).map_err(|rejection| json_problem(&rejection))
    }
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(content_type) = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// PostgreSQL cannot store NUL in text, so it is refused wherever text arrives, as a 400.
pub(super) fn refuse_nul() -> Problem {
    Problem::bad_request("text must not contain the NUL character")
}

/// Whether a JSON document holds the escape `\u0000` (a NUL in a string). A raw 0x00 byte is
/// already a syntax error; an escaped backslash followed by `u0000` is harmless text.
fn has_nul_escape(bytes: &[u8]) -> bool {
    bytes.windows(6).enumerate().any(|(start, window)| {
        window == b"\\u0000" && bytes[..start].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0
    })
}

/// Whether a raw (still percent-encoded) path or query carries an encoded NUL.
pub(super) fn has_encoded_nul(raw: &str) -> bool {
    raw.as_bytes().windows(3).any(|window| window.eq_ignore_ascii_case(b"%00"))
}

fn json_problem(rejection: &JsonRejection) -> Problem {
    let status = match rejection {
        // JSON that parses but does not fit the type (missing field, wrong type) is a client
        // error like any other: 400, not axum's 422.
        JsonRejection::JsonDataError(_) | JsonRejection::JsonSyntaxError(_) => StatusCode::BAD_REQUEST,
        other => other.status(),
    };
    Problem::new(status, Some(rejection.body_text()))
}

/// Path parameters; a malformed one (say, an id that is not a UUID) is a 400 problem.
/// (An encoded NUL never gets here: the edge refuses it first.)
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(Path), rejection(Problem))]
pub struct ApiPath<T>(pub T);

impl From<PathRejection> for Problem {
    fn from(rejection: PathRejection) -> Self {
        Problem::bad_request(rejection.body_text())
    }
}

/// Query parameters; malformed ones are a 400 problem.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(Query), rejection(Problem))]
pub struct ApiQuery<T>(pub T);

impl From<QueryRejection> for Problem {
    fn from(rejection: QueryRejection) -> Self {
        Problem::bad_request(rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::{has_encoded_nul, has_nul_escape};

    #[test]
    fn nul_is_found_however_it_is_spelt_and_only_then() {
        assert!(has_nul_escape(br#"{"email":"\u0000"}"#));
        assert!(has_nul_escape(br#"{"email":"a\\\u0000"}"#), "an escaped backslash, then a NUL");
        assert!(!has_nul_escape(br#"{"email":"a\\u0000"}"#), "an escaped backslash, then text");
        assert!(!has_nul_escape(br#"{"email":"u0000"}"#));
        assert!(has_encoded_nul("a=%00") && has_encoded_nul("/users/x%00y"));
        assert!(!has_encoded_nul("a=%200"));
    }
}
