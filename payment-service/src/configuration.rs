//! payment-service's settings: read once at start from the environment.

use std::time::Duration;

use database::DatabaseSettings;
use eventing::configuration::KafkaSettings;
use platform::configuration::{ConfigError, Env, HttpSettings, TelemetrySettings};

/// How the simulated payment provider behaves.
#[derive(Debug, Clone)]
pub struct PaymentSettings {
    /// `PAYMENT_DELAY_MS` (1000): how long a payment takes; 0 for benchmarks and tests.
    pub delay: Duration,
    /// `PAYMENT_FAILURE_RATE` (0.1): share of orders whose payment is declined, 0 to 1.
    pub failure_rate: f64,
}

/// Everything payment-service can be configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `HOST`, `PORT` (3003).
    pub http: HttpSettings,
    /// `DATABASE_*` (database `paymentdb`).
    pub database: DatabaseSettings,
    /// `KAFKA_*`.
    pub kafka: KafkaSettings,
    /// `OTEL_*`, `RUST_LOG`, `APP_ENV`.
    pub telemetry: TelemetrySettings,
    /// `PAYMENT_*`.
    pub payment: PaymentSettings,
}

impl Settings {
    /// Reads and validates the settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let failure_rate: f64 = env.get("PAYMENT_FAILURE_RATE", 0.1)?;
        if !(0.0..=1.0).contains(&failure_rate) {
            return Err(ConfigError::new("PAYMENT_FAILURE_RATE", format!("{failure_rate} is not between 0 and 1")));
        }
        Ok(Self {
            http: HttpSettings::from_env(env, 3003)?,
            database: DatabaseSettings::from_env(env, "paymentdb")?,
            kafka: KafkaSettings::from_env(env, "payment-service")?,
            telemetry: TelemetrySettings::from_env(env, "payment-service")?,
            payment: PaymentSettings { delay: env.millis("PAYMENT_DELAY_MS", 1_000)?, failure_rate },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_rate_outside_zero_to_one_is_refused() {
        for bad in ["1.5", "-0.1", "often"] {
            let env = Env::from_pairs([("PAYMENT_FAILURE_RATE", bad)]);
            assert_eq!(Settings::from_env(&env).unwrap_err().variable, "PAYMENT_FAILURE_RATE", "{bad}");
        }
    }
}
