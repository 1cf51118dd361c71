#!/usr/bin/env bash
# The platform's Kafka principals and what each may do. Signed in as the Kafka admin (a
# super user), it sets every principal's SCRAM credentials (SCRAM-SHA-512 and -256, so
# a client may use either) and adds the ACLs of the table below. Nothing else uses the
# admin: no service or tool has its password.
#
# The one copy of the table, run by two callers, both in the apache/kafka image:
#   docker compose   the one-shot kafka-init service of infra/docker-compose.yml
#   Kubernetes       the kafka-acls Job of this component (job.yaml)
# infra/tests/deploy/consistency.py reads the table (the `allow` lines) and checks that
# only a topic's owner, and platform-operator (replay), may write to it.
#
# Idempotent: it may run at every start. It only adds: an ACL taken out of the table
# stays on the cluster until removed by hand (kafka-acls.sh --remove ...). It creates no
# topic: each service's topic keeper creates its topics and their .dlq at start, with
# the partitions and retention it is configured with (the Create ACLs below), and
# recreates any that goes missing.
#
# Environment:
#   KAFKA_BROKERS                      bootstrap servers of a listener the admin may use
#   KAFKA_SECURITY_PROTOCOL            SASL_PLAINTEXT (default) or SASL_SSL
#   KAFKA_ADMIN_USERNAME               admin (default); listed in the brokers' super.users
#   KAFKA_ADMIN_SASL_MECHANISM         SCRAM-SHA-512 (default), SCRAM-SHA-256 or PLAIN
#   KAFKA_PASSWORD_ADMIN               the admin's password
#   KAFKA_ADMIN_CLIENT_PROPERTIES      optional: more client properties, one a line
#                                      (ssl.truststore.location=... for a private CA)
#   KAFKA_PASSWORD_<PRINCIPAL>         one password per principal below, e.g.
#                                      KAFKA_PASSWORD_USER_SERVICE for user-service;
#                                      KAFKA_PASSWORD_KAFKA_UI is optional (compose's Kafka UI)
# Passwords: letters, digits and . _ ~ - only (they go into JAAS and kafka-configs
# syntax unquoted), at least 16 characters; e.g. openssl rand -hex 24.
set -euo pipefail

BIN="${KAFKA_BIN:-/opt/kafka/bin}"
: "${KAFKA_BROKERS:?KAFKA_BROKERS: the bootstrap servers}"
PROTOCOL="${KAFKA_SECURITY_PROTOCOL:-SASL_PLAINTEXT}"
ADMIN="${KAFKA_ADMIN_USERNAME:-admin}"
MECHANISM="${KAFKA_ADMIN_SASL_MECHANISM:-SCRAM-SHA-512}"

die() { echo "kafka-acls: $*" >&2; exit 1; }

# password_of <principal>: the value of KAFKA_PASSWORD_<PRINCIPAL>, checked.
password_of() {
  local variable="KAFKA_PASSWORD_${1//-/_}"
  variable=${variable^^}
  local value="${!variable:-}"
  [ -n "$value" ] || die "$variable is not set ($1's password)"
  [[ "$value" =~ ^[A-Za-z0-9._~-]{16,}$ ]] ||
    die "$variable: use at least 16 letters, digits or . _ ~ - (e.g. openssl rand -hex 24)"
  printf '%s' "$value"
}

case "$PROTOCOL" in SASL_PLAINTEXT | SASL_SSL) ;; *) die "KAFKA_SECURITY_PROTOCOL=$PROTOCOL: expected SASL_PLAINTEXT or SASL_SSL" ;; esac
case "$MECHANISM" in
  PLAIN) module=org.apache.kafka.common.security.plain.PlainLoginModule ;;
  SCRAM-SHA-512 | SCRAM-SHA-256) module=org.apache.kafka.common.security.scram.ScramLoginModule ;;
  *) die "KAFKA_ADMIN_SASL_MECHANISM=$MECHANISM: expected SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN" ;;
esac

# The admin's client configuration, readable by this user only, removed on exit.
admin_password=$(password_of admin)
umask 077
ADMIN_CONFIG="$(mktemp)"
trap 'rm -f "$ADMIN_CONFIG"' EXIT
{
  echo "security.protocol=$PROTOCOL"
  echo "sasl.mechanism=$MECHANISM"
  echo "sasl.jaas.config=$module required username=\"$ADMIN\" password=\"$admin_password\";"
  printf '%s\n' "${KAFKA_ADMIN_CLIENT_PROPERTIES:-}"
} >"$ADMIN_CONFIG"
connection=(--bootstrap-server "$KAFKA_BROKERS" --command-config "$ADMIN_CONFIG")

# scram_user <principal>: sets (or resets) its SCRAM credentials to its password.
scram_user() {
  local password
  password=$(password_of "$1")
  "$BIN/kafka-configs.sh" "${connection[@]}" --alter --entity-type users --entity-name "$1" \
    --add-config "SCRAM-SHA-512=[password=$password],SCRAM-SHA-256=[password=$password]" >/dev/null
  echo "kafka-acls: SCRAM credentials of $1 set"
}

