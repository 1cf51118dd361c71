#!/usr/bin/env bash
# End-to-end test of the gateway's Swagger UI (/api/docs) in headless Chromium.
#
# Installs what is missing (Debian's chromium via apt, playwright-core via `npm ci`
# from package-lock.json into a cache directory outside the work tree), then runs
# swagger.test.mjs against a gateway that is already running.
#
#   GATEWAY_URL      gateway to test                 (default http://127.0.0.1:3005)
#   ARTIFACT_DIR     where screenshots go            (default ${XDG_STATE_HOME:-~/.local/state}/rust-event-platform/artifacts/swagger)
#   SCREENSHOT_DIR   also write swagger.png there, for the docs (unset: no; `make screenshots` sets docs/images)
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
# Installed once into $DEPS_DIR, again only when the lock file changes (common.sh).
source "$HERE/../../scripts/common.sh"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm_ci_cached "$HERE" "$DEPS_DIR" playwright-core

# --- 3. The test ---
exec node "$HERE/swagger.test.mjs"
