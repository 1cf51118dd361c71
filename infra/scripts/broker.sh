#!/usr/bin/env bash
# The local Kafka-protocol broker (tansu, sqlite storage): start | stop | status.
# If something already answers on the Kafka port, it is used as it is.
set -euo pipefail
source "$(dirname "$0")/common.sh"

TANSU_BIN="${TANSU_INSTALL_ROOT:-/usr/local}/bin/tansu"
DATA_DIR="$STATE_DIR/tansu"
PID_FILE="$RUN_DIR/tansu.pid"

start() {
  if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
    say "Kafka broker already answers on $KAFKA_HOST:$KAFKA_PORT"
    return
  fi
  "$ROOT/infra/scripts/install-broker.sh"
  mkdir -p "$DATA_DIR"
  say "Starting tansu on $KAFKA_HOST:$KAFKA_PORT (data in $DATA_DIR)"
  # tansu resolves sqlite:// paths against its working directory, so it runs from its data folder.
  # `cd` on its own line: then `$!` is tansu itself, not a subshell around it.
  (cd "$DATA_DIR" || exit 1
   nohup "$TANSU_BIN" broker \
      --listener-url "tcp://$KAFKA_HOST:$KAFKA_PORT" \
      --advertised-listener-url "tcp://$KAFKA_HOST:$KAFKA_PORT" \
      --storage-engine "sqlite://tansu.db" >"$LOG_DIR/tansu.log" 2>&1 &
   echo $! >"$PID_FILE")
  wait_for "the broker on $KAFKA_HOST:$KAFKA_PORT" 30 port_open "$KAFKA_HOST" "$KAFKA_PORT"
}

# terminate <pid> <what>: SIGTERM, then SIGKILL after 20 s (a busy tansu may ignore SIGTERM).
terminate() {
  local pid=$1 what=$2
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  say "$what ignored SIGTERM for 20 s; killing it"
  kill -9 "$pid" 2>/dev/null || true
}

stop() {
  if [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    say "Stopping tansu"
    terminate "$(cat "$PID_FILE")" tansu
  fi
  rm -f "$PID_FILE"
}

# A throw-away broker with empty storage (tests, benchmarks): tansu's sqlite engine slows
# down as topics accumulate, so runs that create many topics get a store of their own.
start_fresh() {
  local name=$1 port=$2 dir="$STATE_DIR/$1"
  stop_fresh "$name"
  "$ROOT/infra/scripts/install-broker.sh" >/dev/null
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$dir" || exit 1
   nohup "$TANSU_BIN" broker \
      --listener-url "tcp://$KAFKA_HOST:$port" --advertised-listener-url "tcp://$KAFKA_HOST:$port" \
      --storage-engine "sqlite://tansu.db" >"$LOG_DIR/$name.log" 2>&1 &
   echo $! >"$RUN_DIR/$name.pid")
  wait_for "the $name broker on $KAFKA_HOST:$port" 30 port_open "$KAFKA_HOST" "$port"
}

stop_fresh() {
  local pid_file="$RUN_DIR/$1.pid"
  if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    terminate "$(cat "$pid_file")" "the $1 broker"
  fi
  rm -f "$pid_file"
  rm -rf "${STATE_DIR:?}/$1"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  start-fresh) start_fresh "$2" "$3" ;;
  stop-fresh) stop_fresh "$2" ;;
  status) port_open "$KAFKA_HOST" "$KAFKA_PORT" && echo "broker: up" || { echo "broker: down"; exit 1; } ;;
  *) die "usage: $0 start|stop|status | start-fresh <name> <port> | stop-fresh <name>" ;;
esac
