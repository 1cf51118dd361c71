#!/usr/bin/env bash
# Prometheus for the native platform: start | stop | status | url.
# Debian's `prometheus` package (installed once per machine when missing) with the
# project's scrape config, recording rules and alerts (infra/prometheus/prometheus.yml,
# rules/*.yml); its data lives in $STATE_DIR/prometheus, never in the work tree.
# If something already answers on the port (the compose stack's Prometheus), it is
# used as it is.
#
#   PROMETHEUS_ADDR       where it listens (127.0.0.1:9090)
#   PROMETHEUS_RETENTION  how long it keeps samples (7d)
set -euo pipefail
source "$(dirname "$0")/common.sh"

ADDR="${PROMETHEUS_ADDR:-127.0.0.1:9090}"
HOST="${ADDR%:*}" PORT="${ADDR##*:}"
URL="http://$ADDR"
DATA_DIR="$STATE_DIR/prometheus"
PID_FILE="$RUN_DIR/prometheus.pid"

running() { [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; }
ready() { curl -fs --max-time 2 "$URL/-/ready" >/dev/null; }

start() {
  if running; then
    say "Prometheus already running (pid $(cat "$PID_FILE")) at $URL"
    return
  fi
  if port_open "$HOST" "$PORT"; then
    ready || die "port $PORT is taken by something that is not Prometheus; stop it or set PROMETHEUS_ADDR"
    say "Prometheus already answers at $URL (not started here); used as it is"
    return
  fi
  "$ROOT/infra/scripts/apt-install.sh" prometheus
  mkdir -p "$DATA_DIR"
  say "Starting Prometheus at $URL (data in $DATA_DIR)"
  # rule_files in prometheus.yml resolve relative to it: the project's rules and alerts load.
  nohup prometheus \
    --config.file="$ROOT/infra/prometheus/prometheus.yml" \
    --storage.tsdb.path="$DATA_DIR" \
    --storage.tsdb.retention.time="${PROMETHEUS_RETENTION:-7d}" \
    --web.listen-address="$ADDR" \
    --log.level=warn </dev/null >>"$LOG_DIR/prometheus.log" 2>&1 &
  echo $! >"$PID_FILE"
  local deadline=$((SECONDS + 60))
  until ready; do
    running || { tail -n 20 "$LOG_DIR/prometheus.log" >&2; die "Prometheus exited (log: $LOG_DIR/prometheus.log)"; }
    [ "$SECONDS" -lt "$deadline" ] || die "Prometheus not ready after 60s (log: $LOG_DIR/prometheus.log)"
    sleep 0.2
  done
}

stop() {
  if running; then
    local pid; pid=$(cat "$PID_FILE")
    say "Stopping Prometheus (pid $pid)"
    kill -TERM "$pid"
    wait_for "Prometheus to stop" 30 bash -c "! kill -0 $pid 2>/dev/null"
  fi
  rm -f "$PID_FILE"
}

status() {
  if running; then
    echo "prometheus: up at $URL (pid $(cat "$PID_FILE"))"
  elif ready; then
    echo "prometheus: up at $URL (not started by make up)"
  else
    echo "prometheus: down"
    return 1
  fi
}

case "${1:-status}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  url) echo "$URL" ;;
  *) die "usage: $0 start|stop|status|url" ;;
esac
