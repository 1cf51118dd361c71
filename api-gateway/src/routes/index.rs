//! `GET /api`: what this API is and where its documentation lives.

use axum::Json;
use serde_json::{Value, json};

/// The API's name, shown at `GET /api`.
pub const API_NAME: &str = "Event-driven platform API";

/// `GET /api`.
pub async fn index() -> Json<Value> {
    Json(json!({ "name": API_NAME, "version": env!("CARGO_PKG_VERSION"), "docs": crate::docs::DOCS_PATH }))
}
