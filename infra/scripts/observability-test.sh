#!/usr/bin/env bash
# Brings the platform up if needed, runs the demo flow for traffic, then checks
# every dashboard and alert expression against a real Prometheus scraping it.
# Stops again only what it started.
set -euo pipefail
source "$(dirname "$0")/common.sh"

started_here=false
if ! "$ROOT/infra/scripts/services.sh" status | grep -q running; then
  started_here=true
fi
"$ROOT/infra/scripts/services.sh" start
status=0
{ "$ROOT/demo-quick.sh" >/dev/null && "$ROOT/infra/tests/observability/check.sh"; } || status=$?
if $started_here; then
  "$ROOT/infra/scripts/services.sh" stop
fi
exit "$status"
