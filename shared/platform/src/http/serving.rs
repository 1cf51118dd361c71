//! Serving threads: more threads accepting from the server's one listener, each with a
//! single-threaded runtime that runs the connections it accepts from first byte to close.
//!
//! Why: a proxied request is a little work between waits (the client's bytes, the
//! backend's answer). On a work-stealing runtime every wake-up goes to whichever worker is
//! free, so a request's task, its client connection and the backend connection it borrows
//! hop between threads, and the kernel's thread switches become the largest cost (the
//! gateway's profile under load). A thread that owns its connections, and with a client
//! pool of its own their backend connections too, wakes once per event: what nginx's
//! worker processes do, inside one process.
//!
//! Each thread polls a duplicate of the listening socket and takes what it accepts; a
//! thread holding more connections than another lets that one accept first (see
//! `connections::Spread`). They share the server's connection bound, and stop with it.

use std::os::fd::AsFd;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio_util::sync::CancellationToken;

use super::connections::{Spread, serve_until};
use crate::configuration::HttpSettings;

/// The serving threads of one server.
pub(super) struct ServingThreads {
    done: Vec<oneshot::Receiver<()>>,
}

impl ServingThreads {
    /// Resolves once every thread has stopped accepting and its connections have finished.
    pub(super) async fn finished(self) {
        for done in self.done {
            // An error means the thread ended without saying so (a panic): finished too.
            let _ = done.await;
        }
    }
}

/// Starts a thread serving `listener` with `router` until `stop` is cancelled for each of
/// `spreads`, its share among the listener's threads.
pub(super) fn spawn(
    spreads: Vec<Spread>,
    listener: &TcpListener,
    router: &Router,
    settings: &HttpSettings,
    permits: &Arc<Semaphore>,
    stop: &CancellationToken,
) -> anyhow::Result<ServingThreads> {
    let mut done = Vec::with_capacity(spreads.len());
    for (index, spread) in (1..).zip(spreads) {
        let socket = listener.as_fd().try_clone_to_owned().context("cannot share the listening socket")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot build a serving thread's runtime")?;
        let (router, settings, permits, stop) = (router.clone(), settings.clone(), Arc::clone(permits), stop.clone());
        let (finished, receiver) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("http-serving-{index}"))
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(std::net::TcpListener::from(socket)) {
                        Ok(mut listener) => serve_until(&mut listener, router, &settings, permits, spread, stop).await,
                        Err(error) => tracing::error!(%error, "a serving thread cannot poll the listening socket"),
                    }
                });
                let _ = finished.send(());
            })
            .context("cannot start a serving thread")?;
        done.push(receiver);
    }
    Ok(ServingThreads { done })
}
