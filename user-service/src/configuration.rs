//! user-service's settings: read once at start from the environment.

use shared::configuration::{ConfigError, DatabaseSettings, Env, HttpSettings, KafkaSettings, TelemetrySettings};

/// Everything user-service can be configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `HOST`, `PORT` (3001).
    pub http: HttpSettings,
    /// `DATABASE_*` (database `userdb`).
    pub database: DatabaseSettings,
    /// `KAFKA_*`.
    pub kafka: KafkaSettings,
    /// `OTEL_*`, `RUST_LOG`, `APP_ENV`.
    pub telemetry: TelemetrySettings,
}

impl Settings {
    /// Reads and validates the settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            http: HttpSettings::from_env(env, 3001)?,
            database: DatabaseSettings::from_env(env, "userdb")?,
            kafka: KafkaSettings::from_env(env, "user-service")?,
            telemetry: TelemetrySettings::from_env(env, "user-service")?,
        })
    }
}
