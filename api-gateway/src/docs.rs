//! The OpenAPI 3.1 document of the public API and Swagger UI at `/api/docs`, and the
//! AsyncAPI 3.0 document of the events at `/api/docs/asyncapi.json`.
//!
//! The gateway forwards most routes without parsing their bodies, so the
//! contract is written here, next to the routes, as annotated schema types and
//! path stubs. The snapshot test (`tests/api/docs.rs`) keeps it from drifting
//! silently, and the end-to-end tests exercise every documented status.
//!
//! The AsyncAPI document is built by `contracts` from the event types themselves; the
//! gateway only serves it, so the one place a client looks for documentation has both.
//! Like `openapi.json` it is not itself an operation of the OpenAPI document; the
//! OpenAPI description links to it, which is how Swagger UI shows it.
#![allow(dead_code)] // path stubs exist only for their annotations

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_swagger_ui::SwaggerUi;
use uuid::Uuid;

/// Where the UI and the document are served.
pub const DOCS_PATH: &str = "/api/docs";
/// The OpenAPI document's path.
pub const OPENAPI_PATH: &str = "/api/docs/openapi.json";
/// The AsyncAPI document's path.
pub const ASYNCAPI_PATH: &str = "/api/docs/asyncapi.json";

/// Swagger UI (vendored assets), the OpenAPI document and the AsyncAPI document.
pub fn router() -> Router {
    Router::from(SwaggerUi::new(DOCS_PATH).url(OPENAPI_PATH, ApiDoc::openapi())).route(ASYNCAPI_PATH, get(asyncapi))
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
    components(schemas(RegisterRequest, LoginRequest, TokenResponse, User, CreateUserRequest, UpdateUserRequest,
                       OrderItem, CreateOrderRequest, Order, StatusChange, OrderStats, Problem, FieldError)),
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
/// is not JSON, 429 over a rate limit. Added to every operation they apply to, so the
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
            }
        }
    }
}

/// Sign-up.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"email": "jane@example.com", "password": "SecurePass123!", "name": "Jane Doe"}))]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// A valid address, at most 255 characters.
    #[schema(format = "email", max_length = 255)]
    email: String,
    /// 8 to 128 characters with an upper-case letter `A-Z`, a lower-case letter `a-z`, a digit `0-9` and any other character.
    #[schema(
        min_length = 8,
        max_length = 128,
        format = "password",
        pattern = r"^(?=[\s\S]*[a-z])(?=[\s\S]*[A-Z])(?=[\s\S]*[0-9])(?=[\s\S]*[^A-Za-z0-9])"
    )]
    password: String,
    /// 2 to 100 letters (any script), spaces, hyphens, apostrophes.
    #[schema(min_length = 2, max_length = 100, pattern = r"^(?![\s\S]*[^\w '’-])(?![\s\S]*[\d_])(?=[\s\S]*[^\W\d_])")]
    name: String,
}

/// Sign-in.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"email": "jane@example.com", "password": "your-password"}))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(format = "email")]
    email: String,
    #[schema(format = "password")]
    password: String,
}

/// A bearer token and the account it is for.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    access_token: String,
    #[schema(example = "Bearer")]
    token_type: String,
    /// Seconds until the token expires.
    #[schema(example = 3600)]
    expires_in: i64,
    user: User,
}

/// An account (credentials never leave user-service).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    id: Uuid,
    #[schema(format = "email")]
    email: String,
    name: String,
    #[schema(pattern = "^(user|admin)$", example = "user")]
    role: String,
    #[schema(format = "date-time")]
    created_at: String,
    #[schema(format = "date-time")]
    updated_at: String,
}

/// A user created by an admin.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"email": "john.doe@example.com", "name": "John Doe", "password": "SecurePass123!", "role": "user"}))]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    #[schema(format = "email", max_length = 255)]
    email: String,
    #[schema(min_length = 2, max_length = 100, pattern = r"^(?![\s\S]*[^\w '’-])(?![\s\S]*[\d_])(?=[\s\S]*[^\W\d_])")]
    name: String,
    #[schema(
        min_length = 8,
        max_length = 128,
        format = "password",
        pattern = r"^(?=[\s\S]*[a-z])(?=[\s\S]*[A-Z])(?=[\s\S]*[0-9])(?=[\s\S]*[^A-Za-z0-9])"
    )]
    password: String,
    /// `user` (default) or `admin`.
    #[schema(pattern = "^(user|admin)$")]
    role: Option<String>,
}

/// The fields to change; only an admin changes a role.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"name": "Jane Smith"}))]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[schema(format = "email", max_length = 255)]
    email: Option<String>,
    #[schema(min_length = 2, max_length = 100, pattern = r"^(?![\s\S]*[^\w '’-])(?![\s\S]*[\d_])(?=[\s\S]*[^\W\d_])")]
    name: Option<String>,
    #[schema(
        min_length = 8,
        max_length = 128,
        format = "password",
        pattern = r"^(?=[\s\S]*[a-z])(?=[\s\S]*[A-Z])(?=[\s\S]*[0-9])(?=[\s\S]*[^A-Za-z0-9])"
    )]
    password: Option<String>,
    #[schema(pattern = "^(user|admin)$")]
    role: Option<String>,
}

