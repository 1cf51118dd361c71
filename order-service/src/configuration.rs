//! order-service's settings: read once at start from the environment.

use shared::auth::ServiceKey;
use shared::configuration::{ConfigError, DatabaseSettings, Env, HttpSettings, KafkaSettings, TelemetrySettings};

/// Everything order-service can be configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `HOST`, `PORT` (3002).
    pub http: HttpSettings,
    /// `DATABASE_*` (database `orderdb`).
    pub database: DatabaseSettings,
    /// `KAFKA_*`.
    pub kafka: KafkaSettings,
    /// `OTEL_*`, `RUST_LOG`, `APP_ENV`.
    pub telemetry: TelemetrySettings,
    /// `SERVICE_API_KEY`.
    pub service_key: ServiceKey,
}

impl Settings {
    /// Reads and validates the settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let telemetry = TelemetrySettings::from_env(env, "order-service")?;
        Ok(Self {
            http: HttpSettings::from_env(env, 3002)?,
            database: DatabaseSettings::from_env(env, "orderdb")?,
            kafka: KafkaSettings::from_env(env, "order-service")?,
            service_key: ServiceKey::from_env(env, telemetry.environment)?,
            telemetry,
        })
    }
}
