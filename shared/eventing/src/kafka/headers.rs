//! Writing and reading the headers the platform puts on every message (their names are in
//! [`contracts::headers`]).

use chrono::{DateTime, Utc};
pub use contracts::headers::*;
use rdkafka::message::{Header, Headers};

/// The last value of header `name` as UTF-8, if present.
pub fn get<'a, H: Headers>(headers: Option<&'a H>, name: &str) -> Option<&'a str> {
    let headers = headers?;
    headers.iter().filter(|h| h.key == name).filter_map(|h| h.value.and_then(|v| std::str::from_utf8(v).ok())).last()
}

/// The `ce_time` header as a timestamp.
pub fn event_time<H: Headers>(headers: Option<&H>) -> Option<DateTime<Utc>> {
    get(headers, CE_TIME).and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc))
}

/// A text header to put on a message.
pub fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a [u8]> {
    Header { key, value: Some(value.as_bytes()) }
}
