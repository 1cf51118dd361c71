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
