//! Starting user-service on port 0 with a database and topics of its own.

use platform::configuration::Env;
use testkit::TestServer;
use user_service::{Application, Settings};

pub struct TestApp {
    pub server: TestServer,
    pub topic_prefix: String,
    pub database_name: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.server.client
    }

    pub async fn post_user(&self, body: &serde_json::Value) -> reqwest::Response {
        self.client().post(self.url("/users")).json(body).send().await.expect("request reaches the service")
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|env| env).await
}

pub async fn spawn_app_with(configure: impl FnOnce(Env) -> Env) -> TestApp {
    testkit::init_tracing();
    let topic_prefix = testkit::topic_prefix();
    let env = configure(testkit::service_env(&topic_prefix).await);
    let settings = Settings::from_env(&env).expect("valid test settings");
    let database_name = settings.database.name.clone();
    let server = Application::build(settings).await.expect("user-service builds");
    TestApp { server: TestServer::spawn(server), topic_prefix, database_name }
}

pub fn valid_user(email: &str) -> serde_json::Value {
    serde_json::json!({ "email": email, "name": "John Doe", "password": "SecurePass123!" })
}

/// Asserts a problem+json response with `status` and returns its body.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], status);
    body
}
