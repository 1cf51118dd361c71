//! Forwarding to a backend: an explicit table of public routes and the backend
//! routes they map to; same method, query and body;
//! the request id and trace context go along; a backend that is down or slow
//! becomes a 502 or 504 problem, never a hang or a stack trace.

use std::sync::Arc;

use anyhow::Context;
use axum::Extension;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use contracts::api::users::User;
use platform::auth::{
    API_KEY_HEADER, CREDENTIALS_VERSION_HEADER, PRINCIPAL_ID_HEADER, PRINCIPAL_ROLE_HEADER, Principal, ServiceKey,
};
use platform::http::{Problem, REQUEST_ID_HEADER, RequestId, inject_trace_context};
use tracing::{Instrument, field};
use url::Url;
use uuid::Uuid;

use super::AppState;
use crate::auth::{AccountState, Verified};
use crate::configuration::UpstreamSettings;

/// Headers a client may send that a backend needs; everything else stays at the edge.
const FORWARDED_REQUEST_HEADERS: [header::HeaderName; 2] = [header::CONTENT_TYPE, header::ACCEPT];

/// Headers of a backend's answer that reach the client; internal ones stay inside.
const FORWARDED_RESPONSE_HEADERS: [header::HeaderName; 2] = [header::CONTENT_TYPE, header::RETRY_AFTER];

/// The backends and the client that reaches them.
#[derive(Clone)]
pub struct Upstreams {
    client: reqwest::Client,
    users: Arc<Url>,
    orders: Arc<Url>,
    key: ServiceKey,
    max_body_bytes: usize,
}

