//! Every public endpoint through the gateway against the real services: who may
//! call it, and what a client sees when they may not.

use std::time::Duration;

use testkit::eventually;

use crate::helpers::{Platform, assert_problem};

fn order_body(user_id: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({"userId": user_id, "items": [{"productId": "product-123", "quantity": 2, "price": 29.99}]})
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_up_and_sign_in_issue_tokens_and_wrong_credentials_get_one_401() {
    let platform = Platform::start("0").await;
    let client = &platform.gateway.client;
    let (user, _) = platform.register("sign.in@example.com").await;
    assert_eq!(user["role"], "user");
    let login = |email: &'static str, password: &'static str| {
        client
            .post(platform.url("/api/auth/login"))
            .json(&serde_json::json!({"email": email, "password": password}))
            .send()
    };
    let ok = login("sign.in@example.com", "SecurePass123!").await.unwrap();
    assert_eq!(ok.status(), 200);
    let body: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["user"]["id"], user["id"]);
    let wrong_password = assert_problem(login("sign.in@example.com", "NotThePass1!").await.unwrap(), 401).await;
    let wrong_email = assert_problem(login("nobody@example.com", "SecurePass123!").await.unwrap(), 401).await;
    assert_eq!(wrong_password, wrong_email);
    let duplicate = client
        .post(platform.url("/api/auth/register"))
        .json(&serde_json::json!({"email": "SIGN.IN@example.com", "name": "Other", "password": "SecurePass123!"}))
        .send()
        .await
        .unwrap();
    assert_problem(duplicate, 409).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_tampered_expired_and_unsigned_tokens_get_401() {
    let platform = Platform::start("0").await;
    let client = &platform.gateway.client;
    let url = platform.url("/api/orders");
    let missing = client.get(&url).send().await.unwrap();
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    assert_problem(missing, 401).await;

    let (_, token) = platform.register("tokens@example.com").await;
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert_problem(client.get(&url).bearer_auth(&tampered).send().await.unwrap(), 401).await;

    // Signed with the right key but expired, or for another issuer or audience.
    let key = jsonwebtoken::EncodingKey::from_secret(api_gateway::configuration::DEVELOPMENT_JWT_SECRET.as_bytes());
    let now = chrono::Utc::now().timestamp();
    let claims = |iss: &str, aud: &str, exp: i64| serde_json::json!({"sub": uuid::Uuid::new_v4(), "role": "admin", "iss": iss, "aud": aud, "iat": now - 100, "exp": exp});
    for (why, claims) in [
        ("expired", claims("rust-event-platform", "platform-api", now - 1)),
        ("issuer", claims("someone-else", "platform-api", now + 600)),
        ("audience", claims("rust-event-platform", "another-api", now + 600)),
    ] {
        let forged = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap();
        let response = client.get(&url).bearer_auth(&forged).send().await.unwrap();
        assert_eq!(response.status(), 401, "{why}");
    }
    let payload = token.split('.').nth(1).unwrap();
    let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    assert_problem(client.get(&url).bearer_auth(&unsigned).send().await.unwrap(), 401).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn users_reach_their_own_account_and_admins_reach_all() {
    let platform = Platform::start("0").await;
    let client = &platform.gateway.client;
    let admin = platform.admin_token().await;
    let (me, my_token) = platform.register("me@example.com").await;
    let (other, _) = platform.register("other@example.com").await;
    let me_url = platform.url(&format!("/api/users/{}", me["id"].as_str().unwrap()));
    let other_url = platform.url(&format!("/api/users/{}", other["id"].as_str().unwrap()));

    assert_eq!(client.get(&me_url).bearer_auth(&my_token).send().await.unwrap().status(), 200);
    assert_problem(client.get(&other_url).bearer_auth(&my_token).send().await.unwrap(), 403).await;
    assert_problem(client.get(platform.url("/api/users")).bearer_auth(&my_token).send().await.unwrap(), 403).await;
    let promote =
        client.put(&me_url).bearer_auth(&my_token).json(&serde_json::json!({"role": "admin"})).send().await.unwrap();
    assert_problem(promote, 403).await;
    let rename = client
        .put(&me_url)
        .bearer_auth(&my_token)
        .json(&serde_json::json!({"name": "Renamed Me"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rename.status(), 200);
    assert_problem(client.delete(&other_url).bearer_auth(&my_token).send().await.unwrap(), 403).await;

    let users: Vec<serde_json::Value> =
        client.get(platform.url("/api/users?limit=10")).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(users.len(), 3, "admin, me, other");
    let created = client
        .post(platform.url("/api/users"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"email": "ops@example.com", "name": "Ops Person", "password": "SecurePass123!", "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.json::<serde_json::Value>().await.unwrap()["role"], "admin");
    assert_eq!(client.delete(&other_url).bearer_auth(&admin).send().await.unwrap().status(), 204);
}

#[tokio::test(flavor = "multi_thread")]
async fn orders_belong_to_their_owner_and_only_admins_move_them() {
    // Slow payments: the orders must still be pending when this test cancels or moves them.
    let platform = Platform::start_full("0", "60000", &[]).await;
    let client = &platform.gateway.client;
    let admin = platform.admin_token().await;
    let (me, my_token) = platform.register("buyer@example.com").await;
    let (other, other_token) = platform.register("nosy@example.com").await;

    let for_other = client
        .post(platform.url("/api/orders"))
        .bearer_auth(&my_token)
        .json(&order_body(&other["id"]))
        .send()
        .await
        .unwrap();
    assert_problem(for_other, 403).await;
    let placed = client
        .post(platform.url("/api/orders"))
        .bearer_auth(&my_token)
        .json(&order_body(&me["id"]))
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status(), 201);
    let order: serde_json::Value = placed.json().await.unwrap();
    assert_eq!(order["totalAmount"], serde_json::json!(59.98));
    let order_url = platform.url(&format!("/api/orders/{}", order["id"].as_str().unwrap()));

    assert_problem(client.get(&order_url).bearer_auth(&other_token).send().await.unwrap(), 404).await;
    let theirs = client
        .get(platform.url(&format!("/api/orders?userId={}", me["id"].as_str().unwrap())))
        .bearer_auth(&other_token)
        .send()
        .await
        .unwrap();
    assert_problem(theirs, 403).await;
    let mine: Vec<serde_json::Value> = client
        .get(platform.url("/api/orders?status=pending"))
        .bearer_auth(&my_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(mine.iter().all(|o| o["userId"] == me["id"]));

    let patch = |token: &str, status: &str| {
        client.patch(&order_url).bearer_auth(token).json(&serde_json::json!({"status": status})).send()
    };
    assert_problem(patch(&my_token, "paid").await.unwrap(), 403).await;
    assert_problem(client.get(platform.url("/api/orders/stats")).bearer_auth(&my_token).send().await.unwrap(), 403)
        .await;
    assert_problem(client.delete(&order_url).bearer_auth(&other_token).send().await.unwrap(), 404).await;
    assert_eq!(client.delete(&order_url).bearer_auth(&my_token).send().await.unwrap().status(), 204);
    let after: serde_json::Value =
        client.get(&order_url).bearer_auth(&my_token).send().await.unwrap().json().await.unwrap();
    assert_eq!(after["status"], "cancelled");
    assert_problem(patch(&admin, "paid").await.unwrap(), 409).await;
    assert_problem(client.delete(&order_url).bearer_auth(&my_token).send().await.unwrap(), 409).await;

    let second: serde_json::Value = client
        .post(platform.url("/api/orders"))
        .bearer_auth(&admin)
        .json(&order_body(&me["id"]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second_url = platform.url(&format!("/api/orders/{}", second["id"].as_str().unwrap()));
    let paid = client
        .patch(&second_url)
        .bearer_auth(&admin)
        .json(&serde_json::json!({"status": "paid"}))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.json::<serde_json::Value>().await.unwrap()["status"], "paid");
    assert_problem(
        client
            .patch(&second_url)
            .bearer_auth(&admin)
            .json(&serde_json::json!({"status": "shipped"}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_count_by_status_with_exact_revenue() {
    let platform = Platform::start("0").await;
    let client = &platform.gateway.client;
    let admin = platform.admin_token().await;
    let (me, token) = platform.register("stats@example.com").await;
    // The welcome orders (admin's and mine) get paid by the chain: 2 × 10.00.
    eventually("both welcome orders to be paid", Duration::from_secs(30), || async {
        let stats: serde_json::Value =
            client.get(platform.url("/api/orders/stats")).bearer_auth(&admin).send().await.ok()?.json().await.ok()?;
        (stats["countsByStatus"]["paid"] == 2).then_some(())
    })
    .await;
    for price in [0.1, 0.2] {
        let body = serde_json::json!({"userId": me["id"], "items": [{"productId": "product-1", "quantity": 3, "price": price}]});
        client.post(platform.url("/api/orders")).bearer_auth(&token).json(&body).send().await.unwrap();
    }
    let stats = eventually("the new orders to be paid", Duration::from_secs(30), || async {
        let stats: serde_json::Value =
            client.get(platform.url("/api/orders/stats")).bearer_auth(&admin).send().await.ok()?.json().await.ok()?;
        (stats["countsByStatus"]["paid"] == 4).then_some(stats)
    })
    .await;
    assert_eq!(stats["totalOrders"], 4);
    assert_eq!(stats["revenue"], serde_json::json!(20.9), "10 + 10 + 0.30 + 0.60, exactly");
    assert_eq!(stats["averageOrderValue"], serde_json::json!(5.23), "20.90 / 4, rounded half up");
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_is_rate_limited_per_address_with_retry_after() {
    let platform = Platform::start_with("0", &[("AUTH_RATE_LIMIT_PER_MINUTE", "3")]).await;
    let client = &platform.gateway.client;
    // A sign-up takes one of the three.
    let (_, token) = platform.register("limited@example.com").await;
    let login = || {
        client
            .post(platform.url("/api/auth/login"))
            .json(&serde_json::json!({"email": "a@example.com", "password": "x"}))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(login().await.unwrap().status(), 401);
    }
    let limited = login().await.unwrap();
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_problem(limited, 429).await;
    // The API is limited per principal, not by the sign-in quota.
    assert_eq!(client.get(platform.url("/api/orders")).bearer_auth(&token).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_allows_only_configured_origins() {
    let platform = Platform::start_with("0", &[("CORS_ALLOWED_ORIGINS", "http://localhost:8080")]).await;
    let client = &platform.gateway.client;
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, platform.url("/api/orders"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
    };
    let allowed = preflight("http://localhost:8080").await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "http://localhost:8080");
    let refused = preflight("http://evil.example").await.unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_stop_working_within_seconds_of_a_deletion_or_a_role_change() {
    let platform = Platform::start("0").await;
    let client = &platform.gateway.client;
    let admin = platform.admin_token().await;
    let (user, token) = platform.register("short-lived@example.com").await;
    let orders = platform.url("/api/orders");
    assert_eq!(client.get(&orders).bearer_auth(&token).send().await.unwrap().status(), 200);

    // A deleted account: its token stops working.
    let user_url = platform.url(&format!("/api/users/{}", user["id"].as_str().unwrap()));
    assert_eq!(client.delete(&user_url).bearer_auth(&admin).send().await.unwrap().status(), 204);
    let deleted = std::time::Instant::now();
    eventually("the deleted account's token to be refused", Duration::from_secs(5), || async {
        let response = client.get(&orders).bearer_auth(&token).send().await.ok()?;
        (response.status() == 401).then_some(())
    })
    .await;
    println!("a deleted account's token was refused {:.2} s after the deletion", deleted.elapsed().as_secs_f64());
    let body =
        serde_json::json!({"userId": user["id"], "items": [{"productId": "product-1", "quantity": 1, "price": 1.5}]});
    assert_problem(client.post(&orders).bearer_auth(&token).json(&body).send().await.unwrap(), 401).await;

    // A demoted admin: admin access ends.
    let created = client
        .post(platform.url("/api/users"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"email": "deputy@example.com", "name": "Deputy Admin", "password": "SecurePass123!", "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let deputy: serde_json::Value = created.json().await.unwrap();
    let login = client
        .post(platform.url("/api/auth/login"))
        .json(&serde_json::json!({"email": "deputy@example.com", "password": "SecurePass123!"}))
        .send()
        .await
        .unwrap();
    let deputy_token = login.json::<serde_json::Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    let users = platform.url("/api/users");
    assert_eq!(client.get(&users).bearer_auth(&deputy_token).send().await.unwrap().status(), 200);
    let deputy_url = platform.url(&format!("/api/users/{}", deputy["id"].as_str().unwrap()));
    let demoted =
        client.put(&deputy_url).bearer_auth(&admin).json(&serde_json::json!({"role": "user"})).send().await.unwrap();
    assert_eq!(demoted.status(), 200);
    let changed = std::time::Instant::now();
    eventually("the demoted admin's token to be refused", Duration::from_secs(5), || async {
        let response = client.get(&users).bearer_auth(&deputy_token).send().await.ok()?;
        (response.status() == 401).then_some(())
    })
    .await;
    println!("a demoted admin's token was refused {:.2} s after the change", changed.elapsed().as_secs_f64());
}
