//! api-gateway's settings: read once at start from the environment.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::http::HeaderValue;
use platform::auth::ServiceKey;
use platform::configuration::{ConfigError, Env, Environment, HttpSettings, TelemetrySettings};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// The development default of `JWT_SECRET`; production refuses it.
pub const DEVELOPMENT_JWT_SECRET: &str = "development-jwt-secret-change-me";

/// How tokens are signed and checked.
#[derive(Clone)]
pub struct JwtSettings {
    /// `JWT_SECRET`: the HS256 key.
    pub secret: SecretString,
    /// `JWT_ISSUER` (rust-event-platform).
    pub issuer: String,
    /// `JWT_AUDIENCE` (platform-api).
    pub audience: String,
    /// `JWT_EXPIRATION_SECONDS` (3600).
    pub expiration: Duration,
    /// `AUTH_STATUS_TTL_MS` (2000): how long the gateway trusts what it last heard of an
    /// account (exists, role); the most a deleted account or a changed role keeps working.
    pub status_ttl: Duration,
}

impl std::fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSettings")
            .field("secret", &"[redacted]")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("expiration", &self.expiration)
            .field("status_ttl", &self.status_ttl)
            .finish()
    }
}

impl JwtSettings {
    fn from_env(env: &Env, environment: Environment) -> Result<Self, ConfigError> {
        let secret = env.string("JWT_SECRET", DEVELOPMENT_JWT_SECRET);
        if environment == Environment::Production && (secret == DEVELOPMENT_JWT_SECRET || secret.len() < 32) {
            return Err(ConfigError::new("JWT_SECRET", "production needs a random secret of at least 32 characters"));
        }
        let expiration = Duration::from_secs(env.get("JWT_EXPIRATION_SECONDS", 3600)?);
        if expiration.is_zero() {
            return Err(ConfigError::new("JWT_EXPIRATION_SECONDS", "must be positive"));
        }
        Ok(Self {
            secret: SecretString::from(secret),
            issuer: env.string("JWT_ISSUER", "rust-event-platform"),
            audience: env.string("JWT_AUDIENCE", "platform-api"),
            expiration,
            status_ttl: env.millis("AUTH_STATUS_TTL_MS", 2_000)?,
        })
    }

    /// The key bytes.
    pub fn key(&self) -> &[u8] {
        self.secret.expose_secret().as_bytes()
    }
}

/// Request limits per client.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// `AUTH_RATE_LIMIT_PER_MINUTE` (30): sign-ups and sign-ins per client address.
    pub auth_per_minute: u32,
    /// `API_RATE_LIMIT_PER_MINUTE` (1200): other requests per authenticated principal.
    pub api_per_minute: u32,
    /// `MAX_BODY_BYTES` (1 MiB).
    pub max_body_bytes: usize,
    /// `CORS_ALLOWED_ORIGINS`: comma-separated origins; empty allows none.
    pub cors_origins: Vec<HeaderValue>,
}

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
    /// `HOST`, `PORT` (3005), and the `HTTP_*` connection limits.
    pub http: HttpSettings,
    /// `ADMIN_HOST` (127.0.0.1), `ADMIN_PORT` (9305): where `/health/*` and `/metrics` are
    /// served, apart from the public port.
    pub admin: SocketAddr,
    /// `TRUST_CLIENT_TRACE_CONTEXT` (false): whether a client's `traceparent` becomes the
    /// parent of the request's trace. Off, each public request starts a trace of its own
    /// and links the client's; on only behind a trusted edge that sets the header itself.
    pub trust_client_trace_context: bool,
    /// `OTEL_*`, `RUST_LOG`, `APP_ENV`.
    pub telemetry: TelemetrySettings,
    /// `*_SERVICE_URL`, `UPSTREAM_TIMEOUT_MS`.
    pub upstreams: UpstreamSettings,
    /// `JWT_*`.
    pub jwt: JwtSettings,
    /// `SERVICE_API_KEY`.
    pub service_key: ServiceKey,
    /// Rate, size and origin limits.
    pub limits: LimitSettings,
    /// `HTTP_SERVING_THREADS` (the machine's cores): threads serving the public port, each
    /// owning its connections and its pool of backend connections.
    pub serving_threads: usize,
}

