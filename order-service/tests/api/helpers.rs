//! Starting order-service on port 0 with a database and topics of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use contracts::api::events::PublishedEvent;
use contracts::events::Event;
use eventing::configuration::KafkaSettings;
use eventing::kafka::EventPublisher;
use order_service::{Application, Settings};
use platform::configuration::Env;
use platform::http::RequestId;
use testkit::{TestServer, eventually};
use uuid::Uuid;

/// What the stand-in user-service says it published, by event id.
type Published = Arc<Mutex<HashMap<Uuid, PublishedEvent>>>;

pub struct TestApp {
    pub server: TestServer,
    pub topic_prefix: String,
    pub database_name: String,
    kafka: KafkaSettings,
    /// Publishes events into this test's topics, as the other services would.
    pub publisher: EventPublisher,
    /// The user events the stand-in user-service vouches for.
    published: Published,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.server.client
    }

    pub fn kafka_settings(&self) -> KafkaSettings {
        self.kafka.clone()
    }

    pub fn topic(&self, base: &str) -> String {
        format!("{}{base}", self.topic_prefix)
    }

    /// Publishes `event` as its producer would: the stand-in user-service vouches for it.
    pub async fn publish<E: Event>(&self, event: &E) {
        self.publish_with_id(event, Uuid::new_v4()).await;
    }

    /// Publishes `event` under a chosen id, as a redelivery would carry it.
    pub async fn publish_with_id<E: Event>(&self, event: &E, id: Uuid) {
        let payload = serde_json::to_value(event).unwrap();
        let published = PublishedEvent { topic: E::TOPIC.into(), event_type: E::TYPE.into(), payload };
        self.published.lock().unwrap().insert(id, published);
        self.forge_with_id(event, id).await;
    }

    /// Publishes `event` under `id` straight to the broker, as anyone who can reach it could:
    /// its producer knows nothing of it.
    pub async fn forge_with_id<E: Event>(&self, event: &E, id: Uuid) {
        self.publisher.publish_with_id(event, id, &RequestId::parse_or_generate(Some("test-request"))).await.unwrap();
    }

    pub async fn orders_of(&self, user_id: uuid::Uuid) -> Vec<serde_json::Value> {
        let response = self.client().get(self.url(&format!("/orders?userId={user_id}"))).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// A user order-service knows: announced by `user.created`, welcome order stored.
    pub async fn known_user(&self) -> uuid::Uuid {
        let user_id = uuid::Uuid::new_v4();
        let event = contracts::events::UserCreated {
            user_id,
            email: format!("{user_id}@example.com"),
            name: "Known User".into(),
            created_at: chrono::Utc::now(),
        };
        self.publish(&event).await;
        self.wait_for_order(user_id, |s| s == "pending").await;
        user_id
    }

    /// Polls until the user has an order whose status satisfies `done`.
    pub async fn wait_for_order(&self, user_id: uuid::Uuid, done: impl Fn(&str) -> bool) -> serde_json::Value {
        eventually("the order to reach the expected status", Duration::from_secs(30), || async {
            self.orders_of(user_id).await.into_iter().find(|o| o["status"].as_str().is_some_and(&done))
        })
        .await
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|env| env).await
}

pub async fn spawn_app_with(configure: impl FnOnce(Env) -> Env) -> TestApp {
    testkit::init_tracing();
    let topic_prefix = testkit::topic_prefix();
    let published = Published::default();
    let users = stand_in_user_service(Arc::clone(&published)).await;
    let env: Env = configure(testkit::service_env(&topic_prefix).await.with("USER_SERVICE_URL", users));
    let settings = Settings::from_env(&env).expect("valid test settings");
    let publisher = EventPublisher::new(&KafkaSettings { client_id: "test".into(), ..settings.kafka.clone() }).unwrap();
    let (database_name, kafka) = (settings.database.name.clone(), settings.kafka.clone());
    let server = TestServer::spawn(Application::build(settings).await.expect("order-service builds"));
    server.wait_ready().await;
    TestApp { server, topic_prefix, database_name, kafka, publisher, published }
}

/// user-service's `GET /events/{id}`, answering from what the test published; its URL.
async fn stand_in_user_service(published: Published) -> String {
    async fn event(
        State(published): State<Published>,
        Path(id): Path<Uuid>,
    ) -> Result<Json<PublishedEvent>, StatusCode> {
        published.lock().unwrap().get(&id).cloned().map(Json).ok_or(StatusCode::NOT_FOUND)
    }
    let router = axum::Router::new().route("/events/{id}", axum::routing::get(event)).with_state(published);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

pub async fn assert_problem(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    response.json().await.unwrap()
}
