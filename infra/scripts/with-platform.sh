#!/usr/bin/env bash
# with-platform.sh <command...>: runs a command (a test) against a platform of its own:
# the four services on their usual ports, on a broker with an empty store of its own
# (port $TEST_KAFKA_PORT) and on databases of their own, created empty and dropped
# afterwards. What the machine's platform holds (a backlog, a stopped partition, old
# data) cannot change the outcome, and the test leaves nothing in it. Services of the
# machine's platform that are running are stopped first (`make up` starts them again);
# Prometheus and the trace viewer, which only watch, are shared. PLATFORM_SERVICES=0
# prepares the broker and the databases only, for a command that runs the services itself.
set -euo pipefail
source "$(dirname "$0")/common.sh"

TEST_KAFKA_PORT="${TEST_KAFKA_PORT:-19096}"
BROKER_NAME=broker-platform-test
export USER_DATABASE_NAME=test_platform_userdb ORDER_DATABASE_NAME=test_platform_orderdb \
  PAYMENT_DATABASE_NAME=test_platform_paymentdb

if grep -q running <<<"$("$ROOT/infra/scripts/services.sh" status)"; then
  say "Stopping the running services: the test gets a platform of its own (start yours again with \`make up\`)"
  "$ROOT/infra/scripts/services.sh" stop
fi
drop_databases() {
  local db
  for db in "$USER_DATABASE_NAME" "$ORDER_DATABASE_NAME" "$PAYMENT_DATABASE_NAME"; do
    psql "$DATABASE_URL/postgres" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
  done
}
cleanup() {
  "$ROOT/infra/scripts/services.sh" stop || true
  "$ROOT/infra/scripts/broker.sh" stop-fresh "$BROKER_NAME" || true
  drop_databases || true
}
trap cleanup EXIT
drop_databases
"$ROOT/infra/scripts/databases.sh"
"$ROOT/infra/scripts/broker.sh" start-fresh "$BROKER_NAME" "$TEST_KAFKA_PORT"
export KAFKA_PORT="$TEST_KAFKA_PORT" KAFKA_BROKERS="$KAFKA_HOST:$TEST_KAFKA_PORT"

# Where this run's lines start in each log, for the digest printed on failure.
declare -A log_start
shopt -s nullglob
for log in "$LOG_DIR"/*.log; do log_start[$log]=$(wc -l <"$log"); done
[ "${PLATFORM_SERVICES:-1}" = 0 ] || "$ROOT/infra/scripts/services.sh" start
status=0
"$@" || status=$?
if [ "$status" != 0 ]; then
  # A failure in CI leaves nothing else behind: what the services and the broker said
  # during this run (warnings, errors, group and store events) goes into its output.
  for log in "$LOG_DIR"/*.log; do
    lines=$(tail -n +"$(( ${log_start[$log]:-0} + 1 ))" "$log" |
      grep -E '"level":"(WARN|ERROR)"|partitions (assigned|revoked)|generation|consumer (subscribed|stopped)|panick|ERROR|WARN' |
      grep -v 'no OTLP collector' | tail -n 40 | cut -c1-400 || true)
    if [ -n "$lines" ]; then
      printf '\n--- %s (this run, last 40 notable lines)\n%s\n' "$(basename "$log")" "$lines" >&2
    fi
  done
fi
exit "$status"
