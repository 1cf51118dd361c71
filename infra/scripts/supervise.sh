#!/usr/bin/env bash
# supervise.sh <name> <binary>: runs one service and starts it again when it dies on its
# own (a crash), as compose's `restart:` and Kubernetes do for a container. A SIGTERM to
# this script is a stop: it is passed on, the service shuts down gracefully, nothing is
# restarted. Started by services.sh; its pid is the one in the pid file.
#
# Why: the native platform should heal as the deployed one does; a crash (librdkafka
# has been seen to crash a consumer whose topic vanished under it) must not leave a
# service down until someone notices.
set -uo pipefail
name=$1 binary=$2 child=""

stop() {
  [ -n "$child" ] && kill -TERM "$child" 2>/dev/null && wait "$child"
  exit 0
}
trap stop TERM INT

backoff=1
while :; do
  started=$SECONDS
  "$binary" &
  child=$!
  wait "$child"
  status=$?
  # A service that ran a while gets restarted at once; one that keeps dying, more slowly.
  if [ $((SECONDS - started)) -gt 30 ]; then backoff=1; else backoff=$((backoff < 16 ? backoff * 2 : 16)); fi
  printf '{"level":"ERROR","message":"%s exited with status %s; starting it again in %s s","service":"supervisor","target":"supervise.sh"}\n' \
    "$name" "$status" "$backoff"
  sleep "$backoff" &
  wait $!
done
