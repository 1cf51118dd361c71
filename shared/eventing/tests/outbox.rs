//! What the outbox accepts before anything is stored.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should fail loudly

use chrono::Utc;
use contracts::events::{Event, EventTooLarge, MAX_EVENT_BYTES, UserCreated};
use eventing::outbox::prepare;
use platform::http::RequestId;
use uuid::Uuid;

#[test]
fn an_event_over_the_limit_is_refused_before_it_is_stored() {
    let user = |name: String| UserCreated {
        user_id: Uuid::new_v4(),
        email: "big@example.com".to_owned(),
        name,
        created_at: Utc::now(),
    };
    let request_id = RequestId::parse_or_generate(None);
    assert!(prepare(&user("Ordinary Name".to_owned()), &request_id).is_ok());
    let error = prepare(&user("x".repeat(MAX_EVENT_BYTES)), &request_id).unwrap_err();
    let too_large = error.downcast_ref::<EventTooLarge>().expect("refused as too large");
    assert_eq!(too_large.event_type, UserCreated::TYPE);
    assert!(too_large.bytes > MAX_EVENT_BYTES);
}