impl Upstreams {
    /// A pooled client with the configured timeout.
    pub fn new(settings: &UpstreamSettings, key: ServiceKey, max_body_bytes: usize) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(std::time::Duration::from_secs(2)))
            // Shorter than the backends' idle timeout (`HTTP_IDLE_TIMEOUT_MS`, 5 s): the
            // gateway drops a pooled connection before a backend closes it under a request.
            .pool_idle_timeout(std::time::Duration::from_secs(4))
            .build()
            .context("cannot build the upstream HTTP client")?;
        // Series exist from the start, so the error panels read 0 rather than "no data".
        for service in ["user-service", "order-service"] {
            for kind in ["timeout", "unavailable"] {
                metrics::counter!("gateway_upstream_errors_total", "service" => service, "kind" => kind).absolute(0);
            }
        }
        Ok(Self {
            client,
            users: Arc::new(settings.user_service.clone()),
            orders: Arc::new(settings.order_service.clone()),
            key,
            max_body_bytes,
        })
    }

    /// Calls a user-service auth route with the client's body and content type, and returns
    /// its JSON answer; an error answer comes back as the problem user-service gave.
    pub async fn call_user_service(
        &self,
        path: &str,
        request_id: &RequestId,
        client_headers: &HeaderMap,
        body: Bytes,
    ) -> Result<(User, u32), Problem> {
        let mut headers = HeaderMap::new();
        if let Some(content_type) = client_headers.get(header::CONTENT_TYPE) {
            headers.insert(header::CONTENT_TYPE, content_type.clone());
        }
        let response =
            self.send(&self.users, "user-service", Method::POST, path, None, headers, request_id, None, body).await?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let version = credentials_version(response.headers());
        let bytes = response.bytes().await.map_err(|error| upstream_problem("user-service", &error))?;
        if status.is_success() {
            let user = serde_json::from_slice(&bytes).map_err(|e| {
                Problem::internal(&anyhow::anyhow!(e).context("user-service answered with no valid user"))
            })?;
            Ok((user, version))
        } else {
            let mut problem = serde_json::from_slice::<Problem>(&bytes).unwrap_or_else(|_| Problem::new(status, None));
            // `Retry-After` travels as a header, not in the problem's body.
            problem.retry_after = retry_after;
            Err(problem)
        }
    }

    /// The account's state as user-service has it, asked as the principal itself (every
    /// account may read its own record).
    pub async fn account_state(&self, principal: Principal, request_id: &RequestId) -> Result<AccountState, Problem> {
        let path = format!("/users/{}", principal.id);
        let response = self
            .send(
                &self.users,
                "user-service",
                Method::GET,
                &path,
                None,
                HeaderMap::new(),
                request_id,
                Some(principal),
                Bytes::new(),
            )
            .await?;
        match response.status() {
            StatusCode::OK => {
                let version = credentials_version(response.headers());
                #[derive(serde::Deserialize)]
                struct Account {
                    role: platform::auth::Role,
                }
                let account: Account = response.json().await.map_err(|e| {
                    Problem::internal(&anyhow::anyhow!(e).context("user-service answered without a role"))
                })?;
                Ok(AccountState::Active(account.role, version))
            }
            StatusCode::NOT_FOUND => Ok(AccountState::Gone),
            status => Err(Problem::internal(&anyhow::anyhow!("user-service answered {status} for an account check"))),
        }
    }

    /// One call to a backend with the service key, the principal, the request id and the
    /// trace context, inside a client span.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        base: &Url,
        service: &'static str,
        method: Method,
        path: &str,
        query: Option<&str>,
        mut headers: HeaderMap,
        request_id: &RequestId,
        principal: Option<Principal>,
        body: Bytes,
    ) -> Result<reqwest::Response, Problem> {
        let mut target = base.join(path).context("cannot build upstream URL")?;
        target.set_query(query);
        if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
            headers.insert(REQUEST_ID_HEADER, value);
        }
        if let Ok(value) = HeaderValue::from_str(self.key.expose()) {
            headers.insert(API_KEY_HEADER, value);
        }
        if let Some(principal) = principal {
            if let Ok(id) = HeaderValue::from_str(&principal.id.to_string()) {
                headers.insert(PRINCIPAL_ID_HEADER, id);
            }
            headers.insert(PRINCIPAL_ROLE_HEADER, HeaderValue::from_static(principal.role.as_str()));
        }
        let span = tracing::info_span!(
            "http.client.request",
            otel.name = format!("{method} {service}"),
            otel.kind = "client",
            otel.status_code = field::Empty,
            http.request.method = %method,
            url.full = %target,
            server.address = service,
            http.response.status_code = field::Empty,
        );
        async {
            inject_trace_context(&mut headers);
            let response = self.client.request(method, target).headers(headers).body(body).send().await;
            let span = tracing::Span::current();
            match &response {
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
            response.map_err(|error| upstream_problem(service, &error))
        }
        .instrument(span)
        .await
    }
}

/// Which backend a public route is served by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// user-service.
    Users,
    /// order-service.
    Orders,
}

/// One public route and the backend route it is forwarded to.
#[derive(Debug)]
pub struct ForwardedRoute {
    /// The route as clients call it (an axum path template).
    pub public: &'static str,
    /// The methods the backend serves on it; anything else is a 405 at the edge.
    pub methods: &'static [Method],
    /// The service that serves it.
    pub backend: Backend,
    /// The backend's own route; `{id}` is filled with the public route's validated `{id}`.
    pub target: &'static str,
}

/// Every route the gateway forwards, and nothing else. A backend's internal routes
/// (`/auth/*`, `/metrics`, `/health/*`) are absent on purpose: they are unreachable
/// through `/api`, however the path is spelt, because the backend URL is built from
/// this table and a parsed id, never from the client's path.
pub const FORWARDED_ROUTES: [ForwardedRoute; 5] = [
    ForwardedRoute {
        public: "/api/users",
        methods: &[Method::GET, Method::POST],
        backend: Backend::Users,
        target: "/users",
    },
    ForwardedRoute {
        public: "/api/users/{id}",
        methods: &[Method::GET, Method::PUT, Method::DELETE],
        backend: Backend::Users,
        target: "/users/{id}",
    },
    ForwardedRoute {
        public: "/api/orders",
        methods: &[Method::GET, Method::POST],
        backend: Backend::Orders,
        target: "/orders",
    },
    ForwardedRoute {
        public: "/api/orders/stats",
        methods: &[Method::GET],
        backend: Backend::Orders,
        target: "/orders/stats",
    },
    ForwardedRoute {
        public: "/api/orders/{id}",
        methods: &[Method::GET, Method::PATCH, Method::DELETE],
        backend: Backend::Orders,
        target: "/orders/{id}",
    },
];

