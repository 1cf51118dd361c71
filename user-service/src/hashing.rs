//! Password hashing with bounded admission: argon2id is the one CPU- and
//! memory-heavy step of this service, so it runs on a fixed pool of threads and
//! only a bounded number of jobs may wait for them. Beyond that a request is told
//! to come back later (503 with `Retry-After`) before anything is stored.

use std::sync::Arc;

use platform::http::Problem;
use tokio::sync::Semaphore;

/// Seconds a refused client is asked to wait: a queue of jobs of tens of milliseconds drains in less.
const RETRY_AFTER_SECONDS: u32 = 1;

/// Why password work did not run.
#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    /// Every hashing thread is busy and the queue is full.
    #[error("password hashing is at capacity")]
    Busy,
    /// The job panicked, or the pool is gone.
    #[error("the hashing pool stopped")]
    Stopped,
}

impl From<HashingError> for Problem {
    fn from(error: HashingError) -> Self {
        match error {
            HashingError::Busy => {
                metrics::counter!("hashing_rejected_total").increment(1);
                Problem::busy("too many sign-ups and sign-ins at once; retry shortly", RETRY_AFTER_SECONDS)
            }
            HashingError::Stopped => Problem::internal(&anyhow::anyhow!(error)),
        }
    }
}

/// The hashing pool. Cheap to clone.
///
/// A fixed `rayon` pool, one thread per core: each hash takes 19 MiB and a core for tens
/// of milliseconds. On tokio's blocking pool a burst makes hundreds of short-lived
/// threads, each leaving its own allocator arena holding those 19 MiB (the bench saw
/// gigabytes); a few long-lived threads reuse theirs. rayon's queue is unbounded, so the
/// semaphore is what bounds the jobs waiting for a thread.
#[derive(Clone)]
pub struct Hasher {
    pool: Arc<rayon::ThreadPool>,
    admission: Arc<Semaphore>,
}

impl Hasher {
    /// Starts one thread per core; at most `max_queued` jobs wait for them, beyond those running.
    pub fn start(max_queued: usize) -> anyhow::Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("argon2-{i}")).build()?;
        let threads = pool.current_num_threads();
        metrics::counter!("hashing_rejected_total").absolute(0);
        Ok(Self { pool: Arc::new(pool), admission: Arc::new(Semaphore::new(threads + max_queued)) })
    }

    /// Runs `work` on the pool and awaits its result, or refuses at once when the pool is full.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, HashingError> {
        let permit = Arc::clone(&self.admission).try_acquire_owned().map_err(|_| HashingError::Busy)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.pool.spawn(move || {
            let _ = reply.send(work());
            drop(permit); // the slot frees when the work is done, even if the request was dropped
        });
        answer.await.map_err(|_| HashingError::Stopped)
    }
}
