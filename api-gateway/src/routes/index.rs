//! `GET /api`: what this API is and where its documentation lives; `GET /`: the
//! documentation itself, the first page a newcomer opens.

use axum::Json;
use axum::response::Redirect;
use serde_json::{Value, json};

/// The API's name, shown at `GET /api`.
pub const API_NAME: &str = "Event-driven platform API";

/// `GET /api`.
pub async fn index() -> Json<Value> {
    Json(json!({ "name": API_NAME, "version": env!("CARGO_PKG_VERSION"), "docs": crate::docs::DOCS_PATH }))
}

/// `GET /`: to Swagger UI (303 See Other).
pub async fn root() -> Redirect {
    Redirect::to(&format!("{}/", crate::docs::DOCS_PATH))
}
