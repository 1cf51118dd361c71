//! The accept loop: how many connections a server holds at once, and how long a client
//! may take before its connection is closed.
//!
//! - **Header:** a request's header must arrive within `HTTP_HEADER_READ_TIMEOUT_MS` of
//!   the moment the connection starts waiting for it (when it opens, or when the server
//!   wrote the last byte of its previous answer), however slowly it trickles in.
//! - **Idle:** a connection with no request in flight and no bytes either way for
//!   `HTTP_IDLE_TIMEOUT_MS` is closed.
//! - **Body:** a request body must arrive within `HTTP_BODY_READ_TIMEOUT_MS` in all
//!   ([`super::deadline`]).
//! - **Bound:** at `HTTP_MAX_CONNECTIONS` the server stops accepting. Further clients wait
//!   in the kernel's backlog until a connection closes; the ones it holds are served as
//!   before, so slow clients can at most delay new connections by the timeouts above.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::configuration::HttpSettings;

/// How long a stopping server keeps its connections open after it stops accepting,
/// before closing the idle ones. hyper closes a connection whose request it has not read
/// yet as idle; without this pause, a connection accepted just before the stop (from a
/// socket the next process takes over, under `make watch` or a rolling restart) would be
/// reset instead of served.
const ACCEPT_GRACE: Duration = Duration::from_millis(250);

/// How often a thread holding more connections than another looks again whether it still
/// does, and how long it waits at most before it accepts all the same (see [`Spread`]).
const DEFER_STEP: Duration = Duration::from_millis(1);
const DEFER_AT_MOST: Duration = Duration::from_millis(10);

/// The connections each thread accepting from one listener holds. Every such thread is
/// woken for a new connection and the first to call `accept` takes it, so a thread that
/// happens to be awake takes a whole burst: a client opening 16 keep-alive connections at
/// once found them all on one thread, which served alone while the other idled. A thread
/// ahead of another waits while it is, up to [`DEFER_AT_MOST`], leaving the connection to
/// the one behind, as nginx's workers leave it to an idle one; it accepts after the wait
/// all the same, should the other be too busy to.
#[derive(Clone)]
pub(super) struct Spread {
    held: Arc<[AtomicUsize]>,
    index: usize,
}

impl Spread {
    /// One handle per thread of `threads` accepting from the same listener.
    pub(super) fn among(threads: usize) -> Vec<Self> {
        let held: Arc<[AtomicUsize]> = (0..threads.max(1)).map(|_| AtomicUsize::new(0)).collect();
        (0..held.len()).map(|index| Self { held: Arc::clone(&held), index }).collect()
    }

    /// The share of a listener served by one thread only: never ahead of anyone.
    pub(super) fn alone() -> Self {
        Self { held: Arc::new([AtomicUsize::new(0)]), index: 0 }
    }

    /// Whether another thread holds fewer connections than this one.
    fn ahead(&self) -> bool {
        let mine = self.held[self.index].load(Ordering::Relaxed);
        self.held.iter().enumerate().any(|(index, held)| index != self.index && held.load(Ordering::Relaxed) < mine)
    }

    /// Counts a connection this thread accepted until the guard is dropped.
    fn hold(&self) -> Held {
        self.held[self.index].fetch_add(1, Ordering::Relaxed);
        Held(self.clone())
    }
}

/// A connection counted in its thread's share ([`Spread::hold`]).
struct Held(Spread);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.held[self.0.index].fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `listener` until `stop` is cancelled, then lets the connections it accepted
/// finish. `permits` bounds the connections held at once, shared by every loop that
/// accepts for the same server, and `spread` is this loop's share among them. The listener
/// stays open: unaccepted connections wait in its backlog for whoever takes it over.
pub(super) async fn serve_until(
    listener: &mut TcpListener,
    router: Router,
    settings: &HttpSettings,
    permits: Arc<Semaphore>,
    spread: Spread,
    stop: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    accept_until(listener, router, settings, permits, &spread, stop, &graceful).await;
    tokio::time::sleep(ACCEPT_GRACE).await;
    graceful.shutdown().await;
}

/// Accepts connections until `stop` is cancelled and serves each on a task of its own,
/// watched by `graceful` so that a stopping server can let them finish.
async fn accept_until(
    listener: &mut TcpListener,
    router: Router,
    settings: &HttpSettings,
    permits: Arc<Semaphore>,
    spread: &Spread,
    stop: CancellationToken,
    graceful: &GracefulShutdown,
) {
    // No hyper timer: hyper's header timeout allocates, arms and drops a timer for every
    // request. Each connection's one watcher (`Activity::limit_passed`) keeps both the
    // header and the idle limit instead, waking only when one of them is due.
    let http = hyper::server::conn::http1::Builder::new();
    loop {
        let permit = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => return,
            },
        };
        let mut deferred = Duration::ZERO;
        while deferred < DEFER_AT_MOST && spread.ahead() {
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = tokio::time::sleep(DEFER_STEP) => deferred += DEFER_STEP,
            }
        }
        let (stream, remote) = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            accepted = Listener::accept(listener) => accepted,
        };
        let held = spread.hold();
        // Answers go out as soon as they are written, not after Nagle's delay.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let activity = Arc::new(Activity::new());
        let service = {
            let activity = Arc::clone(&activity);
            let router = router.clone();
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(remote));
                let busy = Busy::begin(Arc::clone(&activity));
                let response = router.clone().oneshot(request);
                async move {
                    let response = response.await;
                    drop(busy);
                    response
                }
            })
        };
        let io = TokioIo::new(Tracked::new(stream, Arc::clone(&activity)));
        let connection = graceful.watch(http.serve_connection(io, service));
        let limits = Limits { header: settings.header_read_timeout, idle: settings.idle_timeout };
        metrics::gauge!("http_connections_open").increment(1.0);
        tokio::spawn(async move {
            tokio::select! {
                _ = connection => {}
                passed = activity.limit_passed(limits) => {
                    metrics::counter!("http_connections_closed_total", "reason" => passed.reason()).increment(1);
                }
            }
            metrics::gauge!("http_connections_open").decrement(1.0);
            drop((permit, held));
        });
    }
}

