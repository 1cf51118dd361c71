#!/usr/bin/env bash
# `make test-asyncapi`: the gateway's AsyncAPI document (/api/docs/asyncapi.json) is
# valid for the AsyncAPI parser, and a sign-up's real messages on the broker match it
# (asyncapi.test.mjs says what is checked).
#
# Installs @asyncapi/parser, ajv and ajv-formats, pinned by package-lock.json, with
# `npm ci` into a cache outside the work tree (once; a changed lock file reinstalls),
# then runs the test against the running platform (make runs it under with-platform.sh)
# with target/debug/platform-events (make builds it first).
#
#   GATEWAY_URL                gateway to test            (default http://127.0.0.1:3005)
#   ASYNCAPI_TEST_DEPS_DIR     npm prefix for node_modules (default ${XDG_CACHE_HOME:-~/.cache}/rust-event-platform/asyncapi-test)
#   ASYNCAPI_DEADLINE_SECONDS  how long to wait for the sign-up's messages (30)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../../scripts/common.sh"
DEPS_DIR="${ASYNCAPI_TEST_DEPS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rust-event-platform/asyncapi-test}"
export PLATFORM_EVENTS="${PLATFORM_EVENTS:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/platform-events}"

command -v node >/dev/null 2>&1 || die "node is not installed (Node.js >= 20 is needed)"
command -v npm >/dev/null 2>&1 || die "npm is not installed"
[ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] || die "Node.js >= 20 is needed, found $(node --version)"
[ -x "$PLATFORM_EVENTS" ] || die "$PLATFORM_EVENTS is missing: cargo build -p eventing --bin platform-events"

lock_sum="$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)"
deps_ok() {
  [ -f "$DEPS_DIR/node_modules/@asyncapi/parser/package.json" ] &&
    [ "$(cat "$DEPS_DIR/.package-lock.sha256" 2>/dev/null)" = "$lock_sum" ]
}
if ! deps_ok; then
  mkdir -p "$DEPS_DIR"
  (
    # Two runs at once must not install into the same directory together.
    flock 9
    if ! deps_ok; then
      say "Installing @asyncapi/parser, ajv, ajv-formats into $DEPS_DIR (npm ci)"
      cp "$HERE/package.json" "$HERE/package-lock.json" "$DEPS_DIR/"
      rm -f "$DEPS_DIR/.package-lock.sha256"
      npm ci --prefix "$DEPS_DIR" --ignore-scripts --no-audit --no-fund --loglevel=error >&2 || die "npm ci failed"
      printf '%s\n' "$lock_sum" >"$DEPS_DIR/.package-lock.sha256"
    fi
  ) 9>"$DEPS_DIR/.install.lock"
fi
export NODE_PATH="$DEPS_DIR/node_modules${NODE_PATH:+:$NODE_PATH}"

exec node "$HERE/asyncapi.test.mjs"
