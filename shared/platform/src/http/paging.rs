//! Paging parameters, checked the same way on every list.

use super::FieldError;

/// Page size when the client names none.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page size.
pub const MAX_LIMIT: i64 = 100;

/// A checked page: `limit` 1 to 100 (default 50), `offset` not negative (default 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Rows per page.
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
}

impl Page {
    /// Checks the raw query values, adding a field error for each bad one to `errors`.
    pub fn check(limit: Option<i64>, offset: Option<i64>, errors: &mut Vec<FieldError>) -> Self {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        let offset = offset.unwrap_or(0);
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.push(FieldError::new("limit", format!("must be 1 to {MAX_LIMIT}")));
        }
        if offset < 0 {
            errors.push(FieldError::new("offset", "must not be negative"));
        }
        Self { limit, offset }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        let mut errors = Vec::new();
        assert_eq!(Page::check(None, None, &mut errors), Page { limit: 50, offset: 0 });
        Page::check(Some(0), Some(-1), &mut errors);
        Page::check(Some(101), None, &mut errors);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["limit", "offset", "limit"]);
    }
}
