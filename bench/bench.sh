#!/usr/bin/env bash
# make bench: builds in release mode, runs the native stack, and writes
# bench/report.md and bench/results.json. BENCH_MODE=smoke (make test) runs
# every step briefly on the debug build to prove the harness works; it judges
# no timings. BENCH_MODE=flood runs only the order flood (compare settings such as
# KAFKA_FETCH_MAX_BYTES=262144 side by side) and writes flood.json outside the tree;
# BENCH_MODE=hop runs only the gateway's hop and its profile, and writes hop.json there
# too. BENCH_BIN_DIR runs prebuilt binaries instead (say, an earlier
# commit's, for a before/after comparison) and BENCH_OUT writes elsewhere.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/infra/scripts/common.sh"

MODE="${BENCH_MODE:-full}"
PROFILE=release
[ "$MODE" = smoke ] && PROFILE=debug
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/rust-event-platform/bench-venv"

if ! command -v wrk >/dev/null; then
  say "Installing wrk (Debian)"
  apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
fi
# nginx is the hop's reference: the same calls through a plain reverse proxy.
if ! command -v nginx >/dev/null; then
  say "Installing nginx (Debian), the gateway hop's reference proxy"
  "$ROOT/infra/scripts/apt-install.sh" nginx-light >/dev/null || say "nginx is not installable here: the hop goes without its reference"
fi
# perf samples the gateway under load; without it the report leaves its profile out.
if [ "$MODE" != smoke ] && ! command -v perf >/dev/null; then
  say "Installing perf (Debian)"
  apt-get install -y -qq linux-perf >/dev/null 2>&1 || say "perf is not installable here: the report goes without the gateway's profile"
fi
command -v pgbench >/dev/null || die "pgbench is missing (apt-get install postgresql-contrib or postgresql-client)"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import confluent_kafka' 2>/dev/null; then
  say "Preparing the bench's Python environment in $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "confluent-kafka==2.12.1"
fi

"$ROOT/infra/scripts/broker.sh" start
# A broker with empty storage, so the figures do not depend on what earlier runs left.
BENCH_BROKER_PORT=19094
"$ROOT/infra/scripts/broker.sh" start-fresh broker-bench "$BENCH_BROKER_PORT"
# The broker's own limits are measured on a second empty store: the 50 000 messages that
# measurement writes would otherwise slow the platform's broker for the rest of the run.
LIMITS_BROKER_PORT=19095
"$ROOT/infra/scripts/broker.sh" start-fresh broker-limits "$LIMITS_BROKER_PORT"
trap '"$ROOT/infra/scripts/broker.sh" stop-fresh broker-bench; "$ROOT/infra/scripts/broker.sh" stop-fresh broker-limits' EXIT
BIN_DIR="${BENCH_BIN_DIR:-$ROOT/target/$PROFILE}"
if [ -z "${BENCH_BIN_DIR:-}" ]; then
  say "Building the services ($PROFILE)"
  flags=(); [ "$PROFILE" = release ] && flags=(--release)
  (cd "$ROOT" && cargo build --quiet "${flags[@]}" --bins)
fi

# The bench runs its own instances on the standard ports.
if "$ROOT/infra/scripts/services.sh" status | grep running >/dev/null; then  # no -q: an early exit would fail the pipe
  say "Stopping the running services for the bench (start them again with make up)"
  "$ROOT/infra/scripts/services.sh" stop
fi

out="${BENCH_OUT:-$ROOT/bench}"
[ "$MODE" = smoke ] && out="$STATE_DIR/bench-smoke"
[ "$MODE" = flood ] && out="${BENCH_OUT:-$STATE_DIR/bench-flood}"
[ "$MODE" = chain ] && out="${BENCH_OUT:-$STATE_DIR/bench-chain}"
[ "$MODE" = hop ] && out="${BENCH_OUT:-$STATE_DIR/bench-hop}"
mkdir -p "$out"
"$VENV/bin/python" "$ROOT/bench/harness.py" --mode "$MODE" --bin-dir "$BIN_DIR" \
  --database-url "$DATABASE_URL" --brokers "$KAFKA_HOST:$BENCH_BROKER_PORT" \
  --limits-brokers "$KAFKA_HOST:$LIMITS_BROKER_PORT" \
  --broker-pid-file "$RUN_DIR/broker-bench.pid" --out "$out"
