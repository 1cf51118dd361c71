//! PostgreSQL: the pool and the migrations each service runs at start.

use anyhow::Context;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

use crate::configuration::DatabaseSettings;

/// Connects to the service's database and brings its schema up to date.
pub async fn connect_and_migrate(settings: &DatabaseSettings, migrator: &Migrator) -> anyhow::Result<PgPool> {
    let options = settings.options().context("invalid DATABASE_URL")?;
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(options)
        .await
        .with_context(|| format!("cannot connect to database {:?}", settings.name))?;
    migrator.run(&pool).await.with_context(|| format!("migrations failed on database {:?}", settings.name))?;
    Ok(pool)
}

/// Publishes the pool's gauges every few seconds until `shutdown`, and samples how long
/// a connection takes to get: a growing wait is the first sign of an undersized pool.
pub async fn report_pool_metrics(pool: PgPool, shutdown: tokio_util::sync::CancellationToken) {
    let every = std::time::Duration::from_secs(5);
    loop {
        let idle = pool.num_idle();
        let size = pool.size() as usize;
        #[allow(clippy::cast_precision_loss)]
        {
            metrics::gauge!("db_pool_connections", "state" => "idle").set(idle as f64);
            metrics::gauge!("db_pool_connections", "state" => "in_use").set(size.saturating_sub(idle) as f64);
            metrics::gauge!("db_pool_max_connections").set(f64::from(pool.options().get_max_connections()));
        }
        let started = std::time::Instant::now();
        if let Ok(connection) = pool.acquire().await {
            metrics::histogram!("db_pool_acquire_duration_seconds").record(started.elapsed().as_secs_f64());
            drop(connection);
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
