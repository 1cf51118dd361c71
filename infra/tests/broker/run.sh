#!/usr/bin/env bash
# Tests of the broker scripts: a broker is judged by Kafka requests, a wedged
# broker of ours is repaired, a foreign one is left alone, and the store is bounded.
#
#   1. kafka_check.py: 0 for a healthy nisshi (started beside a store left by the previous
#      broker, tansu, which is set aside with a message), and a fake broker offering Metadata from v4
#      only, as Kafka 4 does); 2 for a closed port; 1 for a listener that
#      accepts and never answers, one that closes at once, and one that answers
#      ApiVersions but drops Metadata (the shape of a broker whose storage failed)
#   2. broker.sh start/status with a foreign, silent process on the port (its pid even
#      written into our pid file): named, never killed, and the start fails
#   3. a nisshi started by broker.sh that stops answering (SIGSTOP: the kernel still
#      accepts connections into its backlog): `status` says so, `start` kills it and
#      starts a fresh one on the same store, which answers and still has its topic
#   4. retention: on a nisshi started by broker.sh with a short BROKER_MAINTENANCE_INTERVAL,
#      records older than retention.ms are deleted from a topic created with
#      cleanup.policy=delete, from one given it later by IncrementalAlterConfigs and from
#      one without a policy (Kafka's default is delete), and offsets carry on where they were
#   5. topic_retention.py: on a private broker, the platform's topics created without the
#      policy (behind a KAFKA_TOPIC_PREFIX) get cleanup.policy=delete and retention.ms
#      from KAFKA_RETENTION_MS / KAFKA_DLQ_RETENTION_MS (DescribeConfigs v1 shows both),
#      other topics are left alone, a second run changes nothing, and maintenance then
#      deletes the records older than the new retention; section 3 shows `broker.sh
#      start` applying it to a broker that was already running
#   6. a broker whose binary was replaced since it started (install-broker.sh after a
#      patch changed): `start` restarts it on its store, then leaves it alone
#
# Everything runs on free ports and in a private PLATFORM_STATE_DIR (pid files, logs,
# stores), removed at the end: never the platform's broker on 9092. Waits are polls
# with a deadline. Needs nisshi installed (`infra/scripts/broker.sh start` installs it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
HERE="$ROOT/infra/tests/broker"
BROKER="$ROOT/infra/scripts/broker.sh"
CHECK="$ROOT/infra/scripts/kafka_check.py"
WIRE="$ROOT/infra/scripts/kafka_wire.py"
RETENTION_TOOL="$ROOT/infra/scripts/topic_retention.py"
# The retention settings the tools read: their defaults here, whatever the caller has set.
# No credentials until the private broker's exist (the fake listeners know no SASL).
unset KAFKA_TOPIC_PREFIX KAFKA_RETENTION_MS KAFKA_DLQ_RETENTION_MS KAFKA_SASL_USERNAME KAFKA_SASL_PASSWORD

PRIVATE="$(mktemp -d)"
export PLATFORM_STATE_DIR="$PRIVATE/state" KAFKA_HOST=127.0.0.1
started=$SECONDS
fakes=()

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
KAFKA_PORT=$(free_port)
RETENTION_PORT=$(free_port)
export KAFKA_PORT

cleanup() {
  local pid
  for pid in "${fakes[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -f "$PLATFORM_STATE_DIR/run/nisshi.pid" ]; then kill -CONT "$(cat "$PLATFORM_STATE_DIR/run/nisshi.pid")" 2>/dev/null || true; fi
  "$BROKER" stop >/dev/null 2>&1 || true
  "$BROKER" stop-fresh broker-retention >/dev/null 2>&1 || true
  rm -rf "$PRIVATE"
}
trap cleanup EXIT

