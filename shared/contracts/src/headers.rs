//! Names of the headers on every platform message: the CloudEvents Kafka binding in binary
//! mode, W3C trace context, the request id, and what a dead letter says of its failure.
//! Producers and consumers in any language read these names from here (and from the
//! AsyncAPI document built on them).

/// CloudEvents id of the event.
pub const CE_ID: &str = "ce_id";
/// CloudEvents type, e.g. `platform.user.created.v1`.
pub const CE_TYPE: &str = "ce_type";
/// CloudEvents source: the publishing service.
pub const CE_SOURCE: &str = "ce_source";
/// CloudEvents time: when the event was published (RFC 3339).
pub const CE_TIME: &str = "ce_time";
/// CloudEvents spec version.
pub const CE_SPECVERSION: &str = "ce_specversion";
/// Media type of the body.
pub const CONTENT_TYPE: &str = "content-type";
/// The request that caused the event.
pub const REQUEST_ID: &str = "x-request-id";
/// Dead letters: where the message came from and why it failed.
pub const DLQ_ORIGINAL_TOPIC: &str = "x-dlq-original-topic";
/// Dead letters: original partition.
pub const DLQ_ORIGINAL_PARTITION: &str = "x-dlq-original-partition";
/// Dead letters: original offset.
pub const DLQ_ORIGINAL_OFFSET: &str = "x-dlq-original-offset";
/// Dead letters: the last error.
pub const DLQ_ERROR: &str = "x-dlq-error";
/// Dead letters: how many attempts were made.
pub const DLQ_ATTEMPTS: &str = "x-dlq-attempts";
/// Dead letters: when the first attempt failed.
pub const DLQ_FIRST_FAILURE: &str = "x-dlq-first-failure-time";
/// W3C trace context of the span that published the message.
pub const TRACEPARENT: &str = "traceparent";
