//! Password hashing with fair, bounded admission: argon2id is the one CPU- and
//! memory-heavy step of this service, so it runs on a fixed pool of threads, and
//! admission decides who waits for them.
//!
//! - **First come, first served.** A job waits for a thread in arrival order (tokio's
//!   semaphore is fair), for at most `HASHING_MAX_WAIT_MS`, so a burst cannot keep a
//!   later sign-in out for longer than it takes to work through what came before.
//! - **A share per account.** One account (an e-mail address, or a user id) may have at
//!   most `HASHING_MAX_PER_ACCOUNT` jobs running or waiting; more is a 429. A burst of
//!   guesses at one account slows that account only, never everyone's sign-in.
//! - **Bounded.** At most `HASHING_MAX_QUEUED` jobs wait; beyond them, or past the wait,
//!   the answer is 503 with a `Retry-After` from the queue's measured pace, before
//!   anything is stored.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use platform::http::Problem;
use tokio::sync::{Semaphore, TryAcquireError};

/// How admission is bounded.
#[derive(Debug, Clone, Copy)]
pub struct HashingLimits {
    /// Jobs that may wait for a thread.
    pub max_queued: usize,
    /// How long a job may wait for a thread.
    pub max_wait: Duration,
    /// Jobs one account may have running or waiting.
    pub max_per_account: usize,
}

/// Why password work did not run.
#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    /// The queue is full, or the job waited its limit: come back after the seconds given.
    #[error("password hashing is at capacity")]
    Busy(u32),
    /// This account already has its share of jobs in progress.
    #[error("this account's sign-ins are already in progress")]
    AccountBusy,
    /// The job panicked, or the pool is gone.
    #[error("the hashing pool stopped")]
    Stopped,
}

impl From<HashingError> for Problem {
    fn from(error: HashingError) -> Self {
        match error {
            HashingError::Busy(seconds) => {
                metrics::counter!("hashing_rejected_total", "reason" => "capacity").increment(1);
                Problem::busy("too many sign-ups and sign-ins at once; retry shortly", seconds)
            }
            HashingError::AccountBusy => {
                metrics::counter!("hashing_rejected_total", "reason" => "account").increment(1);
                let detail = "this account's sign-ins are already in progress; retry shortly";
                let mut problem = Problem::new(axum::http::StatusCode::TOO_MANY_REQUESTS, Some(detail.to_owned()));
                problem.retry_after = Some(1);
                problem
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
/// gigabytes); a few long-lived threads reuse theirs. A job is handed to rayon only once
/// it holds one of the threads' permits, so rayon's own (unbounded, unfair) queue stays empty.
#[derive(Clone)]
pub struct Hasher {
    pool: Arc<rayon::ThreadPool>,
    threads: Arc<Semaphore>,
    thread_count: usize,
    limits: HashingLimits,
    waiting: Arc<AtomicUsize>,
    accounts: Arc<Mutex<HashMap<String, usize>>>,
    /// Mean time of one job, in microseconds (a moving average), for `Retry-After`.
    mean_micros: Arc<AtomicU64>,
}

impl Hasher {
    /// Starts one thread per core.
    pub fn start(limits: HashingLimits) -> anyhow::Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("argon2-{i}")).build()?;
        let thread_count = pool.current_num_threads();
        for reason in ["capacity", "account"] {
            metrics::counter!("hashing_rejected_total", "reason" => reason).absolute(0);
        }
        Ok(Self {
            pool: Arc::new(pool),
            threads: Arc::new(Semaphore::new(thread_count)),
            thread_count,
            limits,
            waiting: Arc::default(),
            accounts: Arc::default(),
            mean_micros: Arc::new(AtomicU64::new(50_000)),
        })
    }

    /// Runs `work` for `account` on the pool and awaits its result, once admitted.
    pub async fn run<T: Send + 'static>(
        &self,
        account: &str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashingError> {
        let _share = AccountShare::claim(&self.accounts, account, self.limits.max_per_account)?;
        // A free thread is taken at once; the semaphore hands released threads to waiting
        // jobs first, so this never overtakes one.
        let permit = match Arc::clone(&self.threads).try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => return Err(HashingError::Stopped),
            Err(TryAcquireError::NoPermits) => {
                let _waiting = Waiting::enter(&self.waiting, self.limits.max_queued).ok_or_else(|| self.busy())?;
                match tokio::time::timeout(self.limits.max_wait, Arc::clone(&self.threads).acquire_owned()).await {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(_closed)) => return Err(HashingError::Stopped),
                    Err(_waited) => return Err(self.busy()),
                }
            }
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let mean = Arc::clone(&self.mean_micros);
        self.pool.spawn(move || {
            let started = Instant::now();
            let _ = reply.send(work());
            let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            let _ = mean.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| Some((m * 7 + took) / 8));
            drop(permit); // the thread frees when the work is done, even if the request was dropped
        });
        answer.await.map_err(|_| HashingError::Stopped)
    }

    /// A refusal with the seconds the queue needs to drain at its measured pace.
    fn busy(&self) -> HashingError {
        let jobs = u64::try_from(self.waiting.load(Ordering::Relaxed) + self.thread_count).unwrap_or(u64::MAX);
        let micros = jobs.saturating_mul(self.mean_micros.load(Ordering::Relaxed)) / self.thread_count.max(1) as u64;
        HashingError::Busy(u32::try_from(micros.div_ceil(1_000_000)).unwrap_or(u32::MAX).clamp(1, 30))
    }
}

/// A job waiting for a thread; counted while it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(waiting: &'a AtomicUsize, max: usize) -> Option<Self> {
        let admitted = waiting.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < max).then_some(n + 1));
        admitted.ok().map(|_| Self(waiting))
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One of an account's jobs, running or waiting.
struct AccountShare<'a> {
    accounts: &'a Mutex<HashMap<String, usize>>,
    account: String,
}

impl<'a> AccountShare<'a> {
    fn claim(accounts: &'a Mutex<HashMap<String, usize>>, account: &str, max: usize) -> Result<Self, HashingError> {
        let mut held = accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(account.to_owned()).or_default();
        if *count >= max {
            return Err(HashingError::AccountBusy);
        }
        *count += 1;
        Ok(Self { accounts, account: account.to_owned() })
    }
}

impl Drop for AccountShare<'_> {
    fn drop(&mut self) {
        let mut held = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.account) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.account);
            }
        }
    }
}
