//! The AsyncAPI 3.0 document of the platform's events: every topic and its dead-letter
//! topic as channels, each message with its headers, key and payload schema, and which
//! service sends and which receives it. The gateway serves it at
//! `/api/docs/asyncapi.json`; `make test-asyncapi` validates it with the AsyncAPI parser
//! and checks real messages from the broker against it.
//!
//! The payload schemas are derived from the event structs in [`crate::events`]
//! (`#[derive(ToSchema)]`, which reads the same serde attributes the wire format comes
//! from; `Money`'s schema is written beside its hand-written serde impls), so a field
//! added to an event shows up here without anyone editing a schema. utoipa rather than
//! schemars because the gateway's OpenAPI document is already built with utoipa 6: one
//! schema generator in the workspace, one set of attribute conventions. Its output is
//! OpenAPI 3.1's dialect of JSON Schema; for what these structs contain (objects with
//! required properties, arrays, `$ref`, strings with `format`, integers, numbers, string
//! enums) that is the same as the draft-07 superset AsyncAPI's default schema format
//! reads, which the parser in `make test-asyncapi` confirms.
//!
//! What the code cannot say about itself is written here once: who publishes and who
//! consumes each topic (the services' `startup.rs`), and the header rules of `eventing`'s
//! publisher and dead-lettering, named by the constants in [`crate::headers`].

use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

use crate::events::{
    Event, OrderCancelled, OrderCreated, PaymentCompleted, PaymentRefunded, UserCreated, UserDeleted, dead_letter_topic,
};
use crate::headers::{
    CE_ID, CE_SOURCE, CE_SPECVERSION, CE_TIME, CE_TYPE, CONTENT_TYPE, DLQ_ATTEMPTS, DLQ_ERROR, DLQ_FIRST_FAILURE,
    DLQ_ORIGINAL_OFFSET, DLQ_ORIGINAL_PARTITION, DLQ_ORIGINAL_TOPIC, REQUEST_ID, TRACEPARENT,
};

/// The AsyncAPI version the document follows.
pub const ASYNCAPI_VERSION: &str = "3.0.0";
/// The broker `make infra` runs for the native platform (its `KAFKA_BROKERS` default).
pub const LOCAL_BROKER: &str = "127.0.0.1:9092";
/// The version of the Kafka bindings used (key, topic).
const KAFKA_BINDING_VERSION: &str = "0.5.0";

const USER_SERVICE: &str = "user-service";
const ORDER_SERVICE: &str = "order-service";
const PAYMENT_SERVICE: &str = "payment-service";
/// The operators' tool that lists and replays dead letters.
const PLATFORM_DLQ: &str = "platform-dlq";

/// One topic: its event, who publishes it, and who consumes it and what that does.
struct Flow {
    topic: &'static str,
    event_type: &'static str,
    /// The payload schema's name in `components.schemas` (also the message's name).
    name: String,
    /// The payload schema and every schema it refers to.
    schemas: Vec<(String, RefOr<Schema>)>,
    publisher: &'static str,
    /// When the publisher publishes it.
    published_when: &'static str,
    /// Each consumer and what it does with the event.
    consumers: &'static [(&'static str, &'static str)],
}

impl Flow {
    fn of<E: Event + ToSchema>(
        publisher: &'static str,
        published_when: &'static str,
        consumers: &'static [(&'static str, &'static str)],
    ) -> Self {
        let mut schemas = vec![(E::name().into_owned(), E::schema())];
        E::schemas(&mut schemas);
        Self {
            topic: E::TOPIC,
            event_type: E::TYPE,
            name: E::name().into_owned(),
            schemas,
            publisher,
            published_when,
            consumers,
        }
    }
}

