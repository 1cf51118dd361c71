//! The OpenAPI 3.1 document of the public API and Swagger UI at `/api/docs`, and the
//! AsyncAPI 3.0 document of the events at `/api/docs/asyncapi.json`.
//!
//! Every schema is derived from the types the services themselves (de)serialise:
//! the bodies and queries of `contracts::api` and the platform's `Problem`. What is
//! written here is only what no type says: each operation's path, security and the
//! statuses it answers with. Two checks keep those honest: [`Conformance`] (see
//! `conformance.rs`) counts every answer whose status its operation does not list, which
//! the platform-wide tests require to stay zero, and schemathesis checks every answer
//! against the document. The snapshot (`system-tests/tests/snapshots`) is a reviewed
//! diff guard, nothing more.
//!
//! The AsyncAPI document is built by `contracts` from the event types themselves; the
//! gateway only serves it, so the one place a client looks for documentation has both.
//! Like `openapi.json` it is not itself an operation of the OpenAPI document; the
//! OpenAPI description links to it, which is how Swagger UI shows it.
#![allow(dead_code)] // path stubs exist only for their annotations

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use contracts::api::orders::{
    CreateOrderRequest, Order, OrderKind, OrderLine, OrderListQuery, OrderStats, OrderStatus, StatusChange,
};
use contracts::api::users::{
    CreateUserRequest, LoginRequest, RegisterRequest, TokenResponse, UpdateUserRequest, User, UserListQuery,
};
use contracts::auth::Role;
use contracts::events::OrderItem;
use contracts::money::Money;
use platform::http::{FieldError, Problem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

/// Where the UI and the document are served.
pub const DOCS_PATH: &str = "/api/docs";
/// The OpenAPI document's path.
pub const OPENAPI_PATH: &str = "/api/docs/openapi.json";
/// The AsyncAPI document's path.
pub const ASYNCAPI_PATH: &str = "/api/docs/asyncapi.json";

/// Swagger UI (vendored assets), the OpenAPI document and the AsyncAPI document.
pub fn router(document: utoipa::openapi::OpenApi) -> Router {
    Router::from(SwaggerUi::new(DOCS_PATH).url(OPENAPI_PATH, document)).route(ASYNCAPI_PATH, get(asyncapi))
}

/// `GET /api/docs/asyncapi.json`: built per request (a few microseconds) rather than
/// cached, so the handler has no state and the build's only error path stays visible.
async fn asyncapi() -> Response {
    match contracts::asyncapi::document() {
        Ok(document) => axum::Json(document).into_response(),
        Err(error) => {
            platform::http::Problem::internal(&anyhow::Error::new(error).context("cannot build the AsyncAPI document"))
                .into_response()
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Event-driven platform API",
        description = "Users and orders behind the API gateway. Sign up or log in, then click Authorize and paste the `access_token`.\n\nThe events the services exchange over Kafka (topics, payloads, headers, keys, who sends and who receives) are described in the [AsyncAPI 3.0 document](/api/docs/asyncapi.json).",
        version = env!("CARGO_PKG_VERSION")
    ),
    paths(register, login, create_user, list_users, get_user, update_user, delete_user,
          create_order, list_orders, get_order, update_order_status, cancel_order, order_stats),
    components(schemas(RegisterRequest, LoginRequest, TokenResponse, User, Role, CreateUserRequest, UpdateUserRequest,
                       OrderLine, OrderItem, Money, CreateOrderRequest, Order, OrderStatus, OrderKind, StatusChange,
                       OrderStats, Problem, FieldError)),
    modifiers(&BearerAuth, &CommonAnswers),
    tags((name = "auth", description = "Sign-up and sign-in (public)"),
         (name = "users", description = "Accounts"),
         (name = "orders", description = "Orders and their payment status"))
)]
/// The OpenAPI document of the public API.
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// The answers the gateway's own layers give on top of each operation's: 400 for a body
/// that is not valid JSON or a malformed id, 413 over the body limit, 415 for a body that
/// is not JSON, 429 over a rate limit, and the 500, 502 and 504 any operation can meet. Added to every operation they apply to, so the
/// document lists every status a client can see.
struct CommonAnswers;

impl Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(PROBLEM, ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build())
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let is_id = |p: &utoipa::openapi::RefOr<utoipa::openapi::path::Parameter>| matches!(p, utoipa::openapi::RefOr::T(p) if p.name == "id");
            let has_id = item.parameters.iter().flatten().any(is_id)
                || [&item.get, &item.put, &item.patch, &item.delete, &item.post]
                    .into_iter()
                    .flatten()
                    .any(|op| op.parameters.iter().flatten().any(is_id));
            for operation in
                [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete].into_iter().flatten()
            {
                let responses = &mut operation.responses.responses;
                let mut add = |status: &str, description: &str| {
                    responses.entry(status.to_owned()).or_insert_with(|| problem(description).into());
                };
                if operation.request_body.is_some() {
                    add("400", "A body that is not valid JSON, or invalid fields (each one listed)");
                    add("413", "A body over the limit (1 MiB)");
                    add("415", "A body that is not `application/json`");
                }
                if has_id {
                    add("400", "A malformed id (not a UUID)");
                }
                add("429", "Too many requests; `Retry-After` says when to try again");
                // Every operation goes through a backend (sign-in and sign-up too), and
                // anything can fail inside: say so rather than pretend it cannot.
                add("500", "An internal error; the body says nothing more, the log has the cause under the request id");
                add("502", "A service behind the gateway is unavailable");
                add("504", "A service behind the gateway did not answer in time");
            }
        }
    }
}

