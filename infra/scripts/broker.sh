#!/usr/bin/env bash
# The local Kafka-protocol broker (nisshi, sqlite storage): start | stop | status,
# and throw-away brokers for tests: start-fresh <name> <port> | stop-fresh <name>.
#
# The broker is judged by real Kafka requests (kafka_check.py: ApiVersions, then
# Metadata), never by a TCP connect: a broker whose storage failed may keep accepting
# connections while failing every request. `start`:
#   - a healthy Kafka broker answers on the port: it is used as it is (ours or not);
#   - the broker these scripts started (pid in $RUN_DIR/nisshi.pid) accepts connections
#     but does not answer Kafka requests for $BROKER_CONFIRM_SECONDS: it is killed and a
#     fresh one started on the same store (its log is kept as nisshi.previous.log);
#   - another process holds the port without answering Kafka: it is named (pid and
#     command, from `ss -ltnp`) and left alone, and the script fails;
#   - nothing listens: nisshi is installed if missing and started.
# Then, whichever way the broker came to answer, the platform's existing topics get
# their retention policy (topic_retention.py: cleanup.policy=delete and retention.ms
# from KAFKA_RETENTION_MS / KAFKA_DLQ_RETENTION_MS; topics created before the services
# set it at creation). A broker that refuses that is reported, not restarted.
#
# Every broker these scripts start requires SASL/SCRAM (`--authentication`): the
# principals of secrets.sh (one per service, and platform-operator for the tools) get
# their credentials in the broker's store before it listens on its port, and these
# scripts sign in as platform-operator. A broker of ours that still runs without
# authentication (started by an older version of this script) is restarted with it.
#
# nisshi runs its storage maintenance (deleting records older than a topic's
# retention.ms where cleanup.policy has `delete`) every $BROKER_MAINTENANCE_INTERVAL
# instead of its default 10 minutes, so the store stays bounded by retention.
set -euo pipefail
source "$(dirname "$0")/common.sh"

BROKER_BIN="${NISSHI_INSTALL_ROOT:-/usr/local}/bin/nisshi"
DATA_DIR="$STATE_DIR/nisshi"
PID_FILE="$RUN_DIR/nisshi.pid"
KAFKA_CHECK="$ROOT/infra/scripts/kafka_check.py"
KAFKA_USERS="$ROOT/infra/scripts/kafka_users.py"
TOPIC_RETENTION="$ROOT/infra/scripts/topic_retention.py"
# A humantime duration, read from the storage URL's `maintenance_interval` query
# parameter (a value the broker cannot parse is ignored, hence the check below).
BROKER_MAINTENANCE_INTERVAL="${BROKER_MAINTENANCE_INTERVAL:-60s}"
# How long a broker of ours may keep failing the check before it is restarted: a loaded
# broker (one storage task, serialising every request) can miss one 2 s check.
BROKER_CONFIRM_SECONDS="${BROKER_CONFIRM_SECONDS:-15}"
# Seconds for one check (connect, ApiVersions and Metadata).
KAFKA_CHECK_TIMEOUT="${KAFKA_CHECK_TIMEOUT:-2}"

[[ "$BROKER_MAINTENANCE_INTERVAL" =~ ^[1-9][0-9]*(ms|s|m|min|h)$ ]] ||
  die "BROKER_MAINTENANCE_INTERVAL=$BROKER_MAINTENANCE_INTERVAL: expected a duration such as 60s, 5m, 1h"

# kafka_check <port>: kafka_check.py's status (0 healthy, 1 not answering Kafka,
# 2 nothing listening); its one-line finding in CHECK_MESSAGE.
CHECK_MESSAGE=""
kafka_check() {
  local status=0
  CHECK_MESSAGE=$(python3 "$KAFKA_CHECK" "$KAFKA_HOST" "$1" --timeout "$KAFKA_CHECK_TIMEOUT") || status=$?
  return "$status"
}

# our_pid <pid file> [port]: the pid of a nisshi these scripts started (listening on that
# port, if given), if it runs. The pid may have been reused by another program since the
# file was written: it must be a nisshi broker with that listener.
our_pid() {
  local pid cmdline listener="--listener-url tcp://"
  [ -z "${2:-}" ] || listener="--listener-url tcp://$KAFKA_HOST:$2 "
  [ -f "$1" ] || return 0
  pid=$(cat "$1")
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 0
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 0
  case "$cmdline" in
    *nisshi*" broker "*"$listener"*) echo "$pid" ;;
  esac
}

