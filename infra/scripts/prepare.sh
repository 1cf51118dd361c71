#!/usr/bin/env bash
# Builds, side by side, what the platform needs on this machine: the broker (nisshi, once
# per machine), the trace viewer (once per machine, unless OBSERVABILITY=0) and the
# services (debug, the workspace's binaries). On a fresh machine these are three long
# cargo builds; one after another, each leaves a core idle whenever it compiles one large
# crate, so together they finish sooner. Each build's output goes to its own log in
# $LOG_DIR; a failure prints the end of that log and fails the script. Already built
# parts return at once.
set -euo pipefail
source "$(dirname "$0")/common.sh"

declare -A jobs=()
start() {
  local name=$1; shift
  "$@" >"$LOG_DIR/prepare-$name.log" 2>&1 &
  jobs[$name]=$!
}

# The broker's build is the longest, and the end of it compiles a few large crates one after
# another: it gets the cores first, and the others take whatever it leaves idle.
start broker "$ROOT/infra/scripts/install-broker.sh"
[ "${OBSERVABILITY:-1}" = 0 ] || start trace-viewer nice -n 10 "$ROOT/infra/scripts/install-trace-viewer.sh"
start services nice -n 10 bash -c "cd '$ROOT' && cargo build --bins"
say "Building side by side: ${!jobs[*]} (logs: $LOG_DIR/prepare-*.log)"

failed=()
for name in "${!jobs[@]}"; do
  if wait "${jobs[$name]}"; then
    say "$name: ready"
  else
    failed+=("$name")
    printf 'error: building %s failed; the end of %s:\n' "$name" "$LOG_DIR/prepare-$name.log" >&2
    tail -n 20 "$LOG_DIR/prepare-$name.log" >&2
  fi
done
[ "${#failed[@]}" -eq 0 ] || die "could not build: ${failed[*]}"