/// One order line, as sent and as answered (no other fields). Prices are exact decimals
/// with at most two places.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderItem {
    #[schema(pattern = "^product-[A-Za-z0-9-]+$", max_length = 100, example = "product-123")]
    product_id: String,
    #[schema(minimum = 1, maximum = 9999, example = 2)]
    quantity: u32,
    #[schema(minimum = 0.01, maximum = 999_999.99, multiple_of = 0.01, example = 29.99)]
    price: f64,
}

/// A new order: for yourself, or for anyone as an admin.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    user_id: Uuid,
    /// 1 to 100 lines.
    #[schema(min_items = 1, max_items = 100)]
    items: Vec<OrderItem>,
}

/// An order.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    id: Uuid,
    user_id: Uuid,
    items: Vec<OrderItem>,
    #[schema(example = 59.98)]
    total_amount: f64,
    #[schema(pattern = "^(pending|paid|payment_failed|cancelled)$", example = "pending")]
    status: String,
    #[schema(pattern = "^(standard|welcome)$")]
    kind: String,
    #[schema(format = "date-time")]
    created_at: String,
    #[schema(format = "date-time")]
    updated_at: String,
}

/// A status change (pending → paid, payment_failed or cancelled).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "paid"}))]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    #[schema(pattern = "^(paid|payment_failed|cancelled)$")]
    status: String,
}

/// Order statistics.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderStats {
    #[schema(example = json!({"pending": 1, "paid": 8, "payment_failed": 1, "cancelled": 0}))]
    counts_by_status: std::collections::BTreeMap<String, i64>,
    total_orders: i64,
    revenue: f64,
    average_order_value: f64,
}

/// RFC 7807 problem details.
#[derive(Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    kind: String,
    title: String,
    status: u16,
    detail: Option<String>,
    /// Every failing field, for validation problems.
    errors: Option<Vec<FieldError>>,
}

/// One invalid field.
#[derive(Serialize, ToSchema)]
pub struct FieldError {
    #[schema(example = "items[0].price")]
    field: String,
    #[schema(example = "must have at most 2 decimal places")]
    message: String,
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
    (status = 429, description = "Too many attempts from this address", body = Problem, content_type = PROBLEM)))]
fn login() {}

#[utoipa::path(post, path = "/api/users", tag = "users", security(("bearer" = [])), request_body = CreateUserRequest, responses(
    (status = 201, description = "Created; `user.created` is published", body = User),
    (status = 400, body = Problem, content_type = PROBLEM), (status = 401, body = Problem, content_type = PROBLEM),
    (status = 403, description = "Admins only", body = Problem, content_type = PROBLEM),
    (status = 409, description = "E-mail address taken", body = Problem, content_type = PROBLEM),
    (status = 503, description = "Password hashing at capacity; `Retry-After` says when to try again", body = Problem, content_type = PROBLEM)))]
fn create_user() {}

#[utoipa::path(get, path = "/api/users", tag = "users", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (50)"),
           ("offset" = Option<i64>, Query, minimum = 0)),
    responses((status = 200, body = Vec<User>), (status = 400, body = Problem, content_type = PROBLEM),
              (status = 401, body = Problem, content_type = PROBLEM), (status = 403, description = "Admins only", body = Problem, content_type = PROBLEM)))]
fn list_users() {}

#[utoipa::path(get, path = "/api/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = User), (status = 400, description = "Malformed id", body = Problem, content_type = PROBLEM),
              (status = 401, body = Problem, content_type = PROBLEM), (status = 403, description = "Only yourself, or any as an admin", body = Problem, content_type = PROBLEM),
              (status = 404, body = Problem, content_type = PROBLEM)))]
fn get_user() {}

#[utoipa::path(put, path = "/api/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = UpdateUserRequest,
    responses((status = 200, body = User), (status = 400, body = Problem, content_type = PROBLEM), (status = 401, body = Problem, content_type = PROBLEM),
              (status = 403, body = Problem, content_type = PROBLEM), (status = 404, body = Problem, content_type = PROBLEM),
              (status = 409, body = Problem, content_type = PROBLEM),
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
    (status = 422, description = "`userId` names no user, or a deleted one", body = Problem, content_type = PROBLEM)))]
fn create_order() {}

#[utoipa::path(get, path = "/api/orders", tag = "orders", security(("bearer" = [])),
    params(("userId" = Option<Uuid>, Query, description = "Admins: any user's; others: only their own"),
           ("status" = Option<String>, Query, pattern = "^(pending|paid|payment_failed|cancelled)$"),
           ("limit" = Option<i64>, Query, minimum = 1, maximum = 100), ("offset" = Option<i64>, Query, minimum = 0)),
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
