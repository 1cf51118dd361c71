# Shared settings for the infra scripts; sourced, not run.
# Everything the platform keeps at run time lives outside the work tree, so a
# fresh clone (CI) finds the broker already installed and nothing stale inside.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE_DIR="${PLATFORM_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/rust-event-platform}"
LOG_DIR="$STATE_DIR/logs"
RUN_DIR="$STATE_DIR/run"
KAFKA_HOST="${KAFKA_HOST:-127.0.0.1}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432}"
SERVICES=(user-service order-service payment-service api-gateway)
mkdir -p "$LOG_DIR" "$RUN_DIR"
# This machine's development secrets (generated once, owner-only), for every script.
source "$ROOT/infra/scripts/secrets.sh"
load_secrets

say() { printf '\033[1m==>\033[0m %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# True when something accepts TCP connections on host:port.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_for <what> <seconds> <command...>: polls the command until it succeeds.
wait_for() {
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "timed out after ${seconds}s waiting for $what"
    sleep 0.2
  done
}

service_port() {
  case "$1" in
    user-service) echo 3001 ;; order-service) echo 3002 ;;
    payment-service) echo 3003 ;; api-gateway) echo 3005 ;;
  esac
}
