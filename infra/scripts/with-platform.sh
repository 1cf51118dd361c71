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
# Where this run's lines start in each log, for the digest printed on failure.
declare -A log_start
shopt -s nullglob
for log in "$LOG_DIR"/*.log; do log_start[$log]=$(wc -l <"$log"); done
"$ROOT/infra/scripts/services.sh" start
status=0
"$@" || status=$?
if [ "$status" != 0 ]; then
  # A failure in CI leaves nothing else behind: what the services and the broker said
  # during this run (warnings, errors, group and store events) goes into its output.
  for log in "$LOG_DIR"/*.log; do
    lines=$(tail -n +"$(( ${log_start[$log]:-0} + 1 ))" "$log" |
      grep -E '"level":"(WARN|ERROR)"|partitions (assigned|revoked)|generation|consumer (subscribed|stopped)|panick|ERROR|WARN' |
      grep -v 'no OTLP collector' | tail -n 40 | cut -c1-400 || true)
    if [ -n "$lines" ]; then
      printf '\n--- %s (this run, last 40 notable lines)\n%s\n' "$(basename "$log")" "$lines" >&2
    fi
  done
fi
if $started_here; then
  "$ROOT/infra/scripts/services.sh" stop
fi
exit "$status"
