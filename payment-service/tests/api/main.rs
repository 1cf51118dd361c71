//! payment-service against the real Kafka broker, with topics of its own per test.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should fail loudly

use std::time::Duration;

use chrono::Utc;
use contracts::events::{OrderCancelled, OrderCreated, OrderItem, PaymentCompleted, PaymentRefunded, PaymentStatus};
use contracts::money::Money;
use eventing::configuration::KafkaSettings;
use eventing::kafka::EventPublisher;
use payment_service::{Application, Settings};
use platform::http::RequestId;
use rdkafka::Message;
use testkit::{TestServer, TopicProbe, header_of};
use uuid::Uuid;

struct TestApp {
    server: TestServer,
    topic_prefix: String,
    publisher: EventPublisher,
}

async fn spawn_app(failure_rate: &str) -> TestApp {
    testkit::init_tracing();
    let topic_prefix = testkit::topic_prefix();
    let env = testkit::service_env(&topic_prefix)
        .await
        .with("PAYMENT_DELAY_MS", "0")
        .with("PAYMENT_FAILURE_RATE", failure_rate);
    let settings = Settings::from_env(&env).unwrap();
    let publisher = EventPublisher::new(&KafkaSettings { client_id: "test".into(), ..settings.kafka.clone() }).unwrap();
    let server = TestServer::spawn(Application::build(settings).await.expect("payment-service builds"));
    server.wait_ready().await;
    TestApp { server, topic_prefix, publisher }
}

fn order(total_cents: i64) -> OrderCreated {
    OrderCreated {
        order_id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
        items: vec![OrderItem {
            product_id: "product-1".into(),
            quantity: 1,
            price: Money::from_cents(total_cents).unwrap(),
        }],
        total_amount: Money::from_cents(total_cents).unwrap(),
        created_at: Utc::now(),
    }
}

