#!/usr/bin/env bash
# The demo flow: create a user through the gateway, watch the event chain give
# them a welcome order and settle its payment, then place an order by hand and
# watch it settle too. Waits by polling with deadlines, never by sleeping blind;
# exits non-zero with a clear message at the first thing that goes wrong.
#
#   GATEWAY_URL           where the gateway listens (http://localhost:3005)
#   DEMO_TIMEOUT_SECONDS  how long each wait may take (30)
set -euo pipefail

GATEWAY_URL="${GATEWAY_URL:-http://localhost:3005}"
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

# api <method> <path> [body]: prints "<status> <body>"; the request id names this demo run.
api() {
  local method=$1 path=$2 body=${3:-}
  local args=(-sS -X "$method" -H "X-Request-Id: $REQUEST_ID" -w '\n%{http_code}' "$GATEWAY_URL$path")
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' -d "$body")
  local response; response=$(curl "${args[@]}") || fail "cannot reach the gateway at $GATEWAY_URL"
  printf '%s %s' "$(tail -n1 <<<"$response")" "$(sed '$d' <<<"$response")"
}

gateway_ready() { curl -fsS "$GATEWAY_URL/health/ready" >/dev/null && echo up; }
settled_order() {
  api GET "/api/orders?userId=$1" | cut -d' ' -f2- |
    jq -ce --arg id "${2:-}" '.[] | select(($id == "" or .id == $id) and .status != "pending")'
}

REQUEST_ID="demo-$(date +%s)-$RANDOM"
bold "Event-driven platform demo (request id $REQUEST_ID)"

bold "0. Waiting for the gateway at $GATEWAY_URL"
poll "$TIMEOUT" gateway_ready >/dev/null || fail "the gateway is not ready after ${TIMEOUT}s; start the platform with 'make up'"
ok "gateway ready"

bold "1. Creating a user"
email="demo+$(date +%s%N)@example.com"
read -r status body <<<"$(api POST /api/users "{\"email\":\"$email\",\"name\":\"Demo User\",\"password\":\"SecurePass123!\"}")"
[ "$status" = 201 ] || fail "expected 201 creating the user, got $status: $body"
USER_ID=$(jq -r .id <<<"$body")
ok "user $USER_ID created ($email)"

bold "2. Waiting for the welcome order to be created and paid (user.created → order.created → payment.completed)"
started=$SECONDS
order=$(poll "$TIMEOUT" settled_order "$USER_ID") || fail "no settled welcome order after ${TIMEOUT}s; see 'make logs'"
ok "welcome order $(jq -r .id <<<"$order"): $(jq -r .status <<<"$order"), total $(jq -r .totalAmount <<<"$order") ($((SECONDS - started))s)"

bold "3. Placing an order by hand"
read -r status body <<<"$(api POST /api/orders "{\"userId\":\"$USER_ID\",\"items\":[{\"productId\":\"product-demo-123\",\"quantity\":3,\"price\":19.99}]}")"
[ "$status" = 201 ] || fail "expected 201 placing the order, got $status: $body"
ORDER_ID=$(jq -r .id <<<"$body")
ok "order $ORDER_ID placed: total $(jq -r .totalAmount <<<"$body"), status $(jq -r .status <<<"$body")"
order=$(poll "$TIMEOUT" settled_order "$USER_ID" "$ORDER_ID") || fail "order $ORDER_ID not settled after ${TIMEOUT}s"
ok "order $ORDER_ID: $(jq -r .status <<<"$order")"

bold "4. Where to look next"
echo "  Users:   $GATEWAY_URL/api/users"
echo "  Orders:  $GATEWAY_URL/api/orders?userId=$USER_ID"
echo "  Logs:    make logs   (every line of this flow carries request_id $REQUEST_ID)"
bold "Demo completed: the event chain works end to end."
