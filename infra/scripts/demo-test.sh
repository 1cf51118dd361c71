#!/usr/bin/env bash
# Runs ./demo-quick.sh against the native processes, as a test: brings the
# services up if needed and stops again only what it started itself.
set -euo pipefail
source "$(dirname "$0")/common.sh"

started_here=false
if ! "$ROOT/infra/scripts/services.sh" status | grep -q running; then
  started_here=true
fi
"$ROOT/infra/scripts/services.sh" start
status=0
"$ROOT/demo-quick.sh" || status=$?
if $started_here; then
  "$ROOT/infra/scripts/services.sh" stop
fi
exit "$status"
