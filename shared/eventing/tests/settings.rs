//! Settings read from the environment: refused at start when a value is out of range,
//! and never showing secrets.

use eventing::configuration::{KafkaSecurity, KafkaSettings};
use platform::configuration::Env;

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

#[test]
fn credentials_come_in_pairs_and_never_show() {
    let env = Env::from_pairs([("KAFKA_SASL_USERNAME", "order-service"), ("KAFKA_SASL_PASSWORD", "hunter2")]);
    let kafka = KafkaSettings::from_env(&env, "svc").unwrap();
    assert!(
        matches!(&kafka.security, KafkaSecurity::Sasl { protocol: "SASL_PLAINTEXT", mechanism: "SCRAM-SHA-512", username, .. } if username == "order-service")
    );
    assert!(!format!("{kafka:?}").contains("hunter2"));
    let config = eventing::kafka::client::base_config(&kafka);
    assert_eq!(config.get("sasl.username"), Some("order-service"));
    assert!(!format!("{config:?}").contains("hunter2"), "librdkafka's configuration hides the password too");

    let refused = [
        (vec![("KAFKA_SASL_USERNAME", "order-service")], "KAFKA_SASL_PASSWORD"),
        (vec![("KAFKA_SASL_PASSWORD", "hunter2")], "KAFKA_SASL_USERNAME"),
        (vec![("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")], "KAFKA_SASL_USERNAME"),
        (
            vec![("KAFKA_SASL_USERNAME", "u"), ("KAFKA_SASL_PASSWORD", "p"), ("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")],
            "KAFKA_SECURITY_PROTOCOL",
        ),
        (
            vec![("KAFKA_SASL_USERNAME", "u"), ("KAFKA_SASL_PASSWORD", "p"), ("KAFKA_SASL_MECHANISM", "PLAIN")],
            "KAFKA_SASL_MECHANISM",
        ),
        (vec![("KAFKA_SECURITY_PROTOCOL", "SSL")], "KAFKA_SECURITY_PROTOCOL"),
    ];
    for (pairs, variable) in refused {
        let error = KafkaSettings::from_env(&Env::from_pairs(pairs.clone()), "svc").unwrap_err();
        assert_eq!(error.variable, variable, "{pairs:?}");
    }
    let plain = KafkaSettings::from_env(&Env::default(), "svc").unwrap();
    assert!(matches!(plain.security, KafkaSecurity::Plaintext));
    assert_eq!(eventing::kafka::client::base_config(&plain).get("security.protocol"), None);
}
