//! The HTTP server with the platform's standard routes, its background tasks,
//! and the order in which they stop.
//!
//! Shutdown order matters: stop taking requests (in-flight ones finish), then
//! cancel background tasks (consumers commit what they handled and leave their
//! group), then flush telemetry in `main`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Problem;
use super::connections::{Spread, serve_until};
use super::edge::{AnswerCheck, EdgeLayer, EdgeSettings, PathPolicy};
use crate::configuration::HttpSettings;
use crate::health::{self, Readiness};
use crate::metrics;
use crate::telemetry::propagation::CallerContext;

/// How long background tasks get to finish after shutdown was asked for.
const TASK_GRACE: Duration = Duration::from_secs(10);

/// Collects a service's routes, readiness checks and background tasks.
pub struct ServerBuilder {
    api: Router,
    readiness: Readiness,
    tasks: JoinSet<()>,
    shutdown: CancellationToken,
    edge: Vec<EdgeWrap>,
    admin: Option<SocketAddr>,
    callers: CallerContext,
    finish_abandoned: bool,
    paths: Option<PathPolicy>,
    answers: Option<Arc<dyn AnswerCheck>>,
    threads: usize,
}

/// Middleware that must see every request, routed or not (see [`ServerBuilder::edge_layer`]).
type EdgeWrap = Box<dyn FnOnce(Router) -> Router + Send>;

impl ServerBuilder {
    /// Starts with the service's own API routes.
    pub fn new(api: Router) -> Self {
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        tasks.spawn(metrics::report_runtime_metrics(shutdown.clone()));
        Self {
            api,
            readiness: Readiness::default(),
            tasks,
            shutdown,
            edge: Vec::new(),
            admin: None,
            callers: CallerContext::Parent,
            finish_abandoned: true,
            paths: None,
            answers: None,
            threads: 1,
        }
    }

    /// Drops a request's work with its client: for a service whose handlers hold nothing
    /// that must not be cut short, such as the gateway, which only forwards (the service it
    /// forwards to finishes what it started). Saves the task every request is otherwise run
    /// on (see [`super::edge`]).
    #[must_use]
    pub fn abandon_with_client(mut self) -> Self {
        self.finish_abandoned = false;
        self
    }

    /// Serves `/health/*` and `/metrics` on a listener of their own at `address`, and not
    /// on the API's port: on a service whose port is public (the gateway) they are for
    /// operators and Prometheus, not for clients. Its connections are bounded apart from
    /// the API's, so slow clients cannot keep a probe out.
    #[must_use]
    pub fn admin_listener(mut self, address: SocketAddr) -> Self {
        self.admin = Some(address);
        self
    }

    /// How the request's span treats the caller's trace context (by default the caller's
    /// span is its parent; a public port links it instead).
    #[must_use]
    pub fn caller_context(mut self, callers: CallerContext) -> Self {
        self.callers = callers;
        self
    }

    /// Refuses, with a 400 problem, the raw paths `policy` names, before routing decides
    /// anything (an encoded NUL is refused whatever the policy).
    #[must_use]
    pub fn path_policy(mut self, policy: PathPolicy) -> Self {
        self.paths = Some(policy);
        self
    }

    /// Shows `check` the status of every answer to a routed request.
    #[must_use]
    pub fn answer_check(mut self, check: Arc<dyn AnswerCheck>) -> Self {
        self.answers = Some(check);
        self
    }

    /// Serves the API port on `threads` threads in all: the caller's runtime and `threads - 1`
    /// more, each with a single-threaded runtime of its own (see [`super::serving`]). For a
    /// service whose every request is a little work between waits (the gateway), run on a
    /// single-threaded runtime itself.
    #[must_use]
    pub fn serving_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The checks behind `/health/ready`.
    #[must_use]
    pub fn readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }

    /// Requires the service API key on every API route (not on health and metrics).
    #[must_use]
    pub fn service_key(mut self, key: crate::auth::ServiceKey) -> Self {
        self.api = self.api.layer(axum::middleware::from_fn(move |request, next| {
            crate::auth::require_service_key(key.clone(), request, next)
        }));
        self
    }

    /// Wraps the complete router, fallbacks included, so `layer` sees requests that match
    /// no route too (a check that must run before routing decides anything).
    #[must_use]
    pub fn edge_layer(mut self, layer: impl FnOnce(Router) -> Router + Send + 'static) -> Self {
        self.edge.push(Box::new(layer));
        self
    }

    /// The token background tasks watch; it is cancelled once the server stopped.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs `task` beside the server until shutdown; the task must return once the token is cancelled.
    pub fn spawn<F>(&mut self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// Binds the listeners; port 0 picks a free port (tests). Sockets handed over by a
    /// supervisor (`LISTEN_FDS`, as systemd or `make watch` pass them) are used instead,
    /// so a restarted process takes over the connections queued on them.
    pub async fn bind(self, settings: &HttpSettings) -> anyhow::Result<Server> {
        let mut inherited = listenfd::ListenFd::from_env();
        let listener = take_or_bind(&mut inherited, 0, SocketAddr::new(settings.host, settings.port)).await?;
        let port = listener.local_addr().context("listener has no local address")?.port();
        let probes = Router::new().merge(health::router(self.readiness)).merge(metrics::router());
        let edge = |finish_abandoned, paths, answers| {
            EdgeLayer::new(EdgeSettings {
                callers: self.callers,
                body_deadline: settings.body_read_timeout,
                paths,
                finish_abandoned,
                answers,
            })
        };
        let (router, admin) = match self.admin {
            None => (probes.merge(self.api), None),
            Some(address) => {
                let listener = take_or_bind(&mut inherited, 1, address).await?;
                let probes = probes
                    .fallback(not_found)
                    .method_not_allowed_fallback(method_not_allowed)
                    .layer(edge(false, None, None));
                (self.api, Some((listener, probes)))
            }
        };
        let router = router.fallback(not_found).method_not_allowed_fallback(method_not_allowed);
        let router = self.edge.into_iter().fold(router, |router, layer| layer(router));
        let router = router.layer(edge(self.finish_abandoned, self.paths, self.answers));
        let admin_port = match &admin {
            Some((listener, _)) => Some(listener.local_addr().context("admin listener has no local address")?.port()),
            None => None,
        };
        Ok(Server {
            threads: self.threads,
            listener,
            admin,
            admin_port,
            settings: settings.clone(),
            port,
            router,
            tasks: self.tasks,
            shutdown: self.shutdown,
        })
    }
}

