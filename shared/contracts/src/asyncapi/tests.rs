//! Tests of the AsyncAPI document: every event has its channel, and the generated
//! schemas match what serde writes.

use std::collections::BTreeSet;

use chrono::DateTime;
use uuid::Uuid;

use super::*;
use crate::events::{ALL_TOPICS, OrderItem, PaymentStatus};
use crate::money::Money;

fn doc() -> Value {
    document().unwrap()
}

/// The object a local `$ref` points at.
fn resolve<'a>(doc: &'a Value, reference: &Value) -> &'a Value {
    let pointer = reference["$ref"].as_str().unwrap().strip_prefix('#').unwrap();
    doc.pointer(pointer).unwrap_or_else(|| panic!("{pointer} does not resolve"))
}

fn channel<'a>(doc: &'a Value, address: &str) -> &'a Value {
    let found: Vec<_> = doc["channels"].as_object().unwrap().values().filter(|c| c["address"] == address).collect();
    assert_eq!(found.len(), 1, "channels for {address}");
    found[0]
}

fn only_message<'a>(doc: &'a Value, channel: &'a Value) -> &'a Value {
    let messages = channel["messages"].as_object().unwrap();
    assert_eq!(messages.len(), 1);
    resolve(doc, messages.values().next().unwrap())
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

/// The channel of `E`'s topic carries a message whose derived payload schema names
/// exactly the fields a serialised event has (all required), with `E`'s type and key.
fn check_event<E: Event>(sample: &E) {
    let doc = doc();
    let serialised = serde_json::to_value(sample).unwrap();
    for (address, dead_letter) in [(E::TOPIC.to_owned(), false), (dead_letter_topic(E::TOPIC), true)] {
        let message = only_message(&doc, channel(&doc, &address));
        let schema = resolve(&doc, &message["payload"]);
        assert_eq!(keys(&schema["properties"]), keys(&serialised), "{address}: payload properties");
        let required: BTreeSet<String> =
            schema["required"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()).collect();
        assert_eq!(required, keys(&serialised), "{address}: every field is always sent");
        assert_eq!(message["headers"]["properties"][CE_TYPE]["const"], E::TYPE);
        assert_eq!(message["bindings"]["kafka"]["key"]["format"], "uuid");
        let required_headers = &message["headers"]["required"];
        assert_eq!(required_headers.as_array().unwrap().contains(&json!(DLQ_ERROR)), dead_letter, "{address}");
        for header in required_headers.as_array().unwrap() {
            assert!(message["headers"]["properties"].get(header.as_str().unwrap()).is_some(), "{header}");
        }
    }
    assert_eq!(serialised.get("userId").and_then(Value::as_str), Some(sample.key().to_string().as_str()));
}

fn item() -> OrderItem {
    OrderItem { product_id: "product-123".into(), quantity: 2, price: Money::from_cents(2999).unwrap() }
}

#[test]
fn every_event_type_has_its_channel_and_payload_schema() {
    let at = DateTime::UNIX_EPOCH;
    let user = Uuid::new_v4();
    check_event(&UserCreated { user_id: user, email: "a@example.com".into(), name: "A".into(), created_at: at });
    check_event(&UserDeleted { user_id: user, deleted_at: at });
    check_event(&OrderCreated {
        order_id: Uuid::new_v4(),
        user_id: user,
        items: vec![item()],
        total_amount: Money::from_cents(5998).unwrap(),
        created_at: at,
    });
    check_event(&PaymentCompleted {
        payment_id: Uuid::new_v4(),
        order_id: Uuid::new_v4(),
        user_id: user,
        amount: Money::from_cents(5998).unwrap(),
        status: PaymentStatus::Completed,
        completed_at: at,
    });
    check_event(&OrderCancelled {
        order_id: Uuid::new_v4(),
        user_id: user,
        total_amount: Money::from_cents(5998).unwrap(),
        cancelled_at: at,
    });
    check_event(&PaymentRefunded {
        payment_id: Uuid::new_v4(),
        order_id: Uuid::new_v4(),
        user_id: user,
        amount: Money::from_cents(5998).unwrap(),
        refunded_at: at,
    });
}

#[test]
fn every_topic_and_its_dead_letters_are_channels() {
    let doc = doc();
    let addresses: BTreeSet<_> =
        doc["channels"].as_object().unwrap().values().map(|c| c["address"].as_str().unwrap().to_owned()).collect();
    let expected: BTreeSet<_> = ALL_TOPICS.iter().flat_map(|t| [(*t).to_owned(), dead_letter_topic(t)]).collect();
    assert_eq!(addresses, expected);
}

#[test]
fn nested_types_follow_their_serde_form() {
    let doc = doc();
    let schemas = &doc["components"]["schemas"];
    assert_eq!(keys(&schemas["OrderItem"]["properties"]), keys(&serde_json::to_value(item()).unwrap()));
    assert_eq!(schemas["Money"]["type"], "number");
    assert!(serde_json::to_value(Money::from_cents(2999).unwrap()).unwrap().is_number());
    let statuses: Vec<Value> = [PaymentStatus::Completed, PaymentStatus::Failed]
        .into_iter()
        .map(|s| serde_json::to_value(s).unwrap())
        .collect();
    assert_eq!(schemas["PaymentStatus"]["enum"].as_array().unwrap(), &statuses);
}

#[test]
fn every_reference_resolves_and_every_message_has_a_sender_and_a_receiver() {
    let doc = doc();
    let rendered = doc.to_string();
    for (position, _) in rendered.match_indices("\"$ref\":\"") {
        let rest = &rendered[position + 8..];
        let reference = &rest[..rest.find('"').unwrap()];
        resolve(&doc, &json!({ "$ref": reference }));
    }
    for (id, channel) in doc["channels"].as_object().unwrap() {
        let operations: Vec<_> = doc["operations"]
            .as_object()
            .unwrap()
            .values()
            .filter(|op| op["channel"]["$ref"] == format!("#/channels/{id}"))
            .collect();
        let sends = operations.iter().filter(|op| op["action"] == "send").count();
        let receives = operations.iter().filter(|op| op["action"] == "receive").count();
        assert!(sends >= 1 && receives >= 1, "{}: {sends} senders, {receives} receivers", channel["address"]);
    }
}

#[test]
fn operations_name_the_wiring_of_the_services() {
    let doc = doc();
    let ops = &doc["operations"];
    for id in [
        "userServiceSendsUserCreated",
        "userServiceSendsUserDeleted",
        "orderServiceReceivesUserCreated",
        "orderServiceReceivesUserDeleted",
        "orderServiceReceivesPaymentCompleted",
        "orderServiceSendsOrderCreated",
        "paymentServiceReceivesOrderCreated",
        "paymentServiceSendsPaymentCompleted",
        "orderServiceSendsOrderCancelled",
        "paymentServiceReceivesOrderCancelled",
        "paymentServiceSendsPaymentRefunded",
        "orderServiceReceivesPaymentRefunded",
        "orderServiceDeadLettersUserCreated",
        "paymentServiceDeadLettersOrderCreated",
    ] {
        assert!(ops.get(id).is_some(), "{id}");
    }
    assert_eq!(camel_case("payment.completed"), "paymentCompleted");
}

#[test]
fn the_broker_requires_scram_as_the_services_sign_in() {
    let doc = doc();
    let security = doc["servers"]["local"]["security"].as_array().unwrap();
    assert_eq!(security.len(), 1);
    assert_eq!(resolve(&doc, &security[0])["type"], "scramSha512");
}
