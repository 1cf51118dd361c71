//! The backends and the calls the gateway makes to them, over the kept-alive
//! connections of `pool`.
//!
//! Every call carries the service key, the principal, the request id and the trace
//! context, inside a client span. Bodies stream through in both directions: a request
//! body goes on as the client sends it, within the body limit and the body deadline, and a
//! backend's answer goes back as it arrives, within the upstream timeout. A backend that
//! is down or slow becomes a 502 or 504 problem, never a hang or a stack trace.

mod pool;

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body::Body as _;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use platform::auth::{API_KEY_HEADER, PRINCIPAL_ID_HEADER, PRINCIPAL_ROLE_HEADER, Principal, ServiceKey};
use platform::http::{BodyTimedOut, Problem, REQUEST_ID_HEADER, RequestId, body_within, inject_trace_context};
use tokio::time::Instant;
use tracing::{Instrument, field};

use self::pool::{Answer, Pool, PoolSettings};
use crate::configuration::UpstreamSettings;

/// The most of a backend's answer the gateway reads itself (a user on sign-in, an account
/// check); forwarded answers stream through unread.
const MAX_READ_ANSWER_BYTES: usize = 64 * 1024;

/// One backend service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// user-service.
    Users,
    /// order-service.
    Orders,
}

impl Service {
    /// The name it goes by in spans, metrics and problems.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Users => "user-service",
            Self::Orders => "order-service",
        }
    }
}

/// One call to a backend.
pub struct Call<'a> {
    /// Which backend.
    pub service: Service,
    /// The method, as the client sent it.
    pub method: Method,
    /// The backend's path, built by the gateway (never the client's).
    pub path: &'a str,
    /// The client's query, if any.
    pub query: Option<&'a str>,
    /// Headers to send besides the ones every call carries.
    pub headers: HeaderMap,
    /// Whose call it is; `None` for the sign-in routes.
    pub principal: Option<Principal>,
    /// The body, streamed.
    pub body: Body,
}

/// Where a backend is reached, and the connections that reach it.
struct Backend {
    /// `http://host:port`, for spans.
    origin: String,
    /// The path the backend's routes sit under (empty, or `/prefix` without a trailing slash).
    prefix: String,
    /// Its `Host` header, made once.
    host: HeaderValue,
    pool: Arc<Pool>,
}

impl Backend {
    /// `url` is an `http` URL without a query (see `configuration::backend_url`).
    fn new(url: &url::Url, settings: PoolSettings) -> anyhow::Result<Self> {
        let authority = &url[url::Position::BeforeHost..url::Position::AfterPort];
        let host = HeaderValue::from_str(authority).with_context(|| format!("{url} has no valid host"))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let address = format!("{}:{port}", url.host_str().unwrap_or_default());
        Ok(Self {
            origin: format!("http://{authority}"),
            prefix: url.path().trim_end_matches('/').to_owned(),
            host,
            pool: Pool::new(address, settings),
        })
    }

    /// The request target as the backend sees it (origin form): its prefix, the path the
    /// gateway built, and the client's query.
    fn target(&self, path: &str, query: Option<&str>) -> Result<Uri, Problem> {
        let prefix = &self.prefix;
        let mut target = String::with_capacity(prefix.len() + path.len() + query.map_or(0, |q| q.len() + 1));
        target.push_str(prefix);
        target.push_str(path);
        if let Some(query) = query {
            target.push('?');
            target.push_str(query);
        }
        Uri::try_from(target).map_err(|_| Problem::bad_request("the query cannot be forwarded"))
    }
}

/// The backends and the kept-alive connections that reach them.
pub struct Upstreams {
    users: Backend,
    orders: Backend,
    /// The service key as a header value, made once (and marked sensitive).
    key: HeaderValue,
    timeout: Duration,
    max_body_bytes: usize,
}

impl Upstreams {
    /// The backends of `settings`, each with its pool, and the key every call carries.
    pub fn new(settings: &UpstreamSettings, key: &ServiceKey, max_body_bytes: usize) -> anyhow::Result<Self> {
        let pool = PoolSettings {
            connect_timeout: settings.timeout.min(Duration::from_secs(2)),
            // Shorter than the backends' idle timeout (`HTTP_IDLE_TIMEOUT_MS`, 5 s): the
            // gateway drops a pooled connection before a backend closes it under a request.
            idle_timeout: Duration::from_secs(4),
        };
        let mut key = HeaderValue::from_str(key.expose()).context("SERVICE_API_KEY is not a valid header value")?;
        key.set_sensitive(true);
        // Series exist from the start, so the error panels read 0 rather than "no data".
        for service in [Service::Users, Service::Orders] {
            for kind in ["timeout", "unavailable"] {
                metrics::counter!("gateway_upstream_errors_total", "service" => service.name(), "kind" => kind)
                    .absolute(0);
            }
        }
        Ok(Self {
            users: Backend::new(&settings.user_service, pool)?,
            orders: Backend::new(&settings.order_service, pool)?,
            key,
            timeout: settings.timeout,
            max_body_bytes,
        })
    }

    /// The largest request body a backend is sent.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Makes `call` and returns the backend's answer with its body streaming, bounded by
    /// the upstream timeout as a whole.
    pub async fn forward(&self, call: Call<'_>, request_id: &RequestId) -> Result<Response<Body>, Problem> {
        let deadline = Instant::now() + self.timeout;
        let response = self.send(call, request_id, deadline).await?;
        let (parts, body) = response.into_parts();
        let remaining = deadline.saturating_duration_since(Instant::now());
        Ok(Response::from_parts(parts, body_within(body, remaining)))
    }

