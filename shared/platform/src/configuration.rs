//! Typed settings read once from the environment, with defaults, validated at start.
//!
//! Services never call `std::env::var` themselves: they get an [`Env`] (the
//! process environment, or a map in tests) and build their `Settings` from it.
//! A bad value fails start-up with an error that names the variable.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

/// A settings value that could not be used; start-up stops with this message.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for environment variable {variable}: {reason}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: String,
    /// Why its value was refused.
    pub reason: String,
}

impl ConfigError {
    /// An error about `variable`.
    pub fn new(variable: &str, reason: impl Display) -> Self {
        Self { variable: variable.to_owned(), reason: reason.to_string() }
    }
}

/// A snapshot of environment variables to read settings from.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// The current process environment.
    pub fn from_process() -> Self {
        Self { vars: std::env::vars().collect() }
    }

    /// An environment made of the given pairs (tests use this instead of mutating the process).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self { vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// Returns a copy with `name` set to `value`.
    #[must_use]
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.vars.insert(name.to_owned(), value.into());
        self
    }

    /// The raw value of `name`, if set and not empty.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    /// `name` parsed as `T`, or `default` when unset.
    pub fn get<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        Ok(self.optional(name)?.unwrap_or(default))
    }

    /// `name` parsed as `T`, or `None` when unset.
    pub fn optional<T>(&self, name: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.raw(name)
            .map(|raw| raw.trim().parse::<T>().map_err(|e| ConfigError::new(name, format!("{raw:?}: {e}"))))
            .transpose()
    }

    /// `name` as a string, or `default` when unset.
    pub fn string(&self, name: &str, default: &str) -> String {
        self.raw(name).unwrap_or(default).to_owned()
    }

    /// `name` as one of `allowed` (compared without regard to case), or `default` when unset.
    pub fn one_of(&self, name: &str, default: &str, allowed: &[&'static str]) -> Result<&'static str, ConfigError> {
        let value = self.raw(name).unwrap_or(default).trim();
        allowed
            .iter()
            .copied()
            .find(|choice| choice.eq_ignore_ascii_case(value))
            .ok_or_else(|| ConfigError::new(name, format!("{value:?}: expected one of {}", allowed.join(", "))))
    }

    /// A duration given in milliseconds.
    pub fn millis(&self, name: &str, default_ms: u64) -> Result<Duration, ConfigError> {
        self.get(name, default_ms).map(Duration::from_millis)
    }

    /// Another service's base URL: `http` or `https`, with a host.
    pub fn service_url(&self, name: &str, default: &str) -> Result<url::Url, ConfigError> {
        let url: url::Url = self.get(name, url::Url::parse(default).map_err(|e| ConfigError::new(name, e))?)?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(ConfigError::new(name, format!("{url} is not an http(s) URL with a host")));
        }
        Ok(url)
    }
}

/// Whether the platform runs for development or for production.
///
/// Production refuses development defaults for secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Local runs, tests, demos.
    Development,
    /// Anything real.
    Production,
}

impl Environment {
    /// The name used in logs and trace resources.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Production => "production",
        }
    }
}

impl FromStr for Environment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "development" | "dev" | "local" | "test" => Ok(Self::Development),
            "production" | "prod" => Ok(Self::Production),
            other => Err(format!("unknown environment {other:?}; use development or production")),
        }
    }
}

/// Where the HTTP server listens.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Address to bind (`HOST`, default 127.0.0.1: natively the services are reachable from
    /// this machine only; containers set `HOST=0.0.0.0` explicitly).
    pub host: IpAddr,
    /// Port to bind (`PORT`); 0 picks a free port.
    pub port: u16,
    /// `HTTP_HEADER_READ_TIMEOUT_MS` (10 s): how long a client may take to send a request's
    /// header, counted from when the connection waits for it.
    pub header_read_timeout: Duration,
    /// `HTTP_BODY_READ_TIMEOUT_MS` (10 s): how long a client may take to send a request's
    /// whole body; past it the answer is 408 and the connection closes.
    pub body_read_timeout: Duration,
    /// `HTTP_IDLE_TIMEOUT_MS` (5 s): how long a connection may sit with no request in
    /// flight and no bytes moving before it is closed. (A kept-alive connection waiting
    /// for its next request is also bound by the header timeout, which starts then.)
    pub idle_timeout: Duration,
    /// `HTTP_MAX_CONNECTIONS` (1024): connections held at once; past it the server accepts
    /// no more until one closes (new clients wait in the kernel's backlog).
    pub max_connections: usize,
}

impl HttpSettings {
    /// Reads `HOST`, `PORT` and the `HTTP_*` connection limits.
    pub fn from_env(env: &Env, default_port: u16) -> Result<Self, ConfigError> {
        let settings = Self {
            host: env.get("HOST", IpAddr::from([127, 0, 0, 1]))?,
            port: env.get("PORT", default_port)?,
            header_read_timeout: env.millis("HTTP_HEADER_READ_TIMEOUT_MS", 10_000)?,
            body_read_timeout: env.millis("HTTP_BODY_READ_TIMEOUT_MS", 10_000)?,
            idle_timeout: env.millis("HTTP_IDLE_TIMEOUT_MS", 5_000)?,
            max_connections: env.get("HTTP_MAX_CONNECTIONS", 1024)?,
        };
        for (variable, zero) in [
            ("HTTP_HEADER_READ_TIMEOUT_MS", settings.header_read_timeout.is_zero()),
            ("HTTP_BODY_READ_TIMEOUT_MS", settings.body_read_timeout.is_zero()),
            ("HTTP_IDLE_TIMEOUT_MS", settings.idle_timeout.is_zero()),
            ("HTTP_MAX_CONNECTIONS", settings.max_connections == 0),
        ] {
            if zero {
                return Err(ConfigError::new(variable, "must be at least 1"));
            }
        }
        Ok(settings)
    }
}

/// What the telemetry pipeline needs to know.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// The service's name in logs, traces and metrics (`OTEL_SERVICE_NAME`).
    pub service_name: String,
    /// Deployment environment (`APP_ENV`).
    pub environment: Environment,
    /// Log filter directives (`RUST_LOG`).
    pub log_filter: String,
    /// OTLP gRPC endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`); `none` disables export.
    pub otlp_endpoint: Option<String>,
}

impl TelemetrySettings {
    /// Reads `OTEL_SERVICE_NAME`, `APP_ENV`, `RUST_LOG`, `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn from_env(env: &Env, service_name: &str) -> Result<Self, ConfigError> {
        let endpoint = env.string("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317");
        Ok(Self {
            service_name: env.string("OTEL_SERVICE_NAME", service_name),
            environment: env.get("APP_ENV", Environment::Development)?,
            log_filter: env.string("RUST_LOG", "info"),
            otlp_endpoint: (!endpoint.eq_ignore_ascii_case("none")).then_some(endpoint),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_value_names_its_variable() {
        let env = Env::from_pairs([("PORT", "eighty")]);
        let err = HttpSettings::from_env(&env, 3001).unwrap_err();
        assert_eq!(err.variable, "PORT");
        assert!(err.to_string().contains("PORT"), "{err}");
    }

    #[test]
    fn defaults_apply_when_unset_or_blank() {
        let env = Env::from_pairs([("PORT", "  ")]);
        assert_eq!(HttpSettings::from_env(&env, 3001).unwrap().port, 3001);
    }
}
