#!/usr/bin/env bash
# The four services as native processes: start | stop | status | logs.
# `start` builds them, starts the ones not running, and waits until each is ready.
set -euo pipefail
source "$(dirname "$0")/common.sh"

PROFILE="${PROFILE:-debug}"
BIN_DIR="$ROOT/target/$PROFILE"

running() { [ -f "$RUN_DIR/$1.pid" ] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }
ready() { curl -fsS "http://127.0.0.1:$(probe_port "$1")/health/ready" >/dev/null; }

start() {
  local flags=()
  [ "$PROFILE" = release ] && flags=(--release)
  say "Building the services ($PROFILE)"
  (cd "$ROOT" && cargo build --quiet "${flags[@]}" --bins)
  for service in "${SERVICES[@]}"; do
    if running "$service"; then
      say "$service already running (pid $(cat "$RUN_DIR/$service.pid"))"
      continue
    fi
    port_open 127.0.0.1 "$(service_port "$service")" &&
      die "port $(service_port "$service") is taken by another process; stop it or change PORT"
    say "Starting $service on port $(service_port "$service")"
    # Demo defaults: payment delay and failure rate as in the seed, overridable from the caller's environment.
    # A stable group instance id (static membership), as compose and Kubernetes give: a
    # service restarted after a crash takes its partitions back at once, without waiting
    # for the dead member's session to time out.
    # Under supervise.sh, which starts a crashed service again (a stop is passed on).
    # Each service its own database (with-platform.sh points them at a test platform's).
    # Each service signs in to the broker as its own principal; the gateway speaks no Kafka
    # and gets no credentials (not even the operator's, which the scripts hold).
    local database=() kafka=(KAFKA_SASL_USERNAME="$service" KAFKA_SASL_PASSWORD="$(kafka_password "$service")")
    case "$service" in
      user-service) database=(DATABASE_NAME="$USER_DATABASE_NAME") ;;
      order-service) database=(DATABASE_NAME="$ORDER_DATABASE_NAME") ;;
      payment-service) database=(DATABASE_NAME="$PAYMENT_DATABASE_NAME") ;;
      api-gateway) kafka=(-u KAFKA_SASL_USERNAME -u KAFKA_SASL_PASSWORD) ;;
    esac
    nohup env "${kafka[@]}" RUST_LOG="${RUST_LOG:-info}" KAFKA_BROKERS="$KAFKA_HOST:$KAFKA_PORT" "${database[@]}" \
      KAFKA_GROUP_INSTANCE_ID="${KAFKA_GROUP_INSTANCE_ID:-$(hostname)-$service}" \
      "$ROOT/infra/scripts/supervise.sh" "$service" "$BIN_DIR/$service" >>"$LOG_DIR/$service.log" 2>&1 &
    echo $! >"$RUN_DIR/$service.pid"
  done
  for service in "${SERVICES[@]}"; do
    wait_for "$service to be ready (see $LOG_DIR/$service.log)" 60 ready "$service"
  done
  say "All services ready. Gateway: http://127.0.0.1:3005  Logs: make logs"
}

stop() {
  for service in "${SERVICES[@]}"; do
    if running "$service"; then
      local pid; pid=$(cat "$RUN_DIR/$service.pid")
      say "Stopping $service (pid $pid)"
      kill -TERM "$pid"
      wait_for "$service to stop" 30 bash -c "! kill -0 $pid 2>/dev/null"
    fi
    rm -f "$RUN_DIR/$service.pid"
  done
}

status() {
  for service in "${SERVICES[@]}"; do
    if running "$service"; then
      printf '%-16s running  ready=%s\n' "$service" "$(ready "$service" && echo yes || echo no)"
    else
      printf '%-16s stopped\n' "$service"
    fi
  done
}

logs() {
  cd "$LOG_DIR"
  exec tail -n 20 -F "${SERVICES[@]/%/.log}"
}

case "${1:-status}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  logs) logs ;;
  *) die "usage: $0 start|stop|status|logs" ;;
esac
