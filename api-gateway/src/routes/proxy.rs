//! Forwarding to a backend: same method, path below `/api`, query and body;
//! the request id and trace context go along; a backend that is down or slow
//! becomes a 502 or 504 problem, never a hang or a stack trace.

use std::sync::Arc;

use anyhow::Context;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use shared::http::{Problem, REQUEST_ID_HEADER, RequestId, inject_trace_context};
use tracing::{Instrument, field};
use url::Url;

use crate::configuration::UpstreamSettings;

/// Largest request body forwarded.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Headers a client may send that a backend needs; everything else stays at the edge.
const FORWARDED_REQUEST_HEADERS: [header::HeaderName; 2] = [header::CONTENT_TYPE, header::ACCEPT];

/// The backends and the client that reaches them.
#[derive(Clone)]
pub struct Upstreams {
    client: reqwest::Client,
    users: Arc<Url>,
    orders: Arc<Url>,
}

impl Upstreams {
    /// A pooled client with the configured timeout.
    pub fn new(settings: &UpstreamSettings) -> anyhow::Result<Self> {
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
        })
    }
}

/// `/api/users…` → user-service.
pub async fn users(
    State(upstreams): State<Upstreams>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, Problem> {
    forward(&upstreams.client, &upstreams.users, "user-service", &request_id, request).await
}

/// `/api/orders…` → order-service.
pub async fn orders(
    State(upstreams): State<Upstreams>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, Problem> {
    forward(&upstreams.client, &upstreams.orders, "order-service", &request_id, request).await
}

async fn forward(
    client: &reqwest::Client,
    base: &Url,
    service: &'static str,
    request_id: &RequestId,
    request: Request,
) -> Result<Response, Problem> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().strip_prefix("/api").unwrap_or(parts.uri.path());
    let mut target = base.join(path).context("cannot build upstream URL")?;
    target.set_query(parts.uri.query());
    let body = to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        Problem::new(StatusCode::PAYLOAD_TOO_LARGE, Some(format!("request body exceeds {MAX_BODY_BYTES} bytes")))
    })?;

    let span = tracing::info_span!(
        "http.client.request",
        otel.name = format!("{} {service}", parts.method),
        otel.kind = "client",
        otel.status_code = field::Empty,
        http.request.method = %parts.method,
        url.full = %target,
        server.address = service,
        http.response.status_code = field::Empty,
    );
    let mut headers = HeaderMap::new();
    for name in FORWARDED_REQUEST_HEADERS {
        if let Some(value) = parts.headers.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    let upstream = async {
        inject_trace_context(&mut headers);
        let response = client.request(parts.method.clone(), target).headers(headers).body(body).send().await;
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
        response
    }
    .instrument(span)
    .await;

    let response = upstream.map_err(|error| upstream_problem(service, &error))?;
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