say() { printf '\033[1m==>\033[0m %s\n' "$*"; }
ok() { printf '    ok  %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

# Never the platform's broker.
[ "$KAFKA_PORT" != 9092 ] && [ "$RETENTION_PORT" != 9092 ] || fail "free_port picked 9092"

# poll <seconds> <what> <command...>: runs the command until it succeeds.
poll() {
  local seconds=$1 what=$2 deadline=$((SECONDS + $1)); shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${seconds}s waiting for $what"
    sleep 0.1
  done
}

# plain: a `say` line without its bold arrow.
plain() { sed -E $'s/^\e\\[1m==>\e\\[0m //'; }

# run <command...>: sets OUT (stdout and stderr) and RC, never fails.
run() { RC=0; OUT=$("$@" 2>&1) || RC=$?; }

# expect_check <port> <status> <text> <what>: kafka_check.py answers status with text in its message.
expect_check() {
  local t0=$SECONDS
  run python3 "$CHECK" 127.0.0.1 "$1"
  [ "$RC" -eq "$2" ] || fail "kafka_check.py on $4: exit $RC, expected $2 ($OUT)"
  [[ "$OUT" == *"$3"* ]] || fail "kafka_check.py on $4 says \"$OUT\", expected \"$3\""
  ok "$4: exit $RC in $((SECONDS - t0)) s: $OUT"
}

# fake <mode>: starts fake_listener.py on a free port; sets FAKE_PID and FAKE_PORT.
fake() {
  local out="$PRIVATE/fake-${#fakes[@]}.port"
  python3 "$HERE/fake_listener.py" "$1" "${2:-0}" >"$out" &
  FAKE_PID=$!
  fakes+=("$FAKE_PID")
  poll 10 "the $1 listener" test -s "$out"
  FAKE_PORT=$(head -n1 "$out")
  [[ "$FAKE_PORT" =~ ^[0-9]+$ ]] && [ "$FAKE_PORT" != 9092 ] || fail "the $1 listener reported port '$FAKE_PORT'"
}

broker_pid() { cat "$PLATFORM_STATE_DIR/run/nisshi.pid"; }

# ------------------------------------------------------------------ 1. the check

say "1. kafka_check.py tells a healthy broker from what only accepts connections"
expect_check "$(free_port)" 2 "nothing listens" "a closed port"
fake silent
expect_check "$FAKE_PORT" 1 "does not answer a Kafka ApiVersions request" "a listener that accepts and never answers"
fake close
expect_check "$FAKE_PORT" 1 "does not speak Kafka" "a listener that closes every connection"
fake apiversions
expect_check "$FAKE_PORT" 1 "fails Metadata" "a listener that answers ApiVersions and drops Metadata"
fake kafka4
expect_check "$FAKE_PORT" 0 "brokers 1@127.0.0.1:$FAKE_PORT, 1 topics" "a broker offering Metadata from v4 only (as Kafka 4)"
# The platform's own scripts start the healthy one (section 3 uses it on), here under a
# lock as `flock /tmp/cargo-build.lock make up` takes it: the broker must not inherit it.
# A store left by the previous local broker (tansu) is set aside, and the start says so.
mkdir -p "$PLATFORM_STATE_DIR/tansu" && printf 'old store' >"$PLATFORM_STATE_DIR/tansu/tansu.db"
run flock "$PRIVATE/build.lock" "$BROKER" start
[ "$RC" -eq 0 ] || fail "broker.sh start: exit $RC: $OUT"
[[ "$OUT" == *"Found the store of the previous local broker (tansu)"*"fresh store"* ]] ||
  fail "broker.sh start on a machine with tansu's store did not say it starts on a fresh store: $OUT"
[ -f "$PLATFORM_STATE_DIR/tansu.retired/tansu.db" ] && [ ! -e "$PLATFORM_STATE_DIR/tansu" ] ||
  fail "the old store was not set aside as tansu.retired"
ok "the previous broker's store is set aside, and the start says so: $(grep -o 'Found the store[^.]*' <<<"$OUT")"
# It requires SASL/SCRAM: without credentials, or with a wrong password, nothing but
# ApiVersions is answered. The tools sign in as platform-operator, as common.sh has them.
run python3 "$CHECK" 127.0.0.1 "$KAFKA_PORT"
[ "$RC" -eq 1 ] && [[ "$OUT" == *"fails Metadata"* ]] || fail "nisshi started by broker.sh answered Metadata to a client without credentials: exit $RC: $OUT"
ok "a client without credentials gets no Metadata: $OUT"
run env KAFKA_SASL_USERNAME=platform-operator KAFKA_SASL_PASSWORD=guessed python3 "$CHECK" 127.0.0.1 "$KAFKA_PORT"
[ "$RC" -eq 1 ] && [[ "$OUT" == *"fails SASL authentication"* ]] || fail "a wrong password was not refused: exit $RC: $OUT"
ok "a wrong password is refused: $OUT"
source "$ROOT/infra/scripts/secrets.sh"
load_secrets
expect_check "$KAFKA_PORT" 0 "@127.0.0.1:$KAFKA_PORT" "nisshi started by broker.sh, signed in as $KAFKA_SASL_USERNAME"
flock -n "$PRIVATE/build.lock" true || fail "the broker holds the lock its starter held (an inherited file descriptor)"
ok "the broker keeps no file of its starter's: the lock it was started under is free"
grep -q "maintenance_interval=60s" "/proc/$(broker_pid)/cmdline" ||
  fail "broker.sh started nisshi without maintenance_interval=60s: $(tr '\0' ' ' <"/proc/$(broker_pid)/cmdline")"
ok "nisshi runs its maintenance every 60 s (storage URL: $(tr '\0' '\n' <"/proc/$(broker_pid)/cmdline" | grep '^sqlite'))"
# The fetch query is compiled into the binary as text: the release's reads to the log's end.
grep -aqF 'limit 1 + $5 / 128' "/proc/$(broker_pid)/exe" ||
  fail "the running nisshi was built without infra/broker/patches/nisshi-storage-sql/record-fetch-bounded.patch"
ok "nisshi was built with the bounded fetch query (infra/broker/patches)"

# ------------------------------------------------------------------ 2. a foreign listener

say "2. broker.sh leaves a foreign listener alone"
fake silent
foreign_pid=$FAKE_PID foreign_port=$FAKE_PORT
# Our pid file naming the foreign process (as after a reboot reused the pid) changes nothing.
echo "$foreign_pid" >"$PLATFORM_STATE_DIR/run/nisshi-foreign.pid"
run env KAFKA_PORT="$foreign_port" BROKER_CONFIRM_SECONDS=1 "$BROKER" start
[ "$RC" -ne 0 ] || fail "broker.sh start succeeded with a silent foreign process on its port: $OUT"
[[ "$OUT" == *"held by pid $foreign_pid"*"did not start"* ]] || fail "broker.sh start did not name the foreign process: $OUT"
kill -0 "$foreign_pid" || fail "broker.sh start killed the foreign process"
ok "start fails (exit $RC) and names it: $(tail -n1 <<<"$OUT")"
cp "$PLATFORM_STATE_DIR/run/nisshi.pid" "$PRIVATE/nisshi.pid.saved"
echo "$foreign_pid" >"$PLATFORM_STATE_DIR/run/nisshi.pid"
run env KAFKA_PORT="$foreign_port" BROKER_CONFIRM_SECONDS=1 "$BROKER" start
[ "$RC" -ne 0 ] && [[ "$OUT" == *"held by pid $foreign_pid"* ]] || fail "with the foreign pid in nisshi.pid, broker.sh start: exit $RC: $OUT"
kill -0 "$foreign_pid" || fail "broker.sh start killed the foreign process named in its pid file"
ok "with its pid in nisshi.pid too: start fails, the process lives"
run env KAFKA_PORT="$foreign_port" "$BROKER" status
[ "$RC" -ne 0 ] && [[ "$OUT" == "broker: NOT ANSWERING"*"pid $foreign_pid"*"not started by these scripts"* ]] ||
  fail "broker.sh status on the foreign listener: exit $RC: $OUT"
ok "status (exit $RC): $OUT"
run env KAFKA_PORT="$foreign_port" "$BROKER" stop
kill -0 "$foreign_pid" || fail "broker.sh stop killed the foreign process named in its pid file"
ok "stop leaves it running too"
cp "$PRIVATE/nisshi.pid.saved" "$PLATFORM_STATE_DIR/run/nisshi.pid"

# ------------------------------------------------------------------ 3. a wedged broker of ours

say "3. broker.sh restarts a broker of its own that stopped answering"
python3 "$WIRE" 127.0.0.1 "$KAFKA_PORT" create-topic survives.restart >/dev/null
python3 "$WIRE" 127.0.0.1 "$KAFKA_PORT" produce survives.restart --count 2 >/dev/null
old_pid=$(broker_pid)
kill -STOP "$old_pid"
expect_check "$KAFKA_PORT" 1 "does not answer a Kafka ApiVersions request" "nisshi stopped with SIGSTOP"
run "$BROKER" status
[ "$RC" -ne 0 ] && [[ "$OUT" == "broker: NOT ANSWERING"*"nisshi pid $old_pid, started by these scripts"* ]] ||
  fail "broker.sh status on the stopped nisshi: exit $RC: $OUT"
ok "status (exit $RC): $OUT"
t0=$SECONDS
run env BROKER_CONFIRM_SECONDS=3 "$BROKER" start
[ "$RC" -eq 0 ] || fail "broker.sh start did not repair the stopped nisshi (exit $RC): $OUT"
[[ "$OUT" == *"does not answer Kafka requests"*"Restarting it"* ]] || fail "broker.sh start gave no clear message: $OUT"
new_pid=$(broker_pid)
[ "$new_pid" != "$old_pid" ] || fail "the pid file still names the old nisshi $old_pid"
! kill -0 "$old_pid" 2>/dev/null || fail "the stopped nisshi $old_pid still runs"
ok "start repaired it in $((SECONDS - t0)) s (3 s of confirmation): pid $old_pid gone, pid $new_pid answers"
printf '    %s\n' "${OUT//$'\n'/$'\n'    }"
expect_check "$KAFKA_PORT" 0 "Kafka broker answers" "the restarted nisshi"
read -r earliest latest < <(python3 "$WIRE" 127.0.0.1 "$KAFKA_PORT" offsets survives.restart)
[ "$latest" = 2 ] || fail "the restarted nisshi lost its store: survives.restart offsets $earliest..$latest, expected 2 records"
ok "the store survived: survives.restart holds offsets $earliest..$((latest - 1))"
[ -s "$PLATFORM_STATE_DIR/logs/nisshi.previous.log" ] || fail "the stopped broker's log was not kept"
ok "the previous log is kept as nisshi.previous.log"
run "$BROKER" status
[ "$RC" -eq 0 ] && [[ "$OUT" == "broker: up"* ]] || fail "broker.sh status after the repair: exit $RC: $OUT"
ok "status: $OUT"
# A topic of the platform's created without the retention policy (as by older code).
python3 "$WIRE" 127.0.0.1 "$KAFKA_PORT" create-topic user.created >/dev/null
run "$BROKER" start
[ "$RC" -eq 0 ] && [ "$(broker_pid)" = "$new_pid" ] || fail "a second start touched the healthy broker (exit $RC): $OUT"
ok "a further start leaves the healthy broker alone"
[[ "$OUT" == *"user.created: set cleanup.policy (unset) -> delete, retention.ms (unset) -> 3600000"* ]] ||
  fail "broker.sh start on a running broker did not give user.created the retention policy: $OUT"
described=$(python3 "$WIRE" 127.0.0.1 "$KAFKA_PORT" describe-topic user.created | tr '\n' ' ')
[[ "$described" == *"cleanup.policy=delete"*"retention.ms=3600000"* ]] || fail "DescribeConfigs user.created after broker.sh start: $described"
ok "and gives an existing platform topic its retention policy: $(grep 'user.created' <<<"$OUT" | plain)"
run "$BROKER" start
[ "$RC" -eq 0 ] && [[ "$OUT" == *"0 topics changed, 1 already set"* ]] || fail "a third start (policy already set): exit $RC: $OUT"
ok "the next start changes nothing: $(tail -n1 <<<"$OUT" | plain)"
"$BROKER" stop >/dev/null

# ------------------------------------------------------------------ 4. retention

say "4. nisshi deletes records older than retention.ms (cleanup.policy=delete) at its maintenance"
BROKER_MAINTENANCE_INTERVAL=1s "$BROKER" start-fresh broker-retention "$RETENTION_PORT" >/dev/null
wire() { python3 "$WIRE" 127.0.0.1 "$RETENTION_PORT" "$@"; }
hour=3600000
wire create-topic created.delete --config cleanup.policy=delete --config retention.ms=60000
wire create-topic altered.delete
wire alter-topic altered.delete cleanup.policy=delete retention.ms=60000
wire create-topic no.policy --config retention.ms=60000
wire create-topic all.expired --config cleanup.policy=delete --config retention.ms=60000
described=$(wire describe-topic altered.delete | tr '\n' ' ')
[[ "$described" == *"cleanup.policy=delete"*"retention.ms=60000"* ]] || fail "DescribeConfigs altered.delete after IncrementalAlterConfigs: $described"
ok "IncrementalAlterConfigs on an existing topic: DescribeConfigs shows $described"
# no.policy and all.expired first: a maintenance pass that trims the last topic written
# saw their records too (one DELETE statement covers every topic).
wire produce no.policy --age-ms "$hour" --count 3 >/dev/null
wire produce no.policy --count 2 >/dev/null
wire produce all.expired --age-ms "$hour" --count 2 >/dev/null
for topic in created.delete altered.delete; do
  wire produce "$topic" --age-ms "$hour" --count 3 >/dev/null
  wire produce "$topic" --count 2 >/dev/null
done
t0=$SECONDS
earliest_is() { [ "$(wire offsets "$1" | cut -d' ' -f1)" = "$2" ]; }
poll 30 "created.delete to lose its 3 old records" earliest_is created.delete 3
poll 30 "altered.delete to lose its 3 old records" earliest_is altered.delete 3
# Without a cleanup.policy a topic has Kafka's default, delete.
poll 30 "no.policy to lose its 3 old records" earliest_is no.policy 3
ok "created.delete, altered.delete and no.policy (Kafka's default policy): offsets 0-2 (an hour old) deleted, 3-4 kept, within $((SECONDS - t0)) s"
# Offsets carry on after deletion: the next record is numbered where the log ended.
for topic_end in created.delete:5 all.expired:2; do
  topic=${topic_end%:*} end=${topic_end#*:}
  read -r earliest latest < <(wire offsets "$topic")
  next=$(wire produce "$topic")
  [ "$next" = "$end" ] || fail "$topic: the next record got offset $next, the log ended at $end (offsets restarted after deletion)"
  ok "$topic: ListOffsets says $earliest..$latest after deletion; the next record gets offset $next"
done

# ------------------------------------------------------------------ 5. topic_retention.py

say "5. topic_retention.py gives the platform's existing topics the retention policy"
export KAFKA_TOPIC_PREFIX=t5. KAFKA_RETENTION_MS=60000 KAFKA_DLQ_RETENTION_MS=120000
wire create-topic t5.order.created                                   # no configs at all
wire create-topic t5.order.created.dlq --config retention.ms=86400000 # retention but no policy
wire create-topic t5.payment.completed --config cleanup.policy=delete --config retention.ms=60000
wire create-topic order.created                                      # the platform's name without the prefix
wire create-topic t5.other                                           # not a platform topic
for topic in t5.order.created t5.order.created.dlq order.created t5.other; do
  wire produce "$topic" --age-ms "$hour" --count 3 >/dev/null
  wire produce "$topic" --count 2 >/dev/null
done
run python3 "$RETENTION_TOOL" 127.0.0.1 "$RETENTION_PORT"
[ "$RC" -eq 0 ] || fail "topic_retention.py: exit $RC: $OUT"
printf '    | %s\n' "${OUT//$'\n'/$'\n'    | }"
for expected in "t5.order.created: set cleanup.policy (unset) -> delete, retention.ms (unset) -> 60000" \
                "t5.order.created.dlq: set cleanup.policy (unset) -> delete, retention.ms 86400000 -> 120000" \
                "t5.payment.completed: unchanged" "t5.user.created: absent" "2 topics changed, 1 already set, 9 absent"; do
  [[ "$OUT" == *"$expected"* ]] || fail "topic_retention.py did not say \"$expected\": $OUT"
done
[[ "$OUT" != *"t5.other"* && "$OUT" != *$'\n'"order.created"* ]] || fail "topic_retention.py named a topic that is not the platform's: $OUT"
for topic_retention in t5.order.created:60000 t5.order.created.dlq:120000; do
  topic=${topic_retention%:*} retention=${topic_retention#*:}
  described=$(wire describe-topic "$topic" | tr '\n' ' ')
  [[ "$described" == *"cleanup.policy=delete"*"retention.ms=$retention"* ]] || fail "DescribeConfigs $topic after topic_retention.py: $described"
  ok "DescribeConfigs (v1) $topic: $described"
done
for topic in order.created t5.other; do
  described=$(wire describe-topic "$topic" | tr '\n' ' ')
  [ -z "${described// /}" ] || fail "topic_retention.py changed $topic, not a platform topic behind the prefix: $described"
done
ok "order.created (no prefix) and t5.other: configuration untouched"
run python3 "$RETENTION_TOOL" 127.0.0.1 "$RETENTION_PORT"
[ "$RC" -eq 0 ] && [[ "$OUT" != *": set "* && "$OUT" == *"0 topics changed, 3 already set, 9 absent"* ]] ||
  fail "a second topic_retention.py run: exit $RC: $OUT"
ok "a second run changes nothing: $(tail -n1 <<<"$OUT")"
t0=$SECONDS
poll 30 "t5.order.created to lose its 3 old records" earliest_is t5.order.created 3
poll 30 "t5.order.created.dlq to lose its 3 old records" earliest_is t5.order.created.dlq 3
ok "maintenance then deleted the hour-old records of both (offsets 0-2; 3-4 kept) within $((SECONDS - t0)) s"
for topic in order.created t5.other; do
  read -r earliest latest < <(wire offsets "$topic")
  [ "$earliest" = 0 ] && [ "$latest" = 5 ] || fail "$topic (no policy) offsets $earliest..$latest, expected all 5 records kept"
done
ok "order.created and t5.other keep all 5 records"
run env KAFKA_RETENTION_MS=soon python3 "$RETENTION_TOOL" 127.0.0.1 "$RETENTION_PORT"
[ "$RC" -eq 2 ] && [[ "$OUT" == *"KAFKA_RETENTION_MS='soon'"* ]] || fail "topic_retention.py with a bad KAFKA_RETENTION_MS: exit $RC: $OUT"
ok "a bad setting is refused (exit 2): $OUT"
unset KAFKA_TOPIC_PREFIX KAFKA_RETENTION_MS KAFKA_DLQ_RETENTION_MS
"$BROKER" stop-fresh broker-retention

# ------------------------------------------------------------------ 6. a rebuilt broker

say "6. broker.sh restarts a broker whose binary was rebuilt since it started, on its store"
"$BROKER" stop >/dev/null
mkdir -p "$PRIVATE/root/bin" "$PRIVATE/root/share/nisshi"
cp "${NISSHI_INSTALL_ROOT:-/usr/local}/bin/nisshi" "$PRIVATE/root/bin/nisshi"
cp "${NISSHI_INSTALL_ROOT:-/usr/local}/share/nisshi/build" "$PRIVATE/root/share/nisshi/build"
export NISSHI_INSTALL_ROOT="$PRIVATE/root"
run "$BROKER" start
[ "$RC" -eq 0 ] || fail "broker.sh start from the private install root: exit $RC: $OUT"
python3 "$WIRE" 127.0.0.1 "$KAFKA_PORT" create-topic survives.rebuild >/dev/null
python3 "$WIRE" 127.0.0.1 "$KAFKA_PORT" produce survives.rebuild --count 3 >/dev/null
old_pid=$(broker_pid)
# What install-broker.sh does after a build: a new file in the binary's place.
install -m 0755 "$PRIVATE/root/bin/nisshi" "$PRIVATE/root/bin/nisshi.new"
mv "$PRIVATE/root/bin/nisshi.new" "$PRIVATE/root/bin/nisshi"
run "$BROKER" start
[ "$RC" -eq 0 ] && [[ "$OUT" == *"rebuilt since the broker (pid $old_pid) started; restarting it on its store"* ]] ||
  fail "broker.sh start after a rebuild: exit $RC: $OUT"
new_pid=$(broker_pid)
[ "$new_pid" != "$old_pid" ] && ! kill -0 "$old_pid" 2>/dev/null || fail "the old build (pid $old_pid) still runs"
read -r earliest latest < <(python3 "$WIRE" 127.0.0.1 "$KAFKA_PORT" offsets survives.rebuild)
[ "$latest" = 3 ] || fail "the rebuilt broker lost its store: survives.rebuild offsets $earliest..$latest"
ok "pid $old_pid replaced by pid $new_pid running the new build; survives.rebuild keeps its 3 records"
run "$BROKER" start
[ "$RC" -eq 0 ] && [ "$(broker_pid)" = "$new_pid" ] || fail "a further start touched the current build (exit $RC): $OUT"
ok "a further start leaves it alone"

say "Broker tests passed ($((SECONDS - started)) s)"