/// The socket handed over at `index` (`LISTEN_FDS`), else a new one bound to `address`.
/// Under `make watch` (or systemd) the supervisor holds the sockets: a restarted process
/// takes over the connections queued on them, and none is reset in between. The API's
/// socket is the first, an admin listener's the second.
async fn take_or_bind(
    inherited: &mut listenfd::ListenFd,
    index: usize,
    address: SocketAddr,
) -> anyhow::Result<TcpListener> {
    match inherited.take_tcp_listener(index).context("invalid inherited socket")? {
        Some(listener) => {
            listener.set_nonblocking(true).context("cannot make the inherited socket non-blocking")?;
            tracing::info!(index, "serving on an inherited socket");
            TcpListener::from_std(listener).context("cannot use the inherited socket")
        }
        None => TcpListener::bind(address).await.with_context(|| format!("failed to bind {address}")),
    }
}

/// A bound server, ready to run.
pub struct Server {
    listener: TcpListener,
    /// The admin listener and its router (health and metrics), when they have their own.
    admin: Option<(TcpListener, Router)>,
    admin_port: Option<u16>,
    settings: HttpSettings,
    port: u16,
    router: Router,
    tasks: JoinSet<()>,
    shutdown: CancellationToken,
    /// Threads serving the API port, the caller's included.
    threads: usize,
}

impl Server {
    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin listener's port, when health and metrics have their own.
    pub fn admin_port(&self) -> Option<u16> {
        self.admin_port
    }

    /// Serves until SIGTERM or Ctrl-C.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(crate::shutdown::signal()).await
    }

    /// Serves until `signal` completes, then stops everything in order. Tests stop services this way.
    pub async fn run_until<S>(self, signal: S) -> anyhow::Result<()>
    where
        S: Future<Output = ()> + Send + 'static,
    {
        let Self { mut listener, mut admin, admin_port, settings, port, router, mut tasks, shutdown, threads } = self;
        tracing::info!(port, admin_port, threads, "listening");
        let stop_accepting = CancellationToken::new();
        {
            let stop_accepting = stop_accepting.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = signal => {},
                    () = stop.cancelled() => {},
                }
                stop_accepting.cancel();
            });
        }
        // Connections not yet accepted wait in the socket's backlog for whoever takes it over.
        super::connections::register_metrics();
        let permits = Arc::new(Semaphore::new(settings.max_connections));
        let mut spreads = Spread::among(threads);
        let own = spreads.remove(0);
        let serving = super::serving::spawn(spreads, &listener, &router, &settings, &permits, &stop_accepting)
            .inspect_err(|_| stop_accepting.cancel())?;
        let public = serve_until(&mut listener, router, &settings, permits, own, stop_accepting.clone());
        let probes = async {
            if let Some((listener, router)) = admin.as_mut() {
                // Bounded apart from the API's, so slow clients cannot keep a probe out.
                let permits = Arc::new(Semaphore::new(settings.max_connections));
                serve_until(listener, router.clone(), &settings, permits, Spread::alone(), stop_accepting.clone())
                    .await;
            }
        };
        tokio::join!(public, probes, serving.finished());
        drop((listener, admin));
        tracing::info!("HTTP server stopped; stopping background tasks");
        shutdown.cancel();
        let drained = tokio::time::timeout(TASK_GRACE, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                grace_seconds = TASK_GRACE.as_secs(),
                "background tasks did not stop in time; aborting them"
            );
            tasks.abort_all();
        }
        Ok(())
    }
}

async fn not_found(uri: Uri) -> Problem {
    Problem::not_found(format!("no route for {}", uri.path()))
}

async fn method_not_allowed(method: Method) -> Problem {
    Problem::new(StatusCode::METHOD_NOT_ALLOWED, Some(format!("{method} is not allowed here")))
}