# allow <principal> <Operation,...> <topic|group|cluster> [name...]: one literal ALLOW
# ACL per operation and name, from any host.
allow() {
  local principal=$1 operations=$2 kind=$3 operation name
  shift 3
  local args=(--add --allow-principal "User:$principal")
  for operation in ${operations//,/ }; do args+=(--operation "$operation"); done
  case "$kind" in
    topic) for name in "$@"; do args+=(--topic "$name"); done ;;
    group) for name in "$@"; do args+=(--group "$name"); done ;;
    cluster) args+=(--cluster) ;;
    *) die "allow: unknown resource type $kind" ;;
  esac
  "$BIN/kafka-acls.sh" "${connection[@]}" "${args[@]}" >/dev/null
  echo "kafka-acls: $principal may $operations on $kind${*:+ $*}"
}

scram_user user-service
scram_user order-service
scram_user payment-service
scram_user platform-operator
[ -z "${KAFKA_PASSWORD_KAFKA_UI:-}" ] || scram_user kafka-ui

# ------------------------------------------------------------------ the ACL table
#
# Topic ownership (base names; this deployment uses no KAFKA_TOPIC_PREFIX). The owner is
# the only service that writes a topic; each consumer writes the dead-letter topic
# <topic>.dlq of what it consumes:
#
#   topic               owner (writes it)   consumer = writer of <topic>.dlq   its group
#   user.created        user-service        order-service                      order-service-group
#   user.deleted        user-service        order-service                      order-service-group
#   order.created       order-service       payment-service                    payment-service-group
#   order.cancelled     order-service       payment-service                    payment-service-group
#   payment.completed   payment-service     order-service                      order-service-group
#   payment.refunded    payment-service     order-service                      order-service-group
#
# platform-operator (the operators' tools) reads every topic and .dlq (platform-events,
# group platform-events; platform-dlq, groups platform-dlq-list and platform-dlq-replay)
# and writes the base topics, to replay dead letters to their original topic.
#
# Topic keepers: each service creates and repairs the topics it needs (user-service its
# own; order-service all six, since it consumes or publishes each; payment-service the
# order and payment topics), with their .dlq: Create, Describe, DescribeConfigs and
# AlterConfigs on them. A keeper also commits offset 0 of every partition it keeps in a
# consumer group of its own, <client id>.topic-keeper, the client id being the service's
# name unless KAFKA_CLIENT_ID says otherwise (shared/eventing/src/kafka/loss.rs: how it
# notices a topic that lost its log), and an offset commit needs Read on the group and
# on the topic: hence Read on every topic a keeper keeps, user-service's own topics
# included, although user-service consumes none.
#
# Literal resource names only: every name is known, and a prefixed ACL (order.*) would
# also cover topics added later, which should get an owner in this table first.
#
# The producers are idempotent (enable.idempotence, acks=all). Since Kafka 3.0 Write on
# a topic implies IdempotentWrite on the cluster (KIP-679), so no principal is given
# cluster rights for it. No producer is transactional: no TransactionalId ACLs.

allow user-service Write topic user.created user.deleted
allow user-service Create,Describe,DescribeConfigs,AlterConfigs,Read topic \
  user.created user.deleted user.created.dlq user.deleted.dlq
allow user-service Read group user-service.topic-keeper

allow order-service Write topic order.created order.cancelled
allow order-service Read topic user.created user.deleted payment.completed payment.refunded
allow order-service Write topic user.created.dlq user.deleted.dlq payment.completed.dlq payment.refunded.dlq
allow order-service Create,Describe,DescribeConfigs,AlterConfigs,Read topic \
  user.created user.deleted order.created order.cancelled payment.completed payment.refunded \
  user.created.dlq user.deleted.dlq order.created.dlq order.cancelled.dlq payment.completed.dlq payment.refunded.dlq
allow order-service Read group order-service-group order-service.topic-keeper

allow payment-service Write topic payment.completed payment.refunded
allow payment-service Read topic order.created order.cancelled
allow payment-service Write topic order.created.dlq order.cancelled.dlq
allow payment-service Create,Describe,DescribeConfigs,AlterConfigs,Read topic \
  order.created order.cancelled payment.completed payment.refunded \
  order.created.dlq order.cancelled.dlq payment.completed.dlq payment.refunded.dlq
allow payment-service Read group payment-service-group payment-service.topic-keeper

allow platform-operator Read,Describe topic \
  user.created user.deleted order.created order.cancelled payment.completed payment.refunded \
  user.created.dlq user.deleted.dlq order.created.dlq order.cancelled.dlq payment.completed.dlq payment.refunded.dlq
allow platform-operator Write topic \
  user.created user.deleted order.created order.cancelled payment.completed payment.refunded
allow platform-operator Read group platform-events platform-dlq-list platform-dlq-replay

# kafka-ui: read-only (compose's Kafka UI, which also runs in read-only mode). Besides
# the topics and groups it shows, Describe and DescribeConfigs on the cluster: its
# brokers and log-dirs pages (broker configs, DescribeLogDirs) need them. Cluster
# Describe also lets it list ACLs (not passwords).
if [ -n "${KAFKA_PASSWORD_KAFKA_UI:-}" ]; then
  allow kafka-ui Read,Describe,DescribeConfigs topic \
    user.created user.deleted order.created order.cancelled payment.completed payment.refunded \
    user.created.dlq user.deleted.dlq order.created.dlq order.cancelled.dlq payment.completed.dlq payment.refunded.dlq
  allow kafka-ui Describe group \
    order-service-group payment-service-group platform-events platform-dlq-list platform-dlq-replay \
    user-service.topic-keeper order-service.topic-keeper payment-service.topic-keeper
  allow kafka-ui Describe,DescribeConfigs cluster
fi

echo "kafka-acls: done"
