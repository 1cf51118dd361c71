#!/usr/bin/env bash
# The demo flow, through the gateway as a client sees it: sign in as the admin,
# sign up a user, watch the event chain give them a welcome order and settle
# its payment, place an order by hand and watch it settle, then read the stats.
# Waits by polling with deadlines, never by sleeping blind; exits non-zero with
# a clear message at the first thing that goes wrong. Works against the native
# run (`make up`) and against docker compose alike.
#
#   GATEWAY_URL           the gateway (http://localhost:3005)
#   ADMIN_EMAIL           the first admin (admin@example.com, the development default)
#   ADMIN_PASSWORD        its password (natively: this machine's, from infra/scripts/secrets.sh)
#   JAEGER_URL            the trace viewer: Jaeger's UI natively or in compose (http://localhost:16686)
#   PROMETHEUS_URL        Prometheus, natively or in compose (http://localhost:9090)
#   GRAFANA_URL           Grafana (http://localhost:3010)
#   KAFKA_UI_URL          the Kafka UI of the compose stack (http://localhost:8080)
#   DEMO_TIMEOUT_SECONDS  how long each wait may take (30)
set -euo pipefail

GATEWAY_URL="${GATEWAY_URL:-http://localhost:3005}"
ADMIN_EMAIL="${ADMIN_EMAIL:-admin@example.com}"
if [ -z "${ADMIN_PASSWORD:-}" ]; then
  # The native platform's admin password is generated per machine; compose users set it.
  ADMIN_PASSWORD=$("$(dirname "$0")/infra/scripts/secrets.sh" admin-password)
fi
JAEGER_URL="${JAEGER_URL:-http://localhost:16686}"
PROMETHEUS_URL="${PROMETHEUS_URL:-http://localhost:9090}"
GRAFANA_URL="${GRAFANA_URL:-http://localhost:3010}"
KAFKA_UI_URL="${KAFKA_UI_URL:-http://localhost:8080}"
TIMEOUT="${DEMO_TIMEOUT_SECONDS:-30}"

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
ok() { printf '  \033[32m✓\033[0m %s\n' "$*"; }
fail() { printf '  \033[31m✗ %s\033[0m\n' "$*" >&2; exit 1; }

for tool in curl jq; do
  command -v "$tool" >/dev/null || fail "$tool is required (apt-get install $tool)"
done

# poll <seconds> <command...>: runs the command until it prints something non-empty.
poll() {
  local seconds=$1; shift
  local deadline=$((SECONDS + seconds)) out
  while :; do
    out=$("$@" 2>/dev/null || true)
    if [ -n "$out" ]; then printf '%s' "$out"; return 0; fi
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

HEADERS=$(mktemp)
trap 'rm -f "$HEADERS"' EXIT

# api <method> <path> [body] [token]: prints "<status> <body>"; every call carries this run's request id.
api() {
  local method=$1 path=$2 body=${3:-} token=${4:-}
  local args=(-sS -X "$method" -D "$HEADERS" -H "X-Request-Id: $REQUEST_ID" -w '\n%{http_code}' "$GATEWAY_URL$path")
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' -d "$body")
  [ -n "$token" ] && args+=(-H "Authorization: Bearer $token")
  local response; response=$(curl "${args[@]}") || fail "cannot reach the gateway at $GATEWAY_URL"
  printf '%s %s' "$(tail -n1 <<<"$response")" "$(sed '$d' <<<"$response" | tr -d '\n')"
}

trace_id() { tr -d '\r' <"$HEADERS" | awk -F': ' 'tolower($1) == "x-trace-id" {print $2}'; }
# The gateway's health is on its admin port, not the public one: it is up once it serves its API docs.
gateway_ready() { curl -fsS -o /dev/null "$GATEWAY_URL/api/docs/openapi.json" && echo up; }
settled_order() { # <token> [order id]
  api GET /api/orders "" "$1" | cut -d' ' -f2- |
    jq -ce --arg id "${2:-}" '.[] | select(($id == "" or .id == $id) and .status != "pending")'
}

REQUEST_ID="demo-$(date +%s)-$RANDOM"
bold "Event-driven platform demo (request id $REQUEST_ID)"

bold "0. Waiting for the gateway at $GATEWAY_URL"
poll "$TIMEOUT" gateway_ready >/dev/null || fail "the gateway is not ready after ${TIMEOUT}s; start the platform with 'make up'"
ok "gateway ready"

bold "1. Signing in as the admin ($ADMIN_EMAIL)"
read -r status body <<<"$(api POST /api/auth/login "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}")"
[ "$status" = 200 ] || fail "admin sign-in answered $status: $body (set ADMIN_EMAIL and ADMIN_PASSWORD)"
ADMIN_TOKEN=$(jq -r .access_token <<<"$body")
ok "signed in; token valid for $(jq -r .expires_in <<<"$body")s"

bold "2. Signing up a user"
email="demo+$(date +%s%N)@example.com"
read -r status body <<<"$(api POST /api/auth/register "{\"email\":\"$email\",\"name\":\"Demo User\",\"password\":\"SecurePass123!\"}")"
[ "$status" = 201 ] || fail "expected 201 signing up, got $status: $body"
USER_ID=$(jq -r .user.id <<<"$body")
USER_TOKEN=$(jq -r .access_token <<<"$body")
TRACE_ID=$(trace_id)
ok "user $USER_ID ($email), role $(jq -r .user.role <<<"$body")"

