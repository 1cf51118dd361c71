//! Kept-alive HTTP/1 connections to one backend, each serving thread its own.
//!
//! A serving thread's calls go out on connections its own runtime drives (see
//! `platform::http::ServerBuilder::serving_threads`), so the pool is a stack per thread
//! that no other thread touches, and a connection goes back on it the moment its answer's
//! body has been read to the end: hyper's connection is then ready for the next request.
//! A general-purpose pooled client pays more for every call than that: a pool shared by
//! key behind a lock, and a task spawned for every answer with a body, only to wait for
//! that same moment.
//!
//! A connection is taken newest first, so under a steady load the same few stay warm and
//! the rest age out. One that idled longer than the idle timeout (kept shorter than the
//! backends' own) is closed instead of used, and one the backend closed meanwhile is
//! skipped; a request that a kept-alive connection gave back unsent goes out on the next.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use thread_local::ThreadLocal;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The most idle connections a thread keeps per backend; more are closed as they come back.
const MAX_IDLE_PER_THREAD: usize = 256;

/// Why a call could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No TCP connection to the backend.
    #[error("cannot connect to {authority}: {source}")]
    Connect { authority: String, source: io::Error },
    /// The backend did not accept a connection in time.
    #[error("no connection to {authority} within {timeout:?}")]
    ConnectTimeout { authority: String, timeout: Duration },
    /// The exchange failed: the connection broke, or the request body did (too large,
    /// too slow: see its source).
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// How the pool connects and how long it keeps a connection idle.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// The longest a new connection may take.
    pub connect_timeout: Duration,
    /// The longest a connection stays pooled unused; shorter than the backend's own idle
    /// timeout, so the gateway never sends on a connection the backend is closing.
    pub idle_timeout: Duration,
}

/// The kept-alive connections to one backend.
pub struct Pool {
    /// `host:port`, resolved when a connection is made (a name in compose or Kubernetes).
    authority: String,
    settings: PoolSettings,
    idle: ThreadLocal<RefCell<VecDeque<Idle>>>,
}

/// A connection waiting for its next request.
struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

impl Pool {
    /// An empty pool for the backend at `authority` (`host:port`).
    pub fn new(authority: String, settings: PoolSettings) -> Arc<Self> {
        Arc::new(Self { authority, settings, idle: ThreadLocal::new() })
    }

