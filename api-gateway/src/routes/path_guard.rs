//! Refuses request paths that could mean something else further in: dot segments
//! (plain or percent-encoded), encoded slashes and backslashes, backslashes, empty
//! segments and encoded NUL. Such a path is a 400 (the platform's edge, given [`refusal`]
//! as its path policy) before authentication or forwarding sees it, so no later stage has
//! to agree with this one on how to read it.

/// Why a raw path is refused, or `None` when it is plain.
pub fn refusal(raw_path: &str) -> Option<&'static str> {
    let lower = raw_path.to_ascii_lowercase();
    if lower.contains('\\') || lower.contains("%5c") {
        return Some("backslashes are not allowed in the path");
    }
    if lower.contains("%2f") {
        return Some("encoded slashes are not allowed in the path");
    }
    if lower.contains("%00") {
        return Some("NUL is not allowed in the path");
    }
    let segments: Vec<&str> = lower.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (index, segment) in segments.iter().enumerate() {
        // `%2e` is `.`: decode just that, the one encoding that turns a segment into a dot segment.
        let decoded = segment.replace("%2e", ".");
        if decoded == "." || decoded == ".." {
            return Some("dot segments are not allowed in the path");
        }
        // A trailing slash is harmless (routing 404s it); an empty segment inside is not.
        if segment.is_empty() && index != last {
            return Some("empty segments are not allowed in the path");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::refusal;

    #[test]
    fn plain_paths_pass() {
        for path in ["/api", "/api/users", "/api/users/", "/api/orders/stats", "/api/docs/openapi.json", "/api/a.b"] {
            assert_eq!(refusal(path), None, "{path}");
        }
    }

    #[test]
    fn every_spelling_of_a_way_out_is_refused() {
        for path in [
            "/api/users/../metrics",
            "/api/users/..",
            "/api/users/./x",
            "/api/users/%2e%2e/auth/verify",
            "/api/users/%2E%2E/auth/verify",
            "/api/users/.%2e/auth/verify",
            "/api/users/%2e./auth/verify",
            "/api/users/%2e",
            "/api/users/x%2f..%2fauth",
            "/api/users/x%2F..",
            "/api/users/..\\auth",
            "/api/users/%5c..%5cauth",
            "/api/users//auth",
            "/api/users/%00",
        ] {
            assert!(refusal(path).is_some(), "{path} passed");
        }
    }
}
