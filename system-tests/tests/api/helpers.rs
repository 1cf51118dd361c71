//! Starting the gateway, and the whole platform, inside the test process.

use std::time::Duration;

use platform::configuration::Env;
use testkit::{TestServer, eventually};

/// The four services on port 0, sharing one topic prefix, each with its own database.
pub struct Platform {
    pub gateway: Gateway,
    pub topic_prefix: String,
    /// The Prometheus exposition of this test process (every service in it shares one recorder).
    metrics_url: String,
    _services: Vec<TestServer>,
}

impl Platform {
    pub async fn start(payment_failure_rate: &str) -> Self {
        Self::start_with(payment_failure_rate, &[]).await
    }

    pub async fn start_with(payment_failure_rate: &str, gateway_env: &[(&str, &str)]) -> Self {
        Self::start_full(payment_failure_rate, "0", gateway_env).await
    }

    /// Payments that take `payment_delay_ms`: orders stay `pending` meanwhile.
    pub async fn start_full(payment_failure_rate: &str, payment_delay_ms: &str, gateway_env: &[(&str, &str)]) -> Self {
        testkit::init_tracing();
        let topic_prefix = testkit::topic_prefix();
        let env = |extra: &[(&str, &str)]| {
            let topic_prefix = topic_prefix.clone();
            let extra: Vec<(String, String)> = extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            async move { extra.into_iter().fold(testkit::service_env(&topic_prefix).await, |env, (k, v)| env.with(&k, v)) }
        };
        let users = TestServer::spawn(
            user_service::Application::build(user_service::Settings::from_env(&env(&[]).await).unwrap()).await.unwrap(),
        );
        let order_env = env(&[("USER_SERVICE_URL", &users.address)]).await;
        let orders = TestServer::spawn(
            order_service::Application::build(order_service::Settings::from_env(&order_env).unwrap()).await.unwrap(),
        );
        let payment_env =
            env(&[("PAYMENT_DELAY_MS", payment_delay_ms), ("PAYMENT_FAILURE_RATE", payment_failure_rate)]).await;
        let payments = TestServer::spawn(
            payment_service::Application::build(payment_service::Settings::from_env(&payment_env).unwrap())
                .await
                .unwrap(),
        );
        let gateway = spawn_gateway_with(&users.address, &orders.address, gateway_env).await;
        for service in [&users, &orders, &payments, &*gateway] {
            service.wait_ready().await;
        }
        let metrics_url = payments.url("/metrics");
        Self { gateway, topic_prefix, metrics_url, _services: vec![users, orders, payments] }
    }

    pub fn url(&self, path: &str) -> String {
        self.gateway.url(path)
    }

    /// The sum of the series of metric `name` whose labels contain `label` (every series
    /// when `label` is empty), now.
    pub async fn metric(&self, name: &str, label: &str) -> f64 {
        let exposition = self.gateway.client.get(&self.metrics_url).send().await.unwrap().text().await.unwrap();
        if label.is_empty() {
            testkit::metric_sum(&exposition, name)
        } else {
            testkit::metric_sum_where(&exposition, name, label)
        }
    }

    /// Polls through the gateway, as the user, until their welcome order leaves `pending`.
    pub async fn wait_for_settled_order(&self, token: &str) -> serde_json::Value {
        let url = self.url("/api/orders");
        eventually("the welcome order to be settled", Duration::from_secs(30), || async {
            let response = self.gateway.client.get(&url).bearer_auth(token).send().await.ok()?;
            let orders: Vec<serde_json::Value> = response.json().await.ok()?;
            orders.into_iter().find(|o| o["status"] == "paid" || o["status"] == "payment_failed")
        })
        .await
    }

    /// Signs up a user through the gateway and waits until order-service knows them
    /// (their welcome order exists); returns (user, token).
    pub async fn register(&self, email: &str) -> (serde_json::Value, String) {
        let response = self
            .gateway
            .client
            .post(self.url("/api/auth/register"))
            .json(&serde_json::json!({"email": email, "name": "Jane Doe", "password": "SecurePass123!"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: serde_json::Value = response.json().await.unwrap();
        let token = body["access_token"].as_str().unwrap().to_owned();
        // order-service accepts orders for users it has heard of: wait for the welcome order.
        let url = self.url("/api/orders");
        eventually("order-service to know the new user", Duration::from_secs(30), || async {
            let response = self.gateway.client.get(&url).bearer_auth(&token).send().await.ok()?;
            let orders: Vec<serde_json::Value> = response.json().await.ok()?;
            (!orders.is_empty()).then_some(())
        })
        .await;
        (body["user"].clone(), token)
    }

    /// Signs in as the first admin (development defaults); returns the token.
    pub async fn admin_token(&self) -> String {
        let response = self
            .gateway
            .client
            .post(self.url("/api/auth/login"))
            .json(&serde_json::json!({"email": "admin@example.com", "password": "Admin123!ChangeMe"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json::<serde_json::Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
    }
}

/// A gateway under test. When it goes out of scope in a test that has not failed, it
/// checks that every answer it gave had a status the OpenAPI document lists for its
/// operation: the guard against a handler and the document drifting apart.
pub struct Gateway(TestServer);

impl std::ops::Deref for Gateway {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.0
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let undocumented = api_gateway::conformance::undocumented_answers();
        if !std::thread::panicking() && undocumented > 0 {
            panic!(
                "the gateway answered {undocumented} time(s) with a status the OpenAPI document does not list for \
                 its operation; the warnings logged by `conformance` name the route and status"
            );
        }
    }
}

pub async fn spawn_gateway(users: &str, orders: &str) -> Gateway {
    spawn_gateway_with(users, orders, &[]).await
}

/// A token the test gateway accepts, for a principal that need not exist anywhere.
pub fn token_for(role: platform::auth::Role) -> String {
    let settings = api_gateway::Settings::from_env(&Env::default()).unwrap();
    let principal = platform::auth::Principal { id: uuid::Uuid::new_v4(), role };
    api_gateway::auth::Tokens::new(&settings.jwt).issue(principal, 0).unwrap()
}

pub async fn spawn_gateway_with(users: &str, orders: &str, extra: &[(&str, &str)]) -> Gateway {
    let env = Env::from_pairs([
        ("PORT", "0"),
        ("HOST", "127.0.0.1"),
        ("ADMIN_PORT", "0"),
        ("USER_SERVICE_URL", users),
        ("ORDER_SERVICE_URL", orders),
        ("UPSTREAM_TIMEOUT_MS", "5000"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "none"),
    ]);
    let env = extra.iter().fold(env, |env, (k, v)| env.with(k, *v));
    let settings = api_gateway::Settings::from_env(&env).unwrap();
    Gateway(TestServer::spawn(api_gateway::Application::build(settings).await.unwrap()))
}

pub async fn assert_problem(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    response.json().await.unwrap()
}

/// Sends one request byte for byte (no client library normalising it), body written as far
/// as the server reads it, and returns the status and the raw answer.
pub async fn raw_request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address.trim_start_matches("http://")).await.unwrap();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: gateway\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // A server that refuses the body answers and closes early: a failed write is expected then.
    let _ = stream.write_all(body).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer)
}
