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

[ -x "$PLATFORM_EVENTS" ] || die "$PLATFORM_EVENTS is missing: cargo build -p event-tools --bin platform-events"
npm_ci_cached "$HERE" "$DEPS_DIR" @asyncapi/parser

exec node "$HERE/asyncapi.test.mjs"
