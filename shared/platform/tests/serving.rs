//! Serving threads, tried on a real server: each takes connections while another is busy,
//! a burst of connections is spread over them, and a stopping server lets every thread's
//! requests finish.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should fail loudly

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use platform::configuration::{Env, HttpSettings};
use platform::http::ServerBuilder;
use tokio::sync::oneshot;

/// How long a handler holds its thread waiting for a second one.
const TOGETHER_WITHIN: Duration = Duration::from_secs(3);

/// `GET path` on a plain socket from the calling (non-runtime) thread: the answer's body.
fn get_blocking(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.rsplit("\r\n\r\n").next().unwrap_or_default().to_owned()
}

/// A server running on the test's runtime until [`Running::stop`].
struct Running {
    port: u16,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    fn start(server: platform::http::Server) -> Self {
        let port = server.port();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run_until(async move {
            let _ = stopped.await;
        }));
        Self { port, stop, task }
    }

    /// Stops the server and waits until it has, within a deadline.
    async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task).await.unwrap().unwrap().unwrap();
    }
}

/// A route whose handler blocks its thread until a second request is inside at the same
/// time (or [`TOGETHER_WITHIN`] passes), answering whether they met.
fn blocking_route(inside: Arc<AtomicUsize>) -> Router {
    let met = Arc::new(AtomicBool::new(false));
    Router::new().route(
        "/meet",
        get(move || {
            let (inside, met) = (inside.clone(), met.clone());
            async move {
                if inside.fetch_add(1, Ordering::SeqCst) >= 1 {
                    met.store(true, Ordering::SeqCst);
                }
                let deadline = Instant::now() + TOGETHER_WITHIN;
                while !met.load(Ordering::SeqCst) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5)); // holds the thread, as CPU-bound work would
                }
                inside.fetch_sub(1, Ordering::SeqCst);
                if met.load(Ordering::SeqCst) { "together" } else { "alone" }
            }
        }),
    )
}

/// Two requests whose handlers each hold their thread meet only if a second thread
/// accepts the second connection while the first thread is held. On one thread the
/// second connection waits until the first handler gives up.
async fn meet_on(threads: usize) -> (String, String) {
    let settings = HttpSettings::from_env(&Env::from_pairs([("PORT", "0")]), 0).unwrap();
    let inside = Arc::new(AtomicUsize::new(0));
    let server =
        ServerBuilder::new(blocking_route(inside.clone())).serving_threads(threads).bind(&settings).await.unwrap();
    let running = Running::start(server);
    let port = running.port;
    let answers = tokio::task::spawn_blocking(move || {
        let first = std::thread::spawn(move || get_blocking(port, "/meet"));
        // The second connects only once the first handler holds its thread.
        let deadline = Instant::now() + Duration::from_secs(5);
        while inside.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let second = get_blocking(port, "/meet");
        (first.join().unwrap(), second)
    })
    .await
    .unwrap();
    running.stop().await;
    answers
}

#[tokio::test(flavor = "current_thread")]
async fn a_second_serving_thread_takes_connections_while_the_first_is_held() {
    assert_eq!(meet_on(2).await, ("together".to_owned(), "together".to_owned()));
}

#[tokio::test(flavor = "current_thread")]
async fn on_one_thread_a_held_handler_keeps_the_next_connection_waiting() {
    // The control for the test above: the same requests on one thread never meet.
    assert_eq!(meet_on(1).await, ("alone".to_owned(), "alone".to_owned()));
}

#[tokio::test(flavor = "current_thread")]
async fn a_burst_of_connections_is_spread_over_the_serving_threads() {
    let settings = HttpSettings::from_env(&Env::from_pairs([("PORT", "0")]), 0).unwrap();
    let api =
        Router::new().route("/thread", get(|| async { std::thread::current().name().unwrap_or_default().to_owned() }));
    let server = ServerBuilder::new(api).serving_threads(2).bind(&settings).await.unwrap();
    let running = Running::start(server);
    let port = running.port;
    // All connected before any request, as a load generator opens its connections.
    let threads = tokio::task::spawn_blocking(move || {
        let streams: Vec<TcpStream> = (0..16).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
        streams
            .into_iter()
            .map(|mut stream| {
                write!(stream, "GET /thread HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n").unwrap();
                let mut answer = String::new();
                stream.read_to_string(&mut answer).unwrap();
                answer.rsplit("\r\n\r\n").next().unwrap_or_default().to_owned()
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    running.stop().await;
    let on_serving_thread = threads.iter().filter(|name| name.as_str() == "http-serving-1").count();
    // At least a quarter on each: one taking them all (15 or 16) is what the spread prevents;
    // an even split is not guaranteed on a busy machine, where a thread ahead accepts after
    // waiting at most 10 ms.
    assert!(
        (4..=12).contains(&on_serving_thread),
        "16 connections opened at once: {on_serving_thread} on the serving thread, the rest on the caller's ({threads:?})"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_stopping_server_lets_every_threads_requests_finish() {
    let settings = HttpSettings::from_env(&Env::from_pairs([("PORT", "0")]), 0).unwrap();
    let (entered, finished) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let counters = (entered.clone(), finished.clone());
    let api = Router::new().route(
        "/slow",
        get(move || {
            let (entered, finished) = counters.clone();
            async move {
                entered.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                finished.fetch_add(1, Ordering::SeqCst);
                "done"
            }
        }),
    );
    let server = ServerBuilder::new(api).serving_threads(3).bind(&settings).await.unwrap();
    let running = Running::start(server);
    let port = running.port;
    let clients: Vec<_> = (0..6).map(|_| std::thread::spawn(move || get_blocking(port, "/slow"))).collect();
    // Stop once every request is in a handler, wherever it was accepted.
    let deadline = Instant::now() + Duration::from_secs(5);
    while entered.load(Ordering::SeqCst) < 6 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(entered.load(Ordering::SeqCst), 6, "every request reached its handler");
    running.stop().await;
    let answers =
        tokio::task::spawn_blocking(move || clients.into_iter().map(|c| c.join().unwrap()).collect::<Vec<_>>())
            .await
            .unwrap();
    assert_eq!(answers, vec!["done"; 6]);
    assert_eq!(finished.load(Ordering::SeqCst), 6, "every handler ran to its end before the server stopped");
}