    /// Sends `request` (origin-form URI, `Host` set) and returns the answer once its head
    /// has arrived; its body hands the connection back when read to the end.
    pub async fn send(self: &Arc<Self>, mut request: Request<Body>) -> Result<Response<Answer>, SendError> {
        loop {
            let (mut sender, reused) = match self.take() {
                Some(sender) => (sender, true),
                None => (self.connect().await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(response.map(|body| Answer::new(body, sender, Arc::clone(self)))),
                Err(mut error) => match error.take_message() {
                    // Closed while it idled, before a byte of this request went out: the
                    // request is whole and goes out on the next connection.
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(error.into_error().into()),
                },
            }
        }
    }

    /// This thread's newest idle connection that is still open and young enough.
    fn take(&self) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.get_or_default().try_borrow_mut().ok()?;
        let now = Instant::now();
        while let Some(Idle { sender, since }) = idle.pop_back() {
            if now.duration_since(since) < self.settings.idle_timeout && sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    /// Puts a connection whose exchange is complete back on this thread's stack, and closes
    /// those that have idled too long at its bottom.
    fn put(&self, sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let Ok(mut idle) = self.idle.get_or_default().try_borrow_mut() else { return };
        let now = Instant::now();
        while idle.front().is_some_and(|oldest| now.duration_since(oldest.since) >= self.settings.idle_timeout) {
            idle.pop_front();
        }
        if idle.len() < MAX_IDLE_PER_THREAD {
            idle.push_back(Idle { sender, since: now });
        }
    }

    /// A new connection, driven by a task on this thread's runtime until either side closes it.
    async fn connect(&self) -> Result<SendRequest<Body>, SendError> {
        let timeout = self.settings.connect_timeout;
        let stream = tokio::time::timeout(timeout, TcpStream::connect(self.authority.as_str()))
            .await
            .map_err(|_| SendError::ConnectTimeout { authority: self.authority.clone(), timeout })?
            .map_err(|source| SendError::Connect { authority: self.authority.clone(), source })?;
        // Requests go out as soon as they are written, not after Nagle's delay.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a backend connection");
        }
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "a backend connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// A backend's answer body; read to its end, it hands its connection back to the pool.
/// Dropped before that, the connection closes with it (hyper cannot reuse a connection
/// with an answer half read).
pub struct Answer {
    body: Incoming,
    connection: Option<(SendRequest<Body>, Arc<Pool>)>,
}

impl Answer {
    fn new(body: Incoming, sender: SendRequest<Body>, pool: Arc<Pool>) -> Self {
        let mut answer = Self { body, connection: Some((sender, pool)) };
        if answer.body.is_end_stream() {
            answer.release();
        }
        answer
    }

    fn release(&mut self) {
        if let Some((sender, pool)) = self.connection.take() {
            pool.put(sender);
        }
    }
}

impl HttpBody for Answer {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        match &frame {
            None => self.release(),
            // A reader may stop at `is_end_stream` without asking for the `None`.
            Some(Ok(_)) if self.body.is_end_stream() => self.release(),
            Some(Ok(_)) => {}
            Some(Err(_)) => self.connection = None,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// How the stub backend treats a connection after its first answer.
    #[derive(Clone, Copy)]
    enum AfterAnswer {
        KeepAlive,
        /// Closes without a word, as a backend whose idle timeout ran out does.
        Close,
    }

    /// A backend answering every `GET` with `body_bytes` bytes; counts the connections it accepted.
    async fn backend(after: AfterAnswer, body_bytes: usize) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0; 1024];
                    loop {
                        let Ok(read) = stream.read(&mut buffer).await else { return };
                        if read == 0 {
                            return;
                        }
                        request.extend_from_slice(&buffer[..read]);
                        if !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            continue;
                        }
                        request.clear();
                        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {body_bytes}\r\n\r\n");
                        let answer = [head.as_bytes(), &vec![b'x'; body_bytes]].concat();
                        if stream.write_all(&answer).await.is_err() {
                            return;
                        }
                        if matches!(after, AfterAnswer::Close) {
                            return;
                        }
                    }
                });
            }
        });
        (authority, accepted)
    }

    fn pool(authority: String, idle_timeout: Duration) -> Arc<Pool> {
        Pool::new(authority, PoolSettings { connect_timeout: Duration::from_secs(2), idle_timeout })
    }

    fn get(authority: &str) -> Request<Body> {
        Request::get("/users").header("host", authority).body(Body::empty()).unwrap()
    }

    async fn read_whole(pool: &Arc<Pool>, authority: &str) -> usize {
        let answer = pool.send(get(authority)).await.expect("the call succeeds");
        answer.into_body().collect().await.expect("the body arrives").to_bytes().len()
    }

    #[tokio::test]
    async fn calls_one_after_another_share_one_connection() {
        let (authority, accepted) = backend(AfterAnswer::KeepAlive, 64).await;
        let pool = pool(authority.clone(), Duration::from_secs(4));
        for _ in 0..20 {
            assert_eq!(read_whole(&pool, &authority).await, 64);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_backend_closed_while_idle_is_not_used_again() {
        let (authority, accepted) = backend(AfterAnswer::Close, 16).await;
        let pool = pool(authority.clone(), Duration::from_secs(4));
        for _ in 0..20 {
            assert_eq!(read_whole(&pool, &authority).await, 16);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 20);
    }

    #[tokio::test]
    async fn an_answer_dropped_half_read_takes_its_connection_with_it() {
        let (authority, accepted) = backend(AfterAnswer::KeepAlive, 1 << 20).await;
        let pool = pool(authority.clone(), Duration::from_secs(4));
        let mut answer = pool.send(get(&authority)).await.unwrap().into_body();
        answer.frame().await.expect("a first frame").expect("data");
        drop(answer);
        assert_eq!(read_whole(&pool, &authority).await, 1 << 20);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_idle_past_the_idle_timeout_is_closed_not_used() {
        let (authority, accepted) = backend(AfterAnswer::KeepAlive, 8).await;
        let pool = pool(authority.clone(), Duration::from_millis(50));
        read_whole(&pool, &authority).await;
        // The idle time itself is what is tested, so the test lets it pass.
        tokio::time::sleep(Duration::from_millis(60)).await;
        read_whole(&pool, &authority).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn no_backend_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        drop(listener);
        let Err(error) = pool(authority.clone(), Duration::from_secs(4)).send(get(&authority)).await else {
            panic!("a call with no backend succeeded");
        };
        assert!(matches!(error, SendError::Connect { .. }), "{error}");
    }
}