async fn payments_for(app: &TestApp, orders: &[OrderCreated]) -> Vec<(PaymentCompleted, Option<String>)> {
    let probe = TopicProbe::new(&format!("{}payment.completed", app.topic_prefix));
    let mut found = Vec::new();
    for _ in orders {
        let message = probe.next_matching(Duration::from_secs(20), |_| true).await;
        let payment: PaymentCompleted = serde_json::from_slice(message.payload().unwrap()).unwrap();
        found.push((payment, header_of(&message, "x-request-id")));
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn every_order_gets_one_completed_payment_for_its_amount() {
    let app = spawn_app("0").await;
    let orders = [order(1999), order(5)];
    for order in &orders {
        app.publisher.publish(order, &RequestId::parse_or_generate(Some("pay-req-1"))).await.unwrap();
    }
    let payments = payments_for(&app, &orders).await;
    for order in &orders {
        let (payment, request_id) = payments.iter().find(|(p, _)| p.order_id == order.order_id).unwrap();
        assert_eq!(payment.status, PaymentStatus::Completed);
        assert_eq!(payment.amount, order.total_amount);
        assert_eq!(payment.user_id, order.user_id);
        assert_eq!(request_id.as_deref(), Some("pay-req-1"), "the request id travels on");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_order_is_answered_again_with_the_same_payment_and_charged_once() {
    let app = spawn_app("0.5").await;
    let order = order(700);
    let request_id = RequestId::generate();
    app.publisher.publish(&order, &request_id).await.unwrap();
    let first = payments_for(&app, std::slice::from_ref(&order)).await;
    // Again, as order-service's payment timeout requests it when no answer came.
    app.publisher.publish(&order, &request_id).await.unwrap();
    let probe = TopicProbe::new(&format!("{}payment.completed", app.topic_prefix));
    let mut answers = Vec::new();
    while answers.len() < 2 {
        let message = probe.next_matching(Duration::from_secs(20), |_| true).await;
        answers.push((
            serde_json::from_slice::<PaymentCompleted>(message.payload().unwrap()).unwrap(),
            header_of(&message, "ce_id"),
        ));
    }
    assert_eq!(answers[0].0.payment_id, first[0].0.payment_id);
    assert_eq!(answers[1].0.payment_id, first[0].0.payment_id);
    assert_eq!(answers[1].0.status, first[0].0.status);
    assert_eq!(answers[0].1, answers[1].1, "the same event id, so order-service applies it once");
    let metrics = app.server.client.get(app.server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(testkit::metric_sum(&metrics, "payments_total"), 1.0, "charged once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_charged_order_that_is_cancelled_is_refunded_in_full_once() {
    let app = spawn_app("0").await;
    let order = order(4250);
    let request_id = RequestId::generate();
    app.publisher.publish(&order, &request_id).await.unwrap();
    let payment = payments_for(&app, std::slice::from_ref(&order)).await.remove(0).0;
    let cancelled = OrderCancelled {
        order_id: order.order_id,
        user_id: order.user_id,
        total_amount: order.total_amount,
        cancelled_at: Utc::now(),
    };
    // Twice under different event ids: the second finds the payment already given back.
    app.publisher.publish(&cancelled, &request_id).await.unwrap();
    app.publisher.publish(&cancelled, &request_id).await.unwrap();
    let refunds = TopicProbe::new(&format!("{}payment.refunded", app.topic_prefix));
    let message = refunds.next_matching(Duration::from_secs(20), |_| true).await;
    let refund: PaymentRefunded = serde_json::from_slice(message.payload().unwrap()).unwrap();
    assert_eq!(
        (refund.payment_id, refund.order_id, refund.amount),
        (payment.payment_id, order.order_id, order.total_amount)
    );
    testkit::eventually("both cancellations handled", Duration::from_secs(20), || async {
        let metrics = app.server.client.get(app.server.url("/metrics")).send().await.ok()?.text().await.ok()?;
        (testkit::metric_sum_where(&metrics, "kafka_messages_consumed_total", "order.cancelled\"") >= 2.0)
            .then_some(metrics)
    })
    .await;
    let metrics = app.server.client.get(app.server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(testkit::metric_sum(&metrics, "payments_refunded_total"), 1.0, "refunded once");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_cancelled_before_its_payment_is_never_charged() {
    let app = spawn_app("0").await;
    let order = order(990);
    let cancelled = OrderCancelled {
        order_id: order.order_id,
        user_id: order.user_id,
        total_amount: order.total_amount,
        cancelled_at: Utc::now(),
    };
    let request_id = RequestId::generate();
    app.publisher.publish(&cancelled, &request_id).await.unwrap();
    testkit::eventually("the cancellation handled", Duration::from_secs(20), || async {
        let metrics = app.server.client.get(app.server.url("/metrics")).send().await.ok()?.text().await.ok()?;
        (testkit::metric_sum_where(&metrics, "kafka_messages_consumed_total", "order.cancelled\"") >= 1.0).then_some(())
    })
    .await;
    app.publisher.publish(&order, &request_id).await.unwrap();
    testkit::eventually("the order handled", Duration::from_secs(20), || async {
        let metrics = app.server.client.get(app.server.url("/metrics")).send().await.ok()?.text().await.ok()?;
        (testkit::metric_sum_where(&metrics, "kafka_messages_consumed_total", "order.created\"") >= 1.0).then_some(())
    })
    .await;
    let metrics = app.server.client.get(app.server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(testkit::metric_sum(&metrics, "payments_total"), 0.0, "nothing charged");
    assert_eq!(testkit::metric_sum(&metrics, "payments_refunded_total"), 0.0, "nothing to give back");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_rate_of_one_declines_every_payment() {
    let app = spawn_app("1").await;
    let orders = [order(100)];
    app.publisher.publish(&orders[0], &RequestId::generate()).await.unwrap();
    assert_eq!(payments_for(&app, &orders).await[0].0.status, PaymentStatus::Failed);
    let ready = app.server.client.get(app.server.url("/health/ready")).send().await.unwrap();
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["consumer:".to_owned() + &app.topic_prefix + "payment-service-group"]["status"], "up");
}
