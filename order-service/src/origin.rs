//! Where an event came from. The broker takes messages from anyone who can reach it, so
//! before acting on a user's creation or deletion order-service asks the event's producer,
//! user-service, whether it published that very event: the same id, topic, type and body,
//! as its outbox holds it. user-service answers behind the service key, which no client of
//! the broker has. An event it does not vouch for is refused with the reason, counted, and
//! changes nothing; while it cannot be asked, the event waits.

use std::time::Duration;

use anyhow::Context;
use contracts::api::events::PublishedEvent;
use contracts::events::Event;
use eventing::kafka::{EventMeta, HandlerError};
use platform::auth::{API_KEY_HEADER, ServiceKey};
use platform::http::{REQUEST_ID_HEADER, inject_trace_context};
use reqwest::StatusCode;

/// How long the producer may take to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// A producer that can vouch for the events it published.
#[derive(Debug, Clone)]
pub struct Producer {
    client: reqwest::Client,
    base_url: String,
    key: ServiceKey,
}

impl Producer {
    /// The producer at `base_url`, asked with the service key.
    pub fn new(base_url: &str, key: ServiceKey) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder().timeout(ASK_TIMEOUT).build().context("cannot build an HTTP client")?;
        Ok(Self { client, base_url: base_url.trim_end_matches('/').to_owned(), key })
    }

    /// `Ok` when the producer published `event` as it was received; a refusal (permanent,
    /// dead-lettered) when it did not; unavailable while it cannot be asked.
    pub async fn vouches_for<E: Event + PartialEq>(&self, event: &E, meta: &EventMeta) -> Result<(), HandlerError> {
        let url = format!("{}/events/{}", self.base_url, meta.event_id);
        // The question belongs to the event's trace, so its answer shows there too.
        let mut headers = reqwest::header::HeaderMap::new();
        inject_trace_context(&mut headers);
        let response = self
            .client
            .get(&url)
            .headers(headers)
            .header(API_KEY_HEADER, self.key.expose())
            .header(REQUEST_ID_HEADER, meta.request_id.as_str())
            .send()
            .await
            .context("cannot ask the producer about the event")
            .map_err(HandlerError::Unavailable)?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(refuse(
                    E::TOPIC,
                    "unknown_to_producer",
                    format!("{} was never published by its producer", meta.event_id),
                ));
            }
            status => return Err(HandlerError::Unavailable(anyhow::anyhow!("the producer answered {status}"))),
        }
        let published: PublishedEvent =
            response.json().await.context("the producer's answer is unreadable").map_err(HandlerError::Unavailable)?;
        let as_published = serde_json::from_value::<E>(published.payload).is_ok_and(|body| body == *event);
        if published.topic != E::TOPIC || published.event_type != E::TYPE || !as_published {
            return Err(refuse(
                E::TOPIC,
                "not_as_published",
                format!("{} differs from what its producer published", meta.event_id),
            ));
        }
        Ok(())
    }
}

/// An event refused for where it came from: counted by topic and `reason`, then dead-lettered.
fn refuse(topic: &'static str, reason: &'static str, detail: String) -> HandlerError {
    metrics::counter!("events_refused_total", "topic" => topic, "reason" => reason).increment(1);
    tracing::warn!(topic, reason, detail, "event refused");
    HandlerError::Permanent(anyhow::anyhow!("{reason}: {detail}"))
}
