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
USER_DATABASE_NAME="${USER_DATABASE_NAME:-userdb}"
ORDER_DATABASE_NAME="${ORDER_DATABASE_NAME:-orderdb}"
PAYMENT_DATABASE_NAME="${PAYMENT_DATABASE_NAME:-paymentdb}"
SERVICES=(user-service order-service payment-service api-gateway)
# One partition a topic on the local broker (compose and Kubernetes keep 3): nisshi serves
# storage requests one at a time and every fetch reads each partition it names, so every
# partition a consumer holds costs requests that the next produce waits behind. One instance of each service runs
# here, and it handles a partition's keys concurrently. See docs/decisions/broker.md.
export KAFKA_TOPIC_PARTITIONS="${KAFKA_TOPIC_PARTITIONS:-1}"
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

# npm_ci_bounded <deps dir>: `npm ci` into <deps dir>, each try bounded. An npm whose
# download stalls waits on its socket for good, and ignores SIGTERM (seen here: `npm ci`
# idle for 11 minutes while the registry served the same tarball in 0.07 s), so a try
# gets 5 minutes, then SIGKILL, and a stalled try is started again; 3 tries in all.
npm_ci_bounded() {
  local deps_dir=$1 try
  for try in 1 2 3; do
    timeout --kill-after=10 300 npm ci --prefix "$deps_dir" --ignore-scripts --no-audit --no-fund \
      --fetch-timeout=60000 --loglevel=error >&2 && return 0
    say "npm ci into $deps_dir did not finish (try $try of 3)" >&2
  done
  return 1
}

# npm_ci_cached <package dir> <deps dir> <module>: the browser and contract tests' npm
# packages, pinned by <package dir>/package-lock.json, installed once into <deps dir>
# (outside the work tree) and again only when the lock file changes; <module> is one
# they install, to tell an interrupted install from a finished one. Exports NODE_PATH.
# Extra npm environment (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1) is passed by the caller.
npm_ci_cached() {
  local package_dir=$1 deps_dir=$2 module=$3 lock_sum
  command -v node >/dev/null 2>&1 || die "node is not installed (Node.js >= 20 is needed)"
  command -v npm >/dev/null 2>&1 || die "npm is not installed"
  [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] || die "Node.js >= 20 is needed, found $(node --version)"
  lock_sum="$(sha256sum "$package_dir/package-lock.json" | cut -d' ' -f1)"
  npm_deps_ok() {
    [ -f "$deps_dir/node_modules/$module/package.json" ] &&
      [ "$(cat "$deps_dir/.package-lock.sha256" 2>/dev/null)" = "$lock_sum" ]
  }
  if ! npm_deps_ok; then
    mkdir -p "$deps_dir"
    (
      # Two runs at once must not install into the same directory together.
      flock 9
      if ! npm_deps_ok; then
        say "Installing $(cd "$package_dir" && node -p 'Object.keys(require("./package.json").dependencies).join(", ")') into $deps_dir (npm ci)" >&2
        cp "$package_dir/package.json" "$package_dir/package-lock.json" "$deps_dir/"
        rm -f "$deps_dir/.package-lock.sha256"
        npm_ci_bounded "$deps_dir" || die "npm ci failed 3 times"
        printf '%s\n' "$lock_sum" >"$deps_dir/.package-lock.sha256"
      fi
    ) 9>"$deps_dir/.install.lock"
  fi
  export NODE_PATH="$deps_dir/node_modules${NODE_PATH:+:$NODE_PATH}"
}

service_port() {
  case "$1" in
    user-service) echo 3001 ;; order-service) echo 3002 ;;
    payment-service) echo 3003 ;; api-gateway) echo 3005 ;;
  esac
}

# probe_port <service>: where it answers /health/* and /metrics (the gateway's admin
# listener; the others on their own port).
probe_port() {
  case "$1" in
    api-gateway) echo 9305 ;;
    *) service_port "$1" ;;
  esac
}
