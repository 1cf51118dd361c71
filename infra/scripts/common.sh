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

# Close the descriptors inherited from the caller (a build lock taken with flock, a CI
# runner's pipes): the daemons these scripts start (broker, services, Prometheus, trace
# viewer) would otherwise hold them open for as long as they live. make's jobserver
# descriptors stay, for the cargo builds the scripts run.
keep_fds=" $(sed -n 's/.*--jobserver-auth=\([0-9]*\),\([0-9]*\).*/\1 \2/p' <<<"${MAKEFLAGS:-}") "
for fd_path in /proc/$$/fd/*; do
  fd=${fd_path##*/}
  case "$fd" in 0 | 1 | 2 | 255) continue ;; esac
  [[ "$keep_fds" == *" $fd "* ]] && continue
  [ "$fd" -lt 255 ] 2>/dev/null && eval "exec $fd>&-" 2>/dev/null || true
done
unset keep_fds fd_path fd
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
