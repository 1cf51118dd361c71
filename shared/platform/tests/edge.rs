//! The edge every request passes, tried on a real server: request ids, a panicking
//! handler, path refusals, the check of each answer, and a handler whose client hangs up.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should fail loudly

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode};
use axum::routing::get;
use platform::configuration::{Env, HttpSettings};
use platform::http::{AnswerCheck, RequestId, ServerBuilder};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

/// Every answer the check saw: method, route, status.
#[derive(Default)]
struct Seen(Mutex<Vec<(Method, String, u16)>>);

impl AnswerCheck for Seen {
    fn check(&self, method: &Method, route: &str, status: StatusCode) {
        self.0.lock().unwrap().push((method.clone(), route.to_owned(), status.as_u16()));
    }
}

/// Refuses any path with `forbidden` in it (a stand-in for a service's own policy).
fn no_forbidden(path: &str) -> Option<&'static str> {
    path.contains("forbidden").then_some("forbidden paths are refused")
}

async fn panics() -> &'static str {
    panic!("a handler bug")
}

struct Served {
    base: String,
    seen: Arc<Seen>,
    finished: Arc<AtomicBool>,
}

/// A server with a route that echoes its request id, one that panics, one that takes a
/// while and then marks itself finished, and the test's path policy and answer check.
async fn serve() -> Served {
    let settings = HttpSettings::from_env(&Env::from_pairs([("PORT", "0")]), 0).unwrap();
    let finished = Arc::new(AtomicBool::new(false));
    let flag = finished.clone();
    let api = Router::new()
        .route("/items/{id}", get(|id: RequestId| async move { id.to_string() }))
        .route("/panics", get(panics))
        .route(
            "/slow",
            get(move || async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                flag.store(true, Ordering::SeqCst);
                "done"
            }),
        );
    let seen = Arc::new(Seen::default());
    let server =
        ServerBuilder::new(api).path_policy(no_forbidden).answer_check(seen.clone()).bind(&settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", server.port());
    tokio::spawn(server.run_until(std::future::pending()));
    Served { base, seen, finished }
}

#[tokio::test]
async fn a_sane_request_id_is_kept_and_echoed_and_an_unsafe_one_replaced() {
    let served = serve().await;
    let client = reqwest::Client::new();
    let kept =
        client.get(format!("{}/items/1", served.base)).header("x-request-id", "edge-test-1").send().await.unwrap();
    assert_eq!(kept.headers()["x-request-id"], "edge-test-1");
    assert_eq!(kept.text().await.unwrap(), "edge-test-1", "the handler sees the same id");

    let replaced =
        client.get(format!("{}/items/1", served.base)).header("x-request-id", "<script>").send().await.unwrap();
    let echoed = replaced.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&echoed).is_ok(), "an unsafe id becomes a fresh UUID, not {echoed}");
    assert_eq!(replaced.text().await.unwrap(), echoed);
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_problem_that_reveals_nothing() {
    let served = serve().await;
    let answer = reqwest::Client::new()
        .get(format!("{}/panics", served.base))
        .header("x-request-id", "edge-panic")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 500);
    assert_eq!(answer.headers()["content-type"], "application/problem+json");
    assert_eq!(answer.headers()["x-request-id"], "edge-panic");
    let body = answer.text().await.unwrap();
    assert!(!body.contains("handler bug"), "the panic's message leaked: {body}");
    // The server lives on.
    let next = reqwest::get(format!("{}/items/2", served.base)).await.unwrap();
    assert_eq!(next.status(), 200);
}

#[tokio::test]
async fn the_path_policy_and_encoded_nul_are_400_before_any_handler() {
    let served = serve().await;
    for path in ["/items/forbidden", "/items/a%00b", "/nowhere/forbidden"] {
        let answer = reqwest::get(format!("{}{path}", served.base)).await.unwrap();
        assert_eq!(answer.status(), 400, "{path}");
        assert_eq!(answer.headers()["content-type"], "application/problem+json", "{path}");
        assert!(answer.headers().contains_key("x-request-id"), "{path}");
    }
}

#[tokio::test]
async fn the_answer_check_sees_every_routed_answer_with_its_route_template() {
    let served = serve().await;
    reqwest::get(format!("{}/items/7", served.base)).await.unwrap();
    reqwest::get(format!("{}/items/forbidden", served.base)).await.unwrap();
    reqwest::get(format!("{}/unknown", served.base)).await.unwrap();
    let seen = served.seen.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(Method::GET, "/items/{id}".to_owned(), 200), (Method::GET, "/items/{id}".to_owned(), 400)],
        "an unrouted request has no operation to check"
    );
}

/// Sends a request for `/slow` on a raw connection and hangs up before the answer.
async fn hang_up_on_slow(base: &str) {
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(stream);
}

#[tokio::test]
async fn a_handler_whose_client_hangs_up_still_finishes() {
    let served = serve().await;
    hang_up_on_slow(&served.base).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !served.finished.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the handler was cut short with its client");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
