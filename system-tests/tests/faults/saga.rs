//! The saga's payment timeout: an order whose payment is never answered fails with the
//! timeout reason; one answered after a repeated request is paid once.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use testkit::eventually;
use uuid::Uuid;

use super::{Platform, read_topic};

/// The welcome order of `user`: its status, reason and payment requests.
async fn welcome_order(platform: &Platform, user: Uuid) -> Option<(Uuid, String, Option<String>, i32)> {
    sqlx::query_as(
        "SELECT id, status, status_reason, payment_requests FROM orders WHERE kind = 'welcome' AND user_id = $1",
    )
    .bind(user)
    .fetch_optional(&platform.order_db)
    .await
    .ok()
    .flatten()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "fault test: run with `make chaos`"]
async fn an_order_whose_payment_never_answers_fails_with_the_timeout_reason() {
    let mut platform =
        Platform::start_with(true, &[("PAYMENT_TIMEOUT_MS", "1000"), ("PAYMENT_MAX_REQUESTS", "2")]).await;
    platform.payments.kill9();
    let stopped = Instant::now();
    let users = platform.register(3, Arc::new(AtomicUsize::new(0))).await.unwrap();
    for user in &users {
        let (_, status, reason, requests) =
            eventually("the welcome order to time out", Duration::from_secs(30), || async {
                welcome_order(&platform, *user).await.filter(|(_, status, _, _)| status != "pending")
            })
            .await;
        assert_eq!(status, "payment_failed");
        assert!(reason.as_deref().is_some_and(|r| r.contains("timed out")), "reason: {reason:?}");
        assert_eq!(requests, 2, "requested twice before failing");
    }
    let failed_after = stopped.elapsed();
    assert!(failed_after >= Duration::from_secs(2), "failed before timeout × requests: {failed_after:?}");

    // The late answers change nothing: final states never move.
    let consumed = |metrics: &str| {
        testkit::metric_sum_where(metrics, "kafka_messages_consumed_total", r#"topic="payment.completed""#)
    };
    let metrics = platform.client.get(platform.orders.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let consumed_before = consumed(&metrics);
    platform.payments.restart().await;
    eventually("order-service to consume the late answers", Duration::from_secs(60), || async {
        let metrics = platform.client.get(platform.orders.url("/metrics")).send().await.ok()?.text().await.ok()?;
        (consumed(&metrics) >= consumed_before + 3.0).then_some(())
    })
    .await;
    for user in &users {
        let (_, status, _, _) = welcome_order(&platform, *user).await.unwrap();
        assert_eq!(status, "payment_failed", "a late answer moved a final order");
    }
    // The admin's welcome order, placed as payment-service stopped, may have timed out too.
    let timed_out: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE status_reason IS NOT NULL")
        .fetch_one(&platform.order_db)
        .await
        .unwrap();
    assert!(timed_out >= 3);
    #[allow(clippy::cast_precision_loss)]
    let expected = timed_out as f64;
    assert_eq!(testkit::metric_sum_where(&metrics, "order_payment_timeouts_total", r#"outcome="failed""#), expected);
    println!(
        "saga timeout: 3 orders failed {:.1} s after payment-service stopped (1 s × 2 requests)",
        failed_after.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "fault test: run with `make chaos`"]
async fn a_payment_requested_again_after_a_timeout_is_paid_once() {
    let mut platform = Platform::start_with(
        true,
        &[("PAYMENT_TIMEOUT_MS", "2000"), ("PAYMENT_MAX_REQUESTS", "10"), ("PAYMENT_FAILURE_RATE", "0")],
    )
    .await;
    platform.payments.kill9();
    let users = platform.register(1, Arc::new(AtomicUsize::new(0))).await.unwrap();
    eventually("the payment to be requested again", Duration::from_secs(30), || async {
        welcome_order(&platform, users[0]).await.filter(|(_, _, _, requests)| *requests >= 2)
    })
    .await;
    platform.payments.restart().await;
    let (order, status, reason, requests) = eventually("the order to be paid", Duration::from_secs(60), || async {
        welcome_order(&platform, users[0]).await.filter(|(_, status, _, _)| status != "pending")
    })
    .await;
    assert_eq!(status, "paid");
    assert_eq!(reason, None);
    let payments: Vec<_> = read_topic(&platform.broker.address(), "payment.completed")
        .into_iter()
        .filter(|p| p.order_id == order)
        .collect();
    let ids: std::collections::HashSet<Uuid> = payments.iter().map(|p| p.payment_id).collect();
    assert_eq!(ids.len(), 1, "one payment, however often it was requested: {payments:?}");
    println!("saga retry: paid after {requests} payment requests; {} payment messages, 1 payment id", payments.len());
}
