#!/usr/bin/env bash
# End-to-end test of the gateway's Swagger UI (/api/docs) in headless Chromium.
#
# Installs what is missing (Debian's chromium via apt, playwright-core via `npm ci`
# from package-lock.json into a cache directory outside the work tree), then runs
# swagger.test.mjs against a gateway that is already running.
#
#   GATEWAY_URL      gateway to test                 (default http://127.0.0.1:3005)
#   ARTIFACT_DIR     where screenshots go            (default ${XDG_STATE_HOME:-~/.local/state}/rust-event-platform/artifacts/swagger)
#   CHROMIUM_PATH    browser binary                  (default /usr/bin/chromium)
#   SWAGGER_TEST_DEPS_DIR  npm prefix for node_modules (default ${XDG_CACHE_HOME:-~/.cache}/rust-event-platform/swagger-test)
#   ADMIN_EMAIL / ADMIN_PASSWORD  login used for the token (defaults: the seeded admin)
#
# Idempotent: a second run installs nothing and only runs the test.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export GATEWAY_URL="${GATEWAY_URL:-http://127.0.0.1:3005}"
export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
DEPS_DIR="${SWAGGER_TEST_DEPS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rust-event-platform/swagger-test}"

log() { printf 'swagger-test: %s\n' "$*" >&2; }
die() { printf 'swagger-test: ERROR: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root to run: $*"; fi
}

# --- 1. Chromium (Debian package; Playwright's own browser download is not used) ---
if [ ! -x "$CHROMIUM_PATH" ]; then
  [ "$CHROMIUM_PATH" = /usr/bin/chromium ] || die "CHROMIUM_PATH=$CHROMIUM_PATH is not an executable"
  command -v apt-get >/dev/null 2>&1 || die "/usr/bin/chromium is missing and apt-get is not available"
  log "installing chromium with apt-get (once per machine)"
  export DEBIAN_FRONTEND=noninteractive
  if ! as_root apt-get install -y -q chromium >/dev/null; then
    log "apt-get install failed; running apt-get update and retrying"
    as_root apt-get update -q >/dev/null
    as_root apt-get install -y -q chromium >/dev/null || die "apt-get install chromium failed"
  fi
  [ -x "$CHROMIUM_PATH" ] || die "chromium installed but $CHROMIUM_PATH is still missing"
fi

# --- 2. Node.js and playwright-core (pinned in package-lock.json) ---
command -v node >/dev/null 2>&1 || die "node is not installed (Node.js >= 20 is needed)"
command -v npm >/dev/null 2>&1 || die "npm is not installed"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "Node.js >= 20 is needed, found $(node --version)"

lock_sum="$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)"
stamp="$DEPS_DIR/.package-lock.sha256"
deps_ok() {
  [ -f "$DEPS_DIR/node_modules/playwright-core/package.json" ] \
    && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_sum" ]
}
if ! deps_ok; then
  mkdir -p "$DEPS_DIR"
  (
    # Two runs at once must not install into the same directory together.
    if command -v flock >/dev/null 2>&1; then flock 9; fi
    if ! deps_ok; then
      log "installing npm dependencies into $DEPS_DIR (npm ci)"
      cp "$HERE/package.json" "$HERE/package-lock.json" "$DEPS_DIR/"
      rm -f "$stamp"
      PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$DEPS_DIR" \
        --no-audit --no-fund --loglevel=error >&2 || die "npm ci failed"
      printf '%s\n' "$lock_sum" >"$stamp"
    fi
  ) 9>"$DEPS_DIR/.install.lock"
fi
export NODE_PATH="$DEPS_DIR/node_modules${NODE_PATH:+:$NODE_PATH}"

# --- 3. The test ---
exec node "$HERE/swagger.test.mjs"