# listener_pids <port>: the pids `ss -ltnp` names for listeners on that port (none without permission).
listener_pids() {
  command -v ss >/dev/null 2>&1 || return 0
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u
}

# holder <port>: who holds the port, for messages.
holder() {
  local pids pid described=()
  pids=$(listener_pids "$1")
  [ -n "$pids" ] || { echo "a process that \`ss -ltnp\` does not name (run as root to see it)"; return; }
  for pid in $pids; do
    described+=("pid $pid ($(ps -o args= -p "$pid" 2>/dev/null | cut -c1-120 || echo '?'))")
  done
  local IFS=,
  echo "${described[*]}"
}

# listens_as <pid> <port>: true unless `ss` names listeners on the port and the pid is not among them.
listens_as() {
  local pids
  pids=$(listener_pids "$2")
  [ -z "$pids" ] || grep -qx "$1" <<<"$pids"
}

# terminate <pid> <what> [grace seconds]: SIGTERM, then SIGKILL after the grace
# (20 s by default: a busy broker may be slow to act on SIGTERM). SIGCONT too, so that a stopped
# process acts on the SIGTERM.
terminate() {
  local pid=$1 what=$2 grace=${3:-20}
  kill "$pid" 2>/dev/null || return 0
  kill -CONT "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + grace))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "$what ignored SIGTERM for $grace s; killing it"
      kill -9 "$pid" 2>/dev/null || true
      wait_for "$what (pid $pid) to exit after SIGKILL" 10 bash -c "! kill -0 $pid"
      return 0
    fi
    sleep 0.2
  done
}

# spawn <log> <port> [broker options...]: nisshi from the current directory (its store),
# in the background, listening on the port; its pid in SPAWNED.
# It gets none of our open files beyond stdin/out/err: a long-lived broker must not keep
# what the caller holds, such as the fd of `flock /tmp/cargo-build.lock make up` (it
# would hold that lock for as long as it runs). A group's first rebalance does not wait
# for more members (Apache Kafka waits 3 s, and so would every service start and test
# here); the broker exports no traces of its own into the platform's trace viewer.
SPAWNED=""
spawn() {
  local log=$1 port=$2; shift 2
  (for fd in /proc/$BASHPID/fd/*; do
     fd=${fd##*/}
     [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-"
   done
   exec nohup env -u OTEL_EXPORTER_OTLP_ENDPOINT "$BROKER_BIN" broker \
      --listener-url "tcp://$KAFKA_HOST:$port" \
      --advertised-listener-url "tcp://$KAFKA_HOST:$port" \
      --group-initial-rebalance-delay 0s \
      --storage-engine "sqlite://nisshi.db?maintenance_interval=$BROKER_MAINTENANCE_INTERVAL" "$@") >"$log" 2>&1 </dev/null &
  SPAWNED=$!
}

# enroll_principals <name> <data dir>: sets every principal's SCRAM credentials in the
# store. nisshi keeps them there, but once it requires authentication it takes no
# AlterUserScramCredentials from a client that has not signed in, so they are set by a
# broker started on the store without authentication, on a private port that only this
# script knows, and stopped again. Done at each start, so a password changed in the
# secrets file takes effect; passwords go to kafka_users.py on stdin, never in argv.
enroll_principals() {
  local name=$1 dir=$2 port pid principal out status=0
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  (cd "$dir" && spawn "$LOG_DIR/$name.enroll.log" "$port" && echo "$SPAWNED" >"$RUN_DIR/$name.enroll.pid")
  pid=$(cat "$RUN_DIR/$name.enroll.pid")
  local deadline=$((SECONDS + 30))
  until env -u KAFKA_SASL_USERNAME -u KAFKA_SASL_PASSWORD python3 "$KAFKA_CHECK" "$KAFKA_HOST" "$port" --quiet; do
    kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ] ||
      die "nisshi ($name) did not start to enroll the principals; the end of $LOG_DIR/$name.enroll.log:
$(tail -n 5 "$LOG_DIR/$name.enroll.log")"
    sleep 0.1
  done
  out=$(for principal in "${KAFKA_PRINCIPALS[@]}"; do
          printf '%s=%s\n' "$principal" "$(kafka_password "$principal")"
        done | python3 "$KAFKA_USERS" "$KAFKA_HOST" "$port" upsert-users 2>&1) || status=$?
  terminate "$pid" "nisshi ($name, enrolling)" 5
  rm -f "$RUN_DIR/$name.enroll.pid"
  [ "$status" -eq 0 ] || die "could not set the principals' credentials on $name: $out"
}

