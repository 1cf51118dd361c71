#!/usr/bin/env bash
# with-platform.sh <command...>: runs a command against the native platform,
# bringing the services up if needed and stopping again only what it started.
set -euo pipefail
source "$(dirname "$0")/common.sh"

started_here=false
# The status is read whole first: `grep -q` closing the pipe early would fail it under pipefail.
status_before=$("$ROOT/infra/scripts/services.sh" status)
if ! grep -q running <<<"$status_before"; then
  started_here=true
fi
"$ROOT/infra/scripts/services.sh" start
status=0
"$@" || status=$?
if $started_here; then
  "$ROOT/infra/scripts/services.sh" stop
fi
exit "$status"
