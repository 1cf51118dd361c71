//! Forwarding to a backend: same method, path below `/api`, query and body;
//! the request id and trace context go along; a backend that is down or slow
//! becomes a 502 or 504 problem, never a hang or a stack trace.

use std::sync::Arc;

use anyhow::Context;
use axum::Extension;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use shared::auth::{API_KEY_HEADER, PRINCIPAL_ID_HEADER, PRINCIPAL_ROLE_HEADER, Principal, ServiceKey};
use shared::http::{Problem, REQUEST_ID_HEADER, RequestId, inject_trace_context};
use tracing::{Instrument, field};
use url::Url;

use super::AppState;
use crate::configuration::UpstreamSettings;

/// Headers a client may send that a backend needs; everything else stays at the edge.
const FORWARDED_REQUEST_HEADERS: [header::HeaderName; 2] = [header::CONTENT_TYPE, header::ACCEPT];

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
            .pool_idle_timeout(std::time::Duration::from_secs(30))
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
    ) -> Result<serde_json::Value, Problem> {
        let mut headers = HeaderMap::new();
        if let Some(content_type) = client_headers.get(header::CONTENT_TYPE) {
            headers.insert(header::CONTENT_TYPE, content_type.clone());
        }
        let response =
            self.send(&self.users, "user-service", Method::POST, path, None, headers, request_id, None, body).await?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|error| upstream_problem("user-service", &error))?;
        if status.is_success() {
            serde_json::from_slice(&bytes)
                .map_err(|e| Problem::internal(&anyhow::anyhow!(e).context("user-service answered with invalid JSON")))
        } else {
            Err(serde_json::from_slice::<Problem>(&bytes).unwrap_or_else(|_| Problem::new(status, None)))
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

/// `/api/users…` → user-service.
pub async fn users(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, Problem> {
    let upstreams = &state.upstreams;
    forward(upstreams, &upstreams.users, "user-service", principal, &request_id, request).await
}

/// `/api/orders…` → order-service.
pub async fn orders(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, Problem> {
    let upstreams = &state.upstreams;
    forward(upstreams, &upstreams.orders, "order-service", principal, &request_id, request).await
}

async fn forward(
    upstreams: &Upstreams,
    base: &Url,
    service: &'static str,
    principal: Principal,
    request_id: &RequestId,
    request: Request,
) -> Result<Response, Problem> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().strip_prefix("/api").unwrap_or(parts.uri.path());
    let body = to_bytes(body, upstreams.max_body_bytes).await.map_err(|_| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Some(format!("request body exceeds {} bytes", upstreams.max_body_bytes)),
        )
    })?;
    let mut headers = HeaderMap::new();
    for name in FORWARDED_REQUEST_HEADERS {
        if let Some(value) = parts.headers.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    let response = upstreams
        .send(base, service, parts.method, path, parts.uri.query(), headers, request_id, Some(principal), body)
        .await?;
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = response.bytes().await.map_err(|error| upstream_problem(service, &error))?;
    let mut reply = Response::new(Body::from(bytes));
    *reply.status_mut() = status;
    if let Some(content_type) = content_type {
        reply.headers_mut().insert(header::CONTENT_TYPE, content_type);
    }
    Ok(reply)
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
