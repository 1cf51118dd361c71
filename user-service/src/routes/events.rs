//! `GET /events/{id}`: an event this service published, for a consumer that checks where
//! an event came from before it acts on it (order-service, for `user.created` and
//! `user.deleted`). Behind the service key like every route here; no principal needed.

use axum::Json;
use axum::extract::State;
use contracts::api::events::PublishedEvent;
use platform::http::{ApiPath, Problem};
use uuid::Uuid;

use crate::repository::outbox;
use crate::state::AppState;

/// `GET /events/{id}`: 200 with the event, or 404 when this service never wrote it (or
/// has pruned it).
pub async fn get(State(state): State<AppState>, ApiPath(id): ApiPath<Uuid>) -> Result<Json<PublishedEvent>, Problem> {
    let event = outbox::find(&state.pool, id).await?;
    event.map(Json).ok_or_else(|| Problem::not_found(format!("event {id} was not published here")))
}
