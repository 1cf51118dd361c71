//! The server's connection limits, tried with raw sockets as a slow or hostile client
//! would: a silent connection, a header sent a line at a time, an idle kept-alive
//! connection, a body sent a byte at a time, a slow handler, and more connections than
//! the bound.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should fail loudly

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use platform::configuration::{Env, HttpSettings};
use platform::http::{ApiBytes, ServerBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Starts a server with the given `HTTP_*` settings on a free port; returns the port.
async fn serve(settings: &[(&str, &str)]) -> u16 {
    let mut pairs = vec![("PORT", "0")];
    pairs.extend_from_slice(settings);
    let settings = HttpSettings::from_env(&Env::from_pairs(pairs), 0).unwrap();
    let api = Router::new().route("/echo", post(|ApiBytes(body): ApiBytes| async move { body })).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            "done"
        }),
    );
    let server = ServerBuilder::new(api).bind(&settings).await.unwrap();
    let port = server.port();
    tokio::spawn(server.run_until(std::future::pending()));
    port
}

async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).await.unwrap()
}

/// Reads until the server closes the connection or `within` passes; returns what was read
/// and whether it closed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return (String::from_utf8_lossy(&received).into_owned(), true),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_elapsed) => return (String::from_utf8_lossy(&received).into_owned(), false),
        }
    }
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let port = serve(&[("HTTP_HEADER_READ_TIMEOUT_MS", "500")]).await;
    let mut silent = connect(port).await;
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(5)).await;
    assert!(closed, "a silent connection outlived the header timeout by seconds");
}

#[tokio::test]
async fn a_header_sent_a_line_at_a_time_does_not_keep_its_connection_open() {
    let port = serve(&[("HTTP_HEADER_READ_TIMEOUT_MS", "1000")]).await;
    let mut slow = connect(port).await;
    slow.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    let mut closed_after = None;
    for line in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if slow.write_all(format!("X-Slow-{line}: yes\r\n").as_bytes()).await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let mut probe = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(1), slow.read(&mut probe)).await {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect("a header trickled in for 10 s kept its connection open");
    assert!(closed_after < Duration::from_secs(5), "closed only after {closed_after:?}");
}

#[tokio::test]
async fn a_kept_alive_connection_has_the_header_limit_again_after_each_answer_and_no_longer() {
    let port = serve(&[("HTTP_HEADER_READ_TIMEOUT_MS", "1000"), ("HTTP_IDLE_TIMEOUT_MS", "20000")]).await;
    let mut client = connect(port).await;
    let opened = Instant::now();
    // Three requests 700 ms apart: 1.4 s after it opened, the connection is still served,
    // because each answer starts the wait for the next header again.
    for request in 0..3 {
        if request > 0 {
            // The passing time is what is tested.
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        client.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buffer = [0u8; 4096];
        let n = client.read(&mut buffer).await.unwrap();
        assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"), "request {request}");
    }
    assert!(opened.elapsed() > Duration::from_millis(1000));
    // Silent after its last answer, it is closed on the header limit, long before the idle one.
    let waiting = Instant::now();
    let (_, closed) = read_until_closed(&mut client, Duration::from_secs(10)).await;
    assert!(closed, "a kept-alive connection waited past the header limit");
    assert!(waiting.elapsed() < Duration::from_secs(5), "closed only after {:?}", waiting.elapsed());
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let port = serve(&[("HTTP_IDLE_TIMEOUT_MS", "500"), ("HTTP_HEADER_READ_TIMEOUT_MS", "20000")]).await;
    let mut client = connect(port).await;
    client.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buffer = [0u8; 4096];
    let n = client.read(&mut buffer).await.unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
    let (_, closed) = read_until_closed(&mut client, Duration::from_secs(10)).await;
    assert!(closed, "an idle kept-alive connection stayed open");
}

#[tokio::test]
async fn a_body_sent_a_byte_at_a_time_gets_408_and_the_connection_closes() {
    let port = serve(&[("HTTP_BODY_READ_TIMEOUT_MS", "800"), ("HTTP_IDLE_TIMEOUT_MS", "20000")]).await;
    let mut slow = connect(port).await;
    slow.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    let mut closed = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        // The server may already have answered and closed: then the write fails.
        let _ = slow.write_all(b"x").await;
        let (received, gone) = read_until_closed(&mut slow, Duration::from_millis(1)).await;
        answer.push_str(&received);
        if gone {
            closed = true;
            break;
        }
    }
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(closed, "the connection stayed open after the 408");
}

#[tokio::test]
async fn a_handler_slower_than_the_idle_timeout_still_answers() {
    let port = serve(&[("HTTP_IDLE_TIMEOUT_MS", "300")]).await;
    let mut client = connect(port).await;
    client.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let (answer, _) = read_until_closed(&mut client, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.ends_with("done"), "{answer:?}");
}

#[tokio::test]
async fn slow_clients_within_the_bound_do_not_delay_a_normal_one_and_past_it_they_only_queue_it() {
    let port = serve(&[("HTTP_MAX_CONNECTIONS", "8"), ("HTTP_HEADER_READ_TIMEOUT_MS", "2000")]).await;
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/health/live");
    // Seven silent connections: one slot is left, and a normal client gets it at once.
    let mut silent = Vec::new();
    for _ in 0..7 {
        silent.push(connect(port).await);
    }
    let answer = client.get(&url).timeout(Duration::from_millis(1500)).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    // Eight more: past the bound a new client waits for a slot, which the header timeout
    // frees, instead of being refused.
    for _ in 0..8 {
        silent.push(connect(port).await);
    }
    let answer = client.get(&url).timeout(Duration::from_secs(10)).send().await.unwrap();
    assert_eq!(answer.status(), 200);
}
