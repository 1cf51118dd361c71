//! user-service's settings: read once at start from the environment.

use database::DatabaseSettings;
use eventing::configuration::KafkaSettings;
use platform::auth::ServiceKey;
use platform::configuration::{ConfigError, Env, Environment, HttpSettings, TelemetrySettings};
use secrecy::{ExposeSecret, SecretString};

use crate::domain::{Email, Password};
use crate::hashing::HashingLimits;

/// Development defaults of the first admin; production refuses them.
pub const DEVELOPMENT_ADMIN_EMAIL: &str = "admin@example.com";
/// See [`DEVELOPMENT_ADMIN_EMAIL`].
pub const DEVELOPMENT_ADMIN_PASSWORD: &str = "Admin123!ChangeMe";

/// The first admin, created at start when no user has that e-mail address.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// `ADMIN_EMAIL`.
    pub email: Email,
    /// `ADMIN_PASSWORD`.
    pub password: Password,
}

impl AdminSettings {
    fn from_env(env: &Env, environment: Environment) -> Result<Self, ConfigError> {
        let email = env.string("ADMIN_EMAIL", DEVELOPMENT_ADMIN_EMAIL);
        let password = SecretString::from(env.string("ADMIN_PASSWORD", DEVELOPMENT_ADMIN_PASSWORD));
        if environment == Environment::Production {
            if env.raw("ADMIN_EMAIL").is_none() {
                return Err(ConfigError::new("ADMIN_EMAIL", "production needs the first admin's e-mail address"));
            }
            if password.expose_secret() == DEVELOPMENT_ADMIN_PASSWORD {
                return Err(ConfigError::new("ADMIN_PASSWORD", "production needs a password of its own"));
            }
        }
        Ok(Self {
            email: Email::parse(&email).map_err(|e| ConfigError::new("ADMIN_EMAIL", e))?,
            password: Password::parse(password.expose_secret().to_owned())
                .map_err(|e| ConfigError::new("ADMIN_PASSWORD", e))?,
        })
    }
}

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
    /// `SERVICE_API_KEY`.
    pub service_key: ServiceKey,
    /// `ADMIN_EMAIL`, `ADMIN_PASSWORD`.
    pub admin: AdminSettings,
    /// `HASHING_MAX_QUEUED` (64), `HASHING_MAX_WAIT_MS` (2000), `HASHING_MAX_PER_ACCOUNT`
    /// (2): admission to password hashing (see [`crate::hashing`]).
    pub hashing: HashingLimits,
}

impl Settings {
    /// Reads and validates the settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let telemetry = TelemetrySettings::from_env(env, "user-service")?;
        let settings = Self {
            http: HttpSettings::from_env(env, 3001)?,
            database: DatabaseSettings::from_env(env, "userdb")?,
            kafka: KafkaSettings::from_env(env, "user-service")?,
            service_key: ServiceKey::from_env(env, telemetry.environment)?,
            admin: AdminSettings::from_env(env, telemetry.environment)?,
            hashing: HashingLimits {
                max_queued: env.get("HASHING_MAX_QUEUED", 64)?,
                max_wait: env.millis("HASHING_MAX_WAIT_MS", 2_000)?,
                max_per_account: env.get("HASHING_MAX_PER_ACCOUNT", 2)?,
            },
            telemetry,
        };
        if settings.hashing.max_per_account == 0 {
            return Err(ConfigError::new("HASHING_MAX_PER_ACCOUNT", "must be at least 1"));
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_refuses_development_secrets() {
        let production = Env::from_pairs([("APP_ENV", "production"), ("SERVICE_API_KEY", &"k".repeat(40))]);
        assert_eq!(Settings::from_env(&production).unwrap_err().variable, "ADMIN_EMAIL");
        let production = production.with("ADMIN_EMAIL", "root@example.com");
        assert_eq!(Settings::from_env(&production).unwrap_err().variable, "ADMIN_PASSWORD");
        let production = production.with("ADMIN_PASSWORD", "An0ther!Secret");
        assert!(Settings::from_env(&production).is_ok());
        let weak_key = production.with("SERVICE_API_KEY", "short");
        assert_eq!(Settings::from_env(&weak_key).unwrap_err().variable, "SERVICE_API_KEY");
    }
}
