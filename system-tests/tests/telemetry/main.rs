//! Observability proven on the real thing: the four services as processes
//! exporting spans to an OTLP receiver in this test, logging JSON to files.
//! One `POST /api/auth/register` must give ONE trace, gateway to the order's payment
//! status, and every log line of that request must point into it.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should fail loudly

#[path = "../faults/cluster.rs"]
mod cluster;
mod receiver;

use std::collections::HashMap;
use std::time::Duration;

use cluster::{Broker, Service, scratch_dir};
use receiver::{CLIENT, CONSUMER, CollectedSpan, PRODUCER, Receiver, SERVER};
use testkit::eventually;

/// Every span the request must produce, by service.
const EXPECTED: [(&str, &str); 12] = [
    ("api-gateway", "POST /api/auth/register"),
    ("api-gateway", "POST user-service"),
    ("user-service", "POST /auth/register"),
    ("user-service", "INSERT users"),
    ("user-service", "send user.created"),
    ("order-service", "process user.created"),
    ("order-service", "INSERT orders"),
    ("order-service", "send order.created"),
    ("payment-service", "process order.created"),
    ("payment-service", "send payment.completed"),
    ("order-service", "process payment.completed"),
    ("order-service", "UPDATE orders"),
];

fn span_named<'a>(trace: &'a [CollectedSpan], service: &str, name: &str, kind: i32) -> &'a CollectedSpan {
    trace
        .iter()
        .find(|s| s.service == service && s.name == name && s.kind == kind)
        .unwrap_or_else(|| panic!("no {name:?} span (kind {kind}) from {service} in the trace:\n{}", describe(trace)))
}

