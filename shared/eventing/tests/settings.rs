//! Settings read from the environment: refused at start when a value is out of range,
//! and never showing secrets.

use eventing::configuration::{DatabaseSettings, KafkaSettings};
use platform::configuration::Env;

#[test]
fn the_database_url_never_shows_in_debug_output() {
    let env = Env::from_pairs([("DATABASE_URL", "postgres://u:hunter2@db:5432")]);
    let settings = DatabaseSettings::from_env(&env, "userdb").unwrap();
    assert!(!format!("{settings:?}").contains("hunter2"));
}

#[test]
fn topics_and_groups_carry_the_prefix() {
    let env = Env::from_pairs([("KAFKA_TOPIC_PREFIX", "t1.")]);
    let kafka = KafkaSettings::from_env(&env, "svc").unwrap();
    assert_eq!(kafka.topic("user.created"), "t1.user.created");
    assert_eq!(kafka.group("order-service-group"), "t1.order-service-group");
}

#[test]
fn zero_partitions_are_refused() {
    let env = Env::from_pairs([("KAFKA_TOPIC_PARTITIONS", "0")]);
    assert_eq!(KafkaSettings::from_env(&env, "svc").unwrap_err().variable, "KAFKA_TOPIC_PARTITIONS");
}

#[test]
fn a_fetch_size_librdkafka_would_refuse_is_refused_at_start() {
    for refused in ["999", "100000001", "0", "-1"] {
        let env = Env::from_pairs([("KAFKA_FETCH_MAX_BYTES", refused)]);
        let error = KafkaSettings::from_env(&env, "svc").unwrap_err();
        assert_eq!(error.variable, "KAFKA_FETCH_MAX_BYTES", "{refused}");
    }
    let env = Env::from_pairs([("KAFKA_FETCH_MAX_BYTES", "65536")]);
    assert_eq!(KafkaSettings::from_env(&env, "svc").unwrap().fetch_max_bytes, 65536);
}