/// Every topic, as the services wire them: each service publishes through its outbox;
/// order-service's consumer handles four topics, payment-service's answers each order and
/// each cancellation (the saga's compensation).
fn flows() -> [Flow; 6] {
    [
        Flow::of::<UserCreated>(
            USER_SERVICE,
            "when a user signs up or an admin creates one (through its outbox, in the user's transaction)",
            &[(
                ORDER_SERVICE,
                "confirms with user-service that it published the event (`GET /events/{id}`), then records the user \
                 and places their welcome order",
            )],
        ),
        Flow::of::<UserDeleted>(
            USER_SERVICE,
            "when an admin deletes a user (through its outbox, in the deletion's transaction)",
            &[(
                ORDER_SERVICE,
                "confirms with user-service that it published the event, then refuses new orders for the user and \
                 cancels their pending ones (each publishing `order.cancelled`)",
            )],
        ),
        Flow::of::<OrderCreated>(
            ORDER_SERVICE,
            "for every order stored, the welcome order included, and again under the same event id when \
             a payment timed out (through its outbox)",
            &[(PAYMENT_SERVICE, "settles the payment and publishes `payment.completed`")],
        ),
        Flow::of::<OrderCancelled>(
            ORDER_SERVICE,
            "when an order is cancelled: by its owner, by an admin, or because its user was deleted (through its \
             outbox, in the cancellation's transaction)",
            &[(
                PAYMENT_SERVICE,
                "takes no payment for the order from then on; refunds one already taken and publishes `payment.refunded`",
            )],
        ),
        Flow::of::<PaymentCompleted>(
            PAYMENT_SERVICE,
            "once per order, when it settles the order's payment (through its outbox, in the payment's transaction)",
            &[(ORDER_SERVICE, "marks the order `paid` or `payment_failed`")],
        ),
        Flow::of::<PaymentRefunded>(
            PAYMENT_SERVICE,
            "when an order it had charged is cancelled (through its outbox, in the refund's transaction)",
            &[(ORDER_SERVICE, "marks the cancelled order `refunded`, with the refund as its reason")],
        ),
    ]
}

/// The AsyncAPI 3.0.0 document of every topic and its dead letters.
///
/// # Errors
/// Only if a derived schema cannot be turned into JSON, which a schema made of strings,
/// numbers and maps never does.
pub fn document() -> Result<Value, serde_json::Error> {
    let flows = flows();
    let mut schemas = Map::new();
    let mut channels = Map::new();
    let mut messages = Map::new();
    let mut operations = Map::new();
    for flow in &flows {
        for (name, schema) in &flow.schemas {
            schemas.insert(name.clone(), serde_json::to_value(schema)?);
        }
        let channel = camel_case(flow.topic);
        let dlq_channel = format!("{channel}Dlq");
        let message = flow.name.clone();
        let dlq_message = format!("{message}DeadLetter");
        let dlq_topic = dead_letter_topic(flow.topic);
        let consumer_names: Vec<&str> = flow.consumers.iter().map(|(name, _)| *name).collect();

        channels.insert(
            channel.clone(),
            json!({
                "address": flow.topic,
                "title": flow.topic,
                "description": format!(
                    "`{}` events, published by {} and consumed by {}.",
                    flow.event_type, flow.publisher, consumer_names.join(", ")
                ),
                "messages": { &message: { "$ref": format!("#/components/messages/{message}") } },
                "bindings": { "kafka": { "topic": flow.topic, "bindingVersion": KAFKA_BINDING_VERSION } },
            }),
        );
        channels.insert(
            dlq_channel.clone(),
            json!({
                "address": dlq_topic,
                "title": dlq_topic,
                "description": format!(
                    "Dead letters of `{}`: a message its consumer could not handle after bounded retries \
                     (or at once, for a permanent error), parked with its payload, key and headers unchanged \
                     plus `x-dlq-*` headers saying why. `platform-dlq list|replay {}` reads and replays them.",
                    flow.topic, flow.topic
                ),
                "messages": { &dlq_message: { "$ref": format!("#/components/messages/{dlq_message}") } },
                "bindings": { "kafka": { "topic": dlq_topic, "bindingVersion": KAFKA_BINDING_VERSION } },
            }),
        );

        messages.insert(message.clone(), event_message(flow, &message));
        messages.insert(dlq_message.clone(), dead_letter_message(flow, &message, &dlq_message));

        let channel_ref = |channel: &str| json!({ "$ref": format!("#/channels/{channel}") });
        let message_ref =
            |channel: &str, message: &str| json!([{ "$ref": format!("#/channels/{channel}/messages/{message}") }]);
        operations.insert(
            format!("{}Sends{message}", camel_case(flow.publisher)),
            json!({
                "action": "send",
                "channel": channel_ref(&channel),
                "messages": message_ref(&channel, &message),
                "summary": format!("{} publishes `{}` {}.", flow.publisher, flow.topic, flow.published_when),
                "tags": [{ "name": flow.publisher }],
            }),
        );
        for (consumer, reaction) in flow.consumers {
            operations.insert(
                format!("{}Receives{message}", camel_case(consumer)),
                json!({
                    "action": "receive",
                    "channel": channel_ref(&channel),
                    "messages": message_ref(&channel, &message),
                    "summary": format!("{consumer} consumes `{}` and {reaction}.", flow.topic),
                    "description": "At least once: the consumer stores its offset only after the handler \
                        succeeded, and skips an event id it has already handled.",
                    "tags": [{ "name": *consumer }],
                }),
            );
            operations.insert(
                format!("{}DeadLetters{message}", camel_case(consumer)),
                json!({
                    "action": "send",
                    "channel": channel_ref(&dlq_channel),
                    "messages": message_ref(&dlq_channel, &dlq_message),
                    "summary": format!(
                        "{consumer} parks a `{}` message it cannot handle in `{dlq_topic}`.", flow.topic
                    ),
                    "tags": [{ "name": *consumer }],
                }),
            );
        }
        operations.insert(
            format!("{}Receives{dlq_message}", camel_case(PLATFORM_DLQ)),
            json!({
                "action": "receive",
                "channel": channel_ref(&dlq_channel),
                "messages": message_ref(&dlq_channel, &dlq_message),
                "summary": format!(
                    "`platform-dlq list {0}` lists the letters; `platform-dlq replay {0}` sends them back to `{0}`.",
                    flow.topic
                ),
                "tags": [{ "name": PLATFORM_DLQ }],
            }),
        );
    }

    Ok(json!({
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Event-driven platform events",
            "version": env!("CARGO_PKG_VERSION"),
            "description": INFO_DESCRIPTION,
            "tags": [
                { "name": USER_SERVICE, "description": "Accounts; publishes what happens to users." },
                { "name": ORDER_SERVICE, "description": "Orders, welcome orders and payment outcomes." },
                { "name": PAYMENT_SERVICE, "description": "Simulated payments." },
                { "name": PLATFORM_DLQ, "description": "The operators' tool for dead letters." },
            ],
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": LOCAL_BROKER,
                "protocol": "kafka",
                "title": "Local broker",
                "description": "The Kafka-protocol broker `make infra` starts for the native platform; \
                    elsewhere the services read `KAFKA_BROKERS`.",
                "security": [{ "$ref": "#/components/securitySchemes/scramSha512" }],
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "securitySchemes": {
                "scramSha512": {
                    "type": "scramSha512",
                    "description": "SASL/SCRAM-SHA-512 (`KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD`). Each \
                        service is a principal of its own; where the broker enforces ACLs (Apache Kafka in \
                        compose and Kubernetes) a principal writes only the topics its service publishes (and \
                        the dead-letter topics of those it consumes) and reads only those it consumes. The \
                        operators' tools sign in as `platform-operator`.",
                },
            },
            "schemas": schemas,
            "messages": messages,
            "correlationIds": {
                "requestId": {
                    "description": "The HTTP request that started the chain: every event it causes, hop after \
                        hop, carries the same `x-request-id`.",
                    "location": format!("$message.header#/{REQUEST_ID}"),
                },
            },
        },
    }))
}