fn describe(trace: &[CollectedSpan]) -> String {
    trace
        .iter()
        .map(|s| format!("  {} / {} ({}) {} <- {}", s.service, s.name, s.kind, s.span_id, s.parent_span_id))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_child(parent: &CollectedSpan, child: &CollectedSpan) {
    assert_eq!(
        child.parent_span_id, parent.span_id,
        "{} / {} must be a child of {} / {}",
        child.service, child.name, parent.service, parent.name
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_request_is_one_trace_across_four_services_and_kafka_and_its_logs_point_into_it() {
    testkit::init_tracing();
    let (receiver, endpoint) = Receiver::start().await;
    let dir = scratch_dir();
    let broker = Broker::start(&dir).await;
    let env = |database: Option<String>| {
        let mut env = vec![
            ("KAFKA_BROKERS".to_owned(), broker.address()),
            ("DATABASE_URL".to_owned(), testkit::server_url()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), endpoint.clone()),
            ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "200".to_owned()),
            ("APP_ENV".to_owned(), "development".to_owned()),
            ("PAYMENT_DELAY_MS".to_owned(), "0".to_owned()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
        ];
        env.extend(database.map(|d| ("DATABASE_NAME".to_owned(), d)));
        env
    };
    let users = Service::start("user-service", &dir, env(Some(testkit::create_database().await))).await;
    let mut order_env = env(Some(testkit::create_database().await));
    order_env.push(("USER_SERVICE_URL".to_owned(), users.url("")));
    let orders = Service::start("order-service", &dir, order_env).await;
    let _payments = Service::start("payment-service", &dir, env(Some(testkit::create_database().await))).await;
    let mut gateway_env = env(None);
    gateway_env.push(("USER_SERVICE_URL".to_owned(), users.url("")));
    gateway_env.push(("ORDER_SERVICE_URL".to_owned(), orders.url("")));
    let gateway = Service::start("api-gateway", &dir, gateway_env).await;

    let request_id = format!("trace-test-{}", uuid::Uuid::new_v4().simple());
    let client = reqwest::Client::new();
    // A client that tries to join a trace of its choosing, force sampling, and pass
    // 16 KB of tracestate and 8 KB of baggage (role=admin) down the chain.
    let client_trace_id = uuid::Uuid::new_v4().simple().to_string();
    let tracestate = (0..800).map(|i| format!("v{i}=x")).collect::<Vec<_>>().join(",");
    let baggage = format!("role=admin,padding={}", "p".repeat(8 * 1024));
    let response = client
        .post(gateway.url("/api/auth/register"))
        .header("x-request-id", &request_id)
        .header("traceparent", format!("00-{client_trace_id}-00f067aa0ba902b7-01"))
        .header("tracestate", &tracestate)
        .header("baggage", &baggage)
        .json(&serde_json::json!({"email": "trace@example.com", "name": "Trace Test", "password": "SecurePass123!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let answered_trace_id = response.headers()["x-trace-id"].to_str().unwrap().to_owned();
    assert_ne!(answered_trace_id, client_trace_id, "a client's traceparent became the request's trace");

    // The whole chain has reported once order-service's span for payment.completed arrived.
    let (trace_id, trace) = eventually("the full trace to reach the receiver", Duration::from_secs(60), || async {
        let spans = receiver.spans();
        let root = spans.iter().find(|s| {
            s.service == "api-gateway" && s.kind == SERVER && s.attributes.get("request_id") == Some(&request_id)
        })?;
        let trace: Vec<CollectedSpan> = spans.iter().filter(|s| s.trace_id == root.trace_id).cloned().collect();
        // Services export in their own batches: wait until each one's part has arrived.
        let complete =
            EXPECTED.iter().all(|(service, name)| trace.iter().any(|s| s.service == *service && s.name == *name));
        complete.then(|| (root.trace_id.clone(), trace))
    })
    .await;

    // The tree, parent to child.
    let gateway_server = span_named(&trace, "api-gateway", "POST /api/auth/register", SERVER);
    let gateway_client = span_named(&trace, "api-gateway", "POST user-service", CLIENT);
    let user_server = span_named(&trace, "user-service", "POST /auth/register", SERVER);
    let user_insert = span_named(&trace, "user-service", "INSERT users", CLIENT);
    let user_send = span_named(&trace, "user-service", "send user.created", PRODUCER);
    let order_process = span_named(&trace, "order-service", "process user.created", CONSUMER);
    let order_insert = span_named(&trace, "order-service", "INSERT orders", CLIENT);
    let order_send = span_named(&trace, "order-service", "send order.created", PRODUCER);
    let payment_process = span_named(&trace, "payment-service", "process order.created", CONSUMER);
    let payment_send = span_named(&trace, "payment-service", "send payment.completed", PRODUCER);
    let status_process = span_named(&trace, "order-service", "process payment.completed", CONSUMER);
    let status_update = span_named(&trace, "order-service", "UPDATE orders", CLIENT);
    assert!(gateway_server.parent_span_id.is_empty(), "the gateway starts the trace");
    assert_eq!(trace_id, answered_trace_id, "X-Trace-Id names the request's trace");
    assert_eq!(
        gateway_server.linked_trace_ids,
        std::slice::from_ref(&client_trace_id),
        "the client's trace is linked, not joined"
    );
    for span in &trace {
        let text = format!("{:?}", span.attributes);
        assert!(
            !text.contains("role=admin") && !text.contains("ppppppppppppppppppppppppppppppppppppppp"),
            "the client's baggage reached {} / {}",
            span.service,
            span.name
        );
    }
    for (parent, child) in [
        (gateway_server, gateway_client),
        (gateway_client, user_server),
        (user_server, user_insert),
        (user_server, user_send), // through the outbox: the row kept the request's context
        (user_send, order_process),
        (order_process, order_insert),
        (order_process, order_send),
        (order_send, payment_process),
        (payment_process, payment_send),
        (payment_send, status_process),
        (status_process, status_update),
    ] {
        assert_child(parent, child);
    }

    // Messaging semantic conventions on the Kafka spans.
    for span in [user_send, order_send, payment_send, order_process, payment_process, status_process] {
        let a = &span.attributes;
        assert_eq!(a.get("messaging.system").map(String::as_str), Some("kafka"), "{span:?}");
        assert!(a.contains_key("messaging.destination.name"), "{span:?}");
        assert!(a.contains_key("messaging.destination.partition.id"), "{span:?}");
        assert!(a.contains_key("messaging.kafka.offset"), "{span:?}");
        assert!(a.contains_key("messaging.kafka.message.key"), "{span:?}");
    }
    assert_eq!(order_process.attributes["messaging.operation.type"], "process");
    assert_eq!(order_process.attributes["messaging.consumer.group.name"], "order-service-group");
    assert_eq!(user_send.attributes["messaging.operation.type"], "send");
    assert_eq!(user_send.attributes["messaging.destination.name"], "user.created");
    for span in &trace {
        assert_eq!(span.resource.get("deployment.environment.name").map(String::as_str), Some("development"));
        assert!(span.resource.contains_key("service.version"));
    }

    // Logs: every service wrote lines for this request, and each line's trace id is a real trace.
    let known_traces: std::collections::HashSet<String> = receiver.spans().into_iter().map(|s| s.trace_id).collect();
    let mut lines_per_service: HashMap<String, usize> = HashMap::new();
    for service in ["api-gateway", "user-service", "order-service", "payment-service"] {
        let log = std::fs::read_to_string(dir.join(format!("{service}.log"))).unwrap();
        for line in log.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
            if line["request_id"] != request_id.as_str() {
                continue;
            }
            assert_eq!(line["service"], service);
            let id = line["trace_id"].as_str().unwrap_or_else(|| panic!("no trace_id: {line}"));
            assert!(line["span_id"].is_string(), "{line}");
            assert!(known_traces.contains(id), "log line points to a trace nobody exported: {line}");
            assert!(!line.to_string().contains("SecurePass123!"), "a password reached the logs: {line}");
            *lines_per_service.entry(service.to_owned()).or_default() += 1;
        }
    }
    assert_eq!(lines_per_service.len(), 4, "every service logged the request: {lines_per_service:?}");
    println!("trace {trace_id}: {} spans\n{}", trace.len(), describe(&trace));
    println!("log lines for {request_id}: {lines_per_service:?}");
}
