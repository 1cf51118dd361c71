//! Each backend's own PostgreSQL database: its settings, the pool with the migrations run
//! at start, the pool's metrics and the readiness check. The event infrastructure
//! (`eventing`) keeps its tables there too, but nothing here knows of events.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context;
use platform::configuration::{ConfigError, Env};
use platform::health::{Check, Readiness};
use secrecy::{ExposeSecret, SecretString};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};
use tokio_util::sync::CancellationToken;

/// A pooled connection idle this long is pinged before it is handed out; one used more
/// recently is not (see [`connect_and_migrate`]).
const PING_IF_IDLE_FOR: Duration = Duration::from_millis(500);

/// How to reach the service's own PostgreSQL database. Its `Debug` shows the URL as
/// `[REDACTED]` (a `SecretString`).
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// Server URL without the database (`DATABASE_URL`); may hold a password, hence secret.
    pub server_url: SecretString,
    /// The database name (`DATABASE_NAME`).
    pub name: String,
    /// Pool size (`DATABASE_MAX_CONNECTIONS`).
    pub max_connections: u32,
    /// How long a request waits for a pooled connection (`DATABASE_ACQUIRE_TIMEOUT_MS`).
    pub acquire_timeout: Duration,
}

impl DatabaseSettings {
    /// Reads `DATABASE_URL`, `DATABASE_NAME`, `DATABASE_MAX_CONNECTIONS`, `DATABASE_ACQUIRE_TIMEOUT_MS`.
    pub fn from_env(env: &Env, default_name: &str) -> Result<Self, ConfigError> {
        let settings = Self {
            server_url: SecretString::from(env.string("DATABASE_URL", "postgres://postgres@127.0.0.1:5432")),
            name: env.string("DATABASE_NAME", default_name),
            max_connections: env.get("DATABASE_MAX_CONNECTIONS", 10)?,
            acquire_timeout: env.millis("DATABASE_ACQUIRE_TIMEOUT_MS", 3_000)?,
        };
        settings.server_options().map_err(|e| ConfigError::new("DATABASE_URL", e))?;
        if settings.max_connections == 0 {
            return Err(ConfigError::new("DATABASE_MAX_CONNECTIONS", "must be at least 1"));
        }
        Ok(settings)
    }

    /// Options for the server's maintenance connection (no database selected).
    pub fn server_options(&self) -> Result<PgConnectOptions, sqlx::Error> {
        PgConnectOptions::from_str(self.server_url.expose_secret())
    }

    /// Options for the service's own database.
    pub fn options(&self) -> Result<PgConnectOptions, sqlx::Error> {
        Ok(self.server_options()?.database(&self.name))
    }
}

/// Connects to the service's database and brings its schema up to date.
pub async fn connect_and_migrate(settings: &DatabaseSettings, migrator: &Migrator) -> anyhow::Result<PgPool> {
    let options = settings.options().context("invalid DATABASE_URL")?;
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        // sqlx pings every connection as it comes back to the pool and closes one that does
        // not answer, so a pooled connection can only have died since: a server restart or
        // `pg_terminate_backend` while it sat idle. Pinging it again on the way out, sqlx's
        // default, puts a second round trip in front of every statement, on the caller's
        // path; only a connection idle for a while is pinged, as HikariCP does.
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR {
                    metrics::counter!("db_pool_pings_total").increment(1);
                    connection.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
        .with_context(|| format!("cannot connect to database {:?}", settings.name))?;
    migrator.run(&pool).await.with_context(|| format!("migrations failed on database {:?}", settings.name))?;
    Ok(pool)
}

/// Publishes the pool's gauges every few seconds until `shutdown`, and samples how long
/// a connection takes to get: a growing wait is the first sign of an undersized pool.
pub async fn report_pool_metrics(pool: PgPool, shutdown: CancellationToken) {
    loop {
        let idle = pool.num_idle();
        let size = pool.size() as usize;
        #[allow(clippy::cast_precision_loss)]
        {
            metrics::gauge!("db_pool_connections", "state" => "idle").set(idle as f64);
            metrics::gauge!("db_pool_connections", "state" => "in_use").set(size.saturating_sub(idle) as f64);
            metrics::gauge!("db_pool_max_connections").set(f64::from(pool.options().get_max_connections()));
        }
        let started = Instant::now();
        if let Ok(connection) = pool.acquire().await {
            metrics::histogram!("db_pool_acquire_duration_seconds").record(started.elapsed().as_secs_f64());
            drop(connection);
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// PostgreSQL answers `SELECT 1`.
struct Postgres(PgPool);

impl Check for Postgres {
    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            sqlx::query_scalar::<_, i32>("SELECT 1")
                .fetch_one(&self.0)
                .await
                .map(drop)
                .map_err(|_| "query failed".to_owned())
        })
    }
}

/// Registers the database's check on a [`Readiness`].
pub trait DatabaseReadiness: Sized {
    /// Checks that PostgreSQL answers a query (`postgres`).
    #[must_use]
    fn postgres(self, pool: PgPool) -> Self;
}

impl DatabaseReadiness for Readiness {
    fn postgres(self, pool: PgPool) -> Self {
        self.with("postgres", Postgres(pool))
    }
}