impl Settings {
    /// Reads and validates the settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let telemetry = TelemetrySettings::from_env(env, "api-gateway")?;
        let cors_origins = env
            .string("CORS_ALLOWED_ORIGINS", "")
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|o| HeaderValue::from_str(o).map_err(|e| ConfigError::new("CORS_ALLOWED_ORIGINS", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let positive = |name: &str, default: u32| -> Result<u32, ConfigError> {
            let value = env.get(name, default)?;
            if value == 0 { Err(ConfigError::new(name, "must be positive")) } else { Ok(value) }
        };
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let serving_threads = env.get("HTTP_SERVING_THREADS", cores)?;
        if !(1..=1024).contains(&serving_threads) {
            return Err(ConfigError::new("HTTP_SERVING_THREADS", "must be between 1 and 1024"));
        }
        Ok(Self {
            serving_threads,
            http: HttpSettings::from_env(env, 3005)?,
            admin: SocketAddr::new(env.get("ADMIN_HOST", IpAddr::from([127, 0, 0, 1]))?, env.get("ADMIN_PORT", 9305)?),
            trust_client_trace_context: env.get("TRUST_CLIENT_TRACE_CONTEXT", false)?,
            jwt: JwtSettings::from_env(env, telemetry.environment)?,
            service_key: ServiceKey::from_env(env, telemetry.environment)?,
            limits: LimitSettings {
                auth_per_minute: positive("AUTH_RATE_LIMIT_PER_MINUTE", 30)?,
                api_per_minute: positive("API_RATE_LIMIT_PER_MINUTE", 1200)?,
                max_body_bytes: env.get("MAX_BODY_BYTES", 1024 * 1024)?,
                cors_origins,
            },
            telemetry,
            upstreams: UpstreamSettings {
                user_service: backend_url(
                    "USER_SERVICE_URL",
                    env.service_url("USER_SERVICE_URL", "http://127.0.0.1:3001")?,
                )?,
                order_service: backend_url(
                    "ORDER_SERVICE_URL",
                    env.service_url("ORDER_SERVICE_URL", "http://127.0.0.1:3002")?,
                )?,
                timeout: env.millis("UPSTREAM_TIMEOUT_MS", 10_000)?,
            },
        })
    }
}

/// A backend's URL: plain HTTP inside the platform (TLS, where the network needs it, is the
/// mesh's or the ingress's), with the path its routes sit under, if any, and no query: the
/// gateway builds every path and query after it.
fn backend_url(name: &str, url: Url) -> Result<Url, ConfigError> {
    if url.scheme() != "http" || url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(name, format!("{url} is not http://host:port[/path]")));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_refuses_the_development_jwt_secret() {
        let env = Env::from_pairs([("APP_ENV", "production"), ("SERVICE_API_KEY", &"k".repeat(40))]);
        assert_eq!(Settings::from_env(&env).unwrap_err().variable, "JWT_SECRET");
        assert!(Settings::from_env(&env.with("JWT_SECRET", "s".repeat(40))).is_ok());
    }

    #[test]
    fn a_service_url_must_be_http() {
        let env = Env::from_pairs([("ORDER_SERVICE_URL", "ftp://orders")]);
        assert_eq!(Settings::from_env(&env).unwrap_err().variable, "ORDER_SERVICE_URL");
        let env = Env::from_pairs([("USER_SERVICE_URL", "not a url")]);
        assert_eq!(Settings::from_env(&env).unwrap_err().variable, "USER_SERVICE_URL");
        for url in ["https://orders:3002", "http://orders:3002/?a=b", "http://orders:3002/#top"] {
            let env = Env::from_pairs([("ORDER_SERVICE_URL", url)]);
            assert_eq!(Settings::from_env(&env).unwrap_err().variable, "ORDER_SERVICE_URL", "{url}");
        }
        for url in ["http://orders:3002/", "http://orders:3002/v1/"] {
            assert!(Settings::from_env(&Env::from_pairs([("ORDER_SERVICE_URL", url)])).is_ok(), "{url}");
        }
    }
}