const PROBLEM: &str = "application/problem+json";

#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterRequest, responses(
    (status = 201, description = "Account created (role `user`), signed in", body = TokenResponse),
    (status = 400, description = "Every invalid field", body = Problem, content_type = PROBLEM),
    (status = 409, description = "E-mail address taken", body = Problem, content_type = PROBLEM),
    (status = 415, description = "Not JSON", body = Problem, content_type = PROBLEM),
    (status = 429, description = "Too many attempts from this address", body = Problem, content_type = PROBLEM),
    (status = 503, description = "Password hashing at capacity; `Retry-After` says when to try again", body = Problem, content_type = PROBLEM)))]
fn register() {}

#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, description = "Signed in", body = TokenResponse),
    (status = 401, description = "Wrong e-mail address or password", body = Problem, content_type = PROBLEM),
    (status = 429, description = "Too many attempts from this address, or this account's sign-ins already in progress; `Retry-After` says when to try again", body = Problem, content_type = PROBLEM),
    (status = 503, description = "Password checking at capacity; `Retry-After` says when to try again", body = Problem, content_type = PROBLEM)))]
fn login() {}

#[utoipa::path(post, path = "/api/users", tag = "users", security(("bearer" = [])), request_body = CreateUserRequest, responses(
    (status = 201, description = "Created; `user.created` is published", body = User),
    (status = 400, body = Problem, content_type = PROBLEM), (status = 401, body = Problem, content_type = PROBLEM),
    (status = 403, description = "Admins only", body = Problem, content_type = PROBLEM),
    (status = 409, description = "E-mail address taken", body = Problem, content_type = PROBLEM),
    (status = 503, description = "Password hashing at capacity; `Retry-After` says when to try again", body = Problem, content_type = PROBLEM)))]
fn create_user() {}

#[utoipa::path(get, path = "/api/users", tag = "users", security(("bearer" = [])),
    params(UserListQuery),
    responses((status = 200, body = Vec<User>), (status = 400, body = Problem, content_type = PROBLEM),
              (status = 401, body = Problem, content_type = PROBLEM), (status = 403, description = "Admins only", body = Problem, content_type = PROBLEM)))]
fn list_users() {}

#[utoipa::path(get, path = "/api/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = User), (status = 400, description = "Malformed id", body = Problem, content_type = PROBLEM),
              (status = 401, body = Problem, content_type = PROBLEM), (status = 403, description = "Only yourself, or any as an admin", body = Problem, content_type = PROBLEM),
              (status = 404, body = Problem, content_type = PROBLEM)))]
