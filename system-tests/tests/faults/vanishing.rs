//! Clients that vanish mid-request leave nothing half-written: every handler runs to its
//! end, so no transaction is abandoned halfway.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use super::Platform;
use super::heal::assert_outboxes_drain;

/// One request over a fresh connection, abandoned at a random point: before the body is
/// complete, right after it, or while the handler runs.
async fn vanishing_request(port: u16, method: &str, path: &str, headers: &str, body: &str) {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else { return };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{headers}\r\n{body}",
        body.len()
    );
    let random = Uuid::new_v4().as_u128();
    match random % 4 {
        0 => {
            let cut = request.len() - body.len() / 2;
            let _ = stream.write_all(&request.as_bytes()[..cut]).await;
        }
        1 => {
            let _ = stream.write_all(request.as_bytes()).await;
        }
        _ => {
            let _ = stream.write_all(request.as_bytes()).await;
            let delay = u64::try_from((random >> 8) % 20_000).unwrap_or(0);
            // The fault itself: the client goes away this many microseconds into the handler.
            tokio::time::sleep(Duration::from_micros(delay)).await;
        }
    }
    drop(stream);
}

fn trusted_headers(role: &str) -> String {
    format!(
        "{}: {}\r\n{}: {}\r\n{}: {role}\r\n",
        platform::auth::API_KEY_HEADER,
        platform::auth::DEVELOPMENT_API_KEY,
        platform::auth::PRINCIPAL_ID_HEADER,
        Uuid::new_v4(),
        platform::auth::PRINCIPAL_ROLE_HEADER
    )
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "fault test: run with `make chaos`"]
async fn clients_that_vanish_mid_request_leave_nothing_half_written() {
    use futures::StreamExt;
    let platform = Platform::start().await;
    let users = platform.register(20, Arc::new(AtomicUsize::new(0))).await.unwrap();
    platform.wait_until_settled(&users, Duration::from_secs(60)).await;
    let orders: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM orders WHERE user_id = ANY($1)")
        .bind(&users)
        .fetch_all(&platform.order_db)
        .await
        .unwrap();
    let admin = trusted_headers("admin");
    let (user_port, order_port) = (platform.users.port, platform.orders.port);
    let requests = 600;
    futures::stream::iter(0..requests)
        .for_each_concurrent(24, |i| {
            let (admin, user, order) = (admin.clone(), users[i % users.len()], orders[i % orders.len()]);
            async move {
                let email = format!("vanish-{}@example.com", Uuid::new_v4().simple());
                match i % 6 {
                    0 | 1 => {
                        let body = format!(r#"{{"userId":"{user}","items":[{{"productId":"product-v","quantity":2,"price":3.5}}]}}"#);
                        vanishing_request(order_port, "POST", "/orders", &admin, &body).await;
                    }
                    2 => {
                        let body = format!(r#"{{"email":"{email}","name":"Vanishing Client","password":"SecurePass123!"}}"#);
                        vanishing_request(user_port, "POST", "/auth/register", &trusted_headers("user"), &body).await;
                    }
                    3 => {
                        let body = format!(r#"{{"email":"{email}","name":"Vanishing Admin","password":"SecurePass123!","role":"user"}}"#);
                        vanishing_request(user_port, "POST", "/users", &admin, &body).await;
                    }
                    4 => vanishing_request(order_port, "DELETE", &format!("/orders/{order}"), &admin, "").await,
                    _ => {
                        let body = r#"{"name":"Renamed Person"}"#;
                        vanishing_request(user_port, "PUT", &format!("/users/{user}"), &admin, body).await;
                    }
                }
            }
        })
        .await;

    assert_outboxes_drain(&platform).await;
    for (sql, pool) in [
        (
            "SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.id)",
            &platform.order_db,
        ),
        (
            "SELECT count(*) FROM orders o WHERE NOT EXISTS
               (SELECT 1 FROM outbox x WHERE x.topic = 'order.created' AND x.payload->>'orderId' = o.id::text)",
            &platform.order_db,
        ),
        (
            "SELECT count(*) FROM users u WHERE u.role = 'user' AND NOT EXISTS
               (SELECT 1 FROM outbox x WHERE x.topic = 'user.created' AND x.payload->>'userId' = u.id::text)",
            &platform.user_db,
        ),
    ] {
        let half_written: i64 = sqlx::query_scalar(sql).fetch_one(pool).await.unwrap();
        assert_eq!(half_written, 0, "half-written rows: {sql}");
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE kind = 'standard'")
        .fetch_one(&platform.order_db)
        .await
        .unwrap();
    for service in [&platform.users, &platform.orders] {
        let log = service.log();
        assert!(!log.contains("transaction in progress"), "{} logged a transaction notice", service.name);
    }
    println!(
        "vanishing clients: {requests} abandoned requests; {stored} orders stored, each whole with its event; no transaction notice"
    );
}