# launch <name> <port> <data dir>: enrolls the principals in the store in the data dir,
# starts nisshi on the port with authentication, then waits until it answers Kafka
# requests from a signed-in client.
launch() {
  local name=$1 port=$2 dir=$3 log="$LOG_DIR/$1.log" pid
  mkdir -p "$dir"
  [ -f "$log" ] && mv -f "$log" "$LOG_DIR/$name.previous.log"
  enroll_principals "$name" "$dir"
  # nisshi resolves sqlite:// paths against its working directory, so it runs from its data folder.
  (cd "$dir" && spawn "$log" "$port" --authentication && echo "$SPAWNED" >"$RUN_DIR/$name.pid")
  pid=$(cat "$RUN_DIR/$name.pid")
  local deadline=$((SECONDS + 30))
  until kafka_check "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$RUN_DIR/$name.pid"
      die "nisshi ($name) exited at start; the end of $log:
$(tail -n 5 "$log")"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "nisshi ($name, pid $pid) does not answer Kafka requests 30 s after start: $CHECK_MESSAGE (log: $log)"
    sleep 0.2
  done
}

# still_failing <pid> <port>: polls the check for BROKER_CONFIRM_SECONDS; false as soon as
# it passes, true if the broker fails it throughout (or exits).
still_failing() {
  local deadline=$((SECONDS + BROKER_CONFIRM_SECONDS))
  while [ "$SECONDS" -lt "$deadline" ] && kill -0 "$1" 2>/dev/null; do
    kafka_check "$2" && return 1
    sleep 0.5
  done
  return 0
}

# retention <port>: the platform's existing topics get cleanup.policy=delete and
# retention.ms (topic_retention.py, changes only). A failure is a warning: the broker
# answers, and the services align retention themselves where the broker allows it.
retention() {
  local out status=0
  out=$(python3 "$TOPIC_RETENTION" "$KAFKA_HOST" "$1" --changes-only 2>&1) || status=$?
  if [ "$status" -eq 0 ]; then
    while IFS= read -r line; do say "$line"; done <<<"$out"
  else
    printf 'warning: retention policy not applied (topic_retention.py exit %s): %s\n' "$status" "$out" >&2
  fi
}

# A store left by the broker's predecessor (tansu) is not read by nisshi: the broker starts
# on a fresh store, and the services refill it (their topic keepers recreate the topics
# and replay their outboxes' recent events). Said once, then the old store is set aside.
# retire_legacy_broker: a tansu these scripts started earlier still holding the port is
# stopped, so that nisshi takes its place.
retire_legacy_broker() {
  local pid_file="$RUN_DIR/tansu.pid" pid cmdline
  [ -f "$pid_file" ] || return 0
  pid=$(cat "$pid_file")
  if [[ "$pid" =~ ^[0-9]+$ ]] && cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) &&
    [[ "$cmdline" == *tansu*" broker "* ]]; then
    say "Stopping the previous local broker (tansu, pid $pid): nisshi replaces it"
    terminate "$pid" tansu
  fi
  rm -f "$pid_file"
}

legacy_store_notice() {
  local legacy="$STATE_DIR/tansu"
  [ -e "$legacy/tansu.db" ] && [ ! -e "$DATA_DIR/nisshi.db" ] || return 0
  say "Found the store of the previous local broker (tansu) in $legacy. nisshi starts on a fresh store in $DATA_DIR; the services recreate their topics and replay their recent events. The old store is kept as $legacy.retired (delete it when you like)."
  mv "$legacy" "$legacy.retired" 2>/dev/null || true
}

start() {
  retire_legacy_broker
  ensure_running
  retention "$KAFKA_PORT"
}

