#!/usr/bin/env bash
# `make test-observability-ui`: what a person opens after `make demo`, checked for real.
#
#   1. starts Prometheus and the trace viewer as `make up` does (stopped again at the
#      end if they were not running before), installs Chromium and playwright-core
#      when missing (the swagger test's pinned playwright-core, same cache);
#   2. runs the demo against the native platform (services started if needed) and
#      checks that every link it printed answers;
#   3. waits until Prometheus has the settled-events series of every topic, then opens
#      in headless Chromium the trace link, the graph link and the alerts link the demo
#      printed, checking what the pages show (ui.test.mjs); screenshots go to
#      $STATE_DIR/artifacts/observability-ui.
#
#   OBS_UI_TIMEOUT_SECONDS  how long to wait for Prometheus's data (60)
#   SCREENSHOT_DIR          also write trace.png and prometheus.png there, for the docs
#                           (`make screenshots` sets docs/images; unset: no)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../../scripts/common.sh"
SCRIPTS="$ROOT/infra/scripts"

export ARTIFACT_DIR="${ARTIFACT_DIR:-$STATE_DIR/artifacts/observability-ui}"
export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
mkdir -p "$ARTIFACT_DIR"
rm -f "$ARTIFACT_DIR"/*.png "$ARTIFACT_DIR/demo.txt"

# ---------------------------------------------------------------- 1. what the test needs
started=()
cleanup() {
  local tool
  for tool in "${started[@]}"; do "$SCRIPTS/$tool.sh" stop || true; done
}
trap cleanup EXIT
for tool in traces prometheus; do
  "$SCRIPTS/$tool.sh" status >/dev/null 2>&1 || started+=("$tool")
  "$SCRIPTS/$tool.sh" start
done

[ -x "$CHROMIUM_PATH" ] || "$SCRIPTS/apt-install.sh" chromium
# The swagger test's playwright-core, installed the way its run.sh does, into the same cache.
SWAGGER="$ROOT/infra/tests/swagger"
DEPS_DIR="${SWAGGER_TEST_DEPS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rust-event-platform/swagger-test}"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm_ci_cached "$SWAGGER" "$DEPS_DIR" playwright-core

# What the pages must show: every alert of the project's rules, every topic of the chain.
EXPECTED_ALERTS=$(sed -nE 's/^[[:space:]]*-[[:space:]]*alert:[[:space:]]*([A-Za-z0-9_]+).*/\1/p' "$ROOT"/infra/prometheus/rules/*.yml | sort -u | paste -sd, -)
[ -n "$EXPECTED_ALERTS" ] || die "no alerts found in infra/prometheus/rules"
export EXPECTED_ALERTS EXPECTED_TOPICS="user.created,order.created,payment.completed"
export OBS_UI_TIMEOUT_SECONDS="${OBS_UI_TIMEOUT_SECONDS:-60}"

# ---------------------------------------------------------------- 2-3. demo, links, pages
"$SCRIPTS/with-platform.sh" "$HERE/after-demo.sh"