fn get_user() {}

#[utoipa::path(put, path = "/api/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = UpdateUserRequest,
    responses((status = 200, body = User),
              (status = 400, description = "An invalid field, or `currentPassword` missing when users change their own password or e-mail address", body = Problem, content_type = PROBLEM),
              (status = 401, description = "No valid token; also every token issued before the account's password or e-mail address changed", body = Problem, content_type = PROBLEM),
              (status = 403, description = "Another user's account, a role change by a non-admin, or a wrong `currentPassword`", body = Problem, content_type = PROBLEM),
              (status = 404, body = Problem, content_type = PROBLEM),
              (status = 409, description = "E-mail address taken", body = Problem, content_type = PROBLEM),
              (status = 503, description = "Password hashing at capacity (a new password); `Retry-After` says when to try again", body = Problem, content_type = PROBLEM)))]
fn update_user() {}

#[utoipa::path(delete, path = "/api/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 401, body = Problem, content_type = PROBLEM),
              (status = 403, description = "Admins only", body = Problem, content_type = PROBLEM), (status = 404, body = Problem, content_type = PROBLEM)))]
fn delete_user() {}

#[utoipa::path(post, path = "/api/orders", tag = "orders", security(("bearer" = [])), request_body = CreateOrderRequest, responses(
    (status = 201, description = "Placed (`pending`); `order.created` is published", body = Order),
    (status = 400, description = "Every invalid field", body = Problem, content_type = PROBLEM),
    (status = 401, body = Problem, content_type = PROBLEM),
    (status = 403, description = "`userId` is not you (and you are no admin)", body = Problem, content_type = PROBLEM),
    (status = 422, description = "`userId` names no user, or a deleted one", body = Problem, content_type = PROBLEM),
    (status = 503, description = "Too many orders await their payment; `Retry-After` says when to try again", body = Problem, content_type = PROBLEM)))]
fn create_order() {}

#[utoipa::path(get, path = "/api/orders", tag = "orders", security(("bearer" = [])),
    params(OrderListQuery),
    responses((status = 200, description = "Your orders (all, for an admin), newest first", body = Vec<Order>),
              (status = 400, body = Problem, content_type = PROBLEM), (status = 401, body = Problem, content_type = PROBLEM),
              (status = 403, body = Problem, content_type = PROBLEM)))]
fn list_orders() {}

#[utoipa::path(get, path = "/api/orders/{id}", tag = "orders", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Order), (status = 400, body = Problem, content_type = PROBLEM), (status = 401, body = Problem, content_type = PROBLEM),
              (status = 404, description = "No such order of yours", body = Problem, content_type = PROBLEM)))]
fn get_order() {}

#[utoipa::path(patch, path = "/api/orders/{id}", tag = "orders", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = StatusChange,
    responses((status = 200, body = Order), (status = 400, body = Problem, content_type = PROBLEM), (status = 401, body = Problem, content_type = PROBLEM),
              (status = 403, description = "Admins only", body = Problem, content_type = PROBLEM), (status = 404, body = Problem, content_type = PROBLEM),
              (status = 409, description = "Not a valid transition", body = Problem, content_type = PROBLEM)))]
fn update_order_status() {}

#[utoipa::path(delete, path = "/api/orders/{id}", tag = "orders", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204, description = "Cancelled"), (status = 401, body = Problem, content_type = PROBLEM),
              (status = 404, body = Problem, content_type = PROBLEM), (status = 409, description = "No longer pending", body = Problem, content_type = PROBLEM)))]
fn cancel_order() {}

#[utoipa::path(get, path = "/api/orders/stats", tag = "orders", security(("bearer" = [])),
    responses((status = 200, body = OrderStats), (status = 401, body = Problem, content_type = PROBLEM),
              (status = 403, description = "Admins only", body = Problem, content_type = PROBLEM)))]
fn order_stats() {}
