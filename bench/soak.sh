#!/usr/bin/env bash
# make soak: SOAK_MINUTES (10) of steady mixed load (sign-ups, orders, cancellations,
# reads) through the gateway of the release build, then the "## Soak" section of
# bench/report.md (the rest of the report is kept). A benchmark, not part of `make test`.
#
# It disturbs nobody and nobody disturbs it: its own services on ports 4001-4003 and 4005,
# its own databases (dropped at the end, by bench/soak.py), and its own empty nisshi on
# $SOAK_BROKER_PORT (19096) with storage maintenance every $SOAK_MAINTENANCE_INTERVAL
# (10s), stopped and deleted at the end. The services keep events for
# $SOAK_RETENTION_MS (20000), so retention trims the broker's store from the first minute
# and minute 1, the latency budget's baseline, is already the bounded store's steady state.
# Rates: SOAK_SIGNUPS_PER_S, SOAK_ORDERS_PER_S, SOAK_READS_PER_S, SOAK_CANCEL_EVERY
# (defaults in bench/soak.py). SOAK_BIN_DIR runs prebuilt binaries instead of building.
# Raw samples go to the state directory, outside the work tree.
#
# The whole run holds /tmp/cargo-build.lock (one cargo build at a time on this machine):
# the release build, and then the load, which a concurrent build would distort. Run
# under `flock /tmp/cargo-build.lock` already, it uses the lock it inherited. Whatever it
# starts gets none of its open files (broker.sh closes them, Python's Popen too), so the
# lock is free again when it ends.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/infra/scripts/common.sh"

BUILD_LOCK=/tmp/cargo-build.lock
inherited_lock=""
for fd in /proc/$$/fd/*; do
  [ "$(readlink "$fd" 2>/dev/null)" = "$BUILD_LOCK" ] && inherited_lock=${fd##*/}
done
if [ -z "$inherited_lock" ]; then
  exec 9>>"$BUILD_LOCK"
  if ! flock -n 9; then
    say "Waiting for $BUILD_LOCK (a cargo build or a benchmark is running)"
    flock 9
  fi
fi

SOAK_MINUTES="${SOAK_MINUTES:-10}"
SOAK_BROKER_PORT="${SOAK_BROKER_PORT:-19096}"
SOAK_MAINTENANCE_INTERVAL="${SOAK_MAINTENANCE_INTERVAL:-10s}"
SOAK_RETENTION_MS="${SOAK_RETENTION_MS:-20000}"
[[ "$SOAK_MINUTES" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "SOAK_MINUTES=$SOAK_MINUTES: expected a number of minutes"
[ "$SOAK_BROKER_PORT" != "$KAFKA_PORT" ] || die "SOAK_BROKER_PORT must not be the platform's broker port ($KAFKA_PORT)"

BIN_DIR="${SOAK_BIN_DIR:-$ROOT/target/release}"
BUILD=release; [ -z "${SOAK_BIN_DIR:-}" ] || BUILD="prebuilt ($SOAK_BIN_DIR)"
if [ -z "${SOAK_BIN_DIR:-}" ]; then
  say "Building the services (release)"
  (cd "$ROOT" && cargo build --quiet --release --bins)
fi

command -v psql >/dev/null || die "psql not found; install PostgreSQL's client (apt-get install postgresql-client)"
wait_for "PostgreSQL at $DATABASE_URL" 30 psql "$DATABASE_URL/postgres" -Atqc 'SELECT 1'
BROKER_MAINTENANCE_INTERVAL="$SOAK_MAINTENANCE_INTERVAL" "$ROOT/infra/scripts/broker.sh" start-fresh broker-soak "$SOAK_BROKER_PORT"
trap '"$ROOT/infra/scripts/broker.sh" stop-fresh broker-soak' EXIT

args=()
[ -z "${SOAK_SIGNUPS_PER_S:-}" ] || args+=(--signups-per-s "$SOAK_SIGNUPS_PER_S")
[ -z "${SOAK_ORDERS_PER_S:-}" ] || args+=(--orders-per-s "$SOAK_ORDERS_PER_S")
[ -z "${SOAK_READS_PER_S:-}" ] || args+=(--reads-per-s "$SOAK_READS_PER_S")
[ -z "${SOAK_CANCEL_EVERY:-}" ] || args+=(--cancel-every "$SOAK_CANCEL_EVERY")
python3 "$ROOT/bench/soak.py" --bin-dir "$BIN_DIR" --database-url "$DATABASE_URL" \
  --brokers "$KAFKA_HOST:$SOAK_BROKER_PORT" --broker-pid-file "$RUN_DIR/broker-soak.pid" \
  --store-dir "$STATE_DIR/broker-soak" --maintenance-interval "$SOAK_MAINTENANCE_INTERVAL" \
  --minutes "$SOAK_MINUTES" --retention-ms "$SOAK_RETENTION_MS" --build "$BUILD" \
  --report "${SOAK_REPORT:-$ROOT/bench/report.md}" --raw "$STATE_DIR/soak/results-$(date +%Y%m%d%H%M%S).json" \
  "${args[@]}"
