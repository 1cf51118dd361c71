//! Forwarding to a backend: an explicit table of public routes and the backend routes
//! they map to, with the same method, query and body (see [`crate::upstream`] for the call
//! itself).

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::Response;
use platform::http::{Problem, RequestId};
use uuid::Uuid;

use super::SharedState;
use crate::auth::Authenticated;
use crate::upstream::{Call, Service, too_large};

/// Headers a client may send that a backend needs; everything else stays at the edge.
/// (The body's length is the body's own: the client forwards what arrives.)
const FORWARDED_REQUEST_HEADERS: [header::HeaderName; 2] = [header::CONTENT_TYPE, header::ACCEPT];

/// The headers every call carries besides the client's (see `Upstreams::send`): host,
/// request id, service key, principal id and role, trace parent and state.
const OWN_REQUEST_HEADERS: usize = 7;

/// Headers of a backend's answer that reach the client; internal ones stay inside.
const FORWARDED_RESPONSE_HEADERS: [header::HeaderName; 2] = [header::CONTENT_TYPE, header::RETRY_AFTER];

/// One public route and the backend route it is forwarded to.
#[derive(Debug)]
pub struct ForwardedRoute {
    /// The route as clients call it (an axum path template).
    pub public: &'static str,
    /// The methods the backend serves on it; anything else is a 405 at the edge.
    pub methods: &'static [Method],
    /// The service that serves it.
    pub backend: Service,
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
        backend: Service::Users,
        target: "/users",
    },
    ForwardedRoute {
        public: "/api/users/{id}",
        methods: &[Method::GET, Method::PUT, Method::DELETE],
        backend: Service::Users,
        target: "/users/{id}",
    },
    ForwardedRoute {
        public: "/api/orders",
        methods: &[Method::GET, Method::POST],
        backend: Service::Orders,
        target: "/orders",
    },
    ForwardedRoute {
        public: "/api/orders/stats",
        methods: &[Method::GET],
        backend: Service::Orders,
        target: "/orders/stats",
    },
    ForwardedRoute {
        public: "/api/orders/{id}",
        methods: &[Method::GET, Method::PATCH, Method::DELETE],
        backend: Service::Orders,
        target: "/orders/{id}",
    },
];

impl ForwardedRoute {
    /// The backend path for this call: the target with its `{id}` filled in. Ids are UUIDs on
    /// every route, so anything else (dot segments, encoded slashes, text) is a 400 here.
    fn backend_path(&self, params: &RawPathParams) -> Result<String, Problem> {
        let Some((before, after)) = self.target.split_once("{id}") else { return Ok(self.target.to_owned()) };
        let (name, value) = params.iter().next().ok_or_else(|| Problem::bad_request("the path has no id"))?;
        let id = Uuid::parse_str(value)
            .map_err(|_| Problem::bad_request(format!("path parameter `{name}` must be a UUID")))?;
        let mut path = String::with_capacity(self.target.len() + uuid::fmt::Hyphenated::LENGTH);
        path.push_str(before);
        path.push_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
        path.push_str(after);
        Ok(path)
    }
}

/// Forwards a call on `route` to its backend, as the authenticated principal: the path
/// and the declared body length are checked first, then the account, then the call is
/// made with the body streaming through and the answer streaming back.
pub async fn forward_route(
    route: &'static ForwardedRoute,
    State(state): State<SharedState>,
    Authenticated(token): Authenticated,
    request_id: RequestId,
    params: Result<RawPathParams, RawPathParamsRejection>,
    request: Request,
) -> Result<Response, Problem> {
    let params = params.map_err(|rejection| Problem::bad_request(rejection.body_text()))?;
    let path = route.backend_path(&params)?;
    let (parts, body) = request.into_parts();
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > state.upstreams.max_body_bytes() as u64) {
        return Err(too_large());
    }
    state.accounts.check(&state.upstreams, token, &request_id).await?;
    let mut headers = HeaderMap::with_capacity(FORWARDED_REQUEST_HEADERS.len() + OWN_REQUEST_HEADERS);
    for name in FORWARDED_REQUEST_HEADERS {
        if let Some(value) = parts.headers.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    let call = Call {
        service: route.backend,
        method: parts.method,
        path: &path,
        query: parts.uri.query(),
        headers,
        principal: Some(token.principal),
        body,
    };
    let (mut answer, body) = state.upstreams.forward(call, &request_id).await?.into_parts();
    // The answer's own map is reused, emptied of everything but the forwarded headers:
    // it already has room for them and for the ones the edge adds.
    let kept = FORWARDED_RESPONSE_HEADERS.map(|name| answer.headers.remove(&name).map(|value| (name, value)));
    answer.headers.clear();
    for (name, value) in kept.into_iter().flatten() {
        answer.headers.insert(name, value);
    }
    let mut reply = Response::new(body);
    *reply.status_mut() = answer.status;
    *reply.headers_mut() = answer.headers;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::FORWARDED_ROUTES;

    #[test]
    fn each_target_fills_exactly_the_id_its_public_route_names() {
        for route in &FORWARDED_ROUTES {
            let parameters = route.public.matches('{').count();
            assert!(parameters <= 1, "{} names more than an id", route.public);
            assert_eq!(route.public.contains("{id}"), parameters == 1, "{}", route.public);
            assert_eq!(route.target.matches("{id}").count(), parameters, "{} → {}", route.public, route.target);
        }
    }
}
