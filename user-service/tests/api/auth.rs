//! Who may call what: the service key, principals, sign-up and credential checks.

use platform::auth::Role;
use testkit::{trusted_client, trusted_client_for};

use crate::helpers::{assert_problem, spawn_app, valid_user};

#[tokio::test(flavor = "multi_thread")]
async fn without_the_service_key_nothing_but_probes_answers() {
    let app = spawn_app().await;
    let outsider = app.server.untrusted_client();
    assert_problem(outsider.get(app.url("/users")).send().await.unwrap(), 401).await;
    let wrong_key = outsider.get(app.url("/users")).header("x-api-key", "guess").send().await.unwrap();
    assert_problem(wrong_key, 401).await;
    assert_problem(
        outsider.post(app.url("/auth/register")).json(&valid_user("x@example.com")).send().await.unwrap(),
        401,
    )
    .await;
    assert_eq!(outsider.get(app.url("/health/live")).send().await.unwrap().status(), 200);
    assert_eq!(outsider.get(app.url("/metrics")).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_makes_a_user_and_verification_accepts_only_the_right_password() {
    let app = spawn_app().await;
    let gateway = trusted_client(Role::User);
    let mut body = valid_user("sam@example.com");
    body["role"] = "admin".into(); // not accepted on sign-up
    assert_problem(gateway.post(app.url("/auth/register")).json(&body).send().await.unwrap(), 400).await;
    let created = gateway.post(app.url("/auth/register")).json(&valid_user("sam@example.com")).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let user: serde_json::Value = created.json().await.unwrap();
    assert_eq!(user["role"], "user");

    let verify = |email: &'static str, password: &'static str| {
        gateway.post(app.url("/auth/verify")).json(&serde_json::json!({"email": email, "password": password})).send()
    };
    let ok = verify("SAM@example.com", "SecurePass123!").await.unwrap();
    assert_eq!(ok.status(), 200);
    let verified: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(verified["id"], user["id"]);
    assert!(verified.get("passwordHash").is_none() && verified.get("password_hash").is_none());
    let wrong_password = assert_problem(verify("sam@example.com", "WrongPass123!").await.unwrap(), 401).await;
    let unknown_email = assert_problem(verify("nobody@example.com", "SecurePass123!").await.unwrap(), 401).await;
    assert_eq!(wrong_password, unknown_email, "the same answer whichever part was wrong");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_admin_from_settings_can_sign_in() {
    let app = spawn_app().await;
    let verify = trusted_client(Role::User)
        .post(app.url("/auth/verify"))
        .json(&serde_json::json!({"email": "admin@example.com", "password": "Admin123!ChangeMe"}))
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), 200);
    assert_eq!(verify.json::<serde_json::Value>().await.unwrap()["role"], "admin");
}

#[tokio::test(flavor = "multi_thread")]
async fn users_see_and_change_only_themselves_and_never_their_role() {
    let app = spawn_app().await;
    let admin = app.client();
    let created: serde_json::Value =
        admin.post(app.url("/users")).json(&valid_user("own@example.com")).send().await.unwrap().json().await.unwrap();
    let id: uuid::Uuid = created["id"].as_str().unwrap().parse().unwrap();
    let me = trusted_client_for(id, Role::User);
    let someone_else = trusted_client(Role::User);

    assert_eq!(me.get(app.url(&format!("/users/{id}"))).send().await.unwrap().status(), 200);
    assert_problem(someone_else.get(app.url(&format!("/users/{id}"))).send().await.unwrap(), 403).await;
    assert_problem(me.get(app.url("/users")).send().await.unwrap(), 403).await;
    assert_problem(me.post(app.url("/users")).json(&valid_user("new@example.com")).send().await.unwrap(), 403).await;
    assert_problem(me.delete(app.url(&format!("/users/{id}"))).send().await.unwrap(), 403).await;

    let renamed =
        me.put(app.url(&format!("/users/{id}"))).json(&serde_json::json!({"name": "Own Name"})).send().await.unwrap();
    assert_eq!(renamed.status(), 200);
    assert_eq!(renamed.json::<serde_json::Value>().await.unwrap()["name"], "Own Name");
    let promotion =
        me.put(app.url(&format!("/users/{id}"))).json(&serde_json::json!({"role": "admin"})).send().await.unwrap();
    assert_problem(promotion, 403).await;
    let invalid = me
        .put(app.url(&format!("/users/{id}")))
        .json(&serde_json::json!({"email": "nope", "password": "weak"}))
        .send()
        .await
        .unwrap();
    assert_eq!(assert_problem(invalid, 400).await["errors"].as_array().unwrap().len(), 2);

    let promoted =
        admin.put(app.url(&format!("/users/{id}"))).json(&serde_json::json!({"role": "admin"})).send().await.unwrap();
    assert_eq!(promoted.json::<serde_json::Value>().await.unwrap()["role"], "admin");
    assert_eq!(admin.delete(app.url(&format!("/users/{id}"))).send().await.unwrap().status(), 204);
    assert_problem(admin.get(app.url(&format!("/users/{id}"))).send().await.unwrap(), 404).await;
    assert_problem(admin.delete(app.url(&format!("/users/{id}"))).send().await.unwrap(), 404).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn changing_to_a_taken_email_is_a_conflict() {
    let app = spawn_app().await;
    let admin = app.client();
    let first: serde_json::Value = admin
        .post(app.url("/users"))
        .json(&valid_user("first@example.com"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let change = admin
        .put(app.url(&format!("/users/{}", first["id"].as_str().unwrap())))
        .json(&serde_json::json!({"email": "ADMIN@example.com"}))
        .send()
        .await
        .unwrap();
    assert_problem(change, 409).await;
}