const INFO_DESCRIPTION: &str = "The events the platform's services exchange over Kafka, one topic per \
event type. A message's body is the event as JSON; its metadata travels in headers after the \
CloudEvents Kafka binding in binary mode (`ce_id`, `ce_type`, `ce_source`, `ce_time`, \
`ce_specversion`), beside `content-type`, `x-request-id` and W3C `traceparent`. The key is always \
the id of the user the event is about, so one user's events stay in order on one partition. \
Delivery is at least once; consumers skip an event id they have already handled. A consumer \
parks a message it cannot handle after bounded retries in the topic's `.dlq` topic. Deployments \
may prefix every topic name (`KAFKA_TOPIC_PREFIX`, empty by default); the addresses here are \
without it.";

/// A topic's message: the event's headers, its key and its derived payload schema.
fn event_message(flow: &Flow, name: &str) -> Value {
    json!({
        "name": name,
        "title": flow.topic,
        "summary": format!("`{}` as {} publishes it.", flow.event_type, flow.publisher),
        "contentType": "application/json",
        "headers": headers(flow, false),
        "payload": { "$ref": format!("#/components/schemas/{}", flow.name) },
        "correlationId": { "$ref": "#/components/correlationIds/requestId" },
        "bindings": { "kafka": { "key": key_schema(), "bindingVersion": KAFKA_BINDING_VERSION } },
    })
}

