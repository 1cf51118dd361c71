//! api-gateway's settings: read once at start from the environment.

use std::time::Duration;

use shared::configuration::{ConfigError, Env, HttpSettings, TelemetrySettings};
use url::Url;

/// Where the backends live and how long to wait for them.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// `USER_SERVICE_URL` (http://127.0.0.1:3001).
    pub user_service: Url,
    /// `ORDER_SERVICE_URL` (http://127.0.0.1:3002).
    pub order_service: Url,
    /// `UPSTREAM_TIMEOUT_MS` (10000): a backend slower than this gets a 504.
    pub timeout: Duration,
}

/// Everything api-gateway can be configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `HOST`, `PORT` (3005).
    pub http: HttpSettings,
    /// `OTEL_*`, `RUST_LOG`, `APP_ENV`.
    pub telemetry: TelemetrySettings,
    /// `*_SERVICE_URL`, `UPSTREAM_TIMEOUT_MS`.
    pub upstreams: UpstreamSettings,
}

fn service_url(env: &Env, name: &str, default: &str) -> Result<Url, ConfigError> {
    let url: Url = env.get(name, Url::parse(default).map_err(|e| ConfigError::new(name, e))?)?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::new(name, format!("{url} is not an http(s) URL with a host")));
    }
    Ok(url)
}

impl Settings {
    /// Reads and validates the settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            http: HttpSettings::from_env(env, 3005)?,
            telemetry: TelemetrySettings::from_env(env, "api-gateway")?,
            upstreams: UpstreamSettings {
                user_service: service_url(env, "USER_SERVICE_URL", "http://127.0.0.1:3001")?,
                order_service: service_url(env, "ORDER_SERVICE_URL", "http://127.0.0.1:3002")?,
                timeout: env.millis("UPSTREAM_TIMEOUT_MS", 10_000)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_url_must_be_http() {
        let env = Env::from_pairs([("ORDER_SERVICE_URL", "ftp://orders")]);
        assert_eq!(Settings::from_env(&env).unwrap_err().variable, "ORDER_SERVICE_URL");
        let env = Env::from_pairs([("USER_SERVICE_URL", "not a url")]);
        assert_eq!(Settings::from_env(&env).unwrap_err().variable, "USER_SERVICE_URL");
    }
}
