#!/usr/bin/env bash
# The native trace viewer: start | stop | status | url [trace-id].
# Jaeger's UI over an in-memory store that receives the services' OTLP/gRPC export
# (installed once per machine by install-trace-viewer.sh). It keeps the latest
# 2 000 traces in memory: a restart forgets them. If something already receives
# OTLP on the port (the compose stack's Jaeger), it is used as it is.
#
#   TRACE_VIEWER_UI_ADDR    the UI (127.0.0.1:16686, Jaeger's usual port)
#   TRACE_VIEWER_OTLP_ADDR  the OTLP gRPC receiver (127.0.0.1:4317, where the services
#                           export by default: OTEL_EXPORTER_OTLP_ENDPOINT)
set -euo pipefail
source "$(dirname "$0")/common.sh"

UI_ADDR="${TRACE_VIEWER_UI_ADDR:-127.0.0.1:16686}"
OTLP_ADDR="${TRACE_VIEWER_OTLP_ADDR:-127.0.0.1:4317}"
URL="http://$UI_ADDR"
PID_FILE="$RUN_DIR/trace-viewer.pid"

running() { [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; }
ui_ready() { curl -fs --max-time 2 "$URL/api/services" >/dev/null; }

start() {
  if running; then
    say "Trace viewer already running (pid $(cat "$PID_FILE")) at $URL"
    return
  fi
  if port_open "${OTLP_ADDR%:*}" "${OTLP_ADDR##*:}"; then
    say "Something already receives OTLP on $OTLP_ADDR (not started here); used as it is"
    return
  fi
  port_open "${UI_ADDR%:*}" "${UI_ADDR##*:}" &&
    die "port ${UI_ADDR##*:} is taken by another process; stop it or set TRACE_VIEWER_UI_ADDR"
  "$ROOT/infra/scripts/install-trace-viewer.sh" >/dev/null
  local bin; bin=$("$ROOT/infra/scripts/install-trace-viewer.sh" bin)
  say "Starting the trace viewer: Jaeger UI at $URL, OTLP gRPC on $OTLP_ADDR"
  nohup env TRACE_VIEWER_UI_ADDR="$UI_ADDR" TRACE_VIEWER_OTLP_ADDR="$OTLP_ADDR" "$bin" \
    </dev/null >>"$LOG_DIR/trace-viewer.log" 2>&1 &
  echo $! >"$PID_FILE"
  local deadline=$((SECONDS + 30))
  until ui_ready && port_open "${OTLP_ADDR%:*}" "${OTLP_ADDR##*:}"; do
    running || { tail -n 20 "$LOG_DIR/trace-viewer.log" >&2; die "the trace viewer exited (log: $LOG_DIR/trace-viewer.log)"; }
    [ "$SECONDS" -lt "$deadline" ] || die "the trace viewer is not ready after 30s (log: $LOG_DIR/trace-viewer.log)"
    sleep 0.2
  done
}

stop() {
  if running; then
    local pid; pid=$(cat "$PID_FILE")
    say "Stopping the trace viewer (pid $pid)"
    kill -TERM "$pid"
    wait_for "the trace viewer to stop" 30 bash -c "! kill -0 $pid 2>/dev/null"
  fi
  rm -f "$PID_FILE"
}

status() {
  if running; then
    echo "trace viewer: up at $URL, OTLP on $OTLP_ADDR (pid $(cat "$PID_FILE"))"
  elif ui_ready; then
    echo "trace viewer: up at $URL (not started by make up)"
  else
    echo "trace viewer: down"
    return 1
  fi
}

case "${1:-status}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  url) echo "$URL${2:+/trace/$2}" ;;
  *) die "usage: $0 start|stop|status|url [trace-id]" ;;
esac
