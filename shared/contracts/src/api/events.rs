//! Between services, not public: a producer's answer about an event it published, for a
//! consumer that checks an event's origin before acting on it (`GET /events/{id}` on the
//! producer, behind the service key; the gateway routes no public path there).

use serde::{Deserialize, Serialize};

/// An event as its producer wrote it to its outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedEvent {
    /// Its topic, without the deployment's prefix.
    pub topic: String,
    /// Its CloudEvents type.
    pub event_type: String,
    /// Its JSON body.
    pub payload: serde_json::Value,
}