bold "3. Waiting for the welcome order: user.created → order.created → payment.completed"
started=$SECONDS
order=$(poll "$TIMEOUT" settled_order "$USER_TOKEN") || fail "no settled welcome order after ${TIMEOUT}s; see 'make logs'"
ok "welcome order $(jq -r .id <<<"$order"): $(jq -r .status <<<"$order"), total $(jq -r .totalAmount <<<"$order") ($((SECONDS - started))s)"

bold "4. Placing an order as the user"
read -r status body <<<"$(api POST /api/orders "{\"userId\":\"$USER_ID\",\"items\":[{\"productId\":\"product-demo-123\",\"quantity\":3,\"price\":19.99}]}" "$USER_TOKEN")"
[ "$status" = 201 ] || fail "expected 201 placing the order, got $status: $body"
ORDER_ID=$(jq -r .id <<<"$body")
ok "order $ORDER_ID placed: total $(jq -r .totalAmount <<<"$body"), status $(jq -r .status <<<"$body")"
order=$(poll "$TIMEOUT" settled_order "$USER_TOKEN" "$ORDER_ID") || fail "order $ORDER_ID not settled after ${TIMEOUT}s"
ok "order $ORDER_ID: $(jq -r .status <<<"$order")"

bold "5. Order statistics (admin)"
read -r status body <<<"$(api GET /api/orders/stats "" "$ADMIN_TOKEN")"
[ "$status" = 200 ] || fail "expected 200 for the stats, got $status: $body"
ok "$(jq -r '"\(.totalOrders) orders, revenue \(.revenue), average \(.averageOrderValue); by status \(.countsByStatus | tojson)"' <<<"$body")"

bold "6. Where to look next"
# Only links that answer are printed (infra/scripts/answers.sh follows redirects as a
# browser does and gives the address it ends on); anything else says what starts it.
answers() { "$(dirname "$0")/infra/scripts/answers.sh" "$1"; }
uri() { jq -rn --arg v "$1" '$v | @uri'; }
# The services of the sign-up's trace in the viewer, once all four exported their spans
# (each batches its spans for up to 5 s).
trace_services() {
  curl -fsS --max-time 3 "$JAEGER_URL/api/traces/$TRACE_ID" |
    jq -r '[.data[0].processes[].serviceName] | unique | select(length >= 4) | join(", ")'
}
if url=$(answers "$GATEWAY_URL/api/docs"); then
  echo "  API docs:    $url"
fi
if [ -z "$TRACE_ID" ]; then
  echo "  Traces:      span export is off (OTEL_EXPORTER_OTLP_ENDPOINT=none); no trace id"
elif ! answers "$JAEGER_URL/api/services" >/dev/null; then
  echo "  Traces:      no trace viewer is running; natively 'make up' starts one (infra/scripts/traces.sh start)"
elif services=$(poll "$TIMEOUT" trace_services) && url=$(answers "$JAEGER_URL/trace/$TRACE_ID"); then
  echo "  The sign-up's trace (gateway → user → order → payment → order; $services):"
  echo "               $url"
elif url=$(answers "$JAEGER_URL/trace/$TRACE_ID"); then
  echo "  The sign-up's trace (spans from all four services not there after ${TIMEOUT}s; see 'make logs'):"
  echo "               $url"
else
  echo "  Traces:      the viewer at $JAEGER_URL does not show trace $TRACE_ID"
fi
if answers "$PROMETHEUS_URL/-/ready" >/dev/null; then
  echo "  Prometheus:  $(answers "$PROMETHEUS_URL")"
  # The platform's key query: events handled (settled) per second, by topic.
  settled='sum by (topic) (rate(kafka_messages_consumed_total[1m]))'
  if url=$(answers "$PROMETHEUS_URL/graph?g0.expr=$(uri "$settled")&g0.tab=0&g0.range_input=15m"); then
    echo "  Events settled per second, by topic:"
    echo "               $url"
  fi
  # Prometheus 2 from Debian serves its classic UI only: /alerts is then /classic/alerts.
  if url=$(answers "$PROMETHEUS_URL/alerts") || url=$(answers "$PROMETHEUS_URL/classic/alerts"); then
    echo "  Alerts:      $url"
  fi
else
  echo "  Prometheus:  not running; natively 'make up' starts it (infra/scripts/prometheus.sh start)"
fi
if url=$(answers "$GRAFANA_URL/api/health") && url=$(answers "$GRAFANA_URL"); then
  echo "  Grafana:     $url (dashboards: Platform overview, Service)"
else
  echo "  Grafana:     docker compose only (infra/docker-compose.yml); not running here"
fi
if url=$(answers "$KAFKA_UI_URL"); then
  echo "  Kafka UI:    $url"
else
  echo "  Kafka UI:    docker compose only (infra/docker-compose.yml); not running here"
fi
echo "  Events:      make events   (every topic and its dead letters live: key, type, event id, trace id, request id)"
echo "  Logs:        make logs   (every line of this flow carries request_id $REQUEST_ID)"
bold "Demo completed: the event chain works end to end."
