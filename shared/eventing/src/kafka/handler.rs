//! What a handler sees and answers: the event with its metadata, and why it failed.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use uuid::Uuid;

use platform::http::RequestId;

/// Why a handler could not deal with a message.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Might work on a later attempt (database or broker hiccup).
    #[error(transparent)]
    Transient(anyhow::Error),
    /// Will never work (unparseable or invalid message): dead-letter it at once.
    #[error(transparent)]
    Permanent(anyhow::Error),
    /// Not the message's fault: something the handler needs (the broker, for a handler that
    /// publishes) is down or overloaded. Retried with backoff for as long as it takes, never
    /// dead-lettered; only this message's key waits.
    #[error(transparent)]
    Unavailable(anyhow::Error),
}

impl From<anyhow::Error> for HandlerError {
    fn from(error: anyhow::Error) -> Self {
        Self::Transient(error)
    }
}

/// What a handler knows about the message besides its event.
#[derive(Debug, Clone)]
pub struct EventMeta {
    /// The event's id (`ce_id`); a message without one gets a fresh id.
    pub event_id: Uuid,
    /// The request that caused the event, carried on to what the handler publishes.
    pub request_id: RequestId,
    /// When the event was published, if the message says.
    pub published_at: Option<DateTime<Utc>>,
    /// Where the message was read.
    pub topic: String,
    /// The consumer group that read it.
    pub group: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

/// A parsed event with its metadata.
#[derive(Debug, Clone)]
pub struct Incoming<E> {
    /// The event.
    pub event: E,
    /// Its metadata.
    pub meta: EventMeta,
}

/// A handler with its event type erased: payload bytes and metadata in, outcome out.
pub(super) type ErasedHandler =
    Arc<dyn Fn(Vec<u8>, EventMeta) -> BoxFuture<'static, Result<(), HandlerError>> + Send + Sync>;

/// What orders a topic's events within a partition, from the payload: events of one lane
/// run one after another, different lanes concurrently. `None` (unparseable) falls back
/// to the message key.
pub(super) type LaneOf = Arc<dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync>;
