//! Paths an attacker would try through the gateway, sent byte for byte (an HTTP client
//! library would resolve the dot segments before sending them). None reaches a
//! backend's internal routes: each is a 400 or 404 problem, or 405 with `Allow`.

use crate::helpers::{Platform, raw_request, spawn_gateway, token_for};

async fn raw(address: &str, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let headers = [("Authorization", format!("Bearer {token}")), ("Content-Type", "application/json".to_owned())];
    raw_request(address, method, path, &headers, body.as_bytes()).await
}

/// Every spelling of "one level up, then an internal route" that we know of.
fn hostile_paths() -> Vec<String> {
    let ups = ["..", "%2e%2e", "%2E%2E", ".%2e", "%2e.", "%2e%2E"];
    let internals = ["auth/verify", "auth/register", "metrics", "health/ready"];
    let mut paths = Vec::new();
    for prefix in ["/api/users", "/api/orders"] {
        for up in ups {
            for internal in internals {
                paths.push(format!("{prefix}/{up}/{internal}"));
                paths.push(format!("{prefix}/x/{up}/{up}/{internal}"));
            }
        }
        paths.push(format!("{prefix}/..%2fmetrics"));
        paths.push(format!("{prefix}/%2e%2e%2fmetrics"));
        paths.push(format!("{prefix}/..%5cmetrics"));
        paths.push(format!("{prefix}/..\\metrics"));
        paths.push(format!("{prefix}//metrics"));
        paths.push(format!("{prefix}/%00"));
    }
    paths
}

#[tokio::test(flavor = "multi_thread")]
async fn no_spelling_of_a_dot_segment_reaches_a_backend_route() {
    let platform = Platform::start("0").await;
    let (_, token) = platform.register(&format!("{}@example.com", uuid::Uuid::new_v4())).await;
    let credential = r#"{"email":"admin@example.com","password":"wrong-password-1"}"#;
    for path in hostile_paths() {
        for method in ["GET", "POST"] {
            let (status, answer) = raw(&platform.gateway.address, method, &path, &token, credential).await;
            assert_eq!(status, 400, "{method} {path} answered {answer}");
            assert!(answer.contains("application/problem+json"), "{method} {path}: {answer}");
            assert!(!answer.contains("process_"), "{method} {path} leaked metrics: {answer}");
        }
    }
    // Without the dot segment it is just a route that does not exist.
    let (status, _) = raw(&platform.gateway.address, "POST", "/api/users/auth/verify", &token, credential).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_route_table_is_forwarded() {
    // Backends that refuse connections: anything forwarded would be a 502, so a 4xx proves it stayed at the edge.
    let gateway = spawn_gateway("http://127.0.0.1:1", "http://127.0.0.1:1").await;
    let token = token_for(platform::auth::Role::Admin);
    let id = uuid::Uuid::new_v4();
    for (method, path, status) in [
        ("GET", "/api/users/auth", 400),
        ("POST", "/api/users/not-a-uuid", 405),
        ("GET", "/api/users/not-a-uuid", 400),
        ("GET", &*format!("/api/users/{id}/auth/verify"), 404),
        ("GET", "/api/metrics", 404),
        ("GET", "/api/health/ready", 404),
        ("GET", "/api/orders/stats/x", 404),
        ("PATCH", "/api/users", 405),
        ("FOO", "/api/users", 405),
    ] {
        let (got, answer) = raw(&gateway.address, method, path, &token, "").await;
        assert_eq!(got, status, "{method} {path}: {answer}");
        assert!(answer.contains("application/problem+json"), "{method} {path}: {answer}");
        if status == 405 {
            assert!(answer.to_ascii_lowercase().contains("\r\nallow: "), "{method} {path} without Allow: {answer}");
        }
    }
    // Table routes are forwarded (and fail only because the backend is down).
    for (method, path) in [
        ("GET", "/api/users".to_owned()),
        ("GET", format!("/api/orders/{id}")),
        ("GET", "/api/orders/stats".to_owned()),
    ] {
        let (got, answer) = raw(&gateway.address, method, &path, &token, "").await;
        assert_eq!(got, 502, "{method} {path}: {answer}");
    }
}
