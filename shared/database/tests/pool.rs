//! The pool: a connection the server ended while it sat idle is replaced before anyone
//! uses it, though connections are not pinged on every acquire.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use database::{DatabaseSettings, connect_and_migrate};
use platform::configuration::Env;
use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection};

fn server_url() -> String {
    Env::from_process().string("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432")
}

#[tokio::test]
async fn a_connection_ended_while_idle_is_replaced_without_a_failed_query() {
    let mut admin = PgConnection::connect(&format!("{}/postgres", server_url())).await.unwrap();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let name = format!("test_pool_{}_{nanos}", std::process::id());
    sqlx::query(&format!(r#"CREATE DATABASE "{name}""#)).execute(&mut admin).await.unwrap();
    let env = Env::from_pairs([
        ("DATABASE_URL", server_url()),
        ("DATABASE_NAME", name.clone()),
        ("DATABASE_MAX_CONNECTIONS", "1".to_owned()),
    ]);
    let pool =
        connect_and_migrate(&DatabaseSettings::from_env(&env, "unused").unwrap(), &Migrator::DEFAULT).await.unwrap();
    let backend = || sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()").fetch_one(&pool);
    let first = backend().await.unwrap();

    sqlx::query("SELECT pg_terminate_backend($1)").bind(first).execute(&mut admin).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_stat_activity WHERE pid = $1")
        .bind(first)
        .fetch_one(&mut admin)
        .await
        .unwrap()
        > 0
    {
        assert!(Instant::now() < deadline, "the server did not end backend {first}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Idle past the window in which a connection is handed out without a ping.
    tokio::time::sleep(Duration::from_millis(600)).await;

    let second = backend().await.expect("the dead connection was replaced, not used");
    assert_ne!(second, first);
    pool.close().await;
    sqlx::query(&format!(r#"DROP DATABASE "{name}""#)).execute(&mut admin).await.unwrap();
}
