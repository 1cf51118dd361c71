//! The gateway when its backends are down, and its own bad-input handling.

use platform::auth::Role;

use crate::helpers::{assert_problem, raw_request, spawn_gateway, token_for};

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_that_is_down_is_a_502_problem_with_the_request_id() {
    // Port 1 refuses connections.
    let gateway = spawn_gateway("http://127.0.0.1:1", "http://127.0.0.1:1").await;
    let token = token_for(Role::Admin);
    let response = gateway
        .client
        .get(gateway.url("/api/users"))
        .bearer_auth(&token)
        .header("x-request-id", "down-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "down-1");
    let body = assert_problem(response, 502).await;
    assert_eq!(body["detail"], "user-service is unavailable");
    let orders = gateway
        .client
        .post(gateway.url("/api/orders"))
        .bearer_auth(&token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_problem(orders, 502).await;
    let login = gateway.client.post(gateway.url("/api/auth/login")).json(&serde_json::json!({})).send().await.unwrap();
    assert_problem(login, 502).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_is_ready_on_its_own_and_answers_unknown_routes_with_404() {
    let gateway = spawn_gateway("http://127.0.0.1:1", "http://127.0.0.1:1").await;
    gateway.wait_ready().await;
    assert_problem(gateway.client.get(gateway.url("/api/unknown")).send().await.unwrap(), 404).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_metrics_are_served_on_the_admin_listener_only() {
    let gateway = spawn_gateway("http://127.0.0.1:1", "http://127.0.0.1:1").await;
    assert_ne!(gateway.admin_address, gateway.address);
    for path in ["/metrics", "/health/live", "/health/ready"] {
        assert_problem(gateway.client.get(gateway.url(path)).send().await.unwrap(), 404).await;
        let admin = gateway.client.get(gateway.admin_url(path)).send().await.unwrap();
        assert_eq!(admin.status(), 200, "{path} on the admin listener");
    }
    let metrics = gateway.client.get(gateway.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("http_connections_open"), "the admin listener serves the gateway's metrics");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_body_is_413() {
    let gateway = spawn_gateway("http://127.0.0.1:1", "http://127.0.0.1:1").await;
    let body = vec![b'a'; 2 * 1024 * 1024];
    let response = gateway
        .client
        .post(gateway.url("/api/users"))
        .bearer_auth(token_for(Role::Admin))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_problem(response, 413).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_auth_routes_have_the_same_body_limit_and_error_shape() {
    // Backends down: a body within the limit would be forwarded and fail with 502.
    let gateway = spawn_gateway("http://127.0.0.1:1", "http://127.0.0.1:1").await;
    let json = [("Content-Type", "application/json".to_owned())];
    for route in ["/api/auth/login", "/api/auth/register"] {
        for size in [1_500_000, 10 * 1024 * 1024] {
            let (status, answer) = raw_request(&gateway.address, "POST", route, &json, &vec![b' '; size]).await;
            assert_eq!(status, 413, "{route} with {size} bytes: {answer}");
            assert!(answer.contains("application/problem+json"), "{route} with {size} bytes: {answer}");
        }
    }
}

/// A backend that answers the gateway's account check and says how many body bytes it got.
async fn counting_backend() -> String {
    use axum::routing::{get, post};
    let app = axum::Router::new()
        .route("/users/{id}", get(|| async { axum::Json(serde_json::json!({"role": "admin"})) }))
        .route(
            "/users",
            post(|body: axum::body::Bytes| async move {
                (axum::http::StatusCode::CREATED, axum::Json(serde_json::json!({"received": body.len()})))
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::disable());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// A body of `size` bytes sent in 64 KiB chunks, with no declared length.
fn chunked(size: usize) -> reqwest::Body {
    let chunks = (0..size.div_ceil(65_536)).map(move |i| {
        let chunk = axum::body::Bytes::from(vec![b' '; 65_536.min(size - i * 65_536)]);
        Ok::<_, std::io::Error>(http_body::Frame::data(chunk))
    });
    reqwest::Body::wrap(http_body_util::StreamBody::new(futures::stream::iter(chunks)))
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_stream_through_whole_and_one_past_the_limit_without_a_length_is_413() {
    let backend = counting_backend().await;
    let gateway = spawn_gateway(&backend, &backend).await;
    let token = token_for(Role::Admin);
    let send = |body: reqwest::Body| {
        let request = gateway.client.post(gateway.url("/api/users")).bearer_auth(&token);
        request.header("content-type", "application/json").body(body).send()
    };
    let within = send(chunked(1_000_000)).await.unwrap();
    assert_eq!(within.status(), 201);
    let answer: serde_json::Value = within.json().await.unwrap();
    assert_eq!(answer["received"], 1_000_000, "the backend got the whole streamed body");
    assert_problem(send(chunked(3 * 1024 * 1024)).await.unwrap(), 413).await;
    // The gateway and its pooled connection to the backend both still work.
    let after = send(chunked(10)).await.unwrap();
    assert_eq!(after.status(), 201);
}
