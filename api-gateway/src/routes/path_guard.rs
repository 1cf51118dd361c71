//! Refuses request paths that could mean something else further in: dot segments
//! (plain or percent-encoded), encoded slashes and backslashes, backslashes, empty
//! segments and encoded NUL. Such a path is a 400 (the platform's edge, given [`refusal`]
//! as its path policy) before authentication or forwarding sees it, so no later stage has
//! to agree with this one on how to read it.

/// Why a raw path is refused, or `None` when it is plain. Runs on every request, so it
/// reads the path in place, without a lowered or decoded copy, and most paths in one pass.
pub fn refusal(raw_path: &str) -> Option<&'static str> {
    if is_plain(raw_path) { None } else { rules(raw_path) }
}

/// True when no rule can apply: no `%` (so nothing encoded), no backslash, and no `/`
/// followed by `.` or `/` (every segment starts after a `/`, so a dot segment starts with
/// `/.` and an empty one before the last is a `//`). The search for `%` and `\` reads the
/// path a vector at a time, and only the few slashes are looked at one by one.
fn is_plain(raw_path: &str) -> bool {
    let bytes = raw_path.as_bytes();
    memchr::memchr2(b'%', b'\\', bytes).is_none()
        && !memchr::memchr_iter(b'/', bytes).any(|at| matches!(bytes.get(at + 1), Some(b'.' | b'/')))
}

/// Every refusal, in the order its reasons are given.
fn rules(raw_path: &str) -> Option<&'static str> {
    if raw_path.contains('\\') || contains_encoded(raw_path, "5c") {
        return Some("backslashes are not allowed in the path");
    }
    if contains_encoded(raw_path, "2f") {
        return Some("encoded slashes are not allowed in the path");
    }
    if contains_encoded(raw_path, "00") {
        return Some("NUL is not allowed in the path");
    }
    let segments = raw_path.split('/').skip(1);
    let last = segments.clone().count().saturating_sub(1);
    for (index, segment) in segments.enumerate() {
        if is_dot_segment(segment) {
            return Some("dot segments are not allowed in the path");
        }
        if segment.is_empty() && index != last {
            return Some("empty segments are not allowed in the path");
        }
    }
    None
}

/// Whether `path` holds `%` followed by the hex digits `code` (lowercase), in any case.
fn contains_encoded(path: &str, code: &str) -> bool {
    path.match_indices('%').any(|(at, _)| path.get(at + 1..at + 3).is_some_and(|hex| hex.eq_ignore_ascii_case(code)))
}

/// `.` or `..`, each dot plain or encoded (`%2e`, `%2E`).
fn is_dot_segment(segment: &str) -> bool {
    let mut rest = segment;
    let mut dots = 0;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            rest = after;
        } else if rest.get(..3).is_some_and(|code| code.eq_ignore_ascii_case("%2e")) {
            rest = &rest[3..];
        } else {
            return false;
        }
        dots += 1;
    }
    matches!(dots, 1 | 2)
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

    /// Every path of up to five characters over the bytes the rules look at: whatever the
    /// one-pass check lets through, the rules let through too.
    #[test]
    fn the_one_pass_check_passes_only_what_the_rules_pass() {
        let alphabet = ["/", ".", "%", "2", "e", "E", "f", "5", "c", "0", "a", "\\"];
        let mut paths = vec![String::new()];
        for _ in 0..5 {
            let longer: Vec<String> =
                paths.iter().flat_map(|path| alphabet.iter().map(move |c| format!("{path}{c}"))).collect();
            for path in &longer {
                let path = format!("/{path}");
                if super::is_plain(&path) {
                    assert_eq!(super::rules(&path), None, "{path} passed one pass but not the rules");
                }
            }
            paths = longer;
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
            "/api/users/%2E.",
            "/api/users/x%5Cy",
            "/api/users/x%2F",
            "/api/users/%2e%2E",
        ] {
            assert!(refusal(path).is_some(), "{path} passed");
        }
    }
}
