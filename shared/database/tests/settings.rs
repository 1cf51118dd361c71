//! The database's settings: never showing the password.

use database::DatabaseSettings;
use platform::configuration::Env;

#[test]
fn the_database_url_never_shows_in_debug_output() {
    let env = Env::from_pairs([("DATABASE_URL", "postgres://u:hunter2@db:5432")]);
    let settings = DatabaseSettings::from_env(&env, "userdb").unwrap();
    assert!(!format!("{settings:?}").contains("hunter2"));
}

#[test]
fn an_empty_pool_is_refused_at_start() {
    let env = Env::from_pairs([("DATABASE_MAX_CONNECTIONS", "0")]);
    assert_eq!(DatabaseSettings::from_env(&env, "userdb").unwrap_err().variable, "DATABASE_MAX_CONNECTIONS");
}
