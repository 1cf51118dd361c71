//! order-service's settings: read once at start from the environment.

use database::DatabaseSettings;
use eventing::configuration::KafkaSettings;
use platform::auth::ServiceKey;
use platform::configuration::{ConfigError, Env, HttpSettings, TelemetrySettings};

use crate::admission::AdmissionLimits;
use crate::payment_timeout::PaymentTimeout;

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
    /// `USER_SERVICE_URL` (http://127.0.0.1:3001): asked whether it published the user
    /// events order-service acts on.
    pub user_service: url::Url,
    /// `PAYMENT_TIMEOUT_MS` (120000) and `PAYMENT_MAX_REQUESTS` (3): how long a payment
    /// request may go unanswered, and how many requests an order gets before it fails.
    pub payment_timeout: PaymentTimeout,
    /// `ORDER_ADMISSION_MAX_PENDING` (500) and `ORDER_ADMISSION_MAX_WAIT_MS` (2000): how many
    /// orders may await their payment at once, and how long a new order waits for a place.
    pub admission: AdmissionLimits,
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
            user_service: env.service_url("USER_SERVICE_URL", "http://127.0.0.1:3001")?,
            payment_timeout: payment_timeout(env)?,
            admission: admission(env)?,
            telemetry,
        })
    }
}

/// Long enough that a backlog behind a slow broker is not mistaken for a lost message:
/// requests are deduplicated, but each one still travels the whole chain.
fn payment_timeout(env: &Env) -> Result<PaymentTimeout, ConfigError> {
    let settings = PaymentTimeout {
        timeout: env.millis("PAYMENT_TIMEOUT_MS", 120_000)?,
        max_requests: env.get("PAYMENT_MAX_REQUESTS", 3)?,
    };
    if settings.timeout.is_zero() {
        return Err(ConfigError::new("PAYMENT_TIMEOUT_MS", "must be at least 1"));
    }
    if settings.max_requests < 1 {
        return Err(ConfigError::new("PAYMENT_MAX_REQUESTS", "must be at least 1"));
    }
    Ok(settings)
}

/// The default bound is what the chain settles in well under a second on two cores, so a
/// burst leaves a short tail rather than minutes of backlog.
fn admission(env: &Env) -> Result<AdmissionLimits, ConfigError> {
    let limits = AdmissionLimits {
        max_pending: env.get("ORDER_ADMISSION_MAX_PENDING", 500)?,
        max_wait: env.millis("ORDER_ADMISSION_MAX_WAIT_MS", 2_000)?,
    };
    if limits.max_pending < 1 {
        return Err(ConfigError::new("ORDER_ADMISSION_MAX_PENDING", "must be at least 1"));
    }
    Ok(limits)
}
