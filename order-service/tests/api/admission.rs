//! Admission: past the bound of pending orders a new order waits for a place, and past the
//! wait it is a 503 with `Retry-After`, with nothing stored; a settlement frees a place.

use std::time::Duration;

use contracts::events::PaymentStatus;
use testkit::eventually;

use crate::events::payment;
use crate::helpers::{assert_problem, spawn_app_with};

const BOUND: usize = 3;

#[tokio::test(flavor = "multi_thread")]
async fn past_the_bound_a_new_order_is_refused_with_retry_after_until_one_settles() {
    let app = spawn_app_with(|env| {
        env.with("ORDER_ADMISSION_MAX_PENDING", BOUND.to_string()).with("ORDER_ADMISSION_MAX_WAIT_MS", "200")
    })
    .await;
    // Its welcome order is pending too: it takes a place once the database is recounted.
    let user_id = app.known_user().await;
    let order =
        serde_json::json!({"userId": user_id, "items": [{"productId": "product-123", "quantity": 1, "price": 5.5}]});
    let place = || app.client().post(app.url("/orders")).json(&order).send();

    let mut placed = Vec::new();
    let refusal = loop {
        let response = place().await.unwrap();
        match response.status().as_u16() {
            201 => placed.push(response.json::<serde_json::Value>().await.unwrap()),
            503 => break response,
            other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
        }
        assert!(placed.len() <= BOUND, "{} orders accepted past a bound of {BOUND}", placed.len());
    };
    assert_eq!(refusal.headers()["retry-after"], "1");
    assert_problem(refusal, 503).await;
    let pending = app.orders_of(user_id).await.into_iter().filter(|o| o["status"] == "pending").count();
    assert_eq!(pending, placed.len() + 1, "the refused order was not stored");

    // Paid, one order leaves `pending`, and its place goes to the next order.
    app.publish(&payment(&placed[0], PaymentStatus::Completed)).await;
    let admitted = eventually("an order admitted after a settlement", Duration::from_secs(20), || async {
        let response = place().await.unwrap();
        (response.status() == 201).then_some(response)
    })
    .await;
    assert_eq!(admitted.status(), 201);
    let paid = app.orders_of(user_id).await.into_iter().filter(|o| o["status"] == "paid").count();
    assert_eq!(paid, 1);
}
