//! Probes, metrics and request ids.

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread")]
async fn readiness_checks_postgres_and_kafka_for_real() {
    let app = spawn_app().await;
    let response = app.client().get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["postgres"]["status"], "up");
    assert_eq!(body["checks"]["kafka"]["status"], "up");
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_follows_the_database_but_liveness_does_not() {
    let app = spawn_app().await;
    let admin = sqlx::PgPool::connect(&format!("{}/postgres", testkit::server_url())).await.unwrap();
    let database = &app.database_name;
    // An outage as the service sees it: no new connections, existing ones cut.
    sqlx::query(&format!(r#"ALTER DATABASE "{database}" ALLOW_CONNECTIONS false"#)).execute(&admin).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(database)
        .execute(&admin)
        .await
        .unwrap();

    let ready = app.client().get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["postgres"]["status"], "down");
    assert_eq!(body["checks"]["kafka"]["status"], "up");
    assert_eq!(app.client().get(app.url("/health/live")).send().await.unwrap().status(), 200);

    sqlx::query(&format!(r#"ALTER DATABASE "{database}" ALLOW_CONNECTIONS true"#)).execute(&admin).await.unwrap();
    app.server.wait_ready().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_by_route_template() {
    let app = spawn_app().await;
    let id = uuid::Uuid::new_v4();
    let response = app.client().get(app.url(&format!("/users/{id}"))).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let metrics = app.client().get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("http_requests_total{")
            && l.contains(r#"route="/users/{id}""#)
            && l.contains(r#"status="404""#)),
        "{metrics}"
    );
    assert!(!metrics.contains(&id.to_string()), "raw paths must never become labels");
    assert!(metrics.contains("http_request_duration_seconds_bucket"), "latency is a histogram");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_request_id_is_kept_and_a_missing_one_is_made() {
    let app = spawn_app().await;
    let kept =
        app.client().get(app.url("/health/live")).header("x-request-id", "demo-request-123").send().await.unwrap();
    assert_eq!(kept.headers()["x-request-id"], "demo-request-123");
    let made = app.client().get(app.url("/health/live")).send().await.unwrap();
    let id = made.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_routes_and_methods_are_problems() {
    let app = spawn_app().await;
    crate::helpers::assert_problem(app.client().get(app.url("/nope")).send().await.unwrap(), 404).await;
    crate::helpers::assert_problem(app.client().delete(app.url("/users")).send().await.unwrap(), 405).await;
}