    /// Makes `call` and reads the backend's whole answer (for the gateway's own use).
    pub async fn fetch(
        &self,
        call: Call<'_>,
        request_id: &RequestId,
    ) -> Result<(StatusCode, HeaderMap, Bytes), Problem> {
        let deadline = Instant::now() + self.timeout;
        let service = call.service;
        let response = self.send(call, request_id, deadline).await?;
        let (parts, body) = response.into_parts();
        let read = Limited::new(body, MAX_READ_ANSWER_BYTES).collect();
        let bytes = match tokio::time::timeout_at(deadline, read).await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(_)) => return Err(upstream_problem(service, Failure::Unavailable, "its answer broke off")),
            Err(_) => return Err(upstream_problem(service, Failure::Timeout, "its answer took too long")),
        };
        Ok((parts.status, parts.headers, bytes))
    }

    /// Sends `call` and waits for the answer's head until `deadline`.
    async fn send(
        &self,
        call: Call<'_>,
        request_id: &RequestId,
        deadline: Instant,
    ) -> Result<Response<Answer>, Problem> {
        let Call { service, method, path, query, mut headers, principal, body } = call;
        let backend = self.backend(service);
        let target = backend.target(path, query)?;
        headers.insert(header::HOST, backend.host.clone());
        headers.insert(REQUEST_ID_HEADER, request_id.header_value());
        headers.insert(API_KEY_HEADER, self.key.clone());
        if let Some(principal) = principal {
            let mut id = uuid::Uuid::encode_buffer();
            if let Ok(value) = HeaderValue::from_str(principal.id.hyphenated().encode_lower(&mut id)) {
                headers.insert(PRINCIPAL_ID_HEADER, value);
            }
            headers.insert(PRINCIPAL_ROLE_HEADER, HeaderValue::from_static(principal.role.as_str()));
        }
        // A request without a body (most reads) goes out without the limit's wrapper.
        let body =
            if body.is_end_stream() { Body::empty() } else { Body::new(Limited::new(body, self.max_body_bytes)) };
        let span = tracing::info_span!(
            "http.client.request",
            otel.name = %format_args!("{method} {}", service.name()),
            otel.kind = "client",
            otel.status_code = field::Empty,
            http.request.method = %method,
            url.full = %format_args!("{}{target}", backend.origin),
            server.address = service.name(),
            http.response.status_code = field::Empty,
        );
        async move {
            inject_trace_context(&mut headers);
            let mut request = Request::new(body);
            *request.method_mut() = method;
            *request.uri_mut() = target;
            *request.headers_mut() = headers;
            let result = match tokio::time::timeout_at(deadline, backend.pool.send(request)).await {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(error)) => Err(failed_call(service, &error)),
                Err(_) => Err(upstream_problem(service, Failure::Timeout, "no answer in time")),
            };
            let span = tracing::Span::current();
            match &result {
                Ok(response) => {
                    span.record("http.response.status_code", response.status().as_u16());
                    if response.status().is_server_error() {
                        span.record("otel.status_code", "ERROR");
                    }
                }
                Err(_) => {
                    span.record("otel.status_code", "ERROR");
                }
            }
            result
        }
        .instrument(span)
        .await
    }

    /// Where `service` is reached.
    fn backend(&self, service: Service) -> &Backend {
        match service {
            Service::Users => &self.users,
            Service::Orders => &self.orders,
        }
    }
}

/// How a call failed, as counted in `gateway_upstream_errors_total{kind}`.
#[derive(Debug, Clone, Copy)]
enum Failure {
    Timeout,
    Unavailable,
}

/// The problem for a call that failed on the way out: the client's own body (too large,
/// too slow) is the client's 413 or 408; anything else is the backend's 502.
fn failed_call(service: Service, error: &pool::SendError) -> Problem {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(error) = cause {
        if error.is::<LengthLimitError>() {
            return too_large();
        }
        if error.is::<BodyTimedOut>() {
            return Problem::new(StatusCode::REQUEST_TIMEOUT, Some(error.to_string()));
        }
        cause = error.source();
    }
    upstream_problem(service, Failure::Unavailable, &error.to_string())
}

/// 413 for a request body over the limit.
pub fn too_large() -> Problem {
    Problem::new(StatusCode::PAYLOAD_TOO_LARGE, Some("the request body is too large".to_owned()))
}

fn upstream_problem(service: Service, failure: Failure, why: &str) -> Problem {
    let (kind, status, detail) = match failure {
        Failure::Timeout => ("timeout", StatusCode::GATEWAY_TIMEOUT, "did not answer in time"),
        Failure::Unavailable => ("unavailable", StatusCode::BAD_GATEWAY, "is unavailable"),
    };
    metrics::counter!("gateway_upstream_errors_total", "service" => service.name(), "kind" => kind).increment(1);
    tracing::warn!(service = service.name(), error = why, "upstream call failed");
    Problem::new(status, Some(format!("{} {detail}", service.name())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(url: &str) -> Backend {
        let settings = PoolSettings { connect_timeout: Duration::from_secs(1), idle_timeout: Duration::from_secs(1) };
        Backend::new(&url::Url::parse(url).expect("a URL"), settings).expect("a backend")
    }

    #[test]
    fn the_target_keeps_the_backends_path_and_the_clients_query() {
        let plain = backend("http://users:3001");
        assert_eq!(plain.target("/users", Some("page=2")).unwrap(), "/users?page=2");
        assert_eq!(plain.origin, "http://users:3001");
        let prefixed = backend("http://users:3001/v1/");
        assert_eq!(prefixed.target("/users", None).unwrap(), "/v1/users");
        assert_eq!(prefixed.origin, "http://users:3001");
        assert_eq!(prefixed.host, "users:3001");
    }
}