/// A dead letter: the original message as it was, plus the `x-dlq-*` headers.
fn dead_letter_message(flow: &Flow, event_name: &str, name: &str) -> Value {
    json!({
        "name": name,
        "title": dead_letter_topic(flow.topic),
        "summary": format!("A `{}` message its consumer could not handle.", flow.topic),
        "description": format!(
            "The original body, unchanged: normally a `{event_name}`, but a body that could not be read \
             (the usual reason for a dead letter) is kept as it was and does not match the schema."
        ),
        "contentType": "application/json",
        "headers": headers(flow, true),
        "payload": { "$ref": format!("#/components/schemas/{}", flow.name) },
        "correlationId": { "$ref": "#/components/correlationIds/requestId" },
        "bindings": { "kafka": { "key": key_schema(), "bindingVersion": KAFKA_BINDING_VERSION } },
    })
}

/// The key: the user id as text (`Event::key`).
fn key_schema() -> Value {
    json!({ "type": "string", "format": "uuid", "description": "The id of the user the event is about." })
}

/// The headers `eventing`'s publisher writes on every event, and for a dead letter the ones
/// its consumer adds. Header values are UTF-8 text.
fn headers(flow: &Flow, dead_letter: bool) -> Value {
    let mut properties = json!({
        CE_ID: {
            "type": "string", "format": "uuid",
            "description": "CloudEvents id. An event published again (a retried handler, a replayed outbox row) keeps it.",
        },
        CE_TYPE: {
            "type": "string", "const": flow.event_type,
            "description": "CloudEvents type, versioned: a breaking change gets a new version.",
        },
        CE_SOURCE: {
            "type": "string", "examples": [flow.publisher],
            "description": "CloudEvents source: the publisher's Kafka client id (`KAFKA_CLIENT_ID`, by default the service's name).",
        },
        CE_TIME: {
            "type": "string", "format": "date-time",
            "description": "CloudEvents time: when the event was published (RFC 3339, UTC).",
        },
        CE_SPECVERSION: { "type": "string", "const": "1.0", "description": "CloudEvents spec version." },
        CONTENT_TYPE: { "type": "string", "const": "application/json", "description": "Media type of the body." },
        REQUEST_ID: {
            "type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$",
            "description": "The HTTP request that started the chain (the gateway's `x-request-id`).",
        },
        TRACEPARENT: {
            "type": "string", "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
            "description": "W3C trace context of the publishing span, so one request's trace runs through every hop. \
                Present when the publisher traces (span export configured).",
        },
    });
    let mut required = vec![CE_ID, CE_TYPE, CE_SOURCE, CE_TIME, CE_SPECVERSION, CONTENT_TYPE, REQUEST_ID];
    let mut description = "Kafka headers (UTF-8 text): CloudEvents binary mode, request id and trace context.";
    if dead_letter {
        let letter = json!({
            DLQ_ORIGINAL_TOPIC: { "type": "string", "description": "The topic the message came from (with the deployment's prefix)." },
            DLQ_ORIGINAL_PARTITION: { "type": "string", "pattern": "^[0-9]+$", "description": "Its partition there." },
            DLQ_ORIGINAL_OFFSET: { "type": "string", "pattern": "^[0-9]+$", "description": "Its offset there." },
            DLQ_ERROR: { "type": "string", "description": "The last error of the handler, with its causes." },
            DLQ_ATTEMPTS: { "type": "string", "pattern": "^[1-9][0-9]*$", "description": "How many times the handler was tried." },
            DLQ_FIRST_FAILURE: { "type": "string", "format": "date-time", "description": "When the first attempt failed (RFC 3339)." },
        });
        if let (Some(all), Value::Object(added)) = (properties.as_object_mut(), letter) {
            all.extend(added);
        }
        // The original headers are copied as they came: a message from a foreign producer
        // may lack any of them, so only what the dead-lettering adds is certain.
        required = vec![
            DLQ_ORIGINAL_TOPIC,
            DLQ_ORIGINAL_PARTITION,
            DLQ_ORIGINAL_OFFSET,
            DLQ_ERROR,
            DLQ_ATTEMPTS,
            DLQ_FIRST_FAILURE,
        ];
        description = "The original message's headers, copied unchanged, plus the `x-dlq-*` headers.";
    }
    json!({ "type": "object", "description": description, "properties": properties, "required": required })
}

/// `user.created` → `userCreated`, `order-service` → `orderService`: ids for the document's maps.
fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(if upper { c.to_ascii_uppercase() } else { c });
            upper = false;
        } else {
            upper = true;
        }
    }
    out
}

#[cfg(test)]
mod tests;