ensure_running() {
  local status=0 pid
  pid=$(our_pid "$PID_FILE" "$KAFKA_PORT")
  if [ -n "$pid" ] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--authentication"; then
    say "The broker these scripts started (nisshi, pid $pid) accepts clients without credentials; restarting it with authentication"
    terminate "$pid" nisshi
    pid=""
  fi
  # A broker rebuilt since it started (a patch in infra/broker/patches changed) would run
  # the old build until someone restarts it: restart it now, on its store.
  if [ -n "$pid" ] && [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == *" (deleted)" ]]; then
    say "nisshi was rebuilt since the broker (pid $pid) started; restarting it on its store"
    terminate "$pid" nisshi
    pid=""
  fi
  kafka_check "$KAFKA_PORT" || status=$?
  case "$status" in
    0)
      say "$CHECK_MESSAGE${pid:+ (nisshi, pid $pid)}"
      return ;;
    1)
      if [ -z "$pid" ] || ! listens_as "$pid" "$KAFKA_PORT"; then
        die "port $KAFKA_PORT on $KAFKA_HOST is held by $(holder "$KAFKA_PORT"), which these scripts did not start and which does not answer Kafka requests ($CHECK_MESSAGE). Left alone: stop it yourself, or run the platform on another KAFKA_PORT."
      fi
      if ! still_failing "$pid" "$KAFKA_PORT"; then
        say "$CHECK_MESSAGE (nisshi, pid $pid, answers again)"
        return
      fi
      say "The broker these scripts started (nisshi, pid $pid) accepts connections but does not answer Kafka requests for ${BROKER_CONFIRM_SECONDS} s: $CHECK_MESSAGE. Restarting it (its log is kept as $LOG_DIR/nisshi.previous.log)."
      terminate "$pid" nisshi 5 ;;
    2)
      if [ -n "$pid" ]; then
        # Ours, alive, not listening: still starting (another `make up`), or stuck before binding.
        if ! still_failing "$pid" "$KAFKA_PORT"; then
          say "$CHECK_MESSAGE (nisshi, pid $pid)"
          return
        fi
        say "nisshi (pid $pid) runs but has not answered on $KAFKA_HOST:$KAFKA_PORT for ${BROKER_CONFIRM_SECONDS} s: $CHECK_MESSAGE. Restarting it."
        terminate "$pid" nisshi 5
      fi ;;
    *) die "kafka_check.py failed ($status): $CHECK_MESSAGE" ;;
  esac
  rm -f "$PID_FILE"
  "$ROOT/infra/scripts/install-broker.sh"
  legacy_store_notice
  say "Starting nisshi on $KAFKA_HOST:$KAFKA_PORT (data in $DATA_DIR, maintenance every $BROKER_MAINTENANCE_INTERVAL)"
  launch nisshi "$KAFKA_PORT" "$DATA_DIR"
  say "$CHECK_MESSAGE (nisshi, pid $(cat "$PID_FILE"))"
}

stop() {
  local pid
  pid=$(our_pid "$PID_FILE")
  if [ -n "$pid" ]; then
    say "Stopping nisshi (pid $pid)"
    terminate "$pid" nisshi
  fi
  rm -f "$PID_FILE"
}

status() {
  local status=0 pid
  kafka_check "$KAFKA_PORT" || status=$?
  pid=$(our_pid "$PID_FILE" "$KAFKA_PORT")
  case "$status" in
    0) echo "broker: up ($CHECK_MESSAGE${pid:+; nisshi pid $pid})" ;;
    1)
      if [ -n "$pid" ] && listens_as "$pid" "$KAFKA_PORT"; then
        echo "broker: NOT ANSWERING ($CHECK_MESSAGE; nisshi pid $pid, started by these scripts: \`make up\` restarts it)"
      else
        echo "broker: NOT ANSWERING ($CHECK_MESSAGE; the port is held by $(holder "$KAFKA_PORT"), not started by these scripts)"
      fi
      return 1 ;;
    *) echo "broker: down ($CHECK_MESSAGE)"; return 1 ;;
  esac
}

# A throw-away broker with empty storage (tests, benchmarks): each run gets topics,
# groups and records of its own, and leaves nothing behind in the platform's broker.
start_fresh() {
  local name=$1 port=$2 status=0
  stop_fresh "$name"
  kafka_check "$port" || status=$?
  [ "$status" -eq 2 ] || die "cannot start the $name broker on port $port: it is held by $(holder "$port") ($CHECK_MESSAGE)"
  "$ROOT/infra/scripts/install-broker.sh" >/dev/null
  launch "$name" "$port" "$STATE_DIR/$name"
}

stop_fresh() {
  local pid_file="$RUN_DIR/$1.pid" pid
  pid=$(our_pid "$pid_file")
  [ -z "$pid" ] || terminate "$pid" "the $1 broker"
  rm -f "$pid_file"
  rm -rf "${STATE_DIR:?}/$1"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  start-fresh) start_fresh "$2" "$3" ;;
  stop-fresh) stop_fresh "$2" ;;
  status) status ;;
  *) die "usage: $0 start|stop|status | start-fresh <name> <port> | stop-fresh <name>" ;;
esac