impl ForwardedRoute {
    /// The backend path for this call: the target with its `{id}` filled in. Ids are UUIDs on
    /// every route, so anything else (dot segments, encoded slashes, text) is a 400 here.
    fn backend_path(&self, params: &RawPathParams) -> Result<String, Problem> {
        let mut path = self.target.to_owned();
        for (name, value) in params {
            let id = Uuid::parse_str(value)
                .map_err(|_| Problem::bad_request(format!("path parameter `{name}` must be a UUID")))?;
            path = path.replace(&format!("{{{name}}}"), &id.to_string());
        }
        Ok(path)
    }
}

/// Forwards a call on `route` to its backend, as the authenticated principal: the path
/// and the body are checked first, then the account, then the call is made.
pub async fn forward_route(
    route: &'static ForwardedRoute,
    State(state): State<AppState>,
    Extension(token): Extension<Verified>,
    request_id: RequestId,
    params: Result<RawPathParams, RawPathParamsRejection>,
    request: Request,
) -> Result<Response, Problem> {
    let principal = token.principal;
    let params = params.map_err(|rejection| Problem::bad_request(rejection.body_text()))?;
    let path = route.backend_path(&params)?;
    let upstreams = &state.upstreams;
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, upstreams.max_body_bytes).await.map_err(|error| {
        let too_large = Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Some(format!("request body exceeds {} bytes", upstreams.max_body_bytes)),
        );
        platform::http::body_problem(&error, too_large)
    })?;
    state.accounts.check(upstreams, token, &request_id).await?;
    let (base, service) = match route.backend {
        Backend::Users => (&upstreams.users, "user-service"),
        Backend::Orders => (&upstreams.orders, "order-service"),
    };
    let mut headers = HeaderMap::new();
    for name in FORWARDED_REQUEST_HEADERS {
        if let Some(value) = parts.headers.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    let response = upstreams
        .send(base, service, parts.method, &path, parts.uri.query(), headers, &request_id, Some(principal), body)
        .await?;
    let status = response.status();
    let kept: Vec<_> = FORWARDED_RESPONSE_HEADERS
        .iter()
        .filter_map(|name| response.headers().get(name).map(|value| (name.clone(), value.clone())))
        .collect();
    let bytes = response.bytes().await.map_err(|error| upstream_problem(service, &error))?;
    let mut reply = Response::new(Body::from(bytes));
    *reply.status_mut() = status;
    reply.headers_mut().extend(kept);
    Ok(reply)
}

/// The account's credentials version user-service sent; 0 (an account never changed)
/// when it sent none.
fn credentials_version(headers: &HeaderMap) -> u32 {
    headers.get(CREDENTIALS_VERSION_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// A backend's `Retry-After` in seconds, when it sent one.
fn retry_after(headers: &HeaderMap) -> Option<u32> {
    headers.get(header::RETRY_AFTER)?.to_str().ok()?.parse().ok()
}

fn upstream_problem(service: &str, error: &reqwest::Error) -> Problem {
    metrics::counter!("gateway_upstream_errors_total", "service" => service.to_owned(), "kind" => if error.is_timeout() { "timeout" } else { "unavailable" }).increment(1);
    tracing::warn!(service, error = %error, "upstream call failed");
    if error.is_timeout() {
        Problem::new(StatusCode::GATEWAY_TIMEOUT, Some(format!("{service} did not answer in time")))
    } else {
        Problem::new(StatusCode::BAD_GATEWAY, Some(format!("{service} is unavailable")))
    }
}