/// Makes the connection series exist from the start, so dashboards read 0, not "no data".
pub(super) fn register_metrics() {
    metrics::gauge!("http_connections_open").set(0.0);
    for reason in [Passed::Header.reason(), Passed::Idle.reason()] {
        metrics::counter!("http_connections_closed_total", "reason" => reason).absolute(0);
    }
}

/// How long a connection may wait for a request's header, and sit idle.
#[derive(Clone, Copy)]
struct Limits {
    header: Duration,
    idle: Duration,
}

/// The limit a connection was closed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Passed {
    /// No whole header within the header limit of the connection starting to wait for one.
    Header,
    /// No request in flight and no byte either way for the idle limit.
    Idle,
}

impl Passed {
    /// The `reason` label of `http_connections_closed_total`.
    const fn reason(self) -> &'static str {
        match self {
            Self::Header => "header_timeout",
            Self::Idle => "idle",
        }
    }
}

/// When a connection last moved bytes, when the server last wrote, and how many of its
/// requests are in flight. Times are milliseconds from `opened`.
struct Activity {
    opened: Instant,
    /// The last byte read or written.
    last_ms: AtomicU64,
    /// The last byte written, or the end of the last request's handling: the connection
    /// waits for a header from then on (while no request is in flight).
    waiting_ms: AtomicU64,
    requests: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
            waiting_ms: AtomicU64::new(0),
            requests: AtomicUsize::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn read(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A byte written, or a request's handling ended: the next header's time starts here.
    fn wrote(&self) {
        let now = self.now_ms();
        self.last_ms.store(now, Ordering::Relaxed);
        self.waiting_ms.store(now, Ordering::Relaxed);
    }

    /// Resolves once, with no request in flight, the connection has waited longer than the
    /// header limit for a header, or has moved no byte for the idle limit. A handler that
    /// takes long is neither: its request is in flight.
    async fn limit_passed(&self, limits: Limits) -> Passed {
        loop {
            let at = |ms: &AtomicU64, limit| self.opened + Duration::from_millis(ms.load(Ordering::Relaxed)) + limit;
            let (header_due, idle_due) = (at(&self.waiting_ms, limits.header), at(&self.last_ms, limits.idle));
            let now = Instant::now();
            let waiting = self.requests.load(Ordering::Relaxed) == 0;
            if waiting && now >= header_due {
                return Passed::Header;
            }
            if waiting && now >= idle_due {
                return Passed::Idle;
            }
            let due = header_due.min(idle_due);
            tokio::time::sleep_until(if due > now { due } else { now + limits.idle.min(limits.header) / 4 }).await;
        }
    }
}

/// A request in flight on a connection; its end counts as activity.
struct Busy(Arc<Activity>);

impl Busy {
    fn begin(activity: Arc<Activity>) -> Self {
        activity.requests.fetch_add(1, Ordering::Relaxed);
        Self(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.wrote();
        self.0.requests.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How long a connection closed by the server keeps reading, and discarding, what its client
/// still sends. A server that answers before reading a whole request body (a 413, a 401)
/// and then closes a socket with unread data makes the kernel send a reset, which can reach
/// the client before it reads the answer: it sees a broken pipe instead of the 413. So the
/// server sends its FIN and reads on, as nginx's lingering close does, until the client
/// closes too or this time is up.
const LINGER: Duration = Duration::from_secs(2);

/// The connection's socket, noting every byte that moves either way.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
    /// Set once the server has sent its FIN: when the lingering read ends.
    linger: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Tracked {
    fn new(inner: TcpStream, activity: Arc<Activity>) -> Self {
        Self { inner, activity, linger: None }
    }

    /// Reads and discards until the client closes, the socket fails or [`LINGER`] is up.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(deadline) = self.linger.as_mut() else { return Poll::Ready(()) };
        let mut scratch = [0u8; 8192];
        loop {
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {}
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.wrote();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.wrote();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.linger.is_none() {
            std::task::ready!(Pin::new(&mut self.inner).poll_shutdown(cx))?;
            self.linger = Some(Box::pin(tokio::time::sleep(LINGER)));
        }
        self.poll_linger(cx).map(Ok)
    }
}
